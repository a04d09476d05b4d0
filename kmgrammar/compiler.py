"""Spec -> CompiledGrammar: the compile entry points, with the disk cache in front of them."""

from __future__ import annotations

import time
from typing import Callable, Iterable

from . import cache as _cache
from .artifact import CompiledGrammar
from .automaton import ByteDFA, Limits, _Budget
from .errors import ArtifactError, CompileError, VocabError
from .token_automaton import build_token_automaton


def _limits(max_states: int | None, time_limit: float | None) -> Limits:
    d = Limits()
    return Limits(max_states=d.max_states if max_states is None else int(max_states),
                  time_limit=d.time_limit if time_limit is None else float(time_limit))


def _check_vocab(vocab) -> None:
    if not hasattr(vocab, "token_bytes") or not hasattr(vocab, "fingerprint"):
        raise VocabError(f"expected a kmgrammar.Vocabulary, got {type(vocab).__name__}")


def compile_with_cache(kind: str, spec, options: dict, vocab, build: Callable[[Limits], ByteDFA], *,
                       cache: bool = True, limits: Limits | None = None) -> CompiledGrammar:
    """Look up (kind, spec, options, vocab) in the disk cache, else build the DFA, token-compile, store."""
    _check_vocab(vocab)
    limits = limits or Limits()
    key = _cache.make_key(kind, spec, options, vocab.fingerprint) if cache else None
    if key is not None:
        data = _cache.load(key)
        if data is not None:
            try:
                return CompiledGrammar.from_bytes(data, vocab)
            except (ArtifactError, VocabError) as e:
                _cache.discard(key, str(e))
    t0 = time.perf_counter()
    dfa = build(limits)
    t1 = time.perf_counter()
    budget = _Budget(Limits(limits.max_states, max(0.0, limits.time_limit - (t1 - t0))))
    arrays, stats = build_token_automaton(dfa, vocab, budget)
    arrays.update(dfa_trans=dfa.trans, dfa_classes=dfa.classes, dfa_accept=dfa.accept)
    stats["dfa_seconds"] = round(t1 - t0, 6)
    stats["compile_seconds"] = round(time.perf_counter() - t0, 6)
    compiled = CompiledGrammar(kind=kind, spec=spec, options=options, vocab=vocab, arrays=arrays, stats=stats)
    if key is not None:
        _cache.store(key, compiled.to_bytes())
    return compiled


def compile_regex(pattern: str, vocab, *, cache: bool = True, max_states: int | None = None,
                  time_limit: float | None = None) -> CompiledGrammar:
    """Compile a regex (Python `re` syntax, full-match semantics) for `vocab`.

    Parameters
    ----------
    pattern : str
        The regex. `^` at the start and `$` at the end are accepted and change nothing.
    vocab : Vocabulary
        The tokenizer's vocabulary.
    cache : bool, default True
        Use the disk cache (`kmgrammar.cache`).
    max_states, time_limit : optional
        Compile limits (defaults in `automaton.Limits`).

    Returns
    -------
    CompiledGrammar

    Raises
    ------
    GrammarSyntaxError, UnsupportedFeatureError, CompileLimitError, CompileError
    """
    from .regex import regex_to_dfa

    if not isinstance(pattern, str):
        raise CompileError(f"regex must be a str, not {type(pattern).__name__}")
    return compile_with_cache("regex", pattern, {}, vocab, lambda lim: regex_to_dfa(pattern, limits=lim),
                              cache=cache, limits=_limits(max_states, time_limit))


def compile_choices(options: Iterable[str], vocab, *, cache: bool = True, max_states: int | None = None,
                    time_limit: float | None = None) -> CompiledGrammar:
    """Compile "exactly one of these strings" for `vocab` (see `compile_regex` for the options)."""
    from .choices import choices_to_dfa

    if isinstance(options, (str, bytes)):
        raise CompileError("choices must be a list of strings, not a single string")
    opts = list(options)
    return compile_with_cache("choices", opts, {}, vocab, lambda lim: choices_to_dfa(opts),
                              cache=cache, limits=_limits(max_states, time_limit))


def compile_dfa(dfa: ByteDFA, vocab, *, key: str | None = None, cache: bool = True) -> CompiledGrammar:
    """Token-compile any byte DFA (e.g. an intersection). `key` names it in the disk cache;
    without a key the result is not cached."""
    if dfa.is_empty():
        raise CompileError("the automaton accepts no string (empty language)")
    return compile_with_cache("dfa", key, {}, vocab, lambda lim: dfa, cache=cache and key is not None)
