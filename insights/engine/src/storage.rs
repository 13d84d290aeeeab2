//! Where the Parquet files and the checkpoint live: a local directory (embedded
//! default) or an S3 bucket (cluster mode), both through `object_store`.
//!
//! Layout under the root: `org=<org>/date=<YYYY-MM-DD>/<from>-<to>.parquet`, where the
//! file holds the partition's events of log positions `from < p <= to` (20 digits
//! each); a compacted month is the partition `date=<YYYY-MM>`, and its file stands for
//! every day file of that month whose range it spans. `_checkpoint` holds the last
//! position whose files are all durable, and
//! `_compactions` counts the compaction rounds that replaced files. A local
//! file is fsynced (and its directory) before the checkpoint moves; an S3 PUT is
//! durable once acknowledged.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::InsightsError;

/// S3 settings (cluster mode).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    pub bucket: String,
    /// Key prefix, e.g. `insights/`.
    pub prefix: String,
    /// Empty: AWS; otherwise e.g. `http://127.0.0.1:3900` for Garage or another server.
    pub endpoint: String,
    pub region: String,
    /// Empty: the usual AWS environment variables.
    pub access_key_id: String,
    pub secret_access_key: String,
}

#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// The key prefix of everything (no leading or trailing slash).
    prefix: String,
    /// `file://` or `s3://bucket`: how DataFusion addresses the store.
    scheme_root: String,
    /// The directory on disk, for a local store (fsync).
    local_root: Option<PathBuf>,
    /// Directories whose own entry is known to be durable (their parent was synced
    /// after they were made), so a new `date=` directory is synced into its
    /// organization's once, not with every file.
    durable_dirs: Arc<std::sync::Mutex<std::collections::HashSet<PathBuf>>>,
}

/// One Parquet file of a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    pub org: String,
    pub date: String,
    pub from: u64,
    pub to: u64,
    /// A month file holds the days `1..=last_day` of its month (31: the whole month;
    /// a month merged before it ended names the last day it holds). A day file: its
    /// day of the month.
    pub last_day: u8,
    /// Key relative to the root.
    pub key: String,
    pub size: u64,
}

impl DataFile {
    pub fn key_for(org: &str, date: &str, from: u64, to: u64) -> String {
        format!("org={org}/date={date}/{from:020}-{to:020}.parquet")
    }

    /// A month file's key: the days `1..=last_day` of `month` merged (a name without
    /// the day, as the first month files had, means the whole month).
    pub fn month_key_for(org: &str, month: &str, from: u64, to: u64, last_day: u8) -> String {
        format!("org={org}/date={month}/{from:020}-{to:020}-{last_day:02}.parquet")
    }

    /// The file's partition is a compacted month (`YYYY-MM`), not a day.
    pub fn is_month(&self) -> bool {
        self.date.len() == 7
    }

    /// The month (`YYYY-MM`) of the file's partition.
    pub fn month(&self) -> &str {
        self.date.get(..7).unwrap_or(&self.date)
    }

    /// The times its events can have, `[start, end)` in epoch milliseconds: files are
    /// partitioned by the events' own dates, so its day, or its month's days up to
    /// the last it holds. A name that is not a date bounds nothing.
    pub fn time_bounds(&self) -> (i64, i64) {
        let midnight = |date: &str| -> Option<i64> {
            let d = time::Date::parse(
                date,
                time::macros::format_description!("[year]-[month]-[day]"),
            )
            .ok()?;
            Some((d.midnight().assume_utc().unix_timestamp_nanos() / 1_000_000) as i64)
        };
        const DAY: i64 = 86_400_000;
        let bounds = if self.is_month() {
            midnight(&format!("{}-01", self.date))
                .map(|start| (start, start + i64::from(self.last_day.min(31)) * DAY))
        } else {
            midnight(&self.date).map(|start| (start, start + DAY))
        };
        bounds.unwrap_or((i64::MIN, i64::MAX))
    }

    /// Whether the file holds days in `[first, last]` (dates as `YYYY-MM-DD`).
    pub fn has_dates_in(&self, first: &str, last: &str) -> bool {
        if !self.is_month() {
            return self.date.as_str() >= first && self.date.as_str() <= last;
        }
        let (first_month, last_month) = (
            first.get(..7).unwrap_or(first),
            last.get(..7).unwrap_or(last),
        );
        self.date.as_str() >= first_month
            && self.date.as_str() <= last_month
            // A month merged so far holds none of the days after its last one.
            && (self.date.as_str() != first_month || day_of(first) <= self.last_day)
    }

    fn parse(key: &str, size: u64) -> Option<DataFile> {
        let mut parts = key.split('/');
        let org = parts.next()?.strip_prefix("org=")?.to_string();
        let date = parts.next()?.strip_prefix("date=")?.to_string();
        let name = parts.next()?.strip_suffix(".parquet")?;
        parts.next().is_none().then_some(())?;
        let mut numbers = name.split('-');
        let (from, to) = (numbers.next()?.parse().ok()?, numbers.next()?.parse().ok()?);
        let last_day = match (date.len(), numbers.next()) {
            (7, None) => 31,
            (7, Some(day)) => day.parse().ok().filter(|d| (1..=31).contains(d))?,
            (_, None) => day_of(&date),
            (_, Some(_)) => return None,
        };
        numbers.next().is_none().then_some(())?;
        Some(DataFile {
            org,
            date,
            from,
            to,
            last_day,
            key: key.to_string(),
            size,
        })
    }
}

/// The day of the month of a `YYYY-MM-DD` date (0 if it has none).
pub fn day_of(date: &str) -> u8 {
    date.get(8..10).and_then(|d| d.parse().ok()).unwrap_or(0)
}

impl Storage {
    pub fn local(dir: &std::path::Path) -> Result<Storage, InsightsError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| InsightsError::Storage(format!("{}: {e}", dir.display())))?;
        let abs = dir
            .canonicalize()
            .map_err(|e| InsightsError::Storage(format!("{}: {e}", dir.display())))?;
        let prefix = abs.to_string_lossy().trim_start_matches('/').to_string();
        Ok(Storage {
            store: Arc::new(LocalFileSystem::new()),
            prefix,
            scheme_root: "file://".into(),
            local_root: Some(abs),
            durable_dirs: Arc::default(),
        })
    }

    pub fn s3(c: &S3Config) -> Result<Storage, InsightsError> {
        let mut b = AmazonS3Builder::from_env().with_bucket_name(&c.bucket);
        if !c.endpoint.is_empty() {
            b = b
                .with_endpoint(&c.endpoint)
                .with_allow_http(c.endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        if !c.region.is_empty() {
            b = b.with_region(&c.region);
        }
        if !c.access_key_id.is_empty() {
            b = b
                .with_access_key_id(&c.access_key_id)
                .with_secret_access_key(&c.secret_access_key);
        }
        let store = b.build().map_err(|e| {
            InsightsError::Storage(format!("insights S3 bucket {:?}: {e}", c.bucket))
        })?;
        Ok(Storage {
            store: Arc::new(store),
            prefix: c.prefix.trim_matches('/').to_string(),
            scheme_root: format!("s3://{}", c.bucket),
            local_root: None,
            durable_dirs: Arc::default(),
        })
    }

    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// `file://` or `s3://bucket`, for registering the store with DataFusion.
    pub fn scheme_root(&self) -> &str {
        &self.scheme_root
    }

    /// Where a key is in the object store.
    pub fn location(&self, key: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(key)
        } else {
            Path::from(format!("{}/{key}", self.prefix))
        }
    }

    /// The URL DataFusion reads a key at.
    pub fn url(&self, key: &str) -> String {
        format!("{}/{}", self.scheme_root, self.location(key))
    }

    /// Writes an object durably: acknowledged by S3, or fsynced (the file, its
    /// directory, and the parent of each directory made for it).
    pub async fn put_durable(&self, key: &str, bytes: Bytes) -> Result<(), InsightsError> {
        self.store
            .put(&self.location(key), PutPayload::from(bytes))
            .await
            .map_err(|e| InsightsError::Storage(format!("put {key}: {e}")))?;
        if let Some(root) = &self.local_root {
            let (root, file) = (root.clone(), root.join(key));
            let durable = self.durable_dirs.clone();
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                std::fs::File::open(&file)?.sync_all()?;
                // The file's name is in its directory; a directory the put made has
                // its name in its parent, up to the first one known to be durable.
                let mut dir = file.parent();
                if let Some(d) = dir {
                    std::fs::File::open(d)?.sync_all()?;
                }
                while let Some(d) = dir.filter(|d| *d != root) {
                    if durable.lock().expect("durable dirs").contains(d) {
                        break;
                    }
                    let parent = d.parent();
                    if let Some(p) = parent {
                        std::fs::File::open(p)?.sync_all()?;
                    }
                    durable
                        .lock()
                        .expect("durable dirs")
                        .insert(d.to_path_buf());
                    dir = parent;
                }
                Ok(())
            })
            .await
            .map_err(|e| InsightsError::Storage(e.to_string()))?
            .map_err(|e| InsightsError::Storage(format!("fsync {key}: {e}")))?;
        }
        Ok(())
    }

    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, InsightsError> {
        match self.store.get(&self.location(key)).await {
            Ok(r) => {
                Ok(Some(r.bytes().await.map_err(|e| {
                    InsightsError::Storage(format!("get {key}: {e}"))
                })?))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(InsightsError::Storage(format!("get {key}: {e}"))),
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), InsightsError> {
        match self.store.delete(&self.location(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(InsightsError::Storage(format!("delete {key}: {e}"))),
        }
        // A compacted day's directory goes with its last file (removing a directory
        // that still has files fails, and is left alone).
        if let Some(dir) = self
            .local_root
            .as_ref()
            .and_then(|r| r.join(key).parent().map(|p| p.to_path_buf()))
        {
            let _ = std::fs::remove_dir(dir);
        }
        Ok(())
    }

    /// The last position whose files are durable (0 before the first flush).
    pub async fn checkpoint(&self) -> Result<u64, InsightsError> {
        self.number("_checkpoint").await
    }

    pub async fn set_checkpoint(&self, position: u64) -> Result<(), InsightsError> {
        self.set_number("_checkpoint", position).await
    }

    /// How many compaction rounds have replaced files (0 before the first): readers
    /// that keep a listing take it again when this moves.
    pub async fn compactions(&self) -> Result<u64, InsightsError> {
        self.number("_compactions").await
    }

    pub async fn set_compactions(&self, n: u64) -> Result<(), InsightsError> {
        self.set_number("_compactions", n).await
    }

    /// A number kept as decimal text in its own object (0 while there is none).
    async fn number(&self, key: &str) -> Result<u64, InsightsError> {
        match self.get(key).await? {
            None => Ok(0),
            Some(b) => std::str::from_utf8(&b)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| InsightsError::Storage(format!("{key} is not a number"))),
        }
    }

    async fn set_number(&self, key: &str, n: u64) -> Result<(), InsightsError> {
        self.put_durable(key, Bytes::from(n.to_string())).await
    }

    /// Every data file, or those of one organization (and dates, when given).
    pub async fn list(&self, org: Option<&str>) -> Result<Vec<DataFile>, InsightsError> {
        let key_prefix = match org {
            Some(o) => format!("org={o}/"),
            None => String::new(),
        };
        let base = self.location(&key_prefix);
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let metas: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&base))
            .try_collect()
            .await
            .or_else(|e| match e {
                object_store::Error::NotFound { .. } => Ok(Vec::new()),
                e => Err(InsightsError::Storage(format!("list {key_prefix}: {e}"))),
            })?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let key = m.location.as_ref().strip_prefix(&strip)?.to_string();
                DataFile::parse(&key, m.size)
            })
            .collect())
    }
}

/// Each (organization, month)'s month files: their ranges and last days.
type MonthFiles<'a> = std::collections::HashMap<(&'a str, &'a str), Vec<(u64, u64, u8)>>;

/// The files a reader should see: complete (within the checkpoint) and not covered by
/// a compacted file of the same partition, or of the day's month.
pub fn visible(files: Vec<DataFile>, checkpoint: u64) -> Vec<DataFile> {
    let mut out = visible_in_partitions(files, checkpoint);
    // A month file was merged from every visible file of its month's days up to its
    // last day: a file of those days written later starts at or after the end of its
    // range. A later day's file may share a range with a merged one (a flush writes
    // one file per day it touches, all with its range), so the day is checked too.
    let mut months: MonthFiles = std::collections::HashMap::new();
    for f in out.iter().filter(|f| f.is_month()) {
        months
            .entry((f.org.as_str(), f.date.as_str()))
            .or_default()
            .push((f.from, f.to, f.last_day));
    }
    if months.is_empty() {
        return out;
    }
    let covered: Vec<bool> = out
        .iter()
        .map(|f| {
            !f.is_month()
                && months
                    .get(&(f.org.as_str(), f.month()))
                    .is_some_and(|merged| {
                        merged
                            .iter()
                            .any(|(a, b, last)| *a <= f.from && f.to <= *b && f.last_day <= *last)
                    })
        })
        .collect();
    let mut keep = covered.iter().map(|c| !c);
    out.retain(|_| keep.next().unwrap_or(true));
    out
}

/// [`visible`] within each partition.
fn visible_in_partitions(files: Vec<DataFile>, checkpoint: u64) -> Vec<DataFile> {
    let mut complete: Vec<DataFile> = files.into_iter().filter(|f| f.to <= checkpoint).collect();
    // Within a partition, by start and then the widest first: a file is covered exactly
    // when an earlier one reaches as far as it does (one pass, not a pairwise check).
    complete.sort_by(|a, b| {
        (&a.org, &a.date, a.from, std::cmp::Reverse(a.to)).cmp(&(
            &b.org,
            &b.date,
            b.from,
            std::cmp::Reverse(b.to),
        ))
    });
    let mut out = Vec::with_capacity(complete.len());
    let mut reach: Option<(String, String, u64)> = None;
    for f in complete {
        match &mut reach {
            Some((org, date, to)) if *org == f.org && *date == f.date => {
                if f.to <= *to {
                    continue;
                }
                *to = f.to;
            }
            _ => reach = Some((f.org.clone(), f.date.clone(), f.to)),
        }
        out.push(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_covered_files_are_hidden() {
        let k = DataFile::key_for("o1", "2026-11-28", 5, 9);
        assert_eq!(
            k,
            "org=o1/date=2026-11-28/00000000000000000005-00000000000000000009.parquet"
        );
        let f = DataFile::parse(&k, 10).unwrap();
        assert_eq!((f.from, f.to), (5, 9));
        let files = vec![
            DataFile::parse(&DataFile::key_for("o1", "d", 0, 5), 1).unwrap(),
            DataFile::parse(&DataFile::key_for("o1", "d", 5, 9), 1).unwrap(),
            DataFile::parse(&DataFile::key_for("o1", "d", 0, 9), 1).unwrap(),
            DataFile::parse(&DataFile::key_for("o2", "d", 0, 5), 1).unwrap(),
            DataFile::parse(&DataFile::key_for("o1", "d", 9, 12), 1).unwrap(),
        ];
        let v: Vec<(String, u64, u64)> = visible(files, 9)
            .into_iter()
            .map(|f| (f.org, f.from, f.to))
            .collect();
        assert_eq!(v, vec![("o1".into(), 0, 9), ("o2".into(), 0, 5)]);
    }

    #[test]
    fn a_month_file_hides_the_day_files_it_was_merged_from() {
        let file = |date: &str, from, to| {
            DataFile::parse(&DataFile::key_for("o1", date, from, to), 1).unwrap()
        };
        let month = file("2026-09", 0, 9);
        assert!(month.is_month() && month.month() == "2026-09");
        let files = vec![
            file("2026-09-01", 0, 5),
            file("2026-09-14", 5, 9),
            month.clone(),
            // Written after the merge: the same month, beyond its range.
            file("2026-09-14", 9, 12),
            // Another month, and another organization's September.
            file("2026-10-01", 0, 5),
            DataFile::parse(&DataFile::key_for("o2", "2026-09-01", 0, 5), 1).unwrap(),
            // A month file replaced by a wider one.
            file("2026-08", 0, 4),
            file("2026-08", 0, 9),
        ];
        let mut v: Vec<String> = visible(files, 12).into_iter().map(|f| f.key).collect();
        v.sort();
        let mut want = vec![
            DataFile::key_for("o1", "2026-08", 0, 9),
            month.key.clone(),
            DataFile::key_for("o1", "2026-09-14", 9, 12),
            DataFile::key_for("o1", "2026-10-01", 0, 5),
            DataFile::key_for("o2", "2026-09-01", 0, 5),
        ];
        want.sort();
        assert_eq!(v, want);
        // A month partition has the days of its month.
        assert!(month.has_dates_in("2026-09-30", "2026-10-02"));
        assert!(month.has_dates_in("2026-08-01", "2026-09-01"));
        assert!(!month.has_dates_in("2026-10-01", "2026-10-31"));
        assert!(!file("2026-09-14", 0, 1).has_dates_in("2026-09-15", "2026-09-20"));
    }

    #[test]
    fn a_month_merged_so_far_hides_only_the_days_it_holds() {
        let day = |date: &str, from, to| {
            DataFile::parse(&DataFile::key_for("o1", date, from, to), 1).unwrap()
        };
        // Days 1-27 merged; one flush wrote the 27th and the 28th with one range.
        let key = DataFile::month_key_for("o1", "2026-11", 0, 9, 27);
        assert!(key.ends_with("/date=2026-11/00000000000000000000-00000000000000000009-27.parquet"));
        let month = DataFile::parse(&key, 1).unwrap();
        assert_eq!(
            (month.month(), month.last_day, month.from, month.to),
            ("2026-11", 27, 0, 9)
        );
        let files = vec![
            day("2026-11-02", 0, 5),
            day("2026-11-27", 5, 9),
            day("2026-11-28", 5, 9),
            month.clone(),
            // The month as merged a day earlier, now covered by the wider one.
            DataFile::parse(&DataFile::month_key_for("o1", "2026-11", 0, 5, 26), 1).unwrap(),
        ];
        let mut v: Vec<String> = visible(files, 9).into_iter().map(|f| f.key).collect();
        v.sort();
        assert_eq!(v, vec![DataFile::key_for("o1", "2026-11-28", 5, 9), key]);
        // The days after its last one are not in it.
        assert!(month.has_dates_in("2026-11-27", "2026-11-28"));
        assert!(!month.has_dates_in("2026-11-28", "2026-11-30"));
        assert!(month.has_dates_in("2026-10-28", "2026-11-01"));
        // A name that is not a file of ours is skipped, not misread.
        for bad in [
            "org=o1/date=2026-11/1-2-32.parquet",
            "org=o1/date=2026-11/1-2-x.parquet",
            "org=o1/date=2026-11/1-2-3-4.parquet",
            "org=o1/date=2026-11-02/1-2-3.parquet",
        ] {
            assert!(DataFile::parse(bad, 1).is_none(), "{bad}");
        }
        assert_eq!(
            DataFile::parse("org=o1/date=2026-11/1-2.parquet", 1)
                .unwrap()
                .last_day,
            31
        );
    }
}
