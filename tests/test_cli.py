"""The `kmgrammar` command line: every subcommand and every bad-input path, run in-process."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import kmgrammar
from kmgrammar import cli
from kmgrammar.cli import main

DATE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    """Each test gets its own empty disk cache."""
    monkeypatch.setenv("KMGRAMMAR_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def art(tmp_path_factory, cl100k) -> Path:
    """The date regex compiled for cl100k_base, shared by the read-only tests."""
    path = tmp_path_factory.mktemp("art") / "date.kmg"
    kmgrammar.compile_regex(DATE, cl100k, cache=False).save(path)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A tokenizer.json folder with single characters plus a few merges and an EOS token."""
    folder = tmp_path_factory.mktemp("tiny")
    pieces = list("abcdefghijklmnopqrstuvwxyz0123456789-") + ["ab", "20", "-0"]
    spec = {"model": {"type": "BPE", "vocab": {p: i for i, p in enumerate(pieces)}, "merges": []},
            "added_tokens": [{"id": len(pieces), "content": "</s>", "special": True}]}
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>"}))
    return folder


def run(capsys, *argv):
    """main(argv) -> (exit code, stdout, stderr)."""
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc, err, fragment):
    assert rc == 2
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("kmgrammar: error: "), err
    assert fragment in lines[0], err


# -- parser ------------------------------------------------------------------------------------


def test_help_lists_every_subcommand(capsys):
    rc, out, _ = run(capsys, "--help")
    assert rc == 0
    for cmd in ("compile", "inspect", "check", "sample", "cache"):
        assert cmd in out


def test_version(capsys):
    rc, out, _ = run(capsys, "--version")
    assert rc == 0 and kmgrammar.__version__ in out


def test_common_options_work_before_and_after_the_subcommand(capsys, tmp_path):
    d1, d2 = tmp_path / "one", tmp_path / "two"
    assert str(d1) in run(capsys, "--cache-dir", d1, "cache", "info")[1]
    assert str(d2) in run(capsys, "cache", "info", "--cache-dir", d2)[1]


# -- compile -----------------------------------------------------------------------------------


def test_compile_reports_and_writes_a_loadable_artifact(capsys, tmp_path, cl100k):
    out_path = tmp_path / "sub" / "date.kmg"
    rc, out, _ = run(capsys, "compile", "--regex", DATE, "-o", out_path)
    assert rc == 0
    for field in ("states", "distinct mask rows", "token transitions", "compile time", "artifact size"):
        assert re.search(rf"^{field} +\S", out, re.M), out
    assert "from cache" not in out
    size = out_path.stat().st_size
    assert f"{size:,} bytes" in out
    compiled = kmgrammar.CompiledGrammar.load(out_path, cl100k)
    assert compiled.spec == DATE and compiled.kind == "regex"
    assert re.search(rf"^states +{compiled.n_states}$", out, re.M)


def test_compile_twice_hits_the_cache(capsys):
    assert "from cache" not in run(capsys, "compile", "--regex", DATE)[1]
    rc, out, _ = run(capsys, "compile", "--regex", DATE, "-v")
    assert rc == 0 and "(loaded from cache)" in out and "cache entry" in out


def test_compile_no_cache_writes_nothing(capsys, tmp_path):
    cache = tmp_path / "c"
    rc, out, _ = run(capsys, "compile", "--regex", "[ab]+", "--no-cache", "--cache-dir", cache)
    assert rc == 0 and "states" in out
    assert not cache.exists() or not list(cache.iterdir())
    run(capsys, "compile", "--regex", "[ab]+", "--cache-dir", cache)
    assert len(list(cache.glob("*.kmg"))) == 1


@pytest.mark.parametrize("name, text, expected", [
    ("lines.txt", "yes\nno\r\n\nmaybe so\n", ["yes", "no", "maybe so"]),
    ("list.json", '["yes", "", " no "]', ["yes", "", " no "]),
    ("list.txt", '  ["a", "b"]\n', ["a", "b"]),
    ("bracket.txt", "[not json\nb\n", ["[not json", "b"]),
], ids=["lines", "json-file", "json-content", "bracket-line"])
def test_compile_choices_file(capsys, tmp_path, cl100k, name, text, expected):
    src = tmp_path / name
    src.write_text(text, encoding="utf-8")
    rc, out, err = run(capsys, "compile", "--choices", src, "-o", tmp_path / "c.kmg")
    assert rc == 0, err
    assert kmgrammar.CompiledGrammar.load(tmp_path / "c.kmg", cl100k).spec == expected


@pytest.mark.parametrize("flag, func", [("--json-schema", "compile_json_schema"),
                                        ("--lark", "compile_lark"), ("--gbnf", "compile_gbnf")])
def test_compile_frontend_not_available(capsys, tmp_path, monkeypatch, flag, func):
    monkeypatch.delattr(kmgrammar, func, raising=False)
    src = tmp_path / "spec"
    src.write_text("{}")
    rc, _, err = run(capsys, "compile", flag, src)
    assert_one_line_error(rc, err, "not available in this version")


def test_compile_json_schema_goes_to_the_frontend(capsys, tmp_path, monkeypatch):
    seen = {}

    def compile_json_schema(schema, vocab, *, cache=True):
        seen.update(schema=schema, cache=cache)
        return kmgrammar.compile_regex("[0-9]+", vocab, cache=cache)

    monkeypatch.setattr(kmgrammar, "compile_json_schema", compile_json_schema, raising=False)
    src = tmp_path / "s.json"
    src.write_text('{"type": "integer"}')
    rc, out, err = run(capsys, "compile", "--json-schema", src, "--no-cache", "--max-states", "99")
    assert rc == 0 and "states" in out
    assert seen == {"schema": {"type": "integer"}, "cache": False}
    assert "--max-states is not supported with --json-schema" in err


def test_compile_json_schema_options(capsys, tmp_path, cl100k):
    src = tmp_path / "s.json"
    src.write_text(json.dumps({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
                               "required": ["a", "b"], "additionalProperties": False}))
    out_file = tmp_path / "s.kmg"
    rc, _, err = run(capsys, "compile", "--json-schema", src, "--no-cache", "--property-order", "any",
                     "--indent", "2", "-o", out_file)
    assert rc == 0, err
    c = kmgrammar.CompiledGrammar.load(out_file, cl100k)
    for doc in ({"b": "x", "a": 1}, {"a": 1, "b": "x"}):
        m = kmgrammar.Matcher(c)
        assert m.accept_string(json.dumps(doc, indent=2)) and m.is_accepting()
    assert not kmgrammar.Matcher(c).accept_string('{"a":1')
    rc, _, err = run(capsys, "compile", "--regex", "a", "--strict", "--lenient")
    assert_one_line_error(rc, err, "--strict, --lenient: only with --json-schema")
    rc, _, err = run(capsys, "compile", "--regex", "a", "--start", "x")
    assert_one_line_error(rc, err, "--start: only with --lark or --gbnf")


def test_compile_lark_start_rule(capsys, tmp_path, cl100k):
    out_file = tmp_path / "g.kmg"
    rc, _, err = run(capsys, "compile", "--lark", "arithmetic", "--no-cache", "-o", out_file)
    assert rc == 0, err
    src = tmp_path / "g.lark"
    src.write_text('start: "a" b\nb: "b"+\n')
    rc, _, err = run(capsys, "compile", "--lark", src, "--start", "b", "--no-cache", "-o", out_file)
    assert rc == 0, err
    m = kmgrammar.Matcher(kmgrammar.CompiledGrammar.load(out_file, cl100k))
    assert m.accept_string("bb") and m.is_accepting() and not kmgrammar.Matcher(m.compiled).accept_string("a")


def test_progress_message_on_stderr(capsys):
    with cli._Progress("regex 'x'", delay=0.0, every=60.0) as p:
        deadline = time.monotonic() + 10
        while not p.printed and time.monotonic() < deadline:
            time.sleep(0.01)
    assert "compiling regex 'x' ... (still working" in capsys.readouterr().err


def test_progress_message_names_numba_setup():
    p = cli._Progress("regex 'x'")
    assert p.line(31.4, 26.2) == ("kmgrammar: compiling regex 'x' ... (still working, 31 s; 26 s of it setting up "
                                  "numba's kernels, once per install)")
    assert p.line(12.0, 0.3) == "kmgrammar: compiling regex 'x' ... (still working, 12 s)"


# -- inspect -----------------------------------------------------------------------------------


def test_inspect_needs_no_tokenizer(capsys, art, cl100k, monkeypatch):
    def no_vocab(name):
        raise AssertionError("inspect loaded a tokenizer")

    monkeypatch.setattr("kmgrammar.vocab.load_vocabulary", no_vocab)
    rc, out, _ = run(capsys, "inspect", art)
    assert rc == 0
    assert re.search(r"^kind +regex$", out, re.M)
    assert repr(DATE) in out
    assert f"written by kmgrammar {kmgrammar.__version__}" in out
    assert cl100k.fingerprint in out and f"{cl100k.vocab_size:,}" in out
    for line in ("states", "distinct rows", "token transitions", "arrays", "dfa_trans", "state_row"):
        assert line in out
    assert "tokenizer" not in out


def test_inspect_with_tokenizer_says_whether_it_fits(capsys, art, tiny):
    assert "cl100k_base: matches" in run(capsys, "inspect", art, "--tokenizer", "cl100k_base")[1]
    assert "does NOT match" in run(capsys, "inspect", art, "--tokenizer", tiny)[1]


def test_inspect_report_to_file(capsys, art, tmp_path):
    rc, out, _ = run(capsys, "inspect", art, "-o", tmp_path / "report.txt")
    assert rc == 0 and out == ""
    assert "dfa_trans" in (tmp_path / "report.txt").read_text()


def test_inspect_abbreviates_long_choice_lists(capsys, tmp_path, cl100k):
    path = tmp_path / "many.kmg"
    kmgrammar.compile_choices([f"option{i}" for i in range(500)], cl100k).save(path)
    out = run(capsys, "inspect", path)[1]
    spec_line = next(line for line in out.splitlines() if line.startswith("spec"))
    assert "(500 options)" in spec_line and len(spec_line) < 300


# -- check -------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, rc, expected", [
    ("2024-01-31", 0, "accepted"),
    ("2024-0x-31", 1, "rejected at byte offset 6"),
    ("x", 1, "rejected at byte offset 0"),
    ("2024-01-311", 1, "rejected at byte offset 10"),
    ("2024-01", 1, "incomplete: valid prefix, not complete"),
    ("", 1, "incomplete: valid prefix, not complete"),
], ids=["match", "bad-char", "bad-first", "too-long", "prefix", "empty"])
def test_check(capsys, art, text, rc, expected):
    got, out, _ = run(capsys, "check", art, text)
    assert got == rc
    assert out.startswith(expected), out


def test_check_incomplete_names_the_forced_continuation(capsys, art):
    assert "it must continue with '-'" in run(capsys, "check", art, "2024")[1]


def test_check_offset_counts_bytes(capsys, tmp_path, cl100k):
    path = tmp_path / "word.kmg"
    kmgrammar.compile_choices(["héllo wörld"], cl100k).save(path)
    assert run(capsys, "check", path, "héllo wörld")[0] == 0
    rc, out, _ = run(capsys, "check", path, "héllo wörd")
    assert rc == 1 and "byte offset 11" in out  # 'é' and 'ö' are 2 bytes each


def test_check_file(capsys, art, tmp_path):
    (tmp_path / "good").write_bytes(b"1999-12-31")
    (tmp_path / "bad").write_bytes(b"1999-12-31\n")
    assert run(capsys, "check", art, "--file", tmp_path / "good")[:2] == (0, "accepted\n")
    rc, out, _ = run(capsys, "check", art, "--file", tmp_path / "bad")
    assert rc == 1 and "byte offset 10" in out


def test_check_with_another_tokenizer(capsys, tmp_path, tiny):
    path = tmp_path / "tiny.kmg"
    assert run(capsys, "compile", "--regex", DATE, "--tokenizer", tiny, "-o", path)[0] == 0
    assert run(capsys, "check", path, "2024-01-31", "--tokenizer", tiny)[0] == 0


# -- sample ------------------------------------------------------------------------------------


def _samples(out: str) -> list:
    return [ast.literal_eval(line) for line in out.splitlines()]


def test_sample_full_matches_and_is_seeded(capsys, art):
    rc, out, _ = run(capsys, "sample", art, "-n", "5", "--seed", "7")
    assert rc == 0
    got = _samples(out)
    assert len(got) == 5
    assert all(re.fullmatch(DATE, s) for s in got), got
    assert run(capsys, "sample", art, "-n", "5", "--seed", "7")[1] == out


@pytest.mark.parametrize("pattern, max_tokens", [
    (r"(ab|cd)*e", 4),
    (r"[a-z]+@[a-z]+\.com", 2),
    (r"[a-z]{30}x", 1),
    (r"(yes|no)( [0-9]+)?", 64),
], ids=["star", "email-ish", "long-forced-end", "optional-tail"])
def test_sample_always_ends_in_the_language(capsys, tmp_path, cl100k, pattern, max_tokens):
    path = tmp_path / "r.kmg"
    kmgrammar.compile_regex(pattern, cl100k).save(path)
    rc, out, err = run(capsys, "sample", path, "-n", 6, "--seed", 1, "--max-tokens", max_tokens, "-v")
    assert rc == 0, err
    got = _samples(out)
    assert len(got) == 6 and all(re.fullmatch(pattern, s) for s in got), got
    assert err.count("tokens [") == 6 and "100257]" in err  # every walk ends with EOS


def test_sample_choices_and_tiny_vocab(capsys, tmp_path, tiny):
    opts = tmp_path / "opts.txt"
    opts.write_text("2020-01\nab-ab\nzz\n")
    path = tmp_path / "c.kmg"
    assert run(capsys, "compile", "--choices", opts, "--tokenizer", tiny, "-o", path)[0] == 0
    rc, out, _ = run(capsys, "sample", path, "-n", "8", "--seed", "0", "--tokenizer", tiny)
    assert rc == 0 and set(_samples(out)) <= {"2020-01", "ab-ab", "zz"}


# -- cache -------------------------------------------------------------------------------------


def test_cache_info_and_clear(capsys, tmp_path):
    cache = tmp_path / "mycache"
    run(capsys, "compile", "--regex", "[xy]{3}", "--cache-dir", cache)
    rc, out, _ = run(capsys, "cache", "info", "--cache-dir", cache)
    assert rc == 0 and str(cache) in out and re.search(r"^entries +1$", out, re.M)
    rc, out, _ = run(capsys, "cache", "clear", "--cache-dir", cache)
    assert rc == 0 and "removed 1 entry" in out
    assert re.search(r"^entries +0$", run(capsys, "cache", "info", "--cache-dir", cache)[1], re.M)
    assert os.environ["KMGRAMMAR_CACHE_DIR"] != str(cache)  # --cache-dir lasts one run


# -- bad input -----------------------------------------------------------------------------------


def _corrupt(art: Path, tmp: Path) -> Path:
    data = bytearray(art.read_bytes())
    data[-5] ^= 0xFF
    (tmp / "corrupt.kmg").write_bytes(bytes(data))
    return tmp / "corrupt.kmg"


def _truncated(art: Path, tmp: Path) -> Path:
    (tmp / "trunc.kmg").write_bytes(art.read_bytes()[:200])
    return tmp / "trunc.kmg"


def _foreign(art: Path, tmp: Path) -> Path:
    (tmp / "foreign.kmg").write_bytes(b"PK\x03\x04" + b"\0" * 100)
    return tmp / "foreign.kmg"


def _bad_json(art: Path, tmp: Path) -> Path:
    (tmp / "bad.json").write_text('["a", ')
    return tmp / "bad.json"


def _json_not_list(art: Path, tmp: Path) -> Path:
    (tmp / "obj.json").write_text('{"a": 1}')
    return tmp / "obj.json"


def _empty(art: Path, tmp: Path) -> Path:
    (tmp / "empty.txt").write_text("\n\n")
    return tmp / "empty.txt"


def _latin1(art: Path, tmp: Path) -> Path:
    (tmp / "latin1.txt").write_bytes(b"caf\xe9\n")
    return tmp / "latin1.txt"


def _folder(art: Path, tmp: Path) -> Path:
    return tmp


# argv with ART / FILE placeholders -> a fragment of the one-line error.
BAD_INPUTS = [
    (["compile", "--regex", "(ab"], "invalid regex"),
    (["compile", "--regex", "a(?=b)"], "unsupported"),
    (["compile", "--regex", "[0-9]{4}", "--max-states", "2", "--no-cache"], "max_states=2"),
    (["compile", "--regex", "a", "--max-states", "0"], "--max-states must be at least 1"),
    (["compile", "--regex", "a", "--tokenizer", "no_such_encoding"], "unknown tokenizer 'no_such_enc"),
    (["compile", "--regex", "a", "--tokenizer", "/no/such/model.gguf"], "no such file"),
    (["compile", "--choices", "/no/such/choices.txt"], "cannot read choices file"),
    (["compile", "--choices", _bad_json], "invalid JSON at line 1"),
    (["compile", "--choices", _json_not_list], "must be a list of strings"),
    (["compile", "--choices", _empty], "empty"),
    (["compile", "--choices", _latin1], "not UTF-8"),
    (["compile", "--regex", "a", "-o", "/proc/no/such/dir/x.kmg"], "cannot write"),
    (["compile", "--regex", "a", "-o", "-"], "give a file name"),
    (["compile"], "one of the arguments --regex"),
    (["compile", "--regex", "a", "--choices", "x"], "not allowed with"),
    (["frobnicate"], "invalid choice"),
    ([], "required"),
    (["inspect", "/no/such/art.kmg"], "cannot read artifact"),
    (["inspect", _folder], "cannot read artifact"),
    (["inspect", _corrupt], "corrupt or truncated"),
    (["inspect", _truncated], "corrupt or truncated"),
    (["inspect", _foreign], "not a kmgrammar artifact"),
    (["check", "/no/such/art.kmg", "x"], "cannot read artifact"),
    (["check", _corrupt, "x"], "corrupt or truncated"),
    (["check", "ART", "x", "--tokenizer", "no_such_encoding"], "unknown tokenizer"),
    (["check", "ART"], "exactly one of TEXT or --file"),
    (["check", "ART", "x", "--file", "y"], "exactly one of TEXT or --file"),
    (["check", "ART", "--file", "/no/such/text"], "cannot read"),
    (["sample", _truncated], "corrupt or truncated"),
    (["sample", "ART", "-n", "-1"], "-n must be at least 0"),
    (["sample", "ART", "--max-tokens", "0"], "--max-tokens must be at least 1"),
    (["sample", "ART", "-n", "x"], "invalid int value"),
    (["cache", "purge"], "invalid choice"),
]


@pytest.mark.parametrize("argv, fragment", BAD_INPUTS,
                         ids=[" ".join(a if isinstance(a, str) else a.__name__.strip("_") for a in argv)
                              or "no-args" for argv, _ in BAD_INPUTS])
def test_bad_input_is_one_line_and_exit_2(capsys, art, tmp_path, argv, fragment):
    argv = [art if a == "ART" else a(art, tmp_path) if callable(a) else a for a in argv]
    rc, out, err = run(capsys, *argv)
    assert_one_line_error(rc, err, fragment)
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["check", "sample"])
def test_wrong_vocabulary_says_pass_the_right_tokenizer(capsys, tmp_path, tiny, command):
    path = tmp_path / "tiny.kmg"
    assert run(capsys, "compile", "--regex", DATE, "--tokenizer", tiny, "-o", path)[0] == 0
    rc, _, err = run(capsys, command, path, *(["2024-01-31"] if command == "check" else []))
    assert_one_line_error(rc, err, "compiled for another vocabulary")
    assert "--tokenizer" in err and "cl100k_base" in err


def test_unexpected_error_is_one_line_traceback_only_with_v(capsys, monkeypatch):
    def boom():
        raise RuntimeError("boom")

    monkeypatch.setattr("kmgrammar.cache.info", boom)
    rc, _, err = run(capsys, "cache", "info")
    assert_one_line_error(rc, err, "unexpected RuntimeError: boom (run with -v")
    rc, _, err = run(capsys, "cache", "info", "-v")
    assert rc == 2 and err.startswith("kmgrammar: error: unexpected RuntimeError: boom\n")
    assert "Traceback" in err


# -- the installed command -------------------------------------------------------------------------


def _command() -> list:
    exe = shutil.which("kmgrammar")
    return [exe] if exe else [sys.executable, "-m", "kmgrammar"]


def test_console_script(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    ok = subprocess.run([*_command(), "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0 and "compile" in ok.stdout
    bad = subprocess.run([*_command(), "inspect", str(tmp_path / "missing.kmg")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.splitlines() == [f"kmgrammar: error: cannot read artifact "
                                       f"{str(tmp_path / 'missing.kmg')!r}: No such file or directory"]


def test_compile_a_bundled_grammar_by_name(tmp_path, capsys):
    out = tmp_path / "json.kmg"
    assert main(["compile", "--lark", "json", "-o", str(out)]) == 0
    assert "kind" in capsys.readouterr().out
    assert main(["check", str(out), '{"a": [1, {"b": null}]}']) == 0
    assert main(["check", str(out), '{"a": [1,']) == 1
    assert main(["compile", "--gbnf", "arithmetic", "--no-cache"]) == 0
