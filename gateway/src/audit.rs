//! The audit feed as regulators see it: a journal record's public form (`chain.rs`) rendered as
//! a `mutua.v1.AuditRecord`, and that message as one JSON line (what `mutua audit follow` saves
//! and `mutua audit verify` checks). There is one rendering, used by the server and by the
//! verifier, so a verifier that decodes a record's canonical bytes and renders them again must
//! get exactly the fields it was shown.

use mutua_engine::{calendar, AccountAfter, Timestamp};
use serde::Serialize;
use serde_json::{json, Value};

use crate::chain::{ChainHash, ChainedRecord, WithheldPart};
use crate::pb;

/// Most records in one `AuditRecords` message.
pub const RECORDS_PER_MESSAGE_MAX: usize = 4_096;
/// A message is closed once its records' encoded size reaches this.
pub const MESSAGE_BYTES_TARGET: usize = 1 << 20;

/// Lower-case hex digits of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

/// The bytes of hex digits, if they are hex digits.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

/// RFC 3339 UTC text of a time in nanoseconds since the Unix epoch, to the nanosecond.
pub fn rfc3339(time: Timestamp) -> String {
    const NS_PER_SECOND: u64 = 1_000_000_000;
    let date = calendar::date_of(time);
    let of_day = time % (86_400 * NS_PER_SECOND);
    let seconds = of_day / NS_PER_SECOND;
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        date.year,
        date.month,
        date.day,
        seconds / 3_600,
        seconds / 60 % 60,
        seconds % 60,
        of_day % NS_PER_SECOND
    )
}

/// An externally tagged value's variant name and its JSON text: `"Tick"` for a variant without
/// fields, `{"PlaceOrder":{...}}` for one with (variant names are plain identifiers, so the name
/// is the text up to the next quote).
pub fn kind_and_json<T: Serialize>(value: &T) -> (String, String) {
    let json = serde_json::to_string(value).expect("engine values always serialize");
    let name = json
        .strip_prefix("{\"")
        .or_else(|| json.strip_prefix('"'))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_string();
    (name, json)
}

fn part_name(part: WithheldPart) -> String {
    match part {
        WithheldPart::Command => "command".into(),
        WithheldPart::Event(index) => format!("event {index}"),
        WithheldPart::Account(index) => format!("account {index}"),
    }
}

/// The feed message for one record.
pub fn to_pb(record: &ChainedRecord, canonical: Vec<u8>, chain: &ChainHash) -> pb::AuditRecord {
    let (command_kind, command_json) = kind_and_json(&record.command.kind);
    let (accepted, reason_code, reason, ack_json) = match &record.outcome.result {
        Ok(ack) => (
            true,
            0,
            String::new(),
            serde_json::to_string(ack).expect("serializes"),
        ),
        Err(reason) => (
            false,
            u32::from(reason.code()),
            reason.message().to_string(),
            String::new(),
        ),
    };
    pb::AuditRecord {
        sequence: record.sequence,
        time_unix_nanos: record.timestamp,
        time: rfc3339(record.timestamp),
        participant_id: record.command.participant.0,
        request_id: record.request_id.clone(),
        command_id: format!("{:032x}", record.command.id.0),
        command_kind,
        command_json,
        accepted,
        reason_code,
        reason,
        ack_json,
        retry_of_sequence: record.outcome.replayed,
        events: record
            .events
            .iter()
            .map(|event| {
                let (kind, json) = kind_and_json(event);
                pb::AuditEvent { kind, json }
            })
            .collect(),
        accounts: record
            .accounts
            .iter()
            .map(|account| match *account {
                AccountAfter::Cash {
                    participant,
                    balance_minor,
                    reserved_minor,
                } => pb::AuditAccount {
                    participant_id: participant.0,
                    instrument_id: None,
                    balance: balance_minor,
                    reserved: reserved_minor,
                },
                AccountAfter::Units {
                    participant,
                    instrument,
                    lots,
                    reserved_lots,
                } => pb::AuditAccount {
                    participant_id: participant.0,
                    instrument_id: Some(instrument.0),
                    balance: lots,
                    reserved: reserved_lots,
                },
            })
            .collect(),
        withheld: record
            .withheld
            .iter()
            .map(|withheld| pb::WithheldPart {
                part: part_name(withheld.part),
                party_id: withheld.party.0,
                digest: withheld.digest.to_vec(),
            })
            .collect(),
        canonical,
        chain_hash: chain.to_vec(),
    }
}

fn parse(text: &str) -> Value {
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(text).unwrap_or(Value::String(text.to_string()))
    }
}

/// One feed record as a JSON object (one line of a saved feed): the message's fields, with the
/// command, answer and events as JSON rather than text, and bytes in hex.
pub fn to_json(record: &pb::AuditRecord) -> Value {
    json!({
        "sequence": record.sequence,
        "time_unix_nanos": record.time_unix_nanos,
        "time": record.time,
        "participant_id": record.participant_id,
        "request_id": record.request_id,
        "command_id": record.command_id,
        "command_kind": record.command_kind,
        "command": parse(&record.command_json),
        "accepted": record.accepted,
        "reason_code": record.reason_code,
        "reason": record.reason,
        "ack": parse(&record.ack_json),
        "retry_of_sequence": record.retry_of_sequence,
        "events": record.events.iter().map(|event| json!({
            "kind": event.kind,
            "event": parse(&event.json),
        })).collect::<Vec<_>>(),
        "accounts": record.accounts.iter().map(|account| json!({
            "participant_id": account.participant_id,
            "instrument_id": account.instrument_id,
            "balance": account.balance,
            "reserved": account.reserved,
        })).collect::<Vec<_>>(),
        "withheld": record.withheld.iter().map(|withheld| json!({
            "part": withheld.part,
            "party_id": withheld.party_id,
            "digest": hex(&withheld.digest),
        })).collect::<Vec<_>>(),
        "canonical": hex(&record.canonical),
        "chain_hash": hex(&record.chain_hash),
    })
}

/// Splits records into feed messages of at most `RECORDS_PER_MESSAGE_MAX` records and about
/// `MESSAGE_BYTES_TARGET` bytes.
pub fn into_messages(records: Vec<pb::AuditRecord>) -> Vec<pb::AuditRecords> {
    use prost::Message;
    let mut messages = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for record in records {
        bytes += record.encoded_len() + 4;
        current.push(record);
        if current.len() == RECORDS_PER_MESSAGE_MAX || bytes >= MESSAGE_BYTES_TARGET {
            messages.push(pb::AuditRecords {
                records: std::mem::take(&mut current),
            });
            bytes = 0;
        }
    }
    if !current.is_empty() {
        messages.push(pb::AuditRecords { records: current });
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc_to_the_nanosecond() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        // 2024-02-29T23:59:59.000000001Z
        assert_eq!(
            rfc3339(1_709_251_199_000_000_001),
            "2024-02-29T23:59:59.000000001Z"
        );
    }

    #[test]
    fn kinds_are_variant_names() {
        use mutua_engine::{CommandKind, ParticipantId};
        assert_eq!(kind_and_json(&CommandKind::Tick).0, "Tick");
        let (kind, json) = kind_and_json(&CommandKind::Deposit {
            account: ParticipantId(3),
            amount_minor: 10,
        });
        assert_eq!(kind, "Deposit");
        assert_eq!(json, r#"{"Deposit":{"account":3,"amount_minor":10}}"#);
    }

    #[test]
    fn hex_round_trips_and_refuses_what_is_not_hex() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(hex(&bytes), "0001abff");
        assert_eq!(unhex("0001abff").unwrap(), bytes);
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
    }
}
