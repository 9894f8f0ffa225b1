"""What a unit's control group says of its resources: memory, CPU time, tasks, IO and
its processes, read from the cgroup file systems where the manager put the unit.

systemd's own MemoryCurrent=, CPUUsageNSec=, TasksCurrent= and IOReadBytes= read these
same files; asking the manager for five properties of each of a thousand units costs
some 300 ms, reading the files a tenth of that. A value the host does not account (a
controller missing, as on a hybrid cgroup v1 host for IO) is None, never a false zero.
"""

from __future__ import annotations

import os

from orch.frozen import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

MOUNTINFO = "/proc/self/mountinfo"


@dataclass(frozen=True)
class Usage:
    """A control group's resources at one moment; None where the host does not count."""

    memory_current: int | None = None  # bytes
    cpu_usage_nsec: int | None = None
    tasks_current: int | None = None
    io_read_bytes: int | None = None
    io_write_bytes: int | None = None


NO_USAGE = Usage()
Values = tuple[int | None, int | None, int | None, int | None, int | None]  # a Usage's


def usage_of(values: Values) -> Usage:
    """The Usage of VALUES: its fields set in its dict, as a frozen __init__ does, a
    third of the cost of the call (a listing makes one a session)."""
    usage = object.__new__(Usage)
    fields = usage.__dict__
    (fields["memory_current"], fields["cpu_usage_nsec"], fields["tasks_current"],
     fields["io_read_bytes"], fields["io_write_bytes"]) = values
    return usage


USAGE_FIELDS = ("memory_current", "cpu_usage_nsec", "tasks_current", "io_read_bytes",
                "io_write_bytes")


@dataclass(frozen=True)
class Process:
    """One process of a control group, as psutil reads it."""

    pid: int
    command: list[str]  # its argv, or [its name] where the kernel hides the argv
    cpu_usage_nsec: int
    memory_rss: int  # bytes

    def to_json(self) -> dict[str, object]:
        """As JSON data."""
        return {**self.__dict__, "command": list(self.command)}


def hierarchies(mountinfo: str) -> list[tuple[str, frozenset[str], str]]:
    """The cgroup hierarchies MOUNTINFO's text (/proc/PID/mountinfo) lists: each one's
    root within its file system, its options (the v1 controllers, "name=systemd", among
    them; none for the unified cgroup2 one), and where it is mounted."""
    found = []
    for line in mountinfo.splitlines():
        fields, _, rest = line.partition(" - ")
        parts, extra = fields.split(), rest.split()
        if len(parts) < 5 or len(extra) < 3 or extra[0] not in ("cgroup", "cgroup2"):
            continue
        options = frozenset(extra[2].split(",")) if extra[0] == "cgroup" else frozenset()
        found.append((parts[3], options, parts[4]))
    return found


def mounts(mountinfo: str) -> dict[str, str]:
    """Where each hierarchy in MOUNTINFO's text is mounted: "" for the unified (v2) one,
    else each v1 controller ("memory", "cpuacct", "pids", "name=systemd"). A unit's files
    lie at that mount point joined with its ControlGroup= path, as the manager puts them,
    whatever root a cgroup namespace shows for the mount."""
    found: dict[str, str] = {}
    for _, options, point in hierarchies(mountinfo):
        for option in options or ("",):
            found.setdefault(option, point)
    return found


def _read(path: str, directory: int | None = None) -> bytes | None:
    """PATH's contents (relative to the DIRECTORY fd if given); None if unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC, dir_fd=directory)
    except OSError:
        return None
    try:
        return os.read(fd, 65536)
    except OSError:
        return None
    finally:
        os.close(fd)


def _number(data: bytes | None) -> int | None:
    if data is None:
        return None
    try:
        return int(data)
    except ValueError:  # "max", or nothing
        return None


def _keyed(data: bytes, key: bytes) -> int | None:
    """The value of KEY in a flat keyed file (cpu.stat: "usage_usec 123")."""
    for line in data.splitlines():
        name, _, value = line.partition(b" ")
        if name == key:
            return _number(value)
    return None


def _io_bytes(data: bytes) -> tuple[int, int]:
    """io.stat's read and written bytes, summed over its devices."""
    read = written = 0
    for line in data.splitlines():
        for item in line.split()[1:]:
            key, _, value = item.partition(b"=")
            if key == b"rbytes":
                read += int(value)
            elif key == b"wbytes":
                written += int(value)
    return read, written


class Accounting:
    """Where this host counts each resource, decided once from its mounts: the unified
    hierarchy where its controller is enabled there, else the v1 controller's."""

    def __init__(self, mountinfo: str | None = None) -> None:
        if mountinfo is None:
            mountinfo = (_read(MOUNTINFO) or b"").decode(errors="replace")
        found = self._mounts = mounts(mountinfo)
        self.unified = found.get("")
        enabled = set()
        if self.unified is not None:
            enabled = set((_read(f"{self.unified}/cgroup.controllers") or b"").split())
            enabled.add(b"cpu")  # cpu.stat's usage_usec is there without the controller
        self.memory = self._where(enabled, b"memory", found.get("memory"))
        self.cpu = self._where(enabled, b"cpu", found.get("cpuacct"))
        self.pids = self._where(enabled, b"pids", found.get("pids"))
        self.io = self.unified if b"io" in enabled else None
        self.tree = self.unified if self.unified is not None else found.get("name=systemd")

    def _where(self, enabled: set[bytes], controller: bytes,
               v1: str | None) -> tuple[str, bool] | None:
        if controller in enabled:
            return (self.unified or "", True)
        return None if v1 is None else (v1, False)

    def limits(self, cgroup: str, controller: str) -> bool:
        """Whether CONTROLLER ("memory", "pids", "cpu") can limit what runs below CGROUP
        (a slice): the unified hierarchy gives it to CGROUP, or CGROUP is in the
        controller's own v1 hierarchy (which a user manager cannot use)."""
        if self.unified is not None:
            given = (_read(f"{self.unified}{cgroup}/cgroup.controllers") or b"").split()
            if controller.encode() in given:
                return True
        v1 = self._mounts.get(controller)
        return v1 is not None and os.path.isdir(v1 + cgroup)

    def slice(self, cgroup: str) -> SliceFiles:
        """The files of CGROUP's children (a slice's units), to read many of them."""
        return SliceFiles(self, cgroup)

    def pids_of(self, cgroup: str) -> list[int]:
        """The processes in CGROUP and below it, in pid order."""
        if self.tree is None:
            return []
        top = self.tree + cgroup
        pids: set[int] = set()
        for directory, _, _ in os.walk(top):
            data = _read(directory + "/cgroup.procs")
            pids.update(int(p) for p in (data or b"").split())
        return sorted(pids)

    def processes(self, cgroup: str) -> list[Process]:
        """CGROUP's processes with what each is running and uses (psutil)."""
        return list(_described(self.pids_of(cgroup)))


class SliceFiles:
    """One cgroup's directory in each hierarchy that counts something, opened once, so
    that its children's files are opened relative to it: a walk of the whole path from
    the root costs a third of each open, and `orch ps` opens three files a session.
    Use as a context manager (it closes the directories)."""

    def __init__(self, accounting: Accounting, cgroup: str) -> None:
        self._opened: dict[str, int | None] = {}
        self.memory = self._directory(accounting.memory, cgroup)
        self.cpu = self._directory(accounting.cpu, cgroup)
        self.pids = self._directory(accounting.pids, cgroup)
        self.io = self._directory(None if accounting.io is None else (accounting.io, True),
                                  cgroup)

    def _directory(self, where: tuple[str, bool] | None,
                   cgroup: str) -> tuple[int, bool] | None:
        """The directory fd of CGROUP in WHERE's hierarchy (each opened once), and
        whether it is the unified one; None where the host does not count there."""
        if where is None:
            return None
        path = where[0] + cgroup
        if path not in self._opened:
            try:
                self._opened[path] = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:  # the slice has no cgroup there (nothing in it runs)
                self._opened[path] = None
        fd = self._opened[path]
        return None if fd is None else (fd, where[1])

    def __enter__(self) -> SliceFiles:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the directories."""
        for fd in self._opened.values():
            if fd is not None:
                os.close(fd)
        self._opened.clear()

    def usages(self, names: Iterable[str]) -> dict[str, Values]:
        """What each child cgroup in NAMES uses now, as the values of its Usage."""
        return {name: self.values(name) for name in names}

    def usage(self, name: str) -> Usage:
        """What the child cgroup NAME (a unit) uses now; NO_USAGE if it is gone."""
        return usage_of(self.values(name))

    def values(self, name: str) -> Values:
        """What the child cgroup NAME uses now, as the values of its Usage."""
        memory = cpu = tasks = read = written = None
        if self.memory is not None:
            fd, unified = self.memory
            memory = _number(_read(name + ("/memory.current" if unified
                                          else "/memory.usage_in_bytes"), fd))
        if self.cpu is not None:
            fd, unified = self.cpu
            if unified:
                stat = _read(name + "/cpu.stat", fd)
                usec = None if stat is None else _keyed(stat, b"usage_usec")
                cpu = None if usec is None else usec * 1000
            else:
                cpu = _number(_read(name + "/cpuacct.usage", fd))
        if self.pids is not None:
            tasks = _number(_read(name + "/pids.current", self.pids[0]))
        if self.io is not None:
            stat = _read(name + "/io.stat", self.io[0])
            if stat is not None:
                read, written = _io_bytes(stat)
        return memory, cpu, tasks, read, written


def _described(pids: Iterable[int]) -> Iterable[Process]:
    import psutil

    for pid in pids:
        try:
            process = psutil.Process(pid)
            with process.oneshot():
                command = process.cmdline() or [process.name()]
                times = process.cpu_times()
                rss = process.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue  # ended since the list was read, or another user's
        yield Process(pid, command, round((times.user + times.system) * 1e9), rss)


def unit_cgroup(slice_cgroup: str, unit: str) -> str:
    """The ControlGroup= of UNIT in a slice whose ControlGroup= is SLICE_CGROUP: the
    manager names a unit's cgroup after the unit (orch's names need no escaping)."""
    return f"{slice_cgroup.rstrip('/')}/{unit}"
