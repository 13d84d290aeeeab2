//! The event-log contract. Every adapter runs every check here.

use std::sync::Arc;
use std::time::Duration;

use castellan_app::ports::{EventLog, LogError};
use castellan_app::unique;
use castellan_domain::envelope::{Actor, Commit, EventMeta, ExpectedVersion, NewEvent, StreamId};
use castellan_domain::ids::new_event_id;
use castellan_domain::ObjectId;
use futures::future::BoxFuture;
use futures::StreamExt;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

/// Opens a log, and reopens it after a restart of whatever stores it.
pub trait Harness: Send {
    fn open(&mut self) -> BoxFuture<'_, Arc<dyn EventLog>>;
    /// Stops the store (cleanly or not) and starts it again on the same data.
    fn restart(&mut self) -> BoxFuture<'_, ()>;
}

pub fn org() -> ObjectId {
    ObjectId::generate(OffsetDateTime::now_utc().unix_timestamp())
}

pub fn meta() -> EventMeta {
    let mut m = EventMeta::new(OffsetDateTime::now_utc(), Actor::system());
    m.client_ip = Some("127.0.0.1".into());
    m.user_agent = Some("contract-test".into());
    m.correlation_id = Some("corr-1".into());
    m
}

pub fn commit(org: ObjectId, stream: &StreamId, expected: ExpectedVersion, n: usize) -> Commit {
    Commit {
        commit_id: Uuid::now_v7(),
        org_id: org,
        stream: stream.clone(),
        expected,
        meta: meta(),
        events: (0..n)
            .map(|i| NewEvent {
                event_id: new_event_id(),
                event_type: "test_event".into(),
                schema_version: 1,
                payload: json!({"i": i, "text": "héllo"}),
            })
            .collect(),
    }
}

pub async fn append_read_round_trip(log: Arc<dyn EventLog>) {
    let org = org();
    let stream = StreamId::aggregate("thing", ObjectId::generate(0));
    let c = commit(org, &stream, ExpectedVersion::NoStream, 3);
    let a = log.append(c.clone()).await.expect("append");
    assert!(a.position > 0 && a.stream_version > 0 && !a.duplicate);
    let read = log.read_stream(org, &stream).await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].position, a.position);
    assert_eq!(read[0].stream_version, a.stream_version);
    assert_eq!(read[0].commit.events, c.events);
    assert_eq!(read[0].commit.meta, c.meta);
    let envelopes: Vec<_> = read[0].envelopes().collect();
    assert_eq!(envelopes.len(), 3);
    for (e, n) in envelopes.iter().zip(&c.events) {
        assert_eq!(e.event_id, n.event_id);
        assert_eq!(e.org_id, org);
        assert_eq!(e.position, a.position);
        assert_eq!(e.commit_id, c.commit_id);
        assert_eq!(e.client_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(e.correlation_id.as_deref(), Some("corr-1"));
    }
    assert!(log.head().await.unwrap() >= a.position);
    let last = log
        .read_last(org, &stream)
        .await
        .unwrap()
        .expect("a last commit");
    assert_eq!(last.position, a.position);
    assert!(log
        .read_last(org, &StreamId::aggregate("thing", ObjectId::generate(0)))
        .await
        .unwrap()
        .is_none());
    let after = log.read_after(a.position - 1, 10).await.unwrap();
    assert_eq!(after[0].commit.commit_id, c.commit_id);
    // Another org's stream of the same name is another stream.
    assert!(log
        .read_stream(self::org(), &stream)
        .await
        .unwrap()
        .is_empty());
}

pub async fn stale_expected_version_conflicts_and_writes_nothing(log: Arc<dyn EventLog>) {
    let org = org();
    let stream = StreamId::aggregate("thing", ObjectId::generate(0));
    let v1 = log
        .append(commit(org, &stream, ExpectedVersion::NoStream, 1))
        .await
        .unwrap()
        .stream_version;
    let again = log
        .append(commit(org, &stream, ExpectedVersion::NoStream, 1))
        .await;
    assert!(matches!(again, Err(LogError::Conflict { .. })), "{again:?}");
    let v2 = log
        .append(commit(org, &stream, ExpectedVersion::Exact(v1), 1))
        .await
        .unwrap()
        .stream_version;
    assert!(v2 > v1);
    let stale = log
        .append(commit(org, &stream, ExpectedVersion::Exact(v1), 1))
        .await;
    assert!(matches!(stale, Err(LogError::Conflict { .. })), "{stale:?}");
    let ahead = log
        .append(commit(org, &stream, ExpectedVersion::Exact(v2 + 1000), 1))
        .await;
    assert!(matches!(ahead, Err(LogError::Conflict { .. })), "{ahead:?}");
    assert_eq!(log.read_stream(org, &stream).await.unwrap().len(), 2);
    // Exact on a stream that does not exist fails too.
    let missing = StreamId::aggregate("thing", ObjectId::generate(0));
    let r = log
        .append(commit(org, &missing, ExpectedVersion::Exact(1), 1))
        .await;
    assert!(matches!(r, Err(LogError::Conflict { .. })), "{r:?}");
    // Any skips the check.
    log.append(commit(org, &stream, ExpectedVersion::Any, 1))
        .await
        .unwrap();
    assert_eq!(log.read_stream(org, &stream).await.unwrap().len(), 3);
}

pub async fn retried_commit_is_stored_once(log: Arc<dyn EventLog>) {
    let org = org();
    let stream = StreamId::aggregate("thing", ObjectId::generate(0));
    let c = commit(org, &stream, ExpectedVersion::NoStream, 2);
    let first = log.append(c.clone()).await.unwrap();
    let retry = log.append(c.clone()).await.unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.position, first.position);
    let read = log.read_stream(org, &stream).await.unwrap();
    assert_eq!(read.len(), 1);
}

pub async fn concurrent_writers_one_wins_per_version(log: Arc<dyn EventLog>) {
    let org = org();
    let stream = StreamId::aggregate("thing", ObjectId::generate(0));
    let mut version = 0;
    for _round in 0..5 {
        let expected = ExpectedVersion::from_version(version);
        let tasks: Vec<_> = (0..12)
            .map(|_| {
                let log = log.clone();
                let c = commit(org, &stream, expected, 1);
                tokio::spawn(async move { log.append(c).await })
            })
            .collect();
        let mut wins = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(a) => wins.push(a),
                Err(LogError::Conflict { .. }) => {}
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(wins.len(), 1, "exactly one writer wins version {version}");
        version = wins[0].stream_version;
    }
    assert_eq!(log.read_stream(org, &stream).await.unwrap().len(), 5);
}

pub async fn auth_appends_skip_per_aggregate_checks(log: Arc<dyn EventLog>) {
    let org = org();
    let stream = StreamId::auth("ldap");
    let commits: Vec<_> = (0..200)
        .map(|_| commit(org, &stream, ExpectedVersion::Any, 1))
        .collect();
    let results = log.append_batch(commits).await;
    let positions: Vec<u64> = results.into_iter().map(|r| r.unwrap().position).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "positions increase"
    );
    assert_eq!(log.read_stream(org, &stream).await.unwrap().len(), 200);
}

/// Subscribing from a position delivers every later commit, in order, and keeps
/// delivering new ones; after a restart a new subscription resumes where it left off.
pub async fn subscribe_delivers_every_later_commit_in_order(h: &mut dyn Harness) {
    let log = h.open().await;
    let org = org();
    let mut positions = Vec::new();
    for i in 0..30 {
        let s = StreamId::aggregate("thing", format!("s{}", i % 3));
        let c = commit(org, &s, ExpectedVersion::Any, 1);
        positions.push(log.append(c).await.unwrap().position);
    }
    let from = positions[9];
    let mut sub = log.subscribe(from).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 20 {
        let c = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("commit delivered")
            .unwrap()
            .unwrap();
        if c.commit.org_id == org {
            seen.push(c.position);
        }
    }
    assert_eq!(seen, positions[10..].to_vec());
    // Live: a commit appended now arrives.
    let live = log
        .append(commit(
            org,
            &StreamId::aggregate("thing", "live"),
            ExpectedVersion::Any,
            1,
        ))
        .await
        .unwrap();
    let got = next_of(&mut sub, org).await;
    assert_eq!(got, live.position);
    drop(sub);
    drop(log);

    h.restart().await;
    let log = h.open().await;
    let mut more = Vec::new();
    for _ in 0..5 {
        let c = commit(
            org,
            &StreamId::aggregate("thing", "after"),
            ExpectedVersion::Any,
            1,
        );
        more.push(log.append(c).await.unwrap().position);
    }
    let mut sub = log.subscribe(live.position).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 5 {
        seen.push(next_of(&mut sub, org).await);
    }
    assert_eq!(seen, more);
    // Everything written before the restart is still there.
    let all = log.read_after(0, 10_000).await.unwrap();
    let ours: Vec<u64> = all
        .iter()
        .filter(|c| c.commit.org_id == org)
        .map(|c| c.position)
        .collect();
    assert_eq!(ours.len(), 36);
}

async fn next_of(sub: &mut castellan_app::ports::CommitStream, org: ObjectId) -> u64 {
    loop {
        let c = tokio::time::timeout(Duration::from_secs(15), sub.next())
            .await
            .expect("commit delivered")
            .unwrap()
            .unwrap();
        if c.commit.org_id == org {
            return c.position;
        }
    }
}

/// Two concurrent claims of one key in one org: exactly one wins. The same key in
/// another org is free; a released key can be claimed again.
pub async fn unique_keys_hold_under_concurrency(log: Arc<dyn EventLog>) {
    let (org_a, org_b) = (org(), org());
    for round in 0..4 {
        let name = format!("Alice{round}");
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let log = log.clone();
                let name = name.clone();
                tokio::spawn(async move {
                    unique::claim(
                        &*log,
                        org_a,
                        "username",
                        &name,
                        &format!("owner{i}"),
                        &meta(),
                    )
                    .await
                })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => wins += 1,
                Err(castellan_app::AppError::Domain(castellan_domain::DomainError::Taken {
                    ..
                })) => {}
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(wins, 1, "one claim of {name} wins");
        // Case-insensitive.
        let upper = unique::claim(
            &*log,
            org_a,
            "username",
            &name.to_uppercase(),
            "other",
            &meta(),
        )
        .await;
        assert!(upper.is_err());
        unique::claim(&*log, org_b, "username", &name, "owner-b", &meta())
            .await
            .expect("other org is free");
    }
    unique::claim(&*log, org_a, "username", "bob", "u1", &meta())
        .await
        .unwrap();
    unique::release(&*log, org_a, "username", "bob", "u1", &meta())
        .await
        .unwrap();
    unique::claim(&*log, org_a, "username", "BOB", "u2", &meta())
        .await
        .expect("released key is free again");
}

/// Declares the whole contract as tests for one adapter. `$harness` is an async
/// expression giving `Option<impl Harness>` (`None`: the backing server is not
/// installed and this is not CI).
#[macro_export]
macro_rules! contract_tests {
    ($harness:expr) => {
        $crate::contract_tests!(@log $harness;
            append_read_round_trip,
            stale_expected_version_conflicts_and_writes_nothing,
            retried_commit_is_stored_once,
            concurrent_writers_one_wins_per_version,
            auth_appends_skip_per_aggregate_checks,
            unique_keys_hold_under_concurrency,
        );

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn subscribe_delivers_every_later_commit_in_order() {
            let Some(mut h) = $harness else { return };
            $crate::contract::subscribe_delivers_every_later_commit_in_order(&mut h).await;
        }
    };
    (@log $harness:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let Some(mut h) = $harness else { return };
                let log = $crate::contract::Harness::open(&mut h).await;
                $crate::contract::$name(log).await;
            }
        )*
    };
}
