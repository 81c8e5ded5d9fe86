"""HydroIngestOperator: run one data connection and its mappings as an Airflow task.

A thin adapter: it turns Airflow's context (data interval, connections, variables) into the
plain-Python run of :func:`hydroserver_provider.etl.pipeline.run_ingestion`, and its summary into
the task's XCom. ``__init__`` does no I/O; everything happens in ``execute``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping, Sequence

from ..compat import Asset, BaseOperator, Connection, Variable, mask_secret


def _to_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _to_datetime(value: Any, what: str) -> datetime | None:
    if value in (None, "", "None"):
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        import pendulum  # noqa: PLC0415

        try:
            moment = pendulum.parse(str(value))
        except Exception as exc:  # pendulum raises several types
            raise ValueError(f"{what}: expected an ISO 8601 date/time, found {value!r}") from exc
    if moment.tzinfo is None:
        import pendulum  # noqa: PLC0415

        moment = moment.replace(tzinfo=pendulum.UTC)
    return moment


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
    """

    template_fields: Sequence[str] = (
        "task_variables", "window_start", "window_end", "chunk_rows", "dry_run",
    )
    ui_color = "#d8eefa"

    def __init__(
        self,
        *,
        data_connection: Any,
        mappings: Sequence[Any],
        task_variables: Mapping[str, str] | None = None,
        hydroserver_conn_id: str = "hydroserver_default",
        window_start: Any = None,
        window_end: Any = None,
        start_time: datetime | None = None,
        chunk_rows: int | str = 50_000,
        dry_run: bool | str = False,
        max_source_bytes: int = 2 * 1024**3,
        asset_host: str | None = None,
        **kwargs: Any,
    ) -> None:
        from ..etl.config import DataConnection, Mapping as MappingDef  # noqa: PLC0415

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
        self.dry_run = dry_run
        self.max_source_bytes = max_source_bytes
        if "outlets" not in kwargs:
            host = asset_host or hydroserver_conn_id
            kwargs["outlets"] = [
                Asset(uri=f"hydroserver://{host}/datastreams/{m.target_datastream_id}",
                      name=f"hydroserver/{host}/datastreams/{m.target_datastream_id}")
                for m in self.mappings
            ]
        super().__init__(**kwargs)

    def _source_headers(self) -> dict[str, str]:
        auth = self.data_connection.auth
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

    def _window(self, context: Mapping[str, Any]):
        from ..etl.placeholders import RunWindow  # noqa: PLC0415

        start = _to_datetime(self.window_start, "window_start")
        end = _to_datetime(self.window_end, "window_end")
        if start is None and end is None:
            start = context.get("data_interval_start")
            end = context.get("data_interval_end")
        if (start is None) != (end is None):
            raise ValueError(f"a window needs a start and an end; found start={start}, end={end}")
        return RunWindow(start=start, end=end)

    def execute(self, context: Mapping[str, Any]) -> dict[str, Any]:
        from ..etl.errors import IngestionFailed  # noqa: PLC0415
        from ..etl.pipeline import RunOptions, run_ingestion  # noqa: PLC0415
        from ..hooks.hydroserver import HydroServerHook  # noqa: PLC0415

        options = RunOptions(
            chunk_rows=int(self.chunk_rows), dry_run=_to_bool(self.dry_run),
            source_headers=self._source_headers(), max_source_bytes=self.max_source_bytes,
        )
        hook = HydroServerHook(self.hydroserver_conn_id)
        try:
            return run_ingestion(
                hook, self.data_connection, self.mappings, window=self._window(context),
                task_variables=self.task_variables, start_time=self.start_time, options=options,
            )
        except IngestionFailed as exc:
            ti = context.get("ti")
            if ti is not None:
                ti.xcom_push(key="summary", value=exc.summary)
            raise
        finally:
            hook.close()
