"""Chat role markup: ``%system%…%/system%`` text → chat messages, or → plain text for completion models."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from .errors import RoleTagError

DEFAULT_ROLES = frozenset({"system", "user", "assistant"})
DEFAULT_ROLE_SEPS = {"system": "", "user": "User: ", "assistant": "Assistant: "}


@dataclass(frozen=True)
class Segment:
    """One chat message and where its content starts in the source text."""

    role: str
    content: str
    src_start: int


def _tag_regex(tag_start: str, tag_end: str) -> re.Pattern[str]:
    return re.compile(re.escape(tag_start) + r"(/?)([A-Za-z_][A-Za-z0-9_-]*)" + re.escape(tag_end))


def split_segments(
    text: str,
    tag_start: str = "%",
    tag_end: str = "%",
    default_role: str = "assistant",
    roles: Iterable[str] = DEFAULT_ROLES,
    discard_default_whitespace: bool = True,
) -> list[Segment]:
    """Parse role markup into :class:`Segment` s (see :func:`split_tags`)."""
    roles = frozenset(roles)
    tag_re = _tag_regex(tag_start, tag_end)
    matches = list(tag_re.finditer(text))
    closes = {m.group(2) for m in matches if m.group(1)}
    out: list[Segment] = []
    role: str | None = None  # role whose content is being read, None outside tags
    content_start = 0

    def flush_default(end: int) -> None:
        chunk = text[content_start:end]
        if chunk and not (discard_default_whitespace and not chunk.strip()):
            out.append(Segment(default_role, chunk, content_start))

    for m in matches:
        is_close, name = bool(m.group(1)), m.group(2)
        if role is None:
            if not is_close and name in roles:
                flush_default(m.start())
                role, content_start = name, m.end()
            elif not is_close and name in closes:
                # A well-formed %name%…%/name% pair with an unknown name is a typo, not prose.
                raise RoleTagError(
                    f"unknown role {name!r} in {m.group(0)}…{tag_start}/{name}{tag_end} at offset "
                    f"{m.start()} (known roles: {', '.join(sorted(roles))})"
                )
            elif is_close and name in roles:
                raise RoleTagError(
                    f"closing tag {m.group(0)} at offset {m.start()} has no opening "
                    f"{tag_start}{name}{tag_end}"
                )
            # Anything else (a lone %word%, e.g. "50%off%") stays literal text.
        elif is_close and name == role:
            out.append(Segment(role, text[content_start : m.start()], content_start))
            role, content_start = None, m.end()
        # Other tags inside a role's content are literal (no nesting).
    if role is not None:
        # The last tag may be left open: its content runs to the end (an assistant turn in progress).
        out.append(Segment(role, text[content_start:], content_start))
    else:
        flush_default(len(text))
    return out


def split_tags(
    text: str,
    tag_start: str = "%",
    tag_end: str = "%",
    default_role: str = "assistant",
    roles: Iterable[str] = DEFAULT_ROLES,
    discard_default_whitespace: bool = True,
) -> list[dict[str, str]]:
    """Turn role markup into chat messages.

    Parameters
    ----------
    text : str
        Text with ``%role%content%/role%`` markup.
    tag_start, tag_end : str
        Tag delimiters (default ``"%"``).
    default_role : str
        Role of text outside any tag (default ``"assistant"``: the model's turn in progress).
    roles : iterable of str
        Known roles (default system, user, assistant).
    discard_default_whitespace : bool
        Drop whitespace-only text between tags (default True).

    Returns
    -------
    list of dict
        ``[{"role": …, "content": …}, …]`` in order. The last tag may be unterminated.

    Raises
    ------
    RoleTagError
        A well-formed pair names an unknown role (``%foo%…%/foo%``), or a closing tag has no
        opening tag. A lone ``%word%`` stays literal text.
    """
    segs = split_segments(text, tag_start, tag_end, default_role, roles, discard_default_whitespace)
    return [{"role": s.role, "content": s.content} for s in segs]


def render_plain(
    text: str,
    tag_start: str = "%",
    tag_end: str = "%",
    roles_seps: dict[str, str] | None = None,
    sep: str = "\n",
    default_role: str = "assistant",
) -> tuple[str, list[tuple[int, int, int]]]:
    """Flatten markup to plain text.

    Returns the text and ``(src_start, dst_start, length)`` spans mapping message contents from
    the source to the output, so completion offsets can be carried over.
    """
    seps = DEFAULT_ROLE_SEPS if roles_seps is None else roles_seps
    segs = split_segments(text, tag_start, tag_end, default_role, seps.keys() | DEFAULT_ROLES)
    parts: list[str] = []
    spans: list[tuple[int, int, int]] = []
    pos = 0
    for i, s in enumerate(segs):
        head = (sep if i else "") + seps.get(s.role, "")
        parts.append(head)
        pos += len(head)
        spans.append((s.src_start, pos, len(s.content)))
        parts.append(s.content)
        pos += len(s.content)
    return "".join(parts), spans
