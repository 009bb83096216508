//! The read replica: a second engine, on its own thread, that applies every batch after the
//! journal writer has synced it, exactly as a restart would replay it. It answers every query
//! and takes every periodic snapshot, so the engine thread never waits for a sync before a read
//! and never copies its state: its only work is applying commands.
//!
//! Reads see acknowledged state, and everything acknowledged or published before the read was
//! asked: the journal writer hands a batch here before it replies to or publishes any of it, and
//! a query runs only after every batch handed over before the query arrived has been applied.
//!
//! Applying each command a second time checks determinism as it goes: an outcome or events
//! different from the engine's stop the server and name the sequence, because a restart would
//! replay to this state, not to the one acknowledged.

use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use mutua_engine::Engine;
use tokio::sync::oneshot;

use crate::journal::SnapshotWriter;
use crate::record::PublishedBatch;

/// A read-only closure run against acknowledged state.
pub(crate) type Query = Box<dyn FnOnce(&Engine) + Send>;

/// Journaled batches waiting for the replica; beyond this the journal writer waits. At a few
/// hundred to a few thousand commands per batch this is well over a second of full load, so
/// only a snapshot copy of a very large state makes the writer wait.
pub(crate) const BATCHES_WAITING_MAX: usize = 1_024;

/// What the journal writer hands the replica, in journal order.
pub(crate) enum ToReplica {
    /// A synced batch (in a replicated exchange, one whole journal write: every node then sees
    /// the same batch boundaries, so they take checkpoints at the same records).
    Batch(PublishedBatch),
    /// The leader's state hash at one of its checkpoints, to compare with this node's own.
    Expect(Checkpoint),
}

/// The state hash after record `sequence`.
pub(crate) type Checkpoint = (u64, mutua_engine::StateHash);

/// Checkpoints of a replicated exchange: at the end of the first journal write at or past each
/// multiple of `every` records, every node hashes its state; the leader's hashes travel in the
/// stream and each standby compares them with its own.
pub(crate) struct Checkpoints {
    pub(crate) every: u64,
    /// This node's own checkpoints, to send to the journal writer (the leader's appends carry
    /// them).
    pub(crate) to_writer: Sender<Checkpoint>,
}

/// Hands each snapshot written (the record it was taken after, its hash and the stored record)
/// onwards: a replicated leader publishes it for new nodes.
pub(crate) type SnapshotPublisher = Box<dyn Fn(u64, mutua_engine::StateHash, Vec<u8>) + Send>;

/// Own checkpoints remembered for comparison with the leader's.
const CHECKPOINTS_KEPT_MAX: usize = 64;

/// The ends of the replica that the engine thread, the journal writer and the gateway hold.
pub(crate) struct Replica {
    /// The journal writer's: every synced batch, in order.
    pub(crate) batches: Sender<ToReplica>,
    /// The gateway's: queries, bounded like the engine's queue.
    pub(crate) queries: Sender<Query>,
    /// Resolves if the replica stops on its own (it diverged from the engine).
    pub(crate) failure: oneshot::Receiver<()>,
    /// Hands back the sequence of the newest snapshot taken when the writer's end is dropped.
    pub(crate) thread: JoinHandle<u64>,
}

/// Where the replica starts and how often it snapshots.
pub(crate) struct ReplicaStart {
    /// A copy of the engine as recovered, at `sequence`.
    pub(crate) engine: Engine,
    pub(crate) sequence: u64,
    /// The newest stored snapshot's sequence (0 for none): the cadence counts from there.
    pub(crate) snapshot_sequence: u64,
    pub(crate) snapshot_every_commands: u64,
    pub(crate) queries_max: usize,
    pub(crate) metrics: std::sync::Arc<crate::metrics::Metrics>,
    pub(crate) checkpoints: Option<Checkpoints>,
    pub(crate) publish_snapshots: Option<SnapshotPublisher>,
}

pub(crate) fn spawn(start: ReplicaStart, snapshot_writer: SnapshotWriter) -> Replica {
    let (batches, batch_inbox) = crossbeam_channel::bounded(BATCHES_WAITING_MAX);
    let (queries, query_inbox) = crossbeam_channel::bounded(start.queries_max);
    let (failed, failure) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("mutua-replica".into())
        .spawn(move || {
            let (snapshots, snapshot_thread) =
                spawn_snapshot_writer(snapshot_writer, start.publish_snapshots);
            let mut follower = Follower {
                engine: start.engine,
                sequence: start.sequence,
                snapshot_sequence: start.snapshot_sequence,
                snapshot_every_commands: start.snapshot_every_commands,
                snapshots,
                snapshot_skip_logged: false,
                events: Vec::with_capacity(4_096),
                metrics: start.metrics,
                checkpoints: start.checkpoints,
                own_checkpoints: std::collections::VecDeque::new(),
            };
            follower.metrics.replica_applied(follower.sequence);
            if let Err(sequence) = follower.run(batch_inbox, query_inbox) {
                tracing::error!(
                    sequence,
                    "the replica's replay of a journaled command, or its state hash at a \
                     checkpoint, differs from what was acknowledged: stopping"
                );
                let _ = failed.send(());
            }
            let Follower {
                snapshots,
                snapshot_sequence,
                ..
            } = follower;
            drop(snapshots);
            let _ = snapshot_thread.join();
            snapshot_sequence
        })
        .expect("spawn the replica");
    Replica {
        batches,
        queries,
        failure,
        thread,
    }
}

struct Follower {
    engine: Engine,
    sequence: u64,
    snapshot_sequence: u64,
    snapshot_every_commands: u64,
    /// Snapshots taken here go to the snapshot writer to be proved, encoded and synced; at most
    /// one waits, and a snapshot due while one is pending waits for the next batch.
    snapshots: Sender<(u64, mutua_engine::Snapshot)>,
    /// A due snapshot was put off because the writer was busy, and that was logged: once per
    /// episode, not once per batch.
    snapshot_skip_logged: bool,
    events: Vec<mutua_engine::Event>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    checkpoints: Option<Checkpoints>,
    own_checkpoints: std::collections::VecDeque<Checkpoint>,
}

impl Follower {
    /// Follows batches until the journal writer's end is dropped; `Err(sequence)` on divergence.
    fn run(
        &mut self,
        batches: Receiver<ToReplica>,
        mut queries: Receiver<Query>,
    ) -> Result<(), u64> {
        loop {
            crossbeam_channel::select! {
                recv(batches) -> batch => match batch {
                    Ok(batch) => self.take(batch)?,
                    Err(_) => return Ok(()),
                },
                recv(queries) -> query => match query {
                    Ok(query) => {
                        // Everything handed over before the query arrived is applied first.
                        for _ in 0..batches.len() {
                            match batches.try_recv() {
                                Ok(batch) => self.take(batch)?,
                                Err(_) => break,
                            }
                        }
                        query(&self.engine);
                    }
                    // Every gateway handle is gone; batches may still come until the writer stops.
                    Err(_) => queries = crossbeam_channel::never(),
                },
            }
        }
    }

    fn take(&mut self, handed: ToReplica) -> Result<(), u64> {
        match handed {
            ToReplica::Batch(batch) => self.follow(&batch),
            ToReplica::Expect((sequence, leader)) => {
                match self
                    .own_checkpoints
                    .iter()
                    .find(|(own, _)| *own == sequence)
                {
                    Some((_, own)) if *own != leader => {
                        tracing::error!(sequence, %leader, %own, "this node's state hash at a checkpoint differs from the leader's");
                        Err(sequence)
                    }
                    Some(_) => {
                        tracing::debug!(sequence, "state hash agrees with the leader's");
                        self.metrics.checkpoint_agreed(sequence);
                        Ok(())
                    }
                    // Taken before this node started, or forgotten: nothing to compare.
                    None => Ok(()),
                }
            }
        }
    }

    fn follow(&mut self, batch: &PublishedBatch) -> Result<(), u64> {
        let before = self.sequence;
        for applied in batch.iter() {
            self.events.clear();
            let outcome = self
                .engine
                .apply(&applied.command, applied.timestamp, &mut self.events);
            self.sequence += 1;
            if outcome != applied.outcome
                || self.events != applied.events
                || self.sequence != applied.sequence
            {
                return Err(applied.sequence);
            }
        }
        self.metrics.replica_applied(self.sequence);
        if let Some(checkpoints) = &self.checkpoints {
            let every = checkpoints.every.max(1);
            if self.sequence / every > before / every {
                let hash = self.engine.state_hash();
                let _ = checkpoints.to_writer.try_send((self.sequence, hash));
                if self.own_checkpoints.len() == CHECKPOINTS_KEPT_MAX {
                    self.own_checkpoints.pop_front();
                }
                self.own_checkpoints.push_back((self.sequence, hash));
            }
        }
        if self.sequence - self.snapshot_sequence >= self.snapshot_every_commands {
            self.take_snapshot();
        }
        Ok(())
    }

    fn take_snapshot(&mut self) {
        if self.snapshots.is_full() {
            if !self.snapshot_skip_logged {
                tracing::warn!(
                    sequence = self.sequence,
                    "the previous snapshot is still being written; this one waits for it"
                );
                self.snapshot_skip_logged = true;
            }
            return;
        }
        self.snapshot_skip_logged = false;
        let began = std::time::Instant::now();
        let snapshot = self.engine.snapshot();
        tracing::debug!(
            sequence = self.sequence,
            copy_ms = began.elapsed().as_millis() as u64,
            "snapshot taken by the replica"
        );
        if self.snapshots.try_send((self.sequence, snapshot)).is_ok() {
            self.snapshot_sequence = self.sequence;
        }
    }
}

/// The snapshot writer thread: proves each snapshot it is handed by restoring an engine from it
/// (which checks every invariant), then encodes, hashes and syncs it. A snapshot that fails the
/// proof stops the exchange, since the state it copies is wrong; a failed write is only logged,
/// since the journal alone still rebuilds the state.
fn spawn_snapshot_writer(
    writer: SnapshotWriter,
    publish: Option<SnapshotPublisher>,
) -> (Sender<(u64, mutua_engine::Snapshot)>, JoinHandle<()>) {
    let (sender, receiver) = crossbeam_channel::bounded::<(u64, mutua_engine::Snapshot)>(1);
    let handle = std::thread::Builder::new()
        .name("mutua-snapshots".into())
        .spawn(move || {
            for (sequence, snapshot) in receiver {
                let began = std::time::Instant::now();
                if let Err(violation) = Engine::from_snapshot(snapshot.clone()) {
                    tracing::error!(sequence, %violation, "the engine state breaks an invariant; stopping");
                    std::process::abort();
                }
                match writer.write_sealed(sequence, &snapshot) {
                    Ok((hash, record)) => {
                        tracing::info!(sequence, %hash, write_ms = began.elapsed().as_millis() as u64, "snapshot written");
                        if let Some(publish) = &publish {
                            publish(sequence, hash, record);
                        }
                    }
                    Err(error) => tracing::error!(sequence, %error, "snapshot not written"),
                }
            }
        })
        .expect("spawn the snapshot writer");
    (sender, handle)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mutua_engine::{
        Command, CommandId, CommandKind, MarketConfig, Outcome, RejectReason, Role,
        GENESIS_OPERATOR,
    };

    use super::*;
    use crate::journal::Applied;

    fn follower(engine: Engine) -> (Follower, Receiver<(u64, mutua_engine::Snapshot)>) {
        let (snapshots, taken) = crossbeam_channel::bounded(1);
        let follower = Follower {
            engine,
            sequence: 0,
            snapshot_sequence: 0,
            snapshot_every_commands: 2,
            snapshots,
            snapshot_skip_logged: false,
            events: Vec::new(),
            metrics: Arc::new(crate::metrics::Metrics::new()),
            checkpoints: None,
            own_checkpoints: std::collections::VecDeque::new(),
        };
        (follower, taken)
    }

    /// What the engine thread would hand over for `count` registrations, applied to `engine`.
    fn batch(engine: &mut Engine, first: u64, count: u64) -> PublishedBatch {
        let applied = (first..first + count)
            .map(|sequence| {
                let command = Command {
                    id: CommandId(u128::from(sequence)),
                    participant: GENESIS_OPERATOR,
                    kind: CommandKind::RegisterParticipant {
                        role: Role::Contributor,
                        name: format!("member-{sequence}"),
                    },
                };
                let mut events = Vec::new();
                let outcome = engine.apply(&command, 1_000, &mut events);
                Arc::new(Applied {
                    sequence,
                    timestamp: 1_000,
                    request_id: format!("r-{sequence}"),
                    command,
                    outcome,
                    events,
                    accounts: Vec::new(),
                })
            })
            .collect();
        Arc::new(applied)
    }

    #[test]
    fn follows_the_engine_and_snapshots_on_cadence() {
        let mut leader = Engine::new(MarketConfig::default());
        let (mut follower, taken) = follower(leader.clone());
        follower.follow(&batch(&mut leader, 1, 3)).unwrap();
        assert_eq!(follower.engine.state_hash(), leader.state_hash());
        let (sequence, snapshot) = taken.try_recv().expect("a snapshot was due after 2");
        assert_eq!(sequence, 3);
        assert_eq!(snapshot.hash(), leader.state_hash());
    }

    #[test]
    fn a_different_outcome_is_divergence_at_its_sequence() {
        let mut leader = Engine::new(MarketConfig::default());
        let (mut follower, _taken) = follower(leader.clone());
        let batch = batch(&mut leader, 1, 3);
        let mut forged: Vec<Arc<Applied>> = batch.iter().cloned().collect();
        let mut second = (*forged[1]).clone();
        second.outcome = Outcome::fresh(Err(RejectReason::RoleNotAllowed));
        forged[1] = Arc::new(second);
        assert_eq!(follower.follow(&Arc::new(forged)), Err(2));
    }

    #[test]
    fn a_query_sees_every_batch_handed_over_before_it() {
        let mut leader = Engine::new(MarketConfig::default());
        let (mut follower, _taken) = follower(leader.clone());
        follower.snapshot_every_commands = u64::MAX;
        let (batches, batch_inbox) = crossbeam_channel::bounded(16);
        let (queries, query_inbox) = crossbeam_channel::bounded::<Query>(16);
        // Batches are queued before the query; the query must not run on a state without them.
        for first in [1, 11, 21] {
            batches
                .send(ToReplica::Batch(batch(&mut leader, first, 10)))
                .unwrap();
        }
        let (seen, seen_inbox) = crossbeam_channel::bounded(1);
        queries
            .send(Box::new(move |engine: &Engine| {
                seen.send(engine.commands_applied()).unwrap();
            }))
            .unwrap();
        drop(queries);
        let thread = std::thread::spawn(move || {
            let result = follower.run(batch_inbox, query_inbox);
            (result, follower.engine.state_hash())
        });
        assert_eq!(seen_inbox.recv().unwrap(), 30);
        drop(batches);
        let (result, hash) = thread.join().unwrap();
        assert_eq!(result, Ok(()));
        assert_eq!(hash, leader.state_hash());
    }

    #[test]
    fn checkpoints_are_taken_at_the_same_records_and_a_different_leader_hash_is_divergence() {
        let mut leader = Engine::new(MarketConfig::default());
        let (mut follower, _taken) = follower(leader.clone());
        follower.snapshot_every_commands = u64::MAX;
        let (to_writer, from_replica) = crossbeam_channel::bounded(16);
        follower.checkpoints = Some(Checkpoints {
            every: 5,
            to_writer,
        });
        // Writes of 3 records: 1-3, 4-6 (crosses 5), 7-9, 10-12 (crosses 10).
        for first in [1, 4, 7, 10] {
            follower.follow(&batch(&mut leader, first, 3)).unwrap();
            if first == 4 {
                assert_eq!(from_replica.try_recv().unwrap().0, 6);
            }
        }
        let (sequence, hash) = from_replica.try_recv().expect("a checkpoint at 12");
        assert_eq!(sequence, 12);
        assert_eq!(hash, leader.state_hash());
        assert!(from_replica.try_recv().is_err(), "no other checkpoint");
        // The leader's hash at 12 agrees; another hash at 12 is divergence named by 12; a
        // checkpoint this node never took is not compared.
        assert_eq!(follower.take(ToReplica::Expect((12, hash))), Ok(()));
        assert_eq!(
            follower.take(ToReplica::Expect((12, mutua_engine::StateHash([7; 32])))),
            Err(12)
        );
        assert_eq!(
            follower.take(ToReplica::Expect((3, mutua_engine::StateHash([7; 32])))),
            Ok(())
        );
    }
}
