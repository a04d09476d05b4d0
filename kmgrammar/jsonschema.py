"""JSON Schema -> regular IR (or a context-free `cfg.Cfg`) -> automata: the `compile_json_schema` frontend.

A schema is lowered as a *conjunction*: the list of schema objects that all apply to one value
(`allOf` members and `$ref` targets are flattened into it). Keywords that merge are merged per
type (bounds, lengths, properties per key, items per position); `anyOf` is distributed over the
rest of the conjunction; `oneOf`, `not`, `if`/`then`/`else` and `dependent*` become unions and
automaton differences of such conjunctions (or, when a side is not regular, are lowered once per
JSON type the value may have, where scalar parts are regular again, and rewritten without
negation: `type_split`, `negate`). Every value has one spelling per whitespace style (`jsonschema_values`), so
the differences are exact. Objects are `Graph`s over "which declared property comes next", so n
optional properties cost O(n) states. When nothing needs nesting the result is one byte DFA
(O(1) masks); values of unbounded nesting (`{}`, `additionalProperties` left open, recursive
`$ref`) become nonterminals (`json_value`, one rule per recursive subschema) and the schema
compiles through the context-free engine.

Supported keywords: type (lists), enum, const, properties, required, additionalProperties,
patternProperties, propertyNames, min/maxProperties, items, prefixItems, additionalItems (draft
7), min/maxItems, contains/min/maxContains, anyOf, oneOf, allOf, not, if/then/else, $ref/$defs/
definitions/$anchor/$id (local), min/maxLength, pattern (ECMA-262 via Python's parser, search
semantics: `.*` added on each side an alternative does not anchor; ^/$ elsewhere through marker
bytes, `_marked_anchor_dfa`), format (see
`jsonschema_values.FORMATS`), minimum/maximum/exclusive* (draft 4 booleans too), multipleOf,
nullable, dependentRequired/dependentSchemas/dependencies, unevaluatedProperties/Items (scoped to
in-place subschemas), uniqueItems (when at most one item is possible, or when the items take at
most `jsonschema_containers.UNIQUE_MAX_VALUES` scalar values in all: enum, const, boolean, null).
Annotations and unknown keywords are ignored, as the spec says; so are the keywords a declared
`$schema` draft (4, 6, 7, 2019-09) does not have (`jsonschema_drafts`, warned).

Departures (documented, tested):
- the serialization of `jsonschema_values` (canonical numbers without exponent, json.dumps escapes);
- key order: declared properties in schema order (order of first appearance, a schema's own
  properties first, then its $ref target's and allOf members', each expanded in place, depth
  first), then `required`-only names, then any other keys; inside `oneOf`/`not`/`if`
  differences, per JSON path by first appearance in that subschema. property_order="any" accepts
  declared properties (and object enum/const values) in every order instead, extra keys anywhere
  (2^n automaton nodes for n declared properties, each at most once). Past 10 of them, for a
  regular object past ~30k estimated states, or for a context-free one past 448 member calls
  (n * 2^(n-1)) or 2,048 in the whole schema, where that is exact, only the required ones are
  tracked (2^r nodes, a limit error past 10 required) and a declared key may repeat as an
  extra key may: a parser keeps the last copy, valid as every copy is; a minProperties the
  required keys do not ensure, or such an object inside not/oneOf/if/maxContains differences,
  is a limit error (`jsonschema_containers.ANY_ORDER_*`);
- extra keys (additionalProperties/patternProperties) are not checked for duplicates; where a
  repeated key would let an invalid document through, the schema is UnsupportedFeatureError: a
  minProperties that repeats could make up (at least 2 more than the required keys), and
  not/oneOf/if/maxContains subtracting a schema that constrains undeclared keys
  (additionalProperties/patternProperties/unevaluatedProperties schemas, maxProperties);
- `format` is asserted for the formats in `jsonschema_values.FORMATS` (2020-12 makes it an
  annotation by default); standard formats not listed there are UnsupportedFeatureError, others
  (int32, ...) annotations; hostname rejects A-labels ("xn--") and counts no total length past
  the subset it accepts; time/date-time leap seconds only with whole-hour offsets (email's domain
  is a hostname); duration designators in upper case only (ABNF reads "p1d" as valid too); dates
  from year 0001 (RFC 3339 syntax allows 0000, Python's datetime and so the `jsonschema`
  package do not). On a
  side that is subtracted (not, oneOf's overlaps, if's condition on the else side, maxContains'
  non-matching items) these formats are read as supersets of the valid strings
  (`jsonschema_values.FORMATS_UPPER`), so a difference never lets a valid string through;
- unevaluatedProperties/Items next to an anyOf of more than 5 branches see one branch at a time
  (false negatives when several branches match and only together evaluate every key or item;
  on a subtracted side that would be a false positive: UnsupportedFeatureError);
- `nullable: true` (OpenAPI 3.0) admits null besides the listed types; JSON Schema itself
  ignores the keyword;
- enum/const values that are arrays or objects are checked against the rest of their
  conjunction by the `jsonschema` package (with kmgrammar's formats) where it reads the schema as
  kmgrammar does (`Lowerer.read_alike`: patterns in a syntax Python's `re` and ECMA-262 share, on
  printable ASCII); elsewhere, or without that package, they are left out (a false negative,
  never a false positive);
- indent=N with values of unbounded nesting is UnsupportedFeatureError (lenient=True: nesting
  bounded by `LENIENT_ANY_DEPTH`, warned).
Unsupported (UnsupportedFeatureError naming each keyword and JSON pointer): $dynamicRef,
$recursiveRef, remote $ref, a `$schema` other than the json-schema.org drafts (a custom meta-schema
may change the vocabulary), uniqueItems over other items, several `contains` on one array,
`not`/`oneOf`/`if`/`contains` whose operands are not regular and have no negation-free form
(items, contains, additionalProperties, patternProperties, propertyNames, array or object
enum/const values inside the negated side of an array/object value), regex constructs
(lookaround, backreferences, \\p{...}, ^/$ with the multiline flag). Draft 4's `id` is read as
`$id` (a plain-name fragment `"id": "#x"` as an anchor).
"""

from __future__ import annotations

import json
import math
import re
import sys
import warnings
from contextlib import contextmanager
from decimal import Decimal
from functools import lru_cache
from urllib.parse import unquote

import numpy as np

from . import clock
from . import grammar as g
from . import jsonschema_values as jv
from .automaton import ByteDFA, Limits
from .cfg import Ref as _Ref
from .errors import CompileError, CompileLimitError, GrammarSyntaxError, UnsupportedFeatureError
from .jsonschema_base import (ANNOTATIONS, LENIENT_ANY_DEPTH, MAX_LOWERINGS, SUPPORTED, TYPES, UNSUPPORTED,  # noqa: F401
                              _EMPTY, _SCHEMA_LISTS, _SCHEMA_MAPS, _SCHEMA_ONE, _Unsupported, _has_ref, _json_eq, _json_key,
                              _ptr, _to_cfg_node, _type_of, load_schema)
from .jsonschema_containers import ContainerMixin
from .jsonschema_drafts import for_declared_draft
from .jsonschema_logic import LogicMixin, _Rank

# $schema values naming the json-schema.org drafts (the only vocabularies known here)
_KNOWN_META = re.compile(r"https?://json-schema\.org/(?:draft-0[3-7]/schema|draft/20(?:19-09|20-12)/schema|schema)#?")


class Lowerer(LogicMixin, ContainerMixin):
    """One compile: the root schema, options, memo tables, collected errors."""

    def __init__(self, root, *, style: jv.Style, strict: bool, lenient: bool, limits: Limits,
                 property_order: str = "schema"):
        self.root = root
        self.property_order = property_order
        self.style = style
        self.strict = strict
        self.lenient = lenient
        self.limits = limits
        self.deadline = clock.now() + limits.time_limit
        self.draft7 = isinstance(root, dict) and "draft-0" in str(root.get("$schema", ""))
        # draft 4 (and 3) spell $id as "id"; "id": "#name" there is what $anchor is in 2020-12
        self.draft4 = isinstance(root, dict) and any(f"draft-0{d}/" in str(root.get("$schema", "")) for d in "34")
        self.errors: dict = {}
        meta = root.get("$schema") if isinstance(root, dict) else None
        if meta is not None and not _KNOWN_META.fullmatch(str(meta)):
            # a custom meta-schema may switch vocabularies (keywords) on or off: unknowable here
            what = f"meta-schema {meta!r} (only the json-schema.org drafts are known)"
            if lenient:
                warnings.warn(f"kmgrammar: $schema {what} is read as draft 2020-12 (lenient=True)", stacklevel=4)
            else:
                self.errors["#/$schema"] = what
        self.memo: dict = {}
        self.uses: dict = {}
        # Some languages leave valid values out (jv.FORMATS_UPPER). A side that is subtracted
        # (`lowered_subtracted`) uses supersets there instead, or the difference would let those
        # values through: `upper` is the current side, `approx_keys` the lowerings that depend on it.
        self.upper = False
        self.approx_keys: set = set()
        self._approx: list = []
        self.active: list = []
        self.rank = None
        self.rules: dict = {}  # nonterminal -> node (non-regular parts: any value, recursion)
        self.calls: set = set()  # rules kept as calls however small (`Cfg.calls`)
        self.any_order_calls = 0  # member calls of context-free objects in any order so far
        self.too_big_for_dfa = False  # an object's members were made rules for size alone
        self.inprogress: dict = {}
        self.cur_ptr = "#"
        self.empty_rank = _Rank()
        self.synthetic: list = []
        self.lowerings = 0
        self.ids = self._collect_ids(root)
        self._validator = None

    # -- plumbing ------------------------------------------------------------------------------
    def lim(self) -> Limits:
        left = self.deadline - clock.now()
        if left <= 0:
            raise CompileLimitError.time(self.limits.time_limit)
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
            if sid is None and self.draft4 and isinstance(s.get("id"), str):
                sid = s["id"]
                if sid.startswith("#") and len(sid) > 1:
                    out.setdefault(sid, (s, p))  # a plain-name fragment: no new base URI
                    sid = None
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
        if not base and self.draft4:
            base = self.root.get("id", "")
        base = base if isinstance(base, str) else ""
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
            kids = []  # in place: expanded before the schema's siblings (depth first, document order)
            if "$ref" in s and "$ref" not in skip:
                target, tptr = self.resolve(s["$ref"], ptr)
                refs.append(id(target))
                kids.append((target, tptr, frozenset()))
                if self.draft7:
                    stack[0:0] = kids
                    continue  # draft 7: siblings of $ref are ignored
            if "allOf" in s and "allOf" not in skip:
                subs = s["allOf"]
                if not isinstance(subs, list) or not subs:
                    self.bad(_ptr(ptr, "allOf"), "'allOf' must be a non-empty array")
                for i, sub in enumerate(subs):
                    kids.append((sub, _ptr(ptr, "allOf", i), frozenset()))
            stack[0:0] = kids
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
        base = (tuple((id(s), skip) for s, _p, skip in items), depth if self.style.depth_matters() else 0,
                id(self.rank) if self.rank is not None else None)
        approx = base in self.approx_keys
        key = (base, self.upper) if approx else base
        got = self.memo.get(key)
        if got is not None:
            if approx:
                self.approximated()
            n = self.uses[key] = self.uses.get(key, 0) + 1
            if n == 1 and type(got) not in (g.Dfa, g.Bytes, g.CharSet, _Ref) and got is not _EMPTY:
                if _has_ref(got):  # shared and not regular: one nonterminal
                    name = f"s{len(self.rules)}"
                    self.rules[name] = got
                    got = self.memo[key] = _Ref(name)
                else:  # shared: determinise once, embed
                    got = self.memo[key] = g.Dfa(self.dfa(got))
            return got
        ent = self.inprogress.get((base, self.upper))
        if ent is not None:  # recursion: the value refers to itself
            ent[1] = True
            self.approximated()  # the rule is this side's: keep the lowerings that use it apart
            return _Ref(ent[0])
        self.lowerings += 1
        self.lim()  # raises CompileLimitError past the time limit
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
            ent = self.inprogress[(base, self.upper)] = [f"r{len(self.inprogress)}_{self.lowerings}", False]
            self._approx.append(False)
            try:
                node = self.combinator(flat, complex_, depth) if complex_ else self.simple(flat, depth)
            except _Unsupported:
                node = _EMPTY  # recorded in self.errors; keep going to report every construct
            finally:
                del self.active[len(self.active) - len(refs):]
                self.cur_ptr = old_ptr
                del self.inprogress[(base, self.upper)]
                approx = self._approx.pop() or approx
            if ent[1]:
                self.rules[ent[0]] = node
                node = _Ref(ent[0])
        if approx:
            self.approx_keys.add(base)
            key = (base, self.upper)
            self.approximated()
        self.memo[key] = node
        return node

    def approximated(self) -> None:
        """The lowering in progress depends on `upper` (it reads an approximated language)."""
        if self._approx:
            self._approx[-1] = True

    @contextmanager
    def side(self, upper: bool):
        """Lower on the plain side (False) or a subtracted one (True: supersets where a language
        leaves values out) for the duration of the block."""
        old, self.upper = self.upper, upper
        try:
            yield
        finally:
            self.upper = old

    def lowered_subtracted(self, items, depth: int):
        """lang() of a side that is subtracted from the current one."""
        with self.side(not self.upper):
            return self.lang(items, depth)

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
                if enum is None:
                    enum = list(vals)
                else:
                    keys = {_json_key(w) for w in vals}
                    enum = [v for v in enum if _json_key(v) in keys]
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
        out, seen = [], set()
        parts = self.value_parts(flat)
        for v in values:
            t = _type_of(v)
            if t not in types and not (t == "integer" and "number" in types):
                continue
            key = _json_key(v)
            if key in seen:
                continue
            seen.add(key)
            if self.valid(v, flat, parts):
                out.append(self.literal(v, depth))
        return g.alt(*out) if out else _EMPTY

    def valid(self, v, flat, parts=None) -> bool:
        """Does the enum/const value `v` satisfy the rest of the conjunction? A scalar is matched
        against kmgrammar's own language of the rest (ECMA-262 patterns, formats as this side
        reads them); a container by the `jsonschema` package where that reads the rest as
        kmgrammar does (`read_alike`; formats by kmgrammar's). Unsure: kept on a subtracted side,
        dropped otherwise (a false negative, never a false positive). `parts`: the conjunction
        without enum/const/format, precomputed."""
        if parts is None:
            parts = self.value_parts(flat)
        parts = self.joined_parts(flat, parts)
        if parts is None:
            return self.unsure()
        t = _type_of(v)
        if t not in ("array", "object"):
            dfa = self.literal_check(flat, "number" if t == "integer" else t)
            if dfa is not None:
                return dfa is not False and dfa.matches(jv.serialize(v).encode("utf-8"))
        if not any(d.keys() - ANNOTATIONS - {"type"} for d in parts):
            return True  # only types, already filtered by the caller: skip the validator (big enums)
        try:
            import jsonschema as js
        except ImportError:
            return self.unsure()
        if not self.read_alike(parts, v):
            return self.unsure()
        validators = self.__dict__.setdefault("_validators", {})
        if self.upper not in validators:
            checker = js.FormatChecker(())
            for name in jv.FORMATS:
                checker.checks(name)(lambda x, n=name, up=self.upper:
                                     not isinstance(x, str) or jv.format_dfa(n, up).matches(x.encode("utf-8")))
            cls = js.validators.validator_for(self.root if isinstance(self.root, dict) else {})
            validators[self.upper] = cls(self.root, format_checker=checker)
        try:
            return validators[self.upper].evolve(schema={"allOf": parts}).is_valid(v)
        except Exception:  # a schema jsonschema cannot evaluate
            return self.unsure()

    def unsure(self) -> bool:
        """No answer: keep the value on a subtracted side, drop it otherwise (which side this
        lowering is on now matters: `approximated`)."""
        self.approximated()
        return self.upper

    def literal_check(self, flat, t: str):
        """DFA of the scalars of type `t` that satisfy `flat` without its enum/const (False if
        none do, None where that language is not regular). Per conjunction, type and side."""
        cache = self.__dict__.setdefault("_literal_checks", {})
        key = (tuple((id(s), k) for s, _p, k in flat), t, self.upper)
        if key not in cache:
            strip = self.__dict__.setdefault("_stripped", {})  # id -> (schema kept alive, its copy)
            items = []
            for s, p, skip in flat:
                got = strip.get(id(s))
                if got is None:
                    got = strip[id(s)] = (s, self.syn({k: x for k, x in s.items() if k not in ("enum", "const")}))
                items.append((got[1], p, skip))
            node = self.lang(items + [(self.type_syn(t), self.cur_ptr, frozenset())], 0)
            cache[key] = None if _has_ref(node) else False if node is _EMPTY else self.dfa(node)
        return cache[key]

    def read_alike(self, parts, v) -> bool:
        """Whether the `jsonschema` package reads `parts` ($refs followed) on `v` as kmgrammar
        does: patterns only in a syntax Python's `re` and ECMA-262 share, on strings of printable
        ASCII (where \\d, \\w, $ and . mean the same); formats are checked by kmgrammar's (an
        approximated one makes this lowering side-dependent)."""
        plain = all(0x20 <= ord(c) <= 0x7E for x in _strings_in(v) for c in x)
        stack, seen = list(parts), set()
        while stack:
            x = stack.pop()
            if isinstance(x, list):
                stack.extend(x)
                continue
            if not isinstance(x, dict) or id(x) in seen:
                continue
            seen.add(id(x))
            pats = [x["pattern"]] if "pattern" in x else []
            if isinstance(x.get("patternProperties"), dict):
                pats += list(x["patternProperties"])
            if pats and not (plain and all(isinstance(p, str) and _SHARED_REGEX.fullmatch(p)
                                           and not any(t in p for t in ("(?", "{,", "[]", "[^]")) for p in pats)):
                return False
            f = x.get("format")
            if f in jv.UNSUPPORTED_FORMATS:
                return False
            if f in jv.FORMATS_UPPER:
                self.approximated()
            if isinstance(x.get("$ref"), str):
                try:
                    stack.append(self.resolve(x["$ref"], "#")[0])
                except (CompileError, _Unsupported):
                    return False
            stack.extend(y for k, y in x.items() if k not in ANNOTATIONS and k not in ("enum", "const"))
        return True

    def joined_parts(self, flat, parts):
        """`parts` as the validator must read them: unevaluatedItems/unevaluatedProperties see
        the annotations of their own schema's in-place subschemas only, so a subschema that the
        conjunction split off (an anyOf/oneOf/if branch, an allOf member) goes back under its
        parent's allOf. None when nested splits leave that ambiguous."""
        out = None
        for i, (s, _p, skip) in enumerate(flat):
            if not skip or not ("unevaluatedItems" in s or "unevaluatedProperties" in s):
                continue
            reach = self.in_place(s)
            inner = [j for j, (y, _q, _k) in enumerate(flat) if j != i and id(y) in reach]
            if not inner:
                continue
            if any(flat[j][2] and ("unevaluatedItems" in flat[j][0] or "unevaluatedProperties" in flat[j][0])
                   for j in inner):
                return None
            out = list(parts) if out is None else out
            out[i] = dict(parts[i], allOf=list(parts[i].get("allOf", [])) + [parts[j] for j in inner])
        return parts if out is None else out

    @staticmethod
    def value_parts(flat) -> list:
        # then/else do nothing once their `if` is lowered (skipped)
        return [{k: x for k, x in s.items() if k not in skip and k not in ("enum", "const", "format")
                 and not (k in ("then", "else") and "if" in skip)} for s, _p, skip in flat]

    def literal(self, v, depth: int, rank="cur"):
        st = self.style
        rank = self.rank if rank == "cur" else rank
        if isinstance(v, dict):
            if not v:
                return st.empty("{}")
            keys = list(v)
            if self.property_order == "any" and len(keys) > 1:  # every order, as objects are lowered
                members = [(json.dumps(k, ensure_ascii=False), self.literal(v[k], depth + 1, None), True) for k in keys]
                return self.any_order_graph(members, [], 0, None, depth)
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
            return _integer() if integer else jv.any_number()
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
                if f in jv.FORMATS_UPPER:
                    self.approximated()
                contents.append(jv.format_dfa(f, self.upper))
            elif f in jv.UNSUPPORTED_FORMATS:
                if self.lenient:
                    warnings.warn(f"kmgrammar: format {f!r} at {ptr} is not enforced (lenient=True)", stacklevel=3)
                else:
                    self.fail(_ptr(ptr, "format"), f"format {f!r}")
        if hi is not None and lo > hi:
            return _EMPTY
        try:
            if not contents:
                return jv.string_node(lo, hi, self.lim())
            dfa = contents[0]
            for d in contents[1:]:
                dfa = jv.intersection(dfa, d, self.lim())
            dfa = jv.string_dfa(dfa, lo, hi, self.lim())
        except CompileLimitError as e:
            if e.limit != "max_states" or (hi or lo) < 1000:
                raise
            bounds = f"minLength {lo}" + (f", maxLength {hi}" if hi is not None else "")
            raise CompileLimitError(f"string at {flat[0][1]} ({bounds}): counting its characters exactly "
                                    f"needs ~{13 * max(lo, hi or 0)} automaton states; {e}", e.limit) from None
        return _EMPTY if dfa.is_empty() else g.Dfa(dfa)

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


# regex syntax that Python's `re` and ECMA-262 read alike (on printable ASCII subjects)
_SHARED_REGEX = re.compile(r"(?:[A-Za-z0-9 _:/@,#%&'=<>!~`;\"^$.*+?|\[\]{}()-]|\\[dwsDWS.\-/\\()\[\]{}*+?^$|])*")


def _strings_in(v):
    """Every string in a JSON value: keys and values."""
    stack = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, str):
            yield x
        elif isinstance(x, dict):
            yield from x
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)


@lru_cache(maxsize=None)
def _integer() -> g.Dfa:
    return g.Dfa(jv.build(g.alt(g.text("0"), g.seq(g.Repeat(g.text("-"), 0, 1), g.ByteSet(((49, 57),)),
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
    try:
        for a in alts:
            start, end = _anchored(a, True), _anchored(a, False)
            if start is None or end is None:
                raise _InnerAnchor()
            body = low.seq(a, flags, True, True)
            nodes.append(g.seq(*([] if start else [anything]), body, *([] if end else [anything])))
        dfa = jv.build(g.alt(*nodes), limits)
    except RecursionError:
        raise GrammarSyntaxError("regex nests too deeply") from None
    except (_InnerAnchor, UnsupportedFeatureError) as e:
        if not isinstance(e, _InnerAnchor) and "anchor not at" not in str(e):
            raise
        dfa = _marked_anchor_dfa(src, parsed, flags, limits)
    if len(_PATTERN_CACHE) < 4096:
        _PATTERN_CACHE[pattern] = dfa
    return dfa


class _InnerAnchor(Exception):
    pass


# ^ and $ anywhere in a pattern: lowered as marker bytes that UTF-8 text never contains, then
# eliminated from the automaton (see `_marked_anchor_dfa`).
_CARET, _DOLLAR = 0xFE, 0xFF


def _marked_anchor_dfa(src: str, parsed, flags: int, limits: Limits) -> ByteDFA:
    """Content DFA of the strings in which `src` finds a match, for patterns whose ^/$ are not
    only at the ends of every alternative (`^(a|$)`, `x$|y`, `(/|$)*`).

    Without the multiline flag, ECMA's ^ holds only at offset 0 and $ only at the end of the
    string. Each ^ becomes byte 0xFE and each $ byte 0xFF (never in UTF-8), and the search
    language N = .* P' .* is built over bytes. A non-empty string s then matches iff
    0xFE^i s 0xFF^j is in N for some i, j (every ^ consumed before the first character, every $
    after the last); the empty string matches iff some word of markers alone is in N (there
    ^ and $ both hold, in any order). Both conditions are read off N's DFA exactly."""
    from .regex import C, _Lowerer

    if flags & re.MULTILINE:
        raise UnsupportedFeatureError("anchors with the multiline flag")

    class _Marked(_Lowerer):
        def node(self, item, flags, at_start, at_end):
            if item[0] is C.AT and item[1] in (C.AT_BEGINNING, C.AT_BEGINNING_STRING):
                return g.Bytes(bytes([_CARET]))
            if item[0] is C.AT and item[1] in (C.AT_END, C.AT_END_STRING):
                return g.Bytes(bytes([_DOLLAR]))
            return super().node(item, flags, at_start, at_end)

    low = _Marked(src, "ecma")
    anything = jv.length_node(0, None)
    d = jv.build(g.seq(anything, low.seq(list(parsed), flags, False, False), anything), limits)
    if d.n_states == 0:
        return d
    trans, cls = d.trans, d.classes
    c_caret, c_dollar = int(cls[_CARET]), int(cls[_DOLLAR])
    # accept after trailing $ markers
    acc = d.accept.copy()
    while True:
        t = trans[:, c_dollar]
        new = acc | ((t >= 0) & acc[np.maximum(t, 0)])
        if (new == acc).all():
            break
        acc = new
    # start after leading ^ markers
    starts, q = [], 0
    while q >= 0 and q not in starts:
        starts.append(q)
        q = int(trans[q, c_caret])
    # the empty string: any word of markers from the start
    seen, todo = {0}, [0]
    while todo:
        q = todo.pop()
        for c in (c_caret, c_dollar):
            r = int(trans[q, c])
            if r >= 0 and r not in seen:
                seen.add(r)
                todo.append(r)
    empty_ok = bool(d.accept[sorted(seen)].any())
    # subset construction over the other bytes (the markers' classes may hold dead bytes only)
    memo: dict = {}

    def step(st, b):
        c = int(cls[b])
        nxt = memo.get((st, c))
        if nxt is None:
            nxt = memo[(st, c)] = frozenset(int(trans[q, c]) for q in st if trans[q, c] >= 0)
        return nxt or None

    alphabet = bytes(b for b in range(256) if b not in (_CARET, _DOLLAR))
    out = jv.explicit_dfa(frozenset(starts), step, lambda st: any(acc[q] for q in st), alphabet, limits)
    if empty_ok and not (out.n_states and out.accept[0]):
        out = jv.union(out, jv.build(g.EMPTY, limits), limits)
    return out


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
                      lenient=False, property_order="schema", limits: Limits | None = None):
    """A `ByteDFA` when the schema's language is regular, else a `cfg.Cfg` (start rule "start").

    property_order: "schema" (declared properties in schema order) or "any" (declared properties
    in any order, each at most once; 2^n automaton nodes for n declared properties of one object.
    Past `jsonschema_containers.ANY_ORDER_MAX_PROPERTIES` of them, or for a regular object, whose
    values are copied per node, past `ANY_ORDER_MAX_STATES` estimated states, or for a
    context-free one past `ANY_ORDER_MAX_CALLS` member calls (or `ANY_ORDER_BUDGET_CALLS` for
    the schema) where tracking fewer is exact, only the required ones are tracked and declared
    keys may repeat; a CompileLimitError past those limits again).

    Raises UnsupportedFeatureError (all unsupported keywords, sorted by JSON pointer),
    CompileError (invalid schema, empty language), CompileLimitError."""
    schema = for_declared_draft(load_schema(schema))
    style = make_style(whitespace, separators, indent)
    if property_order not in ("schema", "any"):
        raise CompileError(f"property_order must be 'schema' or 'any', not {property_order!r}")
    low = Lowerer(schema, style=style, strict=strict, lenient=lenient, limits=limits or Limits(),
                  property_order=property_order)
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 20_000))
    cfg = None
    try:
        node = low.lang([(schema, "#", frozenset())], 0)
        if low.errors:
            dfa = None
        elif low.rules or _has_ref(node):
            from .cfg import Cfg, productive, without

            rules, memo = {}, {}
            rules["start"] = _to_cfg_node(style.outer(node), rules, memo, low.lim())
            for name, body in list(low.rules.items()):
                rules[name] = _to_cfg_node(body, rules, memo, low.lim())
            # A rule no finite text derives from (a required property whose schema is the object
            # itself; a value no branch allows) must never be started: it becomes the empty
            # language where it is used.
            prod = productive(rules)
            if "start" not in prod:
                raise CompileError("the schema accepts no JSON value at all (empty language)")
            if len(prod) < len(rules):
                dead, seen = set(rules) - prod, {}
                rules = {n: without(body, dead, seen) for n, body in rules.items() if n in prod}
            cfg = Cfg(rules=rules, start="start", origin="json_schema", calls=frozenset(low.calls) & prod,
                      regular=not low.too_big_for_dfa)
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
