"""Ultralytics YOLO checkpoint (``.pt``) -> ONNX, for ``anoncodec export --detector x.pt``.

Needs the optional ``ultralytics`` package (AGPL-3.0; installed ``--no-deps``, used only
here). It runs offline: ``YOLO_OFFLINE``, ``YOLO_AUTOINSTALL=false`` and a writable
``YOLO_CONFIG_DIR`` are set before ultralytics is imported, so nothing is downloaded.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

from anoncodec.errors import ExportError, MissingDependencyError

__all__ = ["onnx_from_ultralytics"]

logger = logging.getLogger(__name__)


def _import_yolo():
    """``ultralytics.YOLO``, with the process-wide patches its import applies undone.

    Importing ultralytics replaces ``PIL.Image.open`` (an image Pillow cannot identify then
    raises ``ModuleNotFoundError`` for the missing ``pi_heif`` instead of
    ``UnidentifiedImageError``, so every later image read in this process, ours included,
    breaks) and ``torch.save``. ultralytics keeps the originals for itself, so putting them
    back changes nothing for the export.
    """
    import PIL.Image
    import torch
    from ultralytics import YOLO
    from ultralytics.utils import patches

    PIL.Image.open = getattr(patches, "_image_open", PIL.Image.open)
    torch.save = getattr(patches, "_torch_save", torch.save)
    return YOLO


def onnx_from_ultralytics(checkpoint: str | Path, dest: str | Path, imgsz: int = 640) -> tuple[Path, dict[int, str]]:
    """Export an ultralytics detection checkpoint to a static ``[1,3,imgsz,imgsz]`` ONNX file.

    Args:
        checkpoint: ``.pt`` file saved by ultralytics (YOLOv8 or later detection model).
        dest: ONNX file to write.
        imgsz: square input size of the exported graph.

    Returns:
        ``(dest, class names)``.

    Raises:
        MissingDependencyError: ultralytics is not installed.
        ExportError: the checkpoint cannot be read or exported.
    """
    checkpoint, dest = Path(checkpoint), Path(dest)
    if not checkpoint.is_file():
        raise ExportError(f"detector checkpoint {str(checkpoint)!r} does not exist")
    with tempfile.TemporaryDirectory(prefix="anoncodec-yolo-") as tmp:
        os.environ.setdefault("YOLO_OFFLINE", "1")
        os.environ.setdefault("YOLO_AUTOINSTALL", "false")
        os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(tmp) / "config"))
        try:
            YOLO = _import_yolo()
        except ImportError as exc:
            raise MissingDependencyError(
                f"{checkpoint.name} is an ultralytics checkpoint and ultralytics is not installed ({exc}); "
                "install it with `pip install --no-deps ultralytics` (AGPL-3.0) or pass a YOLOv8 ONNX file"
            ) from exc
        # ultralytics writes the ONNX next to its source: work on a copy
        source = Path(tmp) / checkpoint.name
        shutil.copyfile(checkpoint, source)
        try:
            model = YOLO(str(source))
            names = {int(k): str(v) for k, v in dict(model.names).items()}
            with warnings.catch_warnings():
                # ultralytics calls torch's TorchScript ONNX exporter, deprecated but still shipped (as in
                # anoncodec.codec.onnx_export): its DeprecationWarnings are not ours to fix
                warnings.simplefilter("ignore", DeprecationWarning)
                exported = model.export(format="onnx", imgsz=imgsz, opset=17, dynamic=False, simplify=False,
                                        verbose=False)
        except Exception as exc:
            raise ExportError(f"ultralytics could not export {checkpoint} to ONNX: {exc}") from exc
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(exported), dest)
    logger.info("exported %s to %s (classes %s)", checkpoint, dest, names)
    return dest, names
