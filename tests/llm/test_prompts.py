"""Prompt packs: sandboxing, strict undefined, the up-front field check, compile errors."""

from __future__ import annotations

import pytest

from elspeth.llm import CriterionPrompt, PromptPack, PromptRenderError, TemplateError
from elspeth.llm._prompts import MissingField


def test_render_builds_system_and_user_messages_per_criterion() -> None:
    pack = PromptPack(
        [
            CriterionPrompt("accuracy", "Is {{ answer }} right for {{ question }}?"),
            CriterionPrompt("tone", "Tone of {{ answer }}", system="Judge tone ({{ criterion }})."),
        ],
        system="You grade {{ criterion }} on a scale of {{ scale }}.",
        constants={"scale": 5},
    )
    row = {"question": "2+2", "answer": "4"}
    assert pack.criteria == ("accuracy", "tone")
    assert pack.render("accuracy", row) == (
        {"role": "system", "content": "You grade accuracy on a scale of 5."},
        {"role": "user", "content": "Is 4 right for 2+2?"},
    )
    assert pack.render("tone", row)[0]["content"] == "Judge tone (tone)."


def test_row_mapping_reaches_columns_that_are_not_identifiers() -> None:
    pack = PromptPack({"c": "{{ row['free text'] }}"})
    assert pack.render("c", {"free text": "hello"}) == ({"role": "user", "content": "hello"},)


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__ }}",
        "{{ answer.__class__.__mro__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ answer.__len__() }}",
    ],
)
def test_sandbox_refuses_dunder_and_private_attributes(template: str) -> None:
    pack = PromptPack({"c": template})
    with pytest.raises(PromptRenderError, match=r"prompts\.criteria\.c\.user: .*unsafe"):
        pack.render("c", {"answer": "x"})


def test_immutable_sandbox_refuses_mutating_calls() -> None:
    pack = PromptPack({"c": "{{ items.append(1) }}{{ items }}"})
    items: list[int] = []
    with pytest.raises(PromptRenderError, match=r"unsafe|not safely callable|append"):
        pack.render("c", {"items": items})
    assert items == []


def test_strict_undefined_names_the_missing_field_and_template() -> None:
    pack = PromptPack({"accuracy": "Q: {{ question }} A: {{ answer }}"}, name="pack1")
    with pytest.raises(PromptRenderError) as caught:
        pack.render("accuracy", {"question": "secret-content-123"})
    message = str(caught.value)
    assert "pack1.criteria.accuracy.user" in message
    assert "'answer' is undefined" in message
    assert "secret-content-123" not in message


def test_field_check_lists_every_missing_field_with_its_template() -> None:
    pack = PromptPack(
        {"a": "{{ question }} {{ answr }}", "b": "{% for x in items %}{{ x }}{% endfor %}"},
        system="{{ persona }} {{ criterion }} {{ row.anything }}",
        constants={"persona": "judge"},
    )
    assert pack.missing_fields(["question"]) == [
        MissingField("prompts.criteria.a.user", "answr"),
        MissingField("prompts.criteria.b.user", "items"),
    ]
    with pytest.raises(TemplateError) as caught:
        pack.check_fields(["question"])
    assert "template prompts.criteria.a.user uses field 'answr'" in str(caught.value)
    assert "template prompts.criteria.b.user uses field 'items'" in str(caught.value)
    pack.check_fields(["question", "answr", "items"])


def test_syntax_errors_are_reported_together_with_template_and_line() -> None:
    with pytest.raises(TemplateError) as caught:
        PromptPack({"a": "fine", "b": "line one\n{{ broken", "c": "{% if %}"})
    message = str(caught.value)
    assert "prompts.criteria.b.user, line 2" in message
    assert "prompts.criteria.c.user, line 1" in message


def test_empty_and_duplicate_criteria_are_refused() -> None:
    with pytest.raises(TemplateError, match="at least one criterion"):
        PromptPack({})
    with pytest.raises(TemplateError, match="repeat: a"):
        PromptPack([CriterionPrompt("a", "x"), CriterionPrompt("a", "y")])
