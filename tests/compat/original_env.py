"""The original API's stack in a Python 3.8 virtual environment, built once and kept.

Used by the differential test (``tests/compat``) and by ``bench/bench_fast.py``. Python 3.8
is found as SOLARFLEET_PY38, ``python3.8`` on PATH, or pyenv's 3.8; the environment lives in
SOLARFLEET_COMPAT_VENV (default ``~/.cache/solarfleet/flask-restless-0.17``) and is rebuilt when
its pins change.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

# Flask-Restless 0.17 and the versions of its era that still install and run together
# (markupsafe 2.0.1: Jinja2 2.11 imports a name that 2.1 removed).
PINS = (
    "flask-restless==0.17.0",
    "flask==1.1.4",
    "werkzeug==1.0.1",
    "sqlalchemy==1.3.24",
    "flask-sqlalchemy==2.5.1",
    "jinja2==2.11.3",
    "markupsafe==2.0.1",
    "itsdangerous==1.1.0",
)
SERVER = Path(__file__).with_name("original.py")


def find_python38() -> str | None:
    candidates = [
        os.environ.get("SOLARFLEET_PY38"),
        *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.8*/bin/python3.8")))[-1:],
        shutil.which("python3.8"),  # may be a pyenv shim that refuses: tried last, and run
    ]
    for candidate in candidates:
        if (
            candidate
            and subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0
        ):
            return candidate
    return None


def venv_folder() -> Path:
    default = Path.home() / ".cache" / "solarfleet" / "flask-restless-0.17"
    return Path(os.environ.get("SOLARFLEET_COMPAT_VENV", default))


def original_python() -> Path | None:
    """The 3.8 environment's python, built if needed; None where no Python 3.8 exists."""
    python38 = find_python38()
    if python38 is None:
        return None
    folder = venv_folder()
    python = folder / "bin" / "python"
    marker = folder / "pins.txt"
    wanted = "\n".join(PINS)
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    shutil.rmtree(folder, ignore_errors=True)
    subprocess.run([python38, "-m", "venv", str(folder)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PINS],
        check=True,
    )
    marker.write_text(wanted)
    return python
