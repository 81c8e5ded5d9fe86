"""HydroIngestOperator: run one data connection and its mappings as an Airflow task.

A thin adapter: it turns Airflow's context (data interval, connections, variables) into the
plain-Python run of :func:`hydroserver_provider.pipeline.run_ingestion`, and its summary into
the task's XCom. ``__init__`` does no I/O; everything happens in ``execute``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from hydroserver_provider.assets import (
    changed_datastreams,
    datastream_alias,
    datastream_asset,
    datastream_uri,
    event_extra,
    hydroserver_host,
    merge_extra,
)
from hydroserver_provider.compat import (
    AirflowFailException,
    AirflowRuntimeError,
    Asset,
    AssetAlias,
    BaseOperator,
    Connection,
    Variable,
    mask_secret,
)
from hydroserver_provider.defaults import CHUNK_ROWS, HYDROSERVER_CONN_ID
from hydroserver_provider.timestamps import parse_instant

log = logging.getLogger(__name__)

UNANNOUNCED_KEY = "hydroserver_unannounced_asset_events"
"""Task state store key: datastreams a failed try wrote rows to, for the retry to announce."""


def datastream_assets(host: str, datastream_ids: Sequence[str]) -> list[Any]:
    """The assets of these datastreams on HydroServer ``host`` (``hydroserver://<host>/...``)."""
    return [datastream_asset(host, d) for d in datastream_ids]


def _with_changes(extras: Mapping[str, dict[str, Any]],
                  summary: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``extras`` (event extras by datastream id) with the datastreams this run changed added,
    or merged into theirs (a datastream written by two tries)."""
    merged = dict(extras)
    for outcome in changed_datastreams(summary):
        extra = event_extra(outcome, summary)
        datastream_id = outcome["datastream_id"]
        merged[datastream_id] = (merge_extra(merged[datastream_id], extra)
                                 if datastream_id in merged else extra)
    return merged


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
    :param asset_host: the host named in the datastream assets (``hydroserver://<host>/...``);
        default: the host of the HydroServer connection's URL, read at run time.
    :param hydrocron_conn_id: HYDROCRON payloads: Airflow connection of type ``hydrocron``
        (default: the payload's ``hydrocron_conn_id``, itself ``hydrocron_default``).
    :param feature_id: HYDROCRON payloads: the reach, node or lake to load (templated); default:
        the payload's ``feature_id`` or the task variable ``feature_id``.
    :param hydrocron_rate_share: HYDROCRON payloads: how many task instances run at once and
        share the request rate (a fan-out's ``max_active_tis_per_dag``). Each instance, its own
        process, then uses ``1/share`` of the rate (the payload's ``requests_per_second``, else
        the connection's) and keeps its slot until that pace allows its next request, so together
        they stay within the rate.

    **Assets.** The task's outlet is one asset alias (:func:`~hydroserver_provider.assets.
    datastream_alias`, unless ``outlets`` are given); a run that changed a datastream's rows adds
    an event for that datastream's asset, ``hydroserver://<host>/datastreams/<id>``, with the
    rows loaded and their span in its ``extra``. A dry run, a run that found nothing new, and a
    datastream that received nothing announce nothing; rows a failed try wrote are announced by
    the try that succeeds.

    **Secrets.** The values of secret placeholders, the source's auth header value and the
    HydroServer and Hydrocron credentials are registered with Airflow's secrets masker as soon as
    the templates are rendered, before Airflow stores the rendered fields.

    **Lineage.** :meth:`get_openlineage_facets_on_complete` reports the source (its URL with
    secrets hidden, or the Hydrocron feature) as input and the datastreams as outputs, when
    ``apache-airflow-providers-openlineage`` is installed.
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
        self.asset_host = asset_host
        self._lineage: dict[str, Any] | None = None  # what this run read and wrote (execute)
        declared = "outlets" in kwargs
        super().__init__(**kwargs)
        if not declared:  # the datastreams' assets are added per run, to this alias
            self.outlets = [datastream_alias(self.dag_id, self.task_id)]

    # -- secrets --------------------------------------------------------------------------------

    def _do_render_template_fields(self, parent: Any, template_fields: Any, context: Any,
                                   jinja_env: Any, seen_oids: set[int]) -> None:
        """Render, then register this run's secrets with Airflow's masker at once.

        The task runner renders the templates and then, before ``execute``, redacts and stores
        the rendered fields (the UI's Rendered Templates tab): a secret registered only in
        ``execute`` would be stored in clear text. This is the method both ``BaseOperator`` and a
        mapped (fan-out) instance render through.
        """
        super()._do_render_template_fields(parent, template_fields, context, jinja_env,
                                           seen_oids)
        if parent is self:
            self.register_secrets()

    def register_secrets(self) -> None:
        """Tell Airflow's masker every secret this task uses: the values of secret placeholders
        (``?key={station}``: the provider treats ``key`` as secret), the source's auth header
        value, and the HydroServer and Hydrocron credentials. A secret that cannot be read
        here is not registered, and cannot leak: this process does not know it."""
        self._mask_secret_variables()
        for what, register in (("source auth", self._mask_source_auth),
                               ("HydroServer connection", self._mask_hydroserver),
                               ("Hydrocron connection", self._mask_hydrocron)):
            try:
                register()
            except Exception as exc:  # execute() reads it again and reports the problem
                log.debug("Could not read the %s to mask its secrets yet (%s)", what,
                          type(exc).__name__)

    def _mask_secret_variables(self) -> None:
        """Tell Airflow's masker the values of secret placeholders (``?key={station_key}``), so
        no log line shows them, not even urllib3's debug line with the request's query."""
        from hydroserver_provider.sources.placeholders import secret_placeholder_names

        source_url = getattr(self.data_connection, "source_url", None) or ""
        for name in secret_placeholder_names(source_url):
            value = self.task_variables.get(name) if isinstance(self.task_variables, Mapping) \
                else None
            if value:
                mask_secret(str(value))

    def _mask_source_auth(self) -> None:
        source_auth_headers(self.data_connection.auth)  # masks the value it reads

    def _mask_hydroserver(self) -> None:
        from hydroserver_provider.hooks.hydroserver import HydroServerHook

        hook = HydroServerHook(self.hydroserver_conn_id)
        try:
            hook.get_conn()  # masks the API key or the password
        finally:
            hook.close()

    def _mask_hydrocron(self) -> None:
        payload = self.data_connection.payload
        if payload.type != "HYDROCRON":
            return
        from hydroserver_provider.hooks.hydrocron import HydrocronHook

        hook = HydrocronHook.for_payload(payload, self.hydrocron_conn_id)
        try:
            hook.get_conn()  # masks the API key
        finally:
            hook.close()

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

        self._lineage = None
        options = RunOptions(
            chunk_rows=int(self.chunk_rows), dry_run=_to_bool(self.dry_run),
            source_headers=source_auth_headers(self.data_connection.auth),
            max_source_bytes=self.max_source_bytes,
        )
        self._mask_secret_variables()
        hook = HydroServerHook(self.hydroserver_conn_id)
        hydrocron = self._hydrocron_hook()
        try:
            client = hook.get_conn()
            host = self.asset_host or hydroserver_host(client.url)
            self._lineage = {"host": host, "hydrocron_url": hydrocron.get_conn().base_url
                             if hydrocron is not None else None, "summary": None}
            summary = run_ingestion(
                client, self.data_connection, self.mappings, window=self._window(context),
                task_variables=self.task_variables, start_time=self.start_time, options=options,
                source=self._hydrocron_source(hydrocron),
            )
        except IngestionFailed as exc:
            if self._lineage is not None:
                self._lineage["summary"] = exc.summary
                self._keep_unannounced(context, exc.summary)
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
        self._lineage["summary"] = summary
        self._announce(context, summary, host)
        return summary

    # -- assets ---------------------------------------------------------------------------------

    def _announce(self, context: Mapping[str, Any], summary: Mapping[str, Any],
                  host: str) -> None:
        """Add an asset event to each alias outlet for every datastream whose rows this run
        changed (none on a dry run or when nothing was new), and for those an earlier, failed
        try of this task instance changed (:meth:`_keep_unannounced`); Airflow records them when
        the task succeeds, and DAGs scheduled on those datastreams' assets run."""
        aliases = [o for o in self.outlets or () if isinstance(o, AssetAlias)]
        events = context.get("outlet_events")
        if not aliases or events is None:
            return
        earlier = self._unannounced(context)
        extras = _with_changes(earlier, summary)
        if not extras:
            why = "a dry run" if summary.get("dry_run") else "no datastream received rows"
            log.info("No asset event: %s", why)
            return
        unknown = []
        for datastream_id, extra in extras.items():
            if not all(self._add_event(events[alias], host, datastream_id, extra)
                       for alias in aliases):
                unknown.append(datastream_id)
        announced = [d for d in extras if d not in unknown]
        if announced:
            log.info("Asset events for %d datastream%s: %s", len(announced),
                     "" if len(announced) == 1 else "s",
                     ", ".join(datastream_uri(host, d) for d in announced))
        if unknown:
            log.info("No asset event for %s: no DAG declares or schedules on %s",
                     ", ".join(datastream_uri(host, d) for d in unknown),
                     "it" if len(unknown) == 1 else "them")
        if earlier:
            log.info("Of them, rows written by an earlier try of this task: %s",
                     ", ".join(earlier))
            self._store(context, None)

    @staticmethod
    def _add_event(accessor: Any, host: str, datastream_id: str, extra: dict[str, Any]) -> bool:
        """Add a datastream's event to an alias; False when Airflow knows no asset with its URI.

        The event targets the asset Airflow has under that URI (``Asset.ref(uri=...)``), which
        a DAG scheduled on the datastream declares, whatever name it gave it. An asset no DAG
        declares has no consumer, and gets no event: Airflow 3.3 would create it while
        recording the event, and two runs of a task doing so at the same time (a backfill) make
        the second one's success fail on a unique key. Outside a task runner (a test calling
        ``execute``) the asset is added as is.
        """
        uri = datastream_uri(host, datastream_id)
        try:
            accessor.add(Asset.ref(uri=uri), extra=extra)
        except AirflowRuntimeError as exc:
            if str(getattr(getattr(exc.error, "error", None), "value", "")) == "ASSET_NOT_FOUND":
                return False
            raise
        except ImportError:  # no task runner, no Airflow database to resolve the URI in
            accessor.add(datastream_asset(host, datastream_id), extra=extra)
        return True

    def _keep_unannounced(self, context: Mapping[str, Any], summary: Mapping[str, Any]) -> None:
        """A failed try: keep the events of the datastreams whose rows it changed anyway (in
        Airflow's task state store, which retries of this task instance share), for the try
        that succeeds to announce -- a retry finds those rows stored and loads nothing there."""
        if not any(isinstance(o, AssetAlias) for o in self.outlets or ()):
            return
        if changed_datastreams(summary):
            self._store(context, {"events": _with_changes(self._unannounced(context), summary)})

    def _unannounced(self, context: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        store = context.get("task_state_store")
        if store is None:
            return {}
        try:
            kept = store.get(UNANNOUNCED_KEY)
        except Exception as exc:  # announcing this try's rows still works
            log.warning("Could not read the rows earlier tries wrote (%s): %s",
                        type(exc).__name__, exc)
            return {}
        events = kept.get("events") if isinstance(kept, dict) else None
        return dict(events) if isinstance(events, dict) else {}

    def _store(self, context: Mapping[str, Any], value: dict[str, Any] | None) -> None:
        store = context.get("task_state_store")
        if store is None:
            return
        try:
            if value is None:
                store.delete(UNANNOUNCED_KEY)
            else:
                store.set(UNANNOUNCED_KEY, value)
        except Exception as exc:
            log.warning("Could not %s the rows this try wrote for its retry (%s): %s",
                        "forget" if value is None else "keep", type(exc).__name__, exc)

    # -- Hydrocron ------------------------------------------------------------------------------

    def _hydrocron_hook(self) -> Any:
        """The HydrocronHook of a HYDROCRON payload (None otherwise), limited to this instance's
        share of the request rate."""
        payload = self.data_connection.payload
        if payload.type != "HYDROCRON":
            return None
        from hydroserver_provider.hooks.hydrocron import HydrocronHook
        from hydroserver_provider.sources.ratelimit import shared_limiter

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

    # -- OpenLineage ----------------------------------------------------------------------------

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """What this run read and wrote, for OpenLineage (``apache-airflow-providers-openlineage``,
        imported only here): the input is the source -- its URL with the task's own values
        filled in, the run's dates left as placeholders and every secret shown as ``***``, or the
        Hydrocron feature time series --, the outputs are the datastreams
        (``hydroserver://<host>``, ``datastreams/<id>``) with the rows this run wrote. A dry run
        writes nothing and reports no output. Also used on failure: the rows written before it.
        """
        from airflow.providers.common.compat.openlineage.facet import (
            InputDataset,
            OutputDataset,
            OutputStatisticsOutputDatasetFacet,
        )
        from airflow.providers.openlineage.extractors import OperatorLineage

        from hydroserver_provider.assets import output_dataset

        facts = self._lineage or {}
        summary: Mapping[str, Any] = facts.get("summary") or {}
        source = self._source_dataset(facts, summary)
        inputs = [InputDataset(namespace=source[0], name=source[1])] if source else []
        outputs = []
        host = facts.get("host") or self.asset_host
        if host and not summary.get("dry_run") and not _to_bool(self.dry_run):
            outcomes = {d["datastream_id"]: d for d in summary.get("datastreams") or ()}
            for datastream_id in dict.fromkeys(m.target_datastream_id for m in self.mappings):
                namespace, name = output_dataset(datastream_uri(host, datastream_id))
                outcome = outcomes.get(datastream_id)
                facets: dict[str, Any] = {}
                if outcome:  # the rows this run wrote (0: it checked and found nothing new)
                    facets["outputStatistics"] = OutputStatisticsOutputDatasetFacet(
                        rowCount=int(outcome.get("loaded") or 0))
                outputs.append(OutputDataset(namespace=namespace, name=name, outputFacets=facets))
        return OperatorLineage(inputs=inputs, outputs=outputs)

    def _source_dataset(self, facts: Mapping[str, Any],
                        summary: Mapping[str, Any]) -> tuple[str, str] | None:
        from hydroserver_provider.assets import (
            hydrocron_dataset,
            source_dataset,
            source_lineage_url,
        )

        connection = self.data_connection
        payload = connection.payload
        if payload.type == "HYDROCRON":
            from hydroserver_provider.sources.hydrocron.client import DEFAULT_URL

            read = dict(summary.get("hydrocron") or {})
            variables = self.task_variables if isinstance(self.task_variables, Mapping) else {}
            feature_id = self.feature_id if self.feature_id not in (None, "", "None") else None
            read.setdefault("feature", payload.feature)
            read.setdefault("feature_id", feature_id or payload.feature_id
                            or variables.get("feature_id"))
            read.setdefault("collection", payload.collection_name)
            return hydrocron_dataset(facts.get("hydrocron_url") or DEFAULT_URL, read)
        if not connection.source_url:
            return None
        from hydroserver_provider.sources.placeholders import secret_placeholder_names

        variables = self.task_variables if isinstance(self.task_variables, Mapping) else {}
        values = {name: variables.get(name) for name in connection.per_task_names()}
        url = source_lineage_url(connection.source_url, values,
                                 secret_placeholder_names(connection.source_url))
        return source_dataset(url)
