"""Shared fixtures: tiny untrained codecs, sample paths, writable caches."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data" / "samples"

warnings.filterwarnings("ignore", message=".*torch.jit.script.*is deprecated.*")


@pytest.fixture(autouse=True)
def _writable_caches(tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.getbasetemp() / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setenv("MPLCONFIGDIR", str(cache / "mpl"))


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return SAMPLES


def tiny_codec(architecture: str = "factorized", seed: int = 0, extra_blocks: int = 0):
    """An untrained N=8 codec with up-to-date entropy tables."""
    import torch

    from anoncodec.codec import get_model
    from anoncodec.config import CodecConfig

    torch.manual_seed(seed)
    model = get_model(CodecConfig(architecture=architecture, N=8, M=12, extra_blocks=extra_blocks))
    model.eval()
    model.update(force=True)
    return model


def read_rgb(path) -> np.ndarray:
    """An image file as uint8 RGB ``[H, W, 3]`` (read with :mod:`anoncodec.frames`)."""
    from anoncodec.frames import read_frames

    return read_frames(path)[0]


def video_frame(path, index: int) -> np.ndarray:
    """Frame ``index`` of a video file as uint8 RGB ``[H, W, 3]``."""
    from anoncodec.frames import read_frames

    frames = read_frames(path, max_frames=index + 1)
    assert len(frames) == index + 1, f"cannot read frame {index} of {path}"
    return frames[index]


def flat_colour(i: int) -> tuple[int, int, int]:
    """A distinct RGB colour per index that survives JPEG and MJPG (test media)."""
    return (20 * i % 256, 255 - 25 * i % 256, 90)


def write_flat_image(path, i: int, size=(30, 20)) -> Path:
    """An image file of ``size`` (w, h) filled with ``flat_colour(i)``."""
    import cv2
    import numpy as np

    rgb = np.empty((size[1], size[0], 3), np.uint8)
    rgb[:] = flat_colour(i)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return Path(path)


def write_flat_video(path, n: int = 6, fps: float = 10.0, size=(48, 32)) -> Path:
    """An MJPG video of ``n`` frames, frame ``i`` filled with ``flat_colour(i)``."""
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for i in range(n):
        rgb = np.empty((size[1], size[0], 3), np.uint8)
        rgb[:] = flat_colour(i)
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return Path(path)


def read_video_frames(path) -> list:
    """Every frame of a video file as OpenCV reads it (BGR uint8 ``[H, W, 3]``)."""
    import numpy as np

    from anoncodec.frames import read_frames

    return [np.ascontiguousarray(rgb[:, :, ::-1]) for rgb in read_frames(path)]


@pytest.fixture
def factorized():
    return tiny_codec("factorized")


@pytest.fixture
def hyperprior():
    return tiny_codec("hyperprior")


os.environ.setdefault("ANONCODEC_LOG_LEVEL", "WARNING")
