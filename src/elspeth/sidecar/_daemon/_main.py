"""``elspeth-sidecar``: start-up, hardening, key loading, serving, orderly exit.

Exit status: 0 after SIGTERM/SIGINT, 1 when start-up fails (key file, socket, audit log) or the
daemon had to stop (audit log failure), 2 for an invalid configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import pwd
import sys
import time
from pathlib import Path
from typing import Final

from elspeth.sidecar._daemon._audit import AuditLog
from elspeth.sidecar._daemon._config import DEFAULT_CONFIG_PATH, SidecarConfig, load_config
from elspeth.sidecar._daemon._engine import SealEngine
from elspeth.sidecar._daemon._server import (
    SidecarServer,
    SocketInUseError,
    create_listening_socket,
    prepare_socket_directory,
    resolve_allowed_uids,
)
from elspeth.sidecar._errors import KeyFileError, SidecarConfigError
from elspeth.sidecar._keys import (
    CHECKPOINT_KEY_POLICY,
    SESSION_KEY_POLICY,
    daemon_key_owners,
    harden_process,
    load_or_create_key,
    lock_in_memory,
)
from elspeth.sidecar._protocol import MacKey

_log = logging.getLogger("elspeth.sidecar")

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_CONFIG: Final = 2

_PYTHON_LEVELS: Final = {
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": logging.DEBUG,
}


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, log_format: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("elspeth.sidecar")
    logger.handlers[:] = [handler]
    logger.setLevel(_PYTHON_LEVELS[level])
    logger.propagate = False


def run(config: SidecarConfig) -> int:
    """Run the daemon until SIGTERM/SIGINT; returns the exit status."""
    harden_process()
    allowed_uids = resolve_allowed_uids(config, lambda name: pwd.getpwnam(name).pw_uid)
    prepare_socket_directory(config.socket_path, config.socket_group)
    owners = daemon_key_owners()
    session_key = load_or_create_key(
        config.session_key_path, SESSION_KEY_POLICY, group=config.socket_group, owners=owners
    )
    session_mac = MacKey(session_key)
    checkpoint_key = load_or_create_key(
        config.checkpoint_key_path, CHECKPOINT_KEY_POLICY, owners=owners
    )
    engine = SealEngine(
        checkpoint_key=checkpoint_key,
        mode=config.mode,
        grant_ttl_seconds=config.grant_ttl_seconds,
        max_grants=config.max_grants,
        max_live_frames=config.max_live_frames,
    )
    secrets_in_memory = (session_key, *engine.secret_buffers)
    try:
        if config.lock_memory and not lock_in_memory(secrets_in_memory):
            _log.info("mlock of key buffers refused (RLIMIT_MEMLOCK); relying on no swap")
        if config.mode == "standalone":
            _log.warning(
                "STANDALONE MODE: private single-user daemon; levels above OFFICIAL_SENSITIVE "
                "are refused and no privilege separation applies"
            )
        audit = AuditLog(config.audit_log_path, fsync_interval=config.audit_fsync_interval_seconds)
        try:
            listening = create_listening_socket(config.socket_path, config.socket_group)
            try:
                server = SidecarServer(
                    config=config,
                    engine=engine,
                    session_key=session_mac,
                    audit=audit,
                    listening=listening,
                    allowed_uids=allowed_uids,
                )
                asyncio.run(server.serve())
            finally:
                listening.remove()
                listening.sock.close()
        finally:
            audit.close()
    finally:
        for buffer in secrets_in_memory:
            buffer[:] = bytes(len(buffer))
    if server.failure is not None:
        return EXIT_FAILURE
    _log.info("stopped cleanly at %s", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``elspeth-sidecar`` and ``python -m elspeth.sidecar``."""
    parser = argparse.ArgumentParser(
        prog="elspeth-sidecar",
        description="Elspeth's sidecar security daemon: issues and checks frame seals.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"TOML configuration file (default {DEFAULT_CONFIG_PATH}; absent means defaults)",
    )
    options = parser.parse_args(argv)
    try:
        config = load_config(options.config)
    except SidecarConfigError as exc:
        print(f"elspeth-sidecar: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(config.log_level, config.log_format)
    try:
        return run(config)
    except SidecarConfigError as exc:
        _log.error("configuration error: %s", exc)
        return EXIT_CONFIG
    except (KeyFileError, SocketInUseError) as exc:
        _log.error("cannot start: %s", exc)
        return EXIT_FAILURE
    except OSError as exc:
        _log.error("cannot start: %s: %s", exc.filename or "", exc.strerror or exc)
        return EXIT_FAILURE
