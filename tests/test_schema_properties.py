"""Property tests for compile_json_schema (issue 4's "Proof"): instances that hypothesis-jsonschema
draws from a schema are accepted token by token (in the supported serialization), and random
token-level walks of the matcher produce documents the `jsonschema` validator accepts."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

jsonschema = pytest.importorskip("jsonschema")
hj = pytest.importorskip("hypothesis_jsonschema")
from hypothesis import HealthCheck, given, settings  # noqa: E402

from kmgrammar import Matcher, compile_json_schema  # noqa: E402
from kmgrammar.jsonschema_values import serialize  # noqa: E402

SCHEMAS = {
    "scalars": {"type": "object", "properties": {
        "id": {"type": "integer", "minimum": -50, "maximum": 1000},
        "name": {"type": "string", "minLength": 1, "maxLength": 8},
        "ok": {"type": "boolean"},
        "score": {"type": "number", "minimum": 0, "exclusiveMaximum": 10, "multipleOf": 0.25},
        "tag": {"enum": ["a", "b", None, 3]}},
        "required": ["id", "name"], "additionalProperties": False},
    "arrays": {"type": "object", "properties": {
        "xs": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 99},
               "minItems": 1, "maxItems": 5},
        "pair": {"type": "array", "prefixItems": [{"type": "string", "maxLength": 3},
                                                  {"type": "boolean"}], "items": False}},
        "required": ["xs"], "additionalProperties": False},
    "choice": {"anyOf": [
        {"type": "object", "properties": {"kind": {"const": "circle"}, "r": {"type": "integer", "minimum": 1}},
         "required": ["kind", "r"], "additionalProperties": False},
        {"type": "object", "properties": {"kind": {"const": "square"}, "side": {"type": "integer", "maximum": 9}},
         "required": ["kind", "side"], "additionalProperties": False}]},
    "pattern": {"type": "object", "properties": {
        "code": {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{2,4}$"},
        "note": {"type": "string", "pattern": "ab", "maxLength": 6}},
        "required": ["code"], "additionalProperties": False},
    "open_object": {"type": "object", "properties": {"v": {"type": "integer"}},
                    "required": ["v"], "maxProperties": 3},
    "recursive": {"$defs": {"node": {"type": "object", "properties": {
        "v": {"type": "integer", "minimum": 0, "maximum": 9},
        "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}},
        "required": ["v"], "additionalProperties": False}}, "$ref": "#/$defs/node"},
}


def _unrolled_node(depth: int) -> dict:
    """hypothesis-jsonschema cannot draw from recursive schemas: the `recursive` schema's
    instances are drawn from this depth-bounded copy (a subset of its language)."""
    kids = {"type": "array", "items": _unrolled_node(depth - 1), "maxItems": 2} if depth else \
        {"type": "array", "maxItems": 0}
    return {"type": "object", "properties": {"v": {"type": "integer", "minimum": 0, "maximum": 9},
                                              "kids": kids},
            "required": ["v"], "additionalProperties": False}


DRAW_FROM = {"recursive": _unrolled_node(3)}


def _reorder(value, schema, defs):
    """Key order of the supported serialization: declared properties in schema order, then the
    rest in their own order (the schemas above keep `properties` in one place per object)."""
    if isinstance(schema, dict) and "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    if isinstance(value, dict):
        props = (schema or {}).get("properties", {}) if isinstance(schema, dict) else {}
        if isinstance(schema, dict) and "anyOf" in schema:
            for branch in schema["anyOf"]:
                if jsonschema.Draft202012Validator(branch).is_valid(value):
                    return _reorder(value, branch, defs)
        keys = [k for k in props if k in value] + [k for k in value if k not in props]
        return {k: _reorder(value[k], props.get(k), defs) for k in keys}
    if isinstance(value, list) and isinstance(schema, dict):
        prefix = schema.get("prefixItems", [])
        rest = schema.get("items")
        return [_reorder(v, prefix[i] if i < len(prefix) else rest, defs) for i, v in enumerate(value)]
    return value


@pytest.fixture(scope="module")
def compiled(cl100k):
    return {name: compile_json_schema(schema, cl100k) for name, schema in SCHEMAS.items()}


def _accepts_token_by_token(cg, vocab, text: str) -> bool:
    m = Matcher(cg)
    return all(m.accept_token(t) for t in vocab.encode(text)) and m.is_accepting()


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_hypothesis_instances_are_accepted(name, compiled, cl100k):
    schema = SCHEMAS[name]
    cg = compiled[name]

    @settings(max_examples=40, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(hj.from_schema(DRAW_FROM.get(name, schema)))
    def check(instance):
        text = serialize(_reorder(instance, schema, schema.get("$defs", {})))
        assert _accepts_token_by_token(cg, cl100k, text), text

    check()


def _walk(cg, vocab, rng: random.Random, max_tokens: int = 60) -> bytes | None:
    """One random token-level walk; None if it did not end within the budget."""
    m = Matcher(cg)
    eos = np.array(sorted(vocab.eos_token_ids), dtype=np.int64)
    one_byte = np.array([len(b) == 1 for b in vocab.token_bytes] + [False] * (vocab.vocab_size - len(vocab.token_bytes)))
    out = bytearray()
    for step in range(max_tokens * 3):
        allowed = m.allowed_token_ids()
        if m.is_accepting() and (step >= max_tokens or rng.random() < 0.3):
            return bytes(out)
        choices = allowed[~np.isin(allowed, eos)]
        if not choices.size:
            return bytes(out) if m.is_accepting() else None
        # Past the budget prefer one-byte tokens, so the walk heads for a complete document.
        if step >= max_tokens and one_byte[choices].any():
            choices = choices[one_byte[choices]]
        t = int(choices[rng.randrange(choices.size)])
        assert m.accept_token(t)
        out += vocab.token_bytes[t]
    return None


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_random_walks_validate(name, compiled, cl100k):
    validator = jsonschema.Draft202012Validator(SCHEMAS[name])
    rng = random.Random(name)
    done = 0
    for _ in range(12):
        data = _walk(compiled[name], cl100k, rng)
        if data is None:
            continue
        doc = json.loads(data.decode("utf-8"))
        assert validator.is_valid(doc), data
        done += 1
    assert done >= 3


def test_masks_are_not_all_open(compiled, cl100k):
    """Guard for the walks above: the masks restrict (a walk over an all-open mask would also
    'validate' nothing)."""
    m = Matcher(compiled["scalars"])
    allowed = m.allowed_token_ids()
    assert 0 < allowed.size < cl100k.vocab_size // 100
    assert np.all(np.diff(allowed) > 0)


def test_big_enums_compile_through_a_trie(cl100k):
    """20,000 enum values (strings and numbers, 1 == 1.0 deduplicated) compile and match exactly;
    a 300,000-value enum stops at the state limit with a clear error, never a hang."""
    from kmgrammar import CompileLimitError

    rng = random.Random(4)
    words = sorted({"".join(rng.choice("abcdefghij") for _ in range(rng.randint(2, 9))) for _ in range(12000)})
    values = words + list(range(8000)) + [1.0, 2.0]
    cg = compile_json_schema({"enum": values}, cl100k)
    for w in (words[0], words[-1], words[len(words) // 2]):
        assert _accepts_token_by_token(cg, cl100k, json.dumps(w))
    assert _accepts_token_by_token(cg, cl100k, "7999")
    for bad in ('"' + words[0] + 'k"', "8000", "1.0", '"zzzz"'):
        m = Matcher(cg)
        assert not (m.accept_string(bad) and m.is_accepting()), bad
    with pytest.raises(CompileLimitError, match="max_states"):
        compile_json_schema({"enum": [f"v{i}" for i in range(300_000)]}, cl100k)
