//! The data directory and restarts of the real `mutua serve` process: a directory open to others
//! is refused; a crash at any moment of the very first start never locks the operator out; a
//! lost operator token is replaced at the next start; the snapshot cadence carries across
//! crashes, and a graceful stop right after a restart writes a snapshot.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use mutua_engine::MarketConfig;
use mutua_gateway::journal::Journal;
use mutua_gateway::pb;
use support::process::{start, start_with};
use tonic::transport::Channel;

async fn clients(address: &str) -> support::Clients {
    support::Clients::new(
        Channel::from_shared(address.to_string())
            .unwrap()
            .connect()
            .await
            .expect("connect"),
    )
}

/// Whether `token` is accepted as the operator's: listing participants needs the operator (or
/// the regulator).
async fn operator_accepted(address: &str, token: &str) -> bool {
    let mut c = clients(address).await;
    c.identity
        .list_participants(support::with_token(
            pb::ListParticipantsRequest::default(),
            token,
        ))
        .await
        .is_ok()
}

fn operator_token_file(data: &std::path::Path) -> String {
    std::fs::read_to_string(data.join("operator.token"))
        .expect("operator.token exists")
        .trim()
        .to_string()
}

#[test]
fn a_data_directory_open_to_others_is_refused() {
    let parent = support::private_tempdir();
    let open = parent.path().join("shared");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_mutua"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(&open)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is open to other users") && stderr.contains("chmod 700"),
        "{stderr}"
    );
    assert!(
        std::fs::read_dir(&open).unwrap().next().is_none(),
        "nothing was written into it"
    );

    // A directory that does not exist yet is created private.
    let fresh = parent.path().join("fresh");
    let server = start(&fresh);
    assert_eq!(
        std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777,
        0o700
    );
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_the_first_start_never_locks_the_operator_out() {
    let parent = support::private_tempdir();
    let data = parent.path().join("data");
    // Kill the first starts at moments spread over start-up, the token's write and its journaling.
    for delay_ms in [1u64, 3, 6, 9, 12, 15, 18, 22, 26, 30, 40, 60] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mutua"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
                "--data",
            ])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let server = start(&data);
    let token = operator_token_file(&data);
    if let Some(printed) = &server.operator_token {
        assert_eq!(printed, &token, "the printed token is the one in the file");
    }
    assert!(
        operator_accepted(&server.address, &token).await,
        "the operator's token file works after crashed first starts"
    );
    server.terminate();

    // A lost token file is replaced at the next start, and the new token works.
    std::fs::remove_file(data.join("operator.token")).unwrap();
    let server = start(&data);
    let replaced = server
        .operator_token
        .clone()
        .expect("a new token is printed");
    assert_eq!(operator_token_file(&data), replaced);
    assert!(operator_accepted(&server.address, &replaced).await);
    // A start with a live token in the file prints none and keeps it.
    server.terminate();
    let server = start(&data);
    assert_eq!(server.operator_token, None);
    assert_eq!(operator_token_file(&data), replaced);
    server.terminate();
}

/// Sends `count` deposits to the genesis operator's own account.
async fn deposits(address: &str, operator: &str, count: usize) {
    let mut c = clients(address).await;
    for _ in 0..count {
        support::deposit(&mut c, operator, 0, "1.00").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_keep_their_cadence_across_crashes() {
    let parent = support::private_tempdir();
    let data = parent.path().join("data");
    let flags = ["--snapshot-every", "100"];
    let server = start_with(&data, &flags);
    let operator = server
        .operator_token
        .clone()
        .expect("first start prints the token");
    // Crashes more often than the cadence: 60 commands, kill, 60 more, kill.
    deposits(&server.address, &operator, 60).await;
    server.kill();
    let server = start_with(&data, &flags);
    deposits(&server.address, &operator, 60).await;
    // The snapshot is written beside the engine thread: give it a moment before the crash.
    std::thread::sleep(Duration::from_millis(500));
    server.kill();

    // The second run took a snapshot once 100 commands had passed since the last one (none),
    // counting those of the first run, so the next start does not replay from genesis.
    let server = start_with(&data, &flags);
    assert!(server.recovered.0 >= 121, "{:?}", server.recovered);
    assert!(
        server.replayed_records < 100,
        "replayed {} records: no snapshot was taken across the crashes",
        server.replayed_records
    );
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_right_after_a_restart_writes_a_snapshot() {
    let parent = support::private_tempdir();
    let data = parent.path().join("data");
    let flags = ["--snapshot-every", "1000000"];
    let server = start_with(&data, &flags);
    let operator = server
        .operator_token
        .clone()
        .expect("first start prints the token");
    deposits(&server.address, &operator, 30).await;
    server.kill();
    let server = start_with(&data, &flags);
    let (stopped_at, _) = server.terminate();
    assert!(stopped_at >= 31);
    let journal = Journal::open(&data, &MarketConfig::default()).unwrap();
    assert_eq!(
        journal.snapshot_sequences().unwrap().last(),
        Some(&stopped_at),
        "the stop wrote a snapshot of where it stopped"
    );
}

#[test]
fn restarts_leave_a_bounded_number_of_rocksdb_log_files() {
    let parent = support::private_tempdir();
    let data = parent.path().join("data");
    for _ in 0..8 {
        start(&data).terminate();
    }
    let logs = std::fs::read_dir(&data)
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("LOG")
        })
        .count();
    assert!(logs <= 4, "{logs} RocksDB info logs after 8 starts");
}

/// Reads are answered by the read replica, which follows the journal: a read right after an
/// acknowledged command sees it, every time, and `mutua status` shows the replica caught up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_see_every_acknowledged_command_and_status_shows_the_replica() {
    let parent = support::private_tempdir();
    let data = parent.path().join("data");
    let server = start(&data);
    let operator = server
        .operator_token
        .clone()
        .expect("first start prints the token");
    let mut c = clients(&server.address).await;
    for round in 1..=40u32 {
        let acknowledged = support::deposit(&mut c, &operator, 0, "1.00").await;
        assert_eq!(acknowledged, format!("{round}.00"));
        let read = c
            .accounts
            .get_balances(support::with_token(
                pb::GetBalancesRequest::default(),
                &operator,
            ))
            .await
            .expect("balances")
            .into_inner();
        assert_eq!(
            read.balance, acknowledged,
            "read {round} missed its deposit"
        );
    }
    // The clock's ticks keep the journal moving: the replica is caught up at some reading.
    let mut printed = String::new();
    let mut caught_up = false;
    for _ in 0..50 {
        let status = Command::new(env!("CARGO_BIN_EXE_mutua"))
            .args(["status", "--metrics", &server.metrics])
            .output()
            .expect("run mutua status");
        assert!(status.status.success());
        printed = String::from_utf8_lossy(&status.stdout).to_string();
        let journaled = printed
            .lines()
            .find_map(|line| line.strip_prefix("journal sequence"))
            .map(|rest| rest.trim().to_string())
            .expect("status prints the journal sequence");
        caught_up = printed.contains(&format!("read replica          {journaled} (0 behind)\n"));
        if caught_up {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(caught_up, "{printed}");
    assert!(printed.contains("engine batch"), "{printed}");
    server.kill();
}
