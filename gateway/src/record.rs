//! The journal's record: one applied command as it is journaled, published and fed to
//! regulators. Its own module so that the journal and the audit chain both build on it without
//! depending on each other.

use mutua_engine::{AccountAfter, Command, Event, Outcome, Timestamp};
use serde::{Deserialize, Serialize};

/// Every journaled batch, in sequence order, as the writer hands it to the read replica and
/// publishes it to market data and audit streams.
pub type PublishedBatch = std::sync::Arc<Vec<std::sync::Arc<Applied>>>;

/// One journaled command: what came in, when, who asked with which request id, what it did and
/// the accounts it left changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub sequence: u64,
    pub timestamp: Timestamp,
    /// The request id the client chose (the command id is derived from it).
    pub request_id: String,
    pub command: Command,
    pub outcome: Outcome,
    pub events: Vec<Event>,
    /// The accounts the events changed, as they stood after the command
    /// (`Engine::accounts_after`).
    pub accounts: Vec<AccountAfter>,
}
