"""Stage objects: the files and parameters of one Triton model, bound to a stage function.

May import numpy, onnxruntime and :mod:`anoncodec.serving.stages` (and what it imports);
never torch or ``triton_python_backend_utils`` (see :mod:`anoncodec.serving.python_model`
for the Triton side). Each stage is built from its model version folder (``<model>/1/``)
and the string ``parameters`` of its ``config.pbtxt``, and maps short tensor names
(``frame``, ``x``, ...) to numpy arrays, so it can be run and tested without a server.
The ``detector`` stage of an ``ssd`` repository (parameter ``detector_kind``) runs OpenCV's
DNN module instead of ONNX Runtime (see :mod:`anoncodec.serving.repository`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from anoncodec.entropy_coder import FactorizedTables
from anoncodec.errors import ExportError
from anoncodec.serving import stages
from anoncodec.serving.repository import stage_tensors, tensor_name

__all__ = ["Stage", "STAGES", "load_stage", "missing_files", "STAGE_FILES", "SSD_DETECTOR_FILES"]

logger = logging.getLogger(__name__)

Arrays = dict[str, np.ndarray]

# files each stage reads from its version folder (written by `anoncodec export`)
STAGE_FILES = {
    "frame_preprocess": ("codec.json",),
    "encoder": ("model.onnx",),
    "quantize": ("tables.npz",),
    "entropy_decode": ("codec.json", "tables.npz"),
    "sequence_decode": ("codec.json", "tables.npz"),
    "decoder": ("model.onnx",),
    "decoder_postprocess": (),
    "detector": ("model.onnx",),
    "detector_postprocess": (),
}
# the detector's files when its config says detector_kind "ssd" (frozen TF graph, OpenCV text graph)
SSD_DETECTOR_FILES = ("model.pb", "model.pbtxt")
KIND_PARAMETER = "detector_kind"


def _detector_kind(params: Mapping[str, str]) -> str:
    return params.get(KIND_PARAMETER, "yolo")


def missing_files(version_dir: str | Path, stage: str) -> list[Path]:
    """Files ``stage`` needs that are absent from ``version_dir`` (the detector's depend on
    the ``detector_kind`` of the ``config.pbtxt`` next to ``version_dir``)."""
    from anoncodec.serving.model_config import read_model_config

    version_dir = Path(version_dir)
    files = STAGE_FILES[stage]
    config = version_dir.parent / "config.pbtxt"
    if stage == "detector" and config.is_file() and _detector_kind(read_model_config(config).parameters) == "ssd":
        files = SSD_DETECTOR_FILES
    return [version_dir / f for f in files if not (version_dir / f).is_file()]


def _file(version_dir: Path, name: str, stage: str) -> Path:
    path = version_dir / name
    if not path.is_file():
        raise ExportError(f"stage {stage!r} needs {path}, which does not exist; run `anoncodec export` "
                          "to fill the model repository")
    return path


def _int(params: Mapping[str, str], key: str, default: int) -> int:
    return int(params.get(key, default))


class Stage:
    """Base class: subclasses set ``name`` and implement :meth:`run`."""

    name = ""

    def __init__(self, version_dir: str | Path, params: Mapping[str, str] | None = None) -> None:
        self.version_dir = Path(version_dir)
        self.params = dict(params or {})

    @property
    def input_names(self) -> list[str]:
        return [tensor_name(self.name, t[0]) for t in stage_tensors(self.name)[0]]

    @property
    def output_names(self) -> list[str]:
        return [tensor_name(self.name, t[0]) for t in stage_tensors(self.name)[1]]

    def run(self, inputs: Arrays) -> Arrays:
        """Map short input names to arrays -> short output names to arrays."""
        raise NotImplementedError

    def run_many(self, requests: list[Arrays]) -> list[Arrays | Exception]:
        """:meth:`run` for each of several requests (short names), one outcome each.

        A request that fails gets its exception in its place; the others are unaffected.
        Stages that can batch (:class:`OnnxStage`) override this to run requests of the
        same shape as one batch.
        """
        outcomes: list[Arrays | Exception] = []
        for inputs in requests:
            try:
                outcomes.append(self.run(inputs))
            except Exception as exc:  # handed back to the caller, which answers that request
                outcomes.append(exc)
        return outcomes

    def _short(self, tensors: Arrays) -> Arrays:
        prefix = self.name + "_"
        return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in tensors.items()}

    def _full(self, outputs: Arrays | Exception) -> Arrays | Exception:
        if isinstance(outputs, Exception):
            return outputs
        return {tensor_name(self.name, k): v for k, v in outputs.items()}

    def __call__(self, tensors: Arrays) -> Arrays:
        """Like :meth:`run`, with full tensor names (``<stage>_<short>``) on both sides."""
        return self._full(self.run(self._short(tensors)))

    def call_many(self, requests: list[Arrays]) -> list[Arrays | Exception]:
        """Like :meth:`run_many`, with full tensor names on both sides."""
        return [self._full(o) for o in self.run_many([self._short(r) for r in requests])]

    def close(self) -> None:
        """Release resources (ONNX Runtime sessions)."""


def _limits(params: Mapping[str, str]) -> stages.FrameLimits:
    default = stages.FrameLimits()
    return stages.FrameLimits(_int(params, "max_height", default.max_height),
                              _int(params, "max_width", default.max_width))


def _codec_info(version_dir: Path, stage: str) -> stages.CodecInfo:
    return stages.CodecInfo.from_dict(json.loads(_file(version_dir, "codec.json", stage).read_text()))


class FramePreprocess(Stage):
    name = "frame_preprocess"

    def __init__(self, version_dir, params=None):
        super().__init__(version_dir, params)
        self.codec = _codec_info(self.version_dir, self.name)
        self.limits = _limits(self.params)

    def run(self, inputs):
        x, size = stages.preprocess_frame(inputs["frame"], self.codec.downsampling, self.limits)
        return {"x": x, "size": size}


class Quantize(Stage):
    name = "quantize"

    def __init__(self, version_dir, params=None):
        super().__init__(version_dir, params)
        self.tables = FactorizedTables.load(_file(self.version_dir, "tables.npz", self.name))

    def run(self, inputs):
        y_hat, bits = stages.quantize_latent(inputs["y"], self.tables)
        return {"y_hat": y_hat, "bits": bits}


class EntropyDecode(Stage):
    name = "entropy_decode"

    def __init__(self, version_dir, params=None):
        super().__init__(version_dir, params)
        self.codec = _codec_info(self.version_dir, self.name)
        self.tables = FactorizedTables.load(_file(self.version_dir, "tables.npz", self.name))
        if self.tables.model_id != self.codec.model_id:
            raise ExportError(f"{self.version_dir}: tables.npz and codec.json come from different exports")
        self.limits = _limits(self.params)

    def run(self, inputs):
        y_hat, size = stages.decode_packet(inputs["packet"], self.tables, self.codec, self.limits)
        return {"y_hat": y_hat, "size": size}


class SequenceDecode(EntropyDecode):
    """The stateful stage of ``analyze_stream``: keyframes and deltas of many cameras.

    Triton's sequence batcher adds the control tensors ``start``, ``end`` and ``corrid``
    to every request; each camera's state lives in a bounded
    :class:`~anoncodec.serving.sequences.SequenceStore`.
    """

    name = "sequence_decode"

    def __init__(self, version_dir, params=None):
        super().__init__(version_dir, params)
        from anoncodec.serving.sequences import SequenceLimits, SequenceStore

        default = SequenceLimits()
        limits = SequenceLimits(_int(self.params, "max_cameras", default.max_cameras),
                                float(self.params.get("idle_s", default.idle_s)),
                                _int(self.params, "max_state_bytes", default.max_state_bytes))
        self.store = SequenceStore(self.tables, limits)

    def run(self, inputs):
        packet = stages.parse_packet(inputs["packet"], self.codec, self.limits)
        flags = {k: int(np.asarray(inputs[k]).ravel()[0]) for k in ("start", "end", "corrid")}
        y_hat = self.store.decode(flags["corrid"], packet, start=bool(flags["start"]), end=bool(flags["end"]))
        return {"y_hat": y_hat[None].astype(np.float32), "size": stages.frame_size(packet)}


class DecoderPostprocess(Stage):
    name = "decoder_postprocess"

    def __init__(self, version_dir, params=None):
        super().__init__(version_dir, params)
        self.size = (_int(self.params, "letterbox_height", 640), _int(self.params, "letterbox_width", 640))

    def run(self, inputs):
        frame, images, params = stages.reconstruct(inputs["x_hat"], inputs["size"], self.size)
        return {"frame": frame, "images": images, "letterbox": params}


class DetectorPostprocess(Stage):
    name = "detector_postprocess"

    def __init__(self, version_dir, params=None):
        super().__init__(version_dir, params)
        self.conf = float(self.params.get("conf", 0.25))
        self.iou = float(self.params.get("iou", 0.45))
        self.person_classes = tuple(int(c) for c in self.params.get("person_classes", "0,1").split(","))
        self.max_det = _int(self.params, "max_det", 300)
        self.decode = stages.ssd_detections if _detector_kind(self.params) == "ssd" else stages.detections

    def run(self, inputs):
        boxes, scores = self.decode(inputs["output"], inputs["letterbox"], self.conf, self.iou,
                                    self.person_classes, self.max_det)
        return {"boxes": boxes, "scores": scores}


class OnnxStage(Stage):
    """An ONNX stage (encoder, decoder, detector) run with ONNX Runtime on the CPU.

    The ONNX graph's input/output names are the stage's tensor names (the export renames
    them), so the same ``model.onnx`` also serves under Triton's ``onnxruntime_onnx``.
    Inputs are ``[B, C, H, W]``; :meth:`run_many` stacks requests of equal shape into one
    ONNX Runtime call when the graph's batch dimension is dynamic (Triton's dynamic
    batcher hands the python backend a list of requests, not one tensor).
    """

    def __init__(self, version_dir, params=None):
        super().__init__(version_dir, params)
        from anoncodec.detectors._onnx import ort_session

        path = _file(self.version_dir, "model.onnx", self.name)
        # "execution_providers": e.g. "CUDAExecutionProvider,CPUExecutionProvider" with onnxruntime-gpu
        providers = [p for p in str(self.params.get("execution_providers", "")).split(",") if p]
        self.session = ort_session(path, providers or None, threads=_int(self.params, "intra_op_threads", 0) or None)
        names = [i.name for i in self.session.get_inputs()], [o.name for o in self.session.get_outputs()]
        if names != (self.input_names, self.output_names):
            raise ExportError(f"{path} has inputs {names[0]} and outputs {names[1]}; expected "
                              f"{self.input_names} -> {self.output_names}: re-run `anoncodec export`")
        graph_input = self.session.get_inputs()[0]
        self.input_type = graph_input.type
        batch = graph_input.shape[0] if graph_input.shape else None
        # a fixed batch dimension (an int, e.g. 1) means: run requests one by one
        self.fixed_batch = batch if isinstance(batch, int) else None
        (self.in_short,) = [t[0] for t in stage_tensors(self.name)[0]]
        (self.out_short,) = [t[0] for t in stage_tensors(self.name)[1]]

    def _checked(self, inputs: Arrays) -> np.ndarray:
        x = np.asarray(inputs[self.in_short])
        if x.dtype != np.float32 or x.ndim != 4 or x.shape[0] < 1 or (
                self.fixed_batch is not None and x.shape[0] != self.fixed_batch):
            batch = self.fixed_batch if self.fixed_batch is not None else "B"
            raise stages.InvalidRequestError(f"{tensor_name(self.name, self.in_short)} must be float32 "
                                             f"[{batch}, C, H, W], got {x.dtype.name} {list(x.shape)}")
        return x

    def _infer(self, x: np.ndarray) -> np.ndarray:
        expected = np.float16 if self.input_type == "tensor(float16)" else np.float32
        try:
            outputs = self.session.run(self.output_names, {self.input_names[0]: x.astype(expected, copy=False)})
        except Exception as exc:  # ONNX Runtime reports bad shapes as plain exceptions
            if "INVALID_ARGUMENT" in str(exc) or "Invalid" in type(exc).__name__:
                raise stages.InvalidRequestError(f"{self.name}: ONNX Runtime rejected the input: {exc}") from exc
            raise
        return np.asarray(outputs[0], dtype=np.float32)

    def run(self, inputs):
        return {self.out_short: self._infer(self._checked(inputs))}

    def run_many(self, requests):
        if self.fixed_batch is not None or len(requests) < 2:
            return super().run_many(requests)
        outcomes: list[Arrays | Exception | None] = [None] * len(requests)
        groups: dict[tuple, list[tuple[int, np.ndarray]]] = {}
        for i, inputs in enumerate(requests):
            try:
                x = self._checked(inputs)
            except Exception as exc:
                outcomes[i] = exc
                continue
            groups.setdefault(x.shape[1:], []).append((i, x))
        for members in groups.values():
            if len(members) == 1:
                outcomes[members[0][0]] = super().run_many([requests[members[0][0]]])[0]
                continue
            try:
                y = self._infer(np.concatenate([x for _, x in members]))
            except Exception:  # find out which request is to blame: run them one by one
                for i, _ in members:
                    outcomes[i] = super().run_many([requests[i]])[0]
                continue
            start = 0
            for i, x in members:
                outcomes[i] = {self.out_short: y[start:start + len(x)]}
                start += len(x)
        return outcomes  # type: ignore[return-value]

    def close(self):
        self.session = None


class Encoder(OnnxStage):
    name = "encoder"


class Decoder(OnnxStage):
    name = "decoder"


class Detector(OnnxStage):
    name = "detector"


class SsdDetector(Stage):
    """The ``detector`` stage of an ``ssd`` repository: SSD-MobileNetV2 on OpenCV's DNN module.

    Reads ``model.pb`` + ``model.pbtxt``; takes the letterboxed ``images`` float32
    ``[B, 3, S_h, S_w]`` in [0, 1] (a dynamic batch) and returns ``output`` float32
    ``[B, N, 7]``: per image its rows of OpenCV's ``DetectionOutput``, with image id 0,
    padded to the batch's longest with all-zero rows (class 0, score 0: no person).
    """

    name = "detector"

    def __init__(self, version_dir, params=None):
        super().__init__(version_dir, params)
        from anoncodec.detectors.ssd import SsdModelFiles, load_ssd_net

        files = SsdModelFiles(*(_file(self.version_dir, f, self.name) for f in SSD_DETECTOR_FILES))
        self.net = load_ssd_net(files, threads=_int(self.params, "intra_op_threads", 0) or None)

    def run(self, inputs):
        from anoncodec.detectors.ssd import ssd_blob

        x = np.asarray(inputs["images"])
        if x.dtype != np.float32 or x.ndim != 4 or x.shape[0] < 1 or x.shape[1] != 3 or min(x.shape[2:]) < 1:
            raise stages.InvalidRequestError(f"{tensor_name(self.name, 'images')} must be float32 [B, 3, H, W], "
                                             f"got {x.dtype.name} {list(x.shape)}")
        self.net.setInput(ssd_blob(x))
        rows = np.asarray(self.net.forward(), np.float32).reshape(-1, 7)
        ids = np.rint(rows[:, 0])
        per_image = [rows[ids == b] for b in range(x.shape[0])]
        out = np.zeros((x.shape[0], max(1, *(len(r) for r in per_image)), 7), np.float32)
        for b, found in enumerate(per_image):
            out[b, : len(found)] = found
            out[b, : len(found), 0] = 0  # each image's rows are image 0 of its own request
        return {"output": out}

    def close(self):
        self.net = None


STAGES: dict[str, type[Stage]] = {
    cls.name: cls
    for cls in (FramePreprocess, Encoder, Quantize, EntropyDecode, SequenceDecode, Decoder,
                DecoderPostprocess, Detector, DetectorPostprocess)
}


def load_stage(name: str, version_dir: str | Path, params: Mapping[str, str] | None = None) -> Stage:
    """Build the stage ``name`` from its version folder and config parameters."""
    if name not in STAGES:
        raise ExportError(f"unknown stage {name!r}; expected one of {sorted(STAGES)}")
    if name == "detector" and _detector_kind(params or {}) == "ssd":
        return SsdDetector(version_dir, params)
    return STAGES[name](version_dir, params)
