fn main() -> std::process::ExitCode {
    match rowsync::cli::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rowsync: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
