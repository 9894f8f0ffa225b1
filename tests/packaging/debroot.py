"""A fresh Debian bookworm root for the package test, made by debootstrap and cached.

debootstrap takes a few minutes and a few hundred MB of downloads, so a finished root
is kept under ORCH_TEST_CACHE (default /var/cache/orch-tests, outside the repo) and
each test run boots a copy of it. The cache's name carries everything that shapes it
(suite, mirror, packages), so a change to any of them makes a new one; a root is only
renamed into the cache once debootstrap has finished and its `/` has a real root's mode.

The mirror is the host's own: the apt source that serves bookworm's main component
(ORCH_DEBIAN_MIRROR overrides it), fetched through apt's proxy if apt has one.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.cache import CACHE

SUITE = "bookworm"
COMPONENT = "main"
ETC_APT = Path("/etc/apt")
# What a bookworm server running orch has: systemd as init, logind (for lingering user
# managers) and the Debian packages orch's own package depends on, so that installing
# the .deb needs no network.
PACKAGES = ("systemd", "systemd-sysv", "dbus", "libpam-systemd", "python3", "libsystemd0",
            "python3-psutil", "python3-pystemd", "python3-tomli-w")
DEBOOTSTRAP_TIMEOUT = 900.0
# The mode of a real `/`: a root left 0700 (as tempfile.mkdtemp makes it) keeps the
# system's own users out of it, dbus-daemon (messagebus) first, and the box never boots.
ROOT_MODE = 0o755
# URIs debootstrap can fetch from (apt's cdrom:, mirror+file: and the like it cannot).
FETCHABLE = ("http://", "https://", "file:/")


@dataclass(frozen=True)
class AptSource:
    """One source entry of apt's configuration: a one-line `deb` line or a deb822 stanza."""

    types: tuple[str, ...]
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str = ""
    enabled: bool = True

    def serves(self, suite: str, component: str) -> bool:
        """Whether this entry gives binary packages of SUITE's COMPONENT from Debian."""
        return (self.enabled and "deb" in self.types and suite in self.suites
                and component in self.components and self.debian_signed())

    def debian_signed(self) -> bool:
        """False for an archive signed by another key than Debian's (a third party's
        `bookworm main`); an entry without Signed-By is trusted by apt's own keyrings."""
        return not self.signed_by or "debian-archive-" in self.signed_by


def parse_one_line(text: str) -> list[AptSource]:
    """The entries of a one-line-style file (sources.list, *.list):
    `deb [option=value ...] URI SUITE COMPONENT...`; `#` starts a comment."""
    entries = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(None, 1)
        if not words:
            continue
        kind, rest = words[0], (words[1] if len(words) > 1 else "")
        options: dict[str, str] = {}
        if rest.startswith("["):
            inside, _, rest = rest[1:].partition("]")
            for option in inside.split():
                name, _, value = option.partition("=")
                options[name.rstrip("+-").lower()] = value
        words = rest.split()
        if len(words) < 2:
            continue
        entries.append(AptSource(types=(kind,), uris=(words[0],), suites=(words[1],),
                                 components=tuple(words[2:]),
                                 signed_by=options.get("signed-by", "")))
    return entries


def parse_deb822(text: str) -> list[AptSource]:
    """The stanzas of a deb822-style file (*.sources): fields `Types`, `URIs`, `Suites`,
    `Components`, `Signed-By`, `Enabled`; `#` lines are comments, blank lines part them."""
    entries = []
    kept = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    for stanza in re.split(r"\n\s*\n", kept):
        fields: dict[str, str] = {}
        name = ""
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") and name:  # a continuation (an inline key, say)
                fields[name] += "\n" + line.strip()
            elif ":" in line:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                fields[name] = value.strip()
        if not fields:
            continue
        entries.append(AptSource(
            types=tuple(fields.get("types", "").split()),
            uris=tuple(fields.get("uris", "").split()),
            suites=tuple(fields.get("suites", "").split()),
            components=tuple(fields.get("components", "").split()),
            signed_by=fields.get("signed-by", ""),
            enabled=fields.get("enabled", "yes").lower() not in ("no", "false", "0")))
    return entries


def apt_source_files(etc_apt: Path = ETC_APT) -> list[Path]:
    """The files apt reads its sources from, in its order: sources.list, then
    sources.list.d's *.list and *.sources (apt ignores other names: a file renamed to
    disable it is skipped the same way)."""
    parts = etc_apt / "sources.list.d"
    named = sorted(p for p in parts.glob("*") if p.suffix in (".list", ".sources")) \
        if parts.is_dir() else []
    return [p for p in [etc_apt / "sources.list", *named] if p.is_file()]


def debian_mirror(files: Iterable[tuple[str, str]], suite: str = SUITE,
                  component: str = COMPONENT) -> str | None:
    """The first URI that serves SUITE's COMPONENT among FILES, (name, text) pairs in
    apt's order (a .sources name is deb822, any other one-line), or None."""
    for name, text in files:
        parse = parse_deb822 if name.endswith(".sources") else parse_one_line
        for entry in parse(text):
            if entry.serves(suite, component):
                for uri in entry.uris:
                    if uri.startswith(FETCHABLE):
                        return uri.rstrip("/")
    return None


def mirror(etc_apt: Path = ETC_APT) -> str:
    """The Debian mirror debootstrap fetches from: ORCH_DEBIAN_MIRROR, else the host's
    apt source for bookworm main."""
    override = os.environ.get("ORCH_DEBIAN_MIRROR")
    if override:
        return override.rstrip("/")
    files = apt_source_files(etc_apt)
    found = debian_mirror((str(f), f.read_text(errors="replace")) for f in files)
    if found is None:
        looked = ", ".join(map(str, files)) or f"nothing under {etc_apt}"
        raise RuntimeError(f"no apt source serves Debian's {SUITE} {COMPONENT} (read: "
                           f"{looked}); set ORCH_DEBIAN_MIRROR to a Debian mirror's URL")
    return found


def apt_proxies(dump: str) -> dict[str, str]:
    """http_proxy and https_proxy from `apt-config dump` (Acquire::http::Proxy and
    Acquire::https::Proxy, which defaults to the http one), as debootstrap's wget reads
    them; none where apt goes direct."""
    values: dict[str, str] = {}
    for line in dump.splitlines():
        key, _, value = line.partition(" ")
        if key.lower() in ("acquire::http::proxy", "acquire::https::proxy"):
            value = value.strip().rstrip(";").strip('"')
            if value and value.upper() != "DIRECT" and value.lower() != "false":
                values[key.split("::")[1].lower()] = value
    if "http" in values:
        values.setdefault("https", values["http"])
    return {f"{scheme}_proxy": value for scheme, value in values.items()}


def debootstrap(root: Path, source: str) -> None:
    """Make a minimal bookworm with PACKAGES at ROOT from SOURCE, through apt's proxy."""
    dump = subprocess.run(["apt-config", "dump"], capture_output=True, text=True,
                          check=False).stdout
    env: Mapping[str, str] = {**os.environ, **apt_proxies(dump)}
    done = subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
         SUITE, str(root), source],
        capture_output=True, text=True, timeout=DEBOOTSTRAP_TIMEOUT, check=False, env=env)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        raise RuntimeError(f"debootstrap from {source} failed: " + " | ".join(tail))


def has_root_mode(root: Path) -> bool:
    """Whether ROOT's top directory has the mode of a real `/`."""
    return stat.S_IMODE(root.stat().st_mode) == ROOT_MODE


def cached_root(cache: Path | None = None,
                bootstrap: Callable[[Path, str], None] = debootstrap) -> Path:
    """The cached root in CACHE (ORCH_TEST_CACHE), made by BOOTSTRAP first if missing."""
    cache = cache or CACHE
    source = mirror()
    key = hashlib.sha256(f"{SUITE} {source} {' '.join(PACKAGES)}".encode()).hexdigest()[:12]
    final = cache / f"{SUITE}-minbase-{key}"
    if final.is_dir() and has_root_mode(final):
        return final
    cache.mkdir(mode=0o755, parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one debootstrap at a time; others reuse it
        if final.is_dir():
            # An older run cached it with mkdtemp's 0700 `/`: the only flaw it can have.
            os.chmod(final, ROOT_MODE)
            return final
        work = Path(tempfile.mkdtemp(dir=cache, prefix=".debootstrap-"))
        try:
            bootstrap(work, source)
            os.chmod(work, ROOT_MODE)
            os.rename(work, final)
        finally:
            if work.exists():
                shutil.rmtree(work)
    return final


def fresh_copy(destination: Path) -> Path:
    """A private copy of the cached root at DESTINATION (the cache stays pristine)."""
    source = cached_root()
    subprocess.run(["cp", "-a", "--reflink=auto", str(source), str(destination)], check=True)
    return destination
