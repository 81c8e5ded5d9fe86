"""``hydroserver-airflow validate PATH...``: every problem of some definition files, at once.

The same checks as the DAG file and its import-error report: each file on its own (the loader:
every definition, Airflow settings included, each problem once -- a task whose data connection
is broken still gets its own problems listed), then across everything given (task names and
ids, datastreams written by two tasks, colliding DAG ids, digest DAGs). Meant for CI and for
editing: exit code 1 and one line per problem, or 0 and one ``OK`` line.
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
    if problems:
        for problem in problems:
            print(f"- {problem}")
        print(f"{plural(len(problems), 'problem')} ({plural(len(files), 'file')} checked)")
        return 1
    tasks = sum(len(f.tasks) for f in files)
    connections = sum(len(f.data_connections) for f in files)
    print(f"OK: {plural(len(files), 'file')}, {plural(tasks, 'task')}, "
          f"{plural(connections, 'data connection')}")
    return 0
