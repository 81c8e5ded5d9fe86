"""``make demo`` end to end, once: local HydroServer + station sources, the example DAGs on Airflow.

Slow-ish (a real Airflow in a child process: migration, DAG parse, six ``dag.test()`` runs; about
15 s), so everything the demo promises is asserted on this one run.
"""

from __future__ import annotations

import socket
import time

import pytest

from hydroserver_provider import demo

SOURCE_PORT = 8765  # where dags/definitions/stations.yaml fetches its sources

# What HydroServer must hold afterwards, worked out by hand from the definitions and the demo's
# intervals: the logger is windowed, 2 hourly windows of 15-minute readings -> 8 each; the river
# API is incremental from the task's start_time 2025-01-01T00:00Z, hourly, up to the last run's
# end 2025-06-02T11:15Z -> 152 days * 24 + 12 hours (00:00 ... 11:00) = 3,660 each. The SWOT
# reach (Hydrocron replay of the recorded version-D answer) has 3 passes after its start_time.
EXPECTED_COUNTS = {
    "0a000000-0000-4000-8000-000000000001": 8,
    "0a000000-0000-4000-8000-000000000002": 8,
    "0a000000-0000-4000-8000-000000000003": 3660,
    "0a000000-0000-4000-8000-000000000004": 3660,
    "0b000000-0000-4000-8000-000000000001": 3,
    "0b000000-0000-4000-8000-000000000002": 3,
    "0b000000-0000-4000-8000-000000000003": 3,
}


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_for_port(port: int, seconds: float) -> None:
    """Another run of the suite on this machine may be running the demo right now."""
    deadline = time.monotonic() + seconds
    while not _port_free(port) and time.monotonic() < deadline:
        time.sleep(1)


@pytest.mark.slow  # starts Airflow
@pytest.mark.timeout(300)
def test_demo_loads_the_example_dags_and_the_reruns_add_nothing(tmp_path, monkeypatch, capsys):
    results: list[demo.DemoResult] = []
    real_run_demo = demo.run_demo

    def recording_run_demo(*args, **kwargs):
        results.append(real_run_demo(*args, **kwargs))
        return results[-1]

    monkeypatch.setattr(demo, "run_demo", recording_run_demo)
    _wait_for_port(SOURCE_PORT, 90)

    exit_code = demo.main(["--home", str(tmp_path / "airflow_home")])
    output = capsys.readouterr().out

    assert exit_code == 0, output
    (result,) = results
    assert result.ok and result.problems == []
    assert result.final_counts == EXPECTED_COUNTS
    assert result.expected_counts == EXPECTED_COUNTS

    # Every run succeeded in Airflow, and each DAG ran 2 intervals and then the 1st again.
    assert [(r.dag_id, r.label, r.state) for r in result.runs] == [
        (dag_id, label, "success")
        for dag_id in ("hydroserver_demo_logger_42", "hydroserver_demo_river_site_09380000",
                       "hydroserver_swot_reach_18180900091")
        for label in ("1st run", "2nd run", "re-run 1st")
    ]
    reruns = [r for r in result.runs if r.rerun]
    assert reruns[0].interval == result.runs[0].interval
    assert all(row.added == 0 for rerun in reruns for row in rerun.rows)
    # The windowed re-run really ran: it read its window back, found its 4 readings each
    # already stored with the source's values, and wrote nothing.
    assert [row.loaded for row in reruns[0].rows] == [0, 0]
    # The incremental re-run found nothing newer.
    assert reruns[1].message == "Already up to date."
    # The first river run caught up from start_time; the second added one hour.
    river = [r for r in result.runs if r.dag_id.endswith("09380000")]
    assert [row.added for row in river[0].rows] == [3659, 3659]
    assert [row.added for row in river[1].rows] == [1, 1]
    # The SWOT reach: the first run caught up on every pass, the next found nothing new.
    swot = [r for r in result.runs if r.dag_id == "hydroserver_swot_reach_18180900091"]
    assert [row.added for row in swot[0].rows] == [3, 3, 3]
    assert [row.added for row in swot[1].rows] == [0, 0, 0]
    assert swot[0].message.startswith("Hydrocron Reach 18180900091 (SWOT_L2_HR_RiverSP_D)")

    # The output is the demo's table, not Airflow's logging, and ends with the way to production.
    assert "Loaded 8 observations into 2 datastreams." in output
    assert "[info" not in output and "Traceback" not in output
    assert "AIRFLOW_CONN_HYDROSERVER_DEFAULT" in output
    assert (tmp_path / "airflow_home" / "demo.log").stat().st_size > 0

    # Everything it started is stopped: the source port is free again.
    assert _port_free(SOURCE_PORT)


@pytest.mark.slow  # starts Airflow
@pytest.mark.timeout(300)
def test_demo_without_the_recorded_hydrocron_answers_replays_synthetic_passes(tmp_path,
                                                                              monkeypatch, capsys):
    """An installed package has no ``shared/fixtures``: the replay serves six synthetic passes
    10.5 days apart from 2024-01-12, the last one after the first run, so the second run
    (incremental) picks it up -- and the demo's own check must agree with that."""
    results: list[demo.DemoResult] = []
    real_run_demo = demo.run_demo
    monkeypatch.setattr(demo, "run_demo",
                        lambda *a, **k: results.append(real_run_demo(*a, **k)) or results[-1])
    empty = tmp_path / "no-recorded-answers"
    empty.mkdir()
    monkeypatch.setenv("HYDROCRON_FIXTURES", str(empty))
    _wait_for_port(SOURCE_PORT, 90)

    exit_code = demo.main(["--home", str(tmp_path / "airflow_home")])
    output = capsys.readouterr().out

    assert exit_code == 0, output
    (result,) = results
    swot = [r for r in result.runs if r.dag_id == "hydroserver_swot_reach_18180900091"]
    assert [r.state for r in swot] == ["success"] * 3
    assert [[row.added for row in run.rows] for run in swot] == [[5, 5, 5], [1, 1, 1], [0, 0, 0]]
    swot_ids = [d for d in EXPECTED_COUNTS if d.startswith("0b")]
    assert {d: result.final_counts[d] for d in swot_ids} == dict.fromkeys(swot_ids, 6)
    assert result.expected_counts == result.final_counts
