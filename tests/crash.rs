//! Crash safety of the real `mutua serve` process: killed with SIGKILL while orders stream in, it
//! restarts on the same data directory with every acknowledged order and trade in place, and its
//! state hash equals a from-scratch replay of the journal. A flipped byte in the journal makes it
//! refuse to start, naming the record.

mod common;
mod support;

use std::process::Command;
use std::time::Duration;

use mutua_engine::{Ack, Event, MarketConfig, OrderId};
use mutua_gateway::journal::Journal;
use mutua_gateway::pb;
use tonic::transport::Channel;

use support::process::start;

/// Participants of the crash market: (id, token) for two traders.
struct Traders {
    instrument: u32,
    buyer: (u32, String),
    seller: (u32, String),
}

async fn set_up_market(address: &str, operator: &str) -> Traders {
    let channel = Channel::from_shared(address.to_string())
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let mut clients = support::Clients::new(channel);
    let issuer = support::register_accredited(&mut clients, operator, "crash-coop").await;
    let buyer = support::register(&mut clients, operator, pb::Role::Contributor, "buyer").await;
    let seller = support::register(&mut clients, operator, pb::Role::Contributor, "seller").await;
    for trader in [&buyer, &seller] {
        support::deposit(&mut clients, operator, trader.0, "100000000.00").await;
    }
    let listing = pb::ListInstrumentRequest {
        symbol: "CRASH".into(),
        holding_cap: Some("1".into()),
        ..support::share("CRASH", issuer.0)
    };
    let instrument = support::list(&mut clients, operator, listing).await;
    support::open_trading(&mut clients, operator, instrument).await;
    support::run_offering(
        &mut clients,
        &issuer.1,
        instrument,
        "1000000",
        "1",
        &[(seller.1.as_str(), "1000000")],
    )
    .await;
    Traders {
        instrument,
        buyer,
        seller,
    }
}

/// An order the server acknowledged: its sequence, order id and the fills it reported.
#[derive(Debug)]
struct Acknowledged {
    participant: u32,
    request_id: String,
    sequence: u64,
    order_id: u64,
    fills: usize,
}

/// Places orders one after another until the server goes away; returns what was acknowledged.
async fn place_until_killed(
    address: String,
    instrument: u32,
    trader: (u32, String),
    side: pb::Side,
    round: usize,
) -> Vec<Acknowledged> {
    let channel = Channel::from_shared(address)
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let mut exchange = pb::exchange_client::ExchangeClient::new(channel);
    let mut acknowledged = Vec::new();
    for index in 0.. {
        let request_id = format!("round-{round}-{}-{index}", trader.0);
        let order = pb::PlaceOrderRequest {
            request_id: request_id.clone(),
            ..support::limit(instrument, side, "10.00", "1")
        };
        match exchange
            .place_order(support::with_token(order, &trader.1))
            .await
        {
            Ok(response) => {
                let response = response.into_inner();
                let sequence = response.commit.expect("commit").sequence;
                acknowledged.push(Acknowledged {
                    participant: trader.0,
                    request_id,
                    sequence,
                    order_id: response.order_id,
                    fills: response.fills.len(),
                });
            }
            Err(_) => break,
        }
    }
    acknowledged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_any_moment_loses_nothing_acknowledged() {
    let data = support::private_tempdir();
    let server = start(data.path());
    let operator = server
        .operator_token
        .clone()
        .expect("first start prints the operator token");
    let traders = set_up_market(&server.address, &operator).await;
    let mut server = server;
    let mut acknowledged = Vec::new();
    // Kill points spread from "almost at once" to "well into the load", shifted a little by the
    // clock so that repeated runs probe different moments.
    let jitter = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_micros()
            % 40,
    );
    for (round, kill_after_ms) in [15u64, 90, 240, 520].into_iter().enumerate() {
        let buyer = tokio::spawn(place_until_killed(
            server.address.clone(),
            traders.instrument,
            traders.buyer.clone(),
            pb::Side::Buy,
            round,
        ));
        let seller = tokio::spawn(place_until_killed(
            server.address.clone(),
            traders.instrument,
            traders.seller.clone(),
            pb::Side::Sell,
            round,
        ));
        tokio::time::sleep(Duration::from_millis(kill_after_ms + jitter)).await;
        server.kill();
        let mut round_acknowledged = buyer.await.unwrap();
        round_acknowledged.extend(seller.await.unwrap());
        server = start(data.path());
        let (recovered_sequence, _) = server.recovered;
        for order in &round_acknowledged {
            assert!(
                order.sequence <= recovered_sequence,
                "order acknowledged at {} but the restart recovered only to {recovered_sequence}",
                order.sequence
            );
        }
        assert!(
            server.operator_token.is_none(),
            "the operator token is printed only on first start"
        );
        acknowledged.extend(round_acknowledged);
    }
    let trades: usize = acknowledged.iter().map(|order| order.fills).sum();
    eprintln!(
        "{} orders and {trades} trades acknowledged across four kills",
        acknowledged.len()
    );
    assert!(trades > 0, "the load produced trades");

    // A clean stop right after the last restart: the hash it stops with is the recovered one.
    let recovered = server.recovered.clone();
    let stopped = server.terminate();
    assert_eq!(
        stopped, recovered,
        "a restart followed by a clean stop changes nothing"
    );

    // `mutua verify`, the operator's check of a stopped exchange, agrees.
    let verified = Command::new(env!("CARGO_BIN_EXE_mutua"))
        .args(["verify", "--data"])
        .arg(data.path())
        .output()
        .expect("run mutua verify");
    assert!(
        verified.status.success(),
        "verify failed: {}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let report = String::from_utf8_lossy(&verified.stdout);
    assert!(
        report.contains(&format!(
            "state hash at sequence {}: {}",
            stopped.0, stopped.1
        )),
        "verify reported: {report}"
    );

    // The journal replayed from genesis, ignoring snapshots, reaches the same state, and holds
    // every acknowledged order, with its trades, at the sequence number it was acknowledged at.
    let journal = Journal::open(data.path(), &MarketConfig::default()).unwrap();
    let replayed = journal
        .replay_from_genesis(MarketConfig::default(), |_, _| {})
        .unwrap();
    assert_eq!(replayed.last_sequence, stopped.0);
    assert_eq!(
        replayed.engine.state_hash().to_string(),
        stopped.1,
        "from-scratch replay gives the served state hash"
    );
    let mut records = std::collections::HashMap::new();
    journal
        .for_each_after(0, |applied| {
            records.insert(applied.sequence, applied);
            Ok(())
        })
        .unwrap();
    for order in &acknowledged {
        let record = &records[&order.sequence];
        let command_id = mutua_gateway::convert::command_id(
            mutua_engine::ParticipantId(order.participant),
            &order.request_id,
        );
        assert_eq!(
            record.command.id, command_id,
            "sequence {} holds another command",
            order.sequence
        );
        assert_eq!(
            record.outcome.result,
            Ok(Ack::Order(OrderId(order.order_id)))
        );
        let trades = record
            .events
            .iter()
            .filter(|event| matches!(event, Event::Trade { .. }))
            .count();
        assert_eq!(
            trades, order.fills,
            "order {} reported {} fills, the journal holds {trades}",
            order.order_id, order.fills
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_the_journal_stops_the_server_from_starting() {
    let data = support::private_tempdir();
    let server = start(data.path());
    let operator = server.operator_token.clone().unwrap();
    set_up_market(&server.address, &operator).await;
    server.terminate();
    {
        let journal = Journal::open(data.path(), &MarketConfig::default()).unwrap();
        assert!(journal.last_sequence().unwrap() >= 8);
        common::flip_byte_in_record(&journal, 5);
    }
    let output = Command::new(env!("CARGO_BIN_EXE_mutua"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(data.path())
        .output()
        .expect("run mutua serve");
    assert!(
        !output.status.success(),
        "the server started on a corrupt journal"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("journal record 5 is corrupt"),
        "the refusal names the record: {stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("listening"),
        "it never served"
    );

    let verified = Command::new(env!("CARGO_BIN_EXE_mutua"))
        .args(["verify", "--data"])
        .arg(data.path())
        .output()
        .expect("run mutua verify");
    assert!(
        !verified.status.success(),
        "verify accepted a corrupt journal"
    );
    assert!(
        String::from_utf8_lossy(&verified.stderr).contains("journal record 5 is corrupt"),
        "verify names the record"
    );
}
