"""JSON Schema combinators: oneOf/not/if as automaton differences or negation-free rewrites, key order."""

from __future__ import annotations

import itertools
import warnings
from collections import deque

from . import grammar as g
from . import jsonschema_values as jv
from .errors import CompileError, CompileLimitError

from .jsonschema_base import (ANNOTATIONS, SUPPORTED, UNSUPPORTED, TYPES, _EMPTY, _SCHEMA_LISTS, _SCHEMA_MAPS,
                              _SCHEMA_ONE, _Unsupported, _has_ref, _json_eq, _ptr, _type_of)

_RANK_BUDGET = 50_000  # (sub-schema, path) pairs walked to order keys (a 1,000-definition schema: ~5k)
_RANK_DEPTH = 12  # key orders are tracked this many levels below a oneOf/not/if (recursive schemas)
_DISJOINT_DEPTH = 3  # nesting levels disjoint()/types_of() look into (property values, anyOf branches)
_NEG_ONEOF = 8  # negating oneOf adds one schema per pair of branches
# anyOf branches seen by unevaluated*: 2^n - 1 alternatives (sets of matching branches) up to this
# n; past it, one branch at a time (a documented false negative when several would match)
_ANY_OF_SUBSETS = 5


def _named_keys(s: dict) -> list:
    """Key names a schema requires or makes dependencies on (required, dependentRequired,
    dependencies, dependentSchemas), in document order."""
    out = []
    req = s.get("required")
    if isinstance(req, list):
        out += [n for n in req if isinstance(n, str)]
    for k in ("dependentRequired", "dependencies", "dependentSchemas"):
        deps = s.get(k)
        if isinstance(deps, dict):
            for name, dep in deps.items():
                out.append(name)
                if isinstance(dep, list):
                    out += [n for n in dep if isinstance(n, str)]
    return out


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



# The one JSON type each type-specific keyword constrains (it holds vacuously for other types).
_KW_TYPE = {k: t for t, kws in (
    ("string", ("minLength", "maxLength", "pattern", "format")),
    ("number", ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")),
    ("array", ("items", "prefixItems", "additionalItems", "contains", "minContains", "maxContains", "minItems",
               "maxItems", "uniqueItems", "unevaluatedItems")),
    ("object", ("properties", "patternProperties", "additionalProperties", "required", "propertyNames",
                "minProperties", "maxProperties", "dependentRequired", "dependentSchemas", "dependencies",
                "unevaluatedProperties")),
) for k in kws}


class LogicMixin:
    """oneOf/not/if/dependent*, negation, disjointness, key orders (methods of `Lowerer`)."""

    def ranked(self, items):
        """Key order for exact differences: per JSON path (property names by first appearance
        under `items`), so objects compared at one position share one spelling."""
        if self.rank is not None:
            return None
        root = _Rank()
        self.synthetic.append(root)
        seen = set()
        stack = deque((s, root) for s, _p, _k in items)
        while stack:
            s, node = stack.popleft()
            if not isinstance(s, dict) or (id(s), id(node)) in seen or node.depth > _RANK_DEPTH:
                continue
            seen.add((id(s), id(node)))
            kids = []  # visited next, before the schemas queued already: depth first
            if len(seen) % 1024 == 0:
                self.lim()
                if len(seen) > _RANK_BUDGET:
                    raise CompileLimitError(f"key order for oneOf/not/if at {self.cur_ptr} needs more than "
                                            f"{_RANK_BUDGET} (sub-schema, path) pairs")
            if isinstance(s.get("$ref"), str):
                try:
                    kids.append((self.resolve(s["$ref"], "#")[0], node))
                except (CompileError, _Unsupported):
                    pass
            for k in ("allOf", "anyOf", "oneOf"):
                if isinstance(s.get(k), list):
                    kids.extend((x, node) for x in s[k])
            for k in ("not", "if", "then", "else"):
                if k in s:
                    kids.append((s[k], node))
            for k in ("dependentSchemas", "dependencies"):
                if isinstance(s.get(k), dict):
                    kids.extend((x, node) for x in s[k].values())
            props = s.get("properties")
            if isinstance(props, dict):
                for n, sub in props.items():
                    node.order.setdefault(n, len(node.order))
                    kids.append((sub, node.kid(n)))
            # names only required (or depended on) count too: a name one side of a difference
            # declares and the other leaves to additionalProperties would be spelt in two orders,
            # and there, as an extra key, could repeat
            for n in _named_keys(s):
                node.order.setdefault(n, len(node.order))
            for k in ("enum", "const"):
                for c in (s[k] if k == "enum" and isinstance(s.get(k), list) else [s.get(k)]):
                    node.add_literal(c)
            if isinstance(s.get("patternProperties"), dict):
                kids.extend((x, node.kid("*")) for x in s["patternProperties"].values())
            for k in ("additionalProperties", "unevaluatedProperties"):
                if isinstance(s.get(k), dict):
                    kids.append((s[k], node.kid("*")))
            for k in ("items", "prefixItems", "additionalItems", "unevaluatedItems", "contains"):
                v = s.get(k)
                for x in (v if isinstance(v, list) else [v]):
                    if isinstance(x, dict):
                        kids.append((x, node.kid("[]")))
            stack.extendleft(reversed(kids))
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
        if kw == "not" and isinstance(val, dict) and "not" in val and all(k in ANNOTATIONS for k in val if k != "not"):
            # not(not X) is X: no automaton difference (nor its limits, `check_negatable`)
            return self.lang(rest + [(val["not"], _ptr(ptr, "not", "not"), frozenset())], depth)
        if kw == "anyOf":
            if not isinstance(val, list) or not val:
                self.bad(_ptr(ptr, kw), "'anyOf' must be a non-empty array")
            branches = [(a, _ptr(ptr, kw, i), frozenset()) for i, a in enumerate(val)]
            choices = [[b] for b in branches]
            if 1 < len(val) and self.annotations_seen(flat, s):
                if len(val) > _ANY_OF_SUBSETS:  # one branch at a time leaves values out
                    self.approximated()
                    if self.upper:
                        self.fail(_ptr(ptr, kw), f"unevaluatedProperties/Items next to an anyOf of more than "
                                                 f"{_ANY_OF_SUBSETS} branches, inside not/oneOf/if")
                else:
                    # unevaluated* sees the annotations of every branch that matches, not just
                    # one: an alternative per set of matching branches
                    choices = [list(c) for k in range(2, len(val) + 1)
                               for c in itertools.combinations(branches, k)] + choices
            alts = [self.lang(rest + c, depth) for c in choices]
            alts = [a for a in alts if a is not _EMPTY]
            return g.alt(*alts) if alts else _EMPTY
        if kw == "oneOf" and isinstance(val, list) and val:
            alts = [rest + [(a, _ptr(ptr, kw, i), frozenset())] for i, a in enumerate(val)]
            if all(self.disjoint(alts[i], alts[j]) for i in range(len(alts)) for j in range(i)):
                nodes = [self.lang(a, depth) for a in alts]
                nodes = [x for x in nodes if x is not _EMPTY]
                return g.alt(*nodes) if nodes else _EMPTY
        if self.cfg_ok() and kw in ("oneOf", "not", "if"):
            alts = self.operands(kw, s, ptr, rest)
            if alts is not None and any(_has_ref(self.lang(a, depth)) for a in alts):
                got = self.type_split(flat, ptr, depth)
                if got is None:
                    got = self.positive(kw, s, ptr, rest, depth)
                if got is not None:
                    return got
        self.check_negatable(kw, val, ptr, rest)
        old = self.rank
        # one key order for the sides of a difference; dependent* only unions alternatives
        rank = self.ranked(flat) if kw in ("not", "oneOf", "if") else None
        if rank is not None:
            self.rank = rank
        try:
            if kw == "oneOf":
                if not isinstance(val, list) or not val:
                    self.bad(_ptr(ptr, kw), "'oneOf' must be a non-empty array")
                # values in two branches are subtracted: their languages as the subtracted side's
                # (the same nodes unless a branch reads an approximated language)
                xs, ys = [], []
                for i, a in enumerate(val):
                    b = rest + [(a, _ptr(ptr, kw, i), frozenset())]
                    x, y = self.lang(b, depth), self.lowered_subtracted(b, depth)
                    yd = None if y is _EMPTY else self.dfa(y)
                    if yd is None or yd.is_empty():  # then so is x, a subset
                        continue
                    xd = yd if x is y else None if x is _EMPTY else self.dfa(x)
                    xs.append(None if xd is None or xd.is_empty() else xd)
                    ys.append(yd)
                total = seen = overlap = None
                for x, y in zip(xs, ys):
                    if seen is not None:
                        o = jv.intersection(seen, y, self.lim())
                        if not o.is_empty():
                            overlap = o if overlap is None else jv.union(overlap, o, self.lim())
                    exact = seen is total and x is y
                    if x is not None:
                        total = x if total is None else jv.union(total, x, self.lim())
                    seen = total if exact else y if seen is None else jv.union(seen, y, self.lim())
                if total is None:
                    return _EMPTY
                if overlap is not None:
                    total = jv.difference(total, overlap, self.lim())
                return g.Dfa(total)
            if kw == "not":
                return self.diff(self.lang(rest, depth),
                                 self.lowered_subtracted(rest + [(val, _ptr(ptr, kw), frozenset())], depth))
            if kw == "if":
                then = s.get("then", True)
                else_ = s.get("else", True)
                cond = (val, _ptr(ptr, "if"), frozenset())
                a = self.lang(rest + [cond, (then, _ptr(ptr, "then"), frozenset())], depth)
                e = (else_, _ptr(ptr, "else"), frozenset())
                b = self.diff(self.lang(rest + [e], depth), self.lowered_subtracted(rest + [e, cond], depth))
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

    def check_negatable(self, kw, val, ptr, rest) -> None:
        """Automaton differences (not, oneOf, if's else) are exact only where a document's text is
        in a language iff its parsed value is. An undeclared key may be written twice, and a
        parser keeps the last value: a text whose first copy breaks an additionalProperties /
        patternProperties schema, or whose copies exceed a maxProperties, is outside the
        language while its value is inside. Subtracting such a language would let that text
        through; so the subtracted side may not constrain undeclared keys that way. (Unless an
        enum or const in `rest` pins the value: an object literal never repeats a key.)"""
        if kw not in ("not", "oneOf", "if"):
            return
        if any(isinstance(x, dict) and ("enum" in x or "const" in x) for x, _p, _k in rest):
            return
        for sub, sub_ptr in ([(x, _ptr(ptr, kw, i)) for i, x in enumerate(val)] if kw == "oneOf" and isinstance(val, list)
                             else [(val, _ptr(ptr, kw))]):
            if self.refuse_repeat_sensitive(kw, sub, sub_ptr):
                return

    def refuse_repeat_sensitive(self, what: str, schema, ptr: str) -> bool:
        """Fail (warn if lenient, and return True) when `schema` is subtracted by `what` and
        constrains undeclared keys (`check_negatable`)."""
        where = self.repeat_sensitive(schema, ptr)
        if where is None:
            return False
        msg = (f"{what} over {where[1]!r} (undeclared keys may repeat, and the language of texts would then "
               "differ from the language of parsed values)")
        if not self.lenient:
            self.fail(where[0], msg)
        warnings.warn(f"kmgrammar: {msg} at {where[0]}: a text repeating a key may get through (lenient=True)",
                      stacklevel=4)
        return True

    def repeat_sensitive(self, schema, ptr: str):
        """(pointer, keyword) of the first maxProperties or additionalProperties /
        patternProperties / unevaluatedProperties schema (other than true/false) within `schema`
        ($refs followed), or None. Memoised per schema: the walk covers a whole subtree, and a
        shared definition is subtracted by every oneOf that refers to it."""
        memo = self.__dict__.setdefault("_repeat_memo", {})
        key = id(schema)
        if key not in memo:
            memo[key] = self._repeat_walk(schema, ptr)
        return memo[key]

    def _repeat_walk(self, schema, ptr: str):
        stack, seen = [(schema, ptr)], set()
        while stack:
            s, p = stack.pop()
            if not isinstance(s, dict) or id(s) in seen:
                continue
            seen.add(id(s))
            if "maxProperties" in s:
                return _ptr(p, "maxProperties"), "maxProperties"
            for k in ("additionalProperties", "unevaluatedProperties"):
                if isinstance(s.get(k), dict) and s[k]:
                    return _ptr(p, k), k
            pats = s.get("patternProperties")
            if isinstance(pats, dict) and any(isinstance(x, dict) and x for x in pats.values()):
                return _ptr(p, "patternProperties"), "patternProperties"
            if isinstance(s.get("$ref"), str):
                try:
                    stack.append(self.resolve(s["$ref"], p))
                except CompileError:
                    pass  # reported where the schema is lowered
            for k, v in s.items():
                if k in _SCHEMA_MAPS and isinstance(v, dict):
                    stack += [(x, _ptr(p, k, n)) for n, x in v.items()]
                elif k in _SCHEMA_LISTS and isinstance(v, list):
                    stack += [(x, _ptr(p, k, i)) for i, x in enumerate(v)]
                elif k in _SCHEMA_ONE:
                    stack.append((v, _ptr(p, k)))
        return None

    @staticmethod
    def operands(kw, s, ptr, rest):
        """The conjunctions whose languages oneOf/not/if combine (None: malformed, reported later)."""
        val = s[kw]
        if kw == "oneOf":
            if not isinstance(val, list) or not val:
                return None
            return [rest + [(a, _ptr(ptr, kw, i), frozenset())] for i, a in enumerate(val)]
        if kw == "not":
            return [rest, rest + [(val, _ptr(ptr, kw), frozenset())]]
        return [rest + [(x, ptr, frozenset())] for x in (val, s.get("then", True), s.get("else", True))]

    def type_syn(self, t: str) -> dict:
        """One shared synthetic {"type": t} per compile (memo keys are by schema identity)."""
        got = self.__dict__.setdefault("_type_syn", {}).get(t)
        if got is None:
            got = self._type_syn[t] = self.syn({"type": t})
        return got

    def type_split(self, flat, ptr, depth):
        """oneOf/not/if over a language that is not regular, lowered once per JSON type the value
        may have (the types partition the values, so the union is exact). Restricted to one type,
        keywords of the other types drop out: scalar parts become regular (exact automaton
        differences) and branches that only constrain other types become `true` for this one.
        None when the value already has a single type."""
        parts = sorted({"number" if t == "integer" else t for t in self.types_of(flat)})
        if len(parts) <= 1:
            return None
        out = [self.lang(flat + [(self.type_syn(t), ptr, frozenset())], depth) for t in parts]
        out = [x for x in out if x is not _EMPTY]
        return g.alt(*out) if out else _EMPTY

    def positive(self, kw, s, ptr, rest, depth):
        """oneOf/not/if over languages that are not regular, rewritten without negation when every
        negated schema has a negation-free form (`negate`); None to take the automaton route.
        When the value's type is pinned to array or object (`type_split`), keywords of other
        types are vacuous and dropped from the negations."""
        val = s[kw]
        ts = {"number" if t == "integer" else t for t in self.types_of(rest)}
        t = next(iter(ts)) if len(ts) == 1 and ts & {"array", "object"} else None
        if kw == "oneOf":
            negs = [self.negate(a, t=t) for a in val]
            if any(n is None for n in negs):
                return None
            out = []
            for i, a in enumerate(val):
                if any(not negs[j] for j in range(len(val)) if j != i):
                    continue  # another branch is `true`: this one can never be the only match
                extra = [(self.syn({"anyOf": negs[j]}), _ptr(ptr, kw, j), frozenset()) for j in range(len(val)) if j != i]
                out.append(self.lang(rest + [(a, _ptr(ptr, kw, i), frozenset())] + extra, depth))
        elif kw == "not":
            neg = self.negate(val, t=t)
            if neg is None:
                return None
            out = [self.lang(rest + [(self.syn({"anyOf": neg}), _ptr(ptr, kw), frozenset())], depth)] if neg else []
        else:
            neg = self.negate(val, t=t)
            if neg is None:
                return None
            out = [self.lang(rest + [(val, _ptr(ptr, "if"), frozenset()),
                                     (s.get("then", True), _ptr(ptr, "then"), frozenset())], depth)]
            if neg:
                out.append(self.lang(rest + [(self.syn({"anyOf": neg}), _ptr(ptr, "if"), frozenset()),
                                             (s.get("else", True), _ptr(ptr, "else"), frozenset())], depth))
        out = [x for x in out if x is not _EMPTY]
        return g.alt(*out) if out else _EMPTY

    def negate(self, schema, _active=None, t=None):
        """Schemas whose union is exactly the complement of `schema` (over all JSON values, or over
        the values of type `t` when the caller pins it), without `not` over non-regular parts;
        None when a keyword has no such form (enum, pattern, ...)."""
        key = (id(schema), t)
        memo = self.__dict__.setdefault("_neg_memo", {})
        if key in memo:
            return memo[key]
        active = _active if _active is not None else set()
        if key in active:
            return None
        active.add(key)
        try:
            got = self._negate(schema, active, t)
        finally:
            active.discard(key)
        memo[key] = got
        return got

    def _none_of(self, subs, active, t):
        """Schemas for "none of `subs` holds" (a list of at most one), [] when some sub always
        holds, None when a sub has no negation-free complement."""
        parts = []
        for sub in subs:
            neg = self.negate(sub, active, t)
            if neg is None:
                return None
            if not neg:
                return []
            parts.append({"anyOf": neg})
        return [self.syn({"allOf": parts})]

    def _negate(self, s, active, t=None):
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
            if t is not None:  # only values of type t (array or object) are in question
                if _KW_TYPE.get(k, t) != t:
                    continue  # a keyword of another type holds vacuously
                if k == "type":
                    ts = {v} if isinstance(v, str) else set(v) if isinstance(v, list) else None
                    if ts is None:
                        return None
                    if t in ts:
                        continue
                    return [True]  # s rejects every value of type t
                if k in ("enum", "const"):
                    vals = [v] if k == "const" else v if isinstance(v, list) else None
                    if vals is None:
                        return None
                    if any(_type_of(x) == t for x in vals):
                        return None
                    return [True]
            if k == "type":
                ts = {v} if isinstance(v, str) else set(v) if isinstance(v, list) else None
                if ts is None or s.get("nullable") is True:
                    return None
                others = [x for x in ("null", "boolean", "string", "array", "object") if x not in ts]
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
                ty = {"minLength": "string", "minItems": "array", "minProperties": "object"}[k]
                if v > 0:
                    out.append(syn({"type": ty, "max" + k[3:]: v - 1}))
            elif k in ("maxLength", "maxItems", "maxProperties") and isinstance(v, int) and not isinstance(v, bool):
                ty = {"maxLength": "string", "maxItems": "array", "maxProperties": "object"}[k]
                out.append(syn({"type": ty, "min" + k[3:]: v + 1}))
            elif k == "allOf" and isinstance(v, list):
                for sub in v:
                    neg = self.negate(sub, active, t)
                    if neg is None:
                        return None
                    out += neg
            elif k == "anyOf" and isinstance(v, list):
                none = self._none_of(v, active, t)
                if none is None:
                    return None
                out += none
            elif k == "not":
                out.append(v)
            elif k == "$ref":
                if self.draft7 and len([x for x in s if x not in ANNOTATIONS]) > 1:
                    return None
                try:
                    target = self.resolve(v, "#")[0]
                except (CompileError, _Unsupported):
                    return None
                neg = self.negate(target, active, t)
                if neg is None:
                    return None
                out += neg
            elif k in ("pattern", "minLength", "maxLength", "multipleOf", "format"):
                if k == "format" and (not isinstance(v, str) or v not in jv.FORMATS):
                    if isinstance(v, str) and v in jv.UNSUPPORTED_FORMATS:
                        return None
                    continue  # an unknown format is an annotation: always satisfied
                # only values of the keyword's type can fail it, and those are regular
                # (a scalar type): `not` over them is an exact automaton difference
                out.append(syn({"type": _KW_TYPE[k], "not": {k: v}}))
            elif k in ("enum", "const"):
                vals = [v] if k == "const" else v if isinstance(v, list) else None
                if vals is None:
                    return None
                groups: dict = {}
                for x in vals:
                    ty = _type_of(x)
                    groups.setdefault("number" if ty == "integer" else ty, []).append(x)
                if groups.keys() & {"array", "object"}:
                    return None  # the complement among containers needs negated structure
                free = [ty for ty in ("null", "boolean", "string", "number", "array", "object") if ty not in groups]
                if free:
                    out.append(syn({"type": free}))
                for ty, xs in groups.items():
                    out.append(syn({"type": ty, "not": {"enum": xs}}))
            elif k == "oneOf" and isinstance(v, list) and 0 < len(v) <= _NEG_ONEOF:
                # not exactly one: none of them, or some two of them
                none = self._none_of(v, active, t)
                if none is None:
                    return None
                out += none
                out += [syn({"allOf": [v[i], v[j]]}) for i in range(len(v)) for j in range(i)]
            elif k == "if":
                then, else_ = s.get("then", True), s.get("else", True)
                nc, nt, ne = self.negate(v, active, t), self.negate(then, active, t), self.negate(else_, active, t)
                if nc is None or nt is None or ne is None:
                    return None
                if nt:  # the condition holds and `then` fails
                    out.append(syn({"allOf": [v, {"anyOf": nt}]}))
                if nc and ne:  # the condition fails and `else` fails
                    out.append(syn({"allOf": [{"anyOf": nc}, {"anyOf": ne}]}))
            elif k in ("then", "else"):
                continue  # with "if"; without it they do nothing
            elif k in ("dependentRequired", "dependencies", "dependentSchemas") and isinstance(v, dict):
                for name, dep in v.items():
                    if isinstance(dep, list) and k != "dependentSchemas":
                        out += [syn({"type": "object", "required": [name], "properties": {x: False}})
                                for x in dep if isinstance(x, str)]
                    else:
                        neg = self.negate(dep, active, "object")
                        if neg is None:
                            return None
                        if neg:
                            out.append(syn({"type": "object", "required": [name], "anyOf": neg}))
            else:
                return None  # items, additionalProperties, ...: no negation-free form here
        return out

    def annotations_seen(self, flat, s) -> bool:
        """Does an unevaluatedProperties/Items of the conjunction see `s`'s subschemas?"""
        return not self.draft7 and any(
            ("unevaluatedProperties" in x or "unevaluatedItems" in x) and id(s) in self.in_place(x)
            for x, _p, _k in flat if isinstance(x, dict))

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

    def disjoint(self, a, b, _depth: int = 0) -> bool:
        """True if no value satisfies both conjunctions (a proof; False = unknown). Types first;
        then, for objects, a property one side requires whose values the two sides keep apart
        (recursively); for scalars, the intersection of the two regular languages."""
        fa, fb = self.flatten(a), self.flatten(b)
        if fa is None or fb is None:
            return True
        common = self.types_of(fa[0]) & self.types_of(fb[0])
        if not common:
            return True
        if common == {"object"}:
            both = self.required_of(fa[0]) & self.required_of(fb[0])
            for name in both:
                va, vb = self.consts_at(fa[0], name), self.consts_at(fb[0], name)
                if va is not None and vb is not None and not any(_json_eq(x, y) for x in va for y in vb):
                    return True
            if _depth >= _DISJOINT_DEPTH:
                return False
            for name in sorted(self.required_of(fa[0]) | self.required_of(fb[0])):
                va, vb = self.value_conj(fa[0], name), self.value_conj(fb[0], name)
                if va and vb and self.disjoint(va, vb, _depth + 1):
                    return True
            return False
        if common & {"array", "object"}:
            return False
        # scalars only: their serializations are regular, compare the automata
        syn = self.__dict__.setdefault("_types_syn", {})
        key = frozenset(common)
        if key not in syn:
            syn[key] = self.syn({"type": sorted(common)})
        pin = (syn[key], self.cur_ptr, frozenset())
        # a proof needs every valid value: supersets where a language leaves some out
        with self.side(True):
            la, lb = self.lang(a + [pin], 0), self.lang(b + [pin], 0)
        if la is _EMPTY or lb is _EMPTY:
            return True
        if _has_ref(la) or _has_ref(lb):
            return False
        return jv.intersection(self.dfa(la), self.dfa(lb), self.lim()).is_empty()

    def value_conj(self, flat, name: str) -> list:
        """The schemas the value under key `name` must satisfy in an object of conjunction `flat`
        (properties, matching patternProperties, else additionalProperties); [] if unknown."""
        from .jsonschema import _pattern_dfa

        out = []
        key = name.encode("utf-8")
        for s, ptr, _k in flat:
            props = s.get("properties")
            named = isinstance(props, dict) and name in props
            if named:
                out.append((props[name], _ptr(ptr, "properties", name), frozenset()))
            matched = False
            pats = s.get("patternProperties")
            if isinstance(pats, dict):
                for pat, sub in pats.items():
                    try:
                        hit = isinstance(pat, str) and _pattern_dfa(pat, self.lim()).matches(key)
                    except (CompileError, ValueError):
                        return []  # a pattern kmgrammar cannot read: no proof from this side
                    if hit:
                        matched = True
                        out.append((sub, _ptr(ptr, "patternProperties", pat), frozenset()))
            add = s.get("additionalProperties")
            if not named and not matched and isinstance(add, (bool, dict)):
                out.append((add, _ptr(ptr, "additionalProperties"), frozenset()))
        return out

    def types_of(self, flat, _depth: int = 0) -> set:
        """The JSON types a value satisfying every schema of `flat` may have (an over-estimate)."""
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
            for k in ("anyOf", "oneOf"):  # the value satisfies some branch: one of their types
                if _depth < _DISJOINT_DEPTH and isinstance(s.get(k), list) and types:
                    union: set = set()
                    for i, b in enumerate(s[k]):
                        try:
                            fb = self.flatten([(b, _ptr(_p, k, i), frozenset())])
                        except (CompileError, _Unsupported):
                            union = set(TYPES)
                            break
                        if fb is not None:
                            union |= self.types_of(fb[0], _depth + 1)
                    types &= union
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

