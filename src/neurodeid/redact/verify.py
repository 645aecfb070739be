"""Verification: is anything identifying still readable?

The OCR words of the redacted image are checked against the subject's needles
(identifying strings from the audit's private list), date-like and time-like
patterns and name-like words (rules in ``neurodeid/data/redact_verify.json``).
A :class:`Finding` says what kind of thing was read and where, never the text:
reasons are safe to log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from .ocr import Word


@dataclass(frozen=True)
class Finding:
    """Something identifying that OCR still reads.

    ``kind`` is "needle", "date", "time" or "name"; ``label`` is the needle's
    label (e.g. "PatientName") or "" ; ``box`` is (x0, y0, x1, y1) in pixel
    indices of the frame. The read text is deliberately not kept.
    """

    kind: str
    label: str
    frame: int
    box: tuple[int, int, int, int]
    conf: float

    def reason(self) -> str:
        if self.kind == "needle":
            return f"a needle ({self.label}) was read in frame {self.frame}"
        if self.kind == "name":
            return f"a name-like word was read in frame {self.frame} (confidence {self.conf:.0f})"
        return f"a {self.kind}-like token was read in frame {self.frame}"


def normalise_needles(needles) -> list[tuple[str, str]]:
    """(label, value) pairs from any of the accepted needle forms.

    Accepted: a dict label -> value; or a sequence whose items are plain
    strings (labelled "needle #i"), objects with ``.text`` and ``.source``
    (:class:`neurodeid.audit.Needle`, label = source), or 2-item
    ``[text, source]`` rows as in the audit's private needle JSON.
    """
    if not needles:
        return []
    if isinstance(needles, Mapping):
        items = [(str(k), str(v)) for k, v in needles.items()]
    else:
        items = []
        for i, n in enumerate(needles):
            if hasattr(n, "text") and hasattr(n, "source"):
                items.append((str(n.source), str(n.text)))
            elif isinstance(n, (tuple, list)) and len(n) == 2:
                items.append((str(n[1]), str(n[0])))
            else:
                items.append((f"needle #{i}", str(n)))
    return [(label, value) for label, value in items if value and value.strip()]


def _compact(s: str) -> str:
    return "".join(ch for ch in s.upper() if ch.isalnum())


def _edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance, stopping early once above ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
        if min(cur) > limit:
            return limit + 1
        prev = cur
    return prev[-1]


class Verifier:
    """Classify OCR words as still identifying or not.

    Parameters
    ----------
    rules : dict
        The ``redact_verify.json`` content.
    needles : see :func:`normalise_needles`
        The subject's identifying strings. Kept in memory only.
    time_like : bool
        Also treat hh:mm(:ss) as identifying.
    """

    def __init__(self, rules: Mapping, needles=None, time_like: bool = True):
        self.rules = rules
        self.confusions = str.maketrans(rules.get("digit_confusions", {}))
        pats = [p["pattern"] for p in rules.get("date_patterns", [])]
        self.date_re = [re.compile(p) for p in pats]
        self.time_re = [re.compile(p["pattern"]) for p in rules.get("time_patterns", [])] if time_like else []
        nl = rules.get("name_like", {})
        self.name_min_letters = int(nl.get("min_letters", 3))
        self.name_min_conf = float(nl.get("min_confidence", 60))
        nm = rules.get("needle_matching", {})
        self.min_part = int(nm.get("min_part_length", 3))
        self.letters_per_edit = int(nm.get("max_edit_distance_per_letters", 5))
        self.allowed = {w.upper() for w in rules.get("allowed_words", {})}
        self.needles = []
        for label, value in normalise_needles(needles):
            parts = [p for p in re.split(r"[^0-9A-Za-z]+", value.upper()) if len(p) >= self.min_part]
            self.needles.append((label, _compact(value), parts))

    # -- token tests -------------------------------------------------------
    def _digits_view(self, token: str) -> str:
        t = token.upper()
        if sum(ch.isdigit() for ch in t) >= 2:
            t = t.translate(self.confusions)
        return t

    def needle_label(self, token: str) -> str | None:
        """Label of the first needle the token matches, else None."""
        t = _compact(token)
        if len(t) < self.min_part:
            return None
        for label, whole, parts in self.needles:
            if len(whole) >= self.min_part and whole in t:
                return label
            for p in parts:
                if p in t or (len(t) >= 4 and t in p):
                    return label
                limit = len(p) // self.letters_per_edit
                if limit and _edit_distance(t, p, limit) <= limit:
                    return label
        return None

    def is_date(self, token: str) -> bool:
        t = self._digits_view(token)
        return any(r.search(t) for r in self.date_re)

    def is_time(self, token: str) -> bool:
        t = self._digits_view(token)
        return any(r.search(t) for r in self.time_re)

    def is_name_like(self, word: Word) -> bool:
        letters = word.text.strip(".,:;'\"()[]{}<>")
        if len(letters) < self.name_min_letters or not letters.isalpha():
            return False
        if word.conf < self.name_min_conf:
            return False
        if not (letters[0].isupper()):
            return False
        return letters.upper() not in self.allowed

    # -- whole frames --------------------------------------------------------
    def findings(self, words_per_frame: Sequence[Sequence[Word]]) -> list[Finding]:
        """Everything identifying in the OCR words of each frame.

        Tokens are checked one by one and as text lines (adjacent tokens joined
        with and without spaces), so a date split into two tokens is caught.
        """
        out: list[Finding] = []
        for frame_words in words_per_frame:
            for w in frame_words:
                label = self.needle_label(w.text)
                if label is not None:
                    out.append(Finding("needle", label, w.frame, w.box, w.conf))
                elif self.is_date(w.text):
                    out.append(Finding("date", "", w.frame, w.box, w.conf))
                elif self.time_re and self.is_time(w.text):
                    out.append(Finding("time", "", w.frame, w.box, w.conf))
                elif self.is_name_like(w):
                    out.append(Finding("name", "", w.frame, w.box, w.conf))
            lines: dict[tuple, list[Word]] = {}
            for w in frame_words:
                lines.setdefault(w.line, []).append(w)
            for ws in lines.values():
                if len(ws) < 2:
                    continue
                ws = sorted(ws, key=lambda w: w.x0)
                box = (min(w.x0 for w in ws), min(w.y0 for w in ws), max(w.x1 for w in ws), max(w.y1 for w in ws))
                conf = min(w.conf for w in ws)
                for joined in (" ".join(w.text for w in ws), "".join(w.text for w in ws)):
                    hit = None
                    compact = _compact(joined)
                    for label, whole, _ in self.needles:
                        if len(whole) >= max(self.min_part, 4) and whole in compact:
                            hit = Finding("needle", label, ws[0].frame, box, conf)
                            break
                    if hit is None and self.is_date(joined):
                        hit = Finding("date", "", ws[0].frame, box, conf)
                    if hit is not None:
                        out.append(hit)
                        break
        return out
