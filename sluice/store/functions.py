"""What both backends' functions share: reading stored function configs."""

from __future__ import annotations

import logging

import msgspec

from ..contract import FunctionConfig

log = logging.getLogger("sluice.store")

_function_decoder = msgspec.json.Decoder(FunctionConfig)


def function_configs(rows: list[tuple[str, bytes]]) -> list[FunctionConfig]:
    """Stored function configs, read under today's rules: one stored before a rule it
    breaks (a negative timeout was accepted once) is left out with an error in the log,
    so it cannot break the tenant's other functions; a worker's hello or a PUT brings
    it back."""
    configs = []
    for name, raw in rows:
        try:
            configs.append(_function_decoder.decode(raw))
        except msgspec.ValidationError as exc:
            log.error("function %s is left out: its stored config breaks a rule (%s)", name, exc)
    return configs
