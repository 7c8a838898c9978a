"""Selectors: which tasks a list, a bulk verb or a pause applies to."""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

from ..errors import Unprocessable
from .fields import TEXT, FunctionName, Key, Priority

MAX_VALUES: Final = 100  # values in one list field of a selector
TAG_MAX_LENGTH: Final = 256  # what a selector may look for; tasks' own tags are shorter

State = Literal["scheduled", "ready", "paused", "running", "succeeded", "dead", "cancelled",
                "expired"]  # fmt: skip
Functions = Annotated[list[FunctionName], msgspec.Meta(min_length=1, max_length=MAX_VALUES)]
States = Annotated[list[State], msgspec.Meta(min_length=1, max_length=MAX_VALUES)]
SelectorTag = Annotated[str, msgspec.Meta(min_length=1, max_length=TAG_MAX_LENGTH, pattern=TEXT)]
SelectorTags = Annotated[list[SelectorTag], msgspec.Meta(min_length=1, max_length=MAX_VALUES)]


class Selector(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Which tasks a list, a cancel, a delete, a retry or a pause applies to.

    Every field given must match (AND); a list field matches any of its values (OR);
    `tags` matches tasks carrying all of them."""

    function: Functions | None = None
    state: States | None = None
    tags: SelectorTags | None = None
    priority_min: Priority | None = None
    priority_max: Priority | None = None
    created_after: float | None = None
    created_before: float | None = None
    key: Key | None = None

    def validate(self) -> Selector:
        """The one rule a schema cannot state: priority_min <= priority_max (a 422)."""
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
