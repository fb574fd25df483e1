"""tools/gpu_bundle.py rewrites every committed ladder config into a valid GPU config."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import tomllib

from anoncodec.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]


def _bundle():
    spec = importlib.util.spec_from_file_location("gpu_bundle", REPO / "tools" / "gpu_bundle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("point", ["base", "trunk", "trunk-high", "low", "mid", "high", "plain-rd"])
def test_gpu_config_keeps_the_objective_and_changes_only_the_run(point):
    bundle = _bundle()
    text = (REPO / "configs" / "ladder" / f"{point}.toml").read_text()
    cpu = TrainConfig.from_dict(tomllib.loads(text))
    gpu = TrainConfig.from_dict(tomllib.loads(bundle.gpu_config(text, point, 123, 16, 256)))
    assert gpu.loss == cpu.loss and gpu.codec == cpu.codec
    assert (gpu.steps, gpu.batch_size, gpu.crop_size, gpu.device) == (123, 16, 256, "cuda")
    assert gpu.out_dir == f"../runs/{point}"
    assert [d.kind for d in gpu.data] == ["labeled"] and gpu.data[0].path == "../data/labels.json"
    parent = {"base": None, "trunk": "base", "plain-rd": "base", "high": "trunk-high"}.get(point, "trunk")
    assert gpu.init_from == ("" if parent is None else f"../runs/{parent}/last.pt")
    assert set(bundle.GPU_STEPS) == set(bundle.POINTS)
