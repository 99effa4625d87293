"""Property: random appends, reads, crashes and reopens never lose an acknowledged record,
never reorder, and never invent one."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from log.api import Record, TopicConfig, TopicPartition
from log.embedded import EmbeddedLog

from .helpers import crash, read_all, segment_files

PARTS = [TopicPartition("t", 0), TopicPartition("t", 1)]

record_st = st.builds(
    Record,
    key=st.one_of(st.none(), st.binary(max_size=8)),
    value=st.one_of(st.none(), st.binary(max_size=300)),
    timestamp_ms=st.integers(min_value=0, max_value=2**40),
    headers=st.one_of(
        st.just(()), st.tuples(st.tuples(st.text(max_size=4), st.binary(max_size=4)))
    ),
)


class LogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="logprop-"))
        self.log: EmbeddedLog | None = self._open()
        self.log.create_topic("t", TopicConfig(partitions=2, segment_bytes=2500))
        self.model: dict[TopicPartition, list[tuple[bytes | None, bytes | None]]] = {
            tp: [] for tp in PARTS
        }
        self.checkpoint: dict[str, int] | None = None

    def _open(self) -> EmbeddedLog:
        return EmbeddedLog(self.dir, background_jobs=False, index_interval_bytes=128)

    @precondition(lambda self: self.log is not None)
    @rule(p=st.sampled_from(PARTS), recs=st.lists(record_st, min_size=1, max_size=20))
    def append(self, p: TopicPartition, recs: list[Record]) -> None:
        assert self.log is not None
        base = self.log.append(p, recs)
        assert base == len(self.model[p])
        self.model[p] += [(r.key, r.value) for r in recs]

    @precondition(lambda self: self.log is not None)
    @rule(
        recs0=st.lists(record_st, max_size=10),
        recs1=st.lists(record_st, max_size=10),
        n=st.integers(0, 1000),
    )
    def append_checkpointed(self, recs0: list[Record], recs1: list[Record], n: int) -> None:
        assert self.log is not None
        self.log.append_checkpointed("src", {PARTS[0]: recs0, PARTS[1]: recs1}, {"n": n})
        self.model[PARTS[0]] += [(r.key, r.value) for r in recs0]
        self.model[PARTS[1]] += [(r.key, r.value) for r in recs1]
        self.checkpoint = {"n": n}

    @precondition(lambda self: self.log is not None)
    @rule(p=st.sampled_from(PARTS), data=st.data())
    def read_from(self, p: TopicPartition, data: st.DataObject) -> None:
        assert self.log is not None
        n = len(self.model[p])
        offset = data.draw(st.integers(0, n))
        got = self.log.read(p, offset, max_records=data.draw(st.integers(1, 50)))
        assert [(r.key, r.value) for r in got] == self.model[p][offset : offset + len(got)]
        assert [r.offset for r in got] == list(range(offset, offset + len(got)))
        assert got or offset == n

    @precondition(lambda self: self.log is not None)
    @rule(
        torn=st.sampled_from(["none", "garbage", "uncommitted"]),
        p=st.sampled_from(PARTS),
        junk=st.binary(min_size=1, max_size=200),
    )
    def crash_and_reopen(self, torn: str, p: TopicPartition, junk: bytes) -> None:
        assert self.log is not None
        if torn == "uncommitted":  # records written, their commit never made it
            from log.batch import ATTR_TRANSACTIONAL, encode
            from log.checkpoints import producer_id_for

            part = self.log._partition(p)
            batch = encode(
                [Record(b"x", b"lost")],
                1,
                attributes=ATTR_TRANSACTIONAL,
                producer_id=producer_id_for("src"),
                producer_seq=self.log._checkpoints.next_seq("src"),
            )
            with part.lock:
                part.append_locked(batch)
        crash(self.log)
        if torn == "garbage":  # a batch whose write was cut short
            with open(segment_files(self.dir, "t", p.partition)[-1], "ab") as f:
                f.write(junk)
        self.log = self._open()

    @precondition(lambda self: self.log is not None)
    @rule()
    def close_and_reopen(self) -> None:
        assert self.log is not None
        self.log.close()
        self.log = self._open()

    @precondition(lambda self: self.log is not None)
    @invariant()
    def everything_acknowledged_is_there_in_order(self) -> None:
        assert self.log is not None
        for p in PARTS:
            assert self.log.end_offset(p) == len(self.model[p])
            got = read_all(self.log, p)
            assert [(r.key, r.value) for r in got] == self.model[p]
        assert self.log.last_checkpoint("src") == self.checkpoint

    def teardown(self) -> None:
        if self.log is not None:
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


LogMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("LOG_PROPERTY_EXAMPLES", "40")),
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLogProperties = LogMachine.TestCase
