"""The bearer token: required for data and control, compared exactly, required off loopback."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from hub.config import load_pipeline
from hub.errors import ConfigError
from tests.integration.api.conftest import TOKEN, RunningHub, open_api

GUARDED = ["/connectors", "/connectors/files", "/connectors/files/offsets", "/topics",
           "/status", "/metrics"]


@pytest.mark.parametrize("path", GUARDED)
def test_a_request_without_a_token_is_refused(running_hub: RunningHub, path: str) -> None:
    with running_hub.client(token=None) as c:
        r = c.get(path)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert "needs a token" in r.json()["detail"]


@pytest.mark.parametrize("token", ["wrong", TOKEN[:-1], TOKEN + "x", TOKEN.upper(), "Bearer"])
def test_a_wrong_token_is_refused(running_hub: RunningHub, token: str) -> None:
    with running_hub.client(token=token) as c:
        assert c.get("/connectors").status_code == 401
        assert c.put("/connectors/files/pause").status_code == 401
    assert running_hub.hub.worker("files").status.state.value != "PAUSED"


def test_a_token_in_another_scheme_is_refused(running_hub: RunningHub) -> None:
    r = httpx.get(f"{running_hub.url}/connectors", headers={"Authorization": f"Basic {TOKEN}"})
    assert r.status_code == 401


def test_the_right_token_is_let_in(running_hub: RunningHub) -> None:
    with running_hub.client() as c:
        for path in GUARDED:
            assert c.get(path).status_code == 200, path


def test_the_page_and_schema_are_served_without_a_token_but_carry_no_data(
    running_hub: RunningHub,
) -> None:
    with running_hub.client(token=None) as c:
        page = c.get("/")
        schema = c.get("/openapi.json")
    assert page.status_code == 200
    assert "legacy" not in page.text
    assert schema.status_code == 200
    assert schema.json()["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_a_bind_beyond_loopback_needs_a_token_in_the_config(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    file.write_text("api: {listen: '0.0.0.0:8083'}\n"
                    "sinks: [{name: f, type: batch, topics: [a], path: ./x}]\n")
    with pytest.raises(ConfigError, match="a token is required"):
        load_pipeline(file)


def test_a_hub_bound_beyond_loopback_refuses_requests_without_its_token(
    running_hub: RunningHub,
) -> None:
    api = open_api(running_hub.hub, "0.0.0.0:0", "other-t0ken")
    try:
        port = api.url.rsplit(":", 1)[1]
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/connectors").status_code == 401
        ok = httpx.get(f"{base}/connectors", headers={"Authorization": "Bearer other-t0ken"})
        assert ok.status_code == 200
    finally:
        api.stop()


def test_an_ipv6_loopback_bind_serves_without_a_token(running_hub: RunningHub) -> None:
    api = open_api(running_hub.hub, "[::1]:0", None)
    try:
        assert api.url.startswith("http://[::1]:")
        assert httpx.get(f"{api.url}/connectors").status_code == 200
    finally:
        api.stop()
