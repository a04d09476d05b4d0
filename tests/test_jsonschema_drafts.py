"""A declared draft's vocabulary: keywords from later drafts are ignored, as that draft's validators do."""

from __future__ import annotations

import warnings

import jsonschema as js
import pytest

from kmgrammar import Matcher, Vocabulary
from kmgrammar.compiler import compile_json_schema
from kmgrammar.jsonschema_values import serialize

VOCAB = Vocabulary.from_bytes([bytes([b]) for b in range(256)] + [b"<eos>"], eos_token_ids=[256])
IF_THEN = {"type": "object", "properties": {"kind": {"type": "string"}, "n": {"type": "integer"}},
           "if": {"properties": {"kind": {"const": "a"}}}, "then": {"properties": {"n": {"maximum": 1}}}}
DRAFTS = {"draft-04": "http://json-schema.org/draft-04/schema#", "draft-06": "http://json-schema.org/draft-06/schema#",
          "draft-07": "http://json-schema.org/draft-07/schema#",
          "2019-09": "https://json-schema.org/draft/2019-09/schema",
          "2020-12": "https://json-schema.org/draft/2020-12/schema"}


def _accepts(schema, value) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = Matcher(compile_json_schema(schema, VOCAB, cache=False))
    return m.accept_string(serialize(value)) and m.is_accepting()


@pytest.mark.parametrize("schema, value", [
    (IF_THEN, {"kind": "a", "n": 5}),
    ({"type": "array", "items": {"type": "integer"}, "contains": {"const": 7}}, [1, 2]),
    ({"type": "array", "items": {"type": "integer"}, "contains": {"minimum": 5}}, [1]),
    ({"type": "object", "propertyNames": {"maxLength": 1}}, {"long": 1}),
    ({"type": "object", "dependentRequired": {"a": ["b"]}}, {"a": 1}),
    ({"type": "array", "prefixItems": [{"type": "string"}]}, [1]),
], ids=["if-then", "const", "contains", "propertyNames", "dependentRequired", "prefixItems"])
@pytest.mark.parametrize("draft", DRAFTS)
def test_the_declared_drafts_validator_decides(schema, value, draft):
    schema = dict(schema, **{"$schema": DRAFTS[draft]})
    assert js.validators.validator_for(schema).META_SCHEMA.get("$schema") == DRAFTS[draft]
    want = js.validators.validator_for(schema)(schema).is_valid(value)
    assert _accepts(schema, value) == want


@pytest.mark.parametrize("draft", DRAFTS)
def test_dependencies_is_enforced_in_every_draft(draft):
    """2019-09 split it into dependentRequired/dependentSchemas; the official suite's optional
    dependencies-compatibility tests still expect it enforced."""
    schema = {"$schema": DRAFTS[draft], "type": "object", "properties": {"a": {}, "b": {}},
              "dependencies": {"a": ["b"]}}
    assert not _accepts(schema, {"a": 1})
    assert _accepts(schema, {"a": 1, "b": 2})


def test_without_a_schema_every_known_keyword_is_enforced():
    assert not _accepts(IF_THEN, {"kind": "a", "n": 5})
    assert _accepts(IF_THEN, {"kind": "a", "n": 1})


def test_an_ignored_keyword_is_named_with_its_location():
    schema = {"$schema": DRAFTS["draft-04"], "properties": {"x": {"const": 1}}}
    with pytest.warns(UserWarning, match=r"declares draft-04, which has no keyword 'const' at #/properties/x: ignored"):
        compile_json_schema(schema, VOCAB, cache=False)
