"""Build the wheel and the sdist, install the wheel into a clean virtualenv, smoke-test it.

What a user gets from ``pip install airflow-provider-hydroserver`` -- not the editable checkout
the tests run against: Airflow discovers the provider and its connection types, the shipped DAG
file parses and builds the example DAGs, and the command line starts. Run by ``.ci/run``
(``make package-check``); needs the package registry (Airflow is installed into the new venv).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AIRFLOW = "apache-airflow==3.3.*"  # the version CI tests (pyproject: the lowest declared)

SMOKE = textwrap.dedent("""
    import json, os, sys
    from airflow.providers_manager import ProvidersManager
    providers = ProvidersManager().providers
    assert "airflow-provider-hydroserver" in providers, sorted(providers)
    types = {c["connection-type"] for c in
             providers["airflow-provider-hydroserver"].data["connection-types"]}
    assert types == {"hydroserver", "hydrocron"}, types
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder=sys.argv[1])
    assert bag.import_errors == {}, bag.import_errors
    dags = sorted(bag.dag_ids)
    assert "hydroserver_demo_logger_42" in dags, dags
    import hydroserver_provider
    assert "site-packages" in hydroserver_provider.__file__, hydroserver_provider.__file__
    # the hydroserver:// asset scheme is registered and checked, without the openlineage extra
    import importlib.util
    from airflow.sdk import Asset
    assert importlib.util.find_spec("airflow.providers.openlineage") is None
    assert Asset("hydroserver://HS.example.org/datastreams/x").uri == (
        "hydroserver://hs.example.org/datastreams/x")
    try:
        Asset("hydroserver://hs.example.org/things/x")
        raise AssertionError("a malformed hydroserver:// URI was accepted")
    except ValueError:
        pass
    print(json.dumps({"provider": "ok", "dags": len(dags), "asset_scheme": "ok"}))
""")


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    print("+", " ".join(args), flush=True)
    return subprocess.run(args, check=True, **kwargs)


def _check_license(wheel: Path) -> None:
    """The licence travels with the wheel: its SPDX expression in the metadata, its text beside."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        assert "License-Expression: BSD-3-Clause" in archive.read(metadata).decode(), metadata
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="hydroserver-package-check-"))
    try:
        dist = work / "dist"
        run(sys.executable, "-m", "build", "--wheel", "--sdist", "--outdir", str(dist), str(REPO))
        wheels, sdists = list(dist.glob("*.whl")), list(dist.glob("*.tar.gz"))
        assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in dist.iterdir())
        _check_license(wheels[0])
        venv = work / "venv"
        run(sys.executable, "-m", "venv", str(venv))
        python, bin_dir = venv / "bin" / "python", venv / "bin"
        run(str(python), "-m", "pip", "install", "--quiet", str(wheels[0]), AIRFLOW)
        env = {**os.environ, "AIRFLOW_HOME": str(work / "airflow_home"),
               "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        env.pop("HYDROSERVER_DEFINITIONS_DIR", None)
        # outside the checkout, so the wheel (not the source tree) is what gets imported
        run(str(python), "-c", SMOKE, str(REPO / "dags"), cwd=work, env=env)
        run(str(bin_dir / "hydroserver-airflow"), "--help", cwd=work, env=env,
            stdout=subprocess.DEVNULL)
        run(str(bin_dir / "hydroserver-airflow"), "validate", str(REPO / "dags" / "definitions"),
            cwd=work, env=env)
        print(f"package check passed: {wheels[0].name}, {sdists[0].name}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
