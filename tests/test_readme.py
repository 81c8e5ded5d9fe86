"""The README's instructions work as written: the first-hour files load, the imports exist, the
documented command-line options exist."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def heredocs() -> dict[str, str]:
    """``cat > "$AIRFLOW_HOME/dags/<name>" <<'EOF' ... EOF`` blocks: file name -> content."""
    found = re.findall(r'cat > "\$AIRFLOW_HOME/dags/([\w.]+)" <<\'EOF\'\n(.*?)\nEOF\n', README,
                       re.DOTALL)
    return {name: body + "\n" for name, body in found}


def first_hour_definition() -> str:
    section = README[README.index("## Your first hour"):README.index("## The demo")]
    return re.search(r"```yaml\n(.*?)```", section, re.DOTALL).group(1)


def test_the_two_commands_stay_at_the_top():
    head = README.split("\n## ", 1)[0]
    assert re.search(r"```bash\nmake demo .*\nmake test .*\n```", head)
    assert README.index("## Your first hour") < README.index("## The demo")


def test_the_first_hour_dag_files_and_definition_load_in_airflow(tmp_path, monkeypatch, capsys):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.file import might_contain_dag_via_default_heuristic

    from hydroserver_provider.cli import main

    files = heredocs()
    assert set(files) == {"hydroserver_ingestion.py", "hydroserver_definition_check.py"}
    dags = tmp_path / "dags"
    (dags / "definitions").mkdir(parents=True)
    for name, body in files.items():
        (dags / name).write_text(body)
        assert might_contain_dag_via_default_heuristic(str(dags / name)), name
    definition = first_hour_definition().replace("<uuid of your datastream>",
                                                 "0f000000-0000-4000-8000-000000000001")
    (dags / "definitions" / "station42.yaml").write_text(definition)
    monkeypatch.delenv("HYDROSERVER_DEFINITIONS_DIR", raising=False)
    capsys.readouterr()
    assert main(["validate", str(dags / "definitions")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("OK: 1 file, 1 task, 1 data connection")
    assert any("connection 'hydroserver_default', for task 'Station 42'" in line for line in out)
    bag = DagBag(dag_folder=str(dags))
    assert bag.import_errors == {}
    assert list(bag.dags) == ["hydroserver_station_42"]


def test_every_python_import_in_the_readme_exists():
    import importlib

    imports = re.findall(r"^from (hydroserver_provider[\w.]*) import ([\w, ]+)$", README,
                         re.MULTILINE)
    assert len(imports) >= 6
    for module, names in imports:
        loaded = importlib.import_module(module)
        for name in (n.strip() for n in names.split(",")):
            assert hasattr(loaded, name), f"{module}.{name}"
    for path in re.findall(r"`(hydroserver_provider/[\w/.]+\.(?:py|json))`", README):
        assert (REPO / path).exists(), path


@pytest.mark.parametrize("option", ["--datastream", "--public", "--db", "--seed-demo",
                                    "--api-key-cost", "--row-cost", "--throttle"])
def test_the_documented_serve_options_exist(option):
    assert option in README
    done = subprocess.run([sys.executable, "-m", "hydroserver_provider.testing", "serve",
                           "--help"], capture_output=True, text=True, timeout=60)
    assert option in done.stdout


def test_jinja_appears_only_where_the_readme_says_it_is_not_rendered():
    uses = [m.start() for m in re.finditer(r"\{\{ ?data_interval", README)]
    assert len(uses) == 1
    assert "never\nrendered" in README[uses[0]:uses[0] + 80] or "never rendered" in \
        README[uses[0]:uses[0] + 80].replace("\n", " ")


def test_the_shipped_dag_files_match_what_the_readme_tells_users_to_write():
    """The README's files and dags/ do the same (the shipped ones only add documentation)."""
    for name, body in heredocs().items():
        shipped = (REPO / "dags" / name).read_text()
        code = [line for line in body.splitlines() if line and not line.startswith("#")]
        assert all(line in shipped.splitlines() for line in code), name
    assert shutil.which("hydroserver-airflow") or (Path(sys.executable).parent
                                                   / "hydroserver-airflow").exists()
