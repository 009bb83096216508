//! What must hold after every command: cash and units conserved, every reservation backed and
//! accounted for, no crossed book. Tests call `check_invariants` after every step, and the
//! journal before every snapshot.

use rustc_hash::FxHashMap;

use crate::book::NIL;
use crate::command::{ParticipantId, Side};
use crate::Engine;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvariantViolation(pub String);

impl std::fmt::Display for InvariantViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invariant violated: {}", self.0)
    }
}

impl std::error::Error for InvariantViolation {}

macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(InvariantViolation(format!($($message)+)));
        }
    };
}

impl Engine {
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        self.check_cash()?;
        self.check_instruments()?;
        self.check_identity()?;
        self.check_withdrawals()?;
        self.check_resolutions()?;
        self.check_social()?;
        ensure!(
            self.order_slots.len() == self.orders.len(),
            "order index holds {} ids for {} orders",
            self.order_slots.len(),
            self.orders.len()
        );
        Ok(())
    }

    /// Sum of balances = deposits − withdrawals; each reservation = what backs it.
    fn check_cash(&self) -> Result<(), InvariantViolation> {
        let mut expected_reserved: FxHashMap<ParticipantId, u128> = FxHashMap::default();
        for order in self.order_slots.values().map(|slot| self.orders.get(*slot)) {
            if order.side == Side::Buy {
                let instrument = &self.instruments[order.instrument.0 as usize];
                let amount = u128::from(order.price_ticks)
                    * u128::from(order.remaining_lots)
                    * u128::from(instrument.terms.tick_value_minor);
                *expected_reserved.entry(order.owner).or_default() += amount;
            }
        }
        for offering in self.offerings.iter().filter(|offering| offering.open) {
            for subscription in &offering.subscriptions {
                *expected_reserved
                    .entry(subscription.contributor)
                    .or_default() += u128::from(subscription.cash_reserved_minor);
            }
        }
        let vouchers = &self.social.vouchers;
        for voucher in vouchers.open.values() {
            *expected_reserved.entry(voucher.funder).or_default() +=
                u128::from(voucher.face_value_minor);
            *expected_reserved.entry(voucher.beneficiary).or_default() +=
                u128::from(voucher.co_payment_minor);
        }
        for (funder, backing) in &vouchers.backing_minor {
            *expected_reserved.entry(*funder).or_default() += u128::from(*backing);
        }
        // The pool, the indivisible reserves and the social economy fund hold cash too.
        let mut total: u128 = self.social.pool.cash_held_minor();
        for (id, participant) in self.participants() {
            let cash = participant.cash;
            ensure!(
                cash.reserved_minor <= cash.balance_minor,
                "participant {} reserves {} of {}",
                id.0,
                cash.reserved_minor,
                cash.balance_minor
            );
            let expected = expected_reserved.get(&id).copied().unwrap_or(0);
            ensure!(
                u128::from(cash.reserved_minor) == expected,
                "participant {} reserves {} cash but its orders, subscriptions and vouchers need {}",
                id.0,
                cash.reserved_minor,
                expected
            );
            total += u128::from(cash.balance_minor);
        }
        let circulating = self.deposited_minor - self.withdrawn_minor;
        ensure!(
            total == circulating,
            "cash balances, the pool, reserves and fund sum to {total} but deposits less withdrawals are {circulating}"
        );
        Ok(())
    }

    /// Credentials name registered participants, the live index matches them, and a suspended
    /// participant has nothing resting.
    fn check_identity(&self) -> Result<(), InvariantViolation> {
        let mut live: FxHashMap<ParticipantId, Vec<crate::CredentialId>> = FxHashMap::default();
        for (id, credential) in self.credentials() {
            ensure!(
                self.participant(credential.participant).is_some(),
                "credential {} names unknown participant {}",
                id.0,
                credential.participant.0
            );
            ensure!(
                credential
                    .revoked_at
                    .is_none_or(|revoked| revoked >= credential.issued_at),
                "credential {} was revoked before it was issued",
                id.0
            );
            if credential.is_live() {
                live.entry(credential.participant).or_default().push(id);
            }
        }
        for (participant, ids) in &live {
            ensure!(
                self.live_credentials_of(*participant) == ids.as_slice(),
                "participant {}'s live credentials are indexed wrongly",
                participant.0
            );
            ensure!(
                ids.len() <= self.config.credentials_per_participant_max as usize,
                "participant {} holds {} live credentials",
                participant.0,
                ids.len()
            );
        }
        for (id, _) in self.participants() {
            if live.get(&id).is_none() {
                ensure!(
                    self.live_credentials_of(id).is_empty(),
                    "participant {} has live credentials indexed that are revoked",
                    id.0
                );
            }
        }
        // One pass over the orders, whatever the number of suspended participants.
        for order in self.order_slots.values().map(|slot| self.orders.get(*slot)) {
            let suspended = self
                .participant(order.owner)
                .is_some_and(|owner| owner.suspended);
            ensure!(
                !suspended,
                "suspended participant {} has resting order {:?}",
                order.owner.0,
                order.id
            );
        }
        Ok(())
    }

    fn check_instruments(&self) -> Result<(), InvariantViolation> {
        let mut resting_total = 0usize;
        for instrument in &self.instruments {
            let name = &instrument.spec.symbol;
            // Expected per-holder reservations, from the book and the open offering.
            let mut sell_lots: FxHashMap<ParticipantId, u64> = FxHashMap::default();
            let mut buy_lots: FxHashMap<ParticipantId, u64> = FxHashMap::default();
            let mut subscribed: FxHashMap<ParticipantId, u64> = FxHashMap::default();
            for side in [Side::Buy, Side::Sell] {
                let ladder = instrument.book.side(side);
                let mut orders_seen = 0u32;
                let mut price = ladder.best();
                while let Some(level_price) = price {
                    let (mut lots, mut count, mut slot) = (0u64, 0u32, ladder.head(level_price));
                    ensure!(
                        slot != NIL,
                        "{name}: occupied level {level_price} has no orders"
                    );
                    while slot != NIL {
                        let order = self.orders.get(slot);
                        ensure!(
                            order.side == side
                                && order.price_ticks == level_price
                                && order.instrument == instrument.id,
                            "{name}: order {:?} sits at the wrong level",
                            order.id
                        );
                        ensure!(
                            order.remaining_lots > 0,
                            "{name}: order {:?} rests with nothing left",
                            order.id
                        );
                        ensure!(
                            self.order_slots.get(&order.id) == Some(&slot),
                            "{name}: order {:?} is not indexed",
                            order.id
                        );
                        let per_side = if side == Side::Buy {
                            &mut buy_lots
                        } else {
                            &mut sell_lots
                        };
                        *per_side.entry(order.owner).or_default() += order.remaining_lots;
                        lots += order.remaining_lots;
                        count += 1;
                        slot = order.next_slot();
                    }
                    ensure!(
                        lots == ladder.lots_at(level_price)
                            && count == ladder.orders_at(level_price),
                        "{name}: level {level_price} totals disagree with its orders"
                    );
                    orders_seen += count;
                    price = ladder.next_worse(level_price);
                }
                ensure!(
                    orders_seen == ladder.orders(),
                    "{name}: {:?} side counts {} orders but links {}",
                    side,
                    ladder.orders(),
                    orders_seen
                );
                resting_total += orders_seen as usize;
            }
            if let (Some(bid), Some(ask)) =
                (instrument.book.bids.best(), instrument.book.asks.best())
            {
                ensure!(bid < ask, "{name}: book crossed, bid {bid} >= ask {ask}");
            }
            if let Some(offering) = instrument.status.open_offering {
                for subscription in &self.offerings[offering.0 as usize].subscriptions {
                    *subscribed.entry(subscription.contributor).or_default() += subscription.lots;
                }
            }
            let mut held: u64 = 0;
            for (holder, holding) in &instrument.holdings {
                let locked: u64 = holding.locks.iter().map(|lock| lock.lots).sum();
                ensure!(
                    holding.reserved_lots + holding.withdrawing_lots + locked <= holding.lots,
                    "{name}: holder {} reserves {}, withdraws {} and locks {} of {} lots",
                    holder.0,
                    holding.reserved_lots,
                    holding.withdrawing_lots,
                    locked,
                    holding.lots
                );
                ensure!(
                    holding.reserved_lots == sell_lots.get(holder).copied().unwrap_or(0),
                    "{name}: holder {} reserves {} lots but sells {}",
                    holder.0,
                    holding.reserved_lots,
                    sell_lots.get(holder).copied().unwrap_or(0)
                );
                ensure!(
                    holding.open_buy_lots == buy_lots.get(holder).copied().unwrap_or(0),
                    "{name}: holder {} counts {} lots of open buys but bids {}",
                    holder.0,
                    holding.open_buy_lots,
                    buy_lots.get(holder).copied().unwrap_or(0)
                );
                ensure!(
                    holding.subscribed_lots == subscribed.get(holder).copied().unwrap_or(0),
                    "{name}: holder {} counts {} subscribed lots",
                    holder.0,
                    holding.subscribed_lots
                );
                held += holding.lots;
            }
            for owner in sell_lots.keys().chain(buy_lots.keys()) {
                ensure!(
                    instrument.holdings.contains_key(owner),
                    "{name}: participant {} has orders but no holding entry",
                    owner.0
                );
            }
            ensure!(
                held == instrument.lots_outstanding(),
                "{name}: holdings sum to {held} lots but {} are outstanding",
                instrument.lots_outstanding()
            );
            let status = &instrument.status;
            ensure!(
                status.first_issue_time.is_some() == (status.lots_issued > 0),
                "{name}: first issue time {:?} with {} lots issued",
                status.first_issue_time,
                status.lots_issued
            );
            ensure!(
                status.distributed_per_lot_minor
                    <= instrument.accrued_return_per_lot_minor(self.now),
                "{name}: {} per lot distributed, above the {} accrued",
                status.distributed_per_lot_minor,
                instrument.accrued_return_per_lot_minor(self.now)
            );
            ensure!(
                instrument.terms.price_floor_ticks <= instrument.spec.par_ticks,
                "{name}: floor above par"
            );
            ensure!(
                !instrument.spec.withdrawable
                    || instrument.terms.price_floor_ticks == instrument.spec.par_ticks,
                "{name}: a withdrawable share's floor is not par"
            );
        }
        ensure!(
            resting_total == self.orders.len(),
            "books link {resting_total} orders but the slab holds {}",
            self.orders.len()
        );
        Ok(())
    }

    /// Units under notice are exactly the pending withdrawals, of withdrawable shares.
    fn check_withdrawals(&self) -> Result<(), InvariantViolation> {
        let mut expected: FxHashMap<(crate::InstrumentId, ParticipantId), u64> =
            FxHashMap::default();
        for withdrawal in self.withdrawals_pending() {
            let instrument = self.instrument(withdrawal.instrument);
            ensure!(
                instrument.is_some_and(|share| share.spec.withdrawable),
                "withdrawal {:?} is of an instrument that is not withdrawable",
                withdrawal.id
            );
            ensure!(
                withdrawal.id.0 < self.withdrawals.next_id,
                "withdrawal {:?} is numbered past the next id",
                withdrawal.id
            );
            ensure!(
                withdrawal.lots > 0,
                "withdrawal {:?} is of no lots",
                withdrawal.id
            );
            *expected
                .entry((withdrawal.instrument, withdrawal.holder))
                .or_default() += withdrawal.lots;
        }
        for instrument in &self.instruments {
            for (holder, holding) in &instrument.holdings {
                let pending = expected
                    .get(&(instrument.id, *holder))
                    .copied()
                    .unwrap_or(0);
                ensure!(
                    holding.withdrawing_lots == pending,
                    "{}: holder {} holds back {} lots but has {} under notice",
                    instrument.spec.symbol,
                    holder.0,
                    holding.withdrawing_lots,
                    pending
                );
            }
        }
        for (instrument, holder) in expected.keys() {
            ensure!(
                self.instruments[instrument.0 as usize]
                    .holdings
                    .contains_key(holder),
                "withdrawal by participant {} without a holding",
                holder.0
            );
        }
        Ok(())
    }

    /// Resolutions are put by organizations, voted by contributors, and counted per organization.
    fn check_resolutions(&self) -> Result<(), InvariantViolation> {
        let mut open: FxHashMap<ParticipantId, u32> = FxHashMap::default();
        for (index, resolution) in self.resolutions().enumerate() {
            ensure!(
                resolution.id.0 as usize == index,
                "resolution {} is stored at {index}",
                resolution.id.0
            );
            let organization = self.participant(resolution.organization).map(|p| p.role);
            ensure!(
                organization == Some(crate::Role::Organization),
                "resolution {} was put by participant {} who is not an organization",
                index,
                resolution.organization.0
            );
            for (member, vote) in &resolution.votes {
                ensure!(
                    self.participant(*member).map(|p| p.role) == Some(crate::Role::Contributor),
                    "resolution {index}: participant {} voted but is not a contributor",
                    member.0
                );
                ensure!(
                    vote.cast_at >= resolution.proposed_at && vote.cast_at < resolution.closes_at,
                    "resolution {index}: a vote was cast outside the voting period"
                );
            }
            match resolution.result {
                None => *open.entry(resolution.organization).or_default() += 1,
                Some(result) => {
                    let counted = result.votes_for
                        + result.votes_against
                        + result.abstentions
                        + result.votes_lapsed;
                    ensure!(
                        counted as usize == resolution.votes.len(),
                        "resolution {index} counts {counted} of {} votes",
                        resolution.votes.len()
                    );
                    ensure!(
                        result.passed == (result.votes_for > result.votes_against),
                        "resolution {index}: result disagrees with its count"
                    );
                }
            }
        }
        for (organization, count) in &open {
            ensure!(
                self.membership.open_of(*organization) == *count,
                "organization {} has {count} open resolutions, counted {}",
                organization.0,
                self.membership.open_of(*organization)
            );
            ensure!(
                *count <= self.config.resolutions_open_per_organization_max,
                "organization {} has {count} open resolutions",
                organization.0
            );
        }
        Ok(())
    }
}

impl Engine {
    /// Obligations, time credits and vouchers balance; every index matches what it indexes.
    fn check_social(&self) -> Result<(), InvariantViolation> {
        let pool = &self.social.pool;
        let (mut owes, mut owed_to): (u128, u128) = (0, 0);
        for (participant, position) in &pool.positions {
            ensure!(
                self.participant(*participant).is_some(),
                "a position names unknown participant {}",
                participant.0
            );
            owes += u128::from(position.owes_minor);
            owed_to += u128::from(position.owed_to_minor);
        }
        ensure!(
            owes == owed_to,
            "obligations owed sum to {owes} but obligations due sum to {owed_to}"
        );
        ensure!(
            pool.gross_open_minor == owes,
            "open obligations are recorded as {} but positions owe {owes}",
            pool.gross_open_minor
        );
        ensure!(
            pool.loans.values().all(|loan| *loan > 0),
            "a repaid pool loan is still listed"
        );
        for (organization, _) in &pool.reserves {
            ensure!(
                self.participant(*organization)
                    .is_some_and(|p| p.role == crate::Role::Organization),
                "participant {} holds an indivisible reserve but is no organization",
                organization.0
            );
        }

        let time = &self.social.time;
        let held: u128 = time.balances.values().map(|m| u128::from(*m)).sum();
        ensure!(
            held + u128::from(time.pool_minutes) == time.earned_minutes,
            "time credits held ({held}) and pooled ({}) differ from those earned ({})",
            time.pool_minutes,
            time.earned_minutes
        );
        ensure!(
            time.balances.values().all(|minutes| *minutes > 0),
            "an empty time-credit account is listed"
        );

        let vouchers = &self.social.vouchers;
        let open_records = vouchers
            .records
            .iter()
            .filter(|record| record.status == crate::VoucherStatus::Open)
            .count();
        ensure!(
            open_records == vouchers.open.len() && vouchers.expiry_len() == vouchers.open.len(),
            "{} vouchers are recorded open, {} are held open and {} are indexed by expiry",
            open_records,
            vouchers.open.len(),
            vouchers.expiry_len()
        );
        for voucher in vouchers.open.values() {
            let record = vouchers.records.get(voucher.id.0 as usize);
            let package = vouchers.packages.get(voucher.package.0 as usize);
            ensure!(
                record.is_some_and(|r| r.status == crate::VoucherStatus::Open
                    && r.beneficiary == voucher.beneficiary
                    && r.funder == voucher.funder)
                    && package.is_some_and(|p| p.funder == voucher.funder
                        && p.face_value_minor == voucher.face_value_minor)
                    && voucher.co_payment_minor <= voucher.face_value_minor,
                "open voucher {} disagrees with its record or its package",
                voucher.id.0
            );
        }
        let issued: u64 = vouchers.totals.values().map(|totals| totals.issued).sum();
        ensure!(
            issued == vouchers.records.len() as u64,
            "funders' totals count {issued} vouchers but {} were issued",
            vouchers.records.len()
        );
        Ok(())
    }
}
