"""Shared fixtures of the integration tests: one exported repository, one real tritonserver.

The repository holds a tiny untrained codec (N=8, one extra block) and the offline YOLO
person detector, exported with ``anoncodec export`` into a temporary folder; the server
(pip ``nvidia-pytriton``) is started once per test session on free ports and stopped by
pid at the end. A missing ``tritonserver`` skips the tests that need it, with the reason.
"""

from __future__ import annotations

import pytest

from anoncodec.cli.main import main
from anoncodec.serving.launcher import free_ports
from tests.conftest import tiny_codec

# Largest frame the exported repository accepts: the sample clip's 768x576 fits.
REPO_MAX_H, REPO_MAX_W = 576, 768


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """``tmp/tiny.pt``, its camera export ``tmp/onnx/`` and the model repository ``tmp/repo/``."""
    from anoncodec.codec import save_checkpoint
    from anoncodec.codec.onnx_export import export_codec

    tmp = tmp_path_factory.mktemp("triton")
    model = tiny_codec("factorized", extra_blocks=1)
    save_checkpoint(tmp / "tiny.pt", model)
    export_codec(model, tmp / "onnx")  # the camera's export, for EdgeEncoder and the reference
    assert main(["export", "--checkpoint", str(tmp / "tiny.pt"), "--repository", str(tmp / "repo"),
                 "--max-height", str(REPO_MAX_H), "--max-width", str(REPO_MAX_W)]) == 0
    return tmp


def start_own_server(exported, log_dir):
    """A started :class:`~anoncodec.serving.launcher.TritonServer` of the test's own on the
    exported repository (for tests that crash or restart it); skips without tritonserver."""
    from anoncodec.config import ServeConfig
    from anoncodec.errors import MissingDependencyError
    from anoncodec.serving.launcher import TritonServer, find_tritonserver

    try:
        find_tritonserver()
    except MissingDependencyError as exc:
        pytest.skip(f"no tritonserver binary: {exc}")
    grpc, http, metrics = free_ports(3)
    server = TritonServer(ServeConfig(repository=str(exported / "repo"), grpc_port=grpc, http_port=http,
                                      metrics_port=metrics), log_file=log_dir / "tritonserver.log")
    server.start()
    return server


@pytest.fixture(scope="session")
def server(exported):
    """A running :class:`~anoncodec.serving.launcher.TritonServer` on the exported repository."""
    from anoncodec.config import ServeConfig
    from anoncodec.errors import MissingDependencyError
    from anoncodec.serving.launcher import TritonServer, find_tritonserver

    try:
        find_tritonserver()
    except MissingDependencyError as exc:
        pytest.skip(f"no tritonserver binary: {exc}")
    grpc, http, metrics = free_ports(3)
    config = ServeConfig(repository=str(exported / "repo"), grpc_port=grpc, http_port=http, metrics_port=metrics)
    srv = TritonServer(config, log_file=exported / "tritonserver.log")
    srv.start()
    yield srv
    process = srv.process
    srv.close()
    assert process.returncode == 0, srv.log_tail()
