"""Benchmark workloads: a constraint, a valid document, and an independent oracle for both.

Each workload is compiled by every engine from the same spec (peers get a regex: choice lists
become an escaped alternation). The oracle answers "can ``data`` still be extended to a string
of the language?" (viability) and "is ``data`` in the language?" (completeness), using the
``regex`` package's partial matching for regexes and plain byte prefixes for choice lists; it
is used only where engines disagree and for the optional full-vocabulary audit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"

# Characters that are operators in Python `re`, Rust `regex` (llguidance, outlines-core) and
# XGrammar's regex front end. Everything else (spaces, apostrophes, commas, non-ASCII) stays
# literal: Rust's regex refuses some escapes Python's `re.escape` produces.
_META = set("\\.^$*+?()[]{}|")


def escape(text: str) -> str:
    """Escape the regex operators in ``text`` (and nothing else)."""
    return "".join("\\" + c if c in _META else c for c in text)


@dataclass(frozen=True)
class Workload:
    """A constraint plus one valid document to walk token by token.

    Parameters
    ----------
    name : str
        Short id used on the command line and in the JSON.
    kind : str
        ``"regex"`` or ``"choices"``.
    spec : str or tuple of str
        The regex, or the options.
    document : str
        A string of the language (tokenized by the real tokenizer for the mask walk).
    description : str
        One line for the table and README.
    """

    name: str
    kind: str
    spec: object
    document: str
    description: str
    extra_documents: tuple = ()

    @property
    def documents(self) -> tuple:
        """Strings every engine must accept in full (then EOS): the document, the extras and,
        for a choice list, every option."""
        docs = (self.document, *self.extra_documents)
        return docs + tuple(o for o in self.spec if o not in docs) if self.kind == "choices" else docs

    @cached_property
    def regex(self) -> str:
        """The regex peers compile (the spec itself, or an alternation of the options)."""
        if self.kind == "regex":
            return self.spec
        return "(" + "|".join(escape(o) for o in self.spec) + ")"

    def compile_kmgrammar(self, vocab, *, cache: bool):
        import kmgrammar

        if self.kind == "regex":
            return kmgrammar.compile_regex(self.spec, vocab, cache=cache)
        return kmgrammar.compile_choices(list(self.spec), vocab, cache=cache)

    # -- oracle ----------------------------------------------------------------------------

    @cached_property
    def _options(self) -> frozenset:
        return frozenset(o.encode() for o in self.spec)

    @cached_property
    def _prefixes(self) -> frozenset:
        return frozenset(o.encode()[:i] for o in self.spec for i in range(len(o.encode()) + 1))

    @cached_property
    def _compiled(self):
        import regex

        return regex.compile(self.spec)

    def is_complete(self, data: bytes) -> bool:
        """True when ``data`` is a string of the language."""
        if self.kind == "choices":
            return data in self._options
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return self._compiled.fullmatch(text) is not None

    def is_viable(self, data: bytes):
        """True when ``data`` is a prefix of a string of the language; None when unknown
        (a partial UTF-8 character needing 3 more bytes is not enumerated)."""
        if self.kind == "choices":
            return data in self._prefixes
        try:
            return self._partial(data.decode("utf-8"))
        except UnicodeDecodeError as e:
            if e.reason != "unexpected end of data" or e.end != len(data):
                return False  # an invalid sequence, not an unfinished character
            start = e.start
        head, tail = data[:start], data[start:]
        need = _utf8_len(tail[0]) - len(tail)
        if need > 2:
            return None
        # Try every completion of the unfinished character (at most 64 * 64).
        conts = [bytes([b]) for b in range(0x80, 0xC0)]
        if need == 2:
            conts = [a + b for a in conts for b in conts]
        for c in conts:
            try:
                text = (head + tail + c).decode("utf-8")
            except UnicodeDecodeError:
                continue
            if self._partial(text):
                return True
        return False

    def _partial(self, text: str) -> bool:
        return self._compiled.fullmatch(text, partial=True) is not None


def _utf8_len(lead: int) -> int:
    return 2 if lead >> 5 == 0b110 else 3 if lead >> 4 == 0b1110 else 4


def load_choices() -> tuple:
    return tuple(line for line in (DATA / "choices_568.txt").read_text("utf-8").splitlines() if line)


EMAIL = r"[a-z0-9._%+-]{1,40}@[a-z0-9.-]{1,30}\.[a-z]{2,6}"
# ISO 8601 date-time with optional fraction and a Z or +hh:mm offset. ASCII classes on purpose:
# `\d` is Unicode in Python and Rust but ASCII in XGrammar, a dialect gap, not a bug.
DATETIME = (r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
            r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
            r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])")


def all_workloads() -> dict:
    choices = load_choices()
    assert len(choices) == 568 and len(set(choices)) == 568, "bench/data/choices_568.txt changed"
    ws = [
        Workload("email", "regex", EMAIL, "john.smith+newsletter@mail.example.co.uk",
                 "email regex with bounded repeats {1,40} {1,30} {2,6}",
                 ("a@b.co", "first.last@example.com", "x_y%z+tag@sub.domain-name.org",
                  "info@mail.example.museum", "no-reply@exampl.eu", "a.b.c.d@e.f.g.hi",
                  "ops+alerts-2024@status.service.io", "jane@mail.example.info")),
        Workload("datetime", "regex", DATETIME, "2024-03-15T14:30:05.123+01:00",
                 "ISO 8601 date-time, optional fraction, Z or offset",
                 ("1999-12-31T23:59:59Z", "2000-01-01T00:00:00+00:00", "2024-02-29T12:00:00.5-05:30",
                  "2031-10-09T08:07:06.123456Z", "1970-01-01T00:00:00.000+14:00")),
        Workload("choices568", "choices", choices, "São Tomé and Príncipe",
                 "568 countries, capitals, US states and cities (25 non-ASCII)"),
    ]
    for w in ws:
        for d in w.documents:
            assert w.is_complete(d.encode()) and re.fullmatch(w.regex, d), (w.name, d)
    return {w.name: w for w in ws}
