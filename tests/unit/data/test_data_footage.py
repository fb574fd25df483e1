"""Footage auto-annotation: frame selection, head heuristics, the cache and its atomicity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anoncodec.config import DataSourceConfig
from anoncodec.data import heads_from_detections, load_footage, person_to_head_box
from anoncodec.errors import DatasetError

cv2 = pytest.importorskip("cv2")

FACE = [15, 8, 25, 18, 0.9]  # -> head [13.5, 3, 26.5, 18.5], center (20, 10.75)
PERSON_WITH_FACE = [10, 5, 30, 45, 0.8]  # top 30 %: y in [5, 17] -> holds the face head
PERSON_FROM_BEHIND = [40, 4, 60, 44, 0.7]  # no face -> head [47.6, 4, 52.4, 10]
EXPECTED_HEADS = [[13.5, 3, 26.5, 18.5], [47.6, 4, 52.4, 10]]


@pytest.fixture(autouse=True)
def _private_cache_home(tmp_path, monkeypatch):
    """No test may write into the real ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


class FakeDetector:
    def __init__(self, boxes, fail_on_call: int | None = None):
        self.boxes = np.asarray(boxes, np.float32).reshape(-1, 5)
        self.calls = 0
        self.fail_on_call = fail_on_call
        self.shapes: list[tuple[int, ...]] = []

    def detect(self, frame_rgb, threshold):
        self.calls += 1
        self.shapes.append(frame_rgb.shape)
        if self.fail_on_call == self.calls:
            raise KeyboardInterrupt("simulated interruption")
        return self.boxes.copy()


def _video(path: Path, frames: int, fps: float = 5.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    assert writer.isOpened()
    for i in range(frames):
        frame = np.full((48, 64, 3), (i * 9) % 255, np.uint8)
        writer.write(frame)
    writer.release()
    return path


def test_person_to_head_box():
    np.testing.assert_allclose(
        person_to_head_box([PERSON_FROM_BEHIND]), [[47.6, 4, 52.4, 10]], atol=1e-5
    )
    # narrow person: width limited to the person width
    np.testing.assert_allclose(
        person_to_head_box([[0, 0, 2, 100]]), [[0, 0, 2, 15]], atol=1e-5
    )


def test_heads_from_detections():
    heads = heads_from_detections(
        [FACE], [PERSON_WITH_FACE, PERSON_FROM_BEHIND], (48, 64)
    )
    np.testing.assert_allclose(heads, EXPECTED_HEADS, atol=1e-4)
    assert heads_from_detections(
        np.zeros((0, 5)), np.zeros((0, 5)), (48, 64)
    ).shape == (0, 4)
    lying = [[5, 30, 60, 45, 0.6]]  # wider than tall: no head guessed
    assert heads_from_detections(np.zeros((0, 5)), lying, (48, 64)).shape == (0, 4)


def test_video_stride_max_frames_groups_and_cache(tmp_path):
    video = _video(tmp_path / "walk.avi", frames=25, fps=5.0)
    src = DataSourceConfig(
        kind="footage", path=str(video), frame_stride=3, max_frames=5
    )
    faces, persons = (
        FakeDetector([FACE]),
        FakeDetector([PERSON_WITH_FACE, PERSON_FROM_BEHIND]),
    )
    cache = tmp_path / "cache"
    items = load_footage(src, cache, faces, persons, progress=False)

    assert [it.order for it in items] == [0, 3, 6, 9, 12]
    assert faces.calls == persons.calls == 5
    assert faces.shapes[0] == (48, 64, 3)
    # fps 5 -> blocks of 2 s = 10 frames
    assert [it.group for it in items] == ["walk.avi:t00000"] * 4 + ["walk.avi:t00001"]
    assert {it.sequence for it in items} == {"walk.avi"}
    assert items[1].id == "walk.avi:000003"
    for it in items:
        assert Path(it.path).is_file() and it.path.endswith(".png")
        assert Path(it.path).parent.parent == cache
        np.testing.assert_allclose(it.heads_xyxy, EXPECTED_HEADS, atol=0.01)
        np.testing.assert_allclose(
            it.persons_xyxy, [PERSON_WITH_FACE[:4], PERSON_FROM_BEHIND[:4]]
        )
    png = np.asarray(Image.open(items[2].path))
    assert (
        png.shape == (48, 64, 3) and abs(int(png.mean()) - 54) <= 3
    )  # frame 6: gray 54

    again = load_footage(src, cache, faces, persons, progress=False)
    assert faces.calls == persons.calls == 5  # served from the cache
    assert [(a.id, a.path, a.group, a.order) for a in again] == [
        (b.id, b.path, b.group, b.order) for b in items
    ]
    for a, b in zip(again, items, strict=True):
        np.testing.assert_array_equal(a.heads_xyxy, b.heads_xyxy)

    other = DataSourceConfig(
        kind="footage", path=str(video), frame_stride=3, max_frames=4
    )
    assert len(load_footage(other, cache, faces, persons, progress=False)) == 4
    assert faces.calls == 9  # a different key annotates again


def test_default_cache_dir_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    video = _video(tmp_path / "clip.avi", frames=4)
    src = DataSourceConfig(kind="footage", path=str(video))
    faces, persons = FakeDetector([]), FakeDetector([PERSON_FROM_BEHIND])
    items = load_footage(
        src, face_detector=faces, person_detector=persons, progress=False
    )
    assert len(items) == 4
    assert Path(items[0].path).is_relative_to(
        tmp_path / "xdg" / "anoncodec" / "footage"
    )
    np.testing.assert_allclose(items[0].heads_xyxy, [EXPECTED_HEADS[1]], atol=0.01)


def test_interrupted_run_leaves_no_cache(tmp_path):
    video = _video(tmp_path / "clip.avi", frames=6)
    src = DataSourceConfig(kind="footage", path=str(video))
    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        load_footage(
            src,
            cache,
            FakeDetector([FACE], fail_on_call=3),
            FakeDetector([]),
            progress=False,
        )
    assert list(cache.iterdir()) == []
    faces = FakeDetector([FACE])
    assert len(load_footage(src, cache, faces, FakeDetector([]), progress=False)) == 6
    assert faces.calls == 6


def test_image_folder_and_single_image(tmp_path):
    folder = tmp_path / "shots"
    folder.mkdir()
    for i, name in enumerate(["c.png", "a.jpg", "b.bmp", "d.JPEG"]):
        Image.new("RGB", (64, 48), (i * 40, 0, 0)).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    src = DataSourceConfig(kind="footage", path=str(folder), frame_stride=2)
    faces, persons = FakeDetector([FACE]), FakeDetector([])
    items = load_footage(src, tmp_path / "cache2", faces, persons, progress=False)
    assert [it.id for it in items] == ["a.jpg", "c.png"]
    assert [it.group for it in items] == ["a.jpg", "c.png"]
    assert all(it.order == 0 and it.sequence == "" for it in items)
    assert items[0].path == str(folder / "a.jpg")  # images are used in place
    np.testing.assert_allclose(items[0].heads_xyxy, [EXPECTED_HEADS[0]], atol=0.01)

    single = DataSourceConfig(kind="footage", path=str(folder / "b.bmp"))
    items = load_footage(single, tmp_path / "cache2", faces, persons, progress=False)
    assert [it.id for it in items] == ["b.bmp"] and faces.calls == 3


def test_load_source_dispatches_footage(tmp_path, monkeypatch):
    import anoncodec.data.sources as sources

    seen = {}
    monkeypatch.setattr(
        sources, "load_footage", lambda src, cache_dir: seen.update(c=cache_dir) or []
    )
    src = DataSourceConfig(kind="footage", path=str(tmp_path))
    assert (
        sources.load_source(src, cache_dir=tmp_path / "c") == []
        and seen["c"] == tmp_path / "c"
    )


def test_bad_sources(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_footage(
            DataSourceConfig(kind="footage", path=str(tmp_path / "missing.avi")),
            tmp_path,
            FakeDetector([]),
            FakeDetector([]),
        )
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no"):
        load_footage(
            DataSourceConfig(kind="footage", path=str(tmp_path / "empty")),
            tmp_path,
            FakeDetector([]),
            FakeDetector([]),
        )
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"not a video at all")
    with pytest.raises(DatasetError):
        load_footage(
            DataSourceConfig(kind="footage", path=str(broken)),
            tmp_path / "c",
            FakeDetector([]),
            FakeDetector([]),
        )


def test_footage_folder_uses_the_reader_order_and_suffixes(tmp_path):
    """The same natural order and image suffixes as anoncodec.frames (f2 before f10, .webp)."""
    folder = tmp_path / "shots"
    folder.mkdir()
    for name in ("f10.png", "f2.webp", "f1.jpg"):
        Image.new("RGB", (64, 48), (90, 90, 90)).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    items = load_footage(
        DataSourceConfig(kind="footage", path=str(folder)),
        tmp_path / "cache",
        FakeDetector([FACE]),
        FakeDetector([]),
    )
    assert [it.id for it in items] == ["f1.jpg", "f2.webp", "f10.png"]
