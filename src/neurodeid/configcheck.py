"""The workflow's configuration checked before any job starts, with one short message.

Snakemake's ``--config KEY=VALUE`` parses nested values with YAML's base loader, so
``--config 'deface={params: {min_head_dice: 0.8}}'`` gives the *string* ``"0.8"``; and a
schema error printed by Snakemake carries the whole schema (hundreds of lines). Here,
strings are turned into the type the schema asks for, and the first error names the key:
``config deface.params.min_head_dice: ...``. The sections that configure a dataclass
(``deface.params``, ``morphometry.thresholds``) are checked against its fields, not against
a copy of them in the schema.
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


def coerce_to_fields(where: str, values: dict | None, classes, unknown: str = "not a known key") -> dict:
    """``values`` (a config section) with each value of the type of the dataclass field of
    its name, over the fields of ``classes``: the dataclasses are the one definition of a
    section's keys, their types and their defaults.

    A field whose annotation admits ``None`` takes ``null`` (``--config`` strings
    ``null``/``none``/``~`` included).

    Raises
    ------
    ConfigError
        A key that is no field (``config <where>.<key>: <unknown>; known: ...``), or a value
        that is not of its field's type.
    """
    kinds, nullable = {}, set()
    for cls in classes:
        for f in fields(cls):
            kinds[f.name] = type(f.default)
            if "None" in str(f.type):
                nullable.add(f.name)
                if f.default is None:  # the type is the annotation's (``float | None``)
                    named = set(str(f.type).replace("|", " ").split())
                    kinds[f.name] = next((k for k in (bool, int, float) if k.__name__ in named),
                                         type(None))
    out = {}
    for k, v in (values or {}).items():
        if k not in kinds:
            raise ConfigError(f"config {where}.{k}: {unknown}; known: {', '.join(sorted(kinds))}")
        kind = kinds[k]
        types = {bool: ["boolean"], int: ["integer"], float: ["number"]}.get(kind, [])
        v = _coerce_scalar(v, types + (["null"] if k in nullable else [])) if types else v
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if v is None and k in nullable:
            out[k] = v
            continue
        if kind in (bool, int, float) and (type(v) is not kind):
            raise ConfigError(f"config {where}.{k}: {v!r} is not a {kind.__name__}"
                              + (" (or null)" if k in nullable else ""))
        out[k] = v
    return out


def coerce_deface_params(method: str, params: dict) -> dict:
    """Config ``deface.params`` checked against the parameter dataclasses of ``method``
    (:func:`coerce_to_fields`)."""
    from .deface.params import METHOD_PARAMS, DefaceParams, RemovalParams

    if method not in METHOD_PARAMS:
        raise ConfigError(f"config deface.method: unknown method {method!r}")
    return coerce_to_fields("deface.params", params, (DefaceParams, METHOD_PARAMS[method], RemovalParams),
                            unknown=f"not a parameter of method {method!r}")


def coerce_morphometry_thresholds(thresholds: dict) -> dict:
    """Config ``morphometry.thresholds`` checked against
    :class:`neurodeid.morphometry.MorphometryThresholds` (:func:`coerce_to_fields`)."""
    from .morphometry import MorphometryThresholds

    out = coerce_to_fields("morphometry.thresholds", thresholds, (MorphometryThresholds,))
    for k, v in out.items():
        if v is not None and "voxels" in k and v < 0:
            raise ConfigError(f"config morphometry.thresholds.{k}: {v} is a voxel count, not below 0")
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
    morphometry = typed.get("morphometry") or {}
    if "thresholds" in morphometry:
        morphometry["thresholds"] = coerce_morphometry_thresholds(morphometry["thresholds"])
    return typed
