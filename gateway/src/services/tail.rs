//! Following the journal from a sequence number: the one path of the audit feed and of trades
//! from a sequence. Chunks are read beside the engine thread (on a blocking thread, through
//! `JournalReader::feed`); once everything synced is read, the tail waits for the sequencer's
//! `journaled` watch. Past and present come through the same reads, so nothing is lost or
//! repeated where one would turn into the other.

use tokio::sync::watch;

use crate::journal::{FeedCursor, JournalError, JournalReader};
use crate::services::Shared;

pub(crate) struct JournalTail {
    journal: JournalReader,
    journaled: watch::Receiver<u64>,
    cursor: FeedCursor,
}

impl JournalTail {
    /// A tail whose first record is `from` (at least 1).
    pub fn new(shared: &Shared, from: u64) -> JournalTail {
        JournalTail {
            journal: shared.journal.clone(),
            journaled: shared.sequencer.journaled(),
            cursor: FeedCursor::from(from),
        }
    }

    /// The next chunk past the cursor, once the journal holds one: `read` reads it from the
    /// cursor and returns what it made of it, how many records it covered and the cursor after
    /// them. `None` once the sequencer has gone.
    pub async fn next<T, R>(&mut self, read: R) -> Option<Result<T, JournalError>>
    where
        T: Send + 'static,
        R: Fn(&JournalReader, FeedCursor) -> Result<(T, usize, FeedCursor), JournalError>
            + Clone
            + Send
            + 'static,
    {
        loop {
            let last = *self.journaled.borrow_and_update();
            if self.cursor.next > last {
                self.journaled.changed().await.ok()?;
                continue;
            }
            let (journal, cursor, read) = (self.journal.clone(), self.cursor, read.clone());
            match tokio::task::spawn_blocking(move || read(&journal, cursor)).await {
                Err(_) => return None,
                Ok(Err(error)) => return Some(Err(error)),
                Ok(Ok((_, 0, _))) => {
                    // Nothing readable past the cursor yet: look again shortly.
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                Ok(Ok((made, _, after))) => {
                    self.cursor = after;
                    return Some(Ok(made));
                }
            }
        }
    }
}
