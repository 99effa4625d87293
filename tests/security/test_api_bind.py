"""The API never listens beyond loopback without a token: refused in the config, refused again
when a config built in code reaches the server, and a hub whose file asks for it does not
start (``changehub run`` exits 2 naming the fix)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hub.api.server import start_api
from hub.config import ApiConfig, load_pipeline
from hub.errors import ConfigError, UsageError
from hub.runtime import Hub


@pytest.mark.parametrize("listen", ["0.0.0.0:0", "[::]:0", "192.0.2.1:0", "example.com:0"])
def test_a_config_built_in_code_cannot_open_the_api_without_a_token(
    tmp_path: Path, listen: str
) -> None:
    (tmp_path / "p.yaml").write_text(f"log: {{path: {tmp_path / 'log'}}}\n"
                                     "api: {enabled: false}\n")
    hub = Hub(load_pipeline(tmp_path / "p.yaml", env={}))
    unchecked = ApiConfig.model_construct(enabled=True, listen=listen, token=None)
    with pytest.raises(UsageError, match="without a token"):
        start_api(hub, unchecked)


@pytest.mark.parametrize("token", ["", "${CHANGEHUB_TOKEN:-}"])
def test_an_empty_or_unset_token_does_not_count(tmp_path: Path, token: str) -> None:
    file = tmp_path / "p.yaml"
    file.write_text(f"api: {{listen: '0.0.0.0:8083', token: '{token}'}}\n")
    with pytest.raises(ConfigError, match="token is required"):
        load_pipeline(file, env={})


def test_changehub_run_refuses_a_public_bind_without_a_token(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "p.yaml").write_text(f"log: {{path: ./log}}\napi: {{listen: '0.0.0.0:{port}'}}\n")
    done = subprocess.run([sys.executable, "-m", "hub.cli", "run", "p.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done
    assert "a token is required" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "log").exists()  # refused before anything started
