"""Deadlines (issue 12, item 11): a stopped vssd does not hold a freeze
hostage.  With vssd stopped during a freeze (SIGSTOP, or under a tracer)
the guardian thaws within its bound plus a few seconds, continuing vssd,
or aborting its FUSE connection and killing it (guardian.h).
"""
import os
import signal
import subprocess
import sys
import time

from conftest import VSS
from test_fs import wait_stopped, write_returns


def wait_for(what, timeout=15, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = what()
        if v:
            return v
        time.sleep(step)
    return what()


# ---- the freeze bound with vssd stopped ----
def stopped_during_a_freeze(daemon_factory):
    """A vssd that holds a set's freeze 8 s with a bound of 2 s, an ext4
    volume at mnt, and `vss create shadow` of it inside the freeze."""
    d = daemon_factory(env={"VSS_TEST_FREEZE_HOLD_MS": "8000",
                            "VSS_TEST_FREEZE_LIMIT_MS": "2000"})
    mnt = os.path.join(d.root, "mnt")
    d.create_volume("g", "128M")
    d.vss("volume", "mount", "g", mnt, "--mkfs", "ext4")
    c = d.spawn([VSS, "--run-dir", d.run, "create", "shadow", "--for", mnt],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_for(lambda: "holding the freeze" in d.log(), 10)
    return d, mnt, c


def test_guardian_continues_a_stopped_vssd(daemon_factory):
    d, mnt, c = stopped_during_a_freeze(daemon_factory)
    try:
        d.proc.send_signal(signal.SIGSTOP)
        wait_stopped(d.proc.pid)
        # The bound (2 s) and the guardian's first wait (1 s), with margin.
        assert write_returns(os.path.join(mnt, "after"), 10), "still frozen"
        assert "is stopped; sent it SIGCONT" in d.log()
        assert "exceeded its bound; thawed" in d.log()
    finally:
        d.proc.send_signal(signal.SIGCONT)
    _, stderr = c.communicate(timeout=30)
    assert c.returncode == 1 and "frozen longer than 2000 ms" in stderr, stderr
    assert d.proc.poll() is None
    assert d.shadows() == []
    with open(os.path.join(mnt, "later"), "w") as f:
        f.write("x")
    subprocess.run(["sync", "-f", mnt], timeout=10, check=True)


TRACER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
PTRACE_SEIZE, PTRACE_INTERRUPT, PTRACE_O_TRACECLONE, WALL = 0x4206, 0x4207, 8, 0x40000000
pid, seen = int(sys.argv[1]), set()
while True:
    tids = set(int(t) for t in os.listdir("/proc/%d/task" % pid)) - seen
    if not tids:
        break
    for t in tids:
        if libc.ptrace(PTRACE_SEIZE, t, None, ctypes.c_void_p(PTRACE_O_TRACECLONE)) == 0:
            libc.ptrace(PTRACE_INTERRUPT, t, None, None)
        seen.add(t)
print("ready", flush=True)
while True:
    try:
        os.waitpid(-1, WALL)
    except ChildProcessError:
        break
"""


def test_guardian_kills_a_vssd_it_cannot_continue(daemon_factory):
    """vssd stopped by a tracer (a debugger): SIGCONT does not help, so the
    guardian aborts its FUSE connection (the thaw then returns) and kills
    it; a new vssd cleans up and mounts the volume again."""
    d, mnt, c = stopped_during_a_freeze(daemon_factory)
    tracer = d.spawn([sys.executable, "-c", TRACER, str(d.proc.pid)],
                     stdout=subprocess.PIPE, text=True)
    assert tracer.stdout.readline().strip() == "ready"
    # The bound (2 s) and the escalation (4 s), with margin.
    assert write_returns(os.path.join(mnt, "after"), 15), "still frozen"
    assert d.proc.wait(15) == -signal.SIGKILL
    tracer.wait(15)
    log = d.log()
    assert "aborting the FUSE connection" in log and "killing vssd" in log
    assert "exceeded its bound; thawed" in log
    c.communicate(timeout=15)
    assert c.returncode != 0
    # What a service manager does: start it again; start's cleanup runs.
    d.extra_env = {}
    d.start()
    assert "cleanup: unmounted %s" % mnt in d.log()
    assert d.volume("g")["mount"] == mnt
    with open(os.path.join(mnt, "again"), "w") as f:
        f.write("x")
    subprocess.run(["sync", "-f", mnt], timeout=10, check=True)
    d.shadow(mnt)
