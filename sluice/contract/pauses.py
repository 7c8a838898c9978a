"""Pauses: rules that hold waiting tasks."""

from __future__ import annotations

import msgspec

from ..errors import InvalidRequest
from .fields import Priority
from .selectors import Functions, Selector, SelectorTags


class PauseSelector(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """What a pause holds: waiting tasks by function, tags and priority (at least one).
    Fields are left out rather than null, so "at least one" is a schema rule."""

    function: Functions | msgspec.UnsetType = msgspec.UNSET
    tags: SelectorTags | msgspec.UnsetType = msgspec.UNSET
    priority_min: Priority | msgspec.UnsetType = msgspec.UNSET
    priority_max: Priority | msgspec.UnsetType = msgspec.UNSET

    def selector(self) -> Selector:
        """As a Selector (how pauses are stored and matched)."""
        given = {
            f: value
            for f in self.__struct_fields__
            if (value := getattr(self, f)) is not msgspec.UNSET
        }
        if not given:
            raise InvalidRequest(
                "a pause needs a selector: function, tags or priority", field="selector"
            )
        return Selector(**given).validate()


class PauseBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of `POST /v1/pauses`."""

    selector: PauseSelector


class Pause(msgspec.Struct, frozen=True):
    """A pause rule: the waiting tasks its selector matches are held (state `paused`)
    until it is lifted."""

    id: str
    selector: Selector
    created_at: float
    held: int | None = None  # how many waiting tasks it held when made (creation only)


class PauseList(msgspec.Struct, frozen=True):
    pauses: list[Pause]


class ReleasedCount(msgspec.Struct, frozen=True):
    released: int
