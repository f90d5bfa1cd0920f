"""Reading a judge's grade out of its reply (:class:`GradeScale`): each form's rules, the
``pass_at`` boundary, every malformed reply an ``error`` (never a 0) whose reason holds no text
of the reply, and the settings a scale refuses."""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elspeth.llm import Grade, GradeScale

LABELS = GradeScale()
SCALE = GradeScale(format="scale", min=1, max=5)
JSON_LABELS = GradeScale(format="json")
JSON_SCALE = GradeScale(format="json", min=1, max=5)
MARKER = "ZQXJ"
"""In no reason, label or number of any scale here: a reason that holds it quotes the reply."""


def passed(grade: Grade) -> tuple[str | None, float | None, str]:
    return grade.grade, grade.value, grade.outcome


def error_reason(grade: Grade) -> str:
    assert grade.outcome == "error", grade
    assert (grade.grade, grade.value) == (None, None), "an error is never a value"
    assert grade.reason is not None
    assert grade.reason.startswith("malformed grade: ")
    return grade.reason


# --- labels -----------------------------------------------------------------------------------


def test_unit_labels_grade_line_is_read_with_its_value_and_the_rest_is_the_explanation() -> None:
    grade = LABELS.read("The answer matches the reference.\nGRADE: CORRECT")

    assert grade == Grade("CORRECT", 1.0, "pass", "The answer matches the reference.")


@pytest.mark.parametrize(
    "reply",
    [
        "**GRADE: CORRECT**",
        "**GRADE:** CORRECT",
        "**GRADE**: CORRECT",
        "## GRADE: CORRECT",
        "> GRADE: `CORRECT`",
        "- GRADE : _CORRECT_.",
        "  grade: correct",
        "GRADE:CORRECT\r",
    ],
)
def test_unit_labels_decoration_and_case_are_allowed_and_the_label_is_the_scales(
    reply: str,
) -> None:
    assert passed(LABELS.read(f"Reasoning.\n{reply}\n")) == ("CORRECT", 1.0, "pass")


def test_unit_labels_lower_case_label_is_returned_in_the_scales_spelling() -> None:
    scale = GradeScale(labels={"Good": 1.0, "Bad": 0.0})

    assert passed(scale.read("GRADE: gOOD")) == ("Good", 1.0, "pass")
    assert passed(scale.read("GRADE: BAD")) == ("Bad", 0.0, "fail")


def test_unit_labels_default_pass_at_is_the_best_labels_value() -> None:
    assert LABELS.passing_value == 1.0
    assert LABELS.read("GRADE: PARTIAL").outcome == "fail"
    assert LABELS.read("GRADE: INCORRECT").outcome == "fail"
    custom = GradeScale(labels={"HIGH": 3.0, "MID": 2.0, "LOW": 1.0})
    assert custom.passing_value == 3.0
    assert custom.read("GRADE: MID").outcome == "fail"


def test_unit_labels_explicit_pass_at_passes_at_the_value_and_fails_below() -> None:
    scale = GradeScale(labels={"A": 0.5, "B": 0.4999, "C": 1.0}, pass_at=0.5)

    assert scale.read("GRADE: A").outcome == "pass"
    assert scale.read("GRADE: B").outcome == "fail"
    assert scale.read("GRADE: C").outcome == "pass"


def test_unit_labels_default_labels_with_pass_at_partial() -> None:
    scale = GradeScale(pass_at=0.5)

    assert scale.read("GRADE: PARTIAL").outcome == "pass"
    assert scale.read("GRADE: INCORRECT").outcome == "fail"


def test_unit_labels_two_agreeing_grade_lines_are_one_grade() -> None:
    grade = LABELS.read("GRADE: correct\nOn reflection, yes.\n**GRADE: CORRECT**")

    assert passed(grade) == ("CORRECT", 1.0, "pass")
    assert grade.explanation == "On reflection, yes."


def test_unit_labels_no_grade_line_is_an_error_naming_the_labels() -> None:
    reason = error_reason(LABELS.read("I think the answer is fine."))

    assert "no 'GRADE:' line" in reason
    assert "one of CORRECT, PARTIAL, INCORRECT" in reason


@pytest.mark.parametrize(
    "reply",
    ["", "   \n\n", "Final GRADE: CORRECT", "GRADES: CORRECT", "UPGRADE: CORRECT", "GRADE CORRECT"],
)
def test_unit_labels_text_that_is_not_a_grade_line_is_no_grade(reply: str) -> None:
    assert "no 'GRADE:' line" in error_reason(LABELS.read(reply))


@pytest.mark.parametrize(
    "reply", ["GRADE: MAYBE", "GRADE:", "GRADE: CORRECT (mostly)", "GRADE: 1", "GRADE: [CORRECT]"]
)
def test_unit_labels_unknown_label_is_an_error(reply: str) -> None:
    reason = error_reason(LABELS.read(reply))

    assert reason == "malformed grade: the grade is not one of CORRECT, PARTIAL, INCORRECT"


def test_unit_labels_two_disagreeing_grade_lines_are_an_error_even_if_the_last_is_valid() -> None:
    reason = error_reason(LABELS.read("GRADE: CORRECT\nActually no.\nGRADE: INCORRECT"))

    assert reason == "malformed grade: the reply gives 2 different grades"
    three = LABELS.read("GRADE: CORRECT\nGRADE: PARTIAL\nGRADE: INCORRECT\nGRADE: correct")
    assert "3 different grades" in error_reason(three)


def test_unit_labels_a_bad_grade_line_disagrees_with_a_good_one() -> None:
    assert "2 different grades" in error_reason(LABELS.read("GRADE: MAYBE\nGRADE: CORRECT"))


# --- scale ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "value"),
    [
        ("GRADE: 4", 4.0),
        ("GRADE: 4/5", 4.0),
        ("GRADE: 4 / 5", 4.0),
        ("**GRADE: 4.5**", 4.5),
        ("GRADE: 4.", 4.0),
        ("GRADE: +2", 2.0),
        ("grade: 3.0/5.0", 3.0),
    ],
)
def test_unit_scale_number_is_read(reply: str, value: float) -> None:
    grade = SCALE.read(f"Good.\n{reply}")

    assert (grade.value, grade.grade, grade.explanation) == (value, f"{value:g}", "Good.")
    assert grade.outcome == ("pass" if value >= 3 else "fail")


def test_unit_scale_default_pass_at_is_the_midpoint() -> None:
    assert SCALE.passing_value == 3.0
    assert SCALE.read("GRADE: 3").outcome == "pass"
    assert SCALE.read("GRADE: 2.99").outcome == "fail"
    even = GradeScale(format="scale", min=0, max=10)
    assert even.passing_value == 5.0
    assert even.read("GRADE: 5").outcome == "pass"
    assert even.read("GRADE: 4.9").outcome == "fail"


def test_unit_scale_explicit_pass_at_passes_at_the_value_and_fails_below() -> None:
    scale = GradeScale(format="scale", min=1, max=5, pass_at=4)

    assert scale.read("GRADE: 4").outcome == "pass"
    assert scale.read("GRADE: 3.999").outcome == "fail"
    assert scale.read("GRADE: 5").outcome == "pass"


def test_unit_scale_the_ends_of_the_scale_are_on_it() -> None:
    assert passed(SCALE.read("GRADE: 1")) == ("1", 1.0, "fail")
    assert passed(SCALE.read("GRADE: 5")) == ("5", 5.0, "pass")
    assert passed(SCALE.read("GRADE: 5/5")) == ("5", 5.0, "pass")


@pytest.mark.parametrize(
    "reply", ["GRADE: 0.999", "GRADE: 0", "GRADE: -1", "GRADE: 5.001", "GRADE: 6"]
)
def test_unit_scale_number_outside_the_scale_is_an_error(reply: str) -> None:
    reason = error_reason(SCALE.read(reply))

    assert reason == "malformed grade: the grade is outside the scale (a number from 1 to 5)"


@pytest.mark.parametrize(
    "reply",
    [
        "GRADE: four",
        "GRADE: CORRECT",
        "GRADE: 4 out of 5",
        "GRADE: 4,5",
        "GRADE: 1e0",
        "GRADE: 0x3",
        "GRADE: 4/",
        "GRADE: /5",
        "GRADE: 3 4",
        "GRADE: nan",
        "GRADE: NaN",
        "GRADE: inf",
        "GRADE: -inf",
        "GRADE: Infinity",
        "GRADE:",
    ],
)
def test_unit_scale_text_that_is_not_a_number_is_an_error(reply: str) -> None:
    reason = error_reason(SCALE.read(reply))

    assert reason == "malformed grade: the grade is not a number from 1 to 5"


def test_unit_scale_a_huge_number_is_outside_the_scale_not_infinite() -> None:
    assert "outside the scale" in error_reason(SCALE.read("GRADE: 9" + "9" * 400))


@pytest.mark.parametrize("reply", ["GRADE: 3/10", "GRADE: 4/0", "GRADE: 4/4", "GRADE: 1/100"])
def test_unit_scale_a_total_other_than_the_scales_max_is_an_error(reply: str) -> None:
    reason = error_reason(SCALE.read(reply))

    assert reason == "malformed grade: the grade is not out of 5 (a number from 1 to 5)"


def test_unit_scale_no_grade_line_names_the_scale() -> None:
    reason = error_reason(SCALE.read("4/5"))

    assert reason == "malformed grade: the reply has no 'GRADE:' line (a number from 1 to 5)"


def test_unit_scale_the_same_number_spelled_twice_agrees_and_different_numbers_do_not() -> None:
    assert SCALE.read("GRADE: 4\nGRADE: 4.0\nGRADE: 4/5").value == 4.0
    assert "2 different grades" in error_reason(SCALE.read("GRADE: 4\nGRADE: 3"))
    assert "2 different grades" in error_reason(SCALE.read("GRADE: 4/5\nGRADE: 4/10"))


def test_unit_scale_with_negative_and_fractional_bounds() -> None:
    scale = GradeScale(format="scale", min=-1, max=1)

    assert scale.passing_value == 0.0
    assert passed(scale.read("GRADE: -1")) == ("-1", -1.0, "fail")
    assert passed(scale.read("GRADE: .5")) == ("0.5", 0.5, "pass")
    assert "outside the scale" in error_reason(scale.read("GRADE: -1.5"))


# --- json -------------------------------------------------------------------------------------


def test_unit_json_label_grade_and_explanation() -> None:
    grade = JSON_LABELS.read('{"grade": "partial", "explanation": "half of it"}')

    assert grade == Grade("PARTIAL", 0.5, "fail", "half of it")


def test_unit_json_number_grade_on_a_scale() -> None:
    assert JSON_SCALE.read('{"grade": 4, "explanation": "good"}') == Grade("4", 4.0, "pass", "good")
    assert passed(JSON_SCALE.read('{"grade": 2.5}')) == ("2.5", 2.5, "fail")
    assert passed(JSON_SCALE.read('{"grade": "3"}')) == ("3", 3.0, "pass")
    assert passed(JSON_SCALE.read('{"grade": 5.0}')) == ("5", 5.0, "pass")
    assert passed(JSON_SCALE.read('{"grade": 1}')) == ("1", 1.0, "fail")


def test_unit_json_own_field_names_and_pass_at() -> None:
    scale = GradeScale(
        format="json", min=0, max=10, field="score", explanation_field="why", pass_at=7
    )

    assert scale.read('{"score": 7, "why": "ok"}') == Grade("7", 7.0, "pass", "ok")
    assert scale.read('{"score": 6.99, "why": "close"}').outcome == "fail"
    assert "no 'score' key" in error_reason(scale.read('{"grade": 7}'))


def test_unit_json_custom_labels() -> None:
    scale = GradeScale(format="json", labels={"YES": 1.0, "NO": 0.0})

    assert passed(scale.read('{"grade": "yes"}')) == ("YES", 1.0, "pass")
    assert error_reason(scale.read('{"grade": "CORRECT"}')) == (
        "malformed grade: the grade is not one of YES, NO"
    )


@pytest.mark.parametrize(
    "reply",
    [
        '```json\n{"grade": "CORRECT", "explanation": "fine"}\n```',
        '```\n{"grade": "CORRECT", "explanation": "fine"}\n```',
        '\n  ```json\n{"grade": "CORRECT", "explanation": "fine"}```  \n',
    ],
)
def test_unit_json_in_a_code_fence(reply: str) -> None:
    assert JSON_LABELS.read(reply) == Grade("CORRECT", 1.0, "pass", "fine")


def test_unit_json_explanation_missing_or_not_text() -> None:
    assert JSON_LABELS.read('{"grade": "CORRECT"}').explanation == ""
    grade = JSON_LABELS.read('{"grade": "CORRECT", "explanation": ["a", 1]}')
    assert grade.explanation == '["a", 1]'


@pytest.mark.parametrize(
    "reply",
    [
        "not json at all",
        "",
        '{"grade": "CORRECT"',
        '{"grade": "CORRECT"} trailing',
        'Here it is: {"grade": "CORRECT"}',
        '```{"grade": "CORRECT"}```',
        "```json\n```",
        "[" * 100_000,
        '{"a":' * 100_000,
        "1" * 5000,
    ],
)
def test_unit_json_that_does_not_parse_is_an_error(reply: str) -> None:
    assert (
        error_reason(JSON_LABELS.read(reply)) == "malformed grade: the reply is not a JSON object"
    )


@pytest.mark.parametrize("reply", ['["CORRECT"]', '"CORRECT"', "4", "null", "true", "[{}]"])
def test_unit_json_that_is_not_an_object_is_an_error(reply: str) -> None:
    assert error_reason(JSON_SCALE.read(reply)) == "malformed grade: the reply is not a JSON object"


def test_unit_json_missing_field_is_an_error() -> None:
    reason = error_reason(JSON_LABELS.read('{"score": "CORRECT", "explanation": "x"}'))

    assert reason == "malformed grade: the reply's JSON has no 'grade' key"


@pytest.mark.parametrize("value", ["true", "false", "null", '["CORRECT"]', '{"v": "CORRECT"}'])
@pytest.mark.parametrize("scale", [JSON_LABELS, JSON_SCALE], ids=["labels", "scale"])
def test_unit_json_grade_of_the_wrong_type_is_an_error(scale: GradeScale, value: str) -> None:
    reason = error_reason(scale.read(f'{{"grade": {value}}}'))

    assert reason == f"malformed grade: 'grade' is not {scale.describe()}"


def test_unit_json_label_grade_on_a_numeric_scale_and_number_on_labels_are_errors() -> None:
    assert error_reason(JSON_SCALE.read('{"grade": "CORRECT"}')) == (
        "malformed grade: the grade is not a number from 1 to 5"
    )
    assert error_reason(JSON_LABELS.read('{"grade": 1}')) == (
        "malformed grade: the grade is not one of CORRECT, PARTIAL, INCORRECT"
    )


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("0", "outside the scale"),
        ("5.5", "outside the scale"),
        ("1e400", "not a number"),
        ("NaN", "not a number"),
        ("-Infinity", "not a number"),
        ('"nan"', "not a number"),
    ],
)
def test_unit_json_number_off_the_scale_or_not_finite_is_an_error(value: str, why: str) -> None:
    assert why in error_reason(JSON_SCALE.read(f'{{"grade": {value}}}'))


def test_unit_json_a_grade_line_is_not_json() -> None:
    assert "not a JSON object" in error_reason(JSON_LABELS.read("GRADE: CORRECT"))


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"format": "scale"}, "format scale needs min and max"),
        ({"format": "scale", "min": 1}, "needs both min and max"),
        ({"format": "scale", "max": 5}, "needs both min and max"),
        ({"format": "scale", "min": 5, "max": 5}, "min < max"),
        ({"format": "scale", "min": 5, "max": 1}, "min < max"),
        ({"format": "json", "min": 2, "max": 1}, "min < max"),
        (
            {"format": "scale", "min": 1, "max": 5, "labels": {"A": 1}},
            "format scale takes min and max, not labels",
        ),
        ({"format": "labels", "min": 1, "max": 5}, "format labels takes labels, not min and max"),
        (
            {"format": "json", "min": 1, "max": 5, "labels": {"A": 1}},
            "format json takes labels or min and max, not both",
        ),
        ({"labels": {"Good": 1, "GOOD": 0}}, "labels repeat (case is ignored): GOOD"),
        ({"format": "json", "labels": {"a": 1, "A": 0, "b": 1}}, "labels repeat"),
        ({"labels": {}}, "labels must name at least one label"),
        ({"format": "json", "labels": {}}, "labels must name at least one label"),
        ({"labels": {"1st": 1}}, "pattern"),
        ({"labels": {"TWO WORDS": 1}}, "pattern"),
        ({"labels": {"A": float("nan")}}, "finite"),
        ({"format": "scale", "min": 1, "max": float("inf")}, "finite"),
        ({"pass_at": float("nan")}, "finite"),
        ({"format": "stars"}, "format"),
        ({"field": ""}, "at least 1 character"),
        ({"explanation_field": ""}, "at least 1 character"),
        ({"scale": 5}, "Extra inputs are not permitted"),
    ],
)
def test_unit_settings_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError) as raised:
        GradeScale.model_validate(options)

    assert message in str(raised.value)


def test_unit_settings_defaults_and_describe() -> None:
    assert LABELS.format == "labels"
    assert LABELS.label_values == {"CORRECT": 1.0, "PARTIAL": 0.5, "INCORRECT": 0.0}
    assert JSON_LABELS.label_values == LABELS.label_values
    assert SCALE.label_values is None
    assert JSON_SCALE.label_values is None
    assert SCALE.describe() == "a number from 1 to 5"
    assert GradeScale(format="scale", min=0.5, max=2.5).describe() == "a number from 0.5 to 2.5"
    assert LABELS.describe() == "one of CORRECT, PARTIAL, INCORRECT"


def test_unit_settings_are_frozen() -> None:
    with pytest.raises(pydantic.ValidationError):
        LABELS.format = "json"


# --- properties -------------------------------------------------------------------------------

ALL_SCALES = [
    LABELS,
    GradeScale(labels={"A": 1.0, "B": 0.0, "TIE": 0.5}),
    SCALE,
    GradeScale(format="scale", min=-10, max=10, pass_at=0),
    JSON_LABELS,
    JSON_SCALE,
]
SCALE_IDS = ["labels", "pairwise", "scale", "signed-scale", "json-labels", "json-scale"]
PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Text a grade reader reacts to, so replies come near every rule rather than only random noise.
FRAGMENTS = st.sampled_from(
    [
        "GRADE:",
        "**GRADE:**",
        "grade :",
        "\n",
        "\r\n",
        " ",
        "*",
        "`",
        "```",
        "```json\n",
        "/",
        "5",
        "4.5",
        "-",
        ".",
        "nan",
        "inf",
        "CORRECT",
        "tie",
        "{",
        "}",
        "[",
        '"grade"',
        '"explanation"',
        ":",
        ",",
        "true",
        "null",
        "1e999",
        MARKER,
    ]
)
REPLIES = st.one_of(
    st.text(),
    st.lists(st.one_of(FRAGMENTS, st.text(max_size=8)), max_size=40).map("".join),
)


def _json_reply(grade: Any, explanation: str) -> str:
    return json.dumps({"grade": grade, "explanation": explanation})


JSON_REPLIES = st.builds(
    _json_reply,
    st.one_of(
        st.text(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(),
        st.booleans(),
        st.none(),
        st.lists(st.integers(), max_size=3),
    ),
    st.text(),
)


@PROPERTY
@given(reply=st.one_of(REPLIES, JSON_REPLIES))
@pytest.mark.parametrize("scale", ALL_SCALES, ids=SCALE_IDS)
def test_read_never_raises_and_gives_a_well_formed_grade(scale: GradeScale, reply: str) -> None:
    grade = scale.read(reply)

    assert grade.outcome in ("pass", "fail", "error")
    if grade.outcome == "error":
        error_reason(grade)
    else:
        assert grade.reason is None
        assert grade.value is not None
        assert grade.grade is not None
        assert (grade.outcome == "pass") == (grade.value >= scale.passing_value)
        labels = scale.label_values
        if labels is not None:
            assert labels[grade.grade] == grade.value
        else:
            assert scale.min is not None
            assert scale.max is not None
            assert scale.min <= grade.value <= scale.max


def _marked(before: str, after: str, where: str) -> str:
    """``MARKER`` put where a reader looks: the grade, the grade line, the JSON field."""
    return {
        "grade": f"{before}\nGRADE: {MARKER}{after}",
        "line": f"{before}GRADE: {after}{MARKER}\n{before}",
        "prose": f"{before}{MARKER}{after}",
        "two": f"GRADE: {before}{MARKER}\nGRADE: {after}",
        "json-grade": _json_reply(f"{before}{MARKER}{after}", MARKER),
        "json-key": '{"' + MARKER + before + '": "' + after + '"}',
        "fenced": f"```json\n{{{MARKER}{before}\n```",
    }[where]


@PROPERTY
@given(
    before=REPLIES,
    after=REPLIES,
    where=st.sampled_from(["grade", "line", "prose", "two", "json-grade", "json-key", "fenced"]),
)
@pytest.mark.parametrize("scale", ALL_SCALES, ids=SCALE_IDS)
def test_an_errors_reason_never_quotes_the_reply(
    scale: GradeScale, before: str, after: str, where: str
) -> None:
    grade = scale.read(_marked(before, after, where))

    if grade.outcome == "error":
        assert MARKER not in error_reason(grade)
        assert MARKER not in grade.explanation
    else:
        assert MARKER not in (grade.grade or "")


@pytest.mark.parametrize("scale", ALL_SCALES, ids=SCALE_IDS)
@pytest.mark.parametrize("tail", ["", "\nGRADE: 4"])
def test_unit_a_megabyte_of_spaces_newlines_and_asterisks_is_read(
    scale: GradeScale, tail: str
) -> None:
    """No timing here: only that a reply shaped to make a backtracking reader slow returns."""
    noise = ("  * \n*** \n" * 110_000)[:1_000_000]

    replies = (
        noise + tail,
        "*" * 1_000_000 + tail,
        " " * 1_000_000 + "GRADE" + tail,
        "GRADE" + " *" * 500_000 + tail,
    )
    for reply in replies:
        grade = scale.read(reply)
        assert grade.outcome in ("pass", "fail", "error")


def test_unit_scale_a_leading_point_is_part_of_the_number_and_a_final_full_stop_is_not() -> None:
    """``.5`` on 0..10 is a half (a fail), never a 5 (a pass)."""
    scale = GradeScale(format="scale", min=0, max=10)

    assert passed(scale.read("GRADE: .5")) == ("0.5", 0.5, "fail")
    assert passed(scale.read("GRADE: **.5**")) == ("0.5", 0.5, "fail")
    assert passed(scale.read("GRADE: 7.")) == ("7", 7.0, "pass")
    assert passed(scale.read("GRADE: **7**.")) == ("7", 7.0, "pass")
    assert "not a number" in error_reason(scale.read("GRADE: ..5"))


@pytest.mark.parametrize(
    "options",
    [
        {"pass_at": 1.5},
        {"pass_at": -0.1},
        {"format": "scale", "min": 1, "max": 5, "pass_at": 6},
        {"format": "scale", "min": 1, "max": 5, "pass_at": 0.5},
    ],
)
def test_unit_a_pass_at_outside_the_grades_values_is_refused(options: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError, match=r"pass_at .* is outside the grades"):
        GradeScale(**options)


def test_unit_a_pass_at_at_either_end_of_the_grades_is_allowed() -> None:
    assert GradeScale(pass_at=0.0).read("GRADE: INCORRECT").outcome == "pass"
    assert GradeScale(format="scale", min=1, max=5, pass_at=5).read("GRADE: 4").outcome == "fail"
