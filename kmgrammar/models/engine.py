"""Sample-and-check: enforce a compiled constraint on a backend that gives no logits.

Loop, until the matcher is complete and the model stops (or only EOS is left):

1. Append the matcher's forced text without calling the model.
2. Ask the backend for a chunk. Restrict the next token to the allowed set when it is small
   enough for the backend (``max_token_selection``, e.g. the 300-entry ``logit_bias`` limit),
   or after a rejection; otherwise sample freely ("try first") and check.
3. Advance the matcher token by token over the streamed text and cut at the first token it
   rejects. A rejection where the output is already complete ends the completion; otherwise the
   rejected token is banned and the position retried, up to ``max_retries`` times, then
   :class:`ConstraintViolation` carries the valid prefix.

Every committed byte went through the matcher, so the output never violates the constraint.
Mask work per step is one ``allowed_token_ids`` / ``forced_bytes`` call on the compiled
automaton, so the event loop is not blocked.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, AsyncIterator

import numpy as np

from .base import CompletionRequest, Model, Piece, Step
from .errors import ConstraintViolation

# Banning more than this many tokens at one position means the model is far from the
# constraint; OpenAI's logit_bias accepts at most 300 entries.
_MAX_BANNED = 300
# Failed retries at one position before a too-large allowed set is offered as a subset.
_SUBSET_AFTER = 2


def utf8_complete_prefix(data: bytes) -> bytes:
    """The longest prefix of ``data`` that does not end inside a UTF-8 sequence."""
    end = len(data)
    # Walk back over at most 3 continuation bytes to the last lead byte.
    i = end - 1
    while i >= 0 and end - i <= 4 and (data[i] & 0xC0) == 0x80:
        i -= 1
    if i < 0:
        return data if end == 0 else b""
    lead = data[i]
    need = 1 if lead < 0x80 else 2 if lead >> 5 == 0b110 else 3 if lead >> 4 == 0b1110 else 4
    return data if end - i >= need else data[:i]


class _Walker:
    """Advances a matcher over text, token by token, keeping it at a UTF-8 boundary."""

    def __init__(self, matcher: Any, vocab: Any) -> None:
        self.m = matcher
        self.vocab = vocab
        self.token_bytes = vocab.token_bytes

    def _accept_ids(self, ids: list[int]) -> list[int]:
        """Accept ids in order, stopping at the first rejected one; return those accepted."""
        done: list[int] = []
        for t in ids:
            if not self.m.accept_token(int(t)):
                break
            done.append(int(t))
        return done

    def advance(self, text: str, budget: int) -> tuple[str, int, bool]:
        """Accept as much of ``text`` as the constraint and ``budget`` tokens allow.

        Returns ``(accepted_text, n_tokens, rejected)``; ``rejected`` is True when the
        constraint refused the rest (not when the budget ran out).
        """
        ids = [int(t) for t in self.vocab.encode(text)]
        done = self._accept_ids(ids[:budget])
        rejected = len(done) < min(len(ids), budget)
        if rejected and len(done) < budget:
            # The rejected token may merge a valid end with invalid text (".\n" after "meat"):
            # retry its longest valid prefix, split by the tokenizer.
            tok = self.token_bytes[ids[len(done)]]
            for k in range(len(tok) - 1, 0, -1):
                sub = utf8_complete_prefix(tok[:k])
                if len(sub) != k:
                    continue
                sub_ids = [int(t) for t in self.vocab.encode(sub.decode("utf-8"))]
                if len(done) + len(sub_ids) > budget:
                    continue
                got = self._accept_ids(sub_ids)
                if len(got) == len(sub_ids):
                    done += got
                    break
                self.m.rollback(len(got))
        data = b"".join(self.token_bytes[t] for t in done)
        # Never stop inside a UTF-8 character: the text we return must be a str.
        while done and utf8_complete_prefix(data) != data:
            self.m.rollback(1)
            data = data[: len(data) - len(self.token_bytes[done.pop()])]
            rejected = True
        return data.decode("utf-8"), len(done), rejected


_WHOLE: dict[str, np.ndarray] = {}


def _whole_char_table(vocab: Any) -> np.ndarray:
    """Per token id: are its bytes whole UTF-8 characters? Built once per vocabulary (~25 ms at
    100k tokens), when a constraint is compiled, off the event loop."""
    key = getattr(vocab, "fingerprint", None) or str(id(vocab))
    table = _WHOLE.get(key)
    if table is None:
        tb = vocab.token_bytes
        table = np.zeros(int(vocab.vocab_size), dtype=bool)
        for i, b in enumerate(tb):
            table[i] = _whole_chars(b)
        _WHOLE[key] = table
    return table


def _whole_chars(data: bytes) -> bool:
    """True if ``data`` is a sequence of whole UTF-8 characters (special tokens count as whole)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _as_step(item: Any) -> Step:
    if isinstance(item, Step):
        return item
    if isinstance(item, str):
        return Step(item)
    text, lps = item  # Keymaker's (text, logprobs) tuples
    lps = list(lps or [])
    lp = None if not lps or any(x is None for x in lps) else float(sum(lps))
    return Step(text, lp)


def _generate_kwargs(model: Model) -> set[str]:
    try:
        params = inspect.signature(model.generate).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return set()
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return {"*"}
    return set(params)


async def sample_and_check(model: Model, req: CompletionRequest) -> AsyncIterator[Piece]:
    """Run one completion on ``model.generate`` with the constraint enforced (see module doc)."""
    if req.constraint is not None and hasattr(req.constraint, "step_filter"):
        from ..errors import UnsupportedFeatureError

        raise UnsupportedFeatureError(
            f"{type(req.constraint).__name__} needs the model's logits; {model.model_name} "
            f"({type(model).__name__}) has none: use a local backend such as Transformers"
        )
    m = req.matcher
    vocab = model.vocab if m is not None else None
    walker = _Walker(m, vocab) if m is not None else None
    eos_ids = set(int(t) for t in vocab.eos_token_ids) if vocab is not None else set()
    try_first = getattr(model, "try_first", model.is_chat) if req.try_first is None else req.try_first
    accepts = _generate_kwargs(model)
    text = ""
    used = 0  # committed tokens, counted in the constraint's tokenizer
    retries = 0
    banned: set[int] = set()

    def violation(msg: str) -> ConstraintViolation:
        return ConstraintViolation(msg, prefix=text)

    while True:
        allowed = None
        if m is not None:
            if m.is_terminated():
                break
            forced = utf8_complete_prefix(bytes(m.forced_bytes()))
            if forced:
                piece, n, rejected = walker.advance(forced.decode("utf-8"), req.max_tokens - used)
                if n == 0 or (rejected and not piece):
                    raise violation(
                        f"max_tokens={req.max_tokens} reached before the constraint was satisfied"
                        if used >= req.max_tokens
                        else "forced text was rejected by the constraint's own matcher"
                    )
                used += n
                text += piece
                yield Piece(piece, 0.0, forced=True, n_tokens=n)
                continue
            # The allowed set costs ~0.5 ms on a 100k vocabulary: compute it only when needed
            # (to see if only EOS is left, or to restrict the next token).
            if m.is_accepting():
                allowed = m.allowed_token_ids()
                if allowed.size <= len(eos_ids) and all(int(t) in eos_ids for t in allowed):
                    break  # only EOS is left: done without asking the model
            if allowed is None and (not try_first or retries > 0):
                allowed = m.allowed_token_ids()
                if allowed.size == 0:
                    raise violation("the constraint allows no further token")
        remaining = req.max_tokens - used
        if remaining <= 0:
            if m is None or m.is_accepting():
                break
            raise violation(f"max_tokens={req.max_tokens} reached before the constraint was satisfied")

        selected = None
        if allowed is not None and (not try_first or retries > 0):
            cand = allowed if not banned else np.setdiff1d(allowed, np.fromiter(banned, allowed.dtype))
            if cand.size == 0:
                raise violation("every token the constraint allows here was rejected by the model")
            # A one-token request that picks half a UTF-8 character returns no text (APIs
            # stream whole characters): offer whole-character tokens when there are any.
            whole = cand[_whole_char_table(vocab)[cand]]
            cand = whole if whole.size else cand
            limit = model.max_token_selection
            if cand.size <= limit:
                selected = set(cand.tolist())
            elif retries >= _SUBSET_AFTER and limit >= 1:
                # Bans did not help and the allowed set is too large to pass: offer a subset.
                # Sound (every offered token is allowed; each is still checked) and it
                # guarantees progress. Low ids are a BPE vocabulary's most frequent tokens.
                selected = set(cand[: int(limit)].tolist())
        kwargs: dict[str, Any] = dict(
            max_tokens=1 if selected is not None else min(remaining, model.sample_chunk_size or remaining),
            selected_tokens=selected,
            decoder=req.decoder,
            timeout=req.timeout,
            token_counter=req.token_count,
            gen_kwargs=dict(req.gen_kwargs),
            stream=True,
            completion_start=len(req.prompt),
            constraint=req.constraint,
        )
        # Keymaker-style backends take only some of these; pass what generate() accepts.
        kwargs = {k: v for k, v in kwargs.items() if "*" in accepts or k in accepts or k == "max_tokens"}
        if selected is None and banned and model.supports_banned_tokens:
            kwargs["banned_tokens"] = sorted(banned)[:_MAX_BANNED]

        agen = model.generate(req.prompt + text, **kwargs)
        finish: str | None = None
        rejected_text: str | None = None
        produced = 0
        progressed = False
        try:
            async for item in agen:
                step = _as_step(item)
                produced += 1
                if step.finish_reason:
                    finish = step.finish_reason
                if not step.text:
                    continue
                if walker is None:
                    ids = vocab_encode(model, step.text)
                    n = min(len(ids), req.max_tokens - used)
                    piece = step.text if n == len(ids) else model.decode(ids[:n])
                    rej = False
                else:
                    piece, n, rej = walker.advance(step.text, req.max_tokens - used)
                if piece:
                    progressed = True
                    used += n
                    text += piece
                    retries, banned = 0, set()
                    yield Piece(piece, step.logprob, n_tokens=n)
                if rej:
                    rejected_text = step.text[len(piece):]
                    break
                if used >= req.max_tokens:
                    finish = finish or "length"
                    break
        finally:
            await agen.aclose()

        if rejected_text is not None:
            if m.is_accepting() and getattr(req.constraint, "terminate_on_match", True):
                break  # the model wanted to go on with invalid text; the output is complete
            retries += 1
            first = [int(t) for t in model.encode(rejected_text)[:1]]
            banned.update(first)
        elif finish == "stop" or (finish is None and produced < kwargs["max_tokens"]):
            if m is None or m.is_accepting():
                break
            # The model stopped early: keep it talking by banning EOS.
            retries += 1
            banned.update(eos_ids)
        elif not progressed:
            retries += 1  # nothing usable came back (e.g. half a character): do not spin
        if retries > req.max_retries:
            raise violation(
                f"{model.model_name} did not produce text satisfying the constraint after "
                f"{req.max_retries} retries at the same position"
            )


def vocab_encode(model: Model, text: str) -> list[int]:
    """Token ids of ``text`` in the model's tokenizer (used for unconstrained budgets)."""
    return list(model.encode(text))


def add_logprob(total: float | None, lp: float | None) -> float | None:
    """Sum log probabilities; None if either is unknown."""
    return None if total is None or lp is None else total + lp


def score(total: float | None) -> float | None:
    """Joint probability from a logprob sum (None passes through)."""
    return None if total is None else math.exp(total)
