//! Realistic generated events for the insights benchmark: LDAP binds, RADIUS and SSO
//! authentications, user-portal logins and admin changes of `orgs` organizations over
//! `days` days, in time order. Each commit is a pure function of its position, so the
//! generator doubles as an event log that needs no memory for 10M events.

use castellan_app::ports::{Appended, CommitStream, EventLog, LogError};
use castellan_domain::envelope::{
    Actor, ActorKind, Commit, EventMeta, ExpectedVersion, NewEvent, RecordedCommit, StreamId,
};
use castellan_domain::ObjectId;
use serde_json::json;
use uuid::Uuid;

/// splitmix64: a fast, well-mixed hash of a position.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub const USERS_PER_ORG: u64 = 2000;
const APPS: &[&str] = &["Slack", "Salesforce", "Zoom", "GitHub", "Google Workspace"];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
];

#[derive(Clone)]
pub struct Generator {
    pub events: u64,
    pub orgs: Vec<ObjectId>,
    pub start_ms: i64,
    pub span_ms: i64,
}

impl Generator {
    pub fn new(events: u64, orgs: usize, days: i64, start_ms: i64) -> Generator {
        let orgs = (0..orgs as u64)
            .map(|i| {
                format!("{:08x}{:016x}", 0x6700_0000u32 + i as u32, mix(i))
                    .parse()
                    .expect("24 hex digits")
            })
            .collect();
        Generator {
            events,
            orgs,
            start_ms,
            span_ms: days * 86_400_000,
        }
    }

    pub fn timestamp_ms(&self, position: u64) -> i64 {
        self.start_ms + (position as i128 * self.span_ms as i128 / self.events as i128) as i64
    }

    pub fn username(user: u64) -> String {
        format!("user{user:04}")
    }

    /// The commit at `position` (1-based).
    pub fn commit(&self, position: u64) -> RecordedCommit {
        let r = mix(position);
        let r2 = mix(r);
        let org = self.orgs[(r % self.orgs.len() as u64) as usize];
        // Some users are much busier than others.
        let user = (r2 % USERS_PER_ORG) * (r2 % 7 + 1) % USERS_PER_ORG;
        let username = Self::username(user);
        let email = format!("{username}@org{}.example", r % self.orgs.len() as u64);
        let ts = self.timestamp_ms(position);
        let occurred_at =
            time::OffsetDateTime::from_unix_timestamp_nanos(ts as i128 * 1_000_000).expect("ts");
        let success = r2 % 100 >= 6;
        let ip = format!("10.{}.{}.{}", r % 200, (r >> 8) % 250, (r >> 16) % 250);
        let user_actor = Actor {
            kind: ActorKind::User,
            id: Some(format!("{:024x}", mix(user) as u128)),
            email: Some(email.clone()),
        };
        let kind = (r >> 32) % 100;
        let (stream, event_type, actor, payload) = if kind < 40 {
            (
                StreamId::auth("ldap"),
                "ldap_bind",
                user_actor,
                json!({
                    "success": success,
                    "username": username,
                    "dn": format!("uid={username},ou=Users,o={org},dc=castellan,dc=local"),
                    "auth_method": 128, "mech": "simple", "start_tls": false, "tls_established": true,
                    "connection_id": (r >> 40) % 100_000, "operation_number": (r >> 20) % 8,
                    "error_code": if success { 0 } else { 49 },
                    "error_message": if success { None } else { Some("Invalid credentials") },
                }),
            )
        } else if kind < 65 {
            (
                StreamId::auth("radius"),
                "radius_auth",
                user_actor,
                json!({
                    "success": success, "username": username, "auth_type": "pap",
                    "nas_mfa_state": "disabled", "mfa": false, "mfa_meta": {"type": "none"},
                    "error_message": if success { None } else { Some("invalid credentials") },
                }),
            )
        } else if kind < 85 {
            let app = APPS[((r >> 24) % APPS.len() as u64) as usize];
            (
                StreamId::auth("sso"),
                "sso_auth",
                user_actor,
                json!({
                    "success": success, "username": username, "idp_initiated": r.is_multiple_of(2),
                    "application": {"name": app.to_lowercase(), "display_label": app, "id": format!("{:024x}", mix(r % 5) as u128)},
                    "mfa": r.is_multiple_of(3),
                    "error_message": if success { None } else { Some("authentication failed") },
                }),
            )
        } else if kind < 95 {
            (
                StreamId::auth("directory"),
                "user_login_attempt",
                user_actor,
                json!({
                    "success": success, "username": username,
                    "resource": {"type": "user", "username": username},
                    "auth_method": "password", "mfa": r.is_multiple_of(4),
                    "mfa_meta": {"type": if r.is_multiple_of(4) { "totp" } else { "none" }},
                    "error_message": if success { None } else { Some("invalid credentials") },
                }),
            )
        } else {
            let admin = Actor {
                kind: ActorKind::Admin,
                id: Some(format!("{:024x}", mix(r % 3) as u128)),
                email: Some(format!("admin{}@org.example", r % 3)),
            };
            let (event_type, changes) = match r % 4 {
                0 => (
                    "user_create",
                    json!([{"field": "username", "from": null, "to": username}, {"field": "email", "from": null, "to": email}]),
                ),
                1 => (
                    "user_update",
                    json!([{"field": "department", "from": "Sales", "to": "Engineering"}]),
                ),
                2 => (
                    "user_update",
                    json!([{"field": "suspended", "from": false, "to": true}]),
                ),
                _ => (
                    "group_update",
                    json!([{"field": "description", "from": "", "to": "quarterly review"}]),
                ),
            };
            (
                StreamId::aggregate(
                    if event_type == "group_update" {
                        "group"
                    } else {
                        "user"
                    },
                    format!("{:024x}", mix(user) as u128),
                ),
                event_type,
                admin,
                json!({ "changes": changes }),
            )
        };
        RecordedCommit {
            position,
            stream_version: position,
            commit: Commit {
                commit_id: Uuid::from_u64_pair(position, r),
                org_id: org,
                stream,
                expected: ExpectedVersion::Any,
                meta: EventMeta {
                    occurred_at,
                    actor,
                    client_ip: Some(ip),
                    user_agent: Some(AGENTS[(r % AGENTS.len() as u64) as usize].to_string()),
                    correlation_id: None,
                },
                events: vec![NewEvent {
                    // UUIDv7-shaped: the time first, so ids sort by time.
                    event_id: Uuid::from_u64_pair(((ts as u64) << 16) | 0x7000, r2 >> 2),
                    event_type: event_type.into(),
                    schema_version: 1,
                    payload,
                }],
            },
        }
    }
}

/// The generator as a read-only event log.
pub struct GeneratedLog(pub Generator);

#[async_trait::async_trait]
impl EventLog for GeneratedLog {
    async fn append(&self, _: Commit) -> Result<Appended, LogError> {
        Err(LogError::Invalid("the generated log is read-only".into()))
    }
    async fn read_stream(
        &self,
        _: ObjectId,
        _: &StreamId,
    ) -> Result<Vec<RecordedCommit>, LogError> {
        Ok(Vec::new())
    }
    async fn read_after(&self, after: u64, limit: usize) -> Result<Vec<RecordedCommit>, LogError> {
        let last = (after + limit as u64).min(self.0.events);
        Ok((after + 1..=last).map(|p| self.0.commit(p)).collect())
    }
    async fn subscribe(&self, _: u64) -> Result<CommitStream, LogError> {
        Err(LogError::Invalid("the generated log is read-only".into()))
    }
    async fn head(&self) -> Result<u64, LogError> {
        Ok(self.0.events)
    }
}
