//! Everyone's own history and the open market's past: a read model that a thread beside the
//! engine thread builds from the journal, so that history queries never cost matching anything.
//!
//! The model lives in its own RocksDB (`<data>/history`), apart from the journal: it is derived
//! data, written without syncing, and can be deleted at any time (it is rebuilt from the journal
//! at the next start). It records the last sequence it indexed and the chain hash after it; at
//! start it resumes after that sequence if the journal still has that chain hash there, and
//! rebuilds from the journal's first record otherwise.
//!
//! The indexer (one thread at a lower priority than the engine and the gateway) follows the
//! journal with the audit feed's reader (`JournalReader::records`, chain checked) and the
//! sequencer's "journaled up to N" signal, whole chunks at a time, and writes each chunk's
//! changes in one batch together with the sequence it reached. A query first waits (at most
//! `CATCH_UP_WAIT`) until the model has indexed everything journaled when the query arrived, so
//! a client sees its own acknowledged commands.

pub mod index;
pub mod model;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rocksdb::{Direction, IteratorMode, Options, DB};
use tokio::sync::watch;

use crate::chain::ChainHash;
use crate::journal::{FeedCursor, JournalReader};
use crate::metrics::Metrics;
use model::{Key, META_THROUGH};

/// Records indexed per write batch (whole journal batches, so up to one batch more).
pub const RECORDS_PER_CHUNK: usize = 8_192;
/// How long the indexer, once caught up, lets new records gather before reading them.
const GATHER: Duration = Duration::from_millis(5);
/// How long a query waits for the model to reach what was journaled when it arrived.
pub const CATCH_UP_WAIT: Duration = Duration::from_secs(2);
/// Entries a listing may examine in one call (filtered out or not): a page over a sparse filter
/// ends early with a page token rather than scanning without bound.
pub const SCAN_ENTRIES_MAX: usize = 100_000;

/// Why a history query failed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("page_token: does not continue this listing")]
    ForeignPageToken,
    #[error("the history read model failed: {0}")]
    Failed(String),
    #[error("the history read model: {0}")]
    Store(#[from] rocksdb::Error),
    #[error("this exchange keeps no history (it was started with --no-history)")]
    Disabled,
}

/// A handle on the read model, for queries.
#[derive(Clone)]
pub struct History {
    /// `None` when the exchange keeps no history (`mutua serve --no-history`).
    db: Option<Arc<DB>>,
    indexed: watch::Receiver<u64>,
    journaled: watch::Receiver<u64>,
    failure: Arc<Mutex<Option<String>>>,
    indexer: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

/// One page of a listing.
pub struct Page<T> {
    pub items: Vec<T>,
    /// Where the next page starts; empty when the listing is complete.
    pub next: Vec<u8>,
}

/// A listing's key range, `[lower, upper)`.
pub struct Range {
    pub lower: Vec<u8>,
    pub upper: Vec<u8>,
}

impl Range {
    /// Keys under `prefix` whose next part, a time, is in `[from, until)` (0 = unbounded).
    pub fn timed(prefix: Key, from: u64, until: u64) -> Range {
        let base = prefix.0;
        let until = if until == 0 { u64::MAX } else { until };
        let mut lower = base.clone();
        lower.extend_from_slice(&from.to_be_bytes());
        let mut upper = base;
        upper.extend_from_slice(&until.to_be_bytes());
        Range { lower, upper }
    }
}

impl History {
    /// Opens (or creates) the read model in `path` and starts indexing the journal from where
    /// the model stands; rebuilds it if it does not match the journal.
    pub fn start(
        path: &Path,
        journal: JournalReader,
        journaled: watch::Receiver<u64>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<History> {
        let (db, through, chain) = open_matching(path, &journal)?;
        let db = Arc::new(db);
        let (indexed_sender, indexed) = watch::channel(through);
        let failure = Arc::new(Mutex::new(None));
        let (thread_db, thread_failure, mut thread_journaled) =
            (db.clone(), failure.clone(), journaled.clone());
        let indexer_thread = std::thread::Builder::new()
            .name("mutua-history".into())
            .spawn(move || {
                // Below the engine and the gateway: on a busy machine the read model falls
                // behind (queries say how far it has indexed) instead of taking their time.
                lower_priority();
                let mut indexer = index::Indexer::new();
                let mut cursor = FeedCursor::after(through, chain);
                loop {
                    let last = *thread_journaled.borrow_and_update();
                    if cursor.next > last {
                        // Everything journaled is indexed: wait for the next batch, or for the
                        // engine to stop (the sender is gone).
                        if futures::executor::block_on(thread_journaled.changed()).is_err() {
                            return;
                        }
                        continue;
                    }
                    let indexed = journal
                        .records(&mut cursor, RECORDS_PER_CHUNK)
                        .map_err(|error| error.to_string())
                        .and_then(|records| {
                            let Some(last) = records.last().map(|record| record.sequence) else {
                                return Ok(None);
                            };
                            let chain = cursor
                                .chain_head()
                                .map(|(_, chain)| chain)
                                .unwrap_or_default();
                            indexer
                                .index(&thread_db, &records, chain)
                                .map(|()| Some(last))
                                .map_err(|error| error.to_string())
                        });
                    match indexed {
                        Ok(Some(through)) => {
                            metrics.history_indexed(through);
                            indexed_sender.send_replace(through);
                            if through >= *thread_journaled.borrow() {
                                // Caught up: let the next records gather for a moment, so that
                                // a trickle of small batches is indexed in a few larger chunks.
                                std::thread::sleep(GATHER);
                            }
                        }
                        // Journaled but not yet readable: look again shortly.
                        Ok(None) => std::thread::sleep(Duration::from_millis(1)),
                        Err(error) => {
                            tracing::error!(%error, "the history read model stopped indexing");
                            *thread_failure
                                .lock()
                                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(error);
                            return;
                        }
                    }
                }
            })?;
        Ok(History {
            db: Some(db),
            indexed,
            journaled,
            failure,
            indexer: Arc::new(Mutex::new(Some(indexer_thread))),
        })
    }

    /// A history that keeps nothing: every query is refused as unavailable.
    pub fn disabled(journaled: watch::Receiver<u64>) -> History {
        History {
            db: None,
            indexed: watch::channel(0).1,
            journaled,
            failure: Arc::new(Mutex::new(None)),
            indexer: Arc::new(Mutex::new(None)),
        }
    }

    fn db(&self) -> Result<&DB, HistoryError> {
        self.db.as_deref().ok_or(HistoryError::Disabled)
    }

    /// Once the engine has stopped (so nothing more is journaled): waits for the indexer to
    /// finish what it read, then writes what the model holds in memory to its files, so that
    /// the next start resumes here.
    pub async fn stop(&self) -> Result<(), rocksdb::Error> {
        let task = self
            .indexer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(task) = task {
            let joined = tokio::task::spawn_blocking(move || task.join());
            if tokio::time::timeout(Duration::from_secs(30), joined)
                .await
                .is_err()
            {
                tracing::warn!("the history indexer did not stop within 30 s");
            }
        }
        match &self.db {
            Some(db) => db.flush(),
            None => Ok(()),
        }
    }

    /// Waits until the model reflects everything journaled when this was called (at most
    /// `CATCH_UP_WAIT`), and returns the sequence it reflects.
    pub async fn caught_up(&self) -> Result<u64, HistoryError> {
        self.db()?;
        if let Some(failure) = self
            .failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
        {
            return Err(HistoryError::Failed(failure));
        }
        let target = *self.journaled.borrow();
        let mut indexed = self.indexed.clone();
        let _ = tokio::time::timeout(
            CATCH_UP_WAIT,
            indexed.wait_for(|through| *through >= target),
        )
        .await;
        let through = *indexed.borrow();
        Ok(through)
    }

    /// The value at `key`, decoded.
    pub fn get<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, HistoryError> {
        match self.db()?.get(key)? {
            None => Ok(None),
            Some(bytes) => postcard::from_bytes(&bytes)
                .map(Some)
                .map_err(|error| HistoryError::Failed(format!("undecodable value: {error}"))),
        }
    }

    /// The last value at or before `key` among keys that start with `prefix`.
    pub fn last_at_or_before<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &[u8],
        key: &[u8],
    ) -> Result<Option<T>, HistoryError> {
        let mut iterator = self.db()?.raw_iterator();
        iterator.seek_for_prev(key);
        match (iterator.key(), iterator.value()) {
            (Some(found), Some(value)) if found.starts_with(prefix) => postcard::from_bytes(value)
                .map(Some)
                .map_err(|error| HistoryError::Failed(format!("undecodable value: {error}"))),
            _ => {
                iterator.status()?;
                Ok(None)
            }
        }
    }

    /// One page of the values in `range`, in key order (or reversed), from `token` (a previous
    /// page's `next`, which must lie in the range). `keep` decodes and filters; at most
    /// `page` kept values and `SCAN_ENTRIES_MAX` examined ones.
    pub fn scan<T: serde::de::DeserializeOwned, U>(
        &self,
        range: &Range,
        token: &[u8],
        newest_first: bool,
        page: usize,
        mut keep: impl FnMut(T) -> Option<U>,
    ) -> Result<Page<U>, HistoryError> {
        if !token.is_empty() && !(range.lower.as_slice() <= token && token < range.upper.as_slice())
        {
            return Err(HistoryError::ForeignPageToken);
        }
        let start: &[u8] = if token.is_empty() {
            if newest_first {
                &range.upper
            } else {
                &range.lower
            }
        } else {
            token
        };
        let direction = if newest_first {
            Direction::Reverse
        } else {
            Direction::Forward
        };
        let mut items = Vec::new();
        let mut examined = 0;
        for entry in self.db()?.iterator(IteratorMode::From(start, direction)) {
            let (key, value) = entry?;
            // Reverse from the exclusive upper bound lands on it only if it exists; skip it.
            if newest_first && key.as_ref() >= range.upper.as_slice() {
                continue;
            }
            if key.as_ref() < range.lower.as_slice() || key.as_ref() >= range.upper.as_slice() {
                break;
            }
            if items.len() >= page || examined >= SCAN_ENTRIES_MAX {
                return Ok(Page {
                    items,
                    next: key.to_vec(),
                });
            }
            examined += 1;
            let value: T = postcard::from_bytes(&value)
                .map_err(|error| HistoryError::Failed(format!("undecodable value: {error}")))?;
            if let Some(kept) = keep(value) {
                items.push(kept);
            }
        }
        Ok(Page {
            items,
            next: Vec::new(),
        })
    }
}

/// Makes the calling thread run after everything else on the machine (nice 10).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on the calling thread (who = its thread id) only changes its own
    // scheduling priority.
    unsafe {
        let thread = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, thread, 10);
    }
}

/// Opens the model at `path`, returning it with the sequence it is indexed through and the chain
/// hash after it; a model that does not match `journal` (another journal, or one cut shorter)
/// is deleted and started afresh.
fn open_matching(path: &Path, journal: &JournalReader) -> anyhow::Result<(DB, u64, ChainHash)> {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    options.set_write_buffer_size(64 << 20);
    options.set_keep_log_file_num(4);
    options.set_max_log_file_size(16 << 20);
    let db = DB::open(&options, path)?;
    let stored: Option<(u64, ChainHash)> = match db.get(META_THROUGH)? {
        None => None,
        Some(bytes) => postcard::from_bytes(&bytes).ok(),
    };
    let (through, chain) = stored.unwrap_or((0, crate::chain::GENESIS_CHAIN));
    let matches = through == 0 || journal.chain_after(through).ok() == Some(chain);
    if matches
        && (through > 0 || stored.is_some() || db.iterator(IteratorMode::Start).next().is_none())
    {
        return Ok((db, through, chain));
    }
    tracing::warn!(
        through,
        "the history read model does not match the journal; rebuilding it from the first record"
    );
    drop(db);
    DB::destroy(&options, path)?;
    let db = DB::open(&options, path)?;
    Ok((db, 0, crate::chain::GENESIS_CHAIN))
}
