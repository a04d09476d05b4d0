"""Per-process caches of the compilers: reused results equal fresh ones, limits still apply."""

import json

import pytest

from kmgrammar import grammar as g
from kmgrammar import jsonschema_containers as jc
from kmgrammar import jsonschema_values as jv
from kmgrammar.automaton import Limits
from kmgrammar.errors import CompileLimitError


def _same(a, b):
    return (a.trans.shape == b.trans.shape and (a.trans == b.trans).all() and (a.classes == b.classes).all()
            and (a.accept == b.accept).all())


def _canonical(d) -> tuple:
    """A minimal DFA's rows over bytes, states renumbered breadth first: equal iff same language."""
    if d.n_states == 0:
        return ()
    full = d.trans[:, d.classes]
    index, order, rows = {0: 0}, [0], []
    for q in order:  # (grows while it is read)
        row = []
        for t in full[q].tolist():
            if t >= 0 and t not in index:
                index[t] = len(order)
                order.append(t)
            row.append(index.get(t, -1))
        rows.append((tuple(row), bool(d.accept[q])))
    return tuple(rows)


def test_other_keys_shared_and_equal_to_a_fresh_build():
    lim = Limits()
    names = ("name", "value", "zzz-unusual")
    got = jc._other_keys(names, lim)
    assert jc._other_keys(names, lim) is got
    assert not got.trans.flags.writeable
    fresh = jv.difference(jv.quoted_key(jv.build(jv.length_node(0, None), lim), lim),
                          jv.build(g.alt(*[g.text(f'"{n}"') for n in names]), lim), lim)
    assert _canonical(got) == _canonical(fresh)


def test_without_literals_is_the_difference_with_the_literals():
    """`without_literals` (the literals' trie times a DFA) has the language of the generic product
    `difference`: random literal sets (empty strings, prefixes of each other, escapes, multi-byte
    characters) against quoted keys and against small repeats."""
    import random

    lim = Limits()
    rnd = random.Random(3)
    alpha = ["a", "b", "\u00e9", '"', "\\", "\n", "ab", "x-y", "", "\U0001f600", "name"]
    keys = jv.quoted_key(jv.build(jv.length_node(0, None), lim), lim)
    for trial in range(60):
        words = {"".join(rnd.choice(alpha) for _ in range(rnd.randint(0, 4))) for _ in range(rnd.randint(1, 8))}
        if trial % 2:
            a = keys
            lits = [json.dumps(w, ensure_ascii=False).encode() for w in words]
        else:
            a = jv.build(g.Repeat(g.alt(*[g.text(rnd.choice(alpha)) for _ in range(3)]), 0, rnd.choice([None, 3])), lim)
            lits = [w.encode() for w in words]
        want = jv.difference(a, jv.build(g.alt(*[g.Bytes(x) for x in lits]), lim), lim)
        assert _canonical(jv.without_literals(a, lits, lim)) == _canonical(want), lits


def test_other_keys_below_the_cached_max_states_is_built_afresh():
    names = ("alpha", "beta", "gamma-delta")
    jc._other_keys(names, Limits())
    with pytest.raises(CompileLimitError):
        jc._other_keys(names, Limits(max_states=3))


def test_json_value_walks_kept_per_process_equal_fresh_ones(cl100k, monkeypatch):
    """The stack-table walks from positions of process-wide rule automata (JSON Schema's
    `json_value`) are kept per process (`earley._LOCAL`): schemas that differ in a detail,
    compiled one after the other, give the artifacts of compiles with that memo empty, and the
    memo really answers walks."""
    import numpy as np

    from kmgrammar import compile_json_schema, earley

    schemas = [
        {"type": "object", "properties": {"a": {}, "b": {"type": "array"}}},
        {"type": "object", "properties": {"a": {}, "b": {"type": "array"}}, "additionalProperties": False},
        {"type": "array", "items": {}},
        {"type": "object", "properties": {"a": {"type": "object"}}, "required": ["a"]},
        {},
    ]
    walked = []
    local_table, composed_table = earley.local_table, earley.composed_table

    def counting(net, r, strings):
        walked.append(len(strings))
        return local_table(net, r, strings)

    def counting_composed(net, r, strings, callee):
        walked.append(len(strings))
        return composed_table(net, r, strings, callee)

    monkeypatch.setattr(earley, "local_table", counting)
    monkeypatch.setattr(earley, "composed_table", counting_composed)
    fresh = []
    for s in schemas:
        earley._LOCAL.clear()
        fresh.append(compile_json_schema(s, cl100k, cache=False))
    n_fresh = sum(walked)
    earley._LOCAL.clear()
    for _ in range(2):
        walked.clear()
        for s, want in zip(schemas, fresh):
            got = compile_json_schema(s, cl100k, cache=False)
            assert want._arrays.keys() == got._arrays.keys()
            for k in want._arrays:
                assert np.array_equal(want._arrays[k], got._arrays[k]), k
    assert earley._LOCAL and sum(walked) < n_fresh


def test_number_dfas_kept_per_process_by_exact_bounds(monkeypatch):
    """`number_dfa` results are kept per process by the spelling of their bounds: bounds that
    differ in a detail (exclusive or not, integer or not, 0 or 0.0, 1E+2 or 100), built one after
    the other, give the DFAs of fresh builds, with the right language; a smaller max_states than
    the one a kept DFA was built under builds it afresh (and raises)."""
    from decimal import Decimal as D

    cases = [
        dict(integer=True, lower=D(0)),
        dict(integer=True, lower=D(0), lower_excl=True),
        dict(integer=False, lower=D(0)),
        dict(integer=True, lower=D("0.0")),
        dict(integer=True, lower=D(0), upper=D(100)),
        dict(integer=True, upper=D(100), upper_excl=True),
        dict(integer=True, lower=D(0), multiple=D(5)),
        dict(integer=False, lower=D("1E+2")),
        dict(integer=False, lower=D("100"), lower_excl=True),
    ]
    probes = {b"0": [1, 0, 1, 1, 1, 1, 1, 0, 0], b"5": [1, 1, 1, 1, 1, 1, 1, 0, 0],
              b"100": [1, 1, 1, 1, 1, 0, 1, 1, 0], b"0.5": [0, 0, 1, 0, 0, 0, 0, 0, 0],
              b"-1": [0, 0, 0, 0, 0, 1, 0, 0, 0], b"7": [1, 1, 1, 1, 1, 1, 0, 0, 0]}
    fresh = []
    for c in cases:
        jv._NUMBERS.clear()
        fresh.append(jv.number_dfa(**c, limits=Limits()))
    jv._NUMBERS.clear()
    for round_ in range(2):
        for k, c in enumerate(cases):
            got = jv.number_dfa(**c, limits=Limits())
            assert _same(got, fresh[k]), c
            assert not got.trans.flags.writeable
            for text, want in probes.items():
                assert got.matches(text) == bool(want[k]), (c, text)
    assert len(jv._NUMBERS) == len(cases)
    with pytest.raises(CompileLimitError):
        jv.number_dfa(**cases[4], limits=Limits(max_states=3))
