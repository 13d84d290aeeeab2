//! PostgreSQL for the cluster-mode read store. The test command starts a private
//! cluster and exports `CASTELLAN_TEST_POSTGRES_URL`; each test gets its own database.

use sqlx::Connection;

/// The server URL, or `None` outside CI when none was provided (in CI: a panic).
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

/// A new, empty database on the test server; its URL.
pub async fn fresh_database() -> Option<String> {
    let base = url()?;
    let name = format!("castellan_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&base)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create database");
    let (prefix, _) = base.rsplit_once('/').expect("URL with a database");
    Some(format!("{prefix}/{name}"))
}
