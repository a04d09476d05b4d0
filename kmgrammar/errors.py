"""The exceptions kmgrammar raises. Each also subclasses the builtin a caller would catch."""


class KmgrammarError(Exception):
    """Base class of every error kmgrammar raises on purpose."""


class CompileError(KmgrammarError, ValueError):
    """A constraint could not be compiled (bad syntax, empty language, unsupported construct)."""


class GrammarSyntaxError(CompileError):
    """The constraint's text does not parse; the message carries the position."""


class UnsupportedFeatureError(CompileError):
    """The constraint uses a construct kmgrammar cannot enforce exactly."""


class CompileLimitError(CompileError):
    """Compilation exceeded a limit (states, time, depth); the message names the limit and
    `limit` the option ("time_limit", "max_states", "property_order") when there is one."""

    def __init__(self, message: str, limit: str | None = None):
        super().__init__(message)
        self.limit = limit

    @classmethod
    def time(cls, seconds: float) -> "CompileLimitError":
        return cls(f"compilation exceeded time_limit={seconds:g}s (raise it with time_limit=...)", "time_limit")

    @classmethod
    def states(cls, n: int) -> "CompileLimitError":
        return cls(f"automaton exceeded max_states={n} (raise it with max_states=...)", "max_states")


class VocabError(KmgrammarError, ValueError):
    """A tokenizer could not be loaded or does not fit the artifact."""


class ArtifactError(KmgrammarError, ValueError):
    """A compiled artifact file is corrupt, truncated or not a kmgrammar artifact."""


class ArtifactVersionError(ArtifactError):
    """A compiled artifact was written by an incompatible format version."""


class MatcherError(KmgrammarError, ValueError):
    """A matcher was used wrongly (e.g. rolling back more tokens than it accepted)."""
