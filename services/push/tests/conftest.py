"""push's test fixtures: the FCM and Slack stand-ins on real sockets."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from standins.fcm import RunningFcm, running_fcm
from standins.slack import RunningSlack, running_slack


@pytest.fixture
def fcm(tmp_path: Path) -> Iterator[RunningFcm]:
    with running_fcm(tmp_path) as running:
        yield running


@pytest.fixture
def slack() -> Iterator[RunningSlack]:
    with running_slack() as running:
        yield running


class _Connections:
    """Every address a socket connects to while ``recording`` (a CPython audit hook)."""

    def __init__(self) -> None:
        self.recording = False
        self.addresses: list[Any] = []

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if self.recording and event == "socket.connect":
            self.addresses.append(args[1])


_CONNECTIONS = _Connections()
sys.addaudithook(_CONNECTIONS)  # hooks cannot be removed: it records only inside the fixture


@pytest.fixture
def outbound_connections() -> Iterator[list[Any]]:
    """The addresses sockets connect to during the test."""
    _CONNECTIONS.addresses = []
    _CONNECTIONS.recording = True
    try:
        yield _CONNECTIONS.addresses
    finally:
        _CONNECTIONS.recording = False
