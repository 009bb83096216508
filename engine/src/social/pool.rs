//! The collective capital pool (DOMAIN.md, "The collective capital pool and netting"): cash
//! contributed by organizations and individuals (recorded per contributor: contributions are
//! eligible for the tax credit), the open obligations between participants kept as one running
//! position each (so that a netting cycle costs work per participant, not per obligation), the
//! loans the pool made to debtors that could not pay, and the accounts no command can debit:
//! each organization's indivisible reserve and the social economy fund.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::command::{Ack, Event, ObligationCause, ParticipantId, RejectReason};
use crate::Engine;

/// One participant's open obligations, gross: what others owe it and what it owes others.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub owed_to_minor: u64,
    pub owes_minor: u64,
}

impl Position {
    /// Positive: a net creditor; negative: a net debtor.
    pub fn net_minor(&self) -> i128 {
        i128::from(self.owed_to_minor) - i128::from(self.owes_minor)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Pool {
    /// The pool's own cash: contributions, surplus purchases and loan repayments, less loans.
    pub cash_minor: u64,
    pub contributions: BTreeMap<ParticipantId, u64>,
    pub loans: BTreeMap<ParticipantId, u64>,
    pub positions: FxHashMap<ParticipantId, Position>,
    /// Obligations recorded (or carried) since the last cycle, and their sum.
    pub obligations_open: u64,
    pub gross_open_minor: u128,
    pub cycles_closed: u64,
    /// Indivisible reserves: credited by surplus declarations, never debited.
    pub reserves: BTreeMap<ParticipantId, u64>,
    /// The social economy fund: credited by surplus declarations, never debited.
    pub fund_minor: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSnapshot {
    pub cash_minor: u64,
    pub contributions: Vec<(ParticipantId, u64)>,
    pub loans: Vec<(ParticipantId, u64)>,
    /// Sorted by participant.
    pub positions: Vec<(ParticipantId, Position)>,
    pub obligations_open: u64,
    pub gross_open_minor: u128,
    pub cycles_closed: u64,
    pub reserves: Vec<(ParticipantId, u64)>,
    pub fund_minor: u64,
}

impl Pool {
    pub(crate) fn snapshot(&self) -> PoolSnapshot {
        let mut positions: Vec<(ParticipantId, Position)> =
            self.positions.iter().map(|(k, v)| (*k, *v)).collect();
        positions.sort_unstable_by_key(|(participant, _)| *participant);
        PoolSnapshot {
            cash_minor: self.cash_minor,
            contributions: self.contributions.iter().map(|(k, v)| (*k, *v)).collect(),
            loans: self.loans.iter().map(|(k, v)| (*k, *v)).collect(),
            positions,
            obligations_open: self.obligations_open,
            gross_open_minor: self.gross_open_minor,
            cycles_closed: self.cycles_closed,
            reserves: self.reserves.iter().map(|(k, v)| (*k, *v)).collect(),
            fund_minor: self.fund_minor,
        }
    }

    pub(crate) fn restore(snapshot: PoolSnapshot) -> Pool {
        Pool {
            cash_minor: snapshot.cash_minor,
            contributions: snapshot.contributions.into_iter().collect(),
            loans: snapshot.loans.into_iter().collect(),
            positions: snapshot.positions.into_iter().collect(),
            obligations_open: snapshot.obligations_open,
            gross_open_minor: snapshot.gross_open_minor,
            cycles_closed: snapshot.cycles_closed,
            reserves: snapshot.reserves.into_iter().collect(),
            fund_minor: snapshot.fund_minor,
        }
    }

    /// Refuses an obligation that would take either position beyond the ledger's range.
    pub(crate) fn check_obligation(
        &self,
        debtor: ParticipantId,
        creditor: ParticipantId,
        amount_minor: u64,
    ) -> Result<(), RejectReason> {
        let position = |who| self.positions.get(&who).copied().unwrap_or_default();
        let fits = position(debtor)
            .owes_minor
            .checked_add(amount_minor)
            .is_some()
            && position(creditor)
                .owed_to_minor
                .checked_add(amount_minor)
                .is_some();
        if fits {
            Ok(())
        } else {
            Err(RejectReason::ObligationsFull)
        }
    }

    /// Cash held outside participants' accounts: the pool, the reserves and the fund.
    pub fn cash_held_minor(&self) -> u128 {
        u128::from(self.cash_minor)
            + u128::from(self.fund_minor)
            + self.reserves.values().map(|v| u128::from(*v)).sum::<u128>()
    }
}

impl Engine {
    /// Records an obligation checked by `Pool::check_obligation`. One to oneself is nothing.
    pub(crate) fn record_obligation(
        &mut self,
        debtor: ParticipantId,
        creditor: ParticipantId,
        amount_minor: u64,
        cause: ObligationCause,
        events: &mut Vec<Event>,
    ) {
        if debtor == creditor || amount_minor == 0 {
            return;
        }
        let pool = &mut self.social.pool;
        pool.positions.entry(debtor).or_default().owes_minor += amount_minor;
        pool.positions.entry(creditor).or_default().owed_to_minor += amount_minor;
        pool.obligations_open += 1;
        pool.gross_open_minor += u128::from(amount_minor);
        events.push(Event::ObligationRecorded {
            debtor,
            creditor,
            amount_minor,
            cause,
        });
    }

    pub(crate) fn contribute_to_pool(
        &mut self,
        contributor: ParticipantId,
        amount_minor: u64,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        if amount_minor == 0 {
            return Err(RejectReason::AmountZero);
        }
        let cash = &mut self.participants[contributor.0 as usize].cash;
        if cash.free_minor() < amount_minor {
            return Err(RejectReason::InsufficientCash);
        }
        cash.pay_free(amount_minor);
        self.credit_pool(contributor, amount_minor);
        events.push(Event::PoolContributed {
            contributor,
            amount_minor,
            pool_balance_minor: self.social.pool.cash_minor,
        });
        Ok(Ack::Done)
    }

    /// Cash that has already left `contributor`'s account enters the pool as its contribution.
    pub(crate) fn credit_pool(&mut self, contributor: ParticipantId, amount_minor: u64) {
        let pool = &mut self.social.pool;
        pool.cash_minor += amount_minor;
        *pool.contributions.entry(contributor).or_default() += amount_minor;
    }

    pub(crate) fn repay_pool_loan(
        &mut self,
        debtor: ParticipantId,
        amount_minor: u64,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        if amount_minor == 0 {
            return Err(RejectReason::AmountZero);
        }
        let outstanding = self.social.pool.loans.get(&debtor).copied().unwrap_or(0);
        if outstanding < amount_minor {
            return Err(RejectReason::NoPoolLoan);
        }
        let cash = &mut self.participants[debtor.0 as usize].cash;
        if cash.free_minor() < amount_minor {
            return Err(RejectReason::InsufficientCash);
        }
        cash.pay_free(amount_minor);
        let pool = &mut self.social.pool;
        pool.cash_minor += amount_minor;
        let left = outstanding - amount_minor;
        if left == 0 {
            pool.loans.remove(&debtor);
        } else {
            pool.loans.insert(debtor, left);
        }
        events.push(Event::PoolLoanRepaid {
            debtor,
            amount_minor,
            loan_outstanding_minor: left,
        });
        Ok(Ack::Done)
    }

    // ---- Read access. ----

    pub fn pool_balance_minor(&self) -> u64 {
        self.social.pool.cash_minor
    }

    pub fn pool_contribution_minor(&self, contributor: ParticipantId) -> u64 {
        self.social
            .pool
            .contributions
            .get(&contributor)
            .copied()
            .unwrap_or(0)
    }

    pub fn pool_loan_minor(&self, debtor: ParticipantId) -> u64 {
        self.social.pool.loans.get(&debtor).copied().unwrap_or(0)
    }

    pub fn pool_loans(&self) -> &BTreeMap<ParticipantId, u64> {
        &self.social.pool.loans
    }

    /// A participant's open obligations, gross, since the last netting cycle.
    pub fn position(&self, participant: ParticipantId) -> Position {
        self.social
            .pool
            .positions
            .get(&participant)
            .copied()
            .unwrap_or_default()
    }

    /// (obligations open, their gross sum, netting cycles closed).
    pub fn obligations_open(&self) -> (u64, u128, u64) {
        let pool = &self.social.pool;
        (
            pool.obligations_open,
            pool.gross_open_minor,
            pool.cycles_closed,
        )
    }

    pub fn indivisible_reserve_minor(&self, organization: ParticipantId) -> u64 {
        self.social
            .pool
            .reserves
            .get(&organization)
            .copied()
            .unwrap_or(0)
    }

    pub fn social_economy_fund_minor(&self) -> u64 {
        self.social.pool.fund_minor
    }
}
