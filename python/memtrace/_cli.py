"""The ``memtrace`` console script: runs the packaged ``memtrace`` executable in place of this
process, so that arguments, standard streams, signals and the exit status are the CLI's own."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def executable() -> Path:
    """The ``memtrace`` executable shipped inside the package."""
    return Path(__file__).resolve().parent / "memtrace"


def main() -> None:
    exe = executable()
    if not exe.is_file():
        sys.stderr.write(f"memtrace: the package has no executable at {exe} (reinstall it)\n")
        sys.exit(1)
    env = os.environ
    if sys.prefix != sys.base_prefix and not env.get("VIRTUAL_ENV"):
        # The memtrace of a virtual environment that is not activated runs that environment's
        # Python (as its pytest and pip do), not python3 on PATH: the run takes it unless
        # --python or an activated environment says otherwise.
        env = dict(env, MEMTRACE_PACKAGE_PYTHON=sys.executable)
    try:
        os.execve(exe, ["memtrace", *sys.argv[1:]], env)
    except OSError as e:
        sys.stderr.write(f"memtrace: cannot run {exe}: {e}\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
