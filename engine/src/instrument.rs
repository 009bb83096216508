//! Instruments and their capped-return rules: the accrued value that bounds prices, the
//! distribution cap and the holding cap (DOMAIN.md, "Instruments").
//!
//! The rule, in one place: an instrument's **accrued value** per unit is par plus the return cap
//! accrued since its first issue (years read actual/actual, `calendar.rs`) less the distributions
//! per unit already paid. No trade may pay a seller more than it (the ceiling is the accrued value
//! rounded down to a tick), no distribution may take the total paid past the accrued return
//! (rounded down to a minor unit), and a follow-on offering is priced at it (rounded up to a
//! tick), so no new holder gets an instant gain. Every rounding goes against the holder, by less
//! than one tick or minor unit.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::book::Book;
use crate::calendar;
use crate::command::{InstrumentId, InstrumentSpec, OfferingId, ParticipantId, Timestamp};
use crate::config::BP_ONE;
use crate::ledger::Holding;

/// Price levels a new book indexes before any order arrives; beyond this it grows on demand.
const INITIAL_PRICE_LEVELS_MAX: u64 = 1 << 16;

/// A listed instrument, with its book and its register of holders.
#[derive(Clone, Debug)]
pub struct Instrument {
    pub id: InstrumentId,
    pub spec: InstrumentSpec,
    pub terms: Terms,
    pub status: InstrumentStatus,
    pub(crate) book: Book,
    pub(crate) holdings: FxHashMap<ParticipantId, Holding>,
    /// The last (time, ceiling) computed: commands of one batch share a time, so the band is
    /// computed once per batch rather than once per order. Not part of the state.
    /// `None` until the first computation: no time can stand for "nothing cached", since every
    /// time, `Timestamp::MAX` included, is one the engine may be given.
    ceiling_cache: Option<(Timestamp, u64)>,
}

/// The spec's defaults resolved against the market config at listing, plus derived units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terms {
    pub holding_cap_bp: u32,
    /// Whole years, to the anniversary, before acquired units may be sold or withdrawn.
    pub lock_in_years: u32,
    pub tax_credit_bp: u32,
    /// Lowest price an order may carry, in ticks: par for withdrawable shares.
    pub price_floor_ticks: u64,
    /// Cash minor units per tick per lot: notional = price_ticks × lots × tick_value_minor.
    pub tick_value_minor: u64,
    /// Highest price a book can index, in ticks.
    pub price_ticks_max: u64,
}

/// What changes over an instrument's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstrumentStatus {
    pub trading_open: bool,
    pub matured: bool,
    pub lots_issued: u64,
    pub lots_retired: u64,
    /// When the first units were issued: the accrued value accrues from here. Set by the engine
    /// when the first offering closes with units issued; never by the lister.
    pub first_issue_time: Option<Timestamp>,
    /// Distributions paid per lot since the first issue, in cash minor units.
    pub distributed_per_lot_minor: u64,
    pub open_offering: Option<OfferingId>,
    /// Withdrawable shares: the issuer has suspended withdrawals.
    pub withdrawals_suspended: bool,
}

impl Instrument {
    pub(crate) fn new(
        id: InstrumentId,
        spec: InstrumentSpec,
        terms: Terms,
        price_levels_max: u32,
    ) -> Instrument {
        let status = InstrumentStatus {
            trading_open: false,
            matured: false,
            lots_issued: 0,
            lots_retired: 0,
            first_issue_time: None,
            distributed_per_lot_minor: 0,
            open_offering: None,
            withdrawals_suspended: false,
        };
        let mut book = Book::new(price_levels_max);
        // Index the band as it stands near issue (up to twice par), so that ordinary trading
        // rarely grows the ladder, without committing memory for a very fine tick up front.
        let initial_prices = spec
            .par_ticks
            .saturating_mul(2)
            .clamp(64, INITIAL_PRICE_LEVELS_MAX);
        book.bids.reserve_prices(initial_prices);
        book.asks.reserve_prices(initial_prices);
        Instrument {
            id,
            spec,
            terms,
            status,
            book,
            holdings: FxHashMap::default(),
            ceiling_cache: None,
        }
    }

    pub(crate) fn restore(
        id: InstrumentId,
        spec: InstrumentSpec,
        terms: Terms,
        status: InstrumentStatus,
        price_levels_max: u32,
    ) -> Instrument {
        let mut instrument = Instrument::new(id, spec, terms, price_levels_max);
        instrument.status = status;
        instrument
    }

    pub fn book(&self) -> &Book {
        &self.book
    }

    pub fn holding(&self, holder: ParticipantId) -> Option<&Holding> {
        self.holdings.get(&holder)
    }

    /// Holders in participant order (deterministic, whatever the map's history).
    pub fn holders_sorted(&self) -> Vec<ParticipantId> {
        let mut holders: Vec<ParticipantId> = self.holdings.keys().copied().collect();
        holders.sort_unstable();
        holders
    }

    pub fn lots_outstanding(&self) -> u64 {
        self.status.lots_issued - self.status.lots_retired
    }

    /// Par value of one lot, in cash minor units (checked at listing not to overflow).
    pub fn par_per_lot_minor(&self) -> u64 {
        self.spec.par_ticks * self.terms.tick_value_minor
    }

    /// Cash for `lots` at `price_ticks`, or `None` if it does not fit the ledger.
    #[inline]
    pub fn notional_minor(&self, price_ticks: u64, lots: u64) -> Option<u64> {
        price_ticks
            .checked_mul(lots)?
            .checked_mul(self.terms.tick_value_minor)
    }

    /// The return accrued per lot since the first issue, in cash minor units, before any
    /// distribution: par × cap × years since the first issue (actual/actual), rounded down.
    pub fn accrued_return_per_lot_minor(&self, now: Timestamp) -> u64 {
        self.accrued_return(now, calendar::accrue)
    }

    /// The return accrued per lot since the first issue with the given rounding; nothing before it.
    #[inline]
    fn accrued_return(
        &self,
        now: Timestamp,
        accrue: impl Fn(u64, u32, Timestamp, Timestamp) -> u64,
    ) -> u64 {
        self.status.first_issue_time.map_or(0, |first_issue| {
            accrue(
                self.par_per_lot_minor(),
                self.spec.return_cap_bp,
                first_issue,
                now,
            )
        })
    }

    /// Par plus an accrued return less the distributions per lot already paid.
    fn value_per_lot_minor(&self, accrued_return: u64) -> u64 {
        let undistributed = accrued_return.saturating_sub(self.status.distributed_per_lot_minor);
        self.par_per_lot_minor().saturating_add(undistributed)
    }

    /// The accrued value of one lot at `now`, in cash minor units: par plus the accrued return
    /// less the distributions per lot paid (never below par, since distributions are capped by
    /// the accrued return). Saturates at the ledger's limit.
    pub fn accrued_value_per_lot_minor(&self, now: Timestamp) -> u64 {
        self.value_per_lot_minor(self.accrued_return_per_lot_minor(now))
    }

    /// The highest price a trade may carry at `now`: the accrued value rounded down to a tick,
    /// and never above what the book can index.
    pub fn ceiling_ticks(&self, now: Timestamp) -> u64 {
        (self.accrued_value_per_lot_minor(now) / self.terms.tick_value_minor)
            .min(self.terms.price_ticks_max)
    }

    /// As `ceiling_ticks`, remembering the answer for the rest of the batch.
    #[inline]
    pub(crate) fn ceiling_ticks_cached(&mut self, now: Timestamp) -> u64 {
        match self.ceiling_cache {
            Some((cached_at, ceiling)) if cached_at == now => ceiling,
            _ => {
                let ceiling = self.ceiling_ticks(now);
                self.ceiling_cache = Some((now, ceiling));
                ceiling
            }
        }
    }

    /// Forgets the cached ceiling: the accrued value changed within the batch (first issue,
    /// distribution).
    pub(crate) fn accrued_value_changed(&mut self) {
        self.ceiling_cache = None;
    }

    /// The price of new units offered at `now`: par before the first issue, then the accrued
    /// value rounded up, to a minor unit and then to a tick (so the ceiling, rounded down, never
    /// lets a new holder sell above what it paid).
    pub fn offering_price_ticks(&self, now: Timestamp) -> u64 {
        // Before the first issue nothing has accrued and par is a whole number of ticks.
        self.value_per_lot_minor(self.accrued_return(now, calendar::accrue_rounded_up))
            .div_ceil(self.terms.tick_value_minor)
    }

    /// Largest distribution per lot allowed at `now`: the return accrued since the first issue
    /// less what was already distributed.
    pub fn distribution_cap_per_lot_minor(&self, now: Timestamp) -> u64 {
        self.accrued_return_per_lot_minor(now)
            .saturating_sub(self.status.distributed_per_lot_minor)
    }

    /// Most lots one contributor may hold with `base_lots` outstanding, rounded down to a lot.
    pub fn holding_cap_lots(&self, base_lots: u64) -> u64 {
        holding_cap_lots(base_lots, self.terms.holding_cap_bp)
    }

    /// When units acquired at `now` may first be sold or withdrawn: the lock-in's anniversary.
    pub fn lock_until(&self, now: Timestamp) -> Option<Timestamp> {
        (self.terms.lock_in_years > 0).then(|| calendar::anniversary(now, self.terms.lock_in_years))
    }
}

/// `base_lots × cap`, rounded down to a whole lot.
pub fn holding_cap_lots(base_lots: u64, holding_cap_bp: u32) -> u64 {
    (u128::from(base_lots) * u128::from(holding_cap_bp) / u128::from(BP_ONE)) as u64
}

/// A primary offering of new units: at par for the first issue, at the accrued value (rounded
/// up to a tick) for a follow-on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offering {
    pub id: OfferingId,
    pub instrument: InstrumentId,
    pub issuer: ParticipantId,
    pub lots: u64,
    pub minimum_lots: u64,
    pub price_ticks: u64,
    pub subscribed_lots: u64,
    /// Lots issued at the close (after any scale-back); zero while open or if the minimum was
    /// not met.
    pub issued_lots: u64,
    pub open: bool,
    /// Subscriptions in arrival order; one contributor may subscribe several times.
    pub subscriptions: Vec<Subscription>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub contributor: ParticipantId,
    pub lots: u64,
    pub cash_reserved_minor: u64,
}

/// A non-refundable tax credit earned by a primary purchase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxCredit {
    pub contributor: ParticipantId,
    pub instrument: InstrumentId,
    pub time: Timestamp,
    pub purchase_minor: u64,
    pub credit_minor: u64,
    pub rate_bp: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holding_cap_rounds_down_to_a_lot() {
        assert_eq!(holding_cap_lots(100, 1_000), 10);
        assert_eq!(holding_cap_lots(109, 1_000), 10);
        assert_eq!(holding_cap_lots(9, 1_000), 0);
        assert_eq!(holding_cap_lots(u64::MAX, 10_000), u64::MAX);
    }
}
