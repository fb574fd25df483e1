"""anoncodec.frames, the one frame reader: real images and videos written with OpenCV."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2", reason="opencv (extra `edge`) is not installed")

from anoncodec.errors import DatasetError  # noqa: E402
from anoncodec.frames import (  # noqa: E402
    IMAGE_SUFFIXES,
    ImageFolderSource,
    VideoFileSource,
    is_image_file,
    list_images,
    natural_key,
    open_source,
    read_frames,
)
from tests.conftest import flat_colour, write_flat_image, write_flat_video  # noqa: E402


def _colour_index(frame_rgb: np.ndarray, candidates: int) -> int:
    """Which ``flat_colour(i)`` a flat frame shows."""
    mean = frame_rgb.reshape(-1, 3).mean(0)
    return int(np.argmin([np.abs(mean - flat_colour(i)).sum() for i in range(candidates)]))


def test_folder_is_read_in_natural_order_with_every_image_suffix(tmp_path):
    # written in this order, so each file's colour says its position in this list
    names = ["frame10.png", "frame9.jpg", "frame1.PNG", "frame2.bmp", "frame100.tif", "frame20.webp"]
    folder = tmp_path / "clip"
    folder.mkdir()
    for i, name in enumerate(names):
        write_flat_image(folder / name, i)
    (folder / "frame3.txt").write_text("not an image")
    (folder / "frame4.png").mkdir()  # a folder named like an image is not one

    expected = ["frame1.PNG", "frame2.bmp", "frame9.jpg", "frame10.png", "frame20.webp", "frame100.tif"]
    assert [p.name for p in list_images(folder)] == expected
    source = open_source(folder)
    assert isinstance(source, ImageFolderSource) and source.length == 6
    frames = list(source)
    assert [f.index for f in frames] == list(range(6))
    assert [_colour_index(f.frame_rgb, 6) for f in frames] == [names.index(n) for n in expected]
    assert all(f.frame_rgb.shape == (20, 30, 3) and f.frame_rgb.dtype == np.uint8 for f in frames)


def test_natural_key_and_suffixes():
    assert sorted(["b10", "a2", "B1", "a10"], key=natural_key) == ["a2", "a10", "B1", "b10"]
    assert {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"} == set(IMAGE_SUFFIXES)


def test_stride_and_max_frames_on_a_folder(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(7):
        write_flat_image(folder / f"{i}.png", i)
    source = open_source(folder, stride=3)
    assert source.length == 3 and [p.name for p in source.chosen] == ["0.png", "3.png", "6.png"]
    frames = list(source)
    assert [f.index for f in frames] == [0, 3, 6]
    assert [_colour_index(f.frame_rgb, 7) for f in frames] == [0, 3, 6]
    capped = open_source(folder, stride=2, max_frames=2)
    assert capped.length == 2 and [f.index for f in capped] == [0, 2]


def test_video_frames_in_order_with_media_time(tmp_path):
    path = write_flat_video(tmp_path / "clip.avi", 6)
    with open_source(path) as source:
        assert isinstance(source, VideoFileSource) and source.length == 6 and source.native_fps == 10.0
        frames = list(source)
    assert [f.index for f in frames] == list(range(6))
    assert [f.timestamp for f in frames] == pytest.approx([i / 10 for i in range(6)])
    assert [_colour_index(f.frame_rgb, 6) for f in frames] == list(range(6))  # RGB, in order
    assert all(f.frame_rgb.shape == (32, 48, 3) and f.frame_rgb.flags.c_contiguous for f in frames)


def test_video_stride_keeps_source_indices_and_times(tmp_path):
    path = write_flat_video(tmp_path / "clip.avi", 10)
    with open_source(path, stride=4) as source:
        assert source.length == 3
        frames = list(source)
    assert [f.index for f in frames] == [0, 4, 8]
    assert [f.timestamp for f in frames] == pytest.approx([0.0, 0.4, 0.8])
    assert [_colour_index(f.frame_rgb, 10) for f in frames] == [0, 4, 8]
    with open_source(path, stride=3, max_frames=2) as source:
        assert source.length == 2 and [f.index for f in source] == [0, 3]


def test_read_frames_of_a_video_and_of_an_image(tmp_path):
    path = write_flat_video(tmp_path / "clip.avi", 5)
    frames = read_frames(path, max_frames=3)
    assert len(frames) == 3 and [_colour_index(f, 5) for f in frames] == [0, 1, 2]
    write_flat_image(tmp_path / "one.jpg", 4)
    assert is_image_file(tmp_path / "one.jpg") and not is_image_file(path)
    (image,) = read_frames(tmp_path / "one.jpg")
    assert image.shape == (20, 30, 3) and _colour_index(image, 5) == 4


@pytest.mark.parametrize("make, match", [
    (lambda tmp: tmp / "missing.avi", r"'.*missing\.avi' is neither an existing file"),
    (lambda tmp: tmp, r"holds no image \(suffixes \.jpg/"),
    (lambda tmp: (tmp / "junk.avi").write_bytes(b"not a video" * 50) and tmp / "junk.avi",
     r"cannot open .*junk\.avi; expected a video OpenCV can read"),
])
def test_bad_paths_raise_a_dataset_error_that_names_them(tmp_path, make, match):
    with pytest.raises(DatasetError, match=match):
        read_frames(make(tmp_path))


def test_list_images_and_bad_arguments(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        list_images(tmp_path / "nowhere")
    write_flat_image(tmp_path / "a.png", 0)
    for kwargs, word in (({"stride": 0}, "stride"), ({"max_frames": 0}, "max_frames"), ({"fps": 0}, "fps")):
        with pytest.raises(DatasetError, match=word):
            open_source(tmp_path, **kwargs)


def test_every_layer_reads_with_the_same_reader_and_it_needs_no_torch():
    code = ("import sys\nimport anoncodec.frames, anoncodec.edge.sources as e\n"
            "assert e.open_source is anoncodec.frames.open_source\n"
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
