#!/usr/bin/env python3
"""The switch-over procedure: one node of a running Swift 2.38.3 cluster
has its container and account servers and replicators replaced by
rowsync's, and is then rolled back to Swift, with no lost rows and the
replicas converging at each step. See "Switching a node over and back" in
interop/README.md.

  switchover.py ROOT --rowsync-bin BIN [-v] [--counts FILE]

ROOT is a directory of its own (run.sh passes <cluster>/switchover): a
3-node cluster on 127.0.0.1 (3 replicas, one device per node, container and
account server per node, one rsync daemon), separate from the scenarios'
cluster. Every process is started here, recorded by PID and stopped by
that PID (SIGTERM, a bounded wait, then SIGKILL) in a `finally`. Prints
one `PASS`/`FAIL`/`SKIP` line per step and `N passed, N failed[, N
skipped]`; with --counts also writes `passed failed skipped` to FILE.
Exit status 1 if a step failed.

The steps (the same commands an operator runs; node3 is the one switched):

  switchover_step1_swift     all three nodes run Swift's servers; rows are
                             written (some to two replicas only, as a proxy
                             with one slow node leaves them); Swift's
                             replicators make the replicas identical;
                             node3's Swift replicator daemons start and
                             their first pass finds nothing to ship.
  switchover_step2_rowsync   node3's Swift replicators stop; rows are
                             written (node3's Swift servers leave them in
                             .pending files); its servers stop; rows are
                             written to nodes 1 and 2 (node3 refuses);
                             `rowsync server --config <the same conf>`
                             (container and account) starts on node3's
                             files and lists what Swift left, .pending
                             rows included; more rows (some on node3 and
                             one other node only), a new container on
                             node3 and node1 only, a container deleted;
                             replication passes (rowsync's `replicator
                             --once` on node3, Swift's on 1 and 2) until
                             every replica is identical and equals every
                             acknowledged write; rowsync's replicator
                             daemons start and find nothing to ship.
  switchover_step3_rollback  node3's rowsync replicators stop; rows are
                             written through rowsync's servers; they stop;
                             Swift's broker reads every DB rowsync left
                             (rows, get_info, `PRAGMA integrity_check`,
                             swift-*-info); rows are written with node3
                             down; Swift's servers start on the same files
                             and list what rowsync left; more rows;
                             replication until identical;
                             node3's Swift replicator daemons find nothing
                             to ship.
"""

import argparse
import grp
import hashlib
import http.client
import json
import os
import pwd
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

from cluster import (DRIVER, account_server_conf_text, free_port,
                     server_conf_text, use_swift_dir)

ACCOUNT = 'AUTH_switchover'
HASH_PREFIX = 'switchover-prefix'
HASH_SUFFIX = 'switchover-suffix'
PART_POWER = 4
# Preferred ports (another free one if taken): below Linux's ephemeral
# range, so that no outgoing connection takes node3's port while node3 is
# down between two servers. The scenarios' cluster uses 6211-6258.
CONTAINER_PORT_BASE = 6271
ACCOUNT_PORT_BASE = 6281
RSYNC_PORT = 6291
NODES = 3
SWITCHED = 2  # node3, the node switched over to rowsync and back
STEPS = ('switchover_step1_swift', 'switchover_step2_rowsync',
         'switchover_step3_rollback')
START_TIMEOUT = 30   # seconds for a server to answer /healthcheck
STOP_TIMEOUT = 10    # seconds after SIGTERM before SIGKILL
PASS_TIMEOUT = 60    # seconds for one `--once` replicator pass
DAEMON_TIMEOUT = 20  # seconds for a replicator daemon's first pass
MAX_ROUNDS = 5       # replication rounds until the replicas must agree
HTTP_TIMEOUT = 10
# The replicator daemons' pass interval: Swift's daemon (and rowsync's)
# sleeps a random part of it before its first pass, then runs a pass every
# `interval` seconds.
REPLICATOR_OVERRIDES = {'interval': '2'}
# Lines that mean trouble in a server or replicator log
LOG_TROUBLE = (' ERROR ', 'Traceback', ' WARN ', ' WARNING ', 'STDERR:')
ODD_NAMES = ['snow-\u2603', 'quote"back\\slash', 'sp ace/and/slash',
             'emoji-\U0001f600', 'amp&lt<gt>', '\u00e9t\u00e9']
KINDS = ('container', 'account')
MARKER = 'switchover.json'  # the layout; marks ROOT as this module's


class Fail(Exception):
    pass


def check(cond, msg, *a):
    if not cond:
        raise Fail(msg % a if a else msg)


def md5hex(s):
    return hashlib.md5(s.encode('utf8')).hexdigest()


def chexor(items):
    """XOR of md5('name-stamp'): the hash Swift's triggers keep."""
    h = 0
    for name, stamp in items:
        h ^= int(md5hex('%s-%s' % (name, stamp)), 16)
    return '%032x' % h


# ------------------------------------------------------------- processes

class Procs(object):
    """Child processes by name, each started in its own session (Swift's
    daemons signal their whole process group on SIGTERM) and stopped by its
    PID."""

    def __init__(self, logdir, log):
        self.logdir = logdir
        self.log = log
        self.procs = {}

    def start(self, name, cmd, logname=None):
        check(name not in self.procs, 'harness: %s already running', name)
        path = os.path.join(self.logdir, (logname or name) + '.log')
        lf = open(path, 'a')
        lf.write('=== %s %s\n' % (time.strftime('%H:%M:%S'), ' '.join(cmd)))
        lf.flush()
        env = dict(os.environ, NO_COLOR='1')
        p = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, env=env,
                             start_new_session=True)
        self.procs[name] = (p, lf, path)
        self.log('started %s (pid %d): %s' % (name, p.pid, ' '.join(cmd)))
        return p

    def pid(self, name):
        return self.procs[name][0].pid

    def running(self, name):
        return name in self.procs and self.procs[name][0].poll() is None

    def wait(self, name, timeout):
        """Waits (bounded) for a one-shot process; returns its exit code."""
        p, lf, path = self.procs[name]
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(name)
            raise Fail('%s (pid %d) did not end within %ds (log %s)'
                       % (name, p.pid, timeout, path))
        lf.close()
        del self.procs[name]
        return rc

    def stop(self, *names):
        """SIGTERM to each PID, at most STOP_TIMEOUT s of waiting, then
        SIGKILL. Returns the names that needed SIGKILL."""
        names = [n for n in names if n in self.procs]
        for n in names:
            p = self.procs[n][0]
            if p.poll() is None:
                self.log('stopping %s (pid %d): SIGTERM' % (n, p.pid))
                try:
                    p.send_signal(signal.SIGTERM)
                except OSError:
                    pass
        deadline = time.time() + STOP_TIMEOUT
        killed = []
        for n in names:
            p, lf, _ = self.procs[n]
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                self.log('%s (pid %d) ignored SIGTERM for %ds: SIGKILL'
                         % (n, p.pid, STOP_TIMEOUT))
                p.kill()
                p.wait()
                killed.append(n)
            lf.close()
            del self.procs[n]
        return killed

    def stop_all(self):
        return self.stop(*list(self.procs))


# ------------------------------------------------------------------ HTTP

def http_call(port, method, path, headers=None, timeout=HTTP_TIMEOUT):
    """(status, headers (lower-case), body), or (None, error, b'') when
    nothing listens (connection refused)."""
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        try:
            c.request(method, path, headers=headers or {})
        except ConnectionRefusedError as e:
            return None, str(e), b''
        r = c.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        c.close()


# --------------------------------------------------------------- the test

class Switchover(object):
    def __init__(self, root, rowsync_bin, verbose=False):
        self.root = os.path.abspath(root)
        self.bin = os.path.abspath(rowsync_bin)
        self.verbose = verbose
        self.swift_dir = os.path.join(self.root, 'etc')
        self.logdir = os.path.join(self.root, 'logs')
        os.makedirs(self.logdir, exist_ok=True)
        self.logf = open(os.path.join(self.logdir, 'switchover.log'), 'a')
        self.procs = Procs(self.logdir, self.log)
        self.pool = ThreadPoolExecutor(max_workers=NODES)
        # which implementation each node's servers run (ran last while
        # `up` is False)
        self.impl = ['swift'] * NODES
        self.up = [False] * NODES
        self.clock = int(time.time() * 100000) - 2 * 3600 * 100000
        # the model: every acknowledged write, newest value per name
        # container name -> {'part', 'hash', 'put', 'delete', 'rows', 'on'}
        self.containers = {}
        self.acct_rows = {}   # container name -> account row
        self.acct_put = None
        self.phase_no = 0
        self.log_offsets = {}

    # ---- plumbing
    def log(self, msg):
        self.logf.write('%s %s\n' % (time.strftime('%H:%M:%S'), msg))
        self.logf.flush()
        if self.verbose:
            print('  ' + msg, flush=True)

    def ts(self):
        """A fresh timestamp, 10 ms after the previous one."""
        from swift.common.utils import Timestamp
        self.clock += 1000
        return Timestamp(self.clock / 100000.0).internal

    def mark_logs(self):
        self.log_offsets = {
            f: os.path.getsize(os.path.join(self.logdir, f))
            for f in os.listdir(self.logdir)}

    def log_trouble(self):
        found = []
        for f in sorted(os.listdir(self.logdir)):
            if f in ('switchover.log', 'rsyncd.log'):
                continue
            with open(os.path.join(self.logdir, f), errors='replace') as fh:
                fh.seek(self.log_offsets.get(f, 0))
                for line in fh:
                    if any(t in line for t in LOG_TROUBLE):
                        found.append('%s: %s' % (f, line.strip()[:300]))
        return found

    # ---- the cluster
    def setup(self):
        """swift.conf, the container and account rings (Swift's
        RingBuilder: 3 replicas on 3 devices, one per node, so every
        partition has a replica on every node), a container-server.conf
        and an account-server.conf per node (cluster.py's writers: the
        same files Swift's servers and rowsync read), rsyncd.conf."""
        from swift.common.ring import RingBuilder
        os.makedirs(self.swift_dir, exist_ok=True)
        with open(os.path.join(self.swift_dir, 'swift.conf'), 'w') as f:
            f.write('[swift-hash]\nswift_hash_path_prefix = %s\n'
                    'swift_hash_path_suffix = %s\n\n[storage-policy:0]\n'
                    'name = gold\ndefault = yes\n'
                    % (HASH_PREFIX, HASH_SUFFIX))
        use_swift_dir(self.swift_dir)
        self.rsync_port = free_port(RSYNC_PORT)
        self.nodes = []
        for i in range(NODES):
            ndir = os.path.join(self.root, 'node%d' % (i + 1))
            n = {'name': 'node%d' % (i + 1), 'id': i, 'dir': ndir,
                 'devices': os.path.join(ndir, 'srv'),
                 'device': 'sdb%d' % (i + 1),
                 'port': free_port(CONTAINER_PORT_BASE + i),
                 'account_port': free_port(ACCOUNT_PORT_BASE + i),
                 'conf': os.path.join(ndir, 'container-server.conf'),
                 'account_conf': os.path.join(ndir, 'account-server.conf')}
            os.makedirs(os.path.join(n['devices'], n['device']),
                        exist_ok=True)
            with open(n['conf'], 'w') as f:
                f.write(server_conf_text(n, self.swift_dir, self.rsync_port,
                                         REPLICATOR_OVERRIDES))
            with open(n['account_conf'], 'w') as f:
                f.write(account_server_conf_text(
                    n, self.swift_dir, self.rsync_port,
                    REPLICATOR_OVERRIDES))
            self.nodes.append(n)
        check(len({p for n in self.nodes
                   for p in (n['port'], n['account_port'])}
                  | {self.rsync_port}) == 2 * NODES + 1,
              'harness: free ports collide')
        for kind, key in (('container', 'port'), ('account', 'account_port')):
            b = RingBuilder(PART_POWER, NODES, 1)
            for n in self.nodes:
                b.add_dev({'id': n['id'], 'region': 1, 'zone': n['id'] + 1,
                           'ip': '127.0.0.1', 'port': n[key],
                           'replication_ip': '127.0.0.1',
                           'replication_port': n[key],
                           'device': n['device'], 'weight': 100})
            b.rebalance(seed=1)
            b.save(os.path.join(self.swift_dir, '%s.builder' % kind))
            b.get_ring().save(os.path.join(self.swift_dir,
                                           '%s.ring.gz' % kind))
        from swift.common.ring import Ring
        self.ring = Ring(self.swift_dir, ring_name='container')
        self.account_ring = Ring(self.swift_dir, ring_name='account')
        user = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(os.getgid()).gr_name
        self.rsyncd_conf = os.path.join(self.root, 'rsyncd.conf')
        with open(self.rsyncd_conf, 'w') as f:
            f.write('uid = %s\ngid = %s\nuse chroot = false\n'
                    'address = 127.0.0.1\nlog file = %s\n\n'
                    % (user, group, os.path.join(self.logdir, 'rsyncd.log')))
            for n in self.nodes:
                for kind, key in (('container', 'port'),
                                  ('account', 'account_port')):
                    f.write('[%s_%d]\npath = %s\nread only = false\n\n'
                            % (kind, n[key], n['devices']))
        from swift.common.utils import hash_path
        self.apart = self.account_ring.get_part(ACCOUNT)
        self.ahash = hash_path(ACCOUNT)
        with open(os.path.join(self.root, MARKER), 'w') as f:
            json.dump({'swift_dir': self.swift_dir, 'nodes': self.nodes,
                       'rsync_port': self.rsync_port,
                       'rowsync_bin': self.bin}, f, indent=2)

    def conf(self, i, kind):
        return self.nodes[i]['conf' if kind == 'container' else
                             'account_conf']

    def port(self, i, kind):
        return self.nodes[i]['port' if kind == 'container' else
                             'account_port']

    def pname(self, i, what):
        return '%s-%s' % (self.nodes[i]['name'], what)

    # ---- the operator's commands
    def server_cmd(self, i, kind, impl):
        if impl == 'swift':
            # swift-container-server CONF / swift-account-server CONF
            return [sys.executable, DRIVER, 'swift', self.swift_dir,
                    '%s-server' % kind, self.conf(i, kind)]
        # the kind comes from the conf's `use = egg:swift#container|account`
        return [self.bin, 'server', '--config', self.conf(i, kind)]

    def replicator_cmd(self, i, kind, impl, once):
        if impl == 'swift':
            return [sys.executable, DRIVER, 'swift', self.swift_dir,
                    '%s-replicator' % kind, self.conf(i, kind)] + (
                        ['--once'] if once else [])
        return [self.bin, 'replicator', '--config', self.conf(i, kind)] + (
            ['--once'] if once else [])

    def start_rsyncd(self):
        self.procs.start('rsyncd', [
            'rsync', '--daemon', '--no-detach',
            '--config=%s' % self.rsyncd_conf,
            '--port=%d' % self.rsync_port, '--address=127.0.0.1'],
            logname='rsyncd-stdout')

    def start_servers(self, nodes, impl):
        """Starts the container and account servers of `nodes` with
        `impl`'s command on the node's own confs and waits (bounded)
        until each answers GET /healthcheck with 200."""
        for i in nodes:
            for kind in KINDS:
                self.procs.start(self.pname(i, '%s-server' % kind),
                                 self.server_cmd(i, kind, impl))
            self.impl[i] = impl
        deadline = time.time() + START_TIMEOUT
        pending = [(i, kind) for i in nodes for kind in KINDS]
        while pending:
            for i, kind in list(pending):
                name = self.pname(i, '%s-server' % kind)
                check(self.procs.running(name), '%s (%s) exited during '
                      'start-up (log %s)', name, impl,
                      self.procs.procs[name][2])
                try:
                    st, _, body = http_call(self.port(i, kind), 'GET',
                                            '/healthcheck', timeout=2)
                except (OSError, http.client.HTTPException):
                    st = None
                if st == 200:
                    pending.remove((i, kind))
            if pending:
                check(time.time() < deadline, '%s not answering '
                      '/healthcheck 200 after %ds', ', '.join(
                          self.pname(i, k + '-server') for i, k in pending),
                      START_TIMEOUT)
                time.sleep(0.1)
        for i in nodes:
            self.up[i] = True
            self.log('%s runs %s: container server pid %d, account server '
                     'pid %d' % (
                         self.nodes[i]['name'], impl,
                         self.procs.pid(self.pname(i, 'container-server')),
                         self.procs.pid(self.pname(i, 'account-server'))))

    def stop_replicators(self, i):
        """Stops node i's replicator daemons by PID."""
        killed = self.procs.stop(*[self.pname(i, '%s-replicator-daemon' % k)
                                   for k in KINDS])
        check(not killed, '%s (%s) ignored SIGTERM for %ds and was killed',
              ', '.join(killed), self.impl[i], STOP_TIMEOUT)

    def stop_servers(self, i):
        """Stops node i's servers by PID; their ports must then refuse."""
        killed = self.procs.stop(*[self.pname(i, '%s-server' % k)
                                   for k in KINDS])
        self.up[i] = False
        check(not killed, '%s (%s) ignored SIGTERM for %ds and was killed',
              ', '.join(killed), self.impl[i], STOP_TIMEOUT)
        for kind in KINDS:
            st, _, _ = http_call(self.port(i, kind), 'GET', '/healthcheck')
            check(st is None, '%s %s port still answers after its server '
                  'stopped', self.nodes[i]['name'], kind)

    # ---- writes, as a proxy sends them: to every replica, acknowledged
    # when two of three succeed
    def send(self, kind, targets, method, path_of, headers_of, ok):
        """Sends one request to each node in `targets` (concurrently). A
        node that is down must refuse the connection; an up node must
        answer with a status in `ok`. Returns the number of successes."""
        def one(i):
            return i, http_call(self.port(i, kind), method, path_of(i),
                                headers_of(i))
        acks = 0
        for i, (st, hd, body) in self.pool.map(one, targets):
            if not self.up[i]:
                check(st is None, '%s %s %s: node down but answered %s',
                      self.nodes[i]['name'], method, path_of(i), st)
                continue
            check(st in ok, '%s (%s) %s %s: %s %s', self.nodes[i]['name'],
                  self.impl[i], method, path_of(i), st,
                  body[:200] if st else hd)
            acks += 1
        check(acks * 2 > NODES, 'harness: %s %s acknowledged by %d nodes',
              method, path_of(targets[0]), acks)
        return acks

    def cpath(self, i, c, obj=None):
        cont = self.containers[c]
        p = '/%s/%d/%s/%s' % (self.nodes[i]['device'], cont['part'],
                              quote(ACCOUNT), quote(c))
        return p + ('/' + quote(obj) if obj is not None else '')

    def apath(self, i, c=None):
        p = '/%s/%d/%s' % (self.nodes[i]['device'], self.apart, quote(ACCOUNT))
        return p + ('/' + quote(c) if c is not None else '')

    def account_headers(self, i):
        """A proxy gives each container replica one account replica to
        update; here container replica i updates node i's account
        server."""
        return {'X-Account-Host':
                '127.0.0.1:%d' % self.nodes[i]['account_port'],
                'X-Account-Partition': str(self.apart),
                'X-Account-Device': self.nodes[i]['device']}

    def put_account(self):
        t = self.ts()
        self.send('account', list(range(NODES)), 'PUT', self.apath,
                  lambda i: {'X-Timestamp': t}, (201, 202))
        self.acct_put = t

    def put_container(self, c, targets):
        from swift.common.utils import hash_path
        part = self.ring.get_part(ACCOUNT, c)
        self.containers[c] = {'part': part, 'hash': hash_path(ACCOUNT, c),
                              'put': None, 'delete': None, 'rows': {},
                              'on': set(targets)}
        t = self.ts()
        self.send('container', targets, 'PUT', lambda i: self.cpath(i, c),
                  lambda i: dict(self.account_headers(i), **{
                      'X-Timestamp': t,
                      'X-Backend-Storage-Policy-Index': '0'}), (201,))
        self.containers[c]['put'] = t
        # the row each container server sends its account server
        self.acct_rows[c] = {'name': c, 'put_timestamp': t,
                             'delete_timestamp': '0', 'object_count': 0,
                             'bytes_used': 0, 'deleted': 0}

    def delete_container(self, c):
        cont = self.containers[c]
        check(not [r for r in cont['rows'].values() if not r['deleted']],
              'harness: %s is not empty', c)
        t = self.ts()
        self.send('container', sorted(cont['on']), 'DELETE',
                  lambda i: self.cpath(i, c),
                  lambda i: dict(self.account_headers(i), **{
                      'X-Timestamp': t}), (204,))
        cont['delete'] = t
        self.acct_rows[c].update(delete_timestamp=t, deleted=1)

    def put_object(self, c, name, targets, salt):
        t = self.ts()
        row = {'name': name, 'created_at': t,
               'size': (len(name) * 7 + salt) % 100000,
               'content_type': 'text/x-%s' % salt,
               'etag': md5hex('%s@%s' % (name, t)), 'deleted': 0,
               'storage_policy_index': 0}
        self.send('container', targets, 'PUT',
                  lambda i: self.cpath(i, c, name),
                  lambda i: {'X-Timestamp': t, 'X-Size': str(row['size']),
                             'X-Content-Type': row['content_type'],
                             'X-Etag': row['etag'],
                             'X-Backend-Storage-Policy-Index': '0'}, (201,))
        self.containers[c]['rows'][name] = row

    def delete_object(self, c, name, targets):
        t = self.ts()
        self.send('container', targets, 'DELETE',
                  lambda i: self.cpath(i, c, name),
                  lambda i: {'X-Timestamp': t,
                             'X-Backend-Storage-Policy-Index': '0'}, (204,))
        # Swift's delete_object: a tombstone row
        self.containers[c]['rows'][name] = {
            'name': name, 'created_at': t, 'size': 0,
            'content_type': 'application/deleted', 'etag': 'noetag',
            'deleted': 1, 'storage_policy_index': 0}

    def account_update(self, name, targets, put, delete, count, nbytes):
        """A container update as a container server (or its updater)
        sends it to the account server. Each name's counts never change:
        Swift's account merge takes the counts of the row merged in, so a
        replica resending an older row would otherwise change them."""
        self.send('account', targets, 'PUT', lambda i: self.apath(i, name),
                  lambda i: {'X-Put-Timestamp': put,
                             'X-Delete-Timestamp': delete,
                             'X-Object-Count': str(count),
                             'X-Bytes-Used': str(nbytes),
                             'X-Backend-Storage-Policy-Index': '0'},
                  (201, 204))
        deleted = int(delete > put and count == 0)
        self.acct_rows[name] = {'name': name, 'put_timestamp': put,
                                'delete_timestamp': delete,
                                'object_count': count, 'bytes_used': nbytes,
                                'deleted': deleted}

    def targets(self, on, k, partial):
        """The nodes a write goes to: every node holding the DB (down ones
        refuse); with `partial`, every fourth write misses one up node (a
        timeout at the proxy: written to two replicas, still
        acknowledged), a different one each time."""
        on = sorted(on)
        if partial and len(on) == NODES and all(self.up) and k % 4 == 3:
            skip = (k // 4) % NODES
            return [i for i in on if i != skip]
        return on

    def write_phase(self, tag, partial, n_new=12, n_over=4, n_del=3,
                    odd=False):
        """Rows into every live container: new names, newer versions of
        older names (live or deleted), tombstones; and account rows:
        new ones (with counts, and zero-count ones that a later phase
        deletes), a newer put of an older one, a deletion."""
        k = 0
        for c in sorted(self.containers):
            cont = self.containers[c]
            if cont['delete'] or cont.get('frozen'):
                continue
            old = sorted(cont['rows'])
            names = ['%s-o%03d' % (tag, j) for j in range(n_new)]
            if odd:
                names += ['%s-%s' % (tag, n) for n in ODD_NAMES]
            for j, name in enumerate(names):
                self.put_object(c, name, self.targets(cont['on'], k, partial),
                                j)
                k += 1
            for j, name in enumerate(old[1::7][:n_over]):
                self.put_object(c, name, self.targets(cont['on'], k, partial),
                                100 + j)
                k += 1
            live = sorted(n for n, r in cont['rows'].items()
                          if not r['deleted'] and not n.startswith(tag))
            for name in live[3::5][:n_del]:
                self.delete_object(c, name, self.targets(cont['on'], k,
                                                         partial))
                k += 1
        up_all = list(range(NODES))
        ghosts = sorted(n for n in self.acct_rows if n.startswith('ghost-'))
        counted = [n for n in ghosts if self.acct_rows[n]['object_count']]
        zero = [n for n in ghosts if not self.acct_rows[n]['object_count']
                and not self.acct_rows[n]['deleted']]
        for j in range(4):
            name = 'ghost-%s-%d' % (tag, j)
            count = 0 if j == 3 else 10 * (j + 1) + len(tag)
            self.account_update(name, self.targets(up_all, k, partial),
                                self.ts(), '0', count,
                                count * 1000 + 7 if count else 0)
            k += 1
        self.phase_no += 1
        if counted:
            r = self.acct_rows[counted[self.phase_no % len(counted)]]
            self.account_update(r['name'], up_all, self.ts(), '0',
                                r['object_count'], r['bytes_used'])
        if zero:
            r = self.acct_rows[zero[0]]
            self.account_update(r['name'], up_all, r['put_timestamp'],
                                self.ts(), 0, 0)
        self.log('phase %s: %d containers, %d rows, %d account rows in the '
                 'model' % (tag, len(self.containers),
                            sum(len(c['rows'])
                                for c in self.containers.values()),
                            len(self.acct_rows)))

    # ---- replication
    def read_recon(self, i, kind):
        path = os.path.join(self.nodes[i]['dir'], '%s.recon' % kind)
        try:
            with open(path) as f:
                return json.loads(f.read() or '{}')
        except (OSError, ValueError):
            return {}

    def clear_recon(self, i, kind):
        path = os.path.join(self.nodes[i]['dir'], '%s.recon' % kind)
        if os.path.exists(path):
            os.unlink(path)

    def replicate_round(self, rnd):
        """One `--once` pass of every node's container and account
        replicator, node3 first, then node1, node2 (each node's two
        replicators at the same time). Returns {(i, kind): stats}."""
        out = {}
        for i in (SWITCHED,) + tuple(j for j in range(NODES)
                                     if j != SWITCHED):
            names = []
            for kind in KINDS:
                self.clear_recon(i, kind)
                name = self.pname(i, '%s-replicator-once' % kind)
                self.procs.start(name, self.replicator_cmd(
                    i, kind, self.impl[i], once=True),
                    logname=self.pname(i, '%s-replicator' % kind))
                names.append((kind, name))
            for kind, name in names:
                rc = self.procs.wait(name, PASS_TIMEOUT)
                check(rc == 0, '%s (%s) --once exited %d', name,
                      self.impl[i], rc)
                stats = self.read_recon(i, kind).get('replication_stats')
                check(isinstance(stats, dict), '%s (%s) wrote no '
                      'replication_stats', name, self.impl[i])
                out[(i, kind)] = stats
                self.log('round %d %s (%s): %s' % (
                    rnd, name, self.impl[i], json.dumps(
                        {k: v for k, v in sorted(stats.items())
                         if v and k != 'start'})))
        return out

    def converge(self, expect_first):
        """Replication rounds until every replica equals the model (at most
        MAX_ROUNDS). `expect_first`: {(node, kind): {stat: minimum}} for
        the first round, whose passes must also have no failure."""
        problems = []
        for rnd in range(1, MAX_ROUNDS + 1):
            stats = self.replicate_round(rnd)
            if rnd == 1:
                bad = []
                for (i, kind), st in sorted(stats.items()):
                    want = dict(expect_first.get((i, kind), {}))
                    if st.get('failure', 0):
                        bad.append('%s %s (%s) failure=%s' % (
                            self.nodes[i]['name'], kind, self.impl[i],
                            st.get('failure')))
                    for k, v in sorted(want.items()):
                        if st.get(k, 0) < v:
                            bad.append('%s %s (%s) %s=%s, want >= %d' % (
                                self.nodes[i]['name'], kind, self.impl[i],
                                k, st.get(k), v))
                check(not bad, 'first replication round: %s', '; '.join(bad))
            problems = self.differences()
            self.log('after round %d: %d differences%s' % (
                rnd, len(problems),
                (': ' + ' | '.join(problems[:5])) if problems else ''))
            if not problems:
                for c in self.containers.values():
                    c['on'] = set(range(NODES))
                return rnd
        raise Fail('replicas differ after %d replication rounds: %s' % (
            MAX_ROUNDS, ' | '.join(problems[:5])))

    def daemon_check(self, i):
        """Starts node i's replicator daemons (the operator's last step),
        waits for their first pass (bounded) and checks it found the
        replicas in step: nothing shipped, no failure. The daemons keep
        running until the node is stopped."""
        impl = self.impl[i]
        for kind in KINDS:
            self.clear_recon(i, kind)
            self.procs.start(self.pname(i, '%s-replicator-daemon' % kind),
                             self.replicator_cmd(i, kind, impl, once=False),
                             logname=self.pname(i, '%s-replicator' % kind))
        deadline = time.time() + DAEMON_TIMEOUT
        got = {}
        while len(got) < len(KINDS):
            for kind in KINDS:
                name = self.pname(i, '%s-replicator-daemon' % kind)
                check(self.procs.running(name), '%s (%s) exited', name, impl)
                rec = self.read_recon(i, kind)
                if 'replication_last' in rec and \
                        isinstance(rec.get('replication_stats'), dict):
                    got[kind] = rec['replication_stats']
            if len(got) < len(KINDS):
                check(time.time() < deadline, '%s (%s) replicator daemons: '
                      'no pass within %ds', self.nodes[i]['name'], impl,
                      DAEMON_TIMEOUT)
                time.sleep(0.2)
        for kind, st in sorted(got.items()):
            self.log('%s %s replicator daemon (%s) first pass: %s' % (
                self.nodes[i]['name'], kind, impl, json.dumps(
                    {k: v for k, v in sorted(st.items())
                     if v and k != 'start'})))
            shipped = {k: st.get(k) for k in ('failure', 'diff', 'rsync',
                                              'remote_merge')
                       if st.get(k)}
            check(not shipped and st.get('attempted', 0) > 0,
                  '%s %s replicator daemon (%s) on converged replicas: %s',
                  self.nodes[i]['name'], kind, impl, json.dumps(st))

    # ---- the hand-over
    def pending_bytes(self, i):
        """Bytes in node i's .pending files, per kind: rows a server
        accepted and has not yet committed to its DB."""
        out = dict.fromkeys(KINDS, 0)
        n = self.nodes[i]
        for kind in KINDS:
            top = os.path.join(n['devices'], n['device'], kind + 's')
            for dirpath, _, files in os.walk(top):
                out[kind] += sum(os.path.getsize(os.path.join(dirpath, f))
                                 for f in files if f.endswith('.pending'))
        return out

    def snapshot(self):
        """What every replica holds now (all up, no write skipped one):
        the live names of each container and of the account."""
        return {
            'containers': {c: None if cont['delete'] else
                           [n for n, r in sorted(cont['rows'].items())
                            if not r['deleted']]
                           for c, cont in self.containers.items()},
            'account': [n for n, r in sorted(self.acct_rows.items())
                        if not r['deleted']]}

    def served_differences(self, i, snap):
        """Node i's servers (just started on the files the other
        implementation left) list what the snapshot says, rows that were
        still in .pending files included."""
        out = []
        reqs = [('container', c, self.cpath(i, c), names)
                for c, names in sorted(snap['containers'].items())]
        reqs.append(('account', ACCOUNT, self.apath(i), snap['account']))
        for kind, what, path, names in reqs:
            st, hd, body = http_call(self.port(i, kind), 'GET',
                                     path + '?format=json')
            where = '%s (%s) %s %s' % (self.nodes[i]['name'], self.impl[i],
                                       kind, what)
            if names is None:
                if st != 404:
                    out.append('%s: GET %s, want 404 (deleted)' % (where, st))
                continue
            got = [e['name'] for e in json.loads(body)] if st == 200 else []
            if st not in (200, 204) or got != names:
                out.append('%s: GET %s, %d names, want %d; missing %s' % (
                    where, st, len(got), len(names),
                    sorted(set(names) - set(got))[:3]))
        return out

    # ---- the checks
    def db_path(self, i, kind, part, hsh):
        n = self.nodes[i]
        return os.path.join(n['devices'], n['device'], kind + 's', str(part),
                            hsh[-3:], hsh, hsh + '.db')

    @staticmethod
    def integrity(path):
        c = sqlite3.connect('file:%s?mode=ro' % path, uri=True)
        try:
            return c.execute('PRAGMA integrity_check').fetchall()
        finally:
            c.close()

    def container_state(self, i, c):
        """What Swift's ContainerBroker reads from node i's DB of c."""
        from swift.container.backend import ContainerBroker
        cont = self.containers[c]
        path = self.db_path(i, 'container', cont['part'], cont['hash'])
        if not os.path.exists(path):
            return None
        b = ContainerBroker(path, account=ACCOUNT, container=c)
        info = b.get_info()  # commits the .pending file first
        rows = sorted((dict(r) for r in b.get_items_since(-1, 1000000)),
                      key=lambda r: r['name'])
        listing = [r[0] for r in b.list_objects_iter(
            10000, '', None, None, None)]
        return {'path': path, 'info': info, 'rows': rows,
                'listing': listing, 'deleted': b.is_deleted(),
                'integrity': self.integrity(path)}

    def account_state(self, i):
        from swift.account.backend import AccountBroker
        path = self.db_path(i, 'account', self.apart, self.ahash)
        if not os.path.exists(path):
            return None
        b = AccountBroker(path, account=ACCOUNT)
        info = b.get_info()
        rows = sorted((dict(r) for r in b.get_items_since(-1, 1000000)),
                      key=lambda r: r['name'])
        listing = [r[0] for r in b.list_containers_iter(
            10000, '', None, None, None)]
        return {'path': path, 'info': info, 'rows': rows,
                'listing': listing, 'deleted': b.is_deleted(),
                'integrity': self.integrity(path)}

    ROW_KEYS = ('name', 'created_at', 'size', 'content_type', 'etag',
                'deleted', 'storage_policy_index')
    AROW_KEYS = ('name', 'put_timestamp', 'delete_timestamp', 'object_count',
                 'bytes_used', 'deleted')

    @staticmethod
    def replica_differences(where, st, keys, want, missing_as):
        """A replica's integrity check and rows (`keys` of each) against
        the rows wanted."""
        out = []
        if st['integrity'] != [('ok',)]:
            out.append('%s: integrity_check %s' % (where, st['integrity'][:3]))
        got = [tuple(r.get(k) for k in keys) for r in st['rows']]
        if got != want:
            missing = sorted(set(want) - set(got))
            extra = sorted(set(got) - set(want))
            out.append('%s: %d rows, want %d; %s %s; unexpected %s' % (
                where, len(got), len(want), missing_as, missing[:2],
                extra[:2]))
        return out

    def container_differences(self, c, nodes):
        out = []
        cont = self.containers[c]
        want = [tuple(r[k] for k in self.ROW_KEYS)
                for _, r in sorted(cont['rows'].items())]
        live = [r for _, r in sorted(cont['rows'].items()) if not r['deleted']]
        for i in nodes:
            where = '%s (%s) %s' % (self.nodes[i]['name'], self.impl[i], c)
            st = self.container_state(i, c)
            if st is None:
                out.append('%s: no DB' % where)
                continue
            out.extend(self.replica_differences(where, st, self.ROW_KEYS,
                                                want, 'missing or older'))
            info = st['info']
            exp = {'object_count': len(live),
                   'bytes_used': sum(r['size'] for r in live),
                   'hash': chexor((r['name'], r['created_at'])
                                  for r in cont['rows'].values()),
                   'put_timestamp': cont['put'],
                   'delete_timestamp': cont['delete'] or '0'}
            for k, v in sorted(exp.items()):
                if info.get(k) != v:
                    out.append('%s: get_info %s %r, want %r' % (
                        where, k, info.get(k), v))
            if st['listing'] != [r['name'] for r in live]:
                out.append('%s: list_objects_iter %d names, want %d' % (
                    where, len(st['listing']), len(live)))
            if st['deleted'] != bool(cont['delete']):
                out.append('%s: is_deleted %s' % (where, st['deleted']))
        return out

    def account_differences(self, nodes):
        out = []
        want = [tuple(r[k] for k in self.AROW_KEYS)
                for _, r in sorted(self.acct_rows.items())]
        live = [r for _, r in sorted(self.acct_rows.items())
                if not r['deleted']]
        for i in nodes:
            where = '%s (%s) account' % (self.nodes[i]['name'],
                                         self.impl[i])
            st = self.account_state(i)
            if st is None:
                out.append('%s: no DB' % where)
                continue
            out.extend(self.replica_differences(where, st, self.AROW_KEYS,
                                                want, 'missing or other'))
            info = st['info']
            exp = {'container_count': len(live),
                   'object_count': sum(r['object_count'] for r in live),
                   'bytes_used': sum(r['bytes_used'] for r in live),
                   'put_timestamp': self.acct_put,
                   'hash': chexor((r['name'], '%s-%s-%s-%s' % (
                       r['put_timestamp'], r['delete_timestamp'],
                       r['object_count'], r['bytes_used']))
                       for r in self.acct_rows.values())}
            for k, v in sorted(exp.items()):
                if info.get(k) != v:
                    out.append('%s: get_info %s %r, want %r' % (
                        where, k, info.get(k), v))
            if st['listing'] != [r['name'] for r in live]:
                out.append('%s: list_containers_iter %d names, want %d' % (
                    where, len(st['listing']), len(live)))
        return out

    # headers that every replica's server must answer alike (created_at,
    # X-Timestamp, is each replica's own)
    CMP_HEADERS = {
        'container': ('x-container-object-count', 'x-container-bytes-used',
                      'x-backend-put-timestamp', 'x-backend-delete-timestamp',
                      'x-backend-storage-policy-index'),
        'account': ('x-account-container-count', 'x-account-object-count',
                    'x-account-bytes-used', 'x-put-timestamp'),
    }

    def listing_differences(self):
        """GET ?format=json of every container and of the account from
        each node's server (Swift's or rowsync's): the same status, counts,
        timestamps and listing everywhere, and the listing is the model's
        (a deleted container: 404 everywhere)."""
        out = []
        reqs = [('container', c, lambda i, c=c: self.cpath(i, c),
                 None if cont['delete'] else
                 [n for n, r in sorted(cont['rows'].items())
                  if not r['deleted']])
                for c, cont in sorted(self.containers.items())]
        reqs.append(('account', ACCOUNT, self.apath,
                     [n for n, r in sorted(self.acct_rows.items())
                      if not r['deleted']]))
        for kind, what, path_of, names in reqs:
            answers = []
            for i in range(NODES):
                where = '%s %s: %s (%s)' % (kind, what, self.nodes[i]['name'],
                                            self.impl[i])
                st, hd, body = http_call(self.port(i, kind), 'GET',
                                         path_of(i) + '?format=json')
                if st is None:
                    out.append('%s refused the GET' % where)
                    continue
                listing = json.loads(body) if st == 200 else []
                answers.append((i, where, st, hd, listing))
                got = [e['name'] for e in listing]
                if names is None and st != 404:
                    out.append('%s: GET %s, want 404 (deleted)' % (where, st))
                elif names is not None and (st not in (200, 204) or
                                            got != names):
                    out.append('%s: GET %s, %d names, want %d' % (
                        where, st, len(got), len(names)))
            for i, where, st, hd, listing in answers[1:]:
                _, rwhere, rst, rhd, rlisting = answers[0]
                if st != rst:
                    out.append('%s: status %s, %s %s' % (where, st, rwhere,
                                                         rst))
                for h in self.CMP_HEADERS[kind]:
                    if hd.get(h) != rhd.get(h):
                        out.append('%s: %s %r, %s %r' % (
                            where, h, hd.get(h), rwhere, rhd.get(h)))
                if listing != rlisting:
                    diff = [(a, b) for a, b in zip(listing, rlisting)
                            if a != b][:1] or [(len(listing), len(rlisting))]
                    out.append('%s: listing differs from %s: %s' % (
                        where, rwhere, json.dumps(diff)[:300]))
        return out

    def differences(self, nodes=None, listings=True):
        nodes = list(range(NODES)) if nodes is None else nodes
        out = []
        for c in sorted(self.containers):
            out += self.container_differences(c, nodes)
        out += self.account_differences(nodes)
        if listings:
            out += self.listing_differences()
        return out

    def swift_info_cli(self, dbs):
        """swift-container-info / swift-account-info on each (kind, DB
        file), all at once; each must exit 0."""
        def one(kd):
            kind, path = kd
            return kind, path, subprocess.run(
                [sys.executable, DRIVER, 'swift', self.swift_dir,
                 '%s-info' % kind, '--swift-dir', self.swift_dir, path],
                capture_output=True, text=True, timeout=60,
                start_new_session=True)
        with ThreadPoolExecutor(max_workers=len(dbs)) as pool:
            for kind, path, p in pool.map(one, dbs):
                check(p.returncode == 0, 'swift-%s-info %s exited %d: %s',
                      kind, path, p.returncode, (p.stdout + p.stderr)[-400:])

    # ---- the steps
    def step1_swift(self):
        self.setup()
        self.start_rsyncd()
        self.start_servers(range(NODES), 'swift')
        self.put_account()
        for c in ('so-alpha', 'so-beta', 'so-gamma', 'so-empty'):
            self.put_container(c, list(range(NODES)))
        self.write_phase('p1', partial=True, odd=True)
        # so-empty: no rows (p1 wrote some); tombstones only, then deleted
        # in step 2
        for name, r in sorted(self.containers['so-empty']['rows'].items()):
            if not r['deleted']:
                self.delete_object('so-empty', name, list(range(NODES)))
        self.containers['so-empty']['frozen'] = True
        rounds = self.converge({})
        self.log('step 1: replicas identical after %d round(s)' % rounds)
        self.daemon_check(SWITCHED)

    def step2_rowsync(self):
        n3 = SWITCHED
        # 1. stop Swift's replicator daemons on node3; rows written now
        # stay in the .pending files of node3's Swift servers; then stop
        # the servers
        self.stop_replicators(n3)
        self.write_phase('p2pre', partial=False)
        pending = self.pending_bytes(n3)
        self.log('node3 (swift) .pending bytes at the stop: %s' % pending)
        check(all(pending.values()), 'harness: Swift left no .pending rows '
              'on node3 (%s): the hand-over of .pending files is not '
              'tested', pending)
        snap = self.snapshot()
        self.stop_servers(n3)
        # writes meanwhile go to node1 and node2 (node3 refuses)
        self.put_container('so-while-down', [0, 1])
        self.write_phase('p2a', partial=False)
        # 2. rowsync's servers on the same confs and files: they serve
        # what Swift left, its .pending rows included
        self.start_servers([n3], 'rowsync')
        probs = self.served_differences(n3, snap)
        check(not probs, 'rowsync serving the DBs Swift left: %s',
              ' | '.join(probs[:5]))
        # writes to all three, some to node3 and one other node only; a
        # container created on node3 and node1 only; a container deleted
        # (through rowsync's container server on node3)
        self.put_container('so-on-rowsync', [n3, 0])
        self.write_phase('p2b', partial=True)
        self.delete_container('so-empty')
        # 3. replication: rowsync's replicator on node3 first
        rounds = self.converge({
            (n3, 'container'): {'diff': 1, 'rsync': 1},
            (n3, 'account'): {'diff': 1},
            (0, 'container'): {'diff': 1, 'rsync': 1},
            (0, 'account'): {'diff': 1}})
        self.log('step 2: replicas identical after %d round(s)' % rounds)
        # 4. rowsync's replicator daemons
        self.daemon_check(n3)

    def step3_rollback(self):
        n3 = SWITCHED
        # 1. stop rowsync's replicator daemons on node3; rows written now
        # through rowsync's servers; then stop the servers
        self.stop_replicators(n3)
        self.write_phase('p3pre', partial=False)
        self.log('node3 (rowsync) .pending bytes at the stop: %s'
                 % self.pending_bytes(n3))
        snap = self.snapshot()
        self.stop_servers(n3)
        # Swift's broker reads every DB rowsync left on node3 (get_info
        # first commits what rowsync left in .pending files)
        probs = self.differences(nodes=[n3], listings=False)
        check(not probs, 'node3 DBs as rowsync left them, read by Swift: %s',
              ' | '.join(probs[:5]))
        self.swift_info_cli([
            ('container', self.db_path(n3, 'container',
                                       self.containers[c]['part'],
                                       self.containers[c]['hash']))
            for c in ('so-on-rowsync', 'so-while-down', 'so-empty')] + [
            ('account', self.db_path(n3, 'account', self.apart,
                                     self.ahash))])
        # writes while node3 is down
        self.put_container('so-rollback-down', [0, 1])
        self.write_phase('p3a', partial=False)
        # 2. Swift's servers again, on the same files
        self.start_servers([n3], 'swift')
        probs = self.served_differences(n3, snap)
        check(not probs, 'Swift serving the DBs rowsync left: %s',
              ' | '.join(probs[:5]))
        self.put_container('so-after-rollback', [n3, 1])
        self.write_phase('p3b', partial=True)
        # 3. replication: Swift's replicator on node3 (rowsync's files) first
        rounds = self.converge({
            (n3, 'container'): {'diff': 1, 'rsync': 1},
            (n3, 'account'): {'diff': 1},
            (0, 'container'): {'diff': 1, 'rsync': 1},
            (0, 'account'): {'diff': 1}})
        self.log('step 3: replicas identical after %d round(s)' % rounds)
        # 4. Swift's replicator daemons again
        self.daemon_check(n3)

    def run(self):
        steps = list(zip(STEPS, (self.step1_swift, self.step2_rowsync,
                                 self.step3_rollback)))
        results = {'passed': 0, 'failed': 0, 'skipped': 0}
        t0 = time.time()
        failed_step = None
        try:
            for name, fn in steps:
                if failed_step:
                    results['skipped'] += 1
                    print('SKIP %s: %s failed' % (name, failed_step),
                          flush=True)
                    continue
                self.log('--- %s' % name)
                start = time.time()
                self.mark_logs()
                try:
                    fn()
                    trouble = self.log_trouble()
                    if trouble:
                        raise Fail('trouble in the logs: ' +
                                   ' | '.join(trouble[:3]))
                except Fail as e:
                    results['failed'] += 1
                    failed_step = name
                    print('FAIL %s: %s' % (name, e), flush=True)
                    self.log('FAIL %s' % e)
                except Exception as e:
                    results['failed'] += 1
                    failed_step = name
                    print('FAIL %s: %s: %s' % (name, type(e).__name__, e),
                          flush=True)
                    self.log(traceback.format_exc())
                else:
                    results['passed'] += 1
                    print('PASS %s' % name, flush=True)
                self.log('--- %s done in %.1fs' % (name, time.time() - start))
        finally:
            killed = self.procs.stop_all()
            self.pool.shutdown()
            if killed:
                self.log('needed SIGKILL at the end: %s' % ', '.join(killed))
            self.log('switch-over done in %.1fs' % (time.time() - t0))
            self.logf.close()
        return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('root', help='a directory for this cluster')
    ap.add_argument('--rowsync-bin', required=True)
    ap.add_argument('--counts', help='write "passed failed skipped" here')
    ap.add_argument('-v', '--verbose', action='store_true')
    a = ap.parse_args()
    # TERM (run.sh's cleanup) unwinds like Ctrl-C: the finally stops
    # every child by its PID
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not os.access(a.rowsync_bin, os.X_OK):
        print('FAIL %s: no rowsync binary at %s' % (STEPS[0], a.rowsync_bin))
        return 1
    root = os.path.abspath(a.root)
    if os.path.isdir(root) and os.listdir(root):
        # a kept INTEROP_ROOT: a previous switch-over's cluster is replaced,
        # anything else is left alone
        if not os.path.exists(os.path.join(root, MARKER)):
            print('FAIL %s: %s is not empty and holds no %s' % (
                STEPS[0], root, MARKER))
            return 1
        shutil.rmtree(root)
    res = Switchover(root, a.rowsync_bin, a.verbose).run()
    line = '%d passed, %d failed' % (res['passed'], res['failed'])
    if res['skipped']:
        line += ', %d skipped' % res['skipped']
    print(line, flush=True)
    if a.counts:
        with open(a.counts, 'w') as f:
            f.write('%d %d %d\n' % (res['passed'], res['failed'],
                                    res['skipped']))
    return 1 if res['failed'] or not res['passed'] else 0


if __name__ == '__main__':
    sys.exit(main())
