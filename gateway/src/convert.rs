//! The edge between the wire and the engine: the only module that knows both the protobuf types
//! and the engine's. Requests become engine commands (decimal strings made exact integers, or a
//! refusal naming the field), engine state and outcomes become replies, and every
//! `RejectReason` becomes one gRPC status in a single exhaustive `match`.

use std::collections::HashMap;

use mutua_engine::units;
use mutua_engine::{
    Ack, CancelReason, CommandId, CommandKind, Event, Instrument, InstrumentId, InstrumentKind,
    InstrumentSpec, OfferingId, Order, OrderId, ParticipantId, RejectReason, Role,
    SelfTradePrevention, Side, TaxCredit, TimeInForce, Timestamp,
};
use rust_decimal::Decimal;
use tonic::{Code, Status};

use crate::pb;
use crate::record::Applied;

/// Longest client request id, in bytes: it is hashed into the command id, and a bound keeps a
/// hostile client from making the gateway hash megabytes per call.
pub const REQUEST_ID_BYTES_MAX: usize = 128;

/// Longest decimal string accepted for any amount, price, quantity or rate. Anything longer
/// cannot be an exact value the ledger can hold.
pub const DECIMAL_TEXT_BYTES_MAX: usize = 64;

/// Longest instrument symbol, in bytes (the engine's rule, checked here before anything is
/// journaled or looked up).
pub const SYMBOL_BYTES_MAX: usize = 16;

/// Longest participant name, in bytes: the market's `name_bytes_max`, checked here before the
/// registration is journaled.
pub fn name_bytes_max() -> usize {
    mutua_engine::MarketConfig::default().name_bytes_max as usize
}

/// Refuses a symbol longer than any listed symbol can be.
pub fn checked_symbol<'a>(field: &str, symbol: &'a str) -> Result<&'a str, Status> {
    if symbol.len() > SYMBOL_BYTES_MAX {
        return Err(field_error(
            field,
            RejectReason::SymbolInvalid,
            format!("a symbol is at most {SYMBOL_BYTES_MAX} bytes"),
        ));
    }
    Ok(symbol)
}

/// Refuses a list of service categories longer, or with longer entries, than any accreditation
/// may hold, before it is journaled.
pub fn bounded_names(field: &str, names: Vec<String>) -> Result<Vec<String>, Status> {
    let count_max = mutua_engine::MarketConfig::default().accredited_categories_max as usize;
    let bytes_max = mutua_engine::social::CATEGORY_BYTES_MAX;
    if names.len() > count_max || names.iter().any(|name| name.len() > bytes_max) {
        return Err(field_error(
            field,
            RejectReason::CategoriesInvalid,
            format!("at most {count_max} categories of at most {bytes_max} bytes each"),
        ));
    }
    Ok(names)
}

/// Metadata key (sent as a trailer) carrying the engine's stable reason code.
pub const REASON_CODE_METADATA: &str = "mutua-reason-code";

/// Domain of the `google.rpc.ErrorInfo` carried in status details.
pub const ERROR_DOMAIN: &str = "mutua.exchange";

// ---- Command ids ----

/// The engine's market-wide command id for a participant's request id: the first 16 bytes of
/// blake3(participant LE bytes ++ request id). Two participants may choose the same request id
/// without colliding, and a retry of one participant's request maps to the same command.
pub fn command_id(participant: ParticipantId, request_id: &str) -> CommandId {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&participant.0.to_le_bytes());
    hasher.update(request_id.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest.as_bytes()[..16]);
    CommandId(u128::from_le_bytes(first))
}

/// As `command_id`, refusing an empty or oversized request id.
pub fn checked_command_id(
    participant: ParticipantId,
    request_id: &str,
) -> Result<CommandId, Status> {
    if request_id.is_empty() {
        return Err(invalid_field(
            "request_id: required, so that a retry cannot apply twice",
        ));
    }
    if request_id.len() > REQUEST_ID_BYTES_MAX {
        return Err(invalid_field(format!(
            "request_id: longer than {REQUEST_ID_BYTES_MAX} bytes"
        )));
    }
    Ok(command_id(participant, request_id))
}

// ---- Rejections ----

/// The gRPC code for each engine rejection. Exhaustive on purpose: a new reason does not compile
/// until someone decides how clients see it.
pub fn reject_code(reason: RejectReason) -> Code {
    use RejectReason::*;
    match reason {
        // The thing named does not exist.
        UnknownParticipant | UnknownAccount | UnknownInstrument | UnknownOrder
        | UnknownOffering | UnknownCredential | UnknownWithdrawal | UnknownResolution
        | UnknownPackage | UnknownVoucher => Code::NotFound,
        // The caller may not do this, whatever the state.
        RoleNotAllowed
        | NotOrderOwner
        | NotIssuer
        | ParticipantSuspended
        | NotWithdrawalHolder
        | NotProposer
        | NotAMember
        | NotPackageFunder
        | NotVoucherBeneficiary => Code::PermissionDenied,
        // Malformed requests: wrong however often they are retried.
        NameInvalid
        | SymbolInvalid
        | TickSizeInvalid
        | LotSizeInvalid
        | ParInvalid
        | ReturnCapInvalid
        | PriceFloorInvalid
        | MaturityInvalid
        | HoldingCapInvalid
        | TaxCreditInvalid
        | QuantityZero
        | QuantityTooLarge
        | QuantityOffLot
        | PriceNotPositive
        | PriceOffTick
        | AmountZero
        | AmountOffMinorUnit
        | OfferingMinimumInvalid
        | RequestIdReused
        | ResolutionInvalid
        | WithdrawalTermsInvalid
        | LockInInvalid
        | VoucherTermsInvalid
        | PackageInvalid
        | TimeCreditsInvalid
        | SurplusYearInvalid
        | CategoriesInvalid => Code::InvalidArgument,
        // Outside a range that moves with the market's state (the band accrues, cash circulates).
        PriceAboveCeiling | PriceBelowFloor | AmountTooLarge => Code::OutOfRange,
        SymbolTaken => Code::AlreadyExists,
        // Well formed, but the state of accounts, instruments or offerings does not allow it now.
        NotAnOrganization
        | InstrumentMatured
        | TradingClosed
        | InsufficientCash
        | InsufficientUnits
        | HoldingCapExceeded
        | LockedIn
        | FillOrKillUnfillable
        | OfferingAlreadyOpen
        | OfferingNotOpen
        | OfferingOversubscribed
        | DistributionAboveCap
        | NoUnitsOutstanding
        | NotMatured
        | DoesNotMature
        | NoEffect
        | CannotSuspendSelf
        | OrderNotResting
        | NotWithdrawable
        | WithdrawalsSuspended
        | NoticeRunning
        | VotingClosed
        | AlreadyVoted
        | VotingStillOpen
        | MaturityReached
        | NotAccredited
        | NotAccreditedForCategory
        | VoucherAlreadyRedeemed
        | VoucherExpired
        | NoServiceValue
        | ServiceValueExceeded
        | InsufficientTimeCredits
        | NoPoolLoan
        | SurplusAlreadyDeclared => Code::FailedPrecondition,
        // A bound of the market is reached.
        BookFull | SubscriptionsFull | ParticipantsFull | InstrumentsFull | OrdersFull
        | CredentialsFull | ResolutionsFull | WithdrawalsFull | VouchersFull | ObligationsFull => {
            Code::ResourceExhausted
        }
    }
}

/// `InsufficientCash` → `INSUFFICIENT_CASH`, the form `google.rpc.ErrorInfo.reason` expects.
pub fn reason_name(reason: RejectReason) -> String {
    let camel = format!("{reason:?}");
    let mut name = String::with_capacity(camel.len() + 8);
    for (index, character) in camel.chars().enumerate() {
        if character.is_ascii_uppercase() && index > 0 {
            name.push('_');
        }
        name.push(character.to_ascii_uppercase());
    }
    name
}

/// The status a unary call returns for an engine rejection: the reason's sentence as the
/// message, its code in the `mutua-reason-code` trailer and in a `google.rpc.ErrorInfo` detail.
pub fn rejection_status(reason: RejectReason) -> Status {
    coded_status(reject_code(reason), reason, reason.message().to_string())
}

/// An engine rejection about one named field ("order_id: no resting order has this id"), with
/// the status the engine's own rejection would carry.
pub fn field_rejection(field: &str, reason: RejectReason) -> Status {
    coded_status(
        reject_code(reason),
        reason,
        format!("{field}: {}", reason.message()),
    )
}

/// A refusal of one field's value, with the engine reason it amounts to.
pub fn field_error(field: &str, reason: RejectReason, detail: impl std::fmt::Display) -> Status {
    coded_status(Code::InvalidArgument, reason, format!("{field}: {detail}"))
}

fn coded_status(code: Code, reason: RejectReason, message: String) -> Status {
    reasoned_status(code, reason.code(), reason_name(reason), message)
}

/// A status carrying a stable reason code in the `mutua-reason-code` trailer and in a
/// `google.rpc.ErrorInfo` detail: every refusal the gateway sends has both.
fn reasoned_status(code: Code, reason_code: u16, name: String, message: String) -> Status {
    let mut metadata = tonic::metadata::MetadataMap::new();
    metadata.insert(
        REASON_CODE_METADATA,
        tonic::metadata::MetadataValue::from(u32::from(reason_code)),
    );
    let info = rpc::ErrorInfo {
        reason: name,
        domain: ERROR_DOMAIN.to_string(),
        metadata: HashMap::from([("code".to_string(), reason_code.to_string())]),
    };
    let details = rpc::Status {
        code: code as i32,
        message: message.clone(),
        details: vec![rpc::Any {
            type_url: rpc::ERROR_INFO_TYPE_URL.to_string(),
            value: prost::Message::encode_to_vec(&info),
        }],
    };
    Status::with_details_and_metadata(
        code,
        message,
        prost::Message::encode_to_vec(&details).into(),
        metadata,
    )
}

/// Why the gateway refused a call before (or instead of) the engine: stable codes from 1001, in
/// the same trailer and detail as the engine's `RejectReason` codes (which stay below 1000).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum EdgeReason {
    /// No `authorization` metadata.
    TokenMissing = 1001,
    /// `authorization` is not `Bearer <token>`.
    TokenMalformed = 1002,
    /// The token was never issued, or was revoked.
    TokenUnknown = 1003,
    /// The token's participant is suspended.
    ParticipantSuspended = 1004,
    /// A request message could not be decoded.
    MessageUndecodable = 1005,
    /// A field is missing, malformed or out of its bounds.
    FieldInvalid = 1006,
    /// The caller's role may not read or do this.
    NotPermitted = 1007,
    /// The engine queue is full.
    Overloaded = 1008,
    /// The exchange is shutting down or has stopped.
    Unavailable = 1009,
    /// A per-participant or per-connection rate or stream bound is reached.
    LimitReached = 1010,
}

impl EdgeReason {
    pub fn code(self) -> u16 {
        self as u16
    }

    fn grpc_code(self) -> Code {
        match self {
            EdgeReason::TokenMissing | EdgeReason::TokenMalformed | EdgeReason::TokenUnknown => {
                Code::Unauthenticated
            }
            EdgeReason::ParticipantSuspended | EdgeReason::NotPermitted => Code::PermissionDenied,
            EdgeReason::MessageUndecodable | EdgeReason::FieldInvalid => Code::InvalidArgument,
            EdgeReason::Overloaded | EdgeReason::LimitReached => Code::ResourceExhausted,
            EdgeReason::Unavailable => Code::Unavailable,
        }
    }

    fn name(self) -> &'static str {
        match self {
            EdgeReason::TokenMissing => "TOKEN_MISSING",
            EdgeReason::TokenMalformed => "TOKEN_MALFORMED",
            EdgeReason::TokenUnknown => "TOKEN_UNKNOWN",
            EdgeReason::ParticipantSuspended => "PARTICIPANT_SUSPENDED",
            EdgeReason::MessageUndecodable => "MESSAGE_UNDECODABLE",
            EdgeReason::FieldInvalid => "FIELD_INVALID",
            EdgeReason::NotPermitted => "NOT_PERMITTED",
            EdgeReason::Overloaded => "OVERLOADED",
            EdgeReason::Unavailable => "UNAVAILABLE",
            EdgeReason::LimitReached => "LIMIT_REACHED",
        }
    }
}

/// A gateway refusal with its reason code and ErrorInfo.
pub fn edge_status(reason: EdgeReason, message: impl Into<String>) -> Status {
    reasoned_status(
        reason.grpc_code(),
        reason.code(),
        reason.name().to_string(),
        message.into(),
    )
}

/// INVALID_ARGUMENT for a malformed field, coded `FIELD_INVALID`. The message names the field.
pub fn invalid_field(message: impl Into<String>) -> Status {
    edge_status(EdgeReason::FieldInvalid, message)
}

/// The engine reason code a status carries, if it came from a rejection.
pub fn reason_code_of(status: &Status) -> Option<u16> {
    status
        .metadata()
        .get(REASON_CODE_METADATA)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// A status as a rejection inside a stream reply, where an error must not end the stream.
pub fn rejection_message(status: &Status) -> pb::Rejection {
    pb::Rejection {
        grpc_code: status.code() as i32,
        reason_code: reason_code_of(status).map_or(0, u32::from),
        message: status.message().to_string(),
    }
}

/// The accepted outcome of an applied command, or its rejection as a status.
pub fn accepted(applied: &Applied) -> Result<Ack, Status> {
    applied.outcome.result.map_err(|reason| match reason {
        RejectReason::RequestIdReused => field_rejection("request_id", reason),
        _ => rejection_status(reason),
    })
}

/// The status for an accepted outcome of another kind than the call expects. On a replay that
/// is the client's mistake (the request id was first used for a different command), not a
/// server fault; otherwise the engine broke its contract.
pub fn mismatched_outcome(applied: &Applied, expected: &str) -> Status {
    if applied.outcome.is_replay() {
        invalid_field(format!(
            "request_id: already used for another command than {expected}; choose a new request id"
        ))
    } else {
        Status::internal(format!(
            "the engine answered {expected} with another kind of outcome"
        ))
    }
}

/// Where an applied command sits in the journal. For a retry, `applied` is the first
/// application's record (see `services::first_outcome`), marked as replayed.
pub fn commit(applied: &Applied) -> pb::Commit {
    pb::Commit {
        sequence: applied.sequence,
        timestamp_ns: applied.timestamp,
        replayed: applied.outcome.is_replay(),
    }
}

/// The well-known `google.rpc` messages carried in `grpc-status-details-bin`, so that standard
/// clients (grpcio's `rpc_status`, tonic-types) can read the reason without our protos.
mod rpc {
    use std::collections::HashMap;

    pub const ERROR_INFO_TYPE_URL: &str = "type.googleapis.com/google.rpc.ErrorInfo";

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Status {
        #[prost(int32, tag = "1")]
        pub code: i32,
        #[prost(string, tag = "2")]
        pub message: String,
        #[prost(message, repeated, tag = "3")]
        pub details: Vec<Any>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Any {
        #[prost(string, tag = "1")]
        pub type_url: String,
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ErrorInfo {
        #[prost(string, tag = "1")]
        pub reason: String,
        #[prost(string, tag = "2")]
        pub domain: String,
        #[prost(map = "string, string", tag = "3")]
        pub metadata: HashMap<String, String>,
    }
}

// ---- Decimal text ----

/// A decimal string, exactly (never rounded to fit).
pub fn parse_decimal(field: &str, text: &str) -> Result<Decimal, Status> {
    let text = text.trim();
    if text.is_empty() {
        return Err(invalid_field(format!("{field}: required")));
    }
    if text.len() > DECIMAL_TEXT_BYTES_MAX {
        return Err(invalid_field(format!(
            "{field}: longer than {DECIMAL_TEXT_BYTES_MAX} characters"
        )));
    }
    Decimal::from_str_exact(text)
        .map_err(|_| invalid_field(format!("{field}: {text:?} is not an exact decimal number")))
}

/// `mantissa / 10^scale` written with exactly `scale` decimals, for any size of mantissa.
fn fixed_point_text(mantissa: u128, scale: u32) -> String {
    if scale == 0 {
        return mantissa.to_string();
    }
    let divisor = 10u128.pow(scale);
    format!(
        "{}.{:0width$}",
        mantissa / divisor,
        mantissa % divisor,
        width = scale as usize
    )
}

/// A sum of cash wider than one account (totals, gross obligations) → decimal text.
pub fn wide_cash_text(minor: u128, currency_scale: u32) -> String {
    fixed_point_text(minor, currency_scale)
}

/// Cash minor units → decimal text with the currency's decimals ("12.30").
pub fn cash_text(minor: u64, currency_scale: u32) -> String {
    fixed_point_text(u128::from(minor), currency_scale)
}

/// A cash amount → minor units, refusing zero, negative, sub-minor-unit and oversized amounts.
pub fn cash_minor(field: &str, text: &str, currency_scale: u32) -> Result<u64, Status> {
    let amount = parse_decimal(field, text)?;
    units::cash_to_minor(amount, currency_scale).map_err(|reason| match reason {
        RejectReason::AmountZero => field_error(field, reason, "must be positive"),
        RejectReason::AmountOffMinorUnit => field_error(
            field,
            reason,
            format!(
                "finer than the currency's minor unit ({})",
                cash_text(1, currency_scale)
            ),
        ),
        _ => field_error(field, reason, "too large for the ledger"),
    })
}

/// A rate as a fraction ("0.05") → basis points, at most 100 %.
pub fn rate_bp(field: &str, text: &str) -> Result<u32, Status> {
    let rate = parse_decimal(field, text)?;
    match units::rate_to_bp(rate) {
        Some(bp) if u64::from(bp) <= mutua_engine::config::BP_ONE => Ok(bp),
        _ => Err(invalid_field(format!(
            "{field}: must be a fraction from 0 to 1 with at most 4 decimal places (\"0.05\" is 5 %)"
        ))),
    }
}

/// Basis points → a rate as a fraction ("0.05").
pub fn rate_text(bp: u32) -> String {
    units::bp_to_rate(bp).normalize().to_string()
}

/// The units of one instrument: what turns decimal prices and quantities into ticks and lots.
/// Fixed at listing, so the gateway may cache them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstrumentUnits {
    pub id: InstrumentId,
    pub symbol: String,
    pub tick_size_minor: u64,
    pub lot_size_units: u64,
    pub currency_scale: u32,
}

impl InstrumentUnits {
    pub fn of(instrument: &Instrument, currency_scale: u32) -> InstrumentUnits {
        InstrumentUnits {
            id: instrument.id,
            symbol: instrument.spec.symbol.clone(),
            tick_size_minor: instrument.spec.tick_size_minor,
            lot_size_units: instrument.spec.lot_size_units,
            currency_scale,
        }
    }

    /// A price per unit → ticks, exactly.
    pub fn price_ticks(&self, field: &str, text: &str) -> Result<u64, Status> {
        let price = parse_decimal(field, text)?;
        units::price_to_ticks(price, self.tick_size_minor, self.currency_scale).map_err(|reason| {
            match reason {
                RejectReason::PriceNotPositive => field_error(field, reason, "must be positive"),
                RejectReason::PriceOffTick => field_error(
                    field,
                    reason,
                    format!("not a whole number of ticks (tick {})", self.tick_text()),
                ),
                _ => field_error(field, reason, "too large"),
            }
        })
    }

    /// A quantity in units → lots, exactly.
    pub fn lots(&self, field: &str, text: &str) -> Result<u64, Status> {
        let quantity = parse_decimal(field, text)?;
        units::units_to_lots(quantity, self.lot_size_units).map_err(|reason| match reason {
            RejectReason::QuantityZero => field_error(field, reason, "must be positive"),
            RejectReason::QuantityOffLot => field_error(
                field,
                reason,
                format!(
                    "not a whole number of lots (lot {} units)",
                    self.lot_size_units
                ),
            ),
            _ => field_error(field, reason, "too large"),
        })
    }

    pub fn tick_text(&self) -> String {
        cash_text(self.tick_size_minor, self.currency_scale)
    }

    pub fn price_text(&self, ticks: u64) -> String {
        fixed_point_text(
            u128::from(ticks) * u128::from(self.tick_size_minor),
            self.currency_scale,
        )
    }

    pub fn quantity_text(&self, lots: u64) -> String {
        (u128::from(lots) * u128::from(self.lot_size_units)).to_string()
    }

    pub fn cash_text(&self, minor: u64) -> String {
        cash_text(minor, self.currency_scale)
    }

    /// Cash per lot in minor units → cash per unit, as exact as 28 significant digits allow.
    pub fn per_unit_text(&self, minor_per_lot: u64) -> String {
        let per_lot = units::minor_to_cash(minor_per_lot, self.currency_scale);
        let mut per_unit = (per_lot / Decimal::from(self.lot_size_units)).normalize();
        // At least the currency's decimals, as every other amount shows: "10.00", not "10".
        if per_unit.scale() < self.currency_scale {
            per_unit.rescale(self.currency_scale);
        }
        per_unit.to_string()
    }
}

// ---- Enumerations ----

fn enum_value<E: TryFrom<i32>>(field: &str, value: i32) -> Result<E, Status> {
    E::try_from(value).map_err(|_| invalid_field(format!("{field}: {value} is not a known value")))
}

pub fn role(field: &str, value: i32) -> Result<Role, Status> {
    match enum_value::<pb::Role>(field, value)? {
        pb::Role::Unspecified => Err(invalid_field(format!("{field}: required"))),
        pb::Role::Contributor => Ok(Role::Contributor),
        pb::Role::Organization => Ok(Role::Organization),
        pb::Role::Funder => Ok(Role::Funder),
        pb::Role::Regulator => Ok(Role::Regulator),
        pb::Role::Operator => Ok(Role::Operator),
    }
}

pub fn role_to_pb(role: Role) -> pb::Role {
    match role {
        Role::Contributor => pb::Role::Contributor,
        Role::Organization => pb::Role::Organization,
        Role::Funder => pb::Role::Funder,
        Role::Regulator => pb::Role::Regulator,
        Role::Operator => pb::Role::Operator,
    }
}

pub fn side(field: &str, value: i32) -> Result<Side, Status> {
    match enum_value::<pb::Side>(field, value)? {
        pb::Side::Unspecified => Err(invalid_field(format!("{field}: required (buy or sell)"))),
        pb::Side::Buy => Ok(Side::Buy),
        pb::Side::Sell => Ok(Side::Sell),
    }
}

pub fn side_to_pb(side: Side) -> pb::Side {
    match side {
        Side::Buy => pb::Side::Buy,
        Side::Sell => pb::Side::Sell,
    }
}

pub fn time_in_force(field: &str, value: i32) -> Result<TimeInForce, Status> {
    Ok(match enum_value::<pb::TimeInForce>(field, value)? {
        pb::TimeInForce::Unspecified | pb::TimeInForce::GoodTillCancelled => {
            TimeInForce::GoodTillCancelled
        }
        pb::TimeInForce::ImmediateOrCancel => TimeInForce::ImmediateOrCancel,
        pb::TimeInForce::FillOrKill => TimeInForce::FillOrKill,
    })
}

pub fn time_in_force_to_pb(time_in_force: TimeInForce) -> pb::TimeInForce {
    match time_in_force {
        TimeInForce::GoodTillCancelled => pb::TimeInForce::GoodTillCancelled,
        TimeInForce::ImmediateOrCancel => pb::TimeInForce::ImmediateOrCancel,
        TimeInForce::FillOrKill => pb::TimeInForce::FillOrKill,
    }
}

pub fn self_trade(field: &str, value: i32) -> Result<SelfTradePrevention, Status> {
    Ok(match enum_value::<pb::SelfTradePrevention>(field, value)? {
        pb::SelfTradePrevention::Unspecified | pb::SelfTradePrevention::CancelIncoming => {
            SelfTradePrevention::CancelIncoming
        }
        pb::SelfTradePrevention::CancelResting => SelfTradePrevention::CancelResting,
        pb::SelfTradePrevention::CancelBoth => SelfTradePrevention::CancelBoth,
    })
}

pub fn kind(field: &str, value: i32) -> Result<InstrumentKind, Status> {
    match enum_value::<pb::InstrumentKind>(field, value)? {
        pb::InstrumentKind::Unspecified => Err(invalid_field(format!("{field}: required"))),
        pb::InstrumentKind::CommunityShare => Ok(InstrumentKind::CommunityShare),
        pb::InstrumentKind::CommunityBond => Ok(InstrumentKind::CommunityBond),
        pb::InstrumentKind::CommunityInvestmentNote => Ok(InstrumentKind::CommunityInvestmentNote),
    }
}

pub fn kind_to_pb(kind: InstrumentKind) -> pb::InstrumentKind {
    match kind {
        InstrumentKind::CommunityShare => pb::InstrumentKind::CommunityShare,
        InstrumentKind::CommunityBond => pb::InstrumentKind::CommunityBond,
        InstrumentKind::CommunityInvestmentNote => pb::InstrumentKind::CommunityInvestmentNote,
    }
}

// ---- Requests → commands ----
//
// Requests that need no instrument units convert with `TryFrom`; the rest take the units of the
// instrument they name, which the service looks up first.

impl TryFrom<&pb::RegisterParticipantRequest> for CommandKind {
    type Error = Status;
    fn try_from(request: &pb::RegisterParticipantRequest) -> Result<CommandKind, Status> {
        if request.name.len() > name_bytes_max() {
            return Err(field_error(
                "name",
                RejectReason::NameInvalid,
                format!("at most {} bytes", name_bytes_max()),
            ));
        }
        Ok(CommandKind::RegisterParticipant {
            role: role("role", request.role)?,
            name: request.name.clone(),
        })
    }
}

impl TryFrom<&pb::SetAccreditationRequest> for CommandKind {
    type Error = Status;
    fn try_from(request: &pb::SetAccreditationRequest) -> Result<CommandKind, Status> {
        Ok(CommandKind::SetAccreditation {
            organization: ParticipantId(request.organization_id),
            accredited: request.accredited,
        })
    }
}

impl TryFrom<&pb::CancelOrderRequest> for CommandKind {
    type Error = Status;
    fn try_from(request: &pb::CancelOrderRequest) -> Result<CommandKind, Status> {
        Ok(CommandKind::CancelOrder {
            order: OrderId(request.order_id),
        })
    }
}

impl TryFrom<&pb::CloseOfferingRequest> for CommandKind {
    type Error = Status;
    fn try_from(request: &pb::CloseOfferingRequest) -> Result<CommandKind, Status> {
        Ok(CommandKind::CloseOffering {
            offering: OfferingId(request.offering_id),
        })
    }
}

pub fn place_order(
    request: &pb::PlaceOrderRequest,
    units: &InstrumentUnits,
) -> Result<CommandKind, Status> {
    Ok(CommandKind::PlaceOrder {
        instrument: units.id,
        side: side("side", request.side)?,
        price_ticks: units.price_ticks("price", &request.price)?,
        lots: units.lots("quantity", &request.quantity)?,
        time_in_force: time_in_force("time_in_force", request.time_in_force)?,
        self_trade: self_trade("self_trade_prevention", request.self_trade_prevention)?,
    })
}

pub fn reduce_order(
    request: &pb::ReduceOrderRequest,
    units: &InstrumentUnits,
) -> Result<CommandKind, Status> {
    Ok(CommandKind::ReduceOrder {
        order: OrderId(request.order_id),
        reduce_by_lots: units.lots("reduce_by", &request.reduce_by)?,
    })
}

pub fn deposit(request: &pb::DepositRequest, currency_scale: u32) -> Result<CommandKind, Status> {
    Ok(CommandKind::Deposit {
        account: ParticipantId(request.participant_id),
        amount_minor: cash_minor("amount", &request.amount, currency_scale)?,
    })
}

pub fn withdraw(request: &pb::WithdrawRequest, currency_scale: u32) -> Result<CommandKind, Status> {
    Ok(CommandKind::Withdraw {
        account: ParticipantId(request.participant_id),
        amount_minor: cash_minor("amount", &request.amount, currency_scale)?,
    })
}

/// A listing. Accrual runs from the first issue, which the engine records: a listing that names
/// an issue time is refused, as is a lock-in in nanoseconds rather than whole years.
pub fn list_instrument(
    request: &pb::ListInstrumentRequest,
    currency_scale: u32,
) -> Result<CommandKind, Status> {
    if request.issue_time_ns.is_some() {
        return Err(invalid_field(
            "issue_time_ns: not accepted; accrual runs from the first issue, which the exchange records when the first offering closes with units issued",
        ));
    }
    if request.lock_in_ns.is_some() {
        return Err(invalid_field("lock_in_ns: not accepted; a lock-in is whole years to the anniversary, in lock_in_years"));
    }
    checked_symbol("symbol", &request.symbol)?;
    let tick_size_minor = cash_minor("tick_size", &request.tick_size, currency_scale)?;
    let lot_size = parse_decimal("lot_size", &request.lot_size)?;
    // Reported as the listing's own reason: a bad lot size is not a bad order quantity.
    let lot_size_units = units::units_to_lots(lot_size, 1).map_err(|_| {
        field_error(
            "lot_size",
            RejectReason::LotSizeInvalid,
            "must be a positive whole number of units",
        )
    })?;
    let listed = InstrumentUnits {
        id: InstrumentId(0),
        symbol: request.symbol.clone(),
        tick_size_minor,
        lot_size_units,
        currency_scale,
    };
    let par_ticks = listed.price_ticks("par", &request.par)?;
    let price_floor_ticks = if request.price_floor.trim().is_empty()
        || parse_decimal("price_floor", &request.price_floor)?.is_zero()
    {
        0
    } else {
        listed.price_ticks("price_floor", &request.price_floor)?
    };
    let spec = InstrumentSpec {
        symbol: request.symbol.clone(),
        kind: kind("kind", request.kind)?,
        issuer: ParticipantId(request.issuer_id),
        tick_size_minor,
        lot_size_units,
        par_ticks,
        return_cap_bp: rate_bp("return_cap", &request.return_cap)?,
        price_floor_ticks,
        maturity_time: request.maturity_time_ns,
        holding_cap_bp: request
            .holding_cap
            .as_deref()
            .map(|text| rate_bp("holding_cap", text))
            .transpose()?,
        cooperative_investment_plan: request.cooperative_investment_plan,
        lock_in_years: request.lock_in_years,
        tax_credit_bp: request
            .tax_credit_rate
            .as_deref()
            .map(|text| rate_bp("tax_credit_rate", text))
            .transpose()?,
        withdrawable: request.withdrawable,
        service_value_per_lot_minor: if is_none_amount(&request.service_value) {
            0
        } else {
            per_lot_minor("service_value", &request.service_value, &listed)?
        },
        withdrawal_notice_days: request.withdrawal_notice_days,
    };
    Ok(CommandKind::ListInstrument {
        spec: Box::new(spec),
    })
}

pub fn open_offering(
    request: &pb::OpenOfferingRequest,
    units: &InstrumentUnits,
) -> Result<CommandKind, Status> {
    Ok(CommandKind::OpenOffering {
        instrument: units.id,
        lots: units.lots("quantity", &request.quantity)?,
        minimum_lots: units.lots("minimum_quantity", &request.minimum_quantity)?,
    })
}

pub fn subscribe(
    request: &pb::SubscribeRequest,
    units: &InstrumentUnits,
) -> Result<CommandKind, Status> {
    Ok(CommandKind::Subscribe {
        offering: OfferingId(request.offering_id),
        lots: units.lots("quantity", &request.quantity)?,
    })
}

/// A distribution per unit → per lot in minor units; the per-lot amount must be exact.
pub fn pay_distribution(
    request: &pb::PayDistributionRequest,
    units: &InstrumentUnits,
) -> Result<CommandKind, Status> {
    Ok(CommandKind::PayDistribution {
        instrument: units.id,
        per_lot_minor: per_lot_minor("amount_per_unit", &request.amount_per_unit, units)?,
    })
}

/// Cash per unit → cash per lot in minor units, refusing zero and anything finer than a minor
/// unit per lot.
pub fn per_lot_minor(field: &str, text: &str, units: &InstrumentUnits) -> Result<u64, Status> {
    let per_unit = parse_decimal(field, text)?;
    let per_lot = per_unit
        .checked_mul(Decimal::from(units.lot_size_units))
        .ok_or_else(|| {
            field_error(
                field,
                RejectReason::AmountTooLarge,
                "too large for the ledger",
            )
        })?;
    units::cash_to_minor(per_lot, units.currency_scale).map_err(|reason| match reason {
        RejectReason::AmountZero => field_error(field, reason, "must be positive"),
        RejectReason::AmountOffMinorUnit => field_error(
            field,
            reason,
            format!(
                "times the lot of {} units is finer than the currency's minor unit ({})",
                units.lot_size_units,
                cash_text(1, units.currency_scale)
            ),
        ),
        _ => field_error(field, reason, "too large for the ledger"),
    })
}

/// Text that means "none" for an optional amount: empty, or a zero.
pub fn is_none_amount(text: &str) -> bool {
    let text = text.trim();
    text.is_empty() || Decimal::from_str_exact(text).is_ok_and(|value| value.is_zero())
}

// ---- Outcomes → replies ----

/// What happened at once to an order just placed, read from the events of its command.
pub fn place_order_response(
    applied: &Applied,
    units: &InstrumentUnits,
) -> Result<pb::PlaceOrderResponse, Status> {
    let Ack::Order(order) = accepted(applied)? else {
        return Err(mismatched_outcome(applied, "an order"));
    };
    let mut response = pb::PlaceOrderResponse {
        commit: Some(commit(applied)),
        order_id: order.0,
        status: pb::OrderStatus::Unspecified as i32,
        fills: Vec::new(),
        remaining_quantity: String::new(),
    };
    let mut status = pb::OrderStatus::Filled;
    let mut remaining_lots = 0;
    for event in &applied.events {
        match event {
            Event::Trade {
                taker_order,
                maker_order,
                price_ticks,
                lots,
                notional_minor,
                ..
            } if *taker_order == order => {
                response.fills.push(pb::Fill {
                    maker_order_id: maker_order.0,
                    price: units.price_text(*price_ticks),
                    quantity: units.quantity_text(*lots),
                    notional: units.cash_text(*notional_minor),
                });
            }
            Event::OrderRested {
                order: rested,
                remaining_lots: lots,
            } if *rested == order => {
                status = pb::OrderStatus::Resting;
                remaining_lots = *lots;
            }
            Event::OrderCancelled {
                order: cancelled,
                reason,
                ..
            } if *cancelled == order => {
                status = match reason {
                    CancelReason::FillOrKillUnfillable => pb::OrderStatus::Killed,
                    _ => pb::OrderStatus::Cancelled,
                }
            }
            _ => {}
        }
    }
    response.status = status as i32;
    response.remaining_quantity = units.quantity_text(remaining_lots);
    Ok(response)
}

pub fn cancel_order_response(
    applied: &Applied,
    units: Option<&InstrumentUnits>,
) -> Result<pb::CancelOrderResponse, Status> {
    accepted(applied)?;
    let cancelled_quantity = applied
        .events
        .iter()
        .find_map(|event| match event {
            Event::OrderCancelled { remaining_lots, .. } => {
                units.map(|units| units.quantity_text(*remaining_lots))
            }
            _ => None,
        })
        .unwrap_or_default();
    Ok(pb::CancelOrderResponse {
        commit: Some(commit(applied)),
        cancelled_quantity,
    })
}

pub fn reduce_order_response(
    applied: &Applied,
    units: &InstrumentUnits,
) -> Result<pb::ReduceOrderResponse, Status> {
    accepted(applied)?;
    let remaining_quantity = applied
        .events
        .iter()
        .find_map(|event| match event {
            Event::OrderReduced { remaining_lots, .. } => {
                Some(units.quantity_text(*remaining_lots))
            }
            Event::OrderCancelled { .. } => Some(units.quantity_text(0)),
            _ => None,
        })
        .unwrap_or_default();
    Ok(pb::ReduceOrderResponse {
        commit: Some(commit(applied)),
        remaining_quantity,
    })
}

pub fn cash_movement_response(
    applied: &Applied,
    currency_scale: u32,
) -> Result<pb::CashMovementResponse, Status> {
    accepted(applied)?;
    let balance = applied
        .events
        .iter()
        .find_map(|event| match event {
            Event::CashDeposited { balance_minor, .. }
            | Event::CashWithdrawn { balance_minor, .. } => {
                Some(cash_text(*balance_minor, currency_scale))
            }
            _ => None,
        })
        .unwrap_or_default();
    Ok(pb::CashMovementResponse {
        commit: Some(commit(applied)),
        balance,
    })
}

pub fn commit_response(applied: &Applied) -> Result<pb::CommitResponse, Status> {
    accepted(applied)?;
    Ok(pb::CommitResponse {
        commit: Some(commit(applied)),
    })
}

pub fn subscribe_response(
    applied: &Applied,
    units: &InstrumentUnits,
) -> Result<pb::SubscribeResponse, Status> {
    accepted(applied)?;
    let cash_reserved = applied
        .events
        .iter()
        .find_map(|event| match event {
            Event::Subscribed {
                cash_reserved_minor,
                ..
            } => Some(units.cash_text(*cash_reserved_minor)),
            _ => None,
        })
        .unwrap_or_default();
    Ok(pb::SubscribeResponse {
        commit: Some(commit(applied)),
        cash_reserved,
    })
}

pub fn close_offering_response(
    applied: &Applied,
    units: &InstrumentUnits,
) -> Result<pb::CloseOfferingResponse, Status> {
    accepted(applied)?;
    let mut response = pb::CloseOfferingResponse {
        commit: Some(commit(applied)),
        ..Default::default()
    };
    for event in &applied.events {
        if let Event::OfferingClosed {
            issued,
            subscribed_lots,
            proceeds_minor,
            ..
        } = event
        {
            response.issued = *issued;
            response.subscribed_quantity = units.quantity_text(*subscribed_lots);
            response.proceeds = units.cash_text(*proceeds_minor);
        }
    }
    Ok(response)
}

pub fn pay_distribution_response(
    applied: &Applied,
    units: &InstrumentUnits,
) -> Result<pb::PayDistributionResponse, Status> {
    accepted(applied)?;
    let mut response = pb::PayDistributionResponse {
        commit: Some(commit(applied)),
        ..Default::default()
    };
    for event in &applied.events {
        if let Event::DistributionPaid {
            total_minor,
            lots_outstanding,
            ..
        } = event
        {
            response.total = units.cash_text(*total_minor);
            response.outstanding_quantity = units.quantity_text(*lots_outstanding);
        }
    }
    Ok(response)
}

pub fn repay_at_maturity_response(
    applied: &Applied,
    units: &InstrumentUnits,
) -> Result<pb::RepayAtMaturityResponse, Status> {
    accepted(applied)?;
    let mut response = pb::RepayAtMaturityResponse {
        commit: Some(commit(applied)),
        ..Default::default()
    };
    for event in &applied.events {
        if let Event::InstrumentMatured {
            lots_retired,
            repaid_minor,
            ..
        } = event
        {
            response.repaid = units.cash_text(*repaid_minor);
            response.retired_quantity = units.quantity_text(*lots_retired);
        }
    }
    Ok(response)
}

// ---- Engine state → replies ----

pub fn order_to_pb(order: &Order, units: &InstrumentUnits) -> pb::Order {
    pb::Order {
        order_id: order.id.0,
        owner_id: order.owner.0,
        instrument_id: order.instrument.0,
        symbol: units.symbol.clone(),
        side: side_to_pb(order.side) as i32,
        price: units.price_text(order.price_ticks),
        original_quantity: units.quantity_text(order.original_lots),
        remaining_quantity: units.quantity_text(order.remaining_lots),
        time_in_force: time_in_force_to_pb(order.time_in_force) as i32,
        accepted_at_ns: order.accepted_at,
    }
}

/// An instrument's terms and status, with its price ceiling as of `now`.
pub fn instrument_to_pb(
    instrument: &Instrument,
    currency_scale: u32,
    now: Timestamp,
) -> pb::Instrument {
    let units = InstrumentUnits::of(instrument, currency_scale);
    let spec = &instrument.spec;
    pb::Instrument {
        instrument_id: instrument.id.0,
        symbol: spec.symbol.clone(),
        kind: kind_to_pb(spec.kind) as i32,
        issuer_id: spec.issuer.0,
        tick_size: units.tick_text(),
        lot_size: spec.lot_size_units.to_string(),
        par: units.price_text(spec.par_ticks),
        return_cap: rate_text(spec.return_cap_bp),
        price_floor: units.price_text(instrument.terms.price_floor_ticks),
        price_ceiling: units.price_text(instrument.ceiling_ticks(now)),
        maturity_time_ns: spec.maturity_time,
        holding_cap: rate_text(instrument.terms.holding_cap_bp),
        cooperative_investment_plan: spec.cooperative_investment_plan,
        tax_credit_rate: rate_text(instrument.terms.tax_credit_bp),
        trading_open: instrument.status.trading_open,
        matured: instrument.status.matured,
        issued_quantity: units.quantity_text(instrument.status.lots_issued),
        outstanding_quantity: units.quantity_text(instrument.lots_outstanding()),
        open_offering_id: instrument.status.open_offering.map(|offering| offering.0),
        first_issue_time_ns: instrument.status.first_issue_time,
        lock_in_years: instrument.terms.lock_in_years,
        accrued_value: units.per_unit_text(instrument.accrued_value_per_lot_minor(now)),
        distributed_per_unit: units.per_unit_text(instrument.status.distributed_per_lot_minor),
        offering_price: units.price_text(instrument.offering_price_ticks(now)),
        withdrawable: spec.withdrawable,
        withdrawal_notice_days: spec.withdrawal_notice_days,
        withdrawals_suspended: instrument.status.withdrawals_suspended,
        service_value: units.per_unit_text(spec.service_value_per_lot_minor),
    }
}

pub fn holding_to_pb(
    holding: &mutua_engine::Holding,
    units: &InstrumentUnits,
    now: Timestamp,
) -> pb::Holding {
    pb::Holding {
        instrument_id: units.id.0,
        symbol: units.symbol.clone(),
        quantity: units.quantity_text(holding.lots),
        reserved_quantity: units.quantity_text(holding.reserved_lots),
        locked_quantity: units.quantity_text(holding.locked_lots(now).min(holding.lots)),
        free_quantity: units.quantity_text(holding.free_lots(now)),
        open_buy_quantity: units.quantity_text(holding.open_buy_lots),
        subscribed_quantity: units.quantity_text(holding.subscribed_lots),
    }
}

pub fn tax_credit_to_pb(credit: &TaxCredit, units: &InstrumentUnits) -> pb::TaxCredit {
    pb::TaxCredit {
        instrument_id: credit.instrument.0,
        symbol: units.symbol.clone(),
        time_ns: credit.time,
        purchase: units.cash_text(credit.purchase_minor),
        credit: units.cash_text(credit.credit_minor),
        rate: rate_text(credit.rate_bp),
    }
}

/// One side of a book's depth: (price ticks, lots, orders) per level, best first.
pub fn levels_to_pb(levels: &[(u64, u64, u32)], units: &InstrumentUnits) -> Vec<pb::Level> {
    levels
        .iter()
        .map(|(price_ticks, lots, orders)| pb::Level {
            price: units.price_text(*price_ticks),
            quantity: units.quantity_text(*lots),
            orders: *orders,
        })
        .collect()
}

/// A trade as public market data: no participant is named.
pub fn trade_to_pb(
    event: &Event,
    sequence: u64,
    timestamp: Timestamp,
    units: &InstrumentUnits,
) -> Option<pb::Trade> {
    let Event::Trade {
        instrument,
        maker_order,
        taker_order,
        taker_side,
        price_ticks,
        lots,
        notional_minor,
        ..
    } = event
    else {
        return None;
    };
    Some(pb::Trade {
        sequence,
        timestamp_ns: timestamp,
        instrument_id: instrument.0,
        symbol: units.symbol.clone(),
        price: units.price_text(*price_ticks),
        quantity: units.quantity_text(*lots),
        notional: units.cash_text(*notional_minor),
        taker_side: side_to_pb(*taker_side) as i32,
        maker_order_id: maker_order.0,
        taker_order_id: taker_order.0,
    })
}

/// The calendar year (UTC) of a time in nanoseconds since the Unix epoch.
pub fn year_of(time: Timestamp) -> i32 {
    // Days since 1970-01-01 → civil year (Howard Hinnant's days_from_civil, inverted).
    let days = (time / 86_400_000_000_000) as i64;
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let january_or_february = month_index >= 10;
    (year_of_era + era * 400 + i64::from(january_or_february)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units() -> InstrumentUnits {
        InstrumentUnits {
            id: InstrumentId(0),
            symbol: "COOP-A".into(),
            tick_size_minor: 5,
            lot_size_units: 10,
            currency_scale: 2,
        }
    }

    #[test]
    fn every_reason_maps_to_a_status_with_its_code() {
        for reason in RejectReason::ALL {
            let status = rejection_status(*reason);
            assert_ne!(status.code(), Code::Ok);
            assert_eq!(status.message(), reason.message());
            assert_eq!(reason_code_of(&status), Some(reason.code()));
            assert!(!status.details().is_empty());
        }
        assert_eq!(
            reason_name(RejectReason::InsufficientCash),
            "INSUFFICIENT_CASH"
        );
    }

    #[test]
    fn prices_and_quantities_name_the_field() {
        let units = units();
        assert_eq!(units.price_ticks("price", "10.25").ok(), Some(205));
        let off_tick = units.price_ticks("price", "10.26").unwrap_err();
        assert_eq!(off_tick.code(), Code::InvalidArgument);
        assert_eq!(
            off_tick.message(),
            "price: not a whole number of ticks (tick 0.05)"
        );
        assert_eq!(
            units.lots("quantity", "35").unwrap_err().message(),
            "quantity: not a whole number of lots (lot 10 units)"
        );
        assert_eq!(
            units.lots("quantity", "-10").unwrap_err().message(),
            "quantity: must be positive"
        );
        assert!(units
            .lots("quantity", "ten")
            .unwrap_err()
            .message()
            .starts_with("quantity: "));
        assert!(units
            .price_ticks("price", "")
            .unwrap_err()
            .message()
            .starts_with("price: required"));
        assert_eq!(
            cash_minor("amount", "1.001", 2).unwrap_err().message(),
            "amount: finer than the currency's minor unit (0.01)"
        );
        // More digits than a Decimal holds must be refused, not rounded.
        assert!(cash_minor("amount", "1.00000000000000000000000000001", 2).is_err());
    }

    #[test]
    fn decimal_text_keeps_the_currency_decimals() {
        let units = units();
        assert_eq!(units.price_text(205), "10.25");
        assert_eq!(units.price_text(200), "10.00");
        assert_eq!(units.quantity_text(3), "30");
        assert_eq!(cash_text(u64::MAX, 2), "184467440737095516.15");
        assert_eq!(rate_text(500), "0.05");
        assert_eq!(rate_bp("return_cap", "0.05").ok(), Some(500));
        assert!(rate_bp("return_cap", "1.5").is_err());
    }

    #[test]
    fn command_ids_depend_on_participant_and_request() {
        let first = command_id(ParticipantId(1), "a");
        assert_eq!(first, command_id(ParticipantId(1), "a"));
        assert_ne!(first, command_id(ParticipantId(2), "a"));
        assert_ne!(first, command_id(ParticipantId(1), "b"));
        assert_eq!(
            checked_command_id(ParticipantId(1), "").unwrap_err().code(),
            Code::InvalidArgument
        );
    }

    #[test]
    fn years_are_civil_years() {
        assert_eq!(year_of(0), 1970);
        // 2024-02-29T12:00:00Z and 2023-12-31T23:59:59Z.
        assert_eq!(year_of(1_709_208_000 * 1_000_000_000), 2024);
        assert_eq!(year_of(1_704_067_199 * 1_000_000_000), 2023);
    }
}
