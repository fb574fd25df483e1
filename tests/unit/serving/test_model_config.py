"""serving.model_config: the stdlib reader of config.pbtxt, checked against Triton's own schema."""

from __future__ import annotations

import pytest

from anoncodec.errors import ConfigError
from anoncodec.serving.model_config import ModelConfig, parse_text_format, read_model_config
from anoncodec.serving.repository import BACKENDS, RepositoryOptions, render_configs
from tests.conftest import REPO


def _all_configs() -> dict[str, str]:
    configs = {f"committed/{p.parent.name}": p.read_text() for p in (REPO / "model_repository").glob("*/config.pbtxt")}
    for backend in BACKENDS:
        options = RepositoryOptions(backend=backend, max_batch=4, instances=2, max_height=1080)
        configs.update({f"{backend}/{k}": v for k, v in render_configs(options).items()})
    return configs


def test_reads_what_tritons_protobuf_parser_reads():
    text_format = pytest.importorskip("google.protobuf.text_format")
    model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
    configs = _all_configs()
    assert len(configs) > 20
    for name, text in configs.items():
        ours = ModelConfig.from_text(text)
        theirs = text_format.Parse(text, model_config_pb2.ModelConfig())
        expected = {k: v.string_value for k, v in theirs.parameters.items()}
        assert (ours.name, ours.platform, ours.backend, ours.parameters) == (
            theirs.name, theirs.platform, theirs.backend, expected), name


def test_generated_parameters_read_back():
    options = RepositoryOptions(max_height=720, max_width=1280, conf=0.3)
    configs = render_configs(options)
    assert ModelConfig.from_text(configs["entropy_decode"]).parameters == {"max_height": "720", "max_width": "1280"}
    assert ModelConfig.from_text(configs["detector_postprocess"]).parameters == options.parameters(
        "detector_postprocess")


def test_text_format_details():
    text = '''# a comment
name: "m"  # trailing comment
platform: 'ensemble'
dims: [ 1, -1, 3 ]
nested < key: "a" value { string_value: "x \\"y\\"" } >
parameters { key: "k" value: { string_value: "part" "s" } }
parameters: { key: "empty", value: { string_value: "" } };
'''
    fields = parse_text_format(text)
    assert fields["dims"] == ["1", "-1", "3"]
    assert fields["nested"][0]["value"][0]["string_value"] == ['x "y"']
    config = ModelConfig.from_text(text)
    assert (config.name, config.platform, config.backend) == ("m", "ensemble", "")
    assert config.parameters == {"k": "parts", "empty": ""}


@pytest.mark.parametrize("text", ['name: "m', "name: {", "parameters { key: \"k\" value { } }", "{ }", "name: @"])
def test_malformed_text_raises_config_error(text):
    with pytest.raises(ConfigError):
        ModelConfig.from_text(text)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_model_config(tmp_path / "config.pbtxt")
    (tmp_path / "config.pbtxt").write_text('name: "x"\nparameters { key: "a" value { string_value: "1" } }\n')
    assert read_model_config(tmp_path / "config.pbtxt").parameters == {"a": "1"}
