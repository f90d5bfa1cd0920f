"""Redaction of recorded settings: which key names are secret, and substituted values."""

from __future__ import annotations

from pathlib import Path

import pytest

from elspeth.config import load_suite
from elspeth.security import REDACTED, is_secret_name, redact_secrets


@pytest.mark.parametrize(
    "name",
    [
        "api_key",
        "API_KEY",
        "apiKey",
        "x-api-key",
        "OPENAI_API_KEY",
        "key",
        "private_key_path",
        "secret",
        "client_secret",
        "clientSecret",
        "token",
        "access_token",
        "refreshToken",
        "password",
        "db_password",
        "passwd",
        "passphrase",
        "credential",
        "credentials",
        "Authorization",
        "auth",
        "cookie",
    ],
)
def test_secret_looking_names_are_secret(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "max_tokens",
        "prompt_tokens",
        "completion_tokens",
        "keywords",
        "monkey",
        "author",
        "pass_rate",
        "threshold",
        "model",
        "classification",
    ],
)
def test_ordinary_names_are_kept(name: str) -> None:
    assert not is_secret_name(name)


def test_redaction_reaches_every_depth_and_keeps_the_rest() -> None:
    original = {
        "a": [{"token": "t1"}, {"b": ({"Password": "p1"},)}],
        "credentials": {"user": "u", "pass": "p2"},
        "api_key": None,
        "name": "kept",
    }

    redacted = redact_secrets(original)

    assert redacted == {
        "a": [{"token": REDACTED}, {"b": [{"Password": REDACTED}]}],
        "credentials": REDACTED,
        "api_key": None,
        "name": "kept",
    }
    assert original["a"][0] == {"token": "t1"}


def test_values_substituted_from_the_environment_are_redacted_whatever_the_key() -> None:
    settings = {"datasource": {"url": "postgresql://u:pw@db/x", "table": "t"}, "n": [1, 2]}

    redacted = redact_secrets(settings, {("datasource", "url"), ("n", 1)})

    assert redacted == {"datasource": {"url": REDACTED, "table": "t"}, "n": [1, REDACTED]}


def test_a_suite_records_its_settings_without_substituted_values(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("id,text\n1,a\n", "utf-8")
    (tmp_path / "suite.yaml").write_text(
        """
suite: {name: redaction}
datasource: {type: csv, path: data.csv, classification: OFFICIAL, clearance: OFFICIAL}
models:
  m: {type: mock, clearance: OFFICIAL, model: "${INNOCENT_LOOKING}"}
prompt_packs: {p: {criteria: {q: "{{ text }}"}}}
sinks: {out: {type: csv, clearance: OFFICIAL}}
defaults: {model: m, prompt_pack: p, sinks: [out]}
experiments: [{name: base, baseline: true}]
""",
        "utf-8",
    )
    suite = load_suite(tmp_path / "suite.yaml", {"INNOCENT_LOOKING": "s3cr3t-value-42"})

    recorded = suite.recordable_settings()

    assert recorded["models"]["m"]["model"] == REDACTED
    assert "s3cr3t-value-42" not in repr(recorded)
    assert recorded["suite"]["name"] == "redaction"
