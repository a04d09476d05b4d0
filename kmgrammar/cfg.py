"""Lark grammar text -> `Cfg`, the context-free IR both grammar frontends lower to; checks and warnings.

A `Cfg` maps each nonterminal to a right-hand side built from the regular IR (`grammar.py`
nodes: bytes, character sets, sequence, choice, repeat, embedded DFAs) plus `Ref(name)` leaves
for nonterminals. Lark's own loader (`lark.load_grammar`) parses the grammar text, resolves
`%import`, templates, `?rule`, EBNF operators, `~n..m`, and hands back plain BNF rules over
terminals; each terminal's regex is compiled by kmgrammar's regex compiler (Python `re`
semantics) to a byte DFA, followed by `(IGNORE)*` when the grammar has `%ignore` terminals, so
ignored text is allowed before the first, between any two and after the last terminal
(which is what `Lark(..., parser="earley", lexer="dynamic_complete")` accepts).

`cfg_gbnf.py` builds the same IR from llama.cpp's GBNF; `cfg_rtn.py` takes it from here.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

from . import grammar as g
from .automaton import ByteDFA, Limits, build_dfa, intersect
from .errors import CompileError, CompileLimitError, GrammarSyntaxError, UnsupportedFeatureError


class GreedyLexingWarning(UserWarning):
    """The grammar has a trap for Lark's default greedy `lexer="dynamic"` (see `check_greedy_traps`)."""


@dataclass(frozen=True)
class Ref:
    """A nonterminal used inside a right-hand side."""

    name: str


@dataclass
class Cfg:
    """A context-free grammar over bytes: rules[name] is a regular-IR tree with `Ref` leaves."""

    rules: dict
    start: str
    origin: str = "lark"
    notes: list = field(default_factory=list)
    # rules the frontend wants kept as calls: small but shared by very many callers (JSON Schema's
    # property_order="any" members, one per property for 2^n callers)
    calls: frozenset = frozenset()
    # A rule used more than once whose inlined automaton would exceed this many NFA-ish units
    # (`cfg_rtn._size`) is kept as a call instead: inlining a precedence ladder is otherwise
    # exponential. JSON Schema's rules are big object bodies (at 500, MaskBench's slowest
    # compiles took ~40% longer); see GRAMMAR_INLINE_LIMIT for grammars written by hand.
    inline_limit: int = 100
    # False: the frontend knows the language is too big for one DFA even without recursion (JSON
    # Schema's members made rules for size), so the network is built without trying to inline
    regular: bool = True


# Hand-written grammars' rules are small precedence levels: inlining them costs little and leaves
# fewer rule boundaries for the run-time stack checks (arithmetic.lark keeps `sum` alone instead of
# `sum` and `product`: cold masks ~20% faster in A/B; python_expr/sql compile faster too).
GRAMMAR_INLINE_LIMIT = 500


# ---------------------------------------------------------------------------------------------
# Lark frontend

# Lark's common.lark spells "a quoted string with backslash escapes" with a lookbehind; with the
# lazy `.*?` and `re.match` (what Lark's lexers do) it means exactly the regular language on the
# right. The same idiom appears in python.lark's STRING. Before -> after:
#   ".*?(?<!\\)(\\\\)*?"   ->   "(?:[^"\\\n]|\\.)*"
_LOOKBEHIND_STRING = re.compile(r"""(?P<q>["'])(?:\(\?!(?P=q){2}\))?\.\*\?\(\?<!\\\\\)\(\\\\\\\\\)\*\?(?P=q)""")


def _rewrite_regex(pattern: str) -> str:
    def repl(m):
        q = m.group("q")
        return f"{q}(?:[^{q}\\\\\\n]|\\\\.)*{q}"

    return _LOOKBEHIND_STRING.sub(repl, pattern)


_NONEMPTY: list = []


def _nonempty(dfa: ByteDFA, limits: Limits) -> ByteDFA:
    """Lark terminals never match the empty string."""
    if dfa.n_states == 0 or not dfa.accept[0]:
        return dfa
    if not _NONEMPTY:
        _NONEMPTY.append(build_dfa(g.Repeat(g.ByteSet(((0, 255),)), 1, None)))
    return intersect(dfa, _NONEMPTY[0], limits)


def _terminal_dfa(name: str, pattern: str, limits: Limits) -> ByteDFA:
    from .regex import regex_to_dfa

    try:
        dfa = regex_to_dfa(_rewrite_regex(pattern), limits=limits)
    except UnsupportedFeatureError as e:
        raise UnsupportedFeatureError(f"terminal {name}: {e}") from None
    except GrammarSyntaxError as e:
        raise GrammarSyntaxError(f"terminal {name}: {e}") from None
    except CompileLimitError as e:
        raise CompileLimitError(f"terminal {name}: {e}") from None
    except CompileError as e:
        raise CompileError(f"terminal {name}: {e}") from None
    dfa = _nonempty(dfa, limits)
    if dfa.is_empty():
        raise CompileError(f"terminal {name} matches no string at all (empty language): /{pattern}/")
    return dfa


def _lark_error(e: Exception) -> CompileError:
    from lark.exceptions import GrammarError, UnexpectedInput

    if isinstance(e, UnexpectedInput):
        line, col = getattr(e, "line", "?"), getattr(e, "column", "?")
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return GrammarSyntaxError(f"Lark grammar syntax error at line {line}, column {col}: {first}")
    msg = str(e).strip()
    if isinstance(e, GrammarError) and ("line" in msg or "Unexpected" in msg or "Unclosed" in msg):
        return GrammarSyntaxError(f"Lark grammar syntax error: {msg}")
    return CompileError(f"invalid Lark grammar: {msg}")


def load_lark(text: str, *, start: str = "start", limits: Limits | None = None,
              import_paths: tuple = (), greedy_warning: bool = True) -> Cfg:
    """Parse Lark grammar text with Lark's loader and lower it to a `Cfg` (terminals as byte DFAs).

    Raises
    ------
    GrammarSyntaxError
        The text does not parse (the message has line and column) or a terminal's regex is invalid.
    UnsupportedFeatureError
        A terminal uses a regex construct kmgrammar cannot compile exactly (e.g. lookaround).
    CompileError
        Undefined rules or terminals, unproductive rules, empty language.
    """
    from lark.exceptions import LarkError
    from lark.grammar import Terminal
    from lark.load_grammar import load_grammar

    if not isinstance(text, str):
        raise CompileError(f"a Lark grammar must be a str, not {type(text).__name__}")
    limits = limits or Limits()
    try:
        grammar, _ = load_grammar(text, "<grammar>", list(import_paths), False)
        terms, rules, ignore = grammar.compile([start], set())
    except LarkError as e:
        raise _lark_error(e) from None
    except (KeyError, AssertionError) as e:  # e.g. an unknown start rule
        raise CompileError(f"invalid Lark grammar: {type(e).__name__}: {e}") from None
    if not any(str(r.origin.name) == start for r in rules):
        raise CompileError(f"start rule {start!r} is not defined in the grammar")
    term_dfa = {t.name: _terminal_dfa(t.name, t.pattern.to_regexp(), limits) for t in terms}
    for name in ignore:
        if name not in term_dfa:
            raise CompileError(f"%ignore {name}: no such terminal")
    ign = None
    if ignore:
        ign = g.Repeat(g.alt(*[g.Dfa(term_dfa[n]) for n in ignore]), 0, None)
    leaf = {name: g.Seq((g.Dfa(dfa), ign)) if ign is not None else g.Dfa(dfa) for name, dfa in term_dfa.items()}
    alts: dict = {}
    for r in rules:
        for sym in r.expansion:
            if isinstance(sym, Terminal) and sym.name not in leaf:
                raise UnsupportedFeatureError(f"terminal {sym.name} has no pattern (%declare): a "
                                              "postlexer-provided terminal cannot be enforced")
        items = tuple(leaf[s.name] if isinstance(s, Terminal) else Ref(str(s.name)) for s in r.expansion)
        alts.setdefault(str(r.origin.name), []).append(g.Seq(items) if len(items) != 1 else items[0])
    cfg_rules = {name: g.alt(*a) for name, a in alts.items()}
    top = "$start"
    cfg_rules[top] = g.Seq((ign, Ref(start))) if ign is not None else Ref(start)
    cfg = Cfg(cfg_rules, top, "lark", inline_limit=GRAMMAR_INLINE_LIMIT)
    check(cfg)
    if greedy_warning:
        traps = greedy_traps(terms, rules, ignore, term_dfa, start)
        if traps:
            msg = ("grammar has greedy-lexing traps for Lark's default lexer='dynamic' (it may reject "
                   "valid strings; re-parse outputs with lexer='dynamic_complete'): " + "; ".join(traps[:5]))
            cfg.notes.append(msg)
            warnings.warn(msg, GreedyLexingWarning, stacklevel=3)
    return cfg


# ---------------------------------------------------------------------------------------------
# Checks shared by both frontends


def refs(node) -> set:
    out, stack = set(), [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Ref):
            out.add(n.name)
        elif isinstance(n, (g.Seq, g.Alt)):
            stack.extend(n.items)
        elif isinstance(n, g.Repeat):
            stack.append(n.item)
        elif isinstance(n, g.Graph):
            stack.extend(n.labels())
    return out


def productive(rules: dict) -> set:
    """The rules some finite string derives from."""
    prod: set = set()
    changed = True
    while changed:
        changed = False
        for name, rhs in rules.items():
            if name not in prod and _productive(rhs, prod):
                prod.add(name)
                changed = True
    return prod


NEVER = g.ByteSet(())  # the empty language


def without(node, names: set, memo: dict):
    """`node` with references to `names` replaced by NEVER (unchanged subtrees stay the same
    objects: a body shared by every compile keeps its identity)."""
    got = memo.get(id(node))
    if got is not None:
        return got
    t = type(node)
    if t is Ref:
        got = NEVER if node.name in names else node
    elif t is g.Seq or t is g.Alt:
        items = tuple(without(x, names, memo) for x in node.items)
        got = node if all(a is b for a, b in zip(items, node.items)) else t(items)
    elif t is g.Repeat:
        item = without(node.item, names, memo)
        got = node if item is node.item else g.Repeat(item, node.min, node.max)
    elif t is g.Graph:
        got = node.map(lambda lab: without(lab, names, memo))
        if all(a is b for a, b in zip(got.labels(), node.labels())):
            got = node
    else:
        got = node
    memo[id(node)] = got
    return got


def _productive(node, prod: set) -> bool:
    t = type(node)
    if t is Ref:
        return node.name in prod
    if t is g.Seq:
        return all(_productive(x, prod) for x in node.items)
    if t is g.Alt:
        return any(_productive(x, prod) for x in node.items)
    if t is g.Repeat:
        return node.min == 0 or _productive(node.item, prod)
    if t is g.Dfa:
        return not node.dfa.is_empty()
    if t is g.CharSet or t is g.ByteSet:
        return bool(node.ranges)
    if t is g.Graph:  # a final node reachable over productive edges
        out: dict = {}
        for a, b, lab in node.edges:
            out.setdefault(a, []).append((b, lab))
        reach, stack = {node.start}, [node.start]
        while stack:
            for b, lab in out.get(stack.pop(), ()):
                if b not in reach and (lab is None or _productive(lab, prod)):
                    reach.add(b)
                    stack.append(b)
        return any(f in reach for f in node.finals)
    return True


def _alternatives(node) -> list:
    if type(node) is g.Alt:
        return list(node.items)
    if type(node) is g.Repeat and node.min == 0 and node.max == 1:
        return [g.EMPTY, node.item]
    return [node]


def _seq_items(node) -> tuple:
    return node.items if type(node) is g.Seq else (node,)


def unroll_direct_recursion(rules: dict) -> None:
    """Rewrite rules whose only recursion is direct left or right recursion into loops, e.g.
    Lark's `__x_star_0: __x_star_0 "," v | "," v`  ->  `("," v) ("," v)*`: regular, no stack."""
    for name, rhs in list(rules.items()):
        alts = _alternatives(rhs)
        me = Ref(name)
        left, right, other = [], [], []
        for a in alts:
            items = _seq_items(a)
            n_me = sum(1 for x in items if name in refs(x))
            if n_me == 0:
                other.append(a)
            elif n_me == 1 and items[0] == me and len(items) > 1:
                left.append(g.Seq(items[1:]))
            elif n_me == 1 and items[-1] == me and len(items) > 1:
                right.append(g.Seq(items[:-1]))
            else:
                break
        else:
            if not other or (left and right) or not (left or right):
                continue
            base = g.alt(*other)
            if left:
                rules[name] = g.Seq((base, g.Repeat(g.alt(*left), 0, None)))
            else:
                rules[name] = g.Seq((g.Repeat(g.alt(*right), 0, None), base))


def check(cfg: Cfg) -> None:
    """Undefined references, unproductive rules, empty language -> CompileError; drops unreachable
    rules and unrolls direct left/right recursion into loops."""
    rules = cfg.rules
    for name, rhs in rules.items():
        missing = sorted(refs(rhs) - set(rules))
        if missing:
            raise CompileError(f"rule {missing[0]!r} is used (in rule {name!r}) but never defined")
    reach, stack = {cfg.start}, [cfg.start]
    while stack:
        for m in refs(rules[stack.pop()]):
            if m not in reach:
                reach.add(m)
                stack.append(m)
    for name in [n for n in rules if n not in reach]:
        del rules[name]
    prod = productive(rules)
    if cfg.start not in prod:
        raise CompileError("the grammar's language is empty: the start rule can never be completed"
                           + _unproductive_note(rules, prod))
    bad = sorted(n for n in rules if n not in prod)
    if bad:
        raise CompileError(f"unproductive rule {bad[0]!r}: no finite string derives from it "
                           f"(every alternative needs itself){_unproductive_note(rules, prod)}")
    unroll_direct_recursion(rules)


def _unproductive_note(rules: dict, prod: set) -> str:
    bad = sorted(n for n in rules if n not in prod and not n.startswith("$"))
    return f" (unproductive rules: {', '.join(bad[:8])})" if bad else ""


# ---------------------------------------------------------------------------------------------
# Lark's greedy dynamic lexer


def greedy_traps(terms, rules, ignore, term_dfa: dict, start: str) -> list:
    """Terminal pairs (A, B) where B can follow A and some complete A-lexeme continues, inside A,
    with a byte that can start B: Lark's default `lexer="dynamic"` matches A greedily there and can
    reject strings of the grammar's language (e.g. `start: NAME "x"` on "abx")."""
    from lark.grammar import Terminal

    names = {t.name for t in terms}
    nullable: set = set()
    first: dict = {}
    changed = True
    prods = [(str(r.origin.name), [(s.name, isinstance(s, Terminal)) for s in r.expansion]) for r in rules]
    while changed:
        changed = False
        for lhs, exp in prods:
            fs = first.setdefault(lhs, set())
            before = len(fs)
            all_null = True
            for sym, is_t in exp:
                if is_t:
                    fs.add(sym)
                    all_null = False
                    break
                fs |= first.get(sym, set())
                if sym not in nullable:
                    all_null = False
                    break
            if all_null and lhs not in nullable:
                nullable.add(lhs)
                changed = True
            changed |= len(fs) != before
    follow: dict = {}
    changed = True
    while changed:
        changed = False
        for lhs, exp in prods:
            for k, (sym, _) in enumerate(exp):
                fs = follow.setdefault(sym, set())
                before = len(fs)
                rest_null = True
                for sym2, is_t in exp[k + 1:]:
                    if is_t:
                        fs.add(sym2)
                        rest_null = False
                        break
                    fs |= first.get(sym2, set())
                    if sym2 not in nullable:
                        rest_null = False
                        break
                if rest_null:
                    fs |= follow.get(lhs, set())
                changed |= len(fs) != before
    first_bytes = {n: _first_bytes(d) for n, d in term_dfa.items()}
    ign_bytes = set().union(*[first_bytes[n] for n in ignore]) if ignore else set()
    out = []
    for a in sorted(names):
        if a in ignore:
            continue
        cont = _continuation_bytes(term_dfa[a])
        if not cont:
            continue
        for b in sorted(follow.get(a, set()) & names):
            hit = cont & (first_bytes[b] | ign_bytes)
            if hit:
                out.append(f"{a} followed by {b} (a complete {a} can continue with {bytes([min(hit)])!r})")
    return out


def _first_bytes(dfa: ByteDFA) -> set:
    if dfa.n_states == 0:
        return set()
    row = dfa.trans[0]
    return {b for b in range(256) if row[dfa.classes[b]] >= 0}


def _continuation_bytes(dfa: ByteDFA) -> set:
    out: set = set()
    for s in range(dfa.n_states):
        if dfa.accept[s]:
            row = dfa.trans[s]
            out |= {b for b in range(256) if row[dfa.classes[b]] >= 0}
    return out
