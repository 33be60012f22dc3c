fn main() -> std::process::ExitCode {
    // Builds with fail points read them from FAILPOINTS (e.g.
    // `merge_items::before_commit=return(enospc)`); release builds have none.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    match rowsync::cli::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rowsync: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
