//! The one engine thread. It owns the engine, drains the bounded command queue in batches,
//! stamps each command with a sequence number and the batch's time, applies them, and hands the
//! batch to the journal writer thread, which encodes it, extends the audit chain, writes it in
//! one synced write, and only then replies and publishes. So the engine applies batch n + 1
//! while batch n is being encoded and synced, and nothing is acknowledged or published before
//! it is durable. Queries and periodic snapshots never reach the engine thread: the read
//! replica (`crate::replica`) applies each batch again once it is synced, and answers them from
//! there, so they see acknowledged state only and the engine never waits for them.
//!
//! Group commit falls out of the two loops: whatever arrives while one batch is applied is the
//! next engine batch, and whatever batches the engine hands over while one sync is in flight are
//! written together in the next one, so batches grow with load and latency stays near one sync.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use mutua_engine::{Command, Engine, Timestamp};
use tokio::sync::{broadcast, oneshot};

pub use crate::journal::Applied;
use crate::journal::{Journal, JournalError};
use crate::metrics::{kind_index, BatchCounts, Metrics};
use crate::replica::{Checkpoint, Query, Replica, ReplicaStart, ToReplica};
use crate::replication::{Follow, Publisher, ReplicationState, Role};

/// What the engine thread and its journal writer need to take part in a replicated exchange:
/// they start as a standby, applying the cluster's writes the follower hands over, until it
/// hands over the lead.
pub struct ReplicationLink {
    pub(crate) state: Arc<ReplicationState>,
    pub(crate) follow: Receiver<Follow>,
    pub(crate) publisher: Publisher,
    /// Records between checkpoints, the cluster's (from its genesis).
    pub(crate) checkpoint_every: u64,
    /// Snapshots this node writes while it leads are published for new nodes.
    pub(crate) publish_snapshots: Option<crate::replica::SnapshotPublisher>,
    /// A new node that started from the cluster's published snapshot taken after this record
    /// copies the records up to it into its journal without applying them (its engine already
    /// holds their effect); 0 for a node that applies every record.
    pub(crate) copy_through: u64,
}

/// Checkpoints the replica took and the leader's writer has not yet sent.
const CHECKPOINTS_WAITING_MAX: usize = 64;

/// Bounds and cadence of the engine thread.
#[derive(Clone, Copy, Debug)]
pub struct SequencerConfig {
    /// Requests waiting for the engine; a full queue answers RESOURCE_EXHAUSTED.
    pub queue_capacity: usize,
    /// Most commands journaled in one write batch.
    pub batch_commands_max: usize,
    /// A snapshot is written after this many commands (and at shutdown).
    pub snapshot_every_commands: u64,
    /// Batches buffered for each market-data or audit subscriber before it lags.
    pub published_batches_max: usize,
}

impl Default for SequencerConfig {
    fn default() -> Self {
        SequencerConfig {
            queue_capacity: 65_536,
            batch_commands_max: 4_096,
            snapshot_every_commands: 1_000_000,
            published_batches_max: 4_096,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SequencerError {
    #[error("the engine queue is full; retry later")]
    Overloaded,
    #[error("the engine has stopped")]
    Stopped,
    /// A standby (or a leader that has lost the lease) takes no writes.
    #[error("this node does not lead the exchange")]
    NotLeader { leader: Option<String> },
    /// The replicated journal has not acknowledged the last append (no quorum).
    #[error("the replicated journal has no quorum")]
    NoQuorum,
}

enum Request {
    Command {
        command: Command,
        request_id: String,
        reply: oneshot::Sender<Arc<Applied>>,
    },
    /// Finish what is queued before this, snapshot, and stop.
    Stop,
}

pub use crate::record::PublishedBatch;

/// A cheap, cloneable handle to the engine thread.
#[derive(Clone)]
pub struct Sequencer {
    requests: Sender<Request>,
    /// Queries go to the read replica, not the engine.
    queries: Sender<Query>,
    published: broadcast::Sender<PublishedBatch>,
    /// The last sequence number synced to the journal: audit feeds wake on it and read the
    /// journal, so a reader never holds the engine's batches.
    journaled: tokio::sync::watch::Receiver<u64>,
    /// Present in a replicated exchange: whether this node leads, and where the leader is.
    replication: Option<Arc<ReplicationState>>,
}

/// Owns the engine thread; `shutdown` drains it, writes a final snapshot and joins it.
pub struct EngineThread {
    handle: Option<JoinHandle<Result<EngineReport, JournalError>>>,
    exited: Option<oneshot::Receiver<()>>,
    /// Resolves when the journal writer fails (or, at shutdown, stops).
    writer_failure: Option<oneshot::Receiver<()>>,
    /// Resolves when the read replica diverges from the engine.
    replica_failure: Option<oneshot::Receiver<()>>,
}

/// What the engine thread reports when it stops.
#[derive(Debug)]
pub struct EngineReport {
    pub last_sequence: u64,
    pub state_hash: mutua_engine::StateHash,
}

impl Sequencer {
    /// Starts the engine thread on a recovered engine. `last_sequence` is the journal's end and
    /// `snapshot_sequence` the newest stored snapshot's (0 for none): the snapshot cadence counts
    /// from there, across restarts, so that crashes more frequent than the cadence still leave
    /// snapshots behind and replay stays bounded.
    pub fn start(
        engine: Engine,
        journal: Journal,
        last_sequence: u64,
        snapshot_sequence: u64,
        config: SequencerConfig,
        metrics: Arc<Metrics>,
        replication: Option<ReplicationLink>,
    ) -> (Sequencer, EngineThread) {
        let state = replication.as_ref().map(|link| link.state.clone());
        let (checkpoints_sender, checkpoints) = crossbeam_channel::bounded(CHECKPOINTS_WAITING_MAX);
        let (follow, appender, checkpoints, publish_snapshots, copy_through) = match replication {
            Some(link) => (
                Some(link.follow),
                Some((link.publisher, checkpoints)),
                Some(crate::replica::Checkpoints {
                    every: link.checkpoint_every,
                    to_writer: checkpoints_sender,
                }),
                link.publish_snapshots,
                link.copy_through,
            ),
            None => (None, None, None, None, 0),
        };
        let (requests, inbox) = crossbeam_channel::bounded(config.queue_capacity);
        let (published, _) = broadcast::channel(config.published_batches_max);
        let publisher = published.clone();
        // A node copying the cluster's journal under a published snapshot starts with an empty
        // journal: what it has journaled is what it has copied.
        let journal_end = if copy_through > 0 { 0 } else { last_sequence };
        let (journaled_sender, journaled) = tokio::sync::watch::channel(journal_end);
        let (exit_signal, exited) = oneshot::channel();
        let (writer_failed, writer_failure) = oneshot::channel();
        let replica = crate::replica::spawn(
            ReplicaStart {
                engine: engine.clone(),
                sequence: last_sequence,
                snapshot_sequence,
                snapshot_every_commands: config.snapshot_every_commands,
                queries_max: config.queue_capacity,
                metrics: metrics.clone(),
                checkpoints,
                publish_snapshots,
            },
            journal.snapshot_writer(),
        );
        let Replica {
            batches: to_replica,
            queries,
            failure: replica_failure,
            thread: replica_thread,
        } = replica;
        let thread_state = state.clone();
        let handle = std::thread::Builder::new()
            .name("mutua-engine".into())
            .spawn(move || {
                let last_time = engine.now();
                let (writer, writer_thread) = spawn_journal_writer(
                    journal,
                    to_replica,
                    publisher,
                    journaled_sender,
                    metrics,
                    writer_failed,
                    appender,
                );
                let mut thread = Loop {
                    copy_through,
                    copied: 0,
                    leading: follow.is_none(),
                    follow,
                    state: thread_state,
                    engine,
                    writer: Some(writer),
                    writer_thread: Some(writer_thread),
                    replica_thread: Some(replica_thread),
                    sequence: last_sequence,
                    config,
                    last_time,
                };
                let result = thread.run(inbox);
                let _ = exit_signal.send(());
                result
            })
            .expect("spawn the engine thread");
        (
            Sequencer {
                requests,
                queries,
                published,
                journaled,
                replication: state,
            },
            EngineThread {
                handle: Some(handle),
                exited: Some(exited),
                writer_failure: Some(writer_failure),
                replica_failure: Some(replica_failure),
            },
        )
    }

    /// Applies a command and returns once it is journaled. `request_id` is the client's, from
    /// which the command id was derived: it is journaled with the command for the audit feed.
    pub async fn submit(
        &self,
        command: Command,
        request_id: String,
    ) -> Result<Arc<Applied>, SequencerError> {
        self.submit_pipelined(command, request_id)?
            .await
            .map_err(|_| self.unanswered())
    }

    /// Why a queued command was dropped unanswered: the node stopped leading, or stopped.
    pub fn unanswered(&self) -> SequencerError {
        match &self.replication {
            Some(state) if state.role() != Role::Leader => SequencerError::NotLeader {
                leader: state.leader(),
            },
            _ => SequencerError::Stopped,
        }
    }

    /// This node's part in a replicated exchange, if it is one.
    pub fn replication(&self) -> Option<&Arc<ReplicationState>> {
        self.replication.as_ref()
    }

    /// Queues a command now; the receiver resolves once it is journaled. Receivers of one
    /// caller resolve in the order the commands were queued.
    pub fn submit_pipelined(
        &self,
        command: Command,
        request_id: String,
    ) -> Result<oneshot::Receiver<Arc<Applied>>, SequencerError> {
        let (reply, receiver) = oneshot::channel();
        self.send(Request::Command {
            command,
            request_id,
            reply,
        })?;
        Ok(receiver)
    }

    /// Runs `f` on the read replica against acknowledged state, including everything
    /// acknowledged or published before the call.
    pub async fn query<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Engine) -> R + Send + 'static,
    ) -> Result<R, SequencerError> {
        let (reply, receiver) = oneshot::channel();
        self.queries
            .try_send(Box::new(move |engine| {
                let _ = reply.send(f(engine));
            }))
            .map_err(|error| match error {
                TrySendError::Full(_) => SequencerError::Overloaded,
                TrySendError::Disconnected(_) => SequencerError::Stopped,
            })?;
        receiver.await.map_err(|_| SequencerError::Stopped)
    }

    /// Every batch journaled from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<PublishedBatch> {
        self.published.subscribe()
    }

    /// The last sequence number synced to the journal, changing after every batch.
    pub fn journaled(&self) -> tokio::sync::watch::Receiver<u64> {
        self.journaled.clone()
    }

    /// Asks the engine thread to finish everything queued so far, write a snapshot and stop.
    /// Later submissions fail with `Stopped`. Waits for room in the queue if it is full.
    pub fn stop(&self) {
        let _ = self.requests.send(Request::Stop);
    }

    fn send(&self, request: Request) -> Result<(), SequencerError> {
        if let Some(state) = &self.replication {
            match state.role() {
                Role::Leader if state.stalled() => return Err(SequencerError::NoQuorum),
                Role::Leader => {}
                Role::Standby => {
                    return Err(SequencerError::NotLeader {
                        leader: state.leader(),
                    })
                }
                Role::Deposed => return Err(SequencerError::NotLeader { leader: None }),
            }
        }
        self.requests
            .try_send(request)
            .map_err(|error| match error {
                TrySendError::Full(_) => SequencerError::Overloaded,
                TrySendError::Disconnected(_) => SequencerError::Stopped,
            })
    }
}

impl EngineThread {
    /// Completes when the engine thread has stopped, for whatever reason (a stop request, or a
    /// journal write that failed). The server shuts down when it does.
    pub fn exited(&mut self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let exited = self.exited.take();
        let writer_failure = self.writer_failure.take();
        let replica_failure = self.replica_failure.take();
        async move {
            let exited = async move {
                if let Some(exited) = exited {
                    let _ = exited.await;
                }
            };
            let writer_failure = async move {
                match writer_failure {
                    Some(failure) => {
                        let _ = failure.await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let replica_failure = async move {
                match replica_failure {
                    Some(failure) => {
                        let _ = failure.await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = exited => {}
                _ = writer_failure => {}
                _ = replica_failure => {}
            }
        }
    }

    /// Waits for the engine thread to finish. It finishes when every `Sequencer` handle is
    /// dropped, after applying, journaling and answering everything already queued.
    pub fn join(mut self) -> Result<EngineReport, JournalError> {
        let handle = self.handle.take().expect("joined once");
        handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

/// One engine batch, applied and waiting to be journaled.
struct HandedBatch {
    applied: Vec<Arc<Applied>>,
    replies: Vec<(oneshot::Sender<Arc<Applied>>, Arc<Applied>)>,
    counts: BatchCounts,
    queue_depth: usize,
    /// A write of the cluster's this node follows: written alone, and its chain must come out
    /// as the leader's.
    followed: Option<Followed>,
    /// Copied under the snapshot this node started from: journaled, and neither replayed by
    /// the replica nor published (their effect is already in the state).
    copied: bool,
}

struct Followed {
    stream_sequence: u64,
    trailer: crate::chain::ChainHash,
    /// The leader's checkpoints the write carried.
    checkpoints: Vec<Checkpoint>,
}

/// What the engine thread hands its journal writer.
enum ToWriter {
    Batch(Box<HandedBatch>),
    /// From here on, append to the replicated stream after its message `after`.
    Lead {
        after: u64,
    },
}

/// An engine batch that takes longer than this to apply is logged (at debug).
const SLOW_BATCH: std::time::Duration = std::time::Duration::from_millis(5);

/// Engine batches handed to the writer and not yet taken by it; the engine thread waits beyond.
const BATCHES_HANDED_MAX: usize = 4;
/// Most records the writer puts in one synced write when batches have queued up.
const RECORDS_PER_WRITE_MAX: usize = 16_384;

/// The journal writer thread: takes the engine's batches in order, writes whatever has queued up
/// in one synced write (appended to the replicated stream first, when the exchange is
/// replicated and this node leads), then marks it journaled, hands it to the read replica,
/// replies and publishes. A failed write stops it (handing back the error); the engine thread
/// then stops too, and nothing after the last successful write is ever acknowledged.
fn spawn_journal_writer(
    journal: Journal,
    replica: Sender<ToReplica>,
    publisher: broadcast::Sender<PublishedBatch>,
    journaled: tokio::sync::watch::Sender<u64>,
    metrics: Arc<Metrics>,
    failed: oneshot::Sender<()>,
    replicated: Option<(Publisher, Receiver<Checkpoint>)>,
) -> (Sender<ToWriter>, JoinHandle<Result<Journal, JournalError>>) {
    let (sender, receiver) = crossbeam_channel::bounded::<ToWriter>(BATCHES_HANDED_MAX);
    let handle = std::thread::Builder::new()
        .name("mutua-journal".into())
        .spawn(move || {
            let writer = Writer {
                journal,
                replica: Some(replica),
                publisher,
                journaled,
                metrics,
                replicated,
                pending: None,
            };
            let result = writer.run(&receiver);
            if result.is_err() {
                // The server stops at once, without waiting for the next command to find the
                // writer gone.
                let _ = failed.send(());
            }
            result
        })
        .expect("spawn the journal writer");
    (sender, handle)
}

struct Writer {
    journal: Journal,
    /// Each batch goes to the replica before any of it is answered or published; if the
    /// replica has stopped (it diverged, and the server is stopping), it is not waited on.
    replica: Option<Sender<ToReplica>>,
    publisher: broadcast::Sender<PublishedBatch>,
    journaled: tokio::sync::watch::Sender<u64>,
    metrics: Arc<Metrics>,
    /// The replicated stream's appender, in a replicated exchange, and the checkpoints the
    /// replica took, which the leader's next append carries.
    replicated: Option<(Publisher, Receiver<Checkpoint>)>,
    /// A hand-over taken while gathering a write that belongs to the next one.
    pending: Option<ToWriter>,
}

impl Writer {
    fn to_replica(&mut self, batch: PublishedBatch) {
        if let Some(to_replica) = &self.replica {
            if to_replica.send(ToReplica::Batch(batch)).is_err() {
                self.replica = None;
            }
        }
    }

    fn run(mut self, receiver: &Receiver<ToWriter>) -> Result<Journal, JournalError> {
        loop {
            let next = match self.pending.take() {
                Some(next) => next,
                None => match receiver.recv() {
                    Ok(next) => next,
                    Err(_) => break,
                },
            };
            let first = match next {
                ToWriter::Lead { after } => {
                    // What this node wrote as a standby is made durable before it leads.
                    self.journal.sync_wal()?;
                    if let Some((replicated, _)) = self.replicated.as_mut() {
                        replicated.lead_after(after);
                    }
                    continue;
                }
                ToWriter::Batch(batch) => batch,
            };
            let mut batches = vec![first];
            let began = std::time::Instant::now();
            let mut expected = Vec::new();
            if let Some(followed) = batches[0].followed.take() {
                expected = followed.checkpoints;
                // The cluster's write, written alone, unsynced (the cluster holds it), with
                // the stream message that carried it; its chain must be the leader's.
                let encoded = self
                    .journal
                    .encode(batches[0].applied.iter().map(|applied| applied.as_ref()))?;
                if let Some(encoded) = encoded {
                    if encoded.head != followed.trailer {
                        return Err(JournalError::Disagrees {
                            sequence: encoded.last,
                            why: "the audit chain written here differs from the leader's".into(),
                        });
                    }
                    self.journal
                        .commit(encoded, Some(followed.stream_sequence), false)?;
                }
            } else {
                let mut records = batches[0].applied.len();
                while records < RECORDS_PER_WRITE_MAX {
                    match receiver.try_recv() {
                        Ok(ToWriter::Batch(batch)) if batch.followed.is_none() => {
                            records += batch.applied.len();
                            batches.push(batch);
                        }
                        Ok(other) => {
                            self.pending = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                // Durable (and on a quorum of the cluster, when replicated) before anyone
                // hears of it.
                let encoded = self.journal.encode(
                    batches
                        .iter()
                        .flat_map(|batch| batch.applied.iter().map(|applied| applied.as_ref())),
                )?;
                if let Some(encoded) = encoded {
                    let stream_sequence = match self.replicated.as_mut() {
                        Some((replicated, checkpoints)) => {
                            let taken: Vec<Checkpoint> = checkpoints.try_iter().collect();
                            Some(replicated.append(&encoded, &taken)?)
                        }
                        None => None,
                    };
                    self.journal.commit(encoded, stream_sequence, true)?;
                }
            }
            self.publish(batches, began.elapsed());
            if let Some(to_replica) = &self.replica {
                for checkpoint in expected {
                    if to_replica.send(ToReplica::Expect(checkpoint)).is_err() {
                        break;
                    }
                }
            }
        }
        // Whatever a standby wrote unsynced is made durable before the final snapshot.
        self.journal.sync_wal()?;
        Ok(self.journal)
    }

    /// After a write: marks it journaled, hands it to the replica, replies and publishes.
    fn publish(&mut self, batches: Vec<Box<HandedBatch>>, synced: std::time::Duration) {
        if batches.iter().all(|batch| batch.copied) {
            if let Some(last) = batches
                .last()
                .and_then(|batch| batch.applied.last())
                .map(|applied| applied.sequence)
            {
                self.journaled.send_replace(last);
            }
            return;
        }
        let Some(last) = batches
            .iter()
            .filter_map(|batch| batch.applied.last())
            .map(|applied| applied.sequence)
            .next_back()
        else {
            // Nothing was handed over (the engine never hands an empty batch).
            return;
        };
        for batch in &batches {
            let through = batch
                .applied
                .last()
                .map_or(last, |applied| applied.sequence);
            self.metrics.record_batch(
                &batch.counts,
                batch.applied.len(),
                batch.queue_depth,
                synced,
                through,
            );
        }
        // Before any reply: a client that holds an acknowledgement of record N must find the
        // journal's end (`Audit.ChainHead`) at N or later.
        self.journaled.send_replace(last);
        // The replica takes each journal write whole: in a replicated exchange every node's
        // replica then sees the same batch boundaries and takes checkpoints at the same records.
        let write: Vec<Arc<Applied>> = batches
            .iter()
            .flat_map(|batch| batch.applied.iter().cloned())
            .collect();
        self.to_replica(Arc::new(write));
        for batch in batches {
            let HandedBatch {
                applied, replies, ..
            } = *batch;
            let applied = Arc::new(applied);
            for (reply, applied) in replies {
                let _ = reply.send(applied);
            }
            let _ = self.publisher.send(applied);
        }
    }
}

struct Loop {
    engine: Engine,
    /// Records to copy into the journal without applying them (see `ReplicationLink`).
    copy_through: u64,
    /// The last record copied so far.
    copied: u64,
    /// Whether this node takes commands: always, unless replicated and not (yet) leading.
    leading: bool,
    /// The cluster's writes, while this node follows a replicated exchange.
    follow: Option<Receiver<Follow>>,
    state: Option<Arc<ReplicationState>>,
    /// The journal writer thread, and the journal it hands back when it stops.
    writer: Option<Sender<ToWriter>>,
    writer_thread: Option<JoinHandle<Result<Journal, JournalError>>>,
    /// The read replica, which hands back the sequence of the newest snapshot it took.
    replica_thread: Option<JoinHandle<u64>>,
    sequence: u64,
    config: SequencerConfig,
    last_time: Timestamp,
}

impl Loop {
    fn run(&mut self, inbox: Receiver<Request>) -> Result<EngineReport, JournalError> {
        let mut batch: Vec<Request> = Vec::with_capacity(self.config.batch_commands_max);
        let mut events = Vec::with_capacity(4_096);
        let mut stopping = false;
        while !stopping {
            if !self.leading {
                stopping = self.follow_next(&inbox, &mut events)?;
                continue;
            }
            let Ok(first) = inbox.recv() else { break };
            batch.push(first);
            while batch.len() < self.config.batch_commands_max {
                match inbox.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            if let Some(stop_at) = batch
                .iter()
                .position(|request| matches!(request, Request::Stop))
            {
                // Whatever was queued after the stop is dropped unanswered: its callers see
                // `Stopped`, and nothing of it was applied.
                batch.truncate(stop_at);
                stopping = true;
            }
            self.process(&mut batch, &mut events, inbox.len())?;
        }
        drop(inbox);
        // Stopped, or every handle is gone: the server has stopped accepting and drained. Let
        // the journal writer write and answer what it holds, the replica follow it to the end
        // and its snapshot writer finish, then write the final snapshot here, synchronously.
        let writer_result = self.stop_writer();
        let snapshot_sequence = self
            .replica_thread
            .take()
            .and_then(|replica| replica.join().ok())
            .unwrap_or(0);
        let mut journal = writer_result?;
        if self.sequence != snapshot_sequence {
            journal.write_snapshot(self.sequence, &self.engine)?;
        }
        Ok(EngineReport {
            last_sequence: self.sequence,
            state_hash: self.engine.state_hash(),
        })
    }

    /// The batch's time: the wall clock, never earlier than the previous batch's.
    fn stamp(&mut self) -> Timestamp {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos() as u64);
        self.last_time = wall.max(self.last_time);
        self.last_time
    }

    fn process(
        &mut self,
        batch: &mut Vec<Request>,
        events: &mut Vec<mutua_engine::Event>,
        queue_depth: usize,
    ) -> Result<(), JournalError> {
        let began = std::time::Instant::now();
        let began_cpu = crate::metrics::thread_cpu_time();
        let timestamp = self.stamp();
        let mut counts = BatchCounts::default();
        let mut applied_batch: Vec<Arc<Applied>> = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        for request in batch.drain(..) {
            match request {
                Request::Command {
                    command,
                    request_id,
                    reply,
                } => {
                    events.clear();
                    let outcome = self.engine.apply(&command, timestamp, events);
                    let mut accounts = Vec::new();
                    self.engine.accounts_after(events, &mut accounts);
                    counts.commands[kind_index(&command.kind)] += 1;
                    if let (Err(reason), None) = (outcome.result, outcome.replayed) {
                        counts.reject(reason);
                    }
                    self.sequence += 1;
                    debug_assert_eq!(
                        self.sequence,
                        self.engine.commands_applied(),
                        "journal and engine count commands alike"
                    );
                    let applied = Arc::new(Applied {
                        sequence: self.sequence,
                        timestamp,
                        request_id,
                        command,
                        outcome,
                        events: events.clone(),
                        accounts,
                    });
                    applied_batch.push(applied.clone());
                    replies.push((reply, applied));
                }
                Request::Stop => unreachable!("a stop request ends the batch before processing"),
            }
        }
        counts.apply = began.elapsed();
        counts.apply_cpu = crate::metrics::thread_cpu_time().saturating_sub(began_cpu);
        if counts.apply > SLOW_BATCH {
            tracing::debug!(
                commands = applied_batch.len(),
                apply_us = counts.apply.as_micros() as u64,
                on_core_us = counts.apply_cpu.as_micros() as u64,
                "slow engine batch"
            );
        }
        if !applied_batch.is_empty() {
            self.hand_over(HandedBatch {
                applied: applied_batch,
                replies,
                counts,
                queue_depth,
                followed: None,
                copied: false,
            })?;
        }
        Ok(())
    }

    /// While following a replicated exchange: applies the cluster's next write, or takes the
    /// lead, or stops. Commands that reach the engine meanwhile (sent just before this node
    /// stopped leading) are dropped unanswered: their callers hear that this node does not
    /// lead. Returns whether to stop.
    fn follow_next(
        &mut self,
        inbox: &Receiver<Request>,
        events: &mut Vec<mutua_engine::Event>,
    ) -> Result<bool, JournalError> {
        let Some(follow) = self.follow.clone() else {
            self.leading = true;
            return Ok(false);
        };
        crossbeam_channel::select! {
            recv(follow) -> input => match input {
                Ok(Follow::Batch { records, trailer, stream_sequence, checkpoints }) => {
                    let followed = Followed { stream_sequence, trailer, checkpoints };
                    self.apply_followed(records, followed, events)?;
                    Ok(false)
                }
                Ok(Follow::Lead { after }) => {
                    self.send_to_writer(ToWriter::Lead { after })?;
                    self.leading = true;
                    self.follow = None;
                    if let Some(state) = &self.state {
                        state.set_role(Role::Leader);
                    }
                    Ok(false)
                }
                // The follower stopped (the server is stopping, or it failed and said why).
                Err(_) => Ok(true),
            },
            recv(inbox) -> request => match request {
                Ok(Request::Command { .. }) => Ok(false),
                Ok(Request::Stop) | Err(_) => Ok(true),
            },
        }
    }

    /// Applies one write of the cluster's with this engine: each record in turn, at its own
    /// time, and its outcome, events and accounts must be the ones the leader journaled.
    fn apply_followed(
        &mut self,
        records: Vec<Applied>,
        followed: Followed,
        events: &mut Vec<mutua_engine::Event>,
    ) -> Result<(), JournalError> {
        if records
            .first()
            .is_some_and(|record| record.sequence <= self.copy_through)
        {
            return self.copy_followed(records, followed);
        }
        let began = std::time::Instant::now();
        let began_cpu = crate::metrics::thread_cpu_time();
        let mut counts = BatchCounts::default();
        let mut applied_batch = Vec::with_capacity(records.len());
        for record in records {
            if record.sequence != self.sequence + 1 {
                return Err(JournalError::Disagrees {
                    sequence: record.sequence,
                    why: format!(
                        "the cluster's next record is {} but this node's journal ends at {}",
                        record.sequence, self.sequence
                    ),
                });
            }
            events.clear();
            let outcome = self.engine.apply(&record.command, record.timestamp, events);
            let mut accounts = Vec::new();
            self.engine.accounts_after(events, &mut accounts);
            if outcome != record.outcome || *events != record.events || accounts != record.accounts
            {
                return Err(JournalError::Disagrees {
                    sequence: record.sequence,
                    why: "this node's engine gives another outcome or other events than the leader journaled".into(),
                });
            }
            counts.commands[kind_index(&record.command.kind)] += 1;
            self.sequence = record.sequence;
            self.last_time = self.last_time.max(record.timestamp);
            applied_batch.push(Arc::new(record));
        }
        counts.apply = began.elapsed();
        counts.apply_cpu = crate::metrics::thread_cpu_time().saturating_sub(began_cpu);
        if applied_batch.is_empty() {
            return Ok(());
        }
        self.hand_over(HandedBatch {
            applied: applied_batch,
            replies: Vec::new(),
            counts,
            queue_depth: 0,
            followed: Some(followed),
            copied: false,
        })
    }

    /// A write of the cluster's that the published snapshot this node started from already
    /// covers: journaled (its chain checked like any other), not applied.
    fn copy_followed(
        &mut self,
        records: Vec<Applied>,
        followed: Followed,
    ) -> Result<(), JournalError> {
        for record in &records {
            if record.sequence != self.copied + 1 || record.sequence > self.copy_through {
                return Err(JournalError::Disagrees {
                    sequence: record.sequence,
                    why: format!(
                        "copying the cluster's journal under the snapshot taken after record {}: expected record {} of a write that ends by then",
                        self.copy_through,
                        self.copied + 1
                    ),
                });
            }
            self.copied = record.sequence;
            self.last_time = self.last_time.max(record.timestamp);
        }
        self.hand_over(HandedBatch {
            applied: records.into_iter().map(Arc::new).collect(),
            replies: Vec::new(),
            counts: BatchCounts::default(),
            queue_depth: 0,
            followed: Some(followed),
            copied: true,
        })
    }

    /// Hands a batch to the journal writer (waiting while it holds `BATCHES_HANDED_MAX`).
    fn hand_over(&mut self, batch: HandedBatch) -> Result<(), JournalError> {
        self.send_to_writer(ToWriter::Batch(Box::new(batch)))
    }

    fn send_to_writer(&mut self, message: ToWriter) -> Result<(), JournalError> {
        let sent = match &self.writer {
            Some(writer) => writer.send(message).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            Err(self.writer_failure())
        }
    }

    /// Lets the journal writer finish and hands back its journal.
    fn stop_writer(&mut self) -> Result<Journal, JournalError> {
        drop(self.writer.take());
        match self.writer_thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            None => Err(JournalError::WriterStopped),
        }
    }

    /// Why the journal writer stopped (a failed write): the engine thread stops with it.
    fn writer_failure(&mut self) -> JournalError {
        match self.stop_writer() {
            Err(error) => error,
            Ok(_) => JournalError::WriterStopped,
        }
    }
}
