"""Text made safe to open: for the writers of CSV/Excel outputs and of previews.

A cell that starts with `=`, `+`, `-`, `@` (or a tab or carriage return, which some
programs strip before looking) is run as a formula when the file is opened in Excel or
WPS: a union name like `=HYPERLINK(...)` in an export would be a link the federation
sent. An apostrophe in front makes the spreadsheet show the text as text.
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PREVIEW_CHARS = 200


def neutralise_formula(text: str | None) -> str | None:
    """`text`, with an apostrophe in front when a spreadsheet would run it as a formula."""
    if text and text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def neutralise_formula_sql(expression: str) -> str:
    """The DuckDB SQL of `neutralise_formula` applied to a text `expression`."""
    starts = " OR ".join(f"starts_with({expression}, chr({ord(c)}))" for c in FORMULA_STARTS)
    return f"CASE WHEN {starts} THEN chr(39) || {expression} ELSE {expression} END"


def truncate_cell(text: str | None, limit: int = PREVIEW_CHARS) -> str | None:
    """A cell for a preview: at most `limit` characters, `…` marking a cut."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def truncate_cell_sql(expression: str, limit: int = PREVIEW_CHARS) -> str:
    """The DuckDB SQL of `truncate_cell` applied to a text `expression`."""
    return (
        f"CASE WHEN length({expression}) > {limit} "
        f"THEN left({expression}, {limit - 1}) || '…' ELSE {expression} END"
    )
