//! What the history read model stores, and under which keys. Keys are big-endian so that
//! RocksDB's byte order is the order of participants, instruments, times and sequence numbers;
//! values are postcard.
//!
//! | prefix | key after the prefix | value |
//! |---|---|---|
//! | `o` | participant, placed time, order | `OrderHistory` |
//! | `r` | order, while it rests | participant, placed time (finds `o`) |
//! | `e` | participant, time, sequence, index | `Entry` (events naming it, cash movements) |
//! | `x` | instrument, time, sequence, index | `PublicTrade` |
//! | `b` | instrument, interval, start | `Bar` |
//! | `s` | participant, year | `Statement` |
//! | `k` | participant | last cash balance and reservations |
//! | `f` | offering | issuer, instrument |
//! | `n` | instrument | issuer |
//! | `m` | `through` | the last sequence indexed and the chain hash after it |

use std::collections::BTreeMap;

use mutua_engine::{
    CancelReason, Event, InstrumentId, OrderId, ParticipantId, Side, TimeInForce, Timestamp,
};
use serde::{Deserialize, Serialize};

pub const ORDERS: u8 = b'o';
pub const ORDER_REFS: u8 = b'r';
pub const ENTRIES: u8 = b'e';
pub const TRADES: u8 = b'x';
pub const BARS: u8 = b'b';
pub const STATEMENTS: u8 = b's';
pub const BALANCES: u8 = b'k';
pub const OFFERINGS: u8 = b'f';
pub const ISSUERS: u8 = b'n';
pub const META_THROUGH: &[u8] = b"mthrough";

/// Fills kept inside an order's record; the rest are listed from the participant's entries.
pub const FILLS_KEPT: usize = 32;

/// A key: a prefix byte and big-endian parts.
#[derive(Default)]
pub struct Key(pub Vec<u8>);

impl Key {
    pub fn new(prefix: u8) -> Key {
        let mut bytes = Vec::with_capacity(32);
        bytes.push(prefix);
        Key(bytes)
    }
    pub fn u8(mut self, value: u8) -> Key {
        self.0.push(value);
        self
    }
    pub fn u32(mut self, value: u32) -> Key {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }
    pub fn u64(mut self, value: u64) -> Key {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }
    /// A year in key order (offset so that negative years sort first).
    pub fn year(self, year: i32) -> Key {
        self.u32((year as u32) ^ 0x8000_0000)
    }
}

/// Where an order stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderState {
    /// Accepted and not yet resting, filled or cancelled: only between the events of one record.
    Working,
    Resting,
    Filled,
    Cancelled(CancelReason),
}

/// One fill of one order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    pub sequence: u64,
    pub time: Timestamp,
    pub price_ticks: u64,
    pub lots: u64,
    pub notional_minor: u64,
    pub maker: bool,
}

/// An order in every state it reaches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderHistory {
    pub order: OrderId,
    pub owner: ParticipantId,
    pub instrument: InstrumentId,
    pub side: Side,
    pub price_ticks: u64,
    pub lots: u64,
    pub time_in_force: TimeInForce,
    pub request_id: String,
    pub placed_sequence: u64,
    pub placed_at: Timestamp,
    pub state: OrderState,
    pub filled_lots: u64,
    pub filled_notional_minor: u128,
    pub fill_count: u64,
    pub reduced_lots: u64,
    pub remaining_lots: u64,
    pub cancelled_lots: u64,
    pub updated_sequence: u64,
    pub updated_at: Timestamp,
    /// The first `FILLS_KEPT` fills.
    pub fills: Vec<Fill>,
}

/// One line of a participant's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub sequence: u64,
    pub time: Timestamp,
    pub what: EntryKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// An event that names the participant.
    Event(Event),
    /// The participant's cash balance or reservations changed.
    Cash {
        /// The command's kind (`PlaceOrder`, `Deposit`, ...).
        command: String,
        before_minor: u64,
        after_minor: u64,
        reserved_minor: u64,
        /// Private to the participant: the record's events withhold its cash.
        withheld: bool,
    },
}

/// One trade as open data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicTrade {
    pub sequence: u64,
    pub time: Timestamp,
    /// Always an `Event::Trade`.
    pub trade: Event,
}

/// Bar widths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Interval {
    Minute = 1,
    Hour = 2,
    Day = 3,
}

impl Interval {
    pub const ALL: [Interval; 3] = [Interval::Minute, Interval::Hour, Interval::Day];

    pub fn nanos(self) -> u64 {
        const MINUTE: u64 = 60_000_000_000;
        match self {
            Interval::Minute => MINUTE,
            Interval::Hour => 60 * MINUTE,
            Interval::Day => 24 * 60 * MINUTE,
        }
    }

    /// The start of the interval that holds `time`.
    pub fn start(self, time: Timestamp) -> Timestamp {
        time - time % self.nanos()
    }
}

/// Open, high, low, close and volume of one interval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bar {
    /// The interval's start.
    pub start: Timestamp,
    pub open_ticks: u64,
    pub high_ticks: u64,
    pub low_ticks: u64,
    pub close_ticks: u64,
    pub lots: u128,
    pub notional_minor: u128,
    pub trades: u64,
}

impl Bar {
    pub fn first(start: Timestamp, price_ticks: u64, lots: u64, notional_minor: u64) -> Bar {
        Bar {
            start,
            open_ticks: price_ticks,
            high_ticks: price_ticks,
            low_ticks: price_ticks,
            close_ticks: price_ticks,
            lots: u128::from(lots),
            notional_minor: u128::from(notional_minor),
            trades: 1,
        }
    }

    pub fn add(&mut self, price_ticks: u64, lots: u64, notional_minor: u64) {
        self.high_ticks = self.high_ticks.max(price_ticks);
        self.low_ticks = self.low_ticks.min(price_ticks);
        self.close_ticks = price_ticks;
        self.lots += u128::from(lots);
        self.notional_minor += u128::from(notional_minor);
        self.trades += 1;
    }
}

/// The statement's line kinds. Codes are stored: never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LineKind {
    CashDeposited = 1,
    CashWithdrawn = 2,
    Purchases = 3,
    Sales = 4,
    Subscriptions = 5,
    OfferingProceeds = 6,
    DistributionsReceived = 7,
    DistributionsPaid = 8,
    ParRepaid = 9,
    MaturityRepaid = 10,
    UnitsSoldBack = 11,
    UnitsBoughtBack = 12,
    TaxCredits = 13,
    TaxCreditPurchases = 14,
    VouchersFunded = 15,
    VoucherCoPayments = 16,
    VoucherSubsidies = 17,
    VouchersReceived = 18,
    VouchersUsed = 19,
    VouchersServed = 20,
    VouchersExpiredFunded = 21,
    VouchersExpiredReceived = 22,
    ServiceValueRedeemed = 23,
    ServiceValueProvided = 24,
    TimeCreditsReceived = 25,
    TimeCreditsGiven = 26,
    PoolContributed = 27,
    PoolLoansRepaid = 28,
    NettingPaid = 29,
    NettingReceived = 30,
    NettingLoans = 31,
    SurplusDeclared = 32,
    SurplusToReserve = 33,
    SurplusToFund = 34,
    SurplusToPool = 35,
}

impl LineKind {
    /// The name a statement shows.
    pub fn name(self) -> &'static str {
        match self {
            LineKind::CashDeposited => "cash_deposited",
            LineKind::CashWithdrawn => "cash_withdrawn",
            LineKind::Purchases => "purchases",
            LineKind::Sales => "sales",
            LineKind::Subscriptions => "subscriptions",
            LineKind::OfferingProceeds => "offering_proceeds",
            LineKind::DistributionsReceived => "distributions_received",
            LineKind::DistributionsPaid => "distributions_paid",
            LineKind::ParRepaid => "par_repaid",
            LineKind::MaturityRepaid => "maturity_repaid",
            LineKind::UnitsSoldBack => "units_sold_back",
            LineKind::UnitsBoughtBack => "units_bought_back",
            LineKind::TaxCredits => "tax_credits",
            LineKind::TaxCreditPurchases => "tax_credit_purchases",
            LineKind::VouchersFunded => "vouchers_funded",
            LineKind::VoucherCoPayments => "voucher_co_payments",
            LineKind::VoucherSubsidies => "voucher_subsidies",
            LineKind::VouchersReceived => "vouchers_received",
            LineKind::VouchersUsed => "vouchers_used",
            LineKind::VouchersServed => "vouchers_served",
            LineKind::VouchersExpiredFunded => "vouchers_expired_funded",
            LineKind::VouchersExpiredReceived => "vouchers_expired_received",
            LineKind::ServiceValueRedeemed => "service_value_redeemed",
            LineKind::ServiceValueProvided => "service_value_provided",
            LineKind::TimeCreditsReceived => "time_credits_received",
            LineKind::TimeCreditsGiven => "time_credits_given",
            LineKind::PoolContributed => "pool_contributed",
            LineKind::PoolLoansRepaid => "pool_loans_repaid",
            LineKind::NettingPaid => "netting_paid",
            LineKind::NettingReceived => "netting_received",
            LineKind::NettingLoans => "netting_loans",
            LineKind::SurplusDeclared => "surplus_declared",
            LineKind::SurplusToReserve => "surplus_to_reserve",
            LineKind::SurplusToFund => "surplus_to_fund",
            LineKind::SurplusToPool => "surplus_to_pool",
        }
    }

    /// Lines only the participant itself may see (a voucher's split).
    pub fn private(self) -> bool {
        matches!(
            self,
            LineKind::VoucherCoPayments | LineKind::VoucherSubsidies
        )
    }

    /// Lines whose quantity is minutes of time credit rather than units of an instrument.
    pub fn in_minutes(self) -> bool {
        matches!(
            self,
            LineKind::TimeCreditsReceived | LineKind::TimeCreditsGiven
        )
    }
}

/// A sum of like events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub count: u64,
    /// Lots of the line's instrument, or minutes of time credit.
    pub quantity: u128,
    pub amount_minor: u128,
    /// Whether the line has a quantity and an amount at all.
    pub has_quantity: bool,
    pub has_amount: bool,
}

/// One participant's calendar year.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub opening_minor: u64,
    pub closing_minor: u64,
    /// Lines by kind and instrument (0 for lines about no instrument).
    pub lines: BTreeMap<(LineKind, u32), Line>,
}

impl Statement {
    pub fn opening(balance_minor: u64) -> Statement {
        Statement {
            opening_minor: balance_minor,
            closing_minor: balance_minor,
            lines: BTreeMap::new(),
        }
    }

    /// Adds one event to a line.
    pub fn add(
        &mut self,
        kind: LineKind,
        instrument: Option<InstrumentId>,
        quantity: Option<u64>,
        amount_minor: Option<u64>,
    ) {
        let line = self
            .lines
            .entry((kind, instrument.map_or(0, |id| id.0)))
            .or_default();
        line.count += 1;
        if let Some(quantity) = quantity {
            line.quantity += u128::from(quantity);
            line.has_quantity = true;
        }
        if let Some(amount) = amount_minor {
            line.amount_minor += u128::from(amount);
            line.has_amount = true;
        }
    }
}
