"""The device probe's file as the rest of the package reads it: which devices have one, and their measured peaks.
(opbench/device_probe.py measures them; kept apart so that what only reads a probe does not depend on that code.)"""

from __future__ import annotations

import json
from pathlib import Path

# The devices whose GPU jobs get a probe (its measured peaks are the denominators of their rows' peak fractions).
PROBED_DEVICES = ("cuda",)


def read_peaks(probe: Path) -> dict[str, float]:
    """The measured peaks of a probe's JSON (empty where none were measured): the one reader of that file."""
    return json.loads(probe.read_text()).get("peaks", {})
