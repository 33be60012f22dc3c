//! `rowsync config check`: the effective settings of a Swift config as
//! rowsync reads them, and what is wrong with it.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::config::ServerType;

/// The long `--help` text of `rowsync config`.
pub const LONG_ABOUT: &str =
    "Check a Swift account-server.conf or container-server.conf before pointing\n\
     rowsync at it. `check` prints every option the server ([app:...]) and the\n\
     replicator ([<kind>-replicator]) read, with its effective value and where it\n\
     comes from (file:line, [DEFAULT], or the default), the sections rowsync does\n\
     not read, and the problems: invalid values and unknown options (typos), each\n\
     with its file and line. Secrets print as <secret>. Exit status 1 when there\n\
     are problems, 2 when the file cannot be read or parsed.";

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective settings and refuse invalid or unknown options.
    #[command(after_help = "Examples:\n  \
        rowsync config check --config /etc/swift/container-server.conf\n  \
        rowsync config check --config /etc/swift/account-server.conf.d --kind account")]
    Check {
        /// The config file (or a directory of *.conf files).
        #[arg(long, short = 'c')]
        config: PathBuf,
        /// Check it as this kind (default: the config's [app:...] kind).
        #[arg(long, value_parser = super::parse_kind)]
        kind: Option<ServerType>,
    },
}

/// Runs the command; `Ok(false)` when problems were found.
pub fn run(args: ConfigArgs) -> anyhow::Result<bool> {
    match args.command {
        ConfigCommand::Check { config, kind } => {
            let report = match crate::config::check::check(&config, kind) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("rowsync: {e}");
                    std::process::exit(2);
                }
            };
            super::print_stdout(&report.to_text(&config))?;
            Ok(report.problems.is_empty())
        }
    }
}
