//! CSV user import, with the exact header `firstname,lastname,username,email,password`
//! (case-sensitive). Rows are read in bounded batches (memory does not grow with the
//! file) and each batch is created concurrently, so password hashing runs on every
//! core. Each row ends imported, skipped (with the reason) or, in a dry run, checked.
//! A row without a password becomes a STAGED user, a row with one an ACTIVATED user
//! (after the policy check); no email is sent either way.

use std::collections::HashSet;
use std::io::Read;

use castellan_domain::envelope::EventMeta;
use castellan_domain::user::check_profile;
use castellan_domain::ObjectId;
use futures::stream::{self, StreamExt};
use serde_json::{Map, Value};

use crate::error::AppError;
use crate::ports::EventLog;
use crate::unique;
use crate::users::{self, NewUser};

pub const HEADER: [&str; 5] = ["firstname", "lastname", "username", "email", "password"];
/// Rows read before they are processed; bounds memory.
const BATCH: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file cannot be imported at all; nothing was imported.
    #[error("{0}")]
    File(String),
    #[error(transparent)]
    App(#[from] AppError),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowStatus {
    Imported,
    /// Dry run: the row would be imported.
    Valid,
    Skipped,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RowResult {
    /// The line of the file (the header is line 1).
    pub line: u64,
    pub username: String,
    pub email: String,
    pub status: RowStatus,
    pub reason: String,
    pub user_id: Option<String>,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Summary {
    pub rows: u64,
    pub imported: u64,
    pub valid: u64,
    pub skipped: u64,
}

struct Row {
    line: u64,
    fields: [String; 5],
}

fn file_error(e: &csv::Error) -> ImportError {
    let line = e.position().map(|p| p.line()).unwrap_or(0);
    let what = match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "the file is not UTF-8 text".to_string(),
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("{len} columns where the header has {expected_len}")
        }
        _ => e.to_string(),
    };
    ImportError::File(format!("line {line}: {what}"))
}

/// Checks the header row exactly.
fn check_header(header: &csv::StringRecord) -> Result<(), ImportError> {
    let got: Vec<&str> = header.iter().collect();
    if got != HEADER {
        return Err(ImportError::File(format!(
            "line 1: the header is {:?}; it must be exactly \"{}\" (case-sensitive)",
            got.join(","),
            HEADER.join(",")
        )));
    }
    Ok(())
}

/// Reads the whole file once without importing: the header and every row's shape
/// (quoting, column count, UTF-8). Callers run it first, so that a malformed file
/// imports nothing. Returns the number of data rows.
pub fn check_structure(reader: impl Read) -> Result<u64, ImportError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(false)
        .from_reader(reader);
    let mut records = csv.records();
    match records.next() {
        Some(Ok(h)) => check_header(&h)?,
        Some(Err(e)) => return Err(file_error(&e)),
        None => {
            return Err(ImportError::File(format!(
                "the file is empty; the first line must be \"{}\"",
                HEADER.join(",")
            )))
        }
    }
    let mut rows = 0;
    for r in records {
        r.map_err(|e| file_error(&e))?;
        rows += 1;
    }
    Ok(rows)
}

/// Imports users from `reader` into `org`. `on_row` sees each row's result (and the
/// byte offset read so far) as it is decided, in file order within a batch.
pub async fn import(
    log: &dyn EventLog,
    org: ObjectId,
    meta: EventMeta,
    reader: impl Read,
    dry_run: bool,
    concurrency: usize,
    mut on_row: impl FnMut(&RowResult, u64),
) -> Result<Summary, ImportError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(false)
        .from_reader(reader);
    let mut records = csv.records();
    let header = match records.next() {
        Some(Ok(h)) => h,
        Some(Err(e)) => return Err(file_error(&e)),
        None => {
            return Err(ImportError::File(format!(
                "the file is empty; the first line must be \"{}\"",
                HEADER.join(",")
            )))
        }
    };
    check_header(&header)?;
    let policy = users::org_policy(log, org).await?;
    let mut seen_usernames = HashSet::new();
    let mut seen_emails = HashSet::new();
    let mut summary = Summary::default();
    loop {
        let mut batch = Vec::with_capacity(BATCH);
        let mut failure = None;
        for record in records.by_ref() {
            match record {
                Ok(r) => {
                    let line = r.position().map(|p| p.line()).unwrap_or(0);
                    let f = |i: usize| r.get(i).unwrap_or("").trim().to_string();
                    batch.push(Row {
                        line,
                        fields: [f(0), f(1), f(2), f(3), f(4)],
                    });
                    if batch.len() == BATCH {
                        break;
                    }
                }
                Err(e) => {
                    failure = Some(file_error(&e));
                    break;
                }
            }
        }
        let offset = records.reader().position().byte();
        let done = batch.len() < BATCH;
        // One uid block for the batch instead of one contended allocation per row.
        let mut uids = if dry_run || batch.is_empty() {
            0..=0
        } else {
            crate::unix_ids::reserve(log, org, policy.1, batch.len() as u64, &meta).await?
        };
        // Rows repeating a username or email of an earlier row are skipped here.
        let mut work = Vec::new();
        for row in batch {
            let username = row.fields[2].to_lowercase();
            let email = row.fields[3].to_lowercase();
            let reason = if !seen_usernames.insert(username.clone()) && !username.is_empty() {
                Some("the username repeats an earlier row")
            } else if !seen_emails.insert(email.clone()) && !email.is_empty() {
                Some("the email repeats an earlier row")
            } else {
                None
            };
            match reason {
                Some(r) => work.push(futures::future::Either::Left(futures::future::ready(
                    skipped(&row, r.to_string()),
                ))),
                None => {
                    let uid = if dry_run { None } else { uids.next() };
                    work.push(futures::future::Either::Right(process(
                        log, org, &meta, &policy, row, dry_run, uid,
                    )))
                }
            }
        }
        let results: Vec<RowResult> = stream::iter(work)
            .buffered(concurrency.max(1))
            .collect()
            .await;
        for r in &results {
            summary.rows += 1;
            match r.status {
                RowStatus::Imported => summary.imported += 1,
                RowStatus::Valid => summary.valid += 1,
                RowStatus::Skipped => summary.skipped += 1,
            }
            on_row(r, offset);
        }
        if let Some(e) = failure {
            // Rows before the bad line were handled and reported; say where it stopped.
            return Err(e);
        }
        if done {
            return Ok(summary);
        }
    }
}

fn skipped(row: &Row, reason: String) -> RowResult {
    RowResult {
        line: row.line,
        username: row.fields[2].clone(),
        email: row.fields[3].to_lowercase(),
        status: RowStatus::Skipped,
        reason,
        user_id: None,
    }
}

async fn process(
    log: &dyn EventLog,
    org: ObjectId,
    meta: &EventMeta,
    policy: &(castellan_domain::password_policy::PasswordPolicy, u64),
    row: Row,
    dry_run: bool,
    uid: Option<u64>,
) -> RowResult {
    let [firstname, lastname, username, email, password] = row.fields.clone();
    let mut profile = Map::new();
    for (k, v) in [
        ("firstname", firstname),
        ("lastname", lastname),
        ("username", username.clone()),
        ("email", email.to_lowercase()),
    ] {
        if !v.is_empty() || k == "username" || k == "email" {
            profile.insert(k.into(), Value::String(v));
        }
    }
    let password = (!password.is_empty()).then_some(password);
    if dry_run {
        let check = async {
            check_profile(&profile, true)?;
            if let Some(p) = &password {
                policy.0.check("password", p, Some(&username))?;
            }
            for kind in ["username", "email"] {
                let value = profile[kind].as_str().unwrap_or_default();
                if unique::holder_of(log, org, kind, value).await?.is_some() {
                    return Err(AppError::Domain(castellan_domain::DomainError::Taken {
                        field: kind.into(),
                        value: value.into(),
                    }));
                }
            }
            Ok::<_, AppError>(())
        };
        return match check.await {
            Ok(()) => RowResult {
                status: RowStatus::Valid,
                reason: String::new(),
                ..skipped(&row, String::new())
            },
            Err(e) => skipped(&row, e.to_string()),
        };
    }
    if let Some(uid) = uid {
        profile.insert("unix_uid".into(), uid.into());
    }
    let new_user = |profile| NewUser {
        profile,
        password: password.clone(),
        state: None,
    };
    let mut created = users::create(
        log,
        org,
        meta.clone(),
        new_user(profile.clone()),
        Some(policy.clone()),
    )
    .await;
    // A uid of the block set by hand on another user meanwhile: allocate one instead.
    if let Err(AppError::Domain(castellan_domain::DomainError::Taken { field, .. })) = &created {
        if field == "unix_uid" && uid.is_some() {
            profile.remove("unix_uid");
            created = users::create(
                log,
                org,
                meta.clone(),
                new_user(profile),
                Some(policy.clone()),
            )
            .await;
        }
    }
    match created {
        Ok((id, _)) => RowResult {
            status: RowStatus::Imported,
            user_id: Some(id.to_string()),
            reason: String::new(),
            ..skipped(&row, String::new())
        },
        Err(e) => skipped(&row, e.to_string()),
    }
}

/// Writes results as the downloadable result CSV.
pub fn result_csv_header() -> &'static str {
    "line,username,email,status,reason,user_id\n"
}

pub fn result_csv_row(r: &RowResult) -> String {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    let status = match r.status {
        RowStatus::Imported => "imported",
        RowStatus::Valid => "valid",
        RowStatus::Skipped => "skipped",
    };
    let _ = w.write_record([
        r.line.to_string().as_str(),
        &r.username,
        &r.email,
        status,
        &r.reason,
        r.user_id.as_deref().unwrap_or(""),
    ]);
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}
