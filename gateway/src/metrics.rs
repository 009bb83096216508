//! Live figures of the running exchange in the Prometheus text format, served over plain HTTP on
//! `--metrics-listen` (`GET /metrics`) and read by `mutua status`: commands by kind, rejections by
//! reason, the engine queue's depth, batch sizes, journal sync latency, requests refused at the
//! edge, and market-data subscribers that fell behind.
//!
//! The engine thread records once per batch, from counts it keeps on its own stack, so the cost
//! per command is an array increment, not a shared atomic or a lock.

use std::sync::Arc;
use std::time::Duration;

use mutua_engine::{CommandKind, RejectReason};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

type Labels = Vec<(&'static str, String)>;

/// Every metric of the exchange.
pub struct Metrics {
    registry: Registry,
    commands: Family<Labels, Counter>,
    rejections: Family<Labels, Counter>,
    edge_refusals: Family<Labels, Counter>,
    queue_depth: Gauge,
    sequence: Gauge,
    batch_commands: Histogram,
    journal_sync_seconds: Histogram,
    engine_batch_seconds: Histogram,
    engine_batch_max_microseconds: Gauge,
    engine_batch_cpu_max_microseconds: Gauge,
    subscriber_lagged: Counter,
    history_indexed: Gauge,
    replica_sequence: Gauge,
    replication_role: Gauge,
    replication_stream_sequence: Gauge,
    replication_checkpoint: Gauge,
}

/// The kinds of command, in the order `kind_index` numbers them.
pub const COMMAND_KINDS: [&str; 39] = [
    "register_participant",
    "set_accreditation",
    "deposit",
    "withdraw",
    "list_instrument",
    "set_trading_status",
    "open_offering",
    "subscribe",
    "close_offering",
    "place_order",
    "cancel_order",
    "reduce_order",
    "pay_distribution",
    "repay_at_maturity",
    "issue_credential",
    "revoke_credential",
    "set_participant_status",
    "request_withdrawal",
    "cancel_withdrawal",
    "complete_withdrawal",
    "set_withdrawals_suspended",
    "propose_resolution",
    "cast_vote",
    "close_resolution",
    "set_accredited_categories",
    "define_service_package",
    "issue_voucher",
    "redeem_voucher",
    "redeem_service_value",
    "record_volunteer_time",
    "transfer_time_credits",
    "spend_time_credits",
    "donate_time_credits",
    "grant_time_credits",
    "contribute_to_pool",
    "repay_pool_loan",
    "close_netting_cycle",
    "declare_surplus",
    "tick",
];

pub fn kind_index(kind: &CommandKind) -> usize {
    match kind {
        CommandKind::RegisterParticipant { .. } => 0,
        CommandKind::SetAccreditation { .. } => 1,
        CommandKind::Deposit { .. } => 2,
        CommandKind::Withdraw { .. } => 3,
        CommandKind::ListInstrument { .. } => 4,
        CommandKind::SetTradingStatus { .. } => 5,
        CommandKind::OpenOffering { .. } => 6,
        CommandKind::Subscribe { .. } => 7,
        CommandKind::CloseOffering { .. } => 8,
        CommandKind::PlaceOrder { .. } => 9,
        CommandKind::CancelOrder { .. } => 10,
        CommandKind::ReduceOrder { .. } => 11,
        CommandKind::PayDistribution { .. } => 12,
        CommandKind::RepayAtMaturity { .. } => 13,
        CommandKind::IssueCredential { .. } => 14,
        CommandKind::RevokeCredential { .. } => 15,
        CommandKind::SetParticipantStatus { .. } => 16,
        CommandKind::RequestWithdrawal { .. } => 17,
        CommandKind::CancelWithdrawal { .. } => 18,
        CommandKind::CompleteWithdrawal { .. } => 19,
        CommandKind::SetWithdrawalsSuspended { .. } => 20,
        CommandKind::ProposeResolution { .. } => 21,
        CommandKind::CastVote { .. } => 22,
        CommandKind::CloseResolution { .. } => 23,
        CommandKind::SetAccreditedCategories { .. } => 24,
        CommandKind::DefineServicePackage { .. } => 25,
        CommandKind::IssueVoucher { .. } => 26,
        CommandKind::RedeemVoucher { .. } => 27,
        CommandKind::RedeemServiceValue { .. } => 28,
        CommandKind::RecordVolunteerTime { .. } => 29,
        CommandKind::TransferTimeCredits { .. } => 30,
        CommandKind::SpendTimeCredits { .. } => 31,
        CommandKind::DonateTimeCredits { .. } => 32,
        CommandKind::GrantTimeCredits { .. } => 33,
        CommandKind::ContributeToPool { .. } => 34,
        CommandKind::RepayPoolLoan { .. } => 35,
        CommandKind::CloseNettingCycle => 36,
        CommandKind::DeclareSurplus { .. } => 37,
        CommandKind::Tick => 38,
    }
}

/// What one engine batch did, counted on the engine thread's stack.
pub struct BatchCounts {
    pub commands: [u64; COMMAND_KINDS.len()],
    /// Indexed by reason code.
    pub rejections: Vec<(RejectReason, u64)>,
    /// Time the engine thread spent applying the batch: while it does, nothing else is applied.
    pub apply: Duration,
    /// The part of `apply` the engine thread was on a core (without the time the operating
    /// system gave the core to other threads): the engine's own work.
    pub apply_cpu: Duration,
}

impl Default for BatchCounts {
    fn default() -> BatchCounts {
        BatchCounts {
            commands: [0; COMMAND_KINDS.len()],
            rejections: Vec::new(),
            apply: Duration::ZERO,
            apply_cpu: Duration::ZERO,
        }
    }
}

impl BatchCounts {
    #[inline]
    pub fn reject(&mut self, reason: RejectReason) {
        match self.rejections.iter_mut().find(|(seen, _)| *seen == reason) {
            Some((_, count)) => *count += 1,
            None => self.rejections.push((reason, 1)),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mutua");
        let commands = Family::<Labels, Counter>::default();
        registry.register(
            "commands",
            "Commands journaled, by kind (retries and rejections included)",
            commands.clone(),
        );
        let rejections = Family::<Labels, Counter>::default();
        registry.register(
            "rejections",
            "Commands the engine refused, by reason",
            rejections.clone(),
        );
        let edge_refusals = Family::<Labels, Counter>::default();
        registry.register(
            "edge_refusals",
            "Requests the gateway refused before the engine, by reason",
            edge_refusals.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "engine_queue_depth",
            "Requests waiting for the engine thread when the last batch was taken",
            queue_depth.clone(),
        );
        let sequence = Gauge::default();
        registry.register(
            "journal_sequence",
            "Sequence number of the last journaled command",
            sequence.clone(),
        );
        let batch_commands = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        registry.register(
            "batch_commands",
            "Commands per journaled batch",
            batch_commands.clone(),
        );
        let journal_sync_seconds = Histogram::new(exponential_buckets(0.000_02, 2.0, 16));
        registry.register(
            "journal_sync_seconds",
            "Time to write and sync one batch to the journal",
            journal_sync_seconds.clone(),
        );
        let engine_batch_seconds = Histogram::new(exponential_buckets(0.000_001, 2.0, 22));
        registry.register(
            "engine_batch_seconds",
            "Time the engine thread spent applying one batch",
            engine_batch_seconds.clone(),
        );
        let engine_batch_max_microseconds = Gauge::default();
        registry.register(
            "engine_batch_max_microseconds",
            "Longest time the engine thread spent applying one batch since the server started",
            engine_batch_max_microseconds.clone(),
        );
        let engine_batch_cpu_max_microseconds = Gauge::default();
        registry.register(
            "engine_batch_cpu_max_microseconds",
            "Longest time the engine thread was on a core applying one batch since the server started",
            engine_batch_cpu_max_microseconds.clone(),
        );
        let subscriber_lagged = Counter::default();
        registry.register(
            "subscriber_lagged",
            "Market-data subscribers disconnected for falling behind",
            subscriber_lagged.clone(),
        );
        let history_indexed = Gauge::default();
        registry.register(
            "history_indexed_sequence",
            "Sequence number the history read model has indexed through",
            history_indexed.clone(),
        );
        let replica_sequence = Gauge::default();
        registry.register(
            "replica_sequence",
            "Sequence number the read replica has applied through: what queries and snapshots see",
            replica_sequence.clone(),
        );
        let replication_role = Gauge::default();
        replication_role.set(-1);
        registry.register(
            "replication_role",
            "This node's part in a replicated exchange: 0 standby, 1 leader, 2 deposed (-1: not replicated)",
            replication_role.clone(),
        );
        let replication_stream_sequence = Gauge::default();
        registry.register(
            "replication_stream_sequence",
            "The replicated stream's message this node has applied or appended through",
            replication_stream_sequence.clone(),
        );
        let replication_checkpoint = Gauge::default();
        registry.register(
            "replication_checkpoint_sequence",
            "The last checkpoint at which this standby's state hash was found equal to the leader's",
            replication_checkpoint.clone(),
        );
        Metrics {
            registry,
            replication_checkpoint,
            history_indexed,
            replica_sequence,
            replication_role,
            replication_stream_sequence,
            commands,
            rejections,
            edge_refusals,
            queue_depth,
            sequence,
            batch_commands,
            journal_sync_seconds,
            engine_batch_seconds,
            engine_batch_max_microseconds,
            engine_batch_cpu_max_microseconds,
            subscriber_lagged,
        }
    }

    /// Records one journaled batch.
    pub fn record_batch(
        &self,
        counts: &BatchCounts,
        batch_len: usize,
        queue_depth: usize,
        sync: Duration,
        sequence: u64,
    ) {
        for (index, count) in counts
            .commands
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
        {
            self.commands
                .get_or_create(&vec![("kind", COMMAND_KINDS[index].to_string())])
                .inc_by(*count);
        }
        for (reason, count) in &counts.rejections {
            let labels = vec![
                ("reason", crate::convert::reason_name(*reason)),
                ("code", reason.code().to_string()),
            ];
            self.rejections.get_or_create(&labels).inc_by(*count);
        }
        self.queue_depth.set(queue_depth as i64);
        self.sequence.set(sequence as i64);
        self.batch_commands.observe(batch_len as f64);
        self.journal_sync_seconds.observe(sync.as_secs_f64());
        self.engine_batch_seconds
            .observe(counts.apply.as_secs_f64());
        // Only the journal writer thread records batches, so reading then setting is exact.
        for (gauge, took) in [
            (&self.engine_batch_max_microseconds, counts.apply),
            (&self.engine_batch_cpu_max_microseconds, counts.apply_cpu),
        ] {
            let took = took.as_micros().min(i64::MAX as u128) as i64;
            if took > gauge.get() {
                gauge.set(took);
            }
        }
    }

    /// Records a request the gateway refused itself (authentication, limits, malformed input).
    pub fn edge_refusal(&self, reason: &'static str) {
        self.edge_refusals
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc();
    }

    pub fn history_indexed(&self, sequence: u64) {
        self.history_indexed.set(sequence as i64);
    }

    pub fn replication_role(&self, role: i64) {
        self.replication_role.set(role);
    }

    pub fn replication_stream_at(&self, sequence: u64) {
        self.replication_stream_sequence.set(sequence as i64);
    }

    pub fn checkpoint_agreed(&self, sequence: u64) {
        self.replication_checkpoint.set(sequence as i64);
    }

    pub fn replica_applied(&self, sequence: u64) {
        self.replica_sequence.set(sequence as i64);
    }

    pub fn subscriber_lagged(&self) {
        self.subscriber_lagged.inc();
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

/// Longest HTTP request head the metrics endpoint reads.
const METRICS_REQUEST_BYTES_MAX: usize = 8 << 10;

/// Serves `GET /metrics` on `listener` until the task is dropped: a minimal HTTP/1.1 responder
/// (one request per connection, then close), which is all a Prometheus scraper needs.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut head = Vec::with_capacity(1024);
            let mut chunk = [0u8; 1024];
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                while !head.windows(4).any(|window| window == b"\r\n\r\n")
                    && head.len() < METRICS_REQUEST_BYTES_MAX
                {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return false,
                        Ok(read) => head.extend_from_slice(&chunk[..read]),
                    }
                }
                true
            })
            .await;
            if read != Ok(true) {
                return;
            }
            let (status, body) =
                if head.starts_with(b"GET /metrics ") || head.starts_with(b"GET / ") {
                    ("200 OK", metrics.render())
                } else {
                    (
                        "404 Not Found",
                        "only GET /metrics is served here\n".to_string(),
                    )
                };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        });
    }
}

/// `mutua status`: fetches the metrics endpoint at `address` and prints the figures a person
/// watches: commands by kind, rejections by reason, queue depth, batch size, sync latency.
pub async fn print_status(address: &str) -> anyhow::Result<()> {
    let host = address
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .trim_end_matches('/');
    let mut socket = tokio::net::TcpStream::connect(host)
        .await
        .map_err(|error| anyhow::anyhow!("cannot reach the metrics endpoint {host}: {error}"))?;
    socket
        .write_all(
            format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut response = String::new();
    socket.read_to_string(&mut response).await?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    let samples: Vec<(&str, f64)> = body
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name, value.parse().ok()?))
        })
        .collect();
    let value = |name: &str| {
        samples
            .iter()
            .find(|(sample, _)| *sample == name)
            .map_or(0.0, |(_, value)| *value)
    };
    let journaled = value("mutua_journal_sequence");
    println!("journal sequence      {journaled}");
    let indexed = value("mutua_history_indexed_sequence");
    println!(
        "history indexed       {indexed} ({} behind)",
        (journaled - indexed).max(0.0)
    );
    let replicated = value("mutua_replica_sequence");
    println!(
        "read replica          {replicated} ({} behind)",
        (journaled - replicated).max(0.0)
    );
    match value("mutua_replication_role") as i64 {
        0 => println!("replication           standby"),
        1 => println!("replication           leader"),
        2 => println!("replication           deposed (stopping)"),
        _ => println!("replication           off (embedded journal alone)"),
    }
    if value("mutua_replication_role") >= 0.0 {
        println!(
            "stream message        {}",
            value("mutua_replication_stream_sequence")
        );
        println!(
            "state hash agreed at  {} (the last checkpoint compared with the leader's)",
            value("mutua_replication_checkpoint_sequence")
        );
    }
    println!(
        "engine queue depth    {}",
        value("mutua_engine_queue_depth")
    );
    let batches = value("mutua_batch_commands_count");
    if batches > 0.0 {
        println!(
            "batches               {batches} (mean {:.1} commands)",
            value("mutua_batch_commands_sum") / batches
        );
        println!(
            "journal sync          mean {:.3} ms",
            1_000.0 * value("mutua_journal_sync_seconds_sum") / batches
        );
        println!(
            "engine batch          mean {:.3} ms, longest {:.3} ms ({:.3} ms on a core)",
            1_000.0 * value("mutua_engine_batch_seconds_sum") / batches,
            value("mutua_engine_batch_max_microseconds") / 1_000.0,
            value("mutua_engine_batch_cpu_max_microseconds") / 1_000.0
        );
        for quantile in [0.5, 0.99] {
            println!(
                "journal sync p{:<3}     <= {:.3} ms",
                (quantile * 100.0) as u32,
                1_000.0 * bucket_quantile(&samples, "mutua_journal_sync_seconds_bucket", quantile)
            );
        }
    }
    println!("commands by kind:");
    for (name, count) in samples
        .iter()
        .filter(|(name, _)| name.starts_with("mutua_commands_total{"))
    {
        println!(
            "  {:<40} {count}",
            name.trim_start_matches("mutua_commands_total")
        );
    }
    println!("rejections by reason:");
    for (name, count) in samples
        .iter()
        .filter(|(name, _)| name.starts_with("mutua_rejections_total{"))
    {
        println!(
            "  {:<60} {count}",
            name.trim_start_matches("mutua_rejections_total")
        );
    }
    for (name, count) in samples
        .iter()
        .filter(|(name, _)| name.starts_with("mutua_edge_refusals_total{"))
    {
        println!(
            "refused at the edge {:<40} {count}",
            name.trim_start_matches("mutua_edge_refusals_total")
        );
    }
    println!(
        "subscribers lagged    {}",
        value("mutua_subscriber_lagged_total")
    );
    Ok(())
}

/// The upper bound of the histogram bucket holding `quantile` of the observations.
fn bucket_quantile(samples: &[(&str, f64)], bucket: &str, quantile: f64) -> f64 {
    let buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter(|(name, _)| name.starts_with(bucket))
        .filter_map(|(name, count)| {
            let bound = name.split("le=\"").nth(1)?.split('"').next()?;
            Some((
                if bound == "+Inf" {
                    f64::INFINITY
                } else {
                    bound.parse().ok()?
                },
                *count,
            ))
        })
        .collect();
    let total = buckets.last().map_or(0.0, |(_, count)| *count);
    buckets
        .iter()
        .find(|(_, count)| *count >= quantile * total)
        .map_or(f64::NAN, |(bound, _)| *bound)
}

/// CPU time the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; this clock exists on every Linux.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    if status != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        now.tv_sec.max(0) as u64,
        now.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}
