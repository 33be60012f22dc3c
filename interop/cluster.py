"""The interop cluster: constants, the Swift tool wrapper, Cluster/Node,
the config writers, `setup` (rings, confs, rsyncd) and `wait`.

Used by driver.py (the CLI) and by harness.py; imports only the standard
library at module level, so `driver.py swift ...` (every Swift server and
replicator the suite starts) stays cheap to start.
"""

import grp
import http.client
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time

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
# Swift's tools run as `python driver.py swift SWIFT_DIR TOOL ARGS...`
DRIVER = os.path.join(HERE, 'driver.py')


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
    }
    opts.update(overrides or {})
    return '[%s-replicator]\n' % server_type + ''.join(
        '%s = %s\n' % kv for kv in opts.items())


def filter_sections(node, disable_name):
    """Swift's healthcheck and recon middlewares, as a Swift storage
    node's pipeline has them (recon.py's scenario compares Swift's answers
    with rowsync's): the recon cache is the node dir, where its
    replicators write; `disable_name` in the node dir turns the
    healthcheck to 503."""
    ndir = node['dir'] if isinstance(node, dict) else node.dir
    return ('[filter:healthcheck]\n'
            'use = egg:swift#healthcheck\n'
            'disable_path = %s\n'
            '\n'
            '[filter:recon]\n'
            'use = egg:swift#recon\n'
            'recon_cache_path = %s\n'
            '\n' % (os.path.join(ndir, disable_name), ndir))


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
        'pipeline = healthcheck recon container-server\n'
        '\n'
        '%(filters)s'
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
             repl=replicator_section(node, rsync_port, repl_overrides),
             filters=filter_sections(node, 'healthcheck-disabled'))


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
        'pipeline = healthcheck recon account-server\n'
        '\n'
        '%(filters)s'
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
                                     server_type='account'),
             filters=filter_sections(node, 'account-healthcheck-disabled'))


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

