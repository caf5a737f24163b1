#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Check broker/'s include and symbol graph against docs/architecture.md.

The layer table in docs/architecture.md (between the markers
<!-- layers --> and <!-- /layers -->, one row per layer, lowest first:
| N | name | module module ... |) is the rule: a module may include the
header of, or call, a module of its own layer or a lower one; across the
whole broker the graph has no cycle, except the one pair the document
names in <!-- allowed-cycle: a b -->.  Every file in broker/ must belong to
a module the table lists, so a new file is placed on purpose.

Edges come from '#include "x.h"' lines (x.h a header of broker/) and,
given --lib, from the broker's static library: a symbol one object leaves
undefined and another defines (nm -P).

  check-layers.py --doc docs/architecture.md --src broker [--lib libbroker.a]
  check-layers.py --self-test
"""

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"/]+)\.h"', re.M)
ROW = re.compile(r'^\|\s*(\d+)\s*\|\s*([^|]*?)\s*\|\s*([^|]*?)\s*\|')


def read_table(doc):
    with open(doc, encoding='utf-8') as f:
        text = f.read()
    m = re.search(r'<!--\s*layers\s*-->(.*?)<!--\s*/layers\s*-->', text, re.S)
    if m is None:
        sys.exit(f'{doc}: no <!-- layers --> ... <!-- /layers --> table')
    layer_of = {}
    names = {}
    for line in m.group(1).splitlines():
        r = ROW.match(line.strip())
        if r is None:
            continue
        n = int(r.group(1))
        names[n] = r.group(2)
        for mod in re.findall(r'[A-Za-z0-9_]+', r.group(3)):
            if mod in layer_of:
                sys.exit(f'{doc}: module {mod} is in two layers')
            layer_of[mod] = n
    if not layer_of:
        sys.exit(f'{doc}: the layer table lists no module')
    allowed = set()
    a = re.search(r'<!--\s*allowed-cycle:\s*(\w+)\s+(\w+)\s*-->', text)
    if a is not None:
        allowed = {a.group(1), a.group(2)}
    return layer_of, names, allowed


def module_of(path):
    return os.path.basename(path).rsplit('.', 1)[0]


def include_edges(src):
    files = sorted(f for f in os.listdir(src) if f.endswith(('.c', '.h')))
    headers = {module_of(f) for f in files if f.endswith('.h')}
    mods = {module_of(f) for f in files}
    edges = collections.defaultdict(lambda: collections.defaultdict(set))
    for f in files:
        with open(os.path.join(src, f), encoding='utf-8') as fh:
            text = fh.read()
        for inc in INCLUDE.findall(text):
            if inc in headers and inc != module_of(f):
                edges[module_of(f)][inc].add(f'{f} includes {inc}.h')
    return mods, edges


def symbol_edges(lib, edges):
    out = subprocess.run(['nm', '-P', '-A', lib], capture_output=True,
                         text=True, check=True).stdout
    defs = {}
    undef = collections.defaultdict(set)
    for line in out.splitlines():
        # "libbroker.a[tracker.c.o]: tracker_schedule T 1a0 40"
        head, _, rest = line.partition(': ')
        f = rest.split()
        if len(f) < 2:
            continue
        # a member "lib.a[x.c.o]", or a thin archive's path "dir/x.c.o"
        obj = re.search(r'\[([^\]]+)\]', head)
        member = obj.group(1) if obj is not None else head
        mod = os.path.basename(member).split('.c.o')[0].split('.o')[0]
        sym, kind = f[0], f[1]
        if kind == 'U':
            undef[mod].add(sym)
        elif kind in 'TDBRCV':
            defs[sym] = mod
    for mod, syms in undef.items():
        for s in syms:
            d = defs.get(s)
            if d is not None and d != mod:
                edges[mod][d].add(f'{mod}.c calls {s}')


def sccs(nodes, edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def check(doc, src, lib):
    layer_of, names, allowed = read_table(doc)
    mods, edges = include_edges(src)
    if lib:
        symbol_edges(lib, edges)
    problems = []
    for m in sorted(mods):
        if m not in layer_of:
            problems.append(f'{src}/{m}: not in the layer table of {doc}; '
                            'place it in a layer')
    for a in sorted(edges):
        for b in sorted(edges[a]):
            la, lb = layer_of.get(a), layer_of.get(b)
            if la is None or lb is None or lb <= la:
                continue
            why = '; '.join(sorted(edges[a][b])[:4])
            problems.append(
                f'upward: {a} (layer {la} {names[la]}) -> {b} (layer {lb} '
                f'{names[lb]}): {why}; go through an ops or callback struct '
                f'declared in {a}\'s layer or below')
    for comp in sccs(mods | set(edges), edges):
        if len(comp) < 2 or set(comp) == allowed:
            continue
        ring = []
        for a in comp:
            for b in sorted(edges[a]):
                if b in comp:
                    ring.append(f'{a}->{b} ({sorted(edges[a][b])[0]})')
        problems.append(f'cycle among {" ".join(comp)}: ' + ', '.join(ring))
    for p in problems:
        print(p)
    nedges = sum(len(v) for v in edges.values())
    print(f'{len(mods)} modules, {nedges} module edges, '
          f'{len(problems)} problems')
    return 1 if problems else 0


def self_test():
    """The checker itself: a clean tree passes, each kind of breach fails."""
    doc = ('<!-- layers -->\n| 0 | leaves | low |\n| 1 | upper | mid high |\n'
           '<!-- /layers -->\n')
    cases = {
        'clean': ({'low.c': '', 'mid.c': '#include "low.h"\n',
                   'high.c': '#include "mid.h"\n'}, doc, 0),
        'upward': ({'low.c': '#include "mid.h"\n', 'mid.c': '',
                    'high.c': ''}, doc, 1),
        'cycle': ({'low.c': '', 'mid.c': '#include "high.h"\n',
                   'high.c': '#include "mid.h"\n'}, doc, 1),
        'allowed': ({'low.c': '', 'mid.c': '#include "high.h"\n',
                     'high.c': '#include "mid.h"\n'},
                    doc + '<!-- allowed-cycle: mid high -->\n', 0),
        'unplaced': ({'low.c': '', 'mid.c': '', 'high.c': '',
                      'stray.c': ''}, doc, 1),
    }
    bad = 0
    for name, (files, text, want) in cases.items():
        with tempfile.TemporaryDirectory() as d:
            os.mkdir(os.path.join(d, 'src'))
            for f, body in files.items():
                with open(os.path.join(d, 'src', f), 'w') as fh:
                    fh.write(body)
                h = f[:-2] + '.h'
                with open(os.path.join(d, 'src', h), 'w') as fh:
                    fh.write('')
            with open(os.path.join(d, 'doc.md'), 'w') as fh:
                fh.write(text)
            got = check(os.path.join(d, 'doc.md'), os.path.join(d, 'src'),
                        None)
            if got != want:
                print(f'self-test {name}: got {got}, want {want}')
                bad += 1
    print('self-test:', 'FAILED' if bad else 'ok')
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--doc')
    ap.add_argument('--src')
    ap.add_argument('--lib')
    ap.add_argument('--self-test', action='store_true')
    a = ap.parse_args()
    if a.self_test:
        return self_test()
    if not a.doc or not a.src:
        ap.error('--doc and --src are needed')
    return check(a.doc, a.src, a.lib)


if __name__ == '__main__':
    sys.exit(main())
