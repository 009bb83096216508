//! Matching throughput of the engine on one core, in commands (elements) per second:
//! exchange-core's command mix over a book of about 1,000 resting orders on about 750 price
//! levels with 1,000 contributors, and the same mix on the shapes that break weak books (very
//! deep queues; very wide, sparse books; a stream where every other command is refused). Run:
//! `cargo bench --bench matching`.

mod support;

use std::time::{Duration, Instant};

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mutua_engine::{CommandKind, OrderId, SelfTradePrevention, Side, TimeInForce};
use support::{apply_all, Market, MixGenerator, Rng, TraderStream, NOW, PAR_TICKS, TRADERS};

const COMMANDS: usize = 1_000_000;

/// Warms the market up with one run of the workload (so the book, the order index and the
/// window of remembered command ids are at their steady-state size), generates a second run,
/// checks that replaying it from the warm state ends where generating it did, then measures
/// replaying it: commands per second.
fn bench_workload(c: &mut Criterion, name: &str, mut market: Market, levels: u64, resting: usize) {
    let mut generator = MixGenerator::new(levels, resting, 42);
    generator.generate(&mut market, COMMANDS);
    let start = market.engine.clone();
    let commands = generator.generate(&mut market, COMMANDS);
    let expected = market.engine.state_hash();

    // The replayed run must end exactly where the generating run did, and be consistent.
    let (check, _) = replay_checked(&start, &commands);
    assert_eq!(
        check.state_hash(),
        expected,
        "replay of the workload diverged"
    );
    eprintln!(
        "{name}: {} commands, {} orders resting at the end",
        commands.len(),
        check.resting_orders()
    );
    measure(c, name, &start, &commands);
}

/// The 80-trader stream (see `TraderStream`) on `levels` price levels: a warm-up run of
/// `warm_up` commands builds the book, then a run of `COMMANDS` from there is measured.
fn bench_traders(c: &mut Criterion, name: &str, levels: u64, warm_up: usize) {
    let mut market = Market::new(TRADERS);
    let mut stream = TraderStream::new(levels, 7);
    stream.generate(&mut market, warm_up);
    let start = market.engine.clone();
    let commands = stream.generate(&mut market, COMMANDS);
    let expected = market.engine.state_hash();
    let (check, refused) = replay_checked(&start, &commands);
    assert_eq!(
        check.state_hash(),
        expected,
        "replay of the stream diverged"
    );
    eprintln!(
        "{name}: {} commands ({refused} refused), {} orders resting before, {} at the end",
        commands.len(),
        start.resting_orders(),
        check.resting_orders()
    );
    measure(c, name, &start, &commands);
}

/// 80 traders on 11 price levels: deep queues, about 200,000 orders resting at the end, most
/// cancels naming orders already filled.
fn traders_deep_bench(c: &mut Criterion) {
    bench_traders(c, "traders_deep", 11, 1_000_000);
}

/// 80 traders on 1,000 price levels.
fn traders_wide_bench(c: &mut Criterion) {
    bench_traders(c, "traders_wide", 1_000, 1_000_000);
}

/// Replays `commands` from a clone of `start`, checks the invariants at the end, and returns the
/// engine and how many commands were refused.
fn replay_checked(
    start: &mutua_engine::Engine,
    commands: &[mutua_engine::Command],
) -> (mutua_engine::Engine, usize) {
    let mut check = start.clone();
    let mut events = Vec::with_capacity(4096);
    let mut refused = 0;
    for command in commands {
        events.clear();
        if check.apply(command, NOW, &mut events).result.is_err() {
            refused += 1;
        }
    }
    check
        .check_invariants()
        .expect("invariants hold after the workload");
    (check, refused)
}

/// Commands per second of replaying `commands` from a clone of `start`.
fn measure(
    c: &mut Criterion,
    name: &str,
    start: &mutua_engine::Engine,
    commands: &[mutua_engine::Command],
) {
    let mut events = Vec::with_capacity(4096);
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(commands.len() as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function(name, |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let mut engine = start.clone();
                let began = Instant::now();
                let digest = apply_all(&mut engine, commands, &mut events);
                total += began.elapsed();
                black_box(digest);
            }
            total
        })
    });
    group.finish();
}

/// exchange-core's mix: about 1,000 resting orders on about 750 levels, 1,000 contributors.
fn exchange_core_mix_bench(c: &mut Criterion) {
    bench_workload(c, "exchange_core_mix", Market::new(1_000), 750, 1_000);
}

/// A handful of price levels with very deep queues (100,000 resting orders on 4 levels): a
/// cancel or reduce that scanned its level would collapse here.
fn deep_queues_bench(c: &mut Criterion) {
    bench_workload(c, "deep_queues", Market::new(1_000), 5, 100_000);
}

/// Thousands of sparse levels (10,000 orders over 200,000 prices): finding the next best price
/// after a level empties must not walk the empty ones.
fn wide_book_bench(c: &mut Criterion) {
    bench_workload(
        c,
        "wide_book",
        Market::with_par(1_000, 1_000_000),
        200_000,
        10_000,
    );
}

/// The exchange-core mix with a refused command after every command: alternately a cancel of an
/// order that does not exist and a buy priced far outside the band. Refusals are journaled and
/// remembered for retries like any command, so a flood of them must cost no more than orders.
fn half_rejected_bench(c: &mut Criterion) {
    let mut market = Market::new(1_000);
    let mut generator = MixGenerator::new(750, 1_000, 42);
    generator.generate(&mut market, COMMANDS);
    let start = market.engine.clone();
    let valid = generator.generate(&mut market, COMMANDS / 2);
    let instrument = market.instrument;
    let mut rng = Rng::new(11);
    let mut commands = Vec::with_capacity(COMMANDS);
    for (index, command) in valid.into_iter().enumerate() {
        commands.push(command);
        let participant = market.contributors[rng.below(1_000) as usize];
        let kind = if index % 2 == 0 {
            CommandKind::CancelOrder {
                order: OrderId(u64::MAX - index as u64),
            }
        } else {
            CommandKind::PlaceOrder {
                instrument,
                side: Side::Buy,
                price_ticks: PAR_TICKS * 100,
                lots: 1_000,
                time_in_force: TimeInForce::GoodTillCancelled,
                self_trade: SelfTradePrevention::CancelIncoming,
            }
        };
        commands.push(market.command(participant, kind));
    }
    // Every other command is refused, and the run stays consistent.
    let (_, refused) = replay_checked(&start, &commands);
    assert!(
        refused >= COMMANDS / 2,
        "{refused} of {} commands refused",
        commands.len()
    );
    eprintln!(
        "half_rejected: {} commands, {refused} refused",
        commands.len()
    );
    measure(c, "half_rejected", &start, &commands);
}

criterion_group!(
    benches,
    exchange_core_mix_bench,
    deep_queues_bench,
    wide_book_bench,
    half_rejected_bench,
    traders_deep_bench,
    traders_wide_bench
);
criterion_main!(benches);
