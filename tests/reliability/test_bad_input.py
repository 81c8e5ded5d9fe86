"""Bad input, case by case, through the whole path: source server -> run_ingestion -> HydroServer.

Every case asserts either the exact error (its type and its whole message: what was expected,
what was found, where) or exactly what was stored and what was dropped, by reason. A refused
source never writes anything. Definition files are checked for every kind of schema error, each
asserting the location, the field, what was expected and what was found.

Decisions the corpus pins down (see docs/reliability.md):

* a decimal comma (``1,5`` in a ``;`` file) is not a number: dropped as ``not_a_number``;
* ``1e400`` is beyond float range: read as infinity and dropped as ``infinite`` (CSV and JSON);
  ``1e300`` loads exactly; JSON's ``NaN``/``Infinity`` (written by Python's json) are read, and
  dropped as ``not_a_number``/``infinite``;
* an error quotes at most a short piece of the input (a 50 MB line never becomes a 50 MB log).
"""

from __future__ import annotations

import gzip
import json
import random
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from reliability_support import make_client, options

from hydroserver_provider.definitions import DataConnection, Mapping
from hydroserver_provider.definitions.files import load_definition_file
from hydroserver_provider.errors import (
    DefinitionError,
    IngestionFailed,
    ParseError,
    SourceError,
)
from hydroserver_provider.pipeline import run_ingestion
from hydroserver_provider.sources.placeholders import RunWindow
from hydroserver_provider.testing.sources import LocalSourceServer

NAME = "Station 7"
PATH = "/station"


def csv_connection(url: str, **extra) -> DataConnection:
    return DataConnection.model_validate({"name": NAME, "source_url": url, "payload_type": "CSV",
                                          "timestamp_key": "time", **extra})


def json_connection(url: str, **extra) -> DataConnection:
    extra.setdefault("jmespath", "data[*]")
    return DataConnection.model_validate({"name": NAME, "source_url": url,
                                          "payload_type": "JSON", "timestamp_key": "time",
                                          **extra})


@pytest.fixture(scope="module")
def source():
    """One station server for the whole corpus (each case sets its own route)."""
    with LocalSourceServer() as server:
        yield server


@pytest.fixture
def local_hydroserver(local_hydroserver_session):
    """One HydroServer for the whole corpus (each case writes to datastreams of its own)."""
    return local_hydroserver_session


@pytest.fixture
def station(local_hydroserver, source):
    """Serve ``body`` as the station, run the task into fresh datastreams; return the summary
    (or raise), with the datastream ids in ``summary['_datastreams']``."""
    hs = local_hydroserver

    def run(body, kind: str = "csv", identifiers=("level",), content_type: str | None = None,
            window: RunWindow | None = None, **extra):
        url = source.url + PATH
        if body is not None:  # None: the route is already set up (with its faults)
            source.add(PATH, body, content_type or
                       ("text/csv" if kind == "csv" else "application/json"))
        connection = (csv_connection if kind == "csv" else json_connection)(url, **extra)
        datastreams = [hs.create_datastream(name=i) for i in identifiers]
        mappings = [Mapping(source_identifier=i, target_datastream_id=d)
                    for i, d in zip(identifiers, datastreams)]
        run.datastreams = datastreams
        hs.reset_counts()
        with make_client(hs) as client:
            summary = run_ingestion(client, connection, mappings, window=window,
                                    options=options())
        summary["_datastreams"] = datastreams
        return summary

    run.url = source.url + PATH
    run.hs = hs
    return run


def stored(hs, ds: str) -> list[tuple[str, float]]:
    return [(t.strftime("%Y-%m-%dT%H:%M:%SZ"), v) for t, v in hs.observations(ds)]


def refused(station, error_type, message: str, *args, **kwargs) -> None:
    """The run raises ``error_type`` with exactly ``message`` ({url}, {name} filled in) and
    writes nothing."""
    with pytest.raises(error_type) as info:
        station(*args, **kwargs)
    assert str(info.value) == message.replace("{url}", station.url).replace("{name}", NAME)
    writes = [k for k in station.hs.request_counts if k.startswith("POST")]
    assert writes == [], "a refused source must not write anything"
    assert all(station.hs.observations(ds) == [] for ds in station.datastreams)


T = ["2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z", "2024-01-01T02:00:00Z",
     "2024-01-01T03:00:00Z"]


def csv_rows(*values: str, header: str = "time,level") -> str:
    return header + "\n" + "".join(f"{T[i]},{v}\n" for i, v in enumerate(values))


# ================================================================== the source itself (transport)

SOURCE_CASES = {
    "not found (404)": (
        None, {}, "{url}: the source answered HTTP 404 Not Found: "
                  "\"title '404 Not Found'; 404 Not Found Not Found\""),
    "HTML error page answered 200": (
        "<!DOCTYPE html><html><head><title>Maintenance</title></head><body>Back soon</body></html>",
        {"content_type": "text/html"},
        "{url}: the source answered with an HTML page where CSV or JSON data was expected (often "
        "a login, error or maintenance page): \"title 'Maintenance'; Maintenance Back soon\""),
    "HTML page labelled text/csv": (
        "<html><body>502 Bad Gateway</body></html>", {},
        "{url}: the source answered with an HTML page where CSV or JSON data was expected (often "
        "a login, error or maintenance page): '502 Bad Gateway'"),
    "HTML page labelled application/json": (
        "\n <!doctype html><html><title>Sign in</title></html>", {"kind": "json"},
        "{url}: the source answered with an HTML page where CSV or JSON data was expected (often "
        "a login, error or maintenance page): \"title 'Sign in'; Sign in\""),
    "corrupt gzip": (
        b"\x1f\x8b\x08\x00" + bytes(range(256)) * 2, {},
        "{url}: reading the source failed after 0 bytes: the body is not valid gzip data (Error "
        "-3 while decompressing data: invalid block type); nothing was loaded"),
    "truncated gzip": (
        gzip.compress(csv_rows("1", "2", "3", "4").encode())[:40], {},
        "{url}: reading the source failed after 0 bytes: the body is not valid gzip data "
        "(Compressed file ended before the end-of-stream marker was reached); nothing was "
        "loaded"),
}


@pytest.mark.parametrize("case", list(SOURCE_CASES))
def test_source_is_refused_with_a_clear_error(case, station, source):
    body, kwargs, message = SOURCE_CASES[case]
    if body is None:  # a route that does not exist
        source.add("/elsewhere", "")
        kwargs = {}
        with pytest.raises(SourceError) as info:
            url = source.url + "/missing.csv"
            with make_client(station.hs) as client:
                run_ingestion(client, csv_connection(url), [], options=options())
        assert str(info.value) == message.format(url=url)
        assert info.value.status == 404 and info.value.url == url
        return
    refused(station, SourceError, message, body, **kwargs)


def test_body_cut_short_by_the_network_is_refused_never_half_loaded(station, source):
    body = csv_rows("1.5", "2.5", "3.5", "4.5")
    source.add(PATH, body)
    source.drop_next(PATH, after_bytes=60)
    refused(station, SourceError,
            "{url}: reading the source failed after 0 bytes: the connection closed before the "
            f"end of the body (IncompleteRead(60 bytes read, {len(body) - 60} more expected)); "
            "nothing was loaded", None)


def test_source_larger_than_the_limit_is_refused(station, local_hydroserver, source):
    url = source.add(PATH, lambda q: (csv_rows("1").encode() if i == 0 else
                                      b"2024-01-01T05:00:00Z,1\n" * 4000 for i in range(100)))
    ds = local_hydroserver.create_datastream(name="level")
    with pytest.raises(SourceError) as info, make_client(local_hydroserver) as client:
        run_ingestion(client, csv_connection(url),
                      [Mapping(source_identifier="level", target_datastream_id=ds)],
                      options=options(max_source_bytes=1_000_000))
    assert str(info.value) == (f"{url}: the source is larger than the configured limit of "
                               "1,000,000 bytes; raise max_source_bytes if this is expected")
    assert local_hydroserver.observations(ds) == []


# ================================================================== CSV that cannot be read

CSV_REFUSED = {
    "empty body": (
        b"", {},
        "data connection '{name}': header_row is 1 but the file has only 0 lines (it is empty)"),
    "header_row beyond the file": (
        csv_rows("1"), {"header_row": 4, "data_start_row": 5},
        "data connection '{name}': header_row is 4 but the file has only 2 lines"),
    "wrong delimiter": (
        csv_rows("1", header="time;level").replace(",", ";"), {},
        "data connection '{name}', header (line 1): timestamp column 'time' not found. column "
        "'level' not found. Available columns: 'time;level'. The header has a single column: "
        "is the delimiter ';'?"),
    "data rows in another delimiter than the header": (
        "time,level\n2024-01-01T00:00:00Z;1\n2024-01-01T01:00:00Z;2\n", {},
        "data connection '{name}': the CSV data could not be read: Too many columns specified: "
        "expected 2 and found 1 (line numbers count from data_start_row 2, skipped comment "
        "lines excluded); no data row has as many fields as the header: do the data rows use "
        "another delimiter?"),
    "unclosed quote": (
        'time,level\n2024-01-01T00:00:00Z,1\n2024-01-01T01:00:00Z,"2\n2024-01-01T02:00:00Z,3\n',
        {},
        "data connection '{name}': the CSV data could not be read: Error tokenizing data. C "
        "error: EOF inside string starting at row 1 (line numbers count from data_start_row 2, "
        "skipped comment lines excluded)"),
    "timestamp column missing": (
        csv_rows("1", header="when,level"), {},
        "data connection '{name}', header (line 1): timestamp column 'time' not found. "
        "Available columns: 'when', 'level'"),
    "timestamp column differing only in case": (
        csv_rows("1", header="Time,level"), {},
        "data connection '{name}', header (line 1): timestamp column 'time' not found; did you "
        "mean 'Time'? Available columns: 'Time', 'level'"),
    "value column missing, a close name exists": (
        csv_rows("1", header="time,water_level"), {},
        "data connection '{name}', header (line 1): column 'level' not found; did you mean "
        "'water_level'? Available columns: 'time', 'water_level'"),
    "column twice in the header, told apart only by blanks": (
        "time, level,level \n2024-01-01T00:00:00Z,1,2\n", {},
        "data connection '{name}', header (line 1): column 'level' matches 2 columns of the "
        "header when blanks are ignored (columns 2, 3): write it exactly."),
    "no timestamp readable": (
        csv_rows("1", "2", "3").replace("2024-01-01T", "01/01/2024 "), {},
        "none of the 3 timestamps in column 'time' could be read as 'ISO 8601': first value "
        "'01/01/2024 00:00:00Z'; if the values are not ISO 8601, set timestamp_format to a "
        "strftime format such as '%m/%d/%Y %H:%M'"),
    "timestamp_format that does not match": (
        csv_rows("1", "2"), {"timestamp_format": "%d/%m/%Y %H:%M"},
        "none of the 2 timestamps in column 'time' could be read as '%d/%m/%Y %H:%M': first "
        "value '2024-01-01T00:00:00Z'; check timestamp_format against the values (or unset it "
        "for ISO 8601)"),
    "binary garbage": (
        random.Random(5).randbytes(4000), {},
        "data connection '{name}': binary data was received instead of CSV text (line 1 holds "
        "the control byte {control}); the source may be compressed (zip), a spreadsheet (xlsx) "
        "or another binary file"),
    "zip archive": (
        b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(200), {},
        "data connection '{name}': binary data was received instead of CSV text (line 1 holds "
        "the control byte '\\x03'); the source may be compressed (zip), a spreadsheet (xlsx) "
        "or another binary file"),
    "old Mac line ends (CR only)": (
        csv_rows("1", "2").replace("\n", "\r"), {},
        "data connection '{name}', header (line 1): the line could not be split into fields "
        "(new-line character seen in unquoted field - do you need to open the file in "
        "universal-newline mode?); the line holds a carriage return (CR): lines that end with "
        "CR alone (old Mac style) are not supported, convert them to LF or CRLF"),
    "header line of 300,000 characters": (
        "time,level" + "x" * 299_990 + "\n2024-01-01T00:00:00Z,1\n", {},
        "data connection '{name}', header (line 1): the line could not be split into fields "
        "(field larger than field limit (131072))"),
    "long column name": (
        "time,level_" + "x" * 5000 + "\n2024-01-01T00:00:00Z,1\n", {},
        "data connection '{name}', header (line 1): column 'level' not found. Available "
        "columns: 'time', 'level_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx... "
        "(5,006 characters)'"),
}


@pytest.mark.parametrize("case", list(CSV_REFUSED))
def test_csv_that_cannot_be_read_is_refused(case, station):
    body, extra, message = CSV_REFUSED[case]
    if "{control}" in message:
        first_line = body.split(b"\n", 1)[0].decode("latin-1")
        control = re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", first_line).group()
        message = message.replace("{control}", repr(control))
    error = ParseError
    refused(station, error, message, body, **extra)


# ================================================================== JSON that cannot be read

DOC = {"station": "7", "data": [{"time": T[0], "level": 1.5}, {"time": T[1], "level": 2.5}]}

JSON_REFUSED = {
    "empty body": (
        b"  \n", {},
        "data connection '{name}': the response body is empty; expected a JSON document"),
    "truncated": (
        json.dumps(DOC)[:70], {},
        "data connection '{name}': the response is not valid JSON: unexpected end of data at "
        "line 1, column 71 (byte 70 of 70); the document ends early: is it truncated?"),
    "XML instead of JSON": (
        '<?xml version="1.0"?><data><row time="2024-01-01T00:00:00Z"/></data>', {},
        "data connection '{name}': an HTML/XML document was received instead of JSON ('<?xml "
        "version=\"1.0\"?><data><row time=\"2024-01-01T00:00:00Z\"/></data>'); the source URL "
        "may point to a web page, a login page or an error page"),
    "not UTF-8": (
        b'{"data": [{"time": "2024-01-01T00:00:00Z", "level": "\xff\xfe"}]}', {},
        "data connection '{name}': the response is not valid JSON: str is not valid UTF-8: "
        "surrogates not allowed at line 1, column 54 (byte 53 of 59) near "
        "'4-01-01T00:00:00Z\", \"level\": \"\ufffd\ufffd\"}]}'"),
    "nested 100,000 levels deep": (
        "[" * 100_000 + "]" * 100_000, {"jmespath": "@"},
        "data connection '{name}': the response is not valid JSON: depth limit exceeded at "
        "line 1, column 1026 (byte 1025 of 200000) near '" + "[" * 60 + "'"),
    "jmespath selecting nothing": (
        json.dumps(DOC), {"jmespath": "records[*]"},
        "data connection '{name}': jmespath 'records[*]' matched nothing; the document is an "
        "object with keys 'station', 'data'"),
    "jmespath selecting a scalar": (
        json.dumps(DOC), {"jmespath": "station"},
        "data connection '{name}': jmespath 'station' selected a str ('7'), expected a list of "
        "records (objects)"),
    "jmespath selecting an object": (
        json.dumps({"result": {"rows": DOC["data"]}}), {"jmespath": "result"},
        "data connection '{name}': jmespath 'result' selected an object with keys 'rows', "
        "expected a list of records; did you mean 'result.rows[*]'?"),
    "jmespath selecting non-objects": (
        json.dumps({"data": [[T[0], 1.5], [T[1], 2.5]]}), {},
        "data connection '{name}': jmespath 'data[*]' selected a list of list values (first: "
        "['2024-01-01T00:00:00Z', 1.5]), expected a list of records (objects) such as "
        "[{\"timestamp\": ..., \"value\": ...}]"),
    "value field missing, a close name exists": (
        json.dumps(DOC).replace('"level"', '"Level"'), {},
        "data connection '{name}': in the 2 records selected by 'data[*]': field 'level' not "
        "found; did you mean 'Level'? Available fields: 'time', 'Level'"),
    "timestamp field differing only in case": (
        json.dumps(DOC).replace('"time"', '"Time"'), {},
        "data connection '{name}': in the 2 records selected by 'data[*]': timestamp field "
        "'time' not found; did you mean 'Time'? Available fields: 'Time', 'level'"),
    "no timestamp readable": (
        json.dumps({"data": [{"time": "yesterday", "level": 1}, {"time": None, "level": 2}]}),
        {},
        "none of the 2 timestamps in field 'time' could be read as 'ISO 8601': first value "
        "'yesterday'; if the values are not ISO 8601, set timestamp_format to a strftime "
        "format such as '%m/%d/%Y %H:%M'"),
}


@pytest.mark.parametrize("case", list(JSON_REFUSED))
def test_json_that_cannot_be_read_is_refused(case, station):
    body, extra, message = JSON_REFUSED[case]
    refused(station, ParseError, message, body, kind="json", **extra)


# ================================================================== rows dropped, counted

# (body, kind, extra, stored [(time, value)], dropped by reason, timestamp report entries)
DROPPED = {
    "NaN, inf and text in CSV": (
        csv_rows("NaN", "inf", "---", "4.25"), "csv", {},
        [(T[3], 4.25)], {"not_a_number": 2, "infinite": 1}, {}),
    "1e400 overflows to infinity, 1e300 loads": (
        csv_rows("1e400", "1e300", "-1e400", "-1e-300"), "csv", {},
        [(T[1], 1e300), (T[3], -1e-300)], {"infinite": 2}, {}),
    "decimal comma in a semicolon file": (
        f"time;level\n{T[0]};1,5\n{T[1]};2\n{T[2]};3,25\n{T[3]};4\n", "csv", {"delimiter": ";"},
        [(T[1], 2.0), (T[3], 4.0)], {"not_a_number": 2}, {}),
    "empty values and ragged rows": (
        "time,level,temp\n" + f"{T[0]},,1\n{T[1]}\n{T[2]},3,3\n{T[3]},4,4,extra\n", "csv", {},
        [(T[2], 3.0), (T[3], 4.0)], {"empty": 2}, {}),
    "blanks and signs around numbers": (
        csv_rows(" 1.5", "+2", "-3e2 ", "0x10"), "csv", {},
        [(T[0], 1.5), (T[1], 2.0), (T[2], -300.0)], {"not_a_number": 1}, {}),
    "duplicate timestamps keep the last row": (
        f"time,level\n{T[0]},1\n{T[1]},2\n{T[0]},10\n2024-01-01T02:00:00+02:00,20\n", "csv", {},
        [(T[0], 20.0), (T[1], 2.0)], {"duplicate_timestamp": 2}, {}),
    "some timestamps unreadable": (
        f"time,level\n{T[0]},1\nnot a time,2\n2024-13-45T00:00:00Z,3\n{T[3]},4\n", "csv", {},
        [(T[0], 1.0), (T[3], 4.0)], {"unparsable_timestamp": 2},
        {"unparsable": 2, "unparsable_examples": ["not a time", "2024-13-45T00:00:00Z"]}),
    "unreadable timestamp of 100,000 characters is quoted short": (
        f"time,level\n{T[0]},1\n{'9' * 100_000},2\n", "csv", {},
        [(T[0], 1.0)], {"unparsable_timestamp": 1},
        {"unparsable_examples": ["9" * 60 + "... (100,000 characters)"]}),
    "mixed UTC offsets are each honoured": (
        "time,level\n2024-01-01T00:00:00Z,1\n2024-01-01T03:00:00+02:00,2\n"
        "2023-12-31T23:00:00-03:00,3\n2024-01-01T06:30:00+05:30,4\n", "csv",
        {"timezone_type": "iana", "timezone": "America/Denver"},
        [(T[0], 1.0), (T[1], 4.0), (T[2], 3.0)], {"duplicate_timestamp": 1}, {}),
    "naive and offset times together in a local zone": (
        "time,level\n2024-01-01 00:00:00,1\n2024-01-01T08:00:00Z,2\n2024-01-01 02:00:00,3\n",
        "csv", {"timezone_type": "iana", "timezone": "America/Denver"},
        [("2024-01-01T07:00:00Z", 1.0), ("2024-01-01T08:00:00Z", 2.0),
         ("2024-01-01T09:00:00Z", 3.0)], {}, {}),
    "spring-forward gap: a local time that never happened": (
        "time,level\n2024-03-10 01:30:00,1\n2024-03-10 02:30:00,2\n", "csv",
        {"timezone_type": "iana", "timezone": "America/Denver"},
        [("2024-03-10T08:30:00Z", 1.0), ("2024-03-10T09:30:00Z", 2.0)], {}, {"nonexistent": 1}),
    "fall-back overlap, one lone ambiguous time": (
        "time,level\n2024-11-03 01:30:00,1\n", "csv",
        {"timezone_type": "iana", "timezone": "America/Denver"},
        [("2024-11-03T07:30:00Z", 1.0)], {}, {"ambiguous_by_rule": 1}),
    "fall-back overlap in a descending file": (
        "time,level\n2024-11-03 02:00:00,5\n2024-11-03 01:30:00,4\n2024-11-03 01:00:00,3\n"
        "2024-11-03 01:30:00,2\n2024-11-03 01:00:00,1\n", "csv",
        {"timezone_type": "iana", "timezone": "America/Denver"},
        [("2024-11-03T07:00:00Z", 1.0), ("2024-11-03T07:30:00Z", 2.0),
         ("2024-11-03T08:00:00Z", 3.0), ("2024-11-03T08:30:00Z", 4.0),
         ("2024-11-03T09:00:00Z", 5.0)], {}, {"ambiguous_by_order": 4}),
    "header and units row, no data": (
        "time,level\nUTC,ft\n", "csv", {"data_start_row": 3}, [], {}, {}),
    "JSON null, text, booleans, objects": (
        json.dumps({"data": [{"time": T[0], "level": None}, {"time": T[1], "level": "n/a"},
                             {"time": T[2], "level": True}, {"time": T[3], "level": {"v": 1}}]}),
        "json", {}, [], {"empty": 1, "not_a_number": 3}, {}),
    "JSON NaN, Infinity and 1e400 (as Python writes them)": (
        f'{{"data": [{{"time": "{T[0]}", "level": NaN}}, {{"time": "{T[1]}", "level": Infinity}}, '
        f'{{"time": "{T[2]}", "level": 1e400}}, {{"time": "{T[3]}", "level": 1e300}}]}}', "json",
        {}, [(T[3], 1e300)], {"not_a_number": 1, "infinite": 2}, {}),
    "JSON numbers as text": (
        json.dumps({"data": [{"time": T[0], "level": "1.5"}, {"time": T[1], "level": "1e400"},
                             {"time": T[2], "level": ""}]}), "json", {},
        [(T[0], 1.5)], {"infinite": 1, "empty": 1}, {}),
    "JSON empty list": (json.dumps({"data": []}), "json", {}, [], {}, {}),
}


@pytest.mark.parametrize("case", list(DROPPED))
def test_bad_rows_are_dropped_and_counted(case, station):
    body, kind, extra, expected, dropped, report = DROPPED[case]
    summary = station(body, kind=kind, **extra)
    assert summary["status"] == "SUCCESS"
    (ds,) = summary["_datastreams"]
    assert stored(station.hs, ds) == expected
    outcome = summary["datastreams"][0]
    assert outcome["dropped"] == dropped
    assert outcome["dropped_total"] == sum(dropped.values())
    assert outcome["loaded"] == len(expected)
    for key, value in report.items():
        assert summary["timestamps"][key] == value
    if not expected:
        assert summary["message"] == "Already up to date."


# ================================================================== HydroServer refuses the target


def _run_into(hs, source, datastream_ids, api_key=None):
    url = source.add(PATH, csv_rows("1", "2"))
    mappings = [Mapping(source_identifier="level", target_datastream_id=d) for d in datastream_ids]
    with make_client(hs, api_key=api_key) as client, pytest.raises(IngestionFailed) as info:
        run_ingestion(client, csv_connection(url), mappings, options=options())
    return info.value.summary


def test_unknown_datastream_id(local_hydroserver, source):
    ghost = "0190a6c4-0000-7000-8000-00000000dead"
    summary = _run_into(local_hydroserver, source, [ghost])
    assert summary["datastreams"][0]["error"] == (
        f"datastream {ghost} does not exist or these credentials cannot see it "
        "(HTTP 404: Datastream does not exist)")
    assert summary["message"] == (f"1 of 1 datastreams failed ({ghost}: datastream {ghost} does "
                                  "not exist or these credentials cannot see it (HTTP 404: "
                                  "Datastream does not exist)). Loaded 0 observations into 0 "
                                  "datastreams.")


def test_datastream_id_that_is_not_a_uuid_fails_alone(local_hydroserver, source):
    good = local_hydroserver.create_datastream(name="level")
    summary = _run_into(local_hydroserver, source, [good, "station-42-level"])
    assert [d["status"] for d in summary["datastreams"]] == ["SUCCESS", "FAILURE"]
    assert summary["datastreams"][1]["error"] == (
        "datastream id 'station-42-level' is not a HydroServer datastream id (expected a UUID "
        "such as 0190a6c4-5f3e-7a4b-9c1d-2e3f4a5b6c7d; HTTP 422)")
    assert len(local_hydroserver.observations(good)) == 2


def test_private_datastream_of_another_workspace_is_invisible(local_hydroserver, source):
    hs = local_hydroserver
    other = hs.create_workspace("Other agency", is_private=True)
    theirs = hs.create_datastream(name="Their level", workspace_id=other)
    mine = hs.create_datastream(name="level")
    summary = _run_into(hs, source, [mine, theirs])  # the key of workspace A, a target of B
    assert [d["status"] for d in summary["datastreams"]] == ["SUCCESS", "FAILURE"]
    assert summary["datastreams"][1]["error"] == (
        f"datastream {theirs} does not exist or these credentials cannot see it "
        "(HTTP 404: Datastream does not exist)")
    assert hs.observations(theirs) == [] and len(hs.observations(mine)) == 2


def test_public_datastream_of_another_workspace_is_read_only(local_hydroserver, source):
    hs = local_hydroserver
    other = hs.create_workspace("Public agency", is_private=False)
    theirs = hs.create_datastream(name="Public level", workspace_id=other, is_private=False)
    summary = _run_into(hs, source, [theirs])
    assert summary["datastreams"][0]["error"] == (
        f"HydroServer answered 403 to POST /api/data/datastreams/{theirs}/observations/"
        "bulk-create: You do not have permission to edit this datastream")
    assert hs.observations(theirs) == []


def test_viewer_api_key_cannot_write(local_hydroserver, source):
    hs = local_hydroserver
    mine = hs.create_datastream(name="level")
    summary = _run_into(hs, source, [mine], api_key=hs.create_api_key(role="Viewer"))
    assert summary["datastreams"][0]["error"] == (
        f"HydroServer answered 403 to POST /api/data/datastreams/{mine}/observations/"
        "bulk-create: You do not have permission to edit this datastream")
    assert hs.observations(mine) == []


# ================================================================== huge inputs, bounded memory

MEASURE = textwrap.dedent("""
    import json, sys
    from hydroserver_provider.definitions import DataConnection, Mapping
    from hydroserver_provider.hydroserver.client import Credentials, HydroServerClient
    from hydroserver_provider.pipeline import RunOptions, run_ingestion

    job = json.loads(sys.argv[1])
    sys.path.insert(0, job["bench"])
    from ingest_measure import peak_rss_mib, rss_mib  # the benchmark's own measures

    connection = DataConnection.model_validate(job["connection"])
    mappings = [Mapping.model_validate(m) for m in job["mappings"]]
    before = rss_mib()
    result = {}
    with HydroServerClient(job["url"], Credentials(api_key=job["key"])) as client:
        try:
            summary = run_ingestion(client, connection, mappings, options=RunOptions(
                max_source_bytes=job["max_bytes"], dry_run=True))
            result["summary"] = summary
        except Exception as exc:
            result["error"] = type(exc).__name__
            result["message"] = str(exc)
    result.update(before_mb=before, peak_mb=peak_rss_mib())
    print(json.dumps(result))
""")
MB = 1 << 20
BENCH = Path(__file__).resolve().parents[2] / "bench"


def _measure(hs, url: str, max_bytes: int) -> dict:
    """Run the task in a fresh process; its error or summary, and its peak resident memory."""
    ds = hs.create_datastream(name="level")
    job = {"url": hs.url, "key": hs.api_key, "max_bytes": max_bytes, "bench": str(BENCH),
           "connection": csv_connection(url).model_dump(mode="json"),
           "mappings": [{"source_identifier": "level", "target_datastream_id": ds}]}
    done = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(job)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_source_far_larger_than_the_limit_is_refused_in_bounded_memory(local_hydroserver,
                                                                       source, tally):
    """1 GiB generated on the fly, limit 64 MiB: refused after 64 MiB, memory stays flat."""
    row = b"2024-01-01T00:00:00Z,1.5\n" * 40_000  # ~1 MB
    sent = {"bytes": 0}

    def generate(query):
        yield b"time,level\n"
        for _ in range(1024 * MB // len(row)):
            sent["bytes"] += len(row)
            yield row

    url = source.add(PATH, generate)
    result = _measure(local_hydroserver, url, 64 * MB)
    assert result["error"] == "SourceError"
    assert result["message"] == (f"{url}: the source is larger than the configured limit of "
                                 f"{64 * MB:,} bytes; raise max_source_bytes if this is expected")
    growth = result["peak_mb"] - result["before_mb"]
    assert growth < 128, f"reading 64 MiB grew the process by {growth:.0f} MB"
    assert sent["bytes"] < 256 * MB  # the rest of the gigabyte was never sent
    tally["oversized source"] = (f"1 GiB offered, limit 64 MiB, refused after "
                                 f"{sent['bytes'] / MB:.0f} MiB sent; peak RSS "
                                 f"{result['peak_mb']:.0f} MB (+{growth:.0f} MB over "
                                 f"{result['before_mb']:.0f} MB resident before the run)")


def test_one_enormous_line_gives_a_short_error_in_bounded_memory(local_hydroserver, source,
                                                                 tally):
    """A 50 MB line with no line end: refused with a short message, memory a few times 50 MB."""
    def generate(query):
        yield b"time,level\n"
        for _ in range(50):
            yield b"9" * MB
        yield b",1.5\n"

    url = source.add(PATH, generate)
    result = _measure(local_hydroserver, url, 2 * 1024 * MB)
    assert result["error"] == "ParseError"
    assert result["message"] == (
        "none of the 1 timestamps in column 'time' could be read as 'ISO 8601': first value '"
        + "9" * 60 + "... (52,428,800 characters)'; if the values are not ISO 8601, set "
        "timestamp_format to a strftime format such as '%m/%d/%Y %H:%M'")
    growth = result["peak_mb"] - result["before_mb"]
    assert growth < 400, f"one 50 MB line grew the process by {growth:.0f} MB"
    tally["50 MB single line"] = (f"ParseError of {len(result['message'])} characters; peak RSS "
                                  f"{result['peak_mb']:.0f} MB (+{growth:.0f} MB)")


# ================================================================== definition files

BASE_DEFINITION = {
    "data_connections": [{
        "name": "Station API",
        "source_url": "https://api.example.org/{station}/data.csv?start={start}",
        "payload_type": "CSV", "timestamp_key": "Timestamp",
        "timestamp_format": "%Y-%m-%d %H:%M:%S", "timezone_type": "iana",
        "timezone": "America/Denver", "header_row": 1, "data_start_row": 2, "delimiter": ",",
        "placeholder_variables": [{"name": "station", "variable_type": "per_task"},
                                  {"name": "start", "variable_type": "window_start"}],
    }],
    "tasks": [{
        "name": "Station 42", "data_connection": "Station API",
        "task_variables": {"station": "42"},
        "mappings": [{"source_identifier": "Level",
                      "target_datastream_id": "0190a6c4-5f3e-7a4b-9c1d-2e3f4a5b6c7d"}],
        "interval": 1, "interval_period": "hours", "start_time": "2025-01-01T00:00:00Z",
    }],
}
CONN = "{file}: data connection 'Station API'"
TASK = "{file}: task 'Station 42'"
# A broken data connection also makes its task unusable; the task says so (second error).
UNUSABLE = (TASK, "data_connection", "a valid data connection", "Station API")


def _conn(**changes):
    def edit(doc):
        doc["data_connections"][0].update(changes)
        for key in [k for k, v in changes.items() if v is ...]:
            del doc["data_connections"][0][key]
    return edit


def _task(**changes):
    def edit(doc):
        doc["tasks"][0].update(changes)
        for key in [k for k, v in changes.items() if v is ...]:
            del doc["tasks"][0][key]
    return edit


DS = "0190a6c4-5f3e-7a4b-9c1d-2e3f4a5b6c7d"
# case -> (edit of the base document, [(where, field, expected, found) of each error])
DEFINITION_CASES = {
    "misspelt key": (_conn(timestmp_key="T"), [
        (CONN, "timestmp_key", "'timestamp_key'", "timestmp_key"), UNUSABLE]),
    "missing source_url": (_conn(source_url=...), [
        (CONN, "source_url", "the URL to fetch, e.g. https://example.com/data.csv", "nothing"),
        UNUSABLE]),
    "wrong type of header_row": (_conn(header_row="first"), [
        (CONN, "header_row", "a whole number", "first"), UNUSABLE]),
    "unknown payload type": (_conn(payload_type="XML"), [
        (CONN, "payload_type", "CSV, JSON or HYDROCRON", "XML"), UNUSABLE]),
    "unknown delimiter": (_conn(delimiter="::"), [
        (CONN, "delimiter", "one of ',' '|' '\\t' ';' ' ' or comma, pipe, tab, semicolon, space",
         "::"), UNUSABLE]),
    "data_start_row not after header_row": (_conn(header_row=3, data_start_row=2), [
        (CONN, "data_start_row", "a row number > header_row (3)", 2), UNUSABLE]),
    "relative source URL": (_conn(source_url="/data.csv"), [
        (CONN, "source_url", "a URL starting with http://, https:// or file://", "/data.csv"),
        UNUSABLE]),
    "offset given as an IANA zone": (_conn(timezone="-07:00"), [
        (CONN, "timezone", "an IANA time zone such as 'America/Denver'", "-07:00"), UNUSABLE]),
    "timezone without timezone_type": (_conn(timezone_type=..., timezone="UTC"), [
        (CONN, "timezone", "timezone_type: offset or iana (or no timezone)", "UTC"), UNUSABLE]),
    "malformed offset": (_conn(timezone_type="offset", timezone="7 hours"), [
        (CONN, "timezone", "an offset like -0700 or +05:30", "7 hours"), UNUSABLE]),
    "unknown strftime directive": (_conn(timestamp_format="%Y-%m-%d %H:%Q"), [
        (CONN, "timestamp_format",
         "a strftime format with a date, e.g. '%Y-%m-%dT%H:%M:%S', or ISO8601", "%Y-%m-%d %H:%Q"),
        UNUSABLE]),
    "placeholder without a variable": (
        _conn(source_url="https://api.example.org/{station}/{site}.csv?start={start}"), [
            (CONN, "placeholder_variables", "a placeholder_variables entry named 'site'",
             "'station', 'start'"), UNUSABLE]),
    "variable without a placeholder": (
        _conn(source_url="https://api.example.org/{station}/data.csv"), [
            (CONN, "placeholder_variables[1].name", "{start} in source_url",
             "https://api.example.org/{station}/data.csv"), UNUSABLE]),
    "unknown variable type": (_conn(placeholder_variables=[
        {"name": "station", "variable_type": "per_task"},
        {"name": "start", "variable_type": "window_begin"}]), [
            (CONN, "placeholder_variables[1].variable_type",
             "'window_start', 'window_end', 'run_time', 'latest_observation_timestamp' or "
             "'per_task'", "window_begin"), UNUSABLE]),
    "secret written in the file": (_conn(auth_header_name="X-Key",
                                         auth_header_value="s3cr3t-in-file"), [
        (CONN, "auth_header_value",
         "auth: {header_name: <header>, conn_id: <Airflow connection>} or auth: {header_name: "
         "<header>, variable: <Airflow Variable>}", "a value written in the file (not shown)"),
        UNUSABLE]),
    "invalid JMESPath": (_conn(payload_type="JSON", jmespath="data[", header_row=...,
                               data_start_row=..., delimiter=...), [
        (CONN, "jmespath", "a JMESPath expression such as 'data[*]'", "data["), UNUSABLE]),
    "bad notification email": (_conn(notification={"recipient_emails": ["ops at example"]}), [
        (CONN, "notification.recipient_emails[0]", "an address such as ops@example.com",
         "ops at example"), UNUSABLE]),
    "per_task value missing": (_task(task_variables={}), [
        (TASK, "task_variables", "task_variables: {station: ...}", "no task variables")]),
    "mapping without a target": (_task(mappings=[{"source_identifier": "Level"}]), [
        (TASK, "mappings[0].target_datastream_id", "the id of the HydroServer datastream to load",
         "nothing")]),
    "one datastream twice in a task": (_task(mappings=[
        {"source_identifier": "Level", "target_datastream_id": DS},
        {"source_identifier": "Temp", "target_datastream_id": DS.upper()}]), [
            (TASK, "mappings[1].target_datastream_id", "each datastream targeted once per task",
             DS)]),
    "unknown data connection": (_task(data_connection="Station APl"), [
        (TASK, "data_connection", "'Station API'", "Station APl")]),
    "bad crontab": (_task(interval=..., interval_period=..., crontab="0 25 * * *"), [
        (TASK, "crontab", "5 cron fields, e.g. '0 * * * *'", "0 25 * * *")]),
    "interval without period": (_task(interval_period=...), [
        (TASK, "interval_period", "minutes, hours or days", "nothing")]),
    "interval and crontab": (_task(crontab="0 * * * *"), [
        (TASK, "crontab", "either interval + interval_period or crontab", "0 * * * *")]),
    "zero interval": (_task(interval=0), [
        (TASK, "interval", "a whole number >= 1", 0)]),
}

# Files that are not definitions at all: (file name, text, the one error in full)
FILE_CASES = {
    "YAML syntax error": (
        "stations.yaml", "data_connections:\n  - name: A\n    source_url: [unclosed\n",
        "{file}, line 4, column 1: not valid YAML: did not find expected ',' or ']'"),
    "key written twice": (
        "stations.yaml", "tasks: []\ntasks: []\n",
        "{file}, line 2, column 1: not valid YAML: the key 'tasks' is written twice in this "
        "mapping (first on line 1); YAML would silently keep only the last one"),
    "a list instead of a mapping": (
        "stations.yaml", "- a\n- b\n",
        "{file}: a definition file is a mapping with defaults, data_connections and tasks "
        "(expected data_connections: [...] and tasks: [...], found a list ['a', 'b'])"),
    "JSON syntax error": (
        "stations.json", '{"tasks": [}',
        "{file}, line 1, column 12: not valid JSON: Expecting value (expected a JSON object, "
        "found None)"),
    "tasks as a mapping": (
        "stations.yaml", "tasks: {name: x}\n",
        "{file}: field 'tasks': tasks is a list (expected a list of mappings, found a mapping "
        "{{'name': 'x'}})"),
    "misspelt top-level key": (
        "stations.yaml", "task: []\n",
        "{file}: field 'task': unknown key at the top of the file (did you mean 'tasks'?) "
        "(expected 'tasks', found 'task')"),
}


def _definition_errors(tmp_path: Path, document) -> list[DefinitionError]:
    path = tmp_path / "stations.yaml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return list(load_definition_file(path).errors)


@pytest.mark.parametrize("case", list(DEFINITION_CASES))
def test_definition_schema_errors_name_where_expected_and_found(case, tmp_path):
    edit, expected = DEFINITION_CASES[case]
    document = json.loads(json.dumps(BASE_DEFINITION))
    edit(document)
    errors = _definition_errors(tmp_path, document)
    file = str(tmp_path / "stations.yaml")
    assert [(e.location, e.field, e.expected, e.found) for e in errors] == [
        (where.format(file=file), field, wanted, found) for where, field, wanted, found in expected]
    for error in errors:  # the message holds every part
        assert str(error).startswith(f"{error.location}: field '{error.field}': ")
        assert str(error).endswith(f" (expected {error.expected}, found {error.found!r})")
    assert "s3cr3t-in-file" not in " ".join(map(str, errors))


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_files_that_are_not_definitions(case, tmp_path):
    name, text, message = FILE_CASES[case]
    path = tmp_path / name
    path.write_text(text)
    (error,) = load_definition_file(path).errors
    assert str(error) == message.format(file=str(path))


def test_the_base_definition_is_valid(tmp_path):
    assert _definition_errors(tmp_path, BASE_DEFINITION) == []
