//! Instruments and their capped-return rules: the price band, the distribution cap and the
//! holding cap (DOMAIN.md, "Instruments").

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::book::Book;
use crate::command::{InstrumentId, InstrumentSpec, OfferingId, ParticipantId, Timestamp};
use crate::config::{BP_ONE, YEAR_NS};
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
    pub lock_in_ns: u64,
    pub tax_credit_bp: u32,
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
    /// Start of the current distribution period: issue time, then each distribution's time.
    pub distribution_period_start: Timestamp,
    pub open_offering: Option<OfferingId>,
}

impl Instrument {
    pub(crate) fn new(id: InstrumentId, spec: InstrumentSpec, terms: Terms, price_levels_max: u32) -> Instrument {
        let status = InstrumentStatus {
            trading_open: false,
            matured: false,
            lots_issued: 0,
            lots_retired: 0,
            distribution_period_start: spec.issue_time,
            open_offering: None,
        };
        let mut book = Book::new(price_levels_max);
        // Index the band as it stands near issue (up to twice par), so that ordinary trading
        // rarely grows the ladder, without committing memory for a very fine tick up front.
        let initial_prices = spec.par_ticks.saturating_mul(2).clamp(64, INITIAL_PRICE_LEVELS_MAX);
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

    pub(crate) fn restore(id: InstrumentId, spec: InstrumentSpec, terms: Terms, status: InstrumentStatus, price_levels_max: u32) -> Instrument {
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
        price_ticks.checked_mul(lots)?.checked_mul(self.terms.tick_value_minor)
    }

    /// The capped-return ceiling at `now`: par × (1 + cap × years since issue), rounded down to
    /// a tick so that no trade can exceed the cap, and never above what the book can index.
    pub fn ceiling_ticks(&self, now: Timestamp) -> u64 {
        ceiling_ticks(self.spec.par_ticks, self.spec.return_cap_bp, now.saturating_sub(self.spec.issue_time))
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

    /// Largest distribution per lot allowed at `now`: par × cap × the period since the last one.
    pub fn distribution_cap_per_lot_minor(&self, now: Timestamp) -> u64 {
        let period_ns = now.saturating_sub(self.status.distribution_period_start);
        accrued(self.par_per_lot_minor(), self.spec.return_cap_bp, period_ns)
    }

    /// Most lots one contributor may be exposed to, with `base_lots` outstanding.
    pub fn holding_cap_lots(&self, base_lots: u64) -> u64 {
        (u128::from(base_lots) * u128::from(self.terms.holding_cap_bp) / u128::from(BP_ONE)) as u64
    }

    /// When units acquired at `now` may first be sold, if the instrument has a lock-in.
    pub fn lock_until(&self, now: Timestamp) -> Option<Timestamp> {
        (self.terms.lock_in_ns > 0).then(|| now.saturating_add(self.terms.lock_in_ns))
    }
}

/// par + par × cap × elapsed / year, rounded down.
pub fn ceiling_ticks(par_ticks: u64, return_cap_bp: u32, elapsed_ns: u64) -> u64 {
    par_ticks.saturating_add(accrued(par_ticks, return_cap_bp, elapsed_ns))
}

/// amount × cap × elapsed / year, rounded down, saturating.
pub fn accrued(amount: u64, cap_bp: u32, elapsed_ns: u64) -> u64 {
    // The full product can need 160 bits (a lot's par in minor units reaches 2^64), so multiply
    // by the high and low 32 bits of `elapsed_ns` apart and divide each exactly, carrying the
    // remainders: every intermediate fits in a u128 and the quotient is the exact floor.
    let rate = u128::from(amount) * u128::from(cap_bp);
    let divisor = u128::from(BP_ONE) * u128::from(YEAR_NS);
    let high = rate * u128::from(elapsed_ns >> 32);
    let low = rate * u128::from(elapsed_ns & 0xFFFF_FFFF);
    let carried = (((high % divisor) << 32) + low % divisor) / divisor;
    let accrued = ((high / divisor) << 32) + low / divisor + carried;
    u64::try_from(accrued).unwrap_or(u64::MAX)
}

/// A primary offering of new units at par.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offering {
    pub id: OfferingId,
    pub instrument: InstrumentId,
    pub issuer: ParticipantId,
    pub lots: u64,
    pub minimum_lots: u64,
    pub price_ticks: u64,
    pub subscribed_lots: u64,
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
    fn ceiling_accrues_the_cap_linearly_and_rounds_down() {
        // par 1000 ticks, 5 %: after one year 1050, after half a year 1025, at issue 1000.
        assert_eq!(ceiling_ticks(1000, 500, 0), 1000);
        assert_eq!(ceiling_ticks(1000, 500, YEAR_NS), 1050);
        assert_eq!(ceiling_ticks(1000, 500, YEAR_NS / 2), 1025);
        // 1000 × 5 % × 1/365 = 0.137 ticks: rounds down to par.
        assert_eq!(ceiling_ticks(1000, 500, YEAR_NS / 365), 1000);
    }
}
