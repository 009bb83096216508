//! The engine's whole state in one canonical, serializable form: what the journal stores at a
//! snapshot point and what `state_hash` hashes.
//!
//! Canonical means independent of history that does not matter: holders are sorted, orders are
//! listed in priority order, slab slots and hash-map layouts are left out. Two engines that would
//! behave identically from here on have equal snapshots and equal hashes.

use serde::{Deserialize, Serialize};

use crate::book::{Book, Order, OrderSlab};
use crate::command::{CommandId, InstrumentId, InstrumentSpec, ParticipantId, Side, Timestamp};
use crate::config::MarketConfig;
use crate::dedup::{Dedup, Remembered};
use crate::identity::{Credential, Credentials};
use crate::instrument::{Instrument, InstrumentStatus, Offering, TaxCredit, Terms};
use crate::invariants::InvariantViolation;
use crate::ledger::{Holding, Participant};
use crate::membership::{Membership, Resolution};
use crate::social::{Social, SocialSnapshot};
use crate::withdrawals::{Withdrawal, Withdrawals};
use crate::Engine;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub config: MarketConfig,
    pub now: Timestamp,
    pub next_order_id: u64,
    pub deposited_minor: u128,
    pub withdrawn_minor: u128,
    pub participants: Vec<Participant>,
    pub instruments: Vec<InstrumentSnapshot>,
    pub offerings: Vec<Offering>,
    pub tax_credits: Vec<TaxCredit>,
    /// Commands applied since genesis (the journal sequence number).
    pub commands_applied: u64,
    /// Each participant's remembered command ids, oldest first, participants in id order.
    pub remembered: Vec<(ParticipantId, Vec<(CommandId, Remembered)>)>,
    /// Every credential ever issued, in id order.
    pub credentials: Vec<Credential>,
    /// Pending withdrawals in id order, and the next id to give.
    pub withdrawals_pending: Vec<Withdrawal>,
    pub next_withdrawal_id: u64,
    /// Every resolution ever put, in id order, with its votes.
    pub resolutions: Vec<Resolution>,
    /// Vouchers, the pool and its positions, time credits, service value, surpluses.
    pub social: SocialSnapshot,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstrumentSnapshot {
    pub spec: InstrumentSpec,
    pub terms: Terms,
    pub status: InstrumentStatus,
    /// Sorted by holder.
    pub holdings: Vec<(ParticipantId, Holding)>,
    /// Best price first, then time priority.
    pub bids: Vec<Order>,
    pub asks: Vec<Order>,
}

/// A BLAKE3 hash of the canonical snapshot.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StateHash(pub [u8; 32]);

impl std::fmt::Display for StateHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for StateHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StateHash({self})")
    }
}

impl Snapshot {
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("a snapshot always serializes")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Snapshot, postcard::Error> {
        postcard::from_bytes(bytes)
    }

    pub fn hash(&self) -> StateHash {
        StateHash(*blake3::hash(&self.to_bytes()).as_bytes())
    }
}

fn orders_in_priority(book: &Book, side: Side, slab: &OrderSlab) -> Vec<Order> {
    let mut orders = Vec::new();
    book.for_each_in_priority(side, slab, |_, order| orders.push(order.detached()));
    orders
}

impl Engine {
    pub fn snapshot(&self) -> Snapshot {
        let instruments = self
            .instruments
            .iter()
            .map(|instrument| {
                let holdings = instrument
                    .holders_sorted()
                    .into_iter()
                    .map(|holder| (holder, instrument.holdings[&holder].clone()))
                    .collect();
                InstrumentSnapshot {
                    spec: instrument.spec.clone(),
                    terms: instrument.terms,
                    status: instrument.status,
                    holdings,
                    bids: orders_in_priority(&instrument.book, Side::Buy, &self.orders),
                    asks: orders_in_priority(&instrument.book, Side::Sell, &self.orders),
                }
            })
            .collect();
        Snapshot {
            config: self.config.clone(),
            now: self.now,
            next_order_id: self.next_order_id,
            deposited_minor: self.deposited_minor,
            withdrawn_minor: self.withdrawn_minor,
            participants: self.participants.clone(),
            instruments,
            offerings: self.offerings.clone(),
            tax_credits: self.tax_credits.clone(),
            commands_applied: self.commands_applied,
            remembered: self.dedup.entries(),
            credentials: self.credentials.all.clone(),
            withdrawals_pending: self.withdrawals.pending.values().copied().collect(),
            next_withdrawal_id: self.withdrawals.next_id,
            resolutions: self.membership.resolutions.clone(),
            social: self.social.snapshot(),
        }
    }

    /// A hash of the whole state: equal for engines that will behave identically.
    pub fn state_hash(&self) -> StateHash {
        self.snapshot().hash()
    }

    /// Rebuilds an engine from a snapshot and checks every invariant before handing it out.
    pub fn from_snapshot(snapshot: Snapshot) -> Result<Engine, InvariantViolation> {
        let mut engine = Engine::new(snapshot.config.clone());
        engine.participants = snapshot.participants;
        engine.offerings = snapshot.offerings;
        engine.tax_credits = snapshot.tax_credits;
        engine.now = snapshot.now;
        engine.next_order_id = snapshot.next_order_id;
        engine.deposited_minor = snapshot.deposited_minor;
        engine.withdrawn_minor = snapshot.withdrawn_minor;
        engine.commands_applied = snapshot.commands_applied;
        engine.dedup = Dedup::restore(
            snapshot.config.command_ids_per_participant_max,
            &snapshot.remembered,
        );
        engine.credentials = Credentials::restore(snapshot.credentials);
        engine.withdrawals =
            Withdrawals::restore(snapshot.withdrawals_pending, snapshot.next_withdrawal_id);
        engine.membership = Membership::restore(snapshot.resolutions);
        engine.social = Social::restore(snapshot.social);
        for (index, saved) in snapshot.instruments.into_iter().enumerate() {
            let id = InstrumentId(index as u32);
            let mut instrument = Instrument::restore(
                id,
                saved.spec,
                saved.terms,
                saved.status,
                engine.config.price_levels_max,
            );
            instrument.holdings.extend(saved.holdings);
            for order in saved.bids.into_iter().chain(saved.asks) {
                if order.instrument != id || order.price_ticks > instrument.terms.price_ticks_max {
                    return Err(InvariantViolation(format!(
                        "snapshot order {:?} does not fit instrument {index}",
                        order.id
                    )));
                }
                let (order_id, side) = (order.id, order.side);
                let slot = engine.orders.insert(order);
                instrument
                    .book
                    .side_mut(side)
                    .push_back(&mut engine.orders, slot);
                engine.order_slots.insert(order_id, slot);
            }
            engine.symbols.insert(instrument.spec.symbol.clone(), id);
            if let (Some(maturity_time), false) =
                (instrument.spec.maturity_time, instrument.status.matured)
            {
                engine.social.maturing.insert((maturity_time, id));
            }
            engine
                .shares_by_issuer
                .entry(instrument.spec.issuer)
                .or_default()
                .push(id);
            engine.instruments.push(instrument);
        }
        engine.check_invariants()?;
        Ok(engine)
    }
}
