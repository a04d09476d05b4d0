"""Mask tables of context-free grammars (cfg_tables.py): the pushdown walk's work bound keeps
the time limit in force inside a chunk, and resuming a walk cut short changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from kmgrammar import compile_lark, grammars
from kmgrammar import cfg_tables
from kmgrammar.errors import CompileLimitError


def _same_arrays(a, b) -> None:
    assert a._arrays.keys() == b._arrays.keys()
    for k in a._arrays:
        assert np.array_equal(a._arrays[k], b._arrays[k]), k


@pytest.mark.parametrize("name", ["json", "arithmetic"])
def test_walks_cut_short_give_the_same_tables(cl100k, monkeypatch, name):
    """Tiny step budgets stop the kernel inside states and between them, and tiny exit arrays
    make it stop after states whose exits overflow: the resumed walks give the same artifact."""
    whole = compile_lark(grammars.load(name), cl100k, cache=False)
    monkeypatch.setattr(cfg_tables, "_STEPS", 5000)
    monkeypatch.setattr(cfg_tables, "_EXIT_CAP", 2)
    cut = compile_lark(grammars.load(name), cl100k, cache=False)
    _same_arrays(whole, cut)


def test_time_limit_checked_inside_a_chunk(cl100k, monkeypatch):
    """A chunk of pushdown walks that outlasts the time limit raises CompileLimitError naming
    time_limit before the chunk is done (the kernel returns after _STEPS steps)."""
    from kmgrammar.cfg_rtn import actions, build_rtn, byte_sets, follow2, recursive_rules
    from kmgrammar.automaton import Limits
    from kmgrammar.cfg import load_lark
    from kmgrammar.token_automaton import split_tries, words_for

    cfg = load_lark(grammars.load("json"))
    rtn = build_rtn(cfg, recursive_rules(cfg), Limits())
    sets = byte_sets(rtn)
    flags, call_start, call_ret, call_first, call_skip = actions(rtn, sets)
    net_args = (np.ascontiguousarray(rtn.trans), np.ascontiguousarray(rtn.classes), flags, rtn.call_ptr,
                call_start, call_ret, call_first, call_skip, np.ascontiguousarray(rtn.owner.astype(np.int32)),
                follow2(rtn, sets))
    clean, _ = split_tries(cl100k, cfg_tables.SPLIT)

    class Expired:  # the deadline passes once the chunk has started
        calls = 0

        def check_time(self):
            self.calls += 1
            if self.calls > 1:
                raise CompileLimitError("compilation exceeded time_limit=0.001s (raise it with time_limit=...)")

    monkeypatch.setattr(cfg_tables, "_STEPS", 1000)
    states = np.arange(rtn.n_pos, dtype=np.int32)
    assert len(states) <= cfg_tables._CHUNK  # one chunk: only the kernel's early return checks
    with pytest.raises(CompileLimitError, match="time_limit"):
        cfg_tables._walk(clean, states, net_args, words_for(cl100k.vocab_size), Expired())


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_tiny_time_limit_on_costly_tables(cl100k):
    """A grammar whose tables take about a second (SQL) under a tiny time limit."""
    with pytest.raises(CompileLimitError, match="time_limit"):
        compile_lark(grammars.load("sql"), cl100k, cache=False, time_limit=0.05)


def test_row_cache_changes_nothing(cl100k, monkeypatch):
    """Rows of regular class walks reused across grammars (same byte structure, same
    vocabulary) give the artifacts a cold compile gives, and are actually reused."""
    from kmgrammar import compile_json_schema

    schemas = [{"type": "object", "properties": {"a": {"type": "string"}, "n": {"type": "number"}}},
               {"type": "object", "properties": {"b": {"type": "array", "items": {"type": "integer"}}},
                "required": ["b"]}]
    jobs = [lambda name=name: compile_lark(grammars.load(name), cl100k, cache=False) for name in ("json", "arithmetic")]
    jobs += [lambda s=s: compile_json_schema(s, cl100k, cache=False) for s in schemas]
    walked = []
    walk = cfg_tables._walk

    def counting_walk(trie, states, *args, regular=False, **kw):
        if regular:
            walked.append(len(states))
        return walk(trie, states, *args, regular=regular, **kw)

    monkeypatch.setattr(cfg_tables, "_walk", counting_walk)
    monkeypatch.setattr(cfg_tables, "_ROW_CACHE_MIN_WORDS", 0)  # keep every row: more reuse
    cold = []
    for job in jobs:  # each alone, from an empty cache
        cfg_tables._ROW_CACHE.clear()
        cold.append(job())
    n_cold = sum(walked)
    warm = [job() for job in jobs]  # the last job's rows are cached, and what others share
    assert sum(walked) - n_cold < n_cold
    for a, b in zip(cold, warm):
        assert a.kind == b.kind == "cfg"
        _same_arrays(a, b)


def test_row_fingerprint_collisions_change_nothing(cl100k, monkeypatch):
    """Distinct rows with one fingerprint stay distinct (rows are compared exactly on a match)."""
    from kmgrammar import kernels

    ref = compile_lark(grammars.load("json"), cl100k, cache=False)
    monkeypatch.setattr(cfg_tables, "_ROW_CACHE", type(cfg_tables._ROW_CACHE)())  # rows walked again
    monkeypatch.setattr(kernels, "row_hashes", lambda rows, keys: np.zeros(len(rows), np.uint64))
    _same_arrays(ref, compile_lark(grammars.load("json"), cl100k, cache=False))


def test_rule_automata_reused_across_compiles_change_nothing(cl100k, monkeypatch):
    """JSON Schema hands every compile the same `json_value` body: its automaton is built once
    per process (`cfg_rtn._RULES`), and the artifacts are those of cold compiles."""
    from kmgrammar import cfg_rtn, compile_json_schema

    schemas = [{}, {"type": "object", "properties": {"a": {}, "b": {"type": "array"}}, "required": ["a"]}]
    built = []
    automaton = cfg_rtn._automaton

    def counting(*args):
        built.append(1)
        return automaton(*args)

    monkeypatch.setattr(cfg_rtn, "_automaton", counting)
    cold = []
    for s in schemas:  # each alone, from an empty cache
        cfg_rtn._RULES.clear()
        cold.append(compile_json_schema(s, cl100k, cache=False))
    n_cold = len(built)
    warm = [compile_json_schema(s, cl100k, cache=False) for s in schemas]
    assert len(built) - n_cold <= n_cold - len(schemas)  # json_value is not built again
    for a, b in zip(cold, warm):
        assert a.kind == b.kind == "cfg"
        _same_arrays(a, b)


def test_spread_rows_matches_dense_rows():
    """kernels.spread_rows: compact rows over a token subset, spread to sparse full-width words."""
    from kmgrammar import kernels

    rng = np.random.default_rng(5)
    n_words = 200
    order = rng.permutation(n_words * 32)[:700].astype(np.int32)  # sub-vocabulary token ids
    cw = (len(order) + 31) // 32
    for density in (0.0, 0.02, 0.5, 1.0):
        bits = rng.random((6, cw * 32)) < density
        bits[:, len(order):] = False
        compact = np.ascontiguousarray(np.packbits(bits, axis=1, bitorder="little").view(np.uint32))
        ptr, idx, val = kernels.spread_rows(compact, order, n_words)
        for r in range(len(compact)):
            dense = np.zeros(n_words, np.uint32)
            toks = order[np.flatnonzero(bits[r])]
            np.bitwise_or.at(dense, toks >> 5, np.left_shift(np.uint32(1), (toks & 31).astype(np.uint32)))
            want = np.flatnonzero(dense)
            assert np.array_equal(idx[ptr[r]: ptr[r + 1]], want)
            assert np.array_equal(val[ptr[r]: ptr[r + 1]], dense[want])


@pytest.mark.filterwarnings("ignore:grammar has greedy-lexing traps")  # sql.lark has some
def test_stack_tables_shared_between_alike_positions_change_nothing(cl100k, monkeypatch):
    """Return positions whose rule instances read every string alike (`kernels.same_local`) share
    their stack-table walks: the artifacts equal those of walks made position by position, and
    some walks are really shared (JSON Schema: `}` closing different objects)."""
    from kmgrammar import compile_json_schema

    schema = {"type": "object", "properties": {
        "a": {"type": "object", "properties": {"x": {"type": "integer"}}},
        "b": {"type": "object", "properties": {"y": {"type": "string"}}},
        "c": {"type": "array", "items": {"type": "object"}}}}
    make = [lambda: compile_json_schema(schema, cl100k, cache=False)]
    make += [lambda n=n: compile_lark(grammars.load(n), cl100k, cache=False) for n in ("json", "arithmetic", "sql")]
    local_classes = cfg_tables.local_classes
    shared = []

    def recording(rtn, positions):
        got = local_classes(rtn, positions)
        shared.append(sum(rep != p for p, rep in got.items()))
        return got

    monkeypatch.setattr(cfg_tables, "local_classes", recording)
    together = [f() for f in make]
    assert max(shared) > 0
    monkeypatch.setattr(cfg_tables, "local_classes", lambda rtn, positions: {p: p for p in positions})
    for f, a in zip(make, together):
        _same_arrays(a, f())


@pytest.mark.filterwarnings("ignore:grammar has greedy-lexing traps")  # sql.lark has some
def test_stack_tables_composed_from_callee_answers_equal_earley_walks(cl100k, monkeypatch):
    """Stack-table walks composed from the answers of the rules a position calls
    (`earley.composed_table`) give the artifacts of Earley walks made position by position:
    any-order objects (their 2^n positions call the same member rules), recursive schemas, and
    hand-written grammars; rules that call themselves before reading a byte are answered by the
    Earley walk."""
    from kmgrammar import compile_json_schema, earley

    member = {"type": ["string", "null"]}
    schemas = [
        ({"type": "object", "properties": {k: member for k in "abcde"}, "required": ["a", "b"]}, "any"),
        ({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "array"}},
          "additionalProperties": False, "required": ["a"]}, "any"),
        ({"$defs": {"t": {"type": "object", "properties": {"v": {"type": "integer"},
                                                            "kids": {"type": "array", "items": {"$ref": "#/$defs/t"}}}}},
          "$ref": "#/$defs/t"}, "schema"),
    ]
    make = [lambda s=s, o=o: compile_json_schema(s, cl100k, cache=False, property_order=o) for s, o in schemas]
    # a and b call each other before reading a byte: answering a's walk needs a's own answers
    left_recursive = 'start: "[" a ("," a)* "]"\na: b "x" | "y" | "(" a ")"\nb: a "z" | "w" | "{" b "}"\n'
    make += [lambda g=g: compile_lark(g, cl100k, cache=False)
             for g in [grammars.load(n) for n in ("json", "arithmetic", "sql", "python_expr")] + [left_recursive]]
    composed_table, local_table = earley.composed_table, earley.local_table
    made, fell_back = [], []

    def composing(net, r, strings, callee):
        made.append(r)
        return composed_table(net, r, strings, callee)

    def falling_back(net, r, strings):
        fell_back.append(r)
        return local_table(net, r, strings)

    monkeypatch.setattr(earley, "composed_table", composing)
    monkeypatch.setattr(earley, "local_table", falling_back)
    together = [f() for f in make]
    assert made and fell_back

    def earley_only(net, r, strings, callee):
        raise earley._Cycle

    monkeypatch.setattr(earley, "composed_table", earley_only)
    earley._LOCAL.clear()
    for f, a in zip(make, together):
        _same_arrays(a, f())


def test_hand_written_grammars_inline_shared_precedence_levels(cl100k):
    """arithmetic.lark's `product` (used three times by `sum`) is inlined: `sum` is the only rule
    kept besides the start rule, so a nesting level is one rule boundary at run time."""
    c = compile_lark(grammars.load("arithmetic"), cl100k, cache=False)
    assert c.stats["nonterminals"] == 2
