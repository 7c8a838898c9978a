"""cgroup v2 memory limits for isolated children (sluice/worker/cgroups.py), against a
fake cgroup v2 tree of plain files in a tmp dir: what the worker detects and writes, how
it cleans up and falls back, and how it reads an OOM kill. No kernel enforces anything
here; docs/isolation.md says where the kernel's side is exercised."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from sluice.protocol import Payload
from sluice.worker import cgroups
from sluice.worker.cgroups import MIB, Cgroups, CgroupUnavailable, own_path, unified_mount
from sluice.worker.child import Job
from sluice.worker.isolation import Children, death
from tests.harness import wait_for

APP = "tests.acceptance.isolated:app"
SERVICE = "system.slice/sluice.service"


@dataclass
class Tree:
    root: Path  # where cgroup2 is "mounted"
    proc: Path  # stands for /proc/self
    base: Path  # the worker's cgroup


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    """A cgroup v2 hierarchy delegated to the worker (as systemd's Delegate=yes gives)."""
    root, proc = tmp_path / "cgroup", tmp_path / "proc"
    base = root / SERVICE
    base.mkdir(parents=True)
    proc.mkdir()
    (base / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (base / "cgroup.type").write_text("domain\n")  # any group but the real root has one
    (base / "cgroup.subtree_control").write_text("\n")
    (base / "cgroup.procs").write_text("4001\n")
    (proc / "cgroup").write_text(f"0::/{SERVICE}\n")
    (proc / "mounts").write_text(f"sysfs /sys sysfs rw 0 0\ncgroup2 {root} cgroup2 rw 0 0\n")
    return Tree(root, proc, base)


def _detect(tree: Tree, root: Path | None = None) -> Cgroups:
    return Cgroups.detect(root, proc_self=tree.proc, rmdir=shutil.rmtree)


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("0::/system.slice/sluice.service\n", "/system.slice/sluice.service"),
        ("0::/\n", "/"),
        ("12:memory:/docker/abc\n0::/docker/abc\n", "/docker/abc"),  # hybrid: v2 line too
        ("12:memory:/docker/abc\n1:name=systemd:/docker/abc\n", None),  # v1 only
        ("", None),
    ],
)
def test_own_path_reads_the_v2_line_of_proc_self_cgroup(text: str, path: str | None) -> None:
    assert own_path(text) == path


def test_unified_mount_finds_the_cgroup2_filesystem() -> None:
    v1 = "cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n"
    assert unified_mount(v1) is None
    assert unified_mount(v1 + "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n") == Path(
        "/sys/fs/cgroup/unified"
    )


def test_detect_moves_the_workers_processes_to_a_leaf_and_enables_memory(tree: Tree) -> None:
    found = _detect(tree)  # the mount point comes from the fake /proc/self/mounts
    assert found.base == tree.base
    assert (tree.base / "sluice-worker" / "cgroup.procs").read_text() == "4001"
    assert (tree.base / "cgroup.subtree_control").read_text() == "+memory"


def test_at_the_real_root_the_hosts_processes_stay_where_they_are(tree: Tree) -> None:
    (tree.root / "cgroup.controllers").write_text("cpu memory pids\n")
    (tree.root / "cgroup.subtree_control").write_text("\n")
    (tree.root / "cgroup.procs").write_text("1\n2\n")  # no cgroup.type: the real root
    (tree.proc / "cgroup").write_text("0::/\n")
    assert _detect(tree).base == tree.root
    assert (tree.root / "cgroup.procs").read_text() == "1\n2\n"
    assert not (tree.root / "sluice-worker").exists()
    assert (tree.root / "cgroup.subtree_control").read_text() == "+memory"


def test_a_second_worker_process_already_in_the_leaf_uses_the_same_base(tree: Tree) -> None:
    (tree.base / "sluice-worker").mkdir()
    (tree.base / "cgroup.subtree_control").write_text("memory pids\n")
    (tree.proc / "cgroup").write_text(f"0::/{SERVICE}/sluice-worker\n")
    assert _detect(tree, tree.root).base == tree.base
    assert (tree.base / "cgroup.subtree_control").read_text() == "memory pids\n"  # untouched


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (lambda t: (t.proc / "cgroup").write_text("4:memory:/x\n"), "no cgroup v2 hierarchy"),
        (lambda t: (t.proc / "mounts").write_text("sysfs /sys sysfs rw 0 0\n"), "no cgroup2"),
        (lambda t: (t.base / "cgroup.controllers").write_text("cpu pids\n"), "not delegated"),
        # The kernel refuses the write (EBUSY: processes it could not move, EACCES, EROFS):
        # a directory in the file's place fails the same way.
        (lambda t: (t.base / "cgroup.subtree_control").unlink()
         or (t.base / "cgroup.subtree_control").mkdir(), "cannot enable"),
        (lambda t: (t.base / "sluice-worker").write_text(""), "cannot enable"),
    ],
)  # fmt: skip
def test_detect_says_why_it_falls_back_to_rlimits(tree: Tree, spoil: object, reason: str) -> None:
    spoil(tree)  # type: ignore[operator]
    with pytest.raises(CgroupUnavailable, match=reason):
        _detect(tree)


def test_detect_logs_which_memory_limit_applies(
    tree: Tree, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="sluice.worker"):
        assert cgroups.detect(proc_self=tree.proc) is not None
        (tree.proc / "cgroup").write_text("4:memory:/x\n")
        assert cgroups.detect(proc_self=tree.proc) is None
    assert [r.getMessage() for r in caplog.records] == [
        f"isolated children's memory limit: cgroup v2 memory.max under {tree.base}",
        "isolated children's memory limit: RLIMIT_DATA (cgroup v2: no cgroup v2 hierarchy "
        "(/proc/self/cgroup has no 0:: line))",
    ]


def test_a_child_gets_a_group_with_its_pid_and_no_swap(tree: Tree) -> None:
    found = _detect(tree)
    (tree.base / "sluice-4242").mkdir()  # as the kernel would show it, swap accounted
    (tree.base / "sluice-4242" / "memory.swap.max").write_text("max\n")
    group = found.attach(4242)
    assert group.path == tree.base / "sluice-4242"
    assert (group.path / "cgroup.procs").read_text() == "4242"
    assert (group.path / "memory.swap.max").read_text() == "0"
    other = found.attach(4243)  # no swap accounting: nothing to write
    assert not (other.path / "memory.swap.max").exists()


def test_a_group_the_kernel_refuses_the_pid_of_is_removed(tree: Tree) -> None:
    found = _detect(tree)
    (tree.base / "sluice-4242" / "cgroup.procs").mkdir(parents=True)
    with pytest.raises(OSError):
        found.attach(4242)
    assert not (tree.base / "sluice-4242").exists()


def test_memory_max_is_the_attempts_memory_above_what_the_child_is_charged(tree: Tree) -> None:
    group = _detect(tree).attach(4242)
    (group.path / "memory.current").write_text(f"{30 * MIB}\n")
    group.limit(64)
    assert (group.path / "memory.max").read_text() == str(94 * MIB)
    group.limit(None)
    assert (group.path / "memory.max").read_text() == "max"


def test_an_oom_kill_counts_from_the_attempts_start_and_the_group_goes(tree: Tree) -> None:
    group = _detect(tree).attach(4242)
    events = group.path / "memory.events"
    events.write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")  # a previous attempt's
    group.limit(64)
    assert not group.oom_killed()
    events.write_text("low 0\nhigh 0\nmax 9\noom 2\noom_kill 2\n")
    assert group.oom_killed()
    group.remove()
    assert not group.path.exists()


def _job(function: str, *args: object, memory_mb: int | None = 64) -> Job:
    payload = msgspec.json.encode(Payload(args=list(args)))
    return Job("t1", 1, function, payload, 30.0, memory_mb, None, False)


async def test_isolated_children_live_in_their_groups_and_leave_none_behind(tree: Tree) -> None:
    children = Children(APP, slots=1, memory_cgroups=_detect(tree))
    try:
        # 96 MiB past a 64 MiB limit: no RLIMIT_DATA stops it once memory.max is the
        # limit (no kernel enforces the fake one).
        done, child = await children.run("acme", _job("hog", 96), None)
        assert done is not None and (done.outcome, done.result) == ("ok", b"100663296")
        group = tree.base / f"sluice-{child.pid}"
        assert (group / "cgroup.procs").read_text() == str(child.pid)
        assert (group / "memory.max").read_text() == str(64 * MIB)  # no memory.current: 0
    finally:
        children.close()
    assert sorted(p.name for p in tree.base.iterdir() if p.is_dir()) == ["sluice-worker"]


async def test_a_sigkill_is_a_memory_limit_only_when_memory_events_counted_it(
    tree: Tree,
) -> None:
    children = Children(APP, slots=1, memory_cgroups=_detect(tree))
    try:
        job = _job("killed", str(tree.base), 1)
        done, child = await children.run("acme", job, None)
        assert done is None
        kind, message = death(child, job)[1:]
        assert (kind, message) == (
            "MemoryLimitExceeded",
            "the kernel's OOM killer ended the handler's process in its cgroup: it went "
            "past its memory limit of 64 MiB",
        )
        await wait_for(lambda: not (tree.base / f"sluice-{child.pid}").exists())

        job = _job("killed", str(tree.base), 0)  # someone else's SIGKILL
        done, child = await children.run("acme", job, None)
        assert done is None
        assert death(child, job)[1:] == (
            "WorkerCrashed",
            "the handler's process died of SIGKILL (signal 9)",
        )
    finally:
        children.close()


async def test_without_a_cgroup_the_childs_rlimit_holds_the_memory() -> None:
    children = Children(APP, slots=1)
    try:
        done, child = await children.run("acme", _job("hog", 96), None)
        assert done is not None and done.error_type == "MemoryLimitExceeded"
        assert child.group is None and not child.cgroup_limited
    finally:
        children.close()
