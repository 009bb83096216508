//! Fuzz-style property tests of the gateway's edge: arbitrary bytes and arbitrary field values
//! decoded as every request message of the gRPC API (`mutua_gateway::pb`) and pushed through the
//! public conversions of `mutua_gateway::convert` that turn requests into engine `CommandKind`s.
//!
//! What must hold for any input whatever:
//!
//! - nothing panics, neither `prost::Message::decode` nor any conversion;
//! - a decoded message re-encodes to bytes that decode to the same message;
//! - a conversion returns a command whose fields are exactly the request's (ids passed through,
//!   enums mapped as the protos document), or a `Status` that is INVALID_ARGUMENT, OUT_OF_RANGE or
//!   NOT_FOUND, carries a reason code, and has a short non-empty message naming the field;
//! - a decimal is converted exactly or refused, never rounded: each accepted price, quantity,
//!   amount or rate is checked against an exact integer computation in this file, and prints
//!   back (`price_text`, `quantity_text`, `cash_text`, `rate_text`) to text that converts to the
//!   same integer.
//!
//! The cases per property come from `MUTUA_FUZZ_CASES` (default 2 000, so that
//! `cargo test --release --workspace` stays quick). There are 14 properties, so the long run below
//! runs 14 × 100 000 = 1 400 000 cases:
//!
//! ```text
//! MUTUA_FUZZ_CASES=100000 CARGO_TARGET_DIR=/var/tmp/mutua-target cargo test --release --test fuzz_decode
//! ```

use std::collections::BTreeSet;
use std::fmt::Debug;

use mutua_engine::{
    CommandKind, InstrumentId, InstrumentKind, OfferingId, OrderId, ParticipantId, Role,
    SelfTradePrevention, Side, TimeInForce,
};
use mutua_gateway::convert::{self, InstrumentUnits, DECIMAL_TEXT_BYTES_MAX, REQUEST_ID_BYTES_MAX};
use mutua_gateway::pb;
use proptest::prelude::*;
use prost::Message;
use rust_decimal::Decimal;
use tonic::{Code, Status};

// ---- How many cases ----

/// Cases per property when `MUTUA_FUZZ_CASES` is not set.
const CASES_DEFAULT: u32 = 2_000;

fn cases() -> u32 {
    match std::env::var("MUTUA_FUZZ_CASES") {
        Ok(text) => text
            .trim()
            .parse()
            .expect("MUTUA_FUZZ_CASES must be a whole number of cases per property"),
        Err(_) => CASES_DEFAULT,
    }
}

/// No regression files are written: a failure is reported with its shrunk input instead.
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases())
    }
}

// ---- The fixed units conversions are tried with ----

/// Decimal places of the currencies tried: whole units, cents, mills, and a fine 8.
const CURRENCY_SCALES: [u32; 4] = [0, 2, 3, 8];

/// Largest mantissa a `Decimal` holds (2^96 − 1).
const DECIMAL_MANTISSA_MAX: u128 = (1 << 96) - 1;

fn units(
    id: u32,
    symbol: &str,
    tick_size_minor: u64,
    lot_size_units: u64,
    currency_scale: u32,
) -> InstrumentUnits {
    InstrumentUnits {
        id: InstrumentId(id),
        symbol: symbol.to_string(),
        tick_size_minor,
        lot_size_units,
        currency_scale,
    }
}

/// Instruments as the catalog would cache them. All but the last are listable with the default
/// market config (tick × lot × price levels fits a u64); the last is what `list_instrument`
/// itself builds to convert `par` and `price_floor` when a request names the largest tick and lot
/// it can.
fn units_under_test() -> Vec<InstrumentUnits> {
    vec![
        // Tick 0.05, lot 10: the gateway's own unit-test instrument.
        units(0, "COOP-A", 5, 10, 2),
        units(1, "BOND-1", 1, 1, 2),
        units(2, "WHOLE", 1, 1, 0),
        units(3, "ODD", 7, 12, 3),
        units(4, "COARSE", 2_500, 1_000, 2),
        units(5, "FINE", 3, 1, 8),
        // A lot of four billion units: listable (tick 1 × lot × 2^22 levels fits a u64).
        units(6, "BIGLOT", 1, 4_000_000_007, 2),
        units(7, "EXTREME", u64::MAX, u64::MAX, 2),
    ]
}

// ---- Exact integer oracles ----

fn pow10(exponent: u32) -> u128 {
    10u128.pow(exponent)
}

/// The value of a decimal text as the gateway reads it (trimmed, at most 64 bytes, exact), or
/// `None` if it cannot be a number at all.
fn decimal_of(text: &str) -> Option<Decimal> {
    let text = text.trim();
    if text.is_empty() || text.len() > DECIMAL_TEXT_BYTES_MAX {
        return None;
    }
    Decimal::from_str_exact(text).ok()
}

/// `value × 10^shift` if that is a whole number ≥ 0, computed exactly in integers.
fn scaled_whole(value: Decimal, shift: u32) -> Option<u128> {
    if value.is_sign_negative() && !value.is_zero() {
        return None;
    }
    let mantissa = value.mantissa().unsigned_abs();
    let scale = value.scale();
    if shift >= scale {
        mantissa.checked_mul(pow10(shift - scale))
    } else {
        let divisor = pow10(scale - shift);
        (mantissa % divisor == 0).then(|| mantissa / divisor)
    }
}

/// What a positive whole count should come out as: `None` if zero, fractional or past a u64.
fn positive_u64(count: u128) -> Option<u64> {
    (count > 0)
        .then_some(count)
        .and_then(|count| u64::try_from(count).ok())
}

fn oracle_minor(text: &str, currency_scale: u32) -> Option<u64> {
    positive_u64(scaled_whole(decimal_of(text)?, currency_scale)?)
}

fn oracle_ticks(text: &str, units: &InstrumentUnits) -> Option<u64> {
    let minor = scaled_whole(decimal_of(text)?, units.currency_scale)?;
    let tick = u128::from(units.tick_size_minor);
    (minor % tick == 0)
        .then(|| minor / tick)
        .and_then(positive_u64)
}

fn oracle_lots(text: &str, lot_size_units: u64) -> Option<u64> {
    let whole_units = scaled_whole(decimal_of(text)?, 0)?;
    let lot = u128::from(lot_size_units);
    (whole_units % lot == 0)
        .then(|| whole_units / lot)
        .and_then(positive_u64)
}

fn oracle_bp(text: &str) -> Option<u32> {
    let bp = scaled_whole(decimal_of(text)?, 4)?;
    (bp <= u128::from(mutua_engine::config::BP_ONE)).then_some(bp as u32)
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A distribution per unit times the lot, in minor units, computed exactly:
/// `Ok(Some(minor))` if it is a positive whole number of minor units that fits a u64,
/// `Ok(None)` if it is zero, negative or finer than a minor unit, `Err(())` if it is too large.
fn oracle_per_lot_minor(
    text: &str,
    lot_size_units: u64,
    currency_scale: u32,
) -> Result<Option<u64>, ()> {
    let Some(value) = decimal_of(text) else {
        return Ok(None);
    };
    if value.is_sign_negative() || value.is_zero() {
        return Ok(None);
    }
    // value × lot × 10^scale = mantissa × lot × 10^scale / 10^value.scale, in lowest terms.
    let (mut numerator, mut denominator) = (value.mantissa().unsigned_abs(), pow10(value.scale()));
    let common = gcd(numerator, denominator);
    (numerator, denominator) = (numerator / common, denominator / common);
    let lot = u128::from(lot_size_units);
    let common = gcd(lot, denominator);
    let (lot, denominator) = (lot / common, denominator / common);
    if pow10(currency_scale) % denominator != 0 {
        return Ok(None);
    }
    let minor = numerator
        .checked_mul(lot)
        .and_then(|product| product.checked_mul(pow10(currency_scale) / denominator))
        .ok_or(())?;
    u64::try_from(minor).map(Some).map_err(|_| ())
}

// ---- What a refusal must look like ----

/// A refusal of a request field: a client error, a reason code, a short message naming a field.
fn assert_refusal(status: &Status, fields: &[&str], input: &dyn Debug) {
    assert!(
        matches!(
            status.code(),
            Code::InvalidArgument | Code::OutOfRange | Code::NotFound
        ),
        "refused with {:?} ({:?}) for {input:?}",
        status.code(),
        status.message()
    );
    let message = status.message();
    assert!(
        !message.is_empty(),
        "refused with an empty message for {input:?}"
    );
    assert!(
        message.len() <= 1_024,
        "a refusal echoes {} bytes for {input:?}",
        message.len()
    );
    assert!(
        fields
            .iter()
            .any(|field| message.starts_with(&format!("{field}: "))),
        "the refusal {message:?} names none of {fields:?} for {input:?}"
    );
    assert!(
        convert::reason_code_of(status).is_some(),
        "the refusal {message:?} carries no reason code"
    );
    assert!(
        !status.details().is_empty(),
        "the refusal {message:?} carries no ErrorInfo"
    );
}

// ---- Conversions checked against the oracles ----

/// `InstrumentUnits::price_ticks`, checked: exact, printed back, or refused.
fn checked_price(units: &InstrumentUnits, field: &str, text: &str) -> Option<u64> {
    let converted = units.price_ticks(field, text);
    let expected = oracle_ticks(text, units);
    match &converted {
        Ok(ticks) => {
            assert_eq!(
                Some(*ticks),
                expected,
                "{field} {text:?} was accepted as {ticks} ticks ({}) of {units:?}, which is not its exact value",
                units.price_text(*ticks)
            );
            let printed = units.price_text(*ticks);
            assert_eq!(
                units.price_ticks(field, &printed).ok(),
                Some(*ticks),
                "{printed:?} does not parse back to {ticks} ticks of {units:?}"
            );
        }
        Err(status) => {
            assert_refusal(status, &[field], &(text, units));
            if let Some(ticks) = expected {
                // Refusing an exact price is allowed only where ticks × tick is past what a
                // Decimal holds, so that the price could not even be computed in minor units.
                let minor = u128::from(ticks).checked_mul(u128::from(units.tick_size_minor));
                assert!(
                    minor.is_none_or(|minor| minor > DECIMAL_MANTISSA_MAX),
                    "{field} {text:?} is exactly {ticks} ticks of {units:?} but was refused: {:?}",
                    status.message()
                );
            }
        }
    }
    converted.ok()
}

/// `InstrumentUnits::lots`, checked.
fn checked_lots(units: &InstrumentUnits, field: &str, text: &str) -> Option<u64> {
    let converted = units.lots(field, text);
    let expected = oracle_lots(text, units.lot_size_units);
    match &converted {
        Ok(lots) => {
            assert_eq!(
                Some(*lots),
                expected,
                "{field} {text:?} was accepted as {lots} lots ({} units) of {units:?}, which is not its exact value",
                units.quantity_text(*lots)
            );
            let printed = units.quantity_text(*lots);
            assert_eq!(
                units.lots(field, &printed).ok(),
                Some(*lots),
                "{printed:?} does not parse back to {lots} lots of {units:?}"
            );
        }
        Err(status) => {
            assert_refusal(status, &[field], &(text, units));
            assert_eq!(
                expected,
                None,
                "{field} {text:?} is exactly {expected:?} lots of {units:?} but was refused: {:?}",
                status.message()
            );
        }
    }
    converted.ok()
}

/// `convert::cash_minor`, checked.
fn checked_cash(field: &str, text: &str, currency_scale: u32) -> Option<u64> {
    let converted = convert::cash_minor(field, text, currency_scale);
    let expected = oracle_minor(text, currency_scale);
    match &converted {
        Ok(minor) => {
            assert_eq!(
                Some(*minor),
                expected,
                "{field} {text:?} was accepted as {minor} minor units at scale {currency_scale}, which is not its exact value"
            );
            let printed = convert::cash_text(*minor, currency_scale);
            assert_eq!(
                convert::cash_minor(field, &printed, currency_scale).ok(),
                Some(*minor),
                "{printed:?} does not parse back to {minor}"
            );
        }
        Err(status) => {
            assert_refusal(status, &[field], &(text, currency_scale));
            assert_eq!(expected, None, "{field} {text:?} is exactly {expected:?} minor units at scale {currency_scale} but was refused");
        }
    }
    converted.ok()
}

/// `convert::rate_bp`, checked.
fn checked_rate(field: &str, text: &str) -> Option<u32> {
    let converted = convert::rate_bp(field, text);
    let expected = oracle_bp(text);
    // "-0" is zero: accepting it as 0 bp or refusing it as negative are both fine.
    let negative_zero =
        decimal_of(text).is_some_and(|value| value.is_zero() && value.is_sign_negative());
    match &converted {
        Ok(bp) => {
            assert_eq!(
                Some(*bp),
                expected,
                "{field} {text:?} was accepted as {bp} bp, which is not its exact value"
            );
            let printed = convert::rate_text(*bp);
            assert_eq!(
                convert::rate_bp(field, &printed).ok(),
                Some(*bp),
                "{printed:?} does not parse back to {bp} bp"
            );
        }
        Err(status) => {
            assert_refusal(status, &[field], &text);
            assert!(
                expected.is_none() || negative_zero,
                "{field} {text:?} is exactly {expected:?} bp but was refused"
            );
        }
    }
    converted.ok()
}

fn checked_side(value: i32) -> Option<Side> {
    let converted = convert::side("side", value);
    let expected = match value {
        1 => Some(Side::Buy),
        2 => Some(Side::Sell),
        _ => None,
    };
    check_enum("side", value, converted, expected)
}

fn checked_time_in_force(value: i32) -> Option<TimeInForce> {
    let converted = convert::time_in_force("time_in_force", value);
    let expected = match value {
        0 | 1 => Some(TimeInForce::GoodTillCancelled),
        2 => Some(TimeInForce::ImmediateOrCancel),
        3 => Some(TimeInForce::FillOrKill),
        _ => None,
    };
    check_enum("time_in_force", value, converted, expected)
}

fn checked_self_trade(value: i32) -> Option<SelfTradePrevention> {
    let converted = convert::self_trade("self_trade_prevention", value);
    let expected = match value {
        0 | 1 => Some(SelfTradePrevention::CancelIncoming),
        2 => Some(SelfTradePrevention::CancelResting),
        3 => Some(SelfTradePrevention::CancelBoth),
        _ => None,
    };
    check_enum("self_trade_prevention", value, converted, expected)
}

fn checked_role(value: i32) -> Option<Role> {
    let converted = convert::role("role", value);
    let expected = match value {
        1 => Some(Role::Contributor),
        2 => Some(Role::Organization),
        3 => Some(Role::Funder),
        4 => Some(Role::Regulator),
        5 => Some(Role::Operator),
        _ => None,
    };
    check_enum("role", value, converted, expected)
}

fn checked_kind(value: i32) -> Option<InstrumentKind> {
    let converted = convert::kind("kind", value);
    let expected = match value {
        1 => Some(InstrumentKind::CommunityShare),
        2 => Some(InstrumentKind::CommunityBond),
        3 => Some(InstrumentKind::CommunityInvestmentNote),
        _ => None,
    };
    check_enum("kind", value, converted, expected)
}

fn check_enum<E: PartialEq + Debug>(
    field: &str,
    value: i32,
    converted: Result<E, Status>,
    expected: Option<E>,
) -> Option<E> {
    match converted {
        Ok(converted) => {
            assert_eq!(
                Some(&converted),
                expected.as_ref(),
                "{field} {value} converted to {converted:?}"
            );
            Some(converted)
        }
        Err(status) => {
            assert_refusal(&status, &[field], &value);
            assert_eq!(expected, None, "{field} {value} was refused");
            None
        }
    }
}

/// Participants a request id is tried for: the genesis operator, an ordinary one, the last.
const PARTICIPANTS: [u32; 3] = [0, 7, u32::MAX];

/// `convert::checked_command_id`: a command id for 1 to 128 bytes, the same as `command_id`,
/// and different for different participants; otherwise refused naming `request_id`.
fn check_request_id(request_id: &str) {
    let valid = !request_id.is_empty() && request_id.len() <= REQUEST_ID_BYTES_MAX;
    let mut ids = BTreeSet::new();
    for participant in PARTICIPANTS.map(ParticipantId) {
        match convert::checked_command_id(participant, request_id) {
            Ok(id) => {
                assert!(valid, "request id of {} bytes accepted", request_id.len());
                assert_eq!(id, convert::command_id(participant, request_id));
                ids.insert(id);
            }
            Err(status) => {
                assert_refusal(&status, &["request_id"], &request_id);
                assert!(!valid, "request id {request_id:?} refused");
            }
        }
    }
    if valid {
        assert_eq!(
            ids.len(),
            PARTICIPANTS.len(),
            "two participants' request {request_id:?} share a command id"
        );
    }
}

// ---- Each request type, as its handler converts it ----

fn exercise_place_order(request: &pb::PlaceOrderRequest) {
    check_request_id(&request.request_id);
    for units in units_under_test() {
        let side = checked_side(request.side);
        let price_ticks = checked_price(&units, "price", &request.price);
        let lots = checked_lots(&units, "quantity", &request.quantity);
        let time_in_force = checked_time_in_force(request.time_in_force);
        let self_trade = checked_self_trade(request.self_trade_prevention);
        match convert::place_order(request, &units) {
            Ok(kind) => {
                let expected = CommandKind::PlaceOrder {
                    instrument: units.id,
                    side: side.expect("accepted with a bad side"),
                    price_ticks: price_ticks.expect("accepted with a bad price"),
                    lots: lots.expect("accepted with a bad quantity"),
                    time_in_force: time_in_force.expect("accepted with a bad time in force"),
                    self_trade: self_trade.expect("accepted with a bad self-trade prevention"),
                };
                assert_eq!(kind, expected, "{request:?} in {units:?}");
            }
            Err(status) => {
                assert_refusal(
                    &status,
                    &[
                        "side",
                        "price",
                        "quantity",
                        "time_in_force",
                        "self_trade_prevention",
                    ],
                    request,
                );
                let every_field_valid = side.is_some()
                    && price_ticks.is_some()
                    && lots.is_some()
                    && time_in_force.is_some()
                    && self_trade.is_some();
                assert!(
                    !every_field_valid,
                    "{request:?} refused in {units:?} though every field converts: {:?}",
                    status.message()
                );
            }
        }
    }
}

fn exercise_cancel_order(request: &pb::CancelOrderRequest) {
    check_request_id(&request.request_id);
    let kind =
        CommandKind::try_from(request).expect("a cancel has nothing to refuse but its request id");
    assert_eq!(
        kind,
        CommandKind::CancelOrder {
            order: OrderId(request.order_id)
        }
    );
}

fn exercise_reduce_order(request: &pb::ReduceOrderRequest) {
    check_request_id(&request.request_id);
    for units in units_under_test() {
        let lots = checked_lots(&units, "reduce_by", &request.reduce_by);
        match convert::reduce_order(request, &units) {
            Ok(kind) => assert_eq!(
                kind,
                CommandKind::ReduceOrder {
                    order: OrderId(request.order_id),
                    reduce_by_lots: lots.expect("accepted with a bad reduce_by")
                }
            ),
            Err(status) => {
                assert_refusal(&status, &["reduce_by"], request);
                assert_eq!(lots, None);
            }
        }
    }
}

fn exercise_order_entry(request: &pb::OrderEntryRequest) {
    use pb::order_entry_request::Command;
    match &request.command {
        Some(Command::Place(place)) => exercise_place_order(place),
        Some(Command::Cancel(cancel)) => exercise_cancel_order(cancel),
        Some(Command::Reduce(reduce)) => exercise_reduce_order(reduce),
        None => {}
    }
}

fn exercise_cash_movement(
    request_id: &str,
    participant_id: u32,
    amount: &str,
    convert_one: impl Fn(u32) -> Result<CommandKind, Status>,
    deposit: bool,
) {
    check_request_id(request_id);
    for scale in CURRENCY_SCALES {
        let minor = checked_cash("amount", amount, scale);
        match convert_one(scale) {
            Ok(kind) => {
                let (account, amount_minor) = (
                    ParticipantId(participant_id),
                    minor.expect("accepted with a bad amount"),
                );
                let expected = if deposit {
                    CommandKind::Deposit {
                        account,
                        amount_minor,
                    }
                } else {
                    CommandKind::Withdraw {
                        account,
                        amount_minor,
                    }
                };
                assert_eq!(kind, expected);
            }
            Err(status) => {
                assert_refusal(&status, &["amount"], &(amount, scale));
                assert_eq!(minor, None);
            }
        }
    }
}

fn exercise_deposit(request: &pb::DepositRequest) {
    exercise_cash_movement(
        &request.request_id,
        request.participant_id,
        &request.amount,
        |scale| convert::deposit(request, scale),
        true,
    );
}

fn exercise_withdraw(request: &pb::WithdrawRequest) {
    exercise_cash_movement(
        &request.request_id,
        request.participant_id,
        &request.amount,
        |scale| convert::withdraw(request, scale),
        false,
    );
}

fn exercise_register_participant(request: &pb::RegisterParticipantRequest) {
    check_request_id(&request.request_id);
    let role = checked_role(request.role);
    match CommandKind::try_from(request) {
        Ok(kind) => assert_eq!(
            kind,
            CommandKind::RegisterParticipant {
                role: role.expect("accepted with a bad role"),
                name: request.name.clone()
            }
        ),
        Err(status) => {
            // The name is checked at the edge only for length (the engine checks the rest).
            assert_refusal(&status, &["role", "name"], request);
            assert!(
                role.is_none() || status.message().starts_with("name: "),
                "{request:?} refused: {:?}",
                status.message()
            );
        }
    }
}

fn exercise_set_accreditation(request: &pb::SetAccreditationRequest) {
    check_request_id(&request.request_id);
    let kind = CommandKind::try_from(request)
        .expect("an accreditation has nothing to refuse but its request id");
    assert_eq!(
        kind,
        CommandKind::SetAccreditation {
            organization: ParticipantId(request.organization_id),
            accredited: request.accredited
        }
    );
}

/// Fields a listing may be refused for. `symbol` is checked only for length at the edge (the
/// engine checks the rest), so it is the one field this file has no oracle for.
const LISTING_FIELDS: [&str; 12] = [
    "service_value",
    "issue_time_ns",
    "lock_in_ns",
    "symbol",
    "tick_size",
    "lot_size",
    "par",
    "price_floor",
    "kind",
    "return_cap",
    "holding_cap",
    "tax_credit_rate",
];

fn exercise_list_instrument(request: &pb::ListInstrumentRequest) {
    check_request_id(&request.request_id);
    for scale in CURRENCY_SCALES {
        // Each field on its own, as the listing converts it.
        let tick_size_minor = checked_cash("tick_size", &request.tick_size, scale);
        let lot_size_units = oracle_lots(&request.lot_size, 1);
        let listed = tick_size_minor
            .zip(lot_size_units)
            .map(|(tick, lot)| InstrumentUnits {
                id: InstrumentId(0),
                symbol: request.symbol.clone(),
                tick_size_minor: tick,
                lot_size_units: lot,
                currency_scale: scale,
            });
        let par_ticks = listed
            .as_ref()
            .and_then(|listed| checked_price(listed, "par", &request.par));
        let floor_is_zero = request.price_floor.trim().is_empty()
            || decimal_of(&request.price_floor).is_some_and(|floor| floor.is_zero());
        let price_floor_ticks = if floor_is_zero {
            Some(0)
        } else {
            listed
                .as_ref()
                .and_then(|listed| checked_price(listed, "price_floor", &request.price_floor))
        };
        // Service value per unit, exactly a whole number of minor units per lot, or none.
        let service_value = if convert::is_none_amount(&request.service_value) {
            Some(0)
        } else {
            listed.as_ref().and_then(|listed| {
                oracle_per_lot_minor(&request.service_value, listed.lot_size_units, scale)
                    .ok()
                    .flatten()
            })
        };
        let kind = checked_kind(request.kind);
        let return_cap_bp = checked_rate("return_cap", &request.return_cap);
        let holding_cap_bp = request
            .holding_cap
            .as_deref()
            .map(|text| checked_rate("holding_cap", text));
        let tax_credit_bp = request
            .tax_credit_rate
            .as_deref()
            .map(|text| checked_rate("tax_credit_rate", text));
        match convert::list_instrument(request, scale) {
            Ok(CommandKind::ListInstrument { spec }) => {
                assert_eq!(spec.symbol, request.symbol);
                assert_eq!(Some(spec.kind), kind);
                assert_eq!(spec.issuer, ParticipantId(request.issuer_id));
                assert_eq!(
                    Some(spec.tick_size_minor),
                    tick_size_minor,
                    "tick_size {:?} at scale {scale}",
                    request.tick_size
                );
                assert_eq!(
                    Some(spec.lot_size_units),
                    lot_size_units,
                    "lot_size {:?}",
                    request.lot_size
                );
                assert_eq!(
                    Some(spec.par_ticks),
                    par_ticks,
                    "par {:?} of {listed:?}",
                    request.par
                );
                assert_eq!(
                    Some(spec.price_floor_ticks),
                    price_floor_ticks,
                    "price_floor {:?} of {listed:?}",
                    request.price_floor
                );
                assert_eq!(Some(spec.return_cap_bp), return_cap_bp);
                assert!(
                    request.issue_time_ns.is_none() && request.lock_in_ns.is_none(),
                    "a listing naming an issue time or a lock-in in nanoseconds was accepted"
                );
                assert_eq!(spec.maturity_time, request.maturity_time_ns);
                assert_eq!(
                    spec.holding_cap_bp.map(Some),
                    holding_cap_bp,
                    "holding_cap {:?}",
                    request.holding_cap
                );
                assert_eq!(
                    spec.cooperative_investment_plan,
                    request.cooperative_investment_plan
                );
                assert_eq!(spec.lock_in_years, request.lock_in_years);
                assert_eq!(
                    (spec.withdrawable, spec.withdrawal_notice_days),
                    (request.withdrawable, request.withdrawal_notice_days)
                );
                assert_eq!(
                    Some(spec.service_value_per_lot_minor),
                    service_value,
                    "service_value {:?} of {listed:?}",
                    request.service_value
                );
                assert_eq!(
                    spec.tax_credit_bp.map(Some),
                    tax_credit_bp,
                    "tax_credit_rate {:?}",
                    request.tax_credit_rate
                );
            }
            Ok(other) => panic!("a listing converted to {other:?}"),
            Err(status) => {
                assert_refusal(&status, &LISTING_FIELDS, request);
                let every_field_valid = request.issue_time_ns.is_none()
                    && request.lock_in_ns.is_none()
                    && par_ticks.is_some()
                    && price_floor_ticks.is_some()
                    && kind.is_some()
                    && return_cap_bp.is_some()
                    && holding_cap_bp.is_none_or(|bp| bp.is_some())
                    && tax_credit_bp.is_none_or(|bp| bp.is_some())
                    && service_value.is_some();
                assert!(
                    !every_field_valid || status.message().starts_with("symbol: "),
                    "{request:?} refused at scale {scale} though every field converts: {:?}",
                    status.message()
                );
            }
        }
    }
}

fn exercise_open_offering(request: &pb::OpenOfferingRequest) {
    check_request_id(&request.request_id);
    for units in units_under_test() {
        let lots = checked_lots(&units, "quantity", &request.quantity);
        let minimum_lots = checked_lots(&units, "minimum_quantity", &request.minimum_quantity);
        match convert::open_offering(request, &units) {
            Ok(kind) => assert_eq!(
                kind,
                CommandKind::OpenOffering {
                    instrument: units.id,
                    lots: lots.expect("accepted with a bad quantity"),
                    minimum_lots: minimum_lots.expect("accepted with a bad minimum_quantity"),
                }
            ),
            Err(status) => {
                assert_refusal(&status, &["quantity", "minimum_quantity"], request);
                assert!(
                    lots.is_none() || minimum_lots.is_none(),
                    "{request:?} refused in {units:?}: {:?}",
                    status.message()
                );
            }
        }
    }
}

fn exercise_subscribe(request: &pb::SubscribeRequest) {
    check_request_id(&request.request_id);
    for units in units_under_test() {
        let lots = checked_lots(&units, "quantity", &request.quantity);
        match convert::subscribe(request, &units) {
            Ok(kind) => assert_eq!(
                kind,
                CommandKind::Subscribe {
                    offering: OfferingId(request.offering_id),
                    lots: lots.expect("accepted with a bad quantity")
                }
            ),
            Err(status) => {
                assert_refusal(&status, &["quantity"], request);
                assert_eq!(lots, None);
            }
        }
    }
}

fn exercise_close_offering(request: &pb::CloseOfferingRequest) {
    check_request_id(&request.request_id);
    let kind =
        CommandKind::try_from(request).expect("a close has nothing to refuse but its request id");
    assert_eq!(
        kind,
        CommandKind::CloseOffering {
            offering: OfferingId(request.offering_id)
        }
    );
}

fn exercise_pay_distribution(request: &pb::PayDistributionRequest) {
    check_request_id(&request.request_id);
    for units in units_under_test() {
        let expected = oracle_per_lot_minor(
            &request.amount_per_unit,
            units.lot_size_units,
            units.currency_scale,
        );
        match convert::pay_distribution(request, &units) {
            Ok(CommandKind::PayDistribution {
                instrument,
                per_lot_minor,
            }) => {
                assert_eq!(instrument, units.id);
                assert_eq!(
                    expected,
                    Ok(Some(per_lot_minor)),
                    "amount_per_unit {:?} × lot {} was accepted as {} per lot, which is not its exact value",
                    request.amount_per_unit,
                    units.lot_size_units,
                    convert::cash_text(per_lot_minor, units.currency_scale)
                );
            }
            Ok(other) => panic!("a distribution converted to {other:?}"),
            Err(status) => {
                assert_refusal(&status, &["amount_per_unit"], &(request, &units));
                assert!(
                    !matches!(expected, Ok(Some(_))),
                    "amount_per_unit {:?} × lot {} is exactly {expected:?} minor units but was refused: {:?}",
                    request.amount_per_unit,
                    units.lot_size_units,
                    status.message()
                );
            }
        }
    }
}

/// Requests whose handlers convert nothing but the request id (the instrument reference, token
/// and participant ids go to the catalog or the engine as they are).
fn exercise_request_id_only(request_id: &str) {
    check_request_id(request_id);
}

/// Requests that only read: nothing is converted into a command.
fn exercise_nothing<M>(_: &M) {}

/// A command carrying one cash amount: its request id and the amount, at every currency scale,
/// through the conversion its handler uses.
fn exercise_cash_field(request_id: &str, field: &str, amount: &str) {
    check_request_id(request_id);
    for scale in CURRENCY_SCALES {
        checked_cash(field, amount, scale);
    }
}

// ---- The table of every request message ----

/// Decodes `bytes` as `M`; if that succeeds, checks that it re-encodes faithfully and runs the
/// handler's conversions on it. Returns whether it decoded.
fn decoded<M: Message + Default + PartialEq + Debug>(bytes: &[u8], exercise: impl Fn(&M)) -> bool {
    let Ok(message) = M::decode(bytes) else {
        return false;
    };
    let encoded = message.encode_to_vec();
    assert_eq!(encoded.len(), message.encoded_len());
    let again = M::decode(encoded.as_slice()).expect("a re-encoded message decodes");
    assert_eq!(again, message, "re-encoding changed the message");
    exercise(&message);
    true
}

type Exercise = fn(&[u8]) -> bool;

/// Every request message of `proto/mutua/v1`, by service, with what its handler converts.
/// `every_request_message_of_the_api_is_fuzzed` keeps it complete.
fn requests() -> Vec<(&'static str, &'static str, Exercise)> {
    vec![
        ("Exchange", "PlaceOrderRequest", |b| {
            decoded(b, exercise_place_order)
        }),
        ("Exchange", "CancelOrderRequest", |b| {
            decoded(b, exercise_cancel_order)
        }),
        ("Exchange", "ReduceOrderRequest", |b| {
            decoded(b, exercise_reduce_order)
        }),
        ("Exchange", "GetOrderRequest", |b| {
            decoded(b, exercise_nothing::<pb::GetOrderRequest>)
        }),
        ("Exchange", "ListOrdersRequest", |b| {
            decoded(b, exercise_nothing::<pb::ListOrdersRequest>)
        }),
        ("Exchange", "OrderEntryRequest", |b| {
            decoded(b, exercise_order_entry)
        }),
        ("Accounts", "DepositRequest", |b| {
            decoded(b, exercise_deposit)
        }),
        ("Accounts", "WithdrawRequest", |b| {
            decoded(b, exercise_withdraw)
        }),
        ("Accounts", "GetBalancesRequest", |b| {
            decoded(b, exercise_nothing::<pb::GetBalancesRequest>)
        }),
        ("Accounts", "GetHoldingsRequest", |b| {
            decoded(b, exercise_nothing::<pb::GetHoldingsRequest>)
        }),
        ("Accounts", "GetTaxCreditsRequest", |b| {
            decoded(b, exercise_nothing::<pb::GetTaxCreditsRequest>)
        }),
        ("Registry", "RegisterParticipantRequest", |b| {
            decoded(b, exercise_register_participant)
        }),
        ("Registry", "SetAccreditationRequest", |b| {
            decoded(b, exercise_set_accreditation)
        }),
        ("Registry", "ListInstrumentRequest", |b| {
            decoded(b, exercise_list_instrument)
        }),
        ("Registry", "SetTradingStatusRequest", |b| {
            decoded(b, |r: &pb::SetTradingStatusRequest| {
                exercise_request_id_only(&r.request_id)
            })
        }),
        ("Registry", "GetInstrumentRequest", |b| {
            decoded(b, exercise_nothing::<pb::GetInstrumentRequest>)
        }),
        ("Registry", "ListInstrumentsRequest", |b| {
            decoded(b, exercise_nothing::<pb::ListInstrumentsRequest>)
        }),
        ("Registry", "OpenOfferingRequest", |b| {
            decoded(b, exercise_open_offering)
        }),
        ("Registry", "SubscribeRequest", |b| {
            decoded(b, exercise_subscribe)
        }),
        ("Registry", "CloseOfferingRequest", |b| {
            decoded(b, exercise_close_offering)
        }),
        ("Registry", "PayDistributionRequest", |b| {
            decoded(b, exercise_pay_distribution)
        }),
        ("Registry", "RepayAtMaturityRequest", |b| {
            decoded(b, |r: &pb::RepayAtMaturityRequest| {
                exercise_request_id_only(&r.request_id)
            })
        }),
        ("Membership", "ListMembersRequest", |b| {
            decoded(b, exercise_nothing::<pb::ListMembersRequest>)
        }),
        ("Membership", "ProposeResolutionRequest", |b| {
            decoded(b, |r: &pb::ProposeResolutionRequest| {
                exercise_request_id_only(&r.request_id)
            })
        }),
        ("Membership", "CastVoteRequest", |b| {
            decoded(b, |r: &pb::CastVoteRequest| {
                exercise_request_id_only(&r.request_id)
            })
        }),
        ("Membership", "CloseResolutionRequest", |b| {
            decoded(b, |r: &pb::CloseResolutionRequest| {
                exercise_request_id_only(&r.request_id)
            })
        }),
        ("Membership", "GetResolutionRequest", |b| {
            decoded(b, exercise_nothing::<pb::GetResolutionRequest>)
        }),
        ("Membership", "ListResolutionsRequest", |b| {
            decoded(b, exercise_nothing::<pb::ListResolutionsRequest>)
        }),
        ("Withdrawals", "RequestWithdrawalRequest", |b| {
            decoded(b, |r: &pb::RequestWithdrawalRequest| {
                exercise_request_id_only(&r.request_id)
            })
        }),
        ("Withdrawals", "CancelWithdrawalRequest", |b| {
            decoded(b, |r: &pb::CancelWithdrawalRequest| {
                exercise_request_id_only(&r.request_id)
            })
        }),
        ("Withdrawals", "CompleteWithdrawalRequest", |b| {
            decoded(b, |r: &pb::CompleteWithdrawalRequest| {
                exercise_request_id_only(&r.request_id)
            })
        }),
        ("Withdrawals", "SetWithdrawalsSuspendedRequest", |b| {
            decoded(b, |r: &pb::SetWithdrawalsSuspendedRequest| {
                exercise_request_id_only(&r.request_id)
            })
        }),
        ("Withdrawals", "ListWithdrawalsRequest", |b| {
            decoded(b, exercise_nothing::<pb::ListWithdrawalsRequest>)
        }),
        ("Identity", "IssueTokenRequest", |b| {
            decoded(b, exercise_nothing::<pb::IssueTokenRequest>)
        }),
        ("Identity", "RevokeTokenRequest", |b| {
            decoded(b, |r: &pb::RevokeTokenRequest| {
                exercise_request_id_only(&r.request_id)
            })
        }),
        ("Identity", "ListTokensRequest", |b| {
            decoded(b, exercise_nothing::<pb::ListTokensRequest>)
        }),
        ("Identity", "ListParticipantsRequest", |b| {
            decoded(b, exercise_nothing::<pb::ListParticipantsRequest>)
        }),
        ("Identity", "SetParticipantStatusRequest", |b| {
            decoded(b, |r: &pb::SetParticipantStatusRequest| {
                exercise_request_id_only(&r.request_id)
            })
        }),
        ("MarketData", "GetBookRequest", |b| {
            decoded(b, exercise_nothing::<pb::GetBookRequest>)
        }),
        ("MarketData", "StreamTradesRequest", |b| {
            decoded(b, exercise_nothing::<pb::StreamTradesRequest>)
        }),
        ("MarketData", "StreamBookRequest", |b| {
            decoded(b, exercise_nothing::<pb::StreamBookRequest>)
        }),
        ("Registry", "SetAccreditedCategoriesRequest", |b| {
            decoded(b, |r: &pb::SetAccreditedCategoriesRequest| {
                exercise_request_id_only(&r.request_id)
            })
        }),
        ("Vouchers", "DefineServicePackageRequest", |b| {
            decoded(b, |r: &pb::DefineServicePackageRequest| {
                exercise_cash_field(&r.request_id, "face_value", &r.face_value)
            })
        }),
        ("Vouchers", "IssueVoucherRequest", |b| {
            decoded(b, |r: &pb::IssueVoucherRequest| {
                exercise_cash_field(&r.request_id, "co_payment", &r.co_payment)
            })
        }),
        ("Vouchers", "RedeemVoucherRequest", |b| {
            decoded(b, |r: &pb::RedeemVoucherRequest| {
                exercise_request_id_only(&r.request_id)
            })
        }),
        ("Vouchers", "GetVoucherRequest", |b| {
            decoded(b, exercise_nothing::<pb::GetVoucherRequest>)
        }),
        ("Vouchers", "ListServicePackagesRequest", |b| {
            decoded(b, exercise_nothing::<pb::ListServicePackagesRequest>)
        }),
        ("Vouchers", "VoucherTotalsRequest", |b| {
            decoded(b, exercise_nothing::<pb::VoucherTotalsRequest>)
        }),
        ("ServiceValue", "RedeemServiceValueRequest", |b| {
            decoded(b, |r: &pb::RedeemServiceValueRequest| {
                exercise_cash_field(&r.request_id, "amount", &r.amount)
            })
        }),
        ("TimeCredits", "RecordVolunteerTimeRequest", |b| {
            decoded(b, |r: &pb::RecordVolunteerTimeRequest| {
                exercise_request_id_only(&r.request_id)
            })
        }),
        ("TimeCredits", "TransferTimeCreditsRequest", |b| {
            decoded(b, |r: &pb::TransferTimeCreditsRequest| {
                exercise_request_id_only(&r.request_id)
            })
        }),
        ("TimeCredits", "SpendTimeCreditsRequest", |b| {
            decoded(b, |r: &pb::SpendTimeCreditsRequest| {
                exercise_request_id_only(&r.request_id)
            })
        }),
        ("TimeCredits", "DonateTimeCreditsRequest", |b| {
            decoded(b, |r: &pb::DonateTimeCreditsRequest| {
                exercise_request_id_only(&r.request_id)
            })
        }),
        ("TimeCredits", "GrantTimeCreditsRequest", |b| {
            decoded(b, |r: &pb::GrantTimeCreditsRequest| {
                exercise_request_id_only(&r.request_id)
            })
        }),
        ("TimeCredits", "GetTimeCreditsRequest", |b| {
            decoded(b, exercise_nothing::<pb::GetTimeCreditsRequest>)
        }),
        ("Pool", "ContributeRequest", |b| {
            decoded(b, |r: &pb::ContributeRequest| {
                exercise_cash_field(&r.request_id, "amount", &r.amount)
            })
        }),
        ("Pool", "RepayLoanRequest", |b| {
            decoded(b, |r: &pb::RepayLoanRequest| {
                exercise_cash_field(&r.request_id, "amount", &r.amount)
            })
        }),
        ("Pool", "CloseNettingCycleRequest", |b| {
            decoded(b, |r: &pb::CloseNettingCycleRequest| {
                exercise_request_id_only(&r.request_id)
            })
        }),
        ("Pool", "DeclareSurplusRequest", |b| {
            decoded(b, |r: &pb::DeclareSurplusRequest| {
                exercise_cash_field(&r.request_id, "surplus", &r.surplus)
            })
        }),
        ("Pool", "GetPoolRequest", |b| {
            decoded(b, exercise_nothing::<pb::GetPoolRequest>)
        }),
        ("Pool", "GetPoolAccountRequest", |b| {
            decoded(b, exercise_nothing::<pb::GetPoolAccountRequest>)
        }),
        ("Audit", "AuditStreamRequest", |b| {
            decoded(b, exercise_nothing::<pb::AuditStreamRequest>)
        }),
        ("Audit", "ChainHeadRequest", |b| {
            decoded(b, exercise_nothing::<pb::ChainHeadRequest>)
        }),
        ("History", "HistoryOrdersRequest", |b| {
            decoded(b, exercise_nothing::<pb::HistoryOrdersRequest>)
        }),
        ("History", "HistoryFillsRequest", |b| {
            decoded(b, exercise_nothing::<pb::HistoryFillsRequest>)
        }),
        ("History", "CashMovementsRequest", |b| {
            decoded(b, exercise_nothing::<pb::CashMovementsRequest>)
        }),
        ("History", "ActivityRequest", |b| {
            decoded(b, exercise_nothing::<pb::ActivityRequest>)
        }),
        ("History", "StatementRequest", |b| {
            decoded(b, exercise_nothing::<pb::StatementRequest>)
        }),
        ("OpenData", "InstrumentTradesRequest", |b| {
            decoded(b, exercise_nothing::<pb::InstrumentTradesRequest>)
        }),
        ("Diagnostics", "EchoMessage", |b| {
            decoded(b, exercise_nothing::<pb::EchoMessage>)
        }),
        ("OpenData", "BarsRequest", |b| {
            decoded(b, exercise_nothing::<pb::BarsRequest>)
        }),
    ]
}

/// Decodes `bytes` as every request message of `service` (all services if `None`).
fn decode_as_every_request(bytes: &[u8], service: Option<&str>) {
    for (owner, _, exercise) in requests() {
        if service.is_none_or(|service| service == owner) {
            exercise(bytes);
        }
    }
}

#[test]
fn every_request_message_of_the_api_is_fuzzed() {
    let descriptors = prost_types::FileDescriptorSet::decode(mutua_gateway::FILE_DESCRIPTOR_SET)
        .expect("the compiled descriptor set decodes");
    let mut inputs = BTreeSet::new();
    for file in descriptors
        .file
        .iter()
        .filter(|file| file.package() == "mutua.v1")
    {
        for service in &file.service {
            for method in &service.method {
                let input = method.input_type().trim_start_matches(".mutua.v1.");
                inputs.insert((service.name().to_string(), input.to_string()));
            }
        }
    }
    let fuzzed: BTreeSet<(String, String)> = requests()
        .iter()
        .map(|(service, name, _)| (service.to_string(), name.to_string()))
        .collect();
    assert_eq!(
        inputs, fuzzed,
        "every RPC's request message, and nothing else, is in `requests()`"
    );
    assert!(fuzzed.len() >= 30);
}

// ---- Generators ----

/// Decimal text of every kind a client might send: plain numbers of any size, values already
/// on a minor unit, exponents, signs, whitespace, unicode digits and symbols, boundary values,
/// texts just under and over the length bound, and arbitrary strings.
fn decimal_text() -> impl Strategy<Value = String> {
    let plain = (
        prop::sample::select(vec!["", "", "", "-", "+"]),
        "[0-9]{0,30}",
        prop::option::of("[0-9]{0,30}"),
    )
        .prop_map(|(sign, whole, fraction)| match fraction {
            Some(fraction) => format!("{sign}{whole}.{fraction}"),
            None => format!("{sign}{whole}"),
        });
    let small = (1u64..100_000, 0u32..5).prop_map(|(mantissa, scale)| {
        Decimal::from_i128_with_scale(i128::from(mantissa), scale).to_string()
    });
    let on_scale = (any::<u64>(), 0u32..=28).prop_map(|(mantissa, scale)| {
        Decimal::from_i128_with_scale(i128::from(mantissa), scale).to_string()
    });
    let wide = (any::<u128>(), 0u32..=28).prop_map(|(mantissa, scale)| {
        Decimal::try_from_i128_with_scale((mantissa & DECIMAL_MANTISSA_MAX) as i128, scale)
            .map(|d| d.to_string())
            .unwrap_or_default()
    });
    let exponent = (
        "[0-9]{1,6}",
        prop::option::of("[0-9]{0,6}"),
        "[eE]",
        "[+-]?",
        "[0-9]{1,3}",
    )
        .prop_map(|(whole, fraction, e, sign, power)| match fraction {
            Some(fraction) => format!("{whole}.{fraction}{e}{sign}{power}"),
            None => format!("{whole}{e}{sign}{power}"),
        });
    let special = prop::sample::select(vec![
        "",
        " ",
        "\t",
        "\n",
        "0",
        "-0",
        "+0",
        "0.0",
        "-0.00",
        "00",
        "000.000",
        ".",
        "-.",
        ".5",
        "5.",
        "-.5",
        "+.5",
        "1.",
        "NaN",
        "nan",
        "inf",
        "-inf",
        "Infinity",
        "1e",
        "e1",
        "1e5",
        "1E-3",
        "1e+2",
        "0x1F",
        "0b101",
        "1_000",
        "1__0",
        "_1",
        "1_",
        "1,5",
        "1 000",
        "1.2.3",
        "--1",
        "+-1",
        "-+1",
        "1-",
        "1+",
        "١٢٣",
        "１２",
        "½",
        "²",
        "𝟙",
        "５.０",
        "5€",
        "€5",
        "$5",
        "∞",
        "−1",
        "—1",
        "\u{200B}1",
        "1\u{200B}",
        "1\u{0}",
        "\u{FEFF}1",
        "\u{A0}1\u{A0}",
        "1\u{3000}",
        "79228162514264337593543950335",
        "79228162514264337593543950336",
        "-79228162514264337593543950335",
        "7922816251426433759354395033.5",
        "0.0000000000000000000000000001",
        "0.00000000000000000000000000001",
        "1.0000000000000000000000000001",
        "40000000070000000000000000001",
        "4000000007000000000000000001",
        "18446744073709551615",
        "18446744073709551616",
        "184467440737095516.15",
        "184467440737095516.16",
        "1844674407370955161.5",
        "0.01",
        "0.05",
        "10.25",
        "10.26",
        "1",
        "10",
        "12",
        "35",
        "0.0001",
        "0.00005",
        "1.0000",
        "0.3333333333333333333333333333",
    ])
    .prop_map(str::to_string);
    // Lengths around the 64-byte bound: a long fraction, a long whole number, or a short number
    // padded with whitespace (which does not count).
    let near_length_bound = (60usize..70, 0..3u8).prop_map(|(length, shape)| match shape {
        0 => format!("0.{}", "1".repeat(length - 2)),
        1 => "1".repeat(length),
        _ => format!("{}5", " ".repeat(length)),
    });
    prop_oneof![
        4 => plain,
        3 => small,
        2 => on_scale,
        1 => wide,
        1 => exponent,
        3 => special,
        1 => near_length_bound,
        1 => (prop::sample::select(vec![" ", "  ", "\t", "\n", "\r\n", "\u{A0}", "\u{2003}"]), "[0-9]{1,8}(\\.[0-9]{0,4})?", prop::sample::select(vec!["", " ", "\t\n", "\u{3000}"]))
            .prop_map(|(before, number, after)| format!("{before}{number}{after}")),
        1 => "[0-9.+\\-eE _,]{0,70}",
        1 => ".{0,80}",
    ]
}

/// A request id: empty, ordinary, at and past the 128-byte bound, or any unicode.
fn request_id() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just(String::new()),
        4 => "[a-z0-9-]{1,24}",
        1 => (126usize..=130).prop_map(|length| "r".repeat(length)),
        1 => ".{0,140}",
        1 => (40usize..=44).prop_map(|length| "é€".repeat(length)),
    ]
}

/// An enum value: mostly those the protos define, sometimes any i32.
fn enum_value() -> impl Strategy<Value = i32> {
    prop_oneof![6 => 0..=6i32, 1 => any::<i32>()]
}

fn small_or_any_u32() -> impl Strategy<Value = u32> {
    prop_oneof![3 => 0..16u32, 1 => any::<u32>(), 1 => Just(u32::MAX)]
}

fn small_or_any_u64() -> impl Strategy<Value = u64> {
    prop_oneof![3 => 0..64u64, 1 => any::<u64>(), 1 => Just(u64::MAX)]
}

/// A text that is not a number: symbols and names.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[A-Z0-9.-]{0,20}", 1 => ".{0,40}", 1 => Just(String::new())]
}

fn instrument_ref() -> impl Strategy<Value = Option<pb::InstrumentRef>> {
    use pb::instrument_ref::Instrument;
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(pb::InstrumentRef { instrument: None })),
        3 => small_or_any_u32().prop_map(|id| Some(pb::InstrumentRef { instrument: Some(Instrument::Id(id)) })),
        3 => any_text().prop_map(|symbol| Some(pb::InstrumentRef { instrument: Some(Instrument::Symbol(symbol)) })),
    ]
}

fn place_order_request() -> impl Strategy<Value = pb::PlaceOrderRequest> {
    (
        request_id(),
        instrument_ref(),
        enum_value(),
        decimal_text(),
        decimal_text(),
        enum_value(),
        enum_value(),
    )
        .prop_map(
            |(
                request_id,
                instrument,
                side,
                price,
                quantity,
                time_in_force,
                self_trade_prevention,
            )| pb::PlaceOrderRequest {
                request_id,
                instrument,
                side,
                price,
                quantity,
                time_in_force,
                self_trade_prevention,
            },
        )
}

fn cancel_order_request() -> impl Strategy<Value = pb::CancelOrderRequest> {
    (request_id(), small_or_any_u64()).prop_map(|(request_id, order_id)| pb::CancelOrderRequest {
        request_id,
        order_id,
    })
}

fn reduce_order_request() -> impl Strategy<Value = pb::ReduceOrderRequest> {
    (request_id(), small_or_any_u64(), decimal_text()).prop_map(
        |(request_id, order_id, reduce_by)| pb::ReduceOrderRequest {
            request_id,
            order_id,
            reduce_by,
        },
    )
}

fn order_entry_request() -> impl Strategy<Value = pb::OrderEntryRequest> {
    use pb::order_entry_request::Command;
    prop_oneof![
        1 => Just(pb::OrderEntryRequest { command: None }),
        3 => place_order_request().prop_map(|r| pb::OrderEntryRequest { command: Some(Command::Place(r)) }),
        1 => cancel_order_request().prop_map(|r| pb::OrderEntryRequest { command: Some(Command::Cancel(r)) }),
        2 => reduce_order_request().prop_map(|r| pb::OrderEntryRequest { command: Some(Command::Reduce(r)) }),
    ]
}

fn deposit_request() -> impl Strategy<Value = pb::DepositRequest> {
    (request_id(), small_or_any_u32(), decimal_text()).prop_map(
        |(request_id, participant_id, amount)| pb::DepositRequest {
            request_id,
            participant_id,
            amount,
        },
    )
}

fn withdraw_request() -> impl Strategy<Value = pb::WithdrawRequest> {
    (request_id(), small_or_any_u32(), decimal_text()).prop_map(
        |(request_id, participant_id, amount)| pb::WithdrawRequest {
            request_id,
            participant_id,
            amount,
        },
    )
}

fn rate_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (0u32..=10_500).prop_map(|bp| Decimal::from_i128_with_scale(i128::from(bp), 4).to_string()),
        1 => (0u32..=10_500).prop_map(convert::rate_text),
        2 => decimal_text(),
    ]
}

fn list_instrument_request() -> impl Strategy<Value = pb::ListInstrumentRequest> {
    let amounts = (
        decimal_text(),
        decimal_text(),
        decimal_text(),
        rate_text(),
        prop_oneof![2 => Just(String::new()), 1 => Just("0".to_string()), 3 => decimal_text()],
    );
    // An issue time and a lock-in in nanoseconds are refused; mostly they are absent.
    let rare = || prop_oneof![6 => Just(None), 1 => any::<u64>().prop_map(Some)];
    let times = (rare(), prop::option::of(any::<u64>()), rare());
    let lock_in_years = (
        prop::option::of(prop_oneof![0u32..=10, Just(u32::MAX)]),
        any::<bool>(),
        prop_oneof![Just(0u32), 1u32..=4000],
        prop_oneof![3 => Just(String::new()), 1 => Just("0".to_string()), 2 => decimal_text()],
    );
    let flags = (
        prop::option::of(rate_text()),
        prop::option::of(rate_text()),
        any::<bool>(),
    );
    (
        request_id(),
        any_text(),
        enum_value(),
        small_or_any_u32(),
        amounts,
        times,
        flags,
        lock_in_years,
    )
        .prop_map(
            |(
                request_id,
                symbol,
                kind,
                issuer_id,
                (tick_size, lot_size, par, return_cap, price_floor),
                (issue_time_ns, maturity_time_ns, lock_in_ns),
                (holding_cap, tax_credit_rate, cooperative_investment_plan),
                (lock_in_years, withdrawable, withdrawal_notice_days, service_value),
            )| {
                pb::ListInstrumentRequest {
                    request_id,
                    symbol,
                    kind,
                    issuer_id,
                    tick_size,
                    lot_size,
                    par,
                    return_cap,
                    price_floor,
                    issue_time_ns,
                    maturity_time_ns,
                    holding_cap,
                    cooperative_investment_plan,
                    lock_in_ns,
                    tax_credit_rate,
                    lock_in_years,
                    withdrawable,
                    withdrawal_notice_days,
                    service_value,
                }
            },
        )
}

fn open_offering_request() -> impl Strategy<Value = pb::OpenOfferingRequest> {
    (
        request_id(),
        instrument_ref(),
        decimal_text(),
        decimal_text(),
    )
        .prop_map(|(request_id, instrument, quantity, minimum_quantity)| {
            pb::OpenOfferingRequest {
                request_id,
                instrument,
                quantity,
                minimum_quantity,
            }
        })
}

fn subscribe_request() -> impl Strategy<Value = pb::SubscribeRequest> {
    (request_id(), small_or_any_u32(), decimal_text()).prop_map(
        |(request_id, offering_id, quantity)| pb::SubscribeRequest {
            request_id,
            offering_id,
            quantity,
        },
    )
}

fn close_offering_request() -> impl Strategy<Value = pb::CloseOfferingRequest> {
    (request_id(), small_or_any_u32()).prop_map(|(request_id, offering_id)| {
        pb::CloseOfferingRequest {
            request_id,
            offering_id,
        }
    })
}

fn pay_distribution_request() -> impl Strategy<Value = pb::PayDistributionRequest> {
    (request_id(), instrument_ref(), decimal_text()).prop_map(
        |(request_id, instrument, amount_per_unit)| pb::PayDistributionRequest {
            request_id,
            instrument,
            amount_per_unit,
        },
    )
}

fn register_participant_request() -> impl Strategy<Value = pb::RegisterParticipantRequest> {
    let name = prop_oneof![4 => any_text(), 1 => (195usize..=205).prop_map(|length| "n".repeat(length)), 1 => (60usize..=70).prop_map(|length| "né€".repeat(length))];
    (request_id(), enum_value(), name).prop_map(|(request_id, role, name)| {
        pb::RegisterParticipantRequest {
            request_id,
            role,
            name,
        }
    })
}

fn set_accreditation_request() -> impl Strategy<Value = pb::SetAccreditationRequest> {
    (request_id(), small_or_any_u32(), any::<bool>()).prop_map(
        |(request_id, organization_id, accredited)| pb::SetAccreditationRequest {
            request_id,
            organization_id,
            accredited,
        },
    )
}

fn set_participant_status_request() -> impl Strategy<Value = pb::SetParticipantStatusRequest> {
    (request_id(), small_or_any_u32(), any::<bool>()).prop_map(
        |(request_id, participant_id, suspended)| pb::SetParticipantStatusRequest {
            request_id,
            participant_id,
            suspended,
        },
    )
}

fn revoke_token_request() -> impl Strategy<Value = pb::RevokeTokenRequest> {
    (request_id(), small_or_any_u32()).prop_map(|(request_id, token_id)| pb::RevokeTokenRequest {
        request_id,
        token_id,
    })
}

/// A request of any type with structured random fields, encoded.
fn encoded_request() -> impl Strategy<Value = Vec<u8>> {
    let any_instrument = instrument_ref();
    prop_oneof![
        place_order_request().prop_map(|m| m.encode_to_vec()),
        cancel_order_request().prop_map(|m| m.encode_to_vec()),
        reduce_order_request().prop_map(|m| m.encode_to_vec()),
        order_entry_request().prop_map(|m| m.encode_to_vec()),
        deposit_request().prop_map(|m| m.encode_to_vec()),
        withdraw_request().prop_map(|m| m.encode_to_vec()),
        list_instrument_request().prop_map(|m| m.encode_to_vec()),
        open_offering_request().prop_map(|m| m.encode_to_vec()),
        subscribe_request().prop_map(|m| m.encode_to_vec()),
        close_offering_request().prop_map(|m| m.encode_to_vec()),
        pay_distribution_request().prop_map(|m| m.encode_to_vec()),
        register_participant_request().prop_map(|m| m.encode_to_vec()),
        set_accreditation_request().prop_map(|m| m.encode_to_vec()),
        set_participant_status_request().prop_map(|m| m.encode_to_vec()),
        revoke_token_request().prop_map(|m| m.encode_to_vec()),
        (request_id(), any_instrument, any::<bool>()).prop_map(|(request_id, instrument, open)| {
            pb::SetTradingStatusRequest {
                request_id,
                instrument,
                open,
            }
            .encode_to_vec()
        }),
        (small_or_any_u32(), any::<bool>()).prop_map(|(participant_id, replace_existing)| {
            pb::IssueTokenRequest {
                participant_id,
                replace_existing,
            }
            .encode_to_vec()
        }),
        (
            prop::option::of(small_or_any_u32()),
            prop::option::of(any::<i32>())
        )
            .prop_map(|(participant_id, year)| pb::GetTaxCreditsRequest {
                participant_id,
                year
            }
            .encode_to_vec()),
    ]
}

/// One protobuf wire record, with any field number and wire type: decoders must survive wrong
/// wire types, unknown fields, repeated fields and nested garbage.
#[derive(Clone, Debug)]
enum Record {
    Varint(u32, u64),
    Fixed64(u32, u64),
    Fixed32(u32, u32),
    Bytes(u32, Vec<u8>),
    Text(u32, String),
    Nested(u32, Vec<Record>),
    /// A field key with an undefined wire type (6 or 7), or a group start/end.
    BadKey(u32, u8),
}

fn field_number() -> impl Strategy<Value = u32> {
    prop_oneof![8 => 1..=16u32, 1 => 0..=40u32, 1 => Just(536_870_911u32)]
}

fn record() -> impl Strategy<Value = Record> {
    let leaf = prop_oneof![
        4 => (field_number(), prop_oneof![0..8u64, any::<u64>(), Just(u64::MAX), Just(u64::from(u32::MAX) + 1)]).prop_map(|(f, v)| Record::Varint(f, v)),
        1 => (field_number(), any::<u64>()).prop_map(|(f, v)| Record::Fixed64(f, v)),
        1 => (field_number(), any::<u32>()).prop_map(|(f, v)| Record::Fixed32(f, v)),
        2 => (field_number(), prop::collection::vec(any::<u8>(), 0..24)).prop_map(|(f, v)| Record::Bytes(f, v)),
        4 => (field_number(), prop_oneof![decimal_text(), request_id()]).prop_map(|(f, v)| Record::Text(f, v)),
        1 => (field_number(), 3u8..8).prop_map(|(f, w)| Record::BadKey(f, w)),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        (field_number(), prop::collection::vec(inner, 0..6)).prop_map(|(f, v)| Record::Nested(f, v))
    })
}

fn put_varint(value: u64, out: &mut Vec<u8>) {
    prost::encoding::encode_varint(value, out);
}

fn put_key(field: u32, wire_type: u8, out: &mut Vec<u8>) {
    put_varint((u64::from(field) << 3) | u64::from(wire_type), out);
}

fn encode_records(records: &[Record], out: &mut Vec<u8>) {
    for record in records {
        match record {
            Record::Varint(field, value) => {
                put_key(*field, 0, out);
                put_varint(*value, out);
            }
            Record::Fixed64(field, value) => {
                put_key(*field, 1, out);
                out.extend_from_slice(&value.to_le_bytes());
            }
            Record::Fixed32(field, value) => {
                put_key(*field, 5, out);
                out.extend_from_slice(&value.to_le_bytes());
            }
            Record::Bytes(field, bytes) => {
                put_key(*field, 2, out);
                put_varint(bytes.len() as u64, out);
                out.extend_from_slice(bytes);
            }
            Record::Text(field, text) => {
                put_key(*field, 2, out);
                put_varint(text.len() as u64, out);
                out.extend_from_slice(text.as_bytes());
            }
            Record::Nested(field, inner) => {
                let mut nested = Vec::new();
                encode_records(inner, &mut nested);
                put_key(*field, 2, out);
                put_varint(nested.len() as u64, out);
                out.extend_from_slice(&nested);
            }
            Record::BadKey(field, wire_type) => put_key(*field, *wire_type, out),
        }
    }
}

/// One change to an encoded message.
#[derive(Clone, Debug)]
enum Mutation {
    Flip { at: usize, mask: u8 },
    Set { at: usize, value: u8 },
    Insert { at: usize, bytes: Vec<u8> },
    Delete { at: usize, length: usize },
    Truncate { at: usize },
    Duplicate { at: usize, length: usize },
    Append(Vec<Record>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<usize>(), 1..=255u8).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        2 => (any::<usize>(), prop_oneof![Just(0u8), Just(0x80), Just(0xFF), Just(0x7F), any::<u8>()]).prop_map(|(at, value)| Mutation::Set { at, value }),
        2 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        2 => (any::<usize>(), 1..8usize).prop_map(|(at, length)| Mutation::Delete { at, length }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        1 => (any::<usize>(), 1..32usize).prop_map(|(at, length)| Mutation::Duplicate { at, length }),
        1 => prop::collection::vec(record(), 1..4).prop_map(Mutation::Append),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let place = |at: usize, length: usize| if length == 0 { 0 } else { at % length };
    match mutation {
        Mutation::Flip { at, mask } if !bytes.is_empty() => {
            let at = place(*at, bytes.len());
            bytes[at] ^= mask;
        }
        Mutation::Set { at, value } if !bytes.is_empty() => {
            let at = place(*at, bytes.len());
            bytes[at] = *value;
        }
        Mutation::Insert {
            at,
            bytes: inserted,
        } => {
            let at = place(*at, bytes.len() + 1);
            bytes.splice(at..at, inserted.iter().copied());
        }
        Mutation::Delete { at, length } if !bytes.is_empty() => {
            let at = place(*at, bytes.len());
            let end = (at + length).min(bytes.len());
            bytes.drain(at..end);
        }
        Mutation::Truncate { at } => {
            let at = place(*at, bytes.len() + 1);
            bytes.truncate(at);
        }
        Mutation::Duplicate { at, length } if !bytes.is_empty() => {
            let at = place(*at, bytes.len());
            let end = (at + length).min(bytes.len());
            let chunk = bytes[at..end].to_vec();
            bytes.splice(end..end, chunk);
        }
        Mutation::Append(records) => encode_records(records, bytes),
        _ => {}
    }
}

/// Whole amounts as integers: the round trip from the engine's side.
fn integer() -> impl Strategy<Value = u64> {
    prop_oneof![3 => 1..1_000u64, 2 => 1..(1u64 << 22), 1 => any::<u64>(), 1 => Just(u64::MAX), 1 => Just(0u64)]
}

// ---- The properties ----

proptest! {
    #![proptest_config(config())]

    /// Arbitrary bytes as every request of `Exchange`.
    #[test]
    fn raw_bytes_as_exchange_requests(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_as_every_request(&bytes, Some("Exchange"));
    }

    /// Arbitrary bytes as every request of `Accounts`.
    #[test]
    fn raw_bytes_as_accounts_requests(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_as_every_request(&bytes, Some("Accounts"));
    }

    /// Arbitrary bytes as every request of `Registry`.
    #[test]
    fn raw_bytes_as_registry_requests(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_as_every_request(&bytes, Some("Registry"));
    }

    /// Arbitrary bytes as every request of `Identity`.
    #[test]
    fn raw_bytes_as_identity_requests(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_as_every_request(&bytes, Some("Identity"));
    }

    /// Arbitrary bytes as every request of `MarketData`.
    #[test]
    fn raw_bytes_as_market_data_requests(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_as_every_request(&bytes, Some("MarketData"));
    }

    /// Well-formed wire records with random field numbers, wire types and values (decimal-like
    /// strings among them), as every request: these get past the decoder far more often than
    /// raw bytes do.
    #[test]
    fn wire_records_as_every_request(records in prop::collection::vec(record(), 0..12)) {
        let mut bytes = Vec::new();
        encode_records(&records, &mut bytes);
        decode_as_every_request(&bytes, None);
    }

    /// A structured request of any type, encoded, then damaged: flipped, inserted, deleted,
    /// truncated, duplicated bytes and appended records. Decoded as every request.
    #[test]
    fn damaged_encodings_as_every_request(encoded in encoded_request(), mutations in prop::collection::vec(mutation(), 0..4)) {
        let mut bytes = encoded;
        decode_as_every_request(&bytes, None);
        for mutation in &mutations {
            mutate(&mut bytes, mutation);
        }
        decode_as_every_request(&bytes, None);
    }

    /// Orders: place, cancel, reduce, and each on the order-entry stream.
    #[test]
    fn orders_convert_exactly_or_are_refused(
        place in place_order_request(),
        cancel in cancel_order_request(),
        reduce in reduce_order_request(),
        entry in order_entry_request(),
    ) {
        exercise_place_order(&place);
        exercise_cancel_order(&cancel);
        exercise_reduce_order(&reduce);
        exercise_order_entry(&entry);
        prop_assert!(decoded(&entry.encode_to_vec(), exercise_order_entry));
    }

    /// Deposits and withdrawals at every currency scale.
    #[test]
    fn cash_movements_convert_exactly_or_are_refused(deposit in deposit_request(), withdraw in withdraw_request()) {
        exercise_deposit(&deposit);
        exercise_withdraw(&withdraw);
        prop_assert!(decoded(&deposit.encode_to_vec(), exercise_deposit));
    }

    /// Listings: tick, lot, par, floor, rates, kind and times, at every scale and "now".
    #[test]
    fn listings_convert_exactly_or_are_refused(request in list_instrument_request()) {
        exercise_list_instrument(&request);
        prop_assert!(decoded(&request.encode_to_vec(), exercise_list_instrument));
    }

    /// Offerings, subscriptions, closes and distributions in every instrument under test.
    #[test]
    fn offerings_and_distributions_convert_exactly_or_are_refused(
        open in open_offering_request(),
        subscribe in subscribe_request(),
        close in close_offering_request(),
        distribution in pay_distribution_request(),
    ) {
        exercise_open_offering(&open);
        exercise_subscribe(&subscribe);
        exercise_close_offering(&close);
        exercise_pay_distribution(&distribution);
    }

    /// Participants, accreditation, suspension, tokens and request ids; every enum conversion
    /// for any i32.
    #[test]
    fn participants_identity_and_enums_convert_or_are_refused(
        register in register_participant_request(),
        accreditation in set_accreditation_request(),
        status in set_participant_status_request(),
        revoke in revoke_token_request(),
        value in any::<i32>(),
        small in -2..8i32,
    ) {
        exercise_register_participant(&register);
        exercise_set_accreditation(&accreditation);
        exercise_request_id_only(&status.request_id);
        exercise_request_id_only(&revoke.request_id);
        for value in [value, small] {
            checked_side(value);
            checked_time_in_force(value);
            checked_self_trade(value);
            checked_role(value);
            checked_kind(value);
        }
    }

    /// One decimal text through every decimal conversion, in every instrument and currency.
    #[test]
    fn decimal_text_converts_exactly_or_is_refused(text in decimal_text()) {
        match convert::parse_decimal("value", &text) {
            Ok(value) => prop_assert_eq!(Some(value), decimal_of(&text)),
            Err(status) => {
                assert_refusal(&status, &["value"], &text);
                prop_assert_eq!(decimal_of(&text), None);
            }
        }
        for units in units_under_test() {
            checked_price(&units, "price", &text);
            checked_lots(&units, "quantity", &text);
        }
        for scale in CURRENCY_SCALES {
            checked_cash("amount", &text, scale);
        }
        checked_rate("rate", &text);
    }

    /// Integers the engine holds, printed as the gateway prints them, convert back to the same
    /// integers; times map to civil years that never go backwards.
    #[test]
    fn integers_print_and_parse_back(ticks in integer(), lots in integer(), minor in integer(), bp in 0u32..=20_000, times in (any::<u64>(), any::<u64>())) {
        for units in units_under_test() {
            let price = units.price_text(ticks);
            let parsed = checked_price(&units, "price", &price);
            let fits = u128::from(ticks) * u128::from(units.tick_size_minor) <= DECIMAL_MANTISSA_MAX;
            if ticks > 0 && fits {
                prop_assert_eq!(parsed, Some(ticks), "price {:?} of {:?}", price, units);
            }
            let quantity = units.quantity_text(lots);
            let parsed = checked_lots(&units, "quantity", &quantity);
            if lots > 0 && u128::from(lots) * u128::from(units.lot_size_units) <= DECIMAL_MANTISSA_MAX {
                prop_assert_eq!(parsed, Some(lots), "quantity {:?} of {:?}", quantity, units);
            }
        }
        for scale in CURRENCY_SCALES {
            let amount = convert::cash_text(minor, scale);
            let parsed = checked_cash("amount", &amount, scale);
            prop_assert_eq!(parsed, (minor > 0).then_some(minor), "amount {:?} at scale {}", amount, scale);
        }
        let rate = convert::rate_text(bp);
        let parsed = checked_rate("rate", &rate);
        prop_assert_eq!(parsed, (u64::from(bp) <= mutua_engine::config::BP_ONE).then_some(bp), "rate {:?}", rate);
        let (earlier, later) = if times.0 <= times.1 { times } else { (times.1, times.0) };
        prop_assert!(convert::year_of(earlier) <= convert::year_of(later));
        prop_assert!(convert::year_of(earlier) >= 1970);
    }
}
