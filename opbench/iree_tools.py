"""Where IREE's command-line tools are: iree-compile (for the IREE backends' builds, and for the iree_compile
version every record carries as provenance) and the runtime's iree-run-module / iree-benchmark-module. Apart from
the IREE backends (opbench/backends/iree/) because every record's provenance needs it, and no other backend's jobs
should depend on the IREE backend's code."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def tool(name: str) -> str:
    """Path of an IREE command-line tool: $IREE_COMPILE (etc., the name in capitals) where set, else on PATH,
    beside this Python (a venv not activated), else in the wheel."""
    override = os.environ.get(name.upper().replace("-", "_"))
    if override is not None:
        found = shutil.which(override)
        if not found:
            raise FileNotFoundError(f"{name}: ${name.upper().replace('-', '_')}={override!r} is not an executable")
        return found
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found:
        return found
    if name == "iree-compile":
        from iree.compiler.tools.binaries import find_tool  # type: ignore[import-not-found]

        return find_tool(name)
    import iree.runtime  # type: ignore[import-not-found]

    candidate = Path(iree.runtime.__file__).parent.parent / "_runtime_libs" / name
    if candidate.exists():
        return str(candidate)
    raise FileNotFoundError(f"{name} not found on PATH or in the iree-base-runtime wheel")
