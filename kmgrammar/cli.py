"""Command line: compile constraints to artifacts, inspect them, check text, sample, manage the cache.

    kmgrammar compile --regex '[0-9]{4}-[0-9]{2}-[0-9]{2}' -o date.kmg
    kmgrammar inspect date.kmg
    kmgrammar check date.kmg 2024-01-31
    kmgrammar sample date.kmg -n 3 --seed 1
    kmgrammar cache info

Every subcommand shares one parent parser (`--tokenizer`, `--cache-dir`, `-v`, `-o`). Errors print
one line, `kmgrammar: error: ...`, on stderr and exit 2; `check` exits 1 when the text is rejected.
"""

from __future__ import annotations

import argparse
import inspect as _inspect
import json
import logging
import os
import random
import sys
import threading
import time
import traceback

DEFAULT_TOKENIZER = "cl100k_base"
# A compile that takes longer than this prints "(still working)" on stderr, then every _EVERY s.
PROGRESS_DELAY = 1.0
PROGRESS_EVERY = 5.0

EXIT_OK, EXIT_REJECTED, EXIT_ERROR = 0, 1, 2


class _CliError(Exception):
    """Bad input found by the CLI itself; printed as one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2) like every other error."""

    def error(self, message):
        print(f"kmgrammar: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(EXIT_ERROR)


# -- parser ------------------------------------------------------------------------------------


def _common(suppress: bool) -> argparse.ArgumentParser:
    """The options every subcommand takes. On subparsers their defaults are suppressed so an
    option given before the subcommand (`kmgrammar -v compile ...`) is not reset by it."""
    d = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--tokenizer", metavar="NAME|PATH", default=d(None),
                   help=f"tiktoken encoding name, .gguf file, or tokenizer.json / folder "
                        f"(default {DEFAULT_TOKENIZER})")
    p.add_argument("--cache-dir", metavar="DIR", default=d(None),
                   help="artifact cache folder for this run (sets KMGRAMMAR_CACHE_DIR)")
    p.add_argument("-v", "--verbose", action="count", default=d(0),
                   help="more output; -v also shows tracebacks of unexpected errors")
    p.add_argument("-o", "--output", metavar="FILE", default=d(None),
                   help="compile: where to write the artifact; other commands: write the report "
                        "there instead of stdout")
    return p


def build_parser() -> argparse.ArgumentParser:
    """The `kmgrammar` argument parser (subcommands compile, inspect, check, sample, cache)."""
    from . import __version__

    parser = _Parser(prog="kmgrammar", parents=[_common(False)],
                     description="Compile regexes and choice lists ahead of time into exact "
                                 "token-level automata for a tokenizer.")
    parser.add_argument("--version", action="version", version=f"kmgrammar {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    common = [_common(True)]

    p = sub.add_parser("compile", parents=common, help="compile a constraint (and save it with -o)",
                       description="Compile a constraint for --tokenizer. Prints states, distinct "
                                   "mask rows, token transitions, compile time and artifact size.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--regex", metavar="PATTERN", help="Python re syntax, full-match semantics")
    src.add_argument("--choices", metavar="FILE",
                     help="one option per line (blank lines skipped), or a JSON list of strings")
    src.add_argument("--json-schema", metavar="FILE", help="a JSON Schema file")
    src.add_argument("--lark", metavar="FILE|NAME", help="a Lark grammar file")
    src.add_argument("--gbnf", metavar="FILE|NAME", help="a GBNF grammar file")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the disk cache")
    p.add_argument("--max-states", type=int, metavar="N", help="compile limit on automaton states")
    p.add_argument("--time-limit", type=float, metavar="SECONDS", help="compile limit on wall time")
    p.add_argument("--start", metavar="RULE", help="--lark/--gbnf: the start rule (default start / root)")
    js = p.add_argument_group("JSON Schema options (with --json-schema)")
    js.add_argument("--whitespace", choices=["compact", "flexible"], help="default compact")
    js.add_argument("--indent", type=int, metavar="N", help="pretty-printed as json.dumps(indent=N) writes it")
    js.add_argument("--strict", action="store_true", help="a missing additionalProperties means false")
    js.add_argument("--lenient", action="store_true", help="unsupported keywords warn instead of failing")
    js.add_argument("--property-order", choices=["schema", "any"], help="default schema")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("inspect", parents=common, help="describe an artifact (no tokenizer needed)",
                       description="Print an artifact's kind, spec, options, versions, vocabulary "
                                   "fingerprint, stats and arrays. With --tokenizer, also say "
                                   "whether the artifact fits that tokenizer.")
    p.add_argument("artifact", metavar="ARTIFACT.kmg")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("check", parents=common, help="does a text match? (exit 0 yes, 1 no)",
                       description="Exit 0 and print 'accepted' if the text is a complete match; "
                                   "otherwise print where it leaves the language and exit 1.")
    p.add_argument("artifact", metavar="ARTIFACT.kmg")
    p.add_argument("text", nargs="?", metavar="TEXT")
    p.add_argument("--file", metavar="FILE", help="check this file's bytes instead of TEXT ('-': stdin)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("sample", parents=common, help="random valid outputs, walking the masks",
                       description="Generate random outputs by walking the token masks with a "
                                   "Matcher (no model): uniform over allowed tokens, stopping at "
                                   "accepting states more often as the output grows. One Python "
                                   "repr per line.")
    p.add_argument("artifact", metavar="ARTIFACT.kmg")
    p.add_argument("-n", type=int, default=3, metavar="N", help="number of samples (default 3)")
    p.add_argument("--seed", type=int, help="random seed (default: random)")
    p.add_argument("--max-tokens", type=int, default=64, metavar="N",
                   help="soft length budget; past it the walk heads straight for the end (default 64)")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("cache", parents=common, help="show or clear the artifact cache")
    p.add_argument("action", choices=["info", "clear"])
    p.set_defaults(func=cmd_cache)
    return parser


# -- entry point -------------------------------------------------------------------------------


def main(argv=None) -> int:
    """Run the `kmgrammar` command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default `sys.argv[1:]`).

    Returns
    -------
    int
        0 on success, 1 when `check` rejects the text, 2 on any error (one line on stderr).
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, --version, usage errors
        return e.code if isinstance(e.code, int) else EXIT_ERROR
    verbose = args.verbose or 0
    old_env = os.environ.get("KMGRAMMAR_CACHE_DIR")
    if args.cache_dir:
        os.environ["KMGRAMMAR_CACHE_DIR"] = args.cache_dir
    log = logging.getLogger("kmgrammar")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("kmgrammar: %(message)s"))
    old_level = log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if verbose >= 2 else logging.INFO if verbose else logging.WARNING)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("kmgrammar: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        _report(e, verbose)
        return EXIT_ERROR
    finally:
        log.removeHandler(handler)
        log.setLevel(old_level)
        if args.cache_dir:
            if old_env is None:
                os.environ.pop("KMGRAMMAR_CACHE_DIR", None)
            else:
                os.environ["KMGRAMMAR_CACHE_DIR"] = old_env


def _report(e: BaseException, verbose: int) -> None:
    from .errors import KmgrammarError

    if isinstance(e, (KmgrammarError, _CliError)):
        msg = str(e)
    elif isinstance(e, OSError):
        msg = f"{e.filename}: {e.strerror}" if e.filename and e.strerror else str(e)
    else:
        hint = "" if verbose else " (run with -v for the traceback)"
        msg = f"unexpected {type(e).__name__}: {e}{hint}"
    lines = msg.strip().splitlines() or [type(e).__name__]
    print(f"kmgrammar: error: {lines[0]}", file=sys.stderr)
    if verbose:
        for line in lines[1:]:
            print(line, file=sys.stderr)
        if not isinstance(e, (KmgrammarError, _CliError, OSError)):
            traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)


# -- helpers -----------------------------------------------------------------------------------


class _Progress:
    """Prints "compiling ... (still working)" on stderr while a compile runs past `delay` seconds."""

    def __init__(self, what: str, delay: float | None = None, every: float | None = None):
        self.what = what
        self.delay = PROGRESS_DELAY if delay is None else delay
        self.every = PROGRESS_EVERY if every is None else every
        self.stream = sys.stderr
        self.printed = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kmgrammar-progress", daemon=True)

    def _run(self) -> None:
        from . import clock

        t0, x0, wait = time.monotonic(), clock.excluded_seconds(), self.delay
        while not self._done.wait(wait):
            print(self.line(time.monotonic() - t0, clock.excluded_seconds() - x0), file=self.stream, flush=True)
            self.printed += 1
            wait = self.every

    def line(self, seconds: float, numba_seconds: float) -> str:
        # numba_seconds: a fresh install's kernel JIT (or numba's import), not the constraint's work
        note = ""
        if numba_seconds >= 1:
            note = f"; {numba_seconds:.0f} s of it setting up numba's kernels, once per install"
        return f"kmgrammar: compiling {self.what} ... (still working, {seconds:.0f} s{note})"

    def __enter__(self) -> "_Progress":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()


def _tokenizer_name(args) -> str:
    return args.tokenizer or DEFAULT_TOKENIZER


def _load_vocab(args):
    from .errors import VocabError
    from .vocab import load_vocabulary

    name = _tokenizer_name(args)
    try:
        return load_vocabulary(name)
    except VocabError as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else "unknown error"
        raise _CliError(msg if name in msg else f"cannot load tokenizer {name!r}: {msg}") from None
    except OSError as e:
        raise _CliError(f"cannot load tokenizer {name!r}: {e.strerror or e}") from None
    except Exception as e:  # a tokenizer library's own error: still bad input, not a crash
        raise _CliError(f"cannot load tokenizer {name!r}: {type(e).__name__}: {e}") from None


def _read_artifact_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise _CliError(f"cannot read artifact {path!r}: {e.strerror or e}") from None


def _load_compiled(args):
    """The artifact named on the command line, for the --tokenizer vocabulary."""
    from .artifact import CompiledGrammar
    from .errors import ArtifactError, VocabError

    data = _read_artifact_bytes(args.artifact)  # before the tokenizer: a missing file fails fast
    vocab = _load_vocab(args)
    try:
        return CompiledGrammar.from_bytes(data, vocab)
    except ArtifactError as e:
        raise _CliError(f"{args.artifact}: {e}") from None
    except VocabError as e:
        raise _CliError(f"{args.artifact}: {e}; or pass the tokenizer it was compiled for with "
                        f"--tokenizer NAME|PATH (this run used {_tokenizer_name(args)!r}; "
                        f"'kmgrammar inspect' shows the artifact's fingerprint)") from None


def _bundled_grammar(flag: str, name: str) -> str | None:
    """`--lark json` / `--gbnf json` name a bundled grammar when no such file exists."""
    if flag == "--json-schema" or os.path.exists(name):
        return None
    from . import grammars

    key = name if flag == "--lark" else (name if name.endswith(".gbnf") else name + ".gbnf")
    try:
        return grammars.load(key)
    except KeyError:
        return None


def _read_text(path: str, what: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise _CliError(f"cannot read {what} file {path!r}: {e.strerror or e}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _CliError(f"{what} file {path!r} is not UTF-8 (byte offset {e.start})") from None


def _read_choices(path: str) -> list:
    text = _read_text(path, "choices")
    if path.lower().endswith(".json") or text.lstrip().startswith("["):
        try:
            opts = json.loads(text)
        except json.JSONDecodeError as e:
            if path.lower().endswith(".json"):
                raise _CliError(f"choices file {path!r}: invalid JSON at line {e.lineno}, "
                                f"column {e.colno}: {e.msg}") from None
        else:
            if not isinstance(opts, list) or not all(isinstance(o, str) for o in opts):
                raise _CliError(f"choices file {path!r}: JSON must be a list of strings")
            return opts
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n") if line.strip()]


def _abbrev(spec, width: int = 70) -> str:
    if isinstance(spec, list):
        shown, parts = 0, []
        for opt in spec:
            r = repr(opt)
            if parts and shown + len(r) > width:
                break
            parts.append(r)
            shown += len(r) + 2
        more = f", ... ({len(spec)} options)" if len(parts) < len(spec) else ""
        return "[" + ", ".join(parts) + more + "]"
    text = spec if isinstance(spec, str) else json.dumps(spec, ensure_ascii=False, separators=(",", ":"))
    r = repr(text) if isinstance(spec, str) else text
    return r if len(r) <= width else r[: width - 3] + "..."


def _n(x) -> str:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    return f"{x:,}" if isinstance(x, int) else f"{x:.4g}"


def _open_report(args):
    """Where a non-compile command writes its report: -o FILE, else stdout."""
    if args.output and args.output != "-":
        try:
            return open(args.output, "w", encoding="utf-8")
        except OSError as e:
            raise _CliError(f"cannot write {args.output!r}: {e.strerror or e}") from None
    return None


class _Report:
    def __init__(self, args):
        self._f = _open_report(args)

    def __enter__(self):
        return self._f or sys.stdout

    def __exit__(self, *exc):
        if self._f is not None:
            self._f.close()


# -- compile -----------------------------------------------------------------------------------


def _compile_call(fn, spec, vocab, opts: dict, flag: str):
    """Call a compile_* function with the options its signature takes; warn about the rest."""
    try:
        params = _inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = None
    if params is not None and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        for k in [k for k in opts if k not in params]:
            if k != "cache" or not opts[k]:
                option = "--no-cache" if k == "cache" else "--" + k.replace("_", "-")
                print(f"kmgrammar: warning: {option} is not supported with {flag}; ignored",
                      file=sys.stderr)
            del opts[k]
    return fn(spec, vocab, **opts)


def cmd_compile(args) -> int:
    """`kmgrammar compile`: compile (or fetch from the cache), report, save with -o."""
    import kmgrammar

    from . import cache as _cache
    from .artifact import atomic_write

    if args.output == "-":
        raise _CliError("compile -o: an artifact is binary; give a file name, not '-'")
    if args.max_states is not None and args.max_states < 1:
        raise _CliError("--max-states must be at least 1")
    if args.time_limit is not None and args.time_limit <= 0:
        raise _CliError("--time-limit must be positive")
    if args.regex is not None:
        flag, fn, spec = "--regex", kmgrammar.compile_regex, args.regex
    elif args.choices is not None:
        flag, fn, spec = "--choices", kmgrammar.compile_choices, _read_choices(args.choices)
    else:
        flag, name, path = next((f, n, p) for f, n, p in (
            ("--json-schema", "compile_json_schema", args.json_schema),
            ("--lark", "compile_lark", args.lark),
            ("--gbnf", "compile_gbnf", args.gbnf)) if p is not None)
        fn = getattr(kmgrammar, name, None)
        if fn is None:
            raise _CliError(f"{flag} is not available in this version of kmgrammar "
                            f"({kmgrammar.__version__})")
        text = _bundled_grammar(flag, path)
        if text is None:
            text = _read_text(path, flag[2:])
        if flag == "--json-schema":
            try:
                spec = json.loads(text)
            except json.JSONDecodeError as e:
                raise _CliError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: "
                                f"{e.msg}") from None
        else:
            spec = text
    opts = {"cache": not args.no_cache}
    schema_opts = {"whitespace": args.whitespace, "indent": args.indent, "property_order": args.property_order,
                   "strict": args.strict or None, "lenient": args.lenient or None}
    schema_opts = {k: v for k, v in schema_opts.items() if v is not None}
    if schema_opts and flag != "--json-schema":
        used = ", ".join("--" + k.replace("_", "-") for k in schema_opts)
        raise _CliError(f"{used}: only with --json-schema")
    opts.update(schema_opts)
    if args.start is not None:
        if flag not in ("--lark", "--gbnf"):
            raise _CliError("--start: only with --lark or --gbnf")
        opts["start"] = args.start
    if args.max_states is not None:
        opts["max_states"] = args.max_states
    if args.time_limit is not None:
        opts["time_limit"] = args.time_limit

    vocab = _load_vocab(args)
    what = f"{flag[2:]} {_abbrev(spec, 40)}"
    t0 = time.perf_counter()
    with _Progress(what):
        compiled = _compile_call(fn, spec, vocab, opts, flag)
    wall = time.perf_counter() - t0

    data = compiled.to_bytes()
    if args.output:
        try:
            atomic_write(args.output, data)
        except OSError as e:
            raise _CliError(f"cannot write {args.output!r}: {e.strerror or e}") from None

    st = compiled.stats
    rows = [
        ("kind", compiled.kind),
        ("spec", _abbrev(compiled.spec)),
        ("tokenizer", f"{_tokenizer_name(args)} (vocab_size {_n(vocab.vocab_size)}, "
                      f"fingerprint {vocab.fingerprint[:16]})"),
        ("states", _n(st.get("states", compiled.n_states))),
        ("distinct mask rows", _n(st.get("distinct_rows", "?"))),
        ("token transitions", _n(st.get("token_transitions", "?"))),
    ]
    if "compile_seconds" in st:
        rows.append(("compile time", f"{st['compile_seconds']:.3f} s"))
    rows.append(("this run", f"{wall:.3f} s" + (" (loaded from cache)" if compiled.from_cache else "")))
    rows.append(("artifact size", f"{_n(len(data))} bytes ({_n(compiled.nbytes)} of arrays)"))
    if args.output:
        rows.append(("written to", args.output))
    if args.verbose:
        rows += [(k.replace("_", " "), _n(v)) for k, v in st.items()
                 if k not in ("states", "distinct_rows", "token_transitions", "compile_seconds")]
        if compiled.cache_key is not None:
            rows.append(("cache entry", os.path.join(str(_cache.cache_dir()), compiled.cache_key + ".kmg")))
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    return EXIT_OK


# -- inspect -----------------------------------------------------------------------------------


def cmd_inspect(args) -> int:
    """`kmgrammar inspect`: read an artifact's header and arrays; no tokenizer needed."""
    from .artifact import FORMAT_VERSION, read_artifact
    from .errors import ArtifactError

    data = _read_artifact_bytes(args.artifact)
    try:
        header, arrays = read_artifact(data)
    except ArtifactError as e:
        raise _CliError(f"{args.artifact}: {e}") from None
    vocab = header.get("vocab", {})
    rows = [
        ("file", f"{args.artifact} ({_n(len(data))} bytes)"),
        ("format", f"kmgrammar artifact format {FORMAT_VERSION}, "
                   f"written by kmgrammar {header.get('kmgrammar', '?')}"),
        ("kind", header.get("kind")),
        ("spec", _abbrev(header.get("spec"), 200)),
        ("options", json.dumps(header.get("options", {}), sort_keys=True)),
        ("vocab fingerprint", vocab.get("fingerprint")),
        ("vocab size", _n(vocab.get("vocab_size"))),
    ]
    if args.tokenizer:
        v = _load_vocab(args)
        fits = v.fingerprint == vocab.get("fingerprint") and v.vocab_size == vocab.get("vocab_size")
        verdict = "matches" if fits else "does NOT match (compiled for another vocabulary)"
        rows.append(("tokenizer", f"{args.tokenizer}: {verdict}"))
    rows += [(k.replace("_", " "), _n(v)) for k, v in header.get("stats", {}).items()]
    w = max(len(k) for k, _ in rows)
    with _Report(args) as out:
        for k, v in rows:
            print(f"{k:<{w}}  {v}", file=out)
        total = sum(a.nbytes for a in arrays.values())
        print(f"arrays ({len(arrays)}, {_n(total)} bytes):", file=out)
        nw = max(len(n) for n in arrays)
        for name in sorted(arrays):
            a = arrays[name]
            shape = "x".join(map(str, a.shape)) or "scalar"
            print(f"  {name:<{nw}}  {a.dtype.str:<4} {shape:>14}  {_n(a.nbytes):>12} bytes", file=out)
    return EXIT_OK


# -- check -------------------------------------------------------------------------------------


def _show(data: bytes) -> str:
    return repr(data.decode("utf-8", "backslashreplace"))


def cmd_check(args) -> int:
    """`kmgrammar check`: full match -> "accepted" (0); else where it fails (1)."""
    from .matcher import Matcher

    if (args.text is None) == (args.file is None):
        raise _CliError("check needs exactly one of TEXT or --file FILE")
    if args.file is not None:
        try:
            if args.file == "-":
                data = sys.stdin.buffer.read()
            else:
                with open(args.file, "rb") as f:
                    data = f.read()
        except OSError as e:
            raise _CliError(f"cannot read {args.file!r}: {e.strerror or e}") from None
    else:
        data = args.text.encode("utf-8", "surrogateescape")  # argv bytes that were not UTF-8
    compiled = _load_compiled(args)
    m = Matcher(compiled)
    bad = None
    if not m.accept_string(data):
        # Find the first byte that leaves the language, one byte per step (any kind of artifact).
        for i in range(len(data)):
            if not m.accept_string(data[i:i + 1]):
                bad = i
                break
    with _Report(args) as out:
        if bad is not None:
            print(f"rejected at byte offset {bad} (of {len(data)}): {_show(data[max(0, bad - 30):bad])} "
                  f"is followed by {_show(data[bad:bad + 10])}, which the constraint does not allow",
                  file=out)
            return EXIT_REJECTED
        if m.is_accepting():
            print("accepted", file=out)
            return EXIT_OK
        forced = m.forced_bytes()
        hint = f"; it must continue with {_show(forced)}" if forced else ""
        print(f"incomplete: valid prefix, not complete (all {len(data)} bytes fit{hint})", file=out)
        return EXIT_REJECTED


# -- sample ------------------------------------------------------------------------------------


def _distance_to_accept(dfa):
    """Fewest bytes from each DFA state to an accepting state (trimmed DFAs: always finite)."""
    import numpy as np

    inf = np.int64(1) << 40
    trans = dfa.trans
    dist = np.where(dfa.accept, 0, inf).astype(np.int64)
    if trans.shape[0] == 0 or trans.shape[1] == 0:
        return dist
    live, succ = trans >= 0, np.maximum(trans, 0)
    while True:
        new = np.minimum(dist, np.where(live, dist[succ], inf).min(axis=1) + 1)
        if np.array_equal(new, dist):
            return dist
        dist = new


def _sample_one(compiled, rng: random.Random, max_tokens: int, dist_cache: list):
    """One random walk over the masks; returns (bytes, token ids)."""
    import numpy as np

    from .matcher import Matcher

    m, dfa = Matcher(compiled), compiled.dfa
    tb = compiled.vocab.token_bytes
    eos = np.asarray(sorted(compiled.vocab.eos_token_ids), dtype=np.int64)
    state, out, ids = 0, bytearray(), []
    hard_cap = None
    while True:
        allowed = m.allowed_token_ids()
        choices = allowed[~np.isin(allowed, eos)] if len(eos) else allowed
        steps = len(ids)
        if m.is_accepting():
            # Stop sometimes early on, surely once the budget is spent.
            p_stop = 0.2 + 0.8 * min(1.0, steps / max(1, max_tokens))
            if not len(choices) or steps >= max_tokens or rng.random() < p_stop:
                allowed_eos = [t for t in eos.tolist() if t in set(allowed.tolist())]
                if allowed_eos:
                    t = rng.choice(allowed_eos)
                    if not m.accept_token(t):
                        raise _CliError(f"sample: EOS token {t} in the mask was refused "
                                        "(internal error)")
                    ids.append(t)
                return bytes(out), ids
        if not len(choices):
            raise _CliError("sample: no token is allowed here "
                            "(the vocabulary cannot continue this output)")
        if steps < max_tokens:
            t = int(choices[rng.randrange(len(choices))])
        else:  # over budget: take a token that gets closest to an accepting state
            if not dist_cache:
                dist_cache.append(_distance_to_accept(dfa))
            dist = dist_cache[0]
            if hard_cap is None:
                hard_cap = steps + 4 * int(dist[state]) + 64
            if steps >= hard_cap:
                raise _CliError(f"sample: could not finish an output within {hard_cap} tokens")
            best, pick = None, []
            for c in choices.tolist():
                d = int(dist[dfa.step(state, tb[c])])
                if best is None or d < best:
                    best, pick = d, [c]
                elif d == best:
                    pick.append(c)
            t = rng.choice(pick)
        if not m.accept_token(t):
            raise _CliError(f"sample: token {t} in the mask was refused (internal error)")
        state = dfa.step(state, tb[t])
        out += tb[t]
        ids.append(t)


def cmd_sample(args) -> int:
    """`kmgrammar sample`: random valid outputs, one repr per line."""
    if args.n < 0:
        raise _CliError("-n must be at least 0")
    if args.max_tokens < 1:
        raise _CliError("--max-tokens must be at least 1")
    compiled = _load_compiled(args)
    if compiled.n_states == 0:
        raise _CliError(f"{args.artifact}: the constraint accepts nothing")
    rng = random.Random(args.seed)
    dist_cache: list = []
    with _Report(args) as out:
        for i in range(args.n):
            data, ids = _sample_one(compiled, rng, args.max_tokens, dist_cache)
            try:
                shown = repr(data.decode("utf-8"))
            except UnicodeDecodeError:
                shown = repr(data)
            print(shown, file=out, flush=True)
            if args.verbose:
                print(f"kmgrammar: sample {i + 1}: {len(ids)} tokens {ids}", file=sys.stderr)
    return EXIT_OK


# -- cache -------------------------------------------------------------------------------------


def cmd_cache(args) -> int:
    """`kmgrammar cache info|clear`."""
    from . import cache as _cache

    with _Report(args) as out:
        if args.action == "clear":
            n = _cache.clear()
            print(f"removed {n} entr{'y' if n == 1 else 'ies'} from {_cache.cache_dir()}", file=out)
        else:
            i = _cache.info()
            print(f"dir        {i['dir']}", file=out)
            print(f"entries    {_n(i['entries'])}", file=out)
            print(f"size       {_n(i['bytes'])} bytes", file=out)
            print(f"max size   {_n(i['max_bytes'])} bytes (KMGRAMMAR_CACHE_MAX_BYTES)", file=out)
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
