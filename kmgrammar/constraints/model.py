"""ModelConstraint: keep only tokens a helper model ranks highly (top-k / top-p) at each step.

This is not a language, so it does not compile to an automaton: it filters the tokens an inner
constraint allows, step by step, with the helper's next-token distribution. It needs a backend
with logits (``Transformers``) and a helper with the same vocabulary; API backends refuse it.
"""

from __future__ import annotations

from typing import Any

from ..errors import UnsupportedFeatureError, VocabError
from .base import Constraint


class ModelConstraint(Constraint):
    """Restrict each token to the helper model's top-k / top-p (within ``constraint``, if given).

    Parameters
    ----------
    model : Transformers
        The helper; it must share the main model's vocabulary.
    top_k : int, optional
        Keep the helper's ``top_k`` most likely tokens.
    top_p : float, optional
        Keep the smallest set of the helper's tokens whose probability reaches ``top_p``.
    constraint : Constraint, optional
        The language the output must also satisfy (default: any text).

    Notes
    -----
    When the helper's set and the inner constraint's mask do not intersect, the inner mask
    alone is used for that step (the output always satisfies ``constraint``).
    """

    def __init__(self, model: Any, top_k: int | None = None, top_p: float | None = None,
                 constraint: Constraint | None = None) -> None:
        if top_k is None and top_p is None:
            raise ValueError("ModelConstraint needs top_k or top_p")
        self.helper = model
        self.top_k = top_k
        self.top_p = top_p
        self.constraint = constraint

    def key(self) -> str:
        return f"model:{self.constraint.key() if self.constraint else 'any'}"

    def byte_dfa(self) -> Any:
        raise UnsupportedFeatureError("ModelConstraint filters per step; it cannot be combined with And/Or/Not")

    def build(self, vocab: Any) -> Any:
        if self.constraint is not None:
            return self.constraint.compile(vocab)
        from ..compiler import compile_regex

        return compile_regex(r"[\s\S]*", vocab)

    def step_filter(self, model: Any) -> Any:
        """A per-completion filter ``ids -> allowed numpy bool mask`` for a backend with logits."""
        if getattr(self.helper, "vocab", None) is None or self.helper.vocab.fingerprint != model.vocab.fingerprint:
            raise VocabError("ModelConstraint's helper must use the main model's vocabulary")
        return _HelperFilter(self.helper, self.top_k, self.top_p)

    def __repr__(self) -> str:
        return f"ModelConstraint(top_k={self.top_k}, top_p={self.top_p}, constraint={self.constraint!r})"


class _HelperFilter:
    def __init__(self, helper: Any, top_k: int | None, top_p: float | None) -> None:
        self.helper = helper
        self.top_k = top_k
        self.top_p = top_p
        self.cache = None
        self.fed = 0

    def __call__(self, ids: list[int]) -> Any:
        import torch

        logits, self.cache = self.helper._forward(ids[self.fed:], self.cache)
        self.fed = len(ids)
        probs = torch.softmax(logits, dim=-1)
        order = torch.argsort(probs, descending=True)
        keep = torch.zeros_like(probs, dtype=torch.bool)
        n = probs.numel() if self.top_k is None else min(self.top_k, probs.numel())
        if self.top_p is not None:
            cum = torch.cumsum(probs[order], 0)
            n = min(n, int(torch.searchsorted(cum, torch.tensor(self.top_p))) + 1)
        keep[order[:n]] = True
        return keep
