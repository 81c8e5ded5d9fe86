"""Real Airflow processes in a throw-away ``AIRFLOW_HOME``, for tests and demos.

:class:`LocalAirflow` runs ``airflow`` commands (``db migrate``, ``dags reserialize``) and
long-lived servers (``api-server``, or ``standalone``: scheduler, dag-processor, api-server,
triggerer with the LocalExecutor on SQLite) on 127.0.0.1 and a free port, with the admin password
fixed up front (the simple auth manager's password file), so a test knows its credentials before
the server starts. :meth:`LocalAirflow.stop` ends the whole process group (SIGTERM, then SIGKILL)
and :meth:`LocalAirflow.leftover_processes` proves nothing survived.

:func:`seed_runs` writes DAG runs with chosen states, start and end times and XComs straight into
the metadata database (a run history to read back through the REST API without waiting for a
scheduler).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["LocalAirflow", "free_port", "seed_runs"]

ADMIN = "admin"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class LocalAirflow:
    """``with LocalAirflow(home, dags) as af: af.migrate(); af.start("api-server")``.

    :param home: the ``AIRFLOW_HOME`` (created; holds ``airflow.db`` and logs).
    :param dags_folder: the DAG folder.
    :param env: more environment variables (connections, Airflow settings).
    """

    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        *,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        password: str = "local-airflow-admin",
    ) -> None:
        self.home = Path(home)
        self.dags_folder = Path(dags_folder)
        self.port = port or free_port()
        self.password = password
        self.extra_env = dict(env or {})
        self.process: subprocess.Popen | None = None
        self._group: int | None = None
        self.log_path = self.home / "server.log"
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "simple_auth_manager_passwords.json.generated").write_text(
            json.dumps({ADMIN: password})
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        bin_dir = str(Path(sys.executable).parent)
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("AIRFLOW__") and key != "AIRFLOW_HOME"
        }
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            }
        )
        env.update(self.extra_env)
        return env

    def airflow(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        """Run one ``airflow`` command to its end; raises with its output if it fails."""
        done = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=str(self.home),
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"airflow {' '.join(args)} exited {done.returncode}:\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def migrate(self) -> None:
        self.airflow("db", "migrate")

    def reserialize(self) -> None:
        """Parse the DAG folder into the database now (what the dag-processor would do)."""
        self.airflow("dags", "reserialize")

    def start(self, *command: str) -> LocalAirflow:
        """Start ``airflow <command>`` (e.g. ``api-server``, ``standalone``) in its own process
        group, output to :attr:`log_path`."""
        if self.process is not None:
            raise RuntimeError("already started")
        args = list(command)
        if args[:1] == ["api-server"]:
            args += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(self.home),
            start_new_session=True,
        )
        log.close()
        return self

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_healthy(
        self, components: Sequence[str] = ("metadatabase",), timeout: float = 120
    ) -> dict:
        """Wait until ``/api/v2/monitor/health`` says each of ``components`` is healthy."""
        import requests

        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"airflow exited {self.process.returncode} while starting:\n" + self.log_tail()
                )
            try:
                last = requests.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
                if all((last.get(c) or {}).get("status") == "healthy" for c in components):
                    return last
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.5)
        raise TimeoutError(
            f"Airflow not healthy after {timeout} s (last: {last}):\n" + self.log_tail()
        )

    def api(self) -> Any:
        from hydroserver_provider.runs.api import AirflowAPI

        return AirflowAPI(self.url, username=ADMIN, password=self.password)

    def api_connection(self) -> str:
        """JSON of an Airflow connection to this server's REST API (for digests)."""
        return json.dumps(
            {"conn_type": "http", "host": self.url, "login": ADMIN, "password": self.password}
        )

    def stop(self, grace: float = 20) -> None:
        """End every process of the group: SIGTERM, then SIGKILL after ``grace`` seconds."""
        process, self.process = self.process, None
        if process is None:
            return
        group = process.pid
        try:
            os.killpg(group, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and self._group_alive(group):
            try:
                process.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
        if self._group_alive(group):
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
            for _ in range(50):
                if not self._group_alive(group):
                    break
                time.sleep(0.1)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILLed above
            pass
        self._group = group
        # A descendant that left the group (a new session) still has this AIRFLOW_HOME.
        for pid, _ in _home_processes(self.home):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    @staticmethod
    def _group_alive(group: int) -> bool:
        return bool(_group_members(group))

    def leftover_processes(self) -> list[str]:
        """Processes still alive from the last server started -- in its process group, or
        carrying its ``AIRFLOW_HOME`` (none after :meth:`stop`)."""
        members = _group_members(self._group) if self._group is not None else []
        return sorted(set(members) | {f"{pid} {name}" for pid, name in _home_processes(self.home)})

    def __enter__(self) -> LocalAirflow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _group_members(group: int) -> list[str]:
    """``pid command`` of every live (not zombie) process in process group ``group``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after the last ')'
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == group:
            members.append(f"{entry.name} {stat[stat.find('(') + 1 : stat.rfind(')')]}")
    return members


def _home_processes(home: Path) -> list[tuple[int, str]]:
    """Live processes whose environment has ``AIRFLOW_HOME=<home>`` (this user's only)."""
    marker = f"AIRFLOW_HOME={home}".encode() + b"\0"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if marker in environ + b"\0" and stat[stat.rfind(")") + 2 :].split()[:1] != ["Z"]:
            found.append((int(entry.name), stat[stat.find("(") + 1 : stat.rfind(")")]))
    return found


_SEED_SCRIPT = textwrap.dedent("""
    import json, sys
    from datetime import datetime
    from airflow.models.dagrun import DagRun
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    def when(text):
        return datetime.fromisoformat(text) if text else None

    request = json.load(sys.stdin)
    if request["reserialize"]:
        import argparse
        from airflow.cli.commands.dag_command import dag_reserialize
        dag_reserialize(argparse.Namespace(bundle_name=None))
    specs = request["runs"]
    with create_session() as session:
        dags = {}
        for spec in specs:
            dag_id = spec["dag_id"]
            if dag_id not in dags:
                dags[dag_id] = SerializedDagModel.get_dag(dag_id, session=session)
                if dags[dag_id] is None:
                    raise SystemExit(f"DAG {dag_id} is not serialized")
            dag = dags[dag_id]
            interval = (when(spec["interval_start"]), when(spec["interval_end"])) \\
                if spec.get("interval_start") else None
            state = DagRunState(spec["state"])
            run = dag.create_dagrun(
                run_id=spec["run_id"], logical_date=interval[0] if interval else None,
                data_interval=interval, run_after=when(spec.get("run_after"))
                or when(spec["start"]) or datetime.now().astimezone(),
                run_type=DagRunType(spec.get("run_type", "scheduled")),
                triggered_by=DagRunTriggeredByType.TIMETABLE, state=state,
                conf=spec.get("conf"), session=session)
            session.flush()
            run.start_date = when(spec.get("start"))
            run.end_date = when(spec.get("end"))
            for ti in run.get_task_instances(session=session):
                if spec.get("ti_state"):
                    ti.state = TaskInstanceState(spec["ti_state"])
                    ti.try_number = spec.get("try_number", 1)
            session.flush()
            for key, value in (spec.get("xcom") or {}).items():
                # stored as a task stores it through the Task SDK: JSON, not a JSON string
                XComModel.set(key=key, value=value, dag_id=dag_id, task_id=spec["task_id"],
                              run_id=spec["run_id"], serialize=False, session=session)
    print(json.dumps({"seeded": len(specs)}))
""")


def seed_runs(
    airflow: LocalAirflow, runs: Sequence[Mapping[str, Any]], *, reserialize: bool = True
) -> None:
    """Write DAG runs into ``airflow``'s database: each ``{dag_id, run_id, state ("queued",
    "running", "success", "failed"), start, end (ISO or None), task_id, ti_state, xcom: {key:
    value}, interval_start/interval_end, run_type, conf}``. With ``reserialize``, the DAG folder
    is parsed into the database first, in the same process (the runs need their DAGs)."""
    request = {"reserialize": reserialize, "runs": list(runs)}
    done = subprocess.run(
        [sys.executable, "-c", _SEED_SCRIPT],
        input=json.dumps(request),
        env=airflow.env(),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(airflow.home),
    )
    if done.returncode != 0:
        raise RuntimeError(f"seeding runs failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
