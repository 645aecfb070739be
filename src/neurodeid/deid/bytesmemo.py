"""Results of pure functions of a value's bytes, remembered for the next files of a series.

The files of a series repeat some long private values byte for byte (a Siemens CSA
series header, 0029,xx20, holds the whole protocol and is the same in every file of
its series). A function of those bytes alone (and of a few hashable settings) gives
the same result for the same bytes: :func:`memo_by_bytes` remembers the last few
results, keyed by the bytes themselves (not a digest: equal keys are equal bytes).
"""

from __future__ import annotations

from collections import OrderedDict
from functools import wraps

#: Every function decorated by :func:`memo_by_bytes`, so that :func:`forget_all` can empty
#: each one (a new series starts cold, as in a fresh process).
_REGISTRY: list = []

#: Values longer than this are not remembered (with the default size, a function holds
#: at most 8 values of 1 MB and their results).
MAX_LEN = 1024 * 1024


def memo_by_bytes(maxsize: int = 8, max_len: int = MAX_LEN):
    """Decorate ``fn(value, *args)``, a pure function of ``value`` (bytes) and hashable
    ``args``, that returns immutable results (bytes, None, tuples): the last
    ``maxsize`` results are remembered, least recently used forgotten first.

    A value that is not ``bytes`` (a bytearray, text, None) or is longer than
    ``max_len`` is passed through uncached. ``fn.cache_clear()`` forgets all; ``fn.cache_len()`` counts what is held.
    """

    def decorate(fn):
        cache: OrderedDict = OrderedDict()

        @wraps(fn)
        def wrapper(value, *args):
            if type(value) is not bytes or len(value) > max_len:
                return fn(value, *args)
            key = (value, args)
            try:
                result = cache[key]
            except KeyError:
                result = cache[key] = fn(value, *args)
                if len(cache) > maxsize:
                    cache.popitem(last=False)
            else:
                cache.move_to_end(key)
            return result

        wrapper.cache_clear = cache.clear
        wrapper.cache_len = cache.__len__
        wrapper.uncached = fn
        _REGISTRY.append(wrapper)
        return wrapper

    return decorate


def forget_all() -> None:
    """Empty the memo of every function decorated by :func:`memo_by_bytes` (one that is
    defined but not yet imported has nothing to forget)."""
    for wrapper in _REGISTRY:
        wrapper.cache_clear()
