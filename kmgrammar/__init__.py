"""kmgrammar: constraints (regex, choices, JSON Schema, grammars) compiled ahead of time to exact
token-level automata, served as token masks by a `Matcher`.

>>> import kmgrammar
>>> vocab = kmgrammar.Vocabulary.from_tiktoken("cl100k_base")
>>> compiled = kmgrammar.compile_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", vocab)
>>> matcher = kmgrammar.Matcher(compiled)
"""

__version__ = "0.1.0"

from .artifact import CompiledGrammar
from .automaton import ByteDFA, Limits
from .compiler import compile_choices, compile_dfa, compile_gbnf, compile_json_schema, compile_lark, compile_regex
from .errors import (
    ArtifactError,
    ArtifactVersionError,
    CompileError,
    CompileLimitError,
    GrammarSyntaxError,
    KmgrammarError,
    MatcherError,
    UnsupportedFeatureError,
    VocabError,
)
from .matcher import Matcher, allocate_token_bitmask, apply_token_bitmask_inplace
from .vocab import Vocabulary
from .prompt import Completion, CompletionConfig, Completions, Prompt, strip_tags
from .models import (BackendError, CompletionBudgetException, CompletionTimeout, ConstraintViolation,
                     PromptBudgetException, PromptError, RoleTagError, TokenTracker)
from . import constraints, grammars, models

__all__ = [
    "__version__",
    "Vocabulary",
    "compile_regex",
    "compile_choices",
    "compile_dfa",
    "compile_json_schema",
    "compile_lark",
    "compile_gbnf",
    "CompiledGrammar",
    "Matcher",
    "allocate_token_bitmask",
    "apply_token_bitmask_inplace",
    "ByteDFA",
    "Limits",
    "KmgrammarError",
    "CompileError",
    "GrammarSyntaxError",
    "UnsupportedFeatureError",
    "CompileLimitError",
    "VocabError",
    "ArtifactError",
    "ArtifactVersionError",
    "MatcherError",
    "Prompt",
    "Completion",
    "Completions",
    "CompletionConfig",
    "strip_tags",
    "TokenTracker",
    "ConstraintViolation",
    "CompletionTimeout",
    "BackendError",
    "PromptError",
    "RoleTagError",
    "PromptBudgetException",
    "CompletionBudgetException",
    "constraints",
    "models",
    "grammars",
]
