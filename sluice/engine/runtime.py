"""What every engine service shares: the store, the clock, the settings, the bus and
the node's id. Services take this and their named collaborators at construction
(engine/node.py builds and wires them); none reaches another through a central object.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..clock import Clock
from ..config import Settings
from ..store import Store
from ..store.bus import Bus


@dataclass(frozen=True)
class Runtime:
    store: Store
    clock: Clock
    settings: Settings
    bus: Bus
    node_id: str
