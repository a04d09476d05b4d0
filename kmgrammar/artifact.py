"""Compiled artifact: the token automaton's arrays plus what they were built from, and its file format.

File layout (little endian):
    magic b"KMGRAMR\\0" | u32 format version | u32 header length | u32 crc32 of the rest | u32 0
    header (JSON: versions, constraint kind/spec/options, vocabulary fingerprint, array table)
    array data (each array 16-byte aligned)
Nothing is ever unpickled or executed on load: arrays are views over the checked bytes.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import zlib

import numpy as np

from .automaton import ByteDFA
from .errors import ArtifactError, ArtifactVersionError, VocabError

FORMAT_VERSION = 1
MAGIC = b"KMGRAMR\0"
_PREFIX = struct.Struct("<8sIIII")

# Arrays every regular (DFA-based) artifact carries; other kinds register theirs in _REQUIRED.
_ARRAY_NAMES = (
    "dfa_trans", "dfa_classes", "dfa_accept", "state_row", "row_fill", "row_dense",
    "row_start", "exc_idx", "exc_val", "dense", "forced",
)
_REQUIRED: dict = {
    # context-free grammars (cfg_tables.py): the row arrays above plus the RTN and remainder tables
    "cfg": _ARRAY_NAMES + (
        "cfg_final_nt", "cfg_call_ptr", "cfg_call_nt", "cfg_call_next", "cfg_nt_start", "cfg_nullable",
        "cfg_grp_ptr", "cfg_grp_state", "cfg_grp_tok_ptr", "cfg_grp_tok", "cfg_grp_rem", "cfg_rem_ptr",
        "cfg_rem_off", "cfg_rem_data",
    ),
}

# Expanded mask rows kept per grammar (64 MB = 5k rows of a 100k vocabulary).
_MATERIALIZED_BYTES = 64 << 20
# Rows stored with at most this many exception words are written from them (`write_row`).
_DIRECT_WORDS = 256
# Exception words up to which `index_rows` converts their indices up front (2 MB as intp).
_INDEXED_WORDS = 1 << 18
# Row sets larger than this OR their rows stored with fill 0 by vector operations (`rows_or`).
_MANY_ROWS = 6


def row_token_ids(row: np.ndarray, vocab_size: int) -> np.ndarray:
    """The set bits of a packed int32 mask row as ascending int32 token ids."""
    bits = np.unpackbits(np.ascontiguousarray(row).view(np.uint8), bitorder="little")
    # nonzero() on a bool view is several times faster than on the uint8 bits.
    return np.flatnonzero(bits[:vocab_size].view(bool)).astype(np.int32)


def write_stored(row, out: np.ndarray) -> np.ndarray:
    """Write a row as kept, an int32 row or (fill word, word indices, words), into `out`."""
    if type(row) is tuple:
        out.fill(row[0])
        out[row[1]] = row[2]
    else:
        np.copyto(out, row)
    return out


class CompiledGrammar:
    """An immutable compiled constraint for one vocabulary; share it between matchers and threads.

    Attributes
    ----------
    kind, spec, options : what was compiled (e.g. "regex", the pattern, {}).
    vocab : the `Vocabulary` it was compiled for.
    stats : states, distinct mask rows, token transitions, compile time.
    cache_key : the disk cache entry it was stored in or loaded from (None when not cached).
    from_cache : whether the compile call that returned it loaded it from the disk cache.
    """

    def __init__(self, *, kind: str, spec, options: dict, vocab, arrays: dict, stats: dict):
        self.kind = kind
        self.spec = spec
        self.options = dict(options)
        self.vocab = vocab
        self.stats = dict(stats)
        self._arrays = arrays
        self.cache_key: str | None = None
        self.from_cache = False
        self.dfa = ByteDFA(arrays["dfa_trans"], arrays["dfa_classes"], arrays["dfa_accept"])
        self.n_words = int(arrays["dense"].shape[1]) if arrays["dense"].ndim == 2 else 0
        # tuples: untracked by the garbage collector (see earley.Network)
        self._state_row = tuple(arrays["state_row"].tolist())
        self._accept = tuple(arrays["dfa_accept"].tolist())
        self._forced = tuple(arrays["forced"].tolist())
        self._rows: list = [None] * len(arrays["row_fill"])
        self._sparse_rows: dict = {}  # row index -> (fill, exception word indices, words), see _sparse
        self._row_index = None  # see index_rows
        self._materialized = 0
        self._eos_only = None
        self._ids: dict = {}  # row index -> allowed token ids (see allowed_ids)

    @property
    def n_states(self) -> int:
        return self.dfa.n_states

    @property
    def vocab_size(self) -> int:
        return self.vocab.vocab_size

    @property
    def nbytes(self) -> int:
        """Bytes of array data in the artifact."""
        return int(sum(a.nbytes for a in self._arrays.values()))

    def __repr__(self) -> str:
        spec = repr(self.spec)
        spec = spec if len(spec) <= 60 else spec[:57] + "..."
        return f"CompiledGrammar({self.kind}: {spec}, states={self.n_states}, vocab={self.vocab_size})"

    # -- masks ---------------------------------------------------------------------------------
    def mask_row(self, state: int) -> np.ndarray:
        """The state's mask as a dense int32 row of `n_words` (read-only; do not modify).

        Rows are expanded from their stored form on first use and kept, up to
        `_MATERIALIZED_BYTES` per grammar: after that a copy into the caller's buffer is the whole
        cost of a mask (a 100k vocabulary row is 12.5 KB, about 1 microsecond).
        """
        return self.row_at(self._state_row[state])

    def row_at(self, r: int) -> np.ndarray:
        """Distinct row `r` as a dense int32 row (see `mask_row`)."""
        row = self._rows[r]
        if row is None:
            ix = self._row_index
            d = ix[0][r] if ix is not None else int(self._arrays["row_dense"][r])
            if d >= 0:  # a view of the stored table: kept for free
                row = self._rows[r] = self._arrays["dense"][d]
            else:
                fill, idx, val = self._sparse(r)
                row = np.full(self.n_words, fill, np.int32)
                row[idx] = val
                if self._materialized < _MATERIALIZED_BYTES:
                    self._rows[r] = row
                    self._materialized += row.nbytes
        return row

    def index_rows(self) -> None:
        """Index the stored rows once as tuples, and their exception word indices as intp (up to
        `_INDEXED_WORDS`), so that a row's first use is two slices, not five numpy calls (~1 us
        each here). Done by the first context-free matcher: its new masks read rows for the first
        time all along a grammar's first documents; a regular matcher reads one row per state."""
        if self._row_index is None:
            a = self._arrays
            exc = a["exc_idx"].astype(np.intp) if len(a["exc_idx"]) <= _INDEXED_WORDS else None
            self._row_index = (tuple(a["row_dense"].tolist()), tuple(a["row_start"].tolist()),
                               tuple(a["row_fill"].tolist()), exc)

    def _sparse(self, r: int):
        """(fill word, word indices, words) of a row stored as a fill and the words that differ,
        or None for a row stored dense."""
        got = self._sparse_rows.get(r)
        if got is None:
            a = self._arrays
            ix = self._row_index
            if ix is not None and ix[3] is not None:
                dense, starts, fills, exc = ix
                if dense[r] >= 0:
                    return None
                lo, hi = starts[r], starts[r + 1]
                got = (fills[r], exc[lo:hi], a["exc_val"][lo:hi])
                if hi - lo <= _DIRECT_WORDS:  # else expanded and kept by row_at instead
                    self._sparse_rows[r] = got
                return got
            if a["row_dense"].item(r) >= 0:  # (item: no numpy scalar made, as int(a[r]) does)
                return None
            starts = a["row_start"]
            lo, hi = starts.item(r), starts.item(r + 1)
            fill, idx, val = a["row_fill"].item(r), a["exc_idx"][lo:hi], a["exc_val"][lo:hi]
            if hi - lo > _DIRECT_WORDS:  # expanded and kept by row_at instead: no second copy
                return fill, idx, val
            # int32 indices would cost a conversion per scatter (a few KB at most per row)
            got = self._sparse_rows[r] = (fill, idx.astype(np.intp), val)
        return got

    def stored_row(self, r: int):
        """Distinct row `r` as a kept int32 row if there is one, else as `write_row` would write
        it: (fill, word indices, words) when stored sparse with few exceptions."""
        row = self._rows[r]
        if row is None:
            got = self._sparse(r)
            if got is not None and len(got[1]) <= _DIRECT_WORDS:
                return got
            row = self.row_at(r)
        return row

    def write_row(self, state: int, out: np.ndarray) -> None:
        """Write the state's mask into `out` (an int32 array of `n_words`).

        A row stored as a fill and up to `_DIRECT_WORDS` exception words is written from them, not
        expanded and kept: about as fast as copying a kept row, and a new 12.5 KB array is not
        free (fresh memory costs a page fault per 4 KB, ~2.5 microseconds each on a virtual
        machine).
        """
        write_stored(self.stored_row(self._state_row[state]), out)

    def rows_or(self, rows, extra=None) -> np.ndarray:
        """The OR of distinct rows `rows` (a collection of row indices) and `extra` (a uint32 row,
        or None) as a uint32 row (read only: it may be a kept row when there is nothing to OR).

        One new array at most: rows stored as a fill and up to `_DIRECT_WORDS` exception words
        are ORed in from those words, not expanded (see `write_row` on why fresh arrays cost);
        many such rows in one scatter (JSON Schema charts have up to ~60 distinct rows). Of
        more than `_MANY_ROWS` rows, those stored with fill 0 are ORed from the stored arrays by
        a fixed number of vector operations, not decoded one by one (a Python round each: a
        quarter of the instructions of the ~10% of ORs with 7-60 rows)."""
        if extra is None and len(rows) == 1:
            for r in rows:
                return self.row_at(r).view(np.uint32)
        at = None
        if len(rows) > _MANY_ROWS:
            a = self._arrays
            ids = np.fromiter(rows, np.intp, len(rows))
            zero = (a["row_dense"][ids] < 0) & (a["row_fill"][ids] == 0)
            if zero.any():
                # the stored words of every such row, one range after another
                starts = a["row_start"]
                spans = ids[zero]
                lo, n = starts[spans], starts[spans + 1] - starts[spans]
                at = np.repeat(lo - (np.cumsum(n) - n), n) + np.arange(n.sum())
                rows = ids[~zero].tolist()
        out, ones, sparse = None, [], []
        for r in rows:
            got = self.stored_row(r)
            if type(got) is tuple:
                (ones if got[0] else sparse).append(got)
                continue
            row = got.view(np.uint32)
            if out is None:
                out = row.copy()
            else:
                out |= row
        if out is None:
            if extra is not None:
                out, extra = extra.copy(), None
            else:
                out = np.zeros(self.n_words, np.uint32)
        if extra is not None:
            out |= extra
        # fill 0: only the exception words change (unique within a row, not across rows)
        if at is not None:  # (indices as intp if indexed: int32 ones cost numpy a conversion)
            ix = self._row_index
            exc = ix[3] if ix is not None and ix[3] is not None else self._arrays["exc_idx"]
            np.bitwise_or.at(out, exc[at], self._arrays["exc_val"][at].view(np.uint32))
        if len(sparse) > 3:
            np.bitwise_or.at(out, np.concatenate([g[1] for g in sparse]),
                             np.concatenate([g[2] for g in sparse]).view(np.uint32))
        else:
            for _, idx, val in sparse:
                out[idx] |= val.view(np.uint32)
        for _, idx, val in ones:  # fill all-ones: every word but the exceptions becomes all-ones
            kept = out[idx] | val.view(np.uint32)
            out.fill(0xFFFFFFFF)
            out[idx] = kept
        return out

    def allowed_ids(self, state: int) -> np.ndarray:
        """The token ids allowed in `state`, ascending (read-only; do not modify).

        Unpacking a 100k-token row costs ~0.3 ms; API backends ask for the allowed set at many
        steps (to restrict or check the next token), so ids are kept per distinct row, sharing
        the materialised-rows budget.
        """
        r = self._state_row[state]
        ids = self._ids.get(r)
        if ids is None:
            ids = row_token_ids(self.mask_row(state), self.vocab_size)
            ids.flags.writeable = False
            if self._materialized < _MATERIALIZED_BYTES:
                self._ids[r] = ids
                self._materialized += ids.nbytes
        return ids

    def eos_row(self) -> np.ndarray:
        """The mask after termination: only the EOS tokens."""
        if self._eos_only is None:
            words = np.zeros(self.n_words, np.uint32)
            for t in self.vocab.eos_token_ids:
                words[t >> 5] |= np.uint32(1 << (t & 31))
            self._eos_only = words.view(np.int32)
        return self._eos_only

    # -- files -----------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        table, chunks, offset = [], [], 0
        for name in sorted(self._arrays):
            arr = np.ascontiguousarray(self._arrays[name])
            pad = (-offset) % 16
            chunks.append(b"\0" * pad)
            offset += pad
            table.append([name, arr.dtype.str, list(arr.shape), offset])
            chunks.append(arr.tobytes())
            offset += arr.nbytes
        header = {
            "kmgrammar": _version(),
            "kind": self.kind,
            "spec": self.spec,
            "options": self.options,
            "vocab": {"fingerprint": self.vocab.fingerprint, "vocab_size": self.vocab.vocab_size},
            "stats": self.stats,
            "arrays": table,
        }
        hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
        hbytes += b" " * ((-(len(hbytes) + _PREFIX.size)) % 16)
        body = hbytes + b"".join(chunks)
        return _PREFIX.pack(MAGIC, FORMAT_VERSION, len(hbytes), zlib.crc32(body), 0) + body

    @classmethod
    def from_bytes(cls, data: bytes, vocab) -> "CompiledGrammar":
        """Parse and check an artifact.

        Raises
        ------
        ArtifactError
            Not an artifact, truncated or corrupt (checksum).
        ArtifactVersionError
            Written by another artifact format version.
        VocabError
            Compiled for a different vocabulary.
        """
        header, arrays = read_artifact(data)
        fp = header["vocab"]["fingerprint"]
        if fp != vocab.fingerprint or header["vocab"]["vocab_size"] != vocab.vocab_size:
            raise VocabError(
                f"artifact was compiled for another vocabulary (fingerprint {fp[:12]}, "
                f"vocab_size {header['vocab']['vocab_size']}); recompile it for this tokenizer"
            )
        return cls(kind=header["kind"], spec=header["spec"], options=header["options"],
                   vocab=vocab, arrays=arrays, stats=header["stats"])

    def save(self, path) -> None:
        """Write the artifact to `path` atomically (temp file + rename)."""
        atomic_write(os.fspath(path), self.to_bytes())

    @classmethod
    def load(cls, path, vocab) -> "CompiledGrammar":
        """Read an artifact written by `save` (see `from_bytes` for the errors)."""
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ArtifactError(f"cannot read artifact {os.fspath(path)!r}: {e.strerror or e}") from None
        return cls.from_bytes(data, vocab)


def read_artifact(data: bytes) -> tuple:
    """Check an artifact's bytes; return (header dict, arrays dict of read-only views)."""
    if len(data) < _PREFIX.size:
        raise ArtifactError("not a kmgrammar artifact (file too short)")
    magic, version, hlen, crc, _ = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise ArtifactError("not a kmgrammar artifact (bad magic bytes)")
    if version != FORMAT_VERSION:
        raise ArtifactVersionError(
            f"artifact format version {version}, this kmgrammar reads version {FORMAT_VERSION}; recompile it"
        )
    body = memoryview(data)[_PREFIX.size :]
    if zlib.crc32(body) != crc:
        raise ArtifactError("kmgrammar artifact is corrupt or truncated (checksum mismatch)")
    try:
        header = json.loads(bytes(body[:hlen]))
        base = _PREFIX.size + hlen
        arrays = {}
        for name, dtype, shape, offset in header["arrays"]:
            dt = np.dtype(dtype)
            count = int(np.prod(shape)) if shape else 1
            arrays[name] = np.frombuffer(data, dt, count, base + offset).reshape(shape)
        missing = set(_REQUIRED.get(header["kind"], _ARRAY_NAMES)) - set(arrays)
        if missing:
            raise ValueError(f"missing arrays {sorted(missing)}")
    except (ValueError, KeyError, TypeError) as e:
        raise ArtifactError(f"kmgrammar artifact has a malformed header: {e}") from None
    return header, arrays


def atomic_write(path: str, data: bytes) -> None:
    """Write via a temp file in the same directory and rename: readers see old or new, never half."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".kmg")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _version() -> str:
    from . import __version__

    return __version__
