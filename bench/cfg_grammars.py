"""Context-free grammars: compile time, cached load, artifact size and mask latency while walking
valid documents, kmgrammar side by side with xgrammar and llguidance (when installed).

    python bench/cfg_grammars.py                       # cl100k and Llama 3 (if ../shared), all workloads
    python bench/cfg_grammars.py --tokenizer cl100k --workloads json --passes 5

Workloads: `json` (grammars/json.lark: any JSON value; the document nests 8 levels),
`arithmetic` (grammars/arithmetic.lark, left-recursive). Every engine walks the same cl100k /
Llama 3 tokenization of the same documents; before each token its mask is filled (timed) and the
token must be allowed. Pass 1 starts with empty run-time caches; later passes use fresh matchers
on the same compiled grammar (the steady state of a server). Peers get their own equivalent of
the grammar: xgrammar its builtin JSON grammar / an EBNF port, llguidance the same Lark text.
Nothing here is a test; results print as a table and go to bench/results/cfg.json.
"""

from __future__ import annotations

import argparse
import json
import os
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
root ::= sum
sum ::= product (ws ("+" | "-") ws product)*
product ::= power (ws ("*" | "/") ws power)*
power ::= unary (ws "^" ws power)?
unary ::= "-" ws unary | atom
atom ::= number | name | name ws "(" ws (sum (ws "," ws sum)*)? ws ")" | "(" ws sum ws ")"
number ::= [0-9]+ ("." [0-9]+)? ([eE] [+-]? [0-9]+)?
name ::= [a-z_] [a-z0-9_]*
ws ::= " "*
"""


def workloads() -> dict:
    from kmgrammar import grammars

    return {
        "json": {"lark": grammars.load("json"), "doc": JSON_DOC, "xgr": "builtin_json"},
        "arithmetic": {"lark": grammars.load("arithmetic"), "doc": ARITH_DOC, "xgr": XGR_ARITH},
    }


def stats(xs) -> dict:
    a = np.asarray(xs, float) * 1e6
    return {"n": int(a.size), "mean_us": round(float(a.mean()), 2), "p50_us": round(float(np.median(a)), 2),
            "p99_us": round(float(np.percentile(a, 99)), 2), "max_us": round(float(a.max()), 2)}


def walk(make_matcher, fill, accept, ids, n_words, passes: int) -> list:
    out = []
    for _ in range(passes):
        m = make_matcher()
        bm = np.full((1, n_words), -1, np.int32)
        times = []
        for t in ids:
            t0 = time.perf_counter()
            fill(m, bm)
            times.append(time.perf_counter() - t0)
            if not (int(bm[0][t >> 5]) >> (t & 31)) & 1:
                raise AssertionError(f"token {t} not allowed by the mask")
            if not accept(m, t):
                raise AssertionError(f"token {t} rejected")
        out.append(times)
    return out


def bench_kmgrammar(tok, wl, passes: int, repeats: int) -> dict:
    import kmgrammar
    from kmgrammar.compiler import compile_lark

    vocab = tok.vocab
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compile_lark('start: "(" start ")" | "x"', vocab, cache=False)  # numba + Lark warm
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
    ids = tok.encode(wl["doc"])
    runs = walk(lambda: kmgrammar.Matcher(compiled), lambda m, bm: m.fill_next_token_bitmask(bm, 0),
                lambda m, t: m.accept_token(t), ids, compiled.n_words, passes)
    return {"compile_ms": round(min(cold) * 1e3, 2), "cached_load_ms": round(min(cached) * 1e3, 3),
            "artifact_bytes": len(compiled.to_bytes()), "kind": compiled.kind,
            "first_pass": stats(runs[0]), "later_passes": stats([x for r in runs[1:] for x in r] or runs[0]),
            "tokens": len(ids), "stats": {k: v for k, v in compiled.stats.items() if k != "warnings"}}


def bench_xgrammar(tok, wl, passes: int, repeats: int) -> dict:
    from engines import XgrammarEngine

    eng = XgrammarEngine(tok, tempfile.mkdtemp())
    cold = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        compiled = (eng.compiler.compile_builtin_json_grammar() if wl["xgr"] == "builtin_json"
                    else eng.compiler.compile_grammar(wl["xgr"]))
        cold.append(time.perf_counter() - t0)
    ids = tok.encode(wl["doc"])
    n_words = (tok.vocab.vocab_size + 31) // 32
    xgr = eng.xgr
    runs = walk(lambda: xgr.GrammarMatcher(compiled), lambda m, bm: m.fill_next_token_bitmask(bm, 0),
                lambda m, t: m.accept_token(t), ids, n_words, passes)
    return {"compile_ms": round(min(cold) * 1e3, 2), "first_pass": stats(runs[0]),
            "later_passes": stats([x for r in runs[1:] for x in r] or runs[0]), "tokens": len(ids),
            "grammar": "builtin JSON" if wl["xgr"] == "builtin_json" else "EBNF port"}


def bench_llguidance(tok, wl, passes: int, repeats: int) -> dict:
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
    ids = tok.encode(wl["doc"])
    n_words = (tok.vocab.vocab_size + 31) // 32
    fill = eng.fill_fn
    runs = walk(lambda: base.deep_copy(), lambda m, bm: fill(m, bm, 0),
                lambda m, t: m.consume_token(t) and not m.is_error(), ids, n_words, passes)
    return {"compile_ms": round(min(cold) * 1e3, 2), "first_pass": stats(runs[0]),
            "later_passes": stats([x for r in runs[1:] for x in r] or runs[0]), "tokens": len(ids)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", default="both", choices=["cl100k", "llama3", "both"])
    ap.add_argument("--workloads", default="json,arithmetic")
    ap.add_argument("--engines", default="kmgrammar,xgrammar,llguidance")
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(HERE / "results" / "cfg.json"))
    args = ap.parse_args(argv)
    from engines import load_tokenizer

    names = ["cl100k", "llama3"] if args.tokenizer == "both" else [args.tokenizer]
    wls = workloads()
    results = []
    for tname in names:
        try:
            tok = load_tokenizer(tname)
        except FileNotFoundError as e:
            print(f"skip {tname}: {e}")
            continue
        for wname in args.workloads.split(","):
            wl = wls[wname]
            for ename in args.engines.split(","):
                fn = {"kmgrammar": bench_kmgrammar, "xgrammar": bench_xgrammar,
                      "llguidance": bench_llguidance}[ename]
                try:
                    r = fn(tok, wl, args.passes, args.repeats)
                except ImportError as e:
                    r = {"skipped": f"not installed ({e.name})"}
                except Exception as e:  # a peer that fails is reported, not fatal
                    r = {"failed": f"{type(e).__name__}: {e}"[:200]}
                r.update(tokenizer=tok.name, workload=wname, engine=ename)
                results.append(r)
                fp, lp = r.get("first_pass", {}), r.get("later_passes", {})
                print(f"{tok.name:14} {wname:10} {ename:11} compile {r.get('compile_ms', '-'):>8} ms  "
                      f"cached {r.get('cached_load_ms', '-'):>6} ms  "
                      f"mask pass1 mean {fp.get('mean_us', '-'):>8} p99 {fp.get('p99_us', '-'):>8} | "
                      f"later mean {lp.get('mean_us', '-'):>7} p99 {lp.get('p99_us', '-'):>7} us  "
                      f"{r.get('skipped', r.get('failed', ''))}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
