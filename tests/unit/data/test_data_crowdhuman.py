"""CrowdHuman .odgt loading: box choice, filters, clipping, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anoncodec.config import DataSourceConfig
from anoncodec.data import load_crowdhuman, load_source
from anoncodec.errors import DatasetError

RECORD_1 = {
    "ID": "img1",
    "gtboxes": [
        {  # A: plain person
            "tag": "person",
            "fbox": [10, 10, 30, 60],
            "vbox": [12, 12, 20, 50],
            "hbox": [15, 10, 10, 12],
            "extra": {"box_id": 0, "occ": 0},
            "head_attr": {"ignore": 0, "occ": 0, "unsure": 0},
        },
        {  # B: leaves the image on the left and bottom, unsure head
            "tag": "person",
            "fbox": [-5, 20, 30, 70],
            "vbox": [0, 20, 25, 40],
            "hbox": [2, 20, 8, 10],
            "extra": {"ignore": 0},
            "head_attr": {"ignore": 0, "occ": 1, "unsure": 1},
        },
        {  # C: ignored person, sure head
            "tag": "person",
            "fbox": [60, 5, 20, 30],
            "vbox": [60, 5, 20, 20],
            "hbox": [65, 5, 8, 8],
            "extra": {"ignore": 1},
            "head_attr": {"ignore": 0},
        },
        {
            "tag": "mask",
            "fbox": [80, 0, 20, 20],
            "vbox": [80, 0, 20, 20],
            "extra": {"ignore": 1},
        },
    ],
}
RECORD_2 = {"ID": "img2", "gtboxes": []}


def _write(tmp_path: Path, lines: list[str], images=("img1", "img2")) -> Path:
    (tmp_path / "Images").mkdir()
    for name in images:
        Image.new("RGB", (100, 80), (50, 60, 70)).save(
            tmp_path / "Images" / f"{name}.jpg"
        )
    odgt = tmp_path / "annotation_train.odgt"
    odgt.write_text("\n".join(lines) + "\n")
    return odgt


@pytest.fixture()
def odgt(tmp_path):
    return _write(tmp_path, [json.dumps(RECORD_1), "", json.dumps(RECORD_2)])


def test_full_boxes_skip_ignored(odgt):
    items = load_crowdhuman(DataSourceConfig(kind="crowdhuman", path=str(odgt)))
    assert [it.id for it in items] == ["img1", "img2"]
    a = items[0]
    assert a.path == str(odgt.parent / "Images" / "img1.jpg")
    assert (a.group, a.order, a.sequence) == ("img1", 0, "")
    np.testing.assert_array_equal(a.persons_xyxy, [[10, 10, 40, 70], [0, 20, 25, 80]])
    np.testing.assert_array_equal(
        a.heads_xyxy, [[15, 10, 25, 22], [2, 20, 10, 30], [65, 5, 73, 13]]
    )
    assert a.persons_xyxy.dtype == np.float32 and a.heads_xyxy.dtype == np.float32
    assert items[1].persons_xyxy.shape == (0, 4) and items[1].heads_xyxy.shape == (0, 4)


def test_visible_boxes_keep_ignored_drop_unsure_heads(odgt):
    src = DataSourceConfig(
        kind="crowdhuman",
        path=str(odgt),
        person_box="visible",
        skip_ignored=False,
        skip_unsure_heads=True,
    )
    a = load_source(src)[0]
    np.testing.assert_array_equal(
        a.persons_xyxy, [[12, 12, 32, 62], [0, 20, 25, 60], [60, 5, 80, 25]]
    )
    np.testing.assert_array_equal(a.heads_xyxy, [[15, 10, 25, 22], [65, 5, 73, 13]])


def test_images_option(tmp_path):
    odgt = _write(tmp_path, [json.dumps(RECORD_2)])
    (tmp_path / "Images").rename(tmp_path / "elsewhere")
    src = DataSourceConfig(
        kind="crowdhuman", path=str(odgt), images=str(tmp_path / "elsewhere")
    )
    assert load_crowdhuman(src)[0].path == str(tmp_path / "elsewhere" / "img2.jpg")


@pytest.mark.parametrize(
    "bad_line",
    [
        '{"ID": "img2", "gtboxes": [',
        '{"gtboxes": []}',
        "[1, 2]",
        '{"ID": "img2", "gtboxes": [{"tag": "person", "fbox": [1, 2, 3]}]}',
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, bad_line):
    odgt = _write(tmp_path, [json.dumps(RECORD_1), bad_line])
    with pytest.raises(DatasetError, match=r"annotation_train\.odgt:2"):
        load_crowdhuman(DataSourceConfig(kind="crowdhuman", path=str(odgt)))


def test_missing_image_names_path_and_line(tmp_path):
    odgt = _write(
        tmp_path, [json.dumps(RECORD_2), json.dumps(RECORD_1)], images=("img2",)
    )
    with pytest.raises(DatasetError, match=r"odgt:2.*img1\.jpg"):
        load_crowdhuman(DataSourceConfig(kind="crowdhuman", path=str(odgt)))


def test_missing_odgt(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_crowdhuman(
            DataSourceConfig(kind="crowdhuman", path=str(tmp_path / "nope.odgt"))
        )
