"""Push throughput to the FCM stand-in: firebase-admin's ``send_each_async`` (what push uses)
against the plain thread-pool ``send_each``, same messages, same run.

    nice -n 10 uv run python bench/push/throughput.py --messages 5000 --http2

The async side is push's own ``FcmSender`` with push's default tuning (HTTP/2 over
``--connections``, ``--concurrent-batches`` calls of ``send_each_async`` at once, handed
``batch × concurrent-batches`` messages at a time as the pipeline does), and google-auth's real
OAuth token exchange against the stand-in (a short access token as the Bearer, as with FCM).
The stand-in runs as its own process (``python -m standins.fcm``) so it does not share the
sender's interpreter; the CPU each side used per message is reported too.

Results go to stdout and, with --out, to a JSON file; the goal (issue 7):
≥ 2,000 notifications/s and ≥ 3× the thread-pool send_each, on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import firebase_admin  # type: ignore[import-untyped]
from firebase_admin import credentials, messaging

from push.delivery.fcm import FcmSender
from push.delivery.sender import Notification, Outcome
from push.settings import FcmSettings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the FCM stand-in exited; run `python -m standins.fcm --help`")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the FCM stand-in did not listen on {port} within 30 s")


def _notifications(count: int) -> list[Notification]:
    return [
        Notification(
            "token",
            f"bench-{uuid.uuid4().hex}",
            "마감빵집 마감 할인 40%",
            "소금빵 3개 6,000원 (정가 10,000원) · 4개 남음 · 21:30까지 픽업",
            {"type": "deal.published", "deal_id": str(uuid.uuid4()), "route": "magam://deals/x"},
        )
        for _ in range(count)
    ]


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _async_rate(
    settings: FcmSettings, notes: list[Notification], standin_pid: int
) -> tuple[float, dict[str, int]]:
    sender = FcmSender(settings)
    step = sender.max_batch * sender.concurrency  # what the pipeline hands the sender at once
    try:
        await sender.send(notes[:step])  # warm-up: the token exchange, connections
        started = time.perf_counter()
        cpu0, standin0 = time.process_time(), _cpu_s(standin_pid)
        done = 0
        for start in range(0, len(notes), step):
            results = await sender.send(notes[start : start + step])
            done += sum(1 for r in results if r.outcome == Outcome.SENT)
            print(f"\r  send_each_async: {done}/{len(notes)}", end="", file=sys.stderr)
        elapsed = time.perf_counter() - started
        cpu = {
            "sender_cpu_us_per_msg": round(1e6 * (time.process_time() - cpu0) / len(notes)),
            "standin_cpu_us_per_msg": round(1e6 * (_cpu_s(standin_pid) - standin0) / len(notes)),
        }
    finally:
        await sender.aclose()
    print(file=sys.stderr)
    if done != len(notes):
        raise SystemExit(f"only {done} of {len(notes)} accepted: check the stand-in's log")
    return len(notes) / elapsed, cpu


def _threadpool_rate(
    settings: FcmSettings, notes: list[Notification], batch: int, standin_pid: int
) -> tuple[float, dict[str, int]]:
    assert settings.credentials_file is not None
    info = json.loads(settings.credentials_file.read_text(encoding="utf-8"))
    app = firebase_admin.initialize_app(
        credentials.Certificate(info), {"projectId": settings.project_id}, name="bench-sync"
    )
    session = messaging._get_messaging_service(app)._client.session
    # send_each mounts its pooled adapter on https://fcm.googleapis.com only; give the
    # stand-in's http:// URL the same pool so the comparison is fair.
    session.mount(
        "http://", messaging.requests.adapters.HTTPAdapter(pool_connections=100, pool_maxsize=100)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        messages = [
            messaging.Message(
                token=n.target, data=n.data, notification=messaging.Notification(n.title, n.body)
            )
            for n in notes
        ]
    try:
        messaging.send_each(messages[:batch], app=app)
        started = time.perf_counter()
        cpu0, standin0 = time.process_time(), _cpu_s(standin_pid)
        done = 0
        for start in range(0, len(messages), batch):
            response = messaging.send_each(messages[start : start + batch], app=app)
            done += response.success_count
            print(f"\r  send_each (threads): {done}/{len(messages)}", end="", file=sys.stderr)
        elapsed = time.perf_counter() - started
        cpu = {
            "threadpool_sender_cpu_us_per_msg": round(
                1e6 * (time.process_time() - cpu0) / len(messages)
            ),
            "threadpool_standin_cpu_us_per_msg": round(
                1e6 * (_cpu_s(standin_pid) - standin0) / len(messages)
            ),
        }
    finally:
        firebase_admin.delete_app(app)
    print(file=sys.stderr)
    if done != len(messages):
        raise SystemExit(f"only {done} of {len(messages)} accepted by send_each")
    return len(messages) / elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000, help="messages per method")
    parser.add_argument("--batch", type=int, default=500, help="messages per call (≤ 500)")
    defaults = FcmSettings()
    parser.add_argument(
        "--concurrent-batches",
        type=int,
        default=defaults.concurrent_batches,
        help=f"send_each_async calls at once (push's default {defaults.concurrent_batches})",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=defaults.connections,
        help=f"HTTP/2 connections (push's default {defaults.connections})",
    )
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    parser.add_argument(
        "--http2", action="store_true", help="stand-in and send_each_async over h2c (HTTP/2)"
    )
    args = parser.parse_args()

    port = _free_port()
    workdir = Path(tempfile.mkdtemp(prefix="push-bench-"))
    sa = workdir / "service-account.json"
    standin = subprocess.Popen(
        [sys.executable, "-m", "standins.fcm", "--port", str(port), "--service-account", str(sa)]
        + (["--http2"] if args.http2 else []),
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_listening(port, standin)
        settings = FcmSettings(
            sender="fcm",
            project_id="magam-local",
            credentials_file=sa,
            send_url=f"http://127.0.0.1:{port}/v1/projects/{{project}}/messages:send",
            batch_size=args.batch,
            h2c=args.http2,
            concurrent_batches=args.concurrent_batches,
            connections=args.connections,
        )
        print(f"{args.messages} messages, {args.batch} per call, stand-in :{port}", file=sys.stderr)
        async_rate, cpu = asyncio.run(
            _async_rate(settings, _notifications(args.messages), standin.pid)
        )
        if args.http2:  # send_each (requests) speaks HTTP/1.1 only: its own stand-in
            standin.terminate()
            standin.wait()
            standin = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "standins.fcm",
                    "--port",
                    str(port),
                    "--service-account",
                    str(workdir / "sa-sync.json"),
                ],
                stdout=subprocess.DEVNULL,
            )
            _wait_listening(port, standin)
        sync_rate, sync_cpu = _threadpool_rate(
            settings, _notifications(args.messages), args.batch, standin.pid
        )
    finally:
        standin.terminate()
        standin.wait()
    result: dict[str, Any] = {
        "bench": "push-throughput",
        "messages": args.messages,
        "batch": args.batch,
        "concurrent_batches": args.concurrent_batches,
        "connections": args.connections,
        "async_transport": "h2c (HTTP/2)" if args.http2 else "HTTP/1.1",
        **cpu,
        "threadpool_transport": "HTTP/1.1",
        **sync_cpu,
        "send_each_async_per_s": round(async_rate),
        "send_each_threadpool_per_s": round(sync_rate),
        "ratio": round(async_rate / sync_rate, 2),
        "goal": {"per_s": 2000, "ratio": 3.0},
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
