//! Returns to holders: distributions capped by the return accrued since the first issue (and
//! deducted from the accrued value, so a distribution and a sale at the ceiling never return
//! more than the cap), and repayment of par at maturity.

use crate::command::{Ack, Event, InstrumentId, ParticipantId, RejectReason};
use crate::Engine;

impl Engine {
    pub(crate) fn pay_distribution(
        &mut self,
        issuer: ParticipantId,
        instrument: InstrumentId,
        per_lot_minor: u64,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let now = self.now;
        let paying = self
            .instruments
            .get(instrument.0 as usize)
            .ok_or(RejectReason::UnknownInstrument)?;
        if paying.spec.issuer != issuer {
            return Err(RejectReason::NotIssuer);
        }
        if per_lot_minor == 0 {
            return Err(RejectReason::AmountZero);
        }
        if paying.status.matured {
            return Err(RejectReason::InstrumentMatured);
        }
        let lots_outstanding = paying.lots_outstanding();
        if lots_outstanding == 0 {
            return Err(RejectReason::NoUnitsOutstanding);
        }
        if per_lot_minor > paying.distribution_cap_per_lot_minor(now) {
            return Err(RejectReason::DistributionAboveCap);
        }
        let total_minor = per_lot_minor
            .checked_mul(lots_outstanding)
            .ok_or(RejectReason::AmountTooLarge)?;
        if self.participants[issuer.0 as usize].cash.free_minor() < total_minor {
            return Err(RejectReason::InsufficientCash);
        }
        self.participants[issuer.0 as usize]
            .cash
            .pay_free(total_minor);
        events.push(Event::DistributionPaid {
            instrument,
            issuer,
            per_lot_minor,
            lots_outstanding,
            total_minor,
        });
        let paying = &mut self.instruments[instrument.0 as usize];
        // Within the cap, so at most the accrued return, which fits a u64.
        paying.status.distributed_per_lot_minor += per_lot_minor;
        paying.accrued_value_changed();
        let mut paid_minor = 0;
        for holder in paying.holders_sorted() {
            let lots = paying.holdings[&holder].lots;
            if lots == 0 {
                continue;
            }
            let amount_minor = per_lot_minor * lots;
            self.participants[holder.0 as usize]
                .cash
                .credit(amount_minor);
            paid_minor += amount_minor;
            events.push(Event::DistributionReceived {
                instrument,
                holder,
                lots,
                amount_minor,
            });
        }
        assert_eq!(
            paid_minor, total_minor,
            "a distribution paid out exactly what it took"
        );
        Ok(Ack::Done)
    }

    pub(crate) fn repay_at_maturity(
        &mut self,
        issuer: ParticipantId,
        instrument: InstrumentId,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let maturing = self
            .instruments
            .get(instrument.0 as usize)
            .ok_or(RejectReason::UnknownInstrument)?;
        if maturing.spec.issuer != issuer {
            return Err(RejectReason::NotIssuer);
        }
        if maturing.status.matured {
            return Err(RejectReason::InstrumentMatured);
        }
        let Some(maturity_time) = maturing.spec.maturity_time else {
            return Err(RejectReason::DoesNotMature);
        };
        if self.now < maturity_time {
            return Err(RejectReason::NotMatured);
        }
        if maturing.status.open_offering.is_some() {
            return Err(RejectReason::OfferingAlreadyOpen);
        }
        let lots_retired = maturing.lots_outstanding();
        let par_per_lot_minor = maturing.par_per_lot_minor();
        let repaid_minor = par_per_lot_minor
            .checked_mul(lots_retired)
            .ok_or(RejectReason::AmountTooLarge)?;
        if self.participants[issuer.0 as usize].cash.free_minor() < repaid_minor {
            return Err(RejectReason::InsufficientCash);
        }
        self.cancel_all_orders(instrument, events);
        self.participants[issuer.0 as usize]
            .cash
            .pay_free(repaid_minor);
        let maturing = &mut self.instruments[instrument.0 as usize];
        for holder in maturing.holders_sorted() {
            let holding = maturing.holdings.get_mut(&holder).expect("listed holder");
            let lots = holding.lots;
            holding.lots = 0;
            holding.locks.clear();
            if lots == 0 {
                continue;
            }
            let amount_minor = par_per_lot_minor * lots;
            self.participants[holder.0 as usize]
                .cash
                .credit(amount_minor);
            events.push(Event::ParRepaid {
                instrument,
                holder,
                lots,
                amount_minor,
            });
        }
        maturing.status.lots_retired += lots_retired;
        maturing.status.matured = true;
        self.social.maturing.remove(&(maturity_time, instrument));
        maturing.status.trading_open = false;
        events.push(Event::InstrumentMatured {
            instrument,
            lots_retired,
            repaid_minor,
        });
        Ok(Ack::Done)
    }
}
