"""Choice lists -> byte DFA, built directly from a trie of the options (no regex escaping).

The options' byte trie comes from the same numba kernel that builds the vocabulary trie; its
nodes become DFA states and the generic minimiser merges the shared suffixes.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from .automaton import ByteDFA, Limits, _Budget, minimize
from .errors import CompileError


def choices_to_dfa(options: Iterable[str], limits: Limits | None = None) -> ByteDFA:
    """The minimal byte DFA accepting exactly the given strings.

    Raises
    ------
    CompileError
        No options, or an option that is not a str.
    """
    from .kernels import build_trie

    if isinstance(options, (str, bytes)):
        raise CompileError("choices must be a list of strings, not a single string")
    encoded = []
    for opt in options:
        if not isinstance(opt, str):
            raise CompileError(f"every choice must be a str, got {type(opt).__name__}: {opt!r}")
        encoded.append(opt.encode("utf-8", "surrogatepass"))
    if not encoded:
        raise CompileError("choices: the list of options is empty")
    budget = _Budget(limits or Limits())
    lengths = np.fromiter(map(len, encoded), np.int64, len(encoded))
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = np.frombuffer(b"".join(encoded), np.uint8) if offsets[-1] else np.zeros(1, np.uint8)
    order = np.array(sorted(range(len(encoded)), key=encoded.__getitem__), np.int32)
    node_byte, node_depth, _end, node_lo, node_hi = build_trie(data, offsets, order)
    n = len(node_byte)
    budget.check_states(n)

    # Parent of each node: the nearest earlier node one level up (nodes are in DFS preorder).
    parent = np.zeros(n, np.int64)
    idx = np.arange(n)
    for d in range(1, int(node_depth.max()) + 1):
        here, above = idx[node_depth == d], idx[node_depth == d - 1]
        parent[here] = above[np.searchsorted(above, here) - 1]

    used = np.unique(node_byte[1:])
    classes = np.zeros(256, np.uint8)
    if len(used) == 256:
        classes[:] = np.arange(256)
    else:
        classes[used] = np.arange(1, len(used) + 1)  # class 0: bytes no option uses
    trans = np.full((n, int(classes.max()) + 1), -1, np.int32)
    trans[parent[1:], classes[node_byte[1:]]] = idx[1:]
    return minimize(ByteDFA(trans, classes, node_hi > node_lo), budget)
