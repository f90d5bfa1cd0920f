"""Client-side probes of the real daemon, run as ``appuser`` or ``appplugin`` (never root).

``python -I sidecar_client_probe.py '<json list of actions>'`` runs each action and prints one
JSON list of outcomes. An outcome is ``{"ok": value}``, ``{"errno": "EACCES"}`` for an OS
error, or ``{"error": "ClassName", "message": ...}`` for an error of the client library.
"""

from __future__ import annotations

import errno
import hashlib
import json
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2

from elspeth.errors import ElspethError
from elspeth.security import SecurityLevel
from elspeth.sidecar import SidecarClient
from elspeth.sidecar._protocol import LENGTH_PREFIX, MacKey, encode_request, frame

TIMEOUT = 5.0


def read_file(path: str) -> int:
    with open(path, "rb") as handle:
        return len(handle.read())


def read_frame(sock: socket.socket) -> bytes | None:
    """One length-prefixed frame, or ``None`` when the daemon closed the connection first."""
    buffer = b""
    needed = LENGTH_PREFIX.size
    while len(buffer) < needed:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        buffer += chunk
        if len(buffer) >= LENGTH_PREFIX.size:
            needed = LENGTH_PREFIX.size + LENGTH_PREFIX.unpack_from(buffer)[0]
    return buffer[LENGTH_PREFIX.size : needed]


def greeting(socket_path: str) -> str:
    """Connect without any key: ``greeted`` if the daemon spoke first, ``closed`` if it hung up."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.connect(socket_path)
        return "greeted" if read_frame(sock) is not None else "closed"


def forged_request(socket_path: str, key_path: str) -> dict[str, Any]:
    """A well-formed request MAC'd with the key at ``key_path``: what does the daemon answer?

    The greeting and the reply are decoded without checking their MACs (a caller holding the
    wrong key could not), to read the daemon's error code.
    """
    key = Path(key_path).read_bytes()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.connect(socket_path)
        hello = read_frame(sock)
        if hello is None:
            return {"greeted": False}
        nonce = cbor2.loads(hello)["nonce"]
        sock.sendall(frame(encode_request(MacKey(key), nonce, 1, "health", {})))
        reply = read_frame(sock)
        if reply is None:
            return {"greeted": True, "reply": None}
        envelope = cbor2.loads(reply)
        refused = envelope["status"] == "error"
        return {
            "greeted": True,
            "status": envelope["status"],
            "code": cbor2.loads(envelope["body"]).get("code"),
            # After a refusal the daemon must hang up; after an answer it keeps listening.
            "closed_after": read_frame(sock) is None if refused else None,
        }


def client_connect(socket_path: str, key_path: str) -> str:
    with SidecarClient.connect(socket_path, key_path, timeout=TIMEOUT) as client:
        return client.mode


def seal_round_trip(socket_path: str, key_path: str, level: str) -> dict[str, Any]:
    """Grant, redeem, verify, derive (with a floor), verify: a frame's whole life."""
    wanted = SecurityLevel.parse(level)
    digest = hashlib.blake2b(b"root tier " + level.encode(), digest_size=32).digest()
    with SidecarClient.connect(socket_path, key_path, timeout=TIMEOUT) as client:
        grant = client.authorize_construct(wanted, digest)
        origin = client.redeem_grant(grant)
        client.verify_seal(origin)
        derived = client.derive([origin.frame_id], bytes(reversed(digest)), SecurityLevel.OFFICIAL)
        client.verify_seal(derived)
        return {
            "mode": client.mode,
            "level": origin.level.name,
            "derived_level": derived.level.name,
            "frame_id": origin.frame_id,
            "derived_frame_id": derived.frame_id,
        }


def health(socket_path: str, key_path: str) -> dict[str, Any]:
    with SidecarClient.connect(socket_path, key_path, timeout=TIMEOUT) as client:
        return client.health()


ACTIONS: dict[str, Callable[..., Any]] = {
    "read_file": read_file,
    "greeting": greeting,
    "forged_request": forged_request,
    "client_connect": client_connect,
    "seal_round_trip": seal_round_trip,
    "health": health,
}


def run(action: dict[str, Any]) -> dict[str, Any]:
    arguments = dict(action)
    name = arguments.pop("action")
    try:
        return {"ok": ACTIONS[name](**arguments)}
    except OSError as error:
        return {"errno": errno.errorcode.get(error.errno or 0, str(error))}
    except ElspethError as error:
        return {"error": type(error).__name__, "message": str(error)}


def main() -> int:
    print(json.dumps([run(action) for action in json.loads(sys.argv[1])]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
