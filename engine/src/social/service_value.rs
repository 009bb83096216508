//! Service value of shares: an instrument may carry a value per lot per calendar year (UTC) that
//! its holders redeem in services at any accredited organization. Each redemption makes the
//! issuer owe the organization that served (nothing, when the issuer served itself). What a
//! holder redeems in a year is capped by its holding at the time: lots held × value per lot, less
//! what it already redeemed in that instrument that year.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::calendar::date_of;
use crate::command::{Ack, Event, InstrumentId, ObligationCause, ParticipantId, RejectReason};
use crate::Engine;

/// What one holder redeemed of one instrument's service value in one year.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redeemed {
    pub year: i32,
    pub amount_minor: u64,
}

#[derive(Clone, Debug, Default)]
pub struct ServiceValueLedger {
    /// The latest year's redemptions per (instrument, holder); one entry per holding.
    redeemed: FxHashMap<(InstrumentId, ParticipantId), Redeemed>,
}

impl ServiceValueLedger {
    pub(crate) fn snapshot(&self) -> Vec<((InstrumentId, ParticipantId), Redeemed)> {
        let mut entries: Vec<_> = self.redeemed.iter().map(|(k, v)| (*k, *v)).collect();
        entries.sort_unstable_by_key(|(key, _)| *key);
        entries
    }

    pub(crate) fn restore(entries: Vec<((InstrumentId, ParticipantId), Redeemed)>) -> Self {
        ServiceValueLedger {
            redeemed: entries.into_iter().collect(),
        }
    }

    /// Redeemed by `holder` of `instrument` in `year`.
    pub fn redeemed_in(&self, instrument: InstrumentId, holder: ParticipantId, year: i32) -> u64 {
        self.redeemed
            .get(&(instrument, holder))
            .filter(|redeemed| redeemed.year == year)
            .map_or(0, |redeemed| redeemed.amount_minor)
    }
}

impl Engine {
    pub(crate) fn redeem_service_value(
        &mut self,
        holder: ParticipantId,
        instrument_id: InstrumentId,
        organization: ParticipantId,
        amount_minor: u64,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let instrument = self
            .instrument(instrument_id)
            .ok_or(RejectReason::UnknownInstrument)?;
        let per_lot_minor = instrument.spec.service_value_per_lot_minor;
        let issuer = instrument.spec.issuer;
        if per_lot_minor == 0 {
            return Err(RejectReason::NoServiceValue);
        }
        self.accredited_organization(organization)?;
        if amount_minor == 0 {
            return Err(RejectReason::AmountZero);
        }
        let lots = instrument.holding(holder).map_or(0, |holding| holding.lots);
        let year = date_of(self.now).year as i32;
        let already_minor = self
            .social
            .service_value
            .redeemed_in(instrument_id, holder, year);
        let allowance_minor = u128::from(lots) * u128::from(per_lot_minor);
        let redeemed_in_year_minor = already_minor
            .checked_add(amount_minor)
            .ok_or(RejectReason::ServiceValueExceeded)?;
        if u128::from(redeemed_in_year_minor) > allowance_minor {
            return Err(RejectReason::ServiceValueExceeded);
        }
        self.social
            .pool
            .check_obligation(issuer, organization, amount_minor)?;
        self.social.service_value.redeemed.insert(
            (instrument_id, holder),
            Redeemed {
                year,
                amount_minor: redeemed_in_year_minor,
            },
        );
        events.push(Event::ServiceValueRedeemed {
            instrument: instrument_id,
            holder,
            organization,
            amount_minor,
            year,
            redeemed_in_year_minor,
        });
        self.record_obligation(
            issuer,
            organization,
            amount_minor,
            ObligationCause::ServiceValue(instrument_id),
            events,
        );
        Ok(Ack::Done)
    }

    /// Service value `holder` redeemed of `instrument` in `year`.
    pub fn service_value_redeemed(
        &self,
        instrument: InstrumentId,
        holder: ParticipantId,
        year: i32,
    ) -> u64 {
        self.social
            .service_value
            .redeemed_in(instrument, holder, year)
    }
}
