"""All numba kernels, typed by plain numpy arrays. Everything around them is plain Python.

numba is imported here only, and this module is imported only when compiling: loading a cached
artifact and serving masks never pays numba's import or JIT time.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True)
def build_trie(data, offsets, order):
    """Byte trie of the tokens `order` (ids sorted by their bytes), nodes in DFS preorder.

    data/offsets: concatenated token bytes (uint8) and int64 offsets, indexed by token id.
    Returns node_byte, node_depth, node_end (index just past the node's subtree),
    node_lo/node_hi (range of positions in `order` of tokens ending exactly at the node).
    """
    cap = 1
    for k in range(order.shape[0]):
        t = order[k]
        cap += offsets[t + 1] - offsets[t]
    node_byte = np.zeros(cap, np.uint8)
    node_depth = np.zeros(cap, np.int32)
    node_end = np.zeros(cap, np.int32)
    node_lo = np.zeros(cap, np.int32)
    node_hi = np.zeros(cap, np.int32)
    path = np.zeros(4096, np.int32)  # node index per depth on the current root path
    n = 1
    depth = 0
    prev = -1
    for k in range(order.shape[0]):
        t = order[k]
        a, b = offsets[t], offsets[t + 1]
        length = b - a
        lcp = 0
        if prev >= 0:
            pa, pb = offsets[prev], offsets[prev + 1]
            while lcp < length and lcp < pb - pa and data[a + lcp] == data[pa + lcp]:
                lcp += 1
        if prev >= 0 and lcp == length and length == offsets[prev + 1] - offsets[prev]:
            node_hi[path[length]] = k + 1  # same bytes as the previous token
            prev = t
            continue
        for d in range(depth, lcp, -1):
            node_end[path[d]] = n
        for d in range(lcp + 1, length + 1):
            node_byte[n] = data[a + d - 1]
            node_depth[n] = d
            path[d] = n
            n += 1
        node_lo[path[length]] = k
        node_hi[path[length]] = k + 1
        depth = length
        prev = t
    for d in range(depth, 0, -1):
        node_end[path[d]] = n
    node_end[0] = n
    return node_byte[:n], node_depth[:n], node_end[:n], node_lo[:n], node_hi[:n]


@nb.njit(cache=True, nogil=True)
def walk_masks(trans, classes, states, node_byte, node_depth, node_end, node_lo, node_hi, order, out, counts):
    """For each DFA state in `states`, set in out[k] (uint32 words) the bit of every token whose
    bytes stay inside the DFA from that state, and count them in counts[k]. A dead prefix skips
    its whole trie subtree."""
    n_nodes = node_byte.shape[0]
    stack = np.zeros(4097, np.int32)
    for k in range(states.shape[0]):
        stack[0] = states[k]
        row = out[k]
        c = 0
        i = 1
        while i < n_nodes:
            d = node_depth[i]
            s = trans[stack[d - 1], classes[node_byte[i]]]
            if s < 0:
                i = node_end[i]
                continue
            stack[d] = s
            for j in range(node_lo[i], node_hi[i]):
                t = order[j]
                row[t >> 5] |= np.uint32(1) << np.uint32(t & 31)
                c += 1
            i += 1
        counts[k] = c
