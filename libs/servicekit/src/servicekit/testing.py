"""Test and bench support: real ES256 tokens without auth, and services run as processes.

Services' tests use :class:`TokenFactory` to call guarded endpoints without running auth; the
tokens and the verification are the real ones, only the key is the test's. End-to-end tests and
benches run services as processes (:class:`ServiceProcess`) that trust that key through
:func:`jwks_server`.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from servicekit.security import StaticJwks, TokenVerifier

TEST_ISSUER = "https://auth.test.magam.kr"
TEST_AUDIENCE = "magam"


def _b64url_uint(value: int) -> str:
    return base64.urlsafe_b64encode(value.to_bytes(32, "big")).rstrip(b"=").decode()


class TokenFactory:
    """Signs access tokens as auth would, with a key generated for the test run."""

    def __init__(self, kid: str = "test-key", issuer: str = TEST_ISSUER) -> None:
        self.kid = kid
        self.issuer = issuer
        self.private_key = ec.generate_private_key(ec.SECP256R1())

    def jwks(self) -> dict[str, Any]:
        numbers = self.private_key.public_key().public_numbers()
        jwk = {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64url_uint(numbers.x),
            "y": _b64url_uint(numbers.y),
            "kid": self.kid,
            "alg": "ES256",
            "use": "sig",
        }
        return {"keys": [jwk]}

    def verifier(self, **kwargs: Any) -> TokenVerifier:
        return TokenVerifier(
            StaticJwks(self.jwks()), issuer=self.issuer, audience=TEST_AUDIENCE, **kwargs
        )

    def token(self, sub: str, roles: list[str], *, ttl_s: int = 600, **claims: Any) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "aud": TEST_AUDIENCE,
            "sub": sub,
            "iat": now,
            "exp": now + ttl_s,
            "jti": str(uuid.uuid4()),
            "roles": roles,
            **claims,
        }
        return jwt.encode(
            payload, self.private_key, algorithm="ES256", headers={"kid": self.kid, "typ": "at+jwt"}
        )

    def headers(self, sub: str, roles: list[str], **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub, roles, **claims)}"}


def free_port() -> int:
    """A TCP port on the loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def jwks_server(tokens: TokenFactory) -> Iterator[str]:
    """Serves ``tokens``' JWKS on the loopback, standing in for auth; yields its URL."""
    body = json.dumps(tokens.jwks()).encode()

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class ServiceProcess:
    """One service (``api``, ``auth``, ``push``) running as its own process, as it would in a pod.

    Its output goes to ``log``; every failure message carries the log's tail, which is what
    whoever reads the failure needs first.
    """

    service: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(
        cls, service: str, env: dict[str, str], log: Path, *, port: int | None = None
    ) -> ServiceProcess:
        """Starts ``service``'s ``serve()`` with ``env`` (plus its port); does not wait."""
        port = port or free_port()
        with log.open("ab") as out:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-c", f"from {service}.main import serve; serve()"],
                env={**env, f"{service.upper()}_HTTP__PORT": str(port)},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return cls(service, port, process, log)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def wait_ready(self, deadline_s: float = 90) -> float:
        """Waits for ``/readyz`` to answer 200; returns the seconds it took."""
        started = time.monotonic()
        last = ""
        while time.monotonic() - started < deadline_s:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.service}:{self.port} exited:\n{self.tail()}")
            try:
                answer = httpx.get(f"{self.url}/readyz", timeout=2)
                if answer.status_code == 200:
                    return time.monotonic() - started
                last = answer.text
            except httpx.TransportError as exc:
                last = str(exc)
            time.sleep(0.05)
        raise RuntimeError(
            f"{self.service}:{self.port} was not ready within {deadline_s:.0f} s ({last}); "
            f"is `scripts/infra up` running?\n{self.tail()}"
        )

    def stop(self, timeout_s: float = 30) -> None:
        """SIGTERM, as Kubernetes does; SIGKILL if it has not stopped within ``timeout_s``."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
