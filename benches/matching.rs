//! Matching throughput of the engine on one core: exchange-core's command mix over a book of
//! about 1,000 resting orders on about 750 price levels, 1,000 contributors. Reported as
//! commands (elements) per second. Run: `cargo bench --bench matching`.

mod support;

use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use support::{apply_all, exchange_core_mix, Market};

const COMMANDS: usize = 1_000_000;

fn exchange_core_mix_bench(c: &mut Criterion) {
    let mut market = Market::new(1_000);
    let start = market.engine.clone();
    let commands = exchange_core_mix(&mut market, COMMANDS, 750, 1_000, 42);
    let expected = market.engine.state_hash();

    // The replayed run must end exactly where the generating run did, and be consistent.
    let mut check = start.clone();
    let mut events = Vec::with_capacity(4096);
    apply_all(&mut check, &commands, &mut events);
    assert_eq!(check.state_hash(), expected, "replay of the workload diverged");
    check.check_invariants().expect("invariants hold after the workload");
    eprintln!("workload: {} commands, {} orders resting at the end", commands.len(), check.resting_orders());

    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(commands.len() as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("exchange_core_mix", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let mut engine = start.clone();
                let began = Instant::now();
                let digest = apply_all(&mut engine, &commands, &mut events);
                total += began.elapsed();
                black_box(digest);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, exchange_core_mix_bench);
criterion_main!(benches);
