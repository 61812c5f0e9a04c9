#!/usr/bin/env python3
"""Build (and push) the three service images, tagged with the git SHA — never ``latest``.

    scripts/ci/build_images.py --tag "$GIT_COMMIT" --registry "$REGISTRY" --push
    scripts/ci/build_images.py --tag "$(git rev-parse HEAD)" --dry-run   # print the commands

Each image is built from the repository root with services/<svc>/Dockerfile.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("api", "auth", "push")


def image_name(registry: str, service: str, tag: str) -> str:
    prefix = f"{registry.rstrip('/')}/" if registry else ""
    return f"{prefix}magam/{service}:{tag}"


def commands(tag: str, registry: str, services: Sequence[str], push: bool) -> list[list[str]]:
    planned: list[list[str]] = []
    for service in services:
        image = image_name(registry, service, tag)
        planned.append(
            [
                "docker", "build",
                "--file", f"services/{service}/Dockerfile",
                "--tag", image,
                "--label", f"org.opencontainers.image.revision={tag}",
                ".",
            ]
        )  # fmt: skip
        if push:
            planned.append(["docker", "push", image])
    return planned


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build and push magam's images, tagged with the git SHA."
    )
    parser.add_argument("--tag", required=True, help="the git SHA (never latest)")
    parser.add_argument("--registry", default="", help="registry host/prefix; empty: local names")
    parser.add_argument("--services", type=lambda s: s.split(","), default=list(SERVICES))
    parser.add_argument("--push", action="store_true", help="push after building")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args(argv)
    if args.tag == "latest" or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", args.tag):
        parser.error(f"--tag {args.tag!r} is not a valid immutable tag; pass the git SHA")
    planned = commands(args.tag, args.registry, args.services, args.push)
    if args.dry_run:
        for command in planned:
            print(shlex.join(command))
        return 0
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        print(
            "build_images: no Docker engine answers `docker info`; run this on an agent with "
            "Docker (or use --dry-run to see the commands)",
            file=sys.stderr,
        )
        return 1
    for index, command in enumerate(planned, 1):
        started = time.monotonic()
        print(
            f"build_images: [{index}/{len(planned)}] {shlex.join(command)}",
            file=sys.stderr,
            flush=True,
        )
        if subprocess.run(command, cwd=REPO, check=False).returncode != 0:
            print(
                f"build_images: step {index} failed; see the docker output above", file=sys.stderr
            )
            return 1
        print(
            f"build_images: [{index}/{len(planned)}] done in {time.monotonic() - started:.0f}s",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
