//! The journal: every applied command, its outcome and its events, written to RocksDB in one
//! synced write batch per engine batch before anything is acknowledged; snapshots of engine state
//! with their state hash; and recovery (newest trustworthy snapshot + replay).
//!
//! Each engine batch is one RocksDB value, keyed by the sequence number of its first record in
//! big-endian (so keys sort in sequence order): `count (u32 LE)`, then per record
//! `length (u32 LE) ++ crc32c (u32 LE) ++ postcard payload`, then the audit chain hash after the
//! batch's last record (32 bytes, see `chain.rs`). The length's top bit marks a record with parts
//! private to one participant, whose canonical form for the chain is not its payload. Record `i`
//! of the batch keyed `k` is sequence `k + i`, and its payload carries that number again. One value per batch costs
//! RocksDB one memtable insert per batch instead of one per command. A record whose checksum
//! fails, that is torn, that does not decode, or that breaks the sequence is reported with its
//! sequence number and the journal refuses to be served from: nothing is silently skipped.

use std::path::Path;
use std::sync::Arc;

use mutua_engine::{
    AccountAfter, Command, Engine, Event, MarketConfig, Outcome, Snapshot, StateHash, Timestamp,
};
use rocksdb::{ColumnFamilyDescriptor, IteratorMode, Options, WriteOptions, DB};
use serde::{Deserialize, Serialize};

use crate::chain::{self, ChainHash, ChainedRecord, GENESIS_CHAIN};

const CF_COMMANDS: &str = "commands";
const CF_SNAPSHOTS: &str = "snapshots";
const CF_META: &str = "meta";
const META_GENESIS: &[u8] = b"genesis-config";
/// The key that salts the digests of withheld record parts (`chain.rs`): 32 random bytes made
/// with the journal.
const META_WITHHOLDING_KEY: &[u8] = b"withholding-key";
/// The last record whose checksum and chain a start-up has verified (`u64`, big-endian): later
/// starts verify only the records after it (`mutua verify` still checks every one).
const META_VERIFIED_THROUGH: &[u8] = b"verified-through";
/// The replicated stream's sequence of the message that carried the last batch written (`u64`,
/// big-endian), written with that batch: where a replicated node resumes following the stream.
const META_STREAM_SEQUENCE: &[u8] = b"stream-sequence";
/// The top bit of a frame's length word: the record has private parts.
const PRIVATE_FLAG: u32 = 1 << 31;
/// Bytes of the chain hash that ends every batch value.
const TRAILER_BYTES: usize = 32;
/// Snapshots kept; older ones are deleted after a new one is written.
const SNAPSHOTS_KEPT_MAX: usize = 3;
/// RocksDB info log files kept in the data directory (the current one and older ones).
#[allow(non_upper_case_globals)]
const RocksDB_INFO_LOGS_KEPT_MAX: usize = 4;

pub use crate::record::Applied;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("storage error: {0}")]
    Storage(#[from] rocksdb::Error),
    #[error("journal record {sequence} is corrupt: {why}")]
    CorruptRecord { sequence: u64, why: String },
    #[error("journal has a gap: expected record {expected}, found {found}")]
    Gap { expected: u64, found: u64 },
    #[error("snapshot {sequence} is corrupt: {why}")]
    CorruptSnapshot { sequence: u64, why: String },
    #[error("state hash disagrees at sequence {sequence}: snapshot says {recorded}, replay gives {replayed}")]
    HashMismatch {
        sequence: u64,
        recorded: StateHash,
        replayed: StateHash,
    },
    #[error("replay of record {sequence} gave a different outcome than the journal recorded")]
    ReplayDiverged { sequence: u64 },
    #[error("the data directory was created with a different market configuration")]
    ConfigMismatch,
    #[error("the audit chain breaks in the batch ending at record {sequence}: a record was altered, removed or reordered after it was written")]
    ChainBroken { sequence: u64 },
    #[error("the journal writer stopped")]
    WriterStopped,
    #[error("the local journal holds records written under another exchange's withholding key: it is not a copy of this cluster's journal")]
    OtherExchange,
    #[error("the replicated journal refused the batch: {0}")]
    Replication(String),
    #[error("another node leads the exchange now (the cluster's journal moved past this node's): this node stops taking writes")]
    Deposed,
    #[error("record {sequence}: this node's journal disagrees with the cluster's: {why}")]
    Disagrees { sequence: u64, why: String },
}

/// A snapshot as stored: its sequence number, its state hash, and the encoded snapshot the hash
/// was taken over (encoded once, for both).
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    sequence: u64,
    hash: StateHash,
    snapshot: Vec<u8>,
}

/// Writes snapshots; cloneable onto a background thread, so that encoding, hashing and syncing a
/// large state does not stall the engine thread.
#[derive(Clone)]
pub struct SnapshotWriter {
    db: Arc<DB>,
}

impl SnapshotWriter {
    /// Stores `snapshot`, taken after `sequence`, synced, and prunes old snapshots.
    pub fn write(&self, sequence: u64, snapshot: &Snapshot) -> Result<StateHash, JournalError> {
        self.write_sealed(sequence, snapshot).map(|(hash, _)| hash)
    }

    /// As `write`, and hands back the stored record (checksum, sequence, hash and encoded
    /// state), which a replicated leader also publishes for new nodes.
    pub fn write_sealed(
        &self,
        sequence: u64,
        snapshot: &Snapshot,
    ) -> Result<(StateHash, Vec<u8>), JournalError> {
        let encoded = snapshot.to_bytes();
        let hash = StateHash(*blake3::hash(&encoded).as_bytes());
        let payload = postcard::to_allocvec(&StoredSnapshot {
            sequence,
            hash,
            snapshot: encoded,
        })
        .expect("a snapshot always serializes");
        let mut record = Vec::with_capacity(payload.len() + 4);
        seal(&payload, &mut record);
        let snapshots = self.db.cf_handle(CF_SNAPSHOTS).expect("column family");
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        self.db
            .put_cf_opt(snapshots, key(sequence), &record, &sync)?;
        let sequences = snapshot_sequences(&self.db)?;
        if sequences.len() > SNAPSHOTS_KEPT_MAX {
            for old in &sequences[..sequences.len() - SNAPSHOTS_KEPT_MAX] {
                self.db.delete_cf(snapshots, key(*old))?;
            }
        }
        Ok((hash, record))
    }
}

fn snapshot_sequences(db: &DB) -> Result<Vec<u64>, JournalError> {
    let mut sequences = Vec::new();
    // Keys only: a raw iterator does not copy the (large) snapshots out.
    let mut stored = db.raw_iterator_cf(db.cf_handle(CF_SNAPSHOTS).expect("column family"));
    stored.seek_to_first();
    while let Some(stored_key) = stored.key() {
        sequences.push(decode_key(stored_key));
        stored.next();
    }
    stored.status()?;
    Ok(sequences)
}

/// Makes every file this process creates from now on private to its user (umask 077): RocksDB
/// has no file-mode option, and the journal holds every participant's balances and history.
pub fn private_files() {
    #[cfg(unix)]
    // SAFETY: umask only swaps the process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Finds record `sequence` and hands its batch's first sequence, the batch value and the byte
/// range of the record's sealed form to `found`.
fn locate<R>(
    db: &DB,
    sequence: u64,
    found: impl FnOnce(u64, &[u8], std::ops::Range<usize>) -> R,
) -> Result<Option<R>, JournalError> {
    let mut batches = db.raw_iterator_cf(
        db.cf_handle(CF_COMMANDS)
            .expect("column families are created at open"),
    );
    batches.seek_for_prev(key(sequence));
    let (Some(stored_key), Some(value)) = (batches.key(), batches.value()) else {
        batches.status()?;
        return Ok(None);
    };
    let first = decode_key(stored_key);
    for frame in Frames::new(first, value)? {
        let frame = frame?;
        if frame.sequence == sequence {
            return Ok(Some(found(first, value, frame.sealed)));
        }
    }
    Ok(None)
}

/// Reads journal records beside the engine thread: single records by sequence number, and the
/// audit feed's records in order.
#[derive(Clone)]
pub struct JournalReader {
    db: Arc<DB>,
    withholding_key: [u8; 32],
}

impl JournalReader {
    /// Record `sequence`, checked and decoded, if it has been written.
    pub fn read(&self, sequence: u64) -> Result<Option<Applied>, JournalError> {
        let record = locate(&self.db, sequence, |_, value, sealed| {
            value[sealed].to_vec()
        })?;
        let Some(record) = record else {
            return Ok(None);
        };
        let corrupt = |why: String| JournalError::CorruptRecord { sequence, why };
        let payload = unseal(sequence, &record).map_err(corrupt)?;
        let applied: Applied =
            postcard::from_bytes(payload).map_err(|error| corrupt(error.to_string()))?;
        if applied.sequence != sequence {
            return Err(corrupt(format!(
                "stored as {sequence} but says {}",
                applied.sequence
            )));
        }
        Ok(Some(applied))
    }

    /// The audit feed's next records after `cursor`: whole batches, in order, until at least
    /// `records_min` records (or everything journaled so far) are read. Each batch's chain is
    /// recomputed and checked against the hash stored with it, so a record altered after it was
    /// written is refused, naming the batch, rather than served.
    pub fn feed(
        &self,
        cursor: &mut FeedCursor,
        records_min: usize,
    ) -> Result<Vec<FeedRecord>, JournalError> {
        self.walk(
            cursor,
            records_min,
            |applied, payload, private, head, wanted| {
                let (record, canonical) =
                    chain::public_record(applied, payload, private, &self.withholding_key);
                *head = chain::link(head, &canonical);
                Ok(wanted.then(|| FeedRecord {
                    record,
                    canonical,
                    chain: *head,
                }))
            },
        )
    }

    /// Whole records after `cursor`, private parts included, for the history read model: read
    /// and checked against the chain like the audit feed's, never shown as they are.
    pub fn records(
        &self,
        cursor: &mut FeedCursor,
        records_min: usize,
    ) -> Result<Vec<Applied>, JournalError> {
        self.walk(
            cursor,
            records_min,
            |applied, payload, private, head, wanted| {
                *head = chain::link_record(head, payload, private, &self.withholding_key).map_err(
                    |error| JournalError::CorruptRecord {
                        sequence: applied.sequence,
                        why: error.to_string(),
                    },
                )?;
                Ok(wanted.then_some(applied))
            },
        )
    }

    /// Reads whole batches from `cursor` until at least `records_min` records are wanted,
    /// handing each decoded record to `each` with its payload, its private flag, the chain hash
    /// to advance past it, and whether it is at or after the cursor (records before it only
    /// advance the chain). Each batch's recomputed chain must equal the hash stored with it.
    fn walk<T>(
        &self,
        cursor: &mut FeedCursor,
        records_min: usize,
        mut each: impl FnMut(
            Applied,
            &[u8],
            bool,
            &mut ChainHash,
            bool,
        ) -> Result<Option<T>, JournalError>,
    ) -> Result<Vec<T>, JournalError> {
        let mut out = Vec::new();
        let commands = self.db.cf_handle(CF_COMMANDS).expect("column family");
        let mut batches = self.db.raw_iterator_cf(commands);
        batches.seek_for_prev(key(cursor.next));
        if !batches.valid() {
            batches.seek_to_first();
        }
        while let (Some(stored_key), Some(value)) = (batches.key(), batches.value()) {
            let first = decode_key(stored_key);
            let frames = Frames::new(first, value)?;
            if frames.end() <= cursor.next {
                // The batch before the one wanted (or the journal's last, all served).
                batches.next();
                continue;
            }
            if first > cursor.next {
                return Err(JournalError::Gap {
                    expected: cursor.next,
                    found: first,
                });
            }
            // The chain hash before this batch: known from the previous call, or read from the
            // previous batch.
            let mut head = match cursor.head {
                Some((through, head)) if through + 1 == first => head,
                _ => chain_before(&self.db, first)?,
            };
            let trailer = frames.trailer;
            let last = frames.end() - 1;
            let mut made = Vec::new();
            for frame in frames {
                let frame = frame?;
                let sequence = frame.sequence;
                let corrupt = |why: String| JournalError::CorruptRecord { sequence, why };
                let payload = unseal(sequence, &value[frame.sealed.clone()]).map_err(corrupt)?;
                let applied: Applied =
                    postcard::from_bytes(payload).map_err(|error| corrupt(error.to_string()))?;
                if applied.sequence != sequence {
                    return Err(corrupt(format!(
                        "stored as {sequence} but says {}",
                        applied.sequence
                    )));
                }
                let wanted = sequence >= cursor.next;
                if let Some(item) = each(applied, payload, frame.private, &mut head, wanted)? {
                    made.push(item);
                }
            }
            if head != trailer {
                return Err(JournalError::ChainBroken { sequence: last });
            }
            out.append(&mut made);
            cursor.next = last + 1;
            cursor.head = Some((last, head));
            if out.len() >= records_min {
                break;
            }
            batches.next();
        }
        batches.status()?;
        Ok(out)
    }

    /// The chain hash after record `sequence` (`GENESIS_CHAIN` for 0), recomputed from the
    /// batch that holds it.
    pub fn chain_after(&self, sequence: u64) -> Result<ChainHash, JournalError> {
        if sequence == 0 {
            return Ok(GENESIS_CHAIN);
        }
        let mut cursor = FeedCursor::from(sequence);
        let records = self.feed(&mut cursor, 1)?;
        match records.first() {
            Some(record) if record.record.sequence == sequence => Ok(record.chain),
            _ => Err(JournalError::Gap {
                expected: sequence,
                found: cursor.next,
            }),
        }
    }
}

/// Where an audit feed reader stands: the next record it wants and, once it has read a batch,
/// the chain hash after that batch.
#[derive(Clone, Copy, Debug)]
pub struct FeedCursor {
    pub next: u64,
    head: Option<(u64, ChainHash)>,
}

impl FeedCursor {
    /// A cursor whose next record is `sequence` (at least 1).
    pub fn from(sequence: u64) -> FeedCursor {
        FeedCursor {
            next: sequence.max(1),
            head: None,
        }
    }

    /// A cursor past record `through`, whose chain hash is known to be `chain`.
    pub fn after(through: u64, chain: ChainHash) -> FeedCursor {
        FeedCursor {
            next: through + 1,
            head: (through > 0).then_some((through, chain)),
        }
    }

    /// The last record read and the chain hash after it, once a batch has been read.
    pub fn chain_head(&self) -> Option<(u64, ChainHash)> {
        self.head
    }
}

/// One record as the audit feed serves it.
#[derive(Clone, Debug)]
pub struct FeedRecord {
    /// The record's public form: what may be shown.
    pub record: ChainedRecord,
    /// The record's canonical, public form (`chain.rs`): what its chain hash covers.
    pub canonical: Vec<u8>,
    pub chain: ChainHash,
}

/// The chain hash stored after the batch that ends just before `first`.
fn chain_before(db: &DB, first: u64) -> Result<ChainHash, JournalError> {
    if first <= 1 {
        return Ok(GENESIS_CHAIN);
    }
    let commands = db.cf_handle(CF_COMMANDS).expect("column family");
    let mut batches = db.raw_iterator_cf(commands);
    batches.seek_for_prev(key(first - 1));
    let (Some(stored_key), Some(value)) = (batches.key(), batches.value()) else {
        batches.status()?;
        return Err(JournalError::Gap {
            expected: 1,
            found: first,
        });
    };
    let previous = decode_key(stored_key);
    let frames = Frames::new(previous, value)?;
    if frames.end() != first {
        return Err(JournalError::Gap {
            expected: frames.end(),
            found: first,
        });
    }
    Ok(frames.trailer)
}

/// What recovery rebuilt.
pub struct Recovered {
    pub engine: Engine,
    /// Sequence number of the last journaled command (0 for a new journal).
    pub last_sequence: u64,
    /// Where the state came from, for the start-up log.
    pub snapshot_sequence: Option<u64>,
    pub replayed: u64,
    /// The state hash, when recovery already computed it at the last record (a snapshot there
    /// was checked against it), so that start-up does not hash the whole state again.
    pub state_hash: Option<StateHash>,
}

/// A batch value encoded by `Journal::encode`, not yet written.
pub struct EncodedBatch {
    pub first: u64,
    pub last: u64,
    pub value: Vec<u8>,
    /// The chain hash after its last record (also the value's last 32 bytes).
    pub head: ChainHash,
}

pub struct Journal {
    db: Arc<DB>,
    sync: WriteOptions,
    /// Reused batch value, so appends do not allocate in the steady state.
    buffer: Vec<u8>,
    withholding_key: [u8; 32],
    /// The audit chain hash after the last record written.
    chain_head: ChainHash,
}

fn key(sequence: u64) -> [u8; 8] {
    sequence.to_be_bytes()
}

fn seal(payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Appends one record's frame to a batch value: a length slot, a checksum slot, the payload,
/// then the length (with the private flag) and the checksum. Returns where the payload is.
fn encode_frame(applied: &Applied, private: bool, value: &mut Vec<u8>) -> std::ops::Range<usize> {
    let start = value.len();
    value.extend_from_slice(&[0; 8]);
    postcard::serialize_with_flavor(applied, Appending(value))
        .expect("a journal record always serializes");
    let payload_length = (value.len() - start - 8) as u32;
    assert!(
        payload_length < PRIVATE_FLAG,
        "a journal record is under 2 GiB"
    );
    let length_word = payload_length | if private { PRIVATE_FLAG } else { 0 };
    let crc = crc32c::crc32c(&value[start + 8..]);
    value[start..start + 4].copy_from_slice(&length_word.to_le_bytes());
    value[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    start + 8..value.len()
}

/// A postcard output that pushes byte by byte onto a vector: records are runs of tiny fields,
/// for which a call to copy each one costs more than its bytes.
struct Appending<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Appending<'_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// One record's place in its batch value.
struct Frame {
    sequence: u64,
    /// The byte range of its sealed form (checksum then payload) within the value.
    sealed: std::ops::Range<usize>,
    /// Whether it has parts private to one participant.
    private: bool,
}

/// The records of one batch value, and the chain hash stored after them.
struct Frames<'a> {
    /// The value without its trailer.
    value: &'a [u8],
    offset: usize,
    next_sequence: u64,
    remaining: u32,
    trailer: ChainHash,
}

impl<'a> Frames<'a> {
    fn new(first_sequence: u64, value: &'a [u8]) -> Result<Frames<'a>, JournalError> {
        let torn = || JournalError::CorruptRecord {
            sequence: first_sequence,
            why: format!("batch of {} bytes is torn", value.len()),
        };
        let Some(records_end) = value.len().checked_sub(TRAILER_BYTES) else {
            return Err(torn());
        };
        let (value, trailer) = value.split_at(records_end);
        let trailer: ChainHash = trailer.try_into().expect("32 bytes");
        let Some(count) = value.get(..4) else {
            return Err(torn());
        };
        let remaining = u32::from_le_bytes([count[0], count[1], count[2], count[3]]);
        if remaining == 0 {
            return Err(JournalError::CorruptRecord {
                sequence: first_sequence,
                why: "batch holds no records".into(),
            });
        }
        Ok(Frames {
            value,
            offset: 4,
            next_sequence: first_sequence,
            remaining,
            trailer,
        })
    }

    /// The sequence number after the batch's last record.
    fn end(&self) -> u64 {
        self.next_sequence + u64::from(self.remaining)
    }
}

impl Iterator for Frames<'_> {
    type Item = Result<Frame, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        let sequence = self.next_sequence;
        if self.remaining == 0 {
            if self.offset != self.value.len() {
                self.offset = self.value.len();
                let why = "bytes follow the batch's last record".to_string();
                return Some(Err(JournalError::CorruptRecord {
                    sequence: sequence.saturating_sub(1),
                    why,
                }));
            }
            return None;
        }
        let torn = |why: String| Some(Err(JournalError::CorruptRecord { sequence, why }));
        let Some(length) = self.value.get(self.offset..self.offset + 4) else {
            self.remaining = 0;
            return torn("the record's length is torn".into());
        };
        let length_word = u32::from_le_bytes([length[0], length[1], length[2], length[3]]);
        let private = length_word & PRIVATE_FLAG != 0;
        let length = (length_word & !PRIVATE_FLAG) as usize;
        let sealed = self.offset + 4..self.offset + 8 + length;
        if sealed.end > self.value.len() {
            self.remaining = 0;
            self.offset = self.value.len();
            return torn(format!("record of {length} bytes runs past its batch"));
        }
        self.offset = sealed.end;
        self.next_sequence += 1;
        self.remaining -= 1;
        Some(Ok(Frame {
            sequence,
            sealed,
            private,
        }))
    }
}

fn unseal(sequence: u64, record: &[u8]) -> Result<&[u8], String> {
    if record.len() < 4 {
        return Err(format!("record of {} bytes is torn", record.len()));
    }
    let (crc, payload) = record.split_at(4);
    let expected = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let actual = crc32c::crc32c(payload);
    if expected != actual {
        return Err(format!(
            "checksum {actual:08x} does not match recorded {expected:08x} (sequence {sequence})"
        ));
    }
    Ok(payload)
}

impl Journal {
    /// Opens (or creates) the journal in `path`. A new journal records `genesis` as its market
    /// configuration; an existing one must have been created with an equal configuration.
    pub fn open(path: &Path, genesis: &MarketConfig) -> Result<Journal, JournalError> {
        private_files();
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_compression_type(rocksdb::DBCompressionType::Lz4);
        // Large memtables: the journal is append-only and mostly written, rarely read.
        options.set_write_buffer_size(128 << 20);
        // RocksDB's own info log: keep a few, not one `LOG.old.*` per start forever.
        options.set_keep_log_file_num(RocksDB_INFO_LOGS_KEPT_MAX);
        options.set_max_log_file_size(16 << 20);
        let families = [CF_COMMANDS, CF_SNAPSHOTS, CF_META]
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, options.clone()));
        let db = DB::open_cf_descriptors(&options, path, families)?;
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        let mut journal = Journal {
            db: Arc::new(db),
            sync,
            buffer: Vec::with_capacity(1 << 16),
            withholding_key: [0; 32],
            chain_head: GENESIS_CHAIN,
        };
        let meta = journal.cf(CF_META);
        let genesis_bytes = postcard::to_allocvec(genesis).expect("config serializes");
        match journal.db.get_cf(meta, META_GENESIS)? {
            None => journal
                .db
                .put_cf_opt(meta, META_GENESIS, &genesis_bytes, &journal.sync)?,
            Some(stored) if stored == genesis_bytes => {}
            Some(_) => return Err(JournalError::ConfigMismatch),
        }
        journal.withholding_key = match journal.db.get_cf(meta, META_WITHHOLDING_KEY)? {
            Some(stored) => {
                stored
                    .as_slice()
                    .try_into()
                    .map_err(|_| JournalError::CorruptRecord {
                        sequence: 0,
                        why: "the withholding key is not 32 bytes".into(),
                    })?
            }
            None => {
                let fresh: [u8; 32] = rand::random();
                journal
                    .db
                    .put_cf_opt(meta, META_WITHHOLDING_KEY, fresh, &journal.sync)?;
                fresh
            }
        };
        journal.chain_head = journal.last_chain_hash()?;
        Ok(journal)
    }

    /// The chain hash stored after the last batch (`GENESIS_CHAIN` for an empty journal).
    fn last_chain_hash(&self) -> Result<ChainHash, JournalError> {
        match self
            .db
            .iterator_cf(self.cf(CF_COMMANDS), IteratorMode::End)
            .next()
        {
            Some(item) => {
                let (stored_key, value) = item?;
                Ok(Frames::new(decode_key(&stored_key), &value)?.trailer)
            }
            None => Ok(GENESIS_CHAIN),
        }
    }

    /// The audit chain hash after the last record written.
    pub fn chain_head(&self) -> ChainHash {
        self.chain_head
    }

    /// The database, for tools and tests that inspect its bytes.
    pub fn shared_db(&self) -> Arc<DB> {
        self.db.clone()
    }

    /// A handle that reads single records while the engine thread appends: the gateway answers
    /// a retried command with its first application's record.
    pub fn reader(&self) -> JournalReader {
        JournalReader {
            db: self.db.clone(),
            withholding_key: self.withholding_key,
        }
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column families are created at open")
    }

    /// Writes a batch of applied commands, numbered consecutively, as one synced RocksDB value.
    pub fn append<'a>(
        &mut self,
        batch: impl IntoIterator<Item = &'a Applied>,
    ) -> Result<(), JournalError> {
        match self.encode(batch)? {
            Some(encoded) => self.commit(encoded, None, true),
            None => Ok(()),
        }
    }

    /// Encodes a batch of applied commands, numbered consecutively, as one batch value chained
    /// from the journal's head, without writing it (`None` for an empty batch). A replicated
    /// journal sends these bytes to the cluster before `commit` writes them here.
    pub fn encode<'a>(
        &mut self,
        batch: impl IntoIterator<Item = &'a Applied>,
    ) -> Result<Option<EncodedBatch>, JournalError> {
        let mut value = std::mem::take(&mut self.buffer);
        value.clear();
        value.extend_from_slice(&[0; 4]);
        let mut first = None;
        let mut count = 0u32;
        let mut head = self.chain_head;
        for applied in batch {
            let first = *first.get_or_insert(applied.sequence);
            let expected = first + u64::from(count);
            if applied.sequence != expected {
                self.buffer = value;
                return Err(JournalError::Gap {
                    expected,
                    found: applied.sequence,
                });
            }
            let private = chain::has_private_parts(applied);
            let payload = encode_frame(applied, private, &mut value);
            head = chain::link_record(&head, &value[payload], private, &self.withholding_key)
                .map_err(|error| JournalError::CorruptRecord {
                    sequence: applied.sequence,
                    why: error.to_string(),
                })?;
            count += 1;
        }
        let Some(first) = first else {
            self.buffer = value;
            return Ok(None);
        };
        value[..4].copy_from_slice(&count.to_le_bytes());
        value.extend_from_slice(&head);
        Ok(Some(EncodedBatch {
            first,
            last: first + u64::from(count) - 1,
            value,
            head,
        }))
    }

    /// Writes an encoded batch, which must follow the journal's last record. With
    /// `stream_sequence`, the replicated stream's message that carries it is recorded in the same
    /// write, so the journal always knows where in the stream it stands. Unsynced writes
    /// (a standby's: the cluster holds them) are made durable by `sync_wal`.
    pub fn commit(
        &mut self,
        encoded: EncodedBatch,
        stream_sequence: Option<u64>,
        sync: bool,
    ) -> Result<(), JournalError> {
        let mut write = rocksdb::WriteBatch::default();
        write.put_cf(self.cf(CF_COMMANDS), key(encoded.first), &encoded.value);
        if let Some(stream_sequence) = stream_sequence {
            write.put_cf(
                self.cf(CF_META),
                META_STREAM_SEQUENCE,
                stream_sequence.to_be_bytes(),
            );
        }
        let written = if sync {
            self.db.write_opt(write, &self.sync)
        } else {
            self.db.write(write)
        };
        self.buffer = encoded.value;
        written?;
        self.chain_head = encoded.head;
        Ok(())
    }

    /// Makes every unsynced write durable.
    pub fn sync_wal(&self) -> Result<(), JournalError> {
        Ok(self.db.flush_wal(true)?)
    }

    /// The replicated stream's message that carried the journal's last batch (0 if none).
    pub fn stream_sequence(&self) -> Result<u64, JournalError> {
        self.meta_number(META_STREAM_SEQUENCE)
    }

    /// A number kept in `meta` (big-endian), 0 if absent.
    fn meta_number(&self, name: &[u8]) -> Result<u64, JournalError> {
        Ok(self
            .db
            .get_cf(self.cf(CF_META), name)?
            .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_slice()).ok())
            .map_or(0, u64::from_be_bytes))
    }

    /// The key that salts withheld parts' digests: every node of a replicated exchange uses the
    /// cluster's, so that their chains are the same.
    pub fn withholding_key(&self) -> [u8; 32] {
        self.withholding_key
    }

    /// Adopts a replicated exchange's withholding key. A journal that already holds records
    /// under another key belongs to another exchange and is refused.
    pub fn adopt_withholding_key(&mut self, cluster_key: [u8; 32]) -> Result<(), JournalError> {
        if cluster_key == self.withholding_key {
            return Ok(());
        }
        if self.last_sequence()? != 0 {
            return Err(JournalError::OtherExchange);
        }
        self.db.put_cf_opt(
            self.cf(CF_META),
            META_WITHHOLDING_KEY,
            cluster_key,
            &self.sync,
        )?;
        self.withholding_key = cluster_key;
        Ok(())
    }

    /// Stores a snapshot of `engine` taken after `sequence`, after checking its invariants, and
    /// prunes old snapshots.
    pub fn write_snapshot(
        &mut self,
        sequence: u64,
        engine: &Engine,
    ) -> Result<StateHash, JournalError> {
        engine
            .check_invariants()
            .map_err(|violation| JournalError::CorruptSnapshot {
                sequence,
                why: violation.to_string(),
            })?;
        self.snapshot_writer().write(sequence, &engine.snapshot())
    }

    pub fn snapshot_writer(&self) -> SnapshotWriter {
        SnapshotWriter {
            db: self.db.clone(),
        }
    }

    /// Sequence numbers of stored snapshots, oldest first.
    pub fn snapshot_sequences(&self) -> Result<Vec<u64>, JournalError> {
        snapshot_sequences(&self.db)
    }

    /// The state hash a stored snapshot records, its checksum checked, without hashing or
    /// decoding the snapshot itself: replay compares it with the state it rebuilt.
    fn snapshot_hash(&self, sequence: u64) -> Result<StateHash, JournalError> {
        let corrupt = |why: String| JournalError::CorruptSnapshot { sequence, why };
        let record = self
            .db
            .get_pinned_cf(self.cf(CF_SNAPSHOTS), key(sequence))?
            .ok_or_else(|| corrupt("missing".into()))?;
        let payload = unseal(sequence, &record).map_err(corrupt)?;
        // `StoredSnapshot` begins with its sequence and hash.
        let ((stored, hash), _): ((u64, StateHash), _) =
            postcard::take_from_bytes(payload).map_err(|error| corrupt(error.to_string()))?;
        if stored != sequence {
            return Err(corrupt(format!(
                "stored under {sequence} but says {stored}"
            )));
        }
        Ok(hash)
    }

    fn read_snapshot(&self, sequence: u64) -> Result<StoredSnapshot, JournalError> {
        let record = self
            .db
            .get_cf(self.cf(CF_SNAPSHOTS), key(sequence))?
            .ok_or_else(|| JournalError::CorruptSnapshot {
                sequence,
                why: "missing".into(),
            })?;
        let stored = unseal_snapshot(sequence, &record)?;
        if stored.sequence != sequence {
            return Err(JournalError::CorruptSnapshot {
                sequence,
                why: format!("stored under {sequence} but says {}", stored.sequence),
            });
        }
        Ok(stored)
    }

    /// The last sequence number written, or 0.
    pub fn last_sequence(&self) -> Result<u64, JournalError> {
        match self
            .db
            .iterator_cf(self.cf(CF_COMMANDS), IteratorMode::End)
            .next()
        {
            Some(item) => {
                let (stored_key, value) = item?;
                Ok(Frames::new(decode_key(&stored_key), &value)?.end() - 1)
            }
            None => Ok(0),
        }
    }

    /// Walks the sealed records after `after` in order, checking that batches follow one another
    /// without a gap or an overlap; `visit` returns false to stop. Returns the last sequence
    /// visited (`after` if none).
    /// With `check_chain`, every batch visited whole also has its audit chain recomputed and
    /// compared with the hash stored after it.
    fn scan(
        &self,
        after: u64,
        read_options: rocksdb::ReadOptions,
        check_chain: bool,
        mut visit: impl FnMut(u64, &[u8]) -> Result<bool, JournalError>,
    ) -> Result<u64, JournalError> {
        let mut head: Option<ChainHash> = None;
        let mut expected = after + 1;
        // The raw iterator lends each value in place instead of copying it out.
        let mut batches = self
            .db
            .raw_iterator_cf_opt(self.cf(CF_COMMANDS), read_options);
        batches.seek_for_prev(key(expected));
        if !batches.valid() {
            batches.seek_to_first();
        }
        let mut first_batch = true;
        while let (Some(stored_key), Some(value)) = (batches.key(), batches.value()) {
            let first = decode_key(stored_key);
            // The batch found by the seek may start before `expected`; every later one must
            // start exactly there.
            if first > expected || (!first_batch && first != expected) {
                return Err(JournalError::Gap {
                    expected,
                    found: first,
                });
            }
            first_batch = false;
            for frame in Frames::new(first, value)? {
                let frame = frame?;
                let sequence = frame.sequence;
                if sequence < expected {
                    continue;
                }
                if !visit(sequence, &value[frame.sealed])? {
                    return Ok(expected - 1);
                }
                expected = sequence + 1;
            }
            if check_chain {
                let before = match head {
                    Some(head) => head,
                    None => chain_before(&self.db, first)?,
                };
                head = Some(self.check_batch_chain(before, first, value)?);
            }
            batches.next();
        }
        batches.status()?;
        Ok(expected - 1)
    }

    /// Recomputes the chain over one batch from `before`, the hash after the previous batch, and
    /// checks it against the hash stored with the batch. Returns it.
    fn check_batch_chain(
        &self,
        before: ChainHash,
        first: u64,
        value: &[u8],
    ) -> Result<ChainHash, JournalError> {
        let frames = Frames::new(first, value)?;
        let trailer = frames.trailer;
        let last = frames.end() - 1;
        let mut head = before;
        for frame in frames {
            let frame = frame?;
            let sequence = frame.sequence;
            let payload = unseal(sequence, &value[frame.sealed])
                .map_err(|why| JournalError::CorruptRecord { sequence, why })?;
            head = chain::link_record(&head, payload, frame.private, &self.withholding_key)
                .map_err(|error| JournalError::CorruptRecord {
                    sequence,
                    why: error.to_string(),
                })?;
        }
        if head != trailer {
            return Err(JournalError::ChainBroken { sequence: last });
        }
        Ok(head)
    }

    /// Visits journal records after `after`, in order, checking each checksum and the sequence.
    pub fn for_each_after(
        &self,
        after: u64,
        mut visit: impl FnMut(Applied) -> Result<(), JournalError>,
    ) -> Result<u64, JournalError> {
        self.scan(
            after,
            rocksdb::ReadOptions::default(),
            false,
            |sequence, record| {
                let corrupt = |why: String| JournalError::CorruptRecord { sequence, why };
                let payload = unseal(sequence, record).map_err(corrupt)?;
                let applied: Applied =
                    postcard::from_bytes(payload).map_err(|error| corrupt(error.to_string()))?;
                if applied.sequence != sequence {
                    return Err(corrupt(format!(
                        "stored as {sequence} but says {}",
                        applied.sequence
                    )));
                }
                visit(applied)?;
                Ok(true)
            },
        )
    }

    /// Where record `sequence` is stored: its batch's key and the byte range of its sealed form
    /// (checksum then payload) within the batch's value. For tools that inspect the journal's
    /// bytes.
    pub fn record_location(
        &self,
        sequence: u64,
    ) -> Result<Option<([u8; 8], std::ops::Range<usize>)>, JournalError> {
        Ok(locate(&self.db, sequence, |first, _, sealed| {
            (key(first), sealed)
        })?)
    }

    /// Rebuilds the engine: the newest snapshot, then every record after it. When an older
    /// snapshot exists, replay starts there instead and the newer snapshot's hash is checked
    /// against the replayed state, so that every start-up proves replay reproduces the state.
    /// `progress(done, total)` is called every 65,536 records.
    pub fn recover(
        &self,
        genesis: MarketConfig,
        progress: impl FnMut(u64, u64),
    ) -> Result<Recovered, JournalError> {
        let snapshots = self.snapshot_sequences()?;
        let Some(&newest) = snapshots.last() else {
            return self.replay(Engine::new(genesis), 0, Vec::new(), progress);
        };
        let base = if snapshots.len() >= 2 {
            snapshots[snapshots.len() - 2]
        } else {
            newest
        };
        // Records the snapshot covers are not replayed, but a damaged one is still refused: each
        // is checked once, by the first start that finds it behind its base snapshot, and the
        // fact is recorded so that start-up time follows the records after the snapshot, not
        // the journal's length.
        let began = std::time::Instant::now();
        let verified = self.verified_through()?;
        if base > verified {
            self.verify_between(verified, base)?;
            self.db.put_cf_opt(
                self.cf(CF_META),
                META_VERIFIED_THROUGH,
                base.to_be_bytes(),
                &self.sync,
            )?;
        }
        tracing::info!(
            through = base,
            verified_before = verified,
            ms = began.elapsed().as_millis() as u64,
            "records behind the base snapshot verified"
        );
        let began = std::time::Instant::now();
        let stored = self.read_snapshot(base)?;
        let snapshot = Snapshot::from_bytes(&stored.snapshot).map_err(|error| {
            JournalError::CorruptSnapshot {
                sequence: base,
                why: error.to_string(),
            }
        })?;
        let engine =
            Engine::from_snapshot(snapshot).map_err(|violation| JournalError::CorruptSnapshot {
                sequence: base,
                why: violation.to_string(),
            })?;
        tracing::info!(
            sequence = base,
            ms = began.elapsed().as_millis() as u64,
            "base snapshot read, checked and restored"
        );
        let began = std::time::Instant::now();
        let later = snapshots
            .into_iter()
            .filter(|sequence| *sequence > base)
            .collect();
        let mut recovered = self.replay(engine, base, later, progress)?;
        tracing::info!(
            records = recovered.replayed,
            ms = began.elapsed().as_millis() as u64,
            "journal replayed after the base snapshot"
        );
        recovered.snapshot_sequence = Some(base);
        Ok(recovered)
    }

    /// The last record a start-up has verified (0 if none).
    pub fn verified_through(&self) -> Result<u64, JournalError> {
        self.meta_number(META_VERIFIED_THROUGH)
    }

    /// Checks the checksum, numbering and chain of every record after `after` up to `through`.
    fn verify_between(&self, after: u64, through: u64) -> Result<(), JournalError> {
        let last = self.scan(
            after,
            rocksdb::ReadOptions::default(),
            true,
            |sequence, record| {
                if sequence > through {
                    return Ok(false);
                }
                unseal(sequence, record)
                    .map_err(|why| JournalError::CorruptRecord { sequence, why })?;
                Ok(true)
            },
        )?;
        if last < through {
            return Err(JournalError::Gap {
                expected: last + 1,
                found: through,
            });
        }
        Ok(())
    }

    /// Replays every record from genesis, ignoring snapshots as a starting point but checking
    /// each stored snapshot's hash when replay reaches it: the slow, complete proof.
    pub fn replay_from_genesis(
        &self,
        genesis: MarketConfig,
        progress: impl FnMut(u64, u64),
    ) -> Result<Recovered, JournalError> {
        let checkpoints = self.snapshot_sequences()?;
        self.replay(Engine::new(genesis), 0, checkpoints, progress)
    }

    /// Replays the records after `start` into `engine`. A reader thread walks RocksDB, checks
    /// numbering and checksums and decodes each record's head; this thread applies, and checks
    /// that each outcome equals the recorded one and that the events, encoded again, are the
    /// recorded bytes. Stored snapshots in `checkpoints` are checked when replay reaches them.
    fn replay(
        &self,
        mut engine: Engine,
        start: u64,
        checkpoints: Vec<u64>,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<Recovered, JournalError> {
        let last = self.last_sequence()?;
        let total = last.saturating_sub(start);
        let mut checkpoints = checkpoints
            .into_iter()
            .filter(|sequence| *sequence > start)
            .peekable();
        let (sender, receiver) = crossbeam_channel::bounded::<Result<ReplayBatch, JournalError>>(8);
        let mut done = 0u64;
        let mut last_replayed = start;
        let mut events = Vec::with_capacity(1024);
        let mut accounts = Vec::with_capacity(1024);
        let mut checked_hash = None;
        std::thread::scope(|scope| -> Result<(), JournalError> {
            scope.spawn(|| self.read_batches(start, sender));
            for batch in receiver {
                let batch = batch?;
                for (head, range) in batch.heads.iter().zip(&batch.event_ranges) {
                    events.clear();
                    accounts.clear();
                    let outcome = engine.apply(&head.command, head.timestamp, &mut events);
                    engine.accounts_after(&events, &mut accounts);
                    let recorded = &batch.event_bytes[range.clone()];
                    if outcome != head.outcome || !encodes_as(&(&events, &accounts), recorded) {
                        return Err(JournalError::ReplayDiverged {
                            sequence: head.sequence,
                        });
                    }
                    last_replayed = head.sequence;
                    if checkpoints.peek() == Some(&head.sequence) {
                        checkpoints.next();
                        let recorded = self.snapshot_hash(head.sequence)?;
                        let replayed = engine.state_hash();
                        if recorded != replayed {
                            return Err(JournalError::HashMismatch {
                                sequence: head.sequence,
                                recorded,
                                replayed,
                            });
                        }
                        checked_hash = Some((head.sequence, replayed));
                    }
                }
                let before = done;
                done += batch.heads.len() as u64;
                if before / 65_536 != done / 65_536 {
                    progress(done, total);
                }
            }
            Ok(())
        })?;
        if let Some(sequence) = checkpoints.next() {
            // A snapshot beyond the journal's end means records were lost.
            return Err(JournalError::Gap {
                expected: last_replayed + 1,
                found: sequence,
            });
        }
        Ok(Recovered {
            engine,
            last_sequence: last_replayed,
            snapshot_sequence: None,
            replayed: done,
            state_hash: checked_hash
                .filter(|(sequence, _)| *sequence == last_replayed)
                .map(|(_, hash)| hash),
        })
    }

    /// The reader half of `replay`: checked, decoded records after `after`, in batches.
    fn read_batches(
        &self,
        after: u64,
        sender: crossbeam_channel::Sender<Result<ReplayBatch, JournalError>>,
    ) {
        let mut batch = ReplayBatch::new();
        let mut read_options = rocksdb::ReadOptions::default();
        read_options.fill_cache(false);
        read_options.set_readahead_size(4 << 20);
        let scanned = self.scan(after, read_options, true, |sequence, record| {
            batch.push(sequence, record)?;
            if batch.heads.len() == REPLAY_BATCH_RECORDS {
                // The applier has gone (it failed): stop reading.
                return Ok(sender
                    .send(Ok(std::mem::replace(&mut batch, ReplayBatch::new())))
                    .is_ok());
            }
            Ok(true)
        });
        match scanned {
            Err(error) => {
                let _ = sender.send(Err(error));
            }
            Ok(_) if !batch.heads.is_empty() => {
                let _ = sender.send(Ok(batch));
            }
            Ok(_) => {}
        }
    }
}

/// Whether a record's events and accounts encode to exactly `recorded`: the encoder's bytes are
/// compared with the record's as they are produced, so nothing is written anywhere and a
/// difference stops it early.
fn encodes_as(tail: &(&Vec<Event>, &Vec<AccountAfter>), recorded: &[u8]) -> bool {
    postcard::serialize_with_flavor(
        tail,
        Comparing {
            recorded,
            position: 0,
        },
    )
    .unwrap_or(false)
}

/// A postcard output that checks each byte against an expected encoding instead of storing it.
struct Comparing<'a> {
    recorded: &'a [u8],
    position: usize,
}

impl postcard::ser_flavors::Flavor for Comparing<'_> {
    /// True when the encoding matched to the last byte.
    type Output = bool;

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        if self.recorded.get(self.position) != Some(&byte) {
            // Any error ends the encoding; the caller reads it as "not equal".
            return Err(postcard::Error::SerializeBufferFull);
        }
        self.position += 1;
        Ok(())
    }

    fn finalize(self) -> postcard::Result<bool> {
        Ok(self.position == self.recorded.len())
    }
}

/// Records handed from the replay reader to the applier at a time.
const REPLAY_BATCH_RECORDS: usize = 4_096;

/// A record without its request id, events and accounts, which replay compares as bytes rather
/// than decoding.
struct RecordHead {
    sequence: u64,
    timestamp: Timestamp,
    command: Command,
    outcome: Outcome,
}

struct ReplayBatch {
    heads: Vec<RecordHead>,
    /// The encoded events of every record, back to back; `event_ranges` says whose are where.
    event_bytes: Vec<u8>,
    event_ranges: Vec<std::ops::Range<usize>>,
}

impl ReplayBatch {
    fn new() -> ReplayBatch {
        ReplayBatch {
            heads: Vec::with_capacity(REPLAY_BATCH_RECORDS),
            event_bytes: Vec::with_capacity(REPLAY_BATCH_RECORDS * 64),
            event_ranges: Vec::with_capacity(REPLAY_BATCH_RECORDS),
        }
    }

    fn push(&mut self, sequence: u64, record: &[u8]) -> Result<(), JournalError> {
        let corrupt = |why: String| JournalError::CorruptRecord { sequence, why };
        let payload = unseal(sequence, record).map_err(corrupt)?;
        // Field order is `Applied`'s: the request id is borrowed and skipped, not copied.
        let ((sequence_said, timestamp, _request_id), rest): ((u64, Timestamp, &str), &[u8]) =
            postcard::take_from_bytes(payload).map_err(|error| corrupt(error.to_string()))?;
        let ((command, outcome), events): ((Command, Outcome), &[u8]) =
            postcard::take_from_bytes(rest).map_err(|error| corrupt(error.to_string()))?;
        let head = RecordHead {
            sequence: sequence_said,
            timestamp,
            command,
            outcome,
        };
        if head.sequence != sequence {
            return Err(corrupt(format!(
                "stored as {sequence} but says {}",
                head.sequence
            )));
        }
        let from = self.event_bytes.len();
        self.event_bytes.extend_from_slice(events);
        self.event_ranges.push(from..self.event_bytes.len());
        self.heads.push(head);
        Ok(())
    }
}

fn decode_key(stored_key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let n = stored_key.len().min(8);
    bytes[8 - n..].copy_from_slice(&stored_key[..n]);
    u64::from_be_bytes(bytes)
}

/// A stored snapshot record, its checksum and hash checked (`sequence` only names it in errors).
fn unseal_snapshot(sequence: u64, record: &[u8]) -> Result<StoredSnapshot, JournalError> {
    let corrupt = |why: String| JournalError::CorruptSnapshot { sequence, why };
    let payload = unseal(sequence, record).map_err(corrupt)?;
    let stored: StoredSnapshot =
        postcard::from_bytes(payload).map_err(|error| corrupt(error.to_string()))?;
    let hash = StateHash(*blake3::hash(&stored.snapshot).as_bytes());
    if hash != stored.hash {
        return Err(JournalError::HashMismatch {
            sequence: stored.sequence,
            recorded: stored.hash,
            replayed: hash,
        });
    }
    Ok(stored)
}

/// Restores an engine from a snapshot record as `SnapshotWriter::write_sealed` made it (a
/// replicated leader's, fetched by a new node): its checksum, its hash and every invariant of
/// the restored state checked. Returns the record it was taken after, its hash and the engine.
pub fn restore_sealed_snapshot(record: &[u8]) -> Result<(u64, StateHash, Engine), JournalError> {
    let stored = unseal_snapshot(0, record)?;
    let sequence = stored.sequence;
    let snapshot =
        Snapshot::from_bytes(&stored.snapshot).map_err(|error| JournalError::CorruptSnapshot {
            sequence,
            why: error.to_string(),
        })?;
    let engine =
        Engine::from_snapshot(snapshot).map_err(|violation| JournalError::CorruptSnapshot {
            sequence,
            why: violation.to_string(),
        })?;
    if engine.commands_applied() != sequence {
        return Err(JournalError::CorruptSnapshot {
            sequence,
            why: format!("the state counts {} commands", engine.commands_applied()),
        });
    }
    Ok((sequence, stored.hash, engine))
}

/// Decodes a batch value made by `Journal::encode` whose first record is `first`: every record,
/// its checksum and numbering checked, and the chain hash stored after them. A replicated
/// node decodes the cluster's batches with it; writing them again re-derives the chain, which
/// must come out equal to the stored hash.
pub fn decode_batch(first: u64, value: &[u8]) -> Result<(Vec<Applied>, ChainHash), JournalError> {
    let frames = Frames::new(first, value)?;
    let trailer = frames.trailer;
    let mut records = Vec::with_capacity(frames.remaining as usize);
    for frame in frames {
        let frame = frame?;
        let sequence = frame.sequence;
        let corrupt = |why: String| JournalError::CorruptRecord { sequence, why };
        let payload = unseal(sequence, &value[frame.sealed]).map_err(corrupt)?;
        let applied: Applied =
            postcard::from_bytes(payload).map_err(|error| corrupt(error.to_string()))?;
        if applied.sequence != sequence {
            return Err(corrupt(format!(
                "stored as {sequence} but says {}",
                applied.sequence
            )));
        }
        records.push(applied);
    }
    Ok((records, trailer))
}
