//! The journal on a real RocksDB: what is appended is what recovery rebuilds, snapshots shorten
//! replay without changing the state hash, and a damaged record or snapshot is refused by name.

mod common;

use mutua_engine::{
    Command, CommandId, CommandKind, Engine, MarketConfig, ParticipantId, Role, GENESIS_OPERATOR,
};
use mutua_gateway::journal::{Applied, Journal, JournalError};

/// Applies `commands` to `engine`, numbering them after `first_sequence - 1`.
fn apply(engine: &mut Engine, commands: &[Command], first_sequence: u64) -> Vec<Applied> {
    commands
        .iter()
        .enumerate()
        .map(|(offset, command)| {
            let mut events = Vec::new();
            let timestamp = 1_000 + first_sequence + offset as u64;
            let outcome = engine.apply(command, timestamp, &mut events);
            let mut accounts = Vec::new();
            engine.accounts_after(&events, &mut accounts);
            Applied {
                sequence: first_sequence + offset as u64,
                timestamp,
                request_id: format!("request-{}", first_sequence + offset as u64),
                command: command.clone(),
                outcome,
                events,
                accounts,
            }
        })
        .collect()
}

fn market_commands(count: u64) -> Vec<Command> {
    let mut commands = Vec::new();
    for index in 0..count {
        let kind = if index % 3 == 0 {
            CommandKind::RegisterParticipant {
                role: Role::Contributor,
                name: format!("contributor-{index}"),
            }
        } else {
            // Deposits to whoever was registered most recently (some to unknown accounts: rejected).
            CommandKind::Deposit {
                account: ParticipantId((index / 3 + 1) as u32 + (index % 2) as u32),
                amount_minor: 100 + index,
            }
        };
        commands.push(Command {
            id: CommandId(u128::from(index) + 1),
            participant: GENESIS_OPERATOR,
            kind,
        });
    }
    commands
}

#[test]
fn recovery_rebuilds_exactly_what_was_appended() {
    let dir = tempfile::tempdir().unwrap();
    let config = MarketConfig::default();
    let mut engine = Engine::new(config.clone());
    let applied = apply(&mut engine, &market_commands(300), 1);
    {
        let mut journal = Journal::open(dir.path(), &config).unwrap();
        journal.append(&applied[..100]).unwrap();
        journal.append(&applied[100..]).unwrap();
    }
    let journal = Journal::open(dir.path(), &config).unwrap();
    let recovered = journal.recover(config, |_, _| {}).unwrap();
    assert_eq!(recovered.last_sequence, 300);
    assert_eq!(recovered.replayed, 300);
    assert_eq!(recovered.engine.state_hash(), engine.state_hash());
}

#[test]
fn snapshots_shorten_replay_and_their_hashes_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let config = MarketConfig::default();
    let mut engine = Engine::new(config.clone());
    let commands = market_commands(400);
    let mut journal = Journal::open(dir.path(), &config).unwrap();
    for (chunk_index, chunk) in commands.chunks(100).enumerate() {
        let first = chunk_index as u64 * 100 + 1;
        journal.append(&apply(&mut engine, chunk, first)).unwrap();
        journal.write_snapshot(first + 99, &engine).unwrap();
    }
    let tail = apply(&mut engine, &market_commands(450)[400..], 401);
    journal.append(&tail).unwrap();
    drop(journal);

    let journal = Journal::open(dir.path(), &config).unwrap();
    assert_eq!(
        journal.snapshot_sequences().unwrap(),
        vec![200, 300, 400],
        "only the newest snapshots are kept"
    );
    let recovered = journal.recover(config, |_, _| {}).unwrap();
    // Replay starts at the second-newest snapshot and proves the newest one on the way.
    assert_eq!(recovered.replayed, 150);
    assert_eq!(recovered.last_sequence, 450);
    assert_eq!(recovered.engine.state_hash(), engine.state_hash());
}

#[test]
fn a_corrupt_record_is_reported_by_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let config = MarketConfig::default();
    let mut engine = Engine::new(config.clone());
    let applied = apply(&mut engine, &market_commands(50), 1);
    {
        let mut journal = Journal::open(dir.path(), &config).unwrap();
        journal.append(&applied).unwrap();
        common::flip_byte_in_record(&journal, 37);
    }
    let journal = Journal::open(dir.path(), &config).unwrap();
    match journal.recover(config, |_, _| {}) {
        Err(JournalError::CorruptRecord { sequence, .. }) => assert_eq!(sequence, 37),
        Err(other) => panic!("expected a corrupt record at 37, got {other}"),
        Ok(_) => panic!("recovery accepted a corrupt record"),
    }
}

#[test]
fn a_missing_record_is_a_gap_not_a_skip() {
    let dir = tempfile::tempdir().unwrap();
    let config = MarketConfig::default();
    let mut engine = Engine::new(config.clone());
    let applied = apply(&mut engine, &market_commands(20), 1);
    let mut journal = Journal::open(dir.path(), &config).unwrap();
    // A batch must be numbered consecutively...
    assert!(matches!(
        journal.append(applied.iter().filter(|record| record.sequence != 12)),
        Err(JournalError::Gap {
            expected: 12,
            found: 13
        })
    ));
    // ...so a lost record is a lost batch: 1–11, then 13–20, and 12 never written.
    journal.append(&applied[..11]).unwrap();
    journal.append(&applied[12..]).unwrap();
    match journal.recover(config, |_, _| {}) {
        Err(JournalError::Gap { expected, found }) => assert_eq!((expected, found), (12, 13)),
        other => panic!(
            "expected a gap at 12, got {:?}",
            other.map(|r| r.last_sequence)
        ),
    }
}

#[test]
fn a_tampered_snapshot_is_refused_with_its_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let config = MarketConfig::default();
    let mut engine = Engine::new(config.clone());
    let mut journal = Journal::open(dir.path(), &config).unwrap();
    journal
        .append(&apply(&mut engine, &market_commands(30), 1))
        .unwrap();
    journal.write_snapshot(30, &engine).unwrap();
    common::flip_byte_in_snapshot(&journal, 30);
    match journal.recover(config, |_, _| {}) {
        Err(JournalError::CorruptSnapshot { sequence, .. }) => assert_eq!(sequence, 30),
        Err(other) => panic!("expected snapshot 30 to be refused, got {other}"),
        Ok(_) => panic!("recovery accepted a tampered snapshot"),
    }
}

#[test]
fn a_journal_from_another_market_configuration_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    Journal::open(dir.path(), &MarketConfig::default()).unwrap();
    let other = MarketConfig {
        holding_cap_bp_default: 2_000,
        ..MarketConfig::default()
    };
    assert!(matches!(
        Journal::open(dir.path(), &other),
        Err(JournalError::ConfigMismatch)
    ));
}

#[test]
fn each_record_behind_a_snapshot_is_verified_by_one_start_and_by_every_verify() {
    let dir = tempfile::tempdir().unwrap();
    let config = MarketConfig::default();
    let mut engine = Engine::new(config.clone());
    let mut journal = Journal::open(dir.path(), &config).unwrap();
    // Batches of ten, as the engine thread writes them: a start reads the batch its snapshot
    // ends in, and none before it.
    let applied = apply(&mut engine, &market_commands(60), 1);
    for batch in applied.chunks(10) {
        journal.append(batch).unwrap();
    }
    journal.write_snapshot(60, &engine).unwrap();
    assert_eq!(journal.verified_through().unwrap(), 0);
    journal.recover(config.clone(), |_, _| {}).unwrap();
    assert_eq!(
        journal.verified_through().unwrap(),
        60,
        "the start verified every record its snapshot covers, and recorded it"
    );
    // A later start does not read those records again: start-up follows the records after the
    // snapshot, not the journal's length. `mutua verify` (replay from genesis) reads them all.
    common::flip_byte_in_record(&journal, 9);
    journal
        .recover(config.clone(), |_, _| {})
        .expect("records verified by an earlier start are not read again");
    match journal.replay_from_genesis(config, |_, _| {}) {
        Err(JournalError::CorruptRecord { sequence, .. }) => assert_eq!(sequence, 9),
        Err(other) => panic!("expected a corrupt record at 9, got {other}"),
        Ok(_) => panic!("verify accepted a corrupt record"),
    }
}

#[test]
fn a_corrupt_record_behind_a_snapshot_is_still_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = MarketConfig::default();
    let mut engine = Engine::new(config.clone());
    let mut journal = Journal::open(dir.path(), &config).unwrap();
    journal
        .append(&apply(&mut engine, &market_commands(60), 1))
        .unwrap();
    journal.write_snapshot(60, &engine).unwrap();
    // Recovery starts from the snapshot and replays nothing, yet must not trust record 9.
    common::flip_byte_in_record(&journal, 9);
    match journal.recover(config, |_, _| {}) {
        Err(JournalError::CorruptRecord { sequence, .. }) => assert_eq!(sequence, 9),
        Err(other) => panic!("expected a corrupt record at 9, got {other}"),
        Ok(_) => panic!("recovery trusted a corrupt record behind a snapshot"),
    }
}
