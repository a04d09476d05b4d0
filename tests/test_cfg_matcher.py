"""GrammarMatcher: exact masks against an independent recognizer, and the Matcher API on "cfg" artifacts.

The oracle is a textbook character-level Earley recognizer written here from the grammar's BNF
(nothing shared with kmgrammar's RTN, tables or caches): a token is allowed iff prefix + token is
a viable prefix, EOS iff the prefix is complete.
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from kmgrammar import Matcher, MatcherError, allocate_token_bitmask
from kmgrammar.cfg_matcher import GrammarMatcher
from kmgrammar.compiler import compile_gbnf, compile_lark
from kmgrammar.vocab import Vocabulary


def earley(bnf: dict, start: str, text: str) -> tuple:
    """(viable, complete) for `text`; bnf maps a nonterminal to alternatives (lists of symbols);
    a symbol is a nonterminal name or a 1-character literal given as ("c",)."""
    items = [set()]
    for alt in bnf[start]:
        items[0].add((start, tuple(alt), 0, 0))

    def close(i: int) -> None:
        work = list(items[i])
        while work:
            lhs, rhs, dot, org = work.pop()
            new = []
            if dot < len(rhs) and isinstance(rhs[dot], str):
                nt = rhs[dot]
                new += [(nt, tuple(a), 0, i) for a in bnf[nt]]
                if any(x[0] == nt and x[2] == len(x[1]) and x[3] == i for x in items[i]):
                    new.append((lhs, rhs, dot + 1, org))
            if dot == len(rhs):
                for l2, r2, d2, o2 in list(items[org]):
                    if d2 < len(r2) and r2[d2] == lhs:
                        new.append((l2, r2, d2 + 1, o2))
            for it in new:
                if it not in items[i]:
                    items[i].add(it)
                    work.append(it)

    close(0)
    for i, ch in enumerate(text):
        nxt = {(lhs, rhs, dot + 1, org) for lhs, rhs, dot, org in items[i]
               if dot < len(rhs) and isinstance(rhs[dot], tuple) and rhs[dot][0] == ch}
        items.append(nxt)
        close(i + 1)
        if not nxt:
            return False, False
    done = any(lhs == start and dot == len(rhs) and org == 0 for lhs, rhs, dot, org in items[-1])
    return bool(items[-1]), done


def L(c: str) -> tuple:
    return (c,)


# Each case: Lark grammar, the same language as BNF for the oracle, alphabet.
W = [[], [L(" "), "W"]]  # optional spaces, for %ignore " "
CASES = {
    "ambiguous": ('start: s\ns: s s | "a" | "(" s ")"',
                  {"S": [["s"]], "s": [["s", "s"], [L("a")], [L("("), "s", L(")")]]}, "a()"),
    "left_recursive": ('start: e\ne: e "+" t | t\nt: t "*" f | f\nf: "a" | "(" e ")"',
                       {"S": [["e"]], "e": [["e", L("+"), "t"], ["t"]], "t": [["t", L("*"), "f"], ["f"]],
                        "f": [[L("a")], [L("("), "e", L(")")]]}, "a+*()"),
    "nullable": ('start: s\ns: ("(" s ")")*',
                 {"S": [["s"]], "s": [[], [L("("), "s", L(")"), "s"]]}, "()"),
    "ignore": ('start: s\ns: "a" | "(" s ("," s)* ")"\n%ignore " "',
               {"S": [["W", "s"]], "W": W,
                "s": [[L("a"), "W"], [L("("), "W", "s", "r", L(")"), "W"]],
                "r": [[], [L(","), "W", "s", "r"]]}, "a(, "),
    "brackets": ('start: s\ns: "(" s ")" | "[" s "]" | "a" | s "," s',
                 {"S": [["s"]], "s": [[L("("), "s", L(")")], [L("["), "s", L("]")], [L("a")],
                                      ["s", L(","), "s"]]}, "()[]a,"),
    "palindromes": ('start: p\np: "a" p "a" | "b" p "b" | "a" | "b" |',
                    {"S": [["p"]], "p": [[L("a"), "p", L("a")], [L("b"), "p", L("b")], [L("a")], [L("b")], []]},
                    "ab"),
}


def tiny_vocab(alphabet: str) -> Vocabulary:
    toks = set(alphabet)
    toks |= {"".join(p) for p in itertools.product(alphabet, repeat=2)}
    rng = random.Random(len(alphabet))
    toks |= {"".join(rng.choice(alphabet) for _ in range(rng.randint(3, 6))) for _ in range(60)}
    toks = sorted(toks)
    data = [t.encode() for t in toks] + [b""]
    return Vocabulary.from_bytes(data, eos_token_ids=[len(toks)], special_token_ids=[len(toks)])


def mask_ids(m) -> set:
    return set(m.allowed_token_ids().tolist())


@pytest.mark.parametrize("case", sorted(CASES))
def test_masks_exact_against_independent_earley(case):
    lark_text, bnf, alphabet = CASES[case]
    vocab = tiny_vocab(alphabet)
    eos = vocab.eos_token_ids[0]
    compiled = compile_lark(lark_text, vocab)
    assert compiled.kind == "cfg"
    rng = random.Random(7)
    checked = 0
    for walk in range(12):
        m = Matcher(compiled)
        assert isinstance(m, GrammarMatcher)
        prefix = ""
        for step in range(10):
            allowed = mask_ids(m)
            for t in range(vocab.vocab_size):
                if t == eos:
                    want = earley(bnf, "S", prefix)[1]
                else:
                    want = earley(bnf, "S", prefix + vocab.token_bytes[t].decode())[0]
                assert (t in allowed) == want, (case, prefix, vocab.token_bytes[t], want)
                checked += 1
            choices = sorted(allowed - {eos})
            if not choices:
                break
            t = rng.choice(choices)
            assert m.accept_token(t)
            prefix += vocab.token_bytes[t].decode()
    assert checked > 500


@pytest.mark.parametrize("case", sorted(CASES))
def test_accepts_exactly_the_language_on_all_short_strings(case):
    lark_text, bnf, alphabet = CASES[case]
    compiled = compile_lark(lark_text, tiny_vocab(alphabet))
    for n in range(6):
        for chars in itertools.product(alphabet, repeat=n):
            s = "".join(chars)
            m = Matcher(compiled)
            got = m.accept_string(s) and m.is_accepting()
            assert got == earley(bnf, "S", s)[1], (case, s)


# -- the Matcher API on a cfg artifact -------------------------------------------------------

@pytest.fixture(scope="module")
def parens():
    vocab = tiny_vocab("()x")
    return vocab, compile_lark('start: s\ns: "(" s ")" | "x" | s s', vocab)


def tok(vocab, s: str) -> int:
    return vocab.token_bytes.index(s.encode())


def test_rollback_copy_reset(parens):
    vocab, c = parens
    m = Matcher(c)
    assert m.accept_token(tok(vocab, "((")) and m.accept_token(tok(vocab, "x"))
    before = mask_ids(m)
    m2 = m.copy()
    assert m2.accept_token(tok(vocab, "))"))
    assert m2.is_accepting() and not m.is_accepting()
    assert mask_ids(m) == before
    m2.rollback(1)
    assert mask_ids(m2) == before and m2.num_steps == 2
    with pytest.raises(MatcherError):
        m2.rollback(3)
    m2.reset()
    assert m2.num_steps == 0 and not m2.accept_token(tok(vocab, ")"))


def test_eos_and_termination(parens):
    vocab, c = parens
    eos = vocab.eos_token_ids[0]
    m = Matcher(c)
    assert not m.accept_token(eos)
    assert m.accept_string("(x)x")
    assert m.accept_token(eos) and m.is_terminated() and m.is_accepting()
    assert mask_ids(m) == {eos}
    assert not m.accept_token(tok(vocab, "x"))
    m.rollback(1)
    assert not m.is_terminated() and m.accept_token(tok(vocab, "x"))


def test_rejected_token_leaves_state_unchanged(parens):
    vocab, c = parens
    m = Matcher(c)
    assert m.accept_string("((")
    assert not m.accept_token(tok(vocab, ")"))
    assert not m.accept_string("x)))")
    assert m.num_steps == 1 and m.accept_string("x))")


def test_forced_bytes():
    vocab = tiny_vocab("ab{}")
    c = compile_lark('start: "{" s "}"\ns: "ab" s | "b"', vocab)
    m = Matcher(c)
    assert m.forced_bytes() == b"{"
    assert m.accept_string("{a")
    assert m.forced_bytes() == b"b"
    assert m.accept_string("b")
    assert m.forced_bytes() == b""


def test_fill_bitmask_batch_row_and_padding(parens):
    vocab, c = parens
    m = Matcher(c)
    bm = allocate_token_bitmask(3, vocab.vocab_size + 64)
    m.fill_next_token_bitmask(bm, 1)
    bits = np.unpackbits(bm[1].view(np.uint8), bitorder="little")
    assert set(np.flatnonzero(bits).tolist()) == mask_ids(m)
    assert (bm[0] == -1).all() and (bm[2] == -1).all()


def test_patched_masks_fill_the_whole_row(cl100k):
    """Masks kept as a patch of their position set's rows (cfg_matcher._Patch) overwrite every
    word of the caller's row, whatever it held: equal to the mask written out densely, at every
    step of a left-recursive arithmetic expression, for a dirty buffer and a clean one, and
    before and after they are kept whole (after _PROMOTE fills)."""
    from kmgrammar import grammars
    from kmgrammar.cfg_matcher import _PROMOTE, _Patch, runtime

    c = compile_lark(grammars.load("arithmetic"), cl100k, cache=False)
    rt = runtime(c)
    m = Matcher(c)
    patched = 0
    for t in cl100k.encode("f(1, (x + 2) * g(y ^ 3, -4)) / (5 - h(z))"):
        want = rt.mask(m._charts)
        for start in (-1, 0):
            bm = np.full((2, c.n_words), start, np.int32)
            m.fill_next_token_bitmask(bm, 1)
            assert np.array_equal(bm[1], want) and (bm[0] == start).all()
        row = m._charts[-1].mask
        if type(row) is _Patch and not patched:
            for k in range(2 * _PROMOTE):
                bm = np.full((1, c.n_words), -k, np.int32)
                m.fill_next_token_bitmask(bm, 0)
                assert np.array_equal(bm[0], want), k
            assert row.full is not None and np.array_equal(rt.mask(m._charts), want)
        patched += type(row) is _Patch
        assert m.accept_token(t)
    assert patched


def test_rows_or_equals_the_rows_written_out(cl100k, monkeypatch):
    """CompiledGrammar.rows_or (rows decoded one by one, or of big sets the fill-0 rows from the
    stored arrays at once) equals the OR of the dense rows, with and without an extra row, with
    the rows indexed up front (exception indices converted or not) or not."""
    from kmgrammar import artifact, grammars
    from kmgrammar.artifact import CompiledGrammar

    c = compile_lark(grammars.load("json"), cl100k)
    dense = CompiledGrammar.from_bytes(c.to_bytes(), cl100k)  # rows expanded here, not in c
    indexed = CompiledGrammar.from_bytes(c.to_bytes(), cl100k)
    indexed.index_rows()  # (as the first context-free matcher does)
    monkeypatch.setattr(artifact, "_INDEXED_WORDS", 0)  # exception indices too many to convert
    partly = CompiledGrammar.from_bytes(c.to_bytes(), cl100k)
    partly.index_rows()
    n_rows = len(c._arrays["row_dense"])
    rng = random.Random(7)
    extra = np.zeros(c.n_words, np.uint32)
    extra[[0, 5, c.n_words - 1]] = [1, 0xF0F0F0F0, 1 << 31]
    for size in (1, 2, 3, 6, 7, 8, 20, n_rows):
        for _ in range(3):
            rows = frozenset(rng.sample(range(n_rows), size))
            want = np.zeros(c.n_words, np.uint32)
            for r in rows:
                want |= dense.row_at(r).view(np.uint32)
            for g in (c, indexed, partly):
                assert np.array_equal(g.rows_or(rows), want), sorted(rows)
                assert np.array_equal(g.rows_or(rows, extra), want | extra), sorted(rows)


@pytest.mark.parametrize("gather", [None, 8])
def test_position_rows_or_equals_their_rows(cl100k, gather, monkeypatch):
    """The run-time OR of a position set's rows (distinct rows found position by position for
    small sets, by one gather for big ones; single rows in their stored form) equals the OR of
    each position's row, with EOS when accepting."""
    from kmgrammar import cfg_matcher, grammars
    from kmgrammar.artifact import write_stored
    from kmgrammar.cfg_matcher import runtime

    if gather is not None:  # (the bundled JSON grammar has fewer positions than the threshold)
        monkeypatch.setattr(cfg_matcher, "_GATHER", gather)
    c = compile_lark(grammars.load("json"), cl100k, cache=False)
    rt = runtime(c)
    rng = random.Random(5)
    g = cfg_matcher._GATHER
    for size in sorted({1, 2, min(g, rt.n_pos), min(g + 1, rt.n_pos), 20, rt.n_pos}):
        for _ in range(3):
            positions = frozenset(rng.sample(range(rt.n_pos), size))
            for accepting in (False, True):
                want = np.zeros(c.n_words, np.uint32)
                for p in positions:
                    want |= c.mask_row(p).view(np.uint32)
                if accepting:
                    want |= rt.eos
                got = rt.rows_or(positions, accepting, stored=True)
                got = write_stored(got, np.empty(c.n_words, np.int32)) if type(got) is tuple else got
                assert np.array_equal(got.view(np.uint32), want), (sorted(positions), accepting)


def test_deep_nesting_uses_no_python_stack():
    vocab = tiny_vocab("[]1,")
    c = compile_lark('start: v\nv: "[" [v ("," v)*] "]" | "1"', vocab)
    m = Matcher(c)
    depth = 5000
    assert m.accept_string("[" * depth + "1")
    assert len(m.allowed_token_ids()) > 0
    assert m.accept_string("]" * depth) and m.is_accepting()


def test_max_depth_is_a_clear_error():
    vocab = tiny_vocab("[]1")
    c = compile_lark('start: v\nv: "[" v "]" | "1"', vocab, max_depth=20)
    m = Matcher(c)
    assert m.accept_string("[" * 10 + "1" + "]" * 10)
    m = Matcher(c)
    with pytest.raises(MatcherError, match="max_depth=20"):
        m.accept_string("[" * 40)


def test_artifact_roundtrip_and_cache(parens, tmp_path):
    from kmgrammar import CompiledGrammar

    vocab, c = parens
    path = tmp_path / "g.kmg"
    c.save(path)
    c2 = CompiledGrammar.load(path, vocab)
    assert c2.kind == "cfg"
    m1, m2 = Matcher(c), Matcher(c2)
    for s in ["", "(", "((x", "((x)"]:
        m1.reset(), m2.reset()
        m1.accept_string(s), m2.accept_string(s)
        assert mask_ids(m1) == mask_ids(m2)
    again = compile_lark('start: s\ns: "(" s ")" | "x" | s s', vocab)  # from the disk cache
    assert again.kind == "cfg" and again.stats == c.stats


def test_gbnf_and_lark_same_language_same_masks():
    vocab = tiny_vocab("ab()")
    lark = compile_lark('start: s\ns: "a" s "b" | "(" s ")" |', vocab)
    gbnf = compile_gbnf('root ::= s\ns ::= "a" s "b" | "(" s ")" | ""', vocab)
    rng = random.Random(3)
    m1, m2 = Matcher(lark), Matcher(gbnf)
    for _ in range(20):
        a1, a2 = mask_ids(m1), mask_ids(m2)
        assert a1 == a2
        choices = sorted(a1 - set(vocab.eos_token_ids))
        if not choices:
            break
        t = rng.choice(choices)
        assert m1.accept_token(t) and m2.accept_token(t)


def test_threads_share_a_compiled_grammar():
    import threading

    vocab = tiny_vocab("()[]a,")
    text = 'start: s\ns: "(" s ")" | "[" s "]" | "a" | s "," s'
    rng = random.Random(1)
    prefixes = []
    for _ in range(40):
        m = Matcher(compile_lark(text, vocab, cache=False))
        p = ""
        for _ in range(rng.randint(1, 8)):
            ids = sorted(mask_ids(m) - set(vocab.eos_token_ids))
            t = rng.choice(ids)
            m.accept_token(t)
            p += vocab.token_bytes[t].decode()
        prefixes.append(p)
    want = {}
    ref = compile_lark(text, vocab, cache=False)
    for p in prefixes:
        m = Matcher(ref)
        m.accept_string(p)
        want[p] = mask_ids(m)
    shared = compile_lark(text, vocab, cache=False)
    errors = []

    def work(seed: int) -> None:
        r = random.Random(seed)
        for p in r.sample(prefixes, len(prefixes)):
            m = Matcher(shared)
            m.accept_string(p)
            if mask_ids(m) != want[p]:
                errors.append(p)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


@pytest.mark.parametrize("n", [1, 2, 7, 8, 1000, 1 << 16])
def test_earley_items_read_back(n):
    """An item is one int: every position of a network of n positions, with the unknown caller
    (-1), the first chart and a far one, reads back as it was made."""
    from kmgrammar.earley import Network

    z = np.zeros(n, np.int32)
    net = Network(np.full((n, 1), -1, np.int32), np.zeros(256, np.uint8), np.full(n, -1, np.int32),
                  np.zeros(n + 1, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int32), z[:1],
                  np.zeros(1, np.uint8), lazy=True)
    for pos in sorted({0, 1, n // 2, n - 1}):
        for origin in (-1, 0, 1, 123_456):
            it = net.item(pos, origin)
            assert (it & net.mask, it >> net.shift) == (pos, origin)
