"""Command line for the local HydroServer.

``python -m hydroserver_provider.testing serve [--port P] [--api-key K] [--db FILE] ...`` starts a
:class:`~hydroserver_provider.testing.LocalHydroServer`, prints one JSON line with what a client
needs (``url``, ``api_key``, ``workspace_id``, ``email``, ``password``; ``datastreams``, name ->
id, with ``--datastream``; ``seed`` ids with ``--seed-demo``) and serves until SIGINT or SIGTERM.

``--datastream NAME[:UNIT][=ID]`` (repeatable) creates a datastream in the default workspace --
with a fixed id when given, so definition files naming their datastreams work unchanged. A
datastream that already exists (same id, or same name when no id is given: a ``--db`` file kept
from an earlier start) is reused, not duplicated.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hydroserver_provider.testing",
        description="A local HydroServer 1.11.2 stand-in for offline tests and demos.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve until SIGINT/SIGTERM")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    serve.add_argument("--api-key", default=None, help="fixed Editor API key (default: random)")
    serve.add_argument(
        "--db", default=None, metavar="FILE", help="SQLite file to keep data in (default: memory)"
    )
    serve.add_argument(
        "--api-key-cost",
        type=float,
        default=0.0,
        metavar="S",
        help="seconds slept per API-key request (the real server spends ~1 s)",
    )
    serve.add_argument("--bearer-cost", type=float, default=0.0, metavar="S")
    serve.add_argument(
        "--row-cost", type=float, default=0.0, metavar="S", help="seconds per bulk-created row"
    )
    serve.add_argument(
        "--throttle", type=int, default=None, metavar="N", help="requests/s per client (real: 20)"
    )
    serve.add_argument("--email", default="hydro@example.org")
    serve.add_argument("--password", default="local-hydroserver")
    serve.add_argument(
        "--datastream",
        action="append",
        default=[],
        type=datastream_spec,
        metavar="NAME[:UNIT][=ID]",
        help="create a datastream (repeatable), e.g. 'Water level:ft' or "
        "'Discharge:ft^3/s=5f2b0c1e-...' for a fixed id; its id is printed under \"datastreams\"",
    )
    serve.add_argument(
        "--public",
        action="store_true",
        help="make the --datastream datastreams public (readable without credentials)",
    )
    serve.add_argument(
        "--seed-demo",
        action="store_true",
        help="add two datastreams, a data connection and an ETL task",
    )
    return parser


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def datastream_spec(text: str) -> tuple[str, str, str | None]:
    """``NAME[:UNIT][=ID]`` -> ``(name, unit, id or None)``; the unit defaults to ``Unknown``."""
    rest, ident = text, None
    if "=" in text:
        rest, ident = text.rsplit("=", 1)
        if not _UUID.fullmatch(ident.strip()):
            raise argparse.ArgumentTypeError(
                f"{text!r}: the id after '=' must be a UUID such as "
                "5f2b0c1e-0000-4000-8000-000000000001")
        ident = ident.strip().lower()
    name, _, unit = rest.partition(":")
    if not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME[:UNIT][=ID], e.g. "
                                         "'Water level:ft'")
    return name.strip(), unit.strip() or "Unknown", ident


def create_datastreams(hs, specs: Sequence[tuple[str, str, str | None]], *,
                       public: bool = False) -> dict[str, str]:
    """The ``--datastream`` datastreams, name -> id: created, or reused when they exist."""
    from hydroserver_provider.hydroserver.client import Credentials, HydroServerClient

    names = [name for name, _, _ in specs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SystemExit(f"--datastream: each name once, found {', '.join(map(repr, repeated))} "
                         "more than once")
    with HydroServerClient(hs.url, Credentials(api_key=hs.api_key)) as client:
        existing = client.list_datastreams(workspace_id=hs.workspace_id)
    by_id = {d["id"]: d for d in existing}
    by_name = {d["name"]: d["id"] for d in existing}
    created: dict[str, str] = {}
    for name, unit, ident in specs:
        if ident is not None and ident in by_id:
            created[name] = ident
        elif ident is None and name in by_name:
            created[name] = by_name[name]
        else:
            created[name] = hs.create_datastream(name=name, unit=unit, is_private=not public,
                                                 datastream_id=ident)
    return created


def seed_demo(hs) -> dict:
    """Add demo content: an empty and a filled datastream plus a CSV data connection and task."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    level = hs.create_datastream(name="Gage height", unit="ft", is_private=False)
    temperature = hs.create_datastream(
        name="Water temperature",
        unit="degC",
        is_private=False,
        observations=[(start + timedelta(hours=h), 4.0 + (h % 24) / 10) for h in range(48)],
    )
    connection = hs.create_data_connection(
        {
            "name": "Demo CSV feed",
            "sourceUrl": "http://127.0.0.1:1/demo.csv?start={start}",
            "workspaceId": hs.workspace_id,
            "timezoneType": "offset",
            "timezone": "+0000",
            "payload": {
                "type": "CSV",
                "timestampKey": "timestamp",
                "headerRow": 1,
                "dataStartRow": 2,
                "delimiter": ",",
            },
            "placeholderVariables": [
                {
                    "name": "start",
                    "type": "latest_observation_timestamp",
                    "timestampFormat": "%Y-%m-%dT%H:%M:%SZ",
                }
            ],
        }
    )
    task = hs.create_task(
        {
            "name": "Demo task",
            "dataConnectionId": connection,
            "schedule": {"interval": 15, "intervalPeriod": "minutes", "enabled": True},
            "mappings": [
                {"sourceIdentifier": "stage", "targetDatastreamId": level},
                {"sourceIdentifier": "temp", "targetDatastreamId": temperature},
            ],
        }
    )
    return {
        "datastreams": {"Gage height": level, "Water temperature": temperature},
        "data_connection_id": connection,
        "task_id": task,
    }


def serve(args: argparse.Namespace) -> int:
    from hydroserver_provider.testing.hydroserver import LocalHydroServer

    hs = LocalHydroServer(
        host=args.host,
        port=args.port,
        db_path=args.db,
        api_key=args.api_key,
        api_key_cost=args.api_key_cost,
        bearer_cost=args.bearer_cost,
        row_cost=args.row_cost,
        throttle=args.throttle,
        email=args.email,
        password=args.password,
    )
    stop = threading.Event()

    def _on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    with hs:
        info: dict[str, Any] = {
            "url": hs.url,
            "api_key": hs.api_key,
            "workspace_id": hs.workspace_id,
            "email": hs.email,
            "password": hs.password,
        }
        if args.datastream:
            info["datastreams"] = create_datastreams(hs, args.datastream, public=args.public)
        if args.seed_demo:
            info["seed"] = seed_demo(hs)
        sys.stdout.write(json.dumps(info) + "\n")
        sys.stdout.flush()
        while not stop.wait(0.2):
            pass
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return 2  # pragma: no cover - argparse requires a command


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
