"""``hydroserver-airflow preview``: a real dry run against the local HydroServer and sources."""

from __future__ import annotations

import json
import re
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import hydroserver_provider.compat  # noqa: F401  (Airflow sets up its logging here, not under capsys)
from hydroserver_provider.cli import main
from hydroserver_provider.testing import stations
from hydroserver_provider.testing.sources import LocalSourceServer

UTC = UTC
T0 = datetime(2025, 6, 1, tzinfo=UTC)
TOKEN = "per-task-token-5531"  # a secret-looking URL value: redacted in what is printed
HEADER_SECRET = "header-secret-value-7719"


@pytest.fixture
def source():
    def logger(query):
        start = stations.parse_query_time(query["start"], stations.DENVER)
        end = stations.parse_query_time(query["end"], stations.DENVER)
        return stations.logger_csv(start, end)

    def api(query):  # the JSON API, with one reading the station marks as missing ("---")
        document = json.loads(stations.api_json(stations.parse_query_time(query["from"]),
                                                stations.parse_query_time(query["to"])))
        if document["data"]["records"]:
            document["data"]["records"][0]["values"]["discharge"] = "---"
        return json.dumps(document)

    with LocalSourceServer() as server:
        server.add("/stations/42/logger.csv", logger)
        server.add("/api/sites/09380000/observations.json", api, "application/json")
        yield server


@pytest.fixture
def setup(local_hydroserver, source, tmp_path, monkeypatch):
    """Four datastreams, a definitions folder with three tasks, an Airflow connection in the
    environment (as in a container) and the header secret as an Airflow Variable."""
    hs = local_hydroserver
    ids = {name: hs.create_datastream(name=name)
           for name in ("Water Level", "Water Temp", "Discharge", "Gage Height")}
    folder = tmp_path / "definitions"
    folder.mkdir()
    (folder / "stations.yaml").write_text(textwrap.dedent(f"""
        defaults: {{hydroserver_conn_id: hs_preview}}
        data_connections:
          - name: Logger CSV
            source_url: {source.url}/stations/{{station_id}}/logger.csv?start={{start}}&end={{end}}
            payload_type: CSV
            timestamp_key: Date Time
            timestamp_format: "%Y-%m-%d %H:%M:%S"
            timezone_type: iana
            timezone: America/Denver
            header_row: 1
            data_start_row: 3
            placeholder_variables:
              - {{name: station_id, variable_type: per_task}}
              - {{name: start, variable_type: window_start, timestamp_format: "%Y-%m-%dT%H:%M:%S"}}
              - {{name: end, variable_type: window_end, timestamp_format: "%Y-%m-%dT%H:%M:%S"}}
          - name: River API
            source_url: {source.url}/api/sites/{{site_id}}/observations.json?from={{from}}&to={{to}}&token={{token}}
            payload_type: JSON
            jmespath: "data.records[*]"
            timestamp_key: time
            auth: {{header_name: X-Station-Key, variable: river_api_key}}
            placeholder_variables:
              - {{name: site_id, variable_type: per_task}}
              - {{name: token, variable_type: per_task}}
              - {{name: from, variable_type: latest_observation_timestamp}}
              - {{name: to, variable_type: run_time}}
        tasks:
          - name: Logger 42
            data_connection: Logger CSV
            task_variables: {{station_id: "42"}}
            mappings:
              - {{source_identifier: Water Level, target_datastream_id: {ids["Water Level"]}}}
              - {{source_identifier: Water Temp, target_datastream_id: {ids["Water Temp"]}}}
            interval: 1
            interval_period: hours
          - name: River site 09380000
            data_connection: River API
            task_variables: {{site_id: "09380000", token: {TOKEN}}}
            start_time: 2025-06-01T00:00:00Z
            mappings:
              - {{source_identifier: values.discharge, target_datastream_id: {ids["Discharge"]}}}
              - {{source_identifier: values.gage_height, target_datastream_id: {ids["Gage Height"]}}}
            crontab: "0 * * * *"
          - name: Manual logger
            data_connection: Logger CSV
            task_variables: {{station_id: "42"}}
            mappings:
              - {{source_identifier: Water Level, target_datastream_id: 0f000000-0000-4000-8000-000000000001}}
        """), encoding="utf-8")
    monkeypatch.setenv("AIRFLOW_CONN_HS_PREVIEW", json.dumps(
        {"conn_type": "hydroserver", "host": hs.url, "extra": {"api_key": hs.api_key}}))
    monkeypatch.setenv("AIRFLOW_VAR_RIVER_API_KEY", HEADER_SECRET)
    monkeypatch.delenv("HYDROSERVER_API_KEY", raising=False)
    return hs, ids, folder


def number(text: str) -> int:
    return int(text.replace(",", ""))


def counts(row: str, datastream_id: str) -> tuple[int, int, int]:
    """(would load, skip, drop) of a row of the per-datastream table (columns: 2+ spaces)."""
    cells = re.split(r"\s{2,}", row.strip())
    assert cells[1] == datastream_id, cells
    return number(cells[3]), number(cells[4]), number(cells[5])


def line_starting(out: str, prefix: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(prefix))


def test_windowed_csv_preview_shows_url_rows_counts_and_writes_nothing(setup, source, tmp_path,
                                                                      capsys):
    hs, ids, folder = setup
    plot = tmp_path / "out" / "logger.png"
    code = main(["preview", "Logger 42", "--definitions", str(folder),
                 "--start", "2025-06-01T00:00:00Z", "--end", "2025-06-01T06:00:00Z",
                 "--rows", "3", "--plot", str(plot)])
    out = capsys.readouterr().out
    assert code == 0, out
    # the URL asks for the window in the logger's local time (Denver, UTC-6 in June)
    assert line_starting(out, "URL:").split()[-1] == (
        f"{source.url}/stations/42/logger.csv?start=2025-05-31T18:00:00&end=2025-06-01T00:00:00")
    assert "(from --start/--end)" in line_starting(out, "Window:")
    assert line_starting(out, "Rows read:") == "Rows read:   24"
    # the first parsed rows, in UTC, with the values the station wrote
    assert "First 3 of 24 parsed timestamps (UTC):" in out
    for i in range(3):
        moment = T0 + timedelta(minutes=15 * i)
        row = line_starting(out, moment.strftime("%Y-%m-%dT%H:%M:%SZ")).split()
        assert [float(v) for v in row[1:]] == [stations.water_level(moment),
                                               stations.water_temperature(moment)]
    assert T0.replace(hour=1).strftime("%Y-%m-%dT%H:%M:%SZ") not in out  # only 3 rows shown
    for name in ("Water Level", "Water Temp"):
        assert counts(line_starting(out, name + "  "), ids[name]) == (24, 0, 0)
    assert out.strip().splitlines()[-2] == "Would load 48 observations into 2 datastreams."
    assert hs.observations(ids["Water Level"]) == [] and hs.observations(ids["Water Temp"]) == []
    data = plot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert out.strip().splitlines()[-1] == f"Plot written to {plot}"


def test_incremental_json_preview_counts_skips_and_drops_and_hides_secrets(setup, source,
                                                                          capsys, monkeypatch):
    hs, ids, folder = setup
    stored_until = T0 + timedelta(hours=3)
    hs.add_observations(ids["Discharge"], [(T0 + timedelta(hours=h), 1.0) for h in range(4)])
    hs.add_observations(ids["Gage Height"], [(T0 + timedelta(hours=h), 1.0) for h in range(2)])
    # by DAG id, and through --url with the key from the environment instead of the connection
    monkeypatch.setenv("HYDROSERVER_API_KEY", hs.api_key)
    code = main(["preview", "hydroserver_river_site_09380000", "--definitions", str(folder),
                 "--url", hs.url])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, captured
    # latest_observation_timestamp = the oldest end of the two datastreams (Gage Height's)
    requested = source.requests_to("/api/sites/09380000/observations.json")[-1]
    assert requested.query["from"] == "2025-06-01T01:00:00Z"
    assert requested.query["token"] == TOKEN  # the source got the real values...
    assert requested.headers["X-Station-Key"] == HEADER_SECRET
    url = line_starting(out, "URL:")
    assert "token=***" in url and "from=2025-06-01T01:00:00Z" in url
    for secret in (TOKEN, HEADER_SECRET, hs.api_key):  # ...the terminal never shows them
        assert secret not in captured.out + captured.err
    assert "the last complete period of the crontab" in line_starting(out, "Window:")
    records = number(line_starting(out, "Rows read:").split()[-1])
    discharge = line_starting(out, "Discharge  ")
    gage = line_starting(out, "Gage Height  ")
    # Discharge: its first record is '---' (dropped), the two after it are already stored
    assert counts(discharge, ids["Discharge"]) == (records - 3, 2, 1)
    assert "dropped: not_a_number 1" in discharge
    assert counts(gage, ids["Gage Height"]) == (records - 1, 1, 0)
    assert hs.observations(ids["Discharge"])[-1][0] == stored_until  # nothing new written


def test_the_window_comes_from_the_schedule_when_not_given(setup, source, capsys):
    _, _, folder = setup
    before = datetime.now(UTC)
    assert main(["preview", "logger 42", "--definitions", str(folder), "--rows", "0"]) == 0
    out = capsys.readouterr().out
    assert "the last interval of the schedule, ending now" in line_starting(out, "Window:")
    query = source.requests_to("/stations/42/logger.csv")[-1].query
    start, end = (datetime.fromisoformat(query[k]).replace(tzinfo=stations.DENVER)
                  for k in ("start", "end"))
    assert end - start == timedelta(hours=1)
    assert before - timedelta(seconds=1) <= end <= datetime.now(UTC) + timedelta(seconds=1)
    assert "parsed timestamps" not in out  # --rows 0


def test_a_manual_windowed_task_asks_for_a_window_before_any_request(setup, source, capsys):
    _, _, folder = setup
    assert main(["preview", "Manual logger", "--definitions", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "has no schedule and its source URL needs a window: give --start and --end" in err
    assert source.requests == []


@pytest.mark.parametrize(("argv", "message"), [
    (["Loger 42"], "no task named 'Loger 42'"),
    (["Logger 42", "--start", "2025-06-01"], "give both --start and --end"),
    (["Logger 42", "--start", "yesterday", "--end", "2025-06-01"], "--start expects an ISO 8601"),
    (["Logger 42", "--start", "2025-06-02", "--end", "2025-06-01"], "must be before --end"),
    (["Logger 42", "--url", "http://127.0.0.1:9"], "--url needs an API key"),
])
def test_bad_options_fail_clearly_without_fetching(setup, source, capsys, argv, message):
    _, _, folder = setup
    assert main(["preview", *argv, "--definitions", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert source.requests == []


def test_unknown_task_suggests_the_closest_name(setup, capsys):
    _, _, folder = setup
    main(["preview", "Loger 42", "--definitions", str(folder)])
    assert "did you mean 'Logger 42'" in capsys.readouterr().err


def test_plot_without_matplotlib_says_which_extra_to_install(setup, source, capsys,
                                                            monkeypatch, tmp_path):
    _, _, folder = setup
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    code = main(["preview", "Logger 42", "--definitions", str(folder), "--start", "2025-06-01",
                 "--end", "2025-06-01T01:00:00", "--plot", str(tmp_path / "p.png")])
    assert code == 1
    err = capsys.readouterr().err
    assert "--plot needs matplotlib" in err and "airflow-provider-hydroserver[plot]" in err
    assert source.requests == [] and not (tmp_path / "p.png").exists()


def test_a_missing_datastream_fails_the_preview_but_still_shows_the_rest(setup, capsys,
                                                                        tmp_path):
    _, ids, folder = setup
    text = (folder / "stations.yaml").read_text()
    (folder / "stations.yaml").write_text(text.replace(
        ids["Water Temp"], "0f000000-0000-4000-8000-0000000000ff"))
    code = main(["preview", "Logger 42", "--definitions", str(folder),
                 "--start", "2025-06-01T00:00:00Z", "--end", "2025-06-01T01:00:00Z"])
    out = capsys.readouterr().out
    assert code == 1
    assert "ERROR: datastream 0f000000-0000-4000-8000-0000000000ff does not exist" in out
    assert counts(line_starting(out, "Water Level  "), ids["Water Level"]) == (4, 0, 0)
    assert "1 of 2 datastreams failed" in out


HYDROCRON_FIXTURES = (Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"
                      / "hydrocron").resolve()


@pytest.mark.skipif(not HYDROCRON_FIXTURES.is_dir(), reason="Hydrocron fixtures not found")
def test_a_hydrocron_task_previews_through_its_hydrocron_connection(local_hydroserver, capsys,
                                                                   monkeypatch):
    from hydroserver_provider.testing.hydrocron import LocalHydrocron

    example = Path(__file__).resolve().parents[2] / "dags" / "definitions" / "hydrocron.yaml"
    hs = local_hydroserver
    for i, (name, unit) in enumerate((("WSE", "m"), ("Slope", "m/m"), ("Width", "m")), 1):
        hs.create_datastream(name=name, unit=unit,
                             datastream_id=f"0b000000-0000-4000-8000-00000000000{i}")
    monkeypatch.setenv("HYDROSERVER_API_KEY", hs.api_key)
    with LocalHydrocron(HYDROCRON_FIXTURES) as hydrocron:
        monkeypatch.setenv("AIRFLOW_CONN_HYDROCRON_DEFAULT", json.dumps(
            {"conn_type": "hydrocron", "host": hydrocron.url}))
        code = main(["preview", "SWOT reach 18180900091", "--definitions", str(example),
                     "--url", hs.url])
        assert len(hydrocron.requests) == 1  # the replay answered, not the public endpoint
    out = capsys.readouterr().out
    assert code == 0, out
    assert "SWOT_L2_HR_RiverSP_D" in out and "Would load 9 observations into 3 datastreams" in out
    assert "First 3 of 3 parsed timestamps (UTC):" in out
    assert hs.observations("0b000000-0000-4000-8000-000000000001") == []


@pytest.mark.skipif(not HYDROCRON_FIXTURES.is_dir(), reason="Hydrocron fixtures not found")
def test_a_hydrocron_fan_out_previews_one_feature(local_hydroserver, tmp_path, capsys,
                                                  monkeypatch):
    from hydroserver_provider.testing.hydrocron import LocalHydrocron

    hs = local_hydroserver
    other, reach = (hs.create_datastream(name=n, unit="m") for n in ("Other WSE", "Reach WSE"))
    (tmp_path / "fan.yaml").write_text(textwrap.dedent(f"""
        data_connections:
          - name: SWOT reaches
            payload_type: HYDROCRON
            feature: Reach
            collection_name: SWOT_L2_HR_RiverSP_D
            mode: incremental
        tasks:
          - name: Basin reaches
            data_connection: SWOT reaches
            start_time: 2024-01-01T00:00:00Z
            mappings:
              - {{feature_id: "71224100227", source_identifier: wse, target_datastream_id: {other}}}
              - {{feature_id: "18180900091", source_identifier: wse, target_datastream_id: {reach}}}
        """), encoding="utf-8")
    monkeypatch.setenv("HYDROSERVER_API_KEY", hs.api_key)
    with LocalHydrocron(HYDROCRON_FIXTURES) as hydrocron:
        monkeypatch.setenv("AIRFLOW_CONN_HYDROCRON_DEFAULT", json.dumps(
            {"conn_type": "hydrocron", "host": hydrocron.url}))
        code = main(["preview", "Basin reaches", "--definitions", str(tmp_path), "--url", hs.url,
                     "--feature", "18180900091"])
        (request,) = hydrocron.requests
    out = capsys.readouterr().out
    assert code == 0, out
    assert request.params["feature_id"] == "18180900091"
    assert line_starting(out, "Feature:").startswith("Feature:     18180900091 (chosen of 2 ")
    assert counts(line_starting(out, "Reach WSE  "), reach) == (3, 0, 0)
    assert other not in out  # the other feature's datastream is another instance's job
    assert main(["preview", "Basin reaches", "--definitions", str(tmp_path), "--url", hs.url,
                 "--feature", "123"]) == 1
    assert "--feature '123' is not one of the task's features" in capsys.readouterr().err


def _logger_definitions(folder: Path, source_url: str, datastream: str) -> Path:
    (folder / "logger.yaml").write_text(textwrap.dedent(f"""
        defaults: {{hydroserver_conn_id: hs_preview}}
        data_connections:
          - name: Logger CSV
            source_url: {source_url}/stations/42/logger.csv?start={{start}}&end={{end}}
            payload_type: CSV
            timestamp_key: Date Time
            timestamp_format: "%Y-%m-%d %H:%M:%S"
            timezone_type: iana
            timezone: America/Denver
            data_start_row: 3
            placeholder_variables:
              - {{name: start, variable_type: window_start, timestamp_format: "%Y-%m-%dT%H:%M:%S"}}
              - {{name: end, variable_type: window_end, timestamp_format: "%Y-%m-%dT%H:%M:%S"}}
        tasks:
          - name: Logger 42
            data_connection: Logger CSV
            mappings:
              - {{source_identifier: Water Level, target_datastream_id: {datastream}}}
        """), encoding="utf-8")
    return folder


WINDOW = ["--start", "2025-06-01T00:00:00Z", "--end", "2025-06-01T01:00:00Z"]


def test_a_wrong_api_key_is_a_warning_even_when_public_reads_succeed(local_hydroserver, source,
                                                                    tmp_path, capsys,
                                                                    monkeypatch):
    hs = local_hydroserver
    public = hs.create_datastream(name="Water Level", is_private=False)
    folder = _logger_definitions(tmp_path, source.url, public)
    monkeypatch.setenv("AIRFLOW_CONN_HS_PREVIEW", json.dumps(
        {"conn_type": "hydroserver", "host": hs.url, "password": "wrong-key-0123456789"}))
    code = main(["preview", "Logger 42", "--definitions", str(folder), *WINDOW])
    out = capsys.readouterr().out
    assert code == 1  # a scheduled run would fail at its first write
    expected = (f"HydroServer at {hs.url} did not accept the API key (answered as to an anonymous "
                "visitor: no workspace). A wrong key still reads public datastreams (HydroServer "
                "answers those anonymously), but every write would fail: check the key. This "
                "preview shows what HydroServer answers anonymously (public datastreams only); a "
                "scheduled run would fail")
    assert line_starting(out, "Warning:") == f"Warning:     {expected}"
    assert out.strip().splitlines()[-1] == f"Warning: {expected}"
    assert "Would load 4 observations into 1 datastream" in out  # the reads did succeed
    assert "wrong-key-0123456789" not in out


def test_a_wrong_api_key_is_not_reported_as_missing_private_datastreams(local_hydroserver,
                                                                        source, tmp_path, capsys,
                                                                        monkeypatch):
    """HydroServer answers a wrong key anonymously: a private datastream then "does not exist".
    The preview blames the key instead."""
    hs = local_hydroserver
    private = hs.create_datastream(name="Water Level", is_private=True)
    folder = _logger_definitions(tmp_path, source.url, private)
    monkeypatch.setenv("AIRFLOW_CONN_HS_PREVIEW", json.dumps(
        {"conn_type": "hydroserver", "host": hs.url, "password": "wrong-key-0123456789"}))
    assert main(["preview", "Logger 42", "--definitions", str(folder), *WINDOW]) == 1
    captured = capsys.readouterr()
    assert "did not accept the API key" in line_starting(captured.out, "Warning:")
    assert captured.err.startswith(f"error: HydroServer at {hs.url} did not accept the API key")
    assert "does not exist" not in captured.out + captured.err


def test_an_unreachable_hydroserver_stops_the_preview_in_one_line(setup, source, capsys,
                                                                 monkeypatch):
    import socket
    import time

    _, _, folder = setup
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv("AIRFLOW_CONN_HS_PREVIEW", json.dumps(
        {"conn_type": "hydroserver", "host": closed, "password": "some-key-0123456789"}))
    started = time.monotonic()
    code = main(["preview", "Logger 42", "--definitions", str(folder), *WINDOW])
    assert time.monotonic() - started < 5
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    assert captured.err == (f"error: HydroServer at {closed} could not be reached (connection "
                            "refused) for GET /api/data/workspaces after 2 tries\n")
    assert source.requests == []


@pytest.mark.slow
def test_a_connection_and_a_variable_made_in_airflow_are_read_from_its_database(setup, source,
                                                                                tmp_path):
    """A user creates the connection in the UI (or ``airflow connections add``): it lives in
    Airflow's metadata database, which the Task SDK does not read in a plain process. preview
    reads it there, with the same AIRFLOW_HOME -- the source auth Variable too."""
    import subprocess

    from hydroserver_provider.testing.airflow import LocalAirflow

    hs, ids, folder = setup
    (tmp_path / "dags").mkdir()
    airflow = LocalAirflow(tmp_path / "home", tmp_path / "dags")
    airflow.migrate()
    airflow.airflow("connections", "add", "hs_preview", "--conn-type", "hydroserver",
                    "--conn-host", hs.url, "--conn-password", hs.api_key)
    airflow.airflow("variables", "set", "river_api_key", HEADER_SECRET)
    env = {k: v for k, v in airflow.env().items()
           if k not in ("AIRFLOW_CONN_HS_PREVIEW", "AIRFLOW_VAR_RIVER_API_KEY")}
    done = subprocess.run(
        [sys.executable, "-m", "hydroserver_provider.cli", "preview", "River site 09380000",
         "--definitions", str(folder)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"HydroServer: {hs.url} (Airflow connection 'hs_preview')" in done.stdout
    request = source.requests_to("/api/sites/09380000/observations.json")[-1]
    assert request.headers["X-Station-Key"] == HEADER_SECRET
    assert hs.api_key not in done.stdout + done.stderr
    assert HEADER_SECRET not in done.stdout + done.stderr
