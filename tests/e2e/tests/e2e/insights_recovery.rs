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
