"""Regex -> byte DFA agrees with Python's `re.fullmatch` (differential, hypothesis)."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmgrammar import CompileError, CompileLimitError, GrammarSyntaxError, UnsupportedFeatureError
from kmgrammar.regex import regex_to_dfa

# Characters chosen to hit Unicode classes and case folding: Kelvin sign, long s, sharp s,
# Arabic-Indic digit, em space, dotted I, Greek sigma forms, an astral emoji.
ALPHABET = "aAbBkKsS1 _-.\n\u212a\u017f\u00df\u0663\u2003\u0130\u03c3\u03c2\u03a3é😀\x00"

ATOMS = [
    "a", "b", "k", "s", "1", " ", r"\.", "é", "😀", ".", r"\d", r"\D", r"\w", r"\W", r"\s", r"\S",
    "[ab]", "[^a]", "[a-k]", "[^\\d\\s]", "[\\w-]", "[ΣK]", r"\u212a", "[^😀]", "(?i:k)", "(?i:s)",
    "(?i:[a-c])", "(?i:[^k])", "(?i:σ)", "(?i:ß)", "(?s:.)", "(?a:\\w)", "(?ai:k)", r"\x00",
]


@st.composite
def regexes(draw, depth=0):
    if depth > 2 or draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(ATOMS))
    kind = draw(st.sampled_from(["seq", "alt", "star", "plus", "opt", "rep", "group", "lazy"]))
    sub = draw(regexes(depth=depth + 1))
    if kind == "seq":
        return sub + draw(regexes(depth=depth + 1))
    if kind == "alt":
        return f"(?:{sub}|{draw(regexes(depth=depth + 1))})"
    if kind == "star":
        return f"(?:{sub})*"
    if kind == "plus":
        return f"(?:{sub})+"
    if kind == "opt":
        return f"(?:{sub})?"
    if kind == "lazy":
        return f"(?:{sub})*?"
    if kind == "group":
        return f"({sub})"
    lo = draw(st.integers(0, 3))
    hi = lo + draw(st.integers(0, 3))
    return f"(?:{sub}){{{lo},{hi}}}"


def _agree(pattern: str, strings) -> None:
    try:
        dfa = regex_to_dfa(pattern)
    except CompileError:
        # Only an empty language may be refused here; then re must match nothing we try.
        assert not any(re.fullmatch(pattern, s) for s in strings)
        return
    for s in strings:
        assert dfa.matches(s.encode("utf-8")) == bool(re.fullmatch(pattern, s)), (pattern, s)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(regexes(), st.lists(st.text(ALPHABET, max_size=6), max_size=25))
def test_random_regex_agrees_with_re(pattern, strings):
    # Add strings the pattern matches, so the positive side is exercised too.
    extra = [s for s in strings for t in (s, s + s) if re.fullmatch(pattern, t)]
    _agree(pattern, strings + extra)


@pytest.mark.parametrize(
    "pattern, yes, no",
    [
        (r"[a-z0-9._%+-]{1,40}@[a-z0-9.-]{1,30}\.[a-z]{2,6}", ["a@b.cd", "x.y@z-q.com"], ["@b.cd", "a@b.c", "A@b.cd"]),
        (r"\d{2}", ["12", "٣٣"], ["1", "1a"]),
        (r"(?i)k", ["k", "K", "\u212a"], ["x"]),
        (r"(?i)straße", ["STRASSE".replace("SS", "ß"), "Straße", "STRAßE"], ["strasse"]),
        (r"\w+", ["héllo", "日本", "a_1"], ["a b", ""]),
        (r"\s", [" ", "\u2003", "\n"], ["a"]),
        (r".", ["a", "😀", "é"], ["\n", ""]),
        (r"(?s).", ["\n"], [""]),
        (r"^ab$", ["ab"], ["ab\n", "a"]),
        (r"^a|b$", ["a", "b"], ["ab"]),
        (r"\Aab\Z", ["ab"], ["abab"]),
        (r"a{0}", [""], ["a"]),
        (r"(a|b)*?c", ["abac", "c"], ["ab"]),
        (r"[^\x00-\x7f]", ["é", "😀"], ["a"]),
        (r"(?x) a b  # comment", ["ab"], ["a b"]),
    ],
)
def test_known_patterns(pattern, yes, no):
    _agree(pattern, yes + no)
    dfa = regex_to_dfa(pattern)
    assert all(dfa.matches(s.encode()) for s in yes)
    assert not any(dfa.matches(s.encode()) for s in no)


@pytest.mark.parametrize(
    "pattern, construct",
    [
        (r"(a)\1", "backreference"),
        (r"(?P<x>a)(?P=x)", "backreference"),
        (r"a(?=b)", "lookaround"),
        (r"a(?!b)b", "lookaround"),
        (r"(?<=a)b", "lookaround"),
        (r"\bword", "word-boundary"),
        (r"a^b", "anchor not at the start"),
        (r"a$b", "anchor not at the end"),
        (r"(a)(?(1)b|c)", "backreference"),
        (r"a*+", "possessive"),
        (r"(?>ab)", "atomic"),
    ],
)
def test_unsupported_constructs_are_named(pattern, construct):
    with pytest.raises(UnsupportedFeatureError, match=construct) as e:
        regex_to_dfa(pattern)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("pattern", ["(", "a{2,1}", "[z-a]", "*a", "(?P<1>x)", r"\p{L}"])
def test_syntax_errors_have_positions(pattern):
    with pytest.raises(GrammarSyntaxError, match="invalid regex") as e:
        regex_to_dfa(pattern)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("pattern", [r"[^\s\S]", r"a[^\w\W]b", r"(?!)" if False else r"[^\d\D]+"])
def test_empty_language_is_an_error(pattern):
    with pytest.raises(CompileError, match="empty language"):
        regex_to_dfa(pattern)


def test_limits_are_named():
    from kmgrammar.automaton import Limits

    with pytest.raises(CompileLimitError, match="max_states=50"):
        regex_to_dfa(r"[a-z]{1,30}@[a-z]{1,30}", limits=Limits(max_states=50))
    with pytest.raises(CompileLimitError, match="time_limit"):
        regex_to_dfa(r"(\w|\d|[a-z]){0,3000}", limits=Limits(time_limit=0.05))


def test_minimal_state_counts():
    # Minimal DFAs: numbers every engine reproduces.
    assert regex_to_dfa("abc").n_states == 4
    assert regex_to_dfa("(a|b)*abb").n_states == 4
    assert regex_to_dfa("[0-9]{4}").n_states == 5
