"""Errors raised by the Prompt layer and the model backends.

Each class subclasses :class:`kmgrammar.errors.KmgrammarError` and the builtin a caller would
catch, as the core errors do.
"""

from __future__ import annotations

from ..errors import KmgrammarError


class ConstraintViolation(KmgrammarError, ValueError):
    """A model could not be brought to satisfy the constraint.

    Raised instead of ever returning text that violates a constraint: after the retry budget is
    spent, when the model stops before the constraint is complete, or when ``max_tokens`` runs
    out first. ``prefix`` holds the longest text that is still a valid prefix.
    """

    def __init__(self, message: str, *, prefix: str = "") -> None:
        super().__init__(f"{message} (valid prefix so far: {prefix[-80:]!r})")
        self.prefix = prefix


class CompletionTimeout(KmgrammarError, TimeoutError):
    """A completion did not finish within its ``timeout``."""


class BackendError(KmgrammarError, RuntimeError):
    """A model backend failed (server error after retries, bad response, missing package)."""


class RoleTagError(KmgrammarError, ValueError):
    """Chat role markup is malformed or names a role the model does not know."""


class BudgetExceptionBase(KmgrammarError):
    """A :class:`~kmgrammar.models.TokenTracker` budget would be exceeded."""


class PromptBudgetException(BudgetExceptionBase):
    """Sending the prompt would exceed the tracker's prompt-token budget."""


class CompletionBudgetException(BudgetExceptionBase):
    """Generating would exceed the tracker's completion-token budget."""


class PromptError(KmgrammarError, ValueError):
    """A Prompt call is malformed: no model, a format field without a value, a bad option."""


class ContextLengthError(PromptError):
    """The prompt plus ``max_tokens`` does not fit the model's context (``truncate=True`` trims it)."""
