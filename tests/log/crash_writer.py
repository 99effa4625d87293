"""The process the crash test kills: appends forever, printing each acknowledgement.

Run as ``python -m tests.log.crash_writer DIR SEED [POLICY]`` (durability: batch, interval
or never — all of them survive a kill -9, which leaves the page cache alone). Every
record's value names its own offset and length (``b"<offset>|<length>|"`` padded to the
length), so that the test can tell a record the writer wrote from anything else. Lines on
stdout, flushed as soon as the append returned (the acknowledgement)::

    READY
    A <base> <count>          plain append to plain[0]
    C <end0> <end1>           checkpointed append to tx[0] and tx[1]; its checkpoint
    G <offset>                group "g" committed <offset> for plain[0]
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from log.api import Durability, Record, TopicConfig, TopicPartition
from log.embedded import EmbeddedLog

PLAIN = TopicPartition("plain", 0)
TX = (TopicPartition("tx", 0), TopicPartition("tx", 1))


def value(offset: int, size: int) -> bytes:
    head = b"%d|%d|" % (offset, size)
    return head + b"." * (size - len(head))


def batch(rng: random.Random, start: int, n: int) -> list[Record]:
    big = rng.random() < 0.05
    sizes = [rng.randint(20, 40_000 if big else 200) for _ in range(n)]
    return [Record(b"%d" % (start + i), value(start + i, s)) for i, s in enumerate(sizes)]


def main(path: str, seed: int, policy: str) -> None:
    rng = random.Random(seed)
    durability = Durability(policy, interval_ms=2)  # type: ignore[arg-type]
    log = EmbeddedLog(Path(path), durability, background_jobs=False)
    log.create_topic("plain", TopicConfig(segment_bytes=512 * 1024))
    log.create_topic("tx", TopicConfig(partitions=2, segment_bytes=512 * 1024))
    print("READY", flush=True)
    while True:
        if rng.random() < 0.1:
            offset = log.end_offset(PLAIN)
            log.commit_offsets("g", {PLAIN: offset})
            print(f"G {offset}", flush=True)
        elif rng.random() < 0.5:
            end = log.end_offset(PLAIN)
            n = rng.randint(1, 50)
            base = log.append(PLAIN, batch(rng, end, n))
            print(f"A {base} {n}", flush=True)
        else:
            ends = [log.end_offset(tp) for tp in TX]
            counts = [rng.randint(0, 50), rng.randint(0, 50)]
            writes = {tp: batch(rng, e, n) for tp, e, n in zip(TX, ends, counts, strict=True)}
            new_ends = [e + n for e, n in zip(ends, counts, strict=True)]
            log.append_checkpointed("src", writes, {"ends": new_ends})
            print(f"C {new_ends[0]} {new_ends[1]}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "batch")
