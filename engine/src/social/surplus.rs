//! Surplus rules for tax-exempt organizations (DOMAIN.md, "Surplus rules"): when an organization
//! declares a year's surplus, the market's shares of it (15 % to its indivisible reserve, 3 % to
//! the social economy fund, and a configured part that buys units of the collective capital
//! pool, each rounded down to a minor unit) leave its free cash in one step; the rest stays
//! free. The reserve and the fund are accounts no command can debit. One declaration per
//! organization and year.

use crate::calendar::date_of;
use crate::command::{Ack, Event, ParticipantId, RejectReason};
use crate::config::BP_ONE;
use crate::Engine;

/// The earliest year a surplus may be declared for.
pub const SURPLUS_YEAR_MIN: i32 = 1970;

fn share_of(amount_minor: u64, bp: u32) -> u64 {
    (u128::from(amount_minor) * u128::from(bp) / u128::from(BP_ONE)) as u64
}

impl Engine {
    pub(crate) fn declare_surplus(
        &mut self,
        organization: ParticipantId,
        year: i32,
        surplus_minor: u64,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        if surplus_minor == 0 {
            return Err(RejectReason::AmountZero);
        }
        let current_year = date_of(self.now).year;
        if year < SURPLUS_YEAR_MIN || i64::from(year) > current_year {
            return Err(RejectReason::SurplusYearInvalid);
        }
        if self
            .social
            .surpluses_declared
            .contains(&(organization, year))
        {
            return Err(RejectReason::SurplusAlreadyDeclared);
        }
        let reserve_minor = share_of(surplus_minor, self.config.surplus_reserve_bp);
        let fund_minor = share_of(surplus_minor, self.config.surplus_fund_bp);
        let pool_minor = share_of(surplus_minor, self.config.surplus_pool_bp);
        let moved_minor =
            u128::from(reserve_minor) + u128::from(fund_minor) + u128::from(pool_minor);
        let cash = &mut self.participants[organization.0 as usize].cash;
        if u128::from(cash.free_minor()) < moved_minor {
            return Err(RejectReason::InsufficientCash);
        }
        let moved_minor = moved_minor as u64;
        cash.pay_free(moved_minor);
        self.social.surpluses_declared.insert((organization, year));
        let pool = &mut self.social.pool;
        *pool.reserves.entry(organization).or_default() += reserve_minor;
        pool.fund_minor += fund_minor;
        self.credit_pool(organization, pool_minor);
        events.push(Event::SurplusDeclared {
            organization,
            year,
            surplus_minor,
            reserve_minor,
            fund_minor,
            pool_minor,
        });
        Ok(Ack::Done)
    }

    /// The years an organization declared a surplus for.
    pub fn surplus_years(&self, organization: ParticipantId) -> Vec<i32> {
        self.social
            .surpluses_declared
            .range((organization, i32::MIN)..=(organization, i32::MAX))
            .map(|(_, year)| *year)
            .collect()
    }
}
