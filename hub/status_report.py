"""``changehub status``: the pipeline's connectors as a table for the terminal.

Live from the running hub's API when one answers at ``api.listen`` (states, errors, rates,
lag); otherwise from the log, read-only (checkpoints and committed offsets: what survives a
stopped hub). :class:`StatusReport` also names the connectors the hub reports FAILED, so that
``changehub status`` can exit 1 for scripts and health checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from connectors.api import dead_letter_topic
from hub.api.client import api_base_url, fetch_status
from hub.config import PipelineConfig
from hub.errors import UsageError
from hub.metrics import sink_lag, sink_partitions
from hub.secrets import mask

__all__ = ["StatusReport", "status_report"]

_STYLE = {"RUNNING": "green", "FAILED": "bold red", "RETRYING": "yellow",
          "SNAPSHOTTING": "yellow", "STARTING": "yellow", "PAUSED": "blue", "STANDBY": "cyan",
          "STOPPED": "dim"}


class StatusReport(NamedTuple):
    view: RenderableType
    #: ``kind name`` of each connector the live hub reports FAILED (none from the log: a
    #: stopped hub's states are gone)
    failed: list[str]


def status_report(config: PipelineConfig) -> StatusReport:
    live = fetch_status(config.api)
    if live is not None and _same_file(live.get("pipeline"), config.path):
        failed = [f"{c['kind']} {c['name']}" for c in live["connectors"] if c["state"] == "FAILED"]
        return StatusReport(_live(live, api_base_url(config.api) or ""), failed)
    if live is None:
        return StatusReport(_from_log(config), [])
    # Another hub holds the address (two pipelines left at the default port, say): its
    # connectors are not this file's.
    note = (f"the API at {api_base_url(config.api)} serves another pipeline "
            f"({live.get('pipeline')}); give each pipeline its own api.listen")
    try:
        table = _from_log(config)
    except UsageError as exc:
        raise UsageError(f"{exc}\n{note}") from None
    return StatusReport(Group(table, Text(note, style="yellow")), [])


def _same_file(served: object, path: Path) -> bool:
    return isinstance(served, str) and Path(served).resolve() == path.resolve()


def _live(status: dict[str, Any], url: str) -> RenderableType:
    table = Table("connector", "kind", "type", "state", "records", "rec/s", "lag",
                  "retries", "dead letters", "progress",
                  title=f"live from the hub at {url}", title_justify="left")
    problems: list[Text] = []
    for c in status["connectors"]:
        lag = c.get("lag")
        progress = c.get("progress")
        table.add_row(
            c["name"], c["kind"], c["type"],
            Text(c["state"], style=_STYLE.get(c["state"], "")),
            str(c["records"]), f"{c['records_per_second']:.1f}",
            f"{lag['records']} rec / {lag['seconds']:.1f}s" if lag else "",
            str(c["retries"]), str(c["dead_letters"]),
            _progress(progress) if progress else "",
        )
        if c.get("error") and c["state"] in ("FAILED", "RETRYING"):
            problems.append(Text(f"{c['name']} {c['state']}: {mask(c['error'])}",
                                 style=_STYLE[c["state"]]))
    return Group(table, *problems)


def _progress(p: dict[str, Any]) -> str:
    if p.get("total"):
        return f"{p['what']} {100 * p['done'] // p['total']}%"
    return f"{p['what']} {p['done']}"


def _from_log(config: PipelineConfig) -> RenderableType:
    from hub.runtime import open_pipeline_log

    table = Table("connector", "kind", "type", "position / lag",
                  title="from the log (no hub API answered"
                  + (f" at {api_base_url(config.api)})" if api_base_url(config.api) else ")"),
                  title_justify="left")
    log = open_pipeline_log(config, read_only=True)
    try:
        for src in config.sources:
            cp = log.last_checkpoint(src.name)
            table.add_row(src.name, "source", src.type, mask(str(cp)) if cp else "not started")
        for s in config.sinks:
            parts = sink_partitions(log, list(s.topics), exclude=dead_letter_topic(s))
            lag = sink_lag(log, log.committed_offsets(s.name), parts)
            table.add_row(s.name, "sink", s.type,
                          f"{lag.records} records behind ({lag.seconds:.1f}s)")
    finally:
        log.close()
    return table
