"""Reading a unit's resources from cgroup files: where each host counts each one, and
None (never a false zero) where it does not."""

from __future__ import annotations

import os
from pathlib import Path

from orch.cgroups import NO_USAGE, Accounting, Usage, mounts, unit_cgroup, usage_of

UNIT = "/system.slice/orch-job-1a2b3c4d.service"


def _mountinfo(*rows: tuple[str, str, str]) -> str:
    """Mountinfo lines for (mount point, fs type, super options) ROWS."""
    return "\n".join(f"{30 + i} 20 0:{40 + i} / {point} rw,relatime - {fs} {fs} {opts}"
                     for i, (point, fs, opts) in enumerate(rows))


def _usage(accounting: Accounting, cgroup: str) -> Usage:
    """What CGROUP uses, read as a listing reads it: through its slice's directories."""
    parent, _, name = cgroup.rpartition("/")
    with accounting.slice(parent) as files:
        return files.usage(name)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _unified(tmp_path: Path, controllers: str) -> Path:
    top = tmp_path / "unified"
    _write(top / "cgroup.controllers", controllers + "\n")
    return top


def test_mounts_names_the_unified_and_each_v1_hierarchy() -> None:
    text = _mountinfo(("/sys/fs/cgroup/unified", "cgroup2", "rw"),
                      ("/sys/fs/cgroup/cpu,cpuacct", "cgroup", "rw,cpu,cpuacct"),
                      ("/sys/fs/cgroup/systemd", "cgroup", "rw,xattr,name=systemd"),
                      ("/proc", "proc", "rw"))
    found = mounts(text + "\n42 20 0:99 / /tmp rw - tmpfs tmpfs rw\n")
    assert found == {"": "/sys/fs/cgroup/unified", "rw": "/sys/fs/cgroup/cpu,cpuacct",
                     "cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
                     "xattr": "/sys/fs/cgroup/systemd", "name=systemd": "/sys/fs/cgroup/systemd"}


def test_a_unified_host_reads_every_resource_from_the_units_own_cgroup(tmp_path: Path) -> None:
    top = _unified(tmp_path, "cpuset cpu io memory pids")
    unit = top / UNIT.lstrip("/")
    _write(unit / "memory.current", "188416\n")
    _write(unit / "cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    _write(unit / "pids.current", "3\n")
    _write(unit / "io.stat", "8:0 rbytes=4096 wbytes=512 rios=1 wios=1\n"
                             "8:16 rbytes=1024 wbytes=0 rios=1 wios=0\n")
    accounting = Accounting(_mountinfo((str(top), "cgroup2", "rw")))
    assert _usage(accounting, UNIT) == Usage(188416, 1_500_000, 3, 5120, 512)


def test_a_hybrid_host_reads_v1_controllers_and_has_no_io(tmp_path: Path) -> None:
    # systemd's hybrid layout: the unified hierarchy tracks units but has no controllers.
    top = _unified(tmp_path, "")
    memory, pids, cpuacct = (tmp_path / n for n in ("memory", "pids", "cpuacct"))
    _write(top / UNIT.lstrip("/") / "cpu.stat", "usage_usec 20\n")
    _write(memory / UNIT.lstrip("/") / "memory.usage_in_bytes", "4096\n")
    _write(pids / UNIT.lstrip("/") / "pids.current", "1\n")
    _write(cpuacct / UNIT.lstrip("/") / "cpuacct.usage", "999\n")  # not read: cpu.stat is
    accounting = Accounting(_mountinfo((str(top), "cgroup2", "rw"),
                                       (str(memory), "cgroup", "rw,memory"),
                                       (str(pids), "cgroup", "rw,pids"),
                                       (str(cpuacct), "cgroup", "rw,cpuacct")))
    assert _usage(accounting, UNIT) == Usage(4096, 20_000, 1, None, None)


def test_a_legacy_host_reads_cpu_time_from_cpuacct(tmp_path: Path) -> None:
    cpuacct = tmp_path / "cpu,cpuacct"
    _write(cpuacct / UNIT.lstrip("/") / "cpuacct.usage", "123456789\n")
    accounting = Accounting(_mountinfo((str(cpuacct), "cgroup", "rw,cpu,cpuacct")))
    assert _usage(accounting, UNIT) == Usage(cpu_usage_nsec=123_456_789)


def test_a_controller_not_realised_for_the_unit_is_unknown_not_zero(tmp_path: Path) -> None:
    top = _unified(tmp_path, "cpu io memory pids")
    _write(top / UNIT.lstrip("/") / "memory.current", "8192\n")  # only memory accounted
    accounting = Accounting(_mountinfo((str(top), "cgroup2", "rw")))
    assert _usage(accounting, UNIT) == Usage(memory_current=8192)
    assert _usage(accounting, "/system.slice/gone.service") == NO_USAGE


def test_an_unlimited_or_garbled_value_is_unknown(tmp_path: Path) -> None:
    top = _unified(tmp_path, "pids memory")
    _write(top / UNIT.lstrip("/") / "pids.current", "max\n")
    _write(top / UNIT.lstrip("/") / "memory.current", "")
    assert _usage(Accounting(_mountinfo((str(top), "cgroup2", "rw"))), UNIT) == NO_USAGE


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_a_slices_units_are_read_through_its_directories_opened_once(tmp_path: Path) -> None:
    # The hybrid layout again: three hierarchies, so three directories for the slice.
    top = _unified(tmp_path, "")
    memory, pids = tmp_path / "memory", tmp_path / "pids"
    units = [f"orch-job-{i}.service" for i in range(3)]
    for i, name in enumerate(units[:2]):
        _write(top / "system.slice" / name / "cpu.stat", f"usage_usec {i + 1}\n")
        _write(memory / "system.slice" / name / "memory.usage_in_bytes", f"{4096 * (i + 1)}\n")
    _write(pids / "system.slice" / units[0] / "pids.current", "2\n")
    (pids / "system.slice").mkdir(parents=True, exist_ok=True)
    accounting = Accounting(_mountinfo((str(top), "cgroup2", "rw"),
                                       (str(memory), "cgroup", "rw,memory"),
                                       (str(pids), "cgroup", "rw,pids")))
    before = _open_fds()
    with accounting.slice("/system.slice") as files:
        assert len(_open_fds() - before) == 3
        assert [files.usage(u) for u in units] == [
            Usage(4096, 1000, 2), Usage(8192, 2000, None), NO_USAGE]
    assert _open_fds() == before


def test_a_slice_missing_from_a_hierarchy_counts_nothing_there(tmp_path: Path) -> None:
    top = _unified(tmp_path, "")
    memory = tmp_path / "memory"
    memory.mkdir()  # the slice has no cgroup in the memory hierarchy
    _write(top / "system.slice" / "orch-a.service" / "cpu.stat", "usage_usec 7\n")
    accounting = Accounting(_mountinfo((str(top), "cgroup2", "rw"),
                                       (str(memory), "cgroup", "rw,memory")))
    with accounting.slice("/system.slice") as files:
        assert files.usage("orch-a.service") == Usage(cpu_usage_nsec=7000)


def test_a_host_without_cgroups_knows_nothing() -> None:
    accounting = Accounting("")
    assert _usage(accounting, UNIT) == NO_USAGE and accounting.pids_of(UNIT) == []


def test_processes_are_read_from_the_unit_and_its_sub_cgroups(tmp_path: Path) -> None:
    top = _unified(tmp_path, "")
    unit = top / UNIT.lstrip("/")
    _write(unit / "cgroup.procs", f"{os.getpid()}\n")
    _write(unit / "payload" / "cgroup.procs", "999999999\n")  # ended (no such process)
    accounting = Accounting(_mountinfo((str(top), "cgroup2", "rw")))
    assert accounting.pids_of(UNIT) == [os.getpid(), 999999999]
    (me,) = accounting.processes(UNIT)
    assert me.pid == os.getpid() and me.memory_rss > 0 and me.cpu_usage_nsec > 0
    assert "pytest" in " ".join(me.command) or "python" in " ".join(me.command)
    assert me.to_json()["command"] == me.command


def test_a_units_cgroup_is_named_after_it_in_its_slice() -> None:
    assert unit_cgroup("/system.slice", "orch-a.service") == "/system.slice/orch-a.service"
    assert unit_cgroup("/", "orch-a.service") == "/orch-a.service"


def test_a_limit_holds_where_the_slice_has_the_controller(tmp_path: Path) -> None:
    slice_ = "/user.slice/user-1001.slice/user@1001.service/app.slice"
    top = _unified(tmp_path, "")
    _write(top / slice_.lstrip("/") / "cgroup.controllers", "cpu pids\n")  # delegated
    memory = tmp_path / "memory"
    _write(memory / "system.slice" / "memory.limit_in_bytes", "9223372036854771712\n")
    accounting = Accounting(_mountinfo((str(top), "cgroup2", "rw"),
                                       (str(memory), "cgroup", "rw,memory")))
    assert [c for c in ("memory", "pids", "cpu") if accounting.limits(slice_, c)] == [
        "pids", "cpu"]
    # A system slice in the v1 memory hierarchy; a user manager never has one there.
    assert accounting.limits("/system.slice", "memory")
    assert not accounting.limits("/system.slice", "pids")


def test_a_usage_made_from_values_is_the_one_its_fields_make_in_their_order() -> None:
    made = usage_of((1, 2, None, 4, 5))
    assert made == Usage(memory_current=1, cpu_usage_nsec=2, tasks_current=None,
                         io_read_bytes=4, io_write_bytes=5)
    assert list(made.__dict__.items()) == list(Usage(1, 2, None, 4, 5).__dict__.items())
    assert made != usage_of((1, 2, 3, 4, 5))
