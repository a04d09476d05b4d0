"""The contract between the Prompt layer and a model backend.

A backend is a :class:`Model`. The Prompt layer hands it a :class:`CompletionRequest` (the
prompt text, a :class:`~kmgrammar.Matcher` when the completion is constrained, the token budget,
decoding options) and iterates the :class:`Piece` s it yields. Two ways to write one:

- Implement ``generate`` only (Keymaker's contract): an async generator that, given text, a
  token budget and optionally the set of allowed token ids, yields ``Step`` s or
  ``(text, logprobs)`` tuples. The default :meth:`Model.complete` then enforces constraints by
  sample-and-check (:mod:`kmgrammar.models.engine`): forced text is appended without a call,
  each sampled token is checked against the matcher, the output is cut at the first rejected
  token, and small allowed sets are passed as ``selected_tokens``.
- Override :meth:`Model.complete` to apply masks yourself (local models with logits do this).
"""

from __future__ import annotations

import enum
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator

if TYPE_CHECKING:  # pragma: no cover
    from .tracker import TokenCount


class DecodingStrategy(str, enum.Enum):
    """How the next token is chosen."""

    GREEDY = "greedy"
    SAMPLE = "sample"


@dataclass(frozen=True)
class Decoder:
    """Decoding options.

    Parameters
    ----------
    temperature, top_p : float or None
        Forwarded as given when not None (``temperature=0`` is sent, not dropped).
    top_k : int or None
        Forwarded to backends that accept it (local models); API backends that reject it drop
        it with a warning.
    strategy : DecodingStrategy
        ``GREEDY`` (default) picks the most likely token; ``SAMPLE`` samples.
    """

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    strategy: DecodingStrategy = DecodingStrategy.GREEDY

    def __post_init__(self) -> None:
        if not isinstance(self.strategy, DecodingStrategy):
            object.__setattr__(self, "strategy", DecodingStrategy(self.strategy))
        if self.strategy is DecodingStrategy.GREEDY and self.top_k not in (None, 1):
            warnings.warn("top_k is ignored with GREEDY decoding", stacklevel=3)
            object.__setattr__(self, "top_k", 1)


@dataclass
class Step:
    """One unit a backend's ``generate`` yields: usually one model token.

    ``logprob`` is the token's log probability when the backend reports it. ``finish_reason`` is
    ``"stop"`` when the model ended (EOS or a stop sequence), ``"length"`` when the request's
    ``max_tokens`` ran out, else None.
    """

    text: str
    logprob: float | None = None
    finish_reason: str | None = None


@dataclass
class Piece:
    """A committed piece of a completion, as the Prompt layer streams it.

    ``logprob`` sums the committed model tokens' log probabilities (forced text counts 0.0:
    the constraint leaves it a single choice); None when the backend gives no logprobs.
    """

    text: str
    logprob: float | None = None
    forced: bool = False
    n_tokens: int = 0


@dataclass
class CompletionRequest:
    """Everything a backend needs for one completion."""

    prompt: str
    matcher: Any = None
    max_tokens: int = 256
    decoder: Decoder = field(default_factory=Decoder)
    timeout: float | None = None
    token_count: TokenCount | None = None
    gen_kwargs: dict[str, Any] = field(default_factory=dict)
    try_first: bool | None = None
    max_retries: int = 6
    constraint: Any = None


class Model:
    """Base class and documented protocol for model backends.

    Attributes
    ----------
    model_name : str
        Shown in token counts and errors.
    max_total_tokens : int
        Context size: prompt plus completion tokens.
    sample_chunk_size : int or None
        Tokens requested per unrestricted ``generate`` call (None: all that remain).
    max_token_selection : float
        Largest allowed set ``generate`` accepts as ``selected_tokens`` (an API's
        ``logit_bias`` limit); larger sets are never truncated, the output is checked instead.
    supports_banned_tokens : bool
        True if ``generate`` takes ``banned_tokens=`` (e.g. as negative ``logit_bias``), used
        to steer away from rejected tokens when the allowed set is too large to pass.
    is_chat : bool
        Chat models receive role markup as messages; completion models get raw text.

    Notes
    -----
    A subclass provides ``vocab`` (a :class:`kmgrammar.Vocabulary` whose token ids the model
    uses; constraints compile against it) and either ``generate`` or ``complete``. ``encode``,
    ``decode``, ``eos_token_id`` and ``tokens`` derive from ``vocab`` unless overridden.
    """

    model_name: str = "model"
    max_total_tokens: int = 4096
    sample_chunk_size: int | None = None
    # Converting a large allowed set to a Python set costs ~0.1 us per id every step; past this
    # the model samples freely and every token is checked instead.
    max_token_selection: float = 2048
    supports_banned_tokens: bool = False
    is_chat: bool = False
    #: Default of ``try_first`` (sample unrestricted first, restrict after a rejection).
    try_first: bool = False
    supported_decodings: frozenset[DecodingStrategy] = frozenset(DecodingStrategy)

    @property
    def vocab(self) -> Any:
        """The :class:`kmgrammar.Vocabulary` constraints are compiled against."""
        raise NotImplementedError(f"{type(self).__name__} must provide a vocab")

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``."""
        return list(self.vocab.encode(text))

    def decode(self, ids: list[int]) -> str:
        """Text of token ids (invalid UTF-8 replaced)."""
        return bytes(self.vocab.decode(ids)).decode("utf-8", errors="replace")

    @property
    def eos_token_id(self) -> int:
        """The end-of-sequence token id."""
        return int(self.vocab.eos_token_ids[0])

    @property
    def bos_token_id(self) -> int | None:
        """The beginning-of-sequence token id, if the tokenizer has one."""
        return None

    @property
    def tokens(self) -> dict[int, str]:
        """Keymaker compatibility: ``{id: decoded single-token text}``."""
        cached = self.__dict__.get("_tokens_cache")
        if cached is None:
            tb = self.vocab.token_bytes
            cached = {i: b.decode("utf-8", errors="replace") for i, b in enumerate(tb)}
            self.__dict__["_tokens_cache"] = cached
        return cached

    @property
    def vocab_size(self) -> int:
        """Number of token ids."""
        return int(self.vocab.vocab_size)

    def generate(
        self,
        text: str,
        max_tokens: int = 1,
        selected_tokens: set[int] | None = None,
        decoder: Decoder | None = None,
        timeout: float | None = None,
        token_counter: TokenCount | None = None,
        gen_kwargs: dict[str, Any] | None = None,
        stream: bool = True,
    ) -> AsyncIterator[Step | tuple[str, list[float | None]]]:
        """Generate up to ``max_tokens`` tokens after ``text`` (an async generator).

        Parameters
        ----------
        text : str
            The full prompt, completion so far included.
        max_tokens : int
            Tokens to generate at most.
        selected_tokens : set of int or None
            If given, the next token must be one of these ids (the *allowed* set).
        decoder : Decoder or None
            Decoding options (default GREEDY).
        timeout : float or None
            Seconds allowed for this call.
        token_counter : TokenCount or None
            Record prompt and completion tokens here.
        gen_kwargs : dict or None
            Extra backend arguments (never mutated).
        stream : bool
            Yield tokens as they arrive (default True).

        Yields
        ------
        Step or (str, list of float or None)
            Generated text, usually one token per item.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement generate() or complete()")

    def complete(self, request: CompletionRequest) -> AsyncIterator[Piece]:
        """Produce one completion as committed :class:`Piece` s (an async generator).

        The default drives :meth:`generate` with sample-and-check enforcement. Backends with
        logits override this to apply token masks directly.
        """
        from .engine import sample_and_check

        return sample_and_check(self, request)


class ChatModel(Model):
    """Marker base for chat models: role markup becomes messages, ``try_first`` defaults on."""

    is_chat = True
    try_first = True
