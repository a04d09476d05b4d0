"""On-disk cache of compiled artifacts, keyed by everything that determines their bytes.

Key: sha256 over (artifact format version, kmgrammar version, constraint kind, canonical spec,
options, vocabulary fingerprint). Folder: $KMGRAMMAR_CACHE_DIR or ~/.cache/kmgrammar. Writes are
atomic (temp file + rename), so concurrent processes at worst compile the same thing twice.
Entries are checked (magic, version, checksum) on every load; a bad one is logged, deleted and
rebuilt. Total size is bounded ($KMGRAMMAR_CACHE_MAX_BYTES, default 2 GiB): least recently
used entries (by mtime, refreshed on every hit) are evicted first. A process counts what it
stores and scans the folder (a stat per entry: ~30 ms at 8k entries) only when its count could
pass the bound, or every _RESCAN stores to see what other processes wrote.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path

from .artifact import FORMAT_VERSION, atomic_write

log = logging.getLogger("kmgrammar")

DEFAULT_MAX_BYTES = 2 << 30
_SUFFIX = ".kmg"
_RESCAN = 256
_TOTALS: dict = {}  # folder -> [bytes as of this process's last scan plus its stores since, stores since]
_TOTALS_LOCK = threading.Lock()


def cache_dir() -> Path:
    """The cache folder: $KMGRAMMAR_CACHE_DIR, else ~/.cache/kmgrammar."""
    env = os.environ.get("KMGRAMMAR_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "kmgrammar"


def max_bytes() -> int:
    env = os.environ.get("KMGRAMMAR_CACHE_MAX_BYTES")
    try:
        return int(env) if env else DEFAULT_MAX_BYTES
    except ValueError:
        return DEFAULT_MAX_BYTES


def make_key(kind: str, spec, options: dict, fingerprint: str) -> str:
    from . import __version__

    blob = json.dumps([FORMAT_VERSION, __version__, kind, spec, options, fingerprint],
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _path(key: str) -> Path:
    return cache_dir() / (key + _SUFFIX)


def load(key: str) -> bytes | None:
    """The cached bytes for `key`, or None. A hit refreshes the entry's recency."""
    p = _path(key)
    try:
        with open(p, "rb") as f:
            data = f.read()
        os.utime(p)
    except OSError:
        return None
    return data


def store(key: str, data: bytes) -> None:
    """Save an entry atomically, then evict down to the size bound if this process's count of the
    folder's bytes says it may be passed (see the module docstring). Cache failures only log."""
    try:
        atomic_write(str(_path(key)), data)
        limit = max_bytes()
        with _TOTALS_LOCK:
            got = _TOTALS.get(str(cache_dir()))
            if got is None or got[1] >= _RESCAN or got[0] + len(data) > limit:
                evict(limit)
            else:
                got[0] += len(data)
                got[1] += 1
    except OSError as e:
        log.warning("kmgrammar cache: cannot write %s: %s", cache_dir(), e)


def discard(key: str, reason: str) -> None:
    log.warning("kmgrammar cache: discarding entry %s (%s); recompiling", key[:16], reason)
    try:
        _path(key).unlink()
    except OSError:
        pass


def _entries() -> list:
    out = []
    try:
        it = os.scandir(cache_dir())
    except OSError:
        return out
    with it:
        for e in it:
            if e.name.endswith(_SUFFIX) and not e.name.startswith(".tmp-"):
                try:
                    st = e.stat()
                except OSError:
                    continue
                out.append((st.st_mtime, st.st_size, e.path))
    return out


def evict(limit: int) -> int:
    """Delete least recently used entries until the total is at most `limit` bytes; return count."""
    entries = sorted(_entries())
    total = sum(size for _, size, _ in entries)
    removed = 0
    for _, size, path in entries:
        if total <= limit:
            break
        try:
            os.unlink(path)
        except OSError:
            continue
        total -= size
        removed += 1
    _TOTALS[str(cache_dir())] = [total, 0]
    return removed


def info() -> dict:
    entries = _entries()
    return {"dir": str(cache_dir()), "entries": len(entries),
            "bytes": sum(s for _, s, _ in entries), "max_bytes": max_bytes()}


def clear() -> int:
    """Delete every entry; return how many."""
    return evict(-1)
