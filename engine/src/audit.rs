//! What a journaled record touched, for the regulator's audit feed: the accounts a command's
//! events changed, read back from the engine once it has applied the command, and the parts of a
//! record that belong to one participant alone (a voucher's co-payment split).
//!
//! The gateway asks `Engine::accounts_after` right after each `apply` and journals the answer
//! with the record; replay asks again and must get the same answer, so the balances in the feed
//! are part of what replay proves.

use serde::{Deserialize, Serialize};

use crate::command::{Command, CommandKind, Event, InstrumentId, ParticipantId};
use crate::Engine;

/// An account as it stands after a command: a participant's cash, or its units of one
/// instrument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AccountAfter {
    Cash {
        participant: ParticipantId,
        balance_minor: u64,
        reserved_minor: u64,
    },
    Units {
        participant: ParticipantId,
        instrument: InstrumentId,
        lots: u64,
        reserved_lots: u64,
    },
}

impl AccountAfter {
    /// Variant (cash first), participant, instrument in one integer: the derived order of
    /// entries whose amounts are equal.
    #[inline]
    fn order_key(&self) -> u128 {
        match self {
            AccountAfter::Cash { participant, .. } => u128::from(participant.0) << 32,
            AccountAfter::Units {
                participant,
                instrument,
                ..
            } => (1 << 64) | (u128::from(participant.0) << 32) | u128::from(instrument.0),
        }
    }

    pub fn participant(&self) -> ParticipantId {
        match self {
            AccountAfter::Cash { participant, .. } | AccountAfter::Units { participant, .. } => {
                *participant
            }
        }
    }
}

/// Accounts named, with their amounts still to be read.
struct Touched<'a>(&'a mut Vec<AccountAfter>);

impl Touched<'_> {
    fn cash(&mut self, participant: ParticipantId) {
        self.0.push(AccountAfter::Cash {
            participant,
            balance_minor: 0,
            reserved_minor: 0,
        });
    }

    fn units(&mut self, instrument: InstrumentId, participant: ParticipantId) {
        self.0.push(AccountAfter::Units {
            participant,
            instrument,
            lots: 0,
            reserved_lots: 0,
        });
    }
}

/// The accounts one event changes: cash accounts by participant, unit accounts by (instrument,
/// participant). Accounts the event does not name (an offering's or an instrument's issuer, a
/// reduced order's owner) are resolved from `engine`.
fn touched(engine: &Engine, event: &Event, named: &mut Touched<'_>) {
    match event {
        Event::CashDeposited { account, .. } | Event::CashWithdrawn { account, .. } => {
            named.cash(*account)
        }
        Event::Subscribed { contributor, .. }
        | Event::SubscriptionReleased { contributor, .. }
        | Event::SubscriptionScaledBack { contributor, .. } => named.cash(*contributor),
        Event::UnitsIssued {
            instrument,
            contributor,
            ..
        } => {
            named.cash(*contributor);
            named.units(*instrument, *contributor);
        }
        Event::OfferingClosed { offering, .. } => {
            if let Some(offering) = engine.offering(*offering) {
                named.cash(offering.issuer);
            }
        }
        Event::OrderAccepted {
            instrument, owner, ..
        }
        | Event::OrderCancelled {
            instrument, owner, ..
        } => {
            named.cash(*owner);
            named.units(*instrument, *owner);
        }
        Event::OrderReduced { order, .. } => {
            if let Some(order) = engine.order(*order) {
                named.cash(order.owner);
                named.units(order.instrument, order.owner);
            }
        }
        Event::Trade {
            instrument,
            maker,
            taker,
            ..
        } => {
            named.cash(*maker);
            named.cash(*taker);
            named.units(*instrument, *maker);
            named.units(*instrument, *taker);
        }
        Event::DistributionPaid { issuer, .. } => named.cash(*issuer),
        Event::DistributionReceived { holder, .. } => named.cash(*holder),
        Event::ParRepaid {
            instrument, holder, ..
        } => {
            named.cash(*holder);
            named.units(*instrument, *holder);
        }
        Event::InstrumentMatured { instrument, .. } => {
            if let Some(instrument) = engine.instrument(*instrument) {
                named.cash(instrument.spec.issuer);
            }
        }
        Event::WithdrawalRequested {
            instrument, holder, ..
        }
        | Event::WithdrawalCancelled {
            instrument, holder, ..
        } => named.units(*instrument, *holder),
        Event::WithdrawalPaid {
            instrument,
            holder,
            issuer,
            ..
        } => {
            named.cash(*holder);
            named.cash(*issuer);
            named.units(*instrument, *holder);
        }
        Event::VoucherIssued {
            funder,
            beneficiary,
            ..
        }
        | Event::VoucherExpired {
            funder,
            beneficiary,
            ..
        } => {
            named.cash(*funder);
            named.cash(*beneficiary);
        }
        Event::VoucherRedeemed { beneficiary, .. } => named.cash(*beneficiary),
        Event::ObligationRecorded { debtor, .. } => named.cash(*debtor),
        Event::PoolContributed { contributor, .. } => named.cash(*contributor),
        Event::PoolLoanRepaid { debtor, .. } => named.cash(*debtor),
        Event::NettingPosition { participant, .. } => named.cash(*participant),
        Event::SurplusDeclared { organization, .. } => named.cash(*organization),
        Event::ParticipantRegistered { .. }
        | Event::AccreditationChanged { .. }
        | Event::InstrumentListed { .. }
        | Event::TradingStatusChanged { .. }
        | Event::OfferingOpened { .. }
        | Event::TaxCreditRecorded { .. }
        | Event::FirstIssue { .. }
        | Event::OrderRested { .. }
        | Event::CredentialIssued { .. }
        | Event::CredentialRevoked { .. }
        | Event::ParticipantStatusChanged { .. }
        | Event::WithdrawalsSuspended { .. }
        | Event::ResolutionProposed { .. }
        | Event::VoteCast { .. }
        | Event::ResolutionClosed { .. }
        | Event::AccreditedCategoriesSet { .. }
        | Event::ServicePackageDefined { .. }
        | Event::VoucherSplit { .. }
        | Event::ServiceValueRedeemed { .. }
        | Event::TimeCredits { .. }
        | Event::NettingCycleClosed { .. } => {}
    }
}

impl Engine {
    /// The accounts `events` changed, as they stand now (call it right after the command that
    /// produced them): cash accounts in participant order, then unit accounts in (participant,
    /// instrument) order, each once. Replaces what `out` held; it allocates nothing beyond `out`.
    pub fn accounts_after(&self, events: &[Event], out: &mut Vec<AccountAfter>) {
        out.clear();
        if events.is_empty() {
            return;
        }
        let mut named = Touched(out);
        for event in events {
            touched(self, event, &mut named);
        }
        // With their amounts still zero, entries order by variant (cash first) and then by their
        // participant (and instrument): sorting by that key, one integer compare, gives the
        // derived order, and removing repeats is exact.
        out.sort_unstable_by_key(AccountAfter::order_key);
        out.dedup();
        out.retain_mut(|account| match account {
            AccountAfter::Cash {
                participant,
                balance_minor,
                reserved_minor,
            } => match self.participant(*participant) {
                Some(found) => {
                    *balance_minor = found.cash.balance_minor;
                    *reserved_minor = found.cash.reserved_minor;
                    true
                }
                None => false,
            },
            AccountAfter::Units {
                participant,
                instrument,
                lots,
                reserved_lots,
            } => {
                let holding = self
                    .instrument(*instrument)
                    .and_then(|instrument| instrument.holding(*participant));
                *lots = holding.map_or(0, |holding| holding.lots);
                *reserved_lots = holding.map_or(0, |holding| holding.reserved_lots);
                true
            }
        });
    }
}

impl Command {
    /// The one participant entitled to see this command's fields, when they are private: a
    /// voucher's issue names its co-payment, which only its funder may know.
    pub fn private_to(&self) -> Option<ParticipantId> {
        match self.kind {
            CommandKind::IssueVoucher { .. } => Some(self.participant),
            _ => None,
        }
    }
}

impl Event {
    /// Participants whose cash, shown beside this event, would state a private amount: a
    /// voucher's beneficiary pays or gets back its co-payment and its funder receives it, so
    /// their balances after a voucher's issue, redemption or expiry are withheld from the audit
    /// feed along with the split itself.
    pub fn withholds_cash_of(&self) -> [Option<ParticipantId>; 2] {
        match self {
            Event::VoucherIssued {
                funder,
                beneficiary,
                ..
            }
            | Event::VoucherExpired {
                funder,
                beneficiary,
                ..
            }
            | Event::VoucherSplit {
                funder,
                beneficiary,
                ..
            } => [Some(*funder), Some(*beneficiary)],
            Event::VoucherRedeemed { beneficiary, .. } => [Some(*beneficiary), None],
            Event::ObligationRecorded {
                debtor,
                cause: crate::command::ObligationCause::Voucher(_),
                ..
            } => [Some(*debtor), None],
            _ => [None, None],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_key_sorts_as_the_derived_order() {
        let mut entries = Vec::new();
        for participant in [0, 1, 7, u32::MAX] {
            entries.push(AccountAfter::Cash {
                participant: ParticipantId(participant),
                balance_minor: 0,
                reserved_minor: 0,
            });
            for instrument in [0, 3, u32::MAX] {
                entries.push(AccountAfter::Units {
                    participant: ParticipantId(participant),
                    instrument: InstrumentId(instrument),
                    lots: 0,
                    reserved_lots: 0,
                });
            }
        }
        entries.reverse();
        let mut by_key = entries.clone();
        by_key.sort_unstable_by_key(AccountAfter::order_key);
        entries.sort_unstable();
        assert_eq!(by_key, entries);
    }
}
