"""The state file a server leaves in its directory: ``DIR/<name>/state.json``.

It records the processes to stop, the ``KEY=VALUE`` facts to print, the ports (so that a
server stopped and started again in the same directory keeps its address, as clients
configured with the old URL expect) and the options it was started with. It is written
atomically (temp file + rename) and updated as soon as a process is spawned, so that even an
interrupted ``up`` leaves enough behind for ``down`` to clean up.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.process import ProcessRef

__all__ = ["ServerState"]

STATE_FILE = "state.json"


@dataclass
class ServerState:
    name: str
    running: bool = False
    processes: list[ProcessRef] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, home: Path) -> ServerState | None:
        try:
            data = json.loads((home / STATE_FILE).read_text())
        except FileNotFoundError:
            return None
        return cls(
            name=data["name"],
            running=bool(data["running"]),
            processes=[ProcessRef.from_json(p) for p in data["processes"]],
            facts={str(k): str(v) for k, v in data["facts"].items()},
            ports={str(k): int(v) for k, v in data["ports"].items()},
            options=dict(data["options"]),
        )

    def save(self, home: Path) -> None:
        data = {
            "name": self.name,
            "running": self.running,
            "processes": [p.to_json() for p in self.processes],
            "facts": self.facts,
            "ports": self.ports,
            "options": self.options,
        }
        tmp = home / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, home / STATE_FILE)
