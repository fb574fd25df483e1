"""The generated Triton configs: committed files, backends, ensemble wiring, launcher checks."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import pytest

from anoncodec.errors import ConfigError, ExportError
from anoncodec.serving.launcher import check_repository, find_tritonserver, port_in_use
from anoncodec.serving.repository import (
    ENSEMBLES,
    ONNX_STAGES,
    PYTHON_STAGES,
    RepositoryOptions,
    render_configs,
    stage_tensors,
    write_configs,
)
from anoncodec.serving.runtime import STAGES

REPO = Path(__file__).resolve().parents[3] / "model_repository"


def test_committed_configs_are_the_generated_defaults():
    """Regenerate with ANONCODEC_REGENERATE=1 (or `anoncodec export`)."""
    if os.environ.get("ANONCODEC_REGENERATE"):
        write_configs(REPO)
    for name, text in render_configs().items():
        assert (REPO / name / "config.pbtxt").read_text() == text, f"{name}/config.pbtxt is stale"


def test_every_stage_has_a_model_py_and_ensembles_an_empty_version():
    assert set(STAGES) == set(PYTHON_STAGES) | set(ONNX_STAGES)
    for stage in STAGES:
        text = (REPO / stage / "1" / "model.py").read_text()
        assert f'stage_model("{stage}")' in text and "ANONCODEC_SYS_PATH" in text
    for name in ENSEMBLES:
        assert [p.name for p in (REPO / name / "1").iterdir()] == [".gitkeep"]


def test_public_contract_of_the_ensembles():
    configs = render_configs()
    frame, bitstream = configs["anonymize_frame"], configs["analyze_bitstream"]

    def tensors(text, kind):
        block = re.search(rf"^{kind} \[(.*?)^\]", text, re.S | re.M).group(1)
        return re.findall(r'name: "(\w+)"\s+data_type: (\w+)\s+dims: \[ ([^\]]*) \]', block)

    outputs = [("ANONYMIZED", "TYPE_UINT8", "-1, -1, 3"), ("BOXES", "TYPE_FP32", "-1, 4"),
               ("SCORES", "TYPE_FP32", "-1")]
    assert tensors(frame, "input") == [("FRAME", "TYPE_UINT8", "-1, -1, 3")]
    assert tensors(frame, "output") == outputs + [("BITS", "TYPE_INT64", "1")]
    assert tensors(bitstream, "input") == [("PACKET", "TYPE_STRING", "1")]
    assert tensors(bitstream, "output") == outputs


@pytest.mark.parametrize("name", sorted(ENSEMBLES))
def test_ensemble_steps_are_wired(name):
    inputs, outputs, steps = ENSEMBLES[name]
    available = {t[0] for t in inputs}
    for stage, in_map, out_map in steps:
        stage_in, stage_out = stage_tensors(stage)
        assert set(in_map) == {t[0] for t in stage_in}, stage
        assert set(out_map) <= {t[0] for t in stage_out}, stage
        assert set(in_map.values()) <= available, f"{stage} reads a tensor nobody produced"
        available |= set(out_map.values())
    assert {t[0] for t in outputs} <= available


# a YOLO (ONNX) detector, whose stage follows --backend (the default SSD stays a python stage)
YOLO = {"detector_kind": "yolo", "detector_height": 640, "detector_width": 640, "person_classes": (0, 1)}


def test_the_default_detector_is_the_ssd_at_300():
    options = RepositoryOptions()
    assert (options.detector_kind, options.detector_height, options.detector_width, options.person_classes) == \
        ("ssd", 300, 300, (1,))


def test_backends_change_only_the_onnx_stages():
    base = render_configs(RepositoryOptions(backend="python", **YOLO))
    for backend, platform in (("onnxruntime", "onnxruntime_onnx"), ("tensorrt", "tensorrt_plan")):
        other = render_configs(RepositoryOptions(backend=backend, **YOLO))
        for name in base:
            if name in ONNX_STAGES:
                assert f'platform: "{platform}"' in other[name] and "KIND_CPU" not in other[name]
                assert re.findall(r'name: "(\w+)"', other[name]) == re.findall(r'name: "(\w+)"', base[name])
            else:
                assert other[name] == base[name]
    assert 'backend: "python"' in base["encoder"] and "intra_op_threads" in base["encoder"]


def test_detector_options_reach_the_configs():
    configs = render_configs(RepositoryOptions(detector_height=320, detector_width=416, person_classes=(0,),
                                               conf=0.5, max_height=480, max_width=640))
    assert "dims: [ 3, 320, 416 ]" in configs["detector"]  # batched: Triton adds the batch
    assert "dims: [ 1, 3, 320, 416 ]" in configs["decoder_postprocess"]
    assert 'string_value: "0"' in configs["detector_postprocess"] and '"0.5"' in configs["detector_postprocess"]
    assert '"480"' in configs["frame_preprocess"] and '"640"' in configs["entropy_decode"]
    with pytest.raises(ConfigError):
        RepositoryOptions(backend="openvino")
    with pytest.raises(ConfigError):
        RepositoryOptions(conf=2.0)


def test_an_ssd_detector_changes_only_the_detector_stages():
    from anoncodec.serving.model_config import ModelConfig

    base = render_configs(RepositoryOptions(detector_height=300, detector_width=300, person_classes=(1,),
                                            detector_kind="yolo"))
    ssd = render_configs(RepositoryOptions(detector_height=300, detector_width=300, person_classes=(1,),
                                           detector_kind="ssd"))
    assert "detector_kind" not in "".join(base.values())  # YOLO configs do not name a kind
    for name in base:
        if name in ("detector", "detector_postprocess"):
            assert ModelConfig.from_text(ssd[name]).parameters["detector_kind"] == "ssd"
            # same tensors: the ensembles' wiring and public contract do not change
            assert re.findall(r'name: "(\w+)"', ssd[name]) == re.findall(r'name: "(\w+)"', base[name])
        else:
            assert ssd[name] == base[name], name
    assert "dims: [ 3, 300, 300 ]" in ssd["detector"] and 'string_value: "1"' in ssd["detector_postprocess"]
    # OpenCV DNN has no native Triton backend: the ssd detector stays a python stage on the CPU
    native = render_configs(RepositoryOptions(backend="onnxruntime", detector_kind="ssd"))
    parsed = ModelConfig.from_text(native["detector"])
    assert (parsed.backend, parsed.platform) == ("python", "") and "KIND_CPU" in native["detector"]
    assert parsed.parameters == {"detector_kind": "ssd", "intra_op_threads": "0"}
    assert 'platform: "onnxruntime_onnx"' in native["encoder"] and 'platform: "onnxruntime_onnx"' in native["decoder"]
    with pytest.raises(ConfigError, match="detector_kind"):
        RepositoryOptions(detector_kind="rcnn")


def test_check_repository_asks_for_an_export(tmp_path):
    with pytest.raises(ExportError, match="anoncodec export"):
        check_repository(tmp_path / "nope")
    write_configs(tmp_path)
    with pytest.raises(ExportError, match=r"codec.json is missing.*anoncodec export"):
        check_repository(tmp_path)
    write_configs(tmp_path, RepositoryOptions(backend="onnxruntime"))
    with pytest.raises(ExportError, match="--backend python"):
        check_repository(tmp_path)
    write_configs(tmp_path)
    (tmp_path / "frame_preprocess" / "config.pbtxt").write_text('name: "frame_preprocess"\nbackend: "python\n')
    with pytest.raises(ExportError, match=r"frame_preprocess/config.pbtxt: config.pbtxt line 2.*anoncodec export"):
        check_repository(tmp_path)


def test_port_in_use():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert port_in_use("127.0.0.1", port)
    assert not port_in_use("127.0.0.1", port)


def test_find_tritonserver():
    pytest.importorskip("pytriton", reason="nvidia-pytriton (extra `serve`) is not installed")
    install = find_tritonserver()
    assert install.binary.is_file() and install.stub.is_file()


def test_cli_refuses_to_serve_an_empty_repository(tmp_path, capsys):
    from anoncodec.cli.main import main

    pytest.importorskip("pytriton", reason="nvidia-pytriton (extra `serve`) is not installed")
    assert main(["serve", "--repository", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("anoncodec serve: error:") and "anoncodec export" in err


def test_cli_export_refuses_a_missing_detector(tmp_path, capsys):
    from anoncodec.cli.main import main
    from anoncodec.codec import save_checkpoint
    from tests.conftest import tiny_codec

    save_checkpoint(tmp_path / "tiny.pt", tiny_codec())
    assert main(["export", "--checkpoint", str(tmp_path / "tiny.pt"), "--repository", str(tmp_path / "r"),
                 "--detector", str(tmp_path / "nope.onnx")]) == 2
    assert "--detector" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(tmp_path / "missing.pt"), "--repository", str(tmp_path / "r")]) == 2


def test_instances_set_instance_group_count():
    from anoncodec.serving.repository import RepositoryOptions, _stage_config

    assert "count: 3\n    kind: KIND_CPU" in _stage_config("detector", RepositoryOptions(instances=3))
    options = RepositoryOptions(backend="tensorrt", instances=2, **YOLO)
    assert "count: 2\n    kind: KIND_GPU" in _stage_config("detector", options)
    assert "instance_group" not in _stage_config("detector", RepositoryOptions(backend="onnxruntime", **YOLO))
    assert "count: 2\n    kind: KIND_CPU" in _stage_config("detector", RepositoryOptions(backend="tensorrt",
                                                                                          instances=2))
    with pytest.raises(ConfigError):
        RepositoryOptions(instances=0)


def test_batched_stages_get_a_dynamic_batcher_and_lose_their_leading_dim():
    configs = render_configs(RepositoryOptions(max_batch=8, batch_delay_us=500))
    for stage in ONNX_STAGES:
        text = configs[stage]
        assert "max_batch_size: 8\n" in text
        assert "dynamic_batching {\n  max_queue_delay_microseconds: 500\n}" in text
    assert "dims: [ 3, -1, -1 ]" in configs["encoder"] and "dims: [ -1, -1, -1 ]" in configs["decoder"]
    for name in PYTHON_STAGES + tuple(ENSEMBLES):  # variable outputs (boxes, bytes): not batched
        assert "max_batch_size: 0\n" in configs[name] and "dynamic_batching" not in configs[name]
    unbatched = render_configs(RepositoryOptions(max_batch=0))
    for stage in ONNX_STAGES:
        assert "max_batch_size: 0\n" in unbatched[stage] and "dynamic_batching" not in unbatched[stage]
    assert "dims: [ 1, 3, 300, 300 ]" in unbatched["detector"]
    with pytest.raises(ConfigError, match="max_batch"):
        RepositoryOptions(max_batch=-1)
    with pytest.raises(ConfigError, match="batch_delay_us"):
        RepositoryOptions(batch_delay_us=-5)
