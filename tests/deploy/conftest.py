"""Where the deployment tools are: scripts/tools installs helm, kustomize, kubeconform and the
Kubernetes JSON schemas into a cache (make test runs it before pytest)."""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO


@dataclass(frozen=True)
class Tools:
    bin_dir: Path
    schemas: Path
    kubernetes_version: str

    def env(self) -> dict[str, str]:
        return {**os.environ, "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}

    def run(self, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            cwd=cwd,
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
        )


@pytest.fixture(scope="session")
def tools() -> Tools:
    script = REPO / "scripts" / "tools"
    if subprocess.run([str(script), "status"], capture_output=True, check=False).returncode != 0:
        pytest.fail("helm/kustomize/kubeconform or the schemas are missing: run scripts/tools")
    exports = subprocess.run([str(script), "env"], capture_output=True, text=True, check=True)
    values: dict[str, str] = {}
    for line in exports.stdout.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        values[name] = shlex.split(value)[0] if value else ""
    bin_dir = Path(values["PATH"].split(os.pathsep)[0])
    return Tools(bin_dir, Path(values["MAGAM_K8S_SCHEMAS"]), values["MAGAM_KUBERNETES_VERSION"])
