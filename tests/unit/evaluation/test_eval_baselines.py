import numpy as np
import pytest

from anoncodec.errors import ConfigError
from anoncodec.evaluation import baselines


@pytest.fixture
def frame():
    return np.random.default_rng(0).integers(0, 256, size=(60, 80, 3), dtype=np.uint8)


BOX = np.array([[10.2, 20.0, 30.0, 44.7, 0.9]], np.float32)  # score column is ignored


def test_fill_paints_the_box_only(frame):
    out = baselines.fill_regions(frame, BOX)
    assert (out[20:45, 10:30] == 0).all()
    outside = np.ones(frame.shape[:2], bool)
    outside[20:45, 10:30] = False
    assert np.array_equal(out[outside], frame[outside])
    assert np.array_equal(baselines.fill_regions(frame, BOX, (255, 0, 0))[30, 15], [255, 0, 0])


def test_pixelate_makes_uniform_cells(frame):
    box = np.array([[0, 0, 40, 40]], np.float32)
    out = baselines.pixelate_regions(frame, box, blocks=4)  # 10x10 cells
    for y in range(0, 40, 10):
        for x in range(0, 40, 10):
            cell = out[y:y + 10, x:x + 10].reshape(-1, 3)
            assert (cell == cell[0]).all()
    assert np.array_equal(out[40:], frame[40:])
    with pytest.raises(ConfigError):
        baselines.pixelate_regions(frame, box, blocks=0)


def test_blur_changes_the_box_only_and_empty_boxes_change_nothing(frame):
    out = baselines.blur_regions(frame, BOX)
    assert out[20:45, 10:30].std() < frame[20:45, 10:30].std() / 2
    assert np.array_equal(out[:, 40:], frame[:, 40:])
    for fn in (baselines.blur_regions, baselines.pixelate_regions, baselines.fill_regions):
        assert np.array_equal(fn(frame, np.zeros((0, 5), np.float32)), frame)
        assert np.array_equal(fn(frame, []), frame)


def test_scale_boxes_about_the_center():
    b = baselines.scale_boxes(np.array([[10, 10, 20, 30, 0.5]], np.float32), 2.0)
    np.testing.assert_allclose(b, [[5, 0, 25, 40, 0.5]])
    assert baselines.scale_boxes(np.zeros((0, 4))).shape == (0, 4)


def test_png_is_lossless_and_jpeg_is_not(frame):
    assert np.array_equal(baselines.png_decode(baselines.png_encode(frame)), frame)
    jpeg = baselines.jpeg_decode(baselines.jpeg_encode(frame, 10))
    assert jpeg.shape == frame.shape and not np.array_equal(jpeg, frame)


@pytest.mark.parametrize("codec", ["webp", "avif"])
def test_pillow_codecs_round_trip_with_fewer_bytes_at_lower_quality(frame, codec):
    if not baselines.pillow_supports(codec):
        pytest.skip(f"the installed Pillow has no {codec}")
    low, high = (baselines.pillow_encode(frame, codec, q) for q in (10, 90))
    assert len(low) < len(high)
    out = baselines.pillow_decode(high)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - frame).mean() < np.abs(baselines.pillow_decode(low).astype(int) - frame).mean()


def test_unknown_pillow_codec_is_not_supported():
    assert not baselines.pillow_supports("jpeg-xl-9000")
