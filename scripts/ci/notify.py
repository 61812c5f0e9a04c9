#!/usr/bin/env python3
"""Tell the team's Slack channel how a pipeline run ended (an incoming webhook, JSON POST).

    scripts/ci/notify.py --status success --sha "$GIT_COMMIT" --build-url "$BUILD_URL"

The webhook URL comes from SLACK_WEBHOOK_URL (Jenkins injects it from its credentials store).
Exit 0 when Slack answered ``ok``; 1 with Slack's own error code otherwise (invalid_payload,
no_service, channel_is_archived, …), so a broken webhook is visible, not silent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

ICONS = {"success": ":white_check_mark:", "failure": ":x:", "unstable": ":warning:"}


def message(status: str, sha: str, build_url: str, job: str, detail: str) -> dict[str, Any]:
    head = f"{ICONS[status]} *{job}* {status} at `{sha[:12]}`"
    lines = [
        head,
        *([detail] if detail else []),
        *([f"<{build_url}|build log>"] if build_url else []),
    ]
    text = "\n".join(lines)
    return {
        "text": text,  # the notification and fallback text
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Post a pipeline result to Slack (incoming webhook)."
    )
    parser.add_argument("--status", required=True, choices=sorted(ICONS), help="how the run ended")
    parser.add_argument("--sha", required=True, help="the commit the run built")
    parser.add_argument(
        "--build-url", default=os.environ.get("BUILD_URL", ""), help="(env BUILD_URL)"
    )
    parser.add_argument("--job", default=os.environ.get("JOB_NAME", "magam"), help="(env JOB_NAME)")
    parser.add_argument("--detail", default="", help="one more line, e.g. the failed stage")
    parser.add_argument(
        "--webhook-url",
        default=os.environ.get("SLACK_WEBHOOK_URL", ""),
        help="Slack incoming webhook (env SLACK_WEBHOOK_URL; never put it in the repository)",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds (10)")
    args = parser.parse_args(argv)
    if not args.webhook_url:
        print(
            "notify: SLACK_WEBHOOK_URL is not set; add the Jenkins credential slack-webhook-url",
            file=sys.stderr,
        )
        return 1
    body = json.dumps(
        message(args.status, args.sha, args.build_url, args.job, args.detail)
    ).encode()
    if not args.webhook_url.startswith(("https://", "http://")):
        print("notify: the webhook URL must be http(s)", file=sys.stderr)
        return 1
    request = urllib.request.Request(  # noqa: S310 — scheme checked above
        args.webhook_url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:  # noqa: S310
            answer = response.read().decode(errors="replace").strip()
    except urllib.error.HTTPError as exc:
        reason = exc.read().decode(errors="replace").strip() or exc.reason
        print(
            f"notify: Slack refused the message: HTTP {exc.code} {reason}; check the webhook",
            file=sys.stderr,
        )
        return 1
    except (urllib.error.URLError, TimeoutError) as exc:
        print(f"notify: cannot reach Slack ({exc}); the result was not announced", file=sys.stderr)
        return 1
    print(f"notify: Slack answered {answer!r}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
