import json

import pytest

from anoncodec.errors import ConfigError, DatasetError
from anoncodec.evaluation.data import load_eval_data, parse_data_spec


def test_parse_data_spec():
    src = parse_data_spec("crowdhuman:/d/val.odgt", images="/d/img")
    assert (src.kind, src.path, src.images, src.person_box) == ("crowdhuman", "/d/val.odgt", "/d/img", "visible")
    assert parse_data_spec("coco:k.json").kind == "coco"
    src = parse_data_spec("data/samples/vtest_excerpt.avi", frame_stride=15, max_frames=4)
    assert (src.kind, src.frame_stride, src.max_frames) == ("footage", 15, 4)
    assert parse_data_spec("footage:x").path == "x"
    assert parse_data_spec("data/samples", frame_stride=3, max_frames=1).max_frames == 0  # folders: --max-images
    assert parse_data_spec("C:/videos/a.avi").path == "C:/videos/a.avi"  # unknown prefix: a path
    with pytest.raises(ConfigError):
        parse_data_spec("coco:")


def test_crowdhuman_spec_uses_visible_boxes_and_heads(tmp_path):
    from PIL import Image

    (tmp_path / "Images").mkdir()
    Image.new("RGB", (100, 80)).save(tmp_path / "Images" / "a.jpg")
    record = {"ID": "a", "gtboxes": [{"tag": "person", "fbox": [0, 0, 50, 79], "vbox": [5, 6, 40, 60],
                                      "hbox": [10, 6, 12, 14]}]}
    (tmp_path / "val.odgt").write_text(json.dumps(record) + "\n")
    data = load_eval_data(f"crowdhuman:{tmp_path / 'val.odgt'}")
    assert not data.detected_ground_truth and "vbox" in data.ground_truth
    [item] = data.items
    assert item.persons_xyxy.tolist() == [[5, 6, 45, 66]] and item.heads_xyxy.tolist() == [[10, 6, 22, 20]]
    with pytest.raises(DatasetError):
        load_eval_data(f"crowdhuman:{tmp_path / 'missing.odgt'}")
