"""What both backends' outboxes share: which rows a task's end writes, and their ids.

The engine hands the store the receivers (`Hook`s) of the functions that have any; a
task whose function has none costs its end nothing more than a dictionary lookup. A task
may have webhooks of its own too (given at submit: the tasks column `webhooks`, JSON
`[{url, events}]`, NULL for the others), told of its ends besides its function's."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import msgspec

from ..model import CANCELLED, DEAD, EXPIRED, SUCCEEDED, Hook, Notice

# The receivers of each (tenant, function) that has any.
Hooks = Mapping[tuple[str, str], tuple[Hook, ...]]
# (tenant id, task id, function, attempt, its own webhooks): a task an end just reached
Ended = tuple[str, str, str, int, str | None]


def event_of(next_state: str) -> str:
    """The notification event of an attempt's end, by the task's next state."""
    if next_state in (SUCCEEDED, DEAD, CANCELLED, EXPIRED):
        return next_state
    return "failed"  # retried (ready, scheduled or held by a pause)


def notices(hooks: tuple[Hook, ...], function: str, event: str) -> tuple[Notice, ...]:
    """The notices of one event: one per receiver URL that asked for it."""
    urls = dict.fromkeys(h.url for h in hooks if event in h.events)
    return tuple(Notice(event, url, function) for url in urls)


def task_hooks(webhooks: str | None) -> tuple[Hook, ...]:
    """A task's own webhooks (the tasks column), as receivers."""
    if not webhooks:
        return ()
    return tuple(Hook(w["url"], tuple(w["events"])) for w in msgspec.json.decode(webhooks))


def with_task(found: tuple[Hook, ...] | None, webhooks: str | None) -> tuple[Hook, ...] | None:
    """A function's receivers and the task's own webhooks together."""
    if not webhooks:
        return found
    return (found or ()) + task_hooks(webhooks)


def notice_id(task_id: str, attempt: int, event: str, url: str) -> str:
    """The webhook-id of one event of one attempt for one receiver: the same however
    often the row is written or sent (no "." in it, as Standard Webhooks asks)."""
    digest = hashlib.blake2b(f"{task_id}|{attempt}|{event}|{url}".encode(), digest_size=12)
    return "msg_" + digest.hexdigest()


def outbox_rows(
    tenant_id: str, task_id: str, attempt: int, found: tuple[Notice, ...]
) -> list[tuple[str, str, str, str, str, int, str]]:
    """(id, tenant, task, function, event, attempt, url) of each notice."""
    return [
        (notice_id(task_id, attempt, n.event, n.url), tenant_id, task_id, n.function, n.event,
         attempt, n.url)
        for n in found
    ]  # fmt: skip


def ended_rows(
    ended: list[Ended], hooks: Hooks, event: str
) -> list[tuple[str, str, str, str, str, int, str]]:
    """The outbox rows of tasks a cancel, an expiry or the reaper ended with `event`."""
    rows = []
    for tenant_id, task_id, function, attempt, webhooks in ended:
        found = with_task(hooks.get((tenant_id, function)), webhooks)
        if found:
            rows += outbox_rows(tenant_id, task_id, attempt, notices(found, function, event))
    return rows
