//! `mutua.v1.Audit`: the regulator's feed. Each feed reads the journal, beside the engine thread,
//! from where its client asked, and waits for the sequencer's "journaled up to N" signal when it
//! has read everything: the past and the present come through one path, so there is no
//! switch-over to lose or repeat a record at, and a slow client is simply a reader further back
//! in the journal (its memory is one chunk of records; the engine never waits for it).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::audit;
use crate::convert::{edge_status, EdgeReason};
use crate::journal::{FeedCursor, JournalError, JournalReader};
use crate::pb;
use crate::services::tail::JournalTail;
use crate::services::{reads_everything, Shared};

/// Records read from the journal at a time by one feed (whole batches, so up to one batch
/// more): a feed's memory is about this many records, whatever its client does.
pub const FEED_RECORDS_PER_READ: usize = 4_096;
/// Feed messages queued for one client before its feed stops reading the journal.
const FEED_MESSAGES_QUEUED_MAX: usize = 2;

/// Records the shared cache of rendered chunks holds at most.
const CACHED_RECORDS_MAX: usize = 16_384;

pub struct AuditService {
    shared: Shared,
    cache: Arc<FeedCache>,
}

impl AuditService {
    pub(crate) fn new(shared: Shared) -> AuditService {
        AuditService {
            shared,
            cache: Arc::default(),
        }
    }
}

/// A chunk of the feed as read and rendered from one cursor, and the cursor after it.
struct Chunk {
    from: u64,
    messages: Vec<pb::AuditRecords>,
    records: usize,
    after: FeedCursor,
}

/// The most recently rendered chunks, shared by every feed: live feeds wait at the journal's
/// end together and ask for the same next chunk, which is then read and rendered once, not once
/// per feed. Bounded by `CACHED_RECORDS_MAX` records.
#[derive(Default)]
struct FeedCache {
    chunks: Mutex<VecDeque<Arc<Chunk>>>,
}

impl FeedCache {
    fn get(&self, from: u64) -> Option<Arc<Chunk>> {
        let chunks = self
            .chunks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        chunks.iter().find(|chunk| chunk.from == from).cloned()
    }

    fn put(&self, chunk: Arc<Chunk>) {
        let mut chunks = self
            .chunks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if chunks.iter().any(|cached| cached.from == chunk.from) {
            return;
        }
        chunks.push_back(chunk);
        let mut held: usize = chunks.iter().map(|chunk| chunk.records).sum();
        while held > CACHED_RECORDS_MAX && chunks.len() > 1 {
            held -= chunks.pop_front().map_or(0, |chunk| chunk.records);
        }
    }
}

/// Reads and renders the chunk of the feed at `cursor` (on a blocking thread).
fn read_chunk(journal: &JournalReader, mut cursor: FeedCursor) -> Result<Chunk, JournalError> {
    let from = cursor.next;
    let records = journal.feed(&mut cursor, FEED_RECORDS_PER_READ)?;
    let count = records.len();
    let rendered = records
        .into_iter()
        .map(|fed| audit::to_pb(&fed.record, fed.canonical, &fed.chain))
        .collect();
    Ok(Chunk {
        from,
        messages: audit::into_messages(rendered),
        records: count,
        after: cursor,
    })
}

fn journal_status(error: JournalError) -> Status {
    match error {
        JournalError::ChainBroken { .. }
        | JournalError::CorruptRecord { .. }
        | JournalError::Gap { .. } => Status::data_loss(error.to_string()),
        other => Status::internal(other.to_string()),
    }
}

fn regulator_or_operator(caller: crate::auth::Caller) -> Result<(), Status> {
    if reads_everything(caller) {
        Ok(())
    } else {
        Err(edge_status(
            EdgeReason::NotPermitted,
            "the audit feed is for the regulator and the operator",
        ))
    }
}

#[tonic::async_trait]
impl pb::audit_server::Audit for AuditService {
    type StreamStream = ReceiverStream<Result<pb::AuditRecords, Status>>;

    async fn stream(
        &self,
        request: Request<pb::AuditStreamRequest>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        regulator_or_operator(caller)?;
        let permit = self.shared.limits.audit_stream()?;
        let from = request.into_inner().from_sequence.max(1);
        let shared = self.shared.clone();
        let cache = self.cache.clone();
        let (sender, receiver) = mpsc::channel(FEED_MESSAGES_QUEUED_MAX);
        // Read on a blocking thread: a chunk another feed just read comes from the cache.
        let read = move |journal: &JournalReader, cursor: FeedCursor| {
            let chunk = match cache.get(cursor.next) {
                Some(chunk) => chunk,
                None => {
                    let chunk = Arc::new(read_chunk(journal, cursor)?);
                    if chunk.records > 0 {
                        cache.put(chunk.clone());
                    }
                    chunk
                }
            };
            let (records, after) = (chunk.records, chunk.after);
            Ok((chunk, records, after))
        };
        tokio::spawn(async move {
            let _permit = permit;
            let invalidated = shared.auth.invalidated(caller);
            tokio::pin!(invalidated);
            let mut tail = JournalTail::new(&shared, from);
            loop {
                let chunk = tokio::select! {
                    next = tail.next(read.clone()) => match next {
                        Some(Ok(chunk)) => chunk,
                        Some(Err(error)) => {
                            tracing::error!(%error, "the audit feed cannot read the journal");
                            let _ = sender.send(Err(journal_status(error))).await;
                            return;
                        }
                        None => return,
                    },
                    status = &mut invalidated => {
                        let _ = sender.send(Err(status)).await;
                        return;
                    }
                    _ = sender.closed() => return,
                    _ = shared.stopping() => return,
                };
                for message in &chunk.messages {
                    tokio::select! {
                        sent = sender.send(Ok(message.clone())) => if sent.is_err() { return },
                        status = &mut invalidated => {
                            let _ = sender.try_send(Err(status));
                            return;
                        }
                        _ = shared.stopping() => return,
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn chain_head(
        &self,
        request: Request<pb::ChainHeadRequest>,
    ) -> Result<Response<pb::ChainHeadResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        regulator_or_operator(caller)?;
        let last_sequence = *self.shared.sequencer.journaled().borrow();
        let wanted = match request.into_inner().sequence {
            0 => last_sequence,
            sequence if sequence > last_sequence => {
                return Err(crate::convert::invalid_field(format!(
                    "sequence: the journal ends at {last_sequence}"
                )))
            }
            sequence => sequence,
        };
        let reader = self.shared.journal.clone();
        let chain = tokio::task::spawn_blocking(move || reader.chain_after(wanted))
            .await
            .map_err(|_| Status::internal("the journal reader stopped"))?
            .map_err(journal_status)?;
        Ok(Response::new(pb::ChainHeadResponse {
            sequence: wanted,
            chain_hash: chain.to_vec(),
            last_sequence,
        }))
    }
}
