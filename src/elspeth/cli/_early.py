"""Start a run's private standalone daemon while the command line imports and loads the
settings, instead of after: the daemon's own start (another interpreter, on another core)
then overlaps the orchestrator's imports, which are most of a run's start-up.

Only ``elspeth run`` does this, only when a quick look at the settings file says the run is
standalone (no ``sidecar`` section, or ``mode: standalone`` written out), and only once a run
has used the state directory; anything else, including a file that cannot be read as YAML,
starts the daemon where the run always did. A refused run's one trace is then the daemon's
own health check in the state directory's daemon audit log. Once the daemon answers, the same
thread imports aiohttp when a model needs it (its TLS set-up runs beside the main thread).

Whatever the daemon's start logs is held and logged when the run takes the daemon, where it
would have started it, so the messages and their order do not change. A run that never gets
that far (bad settings, a refused resume) stops the daemon unseen and puts the umask back.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import stat
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from elspeth.sidecar import StandaloneDaemon

PRIVATE_UMASK = 0o077
"""The umask a run sets before it starts its daemon (``SuiteRunner.run``): the daemon and the
files made for it get it the same way when started early."""


HTTP_PROVIDERS = frozenset({"openai", "azure_openai"})
"""Model types whose client needs aiohttp (imported on first use, see ``llm._providers._http``)."""


def peek(settings: Path) -> dict[str, Any] | None:
    """The settings file read as plain YAML, or None when it cannot be (the full load says
    why). Only a regular file is read: a pipe (``--settings <(...)``) can be read once, by
    the real load."""
    try:
        if not stat.S_ISREG(settings.stat().st_mode):
            return None
        with settings.open("rb") as handle:
            document = yaml.safe_load(handle)
    except (OSError, ValueError, yaml.YAMLError):
        return None
    return document if isinstance(document, dict) else None


def looks_standalone(document: dict[str, Any] | None) -> bool:
    """Whether the settings ask for standalone mode; false when in doubt (the full load
    decides, and a non-standalone run starts no daemon early)."""
    if document is None:
        return False
    sidecar = document.get("sidecar", {})
    return isinstance(sidecar, dict) and sidecar.get("mode", "standalone") == "standalone"


def uses_http(document: dict[str, Any] | None) -> bool:
    """Whether any model is an HTTP endpoint (its client will import aiohttp)."""
    models = document.get("models") if document is not None else None
    if not isinstance(models, dict):
        return False
    return any(isinstance(m, dict) and m.get("type") in HTTP_PROVIDERS for m in models.values())


def state_used(state_dir: Path) -> bool:
    """Whether an earlier run used ``state_dir`` (it is a directory with something in it)."""
    try:
        with os.scandir(state_dir) as entries:
            return any(True for _ in entries)
    except OSError:
        return False


class EarlyDaemon:
    """A standalone daemon being started in a background thread.

    :meth:`take` (once, by the run, where it would start its own) waits for it and returns it,
    or raises what starting it raised; :meth:`discard` stops a daemon nobody took.
    """

    def __init__(self, state_dir: Path | None, *, then_import: tuple[str, ...] = ()) -> None:
        self._state_dir = state_dir
        self._then_import = then_import
        self._daemon: StandaloneDaemon | None = None
        self._error: BaseException | None = None
        self._held: list[logging.LogRecord] = []
        self._taken = False
        self._released = False
        self._umask = os.umask(PRIVATE_UMASK)
        self._thread = threading.Thread(target=self._start, name="standalone-start", daemon=True)
        self._handlers = list(logging.getLogger().handlers)
        for handler in self._handlers:
            handler.addFilter(self._hold)
        self._thread.start()

    def _start(self) -> None:
        try:
            from elspeth.sidecar import start_standalone_daemon

            self._daemon = start_standalone_daemon(state_dir=self._state_dir)
        except BaseException as error:  # noqa: BLE001 - raised again by take
            self._error = error
            return
        # While the main thread still imports: part of it (aiohttp's TLS contexts) runs
        # without the GIL, beside it. An import that fails here fails again where it is used.
        for name in self._then_import:
            with contextlib.suppress(Exception):
                importlib.import_module(name)

    def _hold(self, record: logging.LogRecord) -> bool:
        """Keep back what the start logs until the run takes the daemon."""
        if record.thread is not None and record.thread == self._thread.ident:
            self._held.append(record)
            return False
        return True

    def _release(self) -> list[logging.LogRecord]:
        self._thread.join()
        if not self._released:
            self._released = True
            for handler in self._handlers:
                handler.removeFilter(self._hold)
        held, self._held = self._held, []
        return held

    def take(self) -> StandaloneDaemon:
        """The started daemon (the caller stops it), its start's log lines logged now."""
        if self._taken:
            raise RuntimeError("the early standalone daemon was already taken")
        self._taken = True
        for record in self._release():
            logging.getLogger(record.name).handle(record)
        if self._error is not None:
            raise self._error
        assert self._daemon is not None
        return self._daemon

    def discard(self, *, restore_umask: bool) -> None:
        """Stop the daemon if the run never took it; ``restore_umask`` when the run did not
        get as far as setting its own."""
        if self._taken:
            return
        self._taken = True
        self._release()
        if self._daemon is not None:
            self._daemon.stop()
        if restore_umask:
            os.umask(self._umask)
