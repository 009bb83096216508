//! Model test: random sequences of orders, cancels, reductions, deposits and withdrawals run
//! through the real engine and through a deliberately naive reference model, compared after
//! every step.
//!
//! The model keeps resting orders in one `Vec` and finds the best price by scanning it, keeps
//! only cash balances and held lots, and derives every reservation from the orders that rest.
//! It shares no code with the engine's ladders, slab or ledger, so an agreement between the two
//! is evidence, and a disagreement shrinks to a short sequence kept in
//! `model.proptest-regressions` next to this file.

use std::collections::BTreeMap;

use mutua_engine::{
    Ack, CancelReason, Command, CommandId, CommandKind, Engine, Event, InstrumentId,
    InstrumentKind, InstrumentSpec, MarketConfig, OfferingId, OrderId, Outcome, ParticipantId,
    RejectReason, Role, SelfTradePrevention, Side, TimeInForce,
};
use proptest::prelude::*;
use proptest::strategy::Union;
use proptest::test_runner::{Config, FileFailurePersistence};
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};

// ---- The market every sequence starts from ----

const OPERATOR: u32 = 0;
const ORGANIZATION: u32 = 1;
/// Four contributors: few enough that an incoming order often meets its owner's resting order.
const CONTRIBUTORS: [u32; 4] = [2, 3, 4, 5];
/// Never registered: commands in its name must be refused.
const UNREGISTERED: u32 = 9;

/// When the offerings close (the first issue, 1 ms into 1970), and the length of the year from
/// there to its first anniversary: 1970 has no 29 February, so 365 days. The model knows no
/// calendar beyond that: every sequence stays inside its first two years (1971 has no 29
/// February either), which `Model::apply` checks.
const ISSUE_TIME_NS: u64 = 1_000_000;
const YEAR_1970_NS: u64 = 365 * 86_400 * 1_000_000_000;
const MODEL_HORIZON_NS: u64 = ISSUE_TIME_NS + 2 * YEAR_1970_NS;
/// Trading starts 40 ns before the first anniversary of the issue: the ceiling sits a tick
/// below par × (1 + cap) and steps up to it at the anniversary, and the bond's one-year lock-in
/// ends there, all within the few thousand nanoseconds a sequence spans.
const SETUP_TIME_NS: u64 = ISSUE_TIME_NS + YEAR_1970_NS - 40;

/// Small book bounds so that `BookFull` and `OrdersFull` are reachable.
const ORDERS_PER_BOOK_MAX: u32 = 8;
const ORDERS_MAX: u32 = 12;
const ORDER_LOTS_MAX: u64 = 1_000;

/// One listed instrument and how its primary offering was taken up.
struct Listing {
    symbol: &'static str,
    kind: InstrumentKind,
    tick_size_minor: u64,
    lot_size_units: u64,
    par_ticks: u64,
    return_cap_bp: u32,
    price_floor_ticks: u64,
    holding_cap_bp: u32,
    /// Whole years; units bought in 1970 or 1971 are locked for exactly 365 days a year.
    lock_in_years: u32,
    offering_lots: u64,
    /// Lots each contributor subscribed, in `CONTRIBUTORS` order.
    subscribed_lots: [u64; 4],
}

const LISTINGS: [Listing; 2] = [
    // A share with a 100 % holding cap (which still binds: held plus bid lots may not exceed
    // the units outstanding) and no floor. Ceiling: 104 ticks, then 105 from the anniversary.
    Listing {
        symbol: "RIVER-SHARE",
        kind: InstrumentKind::CommunityShare,
        tick_size_minor: 1,
        lot_size_units: 10,
        par_ticks: 100,
        return_cap_bp: 500,
        price_floor_ticks: 0,
        holding_cap_bp: 10_000,
        lock_in_years: 0,
        offering_lots: 400,
        subscribed_lots: [150, 100, 80, 40],
    },
    // A bond with a floor, a tight 40 % holding cap and a one-year lock-in that ends during the
    // sequence, so that `PriceBelowFloor`, `HoldingCapExceeded` and `LockedIn` all happen.
    // Ceiling: 42 ticks, then 43 (40 × 1.08 = 43.2, rounded down) from the anniversary.
    Listing {
        symbol: "RIVER-BOND",
        kind: InstrumentKind::CommunityBond,
        tick_size_minor: 1,
        lot_size_units: 25,
        par_ticks: 40,
        return_cap_bp: 800,
        price_floor_ticks: 38,
        holding_cap_bp: 4_000,
        lock_in_years: 1,
        offering_lots: 300,
        subscribed_lots: [90, 90, 60, 0],
    },
];

/// Cash each contributor deposits before subscribing, in `CONTRIBUTORS` order. What is left
/// after the offerings pays for a handful of orders, so `InsufficientCash` is common.
const DEPOSITS_MINOR: [u64; 4] = [330_000, 260_000, 180_000, 90_000];

fn market_config() -> MarketConfig {
    MarketConfig {
        orders_per_book_max: ORDERS_PER_BOOK_MAX,
        orders_max: ORDERS_MAX,
        order_lots_max: ORDER_LOTS_MAX,
        ..MarketConfig::default()
    }
}

fn spec(listing: &Listing) -> InstrumentSpec {
    InstrumentSpec {
        symbol: listing.symbol.to_string(),
        kind: listing.kind,
        issuer: ParticipantId(ORGANIZATION),
        tick_size_minor: listing.tick_size_minor,
        lot_size_units: listing.lot_size_units,
        par_ticks: listing.par_ticks,
        return_cap_bp: listing.return_cap_bp,
        price_floor_ticks: listing.price_floor_ticks,
        maturity_time: listing
            .kind
            .matures()
            .then_some(ISSUE_TIME_NS + 10 * YEAR_1970_NS),
        holding_cap_bp: Some(listing.holding_cap_bp),
        cooperative_investment_plan: false,
        lock_in_years: Some(listing.lock_in_years),
        tax_credit_bp: Some(0),
        withdrawable: false,
        service_value_per_lot_minor: 0,
        withdrawal_notice_days: 0,
    }
}

fn tick_value_minor(listing: &Listing) -> u64 {
    listing.tick_size_minor * listing.lot_size_units
}

/// The commands that build the starting market, each of which must be accepted.
fn setup_commands() -> Vec<(ParticipantId, CommandKind)> {
    let operator = ParticipantId(OPERATOR);
    let organization = ParticipantId(ORGANIZATION);
    let mut commands = vec![(
        operator,
        CommandKind::RegisterParticipant {
            role: Role::Organization,
            name: "Riverside Co-op".into(),
        },
    )];
    // Only an accredited organization may list and offer.
    commands.push((
        operator,
        CommandKind::SetAccreditation {
            organization,
            accredited: true,
        },
    ));
    for (index, _) in CONTRIBUTORS.iter().enumerate() {
        commands.push((
            operator,
            CommandKind::RegisterParticipant {
                role: Role::Contributor,
                name: format!("contributor {index}"),
            },
        ));
    }
    for (index, contributor) in CONTRIBUTORS.iter().enumerate() {
        commands.push((
            operator,
            CommandKind::Deposit {
                account: ParticipantId(*contributor),
                amount_minor: DEPOSITS_MINOR[index],
            },
        ));
    }
    for (index, listing) in LISTINGS.iter().enumerate() {
        let instrument = InstrumentId(index as u32);
        let offering = OfferingId(index as u32);
        commands.push((
            operator,
            CommandKind::ListInstrument {
                spec: Box::new(spec(listing)),
            },
        ));
        commands.push((
            operator,
            CommandKind::SetTradingStatus {
                instrument,
                open: true,
            },
        ));
        commands.push((
            organization,
            CommandKind::OpenOffering {
                instrument,
                lots: listing.offering_lots,
                minimum_lots: 1,
            },
        ));
        for (contributor, lots) in CONTRIBUTORS.iter().zip(listing.subscribed_lots) {
            if lots > 0 {
                commands.push((
                    ParticipantId(*contributor),
                    CommandKind::Subscribe { offering, lots },
                ));
            }
        }
        commands.push((organization, CommandKind::CloseOffering { offering }));
    }
    commands
}

// ---- The naive reference model ----

/// One holder's lots in one instrument, with every lock-in ever taken (expired ones included:
/// they simply stop counting).
#[derive(Clone, Debug, Default)]
struct Position {
    lots: u64,
    /// (locked until, lots).
    locks: Vec<(u64, u64)>,
}

impl Position {
    fn locked_lots(&self, now_ns: u64) -> u64 {
        self.locks
            .iter()
            .filter(|(until, _)| *until > now_ns)
            .map(|(_, lots)| lots)
            .sum()
    }
}

#[derive(Clone, Debug)]
struct Resting {
    id: u64,
    owner: u32,
    instrument: u32,
    side: Side,
    price_ticks: u64,
    remaining_lots: u64,
}

#[derive(Clone, Debug)]
struct ModelInstrument {
    par_ticks: u64,
    return_cap_bp: u32,
    price_floor_ticks: u64,
    tick_value_minor: u64,
    holding_cap_bp: u32,
    lock_in_years: u32,
    lots_outstanding: u64,
    trading_open: bool,
}

impl ModelInstrument {
    /// par × (1 + cap × years since the first issue), rounded down to a tick, with years of
    /// 365 days (true of 1970 and 1971, the only years the model runs in).
    fn ceiling_ticks(&self, now_ns: u64) -> u64 {
        let elapsed = u128::from(now_ns - ISSUE_TIME_NS);
        let accrued = u128::from(self.par_ticks) * u128::from(self.return_cap_bp) * elapsed
            / (10_000 * u128::from(YEAR_1970_NS));
        self.par_ticks + accrued as u64
    }

    /// When units bought at `now_ns` may be sold: whole years of 365 days later.
    fn lock_until(&self, now_ns: u64) -> u64 {
        now_ns + u64::from(self.lock_in_years) * YEAR_1970_NS
    }
}

/// What the model says the engine must answer to the step just taken.
#[derive(Clone, Debug)]
struct Expected {
    outcome: Option<Outcome>,
    events: Vec<Event>,
}

#[derive(Clone, Debug)]
struct Model {
    now_ns: u64,
    next_order_id: u64,
    /// Deposits less withdrawals.
    circulating_minor: u128,
    /// Indexed by participant id.
    roles: Vec<Role>,
    balances_minor: Vec<u64>,
    instruments: Vec<ModelInstrument>,
    positions: BTreeMap<(u32, u32), Position>,
    /// Resting orders in acceptance order; priority is found by scanning.
    resting: Vec<Resting>,
    /// The result of the last command that was not a retry, which a retry must return.
    last_result: Option<Result<Ack, RejectReason>>,
    /// Commands applied so far, setup included: the sequence number of the latest one.
    applied: u64,
    /// The sequence number of the last command that was not a retry, which a retry names.
    last_sequence: u64,
    expected: Expected,
}

/// Sort key for priority on `side`: best price first, then oldest (ids grow with time).
fn priority(order: &Resting) -> (u64, u64) {
    match order.side {
        Side::Sell => (order.price_ticks, order.id),
        Side::Buy => (u64::MAX - order.price_ticks, order.id),
    }
}

fn crosses(side: Side, limit_ticks: u64, resting_ticks: u64) -> bool {
    match side {
        Side::Buy => resting_ticks <= limit_ticks,
        Side::Sell => resting_ticks >= limit_ticks,
    }
}

#[derive(Clone, Copy, Debug)]
struct PlaceArgs {
    instrument: u32,
    side: Side,
    price_ticks: u64,
    lots: u64,
    time_in_force: TimeInForce,
    self_trade: SelfTradePrevention,
}

impl Model {
    fn initial() -> Model {
        let mut roles = vec![Role::Operator, Role::Organization];
        roles.extend(CONTRIBUTORS.iter().map(|_| Role::Contributor));
        let mut balances_minor = vec![0u64; roles.len()];
        let mut positions = BTreeMap::new();
        let mut instruments = Vec::new();
        for (index, contributor) in CONTRIBUTORS.iter().enumerate() {
            balances_minor[*contributor as usize] = DEPOSITS_MINOR[index];
        }
        for (instrument, listing) in LISTINGS.iter().enumerate() {
            let par_lot_minor = listing.par_ticks * tick_value_minor(listing);
            for (contributor, lots) in CONTRIBUTORS.iter().zip(listing.subscribed_lots) {
                if lots == 0 {
                    continue;
                }
                balances_minor[*contributor as usize] -= lots * par_lot_minor;
                balances_minor[ORGANIZATION as usize] += lots * par_lot_minor;
                let locks = if listing.lock_in_years > 0 {
                    vec![(
                        ISSUE_TIME_NS + u64::from(listing.lock_in_years) * YEAR_1970_NS,
                        lots,
                    )]
                } else {
                    vec![]
                };
                positions.insert((*contributor, instrument as u32), Position { lots, locks });
            }
            instruments.push(ModelInstrument {
                par_ticks: listing.par_ticks,
                return_cap_bp: listing.return_cap_bp,
                price_floor_ticks: listing.price_floor_ticks,
                tick_value_minor: tick_value_minor(listing),
                holding_cap_bp: listing.holding_cap_bp,
                lock_in_years: listing.lock_in_years,
                lots_outstanding: listing.subscribed_lots.iter().sum(),
                trading_open: true,
            });
        }
        Model {
            now_ns: SETUP_TIME_NS,
            next_order_id: 1,
            circulating_minor: DEPOSITS_MINOR.iter().map(|&d| u128::from(d)).sum(),
            roles,
            balances_minor,
            instruments,
            positions,
            resting: Vec::new(),
            last_result: None,
            // The setup, and the command that moves the clock to the start of trading.
            applied: setup_commands().len() as u64 + 1,
            last_sequence: 0,
            expected: Expected {
                outcome: None,
                events: Vec::new(),
            },
        }
    }

    fn role(&self, participant: u32) -> Result<Role, RejectReason> {
        self.roles
            .get(participant as usize)
            .copied()
            .ok_or(RejectReason::UnknownParticipant)
    }

    fn require(&self, participant: u32, role: Role) -> Result<(), RejectReason> {
        if self.role(participant)? == role {
            Ok(())
        } else {
            Err(RejectReason::RoleNotAllowed)
        }
    }

    /// Cash held back by resting buy orders: each one's price × remaining lots.
    fn reserved_minor(&self, participant: u32) -> u64 {
        self.resting
            .iter()
            .filter(|order| order.owner == participant && order.side == Side::Buy)
            .map(|order| {
                order.price_ticks
                    * order.remaining_lots
                    * self.instruments[order.instrument as usize].tick_value_minor
            })
            .sum()
    }

    fn free_minor(&self, participant: u32) -> u64 {
        self.balances_minor[participant as usize] - self.reserved_minor(participant)
    }

    fn resting_lots(&self, participant: u32, instrument: u32, side: Side) -> u64 {
        self.resting
            .iter()
            .filter(|order| {
                order.owner == participant && order.instrument == instrument && order.side == side
            })
            .map(|order| order.remaining_lots)
            .sum()
    }

    fn position(&self, participant: u32, instrument: u32) -> Position {
        self.positions
            .get(&(participant, instrument))
            .cloned()
            .unwrap_or_default()
    }

    /// The best resting order on `side` of `instrument`, by a linear scan.
    fn best_index(&self, instrument: u32, side: Side) -> Option<usize> {
        self.resting
            .iter()
            .enumerate()
            .filter(|(_, order)| order.instrument == instrument && order.side == side)
            .min_by_key(|(_, order)| priority(order))
            .map(|(index, _)| index)
    }

    /// Resting orders of one side in priority order.
    fn side_in_priority(&self, instrument: u32, side: Side) -> Vec<Resting> {
        let mut orders: Vec<Resting> = self
            .resting
            .iter()
            .filter(|order| order.instrument == instrument && order.side == side)
            .cloned()
            .collect();
        orders.sort_by_key(priority);
        orders
    }

    fn execute(
        &mut self,
        participant: u32,
        step: &Step,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        match *step {
            Step::Place { args, .. } => self.place(participant, args, events),
            Step::Cancel { order, .. } => self.cancel(participant, order, events),
            Step::Reduce {
                order,
                reduce_by_lots,
                ..
            } => self.reduce(participant, order, reduce_by_lots, events),
            Step::Deposit {
                account,
                amount_minor,
                ..
            } => self.deposit(participant, account, amount_minor, events),
            Step::Withdraw {
                account,
                amount_minor,
                ..
            } => self.withdraw(participant, account, amount_minor, events),
            Step::SetTradingStatus { instrument, open } => {
                self.set_trading_status(instrument, open, events)
            }
            Step::Retry => unreachable!("a retry executes nothing"),
        }
    }

    /// Every check an order must pass, in the precedence order of `RejectReason`.
    /// `Ok(false)`: the order is accepted and trades; `Ok(true)`: a fill-or-kill order that
    /// cannot trade in full, accepted and killed.
    fn check_order(&self, owner: u32, args: &PlaceArgs) -> Result<bool, RejectReason> {
        self.require(owner, Role::Contributor)?;
        let instrument = self
            .instruments
            .get(args.instrument as usize)
            .ok_or(RejectReason::UnknownInstrument)?;
        if args.lots == 0 {
            return Err(RejectReason::QuantityZero);
        }
        if args.lots > ORDER_LOTS_MAX {
            return Err(RejectReason::QuantityTooLarge);
        }
        if args.price_ticks == 0 {
            return Err(RejectReason::PriceNotPositive);
        }
        if args.price_ticks > instrument.ceiling_ticks(self.now_ns) {
            return Err(RejectReason::PriceAboveCeiling);
        }
        if args.price_ticks < instrument.price_floor_ticks {
            return Err(RejectReason::PriceBelowFloor);
        }
        if !instrument.trading_open {
            return Err(RejectReason::TradingClosed);
        }
        let position = self.position(owner, args.instrument);
        match args.side {
            Side::Buy => {
                if self.free_minor(owner)
                    < args.price_ticks * args.lots * instrument.tick_value_minor
                {
                    return Err(RejectReason::InsufficientCash);
                }
                let exposure = position.lots
                    + self.resting_lots(owner, args.instrument, Side::Buy)
                    + args.lots;
                let cap_lots =
                    instrument.lots_outstanding * u64::from(instrument.holding_cap_bp) / 10_000;
                if exposure > cap_lots {
                    return Err(RejectReason::HoldingCapExceeded);
                }
            }
            Side::Sell => {
                let unreserved =
                    position.lots - self.resting_lots(owner, args.instrument, Side::Sell);
                if unreserved < args.lots {
                    return Err(RejectReason::InsufficientUnits);
                }
                if unreserved.saturating_sub(position.locked_lots(self.now_ns)) < args.lots {
                    return Err(RejectReason::LockedIn);
                }
            }
        }
        match args.time_in_force {
            TimeInForce::GoodTillCancelled => {
                // A full book refuses only an order that would rest: one that trades in full at
                // once needs no room.
                let in_book = self
                    .resting
                    .iter()
                    .filter(|order| order.instrument == args.instrument)
                    .count();
                let book_full = in_book >= ORDERS_PER_BOOK_MAX as usize;
                let market_full = self.resting.len() >= ORDERS_MAX as usize;
                if book_full || market_full {
                    let mut trial = self.clone();
                    let (remaining_lots, _) =
                        trial.match_incoming(owner, u64::MAX, args, &mut Vec::new());
                    if remaining_lots > 0 {
                        return Err(if book_full {
                            RejectReason::BookFull
                        } else {
                            RejectReason::OrdersFull
                        });
                    }
                }
            }
            TimeInForce::FillOrKill => {
                // Fillable means: matching it on a copy of the market leaves nothing over.
                let mut trial = self.clone();
                let (remaining_lots, _) =
                    trial.match_incoming(owner, u64::MAX, args, &mut Vec::new());
                if remaining_lots > 0 {
                    return Ok(true);
                }
            }
            TimeInForce::ImmediateOrCancel => {}
        }
        Ok(false)
    }

    fn place(
        &mut self,
        owner: u32,
        args: PlaceArgs,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let killed = self.check_order(owner, &args)?;
        let id = self.next_order_id;
        self.next_order_id += 1;
        events.push(Event::OrderAccepted {
            order: OrderId(id),
            instrument: InstrumentId(args.instrument),
            owner: ParticipantId(owner),
            side: args.side,
            price_ticks: args.price_ticks,
            lots: args.lots,
            time_in_force: args.time_in_force,
        });
        if killed {
            let reason = CancelReason::FillOrKillUnfillable;
            events.push(Event::OrderCancelled {
                order: OrderId(id),
                owner: ParticipantId(owner),
                instrument: InstrumentId(args.instrument),
                remaining_lots: args.lots,
                reason,
            });
            return Ok(Ack::Order(OrderId(id)));
        }
        let (remaining_lots, stopped_by_self_trade) = self.match_incoming(owner, id, &args, events);
        if remaining_lots == 0 {
            return Ok(Ack::Order(OrderId(id)));
        }
        if !stopped_by_self_trade && args.time_in_force == TimeInForce::GoodTillCancelled {
            self.resting.push(Resting {
                id,
                owner,
                instrument: args.instrument,
                side: args.side,
                price_ticks: args.price_ticks,
                remaining_lots,
            });
            events.push(Event::OrderRested {
                order: OrderId(id),
                remaining_lots,
            });
        } else {
            let reason = if stopped_by_self_trade {
                CancelReason::SelfTrade
            } else {
                CancelReason::ImmediateOrCancelRemainder
            };
            events.push(Event::OrderCancelled {
                order: OrderId(id),
                owner: ParticipantId(owner),
                instrument: InstrumentId(args.instrument),
                remaining_lots,
                reason,
            });
        }
        Ok(Ack::Order(OrderId(id)))
    }

    /// Trades the incoming order against the opposite side, best price then oldest first, each
    /// fill at the resting order's price. Returns the lots left and whether self-trade
    /// prevention stopped it.
    fn match_incoming(
        &mut self,
        owner: u32,
        id: u64,
        args: &PlaceArgs,
        events: &mut Vec<Event>,
    ) -> (u64, bool) {
        let mut remaining_lots = args.lots;
        while remaining_lots > 0 {
            let Some(index) = self.best_index(args.instrument, args.side.opposite()) else {
                return (remaining_lots, false);
            };
            let maker = self.resting[index].clone();
            if !crosses(args.side, args.price_ticks, maker.price_ticks) {
                return (remaining_lots, false);
            }
            if maker.owner == owner {
                let cancel_resting = |model: &mut Model, events: &mut Vec<Event>| {
                    model.resting.remove(index);
                    events.push(Event::OrderCancelled {
                        order: OrderId(maker.id),
                        owner: ParticipantId(owner),
                        instrument: InstrumentId(maker.instrument),
                        remaining_lots: maker.remaining_lots,
                        reason: CancelReason::SelfTrade,
                    });
                };
                match args.self_trade {
                    SelfTradePrevention::CancelIncoming => return (remaining_lots, true),
                    SelfTradePrevention::CancelResting => {
                        cancel_resting(self, events);
                        continue;
                    }
                    SelfTradePrevention::CancelBoth => {
                        cancel_resting(self, events);
                        return (remaining_lots, true);
                    }
                }
            }
            let lots = remaining_lots.min(maker.remaining_lots);
            let notional_minor = self.settle(
                args.instrument,
                args.side,
                owner,
                maker.owner,
                maker.price_ticks,
                lots,
            );
            remaining_lots -= lots;
            let maker_remaining_lots = maker.remaining_lots - lots;
            if maker_remaining_lots == 0 {
                self.resting.remove(index);
            } else {
                self.resting[index].remaining_lots = maker_remaining_lots;
            }
            events.push(Event::Trade {
                instrument: InstrumentId(args.instrument),
                maker_order: OrderId(maker.id),
                taker_order: OrderId(id),
                maker: ParticipantId(maker.owner),
                taker: ParticipantId(owner),
                taker_side: args.side,
                price_ticks: maker.price_ticks,
                lots,
                notional_minor,
                maker_remaining_lots,
                taker_remaining_lots: remaining_lots,
            });
        }
        (remaining_lots, false)
    }

    /// Delivery versus payment: the buyer pays the trade price (never its own limit) and receives
    /// the lots, locked if the instrument has a lock-in; the seller gives the lots and is paid.
    fn settle(
        &mut self,
        instrument: u32,
        taker_side: Side,
        taker: u32,
        maker: u32,
        price_ticks: u64,
        lots: u64,
    ) -> u64 {
        let terms = &self.instruments[instrument as usize];
        let notional_minor = price_ticks * lots * terms.tick_value_minor;
        let lock_until = terms.lock_until(self.now_ns);
        let locked = terms.lock_in_years > 0;
        let (buyer, seller) = if taker_side == Side::Buy {
            (taker, maker)
        } else {
            (maker, taker)
        };
        self.balances_minor[buyer as usize] -= notional_minor;
        self.balances_minor[seller as usize] += notional_minor;
        let bought = self.positions.entry((buyer, instrument)).or_default();
        bought.lots += lots;
        if locked {
            bought.locks.push((lock_until, lots));
        }
        let sold = self
            .positions
            .get_mut(&(seller, instrument))
            .expect("a seller holds what it sells");
        sold.lots -= lots;
        notional_minor
    }

    /// The owner's resting order `order`, checked the way cancel and reduce check it.
    fn owned(&self, participant: u32, order: u64) -> Result<usize, RejectReason> {
        self.require(participant, Role::Contributor)?;
        let Some(index) = self.resting.iter().position(|resting| resting.id == order) else {
            // An id given out earlier is filled, cancelled or killed; any other was never given.
            return Err(if order >= 1 && order < self.next_order_id {
                RejectReason::OrderNotResting
            } else {
                RejectReason::UnknownOrder
            });
        };
        if self.resting[index].owner != participant {
            return Err(RejectReason::NotOrderOwner);
        }
        Ok(index)
    }

    fn cancel(
        &mut self,
        participant: u32,
        order: u64,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let index = self.owned(participant, order)?;
        let cancelled = self.resting.remove(index);
        events.push(Event::OrderCancelled {
            order: OrderId(order),
            owner: ParticipantId(participant),
            instrument: InstrumentId(cancelled.instrument),
            remaining_lots: cancelled.remaining_lots,
            reason: CancelReason::Requested,
        });
        Ok(Ack::Done)
    }

    fn reduce(
        &mut self,
        participant: u32,
        order: u64,
        reduce_by_lots: u64,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let index = self.owned(participant, order)?;
        if reduce_by_lots == 0 {
            return Err(RejectReason::QuantityZero);
        }
        if reduce_by_lots >= self.resting[index].remaining_lots {
            return self.cancel(participant, order, events);
        }
        self.resting[index].remaining_lots -= reduce_by_lots;
        events.push(Event::OrderReduced {
            order: OrderId(order),
            reduced_by_lots: reduce_by_lots,
            remaining_lots: self.resting[index].remaining_lots,
        });
        Ok(Ack::Done)
    }

    fn deposit(
        &mut self,
        participant: u32,
        account: u32,
        amount_minor: u64,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        self.require(participant, Role::Operator)?;
        let balance = self
            .balances_minor
            .get(account as usize)
            .copied()
            .ok_or(RejectReason::UnknownAccount)?;
        if amount_minor == 0 {
            return Err(RejectReason::AmountZero);
        }
        // Cash in circulation must fit one account.
        if self.circulating_minor + u128::from(amount_minor) > u128::from(u64::MAX) {
            return Err(RejectReason::AmountTooLarge);
        }
        self.circulating_minor += u128::from(amount_minor);
        self.balances_minor[account as usize] = balance + amount_minor;
        events.push(Event::CashDeposited {
            account: ParticipantId(account),
            amount_minor,
            balance_minor: balance + amount_minor,
        });
        Ok(Ack::Done)
    }

    fn withdraw(
        &mut self,
        participant: u32,
        account: u32,
        amount_minor: u64,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        self.require(participant, Role::Operator)?;
        let balance = self
            .balances_minor
            .get(account as usize)
            .copied()
            .ok_or(RejectReason::UnknownAccount)?;
        if amount_minor == 0 {
            return Err(RejectReason::AmountZero);
        }
        if self.free_minor(account) < amount_minor {
            return Err(RejectReason::InsufficientCash);
        }
        self.circulating_minor -= u128::from(amount_minor);
        self.balances_minor[account as usize] = balance - amount_minor;
        events.push(Event::CashWithdrawn {
            account: ParticipantId(account),
            amount_minor,
            balance_minor: balance - amount_minor,
        });
        Ok(Ack::Done)
    }

    fn set_trading_status(
        &mut self,
        instrument: u32,
        open: bool,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let state = self
            .instruments
            .get_mut(instrument as usize)
            .ok_or(RejectReason::UnknownInstrument)?;
        if state.trading_open == open {
            return Err(RejectReason::NoEffect);
        }
        state.trading_open = open;
        events.push(Event::TradingStatusChanged {
            instrument: InstrumentId(instrument),
            open,
        });
        Ok(Ack::Done)
    }
}

// ---- Transitions ----

#[derive(Clone, Debug)]
enum Step {
    Place {
        participant: u32,
        args: PlaceArgs,
    },
    Cancel {
        participant: u32,
        order: u64,
    },
    Reduce {
        participant: u32,
        order: u64,
        reduce_by_lots: u64,
    },
    Deposit {
        participant: u32,
        account: u32,
        amount_minor: u64,
    },
    Withdraw {
        participant: u32,
        account: u32,
        amount_minor: u64,
    },
    /// Always sent by the operator (role checks are covered by the other steps).
    SetTradingStatus {
        instrument: u32,
        open: bool,
    },
    /// Send the previous command again with the same command id.
    Retry,
}

impl Step {
    fn participant(&self) -> u32 {
        match *self {
            Step::Place { participant, .. }
            | Step::Cancel { participant, .. }
            | Step::Reduce { participant, .. }
            | Step::Deposit { participant, .. }
            | Step::Withdraw { participant, .. } => participant,
            Step::SetTradingStatus { .. } | Step::Retry => OPERATOR,
        }
    }

    fn command_kind(&self) -> CommandKind {
        match *self {
            Step::Place { args, .. } => CommandKind::PlaceOrder {
                instrument: InstrumentId(args.instrument),
                side: args.side,
                price_ticks: args.price_ticks,
                lots: args.lots,
                time_in_force: args.time_in_force,
                self_trade: args.self_trade,
            },
            Step::Cancel { order, .. } => CommandKind::CancelOrder {
                order: OrderId(order),
            },
            Step::Reduce {
                order,
                reduce_by_lots,
                ..
            } => CommandKind::ReduceOrder {
                order: OrderId(order),
                reduce_by_lots,
            },
            Step::Deposit {
                account,
                amount_minor,
                ..
            } => CommandKind::Deposit {
                account: ParticipantId(account),
                amount_minor,
            },
            Step::Withdraw {
                account,
                amount_minor,
                ..
            } => CommandKind::Withdraw {
                account: ParticipantId(account),
                amount_minor,
            },
            Step::SetTradingStatus { instrument, open } => CommandKind::SetTradingStatus {
                instrument: InstrumentId(instrument),
                open,
            },
            Step::Retry => unreachable!("a retry resends the previous command"),
        }
    }
}

#[derive(Clone, Debug)]
struct Transition {
    /// How far the clock moves before this step; lock-ins of 40 ns expire along the way.
    advance_ns: u64,
    step: Step,
}

/// Mostly contributors; now and then someone whose role may not trade, or nobody at all.
fn trader() -> BoxedStrategy<u32> {
    prop_oneof![
        24 => proptest::sample::select(CONTRIBUTORS.to_vec()),
        1 => proptest::sample::select(vec![OPERATOR, ORGANIZATION, UNREGISTERED]),
    ]
    .boxed()
}

/// Mostly a few ticks around par, so that orders queue at the same price and cross often;
/// sometimes anywhere from below the floor to above the ceiling, so that the band is tested.
fn price_ticks(instrument: u32) -> BoxedStrategy<u64> {
    let (core, band) = match Model::initial().instruments.get(instrument as usize) {
        Some(terms) => {
            let par = terms.par_ticks;
            (
                (par - 1)..=(par + 1),
                (par - 3)..=(terms.ceiling_ticks(SETUP_TIME_NS) + 2),
            )
        }
        None => (1..=10, 1..=10),
    };
    prop_oneof![20 => core, 10 => band, 1 => Just(0)].boxed()
}

fn place() -> BoxedStrategy<Step> {
    let instrument = prop_oneof![30 => 0..LISTINGS.len() as u32, 1 => Just(LISTINGS.len() as u32)];
    let lots =
        prop_oneof![20 => 1..=8u64, 2 => 9..=20u64, 1 => Just(0u64), 1 => Just(ORDER_LOTS_MAX + 1)];
    let side = prop_oneof![Just(Side::Buy), Just(Side::Sell)];
    let time_in_force = prop_oneof![
        4 => Just(TimeInForce::GoodTillCancelled),
        2 => Just(TimeInForce::ImmediateOrCancel),
        2 => Just(TimeInForce::FillOrKill),
    ];
    let self_trade = prop_oneof![
        Just(SelfTradePrevention::CancelIncoming),
        Just(SelfTradePrevention::CancelResting),
        Just(SelfTradePrevention::CancelBoth),
    ];
    (
        trader(),
        instrument.prop_flat_map(|i| (Just(i), price_ticks(i))),
        lots,
        side,
        time_in_force,
        self_trade,
    )
        .prop_map(
            |(participant, (instrument, price_ticks), lots, side, time_in_force, self_trade)| {
                Step::Place {
                    participant,
                    args: PlaceArgs {
                        instrument,
                        side,
                        price_ticks,
                        lots,
                        time_in_force,
                        self_trade,
                    },
                }
            },
        )
        .boxed()
}

/// An order id to cancel or reduce, with who asks: usually a resting order and its owner,
/// sometimes another contributor, sometimes an id that no longer (or never did) rest.
///
/// Transitions are generated from the model before the engine runs, so the ids are the ones the
/// model predicted. They are the engine's ids too: every step compares the engine's events,
/// `OrderAccepted` ids included, with the model's. A step that shrinking has cut loose from the
/// order it aimed at simply becomes a cancel of an unknown id.
fn order_target(state: &Model) -> BoxedStrategy<(u32, u64)> {
    let bogus = (trader(), 0..state.next_order_id + 3).boxed();
    if state.resting.is_empty() {
        return bogus;
    }
    let owned: Vec<(u32, u64)> = state
        .resting
        .iter()
        .map(|order| (order.owner, order.id))
        .collect();
    let ids: Vec<u64> = owned.iter().map(|(_, id)| *id).collect();
    prop_oneof![
        8 => proptest::sample::select(owned),
        1 => (trader(), proptest::sample::select(ids)),
        1 => bogus,
    ]
    .boxed()
}

fn cash_account() -> BoxedStrategy<u32> {
    prop_oneof![
        10 => proptest::sample::select(CONTRIBUTORS.to_vec()),
        1 => proptest::sample::select(vec![OPERATOR, ORGANIZATION, UNREGISTERED]),
    ]
    .boxed()
}

/// Mostly the operator; sometimes a contributor, who may not move cash.
fn cash_mover() -> BoxedStrategy<u32> {
    prop_oneof![12 => Just(OPERATOR), 1 => proptest::sample::select(CONTRIBUTORS.to_vec())].boxed()
}

fn deposit() -> BoxedStrategy<Step> {
    let amount = prop_oneof![20 => 1..=40_000u64, 1 => Just(0u64), 1 => Just(u64::MAX)];
    (cash_mover(), cash_account(), amount)
        .prop_map(|(participant, account, amount_minor)| Step::Deposit {
            participant,
            account,
            amount_minor,
        })
        .boxed()
}

fn withdraw(state: &Model) -> BoxedStrategy<Step> {
    // Exactly an account's free cash must succeed; one unit more must not.
    let free: Vec<(u32, u64)> = CONTRIBUTORS
        .iter()
        .map(|&c| (c, state.free_minor(c)))
        .collect();
    let exact = proptest::sample::select(free)
        .prop_flat_map(|(account, free)| (Just(account), free..=free + 1));
    let amount = prop_oneof![6 => (cash_account(), 1..=30_000u64), 2 => exact, 1 => (cash_account(), Just(0u64))];
    (cash_mover(), amount)
        .prop_map(|(participant, (account, amount_minor))| Step::Withdraw {
            participant,
            account,
            amount_minor,
        })
        .boxed()
}

struct MarketModel;

impl ReferenceStateMachine for MarketModel {
    type State = Model;
    type Transition = Transition;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model::initial()).boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Transition> {
        let cancel = order_target(state)
            .prop_map(|(participant, order)| Step::Cancel { participant, order });
        let reduce = (
            order_target(state),
            prop_oneof![8 => 1..=6u64, 1 => Just(0u64), 1 => 7..=30u64],
        )
            .prop_map(|((participant, order), reduce_by_lots)| Step::Reduce {
                participant,
                order,
                reduce_by_lots,
            });
        let trading_status = (0..=LISTINGS.len() as u32, prop::bool::weighted(0.85))
            .prop_map(|(instrument, open)| Step::SetTradingStatus { instrument, open });
        let mut steps: Vec<(u32, BoxedStrategy<Step>)> = vec![
            (20, place()),
            (2, cancel.boxed()),
            (2, reduce.boxed()),
            (1, deposit()),
            (1, withdraw(state)),
            (1, trading_status.boxed()),
        ];
        if state.last_result.is_some() {
            steps.push((1, Just(Step::Retry).boxed()));
        }
        (
            prop_oneof![3 => Just(0u64), 2 => 1..=10u64],
            Union::new_weighted(steps),
        )
            .prop_map(|(advance_ns, step)| Transition { advance_ns, step })
            .boxed()
    }

    /// A retry needs an earlier command (shrinking may remove it).
    fn preconditions(state: &Model, transition: &Transition) -> bool {
        !matches!(transition.step, Step::Retry) || state.last_result.is_some()
    }

    fn apply(mut state: Model, transition: &Transition) -> Model {
        state.now_ns += transition.advance_ns;
        assert!(
            state.now_ns < MODEL_HORIZON_NS,
            "the model's calendar holds for two years of 365 days"
        );
        let mut events = Vec::new();
        state.applied += 1;
        let outcome = match &transition.step {
            // A command of nobody registered is not remembered (it had no effect and there is no
            // participant to keep it for): its retry is refused afresh, the same way.
            Step::Retry if state.last_result == Some(Err(RejectReason::UnknownParticipant)) => {
                Outcome::fresh(Err(RejectReason::UnknownParticipant))
            }
            Step::Retry => Outcome {
                result: state.last_result.expect("checked by preconditions"),
                replayed: Some(state.last_sequence),
            },
            step => {
                let result = state.execute(step.participant(), step, &mut events);
                assert!(
                    result.is_ok() || events.is_empty(),
                    "the model emitted events for a rejection"
                );
                state.last_result = Some(result);
                state.last_sequence = state.applied;
                Outcome::fresh(result)
            }
        };
        state.expected = Expected {
            outcome: Some(outcome),
            events,
        };
        state
    }
}

// ---- The engine under test ----

struct Exchange {
    engine: Engine,
    time_ns: u64,
    next_command_id: u128,
    last_command: Option<Command>,
}

impl Exchange {
    fn command(&mut self, participant: u32, kind: CommandKind) -> Command {
        self.next_command_id += 1;
        Command {
            id: CommandId(self.next_command_id),
            participant: ParticipantId(participant),
            kind,
        }
    }
}

impl StateMachineTest for Exchange {
    type SystemUnderTest = Exchange;
    type Reference = MarketModel;

    fn init_test(_model: &Model) -> Exchange {
        let mut exchange = Exchange {
            engine: Engine::new(market_config()),
            time_ns: SETUP_TIME_NS,
            next_command_id: 0,
            last_command: None,
        };
        for (participant, kind) in setup_commands() {
            let command = exchange.command(participant.0, kind);
            let outcome = exchange
                .engine
                .apply(&command, ISSUE_TIME_NS, &mut Vec::new());
            assert!(
                outcome.result.is_ok(),
                "setup command {command:?} was refused: {outcome:?}"
            );
        }
        // Trading starts later: a command of nobody registered moves the engine's clock there
        // and changes nothing else.
        let tick = exchange.command(UNREGISTERED, CommandKind::CancelOrder { order: OrderId(1) });
        let outcome = exchange.engine.apply(&tick, SETUP_TIME_NS, &mut Vec::new());
        assert_eq!(outcome.result, Err(RejectReason::UnknownParticipant));
        exchange
    }

    fn apply(mut exchange: Exchange, model: &Model, transition: Transition) -> Exchange {
        exchange.time_ns += transition.advance_ns;
        let command = match &transition.step {
            Step::Retry => exchange
                .last_command
                .clone()
                .expect("checked by preconditions"),
            step => exchange.command(step.participant(), step.command_kind()),
        };
        let mut events = Vec::new();
        let outcome = exchange
            .engine
            .apply(&command, exchange.time_ns, &mut events);
        let expected = &model.expected;
        assert_eq!(Some(outcome), expected.outcome, "outcome of {command:?}");
        assert_eq!(events, expected.events, "events of {command:?}");
        exchange.last_command = Some(command);
        exchange
    }

    fn check_invariants(exchange: &Exchange, model: &Model) {
        let engine = &exchange.engine;
        if let Err(violation) = engine.check_invariants() {
            panic!("{violation}");
        }
        assert_eq!(engine.now(), model.now_ns, "engine clock");
        assert_cash_agrees(engine, model);
        assert_holdings_agree(engine, model);
        assert_books_agree(engine, model);
    }
}

fn assert_cash_agrees(engine: &Engine, model: &Model) {
    assert_eq!(
        engine.participants().count(),
        model.roles.len(),
        "participants registered"
    );
    for (id, participant) in engine.participants() {
        let cash = participant.cash;
        assert_eq!(
            cash.balance_minor, model.balances_minor[id.0 as usize],
            "cash balance of participant {}",
            id.0
        );
        assert_eq!(
            cash.reserved_minor,
            model.reserved_minor(id.0),
            "cash reserved by participant {}",
            id.0
        );
    }
    let (deposited, withdrawn) = engine.cash_totals_minor();
    assert_eq!(
        deposited - withdrawn,
        model.circulating_minor,
        "cash in circulation"
    );
}

fn assert_holdings_agree(engine: &Engine, model: &Model) {
    for instrument in 0..LISTINGS.len() as u32 {
        let listed = engine
            .instrument(InstrumentId(instrument))
            .expect("listed at setup");
        assert_eq!(
            listed.lots_outstanding(),
            model.instruments[instrument as usize].lots_outstanding
        );
        assert_eq!(
            listed.status.trading_open, model.instruments[instrument as usize].trading_open,
            "trading status of {instrument}"
        );
        for participant in 0..model.roles.len() as u32 {
            let holding = listed
                .holding(ParticipantId(participant))
                .cloned()
                .unwrap_or_default();
            let position = model.position(participant, instrument);
            let context = format!("participant {participant} in instrument {instrument}");
            assert_eq!(holding.lots, position.lots, "lots held by {context}");
            assert_eq!(
                holding.reserved_lots,
                model.resting_lots(participant, instrument, Side::Sell),
                "lots reserved by {context}"
            );
            assert_eq!(
                holding.open_buy_lots,
                model.resting_lots(participant, instrument, Side::Buy),
                "lots bid by {context}"
            );
            assert_eq!(
                holding.locked_lots(model.now_ns),
                position.locked_lots(model.now_ns),
                "lots locked in for {context}"
            );
        }
    }
}

/// Both sides of every book, order by order in priority order.
fn assert_books_agree(engine: &Engine, model: &Model) {
    let snapshot = engine.snapshot();
    assert_eq!(
        engine.resting_orders(),
        model.resting.len(),
        "resting orders"
    );
    for (instrument, saved) in snapshot.instruments.iter().enumerate() {
        for (side, engine_side) in [(Side::Buy, &saved.bids), (Side::Sell, &saved.asks)] {
            let engine_orders: Vec<(u64, u32, u64, u64)> = engine_side
                .iter()
                .map(|o| (o.id.0, o.owner.0, o.price_ticks, o.remaining_lots))
                .collect();
            let model_orders: Vec<(u64, u32, u64, u64)> = model
                .side_in_priority(instrument as u32, side)
                .iter()
                .map(|o| (o.id, o.owner, o.price_ticks, o.remaining_lots))
                .collect();
            assert_eq!(
                engine_orders, model_orders,
                "{side:?} side of instrument {instrument}, in priority order"
            );
        }
    }
}

prop_state_machine! {
    #![proptest_config(Config {
        // Shrunk failures are kept beside this file and re-run first.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..Config::default()
    })]

    #[test]
    fn engine_agrees_with_the_naive_model(sequential 1..250 => Exchange);
}

/// The starting market itself, checked once against the model, so that a broken setup fails
/// here rather than as a confusing first-step disagreement.
#[test]
fn setup_matches_the_model() {
    let model = Model::initial();
    let exchange = Exchange::init_test(&model);
    Exchange::check_invariants(&exchange, &model);
    // The setup leaves both books empty and every contributor some free cash.
    assert_eq!(exchange.engine.resting_orders(), 0);
    for contributor in CONTRIBUTORS {
        assert!(
            model.free_minor(contributor) > 0,
            "contributor {contributor} has no free cash to trade"
        );
    }
}
