"""``anoncodec encode`` / ``decode`` on several files and folders, in one process."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from anoncodec.cli.main import main
from anoncodec.codec import save_checkpoint
from anoncodec.codec.onnx_export import export_codec
from tests.conftest import SAMPLES, tiny_codec

IMAGES = {"messi5": "messi5.jpg", "basketball1": "basketball1.png"}


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def folder(tmp_path):
    """The two sample photos, a file that only looks like an image, and a note that is skipped."""
    images = tmp_path / "images"
    images.mkdir()
    for name in IMAGES.values():
        shutil.copy(SAMPLES / name, images / name)
    (images / "broken.png").write_bytes(b"not a png at all")
    (images / "notes.txt").write_text("not an image, not taken")
    return images


def test_folder_round_trip_with_the_released_codec_reports_the_bad_file_and_keeps_the_others(folder, tmp_path,
                                                                                            capsys):
    packets, decoded = tmp_path / "packets", tmp_path / "decoded"
    assert main(["encode", str(folder), "-o", str(packets), "--no-progress"]) == 2
    out, err = capsys.readouterr()
    records = {r["packet"]: r for r in _lines(out)}
    assert set(records) == {str(packets / f"{stem}.packet") for stem in IMAGES}
    assert sorted(p.name for p in packets.iterdir()) == ["basketball1.packet", "messi5.packet"]  # no leftovers
    assert all(r["guarded_heads"] >= 1 for r in records.values())  # the guard is on by default here too
    assert "broken.png" in err and "cannot read image" in err and "notes.txt" not in err
    assert err.strip().splitlines()[-1] == (f"anoncodec encode: error: 1 of 3 inputs failed ({folder / 'broken.png'}); "
                                            "the other outputs were written")

    assert main(["decode", str(packets), "-o", str(decoded), "--no-progress"]) == 0
    results = _lines(capsys.readouterr().out)
    assert sorted(r["image"] for r in results) == sorted(str(decoded / f"{stem}.png") for stem in IMAGES)
    for stem, name in IMAGES.items():
        with Image.open(SAMPLES / name) as original, Image.open(decoded / f"{stem}.png") as image:
            assert image.size == original.size and image.mode == "RGB"
        single = tmp_path / f"{stem}.packet"  # one file in, one file out: the same packet
        assert main(["encode", str(folder / name), "-o", str(single)]) == 0
        assert json.loads(capsys.readouterr().out)["packet"] == str(single)
        assert single.read_bytes() == (packets / f"{stem}.packet").read_bytes()


@pytest.fixture
def tiny(tmp_path):
    model = tiny_codec("factorized")
    save_checkpoint(tmp_path / "tiny.pt", model)
    export_codec(model, tmp_path / "onnx")
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate([(40, 52), (33, 64), (64, 48)]):
        paths.append(tmp_path / f"img{i}.png")
        Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(paths[-1])
    return tmp_path, paths


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_several_files_give_the_packets_of_one_call_each(tiny, runtime, capsys):
    tmp, paths = tiny
    codec = ["--onnx-dir", str(tmp / "onnx")] if runtime == "onnx" else ["--checkpoint", str(tmp / "tiny.pt")]
    missing = tmp / "missing.png"
    argv = ["encode", str(paths[0]), str(missing), *map(str, paths[1:]), "-o", str(tmp / "out"), "--no-guard"]
    assert main(argv + codec) == 2
    out, err = capsys.readouterr()
    assert [r["packet"] for r in _lines(out)] == [str(tmp / "out" / f"img{i}.packet") for i in range(3)]
    assert "missing.png" in err and "1 of 4 inputs failed" in err
    for i, path in enumerate(paths):
        assert main(["encode", str(path), "-o", str(tmp / "one.packet"), "--no-guard", *codec]) == 0
        assert (tmp / "one.packet").read_bytes() == (tmp / "out" / f"img{i}.packet").read_bytes()
    capsys.readouterr()

    # a packet from another model among good ones: reported, the others decoded
    save_checkpoint(tmp / "other.pt", tiny_codec("factorized", seed=5))
    other = tmp / "other.packet"
    main(["encode", str(paths[0]), "-o", str(other), "--no-guard", "--checkpoint", str(tmp / "other.pt")])
    capsys.readouterr()
    packets = sorted((tmp / "out").glob("*.packet"))
    assert main(["decode", *map(str, packets), str(other), "-o", str(tmp / "png"), "--checkpoint",
                 str(tmp / "tiny.pt")]) == 2
    out, err = capsys.readouterr()
    assert len(_lines(out)) == 3 and "encoded by model" in err and "other.packet" in err
    assert sorted(p.name for p in (tmp / "png").iterdir()) == ["img0.png", "img1.png", "img2.png"]
    with Image.open(tmp / "png" / "img1.png") as image:
        assert image.size == (64, 33)


def test_bad_batches_are_refused_before_the_codec_loads(tiny, capsys):
    tmp, paths = tiny
    (tmp / "taken").write_bytes(b"a file, not a folder")
    cases = {
        "is a file": ["encode", str(paths[0]), str(paths[1]), "-o", str(tmp / "taken")],
        "has no": ["encode", str(tmp / "onnx"), "-o", str(tmp / "x")],  # a folder without images
        "would both write": ["encode", str(paths[0]), str(paths[0].with_suffix(".jpg")), "-o", str(tmp / "x")],
        "decode: is a file": ["decode", str(tmp / "onnx"), "-o", str(tmp / "taken")],
    }
    Image.open(paths[0]).save(paths[0].with_suffix(".jpg"))
    for expected, argv in cases.items():
        assert main([*argv, "--checkpoint", str(tmp / "missing.pt")]) == 2, expected  # never got to the codec
        err = capsys.readouterr().err.strip()
        assert expected.split(": ")[-1] in err and "\n" not in err and "missing.pt" not in err, err
    assert not (tmp / "x").exists()


def test_an_output_folder_for_a_single_image(tiny, capsys):
    tmp, paths = tiny
    (tmp / "existing").mkdir()
    assert main(["encode", str(paths[1]), "-o", str(tmp / "existing"), "--no-guard", "--checkpoint",
                 str(tmp / "tiny.pt")]) == 0
    assert _lines(capsys.readouterr().out)[0]["packet"] == str(tmp / "existing" / "img1.packet")
    assert main(["decode", str(tmp / "existing" / "img1.packet"), "-o", str(tmp / "o.unknown"),
                 "--checkpoint", str(tmp / "tiny.pt")]) == 2
    assert "unknown suffix" in capsys.readouterr().err and not (tmp / "o.unknown").exists()
