//! Idempotency: each participant's recent command ids, each with a digest of the command it
//! named, its first outcome and the sequence number of its first application, so that a retried
//! command returns its first outcome (and where its events are) instead of applying twice, and an
//! id reused for a different command is refused instead of silently answered.
//!
//! Ids are remembered per participant, in two generations of
//! `command_ids_per_participant_max / 2` each: a participant's new ids go into its current
//! generation; when that is full it becomes the previous one and the old previous one is
//! forgotten all at once. So each participant's last `command_ids_per_participant_max / 2` ids are
//! always remembered, whatever any other participant does, and at most
//! `command_ids_per_participant_max`. Forgetting a generation in bulk, instead of one id per
//! command, keeps the steady-state cost of a new command to one hash-map insert.

use std::hash::{Hash, Hasher};

use rustc_hash::{FxHashMap, FxHasher};
use serde::{Deserialize, Serialize};

use crate::command::{Ack, CommandId, CommandKind, ParticipantId, RejectReason};

/// What is remembered of one command id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remembered {
    /// A digest of the command's kind and fields: a retry must carry the same command.
    pub digest: u64,
    pub result: Result<Ack, RejectReason>,
    /// Journal sequence number of the first application.
    pub sequence: u64,
}

/// The digest of a command's kind and fields (64-bit FxHash of its derived `Hash`). It only has
/// to tell apart the commands one participant sends under one request id, so a fast,
/// deterministic hash is enough; it is recomputed on replay, never trusted from outside.
pub fn command_digest(kind: &CommandKind) -> u64 {
    let mut hasher = FxHasher::default();
    kind.hash(&mut hasher);
    hasher.finish()
}

/// A generation's index is one map until it holds this many ids, then `SHARDS` maps chosen by
/// the id's high bits. Growing a map rehashes every id in it at once, on the engine thread: one
/// map of a full generation (131,072 ids by default) stalled the engine for milliseconds each
/// time it doubled, while a shard holds a sixty-fourth of that and rehashes in tens of
/// microseconds. Participants that send few commands keep the one small map (sharding every
/// window costs each lookup a cache miss: a third of the exchange-core mix's speed).
const SPLIT_AT: usize = 2_048;
const SHARDS: usize = 64;
/// Arrival order is kept in chunks of this many entries, so that it never grows by copying a
/// whole generation either; the first chunk grows by doubling as a vector does.
const CHUNK: usize = 512;

#[derive(Clone, Debug)]
enum Index {
    One(FxHashMap<CommandId, u32>),
    Sharded(Box<[FxHashMap<CommandId, u32>]>),
}

impl Default for Index {
    fn default() -> Index {
        Index::One(FxHashMap::default())
    }
}

/// The shard of an id: a multiplicative hash of its high half, independent of the bits the map
/// itself probes with.
#[inline]
fn shard(id: CommandId) -> usize {
    (((id.0 >> 64) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize
}

impl Index {
    #[inline]
    fn get(&self, id: &CommandId) -> Option<u32> {
        match self {
            Index::One(map) => map.get(id).copied(),
            Index::Sharded(shards) => shards[shard(*id)].get(id).copied(),
        }
    }

    #[inline]
    fn insert(&mut self, id: CommandId, place: u32) -> Option<u32> {
        if let Index::One(map) = self {
            if map.len() < SPLIT_AT {
                return map.insert(id, place);
            }
            // Each shard sized for twice its share at once: one allocation, no regrowth yet.
            let mut shards: Box<[FxHashMap<CommandId, u32>]> = (0..SHARDS)
                .map(|_| {
                    FxHashMap::with_capacity_and_hasher(2 * SPLIT_AT / SHARDS, Default::default())
                })
                .collect();
            for (id, place) in map.drain() {
                shards[shard(id)].insert(id, place);
            }
            *self = Index::Sharded(shards);
        }
        match self {
            Index::One(map) => map.insert(id, place),
            Index::Sharded(shards) => shards[shard(id)].insert(id, place),
        }
    }

    /// Forgets every id and keeps the capacity (and the shards) for the next generation.
    fn clear(&mut self) {
        match self {
            Index::One(map) => map.clear(),
            Index::Sharded(shards) => shards.iter_mut().for_each(|map| map.clear()),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Generation {
    /// Id → its place in `arrival`. Small entries keep the maps, probed by every command, dense.
    index: Index,
    /// Ids and what is remembered of them, in arrival order (chunks of `CHUNK`): the canonical
    /// order for snapshots. Chunks are kept, emptied, when the generation is cleared.
    arrival: Vec<Vec<(CommandId, Remembered)>>,
    len: usize,
}

impl Generation {
    #[inline]
    fn get(&self, id: CommandId) -> Option<Remembered> {
        self.index.get(&id).map(|place| {
            let place = place as usize;
            self.arrival[place / CHUNK][place % CHUNK].1
        })
    }

    #[inline]
    fn push(&mut self, id: CommandId, remembered: Remembered) {
        let place = self.len;
        let chunk = place / CHUNK;
        if chunk == self.arrival.len() {
            self.arrival.push(if chunk == 0 {
                Vec::new()
            } else {
                Vec::with_capacity(CHUNK)
            });
        }
        self.arrival[chunk].push((id, remembered));
        self.len += 1;
        let previous = self.index.insert(id, place as u32);
        debug_assert!(previous.is_none(), "a remembered id was applied again");
    }

    fn entries(&self) -> impl Iterator<Item = &(CommandId, Remembered)> {
        self.arrival.iter().flatten()
    }

    fn clear(&mut self) {
        self.index.clear();
        self.arrival.iter_mut().for_each(Vec::clear);
        self.len = 0;
    }
}

/// One participant's window of remembered ids.
#[derive(Clone, Debug, Default)]
struct Window {
    current: Generation,
    previous: Generation,
}

#[derive(Clone, Debug)]
pub(crate) struct Dedup {
    /// Indexed by participant id; grown as participants send commands.
    windows: Vec<Window>,
    generation_max: usize,
}

impl Dedup {
    pub(crate) fn new(per_participant_max: u32) -> Dedup {
        // Places are u32: a generation never holds more than u32::MAX ids.
        let generation_max = (per_participant_max as usize / 2).max(1);
        Dedup {
            windows: Vec::new(),
            generation_max,
        }
    }

    #[inline]
    pub(crate) fn get(&self, participant: ParticipantId, id: CommandId) -> Option<Remembered> {
        let window = self.windows.get(participant.0 as usize)?;
        window.current.get(id).or_else(|| window.previous.get(id))
    }

    #[inline]
    pub(crate) fn remember(
        &mut self,
        participant: ParticipantId,
        id: CommandId,
        remembered: Remembered,
    ) {
        let index = participant.0 as usize;
        if index >= self.windows.len() {
            self.windows.resize_with(index + 1, Window::default);
        }
        let window = &mut self.windows[index];
        if window.current.len == self.generation_max {
            std::mem::swap(&mut window.current, &mut window.previous);
            window.current.clear();
        }
        window.current.push(id, remembered);
    }

    /// Every participant's ids, oldest first, participants in id order: the canonical form for
    /// snapshots. Participants with nothing remembered are left out.
    pub(crate) fn entries(&self) -> Vec<(ParticipantId, Vec<(CommandId, Remembered)>)> {
        self.windows
            .iter()
            .enumerate()
            .filter(|(_, window)| window.current.len > 0)
            .map(|(index, window)| {
                let mut entries = Vec::with_capacity(window.previous.len + window.current.len);
                entries.extend(window.previous.entries());
                entries.extend(window.current.entries());
                (ParticipantId(index as u32), entries)
            })
            .collect()
    }

    /// Rebuilds the windows exactly: a previous generation is either empty or full, so feeding a
    /// participant's entries back in order splits them where they were split.
    pub(crate) fn restore(
        per_participant_max: u32,
        entries: &[(ParticipantId, Vec<(CommandId, Remembered)>)],
    ) -> Dedup {
        let mut dedup = Dedup::new(per_participant_max);
        for (participant, remembered) in entries {
            for (id, what) in remembered {
                dedup.remember(*participant, *id, *what);
            }
        }
        dedup
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::OrderId;

    fn remembered(n: u64) -> Remembered {
        Remembered {
            digest: n.wrapping_mul(31),
            result: Ok(Ack::Order(OrderId(n))),
            sequence: n,
        }
    }

    /// Ids spread like the gateway's (a hash of the request id).
    fn id(n: u64) -> CommandId {
        let mut hasher = FxHasher::default();
        n.hash(&mut hasher);
        let high = hasher.finish();
        CommandId((u128::from(high) << 64) | u128::from(n))
    }

    #[test]
    fn large_windows_split_their_index_and_keep_exactly_the_last_generations() {
        // Generations of 10,000: past the split into shards and across several chunks.
        let generation = 10_000u64;
        let mut dedup = Dedup::new((generation * 2) as u32);
        let alice = ParticipantId(3);
        let total = 25_000u64;
        for n in 0..total {
            dedup.remember(alice, id(n), remembered(n));
            // Every id just remembered is found, with what was remembered of it.
            assert_eq!(dedup.get(alice, id(n)), Some(remembered(n)));
        }
        // Generations [0, 10k) and [10k, 20k) filled; the first was forgotten when [20k, 25k)
        // began: remembered are exactly ids 10,000 to 24,999.
        for n in 0..total {
            let expected = (n >= generation).then(|| remembered(n));
            assert_eq!(dedup.get(alice, id(n)), expected, "id {n}");
        }
        assert_eq!(dedup.get(ParticipantId(2), id(total - 1)), None);
        // The canonical form lists them oldest first, and restoring it rebuilds the same window.
        let entries = dedup.entries();
        assert_eq!(entries.len(), 1);
        let listed: Vec<u64> = entries[0].1.iter().map(|(_, what)| what.sequence).collect();
        assert_eq!(listed, (generation..total).collect::<Vec<_>>());
        let restored = Dedup::restore((generation * 2) as u32, &entries);
        assert_eq!(restored.entries(), entries);
        for n in [0, generation - 1, generation, 19_999, 20_000, total - 1] {
            assert_eq!(
                restored.get(alice, id(n)),
                dedup.get(alice, id(n)),
                "id {n}"
            );
        }
        // The next id starts a new generation in the restored window as in the original.
        let mut original = dedup.clone();
        let mut again = restored;
        for n in total..total + 6_000 {
            original.remember(alice, id(n), remembered(n));
            again.remember(alice, id(n), remembered(n));
        }
        assert_eq!(original.entries(), again.entries());
        assert_eq!(original.get(alice, id(19_999)), None);
        assert_eq!(original.get(alice, id(20_000)), Some(remembered(20_000)));
    }
}
