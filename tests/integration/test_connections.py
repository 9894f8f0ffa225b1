"""One manager connection per process and thread: a library caller connects once, and
a connection that is no longer usable is replaced, never handed out."""

from __future__ import annotations

import json
from typing import Any

from tests.integration.conftest import PYTHON, Orch

PROLOGUE = """
import json, threading
import orch
from orch.api import current_scope
from orch.systemd import Manager
scope = current_scope()
out = {}
def conn():  # the connection object itself: held, its id() cannot be reused
    with Manager(scope) as m:
        m.loaded('orch-*')
        return m._conn
"""


def run_program(orch: Orch, body: str) -> dict[str, Any]:
    done = orch.machine.run([PYTHON, "-c", PROLOGUE + body + "\nprint(json.dumps(out))"],
                            user=orch.user, env=orch.env, timeout=120)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_a_process_reuses_its_connection_and_threads_get_their_own(orch: Orch) -> None:
    out = run_program(orch, """
first = conn()
sessions = [orch.spawn(['sleep', '60']) for _ in range(3)]
out['reused'] = conn() is first
with Manager(scope) as outer:
    with Manager(scope) as inner:
        out['nested_differ'] = outer._conn is not inner._conn
        inner.loaded('orch-*')
seen = []
worker = threading.Thread(target=lambda: seen.append(conn()))
worker.start(); worker.join()
out['thread_differs'] = seen[0] is not first
out['running'] = [s.status.value for s in orch.list_sessions()
                  if s.id in {x.id for x in sessions}]
for s in sessions:
    orch.stop(s.id)
""")
    assert out == {"reused": True, "nested_differ": True, "thread_differs": True,
                   "running": ["running"] * 3}


def test_a_subscribed_connection_is_not_kept(orch: Orch) -> None:
    out = run_program(orch, """
first = conn()
session = orch.spawn(['sleep', '60'])
with Manager(scope) as m:
    m.wait_until([session.unit], lambda: True, 1.0)
    subscribed = m._conn
out['kept_before'] = subscribed is first
after = conn()
out['after'] = after is not first and after is not subscribed
orch.stop(session.id)
""")
    # wait_until took the idle connection, subscribed it, and closed it after: the next
    # Manager connects afresh.
    assert out == {"kept_before": True, "after": True}


def test_a_connection_the_manager_dropped_is_replaced(user_orch: Orch) -> None:
    # The user manager re-executes: every connection to it is closed. The idle one must
    # not be handed out; the spawn after it must work.
    out = run_program(user_orch, """
import time
first = conn()
with Manager(scope) as m:
    try:
        m._manager_call('Reexecute', b'', [], 'a re-execution')
    except Exception:
        pass  # the manager may close the connection before it answers
deadline = time.monotonic() + 60
while True:  # until the re-executed manager answers a new connection
    try:
        with Manager(scope, timeout=5) as probe:
            probe.loaded('orch-*')
        break
    except Exception:
        if time.monotonic() > deadline:
            raise
session = orch.spawn(['sleep', '60'])
out['status'] = session.status.value
out['fresh'] = conn() is not first
orch.stop(session.id)
""")
    assert out == {"status": "running", "fresh": True}


def test_a_spawn_reads_its_unit_from_the_signals_before_its_job_ends(orch: Orch) -> None:
    """Peer to peer, the manager flushes a unit's PropertiesChanged before the JobRemoved
    of its start job: the spawn's view of the new unit costs no call, and is what a read
    of the unit says."""
    out = run_program(orch, """
from orch import systemd
calls = []
real = systemd.Manager._call
def counting(self, path, interface, method, args, what):
    calls.append(method.decode())
    return real(self, path, interface, method, args, what)
systemd.Manager._call = counting
session = orch.spawn(['sleep', '60'])
out['calls'] = list(calls)
quick = orch.spawn(['/bin/sh', '-c', 'exit 3'])
with Manager(scope) as m:
    read = m.unit(session.unit)
    # Nothing collected for it here: started() reads the unit instead.
    out['fallback_reads'] = m.started(session.unit) == read
out['view'] = [session.invocation_id, session.main_pid, session.status.value]
running = 'running' if read.active_state == 'active' else ''
out['read'] = [read.invocation_id, read.main_pid, running]
ended = quick.status.value != 'running'
out['quick'] = [quick.status.value, quick.exit_code] if ended else 'running'
orch.stop(session.id)
""")
    assert out["calls"] == ["StartTransientUnit"]
    assert out["view"] == out["read"] and out["view"][0] and out["view"][1]
    assert out["fallback_reads"] is True
    # A program that exits at once: its end as the signals told it, or still running.
    assert out["quick"] in ("running", ["failed", 3])


def test_an_idle_connection_is_read_as_traffic_comes_and_closed_past_its_keep_time(
        orch: Orch) -> None:
    """An idle direct connection still receives every signal the manager sends: the pool
    reads it as it comes (the next use does not read it all before its own answer),
    and closes it once idle for its keep time; the next use connects afresh."""
    out = run_program(orch, """
import fcntl, struct, termios, time
from orch import systemd
systemd._IDLE.keep_s = 60.0
first = conn()
fd = first.bus.get_fd()
session = orch.spawn(['sleep', '60'])  # on the idle connection: taken, then put back
handled = first.handled
other = threading.Thread(target=lambda: orch.stop(session.id))  # traffic from elsewhere
other.start(); other.join()
def pending():
    return struct.unpack('i', fcntl.ioctl(fd, termios.FIONREAD, b'\\0' * 4))[0]
deadline = time.monotonic() + 30
while (pending() or first.handled == handled) and time.monotonic() < deadline:
    time.sleep(0.02)
out['read_while_idle'] = pending() == 0 and first.handled > handled
systemd._IDLE.keep_s = 0.2
held = conn()  # taken and put back: idle now for 0.2 s
out['same_until_then'] = held is first
deadline = time.monotonic() + 30
while not first.closed and time.monotonic() < deadline:
    time.sleep(0.02)
out['closed'] = first.closed
out['fresh'] = conn() is not first
out['spawn_after'] = orch.spawn(['/bin/true']).id is not None
""")
    assert out == {"read_while_idle": True, "same_until_then": True, "closed": True,
                   "fresh": True, "spawn_after": True}


def test_other_clients_jobs_are_not_kept(orch: Orch) -> None:
    """Peer to peer a connection hears every job's JobRemoved: a long use (a wait of
    hours on a busy manager) must not keep the results of jobs it did not queue."""
    out = run_program(orch, """
import time
with Manager(scope) as m:
    m.loaded('orch-*')  # a call: the manager sends signals to ready clients only
    m._conn.watch_jobs()
    others = []
    worker = threading.Thread(target=lambda: others.extend(
        orch.spawn(['/bin/true']) for _ in range(3)))
    worker.start(); worker.join()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m._conn.dispatch(0.2, m.timeout)
        if all(orch.show(s.id).status.ended for s in others):
            break
    out['kept'] = len(m._conn.jobs)
    out['ended'] = all(orch.show(s.id).status.ended for s in others)
""")
    assert out == {"kept": 0, "ended": True}


def test_a_thread_waiting_on_the_manager_lets_the_others_run(orch: Orch) -> None:
    # sd_bus_wait (through pystemd) holds the GIL: a thread waiting in it stopped every
    # other thread until a signal came (`logs -f` printed nothing while it watched).
    out = run_program(orch, """
import sys, time
session = orch.spawn(['sleep', '600'])
outcomes = []
waiter = threading.Thread(target=lambda: outcomes.append(orch.wait([session.id], timeout=30)))
waiter.start()
def in_dispatch():  # the waiter's stack: is it waiting on the manager yet?
    frame = sys._current_frames().get(waiter.ident)
    while frame is not None and frame.f_code.co_name != 'dispatch':
        frame = frame.f_back
    return frame is not None
deadline = time.monotonic() + 20
while not in_dispatch():  # runs while the waiter waits, unless that holds the GIL
    assert time.monotonic() < deadline, 'the waiter never waited'
    time.sleep(0.01)
out['main_ran_on'] = waiter.is_alive()
orch.stop(session.id)
waiter.join()
out['timed_out'] = outcomes[0].timed_out
out['status'] = outcomes[0].sessions[0].status.value
""")
    assert out == {"main_ran_on": True, "timed_out": False, "status": "stopped"}


def test_a_unit_says_its_program_exited_while_its_stop_post_still_runs(orch: Orch) -> None:
    """What lets a start end before its job (Connection._exited): a program that exits at
    once, before the manager saw it executed, leaves its start job to end only once the
    unit is inactive, after its ExecStopPost= (orch's exit hook) has run; meanwhile the
    unit's signals say, Service before Unit, that the program exited and the unit is
    deactivating. Here the stop-post command blocks until the test releases it, so the
    signals are read while it runs, whichever way the start job went (that race is the
    manager's: the unit tests take each way)."""
    out = run_program(orch, """
import os, tempfile, time
from orch.units import object_path
fifo = os.path.join(tempfile.mkdtemp(), 'release')
os.mkfifo(fifo)
out['starts'] = []
with Manager(scope, timeout=20) as m:
    for n in range(3):
        unit = f'test-hookwait-{os.getpid()}-{n}.service'
        job = m.submit_transient(unit, [
            ('Description', 's', 'orch test'), ('Type', 's', 'exec'),
            ('ExecStart', 'a(sasb)', [('/bin/true', ['/bin/true'], False)]),
            ('ExecStopPost', 'a(sasb)', [('/bin/sh', ['/bin/sh', '-c', f'read x < {fifo}'],
                                          False)]),
            ('CollectMode', 's', 'inactive-or-failed')])
        try:
            result = m.wait_job(job, 'the start')
            deadline = time.monotonic() + 20
            while not m._conn._exited(object_path(unit)) and time.monotonic() < deadline:
                m._conn.dispatch(deadline - time.monotonic(), 20)
            said = m._conn._exited(object_path(unit))
            view = m.started(unit)
            out['starts'].append([result, said, view.exec_main_code, view.active_state,
                                  m.unit(unit).active_state])
        finally:
            with open(fifo, 'w') as release:  # blocks until the stop-post reads it
                release.write('go\\n')
        deadline = time.monotonic() + 30  # gone: each change of it is told to this client
        while m.unit(unit).loaded and time.monotonic() < deadline:
            m._conn.dispatch(deadline - time.monotonic(), 20)
""")
    for result, said, code, state, now in out["starts"]:
        assert result in ("done", "program-exited")
        assert [said, code, state, now] == [True, 1, "deactivating", "deactivating"]
