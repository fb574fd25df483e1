"""ONNX Runtime int8 static quantization of the served person detector (``anoncodec export --int8``).

May import numpy, onnx, onnxruntime and :mod:`anoncodec.detectors`; never torch.

The detector is quantized (QDQ, per-channel int8 weights, uint8 activations calibrated
with min/max on real frames, 7-bit weight range); its *decode tail* stays float: the
nodes after the last heavy convolution (box distribution, class scores, the concat of
boxes in pixels with scores in [0, 1]). Quantizing that tail gives one scale to pixel
coordinates and scores alike and rounds every score to 0 (measured: 0 of 100 persons
found). The 7-bit range (``reduce_range``) is for CPUs without VNNI, where ONNX Runtime's
uint8 x int8 products can saturate: with the full range the int8 model found 67 of the
fp32 model's 94 persons on the bundled clip, with 7 bits 88. :func:`check_agreement` then
compares the int8 detector with the fp32 one on
frames it was not calibrated on; ``export`` refuses a model below
:data:`MIN_AGREEMENT`.

Measured on this project's 2-core AMD EPYC (AVX2, no VNNI), one thread: the fall-detection
YOLOv8s at 640x640 runs 2.1x faster and, calibrated on 32 frames of the bundled clip,
finds 88 of the fp32 model's 94 persons on 16 others. The codec's decoder is *not*
quantized: it is mostly ConvTranspose, and int8 made it 6 % slower at 48 dB from fp32 (so it
would not pay; rewriting its transposed convolutions as sub-pixel convolutions, exact to
1e-5, gained 5 %, not kept either).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anoncodec.errors import ExportError, require

__all__ = ["MIN_AGREEMENT", "decode_tail", "quantize_detector", "DetectorAgreement", "check_agreement",
           "calibration_frames"]

logger = logging.getLogger(__name__)

#: least share of the fp32 detector's persons the int8 one must find again (IoU >= 0.5)
MIN_AGREEMENT = 0.9
#: a convolution with more weights than this counts as heavy (the YOLO distribution-focal
#: conv has 16, a two-class score conv 256; backbone and neck convs have thousands)
HEAVY_CONV_WEIGHTS = 256


def decode_tail(model) -> list[str]:
    """Names of the nodes of ``model`` (an ``onnx.ModelProto``) that feed no heavy convolution
    and are none: the decode tail that must stay float."""
    from onnx import numpy_helper

    initializers = {i.name: i for i in model.graph.initializer}
    nodes = list(model.graph.node)
    producer = {out: node for node in nodes for out in node.output}

    def heavy(node) -> bool:
        weight = initializers.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
        return weight is not None and numpy_helper.to_array(weight).size > HEAVY_CONV_WEIGHTS

    feeding: set[str] = set()
    stack = [n for n in nodes if heavy(n)]
    while stack:
        for name in stack.pop().input:
            node = producer.get(name)
            if node is not None and node.name not in feeding:
                feeding.add(node.name)
                stack.append(node)
    if not any(heavy(n) for n in nodes):
        raise ExportError("the detector has no convolution with more than "
                          f"{HEAVY_CONV_WEIGHTS} weights: nothing worth quantizing")
    return [n.name for n in nodes if n.name not in feeding and not heavy(n)]


def _name_nodes(model) -> None:
    """Give unnamed nodes names (the quantizer's exclusion list goes by name)."""
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"


def quantize_detector(source: str | Path, dest: str | Path, calibration: Sequence[np.ndarray]) -> Path:
    """Write an int8 (QDQ) copy of the ONNX detector ``source`` to ``dest``.

    Args:
        source: fp32 ONNX detector with one image input.
        dest: where the quantized model goes.
        calibration: detector inputs ``[1, 3, S_h, S_w]`` float32 (letterboxed frames),
            at least 4; more calibrate better (measured: 16 frames 90 % agreement, 32 94 %).

    Raises:
        ExportError: too few calibration inputs, or ONNX Runtime cannot quantize the model.
    """
    onnx = require("onnx", "export")
    quantization = require("onnxruntime.quantization", "export")
    if len(calibration) < 4:
        raise ExportError(f"int8 calibration needs at least 4 frames, got {len(calibration)}")
    dest = Path(dest).resolve()
    source = Path(source).resolve()
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="anoncodec-int8-") as tmp:
        os.chdir(tmp)  # ONNX Runtime's shape inference and calibration leave scratch files in the cwd
        try:
            return _quantize(onnx, quantization, source, dest, calibration, Path(tmp))
        finally:
            os.chdir(here)


def _quantize(onnx, quantization, source: Path, dest: Path, calibration: Sequence[np.ndarray], tmp: Path) -> Path:
    """:func:`quantize_detector`'s work, in the scratch folder ``tmp``."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    named = tmp / "named.onnx"
    model = onnx.load(str(source))
    _name_nodes(model)
    onnx.save(model, str(named))
    prepared = tmp / "prepared.onnx"
    try:
        quant_pre_process(str(named), str(prepared))
    except Exception as exc:  # noqa: BLE001 - pre-processing is an optimization only
        logger.warning("int8: ONNX Runtime's pre-processing failed (%s); quantizing the model as is", exc)
        prepared = named
    input_name = model.graph.input[0].name
    batches = iter([np.ascontiguousarray(x, np.float32) for x in calibration])

    class Reader(quantization.CalibrationDataReader):
        def get_next(self):
            x = next(batches, None)
            return None if x is None else {input_name: x}

    try:
        quantization.quantize_static(
            str(prepared), str(dest), Reader(), quant_format=quantization.QuantFormat.QDQ, per_channel=True,
            activation_type=quantization.QuantType.QUInt8, weight_type=quantization.QuantType.QInt8,
            nodes_to_exclude=decode_tail(onnx.load(str(prepared))), reduce_range=True)
    except Exception as exc:  # noqa: BLE001 - report any quantizer failure as an export error
        raise ExportError(f"ONNX Runtime could not quantize {source}: {exc}") from exc
    return dest


@dataclass(frozen=True)
class DetectorAgreement:
    """How the int8 detector's persons compare with the fp32 one's, over some frames.

    Attributes:
        frames: frames compared.
        reference: persons the fp32 detector found.
        detections: persons the int8 detector found.
        matched: fp32 persons the int8 detector found too (IoU >= 0.5, one to one).
    """

    frames: int
    reference: int
    detections: int
    matched: int

    @property
    def recall(self) -> float:
        """Share of the fp32 persons found again (1.0 when there were none)."""
        return self.matched / self.reference if self.reference else 1.0

    def to_dict(self) -> dict:
        return {"frames": self.frames, "reference": self.reference, "detections": self.detections,
                "matched": self.matched, "recall": round(self.recall, 4)}


def check_agreement(fp32: str | Path, int8: str | Path, frames: Iterable[np.ndarray],
                    person_classes: Sequence[int], conf: float = 0.25, iou: float = 0.45) -> DetectorAgreement:
    """Run both YOLO-format detectors on ``frames`` (uint8 RGB) and match their persons."""
    from anoncodec.detectors.nms import match_boxes
    from anoncodec.detectors.person import YoloPersonDetector

    detectors = [YoloPersonDetector(p, person_classes, iou) for p in (fp32, int8)]
    count = reference = detections = matched = 0
    for frame in frames:
        found = [d.detect(frame, conf)[:, :4] for d in detectors]
        count += 1
        reference += len(found[0])
        detections += len(found[1])
        matched += int(match_boxes(found[0], found[1], 0.5).sum())
    return DetectorAgreement(count, reference, detections, matched)


def calibration_frames(source: str | Path, count: int, skip: int = 0) -> list[np.ndarray]:
    """``count`` frames spread over a video file or an image folder, uint8 RGB, after
    leaving out every other one from ``skip`` on (so two calls with ``skip`` 0 and 1 get
    disjoint frames for calibration and checking).

    Raises:
        ExportError: ``source`` holds no readable frame.
    """
    from anoncodec.frames import read_frames

    frames = [f for i, f in enumerate(read_frames(source)) if i % 2 == skip % 2]
    if not frames:
        raise ExportError(f"no frames to calibrate the int8 detector with in {source}")
    picks = np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int)
    return [frames[i] for i in dict.fromkeys(picks.tolist())]
