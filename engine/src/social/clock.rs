//! The clock tick. The engine has no clock: the gateway sends `Tick` on a schedule, queued,
//! journaled and replayed like any other command, and the engine acts on the batch's time.
//! Each tick expires the vouchers due, repays the bonds and notes due whose issuers hold the
//! cash (an issuer short of cash is tried again at the next tick; `RepayAtMaturity` stays
//! available to it), and closes the resolutions due, at most `clock_actions_per_tick_max` of
//! them in all, earliest first, so that no tick stalls the engine thread: the rest wait for the
//! next tick.

use crate::command::{Ack, Event, RejectReason, Timestamp};
use crate::Engine;

impl Engine {
    /// Whether a `Tick` at `now` would find anything due: a voucher to expire, a resolution to
    /// close, a bond or note to repay. The clock asks before it sends one, so an idle market
    /// journals no ticks.
    pub fn clock_due(&self, now: Timestamp) -> bool {
        self.social.vouchers.next_due(now).is_some()
            || self.membership.next_due(now).is_some()
            || self
                .social
                .maturing
                .first()
                .is_some_and(|(matures_at, _)| *matures_at <= now)
    }

    /// Whether a netting cycle has anything to settle.
    pub fn netting_due(&self) -> bool {
        !self.social.pool.positions.is_empty()
    }

    pub(crate) fn tick(&mut self, events: &mut Vec<Event>) -> Result<Ack, RejectReason> {
        let budget = self.config.clock_actions_per_tick_max as usize;
        let mut actions = 0;
        while actions < budget {
            let Some(voucher) = self.social.vouchers.next_due(self.now) else {
                break;
            };
            self.expire_voucher(voucher, events);
            actions += 1;
        }
        while actions < budget {
            let Some(resolution) = self.membership.next_due(self.now) else {
                break;
            };
            let organization = self.membership.resolutions[resolution.0 as usize].organization;
            self.close_resolution(organization, resolution, events)
                .expect("a resolution due is open and past its closing time");
            actions += 1;
        }
        let due: Vec<_> = self
            .social
            .maturing
            .range(..=(self.now, crate::InstrumentId(u32::MAX)))
            .copied()
            .collect();
        for (_, instrument) in due {
            if actions >= budget {
                break;
            }
            let issuer = self.instruments[instrument.0 as usize].spec.issuer;
            // Refused (issuer short of cash, offering still open): tried at the next tick.
            if self.repay_at_maturity(issuer, instrument, events).is_ok() {
                actions += 1;
            }
        }
        Ok(Ack::Done)
    }
}
