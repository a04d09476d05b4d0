"""The Rust regex crate's and RE2's test patterns, under full-match semantics.

Every pattern Python's `re` accepts is either compiled and agrees with `re.fullmatch` on the
haystacks and on every span the suite reports as a match, or refused with a clear error naming
the construct (lookaround, backreference, word boundary, inner anchor) or the limit.
Patterns `re` rejects must be rejected by kmgrammar as syntax errors.
"""

from __future__ import annotations

import ast
import re
import sys

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # re's "possible nested set" notes

from kmgrammar import CompileError, CompileLimitError, GrammarSyntaxError, UnsupportedFeatureError
from kmgrammar.automaton import Limits
from kmgrammar.regex import regex_to_dfa

LIMITS = Limits(max_states=20_000, time_limit=2.0)
REFUSALS = ("lookaround", "backreference", "word-boundary", "anchor not at", "possessive", "atomic", "LOCALE")


def _check(pattern: str, strings: list, tally: dict) -> None:
    strings = [s for s in strings if isinstance(s, str) and not any(0xD800 <= ord(c) <= 0xDFFF for c in s)]
    try:
        compiled_re = re.compile(pattern)
    except (re.error, OverflowError, RecursionError):
        with pytest.raises(GrammarSyntaxError):
            regex_to_dfa(pattern, limits=LIMITS)
        tally["syntax"] += 1
        return
    try:
        dfa = regex_to_dfa(pattern, limits=LIMITS)
    except UnsupportedFeatureError as e:
        assert any(r in str(e) for r in REFUSALS), str(e)
        tally["unsupported"] += 1
        return
    except CompileLimitError:
        tally["limit"] += 1
        return
    except CompileError as e:
        assert "empty language" in str(e)
        assert not any(compiled_re.fullmatch(s) for s in strings)
        tally["empty"] += 1
        return
    for s in strings:
        assert dfa.matches(s.encode("utf-8")) == bool(compiled_re.fullmatch(s)), (pattern, s)
    tally["agree"] += 1


def _tally() -> dict:
    return {"agree": 0, "unsupported": 0, "limit": 0, "syntax": 0, "empty": 0}


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib needs Python 3.11")
def test_rust_regex_suite(shared):
    import tomllib

    tally = _tally()
    for path in sorted((shared / "corpora/regex/testdata").glob("*.toml")):
        for t in tomllib.loads(path.read_text("utf-8")).get("test", []):
            if not isinstance(t["regex"], str) or t.get("utf8") is False or t.get("unescape"):
                continue
            pattern = ("(?i)" if t.get("case-insensitive") else "") + t["regex"]
            hay = t["haystack"]
            spans = []
            for m in t["matches"]:
                span = m.get("span") if isinstance(m, dict) else m
                if span and isinstance(span[0], list):
                    span = span[0]
                if span and isinstance(span[0], int):
                    spans.append(span)
            strings = [hay, ""]
            raw = hay.encode("utf-8")
            for a, b in spans:
                try:
                    strings.append(raw[a:b].decode("utf-8"))
                except UnicodeDecodeError:
                    pass
            _check(pattern, strings, tally)
    print("rust regex suite:", tally)
    assert tally["agree"] > 200  # the rest: Rust-only syntax (re rejects it) and \b


def test_re2_search_suite(shared):
    lines = (shared / "corpora/regex/re2/re2-search.txt").read_text("utf-8").splitlines()
    tally = _tally()
    i, strings = 0, []
    while i < len(lines):
        line = lines[i]
        if line == "strings":
            strings, i = [], i + 1
            while lines[i] != "regexps":
                try:
                    strings.append(ast.literal_eval(lines[i]))
                except (ValueError, SyntaxError):
                    pass
                i += 1
        elif line.startswith('"'):
            try:
                pattern = ast.literal_eval(line)
            except (ValueError, SyntaxError):
                pattern = None
            if isinstance(pattern, str):
                _check(pattern, strings, tally)
        i += 1
    print("re2 search suite:", tally)
    assert tally["agree"] > 300  # most refusals are \b, which RE2 uses a lot
