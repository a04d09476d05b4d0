"""Context-dependent tokens against the real stack: the run-time verdicts (local tables + stack
vectors, or walks near max_depth) agree with accepting the token, on deep and varied stacks."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from kmgrammar import Matcher, allocate_token_bitmask, compile_lark, grammars
from kmgrammar.errors import MatcherError

LEFT_RECURSIVE = """
start: e
e: e "-" e | e "*" e | "(" e ")" | "[" e "]" | NUMBER
%import common.NUMBER
%ignore " "
"""


def _json_value(rng, depth: int):
    if depth <= 0 or rng.random() < 0.25:
        return rng.choice([0, -1.5, "s", "", True, None])
    if rng.random() < 0.5:
        return [_json_value(rng, depth - 1) for _ in range(rng.randint(1, 3))]
    return {rng.choice(["a", "b", ""]) + str(i): _json_value(rng, depth - 1) for i in range(rng.randint(1, 3))}


def _expr(rng, depth: int) -> str:
    if depth <= 0 or rng.random() < 0.2:
        return rng.choice(["1", "x", "2.5", "foo"])
    op = rng.choice(["+", "-", "*", "/", "^", " - ", "(", "f("])
    if op == "(":
        return "(" + _expr(rng, depth - 1) + ")"
    if op == "f(":
        return "f(" + _expr(rng, depth - 1) + ", " + _expr(rng, depth - 1) + ")"
    return _expr(rng, depth - 1) + op + _expr(rng, depth - 1)


def _bracketed(rng, depth: int) -> str:
    if depth <= 0 or rng.random() < 0.2:
        return rng.choice(["1", "22", "3.5"])
    r = rng.random()
    if r < 0.3:
        return "(" + _bracketed(rng, depth - 1) + ")"
    if r < 0.6:
        return "[" + _bracketed(rng, depth - 1) + "]"
    return _bracketed(rng, depth - 1) + rng.choice(["-", "*", " - "]) + _bracketed(rng, depth - 1)


def _dependent_tokens(compiled) -> list:
    """Every token that some position leaves to the run-time verdicts."""
    return sorted(set(compiled._arrays["cfg_grp_tok"].tolist()))


def _check_walk(compiled, vocab, text: str, dependent: list, rng, every: int = 1) -> int:
    """Walk text's tokens; at sampled steps every context-dependent token (and a few others)
    must be in the mask exactly when accept_token takes it."""
    bm = allocate_token_bitmask(1, vocab.vocab_size)
    m = Matcher(compiled)
    checked = 0
    for k, t in enumerate(vocab.encode(text)):
        m.fill_next_token_bitmask(bm)
        bits = np.unpackbits(bm[0].view(np.uint8), bitorder="little")
        if k % every == 0:
            for x in dependent + rng.sample(range(vocab.vocab_size), 20):
                if x in vocab.special_token_ids:
                    continue
                assert m.copy().accept_token(x) == bool(bits[x]), (text, k, vocab.token_bytes[x])
                checked += 1
        assert bits[t], (text, k)
        assert m.accept_token(t)
    return checked


@pytest.mark.parametrize("name", ["json", "arithmetic"])
def test_dependent_tokens_on_deep_stacks(name, cl100k):
    c = compile_lark(grammars.load(name), cl100k)
    dependent = _dependent_tokens(c)
    assert dependent
    rng = random.Random(5)
    checked = 0
    for _ in range(4):
        if name == "json":
            text = json.dumps(_json_value(rng, 8), indent=rng.choice([None, 1]))
        else:
            text = _expr(rng, 7)
        checked += _check_walk(c, cl100k, text, dependent, rng, every=3)
    assert checked > 1000


def test_left_recursive_ambiguous_grammar(cl100k):
    c = compile_lark(LEFT_RECURSIVE, cl100k)
    dependent = _dependent_tokens(c)
    rng = random.Random(6)
    for _ in range(3):
        _check_walk(c, cl100k, _bracketed(rng, 6), dependent, rng, every=2)


def test_near_max_depth_walks_the_real_charts(cl100k):
    """max_depth 4210: the first ~10 levels use the tables, deeper ones walk the real charts
    (where predictions are cut); both agree with accept_token, and so does a tiny max_depth."""
    text = "[" * 14 + "1" + "]" * 14
    for depth in (4210, 20):
        c = compile_lark(grammars.load("json"), cl100k, max_depth=depth)
        dependent = _dependent_tokens(c)
        _check_walk(c, cl100k, text, dependent, random.Random(1))
    c = compile_lark(grammars.load("json"), cl100k, max_depth=6)
    m = Matcher(c)
    assert m.accept_string("[[[[")
    with pytest.raises(MatcherError, match="max_depth"):
        m.accept_string("[[[[[[[[")


def test_masks_do_not_depend_on_cache_history(cl100k):
    """The same states reached cold (fresh compiled grammar) and after other documents give the
    same masks."""
    rng = random.Random(8)
    texts = [_expr(rng, 6) for _ in range(4)]
    warm = compile_lark(grammars.load("arithmetic"), cl100k, cache=False)
    bm = allocate_token_bitmask(1, cl100k.vocab_size)

    def masks(c, text):
        m = Matcher(c)
        out = []
        for t in cl100k.encode(text):
            m.fill_next_token_bitmask(bm)
            out.append(bm[0].copy())
            assert m.accept_token(t)
        return out

    for text in texts:
        masks(warm, text)
    for text in reversed(texts):
        cold = compile_lark(grammars.load("arithmetic"), cl100k, cache=False)
        for a, b in zip(masks(cold, text), masks(warm, text)):
            assert np.array_equal(a, b), text


def test_max_chart_items_is_a_clear_error(cl100k):
    c = compile_lark(grammars.load("json"), cl100k)
    sizes = []
    m = Matcher(c)
    for ch in '[{"a": [1, {"b": null}]}]':
        assert m.accept_string(ch)
        sizes.append(m._charts[-1].size)
    small = max(sizes) - 1
    m = Matcher(c, max_chart_items=small)
    done = 0
    with pytest.raises(MatcherError, match="max_chart_items=%d" % small):
        for ch in '[{"a": [1, {"b": null}]}]':
            m.accept_string(ch)
            done += 1
    assert m.num_steps == done  # the refused step left the state unchanged
    m2 = m.copy()
    with pytest.raises(MatcherError, match="max_chart_items"):
        m2.accept_string('[{"a": [1, {"b": null}]}]'[done:])
    big = Matcher(c, max_chart_items=max(sizes))
    assert big.accept_string('[{"a": [1, {"b": null}]}]') and big.is_accepting()
    with pytest.raises(MatcherError, match="at least 1"):
        Matcher(c, max_chart_items=0)


def test_older_artifacts_without_stack_tables(cl100k):
    """An artifact stored before the cfg_loc_* tables existed gets them built at run time: the
    same masks."""
    from kmgrammar.artifact import CompiledGrammar

    c = compile_lark(grammars.load("arithmetic"), cl100k, cache=False)
    arrays = {k: v for k, v in c._arrays.items() if not k.startswith("cfg_loc_")}
    old = CompiledGrammar(kind="cfg", spec=c.spec, options=c.options, vocab=cl100k, arrays=arrays, stats=c.stats)
    assert "cfg_loc_n" not in old._arrays
    bm_a = allocate_token_bitmask(1, cl100k.vocab_size)
    bm_b = allocate_token_bitmask(1, cl100k.vocab_size)
    ma, mb = Matcher(c), Matcher(old)
    for t in cl100k.encode("f(1, (x + 2) * -y) ^ (3 - ((z)))"):
        ma.fill_next_token_bitmask(bm_a)
        mb.fill_next_token_bitmask(bm_b)
        assert np.array_equal(bm_a, bm_b)
        assert ma.accept_token(t) and mb.accept_token(t)


@pytest.mark.parametrize("name,indexed", [("json", True), ("arithmetic", True), ("left_recursive", True),
                                          ("arithmetic", False)])
def test_table_masks_equal_walked_masks(name, indexed, cl100k, monkeypatch):
    """At every step of random documents, from an empty runtime on: the mask from the stack
    tables (stack vectors, verdicts, position sets joining several positions' tokens) equals the
    mask with every remainder walked against the real charts; with the tables indexed and
    converted up front (small grammars) or on first use (big ones)."""
    from kmgrammar import cfg_matcher
    from kmgrammar.cfg_matcher import runtime

    if not indexed:
        monkeypatch.setattr(cfg_matcher, "_SMALL", 0)
        monkeypatch.setattr(cfg_matcher, "_EAGER", 0)  # pop tables converted slice by slice

    lark = LEFT_RECURSIVE if name == "left_recursive" else grammars.load(name)
    c = compile_lark(lark, cl100k, cache=False)
    rt = runtime(c)
    rng = random.Random(11)
    for _ in range(3):
        if name == "json":
            text = json.dumps(_json_value(rng, 7), indent=rng.choice([None, 1]))
        elif name == "arithmetic":
            text = _expr(rng, 6)
        else:
            text = _bracketed(rng, 5)
        m = Matcher(c)
        for t in cl100k.encode(text):
            charts = m._charts
            assert np.array_equal(rt.mask(charts), rt._compute_walked(list(charts))), (text, len(charts))
            assert m.accept_token(t)
    joined = [ps for ps in rt.position_sets.values()
              if ps.tokens is not None and all(ps.tokens is not rt.pos_tokens[p] for p in range(rt.n_pos))]
    assert joined or name == "json"  # sets joining several positions' tokens were exercised


def test_position_set_masks_from_any_verdicts(cl100k):
    """A position set's mask, for arbitrary verdicts per group, is its rows plus exactly the tokens
    of its groups whose remainder is viable (checked token by token from the stored groups),
    for sets of one, two and three positions."""
    from kmgrammar.cfg_matcher import _PositionSet, runtime

    c = compile_lark(grammars.load("arithmetic"), cl100k, cache=False)
    rt = runtime(c)
    a = c._arrays
    gtp, tok, rem = a["cfg_grp_tok_ptr"], a["cfg_grp_tok"], a["cfg_grp_rem"]
    with_groups = [p for p in range(rt.n_pos) if rt.pos_groups[p]]
    rng = random.Random(3)
    sets = [frozenset(rng.sample(with_groups, k)) for k in (1, 2, 2, 3, 3) for _ in range(3)]
    for positions in sets:
        for accepting in (False, True):
            ps = _PositionSet(rt, positions, accepting)
            n_rem = {g: rt.rem_ptr[rt.group_u[g] + 1] - rt.rem_ptr[rt.group_u[g]] for g in ps.gids}
            vs = {g: np.array([rng.random() < 0.5 for _ in range(n_rem[g])], bool) for g in ps.gids}
            parts = {g: (v.tobytes(), v) for g, v in vs.items()}
            want = np.zeros(c.n_words, np.uint32)
            for p in positions:
                want |= c.mask_row(p).view(np.uint32)
            if accepting:
                want |= rt.eos
            for g in ps.gids:
                for t, r in zip(tok[gtp[g]: gtp[g + 1]].tolist(), rem[gtp[g]: gtp[g + 1]].tolist()):
                    if parts[g][1][r]:
                        want[t >> 5] |= np.uint32(1 << (t & 31))
            assert np.array_equal(ps.mask(parts).view(np.uint32), want), (sorted(positions), accepting)


@pytest.mark.parametrize("small", [4096, 0])
def test_exit_state_outside_its_rule_is_a_corrupt_artifact(small, cl100k, monkeypatch):
    """The run time trusts that an exit state lies in its position's rule: an artifact saying
    otherwise is refused when its runtime is built (tables up front or on first use alike)."""
    from kmgrammar import ArtifactError, cfg_matcher
    from kmgrammar.artifact import CompiledGrammar

    monkeypatch.setattr(cfg_matcher, "_SMALL", small)
    c = compile_lark(grammars.load("json"), cl100k, cache=False)
    a = dict(c._arrays)
    starts = a["cfg_nt_start"]
    assert len(starts) > 1 and len(a["cfg_grp_state"])
    state = a["cfg_grp_state"].copy()
    owner0 = int(np.searchsorted(starts, state[0], side="right") - 1)
    # move the first group's exit state into another rule
    state[0] = starts[1] if owner0 == 0 else starts[0]
    a["cfg_grp_state"] = state
    bad = CompiledGrammar(kind=c.kind, spec=c.spec, options=c.options, vocab=c.vocab, arrays=a, stats=c.stats)
    with pytest.raises(ArtifactError, match="exit state outside the rule of position"):
        Matcher(bad)
