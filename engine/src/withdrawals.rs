//! Withdrawable shares (DOMAIN.md, "Withdrawable shares"): a holder gives notice to withdraw
//! units of a withdrawable community share; once the notice has run, the issuer buys them back at
//! par from its free cash and retires them, delivery versus payment. The issuer may suspend
//! withdrawals to protect its capital base: no new notice is accepted and no pending one is paid
//! until it resumes them. Units under notice cannot be sold, and units inside a lock-in cannot be
//! put under notice.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::calendar::NS_PER_DAY;
use crate::command::{
    Ack, Event, InstrumentId, ParticipantId, RejectReason, Timestamp, WithdrawalId,
};
use crate::Engine;

/// A pending request to withdraw units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdrawal {
    pub id: WithdrawalId,
    pub instrument: InstrumentId,
    pub holder: ParticipantId,
    pub lots: u64,
    pub requested_at: Timestamp,
    /// The end of the notice period: the payout may be made from this time.
    pub payable_from: Timestamp,
}

/// Every pending withdrawal, in id order; paid and cancelled ones live on in the journal's events.
#[derive(Clone, Debug)]
pub(crate) struct Withdrawals {
    pub pending: BTreeMap<WithdrawalId, Withdrawal>,
    pub next_id: u64,
    /// Pending requests per (instrument, holder), for the per-holding bound. Derived.
    per_holding: FxHashMap<(InstrumentId, ParticipantId), u32>,
}

impl Default for Withdrawals {
    fn default() -> Self {
        Withdrawals {
            pending: BTreeMap::new(),
            next_id: 1,
            per_holding: FxHashMap::default(),
        }
    }
}

impl Withdrawals {
    pub fn restore(pending: Vec<Withdrawal>, next_id: u64) -> Withdrawals {
        let mut withdrawals = Withdrawals {
            next_id,
            ..Withdrawals::default()
        };
        for withdrawal in pending {
            withdrawals.insert(withdrawal);
        }
        withdrawals
    }

    pub fn pending_of(&self, instrument: InstrumentId, holder: ParticipantId) -> u32 {
        self.per_holding
            .get(&(instrument, holder))
            .copied()
            .unwrap_or(0)
    }

    fn insert(&mut self, withdrawal: Withdrawal) {
        *self
            .per_holding
            .entry((withdrawal.instrument, withdrawal.holder))
            .or_default() += 1;
        self.pending.insert(withdrawal.id, withdrawal);
    }

    fn remove(&mut self, id: WithdrawalId) -> Option<Withdrawal> {
        let withdrawal = self.pending.remove(&id)?;
        let key = (withdrawal.instrument, withdrawal.holder);
        let count = self
            .per_holding
            .get_mut(&key)
            .expect("a pending withdrawal is counted");
        *count -= 1;
        if *count == 0 {
            self.per_holding.remove(&key);
        }
        Some(withdrawal)
    }
}

impl Engine {
    pub(crate) fn request_withdrawal(
        &mut self,
        holder: ParticipantId,
        instrument: InstrumentId,
        lots: u64,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let now = self.now;
        let share = self
            .instruments
            .get(instrument.0 as usize)
            .ok_or(RejectReason::UnknownInstrument)?;
        if lots == 0 {
            return Err(RejectReason::QuantityZero);
        }
        if lots > self.config.order_lots_max {
            return Err(RejectReason::QuantityTooLarge);
        }
        if !share.spec.withdrawable {
            return Err(RejectReason::NotWithdrawable);
        }
        if share.status.withdrawals_suspended {
            return Err(RejectReason::WithdrawalsSuspended);
        }
        let holding = share.holding(holder);
        if holding.map_or(0, |h| h.unreserved_lots()) < lots {
            return Err(RejectReason::InsufficientUnits);
        }
        if holding.map_or(0, |h| h.free_lots(now)) < lots {
            return Err(RejectReason::LockedIn);
        }
        let market_full =
            self.withdrawals.pending.len() >= self.config.withdrawals_pending_max as usize;
        if market_full
            || self.withdrawals.pending_of(instrument, holder)
                >= self.config.withdrawals_pending_per_holding_max
        {
            return Err(RejectReason::WithdrawalsFull);
        }
        let payable_from = now.saturating_add(
            u64::from(share.spec.withdrawal_notice_days).saturating_mul(NS_PER_DAY),
        );
        let holding = self.instruments[instrument.0 as usize]
            .holdings
            .get_mut(&holder)
            .expect("checked above");
        // Expired locks go first, so that what stays locked plus what is held back fits the holding.
        holding.prune_locks(now);
        holding.withdrawing_lots += lots;
        let id = WithdrawalId(self.withdrawals.next_id);
        self.withdrawals.next_id += 1;
        self.withdrawals.insert(Withdrawal {
            id,
            instrument,
            holder,
            lots,
            requested_at: now,
            payable_from,
        });
        events.push(Event::WithdrawalRequested {
            withdrawal: id,
            instrument,
            holder,
            lots,
            payable_from,
        });
        Ok(Ack::Withdrawal(id))
    }

    pub(crate) fn cancel_withdrawal(
        &mut self,
        who: ParticipantId,
        id: WithdrawalId,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let pending = self
            .withdrawals
            .pending
            .get(&id)
            .ok_or(RejectReason::UnknownWithdrawal)?;
        if pending.holder != who {
            return Err(RejectReason::NotWithdrawalHolder);
        }
        let withdrawal = self.withdrawals.remove(id).expect("checked above");
        let holding = self.instruments[withdrawal.instrument.0 as usize]
            .holdings
            .get_mut(&withdrawal.holder)
            .expect("a withdrawing holder has a holding");
        holding.withdrawing_lots -= withdrawal.lots;
        events.push(Event::WithdrawalCancelled {
            withdrawal: id,
            instrument: withdrawal.instrument,
            holder: withdrawal.holder,
            lots: withdrawal.lots,
        });
        Ok(Ack::Done)
    }

    pub(crate) fn complete_withdrawal(
        &mut self,
        who: ParticipantId,
        id: WithdrawalId,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let pending = *self
            .withdrawals
            .pending
            .get(&id)
            .ok_or(RejectReason::UnknownWithdrawal)?;
        let share = &self.instruments[pending.instrument.0 as usize];
        let issuer = share.spec.issuer;
        if who != pending.holder && who != issuer {
            return Err(RejectReason::NotWithdrawalHolder);
        }
        if share.status.withdrawals_suspended {
            return Err(RejectReason::WithdrawalsSuspended);
        }
        if self.now < pending.payable_from {
            return Err(RejectReason::NoticeRunning);
        }
        let amount_minor = share
            .par_per_lot_minor()
            .checked_mul(pending.lots)
            .ok_or(RejectReason::AmountTooLarge)?;
        if self.participants[issuer.0 as usize].cash.free_minor() < amount_minor {
            return Err(RejectReason::InsufficientCash);
        }
        self.withdrawals.remove(id);
        self.participants[issuer.0 as usize]
            .cash
            .pay_free(amount_minor);
        self.participants[pending.holder.0 as usize]
            .cash
            .credit(amount_minor);
        let share = &mut self.instruments[pending.instrument.0 as usize];
        let holding = share
            .holdings
            .get_mut(&pending.holder)
            .expect("a withdrawing holder has a holding");
        holding.withdrawing_lots -= pending.lots;
        holding.lots -= pending.lots;
        share.status.lots_retired += pending.lots;
        events.push(Event::WithdrawalPaid {
            withdrawal: id,
            instrument: pending.instrument,
            holder: pending.holder,
            issuer,
            lots: pending.lots,
            amount_minor,
        });
        Ok(Ack::Done)
    }

    pub(crate) fn set_withdrawals_suspended(
        &mut self,
        who: ParticipantId,
        instrument: InstrumentId,
        suspended: bool,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let share = self
            .instruments
            .get_mut(instrument.0 as usize)
            .ok_or(RejectReason::UnknownInstrument)?;
        if share.spec.issuer != who {
            return Err(RejectReason::NotIssuer);
        }
        if !share.spec.withdrawable {
            return Err(RejectReason::NotWithdrawable);
        }
        if share.status.withdrawals_suspended == suspended {
            return Err(RejectReason::NoEffect);
        }
        share.status.withdrawals_suspended = suspended;
        events.push(Event::WithdrawalsSuspended {
            instrument,
            suspended,
        });
        Ok(Ack::Done)
    }

    /// Every pending withdrawal, in id order.
    pub fn withdrawals_pending(&self) -> impl Iterator<Item = &Withdrawal> {
        self.withdrawals.pending.values()
    }

    pub fn withdrawal(&self, id: WithdrawalId) -> Option<&Withdrawal> {
        self.withdrawals.pending.get(&id)
    }
}
