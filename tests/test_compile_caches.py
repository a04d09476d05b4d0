"""Per-process caches of the compilers: reused results equal fresh ones, limits still apply."""

import pytest

from kmgrammar import grammar as g
from kmgrammar import jsonschema_containers as jc
from kmgrammar import jsonschema_values as jv
from kmgrammar.automaton import Limits
from kmgrammar.errors import CompileLimitError


def _same(a, b):
    return (a.trans.shape == b.trans.shape and (a.trans == b.trans).all() and (a.classes == b.classes).all()
            and (a.accept == b.accept).all())


def test_other_keys_shared_and_equal_to_a_fresh_build():
    lim = Limits()
    names = ("name", "value", "zzz-unusual")
    got = jc._other_keys(names, lim)
    assert jc._other_keys(names, lim) is got
    assert not got.trans.flags.writeable
    fresh = jv.difference(jv.quoted_key(jv.build(jv.length_node(0, None), lim), lim),
                          jv.build(g.alt(*[g.text(f'"{n}"') for n in names]), lim), lim)
    assert _same(got, fresh)


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
    local_table = earley.local_table

    def counting(net, r, strings):
        walked.append(len(strings))
        return local_table(net, r, strings)

    monkeypatch.setattr(earley, "local_table", counting)
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
