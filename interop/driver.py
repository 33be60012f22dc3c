#!/usr/bin/env python3
"""Interoperability driver: Swift 2.38 container and account replication
against rowsync.

Run it with the venv's Python (interop/run.sh does all of this):

  driver.py setup ROOT --rowsync-bin BIN   lay out a mixed cluster under ROOT;
                                           prints the processes to start
  driver.py wait ROOT [--timeout S]        wait until rsyncd and every server answer
  driver.py run ROOT [--only SUBSTR]... [--counts FILE]
                                           run the scenarios, print PASS/FAIL/SKIP
  driver.py bench ROOT [--scale F] [--only SUBSTR]... [--out FILE]
                                           the side-by-side benchmark
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

The modules: cluster.py (constants, the Swift tool wrapper, Cluster/Node,
config writers, setup, wait), harness.py (row helpers, Fail/Skip/check,
Ctx, the scenario registry), containers.py, accounts.py and account_api.py
(the scenarios, registered in that order), bench.py (the benchmark).
switchover.py (the switch-over procedure, its own cluster) is run by
run.sh itself, after `run`.
"""

import argparse
import sys
import time
import traceback

from cluster import setup, swift_tool, wait


def load_scenarios():
    """Imports the scenario modules, which register their scenarios (in
    this order) in harness.SCENARIOS, and returns that list."""
    import harness
    import containers  # noqa: F401  the container scenarios
    import accounts  # noqa: F401  the account scenarios (acct_*)
    import account_api  # noqa: F401  acct_* through the account HTTP API
    import recon  # noqa: F401  recon/healthcheck middlewares against Swift's
    return harness.SCENARIOS


def run(args):
    from harness import (ROWSYNC_REPLICATOR_MISSING, Ctx, Fail, Skip,
                         rowsync_replicator_help, start_driver)
    scenarios = load_scenarios()
    cl, log, logf = start_driver(args)
    used = {}  # partitions taken, per ring (per Ctx class)
    passed = failed = skipped = 0
    for name, fn, sk, rk, needs in scenarios:
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
    if args.counts:  # run.sh adds them up with the switch-over's
        with open(args.counts, 'w') as f:
            f.write('%d %d %d\n' % (passed, failed, skipped))
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
    p.add_argument('--counts', help='also write "passed failed skipped" '
                   'to this file')
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
        from bench import bench
        return bench(a)
    if a.cmd == 'list':
        for name, _, _, _, _ in load_scenarios():
            print(name)
        return 0


if __name__ == '__main__':
    sys.exit(main())
