"""Side-by-side benchmark: kmgrammar vs xgrammar, llguidance, outlines-core on the same tokenizer.

    python bench/run.py [--tokenizer cl100k|llama3|both] [--workloads email,datetime,choices568]
                        [--engines kmgrammar,xgrammar,llguidance,outlines-core]
                        [--out bench/results/regular.json] [--samples 3000] [--repeats 3]
                        [--no-audit] [--no-fresh]

For every tokenizer x workload x engine, in one process: cold compile, cached load, per-token
mask time while walking a valid document, artifact size, and mask agreement with kmgrammar
(differences judged by an independent oracle). Cold starts of kmgrammar are measured in child
processes. Prints a table with kmgrammar/peer ratios and saves everything as JSON.
See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(BENCH), str(ROOT)]  # this checkout's kmgrammar, then bench's modules

import engines as E  # noqa: E402
import measure as M  # noqa: E402
import report as R  # noqa: E402
from workloads import all_workloads  # noqa: E402

# Compiled first (a regex and a choice list, so every numba kernel is loaded), keeping numba's
# JIT out of the figures; that first compile is reported on its own.
WARMUP_PATTERN = r"[0-9]{1,8}(\.[0-9]+)?x"
WARMUP_CHOICES = ["alpha", "beta", "gamma delta", "alphabet"]


def machine() -> dict:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"date": datetime.datetime.now().isoformat(timespec="seconds"),
            "cpu": cpu or platform.processor(), "cores": os.cpu_count(),
            "python": platform.python_version(), "platform": platform.platform(),
            "loadavg_at_start": os.getloadavg(),
            "versions": {n: E.version(n) for n in ("numpy", "numba", "tiktoken", *E.PEERS)}}


def child(mode: str, tok: str, wl: str, env: dict) -> dict:
    """Run bench/fresh_start.py; returns its JSON plus the wall time including interpreter start."""
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, str(BENCH / "fresh_start.py"), mode, tok, wl],
                       env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    if p.returncode:
        return {"error": (p.stderr.strip().splitlines() or ["?"])[-1]}
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out["wall_s"] = wall
    return out


def cold_starts(tok: str, wl: str, cache_dir: str) -> dict:
    env = dict(os.environ, KMGRAMMAR_CACHE_DIR=cache_dir,
               PYTHONPATH=os.pathsep.join([str(BENCH), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    child("cached", tok, wl, env)  # warms numba's cache and the OS page cache
    res = {"fresh_process_cached": child("cached", tok, wl, env),
           "fresh_process_first_compile": child("jit", tok, wl, env)}
    numba_dir = tempfile.mkdtemp(prefix="kmg-numba-")
    try:
        res["fresh_process_first_jit"] = child("jit", tok, wl, dict(env, NUMBA_CACHE_DIR=numba_dir))
    finally:
        shutil.rmtree(numba_dir, ignore_errors=True)
    return res


def run_tokenizer(name: str, workloads: dict, engine_names: list, args, cache_dir: str) -> dict:
    out = {"notes": [], "engines": {}, "workloads": {}}
    try:
        tok = E.load_tokenizer(name)
    except FileNotFoundError as e:
        out["skipped"] = str(e)
        print(f"[{name}] skipped: {e}", flush=True)
        return out
    v = tok.vocab
    out.update(tokenizer=tok.name, vocab_size=v.vocab_size, n_tokens=v.n_tokens,
               eos_token_ids=list(v.eos_token_ids), notes=list(tok.notes))
    print(f"[{name}] {tok.name}: {v.vocab_size:,} tokens, EOS {list(v.eos_token_ids)}", flush=True)

    engs = {}
    for en in engine_names:
        try:
            engs[en] = E.make_engine(en, tok, cache_dir)
        except ImportError as e:
            out["notes"].append(f"{en} skipped: not installed ({e}); pip install '.[bench]'")
            continue
        except Exception as e:  # a peer that cannot load this tokenizer is a finding, not a crash
            out["notes"].append(f"{en} skipped: tokenizer setup failed: {type(e).__name__}: {e}")
            continue
        eng = engs[en]
        out["engines"][en] = {"version": eng.version, "tokenizer_setup_s": eng.setup_seconds,
                              "notes": eng.notes}
        print(f"  {en} {eng.version}: tokenizer setup {R.fmt_time(eng.setup_seconds)}", flush=True)

    if "kmgrammar" in engs:
        import kmgrammar

        t0 = time.perf_counter()
        kmgrammar.compile_regex(WARMUP_PATTERN, v, cache=False)
        kmgrammar.compile_choices(WARMUP_CHOICES, v, cache=False)
        out["kmgrammar_first_compile_in_process_s"] = time.perf_counter() - t0

    for wname, wl in workloads.items():
        ids = tok.encode(wl.document)
        assert v.decode(ids) == wl.document.encode(), "tokenizer round trip"
        w = {"document": wl.document, "tokens": len(ids), "description": wl.description,
             "token_pieces": [M.show(v.token_bytes[i]) for i in ids], "engines": {}}
        out["workloads"][wname] = w
        compiled, matchers = {}, {}
        for en, eng in engs.items():
            e = w["engines"][en] = {}
            print(f"  {wname:<11} {en:<14}", end=" ", flush=True)
            try:
                times, c = M.timed(lambda: eng.compile(wl), args.repeats)
            except Exception as ex:
                e["error"] = f"{type(ex).__name__}: {ex}"
                print("compile failed:", e["error"][:200], flush=True)
                continue
            compiled[en] = c
            e["compile"] = M.summary_seconds(times)
            try:
                lt, label = eng.cached_load(wl, c, max(5, args.repeats))
                e["cached_load"] = M.summary_seconds(lt)
                e["cached_load_how"] = label
                e["size_bytes"], e["size_how"] = eng.size(c)
                matchers[en] = eng.matcher(c)
                e["mask"] = M.mask_times(eng.matcher(c), ids, v.vocab_size, args.samples)
            except Exception as ex:  # a peer failing after compile is reported, not fatal
                e["measure_error"] = f"{type(ex).__name__}: {ex}"
                matchers.pop(en, None)
                print("measurement failed:", e["measure_error"][:200], flush=True)
                continue
            print(f"compile {R.fmt_time(e['compile']['median_s'])}, mask p50 "
                  f"{R.fmt_us(e['mask'].get('p50_us'))} µs p99 {R.fmt_us(e['mask'].get('p99_us'))} µs",
                  flush=True)
        if "kmgrammar" in matchers:
            t0 = time.perf_counter()
            try:
                agr = M.agreement(matchers, ids, v, wl, audit=args.audit)
            except Exception as ex:
                agr = {}
                w["agreement_error"] = f"{type(ex).__name__}: {ex}"
                out["notes"].append(f"{wname}: mask agreement failed: {w['agreement_error']}")
            w["agreement_seconds"] = time.perf_counter() - t0
            for en, a in agr.items():
                w["engines"][en]["agreement"] = a
        for en in matchers:
            try:
                acc = M.acceptance({en: lambda en=en: engs[en].matcher(compiled[en])},
                                   wl.documents, tok.encode, v.eos_token_ids[0])
                w["engines"][en]["acceptance"] = acc[en]
            except Exception as ex:
                out["notes"].append(f"{wname}/{en}: document acceptance failed: "
                                    f"{type(ex).__name__}: {ex}")
        if "kmgrammar" in compiled:
            w["kmgrammar_stats"] = dict(compiled["kmgrammar"].stats)
    if "kmgrammar" in engs and args.fresh:
        print("  kmgrammar cold starts (child processes)", flush=True)
        out["kmgrammar_cold_start"] = cold_starts(name, "email", cache_dir)
    return out


def print_report(results: dict) -> None:
    m = results["machine"]
    print(f"\n{m['date']}  {m['cpu']}, {m['cores']} cores, load average {m['loadavg_at_start'][0]:.1f} "
          f"at start, {m['loadavg_at_end'][0]:.1f} at end; versions {m['versions']}")
    for tname, tok in results["tokenizers"].items():
        print()
        if "skipped" in tok:
            print(f"== {tname}: skipped ({tok['skipped']})")
            continue
        print(f"== {tok['tokenizer']}: {tok['vocab_size']:,} tokens; mask = one bitmask row, µs; "
              f"timer floor {results['timer_floor_ns']:.0f} ns")
        print(R.text_table(R.table_rows(tok)))
        for line in R.cold_start_lines(tok):
            print(line)
        for n in tok["notes"]:
            print("note:", n)
    f = R.findings(results)
    print("\nmask agreement findings:" if f else "\nmask agreement: no differences")
    for line in f:
        print(" -", line)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenizer", choices=("cl100k", "llama3", "both"), default="both")
    ap.add_argument("--workloads", default="email,datetime,choices568",
                    help="comma-separated subset of: email, datetime, choices568")
    ap.add_argument("--engines", default="kmgrammar," + ",".join(E.PEERS))
    ap.add_argument("--out", default=str(BENCH / "results" / "regular.json"))
    ap.add_argument("--samples", type=int, default=3000, help="mask timings per engine and workload")
    ap.add_argument("--repeats", type=int, default=3, help="cold compiles per engine and workload")
    ap.add_argument("--no-audit", dest="audit", action="store_false",
                    help="skip checking kmgrammar's masks against the oracle on every token")
    ap.add_argument("--no-fresh", dest="fresh", action="store_false",
                    help="skip the child-process cold-start measurements")
    args = ap.parse_args(argv)

    all_w = all_workloads()
    names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in names if w not in all_w]
    if unknown:
        ap.error(f"unknown workload(s) {unknown}; choose from {list(all_w)}")
    engine_names = [e.strip() for e in args.engines.split(",") if e.strip()]
    if "kmgrammar" not in engine_names:
        engine_names.insert(0, "kmgrammar")
    toks = ["cl100k", "llama3"] if args.tokenizer == "both" else [args.tokenizer]

    results = {"machine": machine(), "timer_floor_ns": M.timer_floor_ns(),
               "settings": {"samples": args.samples, "repeats": args.repeats, "audit": args.audit},
               "tokenizers": {}}
    cache_dir = tempfile.mkdtemp(prefix="kmg-bench-cache-")
    try:
        for t in toks:
            results["tokenizers"][t] = run_tokenizer(t, {n: all_w[n] for n in names},
                                                     engine_names, args, cache_dir)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    results["machine"]["loadavg_at_end"] = os.getloadavg()
    print_report(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, ensure_ascii=False))
    print(f"\nsaved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
