"""The user-facing Prompt layer (Keymaker-compatible): fill a prompt, constrain each completion.

``Prompt`` is an immutable ``str``. ``await prompt.complete(model=…, constraint=…)`` returns a
new Prompt with one completion appended; ``await prompt.format(...)`` fills ``{}`` fields with
strings, model completions (:class:`CompletionConfig`), callables and generators. Completions are
recorded in a :class:`Completions` object owned by each Prompt (never shared between a prompt
and its continuation).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import math
import string
import warnings
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterator, Optional

from .models.base import CompletionRequest, Decoder
from .models.chat import render_plain
from .models.errors import (
    CompletionBudgetException,
    CompletionTimeout,
    ContextLengthError,
    PromptError,
)
from .models.tracker import TokenTracker

Stream = Callable[[Optional["Completion"]], Awaitable[None]]

# exception_handler is retried at most this many times per completion (Keymaker had no cap).
MAX_HANDLER_RETRIES = 3


# --------------------------------------------------------------------------- Completion


class Completion(str):
    """One completion (or a streamed chunk of one): its text plus metadata.

    Parameters
    ----------
    value : object
        The value; the string content is ``str(value)``.
    start, stop : int or None
        Character offsets in the prompt (``stop`` defaults to ``start + len(text)``).
    name : str or None
        The name it was recorded under (None: unnamed).
    chunk : bool
        True for streamed pieces, False for final completions and static format pieces.
    score : float or None
        Joint probability of the committed tokens (``exp(sum(logprobs))``); None when the
        backend gives no logprobs.
    raw : str or None
        The model's text before ``map_fn`` (defaults to the text).
    """

    def __new__(
        cls,
        value: Any,
        start: int | None = None,
        stop: int | None = None,
        name: str | None = None,
        chunk: bool = False,
        score: float | None = None,
        raw: str | None = None,
    ) -> "Completion":
        self = super().__new__(cls, str(value))
        d = self.__dict__
        d["_value"] = value
        d["_start"] = start
        d["_stop"] = stop if stop is not None else (None if start is None else start + len(self))
        d["_name"] = name
        d["_chunk"] = chunk
        d["_score"] = score
        d["_raw"] = str(self) if raw is None else raw
        return self

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("Completion is immutable")

    text = property(lambda self: str(self), doc="The text inserted into the prompt.")
    value = property(lambda self: self._value, doc="The value (after ``map_fn``; else the text).")
    start = property(lambda self: self._start, doc="Offset in the prompt where the text starts.")
    stop = property(lambda self: self._stop, doc="Offset just past the text.")
    name = property(lambda self: self._name, doc="Name the completion is recorded under.")
    chunk = property(lambda self: self._chunk, doc="True for streamed pieces.")
    score = property(lambda self: self._score, doc="Joint probability of the tokens, or None.")
    raw = property(lambda self: self._raw, doc="The model's text before ``map_fn``.")

    def map(self, fn: Callable[["Completion"], Any]) -> "Completion":
        """Apply ``fn``: its result becomes ``value`` and ``str(result)`` the text; ``raw`` is kept."""
        return Completion(fn(self), self.start, None, self.name, self.chunk, self.score, self.raw)

    def shifted(self, delta: int) -> "Completion":
        """The same completion with offsets moved by ``delta``."""
        if self.start is None:
            return self
        return Completion(
            self.value, self.start + delta, self.stop + delta, self.name, self.chunk, self.score, self.raw
        )

    def __reduce__(self):  # keep metadata through copy/pickle
        return (Completion, (self.value, self.start, self.stop, self.name, self.chunk, self.score, self.raw))

    def __repr__(self) -> str:
        return (
            f"Completion(text={str(self)!r}, value={self.value!r}, start={self.start}, "
            f"stop={self.stop}, name={self.name!r}, chunk={self.chunk}, score={self.score})"
        )


class Completions:
    """The completions of a prompt, in generation order.

    ``completions[i]`` (an int) is the i-th *unnamed* completion; ``completions["x"]`` and
    ``completions.x`` are the list of completions named ``x`` (repeated names collect in
    order); ``completions.unnamed`` is the list of unnamed ones. Iterating yields every
    completion in order. A missing name raises ``KeyError`` / ``AttributeError`` naming the
    known names; ``get(name)`` returns None instead.
    """

    def __init__(self, items: list[Completion] | None = None) -> None:
        self.__dict__["_items"] = list(items or [])

    def _add(self, completion: Completion) -> None:
        self._items.append(completion)

    def add(self, completion: Completion, name: str | None = None) -> "Completions":
        """Return a new Completions with ``completion`` appended (under ``name`` if given)."""
        if name is not None and completion.name != name:
            completion = Completion(
                completion.value, completion.start, completion.stop, name, completion.chunk,
                completion.score, completion.raw,
            )
        return Completions(self._items + [completion])

    @property
    def unnamed(self) -> list[Completion]:
        """Completions made without a name, in order."""
        return [c for c in self._items if c.name is None]

    @property
    def names(self) -> list[str]:
        """Names in first-use order."""
        return list(dict.fromkeys(c.name for c in self._items if c.name is not None))

    def __getitem__(self, key: int | str | None) -> Any:
        if key is None:
            return self.unnamed
        if isinstance(key, (int, slice)) and not isinstance(key, bool):
            return self.unnamed[key]
        found = [c for c in self._items if c.name == key]
        if not found:
            raise KeyError(f"no completion named {key!r} (names: {self.names}; unnamed: {len(self.unnamed)})")
        return found

    def __getattr__(self, name: str) -> list[Completion]:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(exc.args[0]) from None

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("Completions is read-only; completions are added by complete()/format()")

    def get(self, name: str | int | None, default: Any = None) -> Any:
        """``self[name]``, or ``default`` when there is none."""
        try:
            return self[name]
        except (KeyError, IndexError):
            return default

    def __contains__(self, name: object) -> bool:
        return any(c.name == name for c in self._items)

    def __iter__(self) -> Iterator[Completion]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def copy(self) -> "Completions":
        """An independent copy (Completion objects are immutable, so a shallow copy suffices)."""
        return Completions(self._items)

    def shifted(self, delta: int) -> "Completions":
        """A copy with every offset moved by ``delta``."""
        return Completions([c.shifted(delta) for c in self._items])

    def __or__(self, other: "Completions") -> "Completions":
        """Merge: a flat concatenation, ``self`` first."""
        return Completions(self._items + list(other))

    def __repr__(self) -> str:
        return f"Completions({self._items!r})"


# --------------------------------------------------------------------------- CompletionConfig


@dataclass
class CompletionConfig:
    """How to produce one completion; every field is optional.

    Fields merge with ``call | default``: a field that is None takes the default's value, so
    ``max_tokens=0``, ``name=""``, ``try_first=False`` and a prompt-level ``map_fn`` all work.

    Parameters
    ----------
    model : Model
        The backend (required from the call or the prompt's defaults).
    constraint : Constraint or None
        What the completion must satisfy (None: unconstrained).
    name : str or None
        Record the completion under this name.
    max_tokens : int or None
        Exact cap on completion tokens (default: what the context leaves).
    decoder : Decoder or None
        Decoding options (default GREEDY).
    stream : callable or None
        Receives each committed piece as a ``Completion(chunk=True)``, then None (sync or async).
    map_fn : callable or None
        Applied to the final Completion: its result is ``value``, ``str(result)`` the text.
    timeout : float or None
        Seconds for the whole completion, retries included (default: no deadline).
    truncate : bool or None
        Drop tokens from the prompt's start when it does not fit the context (default False:
        raise :class:`ContextLengthError`).
    try_first : bool or None
        Sample unrestricted first and check (None: True for chat models).
    token_tracker : TokenTracker or None
        Counts tokens and enforces budgets.
    exception_handler : callable or None
        ``(exc, config) -> CompletionConfig`` (sync or async), merged over the failing config
        and retried, at most ``MAX_HANDLER_RETRIES`` times.
    gen_kwargs : dict or None
        Extra backend arguments (e.g. ``{"seed": 1}``); never mutated.
    max_retries : int or None
        Rejections tolerated at one position before :class:`ConstraintViolation` (default 6).
    """

    model: Any = None
    constraint: Any = None
    name: Optional[str] = None
    max_tokens: Optional[int] = None
    decoder: Optional[Decoder] = None
    stream: Optional[Stream] = None
    map_fn: Optional[Callable[[Completion], Any]] = None
    timeout: Optional[float] = None
    truncate: Optional[bool] = None
    try_first: Optional[bool] = None
    token_tracker: Optional[TokenTracker] = None
    exception_handler: Optional[Callable[..., Any]] = None
    gen_kwargs: Optional[dict] = None
    max_retries: Optional[int] = None

    def __or__(self, other: "CompletionConfig") -> "CompletionConfig":
        if not isinstance(other, CompletionConfig):
            return NotImplemented
        vals = {}
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name == "gen_kwargs" and a is not None and b is not None:
                vals[f.name] = {**b, **a}
            else:
                vals[f.name] = a if a is not None else b
        return CompletionConfig(**vals)


def _config(args: tuple, kwargs: dict) -> CompletionConfig:
    ready = kwargs.pop("completion_config", None)
    try:
        cfg = CompletionConfig(*args, **kwargs)
    except TypeError as exc:
        raise PromptError(f"bad completion arguments: {exc}") from None
    return cfg | ready if ready is not None else cfg


async def _maybe_await(x: Any) -> Any:
    return await x if inspect.isawaitable(x) else x


# --------------------------------------------------------------------------- Prompt


class Prompt(str):
    """An immutable string that can be completed by models.

    Parameters
    ----------
    prompt : str
        The text (may contain ``%role%…%/role%`` chat markup and ``{}`` format fields).
    *default_args, **default_kwargs
        Prompt-level :class:`CompletionConfig` defaults, positional in field order
        (``model, constraint, name, max_tokens, …``) or by keyword;
        ``completion_config=`` passes a ready config.
    completions : Completions or None
        Completions to carry (copied).

    Examples
    --------
    >>> p = Prompt("The weather is ")
    >>> p == "The weather is " and isinstance(p, str)
    True
    """

    def __new__(cls, prompt: str = "", *default_args: Any, completions: Completions | None = None,
                **default_kwargs: Any) -> "Prompt":
        self = super().__new__(cls, str(prompt))
        if completions is None and isinstance(prompt, Prompt):
            completions = prompt.completions
        if not default_args and not default_kwargs and isinstance(prompt, Prompt):
            defaults = prompt._default_completion_config
        else:
            defaults = _config(default_args, dict(default_kwargs))
        self.__dict__["completions"] = (completions or Completions()).copy()
        self.__dict__["_default_completion_config"] = defaults
        return self

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("Prompt is immutable")

    def _derive(self, text: str, completions: Completions) -> "Prompt":
        return Prompt(text, completion_config=self._default_completion_config, completions=completions)

    @property
    def prompt(self) -> str:
        """The text as a plain ``str``."""
        return str(self)

    def token_length(self, model: Any) -> int:
        """Number of tokens of the text in ``model``'s tokenizer."""
        return len(model.encode(str(self)))

    # str operations that keep metadata ---------------------------------------------------
    def __add__(self, other: str) -> "Prompt":
        if isinstance(other, Prompt):
            merged = self.completions | other.completions.shifted(len(self))
            return Prompt(str(self) + str(other),
                          completion_config=self._default_completion_config | other._default_completion_config,
                          completions=merged)
        if not isinstance(other, str):
            return NotImplemented
        return self._derive(str(self) + other, self.completions)

    def __radd__(self, other: str) -> "Prompt":
        if not isinstance(other, str):
            return NotImplemented
        return self._derive(other + str(self), self.completions.shifted(len(other)))

    def __getitem__(self, key: Any) -> "Prompt":
        text = str.__getitem__(self, key)
        if not isinstance(key, slice):
            return self._derive(text, Completions())
        start, stop, step = key.indices(len(self))
        if step != 1:
            return self._derive(text, Completions())
        # Keep the completions that lie inside the slice, re-based to it.
        kept = [c.shifted(-start) for c in self.completions
                if c.start is not None and start <= c.start and c.stop <= max(stop, start)]
        return self._derive(text, Completions(kept))

    def __repr__(self) -> str:
        return f"Prompt({str(self)!r})"

    # completion -------------------------------------------------------------------------
    async def complete(self, *completion_args: Any, **completion_kwargs: Any) -> "Prompt":
        """Generate one completion and return a new Prompt with it appended.

        Parameters
        ----------
        *completion_args, **completion_kwargs
            :class:`CompletionConfig` fields (positional in field order, or by keyword), or
            ``completion_config=``; merged over the prompt's defaults.

        Returns
        -------
        Prompt
            ``self + completion``, whose ``completions`` add the new one. ``self`` is unchanged.

        Raises
        ------
        PromptError
            No model, or a bad option.
        ConstraintViolation
            The model could not be made to satisfy the constraint (carries the valid prefix).
        CompletionTimeout
            ``timeout`` passed.
        ContextLengthError
            The prompt does not fit the context and ``truncate`` is off.
        """
        cfg = _config(completion_args, dict(completion_kwargs)) | self._default_completion_config
        completions = self.completions.copy()
        new, _ = await self._complete_with(cfg, completions)
        return new

    async def _complete_with(self, cfg: CompletionConfig, completions: Completions) -> tuple["Prompt", Completion]:
        """Complete with retries through ``exception_handler``; record into ``completions``."""
        attempts = 0
        while True:
            try:
                completion = await self._complete_once(cfg)
                break
            except Exception as exc:
                if cfg.exception_handler is None or attempts >= MAX_HANDLER_RETRIES:
                    raise
                attempts += 1
                fresh = await _maybe_await(cfg.exception_handler(exc, cfg))
                if not isinstance(fresh, CompletionConfig):
                    raise PromptError("exception_handler must return a CompletionConfig") from exc
                cfg = fresh | cfg
        completions._add(completion)
        return Prompt(str(self) + completion.text, completion_config=self._default_completion_config,
                      completions=completions), completion

    async def _complete_once(self, cfg: CompletionConfig) -> Completion:
        model = cfg.model
        if model is None:
            raise PromptError("a model is required: pass model= to complete() or to Prompt(...)")
        decoder = cfg.decoder or Decoder()
        if decoder.strategy not in model.supported_decodings:
            raise PromptError(f"{model.model_name} does not support {decoder.strategy.value} decoding")
        text = str(self)
        n_prompt = len(model.encode(text))
        context = int(model.max_total_tokens)
        max_tokens = cfg.max_tokens if cfg.max_tokens is not None else context - n_prompt
        if max_tokens < 0:
            raise PromptError(f"max_tokens must be >= 0, got {max_tokens}")
        if n_prompt + max_tokens > context:
            if not cfg.truncate:
                raise ContextLengthError(
                    f"prompt has {n_prompt} tokens; with max_tokens={max_tokens} that exceeds "
                    f"{model.model_name}'s context of {context} (pass truncate=True to drop the start)"
                )
            keep = max(context - max_tokens, 0)
            warnings.warn(f"prompt truncated from {n_prompt} to {keep} tokens to fit the context", stacklevel=3)
            text = model.decode(model.encode(text)[n_prompt - keep:]) if keep else ""
        count = None
        if cfg.token_tracker is not None:
            count = cfg.token_tracker.new_token_count()
            count.set_config(cfg)
            if count.completion_budget < max_tokens:
                if count.completion_budget < 1:
                    raise CompletionBudgetException("the completion budget is spent")
                max_tokens = int(count.completion_budget)  # stop before the budget, not after
        constraint = cfg.constraint
        matcher = None
        if constraint is not None:
            if constraint.is_compiled_for(model.vocab):
                matcher = constraint.matcher_for(model)
            else:  # compiling (first use per tokenizer) takes a while: keep it off the event loop
                matcher = await asyncio.to_thread(constraint.matcher_for, model)
        request = CompletionRequest(
            prompt=text, matcher=matcher, max_tokens=max_tokens, decoder=decoder, timeout=cfg.timeout,
            token_count=count, gen_kwargs=dict(cfg.gen_kwargs or {}), try_first=cfg.try_first,
            max_retries=6 if cfg.max_retries is None else cfg.max_retries, constraint=constraint,
        )
        run = self._run(model, request, cfg, count, n_prompt)
        try:
            return await (asyncio.wait_for(run, cfg.timeout) if cfg.timeout is not None else run)
        except asyncio.TimeoutError:
            raise CompletionTimeout(
                f"{model.model_name} did not finish the completion within timeout={cfg.timeout}s"
            ) from None

    async def _run(self, model: Any, request: CompletionRequest, cfg: CompletionConfig,
                   count: Any, n_prompt: int) -> Completion:
        start = len(self)
        constraint = request.constraint
        # A constraint that rewrites its text at the end (stop excluded) streams once, at the end.
        buffered = constraint is not None and constraint.rewrites_output
        stream = cfg.stream
        parts: list[str] = []
        total_lp: float | None = 0.0
        n_tokens = 0
        pos = start
        pieces = model.complete(request)
        try:
            async for piece in pieces:
                parts.append(piece.text)
                n_tokens += piece.n_tokens
                total_lp = None if total_lp is None or piece.logprob is None else total_lp + piece.logprob
                if stream is not None and not buffered and piece.text:
                    chunk_score = None if piece.logprob is None else math.exp(piece.logprob)
                    await _maybe_await(stream(Completion(piece.text, pos, None, cfg.name, True, chunk_score)))
                pos += len(piece.text)
        finally:
            await pieces.aclose()
        text = "".join(parts)
        if constraint is not None:
            # Independent backstop (raises, never returns bad text), in slices so the loop breathes.
            await constraint.averify(text, model)
            text = constraint.postprocess(text)
        if count is not None and count.prompt_tokens == 0 and count.completion_tokens == 0:
            count.add_prompt_tokens(n_prompt)
            count.add_completion_tokens(n_tokens)
        score = None if total_lp is None else math.exp(total_lp)
        if stream is not None:
            if buffered and text:
                await _maybe_await(stream(Completion(text, start, None, cfg.name, True, score)))
            await _maybe_await(stream(None))
        completion = Completion(text, start, None, cfg.name, False, score)
        if cfg.map_fn is not None:
            completion = completion.map(cfg.map_fn)
        return completion

    # format -----------------------------------------------------------------------------
    async def format(self, *args: Any, **kwargs: Any) -> "Prompt":
        """Fill the ``{}`` fields left to right, generating model completions as needed.

        Field values may be strings (or anything ``format`` accepts, with the field's format
        spec and conversion applied), a :class:`CompletionConfig` (a model completion recorded
        under the field name, or unnamed for positional fields), a callable taking the prompt
        so far (sync or async) returning any of these, or a generator of them: each yielded
        config is completed under the field's name and ``p = yield cfg`` receives the updated
        prompt. None inserts nothing. ``{{`` and ``}}`` are literal braces.

        Returns
        -------
        Prompt
            The filled prompt; ``self`` is unchanged.

        Raises
        ------
        PromptError
            A field has no value, auto and manual numbering are mixed, or a format spec is
            given for a model completion.
        """
        formatter = string.Formatter()
        try:
            parsed = list(formatter.parse(str(self)))
        except ValueError as exc:
            raise PromptError(f"bad format string: {exc}") from None
        completions = self.completions.copy()  # shared by the steps of this call only
        out = Prompt("", completion_config=self._default_completion_config)
        out.__dict__["completions"] = completions
        default_stream = self._default_completion_config.stream
        auto = 0
        numbering: str | None = None

        async def static(piece: str) -> None:
            nonlocal out
            if not piece:
                return
            start = len(out)
            out = Prompt(str(out) + piece, completion_config=self._default_completion_config,
                         completions=completions)
            out.__dict__["completions"] = completions
            if default_stream is not None:
                await _maybe_await(default_stream(Completion(piece, start, None, None, False)))

        async def model_field(cfg: CompletionConfig, name: str | None) -> None:
            nonlocal out
            cfg = dataclasses.replace(cfg, name=cfg.name if cfg.name is not None else name)
            merged = cfg | self._default_completion_config
            out, _ = await out._complete_with(merged, completions)
            out.__dict__["completions"] = completions

        async def fill(value: Any, name: str | None, spec: str, conv: str | None) -> None:
            if isinstance(value, CompletionConfig):
                if spec or conv:
                    raise PromptError(f"field {name or '{}'!s} has a format spec or conversion, which cannot apply to a model completion")
                await model_field(value, name)
            elif inspect.isgenerator(value):
                item = next(value, None)
                while True:
                    if isinstance(item, CompletionConfig):
                        await model_field(item, name)
                    elif item is not None:
                        await static(str(item))
                    try:
                        item = value.send(out)
                    except StopIteration:
                        break
            elif inspect.isasyncgen(value):
                try:
                    item = await value.__anext__()
                    while True:
                        if isinstance(item, CompletionConfig):
                            await model_field(item, name)
                        elif item is not None:
                            await static(str(item))
                        item = await value.asend(out)
                except StopAsyncIteration:
                    pass
            elif callable(value) and not isinstance(value, str):
                await fill(await _maybe_await(value(out)), name, spec, conv)
            elif value is not None:
                await static(formatter.format_field(formatter.convert_field(value, conv), spec))

        for literal, field, spec, conv in parsed:
            await static(literal)
            if field is None:
                continue
            first, _rest = _field_head(field)
            if first == "":
                if numbering == "manual":
                    raise PromptError("cannot switch from manual field numbering to automatic")
                numbering, key = "auto", auto
                auto += 1
                field = str(key) + field
            elif first.isdigit():
                if numbering == "auto":
                    raise PromptError("cannot switch from automatic field numbering to manual")
                numbering = "manual"
            try:
                value, _ = formatter.get_field(field, args, kwargs)
            except (IndexError, KeyError, AttributeError) as exc:
                shown = "{}" if first == "" else "{" + field + "}"
                raise PromptError(
                    f"format field {shown} has no value ({type(exc).__name__}: {exc}); "
                    f"got {len(args)} positional and keywords {sorted(kwargs)}"
                ) from None
            # Keyword fields name their completion; positional ones are unnamed.
            name = None if first == "" or first.isdigit() else first
            await fill(value, name, spec or "", conv)
        final = Prompt(str(out), completion_config=self._default_completion_config, completions=completions)
        return final


def _field_head(field: str) -> tuple[str, str]:
    for i, ch in enumerate(field):
        if ch in ".[":
            return field[:i], field[i:]
    return field, ""


def strip_tags(
    prompt: str,
    tag_start: str = "%",
    tag_end: str = "%",
    roles_seps: dict[str, str] | None = None,
    sep: str = "\n",
) -> Prompt:
    """Render chat role markup as plain text for completion models.

    ``strip_tags(Prompt("%system%S%/system%%user%U%/user%R"))`` gives
    ``"S\\nUser: U\\nAssistant: R"``. Completions inside message contents are kept, with their
    offsets moved to the new text.

    Parameters
    ----------
    prompt : str or Prompt
    tag_start, tag_end : str
        Tag delimiters (default ``"%"``).
    roles_seps : dict or None
        Prefix per role (default ``{"system": "", "user": "User: ", "assistant": "Assistant: "}``).
    sep : str
        Between messages (default newline).
    """
    text, spans = render_plain(str(prompt), tag_start, tag_end, roles_seps, sep)
    kept: list[Completion] = []
    if isinstance(prompt, Prompt):
        for c in prompt.completions:
            for src, dst, length in spans:
                if c.start is not None and src <= c.start and c.stop <= src + length:
                    kept.append(c.shifted(dst - src))
                    break
        return Prompt(text, completion_config=prompt._default_completion_config, completions=Completions(kept))
    return Prompt(text)
