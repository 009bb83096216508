//! The primary market: an issuer offers new units (at par for the first issue, at the accrued
//! value for a follow-on), contributors subscribe with reserved cash, and closing allots the
//! subscriptions so that nobody ends above the holding cap of the units then outstanding,
//! releasing the excess at once, then issues them if the minimum is met or releases them all.

use rustc_hash::FxHashMap;

use crate::command::{Ack, Event, InstrumentId, OfferingId, ParticipantId, RejectReason};
use crate::config::BP_ONE;
use crate::instrument::{holding_cap_lots, Offering, Subscription, TaxCredit};
use crate::Engine;

impl Engine {
    pub(crate) fn open_offering(
        &mut self,
        issuer: ParticipantId,
        instrument: InstrumentId,
        lots: u64,
        minimum_lots: u64,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let listed = self
            .instruments
            .get(instrument.0 as usize)
            .ok_or(RejectReason::UnknownInstrument)?;
        if listed.spec.issuer != issuer {
            return Err(RejectReason::NotIssuer);
        }
        self.accredited_organization(issuer)?;
        if lots == 0 {
            return Err(RejectReason::QuantityZero);
        }
        if lots > self.config.order_lots_max {
            return Err(RejectReason::QuantityTooLarge);
        }
        // Par for the first issue, the accrued value for a follow-on: no new holder gets a jump.
        let price_ticks = listed.offering_price_ticks(self.now);
        // The whole offering must be payable, and stay payable as part of the circulating cash.
        listed
            .notional_minor(price_ticks, lots)
            .ok_or(RejectReason::AmountTooLarge)?;
        if listed.status.matured {
            return Err(RejectReason::InstrumentMatured);
        }
        if listed
            .spec
            .maturity_time
            .is_some_and(|maturity| maturity <= self.now)
        {
            return Err(RejectReason::MaturityReached);
        }
        if listed.status.open_offering.is_some() {
            return Err(RejectReason::OfferingAlreadyOpen);
        }
        if minimum_lots == 0 || minimum_lots > lots {
            return Err(RejectReason::OfferingMinimumInvalid);
        }
        let id = OfferingId(self.offerings.len() as u32);
        self.offerings.push(Offering {
            id,
            instrument,
            issuer,
            lots,
            minimum_lots,
            price_ticks,
            subscribed_lots: 0,
            issued_lots: 0,
            open: true,
            subscriptions: Vec::new(),
        });
        self.instruments[instrument.0 as usize].status.open_offering = Some(id);
        events.push(Event::OfferingOpened {
            offering: id,
            instrument,
            issuer,
            lots,
            minimum_lots,
            price_ticks,
        });
        Ok(Ack::Offering(id))
    }

    pub(crate) fn subscribe(
        &mut self,
        contributor: ParticipantId,
        offering: OfferingId,
        lots: u64,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let open = self
            .offerings
            .get(offering.0 as usize)
            .ok_or(RejectReason::UnknownOffering)?;
        let instrument = &self.instruments[open.instrument.0 as usize];
        if lots == 0 {
            return Err(RejectReason::QuantityZero);
        }
        if lots > self.config.order_lots_max {
            return Err(RejectReason::QuantityTooLarge);
        }
        if !open.open {
            return Err(RejectReason::OfferingNotOpen);
        }
        // A suspended issuer's offering takes no new money.
        self.accredited_organization(open.issuer)?;
        let cash_minor = instrument
            .notional_minor(open.price_ticks, lots)
            .ok_or(RejectReason::AmountTooLarge)?;
        if self.participants[contributor.0 as usize].cash.free_minor() < cash_minor {
            return Err(RejectReason::InsufficientCash);
        }
        // The cap is measured against the units outstanding once the whole offering is issued.
        let cap_lots = instrument.holding_cap_lots(instrument.lots_outstanding() + open.lots);
        let exposure = instrument
            .holding(contributor)
            .map_or(0, |h| h.cap_exposure_lots());
        if exposure + lots > cap_lots {
            return Err(RejectReason::HoldingCapExceeded);
        }
        if open.subscribed_lots + lots > open.lots {
            return Err(RejectReason::OfferingOversubscribed);
        }
        if open.subscriptions.len() >= self.config.subscriptions_per_offering_max as usize {
            return Err(RejectReason::SubscriptionsFull);
        }
        let instrument_id = open.instrument;
        self.participants[contributor.0 as usize]
            .cash
            .reserve(cash_minor)?;
        self.instruments[instrument_id.0 as usize]
            .holdings
            .entry(contributor)
            .or_default()
            .subscribed_lots += lots;
        let open = &mut self.offerings[offering.0 as usize];
        open.subscribed_lots += lots;
        open.subscriptions.push(Subscription {
            contributor,
            lots,
            cash_reserved_minor: cash_minor,
        });
        events.push(Event::Subscribed {
            offering,
            contributor,
            lots,
            cash_reserved_minor: cash_minor,
        });
        Ok(Ack::Done)
    }

    pub(crate) fn close_offering(
        &mut self,
        issuer: ParticipantId,
        offering: OfferingId,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let closing = self
            .offerings
            .get(offering.0 as usize)
            .ok_or(RejectReason::UnknownOffering)?;
        if closing.issuer != issuer {
            return Err(RejectReason::NotIssuer);
        }
        if !closing.open {
            return Err(RejectReason::OfferingNotOpen);
        }
        let now = self.now;
        let closing = &mut self.offerings[offering.0 as usize];
        closing.open = false;
        let subscriptions = std::mem::take(&mut closing.subscriptions);
        let (instrument_id, price_ticks, minimum_lots) = (
            closing.instrument,
            closing.price_ticks,
            closing.minimum_lots,
        );
        let instrument = &mut self.instruments[instrument_id.0 as usize];
        instrument.status.open_offering = None;

        // One line per contributor, in the order of its first subscription.
        let mut lines: Vec<Allotment> = Vec::new();
        let mut line_of: FxHashMap<ParticipantId, usize> = FxHashMap::default();
        for subscription in &subscriptions {
            let index = *line_of.entry(subscription.contributor).or_insert_with(|| {
                let held_lots = instrument
                    .holding(subscription.contributor)
                    .map_or(0, |holding| holding.lots);
                lines.push(Allotment {
                    contributor: subscription.contributor,
                    held_lots,
                    subscribed_lots: 0,
                    reserved_minor: 0,
                    allotted_lots: 0,
                });
                lines.len() - 1
            });
            lines[index].subscribed_lots += subscription.lots;
            lines[index].reserved_minor += subscription.cash_reserved_minor;
        }
        let outstanding = instrument.lots_outstanding();
        let allotted_lots = allot(outstanding, instrument.terms.holding_cap_bp, &mut lines);
        // An issuer whose accreditation was suspended while the offering was open collects
        // nothing: the offering fails and every subscription is released.
        let issuer_accredited = {
            let issuer = &self.participants[issuer.0 as usize];
            issuer.accredited && !issuer.suspended
        };
        let issued = allotted_lots >= minimum_lots && issuer_accredited;
        let cap_lots =
            holding_cap_lots(outstanding + allotted_lots, instrument.terms.holding_cap_bp);

        let lock_until = instrument.lock_until(now);
        let tax_credit_bp = instrument.terms.tax_credit_bp;
        let tick_value_minor = instrument.terms.tick_value_minor;
        let mut proceeds_minor = 0;
        if !issued {
            for subscription in &subscriptions {
                self.participants[subscription.contributor.0 as usize]
                    .cash
                    .release(subscription.cash_reserved_minor);
                events.push(Event::SubscriptionReleased {
                    offering,
                    contributor: subscription.contributor,
                    cash_released_minor: subscription.cash_reserved_minor,
                });
            }
        }
        for line in &lines {
            let holding = instrument
                .holdings
                .get_mut(&line.contributor)
                .expect("a subscriber has a holding entry");
            holding.subscribed_lots -= line.subscribed_lots;
            if !issued {
                continue;
            }
            let cash = &mut self.participants[line.contributor.0 as usize].cash;
            // Cannot overflow: the subscription reserved at least this much with checked arithmetic.
            let paid_minor = price_ticks * line.allotted_lots * tick_value_minor;
            let released_minor = line.reserved_minor - paid_minor;
            cash.pay_reserved(paid_minor);
            cash.release(released_minor);
            if line.allotted_lots < line.subscribed_lots {
                events.push(Event::SubscriptionScaledBack {
                    offering,
                    contributor: line.contributor,
                    subscribed_lots: line.subscribed_lots,
                    allotted_lots: line.allotted_lots,
                    cash_released_minor: released_minor,
                    cap_lots,
                });
            }
            if line.allotted_lots == 0 {
                continue;
            }
            holding.receive(line.allotted_lots, now, lock_until);
            proceeds_minor += paid_minor;
            events.push(Event::UnitsIssued {
                offering,
                instrument: instrument_id,
                contributor: line.contributor,
                lots: line.allotted_lots,
                paid_minor,
            });
            if tax_credit_bp > 0 {
                let credit = TaxCredit {
                    contributor: line.contributor,
                    instrument: instrument_id,
                    time: now,
                    purchase_minor: paid_minor,
                    // Rounded down: against the holder, by less than one minor unit.
                    credit_minor: (u128::from(paid_minor) * u128::from(tax_credit_bp)
                        / u128::from(BP_ONE)) as u64,
                    rate_bp: tax_credit_bp,
                };
                self.tax_credits.push(credit);
                events.push(Event::TaxCreditRecorded {
                    contributor: credit.contributor,
                    instrument: instrument_id,
                    purchase_minor: credit.purchase_minor,
                    credit_minor: credit.credit_minor,
                    rate_bp: tax_credit_bp,
                });
            }
        }
        let issued_lots = if issued { allotted_lots } else { 0 };
        if issued {
            instrument.status.lots_issued += allotted_lots;
            self.participants[issuer.0 as usize]
                .cash
                .credit(proceeds_minor);
            if instrument.status.first_issue_time.is_none() {
                instrument.status.first_issue_time = Some(now);
                instrument.accrued_value_changed();
                events.push(Event::FirstIssue {
                    instrument: instrument_id,
                    time: now,
                });
            }
        }
        // Keep the subscriptions as the offering's record.
        let closed = &mut self.offerings[offering.0 as usize];
        closed.subscriptions = subscriptions;
        closed.issued_lots = issued_lots;
        events.push(Event::OfferingClosed {
            offering,
            issued,
            subscribed_lots: issued_lots,
            proceeds_minor,
        });
        Ok(Ack::Done)
    }
}

/// One contributor's subscriptions to an offering, and what it is allotted at the close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Allotment {
    pub contributor: ParticipantId,
    /// Lots held before the close.
    pub held_lots: u64,
    pub subscribed_lots: u64,
    pub reserved_minor: u64,
    pub allotted_lots: u64,
}

/// Allots an offering's subscriptions so that no contributor ends above the holding cap of the
/// units outstanding after the close, scaling back the largest holdings first, and allotting as
/// many lots as that allows. Sets each line's `allotted_lots` and returns their sum.
///
/// Everyone is allotted up to a common level `L` of final holding: `min(subscribed, L − held)`.
/// The level is the highest `L` with `L ≤ cap × (outstanding + allotted(L))`, found exactly by
/// walking the piecewise-linear `allotted(L)` down from the top, segment by segment, in
/// O(n log n) for n contributors.
pub(crate) fn allot(outstanding_lots: u64, holding_cap_bp: u32, lines: &mut [Allotment]) -> u64 {
    let bp = i128::from(holding_cap_bp);
    let bp_one = i128::from(BP_ONE);
    let outstanding = i128::from(outstanding_lots);
    // Below `held` a line takes nothing; between `held` and `held + subscribed` it takes
    // `L − held`; above, all it subscribed. Events: (level, +1 for a line's top, −1 for its bottom).
    let mut points: Vec<(u64, usize, bool)> = Vec::with_capacity(lines.len() * 2);
    // Every line subscribed at least a lot (a subscription of nothing is refused), so its two
    // ends differ.
    for (index, line) in lines.iter().enumerate() {
        points.push((line.held_lots + line.subscribed_lots, index, true));
        points.push((line.held_lots, index, false));
    }
    points.sort_unstable_by(|a, b| b.0.cmp(&a.0));
    // allotted(L) = base + active × L on the segment being looked at.
    let mut base: i128 = lines
        .iter()
        .map(|line| i128::from(line.subscribed_lots))
        .sum();
    let mut active: i128 = 0;
    let mut level: i128 = points.first().map_or(0, |point| i128::from(point.0));
    // Everyone allotted in full, if the cap allows it at the top.
    let fits_in_full = bp_one * level <= bp * (outstanding + base);
    let mut next = 0;
    // Otherwise walk down. Within a segment allotted(L) is linear and continuous at its ends, so
    // a segment's bottom is feasible exactly when the segment's formula finds it so: a level
    // that moves on to the next segment needs no check of its own.
    while !fits_in_full {
        // Take every event at this level, then look at the segment below it.
        while next < points.len() && i128::from(points[next].0) == level {
            let (_, index, top) = points[next];
            let (held, subscribed) = (
                i128::from(lines[index].held_lots),
                i128::from(lines[index].subscribed_lots),
            );
            if top {
                base -= held + subscribed;
                active += 1;
            } else {
                base += held;
                active -= 1;
            }
            next += 1;
        }
        let bottom = points.get(next).map_or(0, |point| i128::from(point.0));
        // On [bottom, level): feasible where level × (1 − cap × active) ≤ cap × (outstanding + base).
        let slack = bp_one - bp * active;
        let best = if slack <= 0 {
            level - 1
        } else {
            (bp * (outstanding + base) / slack).min(level - 1)
        };
        if best >= bottom {
            level = best;
            debug_assert!(bp_one * level <= bp * (outstanding + base + active * level));
            break;
        }
        if bottom == 0 && best < 0 {
            level = 0;
            break;
        }
        level = bottom;
    }
    let level = u64::try_from(level.max(0)).unwrap_or(0);
    let mut allotted = 0;
    for line in lines.iter_mut() {
        line.allotted_lots = line
            .subscribed_lots
            .min(level.saturating_sub(line.held_lots));
        allotted += line.allotted_lots;
    }
    allotted
}
