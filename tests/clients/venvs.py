"""Real agent frameworks and instrumentations whose pins clash with ours (or each other's) run as
subprocesses from virtual environments of their own, one per ``tests/clients/<name>/requirements.lock``.

Each lock is the complete ``pip freeze`` of a working environment and is installed as it is (``--no-deps``):
no resolver runs, so the versions are exactly those tested. Environments are cached outside the work tree
(``$TRAJSCOPE_CLIENT_VENVS``, default ``~/.cache/trajscope/client-venvs``) under a digest of the lock and
the interpreter, so a changed lock gets a fresh one. ``python -m tests.clients.venvs`` builds them all
(``make test`` does, before the suite); a test asking for one builds it if missing.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLIENTS = ("openai_v2", "traceloop", "openai_agents", "strands", "rag")
CACHE = Path(os.environ.get("TRAJSCOPE_CLIENT_VENVS", Path.home() / ".cache" / "trajscope" / "client-venvs"))


def _base_python() -> str:
    """The interpreter beneath the current virtual environment, if any."""
    return getattr(sys, "_base_executable", None) or sys.executable


def venv_dir(name: str) -> Path:
    lock = (HERE / name / "requirements.lock").read_bytes()
    digest = hashlib.sha256(lock + sys.version.encode()).hexdigest()[:12]
    return CACHE / f"{name}-{digest}"


def python_of(name: str, progress=print) -> Path:
    """The interpreter of client ``name``'s environment, built first if it is not complete."""
    venv = venv_dir(name)
    python = venv / "bin" / "python"
    if (venv / ".complete").exists():
        return python
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{venv.name}.lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # one builder per environment, also across processes
        if (venv / ".complete").exists():
            return python
        shutil.rmtree(venv, ignore_errors=True)
        started = time.monotonic()
        progress(f"building the {name} client environment in {venv} …")
        subprocess.run([_base_python(), "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                        "-r", str(HERE / name / "requirements.lock")], check=True)
        (venv / ".complete").touch()
        progress(f"  {name} ready in {time.monotonic() - started:.0f} s")
    return python


def scenario(name: str) -> Path:
    return HERE / name / "scenario.py"


def main() -> int:
    for name in CLIENTS:
        python_of(name, progress=lambda msg: print(msg, flush=True))
    print(f"client environments ready in {CACHE}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
