"""``hydroserver-airflow validate PATH...``: every problem of some definition files, at once.

The same checks as the DAG file and its import-error report: each file on its own (the loader:
every definition, Airflow settings included, each problem once -- a task whose data connection
is broken still gets its own problems listed), then across everything given (task names and
ids, datastreams written by two tasks, colliding DAG ids, digest DAGs). Meant for CI and for
editing: exit code 1 and one line per problem, or 0 and one ``OK`` line.

Then what the definitions need from Airflow -- every connection, variable and pool, with what
uses it (:mod:`hydroserver_provider.factory.requirements`) -- and whether Airflow has it, as far
as this machine can tell without the network: environment variables and the metadata database
(``--no-database``: only the environment). Missing ones are listed with how to create them and
summed up on the last line; ``--strict`` makes them problems (exit code 1).
"""

from __future__ import annotations

import argparse
import sys

from hydroserver_provider.cli.common import reports_errors
from hydroserver_provider.text import plural


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate", help="check definition files and folders; list every problem",
        description="Check definition files (YAML or JSON) and folders of them, as the DAG file "
                    "would load them together. Prints every problem (file, task, field, what was "
                    "expected and found) and exits 1, or prints one OK line and exits 0.")
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="a definition file or a folder of them")
    parser.add_argument("--strict", action="store_true",
                        help="an Airflow connection, variable or pool the definitions need and "
                             "Airflow does not have is a problem (exit code 1)")
    parser.add_argument("--no-database", action="store_true",
                        help="look for connections, variables and pools in the environment "
                             "only, not in Airflow's metadata database")
    parser.set_defaults(func=run)


@reports_errors
def run(args: argparse.Namespace) -> int:
    from hydroserver_provider.definitions.files import load_definition_paths
    from hydroserver_provider.factory import build_loaded

    files, errors = load_definition_paths(args.paths)
    problems = build_loaded(files, errors, build=False).errors
    if not files and not problems:
        print(f"error: no .yaml, .yml or .json definition files in {', '.join(args.paths)}",
              file=sys.stderr)
        return 1
    for problem in problems:
        print(f"- {problem}")
    needs = _needs(files, database=not args.no_database)
    if needs:
        print("Airflow connections, variables and pools these definitions need:")
        for line, _ in needs:
            print(f"  - {line}")
    absent = sum(1 for _, state in needs if state == "missing")
    unknown = sum(1 for _, state in needs if state == "unknown")
    suffix = (f"; {plural(absent, 'Airflow setting')} missing" if absent else "") + (
        f"; {plural(unknown, 'Airflow setting')} not checked" if unknown else "")
    if problems or (args.strict and absent):
        count = len(problems) + (absent if args.strict else 0)
        print(f"{plural(count, 'problem')} ({plural(len(files), 'file')} checked){suffix}")
        return 1
    tasks = sum(len(f.tasks) for f in files)
    connections = sum(len(f.data_connections) for f in files)
    print(f"OK: {plural(len(files), 'file')}, {plural(tasks, 'task')}, "
          f"{plural(connections, 'data connection')}{suffix}")
    return 0


def _needs(files: list, *, database: bool) -> list[tuple[str, str]]:
    """One line per connection, variable and pool the definitions need, and its state
    (``found``, ``missing``, ``unknown``)."""
    from hydroserver_provider.factory.requirements import definition_needs, look_up

    needs = definition_needs(files)
    found = look_up([n.requirement for n in needs], database=database)
    lines = []
    for need in needs:
        requirement = need.requirement
        state = found[(requirement.kind, requirement.key)]
        if state.state == "found":
            status = f"found ({state.where})"
        elif state.state == "missing":
            status = f"MISSING: {requirement.how_to_create()}"
        else:
            status = f"not checked ({state.where}); {requirement.how_to_create()}"
        lines.append((f"{requirement.label}, for {need.uses_text()}: {status}", state.state))
    return lines
