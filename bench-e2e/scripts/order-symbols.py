#!/usr/bin/env python3
"""A symbol ordering file for the linker, from callgrind profiles of a binary.

    order-symbols.py BINARY_NAME OUT.txt PROFILE...

Each PROFILE is a callgrind output of one run (one benchmark phase) made with
`--demangle=no`, so that names are the linker's. The functions of BINARY_NAME that ran
are written to OUT.txt grouped by the set of runs that executed them: those every run
executes first, then those fewer runs share, then each run's own, so that one run's
code sits in as few pages as the function sizes allow. Link with
`-C link-arg=-Wl,--symbol-ordering-file=OUT.txt` (LLD). See README.md, "Code pages".
"""
import re
import sys


def executed(path, binary):
    """Names of the functions of `binary` that have costs in one callgrind profile."""
    names = {}  # callgrind's compressed "(id) name" strings, per kind
    obj = None
    funcs = set()

    def resolve(kind, value):
        m = re.match(r"\((\d+)\)(?: (.*))?$", value)
        if not m:
            return value
        table = names.setdefault(kind, {})
        if m.group(2) is not None:
            table[m.group(1)] = m.group(2)
        return table.get(m.group(1), "")

    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("ob="):
                obj = resolve("ob", line[3:])
            elif line.startswith("cob="):
                resolve("ob", line[4:])
            elif line.startswith("fn="):
                name = resolve("fn", line[3:])
                if obj is not None and obj.split("/")[-1] == binary:
                    funcs.add(name)
            elif line.startswith("cfn="):
                resolve("fn", line[4:])
    return funcs


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    binary, out, profiles = sys.argv[1], sys.argv[2], sys.argv[3:]
    runs = {}
    for i, path in enumerate(profiles):
        for name in executed(path, binary):
            runs[name] = runs.get(name, 0) | (1 << i)
    # Most widely shared first; ties by which runs share them, then by name.
    order = sorted(runs, key=lambda n: (-bin(runs[n]).count("1"), runs[n], n))
    with open(out, "w") as f:
        f.write("".join(n + "\n" for n in order if not n.startswith(("0x", "("))))
    print(f"{len(order)} functions of {binary} from {len(profiles)} profiles -> {out}")


if __name__ == "__main__":
    main()
