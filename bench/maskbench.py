"""MaskBench (dev split) for `compile_json_schema`: coverage, correctness, compile and mask times.

    python bench/maskbench.py                         # all 8,596 files, 2 worker processes
    python bench/maskbench.py --stride 10             # every 10th file
    python bench/maskbench.py --lenient --out r.json  # lenient=True (approximations, warned)
    python bench/maskbench.py --peers llguidance,xgrammar --peer-stride 20

Each file (`../shared/corpora/maskbench-dev/*.json`: {description, meta, schema, tests}) is
compiled for cl100k_base (into a fresh disk cache, per-file `--time-limit`), then loaded again
from that cache (cached load time). Instances are serialized in
the supported form (compact, the data's own key order, canonical numbers) and walked token by
token: valid ones must be accepted (and end accepting), invalid ones rejected. Mask time is the
`fill_next_token_bitmask` call at every step of every valid instance. Under drafts 3 and 4 an
integral float (`12345.0`, not an integer there) serializes as an integer: such an instance is
labelled by validating its text (`relabelled_valid` counts the labels that changed). The data writes keys in
its own order: `--property-order any` compiles with property_order="any" (declared properties
in any order), a file over that option's limits (`CompileLimitError` naming it) in schema order
instead (`schema_order_fallbacks` in the output; `any_order_alone` counts those files as the
limit errors property_order="any" alone gives). The default is the library's schema order
(any order costs ~1.3x schema order's compile time per file at the median, bench/README.md). A valid
instance the matcher rejects is searched for a key order that it accepts (writing each object's
members in every order the matcher allows, bounded): `valid_rejected_key_order_only` counts those
found, `valid_rejected_key_order_unknown` the searches that gave up, and
`false_negative_files_not_key_order` lists the files with any other rejected valid instance.
Outcome per file: ok (all instances right), false_positive, false_negative, unsupported,
compile_error, limit, crash. Timing lives here only, never in tests/.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import sys
import time
import warnings
from decimal import Decimal
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpora" / "maskbench-dev"
sys.path.insert(0, str(ROOT))

_VOCAB = None
MAX_MASK_SAMPLES = 256  # mask timings per file (the walk itself always covers every token)


def _vocab():
    global _VOCAB
    if _VOCAB is None:
        import kmgrammar

        _VOCAB = kmgrammar.Vocabulary.from_tiktoken("cl100k_base")
    return _VOCAB


def run_file(path, *, time_limit: float = 30.0, lenient: bool = False, strict: bool = False,
             masks: bool = True, property_order: str = "schema") -> dict:
    """Compile one MaskBench file and check its instances; never raises."""
    import numpy as np

    from kmgrammar import Matcher, allocate_token_bitmask
    from kmgrammar.compiler import compile_json_schema
    from kmgrammar.errors import CompileError, CompileLimitError, UnsupportedFeatureError
    from kmgrammar.jsonschema_values import serialize

    path = Path(path)
    doc = json.loads(path.read_text())
    exact = json.loads(path.read_text(), parse_float=Decimal)
    vocab = _vocab()
    out = {"file": path.name, "status": None, "tests": len(doc.get("tests", []))}
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                cg = compile_json_schema(doc["schema"], vocab, time_limit=time_limit,
                                         lenient=lenient, strict=strict, property_order=property_order)
            except CompileLimitError as e:
                if e.limit != "property_order":
                    raise
                # past property_order='any''s limits (properties or estimated states): schema order
                # (with a fresh time_limit; the reported compile time includes both attempts)
                out["order"] = "schema"
                property_order = "schema"
                cg = compile_json_schema(doc["schema"], vocab, time_limit=time_limit,
                                         lenient=lenient, strict=strict)
    except UnsupportedFeatureError as e:
        out.update(status="unsupported", error=str(e)[:300])
    except CompileLimitError as e:
        out.update(status="limit", error=str(e)[:300])
    except CompileError as e:
        out.update(status="compile_error", error=str(e)[:300])
    except Exception as e:  # noqa: BLE001 - a crash is a result to report
        out.update(status="crash", error=f"{type(e).__name__}: {e}"[:300])
    out["compile_s"] = time.perf_counter() - t0
    if out["status"] is not None:
        return out
    out["states"] = cg.n_states
    t1 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = compile_json_schema(doc["schema"], vocab, time_limit=time_limit, lenient=lenient, strict=strict,
                                     property_order=property_order)
    out["load_s"] = time.perf_counter() - t1
    # a grammar's first matcher builds its run-time tables (once per loaded artifact)
    t1 = time.perf_counter()
    Matcher(loaded)
    out["first_matcher_s"] = time.perf_counter() - t1
    del loaded
    mask_ns = []
    bitmask = allocate_token_bitmask(1, vocab.vocab_size)
    # The heap as loaded is frozen while walking, as a server freezes it once its grammars are
    # loaded: a full collection of the interpreter's own objects (numba, Lark: ~60 ms here) would
    # otherwise land in whichever mask triggers it. The matcher's own garbage is still collected.
    # (No gc.collect() first: the compile's garbage is only set aside until unfreeze, and a full
    # collection per file would cost more than the file's masks.)
    gc.freeze()
    try:
        va, vt, ir, it, relabelled, reordered = _walk_tests(doc, exact, cg, vocab, serialize, masks, mask_ns,
                                                            bitmask)
    finally:
        gc.unfreeze()
    out.update(valid=vt, valid_accepted=va, invalid=it, invalid_rejected=ir, relabelled=relabelled,
               reordered=reordered[0], reorder_unknown=reordered[1], mask_ns=mask_ns)
    out["status"] = "false_positive" if ir < it else "false_negative" if va < vt else "ok"
    del np
    return out


def _instances(doc, exact, serialize):
    """(test, data, serialized text, label) per instance that serializes (see `_label`)."""
    for test, test_x in zip(doc.get("tests", []), exact.get("tests", [])):
        try:
            text = serialize(test_x["data"])
        except (TypeError, ValueError):
            continue
        yield test, test_x["data"], text, _label(doc["schema"], test, test_x["data"], text)


def _walk(ids, fill, step, mask_ns) -> bool:
    """Feed token ids to a matcher through `step` (False at the first one refused); with a list
    `mask_ns`, time `fill()` (its mask) before each step, up to MAX_MASK_SAMPLES per file."""
    for t in ids:
        if mask_ns is not None and len(mask_ns) < MAX_MASK_SAMPLES:
            a = time.perf_counter_ns()
            fill()
            mask_ns.append(time.perf_counter_ns() - a)
        if not step(t):
            return False
    return True


def _walk_tests(doc, exact, cg, vocab, serialize, masks, mask_ns, bitmask):
    """Walk every instance token by token; (valid accepted, valid, invalid rejected, invalid,
    instances whose label `_label` changed)."""
    from kmgrammar import Matcher

    va = vt = ir = it = relabelled = 0
    reordered = [0, 0]  # rejected valid instances accepted in another key order; search gave up
    for test, data, text, valid in _instances(doc, exact, serialize):
        relabelled += valid != test["valid"]
        m = Matcher(cg)
        ok = _walk(vocab.encode(text), partial(m.fill_next_token_bitmask, bitmask), m.accept_token,
                   mask_ns if masks and valid else None) and m.is_accepting()
        if valid:
            vt += 1
            va += ok
            if not ok:
                found = _accepted_in_some_key_order(cg, data, serialize)
                reordered[0] += found is True
                reordered[1] += found is None
        else:
            it += 1
            ir += not ok
    return va, vt, ir, it, relabelled, reordered


def _accepted_in_some_key_order(cg, data, serialize, budget: int = 20_000):
    """Whether the matcher accepts `data` (compact, canonical) with the keys of its objects in
    some order: tells a false negative due to key order alone from any other. None when the
    search runs past `budget` steps."""
    from kmgrammar import Matcher

    steps = [budget]

    def take(m, text):
        steps[0] -= 1
        if steps[0] < 0:
            raise TimeoutError
        c = m.copy()
        return c if c.accept_string(text) else None

    def after_text(m, text):
        c = take(m, text)
        return () if c is None else (c,)

    def after(m, v):  # every matcher state reached by writing v from m
        if isinstance(v, dict):
            for c in after_text(m, "{"):
                yield from after_members(c, list(v.items()), "")
        elif isinstance(v, list):
            for c in after_text(m, "["):
                yield from after_items(c, v, "")
        else:
            yield from after_text(m, serialize(v))

    def key(k, sep):
        return sep + json.dumps(k, ensure_ascii=False) + ":"

    def after_members(m, members, sep):
        if not members:
            yield from after_text(m, "}")
            return
        # Try first the member after which most of the others can still come next: with a fixed
        # key order that is the earliest one, so the search rarely backtracks.
        tries = []
        for i, (k, v) in enumerate(members):
            c = take(m, key(k, sep))
            ends = after(c, v) if c is not None else iter(())
            first = next(ends, None)  # the other ways to write v only if this one leads nowhere
            if first is not None:
                rest = members[:i] + members[i + 1:]
                tries.append((-sum(take(first, key(j, ",")) is not None for j, _ in rest), i, first, ends, rest))
        tries.sort(key=lambda t: t[:2])
        for _, _, first, ends, rest in tries:
            for c2 in itertools.chain([first], ends):
                yield from after_members(c2, rest, ",")

    def after_items(m, items, sep):
        if not items:
            yield from after_text(m, "]")
            return
        for c in after_text(m, sep) if sep else (m,):
            for c2 in after(c, items[0]):
                yield from after_items(c2, items[1:], ",")

    try:
        return any(m.is_accepting() for m in after(Matcher(cg), data))
    except TimeoutError:
        return None


def _label(schema, test: dict, data, text: str) -> bool:
    """Whether the serialized instance is valid: the file's label, unless serializing changed the
    value. The canonical form writes an integral number (`12345.0`) as an integer, which drafts 3
    and 4 tell apart (`12345.0` is not of type integer there): such an instance is judged again,
    as the text it became, by the schema's own draft validator, and the label flips only if that
    validator's verdict changed (it may miss checks the file's labels made: without rfc3987 its
    `uri` format passes "Invalid URI", Github_medium o76785)."""
    if not _integral_float(data):
        return test["valid"]
    import jsonschema

    cls = jsonschema.validators.validator_for(schema)
    if cls not in (jsonschema.Draft3Validator, jsonschema.Draft4Validator):
        return test["valid"]
    check = cls(schema, format_checker=cls.FORMAT_CHECKER)
    after = check.is_valid(json.loads(text))
    return test["valid"] if check.is_valid(test["data"]) == after else after


def _integral_float(x) -> bool:
    if isinstance(x, Decimal):
        return x == x.to_integral_value()
    if isinstance(x, dict):
        return any(_integral_float(v) for v in x.values())
    if isinstance(x, list):
        return any(_integral_float(v) for v in x)
    return False


def frontend_file(path, *, time_limit: float = 30.0, lenient: bool = False, strict: bool = False,
                  property_order: str = "schema") -> dict:
    """Only the JSON Schema frontend (schema -> DFA or grammar), without token tables (the same
    schema-order fallback as `run_file`)."""
    from kmgrammar.automaton import ByteDFA, Limits
    from kmgrammar.errors import CompileError, CompileLimitError
    from kmgrammar.jsonschema import schema_to_grammar

    doc = json.loads(Path(path).read_text())
    t0 = time.perf_counter()
    order = property_order
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                got = schema_to_grammar(doc["schema"], lenient=lenient, strict=strict, property_order=property_order,
                                        limits=Limits(time_limit=time_limit))
            except CompileLimitError as e:
                if e.limit != "property_order":
                    raise
                got = schema_to_grammar(doc["schema"], lenient=lenient, strict=strict,
                                        limits=Limits(time_limit=time_limit))
                order = "schema"
        kind = "dfa" if isinstance(got, ByteDFA) else "cfg"
    except CompileError as e:
        kind = type(e).__name__
    except Exception as e:  # noqa: BLE001
        kind = f"crash {type(e).__name__}"
    return {"file": Path(path).name, "kind": kind, "s": time.perf_counter() - t0, "order": order}


class _Timeout(BaseException):
    pass


def _alarm(*_a):
    raise _Timeout()


def _worker(args):
    """run_file with a hard wall-clock cap (3 x the compile limit) so one file cannot stall a run."""
    import signal

    path, kw = args
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(int(3 * kw.get("time_limit", 30)) + 1)
    t0 = time.perf_counter()
    try:
        return run_file(path, **kw)
    except _Timeout:
        return {"file": Path(path).name, "status": "timeout", "compile_s": time.perf_counter() - t0,
                "error": "hard wall-clock cap"}
    finally:
        signal.alarm(0)


def _pct(xs, q):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def _ms(seconds: list) -> dict:
    """p50/p95/p99/max of times in seconds, as milliseconds."""
    return {q: round(1000 * _pct(seconds, v), 2) for q, v in (("p50", .5), ("p95", .95), ("p99", .99), ("max", 1.0))}


def _mask_us(ns: list) -> dict:
    """Mean/p50/p99 of mask times in nanoseconds, as microseconds."""
    return {"mean": round(sum(ns) / max(len(ns), 1) / 1000, 2), "p50": round(_pct(ns, .5) / 1000, 2),
            "p99": round(_pct(ns, .99) / 1000, 2), "n": len(ns)}


def summarize(results: list) -> dict:
    n = len(results)
    by: dict = {}
    for r in results:
        by[r["status"]] = by.get(r["status"], 0) + 1
    compiled = [r for r in results if "states" in r]
    ct = [r["compile_s"] for r in compiled]
    masks = [x for r in compiled for x in r.get("mask_ns", [])]
    loads = [r["load_s"] for r in compiled if "load_s" in r]
    firsts = [r["first_matcher_s"] for r in compiled if "first_matcher_s" in r]
    return {
        "files": n,
        "status": by,
        "compiled_pct": round(100 * len(compiled) / max(n, 1), 2),
        "ok_pct": round(100 * by.get("ok", 0) / max(n, 1), 2),
        "valid_accepted": f"{sum(r['valid_accepted'] for r in compiled)}/{sum(r['valid'] for r in compiled)}",
        "invalid_rejected": f"{sum(r['invalid_rejected'] for r in compiled)}/{sum(r['invalid'] for r in compiled)}",
        # invalid under draft 3/4 only as a float (12345.0 for an integer): serialized 12345, valid
        "relabelled_valid": sum(r.get("relabelled", 0) for r in compiled),
        # rejected valid instances that are accepted with their objects' keys in another order
        "valid_rejected_key_order_only": sum(r.get("reordered", 0) for r in compiled),
        "valid_rejected_key_order_unknown": sum(r.get("reorder_unknown", 0) for r in compiled),
        "false_negative_files_not_key_order": sorted(
            r["file"] for r in compiled if r["status"] == "false_negative"
            and r["valid"] - r["valid_accepted"] > r.get("reordered", 0) + r.get("reorder_unknown", 0)),
        "compile_ms": _ms(ct),
        "cached_load_ms": {q: round(1000 * _pct(loads, v), 2) for q, v in (("p50", .5), ("p99", .99))},
        "first_matcher_ms": {q: round(1000 * _pct(firsts, v), 2) for q, v in (("p50", .5), ("p99", .99))},
        "mask_us": _mask_us(masks),
    }


def any_order_alone(results: list) -> dict:
    """`summarize` with each schema-order fallback counted as what property_order="any" alone
    gives that file: its limit error (no compile, no instances walked)."""
    alone = [{"file": r["file"], "status": "limit", "compile_s": r["compile_s"]} if r.get("order") == "schema"
             else r for r in results]
    got = summarize(alone)
    return {k: got[k] for k in ("status", "compiled_pct", "ok_pct", "valid_accepted", "invalid_rejected",
                                "compile_ms", "mask_us")}


def _unsupported_reasons(results: list, top: int = 15) -> list:
    import re

    counts: dict = {}
    for r in results:
        if r["status"] in ("unsupported", "compile_error", "limit", "crash"):
            for part in r.get("error", "").split("; "):
                key = re.sub(r"#[^:]*: ", "", part.split(" (lenient")[0])
                key = re.sub(r"pattern '.*", "pattern (regex construct)", key)[:90]
                counts[key] = counts.get(key, 0) + 1
    return sorted(counts.items(), key=lambda kv: -kv[1])[:top]


def peer_file(path, engine: str, time_limit: float) -> dict:
    """Compile time, instance correctness and mask times for llguidance or xgrammar (same
    serialization, same walk as kmgrammar's)."""
    from kmgrammar.jsonschema_values import serialize

    doc = json.loads(Path(path).read_text())
    exact = json.loads(Path(path).read_text(), parse_float=Decimal)
    vocab = _vocab()
    schema = json.dumps(doc["schema"])
    eos = list(vocab.eos_token_ids)[0]
    # per-process setup (tokenizer tables) is not compile time
    if engine == "llguidance":
        _llg_tokenizer(vocab)
    elif engine == "xgrammar":
        _xgr_compiler(vocab)
    t0 = time.perf_counter()
    try:
        if engine == "llguidance":
            import llguidance

            tok = _llg_tokenizer(vocab)
            # compact separators, as kmgrammar's default serialization
            grm = llguidance.LLMatcher.grammar_from_json_schema(
                schema, defaults={"whitespace_flexible": False, "item_separator": ",", "key_separator": ":"})
            err = llguidance.LLMatcher.validate_grammar(grm, tok)
            if err:
                return {"file": Path(path).name, "status": "compile_error", "error": str(err)[:200],
                        "compile_s": time.perf_counter() - t0}
            first = llguidance.LLMatcher(tok, grm, log_level=0)  # compiles (partly lazily)
            if first.is_error():
                return {"file": Path(path).name, "status": "compile_error", "error": first.get_error()[:200],
                        "compile_s": time.perf_counter() - t0}
            import llguidance.numpy

            make = lambda: llguidance.LLMatcher(tok, grm, log_level=0)  # noqa: E731
            step = lambda m, t: m.consume_token(t)  # noqa: E731
            done = lambda m: m.is_accepting()  # noqa: E731
            fill = lambda m, bm: llguidance.numpy.fill_next_token_bitmask(m, bm, 0)  # noqa: E731
        elif engine == "xgrammar":
            import xgrammar as xgr

            # strict_mode=False: a missing additionalProperties allows extra keys, as the spec says
            cg = _xgr_compiler(vocab).compile_json_schema(schema, any_whitespace=False, separators=(",", ":"),
                                                          strict_mode=False)
            make = lambda: xgr.GrammarMatcher(cg)  # noqa: E731
            step = lambda m, t: m.accept_token(t)  # noqa: E731
            done = lambda m: m.accept_token(eos)  # noqa: E731
            fill = lambda m, bm: m.fill_next_token_bitmask(bm, 0)  # noqa: E731
        else:
            return {"file": Path(path).name, "status": "skipped"}
    except Exception as e:  # noqa: BLE001
        return {"file": Path(path).name, "status": "compile_error", "error": str(e)[:200],
                "compile_s": time.perf_counter() - t0}
    compile_s = time.perf_counter() - t0
    good = n = 0
    import numpy as np

    bitmask = np.zeros((1, (vocab.vocab_size + 31) // 32), np.int32)
    mask_ns = []  # as kmgrammar's: every step of the valid instances, the fill call alone
    gc.freeze()  # (as for kmgrammar's walk)
    try:
        for _test, _data, text, valid in _instances(doc, exact, serialize):
            m = make()
            ok = _walk(vocab.encode(text), partial(fill, m, bitmask), partial(step, m),
                       mask_ns if valid else None) and done(m)
            good += ok == valid
            n += 1
    finally:
        gc.unfreeze()
    return {"file": Path(path).name, "status": "ok" if good == n else "wrong", "compile_s": compile_s,
            "mask_ns": mask_ns}


_XGR = None


def _xgr_compiler(vocab):
    global _XGR
    if _XGR is None:
        import xgrammar as xgr

        eos = set(vocab.eos_token_ids)
        # special tokens other than EOS become b"" (xgrammar then never allows them)
        table = [b if i in eos or i not in vocab.special_token_ids else b"" for i, b in enumerate(vocab.token_bytes)]
        info = xgr.TokenizerInfo(table, xgr.VocabType.RAW, vocab_size=vocab.vocab_size,
                                 stop_token_ids=list(vocab.eos_token_ids))
        _XGR = xgr.GrammarCompiler(info, cache_enabled=False)
    return _XGR


def _peer_worker(args):
    """peer_file with the same hard wall-clock cap as `_worker` (a peer may hang on a schema)."""
    import signal

    path, engine, time_limit = args
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(int(3 * time_limit) + 1)
    t0 = time.perf_counter()
    try:
        return peer_file(path, engine, time_limit)
    except _Timeout:
        return {"file": Path(path).name, "status": "timeout", "compile_s": time.perf_counter() - t0}
    finally:
        signal.alarm(0)


_LLG = None


def _llg_tokenizer(vocab):
    global _LLG
    if _LLG is None:
        import llguidance

        toks = [bytes(t) for t in vocab.token_bytes]
        eos = list(vocab.eos_token_ids)[0]
        _LLG = llguidance.LLTokenizer(llguidance.TokenizerWrapper(_TokWrap(toks, eos, vocab)))
    return _LLG


class _TokWrap:
    def __init__(self, toks, eos, vocab):
        self.tokens = toks
        self.eos_token_id = eos
        self.bos_token_id = None
        self.special_token_ids = list(vocab.special_token_ids)
        self._vocab = vocab

    def __call__(self, s):
        return self._vocab.encode(s.decode("utf-8", "replace") if isinstance(s, bytes) else s)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=str(CORPUS))
    ap.add_argument("--stride", type=int, default=1, help="take every N-th file (sorted by name)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--time-limit", type=float, default=30.0, help="per-file compile limit, seconds")
    ap.add_argument("--lenient", action="store_true")
    ap.add_argument("--strict", action="store_true")
    ap.add_argument("--property-order", default="schema", choices=("schema", "any"),
                    help="declared properties in schema order, or in any order (the instances' own; "
                         "schema order for a file over property_order='any''s limits)")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--peers", default="", help="comma list: llguidance,xgrammar")
    ap.add_argument("--peer-stride", type=int, default=20)
    ap.add_argument("--out", default=None)
    ap.add_argument("--frontend-only", action="store_true", help="time schema -> DFA/grammar only")
    args = ap.parse_args(argv)
    import tempfile

    # compiles are cold and the cached loads read what this run stored (workers inherit the env)
    os.environ["KMGRAMMAR_CACHE_DIR"] = tempfile.mkdtemp(prefix="maskbench-cache-")
    corpus = Path(args.corpus)
    if not corpus.is_dir():
        print(f"corpus not found: {corpus}", file=sys.stderr)
        return 2
    files = sorted(p for p in corpus.glob("*.json"))[:: args.stride][: args.limit]
    kw = {"time_limit": args.time_limit, "lenient": args.lenient, "strict": args.strict,
          "property_order": args.property_order}
    t0 = time.time()
    if args.frontend_only:
        res = [frontend_file(f, **kw) for f in files]
        ts = [r["s"] for r in res if r["kind"] in ("dfa", "cfg")]
        kinds: dict = {}
        for r in res:
            kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
        print(json.dumps({"files": len(res), "kinds": kinds, "property_order": args.property_order,
                          "schema_order_fallbacks": sum(r["order"] != args.property_order for r in res),
                          "frontend_ms": _ms(ts)}, indent=1))
        return 0
    if args.workers > 1:
        import multiprocessing as mp

        # spawn, not fork: numba's threading layer can deadlock in forked children
        with mp.get_context("spawn").Pool(args.workers) as pool:
            results = []
            for r in pool.imap_unordered(_worker, [(f, kw) for f in files], chunksize=4):
                results.append(r)
                if len(results) % 200 == 0:
                    print(f"{len(results)}/{len(files)} files, {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    else:
        results = [_worker((f, kw)) for f in files]
    summary = summarize(results)
    summary["property_order"] = args.property_order
    summary["schema_order_fallbacks"] = sum(r.get("order") == "schema" for r in results)
    if args.property_order == "any":
        summary["any_order_alone"] = any_order_alone(results)
    summary["wall_s"] = round(time.time() - t0, 1)
    summary["top_reasons"] = _unsupported_reasons(results)
    summary["wrong_files"] = sorted(r["file"] for r in results if r["status"] in ("false_positive", "false_negative", "crash"))
    peers = {}
    peer_files = files[:: args.peer_stride]
    for engine in filter(None, args.peers.split(",")):
        pres = [_peer_worker((f, engine, args.time_limit)) for f in peer_files]
        ct = [r["compile_s"] for r in pres if r["status"] in ("ok", "wrong")]
        by: dict = {}
        for r in pres:
            by[r["status"]] = by.get(r["status"], 0) + 1
        peers[engine] = {"files": len(pres), "status": by,
                         "compiled_pct": round(100 * len(ct) / max(len(pres), 1), 2),
                         "ok_pct": round(100 * by.get("ok", 0) / max(len(pres), 1), 2),
                         "compile_ms": _ms(ct), "mask_us": _mask_us([x for r in pres for x in r.get("mask_ns", [])])}
    if peers:
        # kmgrammar on exactly the peers' files, for a like-for-like row
        mine = {r["file"]: r for r in results}
        summary["kmgrammar_on_peer_files"] = summarize([mine[f.name] for f in peer_files if f.name in mine])
        summary["peers"] = peers
    print(json.dumps(summary, indent=1))
    if args.out:
        for r in results:
            r.pop("mask_ns", None)
        Path(args.out).write_text(json.dumps({"summary": summary, "files": results}, indent=0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
