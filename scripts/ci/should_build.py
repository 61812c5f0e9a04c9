#!/usr/bin/env python3
"""Exit 0 when the checked-out commit should run the pipeline; 3 when it must not.

The promote step's own commits (trailer ``Magam-Promote:``, ``[skip ci]``) only move image tags
in the GitOps overlays: building them would build the same images again and promote them again,
forever. Jenkins asks this first and ends such a run as NOT_BUILT.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence

SKIP_MARKERS = ("[skip ci]", "[ci skip]")
TRAILER = "Magam-Promote:"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Should this commit run the pipeline?")
    parser.add_argument("--rev", default="HEAD", help="the commit to judge (HEAD)")
    parser.add_argument("--repo", default=".", help="the repository (.)")
    args = parser.parse_args(argv)
    shown = subprocess.run(
        ["git", "-C", args.repo, "log", "-1", "--format=%B", args.rev],
        capture_output=True,
        text=True,
        check=False,
    )
    if shown.returncode != 0:
        print(f"should_build: cannot read {args.rev}: {shown.stderr.strip()}", file=sys.stderr)
        return 1
    body = shown.stdout
    if any(line.startswith(TRAILER) for line in body.splitlines()) or any(
        marker in body for marker in SKIP_MARKERS
    ):
        print(f"should_build: {args.rev} is a promote commit; not building it", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
