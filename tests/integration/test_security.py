"""Security options on the real tritonserver: mutual TLS, an admin key, no raw frames on disk.

One server (its own, on free ports) runs the exported repository with throwaway
certificates (``anoncodec.serving.tls``: a private CA, a server certificate for 127.0.0.1
and localhost, a camera certificate), client certificates required, and an admin key
that restricts model control, configuration, statistics, trace and logging on gRPC and
HTTP. Checks: the camera streams over TLS in both modes; plain-text, certificate-less and
foreign-CA clients are refused; admin endpoints need the key (which is never logged),
inference and health do not; a stream writes no raw frame bytes anywhere, and no image
or video besides the requested one.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import secrets
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from anoncodec.cli.main import main
from anoncodec.serving.launcher import free_ports
from tests.conftest import REPO, video_frame

pytestmark = [pytest.mark.slow, pytest.mark.triton]

grpcclient = pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] (extra `serve`) is not installed")
pytest.importorskip("prometheus_client", reason="prometheus-client (extra `serve`) is not installed")
cv2 = pytest.importorskip("cv2", reason="opencv (extra `edge`) is not installed")
from tritonclient.utils import InferenceServerException  # noqa: E402

H, W = 48, 64


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def secure(exported, tmp_path_factory):
    """``(server, certificates, key)``: mutual TLS and an admin key."""
    from anoncodec.config import ServeConfig
    from anoncodec.errors import MissingDependencyError
    from anoncodec.serving.launcher import TritonServer, find_tritonserver
    from anoncodec.serving.tls import throwaway_certificates

    tmp = tmp_path_factory.mktemp("secure")
    try:
        find_tritonserver()
        certs = throwaway_certificates(tmp / "certs")
        other = throwaway_certificates(tmp / "other-ca")  # a CA the server does not trust
    except MissingDependencyError as exc:
        pytest.skip(str(exc))
    key = secrets.token_urlsafe(32)
    key_file = tmp / "admin.key"
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    grpc, http, metrics = free_ports(3)
    config = ServeConfig(repository=str(exported / "repo"), grpc_port=grpc, http_port=http, metrics_port=metrics,
                         tls_cert=str(certs.server_cert), tls_key=str(certs.server_key),
                         tls_client_ca=str(certs.ca), admin_key_file=str(key_file))
    records = _Records()
    launcher_log = logging.getLogger("anoncodec.serving.launcher")
    launcher_log.addHandler(records)
    level = launcher_log.level
    launcher_log.setLevel(logging.DEBUG)
    server = TritonServer(config, log_file=tmp / "tritonserver.log")
    try:
        server.start()
    finally:
        launcher_log.removeHandler(records)
        launcher_log.setLevel(level)
    yield server, certs, other, key, records.messages
    server.close()


def _frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _tls_client(server, certs, **override):
    kw = dict(ssl=True, root_certificates=str(certs.ca), private_key=str(certs.client_key),
              certificate_chain=str(certs.client_cert))
    kw.update(override)
    return grpcclient.InferenceServerClient(server.grpc_url, **kw)


def _infer_frame(client):
    tensor = grpcclient.InferInput("FRAME", [H, W, 3], "UINT8")
    tensor.set_data_from_numpy(_frame())
    return client.infer("anonymize_frame", [tensor], client_timeout=30)


@pytest.mark.parametrize("mode", ["frames", "packets"])
def test_the_camera_streams_over_mutual_tls(secure, exported, mode):
    from anoncodec.edge.client import CameraClient
    from anoncodec.edge.client_config import ClientConfig
    from anoncodec.edge.sources import Frame

    server, certs, *_ = secure
    config = ClientConfig(url=server.grpc_url, mode=mode, export_dir=str(exported / "repo"), tls=True,
                          tls_ca=str(certs.ca), tls_cert=str(certs.client_cert), tls_key=str(certs.client_key),
                          retries=0)
    with CameraClient(config) as client:
        summary = client.run([Frame(i, i / 10, _frame(i)) for i in range(2)])
    assert (summary.frames_ok, summary.frames_failed) == (2, 0), summary.last_error


def test_plain_text_and_unauthenticated_clients_are_refused(secure):
    server, certs, other, *_ = secure
    assert _infer_frame(_tls_client(server, certs)).as_numpy("ANONYMIZED").shape == (H, W, 3)
    refused = {
        "plain text": grpcclient.InferenceServerClient(server.grpc_url),
        "no client certificate": _tls_client(server, certs, private_key=None, certificate_chain=None),
        "client certificate of another CA": _tls_client(server, certs, private_key=str(other.client_key),
                                                        certificate_chain=str(other.client_cert)),
        "server certificate not trusted": _tls_client(server, certs, root_certificates=str(other.ca)),
    }
    for what, client in refused.items():
        with pytest.raises(InferenceServerException) as info:
            _infer_frame(client)
        assert info.value.status() == "StatusCode.UNAVAILABLE", f"{what}: {info.value}"
    assert server.is_ready()


def test_the_camera_without_its_certificate_fails_with_a_hint(secure, tmp_path, capsys):
    server, certs, *_ = secure
    cv2.imwrite(str(tmp_path / "f.png"), _frame())
    code = main(["camera", "--source", str(tmp_path / "f.png"), "--url", server.grpc_url, "--mode", "frames",
                 "--retries", "0", "--no-progress", "--tls", "--tls-ca", str(certs.ca)])
    assert code == 2 and "--tls-cert" in capsys.readouterr().err


def test_admin_endpoints_need_the_key_inference_and_health_do_not(secure):
    server, certs, _, key, _ = secure
    client = _tls_client(server, certs)
    admin_calls = {
        "repository index": lambda **kw: client.get_model_repository_index(**kw),
        "statistics": lambda **kw: client.get_inference_statistics(**kw),
        "model config": lambda **kw: client.get_model_config("anonymize_frame", **kw),
        "trace settings": lambda **kw: client.get_trace_settings(**kw),
        "log settings": lambda **kw: client.get_log_settings(**kw),
        "unload a model": lambda **kw: client.unload_model("detector", **kw),
    }
    for what, call in admin_calls.items():
        with pytest.raises(InferenceServerException, match="restricted") as info:
            call()
        with pytest.raises(InferenceServerException, match="restricted"):
            call(headers={"triton-grpc-protocol-admin-key": "a-wrong-key-of-sufficient-length"})
        assert "restricted" in str(info.value), what
    headers = server.admin_headers()
    assert headers == {"triton-grpc-protocol-admin-key": key}
    from anoncodec.serving.repository import render_configs

    assert len(client.get_model_repository_index(headers=headers).models) == len(render_configs())
    assert client.get_inference_statistics(model_name="anonymize_frame", headers=headers) is not None
    assert client.is_server_ready() and client.get_model_metadata("anonymize_frame").name == "anonymize_frame"
    # HTTP: the same protocols need the plain header
    index = f"{server.http_url}/v2/repository/index"
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(urllib.request.Request(index, method="POST"), timeout=5)
    assert info.value.code == 403
    request = urllib.request.Request(index, method="POST", headers=server.admin_headers("http"))
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200 and len(json.loads(response.read())) == len(render_configs())
    with urllib.request.urlopen(f"{server.http_url}/v2/health/ready", timeout=5) as response:
        assert response.status == 200


def test_the_admin_key_is_never_logged(secure):
    server, _, _, key, messages = secure
    assert any("starting" in m and "--grpc-restricted-protocol=" in m for m in messages)
    assert not any(key in m for m in messages)
    assert key not in server.log_file.read_text(errors="replace")


def _files_changed_since(roots: list[Path], since: float, skip: tuple[str, ...]) -> list[Path]:
    found: set[Path] = set()
    for root in roots:
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d not in skip and not os.path.islink(os.path.join(folder, d))]
            for name in files:
                path = Path(folder, name)
                try:
                    st = path.lstat()
                except OSError:
                    continue
                if path.is_file() and not path.is_symlink() and st.st_mtime >= since and st.st_size < 2**28:
                    found.add(path)
    return sorted(found)


def test_a_stream_writes_no_raw_frames_anywhere(secure, exported, tmp_path):
    """Frames mode sends raw frames: neither the camera nor the server may store them."""
    server, certs, *_ = secure
    source, out = tmp_path / "source", tmp_path / "out"
    source.mkdir()
    out.mkdir()
    frames = [_frame(100 + i) for i in range(3)]
    for i, frame in enumerate(frames):
        cv2.imwrite(str(source / f"{i}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    # raw RGB rows of every frame: any 48-byte run of them in a file means a raw frame was written
    needles = [f.tobytes()[k: k + 48] for f in frames for k in range(0, f.nbytes - 48, 997)]
    time.sleep(0.05)
    start = time.time()
    for mode in ("frames", "packets"):
        argv = ["camera", "--source", str(source), "--url", server.grpc_url, "--mode", mode, "--export-dir",
                str(exported / "repo"), "--no-progress", "--tls", "--tls-ca", str(certs.ca), "--tls-cert",
                str(certs.client_cert), "--tls-key", str(certs.client_key), "--detections",
                str(out / f"{mode}.jsonl"), "--output-video", str(out / f"{mode}.avi"), "--metrics-port",
                str(free_ports(1)[0]), "--metrics-addr", "127.0.0.1"]
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            assert main(argv) == 0
        assert json.loads(stdout.getvalue())["frames_ok"] == 3
    control = tmp_path / "control.bin"  # proves the scan finds a raw frame when there is one
    control.write_bytes(frames[1].tobytes())
    roots = [tmp_path, Path(tempfile.gettempdir()), REPO, server.log_file.parent, exported / "repo"]
    changed = _files_changed_since(roots, start, skip=(".git", ".venv", "__pycache__", "node_modules"))
    ours = [p for p in changed if tmp_path in p.parents or server.log_file.parent in p.parents
            or (exported / "repo") in p.parents]
    assert control in changed
    changed.remove(control)
    assert sorted(p.name for p in ours if p.parent == out) == ["frames.avi", "frames.jsonl", "packets.avi",
                                                                "packets.jsonl"]
    media = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".npy", ".npz", ".raw", ".avi", ".mp4", ".mkv")
    assert [p for p in ours if p.suffix.lower() in media and p.parent != out] == []
    leaks = []
    for path in changed:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if any(needle in data for needle in needles):
            leaks.append(path)
    control_data = control.read_bytes()
    assert any(needle in control_data for needle in needles)
    assert leaks == [], f"raw frame bytes found in {leaks}"
    # the video holds the server's anonymized frames, not the raw ones
    first = video_frame(out / "frames.avi", 0)
    assert np.abs(first.astype(int) - frames[0].astype(int)).mean() > 20
    print(f"checked {len(changed)} files changed during the stream for raw frame bytes: none")
