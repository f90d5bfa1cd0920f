"""Secrets never reach a bundle: settings are redacted by key name as a last line of defence
(the rules themselves are tested in tests/security/test_redaction.py)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from elspeth.security import REDACTED
from elspeth.sidecar import SidecarClient
from tests.bundle.helpers import KeyPair, members, write_bundle

SECRETS = (
    "sk-live-4f1c9e2b7a",
    "Bearer tok-8d0e6c",
    "hunter2-hunter2",
    "client-secret-77aa",
    "oauth-token-5b5b",
)


def settings_with_secrets() -> dict[str, Any]:
    return {
        "suite": {"name": "service-request-triage"},
        "models": {
            "gpt": {
                "type": "openai",
                "api_key": SECRETS[0],
                "headers": {"Authorization": SECRETS[1]},
                "max_tokens": 256,
            }
        },
        "datasource": {"type": "sql", "options": [{"password": SECRETS[2]}]},
        "plugins": {"judge": {"params": {"clientSecret": SECRETS[3], "threshold": 3}}},
        "prompt_packs": {
            "triage": {"system": "Rate urgency.", "constants": {"access_token": SECRETS[4]}}
        },
    }


def test_no_secret_reaches_any_byte_of_the_bundle(
    authority: SidecarClient, signing_key: KeyPair, tmp_path: Path
) -> None:
    written = write_bundle(
        authority,
        tmp_path / "run",
        {"method": "ed25519", "private_key_path": str(signing_key.private)},
        settings=settings_with_secrets(),
    )

    raw = written.path.read_bytes()
    archive = gzip.decompress(raw)
    contents = members(written.path)
    for secret in SECRETS:
        for haystack in (raw, archive, *contents.values()):
            assert secret.encode() not in haystack
    settings = json.loads(contents["settings.json"])
    assert settings["models"]["gpt"]["api_key"] == REDACTED
    assert settings["models"]["gpt"]["max_tokens"] == 256
    assert settings["plugins"]["judge"]["params"] == {"clientSecret": REDACTED, "threshold": 3}
    prompts = json.loads(contents["prompts.json"])
    assert prompts["triage"] == {"system": "Rate urgency.", "constants": {"access_token": REDACTED}}
