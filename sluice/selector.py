"""The selector: which tasks a list, a cancel, a delete or a retry applies to.

Defined once and used by every bulk verb. Every field given must match (AND); a list
field matches any of its values (OR); `tags` matches tasks carrying all of them.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from .errors import InvalidRequest
from .model import MAX_PRIORITY, MIN_PRIORITY, STATES

MAX_VALUES: Final = 100  # values in one list field


Values = Annotated[list[str], msgspec.Meta(min_length=1, max_length=100)]
Priority = Annotated[int, msgspec.Meta(ge=MIN_PRIORITY, le=MAX_PRIORITY)]


class Selector(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    function: Values | None = None
    state: Values | None = None
    tags: Values | None = None
    priority_min: Priority | None = None
    priority_max: Priority | None = None
    created_after: float | None = None
    created_before: float | None = None
    key: str | None = None

    def validate(self) -> Selector:
        for name in ("function", "state", "tags"):
            values = getattr(self, name)
            if values is not None and not 0 < len(values) <= MAX_VALUES:
                raise InvalidRequest(f"{name} takes 1 to {MAX_VALUES} values", field=name)
        for state in self.state or ():
            if state not in STATES:
                raise InvalidRequest(
                    f"unknown state {state!r}; states are {', '.join(STATES)}", field="state"
                )
        for name in ("priority_min", "priority_max"):
            value = getattr(self, name)
            if value is not None and not MIN_PRIORITY <= value <= MAX_PRIORITY:
                raise InvalidRequest(
                    f"{name} must be between {MIN_PRIORITY} and {MAX_PRIORITY}", field=name
                )
        if (
            self.priority_min is not None
            and self.priority_max is not None
            and self.priority_min > self.priority_max
        ):
            raise InvalidRequest("priority_min is above priority_max", field="priority_min")
        return self


class SelectorBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of a bulk verb: `{"selector": {...}}` (an empty selector matches all)."""

    selector: Selector


class TaskSummary(msgspec.Struct, frozen=True):
    id: str
    function: str
    state: str
    priority: int
    attempt: int
    created_at: float
    finished_at: float | None
    key: str | None
    tags: list[str]
