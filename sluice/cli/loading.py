"""Find the user's App from a `module:attribute` reference."""

from __future__ import annotations

import importlib
import os
import sys

from ..worker.app import App


def load_app(reference: str) -> App:
    module_name, _, attr = reference.partition(":")
    if not module_name:
        raise SystemExit(f"expected MODULE:APP, got {reference!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    if attr:
        app = getattr(module, attr, None)
    else:
        found = [v for v in vars(module).values() if isinstance(v, App)]
        app = found[0] if len(found) == 1 else None
    if not isinstance(app, App):
        raise SystemExit(f"{reference!r} is not a sluice.App")
    return app
