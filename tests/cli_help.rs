//! Every command's `--help` explains it and shows an example.

use std::process::Command;

#[test]
fn every_command_has_help_with_an_example() {
    for cmd in [
        vec![],
        vec!["server"],
        vec!["replicator"],
        vec!["ring"],
        vec!["ring", "show"],
        vec!["ring", "lookup"],
        vec!["ring", "build"],
        vec!["bench"],
        vec!["bench", "merge"],
        vec!["dev-cluster"],
        vec!["info"],
        vec!["status"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_rowsync"))
            .args(&cmd)
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "{cmd:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains("Example") || text.contains("Quick start"),
            "{cmd:?} --help has no example:\n{text}"
        );
        assert!(text.contains("Usage: rowsync"), "{cmd:?}");
    }
}

#[test]
fn long_help_explains_more_than_short_help() {
    for (cmd, phrase) in [
        ("server", "REPLICATE for replicators"),
        ("replicator", "--once runs a single pass"),
        ("dev-cluster", "Ctrl-C (or SIGTERM) stops them all"),
        ("info", "Sync points count ROWIDs of different DBs"),
        ("status", "States of a peer replica"),
    ] {
        let help = |flag: &str| {
            let out = Command::new(env!("CARGO_BIN_EXE_rowsync"))
                .args([cmd, flag])
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap()
        };
        assert!(help("--help").contains(phrase), "{cmd} --help");
        assert!(!help("-h").contains(phrase), "{cmd} -h is the short form");
    }
}
