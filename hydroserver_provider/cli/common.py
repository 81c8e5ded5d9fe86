"""What the ``hydroserver-airflow`` subcommands share: reaching HydroServer, errors, tables.

Secrets never reach the terminal: an API key is read from an Airflow connection or from
``HYDROSERVER_API_KEY`` (``--api-key`` only as a last resort), and nothing here prints it.

Airflow connections and variables: Airflow 3 keeps a plain process such as this command away
from its metadata database -- the Task SDK finds only ``AIRFLOW_CONN_*`` / ``AIRFLOW_VAR_*``
environment variables and configured secrets backends. A connection created in the UI or with
``airflow connections add`` lives in that database, so :func:`from_metadata_database` reads it
there (as Airflow's own CLI does, with this ``AIRFLOW_HOME``'s configuration) and hands it to this
process only, as the environment variable the Task SDK reads.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from hydroserver_provider.defaults import HYDROSERVER_CONN_ID
from hydroserver_provider.timestamps import parse_instant

API_KEY_ENV = "HYDROSERVER_API_KEY"
DEFAULT_CONN_ID = HYDROSERVER_CONN_ID


class CommandError(Exception):
    """A problem the user can fix, printed as ``error: <message>`` with exit code 1."""


def reports_errors(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace],
                                                                           int]:
    """Turn the provider's own errors into one ``error:`` line and exit code 1 (no traceback:
    these messages already say what was expected, what was found and where)."""

    @functools.wraps(func)
    def wrapper(args: argparse.Namespace) -> int:
        from hydroserver_provider.errors import HydroServerProviderError

        try:
            return func(args)
        except (CommandError, HydroServerProviderError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    return wrapper


@contextlib.contextmanager
def quiet_logs(*names: str) -> Iterator[None]:
    """Keep routine INFO logs of the named loggers off the terminal while a command runs: it
    prints its own account of what happened (warnings and errors still show)."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def parse_iso_moment(text: str) -> datetime:
    """An ISO 8601 date or date-time, ``Z`` accepted, taken as UTC without an offset; raises
    ValueError (each command words the error for its own option)."""
    moment = parse_instant(text)
    if moment is None:
        raise ValueError("an empty date")
    return moment


# --------------------------------------------------------------------------------------------
# HydroServer credentials
# --------------------------------------------------------------------------------------------


def add_hydroserver_options(parser: argparse.ArgumentParser, *, conn_id_help: str) -> None:
    group = parser.add_argument_group(
        "HydroServer", "an Airflow connection (AIRFLOW_CONN_<ID> environment variables work "
        f"too), or a URL with an API key from ${API_KEY_ENV}")
    group.add_argument("--conn-id", metavar="ID", help=conn_id_help)
    group.add_argument("--url", help="HydroServer URL instead of an Airflow connection")
    group.add_argument("--api-key", help=f"API key for --url (prefer ${API_KEY_ENV}: a command "
                                         "line is visible to other users of the machine)")


def hydroserver_client(args: argparse.Namespace,
                       default_conn_id: str = DEFAULT_CONN_ID) -> tuple[Any, str]:
    """A HydroServer client from ``--url`` (+ API key) or from an Airflow connection.

    Returns ``(client, description)``; the description names the URL or the connection id,
    never a credential.
    """
    if args.url:
        if args.conn_id:
            raise CommandError("give either --conn-id or --url, not both")
        api_key = args.api_key or os.environ.get(API_KEY_ENV)
        if not api_key:
            raise CommandError(f"--url needs an API key: set {API_KEY_ENV} (or pass --api-key)")
        from hydroserver_provider.hydroserver.client import Credentials, HydroServerClient

        client = HydroServerClient(args.url, Credentials(api_key=api_key))
        return client, client.url
    if args.api_key:
        raise CommandError("--api-key goes with --url; an Airflow connection has its own key")
    from hydroserver_provider.errors import HydroServerProviderError
    from hydroserver_provider.hooks.hydroserver import HydroServerHook

    conn_id = args.conn_id or default_conn_id
    for attempt in (1, 2):
        try:
            client = HydroServerHook(conn_id).get_conn()  # a missing connection fails here
            break
        except HydroServerProviderError:
            raise
        except Exception as exc:  # AirflowNotFoundException and friends
            if attempt == 1 and from_metadata_database(connection=conn_id):
                continue
            raise CommandError(
                f"cannot read the Airflow connection '{conn_id}' ({type(exc).__name__}: {exc}); "
                f"create it (Airflow UI: Admin > Connections, or airflow connections add, with "
                f"the same AIRFLOW_HOME as this command; or AIRFLOW_CONN_{conn_id.upper()}) or "
                f"use --url with {API_KEY_ENV}") from None
    return client, f"{client.url} (Airflow connection '{conn_id}')"


def from_metadata_database(*, connection: str | None = None,
                           variable: str | None = None) -> bool:
    """Read an Airflow connection or variable from Airflow's metadata database and make it
    visible to this process (``AIRFLOW_CONN_<ID>`` / ``AIRFLOW_VAR_<KEY>``); False when it is
    not there or the database cannot be read (no Airflow set up here: nothing to find)."""
    loggers = [logging.getLogger(name) for name in ("airflow", "sqlalchemy")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:  # a failed lookup is reported by the caller, in its own words
        logger.setLevel(logging.CRITICAL)
    try:
        if connection is not None:
            from airflow.models.connection import Connection as StoredConnection

            stored = StoredConnection.get_connection_from_secrets(connection)
            os.environ[f"AIRFLOW_CONN_{connection.upper()}"] = stored.as_json()
        if variable is not None:
            from airflow.models.variable import Variable as StoredVariable

            value = StoredVariable.get(variable, default_var=None)
            if value is None:
                return False
            os.environ[f"AIRFLOW_VAR_{variable.upper()}"] = value
    except Exception:  # not found, no database, not migrated: the caller reports it
        return False
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
    return True
