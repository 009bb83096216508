//! Time credits (DOMAIN.md, "Time credits"; Fureai Kippu): a separate asset, in whole minutes,
//! never convertible to cash. Accredited host organizations record volunteers' hours as new
//! credits; holders transfer them within the network, spend them on services at accredited
//! organizations (which receive them), or donate them to the shared time pool, from which its
//! managers (the operator and accredited organizations) grant them to dependents. Double entry:
//! every movement takes from one account what it gives another, so the ledger is conserved like
//! cash (accounts plus the shared pool = credits ever earned).

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::command::{Ack, Event, ParticipantId, RejectReason, Role, TimeCreditMovement};
use crate::Engine;

#[derive(Clone, Debug, Default)]
pub struct TimeLedger {
    pub balances: FxHashMap<ParticipantId, u64>,
    pub pool_minutes: u64,
    /// Every credit ever recorded by a host.
    pub earned_minutes: u128,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeSnapshot {
    /// Sorted by participant; zero balances left out.
    pub balances: Vec<(ParticipantId, u64)>,
    pub pool_minutes: u64,
    pub earned_minutes: u128,
}

impl TimeLedger {
    pub(crate) fn snapshot(&self) -> TimeSnapshot {
        let mut balances: Vec<(ParticipantId, u64)> = self
            .balances
            .iter()
            .filter(|(_, minutes)| **minutes > 0)
            .map(|(k, v)| (*k, *v))
            .collect();
        balances.sort_unstable_by_key(|(participant, _)| *participant);
        TimeSnapshot {
            balances,
            pool_minutes: self.pool_minutes,
            earned_minutes: self.earned_minutes,
        }
    }

    pub(crate) fn restore(snapshot: TimeSnapshot) -> TimeLedger {
        TimeLedger {
            balances: snapshot.balances.into_iter().collect(),
            pool_minutes: snapshot.pool_minutes,
            earned_minutes: snapshot.earned_minutes,
        }
    }

    pub fn balance(&self, participant: ParticipantId) -> u64 {
        self.balances.get(&participant).copied().unwrap_or(0)
    }

    fn take(&mut self, from: ParticipantId, minutes: u64) -> Result<(), RejectReason> {
        let balance = self.balances.get_mut(&from);
        match balance {
            Some(balance) if *balance >= minutes => {
                *balance -= minutes;
                if *balance == 0 {
                    self.balances.remove(&from);
                }
                Ok(())
            }
            _ => Err(RejectReason::InsufficientTimeCredits),
        }
    }

    /// Credits never overflow: every minute was earned, and earnings are checked.
    fn give(&mut self, to: ParticipantId, minutes: u64) -> u64 {
        let balance = self.balances.entry(to).or_default();
        *balance += minutes;
        *balance
    }
}

impl Engine {
    fn check_minutes(&self, minutes: u64) -> Result<(), RejectReason> {
        if minutes == 0 {
            return Err(RejectReason::QuantityZero);
        }
        if minutes > self.config.time_credit_minutes_per_command_max {
            return Err(RejectReason::TimeCreditsInvalid);
        }
        Ok(())
    }

    fn time_credit_event(
        &self,
        movement: TimeCreditMovement,
        from: Option<ParticipantId>,
        to: Option<ParticipantId>,
        minutes: u64,
    ) -> Event {
        let to_balance_minutes = match to {
            Some(to) => self.social.time.balance(to),
            None => self.social.time.pool_minutes,
        };
        Event::TimeCredits {
            movement,
            from,
            to,
            minutes,
            to_balance_minutes,
        }
    }

    pub(crate) fn record_volunteer_time(
        &mut self,
        host: ParticipantId,
        volunteer: ParticipantId,
        minutes: u64,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        self.accredited_organization(host)?;
        let volunteer_account = self
            .participant(volunteer)
            .ok_or(RejectReason::UnknownAccount)?;
        if volunteer_account.role != Role::Contributor {
            return Err(RejectReason::TimeCreditsInvalid);
        }
        self.check_minutes(minutes)?;
        let time = &mut self.social.time;
        if time.earned_minutes + u128::from(minutes) > u128::from(u64::MAX) {
            return Err(RejectReason::AmountTooLarge);
        }
        time.earned_minutes += u128::from(minutes);
        time.give(volunteer, minutes);
        events.push(self.time_credit_event(
            TimeCreditMovement::Earned,
            Some(host),
            Some(volunteer),
            minutes,
        ));
        Ok(Ack::Done)
    }

    pub(crate) fn transfer_time_credits(
        &mut self,
        from: ParticipantId,
        to: ParticipantId,
        minutes: u64,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let recipient = self.participant(to).ok_or(RejectReason::UnknownAccount)?;
        if !matches!(recipient.role, Role::Contributor | Role::Organization) || to == from {
            return Err(RejectReason::TimeCreditsInvalid);
        }
        self.check_minutes(minutes)?;
        self.social.time.take(from, minutes)?;
        self.social.time.give(to, minutes);
        events.push(self.time_credit_event(
            TimeCreditMovement::Transferred,
            Some(from),
            Some(to),
            minutes,
        ));
        Ok(Ack::Done)
    }

    pub(crate) fn spend_time_credits(
        &mut self,
        holder: ParticipantId,
        organization: ParticipantId,
        minutes: u64,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        self.accredited_organization(organization)?;
        if organization == holder {
            return Err(RejectReason::TimeCreditsInvalid);
        }
        self.check_minutes(minutes)?;
        self.social.time.take(holder, minutes)?;
        self.social.time.give(organization, minutes);
        events.push(self.time_credit_event(
            TimeCreditMovement::Spent,
            Some(holder),
            Some(organization),
            minutes,
        ));
        Ok(Ack::Done)
    }

    pub(crate) fn donate_time_credits(
        &mut self,
        donor: ParticipantId,
        minutes: u64,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        self.check_minutes(minutes)?;
        self.social.time.take(donor, minutes)?;
        self.social.time.pool_minutes += minutes;
        events.push(self.time_credit_event(
            TimeCreditMovement::Donated,
            Some(donor),
            None,
            minutes,
        ));
        Ok(Ack::Done)
    }

    pub(crate) fn grant_time_credits(
        &mut self,
        manager: ParticipantId,
        dependent: ParticipantId,
        minutes: u64,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        if self.participants[manager.0 as usize].role == Role::Organization {
            self.accredited_organization(manager)?;
        }
        let dependent_account = self
            .participant(dependent)
            .ok_or(RejectReason::UnknownAccount)?;
        if dependent_account.role != Role::Contributor {
            return Err(RejectReason::TimeCreditsInvalid);
        }
        self.check_minutes(minutes)?;
        let time = &mut self.social.time;
        if time.pool_minutes < minutes {
            return Err(RejectReason::InsufficientTimeCredits);
        }
        time.pool_minutes -= minutes;
        time.give(dependent, minutes);
        events.push(self.time_credit_event(
            TimeCreditMovement::Granted,
            Some(manager),
            Some(dependent),
            minutes,
        ));
        Ok(Ack::Done)
    }

    // ---- Read access. ----

    pub fn time_credits_of(&self, participant: ParticipantId) -> u64 {
        self.social.time.balance(participant)
    }

    /// (the shared time pool, credits ever earned).
    pub fn time_credit_totals(&self) -> (u64, u128) {
        (
            self.social.time.pool_minutes,
            self.social.time.earned_minutes,
        )
    }
}
