"""Judge settings through the real loader: an answer pack, the datasource's ``target``, judges
and the experiments that list them. Each bad combination is a :class:`SettingsError` naming the
key; a good one loads with the experiment's judges resolved."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from elspeth.config import SettingsError, load_suite
from tests.suite.conftest import build_suite

Settings = dict[str, Any]
Edit = Callable[[Settings], object]

RUBRIC = "Grade {{ answer }} against {{ reference }}. End with GRADE: CORRECT or INCORRECT."


def judged(settings: Settings) -> None:
    """An answer pack, ``expected`` the target column, and judge ``grader`` on every
    experiment (from defaults)."""
    settings["datasource"]["columns"] = {"id": "string", "text": "string", "expected": "string"}
    settings["datasource"]["target"] = "expected"
    settings["prompt_packs"] = {"qa": {"answer": "Answer {{ id }}: {{ text }}"}}
    settings["judges"] = {"grader": {"model": "loopback", "rubric": RUBRIC}}
    settings["defaults"].update(prompt_pack="qa", judges=["grader"])


def load_error(directory: Path, *edits: Edit) -> str:
    """The loader's message for the minimal suite with ``edits`` applied, on one line."""
    suite = build_suite(directory / "suite", None, rows=2)
    for edit in edits:
        edit(suite.settings)
    with pytest.raises(SettingsError) as raised:
        load_suite(suite.write())
    return re.sub(r"\s+", " ", str(raised.value))


def test_a_suite_with_an_answer_pack_a_target_and_a_judge_loads(tmp_path: Path) -> None:
    suite = build_suite(tmp_path / "suite", None, rows=2)
    judged(suite.settings)
    suite.settings["datasource"]["target"] = ["expected", "text"]
    suite.settings["experiments"].append({"name": "plain", "judges": []})

    loaded = load_suite(suite.write())

    base, plain = loaded.experiments
    assert base.judges == ("grader",)
    assert plain.judges == (), "an experiment's own list replaces defaults'"
    settings = loaded.settings
    assert settings.datasource.target == ("expected", "text")
    assert settings.prompt_packs["qa"].templates == {"answer": "Answer {{ id }}: {{ text }}"}
    judge = settings.judges["grader"]
    assert (judge.model, judge.answer, judge.reference) == ("loopback", "answer_response", None)
    assert judge.grade.format == "labels"


def test_a_single_target_name_is_a_one_column_target(tmp_path: Path) -> None:
    suite = build_suite(tmp_path / "suite", None, rows=2)
    judged(suite.settings)

    assert load_suite(suite.write()).settings.datasource.target == ("expected",)


def test_a_judge_may_grade_a_declared_column_and_an_experiment_may_list_several(
    tmp_path: Path,
) -> None:
    suite = build_suite(tmp_path / "suite", None, rows=2)
    judged(suite.settings)
    suite.settings["judges"]["strict"] = {
        "model": "loopback",
        "rubric": RUBRIC,
        "answer": "text",
        "grade": {"format": "scale", "min": 1, "max": 5, "pass_at": 4},
    }
    suite.settings["experiments"][0]["judges"] = ["strict", "grader"]

    loaded = load_suite(suite.write())

    assert loaded.experiments[0].judges == ("strict", "grader")
    assert loaded.settings.judges["strict"].grade.passing_value == 4


@pytest.mark.parametrize(
    "pack",
    [
        {"criteria": {"quality": "Rate {{ text }}"}, "answer": "Answer {{ text }}"},
        {"system": "You are careful."},
        {},
    ],
    ids=["both", "neither-with-system", "empty"],
)
def test_a_prompt_pack_needs_exactly_one_of_criteria_or_answer(
    tmp_path: Path, pack: Settings
) -> None:
    message = load_error(tmp_path, lambda s: s["prompt_packs"].update(rate=pack))

    assert "prompt_packs.rate: give exactly one of 'criteria' (rate each row) or 'answer'" in (
        message
    )


def test_an_empty_criteria_mapping_is_refused(tmp_path: Path) -> None:
    message = load_error(tmp_path, lambda s: s["prompt_packs"].update(rate={"criteria": {}}))

    assert "prompt_packs.rate.criteria" in message


def test_a_target_that_is_not_a_declared_column_is_refused(tmp_path: Path) -> None:
    message = load_error(tmp_path, lambda s: s["datasource"].update(target=["text", "expected"]))

    assert "datasource" in message
    assert "target column(s) 'expected' are not among the declared columns: id, text" in message


def test_a_target_named_twice_is_refused(tmp_path: Path) -> None:
    message = load_error(tmp_path, lambda s: s["datasource"].update(target=["text", "text"]))

    assert "datasource" in message
    assert "target names text more than once" in message


@pytest.mark.parametrize("target", [["expected"], ["text", "text"]], ids=["unknown", "twice"])
def test_a_bad_target_is_named_datasource_target(tmp_path: Path, target: list[str]) -> None:
    message = load_error(tmp_path, lambda s: s["datasource"].update(target=target))

    assert "datasource.target: " in message


def test_a_target_of_the_wrong_type_is_named_datasource_target(tmp_path: Path) -> None:
    message = load_error(tmp_path, lambda s: s["datasource"].update(target={"a": 1}))

    assert "datasource.target" in message


def test_a_pairwise_judge_listed_twice_is_refused(tmp_path: Path) -> None:
    def pairwise(settings: dict[str, Any]) -> None:
        settings["pairwise_judges"] = {
            "duel": {"model": "loopback", "rubric": "{{ answer_a }} or {{ answer_b }}"}
        }
        settings["defaults"]["pairwise"] = ["duel", "duel"]

    message = load_error(tmp_path, judged, pairwise)

    assert "defaults.pairwise: pairwise lists duel more than once" in message


def test_a_pairwise_judge_with_other_labels_is_refused(tmp_path: Path) -> None:
    def pairwise(settings: dict[str, Any]) -> None:
        settings["pairwise_judges"] = {
            "duel": {
                "model": "loopback",
                "rubric": "{{ answer_a }} or {{ answer_b }}",
                "grade": {"labels": {"FIRST": 1, "SECOND": 0}},
            }
        }
        settings["defaults"]["pairwise"] = ["duel"]

    message = load_error(tmp_path, judged, pairwise)

    assert "pairwise_judges.duel" in message
    assert "a pairwise judge's grade labels are A, B and TIE" in message


def test_a_pairwise_judge_that_is_not_defined_is_named(tmp_path: Path) -> None:
    def pairwise(settings: dict[str, Any]) -> None:
        settings["pairwise_judges"] = {
            "duel": {"model": "loopback", "rubric": "{{ answer_a }} or {{ answer_b }}"}
        }
        settings["defaults"]["pairwise"] = ["dual"]

    message = load_error(tmp_path, judged, pairwise)

    assert "defaults.pairwise: unknown pairwise judge 'dual'; defined: duel" in message


def test_a_judge_of_an_unknown_model_is_refused(tmp_path: Path) -> None:
    message = load_error(tmp_path, judged, lambda s: s["judges"]["grader"].update(model="judgy"))

    assert "judges.grader.model: unknown model 'judgy'; defined: loopback" in message


def test_an_experiment_listing_an_unknown_judge_is_refused(tmp_path: Path) -> None:
    def edit(settings: Settings) -> None:
        settings["experiments"][0]["judges"] = ["gradr"]

    message = load_error(tmp_path, judged, edit)

    assert "experiments[0].judges: unknown judge 'gradr'; defined: grader" in message


def test_a_judge_grading_a_column_its_experiment_does_not_produce_is_refused(
    tmp_path: Path,
) -> None:
    def criteria_pack(settings: Settings) -> None:
        settings["prompt_packs"]["rate"] = {"criteria": {"quality": "Rate {{ text }}"}}
        settings["defaults"]["prompt_pack"] = "rate"

    message = load_error(tmp_path, judged, criteria_pack)

    assert (
        "experiments[0].judges: judge grader grades column 'answer_response', which experiment "
        "base does not produce (its answers: quality_response); set judges.grader.answer"
    ) in message


def test_a_judge_whose_answer_column_is_unknown_is_refused(tmp_path: Path) -> None:
    message = load_error(
        tmp_path, judged, lambda s: s["judges"]["grader"].update(answer="quality_response")
    )

    assert "experiments[0].judges: judge grader grades column 'quality_response'" in message


def test_a_judge_listed_twice_is_refused(tmp_path: Path) -> None:
    def twice(settings: Settings) -> None:
        settings["experiments"][0]["judges"] = ["grader", "grader"]

    message = load_error(tmp_path, judged, twice)

    assert "experiments[0].judges: judges lists grader more than once" in message


def test_a_judge_budget_with_a_cost_needs_its_models_price(tmp_path: Path) -> None:
    def budget(settings: Settings) -> None:
        settings["judges"]["grader"]["budget"] = {"max_cost": "1.00"}

    message = load_error(tmp_path, judged, budget)

    assert "judges.grader.budget: budget.max_cost needs a price for model" in message


def test_a_judge_row_budget_needs_no_price_and_a_priced_cost_budget_loads(
    tmp_path: Path,
) -> None:
    suite = build_suite(tmp_path / "suite", None, rows=2)
    judged(suite.settings)
    suite.settings["judges"]["grader"]["budget"] = {"max_rows": 1}
    unpriced = load_suite(suite.write())
    assert unpriced.settings.judges["grader"].budget.max_rows == 1

    price_name = unpriced.settings.models["loopback"].price_name
    suite.settings["pricing"] = {price_name: {"prompt_per_1k": "1", "completion_per_1k": "1"}}
    suite.settings["judges"]["grader"]["budget"] = {"max_cost": "1"}
    priced = load_suite(suite.write())
    assert priced.settings.judges["grader"].budget.max_cost == 1


@pytest.mark.parametrize(
    ("grade", "message"),
    [
        ({"format": "scale"}, "judges.grader.grade: format scale needs min and max"),
        ({"format": "scale", "min": 5, "max": 1}, "judges.grader.grade: a numeric scale"),
        ({"labels": {"ok": 1, "OK": 0}}, "judges.grader.grade: labels repeat"),
        ({"labels": {}}, "judges.grader.grade: labels must name at least one label"),
        ({"format": "stars"}, "judges.grader.grade.format"),
        ({"stars": 5}, "judges.grader.grade.stars: unknown key"),
    ],
)
def test_a_bad_grade_scale_is_named_by_its_key(
    tmp_path: Path, grade: Settings, message: str
) -> None:
    text = load_error(tmp_path, judged, lambda s: s["judges"]["grader"].update(grade=grade))

    assert message in text


@pytest.mark.parametrize(
    ("judge", "key"),
    [
        ({"model": "loopback"}, "judges.grader.rubric: required key is missing"),
        ({"model": "loopback", "rubric": ""}, "judges.grader.rubric"),
        ({"rubric": RUBRIC}, "judges.grader.model: required key is missing"),
        ({"model": "loopback", "rubric": RUBRIC, "rubrik": "x"}, "judges.grader.rubrik"),
    ],
)
def test_a_judge_missing_a_key_or_with_an_unknown_one_is_refused(
    tmp_path: Path, judge: Settings, key: str
) -> None:
    message = load_error(tmp_path, judged, lambda s: s["judges"].update(grader=judge))

    assert key in message


def test_every_judge_problem_is_reported_together(tmp_path: Path) -> None:
    def many(settings: Settings) -> None:
        settings["judges"]["grader"].update(model="nope")
        settings["experiments"][0]["judges"] = ["grader", "grader", "missing"]

    message = load_error(tmp_path, judged, many)

    assert "judges.grader.model: unknown model 'nope'" in message
    assert "unknown judge 'missing'" in message
    assert "judges lists grader more than once" in message
