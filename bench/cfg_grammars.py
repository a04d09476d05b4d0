"""Context-free grammars: compile time, cached load, artifact size and mask latency while walking
valid documents, kmgrammar side by side with xgrammar and llguidance (when installed).

    python bench/cfg_grammars.py                       # cl100k and Llama 3 (if ../shared), all workloads
    python bench/cfg_grammars.py --tokenizer cl100k --workloads json --docs 20 --passes 2

Workloads: `json` (grammars/json.lark: any JSON value) and `arithmetic` (grammars/arithmetic.lark,
left-recursive), each a list of distinct valid documents: a fixed one first, then `--docs`
seeded random ones (JSON nesting 6-9 levels in varied layouts; expressions nesting 6-9
parentheses or calls). Every engine walks the same cl100k / Llama 3 tokenization of the same
documents with a fresh matcher per document on ONE compiled grammar; before each token its mask
is filled (timed) and the token must be allowed, with the loaded heap frozen (`gc.freeze()`, as a
server does once its grammars are loaded; see `walk`). Reported per engine:
  cold   every mask of the first round over all documents, run-time caches empty at the start:
         what a server sees (each new document brings stack shapes not seen before);
  doc1   the first document of that round alone (nothing seen before at all);
  warm   later rounds over the same documents (every shape seen before).
The cold round is run `--cold-runs` times (default 3), each on a freshly compiled grammar (every
engine: a new compiled object, its run-time caches empty), and the run with the median mean is
reported (all the means in `cold_means_us`): on a shared virtual machine one run's mean moves
by +-30% with identical code. Ratios kmgrammar / peer (cold mean and p99) are printed per workload. Peers get their own
equivalent of the grammar: xgrammar its builtin JSON grammar / an EBNF port of arithmetic
(spaces after each terminal, as a lexer skips them: the same language as `%ignore " "`; the
fastest of the ports tried here: a `ws ::= " "*` rule, or spaces on both sides of operators, cost
xgrammar 45-50 ms per mask on these documents, this one ~2.5 ms), llguidance the same Lark
text. Nothing here is a test; results print as a table and go to bench/results/cfg.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

JSON_DOC = json.dumps({
    "id": 17, "name": "kmgrammar", "ok": True, "ratio": -0.125e-3, "none": None,
    "tags": ["cfg", "json", "earley"],
    "nested": {"a": [{"b": {"c": [1, 2, {"d": {"e": [{"f": "deep \\u00e9 \"quoted\""}]}}]}}]},
    "matrix": [[1, 2, 3], [4, 5, 6], [[7], [8, [9, [10]]]]],
    "text": "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
}, indent=2)
ARITH_DOC = "(1 + 2.5) * x - f(y, 3 ^ 2) / (4 - -z) + ((a + b) * (c - d)) ^ 2 - max(1, 2, 3) * 10"

XGR_ARITH = r"""
root ::= [ ]* sum
sum ::= product (("+" | "-") [ ]* product)*
product ::= power (("*" | "/") [ ]* power)*
power ::= unary ("^" [ ]* power)?
unary ::= "-" [ ]* unary | atom
atom ::= number [ ]* | name [ ]* | name [ ]* "(" [ ]* (sum ("," [ ]* sum)*)? ")" [ ]* | "(" [ ]* sum ")" [ ]*
number ::= [0-9]+ ("." [0-9]+)? ([eE] [+-]? [0-9]+)?
name ::= [a-z_] [a-z0-9_]*
"""

# -- documents: seeded, distinct, nested ------------------------------------------------------

_KEYS = ["id", "name", "type", "value", "items", "data", "meta", "x", "label", "children", "\u00e9",
         "a b", "k_1", "longer_key_name", ""]
_STRS = ["", "a", "hello world", 'quote " inside', "back\\slash", "tab\tnew\nline",
         "\u00fc\u00f1\u00ed\u00e7\u00f8d\u00e9 \u2603", "http://example.com/a?b=c", "12", "true", "x" * 30]


def _json_scalar(rng):
    r = rng.random()
    if r < 0.3:
        return rng.choice(_STRS)
    if r < 0.5:
        return rng.randint(-10**6, 10**6)
    if r < 0.65:
        return round(rng.uniform(-1e3, 1e3), rng.randint(0, 6))
    if r < 0.7:
        return rng.choice([1e21, -2.5e-7, 0.0])
    return rng.choice([True, False, None])


def _json_value(rng, depth: int, spine: int):
    """A random value; `spine` levels of nesting are guaranteed below it (one child carries it)."""
    if spine <= 0 and (depth <= 0 or rng.random() < 0.5):
        return _json_scalar(rng)
    n = rng.randint(1 if spine > 0 else 0, 3)
    at = rng.randrange(n) if spine > 0 else -1
    kids = [_json_value(rng, depth - 1, spine - 1 if i == at else 0) for i in range(n)]
    if rng.random() < 0.5:
        return kids
    return {rng.choice(_KEYS) + str(i): v for i, v in enumerate(kids)}


def json_docs(n: int, seed: int = 1) -> list:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        spine = rng.randint(6, 9)
        fmt = rng.choice([dict(indent=2), dict(indent=None), dict(separators=(",", ":")), dict(indent="\t")])
        out.append(json.dumps(_json_value(rng, spine, spine), ensure_ascii=rng.random() < 0.5, **fmt))
    return out


_NAMES = ["x", "y", "z", "alpha", "beta_2", "_tmp", "rate", "n"]
_FUNCS = ["f", "g", "max", "min", "sqrt", "pow", "log_2"]


def _sp(rng) -> str:
    return rng.choice(["", "", " ", " ", "  "])


def _leaf(rng) -> str:
    if rng.random() < 0.5:
        return rng.choice([str(rng.randint(0, 999)), f"{rng.randint(0, 99)}.{rng.randint(0, 999)}",
                           f"{rng.randint(1, 9)}e{rng.randint(-9, 9)}", "0"])
    return rng.choice(_NAMES)


def _expr(rng, spine: int) -> str:
    """A random sum of products; `spine` more parenthesised or call levels below one factor."""
    terms = []
    n = rng.randint(1, 3)
    at = rng.randrange(n)
    for k in range(n):
        factors = []
        for j in range(rng.randint(1, 2)):
            if k == at and j == 0 and spine > 0:
                inner = _expr(rng, spine - 1)
                if rng.random() < 0.5:
                    a = "(" + _sp(rng) + inner + _sp(rng) + ")"
                else:
                    args = [inner] + [_leaf(rng) for _ in range(rng.randint(0, 2))]
                    rng.shuffle(args)
                    a = rng.choice(_FUNCS) + _sp(rng) + "(" + (_sp(rng) + "," + _sp(rng)).join(args) + ")"
            else:
                a = _leaf(rng)
            if rng.random() < 0.2:
                a = "-" + _sp(rng) + a
            if rng.random() < 0.15:
                a += _sp(rng) + "^" + _sp(rng) + _leaf(rng)
            factors.append(a)
        terms.append((_sp(rng) + rng.choice("*/") + _sp(rng)).join(factors))
    s = terms[0]
    for t in terms[1:]:
        s += _sp(rng) + rng.choice("+-") + _sp(rng) + t
    return s


def arithmetic_docs(n: int, seed: int = 2) -> list:
    rng = random.Random(seed)
    return [_expr(rng, rng.randint(6, 9)) for _ in range(n)]


def workloads(n_docs: int) -> dict:
    from kmgrammar import grammars

    return {
        "json": {"lark": grammars.load("json"), "docs": [JSON_DOC] + json_docs(n_docs), "xgr": "builtin_json"},
        "arithmetic": {"lark": grammars.load("arithmetic"), "docs": [ARITH_DOC] + arithmetic_docs(n_docs),
                       "xgr": XGR_ARITH},
    }


def timer_floor_us(n: int = 20000) -> float:
    """Median cost of timing an empty call with CLOCK (two clock reads): part of every mask figure
    (~0.1 us for perf_counter, ~0.8 us for thread_time, a system call here)."""
    clock = CLOCK
    out = []
    for _ in range(n):
        t0 = clock()
        out.append(clock() - t0)
    return float(np.median(out)) * 1e6


def stats(xs) -> dict:
    a = np.asarray(xs, float) * 1e6
    return {"n": int(a.size), "mean_us": round(float(a.mean()), 2), "p50_us": round(float(np.median(a)), 2),
            "p99_us": round(float(np.percentile(a, 99)), 2), "max_us": round(float(a.max()), 2)}


CLOCK = time.perf_counter  # --clock thread: time.thread_time (CPU time, blind to preemption)


def walk(make_matcher, fill, accept, docs_ids: list, n_words: int, rounds: int) -> list:
    """Per round, per document: the mask times (seconds), a fresh matcher per document."""
    clock = CLOCK
    out = []
    bm = np.full((1, n_words), -1, np.int32)
    # The heap as loaded is frozen, as a server freezes it once its grammars are loaded: a full
    # collection of the interpreter's own objects (numba, Lark: ~60 ms here) would otherwise land
    # in whichever mask triggers it. Each engine's own garbage is still collected (and timed).
    gc.collect()
    gc.freeze()
    try:
        _walk_rounds(make_matcher, fill, accept, docs_ids, rounds, clock, bm, out)
    finally:
        gc.unfreeze()
    return out


def _walk_rounds(make_matcher, fill, accept, docs_ids, rounds, clock, bm, out) -> None:
    for _ in range(rounds):
        per_doc = []
        for ids in docs_ids:
            m = make_matcher()
            times = []
            for t in ids:
                t0 = clock()
                fill(m, bm)
                times.append(clock() - t0)
                if not (int(bm[0][t >> 5]) >> (t & 31)) & 1:
                    raise AssertionError(f"token {t} not allowed by the mask")
                if not accept(m, t):
                    raise AssertionError(f"token {t} rejected")
            per_doc.append(times)
        out.append(per_doc)


def measure(fresh, fill, accept, docs_ids: list, n_words: int, passes: int, cold_runs: int) -> dict:
    """`cold_runs` cold rounds, each with matchers of a fresh compiled grammar (`fresh()` returns a
    matcher factory), the last one followed by the warm rounds. cold: the cold round with the
    median mean; doc1: its first document; warm: the later rounds."""
    colds = []
    for k in range(cold_runs):
        runs = walk(fresh(), fill, accept, docs_ids, n_words, passes if k == cold_runs - 1 else 1)
        colds.append(runs[0])
    means = [float(np.mean([x for doc in c for x in doc])) for c in colds]
    cold = colds[int(np.argsort(means)[(len(means) - 1) // 2])]
    flat = [x for doc in cold for x in doc]
    warm = [x for r in runs[1:] for doc in r for x in doc]
    return {"cold": stats(flat), "doc1": stats(cold[0]), "warm": stats(warm or flat),
            "cold_means_us": [round(m * 1e6, 2) for m in means], "documents": len(cold), "tokens": len(flat)}


def bench_kmgrammar(tok, wl, docs_ids, rounds: int, repeats: int, cold_runs: int = 3) -> dict:
    import kmgrammar
    from kmgrammar.compiler import compile_lark

    vocab = tok.vocab
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warm = compile_lark('start: "(" start ")" | "x"', vocab, cache=False)  # numba + Lark warm
        m = kmgrammar.Matcher(warm)  # and the run-time code paths (a server loads them once)
        m.fill_next_token_bitmask(np.zeros((1, warm.n_words), np.int32), 0)
        cold = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            compiled = compile_lark(wl["lark"], vocab, cache=False)
            cold.append(time.perf_counter() - t0)
        with tempfile.TemporaryDirectory() as d:
            os.environ["KMGRAMMAR_CACHE_DIR"] = d
            compile_lark(wl["lark"], vocab)
            cached = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                compile_lark(wl["lark"], vocab)
                cached.append(time.perf_counter() - t0)
    def fresh():  # a compiled grammar no matcher has used: its run-time caches are empty
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c = compile_lark(wl["lark"], vocab, cache=False)
        return lambda: kmgrammar.Matcher(c)

    got = measure(fresh, lambda m, bm: m.fill_next_token_bitmask(bm, 0), lambda m, t: m.accept_token(t),
                  docs_ids, compiled.n_words, rounds, cold_runs)
    return {"compile_ms": round(min(cold) * 1e3, 2), "cached_load_ms": round(min(cached) * 1e3, 3),
            "artifact_bytes": len(compiled.to_bytes()), "kind": compiled.kind, **got,
            "stats": {k: v for k, v in compiled.stats.items() if k != "warnings"}}


def bench_xgrammar(tok, wl, docs_ids, rounds: int, repeats: int, cold_runs: int = 3) -> dict:
    from engines import XgrammarEngine

    eng = XgrammarEngine(tok, tempfile.mkdtemp())
    cold = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        compiled = (eng.compiler.compile_builtin_json_grammar() if wl["xgr"] == "builtin_json"
                    else eng.compiler.compile_grammar(wl["xgr"]))
        cold.append(time.perf_counter() - t0)
    n_words = (tok.vocab.vocab_size + 31) // 32
    xgr = eng.xgr

    def fresh():
        c = (eng.compiler.compile_builtin_json_grammar() if wl["xgr"] == "builtin_json"
             else eng.compiler.compile_grammar(wl["xgr"]))
        return lambda: xgr.GrammarMatcher(c)

    got = measure(fresh, lambda m, bm: m.fill_next_token_bitmask(bm, 0), lambda m, t: m.accept_token(t),
                  docs_ids, n_words, rounds, cold_runs)
    return {"compile_ms": round(min(cold) * 1e3, 2), **got,
            "grammar": "builtin JSON" if wl["xgr"] == "builtin_json" else "EBNF port"}


def bench_llguidance(tok, wl, docs_ids, rounds: int, repeats: int, cold_runs: int = 3) -> dict:
    from engines import LlguidanceEngine

    eng = LlguidanceEngine(tok, tempfile.mkdtemp())
    llg = eng.llg
    grammar = llg.LLMatcher.grammar_from_lark(wl["lark"])
    cold = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        base = llg.LLMatcher(eng.tokenizer, grammar, log_level=0)
        cold.append(time.perf_counter() - t0)
    if base.is_error():
        raise RuntimeError(base.get_error())
    n_words = (tok.vocab.vocab_size + 31) // 32
    fill = eng.fill_fn

    def fresh():
        b = llg.LLMatcher(eng.tokenizer, grammar, log_level=0)
        return lambda: b.deep_copy()

    got = measure(fresh, lambda m, bm: fill(m, bm, 0), lambda m, t: m.consume_token(t) and not m.is_error(),
                  docs_ids, n_words, rounds, cold_runs)
    return {"compile_ms": round(min(cold) * 1e3, 2), **got}


def _fmt(r: dict, part: str) -> str:
    x = r.get(part, {})
    return f"{x.get('mean_us', '-'):>7} {x.get('p50_us', '-'):>7} {x.get('p99_us', '-'):>8}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", default="both", choices=["cl100k", "llama3", "both"])
    ap.add_argument("--workloads", default="json,arithmetic")
    ap.add_argument("--engines", default="kmgrammar,xgrammar,llguidance")
    ap.add_argument("--docs", type=int, default=20, help="random documents per workload (plus the fixed one)")
    ap.add_argument("--passes", type=int, default=3, help="rounds over the documents (round 1 is cold)")
    ap.add_argument("--repeats", type=int, default=3, help="compile repeats (min reported)")
    ap.add_argument("--cold-runs", type=int, default=3,
                    help="cold rounds, each on a fresh compiled grammar (the median mean is reported)")
    ap.add_argument("--clock", default="wall", choices=["wall", "thread"],
                    help="mask timer: wall (perf_counter) or thread CPU time (on a shared machine a "
                         "preempted call costs a whole scheduler tick of wall time)")
    ap.add_argument("--out", default=str(HERE / "results" / "cfg.json"))
    args = ap.parse_args(argv)
    from engines import load_tokenizer

    global CLOCK
    CLOCK = time.thread_time if args.clock == "thread" else time.perf_counter

    names = ["cl100k", "llama3"] if args.tokenizer == "both" else [args.tokenizer]
    wls = workloads(args.docs)
    results = []
    floor = timer_floor_us()
    print(f"mask timer: {args.clock}, its own cost (timer floor, included in every figure) {floor:.2f} us")
    print(f"{'tokenizer':14} {'workload':10} {'engine':11} {'compile':>9} {'cached':>8}   "
          f"{'cold: mean     p50      p99':>25} | {'doc1: mean    p50      p99':>25} | "
          f"{'warm: mean    p50      p99':>25}  (us)")
    for tname in names:
        try:
            tok = load_tokenizer(tname)
        except FileNotFoundError as e:
            print(f"skip {tname}: {e}")
            continue
        for wname in args.workloads.split(","):
            wl = wls[wname]
            docs_ids = [tok.encode(d) for d in wl["docs"]]
            by_engine = {}
            for ename in args.engines.split(","):
                fn = {"kmgrammar": bench_kmgrammar, "xgrammar": bench_xgrammar,
                      "llguidance": bench_llguidance}[ename]
                try:
                    r = fn(tok, wl, docs_ids, max(1, args.passes), args.repeats, max(1, args.cold_runs))
                except ImportError as e:
                    r = {"skipped": f"not installed ({e.name})"}
                except Exception as e:  # a peer that fails is reported, not fatal
                    r = {"failed": f"{type(e).__name__}: {e}"[:200]}
                r.update(tokenizer=tok.name, workload=wname, engine=ename, clock=args.clock, timer_floor_us=round(floor, 3))
                results.append(r)
                by_engine[ename] = r
                print(f"{tok.name:14} {wname:10} {ename:11} {r.get('compile_ms', '-'):>6} ms "
                      f"{r.get('cached_load_ms', '-'):>5} ms   {_fmt(r, 'cold')} | {_fmt(r, 'doc1')} | "
                      f"{_fmt(r, 'warm')}  {r.get('skipped', r.get('failed', ''))}"
                      f"{'  cold means ' + str(r['cold_means_us']) if 'cold_means_us' in r else ''}", flush=True)
            km = by_engine.get("kmgrammar", {}).get("cold")
            n_tok = by_engine.get("kmgrammar", {}).get("tokens")
            for ename, r in by_engine.items():
                if ename == "kmgrammar" or not km or "cold" not in r:
                    continue
                ratio = {k: round(km[k] / r["cold"][k], 2) for k in ("mean_us", "p99_us")}
                r["kmgrammar_over_peer_cold"] = ratio
                print(f"{'':14} {wname:10} kmgrammar / {ename}: cold mean x{ratio['mean_us']}, "
                      f"p99 x{ratio['p99_us']}  ({len(docs_ids)} documents, {n_tok} masks)", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
