#!/opt/venv/bin/python
"""Wait until the deployed sidecar daemon answers an authenticated health check, or give up.

Installed as /usr/local/bin/elspeth-sidecar-wait; the orchestrator program runs it before the CLI
because supervisord starts programs in priority order but has no notion of "ready". It reads the
socket and session key paths from the daemon's own config. Exit status: 0 ready; 3 not ready in
time or the daemon failed authentication (fail closed, like the CLI's security refusals);
2 the config is invalid. ``--check-config`` only loads the config, as the daemon will, and exits
0 or 2: the entrypoint runs it before supervisord, so an invalid ``sidecar.toml`` ends the
container as the configuration error it is, in every mode.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from elspeth.errors import ConfigurationError
from elspeth.security import SecurityError
from elspeth.sidecar import SidecarClient, load_config

EXIT_READY = 0
EXIT_CONFIGURATION = 2
EXIT_NOT_READY = 3


def main() -> int:
    parser = argparse.ArgumentParser(prog="elspeth-sidecar-wait", description=__doc__)
    parser.add_argument("--config", type=Path, default=Path("/etc/elspeth/sidecar.toml"))
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    parser.add_argument(
        "--check-config", action="store_true", help="only check the config; exit 0 or 2"
    )
    arguments = parser.parse_args()
    started = time.monotonic()
    try:
        config = load_config(arguments.config)
        if arguments.check_config:
            return EXIT_READY
        client = SidecarClient.wait_until_ready(
            config.socket_path, config.session_key_path, arguments.timeout
        )
    except SecurityError as error:
        print(f"elspeth-sidecar-wait: sidecar daemon not usable: {error}", file=sys.stderr)
        return EXIT_NOT_READY
    except ConfigurationError as error:
        print(f"elspeth-sidecar-wait: {error}", file=sys.stderr)
        return EXIT_CONFIGURATION
    with client:
        print(
            f"elspeth-sidecar-wait: sidecar daemon ready at {config.socket_path} "
            f"(mode {client.mode}) after {time.monotonic() - started:.2f} s",
            file=sys.stderr,
        )
    return EXIT_READY


if __name__ == "__main__":
    sys.exit(main())
