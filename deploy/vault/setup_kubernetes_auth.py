#!/usr/bin/env python3
"""Prepare Vault / OpenBao for magam's pods: Kubernetes auth, one policy and one role per service.

Each service may read only its own KV v2 secret (``secret/magam/<service>``), and only a pod running
as its ServiceAccount (``magam-<service>`` in the release namespace) gets that policy. Idempotent:
run it again after a change. Needs an operator token (VAULT_TOKEN) — never a service's.

    VAULT_ADDR=https://bao.example VAULT_TOKEN=... python deploy/vault/setup_kubernetes_auth.py \\
      --kubernetes-host https://kubernetes.default.svc --kubernetes-ca-file ca.crt
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import hvac
import hvac.exceptions
import requests

SERVICES = ("api", "auth", "push")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--addr", default=os.environ.get("VAULT_ADDR", "http://127.0.0.1:8200"))
    parser.add_argument("--kubernetes-host", required=True, help="the Kubernetes API URL")
    parser.add_argument("--kubernetes-ca-file", type=Path, help="the cluster CA (PEM)")
    parser.add_argument("--namespace", default="magam", help="the release namespace (magam)")
    parser.add_argument("--mount", default="kubernetes", help="auth mount path (kubernetes)")
    parser.add_argument("--kv-mount", default="secret", help="KV v2 mount (secret)")
    parser.add_argument("--path-prefix", default="magam", help="secrets at <prefix>/<service>")
    parser.add_argument("--role-prefix", default="magam-", help="role/policy/SA prefix (magam-)")
    parser.add_argument("--services", type=lambda s: s.split(","), default=list(SERVICES))
    parser.add_argument("--token-ttl", default="1h", help="TTL of a pod's Vault token (1h)")
    args = parser.parse_args(argv)
    token = os.environ.get("VAULT_TOKEN")
    if not token:
        parser.error("set VAULT_TOKEN to an operator token")
    client = hvac.Client(url=args.addr, token=token, timeout=10)
    try:
        mounts = client.sys.list_auth_methods()  # type: ignore[no-untyped-call]
        if f"{args.mount}/" not in mounts:
            client.sys.enable_auth_method("kubernetes", path=args.mount)
            print(f"setup: enabled kubernetes auth at auth/{args.mount}", file=sys.stderr)
        ca = args.kubernetes_ca_file.read_text() if args.kubernetes_ca_file else None
        client.auth.kubernetes.configure(
            kubernetes_host=args.kubernetes_host,
            kubernetes_ca_cert=ca,
            # Vault runs outside the pods it serves here: it reviews each pod's own token.
            disable_local_ca_jwt=ca is not None,
            mount_point=args.mount,
        )
        for service in args.services:
            name = f"{args.role_prefix}{service}"
            secret = f"{args.kv_mount}/data/{args.path_prefix}/{service}"
            client.sys.create_or_update_policy(
                name, f'path "{secret}" {{ capabilities = ["read"] }}'
            )
            client.auth.kubernetes.create_role(
                name,
                bound_service_account_names=[name],
                bound_service_account_namespaces=[args.namespace],
                policies=[name],
                ttl=args.token_ttl,
                mount_point=args.mount,
            )
            print(
                f"setup: role {name}: SA {args.namespace}/{name} may read {secret}", file=sys.stderr
            )
    except (hvac.exceptions.VaultError, requests.RequestException, OSError) as exc:
        print(
            f"setup: failed: {exc}; check --addr, the token's rights and the CA file",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
