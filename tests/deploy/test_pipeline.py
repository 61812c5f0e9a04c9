"""The Jenkins pipeline's steps, run locally: a throwaway bare repository stands in for the GitOps
repository, a local HTTP server for Slack's incoming webhook."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO
from tests.deploy.conftest import Tools

CI = REPO / "scripts" / "ci"
HOOK_PATH = "/services/T000/B000/XXXX"


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.strip()


@dataclass
class GitOps:
    remote: Path
    app: Path
    sha: str
    scratch: Path

    def head(self) -> str:
        return git("rev-parse", "main", cwd=self.remote)

    def count(self) -> int:
        return int(git("rev-list", "--count", "main", cwd=self.remote))

    def overlay_images(self, overlay: str) -> dict[str, str]:
        checkout = self.scratch / f"check-{self.count()}-{overlay}"
        shutil.rmtree(checkout, ignore_errors=True)
        git("clone", "--quiet", str(self.remote), str(checkout), cwd=self.scratch)
        doc = yaml.safe_load(
            (checkout / "kustomize" / "overlays" / overlay / "kustomization.yaml").read_text()
        )
        return {i["name"]: i["newTag"] for i in doc["images"]}


@pytest.fixture
def gitops(tmp_path: Path) -> GitOps:
    """A bare 'GitOps' remote seeded with our overlays, and an app repository with one commit."""
    remote = tmp_path / "gitops.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(remote), cwd=tmp_path)
    seed = tmp_path / "seed"
    git("clone", "--quiet", str(remote), str(seed), cwd=tmp_path)
    shutil.copytree(REPO / "kustomize", seed / "kustomize")
    git("add", ".", cwd=seed)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "seed", cwd=seed)
    git("push", "--quiet", "origin", "HEAD:main", cwd=seed)
    app = tmp_path / "app"
    app.mkdir()
    git("init", "--quiet", "--initial-branch=main", cwd=app)
    (app / "README.md").write_text("a change worth deploying\n")
    git("add", ".", cwd=app)
    git("-c", "user.name=dev", "-c", "user.email=d@d", "commit", "-qm", "feature", cwd=app)
    return GitOps(remote, app, git("rev-parse", "HEAD", cwd=app), tmp_path)


@dataclass
class SlackStandIn:
    url: str
    received: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    """Answers like an incoming webhook: 200 ``ok``, or 404 ``no_service`` for an unknown hook."""
    received: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path != HOOK_PATH:
                status, answer = 404, b"no_service"
            elif self.headers.get("Content-Type") != "application/json":
                status, answer = 400, b"invalid_payload"
            else:
                received.append(json.loads(body))
                status, answer = 200, b"ok"
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield SlackStandIn(f"http://127.0.0.1:{server.server_address[1]}{HOOK_PATH}", received)
    server.shutdown()
    server.server_close()


def step(tools: Tools, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CI / script), *args],
        cwd=REPO,
        env=tools.env(),
        capture_output=True,
        text=True,
        check=False,
    )


def promote(tools: Tools, gitops: GitOps, overlay: str = "dev") -> subprocess.CompletedProcess[str]:
    return step(
        tools,
        "promote.py",
        "--gitops-repo",
        str(gitops.remote),
        "--overlay",
        overlay,
        "--tag",
        gitops.sha,
        "--lock-file",
        str(gitops.scratch / "promote.lock"),
    )


def test_pipeline_steps_promote_the_sha_once_and_tell_slack(
    tools: Tools, gitops: GitOps, slack: SlackStandIn
) -> None:
    assert step(tools, "should_build.py", "--repo", str(gitops.app)).returncode == 0
    build = step(tools, "build_images.py", "--tag", gitops.sha, "--push", "--dry-run")
    assert build.returncode == 0, build.stderr
    before = gitops.count()

    first = promote(tools, gitops)

    assert first.returncode == 0, first.stderr
    assert gitops.overlay_images("dev") == {
        "magam/api": gitops.sha,
        "magam/auth": gitops.sha,
        "magam/push": gitops.sha,
    }
    assert gitops.overlay_images("prod") == {
        s: "0.1.0" for s in ("magam/api", "magam/auth", "magam/push")
    }
    assert gitops.count() == before + 1
    message = git("log", "-1", "--format=%an%n%B", "main", cwd=gitops.remote)
    assert message.startswith("magam-ci\n")
    assert "[skip ci]" in message
    assert f"Magam-Promote: dev {gitops.sha}" in message

    head = gitops.head()
    second = promote(tools, gitops)

    assert second.returncode == 0, second.stderr
    assert "nothing to commit" in second.stderr
    assert gitops.head() == head

    notified = step(
        tools,
        "notify.py",
        "--status",
        "success",
        "--sha",
        gitops.sha,
        "--webhook-url",
        slack.url,
        "--build-url",
        "http://jenkins.invalid/job/magam/42/",
    )
    assert notified.returncode == 0, notified.stderr
    (received,) = slack.received
    assert gitops.sha[:12] in received["text"]
    assert "success" in received["text"]
    assert "/job/magam/42/" in received["text"]


def test_the_promote_commit_does_not_trigger_another_build(tools: Tools, gitops: GitOps) -> None:
    assert promote(tools, gitops).returncode == 0

    verdict = step(tools, "should_build.py", "--repo", str(gitops.remote), "--rev", "main")

    assert verdict.returncode == 3
    assert "promote commit" in verdict.stderr


def test_concurrent_promotions_are_serialised_and_both_land(tools: Tools, gitops: GitOps) -> None:
    before = gitops.count()
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                str(CI / "promote.py"),
                "--gitops-repo",
                str(gitops.remote),
                "--overlay",
                overlay,
                "--tag",
                gitops.sha,
                "--lock-file",
                str(gitops.scratch / "promote.lock"),
            ],
            env=tools.env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for overlay in ("dev", "prod")
    ]
    results = [(run.communicate(timeout=120)[1], run.returncode) for run in runs]

    assert [code for _, code in results] == [0, 0], results
    assert gitops.count() == before + 2
    assert set(gitops.overlay_images("dev").values()) == {gitops.sha}
    assert set(gitops.overlay_images("prod").values()) == {gitops.sha}


def test_a_failed_run_is_announced_and_a_broken_webhook_is_an_error(
    tools: Tools, slack: SlackStandIn
) -> None:
    failed = step(
        tools, "notify.py", "--status", "failure", "--sha", "a" * 40, "--webhook-url", slack.url,
        "--detail", "stage: test",
    )  # fmt: skip
    broken = step(
        tools, "notify.py", "--status", "failure", "--sha", "a" * 40,
        "--webhook-url", slack.url.replace(HOOK_PATH, "/services/gone"),
    )  # fmt: skip

    assert failed.returncode == 0, failed.stderr
    assert "failure" in slack.received[0]["text"]
    assert "stage: test" in slack.received[0]["text"]
    assert broken.returncode == 1
    assert "no_service" in broken.stderr


def test_promote_refuses_latest_and_names_a_missing_overlay(tools: Tools, gitops: GitOps) -> None:
    latest = step(
        tools,
        "promote.py",
        "--gitops-repo",
        str(gitops.remote),
        "--overlay",
        "dev",
        "--tag",
        "latest",
    )
    missing = step(
        tools, "promote.py", "--gitops-repo", str(gitops.remote), "--overlay", "qa",
        "--tag", "abc123", "--lock-file", str(gitops.scratch / "promote.lock"),
    )  # fmt: skip

    assert latest.returncode == 2
    assert "immutable" in latest.stderr
    assert missing.returncode == 1
    assert "kustomize/overlays/qa/kustomization.yaml" in missing.stderr


def test_image_builds_are_tagged_with_the_sha_never_latest(tools: Tools) -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"

    planned = step(
        tools, "build_images.py", "--tag", sha, "--registry", "registry.test", "--push", "--dry-run"
    )

    lines = planned.stdout.splitlines()
    assert planned.returncode == 0, planned.stderr
    assert [line.split()[1] for line in lines] == ["build", "push"] * 3
    for service in ("api", "auth", "push"):
        assert (
            f"--file services/{service}/Dockerfile --tag registry.test/magam/{service}:{sha}"
            in planned.stdout
        )
    assert "latest" not in planned.stdout


def test_every_step_the_jenkinsfile_runs_is_a_script_here_with_help(tools: Tools) -> None:
    jenkinsfile = (REPO / "Jenkinsfile").read_text()
    scripts = sorted(set(re.findall(r"scripts/(?:ci/[\w.]+|tools)", jenkinsfile)))

    assert {"scripts/ci/test", "scripts/ci/build_images.py", "scripts/ci/promote.py"} <= set(
        scripts
    )
    assert {"scripts/ci/notify.py", "scripts/ci/should_build.py", "scripts/tools"} <= set(scripts)
    for script in scripts:
        helped = subprocess.run(
            [str(REPO / script), "--help"],
            capture_output=True,
            text=True,
            check=False,
            env=tools.env(),
        )
        assert helped.returncode == 0, (script, helped.stderr)
        assert "usage" in (helped.stdout + helped.stderr).lower(), script
    stages = re.findall(r"stage\('([^']+)'\)", jenkinsfile)
    assert stages == ["Checkout", "Test", "Images", "Promote"]
    assert "lock(resource: 'magam-gitops')" in jenkinsfile
