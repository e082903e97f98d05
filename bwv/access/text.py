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


def hidden_character(text: str) -> str | None:
    """The first character of ``text`` that does not show as itself, as ``U+XXXX``; None if
    every one does."""
    for char in text:
        if unicodedata.category(char) in _HIDDEN:
            return f"U+{ord(char):04X}"
    return None
