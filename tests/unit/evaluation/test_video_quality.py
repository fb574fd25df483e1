"""anoncodec.evaluation.video_quality: flicker, persons kept and matched recall on
hand-made inputs with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from anoncodec.errors import ConfigError
from anoncodec.evaluation.heldout import PersonsKept
from anoncodec.evaluation.video_quality import (
    RatePoint,
    cheapest_at_recall,
    flicker,
    luma,
    persons_kept,
)


def grey(value: float, h: int = 4, w: int = 4) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def test_luma_of_grey_is_its_level():
    assert luma(grey(100)) == pytest.approx(np.full((4, 4), 100.0), abs=1e-3)


def test_flicker_counts_only_the_originals_static_pixels():
    original = [grey(100), grey(100), grey(100)]
    original[1][0, 0] = 200  # one pixel moves in both pairs: not static
    decoded = [grey(100), grey(106), grey(100)]  # the whole frame 1 is 6 levels up
    decoded[1][0, 0] = 0  # a huge change, but in a moving pixel
    f = flicker(original, decoded)
    assert f.static_share == pytest.approx(30 / 32)
    assert f.original == pytest.approx(0.0)
    assert f.decoded == pytest.approx(6.0, abs=1e-3)
    assert f.excess == pytest.approx(6.0, abs=1e-3)
    assert f.to_dict()["excess"] == pytest.approx(6.0, abs=1e-3)


def test_flicker_reports_the_originals_own_change():
    original = [grey(100), grey(102), grey(100)]  # 2 < 4 levels: static, flickering by 2
    f = flicker(original, original)
    assert f.static_share == 1.0
    assert f.original == pytest.approx(2.0, abs=1e-3) and f.decoded == f.original
    assert flicker(original, original, threshold=1.0).static_share == 0.0


def test_flicker_edge_cases():
    assert math.isnan(flicker([grey(1)], [grey(1)]).decoded)
    with pytest.raises(ConfigError, match="decoded frames"):
        flicker([grey(1), grey(1)], [grey(1)])
    with pytest.raises(ConfigError):
        flicker([grey(1), grey(1)], [grey(1), grey(1, 4, 5)])
    with pytest.raises(ConfigError):
        flicker([grey(1)], [grey(1)], threshold=0)


def test_persons_kept_per_frame_and_summed():
    person = [10, 10, 50, 110, 0.9]
    other = [200, 20, 240, 120, 0.8]
    reference = [np.asarray([person, other]), np.asarray([person]), np.zeros((0, 5))]
    candidates = [np.asarray([[12, 12, 52, 112, 0.7]]),  # the first one, IoU ~0.9
                  np.asarray([[60, 10, 100, 110, 0.9]]),  # beside it: IoU 0
                  np.asarray([person])]  # nothing to find again
    rows = persons_kept(reference, candidates)
    assert rows == [PersonsKept(2, 1), PersonsKept(1, 0), PersonsKept(0, 0)]
    total = sum(rows, PersonsKept())
    assert (total.original, total.kept) == (3, 1) and total.share == pytest.approx(1 / 3)
    with pytest.raises(ConfigError, match="same frames"):
        persons_kept(reference, candidates[:2])


LADDER = [RatePoint("h264:23", 400.0, 0.95), RatePoint("h264:28", 200.0, 0.90),
          RatePoint("h264:33", 100.0, 0.80), RatePoint("h264:38", 50.0, 0.60)]


def test_cheapest_point_at_or_above_the_target():
    match = cheapest_at_recall(LADDER, 0.85)
    assert match.point == LADDER[1] and "2/4" in match.reason
    assert cheapest_at_recall(LADDER, 0.80).point == LADDER[2]  # equal counts
    assert cheapest_at_recall(LADDER, 0.80 - 1e-12).point == LADDER[2]
    low = cheapest_at_recall(LADDER, 0.1)
    assert low.point == LADDER[3] and "cheaper one" in low.reason


def test_cheapest_prefers_the_higher_recall_at_equal_rate():
    points = [RatePoint("a", 10.0, 0.5), RatePoint("b", 10.0, 0.7)]
    assert cheapest_at_recall(points, 0.4).point.label == "b"


def test_no_point_reaches_the_target_says_why():
    match = cheapest_at_recall(LADDER, 0.99)
    assert match.point is None
    assert "0.950" in match.reason and "h264:23" in match.reason
    assert cheapest_at_recall([], 0.5).point is None
    nan = cheapest_at_recall(LADDER, float("nan"))
    assert nan.point is None and "undefined" in nan.reason
    undefined = cheapest_at_recall([RatePoint("x", 1.0, float("nan"))], 0.5)
    assert undefined.point is None and "defined" in undefined.reason
