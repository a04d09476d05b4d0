"""OpenAI (and OpenAI-compatible) API backends on the official async ``openai`` client.

APIs give no logits, so constraints are enforced by sample-and-check
(:mod:`kmgrammar.models.engine`): stream, check each token with the matcher, cut at the first
invalid one; ``logit_bias`` (at most 300 entries, never truncated) forces a small allowed set
or bans rejected tokens; forced text is appended without a request.
"""

from __future__ import annotations

import asyncio
import re
import warnings
from typing import Any, AsyncIterator

from .base import ChatModel, Decoder, DecodingStrategy, Model, Step
from .chat import DEFAULT_ROLES, split_segments
from .errors import BackendError, PromptError

# OpenAI rejects logit_bias maps with more entries than this.
LOGIT_BIAS_LIMIT = 300

# Keys the backend sets itself; gen_kwargs may not override them.
_CORE_KEYS = frozenset({"messages", "prompt", "model", "logit_bias", "max_tokens", "stream"})


def _tokenizer_for(model_name: str) -> str:
    import tiktoken.model

    try:
        return tiktoken.model.encoding_name_for_model(model_name)
    except KeyError:
        raise PromptError(
            f"no tiktoken encoding is known for model {model_name!r}; pass tokenizer= "
            f"(a kmgrammar.Vocabulary, a tiktoken encoding name, or a Hugging Face tokenizer)"
        ) from None


def _load_vocab(tokenizer: Any) -> Any:
    from ..vocab import Vocabulary

    if isinstance(tokenizer, Vocabulary):
        return tokenizer
    if isinstance(tokenizer, str) or hasattr(tokenizer, "_mergeable_ranks"):
        return Vocabulary.from_tiktoken(tokenizer)
    return Vocabulary.from_hf(tokenizer)


class _OpenAIBase(Model):
    """Shared plumbing of :class:`OpenAIChat` and :class:`OpenAICompletion`."""

    max_token_selection = LOGIT_BIAS_LIMIT
    supports_banned_tokens = True
    try_first = True
    default_model = "gpt-3.5-turbo"
    default_context = 4096

    def __init__(
        self,
        model_name: str | None = None,
        client: Any = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        tokenizer: Any = None,
        max_total_tokens: int | None = None,
        max_retries: int = 4,
        retry_sleep_time: float = 0.25,
        logprobs: bool = True,
        native_json: bool = False,
        addtl_create_kwargs: dict | None = None,
    ) -> None:
        self.model_name = model_name or self.default_model
        self._client = client
        self._client_args = {k: v for k, v in (("base_url", base_url), ("api_key", api_key)) if v is not None}
        self._tokenizer = tokenizer if tokenizer is not None else _tokenizer_for(self.model_name)
        self._vocab: Any = None
        self.max_total_tokens = int(max_total_tokens or self.default_context)
        self.max_retries = max_retries
        self.retry_sleep_time = retry_sleep_time
        self.logprobs = logprobs
        self.native_json = native_json
        self.addtl_create_kwargs = dict(addtl_create_kwargs or {})

    @property
    def client(self) -> Any:
        """The ``openai.AsyncOpenAI`` client, built on first use from ``base_url`` / ``api_key``
        or, without them, the client's own defaults (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``)."""
        if self._client is None:
            import openai

            try:
                # Retries are ours (counted, with backoff, only before the first streamed token).
                self._client = openai.AsyncOpenAI(max_retries=0, **self._client_args)
            except openai.OpenAIError as exc:
                raise BackendError(f"cannot build the OpenAI client: {exc}") from None
        return self._client

    @property
    def vocab(self) -> Any:
        if self._vocab is None:
            self._vocab = _load_vocab(self._tokenizer)
        return self._vocab

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_name!r})"

    # request --------------------------------------------------------------------------------
    def _decoding(self, decoder: Decoder | None) -> dict[str, Any]:
        d = decoder or Decoder()
        out: dict[str, Any] = {}
        if d.strategy is DecodingStrategy.GREEDY:
            out["temperature"] = 0.0
        else:
            if d.temperature is not None:
                out["temperature"] = d.temperature
            if d.top_p is not None:
                out["top_p"] = d.top_p
            if d.top_k is not None:
                warnings.warn("the OpenAI API has no top_k; it is not sent", stacklevel=4)
        return out

    def _payload(self, text: str, completion_start: int | None) -> dict[str, Any]:
        raise NotImplementedError

    def _parse(self, chunk: Any) -> Step | None:
        raise NotImplementedError

    async def _create(self, payload: dict, timeout: float | None) -> Any:
        raise NotImplementedError

    async def generate(
        self,
        text: str,
        max_tokens: int = 1,
        selected_tokens: set[int] | None = None,
        decoder: Decoder | None = None,
        timeout: float | None = None,
        token_counter: Any = None,
        gen_kwargs: dict | None = None,
        stream: bool = True,
        banned_tokens: list[int] | None = None,
        completion_start: int | None = None,
        constraint: Any = None,
    ) -> AsyncIterator[Step]:
        """Stream up to ``max_tokens`` tokens (see :meth:`Model.generate`).

        ``selected_tokens`` becomes ``logit_bias`` +100 and ``banned_tokens`` -100; more than
        300 entries raises instead of being truncated.
        """
        import openai

        bias: dict[str, int] = {}
        if selected_tokens is not None:
            bias.update({str(int(t)): 100 for t in selected_tokens})
        for t in banned_tokens or ():
            bias[str(int(t))] = -100
        if len(bias) > LOGIT_BIAS_LIMIT:
            raise BackendError(f"logit_bias would need {len(bias)} entries; the API allows {LOGIT_BIAS_LIMIT}")
        payload: dict[str, Any] = {**self.addtl_create_kwargs, **self._decoding(decoder)}
        for k, v in (gen_kwargs or {}).items():
            if k in _CORE_KEYS:
                raise PromptError(f"gen_kwargs may not set {k!r}: the backend sets it")
            payload[k] = v
        payload.update(self._payload(text, completion_start))
        payload.update(model=self.model_name, max_tokens=int(max_tokens), stream=True)
        if bias:
            payload["logit_bias"] = bias
        if self.native_json and constraint is not None and hasattr(constraint, "schema"):
            payload.setdefault("response_format", {"type": "json_schema", "json_schema": {
                "name": "output", "schema": constraint.schema, "strict": True}})
        if token_counter is not None:
            token_counter.add_prompt_tokens(len(self.encode(text)))  # all of it is sent, partial included

        transient = (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError)
        for attempt in range(self.max_retries + 1):
            try:
                response = await self._create(payload, timeout)
                break
            except transient as exc:  # APITimeoutError is an APIConnectionError
                if attempt == self.max_retries:
                    raise BackendError(
                        f"{self.model_name}: {type(exc).__name__} after {attempt + 1} attempts: {exc}"
                    ) from exc
                await asyncio.sleep(self.retry_sleep_time * 2**attempt)
            except openai.APIStatusError as exc:
                raise BackendError(f"{self.model_name}: HTTP {exc.status_code}: {exc.message}") from exc
            except TypeError as exc:  # the client refuses an unknown argument before sending
                raise PromptError(f"{self.model_name}: bad request argument ({exc}); "
                                  f"pass server-specific options as gen_kwargs={{'extra_body': {{...}}}}") from None
        try:
            async for chunk in response:
                step = self._parse(chunk)
                if step is None:
                    continue
                if token_counter is not None and step.text:
                    token_counter.add_completion_tokens(getattr(step, "_n", None) or len(self.encode(step.text)))
                yield step
        except (openai.APIConnectionError, openai.APIError) as exc:
            raise BackendError(f"{self.model_name}: stream broke: {exc}") from exc
        finally:
            await response.close()


def _closed(prompt_text: str) -> bool:
    return re.search(r"%/\w+%\s*$", prompt_text) is not None


class OpenAIChat(_OpenAIBase, ChatModel):
    """A chat model (``/chat/completions``); role markup becomes messages.

    Parameters
    ----------
    model_name : str
        Default ``"gpt-3.5-turbo"``.
    client : openai.AsyncOpenAI, optional
        A ready client; else one is built on first use from ``base_url``/``api_key`` or the
        client's defaults (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``).
    base_url, api_key : str, optional
        For any OpenAI-compatible server (vLLM, llama.cpp server, …).
    tokenizer : Vocabulary, str or HF tokenizer, optional
        The server's tokenizer (default: tiktoken's encoding for ``model_name``). Constraint
        token ids and ``logit_bias`` use it.
    max_total_tokens : int, optional
        Context size (default 4096).
    max_retries : int
        Retries on connection, rate-limit and 5xx errors before the first token (default 4).
    retry_sleep_time : float
        First backoff in seconds, doubled per retry (default 0.25).
    logprobs : bool
        Request logprobs for ``Completion.score`` (default True).
    native_json : bool
        Also send ``response_format`` json_schema for JSON constraints; the output is still
        checked token by token (default False).
    addtl_create_kwargs : dict, optional
        Always added to the request.

    Notes
    -----
    Text outside role tags is the assistant's turn. The completion so far is sent as the
    last assistant message, which OpenAI-compatible servers that support prefill continue;
    OpenAI itself starts a new turn, which sample-and-check still keeps valid.
    """

    default_context = 4096
    role_tag_start = "%"
    role_tag_end = "%"
    default_role = "assistant"
    allowed_roles = DEFAULT_ROLES

    def _payload(self, text: str, completion_start: int | None) -> dict[str, Any]:
        start = len(text) if completion_start is None else completion_start
        prompt_text, partial = text[:start], text[start:]
        segs = split_segments(prompt_text, self.role_tag_start, self.role_tag_end, self.default_role,
                              self.allowed_roles)
        messages = [{"role": s.role, "content": s.content} for s in segs]
        if partial:
            if messages and messages[-1]["role"] == "assistant" and not _closed(prompt_text):
                messages[-1]["content"] += partial  # the prompt left the assistant turn open
            else:
                messages.append({"role": "assistant", "content": partial})
        if not messages:
            raise PromptError("the prompt is empty: a chat model needs at least one message")
        out: dict[str, Any] = {"messages": messages}
        if self.logprobs:
            out["logprobs"] = True
        return out

    async def _create(self, payload: dict, timeout: float | None) -> Any:
        return await self.client.chat.completions.create(**payload, timeout=timeout)

    def _parse(self, chunk: Any) -> Step | None:
        if not chunk.choices:
            return None
        ch = chunk.choices[0]
        text = (ch.delta.content if ch.delta is not None else None) or ""
        lp = None
        n = None
        content = getattr(ch.logprobs, "content", None) if ch.logprobs is not None else None
        if content:
            lp = float(sum(c.logprob for c in content))
            n = len(content)
        step = Step(text, lp, ch.finish_reason)
        step._n = n  # type: ignore[attr-defined]
        return step


class OpenAICompletion(_OpenAIBase):
    """A completion model (``/completions``): the prompt is sent as raw text.

    Parameters are those of :class:`OpenAIChat`; ``model_name`` defaults to
    ``"gpt-3.5-turbo-instruct"``. Role markup is sent as is; use
    :func:`kmgrammar.prompt.strip_tags` to render it.
    """

    default_model = "gpt-3.5-turbo-instruct"
    default_context = 4096

    def _payload(self, text: str, completion_start: int | None) -> dict[str, Any]:
        out: dict[str, Any] = {"prompt": text}
        if self.logprobs:
            out["logprobs"] = 0
        return out

    async def _create(self, payload: dict, timeout: float | None) -> Any:
        return await self.client.completions.create(**payload, timeout=timeout)

    def _parse(self, chunk: Any) -> Step | None:
        if not chunk.choices:
            return None
        ch = chunk.choices[0]
        lp = None
        n = None
        lps = getattr(ch.logprobs, "token_logprobs", None) if ch.logprobs is not None else None
        if lps:
            lp = None if any(x is None for x in lps) else float(sum(lps))
            n = len(lps)
        step = Step(ch.text or "", lp, ch.finish_reason)
        step._n = n  # type: ignore[attr-defined]
        return step


def chatgpt(completion: bool = False, *args: Any, **kwargs: Any) -> Model:
    """GPT-3.5 Turbo: :class:`OpenAIChat` (or ``gpt-3.5-turbo-instruct`` with ``completion=True``),
    context 4096 unless ``max_total_tokens`` is given."""
    kwargs.setdefault("max_total_tokens", 4096)
    if completion:
        return OpenAICompletion(*(args or ("gpt-3.5-turbo-instruct",)), **kwargs)
    return OpenAIChat(*(args or ("gpt-3.5-turbo",)), **kwargs)


def gpt4(*args: Any, **kwargs: Any) -> OpenAIChat:
    """GPT-4: :class:`OpenAIChat` with context 8192 unless ``max_total_tokens`` is given."""
    kwargs.setdefault("max_total_tokens", 8192)
    return OpenAIChat(*(args or ("gpt-4",)), **kwargs)

