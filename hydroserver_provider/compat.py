"""The one place that knows where Airflow keeps the authoring API (3.3, the version CI tests).

Everything Airflow-facing imports from here, so a move between Airflow releases is a one-file fix.
"""

from __future__ import annotations

from airflow.sdk import (
    DAG,
    Asset,
    AssetAlias,
    BaseHook,
    BaseNotifier,
    BaseOperator,
    Connection,
    CronDataIntervalTimetable,
    DeltaDataIntervalTimetable,
    Param,
    Variable,
    get_parsing_context,
)
from airflow.sdk.configuration import conf as airflow_conf
from airflow.sdk.exceptions import (
    AirflowFailException,
    AirflowNotFoundException,
    AirflowRuntimeError,
)
from airflow.sdk.log import mask_secret, redact

__all__ = [
    "DAG",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowRuntimeError",
    "Asset",
    "AssetAlias",
    "BaseHook",
    "BaseNotifier",
    "BaseOperator",
    "Connection",
    "CronDataIntervalTimetable",
    "DeltaDataIntervalTimetable",
    "Param",
    "Variable",
    "airflow_conf",
    "airflow_plugin_base",
    "get_parsing_context",
    "mask_secret",
    "redact",
    "smtp_hook_class",
]


def smtp_hook_class() -> type:
    """Airflow's ``SmtpHook`` (apache-airflow-providers-smtp, installed with Airflow), imported
    only when an e-mail is sent."""
    try:
        from airflow.providers.smtp.hooks.smtp import SmtpHook
    except ImportError as exc:  # pragma: no cover - the provider ships with Airflow
        raise ImportError("sending e-mail needs apache-airflow-providers-smtp "
                          "(pip install apache-airflow-providers-smtp)") from exc
    return SmtpHook


def airflow_plugin_base() -> type:
    """Airflow's ``AirflowPlugin`` base class (the Task SDK's, which Airflow core accepts too),
    imported only by the provider's plugin module, which Airflow loads itself."""
    from airflow.sdk.plugins_manager import AirflowPlugin

    return AirflowPlugin
