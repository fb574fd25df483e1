"""The benchmark core on real images with real detectors: known answers and caching."""

import json
import math

import numpy as np
import pytest

from anoncodec.data import AnnotatedImage
from anoncodec.evaluation import baselines
from anoncodec.evaluation.benchmark import Benchmark, DetectorSettings, evaluate_method, summarize
from anoncodec.evaluation.methods import callable_method, jpeg_method, original_method
from tests.conftest import SAMPLES


@pytest.fixture(scope="module")
def items(detectors):
    """messi5 with ground truth = its own detections (persons and CenterFace heads)."""
    from anoncodec.data import heads_from_detections
    from anoncodec.data._images import load_rgb

    path = SAMPLES / "messi5.jpg"
    frame = load_rgb(path)
    dets = detectors.detect(frame)
    heads = heads_from_detections(dets["centerface"], dets["persons"], frame.shape[:2])
    return [AnnotatedImage("messi5", str(path), dets["persons"][:, :4], heads, "messi5")]


def _fill_dlib_faces(embedder):
    def fn(frame):
        out = baselines.fill_regions(frame, embedder.detect(frame))
        return out, baselines.png_encode(out)

    return callable_method("fill-dlib", fn)


def test_identical_output_matches_the_original_row(tmp_path, detectors, items):
    bench = Benchmark(tmp_path, timing_repeats=1, timing_warmup=0, detectors=detectors, progress=False)
    identity = callable_method("identity", lambda f: (f.copy(), baselines.png_encode(f)))
    methods = [original_method(), identity, _fill_dlib_faces(detectors.embedder)]
    results = bench.run(items, methods)
    original, same, filled = (summarize(m, items, results[m.key], reference=results["original"]) for m in methods)
    assert same.person == original.person and same.face_mtcnn == original.face_mtcnn
    assert same.person["ap50"] > 0.9  # ground truth = the original's own detections
    assert original.leakage["leakage"] == 1.0 and same.leakage["leakage"] == 1.0
    assert original.psnr_out == math.inf and original.msssim_out == pytest.approx(1.0)
    assert filled.leakage["faces"] == 1 and filled.leakage["leakage"] == 0.0
    assert filled.face_mtcnn["ap50"] <= original.face_mtcnn["ap50"]
    assert original.found_again == same.found_again == {"mtcnn": 1.0, "centerface": 1.0}
    assert filled.found_again["mtcnn"] == 0.0  # the one face MTCNN finds is black now
    assert original.bpp == pytest.approx(8 * results["original"][0].num_bytes / (342 * 548))
    assert original.encode_ms > 0 and original.decode_ms > 0
    assert math.isnan(same.decode_ms) and same.encode_ms > 0  # callable: not separable


def test_results_are_cached_and_resumed(tmp_path, detectors, items):
    calls = []

    def counted(frame):
        calls.append(1)
        return frame, baselines.png_encode(frame)

    method = callable_method("counted", counted)
    first = evaluate_method(method, items, tmp_path, detectors=detectors, timing_repeats=0, progress=False)
    assert len(calls) == 1
    second = evaluate_method(method, items, tmp_path, detectors=detectors, timing_repeats=0, progress=False)
    assert len(calls) == 1 and json.dumps(second.to_dict()) == json.dumps(first.to_dict())  # NaN-safe
    # another rate point is another cache entry
    evaluate_method(jpeg_method(50), items, tmp_path, detectors=detectors, timing_repeats=0, progress=False)
    other = Benchmark(tmp_path, DetectorSettings(person_conf=0.5), detectors=detectors, timing_repeats=0,
                      progress=False)
    assert other.root != Benchmark(tmp_path, detectors=detectors).root  # settings change the key


def test_methods_must_keep_the_image_size(tmp_path, detectors, items):
    bad = callable_method("crop", lambda f: (f[:10], b"x"))
    with pytest.raises(ValueError, match="expected the input's shape"):
        evaluate_method(bad, items, tmp_path, detectors=detectors, timing_repeats=0, progress=False)


def test_the_person_instrument_is_fall_yolov8s_at_the_served_thresholds():
    """Evaluation keeps measuring persons with the detector every published result used."""
    from anoncodec.detectors.catalog import DETECTORS, EVALUATION_DETECTOR
    from anoncodec.serving.repository import RepositoryOptions

    served, ours = RepositoryOptions(), DetectorSettings()
    instrument = DETECTORS[EVALUATION_DETECTOR]
    assert EVALUATION_DETECTOR == "fall-yolov8s" and (ours.person_conf, ours.person_iou) == (served.conf, served.iou)
    assert ours.person_classes == instrument.person_classes == (0, 1)
    assert (ours.person_input, ours.person_input) == instrument.input_size


def test_grid_thumbnails_are_kept_for_chosen_images(tmp_path, detectors, items):
    bench = Benchmark(tmp_path, timing_repeats=0, grid_images=["messi5"], detectors=detectors, progress=False)
    method = jpeg_method(30)
    bench.run(items, [method])
    from anoncodec.data._images import load_rgb

    thumb = bench.grid_path(bench.image_dir(items[0], load_rgb(items[0].path)), method)
    assert thumb.is_file() and max(load_rgb(thumb).shape[:2]) == 320
    np.testing.assert_equal(load_rgb(thumb).shape[2], 3)
