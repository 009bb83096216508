//! The market's configurable rules and bounds. Every number DOMAIN.md names is a default here,
//! never a constant buried in the code that enforces it.

use serde::{Deserialize, Serialize};

use crate::command::InstrumentKind;

/// Basis points in one whole (100 %).
pub const BP_ONE: u64 = 10_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketConfig {
    /// Decimal places of the market's currency (2 for cents).
    pub currency_scale: u32,
    /// Default holding cap: one contributor's share of units outstanding, in basis points.
    pub holding_cap_bp_default: u32,
    /// Default lock-in of Co-operative Investment Plan shares, in whole years to the anniversary.
    pub cip_lock_in_years_default: u32,
    /// Non-refundable tax credit on primary purchases, per kind of social investment.
    pub tax_credit_bp: TaxCreditRates,

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
    /// Longest resolution title, in bytes.
    pub resolution_title_bytes_max: u32,
    /// Resolutions the market records over its life.
    pub resolutions_max: u32,
    /// Resolutions one organization may have open at once.
    pub resolutions_open_per_organization_max: u32,
    /// Withdrawal requests pending across the market.
    pub withdrawals_pending_max: u32,
    /// Withdrawal requests one holder may have pending in one instrument.
    pub withdrawals_pending_per_holding_max: u32,

    // The social economy (DOMAIN.md, "Surplus rules", "Vouchers", "Time credits").
    /// Share of a declared surplus moved to the organization's indivisible reserve.
    pub surplus_reserve_bp: u32,
    /// Share of a declared surplus moved to the social economy fund.
    pub surplus_fund_bp: u32,
    /// Share of a declared surplus that buys units of the collective capital pool.
    pub surplus_pool_bp: u32,
    /// Service packages the market records over its life.
    pub service_packages_max: u32,
    /// Vouchers issued over the market's life (each leaves one byte of status behind, so that
    /// a second redemption is told why it is refused).
    pub vouchers_issued_max: u64,
    /// Vouchers issued and neither redeemed nor expired, across the market.
    pub vouchers_open_max: u32,
    /// Longest validity of a voucher, in days from its issue.
    pub voucher_validity_days_max: u32,
    /// Most time credits (minutes) one command may record, move, spend, donate or grant.
    pub time_credit_minutes_per_command_max: u64,
    /// Service categories one organization may be accredited for.
    pub accredited_categories_max: u32,
    /// Most vouchers expired, bonds repaid and resolutions closed by one clock tick; the rest
    /// wait for the next tick, so that no tick stalls the engine thread.
    pub clock_actions_per_tick_max: u32,
}

/// Tax-credit rates in basis points, one per kind of social investment the paper names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxCreditRates {
    pub community_share: u32,
    pub community_bond: u32,
    pub community_investment_note: u32,
    /// Co-operative Investment Plan shares (which also carry the CIP lock-in).
    pub cooperative_investment_plan: u32,
}

impl Default for TaxCreditRates {
    /// 30 % for every kind (DOMAIN.md: "Other social investments also earn 30 %").
    fn default() -> Self {
        TaxCreditRates {
            community_share: 3_000,
            community_bond: 3_000,
            community_investment_note: 3_000,
            cooperative_investment_plan: 3_000,
        }
    }
}

impl TaxCreditRates {
    pub fn for_kind(&self, kind: InstrumentKind, cooperative_investment_plan: bool) -> u32 {
        match kind {
            _ if cooperative_investment_plan => self.cooperative_investment_plan,
            InstrumentKind::CommunityShare => self.community_share,
            InstrumentKind::CommunityBond => self.community_bond,
            InstrumentKind::CommunityInvestmentNote => self.community_investment_note,
        }
    }
}

impl Default for MarketConfig {
    fn default() -> Self {
        MarketConfig {
            currency_scale: 2,
            holding_cap_bp_default: 1_000,
            cip_lock_in_years_default: 5,
            tax_credit_bp: TaxCreditRates::default(),
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
            resolution_title_bytes_max: 500,
            resolutions_max: 1_000_000,
            resolutions_open_per_organization_max: 64,
            withdrawals_pending_max: 1_000_000,
            withdrawals_pending_per_holding_max: 16,
            surplus_reserve_bp: 1_500,
            surplus_fund_bp: 300,
            surplus_pool_bp: 1_000,
            service_packages_max: 100_000,
            vouchers_issued_max: 100_000_000,
            vouchers_open_max: 10_000_000,
            voucher_validity_days_max: 3_660,
            time_credit_minutes_per_command_max: 7 * 24 * 60,
            accredited_categories_max: 64,
            clock_actions_per_tick_max: 4_096,
        }
    }
}
