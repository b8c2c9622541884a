"""Load and check the workflow config: JSON-schema validation with defaults, then the checks a schema can't express.

Every problem is reported as one ConfigError whose message names the key and the bad value, before any job runs.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonschema import validators

from opbench.backends import BACKENDS
from opbench.backends.iree import spec_path
from opbench.dtypes import DTYPES
from opbench.ops import OPS, get_op
from opbench.shapes import ShapeError

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A config problem; the message starts with the key's path, e.g. `suites.tiny.layers[2].stride`."""


def _with_defaults(validator_class: type) -> type:
    """A validator that fills each property's `default` before validating it (the jsonschema FAQ recipe)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator: Any, properties: dict, instance: Any, schema: dict) -> Iterator[Any]:
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def key_path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<top level>"


def _schema_error_message(error: jsonschema.ValidationError) -> str:
    path = key_path(error.absolute_path)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        if extra:
            where = f" under '{path}'" if error.absolute_path else ""
            known = ", ".join(sorted(error.schema.get("properties", {})))
            return f"unknown config key '{extra[0]}'{where} (known keys: {known})"
    if error.validator == "required":
        return f"config key '{path}': {error.message}"
    if error.validator == "oneOf":
        hint = error.schema.get("description", "")
        return f"config key '{path}': {json.dumps(error.instance)} is not valid. {hint}".rstrip()
    return f"config key '{path}': {json.dumps(error.instance)} is invalid: {error.message}"


def load_schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def validate(config: dict[str, Any]) -> dict[str, Any]:
    """Return a validated copy of the config with every default filled in; raise ConfigError otherwise."""
    config = copy.deepcopy(config)
    validator = _Validator(load_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        raise ConfigError(_schema_error_message(error))
    if isinstance(config["gpu"], str) and config["gpu"] != "auto":
        config["gpu"] = config["gpu"] == "true"
    _check_semantics(config)
    return config


def load_config(path: str | Path) -> dict[str, Any]:
    with open(path) as f:
        return validate(yaml.safe_load(f) or {})


def config_hash(config: dict[str, Any]) -> str:
    """Short, stable hash of a (validated) config or of any part of it."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def point_config(
    config: dict[str, Any], *, backend: str, variant: str, suite: str, layer: str, tolerance_key: str
) -> dict[str, Any]:
    """The part of the config that decides one result: its hash is the record's config_hash, so editing one
    backend's flags changes (and reruns) only that backend's records."""
    settings = {k: v for k, v in config["backends"][backend].items() if k not in ("variants", "tuning_specs")}
    variant_part = {"variant_flags": config["backends"][backend]["variants"][variant]}
    if config["backends"][backend].get("tuning_specs", {}).get(variant):
        variant_part["tuning_specs"] = config["backends"][backend]["tuning_specs"][variant]
    return {
        "backend": settings,
        **variant_part,
        "layer": next(entry for entry in config["suites"][suite]["layers"] if entry["name"] == layer),
        "benchmark": config["benchmark"],
        "tolerance": config["tolerances"][tolerance_key],
        "seed": config["seed"],
    }


def _unknown(key: str, value: str, known: Any) -> ConfigError:
    return ConfigError(f"config key '{key}': unknown value {value!r} (known: {', '.join(sorted(known))})")


def _check_semantics(config: dict[str, Any]) -> None:
    if "cuda" in config["backends"]:
        from opbench.backends.cuda import known_variants, variant_info

        for variant in config["backends"]["cuda"]["variants"]:
            if variant not in known_variants():
                raise _unknown("backends.cuda.variants", variant, known_variants())
            try:
                variant_info(variant)
            except ValueError as error:
                raise ConfigError(f"config key 'backends.cuda.variants.{variant}': {error}") from None
    if "cutlass" in config["backends"]:
        from opbench.backends.cutlass import SpecError, check_variants

        try:
            check_variants(config["backends"]["cutlass"])
        except SpecError as error:
            raise ConfigError(f"config key 'backends.cutlass.variants.{error.key}': {error.why}") from None
    for name, settings in config["backends"].items():
        for variant, rules in settings.get("tuning_specs", {}).items():
            if variant not in settings["variants"]:
                raise _unknown(f"backends.{name}.tuning_specs", variant, settings["variants"])
            for i, rule in enumerate(rules):
                for dtype in rule.get("dtypes", DTYPES):
                    path = spec_path(rule, dtype)
                    if not (SCHEMA_PATH.parents[2] / path).is_file():
                        raise ConfigError(
                            f"config key 'backends.{name}.tuning_specs.{variant}[{i}].spec': no such file {path!r}"
                        )
    for suite_name, suite in config["suites"].items():
        seen: set[str] = set()
        for i, layer in enumerate(suite["layers"]):
            key = f"suites.{suite_name}.layers[{i}]"
            if layer["name"] in seen:
                raise ConfigError(f"config key '{key}.name': duplicate layer name {layer['name']!r}")
            seen.add(layer["name"])

    for i, entry in enumerate(config["matrix"]):
        key = f"matrix[{i}]"
        for op in entry["ops"]:
            if op not in OPS:
                raise _unknown(f"{key}.ops", op, OPS)
            for layout in entry["layouts"]:
                if layout not in get_op(op).layouts:
                    raise _unknown(f"{key}.layouts", layout, get_op(op).layouts)
        for suite in entry["suites"]:
            if suite not in config["suites"]:
                raise _unknown(f"{key}.suites", suite, config["suites"])
            for op in entry["ops"]:
                for batch in entry.get("batches", config["suites"][suite]["batches"]):
                    for j, layer in enumerate(config["suites"][suite]["layers"]):
                        _check_layer(op, f"suites.{suite}.layers[{j}]", layer, batch)
        for dtype in entry["dtypes"]:
            if dtype not in DTYPES:
                raise _unknown(f"{key}.dtypes", dtype, DTYPES)
        for backend in entry["backends"]:
            if backend not in BACKENDS:
                raise _unknown(f"{key}.backends", backend, BACKENDS)
            if backend not in config["backends"]:
                raise ConfigError(f"config key '{key}.backends': backend {backend!r} has no entry under 'backends'")
        suite_layers = {layer["name"] for suite in entry["suites"] for layer in config["suites"][suite]["layers"]}
        for layer_name in entry.get("layers", []):
            if layer_name not in suite_layers:
                raise _unknown(f"{key}.layers", layer_name, sorted(suite_layers))
        for variant in entry.get("variants", []):
            if not any(variant in config["backends"][b]["variants"] for b in entry["backends"]):
                raise ConfigError(
                    f"config key '{key}.variants': variant {variant!r} belongs to none of {entry['backends']}"
                )


def _check_layer(op: str, key: str, layer: dict[str, Any], batch: int) -> None:
    try:
        get_op(op).shape_from_layer(layer, batch)
    except ShapeError as e:
        raise ConfigError(f"config key '{key}' (layer {layer['name']!r}, batch {batch}): {e}") from None
