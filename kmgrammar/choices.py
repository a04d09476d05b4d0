"""Choice lists -> byte DFA, built directly from a trie of the options (no regex escaping).

The options' byte trie comes from the same numba kernel that builds the vocabulary trie; its
nodes become DFA states and the generic minimiser merges the shared suffixes.
"""

from __future__ import annotations

from typing import Iterable

from .automaton import ByteDFA, Limits, _Budget, literals_dfa
from .errors import CompileError


def choices_to_dfa(options: Iterable[str], limits: Limits | None = None) -> ByteDFA:
    """The minimal byte DFA accepting exactly the given strings.

    Raises
    ------
    CompileError
        No options, or an option that is not a str.
    """
    if isinstance(options, (str, bytes)):
        raise CompileError("choices must be a list of strings, not a single string")
    encoded = []
    for opt in options:
        if not isinstance(opt, str):
            raise CompileError(f"every choice must be a str, got {type(opt).__name__}: {opt!r}")
        encoded.append(opt.encode("utf-8", "surrogatepass"))
    if not encoded:
        raise CompileError("choices: the list of options is empty")
    return literals_dfa(encoded, _Budget(limits or Limits()))
