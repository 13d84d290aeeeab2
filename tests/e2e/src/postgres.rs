//! PostgreSQL for the cluster-mode read store. The test command starts a private
//! cluster and exports `CASTELLAN_TEST_POSTGRES_URL`.

/// The URL, or `None` outside CI when no server was provided (in CI: a panic).
pub fn url() -> Option<String> {
    match std::env::var("CASTELLAN_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if crate::in_ci() => {
            panic!("CASTELLAN_TEST_POSTGRES_URL is not set: the test command must start PostgreSQL")
        }
        _ => {
            eprintln!("skipping: CASTELLAN_TEST_POSTGRES_URL is not set (run tests/run.sh)");
            None
        }
    }
}
