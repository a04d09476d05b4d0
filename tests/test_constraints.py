"""Constraints end to end on scripted models (keymaker-parity rows 14-19, 45, 46), checked with
independent oracles (``re``, ``json``), plus bad inputs."""

from __future__ import annotations

import asyncio
import re

import pytest
from openai_server import scripted_model

import kmgrammar
import kmgrammar.compiler
from kmgrammar.constraints import (
    And,
    AndConstraint,
    CFGConstraint,
    JsonConstraint,
    Not,
    OptionsConstraint,
    Or,
    ParserConstraint,
    RegexConstraint,
    StopsConstraint,
)
from kmgrammar.errors import CompileError, KmgrammarError, UnsupportedFeatureError
from kmgrammar.models import ConstraintViolation
from kmgrammar.prompt import Prompt

HAS_JSON = hasattr(kmgrammar, "compile_json_schema") or hasattr(kmgrammar.compiler, "compile_json_schema")
HAS_LARK = hasattr(kmgrammar, "compile_lark") or hasattr(kmgrammar.compiler, "compile_lark")


def complete(vocab, target, constraint, prompt="x", **kw):
    m = scripted_model(vocab, prompt, target, **{k: kw.pop(k) for k in ("chat", "logprob") if k in kw})
    p = asyncio.run(Prompt(prompt).complete(model=m, constraint=constraint, **kw))
    return p.completions[0].text, m


# --- row 14: regex ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern,target,expected",
    [
        ("[0-9]+", "123", "123"),
        ("[0-9]+", "12 apples", "12"),
        ("[0-9]*", "42", "42"),
        ("(dog|cat)s?", "cats!", "cats"),
        ("cat|category", "category", "category"),
        (r"I (eat|drink) (meat|wine)\.", "I eat meat.\nMore", "I eat meat."),
        (r"[a-z]+@[a-z]+\.com", "bob@example.com", "bob@example.com"),
    ],
    ids=["digits", "cut-after-match", "star-not-empty", "optional-suffix", "longer-option", "sentence", "email"],
)
def test_regex_full_match(cl100k, pattern, target, expected):
    text, _ = complete(cl100k, target, RegexConstraint(pattern))
    assert text == expected and re.fullmatch(pattern, text)


def test_regex_terminate_on_match_false_needs_the_model_to_end(cl100k):
    # The model wants "12 apples": with terminate_on_match=False the invalid " apples" is retried
    # (banned) rather than ending the completion, until the model ends or the budget runs out.
    text, m = complete(cl100k, "12 apples", RegexConstraint("[0-9]+", terminate_on_match=False), max_tokens=4)
    assert re.fullmatch("[0-9]+", text) and len(m.calls) > 1


def test_regex_unsatisfiable_model_raises_with_prefix(cl100k):
    with pytest.raises(ConstraintViolation) as info:
        complete(cl100k, "hello", RegexConstraint("[0-9]{5}"), max_tokens=2)
    assert isinstance(info.value, KmgrammarError)
    assert re.fullmatch("[0-9]*", info.value.prefix)


# --- row 15: options --------------------------------------------------------------------------


def test_options_prefix_does_not_win_early(cl100k):
    text, _ = complete(cl100k, "apple", OptionsConstraint(["app", "apple"]))
    assert text == "apple"


def test_options_single_remaining_is_forced_streamed_and_scored(cl100k):
    events = []

    async def stream(c):
        events.append(c)

    m = scripted_model(cl100k, "x", "banana split")
    p = asyncio.run(Prompt("x").complete(model=m, constraint=OptionsConstraint(["apple", "banana"]),
                                         stream=stream))
    assert p.completions[0] == "banana"
    assert "".join(e for e in events if e is not None) == "banana"
    assert p.completions[0].score is not None
    # "b" (or "ban") is chosen by the model, the rest is forced: no call after the choice
    assert len(m.calls) == 1


def test_options_result_always_in_set(cl100k):
    opts = ["red", "green", "blue"]
    for target in ["green!", "purple", "b"]:
        text, _ = complete(cl100k, target, OptionsConstraint(opts), max_tokens=5)
        assert text in opts


# --- row 16: stops ----------------------------------------------------------------------------


def test_stops_include_and_exclude(cl100k):
    target = "abc\ndef</hello>xyz"
    inc, _ = complete(cl100k, target, StopsConstraint("</hello>", include=True))
    exc, _ = complete(cl100k, target, StopsConstraint("</hello>", include=False))
    assert inc == "abc\ndef</hello>" and exc == "abc\ndef"


def test_stops_regex_and_stream_of_excluded_stop(cl100k):
    events = []

    async def stream(c):
        events.append(c)

    m = scripted_model(cl100k, "x", "Hi there\nUser: next")
    p = asyncio.run(Prompt("x").complete(model=m, constraint=StopsConstraint("User|Assistant", include=False),
                                         stream=stream))
    assert p.completions[0] == "Hi there\n"
    assert "".join(e for e in events if e is not None) == "Hi there\n"


def test_stops_without_stop_ends_when_model_ends(cl100k):
    text, _ = complete(cl100k, "no stop here", StopsConstraint("</s>"))
    assert text == "no stop here"


# --- row 19: logic ------------------------------------------------------------------------------


def test_and_never_exceeds(cl100k):
    c = And(RegexConstraint("a+b?"), RegexConstraint("a{1,3}"))
    text, _ = complete(cl100k, "aaaaaaaa", c)
    assert text == "aaa"
    assert isinstance(RegexConstraint("a+") & RegexConstraint("a{1,3}"), And)
    assert AndConstraint([RegexConstraint("a"), RegexConstraint("a")]).key() == "and(regex:a,regex:a)"


def test_or_matches_one(cl100k):
    c = OptionsConstraint(["yes", "no"]) | RegexConstraint("[0-9]{2}")
    assert isinstance(c, Or)
    for target in ["no way", "42!", "yes"]:
        text, _ = complete(cl100k, target, c, max_tokens=5)
        assert text in ("yes", "no") or re.fullmatch("[0-9]{2}", text)


def test_not_is_language_negation(cl100k):
    c = ~OptionsConstraint(["no"])
    assert isinstance(c, Not)
    text, _ = complete(cl100k, "no", c, max_tokens=3)
    assert text != "no"
    text2, _ = complete(cl100k, "no way", c, max_tokens=3)
    assert text2 == "no way"
    # Not(Regex("(?s)a.*")) can never start with "a"
    text3, _ = complete(cl100k, "abc", Not(RegexConstraint("(?s)a.*")), max_tokens=3)
    assert not text3.startswith("a")


def test_logic_on_context_free_is_a_clear_error(cl100k):
    with pytest.raises(UnsupportedFeatureError, match="not a regular language"):
        (~JsonConstraint({"type": "object"})).compile(cl100k)


# --- rows 17, 18: JSON and grammars --------------------------------------------------------


@pytest.mark.skipif(HAS_JSON, reason="compile_json_schema is available")
def test_json_without_core_support_is_a_clear_error(cl100k):
    with pytest.raises(UnsupportedFeatureError, match="compile_json_schema"):
        JsonConstraint({"type": "object"}).compile(cl100k)


@pytest.mark.skipif(HAS_LARK, reason="compile_lark is available")
def test_cfg_without_core_support_is_a_clear_error(cl100k):
    with pytest.raises(UnsupportedFeatureError, match="compile_lark"):
        CFGConstraint("start: \"a\"").compile(cl100k)


@pytest.mark.skipif(not HAS_JSON, reason="compile_json_schema has not landed in the core yet")
def test_json_schema_output_validates(cl100k):
    jsonschema = pytest.importorskip("jsonschema")
    import json

    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}
    text, _ = complete(cl100k, '{"name": "Alice", "age": 30}', JsonConstraint(schema), max_tokens=40)
    jsonschema.validate(json.loads(text), schema)


@pytest.mark.skipif(not HAS_JSON, reason="compile_json_schema has not landed in the core yet")
def test_json_keymaker_flags(cl100k):
    import json

    c = JsonConstraint(keys={"a", "b"}, allow_array=False)
    text, _ = complete(cl100k, '{"a": 1, "b": true}', c, max_tokens=30)
    obj = json.loads(text)
    assert obj == {"a": 1, "b": True}
    m = kmgrammar.Matcher(c.compile(cl100k))
    assert not m.copy().accept_string('{"a": [') and not m.copy().accept_string('{"c"')
    assert m.accept_string('{"a": {"x": null}}') and m.is_accepting()


@pytest.mark.skipif(not HAS_JSON, reason="compile_json_schema has not landed in the core yet")
def test_json_pydantic_model(cl100k):
    pydantic = pytest.importorskip("pydantic")

    class User(pydantic.BaseModel):
        name: str
        age: int

    text, _ = complete(cl100k, '{"name": "Bob", "age": 41}', JsonConstraint(User), max_tokens=40)
    User.model_validate_json(text)


@pytest.mark.skipif(not HAS_LARK, reason="compile_lark has not landed in the core yet")
def test_cfg_sql_output_parses(cl100k):
    lark = pytest.importorskip("lark")
    grammar = r"""
start: "SELECT " NAME " FROM " NAME (" WHERE " NAME " > " NUMBER)? ";"
NAME: /[a-z]+/
NUMBER: /[0-9]+/
"""
    text, _ = complete(cl100k, "SELECT name FROM users WHERE age > 30;", ParserConstraint(grammar=grammar),
                       max_tokens=30)
    lark.Lark(grammar, parser="earley", lexer="dynamic_complete").parse(text)
    lalr = lark.Lark(grammar, parser="lalr")
    text2, _ = complete(cl100k, "SELECT name FROM users;", ParserConstraint(parser=lalr), max_tokens=30)
    lalr.parse(text2)


# --- rows 45, 46 ------------------------------------------------------------------------------


def test_unicode_multibyte(cl100k):
    text, _ = complete(cl100k, "日本é日!", RegexConstraint("[é日本]+"))
    assert text == "日本é日" and re.fullmatch("[é日本]+", text)


def test_tokens_spanning_terminals_are_allowed(cl100k):
    # '{"' and '":' are single cl100k tokens that cross JSON-ish terminal boundaries.
    pattern = r'\{"[a-z]+": [0-9]+\}'
    text, m = complete(cl100k, '{"age": 30}', RegexConstraint(pattern), chat=True)
    assert text == '{"age": 30}' and len(m.calls) == 1


def test_prompt_ending_in_space_is_not_healed(cl100k):
    # Policy: the constraint applies to the completion only; no token healing. A prompt ending
    # in a space leaves the model to continue with space-less tokens ("s", "unny").
    text, _ = complete(cl100k, "sunny", RegexConstraint("sunny|rainy"), prompt="The weather is ")
    assert text == "sunny"


# --- compile once, bad inputs ---------------------------------------------------------------


def test_compiles_once_per_tokenizer(cl100k):
    c = RegexConstraint("[a-z]{2,5}")
    assert c.compile(cl100k) is c.compile(cl100k)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: OptionsConstraint([]), "at least one option"),
        (lambda: OptionsConstraint("abc"), "not a single string"),
        (lambda: StopsConstraint(""), "non-empty"),
        (lambda: StopsConstraint("a*"), "matches the empty string"),
        (lambda: StopsConstraint("("), "bad stop regex"),
        (lambda: RegexConstraint(42), "str pattern"),
        (lambda: JsonConstraint("{not json"), "not JSON"),
        (lambda: JsonConstraint(3), "schema dict"),
        (lambda: CFGConstraint(), "needs a grammar"),
        (lambda: And(RegexConstraint("a")), "at least two"),
    ],
)
def test_bad_constraints(make, match):
    with pytest.raises((CompileError, ValueError, TypeError), match=match):
        make()


def test_bad_regex_is_a_compile_error(cl100k):
    with pytest.raises(CompileError):
        RegexConstraint("(unclosed").compile(cl100k)


def test_grammar_for_another_tokenizer_is_refused(cl100k):
    from kmgrammar.constraints import GrammarConstraint
    from kmgrammar.errors import VocabError

    cg = kmgrammar.compile_regex("[0-9]{2}", cl100k)
    other = kmgrammar.Vocabulary.from_bytes([bytes([i]) for i in range(256)] + [b""], eos_token_ids=[256],
                                            encode=lambda s: list(s.encode()))
    with pytest.raises(VocabError, match="another tokenizer"):
        GrammarConstraint(cg).compile(other)
    per_vocab = GrammarConstraint(lambda v: kmgrammar.compile_regex("[0-9]{2}", v))
    assert per_vocab.compile(other).vocab is other


def test_model_constraint_refused_without_logits(cl100k):
    from kmgrammar.constraints import ModelConstraint

    with pytest.raises(UnsupportedFeatureError, match="needs the model's logits"):
        complete(cl100k, "abc", ModelConstraint(object(), top_k=3, constraint=RegexConstraint("[a-z]+")))
    with pytest.raises(ValueError, match="top_k or top_p"):
        ModelConstraint(object())
