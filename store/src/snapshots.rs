//! Snapshots of long streams: a stream's state folded up to a sequence, stored as JSON
//! with the version of its shape ([`Decider::SNAPSHOT_VERSION`]), so that loading the
//! stream folds only the events after it. An agent's stream grows with every
//! allocation and release; without a snapshot every command on the agent would read and
//! fold all of it.
//!
//! Snapshots are a cache, never data: [`EventStore::load_state`] gives the same state
//! with or without them (the store conformance suite folds every stream both ways).
//!
//! - **When one is taken**: a load that folded at least
//!   [`StoreOptions::snapshot_every`](crate::StoreOptions::snapshot_every) events after
//!   the snapshot it started from (or from the start) writes the state it reached. It
//!   is taken on load, not on append, so it only ever holds committed events, and
//!   every path that decides on a stream (commands, batches, the scheduler's fallback)
//!   keeps it current without knowing about it. Writing it is best effort: a failure is
//!   logged and counted, never the command's failure.
//! - **When one is ignored**: its shape version is not this build's, or its state
//!   does not decode; the stream is then folded from its first event and the snapshot
//!   replaced (metric `sessiond_snapshots_ignored_total{reason}`).
//! - **Never copied**: `sessionctl store copy` and `events import` move events; the
//!   target takes its own snapshots as streams are loaded.

use domain::Decider;

use crate::event_store::{decode, EventStore};
use crate::{args, sql, StoreError};

/// Default [`StoreOptions::snapshot_every`](crate::StoreOptions::snapshot_every): a
/// stream is never folded from more than this many events (plus one snapshot).
pub const DEFAULT_EVERY: u64 = 100;

/// A stream loaded and folded.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    /// The state after every stored event of the stream.
    pub state: A,
    /// The stream's last sequence (0: no such stream): the version new events follow.
    pub version: i64,
    /// How many events were folded on top of the snapshot (all of them without one).
    pub folded: usize,
    /// The sequence of the snapshot the load started from (`None`: from the start).
    pub from_snapshot: Option<i64>,
}

/// One snapshot row: shape version, last sequence folded, state as JSON.
type Row = (i64, i64, String);

impl EventStore {
    /// Loads one stream's state: the newest usable snapshot, then every event after
    /// it through the upcaster chain, folded. Takes a new snapshot when the fold was
    /// long (see the [module](self)).
    #[tracing::instrument(skip_all, fields(aggregate_type = A::TYPE, aggregate_id = %aggregate_id, folded), err)]
    pub async fn load_state<A: Decider>(
        &self,
        aggregate_id: &str,
    ) -> Result<Loaded<A>, StoreError> {
        let every = self.snapshot_every();
        let db = self.db();
        let (mut state, mut version, from_snapshot) = if every == 0 {
            (A::default(), 0, None)
        } else {
            let row: Option<Row> = db
                .fetch_optional(&sql!(common "snapshots/get"), args![A::TYPE, aggregate_id])
                .await?;
            match row.map(|r| usable::<A>(r)) {
                Some(Ok((state, sequence))) => (state, sequence, Some(sequence)),
                Some(Err(reason)) => {
                    metrics::counter!("sessiond_snapshots_ignored_total", "reason" => reason)
                        .increment(1);
                    tracing::warn!(
                        aggregate_type = A::TYPE,
                        aggregate_id,
                        reason,
                        "snapshot ignored; folding the stream from its first event"
                    );
                    (A::default(), 0, None)
                }
                None => (A::default(), 0, None),
            }
        };
        let rows = db.read_stream_after(A::TYPE, aggregate_id, version).await?;
        for row in &rows {
            let event = decode::<A>(
                &row.event_type,
                &row.event_version,
                row.sequence,
                &row.payload,
            )?;
            state.evolve(&event);
            version = row.sequence;
        }
        let folded = rows.len();
        tracing::Span::current().record("folded", folded);
        metrics::histogram!("sessiond_stream_events_folded", "aggregate_type" => A::TYPE)
            .record(folded as f64);
        if every > 0 && folded as u64 >= every {
            self.put_snapshot(aggregate_id, &state, version).await;
        }
        Ok(Loaded {
            state,
            version,
            folded,
            from_snapshot,
        })
    }

    /// Stores `state` as the snapshot of `A` `aggregate_id` at `version`; a failure is
    /// logged and counted, not returned (the snapshot is a cache).
    async fn put_snapshot<A: Decider>(&self, aggregate_id: &str, state: &A, version: i64) {
        let written = match serde_json::to_string(state) {
            Ok(json) => self
                .db()
                .execute(
                    &sql!(common "snapshots/put"),
                    args![
                        A::TYPE,
                        aggregate_id,
                        i64::from(A::SNAPSHOT_VERSION),
                        version,
                        json
                    ],
                )
                .await
                .map_err(|e| crate::error_chain(&e)),
            Err(e) => Err(e.to_string()),
        };
        match written {
            Ok(_) => metrics::counter!("sessiond_snapshots_written_total").increment(1),
            Err(error) => {
                metrics::counter!("sessiond_snapshots_failed_total").increment(1);
                tracing::warn!(aggregate_type = A::TYPE, aggregate_id, %error, "snapshot not written (the stream stays readable from its events)");
            }
        }
    }

    /// [`StoreOptions::snapshot_every`](crate::StoreOptions::snapshot_every) of this store.
    pub fn snapshot_every(&self) -> u64 {
        match self {
            EventStore::Postgres(s) => s.snapshot_every,
            EventStore::Sqlite(s) => s.snapshot_every,
        }
    }
}

/// One stored snapshot as it is kept (for the audit).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredSnapshot {
    /// Aggregate type.
    pub aggregate_type: String,
    /// Stream id.
    pub aggregate_id: String,
    /// The shape version it was written with.
    pub schema_version: i64,
    /// The last sequence folded into it.
    pub last_sequence: i64,
    /// The state, as JSON text.
    pub state: String,
}

/// A snapshot checked against a fresh fold of its stream ([`EventStore::refold_snapshot`]).
#[derive(Debug, Clone, PartialEq)]
pub enum SnapshotCheck {
    /// Of another shape version: every load ignores it, so nothing depends on it.
    OtherVersion,
    /// Its state does not decode as the aggregate (loads ignore it too).
    Undecodable(String),
    /// It claims more events than the stream holds.
    BeyondStream {
        /// Events in the stream.
        stream_len: i64,
    },
    /// Both states, as JSON values: the snapshot's and the fold's up to its sequence.
    Compared {
        /// The snapshot's state.
        snapshot: serde_json::Value,
        /// The state folded from the stream's events up to the snapshot's sequence.
        fold: serde_json::Value,
    },
}

impl EventStore {
    /// Every snapshot, by stream.
    pub async fn snapshots(&self) -> Result<Vec<StoredSnapshot>, StoreError> {
        Ok(self
            .db()
            .fetch_all(&sql!(common "snapshots/all"), args![])
            .await?)
    }

    /// Folds `snapshot`'s stream from its first event up to the snapshot's sequence
    /// (never through a snapshot) for comparison with what the snapshot holds.
    pub async fn refold_snapshot<A: Decider>(
        &self,
        snapshot: &StoredSnapshot,
    ) -> Result<SnapshotCheck, StoreError> {
        if snapshot.schema_version != i64::from(A::SNAPSHOT_VERSION) {
            return Ok(SnapshotCheck::OtherVersion);
        }
        let held: A = match serde_json::from_str(&snapshot.state) {
            Ok(state) => state,
            Err(e) => return Ok(SnapshotCheck::Undecodable(e.to_string())),
        };
        let rows = self
            .db()
            .read_stream(A::TYPE, &snapshot.aggregate_id)
            .await?;
        let stream_len = rows.last().map_or(0, |r| r.sequence);
        if stream_len < snapshot.last_sequence {
            return Ok(SnapshotCheck::BeyondStream { stream_len });
        }
        let mut state = A::default();
        for row in rows
            .iter()
            .take_while(|r| r.sequence <= snapshot.last_sequence)
        {
            state.evolve(&decode::<A>(
                &row.event_type,
                &row.event_version,
                row.sequence,
                &row.payload,
            )?);
        }
        Ok(SnapshotCheck::Compared {
            snapshot: serde_json::to_value(&held).map_err(StoreError::Encode)?,
            fold: serde_json::to_value(&state).map_err(StoreError::Encode)?,
        })
    }
}

/// A stored snapshot's state and sequence, or why it cannot be used.
fn usable<A: Decider>((schema_version, sequence, json): Row) -> Result<(A, i64), &'static str> {
    if schema_version != i64::from(A::SNAPSHOT_VERSION) {
        return Err("schema_version");
    }
    serde_json::from_str(&json)
        .map(|state| (state, sequence))
        .map_err(|_| "undecodable")
}
