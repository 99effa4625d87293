"""The process the Kafka transaction tests kill with SIGKILL.

Run as ``python -m tests.integration.kafka.txn_writer BOOTSTRAP TOPIC SOURCE MODE``.

``MODE=hang``: begins a transaction of SOURCE, writes ``uncommitted-<i>`` records to both
partitions of TOPIC and the checkpoint ``{"n": -1}``, waits until the broker acknowledged all
of it (so it is in the partitions' logs), prints ``IN-TRANSACTION`` and waits to be killed.

``MODE=loop``: resumes from SOURCE's last checkpoint ``{"n": N}`` and writes batch N+1,
N+2, … forever, each a checkpointed append of ``b"<n>-<i>"`` records to both partitions with
the checkpoint ``{"n": n}``, printing ``C <n>`` once each returned (the acknowledgement).
"""

from __future__ import annotations

import sys
import threading

from log.api import Record, TopicPartition
from log.kafka import KafkaLog

BATCH = 20


def hang(log: KafkaLog, topic: str, source: str) -> None:
    producer = log._source_producer(source)
    producer.begin()
    for p in (0, 1):
        producer.produce(
            TopicPartition(topic, p), [Record(b"k", b"uncommitted-%d" % i) for i in range(BATCH)]
        )
    checkpoint = b'{"v":1,"source":"%s","checkpoint":{"n":-1},"ends":[]}' % source.encode()
    producer.produce(log._checkpoint_tp, [Record(source.encode(), checkpoint)])
    producer.flush("hanging transaction")
    print("IN-TRANSACTION", flush=True)
    threading.Event().wait()


def loop(log: KafkaLog, topic: str, source: str) -> None:
    last = log.last_checkpoint(source)
    n = -1 if last is None else int(last["n"])
    print("READY", flush=True)
    while True:
        n += 1
        writes = {
            TopicPartition(topic, p): [Record(b"k%d" % i, b"%d-%d" % (n, i)) for i in range(BATCH)]
            for p in (0, 1)
        }
        log.append_checkpointed(source, writes, {"n": n})
        print(f"C {n}", flush=True)


def main() -> None:
    bootstrap, topic, source, mode = sys.argv[1:5]
    log = KafkaLog(bootstrap, timeout=20.0)
    (hang if mode == "hang" else loop)(log, topic, source)


if __name__ == "__main__":
    main()
