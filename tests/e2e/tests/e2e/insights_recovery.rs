//! The insights files after a crash at the two dangerous moments, made by hand so that
//! the test is deterministic: a flush cut short (a file beyond the checkpoint) and a
//! compaction cut short (the merged file written, its sources not yet deleted).
//! Readers never count an event twice or miss one, and the next start cleans up.
//! The same on S3, and the durable JetStream consumer of cluster mode.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use castellan_app::ports::EventLog;
use castellan_domain::envelope::{ExpectedVersion, StreamId};
use castellan_domain::ObjectId;
use castellan_e2e::contract::commit;
use castellan_insights::parquet_file::merge;
use castellan_insights::storage::DataFile;
use castellan_insights::{Insights, Materializer, MaterializerConfig, Storage};
use castellan_log_sqlite::SqliteLog;

/// Runs the materializer to the log head; returns how many files it compacted.
async fn materialize(log: Arc<dyn EventLog>, storage: Storage, compact_min_files: usize) -> u64 {
    let m = Arc::new(Materializer::new(
        log.clone(),
        storage,
        MaterializerConfig {
            flush_interval_ms: 10,
            read_batch: 3,
            compact_min_files,
            compact_interval_ms: 0,
            ..Default::default()
        },
    ));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(m.clone().run(stopped));
    let head = log.head().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while m.status.checkpoint.load(Ordering::SeqCst) < head {
        assert!(Instant::now() < deadline, "no catch-up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(true).unwrap();
    task.await.unwrap();
    m.status.files_compacted.load(Ordering::SeqCst)
}

/// Appends `n` new streams of two events each for `org`.
async fn append_things(log: Arc<dyn EventLog>, org: ObjectId, n: usize) {
    for _ in 0..n {
        let stream = StreamId::aggregate("thing", ObjectId::generate(2));
        log.append(commit(org, &stream, ExpectedVersion::NoStream, 2))
            .await
            .unwrap();
    }
}

async fn count(insights: &Insights, org: ObjectId) -> (i64, i64) {
    let rows = castellan_insights::sql::to_json_rows(
        &insights
            .sql(
                &org.to_string(),
                "SELECT count(*) AS n, count(DISTINCT id) AS d FROM events",
            )
            .await
            .unwrap(),
    )
    .unwrap();
    (
        rows[0]["n"].as_i64().unwrap(),
        rows[0]["d"].as_i64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_or_compaction_cut_short_neither_loses_nor_doubles_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::local(&dir.path().join("insights")).unwrap();
    cut_short(dir.path(), storage).await;
}

/// The same on S3 (Garage): listing, conditional cleanup and deletes through
/// object_store against a real server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_or_compaction_cut_short_on_s3_neither_loses_nor_doubles_an_event() {
    let Some(s3) = castellan_e2e::s3::server() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prefix = s3.fresh_prefix("recovery");
    let storage = Storage::s3(&s3.insights_config(&prefix)).unwrap();
    cut_short(dir.path(), storage).await;
    let keys = s3.keys(&format!("{prefix}/")).await;
    assert!(
        keys.iter().any(|k| k == &format!("{prefix}/_checkpoint")),
        "{keys:?}"
    );
    assert!(
        keys.iter().all(|k| k.ends_with("_checkpoint")
            || k.ends_with("_compactions")
            || k.ends_with(".parquet")),
        "{keys:?}"
    );
}

async fn cut_short(dir: &std::path::Path, storage: Storage) {
    let log: Arc<dyn EventLog> = Arc::new(SqliteLog::open(&dir.join("events.db")).await.unwrap());
    let insights = Insights::new(storage.clone());
    let org = ObjectId::generate(1);
    let append = |n: usize| append_things(log.clone(), org, n);
    // Three runs: three files in the one partition.
    for _ in 0..3 {
        append(4).await;
        assert_eq!(materialize(log.clone(), storage.clone(), 1000).await, 0);
    }
    let files = storage.list(Some(&org.to_string())).await.unwrap();
    assert_eq!(files.len(), 3, "{files:?}");
    assert_eq!(count(&insights, org).await, (24, 24));

    // A compaction cut short: the merged file exists beside its sources.
    let mut contents = Vec::new();
    for f in &files {
        contents.push(storage.get(&f.key).await.unwrap().unwrap());
    }
    let (from, to) = (
        files.iter().map(|f| f.from).min().unwrap(),
        files.iter().map(|f| f.to).max().unwrap(),
    );
    let first = &files[0];
    storage
        .put_durable(
            &DataFile::key_for(&first.org, &first.date, from, to),
            merge(&contents).unwrap(),
        )
        .await
        .unwrap();
    // A flush cut short: a file beyond the checkpoint (its content never counts).
    let checkpoint = storage.checkpoint().await.unwrap();
    storage
        .put_durable(
            &DataFile::key_for(&first.org, &first.date, checkpoint, checkpoint + 10),
            contents[0].clone(),
        )
        .await
        .unwrap();
    assert_eq!(count(&insights, org).await, (24, 24), "readers skip both");

    // The next run removes both leftovers and goes on; small files get compacted.
    append(5).await;
    let compacted = materialize(log.clone(), storage.clone(), 2).await;
    assert!(compacted >= 2, "small files were merged ({compacted})");
    assert_eq!(count(&insights, org).await, (34, 34));
    let left = storage.list(Some(&org.to_string())).await.unwrap();
    let checkpoint = storage.checkpoint().await.unwrap();
    assert!(
        left.iter().all(|f| f.to <= checkpoint),
        "no file beyond the checkpoint: {left:?}"
    );
    assert_eq!(
        castellan_insights::storage::visible(left.clone(), checkpoint).len(),
        left.len(),
        "no covered file left: {left:?}"
    );
    assert!(left.len() <= 2, "merged: {left:?}");
}

/// In cluster mode the materializer reads JetStream through a durable consumer: the
/// server sees its progress (acknowledged once the files are durable), and a restart
/// recreates the consumer at the checkpoint, so nothing is read twice into the files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_jetstream_the_materializer_reads_through_a_durable_consumer() {
    let Some(nats) = castellan_e2e::nats::NatsServer::start() else {
        return;
    };
    let nats_log = castellan_log_nats::NatsLog::connect(&nats.url(), Default::default())
        .await
        .unwrap();
    let log: Arc<dyn EventLog> = Arc::new(nats_log);
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::local(&dir.path().join("insights")).unwrap();
    let insights = Insights::new(storage.clone());
    let org = ObjectId::generate(1);
    let append = |n: usize| append_things(log.clone(), org, n);
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let ack_floor = || {
        let js = js.clone();
        async move {
            let stream = js.get_stream("CASTELLAN").await.unwrap();
            let info = stream.consumer_info("castellan-insights").await.unwrap();
            (info.ack_floor.stream_sequence, info.num_pending)
        }
    };
    for round in 1..=2u64 {
        append(15).await;
        let head = log.head().await.unwrap();
        let m = Arc::new(Materializer::new(
            log.clone(),
            storage.clone(),
            MaterializerConfig {
                flush_interval_ms: 20,
                read_batch: 4,
                ..Default::default()
            },
        ));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(m.clone().run(stopped));
        let deadline = Instant::now() + Duration::from_secs(20);
        // The server learns how far the files are durable.
        loop {
            let checkpoint = m.status.checkpoint.load(Ordering::SeqCst);
            if checkpoint == head && ack_floor().await == (head, 0) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: checkpoint {checkpoint}, consumer {:?}, head {head}",
                ack_floor().await
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(
            count(&insights, org).await,
            (30 * round as i64, 30 * round as i64),
            "each event once after round {round}"
        );
    }
}

/// A query keeps its organization's listing of files until the checkpoint moves or a
/// compaction is recorded: files a compaction removed are never read as missing
/// (DataFusion would take a missing file for an empty one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_lists_again_when_a_compaction_removed_listed_files() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> =
        Arc::new(SqliteLog::open(&dir.path().join("log.db")).await.unwrap());
    let org = ObjectId::generate(1);
    let storage = Storage::local(&dir.path().join("insights")).unwrap();
    // Two runs, no compaction yet: today's partition holds several files.
    for _ in 0..2 {
        append_things(log.clone(), org, 5).await;
        assert_eq!(materialize(log.clone(), storage.clone(), 1000).await, 0);
    }
    let before = storage.list(None).await.unwrap().len();
    assert!(before >= 2, "several files ({before})");
    let insights = Insights::new(storage.clone());
    assert_eq!(count(&insights, org).await, (20, 20));
    // The checkpoint stays where it is; the listed files go.
    let m = Materializer::new(
        log.clone(),
        storage.clone(),
        MaterializerConfig {
            compact_min_files: 2,
            ..Default::default()
        },
    );
    m.recover().await.unwrap();
    m.compact().await.unwrap();
    assert_eq!(storage.list(None).await.unwrap().len(), 1);
    assert_eq!(count(&insights, org).await, (20, 20));
}

/// Writes the events of log positions `(from, to]` of `org` as one file of `date`,
/// as a flush would, with their time moved to noon of that date.
async fn put_day_file(
    log: &Arc<dyn EventLog>,
    storage: &Storage,
    org: ObjectId,
    date: &str,
    (from, to): (u64, u64),
) {
    let noon = time::OffsetDateTime::parse(
        &format!("{date}T12:00:00Z"),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let events: Vec<_> = log
        .read_after(from, (to - from) as usize)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|c| c.into_envelopes())
        .map(|mut e| {
            e.occurred_at = noon;
            e
        })
        .collect();
    let batch = castellan_insights::schema::to_batch(&events).unwrap();
    let bytes = castellan_insights::parquet_file::encode(&[batch]).unwrap();
    storage
        .put_durable(&DataFile::key_for(&org.to_string(), date, from, to), bytes)
        .await
        .unwrap();
}

/// The events of `org` on the days `[first, last]`, through the Directory Insights
/// count (whose files are picked by date).
async fn count_days(insights: &Insights, org: ObjectId, first: &str, last: &str) -> u64 {
    let q = castellan_insights::EventQuery::parse(&serde_json::json!({
        "service": ["all"],
        "start_time": format!("{first}T00:00:00Z"),
        "end_time": format!("{last}T23:59:59Z"),
    }))
    .unwrap();
    insights.count(&org.to_string(), &q).await.unwrap()
}

/// A finished month's day files become one month file, and this month's finished
/// days one file of the month so far; a merge cut short (the month file written, its
/// sources not yet deleted) neither doubles nor loses an event; a late event of that
/// month is merged in by the next round; a month too large to merge keeps one file
/// per day.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_month_is_merged_into_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> =
        Arc::new(SqliteLog::open(&dir.path().join("log.db")).await.unwrap());
    let org = ObjectId::generate(1);
    append_things(log.clone(), org, 6).await; // positions 1..=6, two events each
    let storage = Storage::local(&dir.path().join("insights")).unwrap();
    let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let today = castellan_insights::event::date_of_ms(now_ms);
    put_day_file(&log, &storage, org, "2025-09-10", (0, 1)).await;
    put_day_file(&log, &storage, org, "2025-09-11", (1, 2)).await;
    put_day_file(&log, &storage, org, "2025-09-10", (2, 3)).await;
    put_day_file(&log, &storage, org, &today, (3, 4)).await;
    storage.set_checkpoint(4).await.unwrap();
    let insights = Insights::new(storage.clone());
    assert_eq!(count(&insights, org).await, (8, 8));

    // Cut short: the month file beside its sources. Readers count each event once.
    let september: Vec<DataFile> = storage
        .list(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|f| f.date.starts_with("2025-09"))
        .collect();
    let mut contents = Vec::new();
    for f in &september {
        contents.push(storage.get(&f.key).await.unwrap().unwrap());
    }
    storage
        .put_durable(
            &DataFile::key_for(&org.to_string(), "2025-09", 0, 3),
            merge(&contents).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(count(&insights, org).await, (8, 8), "sources skipped");
    assert_eq!(
        count_days(&insights, org, "2025-09-11", "2025-09-11").await,
        2
    );
    assert_eq!(
        count_days(&insights, org, "2025-10-01", "2025-10-31").await,
        0
    );

    // The next start deletes the covered sources.
    let config = MaterializerConfig::default();
    let m = Materializer::new(log.clone(), storage.clone(), config.clone());
    m.recover().await.unwrap();
    let mut keys: Vec<String> = storage
        .list(None)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.date)
        .collect();
    keys.sort();
    assert_eq!(keys, vec!["2025-09".to_string(), today.clone()]);
    assert_eq!(count(&insights, org).await, (8, 8));

    // A late September event, and two of another September day: one month file again.
    put_day_file(&log, &storage, org, "2025-09-30", (4, 5)).await;
    put_day_file(&log, &storage, org, "2025-09-29", (5, 6)).await;
    storage.set_checkpoint(6).await.unwrap();
    let m = Materializer::new(log.clone(), storage.clone(), config.clone());
    m.recover().await.unwrap();
    m.compact().await.unwrap();
    let files = storage.list(None).await.unwrap();
    let month: Vec<&DataFile> = files.iter().filter(|f| f.is_month()).collect();
    assert_eq!(month.len(), 1, "{files:?}");
    assert_eq!((month[0].from, month[0].to), (0, 6));
    assert_eq!(files.len(), 2, "the month and today: {files:?}");
    assert_eq!(count(&insights, org).await, (12, 12));
    assert_eq!(
        count_days(&insights, org, "2025-09-29", "2025-09-30").await,
        4
    );

    // A flush wrote two days with one range, one of them finished: the finished
    // days are merged into their month (this month so far, or last month when today
    // is one of the first three days), and the other day's file, inside that range,
    // is still read.
    let storage_now = Storage::local(&dir.path().join("now")).unwrap();
    let three_days_ago = castellan_insights::event::date_of_ms(now_ms - 3 * 86_400_000);
    put_day_file(&log, &storage_now, org, &three_days_ago, (0, 1)).await;
    put_day_file(&log, &storage_now, org, &three_days_ago, (1, 2)).await;
    put_day_file(&log, &storage_now, org, &today, (1, 2)).await;
    storage_now.set_checkpoint(2).await.unwrap();
    let m = Materializer::new(log.clone(), storage_now.clone(), config.clone());
    m.recover().await.unwrap();
    m.compact().await.unwrap();
    let files = storage_now.list(None).await.unwrap();
    let month: Vec<&DataFile> = files.iter().filter(|f| f.is_month()).collect();
    assert_eq!((files.len(), month.len()), (2, 1), "{files:?}");
    assert_eq!(month[0].date, three_days_ago[..7]);
    assert!(month[0].last_day >= castellan_insights::storage::day_of(&three_days_ago));
    assert_eq!((month[0].from, month[0].to), (0, 2));
    let both = count(&Insights::new(storage_now), org).await;
    assert_eq!(
        both,
        (6, 4),
        "the month's 4 events and today's 2 (the same as the month's last 2) are read"
    );

    // A month over the size limit: each finished day merged into one file instead.
    let storage = Storage::local(&dir.path().join("large")).unwrap();
    put_day_file(&log, &storage, org, "2025-09-10", (0, 1)).await;
    put_day_file(&log, &storage, org, "2025-09-11", (1, 2)).await;
    put_day_file(&log, &storage, org, "2025-09-10", (2, 3)).await;
    storage.set_checkpoint(3).await.unwrap();
    let m = Materializer::new(
        log.clone(),
        storage.clone(),
        MaterializerConfig {
            compact_month_max_bytes: 1,
            ..config
        },
    );
    m.recover().await.unwrap();
    m.compact().await.unwrap();
    let mut days: Vec<(String, u64, u64)> = storage
        .list(None)
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.date, f.from, f.to))
        .collect();
    days.sort();
    assert_eq!(
        days,
        vec![("2025-09-10".into(), 0, 3), ("2025-09-11".into(), 1, 2)]
    );
    assert_eq!(count(&Insights::new(storage), org).await, (6, 6));
}

/// A day counts as finished an hour after it ends, at a fixed clock: half an hour
/// after midnight its files stay as they are; an hour and a half after, they are
/// merged into the month so far, and at the end of a month into the whole month.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_is_merged_an_hour_after_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> =
        Arc::new(SqliteLog::open(&dir.path().join("log.db")).await.unwrap());
    let org = ObjectId::generate(1);
    append_things(log.clone(), org, 3).await;
    let at = |t: &str| {
        (time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .unwrap()
            .unix_timestamp_nanos()
            / 1_000_000) as i64
    };
    let files = |storage: &Storage| {
        let storage = storage.clone();
        async move {
            let mut files: Vec<(String, u64, u64, u8)> = storage
                .list(None)
                .await
                .unwrap()
                .into_iter()
                .map(|f| (f.date, f.from, f.to, f.last_day))
                .collect();
            files.sort();
            files
        }
    };
    for (days, midnight, merged) in [
        (
            ["2025-09-14", "2025-09-15"],
            "2025-09-15T00:00:00Z",
            ("2025-09".to_string(), 0, 2, 14),
        ),
        (
            ["2025-09-30", "2025-10-01"],
            "2025-10-01T00:00:00Z",
            ("2025-09".to_string(), 0, 2, 31),
        ),
    ] {
        let storage = Storage::local(&dir.path().join(days[0])).unwrap();
        put_day_file(&log, &storage, org, days[0], (0, 1)).await;
        put_day_file(&log, &storage, org, days[0], (1, 2)).await;
        put_day_file(&log, &storage, org, days[1], (2, 3)).await;
        storage.set_checkpoint(3).await.unwrap();
        let before = files(&storage).await;
        let m = Materializer::new(log.clone(), storage.clone(), MaterializerConfig::default());
        m.recover().await.unwrap();
        m.compact_at(at(midnight) + 30 * 60_000).await.unwrap();
        assert_eq!(
            files(&storage).await,
            before,
            "{} is not finished yet",
            days[0]
        );
        m.compact_at(at(midnight) + 90 * 60_000).await.unwrap();
        let day = days[1][8..].parse().unwrap();
        assert_eq!(
            files(&storage).await,
            vec![merged, (days[1].to_string(), 2, 3, day)],
            "{} is finished",
            days[0]
        );
    }
}
