//! The journal replicated on NATS JetStream, with real processes: three `nats-server`s and
//! `mutua serve --replicate` nodes on loopback ports. The leader is killed with SIGKILL again and
//! again under load, NATS servers are lost, a leader is paused past its lease, and a standby's
//! audit feed and history are compared with the leader's.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mutua_gateway::pb;
use support::nats::NatsCluster;
use support::process::{start_with, Server};
use support::{private_tempdir, with_token, Clients};
use tonic::transport::Channel;

/// A `mutua serve --replicate` node: its own data directory and port, kept across restarts.
struct Node {
    name: String,
    data: tempfile::TempDir,
    port: u16,
    server: Option<Server>,
}

impl Node {
    fn new(name: &str) -> Node {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("free port")
            .port();
        Node {
            name: name.to_string(),
            data: private_tempdir(),
            port,
            server: None,
        }
    }

    fn address(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn start(&mut self, urls: &str, standby: bool) {
        let listen = format!("127.0.0.1:{}", self.port);
        let mut flags = vec![
            "--listen",
            listen.as_str(),
            "--replicate",
            urls,
            "--node",
            self.name.as_str(),
            "--lease-ms",
            "1000",
            "--clock-interval-ms",
            "0",
            "--snapshot-every",
            "500",
            "--participant-rate",
            "1000000",
            "--participant-burst",
            "1000000",
        ];
        if standby {
            flags.push("--standby");
        }
        self.server = Some(start_with(self.data.path(), &flags));
    }

    fn kill(&mut self) {
        if let Some(server) = self.server.take() {
            server.kill();
        }
    }

    fn pid(&self) -> u32 {
        self.server.as_ref().expect("running").child.id()
    }

    /// SIGTERM: the (sequence, state hash) it stops at.
    fn terminate(&mut self) -> (u64, String) {
        self.server.take().expect("running").terminate()
    }
}

/// The operator's token, written by whichever node first leads.
fn operator_token(data: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(token) = std::fs::read_to_string(data.join("operator.token")) {
            if !token.trim().is_empty() {
                return token.trim().to_string();
            }
        }
        assert!(Instant::now() < deadline, "no operator token was issued");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Three NATS servers (stopped when the cluster is dropped), node `a` leading and node `b` its
/// standby, and the operator's token.
fn leader_and_standby() -> (NatsCluster, String, [Node; 2], String) {
    let nats = NatsCluster::start();
    let urls = nats.urls();
    let mut nodes = [Node::new("a"), Node::new("b")];
    nodes[0].start(&urls, false);
    let operator = operator_token(nodes[0].data.path());
    nodes[1].start(&urls, true);
    (nats, urls, nodes, operator)
}

fn channel(address: &str) -> Channel {
    Channel::from_shared(address.to_string())
        .expect("address")
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(3))
        .connect_lazy()
}

async fn deposit(
    address: &str,
    operator: &str,
    participant: u32,
    request_id: &str,
) -> Result<pb::CashMovementResponse, tonic::Status> {
    let request = pb::DepositRequest {
        request_id: request_id.to_string(),
        participant_id: participant,
        amount: "0.01".into(),
    };
    pb::accounts_client::AccountsClient::new(channel(address))
        .deposit(with_token(request, operator))
        .await
        .map(|response| response.into_inner())
}

/// Sends one deposit to whichever node takes it, retrying the same request id on every node
/// until one acknowledges it: (the sequence it was first applied at, the node that answered).
async fn deposit_anywhere(
    addresses: &[String],
    operator: &str,
    participant: u32,
    request_id: &str,
) -> (u64, usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for (index, address) in addresses.iter().enumerate() {
            if let Ok(response) = deposit(address, operator, participant, request_id).await {
                return (response.commit.expect("commit").sequence, index);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no node took deposit {request_id} within a minute"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn balance(address: &str, operator: &str, participant: u32) -> Option<String> {
    let request = pb::GetBalancesRequest {
        participant_id: Some(participant),
    };
    pb::accounts_client::AccountsClient::new(channel(address))
        .get_balances(with_token(request, operator))
        .await
        .ok()
        .map(|response| response.into_inner().balance)
}

/// Waits until every node shows the same balance of `participant` and returns it.
async fn balances_agree(addresses: &[String], operator: &str, participant: u32) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut seen = Vec::new();
        for address in addresses {
            seen.push(balance(address, operator, participant).await);
        }
        if seen
            .iter()
            .all(|balance| balance.is_some() && *balance == seen[0])
        {
            return seen[0].clone().expect("a balance");
        }
        assert!(
            Instant::now() < deadline,
            "the nodes' balances never agreed: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn contributor(address: &str, operator: &str, name: &str) -> u32 {
    let mut clients = Clients::new(channel(address));
    support::register(&mut clients, operator, pb::Role::Contributor, name)
        .await
        .0
}

/// Cents as the API writes them.
fn cents(count: usize) -> String {
    format!("{}.{:02}", count / 100, count % 100)
}

/// A small deterministic generator, seeded from the clock and printed, for kill moments.
struct Random(u64);

impl Random {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_twenty_times_under_load_loses_nothing_and_applies_nothing_twice() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |elapsed| elapsed.as_nanos() as u64);
    println!("seed {seed}");
    let mut random = Random(seed);
    let (_nats, urls, mut nodes, operator) = leader_and_standby();
    let addresses: Vec<String> = nodes.iter().map(Node::address).collect();
    let participant = contributor(&addresses[0], &operator, "saver").await;

    // The load: deposits of one cent, each retried with its request id until a node takes it.
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, u64)>::new()));
    let answered_by = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Four clients at once, so that every kill finds requests in flight.
    let load: Vec<_> = (0..4)
        .map(|client| {
            let (acknowledged, answered_by, stop) =
                (acknowledged.clone(), answered_by.clone(), stop.clone());
            let (addresses, operator) = (addresses.clone(), operator.clone());
            tokio::spawn(async move {
                let mut index = 0u64;
                while !stop.load(Ordering::Acquire) {
                    let request_id = format!("deposit-{client}-{index}");
                    let (sequence, node) =
                        deposit_anywhere(&addresses, &operator, participant, &request_id).await;
                    answered_by.store(node, Ordering::Release);
                    acknowledged
                        .lock()
                        .expect("lock")
                        .push((request_id, sequence));
                    index += 1;
                }
            })
        })
        .collect();

    let mut fail_overs = Vec::new();
    for round in 0..20 {
        tokio::time::sleep(Duration::from_millis(200 + random.below(600))).await;
        let leader = answered_by.load(Ordering::Acquire);
        let before = acknowledged.lock().expect("lock").len();
        let killed_at = Instant::now();
        nodes[leader].kill();
        // The first acknowledgement from the other node ends the fail-over.
        loop {
            let now = acknowledged.lock().expect("lock").len();
            if now > before && answered_by.load(Ordering::Acquire) != leader {
                break;
            }
            assert!(
                killed_at.elapsed() < Duration::from_secs(30),
                "round {round}: no node took over within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        fail_overs.push(killed_at.elapsed());
        // The killed node comes back as a standby on the same data directory.
        nodes[leader].start(&urls, true);
    }
    stop.store(true, Ordering::Release);
    for client in load {
        client.await.expect("load");
    }

    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() > 100,
        "too little load: {}",
        acknowledged.len()
    );
    // Every acknowledged deposit is in the state exactly once, on both nodes.
    let agreed = balances_agree(&addresses, &operator, participant).await;
    assert_eq!(agreed, cents(acknowledged.len()));
    // Retrying any acknowledged request id answers with its first application, on either node's
    // say-so of the leader, and applies nothing.
    for (request_id, sequence) in acknowledged.iter().step_by(7) {
        let (again, _) = deposit_anywhere(&addresses, &operator, participant, request_id).await;
        assert_eq!(
            again, *sequence,
            "{request_id} was first applied at {sequence}"
        );
    }
    assert_eq!(
        balances_agree(&addresses, &operator, participant).await,
        cents(acknowledged.len())
    );
    let mut sorted = fail_overs.clone();
    sorted.sort();
    println!(
        "fail-over from SIGKILL to the first acknowledgement on the new leader over {} rounds: median {:?}, max {:?}",
        sorted.len(),
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1]
    );
    // The standby compared its state hash with the leader's at checkpoints (every 500
    // records, the first leader's --snapshot-every) since it last started.
    let standby = 1 - answered_by.load(Ordering::Acquire);
    let agreed = nodes[standby]
        .server
        .as_ref()
        .and_then(|server| server.metric("mutua_replication_checkpoint_sequence"))
        .unwrap_or(0.0);
    println!(
        "{} deposits acknowledged; the standby's state hash last agreed with the leader's at record {agreed}",
        acknowledged.len()
    );
    let stopped: Vec<(u64, String)> = nodes.iter_mut().map(Node::terminate).collect();
    assert_eq!(stopped[0], stopped[1], "both nodes stop at the same state");
    assert!(agreed > 0.0, "no checkpoint was compared");
}

/// A deposit sent once, with a deadline: whether it was acknowledged, or the status if not.
async fn deposit_once(
    address: &str,
    operator: &str,
    participant: u32,
    request_id: &str,
) -> Result<u64, tonic::Status> {
    match tokio::time::timeout(
        Duration::from_secs(4),
        deposit(address, operator, participant, request_id),
    )
    .await
    {
        Ok(Ok(response)) => Ok(response.commit.expect("commit").sequence),
        Ok(Err(status)) => Err(status),
        Err(_) => Err(tonic::Status::deadline_exceeded("no answer in 4 s")),
    }
}

/// Retries one request id on one node until it is acknowledged (or `within` passes).
async fn acknowledged_within(
    address: &str,
    operator: &str,
    participant: u32,
    request_id: &str,
    within: Duration,
) -> Option<u64> {
    let began = Instant::now();
    while began.elapsed() < within {
        if let Ok(sequence) = deposit_once(address, operator, participant, request_id).await {
            return Some(sequence);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_one_nats_server_keeps_writing_losing_two_stops_writes_until_one_returns() {
    let mut nats = NatsCluster::start();
    let urls = nats.urls();
    let mut node = Node::new("solo");
    node.start(&urls, false);
    let operator = operator_token(node.data.path());
    let address = node.address();
    let participant = contributor(&address, &operator, "saver").await;
    let mut applied = 0usize;
    for index in 0..20 {
        let id = format!("before-{index}");
        deposit_once(&address, &operator, participant, &id)
            .await
            .expect("a healthy cluster takes writes");
        applied += 1;
    }

    // One server down: writes go on (after the stream elects a new leader, if it was one).
    nats.kill_server(0);
    for index in 0..20 {
        let id = format!("one-down-{index}");
        let taken = acknowledged_within(
            &address,
            &operator,
            participant,
            &id,
            Duration::from_secs(30),
        )
        .await;
        assert!(
            taken.is_some(),
            "{id}: writes must go on with one NATS server down"
        );
        applied += 1;
    }

    // Two down: no quorum. Writes stop: refused UNAVAILABLE, or not answered, never acknowledged.
    nats.kill_server(1);
    let mut sent_without_quorum = Vec::new();
    let mut unavailable = 0;
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(25) && unavailable < 5 {
        let id = format!("no-quorum-{}", sent_without_quorum.len());
        match deposit_once(&address, &operator, participant, &id).await {
            Ok(sequence) => {
                // Taken before the loss was noticed is fine only if it was on a quorum: the
                // first few may have been replicated before the second server died.
                assert!(
                    began.elapsed() < Duration::from_secs(2),
                    "{id} acknowledged at {sequence} {:?} after the cluster lost its quorum",
                    began.elapsed()
                );
                applied += 1;
            }
            Err(status) => {
                if status.code() == tonic::Code::Unavailable {
                    unavailable += 1;
                }
                sent_without_quorum.push(id);
            }
        }
    }
    assert!(
        unavailable >= 5,
        "with two NATS servers down writes must be refused UNAVAILABLE"
    );
    // Reads go on from the node's own state.
    assert!(balance(&address, &operator, participant).await.is_some());

    // One returns: writes resume, and each request sent meanwhile applies once when retried.
    nats.start_server(0);
    let returned = Instant::now();
    let resumed = acknowledged_within(
        &address,
        &operator,
        participant,
        "after-return",
        Duration::from_secs(60),
    )
    .await;
    assert!(
        resumed.is_some(),
        "writes must resume once a quorum is back"
    );
    println!(
        "no quorum: {} writes refused ({unavailable} UNAVAILABLE); a server back: writes resumed after {:?}",
        sent_without_quorum.len(),
        returned.elapsed()
    );
    applied += 1;
    for id in &sent_without_quorum {
        let taken = acknowledged_within(
            &address,
            &operator,
            participant,
            id,
            Duration::from_secs(30),
        )
        .await;
        assert!(taken.is_some(), "{id} retried after the quorum returned");
        applied += 1;
    }
    assert_eq!(
        balance(&address, &operator, participant).await,
        Some(cents(applied))
    );
    node.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_past_its_lease_cannot_append_a_single_command() {
    let (_nats, urls, mut nodes, operator) = leader_and_standby();
    let (a, b) = (nodes[0].address(), nodes[1].address());
    let participant = contributor(&a, &operator, "saver").await;
    for index in 0..10 {
        deposit_once(&a, &operator, participant, &format!("first-{index}"))
            .await
            .expect("the leader takes writes");
    }
    // The standby, caught up (it knows the operator's token once it has applied its issue),
    // refuses writes and names the leader.
    balances_agree(&[a.clone(), b.clone()], &operator, participant).await;
    let refused = deposit_once(&b, &operator, participant, "to-standby")
        .await
        .expect_err("a standby takes no writes");
    assert_eq!(refused.code(), tonic::Code::Unavailable);
    assert_eq!(
        refused
            .metadata()
            .get("mutua-leader")
            .and_then(|value| value.to_str().ok()),
        Some(a.as_str())
    );

    let pause = |signal: &str, pid: u32| {
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    };
    pause("-STOP", nodes[0].pid());
    let taken = acknowledged_within(
        &b,
        &operator,
        participant,
        "on-b-0",
        Duration::from_secs(20),
    )
    .await
    .expect("the standby takes over once the paused leader's lease lapses");
    for index in 1..10 {
        deposit_once(&b, &operator, participant, &format!("on-b-{index}"))
            .await
            .expect("the new leader takes writes");
    }
    pause("-CONT", nodes[0].pid());
    // The old leader wakes up believing it leads: whatever it is sent, nothing is appended.
    let mut from_deposed = Vec::new();
    for index in 0..5 {
        let id = format!("to-deposed-{index}");
        assert!(
            deposit_once(&a, &operator, participant, &id).await.is_err(),
            "{id}: a deposed leader acknowledged a write"
        );
        from_deposed.push(id);
    }
    // It stops on its own, saying why, with a failure status.
    let mut server = nodes[0].server.take().expect("running");
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = server.child.try_wait().expect("wait") {
            break exit;
        }
        assert!(Instant::now() < deadline, "the deposed leader kept running");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!exit.success(), "a deposed leader exits with a failure");
    // None of what it was sent is in the exchange: each applies fresh on the new leader.
    for id in &from_deposed {
        let response = deposit(&b, &operator, participant, id)
            .await
            .expect("the new leader takes it");
        let commit = response.commit.expect("commit");
        assert!(
            !commit.replayed,
            "{id} had been applied by the deposed leader"
        );
        assert!(commit.sequence > taken);
    }
    // Restarted, the old leader follows as a standby: its journal was never ahead of the
    // cluster's, and it ends where the new leader does.
    nodes[0].start(&urls, true);
    let agreed = balances_agree(&[a.clone(), b.clone()], &operator, participant).await;
    assert_eq!(agreed, cents(10 + 10 + from_deposed.len()));
    let stopped: Vec<(u64, String)> = nodes.iter_mut().map(Node::terminate).collect();
    assert_eq!(stopped[0], stopped[1]);
}

/// The whole audit feed of a node, through `end`.
async fn audit_feed(address: &str, regulator: &str, end: u64) -> Vec<pb::AuditRecord> {
    let mut clients = Clients::new(channel(address));
    let mut stream = clients
        .audit
        .stream(with_token(
            pb::AuditStreamRequest { from_sequence: 0 },
            regulator,
        ))
        .await
        .expect("feed")
        .into_inner();
    let mut feed = Vec::new();
    while feed
        .last()
        .is_none_or(|record: &pb::AuditRecord| record.sequence < end)
    {
        let message = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .expect("the feed goes on")
            .expect("feed message")
            .expect("feed open");
        feed.extend(message.records);
    }
    feed.retain(|record| record.sequence <= end);
    feed
}

async fn chain_head(address: &str, regulator: &str) -> u64 {
    support::last_sequence(&mut Clients::new(channel(address)), regulator).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_serves_the_leaders_audit_feed_and_history_and_then_leads_on_from_them() {
    let (_nats, _urls, mut nodes, operator) = leader_and_standby();
    let (a, b) = (nodes[0].address(), nodes[1].address());

    // A market with trades, on the leader.
    let mut c = Clients::new(channel(&a));
    let regulator = support::register(&mut c, &operator, pb::Role::Regulator, "regulator").await;
    let issuer = support::register_accredited(&mut c, &operator, "coop").await;
    let buyer = support::register(&mut c, &operator, pb::Role::Contributor, "buyer").await;
    let seller = support::register(&mut c, &operator, pb::Role::Contributor, "seller").await;
    for trader in [&buyer, &seller] {
        support::deposit(&mut c, &operator, trader.0, "100000.00").await;
    }
    let listing = pb::ListInstrumentRequest {
        holding_cap: Some("1".into()),
        ..support::share("COOP", issuer.0)
    };
    let share = support::list(&mut c, &operator, listing).await;
    support::open_trading(&mut c, &operator, share).await;
    support::run_offering(
        &mut c,
        &issuer.1,
        share,
        "1000",
        "1",
        &[(seller.1.as_str(), "1000")],
    )
    .await;
    for index in 0..40 {
        let (trader, side) = if index % 2 == 0 {
            (&seller, pb::Side::Sell)
        } else {
            (&buyer, pb::Side::Buy)
        };
        support::place(&mut c, &trader.1, support::limit(share, side, "1.00", "3")).await;
    }

    let end = chain_head(&a, &regulator.1).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while chain_head(&b, &regulator.1).await < end {
        assert!(Instant::now() < deadline, "the standby did not catch up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The same feed, record for record, chain hash for chain hash.
    let leader_feed = audit_feed(&a, &regulator.1, end).await;
    let standby_feed = audit_feed(&b, &regulator.1, end).await;
    assert_eq!(leader_feed.len() as u64, end);
    assert!(leader_feed
        .iter()
        .any(|record| record.events.iter().any(|event| event.kind == "Trade")));
    assert_eq!(leader_feed, standby_feed);

    // The same history, for each trader.
    for trader in [&buyer, &seller] {
        let activity = |address: String| {
            let token = regulator.1.clone();
            async move {
                let mut clients = Clients::new(channel(&address));
                clients
                    .history
                    .list_activity(with_token(
                        pb::ActivityRequest {
                            filter: Some(pb::HistoryFilter {
                                participant_id: trader.0,
                                ..Default::default()
                            }),
                        },
                        &token,
                    ))
                    .await
                    .expect("activity")
                    .into_inner()
            }
        };
        let (on_a, on_b) = (activity(a.clone()).await, activity(b.clone()).await);
        assert!(on_a.entries.len() >= 20, "the trader's activity is there");
        assert_eq!(on_a.entries, on_b.entries);
    }

    // The leader stops (SIGTERM): the standby takes over and its feed goes on from the same
    // chain.
    nodes[0].terminate();
    let (sequence, _) = deposit_anywhere(
        std::slice::from_ref(&b),
        &operator,
        buyer.0,
        "after-hand-over",
    )
    .await;
    // (The new leader journals its own operator token first: its data directory had none.)
    assert!(
        sequence > end && sequence <= end + 2,
        "the new leader goes on from the last record"
    );
    let feed = audit_feed(&b, &regulator.1, sequence).await;
    assert_eq!(feed[..end as usize], leader_feed[..]);
    assert_eq!(feed.len() as u64, sequence);
    nodes[1].terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_starts_from_the_published_snapshot_and_still_serves_the_whole_audit_feed() {
    let nats = NatsCluster::start();
    let urls = nats.urls();
    let mut nodes = [Node::new("a"), Node::new("c")];
    nodes[0].start(&urls, false);
    let operator = operator_token(nodes[0].data.path());
    let (a, c) = (nodes[0].address(), nodes[1].address());
    let mut clients = Clients::new(channel(&a));
    let regulator =
        support::register(&mut clients, &operator, pb::Role::Regulator, "regulator").await;
    let participant = contributor(&a, &operator, "saver").await;
    // Enough records for snapshots (every 500) to be written and published.
    let mut deposits = Vec::new();
    for index in 0..1_200 {
        let id = format!("early-{index}");
        deposits.push(tokio::spawn({
            let (a, operator) = (a.clone(), operator.clone());
            async move { deposit_once(&a, &operator, participant, &id).await }
        }));
        if deposits.len() == 64 {
            for deposit in deposits.drain(..) {
                deposit
                    .await
                    .expect("task")
                    .expect("the leader takes writes");
            }
        }
    }
    for deposit in deposits.drain(..) {
        deposit
            .await
            .expect("task")
            .expect("the leader takes writes");
    }
    // The upload runs beside the leader's work: wait until the newest snapshot is out.
    tokio::time::sleep(Duration::from_secs(2)).await;

    nodes[1].start(&urls, true);
    let (started_at, _) = nodes[1].server.as_ref().expect("running").recovered.clone();
    assert!(
        started_at >= 500,
        "a new node starts from the published snapshot, not from genesis (started at {started_at})"
    );
    for index in 0..50 {
        deposit_once(&a, &operator, participant, &format!("late-{index}"))
            .await
            .expect("the leader takes writes");
    }
    assert_eq!(
        balances_agree(&[a.clone(), c.clone()], &operator, participant).await,
        cents(1_250)
    );
    // Its journal is whole all the same: the records under the snapshot were copied, their
    // chain checked, so its audit feed is the leader's from record 1.
    let end = chain_head(&a, &regulator.1).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while chain_head(&c, &regulator.1).await < end {
        assert!(Instant::now() < deadline, "the new node did not catch up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        audit_feed(&c, &regulator.1, end).await,
        audit_feed(&a, &regulator.1, end).await
    );
    let stopped: Vec<(u64, String)> = nodes.iter_mut().map(Node::terminate).collect();
    assert_eq!(stopped[0], stopped[1]);
    // Restarted, it recovers from its own journal and snapshots.
    nodes[1].start(&urls, true);
    assert_eq!(
        nodes[1].server.as_ref().expect("running").recovered,
        stopped[1]
    );
    nodes[1].terminate();
}

/// Runs `mutua serve` expecting it to refuse to start: its exit status and what it said.
fn refused_start(data: &Path, flags: &[&str]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mutua"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "off"])
        .args(flags)
        .arg("--data")
        .arg(data)
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start mutua serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the node started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut said = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut stderr, &mut said);
    }
    assert!(!status.success(), "a refusal exits with a failure: {said}");
    said
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_disagrees_with_the_cluster_is_refused_and_the_record_named() {
    let nats = NatsCluster::start();
    let urls = nats.urls();
    let mut node = Node::new("a");
    node.start(&urls, false);
    let operator = operator_token(node.data.path());
    let participant = contributor(&node.address(), &operator, "saver").await;
    for index in 0..20 {
        deposit_once(
            &node.address(),
            &operator,
            participant,
            &format!("d-{index}"),
        )
        .await
        .expect("the leader takes writes");
    }
    let (last, _) = node.terminate();

    // The journal says its last write came in another stream message than the one that holds
    // it: as if the cluster's journal had gone another way after this node's.
    {
        let journal = mutua_gateway::journal::Journal::open(
            node.data.path(),
            &mutua_engine::MarketConfig::default(),
        )
        .expect("open");
        let db = journal.shared_db();
        let meta = db.cf_handle("meta").expect("meta");
        let at = db
            .get_cf(meta, b"stream-sequence")
            .expect("read")
            .expect("a replicated journal records its stream position");
        let at = u64::from_be_bytes(at.as_slice().try_into().expect("8 bytes"));
        db.put_cf(meta, b"stream-sequence", (at - 1).to_be_bytes())
            .expect("write");
    }
    let said = refused_start(node.data.path(), &["--replicate", &urls, "--node", "a"]);
    assert!(
        said.contains(&format!("record {last}")) && said.contains("disagrees with the cluster"),
        "the refusal names the record: {said}"
    );

    // A journal written without --replicate is not a copy of the cluster's.
    let alone = private_tempdir();
    let mut single = start_with(alone.path(), &["--clock-interval-ms", "0"]);
    single.terminate_in_place();
    let said = refused_start(alone.path(), &["--replicate", &urls, "--node", "b"]);
    assert!(
        said.contains("not a copy of"),
        "a standalone journal is refused: {said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_proves_itself_to_nats_servers_that_require_it_from_a_private_file() {
    let nats = NatsCluster::start_with_user("mutua", "a-long-secret");
    let urls = nats.urls();
    let secrets = private_tempdir();
    let credentials = secrets.path().join("nats.credentials");
    std::fs::write(&credentials, "mutua:a-long-secret\n").expect("write");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
    }
    let credentials = credentials.to_str().expect("utf-8").to_string();

    // The servers do require it (their greeting says so).
    let port = urls
        .split(',')
        .next()
        .and_then(|url| url.rsplit(':').next())
        .and_then(|port| port.parse::<u16>().ok())
        .expect("a port");
    let mut greeting = String::new();
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stream), &mut greeting).expect("INFO");
    assert!(greeting.contains("\"auth_required\":true"), "{greeting}");

    // A credentials file others may read is refused before anything is sent.
    {
        use std::os::unix::fs::PermissionsExt;
        let open = secrets.path().join("open.credentials");
        std::fs::write(&open, "mutua:a-long-secret\n").expect("write");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let data = private_tempdir();
        let said = refused_start(
            data.path(),
            &[
                "--replicate",
                &urls,
                "--nats-credentials",
                open.to_str().expect("utf-8"),
            ],
        );
        assert!(said.contains("open to other users"), "{said}");
    }

    // With its credentials the node leads and takes writes.
    let mut node = Node::new("a");
    let listen = format!("127.0.0.1:{}", node.port);
    node.server = Some(start_with(
        node.data.path(),
        &[
            "--listen",
            &listen,
            "--replicate",
            &urls,
            "--node",
            "a",
            "--nats-credentials",
            &credentials,
            "--clock-interval-ms",
            "0",
        ],
    ));
    let operator = operator_token(node.data.path());
    let participant = contributor(&node.address(), &operator, "saver").await;
    deposit_once(&node.address(), &operator, participant, "with-credentials")
        .await
        .expect("the leader takes writes");
    node.terminate();
}
