"""Identity leakage with the real dlib face-recognition model on a real face (messi5.jpg)."""

import math

import numpy as np
import pytest

from anoncodec.evaluation.baselines import blur_regions, fill_regions, jpeg_decode, jpeg_encode
from anoncodec.evaluation.leakage import identity_leakage, leakage_from_distances


def test_identical_images_leak_every_identity(detectors, messi, messi_face):
    stats = identity_leakage([messi], [messi.copy()], [messi_face], detectors.embedder)
    assert (stats.faces, stats.matched, stats.leakage) == (1, 1, 1.0)
    assert stats.mean_distance == pytest.approx(0.0, abs=1e-6)


def test_faces_default_to_dlibs_own_detections(detectors, messi):
    stats = identity_leakage([messi], [messi], embedder=detectors.embedder)
    assert stats.faces == 1 and stats.leakage == 1.0


def test_solid_filled_face_leaks_nothing(detectors, messi, messi_face):
    filled = fill_regions(messi, messi_face)
    stats = identity_leakage([messi], [filled], [messi_face], detectors.embedder)
    assert (stats.faces, stats.matched, stats.leakage) == (1, 0, 0.0)
    assert stats.mean_distance > 0.6


def test_mild_jpeg_keeps_identity_and_strong_blur_removes_it(detectors, messi, messi_face):
    jpeg = jpeg_decode(jpeg_encode(messi, 75))
    blurred = blur_regions(messi, messi_face, sigma_factor=0.5)
    stats = identity_leakage([messi, messi], [jpeg, blurred], [messi_face, messi_face], detectors.embedder)
    assert stats.faces == 2 and stats.distances[0] < 0.6 < stats.distances[1]
    assert stats.leakage == 0.5


def test_image_without_faces_counts_nothing(detectors):
    gray = np.full((120, 160, 3), 128, np.uint8)
    stats = identity_leakage([gray], [gray], embedder=detectors.embedder)
    assert stats.faces == 0 and math.isnan(stats.leakage) and math.isnan(stats.mean_distance)


def test_leakage_arithmetic_and_argument_checks(detectors, messi):
    stats = leakage_from_distances([0.1, 0.59, 0.6, 0.9])
    assert (stats.faces, stats.matched, stats.leakage) == (4, 2, 0.5)
    assert stats.mean_distance == pytest.approx(0.5475)
    assert stats.to_dict()["distances"] == [0.1, 0.59, 0.6, 0.9]
    with pytest.raises(ValueError):
        identity_leakage([messi], [], embedder=detectors.embedder)
    with pytest.raises(ValueError):
        identity_leakage([messi], [messi[:10]], embedder=detectors.embedder)
