"""The test vectors in docs/sidecar-protocol.md, checked byte for byte against the code.

Run ``python -m tests.sidecar.test_protocol_vectors`` to print the vector block for the doc.
"""

from __future__ import annotations

import re
from pathlib import Path

from elspeth.sidecar._protocol import (
    Greeting,
    MacKey,
    checkpoint_mac_input,
    encode_greeting,
    encode_reply,
    encode_request,
    frame,
    frame_id_for,
    grant_mac_input,
    greeting_mac_input,
    parse_greeting,
    parse_reply,
    parse_request_envelope,
    reply_mac_input,
    request_mac_input,
    seal_mac_input,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "sidecar-protocol.md"

SESSION_KEY = bytes(range(0x00, 0x20))
SEAL_KEY = bytes(range(0x20, 0x40))
CONSTRUCTION_TOKEN = bytes(range(0x40, 0x60))
CHECKPOINT_KEY = bytes(range(0x60, 0x80))
NONCE = bytes([0x11]) * 32
BOOT_ID = bytes([0x22]) * 16
DIGEST = bytes([0x33]) * 32
GRANT_RANDOM = bytes([0x44]) * 16
GRANT_EXPIRES_MS = 1_700_000_000_000
RECORD = b"checkpoint record"


def compute_vectors() -> dict[str, str]:
    session = MacKey(SESSION_KEY)
    greeting = Greeting(1, NONCE, BOOT_ID, "sidecar", 1_048_576, 4096)
    args = {"level": 1, "digest": DIGEST}
    request = encode_request(session, NONCE, 1, "authorize_construct", args)
    envelope = parse_request_envelope(request)
    frame_id = frame_id_for(BOOT_ID, 1)
    seal = MacKey(SEAL_KEY).mac(seal_mac_input(frame_id, 1, DIGEST))
    ok_body = {"frame_id": frame_id, "level": 1, "digest": DIGEST, "seal": seal}
    ok_reply = encode_reply(session, NONCE, 2, status="ok", body=ok_body, audit_id=2)
    error_body = {"code": "unknown_grant", "message": "grant is unknown"}
    error_reply = encode_reply(session, NONCE, 3, status="error", body=error_body, audit_id=3)
    grant_tag = MacKey(CONSTRUCTION_TOKEN).mac(
        grant_mac_input(GRANT_RANDOM, 1, DIGEST, GRANT_EXPIRES_MS)
    )
    vectors = {
        "greeting.mac_input": greeting_mac_input(greeting),
        "greeting.frame": frame(encode_greeting(session, greeting)),
        "request.args": envelope.args,
        "request.mac_input": request_mac_input(NONCE, 1, "authorize_construct", envelope.args),
        "request.mac": envelope.mac,
        "request.frame": frame(request),
        "seal.frame_id": frame_id.encode(),
        "seal.mac_input": seal_mac_input(frame_id, 1, DIGEST),
        "seal": seal,
        "reply_ok.body": _body_of(ok_reply),
        "reply_ok.mac_input": reply_mac_input(NONCE, 2, "ok", 2, _body_of(ok_reply)),
        "reply_ok.frame": frame(ok_reply),
        "reply_error.frame": frame(error_reply),
        "grant.mac_input": grant_mac_input(GRANT_RANDOM, 1, DIGEST, GRANT_EXPIRES_MS),
        "grant.id": GRANT_RANDOM + grant_tag[:16],
        "checkpoint.mac_input": checkpoint_mac_input(RECORD),
        "checkpoint.mac": MacKey(CHECKPOINT_KEY).mac(checkpoint_mac_input(RECORD)),
    }
    return {name: value.hex() for name, value in vectors.items()}


def _body_of(reply: bytes) -> bytes:
    import cbor2

    body: bytes = cbor2.loads(reply)["body"]
    return body


def _doc_vectors() -> dict[str, str]:
    text = DOC.read_text("utf-8")
    block = text.split("<!-- vectors:begin -->", 1)[1].split("<!-- vectors:end -->", 1)[0]
    return dict(re.findall(r"^([a-z_.]+)\s*=\s*([0-9a-f]+)\s*$", block, flags=re.MULTILINE))


def test_doc_vectors_match_the_code_byte_for_byte() -> None:
    documented = _doc_vectors()
    computed = compute_vectors()
    assert documented.keys() == computed.keys()
    for name, value in computed.items():
        assert documented[name] == value, name


def test_vectors_parse_back() -> None:
    session = MacKey(SESSION_KEY)
    documented = _doc_vectors()
    greeting = parse_greeting(session, bytes.fromhex(documented["greeting.frame"])[4:])
    assert (greeting.nonce, greeting.boot_id) == (NONCE, BOOT_ID)
    reply = parse_reply(session, NONCE, bytes.fromhex(documented["reply_ok.frame"])[4:])
    assert reply.body["seal"].hex() == documented["seal"]
    error = parse_reply(session, NONCE, bytes.fromhex(documented["reply_error.frame"])[4:])
    assert error.body["code"] == "unknown_grant"


if __name__ == "__main__":
    for key, value in compute_vectors().items():
        print(f"{key} = {value}")
