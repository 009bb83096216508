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

#[derive(Clone, Debug, Default)]
struct Generation {
    /// Id → its place in `arrival`. Small entries keep the map, probed by every command, dense.
    index: FxHashMap<CommandId, u32>,
    /// Ids and what is remembered of them, in arrival order: the canonical order for snapshots.
    arrival: Vec<(CommandId, Remembered)>,
}

impl Generation {
    #[inline]
    fn get(&self, id: CommandId) -> Option<Remembered> {
        self.index
            .get(&id)
            .map(|place| self.arrival[*place as usize].1)
    }

    fn clear(&mut self) {
        self.index.clear();
        self.arrival.clear();
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
        if window.current.arrival.len() == self.generation_max {
            std::mem::swap(&mut window.current, &mut window.previous);
            window.current.clear();
        }
        let place = window.current.arrival.len() as u32;
        window.current.arrival.push((id, remembered));
        let previous = window.current.index.insert(id, place);
        debug_assert!(previous.is_none(), "a remembered id was applied again");
    }

    /// Every participant's ids, oldest first, participants in id order: the canonical form for
    /// snapshots. Participants with nothing remembered are left out.
    pub(crate) fn entries(&self) -> Vec<(ParticipantId, Vec<(CommandId, Remembered)>)> {
        self.windows
            .iter()
            .enumerate()
            .filter(|(_, window)| !window.current.arrival.is_empty())
            .map(|(index, window)| {
                let mut entries = Vec::with_capacity(
                    window.previous.arrival.len() + window.current.arrival.len(),
                );
                entries.extend_from_slice(&window.previous.arrival);
                entries.extend_from_slice(&window.current.arrival);
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
