"""The selector: which tasks a list, a cancel, a delete, a retry or a pause applies to.

Defined once and used by every bulk verb. Every field given must match (AND); a list
field matches any of its values (OR); `tags` matches tasks carrying all of them. The
constraints live on the types, so decoding enforces them and the OpenAPI document
states them; `validate()` adds the one rule a schema cannot state (min <= max).
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

from .errors import InvalidRequest, Unprocessable
from .model import FUNCTION_NAME, MAX_PRIORITY, MIN_PRIORITY

MAX_VALUES: Final = 100  # values in one list field
KEY_MAX_LENGTH: Final = 256
TAG_MAX_LENGTH: Final = 256  # what a selector may look for; tasks' own tags are shorter

State = Literal["scheduled", "ready", "paused", "running", "succeeded", "dead", "cancelled",
                "expired"]  # fmt: skip
FunctionName = Annotated[str, msgspec.Meta(pattern=FUNCTION_NAME.pattern)]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=TAG_MAX_LENGTH)]
Priority = Annotated[int, msgspec.Meta(ge=MIN_PRIORITY, le=MAX_PRIORITY)]
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=KEY_MAX_LENGTH)]
Functions = Annotated[list[FunctionName], msgspec.Meta(min_length=1, max_length=MAX_VALUES)]
States = Annotated[list[State], msgspec.Meta(min_length=1, max_length=MAX_VALUES)]
Tags = Annotated[list[Tag], msgspec.Meta(min_length=1, max_length=MAX_VALUES)]


class Selector(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    function: Functions | None = None
    state: States | None = None
    tags: Tags | None = None
    priority_min: Priority | None = None
    priority_max: Priority | None = None
    created_after: float | None = None
    created_before: float | None = None
    key: Key | None = None

    def validate(self) -> Selector:
        if (
            self.priority_min is not None
            and self.priority_max is not None
            and self.priority_min > self.priority_max
        ):
            raise Unprocessable(
                "priority_min is above priority_max: the range is empty",
                code="empty_range", field="priority_min",
            )  # fmt: skip
        return self


class SelectorBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of a bulk verb: `{"selector": {...}}` (an empty selector matches all)."""

    selector: Selector


class PauseSelector(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """What a pause holds: waiting tasks by function, tags and priority (at least one).
    Fields are left out rather than null, so "at least one" is a schema rule."""

    function: Functions | msgspec.UnsetType = msgspec.UNSET
    tags: Tags | msgspec.UnsetType = msgspec.UNSET
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
