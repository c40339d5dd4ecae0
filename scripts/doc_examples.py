#!/usr/bin/env python3
"""Public items of the client without a doc example.

Reads rustdoc's JSON (nightly), walks what the crate root makes reachable (modules,
re-exports, inherent impls, trait methods), keeps the items defined under the given
path prefixes and reports those whose doc comment has no code block. Fields and enum
variants are not counted (they get a line of prose, not an example).

    cargo +nightly rustdoc --lib --all-features -- -Z unstable-options --output-format json
    scripts/doc_examples.py target/doc/kafka_sansio.json src/client/ runtimes/
"""
import json
import sys

path = sys.argv[1]
prefixes = tuple(a for a in sys.argv[2:] if not a.startswith("-")) or ("src/client/", "runtimes/")
d = json.load(open(path))
index = d["index"]
seen = set()
out = []  # (file, line, kind, name, has_example)


def kind_of(item):
    return next(iter(item["inner"])) if isinstance(item["inner"], dict) else item["inner"]


def visit(iid, qual, in_trait=False):
    iid = str(iid)
    if iid in seen or iid not in index:
        return
    seen.add(iid)
    item = index[iid]
    if item["crate_id"] != 0:
        return
    if item["visibility"] != "public" and not in_trait and kind_of(item) != "use":
        return
    if any("doc(hidden)" in str(a) for a in item.get("attrs", [])):
        return
    k = kind_of(item)
    inner = item["inner"][k] if isinstance(item["inner"], dict) else None
    name = item.get("name") or ""
    q = f"{qual}::{name}" if name else qual
    if k == "use":
        if inner.get("id") is not None:
            visit(inner["id"], qual)
        return
    span = item.get("span") or {}
    fname = span.get("filename", "").replace("src/../", "")
    if k in ("module", "struct", "enum", "trait", "function", "type_alias", "constant",
             "static", "macro") and fname.startswith(prefixes):
        has = "```" in (item.get("docs") or "")
        out.append((fname, span.get("begin", [0])[0], k, q, has))
    if k == "module":
        for c in inner["items"]:
            visit(c, q)
    elif k in ("struct", "enum"):
        for imp in inner.get("impls", []):
            ii = index.get(str(imp))
            if not ii:
                continue
            imp_inner = ii["inner"]["impl"]
            if imp_inner.get("trait") is None and not imp_inner.get("is_synthetic") \
                    and not imp_inner.get("blanket_impl"):
                for c in imp_inner["items"]:
                    visit(c, q)
    elif k == "trait":
        for c in inner["items"]:
            visit(c, q, in_trait=True)


visit(d["root"], "kafka_sansio")
missing = [o for o in out if not o[4]]
for f, line, k, q, has in sorted(missing):
    print(f"{f}:{line}: {k} {q}")
print(f"{len(out)} public items under {', '.join(prefixes)}; "
      f"{len(out) - len(missing)} with an example, {len(missing)} without")
