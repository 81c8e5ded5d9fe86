"""The trigger form of every task DAG: a window to (re)load, dry run, rows per request."""

from __future__ import annotations

from typing import Any

from hydroserver_provider.compat import Param

__all__ = ["ISO_DATETIME_PATTERN", "trigger_params"]

# An ISO 8601 date-time (the trigger form's date-time picker, or typed by hand). jsonschema checks
# ``format: date-time`` only when rfc3339-validator is installed, which Airflow does not require,
# so the pattern is what actually rejects a bad date.
ISO_DATETIME_PATTERN = (
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[T ]([01]\d|2[0-3]):[0-5]\d"
    r"(:[0-5]\d(\.\d{1,9})?)?(Z|z|[+-]([01]\d|2[0-3]):?[0-5]\d)?$"
)


def trigger_params(chunk_rows: int, windowed: bool, manual: bool) -> dict[str, Param]:
    """The trigger form. Airflow's form marks a field required unless its JSON-schema type
    includes ``null``, and refuses to create a run whose params do not validate (HTTP 400, the
    form shows why): so the window is required exactly when the task cannot run without one (a
    manual-only task whose URL needs a window), and ``dry_run`` never is."""
    required = windowed and manual
    if not windowed:
        when = ("This task loads incrementally; give a window to reload that period instead "
                "(its stored rows are made equal to the source's). ")
    elif manual:
        when = "Required: this task has no schedule and its URL needs a window. "
    else:
        when = "Leave empty for the run's own data interval. "
    # JSON-schema keywords, passed to Param as keyword arguments
    window: dict[str, Any] = {"type": "string" if required else ["null", "string"],
                              "format": "date-time", "pattern": ISO_DATETIME_PATTERN}
    return {
        "window_start": Param(None, title="Window start",
                              description=when + "Start of the period to (re)load, ISO 8601 "
                                                 "(UTC unless an offset is given).", **window),
        "window_end": Param(None, title="Window end",
                            description=when + "End of the period to (re)load, ISO 8601.",
                            **window),
        "dry_run": Param(False, type=["boolean", "null"], title="Dry run",
                         description="Fetch, parse and compare, but write nothing to HydroServer. "
                                     "The run list shows it in the run's Conf (dry_run: true)."),
        "chunk_rows": Param(chunk_rows, type="integer", minimum=1, title="Rows per request",
                            description="Observations sent to HydroServer per request."),
    }

