"""Checks the loader runs besides the schema: where a schema problem is and what was meant, the
files the settings name, and prices. All of them read no data: a file is examined with ``stat``
and ``access``, never opened."""

from __future__ import annotations

import datetime as dt
import difflib
import inspect
import types
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pydantic

from elspeth.config._errors import SettingsProblem
from elspeth.config._models import SuiteSettings
from elspeth.config._yaml import KeyPath, LoadedYaml, dotted
from elspeth.datasources import (
    DatasourceError,
    check_source_file,
    check_sqlite_database,
    sqlite_url_relative_to,
)

FILE_DATASOURCES = ("csv", "jsonl", "parquet")
SIGNING_KEYS = ("private_key_path", "key_path")


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """``"; did you mean 'X'?"`` for the closest known word, or nothing."""
    close = difflib.get_close_matches(word, sorted(set(known)), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


# --- where a schema problem is, and what was meant ---------------------------------------------


def schema_problems(error: pydantic.ValidationError, loaded: LoadedYaml) -> list[SettingsProblem]:
    """Every problem pydantic found, at its key's line and column, named by its key path.

    An unknown key near a known one gets "did you mean"; a text value YAML read as a date is
    told to quote it. Inputs are looked at, never quoted: a value may hold a secret.
    """
    problems = []
    for detail in error.errors(include_url=False):
        location: KeyPath = tuple(part for part in detail["loc"] if isinstance(part, str | int))
        shown = _shown_path(location, loaded.data)
        keys = _existing_prefix(location, loaded.data)
        kind = detail["type"]
        message = str(detail["msg"])
        at_value = kind not in ("extra_forbidden", "missing") and keys == shown
        if kind == "extra_forbidden":
            key = location[-1] if location else ""
            message = "unknown key" + did_you_mean(str(key), _known_keys(location))
        elif kind == "missing":
            message = "required key is missing"
        elif kind == "string_type" and isinstance(detail.get("input"), dt.date):
            text = _date_text(detail["input"])
            message = f'YAML reads the unquoted {text} as a date, not text; quote it: "{text}"'
        elif kind == "value_error":
            message = message.removeprefix("Value error, ")
        line, column = loaded.position_of(keys, value=at_value)
        problems.append(SettingsProblem(loaded.file, line, dotted(shown), message, column))
    return problems


def _date_text(value: dt.date) -> str:
    return value.date().isoformat() if isinstance(value, dt.datetime) else value.isoformat()


def _existing_prefix(location: KeyPath, data: Any) -> KeyPath:
    """The parts of ``location`` that are keys in the file (pydantic adds discriminator tags)."""
    found: list[str | int] = []
    node = data
    for part in location:
        in_mapping = isinstance(node, dict) and isinstance(part, str) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if not (in_mapping or in_list):
            continue  # a discriminator tag or a model name pydantic adds: not a key
        node = node[part]
        found.append(part)
    return tuple(found)


def _shown_path(location: KeyPath, data: Any) -> KeyPath:
    """``location`` without the discriminator tags pydantic inserts (``sinks.out.csv.x`` →
    ``sinks.out.x``); the last part is kept even when it is not in the file (a missing key)."""
    shown: list[str | int] = []
    node = data
    for index, part in enumerate(location):
        in_mapping = isinstance(node, dict) and isinstance(part, str) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_mapping or in_list:
            node = node[part]
        elif index < len(location) - 1:
            continue
        shown.append(part)
    return tuple(shown)


def _known_keys(location: KeyPath) -> list[str]:
    """The field names of the model(s) that hold ``location``'s last key."""
    candidates: list[Any] = [SuiteSettings]
    for part in location[:-1]:
        candidates = [step for kind in candidates for step in _step(kind, part)]
    names: list[str] = []
    for kind in candidates:
        for member in _members(kind):
            if _is_model(member):
                names.extend(member.model_fields)
    return names


def _members(kind: Any) -> list[Any]:
    """A type with ``Annotated``, unions and ``None`` taken apart."""
    origin = get_origin(kind)
    if origin is Annotated:
        return _members(get_args(kind)[0])
    if origin is Union or origin is types.UnionType:
        return [member for arg in get_args(kind) for member in _members(arg)]
    if kind is type(None):
        return []
    return [kind]


def _is_model(kind: Any) -> bool:
    return inspect.isclass(kind) and issubclass(kind, pydantic.BaseModel)


def _step(kind: Any, part: str | int) -> list[Any]:
    steps: list[Any] = []
    for member in _members(kind):
        origin = get_origin(member)
        if _is_model(member) and isinstance(part, str):
            if part in member.model_fields:
                steps.append(member.model_fields[part].annotation)
            elif _tagged(member, part):
                steps.append(member)
        elif origin is dict and isinstance(part, str):
            steps.append(get_args(member)[1])
        elif origin in (list, tuple) and isinstance(part, int):
            steps.extend(get_args(member)[:1])
    return steps


def _tagged(model: type[pydantic.BaseModel], tag: str) -> bool:
    """Whether ``tag`` is the discriminator value (``type: csv``) that selects ``model``."""
    for field in model.model_fields.values():
        annotation = field.annotation
        if get_origin(annotation) is Literal and tag in get_args(annotation):
            return True
    return False


# --- the files the settings name -------------------------------------------------------------


def resolve_relative(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """A relative SQLite database in the datasource URL is relative to the settings file."""
    source = data.get("datasource")
    if not isinstance(source, dict) or source.get("type") != "sql":
        return data
    url = source.get("url")
    if not isinstance(url, str):
        return data
    return {**data, "datasource": {**source, "url": sqlite_url_relative_to(url, base)}}


def file_problems(data: dict[str, Any], loaded: LoadedYaml) -> list[SettingsProblem]:
    """Every file the (path-resolved) settings name exists, is a regular readable file and is
    not empty; every plugin directory is a directory. Checked on the raw settings, so a schema
    problem elsewhere does not hide a missing file."""
    problems: list[SettingsProblem] = []

    def check(path: KeyPath, run: Any) -> None:
        try:
            run()
        except DatasourceError as error:
            problems.append(loaded.problem(path, str(error), value=True))

    source = data.get("datasource")
    if isinstance(source, dict):
        if source.get("type") in FILE_DATASOURCES and isinstance(source.get("path"), str):
            given = Path(source["path"])
            check(("datasource", "path"), lambda: check_source_file(given, str(given)))
        if source.get("type") == "sql" and isinstance(source.get("url"), str):
            url = source["url"]
            check(("datasource", "url"), lambda: check_sqlite_database(url))
    sinks = data.get("sinks")
    for name, sink in sinks.items() if isinstance(sinks, dict) else ():
        signing = sink.get("signing") if isinstance(sink, dict) else None
        if not isinstance(signing, dict):
            continue
        for key in SIGNING_KEYS:
            if isinstance(signing.get(key), str):
                key_file = Path(signing[key])
                check(
                    ("sinks", name, "signing", key),
                    lambda f=key_file, k=key: check_source_file(f, str(f), k),
                )
    dirs = data.get("plugin_dirs")
    for index, directory in enumerate(dirs if isinstance(dirs, list) else ()):
        if isinstance(directory, str) and not Path(directory).is_dir():
            what = "is not a directory" if Path(directory).exists() else "no such directory"
            problem = loaded.problem(("plugin_dirs", index), f"{directory}: {what}", value=True)
            problems.append(problem)
    return problems


# --- prices ----------------------------------------------------------------------------------


def pricing_problems(
    settings: SuiteSettings, used_models: Sequence[str], loaded: LoadedYaml
) -> tuple[list[SettingsProblem], list[SettingsProblem]]:
    """(errors, warnings): a price that matches no model is an error; a model an experiment
    uses that has no price is a warning, and its cost is reported as unknown, never as 0."""
    names = {model.price_name for model in settings.models.values()}
    errors = [
        loaded.problem(
            ("pricing", entry),
            f"matches no model: no model is named {entry!r} (models are named "
            f"{', '.join(sorted(names))}){did_you_mean(entry, names)}",
        )
        for entry in settings.pricing
        if entry not in names
    ]
    warnings = []
    for name in dict.fromkeys(used_models):
        model = settings.models.get(name)
        if model is not None and model.price_name not in settings.pricing:
            warnings.append(
                loaded.problem(
                    ("models", name),
                    f"no price for model {model.price_name!r} under pricing: its cost is "
                    "reported as unknown",
                )
            )
    return errors, warnings
