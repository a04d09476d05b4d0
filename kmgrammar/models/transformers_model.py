"""Local Hugging Face ``transformers`` models: masks applied to real logits (extra ``hf``, needs torch).

:class:`Transformers` runs its own generation loop: one forward pass per sampled token with the
KV cache carried across steps, forced text fed in one pass without sampling, the constraint's
bitmask applied to the logits before choosing. Forward passes run in a worker thread so the
event loop stays free. :class:`KmgrammarLogitsProcessor` applies the same masks inside
``model.generate`` for users of the Hugging Face API.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from typing import Any, AsyncIterator

import numpy as np

from .base import CompletionRequest, Decoder, DecodingStrategy, Model, Piece
from .engine import utf8_complete_prefix
from .errors import BackendError, ConstraintViolation


def _require_torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without torch
        raise BackendError(
            f"the Transformers backend needs torch and transformers ({exc}); "
            f"pip install 'kmgrammar[hf]' torch"
        ) from None
    return torch


class Transformers(Model):
    """A local ``transformers`` causal LM with its tokenizer.

    Parameters
    ----------
    model : PreTrainedModel or str
        A loaded model, or a name/path for ``AutoModelForCausalLM.from_pretrained``.
    tokenizer : tokenizer or str, optional
        A Hugging Face (fast) tokenizer or a name/path (default: same as ``model``).
    vocab : Vocabulary, optional
        Override the vocabulary built from the tokenizer (its size must match the logits).
    max_total_tokens : int, optional
        Context size (default: the model config's ``max_position_embeddings``).
    device : str, optional
        Where inputs go (default: the model's device).
    """

    def __init__(self, model: Any, tokenizer: Any = None, *, vocab: Any = None,
                 max_total_tokens: int | None = None, device: str | None = None) -> None:
        _require_torch()
        if isinstance(model, str):
            from transformers import AutoModelForCausalLM

            tokenizer = tokenizer if tokenizer is not None else model
            model = AutoModelForCausalLM.from_pretrained(model)
        if tokenizer is None:
            raise BackendError("Transformers needs a tokenizer with a loaded model")
        if isinstance(tokenizer, str):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(tokenizer)
        self.model = model.eval()
        self.tokenizer = tokenizer
        cfg = model.config
        self.model_name = getattr(cfg, "_name_or_path", "") or type(model).__name__
        n_logits = int(model.get_output_embeddings().weight.shape[0])
        if vocab is None:
            from ..vocab import Vocabulary

            vocab = Vocabulary.from_hf(tokenizer, vocab_size=n_logits)
        if vocab.vocab_size != n_logits:
            raise BackendError(f"vocab has {vocab.vocab_size} ids but the model has {n_logits} logits")
        self._vocab = vocab
        self.max_total_tokens = int(max_total_tokens or getattr(cfg, "max_position_embeddings", 2048))
        self.device = device or getattr(model, "device", "cpu")
        params = inspect.signature(model.forward).parameters
        # transformers 5 renamed past_key_values to cache.
        self._cache_kw = "cache" if "cache" in params else "past_key_values"

    @property
    def vocab(self) -> Any:
        return self._vocab

    @property
    def bos_token_id(self) -> int | None:
        return getattr(self.tokenizer, "bos_token_id", None)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    # generation -------------------------------------------------------------------------
    def _forward(self, ids: list[int], cache: Any) -> tuple[Any, Any]:
        torch = _require_torch()
        with torch.no_grad():
            x = torch.tensor([ids], dtype=torch.long, device=self.device)
            out = self.model(input_ids=x, use_cache=True, **{self._cache_kw: cache})
        # transformers 5 returns .cache (reading .past_key_values warns); 4.x .past_key_values.
        new_cache = out.get("cache") if hasattr(out, "get") else None
        if new_cache is None:
            new_cache = getattr(out, "past_key_values", None)
        return out.logits[0, -1].float(), new_cache

    def _choose(self, logits: Any, decoder: Decoder, gen: Any) -> tuple[int, float]:
        torch = _require_torch()
        logp = torch.log_softmax(logits, dim=-1)
        if decoder.strategy is DecodingStrategy.GREEDY:
            tid = int(torch.argmax(logits))
            return tid, float(logp[tid])
        scaled = logits / (decoder.temperature if decoder.temperature else 1.0)
        if decoder.top_k:
            kth = torch.topk(scaled, min(decoder.top_k, scaled.numel())).values[-1]
            scaled = torch.where(scaled < kth, torch.full_like(scaled, -math.inf), scaled)
        probs = torch.softmax(scaled, dim=-1)
        if decoder.top_p is not None and decoder.top_p < 1:
            sp, idx = torch.sort(probs, descending=True)
            keep = torch.cumsum(sp, 0) - sp < decoder.top_p
            mask = torch.zeros_like(probs, dtype=torch.bool)
            mask[idx[keep]] = True
            probs = torch.where(mask, probs, torch.zeros_like(probs))
            probs = probs / probs.sum()
        tid = int(torch.multinomial(probs, 1, generator=gen))
        return tid, float(logp[tid])

    async def complete(self, request: CompletionRequest) -> AsyncIterator[Piece]:
        """Generate with the constraint's mask on every step (see the module docstring)."""
        torch = _require_torch()
        from ..matcher import allocate_token_bitmask, apply_token_bitmask_inplace

        m = request.matcher
        vocab = self._vocab
        eos = set(int(t) for t in vocab.eos_token_ids)
        decoder = request.decoder or Decoder()
        gen = torch.Generator().manual_seed(int((request.gen_kwargs or {}).get("seed", 0)))
        bitmask = allocate_token_bitmask(1, vocab.vocab_size)
        pending = self.encode(request.prompt)
        if not pending:
            bos = self.bos_token_id
            pending = [bos if bos is not None else next(iter(eos))]
        cache = None
        used = 0
        buf = b""  # accepted bytes not yet a whole UTF-8 character
        count = request.token_count

        done: list[str] = []  # committed text, carried by ConstraintViolation as the valid prefix

        def emit(tokens: list[int]) -> str:
            nonlocal buf
            buf += b"".join(vocab.token_bytes[t] for t in tokens)
            ok = utf8_complete_prefix(buf)
            buf = buf[len(ok):]
            piece = ok.decode("utf-8", errors="replace")  # only unconstrained output can be invalid
            done.append(piece)
            return piece

        if count is not None:
            count.add_prompt_tokens(len(pending))
        step_filter = None
        if request.constraint is not None and hasattr(request.constraint, "step_filter"):
            step_filter = request.constraint.step_filter(self)
        history = list(pending)
        while used < request.max_tokens:
            if m is not None:
                forced = m.forced_bytes()
                if forced:
                    ids = [int(t) for t in vocab.encode(forced.decode("utf-8", errors="ignore"))] if utf8_complete_prefix(forced) else []
                    ids = ids[: request.max_tokens - used]
                    took = []
                    for t in ids:
                        if not m.accept_token(t):
                            break
                        took.append(t)
                    if took:
                        # Forced tokens go into the next forward pass with no sampling.
                        pending += took
                        history += took
                        used += len(took)
                        yield Piece(emit(took), 0.0, forced=True, n_tokens=len(took))
                        continue
                if m.is_terminated():
                    break
            logits, cache = await asyncio.to_thread(self._forward, pending, cache)
            if m is not None:
                m.fill_next_token_bitmask(bitmask)
                apply_token_bitmask_inplace(logits[None, :], torch.from_numpy(bitmask))
            if step_filter is not None:
                keep = await asyncio.to_thread(step_filter, history)
                filtered = torch.where(keep, logits, torch.full_like(logits, -math.inf))
                if torch.isfinite(filtered).any():  # else: the helper and the mask disagree
                    logits = filtered
            tid, lp = self._choose(logits, decoder, gen)
            if not math.isfinite(lp):
                raise ConstraintViolation("no token the constraint allows is possible for the model",
                                          prefix="".join(done))
            if tid in eos:
                if m is not None and not m.accept_token(tid):  # pragma: no cover - the mask forbids it
                    raise ConstraintViolation("EOS before the constraint was complete", prefix="".join(done))
                break
            if m is not None and not m.accept_token(tid):  # pragma: no cover - the mask forbids it
                raise ConstraintViolation(f"the model chose token {tid}, which the mask forbids", prefix="".join(done))
            pending = [tid]
            history.append(tid)
            used += 1
            if count is not None:
                count.add_completion_tokens(1)
            text = emit([tid])
            yield Piece(text, lp, n_tokens=1)
        if m is not None and not m.is_accepting():
            raise ConstraintViolation(
                f"max_tokens={request.max_tokens} reached before the constraint was satisfied",
                prefix="".join(done),
            )


class KmgrammarLogitsProcessor:
    """Masks logits in ``model.generate`` with a compiled constraint (one matcher per batch row).

    Parameters
    ----------
    compiled : CompiledGrammar
        The constraint, compiled for the model's vocabulary.
    prompt_length : int
        Number of prompt tokens in ``input_ids`` (tokens after it are the completion).

    Examples
    --------
    >>> proc = KmgrammarLogitsProcessor(kmgrammar.compile_regex("[0-9]+", vocab), prompt_length=n)
    >>> model.generate(ids, logits_processor=LogitsProcessorList([proc]))
    """

    def __init__(self, compiled: Any, prompt_length: int) -> None:
        self.compiled = compiled
        self.prompt_length = prompt_length
        self._matchers: list[Any] = []
        self._bitmask: Any = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        torch = _require_torch()
        from ..matcher import Matcher, allocate_token_bitmask, apply_token_bitmask_inplace

        batch = int(input_ids.shape[0])
        if not self._matchers:
            self._matchers = [Matcher(self.compiled) for _ in range(batch)]
            self._bitmask = allocate_token_bitmask(batch, self.compiled.vocab.vocab_size)
        for i, m in enumerate(self._matchers):
            done = m.num_steps
            new = input_ids[i, self.prompt_length + done:].tolist()
            for t in new:
                if not m.is_terminated():
                    m.accept_token(int(t))
            m.fill_next_token_bitmask(self._bitmask, i)
        apply_token_bitmask_inplace(scores, torch.from_numpy(np.ascontiguousarray(self._bitmask)))
        return scores
