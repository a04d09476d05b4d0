"""All numba kernels, typed by plain numpy arrays. Everything around them is plain Python.

numba is imported here only, and this module is imported only when compiling: loading a cached
artifact and serving masks never pays numba's import or JIT time.
"""

from __future__ import annotations

import numpy as np

from . import clock

with clock.one_off():
    import numba as nb
clock.watch_numba()


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


@nb.njit(cache=True, nogil=True)
def _move(elems, pos, x, q):
    """Put element x in slot q of `elems` (blocks are runs of slots); the element there takes x's
    old slot. `pos` is the inverse of `elems`. Partition refinement marks a block's members by
    moving them to its front."""
    px = pos[x]
    y = elems[q]
    elems[q] = x
    pos[x] = q
    elems[px] = y
    pos[y] = px


@nb.njit(cache=True, nogil=True)
def refine_partition(t, part, max_rounds):
    """Moore refinement: split blocks of `part` (values >= 0) until every block's members agree on the block of
    each successor (t[i, c]), or `max_rounds` rounds. Returns dense block ids and the number of
    rounds run (the last one finds nothing to split, unless max_rounds stops first).

    A round looks only at predecessors of states that changed block in the round before: a
    block's other members kept their successors' blocks, so they still agree (and stay in the
    block, which keeps its id); the touched ones are grouped by signature (hashed, then compared
    exactly: a collision never merges states). Rounds that split little cost little (a counted
    string of N characters splits one block per round for N rounds)."""
    n, k = t.shape
    # dense block ids, block runs in `elems` ([bstart, bend); touched members first)
    dense = np.full(part.max() + 1 if n else 1, -1, np.int64)
    blk = np.empty(n, np.int64)
    nb_ = 0
    for i in range(n):
        if dense[part[i]] < 0:
            dense[part[i]] = nb_
            nb_ += 1
        blk[i] = dense[part[i]]
    elems = np.argsort(blk, kind="mergesort")
    pos = np.empty(n, np.int64)
    bstart = np.zeros(n + 1, np.int64)
    bend = np.zeros(n + 1, np.int64)
    for idx in range(n):
        s = elems[idx]
        pos[s] = idx
        if idx == 0 or blk[s] != blk[elems[idx - 1]]:
            bstart[blk[s]] = idx
        bend[blk[s]] = idx + 1
    # predecessors (CSR over targets)
    off = np.zeros(n + 1, np.int64)
    for i in range(n):
        for c in range(k):
            off[t[i, c] + 1] += 1
    for j in range(n):
        off[j + 1] += off[j]
    pred = np.empty(max(n * k, 1), np.int64)
    fill = off[:-1].copy()
    for i in range(n):
        for c in range(k):
            pred[fill[t[i, c]]] = i
            fill[t[i, c]] += 1
    n_touched = np.zeros(n + 1, np.int64)
    stamp = np.zeros(n, np.int64)
    tblocks = np.empty(n, np.int64)
    moved = np.empty(n, np.int64)
    n_moved = 0
    h = np.empty(n, np.uint64)
    grp = np.empty(n, np.int64)
    reps = np.empty(n, np.int64)
    buf = np.empty(n, np.int64)
    rounds = 0
    while rounds < max_rounds:
        rounds += 1
        n_tb = 0
        for a in range(n if rounds == 1 else n_moved):
            m = a if rounds == 1 else moved[a]
            lo = m if rounds == 1 else off[m]
            hi = m + 1 if rounds == 1 else off[m + 1]
            for pi in range(lo, hi):
                s = m if rounds == 1 else pred[pi]
                if stamp[s] == rounds:
                    continue
                stamp[s] = rounds
                b = blk[s]
                _move(elems, pos, s, bstart[b] + n_touched[b])
                if n_touched[b] == 0:
                    tblocks[n_tb] = b
                    n_tb += 1
                n_touched[b] += 1
        # group each touched block's touched members (ids of this round only: no relabelling yet)
        for tbi in range(n_tb):
            b = tblocks[tbi]
            lo = bstart[b]
            nt = n_touched[b]
            has_rest = nt < bend[b] - lo
            for a in range(lo, lo + nt + (1 if has_rest else 0)):
                s = elems[a]
                x = np.uint64(1)
                for c in range(k):
                    x = (x ^ np.uint64(blk[t[s, c]])) * np.uint64(0x100000001B3)
                    x ^= x >> np.uint64(29)
                h[s] = x
            for a in range(nt):
                buf[a] = elems[lo + a]
            order = np.argsort(h[buf[:nt]])
            n_grp = 0
            i = 0
            while i < nt:
                j = i
                while j < nt and h[buf[order[j]]] == h[buf[order[i]]]:
                    j += 1
                n_reps = 0
                if has_rest and h[buf[order[i]]] == h[elems[lo + nt]]:
                    reps[0] = elems[lo + nt]  # an untouched member: group -1, stays in b
                    grp[reps[0]] = -1
                    n_reps = 1
                for a in range(i, j):
                    s = buf[order[a]]
                    found = -2
                    for r_ in range(n_reps):
                        r = reps[r_]
                        same = True
                        c = 0
                        while same and c < k:
                            same = blk[t[s, c]] == blk[t[r, c]]
                            c += 1
                        if same:
                            found = grp[r]
                            break
                    if found == -2:
                        found = n_grp
                        n_grp += 1
                        reps[n_reps] = s
                        n_reps += 1
                    grp[s] = found
                i = j
            if not has_rest:  # the largest group stays
                cnt = np.zeros(n_grp, np.int64)
                for a in range(nt):
                    cnt[grp[buf[a]]] += 1
                keep = np.argmax(cnt)
                for a in range(nt):
                    if grp[buf[a]] == keep:
                        grp[buf[a]] = -1
        # relabel: each group other than -1 becomes a new block at the front of b's run
        n_moved = 0
        for tbi in range(n_tb):
            b = tblocks[tbi]
            lo = bstart[b]
            nt = n_touched[b]
            n_touched[b] = 0
            for a in range(nt):
                buf[a] = elems[lo + a]
            key = np.empty(nt, np.int64)
            for a in range(nt):
                g = grp[buf[a]]
                key[a] = n if g < 0 else g
            order = np.argsort(key, kind="mergesort")
            for a in range(nt):
                s = buf[order[a]]
                elems[lo + a] = s
                pos[s] = lo + a
            a = 0
            while a < nt and key[order[a]] < n:
                g = key[order[a]]
                bstart[nb_] = lo + a
                while a < nt and key[order[a]] == g:
                    s = buf[order[a]]
                    blk[s] = nb_
                    moved[n_moved] = s
                    n_moved += 1
                    a += 1
                bend[nb_] = lo + a
                nb_ += 1
            bstart[b] = lo + a
        if n_moved == 0:
            break
    return blk, rounds


@nb.njit(cache=True, nogil=True)
def hopcroft_partition(t, part):
    """The coarsest refinement of `part` whose blocks agree on the block of each successor
    (t[i, c], complete: values in 0..n-1): Hopcroft's algorithm, O(k n log n) however many
    rounds Moore refinement would need (a counter of length N needs N rounds).
    Returns dense block ids in order of each block's first state."""
    n, k = t.shape
    # predecessors per (class, target), CSR
    off = np.zeros(k * n + 1, np.int64)
    for i in range(n):
        for c in range(k):
            off[c * n + t[i, c] + 1] += 1
    for j in range(k * n):
        off[j + 1] += off[j]
    pred = np.empty(max(k * n, 1), np.int32)
    fill = off[:-1].copy()
    for i in range(n):
        for c in range(k):
            j = c * n + t[i, c]
            pred[fill[j]] = i
            fill[j] += 1
    # blocks are runs of `elems`: [bstart[b], bend[b]); marked members sit at the front of a run
    elems = np.argsort(part, kind="mergesort")
    pos = np.empty(n, np.int64)
    blk = np.empty(n, np.int64)
    bstart = np.empty(n, np.int64)
    bend = np.empty(n, np.int64)
    nb_ = 0
    for idx in range(n):
        s = elems[idx]
        if idx == 0 or part[s] != part[elems[idx - 1]]:
            if nb_:
                bend[nb_ - 1] = idx
            bstart[nb_] = idx
            nb_ += 1
        blk[s] = nb_ - 1
        pos[s] = idx
    if n:
        bend[nb_ - 1] = n
    work = np.empty(n, np.int64)
    n_work = 0
    largest = 0
    for b in range(nb_):
        if bend[b] - bstart[b] > bend[largest] - bstart[largest]:
            largest = b
    for b in range(nb_):
        if b != largest:
            work[n_work] = b
            n_work += 1
    marked = np.zeros(n, np.int64)
    touched = np.empty(n, np.int64)
    splitter = np.empty(n, np.int64)
    while n_work:
        n_work -= 1
        sb = work[n_work]
        m = bend[sb] - bstart[sb]
        for a in range(m):
            splitter[a] = elems[bstart[sb] + a]
        for c in range(k):
            n_touched = 0
            for a in range(m):
                j = c * n + splitter[a]
                for pi in range(off[j], off[j + 1]):
                    x = pred[pi]
                    b = blk[x]
                    q = bstart[b] + marked[b]
                    if pos[x] < q:
                        continue  # already marked
                    _move(elems, pos, x, q)
                    if marked[b] == 0:
                        touched[n_touched] = b
                        n_touched += 1
                    marked[b] += 1
            for ti in range(n_touched):
                b = touched[ti]
                mk = marked[b]
                marked[b] = 0
                size = bend[b] - bstart[b]
                if mk == size:
                    continue
                new = nb_
                nb_ += 1
                if mk <= size - mk:  # the new block is the smaller part: relabel only that
                    bstart[new] = bstart[b]
                    bend[new] = bstart[b] + mk
                    bstart[b] = bstart[b] + mk
                else:
                    bstart[new] = bstart[b] + mk
                    bend[new] = bend[b]
                    bend[b] = bstart[b] + mk
                for q in range(bstart[new], bend[new]):
                    blk[elems[q]] = new
                # Hopcroft: `new` is the smaller half; if b was pending it still is (both halves
                # pending), else the smaller half suffices
                work[n_work] = new
                n_work += 1
    out = np.full(n, -1, np.int64)
    ids = np.full(nb_, -1, np.int64)
    nxt = 0
    for i in range(n):
        b = blk[i]
        if ids[b] < 0:
            ids[b] = nxt
            nxt += 1
        out[i] = ids[b]
    return out


@nb.njit(cache=True, nogil=True)
def walk_cfg_nd(trans, classes, flags, call_ptr, call_start, call_ret, call_first, call_skip, owner, f2,
                states, node_byte, node_depth, node_end, node_lo, node_hi, order, out,
                ex_kind, ex_k, ex_node, ex_state, ex_off, max_steps):
    """Pushdown walk of the vocabulary trie from grammar positions `states`, following every route.

    A configuration is (position, local stack of return positions pushed inside the token).
    flags[u, b]: bit 1 = byte edge, bit 2 = the rule may complete before b (b can follow it).
    Calls of u are call_ptr[u]..call_ptr[u+1]: enter if call_first[c, b], skip a nullable callee if
    call_skip[c, b]. The first byte follows byte edges only (the chart holds every other route).
    A token is allowed (bit set in out[k]) when some configuration consumes all its bytes.
    Exits (kind, k, node, state), subtree handled later: kind 1 = a configuration completed the
    starting rule before this node's byte (checked at run time against the real stack), kind 2 =
    too many configurations (the subtree goes to the Earley classifier). Both are recorded at the
    last node on the path that had a single configuration with an empty stack (its subtree covers
    every route), once per subtree; the remainder starts at depth ex_off. When that node is the
    current one, a completion is recorded only where the next byte pair can follow the rule
    (f2[owner, b, b2]): per child node (kind 1), and kind 3 for the tokens ending at the node.
    Work is bounded so that the caller can check its time limit between calls: the walk stops
    before a state once `max_steps` (trie nodes + worklist steps) are spent, or inside a state
    when they run out, and after a state whose exits overflow ex_*; an unfinished state's row
    may hold some of its bits (reset it before walking it again).
    Returns (exits of the finished states, number of finished states, why it stopped: 0 all
    done, 1 out of steps, 2 ex_* too small for the next unfinished state)."""
    C = 16
    W = 64
    P = 256
    n_nodes = node_byte.shape[0]
    # Scratch, per trie depth: every slot is written before it is read (a node's level is filled
    # from its parent's); zeroing these ~9 MB cost ~0.2 ms per call.
    cpos = np.empty(4097 * C, np.int32)
    chead = np.empty(4097 * C, np.int32)
    ccount = np.empty(4097, np.int32)
    anc_node = np.empty(4097, np.int32)
    anc_state = np.empty(4097, np.int32)
    pool_pos = np.empty(4097 * P, np.int32)
    pool_next = np.empty(4097 * P, np.int32)
    wl_pos = np.empty(W, np.int32)
    wl_head = np.empty(W, np.int32)
    cap = ex_node.shape[0]
    n_ex = 0
    spent = 0
    for k in range(states.shape[0]):
        if spent >= max_steps:
            return n_ex, k, 1
        n_ex0 = n_ex
        row = out[k]
        exd = 0
        i = 1
        while i < n_nodes:
            spent += 1
            if spent > max_steps:
                return n_ex0, k, 1
            d = node_depth[i]
            if exd >= d:
                exd = 0
            b = node_byte[i]
            base = d * C
            if d == 1:
                s = trans[states[k], classes[b]]
                if s < 0:
                    i = node_end[i]
                    continue
                cpos[base] = s
                chead[base] = -1
                ccount[d] = 1
            else:
                pb = (d - 1) * C
                if ccount[d - 1] == 1 and chead[pb] < 0:
                    x = cpos[pb]
                    f = flags[x, b]
                    if f & 2 == 0 and call_ptr[x] == call_ptr[x + 1]:
                        # one configuration, empty local stack, no call or completion here: its
                        # byte edge (or none) is the whole step, without the worklist
                        spent += 1
                        anc_node[d] = i
                        anc_state[d] = x
                        if f & 1 == 0:
                            i = node_end[i]
                            continue
                        cpos[base] = trans[x, classes[b]]
                        chead[base] = -1
                        ccount[d] = 1
                        for j in range(node_lo[i], node_hi[i]):
                            t = order[j]
                            row[t >> 5] |= np.uint32(1) << np.uint32(t & 31)
                        i += 1
                        continue
                    anc_node[d] = i
                    anc_state[d] = cpos[pb]
                else:
                    anc_node[d] = anc_node[d - 1]
                    anc_state[d] = anc_state[d - 1]
                n_out = 0
                n_pool = 0
                overflow = False
                for c in range(ccount[d - 1]):
                    wl_pos[0] = cpos[pb + c]
                    wl_head[0] = chead[pb + c]
                    nw = 1
                    steps = 0
                    while nw > 0:
                        steps += 1
                        spent += 1
                        if steps > W:
                            overflow = True
                            break
                        nw -= 1
                        x = wl_pos[nw]
                        hh = wl_head[nw]
                        f = flags[x, b]
                        if f & 1:
                            nx = trans[x, classes[b]]
                            dup = False
                            for q in range(n_out):
                                if cpos[base + q] == nx and chead[base + q] == hh:
                                    dup = True
                                    break
                            if not dup:
                                if n_out >= C:
                                    overflow = True
                                    break
                                cpos[base + n_out] = nx
                                chead[base + n_out] = hh
                                n_out += 1
                        for cc in range(call_ptr[x], call_ptr[x + 1]):
                            if call_first[cc, b] != 0:
                                if n_pool >= P or nw >= W:
                                    overflow = True
                                    break
                                e = d * P + n_pool
                                n_pool += 1
                                pool_pos[e] = call_ret[cc]
                                pool_next[e] = hh
                                wl_pos[nw] = call_start[cc]
                                wl_head[nw] = e
                                nw += 1
                            if call_skip[cc, b] != 0:
                                if nw >= W:
                                    overflow = True
                                    break
                                wl_pos[nw] = call_ret[cc]
                                wl_head[nw] = hh
                                nw += 1
                        if overflow:
                            break
                        if f & 2:
                            if hh >= 0:
                                if nw >= W:
                                    overflow = True
                                    break
                                wl_pos[nw] = pool_pos[hh]
                                wl_head[nw] = pool_next[hh]
                                nw += 1
                            elif anc_node[d] == i:
                                # single configuration before this byte: filter by the next byte
                                ow = owner[x]
                                if node_hi[i] > node_lo[i]:
                                    if n_ex < cap:
                                        ex_kind[n_ex] = 3
                                        ex_k[n_ex] = k
                                        ex_node[n_ex] = i
                                        ex_state[n_ex] = anc_state[d]
                                        ex_off[n_ex] = d - 1
                                    n_ex += 1
                                ch = i + 1
                                while ch < node_end[i]:
                                    if f2[ow, b, node_byte[ch]] != 0:
                                        if n_ex < cap:
                                            ex_kind[n_ex] = 1
                                            ex_k[n_ex] = k
                                            ex_node[n_ex] = ch
                                            ex_state[n_ex] = anc_state[d]
                                            ex_off[n_ex] = d - 1
                                        n_ex += 1
                                    ch = node_end[ch]
                            elif exd == 0:
                                if n_ex < cap:
                                    ex_kind[n_ex] = 1
                                    ex_k[n_ex] = k
                                    ex_node[n_ex] = anc_node[d]
                                    ex_state[n_ex] = anc_state[d]
                                    ex_off[n_ex] = node_depth[anc_node[d]] - 1
                                n_ex += 1
                                exd = node_depth[anc_node[d]]
                    if overflow:
                        break
                if overflow:
                    an = anc_node[d]
                    if n_ex < cap:
                        ex_kind[n_ex] = 2
                        ex_k[n_ex] = k
                        ex_node[n_ex] = an
                        ex_state[n_ex] = anc_state[d]
                        ex_off[n_ex] = node_depth[an] - 1
                    n_ex += 1
                    i = node_end[an]
                    continue
                if n_out == 0:
                    i = node_end[i]
                    continue
                ccount[d] = n_out
            for j in range(node_lo[i], node_hi[i]):
                t = order[j]
                row[t >> 5] |= np.uint32(1) << np.uint32(t & 31)
            i += 1
        if n_ex > cap:
            return n_ex0, k, 2
    return n_ex, states.shape[0], 0


@nb.njit(cache=True, nogil=True)
def closure_codes(trans, classes, cols, starts, max_nodes, code, code_ptr):
    """For each of `starts`: the states reachable from it over the bytes `cols`, numbered
    breadth-first (bytes in cols order), written as code[code_ptr[k]: code_ptr[k + 1]]: per state
    in that order, its successor's number on each byte of cols (-1: none). Equal codes mean the
    same transitions on those bytes up to renaming states, so a walk over strings of those bytes
    gives the same result from either start. More than max_nodes states: an empty code.
    code needs room for len(starts) * max_nodes * len(cols) entries."""
    num = np.full(trans.shape[0], -1, np.int32)
    queue = np.empty(max_nodes, np.int32)
    nc = cols.shape[0]
    pos = 0
    for k in range(starts.shape[0]):
        code_ptr[k] = pos
        queue[0] = starts[k]
        num[starts[k]] = 0
        q = 0
        qn = 1
        ok = True
        while q < qn and ok:
            x = queue[q]
            q += 1
            for j in range(nc):
                y = trans[x, classes[cols[j]]]
                if y >= 0 and num[y] < 0:
                    if qn == max_nodes:
                        ok = False
                        break
                    num[y] = qn
                    queue[qn] = y
                    qn += 1
                code[pos] = num[y] if y >= 0 else -1
                pos += 1
        for a in range(qn):
            num[queue[a]] = -1
        if not ok:
            pos = code_ptr[k]
    code_ptr[starts.shape[0]] = pos


@nb.njit(cache=True, nogil=True)
def _grow(a, need):
    if need <= a.shape[0]:
        return a
    b = np.empty(max(need, 2 * a.shape[0]), a.dtype)
    b[: a.shape[0]] = a
    return b


@nb.njit(cache=True, nogil=True)
def _sort_prefix(a, n):
    """Sort a[:n] in place: subsets are mostly a few states, and np.sort's new array per call
    cost about a third of `subset_construction`."""
    if n > 16:
        a[:n].sort()
        return
    for i in range(1, n):
        x = a[i]
        j = i - 1
        while j >= 0 and a[j] > x:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = x


@nb.njit(cache=True, nogil=True)
def nfa_byte_edges(own_cnt, own, b_src, b_lo, b_hi, b_dst):
    """A Thompson NFA's byte edges grouped by source state, and its byte classes, for
    `subset_construction`. own: the states' own edges as (lo, hi, target) triples flattened, in
    state order, own_cnt[s] of them for state s; b_*: embedded automata's edges (global ids), each
    put after the own edges of its source state, in their order. Classes: bytes no edge tells
    apart, numbered from byte 0 up.
    Returns (e_ptr [n + 1], e_lo, e_hi (class ids), e_dst, classes (uint8 [256]), n_cls)."""
    n = own_cnt.shape[0]
    m = own.shape[0] // 3 + b_src.shape[0]
    e_ptr = np.zeros(n + 1, np.int64)
    for s in range(n):
        e_ptr[s + 1] = own_cnt[s]
    for j in range(b_src.shape[0]):
        e_ptr[b_src[j] + 1] += 1
    for s in range(n):
        e_ptr[s + 1] += e_ptr[s]
    fill = e_ptr[:n].copy()
    lo = np.empty(m, np.int64)
    hi = np.empty(m, np.int64)
    dst = np.empty(m, np.int64)
    j = 0
    for s in range(n):
        for _ in range(own_cnt[s]):
            k = fill[s]
            lo[k] = own[3 * j]
            hi[k] = own[3 * j + 1]
            dst[k] = own[3 * j + 2]
            fill[s] += 1
            j += 1
    for j in range(b_src.shape[0]):
        k = fill[b_src[j]]
        lo[k] = b_lo[j]
        hi[k] = b_hi[j]
        dst[k] = b_dst[j]
        fill[b_src[j]] += 1
    cut = np.zeros(257, np.bool_)
    for k in range(m):
        cut[lo[k]] = True
        cut[hi[k] + 1] = True
    cut[0] = True
    classes = np.empty(256, np.uint8)
    c = -1
    for b in range(256):
        if cut[b]:
            c += 1
        classes[b] = c
    for k in range(m):
        lo[k] = classes[lo[k]]
        hi[k] = classes[hi[k]]
    return e_ptr, lo, hi, dst, classes, c + 1


@nb.njit(cache=True, nogil=True)
def _holding(sptr, buf, n_sub, x):
    """Which of the first n_sub subsets (members buf[sptr[k]:sptr[k + 1]]) hold state x."""
    got = np.zeros(n_sub, np.bool_)
    for k in range(n_sub):
        for i in range(sptr[k], sptr[k + 1]):
            if buf[i] == x:
                got[k] = True
                break
    return got


@nb.njit(cache=True, nogil=True)
def subset_construction(eps_ptr, eps_dst, e_ptr, e_lo, e_hi, e_dst, c_ptr, c_sym, c_dst,
                        n_sym, start, end, n_cls, max_states, max_work):
    """Subset construction of an NFA over byte classes + call symbols (CSR arrays).

    eps_*: epsilon moves; e_*: byte edges over class ranges e_lo..e_hi; c_*: call edges on
    symbol c_sym (0 <= c_sym < n_sym). A DFA state is the epsilon closure of its NFA states kept
    to the important ones (those with byte or call edges, and `end`), sorted. State 0 is the
    closure of `start`. Returns (trans [n, n_cls] (-1: none), accept (the subsets holding `end`),
    call triples (state, symbol, target), number of call triples, status): status 1 means more
    than `max_states` states, 2 more than `max_work` units of work (both: returned early)."""
    n = eps_ptr.shape[0] - 1
    important = np.zeros(n, np.bool_)
    for x in range(n):
        important[x] = e_ptr[x + 1] > e_ptr[x] or c_ptr[x + 1] > c_ptr[x]
    important[end] = True
    mark = np.zeros(n, np.int64)
    stamp = 0
    stack = np.empty(n, np.int64)
    out = np.empty(n, np.int64)
    seeds = np.empty(16, np.int64)
    prev = np.empty(16, np.int64)
    buf = np.empty(1024, np.int64)
    sptr = np.zeros(65, np.int64)
    snext = np.empty(64, np.int64)
    # Subsets by hash: open table of chain heads (bucket = hash & (size - 1)), chained on snext;
    # sized to twice the subsets (rebuilt from shash when they outgrow it).
    table = np.full(256, -1, np.int64)
    shash = np.empty(64, np.int64)
    trans = np.full(64 * n_cls, -1, np.int32)
    ck = np.empty(64, np.int64)
    cs = np.empty(64, np.int64)
    cd = np.empty(64, np.int64)
    n_calls = 0
    head = np.empty(n_cls, np.int64)
    shead = np.empty(max(n_sym, 1), np.int64)
    node_t = np.empty(256, np.int64)
    node_next = np.empty(256, np.int64)
    work = 0
    n_sub = 0
    k = -1  # the state being expanded (-1: the start closure)
    while True:
        # Phase A (k == -1 only): seed with the start state.
        if k == -1:
            seeds[0] = start
            n_seeds = 1
            jobs = 1
        else:
            if k >= n_sub:
                break
            if work > max_work:
                return trans[: n_sub * n_cls].reshape(n_sub, n_cls), _holding(sptr, buf, n_sub, end), ck, cs, cd, n_calls, 2
            a, b = sptr[k], sptr[k + 1]
            # Bucket every byte edge's target under each class it covers, and calls by symbol.
            head[:] = -1
            shead[:] = -1
            nn = 0
            for i in range(a, b):
                x = buf[i]
                for j in range(e_ptr[x], e_ptr[x + 1]):
                    span = e_hi[j] - e_lo[j] + 1
                    node_t = _grow(node_t, nn + span)
                    node_next = _grow(node_next, nn + span)
                    for c in range(e_lo[j], e_hi[j] + 1):
                        node_t[nn] = e_dst[j]
                        node_next[nn] = head[c]
                        head[c] = nn
                        nn += 1
                for j in range(c_ptr[x], c_ptr[x + 1]):
                    node_t = _grow(node_t, nn + 1)
                    node_next = _grow(node_next, nn + 1)
                    node_t[nn] = c_dst[j]
                    node_next[nn] = shead[c_sym[j]]
                    shead[c_sym[j]] = nn
                    nn += 1
            work += nn + (b - a)
            jobs = n_cls + n_sym
        n_prev = -1
        prev_target = -1
        for job in range(jobs):
            if k >= 0:
                h0 = head[job] if job < n_cls else shead[job - n_cls]
                if h0 < 0:
                    continue
                n_seeds = 0
                p = h0
                while p >= 0:
                    seeds = _grow(seeds, n_seeds + 1)
                    seeds[n_seeds] = node_t[p]
                    n_seeds += 1
                    p = node_next[p]
                _sort_prefix(seeds, n_seeds)
                # Neighbouring classes usually have the same targets: reuse the last state.
                if job < n_cls and n_prev == n_seeds and prev_target >= 0:
                    same = True
                    for i in range(n_seeds):
                        if seeds[i] != prev[i]:
                            same = False
                            break
                    if same:
                        trans[k * n_cls + job] = prev_target
                        continue
            # Epsilon closure of the seeds, kept to important states, sorted.
            stamp += 1
            top = 0
            for i in range(n_seeds):
                s = seeds[i]
                if mark[s] != stamp:
                    mark[s] = stamp
                    stack[top] = s
                    top += 1
            cnt = 0
            while top > 0:
                top -= 1
                x = stack[top]
                if important[x]:
                    out[cnt] = x
                    cnt += 1
                for j in range(eps_ptr[x], eps_ptr[x + 1]):
                    y = eps_dst[j]
                    if mark[y] != stamp:
                        mark[y] = stamp
                        stack[top] = y
                        top += 1
                work += 1
            _sort_prefix(out, cnt)
            h = np.int64(cnt)
            for i in range(cnt):
                h = h * np.int64(1000003) + out[i]
            # Look the subset up (chained on its hash); append it when new.
            t = table[h & (table.shape[0] - 1)]
            while t >= 0:
                if shash[t] == h and sptr[t + 1] - sptr[t] == cnt:
                    eq = True
                    base = sptr[t]
                    for i in range(cnt):
                        if buf[base + i] != out[i]:
                            eq = False
                            break
                    if eq:
                        break
                t = snext[t]
            if t < 0:
                t = n_sub
                if n_sub + 1 > max_states:
                    return trans[: n_sub * n_cls].reshape(n_sub, n_cls), _holding(sptr, buf, n_sub, end), ck, cs, cd, n_calls, 1
                base = sptr[n_sub]
                buf = _grow(buf, base + cnt)
                buf[base: base + cnt] = out[:cnt]
                sptr = _grow(sptr, n_sub + 2)
                sptr[n_sub + 1] = base + cnt
                snext = _grow(snext, n_sub + 1)
                shash = _grow(shash, n_sub + 1)
                shash[n_sub] = h
                bucket = h & (table.shape[0] - 1)
                snext[n_sub] = table[bucket]
                table[bucket] = n_sub
                n_sub += 1
                if 2 * n_sub > table.shape[0]:
                    table = np.full(2 * table.shape[0], -1, np.int64)
                    for i in range(n_sub):
                        bucket = shash[i] & (table.shape[0] - 1)
                        snext[i] = table[bucket]
                        table[bucket] = i
                if trans.shape[0] < n_sub * n_cls:
                    grown = np.full(2 * trans.shape[0], -1, np.int32)
                    grown[: trans.shape[0]] = trans
                    trans = grown
            if k >= 0:
                if job < n_cls:
                    trans[k * n_cls + job] = t
                    prev = _grow(prev, n_seeds)
                    prev[:n_seeds] = seeds[:n_seeds]
                    n_prev = n_seeds
                    prev_target = t
                else:
                    ck = _grow(ck, n_calls + 1)
                    cs = _grow(cs, n_calls + 1)
                    cd = _grow(cd, n_calls + 1)
                    ck[n_calls] = k
                    cs[n_calls] = job - n_cls
                    cd[n_calls] = t
                    n_calls += 1
        k += 1
    return trans[: n_sub * n_cls].reshape(n_sub, n_cls), _holding(sptr, buf, n_sub, end), ck, cs, cd, n_calls, 0


@nb.njit(cache=True, nogil=True)
def reach_within(trans, cols, target, depth):
    """States of table `trans` (-1: no edge) from which a path of at most `depth` edges in columns
    `cols` reaches a `target` state: a breadth-first search over the reversed edges from the
    targets. (A column list, not a column slice of a big table: numpy's copy cost more.)"""
    n = trans.shape[0]
    ptr = np.zeros(n + 1, np.int64)
    for s in range(n):
        for c in cols:
            if trans[s, c] >= 0:
                ptr[trans[s, c] + 1] += 1
    for i in range(n):
        ptr[i + 1] += ptr[i]
    src = np.empty(ptr[n], np.int64)
    fill = ptr[:n].copy()
    for s in range(n):
        for c in cols:
            t = trans[s, c]
            if t >= 0:
                src[fill[t]] = s
                fill[t] += 1
    reach = target.copy()
    queue = np.empty(n, np.int64)
    dist = np.zeros(n, np.int64)
    m = 0
    for s in range(n):
        if reach[s]:
            queue[m] = s
            m += 1
    q = 0
    while q < m:
        x = queue[q]
        q += 1
        if dist[x] >= depth:
            continue
        for j in range(ptr[x], ptr[x + 1]):
            y = src[j]
            if not reach[y]:
                reach[y] = True
                dist[y] = dist[x] + 1
                queue[m] = y
                m += 1
    return reach


@nb.njit(cache=True, nogil=True)
def minimal_rule(trans, ck, cs, cd, n_sym, accept):
    """The minimal automaton of a rule's subset DFA over byte classes + call symbols (trans
    [n, n_cls], -1: none; call edges: state ck, symbol cs, target cd; accept): Hopcroft refinement
    with one sink (index n) for missing edges, blocks numbered in breadth-first order from the
    start's (`bfs_order`), the sink dropped. One call instead of a dozen numpy passes per rule.
    Returns (table [m, n_cls + n_sym] (-1: none), accept [m])."""
    n, n_cls = trans.shape
    w = n_cls + n_sym
    full = np.full((n + 1, w), n, np.int64)
    for s in range(n):
        for c in range(n_cls):
            if trans[s, c] >= 0:
                full[s, c] = trans[s, c]
    for j in range(ck.shape[0]):
        full[ck[j], n_cls + cs[j]] = cd[j]
    part = np.empty(n + 1, np.int64)
    live = _coreachable(full, accept)
    for s in range(n):
        part[s] = (1 if accept[s] else 0) if live[s] else 2  # dead ends join the sink: trimmed
    part[n] = 2
    part = hopcroft_partition(full, part)
    n_part = part.max() + 1
    rep = np.empty(n_part, np.int64)  # each block's first state
    for s in range(n, -1, -1):
        rep[part[s]] = s
    qt = np.empty((n_part, w), np.int64)
    for b in range(n_part):
        for c in range(w):
            qt[b, c] = part[full[rep[b], c]]
    order = bfs_order(qt, part[0], part[n])
    q = np.empty((order.shape[0], w), np.int64)
    acc = np.zeros(order.shape[0], np.bool_)
    kept_blocks(qt, order, rep, n, accept, q, acc)
    return q, acc


@nb.njit(cache=True, nogil=True)
def _coreachable(full, accept):
    """States of `full` (row n: the sink) from which an accepting state is reachable."""
    n, w = full.shape[0] - 1, full.shape[1]
    n_pred = np.zeros(n + 2, np.int64)
    for s in range(n):
        for c in range(w):
            n_pred[full[s, c] + 1] += 1
    start = np.cumsum(n_pred)  # preds of t: src[start[t]: start[t + 1]]
    fill = start.copy()
    src = np.empty(start[-1], np.int64)
    for s in range(n):
        for c in range(w):
            t = full[s, c]
            src[fill[t]] = s
            fill[t] += 1
    live = np.zeros(n + 1, np.bool_)
    stack = np.empty(n, np.int64)
    m = 0
    for s in range(n):
        if accept[s]:
            live[s] = True
            stack[m] = s
            m += 1
    while m > 0:
        m -= 1
        t = stack[m]
        for k in range(start[t], start[t + 1]):
            s = src[k]
            if not live[s]:
                live[s] = True
                stack[m] = s
                m += 1
    return live


@nb.njit(cache=True, nogil=True)
def kept_blocks(qt, keep, rep, n, accept, out, acc):
    """Rows `keep` of the block table `qt` into `out`, blocks renumbered by their place in `keep`;
    `acc[i]`: block keep[i] accepts (its first state `rep` is one of the n states and accepts)."""
    new_id = np.full(qt.shape[0], -1, np.int64)
    for i in range(keep.shape[0]):
        new_id[keep[i]] = i
    for i in range(keep.shape[0]):
        b = keep[i]
        for c in range(qt.shape[1]):
            out[i, c] = new_id[qt[b, c]]
        acc[i] = rep[b] < n and accept[rep[b]]


@nb.njit(cache=True, nogil=True)
def bfs_order(qt, start, sink):
    """States of table `qt` reachable from `start` in breadth-first order, columns in order
    (`sink` is not a state)."""
    seen = np.zeros(qt.shape[0], np.bool_)
    order = np.empty(qt.shape[0], np.int64)
    order[0] = start
    seen[start] = True
    m = 1
    k = 0
    while k < m:
        for c in range(qt.shape[1]):
            x = qt[order[k], c]
            if x != sink and not seen[x]:
                seen[x] = True
                order[m] = x
                m += 1
        k += 1
    return order[:m]


@nb.njit(cache=True, nogil=True)
def product_bfs(ta, tb, max_states, max_work):
    """Reachable pairs of two complete DFAs over the same classes (ta [na, n_cls], tb [nb, n_cls],
    int64, no dead entries), numbered in the order a breadth-first queue meets them (state by
    state, class by class) from pair (0, 0). Returns (trans [n, n_cls] int32, pair codes
    x * nb + y [n], n, status): status 1 means more than `max_states` pairs, 2 more than
    `max_work` table cells (both: returned early)."""
    n_cls = ta.shape[1]
    nb_ = max(tb.shape[0], 1)
    index = nb.typed.Dict.empty(nb.types.int64, nb.types.int64)
    codes = np.empty(64, np.int64)
    trans = np.empty(64 * n_cls, np.int32)
    codes[0] = 0
    index[0] = 0
    count = 1
    k = 0
    while k < count:
        if k * n_cls > max_work:
            return trans[: k * n_cls].reshape(k, n_cls), codes, count, 2
        x, y = codes[k] // nb_, codes[k] % nb_
        trans = _grow(trans, (k + 1) * n_cls)
        for c in range(n_cls):
            code = ta[x, c] * nb_ + tb[y, c]
            got = index.get(code, -1)
            if got < 0:
                if count >= max_states:
                    return trans[: k * n_cls].reshape(k, n_cls), codes, count + 1, 1
                got = count
                index[code] = got
                codes = _grow(codes, count + 1)
                codes[count] = code
                count += 1
            trans[k * n_cls + c] = got
        k += 1
    return trans[: count * n_cls].reshape(count, n_cls), codes[:count], count, 0


@nb.njit(cache=True, nogil=True)
def encode_rows(m):
    """Compressed form of mask rows m [n, n_words] (uint32): each row dense, or a fill word (0,
    or all-ones when those outnumber zero words) plus the (index, word) pairs that differ from it,
    whichever is smaller (a pair costs two words: dense past half the row). Returns (fill
    (0 or -1), dense index or -1, start of each row's pairs [n + 1], pair word indices, pair words,
    dense rows)."""
    n, w = m.shape
    fill = np.zeros(n, np.int32)
    dense_ix = np.full(n, -1, np.int32)
    starts = np.zeros(n + 1, np.int64)
    full = np.uint32(0xFFFFFFFF)
    n_dense = 0
    total = 0
    for i in range(n):
        zeros = 0
        ones = 0
        for j in range(w):
            x = m[i, j]
            if x == 0:
                zeros += 1
            elif x == full:
                ones += 1
        use_ones = ones > zeros
        exc = w - ones if use_ones else w - zeros
        if 2 * exc >= w:
            dense_ix[i] = n_dense
            n_dense += 1
        else:
            fill[i] = -1 if use_ones else 0
            total += exc
        starts[i + 1] = total
    exc_idx = np.empty(total, np.int32)
    exc_val = np.empty(total, np.uint32)
    dense = np.empty((n_dense, w), np.uint32)
    for i in range(n):
        if dense_ix[i] >= 0:
            dense[dense_ix[i]] = m[i]
            continue
        f = full if fill[i] == -1 else np.uint32(0)
        k = starts[i]
        for j in range(w):
            if m[i, j] != f:
                exc_idx[k] = j
                exc_val[k] = m[i, j]
                k += 1
    return fill, dense_ix, starts, exc_idx, exc_val, dense


@nb.njit(cache=True, nogil=True)
def sink_routed(trans, live):
    """`trans` (-1: no edge) with one sink row n appended and every edge to a state that is not
    `live` (or missing) sent to it: minimisation's table (one pass instead of four numpy ones)."""
    n, m = trans.shape
    out = np.empty((n + 1, m), trans.dtype)
    for s in range(n):
        for c in range(m):
            t = trans[s, c]
            out[s, c] = t if t >= 0 and live[t] else n
    out[n, :] = n
    return out


@nb.njit(cache=True, nogil=True)
def minimal_dfa(trans, accept, refine):
    """`automaton.minimize` in one call: the states that can still accept (`reach_within`), every
    other edge routed to one sink (`sink_routed`), Hopcroft's partition (unless `refine` is False:
    the states as they are), blocks numbered by their first original state (so the start stays 0),
    only those reachable from the start (`bfs_order`). Returns (table [m, n_cls] int32 (-1: none),
    accept [m], merged class of each class, first class of each merged class); m == 0: the empty
    language."""
    n, k = trans.shape
    live = reach_within(trans, np.arange(k), accept, n)
    if not live[0]:
        return np.empty((0, k), np.int32), np.zeros(0, np.bool_), np.zeros(k, np.int64), np.zeros(0, np.int64)
    t = sink_routed(trans, live).astype(np.int64)
    if refine:
        part = np.empty(n + 1, np.int64)
        for s in range(n):
            part[s] = 1 if accept[s] else 0
        part[n] = 2  # the sink stays apart from real dead-ends
        part = hopcroft_partition(t, part)
    else:
        part = np.arange(n + 1)
    n_part = part.max() + 1
    rep = np.full(n_part, -1, np.int64)  # each block's first state
    for s in range(n, -1, -1):
        rep[part[s]] = s
    qt = np.empty((n_part, k), np.int64)
    for b in range(n_part):
        r = rep[b] if rep[b] >= 0 else n
        for c in range(k):
            qt[b, c] = part[t[r, c]]
    keep = bfs_order(qt, part[0], part[n])
    keep = keep[np.argsort(rep[keep])]  # first states are distinct: any sort is this order
    m = keep.shape[0]
    out = np.empty((m, k), np.int32)
    acc = np.zeros(m, np.bool_)
    kept_blocks(qt, keep, rep, n, accept, out, acc)
    # classes whose columns are identical merge, numbered by first occurrence (hashed, then
    # compared exactly)
    h = np.empty(k, np.uint64)
    for c in range(k):
        x = np.uint64(14695981039346656037)
        for i in range(m):
            x = (x ^ np.uint64(out[i, c] + 1)) * np.uint64(1099511628211)
        h[c] = x
    inverse = np.empty(k, np.int64)
    first = np.empty(k, np.int64)
    u = 0
    for c in range(k):
        found = -1
        for j in range(u):
            f = first[j]
            if h[f] == h[c]:
                same = True
                for i in range(m):
                    if out[i, f] != out[i, c]:
                        same = False
                        break
                if same:
                    found = j
                    break
        if found < 0:
            first[u] = c
            inverse[c] = u
            u += 1
        else:
            inverse[c] = found
    return out, acc, inverse, first[:u]


@nb.njit(cache=True, nogil=True)
def row_hashes(rows, keys):
    """A 64-bit fingerprint per row of a uint32 matrix: sum of word j times keys[j] (random odd
    64-bit numbers), mod 2^64 (a universal hash; vectorised: ~1 us per row at 100k tokens, where
    Python's hash of the row's bytes costs ~3 us). Equal rows get equal fingerprints; callers
    compare rows exactly on a match."""
    n, m = rows.shape
    out = np.zeros(n, np.uint64)
    for i in range(n):
        h = np.uint64(0)
        for j in range(m):
            h += np.uint64(rows[i, j]) * keys[j]
        out[i] = h
    return out


@nb.njit(cache=True, nogil=True)
def spread_rows(compact, order, n_words):
    """Rows over a sub-vocabulary (bit j of compact[r] for token order[j]) as rows over the whole
    vocabulary, sparse: row r's nonzero words are idx[ptr[r]:ptr[r+1]] (ascending), val[...]."""
    k, cw = compact.shape
    dense = np.zeros(n_words, np.uint32)
    touched = np.empty(min(cw * 32, n_words), np.int64)
    ptr = np.zeros(k + 1, np.int64)
    idx = np.empty(k * len(touched), np.int64)
    val = np.empty(k * len(touched), np.uint32)
    n = 0
    for r in range(k):
        n_t = 0
        for w in range(cw):
            x = compact[r, w]
            b = 0
            while x != 0:
                if x & np.uint32(1):
                    t = np.int64(order[w * 32 + b])
                    q = t >> 5
                    if dense[q] == 0:
                        touched[n_t] = q
                        n_t += 1
                    dense[q] |= np.uint32(1) << np.uint32(t & 31)
                x >>= np.uint32(1)
                b += 1
        words = np.sort(touched[:n_t])
        for a in range(n_t):
            q = words[a]
            idx[n] = q
            val[n] = dense[q]
            dense[q] = 0
            n += 1
        ptr[r + 1] = n
    return ptr, idx[:n], val[:n]


@nb.njit(cache=True, nogil=True)
def same_local(trans, final, call_ptr, call_nt, call_next, a, b, map_a, map_b, queue):
    """Whether the parts of the network reachable from positions a and b through their own
    rules' edges (bytes, and calls to their return positions) are isomorphic with a mapped to b:
    same completion flags, byte edges and callees (calls sorted by callee) at mapped positions.
    map_a, map_b (int64 [n_pos], all -1) and queue (int64 [n_pos]) are scratch; the maps are
    all -1 again on return."""
    n_cls = trans.shape[1]
    ok = True
    map_a[a] = b
    map_b[b] = a
    queue[0] = a
    head, tail = 0, 1  # queue[:tail]: the mapped positions of a's side, [head:tail] unchecked
    while ok and head < tail:
        p = queue[head]
        head += 1
        q = map_a[p]
        n_calls = call_ptr[p + 1] - call_ptr[p]
        if final[p] != final[q] or n_calls != call_ptr[q + 1] - call_ptr[q]:
            ok = False
            break
        for j in range(n_cls + n_calls):
            if j < n_cls:
                x, y = trans[p, j], trans[q, j]
            else:
                k = j - n_cls
                if call_nt[call_ptr[p] + k] != call_nt[call_ptr[q] + k]:
                    ok = False
                    break
                x, y = call_next[call_ptr[p] + k], call_next[call_ptr[q] + k]
            if (x < 0) != (y < 0):
                ok = False
                break
            if x < 0:
                continue
            if map_a[x] < 0 and map_b[y] < 0:
                map_a[x] = y
                map_b[y] = x
                queue[tail] = x
                tail += 1
            elif map_a[x] != y or map_b[y] != x:
                ok = False
                break
    for i in range(tail):
        map_b[map_a[queue[i]]] = -1
        map_a[queue[i]] = -1
    return ok


@nb.njit(cache=True, nogil=True)
def trie_parents(node_depth):
    """Parent of each node of a trie given in DFS preorder by its depths (the root, node 0: 0):
    the nearest earlier node one level up."""
    n = node_depth.shape[0]
    parent = np.zeros(n, np.int64)
    last = np.zeros(n + 1, np.int64)  # the last node met at each depth
    for i in range(1, n):
        parent[i] = last[node_depth[i] - 1]
        last[node_depth[i]] = i
    return parent
