"""Shared pieces of the JSON Schema frontend: keyword tables, helpers, IR <-> grammar glue."""

from __future__ import annotations

import json
from decimal import Decimal

from . import grammar as g
from . import jsonschema_values as jv
from .automaton import Limits
from .cfg import Ref as _Ref
from .errors import CompileError

ANNOTATIONS = frozenset({
    "title", "description", "default", "examples", "$comment", "readOnly", "writeOnly", "deprecated",
    "$schema", "$id", "id", "$anchor", "$defs", "definitions", "$vocabulary", "contentMediaType",
    "contentEncoding", "contentSchema", "$dynamicAnchor", "discriminator", "xml", "externalDocs", "example",
})
SUPPORTED = frozenset({
    "type", "enum", "const", "properties", "required", "additionalProperties", "patternProperties",
    "propertyNames", "minProperties", "maxProperties", "items", "prefixItems", "additionalItems",
    "minItems", "maxItems", "contains", "minContains", "maxContains", "anyOf", "oneOf", "allOf", "not",
    "$ref", "minLength", "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "multipleOf", "nullable", "if", "then", "else", "dependentRequired",
    "dependentSchemas", "dependencies", "uniqueItems", "unevaluatedProperties", "unevaluatedItems",
})
UNSUPPORTED = frozenset({
    "$dynamicRef", "$recursiveRef",
})
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems", "items")
_SCHEMA_ONE = ("not", "if", "then", "else", "items", "additionalItems", "additionalProperties", "contains",
               "propertyNames", "unevaluatedItems", "unevaluatedProperties")
TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")
# Nesting allowed for "any JSON value" when lenient=True (an approximation, warned about).
LENIENT_ANY_DEPTH = 3
# Cap on conjunction lowerings per compile: distributing anyOf over anyOf multiplies them.
MAX_LOWERINGS = 20_000

_EMPTY = g.CharSet(())  # the empty language


class _Unsupported(Exception):
    pass


def load_schema(schema):
    """dict | bool | JSON text | Pydantic model class -> schema object."""
    if hasattr(schema, "model_json_schema"):
        schema = schema.model_json_schema()
    if isinstance(schema, (bytes, str)):
        try:
            schema = json.loads(schema)
        except json.JSONDecodeError as e:
            raise CompileError(f"schema is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    if not isinstance(schema, (dict, bool)):
        raise CompileError(f"a JSON Schema must be an object or a boolean, not {type(schema).__name__}")
    return schema


def _ptr(base: str, *parts) -> str:
    out = base
    for p in parts:
        out += "/" + str(p).replace("~", "~0").replace("/", "~1")
    return out


def _json_eq(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float, Decimal)) and isinstance(b, (int, float, Decimal)):
        return Decimal(repr(a) if isinstance(a, float) else a) == Decimal(repr(b) if isinstance(b, float) else b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_eq(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_eq(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _json_key(v):
    """A hashable key with `_json_eq` semantics (1 == 1.0, true != 1), for deduplicating big enums."""
    if isinstance(v, bool) or v is None:
        return (type(v).__name__, v)
    if isinstance(v, (int, float, Decimal)):
        return ("n", Decimal(repr(v)) if isinstance(v, float) else Decimal(v))  # hash follows value
    if isinstance(v, list):
        return ("l", tuple(_json_key(x) for x in v))
    if isinstance(v, dict):
        return ("d", frozenset((k, _json_key(x)) for k, x in v.items()))
    return (type(v).__name__, v)


def _type_of(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float, Decimal)):
        d = Decimal(repr(v)) if isinstance(v, float) else Decimal(v)
        return "integer" if d == d.to_integral_value() else "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"





def _has_ref(node) -> bool:
    """Does the node use a nonterminal (cached on the node: trees share subtrees)."""
    t = type(node)
    if t is _Ref:
        return True
    if t not in (g.Seq, g.Alt, g.Repeat, jv.Graph):
        return False
    got = node.__dict__.get("_has_ref")
    if got is None:
        if t is g.Repeat:
            got = _has_ref(node.item)
        elif t is jv.Graph:
            got = any(_has_ref(lab) for lab in node.labels())
        else:
            got = any(_has_ref(x) for x in node.items)
        object.__setattr__(node, "_has_ref", got)
    return got


def _to_cfg_node(node, rules: dict, memo: dict, limits: Limits):
    """Replace `Graph`s: regular ones by their DFA, the others by a nonterminal whose body is the
    graph (its edges converted): one rule automaton, however many paths the graph has."""
    t = type(node)
    if t in (g.Seq, g.Alt):
        items = tuple(_to_cfg_node(x, rules, memo, limits) for x in node.items)
        # unchanged subtrees stay the same objects (a rule shared by every compile, `json_value`,
        # keeps its identity: `cfg_rtn` reuses its automaton)
        return node if all(a is b for a, b in zip(items, node.items)) else t(items)
    if t is g.Repeat:
        item = _to_cfg_node(node.item, rules, memo, limits)
        return node if item is node.item else g.Repeat(item, node.min, node.max)
    if t is not jv.Graph:
        return node
    got = memo.get(id(node))
    if got is not None:
        return got
    if not _has_ref(node):
        got = memo[id(node)] = g.Dfa(jv.build(node, limits))
        return got
    name = f"g{len(memo)}"
    memo[id(node)] = got = _Ref(name)
    rules[name] = node.map(lambda lab: _to_cfg_node(lab, rules, memo, limits))
    return got


