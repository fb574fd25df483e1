"""COCO person keypoints: boxes, crowd filtering and the keypoint head rule."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from anoncodec.config import DataSourceConfig
from anoncodec.data import keypoints_to_head_box, load_coco, load_source
from anoncodec.errors import DatasetError


def _kps(points: dict[int, tuple[float, float, int]]) -> list[float]:
    flat = [0.0] * 51
    for k, (x, y, v) in points.items():
        flat[3 * k : 3 * k + 3] = [x, y, v]
    return flat


FRONTAL = {
    0: (120, 210, 2),
    1: (112, 198, 2),
    2: (128, 198, 2),
    3: (100, 200, 1),
    4: (140, 200, 1),
}


def test_head_from_ears():
    # W = 1.2 * 40 = 48, H = 1.3 * 48 = 62.4, cx = 120 (keypoint bbox middle),
    # cy = mean y of eyes and ears (199) - 0.05 * 62.4 = 195.88
    np.testing.assert_allclose(
        keypoints_to_head_box(_kps(FRONTAL)), [96, 164.68, 144, 227.08], atol=1e-4
    )


def test_head_from_eyes_and_profile():
    eyes = _kps({0: (120, 112, 2), 1: (110, 100, 2), 2: (130, 100, 2)})
    # W = 2.4 * 20 = 48, H = 62.4, cx = 120, cy = 100 - 3.12
    np.testing.assert_allclose(
        keypoints_to_head_box(eyes), [96, 65.68, 144, 128.08], atol=1e-4
    )
    profile = _kps({0: (50, 100, 2), 3: (80, 95, 2)})
    # spread = 30, W = 1.6 * 30 = 48, H = 62.4, cx = 65, cy = 95 - 3.12
    np.testing.assert_allclose(
        keypoints_to_head_box(profile), [41, 60.68, 89, 123.08], atol=1e-4
    )


def test_fewer_than_two_face_keypoints_give_no_head():
    assert (
        keypoints_to_head_box(_kps({0: (50, 100, 2), 5: (60, 130, 2), 6: (40, 130, 2)}))
        is None
    )
    assert keypoints_to_head_box(_kps({0: (50, 100, 2), 1: (45, 95, 0)})) is None


@pytest.fixture()
def coco_json(tmp_path):
    (tmp_path / "images").mkdir()
    for name in ("a.jpg", "b.jpg"):
        Image.new("RGB", (400, 300)).save(tmp_path / "images" / name)
    data = {
        "images": [
            {"id": 7, "file_name": "a.jpg", "width": 400, "height": 300},
            {"id": 3, "file_name": "b.jpg", "width": 400, "height": 300},
        ],
        "annotations": [
            {
                "id": 1,
                "image_id": 7,
                "category_id": 1,
                "iscrowd": 0,
                "bbox": [80, 150, 80, 160],
                "keypoints": _kps(FRONTAL),
                "num_keypoints": 5,
            },
            {
                "id": 2,
                "image_id": 7,
                "category_id": 1,
                "iscrowd": 0,
                "bbox": [200, 100, 50, 100],
                "keypoints": _kps({0: (225, 110, 2)}),
            },
            {
                "id": 3,
                "image_id": 7,
                "category_id": 1,
                "iscrowd": 1,
                "bbox": [0, 0, 50, 50],
                "keypoints": _kps({}),
            },
            {
                "id": 4,
                "image_id": 3,
                "category_id": 2,
                "iscrowd": 0,
                "bbox": [1, 1, 5, 5],
            },
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "bicycle"}],
    }
    path = tmp_path / "person_keypoints.json"
    path.write_text(json.dumps(data))
    return path


def test_load_coco(coco_json):
    items = load_coco(DataSourceConfig(kind="coco", path=str(coco_json)))
    assert len(items) == 1  # image 3 has no person
    it = items[0]
    assert (it.id, it.group, it.order) == ("7", "7", 0)
    assert it.path == str(coco_json.parent / "images" / "a.jpg")
    # bbox [80, 150, 80, 160] leaves the 300-row image: clipped to y2 = 300
    np.testing.assert_allclose(
        it.persons_xyxy, [[80, 150, 160, 300], [200, 100, 250, 200]]
    )
    np.testing.assert_allclose(it.heads_xyxy, [[96, 164.68, 144, 227.08]], atol=1e-4)


def test_load_coco_keeps_crowd_when_asked(coco_json):
    src = DataSourceConfig(kind="coco", path=str(coco_json), skip_ignored=False)
    assert load_source(src)[0].persons_xyxy.shape == (3, 4)


def test_load_coco_missing_image(coco_json):
    (coco_json.parent / "images" / "a.jpg").unlink()
    with pytest.raises(DatasetError, match="a.jpg"):
        load_coco(DataSourceConfig(kind="coco", path=str(coco_json)))


def test_load_coco_bad_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(DatasetError, match="broken.json"):
        load_coco(DataSourceConfig(kind="coco", path=str(path)))
