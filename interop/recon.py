"""Swift's recon and healthcheck middlewares: a rowsync node's answers
against a Swift node's (`recon_matches_swift`).

Every node's container-server.conf and account-server.conf has Swift's
pipeline `healthcheck recon <kind>-server` (cluster.py's
`filter_sections`): the recon cache is the node dir (where its replicators
write), the devices and swift_dir are the node's ([DEFAULT]).

`recon_matches_swift[swift->rowsync]` takes a Swift node (the reference)
and a rowsync node and gives both the same inputs: a container.recon
written by a real Swift replicator pass (copied to the other node), Swift's
`dump_recon_cache` adding sharding / auditor / updater keys, account.recon
the same way, object.recon, drive.recon and relinker.recon written by hand
(unsorted keys, `1e3`-style floats, a 2^64+1 int, escapes), the same
quarantined dirs on both devices (`<dev>/quarantined/{containers,accounts,
objects,objects-1}/...`; whatever was there before is moved aside and put
back), and a Swift `.ismount` stub on both devices for the "mounted" case.
Then, on the container port and on the account port of each node:

- exact (status, Content-Type, Content-Length and body text, after the
  node's devices path and device name are replaced by placeholders):
  every recon cache endpoint, `quarantined`, `ringmd5`, `swiftconfmd5`,
  `version`, `devices`, `unmounted`, `mounted`, `diskusage` of unmounted
  devices, 404s for unknown paths, `POST`/`HEAD` of a recon path, and
  `/healthcheck` (GET, HEAD, PUT; 503 `DISABLED BY FILE` with the
  disable_path file);
- shapes: `time` (a float within a minute of the other's), `load`, `mem`,
  `sockstat` (same keys in the same order, same types), `diskusage` of
  "mounted" devices (same keys, same size, used + avail = size);
- `swift-recon` (the venv's, with `-z <the node's zone>` so that it asks
  one node) `--replication --diskusage --quarantined --auditor --unmounted
  --driveaudit --swift-versions --time -v`, plus `--updater --sharding`
  for containers, and `--md5`, must print the same report for both nodes
  (timestamps, host:port, "N seconds ago", device names and disk-usage
  figures normalised). `--md5` runs through `swift.cli.recon` with its
  `SWIFT_CONF_FILE` pointed at the cluster's swift.conf (the CLI binds
  `/etc/swift/swift.conf` at import; the harness never writes there).

`[swift->swift]` is the control: two Swift nodes under the same
comparison.
"""

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import time

from harness import Fail, check, row, scenario

SWIFT_RECON = os.path.join(os.path.dirname(sys.executable), 'swift-recon')
RECON_FILES = ('container.recon', 'account.recon', 'object.recon',
               'drive.recon', 'relinker.recon')

# Answers that must be equal byte for byte (once node names are replaced).
EXACT = (
    'replication/container', 'replication/account', 'replication/object',
    'replication', 'sharding', 'auditor/container', 'auditor/account',
    'auditor/object', 'updater/container', 'updater/object',
    'expirer/object', 'reconstruction/object', 'async', 'driveaudit',
    'relinker', 'quarantined', 'ringmd5', 'swiftconfmd5', 'version',
    'devices', 'unmounted', 'mounted',
    # unknown to Swift's middleware: 404 "Invalid path: ..."
    '', 'nope', 'replication/', 'replication/container/x',
    'updater/account', 'expirer/container', 'a%20b', 'version?x=1',
)


def request(port, method, path, timeout=10):
    """(status, content-type, content-length, body text)."""
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        c.putrequest(method, path, skip_accept_encoding=True)
        if method in ('PUT', 'POST'):
            c.putheader('Content-Length', '0')
        c.endheaders()
        r = c.getresponse()
        body = r.read()
        return (r.status, r.getheader('Content-Type'),
                r.getheader('Content-Length'), body.decode('utf8'))
    finally:
        c.close()


def norm(text, node):
    """The node's own names as placeholders, so that two nodes' answers can
    be compared."""
    return text.replace(node.devices, '<devices>').replace(node.device,
                                                           '<device>')


class Side(object):
    """One node's server of one kind (container or account port)."""

    def __init__(self, node, port):
        self.node, self.port = node, port

    def get(self, method, path):
        st, ct, cl, body = request(self.port, method, path)
        return st, ct, cl, norm(body, self.node)

    def json(self, path):
        st, ct, _, body = self.get('GET', '/recon/' + path)
        check(st == 200 and ct == 'application/json',
              '%s:%d /recon/%s: %s %s %s', self.node.name, self.port, path,
              st, ct, body[:200])
        return json.loads(body)

    def __str__(self):
        return '%s(%s):%d' % (self.node.name, self.node.kind, self.port)


def compare_exact(ref, got, diffs, method='GET', path=''):
    a, b = ref.get(method, path), got.get(method, path)
    if a != b:
        diffs.append('%s %s: Swift %r, %s %r' % (method, path, a, got, b))


def compare_shapes(ref, got, diffs):
    def types(v):
        return [type(x).__name__ for x in v.values()]

    t1, t2 = ref.json('time'), got.json('time')
    if not (isinstance(t1, float) and isinstance(t2, float)
            and abs(t1 - t2) < 60):
        diffs.append('time: Swift %r, %s %r' % (t1, got, t2))
    for path in ('load', 'mem', 'sockstat'):
        a, b = ref.json(path), got.json(path)
        if list(a) != list(b) or types(a) != types(b):
            diffs.append('%s keys/types: Swift %s %s, %s %s %s' % (
                path, list(a), types(a), got, list(b), types(b)))
    a, b = ref.json('mem'), got.json('mem')
    if a.get('MemTotal') != b.get('MemTotal'):
        diffs.append('mem MemTotal: Swift %r, %s %r' % (
            a.get('MemTotal'), got, b.get('MemTotal')))
    a, b = ref.json('load'), got.json('load')
    if not (isinstance(b['processes'], int) and isinstance(b['tasks'], str)):
        diffs.append('load types: %r' % b)


def compare_mounted_diskusage(ref, got, diffs):
    a, b = ref.json('diskusage'), got.json('diskusage')
    if len(a) != 1 or len(b) != 1:
        diffs.append('diskusage: Swift %r, %s %r' % (a, got, b))
        return
    a, b = a[0], b[0]
    if list(a) != list(b) or a['device'] != b['device'] or \
            a['mounted'] is not True or b['mounted'] is not True or \
            a['size'] != b['size'] or \
            b['used'] + b['avail'] != b['size'] or \
            a['used'] + a['avail'] != a['size']:
        diffs.append('mounted diskusage: Swift %r, %s %r' % (a, got, b))


# ---------------------------------------------------------------- inputs

def write_inputs(ref, other):
    """The recon cache files: container.recon from a real Swift pass is
    already in ref's dir; Swift's dump_recon_cache adds keys; the rest by
    hand. Then the same files go to `other`'s dir."""
    from swift.common.utils import dump_recon_cache
    import logging
    logger = logging.getLogger('recon-scenario')
    now = time.time()
    dump_recon_cache({
        'sharding_stats': {'sharding': {
            'sharding_candidates': {'found': 1, 'top': [{
                'account': 'AUTH_interop', 'container': 'snow-\u2603',
                'object_count': 2 ** 64 + 1, 'file_size': 12345,
                'meta_timestamp': '1700000000.00000', 'node_index': 0,
                'path': '/srv/x.db', 'root': 'AUTH_interop/c'}]},
            'visited': {'attempted': 3, 'success': 3, 'failure': 0,
                        'skipped': 0, 'completed': 0.1 + 0.2}}},
        'sharding_time': 0.123456789, 'sharding_last': now - 100,
        'container_updater_sweep': 1.5e-7,
        'container_audits_passed': 12, 'container_audits_failed': 0,
        'container_audits_since': now - 7,
        'container_auditor_pass_completed': 2.0,
    }, os.path.join(ref.dir, 'container.recon'), logger)
    dump_recon_cache({
        'replication_stats': {
            'attempted': 4, 'diff': 1, 'diff_capped': 0, 'empty': 0,
            'failure': 1, 'failure_nodes': {'127.0.0.1': {'sdb9': 1}},
            'hashmatch': 0, 'no_change': 2, 'remote_merge': 0, 'remove': 0,
            'rsync': 1, 'start': now - 30.5, 'success': 7, 'ts_repl': 0},
        'replication_time': 1.25, 'replication_last': now - 29.25,
        'account_audits_passed': 5, 'account_audits_failed': 1,
        'account_audits_since': now - 3, 'account_auditor_pass_completed':
        0.75,
    }, os.path.join(ref.dir, 'account.recon'), logger)
    with open(os.path.join(ref.dir, 'object.recon'), 'w') as f:
        # by hand: unsorted keys, exponent floats, a duplicate key
        f.write('{"object_replication_time": 1e1, "async_pending": 3, '
                '"object_replication_last": 1.7e9, "async_pending_last": '
                '%r, "object_auditor_stats_ALL": {"passes": 1, '
                '"quarantined": 0, "bytes_processed": 18446744073709551617},'
                ' "object_updater_sweep": 0.5, "object_expiration_pass": '
                '2.5, "expired_last_pass": 0, "object_reconstruction_last": '
                'null, "async_pending": 4}\n' % (now,))
    with open(os.path.join(ref.dir, 'drive.recon'), 'w') as f:
        f.write('{"drive_audit_errors": 2, "ignored": [1, 2]}')
    with open(os.path.join(ref.dir, 'relinker.recon'), 'w') as f:
        f.write('  {"workers": {"100": {"devices": ["sdz9"], "stats": '
                '{"files": 1, "linked": 0}, "return_code": 0, "timestamp":'
                ' 1700000000.123456}}, "devices": {"sdz9": {"step": '
                '"relink", "parts_done": 0, "total_parts": 256, '
                '"timestamp": 1700000000.5}}}  \n')
    for name in RECON_FILES:
        shutil.copyfile(os.path.join(ref.dir, name),
                        os.path.join(other.dir, name))


def make_quarantine(node):
    q = os.path.join(node.devices, node.device, 'quarantined')
    for d in ('containers/h1', 'containers/h2-extra', 'accounts/a1',
              'objects/o1', 'objects-1/o2', 'objects-1/o3'):
        os.makedirs(os.path.join(q, d))
    os.makedirs(os.path.join(q, 'containers', 'h1', 'not-counted'))


# ----------------------------------------------------------- swift-recon

def swift_recon(cl, args, md5=False):
    """swift-recon's report, or for --md5 swift.cli.recon with its
    SWIFT_CONF_FILE pointed at the cluster's swift.conf."""
    if md5:
        cmd = [sys.executable, '-c',
               'import sys\n'
               'import swift.cli.recon as r\n'
               'r.SWIFT_CONF_FILE = sys.argv[1]\n'
               'sys.argv = ["swift-recon"] + sys.argv[2:]\n'
               'r.main()\n', cl.swift_conf] + args
    else:
        cmd = [SWIFT_RECON] + args
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    check(p.returncode == 0 and 'Traceback' not in p.stderr,
          'swift-recon %s exited %d: %s', ' '.join(args), p.returncode,
          (p.stdout + p.stderr)[-800:])
    return p.stdout


def norm_report(text, node, port, figures=False):
    text = norm(text, node)
    text = text.replace('127.0.0.1:%d' % port, '<host>')
    text = re.sub(r'\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\]', '[<time>]', text)
    text = re.sub(r'\(\d+ (seconds|minutes|hours|days) ago\)', '(<ago>)',
                  text)
    if figures:
        text = re.sub(r'\d+(\.\d+)?', '<n>', text)
    return text


def compare_reports(cl, ref, got, server_type, diffs, log, mounted=False):
    def report(side, args, md5=False):
        zone = str(side.node.id + 1)
        out = swift_recon(cl, [server_type, '-z', zone, '--swiftdir',
                               cl.swift_dir] + args, md5=md5)
        return norm_report(out, side.node, side.port, figures=mounted)

    if mounted:
        runs = [(['--diskusage'], False)]
    else:
        args = ['-v', '--replication', '--diskusage', '--quarantined',
                '--auditor', '--unmounted', '--driveaudit',
                '--swift-versions']
        if server_type == 'container':
            args += ['--updater', '--sharding']
        # (not verbose: it would print each node's own clock)
        runs = [(args, False), (['--time', '--jitter', '30'], False),
                (['--md5'], True)]
    for args, md5 in runs:
        a, b = report(ref, args, md5), report(got, args, md5)
        log('swift-recon %s %s on %s:\n%s' % (server_type, ' '.join(args),
                                               got, b))
        if a != b:
            import difflib
            d = [ln for ln in difflib.unified_diff(
                a.splitlines(), b.splitlines(), lineterm='', n=0)
                if ln[:1] in '+-' and ln[:3] not in ('+++', '---')]
            diffs.append('swift-recon %s %s: %s' % (
                server_type, ' '.join(args), ' | '.join(d[:6])))
        if md5:
            check(b.count('1/1 hosts matched, 0 error[s]') == 2,
                  'swift-recon %s --md5 on %s: %s', server_type, got, b)
        elif not mounted and '--replication' in args:
            for want in ('[replication_success] low: 7'
                         if server_type == 'account' else
                         '[replication_success]',
                         'reported: 1', 'Versions matched (2.38.3)',
                         '[quarantined_%ss] low: ' % server_type):
                check(want in b, 'swift-recon %s on %s lacks %r: %s',
                      server_type, got, want, b[-1500:])


# -------------------------------------------------------------- scenario

@scenario('recon_matches_swift', pairs=(('swift', 'rowsync'),
                                        ('swift', 'swift')),
          needs_rowsync_replicator=False)
def sc_recon_matches_swift(ctx, sk, rk):
    cl = ctx.cl
    # A real Swift replicator pass writes the reference's container.recon.
    cont, part, hsh, (ref,) = ctx.place('recon', ('swift',))
    ctx.make_db(ref, part, hsh, cont, ctx.t0,
                rows=[row('o%d' % i, ctx.t0 + i) for i in range(5)])
    backups = {}
    for n in cl.nodes:
        if n.kind == rk and n is not ref:
            other = n
            break
    else:
        raise Fail('no second %s node' % rk)
    nodes = (ref, other)
    for n in nodes:
        for name in RECON_FILES:
            path = os.path.join(n.dir, name)
            if os.path.exists(path):
                with open(path, 'rb') as f:
                    backups[path] = f.read()
            else:
                backups[path] = None
    stats = ctx.replicate(ref, part)
    ctx.expect_stats(stats, '%s pass' % ref.name, rsync=2, success=2)
    moved = []
    try:
        write_inputs(ref, other)
        for n in nodes:
            q = os.path.join(n.devices, n.device, 'quarantined')
            if os.path.exists(q):
                os.rename(q, q + '.before-recon')
                moved.append(q)
            make_quarantine(n)
        diffs = []
        for ports in (('port', 'container'), ('account_port', 'account')):
            attr, stype = ports
            a = Side(ref, getattr(ref, attr))
            b = Side(other, getattr(other, attr))
            for path in EXACT:
                compare_exact(a, b, diffs, 'GET', '/recon/' + path)
            compare_exact(a, b, diffs, 'GET', '/recon/diskusage')
            compare_exact(a, b, diffs, 'POST', '/recon/version')
            compare_exact(a, b, diffs, 'HEAD', '/recon/quarantined')
            for method in ('GET', 'HEAD', 'PUT'):
                compare_exact(a, b, diffs, method, '/healthcheck')
            compare_shapes(a, b, diffs)
            # the values, not only the agreement
            q = b.json('quarantined')
            check(q == {'objects': 3, 'containers': 2, 'accounts': 1,
                        'policies': {'0': {'objects': 1},
                                     '1': {'objects': 2}}},
                  '%s quarantined: %r', b, q)
            r = b.json('replication/' + stype)
            check(isinstance(r['replication_stats'], dict) and
                  r['replication_stats'].get('success') ==
                  (2 if stype == 'container' else 7),
                  '%s replication: %r', b, r)
            ring = os.path.join(cl.swift_dir, '%s.ring.gz' % stype)
            check(ring in b.json('ringmd5'), '%s ringmd5 lacks %s', b, ring)
            check(list(b.json('swiftconfmd5')) == [cl.swift_conf],
                  '%s swiftconfmd5: %r', b, b.json('swiftconfmd5'))
            compare_reports(cl, a, b, stype, diffs, ctx.log)

            # cluster.py's disable_path for this server
            disable = ('healthcheck-disabled' if stype == 'container'
                       else 'account-healthcheck-disabled')
            for n in nodes:
                open(os.path.join(n.dir, disable), 'w').close()
            try:
                compare_exact(a, b, diffs, 'GET', '/healthcheck')
                st = b.get('GET', '/healthcheck')
                check(st[0] == 503 and st[3] == 'DISABLED BY FILE',
                      '%s disabled healthcheck: %r', b, st)
            finally:
                for n in nodes:
                    os.unlink(os.path.join(n.dir, disable))

        # The devices "mounted" as Swift's check_mount allows it (.ismount).
        for n in nodes:
            open(os.path.join(n.devices, n.device, '.ismount'), 'w').close()
        try:
            for attr, stype in (('port', 'container'),
                                ('account_port', 'account')):
                a = Side(ref, getattr(ref, attr))
                b = Side(other, getattr(other, attr))
                compare_exact(a, b, diffs, 'GET', '/recon/unmounted')
                check(b.json('unmounted') == [], '%s unmounted: %r', b,
                      b.json('unmounted'))
                compare_mounted_diskusage(a, b, diffs)
                compare_reports(cl, a, b, stype, diffs, ctx.log,
                                mounted=True)
        finally:
            for n in nodes:
                os.unlink(os.path.join(n.devices, n.device, '.ismount'))
        check(not diffs, '%d differences: %s', len(diffs),
              ' || '.join(d[:600] for d in diffs[:6]))
    finally:
        for n in nodes:
            q = os.path.join(n.devices, n.device, 'quarantined')
            shutil.rmtree(q, ignore_errors=True)
        for q in moved:
            os.rename(q + '.before-recon', q)
        for path, data in backups.items():
            if data is None:
                if os.path.exists(path):
                    os.unlink(path)
            else:
                with open(path, 'wb') as f:
                    f.write(data)
