"""The one place that knows where Airflow 3 keeps the authoring API.

Everything Airflow-facing imports from here, so a move between Airflow releases is a one-file fix.
"""

from __future__ import annotations

from airflow.sdk import (  # noqa: F401  (re-exported)
    DAG,
    Asset,
    BaseHook,
    BaseOperator,
    Connection,
    CronDataIntervalTimetable,
    DeltaDataIntervalTimetable,
    Param,
    Variable,
    get_current_context,
    get_parsing_context,
)

try:  # Airflow >= 3.1
    from airflow.sdk.log import mask_secret
except ImportError:  # pragma: no cover - Airflow 3.0
    from airflow.sdk.execution_time.secrets_masker import mask_secret  # type: ignore[no-redef]

try:
    from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException
except ImportError:  # pragma: no cover - older layout
    from airflow.exceptions import (  # type: ignore[no-redef]
        AirflowFailException,
        AirflowNotFoundException,
    )
