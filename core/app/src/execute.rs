//! Command handling: load the aggregate (fold of its stream), `decide`, append the
//! events as one commit expecting the version that was read; on a version conflict,
//! reload and decide again (bounded).

use castellan_domain::aggregate::{Aggregate, DecideContext, EventCodec};
use castellan_domain::envelope::{
    Commit, EventMeta, ExpectedVersion, NewEvent, RecordedCommit, StreamId,
};
use castellan_domain::ids::new_event_id;
use castellan_domain::ObjectId;
use uuid::Uuid;

use crate::error::AppError;
use crate::ports::{Appended, EventLog};

/// Attempts before a command gives up under contention.
const MAX_ATTEMPTS: usize = 8;

/// What a command did.
#[derive(Debug, Clone)]
pub struct Executed<A: Aggregate> {
    /// The aggregate after the command.
    pub state: A,
    /// The events appended (empty when the command changed nothing).
    pub events: Vec<A::Event>,
    /// The stream's version, and the log position of the command's commit (or of the
    /// stream's last commit when nothing was appended): reads may wait for it.
    pub version: u64,
    pub position: u64,
}

/// A loaded aggregate with the version and position of its last commit.
pub struct Loaded<A> {
    pub state: A,
    pub version: u64,
    pub position: u64,
    pub commits: Vec<RecordedCommit>,
}

/// Folds a stream into its aggregate.
pub async fn load<A: Aggregate>(
    log: &dyn EventLog,
    org: ObjectId,
    stream: &StreamId,
) -> Result<Loaded<A>, AppError> {
    let commits = log.read_stream(org, stream).await?;
    let mut state = A::default();
    let (mut version, mut position) = (0, 0);
    for commit in &commits {
        for e in &commit.commit.events {
            let event = A::Event::decode(&e.event_type, e.schema_version, e.payload.clone())?;
            state.evolve(&event);
        }
        version = commit.stream_version;
        position = commit.position;
    }
    Ok(Loaded {
        state,
        version,
        position,
        commits,
    })
}

/// Runs `command` against the aggregate `A` with id `id` in `org`.
pub async fn execute<A: Aggregate>(
    log: &dyn EventLog,
    org: ObjectId,
    id: &str,
    meta: EventMeta,
    command: A::Command,
) -> Result<Executed<A>, AppError> {
    let stream = StreamId::aggregate(A::KIND, id);
    stream.validate().map_err(AppError::Internal)?;
    let ctx = DecideContext {
        now: meta.occurred_at,
    };
    let mut last_commit_id: Option<Uuid> = None;
    for _ in 0..MAX_ATTEMPTS {
        let loaded = load::<A>(log, org, &stream).await?;
        // A previous attempt may have landed although its answer was lost (past the
        // log's own dedup window): the commit id in the stream says so.
        if let Some(prior) = last_commit_id {
            if let Some(found) = loaded.commits.iter().find(|c| c.commit.commit_id == prior) {
                return Ok(Executed {
                    events: decode_all::<A>(found)?,
                    state: loaded.state,
                    version: loaded.version,
                    position: found.position,
                });
            }
        }
        let events = loaded.state.decide(&command, &ctx)?;
        if events.is_empty() {
            return Ok(Executed {
                state: loaded.state,
                events,
                version: loaded.version,
                position: loaded.position,
            });
        }
        let commit = Commit {
            commit_id: Uuid::now_v7(),
            org_id: org,
            stream: stream.clone(),
            expected: ExpectedVersion::from_version(loaded.version),
            meta: meta.clone(),
            events: events.iter().map(to_new_event).collect(),
        };
        last_commit_id = Some(commit.commit_id);
        match log.append(commit).await {
            Ok(Appended {
                position,
                stream_version,
                ..
            }) => {
                let mut state = loaded.state;
                for e in &events {
                    state.evolve(e);
                }
                return Ok(Executed {
                    state,
                    events,
                    version: stream_version,
                    position,
                });
            }
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(AppError::Contention(stream.to_string()))
}

pub fn to_new_event<E: EventCodec>(event: &E) -> NewEvent {
    NewEvent {
        event_id: new_event_id(),
        event_type: event.event_type().to_string(),
        schema_version: event.schema_version(),
        payload: event.encode(),
    }
}

fn decode_all<A: Aggregate>(commit: &RecordedCommit) -> Result<Vec<A::Event>, AppError> {
    commit
        .commit
        .events
        .iter()
        .map(|e| {
            Ok(A::Event::decode(
                &e.event_type,
                e.schema_version,
                e.payload.clone(),
            )?)
        })
        .collect()
}
