"""A bundle written through the real sink verifies; every kind of tampering is caught and named."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from elspeth.audit import FrameGranted
from elspeth.bundle import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    BundleConfig,
    BundleSink,
    BundleVerificationError,
    verify_bundle,
)
from elspeth.datasources import PARQUET_CLASSIFICATION_KEY
from elspeth.security import ClearanceError, SecurityLevel
from elspeth.sidecar import SidecarClient
from elspeth.sinks import SinkError
from elspeth.suite._audit import AuditLog
from tests.bundle.conftest import SHARED_LEVEL, SharedBundles, write_hmac_key
from tests.bundle.helpers import (
    KeyPair,
    canonical,
    forge,
    make_key_pair,
    manifest_of,
    members,
    rewrite,
    tampered,
    write_bundle,
)
from tests.support.reports import RUN_ID as REPORT_RUN_ID
from tests.support.reports import make_suite_report

DATA_FILES = {
    "results/baseline.parquet",
    "results/terse_prompt.parquet",
    "results/second_opinion.parquet",
    "aggregates/baseline/score_summary.parquet",
    "aggregates/terse_prompt/score_summary.parquet",
    "aggregates/second_opinion/score_summary.parquet",
    "comparisons/versus_baseline/terse_prompt.parquet",
    "comparisons/versus_baseline/second_opinion.parquet",
}
RECORD_FILES = {
    "settings.json",
    "prompts.json",
    "plugins.json",
    "packages.json",
    "clearance_plan.json",
    "summary.json",
}


def problems_of(path: Path, **keys: Path) -> tuple[str, ...]:
    with pytest.raises(BundleVerificationError) as raised:
        verify_bundle(path, **keys)  # type: ignore[arg-type]
    assert str(raised.value).count("\n  - ") == len(raised.value.problems)
    return raised.value.problems


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


# --- round trip ------------------------------------------------------------------------------


def test_round_trip_verifies_pinned_and_unpinned(shared: SharedBundles) -> None:
    path = shared.signed.path

    pinned = verify_bundle(path, public_key=shared.signer.public)
    unpinned = verify_bundle(path)

    assert pinned.classification is SHARED_LEVEL
    assert pinned.method == "ed25519"
    assert pinned.signer_fingerprint == shared.signer.fingerprint
    assert pinned.signer_pinned
    assert not pinned.integrity_only
    assert pinned.files_checked == len(DATA_FILES | RECORD_FILES)
    assert "pinned by the given public key" in pinned.describe()
    assert not unpinned.signer_pinned
    assert unpinned.signer_fingerprint == shared.signer.fingerprint
    assert "NOT PINNED" in unpinned.describe()


def test_bundle_is_private_named_with_its_level_and_leaves_nothing_else(
    shared: SharedBundles,
) -> None:
    path = shared.signed.path

    assert path.name == "bundle__evidence__OFFICIAL_SENSITIVE.tar.gz"
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    artifact = shared.signed.artifact
    assert (artifact.format, artifact.level) == ("bundle", SHARED_LEVEL)
    assert artifact.rows == 3 * 40 + 3 * 2 + 2 * 2


def test_members_are_regular_private_and_stamped_with_the_report_time(
    shared: SharedBundles,
) -> None:
    created = dt.datetime.fromisoformat(shared.signed.report.created_at).timestamp()
    with tarfile.open(shared.signed.path, "r:gz") as archive:
        infos = archive.getmembers()

    names = [info.name for info in infos]
    assert names == sorted(names)
    assert set(names) == DATA_FILES | RECORD_FILES | {MANIFEST_NAME, SIGNATURE_NAME}
    for info in infos:
        assert info.type == tarfile.REGTYPE
        assert (info.mode, info.uid, info.gid, info.uname, info.gname) == (0o600, 0, 0, "", "")
        assert info.mtime == created


def test_manifest_lists_every_file_and_the_frames_the_seal_authority_released(
    shared: SharedBundles,
) -> None:
    report, artifact = shared.signed.report, shared.signed.artifact
    contents = members(shared.signed.path)
    manifest = manifest_of(shared.signed.path)

    assert manifest["format"] == "elspeth-bundle-v1"
    assert manifest["classification"] == SHARED_LEVEL.name
    assert (manifest["suite"], manifest["run_id"]) == (report.suite, report.run_id)
    assert set(manifest["files"]) == DATA_FILES | RECORD_FILES
    for name, record in manifest["files"].items():
        assert record["sha256"] == sha(contents[name])
        assert record["bytes"] == len(contents[name])
    expected = {f"results/{e.name}.parquet": e.results for e in report.experiments}
    expected.update(
        {
            f"aggregates/{e.name}/{aggregator}.parquet": (frame,)
            for e in report.experiments
            for aggregator, frame in e.aggregates.items()
        }
    )
    expected.update(
        {f"comparisons/{c.comparison}/{c.variant}.parquet": (c.frame,) for c in report.comparisons}
    )
    audit_ids = []
    for name, frames in expected.items():
        record = manifest["files"][name]
        assert record["classification"] == SHARED_LEVEL.name
        listed = [(f["frame_id"], f["level"], f["digest"]) for f in record["frames"]]
        assert listed == [(f.frame_id, f.security_level.name, f.digest.hex()) for f in frames]
        audit_ids.extend(f["seal_audit_id"] for f in record["frames"])
        table = pq.read_table(io.BytesIO(contents[name]))
        assert table.schema.metadata[PARQUET_CLASSIFICATION_KEY] == SHARED_LEVEL.name.encode()
    assert sorted(audit_ids) == sorted(artifact.seal_audit_ids)
    assert len(set(audit_ids)) == len(audit_ids)
    results = pq.read_table(io.BytesIO(contents["results/baseline.parquet"])).to_pandas()
    assert list(results["request_id"]) == list(report.baseline.results_data()["request_id"])


def test_record_files_say_what_ran(shared: SharedBundles) -> None:
    contents = members(shared.signed.path)

    plan = json.loads(contents["clearance_plan.json"])
    assert {"component": "datasource", "kind": "datasource", "allowed": True}.items() <= plan[
        0
    ].items()
    assert plan[0]["incoming"] == SHARED_LEVEL.name
    packages = json.loads(contents["packages.json"])
    assert "cryptography" in packages
    assert list(packages) == sorted(packages)
    plugins = json.loads(contents["plugins.json"])
    assert [p["instance"] for p in plugins] == ["urgency_score", "score_summary"]
    summary = json.loads(contents["summary.json"])
    assert [e["name"] for e in summary["experiments"]] == [
        "baseline",
        "terse_prompt",
        "second_opinion",
    ]
    assert summary["comparisons"][0]["variant"] == "terse_prompt"


def test_same_report_and_release_give_the_same_bytes(
    authority: SidecarClient, signing_key: KeyPair
) -> None:
    report = make_suite_report(authority)
    sink = BundleSink(config_for(signing_key, SecurityLevel.OFFICIAL))
    release = sink.release(report)
    first, second = io.BytesIO(), io.BytesIO()

    sink.render(report, release, first)
    sink.render(report, release, second)

    assert first.getvalue() == second.getvalue()
    # A second release check of the same report has new seal audit ids, which the manifest holds.
    other = sink.release(report)
    assert other.audit_ids != release.audit_ids
    third = io.BytesIO()
    sink.render(report, other, third)
    assert third.getvalue() != first.getvalue()


def test_the_audit_log_is_copied(
    authority: SidecarClient, signing_key: KeyPair, tmp_path: Path
) -> None:
    audit = _chained_audit_log(tmp_path / "audit.jsonl", REPORT_RUN_ID, count=3)

    written = write_bundle(authority, tmp_path / "run", signing_of(signing_key), audit_log=audit)

    assert members(written.path)["audit.jsonl"] == audit.read_bytes()
    assert "audit.jsonl" in manifest_of(written.path)["files"]
    assert verify_bundle(written.path, public_key=signing_key.public).files_checked == 15


def _chained_audit_log(path: Path, run_id: str, *, count: int) -> Path:
    log = AuditLog(path, run_id)
    for chunk in range(count):
        log.record(FrameGranted(chunk=chunk, rows=10, level="OFFICIAL", audit_id=chunk + 1))
    log.close()
    return path


@pytest.mark.parametrize("damage", ["swap", "drop", "other_run"])
def test_a_signed_bundle_whose_audit_chain_is_broken_fails_verification(
    authority: SidecarClient, signing_key: KeyPair, tmp_path: Path, damage: str
) -> None:
    """The writer signs whatever log it is given; the verifier checks the chain inside."""
    run_id = REPORT_RUN_ID if damage != "other_run" else "20261129T020000Z-def456"
    lines = _chained_audit_log(tmp_path / "audit.jsonl", run_id, count=3).read_bytes()
    kept = lines.splitlines(keepends=True)
    if damage == "swap":
        kept[1], kept[2] = kept[2], kept[1]
    elif damage == "drop":
        del kept[1]
    (tmp_path / "audit.jsonl").write_bytes(b"".join(kept))

    written = write_bundle(
        authority, tmp_path / "run", signing_of(signing_key), audit_log=tmp_path / "audit.jsonl"
    )

    with pytest.raises(BundleVerificationError, match=r"audit\.jsonl line (1|2): "):
        verify_bundle(written.path, public_key=signing_key.public)


def test_a_failure_while_rendering_leaves_nothing_behind(
    authority: SidecarClient, signing_key: KeyPair, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()

    with pytest.raises(SinkError, match=r"absent\.jsonl: the audit log cannot be read"):
        write_bundle(
            authority, run_dir, signing_of(signing_key), audit_log=tmp_path / "absent.jsonl"
        )

    assert list(run_dir.iterdir()) == []


# --- clearance -------------------------------------------------------------------------------


def test_a_sink_cleared_below_the_report_refuses_before_writing(
    authority: SidecarClient, signing_key: KeyPair, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()

    with pytest.raises(ClearanceError, match="above the clearance OFFICIAL"):
        write_bundle(
            authority,
            run_dir,
            signing_of(signing_key),
            level=SecurityLevel.OFFICIAL_SENSITIVE,
            clearance=SecurityLevel.OFFICIAL,
        )

    assert list(run_dir.iterdir()) == []


# --- tampering -------------------------------------------------------------------------------


def test_a_changed_data_file_is_named_with_both_hashes(
    shared: SharedBundles, signed_copy: Path
) -> None:
    original = members(signed_copy)["results/baseline.parquet"]
    forged = original[:-1] + bytes([original[-1] ^ 1])
    tampered(signed_copy, results__baseline_dot_parquet=forged)

    assert problems_of(signed_copy, public_key=shared.signer.public) == (
        f"results/baseline.parquet: SHA-256 differs from the manifest (manifest "
        f"{sha(original)[:16]}…, file {sha(forged)[:16]}…)",
    )


def test_a_changed_size_is_named(shared: SharedBundles, signed_copy: Path) -> None:
    tampered(signed_copy, summary_dot_json=b"{}\n")

    problems = problems_of(signed_copy, public_key=shared.signer.public)

    assert len(problems) == 2
    assert problems[0].startswith("summary.json: SHA-256 differs from the manifest")
    assert problems[1].startswith("summary.json: size differs from the manifest (manifest ")
    assert problems[1].endswith(", file 3 bytes)")


def test_a_removed_file_is_named(shared: SharedBundles, signed_copy: Path) -> None:
    tampered(signed_copy, aggregates__baseline__score_summary_dot_parquet=None)

    assert problems_of(signed_copy, public_key=shared.signer.public) == (
        "aggregates/baseline/score_summary.parquet: listed in the manifest but missing from "
        "the bundle",
    )


def test_an_added_file_is_named(shared: SharedBundles, signed_copy: Path) -> None:
    tampered(signed_copy, extra_dot_txt=b"not from the run")

    assert problems_of(signed_copy, public_key=shared.signer.public) == (
        "extra.txt: not listed in the manifest",
    )


def test_a_lowered_classification_breaks_the_signature_and_the_level_check(
    shared: SharedBundles, signed_copy: Path
) -> None:
    manifest = manifest_of(signed_copy)
    manifest["classification"] = "OFFICIAL"
    tampered(signed_copy, MANIFEST_dot_json=canonical(manifest))

    problems = problems_of(signed_copy, public_key=shared.signer.public)

    assert (
        f"MANIFEST.sig: signature does not verify with key {shared.signer.fingerprint}; "
        "MANIFEST.json or MANIFEST.sig was changed, or another key signed it"
    ) in problems
    assert (
        "MANIFEST.json: classification OFFICIAL is below the level OFFICIAL_SENSITIVE of the "
        f"data it lists ({len(DATA_FILES)} files, such as "
        "aggregates/baseline/score_summary.parquet)"
    ) in problems
    assert len(problems) == 2


def test_a_data_file_labelled_below_its_frames_is_named(
    shared: SharedBundles, signed_copy: Path
) -> None:
    manifest = manifest_of(signed_copy)
    manifest["files"]["results/baseline.parquet"]["classification"] = "OFFICIAL"
    tampered(signed_copy, MANIFEST_dot_json=canonical(manifest))

    problems = problems_of(signed_copy, public_key=shared.signer.public)

    assert problems[1:] == (
        "results/baseline.parquet: classified OFFICIAL in the manifest, below the level "
        "OFFICIAL_SENSITIVE of the frames it holds",
    )


def test_a_manifest_of_another_shape_is_named_field_by_field(
    shared: SharedBundles, signed_copy: Path
) -> None:
    manifest = manifest_of(signed_copy)
    manifest["format"] = "something-else"
    manifest["files"]["../escape"] = manifest["files"].pop("summary.json")
    tampered(signed_copy, MANIFEST_dot_json=canonical(manifest))

    problems = problems_of(signed_copy, public_key=shared.signer.public)

    assert "MANIFEST.json: format: Input should be 'elspeth-bundle-v1'" in problems
    assert (
        "MANIFEST.json: files.../escape.[key]: Value error, is a path climbing out with '..'"
    ) in problems
    assert any(p.startswith("MANIFEST.sig: signature does not verify") for p in problems)


def test_a_reformatted_manifest_is_not_in_canonical_form(
    shared: SharedBundles, signed_copy: Path
) -> None:
    pretty = json.dumps(manifest_of(signed_copy), indent=2).encode()
    tampered(signed_copy, MANIFEST_dot_json=pretty)

    problems = problems_of(signed_copy)

    assert problems[0].startswith("MANIFEST.json: not in canonical form")
    assert problems[1].startswith(
        f"MANIFEST.sig: signature does not verify with key {shared.signer.fingerprint} "
        "(the key the manifest names)"
    )


def test_an_altered_signature_is_named(shared: SharedBundles, signed_copy: Path) -> None:
    signature = members(signed_copy)[SIGNATURE_NAME]
    tampered(signed_copy, MANIFEST_dot_sig=bytes([signature[0] ^ 0x80]) + signature[1:])

    assert problems_of(signed_copy, public_key=shared.signer.public) == (
        f"MANIFEST.sig: signature does not verify with key {shared.signer.fingerprint}; "
        "MANIFEST.json or MANIFEST.sig was changed, or another key signed it",
    )


def test_a_missing_manifest_or_signature_is_named(
    shared: SharedBundles, signed_copy: Path, tmp_path: Path
) -> None:
    unsigned = Path(shutil.copy(signed_copy, tmp_path / "unsigned.tar.gz"))
    tampered(signed_copy, MANIFEST_dot_json=None)
    tampered(unsigned, MANIFEST_dot_sig=None)

    assert problems_of(signed_copy, public_key=shared.signer.public)[0] == (
        "MANIFEST.json: missing; nothing in the bundle is vouched for"
    )
    assert problems_of(unsigned) == ("MANIFEST.sig: missing; the manifest is unsigned",)


def test_another_signer_fails_against_the_pinned_key(
    authority: SidecarClient, shared: SharedBundles, tmp_path: Path
) -> None:
    impostor = make_key_pair(tmp_path / "keys", "impostor")
    written = write_bundle(authority, tmp_path / "run", signing_of(impostor))

    assert verify_bundle(written.path).signer_fingerprint == impostor.fingerprint
    assert problems_of(written.path, public_key=shared.signer.public) == (
        f"MANIFEST.json: names signer {impostor.fingerprint}, not the pinned key "
        f"{shared.signer.fingerprint}",
        f"MANIFEST.sig: signature does not verify with key {shared.signer.fingerprint}; "
        "MANIFEST.json or MANIFEST.sig was changed, or another key signed it",
    )


def test_a_re_signed_forgery_only_pinning_catches(shared: SharedBundles, signed_copy: Path) -> None:
    forger = forge(signed_copy, "results/baseline.parquet", b"invented results")

    unpinned = verify_bundle(signed_copy)
    assert unpinned.signer_fingerprint == forger != shared.signer.fingerprint
    assert not unpinned.signer_pinned
    problems = problems_of(signed_copy, public_key=shared.signer.public)
    assert problems[0] == (
        f"MANIFEST.json: names signer {forger}, not the pinned key {shared.signer.fingerprint}"
    )
    assert problems[1].startswith("MANIFEST.sig: signature does not verify")


# --- HMAC ------------------------------------------------------------------------------------


def test_hmac_bundle_verifies_with_its_key_and_says_integrity_only(
    shared: SharedBundles,
) -> None:
    result = verify_bundle(shared.hmac.path, hmac_key=shared.hmac_key)

    assert result.integrity_only
    assert result.method == "hmac-sha256"
    assert result.signer_fingerprint.startswith("HMAC-SHA256:")
    assert "INTEGRITY ONLY" in result.describe()
    signing = manifest_of(shared.hmac.path)["signing"]
    assert signing["integrity_only"] is True
    assert "anyone holding the HMAC key can forge" in signing["note"]
    key = shared.hmac_key.read_bytes()
    raw = shared.hmac.path.read_bytes() + b"".join(members(shared.hmac.path).values())
    assert sha(key).encode() not in raw
    assert key not in raw


def test_hmac_bundle_with_the_wrong_key_fails(
    shared: SharedBundles, hmac_copy: Path, tmp_path: Path
) -> None:
    wrong = write_hmac_key(tmp_path / "wrong.key")

    problems = problems_of(hmac_copy, hmac_key=wrong)

    assert len(problems) == 2
    assert problems[0].startswith("MANIFEST.json: names HMAC key HMAC-SHA256:")
    assert "not the given key HMAC-SHA256:" in problems[0]
    assert problems[1].startswith("MANIFEST.sig: HMAC does not verify with key HMAC-SHA256:")


def test_hmac_bundle_needs_its_key_and_refuses_a_public_key(
    shared: SharedBundles, hmac_copy: Path
) -> None:
    assert problems_of(hmac_copy) == (
        "MANIFEST.sig: an hmac-sha256 bundle can be checked only with its key (give the HMAC "
        "key file)",
    )
    assert problems_of(hmac_copy, public_key=shared.signer.public)[0] == (
        "MANIFEST.json: the bundle is signed with hmac-sha256 (integrity only), not ed25519; "
        "the public key given cannot check it"
    )


def test_a_tampered_hmac_bundle_fails(shared: SharedBundles, hmac_copy: Path) -> None:
    tampered(hmac_copy, settings_dot_json=b'{"suite": "other"}\n')

    problems = problems_of(hmac_copy, hmac_key=shared.hmac_key)

    assert problems[0].startswith("settings.json: SHA-256 differs from the manifest")


# --- a third party with only OpenSSL ---------------------------------------------------------


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_openssl_alone_verifies_the_signature_and_fingerprint(
    shared: SharedBundles, tmp_path: Path
) -> None:
    contents = members(shared.signed.path)
    (tmp_path / MANIFEST_NAME).write_bytes(contents[MANIFEST_NAME])
    (tmp_path / SIGNATURE_NAME).write_bytes(contents[SIGNATURE_NAME])

    verified = subprocess.run(
        [
            "openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(shared.signer.public),
            "-rawin", "-in", MANIFEST_NAME, "-sigfile", SIGNATURE_NAME,
        ],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-in", str(shared.signer.public), "-outform", "DER"],
        capture_output=True, check=True, timeout=30,
    ).stdout  # fmt: skip

    assert verified.returncode == 0, verified.stderr
    assert "Signature Verified Successfully" in verified.stdout
    assert "SHA256:" + sha(der[-32:]) == shared.signer.fingerprint


def test_a_bundle_rebuilt_by_another_tar_tool_still_verifies(
    shared: SharedBundles, signed_copy: Path
) -> None:
    rewrite(signed_copy, dict(reversed(members(signed_copy).items())))

    assert verify_bundle(signed_copy, public_key=shared.signer.public).files_checked == 14


def signing_of(key: KeyPair) -> dict[str, str]:
    return {"method": "ed25519", "private_key_path": str(key.private)}


def config_for(key: KeyPair, level: SecurityLevel) -> BundleConfig:
    return BundleConfig.model_validate({"clearance": level, "signing": signing_of(key)})
