"""The workflow's configuration checked before any job starts, with one short message.

Snakemake's ``--config KEY=VALUE`` parses nested values with YAML's base loader, so
``--config 'deface={params: {min_head_dice: 0.8}}'`` gives the *string* ``"0.8"``; and a
schema error printed by Snakemake carries the whole schema (hundreds of lines). Here,
strings are turned into the type the schema (or the defacing parameter dataclasses) asks
for, and the first error names the key: ``config deface.params.min_head_dice: ...``.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import jsonschema
import yaml


class ConfigError(ValueError):
    """A configuration value that is missing, misspelt or of the wrong type (names the key)."""


_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def _coerce_scalar(value, types: list[str]):
    """``value`` (a string from ``--config``) as the first schema type it parses as."""
    if not isinstance(value, str):
        return value
    for t in types:
        try:
            if t == "integer" and value.strip().lstrip("+-").isdigit():
                return int(value)
            if t == "number":
                return float(value)
            if t == "boolean" and value.strip().lower() in _TRUE | _FALSE:
                return value.strip().lower() in _TRUE
            if t == "null" and value.strip().lower() in ("null", "none", "~"):
                return None
        except ValueError:
            continue
    return value


def coerce(value, schema: dict):
    """``value`` with every string turned into the type ``schema`` declares, at every depth."""
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        return {k: coerce(v, props.get(k, {})) for k, v in value.items()}
    if isinstance(value, list):
        items = schema.get("items", {})
        return [coerce(v, items) for v in value]
    if value == "" and "null" in types and "string" not in types:
        return None
    return _coerce_scalar(value, [t for t in types if t != "string"])


def coerce_deface_params(method: str, params: dict) -> dict:
    """Config ``deface.params`` with each value of the type of its dataclass field.

    Raises
    ------
    ConfigError
        An unknown parameter for ``method``, or a value that is not of its type.
    """
    from .deface.params import METHOD_PARAMS, DefaceParams, RemovalParams

    if method not in METHOD_PARAMS:
        raise ConfigError(f"config deface.method: unknown method {method!r}")
    kinds = {}
    for cls in (DefaceParams, METHOD_PARAMS[method], RemovalParams):
        for f in fields(cls):
            kinds[f.name] = type(f.default)
    out = {}
    for k, v in (params or {}).items():
        if k not in kinds:
            raise ConfigError(
                f"config deface.params.{k}: not a parameter of method {method!r}; "
                f"known: {', '.join(sorted(kinds))}")
        kind = kinds[k]
        types = {bool: ["boolean"], int: ["integer"], float: ["number"]}.get(kind, [])
        v = _coerce_scalar(v, types) if types else v
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if kind in (bool, int, float) and (type(v) is not kind):
            raise ConfigError(f"config deface.params.{k}: {v!r} is not a {kind.__name__}")
        out[k] = v
    return out


def check_config(config: dict, schema_path: str | Path) -> dict:
    """The configuration with ``--config`` strings typed, checked against the JSON schema.

    Parameters
    ----------
    config : dict
        Snakemake's merged configuration (config file and ``--config``).
    schema_path : path-like
        The YAML JSON schema (``workflow/schemas/config.schema.yaml``).

    Returns
    -------
    dict
        A new, typed configuration (defaults are left to the schema validator).

    Raises
    ------
    ConfigError
        The first error, as ``config <dotted key>: <what is wrong>``.
    """
    schema = yaml.safe_load(Path(schema_path).read_text(encoding="utf-8"))
    typed = coerce(config, schema)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(typed),
                    key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        e = errors[0]
        where = ".".join(str(p) for p in e.absolute_path) or "(top level)"
        more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
        raise ConfigError(f"config {where}: {e.message}{more}; see README.md, Configuration")
    deface = typed.get("deface") or {}
    if "params" in deface:
        deface["params"] = coerce_deface_params(deface.get("method", "template"), deface["params"])
    return typed
