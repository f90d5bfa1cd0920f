"""The orchestrator's side of the plugin API: declarations checked, parameters validated, and
a plugin described as plain data. Runs in workers (which import plugin code); not for plugin
authors, whose API is :mod:`elspeth.plugins`.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import re
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import pydantic

from elspeth.errors import ConfigurationError
from elspeth.plugins._api import Plugin, PluginKind
from elspeth.security import SecurityLevel

PROXY_COUNTS: Final[Mapping[PluginKind, tuple[int, int | None]]] = MappingProxyType(
    {
        PluginKind.ROW_PLUGIN: (1, 1),
        PluginKind.VALIDATOR: (1, 1),
        PluginKind.EARLY_STOP: (1, 1),
        PluginKind.AGGREGATOR: (1, None),
        PluginKind.BASELINE_COMPARISON: (2, 2),
    }
)
"""Kind -> (fewest, most) proxies one call may pass; ``None`` means no upper bound."""

_NAME: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")


def check_declaration(plugin: type[Plugin], source: str) -> None:
    """Raise :class:`ConfigurationError` if a plugin class declares itself wrongly."""
    name = getattr(plugin, "name", None)
    problems: list[str] = []
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        problems.append(f"name {name!r} must match {_NAME.pattern}")
    if not isinstance(getattr(plugin, "kind", None), PluginKind):
        problems.append(f"kind must be one of {[k.value for k in PluginKind]}")
    if not isinstance(getattr(plugin, "clearance", None), SecurityLevel):
        problems.append("clearance must be a SecurityLevel")
    floor = getattr(plugin, "output_floor", None)
    if floor is not None and not isinstance(floor, SecurityLevel):
        problems.append("output_floor must be a SecurityLevel or None")
    memory = getattr(plugin, "min_memory_limit_bytes", 0)
    if type(memory) is not int or memory < 0:
        problems.append("min_memory_limit_bytes must be a non-negative int")
    parameters = getattr(plugin, "Parameters", None)
    if not (isinstance(parameters, type) and issubclass(parameters, pydantic.BaseModel)):
        problems.append("Parameters must be a pydantic BaseModel subclass")
    if problems:
        raise ConfigurationError(
            f"plugin class {plugin.__qualname__} from {source} is declared wrongly: "
            + "; ".join(problems)
        )


def validate_parameters(plugin: type[Plugin], parameters: Mapping[str, Any] | None) -> Any:
    """The plugin's parameter model, or a :class:`ConfigurationError` naming every bad field."""
    try:
        return plugin.Parameters.model_validate(dict(parameters or {}))
    except pydantic.ValidationError as error:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(parameters)'}: {e['msg']}"
            for e in error.errors()
        )
        raise ConfigurationError(f"plugin {plugin.name!r}: invalid parameters: {details}") from None


@functools.cache
def _distributions_by_package() -> Mapping[str, list[str]]:
    """Top-level package -> distributions; reading every distribution's metadata takes about
    0.15 s, so a worker does it once, not once per plugin it describes."""
    return metadata.packages_distributions()


def plugin_version(plugin: type[Plugin]) -> str:
    """Which code a plugin is: its distribution and version, or for a plugin file loaded from a
    plugin directory, the file's name and SHA-256 (such files have no version of their own)."""
    top = plugin.__module__.split(".", 1)[0]
    distributions = _distributions_by_package().get(top)
    if distributions:
        name = distributions[0]
        return f"{name} {metadata.version(name)}"
    source = inspect.getsourcefile(plugin)
    if source is None:
        return "unknown"
    digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    return f"file {Path(source).name} sha256:{digest}"


def describe(plugin: type[Plugin], parameters: pydantic.BaseModel | None = None) -> dict[str, Any]:
    """A plugin's declaration as plain data (what the orchestrator plans with)."""
    low, high = PROXY_COUNTS[plugin.kind]
    return {
        "name": plugin.name,
        "version": plugin_version(plugin),
        "kind": plugin.kind.value,
        "clearance": plugin.clearance.name,
        "output_floor": plugin.output_floor.name if plugin.output_floor else None,
        "min_proxies": low,
        "max_proxies": high,
        "parameters": parameters.model_dump(mode="json") if parameters is not None else None,
        "parameter_schema": plugin.Parameters.model_json_schema(),
        "min_memory_limit_bytes": plugin.min_memory_limit_bytes,
    }
