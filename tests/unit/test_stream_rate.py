"""benchmarks/stream_rate.py: the real ffmpeg baselines round-trip a clip, and the matched
person-recall table picks the cheapest CRF that keeps as many persons as ours."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1].parent


def _module():
    spec = importlib.util.spec_from_file_location("stream_rate", REPO / "benchmarks" / "stream_rate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _clip(n: int = 6) -> list[np.ndarray]:
    yy, xx = np.mgrid[0:48, 0:64]
    base = np.stack([3 * xx, 4 * yy, 2 * (xx + yy)], axis=-1).astype(np.uint8)  # smooth: a video codec's case
    frames = []
    for i in range(n):
        f = base.copy()
        f[10:26, 4 + 6 * i: 20 + 6 * i] = 255
        frames.append(f)
    return frames


@pytest.mark.parametrize("codec", ["h264", "h265", "av1"])
def test_each_video_codec_round_trips_the_clip(codec):
    pytest.importorskip("imageio_ffmpeg", reason="imageio-ffmpeg (extra `eval`) is not installed")
    m = _module()
    frames = _clip()
    decoded, size = m.video_codec(frames, codec, 30 if codec != "av1" else 40, 10.0)
    assert len(decoded) == len(frames) and decoded[0].shape == frames[0].shape and size > 0
    from anoncodec.evaluation.metrics import psnr_outside

    assert np.mean([psnr_outside(d, f, m.NO_BOXES) for d, f in zip(decoded, frames)]) > 20


def test_higher_crf_costs_fewer_bytes():
    pytest.importorskip("imageio_ffmpeg", reason="imageio-ffmpeg (extra `eval`) is not installed")
    m = _module()
    frames = _clip()
    assert m.video_codec(frames, "h264", 40, 10.0)[1] < m.video_codec(frames, "h264", 20, 10.0)[1]


def test_matched_recall_picks_the_cheapest_crf_that_keeps_as_many_persons():
    m = _module()
    row = {"guard": True, "threshold": None, "psnr": 20.0, "persons": 10, "ratio_to_intra": 1.0}
    rows = [dict(row, method="intra", kbit_s=100.0, persons_kept=6),
            dict(row, method="stream", threshold=0.01, kbit_s=20.0, persons_kept=8),
            dict(row, method="blur-h264", crf=40, kbit_s=30.0, persons_kept=5),
            dict(row, method="blur-h264", crf=35, kbit_s=50.0, persons_kept=7),
            dict(row, method="blur-h264", crf=30, kbit_s=90.0, persons_kept=9)]
    text = m.markdown({"checkpoint": "mid", "frames": 3, "clip": "c.avi", "frame_size": [48, 64], "fps": 10.0,
                       "keyframe_interval": 50, "rows": rows})
    assert "| intra | 100 | 6 | CRF 35: 50 kbit/s (0.5x ours) |" in text
    assert "| stream 0.01 | 20 | 8 | CRF 30: 90 kbit/s (4.5x ours) |" in text


def test_bad_video_specs_are_refused():
    m = _module()
    with pytest.raises(SystemExit, match="CODEC:CRF"):
        m._video_specs(["vp9:30"])


def test_flicker_counts_change_only_where_the_original_stays_still():
    from anoncodec.evaluation.video_quality import flicker

    still = np.full((4, 4, 3), 100, np.uint8)
    original = [still, still.copy(), still.copy()]
    original[2][0, 0] = 200  # a pixel that moves in the original is left out
    decoded = [still, still + 10, still]  # +-10 everywhere
    measured = flicker(original, decoded)
    ours, own = measured.decoded, measured.original
    assert ours == pytest.approx(10.0, abs=0.01) and own == 0.0
