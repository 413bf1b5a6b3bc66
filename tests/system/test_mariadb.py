"""vss-writer-mariadb with a real MariaDB server (Debian's mariadb-server):
transfers between InnoDB accounts (the total never changes) and DDL while
shadows are taken; each shadow's copy, started as a second server, has the
same total and passes CHECK TABLE; the server stopping mid backup fails
the set with the reason and leaves nothing blocked.  Every server runs as
the user mysql without networking, on a socket of the test's own, its data
on a vss volume, and is killed when the test ends, however it ends.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import BUILD
from test_postgresql import (database_volume, end_all, fails_at_freeze, hang_front_writer,
                             keeper, shadow_copy, shadow_in_background, spawn_writer,
                             wait_for)

MARIADB_WRITER = os.path.abspath(os.path.join(BUILD, "src", "vss-writer-mariadb",
                                              "vss-writer-mariadb"))
MARIADBD = "/usr/sbin/mariadbd"
ACCOUNTS, START = 100, 1000

pytestmark = pytest.mark.skipif(
    not os.path.exists(MARIADBD) or not os.path.exists(MARIADB_WRITER),
    reason="needs mariadb-server (scripts/setup.sh) and vss-writer-mariadb built")


class Server:
    def __init__(self, d, data, sock_dir, n):
        self.d, self.data, self.n = d, data, n
        self.sock = os.path.join(sock_dir, "s%d.sock" % n)
        self.log = os.path.join(sock_dir, "err%d.log" % n)
        self.proc = None

    def start(self, *extra):
        self.proc = subprocess.Popen(
            [MARIADBD, "--no-defaults", "--user=mysql", "--datadir=" + self.data,
             "--socket=" + self.sock, "--skip-networking", "--log-error=" + self.log,
             "--pid-file=" + self.sock + ".pid", "--innodb-buffer-pool-size=32M",
             "--log-bin=binlog", "--server-id=1"] + list(extra),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: self.proc.poll() is None and self.sql("SELECT 1", check=False, db=None)
                 .returncode == 0, 60, lambda: "mariadbd did not start: " + self.logtext())
        return self

    def sql(self, q, check=True, db="bank"):
        r = subprocess.run(["mariadb", "--no-defaults", "-S", self.sock, "-u", "root", "-N",
                            "-B", "-e", q] + ([db] if db else []), capture_output=True,
                           text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError("%s: %s" % (q, r.stderr))
        return r.stdout.strip() if check else r

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def logtext(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


TRANSFERS = r"""
import random, subprocess, sys
c = subprocess.Popen(["mariadb", "--no-defaults", "-S", sys.argv[1], "-u", "root", "bank"],
                     stdin=subprocess.PIPE, text=True)
n = int(sys.argv[2])
while True:
    a, b = random.randrange(n), random.randrange(n)
    c.stdin.write("START TRANSACTION; UPDATE accounts SET bal = bal - 7 WHERE id = %d; "
                  "UPDATE accounts SET bal = bal + 7 WHERE id = %d; COMMIT;\n" % (a, b))
    c.stdin.flush()
"""

DDL = r"""
import subprocess, sys
c = subprocess.Popen(["mariadb", "--no-defaults", "-S", sys.argv[1], "-u", "root", "bank"],
                     stdin=subprocess.PIPE, text=True)
while True:
    c.stdin.write("CREATE TABLE IF NOT EXISTS scratch (a INT) ENGINE=InnoDB; "
                  "ALTER TABLE scratch ADD COLUMN b INT; DROP TABLE scratch;\n")
    c.stdin.flush()
"""


@pytest.fixture
def maria(vssd, workdir):
    """A server on a mounted vss volume with the table accounts; yields
    (server, mount point, a factory of more servers)."""
    mnt, data, sock = database_volume(vssd, workdir, "256M", "mysql", 0o750)
    servers = []
    server = keeper(servers, lambda data_dir, n: Server(vssd, data_dir, sock, n))
    try:
        r = subprocess.run(["mariadb-install-db", "--no-defaults", "--user=mysql",
                            "--datadir=" + data, "--auth-root-authentication-method=normal",
                            "--skip-test-db"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        main = server(data, 0).start()
        main.sql("CREATE DATABASE bank", db=None)
        main.sql("CREATE TABLE accounts (id INT PRIMARY KEY, bal BIGINT NOT NULL) "
                 "ENGINE=InnoDB; INSERT INTO accounts SELECT seq, %d FROM seq_0_to_%d"
                 % (START, ACCOUNTS - 1))
        yield main, mnt, server
    finally:
        end_all(vssd, servers)


def start_writer(d, main, options="user=root", wait=True):
    conf = os.path.join(d.root, "mariadb.conf")
    with open(conf, "w") as f:
        f.write("# name unit options\nmain - socket=%s %s\n" % (main.sock, options))
    return spawn_writer(d, "mariadb", [MARIADB_WRITER, "--run-dir", d.run, "--config", conf,
                                       "--once"], os.path.join(d.root, "mariadb-writer.log"),
                        wait)


def not_blocked(main):
    """DDL and a commit go through at once: nothing of a backup is held."""
    main.sql("SET SESSION lock_wait_timeout = 2; CREATE TABLE probe (a INT) ENGINE=InnoDB; "
             "START TRANSACTION; UPDATE accounts SET bal = bal WHERE id = 1; COMMIT; "
             "DROP TABLE probe")


def check_copy(server, to, n):
    """The data directory @to started as server @n: every transfer whole."""
    subprocess.run(["chown", "-R", "mysql:mysql", to], check=True)
    s = server(to, n).start()
    total, count = s.sql("SELECT sum(bal), count(*) FROM accounts").split()
    assert (int(total), int(count)) == (START * ACCOUNTS, ACCOUNTS), (n, total, count)
    check = s.sql("CHECK TABLE accounts EXTENDED").split("\t")
    assert check[-1] == "OK", check
    s.stop()


def test_shadows_hold_every_transfer_whole(vssd, maria):
    main, mnt, server = maria
    w, wlog = start_writer(vssd, main)
    load = [vssd.spawn([sys.executable, "-c", TRANSFERS, main.sock, str(ACCOUNTS)])
            for _ in range(2)]
    load.append(vssd.spawn([sys.executable, "-c", DDL, main.sock],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(1)
    before = main.sql("SHOW MASTER STATUS")
    copies = []
    for i, writers in enumerate((True, True, False)):
        time.sleep(0.4)
        copies.append(shadow_copy(vssd, mnt, i, writers))
    assert all(p.poll() is None for p in load), "the load stopped early"
    for p in load:
        p.kill()
        p.wait()
    assert main.sql("SHOW MASTER STATUS") != before, "the load committed nothing"
    with open(wlog) as f:
        text = f.read()
    assert text.count("server main: frozen at binlog=binlog.") == 2, text
    for i, to in enumerate(copies):
        check_copy(server, to, 1 + i)
    assert main.sql("SELECT sum(bal) FROM accounts") == str(START * ACCOUNTS)
    assert w.poll() is None


def test_server_stops_mid_backup(vssd, maria):
    main, mnt, server = maria
    w, wlog = start_writer(vssd, main)
    front, elog = hang_front_writer(vssd)
    req = shadow_in_background(vssd, mnt)
    # Between BLOCK_DDL (prepare_snapshot) and BLOCK_COMMIT (freeze): the
    # server is killed.
    wait_for(lambda: os.path.exists(elog) and "freeze" in open(elog).read(), 40,
             lambda: "no freeze: " + open(wlog).read())
    main.stop()
    fails_at_freeze(vssd, front, req, mnt, "writer mariadb failed at freeze", "server main")
    # Back up, the next set goes through and the server is not blocked.
    main.start()
    vssd.shadow(mnt)
    main.sql("UPDATE accounts SET bal = bal WHERE id = 1")
    assert w.poll() is None


def test_ftwrl_rights_and_restore(vssd, maria, workdir):
    """FLUSH TABLES WITH READ LOCK (lock=ftwrl, what a server without
    backup stages gets) holds every write while frozen and its shadows
    hold every transfer whole; an account without RELOAD fails the set
    saying so, nothing held; a restore in place of a running server with
    nothing to stop it is refused, nothing written, and once it is stopped
    the backup comes back."""
    main, mnt, server = maria
    # 1. No RELOAD.
    main.sql("CREATE USER plain@localhost; GRANT SELECT, UPDATE ON bank.* TO plain@localhost",
             db=None)
    w, wlog = start_writer(vssd, main, "user=plain")
    r = vssd.vss("create", "shadow", "--for", mnt, check=False)
    assert r.returncode == 1, r.stdout
    assert "writer mariadb failed at prepare_snapshot" in r.stderr, r.stderr
    assert "BACKUP STAGE START: Access denied" in r.stderr and "RELOAD" in r.stderr, r.stderr
    assert vssd.shadows() == []
    not_blocked(main)
    w.kill()
    w.wait()
    # 2. FTWRL: while a system writer after it hangs at freeze, even an
    # uncommitted UPDATE waits (BACKUP STAGE BLOCK_COMMIT would let it run).
    w, wlog = start_writer(vssd, main, "user=root lock=ftwrl")
    with open(wlog) as f:
        assert "is configured with lock=ftwrl: FLUSH TABLES WITH READ LOCK" in f.read()
    hang, elog = hang_front_writer(vssd, "system")
    req = shadow_in_background(vssd, mnt)
    wait_for(lambda: os.path.exists(elog) and "freeze" in open(elog).read(), 40,
             lambda: "no freeze: " + open(wlog).read())
    r = main.sql("SET SESSION lock_wait_timeout = 1; START TRANSACTION; "
                 "UPDATE accounts SET bal = bal + 1 WHERE id = 1", check=False)
    assert r.returncode != 0 and "Lock wait timeout" in r.stderr, (r.stdout, r.stderr)
    hang.send_signal(signal.SIGUSR1)
    out, err = req.communicate(timeout=60)
    assert req.returncode == 0, err
    hang.kill()
    hang.wait()
    not_blocked(main)
    load = vssd.spawn([sys.executable, "-c", TRANSFERS, main.sock, str(ACCOUNTS)])
    time.sleep(0.5)
    to = shadow_copy(vssd, mnt, 0, True)
    assert load.poll() is None, "the load stopped early"
    load.kill()
    load.wait()
    with open(wlog) as f:
        assert f.read().count("server main: frozen at binlog=binlog.") == 2
    check_copy(server, to, 1)
    # 3. Restore in place: refused while the server runs (no unit).
    # Taken under transfers, by a writer whose account is dropped after:
    # its stamp is the binary log position at the instant (post_snapshot),
    # past the one at prepare_backup.
    w.kill()
    w.wait()
    main.sql("CREATE USER gone@localhost; GRANT RELOAD, BINLOG MONITOR ON *.* TO "
             "gone@localhost", db=None)
    w, wlog = start_writer(vssd, main, "user=gone lock=ftwrl")
    repo = os.path.join(workdir, "repo")
    load = vssd.spawn([sys.executable, "-c", TRANSFERS, main.sock, str(ACCOUNTS)])
    time.sleep(0.3)
    bid = vssd.json("backup", "create", "--to", repo, "--for", mnt)["id"]
    load.kill()
    load.wait()
    with open(wlog) as f:
        frozen = [l.split("frozen at ", 1)[1] for l in f.read().splitlines()
                  if "server main: frozen at " in l]
    with open(os.path.join(repo, "backups", bid, "components.json")) as f:
        comps = [c for w_ in json.load(f)["writers"] for c in w_["components"]
                 if c.get("logical_path") == "mariadb"]
    assert len(frozen) == 3 and [c.get("backup_stamp") for c in comps] == [frozen[-1]], \
        (frozen, comps)
    main.sql("INSERT INTO accounts VALUES (%d, 0)" % ACCOUNTS)
    # A server that refuses the writer's account still runs.
    main.sql("DROP USER gone@localhost", db=None)
    r = vssd.vss("restore", "--from", repo, bid, check=False)
    assert r.returncode != 0, r.stdout
    assert "server main is running and has no systemd unit to stop it with" in r.stderr, \
        r.stderr
    assert main.sql("SELECT count(*) FROM accounts") == str(ACCOUNTS + 1)
    main.stop()
    vssd.json("restore", "--from", repo, bid)
    main.start()
    assert main.sql("SELECT sum(bal), count(*) FROM accounts").split() == \
        [str(START * ACCOUNTS), str(ACCOUNTS)]
    assert main.sql("CHECK TABLE accounts EXTENDED").split("\t")[-1] == "OK"
    assert w.poll() is None
