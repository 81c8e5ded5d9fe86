"""Timestamp reading: ISO 8601, strftime formats, zones and the daylight-saving rules."""

from __future__ import annotations

from datetime import UTC, timedelta, timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from hydroserver_provider.definitions import DataConnection
from hydroserver_provider.errors import DefinitionError, ParseError
from hydroserver_provider.timestamps import is_iso_format, parse_fixed_offset, zone_for
from hydroserver_provider.timestamps.columns import NAT, TimestampParser, parse_timestamps

DENVER = ZoneInfo("America/Denver")


def utc(*values: str) -> np.ndarray:
    return np.array(values, dtype="M8[us]")


def connection(**kwargs) -> DataConnection:
    return DataConnection(
        name="Station", source_url="file:///data.csv", payload={"type": "CSV"}, **kwargs
    )


def unchecked(**kwargs) -> SimpleNamespace:
    """A connection-like object that skips the definition checks (zone_for must still cope)."""
    values = {"name": "Station", "timezone_type": None, "timezone": None}
    values.update(kwargs)
    return SimpleNamespace(**values)


# -- offsets and zones ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("-0700", -420),
        ("-07:00", -420),
        ("+0530", 330),
        ("+05:30", 330),
        ("-07", -420),
        ("+5", 300),
        ("UTC-07:00", -420),
        (" +00:00 ", 0),
        ("Z", 0),
        ("UTC", 0),
    ],
)
def test_parse_fixed_offset(text, minutes):
    assert parse_fixed_offset(text) == timezone(timedelta(minutes=minutes))


@pytest.mark.parametrize("text", ["0700", "America/Denver", "-07:0", "+24:00", "-07:75", ""])
def test_parse_fixed_offset_rejects_with_expected_form(text):
    with pytest.raises(ValueError, match=r"expected a UTC offset .*'-0700'"):
        parse_fixed_offset(text)


def test_zone_for_each_timezone_type():
    assert zone_for(connection()) is None
    assert zone_for(unchecked(timezone="America/Denver")) is None  # type unset: ignored
    assert zone_for(connection(timezone_type="utc")) is UTC
    assert zone_for(connection(timezone_type="offset", timezone="-0700")) == timezone(
        timedelta(hours=-7)
    )
    assert zone_for(connection(timezone_type="iana", timezone="America/Denver")) == DENVER


def test_zone_for_errors_name_field_and_value():
    with pytest.raises(DefinitionError, match=r"field 'timezone'.*unknown IANA.*'America/Denvr'"):
        zone_for(unchecked(timezone_type="iana", timezone="America/Denvr"))
    with pytest.raises(
        DefinitionError, match=r"looks like a UTC offset: use timezone_type 'offset'"
    ):
        zone_for(unchecked(timezone_type="iana", timezone="-0700"))
    with pytest.raises(DefinitionError, match=r"'-7 hours'"):
        zone_for(unchecked(timezone_type="offset", timezone="-7 hours"))
    with pytest.raises(DefinitionError, match=r"no timezone is set"):
        zone_for(unchecked(timezone_type="offset"))
    with pytest.raises(DefinitionError, match=r"unknown timezone_type"):
        zone_for(unchecked(timezone_type="local"))


def test_iso_format_spellings():
    for spelling in (None, "ISO8601", "iso", "ISO 8601", "iso-8601"):
        assert is_iso_format(spelling)
    assert not is_iso_format("%Y-%m-%d")


# -- ISO 8601 ------------------------------------------------------------------------------------


def test_iso_variants_are_detected():
    raw = [
        "2024-01-15T08:30:00Z",
        "2024-01-15T08:30:00-07:00",
        "2024-01-15T08:30:00-0700",
        "2024-01-15T08:30:00-07",  # hour-only offset
        "2024-01-15T08:30:00+05:30",
        "2024-01-15 08:30:00",  # space separator, naive -> UTC (no zone)
        "2024-01-15T08:30",
        "2024-01-15",  # date only
        "2024-01-15T08:30:00.123456Z",
        "2024-01-15T08:30:00.5-07",
        "2024-01-15T08:30:00,25Z",  # decimal comma
        "2024-01-15T08:30:00.123456789Z",  # nanoseconds are truncated to microseconds
        "20240115T083000Z",  # basic format
    ]
    got, report = parse_timestamps(raw)
    expected = utc(
        "2024-01-15T08:30:00",
        "2024-01-15T15:30:00",
        "2024-01-15T15:30:00",
        "2024-01-15T15:30:00",
        "2024-01-15T03:00:00",
        "2024-01-15T08:30:00",
        "2024-01-15T08:30:00",
        "2024-01-15T00:00:00",
        "2024-01-15T08:30:00.123456",
        "2024-01-15T15:30:00.500000",
        "2024-01-15T08:30:00.250000",
        "2024-01-15T08:30:00.123456",
        "2024-01-15T08:30:00",
    )
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.dtype("M8[us]")
    assert report.unparsable == 0
    assert report.format_tried == "ISO 8601"


def test_embedded_offset_wins_over_connection_zone():
    raw = ["2024-07-01T12:00:00Z", "2024-07-01T12:00:00-04:00", "2024-07-01T12:00:00"]
    for zone in (DENVER, parse_fixed_offset("+0530")):
        got, _ = parse_timestamps(raw, None, zone)
        np.testing.assert_array_equal(got[:2], utc("2024-07-01T12:00", "2024-07-01T16:00"))
    got, _ = parse_timestamps(raw, None, DENVER)
    assert got[2] == np.datetime64("2024-07-01T18:00", "us")  # naive: MDT
    got, _ = parse_timestamps(raw, None, parse_fixed_offset("+0530"))
    assert got[2] == np.datetime64("2024-07-01T06:30", "us")


def test_all_aware_column_with_one_offset_ignores_zone():
    got, _ = parse_timestamps(
        ["2024-01-15T08:30:00-05:00", "2024-01-15T09:30:00-05:00"], None, DENVER
    )
    np.testing.assert_array_equal(got, utc("2024-01-15T13:30", "2024-01-15T14:30"))


def test_naive_iso_in_fixed_offset_zone():
    got, _ = parse_timestamps(
        ["2024-01-15 08:30", "2024-06-15 08:30"], None, parse_fixed_offset("-07:00")
    )
    np.testing.assert_array_equal(got, utc("2024-01-15T15:30", "2024-06-15T15:30"))


def test_surrounding_blanks_are_tolerated():
    got, report = parse_timestamps(
        ["  2024-01-15T08:30:00Z ", "\t2024-01-15 09:30"], "ISO8601", DENVER
    )
    np.testing.assert_array_equal(got, utc("2024-01-15T08:30", "2024-01-15T16:30"))
    got, report = parse_timestamps([" 01/15/2024 08:30 "], "%m/%d/%Y %H:%M")
    assert report.unparsable == 0


# -- strftime ------------------------------------------------------------------------------------


def test_strftime_with_am_pm():
    raw = ["01/15/2024 08:30 AM", "01/15/2024 08:30 PM", "01/15/2024 12:00 AM", "1/5/2024 12:15 pm"]
    got, report = parse_timestamps(raw, "%m/%d/%Y %I:%M %p", DENVER)
    np.testing.assert_array_equal(
        got,
        utc("2024-01-15T15:30", "2024-01-16T03:30", "2024-01-15T07:00", "2024-01-05T19:15"),
    )
    assert report.format_tried == "%m/%d/%Y %I:%M %p"


def test_strftime_in_utc_and_offset():
    got, _ = parse_timestamps(["15.01.2024 08:30"], "%d.%m.%Y %H:%M")
    assert got[0] == np.datetime64("2024-01-15T08:30", "us")
    got, _ = parse_timestamps(["15.01.2024 08:30"], "%d.%m.%Y %H:%M", parse_fixed_offset("-0700"))
    assert got[0] == np.datetime64("2024-01-15T15:30", "us")


def test_strftime_literal_z_means_utc_even_with_a_zone():
    got, _ = parse_timestamps(["2024-01-15T08:30:00Z"], "%Y-%m-%dT%H:%M:%SZ", DENVER)
    assert got[0] == np.datetime64("2024-01-15T08:30", "us")


def test_strftime_percent_z_is_aware_and_requires_the_offset():
    raw = ["2024-01-15 08:30 -0700", "2024-01-15 08:30 +05:30", "2024-01-15 08:30"]
    got, report = parse_timestamps(raw, "%Y-%m-%d %H:%M %z", DENVER)
    np.testing.assert_array_equal(got[:2], utc("2024-01-15T15:30", "2024-01-15T03:00"))
    assert np.isnat(got[2])
    assert report.unparsable == 1


def test_strftime_fractional_seconds():
    got, _ = parse_timestamps(["2024-01-15 08:30:00.25"], "%Y-%m-%d %H:%M:%S.%f")
    assert got[0] == np.datetime64("2024-01-15T08:30:00.250000", "us")


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("%Y-%m-%d %Q", r"unknown directive\(s\) %Q"),
        ("%Y-%-m-%-d", r"'%-d' style flags"),
        ("YYYY-MM-DD", r"no % directives"),
        ("%G-%m-%d", r"cannot be used"),
    ],
)
def test_bad_strftime_format_is_a_definition_error(fmt, message):
    with pytest.raises(DefinitionError, match=message) as info:
        TimestampParser(fmt)
    assert info.value.field == "timestamp_format"


# -- unparsable values ---------------------------------------------------------------------------


def test_unparsable_values_are_counted_with_examples():
    raw = ["2024-01-15T08:30:00Z", "n/a", "", None, "yesterday", "2024-13-45", "Jan 5", "x", "y"]
    got, report = parse_timestamps(raw)
    assert not np.isnat(got[0])
    assert np.isnat(got[1:]).all()
    assert report.unparsable == 8
    assert report.unparsable_examples == ["n/a", "", "", "yesterday", "2024-13-45"]
    assert report.as_dict()["unparsable_examples"] == report.unparsable_examples
    assert report.as_dict()["format_tried"] == "ISO 8601"


def test_none_parsed_raises_with_example_and_format():
    parser = TimestampParser("%Y-%m-%d %H:%M:%S")
    parser.parse(["15/01/2024 08:30", "16/01/2024 08:30"])
    with pytest.raises(ParseError) as info:
        parser.raise_if_none_parsed("column 'Time'")
    text = str(info.value)
    assert "none of the 2 timestamps in column 'Time'" in text
    assert "'%Y-%m-%d %H:%M:%S'" in text
    assert "'15/01/2024 08:30'" in text


def test_none_parsed_iso_suggests_a_format():
    parser = TimestampParser(None)
    parser.parse(["15/01/2024 08:30"])
    with pytest.raises(ParseError, match=r"'ISO 8601'.*set timestamp_format"):
        parser.raise_if_none_parsed("field 'time'")


def test_no_rows_is_not_an_error():
    parser = TimestampParser(None)
    parser.parse([])
    parser.raise_if_none_parsed("column 'Time'")


# -- daylight saving: America/Denver -------------------------------------------------------------


def denver(raw, fmt="%Y-%m-%d %H:%M"):
    return parse_timestamps(raw, fmt, DENVER)


def test_spring_forward_gap_reads_with_the_offset_before_the_change():
    raw = [
        "2024-03-10 01:30",
        "2024-03-10 02:00",
        "2024-03-10 02:30",
        "2024-03-10 03:00",
        "2024-03-10 03:30",
    ]
    got, report = denver(raw)
    np.testing.assert_array_equal(
        got,
        utc(
            "2024-03-10T08:30",  # MST
            "2024-03-10T09:00",  # 02:00 does not exist: read as MST
            "2024-03-10T09:30",
            "2024-03-10T09:00",  # 03:00 MDT
            "2024-03-10T09:30",
        ),
    )
    assert report.nonexistent == 2
    assert report.ambiguous_by_order == report.ambiguous_by_rule == 0


def test_fall_back_hourly_ascending():
    raw = ["2024-11-03 00:00", "2024-11-03 01:00", "2024-11-03 01:00", "2024-11-03 02:00"]
    got, report = denver(raw)
    np.testing.assert_array_equal(
        got, utc("2024-11-03T06:00", "2024-11-03T07:00", "2024-11-03T08:00", "2024-11-03T09:00")
    )
    assert report.ambiguous_by_order == 2
    assert report.ambiguous_by_rule == 0


def test_fall_back_hourly_descending():
    raw = ["2024-11-03 02:00", "2024-11-03 01:00", "2024-11-03 01:00", "2024-11-03 00:00"]
    got, report = denver(raw)
    np.testing.assert_array_equal(
        got, utc("2024-11-03T09:00", "2024-11-03T08:00", "2024-11-03T07:00", "2024-11-03T06:00")
    )
    assert report.ambiguous_by_order == 2


def quarter_hours(start: str, count: int) -> np.ndarray:
    return np.datetime64(start, "us") + np.arange(count) * np.timedelta64(15, "m")


FALL_BACK_15MIN = [
    "2024-11-03 00:45",
    "2024-11-03 01:00",
    "2024-11-03 01:15",
    "2024-11-03 01:30",
    "2024-11-03 01:45",
    "2024-11-03 01:00",
    "2024-11-03 01:15",
    "2024-11-03 01:30",
    "2024-11-03 01:45",
    "2024-11-03 02:00",
]


def test_fall_back_15_minutes_ascending():
    got, report = denver(FALL_BACK_15MIN)
    np.testing.assert_array_equal(got, quarter_hours("2024-11-03T06:45", 10))
    assert report.ambiguous_by_order == 8
    assert report.ambiguous_by_rule == 0


def test_fall_back_15_minutes_descending():
    got, report = denver(FALL_BACK_15MIN[::-1])
    np.testing.assert_array_equal(got, quarter_hours("2024-11-03T06:45", 10)[::-1])
    assert report.ambiguous_by_order == 8


def test_fall_back_lone_ambiguous_value_uses_the_rule():
    got, report = denver(["2024-11-03 00:00", "2024-11-03 01:00", "2024-11-03 02:00"])
    np.testing.assert_array_equal(
        got, utc("2024-11-03T06:00", "2024-11-03T07:00", "2024-11-03T09:00")
    )
    assert report.ambiguous_by_rule == 1
    assert report.ambiguous_by_order == 0


def test_fall_back_single_pass_uses_the_rule():
    raw = [
        "2024-11-03 00:45",
        "2024-11-03 01:00",
        "2024-11-03 01:15",
        "2024-11-03 01:30",
        "2024-11-03 01:45",
        "2024-11-03 02:00",
    ]
    got, report = denver(raw)
    np.testing.assert_array_equal(got[1:5], quarter_hours("2024-11-03T07:00", 4))  # MDT
    assert report.ambiguous_by_rule == 4


def test_fall_back_without_neighbours_assumes_ascending():
    got, report = denver(["2024-11-03 01:00", "2024-11-03 01:00"])
    np.testing.assert_array_equal(got, utc("2024-11-03T07:00", "2024-11-03T08:00"))
    assert report.ambiguous_by_order == 2


def test_fall_back_in_two_years_is_resolved_per_change():
    raw = [
        "2023-11-05 00:30", "2023-11-05 01:30", "2023-11-05 01:30", "2023-11-05 02:30",
        "2024-11-03 00:30", "2024-11-03 01:30", "2024-11-03 02:30",
    ]  # fmt: skip
    got, report = denver(raw)
    np.testing.assert_array_equal(
        got,
        utc(
            "2023-11-05T06:30", "2023-11-05T07:30", "2023-11-05T08:30", "2023-11-05T09:30",
            "2024-11-03T06:30", "2024-11-03T07:30", "2024-11-03T09:30",
        ),
    )  # fmt: skip
    assert report.ambiguous_by_order == 2
    assert report.ambiguous_by_rule == 1


def test_aware_rows_inside_the_repeated_hour_do_not_disturb_the_order():
    raw = [
        "2024-11-03T00:00:00",
        "2024-11-03T01:00:00",
        "2024-11-03T07:30:00Z",
        "2024-11-03T01:00:00",
        "2024-11-03T02:00:00",
    ]
    got, report = parse_timestamps(raw, None, DENVER)
    np.testing.assert_array_equal(
        got,
        utc(
            "2024-11-03T06:00",
            "2024-11-03T07:00",
            "2024-11-03T07:30",
            "2024-11-03T08:00",
            "2024-11-03T09:00",
        ),
    )
    assert report.ambiguous_by_order == 2


def test_chunked_parsing_resolves_fall_back_across_chunks():
    parser = TimestampParser("%Y-%m-%d %H:%M", DENVER)
    pieces = [parser.parse(FALL_BACK_15MIN[i : i + 3]) for i in range(0, len(FALL_BACK_15MIN), 3)]
    values = np.concatenate([p[0] for p in pieces])
    naive = np.concatenate([p[1] for p in pieces])
    got = parser.localize(values, naive).view("M8[us]")
    np.testing.assert_array_equal(got, quarter_hours("2024-11-03T06:45", 10))
    assert parser.report.ambiguous_by_order == 8


def test_unparsable_rows_stay_nat_through_localisation():
    parser = TimestampParser("%Y-%m-%d %H:%M", DENVER)
    values, naive = parser.parse(["2024-11-03 01:00", "junk", "2024-11-03 01:00"])
    got = parser.localize(values, naive)
    assert got[1] == NAT
    np.testing.assert_array_equal(
        got[[0, 2]].view("M8[us]"), utc("2024-11-03T07:00", "2024-11-03T08:00")
    )


# -- other zones ---------------------------------------------------------------------------------


def test_europe_fall_back_and_gap():
    berlin = ZoneInfo("Europe/Berlin")
    raw = [
        "2024-10-27 01:30",
        "2024-10-27 02:30",
        "2024-10-27 02:30",
        "2024-10-27 03:30",
        "2024-03-31 02:30",
    ]
    got, report = parse_timestamps(raw, "%Y-%m-%d %H:%M", berlin)
    np.testing.assert_array_equal(
        got,
        utc(
            "2024-10-26T23:30",
            "2024-10-27T00:30",
            "2024-10-27T01:30",
            "2024-10-27T02:30",
            "2024-03-31T01:30",
        ),
    )
    assert report.ambiguous_by_order == 2
    assert report.nonexistent == 1


def test_half_hour_dst_zone():
    lord_howe = ZoneInfo("Australia/Lord_Howe")  # +11 in summer, +10:30 in winter
    raw = ["2024-04-07 01:15", "2024-04-07 01:45", "2024-04-07 01:45", "2024-04-07 02:15"]
    got, report = parse_timestamps(raw, "%Y-%m-%d %H:%M", lord_howe)
    np.testing.assert_array_equal(
        got, utc("2024-04-06T14:15", "2024-04-06T14:45", "2024-04-06T15:15", "2024-04-06T15:45")
    )
    assert report.ambiguous_by_order == 2


def test_utc_zone_is_identity():
    got, _ = parse_timestamps(
        ["2024-11-03 01:00", "2024-11-03 01:00"], "%Y-%m-%d %H:%M", ZoneInfo("UTC")
    )
    np.testing.assert_array_equal(got, utc("2024-11-03T01:00", "2024-11-03T01:00"))


# -- values without an offset, no timezone_type: read as UTC, said once ------------------------


@pytest.mark.parametrize(("fmt", "zone", "values", "example"), [
    (None, None, ["2025-06-01 00:00:00", "2025-06-01 01:00:00"], "2025-06-01 00:00:00"),
    (None, None, ["", " 2025-06-01T00:00 ", "2025-06-01T01:00"], "2025-06-01T00:00"),
    ("%m/%d/%Y %H:%M", None, ["06/01/2025 00:00"], "06/01/2025 00:00"),
    (None, None, ["2025-06-01T00:00:00Z", "2025-06-01T01:00:00Z"], None),
    (None, None, ["2025-06-01T00:00:00-06:00"], None),
    ("%Y-%m-%dT%H:%M:%SZ", None, ["2025-06-01T00:00:00Z"], None),
    ("%Y-%m-%d %H:%M:%S%z", None, ["2025-06-01 00:00:00-0600"], None),
    (None, UTC, ["2025-06-01 00:00:00"], None),  # timezone_type: utc says so
    (None, DENVER, ["2025-06-01 00:00:00"], None),
])
def test_values_without_offset_and_without_timezone_type_get_a_note(fmt, zone, values, example):
    parser = TimestampParser(fmt, zone)
    parser.parse(values)
    assert parser.report.no_offset_example == example
    notes = parser.report.notes("column 'Timestamp'")
    if example is None:
        assert notes == []
    else:
        assert notes == [
            f"column 'Timestamp': timestamps such as {example!r} carry no UTC offset and the data "
            "connection sets no timezone_type, so they were read as UTC (as HydroServer does). "
            "If the source writes local time, the stored times are shifted by its UTC offset: "
            "set timezone_type: iana with timezone (e.g. America/Denver), or timezone_type: "
            "offset with timezone (e.g. -0700); timezone_type: utc confirms UTC and ends this "
            "note"]
