"""Bundled grammars (shipped as the package `kmgrammar.grammars`): `load(name)` returns a grammar's text."""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent
_SUFFIXES = (".lark", ".gbnf")


def available() -> list:
    """Names of the bundled grammars, e.g. "json" or "json.gbnf"."""
    return sorted(p.stem if p.suffix == ".lark" else p.name for p in _HERE.iterdir() if p.suffix in _SUFFIXES)


def load(name: str) -> str:
    """The text of bundled grammar `name` ("json" for json.lark, "json.gbnf" for the GBNF one).

    Raises
    ------
    KeyError
        No bundled grammar has that name (the message lists the available ones).
    """
    for candidate in (name, name + ".lark"):
        path = _HERE / candidate
        if path.suffix in _SUFFIXES and path.is_file():
            return path.read_text("utf-8")
    raise KeyError(f"no bundled grammar {name!r}; available: {', '.join(available()) or 'none'}")
