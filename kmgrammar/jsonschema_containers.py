"""JSON Schema containers: arrays (items, prefixItems, contains) and objects (properties, extras) as graphs."""

from __future__ import annotations

import json
import warnings

from . import grammar as g
from . import jsonschema_values as jv
from .automaton import DfaMemo
from .cfg import Ref as _Ref
from .errors import CompileLimitError
from .jsonschema_base import LENIENT_ANY_DEPTH, _EMPTY, _has_ref, _json_key, _ptr
from .jsonschema_logic import _RANK_DEPTH

# property_order="any" tracks which declared properties an object has written: 2^n nodes. A
# context-free object spends a few positions per node (its members are shared rules), a regular
# one's DFA holds each value once per set of properties written before it: about 2^(n-1) x the
# states of its members, bounded by ANY_ORDER_MAX_STATES (both CompileLimitError past them).
# Past either limit only the required properties are tracked (2^r nodes, r at most
# ANY_ORDER_MAX_PROPERTIES) and a declared key may repeat, as an undeclared one may: every
# copy's value satisfies the key's schemas, so the one a parser keeps does too.
# A context-free object's n*2^(n-1) member calls each return to a node that compile time walks
# for the token remainders crossing it (Kubernetes kb_1008 compiles in 1.1 s within these limits,
# 6.6 s tracking every key): past ANY_ORDER_MAX_CALLS, or past ANY_ORDER_BUDGET_CALLS for the
# whole schema, only the required properties are tracked, where they are fewer and that is exact
# (no minProperties above the required count, not inside an automaton difference).
ANY_ORDER_MAX_PROPERTIES = 10
ANY_ORDER_MAX_STATES = 30_000
ANY_ORDER_MAX_CALLS = 448
ANY_ORDER_BUDGET_CALLS = 2048


# The `json_value` rule's body per output style, built once per process (the same every compile:
# its scalar DFA alone costs ~1 ms). Building it peaks at ~40 DFA states: under this max_states
# it is built afresh, so the limit applies as before.
_JSON_VALUE: dict = {}
UNIQUE_MAX_VALUES = 10  # uniqueItems over n item values: 2^n automaton nodes
_SHARED_MIN_STATES = 1000


# Per process: the DFA of any string content, and per tuple of declared names the keys of an
# open object's other members (any quoted key but those names): it costs ~1 ms to build, and
# objects of one shape recur within a schema and across schemas (see `DfaMemo`).
_KEYS_OF = DfaMemo(512, keep=lambda dfa: dfa.n_states <= 4096)  # bigger: one schema's own, not kept


def _any_content(lim):
    return _KEYS_OF.get(None, lim, lambda lm: jv.build(jv.length_node(0, None), lm))


def _other_keys(names, lim):
    """Quoted keys other than `names` (an open object's undeclared members, no patterns)."""
    def build(lm):
        key = jv.quoted_key(_any_content(lm), lm)
        if names:
            key = jv.without_literals(key, [json.dumps(n, ensure_ascii=False).encode("utf-8") for n in names], lm)
        return key

    return _KEYS_OF.get(("keys", tuple(names)), lim, build)


class ContainerMixin:
    """Arrays, objects and "any JSON value" (methods of `Lowerer`)."""

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
                    # a nested unevaluatedItems (not false) evaluates every item left
                    tail_seen |= y is not x and "unevaluatedItems" in y and y["unevaluatedItems"] is not False
            if not tail_seen:
                prefixes.append([(True, q, frozenset())] * ku)
                tails.append((x["unevaluatedItems"], _ptr(q, "unevaluatedItems"), frozenset()))
                k = max(k, ku)
        for p, (tail, _tp, _) in zip(prefixes, tails):
            if tail is False:
                hi = len(p) if hi is None else min(hi, len(p))
        if hi is not None and lo > hi:
            return _EMPTY
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
        if hi == 0:  # only [], which has no item for a `contains` to find
            return _EMPTY if any(c[1] > 0 for c in contains) else empty or _EMPTY
        if unique is not None and (hi is None or hi > 1):
            # per slot (prefix items, then the rest) the canonical texts of its finitely many values
            n_slots = k if hi is not None and hi <= k else k + 1
            distinct = [] if contains else [self.finite_scalars(slot_conj(i), depth) for i in range(n_slots)]
            if distinct and None not in distinct and len({t for ts in distinct for t in ts}) <= UNIQUE_MAX_VALUES:
                return self.array_distinct(distinct, lo, hi, depth)
            if self.lenient:
                warnings.warn(f"kmgrammar: uniqueItems at {unique} is not enforced (lenient=True)", stacklevel=3)
            else:
                self.fail(unique, "keyword 'uniqueItems' (item uniqueness is not regular: items other than "
                                  f"at most {UNIQUE_MAX_VALUES} scalar values in all)")
        sep = st.item_sep(depth)
        if contains:
            return self.array_contains(flat, slot, slot_conj, k, lo, hi, contains[0], depth, empty)
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

    def finite_scalars(self, conj, depth: int):
        """The canonical texts of the values an item of conjunction `conj` may take, when they are
        finitely many scalars (an enum, a const, booleans and null), at most UNIQUE_MAX_VALUES;
        else None."""
        if not conj:
            return None  # any value
        got = self.flatten(conj)
        if got is None:
            return []
        candidates = None
        for s, _ptr_, _skip in got[0]:
            vals = None
            if "enum" in s and isinstance(s["enum"], list):
                vals = s["enum"]
            if "const" in s:
                vals = [s["const"]] if vals is None else [v for v in vals if _json_key(v) == _json_key(s["const"])]
            t = s.get("type")
            types = {t} if isinstance(t, str) else set(t) if isinstance(t, list) else None
            if vals is None and types is not None and types <= {"boolean", "null"}:
                vals = ([True, False] if "boolean" in types else []) + ([None] if "null" in types else [])
            if vals is not None:
                keys = {_json_key(v) for v in vals}
                candidates = vals if candidates is None else [v for v in candidates if _json_key(v) in keys]
        if candidates is None or any(isinstance(v, (dict, list)) for v in candidates):
            return None
        texts = sorted({jv.serialize(v) for v in candidates})
        if len(texts) > UNIQUE_MAX_VALUES:
            return None
        lang = self.lang_at(conj, depth + 1, "[]")  # the other keywords may rule values out
        if lang is _EMPTY:
            return []
        if _has_ref(lang):
            return None
        dfa = self.dfa(lang)
        return [t for t in texts if dfa.matches(t.encode("utf-8"))]

    def array_distinct(self, slots: list, lo: int, hi, depth: int):
        """Arrays of lo..hi distinct values, item i from slots[min(i, last)] (canonical texts):
        one automaton node per set of values written (2^n for n values in all)."""
        index = {t: i for i, t in enumerate(sorted({t for ts in slots for t in ts}))}
        n = len(index)
        hi = n if hi is None else min(hi, n)
        st = self.style
        end = 1 << n
        edges = []
        for used in range(end):
            size = bin(used).count("1")
            if lo <= size <= hi:
                edges.append((used, end, st.close("]", depth) if size else st.empty("[]")))
            if size >= hi:
                continue
            pre = st.open("[", depth) if size == 0 else st.item_sep(depth)
            for text in slots[min(size, len(slots) - 1)]:
                bit = 1 << index[text]
                if not used & bit:
                    edges.append((used, used | bit, g.seq(pre, g.text(text))))
        if not any(v == end for _u, v, _lab in edges):
            return _EMPTY
        return jv.Graph(end + 1, 0, (end,), tuple(edges))

    def array_contains(self, flat, slot, slot_conj, k, lo, hi, contains, depth, empty):
        citem, cmin, cmax, _ptr_ = contains
        if cmax is not None and cmin > cmax:
            return _EMPTY
        if cmax is not None:  # items outside `contains` are a difference: see check_negatable
            self.refuse_repeat_sensitive("maxContains", citem[0], citem[1])
            # ...of objects compared at one position: one key order for both sides
            rank = self.ranked(flat)
            if rank is not None:
                old_rank, self.rank = self.rank, rank
                try:
                    return self.array_contains(flat, slot, slot_conj, k, lo, hi, contains, depth, empty)
                finally:
                    self.rank = old_rank
        st = self.style
        ccap = cmin if cmax is None else cmax + 1
        pcap = max(k, lo, 1) if hi is None else hi
        memo: dict = {}

        def parts(i):
            j = min(i, k)
            if j not in memo:
                conj = slot_conj(j)
                items = slot(j)
                yes = self.lang_at(conj + [citem], depth + 1, "[]")
                # with maxContains, items that do not match are a difference: their matches
                # lowered as the other side's; below a minContains alone a match read as no match
                # only counts less, so the plain matches serve on either side
                with self.side(cmax is not None and not self.upper):
                    no = self.diff(items, self.lang_at(conj + [citem], depth + 1, "[]"))
                memo[j] = (yes, no)
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
        conjs = []  # per schema: (props, patterns, additional, ptr)
        pat_src: dict = {}
        required, names_order = [], []
        lo, hi, lo_ptr = 0, None, None
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
                m = self.count(s, "minProperties", ptr)
                if m > lo:
                    lo, lo_ptr = m, _ptr(ptr, "minProperties")
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
        if self.rank is not None and (self.rank is self.empty_rank or self.rank.depth > _RANK_DEPTH) \
                and len(names_order) > 1:
            # below what `ranked` tracks, each side of the difference would spell its own order
            self.fail(flat[0][1] if flat else self.cur_ptr, "key order inside not/oneOf/if/maxContains more than "
                                                          f"{_RANK_DEPTH} levels down")
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

        cands = []  # (name, value schemas or None, key text, allowed by propertyNames too)
        for n in names_order:
            conj = value_conj(n)
            keytext = json.dumps(n, ensure_ascii=False)
            cands.append((n, conj, keytext, conj is not None and (pn_dfa is None or pn_dfa.matches(keytext.encode("utf-8")))))
        if self.property_order == "any":  # over the limit: say so before lowering any value
            self.any_order_check(sum(c[3] for c in cands), required=sum(c[3] and c[0] in required for c in cands))
        members = []  # (name, value node or None, required)
        for n, conj, keytext, ok in cands:
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
        if extra and lo >= 2 + sum(req for *_, req in members):
            # The automaton counts members, and an undeclared key may be written twice: two copies
            # would count as two keys where a parser (last one wins) sees one. With fewer required
            # keys than lo - 1 that lets through objects with too few distinct keys.
            what = (f"minProperties {lo} on an object whose undeclared keys may repeat (members are counted, "
                    "not distinct keys)")
            if not self.lenient:
                self.fail(lo_ptr, what)
            warnings.warn(f"kmgrammar: {what} at {lo_ptr}: duplicate keys may make up the count (lenient=True)",
                          stacklevel=3)
        return self.object_graph(members, extra, lo, hi, depth)

    def extras(self, conjs, pat_dfas, pn_dfa, names, depth, flat):
        """[(key node, value node)] for keys not declared: one entry per region of the patterns."""
        pats = list(pat_dfas)
        if len(pats) > 6:
            self.fail(flat[0][1] if flat else self.cur_ptr, f"{len(pats)} patternProperties on one object (at most 6)")
        lim = self.lim
        out = []
        declared = None
        plain = None  # no patterns, no propertyNames: any key but the declared names
        if not pats and pn_dfa is None:
            plain = _other_keys(names, lim())
        elif names:
            declared = jv.build(g.alt(*[g.text(json.dumps(n, ensure_ascii=False)) for n in names]), lim())
        for mask in range(1 << len(pats)):
            content = _any_content(lim()) if plain is None else None
            for i, p in enumerate(pats):
                d = pat_dfas[p]
                content = jv.intersection(content, d, lim()) if mask >> i & 1 else jv.difference(content, d, lim())
                if content.is_empty():
                    break
            if content is not None and content.is_empty():
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
            if plain is not None:
                key = plain
            else:
                key = jv.quoted_key(content, lim())
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
        if self.property_order == "any":
            return self.any_order_graph(members, extra, lo, hi, depth)
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

    def any_order_graph(self, members, extra, lo, hi, depth):
        """property_order="any": declared properties in any order, each at most once, extra keys
        anywhere. Nodes are (set of declared properties written, members written so far): 2^n
        nodes for n declared properties (ANY_ORDER_MAX_PROPERTIES). When the object is context-free
        anyway (a value is any JSON value or recursive), each member (key, separator, value) is
        one rule, called from the graph's edges, and the graph is one rule automaton
        (`_to_cfg_node`): a node costs a few positions whatever the values, and no call is left
        open from one member to the next; a regular object's DFA holds each value once per set
        (ANY_ORDER_MAX_STATES; past it, where tracking only the required properties would not
        do, the members become rules as for a context-free object). Past either limit, or past
        ANY_ORDER_MAX_CALLS member calls of a context-free object (ANY_ORDER_BUDGET_CALLS for the
        schema) where that is exact, the set holds only the required properties and declared
        keys may repeat (see ANY_ORDER_MAX_PROPERTIES)."""
        st = self.style
        decl = [(k, v, req) for k, v, req in members if v is not None]
        ksep = st.key_sep()
        labels = [g.seq(g.text(k), ksep, v) for k, v, _r in decl]
        extra_member = g.alt(*[g.seq(k, ksep, v) for k, v in extra]) if extra else None
        shared = any(_has_ref(x) for x in labels + [extra_member] if x is not None)
        memo: dict = {}
        total = None if shared else sum(_states_estimate(x, memo) for x in labels)

        def estimate(n_tracked):  # one node or two cost what schema order costs
            return None if total is None or n_tracked < 2 else (1 << n_tracked - 1) * total

        tracked = list(range(len(decl)))
        est = estimate(len(tracked))
        n_req = sum(1 for _k, _v, req in decl if req)
        if (est is not None and est > ANY_ORDER_MAX_STATES and self.rank is None and self.cfg_ok()
                and (lo > n_req or (estimate(n_req) or 0) > ANY_ORDER_MAX_STATES)):
            # too big as one DFA even tracking the required keys only (or not exact that way):
            # members as rules, so a node costs a few positions whatever the values
            shared, total, est = True, None, None
            self.too_big_for_dfa = True
        calls = len(decl) << max(len(decl) - 1, 0)
        many_calls = shared and (calls > ANY_ORDER_MAX_CALLS
                                 or self.any_order_calls + calls > ANY_ORDER_BUDGET_CALLS)
        repeat = (len(decl) > ANY_ORDER_MAX_PROPERTIES or (est is not None and est > ANY_ORDER_MAX_STATES)
                  or (many_calls and lo <= n_req < len(decl) and self.rank is None))
        if repeat:
            tracked = [i for i, (_k, _v, req) in enumerate(decl) if req]
            est = estimate(len(tracked))
            # Members are counted, and repeats would count twice: only a minProperties that the
            # required keys already ensure is exact (it is then dropped).
            if lo > len(tracked):
                raise CompileLimitError(f"property_order='any' at {self.cur_ptr}: minProperties {lo} over "
                                        f"{len(decl)} declared properties, {len(tracked)} of them required "
                                        "(past the tracked properties, keys may repeat and members are not "
                                        "distinct keys); use property_order='schema'", "property_order")
            if self.rank is not None:
                # inside an automaton difference (not/oneOf/if/maxContains) a repeated key would
                # make the language of texts differ from that of parsed values (check_negatable)
                raise CompileLimitError(f"property_order='any' at {self.cur_ptr}: {len(decl)} declared properties "
                                        "inside not/oneOf/if/maxContains, where each must be tracked; use "
                                        "property_order='schema'", "property_order")
            lo = 0
        bits = [0] * len(decl)
        for j, i in enumerate(tracked):
            bits[i] = 1 << j
        self.any_order_check(len(decl), est, required=len(tracked) if repeat else None)
        if shared:
            labels = [self.member_rule(x) for x in labels]
            if extra_member is not None:
                extra_member = self.member_rule(extra_member)
        required = sum(bits[i] for i, (_k, _v, req) in enumerate(decl) if req)
        cap = (hi + 1 if hi is not None else lo) if (lo > 0 or hi is not None) else 1
        nodes: dict = {}

        def nid(*key):
            return nodes.setdefault(key, len(nodes))

        start, end = nid(0, 0), nid("end")
        edges = []
        todo = [(0, 0)]
        done = set()
        while todo:  # only the nodes reachable from the start
            seen, c = todo.pop()
            if (seen, c) in done:
                continue
            done.add((seen, c))
            u = nid(seen, c)
            pre = st.open("{", depth) if c == 0 else st.item_sep(depth)
            c2 = min(c + 1, cap)
            if hi is None or c + 1 <= hi:
                for i, lab in enumerate(labels):
                    if repeat or not seen & bits[i]:
                        edges.append((u, nid(seen | bits[i], c2), g.seq(pre, lab)))
                        todo.append((seen | bits[i], c2))
                if extra_member is not None:
                    edges.append((u, nid(seen, c2), g.seq(pre, extra_member)))
                    todo.append((seen, c2))
            if seen & required == required and c >= lo:
                edges.append((u, end, st.empty("{}") if c == 0 else st.close("}", depth)))
        if shared:
            self.any_order_calls += len(edges)
        return jv.Graph(len(nodes), start, (end,), tuple(edges))

    def any_order_check(self, n: int, states: int | None = None, required: int | None = None):
        """CompileLimitError if an object of n declared properties, `required` of them required
        (whose regular automaton would have about `states` states) is over property_order="any"'s
        limits: past ANY_ORDER_MAX_PROPERTIES properties the required ones are still tracked."""
        why = None
        if n > ANY_ORDER_MAX_PROPERTIES and required is not None and required > ANY_ORDER_MAX_PROPERTIES:
            why = (f"need 2^{required} automaton nodes for the {required} required ones (at most "
                   f"{ANY_ORDER_MAX_PROPERTIES} tracked)")
        elif states is not None and states > ANY_ORDER_MAX_STATES:
            why = f"need ~{states} automaton states (at most {ANY_ORDER_MAX_STATES})"
        if why is not None:
            raise CompileLimitError(f"property_order='any' at {self.cur_ptr}: {n} declared properties {why}; "
                                    "use property_order='schema'", "property_order")

    def member_rule(self, node):
        """A nonterminal for `node`, so that every caller shares one automaton of it."""
        name = f"m{len(self.rules)}"
        self.rules[name] = node
        self.calls.add(name)
        return _Ref(name)

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
            lim = self.lim()
            shared = lim.max_states >= _SHARED_MIN_STATES
            body = _JSON_VALUE.get(self.style) if shared else None
            if body is None:
                st = self.style
                v = _Ref("json_value")
                sep = st.item_sep(0)
                arr = g.alt(st.empty("[]"), g.seq(st.open("[", 0), v, g.Repeat(g.seq(sep, v), 0, None),
                                                  st.close("]", 0)))
                mem = g.seq(jv.string_node(), st.key_sep(), v)
                obj = g.alt(st.empty("{}"), g.seq(st.open("{", 0), mem, g.Repeat(g.seq(sep, mem), 0, None),
                                                    st.close("}", 0)))
                scalars = jv.build(g.alt(g.text("null"), g.text("true"), g.text("false"), jv.any_number(),
                                         jv.string_node()), lim)
                for a in (scalars.trans, scalars.classes, scalars.accept):
                    a.flags.writeable = False
                body = g.alt(g.Dfa(scalars), arr, obj)
                if shared:
                    body = _JSON_VALUE.setdefault(self.style, body)
            self.rules["json_value"] = body
        return _Ref("json_value")

    def bounded_any(self, depth: int, levels: int):
        key = ("any", depth if self.style.depth_matters() else 0, levels)
        if key in self.memo:
            return self.memo[key]
        st = self.style
        scalars = [g.text("null"), g.text("true"), g.text("false"), jv.any_number(), jv.string_node()]
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


def _states_estimate(node, memo: dict) -> int:
    """Rough DFA size of an IR node (for limits, before building it)."""
    got = memo.get(id(node))
    if got is not None:
        return got
    t = type(node)
    if t is g.Dfa:
        got = node.dfa.n_states
    elif t is g.Bytes:
        got = len(node.data) + 1
    elif t is g.Seq or t is g.Alt:
        got = sum(_states_estimate(x, memo) for x in node.items)
    elif t is g.Repeat:
        got = _states_estimate(node.item, memo) * max(1, min(node.max or 1, 1000))
    elif t is jv.Graph:
        got = node.n + sum(_states_estimate(lab, memo) for lab in node.labels())
    else:
        got = 2
    memo[id(node)] = got
    return got
