"""JSON Schema -> regular IR (or a context-free `cfg.Cfg`) -> automata: the `compile_json_schema` frontend.

A schema is lowered as a *conjunction*: the list of schema objects that all apply to one value
(`allOf` members and `$ref` targets are flattened into it). Keywords that merge are merged per
type (bounds, lengths, properties per key, items per position); `anyOf` is distributed over the
rest of the conjunction; `oneOf`, `not`, `if`/`then`/`else` and `dependent*` become unions and
automaton differences of such conjunctions (or, when a side is not regular, are rewritten without
negation: `negate`). Every value has one spelling per whitespace style (`jsonschema_values`), so
the differences are exact. Objects are `Graph`s over "which declared property comes next", so n
optional properties cost O(n) states. When nothing needs nesting the result is one byte DFA
(O(1) masks); values of unbounded nesting (`{}`, `additionalProperties` left open, recursive
`$ref`) become nonterminals (`json_value`, one rule per recursive subschema) and the schema
compiles through the context-free engine.

Supported keywords: type (lists), enum, const, properties, required, additionalProperties,
patternProperties, propertyNames, min/maxProperties, items, prefixItems, additionalItems (draft
7), min/maxItems, contains/min/maxContains, anyOf, oneOf, allOf, not, if/then/else, $ref/$defs/
definitions/$anchor/$id (local), min/maxLength, pattern (ECMA-262 via Python's parser, search
semantics: `.*` added on each side an alternative does not anchor), format (see
`jsonschema_values.FORMATS`), minimum/maximum/exclusive* (draft 4 booleans too), multipleOf,
nullable, dependentRequired/dependentSchemas/dependencies, unevaluatedProperties/Items (scoped to
in-place subschemas), uniqueItems (only when at most one item is possible). Annotations and
unknown keywords are ignored, as the spec says.

Departures (documented, tested):
- the serialization of `jsonschema_values` (canonical numbers without exponent, json.dumps escapes);
- key order: declared properties in schema order (after merging allOf/$ref: order of first
  appearance), then `required`-only names, then any other keys; inside `oneOf`/`not`/`if`
  differences, per JSON path by first appearance in that subschema;
- extra keys (additionalProperties/patternProperties) are not checked for duplicates;
- `format` is asserted for the formats in `jsonschema_values.FORMATS` (2020-12 makes it an
  annotation by default); standard formats not listed there are UnsupportedFeatureError, others
  (int32, ...) annotations; hostname rejects A-labels ("xn--") and counts no total length past
  the subset it accepts; time/date-time leap seconds only with whole-hour offsets;
- unevaluatedProperties/Items only see the anyOf/oneOf branch being lowered (false negatives when
  another branch would also have matched);
- indent=N with values of unbounded nesting is UnsupportedFeatureError (lenient=True: nesting
  bounded by `LENIENT_ANY_DEPTH`, warned).
Unsupported (UnsupportedFeatureError naming each keyword and JSON pointer): $dynamicRef,
$recursiveRef, remote $ref, uniqueItems over more than one item, several `contains` on one array,
`not`/`oneOf`/`if`/`contains` whose operands are not regular and have no negation-free form
(enum/const/pattern/format/items inside the negated side), regex constructs (lookaround,
backreferences, \p{...}).
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
import warnings
from decimal import Decimal
from urllib.parse import unquote

from . import grammar as g
from . import jsonschema_values as jv
from .automaton import ByteDFA, Limits
from .errors import CompileError, CompileLimitError, GrammarSyntaxError, UnsupportedFeatureError

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


_RANK_DEPTH = 12  # key orders are tracked this many levels below a oneOf/not/if (recursive schemas)


class _Rank:
    """Property order at one JSON path, and the orders below it (by key; "*" extra keys, "[]" items)."""

    __slots__ = ("order", "kids", "depth")

    def __init__(self):
        self.order: dict = {}
        self.kids: dict = {}
        self.depth = 0

    def kid(self, key: str) -> "_Rank":
        got = self.kids.get(key)
        if got is None:
            got = self.kids[key] = _Rank()
            got.depth = self.depth + 1
        return got

    def add_literal(self, v) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                self.order.setdefault(k, len(self.order))
                self.kid(k).add_literal(x)
        elif isinstance(v, list):
            for x in v:
                self.kid("[]").add_literal(x)


class Lowerer:
    """One compile: the root schema, options, memo tables, collected errors."""

    def __init__(self, root, *, style: jv.Style, strict: bool, lenient: bool, limits: Limits):
        self.root = root
        self.style = style
        self.strict = strict
        self.lenient = lenient
        self.limits = limits
        self.deadline = time.monotonic() + limits.time_limit
        self.draft7 = isinstance(root, dict) and "draft-0" in str(root.get("$schema", ""))
        self.errors: dict = {}
        self.memo: dict = {}
        self.uses: dict = {}
        self.active: list = []
        self.rank = None
        self.rules: dict = {}  # nonterminal -> node (non-regular parts: any value, recursion)
        self.inprogress: dict = {}
        self.cur_ptr = "#"
        self.empty_rank = _Rank()
        self.synthetic: list = []
        self.lowerings = 0
        self.ids = self._collect_ids(root)
        self._validator = None

    # -- plumbing ------------------------------------------------------------------------------
    def lim(self) -> Limits:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise CompileLimitError(f"compilation exceeded time_limit={self.limits.time_limit:g}s "
                                    "(raise it with time_limit=...)")
        return Limits(self.limits.max_states, left)

    def dfa(self, node) -> ByteDFA:
        if type(node) is g.Dfa:
            return node.dfa
        if _has_ref(node):
            self.fail(self.cur_ptr, "not/oneOf/if/contains over a sub-schema whose language is not regular "
                                    "(any JSON value or recursion)")
        return jv.build(node, self.lim())

    def cfg_ok(self) -> bool:
        return not self.style.depth_matters()

    def fail(self, ptr: str, what: str):
        """Record an unsupported construct; lowering goes on to report all of them at once."""
        self.errors.setdefault(ptr or "#", what)
        raise _Unsupported()

    def bad(self, ptr: str, what: str):
        raise CompileError(f"invalid schema at {ptr or '#'}: {what}")

    def syn(self, schema: dict) -> dict:
        self.synthetic.append(schema)
        return schema

    # -- references ----------------------------------------------------------------------------
    def _collect_ids(self, root) -> dict:
        """$id and $anchor targets, walking schema locations only (not enum values or unknown keys)."""
        out: dict = {}
        stack = [(root, "#", True)]
        while stack:
            s, p, top = stack.pop(0)
            if not isinstance(s, dict):
                continue
            sid = s.get("$id")
            if isinstance(sid, str) and p != "#":
                out.setdefault(sid.rstrip("#"), (s, p))
                top = False
            a = s.get("$anchor")
            if isinstance(a, str) and top:
                out.setdefault("#" + a, (s, p))
            for k, v in s.items():
                if k in _SCHEMA_MAPS and isinstance(v, dict):
                    stack.extend((x, _ptr(p, k, n), top) for n, x in v.items())
                elif k in _SCHEMA_LISTS and isinstance(v, list):
                    stack.extend((x, _ptr(p, k, i), top) for i, x in enumerate(v))
                elif k in _SCHEMA_ONE:
                    stack.append((v, _ptr(p, k), top))
        return out

    def resolve(self, ref, ptr: str):
        if not isinstance(ref, str):
            self.bad(ptr, "'$ref' must be a string")
        base = self.root.get("$id", "") if isinstance(self.root, dict) else ""
        target = ref
        if base and ref.startswith(base.rstrip("#")) and ref != base:
            target = ref[len(base.rstrip("#")):] or "#"
        if target in ("", "#"):
            return self.root, "#"
        if target in self.ids:
            return self.ids[target]
        if target.startswith("#/") or target == "#":
            cur, p = self.root, "#"
            for raw in target[2:].split("/"):
                part = unquote(raw).replace("~1", "/").replace("~0", "~")
                if isinstance(cur, dict) and part in cur:
                    cur = cur[part]
                elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
                    cur = cur[int(part)]
                else:
                    raise CompileError(f"unresolvable $ref {ref!r} at {ptr}")
                p = _ptr(p, part)
            return cur, p
        if target.startswith("#"):
            raise CompileError(f"unresolvable $ref {ref!r} at {ptr}")
        self.fail(_ptr(ptr, "$ref"), f"remote or relative $ref {ref!r} (only local references are supported)")

    # -- conjunctions --------------------------------------------------------------------------
    def flatten(self, items):
        """items: [(schema, ptr, skip)] -> (flat items, combinator list, ref targets) or None (false)."""
        flat, complex_, refs, seen = [], [], [], set()
        stack = list(items)
        while stack:
            s, ptr, skip = stack.pop(0)
            if s is True:
                continue
            if s is False:
                return None
            if not isinstance(s, dict):
                self.bad(ptr, f"a schema must be an object or a boolean, not {json.dumps(s)[:40]}")
            key = (id(s), skip)
            if key in seen:
                continue
            seen.add(key)
            self.check_keywords(s, ptr)
            if "$ref" in s and "$ref" not in skip:
                target, tptr = self.resolve(s["$ref"], ptr)
                refs.append(id(target))
                stack.append((target, tptr, frozenset()))
                if self.draft7:
                    continue  # draft 7: siblings of $ref are ignored
            if "allOf" in s and "allOf" not in skip:
                subs = s["allOf"]
                if not isinstance(subs, list) or not subs:
                    self.bad(_ptr(ptr, "allOf"), "'allOf' must be a non-empty array")
                for i, sub in enumerate(subs):
                    stack.append((sub, _ptr(ptr, "allOf", i), frozenset()))
            done = frozenset(k for k in ("allOf", "$ref") if k in s)
            flat.append((s, ptr, skip | done))
            for kw in ("anyOf", "oneOf", "not", "if", "dependentRequired", "dependentSchemas", "dependencies"):
                if kw in s and kw not in skip:
                    complex_.append((kw, len(flat) - 1))
        return flat, complex_, refs

    def check_keywords(self, s: dict, ptr: str) -> None:
        for k in s:
            if k in UNSUPPORTED or (self.draft7 and k in ("contentMediaType", "contentEncoding")):
                if self.lenient:
                    warnings.warn(f"kmgrammar: keyword {k!r} at {ptr} is not enforced (lenient=True)", stacklevel=4)
                else:
                    self.errors.setdefault(_ptr(ptr, k), f"keyword {k!r}")

    def lang(self, items, depth: int):
        """IR node of the serialized values satisfying every schema in `items`."""
        key = (tuple((id(s), skip) for s, _p, skip in items), depth if self.style.depth_matters() else 0,
               id(self.rank) if self.rank is not None else None)
        got = self.memo.get(key)
        if got is not None:
            n = self.uses[key] = self.uses.get(key, 0) + 1
            if n == 1 and type(got) not in (g.Dfa, g.Bytes, g.CharSet, _Ref) and got is not _EMPTY:
                if _has_ref(got):  # shared and not regular: one nonterminal
                    name = f"s{len(self.rules)}"
                    self.rules[name] = got
                    got = self.memo[key] = _Ref(name)
                else:  # shared: determinise once, embed
                    got = self.memo[key] = g.Dfa(self.dfa(got))
            return got
        ent = self.inprogress.get(key)
        if ent is not None:  # recursion: the value refers to itself
            ent[1] = True
            return _Ref(ent[0])
        self.lowerings += 1
        if self.lowerings > MAX_LOWERINGS:
            raise CompileLimitError(f"schema needs more than {MAX_LOWERINGS} sub-schema lowerings "
                                    "(nested anyOf/oneOf multiply them)")
        flat = self.flatten(items)
        if flat is None:
            node = _EMPTY
        else:
            flat, complex_, refs = flat
            for r in refs:
                if r in self.active and not self.cfg_ok():
                    where = next((p for s, p, _ in flat if id(s) == r), items[0][1])
                    self.fail(where, "recursive $ref (unbounded nesting needs the context-free grammar engine)")
            self.active.extend(refs)
            old_ptr, self.cur_ptr = self.cur_ptr, items[0][1] if items else "#"
            ent = self.inprogress[key] = [f"r{len(self.inprogress)}_{self.lowerings}", False]
            try:
                node = self.combinator(flat, complex_, depth) if complex_ else self.simple(flat, depth)
            except _Unsupported:
                node = _EMPTY  # recorded in self.errors; keep going to report every construct
            finally:
                del self.active[len(self.active) - len(refs):]
                self.cur_ptr = old_ptr
                del self.inprogress[key]
            if ent[1]:
                self.rules[ent[0]] = node
                node = _Ref(ent[0])
        self.memo[key] = node
        return node

    def without(self, flat, index: int, kw: str):
        s, p, skip = flat[index]
        out = list(flat)
        out[index] = (s, p, skip | {kw})
        return out

    def is_empty(self, node) -> bool:
        if node is _EMPTY:
            return True
        return False if _has_ref(node) else self.dfa(node).is_empty()

    def diff(self, a, b):
        if b is _EMPTY:
            return a
        if a is _EMPTY:
            return _EMPTY
        return g.Dfa(jv.difference(self.dfa(a), self.dfa(b), self.lim()))

    def ranked(self, items):
        """Key order for exact differences: per JSON path (property names by first appearance
        under `items`), so objects compared at one position share one spelling."""
        if self.rank is not None:
            return None
        root = _Rank()
        self.synthetic.append(root)
        seen = set()
        stack = [(s, root) for s, _p, _k in items]
        while stack:
            s, node = stack.pop(0)
            if not isinstance(s, dict) or (id(s), id(node)) in seen or node.depth > _RANK_DEPTH:
                continue
            seen.add((id(s), id(node)))
            if isinstance(s.get("$ref"), str):
                try:
                    stack.append((self.resolve(s["$ref"], "#")[0], node))
                except (CompileError, _Unsupported):
                    pass
            for k in ("allOf", "anyOf", "oneOf"):
                if isinstance(s.get(k), list):
                    stack.extend((x, node) for x in s[k])
            for k in ("not", "if", "then", "else"):
                if k in s:
                    stack.append((s[k], node))
            for k in ("dependentSchemas", "dependencies"):
                if isinstance(s.get(k), dict):
                    stack.extend((x, node) for x in s[k].values())
            props = s.get("properties")
            if isinstance(props, dict):
                for n, sub in props.items():
                    node.order.setdefault(n, len(node.order))
                    stack.append((sub, node.kid(n)))
            for k in ("enum", "const"):
                for c in (s[k] if k == "enum" and isinstance(s.get(k), list) else [s.get(k)]):
                    node.add_literal(c)
            if isinstance(s.get("patternProperties"), dict):
                stack.extend((x, node.kid("*")) for x in s["patternProperties"].values())
            if isinstance(s.get("additionalProperties"), dict):
                stack.append((s["additionalProperties"], node.kid("*")))
            for k in ("items", "prefixItems", "additionalItems", "contains"):
                v = s.get(k)
                for x in (v if isinstance(v, list) else [v]):
                    if isinstance(x, dict):
                        stack.append((x, node.kid("[]")))
        return root

    def child_rank(self, key: str):
        if self.rank is None:
            return None
        got = self.rank.kids.get(key) or self.rank.kids.get("*")
        return got if got is not None else self.empty_rank

    def lang_at(self, items, depth: int, key: str):
        """lang() of a member value or array element: the key order moves down one level."""
        old = self.rank
        self.rank = self.child_rank(key)
        try:
            return self.lang(items, depth)
        finally:
            self.rank = old

    def combinator(self, flat, complex_, depth: int):
        kw, index = complex_[0]
        s, ptr, _skip = flat[index]
        rest = self.without(flat, index, kw)
        val = s[kw]
        if kw == "anyOf":
            if not isinstance(val, list) or not val:
                self.bad(_ptr(ptr, kw), "'anyOf' must be a non-empty array")
            alts = [self.lang(rest + [(a, _ptr(ptr, kw, i), frozenset())], depth) for i, a in enumerate(val)]
            alts = [a for a in alts if a is not _EMPTY]
            return g.alt(*alts) if alts else _EMPTY
        if kw == "oneOf" and isinstance(val, list) and val:
            alts = [rest + [(a, _ptr(ptr, kw, i), frozenset())] for i, a in enumerate(val)]
            if all(self.disjoint(alts[i], alts[j]) for i in range(len(alts)) for j in range(i)):
                nodes = [self.lang(a, depth) for a in alts]
                nodes = [x for x in nodes if x is not _EMPTY]
                return g.alt(*nodes) if nodes else _EMPTY
        if self.cfg_ok() and kw in ("oneOf", "not", "if"):
            got = self.positive(kw, s, ptr, rest, depth)
            if got is not None:
                return got
        old = self.rank
        rank = self.ranked(flat)
        if rank is not None:
            self.rank = rank
        try:
            if kw == "oneOf":
                if not isinstance(val, list) or not val:
                    self.bad(_ptr(ptr, kw), "'oneOf' must be a non-empty array")
                xs = [self.lang(rest + [(a, _ptr(ptr, kw, i), frozenset())], depth) for i, a in enumerate(val)]
                xs = [self.dfa(x) for x in xs if x is not _EMPTY]
                xs = [x for x in xs if not x.is_empty()]
                if not xs:
                    return _EMPTY
                total, overlap = xs[0], None
                for x in xs[1:]:
                    o = jv.intersection(total, x, self.lim())
                    if not o.is_empty():
                        overlap = o if overlap is None else jv.union(overlap, o, self.lim())
                    total = jv.union(total, x, self.lim())
                if overlap is not None:
                    total = jv.difference(total, overlap, self.lim())
                return g.Dfa(total)
            if kw == "not":
                return self.diff(self.lang(rest, depth), self.lang(rest + [(val, _ptr(ptr, kw), frozenset())], depth))
            if kw == "if":
                then = s.get("then", True)
                else_ = s.get("else", True)
                cond = (val, _ptr(ptr, "if"), frozenset())
                a = self.lang(rest + [cond, (then, _ptr(ptr, "then"), frozenset())], depth)
                e = (else_, _ptr(ptr, "else"), frozenset())
                b = self.diff(self.lang(rest + [e], depth), self.lang(rest + [e, cond], depth))
                alts = [x for x in (a, b) if x is not _EMPTY]
                return g.alt(*alts) if alts else _EMPTY
            # dependentRequired / dependentSchemas / dependencies: one entry at a time
            if not isinstance(val, dict):
                self.bad(_ptr(ptr, kw), f"'{kw}' must be an object")
            if not val:
                return self.lang(rest, depth)
            name, dep = next(iter(val.items()))
            remaining = self.syn({kw: {k: v for k, v in val.items() if k != name}})
            rest2 = rest + [(remaining, ptr, frozenset())]
            absent = self.syn({"properties": {name: False}})
            a = self.lang(rest2 + [(absent, ptr, frozenset())], depth)
            if isinstance(dep, list) and kw != "dependentSchemas":
                if not all(isinstance(x, str) for x in dep):
                    self.bad(_ptr(ptr, kw, name), "dependent required names must be strings")
                req = self.syn({"required": list(dep) + [name]})
                b = self.lang(rest2 + [(req, ptr, frozenset())], depth)
            else:
                req = self.syn({"required": [name]})
                b = self.lang(rest2 + [(req, ptr, frozenset()), (dep, _ptr(ptr, kw, name), frozenset())], depth)
            alts = [x for x in (a, b) if x is not _EMPTY]
            return g.alt(*alts) if alts else _EMPTY
        finally:
            self.rank = old

    def positive(self, kw, s, ptr, rest, depth):
        """oneOf/not/if over languages that are not regular, rewritten without negation when every
        negated schema has a negation-free form (`negate`); None to take the automaton route."""
        val = s[kw]
        if kw == "oneOf":
            if not isinstance(val, list) or not val:
                return None
            alts = [rest + [(a, _ptr(ptr, kw, i), frozenset())] for i, a in enumerate(val)]
        elif kw == "not":
            alts = [rest, rest + [(val, _ptr(ptr, kw), frozenset())]]
        else:
            alts = [rest + [(x, ptr, frozenset())] for x in (val, s.get("then", True), s.get("else", True))]
        if not any(_has_ref(self.lang(a, depth)) for a in alts):
            return None  # regular: exact automaton differences are cheaper
        if kw == "oneOf":
            negs = [self.negate(a) for a in val]
            if any(n is None for n in negs):
                return None
            out = []
            for i, a in enumerate(val):
                if any(not negs[j] for j in range(len(val)) if j != i):
                    continue  # another branch is `true`: this one can never be the only match
                extra = [(self.syn({"anyOf": negs[j]}), _ptr(ptr, kw, j), frozenset()) for j in range(len(val)) if j != i]
                out.append(self.lang(rest + [(a, _ptr(ptr, kw, i), frozenset())] + extra, depth))
        elif kw == "not":
            neg = self.negate(val)
            if neg is None:
                return None
            out = [self.lang(rest + [(self.syn({"anyOf": neg}), _ptr(ptr, kw), frozenset())], depth)] if neg else []
        else:
            neg = self.negate(val)
            if neg is None:
                return None
            out = [self.lang(rest + [(val, _ptr(ptr, "if"), frozenset()),
                                     (s.get("then", True), _ptr(ptr, "then"), frozenset())], depth)]
            if neg:
                out.append(self.lang(rest + [(self.syn({"anyOf": neg}), _ptr(ptr, "if"), frozenset()),
                                             (s.get("else", True), _ptr(ptr, "else"), frozenset())], depth))
        out = [x for x in out if x is not _EMPTY]
        return g.alt(*out) if out else _EMPTY

    def negate(self, schema, _active=None):
        """Schemas whose union is exactly the complement of `schema` (over all JSON values), without
        `not` over non-regular parts; None when a keyword has no such form (enum, pattern, ...)."""
        key = id(schema)
        memo = self.__dict__.setdefault("_neg_memo", {})
        if key in memo:
            return memo[key]
        active = _active if _active is not None else set()
        if key in active:
            return None
        active.add(key)
        try:
            got = self._negate(schema, active)
        finally:
            active.discard(key)
        memo[key] = got
        return got

    def _negate(self, s, active):
        if s is True:
            return []
        if s is False:
            return [True]
        if not isinstance(s, dict):
            return None
        out: list = []
        syn = self.syn
        for k, v in s.items():
            if k in ANNOTATIONS or (k not in SUPPORTED and k not in UNSUPPORTED):
                continue
            if k == "type":
                ts = {v} if isinstance(v, str) else set(v) if isinstance(v, list) else None
                if ts is None or s.get("nullable") is True:
                    return None
                others = [t for t in ("null", "boolean", "string", "array", "object") if t not in ts]
                if others:
                    out.append(syn({"type": others}))
                if "number" not in ts:
                    out.append(syn({"type": "number", "not": {"type": "integer"}}) if "integer" in ts
                               else syn({"type": "number"}))
            elif k == "required" and isinstance(v, list):
                out += [syn({"type": "object", "properties": {n: False}}) for n in v if isinstance(n, str)]
            elif k == "properties" and isinstance(v, dict):
                for n, sub in v.items():
                    neg = self.negate(sub, active)
                    if neg is None:
                        return None
                    if neg:
                        out.append(syn({"type": "object", "required": [n], "properties": {n: {"anyOf": neg}}}))
            elif k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    return None
                flip = {"minimum": "exclusiveMaximum", "exclusiveMinimum": "maximum",
                        "maximum": "exclusiveMinimum", "exclusiveMaximum": "minimum"}[k]
                out.append(syn({"type": "number", flip: v}))
            elif k in ("minLength", "minItems", "minProperties") and isinstance(v, int) and not isinstance(v, bool):
                t = {"minLength": "string", "minItems": "array", "minProperties": "object"}[k]
                if v > 0:
                    out.append(syn({"type": t, "max" + k[3:]: v - 1}))
            elif k in ("maxLength", "maxItems", "maxProperties") and isinstance(v, int) and not isinstance(v, bool):
                t = {"maxLength": "string", "maxItems": "array", "maxProperties": "object"}[k]
                out.append(syn({"type": t, "min" + k[3:]: v + 1}))
            elif k == "allOf" and isinstance(v, list):
                for sub in v:
                    neg = self.negate(sub, active)
                    if neg is None:
                        return None
                    out += neg
            elif k == "anyOf" and isinstance(v, list):
                parts = []
                for sub in v:
                    neg = self.negate(sub, active)
                    if neg is None:
                        return None
                    if not neg:
                        parts = None
                        break
                    parts.append({"anyOf": neg})
                if parts is not None:
                    out.append(syn({"allOf": parts}))
            elif k == "not":
                out.append(v)
            elif k == "$ref":
                if self.draft7 and len([x for x in s if x not in ANNOTATIONS]) > 1:
                    return None
                try:
                    target = self.resolve(v, "#")[0]
                except (CompileError, _Unsupported):
                    return None
                neg = self.negate(target, active)
                if neg is None:
                    return None
                out += neg
            else:
                return None  # enum, const, pattern, format, items, ...: no negation-free form here
        return out

    def in_place(self, schema) -> set:
        """ids of `schema` and the subschemas it applies in place (allOf/anyOf/oneOf/$ref/if/
        then/else/dependentSchemas; not through `not`): whose annotations `unevaluated*` sees."""
        out, stack = set(), [schema]
        while stack:
            x = stack.pop()
            if not isinstance(x, dict) or id(x) in out:
                continue
            out.add(id(x))
            for k in ("allOf", "anyOf", "oneOf"):
                if isinstance(x.get(k), list):
                    stack += x[k]
            for k in ("if", "then", "else"):
                if k in x:
                    stack.append(x[k])
            if isinstance(x.get("dependentSchemas"), dict):
                stack += list(x["dependentSchemas"].values())
            if isinstance(x.get("$ref"), str):
                try:
                    stack.append(self.resolve(x["$ref"], "#")[0])
                except (CompileError, _Unsupported):
                    pass
        return out

    def disjoint(self, a, b) -> bool:
        """True if no value satisfies both conjunctions (a cheap structural proof; False = unknown)."""
        fa, fb = self.flatten(a), self.flatten(b)
        if fa is None or fb is None:
            return True
        ta, tb = self.types_of(fa[0]), self.types_of(fb[0])
        if not (ta & tb):
            return True
        if ta & tb != {"object"}:
            return False
        req = self.required_of(fa[0]) & self.required_of(fb[0])
        for name in req:
            va, vb = self.consts_at(fa[0], name), self.consts_at(fb[0], name)
            if va is not None and vb is not None and not any(_json_eq(x, y) for x in va for y in vb):
                return True
        return False

    def types_of(self, flat) -> set:
        types = set(TYPES)
        for s, _p, _k in flat:
            t = s.get("type")
            if isinstance(t, (str, list)):
                ts = {t} if isinstance(t, str) else set(x for x in t if isinstance(x, str))
                if "number" in ts:
                    ts.add("integer")
                if s.get("nullable") is True:
                    ts.add("null")
                types &= ts
            for k in ("const", "enum"):
                if k in s:
                    vals = [s[k]] if k == "const" else s[k] if isinstance(s[k], list) else []
                    got = {_type_of(v) for v in vals}
                    if "integer" in got:
                        got.add("number")
                    types &= got
        return types

    @staticmethod
    def required_of(flat) -> set:
        out = set()
        for s, _p, _k in flat:
            r = s.get("required")
            if isinstance(r, list):
                out |= {x for x in r if isinstance(x, str)}
        return out

    def consts_at(self, flat, name):
        """The finite set of values property `name` may take, if some schema pins it (else None)."""
        best = None
        for s, ptr, _k in flat:
            props = s.get("properties")
            if isinstance(props, dict) and name in props:
                sub = self.flatten([(props[name], _ptr(ptr, "properties", name), frozenset())])
                if sub is None:
                    return []
                for t, _tp, _tk in sub[0]:
                    vals = [t["const"]] if "const" in t else t.get("enum") if isinstance(t.get("enum"), list) else None
                    if vals is not None:
                        best = vals if best is None else [v for v in best if any(_json_eq(v, w) for w in vals)]
        return best

    # -- merged simple keywords ----------------------------------------------------------------
    def simple(self, flat, depth: int):
        types = set(TYPES)
        for s, ptr, _ in flat:
            if "type" in s:
                t = s["type"]
                ts = [t] if isinstance(t, str) else t
                if not isinstance(ts, list) or not all(isinstance(x, str) and x in TYPES for x in ts):
                    self.bad(_ptr(ptr, "type"), f"unknown type {json.dumps(t)[:60]}")
                ts = set(ts)
                if "number" in ts:
                    ts.add("integer")
                if s.get("nullable") is True:
                    ts.add("null")
                types &= ts
        enum = None
        for s, ptr, _ in flat:
            if "const" in s:
                enum = [s["const"]] if enum is None else [v for v in enum if _json_eq(v, s["const"])]
            if "enum" in s:
                vals = s["enum"]
                if not isinstance(vals, list):
                    self.bad(_ptr(ptr, "enum"), "'enum' must be an array")
                enum = list(vals) if enum is None else [v for v in enum if any(_json_eq(v, w) for w in vals)]
        if enum is not None:
            return self.finite(flat, enum, types, depth)
        alts = []
        if "null" in types:
            alts.append(g.text("null"))
        if "boolean" in types:
            alts.append(g.alt(g.text("true"), g.text("false")))
        if "integer" in types:
            alts.append(self.number(flat, integer="number" not in types))
        if "string" in types:
            alts.append(self.string(flat))
        if "array" in types:
            alts.append(self.array(flat, depth))
        if "object" in types:
            alts.append(self.obj(flat, depth))
        alts = [a for a in alts if a is not _EMPTY]
        return g.alt(*alts) if alts else _EMPTY

    def finite(self, flat, values, types, depth):
        """enum/const: the listed values that satisfy the whole conjunction."""
        out, seen = [], []
        for v in values:
            t = _type_of(v)
            if t not in types and not (t == "integer" and "number" in types):
                continue
            if any(_json_eq(v, w) for w in seen):
                continue
            seen.append(v)
            if self.valid(v, flat):
                out.append(self.literal(v, depth))
        return g.alt(*out) if out else _EMPTY

    def valid(self, v, flat) -> bool:
        import jsonschema as js

        if self._validator is None:
            cls = js.validators.validator_for(self.root if isinstance(self.root, dict) else {})
            self._validator = cls(self.root)
        parts = []
        for s, _p, skip in flat:
            d = {k: x for k, x in s.items() if k not in skip and k not in ("enum", "const", "format")}
            parts.append(d)
            if isinstance(v, str) and s.get("format") in jv.FORMATS:
                if not jv.format_dfa(s["format"]).matches(v.encode("utf-8")):
                    return False
        try:
            return self._validator.evolve(schema={"allOf": parts}).is_valid(v)
        except Exception:  # a schema jsonschema cannot evaluate: decide by lowering instead
            return True

    def literal(self, v, depth: int, rank="cur"):
        st = self.style
        rank = self.rank if rank == "cur" else rank
        if isinstance(v, dict):
            if not v:
                return st.empty("{}")
            keys = list(v)
            if rank is not None:
                keys.sort(key=lambda k: rank.order.get(k, len(rank.order)))
            parts = []
            for i, k in enumerate(keys):
                sub = None if rank is None else rank.kids.get(k) or rank.kids.get("*") or self.empty_rank
                parts.append(st.open("{", depth) if i == 0 else st.item_sep(depth))
                parts += [g.text(json.dumps(k, ensure_ascii=False)), st.key_sep(), self.literal(v[k], depth + 1, sub)]
            return g.seq(*parts, st.close("}", depth))
        if isinstance(v, list):
            if not v:
                return st.empty("[]")
            parts = []
            sub = None if rank is None else rank.kids.get("[]") or self.empty_rank
            for i, x in enumerate(v):
                parts += [st.open("[", depth) if i == 0 else st.item_sep(depth), self.literal(x, depth + 1, sub)]
            return g.seq(*parts, st.close("]", depth))
        return g.text(jv.serialize(v))

    # -- numbers -------------------------------------------------------------------------------
    def number(self, flat, integer: bool):
        lo = hi = None
        lo_x = hi_x = False
        mult = None
        for s, ptr, _ in flat:
            for kw in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
                if kw not in s:
                    continue
                v = s[kw]
                if isinstance(v, bool):  # draft 4 style flags
                    continue
                d = jv.to_decimal(v, f"'{kw}' at {ptr}")
                if kw.endswith("inimum"):
                    excl = kw == "exclusiveMinimum" or (kw == "minimum" and s.get("exclusiveMinimum") is True)
                    if lo is None or d > lo or (d == lo and excl):
                        lo, lo_x = d, excl
                else:
                    excl = kw == "exclusiveMaximum" or (kw == "maximum" and s.get("exclusiveMaximum") is True)
                    if hi is None or d < hi or (d == hi and excl):
                        hi, hi_x = d, excl
            if "multipleOf" in s:
                m = jv.to_decimal(s["multipleOf"], f"'multipleOf' at {ptr}")
                if m <= 0:
                    self.bad(_ptr(ptr, "multipleOf"), "'multipleOf' must be greater than 0")
                mult = m if mult is None else _lcm(mult, m)
        if lo is not None and hi is not None and (lo > hi or (lo == hi and (lo_x or hi_x))):
            return _EMPTY
        if lo is None and hi is None and mult is None:
            return _INTEGER if integer else jv.ANY_NUMBER
        if mult is not None and mult == mult.to_integral_value() and mult == 1:
            integer, mult = True, None
        return g.Dfa(jv.number_dfa(integer=integer, lower=lo, lower_excl=lo_x, upper=hi, upper_excl=hi_x,
                                   multiple=mult, limits=self.lim()))

    # -- strings -------------------------------------------------------------------------------
    def string(self, flat):
        lo, hi, contents = 0, None, []
        for s, ptr, _ in flat:
            if "minLength" in s:
                lo = max(lo, self.count(s, "minLength", ptr))
            if "maxLength" in s:
                m = self.count(s, "maxLength", ptr)
                hi = m if hi is None else min(hi, m)
            if "pattern" in s:
                contents.append(self.pattern(s["pattern"], _ptr(ptr, "pattern")))
            f = s.get("format")
            if isinstance(f, str) and f in jv.FORMATS:
                contents.append(jv.format_dfa(f))
            elif f in jv.UNSUPPORTED_FORMATS:
                if self.lenient:
                    warnings.warn(f"kmgrammar: format {f!r} at {ptr} is not enforced (lenient=True)", stacklevel=3)
                else:
                    self.fail(_ptr(ptr, "format"), f"format {f!r}")
        if hi is not None and lo > hi:
            return _EMPTY
        if not contents:
            return jv.string_node(lo, hi)
        dfa = contents[0]
        for d in contents[1:]:
            dfa = jv.intersection(dfa, d, self.lim())
        if lo or hi is not None:
            dfa = jv.intersection(dfa, self.dfa(jv.length_node(lo, hi)), self.lim())
        if dfa.is_empty():
            return _EMPTY
        return g.seq(g.text('"'), g.Dfa(jv.escape_dfa(dfa)), g.text('"'))

    def count(self, s, kw, ptr) -> int:
        v = s[kw]
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            self.bad(_ptr(ptr, kw), f"'{kw}' must be a non-negative integer, not {json.dumps(v)[:40]}")
        return v

    def pattern(self, pattern, ptr: str) -> ByteDFA:
        if not isinstance(pattern, str):
            self.bad(ptr, "'pattern' must be a string")
        try:
            return _pattern_dfa(pattern, self.lim())
        except (GrammarSyntaxError, UnsupportedFeatureError) as e:
            self.fail(ptr, f"pattern {pattern!r}: {e}")

    # -- arrays --------------------------------------------------------------------------------
    def array(self, flat, depth: int):
        prefixes, tails, contains = [], [], []
        lo, hi, unique = 0, None, None
        for s, ptr, _ in flat:
            items = s.get("items")
            if isinstance(items, list) or (self.draft7 and "items" in s):
                pre = items if isinstance(items, list) else []
                tail = s.get("additionalItems", True) if isinstance(items, list) else items
                tail_ptr = _ptr(ptr, "additionalItems" if isinstance(items, list) else "items")
                pre_ptr = _ptr(ptr, "items")
            else:
                pre = s.get("prefixItems", [])
                tail, tail_ptr, pre_ptr = s.get("items", True), _ptr(ptr, "items"), _ptr(ptr, "prefixItems")
            if not isinstance(pre, list):
                self.bad(pre_ptr, "'prefixItems' must be an array")
            prefixes.append([(x, _ptr(pre_ptr, i), frozenset()) for i, x in enumerate(pre)])
            tails.append((tail, tail_ptr, frozenset()))
            if "minItems" in s:
                lo = max(lo, self.count(s, "minItems", ptr))
            if "maxItems" in s:
                m = self.count(s, "maxItems", ptr)
                hi = m if hi is None else min(hi, m)
            if "contains" in s:
                cmin = self.count(s, "minContains", ptr) if "minContains" in s and not self.draft7 else 1
                cmax = self.count(s, "maxContains", ptr) if "maxContains" in s and not self.draft7 else None
                contains.append(((s["contains"], _ptr(ptr, "contains"), frozenset()), cmin, cmax, ptr))
            if s.get("uniqueItems") is True:
                unique = _ptr(ptr, "uniqueItems")
        k = max((len(p) for p in prefixes), default=0)
        present = {id(x) for x, _q, _k in flat}
        for x, q, _k in flat:
            if "unevaluatedItems" not in x or self.draft7:
                continue
            reach = self.in_place(x) & present
            ku, tail_seen = 0, False
            for y, _q2, _k2 in flat:
                if id(y) in reach:
                    if "contains" in y:
                        self.fail(_ptr(q, "unevaluatedItems"), "unevaluatedItems next to contains")
                    it = y.get("items")
                    if isinstance(it, list) or self.draft7:
                        ku = max(ku, len(it) if isinstance(it, list) else 0)
                        tail_seen |= "additionalItems" in y and isinstance(it, list)
                    else:
                        ku = max(ku, len(y.get("prefixItems", []) or []))
                        tail_seen |= "items" in y
            if not tail_seen:
                prefixes.append([(True, q, frozenset())] * ku)
                tails.append((x["unevaluatedItems"], _ptr(q, "unevaluatedItems"), frozenset()))
                k = max(k, ku)
        for p, (tail, _tp, _) in zip(prefixes, tails):
            if tail is False:
                hi = len(p) if hi is None else min(hi, len(p))
        if hi is not None and lo > hi:
            return _EMPTY
        if unique is not None and (hi is None or hi > 1):
            if self.lenient:
                warnings.warn(f"kmgrammar: uniqueItems at {unique} is not enforced (lenient=True)", stacklevel=3)
            else:
                self.fail(unique, "keyword 'uniqueItems' (item uniqueness is not regular)")
        if len(contains) > 1:
            self.fail(contains[1][3], "several 'contains' on one array (after allOf merging)")
        st = self.style

        def slot_conj(i: int):
            conj = []
            for p, t in zip(prefixes, tails):
                if i < len(p):
                    conj.append(p[i])
                elif t[0] is not True:
                    conj.append(t)
            return conj

        def slot(i: int):
            conj = slot_conj(i)
            if not any(x[0] is not True and x[0] != {} for x in conj):
                return self.any_value(flat[0][1] if flat else self.cur_ptr, depth + 1, "array items")
            return self.lang_at(conj, depth + 1, "[]")

        empty = st.empty("[]") if lo == 0 else None
        if hi == 0:
            return empty or _EMPTY
        sep = st.item_sep(depth)
        if contains:
            return self.array_contains(slot, slot_conj, k, lo, hi, contains[0], depth, empty)
        elems = [slot(i) for i in range(min(k, hi if hi is not None else k))]
        tail_n = None if hi is not None and hi <= k else slot(k)
        if tail_n is not None and k == 0:
            rest = g.Repeat(g.seq(sep, tail_n), max(0, lo - 1), None if hi is None else hi - 1)
            body = g.seq(tail_n, rest)
        else:
            r = g.EMPTY
            if tail_n is not None:
                r = g.Repeat(g.seq(sep, tail_n), max(0, lo - k), None if hi is None else hi - k)
            for i in range(len(elems) - 1, 0, -1):
                step = g.seq(sep, elems[i], r)
                r = step if i < lo else g.Repeat(step, 0, 1)
            body = g.seq(elems[0], r)
        nonempty = g.seq(st.open("[", depth), body, st.close("]", depth))
        return g.alt(empty, nonempty) if empty is not None else nonempty

    def array_contains(self, slot, slot_conj, k, lo, hi, contains, depth, empty):
        citem, cmin, cmax, _ptr_ = contains
        if cmax is not None and cmin > cmax:
            return _EMPTY
        st = self.style
        ccap = cmin if cmax is None else cmax + 1
        pcap = max(k, lo, 1) if hi is None else hi
        memo: dict = {}

        def parts(i):
            j = min(i, k)
            if j not in memo:
                conj = slot_conj(j)
                yes = self.lang_at(conj + [citem], depth + 1, "[]")
                memo[j] = (yes, self.diff(slot(j), yes))
            return memo[j]

        nodes = {}

        def nid(i, c):
            return nodes.setdefault((i, c), len(nodes))

        edges = []
        finals = []
        start = nid(0, 0)
        todo = [(0, 0)]
        done = set()
        end = None
        while todo:
            i, c = todo.pop()
            if (i, c) in done:
                continue
            done.add((i, c))
            ok = i >= lo and c >= cmin and (cmax is None or c <= cmax)
            if ok:
                if end is None:
                    end = nid(-1, -1)
                edges.append((nid(i, c), end, st.close("]", depth) if i else st.empty("[]")))
            if hi is not None and i >= hi:
                continue
            pre = st.open("[", depth) if i == 0 else st.item_sep(depth)
            yes, no = parts(i)
            ni = i + 1 if hi is not None or i < pcap else i
            for lab, c2 in ((yes, min(c + 1, ccap)), (no, c)):
                if lab is _EMPTY or (cmax is not None and c2 > cmax):
                    continue
                edges.append((nid(i, c), nid(ni, c2), g.seq(pre, lab)))
                todo.append((ni, c2))
        if end is None:
            return _EMPTY
        finals.append(end)
        return jv.Graph(len(nodes), start, tuple(finals), tuple(edges))

    # -- objects -------------------------------------------------------------------------------
    def obj(self, flat, depth: int):
        st = self.style
        conjs = []  # per schema: (props, patterns, additional, ptr)
        pat_src: dict = {}
        required, names_order = [], []
        lo, hi = 0, None
        pnames = []
        for s, ptr, _ in flat:
            props = s.get("properties", {})
            if not isinstance(props, dict):
                self.bad(_ptr(ptr, "properties"), "'properties' must be an object")
            pats = s.get("patternProperties", {})
            if not isinstance(pats, dict):
                self.bad(_ptr(ptr, "patternProperties"), "'patternProperties' must be an object")
            add = s.get("additionalProperties", None)
            conjs.append((props, pats, add, ptr))
            for n in props:
                if n not in names_order:
                    names_order.append(n)
            req = s.get("required", [])
            if not isinstance(req, list) or not all(isinstance(x, str) for x in req):
                self.bad(_ptr(ptr, "required"), "'required' must be an array of strings")
            required += [x for x in req if x not in required]
            if "minProperties" in s:
                lo = max(lo, self.count(s, "minProperties", ptr))
            if "maxProperties" in s:
                m = self.count(s, "maxProperties", ptr)
                hi = m if hi is None else min(hi, m)
            if "propertyNames" in s:
                pnames.append((s["propertyNames"], _ptr(ptr, "propertyNames"), frozenset()))
        # unevaluatedProperties in schema U: keys that no properties/patternProperties/
        # additionalProperties of U or of its in-place subschemas present in this conjunction names
        # (allOf, $ref, the anyOf/oneOf branch being lowered, if/then/else; never through `not`).
        # Other anyOf branches that would also match are not consulted: a false negative, never a
        # false positive.
        present = {id(x) for x, _q, _k in flat}
        for (x, q, _k) in list(flat):
            if "unevaluatedProperties" not in x or self.draft7:
                continue
            reach = self.in_place(x) & present
            names, pats, opened = set(), set(), False
            for y, _q2, _k2 in flat:
                if id(y) in reach:
                    names |= set(y.get("properties", {}) or {})
                    pats |= set(y.get("patternProperties", {}) or {})
                    opened |= "additionalProperties" in y and y["additionalProperties"] is not False
                    opened |= y is not x and "unevaluatedProperties" in y and y["unevaluatedProperties"] is not False
            if not opened:
                conjs.append(({n: True for n in names}, {pt_: True for pt_ in pats},
                              x["unevaluatedProperties"], _ptr(q, "unevaluatedProperties")))
                for pt_ in pats:
                    if pt_ not in pat_src:
                        pat_src[pt_] = _ptr(q, "patternProperties", pt_)
        if self.strict and all(a is None and not p for _pr, p, a, _ in conjs):
            conjs = [(pr, p, False, q) for pr, p, a, q in conjs]
        for n in required:
            if n not in names_order:
                names_order.append(n)
        extras_allowed = not any(a is False and not p for _pr, p, a, _ in conjs)
        if self.rank is not None:
            order = self.rank.order
            if extras_allowed:
                for n in order:
                    if n not in names_order:
                        names_order.append(n)
            names_order.sort(key=lambda n: order.get(n, len(order)))
        if hi is not None and lo > hi:
            return _EMPTY
        pat_dfas = {}
        for props, pats, add, ptr in conjs:
            for pat in pats:
                if pat not in pat_dfas:
                    pat_dfas[pat] = self.pattern(pat, pat_src.get(pat) or _ptr(ptr, "patternProperties", pat))
        pn_dfa = None
        if pnames:
            old, self.rank = self.rank, None
            try:
                pn_node = self.lang(pnames + [(self.syn({"type": "string"}), "#", frozenset())], 0)
            finally:
                self.rank = old
            pn_dfa = self.dfa(pn_node)

        def value_conj(name):
            """Schemas a value under key `name` must satisfy, or None if the key is forbidden."""
            conj = []
            for props, pats, add, ptr in conjs:
                if name in props:
                    conj.append((props[name], _ptr(ptr, "properties", name), frozenset()))
                matched = [p for p in pats if pat_dfas[p].matches(name.encode("utf-8"))]
                for p in matched:
                    conj.append((pats[p], _ptr(ptr, "patternProperties", p), frozenset()))
                if not matched and name not in props and add is not None:
                    if add is False:
                        return None
                    conj.append((add, _ptr(ptr, "additionalProperties"), frozenset()))
            return conj

        members = []  # (name, value node or None, required)
        for n in names_order:
            conj = value_conj(n)
            keytext = json.dumps(n, ensure_ascii=False)
            ok = conj is not None and (pn_dfa is None or pn_dfa.matches(keytext.encode("utf-8")))
            val = None
            if ok:
                if not any(x[0] is not True and x[0] != {} for x in conj):
                    where = conj[0][1] if conj else flat[0][1] if flat else self.cur_ptr
                    val = self.any_value(where, depth + 1, f"the value of property {n!r}")
                else:
                    val = self.lang_at(conj, depth + 1, n)
                if val is _EMPTY:
                    val = None
            if val is None and n in required:
                return _EMPTY
            members.append((keytext, val, n in required))
        extra = self.extras(conjs, pat_dfas, pn_dfa, names_order, depth, flat) if extras_allowed else []
        return self.object_graph(members, extra, lo, hi, depth)

    def extras(self, conjs, pat_dfas, pn_dfa, names, depth, flat):
        """[(key node, value node)] for keys not declared: one entry per region of the patterns."""
        pats = list(pat_dfas)
        if len(pats) > 6:
            self.fail(flat[0][1] if flat else self.cur_ptr, f"{len(pats)} patternProperties on one object (at most 6)")
        lim = self.lim
        any_content = self.dfa(jv.length_node(0, None))
        out = []
        declared = None
        if names:
            declared = jv.build(g.alt(*[g.text(json.dumps(n, ensure_ascii=False)) for n in names]), lim())
        for mask in range(1 << len(pats)):
            content = any_content
            for i, p in enumerate(pats):
                d = pat_dfas[p]
                content = jv.intersection(content, d, lim()) if mask >> i & 1 else jv.difference(content, d, lim())
                if content.is_empty():
                    break
            if content.is_empty():
                continue
            conj = []
            forbidden = False
            for props, cpats, add, ptr in conjs:
                matched = [p for i, p in enumerate(pats) if mask >> i & 1 and p in cpats]
                for p in matched:
                    conj.append((cpats[p], _ptr(ptr, "patternProperties", p), frozenset()))
                if not matched and add is not None:
                    if add is False:
                        forbidden = True
                        break
                    conj.append((add, _ptr(ptr, "additionalProperties"), frozenset()))
            if forbidden:
                continue
            key = jv.build(g.seq(g.text('"'), g.Dfa(jv.escape_dfa(content)), g.text('"')), lim())
            if pn_dfa is not None:
                key = jv.intersection(key, pn_dfa, lim())
            if declared is not None:
                key = jv.difference(key, declared, lim())
            if key.is_empty():
                continue
            if not any(x[0] is not True and x[0] != {} for x in conj):
                where = conj[0][1] if conj else flat[0][1] if flat else self.cur_ptr
                val = self.any_value(where, depth + 1, "extra properties (additionalProperties not false)")
            else:
                val = self.lang_at(conj, depth + 1, "*")
            if val is not _EMPTY:
                out.append((g.Dfa(key), val))
        return out

    def object_graph(self, members, extra, lo, hi, depth):
        st = self.style
        n = len(members)
        counting = lo > 0 or hi is not None
        cap = (hi + 1 if hi is not None else lo) if counting else 1
        nodes: dict = {}

        def nid(*key):
            return nodes.setdefault(key, len(nodes))

        edges = []
        start = nid(0, 0)
        end = nid("end")
        ksep = st.key_sep()
        extra_member = None
        if extra:
            extra_member = g.alt(*[g.seq(k, ksep, v) for k, v in extra])
        for i in range(n + 1):
            for c in range(cap + 1 if counting else 2):
                if hi is not None and c > hi:
                    continue
                u = nid(i, c)
                pre = st.open("{", depth) if c == 0 else st.item_sep(depth)
                c2 = min(c + 1, cap) if counting else 1
                if i < n:
                    keytext, val, req = members[i]
                    if val is not None and (hi is None or c + 1 <= hi):
                        if counting:
                            edges.append((u, nid(i + 1, c2), g.seq(pre, g.text(keytext), ksep, val)))
                        else:
                            mid = nid("m", i)
                            edges.append((u, mid, pre))
                            edges.append((mid, nid(i + 1, 1), g.seq(g.text(keytext), ksep, val)))
                    if not req:
                        edges.append((u, nid(i + 1, c), None))
                else:
                    if extra_member is not None and (hi is None or c + 1 <= hi):
                        edges.append((u, nid(n, c2), g.seq(pre, extra_member)))
                    if c >= lo:
                        edges.append((u, end, st.empty("{}") if c == 0 else st.close("}", depth)))
        return jv.Graph(len(nodes), start, (end,), tuple(edges))

    # -- any value -----------------------------------------------------------------------------
    def any_value(self, ptr: str, depth: int, what: str = "values"):
        if self.cfg_ok():
            return self.json_value_rule()
        if not self.lenient:
            self.fail(ptr, f"{what} may be any JSON value (unbounded nesting is not regular: needs the "
                           "context-free grammar engine)")
        warnings.warn(f"kmgrammar: any JSON value at {ptr} is limited to nesting depth {LENIENT_ANY_DEPTH} "
                      "(lenient=True)", stacklevel=3)
        return self.bounded_any(depth, LENIENT_ANY_DEPTH)

    def json_value_rule(self):
        """Nonterminal `json_value`: any JSON value in the output style (canonical scalars)."""
        if "json_value" not in self.rules:
            st = self.style
            v = _Ref("json_value")
            sep = st.item_sep(0)
            arr = g.alt(st.empty("[]"), g.seq(st.open("[", 0), v, g.Repeat(g.seq(sep, v), 0, None), st.close("]", 0)))
            mem = g.seq(jv.string_node(), st.key_sep(), v)
            obj = g.alt(st.empty("{}"), g.seq(st.open("{", 0), mem, g.Repeat(g.seq(sep, mem), 0, None),
                                                st.close("}", 0)))
            scalars = g.Dfa(jv.build(g.alt(g.text("null"), g.text("true"), g.text("false"), jv.ANY_NUMBER,
                                           jv.string_node()), self.lim()))
            self.rules["json_value"] = g.alt(scalars, arr, obj)
        return _Ref("json_value")

    def bounded_any(self, depth: int, levels: int):
        key = ("any", depth if self.style.depth_matters() else 0, levels)
        if key in self.memo:
            return self.memo[key]
        st = self.style
        scalars = [g.text("null"), g.text("true"), g.text("false"), jv.ANY_NUMBER, jv.string_node()]
        if levels > 0:
            inner = self.bounded_any(depth + 1, levels - 1)
            sep = st.item_sep(depth)
            arr = g.alt(st.empty("[]"), g.seq(st.open("[", depth), inner, g.Repeat(g.seq(sep, inner), 0, None),
                                                st.close("]", depth)))
            mem = g.seq(jv.string_node(), st.key_sep(), inner)
            obj = g.alt(st.empty("{}"), g.seq(st.open("{", depth), mem, g.Repeat(g.seq(sep, mem), 0, None),
                                                st.close("}", depth)))
            scalars += [arr, obj]
        node = g.Dfa(self.dfa(g.alt(*scalars)))
        self.memo[key] = node
        return node


from .cfg import Ref as _Ref  # noqa: E402


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
            got = any(lab is not None and _has_ref(lab) for _u, _v, lab in node.edges)
        else:
            got = any(_has_ref(x) for x in node.items)
        object.__setattr__(node, "_has_ref", got)
    return got


def _to_cfg_node(node, rules: dict, memo: dict, limits: Limits):
    """Replace `Graph`s: regular ones by their DFA, the others by one nonterminal per graph node."""
    t = type(node)
    if t in (g.Seq, g.Alt):
        return t(tuple(_to_cfg_node(x, rules, memo, limits) for x in node.items))
    if t is g.Repeat:
        return g.Repeat(_to_cfg_node(node.item, rules, memo, limits), node.min, node.max)
    if t is not jv.Graph:
        return node
    got = memo.get(id(node))
    if got is not None:
        return got
    if not _has_ref(node):
        got = memo[id(node)] = g.Dfa(jv.build(node, limits))
        return got
    gid = len(memo)
    memo[id(node)] = got = _Ref(f"g{gid}_{node.start}")
    out: dict = {u: [] for u in range(node.n)}
    loops: dict = {u: [] for u in range(node.n)}
    for u, v, lab in node.edges:
        lab = None if lab is None else _to_cfg_node(lab, rules, memo, limits)
        (loops[u] if u == v else out[u]).append((v, lab))
    for u in range(node.n):
        alts = [g.seq(lab, _Ref(f"g{gid}_{v}")) if lab is not None else _Ref(f"g{gid}_{v}") for v, lab in out[u]]
        if u in node.finals:
            alts.append(g.EMPTY)
        body = g.alt(*alts) if alts else _EMPTY
        if loops[u]:  # self-loops as a repeat, not right recursion (no stack per member)
            labs = [lab if lab is not None else g.EMPTY for _v, lab in loops[u]]
            body = g.seq(g.Repeat(g.alt(*labs), 0, None), body)
        rules[f"g{gid}_{u}"] = body
    return got


_INTEGER = g.Dfa(jv.build(g.alt(g.text("0"), g.seq(g.Repeat(g.text("-"), 0, 1), g.ByteSet(((49, 57),)),
                                                  g.Repeat(g.ByteSet(((48, 57),)), 0, None))), Limits()))


def _lcm(a: Decimal, b: Decimal) -> Decimal:
    k = max(-a.normalize().as_tuple().exponent, -b.normalize().as_tuple().exponent, 0)
    sa, sb = int(a.scaleb(k)), int(b.scaleb(k))
    return Decimal(sa * sb // math.gcd(sa, sb)).scaleb(-k)


# -- ECMA patterns with search semantics -------------------------------------------------------

_NAMED_GROUP = re.compile(r"\(\?<(?=[A-Za-z_])")
_PATTERN_CACHE: dict = {}


def _pattern_dfa(pattern: str, limits: Limits) -> ByteDFA:
    """Content DFA of the strings in which `pattern` finds a match (ECMA-262, unanchored)."""
    got = _PATTERN_CACHE.get(pattern)
    if got is not None:
        return got
    from .regex import C, _Lowerer, sre_parse

    src = _NAMED_GROUP.sub("(?P<", pattern)
    try:
        parsed = sre_parse.parse(src, 0)
    except re.error as e:
        raise GrammarSyntaxError(f"invalid regex: {e.msg}") from None
    except (RecursionError, OverflowError):
        raise GrammarSyntaxError("regex nests too deeply") from None
    flags = parsed.state.flags
    items = list(parsed)
    alts = [items]
    if len(items) == 1 and items[0][0] is C.BRANCH:
        alts = [list(a) for a in items[0][1][1]]
    low = _Lowerer(src, "ecma")
    anything = jv.length_node(0, None)
    nodes = []
    for a in alts:
        start, end = _anchored(a, True), _anchored(a, False)
        if start is None or end is None:
            raise UnsupportedFeatureError("anchors on some alternatives only")
        body = low.seq(a, flags, True, True)
        nodes.append(g.seq(*([] if start else [anything]), body, *([] if end else [anything])))
    try:
        dfa = jv.build(g.alt(*nodes), limits)
    except RecursionError:
        raise GrammarSyntaxError("regex nests too deeply") from None
    if len(_PATTERN_CACHE) < 4096:
        _PATTERN_CACHE[pattern] = dfa
    return dfa


def _anchored(items, start: bool):
    """True/False if every path begins (ends) with ^ ($); None if only some do."""
    from .regex import C, _is_anchor

    if not items:
        return False
    it = items[0] if start else items[-1]
    op, av = it
    if op is C.AT:
        return _is_anchor(it, start=start) or False
    if op is C.SUBPATTERN:
        return _anchored(list(av[3]), start)
    if op is C.BRANCH:
        got = {_anchored(list(a), start) for a in av[1]}
        return got.pop() if len(got) == 1 else None
    return False


# -- entry point -------------------------------------------------------------------------------

def make_style(whitespace: str, separators, indent) -> jv.Style:
    if indent is not None:
        if isinstance(indent, bool) or not isinstance(indent, int) or indent < 0:
            raise CompileError(f"indent must be a non-negative integer, not {indent!r}")
        return jv.Style("indent", ",", ": ", indent)
    if whitespace == "flexible":
        if separators is not None:
            raise CompileError("separators cannot be combined with whitespace='flexible'")
        return jv.Style("flexible")
    if whitespace != "compact":
        raise CompileError(f"whitespace must be 'compact' or 'flexible', not {whitespace!r}")
    if separators is not None:
        if (not isinstance(separators, (tuple, list)) or len(separators) != 2
                or not all(isinstance(x, str) for x in separators)):
            raise CompileError("separators must be a pair of strings (item, key)")
        for sep, ch in zip(separators, ",:"):
            if sep.strip(" \t\n\r") != ch:
                raise CompileError(f"separator {sep!r} must be {ch!r} with optional JSON whitespace")
        return jv.Style("compact", separators[0], separators[1])
    return jv.Style("compact")


def schema_to_dfa(schema, **opts) -> ByteDFA:
    """The byte DFA of every serialized JSON document that validates against `schema`
    (UnsupportedFeatureError if the language is not regular; see `schema_to_grammar`)."""
    got = schema_to_grammar(schema, **opts)
    if not isinstance(got, ByteDFA):
        names = sorted(n for n in got.rules if n != "start")[:5]
        raise UnsupportedFeatureError("the schema's language is not regular (any JSON value or recursion: "
                                      f"nonterminals {', '.join(names)}); compile it with compile_json_schema")
    return got


def schema_to_grammar(schema, *, whitespace="compact", separators=None, indent=None, strict=False,
                      lenient=False, limits: Limits | None = None):
    """A `ByteDFA` when the schema's language is regular, else a `cfg.Cfg` (start rule "start").

    Raises UnsupportedFeatureError (all unsupported keywords, sorted by JSON pointer),
    CompileError (invalid schema, empty language), CompileLimitError."""
    schema = load_schema(schema)
    style = make_style(whitespace, separators, indent)
    low = Lowerer(schema, style=style, strict=strict, lenient=lenient, limits=limits or Limits())
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 20_000))
    cfg = None
    try:
        node = low.lang([(schema, "#", frozenset())], 0)
        if low.errors:
            dfa = None
        elif low.rules or _has_ref(node):
            from .cfg import Cfg

            rules, memo = {}, {}
            rules["start"] = _to_cfg_node(style.outer(node), rules, memo, low.lim())
            for name, body in list(low.rules.items()):
                rules[name] = _to_cfg_node(body, rules, memo, low.lim())
            cfg = Cfg(rules=rules, start="start", origin="json_schema")
            dfa = None
        else:
            dfa = low.dfa(style.outer(node))
    except _Unsupported:
        dfa = None
    except RecursionError:
        raise CompileLimitError("schema nests too deeply to compile") from None
    finally:
        sys.setrecursionlimit(old)
    if low.errors:
        listed = "; ".join(f"{p}: {w}" for p, w in sorted(low.errors.items()))
        msg = f"unsupported JSON Schema construct(s): {listed}"
        if lenient:
            raise UnsupportedFeatureError(msg)
        raise UnsupportedFeatureError(msg + " (lenient=True ignores unsupported keywords)")
    if cfg is not None:
        return cfg
    if dfa.is_empty():
        raise CompileError("the schema accepts no JSON value at all (empty language)")
    return dfa
