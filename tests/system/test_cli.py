"""The command-line contract (doc/cli.md, the man pages in man/): outputs,
JSON shapes, delete modes, ID prefixes, volume deletion rules, bad sizes;
and the contract itself: every option each program's --help lists is in
doc/cli.md and in its man page and the other way round, each vss command
accepts exactly the options its help line shows, and the man pages render
without a warning."""
import glob
import os
import re
import subprocess
import sys
import time

from conftest import BUILD, VSS, VSSD

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def test_status_and_lists(vssd):
    st = vssd.json("status")
    for k in ("version", "volumes", "shadows", "writers"):
        assert k in st
    assert vssd.vss("status").stdout.startswith("vssd ")
    provs = vssd.json("list", "providers")["providers"]
    assert provs and all(set(p) >= {"name", "id", "version", "kind", "priority"} for p in provs)
    assert vssd.json("list", "writers") == {"writers": []}
    assert vssd.vss("list", "writers").stdout.strip() == "No items found that satisfy the query."
    assert vssd.json("volume", "list") == {"volumes": []}


def test_create_shadow_output(vssd):
    vssd.create_volume("a", "8M")
    vssd.create_volume("b", "8M")
    out = vssd.vss("create", "shadow", "--for", "a", "--for", "b").stdout.splitlines()
    assert UUID.match(out[0])
    rows = [l.split() for l in out[1:]]
    assert [r[1] for r in rows] == ["a", "b"]
    for sid, target, dev in rows:
        assert UUID.match(sid) and os.path.exists(dev)
    listed = vssd.shadows()
    assert {s["set"] for s in listed} == {out[0]}
    for s in listed:
        assert set(s) >= {"id", "set", "volume", "created", "device", "provider",
                          "attributes", "state", "diff_bytes"}
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", s["created"])
        assert s["state"] == "valid" and isinstance(s["attributes"], list)
    assert [s["id"] for s in vssd.shadows("--set", out[0][:8])] == [r[0] for r in rows]
    assert [s["id"] for s in vssd.shadows("--for", "b")] == [rows[1][0]]
    v = vssd.volume("a")
    assert set(v) >= {"name", "size", "block_size", "backing", "device", "mount", "shadows"}
    assert v["shadows"] == 1 and v["size"] == 8 << 20 and v["block_size"] == 16384


def test_delete_modes(vssd):
    vssd.create_volume("a", "8M")
    vssd.create_volume("b", "8M")
    sets = [vssd.shadow("a", "b")["set"] for _ in range(3)]
    ids_a = [s["id"] for s in vssd.shadows("--for", "a")]
    r = vssd.vss("delete", "shadows", "--for", "a", "--oldest")
    assert r.stdout.strip() == "Deleted 1 shadow copy."
    assert [s["id"] for s in vssd.shadows("--for", "a")] == ids_a[1:]
    r = vssd.vss("delete", "shadows", "--set", sets[1][:10])
    assert r.stdout.strip() == "Deleted 2 shadow copies."
    r = vssd.vss("delete", "shadows", "--shadow", ids_a[2][:8], "--quiet")
    assert r.stdout == ""
    r = vssd.vss("delete", "shadows", "--for", "b", "--all")
    assert r.stdout.strip() == "Deleted 2 shadow copies."
    assert vssd.shadows() == []
    vssd.shadow("a")
    vssd.shadow("b")
    assert vssd.vss("delete", "shadows", "--all").stdout.strip() == "Deleted 2 shadow copies."


def test_volume_delete_rules(vssd):
    vssd.create_volume("v", "8M")
    state_files = set(os.listdir(os.path.join(vssd.state, "volumes")))
    vssd.shadow("v")
    r = vssd.vss("volume", "delete", "v", check=False)
    assert r.returncode == 1 and "shadow" in r.stderr
    with open(vssd.device("v"), "rb", buffering=0) as f:
        vssd.vss("delete", "shadows", "--all")
        r = vssd.vss("volume", "delete", "v", check=False)
        assert r.returncode == 1 and "open" in r.stderr
        vssd.shadow("v")
        vssd.vss("volume", "delete", "v", "--force")   # shadows and all
        try:
            f.read(4096)
            assert False, "a deleted volume's device still reads"
        except OSError:
            pass
    assert vssd.json("volume", "list") == {"volumes": []}
    assert not os.path.exists(vssd.device("v"))
    # The files go once the last user closed the device (FUSE's release is
    # asynchronous to close(2)).
    for _ in range(100):
        if not set(os.listdir(os.path.join(vssd.state, "volumes"))) & state_files:
            break
        time.sleep(0.02)
    assert not (set(os.listdir(os.path.join(vssd.state, "volumes"))) & state_files)
    # The name is free again.
    vssd.create_volume("v", "8M")


def test_backing_file_and_env_run_dir(vssd):
    img = os.path.join(vssd.root, "disk.img")
    with open(img, "wb") as f:
        f.truncate(12 << 20)
    vssd.vss("volume", "create", "ext", "--backing", img, "--size", "1G")
    v = vssd.volume("ext")
    assert v["size"] == 12 << 20 and v["backing"] == img   # the backing's size wins
    env = dict(os.environ, VSS_RUN_DIR=vssd.run)
    r = subprocess.run([vssd_binary(), "list", "volumes", "--json"], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0 and '"ext"' in r.stdout
    vssd.vss("volume", "delete", "ext")
    assert os.path.exists(img)   # not ours to delete


def vssd_binary():
    return VSS


def test_two_daemons_side_by_side(daemon_factory):
    d1, d2 = daemon_factory("one"), daemon_factory("two")
    d1.create_volume("x", "8M")
    d2.create_volume("x", "8M")
    d1.shadow("x")
    assert len(d1.shadows()) == 1 and d2.shadows() == []
    # A second vssd on the same state directory is refused.
    from conftest import Daemon
    dup = Daemon(d1.root)
    dup.start(wait=False)
    assert dup.proc.wait(10) == 1
    assert "another vssd" in dup.log()
    assert d1.vss("status").returncode == 0


def test_bad_sizes_are_usage_errors(vssd):
    # A size vssd would refuse as such is a usage error, as one that does
    # not parse is: exit 2, and vssd is never asked.
    cases = [
        (["--size", "64M", "--block-size", "3000"], "--block-size", "power of two"),
        (["--size", "8M", "--block-size", "3K"], "--block-size", "power of two"),
        (["--size", "8M", "--block-size", "2K"], "--block-size", "from 4K to 1M"),
        (["--size", "8M", "--block-size", "2M"], "--block-size", "from 4K to 1M"),
        (["--size", "8M", "--block-size", "0"], "--block-size", "power of two"),
        (["--size", "1000"], "--size", "multiple of 4K"),
        (["--size", "8M", "--block-size", "16K", "--size=12289"], "--size", "multiple of 4K"),
        (["--size", "0"], "--size", "multiple of 4K"),
    ]
    for extra, opt, msg in cases:
        r = vssd.vss("volume", "create", "x", *extra, check=False)
        assert r.returncode == 2, (extra, r.returncode, r.stderr)
        assert r.stderr.startswith("vss: error: volume create: " + opt) and msg in r.stderr, \
            (extra, r.stderr)
    assert vssd.json("volume", "list") == {"volumes": []}
    # The edges are sizes.
    vssd.vss("volume", "create", "lo", "--size", "8M", "--block-size", "4K")
    vssd.vss("volume", "create", "hi", "--size", "8M", "--block-size", "1M")
    assert (vssd.volume("lo")["block_size"], vssd.volume("hi")["block_size"]) == (4096, 1 << 20)
    # With --backing the backing's size wins: --size is not checked.
    img = os.path.join(vssd.root, "disk.img")
    with open(img, "wb") as f:
        f.truncate(8 << 20)
    vssd.vss("volume", "create", "b", "--backing", img, "--size", "1000")
    assert vssd.volume("b")["size"] == 8 << 20
    # --rbd takes neither --backing nor --block-size, and a size that is
    # given must be a multiple of 4K; without librbd or a cluster vssd says so.
    for extra, msg in [(["--backing", img], "--rbd takes neither"),
                       (["--block-size", "4K"], "--rbd takes neither"),
                       (["--size", "1000"], "--size")]:
        r = vssd.vss("volume", "create", "r", "--rbd", "p/i", *extra, check=False)
        assert r.returncode == 2 and msg in r.stderr, (extra, r.stderr)
    assert [v["name"] for v in vssd.json("volume", "list")["volumes"]] == ["lo", "hi", "b"]


def test_a_file_whose_tests_all_skip_exits_77(workdir):
    # Nothing built where VSS_BUILD_DIR points: every test skips, and the
    # run says so to meson with 77 (conftest.py), not 0.
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        os.path.join(os.path.dirname(__file__), "test_roles.py")],
                       env=dict(os.environ, VSS_BUILD_DIR=workdir), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 77, r.stdout + r.stderr
    assert " skipped" in r.stdout and "passed" not in r.stdout


# ---- the contract: --help, doc/cli.md and the man pages say the same ----

SOURCE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROGRAMS = {
    "vss": VSS,
    "vssd": VSSD,
    "mount.vss": os.path.join(BUILD, "src", "mount.vss", "mount.vss"),
    "vss-writer-hooks": os.path.join(BUILD, "src", "vss-writer-hooks", "vss-writer-hooks"),
    "vss-writer-sqlite": os.path.join(BUILD, "src", "vss-writer-sqlite", "vss-writer-sqlite"),
    "vss-writer-postgresql": os.path.join(BUILD, "src", "vss-writer-postgresql",
                                          "vss-writer-postgresql"),
    "vss-writer-mariadb": os.path.join(BUILD, "src", "vss-writer-mariadb",
                                       "vss-writer-mariadb"),
}
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z-]*[a-z]|-[a-zA-Z])(?![\w-])")
COMMON = {"--run-dir", "--json"}        # every vss command takes them


def options(text):
    """The options @text names, but those of a command run after " -- "."""
    found = set()
    for line in text.splitlines():
        found |= set(OPTION.findall(line.split(" -- ")[0]))
    return found


def help_text(prog):
    r = subprocess.run([PROGRAMS[prog], "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout and not r.stderr, (prog, r.returncode, r.stderr)
    return r.stdout


def man_path(prog):
    path = os.path.join(BUILD, "man", prog + ".8")
    assert os.path.exists(path), "%s: not built (man/meson.build)" % path
    return path


def man_text(prog, width=None):
    """The page as a reader sees it (no bold or underline; @width columns)."""
    args = ["groff", "-man", "-Tutf8", "-P-cbou"] + (["-rLL=%dn" % width] if width else [])
    r = subprocess.run(args + [man_path(prog)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and not r.stderr, (prog, r.stderr)
    return r.stdout


def doc_sections():
    """doc/cli.md by "## " section: {title without backquotes: text}; the
    programs' own sections are titled with their names."""
    with open(os.path.join(SOURCE, "doc", "cli.md")) as f:
        parts = re.split(r"^## (.*)$", f.read(), flags=re.M)
    sections = {"": parts[0]}
    for title, body in zip(parts[1::2], parts[2::2]):
        sections[title.strip().strip("`")] = body
    return sections


def source_options(prog):
    """The options the program's source parses: vss's option tables and
    strcmp()s, vssd's struct option and getopt string, the writers' strcmp()s."""
    found = set()
    paths = glob.glob(os.path.join(SOURCE, "src", prog, "*.c"))
    # The database writers take the common options in writer_cli.c.
    if any("writer_cli.h" in open(p).read() for p in paths):
        paths += glob.glob(os.path.join(SOURCE, "src", "writer-cli", "*.c"))
    for path in paths:
        with open(path) as f:
            text = f.read()
        for name, short in re.findall(r'\{ "([a-z][a-z-]*)", (0|\'\w\'), (?:true|false) \}',
                                      text):
            found.add("--" + name)
            if short != "0":
                found.add("-" + short.strip("'"))
        found |= {"--" + n for n in re.findall(r'\{ "([a-z][a-z-]*)", (?:required|no)_argument',
                                                text)}
        for shorts in re.findall(r'getopt_long\([^"]*"([^"]*)"', text):
            found |= {"-" + c for c in shorts if c != ":"}
        found |= set(re.findall(r'strn?cmp\([^,]+, "(--?[a-z][a-z-]*)"', text))
    return found


def test_man_pages_render_without_warnings():
    version = subprocess.run([VSS, "--version"], capture_output=True, text=True).stdout.split()[1]
    for prog in PROGRAMS:
        r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", man_path(prog)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and r.stderr == "", (prog, r.stderr)
        text = man_text(prog)
        assert text.lstrip().startswith(prog.upper() + "(8)"), (prog, text[:200])
        assert "vss " + version in text and "@VERSION@" not in text, prog
        # Nothing hyphenated: an option split at a line's end cannot be copied.
        assert "\u2010" not in text, (prog, [l for l in text.splitlines() if "\u2010" in l])


def test_every_option_is_in_help_doc_and_man_page():
    sections = doc_sections()
    every = set()
    for prog in PROGRAMS:
        helped = options(help_text(prog))
        every |= helped
        for where, named in (("its man page", options(man_text(prog, 250))),
                             ("doc/cli.md, section %s" % prog, options(sections[prog]))):
            assert helped == named, "%s: only in --help: %s; only in %s: %s" % (
                prog, sorted(helped - named), where, sorted(named - helped))
    for title, body in sections.items():
        if title not in PROGRAMS:
            assert options(body) <= every, (title, sorted(options(body) - every))


def test_help_lists_every_option_the_source_parses():
    for prog in PROGRAMS:
        parsed, helped = source_options(prog), options(help_text(prog))
        assert parsed == helped, "%s: parsed, not in --help: %s; in --help, not parsed: %s" % (
            prog, sorted(parsed - helped), sorted(helped - parsed))


def vss_commands():
    """From vss --help: {command: its options} and {alias: command}."""
    cmds, aliases, cur = {}, {}, None
    for line in help_text("vss").splitlines():
        m = re.match(r"  ([a-z][a-z-]*(?: [a-z]+)*)(?:\s|$)(.*)", line)
        if m:
            cur, rest = m.group(1), m.group(2)
            alias = re.search(r"\(or: ([a-z ]+)\)", rest)
            if alias:
                aliases[alias.group(1)] = cur
                rest = rest[:alias.start()]
            cmds[cur] = options(rest)
        elif cur and re.match(r" {3,}\S", line):
            cmds[cur] |= options(line)
        else:
            cur = None
    return cmds, aliases


def per_command(lines, cmds, aliases, where):
    """{command: options} from the lines that start with "vss COMMAND";
    the rest may name only what vss takes before a command."""
    found, before = {}, options(help_text("vss")) - set().union(*cmds.values()) | COMMON
    for line in lines:
        words = line.split()[1:]
        cmd = next((" ".join(words[:n]) for n in range(len(words), 0, -1)
                    if " ".join(words[:n]) in cmds or " ".join(words[:n]) in aliases), None)
        if cmd is None:
            assert options(line) <= before, (where, line)
            continue
        cmd = aliases.get(cmd, cmd)
        found[cmd] = found.get(cmd, set()) | options(line)
    return found


def test_each_vss_command_has_the_same_options_everywhere():
    cmds, aliases = vss_commands()
    assert len(cmds) >= 19 and aliases == {"list volumes": "volume list",
                                           "volume unmount": "volume umount"}, (cmds, aliases)
    # doc/cli.md: every code span and fenced line of the vss section that
    # starts with "vss".
    body = doc_sections()["vss"]
    fenced = [l.strip() for block in re.findall(r"^\s*```[^\n]*\n(.*?)^\s*```", body,
                                                 flags=re.S | re.M)
              for l in block.splitlines()]
    body = re.sub(r"^\s*```.*?^\s*```", "", body, flags=re.S | re.M)
    spans = [s for s in re.findall(r"`([^`]+)`", body)] + fenced
    doc = per_command([s for s in spans if s.startswith("vss ")], cmds, aliases, "doc/cli.md")
    # vss(8): the tag of every .TP and every example line that starts with "vss".
    with open(man_path("vss")) as f:
        src = f.read().splitlines()
    lines, example = [], False
    for prev, line in zip([""] + src, src):
        example = (example or line == ".EX") and line != ".EE"
        text = re.sub(r"\\f[BIRP]", "", line).replace("\\-", "-").replace("\\(aq", "'")
        if text.startswith("vss ") and (prev == ".TP" or example):
            lines.append(text)
    man = per_command(lines, cmds, aliases, "vss.8")
    for cmd, want in cmds.items():
        assert doc.get(cmd) == want, ("doc/cli.md", cmd, sorted(want), sorted(doc.get(cmd, [])))
        assert man.get(cmd) == want, ("vss.8", cmd, sorted(want), sorted(man.get(cmd, [])))


def test_each_vss_command_takes_what_its_help_shows(workdir):
    # The parser, by its answers: an option a command's help line does not
    # show is an unknown option there, and one it shows is not.
    cmds, aliases = vss_commands()
    every = set().union(*cmds.values()) | COMMON | {"--bogus", "-z"}
    nowhere = os.path.join(workdir, "nowhere")
    # Nothing of the machine's: no state directory either (restore --at-boot).
    env = dict(os.environ, VSS_STATE_DIR=nowhere)
    for cmd in list(cmds) + list(aliases):
        want = cmds[aliases.get(cmd, cmd)] | COMMON
        for opt in sorted(every):
            argv = [VSS, "--run-dir", nowhere] + cmd.split() + [opt]
            if cmd == "exec":
                argv += ["--", "true"]
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10, env=env)
            assert ("unknown option" in r.stderr) == (opt not in want), \
                (cmd, opt, r.returncode, r.stderr)
            # Alone, every option is short of something, but the one that
            # needs nothing (nothing staged under the missing state: done).
            ok = (0, 1, 2, 3) if (cmd, opt) == ("restore", "--at-boot") else (1, 2, 3)
            assert r.returncode in ok, (cmd, opt, r.returncode, r.stderr)
