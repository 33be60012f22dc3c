//! The dev cluster's child processes (each node's server and replicator,
//! run from the current executable), their prefixed output, and stopping
//! them.
//!
//! Each child runs in its own process group, so a terminal's Ctrl-C
//! reaches only `rowsync dev-cluster`, which then stops the children in
//! order (replicators first) by their own handles: SIGTERM, a bounded
//! wait, SIGKILL if needed, and a reap. On Linux a child also gets SIGTERM
//! if `rowsync dev-cluster` itself dies (`PR_SET_PDEATHSIG`).

use std::ffi::OsString;
use std::io::Write as _;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::task::JoinHandle;

/// Where output goes: plain lines (our messages on stdout, the children's
/// prefixed lines on stderr), or above a live display on the terminal.
#[derive(Default)]
pub struct Console {
    live: Mutex<Option<indicatif::MultiProgress>>,
}

impl Console {
    fn live(&self) -> Option<indicatif::MultiProgress> {
        match self.live.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Routes output above `mp` (None: back to plain lines).
    pub fn set_live(&self, mp: Option<indicatif::MultiProgress>) {
        match self.live.lock() {
            Ok(mut g) => *g = mp,
            Err(p) => *p.into_inner() = mp,
        }
    }

    /// One of our own messages.
    pub fn say(&self, msg: &str) {
        match self.live() {
            Some(mp) => {
                let _ = mp.println(msg);
            }
            // Never panic on a closed stdout (e.g. piped into `head`).
            None => {
                let _ = writeln!(std::io::stdout().lock(), "{msg}");
            }
        }
    }

    /// A child's output line, prefixed with its name.
    pub fn child_line(&self, name: &str, line: &str) {
        let text = format!("{name:<24} | {line}");
        match self.live() {
            Some(mp) => {
                let _ = mp.println(text);
            }
            None => {
                let _ = writeln!(std::io::stderr().lock(), "{text}");
            }
        }
    }
}

/// SIGINT and SIGTERM, registered as soon as this is made.
pub struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for either signal; returns its name.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}

/// On Linux, the child gets `signal` when the thread that spawned it dies
/// (`PR_SET_PDEATHSIG`), and is not started at all if the parent is
/// already gone. Elsewhere, nothing.
pub fn die_with_parent(cmd: &mut tokio::process::Command, signal: libc::c_int) {
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs in the forked child before exec and
        // only calls async-signal-safe functions (prctl, getppid).
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, signal) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    return Err(std::io::Error::other("parent already exited"));
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (cmd, signal);
}

/// A running child.
pub struct ChildProc {
    /// `node1-server`, `node1-replicator`, ...
    pub name: String,
    child: tokio::process::Child,
    pid: Option<u32>,
    pumps: Vec<JoinHandle<()>>,
    exited: Option<ExitStatus>,
}

fn pump<R: AsyncRead + Unpin + Send + 'static>(
    reader: R,
    name: String,
    console: Arc<Console>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut r = BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        buf.pop();
                    }
                    console.child_line(&name, &String::from_utf8_lossy(&buf));
                }
            }
        }
    })
}

impl ChildProc {
    /// Starts `exe args...` with piped output forwarded to `console`.
    /// Call this from the thread that lives as long as the cluster (the
    /// death signal is tied to the spawning thread).
    pub fn spawn(
        name: &str,
        exe: &Path,
        args: &[OsString],
        color: bool,
        console: Arc<Console>,
    ) -> anyhow::Result<ChildProc> {
        let mut cmd = tokio::process::Command::new(exe);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        if !color {
            cmd.env("NO_COLOR", "1");
        }
        die_with_parent(&mut cmd, libc::SIGTERM);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({})", exe.display()))?;
        let mut pumps = Vec::new();
        if let Some(out) = child.stdout.take() {
            pumps.push(pump(out, name.to_string(), console.clone()));
        }
        if let Some(err) = child.stderr.take() {
            pumps.push(pump(err, name.to_string(), console));
        }
        Ok(ChildProc {
            name: name.to_string(),
            pid: child.id(),
            child,
            pumps,
            exited: None,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The exit status if the child has exited (reaps it).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            if let Ok(Some(s)) = self.child.try_wait() {
                self.exited = Some(s);
            }
        }
        self.exited
    }

    /// Sends SIGTERM if the child is still running (it has not been
    /// reaped, so its pid is still ours).
    pub fn terminate(&mut self) {
        if self.exited().is_some() {
            return;
        }
        if let Some(pid) = self.pid.and_then(|p| libc::pid_t::try_from(p).ok()) {
            // SAFETY: plain kill(2) on our own unreaped child.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }

    /// Waits up to `grace` for the child to exit, then kills it; always
    /// reaps it. Returns its exit status (None if it could not be waited).
    pub async fn wait_or_kill(&mut self, grace: Duration) -> Option<ExitStatus> {
        if let Some(s) = self.exited() {
            return Some(s);
        }
        let status = match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(s)) => Some(s),
            _ => {
                let _ = self.child.start_kill();
                tokio::time::timeout(Duration::from_secs(5), self.child.wait())
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
        };
        self.exited = status;
        status
    }

    /// Waits (bounded) until the child's output has been forwarded.
    pub async fn drain_output(&mut self, limit: Duration) {
        for p in self.pumps.drain(..) {
            let _ = tokio::time::timeout(limit, p).await;
        }
    }
}

/// Stops children: SIGTERM to all of them, then waits for each (killing
/// any that outlive `grace`). Returns `(name, status)` for each.
pub async fn stop_all(
    children: &mut [ChildProc],
    grace: Duration,
) -> Vec<(String, Option<ExitStatus>)> {
    for c in children.iter_mut() {
        c.terminate();
    }
    let mut out = Vec::new();
    for c in children.iter_mut() {
        let s = c.wait_or_kill(grace).await;
        c.drain_output(Duration::from_secs(2)).await;
        out.push((c.name.clone(), s));
    }
    out
}
