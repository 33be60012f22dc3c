//! `rowsync server`: the container or account server (Swift's API of that
//! kind and REPLICATE) on `bind_ip:bind_port`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use crate::config::{ServerConf, ServerType, SwiftConf};
use crate::server::{self, AppState};

/// The long `--help` text (set on the subcommand in `cli/mod.rs`).
pub const LONG_ABOUT: &str =
    "Run the container or account server on bind_ip:bind_port: Swift's API of\n\
                  that kind (containers: PUT, GET, HEAD, POST, DELETE, object rows through\n\
                  the pending file; accounts: the same on accounts, container updates from\n\
                  container servers) and REPLICATE for replicators. The kind is the one the\n\
                  config's [app:...] section names (`use = egg:swift#container|account`);\n\
                  --kind overrides it. Reads [DEFAULT] and that [app:...] section (devices,\n\
                  bind_ip, bind_port, swift_dir, mount_check, log_level, log_requests...).\n\
                  Logs go to stderr; SIGTERM or Ctrl-C stops it after in-flight requests.";

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
                  rowsync server --config /etc/swift/container-server.conf\n  \
                  rowsync server --config /etc/swift/account-server.conf\n  \
                  RUST_LOG=debug rowsync server --config node1/container-server.conf --swift-conf swift.conf")]
pub struct ServerArgs {
    /// container-server.conf or account-server.conf ([DEFAULT] and its
    /// [app:...] section).
    #[arg(long, short = 'c')]
    pub config: PathBuf,
    /// The kind of server (default: the config's [app:...] kind).
    #[arg(long, value_parser = super::parse_kind)]
    pub kind: Option<ServerType>,
    /// swift.conf (default: <swift_dir>/swift.conf).
    #[arg(long)]
    pub swift_conf: Option<PathBuf>,
}

pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    let kind = ServerType::of_file(&args.config, args.kind)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let conf = ServerConf::from_file_as(&args.config, kind)
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
        let kind = conf.server_type.name();
        tracing::info!(%addr, devices = %conf.devices.display(), "{kind} server listening");
        let state = Arc::new(AppState::new(conf, swift));
        server::serve(state, listener, server::shutdown_signal()).await?;
        tracing::info!("{kind} server stopped");
        Ok(())
    })
}
