use std::sync::Arc;
use std::time::Duration;

use castellan_app::ports::{Clock, EventLog};
use castellan_projections::admin_index::AdminIndex;
use castellan_projections::memory::MemoryProjection;
use castellan_projections::{Progress, ReadStore};

#[derive(Clone)]
pub struct ApiState {
    pub log: Arc<dyn EventLog>,
    pub store: ReadStore,
    /// Progress of the SQL portal projection the reads come from.
    pub portal: Progress,
    pub admins: Arc<MemoryProjection<AdminIndex>>,
    pub clock: Arc<dyn Clock>,
    /// The shared failed-login counter (lockout).
    pub failures: Arc<dyn castellan_app::login::FailureCounter>,
    /// Seals TOTP secrets before they reach the log (`security.encryption_keys`).
    pub keys: Arc<castellan_app::sealing::Keyring>,
    /// The longest a request waits for a projection to reach a position.
    pub consistency_wait: Duration,
    /// Signs admin portal session cookies.
    pub session_key: crate::session::SessionKey,
    /// How users reach this API (`http.public_url`): the base of emailed links.
    pub public_url: String,
    /// Proxies whose `X-Forwarded-For` names the client (`http.trusted_proxies`).
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
    /// The insights query engine (None on a node without insights).
    pub insights: Option<castellan_insights::Insights>,
}
