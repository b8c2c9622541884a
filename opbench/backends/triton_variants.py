"""The variants of the Triton backends (`triton`: conv2d, opbench/backends/triton_conv/; `triton-attention`:
attention, opbench/backends/triton_attention/): each variant is one tile configuration of the backend's kernel, or an
autotune variant ({autotune: [names]}) that times those configurations per problem and keeps the fastest.

What both backends do with them is here, once: the settings schema around the backend's own tile schema, the checks
naming the bad key, a variant's flags and job options (a job parameter, so a changed tile reruns exactly the rows that
use it), whether Triton is importable, a job's options read back into configurations, Triton's out-of-resources
error, an autotune search's key and choice, and its store (one search per point, shared by its run and benchmark
jobs). A backend
supplies its tile type (`TritonTileBackend.parse_tile`: a dataclass with to_config() and describe()) and what makes a
configuration unusable (`tile_problem`). Imports neither Triton nor PyTorch; both backends' rows depend on this file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from opbench.backends.base import Backend, BenchSettings, Job, SettingsError, torch_missing, variants_schema


class Tile(Protocol):
    """A tile configuration of a Triton kernel (a backend's dataclass)."""

    def to_config(self) -> dict[str, Any]: ...

    def describe(self) -> list[str]: ...


AUTOTUNE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An autotune variant over the named tile configurations (variants of this backend).",
    "additionalProperties": False,
    "required": ["autotune"],
    "properties": {
        "autotune": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"$ref": "#/$defs/name"}}
    },
}


def settings_schema(description: str, tile_schema: dict[str, Any]) -> dict[str, Any]:
    """A Triton backend's settings schema: `variants`, each one tile configuration (`tile_schema`) or an autotune
    variant."""
    return variants_schema(
        description,
        {
            "description": "Named tile configurations and autotune variants; each is the `variant` of its rows.",
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"$ref": "#/$defs/name"},
            "additionalProperties": {"oneOf": [tile_schema, AUTOTUNE_SCHEMA]},
        },
    )


def is_autotune(entry: dict[str, Any]) -> bool:
    """Whether a variant entry is an autotune variant ({autotune: [config names]}) rather than one configuration."""
    return "autotune" in entry


def triton_missing() -> str | None:
    """Why a Triton backend's rows cannot run here: PyTorch or Triton missing (a CUDA build of PyTorch brings
    Triton)."""
    missing = torch_missing()
    if missing is None and importlib.util.find_spec("triton") is None:
        missing = "Triton is not installed (pip install triton)"
    return missing


class TritonTileBackend(Backend):
    """A Triton backend whose variants are tile configurations or autotune variants over them."""

    device = "cuda"

    def parse_tile(self, entry: dict[str, Any]) -> Tile:
        """One configuration entry of config.yaml as the backend's tile dataclass."""
        raise NotImplementedError

    def tile_problem(self, tile: Any) -> str | None:
        """Why a configuration can never run correctly (whatever the problem), or None."""
        return None

    def candidates(self, settings: dict[str, Any], variant: str) -> dict[str, Tile]:
        """The configurations a variant runs, by name: its own, or an autotune variant's candidates."""
        entry = settings["variants"][variant]
        names = entry["autotune"] if is_autotune(entry) else [variant]
        return {name: self.parse_tile(settings["variants"][name]) for name in names}

    def check_settings(self, settings: dict[str, Any]) -> None:
        """SettingsError for a configuration that cannot run correctly or an autotune entry naming no configuration."""
        variants = settings["variants"]
        for name, entry in variants.items():
            if is_autotune(entry):
                for i, candidate in enumerate(entry["autotune"]):
                    key = f"variants.{name}.autotune[{i}]"
                    if candidate not in variants:
                        raise SettingsError(key, f"{candidate!r} is no {self.name} variant")
                    if is_autotune(variants[candidate]):
                        raise SettingsError(key, f"{candidate!r} is an autotune variant, not a configuration")
                continue
            why = self.tile_problem(self.parse_tile(entry))
            if why:
                raise SettingsError(f"variants.{name}", why)

    def requirement_missing(self) -> str | None:
        return triton_missing()

    def variant_flags(self, settings: dict[str, Any], variant: str, problem: Any) -> list[str]:
        entry = settings["variants"][variant]
        if is_autotune(entry):
            return ["autotune=" + ",".join(entry["autotune"])]
        return self.parse_tile(entry).describe()

    def job_options(self, settings: dict[str, Any], variant: str, problem: Any) -> dict[str, str]:
        """The variant's configuration(s) by name, and whether it autotunes: a job parameter, so a changed tile
        reruns exactly the rows that use it (parse_options reads it back)."""
        configs = {name: tile.to_config() for name, tile in self.candidates(settings, variant).items()}
        autotune = is_autotune(settings["variants"][variant])
        return {"configs": json.dumps(configs, sort_keys=True), "autotune": "1" if autotune else "0"}


def parse_options(options: dict[str, str], parse_tile: Callable[[dict[str, Any]], Any]) -> tuple[dict[str, Any], bool]:
    """A job's options (TritonTileBackend.job_options) -> its candidate configurations by name, and whether the
    variant autotunes."""
    configs = {name: parse_tile(entry) for name, entry in json.loads(options["configs"]).items()}
    return configs, options.get("autotune") == "1"


def out_of_resources(error: BaseException) -> bool:
    """Triton's OutOfResources (a configuration needs more shared memory or registers than the card has)."""
    return type(error).__name__ == "OutOfResources"


class OnDevice(Protocol):
    """A Triton backend's job set up on the GPU (triton_conv's Conv, triton_attention's Attention): what an autotune
    key reads of it."""

    job: Job
    torch: Any
    triton: Any
    capability: tuple[int, int]


def autotune_key(on_device: OnDevice, configs: dict[str, Tile], *, kernel: Path, timing: BenchSettings) -> str:
    """What decides an autotune search's outcome, hashed: the problem, the candidates, the card, Triton, PyTorch, the
    backend's `kernel` source and the search's `timing` settings (part of the stored choice's name)."""
    job, torch = on_device.job, on_device.torch
    blob = json.dumps(
        {
            "shape": job.shape.name, "dtype": job.dtype.name, "layout": job.layout,
            "configs": {name: c.to_config() for name, c in sorted(configs.items())},
            "device": torch.cuda.get_device_name(), "capability": list(on_device.capability),
            "triton": on_device.triton.__version__, "torch": torch.__version__,
            "kernel": hashlib.sha256(kernel.read_bytes()).hexdigest(),
            "timing": timing.__dict__,
        },
        sort_keys=True,
    )  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def fastest(candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """A search's result from its candidates ({name, ms (None: not timed, with its reason), ...}): the fastest timed
    one is `chosen`. RuntimeError where none was timed."""
    timed = [c for c in candidates if c["ms"] is not None]
    if not timed:
        raise RuntimeError(f"no autotune candidate runs this problem: {candidates}")
    return {"chosen": min(timed, key=lambda c: c["ms"])["name"], "candidates": candidates}


def stored_search(path: Path, search: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """An autotune choice: the one stored at `path` (its name holds everything that decides the search) where the
    point's run or benchmark job searched before, else `search()`, stored. `source` says which."""
    if path.is_file():
        return json.loads(path.read_text()) | {"source": f"stored ({path})"}
    result = search()
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(f".{os.getpid()}.tmp")
    scratch.write_text(json.dumps(result, indent=1) + "\n")
    scratch.replace(path)  # atomic: a concurrent job reads a whole file or none
    return result | {"source": "searched"}
