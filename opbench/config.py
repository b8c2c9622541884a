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
from opbench.backends.base import SettingsError
from opbench.dtypes import DTYPES
from opbench.ops import OPS, get_op
from opbench.shapes import ShapeError

REPO = Path(__file__).resolve().parent.parent
SCHEMA_PATH = REPO / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT_CONFIG = REPO / "config.yaml"


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


def _schema_error_message(error: jsonschema.ValidationError, prefix: tuple[str | int, ...] = ()) -> str:
    """The error's message, naming the key (under `prefix`, where the validated instance sits in the config)."""
    path = key_path([*prefix, *error.absolute_path])
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        if extra:
            where = f" under '{path}'" if [*prefix, *error.absolute_path] else ""
            known = ", ".join(sorted(error.schema.get("properties", {})))
            return f"unknown config key '{extra[0]}'{where} (known keys: {known})"
    if error.validator == "required":
        return f"config key '{path}': {error.message}"
    if error.validator == "oneOf":
        hint = error.schema.get("description", "")
        return f"config key '{path}': {json.dumps(error.instance)} is not valid. {hint}".rstrip()
    return f"config key '{path}': {json.dumps(error.instance)} is invalid: {error.message}"


def load_schema() -> dict[str, Any]:
    """The config's schema: workflow/schemas/config.schema.yaml, with each registered backend's settings schema
    under `backends` (opbench.backends.base.Backend.settings_schema)."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    schema["properties"]["backends"]["properties"] = {
        name: copy.deepcopy(backend.settings_schema) for name, backend in BACKENDS.items()
    }
    return schema


def _first_error(schema: dict[str, Any], instance: Any) -> jsonschema.ValidationError | None:
    return jsonschema.exceptions.best_match(_Validator(schema).iter_errors(instance))


def _boolean(value: bool | str) -> bool:
    """A boolean the schema admits as text too ("true"/"false": `--config gpu=true`, `--config keep_run_outputs=false`
    and `--config 'gpu_worker={enabled: false}'` pass text)."""
    return value == "true" if isinstance(value, str) else value


def validate(config: dict[str, Any]) -> dict[str, Any]:
    """Return a validated copy of the config with every default filled in; raise ConfigError otherwise."""
    config = copy.deepcopy(config)
    schema = load_schema()
    error = _first_error(schema, config)
    if error is not None:
        raise ConfigError(_schema_error_message(error))
    if config["gpu"] != "auto":
        config["gpu"] = _boolean(config["gpu"])
    config["gpu_worker"]["enabled"] = _boolean(config["gpu_worker"]["enabled"])
    config["keep_run_outputs"] = _boolean(config["keep_run_outputs"])
    _check_layers(config, schema["$defs"])
    _check_semantics(config)
    return config


def load(*configfiles: str | Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The validated config as the workflow sees it: config.yaml, updated by each config file in turn and then by
    the overrides, each nested mapping merged key by key (Snakemake's --configfile / --config semantics)."""
    from snakemake.utils import update_config

    files = [DEFAULT_CONFIG, *(Path(path) for path in configfiles)]
    config: dict[str, Any] = {}
    for path in files:
        update_config(config, _read_yaml(path))
    update_config(config, overrides or {})
    try:
        return validate(config)
    except ConfigError as error:
        raise ConfigError(f"{' + '.join(str(path) for path in files)}: {error}") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    """A config file's mapping; a file that is no YAML mapping is a ConfigError naming it (and the line)."""
    try:
        with open(path) as f:
            data = yaml.safe_load(f)  # read from the file object, so that YAML's messages name the file
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    except OSError as error:
        raise ConfigError(f"config file {path}: {error.strerror}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file holds a mapping of keys, not a {type(data).__name__}")
    return data or {}


def _check_layers(config: dict[str, Any], defs: dict[str, Any]) -> None:
    """Each suite's layers against the layer schema of every op a matrix entry runs on it (filling its defaults)."""
    checked: set[tuple[str, str]] = set()
    for i, entry in enumerate(config["matrix"]):
        for op in entry["ops"]:
            if op not in OPS:
                raise _unknown(f"matrix[{i}].ops", op, OPS)
            for suite in entry["suites"]:
                if suite not in config["suites"] or (op, suite) in checked:
                    continue
                checked.add((op, suite))
                schema = {"$defs": defs, **get_op(op).layer_schema()}
                for j, layer in enumerate(config["suites"][suite]["layers"]):
                    error = _first_error(schema, layer)
                    if error is not None:
                        message = _schema_error_message(error, prefix=("suites", suite, "layers", j))
                        raise ConfigError(f"{message} (a layer of op {op!r})")


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
    for name, settings in config["backends"].items():
        try:
            BACKENDS[name].check_settings(settings)
        except SettingsError as error:
            raise ConfigError(f"config key 'backends.{name}.{error.key}': {error.why}") from None
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
