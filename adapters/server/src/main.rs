//! `castellan`: see `castellan --help`.

use std::process::ExitCode;

fn main() -> ExitCode {
    castellan_server::cli::main()
}
