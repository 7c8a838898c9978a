"""Memory limits for isolated children through cgroup v2 (docs/isolation.md), where the
worker runs in a cgroup v2 hierarchy it may write (systemd `Delegate=yes`, a container
given its own writable cgroup).

The worker finds its cgroup from the `0::/path` line of /proc/self/cgroup under the
cgroup2 mount, gathers the processes of that cgroup into a leaf `sluice-worker` (cgroup
v2 lets a group hand controllers to its children only once it holds no processes
itself), enables the memory controller for its children, and gives each child process
a group `sluice-<pid>` of its own: before each attempt `memory.max` is set to what the
child is charged now plus the function's `memory_mb` (as the rlimit is "above what the
child uses"), and `memory.swap.max` to 0 so the limit cannot spill into swap. The kernel
then OOM-kills the child when it passes the limit; `memory.events` counts it, which
tells a memory kill from any other SIGKILL. Anywhere else `detect` returns None with the
reason, and the child's RLIMIT_DATA is the limit (child.py).

The root and /proc are parameters so a test can point them at a tree of plain files.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from ..errors import SluiceError

log = logging.getLogger("sluice.worker")
PROC_SELF = Path("/proc/self")
LEAF = "sluice-worker"  # where the worker's processes live once children have groups
MIB = 1024 * 1024


class CgroupUnavailable(SluiceError):
    """Why the cgroup v2 memory limit does not apply here (the message says)."""


def own_path(proc_cgroup: str) -> str | None:
    """The cgroup v2 path in /proc/self/cgroup's text (its `0::/path` line), if any."""
    for line in proc_cgroup.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "" and path.startswith("/"):
            return path
    return None


def unified_mount(mounts: str) -> Path | None:
    """The mount point of the cgroup2 filesystem in /proc/self/mounts' text, if any."""
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "cgroup2":
            return Path(fields[1])
    return None


class Group:
    """One child's cgroup: its memory limit for the attempt and its OOM kills."""

    def __init__(self, path: Path, rmdir: Callable[[Path], None]) -> None:
        self.path = path
        self._rmdir = rmdir
        self._oom_kills = 0  # memory.events' oom_kill when the attempt started

    def limit(self, memory_mb: int | None) -> None:
        """Hold the next attempt to `memory_mb` MiB above what the child is charged
        now (no limit: "max"), and note the OOM kills so far."""
        value = "max"
        if memory_mb:
            value = str(self._read_int("memory.current") + memory_mb * MIB)
        _write(self.path / "memory.max", value)
        self._oom_kills = self.oom_kills()

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer ended a process of this group since `limit`."""
        return self.oom_kills() > self._oom_kills

    def oom_kills(self) -> int:
        try:
            text = (self.path / "memory.events").read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def remove(self) -> None:
        """Delete the group once its process has exited (the kernel refuses earlier)."""
        with contextlib.suppress(OSError):
            self._rmdir(self.path)

    def _read_int(self, name: str) -> int:
        try:
            return int((self.path / name).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0


class Cgroups:
    """The worker's delegated cgroup, in which each child gets a group."""

    def __init__(self, base: Path, *, rmdir: Callable[[Path], None] = os.rmdir) -> None:
        self.base = base
        self._rmdir = rmdir

    @classmethod
    def detect(
        cls,
        root: Path | None = None,
        *,
        proc_self: Path = PROC_SELF,
        rmdir: Callable[[Path], None] = os.rmdir,
    ) -> Cgroups:
        """The worker's cgroup made ready for child groups, or CgroupUnavailable."""
        try:
            path = own_path((proc_self / "cgroup").read_text())
            if root is None:
                root = unified_mount((proc_self / "mounts").read_text())
        except OSError as exc:
            raise CgroupUnavailable(f"cannot read {proc_self}: {exc}") from exc
        if path is None:
            raise CgroupUnavailable("no cgroup v2 hierarchy (/proc/self/cgroup has no 0:: line)")
        if root is None:
            raise CgroupUnavailable("no cgroup2 filesystem is mounted")
        parts = [p for p in path.split("/") if p]
        if parts and parts[-1] == LEAF:  # another worker process moved this one already
            parts.pop()
        base = root.joinpath(*parts)
        controllers = _words(base / "cgroup.controllers")
        if "memory" not in controllers:
            raise CgroupUnavailable(f"the memory controller is not delegated to {base}")
        if not os.access(base, os.W_OK) or not os.access(base / "cgroup.procs", os.W_OK):
            raise CgroupUnavailable(f"{base} is not writable by this worker")
        try:
            if "memory" not in _words(base / "cgroup.subtree_control"):
                _enable_memory(base)
        except OSError as exc:
            raise CgroupUnavailable(
                f"cannot enable the memory controller in {base}: {exc}"
            ) from exc
        return cls(base, rmdir=rmdir)

    def attach(self, pid: int) -> Group:
        """Move the child `pid` into a group of its own (OSError if the kernel refuses)."""
        path = self.base / f"sluice-{pid}"
        path.mkdir(exist_ok=True)  # a group left by a dead worker for a reused pid
        group = Group(path, self._rmdir)
        try:
            swap = path / "memory.swap.max"
            if swap.exists():  # only where the kernel accounts swap
                _write(swap, "0")
            _write(path / "cgroup.procs", str(pid))
        except OSError:
            group.remove()
            raise
        return group


def detect(root: Path | None = None, *, proc_self: Path = PROC_SELF) -> Cgroups | None:
    """`Cgroups.detect`, logging which memory limit applies to children (once per
    worker process: its pool of children calls this when it starts)."""
    try:
        cgroups = Cgroups.detect(root, proc_self=proc_self)
    except CgroupUnavailable as exc:
        log.info("isolated children's memory limit: RLIMIT_DATA (cgroup v2: %s)", exc)
        return None
    log.info("isolated children's memory limit: cgroup v2 memory.max under %s", cgroups.base)
    return cgroups


def _enable_memory(base: Path) -> None:
    """Move the processes of `base` into its leaf, then let its children use the memory
    controller (cgroup v2's rule: no processes in a group that has controllers enabled
    for its children)."""
    if not (base / "cgroup.type").exists():
        # The hierarchy's real root (only it has no cgroup.type) is exempt from that
        # rule, and its processes are the whole host's, kernel threads too: leave them.
        _write(base / "cgroup.subtree_control", "+memory")
        return
    leaf = base / LEAF
    leaf.mkdir(exist_ok=True)
    for pid in _words(base / "cgroup.procs"):
        with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
            _write(leaf / "cgroup.procs", pid)
    _write(base / "cgroup.subtree_control", "+memory")


def _words(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except OSError:
        return []


def _write(path: Path, value: str) -> None:
    # One write per value: the kernel takes a cgroup file's value in a single write(2).
    with open(path, "w") as file:
        file.write(value)
