# Copyright (c) rowsync authors. Apache-2.0, like Swift.
"""The all-in-one Swift cluster that interop/functional/run.sh runs Swift's
functional tests against. See interop/functional/README.md.

    cluster.py setup ROOT --mode MODE [--replicas N]
        Write ROOT/etc (swift.conf with policies gold (default) and silver,
        account/container/object/object-1 rings built with Swift's
        swift-ring-builder, proxy-server.conf with tempauth and SAIO's
        middleware pipeline, object-server.conf, account-server.conf,
        container-server.conf) and ROOT/test.conf (the [func_test] section
        test/functional reads). Prints what run.sh starts, one process a
        line: `KIND NAME PORT CONF` where KIND is swift or rowsync.

    cluster.py swift SWIFT_DIR SERVER CONF
        Run one of Swift's servers (proxy-server, object-server,
        account-server, container-server) with SWIFT_DIR/swift.conf (hash
        prefix/suffix and storage policies; Swift otherwise reads
        /etc/swift/swift.conf, which the harness never touches) and its
        log lines on stderr instead of syslog.

    cluster.py wait ROOT --pids PID,... [--timeout S]
        Wait (bounded) until every server of ROOT/cluster.json answers
        HTTP, failing at once if one of PIDS has exited.

    cluster.py accounts ROOT
        PUT the test accounts AUTH_test and AUTH_test2 through the proxy (as
        reseller admin), as Swift's in-process functional setup does.

    cluster.py compare ROOT [--max N]
        Every account and container DB on disk: HEAD and GET ?format=json
        to each replica's server; print where the replicas' answers differ
        (in mixed mode: Swift's answers against rowsync's for the same DB).

    cluster.py hits ROOT
        How many requests each account and container server logged, by
        method and status (proves the tests' traffic went through rowsync;
        compare a rowsync run's lines with the Swift control's), one
        `KIND NAME COUNT METHOD:STATUS=N...` line per server.
"""

import argparse
import http.client
import json
import os
import pwd
import re
import socket
import subprocess
import sys
import time

HASH_PREFIX = 'rowsync-func-prefix'
HASH_SUFFIX = 'rowsync-func-suffix'
PART_POWER = 8

# MODE -> (account servers, container servers). `mixed`: a Swift server
# and a rowsync server of each kind, holding different replicas of the same
# rings (devices sdb1, sdb3, ... on rowsync's; sdb2, sdb4, ... on Swift's):
# a cluster halfway through replacing Swift's servers with rowsync.
MODES = {
    'swift': ('swift', 'swift'),
    'rowsync-container': ('swift', 'rowsync'),
    'rowsync-account': ('rowsync', 'swift'),
    'rowsync': ('rowsync', 'rowsync'),
    'mixed': ('mixed', 'mixed'),
}


def device_kinds(kind, n):
    """swift or rowsync for each of the N devices of a ring."""
    if kind != 'mixed':
        return [kind] * n
    return ['rowsync' if i % 2 == 0 else 'swift' for i in range(n)]

SWIFT_SERVERS = {
    'proxy-server': 'swift.proxy.server',
    'object-server': 'swift.obj.server',
    'account-server': 'swift.account.server',
    'container-server': 'swift.container.server',
}

# SAIO's proxy pipeline (doc/saio/swift/proxy-server.conf) with the
# in-process cache (func_cache.py) for memcached.
PIPELINE = ('catch_errors gatekeeper healthcheck proxy-logging cache '
            'etag-quoter listing_formats bulk tempurl ratelimit crossdomain '
            'container_sync tempauth staticweb copy container-quotas '
            'account-quotas slo dlo versioned_writes symlink keymaster '
            'encryption proxy-logging proxy-server')


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def user():
    return pwd.getpwuid(os.getuid()).pw_name


def common_default(devices, port, swift_dir, log_name):
    return (
        '[DEFAULT]\n'
        'devices = %s\n'
        'mount_check = false\n'
        'bind_ip = 127.0.0.1\n'
        'bind_port = %d\n'
        'swift_dir = %s\n'
        'user = %s\n'
        'workers = 0\n'
        'log_name = %s\n'
        'log_level = INFO\n'
        'disable_fallocate = true\n'
        'fallocate_reserve = 0\n'
        '\n' % (devices, port, swift_dir, user(), log_name))


def setup(args):
    root = os.path.abspath(args.root)
    etc = os.path.join(root, 'etc')
    devices = os.path.join(root, 'srv', 'node')
    for d in (etc, devices, os.path.join(root, 'logs')):
        os.makedirs(d, exist_ok=True)
    n = args.replicas
    dev_kinds = dict(zip(('account', 'container'),
                         (device_kinds(k, n) for k in MODES[args.mode])))

    with open(os.path.join(etc, 'swift.conf'), 'w') as f:
        f.write('[swift-hash]\n'
                'swift_hash_path_prefix = %s\n'
                'swift_hash_path_suffix = %s\n'
                '\n'
                '[storage-policy:0]\n'
                'name = gold\n'
                'policy_type = replication\n'
                'default = yes\n'
                '\n'
                '[storage-policy:1]\n'
                'name = silver\n'
                'policy_type = replication\n'
                % (HASH_PREFIX, HASH_SUFFIX))

    # One account and one container server per implementation the mode
    # uses (two in mixed mode), keyed (kind, impl).
    names = ['proxy', 'object'] + [
        (kind, impl) for kind in ('account', 'container')
        for impl in sorted(set(dev_kinds[kind]))]
    ports = {name: free_port() for name in names}
    while len(set(ports.values())) < len(ports):
        ports = {name: free_port() for name in names}

    # Rings: N devices (sdb1..sdbN, one zone each), N replicas: every
    # account/container/object has N replicas, one per device. A device's
    # server is the one of its kind (in mixed mode, device_kinds's).
    rb = os.path.join(os.path.dirname(sys.executable), 'swift-ring-builder')
    for ring, dev_ports in (
            ('account', [ports[('account', k)] for k in dev_kinds['account']]),
            ('container', [ports[('container', k)]
                           for k in dev_kinds['container']]),
            ('object', [ports['object']] * n),
            ('object-1', [ports['object']] * n)):
        builder = os.path.join(etc, ring + '.builder')

        def run(*a, ok=(0,)):
            p = subprocess.run([rb, builder] + list(a), capture_output=True,
                               text=True, timeout=120)
            if p.returncode not in ok:
                sys.exit('swift-ring-builder %s %s failed (%d): %s%s' % (
                    ring, ' '.join(a), p.returncode, p.stdout, p.stderr))
        run('create', str(PART_POWER), str(n), '0')
        for i in range(n):
            run('add', '--region', '1', '--zone', str(i + 1),
                '--ip', '127.0.0.1', '--port', str(dev_ports[i]),
                '--device', 'sdb%d' % (i + 1), '--weight', '100')
        run('rebalance', '--seed', '1', ok=(0, 1))  # 1: warnings only
    for i in range(n):
        os.makedirs(os.path.join(devices, 'sdb%d' % (i + 1)), exist_ok=True)

    conf = {}
    conf['proxy'] = os.path.join(etc, 'proxy-server.conf')
    with open(conf['proxy'], 'w') as f:
        f.write(
            '[DEFAULT]\n'
            'bind_ip = 127.0.0.1\n'
            'bind_port = %(port)d\n'
            'swift_dir = %(etc)s\n'
            'user = %(user)s\n'
            'workers = 0\n'
            'log_name = proxy-server\n'
            'log_level = INFO\n'
            '\n'
            '[pipeline:main]\n'
            'pipeline = %(pipeline)s\n'
            '\n'
            '[filter:catch_errors]\nuse = egg:swift#catch_errors\n\n'
            '[filter:gatekeeper]\nuse = egg:swift#gatekeeper\n\n'
            '[filter:healthcheck]\nuse = egg:swift#healthcheck\n\n'
            '[filter:proxy-logging]\nuse = egg:swift#proxy_logging\n\n'
            '[filter:cache]\npaste.filter_factory = func_cache:filter_factory\n\n'
            '[filter:etag-quoter]\nuse = egg:swift#etag_quoter\n'
            'enable_by_default = false\n\n'
            '[filter:listing_formats]\nuse = egg:swift#listing_formats\n\n'
            '[filter:bulk]\nuse = egg:swift#bulk\n\n'
            '[filter:tempurl]\nuse = egg:swift#tempurl\n\n'
            '[filter:ratelimit]\nuse = egg:swift#ratelimit\n\n'
            '[filter:crossdomain]\nuse = egg:swift#crossdomain\n\n'
            '[filter:container_sync]\nuse = egg:swift#container_sync\n'
            'current = //saio/saio_endpoint\n\n'
            '[filter:tempauth]\n'
            'use = egg:swift#tempauth\n'
            'reseller_prefix = AUTH, SERVICE\n'
            'SERVICE_require_group = service\n'
            'user_admin_admin = admin .admin .reseller_admin\n'
            'user_test_tester = testing .admin\n'
            'user_test_tester2 = testing2 .admin\n'
            'user_test_tester3 = testing3\n'
            'user_test2_tester2 = testing2 .admin\n'
            'user_test5_tester5 = testing5 service\n'
            '\n'
            '[filter:staticweb]\nuse = egg:swift#staticweb\n\n'
            '[filter:copy]\nuse = egg:swift#copy\n\n'
            '[filter:container-quotas]\nuse = egg:swift#container_quotas\n\n'
            '[filter:account-quotas]\nuse = egg:swift#account_quotas\n\n'
            '[filter:slo]\nuse = egg:swift#slo\n\n'
            '[filter:dlo]\nuse = egg:swift#dlo\n\n'
            '[filter:versioned_writes]\nuse = egg:swift#versioned_writes\n'
            'allow_versioned_writes = true\n'
            'allow_object_versioning = true\n\n'
            '[filter:symlink]\nuse = egg:swift#symlink\n\n'
            '[filter:keymaster]\nuse = egg:swift#keymaster\n'
            'encryption_root_secret = '
            'changeme/changeme/changeme/changeme/change/=\n\n'
            '[filter:encryption]\nuse = egg:swift#encryption\n\n'
            '[app:proxy-server]\n'
            'use = egg:swift#proxy\n'
            'allow_account_management = true\n'
            'account_autocreate = true\n'
            % dict(port=ports['proxy'], etc=etc, user=user(),
                   pipeline=PIPELINE))

    # SAIO's realm: the proxy's container_sync filter (`current`) and the
    # container servers (X-Container-Sync-To) read it from swift_dir.
    with open(os.path.join(etc, 'container-sync-realms.conf'), 'w') as f:
        f.write('[saio]\n'
                'key = changeme\n'
                'key2 = changeme\n'
                'cluster_saio_endpoint = http://127.0.0.1:%d/v1/\n'
                % ports['proxy'])

    conf['object'] = os.path.join(etc, 'object-server.conf')
    with open(conf['object'], 'w') as f:
        f.write(common_default(devices, ports['object'], etc, 'object-server')
                + '[pipeline:main]\npipeline = object-server\n\n'
                '[app:object-server]\nuse = egg:swift#object\n')

    # One config per server, read by Swift's server and by rowsync alike:
    # account-server.conf, container-server.conf (in mixed mode
    # account-server-rowsync.conf, account-server-swift.conf, ...).
    servers = []
    for kind in ('account', 'container'):
        impls = sorted(set(dev_kinds[kind]))
        for impl in impls:
            name = '%s-server' % kind
            if len(impls) > 1:
                name += '-' + impl
            conf[name] = os.path.join(etc, name + '.conf')
            with open(conf[name], 'w') as f:
                f.write(common_default(devices, ports[(kind, impl)], etc,
                                       name)
                        + '[pipeline:main]\npipeline = %s-server\n\n'
                        '[app:%s-server]\nuse = egg:swift#%s\n'
                        'log_requests = true\n' % (kind, kind, kind))
            servers.append((impl, name, ports[(kind, impl)], conf[name]))

    test_conf = os.path.join(root, 'test.conf')
    with open(test_conf, 'w') as f:
        f.write(
            '[func_test]\n'
            'auth_uri = http://127.0.0.1:%d/auth/v1.0\n'
            'auth_version = 1\n'
            # primary account, admin
            'account = test\nusername = tester\npassword = testing\n'
            # a second account, admin
            'account2 = test2\nusername2 = tester2\npassword2 = testing2\n'
            # the primary account, not admin
            'username3 = tester3\npassword3 = testing3\n'
            # service tokens (reseller_prefix AUTH, SERVICE)
            'account5 = test5\nusername5 = tester5\npassword5 = testing5\n'
            'service_prefix = SERVICE\n'
            # reseller admin
            'account6 = admin\nusername6 = admin\npassword6 = admin\n'
            'collate = C\n'
            'insecure = no\n'
            '\n'
            '[unit_test]\nfake_syslog = False\n'
            % ports['proxy'])

    procs = [
        ('swift', 'proxy-server', ports['proxy'], conf['proxy']),
        ('swift', 'object-server', ports['object'], conf['object']),
    ] + servers
    with open(os.path.join(root, 'cluster.json'), 'w') as f:
        json.dump({'mode': args.mode, 'swift_dir': etc, 'devices': devices,
                   'replicas': n, 'test_conf': test_conf,
                   'devices_of': {
                       kind: [{'device': 'sdb%d' % (i + 1), 'impl': k,
                               'port': ports[(kind, k)]}
                              for i, k in enumerate(dev_kinds[kind])]
                       for kind in ('account', 'container')},
                   'procs': [dict(zip(('kind', 'name', 'port', 'conf'), p))
                             for p in procs]}, f, indent=2)
    for p in procs:
        print('%s %s %d %s' % p)
    print('rings: account %s; container %s' % (
        ' '.join('sdb%d=%s' % (i + 1, k)
                 for i, k in enumerate(dev_kinds['account'])),
        ' '.join('sdb%d=%s' % (i + 1, k)
                 for i, k in enumerate(dev_kinds['container']))),
          file=sys.stderr)


def swift_server(argv):
    if len(argv) != 3 or argv[1] not in SWIFT_SERVERS:
        sys.exit('usage: cluster.py swift SWIFT_DIR {%s} CONF'
                 % '|'.join(SWIFT_SERVERS))
    swift_dir, server, conf = argv
    import importlib
    import logging
    # A private copy of stderr: Swift's capture_stdio() points fds 0-2 at
    # /dev/null once a server is up; this one survives.
    stream = os.fdopen(os.dup(2), 'w', buffering=1)

    from swift.common.utils import NoopMutex

    class StderrLogHandler(logging.StreamHandler):
        def __init__(self, *args, **kwargs):
            logging.StreamHandler.__init__(self, stream)

        def createLock(self):
            # As Swift's ThreadSafeSysLogHandler: the object server logs from
            # tpool threads too, where logging's (green) lock would make
            # eventlet fail ("Cannot switch to a different thread") and
            # hang the server.
            self.lock = NoopMutex()

        def format(self, record):
            t = time.strftime('%H:%M:%S', time.localtime(record.created))
            return '%s.%03d %s %s' % (
                t, int(record.msecs), record.levelname,
                logging.StreamHandler.format(self, record))

    from swift.common.utils import logs
    logs.ThreadSafeSysLogHandler = StderrLogHandler
    from swift.common import constraints, storage_policy, utils
    utils.set_swift_dir(swift_dir)
    constraints.reload_constraints()
    storage_policy.reload_storage_policies()
    main = importlib.import_module(SWIFT_SERVERS[server]).main
    sys.argv = ['swift-' + server, conf]
    return main()


def http_up(port, timeout=1.0):
    try:
        c = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
        c.request('GET', '/healthcheck')
        c.getresponse().read()
        c.close()
        return True
    except (OSError, http.client.HTTPException):
        return False


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited, not yet reaped by run.sh) is not alive
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def wait(args):
    with open(os.path.join(args.root, 'cluster.json')) as f:
        cl = json.load(f)
    pids = dict(p.split('=', 1) for p in args.pids.split(',') if p)
    deadline = time.time() + args.timeout
    pending = {p['name']: p['port'] for p in cl['procs']}
    while pending:
        for name, pid in pids.items():
            if not pid_alive(int(pid)):
                sys.exit('%s (pid %s) exited during start-up' % (name, pid))
        for name in list(pending):
            if http_up(pending[name]):
                del pending[name]
        if not pending:
            break
        if time.time() > deadline:
            sys.exit('not answering after %ds: %s'
                     % (args.timeout, ', '.join(sorted(pending))))
        time.sleep(0.2)


def accounts(args):
    """PUT the test accounts (AUTH_test, AUTH_test2) through the proxy as
    the reseller admin, as Swift's in-process functional setup creates them
    on its account servers before the tests: some tests (e.g.
    test_account.py's test_GET_HEAD_content_type) expect an account that
    exists, not one that account_autocreate fakes."""
    with open(os.path.join(args.root, 'cluster.json')) as f:
        cl = json.load(f)
    port = [p['port'] for p in cl['procs'] if p['name'] == 'proxy-server'][0]
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    c.request('GET', '/auth/v1.0', headers={'X-Auth-User': 'admin:admin',
                                            'X-Auth-Key': 'admin'})
    r = c.getresponse()
    r.read()
    token = r.getheader('X-Auth-Token')
    if r.status // 100 != 2 or not token:
        sys.exit('auth as admin:admin: %d %s' % (r.status, r.reason))
    for acct in ('AUTH_test', 'AUTH_test2'):
        c.request('PUT', '/v1/' + acct, headers={'X-Auth-Token': token})
        r = c.getresponse()
        body = r.read()
        if r.status not in (201, 202):
            sys.exit('PUT /v1/%s: %d %s %r' % (acct, r.status, r.reason,
                                               body[:200]))
    c.close()


# rowsync: `request method=PUT path=/sdb1/... status=201`
ROWSYNC_REQ = re.compile(r'\brequest\b.*?method=(\S+).*?status=(\d{3})')
# Swift: `account-server[-swift]: 127.0.0.1 - - [...] "PUT /sdb1/..." 201 ...`
SWIFT_REQ = re.compile(r'server[\w-]*: \S+ - - \[[^]]*\] "(\S+) [^"]*" (\d{3}) ')


def hits(args):
    """Per account/container server: how many requests it logged, and how
    many of each method and status. The same tests give the same counts
    from Swift's servers and rowsync's (up to retries and timing), so two
    runs' lines can be compared."""
    with open(os.path.join(args.root, 'cluster.json')) as f:
        cl = json.load(f)
    for p in cl['procs']:
        if not p['name'].startswith(('account-server', 'container-server')):
            continue
        pat = ROWSYNC_REQ if p['kind'] == 'rowsync' else SWIFT_REQ
        log = os.path.join(args.root, 'logs', p['name'] + '.log')
        counts = {}
        try:
            with open(log, errors='replace') as f:
                for line in f:
                    m = pat.search(line)
                    if m:
                        k = '%s:%s' % m.groups()
                        counts[k] = counts.get(k, 0) + 1
        except OSError:
            pass
        print('%s %s %d %s' % (
            p['kind'], p['name'], sum(counts.values()),
            ' '.join('%s=%d' % kv for kv in sorted(counts.items()))))


# Per replica, answers that legitimately differ: the DB's created_at
# (X-Timestamp, X-Backend-Timestamp: each replica's own clock) and the
# transport.
COMPARE_IGNORE = {'date', 'x-trans-id', 'connection', 'keep-alive',
                  'x-timestamp', 'x-backend-timestamp',
                  'x-openstack-request-id', 'transfer-encoding'}


def _ask(conns, port, method, path):
    c = conns.get(port)
    if c is None:
        c = conns[port] = http.client.HTTPConnection('127.0.0.1', port,
                                                     timeout=30)
    try:
        c.request(method, path, headers={
            'X-Backend-Allow-Reserved-Names': 'true'})
        r = c.getresponse()
        body = r.read()
    except (OSError, http.client.HTTPException):
        c.close()
        del conns[port]
        raise
    headers = {k.lower(): v for k, v in r.getheaders()
               if k.lower() not in COMPARE_IGNORE}
    return r.status, headers, body


def compare(args):
    """Every account and container DB on disk: ask each replica's server
    (HEAD, GET ?format=json) and report where the replicas' answers differ.
    All replicas got the same requests (same X-Timestamps), so their
    answers should be equal but for COMPARE_IGNORE. In mixed mode this
    compares Swift's servers with rowsync's on the same data: what a
    client sees depends on which replica the proxy asks."""
    import sqlite3
    from urllib.parse import quote
    with open(os.path.join(args.root, 'cluster.json')) as f:
        cl = json.load(f)
    dbs = {}  # (kind, hash) -> {device: (part, path)}
    for kind in ('account', 'container'):
        for dev in cl['devices_of'][kind]:
            top = os.path.join(cl['devices'], dev['device'], kind + 's')
            for dirpath, _dirs, files in os.walk(top):
                for fn in files:
                    if fn.endswith('.db'):
                        part = os.path.relpath(dirpath, top).split(os.sep)[0]
                        dbs.setdefault((kind, fn[:-3]), {})[
                            dev['device']] = (part, os.path.join(dirpath, fn))
    conns = {}
    ndiff = nasked = 0
    for (kind, hsh), reps in sorted(dbs.items()):
        part, path = next(iter(reps.values()))
        db = sqlite3.connect('file:%s?mode=ro' % path, uri=True)
        try:
            if kind == 'account':
                acct, = db.execute('SELECT account FROM account_stat').fetchone()
                name = '/' + acct
            else:
                acct, cont = db.execute(
                    'SELECT account, container FROM container_stat').fetchone()
                name = '/%s/%s' % (acct, cont)
        finally:
            db.close()
        answers = []
        for dev in cl['devices_of'][kind]:
            base = '/%s/%s%s' % (dev['device'], part, quote(name))
            for method, q in (('HEAD', ''), ('GET', '?format=json')):
                st, hd, body = _ask(conns, dev['port'], method, base + q)
                nasked += 1
                if method == 'GET' and body[:1] in (b'[', b'{'):
                    body = json.loads(body)
                answers.append(((method, dev['device'], dev['impl']),
                                (st, hd, body)))
        by_method = {}
        for (method, device, impl), ans in answers:
            by_method.setdefault(method, []).append((device, impl, ans))
        for method, got in by_method.items():
            ref_dev, ref_impl, ref = got[0]
            for device, impl, ans in got[1:]:
                if ans == ref:
                    continue
                ndiff += 1
                if ndiff > args.max:
                    continue
                print('DIFF %s %s %s: %s(%s) vs %s(%s)' % (
                    kind, method, name, ref_impl, ref_dev, impl, device))
                if ans[0] != ref[0]:
                    print('  status %s vs %s' % (ref[0], ans[0]))
                for k in sorted(set(ref[1]) | set(ans[1])):
                    if ref[1].get(k) != ans[1].get(k):
                        print('  %s: %r vs %r' % (k, ref[1].get(k),
                                                  ans[1].get(k)))
                if ans[2] != ref[2]:
                    print('  body %s vs %s' % (
                        json.dumps(ref[2], default=repr)[:600],
                        json.dumps(ans[2], default=repr)[:600]))
    for c in conns.values():
        c.close()
    print('compared %d DBs (%d requests): %d differing answers' % (
        len(dbs), nasked, ndiff))
    return 1 if ndiff else 0


def main():
    if len(sys.argv) > 1 and sys.argv[1] == 'swift':
        return swift_server(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest='cmd', required=True)
    s = sub.add_parser('setup')
    s.add_argument('root')
    s.add_argument('--mode', choices=sorted(MODES), default='rowsync')
    s.add_argument('--replicas', type=int, default=3)
    w = sub.add_parser('wait')
    w.add_argument('root')
    w.add_argument('--pids', default='')
    w.add_argument('--timeout', type=float, default=60)
    h = sub.add_parser('hits')
    h.add_argument('root')
    a = sub.add_parser('accounts')
    a.add_argument('root')
    c = sub.add_parser('compare')
    c.add_argument('root')
    c.add_argument('--max', type=int, default=20,
                   help='print at most this many differences')
    args = ap.parse_args()
    return {'setup': setup, 'wait': wait, 'hits': hits,
            'accounts': accounts, 'compare': compare}[args.cmd](args)


if __name__ == '__main__':
    sys.exit(main())
