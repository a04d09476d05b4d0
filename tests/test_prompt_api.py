"""Prompt, Completion, Completions, CompletionConfig, format, role markup (keymaker-parity rows
1-13, 21-22, 32-33, 36-43), with in-process scripted models."""

from __future__ import annotations

import asyncio
import math

import pytest
from openai_server import scripted_model

from kmgrammar.constraints import Constraint, GrammarConstraint, OptionsConstraint, RegexConstraint
from kmgrammar.models import (
    CompletionBudgetException,
    CompletionTimeout,
    ContextLengthError,
    PromptBudgetException,
    PromptError,
    RoleTagError,
    TokenTracker,
    split_tags,
)
from kmgrammar.prompt import Completion, CompletionConfig, Completions, Prompt, strip_tags


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def model(cl100k):
    """A model that writes 'ab' after 'p:'."""
    return scripted_model(cl100k, "p:", "ab")


# --- row 1: Prompt is a str -----------------------------------------------------------------


def test_prompt_is_a_str_and_keeps_metadata(model):
    p = run(Prompt("p:").complete(model=model, name="n"))
    assert p == "p:ab" and isinstance(p, str)
    assert isinstance(p + "d", Prompt) and (p + "d").completions.n[0].text == "ab"
    assert isinstance("x" + p, Prompt)
    assert ("x" + p).completions.n[0].start == 3  # offsets move with the text
    head = p[0:4]
    assert isinstance(head, Prompt) and head.completions.n[0].text == "ab"
    assert p[0:3].completions.get("n") is None  # the completion is not inside the slice
    assert repr(Prompt("x")) == "Prompt('x')" and str(Prompt("x")) == "x"
    with pytest.raises(AttributeError):
        p.completions = Completions()


def test_prompt_of_prompt_does_not_mutate_it(model):
    p = run(Prompt("p:").complete(model=model, name="n"))
    q = Prompt(p)
    assert q.completions.n[0].text == "ab" and p.completions.n[0].text == "ab"
    assert q.completions is not p.completions


# --- rows 2, 3, 43 ----------------------------------------------------------------------------


def test_prompt_level_defaults_and_override(cl100k):
    m = scripted_model(cl100k, "p:", "ab")
    p = Prompt("p:", m, map_fn=lambda c: c.text.upper(), max_tokens=5)
    out = run(p.complete())
    assert out == "p:AB" and out.completions[0].raw == "ab"
    out2 = run(p.complete(map_fn=lambda c: c.text + "!"))
    assert out2 == "p:ab!"


def test_complete_returns_new_prompt_and_does_not_alias(model):
    p0 = Prompt("p:")
    p1 = run(p0.complete(model=model, name="n"))
    assert p1 == p0 + "ab" and p0 == "p:"
    assert p1.completions["n"][0].text == "ab"
    assert "n" not in p0.completions and len(p0.completions) == 0


def test_missing_model_is_a_clear_error():
    with pytest.raises(PromptError, match="model is required"):
        run(Prompt("x").complete())


# --- rows 4, 5, 6 ---------------------------------------------------------------------------


def test_unnamed_and_named_access(cl100k):
    m = scripted_model(cl100k, "p:", " one two three four")
    p = run(Prompt("p:").complete(model=m, max_tokens=1))
    p = run(p.complete(model=m, max_tokens=1, name="x"))
    p = run(p.complete(model=m, max_tokens=1, name="x"))
    assert p.completions[0].text == p.completions.unnamed[0].text == p.completions[None][0]
    assert [c.text for c in p.completions.x] == [c.text for c in p.completions["x"]]
    assert len(p.completions.x) == 2 and p.completions.x[0].start < p.completions.x[1].start
    with pytest.raises(KeyError, match="no completion named 'y'"):
        p.completions["y"]
    with pytest.raises(AttributeError, match="no completion named 'y'"):
        p.completions.y
    assert p.completions.get("y") is None and "x" in p.completions and len(p.completions) == 3
    assert [c.name for c in p.completions] == [None, "x", "x"]


def test_completion_fields(model):
    p = run(Prompt("p:").complete(model=model, name="x"))
    c = p.completions.x[0]
    assert p[c.start:c.stop] == c.text == "ab"
    assert c.name == "x" and c.chunk is False
    assert 0 < c.score <= 1 and c.score == pytest.approx(math.exp(-0.1 * 1))  # "ab" is one token
    bare = Completion("x")
    assert bare.start is None and bare.stop is None and bare.text == "x"
    assert "Completion(text='x'" in repr(bare)


def test_score_is_none_without_logprobs(cl100k):
    m = scripted_model(cl100k, "p:", "ab", logprob=None)
    assert run(Prompt("p:").complete(model=m)).completions[0].score is None


# --- row 7 -------------------------------------------------------------------------------------


def test_map_fn_keeps_raw_text(cl100k):
    m = scripted_model(cl100k, "n=", "12")
    p = run(Prompt("n=").complete(model=m, constraint=RegexConstraint("[0-9]+"), map_fn=int, name="n"))
    c = p.completions.n[0]
    assert c.value == 12 and isinstance(c.value, int) and c.text == "12" and c.raw == "12" and "12" in p


# --- rows 8-12: format ------------------------------------------------------------------------


def test_format_static_fields_and_escapes():
    assert run(Prompt("a{}b{x}c{{d}}").format("1", x="2")) == "a1b2c{d}"
    assert run(Prompt("{0}-{0}").format("z")) == "z-z"
    assert run(Prompt("[{x:>3}]").format(x="v")) == "[  v]"
    assert run(Prompt("{x!r}").format(x="v")) == "'v'"
    assert run(Prompt("a{x}b").format(x=None)) == "ab"


@pytest.mark.parametrize(
    "template,args,kwargs,match",
    [
        ("{x}", (), {}, r"format field \{x\} has no value"),
        ("{}", (), {}, r"format field \{\} has no value"),
        ("{}{0}", ("a",), {}, "cannot switch"),
        ("{x", (), {}, "bad format string"),
    ],
)
def test_format_errors(template, args, kwargs, match):
    with pytest.raises(PromptError, match=match):
        run(Prompt(template).format(*args, **kwargs))


def test_format_with_completion_config(cl100k):
    m = scripted_model(cl100k, "Name: ", "Alice and Bob")
    p = run(Prompt("Name: {x}.", m).format(x=CompletionConfig(max_tokens=1)))
    assert p == "Name: Alice." and p.completions.x[0].text == "Alice"
    assert p[p.completions.x[0].start:p.completions.x[0].stop] == "Alice"


def test_format_spec_on_model_field_is_rejected(cl100k):
    m = scripted_model(cl100k, "", "a")
    with pytest.raises(PromptError, match="format spec"):
        run(Prompt("{x:>3}", m).format(x=CompletionConfig(max_tokens=1)))


def test_format_positional_config_is_unnamed(cl100k):
    m = scripted_model(cl100k, "My name is ", "Alice and")
    p = run(Prompt("My name is {}", m).format(CompletionConfig(max_tokens=1)))
    assert p.completions[0].text == "Alice" and p.completions.names == []


def test_format_callables(cl100k):
    m = scripted_model(cl100k, "A: ", "Alice")
    p = run(Prompt("A: {x} / {y}", m).format(
        x=lambda p: CompletionConfig(max_tokens=1),
        y=lambda p: p.completions.x[0],
    ))
    assert p == "A: Alice / Alice"

    async def later(p):
        return "async"

    assert run(Prompt("{z}").format(z=later)) == "async"


def test_format_generator_sees_updated_prompt(cl100k):
    m = scripted_model(cl100k, "Count: ", "3 2 1 0 done")
    seen = []

    def countdown(p):
        while True:
            p = yield CompletionConfig(max_tokens=2, constraint=RegexConstraint(r" ?[0-9]"))
            seen.append((str(p), [c.text for c in p.completions.get("c", [])]))
            if p.completions.c[-1].strip() == "0":
                break

    p = run(Prompt("Count: {c}", m).format(c=countdown))
    assert [c.text.strip() for c in p.completions.c] == ["3", "2", "1", "0"]
    assert seen[1] == ("Count: 3 2", ["3", " 2"])


def test_static_pieces_are_streamed_in_order(cl100k):
    events = []

    async def stream(c):
        events.append(c)

    m = scripted_model(cl100k, "Hi ", "Bob!")
    run(Prompt("Hi {n}!", m, stream=stream).format(n=CompletionConfig(max_tokens=1)))
    assert events[0].text == "Hi " and events[0].chunk is False and events[0].name is None
    assert events[1].chunk is True and events[1].name == "n" and events[1].text == "Bob"
    assert events[2] is None
    assert events[3].text == "!" and events[3].start == 6


# --- row 13: streaming -----------------------------------------------------------------------


def test_stream_pieces_concatenate_to_completion(cl100k):
    events = []

    async def stream(c):
        events.append(c)

    m = scripted_model(cl100k, "x", '{"a": 1} trailing')
    p = run(Prompt("x").complete(model=m, constraint=RegexConstraint(r'\{"a": [0-9]\}'), stream=stream))
    chunks = events[:-1]
    assert events[-1] is None
    assert "".join(chunks) == p.completions[0].text == '{"a": 1}'
    assert any(c.text == '{"a": ' for c in chunks)  # forced text is streamed too
    for a, b in zip(chunks, chunks[1:]):
        assert b.start == a.stop
    assert chunks[0].start == 1


# --- rows 21, 22: custom constraint and custom model --------------------------------------


class ThreeDigits(Constraint):
    """A custom constraint supplying its own automaton (digits only, exactly 3)."""

    def byte_dfa(self):
        from kmgrammar.regex import regex_to_dfa

        return regex_to_dfa("[0-9]{3}")

    def key(self):
        return "three-digits"


def test_custom_constraint_and_custom_model(cl100k):
    m = scripted_model(cl100k, "code: ", "12345")
    p = run(Prompt("code: ").complete(model=m, constraint=ThreeDigits()))
    assert p.completions[0] == "123"
    # format works with the same custom model; a ready CompiledGrammar can be wrapped too
    import kmgrammar

    cg = kmgrammar.compile_regex("[0-9]{2}", cl100k)
    p2 = run(Prompt("code: {x}", m).format(x=CompletionConfig(constraint=GrammarConstraint(cg))))
    assert p2 == "code: 12"


# --- rows 32, 33: role markup ----------------------------------------------------------------


def test_strip_tags_keeps_completions(cl100k):
    m = scripted_model(cl100k, "%system%S%/system%%user%U%/user%", "R")
    p = run(Prompt("%system%S%/system%%user%U%/user%").complete(model=m, name="r"))
    flat = strip_tags(p)
    assert flat == "S\nUser: U\nAssistant: R"
    c = flat.completions.r[0]
    assert flat[c.start:c.stop] == "R"


def test_split_tags_behaviour():
    assert split_tags("[system]S[/system][user]U", tag_start="[", tag_end="]") == [
        {"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    assert split_tags("%user%50%off%!%/user%") == [{"role": "user", "content": "50%off%!"}]
    assert split_tags("  \n%user%U%/user%\n") == [{"role": "user", "content": "U"}]
    assert split_tags("%user%U%/user%tail") == [
        {"role": "user", "content": "U"}, {"role": "assistant", "content": "tail"}]
    assert split_tags("%user%%/user%") == [{"role": "user", "content": ""}]


@pytest.mark.parametrize("text,match", [
    ("%sytem%S%/sytem%", "unknown role 'sytem'"),
    ("U%/user%", "has no opening"),
])
def test_bad_role_tags(text, match):
    with pytest.raises(RoleTagError, match=match):
        split_tags(text)


# --- row 36: truncation -----------------------------------------------------------------------


def test_overlong_prompt(cl100k):
    long = "word " * 600
    m = scripted_model(cl100k, long, "x")
    with pytest.raises(ContextLengthError, match="truncate=True"):
        run(Prompt(long).complete(model=m, max_tokens=10))
    with pytest.warns(UserWarning, match="truncated"):
        p = run(Prompt(long).complete(model=m, max_tokens=10, truncate=True))
    sent = m.calls[-1]["text"]
    assert len(cl100k.encode(sent)) <= 512 - 10 and long.endswith(sent[-20:])
    assert p.startswith(long)  # the returned prompt keeps the full text


# --- row 37: timeouts -----------------------------------------------------------------------


def test_timeout(cl100k):
    m = scripted_model(cl100k, "p:", "ab", sleep=5)
    p = Prompt("p:")
    with pytest.raises(CompletionTimeout, match="timeout=0.05"):
        run(p.complete(model=m, timeout=0.05))
    assert p == "p:" and len(p.completions) == 0  # a failed completion leaves the prompt as it was


# --- row 38: token tracking --------------------------------------------------------------------


def test_token_tracker_counts_and_budgets(cl100k):
    tt = TokenTracker(completion_budget=3)
    m = scripted_model(cl100k, "p:", "one two three four five")
    p = run(Prompt("p:", token_tracker=tt).complete(model=m))
    assert len(tt.counts) == 1 and tt.counts[0].completion_tokens == 3
    assert len(cl100k.encode(p.completions[0].text)) == 3
    assert tt.counts[0].model_str == "scripted"
    with pytest.raises(CompletionBudgetException, match="spent"):
        run(p.complete(model=m, token_tracker=tt))
    from kmgrammar.models.tracker import TokenCount

    c = TokenCount(prompt_budget=5)
    with pytest.raises(PromptBudgetException):
        c.add_prompt_tokens(6)
    assert TokenTracker().by_model() == {}


# --- row 39: exception_handler ---------------------------------------------------------------


def test_exception_handler_switches_model_and_is_capped(cl100k):
    bad = scripted_model(cl100k, "p:", "ab", sleep=5)
    good = scripted_model(cl100k, "p:", "ok")

    async def fallback(exc, cfg):
        assert isinstance(exc, CompletionTimeout)
        return CompletionConfig(model=good)

    p = run(Prompt("p:").complete(model=bad, timeout=0.02, exception_handler=fallback))
    assert p == "p:ok"
    calls = []

    def keeps_failing(exc, cfg):
        calls.append(exc)
        return CompletionConfig()

    with pytest.raises(CompletionTimeout):
        run(Prompt("p:").complete(model=bad, timeout=0.02, exception_handler=keeps_failing))
    assert len(calls) == 3


# --- row 40: gen_kwargs ------------------------------------------------------------------------


def test_gen_kwargs_passthrough_not_mutated(model):
    kw = {"seed": 1}
    run(Prompt("p:").complete(model=model, gen_kwargs=kw))
    assert model.calls[0]["gen_kwargs"] == {"seed": 1} and kw == {"seed": 1}


# --- row 42: Prompt + Prompt -------------------------------------------------------------------


def test_prompt_plus_prompt_merges_flat(cl100k):
    m = scripted_model(cl100k, "a:", "x")
    a = run(Prompt("a:").complete(model=m, name="k"))
    m2 = scripted_model(cl100k, "b:", "y")
    b = run(Prompt("b:").complete(model=m2, name="k"))
    ab = a + b
    assert [c.text for c in ab.completions.k] == ["x", "y"]
    assert all(isinstance(c, Completion) for c in ab.completions.k)
    second = ab.completions.k[1]
    assert ab[second.start:second.stop] == "y"


def test_config_merge_is_not_truthiness_based():
    merged = CompletionConfig(max_tokens=0, try_first=False, name="") | CompletionConfig(
        max_tokens=5, try_first=True, name="d", timeout=3.0)
    assert merged.max_tokens == 0 and merged.try_first is False and merged.name == "" and merged.timeout == 3.0


def test_options_constraint_on_custom_model(cl100k):
    m = scripted_model(cl100k, "x", "apple pie")
    p = run(Prompt("x").complete(model=m, constraint=OptionsConstraint(["app", "apple", "banana"])))
    assert p.completions[0] == "apple"


def test_token_length(cl100k, model):
    assert Prompt("hello world").token_length(model) == len(cl100k.encode("hello world")) == 2


def test_multi_token_pieces_are_checked_token_by_token(cl100k):
    m = scripted_model(cl100k, "x", "12 apples please", chat=True, one_piece=True)
    p = run(Prompt("x").complete(model=m, constraint=RegexConstraint("[0-9]+")))
    assert p.completions[0] == "12" and len(m.calls) == 1


def test_sync_stream_and_prompt_default_timeout(cl100k):
    got = []
    m = scripted_model(cl100k, "p:", "ab")
    run(Prompt("p:").complete(model=m, stream=got.append))
    assert got == ["ab", None]
    slow = scripted_model(cl100k, "p:", "ab", sleep=5)
    with pytest.raises(CompletionTimeout):
        run(Prompt("p:", slow, timeout=0.05).complete())
