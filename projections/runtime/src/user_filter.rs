//! Filters over users as SQL: every scalar field of a system user, by its column
//! where it has one (indexed: username, email, employeeIdentifier) and through the
//! profile document otherwise, in both dialects. Field names come from fixed lists
//! and are the only text spliced into SQL; values are always bound.

use castellan_domain::user::{FLAG_FIELDS, NUMBER_FIELDS, TEXT_FIELDS};

use crate::store::Dialect;

/// A condition, or conditions combined.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    All(Vec<Filter>),
    Any(Vec<Filter>),
    Is {
        field: String,
        op: Op,
        value: String,
    },
}

/// The operators of both API versions: v1's `$eq`, `$ne`, `$gt`, `$gte`, `$lt`,
/// `$lte` and v2's `eq`, `ne`, `gt`, `ge`, `lt`, `le`, `search`, `in` (values
/// separated by `|`), `between` (two values separated by `|`, both included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Search,
    In,
    Between,
}

impl Op {
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s.strip_prefix('$').unwrap_or(s) {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "gt" => Op::Gt,
            "ge" | "gte" => Op::Ge,
            "lt" => Op::Lt,
            "le" | "lte" => Op::Le,
            "search" => Op::Search,
            "in" => Op::In,
            "between" => Op::Between,
            _ => return None,
        })
    }
}

/// The most values an `in` may list.
pub const MAX_IN_VALUES: usize = 100;

/// What a field holds, which says how its values are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Number,
    Flag,
}

/// Fields with a column of their own.
const COLUMNS: &[(&str, &str, Kind)] = &[
    ("_id", "id", Kind::Text),
    ("id", "id", Kind::Text),
    ("username", "username", Kind::Text),
    ("email", "email", Kind::Text),
    ("employeeIdentifier", "employee_identifier", Kind::Text),
    ("firstname", "firstname", Kind::Text),
    ("lastname", "lastname", Kind::Text),
    ("state", "state", Kind::Text),
    ("password_status", "password_status", Kind::Text),
    ("account_locked", "account_locked", Kind::Flag),
    ("unix_uid", "unix_uid", Kind::Number),
    ("created", "created_at", Kind::Text),
    ("updated", "updated_at", Kind::Text),
];

/// Flags the API shows that are worked out from the state.
const DERIVED: &[(&str, &str)] = &[
    ("activated", "state = 'ACTIVATED'"),
    ("suspended", "state = 'SUSPENDED'"),
    ("password_expired", "password_status = 'expired'"),
];

/// The kind of a field one may filter on, or None.
pub fn kind_of(field: &str) -> Option<Kind> {
    if let Some((_, _, kind)) = COLUMNS.iter().find(|(f, _, _)| *f == field) {
        return Some(*kind);
    }
    if DERIVED.iter().any(|(f, _)| *f == field) || FLAG_FIELDS.contains(&field) {
        return Some(Kind::Flag);
    }
    if NUMBER_FIELDS.contains(&field) {
        return Some(Kind::Number);
    }
    TEXT_FIELDS.contains(&field).then_some(Kind::Text)
}

/// The SQL expression of a field (validated by [`kind_of`] first).
fn expression(field: &str, dialect: Dialect) -> Option<(String, Kind)> {
    if let Some((_, column, kind)) = COLUMNS.iter().find(|(f, _, _)| *f == field) {
        return Some((column.to_string(), *kind));
    }
    if let Some((_, condition)) = DERIVED.iter().find(|(f, _)| *f == field) {
        return Some((
            format!("(CASE WHEN {condition} THEN 1 ELSE 0 END)"),
            Kind::Flag,
        ));
    }
    let kind = kind_of(field)?;
    // `field` is one of the domain's fixed names (letters, digits, '_'): safe to
    // splice as a JSON path.
    debug_assert!(field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    Some(match (dialect, kind) {
        (Dialect::Sqlite, Kind::Text) => (format!("json_extract(doc, '$.profile.{field}')"), kind),
        (Dialect::Sqlite, Kind::Number) => (
            format!("CAST(json_extract(doc, '$.profile.{field}') AS BIGINT)"),
            kind,
        ),
        // json_extract reads true/false as 1/0.
        (Dialect::Sqlite, Kind::Flag) => (
            format!("COALESCE(json_extract(doc, '$.profile.{field}'), 0)"),
            kind,
        ),
        (Dialect::Postgres, Kind::Text) => {
            (format!("(doc::jsonb #>> '{{profile,{field}}}')"), kind)
        }
        (Dialect::Postgres, Kind::Number) => (
            format!("CAST(doc::jsonb #>> '{{profile,{field}}}' AS BIGINT)"),
            kind,
        ),
        (Dialect::Postgres, Kind::Flag) => (
            format!("(CASE WHEN doc::jsonb #>> '{{profile,{field}}}' = 'true' THEN 1 ELSE 0 END)"),
            kind,
        ),
    })
}

/// Why a condition cannot be asked, naming the part that is wrong.
pub fn check(field: &str, op: Op, value: &str) -> Result<(), String> {
    let kind = kind_of(field).ok_or_else(|| format!("cannot filter on {field:?}"))?;
    let values: Vec<&str> = match op {
        Op::In => value.split('|').collect(),
        Op::Between => {
            let v: Vec<&str> = value.split('|').collect();
            if v.len() != 2 {
                return Err(format!("{field}: between takes two values, low|high"));
            }
            v
        }
        _ => vec![value],
    };
    if values.len() > MAX_IN_VALUES {
        return Err(format!("{field}: at most {MAX_IN_VALUES} values"));
    }
    if op == Op::Search && kind != Kind::Text {
        return Err(format!("{field}: search takes a text field"));
    }
    for v in values {
        match kind {
            Kind::Number if v.parse::<i64>().is_err() => {
                return Err(format!("{field}: {v:?} is not a whole number"))
            }
            Kind::Flag if flag_value(v).is_none() => {
                return Err(format!("{field}: {v:?} is not true or false"))
            }
            _ => {}
        }
    }
    Ok(())
}

fn flag_value(v: &str) -> Option<&'static str> {
    match v {
        "true" | "1" => Some("1"),
        "false" | "0" => Some("0"),
        _ => None,
    }
}

/// A WHERE clause under construction: its text and its bound values.
pub struct Clause<'b> {
    pub sql: String,
    pub binds: &'b mut Vec<String>,
    dialect: Dialect,
}

impl<'b> Clause<'b> {
    pub fn new(binds: &'b mut Vec<String>, dialect: Dialect) -> Self {
        Clause {
            sql: String::new(),
            binds,
            dialect,
        }
    }

    fn placeholder(&mut self, kind: Kind, value: &str) -> String {
        let value = match kind {
            Kind::Flag => flag_value(value).unwrap_or("0").to_string(),
            _ => value.to_string(),
        };
        self.binds.push(value);
        // Numbers and flags are bound as text and cast, so one bind type serves all.
        match kind {
            Kind::Text => format!("${}", self.binds.len()),
            Kind::Number | Kind::Flag => format!("CAST(${} AS BIGINT)", self.binds.len()),
        }
    }

    /// Appends `filter` as one parenthesized condition (checked with [`check`];
    /// an unknown field is false, never an error here).
    pub fn push(&mut self, filter: &Filter) {
        match filter {
            Filter::All(parts) | Filter::Any(parts) if parts.is_empty() => {
                self.sql.push_str("(1 = 1)")
            }
            Filter::All(parts) | Filter::Any(parts) => {
                let join = if matches!(filter, Filter::All(_)) {
                    " AND "
                } else {
                    " OR "
                };
                self.sql.push('(');
                for (i, part) in parts.iter().enumerate() {
                    if i > 0 {
                        self.sql.push_str(join);
                    }
                    self.push(part);
                }
                self.sql.push(')');
            }
            Filter::Is { field, op, value } => {
                let Some((expr, kind)) = expression(field, self.dialect) else {
                    self.sql.push_str("(1 = 0)");
                    return;
                };
                let condition = match op {
                    Op::Eq | Op::Gt | Op::Ge | Op::Lt | Op::Le => {
                        let sql_op = match op {
                            Op::Eq => "=",
                            Op::Gt => ">",
                            Op::Ge => ">=",
                            Op::Lt => "<",
                            _ => "<=",
                        };
                        format!("{expr} {sql_op} {}", self.placeholder(kind, value))
                    }
                    // A user without the field is not equal to any value.
                    Op::Ne => format!(
                        "({expr} IS NULL OR {expr} <> {})",
                        self.placeholder(kind, value)
                    ),
                    Op::Search => {
                        let pattern = format!(
                            "%{}%",
                            value
                                .replace('\\', "\\\\")
                                .replace('%', "\\%")
                                .replace('_', "\\_")
                        );
                        format!(
                            "LOWER({expr}) LIKE LOWER({}) ESCAPE '\\'",
                            self.placeholder(Kind::Text, &pattern)
                        )
                    }
                    Op::In => {
                        let list: Vec<String> = value
                            .split('|')
                            .map(|v| self.placeholder(kind, v))
                            .collect();
                        format!("{expr} IN ({})", list.join(", "))
                    }
                    Op::Between => {
                        let (low, high) = value.split_once('|').unwrap_or((value, value));
                        let low = self.placeholder(kind, low);
                        let high = self.placeholder(kind, high);
                        format!("{expr} >= {low} AND {expr} <= {high}")
                    }
                };
                self.sql.push('(');
                self.sql.push_str(&condition);
                self.sql.push(')');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is(field: &str, op: Op, value: &str) -> Filter {
        Filter::Is {
            field: field.into(),
            op,
            value: value.into(),
        }
    }

    #[test]
    fn both_versions_operators_parse() {
        assert_eq!(Op::parse("$eq"), Some(Op::Eq));
        assert_eq!(Op::parse("eq"), Some(Op::Eq));
        assert_eq!(Op::parse("$gte"), Some(Op::Ge));
        assert_eq!(Op::parse("le"), Some(Op::Le));
        assert_eq!(Op::parse("like"), None);
    }

    #[test]
    fn values_are_bound_and_fields_come_from_the_lists() {
        let mut binds = vec!["org".to_string()];
        let mut c = Clause::new(&mut binds, Dialect::Sqlite);
        c.push(&Filter::Any(vec![
            is("department", Op::Eq, "R'&D"),
            is("sudo", Op::Eq, "true"),
            is("unix_guid", Op::In, "5001|5002"),
        ]));
        let sql = c.sql.clone();
        assert!(!sql.contains("R'&D"), "{sql}");
        assert!(
            sql.contains("json_extract(doc, '$.profile.department') = $2"),
            "{sql}"
        );
        assert!(sql.contains(" OR "), "{sql}");
        assert_eq!(binds, ["org", "R'&D", "1", "5001", "5002"]);
        let mut binds = Vec::new();
        let mut c = Clause::new(&mut binds, Dialect::Postgres);
        c.push(&is("jobTitle", Op::Ne, "x"));
        assert!(
            c.sql.contains("doc::jsonb #>> '{profile,jobTitle}'"),
            "{}",
            c.sql
        );
    }

    /// The lookups clients make most (by username, email, employeeIdentifier) use
    /// an index, not a scan of the organization's users.
    #[tokio::test]
    async fn lookups_by_name_email_and_employee_id_are_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("read.db").display());
        let store = crate::store::ReadStore::connect(&url).await.unwrap();
        for (field, index) in [
            ("username", "users_by_org_username"),
            ("email", "users_by_org_email"),
            ("employeeIdentifier", "users_by_org_employee"),
        ] {
            let mut binds = vec!["org".to_string()];
            let mut clause = Clause::new(&mut binds, Dialect::Sqlite);
            clause.push(&Filter::All(vec![is(field, Op::Eq, "x")]));
            let sql = format!(
                "EXPLAIN QUERY PLAN SELECT id FROM users WHERE org_id = $1 AND {}",
                clause.sql
            );
            let mut q = sqlx::query(&sql);
            for b in &binds {
                q = q.bind(b.clone());
            }
            let plan: Vec<String> = q
                .fetch_all(&store.pool)
                .await
                .unwrap()
                .iter()
                .map(|r| sqlx::Row::get::<String, _>(r, 3))
                .collect();
            assert!(plan.iter().any(|d| d.contains(index)), "{field}: {plan:?}");
        }
    }

    #[test]
    fn checks_name_what_is_wrong() {
        assert!(check("password_hash", Op::Eq, "x")
            .unwrap_err()
            .contains("password_hash"));
        assert!(check("unix_uid", Op::Gt, "ten")
            .unwrap_err()
            .contains("whole number"));
        assert!(check("sudo", Op::Eq, "maybe")
            .unwrap_err()
            .contains("true or false"));
        assert!(check("unix_uid", Op::Search, "1").is_err());
        assert!(check("created", Op::Between, "2026-01-01").is_err());
        assert!(check("created", Op::Between, "2026-01-01|2026-12-31").is_ok());
        assert!(check("employeeIdentifier", Op::Eq, "E-1").is_ok());
        assert!(check("_id", Op::Eq, "x").is_ok());
    }
}
