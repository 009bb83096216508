//! Replay test: the engine is a pure function of its commands and timestamps. The same long
//! script applied twice gives the same events and the same state hash; a snapshot taken part way
//! through, serialized and restored, carries on exactly as the uninterrupted run did; and a
//! different script gives a different hash.
//!
//! The script is a few thousand mixed commands (registrations, offerings, orders, cancels,
//! reductions, cash movements, distributions, maturity, rejected commands and repeated command
//! ids) written by a seeded client that looks at a shadow engine to choose plausible targets.
//! The recorded script, not the client, is what every run replays.

use mutua_engine::{
    Ack, Command, CommandId, CommandKind, Engine, Event, InstrumentId, InstrumentKind,
    InstrumentSpec, MarketConfig, OfferingId, Outcome, ParticipantId, RejectReason, Role,
    SelfTradePrevention, Side, Snapshot, StateHash, TimeInForce,
};

const HOUR_NS: u64 = 3_600_000_000_000;
const DAY_NS: u64 = 24 * HOUR_NS;
/// 14 November 2023, in nanoseconds since the epoch: when every script starts.
const START_NS: u64 = 1_700_000_000_000_000_000;
/// Random commands after the setup, enough to mature the bond half way through.
const SCRIPT_COMMANDS: usize = 3_000;

/// A small idempotency window, so that some repeated ids have been forgotten and apply afresh:
/// the snapshot must carry exactly which ids are still remembered.
fn market_config() -> MarketConfig {
    MarketConfig {
        command_ids_per_participant_max: 64,
        ..MarketConfig::default()
    }
}

/// Marsaglia's xorshift64: deterministic and dependency-free, which is all a script needs.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    fn percent(&mut self, chance: u64) -> bool {
        self.below(100) < chance
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

#[derive(Clone, Debug)]
struct Scripted {
    command: Command,
    timestamp_ns: u64,
}

/// Writes a script by acting as every participant at once, applying each command to a shadow
/// engine so that it can aim cancels at resting orders and sells at held units.
struct Client {
    rng: XorShift,
    shadow: Engine,
    time_ns: u64,
    next_command_id: u128,
    script: Vec<Scripted>,
    regulator: ParticipantId,
    organizations: Vec<ParticipantId>,
    contributors: Vec<ParticipantId>,
    instruments: Vec<InstrumentId>,
    /// The latest offering opened per instrument, if any.
    offerings: Vec<Option<OfferingId>>,
    /// A timestamp older than the clock, for the next command only.
    stale_timestamp_ns: Option<u64>,
}

const OPERATOR: ParticipantId = mutua_engine::GENESIS_OPERATOR;

impl Client {
    fn new(seed: u64) -> Client {
        Client {
            rng: XorShift(seed.max(1)),
            shadow: Engine::new(market_config()),
            time_ns: START_NS,
            next_command_id: 0,
            script: Vec::new(),
            regulator: OPERATOR,
            organizations: Vec::new(),
            contributors: Vec::new(),
            instruments: Vec::new(),
            offerings: Vec::new(),
            stale_timestamp_ns: None,
        }
    }

    fn send(&mut self, participant: ParticipantId, kind: CommandKind) -> Result<Ack, RejectReason> {
        self.next_command_id += 1;
        let command = Command {
            id: CommandId(self.next_command_id),
            participant,
            kind,
        };
        self.push(command)
    }

    fn push(&mut self, command: Command) -> Result<Ack, RejectReason> {
        let timestamp_ns = self.stale_timestamp_ns.take().unwrap_or(self.time_ns);
        let outcome = self.shadow.apply(&command, timestamp_ns, &mut Vec::new());
        self.script.push(Scripted {
            command,
            timestamp_ns,
        });
        outcome.result
    }

    fn register(&mut self, role: Role, name: &str) -> ParticipantId {
        match self.send(
            OPERATOR,
            CommandKind::RegisterParticipant {
                role,
                name: name.to_string(),
            },
        ) {
            Ok(Ack::Participant(id)) => id,
            other => panic!("registering {name}: {other:?}"),
        }
    }

    /// Participants, cash, three instruments open for trading, and a first offering of each.
    fn set_up(&mut self) {
        self.regulator = self.register(Role::Regulator, "regional regulator");
        self.register(Role::Funder, "community foundation");
        for name in ["Riverside Co-op", "Hilltop Energy"] {
            let organization = self.register(Role::Organization, name);
            // Only an accredited organization may list and offer.
            self.send(
                self.regulator,
                CommandKind::SetAccreditation {
                    organization,
                    accredited: true,
                },
            )
            .expect("accreditation");
            self.organizations.push(organization);
        }
        for index in 0..6 {
            let contributor = self.register(Role::Contributor, &format!("contributor {index}"));
            self.contributors.push(contributor);
        }
        for contributor in self.contributors.clone() {
            self.send(
                OPERATOR,
                CommandKind::Deposit {
                    account: contributor,
                    amount_minor: 5_000_000,
                },
            )
            .expect("deposit");
        }
        for organization in self.organizations.clone() {
            self.send(
                OPERATOR,
                CommandKind::Deposit {
                    account: organization,
                    amount_minor: 2_000_000,
                },
            )
            .expect("deposit");
        }
        let specs = [
            listing(
                "RIVER-A",
                InstrumentKind::CommunityShare,
                self.organizations[0],
                100,
                0,
                None,
                false,
            ),
            listing(
                "HILL-CIP",
                InstrumentKind::CommunityShare,
                self.organizations[1],
                50,
                50,
                None,
                true,
            ),
            listing(
                "RIVER-BOND",
                InstrumentKind::CommunityBond,
                self.organizations[0],
                200,
                0,
                Some(START_NS + 75 * DAY_NS),
                false,
            ),
        ];
        for spec in specs {
            let issuer = spec.issuer;
            let Ok(Ack::Instrument(instrument)) = self.send(
                OPERATOR,
                CommandKind::ListInstrument {
                    spec: Box::new(spec),
                },
            ) else {
                panic!("listing refused")
            };
            self.instruments.push(instrument);
            self.offerings.push(None);
            self.send(
                OPERATOR,
                CommandKind::SetTradingStatus {
                    instrument,
                    open: true,
                },
            )
            .expect("open trading");
            let offering = self
                .open_offering(issuer, instrument, 1_200)
                .expect("first offering");
            for contributor in self.contributors.clone() {
                self.send(
                    contributor,
                    CommandKind::Subscribe {
                        offering,
                        lots: 150,
                    },
                )
                .expect("subscribe");
            }
            self.send(issuer, CommandKind::CloseOffering { offering })
                .expect("close offering");
        }
    }

    fn open_offering(
        &mut self,
        issuer: ParticipantId,
        instrument: InstrumentId,
        lots: u64,
    ) -> Result<OfferingId, RejectReason> {
        let minimum_lots = lots / 4 + 1;
        match self.send(
            issuer,
            CommandKind::OpenOffering {
                instrument,
                lots,
                minimum_lots,
            },
        )? {
            Ack::Offering(offering) => {
                self.offerings[instrument.0 as usize] = Some(offering);
                Ok(offering)
            }
            other => panic!("an offering acknowledged as {other:?}"),
        }
    }

    fn issuer(&self, instrument: InstrumentId) -> ParticipantId {
        self.shadow
            .instrument(instrument)
            .expect("listed")
            .spec
            .issuer
    }

    /// One random command, weighted towards trading.
    fn random_command(&mut self) {
        self.advance_clock();
        let roll = self.rng.below(100);
        // Commands the client expects to fail are sent like any other; their results are ignored
        // here because the replays compare every outcome anyway.
        let _ = match roll {
            0..=57 => self.place(),
            58..=64 => self.cancel(),
            65..=70 => self.reduce(),
            71..=73 => self.deposit(),
            74..=75 => self.withdraw(),
            76..=80 => return self.repeat_command_id(),
            81..=82 => self.register_someone(),
            83 => self.change_accreditation(),
            84..=89 => self.offering_step(),
            90..=91 => self.distribute(),
            92 => self.toggle_trading(),
            93..=95 => self.repay(),
            _ => self.nonsense(),
        };
    }

    /// Mostly forward by up to two hours; now and then a stale timestamp from before the
    /// engine's clock, which must not move the clock back.
    fn advance_clock(&mut self) {
        if self.rng.percent(2) {
            self.stale_timestamp_ns = Some(self.time_ns - self.rng.below(3 * HOUR_NS));
        } else {
            self.time_ns += self.rng.below(2 * HOUR_NS);
        }
    }

    fn place(&mut self) -> Result<Ack, RejectReason> {
        let owner = self.rng.pick(&self.contributors);
        let instrument = self.rng.pick(&self.instruments);
        let listed = self.shadow.instrument(instrument).expect("listed");
        let ceiling = listed.ceiling_ticks(self.time_ns);
        let par = listed.spec.par_ticks;
        // Mostly a few ticks from par up, where orders cross; sometimes from under the floor to
        // over the ceiling.
        let (low, high) = if self.rng.percent(80) {
            (
                par.max(listed.spec.price_floor_ticks + 1) - 1,
                (par + 2).min(ceiling),
            )
        } else {
            (par - 3, ceiling + 2)
        };
        let price_ticks = low + self.rng.below(high + 1 - low);
        let held = self
            .shadow
            .holdings_of(owner)
            .into_iter()
            .find(|(id, _)| *id == instrument)
            .map_or(0, |(_, h)| h.lots);
        let side = if held > 0 && self.rng.percent(50) {
            Side::Sell
        } else {
            Side::Buy
        };
        let lots = 1 + self.rng.below(12);
        let time_in_force = match self.rng.below(10) {
            0..=5 => TimeInForce::GoodTillCancelled,
            6..=7 => TimeInForce::ImmediateOrCancel,
            _ => TimeInForce::FillOrKill,
        };
        let self_trade = self.rng.pick(&[
            SelfTradePrevention::CancelIncoming,
            SelfTradePrevention::CancelResting,
            SelfTradePrevention::CancelBoth,
        ]);
        self.send(
            owner,
            CommandKind::PlaceOrder {
                instrument,
                side,
                price_ticks,
                lots,
                time_in_force,
                self_trade,
            },
        )
    }

    /// A resting order and who cancels it: usually its owner.
    fn resting_target(&mut self) -> Option<(ParticipantId, mutua_engine::OrderId)> {
        let orders: Vec<_> = self
            .contributors
            .iter()
            .flat_map(|owner| self.shadow.orders_of(*owner))
            .collect();
        if orders.is_empty() {
            return None;
        }
        let order = &orders[self.rng.below(orders.len() as u64) as usize];
        let asker = if self.rng.percent(90) {
            order.owner
        } else {
            self.rng.pick(&self.contributors)
        };
        Some((asker, order.id))
    }

    fn cancel(&mut self) -> Result<Ack, RejectReason> {
        match self.resting_target() {
            Some((asker, order)) => self.send(asker, CommandKind::CancelOrder { order }),
            None => {
                let order = mutua_engine::OrderId(self.rng.below(10_000));
                let asker = self.rng.pick(&self.contributors);
                self.send(asker, CommandKind::CancelOrder { order })
            }
        }
    }

    fn reduce(&mut self) -> Result<Ack, RejectReason> {
        let reduce_by_lots = self.rng.below(8);
        match self.resting_target() {
            Some((asker, order)) => self.send(
                asker,
                CommandKind::ReduceOrder {
                    order,
                    reduce_by_lots,
                },
            ),
            None => self.cancel(),
        }
    }

    fn cash_account(&mut self) -> ParticipantId {
        if self.rng.percent(80) {
            self.rng.pick(&self.contributors)
        } else {
            self.rng.pick(&self.organizations)
        }
    }

    fn deposit(&mut self) -> Result<Ack, RejectReason> {
        let account = self.cash_account();
        let amount_minor = if self.rng.percent(5) {
            0
        } else {
            1 + self.rng.below(500_000)
        };
        self.send(
            OPERATOR,
            CommandKind::Deposit {
                account,
                amount_minor,
            },
        )
    }

    fn withdraw(&mut self) -> Result<Ack, RejectReason> {
        let account = self.cash_account();
        let free = self
            .shadow
            .participant(account)
            .expect("registered")
            .cash
            .free_minor();
        // Sometimes a little more than is free, which must be refused.
        let amount_minor =
            self.rng.below(free / 4 + 2) + if self.rng.percent(10) { free } else { 0 };
        self.send(
            OPERATOR,
            CommandKind::Withdraw {
                account,
                amount_minor,
            },
        )
    }

    /// Sends an earlier command id again: the same command (a client retry) or a different one
    /// under the same id. Inside the window it must apply nothing; outside, it is new.
    fn repeat_command_id(&mut self) {
        let back = if self.rng.percent(80) {
            1 + self.rng.below(200)
        } else {
            600 + self.rng.below(400)
        };
        let Some(index) = self.script.len().checked_sub(back as usize) else {
            return;
        };
        let mut command = self.script[index].command.clone();
        if self.rng.percent(50) {
            let account = self.rng.pick(&self.contributors);
            command.participant = OPERATOR;
            command.kind = CommandKind::Deposit {
                account,
                amount_minor: 777,
            };
        }
        let _ = self.push(command);
    }

    fn register_someone(&mut self) -> Result<Ack, RejectReason> {
        let (who, name) = match self.rng.below(4) {
            0 => (OPERATOR, String::new()),
            1 => (self.rng.pick(&self.contributors), "uninvited".to_string()),
            _ => (OPERATOR, format!("newcomer {}", self.script.len())),
        };
        let result = self.send(
            who,
            CommandKind::RegisterParticipant {
                role: Role::Contributor,
                name,
            },
        );
        if let Ok(Ack::Participant(newcomer)) = result {
            // Newcomers arrive with cash and join the trading crowd.
            self.contributors.push(newcomer);
            self.send(
                OPERATOR,
                CommandKind::Deposit {
                    account: newcomer,
                    amount_minor: 1_000_000,
                },
            )?;
        }
        result
    }

    fn change_accreditation(&mut self) -> Result<Ack, RejectReason> {
        let organization = self.rng.pick(&self.organizations);
        let accredited = self.rng.percent(60);
        let who = if self.rng.percent(80) {
            self.regulator
        } else {
            self.rng.pick(&self.contributors)
        };
        self.send(
            who,
            CommandKind::SetAccreditation {
                organization,
                accredited,
            },
        )
    }

    /// Opens, subscribes to, or closes an offering of a random instrument.
    fn offering_step(&mut self) -> Result<Ack, RejectReason> {
        let instrument = self.rng.pick(&self.instruments);
        let issuer = self.issuer(instrument);
        let open = self.offerings[instrument.0 as usize]
            .filter(|id| self.shadow.offering(*id).is_some_and(|o| o.open));
        match open {
            None => {
                let lots = 100 + self.rng.below(400);
                self.open_offering(issuer, instrument, lots)
                    .map(Ack::Offering)
            }
            Some(offering) if self.rng.percent(75) => {
                let contributor = self.rng.pick(&self.contributors);
                let lots = 1 + self.rng.below(60);
                self.send(contributor, CommandKind::Subscribe { offering, lots })
            }
            Some(offering) => {
                let closer = if self.rng.percent(90) {
                    issuer
                } else {
                    self.rng.pick(&self.organizations)
                };
                self.send(closer, CommandKind::CloseOffering { offering })
            }
        }
    }

    /// A distribution at or a little above what the return cap allows since the last one.
    fn distribute(&mut self) -> Result<Ack, RejectReason> {
        let instrument = self.rng.pick(&self.instruments);
        let listed = self.shadow.instrument(instrument).expect("listed");
        let cap = listed.distribution_cap_per_lot_minor(self.time_ns);
        let per_lot_minor = self.rng.below(cap + 2);
        self.send(
            self.issuer(instrument),
            CommandKind::PayDistribution {
                instrument,
                per_lot_minor,
            },
        )
    }

    fn toggle_trading(&mut self) -> Result<Ack, RejectReason> {
        let instrument = self.rng.pick(&self.instruments);
        let open = self.rng.percent(85);
        self.send(OPERATOR, CommandKind::SetTradingStatus { instrument, open })
    }

    /// Repayment at maturity (refused for shares, and for the bond before its maturity). An
    /// open offering blocks repayment, so the issuer closes it first.
    fn repay(&mut self) -> Result<Ack, RejectReason> {
        let instrument = self.rng.pick(&self.instruments);
        let issuer = self.issuer(instrument);
        let open = self
            .shadow
            .instrument(instrument)
            .expect("listed")
            .status
            .open_offering;
        match open {
            Some(offering) if self.rng.percent(80) => {
                self.send(issuer, CommandKind::CloseOffering { offering })
            }
            _ => self.send(issuer, CommandKind::RepayAtMaturity { instrument }),
        }
    }

    /// Commands no one should send: unknown participants, instruments, offerings and orders.
    fn nonsense(&mut self) -> Result<Ack, RejectReason> {
        let contributor = self.rng.pick(&self.contributors);
        let kind = match self.rng.below(4) {
            0 => CommandKind::CancelOrder {
                order: mutua_engine::OrderId(u64::MAX),
            },
            1 => CommandKind::Subscribe {
                offering: OfferingId(999),
                lots: 1,
            },
            2 => CommandKind::PlaceOrder {
                instrument: InstrumentId(99),
                side: Side::Buy,
                price_ticks: 100,
                lots: 1,
                time_in_force: TimeInForce::GoodTillCancelled,
                self_trade: SelfTradePrevention::CancelIncoming,
            },
            _ => {
                return self.send(
                    ParticipantId(1_000_000),
                    CommandKind::CancelOrder {
                        order: mutua_engine::OrderId(1),
                    },
                )
            }
        };
        self.send(contributor, kind)
    }
}

fn listing(
    symbol: &str,
    kind: InstrumentKind,
    issuer: ParticipantId,
    par_ticks: u64,
    price_floor_ticks: u64,
    maturity_time: Option<u64>,
    cooperative_investment_plan: bool,
) -> InstrumentSpec {
    InstrumentSpec {
        symbol: symbol.to_string(),
        kind,
        issuer,
        tick_size_minor: 1,
        lot_size_units: 10,
        par_ticks,
        return_cap_bp: 500,
        price_floor_ticks,
        maturity_time,
        holding_cap_bp: Some(3_000),
        cooperative_investment_plan,
        // CIP units carry no lock-in here, so that they trade within the script's span.
        lock_in_years: cooperative_investment_plan.then_some(0),
        tax_credit_bp: None,
        withdrawable: false,
        service_value_per_lot_minor: 0,
        withdrawal_notice_days: 0,
    }
}

/// The setup followed by `SCRIPT_COMMANDS` random commands from `seed`.
fn script(seed: u64) -> Vec<Scripted> {
    let mut client = Client::new(seed);
    client.set_up();
    for _ in 0..SCRIPT_COMMANDS {
        client.random_command();
    }
    client.script
}

/// Everything one run produced, command by command.
#[derive(Debug, PartialEq)]
struct Run {
    outcomes: Vec<Outcome>,
    events: Vec<Vec<Event>>,
    final_hash: StateHash,
}

/// Applies `script` to `engine`, checking every invariant after every command.
fn apply_all(
    engine: &mut Engine,
    script: &[Scripted],
    outcomes: &mut Vec<Outcome>,
    events: &mut Vec<Vec<Event>>,
) {
    for scripted in script {
        let mut produced = Vec::new();
        outcomes.push(engine.apply(&scripted.command, scripted.timestamp_ns, &mut produced));
        events.push(produced);
        if let Err(violation) = engine.check_invariants() {
            panic!("after {:?}: {violation}", scripted.command);
        }
    }
}

fn run(script: &[Scripted]) -> Run {
    let mut engine = Engine::new(market_config());
    let (mut outcomes, mut events) = (Vec::new(), Vec::new());
    apply_all(&mut engine, script, &mut outcomes, &mut events);
    Run {
        outcomes,
        events,
        final_hash: engine.state_hash(),
    }
}

/// Runs `script[..cut]`, snapshots, serializes and restores, then runs the rest on the restored
/// engine. Returns the run as seen from outside.
fn run_with_restart(script: &[Scripted], cut: usize) -> Run {
    let mut engine = Engine::new(market_config());
    let (mut outcomes, mut events) = (Vec::new(), Vec::new());
    apply_all(&mut engine, &script[..cut], &mut outcomes, &mut events);
    let snapshot = engine.snapshot();
    let bytes = snapshot.to_bytes();
    let decoded = Snapshot::from_bytes(&bytes).expect("a snapshot decodes");
    assert_eq!(
        decoded, snapshot,
        "snapshot changed in a round trip through bytes (cut at {cut})"
    );
    let mut restored =
        Engine::from_snapshot(decoded).expect("a snapshot of a valid engine restores");
    assert_eq!(
        restored.state_hash(),
        engine.state_hash(),
        "restored engine hashes differently (cut at {cut})"
    );
    drop(engine);
    apply_all(&mut restored, &script[cut..], &mut outcomes, &mut events);
    Run {
        outcomes,
        events,
        final_hash: restored.state_hash(),
    }
}

/// Counts of what a run did, so that a script that stopped exercising the engine fails loudly.
#[derive(Debug, Default)]
struct Coverage {
    trades: usize,
    rejected: usize,
    replayed: usize,
    cancelled: usize,
    reduced: usize,
    distributions: usize,
    offerings_issued: usize,
    offerings_failed: usize,
    tax_credits: usize,
    matured: usize,
    stale_timestamps: usize,
}

fn coverage(script: &[Scripted], run: &Run) -> Coverage {
    let mut seen = Coverage::default();
    for outcome in &run.outcomes {
        seen.rejected += usize::from(outcome.result.is_err() && !outcome.is_replay());
        seen.replayed += usize::from(outcome.is_replay());
    }
    for event in run.events.iter().flatten() {
        match event {
            Event::Trade { .. } => seen.trades += 1,
            Event::OrderCancelled { .. } => seen.cancelled += 1,
            Event::OrderReduced { .. } => seen.reduced += 1,
            Event::DistributionPaid { .. } => seen.distributions += 1,
            Event::OfferingClosed { issued: true, .. } => seen.offerings_issued += 1,
            Event::OfferingClosed { issued: false, .. } => seen.offerings_failed += 1,
            Event::TaxCreditRecorded { .. } => seen.tax_credits += 1,
            Event::InstrumentMatured { .. } => seen.matured += 1,
            _ => {}
        }
    }
    let mut clock = 0;
    for scripted in script {
        seen.stale_timestamps += usize::from(scripted.timestamp_ns < clock);
        clock = clock.max(scripted.timestamp_ns);
    }
    seen
}

#[test]
fn the_script_exercises_the_whole_engine() {
    let script = script(1);
    let seen = coverage(&script, &run(&script));
    // Floors well below what seed 1 produces; they only catch a script that has gone quiet.
    assert!(seen.trades >= 300, "{seen:?}");
    assert!(seen.rejected >= 200, "{seen:?}");
    assert!(seen.replayed >= 50, "{seen:?}");
    assert!(seen.cancelled >= 100 && seen.reduced >= 30, "{seen:?}");
    assert!(seen.distributions >= 3, "{seen:?}");
    assert!(
        seen.offerings_issued >= 5 && seen.offerings_failed >= 1,
        "{seen:?}"
    );
    assert!(seen.tax_credits >= 6, "{seen:?}");
    assert_eq!(seen.matured, 1, "the bond matures once: {seen:?}");
    assert!(seen.stale_timestamps >= 20, "{seen:?}");
}

#[test]
fn the_same_script_gives_the_same_events_and_hash() {
    let script = script(1);
    let first = run(&script);
    let second = run(&script);
    assert_eq!(first.outcomes, second.outcomes);
    // Compare command by command so that a failure names the first divergence.
    for (index, (a, b)) in first.events.iter().zip(&second.events).enumerate() {
        assert_eq!(
            a, b,
            "events of command {index}: {:?}",
            script[index].command
        );
    }
    assert_eq!(first.final_hash, second.final_hash);
}

#[test]
fn a_restored_snapshot_carries_on_exactly() {
    let script = script(1);
    let uninterrupted = run(&script);
    let setup_commands = script.len() - SCRIPT_COMMANDS;
    // The midpoint, plus cuts right after the setup and one command before the end.
    for cut in [script.len() / 2, setup_commands, script.len() - 1] {
        let restarted = run_with_restart(&script, cut);
        assert_eq!(
            restarted.outcomes[cut..],
            uninterrupted.outcomes[cut..],
            "outcomes after a restart at {cut}"
        );
        for index in cut..script.len() {
            assert_eq!(
                restarted.events[index], uninterrupted.events[index],
                "events of command {index} after a restart at {cut}"
            );
        }
        assert_eq!(
            restarted.final_hash, uninterrupted.final_hash,
            "final hash after a restart at {cut}"
        );
    }
}

#[test]
fn snapshot_bytes_round_trip_and_refuse_truncation() {
    let script = script(1);
    let mut engine = Engine::new(market_config());
    apply_all(
        &mut engine,
        &script[..script.len() / 2],
        &mut Vec::new(),
        &mut Vec::new(),
    );
    let snapshot = engine.snapshot();
    assert!(
        !snapshot
            .instruments
            .iter()
            .all(|i| i.bids.is_empty() && i.asks.is_empty()),
        "the midpoint has resting orders"
    );
    let bytes = snapshot.to_bytes();
    let decoded = Snapshot::from_bytes(&bytes).expect("decodes");
    assert_eq!(decoded, snapshot);
    assert_eq!(decoded.hash(), engine.state_hash());
    assert_eq!(decoded.to_bytes(), bytes, "encoding is canonical");
    assert!(
        Snapshot::from_bytes(&bytes[..bytes.len() - 1]).is_err(),
        "a truncated snapshot must not decode"
    );
    let restored = Engine::from_snapshot(decoded).expect("restores");
    assert_eq!(
        restored.snapshot(),
        snapshot,
        "restoring then snapshotting gives back the same snapshot"
    );
}

#[test]
fn different_scripts_give_different_hashes() {
    let script_one = script(1);
    let script_two = script(2);
    let hash_one = run(&script_one).final_hash;
    assert_ne!(
        run(&script_two).final_hash,
        hash_one,
        "two different scripts ended in the same hash"
    );
    // One extra accepted deposit at the end is enough to change it.
    let mut longer = script_one.clone();
    let last = longer.last().expect("non-empty").clone();
    longer.push(Scripted {
        command: Command {
            id: CommandId(u128::MAX),
            participant: OPERATOR,
            kind: CommandKind::Deposit {
                account: OPERATOR,
                amount_minor: 1,
            },
        },
        timestamp_ns: last.timestamp_ns,
    });
    let extended = run(&longer);
    assert!(
        extended.outcomes.last().expect("applied").result.is_ok(),
        "the extra deposit is accepted"
    );
    assert_ne!(
        extended.final_hash, hash_one,
        "an accepted deposit left the hash unchanged"
    );
    assert_ne!(Engine::new(market_config()).state_hash(), hash_one);
}
