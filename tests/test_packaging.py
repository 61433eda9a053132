"""The package as users install it: the tables, layout manifests and translation tables shipped inside it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_non_editable_install_ships_the_tables_and_manifests(tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(ROOT)],
        check=True, capture_output=True,
    )
    code = (
        "from weightport.models.pair import expected_layout, resolve\n"
        "from weightport.models.registry import list_models\n"
        "from weightport.port.torch_to_paddle.translations import functions, layers, methods\n"
        "for name in list_models():\n"
        "    pair = resolve(name)\n"
        f"    assert str(pair.table_file).startswith({str(target)!r}) and str(pair.manifest_file).startswith({str(target)!r})\n"
        "    assert pair.table() and expected_layout(name, 'paddle') and pair.parameter_count()\n"
        "assert functions() and layers() and methods()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, env=env)
