"""Every example in the README runs as written against ``scripts/up``'s demo: the ``python``
blocks in order in one interpreter, each ``bash`` block in a shell, against a real ``solarfleet
serve`` over a freshly loaded demo. Each must finish without error and print something."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.services import BIN, Server, server_env

README = Path(__file__).resolve().parent.parent / "README.md"
PLACEHOLDER = "paste-the-password-scripts/up-printed"


def blocks(kind: str) -> list[str]:
    return re.findall(rf"^```{kind}\n(.*?)^```", README.read_text(), flags=re.S | re.M)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    folder = tmp_path_factory.mktemp("readme")
    out = subprocess.run(
        [str(BIN), "demo"], env=server_env(folder), check=True, capture_output=True, text=True
    ).stdout
    password = re.search(r"with password (\S+)", out)
    assert password, out
    server = Server(folder)
    try:
        yield server, password.group(1)
    finally:
        server.stop()


def _run(command: list[str], text: str, server: Server, password: str) -> str:
    host = server.url.removeprefix("http://")
    text = text.replace(PLACEHOLDER, password)
    text = text.replace("127.0.0.1:8000", host).replace("localhost:8000", host)
    done = subprocess.run([*command, text], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert '"status":"error"' not in done.stdout.replace(" ", ""), done.stdout
    assert "'status': 'error'" not in done.stdout, done.stdout
    return done.stdout


def test_the_python_examples_run_in_order_and_show_something(demo: tuple[Server, str]) -> None:
    python = blocks("python")
    assert len(python) >= 3
    out = _run([sys.executable, "-c"], "\n".join(python), *demo)
    print(out)  # shown with -s: what a newcomer sees
    lines = out.splitlines()
    assert len(lines) >= 10, out
    for line in lines:  # nothing empty: every example found something in the demo
        assert line.strip() not in ("", "0", "[]", "{}", "None"), out
        assert not line.startswith(("0 ", "[] ")), out


def test_the_shell_examples_run(demo: tuple[Server, str]) -> None:
    shell = blocks("bash")
    assert shell
    for block in shell:
        out = _run(["bash", "-euo", "pipefail", "-c"], block, *demo)
        assert '"num_results"' in out, out
