"""Delivery backends: one small interface (see base.py), one short module per backend.

`get_backend(name, config)` builds one; bad configuration fails here, naming the setting.
"""

from __future__ import annotations

import importlib

from newsletter.config import Config
from newsletter.deliver.backends.base import Backend, Outcome
from newsletter.deliver.constants import BACKENDS
from newsletter.errors import BackendError


def get_backend(name: str, config: Config, **options: object) -> Backend:
    """Build the backend called `name` from config (raises BackendError naming a bad setting)."""
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)(config, **options)


__all__ = ["Backend", "Outcome", "get_backend", "BACKENDS"]
