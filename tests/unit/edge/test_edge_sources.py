"""Frame sources: tiny videos and image folders written in tmp_path, and unreadable sources."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2", reason="opencv (extra `edge`) is not installed")

from anoncodec.edge.sources import (  # noqa: E402
    ImageFolderSource,
    LiveSource,
    VideoFileSource,
    open_source,
)
from anoncodec.errors import DatasetError  # noqa: E402
from tests.conftest import flat_colour, write_flat_image, write_flat_video  # noqa: E402


def _write_folder(folder, names):
    folder.mkdir()
    for i, name in enumerate(names):
        write_flat_image(folder / name, i)
    return folder


def test_video_file_yields_rgb_frames_in_order_with_media_time(tmp_path):
    path = write_flat_video(tmp_path / "clip.avi")
    with open_source(path) as source:
        assert isinstance(source, VideoFileSource) and source.length == 6 and source.native_fps == 10.0
        frames = list(source)
    assert [f.index for f in frames] == list(range(6))
    assert [f.timestamp for f in frames] == pytest.approx([i / 10 for i in range(6)])
    for i, f in enumerate(frames):
        assert f.frame_rgb.dtype == np.uint8 and f.frame_rgb.shape == (32, 48, 3)
        assert f.frame_rgb.flags.c_contiguous
        np.testing.assert_allclose(f.frame_rgb.reshape(-1, 3).mean(0), flat_colour(i), atol=6)  # RGB, not BGR


def test_max_frames_limits_frames_and_length(tmp_path):
    path = write_flat_video(tmp_path / "clip.avi")
    with open_source(str(path), max_frames=4) as source:
        assert source.length == 4
        assert [f.index for f in source] == [0, 1, 2, 3]
    folder = _write_folder(tmp_path / "imgs", ["a.png", "b.png", "c.png"])
    assert ImageFolderSource(folder, max_frames=2).length == 2
    assert ImageFolderSource(folder, max_frames=9).length == 3


def test_image_folder_is_sorted_naturally_and_skips_other_files(tmp_path):
    names = ["f10.png", "f2.jpg", "f1.png"]
    folder = _write_folder(tmp_path / "imgs", names)
    (folder / "notes.txt").write_text("not an image")
    source = open_source(folder)
    assert isinstance(source, ImageFolderSource) and source.length == 3
    assert [p.name for p in source.files] == ["f1.png", "f2.jpg", "f10.png"]
    frames = list(source)
    # f1 was written as colour 2, f2 as colour 1, f10 as colour 0
    for frame, colour in zip(frames, (flat_colour(2), flat_colour(1), flat_colour(0))):
        np.testing.assert_allclose(frame.frame_rgb.reshape(-1, 3).mean(0), colour, atol=6)
    assert [f.index for f in frames] == [0, 1, 2]


def test_single_image_is_a_one_frame_source(tmp_path):
    folder = _write_folder(tmp_path / "imgs", ["one.png"])
    frames = list(open_source(folder / "one.png"))
    assert len(frames) == 1 and frames[0].frame_rgb.shape == (20, 30, 3)


def test_fps_throttles_delivery(tmp_path):
    folder = _write_folder(tmp_path / "imgs", [f"{i}.png" for i in range(4)])
    start = time.monotonic()
    frames = list(open_source(folder, fps=20))
    elapsed = time.monotonic() - start
    assert elapsed >= 3 / 20 - 0.01  # frames due at 0, 50, 100, 150 ms
    assert frames[0].timestamp == 0.0 and frames[-1].timestamp >= 0.15 - 0.01


@pytest.mark.parametrize("make, match", [
    (lambda tmp: tmp / "missing.avi", "neither an existing file"),
    (lambda tmp: tmp, "holds no image"),
    (lambda tmp: (tmp / "junk.avi").write_bytes(b"not a video" * 50) and tmp / "junk.avi", "junk.avi"),
])
def test_unreadable_sources_raise_dataset_error(tmp_path, make, match):
    with pytest.raises(DatasetError, match=match):
        open_source(make(tmp_path))


def test_corrupt_image_in_a_folder_names_the_file(tmp_path):
    folder = _write_folder(tmp_path / "imgs", ["a.png"])
    (folder / "b.png").write_bytes(b"\x89PNG broken")
    frames = iter(open_source(folder))
    next(frames)
    with pytest.raises(DatasetError, match="b.png"):
        next(frames)


def test_unavailable_camera_and_stream_raise_dataset_error():
    with pytest.raises(DatasetError, match="camera 97"):
        open_source("97")
    with pytest.raises(DatasetError, match=r"rtsp://\*\*\*@127.0.0.1:9/none") as info:
        LiveSource("rtsp://user:secret@127.0.0.1:9/none")
    assert "secret" not in str(info.value)


def test_bad_arguments_raise_dataset_error(tmp_path):
    folder = _write_folder(tmp_path / "imgs", ["a.png"])
    with pytest.raises(DatasetError, match="max_frames"):
        open_source(folder, max_frames=0)
    with pytest.raises(DatasetError, match="fps"):
        open_source(folder, fps=0)


def test_edge_modules_do_not_load_torch():
    code = ("import sys\nimport anoncodec.edge.sources, anoncodec.edge.client, anoncodec.cli.camera\n"
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
