"""Push throughput to the FCM stand-in: firebase-admin's ``send_each_async`` (what push uses)
against the plain thread-pool ``send_each``, same messages, same run, same stand-in program.

    uv run python bench/push/throughput.py --processes 1    # 20,000 messages a side, ~75 s quiet
    uv run python bench/push/throughput.py --processes 2    # 2 sender processes a side, ~45 s

The async side is push's own ``FcmSender`` with push's default tuning (firebase-admin
``send_each_async``, at most 500 a call, over push's HTTP/2 transport: h2c to the stand-in), on
uvloop as push runs in production, handed ``batch × concurrent-batches`` messages at a time as
the pipeline does, with google-auth's real OAuth token exchange against the stand-in. The
baseline is firebase-admin's plain ``send_each`` (requests, HTTP/1.1 keep-alive, a thread per
message) unchanged, with firebase-admin's own pooled adapter (100 connections, its retry
config) mounted on the stand-in's http:// URL as it mounts it on fcm.googleapis.com.

Both sides get the same: the same notifications (deterministic, built by push's ``to_message``:
text, data, Android tag, APNs collapse id — byte-identical payloads), ``--processes`` sender
processes each (every process sends its share; all start together after their warm-up, the rate
is accepted messages / wall time), push's GC threshold (``tune_gc_for_sending``, as push's entry
point sets it), and the FCM stand-in as a separate process (``python -m standins.fcm``, fresh
for each side, the same FakeFcm answering: its lean h2c server on uvloop for send_each_async,
its HTTP/1.1 mode — uvicorn, httptools, the baseline's best case — for send_each). 20,000
messages a side by default: the thread pool's side runs ~45 s, ours ≥ 8 s — steady, unlike the
6,000 of earlier runs. The bench reports notifications/s, the ratio, and the CPU per message of
every process (each sender, the stand-in, and their total): CPU per message is what to compare
on a shared machine. Goal (issue 7): ≥ 2,000 notifications/s and ≥ 3× the thread-pool
send_each, on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
_WARM_UP = 99  # the warm-up's notifications: a worker index no sender process has


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


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- one sender process -------------------------------------------------------------------------


def _notifications(count: int, worker: int = 0) -> list[Any]:
    """The same ``count`` notifications for both sides (deterministic: a side's ``worker``-th
    process sends exactly what the other side's does), shaped as push's deal notifications."""
    from push.delivery.sender import Notification  # noqa: PLC0415 — workers only

    return [
        Notification(
            "token",
            f"bench-{worker}-{i:0140d}",  # FCM registration tokens are ~150 characters
            "마감빵집 마감 할인 40%",
            "소금빵 3개 6,000원 (정가 10,000원) · 4개 남음 · 21:30까지 픽업",
            {
                "type": "deal.published",
                "event_id": str(uuid.UUID(int=worker << 64 | i)),
                "store_id": "store-42",
                "deal_id": str(uuid.UUID(int=1 << 96 | i)),
                "price_krw": "6000",
                "route": f"magam://deals/{uuid.UUID(int=1 << 96 | i)}",
            },
        )
        for i in range(count)
    ]


def _settings(args: argparse.Namespace) -> Any:
    from push.settings import FcmSettings  # noqa: PLC0415

    return FcmSettings(
        sender="fcm",
        project_id="magam-local",
        credentials_file=args.service_account,
        send_url=f"http://127.0.0.1:{args.port}/v1/projects/{{project}}/messages:send",
        batch_size=args.batch,
        h2c=True,
        concurrent_batches=args.concurrent_batches,
        connections=args.connections,
    )


def _report(sent: int, cpu_s: float, elapsed_s: float, errors: list[str]) -> None:
    report = {"sent": sent, "cpu_s": cpu_s, "elapsed_s": elapsed_s, "errors": errors[:3]}
    print(json.dumps(report), flush=True)


def _ready_then_wait_for_go() -> None:
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("the bench did not say go")


async def _async_worker(args: argparse.Namespace) -> None:
    from push.delivery.fcm import FcmSender  # noqa: PLC0415
    from push.delivery.sender import Outcome  # noqa: PLC0415

    sender = FcmSender(_settings(args))
    step = sender.max_batch * sender.concurrency  # what the pipeline hands the sender at once
    notes = _notifications(args.messages, args.worker_index)
    try:
        await sender.send(
            _notifications(step, _WARM_UP)
        )  # warm-up: the token exchange, the connection
        await asyncio.get_running_loop().run_in_executor(None, _ready_then_wait_for_go)
        started, cpu0 = time.perf_counter(), time.process_time()
        sent, errors = 0, []
        for start in range(0, len(notes), step):
            results = await sender.send(notes[start : start + step])
            sent += sum(1 for r in results if r.outcome == Outcome.SENT)
            errors += [str(r.reason) for r in results if r.outcome != Outcome.SENT]
        _report(sent, time.process_time() - cpu0, time.perf_counter() - started, errors)
    finally:
        await sender.aclose()


def _threadpool_worker(args: argparse.Namespace) -> None:
    import firebase_admin  # type: ignore[import-untyped]  # noqa: PLC0415
    from firebase_admin import _http_client, credentials, messaging  # noqa: PLC0415

    from push.delivery.fcm import _token_targets_allowed, to_message  # noqa: PLC0415

    settings = _settings(args)
    info = json.loads(settings.credentials_file.read_text(encoding="utf-8"))
    app = firebase_admin.initialize_app(
        credentials.Certificate(info), {"projectId": settings.project_id}, name="bench-sync"
    )
    messaging._MessagingService.FCM_URL = settings.send_url.replace("{project}", "{0}")
    service = messaging._get_messaging_service(app)
    # send_each mounts its pooled adapter on https://fcm.googleapis.com only; the stand-in's
    # http:// URL gets the very same adapter (firebase-admin's default pool and retries).
    service._client.session.mount(
        "http://",
        messaging.requests.adapters.HTTPAdapter(
            pool_connections=100, pool_maxsize=100, max_retries=_http_client.DEFAULT_RETRY_CONFIG
        ),
    )

    def messages(count: int, worker: int) -> list[Any]:
        # push's own FCM message for each notification: the same payloads as the async side.
        with _token_targets_allowed():
            return [to_message(n) for n in _notifications(count, worker)]

    todo = messages(args.messages, args.worker_index)
    try:
        messaging.send_each(messages(args.batch, _WARM_UP), app=app)  # warm-up
        _ready_then_wait_for_go()
        started, cpu0 = time.perf_counter(), time.process_time()
        sent, errors = 0, []
        for start in range(0, len(todo), args.batch):
            batch = messaging.send_each(todo[start : start + args.batch], app=app)
            sent += batch.success_count
            errors += [str(r.exception) for r in batch.responses if not r.success]
        _report(sent, time.process_time() - cpu0, time.perf_counter() - started, errors)
    finally:
        firebase_admin.delete_app(app)


# -- the bench ----------------------------------------------------------------------------------


def _run_side(
    kind: str, args: argparse.Namespace, port: int, sa: Path, standin_pid: int
) -> dict[str, Any]:
    """Starts the sender processes, lets them warm up, starts them together; their results."""
    share = args.messages // args.processes
    command = [
        sys.executable,
        str(HERE),
        "--worker",
        kind,
        "--port",
        str(port),
        "--service-account",
        str(sa),
        "--messages",
        str(share),
        "--batch",
        str(args.batch),
        "--concurrent-batches",
        str(args.concurrent_batches),
        "--connections",
        str(args.connections),
    ]
    workers = [
        subprocess.Popen(
            [*command, "--worker-index", str(index)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for index in range(args.processes)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            if worker.stdout.readline().strip() != "ready":
                raise SystemExit(f"a {kind} sender failed to warm up: see its stderr above")
        load_before = round(os.getloadavg()[0], 2)
        standin0 = _cpu_s(standin_pid)
        started = time.perf_counter()
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        reports = []
        for worker in workers:
            assert worker.stdout is not None
            reports.append(json.loads(worker.stdout.readline()))
        elapsed = time.perf_counter() - started
        standin_cpu = _cpu_s(standin_pid) - standin0
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.stdin.close() if worker.stdin else None
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()
    total = share * args.processes
    sent = sum(r["sent"] for r in reports)
    errors = [e for r in reports for e in r["errors"]]
    if sent != total:
        # Reported, not fatal: a message the stand-in did not accept is counted as not sent.
        print(
            f"  {kind}: {total - sent} of {total} not accepted, e.g. {errors[:1]}", file=sys.stderr
        )
    return {
        "not_accepted": total - sent,
        "errors": errors[:3],
        "per_s": round(sent / elapsed),  # accepted notifications per second
        "sender_cpu_us_per_msg": round(1e6 * sum(r["cpu_s"] for r in reports) / total),
        "sender_cpu_us_per_msg_each": [round(1e6 * r["cpu_s"] / share) for r in reports],
        "standin_cpu_us_per_msg": round(1e6 * standin_cpu / total),
        # All the machine's CPU a message cost (senders + stand-in): with --processes 2 both
        # sides fill both cores, and the rates' ratio is about the inverse ratio of this.
        "total_cpu_us_per_msg": round(
            1e6 * (sum(r["cpu_s"] for r in reports) + standin_cpu) / total
        ),
        "elapsed_s": round(elapsed, 2),
        "load_avg_1m_before": load_before,
    }


def _standin(port: int, sa: Path, *, http2: bool) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "standins.fcm", "--port", str(port), "--service-account", str(sa)]
        + (["--http2"] if http2 else []),
        stdout=subprocess.DEVNULL,
    )
    _wait_listening(port, proc)
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--messages",
        type=int,
        default=20_000,
        help="messages per side (20,000: each side runs long enough to be steady)",
    )
    parser.add_argument(
        "--processes", type=int, default=1, help="sender processes per side, same for both (1)"
    )
    parser.add_argument("--batch", type=int, default=500, help="messages per call (≤ 500)")
    from push.settings import FcmSettings  # noqa: PLC0415

    defaults = FcmSettings()
    parser.add_argument(
        "--concurrent-batches",
        type=int,
        default=defaults.concurrent_batches,
        help=f"send_each_async calls at once per process (push's {defaults.concurrent_batches})",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=defaults.connections,
        help=f"HTTP/2 connections per process (push's {defaults.connections})",
    )
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    # The async side always speaks HTTP/2 now; the flag of earlier runs is still accepted.
    parser.add_argument("--http2", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=["async", "threads"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--service-account", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        from push.delivery.sender import tune_gc_for_sending  # noqa: PLC0415

        tune_gc_for_sending()  # push's entry point does; the baseline gets the same
    if args.worker == "async":
        import uvloop  # noqa: PLC0415 — push serves on uvloop (servicekit.runner)

        uvloop.run(_async_worker(args))
        return
    if args.worker == "threads":
        _threadpool_worker(args)
        return

    command = "uv run python bench/push/throughput.py " + shlex.join(sys.argv[1:])
    began = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="push-bench-"))
    port = _free_port()
    sa = workdir / "service-account.json"
    print(
        f"{args.messages} messages a side, {args.processes} sender process(es) each",
        file=sys.stderr,
    )
    # One stand-in process per side (a fresh one: no state carried over), the same program:
    # h2c for send_each_async; for send_each (HTTP/1.1 only) its HTTP/1.1 mode, uvicorn with
    # httptools — the cheapest HTTP/1.1 server at hand, the baseline's best case.
    standin = _standin(port, sa, http2=True)
    try:
        async_side = _run_side("async", args, port, sa, standin.pid)
        print(f"  send_each_async: {async_side}", file=sys.stderr)
    finally:
        standin.terminate()
        standin.wait()
    standin = _standin(port, sa, http2=False)
    try:
        threads_side = _run_side("threads", args, port, sa, standin.pid)
        print(f"  send_each (thread pool): {threads_side}", file=sys.stderr)
    finally:
        standin.terminate()
        standin.wait()
    result: dict[str, Any] = {
        "bench": "push-throughput",
        "command": command,
        "messages": args.messages,
        "processes_per_side": args.processes,
        "batch": args.batch,
        "concurrent_batches": args.concurrent_batches,
        "connections": args.connections,
        "send_each_async": {"transport": "HTTP/2 (h2c), push's transport, uvloop", **async_side},
        "send_each_threadpool": {
            "transport": "HTTP/1.1 keep-alive (requests), stand-in on uvicorn+httptools",
            **threads_side,
        },
        "ratio": round(async_side["per_s"] / threads_side["per_s"], 2),
        "goal": {"per_s": 2000, "ratio": 3.0},
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "duration_s": round(time.perf_counter() - began, 1),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
