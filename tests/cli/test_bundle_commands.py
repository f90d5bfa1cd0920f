"""``elspeth keygen`` and ``elspeth verify-bundle``: output and exit codes, beside the run flags."""

from __future__ import annotations

from pathlib import Path

from elspeth.outcome import ExitCode
from elspeth.sidecar import SidecarClient
from tests.bundle.helpers import make_key_pair, tampered, write_bundle
from tests.datasources.conftest import authority, daemon  # noqa: F401  (fixtures)
from tests.suite.conftest import run_cli, run_cli_subprocess


def test_keygen_writes_a_key_pair_and_refuses_to_overwrite(tmp_path: Path) -> None:
    private, public = tmp_path / "signer.pem", tmp_path / "signer.pub.pem"

    made = run_cli("keygen", "--private", private, "--public", public)
    again = run_cli("keygen", "--private", private, "--public", public)

    assert made.code == ExitCode.OK, made.output
    assert "fingerprint: SHA256:" in made.stdout
    assert private.stat().st_mode & 0o777 == 0o600
    assert again.code == ExitCode.CONFIGURATION
    assert f"{private} already exists" in again.stderr


def test_keygen_creates_missing_parent_directories_private(tmp_path: Path) -> None:
    private = tmp_path / "keys" / "signing" / "signer.pem"
    public = tmp_path / "public" / "signer.pub.pem"

    made = run_cli("keygen", "--private", private, "--public", public)

    assert made.code == ExitCode.OK, made.output
    for directory in (tmp_path / "keys", private.parent, public.parent):
        assert directory.stat().st_mode & 0o777 == 0o700, directory
    assert private.stat().st_mode & 0o777 == 0o600


def test_keygen_under_a_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")

    result = run_cli_subprocess(
        "keygen", "--private", blocker / "k.pem", "--public", tmp_path / "k.pub.pem"
    )

    assert result.code == ExitCode.CONFIGURATION
    assert result.stderr.splitlines() == [
        f"elspeth keygen: {blocker / 'k.pem'}: the parent {blocker} is not a directory"
    ]
    assert not (tmp_path / "k.pub.pem").exists()


def test_verify_bundle_reports_and_exit_codes(
    authority: SidecarClient,  # noqa: F811
    tmp_path: Path,
) -> None:
    signer = make_key_pair(tmp_path / "keys", "signer")
    written = write_bundle(
        authority,
        tmp_path / "run",
        {"method": "ed25519", "private_key_path": str(signer.private)},
    )

    pinned = run_cli("verify-bundle", written.path, "--public-key", signer.public)
    unpinned = run_cli("verify-bundle", written.path)
    tampered(written.path, extra_dot_txt=b"x")
    broken = run_cli("verify-bundle", written.path, "--public-key", signer.public)

    assert pinned.code == ExitCode.OK, pinned.output
    assert "classification: OFFICIAL" in pinned.stdout
    assert f"ed25519 by {signer.fingerprint}, pinned by the given public key" in pinned.stdout
    assert "files checked: 14" in pinned.stdout
    assert unpinned.code == ExitCode.OK
    assert "NOT PINNED" in unpinned.stdout
    assert broken.code == ExitCode.SECURITY
    assert "bundle failed verification (1 problem)" in broken.stderr
    assert "extra.txt: not listed in the manifest" in broken.stderr
    assert broken.stdout == ""


def test_verify_bundle_usage_and_unreadable_paths_exit_2(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_bytes(bytes(32))
    key.chmod(0o600)

    missing = run_cli("verify-bundle", tmp_path / "absent.tar.gz")
    no_path = run_cli("verify-bundle")
    both = run_cli("verify-bundle", key, "--public-key", key, "--hmac-key", key)
    bad_key = run_cli("verify-bundle", key, "--public-key", tmp_path / "absent.pem")

    assert missing.code == ExitCode.CONFIGURATION
    assert "absent.tar.gz: cannot be opened" in missing.stderr
    assert no_path.code == ExitCode.CONFIGURATION
    assert "the following arguments are required: PATH" in no_path.stderr
    assert both.code == ExitCode.CONFIGURATION
    assert "not allowed with argument" in both.stderr
    assert bad_key.code == ExitCode.CONFIGURATION
    assert "absent.pem does not exist" in bad_key.stderr


def test_the_installed_command_dispatches_subcommands_and_keeps_its_flags(
    tmp_path: Path,
) -> None:
    help_text = run_cli_subprocess("verify-bundle", "--help")
    not_a_bundle = tmp_path / "not.tar.gz"
    not_a_bundle.write_bytes(b"plain text")
    refused = run_cli_subprocess("verify-bundle", not_a_bundle)
    main_help = run_cli("--help")

    assert help_text.code == ExitCode.OK
    assert "--public-key FILE" in help_text.stdout
    assert refused.code == ExitCode.SECURITY
    assert "not a complete, valid gzip file" in refused.stderr
    assert main_help.code == ExitCode.OK
    assert "--settings" in main_help.stdout
    assert "elspeth verify-bundle" in main_help.stdout
