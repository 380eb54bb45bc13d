"""The package builds without setuptools warnings and ships what it needs at run time: the built-in price
table, the web UI's files and the licence."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_builds_cleanly_and_holds_its_data(tmp_path):
    made_here = not (ROOT / "build").exists()  # setuptools builds in the tree: its scratch folder goes after
    try:
        built = _build(tmp_path)
    finally:
        if made_here:
            shutil.rmtree(ROOT / "build", ignore_errors=True)
    _check(built, tmp_path)


def _build(tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v",
                           "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)


def _check(built: subprocess.CompletedProcess, tmp_path: Path) -> None:
    assert built.returncode == 0, built.stderr[-3000:]
    output = built.stdout + built.stderr
    for line in output.splitlines():
        lowered = line.lower()
        if "warning" in lowered and "byte-compiling" not in lowered and "location" not in lowered:
            raise AssertionError(f"the build warns: {line}")
    assert "Package would be ignored" not in output
    (wheel,) = tmp_path.glob("trajscope-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "trajscope/analysis/prices.toml" in names
    assert {"trajscope/ui/static/index.html", "trajscope/ui/static/app.js"} <= names
    assert any(name.endswith("licenses/LICENSE") for name in names)
