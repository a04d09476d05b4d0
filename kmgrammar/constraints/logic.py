"""And / Or / Not: exact intersection, union and complement of regular constraints' languages."""

from __future__ import annotations

from typing import Any

from .base import Constraint


class _Combined(Constraint):
    op = ""

    def __init__(self, *constraints: Constraint) -> None:
        if len(constraints) == 1 and isinstance(constraints[0], (list, tuple)):
            constraints = tuple(constraints[0])  # Keymaker's AndConstraint([a, b]) form
        if len(constraints) < 2:
            raise ValueError(f"{type(self).__name__} needs at least two constraints")
        for c in constraints:
            if not isinstance(c, Constraint):
                raise TypeError(f"{type(self).__name__} takes constraints, got {type(c).__name__}")
        self.constraints = tuple(constraints)
        # Stops without its stop (include=False) cannot be rewritten inside a combination.
        self.rewrites_output = False

    def key(self) -> str:
        return f"{self.op}(" + ",".join(c.key() for c in self.constraints) + ")"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self.constraints))})"


class And(_Combined):
    """Output must satisfy every constraint (DFA intersection)."""

    op = "and"

    def byte_dfa(self) -> Any:
        from ..automaton import intersect

        dfa = self.constraints[0].byte_dfa()
        for c in self.constraints[1:]:
            dfa = intersect(dfa, c.byte_dfa())
        return dfa


class Or(_Combined):
    """Output must satisfy at least one constraint (DFA union)."""

    op = "or"

    def byte_dfa(self) -> Any:
        from ..automaton import union

        dfa = self.constraints[0].byte_dfa()
        for c in self.constraints[1:]:
            dfa = union(dfa, c.byte_dfa())
        return dfa


class Not(Constraint):
    """Output must *not* be in the constraint's language (complement over valid UTF-8 text).

    ``Not(OptionsConstraint(["no"]))`` allows every text except exactly ``"no"`` (``"no way"``
    included): this is language negation, not a per-token complement.
    """

    def __init__(self, constraint: Constraint) -> None:
        if not isinstance(constraint, Constraint):
            raise TypeError(f"Not takes a constraint, got {type(constraint).__name__}")
        self.constraint = constraint

    def key(self) -> str:
        return f"not({self.constraint.key()})"

    def byte_dfa(self) -> Any:
        from ..automaton import complement

        return complement(self.constraint.byte_dfa())

    def __repr__(self) -> str:
        return f"Not({self.constraint!r})"


# Keymaker names.
AndConstraint = And
OrConstraint = Or
NotConstraint = Not
