"""``python3 -m services``: the implementation behind ``services/run``."""

from __future__ import annotations

from services.cli import main

raise SystemExit(main())
