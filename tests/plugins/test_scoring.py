"""The deterministic answer scorers (``_scoring``) and the ``answer_scorer`` plugin.

The scorers are pure functions with hand-computed unit tests and a few Hypothesis properties; the
plugin runs through a real worker (standalone mode, the real daemon) like the other built-ins.
"""

from __future__ import annotations

import json
import re
import string
import unicodedata
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elspeth.errors import ConfigurationError
from elspeth.orchestrator._runtime._plugin_runtime import PluginRuntime
from elspeth.plugins import PluginKind
from elspeth.plugins._declaration import validate_parameters
from elspeth.plugins.builtin._answer_scorer import AnswerScorer
from elspeth.plugins.builtin._scoring import (
    Normalisation,
    Score,
    bleu,
    choice,
    chrf,
    compile_pattern,
    exact,
    first_number,
    includes,
    json_field,
    normalise,
    numeric,
    pattern,
    rouge,
    token_f1,
)
from tests.orchestrator.conftest import MakeFrame
from tests.plugins.conftest import nulls_as_none, run_one

ALL = Normalisation()
NONE = Normalisation(case=False, whitespace=False, punctuation=False, articles=False)
PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def passed(score: Score) -> tuple[float | None, str]:
    return score.value, score.outcome


# --- normalisation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({}, "cat sat on mat"),
        ({"case": False}, "Cat sat on mat"),
        ({"punctuation": False}, "cat, sat… «on» mat!"),
        ({"articles": False}, "the cat sat on the mat"),
        ({"whitespace": False}, "     cat sat on   mat  "),  # each article becomes a space
    ],
)
def test_unit_normalise_each_step_can_be_turned_off(flags: dict[str, bool], expected: str) -> None:
    options = {"case": True, "whitespace": True, "punctuation": True, "articles": True, **flags}
    assert normalise("  The  Cat, sat… «on» the mat!  ", **options) == expected


def test_unit_articles_are_whole_words_of_any_case_and_punctuation_includes_symbols() -> None:
    on = {"case": False, "whitespace": True, "punctuation": True, "articles": True}
    assert normalise("THE theory of An answer, a banana", **on) == "theory of answer banana"
    assert normalise("¿Qué? 「引用」 $5+3=8", **on) == "Qué 引用 538"
    assert normalise("The Cat", **{**on, "articles": False}) == "The Cat"


# --- exact, includes, pattern --------------------------------------------------------------


def test_unit_exact_compares_normalised_texts() -> None:
    assert passed(exact("The Eiffel Tower!", "eiffel  tower", ALL)) == (1.0, "pass")
    assert passed(exact("The Eiffel Tower!", "eiffel  tower", NONE)) == (0.0, "fail")
    assert exact("Paris", "London", ALL).explanation == "differs from the reference"
    assert passed(exact("", "the", ALL)) == (1.0, "pass")  # both empty once normalised


def test_unit_includes_finds_the_reference_inside_the_answer() -> None:
    assert passed(includes("I think it is PARIS, France.", "Paris", ALL)) == (1.0, "pass")
    assert passed(includes("Lyon", "Paris", ALL)) == (0.0, "fail")
    empty = includes("anything", "  the ", ALL)
    assert (empty.outcome, empty.explanation) == ("error", "reference is empty after normalisation")


def test_unit_pattern_searches_anywhere_and_refuses_huge_or_broken_patterns() -> None:
    regex = compile_pattern(r"\bYES\b")
    assert passed(pattern("well, YES indeed", regex)) == (1.0, "pass")
    assert pattern("yesterday", regex) == Score(0.0, "fail", "pattern not found")
    assert compile_pattern("a" * 1000).pattern == "a" * 1000
    with pytest.raises(ValueError, match="regex has 1001 characters; at most 1000"):
        compile_pattern("a" * 1001)
    with pytest.raises(ValueError, match="not a valid regular expression"):
        compile_pattern("(unclosed")


# --- numeric -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("about 3.5 kg", 3.5),
        ("1,234,567 people", 1234567.0),
        ("-0.25 degrees", -0.25),
        ("costs .5 each", 0.5),
        ("1e3 items", 1000.0),
        ("12,3456", 12.0),  # not a thousands separator: the first number is 12
        ("pages 10-12", 10.0),
        ("no digits", None),
    ],
)
def test_unit_first_number(text: str, number: float | None) -> None:
    assert first_number(text) == number


@pytest.mark.parametrize(
    ("answer", "reference", "abs_tol", "rel_tol", "outcome"),
    [
        ("10.5", 10, 0.5, 0.0, "pass"),  # |10.5 - 10| = 0.5, exactly the tolerance
        ("9.5 m", "10", 0.5, 0.0, "pass"),
        ("10.5000001", 10, 0.5, 0.0, "fail"),  # just past it
        ("250", 200, 0.0, 0.25, "pass"),  # 0.25 * 200 = 50 = |250 - 200|
        ("250.5", 200, 0.0, 0.25, "fail"),
        ("250", 200, 60.0, 0.25, "pass"),  # the larger of the two tolerances applies
        ("1,000", "1000", 0.0, 0.0, "pass"),
        ("1001", 1000, 0.0, 0.0, "fail"),
    ],
)
def test_unit_numeric_tolerance_is_inclusive(
    answer: str, reference: float | str, abs_tol: float, rel_tol: float, outcome: str
) -> None:
    assert numeric(answer, reference, abs_tol=abs_tol, rel_tol=rel_tol).outcome == outcome


def test_unit_numeric_errors_name_the_reason() -> None:
    assert numeric("10.5", 10, abs_tol=0.5, rel_tol=0).explanation == (
        "within tolerance: difference 0.5, allowed 0.5"
    )
    assert numeric("no idea", 3, abs_tol=0, rel_tol=0) == Score(
        None, "error", "no number in the answer"
    )
    assert numeric("3", "three", abs_tol=0, rel_tol=0).explanation == (
        "reference is not a finite number"
    )
    assert numeric("3", True, abs_tol=0, rel_tol=0).outcome == "error"
    assert numeric("1e999", 3, abs_tol=0, rel_tol=0).explanation == (
        "the answer's number is not finite"
    )


# --- choice --------------------------------------------------------------------------------

CHOICES = ["London", "Paris", "Rome", "the Berlin"]


@pytest.mark.parametrize("answer", ["B", "(B)", "B.", "B)", "b", " (b). ", "paris", "PARIS!"])
def test_unit_choice_accepts_a_letter_or_the_text(answer: str) -> None:
    assert choice(answer, "B", CHOICES, ALL) == Score(1.0, "pass", "chose B, reference B")
    assert passed(choice(answer, "Paris", CHOICES, ALL)) == (1.0, "pass")


def test_unit_choice_fails_a_wrong_pick_and_errors_on_no_pick() -> None:
    assert choice("(C)", "Paris", CHOICES, ALL) == Score(0.0, "fail", "chose C, reference B")
    assert passed(choice("berlin", "D", CHOICES, ALL)) == (1.0, "pass")  # articles dropped
    assert choice("E", "B", CHOICES, ALL).explanation == "answer letter E is beyond the 4 choices"
    assert choice("Madrid", "B", CHOICES, ALL).explanation == "answer not one of the choices"
    assert choice("B", "Madrid", CHOICES, ALL).explanation == "reference not one of the choices"


# --- json_field ----------------------------------------------------------------------------

DOCUMENT = json.dumps({"a": {"b": [7, "Yes", True, None, {"c": 1}]}, "n": "3"})


@pytest.mark.parametrize(
    ("field", "reference", "outcome"),
    [
        ("a.b.0", 7, "pass"),
        ("a.b.0", "7.0", "pass"),  # both numbers: compared as numbers
        ("a.b.0", 8, "fail"),
        ("a.b.1", "yes", "pass"),  # text: compared normalised
        ("a.b.2", True, "pass"),
        ("a.b.2", "TRUE", "pass"),
        ("n", 3.0, "pass"),
    ],
)
def test_unit_json_field_compares_the_value(field: str, reference: Any, outcome: str) -> None:
    assert json_field(DOCUMENT, field, reference, ALL).outcome == outcome


@pytest.mark.parametrize(
    ("answer", "field", "reason"),
    [
        ("Sure! {not json", "a", "invalid JSON"),
        (DOCUMENT, "x", "field x: no 'x' at the top level"),
        (DOCUMENT, "a.c", "field a.c: no 'c' at a"),
        (DOCUMENT, "a.b.9", "field a.b.9: no item '9' at a.b"),
        (DOCUMENT, "a.b.first", "field a.b.first: no item 'first' at a.b"),
        (DOCUMENT, "n.x", "field n.x: n is not an object or an array"),
        (DOCUMENT, "a.b.3", "field a.b.3: is null"),
        (DOCUMENT, "a.b.4", "field a.b.4: is an object, not a value"),
        (DOCUMENT, "a.b", "field a.b: is an array, not a value"),
    ],
)
def test_unit_json_field_errors_say_why(answer: str, field: str, reason: str) -> None:
    assert json_field(answer, field, "x", ALL) == Score(None, "error", reason)


# --- token_f1 ------------------------------------------------------------------------------


def test_unit_token_f1_by_hand() -> None:
    # "the cat sat" -> [cat, sat]; "a cat sat down" -> [cat, sat, down]; overlap 2.
    # precision 2/2 = 1, recall 2/3, F1 = 2 * 1 * 2/3 / (1 + 2/3) = (4/3) / (5/3) = 0.8
    score = token_f1("the cat sat", "a cat sat down", threshold=0.5, normalisation=ALL)
    assert score == Score(pytest.approx(0.8), "pass", "token F1 0.800 (threshold 0.5)")
    # multiset overlap: [cat, cat, cat] vs [cat, dog]: overlap min(3, 1) = 1;
    # precision 1/3, recall 1/2, F1 = 2 * (1/6) / (5/6) = 0.4, below the threshold 0.5
    low = token_f1("cat cat cat", "cat dog", threshold=0.5, normalisation=ALL)
    assert (low.value, low.outcome) == (pytest.approx(0.4), "fail")
    assert token_f1("", "The.", threshold=0.5, normalisation=ALL).value == 1.0  # both empty
    assert token_f1("", "cat", threshold=0.5, normalisation=ALL).value == 0.0
    assert token_f1("dog", "cat", threshold=0.0, normalisation=ALL).outcome == "pass"


# --- bleu, chrf, rouge (sacrebleu and rouge-score) ------------------------------------------

FOX = "The quick brown fox jumps over the lazy dog."
FOX_REFERENCE = "A quick brown fox jumped over the lazy dog."
CAT = "the cat is on the mat"
CAT_REFERENCE = "the cat sat on the mat"


def test_unit_bleu_and_chrf_are_sacrebleus_sentence_scores_over_100() -> None:
    # The libraries' own values, computed once with sacrebleu 2.6.0 (sentence_bleu and
    # sentence_chrf with their defaults) and divided by 100:
    assert bleu(FOX, FOX_REFERENCE, threshold=0.5) == Score(
        pytest.approx(0.5253819788848316), "pass", "BLEU 0.525 (threshold 0.5)"
    )
    assert bleu(CAT, CAT_REFERENCE, threshold=0.5) == Score(
        pytest.approx(0.3799178428257963), "fail", "BLEU 0.380 (threshold 0.5)"
    )
    assert chrf(FOX, FOX_REFERENCE, threshold=0.9) == Score(
        pytest.approx(0.8272049125618447), "fail", "chrF 0.827 (threshold 0.9)"
    )
    assert chrf(CAT, CAT_REFERENCE, threshold=0.5) == Score(
        pytest.approx(0.619251512899325), "pass", "chrF 0.619 (threshold 0.5)"
    )
    assert chrf("dog barks", "cat meows", threshold=0.5).value == pytest.approx(0.0625)
    assert chrf("The Cat", "the cat", threshold=0.5).value == pytest.approx(0.17777777777777778)


def test_unit_bleu_and_chrf_by_hand() -> None:
    # identical texts: 1.0 exactly (sacrebleu says 100.00000000000004 for BLEU; clamped)
    assert bleu(FOX, FOX, threshold=1.0) == Score(1.0, "pass", "BLEU 1.000 (threshold 1)")
    assert chrf(FOX, FOX, threshold=1.0) == Score(1.0, "pass", "chrF 1.000 (threshold 1)")
    # no word in common: no n-gram matches, BLEU 0; no character in common: chrF 0
    assert passed(bleu("dog barks", "cat meows", threshold=0.5)) == (0.0, "fail")
    assert passed(chrf("xyz", "abc", threshold=0.5)) == (0.0, "fail")
    assert passed(bleu("", "cat", threshold=0.0)) == (0.0, "pass")  # threshold 0 passes all
    assert bleu("The Cat", "the cat", threshold=0.5).value == 0.0  # case-sensitive
    for scorer in (bleu, chrf):
        assert scorer("cat", " \t", threshold=0.5) == Score(None, "error", "reference is empty")


def test_unit_rouge_is_rouge_scores_f_measure() -> None:
    # rouge-score 0.1.2's RougeScorer([type], use_stemmer=...).score(reference, answer).fmeasure
    expected = {
        ("rouge1", False): 0.7777777777777778,
        ("rouge1", True): 0.8888888888888888,  # jumps/jumped both stem to jump
        ("rouge2", False): 0.625,
        ("rouge2", True): 0.875,
        ("rougeL", False): 0.7777777777777778,
        ("rougeL", True): 0.8888888888888888,
    }
    for (rouge_type, use_stemmer), value in expected.items():
        score = rouge(
            FOX, FOX_REFERENCE, rouge_type=rouge_type, use_stemmer=use_stemmer, threshold=0.8
        )
        assert score.value == pytest.approx(value)
        assert score.outcome == ("pass" if value >= 0.8 else "fail")
    default = rouge(FOX, FOX_REFERENCE, rouge_type="rougeL", use_stemmer=False, threshold=0.5)
    assert default.explanation == "rougeL F 0.778 (threshold 0.5)"


def test_unit_rouge_by_hand() -> None:
    # [the, cat, is, on, the, mat] vs [the, cat, sat, on, the, mat]: 5 of 6 unigrams shared
    # (P = R = F = 5/6); bigrams: the cat, on the, the mat shared, 3 of 5 (0.6); the longest
    # common subsequence the cat on the mat has 5 tokens (5/6).
    for rouge_type, value in (("rouge1", 5 / 6), ("rouge2", 0.6), ("rougeL", 5 / 6)):
        score = rouge(CAT, CAT_REFERENCE, rouge_type=rouge_type, use_stemmer=False, threshold=0.7)
        assert (score.value, score.outcome) == (
            pytest.approx(value),
            "pass" if value >= 0.7 else "fail",
        )
    same = rouge("The Cat!", "the cat", rouge_type="rouge2", use_stemmer=False, threshold=1.0)
    assert same == Score(1.0, "pass", "rouge2 F 1.000 (threshold 1)")  # lowercased, no punctuation
    disjoint = rouge("dog barks", "cat meows", rouge_type="rouge1", use_stemmer=True, threshold=0)
    assert disjoint == Score(0.0, "pass", "rouge1 F 0.000 (threshold 0)")
    assert rouge("", "cat", rouge_type="rougeL", use_stemmer=False, threshold=0.5).value == 0.0
    for reference in ("", " ...", "日本語"):  # the tokeniser keeps ASCII letters and digits only
        assert rouge("cat", reference, rouge_type="rougeL", use_stemmer=False, threshold=0.5) == (
            Score(None, "error", "reference has no ROUGE tokens (ASCII letters or digits)")
        )


# --- properties ----------------------------------------------------------------------------


@PROPERTY
@given(text=st.text(), case=st.booleans(), punctuation=st.booleans(), articles=st.booleans())
def test_property_exact_of_a_text_with_itself_passes(
    text: str, case: bool, punctuation: bool, articles: bool
) -> None:
    normalisation = Normalisation(case=case, punctuation=punctuation, articles=articles)
    assert exact(text, text, normalisation).outcome == "pass"


@PROPERTY
@given(answer=st.text(), reference=st.text())
def test_property_token_f1_is_a_symmetric_fraction(answer: str, reference: str) -> None:
    forward = token_f1(answer, reference, threshold=0.5, normalisation=ALL)
    backward = token_f1(reference, answer, threshold=0.5, normalisation=ALL)
    assert forward.value is not None
    assert 0.0 <= forward.value <= 1.0
    assert forward == backward


@PROPERTY
@given(answer=st.text(), reference=st.one_of(st.text(), st.integers(), st.floats()))
def test_property_no_scorer_raises_on_any_answer(answer: str, reference: Any) -> None:
    for score in (
        numeric(answer, reference, abs_tol=0.1, rel_tol=0.1),
        choice(answer, str(reference), CHOICES, ALL),
        json_field(answer, "a.0", reference, ALL),
        includes(answer, str(reference), ALL),
        pattern(answer, re.compile("a+")),
        bleu(answer, str(reference), threshold=0.5),
        chrf(answer, str(reference), threshold=0.5),
        rouge(answer, str(reference), rouge_type="rouge2", use_stemmer=True, threshold=0.5),
    ):
        assert score.outcome in ("pass", "fail", "error")
        assert (score.value is None) == (score.outcome == "error")
        assert score.value is None or 0.0 <= score.value <= 1.0


# --- parameters ----------------------------------------------------------------------------


def test_unit_parameters_default_the_output_and_validate_again_once_resolved() -> None:
    parameters = validate_parameters(
        AnswerScorer, {"scorer": "exact", "answer": "a", "reference": "r"}
    )
    assert parameters.output_columns == ["exact_value", "exact_outcome", "exact_explanation"]
    again = validate_parameters(AnswerScorer, parameters.model_dump(mode="json"))
    assert again == parameters


# --- through a real worker -----------------------------------------------------------------


@pytest.mark.integration
def test_answer_scorer_exact_adds_value_outcome_and_explanation(
    shared_runtime: PluginRuntime, make_frame: MakeFrame
) -> None:
    data = pd.DataFrame(
        {
            "quality_response": ["The Eiffel Tower.", "Big Ben", None, "Louvre"],
            "expected": ["eiffel tower", "Tower Bridge", "x", None],
            "_row": range(4),
        }
    )
    params = {"scorer": "exact", "answer": "quality_response", "reference": "expected"}
    info = shared_runtime.describe("answer_scorer", params)
    assert info.kind is PluginKind.ROW_PLUGIN
    assert info.parameters is not None
    assert info.parameters["output"] == "exact"
    out = run_one(shared_runtime, "answer_scorer", params, [make_frame(data)]).data
    assert list(out.columns[:3]) == list(data.columns)
    assert nulls_as_none(out["exact_value"]) == [1.0, 0.0, None, None]
    assert out["exact_outcome"].tolist() == ["pass", "fail", "error", "error"]
    assert out["exact_explanation"].tolist() == [
        "matches the reference",
        "differs from the reference",
        "no answer",
        "no reference",
    ]


@pytest.mark.integration
def test_answer_scorer_token_f1_with_an_output_prefix_and_threshold(
    shared_runtime: PluginRuntime, make_frame: MakeFrame
) -> None:
    data = pd.DataFrame(
        {"answer": ["the cat sat", "dog"], "gold": ["a cat sat down", "cat"], "_row": [0, 1]}
    )
    params = {
        "scorer": "token_f1",
        "answer": "answer",
        "reference": "gold",
        "output": "f1",
        "threshold": 0.9,
    }
    out = run_one(shared_runtime, "answer_scorer", params, [make_frame(data)]).data
    assert out["f1_value"].tolist() == [pytest.approx(0.8), 0.0]
    assert out["f1_outcome"].tolist() == ["fail", "fail"]
    assert out["f1_explanation"].tolist()[0] == "token F1 0.800 (threshold 0.9)"


@pytest.mark.integration
def test_answer_scorer_bleu_and_chrf_in_a_worker(
    shared_runtime: PluginRuntime, make_frame: MakeFrame
) -> None:
    data = pd.DataFrame(
        {
            "answer": [FOX, CAT, "dog barks", "cat", None],
            "gold": [FOX_REFERENCE, CAT_REFERENCE, "cat meows", "  ", "x"],
            "_row": range(5),
        }
    )
    for scorer, values, outcomes in (
        ("bleu", [0.5253819788848316, 0.3799178428257963, 0.0], ["pass", "fail", "fail"]),
        ("chrf", [0.8272049125618447, 0.619251512899325, 0.0625], ["pass", "pass", "fail"]),
    ):
        params = {"scorer": scorer, "answer": "answer", "reference": "gold", "threshold": 0.4}
        out = run_one(shared_runtime, "answer_scorer", params, [make_frame(data)]).data
        assert nulls_as_none(out[f"{scorer}_value"]) == [*map(pytest.approx, values), None, None]
        assert out[f"{scorer}_outcome"].tolist() == [*outcomes, "error", "error"]
        assert out[f"{scorer}_explanation"].tolist()[3:] == ["reference is empty", "no answer"]
    name = out["chrf_explanation"].tolist()[0]
    assert name == "chrF 0.827 (threshold 0.4)"


@pytest.mark.integration
def test_answer_scorer_rouge_in_a_worker_with_the_stemmer(
    shared_runtime: PluginRuntime, make_frame: MakeFrame
) -> None:
    data = pd.DataFrame(
        {
            "answer": [FOX, CAT, "dog barks", "cat"],
            "gold": [FOX_REFERENCE, CAT_REFERENCE, "cat meows", None],
            "_row": range(4),
        }
    )
    params = {"scorer": "rouge", "answer": "answer", "reference": "gold", "output": "r"}
    out = run_one(shared_runtime, "answer_scorer", params, [make_frame(data)]).data
    assert nulls_as_none(out["r_value"]) == [
        pytest.approx(0.7777777777777778),
        pytest.approx(5 / 6),
        0.0,
        None,
    ]
    assert out["r_outcome"].tolist() == ["pass", "pass", "fail", "error"]
    assert out["r_explanation"].tolist()[::3] == ["rougeL F 0.778 (threshold 0.5)", "no reference"]
    stemmed = {**params, "rouge_type": "rouge2", "use_stemmer": True, "threshold": 0.8}
    out = run_one(shared_runtime, "answer_scorer", stemmed, [make_frame(data)]).data
    assert nulls_as_none(out["r_value"]) == [pytest.approx(0.875), pytest.approx(0.6), 0.0, None]
    assert out["r_outcome"].tolist() == ["pass", "fail", "fail", "error"]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"scorer": "exact", "answer": "a"}, r"the exact scorer requires reference"),
        ({"scorer": "pattern", "answer": "a"}, r"the pattern scorer requires regex"),
        (
            {"scorer": "pattern", "answer": "a", "regex": "x" * 1001},
            r"regex: Value error, regex has 1001 characters",
        ),
        (
            {"scorer": "exact", "answer": "a", "reference": "r", "abs_tol": 0.1},
            r"abs_tol is used only by the numeric scorer, not by exact",
        ),
        (
            {"scorer": "numeric", "answer": "a", "reference": "r", "case": False},
            r"case \(normalisation\) is not used by the numeric scorer",
        ),
        (
            {"scorer": "exact", "answer": "s_value", "reference": "r", "output": "s"},
            r"output 's' would overwrite input column 's_value'",
        ),
        ({"scorer": "f1", "answer": "a", "reference": "r"}, r"scorer: Input should be"),
        ({"scorer": "chrf", "answer": "a"}, r"the chrf scorer requires reference"),
        (
            {"scorer": "exact", "answer": "a", "reference": "r", "threshold": 0.7},
            r"threshold is used only by the token_f1, bleu, chrf and rouge scorers, not by exact",
        ),
        (
            {"scorer": "bleu", "answer": "a", "reference": "r", "use_stemmer": True},
            r"use_stemmer is used only by the rouge scorer, not by bleu",
        ),
        (
            {"scorer": "rouge", "answer": "a", "reference": "r", "rouge_type": "rougeLsum"},
            r"rouge_type: Input should be 'rouge1', 'rouge2' or 'rougeL'",
        ),
        (
            {"scorer": "rouge", "answer": "a", "reference": "r", "case": False},
            r"case \(normalisation\) is not used by the rouge scorer",
        ),
    ],
)
def test_answer_scorer_refuses_inconsistent_parameters(
    shared_runtime: PluginRuntime, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match="plugin 'answer_scorer': invalid parameters: "):
        shared_runtime.describe("answer_scorer", params)
    with pytest.raises(ConfigurationError, match=message):
        shared_runtime.describe("answer_scorer", params)


@PROPERTY
@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_unit_ascii_punctuation_is_removed_as_the_unicode_rule_removes_it(text: str) -> None:
    flags = {"case": False, "whitespace": False, "articles": False}
    by_rule = "".join(c for c in text if c not in string.punctuation and not _category_p(c))
    assert normalise(text, punctuation=True, **flags) == by_rule


def _category_p(char: str) -> bool:
    return unicodedata.category(char).startswith("P")
