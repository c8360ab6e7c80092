"""Uploaded dataset files (CSV, JSON Lines, Parquet) to rows of JSON-native values; pure, bytes in.

Every refusal is `errors.InvalidInput` (422) and names what is wrong and where (line, row or column).

Value rules:
    CSV: every value stays a string; an empty cell is "". Blank lines are skipped.
    JSON Lines: values are kept as parsed; a key a line lacks is null in that row, so every row has every
        column. NaN and Infinity are refused (they are not JSON).
    Parquet: dates, times and timestamps become ISO 8601 strings; durations become seconds (float);
        decimals become floats when that loses nothing, else their exact decimal string; NaN and
        infinite floats become null; binary values are decoded as UTF-8 text and refused when they are
        not UTF-8 (base64 would silently change what the value means); maps become objects.
    Any format: a string holding a NUL character is refused (PostgreSQL cannot store it).
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import math
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from errors import InvalidInput

FORMATS: dict[str, str] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


@dataclass(frozen=True)
class ParsedDataset:
    format: str  # csv | jsonl | parquet
    columns: list[str]
    rows: list[dict[str, Any]]


def dataset_format(file_name: str) -> str:
    """The format a file name's extension names.

    Raises:
        InvalidInput: the extension is not one of `FORMATS`.
    """
    dot = file_name.rfind(".")
    ext = file_name[dot:].lower() if dot >= 0 else ""
    if ext not in FORMATS:
        supported = ", ".join(FORMATS)
        raise InvalidInput(f"Unsupported dataset file '{file_name}': the name must end in one of {supported}")
    return FORMATS[ext]


def parse_dataset(
    file_name: str,
    data: bytes,
    *,
    max_row_bytes: int = 256 * 1024,
    max_rows: int = 100_000,
    max_total_bytes: int = 128 * 1024 * 1024,
) -> ParsedDataset:
    """Parse an uploaded dataset; the format comes from the file name's extension.

    `max_row_bytes` bounds one row and `max_total_bytes` all rows, both measured as compact JSON
    (what is stored); `max_rows` bounds the row count. The totals matter for Parquet, whose compression
    lets a small upload expand to far more data.

    Raises:
        InvalidInput: unknown extension, empty file, no rows, bad or duplicate column names, bad encoding,
            a malformed line, a row or the whole file over its limit, or an unreadable Parquet file.
    """
    fmt = dataset_format(file_name)
    if not data.strip(b" \t\r\n\xef\xbb\xbf"):
        raise InvalidInput(f"Dataset file '{file_name}' is empty")
    budget = _Budget(max_row_bytes, max_rows, max_total_bytes)
    if fmt == "csv":
        columns, rows = _parse_csv(_text(data), budget)
    elif fmt == "jsonl":
        columns, rows = _parse_jsonl(_text(data), budget)
    else:
        columns, rows = _parse_parquet(data, budget)
    if not rows:
        raise InvalidInput(f"Dataset file '{file_name}' has no rows")
    return ParsedDataset(fmt, columns, rows)


class _Budget:
    """Counts rows and their stored size, refusing the first row that breaks a limit."""

    def __init__(self, max_row_bytes: int, max_rows: int, max_total_bytes: int) -> None:
        self.max_row_bytes, self.max_rows, self.max_total_bytes = max_row_bytes, max_rows, max_total_bytes
        self.rows = 0
        self.total = 0

    def admit(self, row: dict[str, Any], where: str) -> dict[str, Any]:
        self.rows += 1
        if self.rows > self.max_rows:
            raise InvalidInput(f"The dataset has more than {self.max_rows} rows")
        try:
            encoded = json.dumps(row, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except ValueError:
            raise InvalidInput(f"{where}: a number is out of range (infinite or NaN)") from None
        except RecursionError:
            raise InvalidInput(f"{where}: nested too deeply") from None
        if "\\u0000" in encoded and _has_nul(row):
            raise InvalidInput(f"{where}: contains a NUL character, which cannot be stored")
        size = len(encoded.encode())
        if size > self.max_row_bytes:
            raise InvalidInput(
                f"{where}: the row is {size} bytes as JSON, over the limit of {self.max_row_bytes}"
            )
        self.total += size
        if self.total > self.max_total_bytes:
            raise InvalidInput(f"The dataset is larger than {self.max_total_bytes} bytes as JSON")
        return row


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise InvalidInput(f"The file is not valid UTF-8 (line {line}, byte offset {err.start})") from None


def _check_columns(columns: Iterable[str], where: str) -> list[str]:
    seen: list[str] = []
    for name in columns:
        if not name.strip():
            raise InvalidInput(f"{where}: column {len(seen) + 1} has an empty name")
        if name in seen:
            raise InvalidInput(f"{where}: duplicate column name '{name}'")
        seen.append(name)
    return seen


def _parse_csv(text: str, budget: _Budget) -> tuple[list[str], list[dict[str, Any]]]:
    # The csv module's field limit (128 Ki characters by default) is process-wide; it is only ever raised,
    # to the row limit, so a field it still refuses makes its row too large anyway.
    if csv.field_size_limit() < budget.max_row_bytes:
        csv.field_size_limit(budget.max_row_bytes)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    columns: list[str] | None = None
    rows: list[dict[str, Any]] = []
    end = 0  # line where the previous record ended; a record may span lines inside quotes
    while True:
        start = end + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            if "field limit" in str(err):
                raise InvalidInput(
                    f"Line {start}: the row is over the limit of {budget.max_row_bytes} bytes"
                ) from None
            raise InvalidInput(f"Line {start}: malformed CSV ({err})") from None
        end = reader.line_num
        if not fields:
            continue
        if columns is None:
            columns = _check_columns(fields, "The CSV header")
            continue
        if len(fields) != len(columns):
            raise InvalidInput(f"Line {start}: {len(fields)} fields, but the header has {len(columns)}")
        rows.append(budget.admit(dict(zip(columns, fields, strict=True)), f"Line {start}"))
    if columns is None:
        raise InvalidInput("The CSV file has no header row")
    return columns, rows


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key '{key}'")
        obj[key] = value
    return obj


def _parse_jsonl(text: str, budget: _Budget) -> tuple[list[str], list[dict[str, Any]]]:
    columns: dict[str, None] = {}  # insertion-ordered set
    parsed: list[dict[str, Any]] = []
    # Split on "\n" only: str.splitlines() would also split on U+2028 and others, legal inside JSON strings.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line, object_pairs_hook=_object, parse_constant=_no_constants)
        except ValueError as err:  # JSONDecodeError is a ValueError
            raise InvalidInput(f"Line {number}: not valid JSON ({err})") from None
        except RecursionError:
            raise InvalidInput(f"Line {number}: nested too deeply") from None
        if not isinstance(value, dict):
            raise InvalidInput(f"Line {number}: expected a JSON object, got {type(value).__name__}")
        for key in value:
            if key not in columns:
                if not key.strip():
                    raise InvalidInput(f"Line {number}: a key is empty, so it cannot name a column")
                columns[key] = None
        parsed.append(budget.admit(value, f"Line {number}"))
    names = list(columns)
    # Fill keys a line lacked with null, so every row has every column, as a table would show it.
    return names, [row if len(row) == len(names) else {c: row.get(c) for c in names} for row in parsed]


def _parse_parquet(data: bytes, budget: _Budget) -> tuple[list[str], list[dict[str, Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        columns = _check_columns([str(n) for n in parquet.schema_arrow.names], "The Parquet schema")
        if parquet.metadata.num_rows > budget.max_rows:
            raise InvalidInput(f"The dataset has more than {budget.max_rows} rows")
        rows: list[dict[str, Any]] = []
        for batch in _batches(parquet):
            for record in batch.to_pylist(maps_as_pydicts="lossy"):
                where = f"Row {len(rows) + 1}"
                row = {c: _json_native(record.get(c), f"{where}, column '{c}'") for c in columns}
                rows.append(budget.admit(row, where))
    except (pa.ArrowException, OSError) as err:
        raise InvalidInput(f"Not a readable Parquet file ({err})") from None
    return columns, rows


def _batches(parquet: Any) -> Iterator[Any]:
    # Small batches bound memory: a whole compressed row group can expand to far more than the upload.
    yield from parquet.iter_batches(batch_size=1024)


def _json_native(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return _decimal(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{where}: binary data that is not UTF-8 text cannot be stored") from None
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json_native(v, where) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_native(v, where) for v in value]
    raise InvalidInput(f"{where}: values of type {type(value).__name__} are not supported")


def _decimal(value: decimal.Decimal) -> float | str | None:
    if not value.is_finite():
        return None
    as_float = float(value)
    if math.isfinite(as_float) and decimal.Decimal(repr(as_float)) == value:
        return as_float
    return str(value)
