//! The portal read model: the rows the admin API reads.
//!
//! Reducers upcast and decode each event with the domain's codec and apply the
//! `changes` with the same function the aggregate uses, so the read model cannot
//! drift from the write model's meaning of a change.

use castellan_domain::admin::AdminEvent;
use castellan_domain::aggregate::EventCodec;
use castellan_domain::envelope::{Envelope, StreamId};
use castellan_domain::logo::LogoInfo;
use castellan_domain::organization::{Organization, OrganizationEvent};
use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::{AnyConnection, Row};
use time::format_description::well_known::Rfc3339;

use crate::groups;
use crate::runtime::{ProjectionError, Reducer, SqlProjection};
use crate::store::ReadStore;
use crate::users;

pub static PORTAL: SqlProjection = SqlProjection {
    name: "portal",
    reducers: &[
        Reducer {
            event_type: "organization_create",
            reduce: organization,
        },
        Reducer {
            event_type: "organization_update",
            reduce: organization,
        },
        Reducer {
            event_type: "admin_create",
            reduce: admin,
        },
        Reducer {
            event_type: "admin_update",
            reduce: admin,
        },
        Reducer {
            event_type: "admin_delete",
            reduce: admin,
        },
        Reducer {
            event_type: "user_create",
            reduce: users::reduce,
        },
        Reducer {
            event_type: "user_update",
            reduce: users::reduce,
        },
        Reducer {
            event_type: "user_delete",
            reduce: users::reduce,
        },
        Reducer {
            event_type: "user_password_change",
            reduce: users::reduce,
        },
        Reducer {
            event_type: "user_password_expired",
            reduce: users::reduce,
        },
        Reducer {
            event_type: "user_activated",
            reduce: users::reduce,
        },
        Reducer {
            event_type: "user_suspended",
            reduce: users::reduce,
        },
        Reducer {
            event_type: "user_unsuspended",
            reduce: users::reduce,
        },
        Reducer {
            event_type: "user_lockout",
            reduce: users::reduce,
        },
        Reducer {
            event_type: "user_unlocked",
            reduce: users::reduce,
        },
        Reducer {
            event_type: "totp_start_enrollment",
            reduce: users::reduce,
        },
        Reducer {
            event_type: "totp_finish_enrollment",
            reduce: users::reduce,
        },
        Reducer {
            event_type: "totp_delete_enrollment",
            reduce: users::reduce,
        },
        Reducer {
            event_type: "group_create",
            reduce: groups::reduce,
        },
        Reducer {
            event_type: "group_update",
            reduce: groups::reduce,
        },
        Reducer {
            event_type: "group_delete",
            reduce: groups::reduce,
        },
        Reducer {
            event_type: "association_change",
            reduce: groups::reduce,
        },
    ],
    tables: &[
        "organizations",
        "admins",
        "users",
        "user_groups",
        "group_members",
        "group_associations",
    ],
};

/// The JSON document and creation time of a read-model row, for reducers that fold an
/// event into the stored state (`table` is one of this crate's own tables).
pub(crate) async fn load_doc<T: serde::de::DeserializeOwned>(
    conn: &mut AnyConnection,
    table: &str,
    id: &str,
    e: &Envelope,
) -> Result<(T, String), ProjectionError> {
    let row = sqlx::query(&format!(
        "SELECT doc, created_at FROM {table} WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| ProjectionError::apply(e, format!("{id} is not in {table}")))?;
    let doc = serde_json::from_str(&row.get::<String, _>(0))
        .map_err(|err| ProjectionError::apply(e, err))?;
    Ok((doc, row.get(1)))
}

fn stream_id(e: &Envelope) -> Result<String, ProjectionError> {
    match &e.stream {
        StreamId::Aggregate { id, .. } => Ok(id.clone()),
        StreamId::Auth { .. } => Err(ProjectionError::apply(e, "not an aggregate stream")),
    }
}

fn timestamp(e: &Envelope) -> String {
    e.occurred_at.format(&Rfc3339).unwrap_or_default()
}

fn organization<'c>(
    conn: &'c mut AnyConnection,
    e: &'c Envelope,
) -> BoxFuture<'c, Result<(), ProjectionError>> {
    Box::pin(async move {
        let id = stream_id(e)?;
        let event = OrganizationEvent::decode(&e.event_type, e.schema_version, e.payload.clone())
            .map_err(|err| ProjectionError::apply(e, err))?;
        let mut org = match &event {
            OrganizationEvent::Created(_) => Organization::default(),
            OrganizationEvent::Updated(_) => {
                load_organization(conn, &id).await?.ok_or_else(|| {
                    ProjectionError::apply(e, format!("organization {id} is not in the read model"))
                })?
            }
        };
        let created_at = match &event {
            OrganizationEvent::Created(_) => timestamp(e),
            OrganizationEvent::Updated(_) => String::new(),
        };
        castellan_domain::Aggregate::evolve(&mut org, &event);
        let settings = serde_json::to_string(&org.settings).unwrap_or_else(|_| "{}".into());
        let logo = org
            .logo
            .as_ref()
            .map(|l| serde_json::to_string(l).unwrap_or_default());
        sqlx::query(
            "INSERT INTO organizations (id, name, contact_name, contact_email, settings, logo, created_at, updated_at, version, position)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, contact_name = excluded.contact_name,
                 contact_email = excluded.contact_email, settings = excluded.settings, logo = excluded.logo,
                 updated_at = excluded.updated_at, version = excluded.version, position = excluded.position",
        )
        .bind(&id)
        .bind(&org.name)
        .bind(org.contact_name.clone())
        .bind(org.contact_email.clone())
        .bind(settings)
        .bind(logo)
        .bind(created_at)
        .bind(timestamp(e))
        .bind(e.stream_version as i64)
        .bind(e.position as i64)
        .execute(&mut *conn)
        .await?;
        Ok(())
    })
}

async fn load_organization(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<Organization>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT name, contact_name, contact_email, settings, logo FROM organizations WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| Organization {
        exists: true,
        name: r.get(0),
        contact_name: r.get(1),
        contact_email: r.get(2),
        settings: serde_json::from_str(&r.get::<String, _>(3)).unwrap_or_default(),
        logo: r
            .get::<Option<String>, _>(4)
            .and_then(|l| serde_json::from_str(&l).ok()),
    }))
}

fn admin<'c>(
    conn: &'c mut AnyConnection,
    e: &'c Envelope,
) -> BoxFuture<'c, Result<(), ProjectionError>> {
    Box::pin(async move {
        let id = stream_id(e)?;
        let event = AdminEvent::decode(&e.event_type, e.schema_version, e.payload.clone())
            .map_err(|err| ProjectionError::apply(e, err))?;
        match event {
            AdminEvent::Created(c) if c.home_org.is_some() => {
                let role = serde_json::to_value(c.role)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                sqlx::query("DELETE FROM admin_grants WHERE org_id = $1 AND admin_id = $2")
                    .bind(e.org_id.to_string())
                    .bind(&id)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query(
                    "INSERT INTO admin_grants (org_id, admin_id, home_org_id, email, role, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(e.org_id.to_string())
                .bind(&id)
                .bind(c.home_org.unwrap_or_default())
                .bind(&c.email)
                .bind(role)
                .bind(timestamp(e))
                .execute(&mut *conn)
                .await?;
            }
            AdminEvent::Created(c) => {
                let role = serde_json::to_value(c.role)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                sqlx::query(
                    "INSERT INTO admins (id, org_id, email, role, api_key_id, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, NULL, $5, $5) ON CONFLICT (id) DO NOTHING",
                )
                .bind(&id)
                .bind(e.org_id.to_string())
                .bind(&c.email)
                .bind(role)
                .bind(timestamp(e))
                .execute(&mut *conn)
                .await?;
            }
            AdminEvent::Updated(u) => {
                let revoked = u
                    .changes
                    .iter()
                    .any(|c| c.field == "api_key" && c.to.is_null());
                if revoked {
                    sqlx::query("UPDATE admins SET api_key_id = NULL, updated_at = $1 WHERE id = $2 AND org_id = $3")
                        .bind(timestamp(e))
                        .bind(&id)
                        .bind(e.org_id.to_string())
                        .execute(&mut *conn)
                        .await?;
                }
                if let Some(key) = u.api_key {
                    sqlx::query("UPDATE admins SET api_key_id = $1, updated_at = $2 WHERE id = $3 AND org_id = $4")
                        .bind(key.key_id)
                        .bind(timestamp(e))
                        .bind(&id)
                        .bind(e.org_id.to_string())
                        .execute(&mut *conn)
                        .await?;
                }
            }
            AdminEvent::PasswordChanged(_)
            | AdminEvent::Locked(_)
            | AdminEvent::Unlocked(_)
            | AdminEvent::SessionsEnded(_) => {}
            AdminEvent::Deleted(_) => {
                sqlx::query("DELETE FROM admins WHERE id = $1 AND org_id = $2")
                    .bind(&id)
                    .bind(e.org_id.to_string())
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("DELETE FROM admin_grants WHERE admin_id = $1 AND org_id = $2")
                    .bind(&id)
                    .bind(e.org_id.to_string())
                    .execute(&mut *conn)
                    .await?;
            }
        }
        Ok(())
    })
}

/// An organization as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrganizationView {
    pub id: String,
    pub name: String,
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    pub settings: Map<String, Value>,
    pub logo: Option<LogoInfo>,
    pub created_at: String,
    pub updated_at: String,
    pub version: u64,
    pub position: u64,
}

impl ReadStore {
    pub async fn organization(&self, id: &str) -> Result<Option<OrganizationView>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT id, name, contact_name, contact_email, settings, logo, created_at, updated_at, version, position
             FROM organizations WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| OrganizationView {
            id: r.get(0),
            name: r.get(1),
            contact_name: r.get(2),
            contact_email: r.get(3),
            settings: serde_json::from_str(&r.get::<String, _>(4)).unwrap_or_default(),
            logo: r
                .get::<Option<String>, _>(5)
                .and_then(|l| serde_json::from_str(&l).ok()),
            created_at: r.get(6),
            updated_at: r.get(7),
            version: r.get::<i64, _>(8) as u64,
            position: r.get::<i64, _>(9) as u64,
        }))
    }

    /// The ids of every organization.
    pub async fn organization_ids(&self) -> Result<Vec<String>, sqlx::Error> {
        Ok(sqlx::query("SELECT id FROM organizations ORDER BY id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    /// Every row of the portal tables as JSON, in a stable order: what a rebuild
    /// must reproduce exactly.
    pub async fn portal_dump(&self) -> Result<Vec<Value>, sqlx::Error> {
        let mut out = Vec::new();
        for (table, key) in [
            ("organizations", "id"),
            ("admins", "id"),
            ("users", "id"),
            ("user_groups", "id"),
            ("group_members", "group_id, user_id"),
            ("group_associations", "group_id, target_type, target_id"),
        ] {
            let rows = sqlx::query(&format!("SELECT * FROM {table} ORDER BY {key}"))
                .fetch_all(&self.pool)
                .await?;
            for row in rows {
                let mut obj = Map::new();
                obj.insert("table".into(), Value::String(table.into()));
                for (i, col) in sqlx::Row::columns(&row).iter().enumerate() {
                    let name = sqlx::Column::name(col).to_string();
                    let value = row
                        .try_get::<Option<String>, _>(i)
                        .map(|v| v.map(Value::String).unwrap_or(Value::Null))
                        .or_else(|_| {
                            row.try_get::<Option<i64>, _>(i)
                                .map(|v| v.map(Value::from).unwrap_or(Value::Null))
                        })
                        .unwrap_or(Value::Null);
                    obj.insert(name, value);
                }
                out.push(Value::Object(obj));
            }
        }
        Ok(out)
    }
}
