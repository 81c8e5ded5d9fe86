"""CSV and JSON payloads -> one sorted, de-duplicated series per source identifier."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from hydroserver_provider.definitions import CSVPayload, DataConnection, parse_data_connection
from hydroserver_provider.errors import DefinitionError, ParseError
from hydroserver_provider.sources.csv_reader import dedupe_names
from hydroserver_provider.sources.parse import ParseResult, SeriesBuilder, parse_payload
from hydroserver_provider.timestamps.columns import TimestampParser


def utc(*values: str) -> np.ndarray:
    return np.array(values, dtype="M8[us]")


def csv_connection(**kwargs) -> DataConnection:
    payload = {
        k: kwargs.pop(k) for k in ("header_row", "data_start_row", "delimiter") if k in kwargs
    }
    kwargs.setdefault("timestamp_key", "Timestamp")
    return DataConnection(
        name="Station 42",
        source_url="https://example.com/data.csv",
        payload={"type": "CSV", **payload},
        **kwargs,
    )


def json_connection(jmespath: str = "data[*]", **kwargs) -> DataConnection:
    kwargs.setdefault("timestamp_key", "datetime")
    return DataConnection(
        name="API",
        source_url="https://example.com/data.json",
        payload={"type": "JSON", "jmespath": jmespath},
        **kwargs,
    )


def parse_file(
    tmp_path: Path, content: bytes | str, identifiers, connection, **kwargs
) -> ParseResult:
    """Write ``content`` to a real file and parse it from an open binary handle."""
    path = tmp_path / "payload"
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    with path.open("rb") as handle:
        return parse_payload(handle, connection, identifiers, **kwargs)


def parse_bytes(content: bytes | str, identifiers, connection, **kwargs) -> ParseResult:
    data = content.encode("utf-8") if isinstance(content, str) else content
    return parse_payload(io.BytesIO(data), connection, identifiers, **kwargs)


class Trickle:
    """A raw stream answering every read with at most ``step`` bytes, like a slow socket."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = data
        self._pos = 0
        self._step = step

    def read(self, n: int = -1) -> bytes:
        n = self._step if n is None or n < 0 else min(n, self._step)
        out = self._data[self._pos : self._pos + n]
        self._pos += len(out)
        return out


def values_of(result: ParseResult, ident: str) -> list[float]:
    return result.series[ident].values.tolist()


def times_of(result: ParseResult, ident: str) -> np.ndarray:
    return result.series[ident].timestamps


# -- CSV basics ----------------------------------------------------------------------------------


def test_csv_basic_shapes_and_types(tmp_path):
    content = (
        "Timestamp,Temperature,Humidity\n"
        "2024-01-01T02:00:00Z,3.5,40\n"
        "2024-01-01T00:00:00Z,1.5,41\n"
        "2024-01-01T01:00:00Z,2.5,42\n"
    )
    result = parse_file(tmp_path, content, ["Temperature", "Humidity"], csv_connection())
    assert result.rows_read == 3
    series = result.series["Temperature"]
    assert series.timestamps.dtype == np.dtype("M8[us]")
    assert series.values.dtype == np.float64
    np.testing.assert_array_equal(
        series.timestamps, utc("2024-01-01T00:00", "2024-01-01T01:00", "2024-01-01T02:00")
    )
    assert series.values.tolist() == [1.5, 2.5, 3.5]
    assert values_of(result, "Humidity") == [41.0, 42.0, 40.0]
    assert result.dropped == {"Temperature": {}, "Humidity": {}}
    assert result.timestamps.format_tried == "ISO 8601"


def test_table_is_long_sorted_and_utc():
    content = "Timestamp,b,a\n2024-01-01T01:00:00Z,1,10\n2024-01-01T00:00:00Z,2,\n"
    result = parse_bytes(content, ["b", "a"], csv_connection())
    table = result.table
    assert list(table.columns) == ["timestamp", "source_identifier", "value"]
    assert str(table["timestamp"].dt.tz) == "UTC"
    assert table["source_identifier"].tolist() == ["a", "b", "b"]
    assert table["value"].tolist() == [10.0, 2.0, 1.0]
    assert table["timestamp"].tolist() == [
        pd.Timestamp("2024-01-01T01:00Z"),
        pd.Timestamp("2024-01-01T00:00Z"),
        pd.Timestamp("2024-01-01T01:00Z"),
    ]


def test_empty_table_has_columns():
    result = parse_bytes("Timestamp,a\n", ["a"], csv_connection())
    assert result.rows_read == 0
    assert len(result.series["a"]) == 0
    table = result.table
    assert list(table.columns) == ["timestamp", "source_identifier", "value"]
    assert len(table) == 0


def test_repeated_identifier_gives_one_series():
    result = parse_bytes("Timestamp,a\n2024-01-01,1\n", ["a", "a"], csv_connection())
    assert list(result.series) == ["a"]


# -- CSV layout: rows, delimiters, quoting, encodings --------------------------------------------


def test_units_row_between_header_and_data(tmp_path):
    content = "Timestamp,Stage\n(UTC),(ft)\n2024-01-01 00:00,1.25\n2024-01-01 00:15,1.5\n"
    result = parse_file(tmp_path, content, ["Stage"], csv_connection(data_start_row=3))
    assert result.rows_read == 2
    assert values_of(result, "Stage") == [1.25, 1.5]
    assert result.dropped["Stage"] == {}


def test_rows_are_physical_lines_including_comments(tmp_path):
    content = (
        "# Station 42\n"
        "# exported 2024-01-02\n"
        "\n"
        "Timestamp,Stage\n"
        "ft,ft\n"
        "2024-01-01 00:00,1.0\n"
        "# a comment in the data\n"
        "\n"
        "2024-01-01 00:15,2.0\n"
        "#2024-01-01 00:30,3.0\n"
    )
    conn = csv_connection(header_row=4, data_start_row=6)
    result = parse_file(tmp_path, content, ["Stage"], conn)
    assert result.rows_read == 2  # comment and blank lines are not data rows
    assert values_of(result, "Stage") == [1.0, 2.0]


@pytest.mark.parametrize(
    ("delimiter", "sep"),
    [
        (";", ";"),
        ("semicolon", ";"),
        ("\t", "\t"),
        ("tab", "\t"),
        ("\\t", "\t"),
        ("|", "|"),
        ("pipe", "|"),
        ("comma", ","),
    ],
)
def test_delimiters(tmp_path, delimiter, sep):
    lines = [
        ["Timestamp", "Water Level", "Flow"],
        ["2024-01-01T00:00:00Z", "1.5", "10"],
        ["2024-01-01T01:00:00Z", "2.5", "20"],
    ]
    content = "".join(sep.join(line) + "\n" for line in lines)
    result = parse_file(
        tmp_path, content, ["Water Level", "Flow"], csv_connection(delimiter=delimiter)
    )
    assert values_of(result, "Water Level") == [1.5, 2.5]
    assert values_of(result, "Flow") == [10.0, 20.0]


def test_space_delimited_aligned_columns(tmp_path):
    content = (
        "Timestamp              Stage    Flow\n"
        "2024-01-01T00:00:00Z   1.50     10\n"
        "2024-01-01T01:00:00Z     2.5   20.25\n"
    )
    for delimiter in (" ", "space"):
        result = parse_file(
            tmp_path, content, ["Stage", "Flow"], csv_connection(delimiter=delimiter)
        )
        assert values_of(result, "Stage") == [1.5, 2.5]
        assert values_of(result, "Flow") == [10.0, 20.25]


def test_space_delimited_with_quoted_timestamps(tmp_path):
    content = '"Date Time"   Stage\n"2024-01-01 00:00"   1.5\n"2024-01-01 01:00" 2\n'
    conn = csv_connection(delimiter="space", timestamp_key="Date Time")
    result = parse_file(tmp_path, content, ["Stage"], conn)
    assert values_of(result, "Stage") == [1.5, 2.0]
    np.testing.assert_array_equal(
        times_of(result, "Stage"), utc("2024-01-01T00:00", "2024-01-01T01:00")
    )


def test_delimiter_words_become_characters_in_the_definition(tmp_path):
    # The reader trusts the validated CSVPayload: the guide's names are characters there, and
    # anything else never reaches the reader.
    assert CSVPayload(delimiter="Comma").delimiter == ","
    assert CSVPayload(delimiter="TAB").delimiter == "\t"
    with pytest.raises(ValidationError, match="unknown delimiter"):
        CSVPayload(delimiter="colon")
    with pytest.raises(DefinitionError) as info:
        parse_data_connection({"name": "C", "source_url": "https://x.org/a.csv",
                               "payload_type": "CSV", "delimiter": "colon"})
    assert "'colon'" in str(info.value)
    assert "semicolon" in str(info.value) and "pipe" in str(info.value)
    content = "Timestamp\tStage\n2024-01-01T00:00:00Z\t1.5\n"
    result = parse_file(tmp_path, content, ["Stage"], csv_connection(delimiter="tab"))
    assert values_of(result, "Stage") == [1.5]


def test_index_identifiers_without_header(tmp_path):
    content = "2024-01-01T00:00:00Z,x,1.5,7\n2024-01-01T01:00:00Z,y,2.5,8\n"
    conn = csv_connection(header_row=None, data_start_row=1, timestamp_key="1")
    result = parse_file(tmp_path, content, ["3", "4"], conn)
    assert result.rows_read == 2
    assert values_of(result, "3") == [1.5, 2.5]
    assert values_of(result, "4") == [7.0, 8.0]


def test_index_identifier_beyond_the_row_width():
    conn = csv_connection(header_row=None, data_start_row=1, timestamp_key="1")
    with pytest.raises(ParseError, match=r"column number\(s\) '5' requested.*only 3 fields"):
        parse_bytes("2024-01-01,1,2\n", ["5"], conn)


def test_name_identifier_without_header_is_a_definition_error():
    conn = csv_connection(header_row=None, data_start_row=1, timestamp_key="1")
    with pytest.raises(DefinitionError, match=r"1-based column number.*'Stage'"):
        parse_bytes("2024-01-01,1,2\n", ["Stage"], conn)


def test_quoted_fields(tmp_path):
    content = (
        'Timestamp,"Flow, cfs","Note"\n'
        '"2024-01-01T00:00:00Z","1,5","a ""quoted"" note, with comma"\n'
        '"2024-01-01T01:00:00Z","2.5","multi\nline note"\n'
        "2024-01-01T02:00:00Z,3.5,plain\n"
    )
    result = parse_file(tmp_path, content, ["Flow, cfs"], csv_connection())
    assert values_of(result, "Flow, cfs") == [2.5, 3.5]
    assert result.dropped["Flow, cfs"] == {"not_a_number": 1}  # "1,5" is not a number
    assert result.rows_read == 3


def test_bom_and_crlf_from_a_file(tmp_path):
    content = (
        b"\xef\xbb\xbfTimestamp,Stage\r\n"
        b"2024-01-01T00:00:00Z,1.5\r\n"
        b"# note\r\n"
        b"2024-01-01T01:00:00Z,2.5\r\n"
    )
    result = parse_file(tmp_path, content, ["Stage"], csv_connection())
    assert values_of(result, "Stage") == [1.5, 2.5]
    np.testing.assert_array_equal(
        times_of(result, "Stage"), utc("2024-01-01T00:00", "2024-01-01T01:00")
    )


def test_trickling_stream_gives_the_same_result():
    content = b"\xef\xbb\xbf# preamble\r\nTimestamp;Stage\r\n(UTC);(m)\r\n" + b"".join(
        b"2024-01-01T%02d:00:00Z;%d.5\r\n# c\r\n" % (h, h) for h in range(24)
    )
    conn = csv_connection(header_row=2, data_start_row=4, delimiter=";")
    expected = parse_payload(io.BytesIO(content), conn, ["Stage"])
    for step in (1, 2, 5, 7):
        got = parse_payload(Trickle(content, step), conn, ["Stage"], chunk_rows=5)
        assert got.rows_read == expected.rows_read == 24
        np.testing.assert_array_equal(got.series["Stage"].values, expected.series["Stage"].values)
        np.testing.assert_array_equal(
            got.series["Stage"].timestamps, expected.series["Stage"].timestamps
        )


def test_latin1_header(tmp_path):
    content = "Timestamp,Temp (°C)\n2024-01-01T00:00:00Z,21.5\n".encode("latin-1")
    result = parse_file(tmp_path, content, ["Temp (°C)"], csv_connection())
    assert values_of(result, "Temp (°C)") == [21.5]


def test_header_blanks_and_trailing_delimiters(tmp_path):
    content = (
        "Timestamp, Stage, Flow,\n2024-01-01T00:00:00Z, 1.5, 10,\n2024-01-01T01:00:00Z, 2.5, 20,\n"
    )
    result = parse_file(tmp_path, content, ["Stage", "Flow"], csv_connection())
    assert values_of(result, "Stage") == [1.5, 2.5]
    assert values_of(result, "Flow") == [10.0, 20.0]


def test_ragged_rows_count_missing_values_as_empty(tmp_path):
    content = (
        "Timestamp,a,b,c\n"
        "2024-01-01T00:00:00Z,1,2,3\n"
        "2024-01-01T01:00:00Z,4\n"
        "2024-01-01T02:00:00Z,5,6,7,8,9\n"
    )
    result = parse_file(tmp_path, content, ["a", "b", "c"], csv_connection())
    assert values_of(result, "a") == [1.0, 4.0, 5.0]
    assert values_of(result, "b") == [2.0, 6.0]
    assert values_of(result, "c") == [3.0, 7.0]
    assert result.dropped["c"] == {"empty": 1}


# -- CSV errors ----------------------------------------------------------------------------------


def test_did_you_mean_and_available_columns():
    with pytest.raises(ParseError) as info:
        parse_bytes(
            "Timestamp,Temperature,Humidity\n2024-01-01,1,2\n", ["temperature"], csv_connection()
        )
    text = str(info.value)
    assert "column 'temperature' not found; did you mean 'Temperature'?" in text
    assert "Available columns: 'Timestamp', 'Temperature', 'Humidity'" in text
    assert "Station 42" in text and "line 1" in text


def test_available_columns_are_truncated():
    header = ",".join(["Timestamp"] + [f"col{i}" for i in range(40)])
    with pytest.raises(ParseError, match=r"'col18', \.\.\. \(21 more\)"):
        parse_bytes(header + "\n", ["nothing_like_it"], csv_connection())


def test_missing_timestamp_column():
    with pytest.raises(
        ParseError, match=r"timestamp column 'Timestamp' not found; did you mean 'timestamp'\?"
    ):
        parse_bytes("timestamp,Stage\n2024-01-01,1\n", ["Stage"], csv_connection())


def test_single_column_header_suggests_the_delimiter():
    with pytest.raises(ParseError, match=r"single column: is the delimiter ';'\?"):
        parse_bytes("Timestamp;Stage\n2024-01-01;1\n", ["Stage"], csv_connection())


def test_a_repeated_column_name_is_read_like_hydroservers_loader():
    """A HOBO logger export repeats a column name; pandas (and so HydroServer's own loader)
    reads the first as the name and the second as ``<name>.1``: the same here, with a note."""
    data = "Timestamp,Stage,Stage,Stage.1\n2024-01-01,1,2,3\n"
    result = parse_bytes(data, ["Stage", "Stage.2"], csv_connection(timezone_type="utc"))
    assert result.series["Stage"].values.tolist() == [1.0]
    # "Stage.1" is already a column of its own, so the third "Stage" becomes "Stage.2"
    assert result.series["Stage.2"].values.tolist() == [2.0]
    assert result.notes == ["header (line 1): column 'Stage' appears 2 times (column 2 as "
                            "'Stage', column 3 as 'Stage.2'), as HydroServer's own loader names "
                            "them"]
    assert parse_bytes(data, ["Stage.1"], csv_connection(timezone_type="utc")).series["Stage.1"].values.tolist() \
        == [3.0]
    assert parse_bytes(data, ["Stage.1"], csv_connection(timezone_type="utc")).notes == []


def test_dedupe_names_follows_pandas():
    import io

    header = ["t", "a", "a", "a.1", "a", "b"]
    assert dedupe_names(header) == list(pd.read_csv(io.StringIO(",".join(header) + "\n")).columns)


def test_header_row_beyond_the_file():
    with pytest.raises(ParseError, match=r"header_row is 5 but the file has only 2 lines"):
        parse_bytes("a\nb\n", ["Stage"], csv_connection(header_row=5, data_start_row=6))
    with pytest.raises(
        ParseError, match=r"header_row is 1 but the file has only 0 lines \(it is empty\)"
    ):
        parse_bytes(b"", ["Stage"], csv_connection())


def test_header_and_units_but_no_data_is_zero_rows():
    result = parse_bytes(
        "Timestamp,Stage\n(UTC),(ft)\n", ["Stage"], csv_connection(data_start_row=3)
    )
    assert result.rows_read == 0
    assert len(result.series["Stage"]) == 0


def test_html_instead_of_csv():
    with pytest.raises(ParseError, match=r"HTML page was received instead of CSV"):
        parse_bytes(
            "<!DOCTYPE html>\n<html><body>Login</body></html>\n", ["Stage"], csv_connection()
        )


def test_unterminated_quote_is_a_parse_error():
    content = 'Timestamp,Stage\n2024-01-01T00:00:00Z,"1.5\n'
    with pytest.raises(ParseError, match=r"could not be read"):
        parse_bytes(content, ["Stage"], csv_connection())


# -- values and timestamps -----------------------------------------------------------------------


def test_bad_values_are_counted_by_reason(tmp_path):
    content = (
        "Timestamp,v\n"
        "2024-01-01T00:00:00Z,1\n"
        "2024-01-01T01:00:00Z,\n"
        "2024-01-01T02:00:00Z,   \n"
        "2024-01-01T03:00:00Z,NaN\n"
        "2024-01-01T04:00:00Z,---\n"
        "2024-01-01T05:00:00Z,inf\n"
        "2024-01-01T06:00:00Z,-Infinity\n"
        "2024-01-01T07:00:00Z,ice\n"
        "2024-01-01T08:00:00Z, 2.5e1 \n"
        "2024-01-01T09:00:00Z,1e400\n"
    )
    result = parse_file(tmp_path, content, ["v"], csv_connection())
    assert values_of(result, "v") == [1.0, 25.0]
    assert result.dropped["v"] == {"empty": 2, "not_a_number": 3, "infinite": 3}
    assert result.rows_read == 10


def test_duplicates_keep_the_last_row():
    content = (
        "Timestamp,a,b\n"
        "2024-01-01T00:00:00Z,1,10\n"
        "2024-01-01T01:00:00Z,2,20\n"
        "2024-01-01T00:00:00Z,3,\n"
        "2024-01-01T00:00:00Z,4,\n"
    )
    result = parse_bytes(content, ["a", "b"], csv_connection())
    assert values_of(result, "a") == [4.0, 2.0]
    assert result.dropped["a"] == {"duplicate_timestamp": 2}
    # b's later rows are empty, so its first value stands
    assert values_of(result, "b") == [10.0, 20.0]
    assert result.dropped["b"] == {"empty": 2}
    ts = times_of(result, "a")
    assert (np.diff(ts.astype(np.int64)) > 0).all()


def test_same_instant_written_with_different_offsets_is_a_duplicate():
    content = "Timestamp,a\n2024-01-01T07:00:00Z,1\n2024-01-01T00:00:00-07:00,2\n"
    result = parse_bytes(content, ["a"], csv_connection())
    assert values_of(result, "a") == [2.0]
    assert result.dropped["a"] == {"duplicate_timestamp": 1}


def test_unparsable_timestamps_counted_for_every_identifier():
    content = (
        "Timestamp,a,b\n"
        "2024-01-01T00:00:00Z,1,2\n"
        "not a date,3,4\n"
        ",5,6\n"
        "2024-02-30T00:00:00Z,7,\n"
        "2024-01-01T01:00:00Z,8,9\n"
    )
    result = parse_bytes(content, ["a", "b"], csv_connection())
    assert values_of(result, "a") == [1.0, 8.0]
    assert result.dropped["a"] == {"unparsable_timestamp": 3}
    assert result.dropped["b"] == {"unparsable_timestamp": 3}
    assert result.timestamps.unparsable == 3
    assert result.timestamps.unparsable_examples == ["not a date", "", "2024-02-30T00:00:00Z"]


def test_all_unparsable_is_an_error():
    content = "Timestamp,a\n15/01/2024 08:30,1\n16/01/2024 08:30,2\n"
    conn = csv_connection(timestamp_format="%Y-%m-%d %H:%M")
    with pytest.raises(ParseError) as info:
        parse_bytes(content, ["a"], conn)
    text = str(info.value)
    assert "column 'Timestamp'" in text
    assert "'15/01/2024 08:30'" in text
    assert "'%Y-%m-%d %H:%M'" in text


def test_strftime_am_pm_in_a_fixed_offset(tmp_path):
    content = "Date Time,Stage\n01/15/2024 08:30 AM,1\n01/15/2024 08:30 PM,2\n"
    conn = csv_connection(
        timestamp_key="Date Time",
        timestamp_format="%m/%d/%Y %I:%M %p",
        timezone_type="offset",
        timezone="-0700",
    )
    result = parse_file(tmp_path, content, ["Stage"], conn)
    np.testing.assert_array_equal(
        times_of(result, "Stage"), utc("2024-01-15T15:30", "2024-01-16T03:30")
    )


def test_iso_offsets_win_over_a_conflicting_connection_zone():
    content = (
        "Timestamp,a\n2024-07-01T12:00:00-04:00,1\n2024-07-01T12:00:00Z,2\n2024-07-01T12:00:00,3\n"
    )
    conn = csv_connection(timezone_type="iana", timezone="America/Denver")
    result = parse_bytes(content, ["a"], conn)
    np.testing.assert_array_equal(
        times_of(result, "a"), utc("2024-07-01T12:00", "2024-07-01T16:00", "2024-07-01T18:00")
    )
    assert values_of(result, "a") == [2.0, 1.0, 3.0]


# -- America/Denver across both changes ----------------------------------------------------------


def denver_csv(rows: list[str]) -> str:
    return "Timestamp,Stage\n" + "".join(f"{ts},{i}\n" for i, ts in enumerate(rows))


DENVER = dict(timestamp_format="%Y-%m-%d %H:%M:%S", timezone_type="iana", timezone="America/Denver")


def test_denver_hourly_across_both_changes(tmp_path):
    rows = [
        "2024-03-10 00:00:00", "2024-03-10 01:00:00", "2024-03-10 03:00:00", "2024-03-10 04:00:00",
        "2024-11-03 00:00:00", "2024-11-03 01:00:00", "2024-11-03 01:00:00", "2024-11-03 02:00:00",
    ]  # fmt: skip
    result = parse_file(tmp_path, denver_csv(rows), ["Stage"], csv_connection(**DENVER))
    np.testing.assert_array_equal(
        times_of(result, "Stage"),
        utc(
            "2024-03-10T07:00", "2024-03-10T08:00", "2024-03-10T09:00", "2024-03-10T10:00",
            "2024-11-03T06:00", "2024-11-03T07:00", "2024-11-03T08:00", "2024-11-03T09:00",
        ),
    )  # fmt: skip
    assert values_of(result, "Stage") == list(map(float, range(8)))
    assert result.dropped["Stage"] == {}
    assert result.timestamps.ambiguous_by_order == 2
    assert result.timestamps.nonexistent == 0


def test_denver_hourly_descending(tmp_path):
    rows = [
        "2024-11-03 02:00:00",
        "2024-11-03 01:00:00",
        "2024-11-03 01:00:00",
        "2024-11-03 00:00:00",
    ]
    result = parse_file(tmp_path, denver_csv(rows), ["Stage"], csv_connection(**DENVER))
    np.testing.assert_array_equal(
        times_of(result, "Stage"),
        utc("2024-11-03T06:00", "2024-11-03T07:00", "2024-11-03T08:00", "2024-11-03T09:00"),
    )
    assert values_of(result, "Stage") == [3.0, 2.0, 1.0, 0.0]
    assert result.dropped["Stage"] == {}


def fifteen_minute_rows(start: str, end: str) -> list[str]:
    """Local wall times every 15 minutes from ``start`` to ``end`` (America/Denver), as written."""
    instants = pd.date_range(
        pd.Timestamp(start, tz="America/Denver"),
        pd.Timestamp(end, tz="America/Denver"),
        freq="15min",
    )
    return [t.strftime("%Y-%m-%d %H:%M:%S") for t in instants]


@pytest.mark.parametrize("chunk_rows", [200_000, 3, 1])
@pytest.mark.parametrize("descending", [False, True])
def test_denver_15_minutes_fall_back_across_chunks(tmp_path, chunk_rows, descending):
    rows = fifteen_minute_rows("2024-11-03 00:00", "2024-11-03 03:00")
    assert rows.count("2024-11-03 01:15:00") == 2
    if descending:
        rows = rows[::-1]
    result = parse_file(
        tmp_path, denver_csv(rows), ["Stage"], csv_connection(**DENVER), chunk_rows=chunk_rows
    )
    expected = np.datetime64("2024-11-03T06:00", "us") + np.arange(17) * np.timedelta64(15, "m")
    np.testing.assert_array_equal(times_of(result, "Stage"), expected)
    assert result.dropped["Stage"] == {}
    assert result.timestamps.ambiguous_by_order == 8
    assert result.timestamps.ambiguous_by_rule == 0
    assert result.rows_read == 17


def test_denver_spring_gap_rule_and_lone_ambiguous(tmp_path):
    rows = [
        "2024-03-10 01:45:00", "2024-03-10 02:30:00", "2024-03-10 03:15:00",  # 02:30 does not exist
        "2024-11-03 00:30:00", "2024-11-03 01:30:00", "2024-11-03 02:30:00",  # lone 01:30
    ]  # fmt: skip
    result = parse_file(tmp_path, denver_csv(rows), ["Stage"], csv_connection(**DENVER))
    np.testing.assert_array_equal(
        times_of(result, "Stage"),
        utc(
            "2024-03-10T08:45", "2024-03-10T09:15", "2024-03-10T09:30",
            "2024-11-03T06:30", "2024-11-03T07:30", "2024-11-03T09:30",
        ),
    )  # fmt: skip
    # 03:15 MDT = 09:15Z comes before 02:30 read as MST = 09:30Z
    assert values_of(result, "Stage") == [0.0, 2.0, 1.0, 3.0, 4.0, 5.0]
    assert result.timestamps.nonexistent == 1
    assert result.timestamps.ambiguous_by_rule == 1


# -- JSON ----------------------------------------------------------------------------------------


def json_bytes(records) -> bytes:
    import json

    return json.dumps(records).encode()


def test_json_records_with_nested_paths(tmp_path):
    body = json_bytes(
        {
            "data": [
                {
                    "datetime": "2024-01-01T01:00:00Z",
                    "temperature": "22.8",
                    "sensor": {"temp": 1.5},
                    "a.b": 7,
                },
                {
                    "datetime": "2024-01-01T00:00:00Z",
                    "temperature": 22.5,
                    "sensor": {"temp": None},
                    "a.b": 8,
                },
            ]
        }
    )
    result = parse_file(tmp_path, body, ["temperature", "sensor.temp", "a.b"], json_connection())
    assert result.rows_read == 2
    assert values_of(result, "temperature") == [22.5, 22.8]
    assert values_of(result, "sensor.temp") == [1.5]
    assert result.dropped["sensor.temp"] == {"empty": 1}
    assert values_of(result, "a.b") == [8.0, 7.0]  # a literal key with a dot
    np.testing.assert_array_equal(
        times_of(result, "temperature"), utc("2024-01-01T00:00", "2024-01-01T01:00")
    )


def test_geojson_features_with_properties_time():
    body = json_bytes(
        {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "properties": {"time": "2024-06-01T12:00:00-06:00", "value": 3},
                },
                {
                    "type": "Feature",
                    "properties": {"time": "2024-06-01T13:00:00-06:00", "value": 4},
                },
            ],
        }
    )
    conn = json_connection("features", timestamp_key="properties.time")
    result = parse_bytes(body, ["properties.value"], conn)
    assert values_of(result, "properties.value") == [3.0, 4.0]
    np.testing.assert_array_equal(
        times_of(result, "properties.value"), utc("2024-06-01T18:00", "2024-06-01T19:00")
    )


def test_json_jmespath_expression_as_identifier():
    body = json_bytes(
        {"data": [{"datetime": "2024-01-01T00:00:00Z", "readings": [{"v": 5}, {"v": 6}]}]}
    )
    result = parse_bytes(body, ["readings[1].v", "readings[0]"], json_connection())
    assert values_of(result, "readings[1].v") == [6.0]
    assert result.dropped["readings[0]"] == {"not_a_number": 1}  # an object is not a number


def test_json_values_by_reason():
    records = [
        {"datetime": f"2024-01-01T{h:02d}:00:00Z", "v": v}
        for h, v in enumerate([1, "2.5", None, "", "NaN", "---", True, "inf", {"x": 1}, 3])
    ]
    records.append({"datetime": "2024-01-01T23:00:00Z"})  # key absent in one record: empty
    result = parse_bytes(json_bytes({"data": records}), ["v"], json_connection())
    assert values_of(result, "v") == [1.0, 2.5, 3.0]
    assert result.dropped["v"] == {"empty": 3, "not_a_number": 4, "infinite": 1}


def test_json_duplicates_keep_last_and_unparsable_timestamps():
    records = [
        {"datetime": "2024-01-01T00:00:00Z", "v": 1},
        {"datetime": "garbage", "v": 2},
        {"datetime": None, "v": 3},
        {"datetime": "2024-01-01T00:00:00Z", "v": 4},
    ]
    result = parse_bytes(json_bytes({"data": records}), ["v"], json_connection())
    assert values_of(result, "v") == [4.0]
    assert result.dropped["v"] == {"unparsable_timestamp": 2, "duplicate_timestamp": 1}
    assert result.timestamps.unparsable_examples == ["garbage", ""]


def test_json_local_times_in_denver_fall_back():
    records = [
        {"t": "2024-11-03 00:30", "v": 0},
        {"t": "2024-11-03 01:30", "v": 1},
        {"t": "2024-11-03 01:30", "v": 2},
        {"t": "2024-11-03 02:30", "v": 3},
    ]
    conn = json_connection(
        "@",
        timestamp_key="t",
        timestamp_format="%Y-%m-%d %H:%M",
        timezone_type="iana",
        timezone="America/Denver",
    )
    result = parse_bytes(json_bytes(records), ["v"], conn, chunk_rows=2)
    np.testing.assert_array_equal(
        times_of(result, "v"),
        utc("2024-11-03T06:30", "2024-11-03T07:30", "2024-11-03T08:30", "2024-11-03T09:30"),
    )


def test_json_empty_list_is_no_data():
    result = parse_bytes(b'{"data": []}', ["v"], json_connection())
    assert result.rows_read == 0
    assert len(result.series["v"]) == 0


def test_json_jmespath_matching_nothing_names_expression_and_keys():
    with pytest.raises(ParseError) as info:
        parse_bytes(b'{"results": [], "count": 0}', ["v"], json_connection("data[*]"))
    text = str(info.value)
    assert "'data[*]' matched nothing" in text
    assert "'results', 'count'" in text


def test_json_jmespath_selecting_a_scalar():
    with pytest.raises(ParseError, match=r"selected a int \(0\), expected a list of records"):
        parse_bytes(b'{"results": [], "count": 0}', ["v"], json_connection("count"))


def test_json_jmespath_selecting_an_object_suggests_a_path():
    with pytest.raises(
        ParseError, match=r"selected an object with keys 'items'.*did you mean 'data.items\[\*\]'\?"
    ):
        parse_bytes(b'{"data": {"items": []}}', ["v"], json_connection("data"))


def test_json_jmespath_selecting_non_objects():
    with pytest.raises(ParseError, match=r"list of list values \(first: \['2024-01-01', 1\]\)"):
        parse_bytes(b'{"data": [["2024-01-01", 1]]}', ["v"], json_connection())


def test_json_missing_field_did_you_mean():
    body = json_bytes(
        {"data": [{"datetime": "2024-01-01T00:00:00Z", "Temperature": 1, "sensor": {"temp": 2}}]}
    )
    with pytest.raises(ParseError) as info:
        parse_bytes(body, ["temperature", "sensor.tmp"], json_connection())
    text = str(info.value)
    assert "field 'temperature' not found; did you mean 'Temperature'?" in text
    assert "field 'sensor.tmp' not found; did you mean 'sensor.temp'?" in text
    assert "Available fields: 'datetime', 'Temperature', 'sensor', 'sensor.temp'" in text


def test_json_missing_timestamp_field():
    body = json_bytes({"data": [{"time": "2024-01-01T00:00:00Z", "v": 1}]})
    with pytest.raises(ParseError, match=r"timestamp field 'datetime' not found"):
        parse_bytes(body, ["v"], json_connection())


def test_truncated_json_reports_position(tmp_path):
    body = b'{"data": [{"datetime": "2024-01-01T00:00:00Z", "v": 1}, {"datetime": "2024-01-01T01'
    with pytest.raises(ParseError) as info:
        parse_file(tmp_path, body, ["v"], json_connection())
    text = str(info.value)
    assert "not valid JSON" in text
    assert f"of {len(body)})" in text
    assert "truncated" in text


def test_invalid_json_shows_where():
    body = b'{"data": [\n  {"datetime": "2024-01-01T00:00:00Z", "v": 1,,}\n]}'
    with pytest.raises(ParseError, match=r"at line 2, column \d+ .*near"):
        parse_bytes(body, ["v"], json_connection())


def test_html_instead_of_json():
    with pytest.raises(ParseError, match=r"an HTML page was received instead of JSON"):
        parse_bytes(
            b"  <!DOCTYPE html><html><body>502 Bad Gateway</body></html>", ["v"], json_connection()
        )


def test_empty_json_body():
    with pytest.raises(ParseError, match=r"body is empty"):
        parse_bytes(b"  \n", ["v"], json_connection())


def test_json_with_bom_and_root_list():
    body = b"\xef\xbb\xbf" + json_bytes([{"datetime": "2024-01-01", "v": "1"}])
    result = parse_bytes(body, ["v"], json_connection("@"))
    assert values_of(result, "v") == [1.0]


# -- dispatch and the shared builder -------------------------------------------------------------


def test_unknown_payload_type_is_a_clean_parse_error():
    conn = SimpleNamespace(name="Odd", payload=SimpleNamespace(type="XML"))
    with pytest.raises(
        ParseError,
        match=r"payload type 'XML' cannot be parsed here \(supported: CSV, HYDROCRON, JSON\)",
    ):
        parse_payload(io.BytesIO(b""), conn, ["v"])


def test_series_builder_fill_values_and_shared_timestamps():
    builder = SeriesBuilder(["a", "b"], TimestampParser(), fill_values=[-9999.0])
    builder.add(
        ["2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z"],
        {"a": pd.Series([1.0, -9999.0]), "b": pd.Series([1.0, 2.0])},
    )
    builder.add(["2024-01-01T02:00:00Z"], {"a": pd.Series([3.0]), "b": pd.Series([3.0])})
    result = builder.finish()
    assert values_of(result, "a") == [1.0, 3.0]
    assert result.dropped["a"] == {"fill_value": 1}
    assert result.rows_read == 3
    ts = result.series["b"].timestamps
    assert not ts.flags.writeable
    with pytest.raises(ValueError):
        ts[0] = ts[1]
