"""Versions: short digests of what a step's result depends on.

A step's output folder and its Dagster data version are the digest of its inputs (the
data versions upstream, its code version, the specs and settings it reads), so equal inputs
name an existing folder and the work is not redone.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

DIGEST_CHARS = 20


def digest(*parts: object) -> str:
    """A stable digest of JSON-able parts (dicts are taken with sorted keys)."""
    text = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_CHARS]


def file_digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def files_state(files: dict[str, Path], known: dict[str, list] | None = None) -> dict[str, list]:
    """{relative name: [size, mtime_ns, sha256]} of `files`.

    A file whose size and mtime match `known` keeps its recorded hash, so only touched files
    are read; a touched file with the same content gives the same state digest.
    """
    known = known or {}
    state = {}
    for relative, path in sorted(files.items()):
        stat = path.stat()
        previous = known.get(relative)
        if previous and list(previous[:2]) == [stat.st_size, stat.st_mtime_ns]:
            state[relative] = list(previous)
        else:
            state[relative] = [stat.st_size, stat.st_mtime_ns, file_digest(path)]
    return state


def state_version(state: dict[str, list]) -> str:
    """The content version of a set of files: names and hashes, not times."""
    return digest({name: entry[2] for name, entry in state.items()})


# the warehouse assets' record of the file they published (`live_stat`)
LIVE_FILE = "union/live_file"


def live_stat(path: Path) -> list[int]:
    """A published file's identity: replaced or touched, it is another file."""
    return identity(path.stat())


def identity(stat: os.stat_result) -> list[int]:
    """`live_stat` of a file already stat'ed (or fstat'ed: an open file is that file)."""
    return [stat.st_ino, stat.st_size, stat.st_mtime_ns]
