"""llama.cpp models through llama-cpp-python: the constraint's mask as a ``logits_processor``.

llama-cpp-python is optional and imported only when a model path is given. Generation runs in a
worker thread; pieces come back to the event loop through a queue as llama.cpp streams them.
Nothing is patched globally.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, AsyncIterator

import numpy as np

from .base import CompletionRequest, Decoder, DecodingStrategy, Model, Piece
from .errors import BackendError, ConstraintViolation


def _vocab_from_llama(llama: Any) -> Any:
    from ..vocab import Vocabulary

    n = int(llama.n_vocab())
    eos = int(llama.token_eos())
    tokens = [bytes(llama.detokenize([i])) for i in range(n)]
    return Vocabulary.from_bytes(tokens, eos_token_ids=[eos], special_token_ids=[eos],
                                 encode=lambda text: list(llama.tokenize(text.encode("utf-8"), add_bos=False)))


class LlamaCpp(Model):
    """A GGUF model run by llama.cpp (``pip install llama-cpp-python``).

    Parameters
    ----------
    model_path : str, optional
        A GGUF file (its vocabulary is read with ``Vocabulary.from_gguf``).
    model : llama_cpp.Llama, optional
        A loaded model instead of ``model_path`` (exactly one of the two).
    vocab : Vocabulary, optional
        Override the vocabulary (default: from the GGUF file, else from the model's detokenizer).
    max_total_tokens : int, optional
        Context size (default: the model's ``n_ctx()``).
    **llama_kwargs
        Passed to ``llama_cpp.Llama`` (e.g. ``n_ctx``, ``n_threads``).
    """

    def __init__(self, model_path: str | None = None, model: Any = None, *, vocab: Any = None,
                 max_total_tokens: int | None = None, **llama_kwargs: Any) -> None:
        if (model_path is None) == (model is None):
            raise BackendError("LlamaCpp needs exactly one of model_path= and model=")
        if model is None:
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise BackendError(f"LlamaCpp needs llama-cpp-python ({exc}); pip install llama-cpp-python") from None
            model = Llama(model_path=model_path, verbose=False, **llama_kwargs)
            if vocab is None:
                from ..vocab import Vocabulary

                vocab = Vocabulary.from_gguf(model_path, vocab_size=int(model.n_vocab()))
        self.model = model
        self._vocab = vocab if vocab is not None else _vocab_from_llama(model)
        self.model_name = str(model_path or getattr(model, "model_path", "llama.cpp"))
        self.max_total_tokens = int(max_total_tokens or model.n_ctx())

    @property
    def vocab(self) -> Any:
        return self._vocab

    def encode(self, text: str) -> list[int]:
        return list(self.model.tokenize(text.encode("utf-8"), add_bos=False))

    def decode(self, ids: list[int]) -> str:
        return bytes(self.model.detokenize(list(ids))).decode("utf-8", errors="replace")

    def _sampling(self, decoder: Decoder | None) -> dict[str, Any]:
        d = decoder or Decoder()
        if d.strategy is DecodingStrategy.GREEDY:
            return {"temperature": 0.0, "top_k": 1}
        out: dict[str, Any] = {}
        if d.temperature is not None:
            out["temperature"] = d.temperature
        if d.top_p is not None:
            out["top_p"] = d.top_p
        if d.top_k is not None:
            out["top_k"] = d.top_k
        return out

    async def complete(self, request: CompletionRequest) -> AsyncIterator[Piece]:
        """Stream a completion with the mask applied by llama.cpp's ``logits_processor``."""
        m = request.matcher
        prompt_ids = self.encode(request.prompt)
        n_prompt = len(prompt_ids)
        bitmask = None
        if m is not None:
            from ..matcher import allocate_token_bitmask, apply_token_bitmask_inplace

            bitmask = allocate_token_bitmask(1, self._vocab.vocab_size)

        def mask(input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
            # llama.cpp passes every id so far; advance the matcher over the new ones.
            for t in list(input_ids[n_prompt + m.num_steps:]):
                m.accept_token(int(t))
            m.fill_next_token_bitmask(bitmask)
            apply_token_bitmask_inplace(scores, bitmask[0])
            return scores

        kwargs: dict[str, Any] = dict(self._sampling(request.decoder), **(request.gen_kwargs or {}))
        if m is not None:
            kwargs["logits_processor"] = _processor_list([mask])
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()

        def worker() -> None:
            try:
                for chunk in self.model.create_completion(prompt_ids, max_tokens=request.max_tokens, stream=True,
                                                          logprobs=1, **kwargs):
                    if stop.is_set():
                        break
                    loop.call_soon_threadsafe(queue.put_nowait, ("chunk", chunk))
                loop.call_soon_threadsafe(queue.put_nowait, ("end", None))
            except BaseException as exc:  # handed to the event loop, raised there
                loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))

        thread = threading.Thread(target=worker, name="kmgrammar-llamacpp", daemon=True)
        thread.start()
        count = request.token_count
        if count is not None:
            count.add_prompt_tokens(n_prompt)
        produced: list[str] = []
        try:
            while True:
                kind, item = await queue.get()
                if kind == "error":
                    raise BackendError(f"llama.cpp failed: {item}") from item
                if kind == "end":
                    break
                choice = item["choices"][0]
                text = choice.get("text") or ""
                lps = ((choice.get("logprobs") or {}).get("token_logprobs")) or []
                lp = None if not lps or any(x is None for x in lps) else float(sum(lps))
                if text:
                    produced.append(text)
                    n = max(1, len(lps))
                    if count is not None:
                        count.add_completion_tokens(n)
                    yield Piece(text, lp, n_tokens=n)
        finally:
            stop.set()
        # The processor only sees a token before the next one is sampled: check the whole text.
        if m is not None:
            m.reset()
        if m is not None and not (m.accept_string("".join(produced)) and m.is_accepting()):
            raise ConstraintViolation(
                f"max_tokens={request.max_tokens} reached before the constraint was satisfied",
                prefix="".join(produced))


def _processor_list(fns: list) -> Any:
    try:
        from llama_cpp import LogitsProcessorList
    except ImportError:  # a stand-in Llama in tests: a plain list of callables works the same
        return list(fns)
    return LogitsProcessorList(fns)
