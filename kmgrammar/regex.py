"""Regex -> IR -> byte DFA, with Python `re` semantics (full match, Unicode classes).

The pattern is parsed by Python's own regex parser (`re._parser`), so the accepted syntax and the
meaning of every class (`\\d`, `\\w`, `\\s`, `.`, negations, case folding) are exactly `re`'s.
interegular's parser is ASCII-only for classes (see shared notes), which would make masks wrong
on non-ASCII text. Sets of code points are computed by asking `re` itself over the whole code
space (once per process, per class), so they match `re.fullmatch` by construction.

The `ecma` dialect serves JSON Schema `pattern`: ASCII `\\d` and `\\w`, ECMA-262 `\\s` and `.`.
"""

from __future__ import annotations

import re
import sys
from functools import lru_cache

import numpy as np

from . import grammar as g
from .automaton import ByteDFA, Limits, build_dfa, require_nonempty
from .errors import GrammarSyntaxError, UnsupportedFeatureError

if sys.version_info >= (3, 11):
    import re._constants as C
    import re._parser as sre_parse
else:  # pragma: no cover - Python 3.10
    import sre_constants as C
    import sre_parse

import _sre

_ALL_CODE_POINTS: list = []


def _all_code_points() -> str:
    """Every code point except surrogates, in order (position p is code point p, or p + 0x800)."""
    if not _ALL_CODE_POINTS:
        cps = np.concatenate([np.arange(0xD800), np.arange(0xE000, 0x110000)]).astype("<u4")
        _ALL_CODE_POINTS.append(cps.tobytes().decode("utf-32-le"))
    return _ALL_CODE_POINTS[0]


def _pos_to_cp(p: int) -> int:
    return p if p < 0xD800 else p + 0x800


@lru_cache(maxsize=256)
def _oracle_ranges(atom: str, flags: int) -> tuple:
    """Code point ranges matched by the one-character pattern `atom`, computed by `re` itself."""
    out = []
    for m in re.finditer(f"(?:{atom})+", _all_code_points(), flags):
        out.append((_pos_to_cp(m.start()), _pos_to_cp(m.end() - 1)))
    return g.normalize_ranges(out)


_CASED: list = []


def _cased_region() -> str:
    """Characters whose match can change under IGNORECASE: the cased ones and their lowercase images."""
    if not _CASED:
        chars = set()
        for cp in range(0x110000):
            if _sre.unicode_iscased(cp):
                chars.add(cp)
                chars.add(_sre.unicode_tolower(cp))
        chars -= set(range(0xD800, 0xE000))
        _CASED.append("".join(map(chr, sorted(chars))))
    return _CASED[0]


@lru_cache(maxsize=1024)
def _ignorecase_ranges(atom: str, flags: int, case_sensitive: tuple) -> tuple:
    """Outside the cased region a character matches under IGNORECASE iff it matches without it;
    inside it (a few thousand characters) `re` decides each one."""
    region = _cased_region()
    pat = re.compile(atom, flags)
    hits = [(ord(c), ord(c)) for c in region if pat.fullmatch(c)]
    outside = _intersect_ranges(case_sensitive, g.complement_ranges(_region_ranges()))
    return g.normalize_ranges(list(outside) + hits)


@lru_cache(maxsize=1)
def _region_ranges() -> tuple:
    return g.normalize_ranges((ord(c), ord(c)) for c in _cased_region())


def _intersect_ranges(a, b) -> tuple:
    a, b = g.normalize_ranges(a), g.normalize_ranges(b)
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


# ECMA-262 classes (JSON Schema `pattern`): \s is WhiteSpace + LineTerminator.
_ECMA_SPACE = g.normalize_ranges(
    [(9, 13), (32, 32), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A), (0x2028, 0x2029),
     (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000), (0xFEFF, 0xFEFF)]
)
_ECMA = {
    "d": ((48, 57),),
    "w": ((48, 57), (65, 90), (95, 95), (97, 122)),
    "s": _ECMA_SPACE,
}
_CATEGORY = {
    C.CATEGORY_DIGIT: ("d", False),
    C.CATEGORY_NOT_DIGIT: ("d", True),
    C.CATEGORY_SPACE: ("s", False),
    C.CATEGORY_NOT_SPACE: ("s", True),
    C.CATEGORY_WORD: ("w", False),
    C.CATEGORY_NOT_WORD: ("w", True),
}
_ANYCHAR = ((0, g.MAX_CODE_POINT),)


class _Lowerer:
    """Walks `re._parser`'s tree and builds IR nodes."""

    def __init__(self, pattern: str, dialect: str):
        self.pattern = pattern
        self.dialect = dialect

    # -- character sets ------------------------------------------------------------------------
    def category(self, cat, flags: int) -> tuple:
        letter, negate = _CATEGORY[cat]
        if self.dialect == "ecma":
            ranges = _ECMA[letter]
        else:
            ranges = _oracle_ranges("\\" + letter, flags & re.ASCII)
        return g.complement_ranges(ranges) if negate else ranges

    def dot(self, flags: int) -> tuple:
        if flags & re.DOTALL:
            return _ANYCHAR
        if self.dialect == "ecma":
            return g.complement_ranges([(10, 10), (13, 13), (0x2028, 0x2029)])
        return g.complement_ranges([(10, 10)])

    def charset(self, op, av, flags: int) -> g.CharSet:
        if op is C.LITERAL:
            ranges = ((av, av),)
        elif op is C.NOT_LITERAL:
            ranges = g.complement_ranges([(av, av)])
        elif op is C.ANY:
            return g.CharSet(self.dot(flags))
        else:  # IN
            negate, parts = False, []
            for iop, iav in av:
                if iop is C.NEGATE:
                    negate = True
                elif iop is C.LITERAL:
                    parts.append((iav, iav))
                elif iop is C.RANGE:
                    parts.append(iav)
                elif iop is C.CATEGORY:
                    parts.extend(self.category(iav, flags))
                else:
                    self.unsupported(f"class item {iop}", None)
            ranges = g.normalize_ranges(parts)
            if negate:
                ranges = g.complement_ranges(ranges)
        if flags & re.IGNORECASE:
            atom = _atom_source(op, av, self.dialect)
            if atom is not None:
                oflags = re.IGNORECASE | (flags & re.ASCII)
                ranges = _ignorecase_ranges(atom, oflags, g.normalize_ranges(ranges))
        return g.CharSet(g.normalize_ranges(ranges))

    # -- structure -----------------------------------------------------------------------------
    def seq(self, items, flags: int, at_start: bool, at_end: bool):
        items = list(items)
        # Leading ^/\A and trailing $/\Z are no-ops under full-match semantics.
        lead = 0
        while lead < len(items) and at_start and _is_anchor(items[lead], start=True):
            lead += 1
        trail = len(items)
        while trail > lead and at_end and _is_anchor(items[trail - 1], start=False):
            trail -= 1
        out = []
        for k in range(lead, trail):
            out.append(self.node(items[k], flags, at_start and k == lead, at_end and k == trail - 1))
        return g.seq(*out) if out else g.EMPTY

    def node(self, item, flags: int, at_start: bool, at_end: bool):
        op, av = item
        if op in (C.LITERAL, C.NOT_LITERAL, C.ANY, C.IN):
            if op is C.LITERAL and not (flags & re.IGNORECASE):
                return g.Bytes(chr(av).encode("utf-8", "surrogatepass")) if not 0xD800 <= av <= 0xDFFF else g.CharSet(())
            return self.charset(op, av, flags)
        if op is C.BRANCH:
            return g.alt(*[self.seq(alt, flags, at_start, at_end) for alt in av[1]])
        if op is C.SUBPATTERN:
            _group, add, remove, sub = av
            return self.seq(sub, (flags | add) & ~remove, at_start, at_end)
        if op in (C.MAX_REPEAT, C.MIN_REPEAT):
            lo, hi, sub = av
            inner = self.seq(sub, flags, False, False)
            return g.Repeat(inner, lo, None if hi == C.MAXREPEAT else hi)
        if op is C.AT:
            where = "start" if _is_anchor(item, start=True) else "end" if _is_anchor(item, start=False) else None
            if where is None:
                self.unsupported("word-boundary assertion (\\b, \\B)", r"\\[bB]")
            sym = r"\^|\\A" if where == "start" else r"\$|\\Z"
            self.unsupported(f"anchor not at the {where} of the pattern", sym)
        if op in (C.GROUPREF, getattr(C, "GROUPREF_EXISTS", None)):
            self.unsupported("backreference", r"\\[1-9]|\(\?P=|\(\?\(")
        if op in (C.ASSERT, C.ASSERT_NOT):
            self.unsupported("lookaround assertion", r"\(\?<?[=!]")
        if op is getattr(C, "POSSESSIVE_REPEAT", None):
            self.unsupported("possessive repeat", r"[*+?}]\+")
        if op is getattr(C, "ATOMIC_GROUP", None):
            self.unsupported("atomic group", r"\(\?>")
        self.unsupported(str(op).lower(), None)

    def unsupported(self, what: str, locate: str | None):
        where = ""
        if locate is not None:
            m = re.search(locate, self.pattern)
            if m:
                where = f" at position {m.start()}"
        raise UnsupportedFeatureError(f"unsupported regex construct: {what}{where} in {self.pattern!r}")


def _is_anchor(item, *, start: bool) -> bool:
    op, av = item
    if op is not C.AT:
        return False
    if start:
        return av in (C.AT_BEGINNING, C.AT_BEGINNING_STRING)
    return av in (C.AT_END, C.AT_END_STRING)


_CAT_SRC = {
    C.CATEGORY_DIGIT: r"\d", C.CATEGORY_NOT_DIGIT: r"\D", C.CATEGORY_SPACE: r"\s",
    C.CATEGORY_NOT_SPACE: r"\S", C.CATEGORY_WORD: r"\w", C.CATEGORY_NOT_WORD: r"\W",
}


def _atom_source(op, av, dialect: str) -> str | None:
    """Re-spell a one-character atom so `re` can be asked which characters it matches."""

    def lit(c: int) -> str:
        return f"\\U{c:08x}"

    if op is C.LITERAL:
        return lit(av)
    if op is C.NOT_LITERAL:
        return f"[^{lit(av)}]"
    if op is C.ANY:
        return None  # '.' has no case
    parts = []
    for iop, iav in av:
        if iop is C.NEGATE:
            parts.append("^")
        elif iop is C.LITERAL:
            parts.append(lit(iav))
        elif iop is C.RANGE:
            parts.append(f"{lit(iav[0])}-{lit(iav[1])}")
        elif iop is C.CATEGORY:
            if dialect == "ecma":
                return None  # ECMA patterns have no inline case flag
            parts.append(_CAT_SRC[iav])
    return "[" + "".join(parts) + "]"


def parse_regex(pattern: str, *, dialect: str = "python") -> g.Node:
    """Parse `pattern` into the IR (full-match semantics).

    Raises
    ------
    GrammarSyntaxError
        The pattern does not parse (message has the position).
    UnsupportedFeatureError
        Backreferences, lookaround, word boundaries, inner anchors, possessive/atomic constructs.
    """
    if not isinstance(pattern, str):
        raise GrammarSyntaxError(f"regex must be a str, not {type(pattern).__name__}")
    try:
        parsed = sre_parse.parse(pattern, 0)
    except re.error as e:
        pos = f" at position {e.pos}" if e.pos is not None else ""
        raise GrammarSyntaxError(f"invalid regex{pos}: {e.msg}: {pattern!r}") from None
    except (RecursionError, OverflowError) as e:
        raise GrammarSyntaxError(f"invalid regex: {type(e).__name__}: {pattern[:80]!r}") from None
    flags = parsed.state.flags
    if flags & re.LOCALE:
        raise UnsupportedFeatureError("unsupported regex flag: LOCALE (only for bytes patterns)")
    low = _Lowerer(pattern, dialect)
    try:
        return low.seq(list(parsed), flags, True, True)
    except RecursionError:
        raise GrammarSyntaxError(f"regex nests too deeply: {pattern[:80]!r}") from None


def regex_to_dfa(pattern: str, *, limits: Limits | None = None, dialect: str = "python") -> ByteDFA:
    """The minimal byte DFA of the strings `pattern` fully matches (UTF-8 encoded).

    Raises
    ------
    GrammarSyntaxError, UnsupportedFeatureError, CompileLimitError
        See `parse_regex` and `automaton.Limits`.
    CompileError
        The pattern matches no string.
    """
    dfa = build_dfa(parse_regex(pattern, dialect=dialect), limits)
    return require_nonempty(dfa, f"regex {pattern!r}")
