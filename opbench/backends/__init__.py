"""Backend registry. A backend is one module (or one folder) under opbench/backends/ that defines and registers a
Backend subclass (opbench.backends.base); modules and folders are discovered, so adding one adds the backend and
nothing else is edited. A duplicate name is an error.
"""

from __future__ import annotations

from opbench.backends.base import (
    BACKENDS,
    Availability,
    Backend,
    BenchSettings,
    Job,
    Problem,
    availability,
    get_backend,
    register_backend,
)
from opbench.registry import import_members

__all__ = [
    "BACKENDS", "Availability", "Backend", "BenchSettings", "Job", "Problem", "availability", "get_backend",
    "register_backend",
]  # fmt: skip

import_members(__name__, __path__, skip=("base",))
