#!/usr/bin/env python3
"""The import arrows between the files of src/ run one way (ARCHITECTURE.md, "Which way the
arrows run"): builds the file-level graph of `crate::`/`super::` paths (comments and unit-test
modules aside, the `miso` binary aside) and fails on any circle (Tarjan's strongly connected
components)."""
import os, re, sys
root = os.path.join(sys.argv[1] if len(sys.argv) > 1 else '.', 'src')
files = {}
for d, _, fs in os.walk(root):
    for f in fs:
        if f.endswith('.rs') and '/bin' not in d:
            p = os.path.relpath(os.path.join(d, f), root)
            files[p] = open(os.path.join(d, f)).read()
def modpath(p):
    p = p[:-3]
    parts = p.split('/')
    if parts[-1] in ('mod', 'lib'): parts = parts[:-1]
    return parts
mods = {tuple(modpath(p)): p for p in files}
def resolve(parts):
    # longest prefix that is a module file
    for i in range(len(parts), 0, -1):
        if tuple(parts[:i]) in mods: return mods[tuple(parts[:i])]
    return None
edges = {p: set() for p in files}
for p, src in files.items():
    src = '\n'.join(l for l in src.split('#[cfg(test)]')[0].split('\n') if not l.strip().startswith('//'))
    me = modpath(p)
    for m in re.finditer(r'\b(crate|super)((?:::\w+)+)', src):
        segs = m.group(2).strip(':').split('::')
        if m.group(1) == 'crate': base = []
        else:
            base = me[:-1] if not (p.endswith('mod.rs')) else me[:-1]
            if p.endswith('mod.rs'): base = me[:-1]
        t = resolve(base + segs)
        if t and t != p and t != 'lib.rs': edges[p].add(t)
# Tarjan SCC
index = {}; low = {}; st = []; on = set(); sccs = []; i = [0]
sys.setrecursionlimit(10000)
def sc(v):
    index[v] = low[v] = i[0]; i[0] += 1; st.append(v); on.add(v)
    for w in edges[v]:
        if w not in index: sc(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = st.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: sccs.append(comp)
for v in edges:
    if v not in index: sc(v)
if sccs:
    print("import circles between files:", sccs)
    sys.exit(1)
print("import circles: none")
