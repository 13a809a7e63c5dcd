"""The Python package's suite: builds the wheel from python/ once, installs it into a fresh
virtual environment (with pytest and IPython from the package index), and runs everything
there in subprocesses, as a user would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SUPPORT = HERE / "support"

# The test project and the scripts are run by the tests, not collected.
collect_ignore = ["projects", "support"]


def run(cmd: list[str | os.PathLike[str]], **kw: object) -> subprocess.CompletedProcess[str]:
    """Runs a command, capturing its text output."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 900)
    return subprocess.run([str(c) for c in cmd], **kw)  # type: ignore[call-overload]


def checked(cmd: list[str | os.PathLike[str]], **kw: object) -> subprocess.CompletedProcess[str]:
    r = run(cmd, **kw)
    assert r.returncode == 0, f"{cmd} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


class Env:
    """A virtual environment with the package installed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.python = path / "bin" / "python"
        self.memtrace = path / "bin" / "memtrace"

    def py(self, code: str, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
        """Runs Python code in the environment; fails the test when it fails."""
        return checked([self.python, "-c", code, *args], **kw)


def make_venv(python: str | Path, path: Path) -> Env:
    if path.exists():
        shutil.rmtree(path)
    made = run([python, "-m", "venv", path])
    if made.returncode != 0:
        # Where ensurepip cannot run, this interpreter's pip fills the new environment.
        shutil.rmtree(path, ignore_errors=True)
        checked([python, "-m", "venv", "--without-pip", path])
        env = Env(path)
        checked([sys.executable, "-m", "pip", "--python", env.python, "install", "-q", "pip"])
        return env
    return Env(path)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package's wheel, built from python/ (one abi3 wheel for Python 3.10 to 3.13)."""
    out = tmp_path_factory.mktemp("wheel")
    checked(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", out, ROOT / "python"],
        timeout=1800,
    )
    wheels = list(out.glob("memtrace-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="session")
def env(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Env:
    """A fresh virtual environment with the wheel, pytest, IPython and pytest-xdist."""
    e = make_venv(sys.executable, tmp_path_factory.mktemp("venv") / "env")
    checked(
        [e.python, "-m", "pip", "install", "-q", wheel, "pytest", "ipython", "pytest-xdist"],
        timeout=1800,
    )
    return e



