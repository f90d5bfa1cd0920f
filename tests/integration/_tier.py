"""The root tier's world: which mode it runs in, its users, interpreter and directories.

Two modes:

* ``root`` (a host or CI, as root): create what is missing (users, a world-readable virtualenv,
  a sudoers rule for it) and start the daemon as ``sidecar``; clients and the orchestrator run
  as ``appuser``/``appplugin`` in subprocesses.
* ``image`` (the dev container, as ``appuser``): the users, ``/opt/venv`` and the production
  sudoers rule exist already; use them and create nothing that needs root.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.integration import _provision, _sudo
from tests.integration._processes import BASE_ENVIRONMENT, Account, JsonLines, stop_process

HERE = Path(__file__).resolve().parent
HELPER_SCRIPTS = HERE / "run_as"
PROBE_PLUGINS = HERE / "probe_plugins"
WORKER_USER = "appplugin"
ORCHESTRATOR_USER = "appuser"


@dataclass(frozen=True)
class Tier:
    mode: str
    python: Path
    users: dict[str, Account]
    home: Path
    plugin_dir: Path
    scratch_root: Path
    #: Private to appuser (0700): run directories, outputs, a wrong key.
    appuser_dir: Path
    #: Private to appplugin (0700, root mode only): keys given to it on purpose.
    appplugin_dir: Path | None
    sudo_listing: str
    #: Whether this process may open ``/proc/<pid>/environ`` of a worker (a non-dumpable process
    #: of another user): root with CAP_SYS_PTRACE only. See :func:`reads_environ_of`.
    reads_worker_environ: bool

    def script(self, name: str) -> Path:
        return self.home / "bin" / name

    @property
    def is_root(self) -> bool:
        return self.mode == "root"


def _copy_world_readable(source: Path, target: Path) -> Path:
    """Copy the ``*.py`` files of ``source`` where every user can read them."""
    target.mkdir(mode=0o755)
    target.chmod(0o755)
    for path in sorted(source.glob("*.py")):
        shutil.copyfile(path, target / path.name)
        (target / path.name).chmod(0o644)
    return target


def _sudo_listing(user: Account) -> str:
    done: subprocess.CompletedProcess[str] = subprocess.run(
        ["sudo", "-n", "-l"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
        cwd="/",
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        **user.process_options(),
    )
    return done.stdout + done.stderr


#: Run as the worker user: become non-dumpable as the sandbox makes a worker, say so, then wait
#: for stdin to close (so the parent decides when it exits; no sleeping).
_NON_DUMPABLE_CHILD = """
import ctypes, json, sys
libc = ctypes.CDLL(None, use_errno=True)
PR_GET_DUMPABLE, PR_SET_DUMPABLE = 3, 4
if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 or libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0:
    sys.exit(f"PR_SET_DUMPABLE 0 failed: errno {ctypes.get_errno()}")
sys.stdout.write(json.dumps({"event": "ready"}) + "\\n")
sys.stdout.flush()
sys.stdin.read()
"""
_PROBE_MARKER = "ELSPETH_TIER_ENVIRON_PROBE"
_PROBE_TIMEOUT = 30.0


def reads_environ_of(account: Account) -> bool:
    """Whether this process can read ``/proc/<pid>/environ`` of a non-dumpable process of
    ``account``, found by trying once on a real one.

    Reading another user's environment takes CAP_SYS_PTRACE even for root, and a container's
    default capability set (podman's, docker's) drops it; a user namespace, Yama or an LSM can
    refuse it too, so the capability bits alone would not tell. The worker tests then rely on
    what each worker reports of its own environment, and keep the outside read as an extra
    check where it is possible.
    """
    child = subprocess.Popen(
        [str(_provision.DEBIAN_PYTHON), "-I", "-S", "-c", _NON_DUMPABLE_CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd="/",
        env={**BASE_ENVIRONMENT, _PROBE_MARKER: "1"},
        close_fds=True,
        **account.process_options(),
    )
    assert child.stdin is not None
    assert child.stdout is not None
    assert child.stderr is not None
    messages = JsonLines(child)
    try:
        try:
            messages.next(_PROBE_TIMEOUT)
        except AssertionError as error:
            stop_process(child)
            raise _provision.ProvisionError(
                f"the non-dumpable probe process of {account.name} did not start: {error}; "
                f"stderr: {child.stderr.read().decode('utf-8', 'replace')[-2000:]}"
            ) from None
        try:
            block = Path(f"/proc/{child.pid}/environ").read_bytes()
        except PermissionError:
            return False
        # Readable, so it must be the probe's own block; anything else is a broken premise.
        if f"{_PROBE_MARKER}=1\0".encode() not in block:
            raise _provision.ProvisionError(
                f"/proc/{child.pid}/environ of the probe process does not hold its environment"
            )
        return True
    finally:
        messages.close()
        child.stdin.close()  # its read returns, so it exits by itself
        try:
            child.wait(_PROBE_TIMEOUT)
        except subprocess.TimeoutExpired:
            stop_process(child)
        child.stdout.close()
        child.stderr.close()


def image_tier_unavailable() -> str | None:
    """Why this process is not ``appuser`` in an image with the worker sudo rule (or None)."""
    if getpass.getuser() != ORCHESTRATOR_USER:
        return f"not root, and not {ORCHESTRATOR_USER} (the dev image's user)"
    if shutil.which("sudo") is None:
        return f"running as {ORCHESTRATOR_USER} but sudo is not installed"
    listing = _sudo_listing(Account.lookup(ORCHESTRATOR_USER))
    if _sudo.worker_python(_sudo.allowed_commands(listing)) is None:
        return f"running as {ORCHESTRATOR_USER} but `sudo -n -l` lists no worker command"
    return None


@contextlib.contextmanager
def root_tier() -> Iterator[Tier]:
    """Provision (idempotently) and yield the root-mode tier; remove the sudoers rule after."""
    users = _provision.ensure_users()
    build = _provision.ensure_venv()
    home = Path(tempfile.mkdtemp(prefix="elspeth-root-tier-", dir="/var/tmp"))
    try:
        home.chmod(0o755)
        _copy_world_readable(HELPER_SCRIPTS, home / "bin")
        plugin_dir = _copy_world_readable(PROBE_PLUGINS, home / "plugins")
        _provision.make_directory(home / "daemons", 0o755)
        worker, orchestrator = users[WORKER_USER], users[ORCHESTRATOR_USER]
        scratch_root = _provision.make_directory(home / "scratch", 0o700, worker)
        appuser_dir = _provision.make_directory(home / "appuser", 0o700, orchestrator)
        appplugin_dir = _provision.make_directory(home / "appplugin", 0o700, worker)
        _provision.install_sudoers_rule(_provision.sudoers_rule_for(_provision.VENV_DIR))
        try:
            yield Tier(
                mode="root",
                python=build.python,
                users=users,
                home=home,
                plugin_dir=plugin_dir,
                scratch_root=scratch_root,
                appuser_dir=appuser_dir,
                appplugin_dir=appplugin_dir,
                sudo_listing=_sudo_listing(orchestrator),
                reads_worker_environ=reads_environ_of(worker),
            )
        finally:
            _provision.remove_sudoers_rule()
    finally:
        shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def image_tier() -> Iterator[Tier]:
    """The dev image as ``appuser``: its users, venv and sudoers rule; private temp dirs."""
    orchestrator = Account.lookup(ORCHESTRATOR_USER)
    listing = _sudo_listing(orchestrator)
    python = _sudo.worker_python(_sudo.allowed_commands(listing))
    assert python is not None
    home = Path(tempfile.mkdtemp(prefix="elspeth-isolation-"))
    try:
        home.chmod(0o755)
        _copy_world_readable(HELPER_SCRIPTS, home / "bin")
        plugin_dir = _copy_world_readable(PROBE_PLUGINS, home / "plugins")
        # Workers create their own 0700 directory here; sticky, so none can remove another's.
        scratch_root = home / "scratch"
        scratch_root.mkdir()
        scratch_root.chmod(0o1733)
        appuser_dir = home / "appuser"
        appuser_dir.mkdir(mode=0o700)
        yield Tier(
            mode="image",
            python=Path(python),
            users={name: Account.lookup(name) for name in _provision.USERS},
            home=home,
            plugin_dir=plugin_dir,
            scratch_root=scratch_root,
            appuser_dir=appuser_dir,
            appplugin_dir=None,
            sudo_listing=listing,
            # appuser may never read appplugin's environment; that is one of the properties.
            reads_worker_environ=False,
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)


def current_mode() -> tuple[str | None, str]:
    """``("root" | "image" | None, reason)``: which tier this process can run."""
    if os.geteuid() == 0:
        return "root", "running as root"
    reason = image_tier_unavailable()
    if reason is None:
        return "image", f"running as {ORCHESTRATOR_USER} with the image's sudo rule"
    return None, reason
