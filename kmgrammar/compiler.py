"""Spec -> CompiledGrammar: the compile entry points, with the disk cache in front of them."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from typing import Callable, Iterable

from . import cache as _cache
from .artifact import CompiledGrammar
from .automaton import ByteDFA, Limits, _Budget
from .errors import ArtifactError, CompileError, CompileLimitError, VocabError
from .token_automaton import build_token_automaton


def _limits(max_states: int | None, time_limit: float | None) -> Limits:
    d = Limits()
    return Limits(max_states=d.max_states if max_states is None else int(max_states),
                  time_limit=d.time_limit if time_limit is None else float(time_limit))


@contextmanager
def _naming_time_limit(limits: Limits):
    """Phases get what is left of the time budget; an exceeded one names the caller's limit."""
    try:
        yield
    except CompileLimitError as e:
        if e.limit != "time_limit":
            raise
        raise CompileLimitError.time(limits.time_limit) from None


def _check_vocab(vocab) -> None:
    if not hasattr(vocab, "token_bytes") or not hasattr(vocab, "fingerprint"):
        raise VocabError(f"expected a kmgrammar.Vocabulary, got {type(vocab).__name__}")


def cached_artifact(key: str | None, vocab) -> CompiledGrammar | None:
    """The cache entry for `key`, or None; a bad entry is logged, deleted and treated as a miss."""
    if key is None:
        return None
    data = _cache.load(key)
    if data is None:
        return None
    try:
        hit = CompiledGrammar.from_bytes(data, vocab)
    except (ArtifactError, VocabError) as e:
        _cache.discard(key, str(e))
        return None
    hit.cache_key, hit.from_cache = key, True
    return hit


def store_artifact(key: str | None, compiled: CompiledGrammar) -> None:
    """Save a fresh compile under `key` (None: caching is off)."""
    if key is not None:
        compiled.cache_key = key
        _cache.store(key, compiled.to_bytes())


def compile_with_cache(kind: str, spec, options: dict, vocab, build: Callable[[Limits], ByteDFA], *,
                       cache: bool = True, limits: Limits | None = None) -> CompiledGrammar:
    """Look up (kind, spec, options, vocab) in the disk cache, else build the DFA, token-compile, store."""
    _check_vocab(vocab)
    limits = limits or Limits()
    key = _cache.make_key(kind, spec, options, vocab.fingerprint) if cache else None
    hit = cached_artifact(key, vocab)
    if hit is not None:
        return hit
    t0 = time.perf_counter()
    budget = _Budget(limits)
    with _naming_time_limit(limits):
        dfa = build(limits)
        t1 = time.perf_counter()
        arrays, stats = build_token_automaton(dfa, vocab, budget)
    arrays.update(dfa_trans=dfa.trans, dfa_classes=dfa.classes, dfa_accept=dfa.accept)
    stats["dfa_seconds"] = round(t1 - t0, 6)
    stats["compile_seconds"] = round(time.perf_counter() - t0, 6)
    compiled = CompiledGrammar(kind=kind, spec=spec, options=options, vocab=vocab, arrays=arrays, stats=stats)
    store_artifact(key, compiled)
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


def compile_json_schema(schema, vocab, *, whitespace: str = "compact", separators=None, indent: int | None = None,
                        strict: bool = False, lenient: bool = False, property_order: str = "schema",
                        max_states: int | None = None, time_limit: float | None = None,
                        cache: bool = True) -> CompiledGrammar:
    """Compile a JSON Schema for `vocab`: the matcher allows exactly the serialized documents that
    validate (serialization and departures: `kmgrammar.jsonschema`, `kmgrammar.jsonschema_values`).

    Parameters
    ----------
    schema : dict, bool, str (JSON text) or Pydantic model class
        The schema (drafts 2020-12 and 7; local `$ref` only).
    vocab : Vocabulary
        The tokenizer's vocabulary.
    whitespace : {"compact", "flexible"}, default "compact"
        "compact": no whitespace, separators "," and ":" (or `separators=(item, key)`);
        "flexible": up to `jsonschema_values.MAX_FLEXIBLE_WS` JSON whitespace characters between tokens.
    separators : (str, str), optional
        Item and key separators for compact output, e.g. (", ", ": ").
    indent : int, optional
        Pretty-printed output as `json.dumps(indent=N)` writes it (overrides `whitespace`).
    strict : bool, default False
        Treat a missing `additionalProperties` as false (as OpenAI's structured outputs do).
    lenient : bool, default False
        Unsupported keywords become warnings (the keyword is not enforced) instead of errors.
    property_order : {"schema", "any"}, default "schema"
        Declared properties in schema order, or in any order (each at most once; 2^n automaton
        nodes for n declared properties of one object, a CompileLimitError past 10, or past ~30k
        estimated states for an object whose values are all regular).
    max_states, time_limit : optional
        Compile limits (defaults in `automaton.Limits`).
    cache : bool, default True
        Use the disk cache.

    Returns
    -------
    CompiledGrammar

    Raises
    ------
    UnsupportedFeatureError
        Naming every unsupported keyword with its JSON pointer (sorted), unless `lenient`.
    CompileLimitError, CompileError
        Limits exceeded; invalid schema; a schema no value satisfies.
    """
    from .cfg_compile import compile_grammar
    from .earley import DEFAULT_MAX_DEPTH
    from .jsonschema import load_schema, schema_to_grammar

    schema = load_schema(schema)
    text = json.dumps(schema, sort_keys=True, ensure_ascii=False)
    # Both back ends store under one key (the grammar path adds max_depth to the options), so a
    # cached load finds either artifact before running the frontend.
    options = {"whitespace": whitespace, "separators": list(separators) if separators else None,
               "indent": indent, "strict": bool(strict), "lenient": bool(lenient),
               "max_depth": DEFAULT_MAX_DEPTH}
    if property_order != "schema":
        options["property_order"] = property_order

    class _NeedsGrammar(Exception):
        pass

    def build(lim):
        got = schema_to_grammar(schema, whitespace=whitespace, separators=separators, indent=indent,
                                strict=strict, lenient=lenient, property_order=property_order, limits=lim)
        if isinstance(got, ByteDFA):
            return got
        raise _NeedsGrammar(got)

    limits = _limits(max_states, time_limit)
    budget = _Budget(limits)
    try:
        return compile_with_cache("json_schema", text, options, vocab, build, cache=cache, limits=limits)
    except _NeedsGrammar as e:  # any JSON value or recursion: the context-free engine
        grammar = e.args[0]
        left = budget.left().time_limit
        grammar_options = {k: v for k, v in options.items() if k != "max_depth"}
        with _naming_time_limit(limits):
            return compile_grammar("json_schema", text, vocab, lambda lim: grammar, options=grammar_options,
                                   cache=cache, max_states=max_states, time_limit=left)


def compile_lark(grammar: str, vocab, *, start: str = "start", cache: bool = True,
                 max_states: int | None = None, time_limit: float | None = None,
                 max_depth: int | None = None) -> CompiledGrammar:
    """Compile a Lark grammar (its context-free language, as `lexer="dynamic_complete"` reads it).

    Parameters
    ----------
    grammar : str
        Lark grammar text (`%import common.*`, `%ignore`, templates, `?rule`, `~n..m` ...).
    vocab : Vocabulary
    start : str, default "start"
        The start rule.
    cache : bool, default True
        Use the disk cache.
    max_states, time_limit : optional
        Compile limits (automaton positions; seconds), see `automaton.Limits`.
    max_depth : int, default 10,000
        Run-time nesting limit; deeper input raises `MatcherError` on accept.

    Returns
    -------
    CompiledGrammar
        Kind "lark" (no recursion: the regular token automaton) or "cfg".

    Raises
    ------
    GrammarSyntaxError, UnsupportedFeatureError, CompileLimitError, CompileError
    """
    from .cfg import load_lark
    from .cfg_compile import compile_grammar

    return compile_grammar("lark", grammar, vocab, lambda lim: load_lark(grammar, start=start, limits=lim),
                           options={"start": start}, cache=cache, max_states=max_states,
                           time_limit=time_limit, max_depth=max_depth)


def compile_gbnf(grammar: str, vocab, *, start: str = "root", cache: bool = True,
                 max_states: int | None = None, time_limit: float | None = None,
                 max_depth: int | None = None) -> CompiledGrammar:
    """Compile a llama.cpp GBNF grammar (see `compile_lark` for the options)."""
    from .cfg_compile import compile_grammar
    from .cfg_gbnf import load_gbnf

    return compile_grammar("gbnf", grammar, vocab, lambda lim: load_gbnf(grammar, start=start, limits=lim),
                           options={"start": start}, cache=cache, max_states=max_states,
                           time_limit=time_limit, max_depth=max_depth)
