"""Constraints for completions: each compiles once per tokenizer to an exact token automaton.

Regular: :class:`RegexConstraint`, :class:`OptionsConstraint`, :class:`StopsConstraint`, and
their combinations :class:`And` (``&``), :class:`Or` (``|``), :class:`Not` (``~``).
Context-free: :class:`JsonConstraint`, :class:`CFGConstraint` (alias ``ParserConstraint``).
Per-step: :class:`ModelConstraint` (a helper model's top-k/top-p; local backends).
Custom: subclass :class:`Constraint` (``build`` or ``byte_dfa``) or wrap a ready
``CompiledGrammar`` in :class:`GrammarConstraint`.
"""

from .base import Constraint, GrammarConstraint
from .logic import And, AndConstraint, Not, NotConstraint, Or, OrConstraint
from .model import ModelConstraint
from .regular import OptionsConstraint, RegexConstraint, StopsConstraint
from .structured import CFGConstraint, JsonConstraint, ParserConstraint

__all__ = [
    "Constraint",
    "GrammarConstraint",
    "RegexConstraint",
    "OptionsConstraint",
    "StopsConstraint",
    "JsonConstraint",
    "CFGConstraint",
    "ParserConstraint",
    "ModelConstraint",
    "And",
    "Or",
    "Not",
    "AndConstraint",
    "OrConstraint",
    "NotConstraint",
]
