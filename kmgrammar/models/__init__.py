"""Model backends for the Prompt layer.

API models: :class:`OpenAIChat`, :class:`OpenAICompletion` (any OpenAI-compatible server via
``base_url``), with the :func:`chatgpt` and :func:`gpt4` aliases. Local models:
:class:`Transformers` (extra ``hf``; needs torch) and :class:`LlamaCpp` (llama-cpp-python),
imported lazily. Custom backends subclass :class:`Model` (see its docstring for the protocol).
"""

from .base import ChatModel, CompletionRequest, Decoder, DecodingStrategy, Model, Piece, Step
from .chat import split_tags
from .errors import (
    BackendError,
    BudgetExceptionBase,
    CompletionBudgetException,
    CompletionTimeout,
    ConstraintViolation,
    ContextLengthError,
    PromptBudgetException,
    PromptError,
    RoleTagError,
)
from .openai_api import OpenAIChat, OpenAICompletion, chatgpt, gpt4
from .tracker import TokenCount, TokenTracker

__all__ = [
    "Model",
    "ChatModel",
    "CompletionRequest",
    "Piece",
    "Step",
    "Decoder",
    "DecodingStrategy",
    "OpenAIChat",
    "OpenAICompletion",
    "chatgpt",
    "gpt4",
    "Transformers",
    "LlamaCpp",
    "TokenTracker",
    "TokenCount",
    "split_tags",
    "ConstraintViolation",
    "CompletionTimeout",
    "BackendError",
    "RoleTagError",
    "PromptError",
    "ContextLengthError",
    "BudgetExceptionBase",
    "PromptBudgetException",
    "CompletionBudgetException",
]


def __getattr__(name: str):
    # Optional backends import their heavy dependencies (torch, llama_cpp) only when asked for.
    if name == "Transformers":
        from .transformers_model import Transformers

        return Transformers
    if name == "LlamaCpp":
        from .llamacpp import LlamaCpp

        return LlamaCpp
    raise AttributeError(f"module 'kmgrammar.models' has no attribute {name!r}")
