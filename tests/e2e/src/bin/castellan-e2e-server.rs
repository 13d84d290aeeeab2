//! The `castellan` binary under another name, so that the end-to-end suite can run
//! it as a child process (and kill it) without depending on another package's binary.

fn main() -> std::process::ExitCode {
    castellan_server::cli::main()
}
