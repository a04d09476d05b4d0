"""Differential fuzzing of compile_json_schema against the `jsonschema` validator: random small
schemas (every combinator, nested, with $ref) x random values. No false positive: a document the
compiled schema accepts must validate. (False negatives are not asserted here: the supported
serialization writes keys in schema order, the values below in their own.)

Seeded, so a failure is reproducible: it names the schema and the document."""

from __future__ import annotations

import json
import random
import warnings
from decimal import Decimal, localcontext

import jsonschema as js
import numpy as np
import pytest

from kmgrammar import Matcher, compile_json_schema
from kmgrammar.errors import CompileError, UnsupportedFeatureError
from kmgrammar.jsonschema import schema_to_dfa
from kmgrammar.jsonschema_values import serialize

NAMES = ["a", "b", "c"]
STRINGS = ["", "a", "ab", "abc", "b", "x y", "A", "2020-01-31", "2020-02-30", "1.2.3.4", "01.2.3.4",
           "12345678-1234-1234-1234-123456789abc"]
NUMBERS = [0, 1, -1, 2, 3, 0.5, -0.5, 1.5, 10, 2.25]
# formats the validator checks by itself (others need optional packages, and unchecked they
# would make every string valid there)
FORMATS = ["date", "ipv4", "uuid"]


class Gen:
    def __init__(self, seed: int):
        self.r = random.Random(seed)

    def scalar(self):
        r = self.r
        k = r.choice(["type", "enum", "const", "number", "string"])
        if k == "type":
            ts = r.sample(["null", "boolean", "integer", "number", "string", "array", "object"], r.randint(1, 2))
            return {"type": ts if len(ts) > 1 else ts[0]}
        if k == "enum":
            return {"enum": r.sample(STRINGS[:4] + NUMBERS[:5] + [None, True, [1], {"a": 1}], r.randint(1, 3))}
        if k == "const":
            return {"const": r.choice(STRINGS[:4] + NUMBERS[:6] + [None, False, [], {"a": 1}, [1, "a"]])}
        if k == "number":
            s = {"type": r.choice(["integer", "number"])}
            for kw in r.sample(["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"], r.randint(1, 2)):
                s[kw] = r.choice([1, 2, 0.5, 3, 0.25]) if kw == "multipleOf" else r.choice([0, 1, 2, 0.5, -1, 1.5])
            return s
        s = {"type": "string"}
        for kw in r.sample(["minLength", "maxLength", "pattern", "format"], r.randint(1, 2)):
            s[kw] = {"minLength": r.randint(0, 3), "maxLength": r.randint(0, 3),
                     # no $, . or \\d: Python's re (the validator's) reads them unlike ECMA-262
                     "pattern": r.choice(["^a", "b", "a|b", "^[a-z]+", "^[^a]"]),
                     "format": r.choice(FORMATS)}[kw]
        return s

    def obj(self, d: int):
        r = self.r
        names = r.sample(NAMES, r.randint(1, 3))
        s = {"type": "object", "properties": {n: self.schema(d + 1) for n in names}}
        if r.random() < 0.6:
            s["required"] = r.sample(names, r.randint(0, len(names)))
        s["additionalProperties"] = r.choice([False, False, {"type": "integer"}, True])
        if r.random() < 0.2:
            s[r.choice(["minProperties", "maxProperties"])] = r.randint(0, 2)
        for kw in r.sample(["patternProperties", "propertyNames", "dependentRequired", "dependentSchemas",
                            "unevaluatedProperties", "allOf", "$ref"], r.randint(0, 2)):
            if kw == "patternProperties":
                s[kw] = {r.choice(["^a", "b", "^z$"]): self.schema(d + 1)}
            elif kw == "propertyNames":
                s[kw] = r.choice([{"maxLength": 1}, {"pattern": "^[ab]"}, {"enum": ["a", "z"]}, {"not": {"const": "b"}}])
            elif kw == "dependentRequired":
                s[kw] = {r.choice(NAMES): r.sample(NAMES, 1)}
            elif kw == "dependentSchemas":
                s[kw] = {r.choice(NAMES): self.schema(d + 1)}
            elif kw == "unevaluatedProperties":
                del s["additionalProperties"]
                s[kw] = r.choice([False, {"type": "integer"}])
                s["anyOf"] = [{"properties": {n: self.schema(d + 1)}} for n in r.sample(NAMES + ["z"], 2)]
            elif kw == "allOf":
                s[kw] = [{"properties": {r.choice(NAMES): self.schema(d + 1)}}]
            else:
                s[kw] = "#/$defs/d0"
        return s

    def array(self, d: int):
        r = self.r
        s = {"type": "array", "items": self.schema(d + 1), "maxItems": 3}
        for kw in r.sample(["minItems", "maxItems", "contains", "uniqueItems", "prefixItems"], r.randint(0, 2)):
            s[kw] = {"minItems": r.randint(0, 2), "maxItems": r.randint(0, 3), "contains": self.schema(d + 1),
                     "uniqueItems": True, "prefixItems": [self.schema(d + 1) for _ in range(r.randint(1, 2))]}[kw]
        if "prefixItems" in s and r.random() < 0.4:
            s["items"] = False
        if "contains" in s and r.random() < 0.5:
            s[r.choice(["minContains", "maxContains"])] = r.randint(0, 2)
        if r.random() < 0.15:
            del s["items"]
            s["unevaluatedItems"] = r.choice([False, {"type": "string"}])
            s["anyOf"] = [{"prefixItems": [self.schema(d + 1)]}, {"contains": self.schema(d + 1)}]
        return s

    def schema(self, d: int = 0):
        r = self.r.random()
        if d >= 3 or r < 0.35:
            return self.scalar()
        if r < 0.55:
            return self.obj(d)
        if r < 0.7:
            return self.array(d)
        k = self.r.choice(["not", "oneOf", "anyOf", "allOf", "if"])
        if k == "not":
            inner = {"not": self.schema(d + 1)}
            return inner if self.r.random() < 0.5 else dict(self.schema(d + 1), **inner)
        if k == "if":
            return {"if": self.schema(d + 1), "then": self.schema(d + 1), "else": self.schema(d + 1)}
        return {k: [self.schema(d + 1) for _ in range(self.r.randint(2, 3))]}

    def value(self, d: int = 0):
        r = self.r.random()
        if d >= 3 or r < 0.5:
            return self.r.choice(STRINGS + NUMBERS + [None, True, False, [], {}])
        if r < 0.75:
            return {n: self.value(d + 1) for n in self.r.sample(NAMES + ["z"], self.r.randint(0, 3))}
        return [self.value(d + 1) for _ in range(self.r.randint(0, 3))]


def _acceptor(schema, vocab):
    """(text -> accepted, the byte DFA or None): the DFA where the language is regular, else the
    matcher token by token."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            dfa = schema_to_dfa(schema)
            return (lambda text: dfa.matches(text.encode("utf-8"))), dfa
        except UnsupportedFeatureError as e:
            if "not regular" not in str(e):
                raise
        compiled = compile_json_schema(schema, vocab, cache=False, time_limit=10)

    def accepts(text):
        m = Matcher(compiled)
        return m.accept_string(text) and m.is_accepting()
    return accepts, None


def _samples(dfa, rng, n: int = 4, soft_len: int = 40):
    """Random documents of a byte DFA: random bytes, then, past `soft_len`, the shortest way out."""
    trans = dfa.trans[:, dfa.classes]  # [state, byte]
    dist = np.where(dfa.accept, 0, np.iinfo(np.int32).max).astype(np.int64)
    while True:  # bytes to an accepting state (every state of a trimmed DFA has a way)
        nxt = np.where(trans >= 0, dist[np.maximum(trans, 0)] + 1, np.iinfo(np.int32).max).min(axis=1)
        new = np.minimum(dist, nxt)
        if (new == dist).all():
            break
        dist = new
    for _ in range(n):
        st, out = 0, bytearray()
        while not (dfa.accept[st] and (len(out) >= soft_len or rng.random() < 0.2)):
            live = np.flatnonzero(trans[st] >= 0)
            if not len(live):  # an accepting state with no way on
                break
            if len(out) >= soft_len:
                live = live[dist[trans[st, live]] < dist[st]]
            b = int(live[rng.randrange(len(live))])
            out.append(b)
            st = int(trans[st, b])
        yield out.decode("utf-8")


@pytest.mark.parametrize("seed", range(8))
def test_no_false_positive_on_random_schemas(cl100k, seed):
    gen = Gen(seed)
    compiled = 0
    for _ in range(150):
        schema = gen.schema()
        if not isinstance(schema, dict):
            continue
        schema = dict(schema, **{"$schema": "https://json-schema.org/draft/2020-12/schema",
                                 "$defs": {"d0": gen.schema(2)}})
        try:
            accepts, dfa = _acceptor(schema, cl100k)
        except CompileError:
            continue  # unsupported, over a limit or empty: said clearly, never a wrong mask
        compiled += 1
        exact = json.loads(json.dumps(schema), parse_float=Decimal)
        validator = js.Draft202012Validator(exact, format_checker=js.Draft202012Validator.FORMAT_CHECKER)
        texts = [serialize(gen.value()) for _ in range(20)]
        texts = [t for t in texts if accepts(t)] + (list(_samples(dfa, gen.r)) if dfa is not None else [])
        for text in texts:
            with localcontext() as ctx:
                ctx.prec = 100
                try:
                    ok = validator.is_valid(json.loads(text, parse_float=Decimal))
                except RecursionError:  # a $ref cycle the validator cannot leave
                    break
            assert ok, f"accepted an invalid document: {text} for {json.dumps(schema)}"
    assert compiled >= 75  # the generator still exercises the compiler
