#!/usr/bin/env python3
"""Checks that a directory holds a subset of one exact git tree, without the rest of that tree.

usage: verify-source-subset.py DIR MANIFEST EXPECTED_TREE

MANIFEST is `git ls-tree -r -t --full-tree <tree>` of the whole pinned tree (mode, type, object id
and path of every entry). The check is:
  1. the manifest itself hashes, as git would, to EXPECTED_TREE (so it cannot describe another tree),
     and each of its entries is part of that hash (none lies under a folder it does not list);
  2. every file in DIR (the manifest file aside) is an entry of the manifest with the same blob id
     (content) and mode (regular, executable or symbolic link);
Files of the tree that DIR leaves out are allowed: that is what a subset is. Exit status 0 when the
subset is verified, 1 with the reasons on stderr otherwise. native/build.sh uses it for
LLAMA_CPP_SUBSET (see docs/native-build.md).
"""
import hashlib
import os
import stat
import sys


def git_hash(kind, data):
    return hashlib.sha1(b"%s %d\0" % (kind, len(data)) + data).hexdigest()


def read_manifest(path):
    entries = {}  # path -> (mode, type, oid)
    with open(path, "rb") as f:
        for raw in f:
            line = raw.rstrip(b"\n")
            if not line:
                continue
            meta, name = line.split(b"\t", 1)
            mode, kind, oid = meta.split(b" ")
            entries[name.decode("utf-8", "surrogateescape")] = (mode.decode(), kind.decode(), oid.decode())
    return entries


def tree_id(entries, prefix="", reached=None):
    """The id of the tree at prefix ('' = root) rebuilt from the entries below it; adds the path of
    every entry it hashes to reached."""
    if reached is None:
        reached = set()
    children = {}
    for path, (mode, kind, oid) in entries.items():
        if prefix and not path.startswith(prefix + "/"):
            continue
        rest = path[len(prefix) + 1:] if prefix else path
        if "/" in rest:
            continue
        children[rest] = (mode, kind, oid)
    body = b""
    # git sorts tree entries by name, comparing a subtree's name as if it ended with '/'
    for name in sorted(children, key=lambda n: n.encode("utf-8", "surrogateescape") + (b"/" if children[n][1] == "tree" else b"")):
        mode, kind, oid = children[name]
        path = prefix + "/" + name if prefix else name
        reached.add(path)
        if kind == "tree":
            sub = tree_id(entries, path, reached)
            if sub != oid:
                raise ValueError("tree %s: manifest says %s, its entries hash to %s" % (name, oid, sub))
        body += b"%s %s\0" % (mode.lstrip("0").encode() if kind == "tree" else mode.encode(),
                              name.encode("utf-8", "surrogateescape")) + bytes.fromhex(oid)
    return git_hash(b"tree", body)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    root, manifest, expected = sys.argv[1], sys.argv[2], sys.argv[3]
    entries = read_manifest(manifest)
    problems = []
    reached = set()
    try:
        found = tree_id(entries, "", reached)
    except ValueError as e:
        found = None
        problems.append("the manifest is inconsistent: %s" % e)
    # An entry under a folder the manifest does not list as a tree (or under a file) takes no part
    # in the tree hash: it would let a file that is not in the pinned tree through step 2.
    stray = sorted(set(entries) - reached)
    if stray:
        problems.append("the manifest is inconsistent: %d entries are not part of its tree, e.g. %s"
                        % (len(stray), ", ".join(stray[:3])))
    if found is not None and found != expected:
        problems.append("the manifest describes git tree %s, not the pinned tree %s" % (found, expected))
    checked = 0
    skip = os.path.abspath(manifest)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fn in sorted(filenames):
            full = os.path.join(dirpath, fn)
            if os.path.abspath(full) == skip:
                continue
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                mode, data = "120000", os.readlink(full).encode("utf-8", "surrogateescape")
            elif stat.S_ISREG(st.st_mode):
                mode = "100755" if st.st_mode & 0o100 else "100644"
                with open(full, "rb") as f:
                    data = f.read()
            else:
                problems.append("%s: not a regular file or link" % rel)
                continue
            want = entries.get(rel)
            if want is None or want[1] != "blob":
                problems.append("%s: not a file of the pinned tree" % rel)
                continue
            if want[0] != mode:
                problems.append("%s: mode %s, the pinned tree has %s" % (rel, mode, want[0]))
            oid = git_hash(b"blob", data)
            if oid != want[2]:
                problems.append("%s: content differs from the pinned tree (blob %s, expected %s)" % (rel, oid, want[2]))
            checked += 1
        for d in list(dirnames):
            if os.path.islink(os.path.join(dirpath, d)):
                problems.append("%s: a directory link" % os.path.relpath(os.path.join(dirpath, d), root))
    if checked == 0:
        problems.append("%s holds no file of the pinned tree" % root)
    if problems:
        for p in problems[:20]:
            print("verify-source-subset: " + p, file=sys.stderr)
        if len(problems) > 20:
            print("verify-source-subset: ... and %d more" % (len(problems) - 20), file=sys.stderr)
        sys.exit(1)
    total = sum(1 for e in entries.values() if e[1] == "blob")
    print("verify-source-subset: %d of the pinned tree's %d files present, all identical; tree %s" % (checked, total, expected))


if __name__ == "__main__":
    main()
