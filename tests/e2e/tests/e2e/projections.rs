//! The projection runtime on both read stores: rebuild from 0 equals the live model,
//! idempotent apply, failed events, in-memory snapshots.

use std::sync::Arc;
use std::time::Duration;

use castellan_app::organizations::{self, OrganizationPatch};
use castellan_app::ports::EventLog;
use castellan_domain::envelope::{Actor, Commit, EventMeta, ExpectedVersion, NewEvent, StreamId};
use castellan_domain::ids::new_event_id;
use castellan_log_sqlite::SqliteLog;
use castellan_projections::portal::PORTAL;
use castellan_projections::runtime::{self, Runner};
use castellan_projections::ReadStore;
use serde_json::{json, Map, Value};
use sqlx::Row;
use time::OffsetDateTime;
use tokio::sync::watch;

fn meta() -> EventMeta {
    EventMeta::new(OffsetDateTime::now_utc(), Actor::system())
}

/// Writes a mixed history: organizations created, renamed, settings changed, admins.
async fn history(log: &dyn EventLog) -> u64 {
    let mut last = 0;
    for i in 0..12 {
        let (org, _) = organizations::create(
            log,
            meta(),
            &format!("Org {i}"),
            None,
            Some(format!("it{i}@x.test")),
        )
        .await
        .unwrap();
        for j in 0..4 {
            let mut settings = Map::new();
            settings.insert(format!("k{j}"), json!(j));
            if j == 3 {
                settings.insert("k0".into(), Value::Null);
            }
            let done = organizations::update(
                log,
                org,
                meta(),
                OrganizationPatch {
                    name: Some(format!("Org {i} v{j}")),
                    contact_name: Some(format!("Contact {j}")),
                    settings: Some(settings),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            last = done.position;
        }
        if i % 3 == 0 {
            let mut profile = Map::new();
            profile.insert("username".into(), json!(format!("user{i}")));
            profile.insert("email".into(), json!(format!("user{i}@x.test")));
            let (user, _) = castellan_app::users::create(
                log,
                org,
                meta(),
                castellan_app::users::NewUser {
                    profile,
                    ..Default::default()
                },
                None,
            )
            .await
            .unwrap();
            let mut fields = Map::new();
            fields.insert("name".into(), json!(format!("group{i}")));
            let (group, _) = castellan_app::groups::create(log, org, meta(), fields)
                .await
                .unwrap();
            castellan_app::groups::member(log, org, group, meta(), "add", user)
                .await
                .unwrap();
            let done = castellan_app::users::command(
                log,
                org,
                user,
                meta(),
                castellan_domain::user::UserCommand::Suspend,
            )
            .await
            .unwrap();
            last = done.position;
        }
        if i % 4 == 0 {
            let done = castellan_app::admins::bootstrap(
                log,
                OffsetDateTime::now_utc(),
                &format!("B{i}"),
                &format!("a{i}@b.test"),
                None,
            )
            .await
            .unwrap();
            last = done.position;
        }
    }
    last
}

async fn rebuild_equals_live(store: ReadStore) {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = Arc::new(
        SqliteLog::open(&dir.path().join("events.db"))
            .await
            .unwrap(),
    );
    let runner = Runner::new(store.clone(), log.clone(), &PORTAL);
    let progress = runner.progress();
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(runner.run(stop_rx));
    // Written while the projection runs live.
    let last = history(&*log).await;
    assert!(
        progress.wait_for(last, Duration::from_secs(20)).await,
        "live projection caught up"
    );
    stop.send(true).unwrap();
    task.await.unwrap();
    let live = store.portal_dump().await.unwrap();
    assert!(live.len() >= 15, "rows: {}", live.len());

    runtime::reset(&store, &PORTAL).await.unwrap();
    assert!(store.portal_dump().await.unwrap().is_empty());
    let rebuilt_to = Runner::new(store.clone(), log.clone(), &PORTAL)
        .catch_up()
        .await
        .unwrap();
    assert_eq!(rebuilt_to, log.head().await.unwrap());
    let rebuilt = store.portal_dump().await.unwrap();
    assert_eq!(rebuilt, live, "a rebuild from 0 equals the live projection");
}

#[tokio::test]
async fn rebuild_from_zero_equals_live_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = ReadStore::connect(&format!(
        "sqlite://{}",
        dir.path().join("read.db").display()
    ))
    .await
    .unwrap();
    rebuild_equals_live(store).await;
}

#[tokio::test]
async fn rebuild_from_zero_equals_live_on_postgres() {
    let Some(url) = castellan_e2e::postgres::fresh_database().await else {
        return;
    };
    let store = ReadStore::connect(&url).await.unwrap();
    rebuild_equals_live(store).await;
}

async fn failed_events_do_not_stop_the_projection(store: ReadStore) {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = Arc::new(
        SqliteLog::open(&dir.path().join("events.db"))
            .await
            .unwrap(),
    );
    let (org, _) = organizations::create(&*log, meta(), "Acme", None, None)
        .await
        .unwrap();
    // An update whose payload the codec cannot read (on another organization's
    // stream: the write side refuses to load a stream it cannot read).
    let other = castellan_domain::ObjectId::generate(0);
    let bad = Commit {
        commit_id: uuid::Uuid::now_v7(),
        org_id: other,
        stream: StreamId::aggregate("organization", other),
        expected: ExpectedVersion::Any,
        meta: meta(),
        events: vec![NewEvent {
            event_id: new_event_id(),
            event_type: "organization_update".into(),
            schema_version: 2,
            payload: json!({"changes": "not a list"}),
        }],
    };
    let bad_event = bad.events[0].event_id;
    let bad_position = log.append(bad).await.unwrap().position;
    let runner = Runner::new(store.clone(), log.clone(), &PORTAL);
    let at = runner.catch_up().await.unwrap();
    assert_eq!(at, bad_position);
    let failed = sqlx::query("SELECT event_id, event_type, error, position FROM projection_failed_events WHERE projection = 'portal'")
        .fetch_all(&store.pool)
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].get::<String, _>(0), bad_event.to_string());
    assert!(failed[0]
        .get::<String, _>(2)
        .contains("organization_update"));
    assert_eq!(failed[0].get::<i64, _>(3) as u64, bad_position);
    assert_eq!(
        runner
            .metrics
            .events_failed
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    // Later events still apply.
    let done = organizations::update(
        &*log,
        org,
        meta(),
        OrganizationPatch {
            name: Some("Acme 2".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    runner.catch_up().await.unwrap();
    assert_eq!(
        store
            .organization(&org.to_string())
            .await
            .unwrap()
            .unwrap()
            .name,
        "Acme 2"
    );
    assert_eq!(
        runtime::checkpoint(&store, "portal").await.unwrap(),
        done.position
    );

    // Applying the same commits again changes nothing (idempotent apply).
    let before = store.portal_dump().await.unwrap();
    let all = log.read_after(0, 100).await.unwrap();
    runner.apply(&all).await.unwrap();
    assert_eq!(store.portal_dump().await.unwrap(), before);
    assert_eq!(
        runtime::checkpoint(&store, "portal").await.unwrap(),
        done.position
    );
}

#[tokio::test]
async fn failed_events_are_recorded_and_skipped_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = ReadStore::connect(&format!(
        "sqlite://{}",
        dir.path().join("read.db").display()
    ))
    .await
    .unwrap();
    failed_events_do_not_stop_the_projection(store).await;
}

#[tokio::test]
async fn failed_events_are_recorded_and_skipped_on_postgres() {
    let Some(url) = castellan_e2e::postgres::fresh_database().await else {
        return;
    };
    let store = ReadStore::connect(&url).await.unwrap();
    failed_events_do_not_stop_the_projection(store).await;
}

#[tokio::test]
async fn memory_snapshots_are_swapped_whole() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = Arc::new(
        SqliteLog::open(&dir.path().join("events.db"))
            .await
            .unwrap(),
    );
    let done = castellan_app::admins::bootstrap(
        &*log,
        OffsetDateTime::now_utc(),
        "Acme",
        "root@acme.test",
        None,
    )
    .await
    .unwrap();
    let index = castellan_projections::admin_index::projection();
    let before = index.snapshot();
    let (_stop, stop_rx) = watch::channel(false);
    tokio::spawn(index.clone().run(log.clone(), stop_rx));
    assert!(
        index
            .progress()
            .wait_for(done.position, Duration::from_secs(5))
            .await
    );
    // A snapshot taken before is unchanged: readers hold immutable states.
    assert!(before.state.admins.is_empty());
    let now = index.snapshot();
    let hash = castellan_app::admins::api_key_hash(&done.api_key);
    let admin = now.state.by_api_key_hash(&hash).expect("key indexed");
    assert_eq!(admin.org_id, done.org_id);
    assert_eq!(now.position, done.position);
}
