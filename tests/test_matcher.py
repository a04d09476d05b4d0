"""Token masks are exact: a token is allowed iff prefix + its bytes can still become a full match.

The oracle is the `regex` package's partial full-matching, independent of kmgrammar's automata.
"""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
import regex as oracle

import kmgrammar
from kmgrammar import Matcher, MatcherError, Vocabulary, allocate_token_bitmask, apply_token_bitmask_inplace

PATTERNS = [
    r"[a-z0-9._%+-]{1,40}@[a-z0-9.-]{1,30}\.[a-z]{2,6}",
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})",
    r"(?i)héllo( wörld)?!*",
    # \w and \d differ between `re` and `regex` (e.g. '½' is \w only for `re`): spell classes out here;
    # test_regex.py checks Unicode classes against `re` itself.
    r"[A-Za-zÀ-ÿ_]+ [0-9]{2,3}",
    r"[^a-z\n]{0,5}x",
    r"(yes|no|maybe)( [😀-😂])?",
    r" *\{ *\"name\" *: *\"[^\"]{0,12}\" *\}",
]


def _viable(pattern: str, data: bytes) -> bool:
    """Can `data` be extended to a full match? Incomplete UTF-8 at the end counts as any
    character that completes it."""
    try:
        return oracle.fullmatch(pattern, data.decode("utf-8"), partial=True) is not None
    except UnicodeDecodeError as e:
        if e.end != len(data) or e.reason != "unexpected end of data":
            return False  # invalid UTF-8 inside: no completion fixes it
        head, tail = data[: e.start].decode("utf-8"), data[e.start :]
    need = {0xC0: 2, 0xE0: 3, 0xF0: 4}[tail[0] & 0xF0 if tail[0] >= 0xE0 else 0xC0]
    lo = int.from_bytes(tail + b"\x80" * (need - len(tail)), "big")
    hi = int.from_bytes(tail + b"\xbf" * (need - len(tail)), "big")
    for cand in range(lo, hi + 1):
        try:
            ch = cand.to_bytes(need, "big").decode("utf-8")
        except UnicodeDecodeError:
            continue
        if oracle.fullmatch(pattern, head + ch, partial=True) is not None:
            return True
    return False


def _prefixes(pattern: str, rng: random.Random, dfa) -> list:
    """A few reachable byte prefixes: random walks of the DFA."""
    out = [b""]
    for _ in range(4):
        s, cur = 0, bytearray()
        for _ in range(rng.randint(1, 12)):
            live = [b for b in range(256) if dfa.trans[s, dfa.classes[b]] >= 0]
            if not live:
                break
            b = rng.choice(live)
            cur.append(b)
            s = int(dfa.trans[s, dfa.classes[b]])
        out.append(bytes(cur))
    return out


@pytest.mark.parametrize("pattern", PATTERNS)
def test_mask_is_exact(pattern, cl100k):
    rng = random.Random(1234)
    compiled = kmgrammar.compile_regex(pattern, cl100k)
    tb = cl100k.token_bytes
    normal = [i for i in range(len(tb)) if i not in cl100k.special_token_ids]
    for prefix in _prefixes(pattern, rng, compiled.dfa):
        m = Matcher(compiled)
        assert m.accept_string(prefix)
        allowed = set(m.allowed_token_ids().tolist())
        eos = cl100k.eos_token_ids[0]
        try:
            full = oracle.fullmatch(pattern, prefix.decode("utf-8")) is not None
        except UnicodeDecodeError:
            full = False
        assert (eos in allowed) == full, (pattern, prefix)
        # Every allowed token, plus a random sample of the others, against the oracle.
        sample = set(rng.sample(normal, 1500)) | (allowed - {eos})
        incomplete_checked = 0
        for t in sorted(sample):
            data = prefix + tb[t]
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                incomplete_checked += 1
                if incomplete_checked > 40:
                    continue  # the completion search is slow; 40 per prefix is plenty
            assert (t in allowed) == _viable(pattern, data), (pattern, prefix, tb[t])
        assert not allowed & (cl100k.special_token_ids - set(cl100k.eos_token_ids))


def test_quote_tokens_exact_where_value_copies_share_walks(cl100k):
    """Copies of a string value that differ only past its closing quote (the key written next)
    share one walk of the tokens without a quote; tokens with one are walked per copy. Both
    halves against the oracle, from inside each copy."""
    from kmgrammar.token_automaton import SPLIT, horizon_classes

    value = '"[a-z ]{0,6}"'
    pattern = rf'\{{("a":{value}(,"b":{value})?|"b":{value}(,"a":{value})?)\}}'
    compiled = kmgrammar.compile_regex(pattern, cl100k)
    dfa = compiled.dfa
    clean_cols = np.unique(dfa.classes[[b for b in range(256) if b not in SPLIT]])
    horizon = max(len(b) for b in cl100k.token_bytes)
    assert (horizon_classes(dfa.trans[:, clean_cols], horizon).max()
            < horizon_classes(dfa.trans, horizon).max())  # the copies do share walks
    tb = cl100k.token_bytes
    quoted = [t for t in range(len(tb)) if b'"' in tb[t] and t not in cl100k.special_token_ids]
    others = random.Random(5).sample([t for t in range(len(tb)) if b'"' not in tb[t]], 1500)
    for prefix in (b'{"a":"x', b'{"b":"x', b'{"a":"x","b":"y', b'{"b":"y","a":"x', b'{"a":"', b'{"b":"'):
        m = Matcher(compiled)
        assert m.accept_string(prefix)
        allowed = set(m.allowed_token_ids().tolist())
        for t in quoted + others:
            assert (t in allowed) == _viable(pattern, prefix + tb[t]), (prefix, tb[t])
        assert len(allowed & set(quoted)) > 0


def _random_member(dfa, rng: random.Random, max_len: int = 60) -> bytes:
    """A random string of the language (walk until an accepting state, then stop by chance)."""
    s, out = 0, bytearray()
    while True:
        live = [b for b in range(256) if dfa.trans[s, dfa.classes[b]] >= 0]
        if dfa.accept[s] and (not live or rng.random() < 0.3 or len(out) > max_len):
            return bytes(out)
        b = rng.choice(live)
        out.append(b)
        s = int(dfa.trans[s, dfa.classes[b]])


@pytest.mark.parametrize("pattern", PATTERNS)
def test_round_trip_real_tokenization(pattern, cl100k):
    """Strings of the language, tokenized by the real tokenizer, are accepted token by token."""
    rng = random.Random(7)
    compiled = kmgrammar.compile_regex(pattern, cl100k)
    for _ in range(25):
        text = _random_member(compiled.dfa, rng).decode("utf-8")
        assert re.fullmatch(pattern, text)
        m = Matcher(compiled)
        for t in cl100k.encode(text):
            assert m.accept_token(t), (pattern, text, t)
        assert m.is_accepting()
        assert m.accept_token(cl100k.eos_token_ids[0]) and m.is_terminated()


def test_matcher_api_on_a_tiny_vocab():
    vocab = Vocabulary.from_bytes([b"a", b"b", b"ab", b"c", b"<eos>", b"\xc3", b"\xa9"],
                                  eos_token_ids=[4], vocab_size=40)
    compiled = kmgrammar.compile_regex(r"(ab)+cé?", vocab, cache=False)
    m = Matcher(compiled)
    assert m.allowed_token_ids().tolist() == [0, 2]
    assert m.forced_bytes() == b"ab"
    assert not m.accept_token(1) and m.accept_token(0)
    assert m.forced_bytes() == b"b"
    assert not m.accept_token(4)  # EOS before the output is complete
    assert m.accept_token(1) and m.allowed_token_ids().tolist() == [0, 2, 3]
    assert m.accept_token(3) and m.is_accepting() and not m.is_terminated()
    assert m.allowed_token_ids().tolist() == [4, 5]  # EOS, or the first byte of é
    assert m.accept_token(5) and not m.is_accepting() and m.allowed_token_ids().tolist() == [6]
    m2 = m.copy()
    assert m2.accept_token(6) and m2.accept_token(4) and m2.is_terminated()
    assert m2.allowed_token_ids().tolist() == [4]  # after EOS only EOS
    assert not m2.accept_token(0)
    assert m.num_steps == 4 and not m.is_accepting()  # the copy is independent
    m.rollback(2)
    ids = m.allowed_token_ids()
    assert ids.tolist() == [0, 2, 3]  # back after "ab", from the per-row cache
    assert m.allowed_token_ids() is ids and not ids.flags.writeable  # shared: callers copy
    m2.rollback(1)
    assert not m2.is_terminated() and m2.is_accepting()
    with pytest.raises(MatcherError):
        m.rollback(10)
    for bad in (-1, 40, 10**9):
        assert not m.accept_token(bad)
    m.reset()
    assert m.num_steps == 0 and m.forced_bytes() == b"ab"
    assert m.accept_string("abab") and not m.accept_string("x") and m.accept_string(b"c")
    assert m.is_accepting()


def test_bitmask_layout_and_apply(cl100k):
    compiled = kmgrammar.compile_regex(r"[0-9]{2}", cl100k)
    m = Matcher(compiled)
    bm = allocate_token_bitmask(2, cl100k.vocab_size)
    assert bm.shape == (2, (cl100k.vocab_size + 31) // 32) and bm.dtype == np.int32
    m.fill_next_token_bitmask(bm, index=1)
    assert (bm[0] == -1).all()  # other rows untouched
    ids = m.allowed_token_ids()
    for t in ids.tolist():
        assert (bm[1, t // 32] >> (t % 32)) & 1
    assert len(ids) == sum(bin(w & 0xFFFFFFFF).count("1") for w in bm[1].tolist())
    logits = np.zeros((2, cl100k.vocab_size + 64), np.float32)  # padded logits
    apply_token_bitmask_inplace(logits, bm)
    assert np.isfinite(logits[1]).sum() == len(ids)
    assert set(np.flatnonzero(np.isfinite(logits[1])).tolist()) == set(ids.tolist())
    assert not np.isfinite(logits[0, cl100k.vocab_size:]).any() or bm.shape[1] * 32 > cl100k.vocab_size


def test_padded_vocab_never_allows_padding():
    vocab = Vocabulary.from_bytes([b"a", b"b", b"<eos>"], eos_token_ids=[2], vocab_size=100)
    compiled = kmgrammar.compile_regex("[ab]*", vocab, cache=False)
    m = Matcher(compiled)
    assert m.allowed_token_ids().tolist() == [0, 1, 2]
    assert not m.accept_token(50)


def test_choices(cl100k):
    opts = ["red", "green", "blue", "light blue", "ünïcödé", ""]
    compiled = kmgrammar.compile_choices(opts, cl100k)
    for o in opts:
        m = Matcher(compiled)
        assert all(m.accept_token(t) for t in cl100k.encode(o)) and m.is_accepting(), o
    m = Matcher(compiled)
    assert m.is_accepting()  # "" is an option
    assert m.accept_string("light") and m.forced_bytes() == b" blue"
    assert not Matcher(compiled).accept_string("blu e")
    with pytest.raises(kmgrammar.CompileError):
        kmgrammar.compile_choices([], cl100k)
    with pytest.raises(kmgrammar.CompileError):
        kmgrammar.compile_choices("abc", cl100k)
    with pytest.raises(kmgrammar.CompileError):
        kmgrammar.compile_choices(["a", 3], cl100k)


def test_ten_thousand_choices(cl100k):
    rng = random.Random(3)
    words = ["".join(rng.choice("abcdefghij klmnop") for _ in range(rng.randint(3, 14))) for _ in range(10_000)]
    compiled = kmgrammar.compile_choices(words, cl100k, cache=False)
    for w in rng.sample(words, 200):
        m = Matcher(compiled)
        assert all(m.accept_token(t) for t in cl100k.encode(w)) and m.is_accepting()
    assert not Matcher(compiled).accept_string("zzz")


def test_threads_share_one_compiled_grammar(cl100k):
    from concurrent.futures import ThreadPoolExecutor

    compiled = kmgrammar.compile_regex(r"[a-z]{1,8}( [a-z]{1,8}){0,4}", cl100k)
    text = "the quick brown fox"

    def run(_):
        m = Matcher(compiled)
        bm = allocate_token_bitmask(1, cl100k.vocab_size)
        for t in cl100k.encode(text):
            m.fill_next_token_bitmask(bm)
            assert (bm[0, t // 32] >> (t % 32)) & 1
            assert m.accept_token(t)
        return m.is_accepting()

    with ThreadPoolExecutor(4) as ex:
        assert all(ex.map(run, range(16)))


@pytest.mark.parametrize("direct", [256, 4])
def test_stored_rows_written_and_ored_exactly(direct, monkeypatch):
    """Rows stored dense, as zeros plus exceptions and as ones plus exceptions give the same words
    whether expanded (mask_row), written into a buffer (write_row) or ORed (rows_or), alone, in
    any combination, with and without an extra row (EOS); before and after rows are kept, and
    with rows past `_DIRECT_WORDS` exceptions (direct=4)."""
    from kmgrammar import artifact
    from kmgrammar.token_automaton import _encode_rows

    monkeypatch.setattr(artifact, "_DIRECT_WORDS", direct)
    rng = np.random.default_rng(7)
    n_words = 40
    rows = [np.zeros(n_words, np.uint32), np.full(n_words, 0xFFFFFFFF, np.uint32)]
    for k in (1, 3, 9, 19, 25, 40):  # exceptions over zeros and over ones; past 20 stored dense
        for base in (0, 0xFFFFFFFF):
            row = np.full(n_words, base, np.uint32)
            at = rng.choice(n_words, k, replace=False)
            row[at] = rng.integers(1, 0xFFFFFFFF, k, dtype=np.uint32)
            rows.append(row)
    arrays = _encode_rows(rows, n_words)
    assert {(f, d >= 0) for f, d in zip(arrays["row_fill"].tolist(), arrays["row_dense"].tolist())} == {
        (0, False), (-1, False), (0, True)}
    vocab = Vocabulary.from_bytes([b"%d" % i for i in range(32 * n_words - 1)] + [b"<eos>"],
                                  eos_token_ids=[32 * n_words - 1])
    template = kmgrammar.compile_regex("1", vocab, cache=False)
    arrays.update({k: v for k, v in template._arrays.items() if k not in arrays})
    arrays["state_row"] = np.arange(len(rows), dtype=np.int32)
    g = artifact.CompiledGrammar(kind="regex", spec="1", options={}, vocab=vocab, arrays=arrays, stats={})
    for first in (True, False):  # stored forms only, then with the rows mask_row kept
        for r, want in enumerate(rows):
            assert (g._rows[r] is None) == first  # nothing kept yet on the first pass
            out = np.full(n_words, 12345, np.int32)
            g.write_row(r, out)
            assert np.array_equal(out.view(np.uint32), want)
        extra = rng.integers(0, 0xFFFFFFFF, n_words, dtype=np.uint32)
        for n in (1, 2, 3, 5, 9, len(rows)):  # up to 3 sparse rows one by one, more in one scatter
            for _ in range(30):
                pick = rng.choice(len(rows), n, replace=False).tolist()
                want = np.bitwise_or.reduce([rows[r] for r in pick])
                assert np.array_equal(g.rows_or(pick), want)
                assert np.array_equal(g.rows_or(pick, extra), want | extra)
        for r, want in enumerate(rows):
            assert np.array_equal(g.mask_row(r).view(np.uint32), want)
            assert np.array_equal(g.rows_or([r]), want)
