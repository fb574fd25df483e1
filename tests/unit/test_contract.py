"""The serving contract (anoncodec.contract) against what is generated and committed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anoncodec import contract
from anoncodec.serving.repository import RepositoryOptions, render_configs

REPO = Path(__file__).resolve().parents[2]
# Triton writes BYTES tensors as TYPE_STRING in model configs
CONFIG_TYPE = {"BYTES": "TYPE_STRING"}

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
text_format = pytest.importorskip("google.protobuf.text_format")


def _parse(text: str):
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def _tensors(entries) -> list[tuple[str, str, tuple[int, ...]]]:
    return [(t.name, model_config_pb2.DataType.Name(t.data_type), tuple(t.dims)) for t in entries]


def _expected(specs) -> list[tuple[str, str, tuple[int, ...]]]:
    return [(t.name, CONFIG_TYPE.get(t.datatype, f"TYPE_{t.datatype}"), t.dims) for t in specs]


def _check(configs: dict[str, str]) -> None:
    assert set(contract.ENSEMBLE_NAMES) <= set(configs)
    for name, spec in contract.ENSEMBLES.items():
        config = _parse(configs[name])
        assert config.name == name and config.platform == "ensemble"
        assert _tensors(config.input) == _expected(spec.inputs)
        assert _tensors(config.output) == _expected(spec.outputs)
        # every public tensor of the contract is wired to a step, nothing else is public
        mapped = {v for step in config.ensemble_scheduling.step
                  for v in (*step.input_map.values(), *step.output_map.values())}
        public = {v for v in mapped if v.isupper()}
        assert public == {t.name for t in (*spec.inputs, *spec.outputs)}


@pytest.mark.parametrize("options", [RepositoryOptions(), RepositoryOptions(max_batch=8)])
def test_generated_ensembles_follow_the_contract(options):
    _check(render_configs(options))


def test_committed_repository_follows_the_contract():
    configs = {p.parent.name: p.read_text() for p in (REPO / "model_repository").glob("*/config.pbtxt")}
    _check(configs)


def test_modes_name_served_ensembles_and_packets_is_the_default():
    assert contract.DEFAULT_MODE == "packets"
    assert {spec.name for spec in contract.MODES.values()} == set(contract.ENSEMBLE_NAMES)
    assert contract.ensemble_for_mode("frames") is contract.ANONYMIZE_FRAME
    with pytest.raises(ValueError, match="expected one of packets, frames"):
        contract.ensemble_for_mode("raw")
    with pytest.raises(ValueError, match="unknown ensemble 'detect'"):
        contract.ensemble("detect")


def test_contract_module_is_stdlib_only():
    import ast
    import sys

    tree = ast.parse(Path(contract.__file__).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}


def test_request_builder_makes_the_contract_tensors():
    pytest.importorskip("tritonclient.grpc")
    from anoncodec.edge.request import payload_size, request_inputs, requested_outputs

    frame = np.zeros((4, 6, 3), np.uint8)
    (tensor,) = request_inputs("anonymize_frame", frame)
    assert (tensor.name(), tensor.datatype(), tensor.shape()) == ("FRAME", "UINT8", [4, 6, 3])
    (tensor,) = request_inputs(contract.ANALYZE_BITSTREAM, b"\x01\x02")
    assert (tensor.name(), tensor.datatype(), tensor.shape()) == ("PACKET", "BYTES", [1])
    assert [o.name() for o in requested_outputs("anonymize_frame")] == ["ANONYMIZED", "BOXES", "SCORES", "BITS"]
    assert [o.name() for o in requested_outputs("analyze_bitstream")] == ["ANONYMIZED", "BOXES", "SCORES"]
    assert (payload_size(frame), payload_size(b"abc")) == (72, 3)
