//! Per-command latency of the engine on one core, as percentiles from an HdrHistogram: a
//! passive place, a cancel, and an aggressive order that trades, each measured over many
//! commands against a book of about 1,000 resting orders, beside the same clock reads around a
//! fixed spin as long as a command (the machine's own pauses); one participant alone growing its
//! window of command ids; and a book growing to a million resting orders and emptied.
//! Run: `cargo bench --bench latency`.

mod support;

use std::time::Instant;

use hdrhistogram::Histogram;
use mutua_engine::{CommandKind, Event, OrderId, SelfTradePrevention, Side, TimeInForce};
use support::{exchange_core_mix, Market, Rng, NOW, PAR_TICKS};

const SAMPLES: usize = 500_000;
/// Place-and-cancel pairs one participant sends alone.
const ONE_PARTICIPANT_PAIRS: usize = 200_000;
/// Steps of the machine's own spin: about 300 ns here, a passive place's median.
const MACHINE_SPIN_STEPS: u32 = 600;
/// Resting orders the big book grows to (the market's bound on one book is 1,000,000).
const BIG_BOOK: usize = 999_000;

/// Applies one command, recording how long `apply` took in `histogram`.
fn timed(
    engine: &mut mutua_engine::Engine,
    command: &mutua_engine::Command,
    events: &mut Vec<Event>,
    histogram: &mut Histogram<u64>,
) -> mutua_engine::Outcome {
    events.clear();
    let began = Instant::now();
    let outcome = engine.apply(command, NOW, events);
    histogram
        .record(began.elapsed().as_nanos() as u64)
        .expect("record");
    outcome
}

/// The order a place created; the benches only place orders that are accepted.
fn placed_order(outcome: mutua_engine::Outcome) -> OrderId {
    let Ok(mutua_engine::Ack::Order(order)) = outcome.result else {
        panic!("place rejected: {outcome:?}")
    };
    order
}

fn report(name: &str, histogram: &Histogram<u64>) {
    println!(
        "{name:<12} n={:<8} p50={:>6} ns  p99={:>6} ns  p99.9={:>6} ns  p99.99={:>7} ns  max={:>8} ns",
        histogram.len(),
        histogram.value_at_quantile(0.50),
        histogram.value_at_quantile(0.99),
        histogram.value_at_quantile(0.999),
        histogram.value_at_quantile(0.9999),
        histogram.max()
    );
}

fn main() {
    let mut market = Market::new(1_000);
    // Warm the book to the steady state of the throughput bench.
    exchange_core_mix(&mut market, 200_000, 750, 1_000, 7);
    let instrument = market.instrument;
    let mut rng = Rng::new(99);
    let mut events: Vec<Event> = Vec::with_capacity(4096);
    let mut place = Histogram::<u64>::new(3).expect("histogram");
    let mut cancel = Histogram::<u64>::new(3).expect("histogram");
    let mut aggressive = Histogram::<u64>::new(3).expect("histogram");
    // The machine's own: the same two clock reads around a fixed spin about as long as a
    // command, interleaved with the commands, so that the machine's pauses (interrupts, the
    // hypervisor), which land in a window in proportion to its length, are told apart from the
    // engine's.
    let mut nothing = Histogram::<u64>::new(3).expect("histogram");

    for _ in 0..SAMPLES {
        // Passive place, then cancel it: the book stays the same size.
        let owner = market.contributors[rng.below(1_000) as usize];
        let side = if rng.below(2) == 0 {
            Side::Buy
        } else {
            Side::Sell
        };
        let offset = 1 + rng.below(375);
        let price_ticks = if side == Side::Buy {
            PAR_TICKS - offset
        } else {
            PAR_TICKS + offset
        };
        let command = market.command(
            owner,
            CommandKind::PlaceOrder {
                instrument,
                side,
                price_ticks,
                lots: 1_000,
                time_in_force: TimeInForce::GoodTillCancelled,
                self_trade: SelfTradePrevention::CancelIncoming,
            },
        );
        let began = Instant::now();
        for step in 0..MACHINE_SPIN_STEPS {
            std::hint::black_box(step);
        }
        nothing
            .record(began.elapsed().as_nanos() as u64)
            .expect("record");
        let order = placed_order(timed(&mut market.engine, &command, &mut events, &mut place));

        let command = market.command(owner, CommandKind::CancelOrder { order });
        let outcome = timed(&mut market.engine, &command, &mut events, &mut cancel);
        assert!(outcome.result.is_ok(), "cancel rejected: {outcome:?}");

        // An aggressive order that trades against the touch; every resting order it uses up is
        // replaced by a passive one on the same side, so the book keeps its size.
        let taker = market.contributors[rng.below(1_000) as usize];
        let command = market.command(
            taker,
            CommandKind::PlaceOrder {
                instrument,
                side,
                price_ticks: if side == Side::Buy {
                    PAR_TICKS + 400
                } else {
                    PAR_TICKS - 400
                },
                lots: 10,
                time_in_force: TimeInForce::ImmediateOrCancel,
                self_trade: SelfTradePrevention::CancelIncoming,
            },
        );
        timed(&mut market.engine, &command, &mut events, &mut aggressive);
        let used_up = events
            .iter()
            .filter(|event| {
                matches!(
                    event,
                    Event::Trade {
                        maker_remaining_lots: 0,
                        ..
                    }
                )
            })
            .count();
        for _ in 0..used_up {
            let offset = 1 + rng.below(375);
            let price_ticks = if side == Side::Buy {
                PAR_TICKS + offset
            } else {
                PAR_TICKS - offset
            };
            let command = market.command(
                owner,
                CommandKind::PlaceOrder {
                    instrument,
                    side: side.opposite(),
                    price_ticks,
                    lots: 1_000,
                    time_in_force: TimeInForce::GoodTillCancelled,
                    self_trade: SelfTradePrevention::CancelIncoming,
                },
            );
            events.clear();
            market.engine.apply(&command, NOW, &mut events);
        }
    }
    market
        .engine
        .check_invariants()
        .expect("invariants hold after the latency run");
    println!(
        "engine latency, one command at a time, {} resting orders:",
        market.engine.resting_orders()
    );
    report("place", &place);
    report("cancel", &cancel);
    report("aggressive", &aggressive);
    report("spin only", &nothing);

    // One participant alone sending many commands: its window of remembered command ids grows
    // to its full size (131,072 ids a generation), where growing a whole index at once would
    // stall for milliseconds.
    let mut alone = Histogram::<u64>::new(3).expect("histogram");
    let owner = market.contributors[0];
    for index in 0..ONE_PARTICIPANT_PAIRS {
        let offset = 1 + (index % 300) as u64;
        let command = market.command(
            owner,
            CommandKind::PlaceOrder {
                instrument,
                side: Side::Buy,
                price_ticks: PAR_TICKS - offset,
                lots: 1_000,
                time_in_force: TimeInForce::GoodTillCancelled,
                self_trade: SelfTradePrevention::CancelIncoming,
            },
        );
        let order = placed_order(timed(&mut market.engine, &command, &mut events, &mut alone));
        let command = market.command(owner, CommandKind::CancelOrder { order });
        timed(&mut market.engine, &command, &mut events, &mut alone);
    }
    println!("one participant's {} commands:", 2 * ONE_PARTICIPANT_PAIRS);
    report("place+cancel", &alone);

    // A market growing its book to a million resting orders, then cancelling them all: every
    // structure that grows with the book (the slab, the id index, the ladders' queues, each
    // owner's remembered ids) grows here, and a growth that copied or rehashed it whole would be
    // this run's maximum.
    let mut market = Market::new(1_000);
    let instrument = market.instrument;
    let mut grow = Histogram::<u64>::new(3).expect("histogram");
    let mut shrink = Histogram::<u64>::new(3).expect("histogram");
    let mut placed = Vec::with_capacity(BIG_BOOK);
    for index in 0..BIG_BOOK {
        let owner = market.contributors[index % 1_000];
        let offset = 1 + (index % 900) as u64;
        let (side, price_ticks) = if index % 2 == 0 {
            (Side::Buy, PAR_TICKS - offset)
        } else {
            (Side::Sell, PAR_TICKS + offset)
        };
        let command = market.command(
            owner,
            CommandKind::PlaceOrder {
                instrument,
                side,
                price_ticks,
                lots: 1,
                time_in_force: TimeInForce::GoodTillCancelled,
                self_trade: SelfTradePrevention::CancelIncoming,
            },
        );
        let order = placed_order(timed(&mut market.engine, &command, &mut events, &mut grow));
        placed.push((owner, order));
    }
    let resting = market.engine.resting_orders();
    assert_eq!(resting, BIG_BOOK, "every order rests");
    for (owner, order) in placed {
        let command = market.command(owner, CommandKind::CancelOrder { order });
        let outcome = timed(&mut market.engine, &command, &mut events, &mut shrink);
        assert!(outcome.result.is_ok(), "cancel rejected: {outcome:?}");
    }
    assert_eq!(market.engine.resting_orders(), 0);
    println!("a book growing to {resting} resting orders, then cancelled:");
    report("place", &grow);
    report("cancel", &shrink);
}
