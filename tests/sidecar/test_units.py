"""Unit tests of the pure parts: framing, decoder, MACs, schemas, engine, session, config, keys."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import cbor2
import pytest

from elspeth.security import SecurityLevel
from elspeth.sidecar import KeyFileError, SidecarConfig, SidecarConfigError, load_config
from elspeth.sidecar._daemon._engine import Refusal, SealEngine
from elspeth.sidecar._daemon._policy import OPERATIONS
from elspeth.sidecar._daemon._session import Peer, Session
from elspeth.sidecar._keys import (
    CHECKPOINT_KEY_POLICY,
    SESSION_KEY_POLICY,
    check_key_file_status,
    load_or_create_key,
    read_key_file,
)
from elspeth.sidecar._protocol import (
    ErrorCode,
    FrameReader,
    MacKey,
    ProtocolViolation,
    decode,
    encode_reply,
    encode_request,
    frame,
    mac_input,
    parse_reply,
    parse_request_envelope,
)
from elspeth.sidecar._schema import ArgumentError, Limits

LIMITS = Limits(max_batch=8, max_record_bytes=1024)
KEY = bytes(range(32))


# --- framing and decoding ------------------------------------------------------------------


def test_frame_reader_splits_a_stream_byte_by_byte() -> None:
    bodies = [b"", b"a", b"x" * 300]
    stream = b"".join(frame(b) for b in bodies)
    reader = FrameReader(1024)
    seen = []
    for byte in stream:
        reader.feed(bytes([byte]))
        while (body := reader.next_body()) is not None:
            seen.append(body)
    assert seen == bodies
    assert reader.buffered == 0


def test_frame_reader_refuses_a_declared_length_over_the_limit() -> None:
    reader = FrameReader(100)
    reader.feed(b"\x00\x00\x00\x65")
    with pytest.raises(ProtocolViolation) as caught:
        reader.next_body()
    assert caught.value.code is ErrorCode.BAD_FRAME


def test_decoder_refuses_every_tag() -> None:
    for tag in [*range(0, 300), 1004, 55799, 65535, 2**32]:
        with pytest.raises(ProtocolViolation):
            decode(cbor2.dumps(cbor2.CBORTag(tag, 0)))


@pytest.mark.parametrize(
    "data",
    [
        b"\x9f\x01\xff",  # indefinite-length array
        b"\xa2\x61a\x01\x61a\x02",  # duplicate key
        b"\xa1\x01\x02",  # integer map key
        b"\x81" * 10 + b"\x01",  # nesting deeper than any message needs
        b"\x1b",  # truncated
    ],
)
def test_decoder_refuses_what_the_protocol_does_not_use(data: bytes) -> None:
    with pytest.raises(ProtocolViolation):
        decode(data)


def test_mac_inputs_need_no_canonical_map_ordering() -> None:
    items = ("elspeth-sidecar/1", "req", bytes(32), 2**40, "derive", b"\xa0")
    assert mac_input(*items) == cbor2.dumps(list(items), canonical=True)


def test_request_round_trip_and_tamper_detection() -> None:
    key = MacKey(KEY)
    body = encode_request(key, b"n" * 32, 7, "health", {})
    envelope = parse_request_envelope(body)
    assert (envelope.op, envelope.seq, envelope.args) == ("health", 7, b"\xa0")
    reply = encode_reply(key, b"n" * 32, 7, status="ok", body={"x": 1}, audit_id=9)
    assert parse_reply(key, b"n" * 32, reply).body == {"x": 1}
    with pytest.raises(ProtocolViolation) as caught:
        parse_reply(key, b"m" * 32, reply)  # another connection's nonce
    assert caught.value.code is ErrorCode.BAD_MAC
    with pytest.raises(ProtocolViolation):
        parse_reply(MacKey(bytes(32)), b"n" * 32, reply)


# --- schemas -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "args", "path"),
    [
        ("authorize_construct", {"level": 5, "digest": bytes(32)}, "level"),
        ("authorize_construct", {"level": 1.0, "digest": bytes(32)}, "level"),
        ("authorize_construct", {"level": 1, "digest": bytes(33)}, "digest"),
        ("authorize_construct", {"level": 1}, "digest"),
        ("derive", {"parent_ids": ["a"], "digest": bytes(32)}, "parent_ids[0]"),
        (
            "derive_batch",
            {"items": [{"parent_ids": [], "digest": bytes(32)}]},
            "items[0].parent_ids",
        ),
        ("retire", {"frame_ids": ["0" * 32 + "-1"] * 9}, "frame_ids"),
        ("checkpoint_mac", {"record": bytes(1025)}, "record"),
        ("checkpoint_verify", {"record": b"", "mac": "x"}, "mac"),
    ],
)
def test_schemas_name_the_bad_field(op: str, args: dict[str, object], path: str) -> None:
    with pytest.raises(ArgumentError) as caught:
        OPERATIONS[op].arguments(args, LIMITS)
    assert path in str(caught.value)


def test_no_operation_lowers_a_level() -> None:
    assert not [name for name in OPERATIONS if "lower" in name or "declassify" in name]
    assert set(OPERATIONS) == {
        "authorize_construct",
        "redeem_grant",
        "derive",
        "derive_batch",
        "verify_seal",
        "verify_batch",
        "retire",
        "checkpoint_mac",
        "checkpoint_verify",
        "health",
    }


# --- engine and session --------------------------------------------------------------------


def _engine(mode: str = "sidecar") -> SealEngine:
    return SealEngine(
        checkpoint_key=bytearray(KEY),
        mode=mode,
        grant_ttl_seconds=60,
        max_grants=10,
        max_live_frames=10,
    )


def test_engine_derive_never_goes_below_a_parent() -> None:
    engine = _engine()
    grant, _ = engine.authorize_construct({"level": SecurityLevel.SECRET.rank, "digest": bytes(32)})
    parent, _ = engine.redeem_grant({"grant_id": grant["grant_id"]})
    for floor in (None, *(level.rank for level in SecurityLevel)):
        child, _ = engine.derive(
            {"parent_ids": (parent["frame_id"],), "digest": bytes(32), "floor": floor}
        )
        assert child["level"] == SecurityLevel.SECRET.rank


def test_engine_grant_ids_are_bound_to_the_construction_token() -> None:
    first, second = _engine(), _engine()
    grant, _ = first.authorize_construct(
        {"level": SecurityLevel.OFFICIAL.rank, "digest": bytes(32)}
    )
    with pytest.raises(Refusal) as caught:
        second.redeem_grant({"grant_id": grant["grant_id"]})
    assert caught.value.code is ErrorCode.UNKNOWN_GRANT


def _construct(engine: SealEngine, level: SecurityLevel, digest: bytes) -> dict[str, object]:
    grant, _ = engine.authorize_construct({"level": level.rank, "digest": digest})
    certificate, _ = engine.redeem_grant({"grant_id": grant["grant_id"]})
    return certificate


def test_session_checks_mac_before_sequence_and_dispatch() -> None:
    engine = _engine()
    key = MacKey(KEY)
    session = Session(
        engine, key, LIMITS, max_frame_bytes=4096, connection_id=1, peer=Peer(1, 2, 3)
    )
    nonce = session.nonce
    bad = session.handle(encode_request(MacKey(bytes(32)), nonce, 1, "health", {}))
    assert bad.close
    assert bad.audit.fields["code"] == "bad_mac"
    assert engine.counters.bad_macs == 1
    ok = session.handle(encode_request(key, nonce, 1, "health", {}))
    assert not ok.close
    assert ok.audit.status == "ok"
    replay = session.handle(encode_request(key, nonce, 1, "health", {}))
    assert replay.close
    assert replay.audit.fields["code"] == "replay"


# --- config --------------------------------------------------------------------------------


def test_config_defaults_and_a_missing_default_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUST_LOG", raising=False)
    monkeypatch.delenv("ELSPETH_SIDECAR_LOG", raising=False)
    config = SidecarConfig.from_mapping({}, environ={})
    assert config.socket_path == Path("/run/sidecar/auth.sock")
    assert config.allowed_users == ("appuser",)
    assert config.mode == "sidecar"
    assert config.grant_ttl_seconds == 60


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"socket_pth": "/x"}, "socket_pth"),
        ({"mode": "laptop"}, "mode"),
        ({"grant_ttl_seconds": -1}, "grant_ttl_seconds"),
        ({"max_batch": "10"}, "max_batch"),
        ({"socket_path": "relative.sock"}, "socket_path"),
        ({"allowed_uids": [-1]}, "allowed_uids"),
        ({"allowed_uids": [], "allowed_users": []}, "allowed_users"),
        ({"log_format": "xml"}, "log_format"),
        ({"max_record_bytes": 2_000_000}, "max_record_bytes"),
    ],
)
def test_bad_config_values_name_the_key(values: dict[str, object], key: str) -> None:
    with pytest.raises(SidecarConfigError, match=key):
        SidecarConfig.from_mapping(values, source="test.toml", environ={})


def test_log_level_precedence() -> None:
    assert SidecarConfig.from_mapping({}, environ={"RUST_LOG": "debug"}).log_level == "debug"
    assert (
        SidecarConfig.from_mapping({"log_level": "warn"}, environ={"RUST_LOG": "debug"}).log_level
        == "warn"
    )
    assert (
        SidecarConfig.from_mapping(
            {"log_level": "warn"}, environ={"RUST_LOG": "debug", "ELSPETH_SIDECAR_LOG": "trace"}
        ).log_level
        == "trace"
    )
    with pytest.raises(SidecarConfigError, match="RUST_LOG"):
        SidecarConfig.from_mapping({}, environ={"RUST_LOG": "loud"})


def test_invalid_toml_and_missing_explicit_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("mode = \n")
    with pytest.raises(SidecarConfigError, match="not valid TOML"):
        load_config(broken, environ={})
    with pytest.raises(SidecarConfigError, match="does not exist"):
        load_config(tmp_path / "absent.toml", environ={})


# --- key files -----------------------------------------------------------------------------


def _key_file(path: Path, data: bytes, mode: int) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def test_key_file_checks(tmp_path: Path) -> None:
    good = _key_file(tmp_path / "good", KEY, 0o640)
    assert bytes(read_key_file(good, SESSION_KEY_POLICY)) == KEY
    short = _key_file(tmp_path / "short", KEY[:31], 0o600)
    with pytest.raises(KeyFileError, match="exactly 32"):
        read_key_file(short, SESSION_KEY_POLICY)
    long = _key_file(tmp_path / "long", KEY + b"\n", 0o600)
    with pytest.raises(KeyFileError, match="more than 32"):
        read_key_file(long, SESSION_KEY_POLICY)
    for mode in (0o644, 0o660, 0o602):
        loose = _key_file(tmp_path / f"loose{mode:o}", KEY, mode)
        with pytest.raises(KeyFileError, match=f"chmod 0640 {loose}"):
            read_key_file(loose, SESSION_KEY_POLICY)
    group_readable = _key_file(tmp_path / "grp", KEY, 0o640)
    with pytest.raises(KeyFileError, match="chmod 0600"):
        read_key_file(group_readable, CHECKPOINT_KEY_POLICY)
    link = tmp_path / "link"
    link.symlink_to(good)
    with pytest.raises(KeyFileError, match="symlink"):
        read_key_file(link, SESSION_KEY_POLICY)


def test_key_messages_never_show_key_material(tmp_path: Path) -> None:
    secret = os.urandom(31)
    path = _key_file(tmp_path / "k", secret, 0o600)
    with pytest.raises(KeyFileError) as caught:
        read_key_file(path, SESSION_KEY_POLICY)
    assert secret.hex() not in str(caught.value)
    assert repr(secret) not in str(caught.value)


def test_absent_key_is_created_with_the_policy_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "checkpoint.key"
    created = load_or_create_key(path, CHECKPOINT_KEY_POLICY)
    assert len(created) == 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert bytes(load_or_create_key(path, CHECKPOINT_KEY_POLICY)) == bytes(created)


def test_example_config_documents_every_key_with_its_default() -> None:
    import tomllib

    from elspeth.sidecar._daemon._config import _KEYS

    example = Path(__file__).resolve().parents[2] / "docker" / "sidecar.toml.example"
    text = example.read_text()
    values = tomllib.loads(text)
    assert SidecarConfig.from_mapping(values, environ={}) == SidecarConfig.from_mapping(
        {}, environ={}
    )
    for key in _KEYS:
        assert f"{key} = " in text, key


def test_undecodable_arguments_refuse_the_request_but_keep_the_connection() -> None:
    import cbor2 as cbor

    engine = _engine()
    key = MacKey(KEY)
    session = Session(
        engine, key, LIMITS, max_frame_bytes=4096, connection_id=1, peer=Peer(1, 2, 3)
    )
    deep: object = {}
    for _ in range(10):
        deep = {"x": deep}
    envelope = cbor.loads(encode_request(key, session.nonce, 1, "health", {}))
    args = cbor.dumps(deep)
    from elspeth.sidecar._protocol import request_mac_input

    envelope["args"] = args
    envelope["mac"] = key.mac(request_mac_input(session.nonce, 1, "health", args))
    outcome = session.handle(cbor.dumps(envelope))
    assert outcome.audit.fields["code"] == "bad_request"
    assert not outcome.close


def _status(*, mode: int, uid: int) -> os.stat_result:
    return os.stat_result((mode, 1, 1, 1, uid, 0, 32, 0, 0, 0))


def test_key_owner_must_be_the_daemons_user_or_root(tmp_path: Path) -> None:
    path = tmp_path / ".session"
    owners = frozenset({4242, 0})
    regular = stat.S_IFREG | 0o640
    for uid in (4242, 0):
        check_key_file_status(path, _status(mode=regular, uid=uid), SESSION_KEY_POLICY, owners)
    with pytest.raises(KeyFileError) as caught:
        check_key_file_status(path, _status(mode=regular, uid=4343), SESSION_KEY_POLICY, owners)
    message = str(caught.value)
    assert str(path) in message
    assert "owned by uid 4343" in message
    assert "must be owned by the daemon's user or root (uid 4242" in message
    assert "uid 0" in message
    # The client passes no owners: it reads a key the daemon's user owns.
    check_key_file_status(path, _status(mode=regular, uid=4343), SESSION_KEY_POLICY, None)
    # The mode check still applies to a well-owned key.
    with pytest.raises(KeyFileError, match=f"chmod 0640 {path}"):
        check_key_file_status(
            path, _status(mode=stat.S_IFREG | 0o644, uid=4242), SESSION_KEY_POLICY, owners
        )


@pytest.mark.parametrize(
    ("file_type", "kind"),
    [
        (stat.S_IFIFO, "a FIFO"),
        (stat.S_IFDIR, "a directory"),
        (stat.S_IFSOCK, "a socket"),
        (stat.S_IFCHR, "a character device"),
        (stat.S_IFLNK, "a symlink"),
    ],
)
def test_non_regular_key_status_names_what_it_is(file_type: int, kind: str) -> None:
    path = Path("/run/sidecar/.session")
    with pytest.raises(KeyFileError, match=f"{path} is {kind}"):
        check_key_file_status(
            path, _status(mode=file_type | 0o640, uid=0), SESSION_KEY_POLICY, frozenset({0})
        )


def test_key_files_open_without_blocking_or_following(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o640)
    with pytest.raises(KeyFileError, match=f"{fifo} is a FIFO"):
        read_key_file(fifo, SESSION_KEY_POLICY)
    folder = tmp_path / "dir"
    folder.mkdir(mode=0o750)
    with pytest.raises(KeyFileError, match=f"{folder} is a directory"):
        read_key_file(folder, SESSION_KEY_POLICY)
    link = tmp_path / "link"
    link.symlink_to(fifo)
    with pytest.raises(KeyFileError, match=f"{link} is a symlink"):
        read_key_file(link, SESSION_KEY_POLICY)
    own = _key_file(tmp_path / "own", KEY, 0o640)
    mine = frozenset({os.geteuid(), 0})
    assert bytes(read_key_file(own, SESSION_KEY_POLICY, owners=mine)) == KEY
    with pytest.raises(KeyFileError, match=f"owned by uid {os.geteuid()}"):
        read_key_file(own, SESSION_KEY_POLICY, owners=frozenset({os.geteuid() + 1}))
