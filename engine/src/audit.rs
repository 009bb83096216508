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
    pub fn participant(&self) -> ParticipantId {
        match self {
            AccountAfter::Cash { participant, .. } | AccountAfter::Units { participant, .. } => {
                *participant
            }
        }
    }
}

/// The accounts one event changes: cash accounts by participant, unit accounts by (instrument,
/// participant). Accounts the event does not name (an offering's or an instrument's issuer, a
/// reduced order's owner) are resolved from `engine`.
fn touched(
    engine: &Engine,
    event: &Event,
    cash: &mut Vec<ParticipantId>,
    units: &mut Vec<(InstrumentId, ParticipantId)>,
) {
    match event {
        Event::CashDeposited { account, .. } | Event::CashWithdrawn { account, .. } => {
            cash.push(*account)
        }
        Event::Subscribed { contributor, .. }
        | Event::SubscriptionReleased { contributor, .. }
        | Event::SubscriptionScaledBack { contributor, .. } => cash.push(*contributor),
        Event::UnitsIssued {
            instrument,
            contributor,
            ..
        } => {
            cash.push(*contributor);
            units.push((*instrument, *contributor));
        }
        Event::OfferingClosed { offering, .. } => {
            if let Some(offering) = engine.offering(*offering) {
                cash.push(offering.issuer);
            }
        }
        Event::OrderAccepted {
            instrument, owner, ..
        }
        | Event::OrderCancelled {
            instrument, owner, ..
        } => {
            cash.push(*owner);
            units.push((*instrument, *owner));
        }
        Event::OrderReduced { order, .. } => {
            if let Some(order) = engine.order(*order) {
                cash.push(order.owner);
                units.push((order.instrument, order.owner));
            }
        }
        Event::Trade {
            instrument,
            maker,
            taker,
            ..
        } => {
            cash.push(*maker);
            cash.push(*taker);
            units.push((*instrument, *maker));
            units.push((*instrument, *taker));
        }
        Event::DistributionPaid { issuer, .. } => cash.push(*issuer),
        Event::DistributionReceived { holder, .. } => cash.push(*holder),
        Event::ParRepaid {
            instrument, holder, ..
        } => {
            cash.push(*holder);
            units.push((*instrument, *holder));
        }
        Event::InstrumentMatured { instrument, .. } => {
            if let Some(instrument) = engine.instrument(*instrument) {
                cash.push(instrument.spec.issuer);
            }
        }
        Event::WithdrawalRequested {
            instrument, holder, ..
        }
        | Event::WithdrawalCancelled {
            instrument, holder, ..
        } => units.push((*instrument, *holder)),
        Event::WithdrawalPaid {
            instrument,
            holder,
            issuer,
            ..
        } => {
            cash.push(*holder);
            cash.push(*issuer);
            units.push((*instrument, *holder));
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
            cash.push(*funder);
            cash.push(*beneficiary);
        }
        Event::VoucherRedeemed { beneficiary, .. } => cash.push(*beneficiary),
        Event::ObligationRecorded { debtor, .. } => cash.push(*debtor),
        Event::PoolContributed { contributor, .. } => cash.push(*contributor),
        Event::PoolLoanRepaid { debtor, .. } => cash.push(*debtor),
        Event::NettingPosition { participant, .. } => cash.push(*participant),
        Event::SurplusDeclared { organization, .. } => cash.push(*organization),
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
    /// instrument) order, each once. Appends to `out`.
    pub fn accounts_after(&self, events: &[Event], out: &mut Vec<AccountAfter>) {
        if events.is_empty() {
            return;
        }
        let mut cash = Vec::new();
        let mut units = Vec::new();
        for event in events {
            touched(self, event, &mut cash, &mut units);
        }
        cash.sort_unstable();
        cash.dedup();
        units.sort_unstable_by_key(|(instrument, participant)| (*participant, *instrument));
        units.dedup();
        for participant in cash {
            if let Some(account) = self.participant(participant) {
                out.push(AccountAfter::Cash {
                    participant,
                    balance_minor: account.cash.balance_minor,
                    reserved_minor: account.cash.reserved_minor,
                });
            }
        }
        for (instrument, participant) in units {
            let holding = self
                .instrument(instrument)
                .and_then(|instrument| instrument.holding(participant));
            out.push(AccountAfter::Units {
                participant,
                instrument,
                lots: holding.map_or(0, |holding| holding.lots),
                reserved_lots: holding.map_or(0, |holding| holding.reserved_lots),
            });
        }
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
