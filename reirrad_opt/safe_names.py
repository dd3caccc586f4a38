"""Names read from input files, made safe to print and to store.

A ROI name comes from a file and may hold anything: a NUL (which truncates the key of a
structure's mask in ``case.npz``, so the case cannot be read back), a newline (a fake line in a
message or report), a terminal escape sequence (``ESC [31m`` recolours a terminal), or backslashes.

* :func:`printable` is the one way a name from a file is shown in a message: every character that
  is not printable, and the backslash, is written as a Python escape (``\\x00``, ``\\n``,
  ``\\x1b``, ``\\\\``), so a message is always one line of plain text and names stay tellable apart.
* :func:`structure_key` gives the name a case stores: control characters replaced by ``_``.
"""
from __future__ import annotations

_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(name: object) -> str:
    """``name`` quoted, with non-printable characters and backslashes escaped.

    Letters of any script are kept (``'Hypophyse_ü'``); ``'a\\x00b'``, ``'Line\\nFake'`` and
    ``'\\x1b[31mred'`` come out as plain text without the control characters themselves.
    """
    text = str(name)
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "'":
            out.append("\\'")
        elif ch.isprintable():
            out.append(ch)
        elif ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "'" + "".join(out) + "'"


def structure_key(name: str) -> str:
    """The name under which a structure is stored: non-printable characters (NUL, newline, tab,
    escape, ...) replaced by ``_`` and surrounding spaces removed. Equal to ``name`` for every
    ordinary name."""
    cleaned = "".join(ch if ch.isprintable() else "_" for ch in str(name)).strip()
    return cleaned or "_"
