"""The side-by-side benchmark (`run.sh --bench`, `driver.py bench`): the
same workloads replicated once by Swift (Swift's replicator to Swift
servers) and once by rowsync (rowsync's replicator to rowsync servers).
See README.md, "The side-by-side benchmark".
"""

import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
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
# (INTEROP_BENCH_KINDS=rowsync: one side only, to look into it)
BENCH_KINDS = tuple(k for k in os.environ.get(
    'INTEROP_BENCH_KINDS', 'swift,rowsync').split(',') if k)
# The PUT load of the `writes` workloads (as `rowsync bench writes`).
WRITES_WRITERS = 16
WRITES_SECONDS = 10.0
WRITES_TIMEOUT = 120  # seconds for the load to end once told to


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
        self.writes_results = []

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

    def put_load(self, url, tag, until_eof=False):
        """`rowsync bench put-load`: the same PUT load for both kinds (16
        writers). Without `until_eof` runs for WRITES_SECONDS and returns
        (figures, acknowledged names); with it runs until told to stop
        (`end_load`: the end of the pass) and returns the running process
        and its acked-names file."""
        acked = tempfile.NamedTemporaryFile(
            prefix='acked-', dir=self.cl.root, delete=False)
        acked.close()
        cmd = [self.cl.rowsync_bin, 'bench', 'put-load', '--url', url,
               '--writers', str(WRITES_WRITERS), '--tag', tag,
               '--acked', acked.name]
        if until_eof:
            cmd += ['--seconds', '0.001', '--until-eof']
        else:
            cmd += ['--seconds', str(self.writes_seconds())]
        if until_eof:
            p = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
            return p, acked.name
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, text=True)
        return self.end_load(p, acked.name)

    def end_load(self, p, acked):
        """Stops a load started with `until_eof` (closes its stdin) and
        returns (figures, acknowledged names)."""
        try:
            # (communicate closes stdin)
            out, _ = p.communicate(timeout=WRITES_TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise Fail('put-load did not end within %ds' % WRITES_TIMEOUT)
        check(p.returncode == 0, 'put-load exited %d', p.returncode)
        figures = json.loads(out.strip().splitlines()[-1])
        with open(acked) as f:
            names = [line.strip() for line in f if line.strip()]
        os.unlink(acked)
        return figures, names

    def writes_seconds(self):
        return max(2.0, WRITES_SECONDS * min(1.0, self.scale))

    def live_names(self, node, part, hsh):
        b = self.ctx.broker(node, part, hsh)
        b._commit_puts()
        with b.get() as conn:
            return {r[0] for r in conn.execute(
                'SELECT name FROM object WHERE deleted = 0')}

    def writes(self, kind, mode):
        """Object PUTs into a big container on a peer while the sender's
        pass replicates into it (as `rowsync bench writes`, on this
        cluster's servers): the sender holds n rows; peer 1 holds its own
        rows (usync: n, so every row goes as merge_items; rsync_then_merge:
        n/20, so the whole DB goes and peer 1 merges its rows in); peer 2
        already holds the sender's DB, in sync. WRITES_WRITERS clients PUT
        into peer 1 for WRITES_SECONDS with nothing else running, then
        for as long as the sender's pass runs (the replicator process).
        Then peer 1's passes send the new rows on, and every acknowledged
        PUT must be a live row on the sender and on peer 1."""
        n = self.n(300000)
        cont, part, hsh, (snd, p1, p2) = self.ctx.place(
            'b-writes-%s-%s' % (mode, kind), (kind,) * 3)
        sb = self.make(snd, part, hsh, cont, bench_rows(n, self.t0))
        sid = sb.get_info()['id']
        own = n if mode == 'usync' else max(1, n // 20)
        self.make(p1, part, hsh, cont,
                  bench_rows(own, self.t0 + 1, prefix='own'))
        path2 = p2.db_path(part, hsh)
        os.makedirs(os.path.dirname(path2), exist_ok=True)
        shutil.copyfile(snd.db_path(part, hsh), path2)
        self.ctx.broker(p2, part, hsh).newid(sid)
        url = 'http://127.0.0.1:%d/%s/%d/%s/%s' % (p1.port, p1.device, part,
                                                   ACCOUNT, cont)
        base, acked = self.put_load(url, 'base')
        p, acked_file = self.put_load(url, 'repl', until_eof=True)
        try:
            k, secs, wall, st = self.passes(
                snd, part, {'max_diffs': str(n // 1000 + 10)})
        finally:
            repl, more = self.end_load(p, acked_file)
        acked += more
        if mode == 'usync':
            self.ctx.expect_stats(st, 'writes usync', diff=1, success=2)
        else:
            self.ctx.expect_stats(st, 'writes rsync_then_merge',
                                  remote_merge=1, success=2)
        # peer 1's new rows go to the sender (and peer 2)
        self.passes(p1, part, {'max_diffs': str(3 * n // 1000 + 10)},
                    upto=10)
        lost = []
        for node in (snd, p1):
            have = self.live_names(node, part, hsh)
            lost.append(sum(1 for a in acked if a not in have))
        self.writes_results.append({
            'kind': kind, 'mode': mode, 'rows': n, 'pass': secs,
            'path': 'merge_items %d rows' % n if mode == 'usync'
            else 'rsync_then_merge', 'baseline': base, 'replicating': repl,
            'lost': lost})
        for label, ph in (('no replication', base),
                          ('while replicating', repl)):
            print('    %-18s %6d PUTs %4d errors  p50 %7.2f ms  p99 %7.2f ms'
                  '  max %7.2f ms' % (label, ph['puts'], ph['errors'],
                                      ph['p50_ms'], ph['p99_ms'],
                                      ph['max_ms']), flush=True)
        print('    slowest PUTs while replicating (sent at, ms): %s' % ', '.join(
            '%s %.0f' % (time.strftime('%H:%M:%S', time.gmtime(at))
                         + ('%.3f' % (at % 1))[1:], ms)
            for at, ms in repl.get('slowest', [])), flush=True)
        print('    acknowledged PUTs missing afterwards: %d on the sender, '
              '%d on peer 1' % tuple(lost), flush=True)
        return n, k, secs, wall, self.writes_results[-1]['path']

    WORKLOADS = (
        ('missing DB (whole DB shipped)', 'missing', ()),
        ('10% gap (merge_items)', 'gap', (0.9,)),
        ('90% gap (rsync_then_merge)', 'gap', (0.1,)),
        ('diff-capped backlog', 'capped', ()),
        # (before in_sync, which takes every partition left to its sender)
        ('PUTs during usync', 'writes', ('usync',)),
        ('PUTs during rsync_then_merge', 'writes', ('rsync_then_merge',)),
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
        sw, rs = r.get('swift', 0.0), r.get('rowsync', 0.0)
        sp = sw / rs if rs > 0 else float('inf')
        lines.append('| %s | %s | %.2f | %.2f | %.1fx | %d / %d | %s |' % (
            r['workload'], size, sw, rs, sp, r.get('swift_passes', 0),
            r.get('rowsync_passes', 0), r.get('rowsync_path', '')))
    if b.writes_results:
        lines += ['', 'Object PUTs (%d writers) into peer 1 while the sender '
                  'replicates into it:' % WRITES_WRITERS, '',
                  '| mode | replicator | phase | PUTs | errors | p50 ms | '
                  'p99 ms | max ms | p99 ratio | lost (sender / peer 1) |',
                  '|---|---|---|---:|---:|---:|---:|---:|---:|---|']
        for w in b.writes_results:
            base, repl = w['baseline'], w['replicating']
            ratio = repl['p99_ms'] / base['p99_ms'] if base['p99_ms'] else 0
            lines.append('| %s, %d rows | %s | no replication | %d | %d | '
                         '%.2f | %.2f | %.2f | | |' % (
                             w['mode'], w['rows'], w['kind'], base['puts'],
                             base['errors'], base['p50_ms'], base['p99_ms'],
                             base['max_ms']))
            lines.append('| | | while replicating (%.1f s pass) | %d | %d | '
                         '%.2f | %.2f | %.2f | %.2fx | %d / %d |' % (
                             w['pass'], repl['puts'], repl['errors'],
                             repl['p50_ms'], repl['p99_ms'], repl['max_ms'],
                             ratio, w['lost'][0], w['lost'][1]))
    table = '\n'.join(lines)
    print()
    print(table)
    with open(os.path.join(cl.root, 'bench.json'), 'w') as f:
        json.dump({'machine': head, 'results': results,
                   'writes': b.writes_results}, f, indent=2)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table + '\n')
    return 0

