"""Test-split face parts for the held-out clip, and CenterFace heads as ground truth.

May import numpy, opencv, :mod:`anoncodec.frames`, :mod:`anoncodec.data` (composite parts,
holdout splits), :mod:`anoncodec.detectors` and :mod:`anoncodec.errors`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from anoncodec.frames import read_frames

__all__ = ["LABEL_THRESHOLD", "heads_of", "heldout_faces"]

logger = logging.getLogger(__name__)

# CenterFace score of the ground truth where paste() gives none (the corpus labeler's).
LABEL_THRESHOLD = 0.4


def load_image(path: str | Path) -> np.ndarray:
    """uint8 ``[H, W, 3]`` RGB of an image file.

    Raises:
        DatasetError: the file is missing or not an image.
    """
    return read_frames(path)[0]


def _test_file(path: str, corpus: str, identity: str, kind: str) -> Any:
    from anoncodec.data.corpus import CorpusFile

    scene = f"fake-avatars/{identity}" if corpus == "fake-avatars" else path
    return CorpusFile(path, corpus, "", "", identity, scene, kind, "")


def heads_of(rgb: np.ndarray, centerface: Any) -> np.ndarray:
    """CenterFace (>= :data:`LABEL_THRESHOLD`) faces grown to head boxes ``[K, 4]``."""
    from anoncodec.detectors import face_to_head_box

    faces = np.asarray(centerface.detect(rgb, LABEL_THRESHOLD), np.float32)
    if not faces.size:
        return np.zeros((0, 4), np.float32)
    return face_to_head_box(faces.reshape(-1, 5), image_hw=rgb.shape[:2])


def _portrait_part(path: Path, file: Any, centerface: Any) -> Any:
    """The head of an openpeople portrait as a face part (its largest face)."""
    import cv2

    from anoncodec.data.composite import parts_from_labels

    rgb = load_image(path)
    scale = min(1.0, 512 / max(rgb.shape[:2]))  # heads are pasted at most 160 px
    rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    heads = heads_of(rgb, centerface)
    if not len(heads):
        logger.warning("no face in %s: not used", path)
        return None
    head = heads[np.argmax((heads[:, 2] - heads[:, 0]) * (heads[:, 3] - heads[:, 1]))]
    faces, _ = parts_from_labels(rgb, {"heads": [head], "persons": []}, file)
    return faces[0] if faces else None


def heldout_faces(
    corpus: str | Path, centerface: Any, avatar_asset: str | Path
) -> tuple[list[Any], list[Any]]:
    """Every test-split face part available: ``(avatars, portraits)``.

    Args:
        corpus: the fetched corpora; their test-split faces are used when present.
        centerface: finds the head of each portrait.
        avatar_asset: fake-avatars 009 (committed under ``tests/assets``), always used.

    Raises:
        DatasetError: a face that is not in the test split (a wrong holdout).
    """
    from anoncodec.data.composite import avatar_part
    from anoncodec.data.holdout import split_of
    from anoncodec.errors import DatasetError

    corpus = Path(corpus)
    avatars = {}  # identity -> (path, file)
    pool = sorted((corpus / "fake-avatars").glob("*.png"))
    for path in pool:
        if path.stem.isdigit() and int(path.stem) % 10 == 9:
            ident = f"avatar-{int(path.stem):03d}"
            rel = f"fake-avatars/{path.name}"
            avatars[ident] = (path, _test_file(rel, "fake-avatars", ident, "face"))
    if "avatar-009" not in avatars:
        avatars["avatar-009"] = (
            Path(avatar_asset),
            _test_file("fake-avatars/009.png", "fake-avatars", "avatar-009", "face"),
        )
    portraits = []
    for ident in ("P009", "P010"):
        path = corpus / "openpeople" / ident / "studio_portrait.jpg"
        if path.is_file():
            rel = f"openpeople/{ident}/studio_portrait.jpg"
            portraits.append((path, _test_file(rel, "openpeople", ident, "portrait")))
    for _, file in [*avatars.values(), *portraits]:
        if split_of(file) != "test":
            raise DatasetError(f"{file.identity} is in the {split_of(file)} split")
    avatar_parts = [avatar_part(load_image(p), f) for p, f in avatars.values()]
    portrait_parts = [_portrait_part(p, f, centerface) for p, f in portraits]
    portrait_parts = [p for p in portrait_parts if p is not None]
    return avatar_parts, portrait_parts
