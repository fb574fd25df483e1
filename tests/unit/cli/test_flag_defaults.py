"""Every flag default comes from its config dataclass; camera packets mode by default; export
never rewrites the committed model repository."""

from __future__ import annotations

import argparse
import dataclasses
import logging

import pytest

from anoncodec.cli.main import build_parser, main
from anoncodec.config import ServeConfig
from anoncodec.contract import DEFAULT_MODE, MAX_FRAME_HEIGHT, MAX_FRAME_WIDTH, MODES
from anoncodec.edge.client import ClientConfig
from anoncodec.edge.guard import GuardConfig
from anoncodec.errors import ExportError
from anoncodec.serving.export import SOURCE_REPOSITORY, export_repository
from anoncodec.serving.repository import RepositoryOptions
from anoncodec.serving.stages import FrameLimits


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def _defaults(name: str, *argv: str) -> argparse.Namespace:
    return _subparser(name).parse_args(list(argv))


def _guard_flags(name: str) -> dict[str, object]:
    return {a.option_strings[0]: a.default for a in _subparser(name)._actions
            if a.option_strings and a.option_strings[0].startswith("--guard")}


def test_camera_defaults_are_the_client_config_and_the_contract():
    args, config = _defaults("camera", "--source", "x.mp4"), ClientConfig()
    assert args.mode == DEFAULT_MODE == "packets"
    assert _subparser("camera")._option_string_actions["--mode"].choices == list(MODES)
    pairs = {"url": "url", "export_dir": "export_dir", "max_in_flight": "max_in_flight",
             "buffer_size": "buffer_size", "when_full": "when_full", "outage_timeout": "outage_timeout_s",
             "retries": "retries", "backoff": "backoff_s", "backoff_max": "backoff_max_s",
             "timeout": "request_timeout_s", "metrics_addr": "metrics_addr", "encoder_threads": "encoder_threads"}
    assert {flag: getattr(args, flag) for flag in pairs} == {flag: getattr(config, f) for flag, f in pairs.items()}


def test_encode_and_camera_have_the_same_guard_flags_with_the_guards_defaults():
    encode, camera = _guard_flags("encode"), _guard_flags("camera")
    # one flag per GuardConfig field, on both commands
    fields = [f.name for f in dataclasses.fields(GuardConfig)]
    assert encode.keys() == camera.keys() == {"--guard"} | {"--guard-" + f.replace("_", "-") for f in fields}
    guard = GuardConfig()
    for flags in (encode, camera):
        assert {f: flags["--guard-" + f.replace("_", "-")] for f in fields} == dataclasses.asdict(guard)
    assert encode["--guard"] is True and camera["--guard"] is None  # camera: on exactly in packets mode


def test_camera_guard_flags_reach_the_camera_encoder(tmp_path):
    from anoncodec.cli.camera import _encoder, client_config
    from anoncodec.codec.onnx_export import export_codec
    from tests.conftest import tiny_codec

    export_codec(tiny_codec("factorized"), tmp_path)
    args = _defaults("camera", "--source", "x.mp4", "--export-dir", str(tmp_path), "--guard-upscale", "2",
                     "--guard-margin", "2", "--guard-max-side", "1280")
    config = client_config(args)
    assert config.guard_on and config.guard_settings == GuardConfig(margin=2, upscale=2.0, max_side=1280)
    encoder = _encoder(args, config)
    assert encoder.guard.config == GuardConfig(margin=2, upscale=2.0, max_side=1280)
    args.guard = False
    assert _encoder(args, client_config(args)).guard is None


def test_camera_packets_without_an_encoder_is_one_clear_line(tmp_path, capsys):
    assert main(["camera", "--source", "x.mp4", "--export-dir", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("anoncodec camera: error: --mode packets") and "\n" not in err
    assert "--export-dir" in err and "anoncodec export" in err


def test_camera_frames_mode_warns_that_raw_frames_leave_the_camera(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="anoncodec.cli.camera"):
        # the missing source fails after the start, where the warning is logged
        assert main(["camera", "--source", str(tmp_path / "missing.mp4"), "--mode", "frames"]) == 2
    (record,) = [r for r in caplog.records if r.name == "anoncodec.cli.camera"]
    assert record.levelno == logging.WARNING and "raw frames, faces included, leave the camera" in record.getMessage()


def test_export_and_serve_defaults_are_the_configs():
    export, options = _defaults("export"), RepositoryOptions()
    assert (export.backend, export.max_height, export.max_width, export.detector_size, export.person_classes,
            export.conf, export.iou, export.threads, export.instances, export.max_batch, export.batch_delay_us) == (
        options.backend, options.max_height, options.max_width, options.detector_height, options.person_classes,
        options.conf, options.iou, options.threads, options.instances, options.max_batch, options.batch_delay_us)
    serve = _defaults("serve")
    assert {f.name: getattr(serve, f.name) for f in dataclasses.fields(ServeConfig) if hasattr(serve, f.name)
            and getattr(serve, f.name) is not None} == {
        f.name: getattr(ServeConfig(), f.name) for f in dataclasses.fields(ServeConfig)
        if hasattr(serve, f.name) and getattr(serve, f.name) is not None}
    assert (options.max_height, options.max_width) == (FrameLimits().max_height, FrameLimits().max_width) == (
        MAX_FRAME_HEIGHT, MAX_FRAME_WIDTH)


def _committed_files() -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(SOURCE_REPOSITORY.rglob("*")) if p.is_file()}


def test_export_with_other_options_needs_its_own_repository(tmp_path, capsys, monkeypatch):
    before = _committed_files()
    monkeypatch.chdir(SOURCE_REPOSITORY.parent)  # where `model_repository` is the committed one
    assert main(["export", "--max-batch", "0", "--max-height", "1080", "--checkpoint", "missing.pt"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--max-height, --max-batch differ from the defaults" in err and "--repository DIR" in err
    assert "missing.pt" not in err and "\n" not in err  # refused before the checkpoint is even looked up
    for repository in (SOURCE_REPOSITORY, "model_repository"):  # named explicitly: refused as well
        assert main(["export", "--max-batch", "0", "--repository", str(repository)]) == 2
        assert "committed repository of the default options" in capsys.readouterr().err
    with pytest.raises(ExportError, match="max_batch"):
        export_repository(None, SOURCE_REPOSITORY, RepositoryOptions(max_batch=0), model=object())
    assert _committed_files() == before
    assert "only when every option below is at its default" in " ".join(_subparser("export").format_help().split())


def test_export_destination_is_the_default_repository_only_for_default_options():
    from anoncodec.cli.export import destination, repository_options

    args = _defaults("export")
    assert repository_options(args) == RepositoryOptions()
    assert destination(args, repository_options(args)) == ServeConfig().repository
    custom = _defaults("export", "--backend", "onnxruntime", "--repository", "elsewhere")
    assert destination(custom, repository_options(custom)) == "elsewhere"
