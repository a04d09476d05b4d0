"""Matcher: one generation's position in a compiled constraint; masks are table lookups.

A `CompiledGrammar` is immutable and shared; each generation (or each beam/draft branch) gets
its own `Matcher`, which holds only the current state and the history needed for rollback.
"""

from __future__ import annotations

import numpy as np

from .artifact import CompiledGrammar, row_token_ids
from .errors import MatcherError


class Matcher:
    """Walks a `CompiledGrammar` token by token.

    Parameters
    ----------
    compiled : CompiledGrammar
        The constraint; shared, never modified.

    Examples
    --------
    >>> m = Matcher(compile_regex(r"[0-9]+", vocab))
    >>> bitmask = allocate_token_bitmask(1, vocab.vocab_size)
    >>> m.fill_next_token_bitmask(bitmask)
    >>> m.accept_token(token_id)
    """

    __slots__ = ("_g", "_table", "_nc", "_cls", "_tb", "_eos", "_special", "_state", "_terminated", "_history")

    def __new__(cls, compiled=None, *args, **kwargs):
        # Context-free artifacts are served by the Earley-based subclass (cfg_matcher.py).
        if cls is Matcher and getattr(compiled, "kind", None) == "cfg":
            from .cfg_matcher import GrammarMatcher

            cls = GrammarMatcher
        return object.__new__(cls)

    def __init__(self, compiled: CompiledGrammar):
        self._g = compiled
        self._table = compiled.dfa.table()
        self._nc = compiled.dfa.trans.shape[1]
        self._cls = compiled.dfa.classes.tolist()
        self._tb = compiled.vocab.token_bytes
        self._eos = frozenset(compiled.vocab.eos_token_ids)
        self._special = compiled.vocab.special_token_ids
        self._state = 0
        self._terminated = False
        self._history: list = []

    @property
    def compiled(self) -> CompiledGrammar:
        return self._g

    def _walk(self, data: bytes) -> int:
        table, cls, nc = self._table, self._cls, self._nc
        off = self._state * nc
        for b in data:
            off = table[off + cls[b]]
            if off < 0:
                return -1
        return off // nc

    def accept_token(self, token_id: int) -> bool:
        """Advance by one token. Returns False (state unchanged) if the token is not allowed."""
        if self._terminated:
            return False
        if token_id in self._eos:
            if not self._g._accept[self._state]:
                return False
            self._history.append(self._state)
            self._terminated = True
            return True
        if token_id in self._special or not 0 <= token_id < len(self._tb):
            return False
        s = self._walk(self._tb[token_id])
        if s < 0:
            return False
        self._history.append(self._state)
        self._state = s
        return True

    def accept_string(self, text) -> bool:
        """Advance by the bytes of `text` (str or bytes) as one step; False leaves the state unchanged."""
        if self._terminated:
            return False
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        s = self._walk(data)
        if s < 0:
            return False
        self._history.append(self._state)
        self._state = s
        return True

    def fill_next_token_bitmask(self, bitmask, index: int = 0) -> None:
        """Write the allowed-token mask into row `index` of `bitmask` (int32, bit i % 32 of word i // 32).

        `bitmask` is a numpy array (or a CPU torch tensor) of shape [batch, words] or [words].
        After termination only the EOS tokens are allowed.
        """
        g = self._g
        if self._terminated:
            row = g.eos_row()
        else:  # the hot path: two list lookups and one copy (see CompiledGrammar.mask_row)
            row = g._rows[g._state_row[self._state]]
            if row is None:  # not kept (yet): written from its stored form when the buffer allows
                out = _plain_row(bitmask, index, g.n_words)
                if out is not None:
                    g.write_row(self._state, out)
                    return
                row = g.mask_row(self._state)
        try:
            out = bitmask[index]
            if out.shape != row.shape:  # np.copyto would broadcast a 1-word row
                raise ValueError
            np.copyto(out, row)
        except (TypeError, ValueError, IndexError, AttributeError):
            _fill_other(bitmask, index, row)

    def allowed_token_ids(self) -> np.ndarray:
        """The allowed token ids (EOS included when the output is complete), ascending int32.

        The array is shared between calls and read-only: copy it before modifying.
        """
        if self._terminated:
            return row_token_ids(self._g.eos_row(), self._g.vocab_size)
        return self._g.allowed_ids(self._state)

    def is_accepting(self) -> bool:
        """True when the output so far is complete (EOS is allowed now), or after EOS."""
        return self._terminated or bool(self._g._accept[self._state])

    def is_terminated(self) -> bool:
        """True once an EOS token was accepted."""
        return self._terminated

    def forced_bytes(self) -> bytes:
        """The bytes every valid continuation must start with (empty when there is a choice)."""
        if self._terminated:
            return b""
        out = bytearray()
        s, forced, table, cls, nc = self._state, self._g._forced, self._table, self._cls, self._nc
        while forced[s] >= 0:
            b = forced[s]
            out.append(b)
            s = table[s * nc + cls[b]] // nc
        return bytes(out)

    def rollback(self, n: int = 1) -> None:
        """Undo the last `n` accepted steps (tokens or strings)."""
        if n < 0 or n > len(self._history):
            raise MatcherError(f"cannot roll back {n} steps: only {len(self._history)} were accepted")
        if n == 0:
            return
        self._state = self._history[-n]
        del self._history[-n:]
        self._terminated = False

    def reset(self) -> None:
        """Back to the start state."""
        self._state = 0
        self._terminated = False
        self._history.clear()

    def copy(self) -> "Matcher":
        """An independent matcher at the same position (for beams or speculative drafts)."""
        m = Matcher.__new__(Matcher)
        for name in Matcher.__slots__:
            setattr(m, name, getattr(self, name))
        m._history = list(self._history)
        return m

    @property
    def num_steps(self) -> int:
        """Accepted steps that `rollback` can undo."""
        return len(self._history)


def _plain_row(bitmask, index: int, n_words: int):
    """Row `index` of a [batch, n_words] int32 numpy bitmask, or None for anything else."""
    if type(bitmask) is np.ndarray and bitmask.ndim == 2 and bitmask.dtype == np.int32:
        out = bitmask[index]
        if out.shape[0] == n_words:
            return out
    return None


def _fill_other(bitmask, index: int, row: np.ndarray) -> None:
    """The slow path of a fill: torch tensors, 1-D buffers, rows wider than the vocabulary."""
    if not isinstance(bitmask, np.ndarray):
        bitmask = _numpy_view(bitmask)
    out = bitmask[index] if bitmask.ndim == 2 else bitmask
    if out.ndim != 1 or out.shape[0] < row.shape[0]:
        raise MatcherError(
            f"bitmask row has shape {out.shape}, need at least {row.shape[0]} int32 words "
            "(use allocate_token_bitmask(batch, vocab_size))"
        )
    out[row.shape[0] :] = 0
    np.copyto(out[: row.shape[0]], row, casting="unsafe")


def _numpy_view(t) -> np.ndarray:
    try:
        return t.numpy()  # CPU torch tensors share memory with the view
    except (AttributeError, TypeError, RuntimeError):
        raise MatcherError("bitmask must be a numpy array or a CPU torch tensor of int32") from None


def allocate_token_bitmask(batch_size: int, vocab_size: int) -> np.ndarray:
    """An int32 bitmask [batch_size, ceil(vocab_size / 32)] with every token allowed."""
    return np.full((batch_size, (vocab_size + 31) // 32), -1, dtype=np.int32)


def apply_token_bitmask_inplace(logits, bitmask) -> None:
    """Set logits of disallowed tokens to -inf, in place (numpy arrays or torch tensors).

    `logits` is [batch, n] or [n]; columns past the bitmask's width (padded vocabularies) are masked.
    """
    if isinstance(logits, np.ndarray):
        bm = np.asarray(bitmask)
        lg = logits if logits.ndim == 2 else logits[None, :]
        bm = bm if bm.ndim == 2 else bm[None, :]
        n = lg.shape[-1]
        allowed = np.unpackbits(np.ascontiguousarray(bm).view(np.uint8), axis=-1, bitorder="little")
        allowed = allowed[:, :n].astype(bool)
        if allowed.shape[1] < n:
            allowed = np.pad(allowed, ((0, 0), (0, n - allowed.shape[1])))
        lg[~allowed] = -np.inf
        return
    import torch  # only reached with a torch tensor

    bm = bitmask if isinstance(bitmask, torch.Tensor) else torch.from_numpy(np.asarray(bitmask))
    lg = logits if logits.dim() == 2 else logits.unsqueeze(0)
    bm = bm if bm.dim() == 2 else bm.unsqueeze(0)
    n = lg.shape[-1]
    shifts = torch.arange(32, device=bm.device, dtype=torch.int32)
    bits = ((bm.to(lg.device).unsqueeze(-1) >> shifts) & 1).reshape(bm.shape[0], -1).bool()
    allowed = torch.zeros((bm.shape[0], n), dtype=torch.bool, device=lg.device)
    w = min(n, bits.shape[1])
    allowed[:, :w] = bits[:, :w].to(lg.device)
    lg.masked_fill_(~allowed, float("-inf"))
