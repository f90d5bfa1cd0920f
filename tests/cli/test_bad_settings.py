"""Every bad input the settings can hold gets exit 2 (3 for the clearance plan) and a message that
names the file, the line and column where it can, the key and the value's problem — before any
data is read or any model is called (the ``mock`` model here; the loopback tests prove "no
HTTP")."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.suite.conftest import SuiteFiles, run_cli

Edit = Callable[[dict[str, Any]], object]


def flat(text: str) -> str:
    """The message as one line: rich wraps long lines on a non-terminal at 160 columns."""
    return re.sub(r"\s+", " ", text)


def line_of(suite: SuiteFiles, text: str) -> int:
    """The 1-based line of the written settings where ``text`` first appears."""
    for number, line in enumerate(suite.path.read_text("utf-8").splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} is not in {suite.path}")


def place(suite: SuiteFiles, text: str, at: str | None = None) -> str:
    """``line:column`` (both 1-based) of ``at`` (default: ``text`` without its indent) on the
    first line of the written settings where ``text`` appears."""
    for number, line in enumerate(suite.path.read_text("utf-8").splitlines(), start=1):
        if text in line:
            return f"{number}:{line.index(at or text.lstrip()) + 1}"
    raise AssertionError(f"{text!r} is not in {suite.path}")


def validate(suite: SuiteFiles, edit: Edit) -> tuple[int, str]:
    edit(suite.settings)
    result = run_cli(*suite.args("--validate-only"))
    return result.code, flat(result.stderr)


def use_plugin(settings: dict[str, Any], plugin: str, params: dict[str, Any]) -> None:
    settings["plugins"] = {"check": {"plugin": plugin, "clearance": "OFFICIAL", "params": params}}
    settings["defaults"]["row_plugins"] = ["check"]


def test_unknown_key_names_file_line_and_key(suite: SuiteFiles) -> None:
    code, message = validate(suite, lambda s: s["defaults"].update(concurency=3))

    where = place(suite, "concurency:")
    assert code == 2
    assert f"{suite.path}:{where}: defaults.concurency: unknown key" in message


def test_wrong_type_names_the_key(suite: SuiteFiles) -> None:
    code, message = validate(suite, lambda s: s["defaults"].update(concurrency="many"))

    where = place(suite, "concurrency: many", at="many")
    assert code == 2
    assert f"{suite.path}:{where}: defaults.concurrency: Input should be a valid integer" in message


def test_missing_required_key(suite: SuiteFiles) -> None:
    code, message = validate(suite, lambda s: s.pop("models"))

    assert code == 2
    assert f"{suite.path}:1:1: models: required key is missing" in message


def test_several_problems_are_listed_together(suite: SuiteFiles) -> None:
    def edit(settings: dict[str, Any]) -> None:
        settings["defaults"].update(concurency=3, max_retries=-1)
        settings["sinks"]["results"]["colour"] = "blue"

    code, message = validate(suite, edit)

    assert code == 2
    assert "3 problem(s) in the settings" in message
    assert "defaults.concurency: unknown key" in message
    assert "defaults.max_retries: Input should be greater than or equal to 0" in message
    assert "sinks.results.csv.colour: unknown key" in message or (
        "sinks.results.colour: unknown key" in message
    )


def test_unknown_plugin_lists_the_known_ones(suite: SuiteFiles) -> None:
    code, message = validate(suite, lambda s: use_plugin(s, "no_such_plugin", {}))

    where = place(suite, "  check:")
    assert code == 2
    assert f"{suite.path}:{where}: plugins.check: unknown plugin 'no_such_plugin'" in message
    assert "known plugins: answer_scorer, json_schema_validator, regex_validator" in message


def test_bad_plugin_parameter_is_named(suite: SuiteFiles) -> None:
    params = {"source": "quality_response", "pattern": "("}
    code, message = validate(suite, lambda s: use_plugin(s, "regex_validator", params))

    assert code == 2
    assert "plugins.check: plugin 'regex_validator': invalid parameters: pattern:" in message
    assert "is not a valid regex" in message


def test_unknown_model_sink_and_prompt_pack_references(suite: SuiteFiles) -> None:
    def edit(settings: dict[str, Any]) -> None:
        settings["experiments"][0].update(model="nope", prompt_pack="gone", sinks=["nowhere"])

    code, message = validate(suite, edit)

    assert code == 2
    assert "3 problem(s)" in message
    for key, written, text in [
        ("model", "model: nope", "unknown model 'nope'; defined: loopback"),
        ("prompt_pack", "prompt_pack: gone", "unknown prompt pack 'gone'; defined: rate"),
        ("sinks", "- nowhere", "unknown sink 'nowhere'; defined: results"),
    ]:
        where = place(suite, written)
        if key == "sinks":  # a list is reported at its key, the line above its first item
            line = line_of(suite, written) - 1
            above = suite.path.read_text("utf-8").splitlines()[line - 1]
            where = f"{line}:{above.index('sinks:') + 1}"
        assert f"{suite.path}:{where}: experiments[0].{key}: {text}" in message


def test_template_field_not_in_declared_columns(suite: SuiteFiles) -> None:
    def edit(settings: dict[str, Any]) -> None:
        settings["prompt_packs"]["rate"]["criteria"]["colour"] = "Colour of {{ colour }}?"

    code, message = validate(suite, edit)

    assert code == 2
    assert (
        f"{suite.path}:{place(suite, 'colour:')}: prompt_packs.rate.criteria.colour: "
        "experiment base: template rate.criteria.colour.user uses field 'colour', which is not "
        "a datasource column; the columns the datasource declares: id, text"
    ) in message


def test_missing_environment_variable_is_named_not_guessed(suite: SuiteFiles) -> None:
    code, message = validate(
        suite, lambda s: s["suite"].update(description="key ${ELSPETH_TEST_NOT_SET_ANYWHERE}")
    )

    where = place(suite, "ELSPETH_TEST_NOT_SET_ANYWHERE", at="key ${")
    assert code == 2
    assert (
        f"{suite.path}:{where}: suite.description: environment variable "
        "ELSPETH_TEST_NOT_SET_ANYWHERE is not set"
    ) in message


def test_environment_variable_value_is_never_echoed(
    suite: SuiteFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELSPETH_TEST_SECRET_CONCURRENCY", "s3cr3t-value-here")
    code, message = validate(
        suite, lambda s: s["defaults"].update(concurrency="${ELSPETH_TEST_SECRET_CONCURRENCY}")
    )

    assert code == 2
    assert "defaults.concurrency" in message
    assert "s3cr3t-value-here" not in message


def test_broken_clearance_plan_lists_every_violation(suite: SuiteFiles) -> None:
    def edit(settings: dict[str, Any]) -> None:
        settings["datasource"].update(
            classification="OFFICIAL_SENSITIVE", clearance="OFFICIAL_SENSITIVE"
        )

    code, message = validate(suite, edit)

    assert code == 3
    assert "clearance plan refused: 2 violation(s)" in message
    assert (
        "llm 'base/llm' is cleared to OFFICIAL but receives OFFICIAL_SENSITIVE data "
        "(from datasource)"
    ) in message
    assert (
        "sink 'base/sink:results' is cleared to OFFICIAL but receives OFFICIAL_SENSITIVE data"
    ) in message


def test_malformed_yaml_names_the_line(suite: SuiteFiles) -> None:
    suite.path.write_text("suite:\n  name: x\n description: bad indent\nmodels: {}\n", "utf-8")

    result = run_cli("--settings", suite.path, "--validate-only")

    assert result.code == 2
    assert f"{suite.path}:3:2: (top level): invalid YAML:" in flat(result.stderr)


def test_duplicate_key_names_the_second_line(suite: SuiteFiles) -> None:
    suite.path.write_text("suite:\n  name: first\n  name: second\n", "utf-8")

    result = run_cli("--settings", suite.path, "--validate-only")

    assert result.code == 2
    assert f"{suite.path}:3:3: suite.name: duplicate key (it appears twice)" in flat(result.stderr)


def test_missing_settings_file(suite: SuiteFiles) -> None:
    missing = suite.directory / "absent.yaml"

    result = run_cli("--settings", missing, "--validate-only")

    assert result.code == 2
    assert f"{missing}: (top level): file not found" in flat(result.stderr)


def test_missing_datasource_file(suite: SuiteFiles) -> None:
    suite.settings["datasource"]["path"] = "absent.csv"

    result = run_cli(*suite.args())

    assert result.code == 2
    assert f"{suite.directory / 'absent.csv'}: no such file; check 'path'" in flat(result.stderr)
    # Found when the settings are loaded: the run does not start, and writes nothing.
    assert not suite.run_dirs()


def test_head_must_be_positive(suite: SuiteFiles) -> None:
    result = run_cli(*suite.args("--head", "0"))

    assert result.code == 2
    assert "--head must be at least 1" in result.stderr
    assert not suite.output_dir.exists()


def test_each_problem_stays_on_one_line_for_logs_and_grep(suite: SuiteFiles) -> None:
    suite.settings["defaults"]["concurrency"] = "many"

    result = run_cli(*suite.args("--validate-only"))

    where = place(suite, "concurrency: many", at="many")
    expected = (
        f"{suite.path}:{where}: defaults.concurrency: Input should be a valid integer, "
        "unable to parse string as an integer"
    )
    assert result.code == 2
    assert expected in [text.strip() for text in result.stderr.splitlines()]
