"""What the scenarios are written with: row helpers, Fail/Skip/check, the
scenario context `Ctx` (placement, Swift brokers, replicator passes, the
checks), the rowsync replicator command line, the scenario registry and
`start_driver`.

The scenarios register themselves with `@scenario(...)` when their module
is imported: containers.py (container DBs), accounts.py and account_api.py
(account DBs, `acct_*`). driver.py imports them in that order, which is the
order `driver.py run` and `driver.py list` use.
"""

import hashlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import time

from cluster import (ACCOUNT, DRIVER, REPLICATOR_TIMEOUT, Cluster,
                     server_conf_text, use_swift_dir)


# ------------------------------------------------------------------- rows

def ts(t):
    from swift.common.utils import Timestamp
    return Timestamp(t).internal


def row(name, t, ctype='text/plain', deleted=0, size=None):
    """A container row as Swift's put_object sees it."""
    if deleted:
        return {'name': name, 'created_at': ts(t), 'size': 0,
                'content_type': 'application/deleted', 'etag': 'noetag',
                'deleted': 1}
    return {'name': name, 'created_at': ts(t),
            'size': len(name) * 7 if size is None else size,
            'content_type': ctype,
            'etag': hashlib.md5(('%s@%s' % (name, t)).encode()).hexdigest(),
            'deleted': 0}


ROW_KEYS = ('name', 'created_at', 'size', 'content_type', 'etag', 'deleted',
            'storage_policy_index')


def norm(r):
    r = dict(r)
    r.setdefault('storage_policy_index', 0)
    return tuple(r[k] for k in ROW_KEYS)


def merged(*row_lists):
    """Swift's merge result for plain (non-composite) timestamps: per name,
    the row with the newest created_at; on a tie the first seen stays."""
    out = {}
    for rows in row_lists:
        for r in rows:
            cur = out.get(r['name'])
            if cur is None or r['created_at'] > cur['created_at']:
                out[r['name']] = r
    return sorted(out.values(), key=lambda r: r['name'])


def chexor_rows(rows):
    h = 0
    for r in rows:
        h ^= int(hashlib.md5(('%s-%s' % (r['name'], r['created_at']))
                             .encode('utf8')).hexdigest(), 16)
    return '%032x' % h


def put_rows(broker, rows):
    for r in rows:
        broker.put_object(r['name'], r['created_at'], r['size'],
                          r['content_type'], r['etag'], deleted=r['deleted'],
                          storage_policy_index=r.get('storage_policy_index',
                                                     0),
                          ctype_timestamp=r.get('ctype_timestamp'),
                          meta_timestamp=r.get('meta_timestamp'))


# ---------------------------------------------------------------- results

class Fail(Exception):
    pass


class Skip(Exception):
    pass


def check(cond, msg, *a):
    if not cond:
        raise Fail(msg % a if a else msg)


# ---------------------------------------------------------------- context

class Ctx(object):
    """What a scenario works with: the cluster, one container placed on
    nodes of the wanted kinds, and helpers to make and inspect DBs."""

    def __init__(self, cluster, used_parts, log):
        self.cl = cluster
        self.used_parts = used_parts
        self.log = log
        self.t0 = time.time() - 20000  # row timestamps: recent, not reclaimable
        self.logdir = os.path.join(cluster.root, 'logs')
        self.log_offsets = {f: os.path.getsize(os.path.join(self.logdir, f))
                            for f in os.listdir(self.logdir)}

    # Lines that mean something went wrong even when the stats look fine:
    # Swift's ERROR lines and tracebacks (replicator and server), rowsync's
    # ERROR and WARN lines.
    LOG_TROUBLE = (' ERROR ', 'Traceback', ' WARN ', ' WARNING ', 'STDERR:')

    def log_trouble(self, allow=()):
        found = []
        for f in sorted(os.listdir(self.logdir)):
            if f in ('driver.log', 'rsyncd.log'):
                continue
            path = os.path.join(self.logdir, f)
            with open(path, errors='replace') as fh:
                fh.seek(self.log_offsets.get(f, 0))
                for line in fh:
                    if any(t in line for t in self.LOG_TROUBLE) and \
                            not any(a in line for a in allow):
                        found.append('%s: %s' % (f, line.strip()[:400]))
        return found

    # ---- placement
    def place(self, scen, kinds):
        """A container whose partition is not yet used and whose primaries
        have the kinds given (a multiset; with fewer kinds than replicas,
        among the primaries). Returns (container, part, hash, [nodes in
        `kinds` order])."""
        from collections import Counter
        from swift.common.utils import hash_path
        want = Counter(kinds)
        for i in range(100000):
            cont = '%s-%d' % (scen, i)
            part, devs = self.cl.ring.get_nodes(ACCOUNT, cont)
            if part in self.used_parts or any(
                    os.path.isdir(os.path.join(n.devices, n.device,
                                               'containers', str(part)))
                    for n in self.cl.nodes):
                continue  # in use (e.g. by Swift's reconciler containers)
            nodes = [self.cl.by_port(d['port']) for d in devs]
            have = Counter(n.kind for n in nodes)
            if (have != want if len(kinds) == len(nodes)
                    else want - have):
                continue
            self.used_parts.add(part)
            ordered, left = [], list(nodes)
            for k in kinds:
                n = [x for x in left if x.kind == k][0]
                left.remove(n)
                ordered.append(n)
            return cont, part, hash_path(ACCOUNT, cont), ordered
        raise Fail('no partition with primaries of kinds %s' % (kinds,))

    # ---- brokers
    def broker(self, node, part, hsh, cont=None):
        from swift.container.backend import ContainerBroker
        return ContainerBroker(node.db_path(part, hsh), account=ACCOUNT,
                               container=cont)

    def make_db(self, node, part, hsh, cont, put_t, rows=(), metadata=None,
                delete_t=None, pending=(), shard_ranges=(), policy=0):
        """Creates a DB with Swift's broker (on any node: rowsync reads
        Swift-made files). `rows` are committed; `pending` rows are left in
        the .pending file, as a busy Swift server leaves them."""
        b = self.broker(node, part, hsh, cont)
        b.initialize(ts(put_t), policy)
        put_rows(b, rows)
        b._commit_puts()
        put_rows(b, pending)
        if shard_ranges:
            b.merge_shard_ranges(list(shard_ranges))
        if metadata:
            b.update_metadata({k: (v, ts(t)) for k, (v, t) in
                               metadata.items()})
        if delete_t is not None:
            b.delete_db(ts(delete_t))
        return b

    def state(self, node, part, hsh):
        """Everything we compare, read with Swift's broker. None if no DB."""
        path = node.db_path(part, hsh)
        if not os.path.exists(path):
            return None
        b = self.broker(node, part, hsh)
        info = b.get_info()
        rows = b.get_items_since(-1, 1000000)
        return {
            'info': info,
            'rows': sorted((dict(r) for r in rows), key=lambda r: r['name']),
            'max_row': b.get_max_row(),
            'metadata': {k: v for k, v in b.metadata.items()},
            'incoming': {s['remote_id']: s['sync_point']
                         for s in b.get_syncs(incoming=True)},
            'outgoing': {s['remote_id']: s['sync_point']
                         for s in b.get_syncs(incoming=False)},
            'deleted': b.is_deleted(),
            'path': path,
        }

    def expect_rows(self, node, part, hsh, rows, label=None):
        """The node's DB holds exactly `rows`, with the count, bytes and hash
        that follow from them."""
        label = label or node.name
        st = self.state(node, part, hsh)
        check(st is not None, '%s (%s) has no DB at %s', label, node.kind,
              node.db_path(part, hsh))
        got = [norm(r) for r in st['rows']]
        want = [norm(r) for r in sorted(rows, key=lambda r: r['name'])]
        if got != want:
            gd, wd = set(got) - set(want), set(want) - set(got)
            raise Fail('%s (%s) rows differ: %d rows, want %d; unexpected %s; '
                       'missing %s' % (label, node.kind, len(got), len(want),
                                       sorted(gd)[:3], sorted(wd)[:3]))
        live = [r for r in rows if not r['deleted']]
        info = st['info']
        if node.kind == 'rowsync':
            import sqlite3
            c = sqlite3.connect('file:%s?mode=ro' % st['path'], uri=True)
            try:
                ic = c.execute('PRAGMA integrity_check').fetchall()
            finally:
                c.close()
            check(ic == [('ok',)], '%s (%s) integrity_check: %s', label,
                  node.kind, ic[:3])
        check(info['object_count'] == len(live),
              '%s (%s) object_count %s, want %d', label, node.kind,
              info['object_count'], len(live))
        check(info['bytes_used'] == sum(r['size'] for r in live),
              '%s (%s) bytes_used %s, want %d', label, node.kind,
              info['bytes_used'], sum(r['size'] for r in live))
        check(info['hash'] == chexor_rows(rows),
              '%s (%s) hash %s, want %s (chexor of its rows)', label,
              node.kind, info['hash'], chexor_rows(rows))
        return st

    def expect_same_db_info(self, part, hsh, nodes):
        """After a push the DB timestamps and metadata agree on both ends."""
        states = [(n, self.state(n, part, hsh)) for n in nodes]
        ref_n, ref = states[0]
        for n, st in states[1:]:
            for k in ('created_at', 'put_timestamp', 'delete_timestamp'):
                check(st['info'][k] == ref['info'][k],
                      '%s %s %s != %s %s %s', n.name, k, st['info'][k],
                      ref_n.name, k, ref['info'][k])
            check(st['metadata'] == ref['metadata'],
                  '%s metadata %s != %s metadata %s', n.name, st['metadata'],
                  ref_n.name, ref['metadata'])
            check(st['deleted'] == ref['deleted'],
                  '%s is_deleted %s != %s is_deleted %s', n.name,
                  st['deleted'], ref_n.name, ref['deleted'])
        return dict((n.name, st) for n, st in states)

    def swift_oracle(self, part, hsh, cont, *row_sources):
        """What a Swift receiver would hold: a scratch Swift broker that
        merges each source's rows (as get_items_since gives them) in order,
        as merge_items does during replication."""
        from swift.container.backend import ContainerBroker
        d = os.path.join(self.cl.root, 'oracle', '%d-%s' % (part, hsh))
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        b = ContainerBroker(os.path.join(d, hsh + '.db'), account=ACCOUNT,
                            container=cont)
        b.initialize(ts(self.t0), 0)
        for rows in row_sources:
            b.merge_items([dict(r) for r in rows])
        return sorted((dict(r) for r in b.get_items_since(-1, 1000000)),
                      key=lambda r: r['name']), b.get_info()

    # ---- replicators
    # the DB kind: Swift's `server_type` (tool names, recon file, conf
    # section); AcctCtx (accounts.py) says 'account'
    server_type = 'container'

    def conf_text(self, nd, overrides):
        return server_conf_text(nd, self.cl.swift_dir, self.cl.rsync_port,
                                overrides)

    def write_conf(self, node, overrides):
        self.cl._conf_serial += 1
        path = os.path.join(node.dir, '%sreplicator-%d.conf' % (
            '' if self.server_type == 'container' else
            self.server_type + '-', self.cl._conf_serial))
        nd = dict(node.__dict__)
        with open(path, 'w') as f:
            f.write(self.conf_text(nd, overrides))
        return path

    def replicate(self, node, part, overrides=None, two_policies=False,
                  timeout=REPLICATOR_TIMEOUT):
        """One replication pass of `node`'s replicator, limited to `part` on
        the node's device. Returns the pass's `replication_stats` from the
        node's recon cache. With `two_policies` the replicator reads a
        swift.conf defining policies 0 and 1 (same hash, same ring)."""
        conf = self.write_conf(node, overrides)
        swift_dir = self.cl.swift_dir
        if two_policies:
            swift_dir = os.path.join(self.cl.root, 'etc2')
        stype = self.server_type
        recon = os.path.join(node.dir, '%s.recon' % stype)
        if os.path.exists(recon):
            os.unlink(recon)
        if node.kind == 'swift':
            cmd = [sys.executable, DRIVER, 'swift',
                   swift_dir, '%s-replicator' % stype, conf, '--once',
                   '--partitions', str(part), '--devices', node.device]
        else:
            cmd = rowsync_replicator_cmd(self.cl, conf, part, node.device,
                                         os.path.join(swift_dir, 'swift.conf'))
            if cmd is None:
                raise Skip(ROWSYNC_REPLICATOR_MISSING)
        logf = os.path.join(self.cl.root, 'logs', '%s-%sreplicator.log' % (
            node.name, '' if stype == 'container' else stype + '-'))
        with open(logf, 'a') as lf:
            lf.write('\n=== %s\n' % ' '.join(cmd))
            lf.flush()
            start = time.time()
            try:
                p = subprocess.run(cmd, stdout=lf, stderr=subprocess.STDOUT,
                                   timeout=timeout)
            except subprocess.TimeoutExpired:
                raise Fail('%s replicator pass did not end within %ds (log %s)'
                           % (node.name, timeout, logf))
        wall = time.time() - start
        self.log('%s %s replicator (%s) exit %d in %.1fs' % (
            node.name, stype, node.kind, p.returncode, wall))
        check(p.returncode == 0, '%s replicator exited %d (log %s)',
              node.name, p.returncode, logf)
        check(os.path.exists(recon), '%s replicator wrote no %s', node.name,
              recon)
        with open(recon) as f:
            data = json.loads(f.readline())
        stats = data.get('replication_stats')
        check(isinstance(stats, dict), '%s: no replication_stats in %s',
              node.name, recon)
        # the pass's own time (recon `replication_time`) and the process's
        self.last_pass = {'time': float(data.get('replication_time', wall)),
                          'wall': wall}
        self.log('%s stats %s' % (node.name, json.dumps(
            {k: v for k, v in sorted(stats.items()) if v and k != 'start'})))
        return stats

    def expect_stats(self, stats, label, **want):
        """Exact values for the named stats; `failure` must be 0 unless
        named."""
        want.setdefault('failure', 0)
        bad = ['%s=%s (want %s)' % (k, stats.get(k), v)
               for k, v in sorted(want.items()) if stats.get(k) != v]
        check(not bad, '%s stats: %s; all: %s', label, ', '.join(bad),
              json.dumps({k: v for k, v in sorted(stats.items())
                          if v and k != 'start'}))

    # ---- REPLICATE by hand
    def replicate_call(self, node, part, hsh, body, timeout=10):
        c = http.client.HTTPConnection('127.0.0.1', node.port, timeout=timeout)
        try:
            data = json.dumps(body)
            c.request('REPLICATE', '/%s/%s/%s' % (node.device, part, hsh),
                      body=data, headers={'Content-Type': 'application/json'})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def swift_info_cli(self, db_path):
        """`swift-container-info` (`swift-account-info`) on a DB file:
        Swift's own reader."""
        p = subprocess.run(
            [sys.executable, DRIVER, 'swift',
             self.cl.swift_dir, '%s-info' % self.server_type, '--swift-dir',
             self.cl.swift_dir, db_path],
            capture_output=True, text=True, timeout=60)
        return p.returncode, p.stdout + p.stderr


ROWSYNC_REPLICATOR_MISSING = 'rowsync replicator not available'
_rowsync_repl_help = {}


def rowsync_replicator_help(cl):
    if cl.rowsync_bin not in _rowsync_repl_help:
        try:
            p = subprocess.run([cl.rowsync_bin, 'replicator', '--help'],
                               capture_output=True, text=True, timeout=30)
            _rowsync_repl_help[cl.rowsync_bin] = (
                p.stdout if p.returncode == 0 else None)
        except (OSError, subprocess.TimeoutExpired):
            _rowsync_repl_help[cl.rowsync_bin] = None
    return _rowsync_repl_help[cl.rowsync_bin]


def rowsync_replicator_cmd(cl, conf, part, device, swift_conf):
    """`rowsync replicator --config CONF --once`, with whichever of Swift's
    overrides the binary offers; None if there is no replicator."""
    help_text = rowsync_replicator_help(cl)
    if help_text is None:
        return None
    cmd = [cl.rowsync_bin, 'replicator', '--config', conf]
    if '--swift-conf' in help_text:
        cmd += ['--swift-conf', swift_conf]
    cmd.append('--once')
    if '--partitions' in help_text:
        cmd += ['--partitions', str(part)]
    if '--devices' in help_text:
        cmd += ['--devices', device]
    return cmd


# --------------------------------------------------------------- registry

SCENARIOS = []
# swift->swift is the control: it shows each expectation holds for Swift
# itself, so a failure of the same scenario with rowsync is rowsync's.
PAIRS = (('swift', 'rowsync'), ('rowsync', 'swift'), ('swift', 'swift'))


def scenario(name, pairs=PAIRS, needs_rowsync_replicator=None):
    """Registers `fn(ctx, sender_kind, receiver_kind)` once per pair, named
    `name[sender->receiver]`. A scenario that needs `rowsync replicator`
    (by default: a rowsync sender) is skipped when the binary lacks it."""
    def reg(fn):
        for s, r in pairs:
            needs = (s == 'rowsync' if needs_rowsync_replicator is None
                     else needs_rowsync_replicator)
            SCENARIOS.append(('%s[%s->%s]' % (name, s, r), fn, s, r, needs))
        return fn
    return reg


# ------------------------------------------------------- shared by scenarios

ODD_NAMES = ['snow-\u2603', 'quote"back\\slash', 'sp ace/and/slash',
             'emoji-\U0001f600', 'tab\tname', 'pct%20enc', 'amp&lt<gt>',
             '\u00e9t\u00e9', 'new\u2028line']


def _compare_answer(what, ans, ref, extra_ok=()):
    """Key by key and type by type (bool and int apart)."""
    bad = []
    for k, v in ref.items():
        if k not in ans:
            bad.append('%s missing' % k)
        elif ans[k] != v or type(ans[k]) is not type(v):
            bad.append('%s: %r, Swift reads %r' % (k, ans[k], v))
    extra = set(ans) - set(ref) - set(extra_ok)
    if extra:
        bad.append('unexpected keys %s' % sorted(extra))
    check(not bad, '%s: %s', what, '; '.join(bad))


# -------------------------------------------------------------- driver

def start_driver(args):
    """What `run` and `bench` start with: TERM handling, the cluster with
    its swift.conf in effect, and the driver's log (`logs/driver.log`,
    also printed with -v). Returns (cluster, log, log file)."""
    import signal
    # TERM (run.sh's cleanup) unwinds like Ctrl-C: subprocess.run then
    # kills the replicator pass it is waiting for.
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    cl = Cluster(args.root)
    use_swift_dir(cl.swift_dir)
    logf = open(os.path.join(cl.root, 'logs', 'driver.log'), 'a')

    def log(msg):
        logf.write('%s %s\n' % (time.strftime('%H:%M:%S'), msg))
        logf.flush()
        if args.verbose:
            print('  ' + msg, flush=True)

    return cl, log, logf
