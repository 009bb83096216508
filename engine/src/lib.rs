//! Mutua's engine: a deterministic state machine that takes one command and a timestamp and
//! produces events. It owns the ledger, the order books, offerings and distributions.
//!
//! The engine has no clock, no randomness and no I/O: time and ids come in with each command,
//! and events go into a buffer the caller owns. Applying the same commands with the same
//! timestamps from the same starting state always gives the same events and the same
//! [`Engine::state_hash`]. The sequencer thread in the gateway is its only caller.

pub mod audit;
pub mod book;
pub mod calendar;
pub mod command;
pub mod config;
mod dedup;
pub mod identity;
mod income;
pub mod instrument;
mod invariants;
pub mod ledger;
pub mod membership;
mod primary;
mod registry;
pub mod snapshot;
pub mod social;
mod trading;
pub mod units;
pub mod withdrawals;

use rustc_hash::FxHashMap;

pub use audit::AccountAfter;
pub use book::{Order, OrderSlab};
pub use command::*;
pub use config::MarketConfig;
pub use dedup::{command_digest, Remembered};
pub use identity::Credential;
pub use instrument::{Instrument, Offering, Subscription, TaxCredit};
pub use invariants::InvariantViolation;
pub use ledger::{CashAccount, Holding, Participant};
pub use membership::{Resolution, ResolutionResult, Vote};
pub use snapshot::{Snapshot, StateHash};
pub use social::{FunderTotals, Position, ServicePackage, Voucher, VoucherRecord, VoucherStatus};
pub use withdrawals::Withdrawal;

use dedup::Dedup;

/// The whole state of one market.
#[derive(Clone, Debug)]
pub struct Engine {
    config: MarketConfig,
    participants: Vec<Participant>,
    instruments: Vec<Instrument>,
    symbols: FxHashMap<String, InstrumentId>,
    /// Each issuer's instruments in listing order. Derived from `instruments`.
    shares_by_issuer: FxHashMap<ParticipantId, Vec<InstrumentId>>,
    offerings: Vec<Offering>,
    orders: OrderSlab,
    /// Resting order id → slab slot.
    order_slots: book::OrderIndex,
    next_order_id: u64,
    tax_credits: Vec<TaxCredit>,
    /// Every unit of cash entered through a deposit and left through a withdrawal.
    deposited_minor: u128,
    withdrawn_minor: u128,
    dedup: Dedup,
    credentials: identity::Credentials,
    withdrawals: withdrawals::Withdrawals,
    membership: membership::Membership,
    social: social::Social,
    /// Commands applied since genesis, retries and rejections included: the journal sequence
    /// number of the latest command, which is where a retry's first outcome is found.
    commands_applied: u64,
    /// The latest time seen; the engine's notion of now never goes backwards.
    now: Timestamp,
}

/// The genesis operator, present in every market from the start.
pub const GENESIS_OPERATOR: ParticipantId = ParticipantId(0);

impl Engine {
    pub fn new(config: MarketConfig) -> Engine {
        let orders_hint = (config.orders_max as usize).min(1 << 16);
        let mut engine = Engine {
            dedup: Dedup::new(config.command_ids_per_participant_max),
            credentials: identity::Credentials::default(),
            commands_applied: 0,
            config,
            participants: Vec::new(),
            instruments: Vec::new(),
            symbols: FxHashMap::default(),
            shares_by_issuer: FxHashMap::default(),
            withdrawals: withdrawals::Withdrawals::default(),
            membership: membership::Membership::default(),
            social: social::Social::default(),
            offerings: Vec::new(),
            orders: OrderSlab::with_capacity(orders_hint),
            order_slots: book::OrderIndex::default(),
            next_order_id: 1,
            tax_credits: Vec::new(),
            deposited_minor: 0,
            withdrawn_minor: 0,
            now: 0,
        };
        engine.participants.push(Participant {
            role: Role::Operator,
            name: "genesis operator".to_string(),
            accredited: false,
            suspended: false,
            cash: CashAccount::default(),
        });
        engine
    }

    /// Applies one command at `timestamp`, appending its events to `events`. A rejected command
    /// appends nothing and changes nothing but the memory of its id. A command whose id the
    /// participant used before returns the first outcome and applies nothing, if it is the same
    /// command; a different command under a used id is refused with `RequestIdReused`.
    pub fn apply(
        &mut self,
        command: &Command,
        timestamp: Timestamp,
        events: &mut Vec<Event>,
    ) -> Outcome {
        self.now = self.now.max(timestamp);
        self.commands_applied += 1;
        // The clock's ticks are not remembered: a tick repeated does nothing more than the
        // first, and ticks must not crowd the operator's own request ids out of its window.
        if matches!(command.kind, CommandKind::Tick) {
            return Outcome::fresh(self.dispatch(command, events));
        }
        let digest = command_digest(&command.kind);
        if let Some(first) = self.dedup.get(command.participant, command.id) {
            if first.digest != digest {
                return Outcome::fresh(Err(RejectReason::RequestIdReused));
            }
            return Outcome {
                result: first.result,
                replayed: Some(first.sequence),
            };
        }
        let events_before = events.len();
        let result = self.dispatch(command, events);
        debug_assert!(
            result.is_ok() || events.len() == events_before,
            "a rejection emitted events"
        );
        // A command from nobody registered changed nothing and has no window to be kept in.
        if (command.participant.0 as usize) < self.participants.len() {
            let remembered = Remembered {
                digest,
                result,
                sequence: self.commands_applied,
            };
            self.dedup
                .remember(command.participant, command.id, remembered);
        }
        Outcome::fresh(result)
    }

    fn dispatch(
        &mut self,
        command: &Command,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let who = command.participant;
        let caller = self
            .participant(who)
            .ok_or(RejectReason::UnknownParticipant)?;
        if caller.suspended {
            return Err(RejectReason::ParticipantSuspended);
        }
        let role = caller.role;
        let allowed = |roles: &[Role]| {
            if roles.contains(&role) {
                Ok(())
            } else {
                Err(RejectReason::RoleNotAllowed)
            }
        };
        match &command.kind {
            CommandKind::PlaceOrder {
                instrument,
                side,
                price_ticks,
                lots,
                time_in_force,
                self_trade,
            } => {
                allowed(&[Role::Contributor])?;
                let request = trading::PlaceRequest {
                    owner: who,
                    instrument: *instrument,
                    side: *side,
                    price_ticks: *price_ticks,
                    lots: *lots,
                    time_in_force: *time_in_force,
                    self_trade: *self_trade,
                };
                self.place_order(request, events)
            }
            CommandKind::CancelOrder { order } => {
                allowed(&[Role::Contributor])?;
                self.cancel_order(who, *order, events)
            }
            CommandKind::ReduceOrder {
                order,
                reduce_by_lots,
            } => {
                allowed(&[Role::Contributor])?;
                self.reduce_order(who, *order, *reduce_by_lots, events)
            }
            CommandKind::RegisterParticipant {
                role: new_role,
                name,
            } => {
                allowed(&[Role::Operator])?;
                self.register_participant(*new_role, name, events)
            }
            CommandKind::SetAccreditation {
                organization,
                accredited,
            } => {
                allowed(&[Role::Regulator, Role::Operator])?;
                self.set_accreditation(*organization, *accredited, events)
            }
            CommandKind::Deposit {
                account,
                amount_minor,
            } => {
                allowed(&[Role::Operator])?;
                self.deposit(*account, *amount_minor, events)
            }
            CommandKind::Withdraw {
                account,
                amount_minor,
            } => {
                allowed(&[Role::Operator])?;
                self.withdraw(*account, *amount_minor, events)
            }
            CommandKind::ListInstrument { spec } => {
                allowed(&[Role::Operator])?;
                self.list_instrument(spec, events)
            }
            CommandKind::SetTradingStatus { instrument, open } => {
                allowed(&[Role::Operator])?;
                self.set_trading_status(*instrument, *open, events)
            }
            CommandKind::OpenOffering {
                instrument,
                lots,
                minimum_lots,
            } => {
                allowed(&[Role::Organization])?;
                self.open_offering(who, *instrument, *lots, *minimum_lots, events)
            }
            CommandKind::Subscribe { offering, lots } => {
                allowed(&[Role::Contributor])?;
                self.subscribe(who, *offering, *lots, events)
            }
            CommandKind::CloseOffering { offering } => {
                allowed(&[Role::Organization])?;
                self.close_offering(who, *offering, events)
            }
            CommandKind::PayDistribution {
                instrument,
                per_lot_minor,
            } => {
                allowed(&[Role::Organization])?;
                self.pay_distribution(who, *instrument, *per_lot_minor, events)
            }
            CommandKind::RepayAtMaturity { instrument } => {
                allowed(&[Role::Organization])?;
                self.repay_at_maturity(who, *instrument, events)
            }
            CommandKind::IssueCredential {
                participant,
                token_hash,
                replace_existing,
            } => {
                allowed(&[Role::Operator])?;
                self.issue_credential(*participant, *token_hash, *replace_existing, events)
            }
            CommandKind::RevokeCredential { credential } => {
                allowed(&[Role::Operator])?;
                self.revoke_credential(*credential, events)
            }
            CommandKind::SetParticipantStatus {
                participant,
                suspended,
            } => {
                allowed(&[Role::Operator])?;
                self.set_participant_status(who, *participant, *suspended, events)
            }
            CommandKind::RequestWithdrawal { instrument, lots } => {
                allowed(&[Role::Contributor])?;
                self.request_withdrawal(who, *instrument, *lots, events)
            }
            CommandKind::CancelWithdrawal { withdrawal } => {
                allowed(&[Role::Contributor])?;
                self.cancel_withdrawal(who, *withdrawal, events)
            }
            CommandKind::CompleteWithdrawal { withdrawal } => {
                allowed(&[Role::Contributor, Role::Organization])?;
                self.complete_withdrawal(who, *withdrawal, events)
            }
            CommandKind::SetWithdrawalsSuspended {
                instrument,
                suspended,
            } => {
                allowed(&[Role::Organization])?;
                self.set_withdrawals_suspended(who, *instrument, *suspended, events)
            }
            CommandKind::ProposeResolution { title, closes_at } => {
                allowed(&[Role::Organization])?;
                self.propose_resolution(who, title, *closes_at, events)
            }
            CommandKind::CastVote { resolution, choice } => {
                allowed(&[Role::Contributor])?;
                self.cast_vote(who, *resolution, *choice, events)
            }
            CommandKind::CloseResolution { resolution } => {
                allowed(&[Role::Organization])?;
                self.close_resolution(who, *resolution, events)
            }
            CommandKind::SetAccreditedCategories {
                organization,
                categories,
            } => {
                allowed(&[Role::Regulator, Role::Operator])?;
                self.set_accredited_categories(*organization, categories, events)
            }
            CommandKind::DefineServicePackage { package } => {
                allowed(&[Role::Funder])?;
                self.define_service_package(
                    who,
                    &package.category,
                    &package.name,
                    package.face_value_minor,
                    events,
                )
            }
            CommandKind::IssueVoucher {
                package,
                beneficiary,
                co_payment_minor,
                expires_at,
            } => {
                allowed(&[Role::Funder])?;
                let (package, beneficiary) = (*package, *beneficiary);
                self.issue_voucher(
                    who,
                    package,
                    beneficiary,
                    *co_payment_minor,
                    *expires_at,
                    events,
                )
            }
            CommandKind::RedeemVoucher {
                voucher,
                organization,
            } => {
                allowed(&[Role::Contributor])?;
                self.redeem_voucher(who, *voucher, *organization, events)
            }
            CommandKind::RedeemServiceValue {
                instrument,
                organization,
                amount_minor,
            } => {
                allowed(&[Role::Contributor])?;
                self.redeem_service_value(who, *instrument, *organization, *amount_minor, events)
            }
            CommandKind::RecordVolunteerTime { volunteer, minutes } => {
                allowed(&[Role::Organization])?;
                self.record_volunteer_time(who, *volunteer, *minutes, events)
            }
            CommandKind::TransferTimeCredits { to, minutes } => {
                allowed(&[Role::Contributor, Role::Organization])?;
                self.transfer_time_credits(who, *to, *minutes, events)
            }
            CommandKind::SpendTimeCredits {
                organization,
                minutes,
            } => {
                allowed(&[Role::Contributor])?;
                self.spend_time_credits(who, *organization, *minutes, events)
            }
            CommandKind::DonateTimeCredits { minutes } => {
                allowed(&[Role::Contributor, Role::Organization])?;
                self.donate_time_credits(who, *minutes, events)
            }
            CommandKind::GrantTimeCredits { dependent, minutes } => {
                allowed(&[Role::Operator, Role::Organization])?;
                self.grant_time_credits(who, *dependent, *minutes, events)
            }
            CommandKind::ContributeToPool { amount_minor } => {
                allowed(&[Role::Organization, Role::Contributor, Role::Funder])?;
                self.contribute_to_pool(who, *amount_minor, events)
            }
            CommandKind::RepayPoolLoan { amount_minor } => {
                allowed(&[Role::Organization, Role::Contributor, Role::Funder])?;
                self.repay_pool_loan(who, *amount_minor, events)
            }
            CommandKind::CloseNettingCycle => {
                allowed(&[Role::Operator])?;
                self.close_netting_cycle(events)
            }
            CommandKind::DeclareSurplus {
                year,
                surplus_minor,
            } => {
                allowed(&[Role::Organization])?;
                self.declare_surplus(who, *year, *surplus_minor, events)
            }
            CommandKind::Tick => {
                allowed(&[Role::Operator])?;
                self.tick(events)
            }
        }
    }

    // ---- Read access, for queries and tests. None of these change state. ----

    pub fn config(&self) -> &MarketConfig {
        &self.config
    }

    /// The engine's current time: the latest timestamp it was given.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    pub fn participant(&self, id: ParticipantId) -> Option<&Participant> {
        self.participants.get(id.0 as usize)
    }

    pub fn participants(&self) -> impl Iterator<Item = (ParticipantId, &Participant)> {
        self.participants
            .iter()
            .enumerate()
            .map(|(index, p)| (ParticipantId(index as u32), p))
    }

    pub fn instrument(&self, id: InstrumentId) -> Option<&Instrument> {
        self.instruments.get(id.0 as usize)
    }

    pub fn instrument_by_symbol(&self, symbol: &str) -> Option<&Instrument> {
        self.symbols.get(symbol).and_then(|id| self.instrument(*id))
    }

    pub fn instruments(&self) -> impl Iterator<Item = &Instrument> {
        self.instruments.iter()
    }

    pub fn offering(&self, id: OfferingId) -> Option<&Offering> {
        self.offerings.get(id.0 as usize)
    }

    pub fn offerings(&self) -> impl Iterator<Item = &Offering> {
        self.offerings.iter()
    }

    /// A resting order.
    pub fn order(&self, id: OrderId) -> Option<&Order> {
        self.order_slots.get(&id).map(|slot| self.orders.get(*slot))
    }

    /// A participant's resting orders, oldest first.
    pub fn orders_of(&self, owner: ParticipantId) -> Vec<Order> {
        let mut orders: Vec<Order> = self
            .order_slots
            .values()
            .map(|slot| self.orders.get(*slot))
            .filter(|o| o.owner == owner)
            .cloned()
            .collect();
        orders.sort_unstable_by_key(|order| order.id);
        orders
    }

    /// Resting orders across all books.
    pub fn resting_orders(&self) -> usize {
        self.orders.len()
    }

    /// A participant's holdings in every instrument where it has any position.
    pub fn holdings_of(&self, holder: ParticipantId) -> Vec<(InstrumentId, Holding)> {
        self.instruments
            .iter()
            .filter_map(|instrument| {
                instrument
                    .holding(holder)
                    .map(|holding| (instrument.id, holding.clone()))
            })
            .collect()
    }

    pub fn tax_credits_of(&self, contributor: ParticipantId) -> Vec<TaxCredit> {
        self.tax_credits
            .iter()
            .filter(|credit| credit.contributor == contributor)
            .copied()
            .collect()
    }

    /// Cash that entered and left through the bank rails.
    pub fn cash_totals_minor(&self) -> (u128, u128) {
        (self.deposited_minor, self.withdrawn_minor)
    }

    /// Aggregated depth of one side of a book: (price ticks, lots, orders), best first.
    pub fn depth(
        &self,
        instrument: InstrumentId,
        side: Side,
        levels_max: usize,
    ) -> Option<Vec<(u64, u64, u32)>> {
        self.instrument(instrument)
            .map(|instrument| instrument.book.depth(side, levels_max))
    }

    /// What is remembered of a participant's command id, if it is still inside the
    /// participant's idempotency window.
    pub fn remembered(&self, participant: ParticipantId, id: CommandId) -> Option<Remembered> {
        self.dedup.get(participant, id)
    }

    /// Commands applied since genesis: the journal sequence number of the latest one.
    pub fn commands_applied(&self) -> u64 {
        self.commands_applied
    }
}
