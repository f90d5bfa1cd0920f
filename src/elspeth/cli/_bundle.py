"""``elspeth verify-bundle`` and ``elspeth keygen``: checking and signing reproducibility bundles.

Exit codes: 0 verified / key pair written; 2 bad arguments, an unreadable bundle path or a bad
key file; 3 the bundle failed verification (every problem listed on standard error).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from elspeth.cli import EXIT_CONFIGURATION, EXIT_OK, EXIT_SECURITY

_VERIFY_EPILOG = """\
exit codes:
  0  every file matches the manifest and the signature verifies
  2  bad arguments, an unreadable bundle path or a bad key file
  3  the bundle failed verification: every problem is listed on standard error

Without --public-key the signature is checked against the key the bundle itself names, which
proves only that the holder of that key signed it: compare the printed fingerprint with the
publisher's, or pin the publisher's key with --public-key.
"""

_KEYGEN_EPILOG = """\
The private key is written with mode 0600 and the public key with 0644; neither file may exist.
Give the public key (or its fingerprint) to whoever verifies your bundles, and the private key's
path to the bundle sink's signing.private_key_path.
"""


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """Usage errors come back as exit status 2 from :func:`run_subcommand`, not SystemExit."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.format_usage()}{self.prog}: error: {message}")


def _verify_parser() -> _Parser:
    parser = _Parser(
        prog="elspeth verify-bundle",
        description="Check a reproducibility bundle: every file's SHA-256 and the signature.",
        epilog=_VERIFY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("path", metavar="PATH", type=Path, help="the bundle (.tar.gz)")
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument(
        "--public-key",
        metavar="FILE",
        type=Path,
        help="the signer's Ed25519 public key (PEM): the signature must verify with it",
    )
    keys.add_argument(
        "--hmac-key",
        metavar="FILE",
        type=Path,
        help="the shared key of an hmac-sha256 bundle (integrity only: any holder can forge)",
    )
    return parser


def _keygen_parser() -> _Parser:
    parser = _Parser(
        prog="elspeth keygen",
        description="Make a new Ed25519 key pair for signing bundles.",
        epilog=_KEYGEN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--private", metavar="FILE", type=Path, required=True)
    parser.add_argument("--public", metavar="FILE", type=Path, required=True)
    return parser


def _verify(arguments: argparse.Namespace) -> int:
    from elspeth.bundle import (
        BundleFileError,
        BundleKeyError,
        BundleVerificationError,
        verify_bundle,
    )

    try:
        result = verify_bundle(
            arguments.path, public_key=arguments.public_key, hmac_key=arguments.hmac_key
        )
    except (BundleFileError, BundleKeyError) as error:
        print(f"elspeth verify-bundle: {error}", file=sys.stderr)
        return EXIT_CONFIGURATION
    except BundleVerificationError as error:
        print(f"elspeth verify-bundle: {error}", file=sys.stderr)
        return EXIT_SECURITY
    print(result.describe())
    return EXIT_OK


def _keygen(arguments: argparse.Namespace) -> int:
    from elspeth.bundle import BundleKeyError, generate_signing_key

    try:
        fingerprint = generate_signing_key(arguments.private, arguments.public)
    except BundleKeyError as error:
        print(f"elspeth keygen: {error}", file=sys.stderr)
        return EXIT_CONFIGURATION
    print(f"private key: {arguments.private} (mode 0600; keep it secret)")
    print(f"public key:  {arguments.public}")
    print(f"fingerprint: {fingerprint}")
    return EXIT_OK


SUBCOMMANDS: Mapping[str, tuple[Callable[[], _Parser], Callable[[argparse.Namespace], int]]] = {
    "verify-bundle": (_verify_parser, _verify),
    "keygen": (_keygen_parser, _keygen),
}
"""Subcommand name → (its parser, what it runs)."""


def run_subcommand(name: str, argv: Sequence[str]) -> int:
    """Run subcommand ``name`` with the arguments after it; returns the exit status."""
    make_parser, command = SUBCOMMANDS[name]
    try:
        arguments = make_parser().parse_args(argv)
    except _UsageError as error:
        print(error, file=sys.stderr)
        return EXIT_CONFIGURATION
    return command(arguments)
