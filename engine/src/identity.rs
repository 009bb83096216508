//! Identity inside the market's state: the credentials (bearer tokens, held only as SHA-256
//! hashes) each participant may present, and the operator's suspension of a participant.
//!
//! Keeping both here, in the journaled state, means they replay, snapshot and hash like
//! everything else: a token revoked or a participant suspended stays so after any restart, and
//! the record of who was given access when is part of the audited history. The gateway keeps a
//! lookup map of live token hashes that follows these events; the engine refuses a suspended
//! participant's commands on its own, whatever that map says.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::command::{
    Ack, CancelReason, CredentialId, Event, ParticipantId, RejectReason, Role, Timestamp,
};
use crate::{Engine, GENESIS_OPERATOR};

/// One credential: whose it is, the hash of its token, and when it was issued and revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub participant: ParticipantId,
    /// SHA-256 of the bearer token. The token itself is never stored.
    pub token_hash: [u8; 32],
    pub issued_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

impl Credential {
    pub fn is_live(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// Every credential ever issued, and an index of the live ones per participant.
#[derive(Clone, Debug, Default)]
pub(crate) struct Credentials {
    /// Indexed by credential id.
    pub(crate) all: Vec<Credential>,
    /// Live credentials per participant, oldest first. Derived from `all`.
    live: FxHashMap<ParticipantId, Vec<CredentialId>>,
}

impl Credentials {
    pub(crate) fn restore(all: Vec<Credential>) -> Credentials {
        let mut credentials = Credentials {
            all,
            live: FxHashMap::default(),
        };
        for (index, credential) in credentials.all.iter().enumerate() {
            if credential.is_live() {
                credentials
                    .live
                    .entry(credential.participant)
                    .or_default()
                    .push(CredentialId(index as u32));
            }
        }
        credentials
    }

    pub(crate) fn live_of(&self, participant: ParticipantId) -> &[CredentialId] {
        self.live.get(&participant).map_or(&[], Vec::as_slice)
    }

    fn revoke(&mut self, credential: CredentialId, now: Timestamp) -> ParticipantId {
        let entry = &mut self.all[credential.0 as usize];
        entry.revoked_at = Some(now);
        let participant = entry.participant;
        if let Some(live) = self.live.get_mut(&participant) {
            live.retain(|id| *id != credential);
            if live.is_empty() {
                self.live.remove(&participant);
            }
        }
        participant
    }
}

impl Engine {
    pub(crate) fn issue_credential(
        &mut self,
        participant: ParticipantId,
        token_hash: [u8; 32],
        replace_existing: bool,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let role = self
            .participant(participant)
            .ok_or(RejectReason::UnknownAccount)?
            .role;
        let live_after = if replace_existing {
            1
        } else {
            self.credentials.live_of(participant).len() + 1
        };
        if live_after > self.config.credentials_per_participant_max as usize
            || self.credentials.all.len() >= self.config.credentials_max as usize
        {
            return Err(RejectReason::CredentialsFull);
        }
        if replace_existing {
            for old in self.credentials.live_of(participant).to_vec() {
                self.credentials.revoke(old, self.now);
                events.push(Event::CredentialRevoked {
                    credential: old,
                    participant,
                });
            }
        }
        let credential = CredentialId(self.credentials.all.len() as u32);
        self.credentials.all.push(Credential {
            participant,
            token_hash,
            issued_at: self.now,
            revoked_at: None,
        });
        self.credentials
            .live
            .entry(participant)
            .or_default()
            .push(credential);
        events.push(Event::CredentialIssued {
            credential,
            participant,
            role,
        });
        Ok(Ack::Credential(credential))
    }

    pub(crate) fn revoke_credential(
        &mut self,
        credential: CredentialId,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let entry = self
            .credentials
            .all
            .get(credential.0 as usize)
            .ok_or(RejectReason::UnknownCredential)?;
        if !entry.is_live() {
            return Err(RejectReason::NoEffect);
        }
        let participant = self.credentials.revoke(credential, self.now);
        events.push(Event::CredentialRevoked {
            credential,
            participant,
        });
        Ok(Ack::Done)
    }

    pub(crate) fn set_participant_status(
        &mut self,
        operator: ParticipantId,
        participant: ParticipantId,
        suspended: bool,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let target = self
            .participants
            .get(participant.0 as usize)
            .ok_or(RejectReason::UnknownAccount)?;
        if suspended && (participant == operator || participant == GENESIS_OPERATOR) {
            return Err(RejectReason::CannotSuspendSelf);
        }
        if target.suspended == suspended {
            return Err(RejectReason::NoEffect);
        }
        self.participants[participant.0 as usize].suspended = suspended;
        events.push(Event::ParticipantStatusChanged {
            participant,
            suspended,
        });
        if suspended && target_trades(self.participants[participant.0 as usize].role) {
            for order in self.orders_of(participant) {
                self.cancel_for_owner(order.id, CancelReason::OwnerSuspended, events);
            }
        }
        Ok(Ack::Done)
    }

    /// Every credential ever issued, in id order.
    pub fn credentials(&self) -> impl Iterator<Item = (CredentialId, &Credential)> {
        self.credentials
            .all
            .iter()
            .enumerate()
            .map(|(index, credential)| (CredentialId(index as u32), credential))
    }

    pub fn credential(&self, id: CredentialId) -> Option<&Credential> {
        self.credentials.all.get(id.0 as usize)
    }

    /// The live credentials of a participant, oldest first.
    pub fn live_credentials_of(&self, participant: ParticipantId) -> &[CredentialId] {
        self.credentials.live_of(participant)
    }
}

/// Only contributors place orders; suspending anyone else cancels nothing.
fn target_trades(role: Role) -> bool {
    role == Role::Contributor
}
