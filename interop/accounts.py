"""Account DB scenarios of the interop suite (names `acct_*`).

Imported by driver.py (after containers.py); they register themselves in
harness.py's `scenario` registry (account_api.py adds the scenarios that
go through the account HTTP API). The cluster's nodes each run an account
server besides the container server (Swift's `swift-account-server` or
`rowsync server --kind account` with an account-server.conf) on their own
port, with an account ring of the same device triples as the container
ring and one rsync module per node, `account_<port>`. DBs are made with
Swift's own `AccountBroker`; a row of an account DB is a container: (name,
put_timestamp, delete_timestamp, object_count, bytes_used, deleted,
storage_policy_index).

Swift's account merge (AccountBroker.merge_items) is not "newest row wins":
for a name both sides hold, the merged row keeps the newest put_timestamp
and the newest delete_timestamp, but the object_count, bytes_used and policy
of the row being merged in, whatever its age; `deleted` is recomputed. The
result therefore depends on who merges into whom: usync merges the sender's
rows into the peer's DB, rsync_then_merge merges the peer's rows into the
sender's shipped DB. The oracle is a scratch Swift AccountBroker merging the
same rows in the same order, and the [swift->swift] control shows that Swift
itself ends where the oracle says.
"""

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess

from cluster import account_server_conf_text
from harness import (Ctx, Fail, check, scenario, ts, ODD_NAMES,
                     _compare_answer)

ACCT_PREFIX = 'AUTH_acct'
AROW_KEYS = ('name', 'put_timestamp', 'delete_timestamp', 'object_count',
             'bytes_used', 'deleted', 'storage_policy_index')


# ------------------------------------------------------------------- rows

def arow(name, put_t, delete_t=None, objects=None, nbytes=None, spi=0,
         delete_ts=None):
    """An account row (a container) as put_container makes it: deleted when
    the delete timestamp is newer than the put and there are no objects.
    `delete_ts` gives the stored delete_timestamp string as is."""
    from swift.common.utils import Timestamp
    put = ts(put_t)
    dele = delete_ts if delete_ts is not None else (
        ts(delete_t) if delete_t is not None else '0')
    gone = Timestamp(dele) > Timestamp(put)
    if objects is None:
        objects = 0 if gone else len(name) * 3 % 17 + 1
    if nbytes is None:
        nbytes = 0 if gone else objects * 1000 + len(name)
    return {'name': name, 'put_timestamp': put, 'delete_timestamp': dele,
            'object_count': objects, 'bytes_used': nbytes,
            'deleted': int(gone and objects == 0),
            'storage_policy_index': spi}


def anorm(r):
    r = dict(r)
    r.setdefault('storage_policy_index', 0)
    return tuple(r[k] for k in AROW_KEYS)


def by_name(rows):
    return {r['name']: r for r in rows}


def chexor_acct(rows):
    """The account DB hash as Swift's container_insert trigger keeps it:
    XOR of md5('<name>-<put>-<delete>-<objects>-<bytes>')."""
    h = 0
    for r in rows:
        h ^= int(hashlib.md5(('%s-%s-%s-%s-%s' % (
            r['name'], r['put_timestamp'], r['delete_timestamp'],
            r['object_count'], r['bytes_used'])).encode('utf8')).hexdigest(),
            16)
    return '%032x' % h


def policy_stats_of(rows):
    out = {}
    for r in rows:
        s = out.setdefault(r.get('storage_policy_index', 0), {
            'container_count': 0, 'object_count': 0, 'bytes_used': 0})
        s['container_count'] += 1 - r['deleted']
        s['object_count'] += r['object_count']
        s['bytes_used'] += r['bytes_used']
    return out


def nonzero(stats):
    """Policy stats without all-zero entries (policy_stat rows stay after
    their last container moved or went)."""
    return {k: dict(v) for k, v in stats.items() if any(v.values())}


# ---------------------------------------------------------------- context

class AcctCtx(Ctx):
    """Ctx for account DBs: the account ring, `<dev>/accounts`, Swift's
    AccountBroker, `[account-replicator]` and account.recon."""

    server_type = 'account'

    def __init__(self, cluster, used_parts, log):
        Ctx.__init__(self, cluster, used_parts, log)
        check(cluster.has_accounts, 'the cluster has no account servers '
              '(set up with --bench?)')

    def conf_text(self, nd, overrides):
        return account_server_conf_text(nd, self.cl.swift_dir,
                                        self.cl.rsync_port, overrides)

    def db_path(self, node, part, hsh):
        return os.path.join(node.devices, node.device, 'accounts', str(part),
                            hsh[-3:], hsh, hsh + '.db')

    def place(self, scen, kinds):
        """An account whose partition (account ring) is not yet used and
        whose primaries have the kinds given. Returns (account, part, hash,
        [nodes in `kinds` order])."""
        from collections import Counter
        from swift.common.utils import hash_path
        want = Counter(kinds)
        for i in range(100000):
            acct = '%s-%s-%d' % (ACCT_PREFIX, scen, i)
            part, devs = self.cl.account_ring.get_nodes(acct)
            if part in self.used_parts or any(
                    os.path.isdir(os.path.join(n.devices, n.device,
                                               'accounts', str(part)))
                    for n in self.cl.nodes):
                continue
            nodes = [self.cl.by_account_port(d['port']) for d in devs]
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
            return acct, part, hash_path(acct), ordered
        raise Fail('no account partition with primaries of kinds %s'
                   % (kinds,))

    def broker(self, node, part, hsh, acct=None):
        from swift.account.backend import AccountBroker
        return AccountBroker(self.db_path(node, part, hsh), account=acct)

    def make_db(self, node, part, hsh, acct, put_t, rows=(), metadata=None,
                delete_t=None, pending=()):
        """An account DB made by Swift's broker: `rows` merged (committed),
        `pending` put with put_container and left in the .pending file."""
        b = self.broker(node, part, hsh, acct)
        b.initialize(ts(put_t))
        if rows:
            b.merge_items([dict(r) for r in rows])
        for r in pending:
            b.put_container(r['name'], r['put_timestamp'],
                            r['delete_timestamp'], r['object_count'],
                            r['bytes_used'], r['storage_policy_index'])
        if metadata:
            b.update_metadata({k: (v, ts(t)) for k, (v, t) in
                               metadata.items()})
        if delete_t is not None:
            b.delete_db(ts(delete_t))
        return b

    def state(self, node, part, hsh):
        path = self.db_path(node, part, hsh)
        if not os.path.exists(path):
            return None
        b = self.broker(node, part, hsh)
        info = b.get_info()
        rows = []
        for r in b.get_items_since(-1, 1000000):
            r = dict(r)
            r.pop('ROWID', None)
            rows.append(r)
        return {
            'info': info,
            'repl_info': dict(b.get_replication_info()),
            'policy_stats': b.get_policy_stats(),
            'rows': sorted(rows, key=lambda r: r['name']),
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
        """The node's account DB holds exactly `rows` (read with Swift's
        AccountBroker), with the container count, object count, bytes,
        per-policy stats and hash that follow from them."""
        label = label or node.name
        st = self.state(node, part, hsh)
        check(st is not None, '%s (%s) has no account DB at %s', label,
              node.kind, self.db_path(node, part, hsh))
        got = [anorm(r) for r in st['rows']]
        want = [anorm(r) for r in sorted(rows, key=lambda r: r['name'])]
        if got != want:
            gd, wd = set(got) - set(want), set(want) - set(got)
            raise Fail('%s (%s) rows differ: %d rows, want %d; unexpected '
                       '%s; missing %s' % (label, node.kind, len(got),
                                           len(want), sorted(gd)[:3],
                                           sorted(wd)[:3]))
        if node.kind == 'rowsync':
            c = sqlite3.connect('file:%s?mode=ro' % st['path'], uri=True)
            try:
                ic = c.execute('PRAGMA integrity_check').fetchall()
            finally:
                c.close()
            check(ic == [('ok',)], '%s (%s) integrity_check: %s', label,
                  node.kind, ic[:3])
        info = st['info']
        derived = {
            'container_count': sum(1 - r['deleted'] for r in rows),
            'object_count': sum(r['object_count'] for r in rows),
            'bytes_used': sum(r['bytes_used'] for r in rows),
            'hash': chexor_acct(rows),
        }
        for k, v in derived.items():
            check(info[k] == v, '%s (%s) %s %s, want %s', label, node.kind,
                  k, info[k], v)
        ps = nonzero(st['policy_stats'])
        check(ps == nonzero(policy_stats_of(rows)),
              '%s (%s) policy stats %s, want %s', label, node.kind, ps,
              nonzero(policy_stats_of(rows)))
        return st

    def swift_merge(self, *row_sources):
        """What Swift's merge gives: a scratch AccountBroker merging each
        source's rows in order (as merge_items does during replication).
        Returns (rows, get_info(), get_policy_stats())."""
        from swift.account.backend import AccountBroker
        self.cl._conf_serial += 1
        d = os.path.join(self.cl.root, 'oracle', 'acct-%d'
                         % self.cl._conf_serial)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        b = AccountBroker(os.path.join(d, 'oracle.db'),
                          account=ACCT_PREFIX + '-oracle')
        b.initialize(ts(self.t0))
        for rows in row_sources:
            b.merge_items([{k: r[k] for k in AROW_KEYS} for r in rows])
        out = []
        for r in b.get_items_since(-1, 1000000):
            r = dict(r)
            r.pop('ROWID', None)
            out.append(r)
        return (sorted(out, key=lambda r: r['name']), b.get_info(),
                b.get_policy_stats())

    def rows_of(self, node, part, hsh):
        return self.state(node, part, hsh)['rows']

    def replicate_call(self, node, part, hsh, body, timeout=10):
        """REPLICATE by hand, to the node's account server."""
        import http.client
        c = http.client.HTTPConnection('127.0.0.1', node.account_port,
                                       timeout=timeout)
        try:
            c.request('REPLICATE', '/%s/%s/%s' % (node.device, part, hsh),
                      body=json.dumps(body),
                      headers={'Content-Type': 'application/json'})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()


def acct_scenario(name, **kw):
    """`scenario` for AcctCtx scenarios."""
    def reg(fn):
        fn.ctx_class = AcctCtx
        return scenario(name, **kw)(fn)
    return reg


def tmp_empty(node):
    d = os.path.join(node.devices, node.device, 'tmp')
    return not os.path.isdir(d) or not os.listdir(d)


# -------------------------------------------------------------- scenarios

@acct_scenario('acct_missing_replica')
def sc_acct_missing(ctx, sk, rk):
    """Both peers lack the account DB: the sender ships it whole (rsync,
    complete_rsync); the copies are re-id'd with the incoming point at the
    sender's max_row, readable by swift-account-info; pass 2 no_change."""
    acct, part, hsh, (snd, r1, r2) = ctx.place('missing', (sk, rk, rk))
    t = ctx.t0
    rows = [arow('cont-%03d' % i, t + i, spi=int(i % 5 == 0))
            for i in range(20)]
    rows += [arow('gone-%d' % i, t + 5 + i, delete_t=t + 30 + i)
             for i in range(2)]
    rows.append(arow('zero-delete-ts', t + 40,
                     delete_ts='0000000000.00000'))
    ctx.make_db(snd, part, hsh, acct, t, rows,
                metadata={'X-Account-Meta-Color': ('blue', t + 1)})
    sst = ctx.state(snd, part, hsh)
    st = ctx.replicate(snd, part)
    ctx.expect_stats(st, 'pass 1', rsync=2, diff=0, remote_merge=0,
                     success=2)
    ids = set()
    for r in (r1, r2):
        rst = ctx.expect_rows(r, part, hsh, rows)
        check(rst['info']['id'] != sst['info']['id'],
              '%s kept the sender id %s (no newid)', r.name,
              rst['info']['id'])
        ids.add(rst['info']['id'])
        check(rst['incoming'].get(sst['info']['id']) == sst['max_row'],
              '%s incoming sync for the sender %s, want %d (newid)', r.name,
              rst['incoming'].get(sst['info']['id']), sst['max_row'])
        check(rst['metadata'] == sst['metadata'], '%s metadata %s, want %s',
              r.name, rst['metadata'], sst['metadata'])
        check(tmp_empty(r), '%s tmp dir not empty', r.name)
    check(len(ids) == 2, 'the two copies share an id: %s', ids)
    rst = ctx.state(r1, part, hsh)
    rc, out = ctx.swift_info_cli(rst['path'])
    check(rc == 0 and 'Account: %s' % acct in out and
          'Container Count: %d' % rst['info']['container_count'] in out,
          'swift-account-info on %s (%s) exit %d: %s', r1.name, r1.kind, rc,
          out[-500:])
    ctx.expect_same_db_info(part, hsh, [snd, r1, r2])
    st = ctx.replicate(snd, part)
    ctx.expect_stats(st, 'pass 2', no_change=2, rsync=0, diff=0)


@acct_scenario('acct_gap_10pct')
def sc_acct_gap10(ctx, sk, rk):
    """The peers miss 10% of 250 containers: usync in merge_items batches
    of per_diff=50, then merge_syncs. A container deleted later on the
    sender, a size of 2^53+1, odd names, two policies, and a name whose
    peer row has the newer put but the sender's counts: Swift's merge keeps
    the newer timestamps with the counts of the row merged in."""
    acct, part, hsh, (snd, r1, r2) = ctx.place('gap10', (sk, rk, rk))
    t = ctx.t0
    srows = [arow(ODD_NAMES[i] if i < len(ODD_NAMES) else 'cont-%03d' % i,
                  t + i, spi=int(i % 7 == 0)) for i in range(250)]
    srows[33] = arow('cont-033', t + 33, delete_t=t + 300)
    srows[40] = arow('cont-040', t + 40, objects=7, nbytes=700)
    srows[45] = arow('cont-045', t + 45, objects=3, nbytes=2 ** 53 + 1)
    peer_own = {'cont-033': arow('cont-033', t + 33, objects=4),
                'cont-040': arow('cont-040', t + 41, objects=9, nbytes=900)}
    rrows = [peer_own.get(r['name'], r) for i, r in enumerate(srows)
             if i % 10 != 5]
    ctx.make_db(snd, part, hsh, acct, t, srows)
    for r in (r1, r2):
        ctx.make_db(r, part, hsh, acct, t, rrows)
    sst = ctx.state(snd, part, hsh)
    want, _, _ = ctx.swift_merge(ctx.rows_of(r1, part, hsh), sst['rows'])
    w = by_name(want)
    check(w['cont-040']['object_count'] == 7 and
          w['cont-040']['put_timestamp'] == ts(t + 41) and
          w['cont-033']['deleted'] == 1, 'model broken: %s %s',
          w['cont-040'], w['cont-033'])
    st = ctx.replicate(snd, part, {'per_diff': '50'})  # 5 batches each
    ctx.expect_stats(st, 'pass 1', diff=2, diff_capped=0, rsync=0,
                     remote_merge=0, success=2)
    for r in (r1, r2):
        rst = ctx.expect_rows(r, part, hsh, want)
        check(rst['incoming'].get(sst['info']['id']) == sst['max_row'],
              '%s incoming sync for the sender %s, want %d', r.name,
              rst['incoming'].get(sst['info']['id']), sst['max_row'])
    ctx.expect_rows(snd, part, hsh, srows, 'sender')
    states = ctx.expect_same_db_info(part, hsh, [snd, r1, r2])
    out = states[snd.name]['outgoing']
    for r in (r1, r2):
        rid = states[r.name]['info']['id']
        check(out.get(rid) == sst['max_row'],
              'sender outgoing sync for %s is %s, want %d', r.name,
              out.get(rid), sst['max_row'])
    st = ctx.replicate(snd, part, {'per_diff': '50'})
    ctx.expect_stats(st, 'pass 2', no_change=2, diff=0)


@acct_scenario('acct_gap_90pct')
def sc_acct_gap90(ctx, sk, rk):
    """The peers hold 10% of 4000 containers plus rows of their own: the
    50% rule ships the DB and each peer merges its rows into it
    (rsync_then_merge), so here the peer's counts win for names both hold;
    the peers keep their rows and metadata."""
    acct, part, hsh, (snd, r1, r2) = ctx.place('gap90', (sk, rk, rk))
    t = ctx.t0
    # Swift gives rsync_then_merge count/2000 s: 4000 containers make 2 s.
    srows = [arow('cont-%04d' % i, t + i * 0.01, spi=int(i % 3 == 0))
             for i in range(4000)]
    rrows = srows[:400] + [arow('peer-only', t + 500, spi=1)]
    rrows[5] = arow('cont-0005', t + 501, objects=1, nbytes=1)
    rrows[7] = arow('cont-0007', t + 0.07, delete_t=t + 502)
    rrows[9] = arow('cont-0009', t + 0.05, objects=99, nbytes=9999)
    ctx.make_db(snd, part, hsh, acct, t, srows,
                metadata={'X-Account-Meta-Sender': ('s', t + 1)})
    for r in (r1, r2):
        ctx.make_db(r, part, hsh, acct, t, rrows,
                    metadata={'X-Account-Meta-Peer': ('p', t + 2)})
    sst = ctx.state(snd, part, hsh)
    want, _, _ = ctx.swift_merge(sst['rows'], ctx.rows_of(r1, part, hsh))
    w = by_name(want)
    check(w['cont-0009']['object_count'] == 99 and
          w['cont-0009']['put_timestamp'] == ts(t + 0.09) and
          w['cont-0007']['deleted'] == 1, 'model broken: %s %s',
          w['cont-0009'], w['cont-0007'])
    st = ctx.replicate(snd, part, {'per_diff': '10'})
    ctx.expect_stats(st, 'pass 1', remote_merge=2, diff=0, rsync=0,
                     success=2)
    for r in (r1, r2):
        rst = ctx.expect_rows(r, part, hsh, want)
        check(rst['incoming'].get(sst['info']['id'], -1) >= sst['max_row'],
              '%s incoming sync for the sender %s, want >= %d', r.name,
              rst['incoming'].get(sst['info']['id']), sst['max_row'])
        check(tmp_empty(r), '%s tmp dir not empty', r.name)
    ctx.expect_rows(snd, part, hsh, srows, 'sender')
    states = ctx.expect_same_db_info(part, hsh, [snd, r1, r2])
    md = states[snd.name]['metadata']
    check(set(md) == {'X-Account-Meta-Sender', 'X-Account-Meta-Peer'},
          'metadata after the merge: %s', md)
    ids = {states[n.name]['info']['id'] for n in (snd, r1, r2)}
    check(len(ids) == 3, 'ids not distinct after rsync_then_merge: %s', ids)
    st = ctx.replicate(snd, part, {'per_diff': '10'})
    ctx.expect_stats(st, 'pass 2', no_change=2, diff=0, remote_merge=0)


@acct_scenario('acct_diff_capped')
def sc_acct_capped(ctx, sk, rk):
    """Swift's test_diff_capped_sync on account DBs: per_diff=10,
    max_diffs=3; 50 old containers + o101 against 100 newer ones. Pass 1 is
    capped and the peer's incoming point must be 30; pass 2 ends at 51."""
    acct, part, hsh, (snd, peer, third) = ctx.place('capped', (sk, rk, rk))
    t = ctx.t0
    srows = [arow('o%d' % i, t + 1 + i, objects=1, nbytes=10)
             for i in range(50)]
    srows.append(arow('o101', t + 151, objects=5, nbytes=50))
    prows = [arow('o%d' % i, t + 51 + i, objects=2, nbytes=20)
             for i in range(100)]
    ctx.make_db(snd, part, hsh, acct, t, srows)
    ctx.make_db(peer, part, hsh, acct, t, prows)
    sst = ctx.state(snd, part, hsh)
    check(sst['max_row'] == 51, 'sender max_row %s, want 51', sst['max_row'])
    want, _, _ = ctx.swift_merge(ctx.rows_of(peer, part, hsh), sst['rows'])
    w = by_name(want)
    check(len(want) == 101 and w['o3']['object_count'] == 1 and
          w['o3']['put_timestamp'] == ts(t + 54) and
          w['o77']['object_count'] == 2, 'model broken')
    conf = {'per_diff': '10', 'max_diffs': '3'}
    st = ctx.replicate(snd, part, conf)
    ctx.expect_stats(st, 'pass 1', diff=1, diff_capped=1, rsync=1,
                     remote_merge=0, failure=1)
    pst = ctx.state(peer, part, hsh)
    check(pst['incoming'].get(sst['info']['id']) == 30,
          'peer incoming sync for the sender after the capped pass: %s, '
          'want 30', pst['incoming'].get(sst['info']['id']))
    ctx.expect_rows(third, part, hsh, srows, 'third (rsynced)')
    st = ctx.replicate(snd, part, conf)
    ctx.expect_stats(st, 'pass 2', diff=1, diff_capped=0, no_change=1,
                     rsync=0)
    pst = ctx.expect_rows(peer, part, hsh, want, 'peer')
    check(pst['incoming'].get(sst['info']['id']) == 51,
          'peer incoming sync for the sender after pass 2: %s, want 51',
          pst['incoming'].get(sst['info']['id']))
    ctx.expect_rows(snd, part, hsh, srows, 'sender')


def _three_all_push(ctx, kinds):
    """Three replicas, each with containers of its own and shared names
    (equal counts, one node has the newest put; one name deleted on one
    node): every node runs its own replicator until all hold the same."""
    acct, part, hsh, nodes = ctx.place('three-' + ''.join(
        k[0] for k in kinds), kinds)
    t = ctx.t0
    sets = []
    for k, n in enumerate(nodes):
        rows = [arow('shared-%d' % i, t + i, objects=i + 1,
                     nbytes=100 * (i + 1)) for i in range(5)]
        rows[k] = arow('shared-%d' % k, t + 400 + k, objects=k + 1,
                       nbytes=100 * (k + 1))
        rows.append(arow('gone', t + 1, objects=0, nbytes=0,
                         delete_t=(t + 450 if k == 0 else None)))
        rows += [arow('%s-%02d' % (n.name, i), t + 50 * (k + 1) + i,
                      spi=k % 2) for i in range(12)]
        ctx.make_db(n, part, hsh, acct, t + k, rows)
        sets.append(ctx.rows_of(n, part, hsh))
    want, _, _ = ctx.swift_merge(*sets)
    back, _, _ = ctx.swift_merge(*reversed(sets))
    check([anorm(r) for r in want] == [anorm(r) for r in back] and
          by_name(want)['gone']['deleted'] == 1,
          'model broken: the merge depends on the order')
    for rnd in range(2):
        for n in nodes:
            st = ctx.replicate(n, part, {'per_diff': '5'})
            check(st.get('failure') == 0, 'round %d %s failures: %s', rnd,
                  n.name, st)
    for n in nodes:
        ctx.expect_rows(n, part, hsh, want)
    ctx.expect_same_db_info(part, hsh, nodes)
    for n in nodes:
        st = ctx.replicate(n, part, {'per_diff': '5'})
        ctx.expect_stats(st, '%s final pass' % n.name, no_change=2, diff=0,
                         rsync=0, remote_merge=0, success=2)


@acct_scenario('acct_three_all_push', pairs=(('mixed', 'mixed'),),
               needs_rowsync_replicator=True)
def sc_acct_three_mixed(ctx, sk, rk):
    _three_all_push(ctx, ('swift', 'rowsync', 'rowsync'))


@acct_scenario('acct_three_all_push', pairs=(('swift', 'swift'),))
def sc_acct_three_swift(ctx, sk, rk):
    _three_all_push(ctx, ('swift', 'swift', 'swift'))


def _status(ctx, n, part, hsh):
    with ctx.broker(n, part, hsh).get() as conn:
        return conn.execute('SELECT status FROM account_stat').fetchone()[0]


@acct_scenario('acct_delete_flows_back')
def sc_acct_delete_back(ctx, sk, rk):
    """The peers deleted the account (DELETE: status DELETED) after the
    sender's PUT. Unlike the container replicator, Swift's account
    replicator does not merge the peer's timestamps from the `sync` answer
    into its own DB: after the sender's pass its delete_timestamp is
    unchanged. The delete reaches it when a peer pushes (the receiver's
    `sync` merges the timestamps sent). An account is deleted when its
    status says so, or when it lists no containers and the delete is newer
    than the put: so the empty sender becomes deleted (status column still
    empty, status_changed_at moves on), while a sender that lists
    containers takes the timestamp and stays live. The peers, given the
    sender's containers, stay deleted."""
    t = ctx.t0
    problems = []
    for case in ('empty', 'with-containers'):
        acct, part, hsh, (snd, r1, r2) = ctx.place('delback-' + case,
                                                   (sk, rk, rk))
        rows = ([] if case == 'empty' else
                [arow('cont-%d' % i, t + 11 + i) for i in range(3)])
        # the peers first (an older created_at) and with a newer PUT: the
        # sender takes neither on its own pass
        for r in (r1, r2):
            ctx.make_db(r, part, hsh, acct, t + 12, delete_t=t + 20)
        ctx.make_db(snd, part, hsh, acct, t + 10, rows)
        before = ctx.state(snd, part, hsh)['info']
        st = ctx.replicate(snd, part)
        if case == 'empty':
            ctx.expect_stats(st, case, no_change=2, rsync=0, diff=0,
                             success=2)
        else:
            ctx.expect_stats(st, case, diff=2, rsync=0, success=2)
        s = ctx.state(snd, part, hsh)
        changed = ['%s %s -> %s' % (k, before[k], s['info'][k])
                   for k in ('created_at', 'put_timestamp',
                             'delete_timestamp', 'status_changed_at')
                   if s['info'][k] != before[k]]
        if changed or s['deleted']:
            problems.append('%s: the sender (%s) took the peers\' '
                            'timestamps on its own pass (Swift\'s account '
                            'replicator does not): %s%s' % (
                                case, snd.kind, ', '.join(changed),
                                '; now deleted' if s['deleted'] else ''))
        for r in (r1, r2):
            rs = ctx.expect_rows(r, part, hsh, rows)
            if not (rs['deleted'] and _status(ctx, r, part, hsh) == 'DELETED'
                    and rs['info']['delete_timestamp'] == ts(t + 20)):
                problems.append('%s: %s (%s) deleted %s status %r delete %s'
                                % (case, r.name, r.kind, rs['deleted'],
                                   _status(ctx, r, part, hsh),
                                   rs['info']['delete_timestamp']))
        # a peer pushes: now the sender learns the delete
        st = ctx.replicate(r1, part)
        ctx.expect_stats(st, '%s: %s pass' % (case, r1.name), rsync=0,
                         success=2)
        s = ctx.state(snd, part, hsh)
        want_del = case == 'empty'
        if not (s['info']['delete_timestamp'] == ts(t + 20) and
                s['info']['put_timestamp'] == ts(t + 12) and
                s['info']['created_at'] == ctx.state(
                    r1, part, hsh)['info']['created_at'] and
                s['deleted'] == want_del and
                _status(ctx, snd, part, hsh) == ''):
            problems.append('%s: after the push from %s, sender (%s) '
                            'put %s delete %s deleted %s status %r; want '
                            '%s, %s, %s, %r (and the peer\'s created_at)' % (
                                case, r1.name, snd.kind,
                                s['info']['put_timestamp'],
                                s['info']['delete_timestamp'], s['deleted'],
                                _status(ctx, snd, part, hsh), ts(t + 12),
                                ts(t + 20), want_del, ''))
        moved = s['info']['status_changed_at'] > ts(t + 20)
        if moved != want_del:
            problems.append('%s: sender (%s) status_changed_at %s (%s)' % (
                case, snd.kind, s['info']['status_changed_at'],
                'should have moved on' if want_del else 'should stay'))
    check(not problems, '; '.join(problems))


def _answer_matches_broker(ctx, n, part, hsh, label, pending_file=None):
    """A `sync` sent by hand with the DB's own timestamps and a foreign
    hash: the answer must be Swift's get_replication_info() of the file
    (read after the call), key by key and type by type, plus point=-1; no
    incoming sync is recorded for the probe."""
    b = ctx.broker(n, part, hsh)
    with b.get() as conn:
        stamps = conn.execute('SELECT created_at, put_timestamp, '
                              'delete_timestamp FROM account_stat'
                              ).fetchone()
    body = ['sync', 3, '0' * 32, 'interop-probe-id'] + list(stamps) + ['']
    status, data = ctx.replicate_call(n, part, hsh, body)
    check(status == 200, '%s: REPLICATE %s to %s (%s) -> %d %r', label,
          json.dumps(body), n.name, n.kind, status, data[:300])
    if pending_file:
        check(os.path.getsize(pending_file) == 0,
              '%s: %s (%s) did not commit .pending in sync', label, n.name,
              n.kind)
    info = dict(ctx.broker(n, part, hsh).get_replication_info())
    ans = json.loads(data)
    check(ans.get('point') == -1, '%s: point %r, want -1', label,
          ans.get('point'))
    _compare_answer('%s: sync answer of %s (%s) vs AccountBroker.'
                    'get_replication_info' % (label, n.name, n.kind), ans,
                    info, extra_ok=('point',))
    st = ctx.state(n, part, hsh)
    check('interop-probe-id' not in st['incoming'],
          '%s: incoming sync recorded for a non-matching hash: %s', label,
          st['incoming'])
    return info


@acct_scenario('acct_rowsync_db_read_by_swift', pairs=(('swift', 'rowsync'),))
def sc_acct_rowsync_db(ctx, sk, rk):
    """An account DB rowsync wrote (rsync_then_merge: rows merged by
    rowsync, its sync tables, new id) is opened by Swift: AccountBroker's
    rows, get_info, policy stats and replication info are those of Swift's
    own merge (and of rowsync's own `sync` answer for the file), and
    swift-account-info reads it. Then the file is moved onto a Swift node,
    whose account replicator serves it: it pushes the rowsync-written rows
    on to the other Swift replica."""
    acct, part, hsh, (s1, s2, r) = ctx.place('served', ('swift', 'swift',
                                                       'rowsync'))
    t = ctx.t0
    srows = [arow('cont-%04d' % i, t + i * 0.01, spi=int(i % 4 == 0))
             for i in range(4000)]
    rrows = srows[:400] + [arow('peer-only', t + 500, spi=1)]
    rrows[7] = arow('cont-0007', t + 0.07, delete_t=t + 502)
    rrows[9] = arow('cont-0009', t + 0.05, objects=99, nbytes=9999)
    ctx.make_db(s1, part, hsh, acct, t, srows,
                metadata={'X-Account-Meta-Sender': ('s', t + 1)})
    ctx.make_db(r, part, hsh, acct, t, rrows,
                metadata={'X-Account-Meta-Peer-\u2603': ('p', t + 2)})
    sst = ctx.state(s1, part, hsh)
    want, winfo, wps = ctx.swift_merge(sst['rows'], ctx.rows_of(r, part, hsh))
    st = ctx.replicate(s1, part, {'per_diff': '10'})
    ctx.expect_stats(st, 'pass 1', rsync=1, remote_merge=1, success=2)
    rst = ctx.expect_rows(r, part, hsh, want)
    for k in ('container_count', 'object_count', 'bytes_used', 'hash'):
        check(rst['info'][k] == winfo[k], 'Swift reads %s %r in rowsync\'s '
              'file, Swift\'s merge gives %r', k, rst['info'][k], winfo[k])
    for k in ('put_timestamp', 'delete_timestamp', 'created_at',
              'status_changed_at', 'account'):
        check(rst['info'][k] == sst['info'][k], 'Swift reads %s %r in '
              'rowsync\'s file, the sender has %r', k, rst['info'][k],
              sst['info'][k])
    check(nonzero(rst['policy_stats']) == nonzero(wps),
          'policy stats in rowsync\'s file %s, Swift\'s merge %s',
          rst['policy_stats'], wps)
    check(rst['repl_info']['max_row'] == rst['max_row'] and
          rst['repl_info']['count'] == winfo['container_count'],
          'replication info %s', rst['repl_info'])
    _answer_matches_broker(ctx, r, part, hsh, 'rowsync-written file')
    rc, out = ctx.swift_info_cli(rst['path'])
    check(rc == 0 and 'Container Count: %d' % winfo['container_count'] in out
          and 'Chexor: %s' % winfo['hash'] in out,
          'swift-account-info on %s: exit %d: %s', rst['path'], rc,
          out[-500:])
    # s2's copy (from s1) is replaced by rowsync's file
    s2_path = ctx.db_path(s2, part, hsh)
    os.unlink(s2_path)
    shutil.copy2(rst['path'], s2_path)
    s1_rows = ctx.rows_of(s1, part, hsh)
    want1, _, _ = ctx.swift_merge(s1_rows, rst['rows'])
    st = ctx.replicate(s2, part, {'per_diff': '1000'})
    ctx.expect_stats(st, 's2 pass', diff=1, no_change=1, rsync=0,
                     success=2)
    ctx.expect_rows(s1, part, hsh, want1, 's1 after the push from s2')
    s1st = ctx.state(s1, part, hsh)
    check(s1st['incoming'].get(rst['info']['id']) == rst['max_row'],
          's1 incoming sync for the rowsync-made id %s, want %d',
          s1st['incoming'].get(rst['info']['id']), rst['max_row'])
    check(set(s1st['metadata']) == {'X-Account-Meta-Sender',
                                    'X-Account-Meta-Peer-\u2603'},
          's1 metadata %s', s1st['metadata'])


@acct_scenario('acct_sync_answer_is_broker_info',
               pairs=(('driver', 'rowsync'), ('driver', 'swift')))
def sc_acct_sync_answer(ctx, sk, node_kind):
    """Swift-made account DBs opened by the server: its `sync` answer must
    be what Swift's AccountBroker.get_replication_info() reads from the
    file. Variants: containers left in .pending; two policies, a tombstone
    and a 2^53+1 byte count; a deleted account."""
    t = ctx.t0
    for variant in ('pending', 'policies', 'deleted'):
        acct, part, hsh, (n,) = ctx.place('syncinfo-%s-%s'
                                          % (node_kind, variant),
                                          (node_kind,))
        rows = [arow('cont-%d' % i, t + i) for i in range(7)]
        rows.append(arow('tomb', t + 8, delete_t=t + 20))
        rows.append(arow('huge', t + 21, objects=2, nbytes=2 ** 53 + 1))
        late = []
        if variant == 'policies':
            for i, r in enumerate(rows):
                r['storage_policy_index'] = i % 2
        elif variant == 'deleted':
            rows = [arow('tomb', t + 8, delete_t=t + 20)]
        b = ctx.make_db(n, part, hsh, acct, t, rows, metadata={
            'X-Account-Meta-Color': ('blue', t + 3),
            'X-Account-Sysmeta-Thing': ('x', t + 4),
            'X-Account-Meta-Snow-\u2603': ('\u2603', t + 5)},
            delete_t=(t + 30 if variant == 'deleted' else None))
        if variant == 'pending':
            late = [arow('late-%d' % i, t + 30 + i, spi=1) for i in range(3)]
            for r in late:  # left in .pending: the answer includes them
                b.put_container(r['name'], r['put_timestamp'],
                                r['delete_timestamp'], r['object_count'],
                                r['bytes_used'], r['storage_policy_index'])
            check(os.path.getsize(b.pending_file) > 0,
                  'no pending rows written')
        _answer_matches_broker(ctx, n, part, hsh, variant,
                               pending_file=(b.pending_file if late
                                             else None))
        try:
            st = ctx.expect_rows(n, part, hsh, rows + late)
        except Fail as e:
            raise Fail('%s: %s' % (variant, e))
        check(st['deleted'] == (variant == 'deleted'), '%s: is_deleted %s',
              variant, st['deleted'])
        if node_kind == 'rowsync':
            _rowsync_info_matches(ctx, st, variant)


def _rowsync_info_matches(ctx, st, label):
    """`rowsync info --json` on a Swift-made account DB reports what
    Swift's broker reads (the keys of get_replication_info it shares)."""
    p = subprocess.run([ctx.cl.rowsync_bin, 'info', '--json', st['path']],
                       capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, '%s: rowsync info exit %d: %s', label,
          p.returncode, (p.stdout + p.stderr)[-500:])
    got = json.loads(p.stdout)
    ref = st['repl_info']
    bad = ['%s: %r, Swift reads %r' % (k, got.get(k), ref[k])
           for k in ('account', 'hash', 'id', 'count', 'object_count',
                     'bytes_used', 'put_timestamp', 'delete_timestamp',
                     'created_at', 'status_changed_at', 'max_row')
           if got.get(k) != ref[k]]
    ps = got.get('policy_stats')
    if isinstance(ps, dict):
        ps = {int(k): v for k, v in ps.items()}
    elif isinstance(ps, list):
        ps = {x.get('storage_policy_index'): {
            k: v for k, v in x.items() if k != 'storage_policy_index'}
            for x in ps}
    if ps != st['policy_stats']:
        bad.append('policy_stats: %r, Swift reads %r' % (
            got.get('policy_stats'), st['policy_stats']))
    check(not bad, '%s: rowsync info --json: %s', label, '; '.join(bad))
