"""Start-up's objects are frozen out of garbage collection; later garbage is still collected."""

from __future__ import annotations

import gc
import weakref

from hub.gc_pause import freeze_startup_objects


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_startup_objects_are_frozen_and_later_cycles_still_collected() -> None:
    try:
        kept = Node()  # alive at start-up: frozen
        frozen = freeze_startup_objects()
        assert frozen > 0 and frozen == gc.get_freeze_count()
        assert not any(o is kept for o in gc.get_objects())  # collections no longer walk it
        later = cycle()
        gc.collect()
        assert later() is None  # a cycle made after the freeze is collected as before
    finally:
        gc.unfreeze()
