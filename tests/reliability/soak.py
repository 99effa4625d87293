"""Load: a soak at a steady rate of changes (Postgres -> search) with the hub's resident
memory, lag and open file descriptors sampled at a fixed interval and plotted (PNG) beside
bench/RELIABILITY.md; and a burst of many changes committed in one transaction, which must
pass with bounded memory.

Flat means, over the samples after a warm-up (the first quarter of the run):
- memory: the largest RSS of the second half <= 1.2 x the largest of the first half + 32 MB;
- lag: the median sink lag (seconds) of the second half <= max(5 s, 1.5 x the first half's)
  (a lag growing steadily from zero gives about 1.86 x: the 2 x this rule once had let the
  first full-hour soak's ever-growing lag pass);
- file descriptors: the most of the second half <= the most of the first half + 16.
A burst is bounded if the hub's peak RSS stays under its RSS before the burst + 384 MB
(the source batches at most max_batch_events changes; a hub holding the transaction in
memory would need gigabytes for a million rows).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from PIL import Image, ImageDraw

from tests.reliability import report
from tests.reliability.check import converge
from tests.reliability.report import Result
from tests.reliability.rig import Pipeline, ScenarioError, Servers, free_port
from tests.reliability.scenarios import Size
from tests.reliability.workload import INSERT, SteadyWorkload

MB = 1 << 20
BURST_HEADROOM = 384 * MB


@dataclass
class Sample:
    t: float  # seconds since the start
    rss: int  # bytes, the hub and its children
    fds: int
    sink_lag_s: float
    sink_lag_records: float
    source_lag_bytes: float
    load1: float = 0.0  # the machine's 1-minute load average (shared with other work)
    # of ``fds``, those open on the log's segment files: one per segment written or read
    # since start, held until retention deletes it (as Kafka holds them), so they grow with
    # the log's size, not with time; a leak shows in the others
    segment_fds: int = 0


@dataclass
class Sampler:
    """Samples the hub every ``interval_s`` in a thread of its own."""

    p: Pipeline
    interval_s: float
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _t0: float = 0.0

    def __enter__(self) -> Sampler:
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True, name="sampler")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            sample = self.take()
            if sample is not None:
                self.samples.append(sample)
            self._stop.wait(self.interval_s)  # the sampling period

    def take(self) -> Sample | None:
        if self.p.hub is None or self.p.hub.poll() is not None:
            return None
        try:
            proc = psutil.Process(self.p.hub.pid)
            procs = [proc, *proc.children(recursive=True)]
            rss = sum(x.memory_info().rss for x in procs)
            fds = sum(x.num_fds() for x in procs)
            segment_fds = sum(1 for x in procs for f in x.open_files()
                              if f.path.endswith(".log") and "/topics/" in f.path)
        except psutil.Error:
            return None
        metrics = scrape(self.p)
        return Sample(time.monotonic() - self._t0, rss, fds,
                      metrics.get("changehub_sink_lag_seconds", 0.0),
                      metrics.get("changehub_sink_lag_records", 0.0),
                      metrics.get("changehub_source_lag_bytes", 0.0), os.getloadavg()[0],
                      segment_fds)


METRIC = re.compile(r"^(changehub_(?:sink_lag_seconds|sink_lag_records|source_lag_bytes))"
                    r"\{[^}]*\} ([0-9.eE+-]+|NaN)$", re.M)


def scrape(p: Pipeline) -> dict[str, float]:
    """The lag gauges from the hub's /metrics (summed over sinks/sources)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{p.api_port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for name, value in METRIC.findall(text):
        if value != "NaN":
            out[name] = out.get(name, 0.0) + float(value)
    return out


def save_samples(samples: list[Sample], path: Path) -> None:
    """The samples as CSV beside the plot, for a closer look than the picture gives."""
    lines = ["t_s,rss_bytes,fds,sink_lag_s,sink_lag_records,source_lag_bytes,load1,"
             "segment_fds"]
    lines += [f"{s.t:.1f},{s.rss},{s.fds},{s.sink_lag_s:.3f},{s.sink_lag_records:.0f},"
              f"{s.source_lag_bytes:.0f},{s.load1:.2f},{s.segment_fds}" for s in samples]
    path.write_text("\n".join(lines) + "\n")


def plot(samples: list[Sample], path: Path, title: str) -> None:
    """Four panels (RSS MB, sink lag s, open fds, machine load) against time, drawn with
    Pillow."""
    width, panel_h, margin = 900, 200, 60
    series: list[tuple[str, Callable[[Sample], float]]] = [
        ("hub RSS (MB)", lambda s: s.rss / MB),
        ("sink lag (s)", lambda s: s.sink_lag_s),
        ("open file descriptors", lambda s: float(s.fds)),
        ("machine load average, 1 min (2 cores, shared)", lambda s: s.load1),
    ]
    image = Image.new("RGB", (width, 40 + len(series) * (panel_h + 30)), "white")
    draw = ImageDraw.Draw(image)
    draw.text((margin, 10), title, fill="black")
    t_max = max((s.t for s in samples), default=1.0) or 1.0
    for i, (label, value) in enumerate(series):
        top = 40 + i * (panel_h + 30)
        left, right, bottom = margin, width - 20, top + panel_h
        values = [value(s) for s in samples]
        v_max = max(values, default=1.0) * 1.1 or 1.0
        draw.rectangle((left, top, right, bottom), outline="grey")
        draw.text((left + 5, top + 3), label, fill="black")
        draw.text((5, top), f"{v_max:.3g}", fill="black")
        draw.text((5, bottom - 10), "0", fill="black")
        draw.text((right - 60, bottom + 3), f"{t_max:.0f} s", fill="black")
        points = [(left + (right - left) * s.t / t_max, bottom - (bottom - top) * v / v_max)
                  for s, v in zip(samples, values, strict=True)]
        if len(points) > 1:
            draw.line(points, fill="blue", width=2)
        for x, y in points:
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill="blue")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def flatness(samples: list[Sample]) -> list[str]:
    """What was not flat (empty: all flat)."""
    kept = samples[len(samples) // 4:]
    if len(kept) < 4:
        return [f"too few samples ({len(samples)}) to judge"]
    first, second = kept[: len(kept) // 2], kept[len(kept) // 2:]
    problems = []
    rss1, rss2 = max(s.rss for s in first), max(s.rss for s in second)
    if rss2 > rss1 * 1.2 + 32 * MB:
        problems.append(f"memory grew: {rss1 / MB:.0f} -> {rss2 / MB:.0f} MB")
    lag1 = statistics.median(s.sink_lag_s for s in first)
    lag2 = statistics.median(s.sink_lag_s for s in second)
    if lag2 > max(5.0, 1.5 * lag1):
        problems.append(f"lag grew: median {lag1:.1f} -> {lag2:.1f} s")
    fd1 = max(s.fds - s.segment_fds for s in first)
    fd2 = max(s.fds - s.segment_fds for s in second)
    if fd2 > fd1 + 16:
        problems.append(f"file descriptors (besides the log's segment files) grew: {fd1} -> "
                        f"{fd2}")
    return problems


def soak(servers: Servers, workdir: Path, size: Size, *, seconds: float | None,
         rate: float | None) -> Result:
    seconds = seconds if seconds is not None else size.pick(30, 3600)
    rate = rate if rate is not None else size.pick(500, 5000)
    interval = size.pick(2, 10)
    started = time.monotonic()
    p = Pipeline.create(servers, workdir, api_port=free_port(), via_proxy=False)
    try:
        p.start_hub()
        with Sampler(p, interval) as sampler, \
                SteadyWorkload(servers.postgres.dsn, p.table, rate=rate) as work:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                p.assert_alive()
                time.sleep(min(1.0, max(0.0, end - time.monotonic())))  # the soak's length
            achieved = work.achieved_rate()
        verdict = converge(p, 120)
        samples = sampler.samples
        code = p.stop_hub()
    finally:
        p.close()
    png = report.OUT_DIR / "results" / f"soak-{size.name}.png"
    plot(samples, png, f"soak {seconds:.0f} s at {rate:.0f} changes/s (achieved "
         f"{achieved:.0f}), sampled every {interval:.0f} s")
    save_samples(samples, png.with_suffix(".csv"))
    problems = flatness(samples)
    notes = "; ".join(problems) or "memory, lag and fds flat"
    cores = os.cpu_count() or 1
    if samples and statistics.median(s.load1 for s in samples) > 2 * cores:
        notes += (f"; the machine was shared and overloaded (1-min load median "
                  f"{statistics.median(s.load1 for s in samples):.0f} on {cores} cores)")
    if achieved < rate * 0.9:
        notes += (f"; the writer reached only {achieved:.0f} of {rate:.0f} changes/s "
                  f"(behind by up to {work.behind_s:.1f} s: Postgres/machine limit)")
    figures: dict[str, Any] = {
        "duration s": round(seconds), "target changes/s": round(rate),
        "achieved changes/s": round(achieved),
        "RSS MB min/max": f"{min(s.rss for s in samples) / MB:.0f}/"
                          f"{max(s.rss for s in samples) / MB:.0f}" if samples else "-",
        "sink lag s median/max": f"{statistics.median(s.sink_lag_s for s in samples):.1f}/"
                                 f"{max(s.sink_lag_s for s in samples):.1f}" if samples else "-",
        "fds min/max": f"{min(s.fds for s in samples)}/{max(s.fds for s in samples)}"
                       if samples else "-",
        "of which on segment files, min/max": f"{min(s.segment_fds for s in samples)}/"
                                              f"{max(s.segment_fds for s in samples)}"
                                              if samples else "-",
        "machine load 1-min min/median/max": f"{min(s.load1 for s in samples):.1f}/"
        f"{statistics.median(s.load1 for s in samples):.1f}/{max(s.load1 for s in samples):.1f}"
        if samples else "-",
        "samples": len(samples),
    }
    return Result(scenario="soak", size=size.name, faults=0, records=verdict.records,
                  changes=work.changes, lost=len(verdict.lost), extra=len(verdict.extra),
                  divergent=len(verdict.divergent), seconds=time.monotonic() - started,
                  ok=verdict.equal and not problems and code == 0, notes=notes,
                  samples=verdict.lost[:3] + verdict.extra[:3] + verdict.divergent[:3],
                  figures=figures, plot=f"results/{png.name}")


def burst(servers: Servers, workdir: Path, size: Size, *, rows: int | None) -> Result:
    rows = rows if rows is not None else int(size.pick(100_000, 1_000_000))
    started = time.monotonic()
    p = Pipeline.create(servers, workdir, api_port=free_port(), via_proxy=False)
    try:
        p.start_hub()
        with Sampler(p, 1.0) as sampler:
            baseline = sampler.take()
            if baseline is None:
                raise ScenarioError(f"cannot sample the hub:\n{p.log_tail()}")
            t0 = time.monotonic()
            p.execute(INSERT.format(t=p.table), ("burst", 1, rows))  # one transaction
            committed_s = time.monotonic() - t0
            verdict = converge(p, 120)
            through_s = time.monotonic() - t0
        code = p.stop_hub()
    finally:
        p.close()
    samples = sampler.samples
    peak = max((s.rss for s in samples), default=baseline.rss)
    bounded = peak <= baseline.rss + BURST_HEADROOM
    png = report.OUT_DIR / "results" / f"burst-{size.name}.png"
    plot(samples, png, f"burst of {rows:,} inserts in one transaction")
    save_samples(samples, png.with_suffix(".csv"))
    notes = (f"RSS {baseline.rss / MB:.0f} MB before, peak {peak / MB:.0f} MB "
             f"({'bounded' if bounded else 'NOT bounded'}: limit +{BURST_HEADROOM // MB} MB)")
    figures: dict[str, Any] = {
        "rows in one transaction": f"{rows:,}", "commit s": round(committed_s, 1),
        "commit to index verified equal s (incl. the row-by-row check)": round(through_s, 1),
        "changes/s end to end": round(rows / through_s),
        "RSS MB before/peak": f"{baseline.rss / MB:.0f}/{peak / MB:.0f}",
    }
    return Result(scenario="burst", size=size.name, faults=0, records=verdict.records,
                  changes=rows, lost=len(verdict.lost), extra=len(verdict.extra),
                  divergent=len(verdict.divergent), seconds=time.monotonic() - started,
                  ok=verdict.equal and bounded and code == 0, notes=notes,
                  samples=verdict.lost[:3] + verdict.extra[:3] + verdict.divergent[:3],
                  figures=figures, plot=f"results/{png.name}")


LOAD = ("soak", "burst")


def run_load(name: str, servers: Servers, work: Path, size: Size, *,
             soak_s: float | None = None, rate: float | None = None,
             burst_rows: int | None = None) -> Result:
    started = time.monotonic()
    try:
        if name == "soak":
            result = soak(servers, work / name, size, seconds=soak_s, rate=rate)
        else:
            result = burst(servers, work / name, size, rows=burst_rows)
    except Exception as exc:  # recorded as a failed run, with what happened
        result = Result(scenario=name, size=size.name, faults=0, records=0, changes=0, lost=0,
                        extra=0, divergent=0, seconds=time.monotonic() - started, ok=False,
                        notes=f"did not finish: {type(exc).__name__}: {str(exc)[-1500:]}")
    if result.ok:  # the log of a million changes is big; a failure keeps it to look at
        shutil.rmtree(work / name, ignore_errors=True)
    return result
