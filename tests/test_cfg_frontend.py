"""Grammar frontends (Lark via Lark's loader, GBNF): lowering, checks, errors, warnings, limits."""

from __future__ import annotations

import warnings

import pytest

from kmgrammar import CompileError, CompileLimitError, GrammarSyntaxError, Matcher, UnsupportedFeatureError
from kmgrammar.cfg import GreedyLexingWarning, load_lark
from kmgrammar.cfg_gbnf import load_gbnf
from kmgrammar.compiler import compile_gbnf, compile_lark
from kmgrammar.vocab import Vocabulary


@pytest.fixture(scope="module")
def tiny():
    toks = [bytes([c]) for c in b"abcxyz()[]{},:\"+-*/ 0123456789=\n"] + [b"ab", b"()", b'",', b"xyz", b"if"]
    return Vocabulary.from_bytes(toks + [b"<eos>"], eos_token_ids=[len(toks)], special_token_ids=[len(toks)])


def accepts(compiled, text: str) -> bool:
    m = Matcher(compiled)
    return m.accept_string(text) and m.is_accepting()


# -- Lark features, through Lark's own loader ---------------------------------------------------

def test_lark_features_ebnf_templates_repeats_inline(tiny):
    g = r"""
    start: pair{"a", "b"} item~2..3 maybe? (","  NUMBER)*
    pair{x, y}: x y
    ?item: "x" | "y"
    maybe: "z"
    %import common.NUMBER
    """
    c = compile_lark(g, tiny)
    assert c.kind == "lark"  # no recursion: the regular token automaton
    for s in ["abxy", "abxyx", "abxyz,1,2.5"]:
        assert accepts(c, s), s
    for s in ["abx", "abxyxyx", "ab", "abxyz,"]:
        assert not accepts(c, s), s


def test_recursive_grammar_is_cfg_and_regular_is_plain(tiny):
    assert compile_lark('start: "(" start ")" | "x"', tiny).kind == "cfg"
    c = compile_lark('start: x+\nx: "a" | "b"', tiny)
    assert c.kind == "lark" and type(Matcher(c)) is Matcher


def test_direct_recursion_is_unrolled_into_loops(tiny):
    # Lark's `x*` helper rules are left-recursive; they must not cost a stack.
    c = compile_lark('start: a ("," a)*\na: "x" | "y"', tiny)
    assert c.kind == "lark"
    c = compile_lark('start: list\nlist: list "," "x" | "x"', tiny)
    assert c.kind == "lark"
    assert accepts(c, "x,x,x") and not accepts(c, "x,,x")
    c = compile_lark('start: r\nr: "a" r | "b"', tiny)
    assert c.kind == "lark" and accepts(c, "aab") and not accepts(c, "aba")


def test_ignore_anywhere_between_terminals_and_at_the_ends(tiny):
    c = compile_lark('start: "a" b*\nb: "b"\n%ignore " "', tiny)
    for s in ["ab", " ab", "ab ", " a b ", "a  b", "a"]:
        assert accepts(c, s), s
    assert not accepts(c, " ")
    c = compile_lark('start: x?\nx: "a"\n%ignore " "', tiny)
    assert accepts(c, "") and accepts(c, "  ") and accepts(c, " a ")


def test_common_escaped_string_lookbehind_is_rewritten(tiny):
    c = compile_lark('start: ESCAPED_STRING\n%import common.ESCAPED_STRING', tiny)
    assert accepts(c, '"ab"') and accepts(c, r'"a\"b"') and accepts(c, r'"a\\"')
    assert not accepts(c, r'"a\"') and not accepts(c, '"a"b"')


def test_terminals_never_match_empty(tiny):
    c = compile_lark("start: A B\nA: /a*/\nB: /b/", tiny)
    assert accepts(c, "ab") and accepts(c, "aab") and not accepts(c, "b")


def test_case_insensitive_strings(tiny):
    c = compile_lark('start: "abc"i', tiny)
    assert accepts(c, "ABC") and accepts(c, "aBc")


# -- Errors ---------------------------------------------------------------------------------------

BAD_LARK = [
    ("start: a\n", CompileError, "used but not defined"),
    ('start: "a" (\n', GrammarSyntaxError, "line 1 column 13"),
    ('start: "a"\nfoo bar baz\n', GrammarSyntaxError, "line 2, column 5"),
    ("start: A\nA: /a(/\n", GrammarSyntaxError, "terminal A"),
    ("start: A\nA: /(?=a)a/\n", UnsupportedFeatureError, "terminal A"),
    ('start: x\nx: x "a"\n', CompileError, "can never be completed"),
    ('start: "a" | y\ny: y "b"\n', CompileError, "unproductive rule 'y'"),
    ('start: ""\n', CompileError, "Empty terminals"),
    ("start: A\nA: /[^\\x00-\\U0010ffff]/\n", CompileError, "empty language"),
]


@pytest.mark.parametrize("text,exc,fragment", BAD_LARK, ids=[r[2] for r in BAD_LARK])
def test_bad_lark_grammars(tiny, text, exc, fragment):
    with pytest.raises(exc, match=fragment.replace("(", r"\(")):
        compile_lark(text, tiny, cache=False)


def test_unknown_start_rule(tiny):
    with pytest.raises(CompileError, match="start"):
        compile_lark('start: "a"', tiny, start="nope", cache=False)


BAD_GBNF = [
    ('root ::= "a\n', "line 1, column 10"),
    ("root ::= [a-\n", "line 1"),
    ('root ::= "a" )', "column 14: unexpected '\\)'"),
    ("root = \"a\"", "expected '::='"),
    ('root ::= "\\q"', "unknown escape"),
    ('root ::= "a"{3,1}', "max below min"),
    ('root ::= "a"\n  x ::= "b" ("c"', "line 2"),
]


@pytest.mark.parametrize("text,fragment", BAD_GBNF, ids=[r[1] for r in BAD_GBNF])
def test_bad_gbnf_syntax_has_line_and_column(tiny, text, fragment):
    with pytest.raises(GrammarSyntaxError, match=fragment):
        compile_gbnf(text, tiny, cache=False)


def test_bad_gbnf_semantics(tiny):
    with pytest.raises(CompileError, match="'nope'.*never defined"):
        compile_gbnf("root ::= nope", tiny, cache=False)
    with pytest.raises(CompileError, match="no 'root' rule"):
        compile_gbnf('start ::= "a"', tiny, cache=False)
    with pytest.raises(CompileError, match="empty"):
        compile_gbnf("root ::= root \"a\"", tiny, cache=False)


def test_limits_raise_compile_limit_error(tiny):
    g = 'start: "(" start ")" | A\nA: /[a-z]{1,30}x[a-z]{1,30}/'
    with pytest.raises(CompileLimitError, match="max_states"):
        compile_lark(g, tiny, cache=False, max_states=10)
    with pytest.raises(CompileLimitError, match="time_limit"):
        compile_lark(g, tiny, cache=False, time_limit=0.0)


def test_max_depth_option_validated(tiny):
    with pytest.raises(CompileError, match="max_depth"):
        compile_lark('start: "(" start ")" | "x"', tiny, max_depth=0)


# -- Lark's greedy dynamic lexer ----------------------------------------------------------------

def test_greedy_trap_warning():
    with pytest.warns(GreedyLexingWarning, match="NAME followed by X"):
        cfg = load_lark('start: NAME "x"\nNAME: /[a-z]+/')
    assert cfg.notes


def test_no_greedy_warning_for_json():
    from kmgrammar import grammars

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_lark(grammars.load("json"))


def test_greedy_trap_is_real_and_kmgrammar_follows_dynamic_complete(tiny):
    from lark import Lark

    g = 'start: NAME "x"\nNAME: /[a-z]+/'
    with pytest.raises(Exception):
        Lark(g, parser="earley").parse("abx")
    Lark(g, parser="earley", lexer="dynamic_complete").parse("abx")
    with pytest.warns(GreedyLexingWarning):
        c = compile_lark(g, tiny, cache=False)
    assert accepts(c, "abx")


# -- GBNF ---------------------------------------------------------------------------------------

def test_gbnf_constructs(tiny):
    g = r'''
    root ::= item ("," item){0,2} tail?   # comment
    item ::= [a-c]+ | "x" [^a-z0-9\n]
           | "(" root ")"
    tail ::= "=" [0-9]{2,}
    '''
    c = compile_gbnf(g, tiny)
    assert c.kind == "cfg"
    for s in ["a", "ab,c", "a,b,c=12", "x+", "(a,b)=123", "((a))"]:
        assert accepts(c, s), s
    for s in ["", "a,b,c,a", "xa", "a=1", "(a", "d"]:
        assert not accepts(c, s), s


def test_gbnf_escapes_and_any_char(tiny):
    cfg = load_gbnf(r'root ::= "\x41\u00e9\t" . [\]\-]')
    assert cfg.start == "root"
    c = compile_gbnf(r'root ::= "\x41" . [\]\-]', tiny)
    assert accepts(c, "Ab]") and accepts(c, "A\u00e9-") and not accepts(c, "Ab")


def test_llama_cpp_gbnf_corpus_compiles(shared, tiny):
    folder = shared / "corpora" / "grammars" / "gbnf" / "grammars"
    for path in sorted(folder.glob("*.gbnf")):
        c = compile_gbnf(path.read_text("utf-8"), tiny)
        assert c.kind in ("gbnf", "cfg"), path.name


def test_exponential_inlining_is_bounded(tiny):
    """A rule ladder that doubles at every level: no hang, either a clear limit error (regular
    grammar: the automaton itself is exponential) or a compact RTN (shared rules kept as calls)."""
    ladder = "\n".join(f'a{i}: a{i + 1} a{i + 1} | a{i + 1} "y"' for i in range(24)) + "\nstart: a0\n"
    with pytest.raises(CompileLimitError, match="time_limit=2s|max_states"):
        compile_lark(ladder + 'a24: "x"\n', tiny, cache=False, time_limit=2)
    c = compile_lark(ladder + 'a24: "x" | "(" start ")"\n', tiny, cache=False, time_limit=20)
    assert c.kind == "cfg" and c.stats["positions"] < 1000
    m = Matcher(c)
    assert m.accept_string("(" + "x" * (2 ** 10) + "y" * 0)
