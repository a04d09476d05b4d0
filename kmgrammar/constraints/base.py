"""The Constraint contract: a spec that compiles once per tokenizer to a `CompiledGrammar`."""

from __future__ import annotations

import threading
from typing import Any

from ..errors import UnsupportedFeatureError
from ..models.errors import ConstraintViolation


class Constraint:
    """Base class of every constraint.

    A constraint compiles to a :class:`kmgrammar.CompiledGrammar` for a tokenizer's
    :class:`kmgrammar.Vocabulary`; the Prompt layer walks it with a :class:`kmgrammar.Matcher`.
    Compiled grammars are kept per vocabulary fingerprint on the constraint (and on disk by the
    core's cache), so a constraint compiles once per tokenizer.

    A custom constraint overrides :meth:`build` to return its own ``CompiledGrammar`` (or
    :meth:`byte_dfa` to return a :class:`kmgrammar.ByteDFA`, which also makes it usable inside
    ``&``, ``|`` and ``~``).

    Operators: ``a & b`` is :class:`And`, ``a | b`` :class:`Or`, ``~a`` :class:`Not`.
    """

    #: True when :meth:`postprocess` changes the text (the Prompt layer then streams once).
    rewrites_output = False
    #: End the completion when the output is complete and the model's next token is invalid
    #: (True), or insist on the model ending it (False).
    terminate_on_match = True

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)

    # compile -----------------------------------------------------------------------------
    def key(self) -> str:
        """A canonical description, used as the disk-cache key of DFA-built constraints."""
        return f"{type(self).__name__}:{id(self)}"

    def byte_dfa(self) -> Any:
        """The constraint's language as a byte DFA, for ``&``, ``|``, ``~``.

        Raises
        ------
        UnsupportedFeatureError
            The language is not regular (JSON, grammars), so it has no DFA.
        """
        raise UnsupportedFeatureError(
            f"{type(self).__name__} is not a regular language, so it cannot be combined with "
            f"And/Or/Not (&, |, ~); those need Regex, Options, Stops or other regular constraints"
        )

    def build(self, vocab: Any) -> Any:
        """Compile for ``vocab`` (default: token-compile :meth:`byte_dfa`)."""
        from ..compiler import compile_dfa

        return compile_dfa(self.byte_dfa(), vocab, key=self.key())

    def compile(self, vocab: Any) -> Any:
        """The :class:`kmgrammar.CompiledGrammar` for ``vocab``, built once and kept."""
        cache = self.__dict__.setdefault("_compiled", {})
        lock = self.__dict__.setdefault("_lock", threading.Lock())
        fp = getattr(vocab, "fingerprint", id(vocab))
        with lock:
            cg = cache.get(fp)
            if cg is None:
                cg = self.build(vocab)
                from ..matcher import Matcher

                Matcher(cg)  # the first matcher builds the grammar's row tables: do it here, once
                from ..models.engine import _whole_char_table

                _whole_char_table(vocab)  # per-vocabulary table the API engine needs (~35 ms once)
                cache[fp] = cg
        return cg

    def is_compiled_for(self, vocab: Any) -> bool:
        """True when :meth:`compile` for ``vocab`` is already done (a cheap lookup)."""
        return getattr(vocab, "fingerprint", id(vocab)) in self.__dict__.get("_compiled", {})

    def matcher_for(self, model: Any) -> Any:
        """A fresh :class:`kmgrammar.Matcher` over this constraint for ``model``'s tokenizer."""
        from ..matcher import Matcher

        return Matcher(self.compile(model.vocab))

    # after generation ---------------------------------------------------------------------
    def verify(self, text: str, model: Any) -> None:
        """Check finished text with a fresh matcher; raise :class:`ConstraintViolation` if it fails."""
        m = self.matcher_for(model)
        if not (m.accept_string(text) and m.is_accepting()):
            raise ConstraintViolation(f"output does not satisfy {self!r}", prefix="")

    async def averify(self, text: str, model: Any, chunk: int = 8, slice_s: float = 2e-4) -> None:
        """:meth:`verify` in pieces of ``chunk`` characters, yielding to the event loop after
        each ``slice_s`` seconds of work (a worker thread would hold the GIL for up to the 5 ms
        switch interval; a grammar's first walk can cost ~40 µs per byte)."""
        import asyncio
        import time

        m = self.matcher_for(model)
        start = time.perf_counter()
        for i in range(0, len(text), chunk):
            if not m.accept_string(text[i:i + chunk]):
                raise ConstraintViolation(f"output does not satisfy {self!r}", prefix=text[:i])
            if time.perf_counter() - start > slice_s:
                await asyncio.sleep(0)
                start = time.perf_counter()
        if not m.is_accepting():
            raise ConstraintViolation(f"output does not satisfy {self!r}", prefix=text)

    def postprocess(self, text: str) -> str:
        """Turn the matched text into the completion text (identity by default)."""
        return text

    # operators ----------------------------------------------------------------------------
    def __and__(self, other: "Constraint") -> "Constraint":
        from .logic import And

        return And(self, other)

    def __or__(self, other: "Constraint") -> "Constraint":
        from .logic import Or

        return Or(self, other)

    def __invert__(self) -> "Constraint":
        from .logic import Not

        return Not(self)


class GrammarConstraint(Constraint):
    """A constraint from ready compiled grammars (for custom automata).

    Parameters
    ----------
    compiled : CompiledGrammar or callable
        A ``CompiledGrammar`` (used for its own vocabulary only) or a function
        ``vocab -> CompiledGrammar``.
    """

    def __init__(self, compiled: Any) -> None:
        self._source = compiled

    def build(self, vocab: Any) -> Any:
        if callable(self._source):
            return self._source(vocab)
        cg = self._source
        fp = getattr(cg.vocab, "fingerprint", None)
        if fp != getattr(vocab, "fingerprint", None):
            from ..errors import VocabError

            raise VocabError(
                "GrammarConstraint's CompiledGrammar was compiled for another tokenizer; "
                "pass a function vocab -> CompiledGrammar to compile per model"
            )
        return cg

    def byte_dfa(self) -> Any:
        if callable(self._source):
            return super().byte_dfa()
        return self._source.dfa

    def __repr__(self) -> str:
        return f"GrammarConstraint({self._source!r})"
