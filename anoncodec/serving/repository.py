"""The Triton model repository's layout and every ``config.pbtxt``, generated in one place.

Stdlib only. ``anoncodec export`` writes these files; ``model_repository/`` in the source
tree holds the output for the default options (a unit test keeps the two identical).

Stages (one Triton model each; ``*`` = ONNX model, the others are python-backend models)::

    anonymize_frame:   frame_preprocess -> encoder* -> quantize -> decoder*
                       -> decoder_postprocess -> detector* -> detector_postprocess
    analyze_bitstream: entropy_decode -> decoder* -> decoder_postprocess
                       -> detector* -> detector_postprocess
    analyze_stream:    sequence_decode (stateful: Triton's sequence batcher, one correlation
                       ID per camera) -> decoder* -> ... as analyze_bitstream

The three ONNX stages can run on three backends (``--backend``): ``python`` (ONNX Runtime
inside a python-backend model: the only one the pip ``tritonserver`` has), ``onnxruntime``
(``onnxruntime_onnx``) or ``tensorrt`` (``tensorrt_plan``, ``model.plan`` built with trtexec).
Their tensors keep the same names on every backend because the export renames the ONNX
graph inputs/outputs to them. The pure python stages are kept apart from the ONNX stages so
that an ONNX stage can be swapped for a GPU plan; python glue that runs back to back is
fused (crop + uint8 + letterbox in ``decoder_postprocess``), which leaves 7 hops per frame.

The detector's kind (``RepositoryOptions.detector_kind``) picks how ``detector`` and
``detector_postprocess`` read their tensors; the ensembles' tensors stay the same. ``yolo``:
an ONNX model ``[1,3,S_h,S_w] -> [1,4+K,A]`` on any backend. ``ssd``: a TF Object Detection
API graph (``model.pb`` + ``model.pbtxt``) run by OpenCV's DNN module in the python backend
whatever ``backend`` says (no ONNX file to give a native backend), ``[1,3,S_h,S_w] ->
[1,N,7]`` (``image_id, class_id, score, x1, y1, x2, y2``, corners normalized to the input).
The kind travels to both stages as the ``detector_kind`` parameter, written only when it is
not ``yolo`` (so that YOLO configs read as they always did).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from anoncodec.contract import (
    ANALYZE_BITSTREAM,
    ANALYZE_STREAM,
    ANONYMIZE_FRAME,
    FRAME,
    MAX_FRAME_HEIGHT,
    MAX_FRAME_WIDTH,
    PACKET,
    EnsembleSpec,
)
from anoncodec.contract import ENSEMBLES as CONTRACT_ENSEMBLES
from anoncodec.detectors.catalog import (
    DEFAULT_DETECTOR,
    DEFAULT_PERSON_CLASSES,
    DEFAULT_PERSON_CONF,
    DETECTOR_KINDS,
    DETECTORS,
)

__all__ = [
    "BACKENDS",
    "ONNX_STAGES",
    "PYTHON_STAGES",
    "SEQUENCE_STAGES",
    "BATCHED_STAGES",
    "ENSEMBLES",
    "RepositoryOptions",
    "tensor_name",
    "render_configs",
    "write_configs",
]

BACKENDS = ("python", "onnxruntime", "tensorrt")

# stage -> (inputs, outputs); each tensor: (short name, Triton type, dims). The tensor's
# name is "<stage>_<short name>" (see tensor_name).
Tensor = tuple[str, str, tuple[int, ...]]
_STAGES: dict[str, tuple[tuple[Tensor, ...], tuple[Tensor, ...]]] = {
    "frame_preprocess": ((("frame", "UINT8", (-1, -1, 3)),),
                         (("x", "FP32", (1, 3, -1, -1)), ("size", "INT64", (2,)))),
    "encoder": ((("x", "FP32", (1, 3, -1, -1)),), (("y", "FP32", (1, -1, -1, -1)),)),
    "quantize": ((("y", "FP32", (1, -1, -1, -1)),),
                 (("y_hat", "FP32", (1, -1, -1, -1)), ("bits", "INT64", (1,)))),
    "entropy_decode": ((("packet", "BYTES", (1,)),),
                       (("y_hat", "FP32", (1, -1, -1, -1)), ("size", "INT64", (2,)))),
    # the sequence batcher adds its control tensors (SEQUENCE_CONTROLS) to these
    "sequence_decode": ((("packet", "BYTES", (1,)),),
                        (("y_hat", "FP32", (1, -1, -1, -1)), ("size", "INT64", (2,)))),
    "decoder": ((("y_hat", "FP32", (1, -1, -1, -1)),), (("x_hat", "FP32", (1, 3, -1, -1)),)),
    "decoder_postprocess": ((("x_hat", "FP32", (1, 3, -1, -1)), ("size", "INT64", (2,))),
                            (("frame", "UINT8", (-1, -1, 3)), ("images", "FP32", (1, 3, 0, 0)),
                             ("letterbox", "FP64", (7,)))),
    "detector": ((("images", "FP32", (1, 3, 0, 0)),), (("output", "FP32", (1, -1, -1)),)),
    "detector_postprocess": ((("output", "FP32", (1, -1, -1)), ("letterbox", "FP64", (7,))),
                             (("boxes", "FP32", (-1, 4)), ("scores", "FP32", (-1,)))),
}
ONNX_STAGES = ("encoder", "decoder", "detector")
PYTHON_STAGES = tuple(s for s in _STAGES if s not in ONNX_STAGES)
# Stages that Triton's dynamic batcher may batch (when RepositoryOptions.max_batch > 0): the
# leading 1 of their tensors above becomes Triton's implicit batch dimension. Requests are
# batched only when their other dims agree (same frame size; the detector's letterbox always).
BATCHED_STAGES = ONNX_STAGES
# dims 0 above are placeholders for the detector's input size (filled in by render_configs)

# ensemble -> (inputs, outputs, steps); a step maps stage tensors (short names) to
# ensemble tensors; UPPER_CASE names are the public contract (anoncodec.contract).
_DETECT_STEPS = (
    ("decoder", {"y_hat": "y_hat"}, {"x_hat": "x_hat"}),
    ("decoder_postprocess", {"x_hat": "x_hat", "size": "size"},
     {"frame": "ANONYMIZED", "images": "images", "letterbox": "letterbox"}),
    ("detector", {"images": "images"}, {"output": "output"}),
    ("detector_postprocess", {"output": "output", "letterbox": "letterbox"},
     {"boxes": "BOXES", "scores": "SCORES"}),
)


def _contract_tensors(spec: EnsembleSpec, which: str) -> tuple[Tensor, ...]:
    return tuple((t.name, t.datatype, t.dims) for t in getattr(spec, which))


_STEPS = {
    ANONYMIZE_FRAME.name: (("frame_preprocess", {"frame": FRAME.name}, {"x": "x", "size": "size"}),
                           ("encoder", {"x": "x"}, {"y": "y"}),
                           ("quantize", {"y": "y"}, {"y_hat": "y_hat", "bits": "BITS"})) + _DETECT_STEPS,
    ANALYZE_BITSTREAM.name: (("entropy_decode", {"packet": PACKET.name}, {"y_hat": "y_hat", "size": "size"}),)
                            + _DETECT_STEPS,
    ANALYZE_STREAM.name: (("sequence_decode", {"packet": PACKET.name}, {"y_hat": "y_hat", "size": "size"}),)
                         + _DETECT_STEPS,
}
# stages under Triton's sequence batcher -> their control tensors (short name, Triton control kind)
SEQUENCE_STAGES = {"sequence_decode": (("start", "CONTROL_SEQUENCE_START"), ("end", "CONTROL_SEQUENCE_END"),
                                       ("corrid", "CONTROL_SEQUENCE_CORRID"))}
# the public tensors come from anoncodec.contract; only the steps between them live here
ENSEMBLES = {name: (_contract_tensors(spec, "inputs"), _contract_tensors(spec, "outputs"), _STEPS[name])
             for name, spec in CONTRACT_ENSEMBLES.items()}


def tensor_name(stage: str, short: str) -> str:
    """Name of a stage tensor in Triton and in the exported ONNX graph, e.g. ``encoder_x``."""
    return f"{stage}_{short}"


def stage_tensors(stage: str) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    """``(inputs, outputs)`` of ``stage`` with short names, types and dims."""
    return _STAGES[stage]


@dataclass(frozen=True)
class RepositoryOptions:
    """Everything the generated configs depend on (``anoncodec export`` flags).

    Args:
        backend: how the ONNX stages run: ``python`` (ONNX Runtime in the python backend,
            CPU), ``onnxruntime`` (``onnxruntime_onnx``) or ``tensorrt`` (``tensorrt_plan``).
        max_height: largest accepted frame height, pixels (frames and packets).
        max_width: largest accepted frame width, pixels.
        detector_height: the person detector's input height (letterbox size).
        detector_width: the person detector's input width.
        person_classes: detector class indices that count as a person.
        conf: minimum person score.
        iou: NMS IoU threshold.
        max_det: most boxes returned per frame.
        threads: ONNX Runtime intra-op threads of each python+ORT stage (0: ORT default).
        instances: model instances per stage (``instance_group.count``): more instances let
            Triton run several frames of one stage at once.
        max_batch: largest batch Triton's dynamic batcher forms for the batched stages
            (encoder, decoder, detector: ``max_batch_size``); 0 turns batching off. Their
            ONNX files must have a dynamic batch dimension (``anoncodec export`` checks).
        batch_delay_us: how long a request may wait in a batched stage's queue for others
            to join its batch (``max_queue_delay_microseconds``).
        max_cameras: sequences (cameras) ``analyze_stream`` serves at once: Triton's
            ``max_candidate_sequences`` and the states the stage keeps.
        sequence_idle_s: a camera's sequence unused this long is ended (Triton's
            ``max_sequence_idle_microseconds``, and the stage drops its state).
        detector_kind: the detector's output layout and runtime, one of
            :data:`~anoncodec.detectors.catalog.DETECTOR_KINDS` (``ssd``: OpenCV DNN in the
            python backend, see the module docstring).
    """

    backend: str = "python"
    max_height: int = MAX_FRAME_HEIGHT
    max_width: int = MAX_FRAME_WIDTH
    detector_height: int = DETECTORS[DEFAULT_DETECTOR].input_size[0]
    detector_width: int = DETECTORS[DEFAULT_DETECTOR].input_size[1]
    person_classes: tuple[int, ...] = DEFAULT_PERSON_CLASSES
    conf: float = DEFAULT_PERSON_CONF
    iou: float = 0.45
    max_det: int = 300
    threads: int = 0
    instances: int = 1
    max_batch: int = 4
    batch_delay_us: int = 2000
    max_cameras: int = 16
    sequence_idle_s: int = 60
    detector_kind: str = DETECTORS[DEFAULT_DETECTOR].kind

    def __post_init__(self) -> None:
        from anoncodec.errors import ConfigError

        if self.backend not in BACKENDS:
            raise ConfigError(f"backend={self.backend!r}; expected one of {BACKENDS}")
        if self.detector_kind not in DETECTOR_KINDS:
            raise ConfigError(f"detector_kind={self.detector_kind!r}; expected one of {DETECTOR_KINDS}")
        for name in ("max_height", "max_width", "detector_height", "detector_width", "max_det"):
            value = getattr(self, name)
            if not (isinstance(value, int) and 1 <= value <= 16384):
                raise ConfigError(f"{name}={value!r}; expected an integer in 1..16384")
        if not self.person_classes or min(self.person_classes) < 0:
            raise ConfigError(f"person_classes={self.person_classes!r}; expected class indices >= 0")
        if not (0 <= self.conf <= 1 and 0 <= self.iou <= 1):
            raise ConfigError(f"conf={self.conf}, iou={self.iou}; expected values in [0, 1]")
        if not (isinstance(self.threads, int) and self.threads >= 0):
            raise ConfigError(f"threads={self.threads!r}; expected an integer >= 0")
        if not (isinstance(self.instances, int) and 1 <= self.instances <= 64):
            raise ConfigError(f"instances={self.instances!r}; expected an integer in 1..64")
        if not (isinstance(self.max_batch, int) and 0 <= self.max_batch <= 256):
            raise ConfigError(f"max_batch={self.max_batch!r}; expected an integer in 0..256 (0: no batching)")
        if not (isinstance(self.batch_delay_us, int) and 0 <= self.batch_delay_us <= 10_000_000):
            raise ConfigError(f"batch_delay_us={self.batch_delay_us!r}; expected an integer in 0..10000000")
        if not (isinstance(self.max_cameras, int) and 1 <= self.max_cameras <= 4096):
            raise ConfigError(f"max_cameras={self.max_cameras!r}; expected an integer in 1..4096")
        if not (isinstance(self.sequence_idle_s, int) and 1 <= self.sequence_idle_s <= 86400):
            raise ConfigError(f"sequence_idle_s={self.sequence_idle_s!r}; expected whole seconds in 1..86400")

    def stage_backend(self, stage: str) -> str:
        """How ``stage`` runs: ``python`` (every python stage, the ONNX stages with
        ``backend="python"``, an ``ssd`` detector always), ``onnxruntime`` or ``tensorrt``."""
        if stage not in ONNX_STAGES or (stage == "detector" and self.detector_kind == "ssd"):
            return "python"
        return self.backend

    def batched(self, stage: str) -> bool:
        """Whether ``stage`` gets ``max_batch_size > 0`` and a dynamic batcher."""
        return self.max_batch > 0 and stage in BATCHED_STAGES

    def parameters(self, stage: str) -> dict[str, str]:
        """The ``parameters`` block of a stage's config (strings, read back by the stage)."""
        if stage == "frame_preprocess" or stage == "entropy_decode":
            return {"max_height": str(self.max_height), "max_width": str(self.max_width)}
        if stage == "sequence_decode":
            return {"max_height": str(self.max_height), "max_width": str(self.max_width),
                    "max_cameras": str(self.max_cameras), "idle_s": str(self.sequence_idle_s)}
        if stage == "decoder_postprocess":
            return {"letterbox_height": str(self.detector_height), "letterbox_width": str(self.detector_width)}
        kind = {"detector_kind": self.detector_kind} if self.detector_kind != "yolo" else {}
        if stage == "detector_postprocess":
            return {**kind, "conf": repr(float(self.conf)), "iou": repr(float(self.iou)),
                    "person_classes": ",".join(str(c) for c in self.person_classes),
                    "max_det": str(self.max_det)}
        if stage == "detector":
            return {**kind, "intra_op_threads": str(self.threads)} if self.stage_backend(stage) == "python" else {}
        if stage in ONNX_STAGES and self.backend == "python":
            return {"intra_op_threads": str(self.threads)}
        return {}


def _dims(dims: tuple[int, ...], options: RepositoryOptions) -> str:
    # 0 marks the detector's letterbox size (height, then width)
    fill = iter((options.detector_height, options.detector_width))
    return ", ".join(str(next(fill) if d == 0 else d) for d in dims)


# Triton's config calls the BYTES wire type TYPE_STRING
_CONFIG_TYPES = {"BYTES": "STRING"}


def _tensors(kind: str, tensors: tuple[Tensor, ...], options: RepositoryOptions, prefix: str = "",
             batched: bool = False) -> str:
    if batched:  # Triton adds the batch dimension itself
        tensors = tuple((short, dtype, dims[1:]) for short, dtype, dims in tensors)
    items = [
        f'  {{\n    name: "{prefix + short}"\n    data_type: TYPE_{_CONFIG_TYPES.get(dtype, dtype)}\n'
        f'    dims: [ {_dims(dims, options)} ]\n  }}'
        for short, dtype, dims in tensors
    ]
    return f"{kind} [\n" + ",\n".join(items) + "\n]\n"


def _parameters(params: dict[str, str]) -> str:
    return "".join(
        f'parameters {{\n  key: "{key}"\n  value: {{ string_value: "{value}" }}\n}}\n'
        for key, value in params.items()
    )


def _stage_config(stage: str, options: RepositoryOptions) -> str:
    inputs, outputs = _STAGES[stage]
    head = f'name: "{stage}"\n'
    backend = options.stage_backend(stage)
    if backend == "onnxruntime":
        head += 'platform: "onnxruntime_onnx"\ndefault_model_filename: "model.onnx"\n'
    elif backend == "tensorrt":
        head += 'platform: "tensorrt_plan"\ndefault_model_filename: "model.plan"\n'
    else:
        head += 'backend: "python"\n'
    batched = options.batched(stage)
    text = head + f"max_batch_size: {options.max_batch if batched else 0}\n"
    text += _tensors("input", inputs, options, f"{stage}_", batched)
    text += _tensors("output", outputs, options, f"{stage}_", batched)
    if batched:
        text += f"dynamic_batching {{\n  max_queue_delay_microseconds: {options.batch_delay_us}\n}}\n"
    if stage in SEQUENCE_STAGES:
        text += _sequence_batching(stage, options)
    # python stages (and ONNX Runtime inside python) run on the CPU; native backends on the GPU
    kind = "KIND_CPU" if backend == "python" else "KIND_GPU"
    if kind == "KIND_CPU" or options.instances > 1:
        text += f"instance_group [\n  {{\n    count: {options.instances}\n    kind: {kind}\n  }}\n]\n"
    return text + _parameters(options.parameters(stage))


def _sequence_batching(stage: str, options: RepositoryOptions) -> str:
    # "oldest" keeps up to max_cameras sequences as candidates and serves whichever has a
    # request (with "direct" each sequence would hold a batch slot of its own)
    controls = []
    for short, kind in SEQUENCE_STAGES[stage]:
        value = ("data_type: TYPE_UINT64" if kind == "CONTROL_SEQUENCE_CORRID"
                 else "int32_false_true: [ 0, 1 ]")
        controls.append(f'    {{\n      name: "{stage}_{short}"\n      control [\n        {{\n'
                        f'          kind: {kind}\n          {value}\n        }}\n      ]\n    }}')
    return (f"sequence_batching {{\n  max_sequence_idle_microseconds: {options.sequence_idle_s * 1_000_000}\n"
            f"  oldest {{\n    max_candidate_sequences: {options.max_cameras}\n"
            f"    max_queue_delay_microseconds: 0\n  }}\n"
            f"  control_input [\n" + ",\n".join(controls) + "\n  ]\n}\n")


def _ensemble_config(name: str, options: RepositoryOptions) -> str:
    inputs, outputs, steps = ENSEMBLES[name]
    text = f'name: "{name}"\nplatform: "ensemble"\nmax_batch_size: 0\n'
    text += _tensors("input", inputs, options) + _tensors("output", outputs, options)
    rendered = []
    for stage, in_map, out_map in steps:
        maps = "".join(f'      input_map {{\n        key: "{stage}_{k}"\n        value: "{v}"\n      }}\n'
                       for k, v in in_map.items())
        maps += "".join(f'      output_map {{\n        key: "{stage}_{k}"\n        value: "{v}"\n      }}\n'
                        for k, v in out_map.items())
        rendered.append(f'    {{\n      model_name: "{stage}"\n      model_version: -1\n{maps}    }}')
    return text + "ensemble_scheduling {\n  step [\n" + ",\n".join(rendered) + "\n  ]\n}\n"


def render_configs(options: RepositoryOptions = RepositoryOptions()) -> dict[str, str]:
    """``{model name: config.pbtxt text}`` for every stage and both ensembles."""
    header = "# Generated by `anoncodec export` (anoncodec/serving/repository.py); edit that, not this.\n"
    configs = {stage: header + _stage_config(stage, options) for stage in _STAGES}
    configs.update({name: header + _ensemble_config(name, options) for name in ENSEMBLES})
    return configs


def write_configs(repository: str | Path, options: RepositoryOptions = RepositoryOptions()) -> list[Path]:
    """Write every ``config.pbtxt`` (and the ``1/`` folders) into ``repository``."""
    written = []
    for name, text in render_configs(options).items():
        folder = Path(repository) / name
        (folder / "1").mkdir(parents=True, exist_ok=True)
        path = folder / "config.pbtxt"
        path.write_text(text)
        written.append(path)
    return written
