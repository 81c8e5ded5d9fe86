"""Digests: run history read from a real Airflow API server, e-mailed through real SMTP."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import pytest

from hydroserver_provider.notifications.charts import png_bar_chart, sparkline
from hydroserver_provider.notifications.dags import HydroDigestOperator
from hydroserver_provider.notifications.digest import (
    DigestTask,
    behind_schedule,
    collect_digest,
    schedule_period,
)

UTC = UTC
HOUR = timedelta(hours=1)
TASKS = [
    DigestTask("hydroserver_river_1", "River 1", interval_seconds=3600),
    DigestTask("hydroserver_river_2", "River 2", crontab="0 */6 * * *"),
    DigestTask("hydroserver_manual_reload", "Manual reload"),
]
RECIPIENTS = ("ops@example.org", "hydro@example.org")


def test_behind_schedule_counts_two_intervals_from_the_last_success():
    now = datetime(2025, 6, 1, 12, tzinfo=UTC)
    assert behind_schedule(HOUR, now - 2.5 * HOUR, None, now)
    assert not behind_schedule(HOUR, now - 1.5 * HOUR, None, now)
    assert behind_schedule(HOUR, None, now - 3 * HOUR, now)  # never succeeded, ran for 3 h
    assert not behind_schedule(HOUR, None, now - HOUR, now)
    assert not behind_schedule(HOUR, None, None, now)  # never ran: new, not late
    assert not behind_schedule(None, None, now - 99 * HOUR, now)  # manual task


def test_schedule_period_of_interval_crontab_and_manual_tasks():
    now = datetime(2025, 6, 1, 12, 30, tzinfo=UTC)
    assert schedule_period(TASKS[0], now) == HOUR
    assert schedule_period(TASKS[1], now) == 6 * HOUR
    assert schedule_period(DigestTask("d", "n", crontab="0 6 * * 1-5"), now) == 24 * HOUR
    assert schedule_period(TASKS[2], now) is None


def test_a_disabled_task_is_never_behind_schedule():
    """``enabled: false`` no longer pauses the DAG (it has no schedule instead): the digest reads
    the definition's ``enabled``, not the pause, to tell a disabled task from a late one."""
    from hydroserver_provider.notifications.render import render_digest

    now = datetime(2025, 6, 1, 12, tzinfo=UTC)

    class History:  # the REST API calls a digest makes: a DAG that last ran ten hours ago
        def dag(self, dag_id):
            return {"dag_id": dag_id, "is_paused": False}

        def iter_dag_runs(self, dag_id, **kwargs):
            return iter(())

        def dag_runs(self, dag_id, states=None, **kwargs):
            return [] if states else [{"start_date": (now - 10 * HOUR).isoformat()}]

    tasks = [DigestTask("hydroserver_on", "On", interval_seconds=3600),
             DigestTask("hydroserver_off", "Off", interval_seconds=3600, enabled=False)]
    digest = collect_digest(History(), "River API", tasks, now - HOUR, now, now=now)
    on, off = digest.tasks
    assert on.behind and not off.behind
    subject, text, html, _ = render_digest(digest, charts=False)
    assert "1 task behind schedule" in subject
    assert "disabled (enabled: false; manual runs only)" in text


def test_sparkline_and_chart():
    assert sparkline([3, 2, 4, 0]) == "▆▅█▁"
    assert sparkline([0, 0]) == "▁▁" and sparkline([]) == ""
    png = png_bar_chart([3, 2, 4, 0], failed=[False, True, False, False], title="Discharge")
    assert png is not None and png.startswith(b"\x89PNG\r\n\x1a\n")


def test_collect_reads_runs_of_the_period_from_airflow(airflow_history):
    now = airflow_history.now
    with airflow_history.api() as api:
        digest = collect_digest(api, "River API", TASKS, now - 6 * HOUR, now, now=now)
    river1, river2, manual = digest.tasks
    assert [r.id for r in river1.runs] == ["scheduled__r1", "scheduled__r2", "scheduled__r3",
                                           "scheduled__r4"]  # started in the period; oldest first
    assert [r.status for r in river1.runs] == ["SUCCESS", "FAILURE", "SUCCESS", "STARTED"]
    discharge, gage = river1.datastreams
    assert (discharge.name, discharge.loaded, discharge.skipped, discharge.dropped,
            discharge.failed_runs) == ("Discharge", 9, 1, 2, 0)
    assert discharge.loaded_per_run == [3, 2, 4, 0]
    assert (gage.loaded, gage.failed_runs, gage.errors) == (7, 1, ["HydroServer answered 500"])
    assert gage.failed_per_run == [False, True, False, False]
    assert river1.last_success == now - timedelta(hours=2.95)
    assert river1.behind and not river1.paused
    assert not river2.behind and river2.loaded == 5 and river2.period == 6 * HOUR
    assert [r.message for r in manual.runs] == [
        "Failed (no run summary was recorded; see the task log)."]
    assert not manual.behind
    assert (digest.runs, digest.failures, digest.loaded) == (6, 2, 21)
    assert [t.task.name for t in digest.behind] == ["River 1"]


def test_an_unknown_task_is_reported_not_fatal(airflow_history):
    now = airflow_history.now
    with airflow_history.api() as api:
        digest = collect_digest(api, "River API", [DigestTask("hydroserver_gone", "Gone", 60)],
                                now - HOUR, now, now=now)
    (gone,) = digest.tasks
    assert not gone.found and gone.runs == [] and not gone.behind


@pytest.fixture
def digest_env(airflow_history, smtp, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API_DEFAULT",
                       airflow_history.airflow.api_connection())
    return airflow_history, smtp


def run_digest(history, **kwargs) -> dict:
    op = HydroDigestOperator(task_id="send_digest", connection_name="River API", tasks=TASKS,
                             recipients=RECIPIENTS, interval_seconds=6 * 3600, **kwargs)
    return op.execute({"data_interval_start": history.now - 6 * HOUR,
                       "data_interval_end": history.now})


def test_the_digest_email_shows_the_same_figures_in_text_and_html(digest_env):
    history, smtp = digest_env
    result = run_digest(history)
    assert result["runs"] == 6 and result["failures"] == 2 and result["loaded"] == 21
    assert result["behind"] == ["hydroserver_river_1"] and result["charts"] == 2

    (mail,) = smtp.wait_for(1)
    assert mail.recipients == RECIPIENTS
    assert mail.subject == ("[HydroServer] Digest for River API: 6 runs, 2 failed, 21 "
                            "observations loaded, 1 task behind schedule")
    text = mail.text
    assert "Behind schedule: River 1" in text
    assert "Status: BEHIND SCHEDULE (last success:" in text
    discharge = next(line for line in text.splitlines()
                     if line.strip().startswith("Discharge (0e000000-0000-4000-8000-000000000001)"))
    assert discharge.split()[-5:] == ["9", "1", "2", "0", "▆▅█▁"]
    assert "Gage height: HydroServer answered 500" in text
    assert "scheduled__r2" in text and "Waiting to retry after try 1 failed" in text
    assert "== River 2 (hydroserver_river_2) ==" in text and "Status: on schedule" in text
    assert "Status: manual only" in text

    html = mail.html
    for figure in (">9</td>", ">7</td>", ">5</td>", "BEHIND SCHEDULE", "River 1",
                   "Waiting to retry after try 1 failed"):
        assert figure in html, figure
    images = mail.images
    assert sorted(images) == ["chart-0-0", "chart-0-1"]
    assert all(png.startswith(b"\x89PNG") for png in images.values())
    assert 'src="cid:chart-0-0"' in html and 'alt="▆▅█▁"' in html


def test_without_matplotlib_the_digest_has_text_sparklines(digest_env, monkeypatch):
    history, smtp = digest_env
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    result = run_digest(history)
    assert result["charts"] == 0
    (mail,) = smtp.wait_for(1)
    assert mail.images == {} and "cid:" not in mail.html
    assert "▆▅█▁" in mail.html


def test_a_manual_digest_run_covers_the_last_schedule_period():
    op = HydroDigestOperator(task_id="d", connection_name="c", tasks=TASKS, recipients=RECIPIENTS,
                             interval_seconds=6 * 3600)

    class Run:
        run_after = datetime(2025, 6, 1, 12, 30, tzinfo=UTC)

    assert op.period({"dag_run": Run()}) == (Run.run_after - 6 * HOUR, Run.run_after)
    cron = HydroDigestOperator(task_id="d", connection_name="c", tasks=TASKS,
                               recipients=RECIPIENTS, crontab="0 7 * * *",
                               timezone="America/Denver")
    start, end = cron.period({"dag_run": Run()})
    # 12:30 UTC is 06:30 in Denver: the last complete day ended at 07:00 MDT the day before
    assert (start, end) == (datetime(2025, 5, 30, 13, tzinfo=UTC),
                            datetime(2025, 5, 31, 13, tzinfo=UTC))
    interval = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC))
    assert op.period({"data_interval_start": interval[0],
                      "data_interval_end": interval[1]}) == interval


def test_a_digest_that_cannot_run_says_why_in_one_line(smtp, monkeypatch):
    """No Airflow API connection (run history) or no SMTP connection: the digest fails at once,
    without retries, naming each and how to create it."""
    from hydroserver_provider.compat import AirflowFailException

    monkeypatch.delenv("AIRFLOW_CONN_AIRFLOW_API_DEFAULT", raising=False)
    now = datetime(2025, 6, 1, tzinfo=UTC)
    op = HydroDigestOperator(task_id="d", connection_name="c", tasks=TASKS, recipients=RECIPIENTS)
    context = {"data_interval_start": now - HOUR, "data_interval_end": now}
    with pytest.raises(AirflowFailException) as failed:
        op.execute(context)
    assert str(failed.value) == (
        "The digest of 'c' cannot run: Airflow connection 'airflow_api_default' does not exist: "
        "create it (Admin > Connections, type HTTP: the API server's URL as host, a user allowed "
        "to read DAG runs and XComs) or set AIRFLOW_CONN_AIRFLOW_API_DEFAULT")
    assert smtp.received == []
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API_DEFAULT", '{"conn_type": "http", '
                                                           '"host": "http://127.0.0.1:9"}')
    monkeypatch.delenv("AIRFLOW_CONN_SMTP_DEFAULT", raising=False)
    with pytest.raises(AirflowFailException, match="^The digest of 'c' cannot run: Airflow "
                                                   "connection 'smtp_default' does not exist"):
        op.execute(context)
