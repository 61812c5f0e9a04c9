#!/usr/bin/env python3
"""Point a GitOps overlay's images at a new tag: kustomize edit set image, commit, push.

Serialised by a file lock (and by Jenkins' lock step around it), a no-op when the overlay already
has the tag, and its commit carries ``[skip ci]`` plus a ``Magam-Promote:`` trailer so the build
it would trigger skips itself (scripts/ci/should_build.py). A push that loses a race is retried on
a fresh clone of the remote's branch.

    scripts/ci/promote.py --gitops-repo git@host:magam/magam.git --overlay dev --tag "$GIT_COMMIT"
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

SERVICES = ("api", "auth", "push")
TRAILER = "Magam-Promote"
BOT_NAME = "magam-ci"
BOT_EMAIL = "ci@magam.invalid"
REPO = Path(__file__).resolve().parents[2]


class PromoteError(RuntimeError):
    """A failure the operator can act on; the message says what to do next."""


def say(message: str) -> None:
    print(f"promote: {message}", file=sys.stderr, flush=True)


def run(args: Sequence[str], cwd: Path, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise PromoteError(f"`{' '.join(args)}` failed in {cwd}:\n{result.stderr.strip()}")
    return result


def find_kustomize() -> str:
    found = shutil.which("kustomize")
    if found:
        return found
    tools = subprocess.run(
        [str(REPO / "scripts" / "tools"), "path"], capture_output=True, text=True, check=False
    )
    candidate = Path(tools.stdout.strip()) / "kustomize"
    if tools.returncode == 0 and candidate.exists():
        return str(candidate)
    raise PromoteError("kustomize not found: run scripts/tools (it installs it) or put it on PATH")


@contextlib.contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as handle:
        say(f"waiting for the lock {lock_file}")
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def set_images(
    kustomize: str, overlay_dir: Path, tag: str, registry: str, services: Sequence[str]
) -> None:
    prefix = f"{registry.rstrip('/')}/" if registry else ""
    for service in services:
        run(
            [kustomize, "edit", "set", "image", f"magam/{service}={prefix}magam/{service}:{tag}"],
            cwd=overlay_dir,
        )


def promote_once(args: argparse.Namespace, kustomize: str, workdir: Path) -> str:
    """One attempt; returns 'unchanged', 'pushed' or 'rejected' (someone pushed first)."""
    clone = workdir / "gitops"
    shutil.rmtree(clone, ignore_errors=True)
    run(
        [
            "git",
            "clone",
            "--quiet",
            "--depth",
            "1",
            "--branch",
            args.branch,
            args.gitops_repo,
            str(clone),
        ],
        cwd=workdir,
    )
    overlay_dir = clone / args.overlays_dir / args.overlay
    if not (overlay_dir / "kustomization.yaml").is_file():
        raise PromoteError(
            f"{args.overlays_dir}/{args.overlay}/kustomization.yaml is not in {args.gitops_repo}; "
            "check --overlay and --overlays-dir"
        )
    set_images(kustomize, overlay_dir, args.tag, args.registry, args.services)
    if not run(["git", "status", "--porcelain"], cwd=clone).stdout.strip():
        return "unchanged"
    short = args.tag[:12]
    message = (
        f"deploy({args.overlay}): {', '.join(args.services)} → {short} [skip ci]\n\n"
        f"{TRAILER}: {args.overlay} {args.tag}\n"
    )
    run(["git", "add", "--", str(overlay_dir.relative_to(clone))], cwd=clone)
    run(
        [
            "git",
            "-c",
            f"user.name={BOT_NAME}",
            "-c",
            f"user.email={BOT_EMAIL}",
            "commit",
            "-q",
            "-m",
            message,
        ],
        cwd=clone,
    )
    if args.no_push:
        return "pushed"
    pushed = run(
        ["git", "push", "--quiet", "origin", f"HEAD:{args.branch}"], cwd=clone, check=False
    )
    if pushed.returncode == 0:
        return "pushed"
    if re.search(r"rejected|non-fast-forward|fetch first", pushed.stderr):
        return "rejected"
    raise PromoteError(f"git push failed:\n{pushed.stderr.strip()}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(
            "Set the images of a kustomize overlay in the GitOps repository to one tag, then "
            "commit and push (a no-op when nothing changes; serialised by a lock)."
        )
    )
    parser.add_argument(
        "--gitops-repo",
        default=os.environ.get("MAGAM_GITOPS_REPO"),
        help="clone URL or path of the GitOps repository (env MAGAM_GITOPS_REPO)",
    )
    parser.add_argument("--overlay", required=True, help="overlay name: dev or prod")
    parser.add_argument("--tag", required=True, help="the image tag: the git SHA that was built")
    parser.add_argument("--branch", default="main", help="branch Argo CD follows (main)")
    parser.add_argument("--overlays-dir", default="kustomize/overlays", help="(kustomize/overlays)")
    parser.add_argument(
        "--registry",
        default=os.environ.get("MAGAM_IMAGE_REGISTRY", ""),
        help="registry host/prefix of the images (env MAGAM_IMAGE_REGISTRY; empty: none)",
    )
    parser.add_argument(
        "--services", type=lambda s: s.split(","), default=list(SERVICES), help="api,auth,push"
    )
    parser.add_argument(
        "--lock-file",
        type=Path,
        default=Path(
            os.environ.get("MAGAM_PROMOTE_LOCK", tempfile.gettempdir() + "/magam-promote.lock")
        ),
        help="file lock serialising promotions on this machine (env MAGAM_PROMOTE_LOCK)",
    )
    parser.add_argument("--attempts", type=int, default=5, help="tries when a push loses a race")
    parser.add_argument("--no-push", action="store_true", help="commit in a scratch clone only")
    args = parser.parse_args(argv)
    if not args.gitops_repo:
        parser.error("--gitops-repo (or MAGAM_GITOPS_REPO) is required")
    if args.tag == "latest" or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", args.tag):
        parser.error(f"--tag {args.tag!r} is not a valid immutable image tag (use the git SHA)")
    try:
        kustomize = find_kustomize()
        with locked(args.lock_file), tempfile.TemporaryDirectory(prefix="promote-") as scratch:
            for attempt in range(1, args.attempts + 1):
                outcome = promote_once(args, kustomize, Path(scratch))
                if outcome == "unchanged":
                    say(f"{args.overlay} already runs {args.tag}: nothing to commit")
                    return 0
                if outcome == "pushed":
                    say(f"{args.overlay} → {args.tag} committed and pushed")
                    return 0
                say(f"push lost a race ({attempt}/{args.attempts}); retrying on a fresh clone")
    except PromoteError as exc:
        say(str(exc))
        return 1
    say(f"gave up after {args.attempts} rejected pushes; rerun the promote step")
    return 1


if __name__ == "__main__":
    sys.exit(main())
