"""The functions include/vss/*.h declare: what libvss.so.0 must export.

Imported by check_symbols.py; run alone, prints them one a line (to write
a new node of lib/libvss.map)."""
import os
import re
import sys


def declared(include_dir):
    """The names of the functions declared at file scope in the headers."""
    names = set()
    for f in sorted(os.listdir(include_dir)):
        if not (f.endswith(".h") or f.endswith(".h.in")):
            continue
        text = open(os.path.join(include_dir, f)).read()
        text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
        text = re.sub(r"//[^\n]*", " ", text)
        # extern "C" { ... } for C++, then every preprocessor line.
        text = re.sub(r"#ifdef __cplusplus\n.*?#endif", " ", text, flags=re.S)
        text = re.sub(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", " ", text, flags=re.M)
        depth = 0
        top = []
        for ch in text:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif depth == 0:
                top.append(ch)
        names.update(re.findall(r"\b(vss_[A-Za-z0-9_]+)\s*\(", "".join(top)))
    return names


if __name__ == "__main__":
    for name in sorted(declared(sys.argv[1])):
        print(name)
