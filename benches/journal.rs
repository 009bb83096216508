//! Durable throughput of the journal: commands per second through `Journal::append` (encode,
//! checksum, one synced RocksDB write batch) at batch sizes 1, 64 and 1024, side by side with a
//! plain synced RocksDB write batch of the same records, already encoded, in the same run; and
//! replay throughput at start-up. Run: `cargo bench --bench journal`.

mod support;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mutua_engine::{Engine, MarketConfig};
use mutua_gateway::journal::{Applied, Journal};
use rocksdb::{Options, WriteBatch, WriteOptions, DB};
use support::{exchange_core_mix, Market, ISSUED_AT, NOW};

/// Journal records of the exchange-core mix, with their real outcomes and events.
/// The set-up of the market comes first, so that the records replay from genesis.
fn records(count: usize) -> Vec<Applied> {
    let mut market = Market::new(1_000);
    let mut commands = market.setup.clone();
    let setup_commands = commands.len();
    commands.extend(exchange_core_mix(
        &mut market,
        count - commands.len(),
        750,
        1_000,
        11,
    ));
    let mut engine = Engine::new(MarketConfig::default());
    let mut events = Vec::new();
    let applied: Vec<Applied> = commands
        .into_iter()
        .enumerate()
        .map(|(index, command)| {
            events.clear();
            let timestamp = if index < setup_commands {
                ISSUED_AT
            } else {
                NOW
            };
            let outcome = engine.apply(&command, timestamp, &mut events);
            let mut accounts = Vec::new();
            engine.accounts_after(&events, &mut accounts);
            Applied {
                sequence: index as u64 + 1,
                timestamp,
                request_id: format!("bench-{index}"),
                command,
                outcome,
                events: events.clone(),
                accounts,
            }
        })
        .collect();
    assert_eq!(
        engine.state_hash(),
        market.engine.state_hash(),
        "the records reproduce the market"
    );
    applied
}

fn bench_dir(name: &str) -> tempfile::TempDir {
    // Under target/, on the same disk as the data directory would be (not a tmpfs).
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("bench-data");
    std::fs::create_dir_all(&root).expect("bench dir");
    tempfile::Builder::new()
        .prefix(name)
        .tempdir_in(root)
        .expect("tempdir")
}

fn append_throughput(c: &mut Criterion) {
    let mut applied = records(200_000);
    let encoded: Vec<Vec<u8>> = applied
        .iter()
        .map(|record| postcard::to_allocvec(record).expect("encode"))
        .collect();
    let mean_bytes = encoded.iter().map(Vec::len).sum::<usize>() / encoded.len();
    eprintln!(
        "journal records: {} bytes on average (+4 checksum)",
        mean_bytes
    );

    let mut group = c.benchmark_group("journal_append");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for batch in [1usize, 64, 1024] {
        group.throughput(Throughput::Elements(batch as u64));
        let dir = bench_dir("journal");
        let mut journal = Journal::open(dir.path(), &MarketConfig::default()).expect("journal");
        let mut next = 0usize;
        group.bench_function(BenchmarkId::new("journal", batch), |b| {
            b.iter(|| {
                // Sequence numbers keep rising, as they do in service, so RocksDB appends.
                let start = next % (applied.len() - batch);
                for (offset, record) in applied[start..start + batch].iter_mut().enumerate() {
                    record.sequence = (next + offset) as u64 + 1;
                }
                next += batch;
                journal
                    .append(&applied[start..start + batch])
                    .expect("append");
            })
        });

        let dir = bench_dir("plain");
        let mut options = Options::default();
        options.create_if_missing(true);
        options.set_compression_type(rocksdb::DBCompressionType::Lz4);
        options.set_write_buffer_size(128 << 20);
        let db = DB::open(&options, dir.path()).expect("db");
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        let mut key = 0u64;
        group.bench_function(BenchmarkId::new("plain_rocksdb", batch), |b| {
            b.iter(|| {
                let mut write = WriteBatch::default();
                for _ in 0..batch {
                    key += 1;
                    write.put(key.to_be_bytes(), &encoded[key as usize % encoded.len()]);
                }
                db.write_opt(write, &sync).expect("write");
            })
        });
    }
    group.finish();
}

fn replay_throughput(c: &mut Criterion) {
    const RECORDS: usize = 1_000_000;
    let applied = records(RECORDS);
    let dir = bench_dir("replay");
    {
        let mut journal = Journal::open(dir.path(), &MarketConfig::default()).expect("journal");
        for chunk in applied.chunks(4096) {
            journal.append(chunk).expect("append");
        }
    }
    let journal = Journal::open(dir.path(), &MarketConfig::default()).expect("journal");
    let mut group = c.benchmark_group("journal_replay");
    group.sample_size(10);
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function("recover_from_genesis", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let began = Instant::now();
                let recovered = journal
                    .recover(MarketConfig::default(), |_, _| {})
                    .expect("recover");
                total += began.elapsed();
                assert_eq!(recovered.last_sequence, RECORDS as u64);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, append_throughput, replay_throughput);
criterion_main!(benches);
