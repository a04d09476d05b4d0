"""The public API: every name in __all__ exists, errors subclass the builtins users catch."""

from __future__ import annotations

import numpy as np
import pytest

import kmgrammar
from kmgrammar import errors


def test_all_names_exist_and_are_documented():
    assert kmgrammar.__version__
    for name in kmgrammar.__all__:
        obj = getattr(kmgrammar, name)
        if callable(obj) and name != "__version__":
            assert (obj.__doc__ or "").strip(), f"{name} has no docstring"


@pytest.mark.parametrize("cls, builtin", [
    (errors.CompileError, ValueError), (errors.GrammarSyntaxError, ValueError),
    (errors.UnsupportedFeatureError, ValueError), (errors.CompileLimitError, ValueError),
    (errors.VocabError, ValueError), (errors.ArtifactError, ValueError),
    (errors.ArtifactVersionError, errors.ArtifactError), (errors.MatcherError, ValueError),
])
def test_error_hierarchy(cls, builtin):
    assert issubclass(cls, errors.KmgrammarError) and issubclass(cls, builtin)


def test_bitmask_buffers_of_other_shapes():
    vocab = kmgrammar.Vocabulary.from_bytes([b"a", b"b", b"<eos>"], eos_token_ids=[2])
    m = kmgrammar.Matcher(kmgrammar.compile_regex("a+", vocab, cache=False))
    wide = np.full((2, 4), -1, np.int32)  # a buffer sized for padded logits
    m.fill_next_token_bitmask(wide, index=1)
    assert wide[1].tolist() == [0b001, 0, 0, 0] and (wide[0] == -1).all()
    flat = np.zeros(1, np.int32)
    m.fill_next_token_bitmask(flat)
    assert flat.tolist() == [0b001]
    with pytest.raises(kmgrammar.MatcherError, match="allocate_token_bitmask"):
        m.fill_next_token_bitmask(np.zeros((1, 0), np.int32))


def test_torch_bitmask_and_logits():
    torch = pytest.importorskip("torch")
    vocab = kmgrammar.Vocabulary.from_bytes([b"a", b"b", b"<eos>"], eos_token_ids=[2])
    m = kmgrammar.Matcher(kmgrammar.compile_regex("a+b", vocab, cache=False))
    bm = torch.from_numpy(kmgrammar.allocate_token_bitmask(1, vocab.vocab_size))
    m.fill_next_token_bitmask(bm)
    logits = torch.zeros(1, 40)
    kmgrammar.apply_token_bitmask_inplace(logits, bm)
    assert torch.isfinite(logits[0]).nonzero().flatten().tolist() == [0]


@pytest.mark.parametrize("extra", [{}, {"any": {}}], ids=["regular", "context-free"])
def test_an_exceeded_time_limit_names_the_callers_limit(cl100k, extra):
    """Phases run on what is left of the budget; the error names the limit the user set."""
    props = {f"p{i}": {"type": "string", "maxLength": 3000} for i in range(30)}
    schema = {"type": "object", "properties": dict(props, **extra), "additionalProperties": False}
    with pytest.raises(errors.CompileLimitError, match=r"time_limit=0\.3s ") as got:
        kmgrammar.compile_json_schema(schema, cl100k, cache=False, time_limit=0.3)
    assert got.value.limit == "time_limit"


def test_an_exceeded_state_limit_is_named(cl100k):
    with pytest.raises(errors.CompileLimitError, match=r"max_states=50 ") as got:
        kmgrammar.compile_regex("[a-z]{0,200}", cl100k, cache=False, max_states=50)
    assert got.value.limit == "max_states"
