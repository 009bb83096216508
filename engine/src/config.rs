//! The market's configurable rules and bounds. Every number DOMAIN.md names is a default here,
//! never a constant buried in the code that enforces it.

use serde::{Deserialize, Serialize};

/// Nanoseconds in the 365-day year used for accrual of return caps and lock-in periods.
pub const YEAR_NS: u64 = 365 * 24 * 3600 * 1_000_000_000;

/// Basis points in one whole (100 %).
pub const BP_ONE: u64 = 10_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketConfig {
    /// Decimal places of the market's currency (2 for cents).
    pub currency_scale: u32,
    /// Default holding cap: one contributor's share of units outstanding, in basis points.
    pub holding_cap_bp_default: u32,
    /// Default lock-in of Co-operative Investment Plan shares.
    pub cip_lock_in_ns_default: u64,
    /// Default tax credit on purchases of Co-operative Investment Plan shares, basis points.
    pub cip_tax_credit_bp_default: u32,

    // Bounds. Exceeding one is a clear rejection, never unbounded growth.
    pub participants_max: u32,
    pub instruments_max: u32,
    /// Resting orders across all books.
    pub orders_max: u32,
    /// Resting orders in one instrument's book.
    pub orders_per_book_max: u32,
    /// Price levels one book can index: prices are accepted in `1..price_levels_max` ticks.
    pub price_levels_max: u32,
    /// Largest quantity of one order or subscription, in lots.
    pub order_lots_max: u64,
    /// Subscriptions one offering can hold.
    pub subscriptions_per_offering_max: u32,
    /// Recent command ids (with a digest of each command and its outcome) remembered for
    /// idempotent retries, per participant: each participant's last half of this many are always
    /// remembered, whatever other participants do, and at most this many (they are forgotten a
    /// half at a time).
    pub command_ids_per_participant_max: u32,
    /// Credentials (bearer tokens) the market records over its life, live or revoked.
    pub credentials_max: u32,
    /// Live credentials one participant may hold at once.
    pub credentials_per_participant_max: u32,
    /// Longest participant name, in bytes.
    pub name_bytes_max: u32,
}

impl Default for MarketConfig {
    fn default() -> Self {
        MarketConfig {
            currency_scale: 2,
            holding_cap_bp_default: 1_000,
            cip_lock_in_ns_default: 5 * YEAR_NS,
            cip_tax_credit_bp_default: 3_000,
            participants_max: 10_000_000,
            instruments_max: 100_000,
            orders_max: 10_000_000,
            orders_per_book_max: 1_000_000,
            price_levels_max: 1 << 22,
            order_lots_max: 1_000_000_000,
            subscriptions_per_offering_max: 1_000_000,
            command_ids_per_participant_max: 1 << 18,
            credentials_max: 10_000_000,
            credentials_per_participant_max: 16,
            name_bytes_max: 200,
        }
    }
}
