//! Helpers shared by the integration tests: damaging journal records the way a torn write or a
//! flipped bit on disk would.

#![allow(dead_code)]

use mutua_gateway::journal::Journal;

fn flip_byte(journal: &Journal, family: &str, sequence: u64) {
    let db = journal.shared_db();
    let cf = db.cf_handle(family).expect("column family");
    let key = sequence.to_be_bytes();
    let mut record = db.get_cf(cf, key).expect("read").expect("record exists");
    let middle = record.len() / 2;
    record[middle] ^= 0x40;
    db.put_cf(cf, key, record).expect("write");
    db.flush_cf(cf).expect("flush");
}

/// Flips one byte in the middle of journal record `sequence`.
pub fn flip_byte_in_record(journal: &Journal, sequence: u64) {
    flip_byte(journal, "commands", sequence);
}

/// Flips one byte in the middle of the snapshot taken at `sequence`.
pub fn flip_byte_in_snapshot(journal: &Journal, sequence: u64) {
    flip_byte(journal, "snapshots", sequence);
}
