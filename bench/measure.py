"""Measurements: compile and load timings, per-token mask time, mask agreement and the oracle audit.

Mask time is the wall time of one ``fill`` call (one bitmask row) measured with
``perf_counter_ns`` around that call only, while walking a valid document token by token; the
walk is repeated from a reset matcher so every step is measured many times, with the garbage
collector off. Agreement compares kmgrammar's bitmask with each peer's at the same step,
bit for bit on the regular tokens (special tokens excluded) plus the first EOS id; every
differing token is then judged by the workload's oracle.
"""

from __future__ import annotations

import gc
import math
import statistics
import time

import numpy as np

MAX_EXAMPLES = 12  # differing tokens kept per (workload, peer) in the report


def timer_floor_ns(n: int = 20000) -> float:
    """Median cost of the timing itself (two perf_counter_ns calls), in ns."""
    pc = time.perf_counter_ns
    out = []
    for _ in range(n):
        t0 = pc()
        out.append(pc() - t0)
    return float(np.median(out))


def timed(fn, repeats: int) -> tuple:
    """(seconds of each call, last result)."""
    times, result = [], None
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def summary_seconds(times) -> dict | None:
    if not times:
        return None
    return {"median_s": statistics.median(times), "min_s": min(times), "all_s": list(times)}


def new_bitmask(vocab_size: int) -> np.ndarray:
    return np.zeros((1, (vocab_size + 31) // 32), dtype=np.int32)


def mask_times(matcher, ids: list, vocab_size: int, samples: int) -> dict:
    """Per-token fill time (µs) over repeated walks of ``ids``; stops a walk where the engine
    rejects a token of the document."""
    bm = new_bitmask(vocab_size)
    steps = len(ids) + 1
    passes = max(5, math.ceil(samples / steps))
    pc = time.perf_counter_ns
    fill, accept, reset = matcher.fill, matcher.accept, matcher.reset
    out = []
    stopped = None
    gc.collect()
    gc.disable()
    try:
        for p in range(passes + 1):  # pass 0 warms caches and is not recorded
            reset()
            for i in range(steps):
                t0 = pc()
                fill(bm)
                t1 = pc()
                if p:
                    out.append(t1 - t0)
                if i < len(ids) and not accept(ids[i]):
                    stopped = i
                    break
    finally:
        gc.enable()
    us = np.asarray(out, dtype=np.float64) / 1000.0
    res = {"n": int(us.size), "passes": passes, "steps": steps}
    if us.size:
        res.update(mean_us=float(us.mean()), p50_us=float(np.percentile(us, 50)),
                   p99_us=float(np.percentile(us, 99)), max_us=float(us.max()))
    if stopped is not None:
        res["walk_stopped_at_step"] = stopped
    return res


def unpack(bm: np.ndarray, vocab_size: int) -> np.ndarray:
    return np.unpackbits(bm.reshape(-1).view(np.uint8), bitorder="little")[:vocab_size].astype(bool)


def agreement(matchers: dict, ids: list, vocab, wl, *, audit: bool) -> dict:
    """Walk ``ids`` with every engine, comparing each peer's mask with kmgrammar's.

    Returns per engine: steps compared, steps/tokens differing, oracle verdicts and examples;
    for kmgrammar itself, the audit against the oracle over the whole vocabulary."""
    n = vocab.vocab_size
    tb = vocab.token_bytes
    special = np.zeros(n, dtype=bool)
    special[list(vocab.special_token_ids)] = True
    special[vocab.n_tokens:] = True
    regular = ~special
    eos0 = vocab.eos_token_ids[0]
    other_special = special.copy()
    other_special[list(vocab.eos_token_ids)] = False
    regular_ids = np.flatnonzero(regular)

    live = dict(matchers)
    for m in live.values():
        m.reset()
    res = {name: {"steps_compared": 0, "steps_differing": 0, "tokens_differing": 0,
                  "peer_allows_extra": 0, "peer_misses": 0, "eos_differing": 0,
                  "specials_allowed": 0, "verdict": {"kmgrammar": 0, "peer": 0, "unknown": 0},
                  "tokens_differing_where_forced": 0, "misses_after_match_before_last_byte": 0,
                  "examples": []} for name in live}
    res["kmgrammar"] = {"steps_compared": 0, "audit_tokens": 0, "audit_errors": 0,
                        "audit_unknown": 0, "eos_errors": 0, "specials_allowed": 0,
                        "examples": []}
    bms = {name: new_bitmask(n) for name in live}
    prefix = b""
    for step in range(len(ids) + 1):
        masks = {}
        for name, m in live.items():
            m.fill(bms[name])
            masks[name] = unpack(bms[name], n)
        km = masks.get("kmgrammar")
        complete = wl.is_complete(prefix)
        kmm = live.get("kmgrammar")
        # Text every continuation must start with: where it is non-empty, an engine that admits
        # only the canonical tokenization of forced text (llguidance) differs by design.
        forced = kmm.forced_bytes() if kmm is not None and kmm.forced_bytes else b""
        if km is not None:
            r = res["kmgrammar"]
            r["steps_compared"] += 1
            r["specials_allowed"] += int((km & other_special).sum())
            r["eos_errors"] += int(km[eos0] != complete)
            if audit:
                _audit(r, km, regular_ids, tb, prefix, wl, step)
        for name, mask in masks.items():
            if name == "kmgrammar" or km is None:
                continue
            r = res[name]
            r["steps_compared"] += 1
            r["specials_allowed"] += int((mask & other_special).sum())
            if mask[eos0] != km[eos0]:
                r["eos_differing"] += 1
                _judge(r, step, prefix, eos0, b"<EOS>", bool(km[eos0]), complete)
            diff = np.flatnonzero((mask ^ km) & regular)
            if diff.size:
                r["steps_differing"] += 1
                r["tokens_differing"] += int(diff.size)
                r["peer_allows_extra"] += int(mask[diff].sum())
                r["peer_misses"] += int(km[diff].sum())
                if forced:
                    r["tokens_differing_where_forced"] += int(diff.size)
                # The signature of outlines-core's dropped tokens: the text one byte before the
                # token's end is already a full match, the token's whole text is not.
                r["misses_after_match_before_last_byte"] += sum(
                    1 for t in diff.tolist() if km[t] and not mask[t] and len(tb[t]) > 0
                    and wl.is_complete(prefix + tb[t][:-1]) and not wl.is_complete(prefix + tb[t]))
                for t in diff.tolist():
                    _judge(r, step, prefix, t, tb[t], bool(km[t]), wl.is_viable(prefix + tb[t]))
        if step == len(ids):
            break
        tok = ids[step]
        for name in list(live):
            if not live[name].accept(tok):
                res[name]["rejected_document_token"] = {
                    "step": step, "token": tok, "token_bytes": show(tb[tok]),
                    "prefix": show(prefix), "oracle_viable": wl.is_viable(prefix + tb[tok])}
                del live[name]
        prefix += tb[tok]
    return res


def _audit(r, km, regular_ids, tb, prefix, wl, step):
    allowed = km[regular_ids]
    for t, a in zip(regular_ids.tolist(), allowed.tolist()):
        v = wl.is_viable(prefix + tb[t])
        r["audit_tokens"] += 1
        if v is None:
            r["audit_unknown"] += 1
        elif v != a:
            r["audit_errors"] += 1
            if len(r["examples"]) < MAX_EXAMPLES:
                r["examples"].append({"step": step, "prefix": show(prefix), "token": t,
                                      "token_bytes": show(tb[t]), "kmgrammar": a, "oracle": v})


def _judge(r, step, prefix, t, data, km_allows, oracle):
    if oracle is None:
        r["verdict"]["unknown"] += 1
    elif oracle == km_allows:
        r["verdict"]["kmgrammar"] += 1
    else:
        r["verdict"]["peer"] += 1
    if len(r["examples"]) < MAX_EXAMPLES:
        r["examples"].append({"step": step, "prefix": show(prefix), "token": t,
                              "token_bytes": show(data), "kmgrammar": km_allows,
                              "peer": not km_allows, "oracle": oracle})


def show(data: bytes) -> str:
    """Bytes as text where possible, with \\xNN for the rest (JSON-safe)."""
    return data.decode("utf-8", "backslashreplace")


def acceptance(factories: dict, documents, encode, eos: int) -> dict:
    """For each engine (name -> function making a fresh matcher): the documents, tokenized by
    the real tokenizer, it fails to accept token by token and then with EOS."""
    out = {}
    for name, make in factories.items():
        failed = []
        for doc in documents:
            m = make()
            ids = encode(doc)
            at = next((i for i, t in enumerate(ids) if not m.accept(t)), None)
            if at is None and not m.accept(eos):
                at = len(ids)
            if at is not None:
                failed.append({"document": doc, "failed_at_token": at, "tokens": len(ids)})
        out[name] = {"documents": len(documents), "failed": len(failed), "examples": failed[:MAX_EXAMPLES]}
    return out
