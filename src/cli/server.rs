//! `rowsync server`: the container server (Swift's container API and
//! REPLICATE) on `bind_ip:bind_port`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use crate::config::{ServerConf, SwiftConf};
use crate::server::{self, AppState};

/// The long `--help` text (set on the subcommand in `cli/mod.rs`).
pub const LONG_ABOUT: &str =
    "Run the container server on bind_ip:bind_port: Swift's container API (PUT,\n\
                  GET, HEAD, POST, DELETE on containers; object rows PUT and DELETE through\n\
                  the pending file) and REPLICATE for replicators. Reads [DEFAULT] and\n\
                  [app:container-server] of container-server.conf (devices, bind_ip,\n\
                  bind_port, swift_dir, mount_check, log_level, log_requests...).\n\
                  Logs go to stderr; SIGTERM or Ctrl-C stops it after in-flight requests.";

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
                  rowsync server --config /etc/swift/container-server.conf\n  \
                  RUST_LOG=debug rowsync server --config node1/container-server.conf --swift-conf swift.conf")]
pub struct ServerArgs {
    /// container-server.conf ([DEFAULT] and [app:container-server]).
    #[arg(long, short = 'c')]
    pub config: PathBuf,
    /// swift.conf (default: <swift_dir>/swift.conf).
    #[arg(long)]
    pub swift_conf: Option<PathBuf>,
}

pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    let conf = ServerConf::from_file(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let swift_path = args
        .swift_conf
        .unwrap_or_else(|| conf.swift_dir.join("swift.conf"));
    let swift = SwiftConf::from_file(&swift_path)
        .with_context(|| format!("reading {}", swift_path.display()))?;
    super::init_logging(&conf.log_level);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let listener = server::bind(&conf)
            .await
            .with_context(|| format!("binding {}:{}", conf.bind_ip, conf.bind_port))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, devices = %conf.devices.display(), "container server listening");
        let state = Arc::new(AppState::new(conf, swift));
        server::serve(state, listener, server::shutdown_signal()).await?;
        tracing::info!("container server stopped");
        Ok(())
    })
}
