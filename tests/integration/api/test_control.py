"""The management API on a running hub: states, pause/resume/restart, offsets, topics,
triggers that a connector cannot honour, metrics, and no secret in any answer."""

from __future__ import annotations

import httpx

from tests.integration.api.conftest import PASSWORD, TOKEN, RunningHub, wait_for


def _state(c: httpx.Client, name: str) -> str:
    return str(c.get(f"/connectors/{name}").json()["state"])


def _committed(c: httpx.Client, name: str) -> int:
    parts = c.get(f"/connectors/{name}/offsets").json()["partitions"]
    return sum(p["committed"] or 0 for p in parts)


def test_connectors_list_every_configured_connector_with_kind_type_and_state(
    running_hub: RunningHub,
) -> None:
    with running_hub.client() as c:
        wait_for(lambda: _state(c, "files") == "RUNNING", what="files RUNNING")
        body = c.get("/connectors").json()
    by_name = {x["name"]: x for x in body}
    assert set(by_name) == {"legacy", "ghost", "files", "warehouse", "search"}
    assert by_name["legacy"]["kind"] == "source"
    assert by_name["legacy"]["type"] == "sql_poll"
    assert by_name["files"]["kind"] == "sink"
    assert by_name["files"]["lag"] == {"records": 0, "seconds": 0.0}


def test_a_source_whose_table_is_missing_is_failed_with_the_reason(
    running_hub: RunningHub,
) -> None:
    with running_hub.client() as c:
        wait_for(lambda: _state(c, "ghost") == "FAILED", what="ghost FAILED")
        ghost = c.get("/connectors/ghost").json()
        assert "does not exist" in ghost["error"]
        refused = c.put("/connectors/ghost/pause")
        assert refused.status_code == 409
        assert "restart it instead" in refused.json()["detail"]


def test_a_sink_that_cannot_reach_its_engine_shows_retrying_with_the_error_masked(
    running_hub: RunningHub,
) -> None:
    with running_hub.client() as c:
        wait_for(lambda: _state(c, "search") == "RETRYING", what="search RETRYING")
        search = c.get("/connectors/search").json()
    assert search["error"]
    assert search["retries"] >= 1
    assert search["config"]["password"] == "***"


def test_records_flow_and_sink_lag_and_offsets_show_it(running_hub: RunningHub) -> None:
    running_hub.insert(1, 50)
    with running_hub.client() as c:
        wait_for(lambda: _committed(c, "files") == 50, what="files committed 50")
        offsets = c.get("/connectors/files/offsets").json()
        source = c.get("/connectors/legacy/offsets").json()
        topics = c.get("/topics").json()
    assert offsets["kind"] == "sink"
    [part] = offsets["partitions"]
    assert (part["topic"], part["committed"], part["end"], part["lag"]) == (
        "legacy.orders", 50, 50, 0)
    assert source["kind"] == "source" and source["checkpoint"]
    [topic] = [t for t in topics if t["name"].startswith("legacy.")]
    assert topic["records"] == 50
    assert topic["size_bytes"] > 0


def test_pause_holds_a_sink_back_and_resume_lets_it_catch_up(running_hub: RunningHub) -> None:
    with running_hub.client() as c:
        wait_for(lambda: _state(c, "files") == "RUNNING", what="files RUNNING")
        r = c.put("/connectors/files/pause")
        assert r.status_code == 202
        wait_for(lambda: _state(c, "files") == "PAUSED", what="files PAUSED")
        running_hub.insert(1, 20)
        wait_for(lambda: _committed(c, "warehouse") == 20, what="warehouse at 20")
        files = c.get("/connectors/files").json()
        assert files["state"] == "PAUSED"
        assert files["lag"]["records"] == 20
        assert c.put("/connectors/files/resume").status_code == 202
        wait_for(lambda: _committed(c, "files") == 20, what="files caught up after resume")


def test_offsets_reset_is_refused_while_running_and_rewinds_a_paused_sink(
    running_hub: RunningHub,
) -> None:
    running_hub.insert(1, 30)
    with running_hub.client() as c:
        wait_for(lambda: _committed(c, "files") == 30, what="files at 30")
        refused = c.post("/connectors/files/offsets/reset", params={"to": "earliest"})
        assert refused.status_code == 409
        assert "pause it first" in refused.json()["detail"]
        c.put("/connectors/files/pause")
        wait_for(lambda: _state(c, "files") == "PAUSED", what="files PAUSED")
        bad = c.post("/connectors/files/offsets/reset", params={"to": "yesterday"})
        assert bad.status_code == 400
        reset = c.post("/connectors/files/offsets/reset", params={"to": "earliest"})
        assert reset.status_code == 200, reset.text
        assert [p["committed"] for p in reset.json()["partitions"]] == [0]
        wait_for(lambda: _state(c, "files") == "PAUSED", what="files still PAUSED after reset")
        assert _committed(c, "files") == 0
        c.put("/connectors/files/resume")
        wait_for(lambda: _committed(c, "files") == 30, what="files replayed to 30")


def test_restart_brings_a_fresh_worker_up(running_hub: RunningHub) -> None:
    with running_hub.client() as c:
        wait_for(lambda: _state(c, "warehouse") == "RUNNING", what="warehouse RUNNING")
        r = c.post("/connectors/warehouse/restart")
        assert r.status_code == 202
        wait_for(lambda: _state(c, "warehouse") == "RUNNING", what="warehouse RUNNING again")
        running_hub.insert(1, 5)
        wait_for(lambda: _committed(c, "warehouse") == 5, what="warehouse at 5")


def test_unknown_connectors_answer_404_and_impossible_actions_409(
    running_hub: RunningHub,
) -> None:
    with running_hub.client() as c:
        assert c.get("/connectors/nope").status_code == 404
        assert c.put("/connectors/nope/pause").status_code == 404
        snap = c.post("/connectors/legacy/snapshot")
        assert snap.status_code == 409
        assert "no incremental snapshot" in snap.json()["detail"]
        assert c.post("/connectors/files/snapshot").status_code == 409
        export = c.post("/connectors/files/export")
        assert export.status_code == 409
        assert "give it a schedule" in export.json()["detail"]
        assert c.post("/connectors/warehouse/export").status_code == 409
        assert c.post("/connectors/legacy/offsets/reset",
                      params={"to": "earliest"}).status_code == 409


def test_metrics_expose_states_lag_topics_and_memory(running_hub: RunningHub) -> None:
    running_hub.insert(1, 10)
    with running_hub.client() as c:
        wait_for(lambda: _committed(c, "files") == 10, what="files at 10")
        text = c.get("/metrics").text
    assert 'changehub_connector_state{connector="files",kind="sink",state="RUNNING",' \
           'type="batch"} 1.0' in text
    assert 'changehub_sink_lag_records{sink="files"} 0.0' in text
    assert 'changehub_topic_records{topic="legacy.orders"} 10.0' in text
    assert "changehub_connector_records_total" in text
    assert "changehub_process_resident_memory_bytes" in text
    assert 'changehub_sink_dead_letters_total{sink="files"} 0.0' in text


def test_no_answer_carries_a_secret(running_hub: RunningHub) -> None:
    with running_hub.client() as c:
        wait_for(lambda: _state(c, "search") == "RETRYING", what="search RETRYING")
        answers = [c.get(p).text for p in (
            "/connectors", "/connectors/search", "/status", "/metrics", "/topics",
            "/connectors/search/offsets", "/openapi.json")]
    for text in answers:
        assert PASSWORD not in text
        assert TOKEN not in text


def test_concurrent_restarts_leave_exactly_one_worker(running_hub: RunningHub) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    with running_hub.client() as c:
        wait_for(lambda: _state(c, "warehouse") == "RUNNING", what="warehouse RUNNING")
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(
            lambda _: httpx.post(f"{running_hub.url}/connectors/warehouse/restart",
                                 headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60),
            range(6)))
    assert [a.status_code for a in answers] == [202] * 6
    alive = [t for t in threading.enumerate() if t.name == "sink:warehouse" and t.is_alive()]
    assert len(alive) == 1
    assert alive[0] is running_hub.hub.worker("warehouse")
