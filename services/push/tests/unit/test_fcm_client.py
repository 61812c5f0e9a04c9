"""push's tuning of firebase-admin's HTTP client sends exactly what firebase-admin would."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import httpx
from firebase_admin import _http_client  # type: ignore[import-untyped]
from google.oauth2 import service_account

from push.delivery.fcm import _CredentialFlow, _FcmHttpxClient
from standins.fcm import FakeFcm

URL = "https://fcm.googleapis.com/v1/projects/p/messages:send"


def _credential(tmp_path: Path) -> Any:
    info = FakeFcm(project_id="p").service_account("http://127.0.0.1:9")
    (tmp_path / "sa.json").write_text(json.dumps(info), encoding="utf-8")
    credential = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
        info, scopes=["https://www.googleapis.com/auth/firebase.messaging"]
    )
    credential.token = "ya29.first"
    credential.expiry = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=1)
    return credential


class _Recorder(httpx.AsyncBaseTransport):
    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[httpx.Request] = []
        self.headers: list[list[tuple[str, str]]] = []  # as each request was sent

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.headers.append(sorted(request.headers.multi_items()))
        status = self.statuses.pop(0) if self.statuses else 200
        return httpx.Response(status, json={"name": "projects/p/messages/1"})


async def _headers_sent(auth: httpx.Auth, statuses: list[int]) -> list[Any]:
    recorder = _Recorder(statuses)
    headers = {"X-GOOG-API-FORMAT-VERSION": "2", **_http_client.METRICS_HEADERS}
    async with httpx.AsyncClient(transport=recorder, auth=auth, headers=headers) as client:
        await client.post(URL, json={"message": {"token": "t"}})
        await client.post(URL, json={"message": {"token": "u"}})
    return recorder.headers


async def test_the_auth_headers_are_firebase_admins_own(tmp_path: Path) -> None:
    ours = await _headers_sent(_CredentialFlow(_credential(tmp_path)), [])
    theirs = await _headers_sent(_http_client.GoogleAuthCredentialFlow(_credential(tmp_path)), [])
    assert ours == theirs
    assert ("authorization", "Bearer ya29.first") in ours[0]


async def test_a_401_refreshes_the_token_and_the_retry_carries_the_new_one(
    tmp_path: Path, monkeypatch: Any
) -> None:
    credential = _credential(tmp_path)

    def refresh(request: Any) -> None:
        credential.token = "ya29.second"

    monkeypatch.setattr(credential, "refresh", refresh)
    sent = await _headers_sent(_CredentialFlow(credential), [401])
    bearers = [dict(h)["authorization"] for h in sent]
    assert bearers == ["Bearer ya29.first", "Bearer ya29.second", "Bearer ya29.second"]


async def test_the_send_url_is_parsed_once_and_reaches_httpx_unchanged(tmp_path: Path) -> None:
    client = _FcmHttpxClient(credential=_credential(tmp_path))
    recorder = _Recorder([])
    client._async_client = httpx.AsyncClient(transport=recorder)
    try:
        for _ in range(3):
            await client.request("post", URL, json={"message": {}})
    finally:
        await client.aclose()
    assert [str(r.url) for r in recorder.requests] == [URL] * 3
    assert list(client._urls) == [URL]
