"""What a name may hold: one line of visible text. One rule for the LIMS import and for every look-up.

SQLite would store a NUL or a newline, PostgreSQL refuses a NUL with a raw error of its own, a byte that was
not valid UTF-8 on the command line arrives as a lone surrogate, and any of them (or a bidirectional
control that reorders what is shown) would corrupt a log line, a directory listing or a page.
"""

from __future__ import annotations

import unicodedata

_KINDS = {
    "Cc": "a control character",
    "Cs": "an undecodable byte",
    "Zl": "a line break",
    "Zp": "a line break",
}
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def not_text(value: str) -> str | None:
    """Why `value` is not one line of visible text, e.g. "a control character ('\\x00' at position 3)";
    None when it is."""
    for position, char in enumerate(value):
        what = _KINDS.get(unicodedata.category(char))
        if what is None and char in _BIDI_CONTROLS:
            what = "a bidirectional control"
        if what is not None:
            return f"{what} ({char!r} at position {position})"
    return None
