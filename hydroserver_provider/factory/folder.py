"""Folders of definition files -> DAGs, and how broken definitions surface.

A definition file (YAML or JSON, hydroserverpy vocabulary, see
:mod:`hydroserver_provider.definitions`) holds data connections and tasks. Every *valid* task
becomes a DAG with one task, ``ingest``
(:class:`~hydroserver_provider.operators.ingest.HydroIngestOperator`); the pieces of a DAG are
built by the modules beside this one (ids, settings, schedules, params, docs, Hydrocron fan-out).

How broken definitions surface
    A broken definition must show as an Airflow *import error* naming the file, the task and the
    field, while every other definition keeps loading **and keeps being scheduled**. Airflow 3.3
    ties import errors to a *Python file*: ``DagBag.process_file`` records a DAG that fails
    ``validate()``/``bag_dag`` under the DAG file's path and keeps that file's other DAGs, which
    looks right in a ``DagBag`` -- but when the dag-processor stores the result,
    ``airflow.dag_processing.collection._update_import_errors`` marks every ``DagModel`` whose
    ``relative_fileloc`` is that file ``is_stale=True, has_import_errors=True``, and the scheduler
    (``DagModel.dags_needing_dagruns``) skips such DAGs (the UI hides them too). Measured with
    ``airflow dag-processor -n 1`` on 3.3.2: one broken DAG in a factory file stales all of them.

    So the errors are reported from a *second, DAG-less* file: :func:`register_dags` (used by
    ``dags/hydroserver_ingestion.py``) builds every valid task and only logs the problems, and
    :func:`raise_definition_errors` (used by ``dags/hydroserver_definition_check.py``) raises one
    :class:`~hydroserver_provider.errors.DefinitionErrors` listing every problem as
    ``<file>: task '<name>': field '<field>': ...``. That file owns no DAG, so its import error
    stales nothing, and it clears itself once the definitions are fixed.

    The DAGs a broken definition keeps out of Airflow vanish from its UI, marked only
    "Deactivated"; so the import error also names them (:class:`DefinitionCheckFailed`): the
    DAG ids the file's tasks ask for that are not built -- read from the file, or, when it does
    not parse at all, from the task names in its text. Inside Airflow's dag-processor it also
    names the Airflow connections and variables the loaded definitions need and Airflow lacks
    (:mod:`.requirements`), so a new DAG's first failure is not the first sign of them; a
    ``DagBag`` in a test, with no Airflow to ask, skips that.

Parse-time cost
    No pandas, requests, numpy or ingestion-pipeline import here; a definition's pydantic models
    are handed to the operator as they are (no copies). When Airflow runs one task it sets
    ``get_parsing_context().dag_id``: then only the definition files are read, and only the task
    with that DAG id (and the data connections of its file) is validated and built. The garbage
    collector pauses while a folder is processed (:func:`_gc_paused`). Measured on 2 cores with
    5,000 tasks in 50 files: about 3 s for the dag-processor's full parse, 0.6 s for a worker's
    single DAG (``docs/benchmarks.md``).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydroserver_provider.compat import DAG, get_parsing_context
from hydroserver_provider.errors import DefinitionError, DefinitionErrors
from hydroserver_provider.factory.build import build_dag, location, reset_config_cache
from hydroserver_provider.factory.ids import dag_id_for

if TYPE_CHECKING:
    from hydroserver_provider.definitions import Task
    from hydroserver_provider.definitions.files import DefinitionFile

__all__ = [
    "DEFINITIONS_DIR_ENV",
    "BuildResult",
    "DefinitionCheckFailed",
    "build_dags",
    "build_loaded",
    "definitions_folder",
    "raise_definition_errors",
    "register_dags",
]

log = logging.getLogger(__name__)

DEFINITIONS_DIR_ENV = "HYDROSERVER_DEFINITIONS_DIR"
"""Environment variable naming the definitions folder (overrides ``<dag file dir>/definitions``)."""


def definitions_folder(folder: str | os.PathLike[str] | None = None,
                       dag_file: str | os.PathLike[str] | None = None) -> Path:
    """Where the definitions are: ``folder``, else ``$HYDROSERVER_DEFINITIONS_DIR``, else
    ``definitions/`` next to ``dag_file`` (the DAG file calling the factory)."""
    if folder:
        return Path(folder)
    env = os.environ.get(DEFINITIONS_DIR_ENV)
    if env:
        return Path(env)
    if dag_file:
        return Path(dag_file).resolve().parent / "definitions"
    raise ValueError(f"no definitions folder: pass one, set {DEFINITIONS_DIR_ENV}, or pass the "
                     "DAG file whose definitions/ folder to use")



@dataclass
class BuildResult:
    """The DAGs built from a folder, by DAG id, and every problem found on the way."""

    dags: dict[str, DAG] = field(default_factory=dict)
    errors: list[DefinitionError] = field(default_factory=list)
    dag_ids: set[str] = field(default_factory=set)  # built, or that would be (build=False)

    def raise_errors(self) -> None:
        """Raise one :class:`DefinitionErrors` listing every problem, if there is any."""
        if self.errors:
            raise DefinitionErrors(self.errors)


def _build_into(result: BuildResult, task: Task, source: str, dag_id: str) -> None:
    try:
        result.dags[dag_id] = build_dag(task, source=source, dag_id=dag_id)
    except Exception as exc:  # Airflow refused the DAG: report it like a definition problem
        result.errors.append(DefinitionError(
            f"Airflow rejected the DAG: {type(exc).__name__}: {exc}",
            location=location(source, task.name)))


@contextlib.contextmanager
def _gc_paused():
    """No cyclic garbage collection while a folder is read and its DAGs built.

    Reading YAML and building DAGs allocates millions of small, long-lived objects, and every
    collection of the oldest generation walks all of them again: with 5,000 definitions that is
    half the parse time (measured: 5.9 s -> 3.0 s; a worker's single DAG 1.9 s -> 0.6 s; same
    peak memory). Collection resumes, as before, when the work is done.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def build_dags(folder: str | os.PathLike[str], *, only_dag_id: str | None = None,
               build: bool = True) -> BuildResult:
    """Load every definition file under ``folder`` and build one DAG per valid task.

    Never raises for a definition problem: a broken file, task or setting lands in
    ``result.errors`` (naming file, task and field) and every other task still gets its DAG.
    ``only_dag_id``: build just that DAG (what a worker needs; see
    :func:`~hydroserver_provider.definitions.files.load_one_task`).
    ``build=False``: only check -- every problem of the folder, no DAG objects.
    """
    reset_config_cache()  # the configuration may have changed since the last folder
    with _gc_paused():
        return _build_dags(Path(folder), only_dag_id, build)


def _build_dags(folder: Path, only_dag_id: str | None, build: bool) -> BuildResult:
    from hydroserver_provider.definitions.files import load_definitions, load_one_task

    if only_dag_id and build and not _is_digest_dag_id(only_dag_id):
        # A worker's fast path: only the task with this DAG id is validated and built, when
        # the definitions can tell that the full load would decide the same about it.
        loaded = load_one_task(folder, only_dag_id, dag_id_for)
        if loaded is not None:
            result = BuildResult(errors=list(loaded.errors))
            for task in loaded.tasks:
                _build_into(result, task, loaded.source, only_dag_id)
            return result
    files, errors = load_definitions(folder)
    return build_loaded(files, errors, only_dag_id=only_dag_id, build=build)


def build_loaded(files: list[DefinitionFile], errors: list[DefinitionError] | tuple = (), *,
                 only_dag_id: str | None = None, build: bool = True) -> BuildResult:
    """:func:`build_dags` for definition files already loaded (``load_definitions`` or
    ``load_definition_paths``, with their ``errors``): refuses tasks whose DAG ids collide, then
    builds the rest -- or, with ``build=False``, only collects the problems (what
    ``hydroserver-airflow validate`` reports)."""
    result = BuildResult(errors=list(errors))
    claims: dict[str, list[tuple[Task, str]]] = {}
    for loaded in files:
        for task in loaded.tasks:
            dag_id = dag_id_for(task.name, task.airflow.dag_id)
            claims.setdefault(dag_id, []).append((task, loaded.source))
    for dag_id, claimants in claims.items():
        if len(claimants) > 1:  # names differing only in punctuation, or an explicit dag_id
            for task, source in claimants:
                others = "; ".join(f"task '{t.name}' in {s}" for t, s in claimants
                                   if t is not task)
                result.errors.append(DefinitionError(
                    f"another task gets the same DAG id '{dag_id}' (also {others}); neither is "
                    "loaded", location=location(source, task.name), field="name",
                    expected="a task name (or airflow.dag_id) giving a DAG id used once in the "
                             "folder", found=task.name))
            continue
        if only_dag_id and dag_id != only_dag_id:
            continue
        if build:
            _build_into(result, *claimants[0], dag_id)
            if dag_id in result.dags:
                result.dag_ids.add(dag_id)
        else:
            result.dag_ids.add(dag_id)
    _add_digest_dags(result, claims, only_dag_id, build)
    return result


def register_dags(namespace: MutableMapping[str, Any],
                  folder: str | os.PathLike[str] | None = None) -> BuildResult:
    """Build the DAGs of a definitions folder into a DAG file's ``globals()``.

    ``folder`` defaults to ``$HYDROSERVER_DEFINITIONS_DIR``, else ``definitions/`` next to the
    DAG file. Definition problems are logged, not raised (see the module docstring: a raised
    error would stop every DAG of the file); :func:`raise_definition_errors` reports them.
    """
    where = definitions_folder(folder, namespace.get("__file__"))
    result = build_dags(where, only_dag_id=get_parsing_context().dag_id)
    for error in result.errors:
        log.warning("HydroServer definition not loaded: %s", error)
    namespace.update(result.dags)
    return result


class DefinitionCheckFailed(DefinitionErrors):
    """The definition check file's import error: every definition problem, the DAGs they keep
    out of Airflow (``not_loaded``: DAG id -> definition file), and the Airflow connections and
    variables the loaded definitions need and Airflow lacks (``missing``, one line each)."""

    def __init__(self, errors: list[DefinitionError], *,
                 not_loaded: Mapping[str, str] | None = None,
                 guessed: frozenset[str] = frozenset(), missing: list[str] | None = None
                 ) -> None:
        super().__init__(errors)
        self.not_loaded = dict(not_loaded or {})
        self.guessed = guessed  # files whose DAG ids come from task names in their text
        self.missing = list(missing or ())

    def __str__(self) -> str:
        parts = [super().__str__()] if self.errors else []
        if self.not_loaded:
            by_file: dict[str, list[str]] = {}
            for dag_id, source in self.not_loaded.items():
                by_file.setdefault(source, []).append(dag_id)
            lines = [f"  - {source}: {', '.join(ids)}"
                     + (" (read from the task names in its text)" if source in self.guessed
                        else "") for source, ids in by_file.items()]
            parts.append(f"{len(self.not_loaded)} DAG{'s' if len(self.not_loaded) != 1 else ''}"
                         " not in Airflow until these are fixed (the UI shows a DAG that was "
                         "there as deactivated):\n" + "\n".join(lines))
        if self.missing:
            parts.append(f"{len(self.missing)} Airflow setting"
                         f"{'s' if len(self.missing) != 1 else ''} the definitions need "
                         "missing:\n" + "\n".join(f"  - {line}" for line in self.missing))
        return "\n".join(parts)


def raise_definition_errors(folder: str | os.PathLike[str] | None = None, *,
                            dag_file: str | os.PathLike[str] | None = None,
                            check_airflow: bool | None = None) -> None:
    """Raise one :class:`DefinitionCheckFailed` naming every broken definition (file, task,
    field) and the DAGs it keeps out of Airflow -- and, with ``check_airflow`` (by default:
    inside Airflow's dag-processor), every Airflow connection and variable the definitions need
    that Airflow does not have.

    Called from a DAG file that defines no DAG, so the dag-processor shows the problems as that
    file's import error without disturbing the DAGs built by :func:`register_dags`.
    """
    if get_parsing_context().dag_id:  # a worker loading some DAG: nothing to report from here
        return
    from hydroserver_provider.definitions.files import load_definitions

    where = definitions_folder(folder, dag_file)
    reset_config_cache()
    with _gc_paused():
        files, errors = load_definitions(where)
        result = build_loaded(files, errors, build=False)
    not_loaded, guessed = _not_loaded(where, result) if result.errors else ({}, frozenset())
    missing: list[str] = []
    if check_airflow is None:
        from hydroserver_provider.factory.requirements import in_dag_processor

        check_airflow = in_dag_processor()
    if check_airflow:
        from hydroserver_provider.factory.requirements import (
            definition_needs,
            missing_at_parse_time,
        )

        missing = [f"{n.requirement.missing_text()} (for {n.uses_text()})"
                   for n in missing_at_parse_time(definition_needs(files))]
    if result.errors or missing:
        raise DefinitionCheckFailed(result.errors, not_loaded=not_loaded, guessed=guessed,
                                    missing=missing)


def _not_loaded(folder: Path, result: BuildResult) -> tuple[dict[str, str], frozenset[str]]:
    """The DAG ids the tasks of files with problems ask for that are not built, by DAG id ->
    file, and the files whose ids were read from their text (they do not parse)."""
    from hydroserver_provider.definitions.files import claimed_dag_ids, definition_paths

    located = [e.location or "" for e in result.errors]
    not_loaded: dict[str, str] = {}
    guessed: set[str] = set()
    paths = definition_paths(folder) if folder.is_dir() else []
    for path in paths:
        source = str(path)
        if not any(loc == source or loc.startswith((source + ":", source + ","))
                   for loc in located):
            continue
        ids, parsed = claimed_dag_ids(path, dag_id_for)
        if not parsed:
            guessed.add(source)
        for dag_id in ids:
            if dag_id not in result.dag_ids:
                not_loaded.setdefault(dag_id, source)
    return not_loaded, frozenset(guessed)


def _is_digest_dag_id(dag_id: str) -> bool:
    from hydroserver_provider.notifications.dags import DIGEST_DAG_PREFIX

    return dag_id.startswith(DIGEST_DAG_PREFIX)


def _add_digest_dags(result: BuildResult, claims: Mapping[str, list[tuple[Task, str]]],
                     only_dag_id: str | None, build: bool) -> None:
    """One digest DAG per data connection with an enabled ``notification.schedule``, over its
    tasks that got a DAG id of their own."""
    from hydroserver_provider.notifications.dags import build_digest_dags

    tasks = [(claimants[0][0], dag_id, claimants[0][1]) for dag_id, claimants in claims.items()
             if len(claimants) == 1]
    dags, errors = build_digest_dags(tasks, taken=claims, only_dag_id=only_dag_id, build=build)
    result.dags.update(dags)
    result.errors.extend(errors)

