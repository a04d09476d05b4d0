"""Disk cache and artifact files: hit, miss, corruption, truncation, concurrency, eviction."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import kmgrammar
from kmgrammar import ArtifactError, ArtifactVersionError, CompiledGrammar, Matcher, VocabError, Vocabulary
from kmgrammar import cache

VOCAB = Vocabulary.from_bytes([b"a", b"b", b"ab", b"1", b"12", b"<eos>"], eos_token_ids=[5])


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KMGRAMMAR_CACHE_DIR", str(tmp_path / "c"))
    return tmp_path / "c"


def _entries(d: Path) -> list:
    return sorted(p for p in d.glob("*.kmg")) if d.exists() else []


def _count_builds(monkeypatch) -> list:
    calls = []
    import kmgrammar.regex as r

    real = r.regex_to_dfa

    def counting(*a, **k):
        calls.append(a[0])
        return real(*a, **k)

    monkeypatch.setattr(r, "regex_to_dfa", counting)
    return calls


def test_hit_and_miss(cache_dir, monkeypatch):
    calls = _count_builds(monkeypatch)
    a = kmgrammar.compile_regex("(ab)+1", VOCAB)
    assert len(_entries(cache_dir)) == 1 and calls == ["(ab)+1"]
    assert not a.from_cache and _entries(cache_dir)[0].name == a.cache_key + ".kmg"
    b = kmgrammar.compile_regex("(ab)+1", VOCAB)
    assert calls == ["(ab)+1"]  # served from disk
    assert b.from_cache and b.cache_key == a.cache_key
    assert b.stats == a.stats and b.to_bytes() == a.to_bytes()
    kmgrammar.compile_regex("(ab)+12", VOCAB)
    assert len(calls) == 2 and len(_entries(cache_dir)) == 2
    c = kmgrammar.compile_regex("(ab)+1", VOCAB, cache=False)
    assert len(calls) == 3 and (c.from_cache, c.cache_key) == (False, None)


@pytest.mark.parametrize("schema", [{"type": "array", "items": {"type": "integer"}, "maxItems": 2},
                                    {"type": "object", "properties": {"a": {"type": "integer"}}}],
                         ids=["regular", "context-free"])
def test_json_schema_cache_hit_skips_the_frontend(cache_dir, monkeypatch, schema):
    """Both back ends (token automaton, grammar tables) are found by one key before the schema
    is lowered: a cached load costs a file read, not a frontend run."""
    import kmgrammar.jsonschema as js

    calls = []
    real = js.schema_to_grammar

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(js, "schema_to_grammar", counting)
    a = kmgrammar.compile_json_schema(schema, VOCAB)
    assert len(calls) == 1 and len(_entries(cache_dir)) == 1
    assert a.kind == ("cfg" if "properties" in schema else "json_schema")
    b = kmgrammar.compile_json_schema(schema, VOCAB)
    assert len(calls) == 1 and b.kind == a.kind and b.to_bytes() == a.to_bytes()
    assert (a.from_cache, b.from_cache) == (False, True) and a.cache_key == b.cache_key
    assert _entries(cache_dir)[0].name == a.cache_key + ".kmg"
    kmgrammar.compile_json_schema(schema, VOCAB, whitespace="flexible")
    assert len(calls) == 2


def test_key_depends_on_vocab_and_kind(cache_dir):
    other = Vocabulary.from_bytes([b"a", b"b", b"<eos>"], eos_token_ids=[2])
    kmgrammar.compile_regex("ab", VOCAB)
    kmgrammar.compile_regex("ab", other)
    kmgrammar.compile_choices(["ab"], VOCAB)
    assert len(_entries(cache_dir)) == 3


@pytest.mark.parametrize("damage", ["flip", "truncate", "foreign", "empty"])
def test_bad_entry_is_rebuilt(cache_dir, monkeypatch, damage, caplog):
    kmgrammar.compile_regex("a+b", VOCAB)
    (path,) = _entries(cache_dir)
    data = path.read_bytes()
    if damage == "flip":
        data = data[:-5] + bytes([data[-5] ^ 0xFF]) + data[-4:]
    elif damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "foreign":
        data = b"PK\x03\x04 not an artifact" * 10
    else:
        data = b""
    path.write_bytes(data)
    calls = _count_builds(monkeypatch)
    compiled = kmgrammar.compile_regex("a+b", VOCAB)
    assert calls == ["a+b"]  # detected and recompiled
    assert "discarding" in caplog.text
    assert Matcher(compiled).accept_string("aab")
    assert CompiledGrammar.from_bytes(path.read_bytes(), VOCAB).stats["states"] == compiled.stats["states"]


def test_save_load_and_errors(tmp_path):
    compiled = kmgrammar.compile_regex("[ab]{2}1", VOCAB, cache=False)
    p = tmp_path / "x.kmg"
    compiled.save(p)
    loaded = CompiledGrammar.load(p, VOCAB)
    m = Matcher(loaded)
    assert m.accept_string("ab") and m.allowed_token_ids().tolist() == [3]
    assert loaded.kind == "regex" and loaded.spec == "[ab]{2}1"
    with pytest.raises(VocabError, match="another vocabulary"):
        CompiledGrammar.load(p, Vocabulary.from_bytes([b"a", b"<eos>"], eos_token_ids=[1]))
    data = bytearray(p.read_bytes())
    data[8] = 99  # format version
    (tmp_path / "v.kmg").write_bytes(bytes(data))
    with pytest.raises(ArtifactVersionError, match="recompile"):
        CompiledGrammar.load(tmp_path / "v.kmg", VOCAB)
    with pytest.raises(ArtifactError, match="cannot read"):
        CompiledGrammar.load(tmp_path / "missing.kmg", VOCAB)
    (tmp_path / "t.kmg").write_bytes(p.read_bytes()[:-1])
    with pytest.raises(ArtifactError, match="corrupt or truncated"):
        CompiledGrammar.load(tmp_path / "t.kmg", VOCAB)


def test_eviction_keeps_the_total_bounded(cache_dir, monkeypatch):
    kmgrammar.compile_regex("a", VOCAB)
    size = _entries(cache_dir)[0].stat().st_size
    monkeypatch.setenv("KMGRAMMAR_CACHE_MAX_BYTES", str(int(size * 3.5)))
    for k in range(8):
        kmgrammar.compile_regex("a" * (k + 2), VOCAB)
        os.utime(_entries(cache_dir)[0])  # keep recency distinct even on coarse clocks
    entries = _entries(cache_dir)
    assert len(entries) <= 3
    assert sum(p.stat().st_size for p in entries) <= size * 3.5
    info = cache.info()
    assert info["entries"] == len(entries)
    assert cache.clear() == len(entries) and cache.info()["entries"] == 0


def test_stores_scan_the_folder_only_near_the_bound(cache_dir, monkeypatch):
    """A store scans the cache folder (a stat per entry) on a process's first store, when what the
    process has counted could pass the bound, and every _RESCAN stores (other processes' writes);
    otherwise it only adds its own bytes, so a big cache does not slow every compile down."""
    scans = []
    entries = cache._entries
    monkeypatch.setattr(cache, "_entries", lambda: scans.append(1) or entries())
    monkeypatch.setattr(cache, "_TOTALS", {})
    for k in range(5):
        kmgrammar.compile_regex("a" * (k + 1), VOCAB)
    assert len(scans) == 1
    total = sum(p.stat().st_size for p in _entries(cache_dir))
    assert cache._TOTALS[str(cache_dir)][0] == total
    monkeypatch.setenv("KMGRAMMAR_CACHE_MAX_BYTES", str(total + 10))
    kmgrammar.compile_regex("b", VOCAB)  # would pass the bound: scan, evict the oldest
    assert len(scans) == 2
    assert sum(p.stat().st_size for p in _entries(cache_dir)) <= total + 10
    monkeypatch.delenv("KMGRAMMAR_CACHE_MAX_BYTES")
    monkeypatch.setattr(cache, "_RESCAN", 2)
    for k in range(3):
        kmgrammar.compile_regex("b" * (k + 2), VOCAB)
    assert len(scans) == 3


def test_least_recently_used_goes_first(cache_dir, monkeypatch):
    for p in ("a", "b", "ab"):
        kmgrammar.compile_regex(p, VOCAB)
    by_age = sorted(_entries(cache_dir), key=lambda q: q.stat().st_mtime)
    for i, q in enumerate(by_age):
        os.utime(q, (1_000_000 + i, 1_000_000 + i))
    oldest = by_age[0]
    os.utime(oldest, (2_000_000, 2_000_000))  # a recent hit makes it the newest
    total = sum(q.stat().st_size for q in by_age)
    cache.evict(total - 1)
    assert oldest.exists() and not by_age[1].exists()


def test_concurrent_writers(cache_dir):
    script = textwrap.dedent(
        """
        import kmgrammar
        from kmgrammar import Vocabulary, Matcher
        v = Vocabulary.from_bytes([b"a", b"b", b"ab", b"1", b"12", b"<eos>"], eos_token_ids=[5])
        for _ in range(5):
            c = kmgrammar.compile_regex("(a|b){1,20}12", v)
            assert Matcher(c).accept_string("ab12")
        print("ok")
        """
    )
    env = dict(os.environ, KMGRAMMAR_CACHE_DIR=str(cache_dir))
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0 and out.strip() == "ok", err
    (entry,) = _entries(cache_dir)
    assert not list(cache_dir.glob(".tmp-*"))
    assert CompiledGrammar.from_bytes(entry.read_bytes(), VOCAB).kind == "regex"


def test_unwritable_cache_only_warns(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("KMGRAMMAR_CACHE_DIR", str(blocker / "sub"))
    compiled = kmgrammar.compile_regex("ab", VOCAB)
    assert Matcher(compiled).accept_string("ab")
    assert "cannot write" in caplog.text


def test_cached_loads_need_no_compiler(cache_dir):
    """A process that only loads cached artifacts (regex, JSON Schema on either back end) and
    serves masks never imports numba: its start-up stays a file read, not a JIT-cache load."""
    script = textwrap.dedent(
        """
        import sys
        import kmgrammar
        from kmgrammar import Vocabulary, Matcher
        v = Vocabulary.from_bytes([b"a", b"b", b"ab", b"1", b"12", b"{", b"}", b'"', b":", b"<eos>"],
                                  eos_token_ids=[9])
        got = [kmgrammar.compile_regex("(ab)+1", v),
               kmgrammar.compile_json_schema({"type": "array", "items": {"type": "integer"}}, v),
               kmgrammar.compile_json_schema({"type": "object", "properties": {"a": {}}}, v)]
        for c in got:
            m = Matcher(c)
            m.fill_next_token_bitmask(kmgrammar.allocate_token_bitmask(1, v.vocab_size))
        print(" ".join(c.kind for c in got), "numba" in sys.modules)
        """
    )
    env = dict(os.environ, KMGRAMMAR_CACHE_DIR=str(cache_dir))
    first = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    second = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert second.stdout.split() == ["regex", "json_schema", "cfg", "False"]
