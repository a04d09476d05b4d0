"""llama.cpp GBNF text -> `Cfg` (the same IR as Lark grammars; GBNF has no lexer, so literals and
character classes are the leaves and whitespace is whatever the grammar spells out).

Syntax: `name ::= alternatives`, `|`, grouping `( )`, literals `"..."`, classes `[...]` / `[^...]`,
any character `.`, postfix `* + ?` and `{m}` `{m,}` `{m,n}` `{,n}`, `#` comments. Escapes:
`\\n \\r \\t \\\\ \\" \\[ \\] \\- \\xHH \\uHHHH \\UHHHHHHHH`. A rule's body runs until the next
`name ::=`, so bodies may span lines (a superset of llama.cpp's line rules).
"""

from __future__ import annotations

import re

from . import grammar as g
from .automaton import Limits
from .cfg import GRAMMAR_INLINE_LIMIT, Cfg, Ref, check
from .errors import CompileError, GrammarSyntaxError

_NAME = re.compile(r"[A-Za-z0-9_-]+")
_SPACE = re.compile(r"(?:\s|#[^\n]*)*")
_SIMPLE_ESC = {"n": 10, "r": 13, "t": 9, "\\": 92, '"': 34, "[": 91, "]": 93, "-": 45, "/": 47,
               "'": 39, "^": 94, "0": 0}
_HEX = {"x": 2, "u": 4, "U": 8}


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def error(self, msg: str, pos: int | None = None) -> GrammarSyntaxError:
        pos = self.pos if pos is None else pos
        line = self.text.count("\n", 0, pos) + 1
        col = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        lines = self.text.split("\n")
        src = lines[line - 1] if line <= len(lines) else ""
        return GrammarSyntaxError(f"GBNF syntax error at line {line}, column {col}: {msg}\n"
                                  f"  {src}\n  {' ' * (col - 1)}^")

    def space(self) -> None:
        self.pos = _SPACE.match(self.text, self.pos).end()

    def at_rule_start(self) -> bool:
        m = _NAME.match(self.text, self.pos)
        if not m:
            return False
        rest = _SPACE.match(self.text, m.end()).end()
        return self.text.startswith("::=", rest)

    def rules(self) -> dict:
        out: dict = {}
        self.space()
        while self.pos < len(self.text):
            m = _NAME.match(self.text, self.pos)
            if not m:
                raise self.error(f"unexpected {self.text[self.pos]!r}, expected a rule name")
            name = m.group()
            self.pos = m.end()
            self.space()
            if not self.text.startswith("::=", self.pos):
                raise self.error("expected '::=' after the rule name")
            self.pos += 3
            self.space()
            body = self.alternates(top=True)
            if name in out:
                out[name] = g.Alt((out[name], body))
            else:
                out[name] = body
            self.space()
        if not out:
            raise self.error("the grammar has no rules")
        return out

    def alternates(self, top: bool):
        alts = [self.sequence(top)]
        while self.pos < len(self.text) and self.text[self.pos] == "|":
            self.pos += 1
            self.space()
            alts.append(self.sequence(top))
        return g.alt(*alts)

    def sequence(self, top: bool):
        items = []
        while True:
            self.space()
            if self.pos >= len(self.text):
                break
            c = self.text[self.pos]
            if c in "|)":
                break
            if top and self.at_rule_start():
                break
            items.append(self.postfix(self.item()))
        return g.Seq(tuple(items)) if len(items) != 1 else items[0]

    def item(self):
        t, start = self.text, self.pos
        c = t[start]
        if c == '"':
            self.pos += 1
            out = []
            while True:
                if self.pos >= len(t) or t[self.pos] == "\n":
                    raise self.error("unterminated string literal", start)
                if t[self.pos] == '"':
                    self.pos += 1
                    break
                out.append(self.char())
            return g.Bytes("".join(map(chr, out)).encode("utf-8", "surrogatepass"))
        if c == "[":
            self.pos += 1
            neg = self.pos < len(t) and t[self.pos] == "^"
            if neg:
                self.pos += 1
            ranges = []
            while True:
                if self.pos >= len(t) or t[self.pos] == "\n":
                    raise self.error("unterminated character class", start)
                if t[self.pos] == "]":
                    self.pos += 1
                    break
                lo = self.char()
                hi = lo
                if t.startswith("-", self.pos) and not t.startswith("-]", self.pos):
                    self.pos += 1
                    hi = self.char()
                    if hi < lo:
                        raise self.error(f"bad range {chr(lo)!r}-{chr(hi)!r} in character class")
                ranges.append((lo, hi))
            rs = g.normalize_ranges(ranges)
            return g.CharSet(g.complement_ranges(rs) if neg else rs)
        if c == "(":
            self.pos += 1
            self.space()
            body = self.alternates(top=False)
            self.space()
            if self.pos >= len(t) or t[self.pos] != ")":
                raise self.error("expected ')'", start)
            self.pos += 1
            return body
        if c == ".":
            self.pos += 1
            return g.CharSet(((0, g.MAX_CODE_POINT),))
        m = _NAME.match(t, self.pos)
        if m:
            self.pos = m.end()
            return Ref(m.group())
        raise self.error(f"unexpected character {c!r}")

    def char(self) -> int:
        t = self.text
        if self.pos >= len(t) or t[self.pos] == "\n":
            raise self.error("unexpected end of line")
        c = t[self.pos]
        if c != "\\":
            self.pos += 1
            return ord(c)
        if self.pos + 1 >= len(t):
            raise self.error("dangling backslash")
        e = t[self.pos + 1]
        if e in _SIMPLE_ESC:
            self.pos += 2
            return _SIMPLE_ESC[e]
        if e in _HEX:
            n = _HEX[e]
            digits = t[self.pos + 2: self.pos + 2 + n]
            if len(digits) != n or not all(d in "0123456789abcdefABCDEF" for d in digits):
                raise self.error(f"bad escape \\{e}: expected {n} hex digits")
            self.pos += 2 + n
            cp = int(digits, 16)
            if cp > g.MAX_CODE_POINT:
                raise self.error(f"escape \\{e}{digits} is not a code point")
            return cp
        raise self.error(f"unknown escape \\{e}")

    def postfix(self, node):
        t = self.text
        while self.pos < len(t):
            c = t[self.pos]
            if c == "*":
                node = g.Repeat(node, 0, None)
            elif c == "+":
                node = g.Repeat(node, 1, None)
            elif c == "?":
                node = g.Repeat(node, 0, 1)
            elif c == "{":
                m = re.compile(r"\{\s*(\d*)\s*(,?)\s*(\d*)\s*\}").match(t, self.pos)
                if not m or (not m.group(1) and not m.group(3)):
                    raise self.error("bad repetition, expected {m}, {m,}, {m,n} or {,n}")
                lo = int(m.group(1) or 0)
                hi = (int(m.group(3)) if m.group(3) else None) if m.group(2) else lo
                if hi is not None and hi < lo:
                    raise self.error(f"bad repetition {{{lo},{hi}}}: max below min")
                node = g.Repeat(node, lo, hi)
                self.pos = m.end()
                continue
            else:
                break
            self.pos += 1
        return node


def load_gbnf(text: str, *, start: str = "root", limits: Limits | None = None) -> Cfg:
    """Parse GBNF text into a `Cfg`.

    Raises
    ------
    GrammarSyntaxError
        With line, column and a caret.
    CompileError
        Missing start rule, undefined or unproductive rules, empty language.
    """
    if not isinstance(text, str):
        raise CompileError(f"a GBNF grammar must be a str, not {type(text).__name__}")
    rules = _Parser(text).rules()
    if start not in rules:
        raise CompileError(f"GBNF grammar has no {start!r} rule (the start rule)")
    cfg = Cfg(rules, start, "gbnf", inline_limit=GRAMMAR_INLINE_LIMIT)
    check(cfg)
    return cfg
