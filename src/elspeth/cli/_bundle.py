"""``elspeth verify-bundle`` and ``elspeth keygen``: checking and signing reproducibility bundles.

Exit codes: 0 verified / key pair written; 2 bad arguments, an unreadable bundle path or a bad
key file; 3 the bundle failed verification (every problem listed on standard error).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from elspeth.cli._parser import Parser
from elspeth.outcome import ExitCode

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
Missing parent directories are created with mode 0700.
Give the public key (or its fingerprint) to whoever verifies your bundles, and the private key's
path to the bundle sink's signing.private_key_path.
"""


def verify_parser() -> Parser:
    parser = Parser(
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


def keygen_parser() -> Parser:
    parser = Parser(
        prog="elspeth keygen",
        description="Make a new Ed25519 key pair for signing bundles.",
        epilog=_KEYGEN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--private", metavar="FILE", type=Path, required=True)
    parser.add_argument("--public", metavar="FILE", type=Path, required=True)
    return parser


def verify(arguments: argparse.Namespace) -> int:
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
        return ExitCode.CONFIGURATION
    except BundleVerificationError as error:
        print(f"elspeth verify-bundle: {error}", file=sys.stderr)
        return ExitCode.SECURITY
    print(result.describe())
    return ExitCode.OK


def keygen(arguments: argparse.Namespace) -> int:
    from elspeth.bundle import BundleKeyError, generate_signing_key

    try:
        for path in (arguments.private, arguments.public):
            make_private_parents(path)
        fingerprint = generate_signing_key(arguments.private, arguments.public)
    except BundleKeyError as error:
        print(f"elspeth keygen: {error}", file=sys.stderr)
        return ExitCode.CONFIGURATION
    except OSError as error:
        print(f"elspeth keygen: {error.filename}: {error.strerror or error}", file=sys.stderr)
        return ExitCode.CONFIGURATION
    print(f"private key: {arguments.private} (mode 0600; keep it secret)")
    print(f"public key:  {arguments.public}")
    print(f"fingerprint: {fingerprint}")
    return ExitCode.OK


def make_private_parents(path: Path) -> None:
    """Create every missing directory above ``path`` with mode 0700 (not the umask's mode):
    they are about to hold a private key."""
    from elspeth.bundle import BundleKeyError

    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise BundleKeyError(f"{path}: the parent {parent} is not a directory")
            break
    missing = [parent for parent in path.absolute().parents if not parent.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=0o700)
        directory.chmod(0o700)
