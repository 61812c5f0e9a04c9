"""Request/response examples recorded from the tests into docs/api/ (the role Spring REST Docs
played): `make test` rewrites them and fails when they differ from what is committed."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx

DOCS = Path(__file__).resolve().parents[5] / "docs" / "api"

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?")
_STORE = re.compile(r"\bT[0-9A-F]{19}\b")
_USER = re.compile(r"\b([cma])-[0-9a-f]{12}\b")
_VOLATILE_KEYS = {"pickup_code": "<pickup-code>", "name_suffix": "<n>"}
_KEPT_HEADERS = {"content-type", "idempotency-key", "idempotent-replayed", "retry-after"}


class _Placeholders:
    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    def __call__(self, kind: str, value: str) -> str:
        if value not in self.seen:
            count = sum(1 for v in self.seen.values() if v.startswith(f"<{kind}-"))
            self.seen[value] = f"<{kind}-{count + 1}>"
        return self.seen[value]


def _scrub_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (_VOLATILE_KEYS[k] if k in _VOLATILE_KEYS and v is not None else _scrub_json(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub_json(v) for v in value]
    return value


def _scrub(text: str, names: _Placeholders) -> str:
    text = _UUID.sub(lambda m: names("id", m.group()), text)
    text = _STORE.sub(lambda m: names("store", m.group()), text)
    text = _USER.sub(
        lambda m: names({"c": "customer", "m": "manager", "a": "admin"}[m.group(1)], m.group()),
        text,
    )
    text = re.sub(r"테스트가게 \w{4}", "테스트가게", text)
    return _TIMESTAMP.sub("<timestamp>", text)


def _body(raw: bytes) -> str:
    if not raw:
        return ""
    try:
        return json.dumps(_scrub_json(json.loads(raw)), ensure_ascii=False, indent=2)
    except ValueError:
        return raw.decode(errors="replace")


def record(name: str, title: str, *responses: httpx.Response) -> None:
    """Writes ``docs/api/<name>.md``: each request and its response, volatile values replaced."""
    names = _Placeholders()
    parts = [
        f"# {title}\n\n<!-- recorded by the api tests; `make test` regenerates this file -->\n"
    ]
    for response in responses:
        request = response.request
        headers = "".join(
            f"{k}: {v}\n" for k, v in request.headers.items() if k.lower() in _KEPT_HEADERS
        )
        if "authorization" in request.headers:
            headers = "authorization: Bearer <access token>\n" + headers
        req_body = _body(request.content)
        res_headers = "".join(
            f"{k}: {v}\n" for k, v in response.headers.items() if k.lower() in _KEPT_HEADERS
        )
        parts.append(
            f"\n## {request.method} {request.url.raw_path.decode()}\n\n"
            f"```http\n{request.method} {request.url.raw_path.decode()}\n{headers}"
            + (f"\n{req_body}\n" if req_body else "")
            + "```\n\n"
            f"```http\nHTTP/1.1 {response.status_code} {response.reason_phrase}\n{res_headers}"
            + (f"\n{_body(response.content)}\n" if response.content else "")
            + "```\n"
        )
    DOCS.mkdir(parents=True, exist_ok=True)
    (DOCS / f"{name}.md").write_text(_scrub("".join(parts), names), encoding="utf-8")
