#!/usr/bin/python3
"""What libvss.so.0 exports: the functions include/vss/ declares, no more and
no fewer, each at the version node lib/libvss.map gives it, and its soname.

check_symbols.py LIBVSS_SO LIBVSS_MAP INCLUDE_DIR

Reads the dynamic symbol table with `nm -D --defined-only`: an internal
symbol that leaks (a missing -fvisibility=hidden, a glob in the map) or a
public function that is not exported (forgotten in the map, hidden) fails
the test and is named."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from public_api import declared  # noqa: E402


def map_nodes(path):
    """{symbol: node} from a version script, and the nodes in order."""
    text = re.sub(r"/\*.*?\*/", " ", open(path).read(), flags=re.S)
    nodes, where = [], {}
    for node, body in re.findall(r"([A-Za-z0-9_.]+)\s*\{(.*?)\}\s*[A-Za-z0-9_.]*\s*;",
                                 text, flags=re.S):
        nodes.append(node)
        scope = None
        for tok in re.findall(r"[A-Za-z0-9_*]+:?|;", body):
            if tok in ("global:", "local:"):
                scope = tok
            elif tok != ";" and scope == "global:":
                if tok in where:
                    sys.exit("%s: %s is in two nodes" % (path, tok))
                where[tok] = node
    return where, nodes


def main():
    so, mapfile, include_dir = sys.argv[1:4]
    failures = []
    where, nodes = map_nodes(mapfile)
    header = declared(include_dir)

    out = subprocess.run(["nm", "-D", "--defined-only", so], check=True,
                         capture_output=True, text=True).stdout
    exported = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) != 3:
            failures.append("unexpected nm line: %r" % line)
            continue
        kind, sym = parts[1], parts[2]
        if kind == "A" and sym in nodes:
            continue                   # the version node itself
        name, _, version = sym.partition("@@")
        if not name.startswith("vss_"):
            failures.append("exported without the vss_ prefix: %s" % sym)
        if kind not in "TW":
            failures.append("exported and not a function (%s): %s" % (kind, sym))
        exported[name] = version

    for name in sorted(set(exported) - set(where)):
        failures.append("exported, not in %s: %s" % (os.path.basename(mapfile), name))
    for name in sorted(set(where) - set(exported)):
        failures.append("in %s, not exported: %s" % (os.path.basename(mapfile), name))
    for name in sorted(header - set(where)):
        failures.append("declared in include/vss, not in the map: %s" % name)
    for name in sorted(set(where) - header):
        failures.append("in the map, declared in no public header: %s" % name)
    for name, version in sorted(exported.items()):
        if name in where and version != where[name]:
            failures.append("%s is at version %r, the map says %s"
                            % (name, version, where[name]))

    dyn = subprocess.run(["readelf", "-d", so], check=True, capture_output=True,
                         text=True).stdout
    soname = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", dyn)
    if not soname or soname.group(1) != "libvss.so.0":
        failures.append("soname is %s, not libvss.so.0"
                        % (soname.group(1) if soname else "missing"))

    for f in failures:
        print("FAIL", f)
    print("%d symbols exported at %s; %d problems"
          % (len(exported), ", ".join(nodes), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
