"""Grammar text -> CompiledGrammar: frontends, then the regular path or the RTN tables, cached on disk.

A grammar whose reachable rules never recurse compiles to the plain regular token automaton
(kind "lark"/"gbnf", O(1) masks, served by `Matcher`); otherwise to a "cfg" artifact (RTN plus
mask tables, served by `cfg_matcher.GrammarMatcher`, which `Matcher(compiled)` returns).
"""

from __future__ import annotations

import time

from . import cache as _cache
from .artifact import CompiledGrammar
from .automaton import _Budget, build_dfa
from .earley import DEFAULT_MAX_DEPTH
from .errors import CompileError


def compile_grammar(fmt: str, text: str, vocab, to_cfg, *, options: dict, cache: bool = True,
                    max_states: int | None = None, time_limit: float | None = None,
                    max_depth: int | None = None) -> CompiledGrammar:
    """Shared body of `compile_lark` / `compile_gbnf`; `to_cfg(limits)` runs the frontend."""
    from .compiler import _check_vocab, _limits, _naming_time_limit, cached_artifact

    _check_vocab(vocab)
    if not isinstance(text, str):
        raise CompileError(f"a {fmt} grammar must be a str, not {type(text).__name__}")
    limits = _limits(max_states, time_limit)
    depth = DEFAULT_MAX_DEPTH if max_depth is None else int(max_depth)
    if depth < 1:
        raise CompileError(f"max_depth must be at least 1, got {depth}")
    options = dict(options, max_depth=depth)
    key = _cache.make_key(fmt, text, options, vocab.fingerprint) if cache else None
    hit = cached_artifact(key, vocab)
    if hit is not None:
        return hit
    t0 = time.perf_counter()
    with _naming_time_limit(limits):
        return _compile(fmt, text, vocab, to_cfg, options, key, cache, limits, t0)


def _compile(fmt, text, vocab, to_cfg, options, key, cache, limits, t0) -> CompiledGrammar:
    from .compiler import compile_with_cache, store_artifact
    from .cfg_rtn import build_rtn, recursive_rules, to_regular
    from .cfg_tables import build_cfg_tables

    budget = _Budget(limits)
    cfg = to_cfg(limits)
    budget.check_time()
    rec = recursive_rules(cfg)

    if not rec and cfg.regular:
        dfa = build_dfa(to_regular(cfg, rec, budget), budget.left())
        if dfa.is_empty():
            raise CompileError("the grammar's language is empty")
        return compile_with_cache(fmt, text, options, vocab, lambda lim: dfa, cache=cache,
                                  limits=budget.left())
    rtn = build_rtn(cfg, rec, budget.left())
    t1 = time.perf_counter()
    arrays, stats = build_cfg_tables(rtn, vocab, budget)
    stats["rtn_seconds"] = round(t1 - t0, 6)
    stats["compile_seconds"] = round(time.perf_counter() - t0, 6)
    stats["states"] = rtn.n_pos
    if cfg.notes:
        stats["warnings"] = list(cfg.notes)
    compiled = CompiledGrammar(kind="cfg", spec=text, options=dict(options, format=fmt), vocab=vocab,
                               arrays=arrays, stats=stats)
    store_artifact(key, compiled)
    return compiled
