"""What the client takes that the API's bodies do not spell out for Python callers.

The bodies themselves, answers and requests alike, are the server's own
(sluice/contract/): the client decodes every answer with the struct the server
encoded it with, and imports no server code for it.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict


class ScheduleSpec(TypedDict, total=False):
    """What `client.schedules.set` sends, as keywords: the fields of the body of `PUT
    /v1/schedules/{name}` (`sluice.contract.ScheduleSpec`). `function` and `cron` are
    required; left out, `timezone` is "UTC", `args` and `kwargs` are empty, `priority`
    and `tags` are unset, `catchup` is "all" and `max_catchup_s` 600."""

    function: str
    cron: str  # croniter syntax: five fields, or six with seconds first
    timezone: str  # IANA, e.g. "Europe/Berlin"
    args: list[Any]
    kwargs: dict[str, Any]
    priority: int | None
    tags: list[str] | None
    catchup: Literal["all", "latest", "none"]
    max_catchup_s: float
