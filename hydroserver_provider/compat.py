"""The one place that knows where Airflow 3 keeps the authoring API.

Everything Airflow-facing imports from here, so a move between Airflow releases is a one-file fix.
"""

from __future__ import annotations

from airflow.sdk import (  # noqa: F401  (re-exported)
    DAG,
    Asset,
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

try:  # Airflow >= 3.1
    from airflow.sdk.log import mask_secret, redact
except ImportError:  # pragma: no cover - Airflow 3.0
    from airflow.sdk.execution_time.secrets_masker import (  # type: ignore[no-redef]
        mask_secret,
        redact,
    )

try:  # Airflow >= 3.1
    from airflow.sdk.configuration import conf as airflow_conf
except ImportError:  # pragma: no cover - Airflow 3.0
    from airflow.configuration import conf as airflow_conf  # type: ignore[no-redef]

try:
    from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException
except ImportError:  # pragma: no cover - older layout
    from airflow.exceptions import (  # type: ignore[no-redef]
        AirflowFailException,
        AirflowNotFoundException,
    )


def smtp_hook_class() -> type:
    """Airflow's ``SmtpHook`` (apache-airflow-providers-smtp, installed with Airflow), imported
    only when an e-mail is sent."""
    try:
        from airflow.providers.smtp.hooks.smtp import SmtpHook
    except ImportError as exc:  # pragma: no cover - the provider ships with Airflow
        raise ImportError("sending e-mail needs apache-airflow-providers-smtp "
                          "(pip install apache-airflow-providers-smtp)") from exc
    return SmtpHook
