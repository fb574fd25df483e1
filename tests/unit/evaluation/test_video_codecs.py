"""anoncodec.evaluation.video_codecs: real ffmpeg round trips of a tiny clip, the errors,
and the CenterFace + blur pre-step."""

from __future__ import annotations

import numpy as np
import pytest

from anoncodec.errors import ConfigError, ExternalToolError, MissingDependencyError
from anoncodec.evaluation import baselines, video_codecs
from anoncodec.evaluation.video_codecs import (
    CODECS,
    VideoCodec,
    VideoCodecSettings,
    blur_faces,
    encode_decode,
)


@pytest.fixture(scope="module")
def ffmpeg() -> str:
    pytest.importorskip("imageio_ffmpeg")
    try:
        return video_codecs.ffmpeg_exe()
    except MissingDependencyError as exc:
        pytest.skip(f"no ffmpeg binary: {exc}")


def moving_square(frames: int = 8, h: int = 48, w: int = 64) -> list[np.ndarray]:
    """A grey clip with a red square moving 5 px to the right per frame."""
    clip = []
    for t in range(frames):
        f = np.full((h, w, 3), 60, np.uint8)
        f[10:26, 4 + 5 * t:20 + 5 * t] = (200, 80, 40)
        clip.append(f)
    return clip


def psnr(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    mse = np.mean([(x.astype(np.float64) - y) ** 2 for x, y in zip(a, b)])
    return float(10 * np.log10(255**2 / mse))


@pytest.mark.parametrize("codec, crf", [("h264", 28), ("h265", 28), ("av1", 40)])
def test_round_trip_keeps_frames_and_counts_every_byte(ffmpeg, codec, crf):
    clip = moving_square()
    coded = encode_decode(clip, 10.0, VideoCodecSettings(codec, crf))
    assert len(coded.frames) == len(clip) == len(coded.frame_bytes)
    assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in coded.frames)
    assert all(b > 0 for b in coded.frame_bytes) and coded.header_bytes > 0
    assert coded.total_bytes == coded.header_bytes + sum(coded.frame_bytes)
    assert coded.kbit_s == pytest.approx(coded.total_bytes * 8 * 10 / 8 / 1000)
    assert psnr(clip, coded.frames) > 30
    # the keyframe is the largest packet (display order puts it first)
    assert coded.frame_bytes[0] == max(coded.frame_bytes)


def test_higher_crf_gives_fewer_bytes_and_lower_psnr(ffmpeg):
    clip = moving_square()
    fine = encode_decode(clip, 10.0, VideoCodecSettings("h264", 15))
    coarse = encode_decode(clip, 10.0, VideoCodecSettings("h264", 45))
    assert coarse.total_bytes < fine.total_bytes
    assert psnr(clip, coarse.frames) < psnr(clip, fine.frames)


def test_info_sei_is_left_out_unless_asked(ffmpeg):
    clip = moving_square(4)
    stripped = encode_decode(clip, 10.0, VideoCodecSettings("h264", 28))
    full = encode_decode(clip, 10.0, VideoCodecSettings("h264", 28, strip_info=False))
    assert full.total_bytes - stripped.total_bytes > 300  # x264's options string
    assert all(np.array_equal(a, b) for a, b in zip(stripped.frames, full.frames))


def test_odd_sizes_come_back_as_they_went_in(ffmpeg):
    clip = moving_square(3, 47, 63)
    coded = encode_decode(clip, 5.0, VideoCodecSettings("h264", 20, preset="ultrafast",
                                                        keyint=1))
    assert [f.shape for f in coded.frames] == [(47, 63, 3)] * 3
    assert psnr(clip, coded.frames) > 30


@pytest.mark.parametrize("kwargs", [
    {"codec": "vp9"}, {"codec": "h264", "crf": 52}, {"codec": "av1", "crf": 0},
    {"codec": "h264", "crf": 28.5}, {"codec": "h264", "preset": "8"},
    {"codec": "av1", "preset": "medium"}, {"codec": "h264", "keyint": 0},
])
def test_bad_settings_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        VideoCodecSettings(**kwargs)


def test_unknown_codec_names_the_valid_ones():
    with pytest.raises(ConfigError, match="h264"):
        VideoCodecSettings("mpeg2")


def test_bad_frames_are_config_errors():
    with pytest.raises(ConfigError, match="no frames"):
        encode_decode([], 10.0)
    with pytest.raises(ConfigError, match="frame 1"):
        encode_decode([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 10, 3), np.uint8)], 10.0)
    with pytest.raises(ConfigError, match="fps"):
        encode_decode(moving_square(2), 0.0)


def test_ffmpeg_failure_quotes_its_stderr(ffmpeg, monkeypatch):
    monkeypatch.setitem(CODECS, "bogus", VideoCodec("bogus", "libbogus", "bogus", (0, 51),
                                                    ("medium",), "medium"))
    with pytest.raises(ExternalToolError, match="libbogus.*failed.*exit"):
        encode_decode(moving_square(2), 10.0, VideoCodecSettings("bogus", 28))


def test_missing_ffmpeg_is_a_missing_dependency(monkeypatch):
    monkeypatch.setattr(video_codecs, "ffmpeg_exe", lambda: "/nonexistent/ffmpeg")
    with pytest.raises(MissingDependencyError, match="imageio-ffmpeg"):
        encode_decode(moving_square(2), 10.0)
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    monkeypatch.undo()

    def no_binary():
        raise RuntimeError("No ffmpeg exe could be found")

    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", no_binary)
    with pytest.raises(MissingDependencyError, match="IMAGEIO_FFMPEG_EXE"):
        video_codecs.ffmpeg_exe()


class _OneFace:
    """A face detector that finds one fixed face and records the thresholds it gets."""

    def __init__(self):
        self.thresholds = []

    def detect(self, frame_rgb, threshold):
        self.thresholds.append(threshold)
        return np.asarray([[20, 10, 36, 30, 0.9]], np.float32)


def test_blur_faces_is_the_image_baselines_blur_on_every_frame():
    rng = np.random.default_rng(0)
    clip = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(3)]
    copies = [f.copy() for f in clip]
    detector = _OneFace()
    out = blur_faces(clip, detector)
    assert detector.thresholds == [0.2] * 3
    box = baselines.scale_boxes(np.asarray([[20, 10, 36, 30, 0.9]], np.float32))
    for f, o, c in zip(clip, out, copies):
        assert np.array_equal(f, c)  # inputs untouched
        assert np.array_equal(o, baselines.blur_regions(f, box))
        assert not np.array_equal(o[12:28, 22:34], f[12:28, 22:34])
        assert np.array_equal(o[:, 45:], f[:, 45:])
