"""LlamaCpp backend (keymaker-parity row 29) through a stand-in ``Llama`` with llama-cpp-python's
interface (a real GGUF model cannot be shipped with the tests): streaming, hard mask, EOS, no
global patching."""

from __future__ import annotations

import asyncio
import math
import re

import numpy as np
import pytest

from kmgrammar.constraints import OptionsConstraint, RegexConstraint
from kmgrammar.models import BackendError, LlamaCpp, TokenTracker
from kmgrammar.prompt import Prompt

WORDS = [b"yes", b"no", b" maybe", b"12", b"hello", b" world"]


class FakeLlama:
    """Byte tokens + a few words + EOS; random but seeded logits; honours logits_processor."""

    def __init__(self, seed: int = 0) -> None:
        self.tokens = [bytes([i]) for i in range(256)] + WORDS + [b""]
        self.eos = len(self.tokens) - 1
        self.rng = np.random.default_rng(seed)
        self.calls: list[dict] = []

    def n_vocab(self) -> int:
        return len(self.tokens)

    def n_ctx(self) -> int:
        return 128

    def token_eos(self) -> int:
        return self.eos

    def detokenize(self, ids):
        return b"".join(self.tokens[i] for i in ids)

    def tokenize(self, data: bytes, add_bos: bool = False):
        out, i = [], 0
        while i < len(data):
            best = max((t for t, b in enumerate(self.tokens) if b and data.startswith(b, i)),
                       key=lambda t: len(self.tokens[t]))
            out.append(best)
            i += len(self.tokens[best])
        return out

    def create_completion(self, prompt, max_tokens=16, stream=True, logprobs=None, logits_processor=None, **kw):
        self.calls.append({"prompt": list(prompt), "max_tokens": max_tokens, **kw})
        ids = list(prompt)
        for _ in range(max_tokens):
            scores = self.rng.normal(size=len(self.tokens)).astype(np.float32)
            scores[self.eos] -= 2.0
            for proc in logits_processor or []:
                scores = proc(np.array(ids), scores)
            tid = int(np.argmax(scores))
            lse = float(np.log(np.exp(scores[np.isfinite(scores)]).sum()))
            if tid == self.eos:
                yield {"choices": [{"text": "", "logprobs": None, "finish_reason": "stop"}]}
                return
            ids.append(tid)
            yield {"choices": [{"text": self.tokens[tid].decode("utf-8", "replace"),
                                "logprobs": {"token_logprobs": [float(scores[tid]) - lse]}, "finish_reason": None}]}


def complete(model, constraint, **kw):
    return asyncio.run(Prompt("Q: ").complete(model=model, constraint=constraint, **kw)).completions[0]


def test_regex_options_and_eos():
    llm = FakeLlama()
    model = LlamaCpp(model=llm)
    assert model.max_total_tokens == 128
    for _ in range(3):
        c = complete(model, RegexConstraint(r"[0-9]{2,4}"), max_tokens=10)
        assert re.fullmatch(r"[0-9]{2,4}", c.text) and c.score is not None
    assert complete(model, OptionsConstraint(["yes", "no", "maybe"]), max_tokens=10) in ("yes", "no", "maybe")
    assert llm.calls[0]["temperature"] == 0.0 and llm.calls[0]["prompt"] == model.encode("Q: ")


def test_streaming_and_counts():
    events = []

    async def stream(c):
        events.append(c)

    tt = TokenTracker()
    model = LlamaCpp(model=FakeLlama(1))
    c = complete(model, RegexConstraint(r"(hello|yes)( world)?"), stream=stream, token_tracker=tt, max_tokens=5)
    assert "".join(e for e in events if e is not None) == c.text and events[-1] is None
    assert tt.counts[0].completion_tokens == len(events) - 1  # one streamed token per event


def test_needs_exactly_one_source():
    with pytest.raises(BackendError, match="exactly one"):
        LlamaCpp()


def test_missing_package_is_a_clear_error():
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        with pytest.raises(BackendError, match="pip install llama-cpp-python"):
            LlamaCpp("model.gguf")
    else:  # pragma: no cover
        pytest.skip("llama-cpp-python is installed")


def test_no_global_patching():
    assert math.log(8, 2) == 3
