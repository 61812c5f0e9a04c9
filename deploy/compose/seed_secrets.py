"""Writes the compose stack's development secrets into OpenBao (KV v2), once.

Runs in the auth image (it has hvac and cryptography). Idempotent: a secret path that already
exists is left alone, so the JWT signing key survives restarts of the stack. These are
development values for a laptop; a cluster's secrets are written by its operators.
"""

from __future__ import annotations

import json
import os
import sys

import hvac
import hvac.exceptions
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def es256_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def main() -> int:
    client = hvac.Client(url=os.environ["VAULT_ADDR"], token=os.environ["VAULT_TOKEN"])
    password = os.environ.get("MAGAM_DB_PASSWORD", "magam")
    fcm = {
        "type": "service_account",
        "project_id": "magam-compose",
        "client_email": "push@magam-compose.invalid",
        "token_uri": "http://127.0.0.1:9/token",
        "universe_domain": "magam.invalid",
    }
    wanted = {
        "magam/auth": {
            "database_password": password,
            "token_signing_key_pem": es256_pem(),
            "kakao_client_secret": "compose-kakao-client-secret",
            "kakao_admin_key": "compose-kakao-admin-key",
        },
        "magam/api": {"database_password": password},
        "magam/push": {
            "database_password": password,
            "fcm_service_account_json": json.dumps(fcm),
            "slack_webhook_url": "http://127.0.0.1:9/slack",
        },
    }
    for path, secret in wanted.items():
        try:
            client.secrets.kv.v2.read_secret_version(
                path=path, mount_point="secret", raise_on_deleted_version=True
            )
            print(f"seed_secrets: secret/{path} exists; left as it is")
        except hvac.exceptions.InvalidPath:
            client.secrets.kv.v2.create_or_update_secret(
                path=path, secret=secret, mount_point="secret"
            )
            print(f"seed_secrets: wrote secret/{path} ({', '.join(sorted(secret))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
