"""The architecture's one-way imports (docs/architecture.md), checked in fresh interpreters."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import hydroserver_provider

CORE = ("definitions", "sources", "hydroserver", "timestamps", "periods", "pipeline", "errors",
        "defaults", "retries", "summary", "text")
AIRFLOW_SIDE = ("hooks", "operators", "notifications", "factory", "cli", "runs",
                "demo", "testing", "compat", "assets")


def _modules(names: tuple[str, ...]) -> list[str]:
    found = []
    for info in pkgutil.walk_packages(hydroserver_provider.__path__, "hydroserver_provider."):
        top = info.name.split(".")[1]
        if top in names and not info.name.endswith("__main__"):
            found.append(info.name)
    return sorted(found)


def _imported_after(modules: list[str]) -> dict:
    code = ("import importlib, json, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print(json.dumps(sorted({n.split('.')[0] for n in sys.modules})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=300)
    return set(json.loads(done.stdout))


def test_the_core_never_imports_airflow():
    core = _modules(CORE)
    assert len(core) > 20  # the walk found the core's modules
    assert "airflow" not in _imported_after(core)


def test_every_module_belongs_to_a_side_of_the_map():
    every = {info.name
             for info in pkgutil.iter_modules(hydroserver_provider.__path__)}
    assert every <= set(CORE) | set(AIRFLOW_SIDE), every - set(CORE) - set(AIRFLOW_SIDE)


def test_the_architecture_page_names_every_top_level_module():
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text()
    every = {info.name for info in pkgutil.iter_modules(hydroserver_provider.__path__)}
    missing = sorted(m for m in every if f"{m}/" not in page and f"{m}.py" not in page)
    assert not missing, f"docs/architecture.md does not place: {missing}"
