//! The Directory Insights queries, compatible with the hosted product's API:
//! `events` (paged with `search_after`), `count`, `distinct`, `interval`.
//!
//! Organization isolation is structural: a query's table is made of the files under
//! `org=<caller's org>/` only (and of the dates the time range touches), so no filter
//! a request can write reaches another organization's rows. Requests become DataFusion
//! expressions with literal values; no request text is ever spliced into SQL.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, StringArray, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Int32Type};
use datafusion::common::config::TableParquetOptions;
use datafusion::common::ScalarValue;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::provider_as_source;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::execution::TaskContext;
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::logical_expr::{col, lit, Expr, LogicalPlanBuilder};
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::event::{date_of_ms, format_ms};
use crate::limits::{QueryLimits, QueryThreads};
use crate::page::Page;
use crate::scan::{Scan, ScanPlan};
use crate::schema::{column_for, is_bool_column, read_schema};
use crate::storage::{visible, DataFile, Storage};
use crate::udf::di_field;
use crate::InsightsError;

/// The services the hosted product knows (an unknown one is a 400).
pub const SERVICES: &[&str] = &[
    "all",
    "alerts",
    "directory",
    "ldap",
    "mdm",
    "notifications",
    "object_storage",
    "password_manager",
    "radius",
    "reports",
    "saas_app_management",
    "software",
    "sso",
    "systems",
    "access_management",
    "asset_management",
    "workflows",
];

/// Fields an event may have (for `fields`, which must name at least one).
pub const KNOWN_FIELDS: &[&str] = &[
    "id",
    "event_type",
    "service",
    "timestamp",
    "organization",
    "provider",
    "@version",
    "client_ip",
    "success",
    "geoip",
    "useragent",
    "initiated_by",
    "resource",
    "changes",
    "auth_method",
    "mfa",
    "mfa_meta",
    "error_message",
    "association",
    "correlation",
    "auth_context",
    "application",
    "system",
    "system_group",
    "target_resource",
    "username",
    "auth_type",
    "eap_type",
    "outer",
    "nas_mfa_state",
    "connection_id",
    "operation_number",
    "dn",
    "mech",
    "start_tls",
    "tls_established",
    "error_code",
    "base",
    "scope",
    "deref",
    "filter",
    "attr",
    "number_of_results",
    "idp_initiated",
    "message",
    "src_ip",
];

/// Fields a search may not use (as in the hosted product).
const NOT_SEARCHABLE: &[&str] = &["changes", "useragent", "system_timestamp"];

pub const DEFAULT_LIMIT: usize = 1000;
pub const MAX_LIMIT: usize = 10_000;

/// A Directory Insights request body.
#[derive(Debug, Clone)]
pub struct EventQuery {
    /// Empty means every service (`all`).
    pub services: Vec<String>,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    pub limit: usize,
    pub descending: bool,
    pub fields: Option<Vec<String>>,
    pub search_term: Option<Value>,
    pub search_after: Option<(i64, String)>,
    pub skip: usize,
}

fn parse_time(body: &Value, field: &str) -> Result<Option<i64>, InsightsError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => OffsetDateTime::parse(s, &Rfc3339)
            .map(|t| Some((t.unix_timestamp_nanos() / 1_000_000) as i64))
            .map_err(|_| {
                InsightsError::bad(field, "must be an RFC 3339 time, e.g. 2026-11-01T00:00:00Z")
            }),
        Some(_) => Err(InsightsError::bad(field, "must be an RFC 3339 time")),
    }
}

impl EventQuery {
    /// The end of the range, or without one tomorrow (clocks drift; nothing is dated
    /// later): the last date whose files are read.
    fn last_ms(&self) -> i64 {
        self.end_ms.unwrap_or_else(|| {
            (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64 + 86_400_000
        })
    }

    /// Reads a request body, with the hosted product's rules and 400s.
    pub fn parse(body: &Value) -> Result<EventQuery, InsightsError> {
        if !body.is_object() {
            return Err(InsightsError::bad("body", "must be a JSON object"));
        }
        let services: Vec<String> = match body.get("service") {
            None | Some(Value::Null) => {
                return Err(InsightsError::bad(
                    "service",
                    "is required: a list of services, or [\"all\"]",
                ))
            }
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_string).ok_or_else(|| {
                        InsightsError::bad("service", "must be a list of service names")
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(InsightsError::bad(
                    "service",
                    "must be a list of service names",
                ))
            }
        };
        if services.is_empty() {
            return Err(InsightsError::bad(
                "service",
                "name at least one service, or \"all\"",
            ));
        }
        if let Some(bad) = services.iter().find(|s| !SERVICES.contains(&s.as_str())) {
            return Err(InsightsError::bad(
                "service",
                format!("unknown service {bad:?}; one of {}", SERVICES.join(", ")),
            ));
        }
        let services = if services.iter().any(|s| s == "all") {
            Vec::new()
        } else {
            services
        };
        let start_ms = parse_time(body, "start_time")?
            .ok_or_else(|| InsightsError::bad("start_time", "is required (RFC 3339, UTC)"))?;
        let end_ms = parse_time(body, "end_time")?;
        if end_ms.is_some_and(|e| e < start_ms) {
            return Err(InsightsError::bad("end_time", "is before start_time"));
        }
        // "Nonsense values fall back to the default" (the guide): a number outside
        // 1–10000, a fraction, text or anything else means 1000. Digits sent as a
        // string are the number they spell.
        let limit = match body.get("limit") {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
            _ => None,
        }
        .filter(|n| (1..=MAX_LIMIT as i64).contains(n))
        .map_or(DEFAULT_LIMIT, |n| n as usize);
        let descending = body
            .get("sort")
            .and_then(Value::as_str)
            .is_some_and(|s| s.eq_ignore_ascii_case("desc"));
        let fields = match body.get("fields") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => {
                let f: Vec<String> = a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect();
                if !f
                    .iter()
                    .any(|f| KNOWN_FIELDS.contains(&f.split('.').next().unwrap_or("")))
                {
                    return Err(InsightsError::bad(
                        "fields",
                        "name at least one known field",
                    ));
                }
                Some(f)
            }
            Some(_) => {
                return Err(InsightsError::bad(
                    "fields",
                    "must be a list of field names",
                ))
            }
        };
        let search_term = match body.get("search_term") {
            None | Some(Value::Null) => None,
            Some(t) => {
                term_expr(t)?; // checked now, so a bad term is a 400 before any scan
                Some(t.clone())
            }
        };
        let search_after = match body.get("search_after") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) if a.is_empty() => None,
            // The timestamp as a number, or as the digits of one (the PowerShell SDK
            // sends `["1796624053104","01a2…"]`).
            Some(Value::Array(a)) => match (
                a.first().and_then(|ts| match ts {
                    Value::String(s) => s.trim().parse::<i64>().ok(),
                    n => n.as_i64(),
                }),
                a.get(1).and_then(Value::as_str),
            ) {
                (Some(ts), Some(id)) => Some((ts, id.to_string())),
                _ => {
                    return Err(InsightsError::bad(
                        "search_after",
                        "must be the X-Search_after header's array",
                    ))
                }
            },
            Some(_) => return Err(InsightsError::bad("search_after", "must be an array")),
        };
        let skip = match body.get("skip") {
            None | Some(Value::Null) => 0,
            Some(v) => v
                .as_u64()
                .filter(|n| *n <= i64::MAX as u64)
                .ok_or_else(|| InsightsError::bad("skip", "a whole number from 0 to 2^63-1"))?
                as usize,
        };
        Ok(EventQuery {
            services,
            start_ms,
            end_ms,
            limit,
            descending,
            fields,
            search_term,
            search_after,
            skip,
        })
    }
}

fn ts_lit(ms: i64) -> Expr {
    lit(ScalarValue::TimestampMillisecond(
        Some(ms),
        Some("UTC".into()),
    ))
}

/// `timestamp` in `[from_ms, to_ms]` (no end: unbounded), of `services` (empty: all).
fn range_filter(from_ms: i64, to_ms: Option<i64>, services: &[String]) -> Expr {
    let mut filter = col("timestamp").gt_eq(ts_lit(from_ms));
    if let Some(to) = to_ms {
        filter = filter.and(col("timestamp").lt_eq(ts_lit(to)));
    }
    if !services.is_empty() {
        filter = filter
            .and(col("service").in_list(services.iter().map(|s| lit(s.clone())).collect(), false));
    }
    filter
}

/// The rows after `search_after` in the page's order: a later time, or the same
/// time and a later id (None without one).
fn after_filter(q: &EventQuery) -> Option<Expr> {
    let (ts, id) = q.search_after.as_ref()?;
    let (ts, id) = (ts_lit(*ts), lit(id.to_lowercase()));
    Some(if q.descending {
        col("timestamp")
            .lt(ts.clone())
            .or(col("timestamp").eq(ts).and(col("id").lt(id)))
    } else {
        col("timestamp")
            .gt(ts.clone())
            .or(col("timestamp").eq(ts).and(col("id").gt(id)))
    })
}

/// The expression reading a dot path: its column, or `di_field` over the JSON.
pub fn field_expr(path: &str) -> Result<Expr, InsightsError> {
    if NOT_SEARCHABLE.contains(&path.split('.').next().unwrap_or("")) {
        return Err(InsightsError::bad(
            "search_term",
            format!("{path} is not searchable"),
        ));
    }
    if path.is_empty() || path.len() > 128 {
        return Err(InsightsError::bad(
            "search_term",
            "a field name is 1-128 characters",
        ));
    }
    Ok(match column_for(path) {
        Some(c) => col(c),
        None => di_field().call(vec![col("event"), lit(path.to_string())]),
    })
}

fn value_lit(field: &str, bool_column: bool, v: &Value) -> Result<Expr, InsightsError> {
    match v {
        Value::Bool(b) if bool_column => Ok(lit(*b)),
        Value::String(s) if bool_column => match s.to_ascii_lowercase().as_str() {
            "true" => Ok(lit(true)),
            "false" => Ok(lit(false)),
            _ => Err(InsightsError::bad(
                "search_term",
                format!("{field} is true or false"),
            )),
        },
        _ if bool_column => Err(InsightsError::bad(
            "search_term",
            format!("{field} is true or false"),
        )),
        Value::String(s) => Ok(lit(s.to_lowercase())),
        Value::Number(_) | Value::Bool(_) => Ok(lit(v.to_string().to_lowercase())),
        _ => Err(InsightsError::bad(
            "search_term",
            format!("{field}: a value is text, a number or true/false"),
        )),
    }
}

fn condition(field: &str, value: &Value) -> Result<Expr, InsightsError> {
    let e = field_expr(field)?;
    let bool_column = column_for(field).is_some_and(is_bool_column);
    match value {
        Value::Array(values) => {
            if values.is_empty() || values.len() > 1000 {
                return Err(InsightsError::bad(
                    "search_term",
                    format!("{field}: a list of 1-1000 values"),
                ));
            }
            let list = values
                .iter()
                .map(|v| value_lit(field, bool_column, v))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(e.in_list(list, false))
        }
        v => Ok(e.eq(value_lit(field, bool_column, v)?)),
    }
}

/// The most conditions one `search_term` may hold (a list's values count one each),
/// and the deepest it may nest: expressions stay small enough to plan on any stack.
pub const MAX_TERM_CONDITIONS: usize = 1000;
pub const MAX_TERM_DEPTH: usize = 8;

/// `{"and"|"or"|"not": [ {field: value}, {field: [v…]}, {"or": […]} … ]}` as an expression.
pub fn term_expr(term: &Value) -> Result<Expr, InsightsError> {
    let mut budget = MAX_TERM_CONDITIONS;
    term_at(term, 0, &mut budget)
}

fn term_at(term: &Value, depth: usize, budget: &mut usize) -> Result<Expr, InsightsError> {
    if depth >= MAX_TERM_DEPTH {
        return Err(InsightsError::bad(
            "search_term",
            format!("nested more than {MAX_TERM_DEPTH} deep"),
        ));
    }
    let only = term
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.iter().next());
    let Some((op, items)) = only else {
        return Err(InsightsError::bad(
            "search_term",
            "must be an object with exactly one of and, or, not",
        ));
    };
    if !matches!(op.as_str(), "and" | "or" | "not") {
        return Err(InsightsError::bad(
            "search_term",
            format!("{op:?}: use and, or or not"),
        ));
    }
    // A list of conditions, or one object of field → value (as the PowerShell
    // module sends `{"and": {"event_type": "user_delete"}}`): a list of that one.
    let items = match items {
        Value::Array(a) if !a.is_empty() => a.as_slice(),
        Value::Object(o) if !o.is_empty() => std::slice::from_ref(items),
        _ => {
            return Err(InsightsError::bad(
                "search_term",
                format!("{op}: a non-empty list of conditions, or an object of them"),
            ))
        }
    };
    let mut seen = std::collections::HashSet::new();
    let mut parts = Vec::new();
    for item in items {
        let Some(o) = item.as_object().filter(|o| !o.is_empty()) else {
            return Err(InsightsError::bad(
                "search_term",
                "each condition is a non-empty object",
            ));
        };
        if o.len() == 1 && o.keys().all(|k| matches!(k.as_str(), "and" | "or" | "not")) {
            parts.push(term_at(item, depth + 1, budget)?);
            continue;
        }
        for (field, value) in o {
            let cost = value.as_array().map_or(1, Vec::len).max(1);
            *budget = budget.checked_sub(cost).ok_or_else(|| {
                InsightsError::bad(
                    "search_term",
                    format!("at most {MAX_TERM_CONDITIONS} conditions"),
                )
            })?;
            if !seen.insert(field.clone()) {
                return Err(InsightsError::bad(
                    "search_term",
                    format!("{field} appears twice in one list"),
                ));
            }
            parts.push(condition(field, value)?);
        }
    }
    Ok(match op.as_str() {
        "and" => balanced(parts, Expr::and),
        "or" => balanced(parts, Expr::or),
        _ => Expr::Not(Box::new(balanced(parts, Expr::or))),
    })
}

/// The parts joined as a balanced tree (depth log2 n, not n), so that planning and
/// evaluating a long list never recurses deeply. `parts` is never empty.
fn balanced(mut parts: Vec<Expr>, join: fn(Expr, Expr) -> Expr) -> Expr {
    while parts.len() > 1 {
        let mut next = Vec::with_capacity(parts.len().div_ceil(2));
        let mut it = parts.into_iter();
        while let Some(a) = it.next() {
            next.push(match it.next() {
                Some(b) => join(a, b),
                None => a,
            });
        }
        parts = next;
    }
    parts.pop().unwrap_or_else(|| lit(true))
}

/// An event as a file holds it: its service and its JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub service: String,
    pub json: String,
}

/// A listing of visible files and the (checkpoint, compactions) it was taken at.
type Listing = ((u64, u64), Arc<Vec<DataFile>>);

/// Queries over the Parquet files.
#[derive(Clone)]
pub struct Insights {
    storage: Storage,
    /// Shared by every query, so that file listings and Parquet footers and page
    /// indexes are read once, not per query. Data files are immutable (a key names a
    /// position range whose content never changes), so the caches cannot go stale.
    runtime: Arc<RuntimeEnv>,
    /// Each organization's visible files as last listed, with the checkpoint and the
    /// compaction count then: listed again when either moves.
    listings: Arc<Mutex<HashMap<String, Listing>>>,
    /// The query states without and with late rows (see [`Insights::config`]).
    states: Arc<[SessionState; 2]>,
    /// The context direct scans run in (made once: it copies the configuration).
    direct_task: Arc<TaskContext>,
    /// The threads queries run on, and their limits.
    threads: Arc<QueryThreads>,
}

impl Insights {
    /// With the default [`QueryLimits`].
    pub fn new(storage: Storage) -> Self {
        Self::with_limits(storage, QueryLimits::default())
    }

    pub fn with_limits(storage: Storage, limits: QueryLimits) -> Self {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(limits.memory_bytes, 1.0)
            .build_arc()
            .expect("the default runtime builds");
        if let Ok(url) = url::Url::parse(storage.scheme_root()) {
            if url.scheme() != "file" {
                runtime.register_object_store(&url, storage.object_store());
            }
        }
        let states = Arc::new([
            Self::query_state(&runtime, false),
            Self::query_state(&runtime, true),
        ]);
        let direct_task = Arc::new(TaskContext::from(&states[0]));
        Insights {
            storage,
            runtime,
            listings: Arc::default(),
            states,
            direct_task,
            threads: Arc::new(QueryThreads::new(limits)),
        }
    }

    pub fn limits(&self) -> &QueryLimits {
        &self.threads.limits
    }

    /// Runs a query's work on the query threads, within the limits.
    pub(crate) async fn bounded<T, Work, Fut>(&self, work: Work) -> Result<T, InsightsError>
    where
        T: Send + 'static,
        Work: FnOnce(Insights) -> Fut,
        Fut: std::future::Future<Output = Result<T, InsightsError>> + Send + 'static,
    {
        self.threads.run(work(self.clone())).await
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// A session's configuration. `late_rows`: filters run inside the scan, and the
    /// other columns are decoded only for the rows they keep; worth it when the event
    /// JSON is read, not for counts and groupings of small columns, where decoding
    /// them whole is cheaper than the row selection (measured: a 30-day count 7.5 ms
    /// with it, 5.0 without).
    fn config(late_rows: bool) -> SessionConfig {
        SessionConfig::new()
            .with_target_partitions(2)
            .set_bool("datafusion.execution.parquet.pushdown_filters", late_rows)
            // Files are picked by date and pruned by their page index; table-wide
            // statistics would only be gathered to go unused.
            .set_bool("datafusion.execution.collect_statistics", false)
    }

    /// A session for admin SQL: every function SQL may call.
    pub(crate) fn context(&self) -> SessionContext {
        let ctx = SessionContext::new_with_config_rt(Self::config(true), self.runtime.clone());
        ctx.register_udf(di_field());
        ctx
    }

    /// The state the Directory Insights queries run in: made once, with only the
    /// functions they use (a full session registers hundreds, per query).
    fn query_state(runtime: &Arc<RuntimeEnv>, late_rows: bool) -> SessionState {
        SessionStateBuilder::new()
            .with_config(Self::config(late_rows))
            .with_runtime_env(runtime.clone())
            .with_scalar_functions(vec![Arc::new(di_field())])
            .with_aggregate_functions(vec![count_udaf()])
            .build()
    }

    /// The organization's visible files, of the dates `[from, to]` when given.
    pub async fn files(
        &self,
        org: &str,
        range: Option<(i64, i64)>,
    ) -> Result<Vec<DataFile>, InsightsError> {
        let at = tokio::try_join!(self.storage.checkpoint(), self.storage.compactions())?;
        let checkpoint = at.0;
        let cached = self
            .listings
            .lock()
            .expect("listings lock")
            .get(org)
            .filter(|(listed_at, _)| *listed_at == at)
            .map(|(_, files)| files.clone());
        let all = match cached {
            Some(files) => files,
            None => {
                let mut files = visible(self.storage.list(Some(org)).await?, checkpoint);
                files.retain(|f| f.org == org);
                let files = Arc::new(files);
                self.listings
                    .lock()
                    .expect("listings lock")
                    .insert(org.to_string(), (at, files.clone()));
                files
            }
        };
        Ok(match range {
            Some((from, to)) => {
                let (first, last) = (date_of_ms(from), date_of_ms(to));
                all.iter()
                    .filter(|f| f.has_dates_in(&first, &last))
                    .cloned()
                    .collect()
            }
            None => all.to_vec(),
        })
    }

    /// A table over the given files (None when there are none).
    pub fn table(&self, files: &[DataFile]) -> Result<Option<Arc<ListingTable>>, InsightsError> {
        if files.is_empty() {
            return Ok(None);
        }
        let urls = files
            .iter()
            .map(|f| ListingTableUrl::parse(self.storage.url(&f.key)))
            .collect::<Result<Vec<_>, _>>()?;
        // The scan takes these from the table's format, not from the session: the
        // files have no bloom filters, so none are looked for (2.7% of a count's
        // profile; measured alternately on the benchmark's files: count 2.2-2.5 ms
        // without the look, 2.5-2.6 with; a 7-day search 8.3-9.0 against 10.5-10.8).
        // Whether filters run inside the scan is the session's choice (`late_rows`).
        let mut parquet = TableParquetOptions::default();
        parquet.global.bloom_filter_on_read = false;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default().with_options(parquet)))
            .with_file_extension(".parquet")
            .with_file_sort_order(vec![vec![col("timestamp").sort(true, false)]]);
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(read_schema());
        Ok(Some(Arc::new(ListingTable::try_new(config)?)))
    }

    /// The organization's rows of `[from_ms, …]` (files of the dates up to `to_ms`) of
    /// `services` (empty: all), or None when it has no files there (`late_rows`: see
    /// [`Insights::context`]).
    async fn scan(
        &self,
        org: &str,
        (from_ms, to_ms): (i64, i64),
        services: &[String],
        late_rows: bool,
    ) -> Result<Option<DataFrame>, InsightsError> {
        let files = self.files(org, Some((from_ms, to_ms))).await?;
        let Some(table) = self.table(&files)? else {
            return Ok(None);
        };
        let state = self.states[usize::from(late_rows)].clone();
        let plan = LogicalPlanBuilder::scan("events", provider_as_source(table), None)?.build()?;
        Ok(Some(
            DataFrame::new(state, plan).filter(range_filter(from_ms, None, services))?,
        ))
    }

    /// A request's filter: its time range, services and search term.
    fn filter(q: &EventQuery) -> Result<Expr, InsightsError> {
        let mut filter = range_filter(q.start_ms, q.end_ms, &q.services);
        if let Some(t) = &q.search_term {
            filter = filter.and(term_expr(t)?);
        }
        Ok(filter)
    }

    /// A request's rows as a direct scan (see [`crate::scan`]) that also reads the
    /// columns of `also`, or None if the organization has no files in the range.
    async fn direct(
        &self,
        org: &str,
        q: &EventQuery,
        also: &[&Expr],
    ) -> Result<Option<Scan>, InsightsError> {
        let files = self.files(org, Some((q.start_ms, q.last_ms()))).await?;
        if files.is_empty() {
            return Ok(None);
        }
        let plan = ScanPlan::new(&self.states[0], Self::filter(q)?, also)?;
        Ok(Some(plan.scan(
            &self.storage,
            &self.direct_task,
            &files,
            false,
        )?))
    }

    /// Runs a query; when it fails and a file of the listing it used is gone (a
    /// compaction counts its round, then deletes the files its merged file replaces,
    /// and a query may have listed just before), lists again and runs it once more.
    /// The files are looked for only then: the reader's error names the file only in
    /// its text.
    async fn relisting<T, Run, Fut>(&self, org: &str, run: Run) -> Result<T, InsightsError>
    where
        Run: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, InsightsError>>,
    {
        let failed = match run().await {
            Err(InsightsError::Internal(e)) => e,
            done => return done,
        };
        let listed = self
            .listings
            .lock()
            .expect("listings lock")
            .get(org)
            .map(|(_, files)| files.clone());
        let there: std::collections::HashSet<String> = self
            .storage
            .list(Some(org))
            .await?
            .into_iter()
            .map(|f| f.key)
            .collect();
        if !listed.is_some_and(|files| files.iter().any(|f| !there.contains(&f.key))) {
            return Err(InsightsError::Internal(failed));
        }
        tracing::debug!(error = %failed, "insights: a listed file is gone; listing again");
        self.listings.lock().expect("listings lock").remove(org);
        run().await
    }

    /// One page of events (see [`Insights::events_once`]) and the `X-Search_after`
    /// array.
    pub async fn events(
        &self,
        org: &str,
        q: &EventQuery,
    ) -> Result<(Vec<String>, Value), InsightsError> {
        let (org, q) = (org.to_string(), q.clone());
        self.bounded(|me| async move { me.relisting(&org, || me.events_once(&org, &q)).await })
            .await
    }

    pub async fn count(&self, org: &str, q: &EventQuery) -> Result<u64, InsightsError> {
        let (org, q) = (org.to_string(), q.clone());
        self.bounded(|me| async move { me.relisting(&org, || me.count_once(&org, &q)).await })
            .await
    }

    /// `{"buckets": [{key, doc_count}], …}` of a field's values, most frequent first
    /// (ties by value).
    pub async fn distinct(
        &self,
        org: &str,
        q: &EventQuery,
        field: &str,
    ) -> Result<Value, InsightsError> {
        let (org, q, field) = (org.to_string(), q.clone(), field.to_string());
        self.bounded(|me| async move {
            me.relisting(&org, || me.distinct_once(&org, &q, &field))
                .await
        })
        .await
    }

    /// `{"buckets": [{key (epoch ms), key_as_string, doc_count}]}` per interval of
    /// `value` `unit`s (s, m, h, d, w), starting at local midnight.
    pub async fn interval(
        &self,
        org: &str,
        q: &EventQuery,
        unit: &str,
        value: u32,
        tz_offset_minutes: i32,
    ) -> Result<Value, InsightsError> {
        let (org, q, unit) = (org.to_string(), q.clone(), unit.to_string());
        self.bounded(|me| async move {
            me.relisting(&org, || {
                me.interval_once(&org, &q, &unit, value, tz_offset_minutes)
            })
            .await
        })
        .await
    }

    /// One page of events, each as JSON text (the stored text itself unless `fields`
    /// picks from it: a page is not parsed only to be written again); the second
    /// value is the `X-Search_after` array.
    ///
    /// Files are read in the page's order, two at a time (a file's events all fall
    /// in its date, see [`DataFile::time_bounds`]), filtering rows inside the scan so
    /// the event JSON is decoded only for matching rows, and reading stops at the
    /// first file that cannot hold a row better than the page's worst.
    async fn events_once(
        &self,
        org: &str,
        q: &EventQuery,
    ) -> Result<(Vec<String>, Value), InsightsError> {
        let mut filter = Self::filter(q)?;
        if let Some(after) = after_filter(q) {
            filter = filter.and(after);
        }
        let mut files = self.files(org, Some((q.start_ms, q.last_ms()))).await?;
        if q.descending {
            files.sort_by_key(|f| std::cmp::Reverse(f.time_bounds().1));
        } else {
            files.sort_by_key(|f| f.time_bounds().0);
        }
        let columns = [col("timestamp"), col("id"), col("event")];
        let plan = ScanPlan::new(&self.states[1], filter, &columns.iter().collect::<Vec<_>>())?;
        let mut page = Page::new(q.skip.saturating_add(q.limit), q.descending);
        // Two files at a time (the cores), each into a page of its own.
        let mut files = files.iter();
        let mut reading = tokio::task::JoinSet::new();
        let mut more = true;
        loop {
            while more && reading.len() < READ_AHEAD {
                match files.next() {
                    Some(file) if page.could_take(file.time_bounds()) => {
                        let scan = plan.scan(
                            &self.storage,
                            &self.direct_task,
                            std::slice::from_ref(file),
                            true,
                        )?;
                        let own = Page::new(page.wanted, q.descending);
                        reading.spawn(read_page(scan, own));
                    }
                    // The files are in the page's order: none after this one can
                    // hold a better row either.
                    _ => more = false,
                }
            }
            match reading.join_next().await {
                Some(read) => page
                    .absorb(read.map_err(|e| InsightsError::Internal(format!("page read: {e}")))??),
                None => break,
            }
        }
        let mut out = Vec::new();
        let mut last: Option<(i64, String)> = None;
        page.finish(q.skip, |event, ts, id| {
            out.push(match &q.fields {
                Some(f) => {
                    let v: Value = serde_json::from_str(event).unwrap_or(Value::Null);
                    project(&v, f).to_string()
                }
                None => event.to_string(),
            });
            last = Some((ts, id.to_string()));
        });
        let next = match last.or_else(|| q.search_after.clone()) {
            Some((t, i)) => json!([t, i]),
            None => json!([]),
        };
        Ok((out, next))
    }

    async fn count_once(&self, org: &str, q: &EventQuery) -> Result<u64, InsightsError> {
        let Some(scan) = self.direct(org, q, &[]).await? else {
            return Ok(0);
        };
        let counts = scan
            .fold(|n: &mut u64, _, kept| {
                *n += kept.true_count() as u64;
                Ok(())
            })
            .await?;
        Ok(counts.into_iter().sum())
    }

    /// `{"buckets": [{key, doc_count}], …}` of a field's values, most frequent first
    /// (ties by value).
    async fn distinct_once(
        &self,
        org: &str,
        q: &EventQuery,
        field: &str,
    ) -> Result<Value, InsightsError> {
        let key = field_expr(field).map_err(|e| match e {
            InsightsError::BadRequest { message, .. } => InsightsError::bad("field", message),
            other => other,
        })?;
        let Some(scan) = self.direct(org, q, &[&key]).await? else {
            return Ok(
                json!({"buckets": [], "doc_count_error_upper_bound": 0, "sum_other_doc_count": 0}),
            );
        };
        let key = scan.also[0].clone();
        let tallies = scan
            .fold(move |tally: &mut Tally, batch, kept| {
                let keys = key.evaluate(batch)?.into_array(batch.num_rows())?;
                tally.add(&keys, kept)
            })
            .await?;
        let mut all = Tally::default();
        for t in tallies {
            all.merge(t);
        }
        let mut buckets = Vec::new();
        let mut other = 0i64;
        for (i, (key, n)) in all.ranked().into_iter().enumerate() {
            if i < q.limit {
                buckets.push(json!({"key": key, "doc_count": n}));
            } else {
                other += n;
            }
        }
        Ok(
            json!({"buckets": buckets, "doc_count_error_upper_bound": 0, "sum_other_doc_count": other}),
        )
    }

    /// `{"buckets": [{key (epoch ms), key_as_string, doc_count}]}` per interval.
    async fn interval_once(
        &self,
        org: &str,
        q: &EventQuery,
        unit: &str,
        value: u32,
        tz_offset_minutes: i32,
    ) -> Result<Value, InsightsError> {
        let unit_ms: i64 = match unit {
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            _ => return Err(InsightsError::bad("interval_unit", "one of s, m, h, d, w")),
        };
        if value == 0 || value > 10_000 {
            return Err(InsightsError::bad(
                "interval_value",
                "a whole number from 1 to 10000",
            ));
        }
        let stride = unit_ms * value as i64;
        // Buckets start at local midnight (weeks on Monday, as Elasticsearch does).
        let offset = tz_offset_minutes as i64 * 60_000;
        let origin = if unit == "w" {
            4 * 86_400_000 - offset
        } else {
            -offset
        };
        let timestamp = col("timestamp");
        let Some(scan) = self.direct(org, q, &[&timestamp]).await? else {
            return Ok(json!({"buckets": []}));
        };
        let timestamp = scan.also[0].clone();
        let per_group = scan
            .fold(move |counts: &mut BTreeMap<i64, i64>, batch, kept| {
                let times = timestamp.evaluate(batch)?.into_array(batch.num_rows())?;
                let times = times
                    .as_any()
                    .downcast_ref::<TimestampMillisecondArray>()
                    .ok_or_else(|| InsightsError::Internal("timestamp column".into()))?;
                // Files are sorted by time: count runs of one bucket, not rows.
                let mut run: Option<(i64, i64)> = None;
                for i in kept.values().set_indices() {
                    if times.is_null(i) {
                        continue;
                    }
                    let bucket = (times.value(i) - origin).div_euclid(stride) * stride + origin;
                    match &mut run {
                        Some((b, n)) if *b == bucket => *n += 1,
                        _ => {
                            if let Some((b, n)) = run.replace((bucket, 1)) {
                                *counts.entry(b).or_default() += n;
                            }
                        }
                    }
                }
                if let Some((b, n)) = run {
                    *counts.entry(b).or_default() += n;
                }
                Ok(())
            })
            .await?;
        let mut counts = BTreeMap::new();
        for group in per_group {
            for (k, n) in group {
                *counts.entry(k).or_insert(0i64) += n;
            }
        }
        let buckets: Vec<Value> = counts
            .into_iter()
            .map(|(k, n)| json!({"key": k, "key_as_string": format_ms(k), "doc_count": n}))
            .collect();
        Ok(json!({"buckets": buckets}))
    }
}

/// How often each value of a field occurs (a `distinct`'s counts).
#[derive(Default)]
struct Tally {
    text: hashbrown::HashMap<Box<str>, i64>,
    /// false, true.
    bools: [i64; 2],
}

impl Tally {
    /// Counts the non-null `keys` of the rows `kept` keeps.
    fn add(&mut self, keys: &ArrayRef, kept: &BooleanArray) -> Result<(), InsightsError> {
        let rows = kept.values().set_indices();
        match keys.data_type() {
            DataType::Dictionary(k, _) if **k == DataType::Int32 => {
                // Count dictionary entries first: one hash lookup per distinct value.
                let dict = keys.as_dictionary::<Int32Type>();
                let mut per_entry = vec![0i64; dict.values().len()];
                let codes = dict.keys();
                for i in rows {
                    if codes.is_valid(i) {
                        per_entry[codes.value(i) as usize] += 1;
                    }
                }
                let values = plain(dict.values())?;
                let values = values.as_string::<i32>();
                for (entry, n) in per_entry.into_iter().enumerate() {
                    if n > 0 && values.is_valid(entry) {
                        self.add_text(values.value(entry), n);
                    }
                }
            }
            DataType::Utf8View => {
                let keys = keys.as_string_view();
                for i in rows {
                    if keys.is_valid(i) {
                        self.add_text(keys.value(i), 1);
                    }
                }
            }
            DataType::Boolean => {
                let keys = keys.as_boolean();
                for i in rows {
                    if keys.is_valid(i) {
                        self.bools[usize::from(keys.value(i))] += 1;
                    }
                }
            }
            _ => {
                let keys = arrow::compute::cast(keys, &DataType::Utf8)
                    .map_err(|e| InsightsError::Internal(e.to_string()))?;
                let keys = keys.as_string::<i32>();
                for i in rows {
                    if keys.is_valid(i) {
                        self.add_text(keys.value(i), 1);
                    }
                }
            }
        }
        Ok(())
    }

    fn add_text(&mut self, key: &str, n: i64) {
        match self.text.get_mut(key) {
            Some(count) => *count += n,
            None => {
                self.text.insert(key.into(), n);
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        if self.text.is_empty() {
            self.text = other.text;
        } else {
            for (k, n) in other.text {
                *self.text.entry(k).or_insert(0) += n;
            }
        }
        self.bools[0] += other.bools[0];
        self.bools[1] += other.bools[1];
    }

    /// The values and their counts, most frequent first, ties by value.
    fn ranked(self) -> Vec<(Value, i64)> {
        let mut text: Vec<(Box<str>, i64)> = self.text.into_iter().collect();
        text.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut bools: Vec<(bool, i64)> = [(false, self.bools[0]), (true, self.bools[1])]
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect();
        bools.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        text.into_iter()
            .map(|(k, n)| (Value::String(k.into()), n))
            .chain(bools.into_iter().map(|(k, n)| (Value::Bool(k), n)))
            .collect()
    }
}

/// How many files an event page reads at once.
const READ_AHEAD: usize = 2;

/// Reads a scan's rows into `page` (the scan reads `timestamp`, `id`, `event`).
async fn read_page(scan: Scan, mut page: Page) -> Result<Page, InsightsError> {
    let [ts, id, event] = [0, 1, 2].map(|i| scan.also[i].clone());
    scan.for_each(|batch, kept| {
        let n = batch.num_rows();
        let (ts, id, event) = (
            ts.evaluate(batch)?.into_array(n)?,
            id.evaluate(batch)?.into_array(n)?,
            event.evaluate(batch)?.into_array(n)?,
        );
        let internal = |name: &str| InsightsError::Internal(format!("{name} column"));
        page.offer(
            ts.as_any()
                .downcast_ref::<TimestampMillisecondArray>()
                .ok_or_else(|| internal("timestamp"))?,
            ids_of(&id).ok_or_else(|| internal("id"))?,
            event
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| internal("event"))?,
            kept.values().set_indices(),
        );
        Ok(())
    })
    .await?;
    Ok(page)
}

/// The id column as text (it is stored plain; see [`crate::schema::read_schema`]).
fn ids_of(a: &ArrayRef) -> Option<&StringArray> {
    a.as_any().downcast_ref::<StringArray>()
}

/// A text column as plain strings: a dictionary or string view column (see
/// [`crate::schema::read_schema`]) cast.
fn plain(a: &ArrayRef) -> Result<ArrayRef, InsightsError> {
    match a.data_type() {
        DataType::Dictionary(_, _) | DataType::Utf8View => arrow::compute::cast(a, &DataType::Utf8)
            .map_err(|e| InsightsError::Internal(e.to_string())),
        _ => Ok(a.clone()),
    }
}

/// The event with only the fields asked for (dot paths keep their parents' shape).
pub fn project(event: &Value, fields: &[String]) -> Value {
    let mut out = Map::new();
    for f in fields {
        let mut parts = f.split('.');
        let Some(first) = parts.next() else { continue };
        let rest: Vec<&str> = parts.collect();
        let Some(v) = event.get(first) else { continue };
        if rest.is_empty() {
            out.insert(first.to_string(), v.clone());
            continue;
        }
        if let Some(inner) = crate::event::at_path(v, &rest.join(".")) {
            let mut node = out.entry(first.to_string()).or_insert_with(|| json!({}));
            for (i, key) in rest.iter().enumerate() {
                if i + 1 == rest.len() {
                    if let Some(o) = node.as_object_mut() {
                        o.insert(key.to_string(), inner.clone());
                    }
                } else {
                    node = node
                        .as_object_mut()
                        .map(|o| o.entry(key.to_string()).or_insert_with(|| json!({})))
                        .expect("objects all the way down");
                }
            }
        }
    }
    Value::Object(out)
}

impl Insights {
    /// Every event of `[start_ms, end_ms)` (of `services`; empty: all), newest first,
    /// for exports: each as stored (its JSON text, never parsed here) with its service.
    pub async fn window(
        &self,
        org: &str,
        start_ms: i64,
        end_ms: i64,
        services: &[String],
    ) -> Result<Vec<StoredEvent>, InsightsError> {
        let Some(df) = self.scan(org, (start_ms, end_ms), services, true).await? else {
            return Ok(Vec::new());
        };
        let batches = df
            .filter(col("timestamp").lt(ts_lit(end_ms)))?
            // Newest first; events of one millisecond by id ascending, as the
            // app's stable sort leaves the API's ascending pages.
            .sort(vec![
                col("timestamp").sort(false, false),
                col("id").sort(true, false),
            ])?
            .select(vec![col("service"), col("event")])?
            .collect()
            .await?;
        let mut out = Vec::with_capacity(batches.iter().map(|b| b.num_rows()).sum());
        for b in &batches {
            let (services, events) = (plain(b.column(0))?, b.column(1));
            let text = |a: &'_ ArrayRef, name: &str| {
                a.as_any()
                    .downcast_ref::<StringArray>()
                    .ok_or_else(|| InsightsError::Internal(format!("{name} column")))
                    .cloned()
            };
            let (services, events) = (text(&services, "service")?, text(events, "event")?);
            for i in 0..b.num_rows() {
                out.push(StoredEvent {
                    service: services.value(i).to_string(),
                    json: events.value(i).to_string(),
                });
            }
        }
        Ok(out)
    }

    /// The organizations that have files.
    pub async fn organizations(&self) -> Result<Vec<String>, InsightsError> {
        let mut orgs: Vec<String> = self
            .storage
            .list(None)
            .await?
            .into_iter()
            .map(|f| f.org)
            .collect();
        orgs.sort();
        orgs.dedup();
        Ok(orgs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use castellan_domain::envelope::{Actor, ActorKind, Envelope, StreamId};
    use castellan_domain::ObjectId;
    use datafusion::functions_aggregate::expr_fn::count;

    use crate::parquet_file::encode;
    use crate::schema::to_batch;

    const HOUR: i64 = 3_600_000;
    /// 2025-10-30T00:00:00Z.
    const DAY0: i64 = 1_761_782_400_000;

    /// A varied event: four services, success true/false/absent, usernames some
    /// repeated and some absent, an `nas_mfa_state` (no column) on some, capitals.
    fn event(org: ObjectId, i: u64, at_ms: i64) -> Envelope {
        let service = ["ldap", "radius", "sso", "directory"][(i % 4) as usize];
        let mut payload = serde_json::Map::new();
        match i % 3 {
            0 => payload.insert("success".into(), json!(true)),
            1 => payload.insert("success".into(), json!(false)),
            _ => None,
        };
        if !i.is_multiple_of(5) {
            payload.insert("username".into(), json!(format!("User{}", i % 7)));
        }
        if i.is_multiple_of(2) {
            payload.insert(
                "nas_mfa_state".into(),
                json!(["ok", "CHALLENGE"][(i % 4 / 2) as usize]),
            );
        }
        payload.insert("mfa".into(), json!(i.is_multiple_of(6)));
        Envelope {
            // Later positions have smaller ids, so a file read after another can
            // hold the better of two rows with one time.
            event_id: uuid::Uuid::from_u128((1_000_000 - u128::from(i)) << 64),
            org_id: org,
            stream: if service == "directory" {
                StreamId::aggregate("user", i)
            } else {
                StreamId::Auth {
                    service: service.into(),
                }
            },
            stream_version: 1,
            position: i,
            event_type: ["user_login_attempt", "user_update", "ldap_bind"][(i % 3) as usize].into(),
            schema_version: 1,
            occurred_at: OffsetDateTime::from_unix_timestamp_nanos(at_ms as i128 * 1_000_000)
                .expect("a time"),
            actor: Actor {
                kind: [ActorKind::User, ActorKind::Admin, ActorKind::System][(i % 3) as usize],
                id: Some(format!("a{}", i % 4)),
                email: None,
            },
            client_ip: Some(format!("10.0.0.{}", i % 9)),
            user_agent: None,
            correlation_id: None,
            commit_id: uuid::Uuid::now_v7(),
            payload: Value::Object(payload),
        }
    }

    /// Five day files for `org` (one of them after the queries' ranges) and one for
    /// another organization, every event of which would match every query.
    async fn files(storage: &Storage, org: ObjectId, other: ObjectId) {
        let mut position = 1;
        // Two files of the first day whose times meet (whole minutes: 100 times in
        // both), two of the second whose times meet at midnight, and files of other
        // days with times to the millisecond.
        for (day, n, tick) in [
            (0i64, 500u64, 60_000),
            (0, 100, 60_000),
            (1, 150, HOUR),
            (1, 150, HOUR),
            (2, 1, 1),
            (5, 50, 1),
        ] {
            let from = position;
            let events: Vec<Envelope> = (0..n)
                .map(|k| {
                    let at = (k as i64 * 997_331) % (24 * HOUR) / tick * tick;
                    event(org, from + k, DAY0 + day * 24 * HOUR + at)
                })
                .collect();
            position += n;
            let key = DataFile::key_for(
                &org.to_string(),
                &date_of_ms(DAY0 + day * 24 * HOUR),
                from,
                position - 1,
            );
            let bytes = encode(&[to_batch(&events).expect("batch")]).expect("file");
            storage.put_durable(&key, bytes).await.expect("put");
        }
        let events: Vec<Envelope> = (0..400)
            .map(|k| event(other, position + k, DAY0 + k as i64 * 60_000))
            .collect();
        let key = DataFile::key_for(
            &other.to_string(),
            &date_of_ms(DAY0),
            position,
            position + 399,
        );
        let bytes = encode(&[to_batch(&events).expect("batch")]).expect("file");
        storage.put_durable(&key, bytes).await.expect("put");
        storage
            .set_checkpoint(position + 399)
            .await
            .expect("checkpoint");
    }

    impl Insights {
        /// The rows a request selects (time range, services, search term), or None if the
        /// organization has no files in the range.
        async fn selected(
            &self,
            org: &str,
            q: &EventQuery,
            late_rows: bool,
        ) -> Result<Option<DataFrame>, InsightsError> {
            let Some(mut df) = self
                .scan(org, (q.start_ms, q.last_ms()), &q.services, late_rows)
                .await?
            else {
                return Ok(None);
            };
            if let Some(e) = q.end_ms {
                df = df.filter(col("timestamp").lt_eq(ts_lit(e)))?;
            }
            if let Some(t) = &q.search_term {
                df = df.filter(term_expr(t)?)?;
            }
            Ok(Some(df))
        }

        /// A page as DataFusion's planners make it (sort with a limit over the
        /// logical plan): what [`Insights::events`] did before it read files itself.
        async fn planned_events(
            &self,
            org: &str,
            q: &EventQuery,
        ) -> Result<(Vec<String>, Value), InsightsError> {
            let after = q.search_after.clone();
            let none = || {
                json!(after
                    .as_ref()
                    .map(|(t, i)| json!([t, i]))
                    .unwrap_or(json!([])))
            };
            let Some(mut df) = self.selected(org, q, true).await? else {
                return Ok((Vec::new(), none()));
            };
            if let Some(after) = after_filter(q) {
                df = df.filter(after)?;
            }
            let asc = !q.descending;
            let batches = df
                .sort(vec![
                    col("timestamp").sort(asc, false),
                    col("id").sort(asc, false),
                ])?
                .limit(q.skip, Some(q.limit))?
                .select(vec![col("timestamp"), col("id"), col("event")])?
                .collect()
                .await?;
            let mut out = Vec::new();
            let mut last: Option<(i64, String)> = None;
            for b in &batches {
                let ts = b
                    .column(0)
                    .as_any()
                    .downcast_ref::<TimestampMillisecondArray>()
                    .ok_or_else(|| InsightsError::Internal("timestamp column".into()))?;
                let ids = b
                    .column(1)
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .ok_or_else(|| InsightsError::Internal("id column".into()))?;
                let ev = b
                    .column(2)
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .ok_or_else(|| InsightsError::Internal("event column".into()))?;
                for i in 0..b.num_rows() {
                    out.push(match &q.fields {
                        Some(f) => {
                            let v: Value = serde_json::from_str(ev.value(i)).unwrap_or(Value::Null);
                            project(&v, f).to_string()
                        }
                        None => ev.value(i).to_string(),
                    });
                    last = Some((ts.value(i), ids.value(i).to_string()));
                }
            }
            let next = match last {
                Some((t, i)) => json!([t, i]),
                None => none(),
            };
            Ok((out, next))
        }
    }
    /// What DataFusion's planners answer, through the logical plan (the path the
    /// aggregations took before they scanned directly).
    async fn planned_count(ins: &Insights, org: &str, q: &EventQuery) -> u64 {
        match ins.selected(org, q, false).await.expect("selected") {
            None => 0,
            Some(df) => df.count().await.expect("count") as u64,
        }
    }

    async fn planned_groups(
        ins: &Insights,
        org: &str,
        q: &EventQuery,
        key: Expr,
    ) -> Vec<(Value, i64)> {
        let Some(df) = ins.selected(org, q, false).await.expect("selected") else {
            return Vec::new();
        };
        let batches = df
            .filter(key.clone().is_not_null())
            .and_then(|df| df.aggregate(vec![key.alias("key")], vec![count(lit(1)).alias("n")]))
            .and_then(|df| {
                df.sort(vec![
                    col("n").sort(false, false),
                    col("key").sort(true, false),
                ])
            })
            .expect("plan")
            .collect()
            .await
            .expect("run");
        let mut out = Vec::new();
        for b in &batches {
            let keys = plain(b.column(0)).expect("keys");
            let counts = b.column(1).as_primitive::<arrow::datatypes::Int64Type>();
            for i in 0..b.num_rows() {
                let key = if let Some(s) = keys.as_any().downcast_ref::<StringArray>() {
                    json!(s.value(i))
                } else {
                    json!(keys.as_boolean().value(i))
                };
                out.push((key, counts.value(i)));
            }
        }
        out
    }

    /// Requests of every shape: ranges open and closed, service lists, search terms
    /// on columns and on the JSON, nested and negated, and ranges with no rows.
    fn bodies() -> Vec<Value> {
        let at = format_ms;
        vec![
            json!({"service": ["all"], "start_time": at(DAY0)}),
            json!({"service": ["all"], "start_time": at(DAY0 + 5 * HOUR), "end_time": at(DAY0 + 30 * HOUR)}),
            json!({"service": ["ldap", "sso"], "start_time": at(DAY0), "end_time": at(DAY0 + 72 * HOUR),
                "search_term": {"and": [{"success": false}]}}),
            json!({"service": ["radius"], "start_time": at(DAY0), "end_time": at(DAY0 + 72 * HOUR),
                "search_term": {"or": [{"username": ["user1", "USER3"]}, {"nas_mfa_state": "challenge"}]}}),
            json!({"service": ["all"], "start_time": at(DAY0 + HOUR), "end_time": at(DAY0 + 50 * HOUR),
                "search_term": {"not": [{"success": true}, {"initiated_by.type": "admin"}]}}),
            json!({"service": ["all"], "start_time": at(DAY0), "end_time": at(DAY0 + 72 * HOUR),
                "search_term": {"and": [{"mfa": "true"}, {"or": [{"service": "directory"}, {"client_ip": "10.0.0.3"}]}]}}),
            json!({"service": ["mdm"], "start_time": at(DAY0)}),
            json!({"service": ["all"], "start_time": at(DAY0 + 24 * HOUR)}),
            json!({"service": ["all"], "start_time": at(DAY0 + 10 * 24 * HOUR)}),
        ]
    }

    /// The direct scans give the planners' answers: counts, every distinct field kind
    /// (dictionary, string view, boolean, a field read from the JSON), intervals of
    /// each unit with time zones, over several files scanned at once, with search
    /// terms of each shape, and nothing of another organization.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn direct_scans_answer_what_the_planners_answer() {
        let dir = tempfile::tempdir().expect("dir");
        let storage = Storage::local(dir.path()).expect("storage");
        let (org, other) = (ObjectId::generate(1), ObjectId::generate(2));
        files(&storage, org, other).await;
        let ins = Insights::new(storage);
        let org = org.to_string();
        let bodies = bodies();
        let mut nonzero = 0;
        for body in &bodies {
            let q = EventQuery::parse(body).expect("query");
            let n = ins.count(&org, &q).await.expect("count");
            assert_eq!(n, planned_count(&ins, &org, &q).await, "count of {body}");
            nonzero += usize::from(n > 0);
            for field in [
                "username",
                "service",
                "success",
                "nas_mfa_state",
                "initiated_by.type",
                "client_ip",
            ] {
                let mut q = q.clone();
                q.limit = 3;
                let got = ins.distinct(&org, &q, field).await.expect("distinct");
                let want = planned_groups(&ins, &org, &q, field_expr(field).expect("field")).await;
                let top: Vec<Value> = want
                    .iter()
                    .take(3)
                    .map(|(k, n)| json!({"key": k, "doc_count": n}))
                    .collect();
                let other: i64 = want.iter().skip(3).map(|(_, n)| n).sum();
                assert_eq!(got["buckets"], json!(top), "distinct {field} of {body}");
                assert_eq!(
                    got["sum_other_doc_count"],
                    json!(other),
                    "distinct {field} of {body}"
                );
            }
            for (unit, value, tz) in [
                ("h", 1, 0),
                ("h", 5, 330),
                ("d", 1, -300),
                ("w", 1, 60),
                ("m", 7, 0),
            ] {
                let got = ins
                    .interval(&org, &q, unit, value, tz)
                    .await
                    .expect("interval");
                let stride = match unit {
                    "m" => 60_000,
                    "h" => HOUR,
                    "d" => 24 * HOUR,
                    _ => 7 * 24 * HOUR,
                } * value as i64;
                let origin = if unit == "w" {
                    4 * 24 * HOUR - tz as i64 * 60_000
                } else {
                    -(tz as i64) * 60_000
                };
                let epoch = Expr::Cast(datafusion::logical_expr::Cast::new(
                    Box::new(col("timestamp")),
                    DataType::Int64,
                ));
                let bucket = ((epoch - lit(origin)) / lit(stride)) * lit(stride) + lit(origin);
                let mut want: Vec<(i64, i64)> = planned_groups(&ins, &org, &q, cast_text(bucket))
                    .await
                    .into_iter()
                    .map(|(k, n)| (k.as_str().expect("text").parse().expect("ms"), n))
                    .collect();
                want.sort();
                let want: Vec<Value> = want
                    .into_iter()
                    .map(|(k, n)| json!({"key": k, "key_as_string": format_ms(k), "doc_count": n}))
                    .collect();
                assert_eq!(
                    got["buckets"],
                    json!(want),
                    "interval {unit}{value} tz {tz} of {body}"
                );
            }
        }
        assert!(nonzero >= 5, "the queries select rows");
        // The other organization's file holds 400 events of the first day; ours 600.
        let q = EventQuery::parse(&json!({"service": ["all"], "start_time": format_ms(DAY0), "end_time": format_ms(DAY0 + 24 * HOUR - 1)})).expect("query");
        assert_eq!(ins.count(&org, &q).await.expect("count"), 600);
    }

    fn cast_text(e: Expr) -> Expr {
        Expr::Cast(datafusion::logical_expr::Cast::new(
            Box::new(e),
            DataType::Utf8,
        ))
    }

    /// Pages read file by file give the planners' pages: both orders, limits from one
    /// to more than there are rows, a skip, `fields`, and paging through everything
    /// with `search_after`, over times that meet within a file and across two files.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn direct_pages_are_the_planners_pages() {
        let dir = tempfile::tempdir().expect("dir");
        let storage = Storage::local(dir.path()).expect("storage");
        let (org, other) = (ObjectId::generate(1), ObjectId::generate(2));
        files(&storage, org, other).await;
        let ins = Insights::new(storage);
        let org = org.to_string();
        let mut pages = 0;
        for body in bodies() {
            for (sort, limit, skip) in [
                ("ASC", 1, 0),
                ("DESC", 1, 0),
                ("ASC", 7, 5),
                ("DESC", 100, 0),
                ("DESC", 10_000, 3),
                ("ASC", 10_000, 0),
            ] {
                let mut q = EventQuery::parse(&body).expect("query");
                q.descending = sort == "DESC";
                (q.limit, q.skip) = (limit, skip);
                let got = ins.events(&org, &q).await.expect("events");
                let want = ins.planned_events(&org, &q).await.expect("planned");
                assert_eq!(got, want, "{sort} limit {limit} skip {skip} of {body}");
                pages += usize::from(!got.0.is_empty());
                if limit == 100 {
                    q.fields = Some(vec!["id".into(), "initiated_by.type".into()]);
                    let got = ins.events(&org, &q).await.expect("events");
                    assert_eq!(got, ins.planned_events(&org, &q).await.expect("planned"));
                }
            }
            for descending in [false, true] {
                let mut q = EventQuery::parse(&body).expect("query");
                (q.descending, q.limit) = (descending, MAX_LIMIT);
                let (all, _) = ins.planned_events(&org, &q).await.expect("planned");
                q.limit = 37;
                let mut paged = Vec::new();
                loop {
                    let (page, next) = ins.events(&org, &q).await.expect("events");
                    assert_eq!(
                        (page.clone(), next.clone()),
                        ins.planned_events(&org, &q).await.expect("planned")
                    );
                    if page.is_empty() {
                        break;
                    }
                    paged.extend(page);
                    q.search_after = Some((
                        next[0].as_i64().expect("time"),
                        next[1].as_str().expect("id").to_string(),
                    ));
                }
                assert_eq!(paged, all, "paged through {body}, descending {descending}");
            }
        }
        assert!(pages > 20, "the pages hold events");
    }

    /// A file removed after the listing was taken (as a compaction removes the files
    /// it merged) fails a read, and each query lists again and answers from the
    /// files there are, as a query that listed afterwards does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_query_lists_again_when_a_listed_file_is_gone() {
        let q = EventQuery::parse(
            &json!({"service": ["all"], "start_time": format_ms(DAY0), "limit": 10_000}),
        )
        .expect("query");
        for kind in ["count", "events", "distinct", "interval"] {
            let dir = tempfile::tempdir().expect("dir");
            let storage = Storage::local(dir.path()).expect("storage");
            let (org, other) = (ObjectId::generate(1), ObjectId::generate(2));
            files(&storage, org, other).await;
            let org = org.to_string();
            let ins = Insights::new(storage.clone());
            let listed = ins.files(&org, None).await.expect("listing");
            let gone = listed
                .iter()
                .find(|f| f.date == date_of_ms(DAY0 + 5 * 24 * HOUR))
                .expect("day 5");
            std::fs::remove_file(dir.path().join(&gone.key)).expect("remove");
            let answer = |ins: Insights| {
                let (org, q) = (org.clone(), q.clone());
                async move {
                    match kind {
                        "count" => ins.count(&org, &q).await.map(|n| json!(n)),
                        "events" => ins.events(&org, &q).await.map(|p| json!(p)),
                        "distinct" => ins.distinct(&org, &q, "username").await,
                        _ => ins.interval(&org, &q, "h", 1, 0).await,
                    }
                }
            };
            if kind == "count" {
                let once = ins.count_once(&org, &q).await;
                assert!(matches!(once, Err(InsightsError::Internal(_))), "{once:?}");
            }
            let got = answer(ins).await.expect(kind);
            let fresh = answer(Insights::new(storage)).await.expect(kind);
            assert_eq!(got, fresh, "{kind}");
            if kind == "count" {
                assert_eq!(got, json!(901), "the 50 events of day 5 are gone");
            }
        }
    }

    /// The probe's requests that overflowed a worker's stack and aborted the
    /// process: admin SQL with 1,000 `OR` terms and a search term of 700 conditions.
    /// Both answer now, on the query threads; a result over the row limit, a query
    /// over the memory limit and a panic answer errors that name their setting.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn long_queries_answer_and_limits_name_their_setting() {
        let dir = tempfile::tempdir().expect("dir");
        let storage = Storage::local(dir.path()).expect("storage");
        let (org, other) = (ObjectId::generate(1), ObjectId::generate(2));
        files(&storage, org, other).await;
        let org = org.to_string();
        let ins = Insights::new(storage.clone());

        let ors = (0..1000)
            .map(|i| format!("position = {i}"))
            .collect::<Vec<_>>()
            .join(" OR ");
        let sql = format!("SELECT count(*) AS n FROM events WHERE {ors}");
        assert!(sql.len() > 12_000, "the probe's 12 KB");
        let rows =
            crate::sql::to_json_rows(&ins.sql(&org, &sql).await.expect("1,000 ORs")).expect("rows");
        assert!(rows[0]["n"].as_i64().expect("n") > 0, "{rows:?}");

        let term: Vec<Value> = (0..700)
            .map(|i| json!({"and": [{"username": format!("User{}", i % 7)}]}))
            .collect();
        let q = EventQuery::parse(&json!({"service": ["all"], "start_time": format_ms(DAY0), "search_term": {"or": term}}))
            .expect("700 conditions");
        assert!(ins.count(&org, &q).await.expect("count") > 0);

        // EXPLAIN shows the organization's files, not where they are kept.
        let root = dir
            .path()
            .to_string_lossy()
            .trim_start_matches('/')
            .to_string();
        let plan = crate::sql::to_csv(
            &ins.sql(&org, "EXPLAIN SELECT * FROM events")
                .await
                .expect("explain"),
        )
        .expect("csv");
        assert!(plan.contains("org="), "{plan}");
        assert!(!plan.contains(&root), "{plan}");

        let small = Insights::with_limits(
            storage.clone(),
            QueryLimits {
                max_result_rows: 10,
                ..QueryLimits::default()
            },
        );
        let refused = small
            .sql(&org, "SELECT id FROM events")
            .await
            .expect_err("over the row limit");
        assert!(
            refused.to_string().contains("insights.max_result_rows"),
            "{refused}"
        );
        assert_eq!(
            small
                .sql(&org, "SELECT id FROM events LIMIT 10")
                .await
                .expect("ten rows")[0]
                .num_rows(),
            10
        );

        let tight = Insights::with_limits(
            storage,
            QueryLimits {
                memory_bytes: 1024,
                ..QueryLimits::default()
            },
        );
        let refused = tight
            .sql(&org, "SELECT id, event FROM events ORDER BY event DESC")
            .await
            .expect_err("over the memory limit");
        assert!(
            matches!(&refused, InsightsError::Limit { setting, .. } if *setting == "insights.query_memory_mb"),
            "{refused}"
        );
    }
}
