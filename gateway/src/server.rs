//! `mutua serve`: opens the journal, recovers the engine, starts the engine thread and the gRPC
//! server, and on SIGINT/SIGTERM stops accepting, drains, syncs, snapshots and exits 0.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use mutua_engine::{MarketConfig, GENESIS_OPERATOR};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use crate::auth::{self, Auth};
use crate::journal::Journal;
use crate::limits::{Limits, LimitsConfig};
use crate::metrics::Metrics;
use crate::replication::{
    Cluster, FollowerStart, NatsCredentials, Publisher, ReplicationConfig, ReplicationState, Role,
};
use crate::sequencer::{EngineReport, ReplicationLink, Sequencer, SequencerConfig};
use std::sync::Arc;

/// Name of the file in the data directory that holds the operator's token (mode 0600).
pub const OPERATOR_TOKEN_FILE: &str = "operator.token";

#[derive(clap::Args, Clone, Debug)]
pub struct ServeArgs {
    /// A TOML file of serve options by their long names (`snapshot-every = 500000`); options on
    /// the command line win over it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Directory of the embedded RocksDB journal (created if missing).
    #[arg(long, env = "MUTUA_DATA", default_value = "./data")]
    pub data: PathBuf,
    /// Address to listen on; port 0 picks a free port (the bound address is printed).
    #[arg(long, env = "MUTUA_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Write a snapshot after this many commands.
    #[arg(long, env = "MUTUA_SNAPSHOT_EVERY", default_value_t = 1_000_000)]
    pub snapshot_every: u64,
    /// Commands waiting for the engine before callers get RESOURCE_EXHAUSTED.
    #[arg(long, env = "MUTUA_QUEUE_CAPACITY", default_value_t = 65_536)]
    pub queue_capacity: usize,
    /// Most commands in one journal write batch.
    #[arg(long, env = "MUTUA_BATCH_MAX", default_value_t = 4_096)]
    pub batch_max: usize,
    /// Requests one participant may make per second, sustained (unary calls over it are
    /// RESOURCE_EXHAUSTED; stream messages are paced).
    #[arg(long, env = "MUTUA_PARTICIPANT_RATE", default_value_t = LimitsConfig::default().participant_requests_per_second)]
    pub participant_rate: u32,
    /// Requests one participant may make at once above its sustained rate.
    #[arg(long, env = "MUTUA_PARTICIPANT_BURST", default_value_t = LimitsConfig::default().participant_requests_burst)]
    pub participant_burst: u32,
    /// Market-data streams (which need no token) open at once from one client address.
    #[arg(long, env = "MUTUA_ANONYMOUS_STREAMS_MAX", default_value_t = LimitsConfig::default().anonymous_streams_per_address_max)]
    pub anonymous_streams_max: u32,
    /// Calls without a token (books, instruments, open market history) one client address may
    /// make per second, sustained (over it: RESOURCE_EXHAUSTED).
    #[arg(long, env = "MUTUA_ANONYMOUS_RATE", default_value_t = LimitsConfig::default().anonymous_requests_per_second)]
    pub anonymous_rate: u32,
    /// Calls without a token one client address may make at once above its sustained rate.
    #[arg(long, env = "MUTUA_ANONYMOUS_BURST", default_value_t = LimitsConfig::default().anonymous_requests_burst)]
    pub anonymous_burst: u32,
    /// Audit feeds open at once, over all regulators and operators.
    #[arg(long, env = "MUTUA_AUDIT_STREAMS", default_value_t = LimitsConfig::default().audit_streams_max)]
    pub audit_streams: u32,
    /// Calls in flight at once on one connection (HTTP/2 streams).
    #[arg(long, env = "MUTUA_CONNECTION_STREAMS_MAX", default_value_t = LimitsConfig::default().connection_streams_max)]
    pub connection_streams_max: u32,
    /// PEM certificate chain to serve TLS with (with --tls-key); plaintext when absent.
    #[arg(long, env = "MUTUA_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "MUTUA_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Where to serve Prometheus metrics (`GET /metrics`, read by `mutua status`); `off` to serve none.
    #[arg(long, env = "MUTUA_METRICS_LISTEN", default_value = "127.0.0.1:9477")]
    pub metrics_listen: String,
    /// Largest request message in bytes.
    #[arg(long, env = "MUTUA_REQUEST_BYTES_MAX", default_value_t = LimitsConfig::default().request_bytes_max)]
    pub request_bytes_max: usize,
    /// Milliseconds between the clock's ticks, which expire vouchers, repay bonds and notes at
    /// maturity and close resolutions that are due; 0 sends none.
    #[arg(long, env = "MUTUA_CLOCK_INTERVAL_MS", default_value_t = 1_000)]
    pub clock_interval_ms: u64,
    /// Keep no history read model: History and OpenData answer UNAVAILABLE, and no indexing
    /// shares the machine with matching (for a node whose history another node serves).
    #[arg(long, env = "MUTUA_NO_HISTORY")]
    pub no_history: bool,
    /// Seconds between scheduled netting cycles; 0 leaves cycles to the operator.
    #[arg(long, env = "MUTUA_NETTING_INTERVAL_S", default_value_t = 0)]
    pub netting_interval_s: u64,
    /// Replicate the journal on NATS JetStream: the cluster's servers, comma separated
    /// (`nats://127.0.0.1:4222,nats://127.0.0.1:4223,...`). Nothing is acknowledged before the
    /// cluster holds it. Without it the exchange runs on its embedded journal alone.
    #[arg(long, env = "MUTUA_REPLICATE")]
    pub replicate: Option<String>,
    /// With --replicate: start as a hot standby that follows the leader, serves reads and takes
    /// over when the leader's lease lapses (without it, a node also takes the lease at start
    /// when nobody holds it).
    #[arg(long, env = "MUTUA_STANDBY", requires = "replicate")]
    pub standby: bool,
    /// This node's name in the cluster, unique among its nodes (default: the machine's name and
    /// the port it listens on).
    #[arg(long, env = "MUTUA_NODE")]
    pub node: Option<String>,
    /// The address clients reach this node at, told to clients that write to a standby
    /// (default: http:// and the address it listens on).
    #[arg(long, env = "MUTUA_ADVERTISE")]
    pub advertise: Option<String>,
    /// Replicas of the replicated journal and the lease in the NATS cluster.
    #[arg(long, env = "MUTUA_REPLICAS", default_value_t = 3)]
    pub replicas: usize,
    /// Milliseconds a leader's lease lasts without renewal: a standby takes over this long after
    /// the leader stops renewing it.
    #[arg(long, env = "MUTUA_LEASE_MS", default_value_t = 1_500)]
    pub lease_ms: u64,
    /// With --replicate: a private file (mode 600) holding this node's NATS `user:password` or
    /// token. Whoever can reach the stream reads every record and can append to it: run the
    /// NATS servers with authorization, and TLS between machines.
    #[arg(long, env = "MUTUA_NATS_CREDENTIALS", requires = "replicate")]
    pub nats_credentials: Option<PathBuf>,
    /// With --replicate: talk TLS to the NATS servers, trusting this PEM certificate authority.
    #[arg(long, env = "MUTUA_NATS_TLS_CA", requires = "replicate")]
    pub nats_tls_ca: Option<PathBuf>,
}

impl ServeArgs {
    fn limits_config(&self) -> LimitsConfig {
        LimitsConfig {
            participant_requests_per_second: self.participant_rate.max(1),
            participant_requests_burst: self.participant_burst.max(1),
            anonymous_streams_per_address_max: self.anonymous_streams_max,
            anonymous_requests_per_second: self.anonymous_rate.max(1),
            anonymous_requests_burst: self.anonymous_burst.max(1),
            audit_streams_max: self.audit_streams,
            connection_streams_max: self.connection_streams_max.max(1),
            request_bytes_max: self.request_bytes_max.max(1024),
            ..LimitsConfig::default()
        }
    }

    fn clock_config(&self) -> crate::clock::ClockConfig {
        let every = |duration: Duration| (!duration.is_zero()).then_some(duration);
        crate::clock::ClockConfig {
            tick_every: every(Duration::from_millis(self.clock_interval_ms)),
            netting_every: every(Duration::from_secs(self.netting_interval_s)),
        }
    }

    fn sequencer_config(&self) -> SequencerConfig {
        SequencerConfig {
            queue_capacity: self.queue_capacity.max(1),
            batch_commands_max: self.batch_max.max(1),
            snapshot_every_commands: self.snapshot_every.max(1),
            ..SequencerConfig::default()
        }
    }
}

/// Binds, serves until SIGINT or SIGTERM, then shuts down cleanly.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Logs go to stderr (RUST_LOG, default info); stdout carries the lines scripts read.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal: escape codes make log files and collectors unreadable.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .try_init();
    let shutdown = shutdown_signal()?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let report = run(listener, &args, shutdown).await?;
    tracing::info!(last_sequence = report.last_sequence, state_hash = %report.state_hash, "stopped cleanly");
    println!(
        "mutua stopped at sequence {} with state hash {}",
        report.last_sequence, report.state_hash
    );
    Ok(())
}

/// Serves on `listener` until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    args: &ServeArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<EngineReport> {
    private_data_dir(&args.data)?;
    let tls = tls_config(args)?;
    let market = MarketConfig::default();
    let mut journal = Journal::open(&args.data, &market)
        .with_context(|| format!("opening the journal in {}", args.data.display()))?;
    let cluster = match &args.replicate {
        Some(urls) => {
            let cluster = Cluster::connect(
                replication_config(args, urls, listener.local_addr()?)?,
                CLUSTER_PATIENCE,
            )
            .await?;
            let genesis = cluster
                .genesis(
                    &market,
                    journal.withholding_key(),
                    args.snapshot_every.max(1),
                )
                .await?;
            journal.adopt_withholding_key(genesis.withholding_key)?;
            Some((cluster, genesis.checkpoint_every))
        }
        None => None,
    };
    // Start-up is blocking work by nature: nothing else runs until the state is recovered.
    let mut recovered = recover(&journal, market)?;
    let stream_sequence = journal.stream_sequence()?;
    let mut copy_through = 0;
    if let Some((cluster, _)) = &cluster {
        cluster
            .check_agreement(
                recovered.last_sequence,
                journal.chain_head(),
                stream_sequence,
            )
            .await?;
        if recovered.last_sequence == 0 {
            // A new node: start from the leader's published snapshot rather than replaying
            // the cluster's journal from genesis; the records it covers are still copied into
            // this node's journal, chain checked, for its audit feed and history.
            if let Some(record) = cluster.published_snapshot().await? {
                let (sequence, hash, engine) = crate::journal::restore_sealed_snapshot(&record)
                    .context("the cluster's published snapshot")?;
                tracing::info!(sequence, %hash, "starting from the cluster's published snapshot");
                recovered.engine = engine;
                recovered.last_sequence = sequence;
                recovered.state_hash = Some(hash);
                copy_through = sequence;
            }
        }
    }
    anyhow::ensure!(
        recovered.engine.commands_applied() == recovered.last_sequence,
        "the engine counts {} commands but the journal ends at {}; refusing to start",
        recovered.engine.commands_applied(),
        recovered.last_sequence
    );
    let limits = Limits::new(args.limits_config());
    let metrics = Arc::new(Metrics::new());
    let auth = Auth::from_engine(&recovered.engine, limits.clone(), metrics.clone());
    let operator_token_live = read_operator_token(&args.data)
        .is_some_and(|token| auth.is_live_token_of(&token, GENESIS_OPERATOR));
    let state_hash = match recovered.state_hash {
        Some(hash) => hash,
        None => recovered.engine.state_hash(),
    };
    tracing::info!(sequence = recovered.last_sequence, %state_hash, replayed = recovered.replayed, "state recovered");
    println!(
        "mutua state at sequence {} has state hash {state_hash}",
        recovered.last_sequence
    );
    let newest_snapshot = journal.snapshot_sequences()?.last().copied().unwrap_or(0);
    let reader = journal.reader();
    let metrics_server = match args.metrics_listen.as_str() {
        "off" => None,
        address => {
            let listener = TcpListener::bind(address)
                .await
                .with_context(|| format!("binding the metrics endpoint {address}"))?;
            println!("mutua metrics on http://{}/metrics", listener.local_addr()?);
            Some(tokio::spawn(crate::metrics::serve(
                listener,
                metrics.clone(),
            )))
        }
    };
    let (link, follower_start) = match cluster {
        Some((cluster, checkpoint_every)) => {
            let state = ReplicationState::new(stream_sequence, metrics.clone());
            let publish_snapshots = Some(cluster.snapshot_publisher(state.clone()));
            let (to_engine, follow) = crossbeam_channel::bounded(FOLLOWED_WRITES_WAITING_MAX);
            let publisher =
                Publisher::new(tokio::runtime::Handle::current(), &cluster, state.clone());
            (
                Some(ReplicationLink {
                    state: state.clone(),
                    follow,
                    publisher,
                    checkpoint_every,
                    publish_snapshots,
                    copy_through,
                }),
                Some(FollowerStart {
                    cluster,
                    state,
                    to_engine,
                    applied_through: stream_sequence,
                }),
            )
        }
        None => (None, None),
    };
    let (sequencer, mut engine_thread) = Sequencer::start(
        recovered.engine,
        journal,
        recovered.last_sequence,
        newest_snapshot,
        args.sequencer_config(),
        metrics.clone(),
        link,
    );
    // Why a replicated node stopped on its own (deposed, or the cluster's journal refused).
    let (follower_stopped, follower_outcome) = tokio::sync::oneshot::channel::<String>();
    let replication_task = match follower_start {
        Some(start) => {
            let state = start.state.clone();
            tokio::spawn(operator_token_when_leading(
                sequencer.clone(),
                auth.clone(),
                args.data.clone(),
                operator_token_live,
                state,
            ));
            Some(tokio::spawn(async move {
                let why = match crate::replication::run_follower(start).await {
                    Ok(()) => "another node leads the exchange now: this node stopped taking writes (restart it to follow as a standby)".to_string(),
                    Err(error) => format!("following the replicated journal failed: {error:#}"),
                };
                tracing::error!("{why}");
                let _ = follower_stopped.send(why);
            }))
        }
        None => {
            if !operator_token_live {
                issue_operator_token(&sequencer, &auth, &args.data).await?;
            }
            drop(follower_stopped);
            None
        }
    };
    let follower = tokio::spawn(follow_identity(sequencer.clone(), auth.clone()));
    let clock = tokio::spawn(crate::clock::run(sequencer.clone(), args.clock_config()));

    let address = listener.local_addr()?;
    println!("mutua listening on {address}");
    let (stopping_sender, stopping) = tokio::sync::watch::channel(false);
    // Stop on the signal, or at once if the engine thread stops on its own (a journal write
    // failed): nothing could be acknowledged any more, so the process must not look healthy.
    let engine_exited = engine_thread.exited();
    let (stopped_why_sender, stopped_why) = tokio::sync::oneshot::channel::<String>();
    let shutdown = async move {
        let follower_failed = async move {
            match follower_outcome.await {
                Ok(why) => why,
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown => {}
            _ = engine_exited => tracing::error!("the engine thread stopped; shutting down"),
            why = follower_failed => {
                let _ = stopped_why_sender.send(why);
            }
        }
        let _ = stopping_sender.send(true);
    };
    let history = if args.no_history {
        crate::history::History::disabled(sequencer.journaled())
    } else {
        crate::history::History::start(
            &args.data.join("history"),
            reader.clone(),
            sequencer.journaled(),
            metrics.clone(),
        )
        .context("opening the history read model")?
    };
    let context = crate::services::Context {
        history: history.clone(),
        sequencer: sequencer.clone(),
        auth,
        journal: reader,
        limits,
        metrics,
        stopping,
    };
    let router = crate::services::router(context, tls)?;
    // Replies are small and latency-bound: send them at once rather than waiting to coalesce.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let served = router
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    tracing::info!("no longer accepting; draining the engine");
    follower.abort();
    clock.abort();
    if let Some(task) = replication_task {
        task.abort();
    }
    if let Some(metrics_server) = metrics_server {
        metrics_server.abort();
    }
    sequencer.stop();
    drop(sequencer);
    let report = tokio::task::spawn_blocking(move || engine_thread.join()).await??;
    // The read model is written without a log: flush it so the next start resumes here.
    if let Err(error) = history.stop().await {
        tracing::warn!(%error, "could not flush the history read model; it will catch up at the next start");
    }
    served.context("gRPC server")?;
    if let Ok(why) = stopped_why.await {
        anyhow::bail!(
            "{why} (stopped at sequence {} with state hash {})",
            report.last_sequence,
            report.state_hash
        );
    }
    Ok(report)
}

/// How long start-up waits for the NATS cluster to answer.
const CLUSTER_PATIENCE: Duration = Duration::from_secs(60);
/// The cluster's writes decoded and waiting for the engine thread.
const FOLLOWED_WRITES_WAITING_MAX: usize = 64;

fn replication_config(
    args: &ServeArgs,
    urls: &str,
    listening: SocketAddr,
) -> anyhow::Result<ReplicationConfig> {
    let credentials = match &args.nats_credentials {
        Some(path) => Some(NatsCredentials::read(path)?),
        None => None,
    };
    Ok(ReplicationConfig {
        urls: urls.to_string(),
        node: args
            .node
            .clone()
            .unwrap_or_else(|| format!("{}:{}", host_name(), listening.port())),
        advertise: args
            .advertise
            .clone()
            .unwrap_or_else(|| format!("http://{listening}")),
        replicas: args.replicas.max(1),
        lease: Duration::from_millis(args.lease_ms.max(200)),
        standby: args.standby,
        request_timeout: Duration::from_secs(2),
        credentials,
        tls_ca: args.nats_tls_ca.clone(),
    })
}

/// This machine's name (for a node's default name: two machines listening on the same
/// address must not share one).
fn host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its length; the name is NUL-terminated when it fits.
    let named = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) } == 0;
    let length = buffer.iter().position(|byte| *byte == 0).unwrap_or(0);
    match std::str::from_utf8(&buffer[..length]) {
        Ok(name) if named && !name.is_empty() => name.to_string(),
        _ => "mutua".to_string(),
    }
}

/// In a replicated exchange, the operator's token is issued by the first node to lead (a
/// standby journals nothing); the token works on every node, since every node applies it.
async fn operator_token_when_leading(
    sequencer: Sequencer,
    auth: Auth,
    data: PathBuf,
    live: bool,
    state: Arc<ReplicationState>,
) {
    let mut role = state.watch();
    while *role.borrow_and_update() != Role::Leader {
        if role.changed().await.is_err() {
            return;
        }
    }
    let live = live
        || read_operator_token(&data)
            .is_some_and(|token| auth.is_live_token_of(&token, GENESIS_OPERATOR));
    if !live {
        if let Err(error) = issue_operator_token(&sequencer, &auth, &data).await {
            tracing::warn!(%error, "issuing the operator's token");
        }
    }
}

/// The TLS identity named by `--tls-cert` and `--tls-key`, if any.
fn tls_config(args: &ServeArgs) -> anyhow::Result<Option<tonic::transport::ServerTlsConfig>> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    let cert =
        std::fs::read(cert).with_context(|| format!("reading --tls-cert {}", cert.display()))?;
    let key = std::fs::read(key).with_context(|| format!("reading --tls-key {}", key.display()))?;
    Ok(Some(
        tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(cert, key)),
    ))
}

/// Keeps the token map in step with every journaled batch (credentials issued and revoked,
/// participants suspended), whoever made the change. Handlers also apply their own changes at
/// once; following twice is harmless. A follower that falls behind reloads the map whole.
async fn follow_identity(sequencer: Sequencer, auth: Auth) {
    let mut batches = sequencer.subscribe();
    loop {
        match batches.recv().await {
            Ok(batch) => batch.iter().for_each(|applied| auth.follow(applied)),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                let reloaded = auth.clone();
                if sequencer
                    .query(move |engine| reloaded.reload(engine))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Makes sure `operator.token` holds a live token of the genesis operator: on the first start,
/// and on any later start where the file is missing, damaged or names a revoked token. The file
/// is written (and synced) before the token's hash is journaled, so a crash in between leaves a
/// file whose token is not live, which the next start replaces: the operator is never locked
/// out. Earlier tokens of the genesis operator stay live; the operator revokes them if needed.
async fn issue_operator_token(
    sequencer: &Sequencer,
    auth: &Auth,
    data: &Path,
) -> anyhow::Result<()> {
    let new = auth::new_token().map_err(|status| anyhow::anyhow!(status.message().to_string()))?;
    write_operator_token(data, &new.token)?;
    let command = mutua_engine::Command {
        id: auth::random_command_id()
            .map_err(|status| anyhow::anyhow!(status.message().to_string()))?,
        participant: GENESIS_OPERATOR,
        kind: mutua_engine::CommandKind::IssueCredential {
            participant: GENESIS_OPERATOR,
            token_hash: new.hash,
            replace_existing: false,
        },
    };
    let applied = sequencer
        .submit(command, String::new())
        .await
        .context("journaling the operator's token")?;
    if let Err(reason) = applied.outcome.result {
        anyhow::bail!("the operator's token was refused: {reason}; revoke some of the genesis operator's tokens");
    }
    auth.follow(&applied);
    println!(
        "operator token (shown once; also in {}): {}",
        data.join(OPERATOR_TOKEN_FILE).display(),
        new.token
    );
    Ok(())
}

/// The token in `operator.token`, if the file holds one.
fn read_operator_token(data: &Path) -> Option<String> {
    let text = std::fs::read_to_string(data.join(OPERATOR_TOKEN_FILE)).ok()?;
    let token = text.trim();
    (!token.is_empty()).then(|| token.to_string())
}

/// Creates the data directory private to this user (0700), makes every file the process creates
/// private (umask 077), and refuses a directory or a file in it that others may read: the journal
/// holds every participant's balances and the operator's token file is the key to the market.
fn private_data_dir(data: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        // Files are made private by `Journal::open` (umask 077); the directory is made so here.
        if !data.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(data)
                .with_context(|| format!("creating {}", data.display()))?;
        }
        let mode = std::fs::metadata(data)
            .with_context(|| format!("reading {}", data.display()))?
            .permissions()
            .mode();
        anyhow::ensure!(
            mode & 0o077 == 0,
            "the data directory {} is open to other users (mode {:o}); make it private with `chmod 700 {}` and start again",
            data.display(),
            mode & 0o777,
            data.display()
        );
        for entry in
            std::fs::read_dir(data).with_context(|| format!("reading {}", data.display()))?
        {
            let entry = entry?;
            let mode = entry.metadata()?.permissions().mode();
            anyhow::ensure!(
                mode & 0o077 == 0,
                "{} in the data directory is open to other users (mode {:o}); make it private with `chmod -R go-rwx {}` and start again",
                entry.path().display(),
                mode & 0o777,
                data.display()
            );
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    Ok(())
}

#[derive(clap::Args, Clone, Debug)]
pub struct VerifyArgs {
    /// Directory of the journal to verify (the exchange must be stopped).
    #[arg(long, env = "MUTUA_DATA", default_value = "./data")]
    pub data: PathBuf,
}

/// `mutua verify`: replays the whole journal from genesis, ignoring snapshots as a starting point
/// but checking each one's hash on the way, and checking every record's checksum, outcome and
/// events. Prints the replay rate and the final state hash; fails naming the first bad record.
pub fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.data.join("CURRENT").exists(),
        "{} holds no journal",
        args.data.display()
    );
    private_data_dir(&args.data)?;
    let market = MarketConfig::default();
    let journal = Journal::open(&args.data, &market)
        .with_context(|| format!("opening the journal in {}", args.data.display()))?;
    let bar = replay_progress(journal.last_sequence()?);
    let began = std::time::Instant::now();
    let replayed = journal.replay_from_genesis(market, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    let replayed = replayed.context("the journal does not verify")?;
    let seconds = began.elapsed().as_secs_f64();
    println!(
        "verified {} records and {} snapshots in {seconds:.2} s ({:.0} records/s); state hash at sequence {}: {}",
        replayed.replayed,
        journal.snapshot_sequences()?.len(),
        replayed.replayed as f64 / seconds.max(1e-9),
        replayed.last_sequence,
        replayed.engine.state_hash()
    );
    Ok(())
}

fn replay_progress(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "replaying journal {bar:40} {pos}/{len} commands ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

fn recover(journal: &Journal, market: MarketConfig) -> anyhow::Result<crate::journal::Recovered> {
    let bar = replay_progress(journal.last_sequence()?);
    let recovered = journal.recover(market, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    let recovered = recovered.context("the journal cannot be trusted; refusing to start")?;
    if recovered.replayed > 0 {
        println!(
            "replayed {} journal records after snapshot {:?}",
            recovered.replayed, recovered.snapshot_sequence
        );
    }
    Ok(recovered)
}

/// Writes the operator's token file (0600) whole or not at all: a temporary file, synced, renamed
/// over the old one, and the directory synced.
fn write_operator_token(data: &Path, token: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let path = data.join(OPERATOR_TOKEN_FILE);
    let temporary = data.join(format!("{OPERATOR_TOKEN_FILE}.new"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&temporary)
        .with_context(|| format!("writing {}", temporary.display()))?;
    writeln!(file, "{token}")?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, &path)
        .with_context(|| format!("renaming {} to {}", temporary.display(), path.display()))?;
    std::fs::File::open(data)?.sync_all()?;
    Ok(())
}

/// Completes on SIGINT or SIGTERM. The handlers are installed before this returns, so a signal
/// that arrives as soon as the server says it is listening is already a graceful shutdown.
pub fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt =
            signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let mut terminate =
            signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
