"""Root-only set-up of the root tier: users, a world-readable virtualenv, the sudoers rule.

Everything here is idempotent and keeps what it made (users are never deleted; the virtualenv is
cached and rebuilt only when the lock or the source changes), except the sudoers rule, which the
caller removes at the end of the session.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.integration._processes import Account

REPO_ROOT = Path(__file__).resolve().parents[2]
DEBIAN_PYTHON = Path("/usr/bin/python3")
VENV_DIR = Path("/opt/elspeth-test-venv")
SUDOERS_RULE = Path("/etc/sudoers.d/elspeth-test")
PRODUCTION_SUDOERS = REPO_ROOT / "docker" / "elspeth-sudoers"
PRODUCTION_VENV_BIN = "/opt/venv/bin"

SIDECAR_GROUP = "sidecar"
#: name -> extra groups it must be in; uids are whatever useradd picks (1000 may be taken).
USERS: dict[str, tuple[str, ...]] = {
    "sidecar": (),
    "appuser": (SIDECAR_GROUP,),
    "appplugin": (),
}
#: Groups a user must never be in: the worker user may not reach the daemon's files.
FORBIDDEN_GROUPS: dict[str, tuple[str, ...]] = {"appplugin": (SIDECAR_GROUP,)}

_DEPENDENCY_INPUTS = ("constraints.txt", "pyproject.toml")
_SOURCE_INPUTS = ("constraints.txt", "pyproject.toml", "README.md")
_BUILD_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


class ProvisionError(Exception):
    """This machine cannot host the root tier; the message says what is missing."""


def missing_tools() -> list[str]:
    """What the root tier needs from the system and does not find (names for the skip reason)."""
    needs = {
        "sudo (scripts/system-deps.sh installs it)": shutil.which("sudo"),
        "visudo": shutil.which("visudo"),
        "useradd": shutil.which("useradd"),
        "ps (procps)": shutil.which("ps"),
        f"{DEBIAN_PYTHON} (Debian's python3)": DEBIAN_PYTHON.exists() or None,
    }
    missing = [name for name, found in needs.items() if not found]
    if DEBIAN_PYTHON.exists():
        probe = subprocess.run(
            [str(DEBIAN_PYTHON), "-c", "import venv, ensurepip"], capture_output=True, check=False
        )
        if probe.returncode != 0:
            missing.append("python3-venv (scripts/system-deps.sh installs it)")
    return missing


# --- users -------------------------------------------------------------------------------------


def ensure_users() -> dict[str, Account]:
    """Create ``sidecar``, ``appuser`` (in group ``sidecar``) and ``appplugin`` if absent."""
    for name, groups in USERS.items():
        try:
            Account.lookup(name)
        except KeyError:
            command = ["useradd", "--user-group", "--no-create-home"]
            command += ["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"]
            if groups:
                command += ["--groups", ",".join(groups)]
            _run([*command, name], f"create user {name}")
        account = Account.lookup(name)
        for group in groups:
            if not account.in_group(group):
                _run(["usermod", "--append", "--groups", group, name], f"add {name} to {group}")
        for group in FORBIDDEN_GROUPS.get(name, ()):
            if Account.lookup(name).in_group(group):
                raise ProvisionError(
                    f"user {name} is a member of group {group}; the root tier refuses to run "
                    f"with a worker user that can reach the daemon's files (gpasswd -d {name} "
                    f"{group})"
                )
    return {name: Account.lookup(name) for name in USERS}


# --- the virtualenv ----------------------------------------------------------------------------


def _digest(paths: list[Path], root: Path) -> str:
    hasher = hashlib.sha256()
    for path in paths:
        hasher.update(str(path.relative_to(root)).encode() + b"\0")
        hasher.update(path.read_bytes() + b"\0")
    return hasher.hexdigest()


def dependency_key() -> str:
    """Changes when the lock, the project metadata or the interpreter changes."""
    version = subprocess.run(
        [str(DEBIAN_PYTHON), "-c", "import sys; print(sys.version)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    files = [REPO_ROOT / name for name in _DEPENDENCY_INPUTS]
    return hashlib.sha256((_digest(files, REPO_ROOT) + version).encode()).hexdigest()


def source_key() -> str:
    """Changes when any file of the package (or its metadata) changes."""
    sources = sorted(
        path
        for path in (REPO_ROOT / "src").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
        if not any(part.endswith(".egg-info") for part in path.parts)
    )
    return _digest([REPO_ROOT / name for name in _SOURCE_INPUTS] + sources, REPO_ROOT)


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """One builder at a time (two pytest sessions may start together)."""
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True, slots=True)
class VenvBuild:
    python: Path
    rebuilt_dependencies: bool
    reinstalled_package: bool


def ensure_venv(venv: Path = VENV_DIR) -> VenvBuild:
    """A virtualenv from Debian's python3 that every user can run, with the package installed
    non-editable from a copy of the source (no build artefacts land in the repository)."""
    dependencies, source = dependency_key(), source_key()
    deps_stamp, source_stamp = venv / ".elspeth-dependencies", venv / ".elspeth-source"
    python = venv / "bin" / "python"
    previous_umask = os.umask(0o022)
    try:
        with _exclusive(venv.with_name(venv.name + ".lock")):
            rebuild = not python.exists() or _read(deps_stamp) != dependencies
            reinstall = rebuild or _read(source_stamp) != source
            if rebuild:
                shutil.rmtree(venv, ignore_errors=True)
                _run([str(DEBIAN_PYTHON), "-m", "venv", str(venv)], f"create {venv}")
            if reinstall:
                with tempfile.TemporaryDirectory(prefix="elspeth-test-build-") as build:
                    copy = Path(build) / "elspeth"
                    copy.mkdir()
                    for name in _SOURCE_INPUTS:
                        shutil.copy2(REPO_ROOT / name, copy / name)
                    shutil.copytree(REPO_ROOT / "src", copy / "src", ignore=_BUILD_IGNORE)
                    pip = [str(python), "-m", "pip", "install", "--quiet"]
                    pip += ["--disable-pip-version-check", "--no-cache-dir"]
                    pip += ["-c", str(copy / "constraints.txt")]
                    if not rebuild:
                        pip += ["--no-deps", "--force-reinstall"]
                    _run([*pip, str(copy)], f"install elspeth into {venv}", cwd=build)
                _run(["chmod", "-R", "a+rX", str(venv)], f"open {venv} to every user")
                deps_stamp.write_text(dependencies)
                source_stamp.write_text(source)
    finally:
        os.umask(previous_umask)
    return VenvBuild(python, rebuild, reinstall)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


# --- sudoers -----------------------------------------------------------------------------------


def sudoers_rule_for(venv: Path) -> str:
    """``docker/elspeth-sudoers`` with the image's venv replaced by ``venv``: the same rule."""
    text = PRODUCTION_SUDOERS.read_text()
    if PRODUCTION_VENV_BIN not in text:
        raise ProvisionError(f"{PRODUCTION_SUDOERS} no longer names {PRODUCTION_VENV_BIN}")
    header = f"# Installed by the elspeth root test tier for {venv}; removed after the session.\n"
    return header + text.replace(PRODUCTION_VENV_BIN, f"{venv}/bin")


def install_sudoers_rule(text: str, target: Path = SUDOERS_RULE) -> None:
    """Validate with ``visudo -cf`` and install 0440 root:root, atomically.

    The temporary name starts with a dot, which ``@includedir`` skips, so sudo never reads a
    half-written rule.
    """
    staging = target.with_name(f".{target.name}.new")
    staging.write_text(text)
    try:
        os.chown(staging, 0, 0)
        os.chmod(staging, 0o440)
        _run(["visudo", "-c", "-q", "-f", str(staging)], f"validate {staging}")
        os.replace(staging, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()


def remove_sudoers_rule(target: Path = SUDOERS_RULE) -> None:
    with contextlib.suppress(FileNotFoundError):
        target.unlink()


# --- directories -------------------------------------------------------------------------------


def make_directory(path: Path, mode: int, owner: Account | None = None) -> Path:
    """Create (or fix) ``path`` with exactly ``mode`` and owner (root when ``None``)."""
    path.mkdir(parents=True, exist_ok=True)
    uid, gid = (owner.uid, owner.gid) if owner else (0, 0)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    return path


def write_private_file(path: Path, data: bytes, mode: int, owner: Account | None = None) -> Path:
    """Write ``data`` to a new file that has ``mode`` and ``owner`` from its first byte on."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        uid, gid = (owner.uid, owner.gid) if owner else (0, 0)
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        os.write(fd, data)
    finally:
        os.close(fd)
    return path


def _run(command: list[str], what: str, *, cwd: str | None = None) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd)
    if done.returncode != 0:
        raise ProvisionError(
            f"cannot {what}: {' '.join(command)} exited {done.returncode}:\n"
            f"{(done.stdout + done.stderr)[-4000:]}"
        )
