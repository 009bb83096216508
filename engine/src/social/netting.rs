//! Netting cycles (DOMAIN.md, "The collective capital pool and netting"). A cycle replaces every
//! open obligation by one net position per participant and settles them in one step: net
//! debtors pay the pool from their free cash (a funder's reservation for redeemed vouchers is
//! released first, so a voucher's funder can always pay), the pool lends whatever a debtor is
//! short, up to the pool's own cash, and pays net creditors what came in. When the pool cannot
//! cover every shortfall, creditors are paid pro rata and the unpaid rest carries into the next
//! cycle, as debts of the debtors that were short and credits of the creditors left unpaid.
//!
//! Rounding: every pro-rata split (loans over shortfalls, payments over credits) rounds each
//! share down to a minor unit and gives the units left over, one each, to the largest
//! remainders, the lower participant id first among equals (`social::pro_rata`). Cash is
//! conserved to the minor unit and the pool never goes below zero.
//!
//! The work is per participant with a position, not per obligation: positions are kept current
//! as obligations are recorded.

use crate::command::{Ack, Event, ParticipantId, RejectReason};
use crate::Engine;

use super::pool::Position;
use super::pro_rata;

/// One participant's settlement in a cycle.
struct Line {
    participant: ParticipantId,
    position: Position,
    paid_minor: u64,
    loan_minor: u64,
    received_minor: u64,
    carried_minor: u64,
}

impl Engine {
    pub(crate) fn close_netting_cycle(
        &mut self,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        if self.social.pool.positions.is_empty() {
            return Err(RejectReason::NoEffect);
        }
        let cycle = self.social.pool.cycles_closed + 1;
        let obligations = self.social.pool.obligations_open;
        let gross_minor = self.social.pool.gross_open_minor;
        let mut lines: Vec<Line> = self
            .social
            .pool
            .positions
            .drain()
            .map(|(participant, position)| Line {
                participant,
                position,
                paid_minor: 0,
                loan_minor: 0,
                received_minor: 0,
                carried_minor: 0,
            })
            .collect();
        lines.sort_unstable_by_key(|line| line.participant);

        // A funder's reservation backs its voucher obligations until now.
        for (funder, backing) in std::mem::take(&mut self.social.vouchers.backing_minor) {
            self.participants[funder.0 as usize].cash.release(backing);
        }

        // Net debtors pay what they can.
        let mut paid_in_minor: u64 = 0;
        let mut debtors = Vec::new();
        let mut shortfalls = Vec::new();
        let mut creditors = Vec::new();
        let mut credits = Vec::new();
        let mut net_minor: u128 = 0;
        for (index, line) in lines.iter_mut().enumerate() {
            let net = line.position.net_minor();
            if net < 0 {
                let debt = net.unsigned_abs() as u64;
                let cash = &mut self.participants[line.participant.0 as usize].cash;
                let paid = debt.min(cash.free_minor());
                cash.pay_free(paid);
                line.paid_minor = paid;
                paid_in_minor += paid;
                net_minor += u128::from(debt);
                debtors.push(index);
                shortfalls.push(debt - paid);
            } else if net > 0 {
                creditors.push(index);
                credits.push(net as u64);
            }
        }
        debug_assert_eq!(
            credits.iter().map(|c| u128::from(*c)).sum::<u128>(),
            net_minor,
            "net credits equal net debts"
        );

        // The pool covers shortfalls as loans, up to its own cash.
        let short_minor: u64 = shortfalls.iter().sum();
        let lendable_minor = short_minor.min(self.social.pool.cash_minor);
        let loans = pro_rata(lendable_minor, &shortfalls);
        self.social.pool.cash_minor -= lendable_minor;
        for ((index, shortfall), loan) in debtors.iter().zip(&shortfalls).zip(&loans) {
            let line = &mut lines[*index];
            line.loan_minor = *loan;
            line.carried_minor = shortfall - loan;
            if *loan > 0 {
                *self.social.pool.loans.entry(line.participant).or_default() += loan;
            }
        }

        // Creditors are paid what came in, pro rata when it falls short.
        let available_minor = paid_in_minor + lendable_minor;
        let payments = pro_rata(available_minor, &credits);
        let mut paid_out_minor: u64 = 0;
        for ((index, credit), payment) in creditors.iter().zip(&credits).zip(&payments) {
            let line = &mut lines[*index];
            line.received_minor = *payment;
            line.carried_minor = credit - payment;
            paid_out_minor += payment;
            self.participants[line.participant.0 as usize]
                .cash
                .credit(*payment);
        }
        assert_eq!(
            paid_out_minor, available_minor,
            "a netting cycle paid out exactly what came in and what the pool lent"
        );

        // What is left unsettled is the next cycle's opening positions.
        let pool = &mut self.social.pool;
        let mut carried_minor: u64 = 0;
        let mut carried_obligations: u64 = 0;
        for line in &lines {
            if line.carried_minor == 0 {
                continue;
            }
            let carried = pool.positions.entry(line.participant).or_default();
            if line.position.net_minor() < 0 {
                carried.owes_minor = line.carried_minor;
                carried_minor += line.carried_minor;
                carried_obligations += 1;
            } else {
                carried.owed_to_minor = line.carried_minor;
            }
        }
        pool.obligations_open = carried_obligations;
        pool.gross_open_minor = u128::from(carried_minor);
        pool.cycles_closed = cycle;
        let pool_balance_minor = pool.cash_minor;

        for line in &lines {
            events.push(Event::NettingPosition {
                cycle,
                participant: line.participant,
                owed_to_minor: line.position.owed_to_minor,
                owes_minor: line.position.owes_minor,
                paid_minor: line.paid_minor,
                loan_minor: line.loan_minor,
                received_minor: line.received_minor,
                carried_minor: line.carried_minor,
            });
        }
        let efficiency_bp = if gross_minor == 0 {
            0
        } else {
            ((gross_minor - net_minor) * 10_000 / gross_minor) as u32
        };
        events.push(Event::NettingCycleClosed {
            cycle,
            obligations,
            gross_minor,
            net_minor,
            efficiency_bp,
            paid_in_minor,
            paid_out_minor,
            loans_minor: lendable_minor,
            carried_minor,
            pool_balance_minor,
        });
        Ok(Ack::NettingCycle(cycle))
    }
}
