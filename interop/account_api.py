"""Account scenarios through the account HTTP API (names `acct_*`; the
account DB scenarios without the API are in accounts.py).

The same requests go to a Swift account server (the reference) and to the
server under test, each on its own node's account port:
`PUT /<dev>/<part>/<account>` (X-Timestamp, metadata), container updates
`PUT /<dev>/<part>/<account>/<container>` (X-Put-Timestamp,
X-Delete-Timestamp, X-Object-Count, X-Bytes-Used,
X-Backend-Storage-Policy-Index, as container servers send them), POST,
HEAD, GET listings and DELETE. The servers run with the one-policy
swift.conf (policy 0, `gold`); updates naming policy 1 show how a policy
the server does not know is stored (broker) and hidden (headers,
listings).

- `acct_created_by_rowsync_api`: the DB the API made is opened by Swift's
  AccountBroker and compared field by field with the reference's; then the
  maker's replicator ships it to its Swift peers and a Swift peer's
  replicator ships it on.
- `acct_api_answers_like_swift`: each answer (status, the headers Swift's
  clients read, the body) compared with Swift's.

Each `[swift->swift]` variant is the control: two Swift servers must agree
under the same comparison.
"""

import http.client
import json
import os
import shutil
import sqlite3
import urllib.parse

from accounts import AROW_KEYS, acct_scenario, tmp_empty
from harness import ODD_NAMES, Fail, check, ts


# ------------------------------------------------------------------- HTTP

def api_request(node, part, acct, method, cont=None, headers=(), query=(),
                timeout=10):
    """One request to `node`'s account server. `headers` and `query` are
    (name, value) pairs; values may be bytes (sent as they are). Returns
    (status, [(header, value)], body)."""
    path = '/%s/%s/%s' % (node.device, part,
                          urllib.parse.quote(acct.encode('utf8'), safe=''))
    if cont is not None:
        path += '/' + urllib.parse.quote(cont.encode('utf8'), safe='')
    if query:
        path += '?' + urllib.parse.urlencode(list(query),
                                             quote_via=urllib.parse.quote)
    c = http.client.HTTPConnection('127.0.0.1', node.account_port,
                                   timeout=timeout)
    try:
        c.putrequest(method, path, skip_accept_encoding=True)
        for k, v in headers:
            c.putheader(k, v)
        if method in ('PUT', 'POST'):
            c.putheader('Content-Length', '0')
        c.endheaders()
        r = c.getresponse()
        body = r.read()
        return r.status, r.getheaders(), body
    finally:
        c.close()


def container_update(put_t, delete_t=None, objects=0, nbytes=0, spi=0,
                     put_ts=None, delete_ts=None, trans_id=None):
    """The headers of a container server's account update. `put_ts` and
    `delete_ts` give the header strings as they are."""
    h = [('X-Put-Timestamp', put_ts if put_ts is not None else ts(put_t)),
         ('X-Delete-Timestamp', delete_ts if delete_ts is not None else (
             ts(delete_t) if delete_t is not None else '0')),
         ('X-Object-Count', str(objects)), ('X-Bytes-Used', str(nbytes)),
         ('X-Backend-Storage-Policy-Index', str(spi))]
    if trans_id:
        h.append(('X-Trans-Id', trans_id))
    return h


# The headers compared: the ones Swift's proxy and clients read from an
# account server (all X-Account-*: counts, per-policy stats, status,
# metadata), Content-Type and the timestamps.
COMPARED = ('content-type', 'x-timestamp', 'x-put-timestamp')


def answer(resp, created_at):
    """What of a response is compared: (status, {header: [values]},
    body). X-Timestamp is the account's created_at, which no two servers
    share: it becomes '<created_at>' when it is the server's own. JSON
    bodies are parsed; others are compared as bytes."""
    from swift.common.utils import Timestamp
    status, headers, body = resp
    h = {}
    for k, v in headers:
        lk = k.lower()
        if lk in COMPARED or lk.startswith('x-account-'):
            h.setdefault(lk, []).append(v)
    own = Timestamp(created_at).normal if created_at else None
    if h.get('x-timestamp') == [own]:
        h['x-timestamp'] = ['<created_at>']
    ctype = ''.join(h.get('content-type', []))
    if body and 'json' in ctype:
        try:
            body = ('json', json.loads(body))
        except ValueError:
            body = ('bytes', body)
    else:
        body = ('bytes', body)
    return status, h, body


def short(x, n=400):
    s = repr(x)
    return s if len(s) <= n else s[:n] + '...'


def answer_diffs(label, ref, got):
    """The differences between Swift's answer `ref` and `got`, each as
    'label: what: Swift ..., rowsync ...'."""
    out = []
    if ref[0] != got[0]:
        out.append('status: Swift %d, got %d' % (ref[0], got[0]))
    for k in sorted(set(ref[1]) | set(got[1])):
        a, b = ref[1].get(k), got[1].get(k)
        if a != b:
            out.append('%s: Swift %s, got %s' % (
                k, 'absent' if a is None else short(a),
                'absent' if b is None else short(b)))
    if ref[2] != got[2]:
        out.append('body: Swift %s, got %s' % (short(ref[2][1]),
                                               short(got[2][1])))
    return ['%s: %s' % (label, d) for d in out]


def describe(method, cont, headers, query):
    s = method + (' /' + cont if cont is not None else '')
    if query:
        s += '?' + '&'.join('%s=%s' % kv for kv in query)
    hs = [k for k, _ in headers if not k.lower().startswith('x-trans')]
    if hs:
        s += ' [%s]' % ', '.join(hs)
    return s


def run_steps(ctx, steps, targets):
    """Sends each step (label, method, container, headers, query) to every
    target (node, part, account) in turn. Returns, per target, the list of
    (label, request text, response)."""
    out = [[] for _ in targets]
    for label, method, cont, headers, query in steps:
        for i, (node, part, acct) in enumerate(targets):
            resp = api_request(node, part, acct, method, cont, headers,
                               query)
            out[i].append((label, describe(method, cont, headers, query),
                           resp))
    return out


# -------------------------------------------------------------- DB views

def spare_part(ctx):
    """An account-ring partition no scenario uses and no node holds, taken
    for a reference DB made by a Swift account server (the account name is
    the scenario's, so the server is told another partition in the path)."""
    for p in range(ctx.cl.account_ring.partition_count):
        if p in ctx.used_parts or any(
                os.path.isdir(os.path.join(n.devices, n.device, 'accounts',
                                           str(p))) for n in ctx.cl.nodes):
            continue
        ctx.used_parts.add(p)
        return p
    raise Fail('no spare account partition')


def status_column(path):
    c = sqlite3.connect('file:%s?mode=ro' % path, uri=True)
    try:
        return c.execute('SELECT status FROM account_stat').fetchone()[0]
    finally:
        c.close()


def typed(v):
    return (type(v).__name__, v)


def db_view(ctx, node, part, hsh, acct, copy_to=None):
    """What Swift's AccountBroker reads from the node's DB: get_info(),
    get_replication_info(), metadata, policy stats, rows (typed), the
    deleted flags and the status column. With `copy_to` the DB dir is
    copied there first and the copy is read (Swift commits a .pending
    file when it opens a DB; the original stays as the server left it)."""
    from swift.account.backend import AccountBroker
    path = ctx.db_path(node, part, hsh)
    check(os.path.exists(path), '%s (%s) has no account DB at %s', node.name,
          node.kind, path)
    pending = os.path.getsize(path + '.pending') if os.path.exists(
        path + '.pending') else 0
    if copy_to:
        shutil.rmtree(copy_to, ignore_errors=True)
        shutil.copytree(os.path.dirname(path), copy_to)
        path = os.path.join(copy_to, os.path.basename(path))
    b = AccountBroker(path, account=acct)
    info = b.get_info()
    repl = dict(b.get_replication_info())
    rows = {}
    for r in b.get_items_since(-1, 1000000):
        r = dict(r)
        rows[r['name']] = {k: typed(r[k]) for k in AROW_KEYS}
    return {
        'info': {k: typed(v) for k, v in info.items()},
        'repl_info': {k: typed(v) for k, v in repl.items()
                      if k != 'metadata'},
        'metadata': {k: list(v) for k, v in b.metadata.items()},
        'policy_stats': b.get_policy_stats(),
        'rows': rows,
        'is_deleted': b.is_deleted(),
        'is_status_deleted': b.is_status_deleted(),
        'status': status_column(path),
        'path': path,
        'pending_bytes': pending,
        'created_at': info['created_at'],
        'plain_rows': [dict(r) for r in b.get_items_since(-1, 1000000)],
    }


# id and created_at are the DB's own; `max_row` is left out after
# replication (a usync merge re-inserts rows, so ROWIDs move on).
NOT_COMPARED = ('id', 'created_at')


def view_diffs(label, ref, got, skip=()):
    """Field by field: get_info, get_replication_info, metadata, policy
    stats, rows, deletedness."""
    skip = set(NOT_COMPARED) | set(skip)
    out = []
    for part in ('info', 'repl_info'):
        for k in sorted(set(ref[part]) | set(got[part])):
            if k in skip:
                continue
            a, b = ref[part].get(k), got[part].get(k)
            if a != b:
                out.append('%s %s: Swift %s, got %s' % (part, k, short(a),
                                                        short(b)))
    for k in ('metadata', 'policy_stats', 'is_deleted', 'is_status_deleted',
              'status'):
        if ref[k] != got[k]:
            out.append('%s: Swift %s, got %s' % (k, short(ref[k]),
                                                 short(got[k])))
    names = sorted(set(ref['rows']) | set(got['rows']))
    for n in names:
        a, b = ref['rows'].get(n), got['rows'].get(n)
        if a != b:
            if a is None or b is None:
                out.append('row %r: Swift %s, got %s' % (
                    n, 'absent' if a is None else short(a),
                    'absent' if b is None else short(b)))
            else:
                out.append('row %r: %s' % (n, ', '.join(
                    '%s Swift %r got %r' % (k, a[k], b[k])
                    for k in AROW_KEYS if a[k] != b[k])))
    return ['%s: %s' % (label, d) for d in out]


# ------------------------------------------------- acct_created_by_rowsync_api

def creation_steps(t):
    """An account made through the API: PUT with metadata, container
    updates (two policies, a deleted container, a container deleted later,
    a delete with objects left, newer and stale updates of the same name,
    2^53+1 bytes, odd names, header strings in other forms), a POST that
    sets, changes and removes metadata, and a second PUT."""
    names = [n for n in ODD_NAMES if '/' not in n]
    steps = [('PUT account', 'PUT', None, [
        ('X-Timestamp', ts(t + 1)),
        ('X-Account-Meta-Color', 'red'),
        ('x-account-meta-lower-case', 'lc'),
        ('X-Account-Sysmeta-Owner', 'interop')], ())]
    up = lambda name, **kw: ('update %s' % name, 'PUT', name,
                             container_update(**kw), ())
    steps += [
        up('cont-a', put_t=t + 2, objects=3, nbytes=300, trans_id='tx-a'),
        up('cont-b', put_t=t + 3, objects=5, nbytes=2 ** 53 + 1, spi=1),
        up('gone', put_t=t + 4, delete_t=t + 9),
        up('deleted-later', put_t=t + 5, objects=2, nbytes=20),
        up('busy-deleted', put_t=t + 6, delete_t=t + 7, objects=4, nbytes=4),
        up('zero-delete-ts', put_t=t + 8, objects=1, nbytes=1,
           delete_ts='0000000000.00000'),
        up('short-ts', put_t=None, put_ts='%.1f' % (t + 10), objects=1,
           nbytes=2),
    ]
    steps += [up(n, put_t=t + 11 + i, objects=i, nbytes=i * 10, spi=i % 2)
              for i, n in enumerate(names)]
    steps += [
        up('cont-a', put_t=t + 30, objects=4, nbytes=400, trans_id='tx-a2'),
        ('POST metadata', 'POST', None, [
            ('X-Timestamp', ts(t + 40)),
            ('X-Account-Meta-Color', ''),
            ('X-Account-Meta-New', 'new'),
            ('X-Account-Meta-Snow', '\u2603 snow'.encode('utf8')),
            ('X-Account-Sysmeta-Owner', 'interop-2')], ()),
        ('PUT account again', 'PUT', None, [
            ('X-Timestamp', ts(t + 45)),
            ('X-Account-Meta-Put2', 'p')], ()),
        # last, so that they are still in .pending (PUT, POST and DELETE
        # commit it first, in Swift: is_deleted)
        up('cont-b', put_t=t + 2.5, objects=99, nbytes=9900, spi=1),
        up('deleted-later', put_t=t + 5, delete_t=t + 31),
        up('after-put', put_t=t + 46, objects=6, nbytes=60, spi=1),
    ]
    return steps


@acct_scenario('acct_created_by_rowsync_api',
               pairs=(('rowsync', 'swift'), ('swift', 'swift')))
def sc_acct_created_by_api(ctx, sk, rk):
    """An account made through `sk`'s account API is the DB a Swift account
    server makes from the same requests (read with Swift's AccountBroker,
    field by field, but for id and created_at); `sk`'s replicator ships it
    whole to its two Swift peers; then one of them, after an update of its
    own, ships it on (rsync to the other peer, whose copy is gone; usync
    back to the maker)."""
    acct, part, hsh, (mk, p1, p2) = ctx.place('apimade', (sk, rk, rk))
    ref_node = [n for n in ctx.cl.nodes if n.kind == 'swift' and
                n not in (mk, p1, p2)] or [p1]
    ref_node, ref_part = ref_node[0], spare_part(ctx)
    t = ctx.t0
    steps = creation_steps(t)
    (ref_res, got_res) = run_steps(ctx, steps, [(ref_node, ref_part, acct),
                                                (mk, part, acct)])
    problems = []
    for (label, what, ref), (_, _, got) in zip(ref_res, got_res):
        ctx.log('api %s: Swift %d, %s %d' % (what, ref[0], mk.kind, got[0]))
        if ref[0] != got[0]:
            problems.append('%s (%s): status Swift %d, got %d %s' % (
                label, what, ref[0], got[0], short(got[2], 200)))
    scratch = os.path.join(ctx.cl.root, 'oracle', 'api-%s' % hsh)
    ref = db_view(ctx, ref_node, ref_part, hsh, acct,
                  copy_to=os.path.join(scratch, 'swift'))
    got = db_view(ctx, mk, part, hsh, acct,
                  copy_to=os.path.join(scratch, mk.kind))
    ctx.log('%s: .pending %d bytes (Swift: %d)' % (
        mk.name, got['pending_bytes'], ref['pending_bytes']))
    problems += view_diffs('%s (%s) DB read by AccountBroker' % (
        mk.name, mk.kind), ref, got)
    rc, out = ctx.swift_info_cli(got['path'])
    if rc != 0 or 'Account: %s' % acct not in out:
        problems.append('swift-account-info on the copy: exit %d: %s' % (
            rc, out[-300:]))
    check(not problems, 'the API-made DB differs from Swift\'s: %s',
          '; '.join(problems))
    want = ref['plain_rows']

    # the maker's replicator ships it whole to both (Swift) peers
    st = ctx.replicate(mk, part)
    ctx.expect_stats(st, '%s pass' % mk.name, rsync=2, diff=0,
                     remote_merge=0, success=2)
    for n in (mk, p1, p2):
        ctx.expect_rows(n, part, hsh, want)
        problems += view_diffs('%s (%s) after %s\'s pass' % (
            n.name, n.kind, mk.name), ref, db_view(ctx, n, part, hsh, acct))
    for n in (p1, p2):
        check(tmp_empty(n), '%s tmp dir not empty', n.name)
    ctx.expect_same_db_info(part, hsh, [mk, p1, p2])
    check(not problems, '; '.join(problems))

    # Swift ships it on: p2's copy is gone, p1 gets an update of its own
    shutil.rmtree(os.path.dirname(ctx.db_path(p2, part, hsh)))
    onward = [('update onward', 'PUT', 'onward',
               container_update(put_t=t + 50, objects=7, nbytes=70), ())]
    for n, res in zip((ref_node, p1), run_steps(ctx, onward, [
            (ref_node, ref_part, acct), (p1, part, acct)])):
        for (label, what, resp) in res:
            check(resp[0] == 201, '%s on %s: %d %r', what, n.name, resp[0],
                  resp[2][:200])
    ref = db_view(ctx, ref_node, ref_part, hsh, acct,
                  copy_to=os.path.join(scratch, 'swift-2'))
    want = ref['plain_rows']
    st = ctx.replicate(p1, part)
    ctx.expect_stats(st, '%s pass' % p1.name, rsync=1, diff=1,
                     remote_merge=0, success=2)
    for n in (mk, p1, p2):
        ctx.expect_rows(n, part, hsh, want)
        problems += view_diffs('%s (%s) after %s\'s pass' % (
            n.name, n.kind, p1.name), ref, db_view(ctx, n, part, hsh, acct),
            skip=('max_row',))
    check(not problems, '; '.join(problems))
    ctx.expect_same_db_info(part, hsh, [mk, p1, p2])
    # and the maker finds nothing left to send
    st = ctx.replicate(mk, part)
    ctx.expect_stats(st, '%s final pass' % mk.name, rsync=0, diff=0,
                     remote_merge=0, success=2)
    check(st.get('no_change', 0) + st.get('hashmatch', 0) == 2,
          '%s final pass: no_change %s hashmatch %s, want 2 in all',
          mk.name, st.get('no_change'), st.get('hashmatch'))


# ------------------------------------------------- acct_api_answers_like_swift

def answer_steps(t):
    """The request sequence of acct_api_answers_like_swift."""
    J, X, P = ('format', 'json'), ('format', 'xml'), ('format', 'plain')
    conts = [('alpha', 0), ('beta-1', 0), ('beta-2', 1), ('beta-3-x', 0),
             ('beta-4', 0), ('delta', 1), ('gamma-\u2603', 0),
             ('quote"amp&<lt>', 0), ('sp ace', 1), ('zeta', 0)]
    steps = [
        ('HEAD absent', 'HEAD', None, [], ()),
        ('GET absent', 'GET', None, [], (J,)),
        ('update to absent account', 'PUT', 'alpha',
         container_update(put_t=t + 1), ()),
        ('POST absent', 'POST', None, [('X-Timestamp', ts(t + 1))], ()),
        ('PUT without X-Timestamp', 'PUT', None, [], ()),
        ('PUT bad X-Timestamp', 'PUT', None, [('X-Timestamp', 'x')], ()),
        ('PUT account', 'PUT', None, [
            ('X-Timestamp', ts(t + 1)), ('X-Account-Meta-Color', 'blue'),
            ('X-Account-Sysmeta-Thing', 'x')], ()),
        ('PUT account again', 'PUT', None, [('X-Timestamp', ts(t + 2))], ()),
        ('HEAD empty', 'HEAD', None, [], ()),
        ('GET empty plain', 'GET', None, [], ()),
        ('GET empty json', 'GET', None, [], (J,)),
        ('GET empty xml', 'GET', None, [], (X,)),
    ]
    for i, (name, spi) in enumerate(conts):
        big = 2 ** 53 + 1 if name == 'zeta' else (i + 1) * 100
        steps.append(('update %s' % name, 'PUT', name, container_update(
            put_t=t + 3 + i, objects=i + 1, nbytes=big, spi=spi,
            trans_id='tx-%d' % i), ()))
    steps += [
        ('update deleted container', 'PUT', 'epsilon', container_update(
            put_t=t + 20, delete_t=t + 21), ()),
        ('stale update', 'PUT', 'alpha', container_update(
            put_t=t + 0.5, objects=50, nbytes=5000), ()),
        ('POST metadata', 'POST', None, [
            ('X-Timestamp', ts(t + 30)), ('X-Account-Meta-Color', ''),
            ('X-Account-Meta-Shape', 'round'),
            ('X-Account-Meta-Snow', '\u2603'.encode('utf8')),
            ('X-Container-Meta-Ignored', 'no')], ()),
        ('POST without X-Timestamp', 'POST', None,
         [('X-Account-Meta-Shape', 'square')], ()),
        ('HEAD', 'HEAD', None, [], ()),
        ('HEAD json', 'HEAD', None, [], (J,)),
        ('GET plain', 'GET', None, [], ()),
        ('GET json', 'GET', None, [], (J,)),
        ('GET xml', 'GET', None, [], (X,)),
        ('GET format=plain', 'GET', None, [], (P,)),
        ('GET Accept json', 'GET', None, [('Accept', 'application/json')],
         ()),
        ('GET Accept text/xml', 'GET', None, [('Accept', 'text/xml')], ()),
        ('GET Accept image/png', 'GET', None, [('Accept', 'image/png')], ()),
        ('GET format=bogus', 'GET', None, [], (('format', 'bogus'),)),
        ('GET prefix', 'GET', None, [], (J, ('prefix', 'beta-'))),
        ('GET prefix plain', 'GET', None, [], (('prefix', 'beta-'),)),
        ('GET delimiter json', 'GET', None, [], (J, ('delimiter', '-'))),
        ('GET delimiter xml', 'GET', None, [], (X, ('delimiter', '-'))),
        ('GET delimiter plain', 'GET', None, [], (('delimiter', '-'),)),
        ('GET prefix+delimiter', 'GET', None, [],
         (J, ('prefix', 'beta-'), ('delimiter', '-'))),
        ('GET marker', 'GET', None, [], (J, ('marker', 'beta-2'))),
        ('GET end_marker', 'GET', None, [], (J, ('end_marker', 'delta'))),
        ('GET marker+end_marker', 'GET', None, [],
         (X, ('marker', 'alpha'), ('end_marker', 'gamma'))),
        ('GET limit', 'GET', None, [], (J, ('limit', '2'))),
        ('GET limit=0', 'GET', None, [], (J, ('limit', '0'))),
        ('GET limit too big', 'GET', None, [], (J, ('limit', '10001'))),
        ('GET reverse', 'GET', None, [], (J, ('reverse', 'true'))),
        ('GET reverse plain', 'GET', None, [], (('reverse', 'on'),)),
        ('GET reverse+marker+limit', 'GET', None, [],
         (J, ('reverse', 'yes'), ('marker', 'delta'), ('limit', '3'))),
        ('GET reverse+prefix+delimiter', 'GET', None, [],
         (X, ('reverse', '1'), ('prefix', 'beta'), ('delimiter', '-'))),
        ('GET unicode marker', 'GET', None, [],
         (J, ('marker', 'gamma-\u2603'))),
        ('GET no match plain', 'GET', None, [], (('prefix', 'nothing'),)),
        ('GET no match json', 'GET', None, [], (J, ('prefix', 'nothing'))),
        ('GET no match xml', 'GET', None, [], (X, ('prefix', 'nothing'))),
        ('update deletes beta-2', 'PUT', 'beta-2', container_update(
            put_t=t + 5, delete_t=t + 40, spi=1), ()),
        ('HEAD after container delete', 'HEAD', None, [], ()),
        ('GET json after container delete', 'GET', None, [], (J,)),
        ('DELETE without X-Timestamp', 'DELETE', None, [], ()),
        ('DELETE account', 'DELETE', None, [('X-Timestamp', ts(t + 50))],
         ()),
        ('HEAD after delete', 'HEAD', None, [], ()),
        ('GET after delete', 'GET', None, [], (J,)),
        ('GET plain after delete', 'GET', None, [], ()),
        ('POST after delete', 'POST', None, [('X-Timestamp', ts(t + 51))],
         ()),
        ('update after delete', 'PUT', 'late', container_update(
            put_t=t + 52, objects=1, nbytes=1), ()),
        ('update after delete, override', 'PUT', 'late-override',
         container_update(put_t=t + 52, objects=1, nbytes=1) +
         [('X-Account-Override-Deleted', 'yes')], ()),
        ('PUT after delete', 'PUT', None, [('X-Timestamp', ts(t + 60))],
         ()),
        ('DELETE again', 'DELETE', None, [('X-Timestamp', ts(t + 61))], ()),
    ]
    return steps


@acct_scenario('acct_api_answers_like_swift',
               pairs=(('swift', 'rowsync'), ('swift', 'swift')))
def sc_acct_api_answers(ctx, sk, rk):
    """The same account API requests to a Swift account server (`sk`) and
    to the server under test (`rk`): every status, the headers Swift's
    proxy and clients read, and the body (JSON parsed, XML and plain text
    byte for byte) must be Swift's; so must the DB each leaves behind."""
    acct, part, hsh, (ref_node, node) = ctx.place('apianswers', (sk, rk))
    steps = answer_steps(ctx.t0)
    ref_res, got_res = run_steps(ctx, steps, [(ref_node, part, acct),
                                              (node, part, acct)])
    ref_db = db_view(ctx, ref_node, part, hsh, acct)
    got_db = db_view(ctx, node, part, hsh, acct)
    problems = []
    for (label, what, ref), (_, _, got) in zip(ref_res, got_res):
        ctx.log('api %s: Swift %d, %s %d' % (what, ref[0], node.kind,
                                              got[0]))
        problems += answer_diffs('%s (%s)' % (label, what),
                                 answer(ref, ref_db['created_at']),
                                 answer(got, got_db['created_at']))
    problems += view_diffs('the DB left behind', ref_db, got_db)
    for p in problems:
        ctx.log('difference: %s' % p)
    check(not problems, '%d difference(s) from Swift: %s', len(problems),
          ' | '.join(problems))
