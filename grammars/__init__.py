"""Bundled grammars (shipped as the package `kmgrammar.grammars`).

`load(name)` returns a grammar's text ("json" is json.lark, "json.gbnf" the GBNF port);
`examples(name)` its accepted and rejected example strings; `compile(name, vocab)` compiles it
with the right frontend (`compile_lark` or `compile_gbnf`).
"""

from __future__ import annotations

import json
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_SUFFIXES = (".lark", ".gbnf")


def available() -> list:
    """Names of the bundled grammars, e.g. "json" or "json.gbnf"."""
    return sorted(p.stem if p.suffix == ".lark" else p.name for p in _HERE.iterdir() if p.suffix in _SUFFIXES)


def _path(name: str) -> Path:
    for candidate in (name, name + ".lark"):
        path = _HERE / candidate
        if path.suffix in _SUFFIXES and path.is_file():
            return path
    raise KeyError(f"no bundled grammar {name!r}; available: {', '.join(available()) or 'none'}")


def load(name: str) -> str:
    """The text of bundled grammar `name` ("json" for json.lark, "json.gbnf" for the GBNF one).

    Raises
    ------
    KeyError
        No bundled grammar has that name (the message lists the available ones).
    """
    return _path(name).read_text("utf-8")


def examples(name: str) -> tuple:
    """(accepted, rejected): the example strings shipped with grammar `name` (JSON-lines files in
    examples/, one JSON string per line, so any text, newlines included, is exact)."""
    _path(name)
    out = []
    for kind in ("accepted", "rejected"):
        path = _HERE / "examples" / f"{name}.{kind}.jsonl"
        lines = path.read_text("utf-8").splitlines() if path.is_file() else []
        out.append([json.loads(line) for line in lines if line.strip()])
    return tuple(out)


def compile(name: str, vocab, **options):  # noqa: A001 - mirrors compile_lark / compile_gbnf
    """Compile bundled grammar `name` for `vocab` (options as for `compile_lark`)."""
    from kmgrammar.compiler import compile_gbnf, compile_lark

    path = _path(name)
    text = path.read_text("utf-8")
    return (compile_gbnf if path.suffix == ".gbnf" else compile_lark)(text, vocab, **options)
