//! The audit hash chain: every journaled record has a public, canonical form, and each record's
//! chain hash is `SHA-256(previous chain hash ++ canonical form)`, starting from 32 zero bytes.
//! The journal computes it when it writes a batch and stores the batch's last chain hash with
//! the batch; the audit feed recomputes every record's hash as it serves and checks it against
//! the stored ones, and a regulator recomputes it again from the canonical bytes it received.
//!
//! The canonical form is the postcard encoding of [`ChainedRecord`]: the record as journaled,
//! except that what is private to one participant (a voucher's co-payment split, and the cash of
//! the voucher's funder and beneficiary beside it) is taken out and replaced by a salted digest.
//! A record with nothing private is, byte for byte, its journal payload followed by one zero byte
//! (the empty list of withheld parts), so the common case hashes the bytes already written.
//!
//! A withheld part's digest is `SHA-256(salt ++ postcard(part))` with
//! `salt = SHA-256("mutua.withheld" ++ key ++ sequence ++ part)`, where `key` is 32 random bytes
//! made with the journal and kept in it: the digest binds the value without revealing it (an
//! unsalted digest of a small amount could be found by trying every amount), and the salt of one
//! part can be handed to its owner to prove the value without revealing any other.

use mutua_engine::{AccountAfter, Command, CommandKind, Event, Outcome, ParticipantId, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::record::Applied;

/// A chain hash (SHA-256).
pub type ChainHash = [u8; 32];

/// The chain hash before the first record.
pub const GENESIS_CHAIN: ChainHash = [0; 32];

/// Which part of a record a withheld digest stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WithheldPart {
    /// The command's private fields (shown with them set to zero).
    Command,
    /// The event at this position of the record's events as journaled.
    Event(u32),
    /// The account at this position of the record's accounts as journaled.
    Account(u32),
}

/// A part of a record private to `party`, present in the chain only as its digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withheld {
    pub part: WithheldPart,
    pub party: ParticipantId,
    pub digest: [u8; 32],
}

/// The public, canonical form of a journal record: what the audit feed serves and the chain
/// hashes. Field order is `Applied`'s, with the withheld parts last.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainedRecord {
    pub sequence: u64,
    pub timestamp: Timestamp,
    pub request_id: String,
    pub command: Command,
    pub outcome: Outcome,
    pub events: Vec<Event>,
    pub accounts: Vec<AccountAfter>,
    pub withheld: Vec<Withheld>,
}

impl ChainedRecord {
    /// The public form of a record with nothing private: the record itself.
    pub fn of_public(applied: Applied) -> ChainedRecord {
        debug_assert!(!has_private_parts(&applied));
        ChainedRecord {
            sequence: applied.sequence,
            timestamp: applied.timestamp,
            request_id: applied.request_id,
            command: applied.command,
            outcome: applied.outcome,
            events: applied.events,
            accounts: applied.accounts,
            withheld: Vec::new(),
        }
    }
}

/// Whether anything in `applied` is private to one participant.
pub fn has_private_parts(applied: &Applied) -> bool {
    applied.command.private_to().is_some()
        || applied
            .events
            .iter()
            .any(|event| event.private_to().is_some() || event.withholds_cash_of() != [None, None])
}

/// The next chain hash.
pub fn link(previous: &ChainHash, canonical: &[u8]) -> ChainHash {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(canonical);
    hasher.finalize().into()
}

/// The next chain hash for a record without private parts, from its journal payload (the
/// canonical form is the payload and one zero byte).
pub fn link_payload(previous: &ChainHash, payload: &[u8]) -> ChainHash {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(payload);
    hasher.update([0u8]);
    hasher.finalize().into()
}

fn salt(key: &[u8; 32], sequence: u64, part: WithheldPart) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"mutua.withheld");
    hasher.update(key);
    hasher.update(sequence.to_le_bytes());
    hasher.update(postcard::to_allocvec(&part).expect("a part always serializes"));
    hasher.finalize().into()
}

/// The digest of a withheld value.
pub fn withheld_digest<T: Serialize>(salt: &[u8; 32], value: &T) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(postcard::to_allocvec(value).expect("a record part always serializes"));
    hasher.finalize().into()
}

/// The public form of `applied`, private parts withheld under `key`.
pub fn public_form(applied: &Applied, key: &[u8; 32]) -> ChainedRecord {
    let sequence = applied.sequence;
    let mut withheld = Vec::new();
    let mut command = applied.command.clone();
    if let Some(party) = applied.command.private_to() {
        let part = WithheldPart::Command;
        withheld.push(Withheld {
            part,
            party,
            digest: withheld_digest(&salt(key, sequence, part), &applied.command.kind),
        });
        if let CommandKind::IssueVoucher {
            co_payment_minor, ..
        } = &mut command.kind
        {
            *co_payment_minor = 0;
        }
    }
    let mut events = Vec::with_capacity(applied.events.len());
    let mut cash_withheld: Vec<ParticipantId> = Vec::new();
    for (index, event) in applied.events.iter().enumerate() {
        cash_withheld.extend(event.withholds_cash_of().into_iter().flatten());
        match event.private_to() {
            Some(party) => {
                let part = WithheldPart::Event(index as u32);
                withheld.push(Withheld {
                    part,
                    party,
                    digest: withheld_digest(&salt(key, sequence, part), event),
                });
            }
            None => events.push(event.clone()),
        }
    }
    let mut accounts = Vec::with_capacity(applied.accounts.len());
    for (index, account) in applied.accounts.iter().enumerate() {
        match account {
            AccountAfter::Cash { participant, .. } if cash_withheld.contains(participant) => {
                let part = WithheldPart::Account(index as u32);
                withheld.push(Withheld {
                    part,
                    party: *participant,
                    digest: withheld_digest(&salt(key, sequence, part), account),
                });
            }
            _ => accounts.push(*account),
        }
    }
    ChainedRecord {
        sequence,
        timestamp: applied.timestamp,
        request_id: applied.request_id.clone(),
        command,
        outcome: applied.outcome,
        events,
        accounts,
        withheld,
    }
}

/// A journaled record's public form and canonical bytes, from the record and its journal
/// payload: a record with private parts (its frame says so) is encoded again without them; any
/// other is its payload and one zero byte.
pub fn public_record(
    applied: Applied,
    payload: &[u8],
    private: bool,
    key: &[u8; 32],
) -> (ChainedRecord, Vec<u8>) {
    if private {
        let form = public_form(&applied, key);
        let bytes = postcard::to_allocvec(&form).expect("a record always serializes");
        (form, bytes)
    } else {
        let mut bytes = Vec::with_capacity(payload.len() + 1);
        bytes.extend_from_slice(payload);
        bytes.push(0);
        (ChainedRecord::of_public(applied), bytes)
    }
}

/// The chain hash after a record, from its journal payload: only a record with private parts is
/// decoded (to hash its public form); any other is hashed as it lies.
pub fn link_record(
    previous: &ChainHash,
    payload: &[u8],
    private: bool,
    key: &[u8; 32],
) -> Result<ChainHash, postcard::Error> {
    if !private {
        return Ok(link_payload(previous, payload));
    }
    let applied: Applied = postcard::from_bytes(payload)?;
    let form = public_form(&applied, key);
    Ok(link(
        previous,
        &postcard::to_allocvec(&form).expect("a record always serializes"),
    ))
}

/// What is wrong with a feed, at which sequence number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error(
        "record {sequence}: expected sequence {expected} (a record is missing or out of order)"
    )]
    OutOfOrder { sequence: u64, expected: u64 },
    #[error("record {sequence}: its chain hash does not follow from the previous one and its bytes (the record or one before it was altered)")]
    Broken { sequence: u64 },
    #[error("record {sequence}: its canonical bytes do not decode: {why}")]
    Undecodable { sequence: u64, why: String },
    #[error("record {sequence}: the fields shown differ from its canonical bytes: {why}")]
    Misrendered { sequence: u64, why: String },
}

/// Follows a feed record by record, checking numbering and the chain.
#[derive(Clone, Debug)]
pub struct ChainVerifier {
    /// The sequence the next record must carry.
    pub next_sequence: u64,
    pub head: ChainHash,
}

impl ChainVerifier {
    /// A verifier that starts after `sequence`, whose chain hash was `head` (`0` and
    /// `GENESIS_CHAIN` for a feed from the beginning).
    pub fn after(sequence: u64, head: ChainHash) -> ChainVerifier {
        ChainVerifier {
            next_sequence: sequence + 1,
            head,
        }
    }

    /// Checks one record: that it is the next, that its canonical bytes decode to a record of
    /// that sequence, and that `chain` follows. Returns the decoded record.
    pub fn check(
        &mut self,
        sequence: u64,
        canonical: &[u8],
        chain: &ChainHash,
    ) -> Result<ChainedRecord, ChainError> {
        if sequence != self.next_sequence {
            return Err(ChainError::OutOfOrder {
                sequence,
                expected: self.next_sequence,
            });
        }
        let record: ChainedRecord =
            postcard::from_bytes(canonical).map_err(|error| ChainError::Undecodable {
                sequence,
                why: error.to_string(),
            })?;
        if record.sequence != sequence {
            return Err(ChainError::Misrendered {
                sequence,
                why: format!("the bytes are those of record {}", record.sequence),
            });
        }
        let expected = link(&self.head, canonical);
        if &expected != chain {
            return Err(ChainError::Broken { sequence });
        }
        self.head = expected;
        self.next_sequence += 1;
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mutua_engine::{CommandId, PackageId, VoucherId};

    fn record(sequence: u64, kind: CommandKind, events: Vec<Event>) -> Applied {
        Applied {
            sequence,
            timestamp: 1_700_000_000_000_000_000,
            request_id: format!("r-{sequence}"),
            command: Command {
                id: CommandId(u128::from(sequence)),
                participant: ParticipantId(7),
                kind,
            },
            outcome: Outcome::fresh(Ok(mutua_engine::Ack::Done)),
            events,
            accounts: vec![AccountAfter::Cash {
                participant: ParticipantId(9),
                balance_minor: 100,
                reserved_minor: 40,
            }],
        }
    }

    #[test]
    fn a_public_record_is_its_payload_and_an_empty_withheld_list() {
        let applied = record(3, CommandKind::Tick, Vec::new());
        let payload = postcard::to_allocvec(&applied).unwrap();
        let (_, canonical) = public_record(applied.clone(), &payload, false, &[1; 32]);
        assert_eq!(canonical[..payload.len()], payload[..]);
        assert_eq!(canonical.len(), payload.len() + 1);
        let decoded: ChainedRecord = postcard::from_bytes(&canonical).unwrap();
        assert_eq!(decoded.request_id, "r-3");
        assert!(decoded.withheld.is_empty());
        assert_eq!(
            link(&GENESIS_CHAIN, &canonical),
            link_payload(&GENESIS_CHAIN, &payload)
        );
    }

    #[test]
    fn a_voucher_split_is_withheld_and_its_digest_depends_on_the_key_and_the_amount() {
        let issue = |co_payment_minor| {
            record(
                5,
                CommandKind::IssueVoucher {
                    package: PackageId(0),
                    beneficiary: ParticipantId(9),
                    co_payment_minor,
                    expires_at: 10,
                },
                vec![Event::VoucherSplit {
                    voucher: VoucherId(0),
                    funder: ParticipantId(7),
                    beneficiary: ParticipantId(9),
                    co_payment_minor,
                    subsidy_minor: 1_000 - co_payment_minor,
                }],
            )
        };
        let applied = issue(250);
        assert!(has_private_parts(&applied));
        let form = public_form(&applied, &[1; 32]);
        let bytes = postcard::to_allocvec(&form).unwrap();
        for amount in [250u64, 1_000 - 250] {
            assert!(
                !bytes.windows(8).any(|w| w == amount.to_le_bytes()),
                "the amount does not appear"
            );
        }
        assert!(form.events.is_empty(), "the split is taken out");
        assert!(
            form.accounts.is_empty(),
            "the beneficiary's cash is withheld"
        );
        assert_eq!(form.withheld.len(), 3);
        let CommandKind::IssueVoucher {
            co_payment_minor, ..
        } = form.command.kind
        else {
            panic!("the command stays an issue")
        };
        assert_eq!(co_payment_minor, 0);
        // Another amount, or another key, gives other digests.
        let other = public_form(&issue(251), &[1; 32]);
        assert_ne!(other.withheld[0].digest, form.withheld[0].digest);
        let rekeyed = public_form(&applied, &[2; 32]);
        assert_ne!(rekeyed.withheld[1].digest, form.withheld[1].digest);
        assert_eq!(public_form(&applied, &[1; 32]), form, "deterministic");
    }

    #[test]
    fn the_verifier_names_the_first_bad_record() {
        let records: Vec<Applied> = (1..=4)
            .map(|sequence| record(sequence, CommandKind::Tick, Vec::new()))
            .collect();
        let mut head = GENESIS_CHAIN;
        let mut feed = Vec::new();
        for applied in &records {
            let payload = postcard::to_allocvec(applied).unwrap();
            let (_, canonical) = public_record(applied.clone(), &payload, false, &[0; 32]);
            head = link(&head, &canonical);
            feed.push((applied.sequence, canonical, head));
        }
        let run = |feed: &[(u64, Vec<u8>, ChainHash)]| {
            let mut verifier = ChainVerifier::after(0, GENESIS_CHAIN);
            for (sequence, canonical, chain) in feed {
                verifier.check(*sequence, canonical, chain)?;
            }
            Ok::<_, ChainError>(())
        };
        assert_eq!(run(&feed), Ok(()));
        let mut flipped = feed.clone();
        let last = flipped[2].1.len() - 2;
        flipped[2].1[last] ^= 1;
        assert!(matches!(
            run(&flipped),
            Err(ChainError::Broken { sequence: 3 } | ChainError::Undecodable { sequence: 3, .. })
        ));
        let mut removed = feed.clone();
        removed.remove(1);
        assert_eq!(
            run(&removed),
            Err(ChainError::OutOfOrder {
                sequence: 3,
                expected: 2
            })
        );
        let mut swapped = feed.clone();
        swapped.swap(1, 2);
        assert_eq!(
            run(&swapped),
            Err(ChainError::OutOfOrder {
                sequence: 3,
                expected: 2
            })
        );
    }
}
