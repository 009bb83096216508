//! `mutua serve`: opens the journal, recovers the engine, starts the engine thread and the gRPC
//! server, and on SIGINT/SIGTERM stops accepting, drains, syncs, snapshots and exits 0.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use mutua_engine::{MarketConfig, Role, GENESIS_OPERATOR};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use crate::auth::Auth;
use crate::journal::Journal;
use crate::sequencer::{EngineReport, Sequencer, SequencerConfig};

/// Name of the file in the data directory that holds the operator's token (mode 0600).
pub const OPERATOR_TOKEN_FILE: &str = "operator.token";

#[derive(clap::Args, Clone, Debug)]
pub struct ServeArgs {
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
}

impl ServeArgs {
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
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    let shutdown = shutdown_signal()?;
    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let report = run(listener, &args, shutdown).await?;
    tracing::info!(last_sequence = report.last_sequence, state_hash = %report.state_hash, "stopped cleanly");
    println!("mutua stopped at sequence {} with state hash {}", report.last_sequence, report.state_hash);
    Ok(())
}

/// Serves on `listener` until `shutdown` completes.
pub async fn run(listener: TcpListener, args: &ServeArgs, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<EngineReport> {
    std::fs::create_dir_all(&args.data).with_context(|| format!("creating {}", args.data.display()))?;
    let market = MarketConfig::default();
    let journal = Journal::open(&args.data, &market).with_context(|| format!("opening the journal in {}", args.data.display()))?;
    // Start-up is blocking work by nature: nothing else runs until the state is recovered.
    let recovered = recover(&journal, market)?;
    let (auth, new_market) = Auth::open(journal.shared_db())?;
    if new_market {
        let token = auth.issue_token(GENESIS_OPERATOR, Role::Operator).map_err(|status| anyhow::anyhow!(status.message().to_string()))?;
        write_operator_token(&args.data, &token)?;
        println!("operator token (shown once; also in {}): {token}", args.data.join(OPERATOR_TOKEN_FILE).display());
    }
    let state_hash = recovered.engine.state_hash();
    tracing::info!(sequence = recovered.last_sequence, %state_hash, replayed = recovered.replayed, "state recovered");
    println!("mutua state at sequence {} has state hash {state_hash}", recovered.last_sequence);
    let (sequencer, mut engine_thread) = Sequencer::start(recovered.engine, journal, recovered.last_sequence, args.sequencer_config());

    let address = listener.local_addr()?;
    println!("mutua listening on {address}");
    let (stopping_sender, stopping) = tokio::sync::watch::channel(false);
    // Stop on the signal, or at once if the engine thread stops on its own (a journal write
    // failed): nothing could be acknowledged any more, so the process must not look healthy.
    let engine_exited = engine_thread.exited();
    let shutdown = async move {
        tokio::select! {
            _ = shutdown => {}
            _ = engine_exited => tracing::error!("the engine thread stopped; shutting down"),
        }
        let _ = stopping_sender.send(true);
    };
    let router = crate::services::router(crate::services::Context { sequencer: sequencer.clone(), auth, stopping });
    // Replies are small and latency-bound: send them at once rather than waiting to coalesce.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let served = router.serve_with_incoming_shutdown(incoming, shutdown).await;
    tracing::info!("no longer accepting; draining the engine");
    sequencer.stop();
    drop(sequencer);
    let report = tokio::task::spawn_blocking(move || engine_thread.join()).await??;
    served.context("gRPC server")?;
    Ok(report)
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
    anyhow::ensure!(args.data.join("CURRENT").exists(), "{} holds no journal", args.data.display());
    let market = MarketConfig::default();
    let journal = Journal::open(&args.data, &market).with_context(|| format!("opening the journal in {}", args.data.display()))?;
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
        indicatif::ProgressStyle::with_template("replaying journal {bar:40} {pos}/{len} commands ({per_sec}, eta {eta})")
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
        println!("replayed {} journal records after snapshot {:?}", recovered.replayed, recovered.snapshot_sequence);
    }
    Ok(recovered)
}

fn write_operator_token(data: &Path, token: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let path = data.join(OPERATOR_TOKEN_FILE);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path).with_context(|| format!("writing {}", path.display()))?;
    writeln!(file, "{token}")?;
    file.sync_all()?;
    Ok(())
}

/// Completes on SIGINT or SIGTERM. The handlers are installed before this returns, so a signal
/// that arrives as soon as the server says it is listening is already a graceful shutdown.
pub fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
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
