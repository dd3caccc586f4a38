"""Where a table header or a key stands in a TOML text (1-based line numbers), so that an error
about a protocol, settings or study file can name its line; tomllib itself keeps no positions."""
from __future__ import annotations

import re


class TomlLines:
    """The lines of a TOML text, searched for table headers and keys."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def header(self, name: str, index: int | None = None) -> int | None:
        """Line of ``[name]`` (index None) or of the index-th ``[[name]]``; None if absent."""
        if index is None:
            pat = re.compile(rf"^\s*\[\s*{re.escape(name)}\s*\]")
        else:
            pat = re.compile(rf"^\s*\[\[\s*{re.escape(name)}\s*\]\]")
        hits = [i + 1 for i, line in enumerate(self.lines) if pat.match(line)]
        k = 0 if index is None else index
        return hits[k] if k < len(hits) else None

    def key(self, key: str, start: int | None) -> int | None:
        """Line of ``key =`` in the table whose header is on line ``start``, i.e. before the next
        table header; ``start`` itself if the key is not found there (None if ``start`` is None)."""
        if start is None:
            return None
        pat = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
        for i in range(start, len(self.lines)):
            if re.match(r"^\s*\[", self.lines[i]):
                break
            if pat.match(self.lines[i]):
                return i + 1
        return start
