"""vss-writer-postgresql with a real PostgreSQL server (Debian's postgresql
package): pgbench writing while shadows and backups are taken; each copy,
started as a second server, recovers from its backup label and passes
pgbench's invariant and amcheck; and the faults: the server stopping mid
backup, the writer killed between pg_backup_start and pg_backup_stop, a
role without the rights.  Every server runs as the user postgres on a
socket directory of the test's own (no TCP), its data on a vss volume, and
is stopped (immediate) when the test ends, however it ends.
"""
import glob
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import BUILD
import systemd_ns

PG_WRITER = os.path.abspath(os.path.join(BUILD, "src", "vss-writer-postgresql",
                                         "vss-writer-postgresql"))
TEST_WRITER = os.path.abspath(os.path.join(BUILD, "tests", "system", "vss-test-writer"))
PG_BIN = (sorted(glob.glob("/usr/lib/postgresql/*/bin")) or [""])[-1]
PORT = 55432

pytestmark = pytest.mark.skipif(
    not os.path.exists(os.path.join(PG_BIN, "postgres")) or not os.path.exists(PG_WRITER),
    reason="needs postgresql (scripts/setup.sh) and vss-writer-postgresql built")


def as_pg(*argv, check=True, timeout=120, **kw):
    r = subprocess.run(["runuser", "-u", "postgres", "--"] + list(argv),
                       capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s -> %d: %s%s" % (argv, r.returncode, r.stdout, r.stderr))
    return r


class Server:
    """One postgres on @data, its socket in @sock; stopped by stop()."""

    def __init__(self, data, sock, port, log):
        self.data, self.sock, self.port, self.log = data, sock, port, log

    def start(self, *opts, check=True):
        # wal_keep_size: a log backup needs the WAL since the previous one.
        o = ("-k %s -p %d -c listen_addresses='' -c max_wal_size=64MB -c wal_keep_size=128MB "
             "%s" % (self.sock, self.port, " ".join(opts)))
        return as_pg(os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-o", o, "-l",
                     self.log, "-w", "-t", "60", "start", check=check)

    def stop(self, mode="immediate"):
        as_pg(os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-m", mode, "-w", "stop",
              check=False)
        # pg_ctl gives up on a server it cannot signal: end it by its pid.
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                pid = int(f.readline())
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass

    def sql(self, q, user="postgres", db="postgres", check=True):
        r = as_pg(os.path.join(PG_BIN, "psql"), "-h", self.sock, "-p", str(self.port),
                  "-U", user, "-d", db, "-AtX", "-v", "ON_ERROR_STOP=1", "-c", q,
                  check=check)
        return r.stdout.strip() if check else r

    def logtext(self):
        with open(self.log, errors="replace") as f:
            return f.read()


def database_volume(vssd, workdir, size, user, mode):
    """A vss volume ("db", ext4) mounted at ROOT/mnt, and two directories
    of @user (@mode): mnt/data for the server's data, ROOT/sock for its
    socket and logs; the test's directories opened to @user on the way.
    Returns (mount point, data, sock)."""
    os.chmod(workdir, 0o755)
    os.chmod(vssd.root, 0o755)
    mnt = os.path.join(vssd.root, "mnt")
    vssd.create_volume("db", size)
    vssd.vss("volume", "mount", "db", mnt, "--mkfs", "ext4")
    sock = os.path.join(vssd.root, "sock")
    data = os.path.join(mnt, "data")
    for d in (sock, data):
        os.mkdir(d, mode)
        shutil.chown(d, user, user)
    return mnt, data, sock


def keeper(servers, make):
    """make(data_dir, n), each server it makes kept in @servers."""
    def server(data_dir, n):
        servers.append(make(data_dir, n))
        return servers[-1]
    return server


def end_all(vssd, servers):
    """The helpers (load, writers) killed, then every server stopped."""
    for p in vssd.helpers:
        if p.poll() is None:
            p.kill()
    for s in servers:
        s.stop()


@pytest.fixture
def pg(vssd, workdir):
    """A cluster on a mounted vss volume, with the pgbench tables; yields
    (server, mount point, a factory of more servers)."""
    mnt, data, sock = database_volume(vssd, workdir, "320M", "postgres", 0o700)
    servers = []
    server = keeper(servers, lambda data_dir, n: Server(data_dir, sock, PORT + n,
                                                         os.path.join(sock, "log%d" % n)))
    try:
        as_pg(os.path.join(PG_BIN, "initdb"), "-D", data, "-A", "trust", "-U", "postgres",
              "--wal-segsize=1", "-N")
        main = server(data, 0)
        main.start()
        as_pg(os.path.join(PG_BIN, "pgbench"), "-h", sock, "-p", str(PORT), "-U", "postgres",
              "-i", "-q", "-s", "1", "postgres")
        yield main, mnt, server
    finally:
        end_all(vssd, servers)


def start_writer(d, main, user="postgres", wait=True, unit="-", via=None):
    """The writer for @main (@unit its manager), started by @via (a
    Systemd's command()) or here."""
    conf = os.path.join(d.root, "pg-%s.conf" % user)
    with open(conf, "w") as f:
        f.write("# name unit conninfo\nmain %s host=%s port=%d user=%s dbname=postgres\n"
                % (unit, main.sock, main.port, user))
    log = os.path.join(d.root, "pgwriter-%s.log" % user)
    argv = [PG_WRITER, "--run-dir", d.run, "--config", conf, "--once"]
    return spawn_writer(d, "postgresql", via(argv) if via else argv, log, wait)


def spawn_writer(d, name, argv, log, wait=True):
    """Starts the writer @argv (standard error to @log) and, with @wait,
    waits until a new instance of writer @name is registered."""
    def instances():
        return {x["instance"] for x in d.json("list", "writers")["writers"]
                if x["name"] == name}
    before = instances()
    w = d.spawn(argv, stderr=open(log, "ab"))
    deadline = time.time() + 15
    while wait and not instances() - before:
        assert w.poll() is None, open(log).read()
        assert time.time() < deadline, open(log).read()
        time.sleep(0.05)
    return w, log


def pgbench(d, main, seconds):
    # Not through runuser: killing runuser would leave pgbench running.
    return d.spawn([os.path.join(PG_BIN, "pgbench"), "-h", main.sock, "-p", str(main.port),
                    "-U", "postgres", "-c", "4", "-T", str(seconds), "-n", "postgres"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def shadow_copy(vssd, mnt, i, writers, also=()):
    """A shadow of @mnt (with the writers or not); its data directory
    copied to ROOT/copy@i (and each directory of @also to ROOT/copy@i-NAME),
    returned."""
    sid = vssd.json("create", "shadow", "--for", mnt, "--json",
                    *([] if writers else ["--no-writers"]))["shadows"][0]["id"]
    exp = os.path.join(vssd.root, "exp%d" % i)
    vssd.vss("expose", sid, exp)
    try:
        to = os.path.join(vssd.root, "copy%d" % i)
        shutil.copytree(os.path.join(exp, "data"), to, symlinks=True)
        for name in also:
            shutil.copytree(os.path.join(exp, name), to + "-" + name, symlinks=True)
    finally:
        vssd.vss("unexpose", exp)
    return to


def check_copy(copy, label_expected, also=None, running_since=None):
    """@copy (a data directory) started as a second server (or running
    already, its log from offset @running_since): it recovered from its
    backup label (or by crash recovery) and holds pgbench's invariant, and
    amcheck finds its indexes sound; @also(server) runs then; returns the
    history count."""
    s = copy["server"]
    if running_since is None:
        shutil.chown(s.data, "postgres", "postgres")
        subprocess.run(["chown", "-R", "postgres:postgres", s.data], check=True)
        os.chmod(s.data, 0o700)
        s.start()
    # pg_ctl returns once connections are accepted: read-only ones while a
    # recovery with recovery.signal still runs.
    wait_for(lambda: s.sql("SELECT pg_is_in_recovery()", check=False).stdout.strip() == "f",
             30, lambda: "still in recovery: " + s.logtext())
    log = s.logtext()[running_since or 0:]
    if label_expected:
        assert "starting backup recovery with redo LSN" in log, log
        assert "completed backup recovery" in log, log
    else:
        assert "automatic recovery in progress" in log, log
        assert "backup recovery" not in log, log
    a, h, t, b, n = s.sql(
        "SELECT (SELECT sum(abalance) FROM pgbench_accounts), "
        "(SELECT coalesce(sum(delta), 0) FROM pgbench_history), "
        "(SELECT sum(tbalance) FROM pgbench_tellers), "
        "(SELECT sum(bbalance) FROM pgbench_branches), "
        "(SELECT count(*) FROM pgbench_history)").split("|")
    assert a == h == t == b, (a, h, t, b)
    s.sql("CREATE EXTENSION amcheck")
    checked = s.sql("SELECT count(bt_index_check(c.oid, true)) FROM pg_index i JOIN pg_class c "
                    "ON c.oid = i.indexrelid WHERE c.relname LIKE 'pgbench_%'")
    assert int(checked) == 3      # accounts, branches, tellers primary keys
    if also:
        also(s)
    s.stop("fast")
    return int(n)


def backup_metadata(repo, bid):
    """The backup metadata of the cluster's component in backup @bid."""
    with open(os.path.join(repo, "backups", bid, "components.json")) as f:
        doc = json.load(f)
    comps = [c for w in doc["writers"] for c in w["components"]
             if c.get("logical_path") == "postgresql"]
    assert len(comps) == 1, doc
    return comps[0].get("backup_metadata")


def history(main):
    return int(main.sql("SELECT count(*) FROM pgbench_history"))


def test_shadows_and_backups_recover_under_pgbench(vssd, pg, workdir):
    main, mnt, server = pg
    # A tablespace outside the data directory is part of the component.
    ts = os.path.join(mnt, "ts")
    os.mkdir(ts, 0o700)
    shutil.chown(ts, "postgres", "postgres")
    main.sql("CREATE TABLESPACE ts LOCATION '%s'" % ts)
    main.sql("CREATE TABLE t TABLESPACE ts AS SELECT generate_series(1, 1000) AS a")
    w, wlog = start_writer(vssd, main)
    bench = pgbench(vssd, main, 60)
    time.sleep(1)
    copies = []
    # A shadow with the writer, one without (crash-consistent).
    for i, writers in enumerate((True, False)):
        time.sleep(0.5)
        to = shadow_copy(vssd, mnt, i, writers, ["ts"])
        assert os.path.exists(os.path.join(to, "vss_backup_label")) == writers
        # The live data directory keeps no label once the set is done.
        assert not os.path.exists(os.path.join(mnt, "data", "vss_backup_label"))
        os.remove(os.path.join(to, "postmaster.pid"))
        # Its tablespace is its own copy, never the live one.
        subprocess.run(["chown", "-R", "postgres:postgres", to + "-ts"], check=True)
        for link in os.listdir(os.path.join(to, "pg_tblspc")):
            os.remove(os.path.join(to, "pg_tblspc", link))
            os.symlink(to + "-ts", os.path.join(to, "pg_tblspc", link))
        if writers:     # what a restore does (the writer's post_restore)
            os.remove(os.path.join(to, "vss_tablespace_map"))
            os.rename(os.path.join(to, "vss_backup_label"), os.path.join(to, "backup_label"))
            open(os.path.join(to, "recovery.signal"), "w").close()
            with open(os.path.join(to, "postgresql.auto.conf"), "a") as f:
                f.write("restore_command = 'false'\n")
        copies.append({"server": server(to, 1 + i), "label": writers})
    # Backups: a full and two log backups (the WAL since the previous one),
    # while pgbench goes on.
    repo = os.path.join(workdir, "repo")
    full = vssd.json("backup", "create", "--to", repo, "--for", mnt)["id"]
    for _ in range(2):
        time.sleep(1)
        before = history(main)
        last_log = vssd.json("backup", "create", "--to", repo, "--for", mnt, "--type",
                         "log")["id"]
    with open(os.path.join(repo, "backups", last_log, "backup.json")) as f:
        assert '"log"' in f.read()
    # The full backup keeps the label pg_backup_stop returned as the
    # component's backup metadata; a log backup none (its data files, and
    # so their label, are its base's).
    meta = backup_metadata(repo, full)
    head, rest = meta.split("\n", 1)
    assert head == "vss-writer-postgresql 1", meta
    size, rest = rest.split("\n", 1)
    assert size.startswith("backup_label "), meta
    label = rest[:int(size.split()[1])]
    assert label.startswith("START WAL LOCATION") and "LABEL: vss " in label, meta
    assert rest[len(label):].startswith("tablespace_map "), meta
    assert backup_metadata(repo, last_log) is None
    assert bench.poll() is None, "pgbench stopped early"
    bench.kill()
    bench.wait()
    with open(wlog) as f:
        text = f.read()
    assert text.count("backup started") == 4, text     # a shadow, the 3 backups
    for c in copies:
        assert check_copy(c, c["label"]) > 0
    # Each backup restored elsewhere: the writer writes its label back, and
    # the tablespace map leads to the restored tablespace, never the live.
    counts = []
    for i, bid in enumerate((full, last_log)):
        to = os.path.join(vssd.root, "restored%d" % i)
        r = vssd.json("restore", "--from", repo, bid, "--to", to)
        comp = [c for c in r["components"] if c["writer"] == "postgresql"]
        assert comp and comp[0]["status"] == "all", r
        data = to + os.path.join(mnt, "data")
        with open(os.path.join(data, "backup_label")) as f:
            if bid == full:     # the label the backup kept as its metadata
                assert f.read() == label
        assert os.path.exists(os.path.join(data, "recovery.signal"))
        assert not os.path.exists(os.path.join(data, "postmaster.pid"))
        with open(os.path.join(data, "tablespace_map")) as f:
            assert f.read().split()[1] == to + ts

        def own_tablespace(s, ts_to=to + ts):
            assert s.sql("SELECT pg_tablespace_location(oid) FROM pg_tablespace "
                         "WHERE spcname = 'ts'") == ts_to
            s.sql("INSERT INTO t SELECT generate_series(1, 500)")
            assert s.sql("SELECT count(*) FROM t") == "1500"
        counts.append(check_copy({"server": server(data, 10 + i)}, True, own_tablespace))
    assert main.sql("SELECT count(*) FROM t") == "1000"
    # The full and the log backups restore to the last one's instant: at
    # least what was committed before it started.
    assert counts[1] >= before > counts[0] > 0, (counts, before)
    with open(wlog) as f:
        text = f.read()
    assert "restored with its backup label (from the backup metadata)" in text, text
    assert "restored with its backup label (from the files restored)" in text, text
    # In place: refused while the cluster runs without a unit to stop it,
    # nothing written.
    live = history(main)
    r = vssd.vss("restore", "--from", repo, last_log, check=False)
    assert r.returncode != 0 and "is running and has no systemd unit" in r.stderr, r.stderr
    assert history(main) == live
    # Managed by pg_ctl: the writer stops the running cluster, the restore
    # writes it back, the writer starts it again (its log where it says)
    # and it recovers from the label.
    w.kill()
    w.wait()
    mark = len(main.logtext())
    w, wlog = start_writer(vssd, main, unit="pg_ctl:" + main.log)
    vssd.json("restore", "--from", repo, last_log)
    assert os.path.exists(os.path.join(main.data, "backup_label.old"))
    with open(wlog) as f:
        text = f.read()
    assert "cluster main: stopped (pg_ctl) for the restore" in text, text
    assert "cluster main: started again (pg_ctl)" in text, text
    # Exactly the backup's instant: the live WAL written after it was
    # moved aside, not replayed.
    assert check_copy({"server": main}, True, running_since=mark) == counts[1]
    with open(wlog) as f:
        assert "entries of its pg_wal moved to %s/pg_wal.vss-before-restore-" % main.data \
            in f.read()
    # Metadata that is not this writer's (a repository edited): the restore
    # stops before it writes anything.
    path = os.path.join(repo, "backups", full, "components.json")
    with open(path) as f:
        doc = json.load(f)
    for c in (c for wr in doc["writers"] for c in wr["components"]):
        c["backup_metadata"] = "vss-writer-postgresql 1\nbackup_label 99999\nSTART WAL"
    with open(path, "w") as f:
        json.dump(doc, f)
    to = os.path.join(vssd.root, "restored-bad")
    r = vssd.vss("restore", "--from", repo, full, "--to", to, check=False)
    assert r.returncode != 0, r.stdout
    assert "the backup's metadata is not a label this writer wrote" in r.stderr, r.stderr
    assert "before anything was restored" in r.stderr, r.stderr
    assert not os.path.exists(to + mnt)


def hang_front_writer(d, cls="front"):
    """A front-end writer that hangs at freeze (answers on SIGUSR1): the
    PostgreSQL writer has started its backup and waits for its freeze.
    With @cls "system", one frozen after the databases: they hold their
    freeze while it hangs."""
    log = os.path.join(d.root, "events")
    p = d.spawn([TEST_WRITER, "--run-dir", d.run, "--name", cls, "--log", log,
                 "--class", cls, "--hang-at", "freeze", "--timeout", "30000"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p, log


def wait_for(cond, seconds, what):
    """Until cond() holds; fails after @seconds with what() said."""
    deadline = time.time() + seconds
    while not cond():
        assert time.time() < deadline, what()
        time.sleep(0.05)


def fails_at_freeze(vssd, front, req, mnt, *said):
    """The hung writer @front let go: the set of @req fails at freeze
    saying each of @said, nothing is left of it and @mnt is not frozen."""
    front.send_signal(signal.SIGUSR1)
    out, err = req.communicate(timeout=60)
    assert req.returncode == 1, (out, err)
    assert all(s in err for s in said), err
    assert vssd.shadows() == []
    with open(os.path.join(mnt, "after"), "w") as f:
        f.write("x")
    subprocess.run(["sync", "-f", mnt], timeout=10, check=True)
    front.kill()
    front.wait()


def shadow_in_background(d, mnt):
    return subprocess.Popen(["/usr/bin/env", os.path.join(BUILD, "src", "vss", "vss"), "--run-dir",
                             d.run, "create", "shadow", "--for", mnt], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


PG_UNIT = "vss-test-pg.service"


@pytest.mark.skipif(systemd_ns.available() is not None, reason=str(systemd_ns.available()))
def test_restore_in_place_through_its_systemd_unit(vssd, pg, workdir):
    """The cluster run by a systemd unit (a systemd of the test's own,
    tests/system/systemd_ns.py): restored in place, the writer stops it
    with systemctl, the backup's files and label are written back, systemctl
    starts it and it recovers to the backup's instant."""
    main, mnt, server = pg
    main.sql("CREATE TABLE kept AS SELECT generate_series(1, 100) AS a")
    main.stop("fast")
    opts = ("-k %s -p %d -c listen_addresses='' -c max_wal_size=64MB -c wal_keep_size=128MB"
            % (main.sock, main.port))
    pg_ctl = os.path.join(PG_BIN, "pg_ctl")
    unit = ("[Unit]\nDescription=the test's PostgreSQL cluster\nDefaultDependencies=no\n"
            "[Service]\nType=forking\nUser=postgres\n"
            "ExecStart=%s -D %s -o \"%s\" -l %s -w -t 60 start\n"
            "ExecStop=%s -D %s -m fast -w -t 60 stop\nTimeoutSec=90\n"
            % (pg_ctl, main.data, opts, main.log, pg_ctl, main.data))
    sd = systemd_ns.Systemd(workdir, {PG_UNIT: unit}, os.path.join(workdir, "systemd.log"))
    try:
        sd.start()
        assert sd.run(["systemctl", "is-active", PG_UNIT], check=False).stdout.strip() == \
            "active", sd.run(["systemctl", "status", PG_UNIT], check=False).stdout
        w, wlog = start_writer(vssd, main, unit=PG_UNIT, via=sd.command)
        repo = os.path.join(workdir, "repo")
        bid = vssd.json("backup", "create", "--to", repo, "--for", mnt)["id"]
        main.sql("CREATE TABLE after_backup (a int)")
        main.sql("INSERT INTO kept SELECT generate_series(101, 200)")
        mark = len(main.logtext())
        r = vssd.json("restore", "--from", repo, bid)
        comp = [c for c in r["components"] if c["writer"] == "postgresql"]
        assert comp and comp[0]["status"] == "all", r
        with open(wlog) as f:
            text = f.read()
        assert "cluster main: stopped (%s) for the restore" % PG_UNIT in text, text
        assert "cluster main: started again (%s)" % PG_UNIT in text, text
        # systemd stopped and started it (not a pg_ctl of the writer's).
        assert sd.run(["systemctl", "is-active", PG_UNIT], check=False).stdout.strip() == \
            "active"
        journal = sd.run(["systemctl", "show", "-P", "NRestarts,ExecMainStartTimestamp",
                          PG_UNIT]).stdout
        assert journal.strip(), journal
        wait_for(lambda: main.sql("SELECT pg_is_in_recovery()", check=False)
                 .stdout.strip() == "f", 30, lambda: "still in recovery: " + main.logtext())
        log = main.logtext()[mark:]
        assert "starting backup recovery with redo LSN" in log, log
        assert "completed backup recovery" in log, log
        # The backup's instant: what came after it is gone, and the WAL
        # that held it is kept aside, not replayed.
        assert main.sql("SELECT count(*) FROM kept") == "100"
        assert main.sql("SELECT count(*) FROM pg_class WHERE relname = 'after_backup'") == "0"
        aside = glob.glob(os.path.join(main.data, "pg_wal.vss-before-restore-*"))
        assert len(aside) == 1 and "moved to %s" % aside[0] in text, (aside, text)
        assert any(len(n) == 24 for n in os.listdir(aside[0])), os.listdir(aside[0])
        assert w.poll() is None, text
    finally:
        sd.stop()
        # The server died with the namespace; its pid file names a process
        # of that namespace, which pg_ctl must not signal here.
        try:
            os.remove(os.path.join(main.data, "postmaster.pid"))
        except FileNotFoundError:
            pass


def test_server_stops_mid_backup_and_writer_killed(vssd, pg):
    main, mnt, server = pg
    w, wlog = start_writer(vssd, main)
    front, elog = hang_front_writer(vssd)

    def started():
        with open(wlog) as f:
            return "backup started" in f.read()

    # 1. The writer killed between pg_backup_start and pg_backup_stop: its
    # connection's end ends the server's backup.
    req = shadow_in_background(vssd, mnt)
    wait_for(lambda: started() and os.path.exists(elog) and "freeze" in open(elog).read(),
             40, lambda: "no backup started: " + open(wlog).read() + vssd.log()[-2000:])
    w.kill()
    w.wait()
    wait_for(lambda: "aborting backup due to backend exiting before pg_backup_stop was "
             "called" in main.logtext(), 10, lambda: "the server's backup was left in "
             "progress: " + main.logtext())
    front.send_signal(signal.SIGUSR1)
    out, err = req.communicate(timeout=60)
    assert req.returncode == 1, (out, err)
    assert "writer postgresql failed" in err, err
    assert vssd.shadows() == []
    # 2. The server stops while the backup is in progress: the writer fails
    # the set at freeze with the reason, nothing stays blocked.
    front.kill()
    front.wait()
    w, wlog = start_writer(vssd, main)
    front, elog = hang_front_writer(vssd)
    open(elog, "w").close()
    starts = open(wlog).read().count("backup started")
    req = shadow_in_background(vssd, mnt)
    wait_for(lambda: "freeze" in open(elog).read() and open(wlog).read().count(
        "backup started") == starts + 1, 40,
        lambda: "no second backup started: " + open(wlog).read() + vssd.log()[-2000:])
    main.stop("fast")
    fails_at_freeze(vssd, front, req, mnt, "writer postgresql failed at freeze", "cluster main")
    assert not os.path.exists(os.path.join(mnt, "data", "vss_backup_label"))
    # The server back, the next set goes through.
    main.start()
    vssd.shadow(mnt)
    assert w.poll() is None


def test_refusals_say_why(vssd, pg):
    """A role without the rights, a standby, wal_level = minimal."""
    main, mnt, server = pg
    main.sql("CREATE ROLE plain LOGIN")
    # It cannot even learn where the data directory is: the writer says so.
    w, log = start_writer(vssd, main, "plain", wait=False)
    assert w.wait(20) == 1
    with open(log) as f:
        text = f.read()
    assert "data_directory" in text and "pg_read_all_settings" in text, text
    # Allowed to read the settings but not to back up: the set fails with why.
    main.sql("GRANT pg_read_all_settings TO plain")
    w, log = start_writer(vssd, main, "plain")
    r = vssd.vss("create", "shadow", "--for", mnt, check=False)
    assert r.returncode == 1
    assert "role plain may not run pg_backup_start and pg_backup_stop" in r.stderr, r.stderr
    assert vssd.shadows() == []
    main.sql("GRANT EXECUTE ON FUNCTION pg_backup_start, pg_backup_stop TO plain")
    vssd.shadow(mnt)
    taken = len(vssd.shadows())
    w.kill()
    w.wait()
    # A standby (in recovery) of the cluster: a set with a writer for it
    # fails, saying to back up the primary.
    standby = server(os.path.join(mnt, "standby"), 1)
    os.mkdir(standby.data, 0o700)
    shutil.chown(standby.data, "postgres", "postgres")
    as_pg(os.path.join(PG_BIN, "pg_basebackup"), "-h", main.sock, "-p", str(main.port),
          "-U", "postgres", "-D", standby.data, "-R", "-X", "stream", "-c", "fast")
    standby.start()
    assert standby.sql("SELECT pg_is_in_recovery()") == "t"
    w, log = start_writer(vssd, standby)
    r = vssd.vss("create", "shadow", "--for", mnt, check=False)
    assert r.returncode == 1
    assert "cluster main is a standby (in recovery)" in r.stderr and "primary" in r.stderr, \
        r.stderr
    assert len(vssd.shadows()) == taken
    w.kill()
    w.wait()
    standby.stop("fast")
    # A log backup whose WAL since the previous backup was recycled (no
    # wal_keep_size): refused, saying what to keep, nothing published.
    main.stop("fast")
    main.start("-c wal_keep_size=0 -c min_wal_size=2MB -c max_wal_size=4MB")
    w, log = start_writer(vssd, main)
    repo = os.path.join(vssd.root, "repo-gone")
    vssd.json("backup", "create", "--to", repo, "--for", mnt)
    for _ in range(3):
        main.sql("CREATE TABLE churn AS SELECT generate_series(1, 100000) AS a")
        main.sql("DROP TABLE churn")
        main.sql("SELECT pg_switch_wal()")
        main.sql("CHECKPOINT")
    r = vssd.vss("backup", "create", "--to", repo, "--for", mnt, "--type", "log", check=False)
    assert r.returncode != 0, r.stdout
    assert "warning: writer postgresql failed_at_prepare_backup: cluster main: a log backup " \
        "needs the WAL since the previous backup" in r.stderr and "which is gone from " \
        "pg_wal" in r.stderr and "a log backup with no component left" in r.stderr, r.stderr
    # Asked for by name, the writer is required: its failure is the backup's.
    r = vssd.vss("backup", "create", "--to", repo, "--for", mnt, "--type", "log",
                 "--component", "postgresql", check=False)
    assert r.returncode != 0 and "warning" not in r.stderr, r.stderr
    assert "backup create: writer postgresql failed at prepare_backup: cluster main: a log " \
        "backup needs the WAL" in r.stderr, r.stderr
    assert len(vssd.json("backup", "list", "--in", repo)["backups"]) == 1
    w.kill()
    w.wait()
    # wal_level = minimal allows no online backup: said, nothing taken.
    main.stop("fast")
    main.start("-c wal_level=minimal -c max_wal_senders=0")
    w, log = start_writer(vssd, main)
    r = vssd.vss("create", "shadow", "--for", mnt, check=False)
    assert r.returncode == 1 and "wal_level is minimal" in r.stderr, r.stderr
    assert len(vssd.shadows()) == taken
    assert main.sql("SELECT count(*) FROM pgbench_branches") == "1"

