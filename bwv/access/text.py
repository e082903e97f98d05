"""Identifiers people type (case references and the like): text that shows as what it is.

A case reference is searched for, printed in tables and read aloud in court. A control character
(C0, DEL, C1) can rewrite a terminal, and a bidirectional override (U+202A-U+202E,
U+2066-U+2069) makes ``CASE-1-EVIL`` display as something else (Trojan Source, CVE-2021-42574):
both are refused, as are the other invisible format characters and line separators.
"""

from __future__ import annotations

import unicodedata

# Cc: C0, DEL, C1. Cf: bidi controls, zero-width and other format characters. Zl/Zp: line and
# paragraph separators. Cs/Co/Cn: surrogates, private use, unassigned.
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


# Characters that reorder what a terminal or a page shows (Unicode UAX #9 controls).
BIDI_CONTROLS = frozenset(
    chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)
)


def shown_badly(char: str) -> bool:
    """A C0, DEL or C1 control (Unicode category Cc) or a bidirectional control: what could
    retitle, clear or reorder a screen. Looser than :func:`hidden_character`, for names taken
    from devices (file names, serials), which may carry other format characters."""
    return unicodedata.category(char) == "Cc" or char in BIDI_CONTROLS


def hidden_character(text: str) -> str | None:
    """The first character of ``text`` that does not show as itself, as ``U+XXXX``; None if
    every one does."""
    for char in text:
        if unicodedata.category(char) in _HIDDEN:
            return f"U+{ord(char):04X}"
    return None
