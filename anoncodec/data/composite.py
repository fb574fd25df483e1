"""Composite training scenes: faces and persons pasted into backgrounds, boxes known exactly.

May import numpy, opencv, tqdm, :mod:`anoncodec.frames` and the other :mod:`anoncodec.data`
modules; the detectors only lazily, to label the corpus once. One scene is made by
:mod:`anoncodec.data.composite_scene`. ``python -m anoncodec.data.composite --corpus
data/corpora --out data/composites`` (``make composites``) writes::

    <out>/labels.json              # see anoncodec.data.labeled; one record per image
    <out>/train/000000.png ...     # composites and rescaled real shots, per split
    <out>/val/..., <out>/test/...

Parts (from one split only, see :mod:`anoncodec.data.holdout`):

- *faces*: fake-avatars crops (aligned, so the head box is fixed geometry) and the heads
  CenterFace finds in openpeople portraits, selfies and sheets, pasted with a feathered
  elliptical mask;
- *persons*: the persons the detector finds in openpeople full-body shots and turn-around
  sheets (front, side and back views), pasted with a feathered rectangle, each with its
  head box (a face's head, else the top of the person box: heads seen from behind count);
- *backgrounds*: the vtest scene with its walkers removed (per-pixel median of frames),
  the sample photos and openpeople's outdoor shots, whose own persons and heads (auto
  labels) stay in the record.

Head heights are drawn log-uniformly from ``head_px`` (default 10-400 px); the scene is
then degraded as a camera would (blur, sensor noise, low light, JPEG). Boxes follow every
geometric step exactly; pasted parts clip to the frame. Real shots are also written,
rescaled, with their auto labels. The corpus labels (:mod:`anoncodec.data.corpus_labels`) are cached in
``<corpus>/labels.json`` (keyed by each file's sha256 and :data:`LABELER_VERSION`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from anoncodec.data._images import load_rgb
from anoncodec.data.composite_scene import (
    AVATAR_HEAD,
    Background,
    CompositeConfig,
    Part,
    avatar_part,
    compose_scene,
    degrade,
    label_boxes,
    parts_from_labels,
    paste,
)
from anoncodec.data.corpus import read_manifest
from anoncodec.data.corpus_labels import LABELER_VERSION, label_corpus
from anoncodec.data.holdout import SPLITS, HoldoutConfig, check_disjoint, split_files
from anoncodec.errors import DatasetError
from anoncodec.frames import VideoFileSource

__all__ = [
    "AVATAR_HEAD",
    "Background",
    "CompositeConfig",
    "LABELER_VERSION",
    "Part",
    "avatar_part",
    "label_corpus",
    "parts_from_labels",
    "paste",
    "degrade",
    "compose_scene",
    "build_composites",
    "main",
]

logger = logging.getLogger(__name__)

LABELS_VERSION = 1
_REAL_MAX_SIDE = 1024  # real shots are written at most this large


# -- the whole build --------------------------------------------------------------------
def _vtest_plate(path: Path, frames: int = 48) -> np.ndarray:
    """The vtest scene without walkers: per-pixel median of frames spread over the clip."""
    with VideoFileSource(path) as video:
        count = video.length or 0
        picks = set(np.linspace(0, max(0, count - 1), frames).astype(int).tolist())
        stack = [frame.frame_rgb for frame in video if frame.index in picks]
    if not stack:
        raise DatasetError(f"cannot read frames of {path}")
    return np.ascontiguousarray(np.median(np.stack(stack), axis=0).astype(np.uint8))


def _save_png(rgb: np.ndarray, dest: Path) -> None:
    import cv2

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp.png")
    if not cv2.imwrite(str(tmp), rgb[:, :, ::-1]):
        raise DatasetError(f"cannot write {dest}")
    os.replace(tmp, dest)


def _resize_max(rgb: np.ndarray, boxes: list[np.ndarray], max_side: int) -> tuple[np.ndarray, list[np.ndarray]]:
    import cv2

    h, w = rgb.shape[:2]
    s = min(1.0, max_side / max(h, w))
    if s >= 1:
        return rgb, boxes
    small = cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    return small, [b * s for b in boxes]


def build_composites(
    corpus: str | Path,
    out: str | Path,
    config: CompositeConfig = CompositeConfig(),
    holdout: HoldoutConfig = HoldoutConfig(),
    labeler: Callable[..., dict[str, dict[str, Any]]] = label_corpus,
) -> Path:
    """Write every split's composites and real shots plus ``labels.json``; returns its path.

    Raises:
        DatasetError: no manifest, a split without faces or backgrounds, or an identity
            or scene in two splits.
    """
    from tqdm.auto import tqdm

    corpus, out = Path(corpus), Path(out)
    files = read_manifest(corpus)
    by_split = split_files(files, holdout)
    labels = labeler(corpus, files)
    records: list[dict[str, Any]] = []
    keys: dict[str, list[tuple[str, str]]] = {s: [] for s in SPLITS}
    for split in SPLITS:
        faces: list[Part] = []
        persons: list[Part] = []
        backgrounds: list[Background] = []
        for f in by_split[split]:
            if f.kind == "face":
                faces.append(avatar_part(load_rgb(corpus / f.path), f))
                continue
            if f.kind == "video":
                if f.identity == "sample-vtest":
                    plate = _vtest_plate(corpus / f.path)
                    empty = np.zeros((0, 4), np.float32)
                    backgrounds.append(Background(plate, empty, empty, f.identity, f.scene))
                continue
            label = labels.get(f.path)
            if label is None:
                continue
            rgb = load_rgb(corpus / f.path)
            f_faces, f_persons = parts_from_labels(rgb, label, f)
            faces += f_faces
            persons += f_persons
            heads, people = label_boxes(label["heads"]), label_boxes(label["persons"])
            if f.corpus != "openpeople" or f.kind == "full-body":
                small, (sh, sp) = _resize_max(rgb, [heads, people], 1600)
                backgrounds.append(Background(small, sh, sp, f.identity, f.scene))
            if config.real_shots:
                small, (sh, sp) = _resize_max(rgb, [heads, people], _REAL_MAX_SIDE)
                name = f"{split}/real-{f.path.replace('/', '-').rsplit('.', 1)[0]}.png"
                _save_png(small, out / name)
                records.append({"id": name, "file": name, "split": split, "scene": f.scene,
                                "identities": [f.identity], "height": int(small.shape[0]),
                                "width": int(small.shape[1]), "heads": np.round(sh, 2).tolist(),
                                "persons": np.round(sp, 2).tolist(), "kind": "real"})
                keys[split].append((f.identity, f.scene))
        n = config.scenes.get(split, 0)
        if n and (not faces or not backgrounds):
            raise DatasetError(f"split {split}: {len(faces)} face parts and {len(backgrounds)} "
                               "backgrounds; composites need both (fetch the corpora again?)")
        rng = np.random.default_rng([config.seed, SPLITS.index(split)])
        for i in tqdm(range(n), desc=f"composites {split}", unit="scene", disable=None):
            bg = backgrounds[int(rng.integers(len(backgrounds)))]
            scene = compose_scene(bg, faces, persons, config, rng)
            name = f"{split}/{i:06d}.png"
            _save_png(scene["rgb"], out / name)
            records.append({"id": name, "file": name, "split": split, "scene": bg.scene,
                            "identities": sorted({p[0] for p in scene["parts"]}),
                            "height": config.size[0], "width": config.size[1],
                            "heads": np.round(scene["heads"], 2).tolist(),
                            "persons": np.round(scene["persons"], 2).tolist(), "kind": "composite"})
            keys[split] += scene["parts"]
    check_disjoint(keys)
    dest = out / "labels.json"
    tmp = dest.with_name(".labels.json.tmp")
    tmp.write_text(json.dumps({"version": LABELS_VERSION, "images": records}))
    os.replace(tmp, dest)
    return dest


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m anoncodec.data.composite",
        description="Label the fetched corpora once, then write composite scenes (faces and "
                    "persons pasted into held-apart backgrounds, boxes known exactly) and the "
                    "real shots of every split, with labels.json.")
    parser.add_argument("--corpus", default="data/corpora", help="folder from make corpora")
    parser.add_argument("--out", default="data/composites", help="output folder (git-ignored)")
    parser.add_argument("--train", type=int, default=600, help="composites in the train split")
    parser.add_argument("--val", type=int, default=40, help="composites in the validation split")
    parser.add_argument("--test", type=int, default=60, help="composites in the test split")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    parser.add_argument("--no-real", action="store_true", help="write composites only")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = CompositeConfig(scenes={"train": args.train, "val": args.val, "test": args.test},
                             seed=args.seed, real_shots=not args.no_real)
    try:
        dest = build_composites(args.corpus, args.out, config)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(dest)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
