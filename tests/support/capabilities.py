"""Which Linux capabilities this process holds: root in a container's default capability set
(a CI runner's or a developer's container) lacks several that root on a host has, and a test
that needs one must say so up front instead of erroring."""

from __future__ import annotations

from pathlib import Path

#: Bit numbers from linux/capability.h of the capabilities tests ask about.
CAPABILITY_BITS: dict[str, int] = {"CAP_MKNOD": 27, "CAP_SYS_ADMIN": 21}


def missing_capabilities(*names: str, status: Path = Path("/proc/self/status")) -> list[str]:
    """The capabilities among ``names`` this process does not hold in its effective set."""
    for line in status.read_text().splitlines():
        if line.startswith("CapEff:"):
            effective = int(line.split()[1], 16)
            return [name for name in names if not effective >> CAPABILITY_BITS[name] & 1]
    raise RuntimeError(f"{status} has no CapEff line")
