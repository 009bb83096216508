//! A node's side of the stream while it does not lead: follow every message, reassemble each
//! journal write, hand it to the engine thread (which applies it with the same engine and checks
//! every outcome and event), and watch the lease. When the lease is free, take it, apply
//! everything the stream holds, fence the stream with a `leader` message and tell the engine
//! thread to lead; then renew the lease until this process stops or another node holds it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::kv::{CreateErrorKind, UpdateErrorKind};
use async_nats::jetstream::message::PublishMessage;
use futures::StreamExt;

use super::{header, Cluster, Follow, LeaseHolder, ReplicationState, Role};
use super::{HEADER_FIRST, HEADER_KIND, HEADER_LAST, HEADER_PART, LEASE_KEY};
use super::{KIND_BATCH, KIND_GENESIS, KIND_LEADER, SUBJECT};

/// Most parts one journal write is split into (a write is at most 16,384 records).
const PARTS_MAX: usize = 1 << 16;

pub struct FollowerStart {
    pub(crate) cluster: Cluster,
    pub(crate) state: Arc<ReplicationState>,
    pub(crate) to_engine: crossbeam_channel::Sender<Follow>,
    /// The last stream message this node's journal holds (0: none).
    pub(crate) applied_through: u64,
}

/// A journal write whose parts are still arriving.
struct Partial {
    checkpoints: Vec<(u64, mutua_engine::StateHash)>,
    first: u64,
    last: u64,
    parts: usize,
    received: usize,
    bytes: Vec<u8>,
}

struct Follower {
    cluster: Cluster,
    state: Arc<ReplicationState>,
    to_engine: crossbeam_channel::Sender<Follow>,
    /// The next stream message wanted.
    next: u64,
    partial: Option<Partial>,
    messages: Option<pull::Ordered>,
}

/// Follows the stream until this node leads, then keeps its lease. Returns when another node
/// has taken the lease from this leader (the role is then `Deposed`), or with an error that
/// stops the node (a write of the cluster's that does not decode or apply).
pub(crate) async fn run(start: FollowerStart) -> anyhow::Result<()> {
    let lease = start.cluster.config.lease;
    let mut follower = Follower {
        cluster: start.cluster,
        state: start.state,
        to_engine: start.to_engine,
        next: start.applied_through + 1,
        partial: None,
        messages: None,
    };
    let mut tick = tokio::time::interval(Duration::from_millis(100).min(lease / 4));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A standby leaves a free lease to the node started to lead for one lease period.
    let may_lead_from = if follower.cluster.config.standby {
        Instant::now() + lease
    } else {
        Instant::now()
    };
    let revision = loop {
        if follower.messages.is_none() {
            follower.open().await;
        }
        let Some(messages) = follower.messages.as_mut() else {
            tick.tick().await;
            continue;
        };
        tokio::select! {
            message = messages.next() => match message {
                Some(Ok(message)) => follower.handle(message)?,
                Some(Err(error)) => {
                    tracing::warn!(%error, next = follower.next, "following the replicated journal; reopening");
                    follower.messages = None;
                }
                None => follower.messages = None,
            },
            _ = tick.tick() => {
                if let Some(revision) = follower.try_lease(Instant::now() >= may_lead_from).await {
                    match follower.promote(revision).await? {
                        Some(revision) => break revision,
                        None => continue,
                    }
                }
            }
        }
    };
    follower.messages = None;
    follower.keep_lease(revision).await;
    Ok(())
}

impl Follower {
    async fn open(&mut self) {
        let consumer = self
            .cluster
            .stream
            .create_consumer(pull::OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: self.next,
                },
                ..Default::default()
            })
            .await;
        match consumer {
            Ok(consumer) => match consumer.messages().await {
                Ok(messages) => self.messages = Some(messages),
                Err(error) => tracing::warn!(%error, "opening the replicated journal"),
            },
            Err(error) => tracing::warn!(%error, "opening the replicated journal"),
        }
    }

    /// One message of the stream, in order.
    fn handle(&mut self, message: async_nats::jetstream::Message) -> anyhow::Result<()> {
        let sequence = message
            .info()
            .map_err(|error| anyhow::anyhow!("a stream message without its sequence: {error}"))?
            .stream_sequence;
        if sequence < self.next {
            return Ok(());
        }
        anyhow::ensure!(
            sequence == self.next,
            "the replicated journal skipped from message {} to {sequence}",
            self.next
        );
        self.next = sequence + 1;
        let headers = message.headers.clone().unwrap_or_default();
        match header(&headers, HEADER_KIND) {
            Some(KIND_GENESIS) => {}
            Some(KIND_LEADER) => {
                // A new leader: whatever a deposed one left half-written is not the journal.
                self.partial = None;
                if let Ok(holder) = serde_json::from_slice::<LeaseHolder>(&message.payload) {
                    self.state.set_leader(Some(holder.address));
                }
            }
            Some(KIND_BATCH) => self.part(sequence, &headers, &message.payload)?,
            other => anyhow::bail!("stream message {sequence} is of unknown kind {other:?}"),
        }
        self.state.set_stream_sequence(sequence);
        Ok(())
    }

    fn part(
        &mut self,
        sequence: u64,
        headers: &async_nats::HeaderMap,
        payload: &[u8],
    ) -> anyhow::Result<()> {
        let number = |name: &str| header(headers, name).and_then(|value| value.parse::<u64>().ok());
        let (Some(first), Some(last)) = (number(HEADER_FIRST), number(HEADER_LAST)) else {
            anyhow::bail!("stream message {sequence} lacks its record numbers");
        };
        let Some((index, parts)) = header(headers, HEADER_PART)
            .and_then(|part| part.split_once('/'))
            .and_then(|(index, parts)| Some((index.parse::<usize>().ok()?, parts.parse().ok()?)))
        else {
            anyhow::bail!("stream message {sequence} lacks its part number");
        };
        anyhow::ensure!(
            parts > 0 && parts <= PARTS_MAX && index < parts,
            "stream message {sequence} says it is part {index} of {parts}"
        );
        if index == 0 {
            let checkpoints = match header(headers, super::HEADER_CHECKPOINTS) {
                Some(text) => super::parse_checkpoints(text).ok_or_else(|| {
                    anyhow::anyhow!("stream message {sequence} carries malformed checkpoints")
                })?,
                None => Vec::new(),
            };
            self.partial = Some(Partial {
                checkpoints,
                first,
                last,
                parts,
                received: 0,
                bytes: Vec::with_capacity(payload.len().saturating_mul(parts.min(16))),
            });
        }
        let Some(partial) = self.partial.as_mut() else {
            // The rest of a write whose start this node never saw whole: a deposed leader's.
            return Ok(());
        };
        if partial.first != first || partial.received != index || partial.parts != parts {
            self.partial = None;
            return Ok(());
        }
        partial.bytes.extend_from_slice(payload);
        partial.received += 1;
        if partial.received < partial.parts {
            return Ok(());
        }
        let Some(whole) = self.partial.take() else {
            return Ok(());
        };
        let (records, trailer) = crate::journal::decode_batch(whole.first, &whole.bytes)
            .map_err(|error| anyhow::anyhow!("stream message {sequence}: {error}"))?;
        anyhow::ensure!(
            records.last().map(|record| record.sequence) == Some(whole.last),
            "stream message {sequence} says it ends at record {} but holds others",
            whole.last
        );
        let follow = Follow::Batch {
            records,
            trailer,
            stream_sequence: sequence,
            checkpoints: whole.checkpoints,
        };
        let sent = tokio::task::block_in_place(|| self.to_engine.send(follow));
        anyhow::ensure!(sent.is_ok(), "the engine thread has stopped");
        Ok(())
    }

    /// Takes the lease if nobody holds it and `may_lead` (or this node's name still does, from
    /// before a restart); notes the leader's address otherwise.
    async fn try_lease(&mut self, may_lead: bool) -> Option<u64> {
        let value: bytes::Bytes = serde_json::to_vec(&self.cluster.holder()).ok()?.into();
        match self.cluster.lease_holder().await {
            Ok(Some((holder, revision))) => {
                if holder.node == self.cluster.config.node {
                    return self
                        .cluster
                        .lease
                        .update(LEASE_KEY, value, revision)
                        .await
                        .ok();
                }
                self.state.set_leader(Some(holder.address));
                None
            }
            Ok(None) if !may_lead => None,
            Ok(None) => match self.cluster.lease.create(LEASE_KEY, value).await {
                Ok(revision) => Some(revision),
                Err(error) if error.kind() == CreateErrorKind::AlreadyExists => None,
                Err(error) => {
                    tracing::debug!(%error, "taking the lease");
                    None
                }
            },
            Err(error) => {
                tracing::debug!(%error, "reading the lease");
                None
            }
        }
    }

    /// With the lease taken: applies the stream to its end, fences it, and hands the engine
    /// thread the lead. `None` if the stream could not be fenced (the lease is then left to
    /// lapse, or to be taken again on the next tick).
    async fn promote(&mut self, mut revision: u64) -> anyhow::Result<Option<u64>> {
        let began = Instant::now();
        let lease = self.cluster.config.lease;
        let mut renewed = Instant::now();
        while began.elapsed() < lease * 4 {
            if renewed.elapsed() > lease / 4 {
                match renew(&self.cluster, revision).await {
                    Renewal::Held(next) => {
                        revision = next;
                        renewed = Instant::now();
                    }
                    Renewal::Lost => return Ok(None),
                    Renewal::Unanswered => {}
                }
            }
            let last = match self.cluster.stream.get_info().await {
                Ok(info) => info.state.last_sequence,
                Err(error) => {
                    tracing::debug!(%error, "reading the stream's end");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            while self.next <= last {
                if self.messages.is_none() {
                    self.open().await;
                }
                let Some(messages) = self.messages.as_mut() else {
                    break;
                };
                match tokio::time::timeout(lease / 4, messages.next()).await {
                    Ok(Some(Ok(message))) => self.handle(message)?,
                    Ok(_) => self.messages = None,
                    Err(_) => break,
                }
            }
            if self.next <= last {
                continue;
            }
            let fence = PublishMessage::build()
                .payload(serde_json::to_vec(&self.cluster.holder())?.into())
                .header(HEADER_KIND, KIND_LEADER)
                .expected_last_sequence(last);
            let published = async {
                self.cluster
                    .jetstream
                    .send_publish(SUBJECT, fence)
                    .await?
                    .await
            }
            .await;
            match published {
                Ok(ack) => {
                    self.next = ack.sequence + 1;
                    self.partial = None;
                    self.state.set_stream_sequence(ack.sequence);
                    self.state
                        .set_leader(Some(self.cluster.config.advertise.clone()));
                    let lead = Follow::Lead {
                        after: ack.sequence,
                    };
                    let sent = tokio::task::block_in_place(|| self.to_engine.send(lead));
                    anyhow::ensure!(sent.is_ok(), "the engine thread has stopped");
                    tracing::info!(
                        node = %self.cluster.config.node,
                        after = ack.sequence,
                        ms = began.elapsed().as_millis() as u64,
                        "this node leads the exchange"
                    );
                    return Ok(Some(revision));
                }
                // Something was appended after the end read: apply it and try again.
                Err(error) if error.kind() == PublishErrorKind::WrongLastSequence => {}
                Err(error) => {
                    tracing::debug!(%error, "fencing the stream");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        tracing::warn!("could not fence the replicated journal in time; following again");
        Ok(None)
    }

    /// Renews the lease while this node leads; returns once another node holds it.
    async fn keep_lease(&mut self, mut revision: u64) {
        let lease = self.cluster.config.lease;
        let mut tick = tokio::time::interval(lease / 5);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.state.role() == Role::Deposed {
                return;
            }
            match renew(&self.cluster, revision).await {
                Renewal::Held(next) => revision = next,
                Renewal::Unanswered => {}
                Renewal::Lost => {
                    tracing::error!("another node holds the lease: this node no longer leads");
                    self.state.set_role(Role::Deposed);
                    return;
                }
            }
        }
    }
}

/// Renews the lease held at `revision`.
async fn renew(cluster: &Cluster, revision: u64) -> Renewal {
    let Ok(value) = serde_json::to_vec(&cluster.holder()) else {
        return Renewal::Unanswered;
    };
    let value: bytes::Bytes = value.into();
    match cluster
        .lease
        .update(LEASE_KEY, value.clone(), revision)
        .await
    {
        Ok(next) => Renewal::Held(next),
        Err(error) if error.kind() == UpdateErrorKind::WrongLastRevision => {
            // Lapsed (nobody took it: take it again) or taken by another node.
            // Lost only when another node is seen holding it; a create that finds the key
            // taken, or no answer, is asked again at the next renewal.
            match cluster.lease_holder().await {
                Ok(None) => match cluster.lease.create(LEASE_KEY, value).await {
                    Ok(next) => Renewal::Held(next),
                    Err(_) => Renewal::Unanswered,
                },
                Ok(Some((holder, next))) if holder == cluster.holder() => {
                    // An earlier renewal was taken though its answer was lost.
                    Renewal::Held(next)
                }
                Ok(Some(_)) => Renewal::Lost,
                Err(_) => Renewal::Unanswered,
            }
        }
        Err(error) => {
            tracing::debug!(%error, "renewing the lease");
            Renewal::Unanswered
        }
    }
}

enum Renewal {
    Held(u64),
    Lost,
    Unanswered,
}
