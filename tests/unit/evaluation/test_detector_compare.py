"""Consensus reference boxes and recall by person size, on boxes made by hand."""

from __future__ import annotations

import numpy as np

from anoncodec.evaluation.detector_compare import consensus_boxes, recall_by_size, size_bucket


def test_consensus_keeps_boxes_two_detectors_agree_on():
    a = np.array([[0, 0, 10, 50], [100, 100, 150, 400]], np.float32)
    b = np.array([[1, 0, 11, 50, 0.9], [300, 0, 320, 60, 0.8]], np.float32)  # scores are ignored
    c = np.array([[102, 98, 150, 402]], np.float32)
    ref = consensus_boxes([a, b, c])
    assert ref.shape == (2, 4)
    np.testing.assert_allclose(ref[np.argsort(ref[:, 0])], [[0.5, 0, 10.5, 50], [101, 99, 150, 401]])
    assert len(consensus_boxes([a, b, c], min_votes=3)) == 0
    assert len(consensus_boxes([a, a[:0], c])) == 1  # a detector that found nothing votes for nothing


def test_recall_per_size_matches_each_detection_once():
    refs = [np.array([[0, 0, 10, 50], [0, 0, 10, 52], [100, 100, 150, 400]], np.float32), np.zeros((0, 4))]
    dets = [np.array([[0, 0, 10, 51]], np.float32), np.array([[5, 5, 9, 9]], np.float32)]
    r = recall_by_size(refs, dets)
    assert r.total == {"small (<100 px)": 2, "medium (100-300 px)": 0, "large (>=300 px)": 1}
    assert r.found == {"small (<100 px)": 1, "medium (100-300 px)": 0, "large (>=300 px)": 0}
    assert r.share() == 1 / 3 and r.share("small (<100 px)") == 0.5 and r.share("medium (100-300 px)") is None
    assert size_bucket(np.array([0, 0, 5, 300])) == "large (>=300 px)"
