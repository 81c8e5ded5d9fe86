"""Hydrocron: one DAG fanning out over many features, one mapped task instance each."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hydroserver_provider.definitions import Task

__all__ = ["FAN_OUT_CONCURRENCY", "MAP_INDEX_TEMPLATE", "fan_out_concurrency",
           "fan_out_features", "ingest_task"]


FAN_OUT_CONCURRENCY = 4
"""Mapped Hydrocron instances running at once when the task sets no ``max_active_tasks``."""

MAP_INDEX_TEMPLATE = "{{ task.feature_id }}"
"""How a mapped instance is labelled in the UI: its feature id."""


def fan_out_features(task: Task) -> tuple[str, ...]:
    """The features a Hydrocron task fans out over, one mapped instance each (its mappings name
    them); empty for a task that runs as one instance."""
    if task.data_connection.payload.type != "HYDROCRON":
        return ()
    return task.hydrocron_features


def ingest_task(operator_class: Any, task: Task, dag_settings: Mapping[str, Any],
                 **kwargs: Any) -> Any:
    """The ingest task: one operator, or one operator mapped over :func:`fan_out_features`."""
    features = fan_out_features(task)
    if not features:
        return operator_class(**kwargs)
    return _hydrocron_fan_out(operator_class, task, features, dag_settings, kwargs)


def fan_out_concurrency(features: int, dag_settings: Mapping[str, Any]) -> int:
    """How many mapped instances run at once: ``max_active_tasks``, else
    :data:`FAN_OUT_CONCURRENCY`, never more than there are features."""
    return max(1, min(features, int(dag_settings.get("max_active_tasks")
                                    or FAN_OUT_CONCURRENCY)))


def _hydrocron_fan_out(operator_class: Any, task: Task, features: tuple[str, ...],
                       dag_settings: Mapping[str, Any], kwargs: dict[str, Any]) -> Any:
    """``ingest`` mapped over the features: each instance loads one feature into its datastreams.

    Hydrocron takes one feature per request, so a fan-out sends many requests; the task's rate
    (the payload's ``requests_per_second``, else the Hydrocron connection's) is for all of them
    together. Airflow runs each mapped instance in its own process, so a limiter cannot be
    shared: at most ``share`` instances run at once (``max_active_tis_per_dag``) and each paces
    itself at ``rate / share`` (``hydrocron_rate_share``, see the operator). Other DAGs using the
    same endpoint are not counted: give them a common pool if that matters.
    """
    from hydroserver_provider.assets import datastream_alias

    share = fan_out_concurrency(len(features), dag_settings)
    mappings = kwargs.pop("mappings")
    # One alias for every instance, declared with the DAG: at run time each instance adds the
    # assets of its own datastreams that received rows (it never changes its outlets).
    outlets = kwargs.pop("outlets", None) or [
        datastream_alias(getattr(kwargs.get("dag"), "dag_id", "adhoc"), kwargs["task_id"])]
    per_feature = [{"feature_id": feature,
                    "mappings": [m.model_dump() for m in mappings if m.feature_id == feature]}
                   for feature in features]
    return operator_class.partial(
        **kwargs, outlets=outlets, hydrocron_rate_share=share, max_active_tis_per_dag=share,
        map_index_template=MAP_INDEX_TEMPLATE,
    ).expand_kwargs(per_feature)

