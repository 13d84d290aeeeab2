//! `castellan-bench`: benchmark programs. Each prints Castellan's figures beside the
//! peer the issue names, measured in the same run on the same machine.
//!
//!   cargo run --release -p castellan-bench -- append [--messages N] [--nats-sync always|default]
//!   cargo run --release -p castellan-bench -- directory [--rows 10000] [--users 100000]
//!   cargo run --release -p castellan-bench -- insights [--events 10000000] (bash tests/bench-insights.sh
//!   starts the S3 server and installs DuckDB and awscli first)

mod append;
mod directory;
mod insights;
mod insights_gen;
mod stats;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "castellan-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Event-log append throughput (raw JetStream vs Castellan's JetStream adapter;
    /// embedded SQLite single and batched) and append→projection latency.
    Append(append::Args),
    /// CSV import against the argon2 ideal; user creation and 100k-user listing over HTTP.
    Directory(directory::Args),
    /// 10M events materialized to Parquet; Directory Insights queries beside DuckDB;
    /// export of a window to S3 beside `aws s3 cp`.
    Insights(insights::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    castellan_server::tune_allocator();
    match Cli::parse().command {
        Command::Append(args) => append::run(args).await,
        Command::Directory(args) => directory::run(args).await,
        Command::Insights(args) => insights::run(args).await,
    }
}
