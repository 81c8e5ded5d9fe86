"""HydroIngestOperator: run one data connection and its mappings as an Airflow task.

A thin adapter: it turns Airflow's context (data interval, connections, variables) into the
plain-Python run of :func:`hydroserver_provider.pipeline.run_ingestion`, and its summary into
the task's XCom. ``__init__`` does no I/O; everything happens in ``execute``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from hydroserver_provider.compat import (
    AirflowFailException,
    Asset,
    BaseOperator,
    Connection,
    Variable,
    mask_secret,
)
from hydroserver_provider.defaults import CHUNK_ROWS, HYDROSERVER_CONN_ID
from hydroserver_provider.timestamps import parse_instant


def _datastream_asset_uri(host: str, datastream_id: str) -> str:
    return f"hydroserver://{host}/datastreams/{datastream_id}"


def datastream_assets(host: str, datastream_ids: Sequence[str]) -> list[Any]:
    """The Assets announcing new data in these datastreams (``hydroserver://<host>/...``)."""
    return [Asset(uri=_datastream_asset_uri(host, d), name=f"hydroserver/{host}/datastreams/{d}")
            for d in datastream_ids]


def _to_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _to_datetime(value: Any, what: str) -> datetime | None:
    """A rendered ``window_start`` / ``window_end`` (an empty template renders as "None")."""
    if value in (None, "", "None"):
        return None
    try:
        return parse_instant(value if isinstance(value, datetime) else str(value))
    except ValueError:
        raise ValueError(f"{what}: expected an ISO 8601 date/time, found {value!r}") from None


def _run_type(dag_run: Any) -> str:
    """``"scheduled"``, ``"manual"``, ``"backfill"``, ... of a run (an enum or its value)."""
    run_type = getattr(dag_run, "run_type", None)
    return str(getattr(run_type, "value", run_type) or "")


def run_started_at(context: Mapping[str, Any]) -> datetime:
    """When the run started -- the ``run_time`` placeholder (the guide: "the time the task
    started running"): the DAG run's start, which every try of the run shares (a retry asks for
    the same URL), else this try's start, else now."""
    for holder in (context.get("dag_run"), context.get("ti")):
        started = getattr(holder, "start_date", None)
        if isinstance(started, datetime):
            return started if started.tzinfo is not None else started.replace(tzinfo=UTC)
    return datetime.now(UTC)


def source_auth_headers(auth: Any) -> dict[str, str]:
    """The header a data connection's ``auth`` asks for, its value read from Airflow (masked).

    Shared with ``hydroserver-airflow preview``, which fetches the source the same way.
    """
    if auth is None:
        return {}
    if auth.conn_id:
        value = Connection.get(auth.conn_id).password
        where = f"the password of Airflow connection '{auth.conn_id}'"
    else:
        value = Variable.get(auth.variable)
        where = f"Airflow variable '{auth.variable}'"
    if not value:
        raise ValueError(f"the source auth header '{auth.header_name}' expects a value in "
                         f"{where}, and it is empty")
    mask_secret(value)
    return {auth.header_name: value}


class HydroIngestOperator(BaseOperator):
    """Fetch a source, parse it and load new observations into HydroServer datastreams.

    :param data_connection: the data connection (a ``DataConnection`` or its dict definition).
    :param mappings: ``[{"source_identifier": ..., "target_datastream_id": ...}]`` or models.
    :param task_variables: values of ``per_task`` placeholders (templated).
    :param hydroserver_conn_id: Airflow connection of type ``hydroserver``.
    :param window_start / window_end: the window to load (templated); by default the run's data
        interval. Both empty on a run without an interval: the URL's window placeholders then fail.
    :param start_time: the task's start; ``latest_observation_timestamp`` falls back to it.
    :param chunk_rows: observations per HydroServer request (templated).
    :param dry_run: do everything except the writes and report what would load (templated).
    :param asset_host: the host named in the datastream Assets (``hydroserver://<host>/...``);
        defaults to the connection id, since the URL is not known without a lookup.
    :param hydrocron_conn_id: HYDROCRON payloads: Airflow connection of type ``hydrocron``
        (default: the payload's ``hydrocron_conn_id``, itself ``hydrocron_default``).
    :param feature_id: HYDROCRON payloads: the reach, node or lake to load (templated); default:
        the payload's ``feature_id`` or the task variable ``feature_id``.
    :param hydrocron_rate_share: HYDROCRON payloads: how many task instances run at once and
        share the request rate (a fan-out's ``max_active_tis_per_dag``). Each instance, its own
        process, then uses ``1/share`` of the rate (the payload's ``requests_per_second``, else
        the connection's) and keeps its slot until that pace allows its next request, so together
        they stay within the rate.
    """

    template_fields: Sequence[str] = (
        "task_variables", "window_start", "window_end", "chunk_rows", "dry_run", "feature_id",
    )
    ui_color = "#d8eefa"

    def __init__(
        self,
        *,
        data_connection: Any,
        mappings: Sequence[Any],
        task_variables: Mapping[str, str] | None = None,
        hydroserver_conn_id: str = HYDROSERVER_CONN_ID,
        window_start: Any = None,
        window_end: Any = None,
        start_time: datetime | None = None,
        chunk_rows: int | str = CHUNK_ROWS,
        dry_run: bool | str = False,
        max_source_bytes: int = 2 * 1024**3,
        asset_host: str | None = None,
        hydrocron_conn_id: str | None = None,
        feature_id: str | None = None,
        hydrocron_rate_share: int = 1,
        **kwargs: Any,
    ) -> None:
        from hydroserver_provider.definitions import DataConnection
        from hydroserver_provider.definitions import Mapping as MappingDef

        self.data_connection = (data_connection if isinstance(data_connection, DataConnection)
                                else DataConnection.model_validate(data_connection))
        self.mappings = [m if isinstance(m, MappingDef) else MappingDef.model_validate(m)
                         for m in mappings]
        self.task_variables = dict(task_variables or {})
        self.hydroserver_conn_id = hydroserver_conn_id
        self.window_start = window_start
        self.window_end = window_end
        self.start_time = start_time
        self.chunk_rows = chunk_rows
        # Shadows BaseOperator.dry_run() (a method nothing in Airflow 3 calls): the attribute
        # must carry this name, as the templated field the DAG factory renders.
        self.dry_run = dry_run  # type: ignore[method-assign, assignment]
        self.max_source_bytes = max_source_bytes
        self.hydrocron_conn_id = hydrocron_conn_id
        self.feature_id = feature_id
        self.hydrocron_rate_share = max(1, int(hydrocron_rate_share))
        self._asset_host = asset_host or hydroserver_conn_id
        if "outlets" not in kwargs:
            kwargs["outlets"] = datastream_assets(
                self._asset_host, [m.target_datastream_id for m in self.mappings])
        super().__init__(**kwargs)

    def _mask_secret_variables(self) -> None:
        """Tell Airflow's masker the values of secret placeholders (``?key={station_key}``), so
        no log line shows them, not even urllib3's debug line with the request's query."""
        from hydroserver_provider.sources.placeholders import secret_placeholder_names

        source_url = getattr(self.data_connection, "source_url", None) or ""
        for name in secret_placeholder_names(source_url):
            value = self.task_variables.get(name)
            if value:
                mask_secret(str(value))

    def _window(self, context: Mapping[str, Any]):
        """The run's window, and whether it was given to the run (which then reloads it).

        A window is given by the trigger form or run conf (``params``), by a backfill (which
        reloads its data intervals), or by ``window_start``/``window_end`` rendering to
        something other than the run's data interval. A scheduled run's own data interval is
        not "given": an incremental source ignores it.
        """
        from hydroserver_provider.sources.placeholders import RunWindow

        start = _to_datetime(self.window_start, "window_start")
        end = _to_datetime(self.window_end, "window_end")
        interval = (context.get("data_interval_start"), context.get("data_interval_end"))
        params = context.get("params") or {}
        if params.get("window_start") or params.get("window_end"):
            reason = "the window given when the run was triggered"
        elif _run_type(context.get("dag_run")) == "backfill":
            reason = "a backfill run reloads its data interval"
        elif start is not None and (start, end) != interval:
            reason = "the operator's window_start/window_end"
        else:
            reason = None
        if start is None and end is None:
            start, end = interval
        if (start is None) != (end is None):
            raise ValueError(f"a window needs a start and an end; found start={start}, end={end}")
        explicit = reason is not None and start is not None and end is not None and start < end
        return RunWindow(start=start, end=end, explicit=explicit,
                         reason=reason if explicit else None,
                         started_at=run_started_at(context))

    def execute(self, context: Mapping[str, Any]) -> dict[str, Any]:
        from hydroserver_provider.operators.preflight import fail_if_missing, ingest_requirements

        fail_if_missing(ingest_requirements(self))  # a missing connection: fail now, no retries
        from hydroserver_provider.errors import DefinitionError, IngestionFailed
        from hydroserver_provider.hooks.hydroserver import HydroServerHook
        from hydroserver_provider.pipeline import RunOptions, run_ingestion

        options = RunOptions(
            chunk_rows=int(self.chunk_rows), dry_run=_to_bool(self.dry_run),
            source_headers=source_auth_headers(self.data_connection.auth),
            max_source_bytes=self.max_source_bytes,
        )
        self._mask_secret_variables()
        hook = HydroServerHook(self.hydroserver_conn_id)
        hydrocron = self._hydrocron_hook()
        try:
            return run_ingestion(
                hook.get_conn(), self.data_connection, self.mappings, window=self._window(context),
                task_variables=self.task_variables, start_time=self.start_time, options=options,
                source=self._hydrocron_source(hydrocron),
            )
        except IngestionFailed as exc:
            ti = context.get("ti")
            if ti is not None:
                ti.xcom_push(key="summary", value=exc.summary)
            raise
        except DefinitionError as exc:  # the definition must change (a Hydrocron 400 too):
            raise AirflowFailException(str(exc)) from exc  # retrying cannot help
        finally:
            hook.close()
            if hydrocron is not None:
                self._keep_pace(hydrocron)
                hydrocron.close()

    # -- Hydrocron ------------------------------------------------------------------------------

    def _hydrocron_hook(self) -> Any:
        """The HydrocronHook of a HYDROCRON payload (None otherwise), limited to this instance's
        share of the request rate; narrows a fan-out instance's outlets to its own datastreams."""
        payload = self.data_connection.payload
        if payload.type != "HYDROCRON":
            return None
        from hydroserver_provider.hooks.hydrocron import HydrocronHook
        from hydroserver_provider.sources.ratelimit import shared_limiter

        if any(m.feature_id for m in self.mappings):  # a fan-out instance: announce only its own
            own = {_datastream_asset_uri(self._asset_host, m.target_datastream_id)
                   for m in self.mappings}
            self.outlets = [a for a in self.outlets
                            if not str(getattr(a, "uri", "")).startswith("hydroserver://")
                            or a.uri in own]
        hook = HydrocronHook.for_payload(payload, self.hydrocron_conn_id)
        client = hook.get_conn()
        if client.limiter is not None and self.hydrocron_rate_share > 1:
            client.limiter = shared_limiter(f"hydrocron:{client.base_url}",
                                            client.limiter.rate / self.hydrocron_rate_share)
        return hook

    def _hydrocron_source(self, hook: Any) -> Any:
        """The Hydrocron source of this instance (None: the connection's default source)."""
        if hook is None:
            return None
        from hydroserver_provider.sources.hydrocron.source import HydrocronSource

        feature = (str(self.feature_id).strip()
                   if self.feature_id not in (None, "", "None") else None)
        return HydrocronSource(hook.get_conn(), feature_id=feature)

    def _keep_pace(self, hook: Any) -> None:
        """Hold this instance's slot until its share of the rate allows one more request, so the
        next instance in the slot (a new process with a fresh limiter) cannot go faster."""
        limiter = hook.get_conn().limiter
        if limiter is not None and self.hydrocron_rate_share > 1 and limiter.acquired:
            limiter.acquire()
