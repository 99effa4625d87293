"""``changehub export SINK``: one scheduled sink's export, now, with a progress bar.

The log is opened for writing (offsets are committed at the end), so a hub running on the
same log holds its lock and the command says so instead of racing it: the running hub does
the scheduled exports itself.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from connectors.sink.batch.config import BatchSinkConfig
from connectors.sink.batch.export import ExportResult, run_export
from hub.config import PipelineConfig
from hub.errors import LogLockedError, UsageError

__all__ = ["export_now"]


class _RowsPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} rows/s")


def export_now(config: PipelineConfig, sink: str, until_ms: int | None,
               console: Console) -> ExportResult:
    """Run one export of ``sink``; raises :class:`UsageError` for a wrong sink or a locked log."""
    from hub.runtime import Hub, open_pipeline_log

    cfg = next((s for s in config.sinks if s.name == sink), None)
    if cfg is None:
        raise UsageError(f"no sink named {sink!r} in {config.path}; sinks: "
                         f"{', '.join(s.name for s in config.sinks) or 'none'}")
    if not isinstance(cfg, BatchSinkConfig) or cfg.schedule is None:
        raise UsageError(f"sink {sink!r} is not a scheduled batch sink: export runs sinks of "
                         'type: batch with a schedule: (e.g. "0 2 * * *")')
    try:
        log_ = open_pipeline_log(config)
    except LogLockedError as exc:
        raise UsageError(f"{exc}; a hub is running on this log and runs sink {sink!r}'s "
                         "exports on its schedule: stop it to export now") from exc
    with log_, Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        _RowsPerSecond(), TimeElapsedColumn(), console=console,
                        transient=False) as bar:
        task = bar.add_task(f"export {sink}", total=None)

        def progress(_what: str, done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        hub = Hub(config, log_)
        result = run_export(cfg, log_, until_ms=until_ms, progress=progress,
                            ensure_topic=hub.ensure_topic)
        if bar.tasks[0].total is None:  # no progress reported: nothing read, or done before
            bar.update(task, total=result.records, completed=result.records)
    return result
