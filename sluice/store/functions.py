"""What both backends' functions share: reading stored function configs.

A function's settings have owners: the code's config (a worker's hello, the app's
registration) gives the defaults, the operator's overrides (`PUT /v1/functions/{name}`)
win field by field and survive any worker reconnecting. The effective config is made
here, on read, so no write ever has to merge the two."""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from ..contract import FunctionConfig

log = logging.getLogger("sluice.store")

_function_decoder = msgspec.json.Decoder(FunctionConfig)
_fields_decoder = msgspec.json.Decoder(dict[str, Any])


class FunctionRecord(msgspec.Struct, frozen=True):
    """A stored function: its effective config, the fields the operator set, and whether
    code registered it (a function only an operator set, an HTTP target, has no code)."""

    config: FunctionConfig
    code: FunctionConfig
    overridden: frozenset[str] = frozenset()
    coded: bool = True


def merged(code: FunctionConfig, overrides: dict[str, Any]) -> FunctionConfig:
    """The effective config: the code's, with the operator's fields over it (checked)."""
    fields = msgspec.to_builtins(code)
    return msgspec.convert({**fields, **overrides, "name": code.name}, FunctionConfig)


def function_records(
    rows: list[tuple[str, bytes, bytes | None, float | None]],
) -> list[FunctionRecord]:
    """Stored functions (name, code config, overrides, code_at), read under today's
    rules: one stored before a rule it breaks (a negative timeout was accepted once) is
    left out with an error in the log, so it cannot break the tenant's other functions;
    a worker's hello or a PUT brings it back."""
    records = []
    for name, code, overrides, code_at in rows:
        try:
            coded = _function_decoder.decode(code)
            mine = {} if overrides is None else _fields_decoder.decode(overrides)
            config = merged(coded, mine) if mine else coded
        except msgspec.ValidationError as exc:
            log.error("function %s is left out: its stored config breaks a rule (%s)", name, exc)
            continue
        records.append(FunctionRecord(config, coded, frozenset(mine), code_at is not None))
    return records
