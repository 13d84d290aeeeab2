//! User groups in the portal read model: the group rows, members and associations,
//! and their v2 queries (readable both ways: a group's members, a user's groups).

use castellan_domain::aggregate::{Aggregate, EventCodec};
use castellan_domain::envelope::{Envelope, StreamId};
use castellan_domain::user_group::{GroupEventKind, UserGroup, UserGroupEvent};
use futures::future::BoxFuture;
use serde_json::{json, Value};
use sqlx::{AnyConnection, Row};
use time::format_description::well_known::Rfc3339;

use crate::runtime::ProjectionError;
use crate::store::ReadStore;
use crate::users::{Filter, ListQuery, Op, Page};

pub fn reduce<'c>(
    conn: &'c mut AnyConnection,
    e: &'c Envelope,
) -> BoxFuture<'c, Result<(), ProjectionError>> {
    Box::pin(async move {
        let StreamId::Aggregate { id, .. } = &e.stream else {
            return Err(ProjectionError::apply(e, "not an aggregate stream"));
        };
        let event = UserGroupEvent::decode(&e.event_type, e.schema_version, e.payload.clone())
            .map_err(|err| ProjectionError::apply(e, err))?;
        let org = e.org_id.to_string();
        let now = e.occurred_at.format(&Rfc3339).unwrap_or_default();
        if event.kind == GroupEventKind::Delete {
            for table in [
                "user_groups WHERE id",
                "group_members WHERE group_id",
                "group_associations WHERE group_id",
            ] {
                sqlx::query(&format!("DELETE FROM {table} = $1"))
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
            }
            return Ok(());
        }
        let (mut group, created_at) = if event.kind == GroupEventKind::Create {
            (UserGroup::default(), now.clone())
        } else {
            crate::portal::load_doc::<UserGroup>(&mut *conn, "user_groups", id, e).await?
        };
        group.evolve(&event);
        if let Some(a) = &event.body.association {
            let (op, kind, target) = (
                a["op"].as_str().unwrap_or(""),
                a["type"].as_str().unwrap_or(""),
                a["id"].as_str().unwrap_or(""),
            );
            match (kind, op) {
                ("user", "add") => {
                    sqlx::query("INSERT INTO group_members (org_id, group_id, user_id) VALUES ($1, $2, $3) ON CONFLICT (group_id, user_id) DO NOTHING")
                        .bind(&org).bind(id).bind(target).execute(&mut *conn).await?;
                }
                ("user", _) => {
                    sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
                        .bind(id)
                        .bind(target)
                        .execute(&mut *conn)
                        .await?;
                }
                (_, "remove") => {
                    sqlx::query("DELETE FROM group_associations WHERE group_id = $1 AND target_type = $2 AND target_id = $3")
                        .bind(id).bind(kind).bind(target).execute(&mut *conn).await?;
                }
                _ => {
                    sqlx::query(
                        "INSERT INTO group_associations (org_id, group_id, target_type, target_id, attributes) VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (group_id, target_type, target_id) DO UPDATE SET attributes = excluded.attributes",
                    )
                    .bind(&org).bind(id).bind(kind).bind(target).bind(a["attributes"].to_string())
                    .execute(&mut *conn).await?;
                }
            }
        }
        sqlx::query(
            "INSERT INTO user_groups (id, org_id, name, doc, created_at, updated_at, version) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, doc = excluded.doc, updated_at = excluded.updated_at, version = excluded.version",
        )
        .bind(id)
        .bind(&org)
        .bind(group.name().to_string())
        .bind(serde_json::to_string(&group).unwrap_or_default())
        .bind(created_at)
        .bind(now)
        .bind(e.stream_version as i64)
        .execute(&mut *conn)
        .await?;
        Ok(())
    })
}

/// The v2 shape of a group.
pub fn to_json(id: &str, group: &UserGroup) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("id".into(), json!(id));
    out.insert("type".into(), json!("user_group"));
    out.insert("membershipMethod".into(), json!("STATIC"));
    for (k, v) in &group.fields {
        out.insert(k.clone(), v.clone());
    }
    out.entry("attributes").or_insert(json!({}));
    Value::Object(out)
}

fn edge(from_type: &str, from: &str, to_type: &str, to: &str) -> Value {
    json!({"from": {"type": from_type, "id": from}, "to": {"type": to_type, "id": to}})
}

impl ReadStore {
    pub async fn group(&self, org: &str, id: &str) -> Result<Option<Value>, sqlx::Error> {
        let row = sqlx::query("SELECT doc FROM user_groups WHERE org_id = $1 AND id = $2")
            .bind(org)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| {
            to_json(
                id,
                &serde_json::from_str(&r.get::<String, _>(0)).unwrap_or_default(),
            )
        }))
    }

    /// Groups of an org, sorted and filtered by `name` only.
    pub async fn groups(&self, org: &str, q: &ListQuery) -> Result<(Vec<Value>, u64), sqlx::Error> {
        let mut sql_where = "org_id = $1".to_string();
        let mut binds = vec![org.to_string()];
        for f in &q.filter {
            let Filter::Is { field, op, value } = f else {
                continue;
            };
            if field != "name" {
                continue;
            }
            binds.push(if *op == Op::Search {
                format!("%{}%", value.to_lowercase())
            } else {
                value.clone()
            });
            let clause = match op {
                Op::Eq => format!(" AND name = ${}", binds.len()),
                Op::Ne => format!(" AND name <> ${}", binds.len()),
                _ => format!(" AND LOWER(name) LIKE ${}", binds.len()),
            };
            sql_where.push_str(&clause);
        }
        let desc = q.sort.iter().any(|(f, d)| f == "name" && *d);
        let page = format!(
            "SELECT id, doc FROM user_groups WHERE {sql_where} ORDER BY name {}, id LIMIT {} OFFSET {}",
            if desc { "DESC" } else { "ASC" },
            q.limit,
            q.skip
        );
        let count = format!("SELECT COUNT(*) FROM user_groups WHERE {sql_where}");
        let (mut pq, mut cq) = (sqlx::query(&page), sqlx::query(&count));
        for b in &binds {
            pq = pq.bind(b.clone());
            cq = cq.bind(b.clone());
        }
        let total: i64 = cq.fetch_one(&self.pool).await?.get(0);
        let rows = pq.fetch_all(&self.pool).await?;
        Ok((
            rows.iter()
                .map(|r| {
                    to_json(
                        &r.get::<String, _>(0),
                        &serde_json::from_str(&r.get::<String, _>(1)).unwrap_or_default(),
                    )
                })
                .collect(),
            total as u64,
        ))
    }

    /// One page of the ids on the other side of `group_members`: `by` is `group_id`
    /// or `user_id`.
    async fn member_ids(
        &self,
        org: &str,
        by: &str,
        id: &str,
        page: Page,
    ) -> Result<Vec<String>, sqlx::Error> {
        let other = if by == "group_id" {
            "user_id"
        } else {
            "group_id"
        };
        let sql = format!(
            "SELECT {other} FROM group_members WHERE org_id = $1 AND {by} = $2 ORDER BY {other} LIMIT {} OFFSET {}",
            page.limit, page.skip
        );
        let rows = sqlx::query(&sql)
            .bind(org)
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// `GET /usergroups/{id}/members`: GraphConnections to the direct members.
    pub async fn group_members(
        &self,
        org: &str,
        group: &str,
        page: Page,
    ) -> Result<Vec<Value>, sqlx::Error> {
        Ok(self
            .member_ids(org, "group_id", group, page)
            .await?
            .into_iter()
            .map(|user| json!({"to": {"type": "user", "id": user, "attributes": null}, "attributes": null}))
            .collect())
    }

    /// `GET /usergroups/{id}/membership`: users with the paths that reach them.
    pub async fn group_membership(
        &self,
        org: &str,
        group: &str,
        page: Page,
    ) -> Result<Vec<Value>, sqlx::Error> {
        Ok(self
            .member_ids(org, "group_id", group, page)
            .await?
            .into_iter()
            .map(|user| {
                json!({"id": user, "type": "user", "paths": [[edge("user_group", group, "user", &user)]], "compiledAttributes": {}})
            })
            .collect())
    }

    /// `GET /users/{id}/memberof`: the groups a user belongs to.
    pub async fn user_memberof(
        &self,
        org: &str,
        user: &str,
        page: Page,
    ) -> Result<Vec<Value>, sqlx::Error> {
        Ok(self
            .member_ids(org, "user_id", user, page)
            .await?
            .into_iter()
            .map(|group| {
                json!({"id": group, "type": "user_group", "paths": [[edge("user", user, "user_group", &group)]], "compiledAttributes": {}})
            })
            .collect())
    }

    /// The groups of a user with their names and custom attributes: `(id, name, custom)`.
    pub async fn user_group_attributes(
        &self,
        org: &str,
        user: &str,
    ) -> Result<Vec<(String, String, Value)>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT g.id, g.name, g.doc FROM group_members m JOIN user_groups g ON g.id = m.group_id
             WHERE m.org_id = $1 AND m.user_id = $2 AND g.org_id = $1",
        )
        .bind(org)
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let doc: Value = serde_json::from_str(&r.get::<String, _>(2)).unwrap_or_default();
                let custom = doc
                    .pointer("/fields/attributes/custom")
                    .or_else(|| doc.pointer("/attributes/custom"))
                    .cloned()
                    .unwrap_or(Value::Null);
                (r.get(0), r.get(1), custom)
            })
            .collect())
    }

    /// `GET /usergroups/{id}/associations?targets=…`
    pub async fn group_associations(
        &self,
        org: &str,
        group: &str,
        target_type: &str,
        page: Page,
    ) -> Result<Vec<Value>, sqlx::Error> {
        let sql = format!(
            "SELECT target_id, attributes FROM group_associations WHERE org_id = $1 AND group_id = $2 AND target_type = $3 ORDER BY target_id LIMIT {} OFFSET {}",
            page.limit, page.skip
        );
        let rows = sqlx::query(&sql)
            .bind(org)
            .bind(group)
            .bind(target_type)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let attrs: Value = serde_json::from_str(&r.get::<String, _>(1)).unwrap_or(Value::Null);
                json!({"to": {"type": target_type, "id": r.get::<String, _>(0), "attributes": attrs}, "attributes": attrs})
            })
            .collect())
    }
}
