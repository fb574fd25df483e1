"""Crop transforms with fixed parameters and the RoiCropDataset outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from anoncodec.data import (
    AnnotatedImage,
    CropParams,
    RoiCropDataset,
    apply_crop,
    center_crop_params,
    collate_roi,
    sample_crop_params,
    transform_boxes,
)


def test_transform_boxes_fixed_crop():
    p = CropParams(x0=10, y0=20, side=50, out_size=100)
    boxes = [[20, 30, 40, 60], [0, 0, 20, 25], [100, 100, 120, 120], [59, 30, 70, 60]]
    out = transform_boxes(boxes, p, min_size=2.0)
    # inside; cut at the top-left corner; outside (dropped); 1 source px = 2 out px wide (kept)
    np.testing.assert_allclose(
        out, [[20, 20, 60, 80], [0, 0, 20, 10], [98, 20, 100, 80]]
    )
    flipped = transform_boxes(boxes[:1], CropParams(10, 20, 50, 100, flip=True))
    np.testing.assert_allclose(flipped, [[40, 20, 80, 80]])
    assert transform_boxes(np.zeros((0, 4)), p).shape == (0, 4)


def test_apply_crop_moves_content_with_boxes():
    image = np.zeros((200, 200, 3), np.uint8)
    image[40:80, 60:100] = 255  # box [60, 40, 100, 80]
    for flip in (False, True):
        p = CropParams(x0=50, y0=30, side=100, out_size=50, flip=flip)
        crop = apply_crop(image, p)
        assert crop.shape == (50, 50, 3) and crop.dtype == np.uint8
        x1, y1, x2, y2 = transform_boxes([[60, 40, 100, 80]], p)[0].astype(int)
        assert (x1, y1, x2, y2) == ((25, 5, 45, 25) if flip else (5, 5, 25, 25))
        assert crop[y1:y2, x1:x2].min() == 255
        mask = np.ones((50, 50), bool)
        mask[y1:y2, x1:x2] = False
        assert crop[mask].max() == 0
    same = apply_crop(image, CropParams(7, 9, 64, 64))
    np.testing.assert_array_equal(same, image[9:73, 7:71])
    with pytest.raises(ValueError):
        apply_crop(image, CropParams(150, 0, 64, 64))


def test_sample_crop_params_ranges_and_head_bias():
    rng = np.random.default_rng(0)
    heads = np.array([[300, 200, 310, 212]], np.float32)
    for _ in range(200):
        p = sample_crop_params(rng, (480, 640), heads, 64, 0.5, 2.0, head_bias=1.0)
        assert 32 <= p.side <= 128
        assert 0 <= p.x0 <= 640 - p.side and 0 <= p.y0 <= 480 - p.side
        assert (
            p.x0 <= 300
            and p.x0 + p.side >= 310
            and p.y0 <= 200
            and p.y0 + p.side >= 212
        )
    small = sample_crop_params(rng, (30, 40), np.zeros((0, 4)), 64, 1.0, 1.0)
    assert small.side == 30 and small.out_size == 64  # shrunk to the image, zoomed in


def test_center_crop_params():
    p = center_crop_params((300, 400), np.zeros((0, 4)), 128)
    assert (p.x0, p.y0, p.side, p.flip) == (136, 86, 128, False)
    heads = np.array(
        [[0, 0, 10, 10], [20, 0, 30, 10], [380, 280, 400, 300]], np.float32
    )
    p = center_crop_params((300, 400), heads, 128)
    assert (p.x0, p.y0) == (0, 0)  # median head center (25, 5) pushed inside the image
    assert center_crop_params((50, 400), heads, 128).side == 50


def _write_items(tmp_path, sizes=((120, 160), (40, 30))):
    items = []
    rng = np.random.default_rng(1)
    for i, (h, w) in enumerate(sizes):
        path = tmp_path / f"im{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        items.append(
            AnnotatedImage(
                f"im{i}",
                str(path),
                [[10, 10, w - 10, h - 5], [0, 0, 4, 4]],
                [[w / 2 - 5, 12, w / 2 + 5, 22]],
                f"im{i}",
            )
        )
    return items


@pytest.mark.parametrize("train", [True, False])
def test_dataset_outputs(tmp_path, train):
    ds = RoiCropDataset(
        _write_items(tmp_path),
        crop_size=64,
        scale_min=0.5,
        scale_max=1.5,
        train=train,
        seed=0,
    )
    assert len(ds) == 2
    torch.manual_seed(0)
    for _ in range(5):
        for idx in range(len(ds)):
            x, persons, heads = ds[idx]
            assert x.shape == (3, 64, 64) and x.dtype == torch.float32
            assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
            for boxes in (persons, heads):
                assert (
                    boxes.dtype == torch.float32
                    and boxes.ndim == 2
                    and boxes.shape[1] == 4
                )
                assert bool((boxes >= 0).all()) and bool((boxes <= 64).all())
                assert bool((boxes[:, 2:] - boxes[:, :2] >= 2).all())
    if not train:
        a, b = ds[0], ds[0]
        assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


def test_dataset_training_randomness_follows_torch_seed(tmp_path):
    ds = RoiCropDataset(_write_items(tmp_path), 64, 0.5, 1.0, train=True, seed=3)
    torch.manual_seed(42)
    first = [ds[0][0] for _ in range(4)]
    torch.manual_seed(42)
    second = [ds[0][0] for _ in range(4)]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not all(
        torch.equal(first[0], f) for f in first[1:]
    )  # crops differ between draws


def test_collate_roi(tmp_path):
    ds = RoiCropDataset(_write_items(tmp_path), 32, train=False)
    x, persons, heads = collate_roi([ds[0], ds[1]])
    assert x.shape == (2, 3, 32, 32)
    assert len(persons) == len(heads) == 2 and all(p.shape[1] == 4 for p in persons)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate_roi)
    xb, pb, hb = next(iter(loader))
    assert torch.equal(xb, x)
