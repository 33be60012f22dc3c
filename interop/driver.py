#!/usr/bin/env python3
"""Interoperability driver: Swift 2.38 container and account replication
against rowsync (the account scenarios are in accounts.py).

Run it with the venv's Python (interop/run.sh does all of this):

  driver.py setup ROOT --rowsync-bin BIN   lay out a mixed cluster under ROOT;
                                           prints the processes to start
  driver.py wait ROOT [--timeout S]        wait until rsyncd and every server answer
  driver.py run ROOT [--only SUBSTR]...    run the scenarios, print PASS/FAIL/SKIP
  driver.py list                           list the scenario names
  driver.py swift SWIFT_DIR TOOL ARGS...   run a Swift tool (container-server,
                                           container-replicator, container-info,
                                           account-server, account-replicator,
                                           account-info)
                                           with SWIFT_DIR's swift.conf and its
                                           logs on stderr

Every address is 127.0.0.1. The driver starts no long-lived process itself:
run.sh starts and stops the servers; the replicators the driver runs are
one-shot (`--once`) children bounded by a timeout.
"""

import argparse
import hashlib
import http.client
import json
import os
import pwd
import grp
import random
import shutil
import socket
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ACCOUNT = 'AUTH_interop'
HASH_PREFIX = 'interop-prefix'
HASH_SUFFIX = 'interop-suffix'
PART_POWER = 8
REPLICAS = 3
DEVICES = 8  # one per node; each node is Swift's or rowsync's
SWIFT_PORT_BASE = 6211
ROWSYNC_PORT_BASE = 6221
RSYNC_PORT = 6231
# the account servers of the same nodes (accounts.py's scenarios)
SWIFT_ACCOUNT_PORT_BASE = 6241
ROWSYNC_ACCOUNT_PORT_BASE = 6251
REPLICATOR_TIMEOUT = 120  # seconds for one `--once` pass
SWIFT_VERSION = '2.38.3'


# --------------------------------------------------------------- Swift tools

SWIFT_TOOLS = {
    'container-server': ('swift.container.server', 'main'),
    'container-replicator': ('swift.container.replicator', 'main'),
    'container-info': ('swift.cli.info', 'container_main'),
    'account-server': ('swift.account.server', 'main'),
    'account-replicator': ('swift.account.replicator', 'main'),
    'account-info': ('swift.cli.info', 'account_main'),
}


def use_swift_dir(swift_dir):
    """Point this process's Swift at SWIFT_DIR/swift.conf (hash prefix and
    suffix, storage policies). Swift's daemons otherwise read
    /etc/swift/swift.conf, which this harness never touches."""
    from swift.common import utils
    from swift.common import storage_policy
    utils.set_swift_dir(swift_dir)
    storage_policy.reload_storage_policies()


def swift_tool(argv):
    """`driver.py swift SWIFT_DIR TOOL ARGS...`: run a Swift entry point with
    our swift.conf and its syslog output sent to stderr instead (Swift logs
    only to syslog, falling back to UDP port 514; we want the lines in the
    process's log file)."""
    if len(argv) < 2 or argv[1] not in SWIFT_TOOLS:
        sys.exit('usage: driver.py swift SWIFT_DIR {%s} ARGS...'
                 % '|'.join(SWIFT_TOOLS))
    swift_dir, tool, args = argv[0], argv[1], argv[2:]
    import importlib
    import logging
    # A private copy of stderr: Swift's capture_stdio() points fds 0-2 at
    # /dev/null once a server or daemon is up; this one survives.
    stream = os.fdopen(os.dup(2), 'w', buffering=1)

    class StderrLogHandler(logging.StreamHandler):
        def __init__(self, *args, **kwargs):
            logging.StreamHandler.__init__(self, stream)

        def format(self, record):
            t = time.strftime('%H:%M:%S', time.localtime(record.created))
            return '%s.%03d %s %s' % (t, int(record.msecs), record.levelname,
                                      logging.StreamHandler.format(self, record))

    from swift.common.utils import logs
    logs.ThreadSafeSysLogHandler = StderrLogHandler
    use_swift_dir(swift_dir)
    module, func = SWIFT_TOOLS[tool]
    main = getattr(importlib.import_module(module), func)
    sys.argv = ['swift-' + tool] + list(args)
    return main()


# ------------------------------------------------------------------ cluster

class Node(object):
    def __init__(self, d):
        self.__dict__.update(d)

    def __repr__(self):
        return '%s(%s:%d/%s)' % (self.name, self.kind, self.port, self.device)

    def db_path(self, part, hsh):
        return os.path.join(self.devices, self.device, 'containers', str(part),
                            hsh[-3:], hsh, hsh + '.db')


class Cluster(object):
    def __init__(self, root):
        with open(os.path.join(root, 'cluster.json')) as f:
            self.cfg = json.load(f)
        self.root = root
        self.swift_dir = self.cfg['swift_dir']
        self.swift_conf = os.path.join(self.swift_dir, 'swift.conf')
        self.rowsync_bin = self.cfg['rowsync_bin']
        self.rsync_port = self.cfg['rsync_port']
        self.nodes = [Node(n) for n in self.cfg['nodes']]
        self._ring = None
        self._conf_serial = 0

    def node(self, name):
        return [n for n in self.nodes if n.name == name][0]

    def by_port(self, port):
        return [n for n in self.nodes if n.port == port][0]

    def by_account_port(self, port):
        return [n for n in self.nodes
                if getattr(n, 'account_port', None) == port][0]

    @property
    def ring(self):
        if self._ring is None:
            from swift.common.ring import Ring
            self._ring = Ring(self.swift_dir, ring_name='container')
        return self._ring

    @property
    def has_accounts(self):
        return all(hasattr(n, 'account_port') for n in self.nodes)

    @property
    def account_ring(self):
        if getattr(self, '_account_ring', None) is None:
            from swift.common.ring import Ring
            self._account_ring = Ring(self.swift_dir, ring_name='account')
        return self._account_ring


def free_port(preferred):
    """`preferred` if nothing listens there, else a free ephemeral port."""
    for port in (preferred, 0):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # as the servers bind: a port in TIME_WAIT from a previous run is free
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(('127.0.0.1', port))
            return s.getsockname()[1]
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError('no free port')


def replicator_section(node, rsync_port, overrides=None,
                       server_type='container'):
    opts = {
        'log_level': 'DEBUG',
        # Swift's rsync argument is `<module>/<device>/tmp/<id>`: an
        # rsync:// URL carries the daemon's port (host::module would mean
        # port 873). One module per node, named after its replication port.
        'rsync_module': 'rsync://{replication_ip}:%d/%s_{replication_port}'
                        % (rsync_port, server_type),
        'per_diff': '1000',
        'max_diffs': '100',
        'concurrency': '1',
        'interval': '30',
        'node_timeout': '10',
        'conn_timeout': '2',
        'recon_cache_path': node['dir'] if isinstance(node, dict) else node.dir,
        'db_transfer': 'rsync',
    }
    opts.update(overrides or {})
    return '[%s-replicator]\n' % server_type + ''.join(
        '%s = %s\n' % kv for kv in opts.items())


def server_conf_text(node, swift_dir, rsync_port, repl_overrides=None):
    user = pwd.getpwuid(os.getuid()).pw_name
    return (
        '[DEFAULT]\n'
        'devices = %(devices)s\n'
        'mount_check = false\n'
        'bind_ip = 127.0.0.1\n'
        'bind_port = %(port)d\n'
        'swift_dir = %(swift_dir)s\n'
        'user = %(user)s\n'
        'workers = 0\n'
        'log_name = %(name)s\n'
        'fallocate_reserve = 0\n'
        '\n'
        '[pipeline:main]\n'
        'pipeline = container-server\n'
        '\n'
        '[app:container-server]\n'
        'use = egg:swift#container\n'
        'log_level = DEBUG\n'
        '\n'
        '%(repl)s'
        '\n'
        '[container-updater]\n'
        'recon_cache_path = %(dir)s\n'
        '\n'
        '[container-auditor]\n'
        'recon_cache_path = %(dir)s\n'
        '\n'
        '[container-sharder]\n'
        'recon_cache_path = %(dir)s\n'
        'auto_shard = false\n'
    ) % dict(node, swift_dir=swift_dir, user=user,
             repl=replicator_section(node, rsync_port, repl_overrides))


def account_server_conf_text(node, swift_dir, rsync_port, repl_overrides=None):
    """The node's account-server.conf: the same devices, its own port
    (`account_port`), `[account-replicator]` with the `account_<port>`
    rsync module, recon cache (account.recon) in the node dir."""
    user = pwd.getpwuid(os.getuid()).pw_name
    return (
        '[DEFAULT]\n'
        'devices = %(devices)s\n'
        'mount_check = false\n'
        'bind_ip = 127.0.0.1\n'
        'bind_port = %(account_port)d\n'
        'swift_dir = %(swift_dir)s\n'
        'user = %(user)s\n'
        'workers = 0\n'
        'log_name = %(name)s-account\n'
        'fallocate_reserve = 0\n'
        '\n'
        '[pipeline:main]\n'
        'pipeline = account-server\n'
        '\n'
        '[app:account-server]\n'
        'use = egg:swift#account\n'
        'log_level = DEBUG\n'
        '\n'
        '%(repl)s'
        '\n'
        '[account-auditor]\n'
        'recon_cache_path = %(dir)s\n'
        '\n'
        '[account-reaper]\n'
    ) % dict(node, swift_dir=swift_dir, user=user,
             repl=replicator_section(node, rsync_port, repl_overrides,
                                     server_type='account'))


def setup(args):
    root = os.path.abspath(args.root)
    os.makedirs(root, exist_ok=True)
    swift_dir = os.path.join(root, 'etc')
    os.makedirs(swift_dir, exist_ok=True)
    os.makedirs(os.path.join(root, 'logs'), exist_ok=True)
    with open(os.path.join(swift_dir, 'swift.conf'), 'w') as f:
        f.write('[swift-hash]\n'
                'swift_hash_path_prefix = %s\n'
                'swift_hash_path_suffix = %s\n'
                '\n'
                '[storage-policy:0]\n'
                'name = gold\n'
                'default = yes\n' % (HASH_PREFIX, HASH_SUFFIX))
    # The same cluster seen with two storage policies: a replicator run
    # with it sends the 10-argument `sync` (policy scenarios).
    os.makedirs(os.path.join(root, 'etc2'), exist_ok=True)
    with open(os.path.join(swift_dir, 'swift.conf')) as f, \
            open(os.path.join(root, 'etc2', 'swift.conf'), 'w') as g:
        g.write(f.read() + '\n[storage-policy:1]\nname = silver\n')
    rsync_port = free_port(RSYNC_PORT)

    # The container ring, built by Swift's own tool. Swift's builder places
    # replicas in a few fixed device triples (8 equal devices: 8 triples),
    # so the devices are added first and the kinds (Swift or rowsync) are
    # then given so that every pattern a scenario asks for exists:
    # S+S+S (control), S+S+R and S+R+R. Ports are set after that
    # (`set_info`, `write_ring`): they do not move partitions.
    builder = os.path.join(swift_dir, 'container.builder')
    acct_builder = os.path.join(swift_dir, 'account.builder')
    rb = os.path.join(os.path.dirname(sys.executable), 'swift-ring-builder')

    def ring_builder(*a, ok=(0,), bfile=builder):
        p = subprocess.run([rb, bfile] + list(a), capture_output=True,
                           text=True, timeout=120)
        if p.returncode not in ok:
            sys.exit('swift-ring-builder %s failed (%d): %s%s' % (
                ' '.join(a), p.returncode, p.stdout, p.stderr))

    ring_builder('create', str(PART_POWER), str(REPLICAS), '1')
    for i in range(DEVICES):
        ring_builder('add', '--region', '1', '--zone', str(i + 1),
                     '--ip', '127.0.0.1', '--port', str(7001 + i),
                     '--device', 'sdb%d' % (i + 1), '--weight', '100')
    # exit 1 = warnings (e.g. balance), still a usable ring
    ring_builder('rebalance', '--seed', '1', ok=(0, 1))
    from swift.common.ring import RingBuilder
    b = RingBuilder.load(builder)
    triples = [tuple(b._replica2part2dev[r][p] for r in range(REPLICAS))
               for p in range(b.parts)]
    kinds = choose_kinds(triples, DEVICES, bench=args.bench)
    # The account ring: a copy of the rebalanced container builder, so its
    # partitions sit on the same device triples (the same kind patterns);
    # only the ports differ (each node's account server).
    accounts = not args.bench
    if accounts:
        shutil.copyfile(builder, acct_builder)

    nodes = []
    counts = {'swift': 0, 'rowsync': 0}
    bases = {'swift': SWIFT_PORT_BASE, 'rowsync': ROWSYNC_PORT_BASE}
    acct_bases = {'swift': SWIFT_ACCOUNT_PORT_BASE,
                  'rowsync': ROWSYNC_ACCOUNT_PORT_BASE}
    for i, kind in enumerate(kinds):
        ndir = os.path.join(root, 'node%d' % (i + 1))
        node = {
            'name': 'node%d' % (i + 1), 'kind': kind, 'dir': ndir,
            'devices': os.path.join(ndir, 'srv'), 'device': 'sdb%d' % (i + 1),
            'port': free_port(bases[kind] + counts[kind]), 'id': i,
            'conf': os.path.join(ndir, 'container-server.conf'),
        }
        if accounts:
            node['account_port'] = free_port(acct_bases[kind] + counts[kind])
            node['account_conf'] = os.path.join(ndir, 'account-server.conf')
        counts[kind] += 1
        os.makedirs(os.path.join(node['devices'], node['device']),
                    exist_ok=True)
        with open(node['conf'], 'w') as f:
            f.write(server_conf_text(node, swift_dir, rsync_port))
        nodes.append(node)
        ring_builder('set_info', 'd%d' % i, '127.0.0.1:%dR127.0.0.1:%d'
                     % (node['port'], node['port']), '--yes')
        if accounts:
            with open(node['account_conf'], 'w') as f:
                f.write(account_server_conf_text(node, swift_dir, rsync_port))
            ring_builder('set_info', 'd%d' % i, '127.0.0.1:%dR127.0.0.1:%d'
                         % (node['account_port'], node['account_port']),
                         '--yes', bfile=acct_builder)
    ring_builder('write_ring')
    if accounts:
        ring_builder('write_ring', bfile=acct_builder)

    # One rsync daemon, one module per node (its devices dir).
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    rsyncd_conf = os.path.join(root, 'rsyncd.conf')
    with open(rsyncd_conf, 'w') as f:
        f.write('uid = %s\ngid = %s\nuse chroot = false\n'
                'address = 127.0.0.1\nlog file = %s\n\n'
                % (user, group, os.path.join(root, 'logs', 'rsyncd.log')))
        for n in nodes:
            f.write('[container_%d]\npath = %s\nread only = false\n'
                    'list = yes\n\n' % (n['port'], n['devices']))
            if accounts:
                f.write('[account_%d]\npath = %s\nread only = false\n'
                        'list = yes\n\n' % (n['account_port'], n['devices']))

    with open(os.path.join(root, 'cluster.json'), 'w') as f:
        json.dump({'swift_dir': swift_dir, 'rsync_port': rsync_port,
                   'rsyncd_conf': rsyncd_conf, 'nodes': nodes,
                   'rowsync_bin': os.path.abspath(args.rowsync_bin)},
                  f, indent=2)
    # What run.sh starts: kind name port conf
    print('rsyncd rsyncd %d %s' % (rsync_port, rsyncd_conf))
    for n in nodes:
        print('%s %s %d %s' % (n['kind'], n['name'], n['port'], n['conf']))
    for n in nodes:
        if accounts:
            print('%s-account %s-account %d %s' % (
                n['kind'], n['name'], n['account_port'], n['account_conf']))


def choose_kinds(triples, ndev, bench=False):
    """Swift or rowsync for each device: the assignment (3 to 5 Swift
    devices) under which the fewest partitions of any wanted pattern is
    largest; R+R+R breaks ties (a future rowsync-only control). For the
    benchmark the wanted patterns are S+S+S and R+R+R: each replicator
    runs against its own kind of server."""
    from collections import Counter
    from itertools import product
    best = None
    for kinds in product(('swift', 'rowsync'), repeat=ndev):
        if not 3 <= kinds.count('swift') <= ndev - 3:
            continue
        pats = Counter(tuple(sorted(kinds[d] for d in t)) for t in triples)
        want = [pats[('swift', 'swift', 'swift')],
                pats[('rowsync', 'swift', 'swift')],
                pats[('rowsync', 'rowsync', 'swift')]]
        if bench:
            want = [pats[('swift', 'swift', 'swift')],
                    pats[('rowsync', 'rowsync', 'rowsync')]]
        score = (min(want), pats[('rowsync', 'rowsync', 'rowsync')])
        if best is None or score > best[0]:
            best = (score, kinds)
    if best is None or best[0][0] == 0:
        sys.exit('no Swift/rowsync assignment gives every pattern: %s'
                 % Counter(triples))
    return list(best[1])


def http_up(port, timeout=1.0):
    """Does something answer HTTP on 127.0.0.1:port?"""
    try:
        c = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
        c.request('GET', '/healthcheck')
        c.getresponse().read()
        c.close()
        return True
    except (OSError, http.client.HTTPException):
        return False


def tcp_up(port, timeout=1.0):
    try:
        socket.create_connection(('127.0.0.1', port), timeout=timeout).close()
        return True
    except OSError:
        return False


def wait(args):
    cl = Cluster(args.root)
    deadline = time.time() + args.timeout
    pending = {'rsyncd': lambda: tcp_up(cl.rsync_port)}
    for n in cl.nodes:
        pending[n.name] = (lambda p: lambda: http_up(p))(n.port)
        if hasattr(n, 'account_port'):
            pending[n.name + '-account'] = (
                lambda p: lambda: http_up(p))(n.account_port)
    while pending and time.time() < deadline:
        for name in list(pending):
            if pending[name]():
                del pending[name]
        if pending:
            time.sleep(0.2)
    if pending:
        print('not answering after %ss: %s' % (args.timeout,
                                               ', '.join(sorted(pending))))
        return 1
    return 0


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
            cmd = [sys.executable, os.path.abspath(__file__), 'swift',
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
            [sys.executable, os.path.abspath(__file__), 'swift',
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


ODD_NAMES = ['snow-\u2603', 'quote"back\\slash', 'sp ace/and/slash',
             'emoji-\U0001f600', 'tab\tname', 'pct%20enc', 'amp&lt<gt>',
             '\u00e9t\u00e9', 'new\u2028line']


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


# The account scenarios (acct_*) live in accounts.py, which imports this
# module by name: make that name this very module when run as a script.
sys.modules.setdefault('driver', sys.modules[__name__])
import accounts  # noqa: E402,F401  (registers the acct_ scenarios)


# ---------------------------------------------------------------- benchmark

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
        self.passes(snd, plist)  # first pass: records the sync points
        k, secs, wall, st = self.passes(snd, plist)
        self.ctx.expect_stats(st, 'in-sync', no_change=2 * count,
                              success=2 * count, rsync=0, diff=0)
        return count, k, secs, wall, 'no_change x%d' % (2 * count)

    WORKLOADS = (
        ('missing DB (whole DB shipped)', 'missing', ()),
        ('10% gap (merge_items)', 'gap', (0.9,)),
        ('90% gap (rsync_then_merge)', 'gap', (0.1,)),
        ('diff-capped backlog', 'capped', ()),
        ('in-sync small DBs, one pass', 'in_sync', ()),
    )


def bench(args):
    import platform
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
            res.update({'rows' if meth != 'in_sync' else 'dbs': n,
                        kind: secs, kind + '_wall': wall,
                        kind + '_passes': k, kind + '_path': path})
            print('%-32s %-7s %8d %s: %d pass(es), %.2fs (process %.2fs)'
                  ' [%.0fs with setup]' % (title, kind, n,
                                           'DBs' if meth == 'in_sync'
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


def run(args):
    cl, log, logf = start_driver(args)
    used = {}  # partitions taken, per ring (per Ctx class)
    passed = failed = skipped = 0
    for name, fn, sk, rk, needs in SCENARIOS:
        if args.only and not any(o in name for o in args.only):
            continue
        log('--- %s' % name)
        start = time.time()
        try:
            if needs and rowsync_replicator_help(cl) is None:
                raise Skip(ROWSYNC_REPLICATOR_MISSING)
            cls = getattr(fn, 'ctx_class', Ctx)
            ctx = cls(cl, used.setdefault(cls, set()), log)
            fn(ctx, sk, rk)
            trouble = ctx.log_trouble(getattr(fn, 'log_allow', ()))
            if trouble:
                raise Fail('trouble in the logs: ' + ' | '.join(trouble[:3]))
        except Skip as e:
            skipped += 1
            print('SKIP %s: %s' % (name, e), flush=True)
        except Fail as e:
            failed += 1
            print('FAIL %s: %s' % (name, e), flush=True)
            log('FAIL %s' % e)
        except Exception as e:  # a harness or Swift-side error
            failed += 1
            print('FAIL %s: %s: %s' % (name, type(e).__name__, e), flush=True)
            log(traceback.format_exc())
        else:
            passed += 1
            print('PASS %s' % name, flush=True)
        log('--- %s done in %.1fs' % (name, time.time() - start))
    logf.close()
    line = '%d passed, %d failed' % (passed, failed)
    if skipped:
        line += ', %d skipped' % skipped
    print(line)
    return 1 if failed or not passed else 0


def main():
    if len(sys.argv) > 1 and sys.argv[1] == 'swift':
        return swift_tool(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = ap.add_subparsers(dest='cmd', required=True)
    p = sub.add_parser('setup')
    p.add_argument('root')
    p.add_argument('--rowsync-bin', required=True)
    p.add_argument('--bench', action='store_true',
                   help='a ring for the benchmark (S+S+S and R+R+R)')
    p = sub.add_parser('wait')
    p.add_argument('root')
    p.add_argument('--timeout', type=float, default=60)
    p = sub.add_parser('run')
    p.add_argument('root')
    p.add_argument('--only', action='append',
                   help='run the scenarios whose name contains this')
    p.add_argument('-v', '--verbose', action='store_true')
    p = sub.add_parser('bench')
    p.add_argument('root')
    p.add_argument('--scale', type=float, default=1.0,
                   help='multiply every workload size by this')
    p.add_argument('--only', action='append',
                   help='run the workloads whose title contains this')
    p.add_argument('--out', help='also write the table (markdown) here')
    p.add_argument('-v', '--verbose', action='store_true')
    sub.add_parser('list')
    a = ap.parse_args()
    if a.cmd == 'setup':
        return setup(a)
    if a.cmd == 'wait':
        return wait(a)
    if a.cmd == 'run':
        return run(a)
    if a.cmd == 'bench':
        return bench(a)
    if a.cmd == 'list':
        for name, _, _, _, _ in SCENARIOS:
            print(name)
        return 0


if __name__ == '__main__':
    sys.exit(main())
