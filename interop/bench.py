"""The side-by-side benchmark (`run.sh --bench`, `driver.py bench`): the
same workloads replicated once by Swift (Swift's replicator to Swift
servers) and once by rowsync (rowsync's replicator to rowsync servers).
See README.md, "The side-by-side benchmark".
"""

import hashlib
import json
import os
import platform
import subprocess
import time

from cluster import ACCOUNT, SWIFT_VERSION
from harness import (Ctx, Fail, check, chexor_rows, merged, start_driver,
                     ts)


# Swift's [container-replicator] defaults, but no rate limit on DBs per
# second (Swift's default of 50 would cap both at 50 DBs/s) and room for
# big batches on the wire. The same overrides go to both replicators.
BENCH_CONF = {'per_diff': '1000', 'max_diffs': '100', 'concurrency': '8',
              'databases_per_second': '0', 'node_timeout': '60',
              'conn_timeout': '5', 'log_level': 'INFO'}
BENCH_TIMEOUT = 1800  # seconds for one pass
BENCH_KINDS = ('swift', 'rowsync')


def bench_rows(n, t0, step=0.001, prefix='obj', ctype='text/plain'):
    """n rows, names in order, timestamps `step` apart."""
    from swift.common.utils import Timestamp
    out = []
    for i in range(n):
        name = '%s-%08d' % (prefix, i)
        out.append({'name': name, 'created_at': Timestamp(t0 + i * step)
                    .internal, 'size': 1000 + i % 977,
                    'content_type': ctype,
                    'etag': hashlib.md5(name.encode()).hexdigest(),
                    'deleted': 0, 'storage_policy_index': 0})
    return out


class Bench(object):
    """The workloads of `run.sh --bench`, each run once with a Swift sender
    (Swift replicator, Swift peers) and once with a rowsync sender (rowsync
    replicator, rowsync peers) on the same data."""

    def __init__(self, cl, scale, log):
        self.cl = cl
        self.scale = scale
        self.log = log
        self.ctx = Ctx(cl, set(), log)
        self.t0 = self.ctx.t0
        self._in_sync = {}

    def n(self, rows):
        return max(10, int(rows * self.scale))

    def make(self, node, part, hsh, cont, rows, sync_from=None):
        """A DB made by Swift's broker with `rows` merged in big batches;
        with `sync_from=(remote_id, point)` an incoming sync point."""
        b = self.ctx.broker(node, part, hsh, cont)
        b.initialize(ts(self.t0), 0)
        for i in range(0, len(rows), 20000):
            b.merge_items([dict(r) for r in rows[i:i + 20000]])
        if sync_from:
            b.merge_syncs([{'remote_id': sync_from[0],
                            'sync_point': sync_from[1]}])
        return b

    def info(self, node, part, hsh):
        b = self.ctx.broker(node, part, hsh)
        return b.get_info(), b.get_max_row()

    def expect(self, node, part, hsh, rows, label):
        """The peer holds what merging gives: count and hash."""
        path = node.db_path(part, hsh)
        check(os.path.exists(path), '%s: %s has no DB', label, node.name)
        info, _ = self.info(node, part, hsh)
        live = [r for r in rows if not r['deleted']]
        check(info['object_count'] == len(live),
              '%s: %s object_count %s, want %d', label, node.name,
              info['object_count'], len(live))
        check(info['hash'] == chexor_rows(rows), '%s: %s hash differs',
              label, node.name)

    def passes(self, node, part, overrides=None, upto=1):
        """Runs up to `upto` passes, stopping after the first that is not
        diff-capped. Returns (passes, seconds (recon), wall, last stats)."""
        conf = dict(BENCH_CONF, **(overrides or {}))
        secs = wall = 0.0
        for k in range(1, upto + 1):
            st = self.ctx.replicate(node, part, conf, timeout=BENCH_TIMEOUT)
            secs += self.ctx.last_pass['time']
            wall += self.ctx.last_pass['wall']
            if not st.get('diff_capped'):
                return k, secs, wall, st
        raise Fail('%s still diff-capped after %d passes' % (node.name, upto))

    # ---- the workloads: each returns (rows, passes, secs, wall, path)
    def missing(self, kind):
        n = self.n(100000)
        cont, part, hsh, (snd, p1, p2) = self.ctx.place(
            'b-missing-' + kind, (kind,) * 3)
        rows = bench_rows(n, self.t0)
        self.make(snd, part, hsh, cont, rows)
        k, secs, wall, st = self.passes(snd, part)
        self.ctx.expect_stats(st, 'missing', rsync=2, success=2)
        for p in (p1, p2):
            self.expect(p, part, hsh, rows, 'missing')
        return n, k, secs, wall, 'rsync x2'

    def gap(self, kind, have):
        """The peers hold the first `have` of the sender's rows and were in
        sync up to there (their incoming point for the sender)."""
        n = self.n(100000)
        label = 'gap%d' % round(100 * (1 - have))
        cont, part, hsh, (snd, p1, p2) = self.ctx.place(
            'b-%s-%s' % (label, kind), (kind,) * 3)
        rows = bench_rows(n, self.t0)
        sb = self.make(snd, part, hsh, cont, rows)
        sid = sb.get_info()['id']
        m = int(n * have)
        for p in (p1, p2):
            self.make(p, part, hsh, cont, rows[:m], sync_from=(sid, m))
        k, secs, wall, st = self.passes(snd, part)
        if have >= 0.5:
            self.ctx.expect_stats(st, label, diff=2, rsync=0,
                                  remote_merge=0, success=2)
            path = 'merge_items %d rows x2' % (n - m)
        else:
            self.ctx.expect_stats(st, label, remote_merge=2, diff=0,
                                  success=2)
            path = 'rsync_then_merge x2'
        for p in (p1, p2):
            self.expect(p, part, hsh, rows, label)
        return n, k, secs, wall, path

    def capped(self, kind):
        """The seed scenario at scale: the sender's rows are older than the
        peers' (but for the last tenth), so most batches change nothing on
        the peer; per_diff 1000 and max_diffs 10 cap each pass at 10,000
        rows, and the peers' incoming point must move on every batch."""
        n = self.n(30000)
        cont, part, hsh, (snd, p1, p2) = self.ctx.place(
            'b-capped-' + kind, (kind,) * 3)
        srows = bench_rows(n, self.t0, ctype='text/old')
        prows = bench_rows(n, self.t0 + 5000, ctype='text/new')
        tail = n - n // 10
        srows[tail:] = bench_rows(n, self.t0 + 10000,
                                  ctype='text/newest')[tail:]
        self.make(snd, part, hsh, cont, srows)
        for p in (p1, p2):
            self.make(p, part, hsh, cont, prows)
        per_diff = max(1, n // 30)  # 1000 at full size: 30 batches
        k, secs, wall, st = self.passes(
            snd, part, {'per_diff': str(per_diff), 'max_diffs': '10'},
            upto=10)
        self.ctx.expect_stats(st, 'capped (last pass)', diff=2, success=2)
        want = merged(srows, prows)
        for p in (p1, p2):
            self.expect(p, part, hsh, want, 'capped')
        return n, k, secs, wall, '%d batches x2, capped at 10 per pass' % (
            -(-n // per_diff))

    def in_sync(self, kind):
        """One pass over many small DBs that every replica already holds
        identically (after a first pass has recorded the sync points)."""
        from swift.common.utils import hash_path
        ndb = max(20, int(2000 * self.scale))
        ring = self.cl.ring
        parts = [p for p in range(ring.partition_count)
                 if p not in self.ctx.used_parts and
                 {self.cl.by_port(d['port']).kind
                  for d in ring.get_part_nodes(p)} == {kind}]
        check(parts, 'no free partition with only %s primaries', kind)
        # the sender: the node that is a primary of most of them; the DBs go
        # to the partitions it holds, so that its one pass sees them all
        from collections import Counter
        held = Counter(self.cl.by_port(d['port']).name for p in parts
                       for d in ring.get_part_nodes(p))
        snd = self.cl.node(held.most_common(1)[0][0])
        parts = [p for p in parts if snd.port in
                 {d['port'] for d in ring.get_part_nodes(p)}]
        self.ctx.used_parts.update(parts)
        pset = set(parts)
        rows = bench_rows(10, self.t0)
        made, i = [], 0
        while len(made) < ndb and i < 10000000:
            cont = 'b-insync-%s-%d' % (kind, i)
            i += 1
            part = ring.get_part(ACCOUNT, cont)
            if part not in pset:
                continue
            hsh = hash_path(ACCOUNT, cont)
            nodes = [self.cl.by_port(d['port'])
                     for d in ring.get_part_nodes(part)]
            for node in nodes:
                self.make(node, part, hsh, cont, rows)
            made.append((part, nodes))
        check(len(made) == ndb, 'placed only %d DBs', len(made))
        count = len(made)
        plist = ','.join(str(p) for p in sorted({p for p, _ in made}))
        # Every DB visited (rowsync's full_pass_interval = 0: Swift's
        # per-DB pass; Swift ignores the option).
        visit = {'full_pass_interval': '0'}
        self.passes(snd, plist, visit)  # first pass: records the sync points
        k, secs, wall, st = self.passes(snd, plist, visit)
        self.ctx.expect_stats(st, 'in-sync', no_change=2 * count,
                              success=2 * count, rsync=0, diff=0)
        self._in_sync[kind] = (snd, plist, count)
        return count, k, secs, wall, 'no_change x%d' % (2 * count)

    def unchanged(self, kind):
        """The same DBs once more, with each side's defaults: Swift visits
        every DB again; rowsync skips those unchanged since in sync with
        every (rowsync) peer, after one listing request per partition and
        peer. Needs `in_sync` first."""
        check(kind in self._in_sync, 'run the in-sync workload first')
        snd, plist, count = self._in_sync[kind]
        self.passes(snd, plist)  # settles the state with the defaults
        k, secs, wall, st = self.passes(snd, plist)
        if kind == 'swift':
            self.ctx.expect_stats(st, 'unchanged', no_change=2 * count,
                                  rsync=0, diff=0)
            path = 'no_change x%d' % (2 * count)
        else:
            self.ctx.expect_stats(st, 'unchanged', attempted=0, rsync=0,
                                  diff=0, no_change=0)
            path = '%d DBs skipped unopened' % count
        return count, k, secs, wall, path

    WORKLOADS = (
        ('missing DB (whole DB shipped)', 'missing', ()),
        ('10% gap (merge_items)', 'gap', (0.9,)),
        ('90% gap (rsync_then_merge)', 'gap', (0.1,)),
        ('diff-capped backlog', 'capped', ()),
        ('in-sync small DBs, one pass', 'in_sync', ()),
        ('nothing changed, defaults', 'unchanged', ()),
    )


def bench(args):
    cl, log, logf = start_driver(args)
    b = Bench(cl, args.scale, log)
    results = []
    for title, meth, extra in Bench.WORKLOADS:
        if args.only and not any(o in title or o == meth for o in args.only):
            continue
        res = {'workload': title}
        for kind in BENCH_KINDS:
            log('--- bench %s (%s)' % (title, kind))
            start = time.time()
            n, k, secs, wall, path = getattr(b, meth)(kind, *extra)
            res.update({'rows' if meth not in ('in_sync', 'unchanged')
                        else 'dbs': n,
                        kind: secs, kind + '_wall': wall,
                        kind + '_passes': k, kind + '_path': path})
            print('%-32s %-7s %8d %s: %d pass(es), %.2fs (process %.2fs)'
                  ' [%.0fs with setup]' % (title, kind, n,
                                           'DBs' if meth in ('in_sync',
                                                             'unchanged')
                                           else 'rows', k, secs, wall,
                                           time.time() - start), flush=True)
        results.append(res)
    logf.close()

    def cpu():
        try:
            with open('/proc/cpuinfo') as f:
                for line in f:
                    if line.startswith('model name'):
                        return line.split(':', 1)[1].strip()
        except OSError:
            pass
        return platform.processor() or '?'

    rv = subprocess.run([cl.rowsync_bin, '--version'], capture_output=True,
                        text=True, timeout=30).stdout.strip()
    head = ('%s; %d CPUs (%s); Linux %s; Python %s; Swift %s; %s; scale %g'
            % (time.strftime('%Y-%m-%d'), os.cpu_count() or 0, cpu(),
               platform.release(), platform.python_version(), SWIFT_VERSION,
               rv or 'rowsync', args.scale))
    lines = ['Machine: ' + head, '',
             '| workload | size | Swift s | rowsync s | speed-up | '
             'passes (Swift/rowsync) | path |',
             '|---|---:|---:|---:|---:|---|---|']
    for r in results:
        size = ('%d rows' % r['rows']) if 'rows' in r else '%d DBs' % r['dbs']
        sp = r['swift'] / r['rowsync'] if r['rowsync'] > 0 else float('inf')
        lines.append('| %s | %s | %.2f | %.2f | %.1fx | %d / %d | %s |' % (
            r['workload'], size, r['swift'], r['rowsync'], sp,
            r['swift_passes'], r['rowsync_passes'], r['rowsync_path']))
    table = '\n'.join(lines)
    print()
    print(table)
    with open(os.path.join(cl.root, 'bench.json'), 'w') as f:
        json.dump({'machine': head, 'results': results}, f, indent=2)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table + '\n')
    return 0

