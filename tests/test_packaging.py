"""The package as users install it: every subpackage listed, the tables shipped inside it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    source = ROOT / "src"
    found = {
        ".".join(path.relative_to(source).parts)
        for path in [source / "weightport", *(source / "weightport").rglob("*")]
        if path.is_dir() and "__pycache__" not in path.parts
    }
    assert found == listed


def test_non_editable_install_ships_the_tables_and_manifests(tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(ROOT)],
        check=True, capture_output=True,
    )
    code = (
        "from weightport.tables.rules import load_table, mappings_dir\n"
        "from weightport.models.pair import expected_layout\n"
        "from weightport.models.pair import resolve\n"
        "from weightport.models.registry import list_models, get_spec\n"
        f"assert str(mappings_dir()).startswith({str(target)!r}), mappings_dir()\n"
        "for name in list_models():\n"
        "    load_table(get_spec(name).table)\n"
        "    assert expected_layout(name, 'paddle') and resolve(name).parameter_count()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, env=env)
