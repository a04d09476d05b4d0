"""Context-free constraints: JSON (a schema or a Pydantic model) and Lark grammars."""

from __future__ import annotations

import json
from typing import Any, Iterable

from ..errors import CompileError, UnsupportedFeatureError
from .base import Constraint


def _core(name: str, what: str) -> Any:
    import importlib

    import kmgrammar

    fn = getattr(kmgrammar, name, None)
    if fn is None:
        try:  # not exported at the top level yet in some builds
            fn = getattr(importlib.import_module("kmgrammar.compiler"), name, None)
        except ImportError:  # pragma: no cover
            fn = None
    if fn is None:
        raise UnsupportedFeatureError(
            f"{what} needs kmgrammar.{name}, which this kmgrammar build does not provide"
        )
    return fn


def _flags_schema(keys: Iterable[str] | None, allow: dict[str, bool], max_depth: int) -> dict:
    """Keymaker's JsonConstraint flags as a JSON Schema: top level is always an object; the
    ``allow_*`` flags restrict every nested value. Nesting is bounded by ``max_depth`` (Keymaker
    allowed any depth; a bound keeps the language regular, hence exact and fast)."""

    def value(depth: int) -> dict:
        kinds: list[dict] = []
        for flag, kind in (("string", "string"), ("number", "number"), ("boolean", "boolean"), ("null", "null")):
            if allow[flag]:
                kinds.append({"type": kind})
        if depth > 0:
            if allow["array"]:
                kinds.append({"type": "array", "items": value(depth - 1)})
            kinds.append({"type": "object", "additionalProperties": value(depth - 1)})
        return {"anyOf": kinds} if len(kinds) != 1 else kinds[0]

    top: dict[str, Any] = {"type": "object"}
    if keys is not None:
        top["properties"] = {k: value(max_depth - 1) for k in sorted(keys)}
        top["additionalProperties"] = False
    else:
        top["additionalProperties"] = value(max_depth - 1)
    return top


class JsonConstraint(Constraint):
    """The completion must be JSON valid against a schema.

    Parameters
    ----------
    schema : dict, str, Pydantic model class, or None
        A JSON Schema (dict or JSON text) or a Pydantic ``BaseModel`` subclass. None builds a
        schema from Keymaker's flags below.
    keys : iterable of str or None
        (No schema) the only keys the top-level object may have.
    allow_array, allow_null, allow_string, allow_number, allow_boolean : bool
        (No schema) which value types nested values may take (default all).
    max_depth : int
        (No schema) nesting depth of objects and arrays, the top level included (default 3).
    **options
        Passed to ``kmgrammar.compile_json_schema`` (``whitespace``, ``separators``,
        ``indent``, ``strict``, ``lenient``); default ``separators=(", ", ": ")``.

    Raises
    ------
    UnsupportedFeatureError
        At compile time, if this build has no ``compile_json_schema``.
    """

    def __init__(self, schema: Any = None, *, keys: Iterable[str] | None = None, allow_array: bool = True,
                 allow_null: bool = True, allow_string: bool = True, allow_number: bool = True,
                 allow_boolean: bool = True, max_depth: int = 3, **options: Any) -> None:
        if schema is None:
            schema = _flags_schema(keys, dict(array=allow_array, null=allow_null, string=allow_string,
                                              number=allow_number, boolean=allow_boolean), max_depth)
        elif isinstance(schema, str):
            try:
                schema = json.loads(schema)
            except json.JSONDecodeError as exc:
                raise CompileError(f"JsonConstraint schema text is not JSON: {exc}") from None
        elif isinstance(schema, type) and hasattr(schema, "model_json_schema"):
            self.model_class = schema
            schema = schema.model_json_schema()
            # Pydantic ignores unknown fields; treat a missing additionalProperties as false.
            options.setdefault("strict", True)
        if not isinstance(schema, (dict, bool)):
            raise CompileError(f"JsonConstraint needs a schema dict or Pydantic model, not {type(schema).__name__}")
        self.schema = schema
        # json.dumps' separators by default: what API models usually write, so the stream
        # rarely has to be cut at a separator.
        if not {"whitespace", "separators", "indent"} & options.keys():
            options["separators"] = (", ", ": ")
        self.options = options

    def key(self) -> str:
        return "json:" + json.dumps(self.schema, sort_keys=True) + json.dumps(self.options, sort_keys=True, default=str)

    def build(self, vocab: Any) -> Any:
        return _core("compile_json_schema", "JsonConstraint")(self.schema, vocab, **self.options)

    def __repr__(self) -> str:
        return f"JsonConstraint({json.dumps(self.schema)[:60]})"


class CFGConstraint(Constraint):
    """The completion must parse with a Lark grammar.

    Parameters
    ----------
    grammar : str or lark.Lark, optional
        Lark grammar text, a bundled grammar's name (e.g. ``"json"``, see
        ``kmgrammar.grammars``), or a ``lark.Lark`` object (its source grammar is used; the
        parser algorithm does not matter: the full context-free language is enforced).
    parser : lark.Lark, optional
        Keymaker's ``ParserConstraint(parser=...)`` spelling.
    start : str, optional
        Start rule (default: the grammar's, else ``start``).
    **options
        Passed to ``kmgrammar.compile_lark``.
    """

    def __init__(self, grammar: Any = None, *, parser: Any = None, start: str | None = None, **options: Any) -> None:
        grammar = grammar if grammar is not None else parser
        if grammar is None:
            raise CompileError("CFGConstraint needs a grammar (Lark text, a bundled name or a lark.Lark)")
        if not isinstance(grammar, str):
            src = getattr(grammar, "source_grammar", None)
            if src is None:
                raise CompileError(f"CFGConstraint cannot use a {type(grammar).__name__}; pass Lark grammar text")
            if start is None:
                starts = getattr(getattr(grammar, "options", None), "start", None)
                start = starts[0] if isinstance(starts, list) and starts else None
            grammar = src
        self.grammar = grammar
        self.start = start
        self.options = options

    def _text(self) -> str:
        g = self.grammar
        if "\n" not in g and ":" not in g:  # a bundled grammar's name, not grammar text
            import importlib

            try:
                grammars = importlib.import_module("kmgrammar.grammars")
            except ImportError as exc:
                raise UnsupportedFeatureError(f"bundled grammar {g!r} needs kmgrammar.grammars ({exc})") from None
            return grammars.load(g)
        return g

    def key(self) -> str:
        return f"cfg:{self.start}:{self.grammar}"

    def build(self, vocab: Any) -> Any:
        fn = _core("compile_lark", "CFGConstraint")
        text = self._text()
        opts = dict(self.options)
        if self.start is not None:
            opts["start"] = self.start
        if not isinstance(text, str):  # grammars.load may return a CompiledGrammar-ready spec
            return fn(text, vocab, **opts)
        return fn(text, vocab, **opts)

    def __repr__(self) -> str:
        return f"CFGConstraint({self.grammar[:40]!r})"


# Keymaker's name.
ParserConstraint = CFGConstraint
