"""The secret key and everything derived from it.

One secret key drives every keyed value of a release: subject labels, UID
remapping and the per-subject date shift. The same key gives the same outputs on
every rerun and every machine; another key gives unlinkable outputs. The key is
never written into any output: rules receive only its :func:`fingerprint`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sys
from pathlib import Path

ENV_VAR = "NEURODEID_KEY"

#: The key of the bundled example. It is public, hence not secret: a release
#: made with it can be re-identified by anyone who has the raw data.
DEMO_KEY = b"neurodeid-demo-key-NOT-SECRET"

#: Shortest key accepted from the environment or a key file (bytes).
MIN_KEY_BYTES = 16

DEMO_WARNING = """
************************************************************************
*  WARNING: neurodeid is using its DEMO KEY, which is NOT SECRET.       *
*  Pseudonyms, UIDs and date shifts made with it can be reversed by     *
*  anyone. Fine for the bundled example; for real data set the          *
*  environment variable NEURODEID_KEY or `key_file:` in the config.     *
************************************************************************
"""


class KeyError_(ValueError):
    """The secret key is missing or unusable."""


def load_key(key_file: str | os.PathLike | None = None, allow_demo: bool = False) -> bytes:
    """Return the secret key.

    Order: the environment variable ``NEURODEID_KEY``, then ``key_file`` (its
    content, surrounding whitespace stripped), then the demo key if
    ``allow_demo`` (with a loud warning on stderr).

    Raises
    ------
    KeyError_
        When no key is configured, the key file cannot be read, or the key is
        shorter than :data:`MIN_KEY_BYTES`.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        key = env.strip().encode("utf-8")
        source = f"environment variable {ENV_VAR}"
    elif key_file:
        path = Path(key_file)
        try:
            key = path.read_bytes().strip()
        except OSError as exc:
            raise KeyError_(
                f"key_file {str(path)!r} cannot be read ({exc.strerror}); "
                f"create it (e.g. `python -c 'import secrets; print(secrets.token_hex(32))' > {path}`) "
                f"or set {ENV_VAR}"
            ) from None
        source = f"key_file {str(path)!r}"
    elif allow_demo:
        print(DEMO_WARNING, file=sys.stderr)
        return DEMO_KEY
    else:
        raise KeyError_(
            f"no secret key: set the environment variable {ENV_VAR} or `key_file:` in the config "
            "(the demo key is only used for the bundled example)"
        )
    if len(key) < MIN_KEY_BYTES:
        raise KeyError_(f"the key from {source} is {len(key)} bytes; use at least {MIN_KEY_BYTES}")
    return key


def keyed_digest(key: bytes, purpose: str, value: str) -> bytes:
    """HMAC-SHA256 of ``value`` under ``key``, separated by ``purpose``.

    The purpose string keeps the derivations apart: a subject label and a UID
    made from the same text never share a digest.
    """
    msg = purpose.encode("ascii") + b"\x00" + value.encode("utf-8")
    return hmac.new(key, msg, hashlib.sha256).digest()


def fingerprint(key: bytes) -> str:
    """A short public fingerprint of the key (16 hex digits).

    Passed to rules as a parameter so that a new key reruns keyed work, without
    the key itself reaching Snakemake's metadata or any log.
    """
    return keyed_digest(key, "fingerprint", "neurodeid").hex()[:16]


def subject_hash(key: bytes, patient_id: str, issuer: str = "") -> str:
    """Full keyed hex digest of a subject (64 lowercase hex digits).

    The label is a prefix of this digest (see :func:`neurodeid.index.assign_subject_labels`).
    """
    return keyed_digest(key, "subject", f"{issuer}\x00{patient_id}").hex()


def remap_uid(key: bytes, uid: str) -> str:
    """Map a UID to ``2.25.<decimal integer>`` under ``key``.

    The integer is the first 128 bits of HMAC(key, uid), as PS3.5 B.2 allows for
    UUID-derived UIDs under the ``2.25`` root; the result is at most 44
    characters, inside the 64-character limit. Deterministic: the same UID maps
    to the same new UID in every file, series, study and rerun.
    """
    uid = uid.strip().rstrip("\x00")
    n = int.from_bytes(keyed_digest(key, "uid", uid)[:16], "big")
    return f"2.25.{n}"


def date_shift_days(key: bytes, subject_label: str, max_days: int = 365) -> int:
    """Per-subject date shift in whole days, in ``[-max_days, -1]``.

    Always into the past and never zero, so a shifted date differs from the
    original and never lies in the future. Keyed on the subject label so that
    every study of one subject keeps its intervals.
    """
    if max_days < 1:
        raise ValueError(f"max_days must be >= 1, got {max_days}")
    n = int.from_bytes(keyed_digest(key, "date-shift", subject_label)[:8], "big")
    return -(1 + n % max_days)
