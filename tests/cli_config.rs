//! `rowsync config check` on real config files: effective settings with
//! their origin, invalid and unknown options refused with file and line,
//! secrets never printed.

use std::process::Command;

fn run(path: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rowsync"))
        .args(["config", "check", "--config"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SECRET: &str = "never-print-me-0123456789";

fn write(dir: &std::path::Path, replicator: &str) -> std::path::PathBuf {
    std::fs::write(
        dir.join("swift.conf"),
        "[swift-hash]\nswift_hash_path_prefix = p\nswift_hash_path_suffix = s\n",
    )
    .unwrap();
    let text = format!(
        "[DEFAULT]\nswift_dir = {}\ndevices = /srv/node\nbind_port = 6201\nworkers = 2\n\
         replication_secret = {SECRET}\n\n[pipeline:main]\npipeline = recon container-server\n\n\
         [app:container-server]\nuse = egg:swift#container\nnode_timeout = 7\nset log_level = DEBUG\n\n\
         [filter:recon]\nuse = egg:swift#recon\nrecon_cache_path = /var/cache/swift\n\n\
         [container-replicator]\n{replicator}\n[container-updater]\ninterval = 300\n",
        dir.display()
    );
    let path = dir.join("container-server.conf");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_good_config_prints_effective_settings_with_their_origin() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "per_diff = 500\nconcurrency = 4\n");
    let (code, out, err) = run(&path);
    assert_eq!(code, 0, "{out}{err}");
    let line = |key: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("{key} missing:\n{out}"))
            .to_string()
    };
    assert!(
        line("per_diff").contains("500") && line("per_diff").contains("container-server.conf:21")
    );
    assert!(line("node_timeout").contains("= 7") && line("node_timeout").contains(":13"));
    assert!(line("log_level").contains("DEBUG") && line("log_level").contains(":14"));
    assert!(line("bind_port").contains("[DEFAULT]"));
    assert!(line("max_diffs").contains("# default"));
    assert!(
        out.contains("Not read by rowsync: [container-updater]"),
        "{out}"
    );
    assert!(out.contains("OK: no problems found"));
    assert!(line("replication_secret").contains("<secret>"));
    assert!(!out.contains(SECRET) && !err.contains(SECRET));
}

#[test]
fn invalid_and_unknown_options_are_refused_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "per_dif = 500\nconcurrency = lots\n");
    let (code, out, _) = run(&path);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines().any(|l| l.contains("container-server.conf:21")
            && l.contains("per_dif")
            && l.contains("unknown option")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.contains("container-server.conf:22")
            && l.contains("concurrency")
            && l.contains("\"lots\" is invalid")),
        "{out}"
    );
    assert!(out.contains("2 problem(s)"), "{out}");
}

#[test]
fn an_unparsable_file_names_its_line_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.conf");
    std::fs::write(&path, "[DEFAULT]\nno equals sign here\n").unwrap();
    let (code, _, err) = run(&path);
    assert_eq!(code, 2);
    assert!(err.contains("line 2"), "{err}");
}
