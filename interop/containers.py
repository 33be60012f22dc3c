"""Container DB scenarios of the interop suite (every name not starting
with `acct_`): DBs made with Swift's ContainerBroker, pushed by one node's
replicator (Swift's or rowsync's), and every replica checked against
Swift's merge. See README.md, "What a scenario checks".
"""

import hashlib
import json
import os
import shutil

from harness import (ACCOUNT, ODD_NAMES, Fail, _compare_answer, check,
                     merged, norm, put_rows, row, scenario, ts)


# -------------------------------------------------------------- scenarios

@scenario('missing_replica')
def sc_missing_replica(ctx, sk, rk):
    """Both peers lack the DB: the sender ships it whole (rsync into
    <dev>/tmp, then complete_rsync); the copies are re-id'd, readable by
    Swift's tools, and a second pass finds nothing to do."""
    cont, part, hsh, (snd, r1, r2) = ctx.place('missing', (sk, rk, rk))
    t = ctx.t0
    rows = [row('obj-%03d' % i, t + i) for i in range(20)]
    rows += [row('gone-%d' % i, t + 30 + i, deleted=1) for i in range(2)]
    ctx.make_db(snd, part, hsh, cont, t, rows,
                metadata={'X-Container-Meta-Color': ('blue', t + 1)})
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
        rc, out = ctx.swift_info_cli(rst['path'])
        check(rc == 0 and 'Object Count: 20' in out and
              'Container: %s' % cont in out,
              'swift-container-info on %s (%s) exit %d: %s', r.name, r.kind,
              rc, out[-500:])
        check(not os.listdir(os.path.join(r.devices, r.device, 'tmp')),
              '%s tmp dir not empty: %s', r.name,
              os.listdir(os.path.join(r.devices, r.device, 'tmp')))
    check(len(ids) == 2, 'the two copies share an id: %s', ids)
    ctx.expect_same_db_info(part, hsh, [snd, r1, r2])
    st = ctx.replicate(snd, part)
    ctx.expect_stats(st, 'pass 2', no_change=2, rsync=0, diff=0)


@scenario('gap_10pct')
def sc_gap_10pct(ctx, sk, rk):
    """The peers miss 10% of the rows (and one tombstone): usync with
    merge_items batches of per_diff=50, then merge_syncs."""
    cont, part, hsh, (snd, r1, r2) = ctx.place('gap10', (sk, rk, rk))
    t = ctx.t0
    srows = [row(ODD_NAMES[i] if i < len(ODD_NAMES) else 'obj-%03d' % i,
                 t + i) for i in range(250)]
    srows[33] = row('obj-033', t + 300, deleted=1)  # deleted later
    srows[45] = row('obj-045', t + 45, size=2 ** 53 + 1)  # not a float
    rrows = [r if r['name'] != 'obj-033' else row('obj-033', t + 33)
             for i, r in enumerate(srows) if i % 10 != 5]  # peers: live 033
    ctx.make_db(snd, part, hsh, cont, t, srows)
    for r in (r1, r2):
        ctx.make_db(r, part, hsh, cont, t, rrows)
    sst = ctx.state(snd, part, hsh)
    st = ctx.replicate(snd, part, {'per_diff': '50'})  # 5 batches each
    ctx.expect_stats(st, 'pass 1', diff=2, diff_capped=0, rsync=0,
                     remote_merge=0, success=2)
    want = merged(srows, rrows)
    for r in (r1, r2):
        rst = ctx.expect_rows(r, part, hsh, want)
        check(rst['incoming'].get(sst['info']['id']) == sst['max_row'],
              '%s incoming sync for the sender %s, want %d', r.name,
              rst['incoming'].get(sst['info']['id']), sst['max_row'])
    states = ctx.expect_same_db_info(part, hsh, [snd, r1, r2])
    out = states[snd.name]['outgoing']
    for r in (r1, r2):
        rid = states[r.name]['info']['id']
        check(out.get(rid) == sst['max_row'],
              'sender outgoing sync for %s is %s, want %d', r.name,
              out.get(rid), sst['max_row'])
    st = ctx.replicate(snd, part, {'per_diff': '50'})
    ctx.expect_stats(st, 'pass 2', no_change=2, diff=0)


@scenario('gap_90pct')
def sc_gap_90pct(ctx, sk, rk):
    """The peers hold 10% of the rows plus one of their own: the 50% rule
    ships the whole DB and the peer merges its rows in (rsync_then_merge),
    keeping its own row and metadata."""
    cont, part, hsh, (snd, r1, r2) = ctx.place('gap90', (sk, rk, rk))
    t = ctx.t0
    # Swift gives the rsync_then_merge call count/2000 seconds: 4000 rows
    # make that 2 s (with 100 rows, 0.05 s, which Swift's own server
    # misses at times).
    srows = [row('obj-%04d' % i, t + i * 0.01) for i in range(4000)]
    rrows = srows[:400] + [row('peer-only', t + 500)]
    rrows[5] = row('obj-0005', t + 501, 'text/peer-newer')
    rrows[7] = row('obj-0007', t + 502, deleted=1)
    ctx.make_db(snd, part, hsh, cont, t, srows,
                metadata={'X-Container-Meta-Sender': ('s', t + 1)})
    for r in (r1, r2):
        ctx.make_db(r, part, hsh, cont, t, rrows,
                    metadata={'X-Container-Meta-Peer': ('p', t + 2)})
    sst = ctx.state(snd, part, hsh)
    st = ctx.replicate(snd, part, {'per_diff': '10'})
    ctx.expect_stats(st, 'pass 1', remote_merge=2, diff=0, rsync=0,
                     success=2)
    want = merged(srows, rrows)
    for r in (r1, r2):
        rst = ctx.expect_rows(r, part, hsh, want)
        check(rst['incoming'].get(sst['info']['id'], -1) >= sst['max_row'],
              '%s incoming sync for the sender %s, want >= %d', r.name,
              rst['incoming'].get(sst['info']['id']), sst['max_row'])
        check(not os.listdir(os.path.join(r.devices, r.device, 'tmp')),
              '%s tmp dir not empty', r.name)
    ctx.expect_rows(snd, part, hsh, srows, 'sender')
    states = ctx.expect_same_db_info(part, hsh, [snd, r1, r2])
    md = states[snd.name]['metadata']
    check(set(md) == {'X-Container-Meta-Sender', 'X-Container-Meta-Peer'},
          'metadata after the merge: %s', md)
    check(states[r1.name]['info']['id'] != states[r2.name]['info']['id']
          and sst['info']['id'] not in (states[r1.name]['info']['id'],
                                        states[r2.name]['info']['id']),
          'ids not distinct after rsync_then_merge')
    st = ctx.replicate(snd, part, {'per_diff': '10'})
    ctx.expect_stats(st, 'pass 2', no_change=2, diff=0, remote_merge=0)


@scenario('rows_after_rsync_then_merge', pairs=(('swift', 'rowsync'),
                                                ('swift', 'swift')))
def sc_rows_after_rtm(ctx, sk, rk):
    """Rows the sender writes after an rsync_then_merge. Swift's receiver
    records the merged file's max ROWID (which counts the peer's own merged
    rows) as its incoming point for the sender, so the sender's next rows
    hide under it and never reach that peer (a Swift quirk; the control
    asserts it). rowsync records the sender's own max ROWID and gets them."""
    cont, part, hsh, (snd, r1, r2) = ctx.place('after-rtm', (sk, rk, rk))
    t = ctx.t0
    srows = [row('obj-%04d' % i, t + i * 0.01) for i in range(4000)]
    rrows = srows[:400] + [row('peer-%d' % i, t + 500 + i) for i in range(3)]
    ctx.make_db(snd, part, hsh, cont, t, srows)
    for r in (r1, r2):
        ctx.make_db(r, part, hsh, cont, t, rrows)
    st = ctx.replicate(snd, part, {'per_diff': '10'})
    ctx.expect_stats(st, 'pass 1', remote_merge=2, success=2)
    later = [row('later-%d' % i, t + 600 + i) for i in range(2)]
    b = ctx.broker(snd, part, hsh)
    put_rows(b, later)
    b._commit_puts()
    st = ctx.replicate(snd, part, {'per_diff': '10'})
    if rk == 'swift':
        ctx.expect_stats(st, 'pass 2 (Swift quirk)', no_change=2, diff=0)
        for r in (r1, r2):
            ctx.expect_rows(r, part, hsh, merged(srows, rrows),
                            '%s (Swift: the later rows are skipped)' % r.name)
    else:
        ctx.expect_stats(st, 'pass 2', diff=2, no_change=0, success=2)
        for r in (r1, r2):
            ctx.expect_rows(r, part, hsh, merged(srows, rrows, later))


@scenario('diff_capped')
def sc_diff_capped(ctx, sk, rk):
    """Swift's test_diff_capped_sync (the 404ac092d fix) over the wire:
    the sender is far behind and capped; the peer must advance its incoming
    point for the sender on every merge_items, so pass 2 resumes at ROWID 30
    and completes."""
    cont, part, hsh, (snd, peer, third) = ctx.place('capped', (sk, rk, rk))
    t = ctx.t0
    srows = [row('o%d' % i, t + 1 + i, 'content-type-old') for i in range(50)]
    srows.append(row('o101', t + 151, 'content-type-new'))
    prows = [row('o%d' % i, t + 51 + i, 'content-type-new')
             for i in range(100)]
    ctx.make_db(snd, part, hsh, cont, t, srows)
    ctx.make_db(peer, part, hsh, cont, t, prows)
    sst = ctx.state(snd, part, hsh)
    check(sst['max_row'] == 51, 'sender max_row %s, want 51', sst['max_row'])
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
    want = merged(srows, prows)
    check(len(want) == 101 and all(r['content_type'] == 'content-type-new'
                                   for r in want), 'model broken')
    pst = ctx.expect_rows(peer, part, hsh, want, 'peer')
    check(pst['incoming'].get(sst['info']['id']) == 51,
          'peer incoming sync for the sender after pass 2: %s, want 51',
          pst['incoming'].get(sst['info']['id']))
    ctx.expect_rows(snd, part, hsh, srows, 'sender')


@scenario('metadata_both_ways')
def sc_metadata(ctx, sk, rk):
    """Metadata flows both ways in `sync` (newest value per key wins); equal
    rows made independently hash-match."""
    cont, part, hsh, (snd, r1, r2) = ctx.place('meta', (sk, rk, rk))
    t = ctx.t0
    rows = [row('same-%d' % i, t + i) for i in range(5)]
    ctx.make_db(snd, part, hsh, cont, t, rows, metadata={
        'X-Container-Meta-A': ('from-sender', t + 1),
        'X-Container-Meta-C': ('sender-new', t + 5),
        'X-Container-Meta-D': ('sender-old', t + 3),
        'X-Container-Meta-E': ('', t + 9),  # removed by the sender's POST
        'X-Container-Meta-Snow-\u2603': ('\u2603 sender', t + 7),
    })
    for r in (r1, r2):
        ctx.make_db(r, part, hsh, cont, t, rows, metadata={
            'X-Container-Meta-B': ('from-peer', t + 2),
            'X-Container-Meta-C': ('peer-old', t + 3),
            'X-Container-Meta-D': ('peer-new', t + 6),
            'X-Container-Meta-E': ('peer', t + 4),
            'X-Container-Meta-Snow-\u2603': ('\u2603 peer', t + 2),
        })
    sst = ctx.state(snd, part, hsh)
    st = ctx.replicate(snd, part)
    # Equal hashes: the peer's `sync` records the sender's max_row as its
    # incoming point and answers it, so Swift counts no_change (not
    # hashmatch).
    ctx.expect_stats(st, 'pass 1', no_change=2, hashmatch=0, diff=0,
                     rsync=0, success=2)
    for r in (r1, r2):
        got = ctx.state(r, part, hsh)['incoming'].get(sst['info']['id'])
        check(got == sst['max_row'], '%s incoming sync for the sender %s, '
              'want %d (equal hash in sync)', r.name, got, sst['max_row'])
    want = {'X-Container-Meta-A': ['from-sender', ts(t + 1)],
            'X-Container-Meta-B': ['from-peer', ts(t + 2)],
            'X-Container-Meta-C': ['sender-new', ts(t + 5)],
            'X-Container-Meta-D': ['peer-new', ts(t + 6)],
            'X-Container-Meta-E': ['', ts(t + 9)],
            'X-Container-Meta-Snow-\u2603': ['\u2603 sender', ts(t + 7)]}
    for n in (snd, r1, r2):
        md = {k: list(v) for k, v in ctx.state(n, part, hsh)['metadata']
              .items()}
        check(md == want, '%s (%s) metadata %s, want %s', n.name, n.kind,
              md, want)
        ctx.expect_rows(n, part, hsh, rows)
    ctx.expect_same_db_info(part, hsh, [snd, r1, r2])
    st = ctx.replicate(snd, part)
    ctx.expect_stats(st, 'pass 2', no_change=2, hashmatch=0)


@scenario('delete_flows_back')
def sc_delete_back(ctx, sk, rk):
    """The peers deleted the (empty) container after the sender's PUT: the
    sender learns the delete timestamp from the sync answer and becomes
    deleted too."""
    cont, part, hsh, (snd, r1, r2) = ctx.place('delback', (sk, rk, rk))
    t = ctx.t0
    ctx.make_db(snd, part, hsh, cont, t + 10)
    for r in (r1, r2):
        ctx.make_db(r, part, hsh, cont, t + 10, delete_t=t + 20)
    st = ctx.replicate(snd, part)
    ctx.expect_stats(st, 'pass 1', no_change=2, rsync=0, diff=0, success=2)
    states = ctx.expect_same_db_info(part, hsh, [snd, r1, r2])
    s = states[snd.name]
    check(s['info']['delete_timestamp'] == ts(t + 20) and s['deleted'],
          'sender delete_timestamp %s deleted %s, want %s and deleted',
          s['info']['delete_timestamp'], s['deleted'], ts(t + 20))
    check(s['info']['status_changed_at'] > ts(t + 20),
          'sender status_changed_at %s not moved on by the delete',
          s['info']['status_changed_at'])


@scenario('recreate_flows_forward')
def sc_recreate_forward(ctx, sk, rk):
    """The sender saw a PUT after the peers' delete: the peers take the
    newer put_timestamp from `sync` and are no longer deleted."""
    cont, part, hsh, (snd, r1, r2) = ctx.place('recreate', (sk, rk, rk))
    t = ctx.t0
    ctx.make_db(snd, part, hsh, cont, t + 30)
    for r in (r1, r2):
        ctx.make_db(r, part, hsh, cont, t + 10, delete_t=t + 20)
    st = ctx.replicate(snd, part)
    ctx.expect_stats(st, 'pass 1', no_change=2, rsync=0, diff=0, success=2)
    states = ctx.expect_same_db_info(part, hsh, [snd, r1, r2])
    for r in (r1, r2):
        s = states[r.name]
        check(s['info']['put_timestamp'] == ts(t + 30) and
              s['info']['delete_timestamp'] == ts(t + 20) and
              not s['deleted'],
              '%s put %s delete %s deleted %s, want put %s delete %s live',
              r.name, s['info']['put_timestamp'],
              s['info']['delete_timestamp'], s['deleted'], ts(t + 30),
              ts(t + 20))
        check(s['info']['status_changed_at'] > ts(t + 30),
              '%s status_changed_at %s not moved on by the re-create',
              r.name, s['info']['status_changed_at'])


@scenario('three_replicas', pairs=(('swift', 'rowsync'),))
def sc_three_swift_senders(ctx, sk, rk):
    """Two Swift replicas with different rows and a stale rowsync replica:
    after each Swift node pushes (twice), all three hold the union. The
    rowsync node only receives here; see three_replicas_all_push."""
    cont, part, hsh, (s1, s2, r) = ctx.place('three', ('swift', 'swift',
                                                      'rowsync'))
    t = ctx.t0
    common = [row('c-%02d' % i, t + i) for i in range(10)]
    a = common + [row('a-%02d' % i, t + 100 + i) for i in range(15)]
    b = common + [row('b-%02d' % i, t + 200 + i) for i in range(15)]
    b[3] = row('c-03', t + 300, 'text/newer')
    ctx.make_db(s1, part, hsh, cont, t, a)
    ctx.make_db(s2, part, hsh, cont, t, b)
    ctx.make_db(r, part, hsh, cont, t, common[:5])
    for rnd in range(2):
        for n in (s1, s2):
            st = ctx.replicate(n, part, {'per_diff': '100'})
            check(st.get('failure') == 0, 'round %d %s failures: %s', rnd,
                  n.name, st)
    want = merged(a, b)
    for n in (s1, s2, r):
        ctx.expect_rows(n, part, hsh, want)
    ctx.expect_same_db_info(part, hsh, [s1, s2, r])
    for n in (s1, s2):
        st = ctx.replicate(n, part, {'per_diff': '100'})
        ctx.expect_stats(st, '%s final pass' % n.name, no_change=2, diff=0,
                         rsync=0)


@scenario('three_replicas_all_push', pairs=(('mixed', 'mixed'),),
          needs_rowsync_replicator=True)
def sc_three_all_push(ctx, sk, rk):
    """Mixed 3 replicas, each with rows of its own: every node runs its own
    replicator (Swift's or rowsync's) until all hold the union."""
    cont, part, hsh, nodes = ctx.place('mixed', ('swift', 'rowsync',
                                                 'rowsync'))
    t = ctx.t0
    sets = []
    for k, n in enumerate(nodes):
        rows = [row('shared-%d' % i, t + i) for i in range(5)]
        rows += [row('%s-%02d' % (n.name, i), t + 50 * (k + 1) + i)
                 for i in range(12)]
        rows[k] = row('shared-%d' % k, t + 400 + k, 'text/newer')
        ctx.make_db(n, part, hsh, cont, t + k, rows)
        sets.append(rows)
    for rnd in range(2):
        for n in nodes:
            st = ctx.replicate(n, part, {'per_diff': '5'})
            check(st.get('failure') == 0, 'round %d %s failures: %s', rnd,
                  n.name, st)
    want = merged(*sets)
    for n in nodes:
        ctx.expect_rows(n, part, hsh, want)
    ctx.expect_same_db_info(part, hsh, nodes)
    for n in nodes:
        st = ctx.replicate(n, part, {'per_diff': '5'})
        ctx.expect_stats(st, '%s final pass' % n.name, no_change=2, diff=0,
                         rsync=0, remote_merge=0)


@scenario('composite_timestamps')
def sc_composite(ctx, sk, rk):
    """Rows updated by POSTs carry composite timestamps (data, content-type,
    metadata): the peer must combine them as Swift does. The oracle is a
    scratch Swift broker merging the same rows."""
    from swift.common.utils import Timestamp
    cont, part, hsh, (snd, r1, r2) = ctx.place('composite', (sk, rk, rk))
    t = ctx.t0

    def r(name, data_t, ctype='text/plain', size=10, etag_of=None,
          ctype_t=None, meta_t=None):
        x = row(name, data_t, ctype, size=size)
        if etag_of is not None:
            x['etag'] = hashlib.md5(etag_of.encode()).hexdigest()
        x['ctype_timestamp'] = ts(ctype_t) if ctype_t else None
        x['meta_timestamp'] = ts(meta_t) if meta_t else None
        return x

    sender = [
        r('x1', t + 1, 'text/old', etag_of='x1'),
        r('x1', t + 1, 'text/ctype-new', etag_of='x1', ctype_t=t + 5,
          meta_t=t + 5),
        r('x2', t + 2, size=10, etag_of='x2a'),
        r('x2', t + 2, size=10, etag_of='x2a', meta_t=t + 7),
        r('x3', t + 4, 'text/a', etag_of='x3a'),
        r('x3', t + 4, 'text/b', etag_of='x3a', ctype_t=t + 8, meta_t=t + 8),
        r('x4', t + 3, 'text/plain', etag_of='x4'),
        r('x5', t + 2, 'text/offset-1', etag_of='x5'),
    ]
    sender[-1]['created_at'] = Timestamp(t + 2, offset=1).internal
    peer = [
        r('x1', t + 1, 'text/old', etag_of='x1'),
        r('x1', t + 1, 'text/old', etag_of='x1', meta_t=t + 6),
        r('x2', t + 3, size=20, etag_of='x2b'),
        r('x3', t + 9, 'text/c', size=30, etag_of='x3c'),
        r('x4', t + 3, 'text/plain', etag_of='x4'),
        r('x4', t + 3, 'text/later', etag_of='x4', ctype_t=t + 4,
          meta_t=t + 4),
        r('x5', t + 2, 'text/offset-0', etag_of='x5'),
    ]
    ctx.make_db(snd, part, hsh, cont, t, sender)
    for n in (r1, r2):
        ctx.make_db(n, part, hsh, cont, t, peer)
    srows = ctx.state(snd, part, hsh)['rows']
    prows = ctx.state(r1, part, hsh)['rows']
    check(any('+' in x['created_at'] for x in srows),
          'no composite timestamp made: %s', srows)
    want, winfo = ctx.swift_oracle(part, hsh, cont, prows, srows)
    st = ctx.replicate(snd, part)
    ctx.expect_stats(st, 'pass 1', diff=2, rsync=0, remote_merge=0,
                     success=2)
    for n in (r1, r2):
        got = ctx.state(n, part, hsh)
        check([norm(x) for x in got['rows']] == [norm(x) for x in want],
              '%s (%s) rows %s, Swift merges to %s', n.name, n.kind,
              [norm(x) for x in got['rows']], [norm(x) for x in want])
        for k in ('hash', 'object_count', 'bytes_used'):
            check(got['info'][k] == winfo[k], '%s %s %s, Swift: %s', n.name,
                  k, got['info'][k], winfo[k])


@scenario('misplaced_rows')
def sc_misplaced(ctx, sk, rk):
    """Two policies; rows of a policy-0 container that sit in policy 1
    (misplaced objects): the same name may exist once per policy. The peers
    must keep (name, policy) pairs apart as Swift does; the sender's
    post-replicate hook also queues them in `.misplaced_objects` containers
    and replicates those at the end of the pass."""
    cont, part, hsh, (snd, r1, r2) = ctx.place('misplaced', (sk, rk, rk))
    t = ctx.t0

    def r(name, at, pol, **kw):
        x = row(name, at, **kw)
        x['storage_policy_index'] = pol
        return x

    sender = [r('m1', t + 1, 0), r('m1', t + 2, 1, ctype='text/p1'),
              r('m2', t + 3, 1), r('m3', t + 4, 0),
              r('m4', t + 5, 1, deleted=1)]
    peer = [r('m1', t + 0.5, 0, ctype='text/older'), r('m3', t + 6, 1),
            r('m4', t + 4.5, 1)]
    ctx.make_db(snd, part, hsh, cont, t, sender)
    for n in (r1, r2):
        ctx.make_db(n, part, hsh, cont, t, peer)
    srows = ctx.state(snd, part, hsh)['rows']
    prows = ctx.state(r1, part, hsh)['rows']
    check(len(srows) == 5, 'sender rows %s', [norm(x) for x in srows])
    want, winfo = ctx.swift_oracle(part, hsh, cont, prows, srows)
    st = ctx.replicate(snd, part, two_policies=True)
    check(st.get('failure') == 0 and st.get('diff', 0) >= 2,
          'stats %s', st)
    key = lambda x: (x[0], x[6])
    for n in (r1, r2):
        got = ctx.state(n, part, hsh)
        g = sorted((norm(x) for x in got['rows']), key=key)
        w = sorted((norm(x) for x in want), key=key)
        check(g == w, '%s (%s) rows %s, Swift merges to %s', n.name, n.kind,
              g, w)
        for k in ('hash', 'object_count', 'bytes_used'):
            check(got['info'][k] == winfo[k], '%s %s %s, Swift: %s', n.name,
                  k, got['info'][k], winfo[k])
    # The queue entries: .misplaced_objects containers, replicated by the
    # sender to their primaries (of either kind) at the end of the pass.
    from swift.common.utils import hash_path
    from swift.container.reconciler import (
        get_reconciler_container_name, MISPLACED_OBJECTS_ACCOUNT)
    conts = set(get_reconciler_container_name(x['created_at'])
                for x in srows if x['storage_policy_index'] != 0)
    for rc in sorted(conts):
        rpart, devs = ctx.cl.ring.get_nodes(MISPLACED_OBJECTS_ACCOUNT, rc)
        rhash = hash_path(MISPLACED_OBJECTS_ACCOUNT, rc)
        prim = [ctx.cl.by_port(d['port']) for d in devs]
        states = [(n, ctx.state(n, rpart, rhash)) for n in prim]
        have = [(n, st) for n, st in states if st is not None]
        check(len(have) == len(prim), 'reconciler container %s/%s on %s '
              'only', MISPLACED_OBJECTS_ACCOUNT, rc,
              [n.name for n, _ in have])
        ref_n, ref = have[0]
        check(ref['rows'], 'reconciler container %s is empty', rc)
        for n, st in have[1:]:
            check([norm(x) for x in st['rows']] ==
                  [norm(x) for x in ref['rows']],
                  'reconciler container %s: %s (%s) rows %s, %s (%s) %s', rc,
                  n.name, n.kind, [x['name'] for x in st['rows']],
                  ref_n.name, ref_n.kind, [x['name'] for x in ref['rows']])
            check(st['info']['hash'] == ref['info']['hash'],
                  'reconciler container %s: hash %s on %s, %s on %s', rc,
                  st['info']['hash'], n.name, ref['info']['hash'],
                  ref_n.name)


@scenario('shard_ranges_both_ways')
def sc_shard_ranges(ctx, sk, rk):
    """Shard ranges (not sharding: no own range) flow both ways: the sender
    fetches the peer's (get_shard_ranges, as the peer's shard_max_row >= 0)
    and pushes its own (merge_shard_ranges); rows still replicate."""
    from swift.common.utils import ShardRange
    cont, part, hsh, (snd, r1, r2) = ctx.place('shards', (sk, rk, rk))
    t = ctx.t0
    sname = lambda x: '.shards_%s/%s-%s' % (ACCOUNT, cont, x)
    s_ranges = [
        ShardRange(sname('a'), ts(t + 1), '', 'g', 3, 30, ts(t + 1),
                   state=ShardRange.FOUND, state_timestamp=ts(t + 1)),
        ShardRange(sname('c'), ts(t + 2), 'g', 'p', 5, 50, ts(t + 3),
                   state=ShardRange.CREATED, state_timestamp=ts(t + 2),
                   tombstones=2),
    ]
    p_ranges = [
        ShardRange(sname('b'), ts(t + 4), 'p', '', 7, 70, ts(t + 4),
                   state=ShardRange.ACTIVE, state_timestamp=ts(t + 4),
                   epoch=ts(t + 4)),
        ShardRange(sname('c'), ts(t + 2), 'g', 'p', 9, 90, ts(t + 6),
                   state=ShardRange.CLEAVED, state_timestamp=ts(t + 6),
                   tombstones=4),
        ShardRange(sname('d'), ts(t + 5), 'x', 'y', deleted=True,
                   state=ShardRange.SHRUNK, state_timestamp=ts(t + 5)),
    ]
    rows = [row('obj-%d' % i, t + i) for i in range(6)]
    ctx.make_db(snd, part, hsh, cont, t, rows, shard_ranges=s_ranges)
    for n in (r1, r2):
        ctx.make_db(n, part, hsh, cont, t, rows[:3], shard_ranges=p_ranges)
    st = ctx.replicate(snd, part)
    ctx.expect_stats(st, 'pass 1', diff=2, deferred=0, rsync=0, success=2)

    def ranges(n):
        b = ctx.broker(n, part, hsh)
        return sorted((dict(x) for x in b.get_shard_ranges(
            include_deleted=True, include_own=True)),
            key=lambda x: x['name'])

    ref = ranges(snd)
    check(sorted(x['name'] for x in ref) == sorted(
        sname(x) for x in 'abcd'), 'sender shard ranges %s',
        [x['name'] for x in ref])
    c = [x for x in ref if x['name'] == sname('c')][0]
    check(c['object_count'] == 9 and c['state'] == ShardRange.CLEAVED and
          c['tombstones'] == 4, 'merged range c on the sender: %s', c)
    for n in (r1, r2):
        got = ranges(n)
        check(got == ref, '%s (%s) shard ranges %s, sender %s', n.name,
              n.kind, got, ref)
        ctx.expect_rows(n, part, hsh, rows)
    st = ctx.replicate(snd, part)
    ctx.expect_stats(st, 'pass 2', no_change=2, diff=0)


@scenario('policy_index_choice')
def sc_policy(ctx, sk, rk):
    """Two policies (10-argument sync): the peers and the sender disagree on
    the container's storage policy; both ends must settle on the one Swift's
    cmp_policy_info picks (oldest live, newest re-created, live over
    deleted), whichever side has to move."""
    from swift.container.reconciler import incorrect_policy_index
    t = ctx.t0
    cases = [
        # name, sender (policy, put, delete, recreate), peers (same)
        ('sender-older', (1, t + 5, None, None), (0, t + 10, None, None)),
        ('peer-older', (1, t + 10, None, None), (0, t + 5, None, None)),
        ('peer-deleted', (1, t + 10, None, None), (0, t + 5, t + 20, None)),
        ('sender-recreated', (1, t + 5, t + 20, t + 30),
         (0, t + 10, None, None)),
    ]

    def make(n, part, hsh, cont, spec):
        pol, put_t, del_t, re_t = spec
        b = ctx.broker(n, part, hsh, cont)
        b.initialize(ts(put_t), pol)
        if del_t is not None:
            b.delete_db(ts(del_t))
        if re_t is not None:  # a PUT after the delete, as the server does
            b.update_put_timestamp(ts(re_t))
            b.update_status_changed_at(ts(re_t))
        return dict(b.get_replication_info())

    problems = []
    for name, sspec, pspec in cases:
        cont, part, hsh, (snd, r1, r2) = ctx.place('policy-' + name,
                                                   (sk, rk, rk))
        sinfo = make(snd, part, hsh, cont, sspec)
        for n in (r1, r2):
            pinfo = make(n, part, hsh, cont, pspec)
        want = (pinfo['storage_policy_index']
                if incorrect_policy_index(sinfo, pinfo)
                else sinfo['storage_policy_index'])
        st = ctx.replicate(snd, part, two_policies=True)
        ctx.expect_stats(st, name, failure=0, rsync=0, diff=0)
        for n in (snd, r1, r2):
            got = ctx.state(n, part, hsh)['info']['storage_policy_index']
            if got != want:
                problems.append('%s: %s (%s) has policy %s, want %s' % (
                    name, n.name, n.kind, got, want))
        try:
            ctx.expect_same_db_info(part, hsh, [snd, r1, r2])
        except Fail as e:
            problems.append('%s: %s' % (name, e))
    check(not problems, '; '.join(problems))


@scenario('pending_on_peer')
def sc_pending(ctx, sk, rk):
    """The peers hold every row, but only in their .pending files (Swift's
    pickle format): `sync` must commit them first, so the hashes match and
    nothing is sent."""
    cont, part, hsh, (snd, r1, r2) = ctx.place('pending', (sk, rk, rk))
    t = ctx.t0
    rows = [row('obj-%02d' % i, t + i) for i in range(30)]
    rows.append(row('tomb', t + 40, deleted=1))
    ctx.make_db(snd, part, hsh, cont, t, rows)
    for n in (r1, r2):
        ctx.make_db(n, part, hsh, cont, t, rows[:10], pending=rows[10:])
        check(os.path.getsize(n.db_path(part, hsh) + '.pending') > 0,
              'no pending rows written')
    st = ctx.replicate(snd, part)
    ctx.expect_stats(st, 'pass 1', no_change=2, diff=0, rsync=0, success=2)
    for n in (r1, r2):
        check(os.path.getsize(n.db_path(part, hsh) + '.pending') == 0,
              '%s (%s) .pending not committed by sync', n.name, n.kind)
        ctx.expect_rows(n, part, hsh, rows)


@scenario('rowsync_db_served_by_swift', pairs=(('swift', 'rowsync'),))
def sc_rowsync_db_in_swift(ctx, sk, rk):
    """A DB that rowsync rebuilt (rsync_then_merge: its rows, sync tables
    and id written by rowsync) is moved onto a Swift node, whose replicator
    then serves it: Swift reads rowsync's rows and incoming_sync table and
    pushes the peer-only row on to the other Swift replica."""
    cont, part, hsh, (s1, s2, r) = ctx.place('served', ('swift', 'swift',
                                                       'rowsync'))
    t = ctx.t0
    srows = [row('obj-%04d' % i, t + i * 0.01) for i in range(4000)]
    rrows = srows[:400] + [row('peer-only', t + 500)]
    ctx.make_db(s1, part, hsh, cont, t, srows)
    ctx.make_db(r, part, hsh, cont, t, rrows)
    st = ctx.replicate(s1, part, {'per_diff': '10'})
    ctx.expect_stats(st, 'pass 1', rsync=1, remote_merge=1, success=2)
    want = merged(srows, rrows)
    rst = ctx.expect_rows(r, part, hsh, want)
    # s2's copy (from s1) is replaced by rowsync's file
    s2_path = s2.db_path(part, hsh)
    os.unlink(s2_path)
    shutil.copy2(rst['path'], s2_path)
    st = ctx.replicate(s2, part, {'per_diff': '1000'})
    # to s1: usync of all rows (s1 never synced with this id); to r:
    # the same file, so equal hashes
    ctx.expect_stats(st, 's2 pass', diff=1, no_change=1, rsync=0,
                     success=2)
    ctx.expect_rows(s1, part, hsh, want, 's1 after the push from s2')
    s1st = ctx.state(s1, part, hsh)
    check(s1st['incoming'].get(rst['info']['id']) == rst['max_row'],
          's1 incoming sync for the rowsync-made id %s, want %d',
          s1st['incoming'].get(rst['info']['id']), rst['max_row'])
    rc, out = ctx.swift_info_cli(rst['path'])
    check(rc == 0 and 'Object Count: %d' % len(want) in out,
          'swift-container-info on %s: exit %d: %s', rst['path'], rc,
          out[-500:])


def _sync_answer_matches_broker(ctx, node):
    """Swift-made DBs on `node`: the `sync` answer must carry what Swift's
    own get_replication_info() reads from the file, key for key and type
    for type (plus `point`); `get_shard_ranges` must answer what Swift's
    get_all_shard_range_data() reads. Variants: rows left in .pending;
    shard ranges (with an own range); a deleted container; policy 1 with
    container-sync points and reported stats set."""
    from swift.common.utils import ShardRange
    t = ctx.t0
    for variant in ('pending', 'shards', 'deleted', 'policy-sync-reported'):
        cont, part, hsh, (n,) = ctx.place('syncinfo-%s-%s' % (node, variant),
                                          (node,))
        rows = [row('obj-%d' % i, t + i) for i in range(7)]
        rows.append(row('tomb', t + 20, deleted=1))
        rows.append(row('huge', t + 21, size=2 ** 53 + 1))
        late = []
        policy = 0
        if variant == 'deleted':
            rows = [row('tomb', t + 20, deleted=1)]
        elif variant == 'policy-sync-reported':
            policy = 1
            for r in rows:
                r['storage_policy_index'] = 1
        b = ctx.make_db(n, part, hsh, cont, t, rows, metadata={
            'X-Container-Meta-Color': ('blue', t + 3),
            'X-Container-Sysmeta-Thing': ('x', t + 4)},
            delete_t=(t + 30 if variant == 'deleted' else None),
            policy=policy)
        if variant == 'pending':
            late = [row('late-%d' % i, t + 30 + i) for i in range(3)]
            put_rows(b, late)  # left in .pending: the answer includes them
        elif variant == 'shards':
            sname = lambda x: '.shards_%s/%s-%s' % (ACCOUNT, cont, x)
            b.merge_shard_ranges([
                ShardRange('%s/%s' % (ACCOUNT, cont), ts(t + 1), '', '',
                           9, 90, ts(t + 2), state=ShardRange.ACTIVE,
                           state_timestamp=ts(t + 1), epoch=None),
                ShardRange(sname('a'), ts(t + 1), '', 'm', 4, 40, ts(t + 2),
                           state=ShardRange.CREATED,
                           state_timestamp=ts(t + 1), epoch=ts(t + 1),
                           reported=True, tombstones=3),
                ShardRange(sname('b'), ts(t + 1), 'm', '', deleted=True,
                           state=ShardRange.FOUND, state_timestamp=ts(t + 1))])
        elif variant == 'policy-sync-reported':
            b.set_x_container_sync_points(5, 7)
            b.reported(ts(t + 1), ts(0), 3, 33)
        # the timestamps as stored (the probe sends them back unchanged)
        with b.get() as conn:
            stamps = conn.execute('SELECT created_at, put_timestamp, '
                                  'delete_timestamp FROM container_stat'
                                  ).fetchone()
        body = ['sync', 3, '0' * 32, 'interop-probe-id'] + list(stamps) + ['']
        status, data = ctx.replicate_call(n, part, hsh, body)
        b = ctx.broker(n, part, hsh)
        info = dict(b.get_replication_info())
        check(status == 200, '%s: REPLICATE %s -> %d %r', variant,
              json.dumps(body), status, data[:300])
        ans = json.loads(data)
        check(ans.get('point') == -1, '%s: point %r, want -1', variant,
              ans.get('point'))
        _compare_answer('%s: sync answer vs get_replication_info' % variant,
                        ans, info, extra_ok=('point',))
        status, data = ctx.replicate_call(n, part, hsh, ['get_shard_ranges'])
        check(status == 200, '%s: get_shard_ranges -> %d %r', variant,
              status, data[:300])
        got = json.loads(data)
        want = sorted(b.get_all_shard_range_data(), key=lambda x: x['name'])
        got = sorted(got, key=lambda x: x.get('name', ''))
        check(len(got) == len(want), '%s: get_shard_ranges gave %d ranges, '
              'Swift reads %d', variant, len(got), len(want))
        for g, w in zip(got, want):
            _compare_answer('%s: shard range %s' % (variant, w['name']), g,
                            dict(w))
        # unknown sender, different hash: nothing recorded for it
        st = ctx.state(n, part, hsh)
        check('interop-probe-id' not in st['incoming'],
              '%s: incoming sync recorded for a non-matching hash: %s',
              variant, st['incoming'])
        try:
            ctx.expect_rows(n, part, hsh, rows + late)
        except Fail as e:
            raise Fail('%s: %s' % (variant, e))


@scenario('sync_answer_is_broker_info', pairs=(('driver', 'rowsync'),
                                               ('driver', 'swift')))
def sc_sync_answer(ctx, sk, rk):
    _sync_answer_matches_broker(ctx, rk)
