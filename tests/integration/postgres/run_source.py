"""Runs a Postgres source into an embedded log until killed, as the hub would (for the
kill -9 test): ``python -m tests.integration.postgres.run_source CONFIG_JSON LOG_DIR``.
Prints one line per durable batch (``appended snapshot`` while the initial snapshot runs,
``appended streaming`` after), so that the test can see progress."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from connectors.source.postgres.source import PostgresSourceConfig
from hub.errors import RetriableError
from tests.integration.postgres.pipeline import Pipeline


def main() -> None:
    config = PostgresSourceConfig.model_validate(json.loads(sys.argv[1]))
    pipeline = Pipeline(Path(sys.argv[2]), config)
    while True:  # the hub retries retriable errors; here the kill ends it
        try:
            pipeline.start()
            while True:
                batch = pipeline.step(1.0)
                if batch is not None:
                    # Whether the snapshot is still running after this batch, for the test.
                    phase = "snapshot" if "snapshot" in batch.checkpoint else "streaming"
                    print(f"appended {phase}", flush=True)
        except RetriableError:
            pipeline.stop()


if __name__ == "__main__":
    main()
