"""Shared fixtures (the real cl100k vocabulary, a private disk cache, the ../shared data folder) and
the grammar differential tests' helpers: the reference `lark_accepts`, mask lookups and random
tokenizations."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Every test writes artifacts into a temporary cache, never into ~/.cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("KMGRAMMAR_CACHE_DIR", str(tmp_path_factory.mktemp("kmgcache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def cl100k():
    import kmgrammar

    return kmgrammar.Vocabulary.from_tiktoken("cl100k_base")


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared (test corpora and vocabularies) is not present")
    return SHARED


def lark_accepts(parser, s: str) -> bool:
    """Whether a Lark parser parses `s` (the differential tests' reference)."""
    from lark.exceptions import LarkError

    try:
        parser.parse(s)
        return True
    except LarkError:
        return False


def allowed(m, bm, t: int) -> bool:
    """Whether the matcher's next-token mask allows token `t` (`bm`: a one-row bitmask buffer)."""
    m.fill_next_token_bitmask(bm)
    return bool((int(bm[0][t >> 5]) >> (t & 31)) & 1)


_INDEX: dict = {}


def byte_index(vocab) -> dict:
    """token bytes -> one token id with those bytes (special tokens excluded), per vocabulary."""
    if id(vocab) not in _INDEX:
        d = {}
        for t, b in enumerate(vocab.token_bytes):
            if b and t not in vocab.special_token_ids:
                d.setdefault(b, t)
        _INDEX[id(vocab)] = d
    return _INDEX[id(vocab)]


def random_split(data: bytes, vocab, rng) -> list:
    """A random tokenization of `data` with `vocab`'s tokens (falls back to single bytes)."""
    index = byte_index(vocab)
    out, i = [], 0
    while i < len(data):
        options = [j for j in range(i + 1, min(len(data), i + 8) + 1) if data[i:j] in index]
        j = rng.choice(options) if options else i + 1
        out.append(index[data[i:j]])
        i = j
    return out
