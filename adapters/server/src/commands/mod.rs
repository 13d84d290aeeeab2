//! One file per subcommand.

pub mod bootstrap;
pub mod events_tail;
pub mod insights;
pub mod keys;
pub mod projections_rebuild;
pub mod quickstart;
pub mod serve;
pub mod users_import;
