"""The checkpoint ladder (anoncodec/weights/ladder.toml) and ``--checkpoint NAME``."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anoncodec.cli.main import build_parser, main
from anoncodec.errors import ConfigError
from anoncodec.weights import (
    CHECKPOINT_ENV,
    DEMO_CHECKPOINT,
    LADDER_FILE,
    LadderEntry,
    default_checkpoint,
    list_checkpoints,
    resolve_checkpoint,
)
from tests.conftest import REPO

ENTRY = """
[[checkpoint]]
name = "{name}"
file = "{file}"
config = "configs/{name}.toml"
target_bpp = {bpp}
description = "{name} rate point"
"""


@pytest.fixture(autouse=True)
def _no_env_checkpoint(monkeypatch):
    monkeypatch.delenv(CHECKPOINT_ENV, raising=False)


@pytest.fixture
def ladder(tmp_path):
    """A two-rung ladder (low is the default) with placeholder .pt files beside it."""
    folder = tmp_path / "weights"
    folder.mkdir()
    for name in ("low", "high"):
        (folder / f"{name}.pt").write_bytes(b"not loaded by the ladder")
    path = folder / "ladder.toml"
    path.write_text('default = "low"\n' + ENTRY.format(name="low", file="low.pt", bpp=0.1)
                    + ENTRY.format(name="high", file="high.pt", bpp=1))
    return path


def test_shipped_ladder_is_valid_and_its_configs_are_committed():
    entries = list_checkpoints()
    assert entries and [e.is_default for e in entries].count(True) == 1
    assert default_checkpoint() == next(e for e in entries if e.is_default)
    assert len({e.name for e in entries}) == len(entries)
    for entry in entries:
        assert entry.path.is_file() and entry.path.parent == LADDER_FILE.parent
        assert (REPO / entry.config).is_file(), f"{entry.name}: {entry.config} is not in the repository"
    assert resolve_checkpoint("demo") == DEMO_CHECKPOINT


def test_ladder_ships_as_package_data():
    import tomllib

    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "weights/*.toml" in data["tool"]["setuptools"]["package-data"]["anoncodec"]


def test_ladder_does_not_load_torch():
    code = ("import sys\nfrom anoncodec.weights import resolve_checkpoint\nresolve_checkpoint(None)\n"
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_entries_in_file_order(ladder):
    low, high = list_checkpoints(ladder)
    assert (low.name, low.is_default, low.target_bpp, high.name, high.is_default) == ("low", True, 0.1, "high", False)
    assert isinstance(high.target_bpp, float) and high.target_bpp == 1.0
    assert low.path == ladder.parent / "low.pt" and low.config == "configs/low.toml"
    assert default_checkpoint(ladder) == low
    assert json.loads(json.dumps(high.to_dict()))["path"] == str(ladder.parent / "high.pt")
    with pytest.raises(dataclasses.FrozenInstanceError):
        low.name = "mid"


def test_selection_by_name(ladder):
    assert resolve_checkpoint("high", ladder) == ladder.parent / "high.pt"
    assert resolve_checkpoint("low", ladder) == ladder.parent / "low.pt"


def test_selection_by_path_returns_it_unchanged(ladder, tmp_path, monkeypatch):
    ckpt = tmp_path / "runs" / "last.pt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"x")
    assert resolve_checkpoint(str(ckpt), ladder) == ckpt
    assert resolve_checkpoint(ckpt, ladder) == ckpt
    monkeypatch.chdir(tmp_path)
    assert resolve_checkpoint("runs/last.pt", ladder) == Path("runs/last.pt")
    (tmp_path / "mine").write_bytes(b"x")  # name-shaped, but not a name: the file
    assert resolve_checkpoint("mine", ladder) == Path("mine")
    (tmp_path / "high").write_bytes(b"x")  # a name wins over a file of that name; ./high is the file
    assert resolve_checkpoint("high", ladder) == ladder.parent / "high.pt"
    assert resolve_checkpoint("./high", ladder) == Path("./high")
    with pytest.raises(ConfigError, match="neither"):  # a Path is never looked up as a name
        resolve_checkpoint(Path("nothing-here"), ladder)


def test_default_when_nothing_is_given(ladder):
    assert resolve_checkpoint(None, ladder) == ladder.parent / "low.pt"
    assert resolve_checkpoint("", ladder) == ladder.parent / "low.pt"


def test_env_var_names_a_path_or_a_name(ladder, tmp_path, monkeypatch):
    other = tmp_path / "other.pt"
    other.write_bytes(b"x")
    monkeypatch.setenv(CHECKPOINT_ENV, str(other))
    assert resolve_checkpoint(None, ladder) == other
    assert resolve_checkpoint("high", ladder) == ladder.parent / "high.pt"  # an explicit spec wins
    monkeypatch.setenv(CHECKPOINT_ENV, "high")
    assert resolve_checkpoint(None, ladder) == ladder.parent / "high.pt"
    monkeypatch.setenv(CHECKPOINT_ENV, "")
    assert resolve_checkpoint(None, ladder) == ladder.parent / "low.pt"
    monkeypatch.setenv(CHECKPOINT_ENV, "medium")
    with pytest.raises(ConfigError, match=r"\$ANONCODEC_CHECKPOINT='medium' is neither"):
        resolve_checkpoint(None, ladder)


@pytest.mark.parametrize("spec", ["medium", "runs/missing.pt"])
def test_unknown_name_lists_the_names(ladder, spec):
    with pytest.raises(ConfigError) as exc:
        resolve_checkpoint(spec, ladder)
    text = str(exc.value)
    assert repr(spec) in text and "'low' (default), 'high'" in text and "anoncodec checkpoints" in text


def _write(tmp_path, text: str) -> Path:
    (tmp_path / "a.pt").write_bytes(b"x")
    path = tmp_path / "ladder.toml"
    path.write_text(text)
    return path


GOOD = ENTRY.format(name="a", file="a.pt", bpp=0.2)


@pytest.mark.parametrize("text, message", [
    ("default = \n", "cannot parse"),
    ('default = "a"\nrungs = 3\n' + GOOD, r"unknown top-level key\(s\) \['rungs'\]"),
    ('default = "a"\n' + GOOD + "bpp = 0.3\n", r"unknown key\(s\) \['bpp'\]"),
    ('default = "a"\n' + GOOD.replace('config = "configs/a.toml"\n', ""), r"missing key\(s\) \['config'\]"),
    ('default = "a"\n' + GOOD.replace("a.pt", "gone.pt"), "'gone.pt' does not exist"),
    ('default = "a"\n' + GOOD.replace("a.pt", "/abs/a.pt"), "not a path relative"),
    ('default = "a"\n' + GOOD + GOOD, "'a' is used twice"),
    ('default = "b"\n' + GOOD, "default = 'b' is not a checkpoint name; expected one of 'a'"),
    (GOOD, "default = None"),
    ('default = "a"\n', "expected one or more \\[\\[checkpoint\\]\\] tables"),
    ('default = "a"\n[checkpoint]\nname = "a"\n', "expected one or more"),
    ('default = "A"\n' + GOOD.replace('name = "a"', 'name = "A"'), "'A' is not kebab-case"),
    ('default = "a"\n' + GOOD.replace("target_bpp = 0.2", "target_bpp = 0"), "target_bpp 0 is not a positive"),
    ('default = "a"\n' + GOOD.replace("target_bpp = 0.2", 'target_bpp = "low"'), "target_bpp 'low'"),
    ('default = "a"\n' + GOOD.replace("target_bpp = 0.2", "target_bpp = true"), "target_bpp True"),
    ('default = "a"\n' + GOOD.replace('"a rate point"', '"""two\nlines"""'), "not one non-empty line"),
    ('default = "a"\n' + GOOD.replace("configs/a.toml", "configs/a.pt"), "not a relative path to a training"),
])
def test_malformed_ladder_is_a_config_error(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=message):
        list_checkpoints(path)
    with pytest.raises(ConfigError, match=message):
        resolve_checkpoint("a", path)
    assert resolve_checkpoint(str(tmp_path / "a.pt"), path) == tmp_path / "a.pt"  # paths never need the ladder


def test_missing_ladder_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the checkpoint ladder"):
        list_checkpoints(tmp_path / "nope.toml")


def test_a_good_temp_ladder_passes(tmp_path):
    [entry] = list_checkpoints(_write(tmp_path, 'default = "a"\n' + GOOD))
    assert entry == LadderEntry("a", tmp_path / "a.pt", "configs/a.toml", 0.2, "a rate point", True)


def _checkpoint_actions():
    parser = build_parser()
    [sub] = [a for a in parser._actions if a.dest == "command"]
    return {name: a for name, p in sub.choices.items() for a in p._actions if "--checkpoint" in a.option_strings}


def test_every_checkpoint_flag_lists_the_names():
    actions = _checkpoint_actions()
    assert {"encode", "decode", "export", "demo", "evaluate"} <= set(actions)
    names = [e.name for e in list_checkpoints()]
    default = default_checkpoint().name
    for command, action in actions.items():
        assert all(name in action.help for name in names), command
        assert f"or {default})" in action.help and "$ANONCODEC_CHECKPOINT" in action.help, command


def test_cli_checkpoints_json_in_a_subprocess():
    env = {k: v for k, v in os.environ.items() if k != CHECKPOINT_ENV}
    out = subprocess.run([sys.executable, "-m", "anoncodec.cli", "checkpoints", "--json"], env=env,
                         capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    entries = list_checkpoints()
    assert data["default"] == default_checkpoint().name and data["ladder"] == str(LADDER_FILE)
    assert data["env"] == {CHECKPOINT_ENV: None}
    assert [c["name"] for c in data["checkpoints"]] == [e.name for e in entries]
    for row, entry in zip(data["checkpoints"], entries):
        assert row == {**entry.to_dict(), "file": entry.path.name}


def test_cli_checkpoints_table(capsys):
    assert main(["checkpoints"]) == 0
    out = capsys.readouterr().out
    for entry in list_checkpoints():
        [line] = [row for row in out.splitlines() if row[1:].split()[:1] == [entry.name]]  # the name column
        assert line.startswith("*") == entry.is_default
        assert entry.path.name in line and entry.config in line and entry.description in line
    assert "$ANONCODEC_CHECKPOINT unset" in out


@pytest.fixture
def small_image(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, size=(40, 52, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "in.png")
    return tmp_path / "in.png"


def test_cli_encode_by_name_decodes(small_image, tmp_path, monkeypatch, capsys):
    from anoncodec.codec import load_codec

    packet, out = tmp_path / "p.bin", tmp_path / "out.png"
    assert main(["encode", str(small_image), "-o", str(packet), "--checkpoint", "demo"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model_id"] == load_codec(DEMO_CHECKPOINT).model_id().hex()
    assert main(["decode", str(packet), "-o", str(out), "--checkpoint", "demo"]) == 0
    assert Image.open(out).size == (52, 40)
    monkeypatch.setenv(CHECKPOINT_ENV, "demo")  # the env var takes a name too
    assert main(["decode", str(packet), "-o", str(tmp_path / "env.png")]) == 0
    assert Image.open(tmp_path / "env.png").size == (52, 40)


@pytest.mark.parametrize("command", ["encode", "decode", "export"])
def test_cli_unknown_name_exits_2_listing_names(command, small_image, tmp_path, capsys):
    argv = {"encode": ["encode", str(small_image), "-o", str(tmp_path / "p.bin")],
            "decode": ["decode", str(tmp_path / "p.bin"), "-o", str(tmp_path / "o.png")],
            "export": ["export", "--repository", str(tmp_path / "repo")]}[command]
    if command == "decode":
        assert main(["encode", str(small_image), "-o", str(tmp_path / "p.bin"), "--checkpoint", "demo"]) == 0
        capsys.readouterr()
    assert main([*argv, "--checkpoint", "no-such-rung"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"anoncodec {command}: error: checkpoint 'no-such-rung' is neither") and "\n" not in err
    assert all(repr(e.name) in err for e in list_checkpoints())


def test_broken_ladder_keeps_help_working_and_fails_on_use(tmp_path, monkeypatch, capsys):
    import anoncodec.weights.ladder as ladder_module

    monkeypatch.setattr(ladder_module, "LADDER_FILE", _write(tmp_path, 'default = "a"\n'))
    assert all("`anoncodec checkpoints` lists them" in a.help for a in _checkpoint_actions().values())
    assert main(["checkpoints"]) == 2
    assert "expected one or more [[checkpoint]] tables" in capsys.readouterr().err
