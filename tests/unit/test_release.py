"""python -m anoncodec.weights.release: a released file keeps the model id; nothing is overwritten by accident."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anoncodec.weights.release import main

# a ladder rung: its stored entropy tables are current, so a re-release keeps its model id
DEMO = Path(__file__).resolve().parents[2] / "anoncodec" / "weights" / "ladder_mid.pt"


def test_release_keeps_model_id_and_refuses_to_overwrite(tmp_path, capsys):
    from anoncodec.codec import load_codec

    dest = tmp_path / "weights" / "x.pt"
    assert main([str(DEMO), str(dest)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model_id"] == load_codec(DEMO).model_id().hex() == load_codec(dest).model_id().hex()
    before = dest.stat().st_mtime_ns
    with pytest.raises(SystemExit) as exc:
        main([str(DEMO), str(dest)])
    assert exc.value.code == 2 and "--force" in capsys.readouterr().err
    assert dest.stat().st_mtime_ns == before
    assert main([str(DEMO), str(dest), "--force"]) == 0


def test_release_needs_a_destination_and_an_existing_source(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(DEMO)])
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing.pt"), str(tmp_path / "out.pt")])
    assert "does not exist" in capsys.readouterr().err
