"""What a user sees in Airflow's UI after a run, in a real browser.

``airflow standalone`` runs a task whose source URL carries a secret query value
(``?key={station}``, filled from the Airflow Variable ``station_key`` -- names Airflow does not
mask by itself). Headless Chromium (Debian's, driven by Playwright) then opens, as a user would:

* the finished run's task log: the window in UTC and local time, one line per datastream by name
  with its numbers and the dropped values with where they were, the run's message -- and no
  secret;
* the task's Rendered Templates tab: ``task_variables`` shows ``***``, never the secret;
* the asset page of the datastream that received rows: its event, with the rows loaded.

With ``HYDROSERVER_SCREENSHOTS=<folder>`` the task log and the asset page are saved there as PNG
(``docs/images/`` holds the ones the README shows). Chromium must be installed
(``apt-get install chromium``; ``.ci/run`` does it); without it the test is skipped, unless
``HYDROSERVER_REQUIRE_BROWSER=1`` (set by CI) makes that a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from test_standalone import _wait

from hydroserver_provider.testing.airflow import LocalAirflow
from hydroserver_provider.testing.sources import LocalSourceServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SECRET = "stn-Q7XK2M-station-key-value"
DAG_ID = "hydroserver_browser_logger"
CONSUMER = "browser_on_level"
WINDOW = (datetime(2025, 6, 2, 10, tzinfo=UTC), datetime(2025, 6, 2, 11, tzinfo=UTC))
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-dev-shm-usage"]

DEFINITIONS = """
defaults:
  retries: 0
data_connections:
  - name: Browser logger
    source_url: {source}/logger.csv?key={{station}}&start={{start}}&end={{end}}
    payload_type: CSV
    timestamp_key: Date Time
    timestamp_format: "%Y-%m-%d %H:%M:%S"
    timezone_type: iana
    timezone: America/Denver
    placeholder_variables:
      - {{name: station, variable_type: per_task}}
      - {{name: start, variable_type: window_start, timestamp_format: "%Y-%m-%dT%H:%M:%S"}}
      - {{name: end, variable_type: window_end, timestamp_format: "%Y-%m-%dT%H:%M:%S"}}
tasks:
  - name: Browser logger
    data_connection: Browser logger
    task_variables: {{station: "{{{{ var.value.station_key }}}}"}}
    mappings:
      - {{source_identifier: Water Level, target_datastream_id: {level}}}
      - {{source_identifier: Water Temp, target_datastream_id: {temp}}}
"""

CONSUMER_DAG = '''
"""A DAG (airflow dag) scheduled on the Water Level datastream's asset."""
from airflow.sdk import DAG, Asset, task

with DAG({dag_id!r}, schedule=[Asset({uri!r})], is_paused_upon_creation=False) as dag:
    @task
    def read():
        pass
    read()
'''


def _logger(query: dict[str, str]):
    """Four 15-minute rows of the window in Denver local time; one level reads '---'."""
    if query.get("key") != SECRET:
        return 403, "wrong key"
    rows = ["Date Time,Water Level,Water Temp"]
    local = WINDOW[0] - timedelta(hours=6)  # MDT
    for i in range(4):
        moment = (local + timedelta(minutes=15 * i)).strftime("%Y-%m-%d %H:%M:%S")
        rows.append(f"{moment},{'---' if i == 2 else 3.2 + i / 10},{12 + i}")
    return "\n".join(rows) + "\n"


@pytest.fixture(scope="module")
def chromium():
    if not Path(CHROMIUM).exists():
        if os.environ.get("HYDROSERVER_REQUIRE_BROWSER"):
            pytest.fail(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=BROWSER_ARGS)
        yield browser
        browser.close()


def _page_text(page, must_contain: str, timeout: float = 90) -> str:
    """The page's text once it shows ``must_contain`` (the UI loads data after the page)."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = page.inner_text("body")
        if must_contain in text:
            return text
        page.wait_for_timeout(1000)
    raise AssertionError(f"the page never showed {must_contain!r}; it showed:\n{text[-3000:]}")


def _expand_event_extra(page) -> None:
    """Unfold the event's ``extra``, as a user clicks it open (the UI shows it folded)."""
    for selector in (".codicon-folding-collapsed", ".folding.collapsed", "text=⋯", "text=…"):
        target = page.locator(selector).first
        try:
            target.click(timeout=3000)
            page.wait_for_timeout(500)
            if "rows_loaded" in page.inner_text("body"):
                return
        except Exception:
            continue


def _screenshot(page, name: str) -> None:
    folder = os.environ.get("HYDROSERVER_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=False)


def test_task_log_rendered_templates_and_asset_page_in_a_browser(tmp_path, local_hydroserver,
                                                                 chromium):
    hs = local_hydroserver
    level = hs.create_datastream(name="Water Level", unit="ft")
    temp = hs.create_datastream(name="Water Temp", unit="degC")
    host = hs.url.split("://", 1)[1]
    level_uri = f"hydroserver://{host}/datastreams/{level}"

    with LocalSourceServer() as source:
        source.add("/logger.csv", _logger, "text/csv")
        dags = tmp_path / "dags"
        (dags / "definitions").mkdir(parents=True)
        for name in ("hydroserver_ingestion.py", "hydroserver_definition_check.py"):
            shutil.copy(REPO / "dags" / name, dags)
        (dags / "definitions" / "browser.yaml").write_text(textwrap.dedent(DEFINITIONS).format(
            source=source.url, level=level, temp=temp))
        (dags / "consumer.py").write_text(CONSUMER_DAG.format(dag_id=CONSUMER, uri=level_uri))

        airflow = LocalAirflow(tmp_path / "home", dags, password="browser-admin-pw")
        airflow.extra_env.update({
            "AIRFLOW_CONN_HYDROSERVER_DEFAULT": json.dumps({
                "conn_type": "hydroserver", "host": hs.url,
                "extra": {"api_key": hs.api_key, "retries": 1, "retry_backoff": 0.1}}),
            "AIRFLOW_VAR_STATION_KEY": SECRET,
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        })
        try:
            airflow.start("standalone")
            airflow.wait_healthy(("metadatabase", "scheduler", "dag_processor"), timeout=300)
            with airflow.api() as api:
                _wait("the DAGs to be parsed", lambda: api.dag(DAG_ID) and api.dag(CONSUMER),
                      240, airflow)
                api.set_paused(DAG_ID, False)
                run_id = api.trigger(DAG_ID, conf={
                    "window_start": WINDOW[0].isoformat(),
                    "window_end": WINDOW[1].isoformat()})["dag_run_id"]
                _wait("the run to finish", lambda: api.dag_run(DAG_ID, run_id)["state"]
                      in ("success", "failed"), 300, airflow, every=2)
                assert api.dag_run(DAG_ID, run_id)["state"] == "success", airflow.log_tail()
                # The event triggers the consumer DAG. Airflow 3.3.2's GET /assets/events answers
                # 500 while a run an event created is still queued (its response model requires
                # the run's start_date), so wait for that run to finish before reading events.
                consumed = _wait("the consumer DAG's run", lambda: [
                    r for r in api.dag_runs(CONSUMER) if r["state"] in ("success", "failed")],
                    240, airflow, every=2)
                assert [r["state"] for r in consumed] == ["success"], airflow.log_tail()
                (asset,) = api.request("GET", "/assets", params={
                    "uri_pattern": level, "limit": 10})["assets"]
                (event,) = api.request("GET", "/assets/events", params={
                    "asset_id": asset["id"]})["asset_events"]
                token = api.login()

            context = chromium.new_context(viewport={"width": 1400, "height": 900})
            context.add_cookies([{"name": "_token", "value": token, "url": airflow.url}])
            page = context.new_page()
            task_url = f"{airflow.url}/dags/{DAG_ID}/runs/{quote(run_id)}/tasks/ingest"

            # the task log, as a user opens it
            page.goto(task_url)
            log_text = _page_text(page, "Loaded 7 observations into 2 datastreams.")
            _screenshot(page, "task-log.png")

            # the Rendered Templates tab
            page.goto(f"{task_url}/rendered_templates")
            rendered = _page_text(page, "task_variables")

            # the asset page of the datastream that received rows
            page.goto(f"{airflow.url}/assets/{asset['id']}")
            _page_text(page, "1 Asset Event")
            _expand_event_extra(page)
            asset_text = _page_text(page, '"rows_loaded"', timeout=30).replace("\xa0", " ")
            _screenshot(page, "asset-view.png")
            context.close()
        finally:
            airflow.stop()
        assert airflow.leftover_processes() == []

    # the task log: window, per-datastream lines by name with drops and where, the message
    assert "Window: 2025-06-02 10:00 -> 11:00 UTC (04:00 -> 05:00 America/Denver)" in log_text
    assert "Datastream 'Water Level': loaded 3; dropped 1 (not_a_number 1: data row 3: '---')" \
        in log_text
    assert "Datastream 'Water Temp': loaded 4" in log_text
    # the rendered templates: the secret placeholder's value masked
    assert "***" in rendered
    # the asset page: one event, from this run, which triggered the consumer DAG; its extra
    # says what a consumer needs
    assert f"Source:\n{DAG_ID}" in asset_text and CONSUMER in asset_text
    assert '"rows_loaded": 3' in asset_text and '"datastream_name": "Water Level"' in asset_text
    assert (event["extra"]["rows_loaded"], event["extra"]["datastream_name"]) == (3, "Water Level")
    for text in (log_text, rendered, asset_text):
        assert SECRET not in text and SECRET.split("-")[1] not in text
