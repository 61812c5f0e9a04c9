"""The operator channel: a Slack incoming webhook, or the log when none is configured."""

from __future__ import annotations

import logging
from typing import Protocol

import httpx

log = logging.getLogger(__name__)


class OperatorChannel(Protocol):
    async def report(self, text: str) -> None:
        """Tells the operators; never raises (a report must not stop the consumer)."""
        ...

    async def aclose(self) -> None: ...


class LogChannel:
    async def report(self, text: str) -> None:
        log.warning("operator report", extra={"report": text})

    async def aclose(self) -> None:
        return None


class SlackWebhook:
    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self._url = url
        self._client = httpx.AsyncClient(timeout=timeout_s)

    async def report(self, text: str) -> None:
        try:
            response = await self._client.post(self._url, json={"text": text})
            response.raise_for_status()
        except httpx.HTTPError as exc:
            log.error(
                "slack report failed; check slack.webhook_url",
                extra={"error": str(exc), "report": text},
            )

    async def aclose(self) -> None:
        await self._client.aclose()
