"""What the ``hydroserver-airflow`` subcommands share: reaching HydroServer, errors, tables.

Secrets never reach the terminal: an API key is read from an Airflow connection or from
``HYDROSERVER_API_KEY`` (``--api-key`` only as a last resort), and nothing here prints it.
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
    from hydroserver_provider.hooks.hydroserver import HydroServerHook

    conn_id = args.conn_id or default_conn_id
    try:
        client = HydroServerHook(conn_id).get_conn()  # a missing connection fails here
    except Exception as exc:  # AirflowNotFoundException and friends
        from hydroserver_provider.errors import HydroServerProviderError

        if isinstance(exc, HydroServerProviderError):
            raise
        raise CommandError(
            f"cannot read the Airflow connection '{conn_id}' ({type(exc).__name__}: {exc}); "
            f"create it (airflow connections add, or AIRFLOW_CONN_{conn_id.upper()}) or use "
            f"--url with {API_KEY_ENV}") from None
    return client, f"{client.url} (Airflow connection '{conn_id}')"
