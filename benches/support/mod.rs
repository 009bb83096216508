//! Workloads shared by the engine benches: a market of contributors holding cash and units of one
//! community share, and command streams shaped like exchange-core's published mix.

#![allow(dead_code)]

use mutua_engine::{
    Ack, Command, CommandId, CommandKind, Engine, Event, InstrumentId, InstrumentKind,
    InstrumentSpec, MarketConfig, OrderId, ParticipantId, Role, SelfTradePrevention, Side,
    TimeInForce, Timestamp, GENESIS_OPERATOR,
};

/// When the benches run: 2027-01-15T08:00:00Z.
pub const NOW: Timestamp = 1_800_000_000_000_000_000;
/// When the set-up issued the units, two anniversaries before `NOW` (2025-01-15, with no
/// 29 February between), so the ceiling the benches trade under is par + 10 %.
pub const ISSUED_AT: Timestamp = NOW - 2 * 365 * 24 * 3600 * 1_000_000_000;
pub const PAR_TICKS: u64 = 10_000;
pub const LOTS_PER_CONTRIBUTOR: u64 = 1_000_000;

/// A 64-bit mixer (splitmix64's finalizer): distinct inputs give distinct, random-looking outputs.
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A tiny deterministic generator (xorshift64*), so every run replays the same workload.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub struct Market {
    pub engine: Engine,
    pub instrument: InstrumentId,
    /// Par of the instrument, in ticks: the workloads trade around it.
    pub par_ticks: u64,
    pub contributors: Vec<ParticipantId>,
    /// Every command the set-up applied, in order, at `ISSUED_AT`, so that a journal can start
    /// from genesis.
    pub setup: Vec<Command>,
    next_command: u128,
    events: Vec<Event>,
}

impl Market {
    /// `contributors` contributors, each with ample cash and `LOTS_PER_CONTRIBUTOR` lots of one
    /// share trading around par.
    pub fn new(contributors: u32) -> Market {
        Market::with_par(contributors, PAR_TICKS)
    }

    /// As `new`, with par at `par_ticks` (the band, and so the book, is about a tenth of par wide
    /// above par and reaches down to zero below it).
    pub fn with_par(contributors: u32, par_ticks: u64) -> Market {
        let config = MarketConfig::default();
        let mut market = Market {
            engine: Engine::new(config),
            instrument: InstrumentId(0),
            par_ticks,
            contributors: Vec::new(),
            setup: Vec::new(),
            next_command: 1 << 64,
            events: Vec::with_capacity(1024),
        };
        let issuer = market.register(Role::Organization, "issuer");
        // Only an accredited organization may list and offer.
        market.run(
            GENESIS_OPERATOR,
            CommandKind::SetAccreditation {
                organization: issuer,
                accredited: true,
            },
        );
        for index in 0..contributors {
            let contributor = market.register(Role::Contributor, &format!("contributor-{index}"));
            market.contributors.push(contributor);
            market.run(
                GENESIS_OPERATOR,
                CommandKind::Deposit {
                    account: contributor,
                    amount_minor: 1 << 50,
                },
            );
        }
        let spec = InstrumentSpec {
            symbol: "BENCH".into(),
            kind: InstrumentKind::CommunityShare,
            issuer,
            tick_size_minor: 1,
            lot_size_units: 1,
            par_ticks,
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
        };
        let Ack::Instrument(instrument) = market.run(
            GENESIS_OPERATOR,
            CommandKind::ListInstrument {
                spec: Box::new(spec),
            },
        ) else {
            unreachable!()
        };
        market.instrument = instrument;
        let total = LOTS_PER_CONTRIBUTOR * u64::from(contributors);
        let Ack::Offering(offering) = market.run(
            issuer,
            CommandKind::OpenOffering {
                instrument,
                lots: total,
                minimum_lots: 1,
            },
        ) else {
            unreachable!()
        };
        for contributor in market.contributors.clone() {
            market.run(
                contributor,
                CommandKind::Subscribe {
                    offering,
                    lots: LOTS_PER_CONTRIBUTOR,
                },
            );
        }
        market.run(issuer, CommandKind::CloseOffering { offering });
        market.run(
            GENESIS_OPERATOR,
            CommandKind::SetTradingStatus {
                instrument,
                open: true,
            },
        );
        market
    }

    fn register(&mut self, role: Role, name: &str) -> ParticipantId {
        match self.run(
            GENESIS_OPERATOR,
            CommandKind::RegisterParticipant {
                role,
                name: name.into(),
            },
        ) {
            Ack::Participant(id) => id,
            other => panic!("registration gave {other:?}"),
        }
    }

    /// A command with a fresh id. Ids look random, as the gateway's are (a hash of the
    /// participant and its request id): sequential ids would flatter the id map's cache use.
    pub fn command(&mut self, participant: ParticipantId, kind: CommandKind) -> Command {
        self.next_command += 1;
        let id = (u128::from(splitmix64(self.next_command as u64)) << 64)
            | u128::from(splitmix64(!(self.next_command as u64)));
        Command {
            id: CommandId(id),
            participant,
            kind,
        }
    }

    fn run(&mut self, participant: ParticipantId, kind: CommandKind) -> Ack {
        let command = self.command(participant, kind);
        self.events.clear();
        let ack = self
            .engine
            .apply(&command, ISSUED_AT, &mut self.events)
            .result
            .expect("set-up command accepted");
        self.setup.push(command);
        ack
    }
}

/// A resting order the generator knows about.
#[derive(Clone, Copy)]
struct Resting {
    id: OrderId,
    owner: ParticipantId,
    remaining: u64,
}

/// Commands shaped like exchange-core's mix (about 9 % GTC, 3 % IOC, 6 % cancel, 82 % amend,
/// where an amend is a reduce that keeps queue position), over about `levels` price levels with
/// about `resting_target` resting orders. The commands are generated by applying them to the
/// market, so every cancel and reduce names an order that is resting at that moment; replaying
/// them from a clone of the starting engine reproduces exactly the same run.
pub fn exchange_core_mix(
    market: &mut Market,
    commands: usize,
    levels: u64,
    resting_target: usize,
    seed: u64,
) -> Vec<Command> {
    MixGenerator::new(levels, resting_target, seed).generate(market, commands)
}

/// The generator behind `exchange_core_mix`, kept between calls so that a measured run can
/// continue a warm-up run on the same book.
pub struct MixGenerator {
    rng: Rng,
    resting: Vec<Resting>,
    index_of: rustc_hash::FxHashMap<OrderId, usize>,
    levels: u64,
    resting_target: usize,
}

impl MixGenerator {
    pub fn new(levels: u64, resting_target: usize, seed: u64) -> MixGenerator {
        MixGenerator {
            rng: Rng::new(seed),
            resting: Vec::with_capacity(resting_target * 2),
            index_of: rustc_hash::FxHashMap::default(),
            levels,
            resting_target,
        }
    }

    pub fn generate(&mut self, market: &mut Market, commands: usize) -> Vec<Command> {
        let (rng, resting, index_of) = (&mut self.rng, &mut self.resting, &mut self.index_of);
        let mut out = Vec::with_capacity(commands);
        let mut events = Vec::with_capacity(1024);
        let half = self.levels / 2;
        while out.len() < commands {
            let roll = rng.below(100);
            let owner = market.contributors[rng.below(market.contributors.len() as u64) as usize];
            let filling = resting.len() < self.resting_target;
            let kind = if filling || roll < 9 {
                // Passive good-till-cancelled: bids below par, asks above.
                let side = if rng.below(2) == 0 {
                    Side::Buy
                } else {
                    Side::Sell
                };
                let offset = 1 + rng.below(half);
                let price_ticks = match side {
                    Side::Buy => market.par_ticks - offset,
                    Side::Sell => market.par_ticks + offset,
                };
                CommandKind::PlaceOrder {
                    instrument: market.instrument,
                    side,
                    price_ticks,
                    lots: 1_000 + rng.below(1_000),
                    time_in_force: TimeInForce::GoodTillCancelled,
                    self_trade: SelfTradePrevention::CancelIncoming,
                }
            } else if roll < 12 {
                // Aggressive immediate-or-cancel through the touch.
                let side = if rng.below(2) == 0 {
                    Side::Buy
                } else {
                    Side::Sell
                };
                let price_ticks = match side {
                    Side::Buy => market.par_ticks + half,
                    Side::Sell => market.par_ticks - half,
                };
                CommandKind::PlaceOrder {
                    instrument: market.instrument,
                    side,
                    price_ticks,
                    lots: 1 + rng.below(1_500),
                    time_in_force: TimeInForce::ImmediateOrCancel,
                    self_trade: SelfTradePrevention::CancelIncoming,
                }
            } else if roll < 18 || resting.len() > self.resting_target * 2 {
                let victim = resting[rng.below(resting.len() as u64) as usize];
                CommandKind::CancelOrder { order: victim.id }
            } else {
                let victim = resting[rng.below(resting.len() as u64) as usize];
                CommandKind::ReduceOrder {
                    order: victim.id,
                    reduce_by_lots: 1 + rng.below(victim.remaining.min(3)),
                }
            };
            let participant = match &kind {
                CommandKind::CancelOrder { order } | CommandKind::ReduceOrder { order, .. } => {
                    resting[index_of[order]].owner
                }
                _ => owner,
            };
            let command = market.command(participant, kind);
            events.clear();
            market.engine.apply(&command, NOW, &mut events);
            track(&events, resting, index_of);
            out.push(command);
        }
        out
    }
}

fn remove(
    id: OrderId,
    resting: &mut Vec<Resting>,
    index_of: &mut rustc_hash::FxHashMap<OrderId, usize>,
) {
    if let Some(index) = index_of.remove(&id) {
        resting.swap_remove(index);
        if index < resting.len() {
            index_of.insert(resting[index].id, index);
        }
    }
}

fn track(
    events: &[Event],
    resting: &mut Vec<Resting>,
    index_of: &mut rustc_hash::FxHashMap<OrderId, usize>,
) {
    for event in events {
        match *event {
            Event::OrderAccepted { order, owner, .. } => {
                index_of.insert(order, resting.len());
                resting.push(Resting {
                    id: order,
                    owner,
                    remaining: 0,
                });
            }
            Event::OrderRested {
                order,
                remaining_lots,
            } => resting[index_of[&order]].remaining = remaining_lots,
            Event::Trade {
                maker_order,
                maker_remaining_lots,
                taker_order,
                taker_remaining_lots,
                ..
            } => {
                if maker_remaining_lots == 0 {
                    remove(maker_order, resting, index_of);
                } else {
                    resting[index_of[&maker_order]].remaining = maker_remaining_lots;
                }
                if taker_remaining_lots == 0 {
                    remove(taker_order, resting, index_of);
                }
            }
            Event::OrderReduced {
                order,
                remaining_lots,
                ..
            } => resting[index_of[&order]].remaining = remaining_lots,
            Event::OrderCancelled { order, .. } => remove(order, resting, index_of),
            _ => {}
        }
    }
}

/// Applies `commands` to `engine`, folding every event into a digest the optimizer cannot skip.
#[inline(never)]
pub fn apply_all(engine: &mut Engine, commands: &[Command], events: &mut Vec<Event>) -> u64 {
    let mut digest = 0u64;
    for command in commands {
        events.clear();
        let outcome = engine.apply(command, NOW, events);
        digest = digest
            .wrapping_mul(31)
            .wrapping_add(events.len() as u64 + u64::from(outcome.result.is_ok()));
    }
    digest
}

/// Order streams shaped like a busy market of 80 traders rather than like exchange-core's mix:
/// buyers and sellers disjoint (the first 40 contributors buy, the next 40 sell); 84 % limit
/// orders of 1-20 lots, of which 6 % immediate-or-cancel and 4 % fill-or-kill; 10 % cancels and
/// 6 % reductions of random earlier orders of the same trader, most of them already filled (so
/// refused as unknown). Prices are uniform over `levels` levels around par, so buyers and
/// sellers cross all the time and the book keeps what did not: with 11 levels, deep queues.
pub struct TraderStream {
    rng: Rng,
    levels: u64,
    /// Every order each trader placed, in order: cancels and reductions pick among them.
    placed: Vec<Vec<OrderId>>,
}

/// Traders in a `TraderStream`: half buyers, half sellers.
pub const TRADERS: u32 = 80;

impl TraderStream {
    pub fn new(levels: u64, seed: u64) -> TraderStream {
        TraderStream {
            rng: Rng::new(seed),
            levels,
            placed: vec![Vec::new(); TRADERS as usize],
        }
    }

    /// `commands` commands, generated by applying them to `market` (which must have at least
    /// `TRADERS` contributors); replaying them from a clone of the starting engine reproduces
    /// the same run.
    pub fn generate(&mut self, market: &mut Market, commands: usize) -> Vec<Command> {
        let mut out = Vec::with_capacity(commands);
        let mut events = Vec::with_capacity(1024);
        let lowest = market.par_ticks - self.levels / 2;
        while out.len() < commands {
            let trader = self.rng.below(u64::from(TRADERS)) as usize;
            let participant = market.contributors[trader];
            let placed = &self.placed[trader];
            let roll = self.rng.below(100);
            let kind = if roll < 84 || placed.is_empty() {
                let side = if trader < TRADERS as usize / 2 {
                    Side::Buy
                } else {
                    Side::Sell
                };
                let flavour = self.rng.below(100);
                let time_in_force = if flavour < 6 {
                    TimeInForce::ImmediateOrCancel
                } else if flavour < 10 {
                    TimeInForce::FillOrKill
                } else {
                    TimeInForce::GoodTillCancelled
                };
                CommandKind::PlaceOrder {
                    instrument: market.instrument,
                    side,
                    price_ticks: lowest + self.rng.below(self.levels),
                    lots: 1 + self.rng.below(20),
                    time_in_force,
                    self_trade: SelfTradePrevention::CancelIncoming,
                }
            } else {
                let order = placed[self.rng.below(placed.len() as u64) as usize];
                if roll < 94 {
                    CommandKind::CancelOrder { order }
                } else {
                    CommandKind::ReduceOrder {
                        order,
                        reduce_by_lots: 1,
                    }
                }
            };
            let command = market.command(participant, kind);
            events.clear();
            market.engine.apply(&command, NOW, &mut events);
            for event in &events {
                if let Event::OrderAccepted { order, .. } = event {
                    self.placed[trader].push(*order);
                }
            }
            out.push(command);
        }
        out
    }
}
