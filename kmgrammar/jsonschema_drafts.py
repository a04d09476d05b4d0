"""Keywords a schema's declared draft does not have: validators of that draft ignore them, so must we.

A draft-04 schema using `if`/`then` (draft 7) or `const` (draft 6) means, by its own `$schema`,
a language without those constraints; enforcing them would reject valid documents. Without a
`$schema` nothing is dropped: every keyword we know is enforced.
"""

from __future__ import annotations

import re
import warnings

from .jsonschema_base import _SCHEMA_LISTS, _SCHEMA_MAPS, _SCHEMA_ONE, _ptr

_LATER_THAN_7 = frozenset({"dependentRequired", "dependentSchemas", "prefixItems", "unevaluatedItems",
                           "unevaluatedProperties", "minContains", "maxContains"})
_LATER_THAN_6 = _LATER_THAN_7 | {"if", "then", "else"}
_LATER_THAN_4 = _LATER_THAN_6 | {"const", "contains", "propertyNames"}
# declared draft -> keywords it does not know. 2019-09 split `dependencies` in two, but it stays
# enforced there and in 2020-12, as the official suite's optional compatibility tests expect.
_NOT_IN = {"draft-04": _LATER_THAN_4, "draft-06": _LATER_THAN_6,
           "draft-07": _LATER_THAN_7, "2019-09": frozenset({"prefixItems"})}
_DRAFT = re.compile(r"https?://json-schema\.org/(?:(draft-0[467])/schema|draft/(2019-09)/schema)#?")


def for_declared_draft(schema):
    """`schema` without the keywords its declared draft lacks (a copy, only when there are any)."""
    if not isinstance(schema, dict):
        return schema
    m = _DRAFT.fullmatch(str(schema.get("$schema", "")))
    if m is None:
        return schema
    draft = m.group(1) or m.group(2)
    dropped: list = []
    out = _strip(schema, _NOT_IN[draft], "#", dropped)
    if not dropped:
        return schema
    shown = ", ".join(f"{k!r} at {p}" for k, p in dropped[:5]) + (" ..." if len(dropped) > 5 else "")
    warnings.warn(f"kmgrammar: the schema declares {draft}, which has no keyword {shown}: ignored, "
                  "as that draft's validators do", stacklevel=3)
    return out


def _strip(s, unknown: frozenset, ptr: str, dropped: list):
    if not isinstance(s, dict):
        return s
    out = {}
    for k, v in s.items():
        if k in unknown:
            dropped.append((k, ptr))
            continue
        if k in _SCHEMA_MAPS and isinstance(v, dict):
            v = {name: _strip(sub, unknown, _ptr(ptr, k, name), dropped) for name, sub in v.items()}
        elif k in _SCHEMA_LISTS and isinstance(v, list):
            v = [_strip(sub, unknown, _ptr(ptr, k, i), dropped) for i, sub in enumerate(v)]
        elif k in _SCHEMA_ONE:
            v = _strip(v, unknown, _ptr(ptr, k), dropped)
        out[k] = v
    return out
