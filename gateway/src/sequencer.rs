//! The one engine thread. It owns the engine, drains the bounded command queue in batches,
//! stamps each command with a sequence number and the batch's time, applies them, and hands the
//! batch to the journal writer thread, which encodes it, extends the audit chain, writes it in
//! one synced write, and only then replies and publishes. So the engine applies batch n + 1
//! while batch n is being encoded and synced, and nothing is acknowledged or published before
//! it is durable. Queries and snapshots see only acknowledged state: before running them the
//! engine thread waits until the writer has synced everything it was handed.
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SequencerError {
    #[error("the engine queue is full; retry later")]
    Overloaded,
    #[error("the engine has stopped")]
    Stopped,
}

type Query = Box<dyn FnOnce(&Engine) + Send>;

enum Request {
    Command {
        command: Command,
        request_id: String,
        reply: oneshot::Sender<Arc<Applied>>,
    },
    Query(Query),
    /// Finish what is queued before this, snapshot, and stop.
    Stop,
}

/// Every journaled batch, in sequence order, for market data and audit streams.
pub type PublishedBatch = Arc<Vec<Arc<Applied>>>;

/// A cheap, cloneable handle to the engine thread.
#[derive(Clone)]
pub struct Sequencer {
    requests: Sender<Request>,
    published: broadcast::Sender<PublishedBatch>,
    /// The last sequence number synced to the journal: audit feeds wake on it and read the
    /// journal, so a reader never holds the engine's batches.
    journaled: tokio::sync::watch::Receiver<u64>,
}

/// Owns the engine thread; `shutdown` drains it, writes a final snapshot and joins it.
pub struct EngineThread {
    handle: Option<JoinHandle<Result<EngineReport, JournalError>>>,
    exited: Option<oneshot::Receiver<()>>,
    /// Resolves when the journal writer fails (or, at shutdown, stops).
    writer_failure: Option<oneshot::Receiver<()>>,
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
    ) -> (Sequencer, EngineThread) {
        let (requests, inbox) = crossbeam_channel::bounded(config.queue_capacity);
        let (published, _) = broadcast::channel(config.published_batches_max);
        let publisher = published.clone();
        let (journaled_sender, journaled) = tokio::sync::watch::channel(last_sequence);
        let (exit_signal, exited) = oneshot::channel();
        let (writer_failed, writer_failure) = oneshot::channel();
        let handle = std::thread::Builder::new()
            .name("mutua-engine".into())
            .spawn(move || {
                let last_time = engine.now();
                let (snapshots, snapshot_writer) = spawn_snapshot_writer(journal.snapshot_writer());
                let (writer, writer_thread) = spawn_journal_writer(
                    journal,
                    publisher,
                    journaled_sender,
                    metrics,
                    writer_failed,
                );
                let mut thread = Loop {
                    engine,
                    writer: Some(writer),
                    writer_thread: Some(writer_thread),
                    snapshots: Some(snapshots),
                    snapshot_writer: Some(snapshot_writer),
                    sequence: last_sequence,
                    config,
                    last_time,
                    snapshot_sequence,
                    snapshot_skip_logged: false,
                };
                let result = thread.run(inbox);
                let _ = exit_signal.send(());
                result
            })
            .expect("spawn the engine thread");
        (
            Sequencer {
                requests,
                published,
                journaled,
            },
            EngineThread {
                handle: Some(handle),
                exited: Some(exited),
                writer_failure: Some(writer_failure),
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
            .map_err(|_| SequencerError::Stopped)
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

    /// Runs `f` on the engine thread against acknowledged state.
    pub async fn query<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Engine) -> R + Send + 'static,
    ) -> Result<R, SequencerError> {
        let (reply, receiver) = oneshot::channel();
        self.send(Request::Query(Box::new(move |engine| {
            let _ = reply.send(f(engine));
        })))?;
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
            tokio::select! {
                _ = exited => {}
                _ = writer_failure => {}
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

/// The snapshot writer thread: proves each snapshot it is handed by restoring an engine from it
/// (which checks every invariant), then encodes, hashes and syncs it. A snapshot that fails the
/// proof stops the exchange, since the state it copies is wrong; a failed write is only logged,
/// since the journal alone still rebuilds the state.
fn spawn_snapshot_writer(
    writer: crate::journal::SnapshotWriter,
) -> (
    crossbeam_channel::Sender<(u64, mutua_engine::Snapshot)>,
    JoinHandle<()>,
) {
    let (sender, receiver) = crossbeam_channel::bounded::<(u64, mutua_engine::Snapshot)>(1);
    let handle = std::thread::Builder::new()
        .name("mutua-snapshots".into())
        .spawn(move || {
            for (sequence, snapshot) in receiver {
                let began = std::time::Instant::now();
                if let Err(violation) = mutua_engine::Engine::from_snapshot(snapshot.clone()) {
                    tracing::error!(sequence, %violation, "the engine state breaks an invariant; stopping");
                    std::process::abort();
                }
                match writer.write(sequence, &snapshot) {
                    Ok(hash) => tracing::info!(sequence, %hash, write_ms = began.elapsed().as_millis() as u64, "snapshot written"),
                    Err(error) => tracing::error!(sequence, %error, "snapshot not written"),
                }
            }
        })
        .expect("spawn the snapshot writer");
    (sender, handle)
}

/// What the engine thread hands the journal writer.
enum ToWriter {
    Batch(Box<HandedBatch>),
    /// Answered once everything handed over before it is journaled.
    Barrier(Sender<()>),
}

/// One engine batch, applied and waiting to be journaled.
struct HandedBatch {
    applied: Vec<Arc<Applied>>,
    replies: Vec<(oneshot::Sender<Arc<Applied>>, Arc<Applied>)>,
    counts: BatchCounts,
    queue_depth: usize,
}

/// Engine batches handed to the writer and not yet taken by it; the engine thread waits beyond.
const BATCHES_HANDED_MAX: usize = 4;
/// Most records the writer puts in one synced write when batches have queued up.
const RECORDS_PER_WRITE_MAX: usize = 16_384;

/// The journal writer thread: takes the engine's batches in order, writes whatever has queued up
/// in one synced write, then marks it journaled, replies and publishes. A failed write stops it
/// (handing back the error); the engine thread then stops too, and nothing after the last
/// successful write is ever acknowledged.
fn spawn_journal_writer(
    mut journal: Journal,
    publisher: broadcast::Sender<PublishedBatch>,
    journaled: tokio::sync::watch::Sender<u64>,
    metrics: Arc<Metrics>,
    failed: oneshot::Sender<()>,
) -> (Sender<ToWriter>, JoinHandle<Result<Journal, JournalError>>) {
    let (sender, receiver) = crossbeam_channel::bounded::<ToWriter>(BATCHES_HANDED_MAX);
    let handle = std::thread::Builder::new()
        .name("mutua-journal".into())
        .spawn(move || {
            let mut pending: Option<ToWriter> = None;
            loop {
                let first = match pending.take() {
                    Some(message) => message,
                    None => match receiver.recv() {
                        Ok(message) => message,
                        Err(_) => return Ok(journal),
                    },
                };
                let mut batches = match first {
                    ToWriter::Barrier(done) => {
                        let _ = done.send(());
                        continue;
                    }
                    ToWriter::Batch(batch) => vec![batch],
                };
                let mut records = batches[0].applied.len();
                while records < RECORDS_PER_WRITE_MAX {
                    match receiver.try_recv() {
                        Ok(ToWriter::Batch(batch)) => {
                            records += batch.applied.len();
                            batches.push(batch);
                        }
                        Ok(barrier) => {
                            pending = Some(barrier);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                // Durable before anyone hears of it.
                let began = std::time::Instant::now();
                let written = journal.append(
                    batches
                        .iter()
                        .flat_map(|batch| batch.applied.iter().map(|applied| applied.as_ref())),
                );
                if let Err(error) = written {
                    // The server stops at once, without waiting for the next command to find
                    // the writer gone.
                    let _ = failed.send(());
                    return Err(error);
                }
                let synced = began.elapsed();
                let Some(last) = batches
                    .iter()
                    .filter_map(|batch| batch.applied.last())
                    .map(|applied| applied.sequence)
                    .next_back()
                else {
                    // Nothing was handed over (the engine never hands an empty batch).
                    continue;
                };
                for batch in &batches {
                    let through = batch
                        .applied
                        .last()
                        .map_or(last, |applied| applied.sequence);
                    metrics.record_batch(
                        &batch.counts,
                        batch.applied.len(),
                        batch.queue_depth,
                        synced,
                        through,
                    );
                }
                // Before any reply: a client that holds an acknowledgement of record N must find
                // the journal's end (`Audit.ChainHead`) at N or later.
                journaled.send_replace(last);
                for batch in batches {
                    let HandedBatch {
                        applied, replies, ..
                    } = *batch;
                    for (reply, applied) in replies {
                        let _ = reply.send(applied);
                    }
                    let _ = publisher.send(Arc::new(applied));
                }
            }
        })
        .expect("spawn the journal writer");
    (sender, handle)
}

struct Loop {
    engine: Engine,
    /// The journal writer thread, and the journal it hands back when it stops.
    writer: Option<Sender<ToWriter>>,
    writer_thread: Option<JoinHandle<Result<Journal, JournalError>>>,
    /// Snapshots taken on this thread go to the writer thread to be encoded, hashed and synced;
    /// at most one waits, and a snapshot due while one is pending is skipped.
    snapshots: Option<crossbeam_channel::Sender<(u64, mutua_engine::Snapshot)>>,
    snapshot_writer: Option<JoinHandle<()>>,
    sequence: u64,
    config: SequencerConfig,
    last_time: Timestamp,
    /// The sequence of the newest snapshot taken (stored or handed to the writer).
    snapshot_sequence: u64,
    /// A due snapshot was skipped because the writer was busy, and that was logged: log it once
    /// per episode, not once per batch.
    snapshot_skip_logged: bool,
}

impl Loop {
    fn run(&mut self, inbox: Receiver<Request>) -> Result<EngineReport, JournalError> {
        let mut batch: Vec<Request> = Vec::with_capacity(self.config.batch_commands_max);
        let mut events = Vec::with_capacity(4_096);
        let mut stopping = false;
        while !stopping {
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
        // the journal writer write and answer what it holds, and the snapshot writer finish its
        // snapshot, then write the final snapshot here, synchronously.
        let mut journal = self.stop_writer()?;
        drop(self.snapshots.take());
        if let Some(writer) = self.snapshot_writer.take() {
            let _ = writer.join();
        }
        if self.sequence != self.snapshot_sequence {
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
        let timestamp = self.stamp();
        let mut counts = BatchCounts::default();
        let mut applied_batch: Vec<Arc<Applied>> = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        let mut queries = Vec::new();
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
                Request::Query(query) => queries.push(query),
                Request::Stop => unreachable!("a stop request ends the batch before processing"),
            }
        }
        if !applied_batch.is_empty() {
            self.hand_over(HandedBatch {
                applied: applied_batch,
                replies,
                counts,
                queue_depth,
            })?;
        }
        if !queries.is_empty() {
            // Queries see acknowledged state only.
            self.wait_journaled()?;
            for query in queries {
                query(&self.engine);
            }
        }
        if self.sequence - self.snapshot_sequence >= self.config.snapshot_every_commands {
            // A snapshot never gets ahead of the journal it stands for.
            self.wait_journaled()?;
            self.take_snapshot()?;
        }
        Ok(())
    }

    /// Hands a batch to the journal writer (waiting while it holds `BATCHES_HANDED_MAX`).
    fn hand_over(&mut self, batch: HandedBatch) -> Result<(), JournalError> {
        let sent = match &self.writer {
            Some(writer) => writer.send(ToWriter::Batch(Box::new(batch))).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            Err(self.writer_failure())
        }
    }

    /// Waits until everything handed to the journal writer is journaled and answered.
    fn wait_journaled(&mut self) -> Result<(), JournalError> {
        let (done, journaled) = crossbeam_channel::bounded(1);
        let answered = match &self.writer {
            Some(writer) => {
                writer.send(ToWriter::Barrier(done)).is_ok() && journaled.recv().is_ok()
            }
            None => false,
        };
        if answered {
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

    /// Copies the state (the only part that must happen here) and hands the copy to the writer
    /// thread, which proves it and stores it.
    fn take_snapshot(&mut self) -> Result<(), JournalError> {
        let Some(snapshots) = &self.snapshots else {
            return Ok(());
        };
        if snapshots.is_full() {
            if !self.snapshot_skip_logged {
                tracing::warn!(
                    sequence = self.sequence,
                    "the previous snapshot is still being written; this one waits for it"
                );
                self.snapshot_skip_logged = true;
            }
            return Ok(());
        }
        self.snapshot_skip_logged = false;
        let began = std::time::Instant::now();
        let snapshot = self.engine.snapshot();
        tracing::debug!(
            sequence = self.sequence,
            copy_ms = began.elapsed().as_millis() as u64,
            "snapshot taken"
        );
        if snapshots.try_send((self.sequence, snapshot)).is_ok() {
            self.snapshot_sequence = self.sequence;
        }
        Ok(())
    }
}
