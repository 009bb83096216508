//! Helpers shared by the integration tests: damaging journal records the way a torn write or a
//! flipped bit on disk would.

#![allow(dead_code)]

use mutua_gateway::journal::Journal;

fn flip_byte_at(
    journal: &Journal,
    family: &str,
    stored_key: [u8; 8],
    range: std::ops::Range<usize>,
) {
    let db = journal.shared_db();
    let cf = db.cf_handle(family).expect("column family");
    let mut value = db
        .get_cf(cf, stored_key)
        .expect("read")
        .expect("value exists");
    let middle = (range.start + range.end) / 2;
    value[middle] ^= 0x40;
    db.put_cf(cf, stored_key, value).expect("write");
    db.flush_cf(cf).expect("flush");
}

/// Flips one byte in the middle of journal record `sequence` (inside its batch's value).
pub fn flip_byte_in_record(journal: &Journal, sequence: u64) {
    let (stored_key, range) = journal
        .record_location(sequence)
        .expect("read")
        .expect("record exists");
    flip_byte_at(journal, "commands", stored_key, range);
}

/// Flips one byte in the middle of the snapshot taken at `sequence`.
pub fn flip_byte_in_snapshot(journal: &Journal, sequence: u64) {
    let stored_key = sequence.to_be_bytes();
    let db = journal.shared_db();
    let length = db
        .get_cf(
            db.cf_handle("snapshots").expect("column family"),
            stored_key,
        )
        .expect("read")
        .expect("snapshot exists")
        .len();
    flip_byte_at(journal, "snapshots", stored_key, 0..length);
}
