"""Regular constraints: regex, a list of options, text up to a stop. Each has an exact byte DFA."""

from __future__ import annotations

import re
from typing import Any, Iterable

from ..errors import CompileError
from .base import Constraint

# Any text, newlines included (core regex syntax is Python's `re`).
_ANY = r"[\s\S]*"


class RegexConstraint(Constraint):
    """The completion must fully match a regex (Python ``re`` syntax).

    Parameters
    ----------
    pattern : str or re.Pattern
        The regex; the whole completion must match it (not a prefix).
    terminate_on_match : bool
        True (default): once the output matches, a next token that cannot continue a match
        ends the completion. False: the model must end it itself (EOS); invalid tokens are
        retried instead.

    Examples
    --------
    >>> RegexConstraint(r"[0-9]+")
    RegexConstraint('[0-9]+')
    """

    def __init__(self, pattern: str | re.Pattern, terminate_on_match: bool = True) -> None:
        if isinstance(pattern, re.Pattern):
            extra = pattern.flags & ~(re.UNICODE)
            flags = "".join(c for f, c in ((re.IGNORECASE, "i"), (re.DOTALL, "s"), (re.MULTILINE, "m"),
                                           (re.VERBOSE, "x")) if extra & f)
            pattern = (f"(?{flags})" if flags else "") + pattern.pattern
        if not isinstance(pattern, str):
            raise CompileError(f"RegexConstraint needs a str pattern, not {type(pattern).__name__}")
        self.pattern = pattern
        self.terminate_on_match = terminate_on_match

    def key(self) -> str:
        return f"regex:{self.pattern}"

    def byte_dfa(self) -> Any:
        from ..regex import regex_to_dfa

        return regex_to_dfa(self.pattern)

    def build(self, vocab: Any) -> Any:
        from ..compiler import compile_regex

        return compile_regex(self.pattern, vocab)

    def __repr__(self) -> str:
        return f"RegexConstraint({self.pattern!r})"


class OptionsConstraint(Constraint):
    """The completion must be exactly one of the options.

    Parameters
    ----------
    options : iterable of str
        The allowed completions (at least one). An option that is a prefix of another
        (``"app"``, ``"apple"``) does not end the completion early: the model chooses.
    short_circuit : bool
        Kept for Keymaker compatibility: text the options force is always appended without a
        model call.
    """

    def __init__(self, options: Iterable[str], short_circuit: bool = True) -> None:
        if isinstance(options, str):
            raise CompileError("OptionsConstraint needs a collection of strings, not a single string")
        opts = sorted(set(options))
        if not opts:
            raise CompileError("OptionsConstraint needs at least one option")
        bad = [o for o in opts if not isinstance(o, str)]
        if bad:
            raise CompileError(f"options must be strings; got {bad[:3]!r}")
        self.options = opts
        self.short_circuit = short_circuit

    def key(self) -> str:
        return "options:" + "\x00".join(self.options)

    def byte_dfa(self) -> Any:
        from ..choices import choices_to_dfa

        return choices_to_dfa(self.options)

    def build(self, vocab: Any) -> Any:
        from ..compiler import compile_choices

        return compile_choices(self.options, vocab)

    def __repr__(self) -> str:
        return f"OptionsConstraint({self.options!r})"


class StopsConstraint(Constraint):
    """Free text up to (and, with ``include``, including) the first match of a stop regex.

    The language is every text in which no stop match ends before the end: text without the
    stop (if the model ends there), or text ending at the first stop. Nothing after the stop
    is ever produced.

    Parameters
    ----------
    stop : str
        A regex (Keymaker compatible: ``"User|Assistant"`` is an alternation; use
        ``re.escape`` for literal text).
    include : bool
        Keep the stop in the completion (default True) or drop it.
    """

    def __init__(self, stop: str, include: bool = True) -> None:
        if not isinstance(stop, str) or not stop:
            raise CompileError("StopsConstraint needs a non-empty stop regex")
        try:
            self._stop_re = re.compile(stop)
        except re.error as exc:
            raise CompileError(f"bad stop regex {stop!r}: {exc}") from None
        if self._stop_re.fullmatch(""):
            raise CompileError(f"stop regex {stop!r} matches the empty string")
        self.stop = stop
        self.include = include
        self.rewrites_output = not include

    def key(self) -> str:
        return f"stops:{self.stop}"

    def byte_dfa(self) -> Any:
        from ..automaton import complement
        from ..regex import regex_to_dfa

        # No stop match may end before the last character: complement of "…stop, then more".
        return complement(regex_to_dfa(f"{_ANY}(?:{self.stop})[\\s\\S]+"))

    def postprocess(self, text: str) -> str:
        if self.include:
            return text
        m = self._stop_re.search(text)
        return text if m is None else text[: m.start()]

    def __repr__(self) -> str:
        return f"StopsConstraint({self.stop!r}, include={self.include})"
