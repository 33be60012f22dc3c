//! A real Swift 2.38 node in a chaos run (`rowsync chaos --swift-node`).
//!
//! The node runs Swift's `container-server`, `account-server`,
//! `container-replicator` and `account-replicator` (Python, from a venv
//! that has `swift==2.38.*`, e.g. the interop harness's `interop/.venv`)
//! on the same devices layout, configs and ring copy a rowsync node would
//! have. Each is started through [`BOOTSTRAP`], a few lines of Python that
//! point Swift at the node's `swift.conf` (`set_swift_dir`, as the interop
//! harness's `use_swift_dir` does; Swift's daemons otherwise read
//! `/etc/swift/swift.conf`) and send its log lines, which Swift writes to
//! syslog only, to the process's log file instead.
//!
//! Swift ships whole DBs with rsync, so a run with a Swift node also runs
//! one rsync daemon (a module per node, named after its device) and every
//! replicator of the run, rowsync's too, uses `db_transfer = rsync`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;

/// The Swift release a Swift node must run.
pub const SWIFT_SERIES: &str = "2.38.";

/// `python BOOTSTRAP SWIFT_DIR TOOL CONF [ARGS...]`: runs one of Swift's
/// servers or replicators with SWIFT_DIR's swift.conf, its log lines on
/// (a copy of) stderr.
pub const BOOTSTRAP: &str = r#""""rowsync chaos: one of Swift's servers or replicators on a chaos node.

python swift-run.py SWIFT_DIR TOOL CONF [ARGS...]

TOOL is container-server, container-replicator, account-server or
account-replicator. Swift reads SWIFT_DIR/swift.conf (not /etc/swift) and
its log lines go to stderr (Swift logs to syslog only).
"""
import importlib
import logging
import os
import sys
import time

TOOLS = {
    'container-server': ('swift.container.server', 'main'),
    'container-replicator': ('swift.container.replicator', 'main'),
    'account-server': ('swift.account.server', 'main'),
    'account-replicator': ('swift.account.replicator', 'main'),
}

if len(sys.argv) < 4 or sys.argv[2] not in TOOLS:
    sys.exit('usage: swift-run.py SWIFT_DIR {%s} CONF [ARGS...]'
             % '|'.join(TOOLS))
swift_dir, tool, args = sys.argv[1], sys.argv[2], sys.argv[3:]
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


from swift.common.utils import logs  # noqa: E402
logs.ThreadSafeSysLogHandler = StderrLogHandler
from swift.common import storage_policy, utils  # noqa: E402
utils.set_swift_dir(swift_dir)
storage_policy.reload_storage_policies()
module, func = TOOLS[tool]
main = getattr(importlib.import_module(module), func)
sys.argv = ['swift-' + tool] + list(args)
sys.exit(main())
"#;

/// What the probe prints: Swift's version, the user name (Swift's daemons
/// switch to `user`), uid and gid (the rsync daemon's).
const PROBE: &str = r#"
import os, pwd
import swift
import swift.container.server, swift.container.replicator
import swift.account.server, swift.account.replicator
from swift.common.utils import logs
assert hasattr(logs, 'ThreadSafeSysLogHandler')
print(swift.__version__)
print(pwd.getpwuid(os.getuid()).pw_name)
print(os.getuid())
print(os.getgid())
"#;

/// A venv's Python that runs Swift 2.38, and who we are.
#[derive(Debug, Clone)]
pub struct SwiftEnv {
    pub venv: PathBuf,
    pub python: PathBuf,
    pub version: String,
    /// The `user` Swift's processes run as (ours).
    pub user: String,
    pub uid: u32,
    pub gid: u32,
}

/// How to get one.
const HOW: &str = "`bash interop/run.sh` creates interop/.venv with swift==2.38.3 \
                   (INTEROP_ONLY=switchover runs the shortest part); --swift-venv names another";

/// Checks that `venv` runs Swift 2.38 and that rsync is installed (a run
/// with a Swift node ships whole DBs with rsync).
pub async fn probe(venv: &Path) -> anyhow::Result<SwiftEnv> {
    // Absolute: Swift's processes start in our directory but chdir to /.
    let venv = &std::path::absolute(venv)
        .with_context(|| format!("--swift-node: resolving {}", venv.display()))?;
    let python = venv.join("bin").join("python");
    if !python.is_file() {
        anyhow::bail!(
            "--swift-node: no Swift venv at {} ({} does not exist); {HOW}",
            venv.display(),
            python.display()
        );
    }
    let out = run_bounded(
        tokio::process::Command::new(&python).args(["-c", PROBE]),
        Duration::from_secs(120),
    )
    .await
    .with_context(|| format!("--swift-node: running {}", python.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("").to_string();
        anyhow::bail!(
            "--swift-node: {} does not import Swift ({}: {last}); {HOW}",
            python.display(),
            out.status
        );
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines().map(str::trim);
    let (Some(version), Some(user), Some(uid), Some(gid)) =
        (lines.next(), lines.next(), lines.next(), lines.next())
    else {
        anyhow::bail!(
            "--swift-node: unexpected answer from {}: {text:?}",
            python.display()
        );
    };
    anyhow::ensure!(
        version.starts_with(SWIFT_SERIES),
        "--swift-node: {} runs Swift {version}, not {SWIFT_SERIES}x; {HOW}",
        python.display()
    );
    let parse = |v: &str| {
        v.parse::<u32>()
            .with_context(|| format!("--swift-node: uid/gid {v:?} from {}", python.display()))
    };
    let (uid, gid) = (parse(uid)?, parse(gid)?);
    let rsync = run_bounded(
        tokio::process::Command::new("rsync").arg("--version"),
        Duration::from_secs(30),
    )
    .await;
    match rsync {
        Ok(o) if o.status.success() => {}
        Ok(o) => anyhow::bail!("--swift-node: `rsync --version` exited {}", o.status),
        Err(e) => anyhow::bail!(
            "--swift-node: rsync is needed (Swift ships whole DBs with rsync) and does not run: {e:#}"
        ),
    }
    Ok(SwiftEnv {
        venv: venv.to_path_buf(),
        python,
        version: version.to_string(),
        user: user.to_string(),
        uid,
        gid,
    })
}

/// Runs `cmd` to completion with its output captured, killed after `limit`.
async fn run_bounded(
    cmd: &mut tokio::process::Command,
    limit: Duration,
) -> anyhow::Result<std::process::Output> {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(r) => Ok(r?),
        Err(_) => anyhow::bail!("no answer within {} s", limit.as_secs()),
    }
}

/// The rsync daemon's config: loopback only, one writable module per node
/// (named after its device, path its devices dir), so the replicators'
/// `rsync_module = rsync://{replication_ip}:{meta}/{device}` lands a DB in
/// `<devices>/<device>/tmp/<id>` of the right node (`{meta}` is the port:
/// the daemon's own for a node's own device, else the rsync proxy of the
/// pair, so partitions cut whole-DB transfers too).
pub fn rsyncd_conf(env: &SwiftEnv, log: &Path, modules: &[(String, PathBuf)]) -> String {
    let mut text = format!(
        "uid = {}\ngid = {}\nuse chroot = false\naddress = 127.0.0.1\n\
         hosts allow = 127.0.0.1\nlog file = {}\n\n",
        env.uid,
        env.gid,
        log.display()
    );
    for (name, path) in modules {
        text.push_str(&format!(
            "[{name}]\npath = {}\nread only = false\nlist = yes\n\n",
            path.display()
        ));
    }
    text
}

/// The `rsync_module` template of every replicator in a run with a Swift
/// node (see [`rsyncd_conf`]).
pub const RSYNC_MODULE: &str = "rsync://{replication_ip}:{meta}/{device}";
