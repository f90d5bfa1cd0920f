"""The daemon's configuration: a TOML file, every key validated, every error naming the key.

``docker/sidecar.toml.example`` documents each key with its default. A missing file at the
default path means all defaults; a missing file that was named explicitly is an error.

Log level precedence (first that is set wins): the ``ELSPETH_SIDECAR_LOG`` environment variable,
``log_level`` in the config file, the ``RUST_LOG`` environment variable (the deployment's
generic default, which the container sets to ``info``), then ``info``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from elspeth.sidecar._errors import SidecarConfigError

DEFAULT_CONFIG_PATH: Final = Path("/etc/elspeth/sidecar.toml")
LOG_LEVELS: Final = ("error", "warn", "info", "debug", "trace")
MODES: Final = ("sidecar", "standalone")
LOG_FORMATS: Final = ("json", "text")


@dataclass(frozen=True, slots=True)
class SidecarConfig:
    """Validated daemon settings; construct with :func:`load_config` or :meth:`from_mapping`."""

    socket_path: Path = Path("/run/sidecar/auth.sock")
    session_key_path: Path = Path("/run/sidecar/.session")
    checkpoint_key_path: Path = Path("/var/lib/elspeth-sidecar/checkpoint.key")
    audit_log_path: Path = Path("/var/log/elspeth-sidecar/audit.jsonl")
    allowed_uids: tuple[int, ...] = ()
    allowed_users: tuple[str, ...] = ("appuser",)
    socket_group: str = "sidecar"
    mode: str = "sidecar"
    grant_ttl_seconds: float = 60.0
    max_grants: int = 10_000
    max_live_frames: int = 100_000
    max_frame_bytes: int = 1_048_576
    max_record_bytes: int = 262_144
    max_connections: int = 64
    max_connections_per_peer: int = 8
    max_inflight_per_connection: int = 32
    max_batch: int = 4096
    read_timeout_seconds: float = 10.0
    idle_timeout_seconds: float = 600.0
    first_request_timeout_seconds: float = 5.0
    refusal_log_interval_seconds: float = 10.0
    log_level: str = "info"
    log_format: str = "json"
    audit_fsync_interval_seconds: float = 1.0
    lock_memory: bool = True
    parent_pid: int = 0
    source: str = field(default="(defaults)", compare=False)

    @classmethod
    def from_mapping(
        cls,
        values: Mapping[str, Any],
        *,
        source: str = "(mapping)",
        environ: Mapping[str, str] | None = None,
    ) -> SidecarConfig:
        """Validate ``values`` (as read from TOML); unknown keys and bad values are errors."""
        environ = os.environ if environ is None else environ
        unknown = sorted(set(values) - set(_KEYS))
        if unknown:
            raise SidecarConfigError(
                f"{source}: unknown key(s) {', '.join(unknown)}; "
                f"known keys: {', '.join(sorted(_KEYS))}"
            )
        checked: dict[str, Any] = {}
        for key, value in values.items():
            try:
                checked[key] = _KEYS[key](value)
            except (TypeError, ValueError) as exc:
                raise SidecarConfigError(f"{source}: key {key!r}: {exc}") from None
        checked["log_level"] = _effective_log_level(checked.get("log_level"), environ, source)
        config = cls(**checked, source=source)
        config._check_relations()
        return config

    def _check_relations(self) -> None:
        if self.max_record_bytes + 1024 > self.max_frame_bytes:
            raise SidecarConfigError(
                f"{self.source}: key 'max_record_bytes' ({self.max_record_bytes}) must leave "
                f"at least 1024 bytes of room below max_frame_bytes ({self.max_frame_bytes})"
            )
        if not self.allowed_uids and not self.allowed_users:
            raise SidecarConfigError(
                f"{self.source}: keys 'allowed_uids' and 'allowed_users' are both empty: "
                "no client could ever connect"
            )

    def replace(self, **changes: Any) -> SidecarConfig:
        return dataclasses.replace(self, **changes)


def load_config(path: Path | None, *, environ: Mapping[str, str] | None = None) -> SidecarConfig:
    """Read and validate the TOML file at ``path`` (``None``: the default path, if present)."""
    explicit = path is not None
    path = DEFAULT_CONFIG_PATH if path is None else path
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        if explicit:
            raise SidecarConfigError(f"config file {path} does not exist") from None
        return SidecarConfig.from_mapping({}, source="(defaults)", environ=environ)
    except OSError as exc:
        raise SidecarConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    try:
        values = tomllib.loads(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise SidecarConfigError(f"config file {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise SidecarConfigError(f"config file {path} is not valid TOML: {exc}") from None
    return SidecarConfig.from_mapping(values, source=str(path), environ=environ)


def _effective_log_level(configured: str | None, environ: Mapping[str, str], source: str) -> str:
    for origin, value in (
        ("environment variable ELSPETH_SIDECAR_LOG", environ.get("ELSPETH_SIDECAR_LOG")),
        (f"{source}: key 'log_level'", configured),
        ("environment variable RUST_LOG", environ.get("RUST_LOG")),
    ):
        if value:
            level = value.strip().lower()
            if level not in LOG_LEVELS:
                raise SidecarConfigError(
                    f"{origin}: log level {value!r} is not one of {', '.join(LOG_LEVELS)}"
                )
            return level
    return "info"


# --- value checkers: raise ValueError/TypeError with a message about the value --------------


def _absolute_path(value: object) -> Path:
    if not isinstance(value, str) or not value:
        raise TypeError(f"must be a non-empty path string, not {value!r}")
    path = Path(value)
    if not path.is_absolute():
        raise ValueError(f"must be an absolute path, not {value!r}")
    return path


def _int_between(low: int, high: int) -> Callable[[object], int]:
    def check(value: object) -> int:
        if type(value) is not int:
            raise TypeError(f"must be an integer, not {value!r}")
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, not {value}")
        return value

    return check


def _seconds_between(low: float, high: float) -> Callable[[object], float]:
    def check(value: object) -> float:
        if type(value) not in (int, float):
            raise TypeError(f"must be a number of seconds, not {value!r}")
        number = float(value)  # type: ignore[arg-type]
        if not (math.isfinite(number) and low <= number <= high):
            raise ValueError(f"must be between {low} and {high} seconds, not {value}")
        return number

    return check


def _one_of(*choices: str) -> Callable[[object], str]:
    def check(value: object) -> str:
        if not isinstance(value, str) or value.lower() not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, not {value!r}")
        return value.lower()

    return check


def _uid_list(value: object) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise TypeError(f"must be a list of user ids, not {value!r}")
    checker = _int_between(0, 2**32 - 2)
    return tuple(checker(item) for item in value)


def _name_list(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise TypeError(f"must be a list of user names, not {value!r}")
    return tuple(value)


def _group_name(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f'must be a group name (or "" to keep the daemon\'s group), not {value!r}')
    return value


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"must be true or false, not {value!r}")
    return value


_KEYS: Final[Mapping[str, Callable[[object], Any]]] = {
    "socket_path": _absolute_path,
    "session_key_path": _absolute_path,
    "checkpoint_key_path": _absolute_path,
    "audit_log_path": _absolute_path,
    "allowed_uids": _uid_list,
    "allowed_users": _name_list,
    "socket_group": _group_name,
    "mode": _one_of(*MODES),
    "grant_ttl_seconds": _seconds_between(0.01, 86_400),
    "max_grants": _int_between(1, 10_000_000),
    "max_live_frames": _int_between(1, 100_000_000),
    "max_frame_bytes": _int_between(4096, 64 * 1024 * 1024),
    "max_record_bytes": _int_between(64, 64 * 1024 * 1024),
    "max_connections": _int_between(1, 65_536),
    "max_connections_per_peer": _int_between(1, 65_536),
    "max_inflight_per_connection": _int_between(1, 65_536),
    "max_batch": _int_between(1, 1_000_000),
    "read_timeout_seconds": _seconds_between(0.05, 3600),
    "idle_timeout_seconds": _seconds_between(0.05, 86_400 * 7),
    "first_request_timeout_seconds": _seconds_between(0.05, 3600),
    "refusal_log_interval_seconds": _seconds_between(0.05, 86_400),
    "log_level": _one_of(*LOG_LEVELS),
    "log_format": _one_of(*LOG_FORMATS),
    "audit_fsync_interval_seconds": _seconds_between(0, 3600),
    "lock_memory": _boolean,
    "parent_pid": _int_between(0, 2**31 - 1),
}
