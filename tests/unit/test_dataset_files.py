"""Dataset file parsing: CSV, JSON Lines and Parquet to JSON-native rows, and every refusal."""

from __future__ import annotations

import datetime as dt
import decimal
import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.dataset_files import parse_dataset
from errors import InvalidInput


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def refused(file_name: str, data: bytes, **limits: Any) -> str:
    with pytest.raises(InvalidInput) as exc:
        parse_dataset(file_name, data, **limits)
    return exc.value.detail


def test_csv_values_stay_strings_and_empty_cells_are_empty_strings() -> None:
    parsed = parse_dataset(
        "people.csv", b'\xef\xbb\xbfname,age,note\r\nann,31,\r\n\r\nbob,4,"a, ""b""\nc"\r\n'
    )
    assert parsed.format == "csv"
    assert parsed.columns == ["name", "age", "note"]
    assert parsed.rows == [
        {"name": "ann", "age": "31", "note": ""},
        {"name": "bob", "age": "4", "note": 'a, "b"\nc'},
    ]


def test_csv_row_with_wrong_field_count_names_its_line() -> None:
    assert refused("x.csv", b"a,b\n1,2\n\n3\n") == "Line 4: 1 fields, but the header has 2"


def test_csv_line_number_is_where_a_multiline_record_starts() -> None:
    detail = refused("x.csv", b'a,b\n"1\n2",3\n4,5,6\n')
    assert detail.startswith("Line 4:")


@pytest.mark.parametrize(
    ("header", "fragment"),
    [(b"a,,c", "column 2 has an empty name"), (b"a,b,a", "duplicate column name 'a'")],
)
def test_csv_header_names_must_be_present_and_unique(header: bytes, fragment: str) -> None:
    assert fragment in refused("x.csv", header + b"\n1,2,3\n")


def test_csv_with_a_header_but_no_rows_is_refused() -> None:
    assert refused("only-header.csv", b"a,b\n\n") == "Dataset file 'only-header.csv' has no rows"


def test_malformed_csv_quoting_names_the_line() -> None:
    assert refused("x.csv", b'a,b\n1,"2"x\n').startswith("Line 2: malformed CSV")


def test_jsonl_columns_are_keys_in_first_seen_order_and_missing_keys_are_null() -> None:
    data = b'{"q": "hi", "n": 1}\n\n{"n": 2, "extra": [1, {"k": null}]}\r\n'
    parsed = parse_dataset("rows.ndjson", data)
    assert parsed.format == "jsonl"
    assert parsed.columns == ["q", "n", "extra"]
    assert parsed.rows == [
        {"q": "hi", "n": 1, "extra": None},
        {"q": None, "n": 2, "extra": [1, {"k": None}]},
    ]


def test_jsonl_line_separator_characters_inside_strings_are_not_line_breaks() -> None:
    parsed = parse_dataset("rows.jsonl", '{"t": "a\u2028b"}\n'.encode())
    assert parsed.rows == [{"t": "a\u2028b"}]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b'{"a": 1}\n{"a": \n', "Line 2: not valid JSON"),
        (b'{"a": 1}\n[1, 2]\n', "Line 2: expected a JSON object, got list"),
        (b'{"a": NaN}\n', "Line 1: not valid JSON (NaN is not valid JSON)"),
        (b'{"a": 1, "a": 2}\n', "Line 1: not valid JSON (duplicate key 'a')"),
        (b'{"a": 1}\n{"": 2}\n', "Line 2: a key is empty"),
    ],
)
def test_malformed_jsonl_lines_are_refused_by_line_number(data: bytes, fragment: str) -> None:
    assert fragment in refused("x.jsonl", data)


def test_parquet_values_become_json_native() -> None:
    table = pa.table(
        {
            "s": ["a", None],
            "i": [1, 2],
            "f": [1.5, float("nan")],
            "d": [dt.date(2024, 1, 2), dt.date(2024, 1, 3)],
            "ts": pa.array(
                [dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC), None], type=pa.timestamp("us", tz="UTC")
            ),
            "dec": pa.array(
                [decimal.Decimal("12.34"), decimal.Decimal("0.1234567890123456789")], pa.decimal128(25, 19)
            ),
            "b": [b"text", b"more"],
            "nested": [{"x": [1, 2]}, {"x": []}],
            "m": pa.array([[("k", 1)], []], type=pa.map_(pa.string(), pa.int64())),
        }
    )
    parsed = parse_dataset("t.parquet", parquet_bytes(table))
    assert parsed.format == "parquet"
    assert parsed.columns == ["s", "i", "f", "d", "ts", "dec", "b", "nested", "m"]
    first, second = parsed.rows
    assert first == {
        "s": "a",
        "i": 1,
        "f": 1.5,
        "d": "2024-01-02",
        "ts": "2024-01-02T03:04:05+00:00",
        "dec": 12.34,
        "b": "text",
        "nested": {"x": [1, 2]},
        "m": {"k": 1},
    }
    assert second["s"] is None and second["f"] is None and second["ts"] is None
    assert second["dec"] == "0.1234567890123456789"  # a float would lose digits


def test_parquet_binary_that_is_not_text_is_refused_naming_row_and_column() -> None:
    data = parquet_bytes(pa.table({"blob": [b"ok", b"\xff\xfe"]}))
    assert (
        refused("t.parquet", data)
        == "Row 2, column 'blob': binary data that is not UTF-8 text cannot be stored"
    )


def test_parquet_duplicate_column_names_are_refused() -> None:
    table = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    assert "duplicate column name 'a'" in refused("t.parquet", parquet_bytes(table))


def test_unreadable_parquet_is_refused() -> None:
    assert refused("t.parquet", b"PAR1 but not really").startswith("Not a readable Parquet file")


def test_parquet_without_rows_is_refused() -> None:
    data = parquet_bytes(pa.table({"a": pa.array([], type=pa.int64())}))
    assert refused("empty.parquet", data) == "Dataset file 'empty.parquet' has no rows"


def test_unknown_extension_lists_the_supported_ones() -> None:
    detail = refused("data.xlsx", b"whatever")
    assert "data.xlsx" in detail and ".csv, .jsonl, .ndjson, .parquet" in detail


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf \r\n"])
def test_empty_file_is_refused(data: bytes) -> None:
    assert refused("x.csv", data) == "Dataset file 'x.csv' is empty"


def test_bad_encoding_names_the_line() -> None:
    assert refused("x.csv", b"a\nok\n\xe9t\xe9\n") == "The file is not valid UTF-8 (line 3, byte offset 5)"


def test_row_over_the_size_limit_is_refused_naming_the_line() -> None:
    data = b"a\nshort\n" + b"x" * 100 + b"\n"
    assert (
        refused("x.csv", data, max_row_bytes=50)
        == "Line 3: the row is 108 bytes as JSON, over the limit of 50"
    )


def test_row_and_total_limits() -> None:
    many = b"a\n" + b"1\n" * 4
    assert refused("x.csv", many, max_rows=3) == "The dataset has more than 3 rows"
    assert refused("x.csv", many, max_total_bytes=20) == "The dataset is larger than 20 bytes as JSON"


def test_nul_characters_are_refused_because_postgres_cannot_store_them() -> None:
    assert (
        refused("x.jsonl", b'{"a": "x\\u0000y"}\n')
        == "Line 1: contains a NUL character, which cannot be stored"
    )
    # A literal backslash-u text is not a NUL.
    assert parse_dataset("x.jsonl", b'{"a": "\\\\u0000"}\n').rows == [{"a": "\\u0000"}]


def test_csv_field_larger_than_the_row_limit_is_a_row_size_refusal() -> None:
    data = b"a\n" + b"x" * 300_000 + b"\n"
    assert refused("x.csv", data) == "Line 2: the row is over the limit of 262144 bytes"
    # A field over the csv module's default 128 Ki limit but within the row limit is accepted.
    assert parse_dataset("x.csv", b"a\n" + b"y" * 200_000 + b"\n").rows == [{"a": "y" * 200_000}]


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (b'{"x": 1e400}', "out of range"),
        (b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    ],
)
def test_jsonl_values_postgresql_cannot_store_are_refused_by_line(line: bytes, fragment: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_dataset("rows.jsonl", b'{"x": 1}\n' + line + b"\n")
    assert fragment in caught.value.detail
    assert "Line 2" in caught.value.detail
