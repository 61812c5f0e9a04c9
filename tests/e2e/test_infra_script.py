"""scripts/infra: a second `up` is a no-op; `down` leaves no process behind."""

import re
import subprocess

import pytest

from conftest import REPO

pytestmark = pytest.mark.disruptive

INFRA = str(REPO / "scripts" / "infra")
COMPONENTS = ("postgres", "kafka", "zipkin", "openbao")


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([INFRA, *args], check=check, capture_output=True, text=True, timeout=600)


def _pids() -> dict[str, str]:
    out = _run("status", check=False).stdout
    return {
        name: match.group(1)
        for name in COMPONENTS
        if (match := re.search(rf"^{name}\b.*?pid[ =:]*(\d+)", out, re.M | re.I))
    }


def _our_processes() -> list[str]:
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True)
    state_dir = str(REPO / ".infra")
    return [line for line in ps.stdout.splitlines() if state_dir in line and "ps -eo" not in line]


def test_second_up_is_a_no_op_and_down_leaves_nothing_running() -> None:
    _run("up")
    before = _pids()
    assert set(before) == set(COMPONENTS), before

    again = _run("up")

    assert _pids() == before
    assert (again.stdout + again.stderr).lower().count("already running") == len(COMPONENTS)

    try:
        _run("down")
        status = _run("status", check=False)

        assert status.returncode != 0
        assert status.stdout.lower().count("stopped") == len(COMPONENTS), status.stdout
        assert _our_processes() == []
    finally:
        _run("up")
