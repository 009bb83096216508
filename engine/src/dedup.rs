//! Idempotency: the outcomes of recent command ids, so that a retried command returns its first
//! outcome instead of applying twice.
//!
//! Ids are remembered in two generations of `command_ids_remembered_max / 2` each: new ids go
//! into the current one; when it is full it becomes the previous one and the old previous one is
//! forgotten all at once. So the last `command_ids_remembered_max / 2` ids are always remembered,
//! and at most `command_ids_remembered_max`. Forgetting a generation in bulk, instead of one id
//! per command, keeps the steady-state cost of a new command to one hash-map insert. Ids are
//! unique market-wide; the gateway scopes a client's request id by its participant before it
//! reaches the engine.

use rustc_hash::FxHashMap;

use crate::command::{Ack, CommandId, RejectReason};

pub(crate) type Remembered = Result<Ack, RejectReason>;

#[derive(Clone, Debug, Default)]
struct Generation {
    /// Id → its place in `arrival`. Small entries keep the map, probed by every command, dense.
    index: FxHashMap<CommandId, u32>,
    /// Ids and outcomes in arrival order: the canonical order for snapshots, copied out whole.
    arrival: Vec<(CommandId, Remembered)>,
}

impl Generation {
    fn with_capacity(capacity: usize) -> Generation {
        Generation {
            index: FxHashMap::with_capacity_and_hasher(capacity, Default::default()),
            arrival: Vec::with_capacity(capacity),
        }
    }

    #[inline]
    fn get(&self, id: CommandId) -> Option<Remembered> {
        self.index.get(&id).map(|place| self.arrival[*place as usize].1)
    }

    fn clear(&mut self) {
        self.index.clear();
        self.arrival.clear();
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Dedup {
    current: Generation,
    previous: Generation,
    generation_max: usize,
}

impl Dedup {
    pub(crate) fn new(remembered_max: u32) -> Dedup {
        // Places are u32: a generation never holds more than u32::MAX ids.
        let generation_max = (remembered_max as usize / 2).max(1);
        let initial = generation_max.min(1 << 16);
        Dedup { current: Generation::with_capacity(initial), previous: Generation::default(), generation_max }
    }

    #[inline]
    pub(crate) fn get(&self, id: CommandId) -> Option<Remembered> {
        self.current.get(id).or_else(|| self.previous.get(id))
    }

    #[inline]
    pub(crate) fn remember(&mut self, id: CommandId, outcome: Remembered) {
        if self.current.arrival.len() == self.generation_max {
            std::mem::swap(&mut self.current, &mut self.previous);
            self.current.clear();
        }
        let place = self.current.arrival.len() as u32;
        self.current.arrival.push((id, outcome));
        let previous = self.current.index.insert(id, place);
        debug_assert!(previous.is_none(), "a remembered id was applied again");
    }

    /// Ids and outcomes, oldest first: the canonical form for snapshots.
    pub(crate) fn entries(&self) -> Vec<(CommandId, Remembered)> {
        let mut entries = Vec::with_capacity(self.previous.arrival.len() + self.current.arrival.len());
        entries.extend_from_slice(&self.previous.arrival);
        entries.extend_from_slice(&self.current.arrival);
        entries
    }

    /// Rebuilds the generations exactly: the previous one is either empty or full, so feeding
    /// the entries back in order splits them where they were split.
    pub(crate) fn restore(remembered_max: u32, entries: &[(CommandId, Remembered)]) -> Dedup {
        let mut dedup = Dedup::new(remembered_max);
        for (id, outcome) in entries {
            dedup.remember(*id, *outcome);
        }
        dedup
    }
}
