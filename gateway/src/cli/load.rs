//! `mutua load`: a load generator. It sets up its own market with the operator's token (an
//! issuer, one instrument, two contributors per connection holding units and cash), then has
//! every contributor alternate sell and buy orders at par so that orders cross and trade. It runs
//! unary calls or the `OrderEntry` stream, open loop at a fixed rate (latency measured from each
//! order's planned send time, so a stall cannot hide itself) or as fast as possible, and prints
//! throughput and latency percentiles at the end.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use tokio::sync::{mpsc, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::{authorized, connect_with, instrument_ref, status_error};
use crate::pb;
use crate::pb::order_entry_response::Result as EntryResult;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// One PlaceOrder call per order.
    Unary,
    /// Pipelined orders on one OrderEntry stream per contributor.
    Stream,
    /// Baseline: unary `grpc.health.v1.Health/Check` calls on the same connections, the same
    /// tonic stack with no engine and no journal behind it: what tonic itself does here.
    Health,
    /// Baseline of `stream`: `Diagnostics.Echo` streams on the same connections, each message
    /// an order-entry request's bytes echoed back at an order-entry reply's size, with no
    /// engine and no journal behind them.
    StreamEcho,
}

#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// HTTP/2 connections; each carries two contributors trading with each other.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Unary calls or the order-entry stream.
    #[arg(long, value_enum, default_value = "stream")]
    pub mode: Mode,
    /// Orders per second in total, sent open loop; 0 sends as fast as the exchange answers.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Seconds to run (ignored when --count is given).
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Orders to send in total, instead of a duration.
    #[arg(long)]
    pub count: Option<u64>,
    /// Unary: calls in flight per contributor. Stream: orders in flight per stream.
    #[arg(long, default_value_t = 0)]
    pub in_flight: usize,
    /// Units each contributor starts with (bought in the set-up offering).
    #[arg(long, default_value_t = 1_000_000)]
    pub units_each: u64,
    /// Audit feeds that follow the journal live during the run (each on its own connection,
    /// as the operator); their delivered records/s and how far behind they ended are reported.
    #[arg(long, default_value_t = 0)]
    pub audit_consumers: usize,
    /// After the run, read the whole audit feed from record 1 as a catching-up regulator would,
    /// and report records/s.
    #[arg(long)]
    pub audit_catch_up: bool,
    /// Orders that never cross, to build a large book: bids spread over the 99 levels below
    /// par and offers at par, so every order rests.
    #[arg(long)]
    pub rest: bool,
}

/// Longest latency the histogram can hold; slower replies are clamped to it.
const LATENCY_NS_MAX: u64 = 60_000_000_000;
/// Par and order price of the load instrument, and the units of each order.
const PRICE: &str = "1.00";
const ORDER_QUANTITY: &str = "1";

/// Counters shared by every worker.
#[derive(Default)]
struct Totals {
    /// Tickets handed out: each is one order to send.
    issued: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
}

/// When to stop and how fast to go, for one worker.
#[derive(Clone, Copy)]
struct Plan {
    count: Option<u64>,
    deadline: Instant,
    /// Time between this worker's planned sends; `None` as fast as possible.
    interval: Option<Duration>,
    in_flight: usize,
}

impl Plan {
    /// Waits until the planned send time of this worker's order number `sent` and returns it;
    /// as fast as possible, that is now.
    async fn pace(&self, started: Instant, sent: u64) -> Instant {
        match self.interval {
            Some(interval) => {
                let planned =
                    started + interval.saturating_mul(u32::try_from(sent).unwrap_or(u32::MAX));
                tokio::time::sleep_until(planned.into()).await;
                planned
            }
            None => Instant::now(),
        }
    }

    /// Claims the next order, or `None` when the run is over.
    fn ticket(&self, totals: &Totals) -> Option<u64> {
        if Instant::now() >= self.deadline {
            return None;
        }
        let ticket = totals.issued.fetch_add(1, Ordering::Relaxed);
        match self.count {
            Some(count) if ticket >= count => None,
            _ => Some(ticket),
        }
    }
}

/// One contributor on one connection.
struct Worker {
    index: usize,
    channel: Channel,
    token: String,
    instrument: pb::InstrumentRef,
    run: String,
    /// Orders rest instead of trading (`--rest`).
    rest: bool,
}

impl Worker {
    /// Alternating sides, mirrored between the two contributors of a connection, so that every
    /// sell meets a buy at the same price and holdings oscillate instead of draining.
    fn order(&self, sequence: u64) -> pb::PlaceOrderRequest {
        let sell = (sequence ^ self.index as u64) & 1 == 0;
        let price = if self.rest && !sell {
            // 0.01 to 0.99: below every offer.
            format!("0.{:02}", 1 + (sequence / 2) % 99)
        } else {
            PRICE.to_string()
        };
        pb::PlaceOrderRequest {
            request_id: format!("{}-{}-{sequence}", self.run, self.index),
            instrument: Some(self.instrument.clone()),
            side: if sell { pb::Side::Sell } else { pb::Side::Buy } as i32,
            price,
            quantity: ORDER_QUANTITY.to_string(),
            time_in_force: pb::TimeInForce::GoodTillCancelled as i32,
            // Cancel the own resting order rather than the incoming one, so that a contributor never
            // piles up orders on both sides when its two streams drift apart.
            self_trade_prevention: pb::SelfTradePrevention::CancelResting as i32,
        }
    }
}

fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, LATENCY_NS_MAX, 3)?)
}

fn record(histogram: &mut Histogram<u64>, since: Instant) {
    let nanoseconds = u64::try_from(since.elapsed().as_nanos()).unwrap_or(LATENCY_NS_MAX);
    histogram.saturating_record(nanoseconds.clamp(1, LATENCY_NS_MAX));
}

pub async fn run(
    server: &str,
    tls_ca: Option<&std::path::Path>,
    token: Option<&str>,
    args: LoadArgs,
) -> anyhow::Result<()> {
    let token = token.ok_or_else(|| {
        anyhow::anyhow!("mutua load sets up its own market: pass the operator's --token")
    })?;
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    let setup_channel = connect_with(server, tls_ca).await?;
    let contributors = args.connections * 2;
    let market = set_up_market(setup_channel, token, contributors, args.units_each).await?;
    println!(
        "market ready: {} with {contributors} contributors on {} connections",
        market.symbol, args.connections
    );

    let run = format!("load-{:016x}", rand::random::<u64>());
    let mut workers = Vec::with_capacity(contributors);
    for connection in 0..args.connections {
        let channel = connect_with(server, tls_ca).await?;
        for seat in 0..2 {
            let index = connection * 2 + seat;
            workers.push(Worker {
                index,
                channel: channel.clone(),
                token: market.contributor_tokens[index].clone(),
                instrument: instrument_ref(&market.symbol),
                run: run.clone(),
                rest: args.rest,
            });
        }
    }

    let in_flight = match (args.in_flight, args.mode) {
        (0, Mode::Unary | Mode::Health) => 8,
        (0, Mode::Stream | Mode::StreamEcho) => 1_024,
        (chosen, _) => chosen,
    };
    let started = Instant::now();
    let duration = if args.count.is_some() {
        Duration::from_secs(24 * 3600)
    } else {
        Duration::from_secs(args.duration)
    };
    let plan = Plan {
        count: args.count,
        deadline: started + duration,
        interval: (args.rate > 0)
            .then(|| Duration::from_secs_f64(contributors as f64 / args.rate as f64)),
        in_flight: in_flight.max(1),
    };
    let totals = Arc::new(Totals::default());
    let mut consumers = Vec::with_capacity(args.audit_consumers);
    let stop_consumers = tokio::sync::watch::channel(false);
    for _ in 0..args.audit_consumers {
        let channel = connect_with(server, tls_ca).await?;
        let mut client = pb::audit_client::AuditClient::new(channel.clone())
            .max_decoding_message_size(256 << 20);
        let from = journal_end(&mut client, token).await? + 1;
        consumers.push(tokio::spawn(audit_consumer(
            client,
            token.to_string(),
            from,
            None,
            stop_consumers.1.clone(),
        )));
    }
    let progress = progress_bar(&args, totals.clone());

    let mut handles = Vec::with_capacity(workers.len());
    for worker in workers {
        let totals = totals.clone();
        handles.push(tokio::spawn(async move {
            match args.mode {
                Mode::Unary | Mode::Health => {
                    unary_worker(worker, args.mode, plan, started, totals).await
                }
                Mode::Stream => stream_worker(worker, plan, started, totals).await,
                Mode::StreamEcho => echo_worker(worker, plan, started, totals).await,
            }
        }));
    }
    let mut latency = new_histogram()?;
    for handle in handles {
        latency.add(handle.await??)?;
    }
    let elapsed = started.elapsed();
    progress.abort();
    report(&totals, &latency, elapsed, &args);
    if !consumers.is_empty() {
        // Give the live feeds a moment to read the last batches, then stop them.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = stop_consumers.0.send(true);
        let mut client = pb::audit_client::AuditClient::new(connect_with(server, tls_ca).await?);
        let last = journal_end(&mut client, token).await?;
        for (index, consumer) in consumers.into_iter().enumerate() {
            let read = consumer.await??;
            println!(
                "audit feed {index}: {} records live, {:.0} records/s over the run, ended {} records behind",
                read.records,
                read.records as f64 / elapsed.as_secs_f64(),
                last.saturating_sub(read.last_sequence)
            );
        }
    }
    if args.audit_catch_up {
        let channel = connect_with(server, tls_ca).await?;
        let mut client =
            pb::audit_client::AuditClient::new(channel).max_decoding_message_size(256 << 20);
        let last = journal_end(&mut client, token).await?;
        let began = Instant::now();
        let (_keep_open, never) = tokio::sync::watch::channel(false);
        let read = audit_consumer(client, token.to_string(), 1, Some(last), never).await?;
        let took = began.elapsed();
        println!(
            "audit catch-up: {} records from record 1 in {:.2} s: {:.0} records/s",
            read.records,
            took.as_secs_f64(),
            read.records as f64 / took.as_secs_f64()
        );
    }
    Ok(())
}

/// The journal's last sequence number now.
async fn journal_end(
    client: &mut pb::audit_client::AuditClient<Channel>,
    token: &str,
) -> anyhow::Result<u64> {
    Ok(client
        .chain_head(authorized(
            pb::ChainHeadRequest { sequence: 0 },
            Some(token),
        )?)
        .await
        .map_err(status_error)?
        .into_inner()
        .last_sequence)
}

/// What an audit consumer read.
struct FeedRead {
    records: u64,
    last_sequence: u64,
}

/// Reads the audit feed from `from` until record `until` or until told to stop, counting
/// records and checking that they follow one another.
async fn audit_consumer(
    mut client: pb::audit_client::AuditClient<Channel>,
    token: String,
    from: u64,
    until: Option<u64>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<FeedRead> {
    let mut stream = client
        .stream(authorized(
            pb::AuditStreamRequest {
                from_sequence: from,
            },
            Some(&token),
        )?)
        .await
        .map_err(status_error)?
        .into_inner();
    let mut read = FeedRead {
        records: 0,
        last_sequence: from - 1,
    };
    loop {
        if until.is_some_and(|until| read.last_sequence >= until) {
            return Ok(read);
        }
        let message = tokio::select! {
            message = stream.message() => message.map_err(status_error)?,
            _ = stop.changed() => return Ok(read),
        };
        let Some(message) = message else {
            return Ok(read);
        };
        for record in message.records {
            anyhow::ensure!(
                record.sequence == read.last_sequence + 1,
                "the audit feed skipped from {} to {}",
                read.last_sequence,
                record.sequence
            );
            read.last_sequence = record.sequence;
            read.records += 1;
        }
    }
}

fn progress_bar(args: &LoadArgs, totals: Arc<Totals>) -> tokio::task::JoinHandle<()> {
    let bar = match args.count {
        Some(count) => indicatif::ProgressBar::new(count),
        None => indicatif::ProgressBar::new(args.duration * 1_000),
    };
    let template = if args.count.is_some() {
        "{bar:40} {pos}/{len} orders {msg}"
    } else {
        "{bar:40} {elapsed} {msg}"
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let counted = args.count.is_some();
    let started = Instant::now();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(200));
        loop {
            ticker.tick().await;
            let done =
                totals.accepted.load(Ordering::Relaxed) + totals.rejected.load(Ordering::Relaxed);
            let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
            bar.set_position(if counted {
                done
            } else {
                started.elapsed().as_millis() as u64
            });
            bar.set_message(format!("{done} answered, {rate:.0}/s"));
        }
    })
}

fn report(totals: &Totals, latency: &Histogram<u64>, elapsed: Duration, args: &LoadArgs) {
    let accepted = totals.accepted.load(Ordering::Relaxed);
    let rejected = totals.rejected.load(Ordering::Relaxed);
    let failed = totals.failed.load(Ordering::Relaxed);
    let answered = accepted + rejected;
    let micros = |quantile: f64| latency.value_at_quantile(quantile) as f64 / 1_000.0;
    let loop_kind = if args.rate > 0 {
        format!("open loop at {}/s", args.rate)
    } else {
        "as fast as possible".to_string()
    };
    println!();
    println!(
        "mode {:?}, {} connections, {loop_kind}",
        args.mode, args.connections
    );
    println!(
        "answered {answered} orders in {:.2} s: {:.0} orders/s",
        elapsed.as_secs_f64(),
        answered as f64 / elapsed.as_secs_f64()
    );
    println!("accepted {accepted}, rejected {rejected}, failed calls {failed}");
    println!(
        "latency µs: p50 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
        micros(0.50),
        micros(0.99),
        micros(0.999),
        latency.max() as f64 / 1_000.0
    );
}

async fn unary_worker(
    worker: Worker,
    mode: Mode,
    plan: Plan,
    started: Instant,
    totals: Arc<Totals>,
) -> anyhow::Result<Histogram<u64>> {
    let worker = Arc::new(worker);
    let latency = Arc::new(Mutex::new(new_histogram()?));
    let permits = Arc::new(Semaphore::new(plan.in_flight));
    let mut sent = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    while plan.ticket(&totals).is_some() {
        let planned = plan.pace(started, sent).await;
        let permit = permits.clone().acquire_owned().await?;
        let (worker, latency, totals) = (worker.clone(), latency.clone(), totals.clone());
        let message = worker.order(sent);
        sent += 1;
        tasks.spawn(async move {
            let outcome = if mode == Mode::Health {
                let mut client =
                    tonic_health::pb::health_client::HealthClient::new(worker.channel.clone());
                client
                    .check(tonic_health::pb::HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .map(|_| ())
            } else {
                let mut client = pb::exchange_client::ExchangeClient::new(worker.channel.clone());
                match authorized(message, Some(&worker.token)) {
                    Ok(request) => client.place_order(request).await.map(|_| ()),
                    Err(_) => Err(tonic::Status::invalid_argument("token")),
                }
            };
            // Measured from the planned send time: a backlog shows up as latency.
            if let Ok(mut histogram) = latency.lock() {
                record(&mut histogram, planned);
            }
            match outcome {
                Ok(_) => totals.accepted.fetch_add(1, Ordering::Relaxed),
                Err(status) if crate::convert::reason_code_of(&status).is_some() => {
                    totals.rejected.fetch_add(1, Ordering::Relaxed)
                }
                Err(_) => totals.failed.fetch_add(1, Ordering::Relaxed),
            };
            drop(permit);
        });
        // Reap finished calls so the set stays as small as the permits allow.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let histogram = latency
        .lock()
        .map_err(|_| anyhow::anyhow!("latency histogram poisoned"))?
        .clone();
    Ok(histogram)
}

/// How one reply on a pipelined stream counts.
enum Counted {
    Accepted,
    Rejected,
    Failed,
}

/// Drives one pipelined stream: sends `message(n)` for the n-th message while the plan allows,
/// with at most `plan.in_flight` unanswered; replies come back in order, each timed from its
/// message's planned (open loop) or actual send.
async fn pipelined<M, R, Fut>(
    plan: Plan,
    started: Instant,
    totals: Arc<Totals>,
    token: &str,
    message: impl Fn(u64) -> M + Send + 'static,
    open: impl FnOnce(tonic::Request<ReceiverStream<M>>) -> Fut,
    count: impl Fn(&R) -> Counted,
    what: &str,
) -> anyhow::Result<Histogram<u64>>
where
    M: Send + 'static,
    Fut: std::future::Future<Output = Result<tonic::Response<tonic::Streaming<R>>, tonic::Status>>,
{
    let (requests, outgoing) = mpsc::channel::<M>(plan.in_flight);
    let request = authorized(ReceiverStream::new(outgoing), Some(token))?;
    // The send times of messages not yet answered, oldest first: replies come back in order.
    let pending: Arc<Mutex<VecDeque<Instant>>> =
        Arc::new(Mutex::new(VecDeque::with_capacity(plan.in_flight)));
    let window = Arc::new(Semaphore::new(plan.in_flight));

    let sender = {
        let (pending, window, totals) = (pending.clone(), window.clone(), totals.clone());
        tokio::spawn(async move {
            let mut sent = 0u64;
            while plan.ticket(&totals).is_some() {
                let planned = plan.pace(started, sent).await;
                let Ok(permit) = window.acquire().await else {
                    break;
                };
                permit.forget();
                let since = if plan.interval.is_some() {
                    planned
                } else {
                    Instant::now()
                };
                if let Ok(mut queue) = pending.lock() {
                    queue.push_back(since);
                }
                let next = message(sent);
                sent += 1;
                if requests.send(next).await.is_err() {
                    break;
                }
            }
            // Dropping `requests` ends the client's half of the stream.
            sent
        })
    };

    let mut replies = open(request).await.map_err(status_error)?.into_inner();
    let mut latency = new_histogram()?;
    loop {
        let reply = match replies.message().await {
            Ok(Some(reply)) => reply,
            Ok(None) => break,
            Err(status) => {
                totals.failed.fetch_add(1, Ordering::Relaxed);
                eprintln!("{what} stream ended: {}", status_error(status));
                break;
            }
        };
        let since = pending.lock().ok().and_then(|mut queue| queue.pop_front());
        if let Some(since) = since {
            record(&mut latency, since);
        }
        window.add_permits(1);
        match count(&reply) {
            Counted::Accepted => totals.accepted.fetch_add(1, Ordering::Relaxed),
            Counted::Rejected => totals.rejected.fetch_add(1, Ordering::Relaxed),
            Counted::Failed => totals.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
    sender.await?;
    Ok(latency)
}

/// Pipelined orders on one `OrderEntry` stream.
async fn stream_worker(
    worker: Worker,
    plan: Plan,
    started: Instant,
    totals: Arc<Totals>,
) -> anyhow::Result<Histogram<u64>> {
    let mut client = pb::exchange_client::ExchangeClient::new(worker.channel.clone());
    let token = worker.token.clone();
    pipelined(
        plan,
        started,
        totals,
        &token,
        move |sent| pb::OrderEntryRequest {
            command: Some(pb::order_entry_request::Command::Place(worker.order(sent))),
        },
        |request| async move { client.order_entry(request).await },
        |reply: &pb::OrderEntryResponse| match reply.result {
            Some(EntryResult::Rejected(_)) => Counted::Rejected,
            Some(_) => Counted::Accepted,
            None => Counted::Failed,
        },
        "order-entry",
    )
    .await
}

/// Bytes of a typical order-entry reply: an order placed with one fill.
fn order_entry_reply_bytes() -> u32 {
    let reply = pb::OrderEntryResponse {
        request_id: "load-0000000000-0000000000".into(),
        result: Some(EntryResult::Placed(pb::PlaceOrderResponse {
            order_id: 1_000_000,
            status: pb::OrderStatus::Filled as i32,
            fills: vec![pb::Fill {
                maker_order_id: 999_999,
                price: "1.00".into(),
                quantity: "1".into(),
                notional: "1.00".into(),
            }],
            remaining_quantity: "0".into(),
            commit: Some(pb::Commit {
                sequence: 1_000_000,
                ..Default::default()
            }),
            ..Default::default()
        })),
    };
    prost::Message::encoded_len(&reply) as u32
}

/// `stream`'s baseline: the same pipelining and accounting over `Diagnostics.Echo`, each
/// message an order-entry request's bytes echoed back at an order-entry reply's size.
async fn echo_worker(
    worker: Worker,
    plan: Plan,
    started: Instant,
    totals: Arc<Totals>,
) -> anyhow::Result<Histogram<u64>> {
    let mut client = pb::diagnostics_client::DiagnosticsClient::new(worker.channel.clone());
    let token = worker.token.clone();
    let reply_bytes = order_entry_reply_bytes();
    pipelined(
        plan,
        started,
        totals,
        &token,
        move |sent| pb::EchoMessage {
            payload: prost::Message::encode_to_vec(&pb::OrderEntryRequest {
                command: Some(pb::order_entry_request::Command::Place(worker.order(sent))),
            }),
            reply_bytes,
        },
        |request| async move { client.echo(request).await },
        |_: &pb::EchoMessage| Counted::Accepted,
        "echo",
    )
    .await
}

/// The market the load runs in.
struct LoadMarket {
    symbol: String,
    contributor_tokens: Vec<String>,
}

/// Registers an issuer and `contributors` contributors, lists an instrument with a 100 %
/// holding cap (so a few contributors may hold it all), issues `units_each` units to every
/// contributor through an offering at par, gives each enough cash, and opens trading.
async fn set_up_market(
    channel: Channel,
    operator: &str,
    contributors: usize,
    units_each: u64,
) -> anyhow::Result<LoadMarket> {
    let mut registry = pb::registry_client::RegistryClient::new(channel.clone());
    let mut accounts = pb::accounts_client::AccountsClient::new(channel);
    let nonce = format!("{:06X}", rand::random::<u32>() & 0xFF_FFFF);
    let symbol = format!("LOAD-{nonce}");
    let id = |what: &str| format!("load-setup-{nonce}-{what}");

    let register =
        |role: pb::Role, name: String, request_id: String| pb::RegisterParticipantRequest {
            request_id,
            role: role as i32,
            name,
        };
    let issuer = registry
        .register_participant(authorized(
            register(
                pb::Role::Organization,
                format!("load issuer {nonce}"),
                id("issuer"),
            ),
            Some(operator),
        )?)
        .await
        .map_err(status_error)?
        .into_inner();
    // Only an accredited organization may list and offer.
    registry
        .set_accreditation(authorized(
            pb::SetAccreditationRequest {
                request_id: id("accredit"),
                organization_id: issuer.participant_id,
                accredited: true,
            },
            Some(operator),
        )?)
        .await
        .map_err(status_error)?;
    let listing = pb::ListInstrumentRequest {
        request_id: id("list"),
        symbol: symbol.clone(),
        kind: pb::InstrumentKind::CommunityShare as i32,
        issuer_id: issuer.participant_id,
        tick_size: "0.01".into(),
        lot_size: "1".into(),
        par: PRICE.into(),
        return_cap: "0.05".into(),
        price_floor: String::new(),
        holding_cap: Some("1".into()),
        ..Default::default()
    };
    registry
        .list_instrument(authorized(listing, Some(operator))?)
        .await
        .map_err(status_error)?;

    let total_units = units_each
        .checked_mul(contributors as u64)
        .ok_or_else(|| anyhow::anyhow!("--units-each too large"))?;
    let offering = pb::OpenOfferingRequest {
        request_id: id("offer"),
        instrument: Some(instrument_ref(&symbol)),
        quantity: total_units.to_string(),
        minimum_quantity: total_units.to_string(),
    };
    let offering = registry
        .open_offering(authorized(offering, Some(&issuer.token))?)
        .await
        .map_err(status_error)?
        .into_inner();

    let mut contributor_tokens = Vec::with_capacity(contributors);
    for index in 0..contributors {
        let name = format!("load contributor {nonce}-{index}");
        let contributor = registry
            .register_participant(authorized(
                register(
                    pb::Role::Contributor,
                    name,
                    id(&format!("contributor-{index}")),
                ),
                Some(operator),
            )?)
            .await
            .map_err(status_error)?
            .into_inner();
        // The subscription at par, plus as much again to buy with.
        let cash = u128::from(units_each) * 2 + 1_000;
        let deposit = pb::DepositRequest {
            request_id: id(&format!("deposit-{index}")),
            participant_id: contributor.participant_id,
            amount: cash.to_string(),
        };
        accounts
            .deposit(authorized(deposit, Some(operator))?)
            .await
            .map_err(status_error)?;
        let subscription = pb::SubscribeRequest {
            request_id: id(&format!("subscribe-{index}")),
            offering_id: offering.offering_id,
            quantity: units_each.to_string(),
        };
        registry
            .subscribe(authorized(subscription, Some(&contributor.token))?)
            .await
            .map_err(status_error)?;
        contributor_tokens.push(contributor.token);
    }
    let close = pb::CloseOfferingRequest {
        request_id: id("close"),
        offering_id: offering.offering_id,
    };
    registry
        .close_offering(authorized(close, Some(&issuer.token))?)
        .await
        .map_err(status_error)?;
    let open = pb::SetTradingStatusRequest {
        request_id: id("open"),
        instrument: Some(instrument_ref(&symbol)),
        open: true,
    };
    registry
        .set_trading_status(authorized(open, Some(operator))?)
        .await
        .map_err(status_error)?;
    Ok(LoadMarket {
        symbol,
        contributor_tokens,
    })
}
