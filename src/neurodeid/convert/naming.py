"""BIDS names for converted series: rule-based classification, then run / echo / part labels.

Rules are data (``neurodeid/data/bids_heuristics.yaml``, copied into the workflow config);
see that file for the rule format.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

__all__ = ["load_heuristics", "classify_series", "assign_bids_names", "bids_name", "ENTITY_ORDER"]

#: BIDS entity order in file names (subset relevant to raw data)
#: Every BIDS entity, in the order the specification puts them in a file name.
ENTITY_ORDER = ("sub", "ses", "task", "acq", "ce", "trc", "stain", "rec", "dir", "run", "mod", "echo",
                "flip", "inv", "mt", "part", "proc", "space", "split", "recording", "chunk")

_COUNT_KEYS = ("n_images", "ImageCount", "n_files", "NumberOfImages", "images")


def load_heuristics(path: str | Path | None = None) -> list[dict]:
    """The ordered rule list from a YAML file (default: the packaged ``bids_heuristics.yaml``)."""
    import yaml

    if path is None:
        text = resources.files("neurodeid").joinpath("data/bids_heuristics.yaml").read_text()
    else:
        text = Path(path).read_text()
    data = yaml.safe_load(text)
    rules = data["rules"] if isinstance(data, dict) else data
    for i, r in enumerate(rules):
        if "skip" not in r and not ("datatype" in r and "suffix" in r):
            raise ValueError(f"BIDS heuristic rule {i} ({r.get('name', '?')}) needs 'skip' or 'datatype' + 'suffix'")
        for rx in {**(r.get("match") or {}), **(r.get("exclude") or {})}.values():
            _rx(rx)  # fail early on a bad regular expression
    return rules


@lru_cache(maxsize=512)
def _rx(pattern: str):
    return re.compile(pattern, re.IGNORECASE)


def _field(series: dict, name: str) -> str:
    if name == "Description":
        return f"{series.get('SeriesDescription') or ''} | {series.get('ProtocolName') or ''}"
    v = series.get(name)
    if v is None:
        return ""
    if isinstance(v, (list, tuple)):
        return "\\".join(str(x) for x in v)
    return str(v)


def _count(series: dict) -> int | None:
    for k in _COUNT_KEYS:
        if series.get(k) is not None:
            return int(series[k])
    return None


def _why_not(series: dict, rule: dict) -> str | None:
    """None when the rule applies, else the first failing condition."""
    for f, rx in (rule.get("match") or {}).items():
        if not _rx(rx).search(_field(series, f)):
            return f"{f} {_field(series, f)!r} !~ /{rx}/"
    for f, rx in (rule.get("exclude") or {}).items():
        if _rx(rx).search(_field(series, f)):
            return f"{f} {_field(series, f)!r} matches exclude /{rx}/"
    n = _count(series)
    if n is not None:
        if "min_images" in rule and n < int(rule["min_images"]):
            return f"{n} image(s) < min_images {rule['min_images']}"
        if "max_images" in rule and n > int(rule["max_images"]):
            return f"{n} image(s) > max_images {rule['max_images']}"
    return None


def _entity_value(series: dict, value) -> str | None:
    value = str(value)
    if value.startswith("re:"):
        _, field, rx = value.split(":", 2)
        m = _rx(rx).search(_field(series, field))
        if not m:
            return None
        value = m.group(1) if m.groups() else m.group(0)
    value = re.sub(r"[^A-Za-z0-9]", "", value)
    return value or None


def classify_series(series: dict, rules: list[dict]) -> dict:
    """Map one series to a BIDS datatype and suffix with the first rule that applies.

    Parameters
    ----------
    series : dict
        Index row: SeriesDescription, ProtocolName, ImageType (backslash-joined),
        Modality, SeriesNumber and the image count (``n_images``).
    rules : list of dict
        Ordered rules (:func:`load_heuristics`).

    Returns
    -------
    dict
        ``{"datatype", "suffix", "entities", "rule"}``, or ``{"skip": reason, "rule"}``, or
        ``{"unmatched": "<rule>: <failing condition>; ..."}`` naming why each rule missed.
    """
    misses = []
    for rule in rules:
        why = _why_not(series, rule)
        name = rule.get("name", "?")
        if why is not None:
            misses.append(f"{name}: {why}")
            continue
        if "skip" in rule:
            return {"skip": str(rule["skip"]), "rule": name}
        entities = {}
        for k, v in (rule.get("entities") or {}).items():
            ev = _entity_value(series, v)
            if ev is not None:
                entities[k] = ev.lower() if k == "dir" else ev
        return {"datatype": rule["datatype"], "suffix": rule["suffix"], "entities": entities, "rule": name}
    return {"unmatched": "; ".join(misses) or "no rules given"}


def _is_phase(series: dict, hint: str) -> bool:
    if re.search(r"(^|_)ph($|_)", hint or ""):
        return True
    it = _field(series, "ImageType").upper().split("\\")
    return "P" in it or "PHASE" in it


def _echo_value(hint: str) -> float | None:
    """The echo dcm2niix put in an output's suffix (``e2``; an echo time such as ``e12.46``
    for some enhanced exports), or None."""
    m = re.search(r"(?:^|_)e(\d+(?:\.\d+)?)(?:$|_)", hint or "")
    return float(m.group(1)) if m else None


def _echo_ranks(hints: list[str]) -> dict[str, int]:
    """hint -> echo number 1, 2, ... by the order of the echo values in the suffixes (BIDS
    counts echoes from 1: ``e10`` and ``e12.46`` are echoes 1 and 2, never 10)."""
    values = sorted({v for h in hints if (v := _echo_value(h)) is not None})
    return {h: values.index(v) + 1 for h in hints if (v := _echo_value(h)) is not None}


def _tell_apart(out: list[dict]) -> None:
    """Images of one series that would get the same name (dcm2niix's ``a``, ``b`` suffixes:
    images of the series that make no single volume, as two slices at one position) are told
    apart by the BIDS ``chunk`` entity, in output order (in place)."""
    keys = [(n["datatype"], n["suffix"], tuple(sorted(n["entities"].items()))) for n in out]
    repeated = {k for k in keys if keys.count(k) > 1}
    count: dict = {}
    for n, k in zip(out, keys):
        if k in repeated and "chunk" not in n["entities"]:
            count[k] = count.get(k, 0) + 1
            n["entities"]["chunk"] = str(count[k])


def assign_bids_names(session_series: list[dict], rules: list[dict], *, always_run: bool = True) -> dict:
    """BIDS names for every converted image of one session.

    Parameters
    ----------
    session_series : list of dict
        Index rows of one session, each with ``series_label`` (the caller's key),
        the fields of :func:`classify_series`, and optionally ``outputs``: the
        ``suffix_hint`` values of :func:`convert_series` for that series (default ``[""]``).
    rules : list of dict
    always_run : bool
        Put ``run-<n>`` in every name (as the workflow's release layout does), not only
        when a name repeats.

    Returns
    -------
    dict
        ``series_label -> list`` with, per output in ``outputs`` order, either a name dict
        ``{"datatype", "suffix", "entities", "suffix_hint"}`` or the classification's
        ``{"skip": ...}`` / ``{"unmatched": ...}`` dict. Runs are numbered 1, 2, ... in
        SeriesNumber order among series with the same datatype, suffix and entities; echo
        numbers come from the dcm2niix hint (``e2`` -> ``echo-2``) when a series has
        several echoes; ``part-phase`` / ``part-mag`` label phase images and the magnitude
        images that have a phase partner (same description) in the session; fieldmap
        magnitudes become ``magnitude1/2`` and fieldmap phases ``phasediff`` (one) or
        ``phase1/2`` (two echoes).
    """
    classified = []
    for s in session_series:
        c = classify_series(s, rules)
        classified.append((s, c))
    # magnitude/phase partners: same datatype+suffix+description
    phase_keys = set()
    for s, c in classified:
        if "datatype" in c and (_is_phase(s, "") or any(_is_phase(s, h) for h in s.get("outputs") or [""])):
            phase_keys.add((c["datatype"], c["suffix"], _field(s, "Description")))
    names: dict = {}
    groups: dict[tuple, list] = {}
    for s, c in classified:
        label = s["series_label"]
        hints = list(s.get("outputs") or [""])
        if "datatype" not in c:
            names[label] = [dict(c, suffix_hint=h) for h in hints]
            continue
        ranks = _echo_ranks(hints)
        echoes = set(ranks.values())
        out = []
        for h in hints:
            ent = dict(c["entities"])
            suffix = c["suffix"]
            phase = _is_phase(s, h) if len(hints) > 1 else _is_phase(s, h)
            echo = ranks.get(h)
            if c["datatype"] == "fmap" and suffix in ("magnitude", "phasediff"):
                if phase:
                    n_ph = sum(1 for x in hints if _is_phase(s, x))
                    suffix = "phasediff" if n_ph <= 1 else f"phase{echo or 1}"
                else:
                    suffix = f"magnitude{echo or 1}"
            else:
                piece = re.fullmatch(r"part(\d+)", h or "")
                if piece:  # one piece of a series split at a slice gap (BIDS 'chunk')
                    ent["chunk"] = piece.group(1)
                if len(echoes) > 1 and echo is not None:
                    ent["echo"] = str(echo)
                key = (c["datatype"], c["suffix"], _field(s, "Description"))
                if phase:
                    ent["part"] = "phase"
                elif key in phase_keys or any(_is_phase(s, x) for x in hints):
                    ent["part"] = "mag"
            out.append({"datatype": c["datatype"], "suffix": suffix, "entities": ent, "suffix_hint": h})
        _tell_apart(out)
        names[label] = out
        # run grouping key: everything but run, echo, part and chunk (so they share a run)
        base = [
            (
                n["datatype"],
                n["suffix"].rstrip("0123456789") if n["datatype"] == "fmap" else n["suffix"],
                tuple(sorted((k, v) for k, v in n["entities"].items() if k not in ("echo", "part", "chunk"))),
            )
            for n in out
        ]
        groups.setdefault(base[0], []).append(s)
    for members in groups.values():
        members.sort(key=lambda s: (int(s.get("SeriesNumber") or 0), str(s["series_label"])))
        if len(members) == 1 and not always_run:
            continue
        for i, s in enumerate(members, 1):
            for n in names[s["series_label"]]:
                n["entities"]["run"] = str(i)
    # a name must not repeat within the session
    seen = {}
    for label, outs in names.items():
        for n in outs:
            if "datatype" in n:
                key = bids_name("x", None, n)
                if key in seen:
                    raise ValueError(f"BIDS name collision in session: series {seen[key]} and {label} both -> {key}")
                seen[key] = label
    return names


def bids_name(subject: str, session: str | None, name: dict, strict: bool = False) -> str:
    """Relative release path without extension, e.g. ``sub-X/ses-Y/anat/sub-X_ses-Y_run-1_T1w``:
    the one naming rule for converted DICOM and for images of a BIDS input.

    Parameters
    ----------
    subject, session : str
        Pseudonymous labels without the ``sub-`` / ``ses-`` prefix; ``session`` may be None.
    name : dict
        ``{"datatype", "suffix", "entities"}``: a name from :func:`assign_bids_names`, or a
        BIDS input image's name (a plan target, an import result's ``bids``).
    strict : bool
        Raise ``ValueError`` for an entity BIDS does not define (a BIDS input's names were
        parsed against the specification); otherwise such entities (from site heuristics)
        follow the known ones, in the order given.
    """
    ent = dict(name.get("entities") or {})
    ent["sub"] = subject
    if session:
        ent["ses"] = session
    unknown = [k for k in ent if k not in ENTITY_ORDER]
    if strict and unknown:
        raise ValueError(f"target entities {sorted(unknown)} are not BIDS entities")
    parts = [f"{k}-{ent[k]}" for k in ENTITY_ORDER if ent.get(k) not in (None, "")]
    parts += [f"{k}-{ent[k]}" for k in unknown if ent[k] not in (None, "")]
    folder = f"sub-{subject}/" + (f"ses-{session}/" if session else "") + name["datatype"]
    return f"{folder}/{'_'.join(parts)}_{name['suffix']}"
