//! The materializer: a projection that writes every event to Parquet.
//!
//! It reads the log in batches from its checkpoint, buffers rows per partition
//! (organization × UTC date) and flushes when the buffer is large or `flush_interval`
//! passed (so events are queryable within about that long). A flush covers the log
//! positions `(checkpoint, last]`: one file per partition touched, each named with
//! that range, all made durable, and only then the checkpoint moves to `last`.
//!
//! Exactly once by construction: at start, files beyond the checkpoint (a flush cut
//! short) are deleted and the range is read again; files covered by a compacted file
//! (a compaction cut short before it deleted its sources) are deleted too. Readers
//! only ever see files within the checkpoint and not covered ([`visible`]).
//!
//! Compaction: each month's finished days are merged into one month file (a finished
//! month, and this month up to yesterday), today's files into one when there are many
//! (and each finished day's, in a month too large to merge); a merged file's range
//! spans its sources', and it is written durably before they are deleted.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use castellan_app::ports::{EventLog, LogError};
use castellan_domain::envelope::{Envelope, RecordedCommit};
use castellan_domain::ObjectId;
use futures::StreamExt;
use tokio::sync::{mpsc, watch};

use crate::event::{date_of_ms, timestamp_ms};
use crate::parquet_file::{encode, merge};
use crate::schema::BatchBuilder;
use crate::storage::{day_of, visible, DataFile, Storage};
use crate::InsightsError;
use arrow::array::RecordBatch;

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaterializerConfig {
    /// The longest an event waits in memory before it is written (and queryable).
    pub flush_interval_ms: u64,
    /// Flush earlier when this many rows are buffered.
    pub max_buffered_rows: usize,
    /// Commits read from the log at a time.
    pub read_batch: usize,
    /// Merge a partition once it has this many files.
    pub compact_min_files: usize,
    /// The most bytes of files merged into one month file (a merge holds them in
    /// memory, about ten times as large decoded); larger months keep day files.
    pub compact_month_max_bytes: u64,
    /// How often partitions are checked for merging.
    pub compact_interval_ms: u64,
    /// The name of the durable consumer on logs that have them (JetStream).
    pub consumer: String,
}

impl Default for MaterializerConfig {
    fn default() -> Self {
        MaterializerConfig {
            flush_interval_ms: 1000,
            max_buffered_rows: 200_000,
            read_batch: 5000,
            compact_min_files: 16,
            compact_month_max_bytes: 32 << 20,
            compact_interval_ms: 30_000,
            consumer: "castellan-insights".into(),
        }
    }
}

/// What the materializer has done, for readers, exporters and `/metrics`.
#[derive(Debug, Default)]
pub struct Status {
    /// The checkpoint: every event up to this position is in a durable file.
    pub checkpoint: AtomicU64,
    /// Unix ms: every event appended before this moment is in a durable file.
    pub complete_until_ms: AtomicI64,
    pub rows_written: AtomicU64,
    pub files_written: AtomicU64,
    pub files_compacted: AtomicU64,
}

pub struct Materializer {
    log: Arc<dyn EventLog>,
    storage: Storage,
    config: MaterializerConfig,
    pub status: Arc<Status>,
    /// Places client addresses (`geoip`), where a database is configured.
    geoip: Option<Arc<crate::enrich::GeoIp>>,
}

/// A partition while rows are buffered: the organization and the UTC day (days since
/// the epoch); names are made only when a file is written.
pub type PartitionKey = (ObjectId, i64);

const DAY_MS: i64 = 86_400_000;

/// The partition an event belongs to.
pub fn partition_of(e: &Envelope) -> PartitionKey {
    (e.org_id, timestamp_ms(e).div_euclid(DAY_MS))
}

/// The position range that spans the files'.
fn span(files: &[DataFile]) -> (u64, u64) {
    let from = files.iter().map(|f| f.from).min().unwrap_or(0);
    let to = files.iter().map(|f| f.to).max().unwrap_or(0);
    (from, to)
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

impl Materializer {
    pub fn new(log: Arc<dyn EventLog>, storage: Storage, config: MaterializerConfig) -> Self {
        Materializer {
            log,
            storage,
            config,
            status: Arc::new(Status::default()),
            geoip: None,
        }
    }

    /// Adds `geoip` to events from this MaxMind DB (`insights.geoip_db`).
    pub fn with_geoip(mut self, geoip: Option<Arc<crate::enrich::GeoIp>>) -> Self {
        self.geoip = geoip;
        self
    }

    /// Removes what an interrupted flush or compaction left; returns the checkpoint.
    pub async fn recover(&self) -> Result<u64, InsightsError> {
        let checkpoint = self.storage.checkpoint().await?;
        let files = self.storage.list(None).await?;
        let keep: std::collections::HashSet<String> = visible(files.clone(), checkpoint)
            .into_iter()
            .map(|f| f.key)
            .collect();
        let leftovers: Vec<&DataFile> = files.iter().filter(|f| !keep.contains(&f.key)).collect();
        // Covered files are in readers' listings: they take them again first.
        if leftovers.iter().any(|f| f.to <= checkpoint) {
            let round = self.storage.compactions().await? + 1;
            self.storage.set_compactions(round).await?;
        }
        for f in leftovers {
            tracing::info!(file = %f.key, checkpoint, "insights: removing a file an interrupted flush or compaction left");
            self.storage.delete(&f.key).await?;
        }
        self.status.checkpoint.store(checkpoint, Ordering::SeqCst);
        Ok(checkpoint)
    }

    /// Writes the buffer as the range `(from, to]` and moves the checkpoint. Partitions
    /// are encoded one per core and written four per core at once; the checkpoint
    /// moves only once every one of them is durable.
    async fn flush(
        &self,
        parts: BTreeMap<PartitionKey, Vec<RecordBatch>>,
        from: u64,
        to: u64,
    ) -> Result<(), InsightsError> {
        let rows: u64 = parts.values().flatten().map(|b| b.num_rows() as u64).sum();
        let files = parts.len() as u64;
        // Encoding takes a core; making a file durable mostly waits (fsync, or a PUT),
        // so more files are written at once than are encoded.
        let encoders = Arc::new(tokio::sync::Semaphore::new(parallelism()));
        let mut writes = futures::stream::iter(parts.into_iter().map(|((org, day), part)| {
            let storage = self.storage.clone();
            let encoders = encoders.clone();
            let (org, date) = (org.to_string(), date_of_ms(day * DAY_MS));
            async move {
                let core = encoders
                    .acquire_owned()
                    .await
                    .map_err(|e| InsightsError::Internal(e.to_string()))?;
                let bytes = tokio::task::spawn_blocking(move || encode(&part))
                    .await
                    .map_err(|e| InsightsError::Internal(e.to_string()))??;
                drop(core);
                storage
                    .put_durable(&DataFile::key_for(&org, &date, from, to), bytes)
                    .await
            }
        }))
        .buffer_unordered(4 * parallelism());
        while let Some(written) = writes.next().await {
            written?;
        }
        self.storage.set_checkpoint(to).await?;
        self.status.checkpoint.store(to, Ordering::SeqCst);
        self.status.rows_written.fetch_add(rows, Ordering::Relaxed);
        self.status
            .files_written
            .fetch_add(files, Ordering::Relaxed);
        Ok(())
    }

    /// Merges each month's finished days (a day is finished an hour after it ends)
    /// into one month file, with the month's earlier file if there is one, as long as
    /// they are small enough to merge in memory (`compact_month_max_bytes`): a
    /// finished month becomes one file, and this month one file up to yesterday, so
    /// a long range reads a file a month. A month too large keeps one file per day.
    /// The files of one day (today, or of a month too large) are merged into one when
    /// the day is finished or has many files. A late event makes a new small file
    /// that the next round merges. Only files within the checkpoint are merged, so a
    /// flush in progress is never part of a merge. Merges run one per core.
    pub async fn compact(&self) -> Result<(), InsightsError> {
        self.compact_at(now_ms()).await
    }

    /// [`Materializer::compact`] as if the time were `now_ms` (tests set the clock).
    pub async fn compact_at(&self, now_ms: i64) -> Result<(), InsightsError> {
        let checkpoint = self.status.checkpoint.load(Ordering::SeqCst);
        let files = visible(self.storage.list(None).await?, checkpoint);
        // A day is finished an hour after it ended (late events have come in): the
        // days before the date an hour ago. Dates sort as text.
        let finished_before = date_of_ms(now_ms - 3_600_000);
        let (this_month, finished_days) = (
            &finished_before[..7],
            day_of(&finished_before).saturating_sub(1),
        );
        // A month file takes every file of its days (see `visible`), so that none of
        // them can fall inside its range unmerged.
        let last_finished_day = |month: &str| match month.cmp(this_month) {
            std::cmp::Ordering::Less => 31,
            std::cmp::Ordering::Equal => finished_days,
            std::cmp::Ordering::Greater => 0,
        };
        let mut months: BTreeMap<(String, String), Vec<DataFile>> = BTreeMap::new();
        let mut days: BTreeMap<(String, String), Vec<DataFile>> = BTreeMap::new();
        for f in files {
            if f.is_month() || f.last_day <= last_finished_day(f.month()) {
                months
                    .entry((f.org.clone(), f.month().to_string()))
                    .or_default()
                    .push(f);
            } else {
                days.entry((f.org.clone(), f.date.clone()))
                    .or_default()
                    .push(f);
            }
        }
        let mut due = Vec::new();
        for ((org, month), group) in months {
            let bytes: u64 = group.iter().map(|f| f.size).sum();
            if bytes <= self.config.compact_month_max_bytes {
                if group.len() >= 2 {
                    let last_day = group
                        .iter()
                        .map(|f| f.last_day)
                        .chain([last_finished_day(&month)])
                        .max()
                        .unwrap_or(31);
                    let (from, to) = span(&group);
                    let key = DataFile::month_key_for(&org, &month, from, to, last_day);
                    due.push((key, group));
                }
                continue;
            }
            for f in group.into_iter().filter(|f| !f.is_month()) {
                days.entry((org.clone(), f.date.clone()))
                    .or_default()
                    .push(f);
            }
        }
        due.extend(
            days.into_iter()
                .filter(|((_, date), group)| {
                    group.len() >= self.config.compact_min_files.max(2)
                        || (group.len() >= 2 && *date < finished_before)
                })
                .map(|((org, date), group)| {
                    let (from, to) = span(&group);
                    (DataFile::key_for(&org, &date, from, to), group)
                }),
        );
        let mut merges = futures::stream::iter(due.into_iter().map(|(key, group)| async move {
            self.merge_files(&key, &group).await?;
            Ok::<_, InsightsError>(group)
        }))
        .buffer_unordered(parallelism());
        let mut replaced = Vec::new();
        while let Some(merged) = merges.next().await {
            replaced.extend(merged?);
        }
        if replaced.is_empty() {
            return Ok(());
        }
        // Readers keeping a listing take it again before the sources go (a crash in
        // between leaves covered files, which readers skip and a start deletes).
        let round = self.storage.compactions().await? + 1;
        self.storage.set_compactions(round).await?;
        for f in &replaced {
            self.storage.delete(&f.key).await?;
        }
        self.status
            .files_compacted
            .fetch_add(replaced.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Writes files as one, under `key` (whose range spans theirs), durably (the
    /// sources stay until the round is recorded).
    async fn merge_files(&self, key: &str, group: &[DataFile]) -> Result<(), InsightsError> {
        let mut contents = Vec::with_capacity(group.len());
        for f in group {
            if let Some(b) = self.storage.get(&f.key).await? {
                contents.push(b);
            }
        }
        let merged = tokio::task::spawn_blocking(move || merge(&contents))
            .await
            .map_err(|e| InsightsError::Internal(e.to_string()))??;
        self.storage.put_durable(key, merged).await?;
        tracing::debug!(%key, files = group.len(), "insights: compacted");
        Ok(())
    }

    /// Materializes until `stop` turns true (flushing what it holds first).
    ///
    /// A flush runs in the background while the next rows are read and converted, so
    /// both cores stay busy; one flush at a time, so the checkpoint moves in order.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut checkpoint = loop {
            match self.recover().await {
                Ok(c) => break c,
                Err(e) => {
                    tracing::warn!(error = %e, "insights: cannot read the store; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
            }
        };
        let interval = Duration::from_millis(self.config.flush_interval_ms.max(10));
        let compact_every = Duration::from_millis(self.config.compact_interval_ms);
        let mut buffer: BTreeMap<PartitionKey, Vec<RecordBatch>> = BTreeMap::new();
        let mut buffered = 0usize;
        // The last position read, and the last one handed to a flush.
        let mut position = checkpoint;
        let mut flushed_to = checkpoint;
        let mut in_flight: Option<InFlight> = None;
        let mut last_flush = Instant::now();
        let mut last_compaction = Instant::now();
        // The last read reached the log's head, and the Unix ms at which it was made.
        let mut at_head = false;
        let mut head_seen_at = 0i64;
        let mut reader = self.reader(checkpoint, interval);
        loop {
            let step = tokio::select! {
                r = reader.batches.recv() => Step::Read(r),
                f = async {
                    match in_flight.as_mut() {
                        Some(f) => (&mut f.task).await,
                        None => std::future::pending().await,
                    }
                } => Step::Flushed(f),
                _ = stop.wait_for(|s| *s) => Step::Stop,
            };
            let stopping = *stop.borrow();
            let mut failed = false;
            match step {
                Step::Flushed(result) => {
                    let f = in_flight.take().expect("a flush was running");
                    failed = !self.settle(result, f.to, f.head_seen_at, &mut checkpoint, &reader);
                }
                Step::Read(Some(Ok(read))) => {
                    if let Some(last) = read.commits.last() {
                        position = last.position;
                    }
                    at_head = read.at_head;
                    if read.at_head {
                        head_seen_at = read.read_at;
                    }
                    for (part, batch) in batches_of(read.commits, self.geoip.clone()).await {
                        buffered += batch.num_rows();
                        buffer.entry(part).or_default().push(batch);
                    }
                }
                Step::Read(None) | Step::Stop if stopping => {}
                Step::Read(r) => {
                    if let Some(Err(e)) = r {
                        tracing::warn!(error = %e, "insights: log unreadable; retrying");
                    }
                    failed = true;
                }
                Step::Stop => {}
            }
            let due = last_flush.elapsed() >= interval || stopping;
            let max = self.config.max_buffered_rows;
            // While a flush is being written, reading goes on (up to twice the
            // buffer), so the log, the conversion and the disk all stay busy.
            let wait = in_flight.is_some() && buffered < 2 * max && !stopping;
            if !failed && !wait && position > flushed_to && (buffered >= max || due) {
                if let Some(f) = in_flight.take() {
                    failed = !self.finish(f, &mut checkpoint, &reader).await;
                }
                if !failed {
                    let parts = std::mem::take(&mut buffer);
                    buffered = 0;
                    let (me, from, to) = (self.clone(), flushed_to, position);
                    in_flight = Some(InFlight {
                        task: tokio::spawn(async move { me.flush(parts, from, to).await }),
                        to,
                        head_seen_at: at_head.then_some(head_seen_at),
                    });
                    flushed_to = position;
                    last_flush = Instant::now();
                }
            } else if !failed && position == checkpoint && in_flight.is_none() && at_head {
                // Nothing new: everything appended before the read is durable.
                self.status
                    .complete_until_ms
                    .store(head_seen_at, Ordering::SeqCst);
            }
            if stopping || failed {
                // Let a running flush end. On a failure nothing past the checkpoint
                // counts: the rest is read again after a pause.
                if let Some(f) = in_flight.take() {
                    self.finish(f, &mut checkpoint, &reader).await;
                }
                if stopping {
                    break;
                }
                buffer.clear();
                buffered = 0;
                position = checkpoint;
                flushed_to = checkpoint;
                tokio::time::sleep(Duration::from_secs(1)).await;
                reader = self.reader(checkpoint, interval);
                continue;
            }
            // Merging waits until everything read is durable and the log is caught up,
            // so catching up after downtime (and its last flush) is not slowed by it.
            let caught_up = at_head && in_flight.is_none() && position == checkpoint;
            if caught_up && last_compaction.elapsed() >= compact_every {
                if let Err(e) = self.compact().await {
                    tracing::warn!(error = %e, "insights: compaction failed");
                }
                last_compaction = Instant::now();
            }
        }
        tracing::info!(checkpoint, "insights materializer stopped");
    }

    /// Waits for a flush to end and takes it in (see [`Materializer::settle`]).
    async fn finish(&self, mut f: InFlight, checkpoint: &mut u64, reader: &Reader) -> bool {
        let result = (&mut f.task).await;
        self.settle(result, f.to, f.head_seen_at, checkpoint, reader)
    }

    /// Takes in a finished flush: moves the checkpoint (true), or reports the failure
    /// (false; nothing moved).
    fn settle(
        &self,
        result: Result<Result<(), InsightsError>, tokio::task::JoinError>,
        to: u64,
        head_seen_at: Option<i64>,
        checkpoint: &mut u64,
        reader: &Reader,
    ) -> bool {
        match result
            .map_err(|e| InsightsError::Internal(e.to_string()))
            .and_then(|r| r)
        {
            Ok(()) => {
                *checkpoint = to;
                reader.processed(to);
                if let Some(at) = head_seen_at {
                    self.status.complete_until_ms.store(at, Ordering::SeqCst);
                }
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "insights: flush failed; retrying");
                false
            }
        }
    }
}

/// What woke the materializer.
enum Step {
    Read(Option<Result<Read, LogError>>),
    Flushed(Result<Result<(), InsightsError>, tokio::task::JoinError>),
    Stop,
}

/// A flush running in the background; dropping it (the materializer stopped short)
/// stops it, as a crash would.
struct InFlight {
    task: tokio::task::JoinHandle<Result<(), InsightsError>>,
    /// The position the checkpoint moves to once it is durable.
    to: u64,
    /// When it ends at the log's head: the moment that head was read.
    head_seen_at: Option<i64>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Materializer {
    fn reader(&self, after: u64, interval: Duration) -> Reader {
        Reader::start(
            self.log.clone(),
            after,
            self.config.read_batch,
            interval,
            self.config.consumer.clone(),
        )
    }
}

/// The cores to spread conversion and encoding over.
fn parallelism() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Commits as column batches per partition, converted on blocking threads, a chunk
/// per core; a partition's batches come in log order.
async fn batches_of(
    commits: Vec<RecordedCommit>,
    geoip: Option<Arc<crate::enrich::GeoIp>>,
) -> Vec<(PartitionKey, RecordBatch)> {
    let chunk = commits.len().div_ceil(parallelism()).max(256);
    let mut rest = commits;
    let mut tasks = Vec::new();
    while !rest.is_empty() {
        let tail = rest.split_off(chunk.min(rest.len()));
        let part = std::mem::replace(&mut rest, tail);
        let geoip = geoip.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            let mut parts: BTreeMap<PartitionKey, BatchBuilder> = BTreeMap::new();
            let envelopes = part.into_iter().flat_map(RecordedCommit::into_envelopes);
            for e in envelopes.filter(crate::event::reaches_insights) {
                parts
                    .entry(partition_of(&e))
                    .or_insert_with(|| BatchBuilder::with_geoip(geoip.clone()))
                    .push(&e);
            }
            parts
                .into_iter()
                .map(|(key, b)| {
                    let batch = b
                        .finish()
                        .expect("a batch built to the table's schema is valid");
                    (key, batch)
                })
                .collect::<Vec<_>>()
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.extend(
            t.await
                .expect("converting events to columns does not panic"),
        );
    }
    out
}

/// One read of the log.
struct Read {
    commits: Vec<RecordedCommit>,
    /// Unix ms at which the read was made.
    read_at: i64,
    /// The read reached the log's head (fewer commits than asked for).
    at_head: bool,
}

/// How many reads of `read_batch` commits are converted together at most.
const MERGED_READS: usize = 4;

/// Reads the log ahead of the writer, so that reading overlaps converting and
/// encoding: through the log's durable reader where it has one (JetStream's durable
/// consumer, told how far the files are durable), else with `read_after`. Dropping it
/// stops the task.
struct Reader {
    batches: mpsc::Receiver<Result<Read, LogError>>,
    durable_until: mpsc::UnboundedSender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Reader {
    fn start(
        log: Arc<dyn EventLog>,
        after: u64,
        batch: usize,
        interval: Duration,
        consumer: String,
    ) -> Reader {
        let (tx, batches) = mpsc::channel(2);
        let (durable_until, mut processed) = mpsc::unbounded_channel::<u64>();
        let task = tokio::spawn(async move {
            let mut durable = match log.durable_reader(&consumer, after).await {
                Ok(d) => d,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let mut position = after;
            loop {
                // Reads are merged up to MERGED_READS of them (until the head): a
                // conversion of more commits makes fewer, fuller batches per
                // partition, which cost less to build, buffer and join (3M events,
                // alternated: 24.0-27.1 CPU-s with 20000 commits at a time, 27.5-30.2
                // with 5000).
                let mut merged: Option<Read> = None;
                let failure = loop {
                    let read_at = now_ms();
                    let read = match durable.as_mut() {
                        Some(d) => {
                            let mut upto = None;
                            while let Ok(p) = processed.try_recv() {
                                upto = Some(p);
                            }
                            if let Some(p) = upto {
                                if let Err(e) = d.processed(p).await {
                                    tracing::debug!(error = %e, "insights: consumer ack failed");
                                }
                            }
                            d.next_batch(batch).await
                        }
                        None => log.read_after(position, batch).await,
                    };
                    let commits = match read {
                        Ok(commits) => commits,
                        Err(e) => break Some(e),
                    };
                    let at_head = commits.len() < batch;
                    if let Some(c) = commits.last() {
                        position = c.position;
                    }
                    let r = merged.get_or_insert_with(|| Read {
                        commits: Vec::new(),
                        read_at,
                        at_head,
                    });
                    r.commits.extend(commits);
                    // What is known of the head comes from the last read.
                    (r.read_at, r.at_head) = (read_at, at_head);
                    if at_head || r.commits.len() >= MERGED_READS * batch {
                        break None;
                    }
                };
                let at_head = merged.as_ref().is_none_or(|r| r.at_head);
                if let Some(r) = merged {
                    if tx.send(Ok(r)).await.is_err() {
                        return;
                    }
                }
                if let Some(e) = failure {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                // A durable reader waits at the head by itself.
                if at_head && durable.is_none() {
                    tokio::time::sleep(Duration::from_millis(100).min(interval)).await;
                }
            }
        });
        Reader {
            batches,
            durable_until,
            task,
        }
    }

    /// Every commit up to `position` is in durable files.
    fn processed(&self, position: u64) {
        let _ = self.durable_until.send(position);
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.task.abort();
    }
}
