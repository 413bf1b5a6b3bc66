"""A systemd of the test's own, for the restores that stop and start a
service through its unit (doc/writers.md, "Restores").

This machine's PID 1 is not systemd, so a test starts one: systemd 252 as
PID 1 of new PID, mount, UTS, IPC and cgroup namespaces, in a cgroup of
the test's own (under both of this machine's cgroup hierarchies, removed at
the end).  Its root is this machine's root bound read-only, with the test's
directory (and every mount under it, e.g. a vss volume) writable at the same
path, a tmpfs on /run holding the test's units in /run/systemd/system and a
cgroup2 filesystem of the namespace's own on /sys/fs/cgroup.  It is started
with --unit= a target of the test's that wants only the test's units, all
with DefaultDependencies=no: nothing of this machine's (sysinit, sysctl,
udev, its services) is pulled in.

Programs that must talk to it (systemctl, a writer that calls systemctl)
run inside its namespaces: run() and spawn() (nsenter).  stop() kills its
PID 1, which ends every process of the namespace, and removes the cgroups;
the process ids those processes had inside (a postmaster.pid) mean nothing
outside and must not be signalled from here.
"""
import os
import shutil
import signal
import subprocess
import time

SYSTEMD = "/lib/systemd/systemd"
CGROUP_ROOTS = ("/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup")

# Runs as the namespaces' first process (unshare --fork): $1 the new root,
# $2 the test's directory, $3 the directory of unit files, $4 a directory
# whose programs are laid over /usr/sbin (mount(8)'s helpers are looked for
# there), or "".
INIT = r"""
set -eu
root=$1 work=$2 units=$3 sbin=$4
mount --rbind / "$root"
mount -o remount,bind,ro "$root"
if [ -n "$sbin" ]; then
  mount -t overlay overlay -o "ro,lowerdir=$sbin:$root/usr/sbin" "$root/usr/sbin"
fi
mount --rbind "$root$work" "$root$work"
mount -o remount,bind,rw "$root$work"
mount -t tmpfs -o mode=755 tmpfs "$root/run"
mkdir -p "$root/run/systemd/system" "$root/run/vss-oldroot"
cp "$units"/* "$root/run/systemd/system/"
mount -t tmpfs -o mode=755 tmpfs "$root/sys/fs/cgroup"
mount -t cgroup2 cgroup2 "$root/sys/fs/cgroup"
cd "$root"
pivot_root . run/vss-oldroot
umount -l /run/vss-oldroot
rmdir /run/vss-oldroot
mount -t proc proc /proc
exec env -i container=vss-test PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  /lib/systemd/systemd --system --unit=vss-test.target --log-target=console
"""


def available():
    """Why a systemd of the test's own cannot run here, or None."""
    if not os.path.exists(SYSTEMD):
        return "no %s (Debian's systemd package)" % SYSTEMD
    if not shutil.which("nsenter") or not shutil.which("unshare"):
        return "no nsenter/unshare (util-linux)"
    if not any(os.path.exists(os.path.join(r, "cgroup.procs")) for r in CGROUP_ROOTS):
        return "no writable cgroup hierarchy"
    return None


class Systemd:
    """systemd in namespaces of its own; @units maps file names to their
    text (a vss-test.target wanting all of them is added); the programs in
    the directory @sbin, if given, are seen in its /usr/sbin (and /sbin)."""

    def __init__(self, workdir, units, log, sbin=None):
        self.sbin = os.path.realpath(sbin) if sbin else ""
        self.workdir = os.path.realpath(workdir)
        self.dir = os.path.join(self.workdir, "systemd")
        self.units = os.path.join(self.dir, "units")
        os.makedirs(self.units)
        os.makedirs(os.path.join(self.dir, "root"))
        wants = " ".join(sorted(units))
        units = dict(units)
        units["vss-test.target"] = ("[Unit]\nDescription=the units of a vss test\n"
                                    "DefaultDependencies=no\nWants=%s\n" % wants)
        for name, text in units.items():
            with open(os.path.join(self.units, name), "w") as f:
                f.write(text)
        self.cgroups = []
        self.log = log
        self.proc = None
        self.pid = None     # systemd's pid, as seen here

    def start(self, timeout=30):
        name = "vss-test-%d-%d" % (os.getpid(), int(time.time() * 1000))
        for r in CGROUP_ROOTS:
            if os.path.exists(os.path.join(r, "cgroup.procs")) and \
                    not os.path.exists(os.path.join(r, "unified")):
                d = os.path.join(r, name)
                os.mkdir(d)
                self.cgroups.append(d)
        script = os.path.join(self.dir, "init.sh")
        with open(script, "w") as f:
            f.write(INIT)
        # A shell moves itself into the cgroups, then becomes unshare: the
        # cgroup namespace is rooted at them.
        enter = "".join("echo $$ > %s/cgroup.procs; " % d for d in self.cgroups)
        self.proc = subprocess.Popen(
            ["/bin/sh", "-c", enter + 'exec unshare --pid --fork --mount --uts --ipc --cgroup '
             '--propagation private /bin/sh "$0" "$@"', script,
             os.path.join(self.dir, "root"), self.workdir, self.units, self.sbin],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while True:
            self.pid = self._init_pid()
            if self.pid and self.run(["systemctl", "is-system-running"], check=False,
                                     timeout=10).stdout.strip() in ("running", "degraded"):
                return self
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise AssertionError("systemd did not come up: " + open(self.log).read())
            time.sleep(0.1)

    def _init_pid(self):
        """systemd's pid: the child of unshare (its only one)."""
        try:
            with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
                kids = f.read().split()
        except OSError:
            return None
        if len(kids) != 1:
            return None
        try:
            with open("/proc/%s/comm" % kids[0]) as f:
                return int(kids[0]) if f.read().strip() == "systemd" else None
        except OSError:
            return None

    def command(self, argv):
        """The argv that runs @argv inside the namespaces."""
        return ["nsenter", "-t", str(self.pid), "-m", "-u", "-i", "-p", "-C", "--"] + list(argv)

    def run(self, argv, check=True, timeout=60, env=None):
        """@argv inside the namespaces, to its end."""
        r = subprocess.run(self.command(argv), capture_output=True, text=True,
                           timeout=timeout, env=env)
        if check and r.returncode != 0:
            raise AssertionError("%s -> %d: %s%s" % (argv, r.returncode, r.stdout, r.stderr))
        return r

    def spawn(self, argv, **kw):
        """@argv started inside the namespaces (it ends with them)."""
        return subprocess.Popen(self.command(argv), **kw)

    def stop(self):
        """Every process of the namespaces killed (by their PID 1's end),
        the cgroups removed."""
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc and self.proc.poll() is None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for d in self.cgroups:
            deadline = time.time() + 10
            while os.path.exists(d):
                for sub, _, _ in sorted(os.walk(d), key=lambda w: -len(w[0])):
                    try:
                        os.rmdir(sub)
                    except OSError:
                        pass
                if time.time() > deadline:
                    break
                time.sleep(0.05)
        self.pid = None
