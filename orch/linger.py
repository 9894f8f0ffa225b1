"""Whether logind keeps a user's manager running with no login session (lingering):
what a user-scope spawn warns about, since a --persistent session's recovery runs in
that manager."""

from __future__ import annotations

import os

# logind keeps a user's managers running with no login session (Linger=) while this
# directory holds a file named after the user; and it runs only where the other exists
# (sd-login's logind_running() looks for it too).
LINGER_DIR = "/var/lib/systemd/linger"
LOGIND_SEATS_DIR = "/run/systemd/seats"
# A user name that C escaping would change: logind's marker is named by the escaped one.
_ESCAPED_IN_NAMES = frozenset('\\"\'')


def lingering(uid: int) -> bool | None:
    """Whether logind keeps UID's user manager running with no login session: whether
    its marker file for the user exists, which is what logind's Linger property reads
    (asking logind itself costs a system-bus connection and three round trips on every
    user spawn). None if that cannot be told: no logind (a minimal container), a
    directory that cannot be read, a user name logind would escape."""
    if not os.path.isdir(LOGIND_SEATS_DIR):
        return None
    import pwd

    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return False  # logind lingers users by name: one without a name never lingers
    if not name.isprintable() or not name.isascii() or _ESCAPED_IN_NAMES & set(name):
        return None
    try:
        os.stat(os.path.join(LINGER_DIR, name))
    except FileNotFoundError:
        return False
    except OSError:
        return None
    return True
