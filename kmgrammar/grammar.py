"""The regular-language IR every frontend lowers to: bytes, character sets, sequence, choice, repeat,
and graphs (an automaton whose edges are nodes).

Frontends (regex, choice lists, JSON Schema) build these nodes; `automaton.build_dfa` turns a node
into a byte-level DFA. Character sets are code point ranges and are encoded to UTF-8 by the
automaton builder, so frontends never think about bytes unless they want to (`ByteSet`).
A ready-made `ByteDFA` (e.g. an intersection) can be embedded with `Dfa`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

MAX_CODE_POINT = 0x10FFFF


@dataclass(frozen=True)
class Bytes:
    """A literal byte string (UTF-8 of a literal text)."""

    data: bytes


@dataclass(frozen=True)
class ByteSet:
    """One byte from inclusive ranges ((lo, hi), ...)."""

    ranges: tuple


@dataclass(frozen=True)
class CharSet:
    """One code point from inclusive ranges ((lo, hi), ...), encoded as UTF-8; surrogates never match."""

    ranges: tuple


@dataclass(frozen=True)
class Seq:
    items: tuple


@dataclass(frozen=True)
class Alt:
    items: tuple


@dataclass(frozen=True)
class Repeat:
    """`item` repeated min..max times (max None = unbounded)."""

    item: "Node"
    min: int
    max: Optional[int]


@dataclass(frozen=True)
class Dfa:
    """An already built `automaton.ByteDFA` used as a sub-language."""

    dfa: object


@dataclass(frozen=True, eq=False)
class Graph:
    """A sub-language given as an automaton whose edges are nodes: n nodes, paths from `start`
    to one of `finals`, edges (u, v, node or None for an empty edge). It is built straight into
    the Thompson NFA, so a DAG of paths (n optional properties, any-order objects) costs its
    edges, not its paths."""

    n: int
    start: int
    finals: tuple
    edges: tuple

    def labels(self) -> list:
        """The edges' nodes (empty edges left out)."""
        return [lab for _u, _v, lab in self.edges if lab is not None]

    def map(self, f) -> "Graph":
        """The same graph with f(node) on every edge's node."""
        return Graph(self.n, self.start, self.finals,
                     tuple((u, v, None if lab is None else f(lab)) for u, v, lab in self.edges))


Node = Union[Bytes, ByteSet, CharSet, Seq, Alt, Repeat, Dfa, Graph]

EMPTY = Seq(())  # the language {""}


def text(s: str) -> Bytes:
    return Bytes(s.encode("utf-8"))


def seq(*items: Node) -> Node:
    flat = []
    for it in items:
        if isinstance(it, Seq):
            flat.extend(it.items)
        else:
            flat.append(it)
    return flat[0] if len(flat) == 1 else Seq(tuple(flat))


def alt(*items: Node) -> Node:
    return items[0] if len(items) == 1 else Alt(tuple(items))


def optional(item: Node) -> Node:
    return Repeat(item, 0, 1)


def normalize_ranges(ranges) -> tuple:
    """Sort and merge overlapping or adjacent inclusive ranges."""
    out: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if lo > hi:
            continue
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((lo, hi) for lo, hi in out)


def complement_ranges(ranges, top: int = MAX_CODE_POINT) -> tuple:
    out = []
    nxt = 0
    for lo, hi in normalize_ranges(ranges):
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= top:
        out.append((nxt, top))
    return tuple(out)
