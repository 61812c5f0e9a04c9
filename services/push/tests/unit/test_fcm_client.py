"""push's tuning of firebase-admin's HTTP client sends exactly what firebase-admin would."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from firebase_admin import _http_client  # type: ignore[import-untyped]
from google.oauth2 import service_account

from push.delivery.fcm import _CredentialFlow, _FcmHttpxClient
from push.delivery.http2 import Http2Transport
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


class _RecordingHttp2(Http2Transport):
    """push's HTTP/2 transport with the network replaced: records each exchange."""

    def __init__(self, statuses: list[int]) -> None:
        super().__init__(prior_knowledge=True)
        self.statuses = statuses
        self.sent: list[tuple[list[tuple[bytes, bytes]], bytes]] = []

    async def exchange(
        self,
        url: httpx.URL,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        timeouts: dict[str, float | None],
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        self.sent.append((headers, body))
        status = self.statuses.pop(0) if self.statuses else 200
        answer = b'{"name":"projects/p/messages/1"}' if status == 200 else b'{"error":{}}'
        return status, [(b"content-type", b"application/json")], answer


def _client(credential: Any, transport: _RecordingHttp2, *, direct: bool) -> _FcmHttpxClient:
    client = _FcmHttpxClient(credential=credential, timeout=10.0)
    flow = _CredentialFlow(credential)
    client._async_client = httpx.AsyncClient(
        headers=client._headers, auth=flow, mounts={"http://": transport, "https://": transport}
    )
    if direct:
        client.use_http2(transport, flow)
    return client


MESSAGES = [
    {"message": {"token": "t", "notification": {"title": "마감빵집 마감 할인 40%"}}},
    {"message": {"fid": "f" * 150, "data": {"route": "magam://deals/x", "k": '\u00e9\n"'}}},
]


async def test_the_direct_path_sends_the_bytes_httpx_would(tmp_path: Path) -> None:
    sent = []
    for direct in (False, True):
        transport = _RecordingHttp2([])
        client = _client(_credential(tmp_path), transport, direct=direct)
        try:
            for data in MESSAGES:
                answer = await client.request(
                    "post", URL, headers={"X-GOOG-API-FORMAT-VERSION": "2"}, json=data
                )
                assert answer.json() == {"name": "projects/p/messages/1"}
        finally:
            await client.aclose()
        sent.append(transport.sent)
    through_httpx, direct_sends = sent
    assert direct_sends == through_httpx
    assert [json.loads(body) for _, body in direct_sends] == MESSAGES
    assert (b"authorization", b"Bearer ya29.first") in direct_sends[0][0]


async def test_the_direct_path_leaves_a_401_to_the_auth_flow_and_uses_the_new_token(
    tmp_path: Path, monkeypatch: Any
) -> None:
    credential = _credential(tmp_path)

    def refresh(request: Any) -> None:
        credential.token = "ya29.second"

    monkeypatch.setattr(credential, "refresh", refresh)
    transport = _RecordingHttp2([401, 401])  # the stale token is refused each time it is sent
    client = _client(credential, transport, direct=True)
    try:
        first = await client.request("post", URL, json=MESSAGES[0])
        second = await client.request("post", URL, json=MESSAGES[1])
    finally:
        await client.aclose()
    assert (first.status_code, second.status_code) == (200, 200)
    bearers = [dict(headers)[b"authorization"] for headers, _ in transport.sent]
    assert bearers == [b"Bearer ya29.first"] * 2 + [b"Bearer ya29.second"] * 2


async def test_an_error_answer_on_the_direct_path_carries_this_messages_request(
    tmp_path: Path,
) -> None:
    transport = _RecordingHttp2([200, 404])
    client = _client(_credential(tmp_path), transport, direct=True)
    try:
        await client.request("post", URL, json=MESSAGES[0])
        with pytest.raises(httpx.HTTPStatusError) as raised:
            await client.request("post", URL, json=MESSAGES[1])
    finally:
        await client.aclose()
    assert raised.value.response.status_code == 404
    assert json.loads(raised.value.request.content) == MESSAGES[1]
