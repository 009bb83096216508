//! The scenario harness shared by the engine's story tests: one market, the clock that drives
//! it, and commands by their domain names. Every command is applied with every invariant checked
//! afterwards, and every expected rejection is proven to have changed nothing.
#![allow(dead_code)]

use mutua_engine::calendar::anniversary;
use mutua_engine::*;

/// 2025-01-01T00:00:00Z. Scenarios start on a round date so that "years since issue" reads plainly.
pub const START: Timestamp = 1_735_689_600 * 1_000_000_000;

/// Par of every scenario instrument: 10.00 in one-cent ticks. With one unit per lot, one lot at
/// par costs 1_000 minor units, so cash amounts in the tests are easy to check by eye.
pub const PAR: u64 = 1_000;

pub const DAY_NS: u64 = 86_400 * 1_000_000_000;

/// 365 days: the length of each of the scenarios' usual years, 2025, 2026 and 2027 (2028 has a
/// 29 February: scenarios that reach it count in anniversaries).
pub const YEAR_NS: u64 = 365 * DAY_NS;

/// One market and the clock the tests drive it with.
pub struct Market {
    pub engine: Engine,
    /// Events of the last command only, so each step's effects can be read on their own.
    pub events: Vec<Event>,
    pub now: Timestamp,
    pub next_command: u128,
    /// The organization that issues the scenario instruments.
    pub issuer: ParticipantId,
}

impl Market {
    pub fn new() -> Market {
        Market::with_config(|_| {})
    }

    /// A market whose bounds or defaults a scenario needs to be different (small, to reach them).
    pub fn with_config(adjust: impl FnOnce(&mut MarketConfig)) -> Market {
        let mut config = MarketConfig::default();
        adjust(&mut config);
        let engine = Engine::new(config);
        engine.check_invariants().unwrap();
        let mut market = Market {
            engine,
            events: Vec::new(),
            now: START,
            next_command: 1,
            issuer: GENESIS_OPERATOR,
        };
        market.issuer = market.organization("Riverside Housing Co-operative");
        market
    }

    // ---- Commands ----

    /// A command with a fresh id.
    pub fn command(&mut self, participant: ParticipantId, kind: CommandKind) -> Command {
        let id = CommandId(self.next_command);
        self.next_command += 1;
        Command {
            id,
            participant,
            kind,
        }
    }

    /// Applies one command now and checks every invariant afterwards, whatever the outcome.
    pub fn apply(&mut self, command: &Command) -> Outcome {
        self.events.clear();
        let outcome = self.engine.apply(command, self.now, &mut self.events);
        if let Err(violation) = self.engine.check_invariants() {
            panic!("{violation} after {command:?} -> {outcome:?}");
        }
        outcome
    }

    /// Submits a command that must be accepted.
    pub fn ok(&mut self, participant: ParticipantId, kind: CommandKind) -> Ack {
        let command = self.command(participant, kind);
        let outcome = self.apply(&command);
        assert!(
            !outcome.is_replay(),
            "a fresh id was treated as a retry: {command:?}"
        );
        outcome
            .result
            .unwrap_or_else(|reason| panic!("{command:?} was rejected: {reason}"))
    }

    /// Submits a command that must be refused for `reason`, and proves the refusal had no effect:
    /// no events, and a snapshot equal to the one before apart from the engine's memory of the
    /// command (kept so that a retry gets the same answer) and its count of commands seen.
    pub fn expect_reject(
        &mut self,
        participant: ParticipantId,
        kind: CommandKind,
        reason: RejectReason,
    ) {
        let before = market_state(self.engine.snapshot());
        let command = self.command(participant, kind);
        let outcome = self.apply(&command);
        assert_eq!(outcome, Outcome::fresh(Err(reason)), "{command:?}");
        assert!(
            self.events.is_empty(),
            "a rejection emitted {:?}",
            self.events
        );
        let remembered = self.engine.remembered(participant, command.id);
        if self.engine.participant(participant).is_some() {
            let expected = Remembered {
                digest: command_digest(&command.kind),
                result: Err(reason),
                sequence: self.engine.commands_applied(),
            };
            assert_eq!(
                remembered,
                Some(expected),
                "the rejection was not remembered"
            );
        } else {
            assert_eq!(
                remembered, None,
                "a command of nobody registered has no window"
            );
        }
        assert_eq!(
            market_state(self.engine.snapshot()),
            before,
            "{command:?} was rejected but changed the market"
        );
    }

    pub fn advance(&mut self, nanoseconds: u64) {
        self.now += nanoseconds;
    }

    /// Moves the clock to `time` (never backwards).
    pub fn at(&mut self, time: Timestamp) {
        assert!(time >= self.now, "the scenario clock only moves forward");
        self.now = time;
    }

    // ---- People and cash ----

    pub fn register(&mut self, role: Role, name: &str) -> ParticipantId {
        match self.ok(GENESIS_OPERATOR, registration(role, name)) {
            Ack::Participant(id) => id,
            other => panic!("registration acknowledged as {other:?}"),
        }
    }

    pub fn contributor(&mut self, name: &str) -> ParticipantId {
        self.register(Role::Contributor, name)
    }

    /// An organization, accredited by the operator (only an accredited one may list, offer,
    /// host time credits or redeem).
    pub fn organization(&mut self, name: &str) -> ParticipantId {
        let organization = self.register(Role::Organization, name);
        self.ok(GENESIS_OPERATOR, accreditation(organization, true));
        organization
    }

    /// An organization registered and never accredited.
    pub fn unaccredited_organization(&mut self, name: &str) -> ParticipantId {
        self.register(Role::Organization, name)
    }

    pub fn regulator(&mut self, name: &str) -> ParticipantId {
        self.register(Role::Regulator, name)
    }

    pub fn funder(&mut self, name: &str) -> ParticipantId {
        self.register(Role::Funder, name)
    }

    pub fn deposit(&mut self, account: ParticipantId, amount_minor: u64) {
        self.ok(GENESIS_OPERATOR, deposit(account, amount_minor));
    }

    pub fn withdraw(&mut self, account: ParticipantId, amount_minor: u64) {
        self.ok(GENESIS_OPERATOR, withdrawal(account, amount_minor));
    }

    pub fn cash(&self, participant: ParticipantId) -> CashAccount {
        self.engine.participant(participant).unwrap().cash
    }

    pub fn free_cash(&self, participant: ParticipantId) -> u64 {
        self.cash(participant).free_minor()
    }

    // ---- Instruments ----

    /// A community share of the issuer: par 10.00 in one-cent ticks, one unit per lot, return
    /// capped at 5 % a year, no floor, issued now. The holding cap is lifted to 100 % because
    /// the cap has scenarios of its own and would otherwise dictate the size of every small book.
    pub fn share_spec(&self, symbol: &str) -> InstrumentSpec {
        InstrumentSpec {
            symbol: symbol.to_string(),
            kind: InstrumentKind::CommunityShare,
            issuer: self.issuer,
            tick_size_minor: 1,
            lot_size_units: 1,
            par_ticks: PAR,
            return_cap_bp: 500,
            price_floor_ticks: 0,
            maturity_time: None,
            holding_cap_bp: Some(10_000),
            cooperative_investment_plan: false,
            lock_in_years: None,
            tax_credit_bp: None,
            withdrawable: false,
            service_value_per_lot_minor: 0,
            withdrawal_notice_days: 0,
        }
    }

    /// A community bond with the share's terms, maturing on the `years`-th anniversary of now.
    pub fn bond_spec(&self, symbol: &str, years: u32) -> InstrumentSpec {
        InstrumentSpec {
            kind: InstrumentKind::CommunityBond,
            maturity_time: Some(anniversary(self.now, years)),
            ..self.share_spec(symbol)
        }
    }

    /// A Co-operative Investment Plan share: the market's default lock-in and tax credit apply.
    pub fn cip_share_spec(&self, symbol: &str) -> InstrumentSpec {
        InstrumentSpec {
            cooperative_investment_plan: true,
            ..self.share_spec(symbol)
        }
    }

    /// Lists an instrument and opens it for trading.
    pub fn list(&mut self, spec: InstrumentSpec) -> InstrumentId {
        let instrument = match self.ok(GENESIS_OPERATOR, listing(spec)) {
            Ack::Instrument(id) => id,
            other => panic!("listing acknowledged as {other:?}"),
        };
        self.ok(GENESIS_OPERATOR, trading_status(instrument, true));
        instrument
    }

    pub fn share_listed(&mut self, symbol: &str) -> InstrumentId {
        let spec = self.share_spec(symbol);
        self.list(spec)
    }

    pub fn lots(&self, holder: ParticipantId, instrument: InstrumentId) -> u64 {
        self.engine
            .instrument(instrument)
            .unwrap()
            .holding(holder)
            .map_or(0, |holding| holding.lots)
    }

    pub fn reserved_lots(&self, holder: ParticipantId, instrument: InstrumentId) -> u64 {
        self.engine
            .instrument(instrument)
            .unwrap()
            .holding(holder)
            .map_or(0, |holding| holding.reserved_lots)
    }

    // ---- Primary market ----

    pub fn open_offering(
        &mut self,
        instrument: InstrumentId,
        lots: u64,
        minimum_lots: u64,
    ) -> OfferingId {
        match self.ok(self.issuer, offering_of(instrument, lots, minimum_lots)) {
            Ack::Offering(id) => id,
            other => panic!("offering acknowledged as {other:?}"),
        }
    }

    pub fn subscribe(&mut self, contributor: ParticipantId, offering: OfferingId, lots: u64) {
        self.ok(contributor, subscription(offering, lots));
    }

    pub fn close_offering(&mut self, offering: OfferingId) {
        self.ok(self.issuer, closing(offering));
    }

    /// Issues units at par to each holder through a complete offering. Each holder is given
    /// exactly the cash it pays, so its free cash is the same afterwards as before.
    pub fn issue(&mut self, instrument: InstrumentId, holders: &[(ParticipantId, u64)]) {
        let par_per_lot_minor = self
            .engine
            .instrument(instrument)
            .unwrap()
            .par_per_lot_minor();
        let total_lots = holders.iter().map(|(_, lots)| lots).sum();
        let offering = self.open_offering(instrument, total_lots, total_lots);
        for &(holder, lots) in holders {
            self.deposit(holder, par_per_lot_minor * lots);
            self.subscribe(holder, offering, lots);
        }
        self.close_offering(offering);
    }

    // ---- Trading ----

    /// Places an order that must be accepted (it may still trade, rest or be cancelled).
    pub fn place(&mut self, owner: ParticipantId, order: CommandKind) -> OrderId {
        match self.ok(owner, order) {
            Ack::Order(id) => id,
            other => panic!("order acknowledged as {other:?}"),
        }
    }

    pub fn buy(
        &mut self,
        owner: ParticipantId,
        instrument: InstrumentId,
        price_ticks: u64,
        lots: u64,
    ) -> OrderId {
        self.place(owner, gtc(instrument, Side::Buy, price_ticks, lots))
    }

    pub fn sell(
        &mut self,
        owner: ParticipantId,
        instrument: InstrumentId,
        price_ticks: u64,
        lots: u64,
    ) -> OrderId {
        self.place(owner, gtc(instrument, Side::Sell, price_ticks, lots))
    }

    pub fn cancel(&mut self, owner: ParticipantId, order: OrderId) {
        self.ok(owner, cancellation(order));
    }

    pub fn reduce(&mut self, owner: ParticipantId, order: OrderId, reduce_by_lots: u64) {
        self.ok(owner, reduction(order, reduce_by_lots));
    }

    pub fn remaining_lots(&self, order: OrderId) -> Option<u64> {
        self.engine
            .order(order)
            .map(|resting| resting.remaining_lots)
    }

    /// The last command's fills as (resting order, price ticks, lots), in the order they happened.
    pub fn trades(&self) -> Vec<(OrderId, u64, u64)> {
        self.events
            .iter()
            .filter_map(|event| match event {
                Event::Trade {
                    maker_order,
                    price_ticks,
                    lots,
                    ..
                } => Some((*maker_order, *price_ticks, *lots)),
                _ => None,
            })
            .collect()
    }

    /// The last command's cancellations as (order, lots left, reason).
    pub fn cancellations(&self) -> Vec<(OrderId, u64, CancelReason)> {
        self.events
            .iter()
            .filter_map(|event| match event {
                Event::OrderCancelled {
                    order,
                    remaining_lots,
                    reason,
                    ..
                } => Some((*order, *remaining_lots, *reason)),
                _ => None,
            })
            .collect()
    }

    pub fn bids(&self, instrument: InstrumentId) -> Vec<(u64, u64, u32)> {
        self.engine.depth(instrument, Side::Buy, 10).unwrap()
    }

    pub fn asks(&self, instrument: InstrumentId) -> Vec<(u64, u64, u32)> {
        self.engine.depth(instrument, Side::Sell, 10).unwrap()
    }

    // ---- Returns ----

    pub fn pay_distribution(&mut self, instrument: InstrumentId, per_lot_minor: u64) {
        self.ok(self.issuer, distribution(instrument, per_lot_minor));
    }
}

/// The market's state without the bookkeeping every command touches, accepted or not: the
/// remembered command ids and the latest time seen.
pub fn market_state(mut snapshot: Snapshot) -> Snapshot {
    snapshot.remembered.clear();
    snapshot.now = 0;
    snapshot.commands_applied = 0;
    snapshot
}

// Commands by their domain names, so that a scenario line reads as what it asks for.

pub fn registration(role: Role, name: &str) -> CommandKind {
    CommandKind::RegisterParticipant {
        role,
        name: name.to_string(),
    }
}

pub fn accreditation(organization: ParticipantId, accredited: bool) -> CommandKind {
    CommandKind::SetAccreditation {
        organization,
        accredited,
    }
}

pub fn deposit(account: ParticipantId, amount_minor: u64) -> CommandKind {
    CommandKind::Deposit {
        account,
        amount_minor,
    }
}

pub fn withdrawal(account: ParticipantId, amount_minor: u64) -> CommandKind {
    CommandKind::Withdraw {
        account,
        amount_minor,
    }
}

pub fn listing(spec: InstrumentSpec) -> CommandKind {
    CommandKind::ListInstrument {
        spec: Box::new(spec),
    }
}

pub fn trading_status(instrument: InstrumentId, open: bool) -> CommandKind {
    CommandKind::SetTradingStatus { instrument, open }
}

pub fn offering_of(instrument: InstrumentId, lots: u64, minimum_lots: u64) -> CommandKind {
    CommandKind::OpenOffering {
        instrument,
        lots,
        minimum_lots,
    }
}

pub fn subscription(offering: OfferingId, lots: u64) -> CommandKind {
    CommandKind::Subscribe { offering, lots }
}

pub fn closing(offering: OfferingId) -> CommandKind {
    CommandKind::CloseOffering { offering }
}

pub fn cancellation(order: OrderId) -> CommandKind {
    CommandKind::CancelOrder { order }
}

pub fn reduction(order: OrderId, reduce_by_lots: u64) -> CommandKind {
    CommandKind::ReduceOrder {
        order,
        reduce_by_lots,
    }
}

pub fn distribution(instrument: InstrumentId, per_lot_minor: u64) -> CommandKind {
    CommandKind::PayDistribution {
        instrument,
        per_lot_minor,
    }
}

pub fn repayment(instrument: InstrumentId) -> CommandKind {
    CommandKind::RepayAtMaturity { instrument }
}

pub fn order(
    instrument: InstrumentId,
    side: Side,
    price_ticks: u64,
    lots: u64,
    time_in_force: TimeInForce,
) -> CommandKind {
    CommandKind::PlaceOrder {
        instrument,
        side,
        price_ticks,
        lots,
        time_in_force,
        self_trade: SelfTradePrevention::default(),
    }
}

pub fn gtc(instrument: InstrumentId, side: Side, price_ticks: u64, lots: u64) -> CommandKind {
    order(
        instrument,
        side,
        price_ticks,
        lots,
        TimeInForce::GoodTillCancelled,
    )
}

pub fn ioc(instrument: InstrumentId, side: Side, price_ticks: u64, lots: u64) -> CommandKind {
    order(
        instrument,
        side,
        price_ticks,
        lots,
        TimeInForce::ImmediateOrCancel,
    )
}

pub fn fok(instrument: InstrumentId, side: Side, price_ticks: u64, lots: u64) -> CommandKind {
    order(instrument, side, price_ticks, lots, TimeInForce::FillOrKill)
}

pub fn preventing_self_trade(order: CommandKind, mode: SelfTradePrevention) -> CommandKind {
    match order {
        CommandKind::PlaceOrder {
            instrument,
            side,
            price_ticks,
            lots,
            time_in_force,
            ..
        } => CommandKind::PlaceOrder {
            instrument,
            side,
            price_ticks,
            lots,
            time_in_force,
            self_trade: mode,
        },
        other => panic!("not an order: {other:?}"),
    }
}
