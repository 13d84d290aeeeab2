//! The command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands;
use crate::config::Config;

#[derive(Parser)]
#[command(
    name = "castellan",
    version,
    about = "Castellan: a self-hosted cloud directory"
)]
pub struct Cli {
    /// The TOML configuration file (default: ./castellan.toml if it exists).
    #[arg(long, global = true, env = "CASTELLAN_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the API, projections and management endpoints.
    Serve,
    /// On an empty data directory, create a demo organization and admin, print how to
    /// log in, then serve.
    Quickstart,
    /// Create an organization and its first admin; print one JSON object with the
    /// org id, admin id and a new API key (for scripts).
    Bootstrap {
        #[arg(long)]
        org_name: String,
        #[arg(long)]
        admin_email: String,
        /// A file holding the admin's password (first line).
        #[arg(long)]
        admin_password_file: Option<PathBuf>,
    },
    /// The event log.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Users.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Projections.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Insights: the Parquet materializer and SQL over the events.
    Insights {
        #[command(subcommand)]
        command: InsightsCommand,
    },
    /// The encryption keys that seal TOTP secrets (security.encryption_keys).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Print a new key entry `id:base64key` for security.encryption_keys.
    New {
        /// The key's id (default: k + today's date).
        #[arg(long)]
        id: Option<String>,
    },
    /// Seal every TOTP secret anew under the first key of security.encryption_keys
    /// (after a rotation; safe while nodes run). Prints what it did as JSON.
    Reseal {
        /// Count what would be resealed without writing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
pub enum InsightsCommand {
    /// Run the materializer alone (cluster mode: one process, writing to S3).
    Run,
    /// Run one read-only SQL query over an organization's events (table `events`).
    Sql {
        query: String,
        /// The organization.
        #[arg(long)]
        org: String,
        /// `json` (one object per line) or `csv`.
        #[arg(long, default_value = "json")]
        format: String,
    },
}

#[derive(Subcommand)]
pub enum EventsCommand {
    /// Print events as JSON lines, following the log.
    Tail {
        /// Start after this position (default: the current head; 0 for everything).
        #[arg(long)]
        from: Option<u64>,
        /// Stop at the head instead of following.
        #[arg(long)]
        no_follow: bool,
    },
}

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Import users from a CSV file with the header firstname,lastname,username,email,password.
    /// Results go to FILE.result.csv beside it.
    Import {
        file: PathBuf,
        /// Check every row without creating anything.
        #[arg(long)]
        dry_run: bool,
        /// The organization (needed when there are several).
        #[arg(long)]
        org: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum ProjectionsCommand {
    /// Clear the SQL read model and rebuild it from position 0 (run with the server stopped).
    Rebuild,
}

pub fn main() -> ExitCode {
    crate::tune_allocator();
    let cli = Cli::parse();
    let file = cli.config.clone().or_else(|| {
        let default = PathBuf::from("castellan.toml");
        default.is_file().then_some(default)
    });
    let config = match Config::load(file.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("castellan: {e}");
            return ExitCode::from(2);
        }
    };
    crate::logging::init(&config.logging);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("castellan: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve => commands::serve::run(&config).await,
            Command::Quickstart => commands::quickstart::run(&config).await,
            Command::Bootstrap {
                org_name,
                admin_email,
                admin_password_file,
            } => {
                commands::bootstrap::run(
                    &config,
                    &org_name,
                    &admin_email,
                    admin_password_file.as_deref(),
                )
                .await
            }
            Command::Events {
                command: EventsCommand::Tail { from, no_follow },
            } => commands::events_tail::run(&config, from, no_follow).await,
            Command::Projections {
                command: ProjectionsCommand::Rebuild,
            } => commands::projections_rebuild::run(&config).await,
            Command::Users {
                command: UsersCommand::Import { file, dry_run, org },
            } => commands::users_import::run(&config, &file, dry_run, org.as_deref()).await,
            Command::Keys {
                command: KeysCommand::New { id },
            } => commands::keys::new(id.as_deref()),
            Command::Keys {
                command: KeysCommand::Reseal { dry_run },
            } => commands::keys::reseal(&config, dry_run).await,
            Command::Insights {
                command: InsightsCommand::Run,
            } => commands::insights::run(&config).await,
            Command::Insights {
                command: InsightsCommand::Sql { query, org, format },
            } => match format.as_str() {
                "json" | "csv" => {
                    commands::insights::sql(&config, &query, &org, format == "csv").await
                }
                other => Err(anyhow::anyhow!("--format {other:?}: json or csv")),
            },
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("castellan: {e:#}");
            ExitCode::FAILURE
        }
    }
}
