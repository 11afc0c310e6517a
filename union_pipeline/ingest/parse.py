"""The contract's parsing rules as DuckDB SQL: dates, amounts, booleans, ID numbers, PII.

One set-based pass types every row; a value that is present but unparseable becomes NULL
with a flag, so the row rules can quarantine it with the column named.

Cells are cleaned once as they land (`clean_sql`): full-width forms folded (the part of
NFKC that exports need), odd spaces and tabs trimmed, Excel's text guards (`'330211...`,
`="330211..."`) unwrapped. A value shaped like an ID or mobile number in a column not
typed as one is PII all the same: hashed in key columns, masked everywhere else.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import pyarrow as pa
import pyarrow.compute as pc

from union_pipeline.ingest.safety import truncate_cell_sql
from union_pipeline.ingest.specs import Column, SourceSpec

# GB 11643 / ISO 7064 MOD 11-2 weights and check characters.
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK_CHARS = "10X98765432"

DATE_PATTERN = (
    r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
    r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$"
)
# Styles DuckDB's own date cast reads exactly as the contract means them.
ISO_LIKE_DATE = r"\d{4}-\d{1,2}-\d{1,2}|\d{4}/\d{1,2}/\d{1,2}"
# Full-width ASCII (U+FF01..FF5E) folds to ASCII as NFKC does; so do the ideographic
# space, no-break spaces and the full-width yen sign. Zero-width characters are dropped.
WIDE = "".join(map(chr, range(0xFF01, 0xFF5F))) + "\u3000\u00a0\u2007\u202f\uffe5"
NARROW = "".join(map(chr, range(0x21, 0x7F))) + "    \u00a5"
DROPPED = "\u200b\u200c\u200d\ufeff"
WIDE_CLASS = r"[\x{3000}\x{a0}\x{2007}\x{202f}\x{ff01}-\x{ff5e}\x{ffe5}\x{200b}-\x{200d}\x{feff}]"
SPACES = "chr(32), chr(9), chr(10), chr(13)"
WHITESPACE = "chr(32) || chr(9) || chr(10) || chr(13)"
# An ID number (18 characters, or the old 15 digits) or a mobile number, alone or inside
# a longer text. 18 characters count with or without a valid check digit: a mistyped ID
# number is still somebody's.
PII_RUN = r"\d{17}[\dXx]|\d{15}|1[3-9]\d[- ]?\d{4}[- ]?\d{4}"
PII_PATTERN = rf"(^|\D)({PII_RUN})([^\dXx]|$)"
# A totals row: its first non-empty cell (spaces removed, lower case) starts so.
TOTALS_PATTERN = r"^(本页|全部|总)?(合计|小计|总计|共计|累计)|^(sub|grand)?total|^sum\b"
TRUE_WORDS = ("是", "y", "yes", "true", "t", "1")
FALSE_WORDS = ("否", "n", "no", "false", "f", "0")


def _quote_list(words) -> str:
    return ", ".join("'" + w.replace("'", "''") + "'" for w in words)


def macros_sql(pii_key: bytes) -> list[str]:
    """Temporary macros for one connection; the key never leaves the process."""
    block = 64
    key = hashlib.sha256(pii_key).digest() if len(pii_key) > block else pii_key
    key = key.ljust(block, b"\0")
    inner = bytes(b ^ 0x36 for b in key).hex()
    outer = bytes(b ^ 0x5C for b in key).hex()
    return [
        "CREATE OR REPLACE TEMP MACRO up_text(s) AS NULLIF(trim(s), '')",
        # cleaning in three macros, each step computed once a cell (clean_sql); the cheap
        # tests first, as translate() and trim(s, characters) are slow (7 and 0.3 us)
        f"""CREATE OR REPLACE TEMP MACRO up_fold(s) AS CASE
            WHEN strlen(s) > length(s) AND regexp_matches(s, '{WIDE_CLASS}')
            THEN translate(s, {_quote_list([WIDE + DROPPED])}, {_quote_list([NARROW])})
            ELSE s END""",
        f"""CREATE OR REPLACE TEMP MACRO up_trim(s) AS CASE
            WHEN left(s, 1) IN ({SPACES}) OR right(s, 1) IN ({SPACES})
            THEN trim(s, {WHITESPACE}) ELSE s END""",
        rf"""CREATE OR REPLACE TEMP MACRO up_unwrap(s) AS NULLIF(CASE
            WHEN starts_with(s, '="') AND ends_with(s, '"') AND length(s) >= 3
            THEN trim(s[3:length(s) - 1], {WHITESPACE})
            WHEN starts_with(s, '''') THEN trim(s[2:], {WHITESPACE}) ELSE s END, '')""",
        # the cheap tests first: almost no cell is a totals label
        f"""CREATE OR REPLACE TEMP MACRO up_totals(s) AS CASE
            WHEN contains(left(s, 6), '计') OR lower(left(s, 1)) IN ('t', 's', 'g')
            THEN regexp_matches(lower(replace(s, ' ', '')), '{TOTALS_PATTERN}')
            ELSE false END""",
        # the length test spares nearly every cell the regular expression
        f"""CREATE OR REPLACE TEMP MACRO up_pii_like(s) AS CASE WHEN length(s) >= 11
            THEN regexp_matches(s, '{PII_PATTERN}') ELSE false END""",
        # the common styles go through DuckDB's fast cast; the rest through the pattern
        f"""CREATE OR REPLACE TEMP MACRO up_date(s) AS CASE
            WHEN regexp_full_match(trim(s), '{ISO_LIKE_DATE}')
            THEN TRY_CAST(trim(s) AS DATE)
            ELSE try(make_date(
                TRY_CAST(regexp_extract(trim(s), '{DATE_PATTERN}', 1) AS INTEGER),
                TRY_CAST(regexp_extract(trim(s), '{DATE_PATTERN}', 2) AS INTEGER),
                TRY_CAST(regexp_extract(trim(s), '{DATE_PATTERN}', 3) AS INTEGER))) END""",
        # a yuan sign before or 元 after an amount is how people write amounts
        r"""CREATE OR REPLACE TEMP MACRO up_unit(s) AS CASE
            WHEN contains(s, '元') OR contains(s, '¥')
            THEN trim(regexp_replace(trim(s), '^¥\s*|\s*元$', '', 'g')) ELSE s END""",
        # separators only where they group thousands: "1,2,3" is a typo, not 123
        r"""CREATE OR REPLACE TEMP MACRO up_number(s) AS CASE
            WHEN regexp_full_match(trim(s), '[-+]?\d{1,3}([,，]\d{3})+(\.\d+)?')
            THEN TRY_CAST(regexp_replace(trim(s), '[,，]', '', 'g') AS DOUBLE)
            ELSE TRY_CAST(NULLIF(trim(s), '') AS DOUBLE) END""",
        """CREATE OR REPLACE TEMP MACRO up_int(s) AS
            CASE WHEN up_number(s) = floor(up_number(s)) AND abs(up_number(s)) < 1e15
                 THEN up_number(s)::BIGINT END""",
        f"""CREATE OR REPLACE TEMP MACRO up_bool(s) AS
            CASE WHEN lower(trim(s)) IN ({_quote_list(TRUE_WORDS)}) THEN true
                 WHEN lower(trim(s)) IN ({_quote_list(FALSE_WORDS)}) THEN false END""",
        "CREATE OR REPLACE TEMP MACRO up_id_norm(s) AS upper(replace(trim(s), ' ', ''))",
        f"""CREATE OR REPLACE TEMP MACRO up_person_key(s) AS
            sha256(unhex('{outer}') || unhex(sha256(unhex('{inner}') || encode(s))))""",
        r"""CREATE OR REPLACE TEMP MACRO up_phone_valid(s) AS
            regexp_full_match(regexp_replace(trim(s), '[\s-]', '', 'g'), '1\d{10}')""",
        # Masks keep enough to find the record at the source, never enough to identify.
        """CREATE OR REPLACE TEMP MACRO up_mask_id(s) AS CASE WHEN s IS NULL THEN NULL
            WHEN length(s) >= 10 THEN left(s, 6) || repeat('*', length(s) - 10) || right(s, 4)
            ELSE repeat('*', length(s)) END""",
        """CREATE OR REPLACE TEMP MACRO up_mask_name(s) AS CASE WHEN s IS NULL THEN NULL
            ELSE left(s, 1) || repeat('*', greatest(length(s) - 1, 1)) END""",
        """CREATE OR REPLACE TEMP MACRO up_mask_phone(s) AS CASE WHEN s IS NULL THEN NULL
            WHEN length(s) >= 7 THEN left(s, 3) || repeat('*', length(s) - 7) || right(s, 4)
            ELSE repeat('*', length(s)) END""",
        # any column: a whole ID or mobile number masked as above; a run inside a longer
        # text keeps its first 3 and last 4 digits
        rf"""CREATE OR REPLACE TEMP MACRO up_mask_pii(s) AS CASE
            WHEN NOT up_pii_like(s) THEN s
            WHEN regexp_full_match(s, '\d{{17}}[\dXx]|\d{{15}}') THEN up_mask_id(upper(s))
            WHEN regexp_full_match(s, '{PII_RUN}') THEN up_mask_phone(s)
            ELSE regexp_replace(regexp_replace(s,
                '(\d{{3}})\d{{4,}}(\d{{3}}[\dXx]|\d{{4}})', '\1****\2', 'g'),
                '(1[3-9]\d)[- ]?\d{{4}}[- ]?(\d{{4}})', '\1****\2', 'g') END""",
        # key columns: the keyed hash of person_key, so joins across sources still hold
        """CREATE OR REPLACE TEMP MACRO up_key_text(s) AS CASE
            WHEN up_pii_like(s) THEN up_person_key(up_id_norm(s)) ELSE s END""",
    ]


Stage = list[tuple[str, str]]


def _id_number_stages(col: Column, today: dt.date, hashed: str | None = None) -> list[Stage]:
    """An ID number is normalised, split and checked once, in stages, because SQL macros
    repeat their argument: checked inline, the ID would be normalised 40 times a row.
    `hashed`: a column of the source holding the keyed hash already (see `typed_select`)."""
    name = col.name
    raw, norm, digits, birth, valid = (
        f'"{name}{suffix}"' for suffix in ("", "__norm", "__digits", "__birth", "__valid")
    )
    key = f'"{hashed}"' if hashed else f"up_person_key({norm})"
    # the 17 digits as one integer: integer arithmetic is ~30x faster than substrings
    check_sum = " + ".join(
        f"(({digits} // {10 ** (16 - i)}) % 10) * {w}" for i, w in enumerate(ID_WEIGHTS)
    )
    return [
        [(f"up_id_norm({raw})", f"{name}__norm")],
        [
            (
                f"CASE WHEN regexp_full_match({norm}, '\\d{{17}}[0-9X]') "
                f"THEN TRY_CAST(substr({norm}, 1, 17) AS BIGINT) END",
                f"{name}__digits",
            ),
            (f"try_strptime(substr({norm}, 7, 8), '%Y%m%d')::DATE", f"{name}__birth"),
        ],
        [
            (
                f"COALESCE(substr('{ID_CHECK_CHARS}', (({check_sum}) % 11)::INTEGER + 1, 1)"
                f" = substr({norm}, 18, 1) AND {birth} BETWEEN DATE '1900-01-01' "
                f"AND DATE '{today.isoformat()}', false)",
                f"{name}__valid",
            )
        ],
        [
            (f"CASE WHEN up_text({raw}) IS NOT NULL THEN {valid} END", f"{name}__ok"),
            (f"CASE WHEN {valid} THEN {key} END", "person_key"),
            (
                f"CASE WHEN {valid} THEN CASE WHEN ({digits} % 10) % 2 = 1 "
                f"THEN '男' ELSE '女' END END",
                "gender",
            ),
            (f"CASE WHEN {valid} THEN year({birth}) END", "birth_year"),
        ],
    ]


def typed_stages(
    col: Column, today: dt.date, key: bool = False, hashed: str | None = None
) -> list[Stage]:
    """SQL (expression, name) stages for one raw text column; the last stage is its output,
    each stage may use the names of the stages before it. `key`: the column joins rows
    (a key or a reference), so PII-shaped values are hashed rather than masked."""
    raw = f'"{col.name}"'
    text = f"up_text({raw})"
    if col.type == "text":
        return [[(f"up_key_text({text})" if key else f"up_mask_pii({text})", col.name)]]
    if col.type in ("int", "decimal", "date", "bool"):
        # each step a stage of its own, as macros repeat their argument: inline, the
        # flag below would parse the value again, and up_int would call up_number 4 times
        value, number, unit = (f'"{col.name}{s}"' for s in ("__value", "__number", "__unit"))
        first = {
            # an ID or phone number in a number column is no number: quarantined, masked
            "int": [(f"CASE WHEN NOT up_pii_like({raw}) THEN up_number({raw}) END", number)],
            "decimal": [(f"CASE WHEN NOT up_pii_like({raw}) THEN up_unit({raw}) END", unit)],
            "date": [],
            "bool": [],
        }[col.type]
        parsed = {
            "int": f"CASE WHEN {number} = floor({number}) AND abs({number}) < 1e15 "
            f"THEN {number}::BIGINT END",
            "decimal": f"TRY_CAST(up_number({unit}) AS DECIMAL(18, {col.scale}))",
            "date": f"up_date({raw})",
            "bool": f"up_bool({raw})",
        }[col.type]
        stages = [[(sql, name.strip('"')) for sql, name in first]] if first else []
        return [
            *stages,
            [(parsed, value.strip('"'))],
            [
                (value, col.name),
                (f"({text} IS NULL OR {value} IS NOT NULL)", f"{col.name}__parsed"),
            ],
        ]
    if col.type == "id_number":
        return _id_number_stages(col, today, hashed)
    if col.type == "phone":
        return [
            [
                (f"CASE WHEN {text} IS NOT NULL THEN up_phone_valid({raw}) END", f"{col.name}__ok"),
                (f"{text} IS NOT NULL", "has_phone"),
            ]
        ]
    if col.type == "name":
        return [[(f"CASE WHEN {text} IS NOT NULL THEN true END", f"{col.name}__ok")]]
    raise AssertionError(col.type)


def typed_select(
    columns,
    today: dt.date,
    source: str,
    keep: list[str],
    keys=frozenset(),
    hashed: str | None = None,
) -> str:
    """One SELECT typing `columns` of relation `source`, keeping the `keep` columns as they
    are: intermediate stages nest as subqueries, so each is computed once per row. `keys`:
    the names of the columns that join rows (see `typed_stages`). `hashed`: a column of
    `source` that holds the keyed hash of the ID number (see load._type), else computed
    here, row by row."""
    staged = [typed_stages(c, today, c.name in keys, hashed) for c in columns]
    depth = max(len(s) for s in staged)
    query = f"SELECT * FROM {source}"
    for level in range(depth - 1):
        extra = [
            f'{sql} AS "{name}"'
            for stages in staged
            if len(stages) - 1 > level
            for sql, name in stages[level]
        ]
        if extra:
            query = f"SELECT *, {', '.join(extra)} FROM ({query})"
    outputs = [f'{sql} AS "{name}"' for stages in staged for sql, name in stages[-1]]
    return f"SELECT {', '.join([*keep, *outputs])} FROM ({query})"


def masked_values_sql(spec: SourceSpec) -> str:
    """A JSON text of the row's raw values, PII masked, for the quarantine table."""
    parts = []
    for col in spec.columns:
        raw = f'up_text("{col.name}")'
        value = {
            "id_number": f"up_mask_id(up_id_norm({raw}))",
            "name": f"up_mask_name({raw})",
            "phone": f"up_mask_phone({raw})",
        }.get(col.type, f"up_mask_pii({raw})")  # PII turns up in any column
        # a cell past a preview's length is cut: the quarantine shows where, not all
        parts.append(f'"{col.name}" := {truncate_cell_sql(value)}')
    return f"to_json(struct_pack({', '.join(parts)}))::VARCHAR"


def content_hash_sql(spec: SourceSpec, relation: str = "") -> str:
    """Hash of every value (of `relation`'s columns, when given), to tell identical
    repeats from conflicting duplicates."""
    # a 64-bit hash: compared only among rows sharing a key, collisions are negligible
    prefix = f"{relation}." if relation else ""
    values = ", ".join(f'up_text({prefix}"{c.name}")' for c in spec.columns)
    return f"hash({values})"


# The UTF-8 forms of every character up_fold changes start with one of these: a cell without
# any of them is not folded (`clean_batch`).
FOLD_PREFIXES = (b"\xef", b"\xe2\x80", b"\xe3\x80\x80", b"\xc2\xa0")
assert all(c.encode().startswith(FOLD_PREFIXES) for c in WIDE + DROPPED)
TRIMMED = "".join(map(chr, (32, 9, 10, 13)))  # SPACES, as up_trim and up_unwrap trim


def clean_batch(batch: pa.RecordBatch, columns: list[str]) -> tuple[pa.RecordBatch, list]:
    """`clean_sql`'s cleaning of `columns` in Arrow, for the cells that need no more than
    trimming (nearly all): the batch so cleaned, and the cells that need folding or
    unwrapping as (column, mask, their raw values), for `finish_clean`. Arrow's kernels
    do in one pass a column what the SQL macros do in several; and this runs in the
    read-ahead thread (see load.py), beside DuckDB."""
    odd = []
    arrays = list(batch.columns)
    for name in columns:
        i = batch.schema.get_field_index(name)
        cells = batch.column(i)
        trimmed = pc.utf8_trim(cells, characters=TRIMMED)
        mask = pc.or_(pc.starts_with(trimmed, '="'), pc.starts_with(trimmed, "'"))
        # every folded character is outside ASCII: most columns (IDs, dates, amounts) are
        # spared the four searches, the dearest part of this
        if not pc.all(pc.string_is_ascii(cells)).as_py():
            as_bytes = cells.cast(pa.binary())
            for prefix in FOLD_PREFIXES:
                mask = pc.or_(mask, pc.match_substring(as_bytes, prefix))
        mask = pc.fill_null(mask, False)
        arrays[i] = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, trimmed.type), trimmed)
        if pc.any(mask).as_py():
            odd.append((i, mask, pc.filter(cells, mask)))
    return pa.RecordBatch.from_arrays(arrays, schema=batch.schema), odd


def finish_clean(con, batch: pa.RecordBatch, odd: list) -> pa.RecordBatch:
    """The batch of `clean_batch` with its odd cells cleaned by `clean_sql` itself."""
    if not odd:
        return batch
    cells = pa.concat_arrays([raw.cast(pa.string()) for _, _, raw in odd])
    con.register("odd_cells", pa.table({"i": pa.array(range(len(cells))), "v": cells}))
    query = clean_sql(["v"], "odd_cells", ["i"])
    cleaned = con.sql(f"SELECT v FROM ({query}) ORDER BY i").to_arrow_table()
    con.unregister("odd_cells")
    cleaned = cleaned.column(0).combine_chunks()
    arrays, start = list(batch.columns), 0
    for i, mask, raw in odd:
        part = cleaned.slice(start, len(raw)).cast(arrays[i].type)
        arrays[i] = pc.replace_with_mask(arrays[i], mask, part)
        start += len(raw)
    return pa.RecordBatch.from_arrays(arrays, schema=batch.schema)


def clean_sql(columns: list[str], source: str, keep: list[str]) -> str:
    """SELECT of relation `source` with every cell of `columns` cleaned (see the module
    docstring), keeping the `keep` columns as they are."""
    kept = ", ".join(f'"{k}"' for k in keep)
    query = f"SELECT * FROM {source}"
    for step in ("up_fold", "up_trim", "up_unwrap"):
        cleaned = ", ".join(f'{step}("{c}") AS "{c}"' for c in columns)
        query = f"SELECT {kept}, {cleaned} FROM ({query})"
    return query
