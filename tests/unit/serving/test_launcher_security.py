"""Launcher and ServeConfig security options without a running server: the tritonserver
command line (TLS, mutual TLS, restricted protocols), the admin key file, redaction,
``anoncodec serve`` flags, and the shared memory a killed server leaves behind."""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from anoncodec.config import ADMIN_PROTOCOLS, ServeConfig, is_loopback
from anoncodec.errors import ConfigError, MissingDependencyError
from anoncodec.serving import launcher
from anoncodec.serving.launcher import TritonServer, read_admin_key

KEY = "k" * 8 + "-_0123456789ABCDEF"


@pytest.fixture
def files(tmp_path):
    for name in ("cert.pem", "key.pem", "ca.pem"):
        (tmp_path / name).write_text("PEM\n")
    key_file = tmp_path / "admin.key"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o600)
    return tmp_path


@pytest.fixture
def make_server(monkeypatch, tmp_path):
    try:
        launcher.find_tritonserver()
    except MissingDependencyError as exc:
        pytest.skip(f"no tritonserver binary: {exc}")
    monkeypatch.setattr(launcher, "check_repository", lambda repo: Path(repo))
    servers = []

    def make(**kw):
        server = TritonServer(ServeConfig(repository=str(tmp_path), **kw))
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def test_tls_and_admin_key_reach_the_command_line(make_server, files):
    server = make_server(tls_cert=str(files / "cert.pem"), tls_key=str(files / "key.pem"),
                         tls_client_ca=str(files / "ca.pem"), admin_key_file=str(files / "admin.key"),
                         host="0.0.0.0", http_host="127.0.0.1")
    command = server.command()
    group = f"{','.join(ADMIN_PROTOCOLS)}:admin-key={KEY}"
    for flag in ("--grpc-use-ssl=true", f"--grpc-server-cert={files / 'cert.pem'}",
                 f"--grpc-server-key={files / 'key.pem'}", "--grpc-use-ssl-mutual=true",
                 f"--grpc-root-cert={files / 'ca.pem'}", f"--grpc-restricted-protocol={group}",
                 f"--http-restricted-api={group}", "--grpc-address=0.0.0.0", "--http-address=127.0.0.1"):
        assert flag in command, flag
    assert server.tls and server.http_url.startswith("http://127.0.0.1:")
    assert KEY not in server._redacted(command) and "admin-key=***" in server._redacted(command)
    assert server.admin_headers() == {"triton-grpc-protocol-admin-key": KEY}
    assert server.admin_headers("http") == {"admin-key": KEY}


def test_without_security_options_the_command_is_unchanged(make_server):
    command = make_server().command()
    assert not [c for c in command if "ssl" in c or "restricted" in c]
    assert "--http-address=127.0.0.1" in command


def test_server_only_tls_and_custom_protocols(make_server, files):
    server = make_server(tls_cert=str(files / "cert.pem"), tls_key=str(files / "key.pem"),
                         admin_key_file=str(files / "admin.key"), admin_protocols=("model-repository", "health"),
                         admin_header="x-ops")
    command = server.command()
    assert "--grpc-use-ssl=true" in command and not [c for c in command if "mutual" in c or "root-cert" in c]
    assert f"--grpc-restricted-protocol=model-repository,health:x-ops={KEY}" in command
    assert server.admin_headers() == {"triton-grpc-protocol-x-ops": KEY}


def test_missing_tls_files_are_refused(make_server, files):
    with pytest.raises(ConfigError, match="tls_cert=.*not a file"):
        make_server(tls_cert=str(files / "nope.pem"), tls_key=str(files / "key.pem"))


@pytest.mark.parametrize("content, match", [(None, "cannot read"), ("short", "at least 16"),
                                            ("a" * 20 + ":x=y", "A-Za-z0-9_-")])
def test_bad_admin_keys_are_refused(tmp_path, content, match):
    path = tmp_path / "admin.key"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=match):
        read_admin_key(path)


def test_a_readable_key_file_is_warned_about(tmp_path, caplog):
    path = tmp_path / "admin.key"
    path.write_text(KEY)
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="anoncodec.serving.launcher"):
        assert read_admin_key(path) == KEY
    assert "chmod 600" in caplog.text


@pytest.mark.parametrize("kwargs, match", [
    ({"tls_cert": "c.pem"}, "give both"),
    ({"tls_client_ca": "ca.pem"}, "needs serve.tls_cert"),
    ({"tls_cert": "c", "tls_key": "k", "host": "0.0.0.0"}, "http_host"),
    ({"tls_cert": "c", "tls_key": "k", "host": "10.0.0.5", "http_host": "10.0.0.5"}, "http_host"),
    ({"admin_protocols": ("model-repository", "admin")}, "unknown"),
    ({"admin_protocols": ("trace", "trace")}, "repeated"),
    ({"admin_key_file": "k", "admin_protocols": ()}, "empty"),
    ({"admin_header": "Admin_Key"}, "admin_header"),
])
def test_serve_config_checks_security_options(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ServeConfig(**kwargs)


def test_serve_config_round_trips_with_security_options():
    config = ServeConfig(host="0.0.0.0", http_host="127.0.0.1", tls_cert="c", tls_key="k", tls_client_ca="ca",
                         admin_key_file="a", admin_protocols=("trace", "logging"))
    assert ServeConfig.from_dict(config.to_dict()) == config
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and not is_loopback("0.0.0.0")


def test_serve_flags_map_to_the_config(monkeypatch, files, capsys):
    from anoncodec.cli.main import main

    seen = {}

    class FakeServer:
        def __init__(self, config, log_file=None):
            seen["config"] = config

        def start(self):
            raise KeyboardInterrupt  # Ctrl-C right away

        def close(self):
            seen["closed"] = True

    monkeypatch.setattr(launcher, "TritonServer", FakeServer)
    assert main(["serve", "--repository", str(files), "--host", "0.0.0.0", "--http-host", "127.0.0.1",
                 "--tls-cert", str(files / "cert.pem"), "--tls-key", str(files / "key.pem"),
                 "--tls-client-ca", str(files / "ca.pem"), "--admin-key-file", str(files / "admin.key"),
                 "--admin-protocols", "model-repository,statistics"]) == 0
    config = seen["config"]
    assert (config.tls_cert, config.tls_client_ca, config.http_host) == (
        str(files / "cert.pem"), str(files / "ca.pem"), "127.0.0.1")
    assert config.admin_protocols == ("model-repository", "statistics") and seen["closed"]
    with pytest.raises(SystemExit):
        main(["serve", "--admin-protocols", "model-repository,bogus"])
    assert "unknown protocol" in capsys.readouterr().err


def test_kill_removes_the_shared_memory_a_killed_server_leaves(make_server):
    region = Path(f"/dev/shm/triton_python_backend_shm_region_{uuid.uuid4()}")
    if not Path("/dev/shm").is_dir():
        pytest.skip("no /dev/shm")
    code = ("import mmap, sys, time\n"
            f"f = open({str(region)!r}, 'w+b'); f.truncate(4096)\n"
            "m = mmap.mmap(f.fileno(), 4096); print('mapped', flush=True); time.sleep(60)\n")
    server = make_server()
    server.process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                                      start_new_session=True)
    try:
        assert server.process.stdout.readline().strip() == "mapped"
        assert str(region) in launcher._shm_regions(server.process.pid)
        status = server.kill()
        assert status == -9 and server.process is None
        assert not region.exists()
    finally:
        region.unlink(missing_ok=True)
