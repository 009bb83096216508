//! Idempotency: the outcomes of recent command ids, so that a retried command returns its first
//! outcome instead of applying twice.
//!
//! The window is bounded (`command_ids_remembered_max`): the oldest id is forgotten when a new one
//! arrives at a full window. Ids are unique market-wide; the gateway scopes a client's request id
//! by its participant before it reaches the engine.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::command::{Ack, CommandId, RejectReason};

pub(crate) type Remembered = Result<Ack, RejectReason>;

#[derive(Clone, Debug)]
pub(crate) struct Dedup {
    outcomes: FxHashMap<CommandId, Remembered>,
    /// Ids in arrival order, oldest first.
    arrival: VecDeque<CommandId>,
    remembered_max: usize,
}

impl Dedup {
    pub(crate) fn new(remembered_max: u32) -> Dedup {
        let remembered_max = remembered_max.max(1) as usize;
        let initial = remembered_max.min(1 << 16);
        Dedup {
            outcomes: FxHashMap::with_capacity_and_hasher(initial, Default::default()),
            arrival: VecDeque::with_capacity(initial),
            remembered_max,
        }
    }

    #[inline]
    pub(crate) fn get(&self, id: CommandId) -> Option<Remembered> {
        self.outcomes.get(&id).copied()
    }

    #[inline]
    pub(crate) fn remember(&mut self, id: CommandId, outcome: Remembered) {
        if self.arrival.len() == self.remembered_max {
            if let Some(oldest) = self.arrival.pop_front() {
                self.outcomes.remove(&oldest);
            }
        }
        self.arrival.push_back(id);
        let previous = self.outcomes.insert(id, outcome);
        debug_assert!(previous.is_none(), "a remembered id was applied again");
    }

    /// Ids and outcomes, oldest first: the canonical form for snapshots.
    pub(crate) fn entries(&self) -> Vec<(CommandId, Remembered)> {
        self.arrival.iter().map(|id| (*id, self.outcomes[id])).collect()
    }

    pub(crate) fn restore(remembered_max: u32, entries: &[(CommandId, Remembered)]) -> Dedup {
        let mut dedup = Dedup::new(remembered_max);
        for (id, outcome) in entries {
            dedup.remember(*id, *outcome);
        }
        dedup
    }
}
