"""Shared fixtures (the real cl100k vocabulary, a private disk cache, the ../shared data folder) and
the Lark differential tests' reference, `lark_accepts`."""

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
