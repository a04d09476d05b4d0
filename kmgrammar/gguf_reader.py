"""GGUF files -> their metadata key/values: just enough of the format to read a tokenizer.

A small reader of the metadata section rather than ``gguf.GGUFReader``, which builds a numpy
view per string (17 s for Llama 3's 128k tokens and 280k merges, against ~0.16 s here); it
needs no optional package. Only the token strings and types are materialised.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from .errors import VocabError

_GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q",
                 11: "q", 12: "d"}
_GGUF_STRING, _GGUF_ARRAY = 8, 9
# Only these arrays are materialised; merges (up to 500k strings) and scores are skipped.
_GGUF_ARRAYS_KEPT = {b"tokenizer.ggml.tokens", b"tokenizer.ggml.token_type"}

def read_gguf_metadata(path: Path) -> dict[str, Any]:
    """The key/value section of a GGUF v2/v3 file. Token strings are kept as raw bytes and
    token types as a numpy array; other arrays are skipped (``None``)."""
    try:
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size < 24:
                raise VocabError(f"{path}: not a GGUF file (too short)")
            # mmap: model files are gigabytes and only the metadata at the front is needed.
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except FileNotFoundError:
        raise VocabError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise VocabError(f"{path}: is a directory, expected a .gguf file") from None
    except OSError as exc:
        raise VocabError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        if mm[:4] != b"GGUF":
            raise VocabError(f"{path}: not a GGUF file (bad magic {bytes(mm[:4])!r})")
        # A big-endian file's version reads as a multiple of 65536 in little-endian.
        order = ">" if struct.unpack_from("<I", mm, 4)[0] & 0xFFFF == 0 else "<"
        version, _, n_kv = struct.unpack_from(order + "IQQ", mm, 4)
        if version < 2:
            raise VocabError(f"{path}: GGUF version {version} is too old (re-convert it with a "
                             "current llama.cpp)")
        return _GgufParser(mm, order).read(n_kv, 24)
    except (struct.error, IndexError, UnicodeDecodeError, OverflowError, ValueError) as exc:
        if isinstance(exc, VocabError):
            raise
        raise VocabError(f"{path}: truncated or corrupt GGUF metadata ({exc})") from None
    finally:
        mm.close()


class _GgufParser:
    def __init__(self, buf: mmap.mmap, order: str) -> None:
        self.buf, self.order = buf, order
        self.u64 = struct.Struct(order + "Q").unpack_from
        self.u32 = struct.Struct(order + "I").unpack_from

    def read(self, n_kv: int, off: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for _ in range(n_kv):
            key, off = self.string(off)
            (kind,), off = self.u32(self.buf, off), off + 4
            value, off = self.value(kind, off, keep=key in _GGUF_ARRAYS_KEPT)
            out[key.decode()] = value
        return out

    def string(self, off: int) -> tuple[bytes, int]:
        (n,) = self.u64(self.buf, off)
        end = off + 8 + n
        if end > len(self.buf):
            raise ValueError("string runs past the end of the file")
        return self.buf[off + 8:end], end

    def value(self, kind: int, off: int, keep: bool) -> tuple[Any, int]:
        if kind in _GGUF_SCALARS:
            fmt = self.order + _GGUF_SCALARS[kind]
            return struct.unpack_from(fmt, self.buf, off)[0], off + struct.calcsize(fmt)
        if kind == _GGUF_STRING:
            s, off = self.string(off)
            return s.decode("utf-8", "replace"), off
        if kind != _GGUF_ARRAY:
            raise ValueError(f"unknown value type {kind}")
        item, count = struct.unpack_from(self.order + "IQ", self.buf, off)
        off += 12
        if item in _GGUF_SCALARS:
            dtype = np.dtype(self.order + _GGUF_SCALARS[item])
            end = off + dtype.itemsize * count
            if end > len(self.buf):
                raise ValueError("array runs past the end of the file")
            arr = np.frombuffer(self.buf, dtype, count, off).copy() if keep else None
            return arr, end
        buf, u64 = self.buf, self.u64
        if item == _GGUF_STRING:  # the hot path: 100k-500k tokens and merges
            if not keep:
                for _ in range(count):
                    off += 8 + u64(buf, off)[0]
                return None, off
            items = []
            append = items.append
            for _ in range(count):
                (n,) = u64(buf, off)
                off += 8
                append(buf[off:off + n])
                off += n
            if off > len(buf):
                raise ValueError("string array runs past the end of the file")
            return items, off
        values = []
        for _ in range(count):
            v, off = self.value(item, off, keep)
            values.append(v)
        return values, off
