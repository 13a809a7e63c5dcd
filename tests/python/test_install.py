"""The installed package: the memtrace command is the Rust CLI, and the wheel installs and
reads captures on every Python 3.10 to 3.13 of pyenv that this machine has."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, SUPPORT, Env, checked, make_venv, run

VERSIONS = ["3.10", "3.11", "3.12", "3.13"]


def pyenv_python(version: str) -> Path | None:
    """The newest pyenv interpreter of a version, if installed."""
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
    except FileNotFoundError:
        return None
    if not root:
        return None
    found = sorted(
        Path(root, "versions").glob(f"{version}.*/bin/python{version}"),
        key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.parent.name)],
    )
    return found[-1] if found else None


def test_the_command_is_the_cli(env: Env, tmp_path: Path) -> None:
    version = checked([env.memtrace, "--version"]).stdout
    workspace = re.search(r'^version = "([^"]+)"', (ROOT / "Cargo.toml").read_text(), re.M)
    assert workspace is not None
    assert version == f"memtrace {workspace.group(1)}\n"
    # Exit status and output pass through; the tracker is found inside the package.
    r = run([env.memtrace, "run", "-o", tmp_path / "x.bin", "-c", "import sys; print('hi'); sys.exit(3)"])
    assert (r.returncode, r.stdout) == (3, "hi\n")
    assert r.stderr.startswith("memtrace: wrote ")
    stats = json.loads(checked([env.memtrace, "stats", "--json", tmp_path / "x.bin"]).stdout)
    assert stats["complete"] is True
    r = run([env.memtrace, "stats", tmp_path / "missing.bin"])
    assert r.returncode == 1 and r.stderr.startswith("memtrace: ")


def test_the_command_of_a_venv_not_activated_runs_that_venv_s_python(env: Env, tmp_path: Path) -> None:
    # `venv/bin/memtrace run -m pytest` ran python3 on PATH, which had no pytest.
    environ = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    code = "import os, sys; print(sys.prefix); print(os.environ.get('MEMTRACE_PACKAGE_PYTHON'))"
    r = checked([env.memtrace, "run", "-q", "-o", tmp_path / "v.bin", "-c", code], env=environ)
    prefix = checked([env.python, "-c", "import sys; print(sys.prefix)"]).stdout.strip()
    # The program does not see how its interpreter was chosen.
    assert r.stdout.splitlines() == [prefix, "None"], r.stdout
    checked([env.memtrace, "run", "-q", "-o", tmp_path / "p.bin", "-m", "pytest", "--version"], env=environ)
    # --python still wins.
    system = checked(["python3", "-c", "import sys; print(sys.prefix)"], env=environ).stdout.strip()
    r = checked([env.memtrace, "run", "-q", "-o", tmp_path / "s.bin", "--python", "python3", "-c",
                 "import sys; print(sys.prefix)"], env=environ)
    assert r.stdout.strip() == system, r.stdout


@pytest.mark.parametrize("version", VERSIONS)
def test_installs_on_each_python(version: str, wheel: Path, tmp_path: Path) -> None:
    python = pyenv_python(version)
    if python is None:
        pytest.skip(f"pyenv has no Python {version} here")
    env = make_venv(python, tmp_path / "env")
    checked([env.python, "-m", "pip", "install", "-q", "--no-deps", wheel])
    capture = tmp_path / "cell.bin"
    environ = dict(os.environ, VIRTUAL_ENV=str(env.path))
    checked([env.memtrace, "run", "-q", "-o", capture, SUPPORT / "allocs" / "cell.py"], env=environ)
    out = env.py(
        "import sys, memtrace\n"
        "r = memtrace.FileReader(sys.argv[1])\n"
        "x = next(iter(r.peak_records()))\n"
        "print(r.metadata.python_version, x.size, x.python_stack()[0][2])",
        str(capture),
    )
    assert out.stdout.split() == [version, "10000001", "1"]
