"""Definition models: both vocabularies, normalisation, and one precise error per problem."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from hydroserver_provider.definitions import (
    HIDDEN,
    NOTHING,
    AirflowSettings,
    CSVPayload,
    DataConnection,
    HydrocronPayload,
    JSONPayload,
    Mapping,
    PlaceholderVariable,
    Schedule,
    SourceAuth,
    Task,
    crontab_problem,
    normalise_offset,
    parse_data_connection,
    parse_definitions,
    parse_task,
    placeholder_names,
    strftime_problem,
)
from hydroserver_provider.errors import DefinitionError, DefinitionErrors

CONTRACT = Path("/work/shared/contracts/hydroserver/data.openapi.json")
WORKSPACE = {"id": "0b6c3a52-6a2e-4a4e-9a57-3c3c6f0e2d11", "name": "Utah Water",
             "isPrivate": False}
DS_TEMP = "5f2b8c1e-1111-4a4e-9a57-3c3c6f0e2d11"
DS_HUM = "5f2b8c1e-2222-4a4e-9a57-3c3c6f0e2d11"


# --------------------------------------------------------------------------------------------
# Fixtures: the same definitions written three ways
# --------------------------------------------------------------------------------------------


def seed_connection(**changes) -> dict:
    """The seed guide's vocabulary: snake_case, payload_type and flat payload keys."""
    data = {
        "name": "Station API",
        "workspace_id": WORKSPACE["id"],
        "source_url": "https://api.example.com/{station_id}/data.csv?start={start}",
        "payload_type": "CSV",
        "timestamp_key": "Timestamp",
        "timestamp_format": "%Y-%m-%d %H:%M:%S",
        "timezone_type": "iana",
        "timezone": "America/Denver",
        "header_row": 1,
        "data_start_row": 2,
        "delimiter": ",",
        "placeholder_variables": [
            {"name": "station_id", "variable_type": "per_task"},
            {"name": "start", "variable_type": "window_start",
             "timestamp_format": "%Y-%m-%dT%H:%M:%S"},
        ],
        "notification": {"recipient_emails": ["ops@example.com"],
                         "schedule": {"enabled": True, "interval": 1,
                                      "interval_period": "days"}},
    }
    data.update(changes)
    return data


def nested_connection() -> dict:
    """snake_case with a nested payload block and `type` for the variable type."""
    return {
        "name": "Station API",
        "workspace_id": WORKSPACE["id"],
        "source_url": "https://api.example.com/{station_id}/data.csv?start={start}",
        "payload": {"type": "CSV", "timestamp_key": "Timestamp",
                    "timestamp_format": "%Y-%m-%d %H:%M:%S", "header_row": 1,
                    "data_start_row": 2, "delimiter": "comma"},
        "timezone_type": "iana",
        "timezone": "America/Denver",
        "placeholder_variables": [
            {"name": "station_id", "type": "per_task"},
            {"name": "start", "type": "window_start", "timestamp_format": "%Y-%m-%dT%H:%M:%S"},
        ],
        "notification": {"recipient_emails": ["ops@example.com"],
                         "schedule": {"enabled": True, "interval": 1,
                                      "interval_period": "days"}},
    }


def export_connection(**changes) -> dict:
    """HydroServer's GET /api/data/etl/data-connections/{id} answer (DataConnectionResponse)."""
    data = {
        "id": "7d1e0c9a-2b3c-4d5e-8f90-a1b2c3d4e5f6",
        "name": "Station API",
        "description": None,
        "sourceUrl": "https://api.example.com/{station_id}/data.csv?start={start}",
        "workspace": WORKSPACE,
        "timezoneType": "iana",
        "timezone": "America/Denver",
        "authHeaderName": None,
        "authHeaderValue": None,
        "taskCount": 1,
        "taskAttentionCount": 0,
        "payload": {"type": "CSV", "timestampKey": "Timestamp",
                    "timestampFormat": "%Y-%m-%d %H:%M:%S", "headerRow": 1, "dataStartRow": 2,
                    "delimiter": ",", "dataIngestionWindow": None},
        "placeholderVariables": [
            {"name": "station_id", "type": "per_task", "timestampFormat": None},
            {"name": "start", "type": "window_start", "timestampFormat": "%Y-%m-%dT%H:%M:%S"},
        ],
        "notification": {"recipientEmails": ["ops@example.com"],
                         "schedule": {"enabled": True, "interval": 1, "intervalPeriod": "days",
                                      "crontab": None, "startTime": None, "nextRunAt": None}},
    }
    data.update(changes)
    return data


def datastream_summary(ident: str) -> dict:
    return {"id": ident, "name": "Temperature", "description": "", "thingId": WORKSPACE["id"],
            "sensorId": WORKSPACE["id"], "observedPropertyId": WORKSPACE["id"],
            "processingLevelId": WORKSPACE["id"], "unitId": WORKSPACE["id"],
            "observationType": "OM_Measurement", "sampledMedium": "Water", "noDataValue": -9999,
            "aggregationStatistic": "Continuous", "timeAggregationInterval": 15,
            "resultType": "Time series", "timeAggregationIntervalUnit": "minutes",
            "workspaceId": WORKSPACE["id"], "tags": [], "fileAttachments": [],
            "phenomenonEndTime": None, "valueCount": None}


def export_task(**changes) -> dict:
    """HydroServer's GET /api/data/etl/tasks/{id} answer (EtlTaskDetailResponse)."""
    data = {
        "id": "9a8b7c6d-1234-4567-89ab-cdef01234567",
        "name": "Station 42",
        "description": None,
        "taskVariables": {"station_id": "station-42"},
        "dataConnection": export_connection(),
        "schedule": {"enabled": True, "interval": 1, "intervalPeriod": "hours", "crontab": None,
                     "startTime": "2025-01-01T00:00:00Z",
                     "nextRunAt": "2025-01-01T01:00:00Z"},
        "mappings": [
            {"sourceIdentifier": "Temperature", "targetDatastream": datastream_summary(DS_TEMP)},
            {"sourceIdentifier": "Humidity",
             "targetDatastream": datastream_summary(DS_HUM.upper())},
        ],
        "latestRun": {"id": "9a8b7c6d-1234-4567-89ab-cdef01234568", "status": "SUCCESS",
                      "startedAt": "2025-01-01T00:00:00Z", "finishedAt": None,
                      "message": "Loaded 10 observations", "result": {}},
    }
    data.update(changes)
    return data


def seed_task(**changes) -> dict:
    data = {
        "name": "Station 42",
        "data_connection": "Station API",
        "task_variables": {"station_id": "station-42"},
        "mappings": [{"source_identifier": "Temperature", "target_datastream_id": DS_TEMP},
                     {"source_identifier": "Humidity", "target_datastream_id": DS_HUM}],
        "interval": 1,
        "interval_period": "hours",
        "start_time": datetime(2025, 1, 1, tzinfo=UTC),
        "enabled": True,
    }
    data.update(changes)
    return data


def errors_of(fn, *args, **kwargs) -> list[DefinitionError]:
    with pytest.raises(DefinitionErrors) as info:
        fn(*args, **kwargs)
    assert all(isinstance(e, DefinitionError) for e in info.value.errors)
    return list(info.value.errors)


def one_error(fn, *args, field: str | None = None, **kwargs) -> DefinitionError:
    errors = errors_of(fn, *args, **kwargs)
    if field is not None:
        errors = [e for e in errors if e.field == field]
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


def connection(**changes) -> DataConnection:
    return parse_data_connection(seed_connection(**changes))


# --------------------------------------------------------------------------------------------
# Both vocabularies
# --------------------------------------------------------------------------------------------


def test_seed_vocabulary_builds_the_canonical_model():
    c = connection()
    assert c.name == "Station API"
    assert c.payload == CSVPayload(header_row=1, data_start_row=2, delimiter=",")
    assert c.timestamp_key == "Timestamp"
    assert c.timestamp_format == "%Y-%m-%d %H:%M:%S"
    assert (c.timezone_type, c.timezone) == ("iana", "America/Denver")
    assert c.placeholder_variables == (
        PlaceholderVariable(name="station_id", variable_type="per_task"),
        PlaceholderVariable(name="start", variable_type="window_start",
                            timestamp_format="%Y-%m-%dT%H:%M:%S"),
    )
    assert c.workspace_id == WORKSPACE["id"]
    assert c.notification.recipient_emails == ("ops@example.com",)
    assert c.notification.schedule == Schedule(interval=1, interval_period="days")
    assert c.auth is None and c.id is None and c.description == ""


def test_nested_payload_block_equals_flat_keys():
    assert parse_data_connection(nested_connection()) == connection()


def test_hydroserver_camel_case_export_equals_seed_vocabulary():
    exported = parse_data_connection(export_connection())
    assert exported.id == "7d1e0c9a-2b3c-4d5e-8f90-a1b2c3d4e5f6"
    assert exported.model_copy(update={"id": None}) == connection()


def test_export_fixtures_follow_the_hydroserver_contract():
    jsonschema = pytest.importorskip("jsonschema")
    if not CONTRACT.exists():
        pytest.skip("HydroServer contract not available")
    components = json.loads(CONTRACT.read_text())["components"]
    for name, instance in (("DataConnectionResponse", export_connection()),
                           ("EtlTaskDetailResponse", export_task())):
        schema = {"$ref": f"#/components/schemas/{name}", "components": components}
        jsonschema.Draft202012Validator(schema).validate(instance)


def test_hydroserver_task_detail_equals_seed_task():
    exported = parse_task(export_task())
    seed = parse_task(seed_task(), [connection()])
    assert exported.id == "9a8b7c6d-1234-4567-89ab-cdef01234567"
    assert exported.data_connection.id == "7d1e0c9a-2b3c-4d5e-8f90-a1b2c3d4e5f6"
    # the datastream ids are normalised to lower case UUIDs
    assert exported.target_datastream_ids == (DS_TEMP, DS_HUM)
    assert exported.model_copy(update={
        "id": None, "data_connection": exported.data_connection.model_copy(update={"id": None}),
    }) == seed


def test_task_summary_references_its_connection_by_id():
    summary = {"id": "9a8b7c6d-1234-4567-89ab-cdef01234567", "name": "Station 42",
               "workspaceId": WORKSPACE["id"],
               "dataConnectionId": "7D1E0C9A-2B3C-4D5E-8F90-A1B2C3D4E5F6",
               "taskVariables": {"station_id": "station-42"},
               "schedule": {"enabled": False, "crontab": "0 2 * * *", "interval": None,
                            "intervalPeriod": None, "startTime": None, "nextRunAt": None},
               "mappings": [{"sourceIdentifier": "Temperature", "targetDatastreamId": DS_TEMP}],
               "latestRun": None}
    task = parse_task(summary, [parse_data_connection(export_connection())])
    assert task.data_connection.name == "Station API"
    assert task.schedule == Schedule(crontab="0 2 * * *", enabled=False)
    assert not task.schedule.is_manual


def test_json_payload_in_both_vocabularies():
    seed = parse_data_connection({"name": "J", "source_url": "https://x.org/readings.json",
                                  "payload_type": "json", "timestamp_key": "datetime",
                                  "jmespath": "data[*]"})
    camel = parse_data_connection({"name": "J", "sourceUrl": "https://x.org/readings.json",
                                   "placeholderVariables": [],
                                   "payload": {"type": "JSON", "timestampKey": "datetime",
                                               "timestampFormat": None, "jmespath": "data[*]"}})
    assert seed == camel
    assert seed.payload == JSONPayload(jmespath="data[*]")


def test_json_payload_without_jmespath_reads_the_document_itself():
    c = parse_data_connection({"name": "J", "sourceUrl": "https://x.org/r.json",
                               "payload": {"type": "JSON", "timestampKey": "t",
                                           "jmespath": None}})
    assert c.payload.jmespath == "@"


def test_hydrocron_payload_flat_and_nested():
    flat = parse_data_connection({"name": "H", "source_url": "https://soto.example/timeseries",
                                  "payload_type": "HYDROCRON", "feature": "Node",
                                  "fields": ["wse", "width"], "timestamp_key": "time_str"})
    nested = parse_data_connection({"name": "H", "source_url": "https://soto.example/timeseries",
                                    "payload": {"type": "hydrocron", "feature": "Node",
                                                "fields": ["wse", "width"]},
                                    "timestamp_key": "time_str"})
    assert flat == nested
    assert flat.payload == HydrocronPayload(feature="Node", fields=("wse", "width"))


def test_timestamp_settings_at_top_level_or_in_payload_must_agree():
    both = seed_connection(payload={"type": "CSV", "timestamp_key": "Time"})
    del both["payload_type"]
    error = one_error(parse_data_connection, both, field="payload.timestamp_key")
    assert "set twice with different values" in str(error)
    assert error.found == "Time"
    same = seed_connection(payload={"type": "CSV", "timestamp_key": "Timestamp"})
    del same["payload_type"]
    assert parse_data_connection(same) == connection()


def test_the_same_setting_under_both_spellings_is_refused():
    data = seed_connection(sourceUrl="https://other.example.com/x.csv")
    error = one_error(parse_data_connection, data, field="sourceUrl")
    assert "repeats 'source_url'" in str(error)


def test_csv_export_nulls_take_the_defaults():
    c = parse_data_connection(export_connection(payload={
        "type": "CSV", "timestampKey": "Timestamp", "headerRow": None, "dataStartRow": None,
        "delimiter": None}, placeholderVariables=[], sourceUrl="https://x.org/a.csv"))
    assert c.payload == CSVPayload(header_row=None, data_start_row=1, delimiter=",")
    c = parse_data_connection(seed_connection(header_row=3, data_start_row=None))
    assert c.payload.data_start_row == 4


# --------------------------------------------------------------------------------------------
# Payload rules
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("written, char", [
    (",", ","), ("|", "|"), ("\t", "\t"), (";", ";"), (" ", " "), ("\\t", "\t"),
    ("comma", ","), ("pipe", "|"), ("tab", "\t"), ("Semicolon", ";"), ("space", " "),
])
def test_delimiters_are_normalised_to_the_character(written, char):
    assert connection(delimiter=written).payload.delimiter == char


def test_unknown_delimiter():
    error = one_error(parse_data_connection, seed_connection(delimiter="colon"))
    assert error.location == "data connection 'Station API'"
    assert error.field == "delimiter"
    assert error.found == "colon"
    assert "comma, pipe, tab, semicolon, space" in error.expected
    assert "unknown delimiter" in str(error) and "found 'colon'" in str(error)


@pytest.mark.parametrize("written, char", [
    ("comma", ","), ("Pipe", "|"), ("TAB", "\t"), ("semicolon", ";"), ("Space", " "), ("|", "|"),
])
def test_delimiter_names_of_the_guide_in_every_spelling(written, char):
    assert connection(delimiter=written).payload.delimiter == char
    data = export_connection()
    data["payload"]["delimiter"] = written
    assert parse_data_connection(data).payload.delimiter == char
    nested = nested_connection()
    nested["payload"]["delimiter"] = written
    assert parse_data_connection(nested).payload.delimiter == char


@pytest.mark.parametrize("written", ["colon", ":", "whitespace", "  ", "commas", ""])
def test_other_delimiters_are_refused_at_validation_listing_the_names(written):
    error = one_error(parse_data_connection, seed_connection(delimiter=written))
    assert (error.field, error.found) == ("delimiter", written)
    assert "comma, pipe, tab, semicolon, space" in error.expected
    with pytest.raises(ValidationError, match="unknown delimiter"):
        CSVPayload(delimiter=written)


def test_unknown_delimiter_in_a_camel_case_payload_names_the_written_key():
    data = export_connection()
    data["payload"]["delimiter"] = ":"
    error = one_error(parse_data_connection, data)
    assert error.field == "payload.delimiter"


def test_unknown_payload_type():
    error = one_error(parse_data_connection, seed_connection(payload_type="XML"))
    assert (error.field, error.expected, error.found) == (
        "payload_type", "CSV, JSON or HYDROCRON", "XML")
    assert "unknown payload type" in str(error)
    hint = one_error(parse_data_connection, seed_connection(payload_type="JSNO"))
    assert "did you mean 'JSON'?" in str(hint)


def test_missing_payload_type():
    data = seed_connection()
    del data["payload_type"]
    error = one_error(parse_data_connection, data)
    assert error.field == "payload_type" and error.found is NOTHING
    assert "the payload type is required" in str(error)


def test_payload_key_of_another_payload_type():
    errors = errors_of(parse_data_connection, seed_connection(jmespath="data[*]"))
    assert [(e.field, e.found) for e in errors] == [("jmespath", "data[*]")]
    assert "applies to JSON payloads, not CSV" in str(errors[0])


def test_rows_are_counted_from_one_and_data_follows_the_header():
    error = one_error(parse_data_connection, seed_connection(header_row=0))
    assert (error.field, error.found) == ("header_row", 0)
    error = one_error(parse_data_connection, seed_connection(header_row=3, data_start_row=2))
    assert error.field == "data_start_row"
    assert error.expected == "a row number > header_row (3)" and error.found == 2


def test_invalid_jmespath():
    data = {"name": "J", "source_url": "https://x.org/r.json", "payload_type": "JSON",
            "timestamp_key": "t", "jmespath": "data[*"}
    error = one_error(parse_data_connection, data)
    assert error.location == "data connection 'J'"
    assert (error.field, error.found) == ("jmespath", "data[*")
    assert "invalid JMESPath expression" in str(error)
    assert "Invalid jmespath expression: Invalid" not in str(error)


# --------------------------------------------------------------------------------------------
# Placeholders
# --------------------------------------------------------------------------------------------


def test_placeholder_without_variable():
    data = seed_connection(source_url="https://x.org/{station_id}?start={start}&end={end}")
    error = one_error(parse_data_connection, data)
    assert error.field == "placeholder_variables"
    assert error.expected == "a placeholder_variables entry named 'end'"
    assert "placeholder {end} but no placeholder variable" in str(error)
    assert "'station_id', 'start'" in str(error)


def test_variable_without_placeholder():
    data = seed_connection(source_url="https://x.org/{station_id}/data.csv")
    error = one_error(parse_data_connection, data)
    assert error.field == "placeholder_variables[1].name"
    assert (error.expected, error.found) == ("{start} in source_url",
                                             "https://x.org/{station_id}/data.csv")
    assert "the variable 'start' has no {start} in the source URL" in str(error)


def test_variable_without_placeholder_in_camel_case_names_the_written_key():
    data = export_connection(sourceUrl="https://x.org/{station_id}/data.csv")
    error = one_error(parse_data_connection, data)
    assert error.field == "placeholderVariables[1].name"


def test_duplicate_variables_and_bad_placeholders():
    variables = [{"name": "start", "variable_type": "window_start"},
                 {"name": "start", "variable_type": "run_time"}]
    data = seed_connection(source_url="https://x.org/?s={start}",
                           placeholder_variables=variables)
    error = one_error(parse_data_connection, data)
    assert error.field == "placeholder_variables[1].name" and "two placeholder variables" in \
        str(error)
    bad = seed_connection(source_url="https://x.org/{station-id}?s={start}",
                          placeholder_variables=[variables[0]])
    error = one_error(parse_data_connection, bad)
    assert error.field == "source_url" and "'{station-id}' is not a valid placeholder" in \
        str(error)
    lone = seed_connection(source_url="https://x.org/?s={start", placeholder_variables=[])
    error = one_error(parse_data_connection, lone)
    assert error.field == "source_url" and "unbalanced" in str(error)


@pytest.mark.parametrize(("url", "variable"), [
    ("https://x.org/?s={{ data_interval_start }}", "window_start"),
    ("https://x.org/?e={{ data_interval_end | ts }}", "window_end"),
    ("https://x.org/?d={{ds}}", "window_start"),
])
def test_jinja_in_the_source_url_points_to_window_placeholders(url, variable):
    """Airflow users write {{ data_interval_start }}; the URL is not a template: say what works."""
    error = one_error(parse_data_connection, seed_connection(source_url=url,
                                                             placeholder_variables=[]))
    jinja = url[url.index("{{"):]
    assert error.field == "source_url"
    assert error.args[0].endswith(
        f"the source URL is not a Jinja template: {jinja!r} would never be filled in. Write a "
        f"placeholder such as {{start}} and describe it in placeholder_variables: {{name: start, "
        f"variable_type: {variable}}} (window_start / window_end are the run's data interval) "
        f"(expected placeholders written as {{name}}, found {url!r})")


def test_unknown_variable_type():
    data = seed_connection(placeholder_variables=[
        {"name": "station_id", "variable_type": "per_task"},
        {"name": "start", "variable_type": "yesterday"}])
    error = one_error(parse_data_connection, data)
    assert error.field == "placeholder_variables[1].variable_type"
    assert error.found == "yesterday" and "'window_start'" in error.expected


def test_relative_source_url():
    error = one_error(parse_data_connection, seed_connection(
        source_url="api.example.com/{station_id}/data.csv?start={start}"))
    assert error.field == "source_url"
    assert error.expected == "a URL starting with http://, https:// or file://"


def test_per_task_variable_missing_from_task_variables():
    error = one_error(parse_task, seed_task(task_variables={"station": "42"}), [connection()])
    assert error.location == "task 'Station 42'"
    assert error.field == "task_variables"
    assert error.expected == "task_variables: {station_id: ...}"
    assert "per_task variable 'station_id'" in str(error) and "'station'" in str(error)
    error = one_error(parse_task, seed_task(task_variables=None), [connection()])
    assert "no task variables" in str(error)


def test_task_variable_values_are_text():
    error = one_error(parse_task, seed_task(task_variables={"station_id": 42}), [connection()])
    assert error.field == "task_variables.station_id"
    assert error.found == 42 and 'station_id: "42"' in str(error)


# --------------------------------------------------------------------------------------------
# Time zones and formats
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("written, normalised", [
    ("-0700", "-0700"), ("-07:00", "-0700"), ("+05:30", "+0530"), ("+0000", "+0000"),
])
def test_offsets_are_normalised(written, normalised):
    c = connection(timezone_type="offset", timezone=written)
    assert (c.timezone_type, c.timezone) == ("offset", normalised)


@pytest.mark.parametrize("written", ["-7", "-07", "0700", "+2500", "-07:75", "America/Denver"])
def test_offset_needs_a_valid_offset(written):
    error = one_error(parse_data_connection, seed_connection(timezone_type="offset",
                                                             timezone=written))
    assert error.field == "timezone"
    assert error.expected == "an offset like -0700 or +05:30" and error.found == written
    assert "timezone_type offset needs a fixed UTC offset" in str(error)


def test_offset_without_timezone():
    data = seed_connection(timezone_type="offset")
    del data["timezone"]
    error = one_error(parse_data_connection, data)
    assert (error.field, error.found) == ("timezone", NOTHING)
    assert "found nothing" in str(error)


def test_unknown_iana_zone_with_hint():
    error = one_error(parse_data_connection, seed_connection(timezone="America/Denvr"))
    assert (error.field, error.found) == ("timezone", "America/Denvr")
    assert "not a known IANA time zone (did you mean 'America/Denver'?)" in str(error)
    error = one_error(parse_data_connection, seed_connection(timezone="america/denver"))
    assert "did you mean 'America/Denver'?" in str(error)
    error = one_error(parse_data_connection, seed_connection(timezone="Mars/Olympus"))
    assert "not a known IANA time zone" in str(error)


def test_timezone_type_case_and_camel_spelling():
    c = parse_data_connection(export_connection(timezoneType="IANA"))
    assert c.timezone_type == "iana"
    c = connection(timezone_type="UTC", timezone=None)
    assert (c.timezone_type, c.timezone) == ("utc", None)


def test_timezone_without_timezone_type_is_not_silently_ignored():
    data = seed_connection(timezone_type=None)
    error = one_error(parse_data_connection, data)
    assert error.field == "timezone" and error.found == "America/Denver"
    assert "timezone_type is not" in str(error)


def test_unknown_timezone_type_and_utc_conflict():
    error = one_error(parse_data_connection, seed_connection(timezone_type="local"))
    assert error.field == "timezone_type" and error.found == "local"
    assert "'utc', 'offset' or 'iana'" in error.expected
    error = one_error(parse_data_connection, seed_connection(timezone_type="utc"))
    assert error.field == "timezone" and "conflicts" in str(error)


@pytest.mark.parametrize("fmt, problem", [
    ("%Y-%m-%d %Q", "'%Q' is not a strftime directive"),
    ("%H:%M:%S", "has no date directive"),
    ("%Y-%m-%-d", "padding flags depend on the platform"),
    ("%Y-%m-%d %", "lone '%'"),
    ("%s", "'%s' is not a strftime directive"),
])
def test_bad_timestamp_formats(fmt, problem):
    assert problem in strftime_problem(fmt)
    error = one_error(parse_data_connection, seed_connection(timestamp_format=fmt))
    assert (error.field, error.found) == ("timestamp_format", fmt)
    assert problem in str(error)


@pytest.mark.parametrize("fmt", ["%Y-%m-%d %H:%M:%S", "%m/%d/%Y %I:%M %p",
                                 "%Y-%m-%dT%H:%M:%SZ", "%d.%m.%y %H%%", "%j %Y"])
def test_good_timestamp_formats(fmt):
    assert strftime_problem(fmt) is None
    assert connection(timestamp_format=fmt).timestamp_format == fmt


@pytest.mark.parametrize("written", ["ISO8601", "iso8601", "ISO-8601", "iso", None])
def test_iso8601_means_detected(written):
    assert connection(timestamp_format=written).timestamp_format is None


def test_placeholder_formats_may_be_time_only_but_need_a_directive():
    def variables(fmt):
        return [{"name": "station_id", "variable_type": "per_task"},
                {"name": "start", "variable_type": "run_time", "timestamp_format": fmt}]
    assert connection(placeholder_variables=variables("%H:%M")).placeholder_variables[1] \
        .timestamp_format == "%H:%M"
    error = one_error(parse_data_connection, seed_connection(
        placeholder_variables=variables("today")))
    assert error.field == "placeholder_variables[1].timestamp_format"
    assert "has no % directive" in str(error)


def test_bad_placeholder_timestamp_format():
    data = seed_connection(placeholder_variables=[
        {"name": "station_id", "variable_type": "per_task"},
        {"name": "start", "variable_type": "window_start", "timestamp_format": "%Y%Q"}])
    error = one_error(parse_data_connection, data)
    assert error.field == "placeholder_variables[1].timestamp_format"
    assert error.found == "%Y%Q"


# --------------------------------------------------------------------------------------------
# Mappings, schedules, tasks
# --------------------------------------------------------------------------------------------


def test_mapping_without_target_or_source():
    error = one_error(parse_task, seed_task(mappings=[{"source_identifier": "Temperature"}]),
                      [connection()])
    assert error.location == "task 'Station 42'"
    assert error.field == "mappings[0].target_datastream_id"
    assert error.expected == "the id of the HydroServer datastream to load"
    assert error.found is NOTHING and "is required" in str(error)
    error = one_error(parse_task, seed_task(mappings=[{"targetDatastreamId": DS_TEMP}]),
                      [connection()])
    assert error.field == "mappings[0].source_identifier"
    assert error.expected == "the column (CSV) or field (JSON) holding the values"


def test_task_without_mappings():
    error = one_error(parse_task, seed_task(mappings=[]), [connection()])
    assert error.field == "mappings" and "at least one mapping" in str(error)


def test_one_datastream_twice_in_one_task():
    mappings = [{"source_identifier": "A", "target_datastream_id": DS_TEMP},
                {"source_identifier": "B", "target_datastream_id": DS_TEMP.upper()}]
    error = one_error(parse_task, seed_task(mappings=mappings), [connection()])
    assert error.field == "mappings[1].target_datastream_id" and error.found == DS_TEMP
    assert "already the target of mappings[0]" in str(error)


def test_numeric_source_identifier_is_a_column_index():
    task = parse_task(seed_task(mappings=[{"source_identifier": 3,
                                           "target_datastream_id": DS_TEMP}]), [connection()])
    assert task.mappings == (Mapping(source_identifier="3", target_datastream_id=DS_TEMP),)


def test_interval_without_period_and_period_without_interval():
    error = one_error(parse_task, seed_task(interval_period=None), [connection()])
    assert (error.field, error.expected, error.found) == (
        "interval_period", "minutes, hours or days", NOTHING)
    error = one_error(parse_task, seed_task(interval=None), [connection()])
    assert error.field == "interval" and "interval_period is set" in str(error)


@pytest.mark.parametrize("period", ["weeks", "fortnight", 3])
def test_bad_interval_period(period):
    error = one_error(parse_task, seed_task(interval_period=period), [connection()])
    assert error.field == "interval_period"
    assert error.found == period


def test_interval_period_spellings_and_zero_interval():
    task = parse_task(seed_task(interval=15, interval_period="Minute"), [connection()])
    assert task.schedule.interval_delta == timedelta(minutes=15)
    error = one_error(parse_task, seed_task(interval=0), [connection()])
    assert (error.field, error.found) == ("interval", 0)
    error = one_error(parse_task, seed_task(interval="often"), [connection()])
    assert (error.field, error.expected, error.found) == ("interval", "a whole number", "often")


def test_interval_and_crontab_together():
    error = one_error(parse_task, seed_task(crontab="0 * * * *"), [connection()])
    assert error.field == "crontab" and "not both" in str(error)


@pytest.mark.parametrize("crontab, problem", [
    ("* * *", "has 3 fields"),
    ("0 * * * * *", "has 6 fields"),
    ("61 * * * *", "is not a valid cron expression"),
    ("0 25 * * *", "is not a valid cron expression"),
    ("@daily", "presets are not accepted; write '0 0 * * *'"),
])
def test_bad_crontab(crontab, problem):
    assert problem in crontab_problem(crontab)
    error = one_error(parse_task, seed_task(interval=None, interval_period=None,
                                            crontab=crontab), [connection()])
    assert (error.field, error.found) == ("crontab", crontab)
    assert error.expected == "5 cron fields, e.g. '0 * * * *'"


@pytest.mark.parametrize("crontab", ["0 * * * *", "*/15 * * * *", "0 2 * * 1-5",
                                     "30 6 1,15 * MON"])
def test_good_crontab(crontab):
    task = parse_task(seed_task(interval=None, interval_period=None, crontab=crontab),
                      [connection()])
    assert task.schedule.crontab == crontab and not task.schedule.is_manual
    assert task.schedule.interval_delta is None


def test_schedule_block_or_flat_keys_but_not_both():
    block = seed_task(interval=None, interval_period=None, start_time=None, enabled=None,
                      schedule={"interval": 1, "interval_period": "hours",
                                "start_time": "2025-01-01T00:00:00Z"})
    assert parse_task(block, [connection()]) == parse_task(seed_task(), [connection()])
    both = seed_task(schedule={"interval": 2, "interval_period": "hours"})
    errors = errors_of(parse_task, both, [connection()])
    assert {e.field for e in errors} == {"interval", "interval_period"}
    assert all("set both at task level and in schedule" in str(e) for e in errors)


def test_manual_schedule_and_start_time_in_utc():
    task = parse_task(seed_task(interval=None, interval_period=None), [connection()])
    assert task.schedule.is_manual
    naive = parse_task(seed_task(start_time=datetime(2025, 1, 1)), [connection()])
    assert naive.schedule.start_time == datetime(2025, 1, 1, tzinfo=UTC)
    assert naive.schedule.start_time.tzinfo is UTC
    error = one_error(parse_task, seed_task(start_time="next tuesday"), [connection()])
    assert error.field == "start_time" and "date-time" in error.expected


def test_schedule_timezone_is_checked():
    error = one_error(parse_task, seed_task(interval=None, interval_period=None, schedule={
        "crontab": "0 2 * * *", "timezone": "Europe/Pariss"}), [connection()])
    assert error.field == "schedule.timezone" and "Europe/Paris" in str(error)


def test_notification_emails_and_schedule():
    data = seed_connection(notification={"recipientEmails": ["ops@example.com", "not-an-email"],
                                         "schedule": {"interval": 1}})
    errors = errors_of(parse_data_connection, data)
    assert sorted(e.field for e in errors) == ["notification.recipientEmails[1]",
                                               "notification.schedule.interval_period"]


# --------------------------------------------------------------------------------------------
# Unknown keys, wrong types, all errors at once
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where, key, hint", [
    ("connection", "delimeter", "delimiter"),
    ("connection", "timestampKey2", "timestampKey"),
    ("connection", "placeholder_variable", "placeholder_variables"),
    ("task", "mapping", "mappings"),
    ("task", "intervall", "interval"),
    ("task", "task_variable", "task_variables"),
])
def test_unknown_keys_with_a_hint(where, key, hint):
    if where == "connection":
        error = one_error(parse_data_connection, seed_connection(**{key: 1}))
    else:
        data = seed_task(**{key: 1})
        error = one_error(parse_task, data, [connection()], field=key)
    assert error.field == key and error.found == key
    assert f"did you mean '{hint}'?" in str(error) and error.expected == f"'{hint}'"


def test_unknown_key_inside_nested_blocks():
    data = seed_connection(placeholder_variables=[
        {"name": "station_id", "variable_type": "per_task"},
        {"name": "start", "variable_type": "window_start", "timestamp_fromat": "%Y"}])
    error = one_error(parse_data_connection, data)
    assert error.field == "placeholder_variables[1].timestamp_fromat"
    assert "did you mean 'timestamp_format'?" in str(error)
    data = seed_task(mappings=[{"source_identifier": "T", "target_datastream": DS_TEMP,
                                "target": 1}])
    error = one_error(parse_task, data, [connection()])
    assert error.field == "mappings[0].target"


def test_unknown_key_without_a_close_match_lists_the_keys():
    error = one_error(parse_data_connection, seed_connection(zzz=1))
    assert error.expected.startswith("one of name, id, description, source_url")


def test_wrong_types():
    errors = errors_of(parse_data_connection, seed_connection(
        name=["a"], header_row="first", placeholder_variables={"name": "x"}))
    by_field = {e.field: e for e in errors}
    assert by_field["header_row"].expected == "a whole number"
    assert by_field["placeholder_variables"].expected == "a list"
    assert by_field["name"].expected == "text"
    errors = errors_of(parse_task, seed_task(mappings="Temperature", enabled="maybe"),
                       [connection()])
    by_field = {e.field: e for e in errors}
    assert by_field["mappings"].expected == "a list" and by_field["mappings"].found == \
        "Temperature"
    assert by_field["enabled"].expected == "true or false"


def test_keys_written_as_numbers_are_refused():
    data = seed_connection(placeholder_variables=[
        {"name": "station_id", "variable_type": "per_task", 1: "x"},
        {"name": "start", "variable_type": "window_start"}])
    error = one_error(parse_data_connection, data)
    assert (error.field, error.expected, error.found) == ("placeholder_variables[0]",
                                                          "a text key", 1)
    error = one_error(parse_task, seed_task(task_variables={"station_id": "s", 7: "x"}),
                      [connection()])
    assert (error.field, error.found) == ("task_variables", 7) and "keys are text" in str(error)


def test_all_problems_of_a_connection_are_reported_together():
    data = seed_connection(delimiter="colon", timezone="Nowhere/Land", timestamp_format="%Q",
                           source_url="https://x.org/{station_id}?s={start}&e={end}", extra=1)
    with pytest.raises(DefinitionErrors) as info:
        parse_data_connection(data)
    fields = sorted(e.field for e in info.value.errors)
    assert fields == ["delimiter", "extra", "placeholder_variables", "timestamp_format",
                      "timezone"]
    text = str(info.value)
    assert text.startswith("5 problems in definitions:")
    for error in info.value.errors:
        assert str(error) in text
    assert isinstance(info.value, DefinitionError) and len(info.value) == 5


def test_task_problems_are_reported_even_when_its_connection_is_unknown():
    errors = errors_of(parse_task, seed_task(data_connection="Statoin API", interval=0), [
        connection()])
    by_field = {e.field: e for e in errors}
    assert set(by_field) == {"data_connection", "interval"}
    assert "did you mean 'Station API'?" in str(by_field["data_connection"])


def test_inline_data_connection_model_or_dict():
    c = connection()
    assert parse_task(seed_task(data_connection=c)).data_connection is c
    bad = export_task(dataConnection=export_connection(timezone="Nowhere/Land"))
    error = one_error(parse_task, bad, location="x.json: task 'Station 42'")
    assert error.location == "x.json: task 'Station 42', data connection 'Station API'"
    assert error.field == "timezone"


def test_task_without_data_connection():
    data = seed_task()
    del data["data_connection"]
    error = one_error(parse_task, data, [connection()])
    assert error.field == "data_connection" and error.found is NOTHING


def test_data_connection_and_id_must_agree():
    data = seed_task(data_connection_id="other")
    error = one_error(parse_task, data, [connection()], field="data_connection_id")
    assert "different values" in str(error)


# --------------------------------------------------------------------------------------------
# Secrets and source auth
# --------------------------------------------------------------------------------------------

SECRET = "s3cr3t-VALUE-123"


@pytest.mark.parametrize("data", [
    seed_connection(auth_header_value=SECRET, auth={"header_name": "X-Api-Key",
                                                     "conn_id": "src"}),
    export_connection(authHeaderName="X-Api-Key", authHeaderValue=SECRET),
    seed_connection(auth={"header_name": "X-Api-Key", "value": SECRET}),
    seed_connection(payload={"type": "CSV", "authHeaderValue": SECRET}, payload_type=None),
])
def test_plain_secret_values_are_refused_without_being_shown(data):
    with pytest.raises(DefinitionErrors) as info:
        parse_data_connection(data)
    secret_errors = [e for e in info.value.errors if e.found is HIDDEN]
    assert len(secret_errors) == 1 and len(info.value.errors) == 1
    error = secret_errors[0]
    assert "Airflow connection" in str(error) and "Airflow Variable" in str(error)
    assert "conn_id" in error.expected and "variable" in error.expected
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value.errors)
    assert all(SECRET not in repr(vars(e)) for e in info.value.errors)


def test_secret_looking_url_parts_are_masked_in_errors():
    url = "https://user:pa55word@x.org/data.csv?api_key=XYZ123&station={station_id}&sig=abc"
    errors = errors_of(parse_data_connection, seed_connection(source_url=url))
    text = str(DefinitionErrors(errors))
    assert "pa55word" not in text and "XYZ123" not in text and "sig=abc" not in text
    assert "https://user:***@x.org/data.csv?api_key=***&station={station_id}&sig=***" in text


def test_found_values_are_json_serialisable():
    errors = errors_of(parse_data_connection, seed_connection(
        auth={"header_name": "X-Api-Key"}, placeholder_variables={"a": 1}))
    assert json.loads(json.dumps([e.found for e in errors]))


def test_empty_secret_of_an_export_is_ignored():
    assert parse_data_connection(export_connection(authHeaderValue="")).auth is None


def test_auth_from_an_airflow_connection_or_variable():
    c = connection(auth={"header_name": "X-Api-Key", "conn_id": "station_api"})
    assert c.auth == SourceAuth(header_name="X-Api-Key", conn_id="station_api")
    c = parse_data_connection(export_connection(authHeaderName="X-Api-Key",
                                                auth={"variable": "station_api_key"}))
    assert c.auth == SourceAuth(header_name="X-Api-Key", variable="station_api_key")


def test_auth_needs_exactly_one_reference():
    error = one_error(parse_data_connection, seed_connection(auth={"header_name": "X-Api-Key"}))
    assert error.field == "auth.conn_id" and error.found == "neither"
    assert "found neither)" in str(error)
    error = one_error(parse_data_connection, seed_connection(auth={
        "header_name": "X-Api-Key", "conn_id": "a", "variable": "b"}))
    assert "exactly one" in str(error) and "conn_id and variable" in str(error)
    error = one_error(parse_data_connection, seed_connection(auth={
        "header_name": "X Api Key", "conn_id": "a"}))
    assert error.field == "auth.header_name"


def test_header_name_without_value_reference():
    error = one_error(parse_data_connection, export_connection(authHeaderName="X-Api-Key"))
    assert error.field == "authHeaderName"
    assert "conn_id" in error.expected and "X-Api-Key" in error.expected


def test_read_only_export_fields_are_ignored_but_ingestion_windows_are_refused():
    window = {"start": {"anchor": "run_time", "lookback": 1, "lookbackUnits": "days"}}
    data = export_connection()
    data["payload"]["dataIngestionWindow"] = window
    error = one_error(parse_data_connection, data)
    assert error.field == "payload.dataIngestionWindow"
    assert "window_start/window_end" in str(error)


# --------------------------------------------------------------------------------------------
# Airflow settings
# --------------------------------------------------------------------------------------------


def test_airflow_settings_merge_over_defaults():
    task = parse_task(seed_task(airflow={"retries": 5, "pool": "stations"}), [connection()],
                      defaults={"retries": 3, "hydroserver_conn_id": "hs"})
    assert task.airflow == AirflowSettings(retries=5, pool="stations", hydroserver_conn_id="hs")
    assert task.airflow.given() == {"retries": 5, "pool": "stations", "hydroserver_conn_id": "hs"}


def test_airflow_settings_are_checked():
    loaded = parse_definitions({"defaults": {"retries": -1, "retires": 3, "pool": "p",
                                             "tags": "a"}}, "f.yaml")
    assert loaded.defaults == AirflowSettings(pool="p")  # the valid settings still apply
    by_field = {e.field: e for e in loaded.errors}
    assert by_field["defaults.retries"].expected == "a whole number >= 0"
    assert "did you mean 'retries'?" in str(by_field["defaults.retires"])
    assert by_field["defaults.tags"].expected == \
        "a list of tags of at most 100 characters (Airflow's limit)"
    (error,) = parse_definitions({"defaults": {"dag_id": "x"}}, "f.yaml").errors
    assert "set it in each task" in str(error)
    good = {"retry_delay": "5m", "execution_timeout": 3600, "dagrun_timeout": "1h 30m",
            "retry_exponential_backoff": 2, "chunk_rows": 5000, "pool_per_connection": True}
    assert AirflowSettings.model_validate(good).given() == {
        **good, "retry_delay": timedelta(minutes=5), "execution_timeout": timedelta(hours=1),
        "dagrun_timeout": timedelta(hours=1, minutes=30)}
    errors = errors_of(parse_task, seed_task(airflow={"retry_delay": "soon", "chunk_rows": 0}),
                       [connection()])
    assert {e.field: e.expected for e in errors} == {
        "airflow.retry_delay": "seconds (a number) or a text such as 30s, 5m, 2h, 1d",
        "airflow.chunk_rows": "a whole number >= 1"}


def test_airflow_settings_are_one_typed_model():
    settings = AirflowSettings.model_validate({"retry_delay": 90, "tags": ["river"],
                                               "retry_exponential_backoff": True})
    assert settings.retry_delay == timedelta(seconds=90) and settings.tags == ["river"]
    assert settings.given() == {"retry_delay": timedelta(seconds=90), "tags": ["river"],
                                "retry_exponential_backoff": True}
    for bad in ({"retries": True}, {"catchup": "yes"}, {"dag_id": "has spaces"},
                {"tags": ["x" * 101]}, {"pool": " "}, {"retries": 2.5}):
        with pytest.raises(ValidationError):
            AirflowSettings.model_validate(bad)
    errors = errors_of(parse_task, seed_task(airflow={"dag_id": "has spaces", "catchup": True,
                                                     "Retries": 3}), [connection()])
    by_field = {e.field: e for e in errors}
    assert set(by_field) == {"airflow.dag_id", "airflow.Retries"}
    assert "letters, digits" in by_field["airflow.dag_id"].expected
    assert "did you mean 'retries'?" in str(by_field["airflow.Retries"])


def test_catchup_needs_a_start_time_where_the_backfill_begins():
    error = one_error(parse_task, seed_task(start_time=None, airflow={"catchup": True}),
                      [connection()])
    assert error.field == "airflow.catchup" and "start_time" in str(error)
    assert parse_task(seed_task(airflow={"catchup": True}), [connection()]).airflow.catchup


# --------------------------------------------------------------------------------------------
# Helpers and direct construction
# --------------------------------------------------------------------------------------------


def test_helpers():
    c = connection(source_url="https://x.org/{station_id}?s={start}&again={station_id}")
    assert c.placeholder_names() == ["station_id", "start"]
    assert placeholder_names("https://x.org/{a}/{b}/{a}") == ["a", "b"]
    assert c.uses_window and c.per_task_names() == ["station_id"]
    incremental = connection(placeholder_variables=[
        {"name": "station_id", "variable_type": "per_task"},
        {"name": "start", "variable_type": "latest_observation_timestamp"}])
    assert not incremental.uses_window
    task = parse_task(seed_task(), [c])
    assert task.target_datastream_ids == (DS_TEMP, DS_HUM)
    assert task.schedule.interval_delta == timedelta(hours=1)
    assert normalise_offset("+05:30") == "+0530" and normalise_offset("x") is None


def test_models_validate_when_built_directly():
    with pytest.raises(ValidationError):
        CSVPayload(delimiter="colon")
    with pytest.raises(ValidationError):
        Schedule(interval=1)
    with pytest.raises(ValidationError):
        DataConnection(name="x", source_url="https://x.org/{a}", payload=CSVPayload())
    c = DataConnection(name="x", source_url="https://x.org/", payload=JSONPayload(jmespath="@"))
    with pytest.raises(ValidationError):
        Task(name="t", data_connection=c, mappings=())
    task = Task(name="t", data_connection=c,
                mappings=(Mapping(source_identifier="a", target_datastream_id="b"),))
    assert task.schedule.is_manual and task.airflow == AirflowSettings()
    assert task.task_variables == {}


def test_model_validate_accepts_either_vocabulary():
    assert DataConnection.model_validate(seed_connection()) == connection()
    assert DataConnection.model_validate(nested_connection()) == connection()
    exported = DataConnection.model_validate(export_connection())
    assert exported.model_copy(update={"id": None}) == connection()
    assert Mapping.model_validate({"sourceIdentifier": "a", "targetDatastream": {"id": "b"}}) \
        == Mapping(source_identifier="a", target_datastream_id="b")
    assert Schedule.model_validate({"intervalPeriod": "hours", "interval": 2,
                                    "nextRunAt": None}).interval_delta == timedelta(hours=2)
    task = Task.model_validate(export_task())
    assert task == parse_task(export_task())
    with pytest.raises(ValidationError, match="delimiter"):
        DataConnection.model_validate(seed_connection(delimiter="colon"))
    with pytest.raises(ValidationError, match="needs the definition loader"):
        Task.model_validate(seed_task())


def test_model_dump_round_trips():
    task = parse_task(export_task(), defaults={"retries": 2})
    assert Task.model_validate(task.model_dump()) == task
    assert Task.model_validate_json(task.model_dump_json()) == task
    c = task.data_connection
    assert DataConnection.model_validate(c.model_dump(mode="json")) == c


def test_models_are_frozen():
    with pytest.raises(ValidationError):
        connection().name = "other"  # type: ignore[misc]


def test_errors_name_the_location_given():
    error = one_error(parse_data_connection, seed_connection(delimiter="x"),
                      location="stations.yaml: data connection 'Station API'")
    assert str(error).startswith("stations.yaml: data connection 'Station API': field "
                                 "'delimiter': unknown delimiter")


def test_inputs_are_not_modified():
    data = export_task()
    before = copy.deepcopy(data)
    parse_task(data)
    assert data == before


def test_the_core_imports_no_airflow_pandas_or_requests():
    code = ("import sys; import hydroserver_provider.definitions, "
            "hydroserver_provider.definitions.files; "
            "print(sorted(m for m in ('airflow', 'pandas', 'requests', 'jmespath', 'croniter') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
