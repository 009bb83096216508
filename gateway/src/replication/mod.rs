//! The journal replicated on NATS JetStream: every journal write of the leader is appended to one
//! stream (three replicas) before it is written here and acknowledged, standbys follow the
//! stream and apply it with the same engine, and one lease decides who leads.
//!
//! The stream, `MUTUA_JOURNAL` on subject `mutua.journal`, holds three kinds of message
//! (header `Mutua-Kind`):
//!
//! - `genesis` (always message 1): the market configuration and the withholding key every node's
//!   audit chain is salted with, so that every node's journal and chain are byte for byte the
//!   leader's;
//! - `batch`: one journal write, the very bytes `Journal::encode` made (records, then the chain
//!   hash after them), numbered by `Mutua-First`/`Mutua-Last` and split into parts of at most
//!   `PART_BYTES` (`Mutua-Part: i/n`) so a write never exceeds the server's message size;
//! - `leader`: written by a node when it takes the lease, with its address: it fences the stream.
//!
//! **One writer.** Every append carries the stream's last sequence as the appender last saw it
//! (`Nats-Expected-Last-Sequence`), so the stream takes a message only from a node that has seen
//! every earlier one. A node that takes the lease first applies everything up to the stream's
//! end and then appends its `leader` message: from then on a deposed leader's next append is
//! refused, its writer stops, and the node stops serving. The lease itself (KV bucket
//! `mutua_leader`, key `leader`, holding the node's name and address) only decides who tries:
//! it is taken with `create` (only if absent), renewed with `update` at the revision held, and
//! lapses when not renewed for `--lease-ms` (the bucket's max age). Safety never rests on the
//! lease's timing: it rests on the fenced appends.

mod follower;
mod publisher;

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::HeaderMap;
use mutua_engine::MarketConfig;
use serde::{Deserialize, Serialize};

use crate::chain::ChainHash;
use crate::record::Applied;

pub(crate) use follower::run as run_follower;
pub use follower::FollowerStart;
pub use publisher::Publisher;

/// The stream every node appends to and follows.
pub const STREAM: &str = "MUTUA_JOURNAL";
pub const SUBJECT: &str = "mutua.journal";
/// The KV bucket holding the lease (a stream `KV_mutua_leader`).
pub const LEASE_BUCKET: &str = "mutua_leader";
pub const LEASE_KEY: &str = "leader";
/// The object store bucket (a stream `OBJ_mutua_snapshots`) holding the leader's newest snapshot
/// for new nodes, as object `SNAPSHOT_OBJECT`.
pub const SNAPSHOT_BUCKET: &str = "mutua_snapshots";
pub const SNAPSHOT_OBJECT: &str = "newest";

pub(crate) const HEADER_KIND: &str = "Mutua-Kind";
pub(crate) const HEADER_FIRST: &str = "Mutua-First";
pub(crate) const HEADER_LAST: &str = "Mutua-Last";
pub(crate) const HEADER_PART: &str = "Mutua-Part";
/// On a write's first part: the leader's checkpoints since its previous write, as
/// `record:state-hash-hex` separated by commas.
pub(crate) const HEADER_CHECKPOINTS: &str = "Mutua-Checkpoints";
pub(crate) const KIND_GENESIS: &str = "genesis";
pub(crate) const KIND_BATCH: &str = "batch";
pub(crate) const KIND_LEADER: &str = "leader";

/// Most payload bytes in one stream message (the server's default limit is 1 MiB; headers and
/// framing fit in the rest).
pub(crate) const PART_BYTES: usize = 1_000_000;

/// How a node takes part in a replicated exchange.
#[derive(Clone, Debug)]
pub struct ReplicationConfig {
    /// NATS server URLs, comma separated.
    pub urls: String,
    /// This node's name (in the lease and the logs).
    pub node: String,
    /// The address clients reach this node's gRPC service at (told to clients of standbys).
    pub advertise: String,
    /// Replicas of the stream and the lease (3 in production).
    pub replicas: usize,
    /// How long a lease lasts without renewal.
    pub lease: Duration,
    /// Start as a standby and take the lease only once it lapses (otherwise take it at start if
    /// nobody holds it).
    pub standby: bool,
    /// How long to wait for each reply of the cluster.
    pub request_timeout: Duration,
    /// How this node proves itself to the NATS servers (read from a private file).
    pub credentials: Option<NatsCredentials>,
    /// Talk TLS to the NATS servers, trusting this certificate authority (PEM).
    pub tls_ca: Option<std::path::PathBuf>,
}

/// A NATS user and password, or a token.
#[derive(Clone)]
pub enum NatsCredentials {
    UserPassword { user: String, password: String },
    Token(String),
}

impl std::fmt::Debug for NatsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NatsCredentials::UserPassword { user, .. } => write!(f, "user {user}"),
            NatsCredentials::Token(_) => write!(f, "a token"),
        }
    }
}

impl NatsCredentials {
    /// Reads `user:password` or a token from `path`, a file others may not read: whoever holds
    /// these can read every record and append to the journal.
    pub fn read(path: &std::path::Path) -> anyhow::Result<NatsCredentials> {
        use anyhow::Context as _;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .with_context(|| format!("reading --nats-credentials {}", path.display()))?
                .permissions()
                .mode();
            anyhow::ensure!(
                mode & 0o077 == 0,
                "--nats-credentials {} is open to other users (mode {:o}); make it private with `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading --nats-credentials {}", path.display()))?;
        let text = text.trim();
        anyhow::ensure!(
            !text.is_empty() && !text.contains('\n'),
            "--nats-credentials {} must hold one line: `user:password` or a token",
            path.display()
        );
        Ok(match text.split_once(':') {
            Some((user, password)) => NatsCredentials::UserPassword {
                user: user.to_string(),
                password: password.to_string(),
            },
            None => NatsCredentials::Token(text.to_string()),
        })
    }
}

/// A node's role as clients see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    /// Follows the stream: serves reads, answers writes with the leader's address.
    Standby = 0,
    /// Holds the lease and appends.
    Leader = 1,
    /// Was leader and learned another node leads now: serves nothing new, stops.
    Deposed = 2,
}

/// What the gateway, the engine thread and the journal writer share about replication.
pub struct ReplicationState {
    role: AtomicU8,
    /// The leader's advertised address, as last seen in the lease.
    leader: Mutex<Option<String>>,
    /// The cluster has not acknowledged the last append yet (no quorum, or a leader change of
    /// the stream): new writes are refused UNAVAILABLE until it does.
    stalled: AtomicBool,
    /// Resolves waiters when the role changes.
    changed: tokio::sync::watch::Sender<Role>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl ReplicationState {
    pub fn new(
        stream_sequence: u64,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Arc<ReplicationState> {
        metrics.replication_role(Role::Standby as i64);
        metrics.replication_stream_at(stream_sequence);
        Arc::new(ReplicationState {
            metrics,
            role: AtomicU8::new(Role::Standby as u8),
            leader: Mutex::new(None),
            stalled: AtomicBool::new(false),
            changed: tokio::sync::watch::channel(Role::Standby).0,
        })
    }

    pub fn role(&self) -> Role {
        match self.role.load(Ordering::Acquire) {
            1 => Role::Leader,
            2 => Role::Deposed,
            _ => Role::Standby,
        }
    }

    pub(crate) fn set_role(&self, role: Role) {
        self.role.store(role as u8, Ordering::Release);
        self.metrics.replication_role(role as i64);
        self.changed.send_replace(role);
    }

    /// Waits for a change of role.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<Role> {
        self.changed.subscribe()
    }

    pub fn leader(&self) -> Option<String> {
        self.leader.lock().map_or(None, |leader| leader.clone())
    }

    pub(crate) fn set_leader(&self, address: Option<String>) {
        if let Ok(mut leader) = self.leader.lock() {
            *leader = address;
        }
    }

    pub fn stalled(&self) -> bool {
        self.stalled.load(Ordering::Acquire)
    }

    pub(crate) fn set_stalled(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::Release);
    }

    /// The stream message this node has applied or appended through (for the metrics).
    pub(crate) fn set_stream_sequence(&self, sequence: u64) {
        self.metrics.replication_stream_at(sequence);
    }
}

/// What the follower hands the engine thread.
pub(crate) enum Follow {
    /// One journal write of the leader's, decoded, with the chain hash stored after it and the
    /// stream message (its last part) that carried it.
    Batch {
        records: Vec<Applied>,
        trailer: ChainHash,
        stream_sequence: u64,
        /// The leader's checkpoints (record, state hash) the write carried.
        checkpoints: Vec<(u64, mutua_engine::StateHash)>,
    },
    /// This node has taken the lease, applied everything the stream holds and fenced it at
    /// `after`: lead from there.
    Lead { after: u64 },
}

/// The lease's value: who leads and where clients reach it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct LeaseHolder {
    pub node: String,
    pub address: String,
}

/// The genesis message: what every node of the exchange must agree on before it applies a
/// record.
#[derive(Serialize, Deserialize)]
struct Genesis {
    config: Vec<u8>,
    withholding_key: [u8; 32],
    /// Records between checkpoints, where every node hashes its state and standbys compare
    /// their hash with the leader's.
    checkpoint_every: u64,
}

/// What every node adopts from the stream's genesis.
pub struct ClusterGenesis {
    pub withholding_key: [u8; 32],
    pub checkpoint_every: u64,
}

/// A connection to the cluster, with the stream and the lease bucket made ready.
#[derive(Clone)]
pub struct Cluster {
    pub(crate) jetstream: jetstream::Context,
    pub(crate) stream: stream::Stream,
    pub(crate) lease: jetstream::kv::Store,
    pub(crate) snapshots: jetstream::object_store::ObjectStore,
    pub(crate) config: ReplicationConfig,
}

impl Cluster {
    /// Connects, creating the stream and the lease bucket if they do not exist yet. Waits up to
    /// `patience` for the cluster to answer (JetStream needs a few seconds after its servers
    /// start).
    pub async fn connect(config: ReplicationConfig, patience: Duration) -> anyhow::Result<Cluster> {
        use anyhow::Context as _;
        let servers = config
            .urls
            .split(',')
            .map(|url| url.trim().parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("--replicate {}", config.urls))?;
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("mutua {}", config.node))
            .retry_on_initial_connect();
        options = match config.credentials.clone() {
            Some(NatsCredentials::UserPassword { user, password }) => {
                options.user_and_password(user, password)
            }
            Some(NatsCredentials::Token(token)) => options.token(token),
            None => options,
        };
        if let Some(ca) = &config.tls_ca {
            options = options.require_tls(true).add_root_certificates(ca.clone());
        }
        let client = options
            .connect(servers)
            .await
            .with_context(|| format!("connecting to NATS at {}", config.urls))?;
        let mut jetstream = jetstream::new(client);
        jetstream.set_timeout(config.request_timeout);
        let began = std::time::Instant::now();
        loop {
            match Cluster::prepare(&jetstream, &config).await {
                Ok((stream, lease, snapshots)) => {
                    return Ok(Cluster {
                        jetstream,
                        stream,
                        lease,
                        snapshots,
                        config,
                    })
                }
                Err(error) if began.elapsed() < patience => {
                    tracing::info!(%error, "waiting for JetStream");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(error) => {
                    return Err(error).context("preparing the replicated journal on JetStream")
                }
            }
        }
    }

    async fn prepare(
        jetstream: &jetstream::Context,
        config: &ReplicationConfig,
    ) -> anyhow::Result<(
        stream::Stream,
        jetstream::kv::Store,
        jetstream::object_store::ObjectStore,
    )> {
        let stream = jetstream
            .get_or_create_stream(stream::Config {
                name: STREAM.into(),
                subjects: vec![SUBJECT.into()],
                num_replicas: config.replicas,
                storage: stream::StorageType::File,
                retention: stream::RetentionPolicy::Limits,
                discard: stream::DiscardPolicy::New,
                duplicate_window: Duration::from_secs(120),
                allow_direct: true,
                deny_delete: true,
                deny_purge: true,
                ..Default::default()
            })
            .await?;
        // The bucket's stream is made by hand, as the client would make it: the client's own
        // `create_key_value` reads account fields older servers do not send.
        let name = format!("KV_{LEASE_BUCKET}");
        if jetstream.get_stream(&name).await.is_err() {
            let made = jetstream
                .create_stream(stream::Config {
                    name: name.clone(),
                    subjects: vec![format!("$KV.{LEASE_BUCKET}.>")],
                    max_messages_per_subject: 1,
                    max_age: config.lease,
                    num_replicas: config.replicas,
                    storage: stream::StorageType::File,
                    discard: stream::DiscardPolicy::New,
                    allow_rollup: true,
                    deny_delete: true,
                    // Reads of the lease go through the bucket's leader: a follower's copy may
                    // be behind, and a node must not conclude from it that the lease is free or
                    // someone else's.
                    allow_direct: false,
                    ..Default::default()
                })
                .await;
            if let Err(error) = made {
                // Another node made it first.
                if jetstream.get_stream(&name).await.is_err() {
                    return Err(error.into());
                }
            }
        }
        let lease = jetstream.get_key_value(LEASE_BUCKET).await?;
        let snapshots = match jetstream.get_object_store(SNAPSHOT_BUCKET).await {
            Ok(store) => store,
            Err(_) => {
                let made = jetstream
                    .create_object_store(jetstream::object_store::Config {
                        bucket: SNAPSHOT_BUCKET.into(),
                        num_replicas: config.replicas,
                        storage: stream::StorageType::File,
                        ..Default::default()
                    })
                    .await;
                match made {
                    Ok(store) => store,
                    // Another node made it first.
                    Err(_) => jetstream.get_object_store(SNAPSHOT_BUCKET).await?,
                }
            }
        };
        Ok((stream, lease, snapshots))
    }

    /// The leader's newest published snapshot record, if there is one.
    pub async fn published_snapshot(&self) -> anyhow::Result<Option<Vec<u8>>> {
        use tokio::io::AsyncReadExt as _;
        let mut object = match self.snapshots.get(SNAPSHOT_OBJECT).await {
            Ok(object) => object,
            Err(error) if error.kind() == jetstream::object_store::GetErrorKind::NotFound => {
                return Ok(None)
            }
            Err(error) => return Err(error.into()),
        };
        let mut record = Vec::new();
        object.read_to_end(&mut record).await?;
        Ok(Some(record))
    }

    /// What publishes this node's snapshots for new nodes while it leads: each upload runs on
    /// the runtime, beside everything else, and replaces the previous one.
    pub(crate) fn snapshot_publisher(
        &self,
        state: Arc<ReplicationState>,
    ) -> crate::replica::SnapshotPublisher {
        let runtime = tokio::runtime::Handle::current();
        let store = self.snapshots.clone();
        Box::new(move |sequence, hash, record| {
            if state.role() != Role::Leader {
                return;
            }
            let store = store.clone();
            runtime.spawn(async move {
                let began = std::time::Instant::now();
                let mut reader = record.as_slice();
                match store.put(SNAPSHOT_OBJECT, &mut reader).await {
                    Ok(_) => tracing::info!(
                        sequence,
                        %hash,
                        bytes = record.len(),
                        ms = began.elapsed().as_millis() as u64,
                        "snapshot published for new nodes"
                    ),
                    Err(error) => tracing::warn!(sequence, %error, "snapshot not published"),
                }
            });
        })
    }

    /// The exchange's genesis: message 1 of the stream, written by the first node to start
    /// (with this node's configuration, withholding key and checkpoint cadence) if the stream
    /// is empty. Returns what every node must use; refuses a different market configuration.
    pub async fn genesis(
        &self,
        market: &MarketConfig,
        withholding_key: [u8; 32],
        checkpoint_every: u64,
    ) -> anyhow::Result<ClusterGenesis> {
        let config = postcard::to_allocvec(market)?;
        let mut stream = self.stream.clone();
        if stream.info().await?.state.messages == 0 {
            let genesis = postcard::to_allocvec(&Genesis {
                config: config.clone(),
                withholding_key,
                checkpoint_every,
            })?;
            let mut headers = HeaderMap::new();
            headers.insert(HEADER_KIND, KIND_GENESIS);
            // Two first nodes at once: the stream keeps one genesis (the same message id within
            // the duplicate window); the other node reads it below.
            headers.insert("Nats-Msg-Id", "mutua-genesis");
            let published = self
                .jetstream
                .publish_with_headers(SUBJECT, headers, genesis.into())
                .await?
                .await;
            if let Err(error) = published {
                tracing::warn!(%error, "the genesis message was not acknowledged; reading the stream's");
            }
        }
        let first = self.stream.get_raw_message(1).await.map_err(|error| {
            anyhow::anyhow!("reading the replicated journal's genesis (message 1): {error}")
        })?;
        anyhow::ensure!(
            header(&first.headers, HEADER_KIND) == Some(KIND_GENESIS),
            "message 1 of stream {STREAM} is not a Mutua genesis: the stream belongs to something else"
        );
        let genesis: Genesis = postcard::from_bytes(&first.payload)
            .map_err(|error| anyhow::anyhow!("the stream's genesis does not decode: {error}"))?;
        anyhow::ensure!(
            genesis.config == config,
            "the replicated exchange was created with another market configuration than this node's"
        );
        Ok(ClusterGenesis {
            withholding_key: genesis.withholding_key,
            checkpoint_every: genesis.checkpoint_every.max(1),
        })
    }

    /// Checks that this node's journal, which ends at record `last` with chain hash `head`
    /// after the batch stream message `stream_sequence` carried, is a prefix of the cluster's
    /// journal. Refuses, saying where, if it is not.
    pub async fn check_agreement(
        &self,
        last: u64,
        head: ChainHash,
        stream_sequence: u64,
    ) -> anyhow::Result<()> {
        if last == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            stream_sequence != 0,
            "this node's journal holds records 1..={last} that were never replicated (it was \
             written without --replicate): it is not a copy of the cluster's journal; start \
             this node with an empty data directory"
        );
        let message = self
            .stream
            .get_raw_message(stream_sequence)
            .await
            .map_err(|error| {
                anyhow::anyhow!(
                    "this node's journal ends with stream message {stream_sequence}, which the \
                     cluster does not hold ({error}): refusing to serve"
                )
            })?;
        let said_last = header(&message.headers, HEADER_LAST).and_then(|last| last.parse().ok());
        let tail = message
            .payload
            .len()
            .checked_sub(32)
            .map(|from| &message.payload[from..]);
        anyhow::ensure!(
            header(&message.headers, HEADER_KIND) == Some(KIND_BATCH)
                && said_last == Some(last)
                && tail == Some(&head[..]),
            "record {last}: this node's journal disagrees with the cluster's (stream message \
             {stream_sequence} ends at record {said_last:?} with another chain hash): refusing \
             to serve; move this node's data directory aside and start it empty to copy the \
             cluster's journal"
        );
        Ok(())
    }

    /// The lease's holder, if any holds it.
    pub(crate) async fn lease_holder(&self) -> anyhow::Result<Option<(LeaseHolder, u64)>> {
        match self.lease.entry(LEASE_KEY).await? {
            Some(entry) if entry.operation == jetstream::kv::Operation::Put => {
                let holder = serde_json::from_slice(&entry.value)?;
                Ok(Some((holder, entry.revision)))
            }
            _ => Ok(None),
        }
    }

    pub(crate) fn holder(&self) -> LeaseHolder {
        LeaseHolder {
            node: self.config.node.clone(),
            address: self.config.advertise.clone(),
        }
    }
}

/// Checkpoints as the header carries them.
pub(crate) fn format_checkpoints(checkpoints: &[(u64, mutua_engine::StateHash)]) -> String {
    checkpoints
        .iter()
        .map(|(sequence, hash)| format!("{sequence}:{hash}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The checkpoints a header carries; `None` if it is malformed.
pub(crate) fn parse_checkpoints(text: &str) -> Option<Vec<(u64, mutua_engine::StateHash)>> {
    text.split(',')
        .filter(|item| !item.is_empty())
        .map(|item| {
            let (sequence, hex) = item.split_once(':')?;
            if hex.len() != 64 {
                return None;
            }
            let mut hash = [0u8; 32];
            for (index, byte) in hash.iter_mut().enumerate() {
                *byte = u8::from_str_radix(hex.get(2 * index..2 * index + 2)?, 16).ok()?;
            }
            Some((sequence.parse().ok()?, mutua_engine::StateHash(hash)))
        })
        .collect()
}

/// A header's value.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|value| value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_survive_their_header_and_malformed_ones_are_refused() {
        let checkpoints = vec![
            (500, mutua_engine::StateHash([0xab; 32])),
            (1_000, mutua_engine::StateHash([0x01; 32])),
        ];
        let text = format_checkpoints(&checkpoints);
        assert_eq!(parse_checkpoints(&text), Some(checkpoints));
        assert_eq!(parse_checkpoints(""), Some(Vec::new()));
        for malformed in [
            "500".to_string(),
            "500:abcd".to_string(),
            format!("x:{}", "ab".repeat(32)),
            format!("500:{}", "zz".repeat(32)),
            // 64 bytes, but not 64 hex digits: a split inside a character must not panic.
            format!("500:{}é", "ab".repeat(31)),
            format!("500:a{}éb", "ab".repeat(30)),
        ] {
            assert_eq!(parse_checkpoints(&malformed), None, "{malformed}");
        }
    }
}
