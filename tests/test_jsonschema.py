"""compile_json_schema: every keyword against the `jsonschema` validator, random walks, bad schemas."""

from __future__ import annotations

import json
import random
import warnings

import jsonschema as js
import pytest

from kmgrammar import Matcher
from kmgrammar.compiler import compile_json_schema
from kmgrammar.errors import CompileError, CompileLimitError, UnsupportedFeatureError
from kmgrammar.automaton import Limits
from kmgrammar.jsonschema import schema_to_dfa
from kmgrammar.jsonschema_values import canonical_number, serialize


def _valid(schema, v) -> bool:
    from decimal import Decimal

    # exact decimals on both sides, so that 0.07 is a multiple of 0.01
    schema = json.loads(json.dumps(schema), parse_float=Decimal)
    v = json.loads(json.dumps(v), parse_float=Decimal)
    cls = js.validators.validator_for(schema if isinstance(schema, dict) else {})
    import decimal

    with decimal.localcontext() as ctx:
        ctx.prec = 400
        return cls(schema, format_checker=js.FormatChecker()).is_valid(v)


def _check(schema, instances, expected=None, **opts):
    dfa = schema_to_dfa(schema, **opts)
    for k, v in enumerate(instances):
        text = serialize(v, indent=opts.get("indent"), separators=opts.get("separators"))
        got = dfa.matches(text.encode("utf-8"))
        want = _valid(schema, v) if expected is None else expected[k]
        assert got == want, (schema, text, got)
    return dfa


# One row per keyword: (schema, instances[, expected]). Expected answers come from the `jsonschema`
# package, except where its checks are looser than the RFCs (formats) or it lacks the keyword
# (OpenAPI's nullable): those rows spell the answers out.
KEYWORD_CASES = {
    "type-list": ({"type": ["integer", "null", "boolean"]}, [1, None, True, 1.5, "a", -7, 0]),
    "enum": ({"enum": ["a", 1, None, [1, 2], {"k": "v"}]}, ["a", "b", 1, 2, None, [1, 2], [2, 1], {"k": "v"}]),
    "const-typed": ({"type": "string", "const": "x\"y"}, ["x\"y", "xy", 1]),
    "enum-filtered-by-siblings": ({"type": "string", "enum": ["a", "bb", 3], "maxLength": 1}, ["a", "bb", 3]),
    "integer-range": ({"type": "integer", "minimum": -3, "exclusiveMaximum": 12}, list(range(-6, 15)) + [1.5]),
    "number-range": ({"type": "number", "exclusiveMinimum": -1.5, "maximum": 2.25},
                     [-1.5, -1.49, 0, 2.25, 2.26, 1e-7, -0.5, 2]),
    "multipleOf-int": ({"type": "integer", "multipleOf": 7, "minimum": 0}, list(range(0, 60, 3)) + [-7]),
    "multipleOf-decimal": ({"type": "number", "multipleOf": 0.01}, [0.01, 0.1, 1.23, 1.234, 7, -3.5, 0.005]),
    "multipleOf-1.5": ({"multipleOf": 1.5, "type": "number"}, [0, 1.5, 3, 4.5, 4, 0.75, -1.5]),
    "string-length": ({"type": "string", "minLength": 2, "maxLength": 3}, ["a", "ab", "abc", "abcd", "é😀", "\n\t"]),
    "pattern-search": ({"type": "string", "pattern": "b+c"}, ["abbcd", "bc", "ac", "", "xbbbcx"]),
    "pattern-anchored": ({"type": "string", "pattern": "^a[0-9]{2}$"}, ["a12", "a123", "xa12", "a1"]),
    "pattern-half-anchored": ({"type": "string", "pattern": "^ab|cd$"}, ["abx", "xab", "xcd", "cdx"]),
    "pattern-and-length": ({"type": "string", "pattern": "^[a-z]+$", "minLength": 2, "maxLength": 4},
                           ["a", "ab", "abcd", "abcde", "aB"]),
    "format-date": ({"type": "string", "format": "date"}, ["2020-02-29", "2021-02-29", "2021-13-01", "1999-12-31",
                                                         "0000-01-03", "0001-01-01", "0000-02-29", "0400-02-29"]),
    "format-date-time": ({"type": "string", "format": "date-time"},
                         ["1963-06-19T08:30:06.283185Z", "1963-06-19T08:30:06Z", "1963-06-19 08:30:06Z",
                          "1998-12-31T23:59:60Z", "1998-12-31T22:59:60Z", "1998-12-31T15:59:60-08:00"],
                         [True, True, False, True, False, True]),
    "format-email": ({"type": "string", "format": "email"}, ["joe@example.com", "joe@@x", "a.b@c", ".a@b", '"j d"@x.org'],
                     [True, False, True, False, True]),
    "format-ipv4": ({"type": "string", "format": "ipv4"}, ["1.2.3.4", "256.1.1.1", "01.2.3.4", "1.2.3"]),
    "format-ipv6": ({"type": "string", "format": "ipv6"}, ["::1", "1::2::3", "fe80::1:2", "12345::"]),
    "format-uuid": ({"type": "string", "format": "uuid"},
                    ["2eb8aa08-aa98-11ea-b4aa-73b441d16380", "2eb8aa08-aa98-11ea-b4aa-73b441d1638"]),
    "format-uri": ({"type": "string", "format": "uri"}, ["http://a.b/c?d#e", "a/b", "mailto:x@y", "http://a b"],
                   [True, False, True, False]),
    "format-duration": ({"type": "string", "format": "duration"}, ["P4DT12H30M5S", "PT", "P1Y2D", "P2W", "P1Y2M"],
                        [True, False, False, True, True]),
    "format-unknown-is-annotation": ({"type": "string", "format": "int32"}, ["x", "12"]),
    "object-required": ({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
                         "required": ["b"], "additionalProperties": False},
                        [{"a": 1, "b": "x"}, {"b": "x"}, {"a": 1}, {}, {"a": 1, "b": "x", "c": 2}]),
    "object-additional-schema": ({"type": "object", "properties": {"a": {"type": "integer"}},
                                  "additionalProperties": {"type": "boolean"}},
                                 [{"a": 1}, {"a": 1, "z": True}, {"z": 1}, {"a": True}, {"z": False, "y": True}]),
    "patternProperties": ({"type": "object", "patternProperties": {"^x-": {"type": "integer"}, "y$": {"minimum": 3,
                          "type": "integer"}}, "additionalProperties": False},
                          [{"x-a": 1}, {"x-y": 2}, {"x-y": 4}, {"ay": 5}, {"b": 1}, {}]),
    "pattern-overrides-declared": ({"type": "object", "properties": {"foo": {"type": "integer"}},
                                    "patternProperties": {"f.o": {"type": "integer", "minimum": 5}}, "additionalProperties": False},
                                   [{"foo": 3}, {"foo": 7}, {}]),
    "propertyNames": ({"type": "object", "propertyNames": {"maxLength": 2},
                       "additionalProperties": {"type": "null"}}, [{"ab": None}, {"abc": None}, {}]),
    "min-max-properties": ({"type": "object", "properties": {"a": {"type": "null"}, "b": {"type": "null"},
                            "c": {"type": "null"}}, "minProperties": 1, "maxProperties": 2,
                            "additionalProperties": False},
                           [{}, {"a": None}, {"a": None, "c": None}, {"a": None, "b": None, "c": None}]),
    "items": ({"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3},
              [[], [1], [1, 2, 3], [1, 2, 3, 4], [1, "a"]]),
    "prefixItems": ({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}],
                     "items": False}, [[], ["a"], ["a", 1], ["a", 1, 2], [1]]),
    "prefixItems-tail": ({"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "null"},
                          "minItems": 2}, [["a"], ["a", None], ["a", None, None], ["a", 1]]),
    "contains": ({"type": "array", "items": {"type": "integer"}, "contains": {"minimum": 5},
                  "minContains": 2, "maxContains": 3},
                 [[], [5], [5, 6], [1, 5, 2, 6, 7], [5, 6, 7, 8], [1, 2]]),
    "anyOf": ({"anyOf": [{"type": "string", "maxLength": 1}, {"type": "integer", "minimum": 3}]},
              ["a", "ab", 2, 3, None]),
    "oneOf-overlap": ({"oneOf": [{"type": "integer", "minimum": 2}, {"type": "integer", "maximum": 5}]},
                      [0, 2, 5, 6, 1.5]),
    "oneOf-objects": ({"oneOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"],
                                  "additionalProperties": False},
                                 {"type": "object", "properties": {"a": {"type": "integer", "minimum": 3},
                                  "b": {"type": "string"}}, "additionalProperties": False}]},
                      [{"a": 1}, {"a": 3}, {"a": 3, "b": "x"}, {"b": "x"}, {}]),
    "allOf": ({"allOf": [{"type": "integer", "minimum": 2}, {"multipleOf": 3}, {"maximum": 20}]}, list(range(-3, 25))),
    "allOf-objects": ({"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                                 {"properties": {"b": {"type": "boolean"}}}],
                       "properties": {"a": True, "b": True}, "additionalProperties": False},
                      [{"a": 1}, {"a": 1, "b": True}, {"b": True}, {"a": "x"}]),
    "not": ({"type": "string", "not": {"enum": ["a", "b"]}, "maxLength": 1}, ["a", "b", "c", "", "cc"]),
    "not-number": ({"type": "integer", "not": {"multipleOf": 2}, "minimum": 0, "maximum": 9}, list(range(-2, 12))),
    "if-then-else": ({"type": "integer", "if": {"minimum": 10}, "then": {"multipleOf": 5}, "else": {"maximum": 3}},
                     list(range(-1, 25))),
    "ref-defs": ({"$defs": {"pos": {"type": "integer", "minimum": 1}}, "type": "array", "items": {"$ref": "#/$defs/pos"}},
                 [[1, 2], [0], []]),
    "ref-definitions-draft7": ({"$schema": "http://json-schema.org/draft-07/schema#",
                                "definitions": {"s": {"type": "string"}}, "properties": {"x": {"$ref": "#/definitions/s"}},
                                "type": "object", "additionalProperties": False}, [{"x": "a"}, {"x": 1}, {}]),
    "dependentRequired": ({"type": "object", "properties": {"a": {"type": "null"}, "b": {"type": "null"}},
                           "dependentRequired": {"a": ["b"]}, "additionalProperties": False},
                          [{}, {"a": None}, {"a": None, "b": None}, {"b": None}]),
    "dependentSchemas": ({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                          "dependentSchemas": {"a": {"properties": {"b": {"minimum": 5}}}},
                          "additionalProperties": False},
                         [{}, {"a": 1}, {"a": 1, "b": 2}, {"a": 1, "b": 7}, {"b": 2}]),
    "nullable": ({"type": "string", "nullable": True, "maxLength": 1}, ["a", None, "ab"], [True, True, False]),
    "boolean-false": ({"type": "object", "properties": {"a": False}, "additionalProperties": False}, [{}, {"a": 1}]),
    "escapes": ({"type": "string", "maxLength": 3}, ["\"\\\n", "\u0001ab", "é\u2028", "abcd"]),
}


@pytest.mark.parametrize("name", sorted(KEYWORD_CASES))
def test_keyword_matches_jsonschema(name):
    schema, instances, *expected = KEYWORD_CASES[name]
    _check(schema, instances, *expected)


@pytest.mark.parametrize("opts", [{}, {"indent": 2}, {"separators": (", ", ": ")}], ids=["compact", "indent2", "spaced"])
def test_whitespace_styles(opts):
    schema = {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "integer"}},
                                               "b": {"type": "object", "properties": {"c": {"type": "null"}},
                                                     "additionalProperties": False}},
              "additionalProperties": False}
    _check(schema, [{"a": [1, 2], "b": {"c": None}}, {"a": []}, {"b": {}}, {}], **opts)


def test_flexible_whitespace():
    dfa = schema_to_dfa({"type": "object", "properties": {"a": {"type": "array", "items": {"type": "integer"}}},
                         "additionalProperties": False}, whitespace="flexible")
    for text, ok in [('{"a":[1,2]}', True), ('{ "a" : [ 1 ,\n 2 ] }', True), ('  {}  ', True),
                     ('{"a":[1,2]' + " " * 30 + "}", False), ('{"a":[1 2]}', False)]:
        assert dfa.matches(text.encode()) == ok, text


def test_optional_properties_are_linear():
    props = {f"p{i}": {"type": "integer"} for i in range(60)}
    dfa = schema_to_dfa({"type": "object", "properties": props, "additionalProperties": False})
    assert dfa.n_states < 60 * 12
    assert dfa.matches(b'{"p3":1,"p59":2}') and not dfa.matches(b'{"p59":2,"p3":1}')


def test_canonical_numbers():
    assert [canonical_number(x) for x in (1.0, -0.0, 1e-7, 2.50, 10**20, 1.5e300)][:5] == \
        ["1", "0", "0.0000001", "2.5", "100000000000000000000"]
    dfa = schema_to_dfa({"type": "number", "minimum": 0})
    for text, ok in [("0", True), ("-0", False), ("1.50", False), ("1.5", True), ("1e5", False), ("01", False)]:
        assert dfa.matches(text.encode()) == ok, text


def _sample(dfa, rnd: random.Random, soft_len: int = 40) -> bytes:
    """A random accepted byte string: random live edges, then the shortest way to acceptance."""
    import numpy as np

    n = dfa.n_states
    dist = np.where(dfa.accept, 0, 10**9)
    for _ in range(n):
        nxt = dist.copy()
        for c in range(dfa.trans.shape[1]):
            t = dfa.trans[:, c]
            ok = t >= 0
            nxt[ok] = np.minimum(nxt[ok], dist[t[ok]] + 1)
        if (nxt == dist).all():
            break
        dist = nxt
    bytes_of = [[b for b in range(256) if dfa.classes[b] == c] for c in range(dfa.trans.shape[1])]
    out, s = bytearray(), 0
    while True:
        if dfa.accept[s] and (len(out) > soft_len or rnd.random() < 0.1):
            return bytes(out)
        cols = [c for c in range(dfa.trans.shape[1]) if dfa.trans[s, c] >= 0]
        if not cols:
            return bytes(out)
        if len(out) > soft_len:
            cols = [min(cols, key=lambda c: dist[dfa.trans[s, c]])]
        c = rnd.choice(cols)
        out.append(rnd.choice(bytes_of[c]))
        s = int(dfa.trans[s, c])


@pytest.mark.parametrize("name", sorted(k for k in KEYWORD_CASES if len(KEYWORD_CASES[k]) == 2))
def test_random_walks_validate(name):
    schema = KEYWORD_CASES[name][0]
    dfa = schema_to_dfa(schema)
    rnd = random.Random(name)
    for _ in range(40):
        text = _sample(dfa, rnd).decode("utf-8")
        assert _valid(schema, json.loads(text)), (schema, text)  # noqa: PT018


def test_hypothesis_walks():
    hyp = pytest.importorskip("hypothesis")
    st = pytest.importorskip("hypothesis.strategies")
    schema = {"type": "object", "properties": {"n": {"type": "number", "minimum": -2.5, "multipleOf": 0.5},
                                               "s": {"type": "string", "pattern": "^[a-c]*$", "maxLength": 4},
                                               "l": {"type": "array", "items": {"enum": [1, "x", None]}, "maxItems": 3}},
              "required": ["n"], "additionalProperties": False}
    dfa = schema_to_dfa(schema)

    @hyp.given(st.randoms(use_true_random=False))
    @hyp.settings(max_examples=60, deadline=None)
    def walk(rnd):
        text = _sample(dfa, rnd).decode("utf-8")
        assert _valid(schema, json.loads(text)), text

    walk()


def test_token_level_with_cl100k(cl100k):
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                               "age": {"type": "integer", "minimum": 0, "maximum": 150},
                                               "email": {"type": "string", "format": "email"}},
              "required": ["name", "age"], "additionalProperties": False}
    cg = compile_json_schema(schema, cl100k, cache=False)
    for doc, ok in [({"name": "Ada", "age": 36}, True), ({"name": "Ada", "age": 151}, False),
                    ({"name": "Ada", "age": 36, "email": "ada@example.org"}, True), ({"age": 3}, False)]:
        m = Matcher(cg)
        accepted = all(m.accept_token(t) for t in cl100k.encode(serialize(doc))) and m.is_accepting()
        assert accepted == ok, doc


def test_pydantic_model(cl100k):
    pydantic = pytest.importorskip("pydantic")

    class Item(pydantic.BaseModel):
        name: str
        price: float
        tags: list[str] = []

    dfa = schema_to_dfa(Item, strict=True)  # pydantic models allow extra keys unless configured
    assert dfa.matches(b'{"name":"a","price":1.5,"tags":["x"]}')
    assert dfa.matches(b'{"name":"a","price":2}')
    assert not dfa.matches(b'{"price":2}')


def test_json_string_schema():
    assert schema_to_dfa('{"type": "boolean"}').matches(b"true")


# Bad schemas: (schema, error class, message fragment).
BAD = [
    ("{not json", CompileError, "not valid JSON"),
    ([1, 2], CompileError, "must be an object or a boolean"),
    ({"type": "strin"}, CompileError, "unknown type"),
    ({"type": "string", "minLength": "3"}, CompileError, "non-negative integer"),
    ({"type": "string", "minLength": -1}, CompileError, "non-negative integer"),
    ({"$ref": "#/$defs/missing"}, CompileError, "unresolvable $ref"),
    ({"$ref": "https://example.com/s.json"}, UnsupportedFeatureError, "#/$ref"),
    ({"type": "integer", "minimum": 5, "maximum": 3}, CompileError, "empty language"),
    ({"type": "string", "enum": [1, 2]}, CompileError, "empty language"),
    ({"type": "number", "multipleOf": 0}, CompileError, "greater than 0"),
    ({"type": "object", "properties": {"a": {"type": "integer"}}}, UnsupportedFeatureError, "not regular"),
    ({"type": "array", "uniqueItems": True, "items": {"type": "integer"}}, UnsupportedFeatureError, "uniqueItems"),
    ({"type": "string", "pattern": "(a)\\1"}, UnsupportedFeatureError, "#/pattern"),
    ({"type": "string", "pattern": "[a-"}, UnsupportedFeatureError, "#/pattern"),
    ({"$defs": {"n": {"type": "array", "items": {"$ref": "#/$defs/n"}}}, "$ref": "#/$defs/n"},
     UnsupportedFeatureError, "not regular"),
    ({"type": "array", "not": {"items": {"type": "integer"}}}, UnsupportedFeatureError, "not regular"),
    ({"type": "object", "unevaluatedProperties": False, "properties": {"a": {"$dynamicRef": "#x"}},
      "additionalProperties": False}, UnsupportedFeatureError,
     "#/properties/a/$dynamicRef: keyword '$dynamicRef'"),
    ({"type": "string", "format": "iri"}, UnsupportedFeatureError, "format 'iri'"),
    ({"type": "number", "multipleOf": 0.123456789}, CompileLimitError, "multipleOf"),
    ({"$schema": "http://localhost:1234/no-validation.json", "minimum": 10}, UnsupportedFeatureError,
     "#/$schema: meta-schema"),
]


@pytest.mark.parametrize("schema,cls,fragment", BAD, ids=[b[2][:30] for b in BAD])
def test_bad_schemas(schema, cls, fragment):
    with pytest.raises(cls) as info:
        schema_to_dfa(schema)
    assert fragment in str(info.value)


_ENDLESS = {"type": "object", "properties": {"a": {"$ref": "#/$defs/x"}, "b": {"type": "integer"}},
            "required": ["a"]}  # every x needs an x inside: no finite document


@pytest.mark.parametrize("order", ["schema", "any"])
def test_values_that_can_never_end(order, cl100k):
    """A recursive schema with no finite instance is an empty-language error; where such a value
    is optional, the key is never started (no token leads into a value that cannot end)."""
    with pytest.raises(CompileError, match="empty language"):
        compile_json_schema({"$defs": {"x": _ENDLESS}, "$ref": "#/$defs/x"}, cl100k, property_order=order,
                            cache=False)
    schema = {"type": "object", "properties": {"c": {"$ref": "#/$defs/x"}, "d": {"type": "integer"}},
              "$defs": {"x": _ENDLESS}}
    cg = compile_json_schema(schema, cl100k, property_order=order, cache=False)
    for prefix, viable in [(b'{"c"', False), (b'{"d":1,"c"', False), (b'{"d":1,"c":', False), (b'{"c', True),
                           (b'{"d":1,"cx":{"c":{"a":1}}}', True)]:
        assert Matcher(cg).accept_string(prefix) == viable, prefix
    m = Matcher(cg)
    assert m.accept_string(b'{"d":1,"cx":{"c":{"a":1}}}') and m.is_accepting()
    assert js.Draft202012Validator(schema).is_valid({"d": 1, "cx": {"c": {"a": 1}}})


def test_impossible_value_in_an_open_object(cl100k):
    """In a context-free schema (extra keys open), a property no value satisfies (every value with
    all its required keys matches two oneOf branches) empties the schema when required and is
    never started when optional."""
    dims = {"type": "object", "properties": {"r": {"type": "number"}, "w": {"type": "number"}},
            "required": ["r", "w"], "oneOf": [{"required": ["r"]}, {"required": ["w"]}]}
    with pytest.raises(CompileError, match="empty language"):
        compile_json_schema({"type": "object", "properties": {"d": dims}, "required": ["d"]}, cl100k, cache=False)
    cg = compile_json_schema({"type": "object", "properties": {"d": dims, "s": {"type": "string"}}}, cl100k,
                             cache=False)
    assert not Matcher(cg).accept_string(b'{"d"')
    m = Matcher(cg)
    assert m.accept_string(b'{"s":"x","dd":{"r":1}}') and m.is_accepting()


@pytest.mark.parametrize("schema", [
    {"type": "array", "items": {"enum": ["a", "b", 1, 1.0, True]}, "uniqueItems": True, "minItems": 1},
    {"type": "array", "items": {"type": ["boolean", "null"]}, "uniqueItems": True, "maxItems": 2},
    {"type": "array", "items": {"enum": ["a", "bb", "ccc"], "maxLength": 2}, "uniqueItems": True},
    {"type": "array", "prefixItems": [{"enum": ["a", "b"]}, {"const": "a"}], "items": {"enum": ["b", None]},
     "uniqueItems": True},
    {"type": "array", "prefixItems": [{"type": "boolean"}, {"type": "boolean"}], "items": False,
     "uniqueItems": True},
], ids=["enum", "types", "enum-and-length", "prefix-and-items", "prefix-only"])
@pytest.mark.parametrize("whitespace", ["compact", "flexible"])
def test_unique_items_over_finitely_many_values(schema, whitespace):
    """Every array of up to 4 items over 9 values: accepted iff `jsonschema` says valid."""
    import itertools

    values = ["a", "b", "bb", "ccc", 1, True, False, None, 2]
    arrays = [list(c) for r in range(5) for c in itertools.product(values, repeat=r)]
    _check(schema, arrays, whitespace=whitespace)


def test_unique_items_over_too_many_values_is_unsupported():
    schema = {"type": "array", "items": {"enum": list(range(11))}, "uniqueItems": True}
    with pytest.raises(UnsupportedFeatureError, match=r"#/uniqueItems: keyword 'uniqueItems' .*at most 10 scalar"):
        schema_to_dfa(schema)
    schema_to_dfa(dict(schema, items={"enum": list(range(10))}))


def test_min_properties_is_not_made_up_by_repeated_extra_keys():
    """Extra keys may repeat, and `{"x":1,"x":2}` parses to one key: a minProperties that repeats
    could reach is refused; one the required keys nearly reach is exact."""
    with pytest.raises(UnsupportedFeatureError, match=r"#/minProperties: minProperties 2 on an object whose"):
        schema_to_dfa({"type": "object", "minProperties": 2, "additionalProperties": {"type": "integer"}})
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"], "minProperties": 2,
              "additionalProperties": {"type": "integer"}}
    _check(schema, [{"a": 1}, {"a": 1, "x": 2}, {"a": 1, "x": 2, "y": 3}])
    assert not schema_to_dfa(schema).matches(b'{"x":1,"x":2}')
    with pytest.warns(UserWarning, match="duplicate keys may make up the count"):
        schema_to_dfa({"type": "object", "minProperties": 2, "additionalProperties": {"type": "integer"}},
                      lenient=True)


OPEN = {"type": "object", "additionalProperties": {"type": ["integer", "string"]}}


@pytest.mark.parametrize("schema, where", [
    (dict(OPEN, **{"not": {"additionalProperties": {"type": "integer"}}}), "#/not/additionalProperties"),
    (dict(OPEN, **{"not": {"maxProperties": 1}}), "#/not/maxProperties"),
    (dict(OPEN, **{"oneOf": [{"additionalProperties": {"type": "integer"}}, {"required": ["a"]}]}),
     "#/oneOf/0/additionalProperties"),
    (dict(OPEN, **{"if": {"patternProperties": {"^x": {"type": "integer"}}}, "else": {"required": ["a"]}}),
     "#/if/patternProperties"),
    ({"type": "array", "items": OPEN, "contains": {"additionalProperties": {"type": "integer"}}, "maxContains": 1},
     "#/contains/additionalProperties"),
], ids=["not", "not-maxProperties", "oneOf", "if", "maxContains"])
def test_differences_over_repeatable_keys_are_refused(schema, where):
    """`{"x":"s","x":1}` parses to {"x": 1}: outside the text language of additionalProperties
    integer, inside its value language; subtracting the first would let the text through."""
    with pytest.raises(UnsupportedFeatureError, match=where + ": "):
        schema_to_dfa(schema)
    with pytest.warns(UserWarning, match="a text repeating a key may get through"):
        schema_to_dfa(schema, lenient=True)


def test_differences_that_cannot_repeat_a_key_still_compile():
    twice = dict(OPEN, **{"not": {"not": {"additionalProperties": {"type": "integer"}}}})  # is the inner schema
    _check(twice, [{"x": 1}, {"x": "s"}, {"x": 1, "y": 2}, {}])
    pinned = {"allOf": [{"enum": [{"a": 1, "b": 2}, {"a": "s"}]}, {"not": {"maxProperties": 1}}]}
    _check(pinned, [{"a": 1, "b": 2}, {"a": "s"}])


@pytest.mark.parametrize("schema, repeated", [
    (dict(OPEN, **{"not": {"required": ["x"]}}), b'{"x":1,"x":2}'),
    (dict(OPEN, **{"if": {"required": ["x"]}, "then": False}), b'{"x":1,"x":2}'),
    (dict(OPEN, **{"not": {"dependentRequired": {"x": ["y"]}}}), b'{"x":1,"y":1,"x":2}'),
    (dict(OPEN, **{"oneOf": [{"required": ["x"]}, {"required": ["y"]}]}), b'{"y":1,"x":1,"y":2}'),
], ids=["not-required", "if-required", "not-dependentRequired", "oneOf-required"])
def test_keys_only_required_are_spelt_alike_on_both_sides(schema, repeated):
    """A name only `required` on one side of a difference is declared on both (one order, never
    repeated): `{"x":1,"y":1}` is in both oneOf branches, and a repeated x is not let through."""
    _check(schema, [{"x": 1}, {"y": 1}, {"x": 1, "y": 1}, {"y": "s", "x": 1}, {}, {"z": 1}])
    assert not schema_to_dfa(schema).matches(repeated)


HOST_LEFT_OUT = "a.b.c.d.e.f.g.h.i.j"  # a valid host name outside hostname's counted subset


@pytest.mark.parametrize("schema, valid, invalid", [
    ({"type": "string", "not": {"format": "hostname"}}, ["a..b", "a b"], ["xn--9n2bp8q.xn--9t4b11yi5a", HOST_LEFT_OUT]),
    ({"type": "string", "not": {"format": "email"}}, ["a b@c", "ab"], ["a@" + HOST_LEFT_OUT, "a@[x:y]", "a@b.c"]),
    ({"type": "string", "not": {"format": "time"}}, ["12:00", "x"], ["01:29:60+01:30", "12:00:00Z"]),
    ({"type": "string", "not": {"format": "duration"}}, ["P1", "x"], ["p1d", "P1DT2h", "P1D"]),
    ({"oneOf": [{"const": "xn--9n2bp8q.xn--9t4b11yi5a"}, {"type": "string", "format": "hostname"}]},
     ["ab"], ["xn--9n2bp8q.xn--9t4b11yi5a"]),
    ({"type": "string", "if": {"format": "hostname"}, "then": {"maxLength": 3}}, ["ab", "a b c"], [HOST_LEFT_OUT]),
    ({"type": "array", "items": {"type": "string"}, "contains": {"format": "hostname"}, "maxContains": 1},
     [["a", "x y"], ["a"]], [["a", HOST_LEFT_OUT], ["a", "b"]]),
], ids=["not-hostname", "not-email", "not-time", "not-duration", "oneOf-const", "if", "maxContains"])
def test_subtracted_formats_use_supersets(schema, valid, invalid):
    """hostname/email/time/date-time accept a subset of the valid strings (no A-labels, a counted
    subset of host names, leap seconds at whole-hour offsets). A side that is subtracted must
    cover every valid string, or the difference lets the ones left out through."""
    dfa = schema_to_dfa(schema)
    for v in valid:
        assert dfa.matches(serialize(v).encode()), v
    for v in invalid:
        assert not dfa.matches(serialize(v).encode()), v
    plain = schema_to_dfa({"type": "string", "format": "hostname"})  # positive: the subset still
    assert plain.matches(b'"a.b"') and not plain.matches(b'"xn--9n2bp8q"')


def test_numbers_have_one_spelling():
    """"-0" is the value 0: a number language that also spelt it "-0" would let it through
    not/minimum 0 (or not/const 0), whose subtracted side spells 0 canonically."""
    for schema in ({"type": "number"}, {"type": "number", "not": {"minimum": 0}},
                   {"type": "number", "not": {"const": 0}}, {"type": "number", "not": {"multipleOf": 2}}):
        dfa = schema_to_dfa(schema)
        assert not dfa.matches(b"-0"), schema
        assert dfa.matches(b"-0.5") == _valid(schema, -0.5), schema


def test_contains_with_max_items_zero():
    """[] has no item for `contains` to find (found by the differential fuzzer)."""
    schema = {"type": ["array", "null"], "contains": {"const": 1}, "maxItems": 0}
    _check(schema, [[], None, [1]])
    _check(dict(schema, minContains=0), [[], None, [1]])


@pytest.mark.parametrize("schema, invalid, valid", [
    ({"type": "array", "items": {"type": "string", "format": "time"}, "contains": {"const": "00:00:00Z"},
      "maxContains": 1}, '["00:00:00Z","12:00:60Z"]', '["00:00:00Z","12:00:00Z"]'),
    ({"type": "array", "items": {"type": "string"},
      "not": {"items": {"type": "string", "format": "hostname"}, "contains": {"const": "a"}}},
     '["a","' + HOST_LEFT_OUT + '"]', '["a b"]'),
    ({"type": "array", "items": {"type": "object", "additionalProperties": {"type": "integer"}},
      "contains": {"properties": {"b": {"const": 1}, "a": {"const": 1}}, "required": ["b", "a"]}, "maxContains": 1},
     '[{"b":1,"a":1},{"a":1,"b":1}]', '[{"b":1,"a":1},{"a":2}]'),
], ids=["items-side", "not-contains", "key-order"])
def test_max_contains_other_items(cl100k, schema, invalid, valid):
    """The items outside `contains` are a difference: the item language on the plain side, the
    matches on the subtracted side, one key order for both (found by review)."""
    cg = compile_json_schema(schema, cl100k, cache=False)
    for text, want in ((invalid, False), (valid, True)):
        m = Matcher(cg)
        assert (m.accept_string(text) and m.is_accepting()) == want, text


def test_key_order_below_what_differences_track_is_refused():
    """Each side of a difference spells its own key order below _RANK_DEPTH levels: refused there."""
    def nest(x, n):
        for _ in range(n):
            x = {"type": "object", "properties": {"k": x}, "required": ["k"], "additionalProperties": False}
        return x
    cd = {"type": "object", "properties": {"c": {"const": 1}, "d": {"const": 1}}, "required": ["c", "d"],
          "additionalProperties": False}
    dc = dict(cd, properties={"d": {"const": 1}, "c": {"const": 1}})
    with pytest.raises(CompileError, match="empty language"):  # {c, d} is in both branches
        schema_to_dfa({"oneOf": [nest(cd, 11), nest(dc, 11)]})
    with pytest.raises(UnsupportedFeatureError, match="key order inside not/oneOf/if/maxContains more than 12"):
        schema_to_dfa({"oneOf": [nest(cd, 13), nest(dc, 13)]})


@pytest.mark.parametrize("schema, texts", [
    ({"enum": ["é", "e"], "pattern": "^\\w$"}, {'"é"': False, '"e"': True}),       # ECMA \w is ASCII
    ({"enum": ["a\n", "a"], "pattern": "^a$"}, {'"a\\n"': False, '"a"': True}),   # no multiline $
    ({"enum": ["y", "x"], "pattern": "^(?<n>x)$"}, {'"y"': False, '"x"': True}),   # Python re cannot read it
    ({"type": "string", "not": {"enum": ["\ufeff"], "pattern": "^\\s$"}}, {'"\ufeff"': False, '"a"': True}),
    ({"enum": ["xn--9n2bp8q", "ab"], "format": "hostname"}, {'"xn--9n2bp8q"': False, '"ab"': True}),
    ({"enum": [{"a": "-"}, {"a": "1.2.3.4"}], "properties": {"a": {"format": "ipv4"}}},
     {'{"a":"-"}': False, '{"a":"1.2.3.4"}': True}),  # kmgrammar's formats below a container
    ({"enum": [{"ab": 1}, {"é": 1}], "patternProperties": {"^\\w+$": {"type": "integer"}}, "additionalProperties": False},
     {'{"ab":1}': True, '{"é":1}': False}),  # a pattern on a non-ASCII key: not read by Python's re
    ({"allOf": [{"enum": [{"aaaa": 31}]}, {"not": {"patternProperties": {"a*": {"type": "integer"}, "aaa*": {"maximum": 20}}}}]},
     {'{"aaaa":31}': True}),  # shared syntax on ASCII: read by the jsonschema package
    ({"enum": [1, 2, "a", None], "minimum": 2}, {"1": False, "2": True, '"a"': True, "null": True}),
], ids=["ecma-w", "dollar", "named-group", "not-enum", "format", "container-format", "container-pattern",
        "container-ascii", "minimum"])
def test_enum_values_are_checked_as_kmgrammar_reads_the_schema(schema, texts):
    """enum/const values against the rest of the conjunction: by kmgrammar's own languages
    (ECMA-262 patterns, formats), not by Python's `re` (found by review)."""
    try:
        dfa = schema_to_dfa(schema)
    except CompileError:
        assert not any(texts.values())
        return
    for text, want in texts.items():
        assert dfa.matches(text.encode()) == want, text


def test_unsure_enum_values_depend_on_the_side():
    """A container value the check cannot read is dropped on the plain side and kept on the
    subtracted one: the lowering depends on its side, so oneOf's overlap must not reuse the plain
    one (found by the fuzzer: ["x"] is in both branches)."""
    schema = {"oneOf": [{"enum": [["x"]], "items": {"pattern": "x"}},
                        {"type": "array", "items": {"type": "string"}, "maxItems": 1}]}
    dfa = schema_to_dfa(schema)
    assert not dfa.matches(b'["x"]') and dfa.matches(b'["y"]')
    e = {"oneOf": [{"type": "array", "items": {"type": "string", "pattern": "b"}, "maxItems": 3}, {"enum": [[1], 0, 3]},
                   {"type": "array", "items": {"type": "integer", "maximum": 1}, "maxItems": 3}]}
    dfa = schema_to_dfa({"if": {"type": "string"}, "then": {"const": 2}, "else": e})
    assert not dfa.matches(b"[1]") and dfa.matches(b"[0]") and dfa.matches(b"0")


def test_subtracted_anyof_one_branch_at_a_time_is_refused():
    """unevaluatedProperties beside an anyOf of more than 5 branches sees one branch at a time (a
    subset of the valid objects): inside a difference that would let values through."""
    props = {f"p{i}": {"type": "integer"} for i in range(6)}
    inner = {"type": "object", "anyOf": [{"properties": {n: p}} for n, p in props.items()],
             "unevaluatedProperties": False}
    assert not schema_to_dfa(inner).matches(b'{"p0":1,"p1":2}')  # valid: both branches evaluate
    outer = {"type": "object", "properties": props, "additionalProperties": False, "not": inner}
    with pytest.raises(UnsupportedFeatureError, match=r"#/not/anyOf: unevaluatedProperties/Items next to an anyOf"):
        schema_to_dfa(outer)


def test_lenient_turns_errors_into_warnings():
    schema = {"type": "array", "uniqueItems": True, "items": {"type": "integer"}}
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        dfa = schema_to_dfa(schema, lenient=True)
    assert any("uniqueItems" in str(w.message) for w in got)
    assert dfa.matches(b"[1,1]")


def test_strict_closes_objects():
    dfa = schema_to_dfa({"type": "object", "properties": {"a": {"type": "integer"}}}, strict=True)
    assert dfa.matches(b'{"a":1}') and not dfa.matches(b'{"a":1,"b":2}')


def test_deep_nesting_compiles_or_fails_clearly():
    schema: dict = {"type": "integer"}
    for _ in range(1000):
        schema = {"type": "array", "items": schema, "maxItems": 1}
    assert schema_to_dfa(schema).matches(b"[" * 1000 + b"7" + b"]" * 1000)
    for _ in range(30000):
        schema = {"type": "array", "items": schema, "maxItems": 1}
    with pytest.raises(CompileLimitError, match="nests too deeply"):
        schema_to_dfa(schema)


def test_time_limit():
    schema = {"type": "object", "properties": {f"p{i}": {"type": "string", "maxLength": 3000} for i in range(30)},
              "additionalProperties": False}
    with pytest.raises(CompileLimitError):
        from kmgrammar.automaton import Limits

        schema_to_dfa(schema, limits=Limits(max_states=200_000, time_limit=0.5))


def _walk(cg, vocab, doc) -> bool:
    m = Matcher(cg)
    return all(m.accept_token(t) for t in vocab.encode(serialize(doc))) and m.is_accepting()


def test_open_objects_and_recursion_use_the_grammar_engine(cl100k):
    open_obj = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    cg = compile_json_schema(open_obj, cl100k, cache=False)
    assert cg.kind == "cfg"
    for doc, ok in [({"a": 1, "b": {"c": [1, {"d": None}, [[[]]]]}}, True), ({"a": "x"}, False), ({"b": 1}, False),
                    ({"a": 1, "zz": "é\n"}, True)]:
        assert _walk(cg, cl100k, doc) == ok, doc
    tree = {"$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"},
                                                                "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
                               "required": ["v"], "additionalProperties": False}}, "$ref": "#/$defs/node"}
    cg = compile_json_schema(tree, cl100k, cache=False)
    deep = {"v": 0}
    for i in range(30):
        deep = {"v": i, "kids": [deep, {"v": -1}]}
    assert _walk(cg, cl100k, deep)
    assert not _walk(cg, cl100k, {"v": 1, "kids": [{"kids": []}]})


def test_indent_with_any_value_is_unsupported():
    with pytest.raises(UnsupportedFeatureError, match="any JSON value"):
        schema_to_dfa({"type": "array"}, indent=2)


def test_oneof_and_not_over_open_objects(cl100k):
    schema = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
              "oneOf": [{"required": ["a"]}, {"required": ["b"]}], "not": {"required": ["c"]}}
    cg = compile_json_schema(schema, cl100k, cache=False)
    for doc in [{"a": 1}, {"b": 2}, {"a": 1, "b": 2}, {}, {"a": 1, "x": [1, {}]}, {"a": 1, "c": 0}, {"b": 1, "c": [2]}]:
        assert _walk(cg, cl100k, doc) == _valid(schema, doc), doc


def test_unevaluated_properties_and_items():
    _check({"type": "object", "allOf": [{"properties": {"a": {"type": "integer"}}}], "properties": {"b": {"type": "null"}},
            "unevaluatedProperties": False}, [{"b": None, "a": 1}, {"b": None}, {"c": 1}, {}])
    _check({"type": "object", "allOf": [{"properties": {"a": True}}, {"unevaluatedProperties": False}]},
           [{"a": 1}, {}])
    _check({"type": "array", "prefixItems": [{"type": "string"}], "unevaluatedItems": {"type": "integer"}},
           [["a"], ["a", 1, 2], ["a", "b"], []])
    # every matching anyOf branch evaluates its keys: bar and baz together are both evaluated
    branches = [{"properties": {k: {"const": k}}, "required": [k]} for k in ("bar", "baz", "quux")]
    _check({"type": "object", "properties": {"foo": {"type": "string"}}, "anyOf": branches,
            "unevaluatedProperties": False},
           [{"foo": "f", "bar": "bar"}, {"foo": "f", "bar": "bar", "baz": "baz"}, {"bar": "bar", "baz": "x"},
            {"bar": "bar", "baz": "baz", "quux": "quux"}, {"foo": "f"}, {"bar": "bar", "zz": 1}])
    # a nested unevaluatedItems (not false) evaluates every item left
    _check({"allOf": [{"prefixItems": [{"type": "string"}]}, {"unevaluatedItems": {"type": ["integer", "boolean"]}}],
            "unevaluatedItems": False, "type": "array"}, [["foo"], ["foo", 42, True], ["foo", None], [1]])


def test_enum_values_see_unevaluated_annotations_of_split_branches():
    # An enum/const container is checked by the validator against the conjunction; an anyOf
    # branch lowered as an item of its own must stay in scope of its parent's unevaluatedItems:
    # [1] is evaluated by the branch's prefixItems (and by contains), so `not` rules it out.
    # (The fuzzer found the negated cases accepting [1].)
    _check({"enum": [[1], [2]], "not": {"unevaluatedItems": False, "anyOf": [{"prefixItems": [{"const": 1}]}]}},
           [[1], [2]])
    _check({"enum": [[1], [2]], "unevaluatedItems": False, "anyOf": [{"prefixItems": [{"const": 1}]}]}, [[1], [2]])
    _check({"enum": [[1], [2]], "unevaluatedItems": False, "anyOf": [{"contains": {"const": 2}}]}, [[1], [2]])
    _check({"enum": [{"a": 1}, {"b": 1}], "unevaluatedProperties": False, "oneOf": [{"properties": {"a": {}}}]},
           [{"a": 1}, {"b": 1}])
    with pytest.raises(CompileError, match="empty language"):  # [1] is valid for the negated schema
        schema_to_dfa({"const": [1], "not": {"unevaluatedItems": False, "anyOf": [{"contains": {}}]}})


def test_key_order_expands_refs_in_place():
    # the schema's own property c first, then its allOf members' in order: a (the $ref target's, in place), b
    schema = {"$defs": {"one": {"properties": {"a": {"type": "integer"}}}},
              "allOf": [{"$ref": "#/$defs/one"}, {"properties": {"b": {"type": "integer"}}}],
              "properties": {"c": {"type": "null"}}, "additionalProperties": False, "type": "object"}
    _check(schema, [{"c": None, "a": 1, "b": 2}, {"c": None, "b": 2}, {"a": 1, "b": "x"}, {"c": None, "a": 1}])
    _check(schema, [{"c": None, "b": 2, "a": 1}, {"a": 1, "c": None}], expected=[False, False])


def test_nested_unevaluated_items_true(cl100k):
    schema = {"allOf": [{"prefixItems": [{"type": "string"}]}, {"unevaluatedItems": True}], "unevaluatedItems": False}
    _differential(compile_json_schema(schema, cl100k, cache=False), cl100k, schema,
                  [["foo"], ["foo", 42, True], ["foo", None, {"a": [1]}], [1], [], "x"])


# -- combinators over values of any type (type split, negation-free rewrites, disjointness) -------

_ANY_VALUES = [None, True, 0, 7, 1.5, -2, "", "A", "xAx", "B", "AB", "x", [], [1], ["A"], {}, {"a": 1},
               {"role": "A"}, {"role": "B"}, {"role": "AB"}, {"role": 3}, {"role": [1]}, {"role": None}]


def _differential(cg, vocab, schema, docs):
    for doc in docs:
        assert _walk(cg, vocab, doc) == _valid(schema, doc), (schema, doc)


COMBINATOR_CASES = {
    # every non-string satisfies both patterns, so oneOf holds for strings only
    "oneOf-patterns-untyped": {"oneOf": [{"pattern": "A"}, {"pattern": "B"}]},
    "oneOf-under-property": {"type": "object", "properties": {"role": {"oneOf": [{"pattern": "A"}, {"pattern": "B"}]}}},
    "oneOf-objects-untyped": {"oneOf": [{"properties": {"role": {"enum": ["A"]}}, "required": ["role"],
                                          "additionalProperties": False},
                                         {"properties": {"role": {"enum": ["B"]}, "a": {"type": "integer"}},
                                          "required": ["role", "a"], "additionalProperties": False}]},
    "oneOf-anyOf-branch-types": {"oneOf": [{"anyOf": [{"type": "string", "pattern": "^A"}, {"type": "null"}]},
                                           {"type": "object", "properties": {"role": {"type": "string"}}}]},
    "oneOf-required-value-types": {"oneOf": [{"type": "object", "required": ["role"], "properties": {"role": {"type": "string"}},
                                              "patternProperties": {"^a$": {"type": "null"}}},
                                             {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}},
                                              "patternProperties": {"^role$": {"type": "null"}}}]},
    "oneOf-required-value-patterns": {"type": "object", "oneOf": [
        {"required": ["role"], "properties": {"role": {"type": "string", "pattern": "^A$"}}},
        {"required": ["role"], "properties": {"role": {"type": "string", "pattern": "^B$"}}}]},
    "not-enum-untyped": {"not": {"enum": ["A", 7, None, True]}},
    "not-const-in-object": {"type": "object", "properties": {"role": {"not": {"const": "A"}}}},
    "not-pattern-and-length": {"not": {"pattern": "A", "maxLength": 1}},
    "not-multipleOf": {"not": {"multipleOf": 7}},
    "not-oneOf": {"not": {"oneOf": [{"type": "string"}, {"maxLength": 1}]}},
    "not-if-then-else": {"not": {"if": {"type": "string"}, "then": {"pattern": "A"}, "else": {"type": "object"}}},
    "not-dependentRequired": {"not": {"dependentRequired": {"role": ["a"]}}},
    "not-dependentSchemas": {"not": {"dependentSchemas": {"role": {"required": ["a"]}}}},
    "if-untyped-pattern": {"if": {"pattern": "A"}, "then": {"maxLength": 2}, "else": {"type": ["object", "null"]}},
}


@pytest.mark.parametrize("name", sorted(COMBINATOR_CASES))
def test_combinators_over_any_value(cl100k, name):
    schema = COMBINATOR_CASES[name]
    cg = compile_json_schema(schema, cl100k, cache=False)
    _differential(cg, cl100k, schema, _ANY_VALUES)


def test_oneof_discriminated_by_nested_oneof(cl100k):
    # the shape of Visual Studio's testenvironments.json: a discriminator property plus a nested oneOf
    schema = {"type": "object", "required": ["type"], "oneOf": [
        {"properties": {"type": {"enum": ["docker"]}},
         "oneOf": [{"required": ["image"], "properties": {"image": {"type": "string"}}},
                   {"required": ["file"], "properties": {"file": {"type": "string"}}}]},
        {"properties": {"type": {"enum": ["wsl"]}}}]}
    cg = compile_json_schema(schema, cl100k, cache=False)
    docs = [{"type": "docker", "image": "x"}, {"type": "docker", "file": "x"}, {"type": "docker", "image": "x", "file": "y"},
            {"type": "docker"}, {"type": "wsl"}, {"type": "wsl", "image": 1}, {"type": "other"}, {}, [], "docker"]
    _differential(cg, cl100k, schema, docs)


def test_draft4_id_fragments():
    schema = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "object",
              "definitions": {"cap": {"id": "#cap", "type": "integer", "minimum": 3}},
              "properties": {"x": {"$ref": "#cap"}}, "additionalProperties": False}
    _check(schema, [{"x": 3}, {"x": 2}, {}, {"x": "a"}])


@pytest.mark.parametrize("pattern", [r"^(\/?((\.{2})|([a-z0-9\-]*))($|\/))*$", r"^([^,]|$)", r"x(,|$)", r"(^|,)x",
                                     r"^tape\d+(\.side[A-Z])?$(\.alt\d+)?", r"$^", r"(a|^)b$", r"(^a)*b"])
def test_inner_anchors_match_ecma_search(pattern):
    import re

    dfa = schema_to_dfa({"type": "string", "pattern": pattern})
    rnd = random.Random(pattern)
    alphabet = "ab,x/.-1tape9sideA"
    samples = ["", "a", "b", "x", ",x", "x,", "ab", "../a/", "tape1", "tape1.sideA", "tape1$"]
    samples += ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 9))) for _ in range(400)]
    for s in samples:
        # Python's re.search agrees with ECMA here: no newlines, ASCII only
        assert dfa.matches(serialize(s).encode()) == (re.search(pattern, s) is not None), (pattern, s)


def test_hopcroft_partition_matches_moore_refinement():
    # Full minimisation runs Hopcroft (counted strings need as many Moore rounds as characters);
    # both must find the same coarsest stable partition.
    import numpy as np

    from kmgrammar.kernels import hopcroft_partition, refine_partition

    def canon(p):
        ids: dict = {}
        return [ids.setdefault(int(x), len(ids)) for x in p]

    rng = np.random.default_rng(7)
    for trial in range(400):
        n, k = int(rng.integers(1, 30)), int(rng.integers(1, 4))
        t = rng.integers(0, max(1, n // (1 + trial % 3)), size=(n, k)).astype(np.int64)
        part = rng.integers(0, int(rng.integers(1, 4)), size=n).astype(np.int64)
        moore, _ = refine_partition(t, part.copy(), n + 2)
        assert canon(hopcroft_partition(t, part.copy())) == canon(moore)


@pytest.mark.parametrize("lo,hi", [(0, 0), (0, 1), (3, 7), (2, None), (0, None), (5, 5)])
def test_counted_string_equals_repeated_character(lo, hi):
    from kmgrammar import grammar as g
    from kmgrammar import jsonschema_values as jv

    lim = Limits(max_states=100_000, time_limit=60)
    direct = jv.string_dfa(jv._any_content(), lo, hi, lim)
    plain = g.CharSet(g.complement_ranges([(0, 0x1F), (0x22, 0x22), (0x5C, 0x5C)]))
    char = g.Alt((plain,) + tuple(g.text("\\" + jv.escape_of(b)) for b in list(range(0x20)) + [0x22, 0x5C]))
    repeated = jv.build(g.seq(g.text('"'), g.Repeat(char, lo, hi), g.text('"')), lim)
    assert direct.n_states == repeated.n_states
    assert jv.difference(direct, repeated, lim).is_empty() and jv.difference(repeated, direct, lim).is_empty()


def test_long_string_bounds_compile_fast_or_fail_clearly():
    dfa = schema_to_dfa({"type": "object", "properties": {"a": {"type": "string", "maxLength": 5000},
                                                          "b": {"type": "string", "minLength": 2000}},
                         "additionalProperties": False})
    assert dfa.matches(b'{"a":"' + b"x" * 5000 + b'","b":"' + "é".encode() * 2000 + b'"}')
    assert not dfa.matches(b'{"a":"' + b"x" * 5001 + b'"}')
    assert not dfa.matches(b'{"b":"' + b"x" * 1999 + b'"}')
    with pytest.raises(CompileLimitError, match="maxLength"):
        schema_to_dfa({"type": "object", "properties": {"a": {"type": "string", "maxLength": 65535}},
                       "additionalProperties": False})


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"a": {"type": "string", "maxLength": 40}, "b": {"anyOf": [
        {"type": "string", "maxLength": 30}, {"type": "null"}]}, "c": {"type": "array", "items": {
            "type": "string", "maxLength": 20}}}, "additionalProperties": False},
    {"anyOf": [{"type": "string", "maxLength": 40}, {"type": "string", "pattern": "^a", "maxLength": 50}]},
    {"type": "object", "properties": {"x": {"type": "object", "properties": {"y": {"enum": ["p", "q"]},
                                                                            "z": {"type": "string", "maxLength": 9}},
                                   "additionalProperties": False}},
     "minProperties": 1, "additionalProperties": False},
])
def test_spliced_sub_automata_equal_plain_determinisation(schema, monkeypatch):
    from kmgrammar import jsonschema_values as jv

    lim = Limits(max_states=100_000, time_limit=60)
    monkeypatch.setattr(jv, "SPLICE_MIN_STATES", 2)
    spliced = schema_to_dfa(schema)
    monkeypatch.setattr(jv, "SPLICE_MIN_STATES", 10**9)
    plain = schema_to_dfa(schema)
    assert spliced.n_states == plain.n_states
    assert jv.difference(spliced, plain, lim).is_empty() and jv.difference(plain, spliced, lim).is_empty()


def test_property_order_any_accepts_every_order_once():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"},
                                               "c": {"const": {"x": 1, "y": 2}}},
              "required": ["a"], "additionalProperties": False}
    dfa = schema_to_dfa(schema, property_order="any")
    for text in ['{"a":1}', '{"b":"q","a":1}', '{"c":{"y":2,"x":1},"a":1,"b":""}']:
        assert dfa.matches(text.encode()), text
    for text in ['{"b":"q"}', '{"a":1,"a":2}', '{"a":1,"b":"q","b":"r"}', "{}"]:
        assert not dfa.matches(text.encode()), text
    # differences stay exact: both sides hold every order of each object
    neg = schema_to_dfa({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                         "not": {"const": {"a": 1, "b": 2}}, "additionalProperties": False}, property_order="any")
    assert not neg.matches(b'{"b":2,"a":1}') and not neg.matches(b'{"a":1,"b":2}') and neg.matches(b'{"b":3,"a":1}')
    with pytest.raises(CompileLimitError, match="property_order='any'") as info:
        schema_to_dfa({"type": "object", "properties": {f"p{i}": {} for i in range(11)},
                       "required": [f"p{i}" for i in range(11)]}, property_order="any")
    assert info.value.limit == "property_order"
    with pytest.raises(CompileError, match="property_order"):
        schema_to_dfa({}, property_order="random")


def test_property_order_any_with_extra_keys_and_counts():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
              "required": ["b"], "additionalProperties": {"type": "boolean"}, "minProperties": 2, "maxProperties": 3}
    dfa = schema_to_dfa(schema, property_order="any")
    for text in ['{"x":true,"b":1}', '{"b":1,"x":true,"a":2}', '{"a":2,"x":true,"b":1}', '{"b":1,"a":2}']:
        assert dfa.matches(text.encode()), text
    for text in ['{"b":1}', '{"x":true,"b":1,"a":2,"y":false}', '{"x":true,"a":1}', '{"b":1,"a":2,"b":3}',
                 '{"a":"s","b":1}']:
        assert not dfa.matches(text.encode()), text
    # the limit is inclusive: ANY_ORDER_MAX_PROPERTIES declared properties still compile (here a
    # context-free object: its members are shared rules, tests/test_jsonschema_property_order.py)
    from kmgrammar.automaton import ByteDFA
    from kmgrammar.jsonschema import schema_to_grammar
    from kmgrammar.jsonschema_containers import ANY_ORDER_MAX_PROPERTIES

    ten = schema_to_grammar({"type": "object", "properties": {f"p{i}": {} for i in range(ANY_ORDER_MAX_PROPERTIES)}},
                            property_order="any")
    assert not isinstance(ten, ByteDFA) and ten.calls  # members and nodes kept as calls
