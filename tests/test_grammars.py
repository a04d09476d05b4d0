"""Bundled grammars and Lark corpora on cl100k: differential against Lark (lexer="dynamic_complete").

Strings Lark accepts are accepted token by token (cl100k's tokenization, byte by byte and random
splits, each token allowed by the mask before it is accepted); strings it rejects are rejected;
random walks of the matcher always parse with Lark; at sampled states the mask agrees with
accept_token on a copy for random tokens.
"""

from __future__ import annotations

import json
import random
import warnings

import numpy as np
import pytest

from kmgrammar import Matcher, allocate_token_bitmask, grammars
from kmgrammar.compiler import compile_gbnf, compile_lark

from conftest import allowed, byte_index, lark_accepts, random_split

LARK_NAMES = [n for n in grammars.available() if not n.endswith(".gbnf")]
GBNF_NAMES = [n for n in grammars.available() if n.endswith(".gbnf")]


@pytest.fixture(scope="module")
def compiled(cl100k):
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cache[name] = grammars.compile(name, cl100k)
        return cache[name]

    return get


def lark_parser(text: str):
    from lark import Lark

    return Lark(text, parser="earley", lexer="dynamic_complete")


def walk_tokens(m, vocab, ids, bm) -> None:
    for t in ids:
        assert allowed(m, bm, t), vocab.token_bytes[t]
        assert m.accept_token(t), vocab.token_bytes[t]


@pytest.mark.parametrize("name", grammars.available())
def test_bundled_examples(name, compiled, cl100k):
    c = compiled(name)
    acc, rej = grammars.examples(name)
    assert acc and rej
    eos = cl100k.eos_token_ids[0]
    bm = allocate_token_bitmask(1, cl100k.vocab_size)
    rng = random.Random(11)
    for s in acc:
        data = s.encode()
        for ids in (cl100k.encode(s), random_split(data, cl100k, rng), [byte_index(cl100k)[bytes([b])] for b in data]):
            m = Matcher(c)
            walk_tokens(m, cl100k, ids, bm)
            assert allowed(m, bm, eos) and m.accept_token(eos), s
    for s in rej:
        m = Matcher(c)
        assert not (m.accept_string(s) and m.is_accepting()), s


@pytest.mark.parametrize("name", LARK_NAMES)
def test_bundled_lark_grammars_agree_with_lark(name):
    p = lark_parser(grammars.load(name))
    acc, rej = grammars.examples(name)
    assert all(lark_accepts(p, s) for s in acc)
    assert not any(lark_accepts(p, s) for s in rej)


def _sample(m, vocab, rng, max_tokens: int) -> bytes | None:
    bm = allocate_token_bitmask(1, vocab.vocab_size)
    out = b""
    eos = set(vocab.eos_token_ids)
    for _ in range(max_tokens):
        m.fill_next_token_bitmask(bm)
        ids = np.flatnonzero(np.unpackbits(bm[0].view(np.uint8), bitorder="little")[: vocab.vocab_size])
        assert len(ids)
        if m.is_accepting() and rng.random() < 0.25:
            return out
        ids = [t for t in ids.tolist() if t not in eos]
        if not ids:
            return out
        # Prefer short tokens sometimes so structure (not just long names) gets exercised.
        t = rng.choice(ids) if rng.random() < 0.5 else min(rng.sample(ids, min(8, len(ids))),
                                                             key=lambda x: len(vocab.token_bytes[x]))
        assert m.accept_token(t)
        out += vocab.token_bytes[t]
    return out if m.is_accepting() else None


@pytest.mark.parametrize("name", ["json", "arithmetic", "python_expr", "csv"])
def test_samples_parse_with_lark(name, compiled, cl100k):
    c = compiled(name)
    p = lark_parser(grammars.load(name))
    rng = random.Random(5)
    got = 0
    for _ in range(12):
        out = _sample(Matcher(c), cl100k, rng, 40)
        if out is None:
            continue
        try:
            text = out.decode()
        except UnicodeDecodeError:
            continue
        assert lark_accepts(p, text), text
        got += 1
    assert got >= 1


def test_json_samples_are_json(compiled, cl100k):
    rng = random.Random(9)
    for name in ("json", "json.gbnf"):
        c = compiled(name)
        for _ in range(8):
            out = _sample(Matcher(c), cl100k, rng, 30)
            if out is not None:
                json.loads(out)


@pytest.mark.parametrize("name", ["json", "arithmetic", "sql", "json.gbnf"])
def test_mask_agrees_with_accept_token(name, compiled, cl100k):
    c = compiled(name)
    rng = random.Random(2)
    bm = allocate_token_bitmask(1, cl100k.vocab_size)
    acc, _ = grammars.examples(name)
    for s in acc[:3]:
        m = Matcher(c)
        for t in cl100k.encode(s)[:12]:
            m.fill_next_token_bitmask(bm)
            bits = np.unpackbits(bm[0].view(np.uint8), bitorder="little")
            ids = np.flatnonzero(bits[: cl100k.vocab_size])
            cand = rng.sample(range(cl100k.vocab_size), 150) + rng.sample(ids.tolist(), min(30, len(ids)))
            for x in cand:
                if x in cl100k.special_token_ids:
                    continue
                assert m.copy().accept_token(x) == bool(bits[x]), (s, cl100k.token_bytes[x])
            assert m.accept_token(t)


DIFF_CASES = {
    "keywords_vs_names": (r"""
        start: stmt+
        stmt: "if" NAME ";" | NAME "=" NAME ";" | "{" stmt* "}"
        NAME: /[a-z]+/
        %ignore " "
        """, ["if x;", "ifx;", "if if;", "a=b;{c=d;}", "{ifx;{}}", "if x ; y = z;"],
        ["if ;", "if x", "a=;", "{a=b;", "}"]),
    "left_recursive_ambiguous": ("""
        start: e
        e: e "-" e | e "*" e | "(" e ")" | NUMBER
        %import common.NUMBER
        %ignore " "
        """, ["1-2-3", "1 - 2 * (3 - 4)", "((1))", "2.5*3"], ["1-", "(1", "1 2", "-1", "()"]),
}


@pytest.mark.parametrize("case", sorted(DIFF_CASES))
def test_differential_small_grammars(case, cl100k):
    text, good, bad = DIFF_CASES[case]
    c = compile_lark(text, cl100k)
    p = lark_parser(text)
    rng = random.Random(4)
    bm = allocate_token_bitmask(1, cl100k.vocab_size)
    strings = good + bad
    for s in list(strings):
        for _ in range(6):  # mutants: insert, delete or replace one character
            i = rng.randrange(len(s) + 1)
            op = rng.randrange(3)
            ch = rng.choice("if x;=(){}-*12 ")
            strings.append(s[:i] + ch + s[i:] if op == 0 else s[:i] + s[i + 1:] if op == 1 else s[:i] + ch + s[i + 1:])
    for s in strings:
        want = lark_accepts(p, s)
        m = Matcher(c)
        assert (m.accept_string(s) and m.is_accepting()) == want, s
        if want:
            m = Matcher(c)
            walk_tokens(m, cl100k, cl100k.encode(s), bm)
            assert m.is_accepting()
    for s in good:
        assert lark_accepts(p, s), s
    for s in bad:
        assert not lark_accepts(p, s), s


def _corpus_cases(shared):
    lark_dir = shared / "corpora" / "grammars" / "lark"
    return {
        "lark/examples/composition/json.lark": (lark_dir / "examples" / "composition" / "json.lark", "value",
                                               ['{"a": [1, 2.5, "x"]}', "[]", '"s"', "-1e3"], ["{", "[1,]"]),
        "lark/examples/standalone/json.lark": (lark_dir / "examples" / "standalone" / "json.lark", "start",
                                              ['{"a": {"b": [true, null]}}'], ["{'a': 1}"]),
    }


def test_lark_corpus_grammars(shared, cl100k):
    for label, (path, start, good, bad) in _corpus_cases(shared).items():
        text = path.read_text("utf-8")
        from lark import Lark

        p = Lark(text, parser="earley", lexer="dynamic_complete", start=start)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c = compile_lark(text, cl100k, start=start)
        bm = allocate_token_bitmask(1, cl100k.vocab_size)
        for s in good:
            assert lark_accepts(p, s), (label, s)
            m = Matcher(c)
            walk_tokens(m, cl100k, cl100k.encode(s), bm)
            assert m.is_accepting(), (label, s)
        for s in bad:
            m = Matcher(c)
            assert not lark_accepts(p, s) and not (m.accept_string(s) and m.is_accepting()), (label, s)


def test_lark_grammars_corpus_that_loads_compiles(shared, cl100k):
    """lark-grammars (older dialect): every grammar that current Lark loads either compiles or
    fails with a clear kmgrammar error (never a hang or a crash)."""
    from lark import Lark

    from kmgrammar import CompileError

    folder = shared / "corpora" / "grammars" / "lark-grammars"
    ok = 0
    for path in sorted(folder.rglob("*.lark"))[:12]:
        text = path.read_text("utf-8", errors="replace")
        try:
            Lark(text, parser="earley", lexer="dynamic_complete")
        except Exception:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                compile_lark(text, cl100k, time_limit=20)
            ok += 1
        except CompileError as e:
            assert str(e)
    assert ok >= 3


def test_gbnf_corpus_samples(shared, cl100k):
    folder = shared / "corpora" / "grammars" / "gbnf" / "grammars"
    c = compile_gbnf((folder / "json.gbnf").read_text("utf-8"), cl100k)
    rng = random.Random(8)
    for _ in range(5):
        out = _sample(Matcher(c), cl100k, rng, 30)
        if out is not None:
            json.loads(out)


def test_lark_corpus_grammars_outside_the_language_fail_loudly(shared, cl100k):
    """Lookarounds and postlexer terminals cannot be enforced exactly: a clear error naming the
    terminal, never a silent approximation."""
    from kmgrammar import UnsupportedFeatureError

    lark_dir = shared / "corpora" / "grammars" / "lark"
    cases = [(lark_dir / "lark" / "grammars" / "python.lark", "file_input", "DEC_NUMBER"),
             (lark_dir / "lark" / "grammars" / "lark.lark", "start", "terminal OP"),
             (lark_dir / "examples" / "advanced" / "python2.lark", "file_input", "%declare")]
    for path, start, fragment in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(UnsupportedFeatureError, match=fragment):
                compile_lark(path.read_text("utf-8"), cl100k, start=start)


def test_lark_corpus_csv(shared, cl100k):
    path = shared / "corpora" / "grammars" / "lark" / "examples" / "composition" / "csv.lark"
    text = path.read_text("utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = compile_lark(text, cl100k)
    p = lark_parser(text)
    cases = ["# a b\n1,2\n", "#a,b\nx 1.5\n-2.5\tq\n", "# a\n", "a,b\n1\n", "# a\n1,,2\n", "#a\n1 2 3\n"]
    assert sum(lark_accepts(p, s) for s in cases) >= 2
    for s in cases:
        m = Matcher(c)
        assert (m.accept_string(s) and m.is_accepting()) == lark_accepts(p, s), s


def _random_json(rng, depth: int):
    r = rng.random()
    if depth <= 0 or r < 0.3:
        return rng.choice([0, -12, 3.5e-3, 1e21, True, False, None, "", 'a"b\\', "\u00e9\u2603 x", "\n\t"])
    if r < 0.65:
        return [_random_json(rng, depth - 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(["k", "key", "\u00fc", "a b", ""]) + str(i): _random_json(rng, depth - 1)
            for i in range(rng.randint(0, 4))}


def test_random_json_documents_token_by_token(compiled, cl100k):
    """Many stack shapes: every cl100k token of random nested documents is allowed and accepted,
    the document ends accepting, and one-character mutants agree with Lark."""
    c = compiled("json")
    p = lark_parser(grammars.load("json"))
    rng = random.Random(12)
    bm = allocate_token_bitmask(1, cl100k.vocab_size)
    eos = cl100k.eos_token_ids[0]
    for _ in range(25):
        doc = json.dumps(_random_json(rng, 7), indent=rng.choice([None, 1, 2]), ensure_ascii=rng.random() < 0.5)
        m = Matcher(c)
        walk_tokens(m, cl100k, cl100k.encode(doc), bm)
        assert allowed(m, bm, eos), doc
        i = rng.randrange(len(doc))
        mutant = doc[:i] + rng.choice(",:[]{}\"x1 ") + doc[i + 1:]
        m = Matcher(c)
        assert (m.accept_string(mutant) and m.is_accepting()) == lark_accepts(p, mutant), mutant
