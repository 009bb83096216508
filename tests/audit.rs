//! The regulator's audit feed through the real server: a regulator disconnected at random points
//! while orders flow resumes without a gap or a duplicate, and its concatenated feed is the
//! journal, record by record; a record altered on disk is caught by the chain (by `mutua verify`,
//! and by the feed, which stops with DATA_LOSS naming it); a saved feed with a flipped byte, a
//! removed record, two records swapped or an edited field fails `mutua audit verify`, naming the
//! sequence; a voucher's private split never reaches the feed; a regulator that never reads
//! does not grow the server's memory.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use mutua_engine::{MarketConfig, ParticipantId};
use mutua_gateway::chain::{ChainVerifier, ChainedRecord, GENESIS_CHAIN};
use mutua_gateway::journal::Journal;
use mutua_gateway::pb;
use support::*;
use tonic::transport::Channel;
use tonic::Code;

/// A small xorshift: the test's random disconnection points, reproducible from the seed printed.
struct Random(u64);

impl Random {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound.max(1)
    }
}

fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1
}

struct Market {
    regulator: (u32, String),
    buyer: (u32, String),
    seller: (u32, String),
    share: u32,
}

async fn market(c: &mut Clients, operator: &str) -> Market {
    let issuer = register_accredited(c, operator, "audit-coop").await;
    let regulator = register(c, operator, pb::Role::Regulator, "the regulator").await;
    let buyer = register(c, operator, pb::Role::Contributor, "buyer").await;
    let seller = register(c, operator, pb::Role::Contributor, "seller").await;
    for trader in [&buyer, &seller] {
        deposit(c, operator, trader.0, "100000000.00").await;
    }
    let listing = pb::ListInstrumentRequest {
        holding_cap: Some("1".into()),
        ..share("AUDIT", issuer.0)
    };
    let share = list(c, operator, listing).await;
    open_trading(c, operator, share).await;
    run_offering(
        c,
        &issuer.1,
        share,
        "1000000",
        "1",
        &[(seller.1.as_str(), "1000000")],
    )
    .await;
    Market {
        regulator,
        buyer,
        seller,
        share,
    }
}

async fn place_orders(channel: Channel, token: String, share: u32, side: pb::Side, count: usize) {
    let mut exchange = pb::exchange_client::ExchangeClient::new(channel);
    for index in 0..count {
        // Every tenth order asks for a price outside the band: rejections are records too.
        let price = if index % 10 == 9 {
            "100000.00"
        } else {
            "10.00"
        };
        let _ = exchange
            .place_order(with_token(limit(share, side, price, "1"), &token))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regulator_disconnected_at_random_resumes_without_a_gap_and_its_feed_is_the_journal() {
    let seed = seed();
    let mut random = Random(seed);
    let server = start().await;
    let mut c = server.clients().await;
    let operator = server.operator_token.clone();
    let m = market(&mut c, &operator).await;

    let mut load = Vec::new();
    for (trader, side) in [(&m.buyer, pb::Side::Buy), (&m.seller, pb::Side::Sell)] {
        for _ in 0..2 {
            load.push(tokio::spawn(place_orders(
                server.channel().await,
                trader.1.clone(),
                m.share,
                side,
                1_500,
            )));
        }
    }

    let mut feed: Vec<pb::AuditRecord> = Vec::new();
    let mut connections = 0;
    let mut resumed_inside_a_batch = 0;
    loop {
        let load_done = load.iter().all(|task| task.is_finished());
        let end = last_sequence(&mut c, &m.regulator.1).await;
        let next = feed.last().map_or(1, |record| record.sequence + 1);
        if load_done && next > end {
            break;
        }
        connections += 1;
        let mut stream = c
            .audit
            .stream(with_token(
                pb::AuditStreamRequest {
                    from_sequence: next,
                },
                &m.regulator.1,
            ))
            .await
            .expect("open the feed")
            .into_inner();
        // Read a random number of records, possibly stopping inside a message, then hang up.
        let mut wanted = 1 + random.below(700);
        while wanted > 0 {
            let message = match tokio::time::timeout(Duration::from_secs(2), stream.message()).await
            {
                Ok(message) => message.expect("the feed stays healthy").expect("open"),
                // Nothing new: the load may have finished.
                Err(_) => break,
            };
            let take = (message.records.len() as u64).min(wanted);
            if take < message.records.len() as u64 {
                resumed_inside_a_batch += 1;
            }
            feed.extend(message.records.into_iter().take(take as usize));
            wanted -= take;
        }
        drop(stream);
    }
    for task in load {
        task.await.expect("load task");
    }
    assert!(
        connections >= 5,
        "the feed was resumed several times (seed {seed})"
    );

    let (_, data) = server.stop_keeping_data().await;
    let journal = Journal::open(data.path(), &MarketConfig::default()).expect("reopen");
    let mut verifier = ChainVerifier::after(0, GENESIS_CHAIN);
    let mut at = 0usize;
    journal
        .for_each_after(0, |applied| {
            let record = feed.get(at).unwrap_or_else(|| {
                panic!(
                    "the feed ends at {at} records but the journal has record {} (seed {seed})",
                    applied.sequence
                )
            });
            let chain = record.chain_hash.as_slice().try_into().expect("32 bytes");
            let decoded = verifier
                .check(record.sequence, &record.canonical, &chain)
                .unwrap_or_else(|error| panic!("{error} (seed {seed})"));
            assert_eq!(
                decoded,
                ChainedRecord::of_public(applied),
                "record {} of the feed is the journal's (seed {seed})",
                record.sequence
            );
            at += 1;
            Ok(())
        })
        .expect("read the journal");
    assert_eq!(at, feed.len(), "no record beyond the journal (seed {seed})");
    assert_eq!(
        verifier.head,
        journal.chain_head(),
        "the feed's chain ends where the journal's does"
    );
    assert!(feed.len() > 6_000, "the load's orders are all in the feed");
    eprintln!(
        "{} records over {connections} connections, {resumed_inside_a_batch} resumed inside a message (seed {seed})",
        feed.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_shows_who_did_what_and_the_accounts_after_but_never_a_voucher_split() {
    let server = start().await;
    let mut c = server.clients().await;
    let operator = server.operator_token.clone();
    let m = market(&mut c, &operator).await;
    let funder = register(&mut c, &operator, pb::Role::Funder, "the municipality").await;
    let care = register_accredited(&mut c, &operator, "Care Co-op").await;
    deposit(&mut c, &operator, funder.0, "5000.00").await;
    let package = c
        .vouchers
        .define_service_package(with_token(
            pb::DefineServicePackageRequest {
                request_id: request_id(),
                category: "care".into(),
                name: "a visit".into(),
                face_value: "200.00".into(),
            },
            &funder.1,
        ))
        .await
        .expect("package")
        .into_inner()
        .package_id;
    let issue_request = "issue-with-a-private-split".to_string();
    let voucher = c
        .vouchers
        .issue_voucher(with_token(
            pb::IssueVoucherRequest {
                request_id: issue_request.clone(),
                package_id: package,
                beneficiary_id: m.buyer.0,
                co_payment: "37.13".into(),
                expires_at_ns: now_ns() + 86_400_000_000_000,
            },
            &funder.1,
        ))
        .await
        .expect("issue")
        .into_inner()
        .voucher_id;
    c.vouchers
        .redeem_voucher(with_token(
            pb::RedeemVoucherRequest {
                request_id: request_id(),
                voucher_id: voucher,
                organization_id: care.0,
            },
            &m.buyer.1,
        ))
        .await
        .expect("redeem");
    let trade_request = "the-buy-that-trades".to_string();
    place(
        &mut c,
        &m.seller.1,
        limit(m.share, pb::Side::Sell, "10.00", "3"),
    )
    .await;
    place(
        &mut c,
        &m.buyer.1,
        pb::PlaceOrderRequest {
            request_id: trade_request.clone(),
            ..limit(m.share, pb::Side::Buy, "10.00", "2")
        },
    )
    .await;
    let end = last_sequence(&mut c, &m.regulator.1).await;
    let mut stream = c
        .audit
        .stream(with_token(
            pb::AuditStreamRequest { from_sequence: 0 },
            &m.regulator.1,
        ))
        .await
        .expect("feed")
        .into_inner();
    let mut feed = Vec::new();
    while feed.len() < end as usize {
        feed.extend(stream.message().await.unwrap().unwrap().records);
    }
    assert_eq!(feed[0].sequence, 1, "from 0 means from the beginning");

    // The trade: who, which request, what, and the cash and units after, for both sides.
    let buy = feed
        .iter()
        .find(|record| record.request_id == trade_request)
        .expect("the buy is in the feed");
    assert_eq!(buy.participant_id, m.buyer.0);
    assert_eq!(buy.command_kind, "PlaceOrder");
    assert!(buy.accepted);
    let kinds: Vec<&str> = buy.events.iter().map(|event| event.kind.as_str()).collect();
    assert_eq!(kinds, ["OrderAccepted", "Trade"]);
    assert!(buy.events[1]
        .json
        .contains(&format!("\"maker\":{}", m.seller.0)));
    let cash_of = |participant: u32| {
        buy.accounts
            .iter()
            .find(|account| {
                account.participant_id == participant && account.instrument_id.is_none()
            })
            .map(|account| account.balance)
    };
    let buyer_cash = balances(&mut c, &operator, Some(m.buyer.0)).await;
    assert_eq!(
        cash_of(m.buyer.0).map(|minor| format!("{}.{:02}", minor / 100, minor % 100)),
        Some(buyer_cash.balance.clone()),
        "the buyer's cash after the trade, as the accounts say it is now"
    );
    assert!(cash_of(m.seller.0).is_some(), "the seller's cash after");
    let units: Vec<(u32, u64)> = buy
        .accounts
        .iter()
        .filter(|account| account.instrument_id == Some(m.share))
        .map(|account| (account.participant_id, account.balance))
        .collect();
    assert!(
        units.contains(&(m.buyer.0, 2)),
        "the buyer holds 2 lots after: {units:?}"
    );

    // A rejection is a record with its reason.
    assert!(feed
        .iter()
        .all(|record| record.accepted || record.reason_code != 0));

    // The voucher: its issue is in the feed, its split is not, anywhere.
    let issue = feed
        .iter()
        .find(|record| record.request_id == issue_request)
        .expect("the issue is in the feed");
    assert_eq!(issue.command_kind, "IssueVoucher");
    assert!(issue.command_json.contains("\"co_payment_minor\":0"));
    assert!(issue
        .events
        .iter()
        .all(|event| event.kind != "VoucherSplit"));
    assert!(issue
        .events
        .iter()
        .any(|event| event.kind == "VoucherIssued"));
    let withheld: Vec<&str> = issue
        .withheld
        .iter()
        .map(|part| part.part.as_str())
        .collect();
    assert!(withheld.contains(&"command"), "{withheld:?}");
    assert!(
        issue.withheld.iter().all(|part| part.digest.len() == 32
            && (part.party_id == funder.0 || part.party_id == m.buyer.0)),
        "withheld for the funder or the beneficiary only"
    );
    for record in &feed {
        let text = format!("{record:?}");
        let mut shown = Vec::new();
        numbers(
            &serde_json::from_str(&record.command_json).unwrap(),
            &mut shown,
        );
        for event in &record.events {
            numbers(&serde_json::from_str(&event.json).unwrap(), &mut shown);
        }
        shown.extend(record.accounts.iter().map(|account| account.balance));
        for secret in [3_713u64, 16_287] {
            assert!(
                !shown.contains(&secret),
                "record {} shows a part of the split ({secret})",
                record.sequence
            );
        }
        assert!(!text.contains("VoucherSplit"));
        assert!(
            record.withheld.is_empty()
                || record
                    .accounts
                    .iter()
                    .all(|account| account.participant_id != m.buyer.0
                        || account.instrument_id.is_some()),
            "record {}: the beneficiary's cash beside a voucher is withheld",
            record.sequence
        );
    }
    // And the chain over it all holds.
    let mut verifier = ChainVerifier::after(0, GENESIS_CHAIN);
    for record in &feed {
        let chain = record.chain_hash.as_slice().try_into().unwrap();
        verifier
            .check(record.sequence, &record.canonical, &chain)
            .expect("chain");
    }
    let _ = ParticipantId(0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_regulator_and_the_operator_read_the_feed_and_feeds_are_bounded() {
    let server = start_with(&["--audit-streams", "2"]).await;
    let mut c = server.clients().await;
    let operator = server.operator_token.clone();
    let m = market(&mut c, &operator).await;
    let refused = c
        .audit
        .stream(with_token(
            pb::AuditStreamRequest { from_sequence: 1 },
            &m.buyer.1,
        ))
        .await
        .expect_err("a contributor may not");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let first = c
        .audit
        .stream(with_token(
            pb::AuditStreamRequest { from_sequence: 1 },
            &m.regulator.1,
        ))
        .await
        .expect("one");
    let second = c
        .audit
        .stream(with_token(
            pb::AuditStreamRequest { from_sequence: 1 },
            &operator,
        ))
        .await
        .expect("two");
    let third = c
        .audit
        .stream(with_token(
            pb::AuditStreamRequest { from_sequence: 1 },
            &m.regulator.1,
        ))
        .await
        .expect_err("a third is over the bound");
    assert_eq!(third.code(), Code::ResourceExhausted);
    assert_eq!(reason_code(&third), Some(1010));
    drop(first);
    drop(second);
    // The places are given back once the feeds notice their clients left.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match c
            .audit
            .stream(with_token(
                pb::AuditStreamRequest { from_sequence: 1 },
                &m.regulator.1,
            ))
            .await
        {
            Ok(_) => break,
            Err(status)
                if status.code() == Code::ResourceExhausted && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(status) => panic!("the bound was not given back: {status:?}"),
        }
    }
    server.stop().await;
}

/// Every number in a JSON value.
fn numbers(value: &serde_json::Value, out: &mut Vec<u64>) {
    match value {
        serde_json::Value::Number(number) => out.extend(number.as_u64()),
        serde_json::Value::Array(items) => items.iter().for_each(|item| numbers(item, out)),
        serde_json::Value::Object(fields) => fields.values().for_each(|item| numbers(item, out)),
        _ => {}
    }
}

// ---- The real binary: tampering, and a regulator that never reads ----

fn mutua(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mutua"))
        .args(args)
        .output()
        .expect("run mutua")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_feed_or_journal_is_caught_and_the_record_named() {
    let data = private_tempdir();
    let server = support::process::start_with(data.path(), &["--snapshot-every", "40"]);
    let operator = server.operator_token.clone().expect("first start");
    let channel = Channel::from_shared(server.address.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c = Clients::new(channel.clone());
    let m = market(&mut c, &operator).await;
    place_orders(
        channel.clone(),
        m.buyer.1.clone(),
        m.share,
        pb::Side::Buy,
        60,
    )
    .await;
    place_orders(channel, m.seller.1.clone(), m.share, pb::Side::Sell, 60).await;
    let end = last_sequence(&mut c, &m.regulator.1).await;
    assert!(end > 120);

    // A saved feed, followed by the CLI in two runs (the second resumes), verifies.
    let feed = data.path().join("..").join(format!(
        "feed-{}.jsonl",
        data.path().file_name().unwrap().to_string_lossy()
    ));
    let feed = feed.to_str().unwrap().to_string();
    let server_flag = server.address.clone();
    let token = m.regulator.1.clone();
    for until in [end / 2, end] {
        let out = mutua(&[
            "audit",
            "follow",
            "--server",
            &server_flag,
            "--token",
            &token,
            "--until",
            &until.to_string(),
            "--out",
            &feed,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&feed).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the saved feed is private to its user");
    }
    let lines: Vec<String> = std::fs::read_to_string(&feed)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        lines.len() as u64,
        end,
        "each record once across the two runs"
    );
    let verified = mutua(&[
        "audit",
        "verify",
        &feed,
        "--live",
        "--server",
        &server_flag,
        "--token",
        &token,
    ]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert!(String::from_utf8_lossy(&verified.stdout).contains("the server's chain after record"));

    let check = |name: &str, lines: &[String], expected: &str| {
        let path = format!("{feed}.{name}");
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let out = mutua(&["audit", "verify", &path]);
        let said = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{name}: verify must fail");
        assert!(
            said.contains(expected),
            "{name}: expected {expected:?} in {said:?}"
        );
        std::fs::remove_file(path).unwrap();
    };
    // A flipped byte in a record's canonical bytes.
    let mut flipped = lines.clone();
    let mut record: serde_json::Value = serde_json::from_str(&flipped[30]).unwrap();
    let canonical = record["canonical"].as_str().unwrap().to_string();
    let mut bytes = canonical.into_bytes();
    let at = bytes.len() - 4;
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    record["canonical"] = serde_json::Value::String(String::from_utf8(bytes).unwrap());
    flipped[30] = record.to_string();
    check("flipped", &flipped, "record 31");
    // A removed record.
    let mut removed = lines.clone();
    removed.remove(50);
    check("removed", &removed, "record 52");
    // Two records swapped.
    let mut swapped = lines.clone();
    swapped.swap(70, 71);
    check("swapped", &swapped, "record 72");
    // A field shown that its canonical bytes do not say.
    let mut edited = lines.clone();
    let mut record: serde_json::Value = serde_json::from_str(&edited[90]).unwrap();
    record["request_id"] = serde_json::Value::String("someone-else".into());
    edited[90] = record.to_string();
    check("edited", &edited, "record 91");

    // The journal itself altered on disk, past its checksum: a request id rewritten in an early
    // record (replay does not compare request ids, so only the chain can see it).
    let (stopped_at, _) = server.terminate();
    // Nothing was sent since `end` was read (the journal's end is updated before any reply, so
    // it was not stale); `>=` leaves room for a clock command.
    assert!(stopped_at >= end);
    // The first record from 8 on that carries a request id.
    let target = lines
        .iter()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|record| {
            record["sequence"].as_u64().unwrap() >= 8
                && !record["request_id"].as_str().unwrap().is_empty()
        })
        .and_then(|record| record["sequence"].as_u64())
        .expect("a record with a request id");
    assert!(target < 40, "older than the snapshots");
    {
        let journal = Journal::open(data.path(), &MarketConfig::default()).unwrap();
        let (key, sealed) = journal
            .record_location(target)
            .unwrap()
            .expect("the record");
        let db = journal.shared_db();
        let commands = db.cf_handle("commands").unwrap();
        let mut value = db.get_cf(commands, key).unwrap().unwrap();
        let record = &mut value[sealed.clone()];
        // Payload: sequence, timestamp (varints), then the request id's length and bytes.
        let payload = &mut record[4..];
        let (_, rest) = postcard::take_from_bytes::<(u64, u64)>(payload).unwrap();
        let length_at = payload.len() - rest.len();
        assert!(payload[length_at] > 0, "the record has a request id");
        payload[length_at + 1] ^= 0x01;
        let crc = crc32c::crc32c(&record[4..]);
        record[..4].copy_from_slice(&crc.to_le_bytes());
        db.put_cf(commands, key, &value).unwrap();
    }
    // `mutua verify` replays from genesis and names the batch.
    let verify = mutua(&["verify", "--data", data.path().to_str().unwrap()]);
    let said = String::from_utf8_lossy(&verify.stderr).to_string()
        + &String::from_utf8_lossy(&verify.stdout);
    assert!(!verify.status.success(), "verify refuses: {said}");
    assert!(said.contains("audit chain breaks"), "{said}");
    // A start checks every record behind its snapshot that no earlier start has checked, chain
    // included: it refuses, naming the batch.
    let refused = mutua(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
        "--data",
        data.path().to_str().unwrap(),
    ]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "the server started on an altered journal"
    );
    assert!(said.contains("audit chain breaks"), "{said}");
    // Had an earlier start checked those records (the fact is kept in `meta`), this one would
    // not read them again: it starts, but its feed refuses to serve the altered batch.
    {
        let journal = Journal::open(data.path(), &MarketConfig::default()).unwrap();
        let db = journal.shared_db();
        let meta = db.cf_handle("meta").unwrap();
        db.put_cf(meta, b"verified-through", stopped_at.to_be_bytes())
            .unwrap();
    }
    let server = support::process::start_with(data.path(), &["--snapshot-every", "40"]);
    let channel = Channel::from_shared(server.address.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c = Clients::new(channel);
    let mut stream = c
        .audit
        .stream(with_token(
            pb::AuditStreamRequest { from_sequence: 1 },
            &m.regulator.1,
        ))
        .await
        .expect("feed")
        .into_inner();
    let status = loop {
        match stream.message().await {
            Ok(Some(message)) => assert!(
                message
                    .records
                    .iter()
                    .all(|record| record.sequence < target),
                "nothing of the altered batch is served"
            ),
            Ok(None) => panic!("the feed ended without saying why"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::DataLoss);
    assert!(
        status.message().contains("audit chain breaks"),
        "{status:?}"
    );
    server.terminate();
    let _ = std::fs::remove_file(&feed);
}

fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .expect("VmRSS");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|number| number.parse().ok())
        .expect("a number of kB");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regulator_that_never_reads_does_not_grow_the_servers_memory() {
    let data = private_tempdir();
    let server = support::process::start_with(data.path(), &["--snapshot-every", "100000000"]);
    let operator = server.operator_token.clone().expect("first start");
    let channel = Channel::from_shared(server.address.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c = Clients::new(channel.clone());
    let m = market(&mut c, &operator).await;
    // Feeds opened and never read: four of them, from the beginning, each on its own
    // connection (a stream never read holds its connection's flow-control window).
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let own = Channel::from_shared(server.address.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        stalled.push(
            Clients::new(own)
                .audit
                .stream(with_token(
                    pb::AuditStreamRequest { from_sequence: 1 },
                    &m.regulator.1,
                ))
                .await
                .expect("open")
                .into_inner(),
        );
    }
    let before = resident_bytes(server.child.id());
    // Orders that rest (bought below the sellers): each record rendered for a feed is several
    // hundred bytes, so four feeds buffering everything would need well over 200 MB.
    let orders = 100_000usize;
    let per_task = orders / 4;
    let mut load = Vec::new();
    for _ in 0..4 {
        load.push(tokio::spawn(place_orders(
            channel.clone(),
            m.buyer.1.clone(),
            m.share,
            pb::Side::Buy,
            per_task,
        )));
    }
    for task in load {
        task.await.unwrap();
    }
    let end = last_sequence(&mut c, &m.regulator.1).await;
    assert!(end as usize >= orders);
    let after = resident_bytes(server.child.id());
    let grown = after.saturating_sub(before);
    eprintln!(
        "resident memory {} MB before, {} MB after {orders} orders with 4 stalled feeds",
        before >> 20,
        after >> 20
    );
    assert!(
        grown < 120 << 20,
        "the server grew by {} MB with feeds that never read",
        grown >> 20
    );
    // The stalled feeds are still correct when they do read.
    let first = stalled[0].message().await.unwrap().unwrap();
    assert_eq!(first.records[0].sequence, 1);
    drop(stalled);
    server.terminate();
}

async fn read(stream: &mut tonic::Streaming<pb::Trade>) -> pb::Trade {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("a trade within 10 s")
        .expect("the stream stays healthy")
        .expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trades_stream_from_a_sequence_then_live_without_a_gap() {
    let server = start().await;
    let mut c = server.clients().await;
    let operator = server.operator_token.clone();
    let m = market(&mut c, &operator).await;
    let mut trade_sequences = Vec::new();
    for _ in 0..30 {
        place(
            &mut c,
            &m.seller.1,
            limit(m.share, pb::Side::Sell, "10.00", "1"),
        )
        .await;
        let buy = place(
            &mut c,
            &m.buyer.1,
            limit(m.share, pb::Side::Buy, "10.00", "1"),
        )
        .await;
        assert_eq!(buy.fills.len(), 1, "each buy trades");
        trade_sequences.push(buy.commit.expect("commit").sequence);
    }
    // From the eleventh trade's record: trades 11 to 30 from the journal, in order, no token.
    let mut from_eleventh = c
        .market_data
        .stream_trades(pb::StreamTradesRequest {
            instrument: by_id(m.share),
            from_sequence: Some(trade_sequences[10]),
        })
        .await
        .expect("open")
        .into_inner();
    for expected in &trade_sequences[10..] {
        let trade = read(&mut from_eleventh).await;
        assert_eq!(trade.sequence, *expected);
        assert_eq!(
            (trade.price.as_str(), trade.quantity.as_str()),
            ("10.00", "1")
        );
    }
    // Then live: the next trade, and nothing in between.
    place(
        &mut c,
        &m.seller.1,
        limit(m.share, pb::Side::Sell, "10.00", "1"),
    )
    .await;
    let buy = place(
        &mut c,
        &m.buyer.1,
        limit(m.share, pb::Side::Buy, "10.00", "1"),
    )
    .await;
    let live = read(&mut from_eleventh).await;
    assert_eq!(live.sequence, buy.commit.expect("commit").sequence);
    // From record 1: every trade ever, the same ones.
    let mut from_start = c
        .market_data
        .stream_trades(pb::StreamTradesRequest {
            instrument: None,
            from_sequence: Some(1),
        })
        .await
        .expect("open")
        .into_inner();
    for expected in trade_sequences.iter().chain([&live.sequence]) {
        assert_eq!(read(&mut from_start).await.sequence, *expected);
    }
    server.stop().await;
}
