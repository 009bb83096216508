//! The primary market: an issuer offers new units at par, contributors subscribe with reserved
//! cash, and closing either issues every subscription (minimum met) or releases them all.

use crate::command::{Ack, Event, InstrumentId, OfferingId, ParticipantId, RejectReason};
use crate::config::BP_ONE;
use crate::instrument::{Offering, Subscription, TaxCredit};
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
        let listed = self.instruments.get(instrument.0 as usize).ok_or(RejectReason::UnknownInstrument)?;
        if listed.spec.issuer != issuer {
            return Err(RejectReason::NotIssuer);
        }
        if lots == 0 {
            return Err(RejectReason::QuantityZero);
        }
        if lots > self.config.order_lots_max {
            return Err(RejectReason::QuantityTooLarge);
        }
        // The whole offering must be payable, and stay payable as part of the circulating cash.
        listed.notional_minor(listed.spec.par_ticks, lots).ok_or(RejectReason::AmountTooLarge)?;
        if listed.status.matured {
            return Err(RejectReason::InstrumentMatured);
        }
        if listed.status.open_offering.is_some() {
            return Err(RejectReason::OfferingAlreadyOpen);
        }
        if minimum_lots == 0 || minimum_lots > lots {
            return Err(RejectReason::OfferingMinimumInvalid);
        }
        let id = OfferingId(self.offerings.len() as u32);
        let price_ticks = listed.spec.par_ticks;
        self.offerings.push(Offering {
            id,
            instrument,
            issuer,
            lots,
            minimum_lots,
            price_ticks,
            subscribed_lots: 0,
            open: true,
            subscriptions: Vec::new(),
        });
        self.instruments[instrument.0 as usize].status.open_offering = Some(id);
        events.push(Event::OfferingOpened { offering: id, instrument, issuer, lots, minimum_lots, price_ticks });
        Ok(Ack::Offering(id))
    }

    pub(crate) fn subscribe(&mut self, contributor: ParticipantId, offering: OfferingId, lots: u64, events: &mut Vec<Event>) -> Result<Ack, RejectReason> {
        let open = self.offerings.get(offering.0 as usize).ok_or(RejectReason::UnknownOffering)?;
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
        let cash_minor = instrument.notional_minor(open.price_ticks, lots).ok_or(RejectReason::AmountTooLarge)?;
        if self.participants[contributor.0 as usize].cash.free_minor() < cash_minor {
            return Err(RejectReason::InsufficientCash);
        }
        // The cap is measured against the units outstanding once the whole offering is issued.
        let cap_lots = instrument.holding_cap_lots(instrument.lots_outstanding() + open.lots);
        let exposure = instrument.holding(contributor).map_or(0, |h| h.cap_exposure_lots());
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
        self.participants[contributor.0 as usize].cash.reserve(cash_minor)?;
        self.instruments[instrument_id.0 as usize].holdings.entry(contributor).or_default().subscribed_lots += lots;
        let open = &mut self.offerings[offering.0 as usize];
        open.subscribed_lots += lots;
        open.subscriptions.push(Subscription { contributor, lots, cash_reserved_minor: cash_minor });
        events.push(Event::Subscribed { offering, contributor, lots, cash_reserved_minor: cash_minor });
        Ok(Ack::Done)
    }

    pub(crate) fn close_offering(&mut self, issuer: ParticipantId, offering: OfferingId, events: &mut Vec<Event>) -> Result<Ack, RejectReason> {
        let closing = self.offerings.get(offering.0 as usize).ok_or(RejectReason::UnknownOffering)?;
        if closing.issuer != issuer {
            return Err(RejectReason::NotIssuer);
        }
        if !closing.open {
            return Err(RejectReason::OfferingNotOpen);
        }
        let closing = &mut self.offerings[offering.0 as usize];
        closing.open = false;
        let issued = closing.subscribed_lots >= closing.minimum_lots;
        let subscriptions = std::mem::take(&mut closing.subscriptions);
        let (instrument_id, subscribed_lots) = (closing.instrument, closing.subscribed_lots);
        let instrument = &mut self.instruments[instrument_id.0 as usize];
        instrument.status.open_offering = None;
        let lock_until = instrument.lock_until(self.now);
        let tax_credit_bp = instrument.terms.tax_credit_bp;
        let mut proceeds_minor = 0;
        for subscription in &subscriptions {
            let holding = instrument.holdings.get_mut(&subscription.contributor).expect("a subscriber has a holding entry");
            holding.subscribed_lots -= subscription.lots;
            let cash = &mut self.participants[subscription.contributor.0 as usize].cash;
            if !issued {
                cash.release(subscription.cash_reserved_minor);
                events.push(Event::SubscriptionReleased {
                    offering,
                    contributor: subscription.contributor,
                    cash_released_minor: subscription.cash_reserved_minor,
                });
                continue;
            }
            cash.pay_reserved(subscription.cash_reserved_minor);
            holding.receive(subscription.lots, lock_until);
            proceeds_minor += subscription.cash_reserved_minor;
            events.push(Event::UnitsIssued {
                offering,
                instrument: instrument_id,
                contributor: subscription.contributor,
                lots: subscription.lots,
                paid_minor: subscription.cash_reserved_minor,
            });
            if tax_credit_bp > 0 {
                let credit = TaxCredit {
                    contributor: subscription.contributor,
                    instrument: instrument_id,
                    time: self.now,
                    purchase_minor: subscription.cash_reserved_minor,
                    credit_minor: (u128::from(subscription.cash_reserved_minor) * u128::from(tax_credit_bp) / u128::from(BP_ONE)) as u64,
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
        if issued {
            instrument.status.lots_issued += subscribed_lots;
            self.participants[issuer.0 as usize].cash.credit(proceeds_minor);
        }
        // Keep the subscriptions as the offering's record.
        self.offerings[offering.0 as usize].subscriptions = subscriptions;
        events.push(Event::OfferingClosed { offering, issued, subscribed_lots: if issued { subscribed_lots } else { 0 }, proceeds_minor });
        Ok(Ack::Done)
    }
}
