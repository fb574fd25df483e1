"""Fixtures of the evaluation tests: real sample frames and the real (offline) detectors."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import SAMPLES


def load_sample(name: str) -> np.ndarray:
    from anoncodec.data._images import load_rgb

    return load_rgb(SAMPLES / name)


@pytest.fixture(scope="session")
def messi() -> np.ndarray:
    """messi5.jpg, 548x342 RGB, one face dlib can embed."""
    return load_sample("messi5.jpg")


@pytest.fixture(scope="session")
def detectors():
    """The benchmark's instruments with the default (served) settings, loaded once."""
    from anoncodec.evaluation.benchmark import Detectors

    return Detectors()


@pytest.fixture(scope="session")
def messi_face(detectors, messi) -> np.ndarray:
    """The face dlib finds on messi5.jpg, float32 [1, 4] xyxy."""
    faces = detectors.embedder.detect(messi)
    assert faces.shape == (1, 4)
    return faces
