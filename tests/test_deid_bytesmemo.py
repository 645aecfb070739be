"""The per-bytes memo of pure functions (neurodeid.deid.bytesmemo)."""

from neurodeid.deid.bytesmemo import memo_by_bytes


def test_memo_remembers_by_bytes_and_args_and_forgets_the_oldest():
    calls = []

    @memo_by_bytes(maxsize=2)
    def f(value, n):
        calls.append((value, n))
        return value * n

    assert f(b"ab", 2) == b"abab" and f(b"ab", 2) == b"abab"
    assert calls == [(b"ab", 2)]
    assert f(b"ab", 3) == b"ababab"  # other args: another entry
    assert f(bytes(bytearray(b"ab")), 2) == b"abab"  # equal bytes, another object: remembered
    assert len(calls) == 2
    f(b"cd", 1)  # a third entry: the least recently used, (b"ab", 3), is forgotten
    f(b"ab", 3)
    assert len(calls) == 4
    f.cache_clear()
    f(b"ab", 2)
    assert len(calls) == 5


def test_memo_passes_other_values_through():
    calls = []

    @memo_by_bytes(max_len=3)
    def f(value):
        calls.append(value)
        return len(value)

    f(bytearray(b"ab")), f(bytearray(b"ab"))  # mutable: never remembered
    f(b"abcd"), f(b"abcd")  # too long
    f("ab"), f("ab")
    assert len(calls) == 6
