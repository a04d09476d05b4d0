"""Choice lists -> byte DFA, built directly as a minimal acyclic automaton (no regex escaping).

The options go into a byte trie; merging nodes with identical futures bottom-up (children are
always created after their parents, so reverse creation order visits children first) gives the
minimal DFA in one linear pass.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from .automaton import ByteDFA, _merge_classes
from .errors import CompileError


def choices_to_dfa(options: Iterable[str]) -> ByteDFA:
    """The minimal byte DFA accepting exactly the given strings.

    Raises
    ------
    CompileError
        No options, or an option that is not a str.
    """
    if isinstance(options, (str, bytes)):
        raise CompileError("choices must be a list of strings, not a single string")
    children: list = [{}]
    accept = [False]
    count = 0
    for opt in options:
        if not isinstance(opt, str):
            raise CompileError(f"every choice must be a str, got {type(opt).__name__}: {opt!r}")
        count += 1
        cur = 0
        for b in opt.encode("utf-8", "surrogatepass"):
            nxt = children[cur].get(b)
            if nxt is None:
                nxt = children[cur][b] = len(children)
                children.append({})
                accept.append(False)
            cur = nxt
        accept[cur] = True
    if count == 0:
        raise CompileError("choices: the list of options is empty")

    canon = [0] * len(children)
    registry: dict = {}
    for node in range(len(children) - 1, -1, -1):
        sig = (accept[node], tuple(sorted((b, canon[c]) for b, c in children[node].items())))
        canon[node] = registry.setdefault(sig, len(registry))

    # registry ids -> table; classes: one per byte used, plus a class for unused bytes.
    used = sorted({b for ch in children for b in ch})
    classes = np.zeros(256, np.uint8)
    if len(used) == 256:
        classes[:] = np.arange(256) % 256  # every byte used: no spare class
        n_cls = 256
    else:
        classes[used] = np.arange(1, len(used) + 1)
        n_cls = len(used) + 1
    col = classes.tolist()
    trans = np.full((len(registry), n_cls), -1, np.int32)
    acc = np.zeros(len(registry), bool)
    done = set()
    for node in range(len(children)):
        q = canon[node]
        if q in done:
            continue
        done.add(q)
        acc[q] = accept[node]
        for b, c in children[node].items():
            trans[q, col[b]] = canon[c]
    # Renumber with the start state first. Every trie node leads to an accepting one, so the
    # automaton is already trimmed and (hash-consed) minimal: only byte classes are left to merge.
    root = canon[0]
    perm = np.arange(len(registry))
    perm[[0, root]] = perm[[root, 0]]
    inv = np.argsort(perm)
    trans = np.where(trans >= 0, inv[np.maximum(trans, 0)], -1)[perm].astype(np.int32)
    return _merge_classes(ByteDFA(trans, classes, acc[perm]))
