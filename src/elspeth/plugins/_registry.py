"""Finding plugins by name: built-ins, the ``elspeth.plugins`` entry points, plugin directories.

The registry imports plugin code, so it runs inside a sandboxed worker: the orchestrator asks a
worker to describe a plugin rather than importing third-party code into its own process. A name
defined by two sources is an error naming both, never a silent override.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any, Final

from elspeth.errors import ConfigurationError
from elspeth.plugins._api import ENTRY_POINT_GROUP, Plugin
from elspeth.plugins._declaration import check_declaration, validate_parameters

BUILTIN_PLUGINS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "answer_scorer": "elspeth.plugins.builtin._answer_scorer:AnswerScorer",
        "json_schema_validator": "elspeth.plugins.builtin._validators:JsonSchemaValidator",
        "regex_validator": "elspeth.plugins.builtin._validators:RegexValidator",
        "repeat_reducer": "elspeth.plugins.builtin._repeat_reducer:RepeatReducer",
        "score_comparison": "elspeth.plugins.builtin._score_comparison:ScoreComparison",
        "score_extractor": "elspeth.plugins.builtin._score_extractor:ScoreExtractor",
        "score_statistics": "elspeth.plugins.builtin._score_statistics:ScoreStatistics",
        "score_summary": "elspeth.plugins.builtin._score_summary:ScoreSummary",
        "semantic_similarity": "elspeth.plugins.builtin._semantic:SemanticSimilarity",
        "threshold_early_stop": (
            "elspeth.plugins.builtin._threshold_early_stop:ThresholdEarlyStop"
        ),
    }
)
"""Built-in plugin name -> ``module:class``, imported only when asked for."""

_Loader = Callable[[], Any]


class UnknownPluginError(ConfigurationError):
    """No source defines a plugin of that name; the message lists the known names."""


class PluginRegistry:
    """Plugin classes by name from every source; classes load on first use."""

    def __init__(self, plugin_dirs: Iterable[str | Path] = (), *, entry_points: bool = True):
        self._sources: dict[str, tuple[str, _Loader]] = {}
        self._loaded: dict[str, type[Plugin]] = {}
        for name, target in BUILTIN_PLUGINS.items():
            self._add(name, f"built-in {target}", _target_loader(target))
        if entry_points:
            for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
                self._add(entry.name, f"entry point {entry.value}", entry.load)
        for directory in plugin_dirs:
            for module_path, plugin in _plugins_in_directory(Path(directory)):
                self._add(plugin.name, f"plugin file {module_path}", _constant(plugin))

    def names(self) -> list[str]:
        return sorted(self._sources)

    def get(self, name: str) -> type[Plugin]:
        """The plugin class called ``name``; an unknown name lists the known ones."""
        if name not in self._loaded:
            source, loader = self._entry(name)
            plugin = loader()
            if not (inspect.isclass(plugin) and issubclass(plugin, Plugin)):
                raise ConfigurationError(f"{source} does not name a Plugin subclass")
            check_declaration(plugin, source)
            if plugin.name != name:
                raise ConfigurationError(
                    f"{source} is registered as {name!r} but declares {plugin.name!r}"
                )
            self._loaded[name] = plugin
        return self._loaded[name]

    def build(self, name: str, parameters: Mapping[str, Any] | None) -> Plugin:
        """An instance of plugin ``name`` with validated parameters."""
        plugin = self.get(name)
        return plugin(validate_parameters(plugin, parameters))

    def _entry(self, name: str) -> tuple[str, _Loader]:
        try:
            return self._sources[name]
        except KeyError:
            raise UnknownPluginError(
                f"unknown plugin {name!r}; known plugins: {', '.join(self.names()) or 'none'}"
            ) from None

    def _add(self, name: str, source: str, loader: _Loader) -> None:
        if name in self._sources:
            raise ConfigurationError(
                f"plugin name {name!r} is defined twice: "
                f"by {self._sources[name][0]} and by {source}"
            )
        self._sources[name] = (source, loader)


def _target_loader(target: str) -> _Loader:
    module_name, _, attribute = target.partition(":")
    return lambda: getattr(importlib.import_module(module_name), attribute)


def _constant(plugin: type[Plugin]) -> _Loader:
    return lambda: plugin


def _plugins_in_directory(directory: Path) -> list[tuple[Path, type[Plugin]]]:
    """Import every ``*.py`` file (not starting with ``_``) and collect the plugins it defines:
    the Plugin subclasses that set ``name`` in their own class body (helpers without a name are
    base classes)."""
    if not directory.is_dir():
        raise ConfigurationError(
            f"plugin directory {directory} does not exist or is not a directory"
        )
    found: list[tuple[Path, type[Plugin]]] = []
    for path in sorted(directory.glob("*.py")):
        if path.name.startswith("_"):
            continue
        module = _import_file(path)
        for value in vars(module).values():
            if (
                inspect.isclass(value)
                and issubclass(value, Plugin)
                and value.__module__ == module.__name__
                and "name" in vars(value)
            ):
                check_declaration(value, f"plugin file {path}")
                found.append((path, value))
    return found


def _import_file(path: Path) -> ModuleType:
    resolved = path.resolve()
    tag = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    module_name = f"elspeth_plugin_files.{path.stem}_{tag}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise ConfigurationError(f"plugin file {path} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[module_name]
        raise ConfigurationError(
            f"plugin file {path} failed to import: {type(error).__name__}: {error}"
        ) from error
    return module
