"""property_order="any": differential against the `jsonschema` validator on documents whose keys
come in every order (declared and extra keys interleaved, duplicates, missing required keys), for
regular objects (one DFA) and context-free ones (members shared as rules)."""

from __future__ import annotations

import itertools
import json
import random

import jsonschema as js
import pytest

from kmgrammar import Matcher
from kmgrammar.automaton import ByteDFA
from kmgrammar.compiler import compile_json_schema
from kmgrammar.errors import CompileLimitError
from kmgrammar.jsonschema import schema_to_grammar
from kmgrammar.jsonschema_containers import (ANY_ORDER_BUDGET_CALLS, ANY_ORDER_MAX_CALLS, ANY_ORDER_MAX_PROPERTIES,
                                             ANY_ORDER_MAX_STATES)

VALUES = [1, "s", True, None, {"q": 1}]


def _documents(schema, keys, rng, n_random=300, max_len=5):
    """Member lists (key, value): every order of every subset of `keys`, then random lists
    (repeated keys too); values mostly ones the key's schema allows, sometimes any."""
    per_key = {kw: schema[kw] for kw in ("properties", "patternProperties", "additionalProperties") if kw in schema}
    good = {k: [v for v in VALUES if js.Draft202012Validator(per_key).is_valid({k: v})] or VALUES for k in keys}

    def value(k):
        return rng.choice(good[k] if rng.random() < 0.8 else VALUES)

    out = []
    for r in range(len(keys) + 1):
        for sub in itertools.permutations(keys, r):
            out.append([(k, value(k)) for k in sub])
    for _ in range(n_random):
        out.append([(k, value(k)) for k in (rng.choice(keys) for _ in range(rng.randint(0, max_len)))])
    return out


def _text(members) -> bytes:
    body = ",".join(json.dumps(k) + ":" + json.dumps(v, separators=(",", ":")) for k, v in members)
    return ("{" + body + "}").encode()


def _expected(schema, members, declared) -> bool:
    names = [k for k, _v in members]
    if len(set(n for n in names if n in declared)) < len([n for n in names if n in declared]):
        return False  # a declared key twice: never allowed
    return js.Draft202012Validator(schema).is_valid(dict(members))


def _acceptor(schema, vocab):
    got = schema_to_grammar(schema, property_order="any")
    if isinstance(got, ByteDFA):
        return "dfa", got.matches
    cg = compile_json_schema(schema, vocab, property_order="any", cache=False)

    def accepts(data: bytes) -> bool:
        m = Matcher(cg)
        return m.accept_string(data) and m.is_accepting()

    return "cfg", accepts


CASES = {
    # (schema, extra keys to try, expected back end)
    "closed": ({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"},
                                                 "c": {"type": "boolean"}},
                "required": ["a", "c"], "additionalProperties": False}, ["x"], "dfa"),
    "extras-schema": ({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
                       "required": ["b"], "additionalProperties": {"type": "boolean"}}, ["x", "y"], "dfa"),
    "patterns": ({"type": "object", "properties": {"a": {"type": "integer"}, "p1": {"type": "string"}},
                  "patternProperties": {"^p": {"type": ["string", "integer"]}}, "additionalProperties": False,
                  "required": ["a"]}, ["p2", "x"], "dfa"),
    "counted": ({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                 "additionalProperties": {"type": ["boolean", "null"]}, "required": ["a"], "minProperties": 2,
                 "maxProperties": 3},
                ["x", "y"], "dfa"),
    "open-cfg": ({"type": "object", "properties": {"a": {"type": "integer"}, "b": {}, "c": {"type": "string"}},
                  "required": ["b"]}, ["x", "y"], "cfg"),
    "open-cfg-counted": ({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
                          "required": ["a"], "maxProperties": 2, "patternProperties": {"^z": {"type": "null"}}},
                         ["z1", "x"], "cfg"),
    "closed-cfg": ({"type": "object", "properties": {"a": {}, "b": {"type": "integer"}, "c": {"type": "null"}},
                    "additionalProperties": False, "required": ["c"]}, ["x"], "cfg"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_any_order_matches_validator(name, cl100k):
    schema, extras, kind = CASES[name]
    declared = set(schema["properties"])
    got_kind, accepts = _acceptor(schema, cl100k)
    assert got_kind == kind
    rng = random.Random(name)
    n_ok = 0
    for members in _documents(schema, sorted(declared) + extras, rng):
        names = [k for k, _v in members]
        if len(set(names)) < len(names) and not any(names.count(k) > 1 for k in declared):
            continue  # repeated extra keys: not checked (a documented departure)
        want = _expected(schema, members, declared)
        assert accepts(_text(members)) == want, (name, members)
        n_ok += want
    assert n_ok > 10


WIDE = {f"p{i}": t for i, t in enumerate([{"type": "integer"}, {"type": "string"}, {"type": "boolean"},
                                             {"enum": [1, "s"]}, {"type": "null"}, {"type": "integer"},
                                             {"type": "string"}, {"type": "integer"}, {"type": "boolean"},
                                             {"type": "null"}, {"type": "string"}, {"type": "integer"}])}
WIDE_CASES = {
    "wide-closed": ({"type": "object", "properties": WIDE, "required": ["p0", "p4"], "additionalProperties": False},
                    "dfa"),
    "wide-counted": ({"type": "object", "properties": WIDE, "required": ["p3"], "minProperties": 1,
                      "maxProperties": 3, "additionalProperties": {"type": "boolean"}}, "dfa"),
    "wide-open-cfg": ({"type": "object", "properties": dict(WIDE, p5={}), "required": ["p1", "p5", "p9"]}, "cfg"),
}


@pytest.mark.parametrize("name", sorted(WIDE_CASES))
def test_any_order_past_the_limit_tracks_required_keys(name, cl100k):
    """Past ANY_ORDER_MAX_PROPERTIES declared properties a declared key may repeat: a document is
    allowed iff every copy of every member is valid for its key, the members (copies counted)
    respect maxProperties, and the value a parser keeps (the last copy) validates."""
    schema, kind = WIDE_CASES[name]
    assert len(schema["properties"]) > ANY_ORDER_MAX_PROPERTIES
    got_kind, accepts = _acceptor(schema, cl100k)
    assert got_kind == kind
    per_key = {kw: schema[kw] for kw in ("properties", "additionalProperties") if kw in schema}
    keys = sorted(schema["properties"]) + ["x"]
    rng = random.Random(name)
    n_ok = n_repeat = 0
    good = {k: [v for v in VALUES if js.Draft202012Validator(per_key).is_valid({k: v})] or VALUES for k in keys}

    def doc():  # some keys, some of them twice, the required ones mostly there; values mostly good
        ks = rng.sample(keys, rng.randint(0, 4)) + rng.sample(keys, rng.randint(0, 2))
        ks += [k for k in schema.get("required", []) if rng.random() < 0.9]
        rng.shuffle(ks)
        return [(k, rng.choice(good[k] if rng.random() < 0.9 else VALUES)) for k in ks]

    for members in _documents(schema, keys[:4], rng, n_random=0) + [doc() for _ in range(600)]:
        want = (js.Draft202012Validator(schema).is_valid(dict(members))
                and all(js.Draft202012Validator(per_key).is_valid({k: v}) for k, v in members)
                and len(members) <= schema.get("maxProperties", len(members)))
        assert accepts(_text(members)) == want, (name, members)
        n_ok += want
        n_repeat += want and len({k for k, _v in members}) < len(members)
    assert n_ok > 10 and n_repeat > 0


def test_any_order_many_calls_track_required_keys_where_exact(cl100k):
    """A context-free object of 8 declared properties (8 * 2^7 member calls, past
    ANY_ORDER_MAX_CALLS) tracks only its required keys, so an optional one may repeat; with a
    minProperties the required keys do not ensure, every key stays tracked (no repeats)."""
    props = {f"p{i}": {"type": "integer"} for i in range(8)}
    props["p5"] = {}
    assert 8 << 7 > ANY_ORDER_MAX_CALLS and len(props) <= ANY_ORDER_MAX_PROPERTIES
    relaxed = {"type": "object", "properties": props, "required": ["p1"]}
    counted = dict(relaxed, minProperties=2)
    _k, loose = _acceptor(relaxed, cl100k)
    _k, tight = _acceptor(counted, cl100k)
    for text, ok_loose, ok_tight in [
        (b'{"p7":1,"p1":2,"p0":3}', True, True),
        (b'{"p1":2}', True, False),
        (b'{"p3":1,"p1":2,"p3":4}', True, False),  # a repeat: only where keys are not all tracked
        (b'{"p3":1,"p1":2,"p3":"x"}', False, False),  # every copy must be valid
        (b'{"p3":1,"p0":2}', False, False),  # required p1 missing
        (b'{"p5":[1],"x":{"y":null},"p1":0}', True, True),
    ]:
        assert loose(text) == ok_loose and tight(text) == ok_tight, text


def test_any_order_calls_budget_per_schema(cl100k):
    """Context-free objects track every key while the schema's member calls stay within
    ANY_ORDER_BUDGET_CALLS; the ones lowered after that track their required keys only."""
    def obj(j):
        props = {f"k{j}_{i}": {"type": "integer"} for i in range(6)}
        props[f"k{j}_5"] = {}  # any JSON value: context-free
        return {"type": "object", "properties": props, "required": [f"k{j}_0"]}

    n = ANY_ORDER_BUDGET_CALLS // (6 << 5) + 2
    schema = {"type": "object", "properties": {f"o{j}": obj(j) for j in range(n)}}
    _k, accepts = _acceptor(schema, cl100k)
    first, last = 0, n - 1
    for j, repeats in ((first, False), (last, True)):
        assert accepts(f'{{"o{j}":{{"k{j}_2":1,"k{j}_0":2,"k{j}_5":[]}}}}'.encode())
        assert accepts(f'{{"o{j}":{{"k{j}_2":1,"k{j}_0":2,"k{j}_2":3}}}}'.encode()) == repeats
        assert not accepts(f'{{"o{j}":{{"k{j}_2":1}}}}'.encode())


def test_any_order_big_regular_object_becomes_rules(cl100k):
    """A regular object too big as one DFA even when only its required keys are tracked (here all
    8 are required) has its members as rules: every key still at most once, in any order."""
    props = {f"p{i}": {"type": "string", "maxLength": 40} for i in range(8)}
    schema = {"type": "object", "properties": props, "required": sorted(props), "additionalProperties": False}
    _k, accepts = _acceptor(schema, cl100k)
    assert _k == "cfg" and not schema_to_grammar(schema, property_order="any").regular  # (no inlining tried)
    rng = random.Random(8)
    for _ in range(20):
        keys = sorted(props)
        rng.shuffle(keys)
        assert accepts(_text([(k, "v" * rng.randint(0, 40)) for k in keys]))
    assert not accepts(_text([(k, "v") for k in sorted(props)] + [("p3", "w")]))
    assert not accepts(_text([(k, "v") for k in sorted(props)[1:]]))
    assert not accepts(_text([(k, "v" * 41 if k == "p2" else "") for k in sorted(props)]))


def test_any_order_nested_and_every_permutation(cl100k):
    """Every order of five declared properties, in an object inside an open (context-free) one."""
    inner = {"type": "object", "properties": {k: {"type": "integer"} for k in "abcde"},
             "required": ["a", "e"], "additionalProperties": False}
    schema = {"type": "object", "properties": {"in": inner, "t": {}}, "required": ["in"]}
    _kind, accepts = _acceptor(schema, cl100k)
    for perm in itertools.permutations("abcde"):
        doc = {"t": [1], "in": {k: 1 for k in perm}}
        assert accepts(json.dumps(doc, separators=(",", ":")).encode())
        assert accepts(json.dumps({"in": {k: 1 for k in perm}}, separators=(",", ":")).encode())
    assert not accepts(b'{"in":{"a":1,"b":2,"a":3,"e":1}}')
    assert not accepts(b'{"in":{"b":2,"e":1}}')
    assert not accepts(b'{"t":1}')
    assert not accepts(b'{"in":{"a":1,"e":2},"in":{"a":1,"e":2}}')


def test_any_order_context_free_object_is_one_graph_rule():
    """An open object's 2^n nodes are one rule whose body is the graph, its members rules called
    from the edges: O(n) rules, not one per node (each calling the next, a stack per member)."""
    from kmgrammar import grammar as g

    props = {k: {"type": "integer"} for k in "abcdef"}
    cfg = schema_to_grammar({"type": "object", "properties": props}, property_order="any")
    graphs = [b for b in cfg.rules.values() if type(b) is g.Graph]
    assert len(graphs) == 1 and graphs[0].n == 2 ** 6 + 2  # sets, the empty set after extra keys, the end
    assert len(cfg.rules) == 6 + 4  # members, the extra member, the graph, json_value, start


def test_any_order_limits():
    many = [f"p{i}" for i in range(ANY_ORDER_MAX_PROPERTIES + 1)]
    regular = {"type": "object", "additionalProperties": False, "required": many,
               "properties": {k: {"type": "integer"} for k in many}}
    with pytest.raises(CompileLimitError, match="property_order='any'.*required") as info:
        schema_to_grammar(regular, property_order="any")
    assert info.value.limit == "property_order"
    shared = {"type": "object", "properties": {k: {} for k in many}}
    with pytest.raises(CompileLimitError, match="property_order='any'.*required"):
        schema_to_grammar(dict(shared, required=many), property_order="any")
    # past the tracked properties members are counted, not distinct keys: a minProperties that
    # the required keys do not ensure cannot be enforced, nor can repeats inside an automaton
    # difference (regular objects under not/oneOf)
    ints = {"type": "object", "properties": {k: {"type": "integer"} for k in many}, "additionalProperties": False}
    for bad in (dict(shared, required=["p0"], minProperties=2), dict(ints, **{"not": {"required": ["p1"]}}),
                {"type": "array", "items": {"oneOf": [ints, {"required": ["p1"]}]}}):
        with pytest.raises(CompileLimitError, match="property_order='any'") as info:
            schema_to_grammar(bad, property_order="any")
        assert info.value.limit == "property_order"
    # a regular object's values are copied per set of properties written: bounded by their states
    big = {"type": "object", "additionalProperties": False,
           "properties": {f"p{i}": {"type": "string", "maxLength": 40} for i in range(8)}}
    assert 2 ** 7 * 8 * 40 > ANY_ORDER_MAX_STATES
    with pytest.raises(CompileLimitError, match="states"):  # (indented output: no grammar engine)
        schema_to_grammar(dict(big, required=sorted(big["properties"])), property_order="any", indent=2)
    # ...unless only the required ones are tracked (none here): then declared keys may repeat
    relaxed = schema_to_grammar(big, property_order="any")
    assert isinstance(relaxed, ByteDFA) and relaxed.n_states < ANY_ORDER_MAX_STATES
    assert relaxed.matches(b'{"p7":"a","p0":"b","p7":""}') and not relaxed.matches(b'{"p7":"a","p0":1}')
    # schema order is the default and has no such limit
    assert not isinstance(schema_to_grammar(shared), ByteDFA)
