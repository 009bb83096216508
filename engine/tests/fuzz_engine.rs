//! Fuzz-style property tests of the engine: random command sequences through `Engine::apply`,
//! covering every `CommandKind` (registrations with random roles and names, listings with random
//! specs, offerings, distributions, maturity, orders with random prices, quantities, time in
//! force and self-trade prevention, cancels and reductions of real and made-up orders, deposits
//! and withdrawals from zero to `u64::MAX`, credentials, suspensions, accreditation granted and
//! suspended, and the social economy: accredited categories, service packages, vouchers with
//! random co-payments and expiries redeemed at accredited organizations or not, service value of
//! listed instruments redeemed, time credits recorded, moved, spent, donated and granted, pool
//! contributions and loan repayments, netting cycles, surplus declarations for any year, and the
//! clock's ticks), sent by fitting, wrong, suspended and unregistered participants, with command
//! ids fresh, retried exactly, or reused for another command, while time moves by 0 ns to years
//! (across maturities, lock-ins and voucher expiries), now and then backwards.
//!
//! After every command: `check_invariants()` holds; the engine's time is the latest given and its
//! command count grew by one; a rejected command emitted no events and changed nothing but the
//! memory of its id; an accepted one emitted events and acknowledged what it created (the next
//! participant, instrument, offering, order or credential id); identity and role are checked
//! first (unknown, suspended, role not allowed); accreditation next where it gates a command
//! (`NotAccredited` exactly when the organization a listing, offering, subscription, redemption
//! or time-credit command depends on is not accredited, and never otherwise), and an offering
//! closed by an issuer no longer accredited fails and releases every subscription; a tick does no
//! more than its bound of work and, within it, leaves nothing due behind (a tick with nothing due
//! is accepted with no events and changes nothing); a netting cycle settles what came in and what
//! the pool lent; a remembered id answers with its first outcome
//! if the command is the same and `RequestIdReused` if not, and changes nothing; each
//! participant's last `command_ids_per_participant_max / 2` ids are always remembered. At the end
//! of every sequence: `Engine::from_snapshot(engine.snapshot())` succeeds with the same snapshot
//! and `state_hash()`, and carries on exactly as the original does (the last commands again,
//! then every resting order cancelled by its owner, a netting cycle and ticks until every voucher
//! has expired, after which no cash is reserved but for open subscriptions); replaying the
//! recorded commands with their timestamps into a fresh engine gives the same outcomes, events
//! and hash. Each sequence also swaps its engine for one restored from a snapshot at a random
//! step.
//!
//! Commands are written by a client that aims most of them at real participants, instruments,
//! offerings and orders (read from the engine as it goes) and the rest at anything at all.
//! What proptest generates, and shrinks, is the client's abstract choices; the concrete commands
//! are recorded as they are applied, and the recording is what the replay replays.
//!
//! `the_generator_reaches_every_command_and_outcome` checks, on a fixed-seed sample, that the
//! client does reach every command accepted and refused, retries, reused ids, trades, maturity,
//! lock-ins, full books, suspensions, failed closes of unaccredited issuers, voucher expiries,
//! pool loans and netting cycles.
//!
//! The cases per property come from `MUTUA_FUZZ_CASES` (default 500, a few seconds in release
//! mode). There are 4 properties, so the run below runs 4 × 250 000 = 1 000 000 sequences (each
//! the 43-command standard market in four cases of five, then 1 to 90 random commands, 120 when
//! trading):
//!
//! ```text
//! MUTUA_FUZZ_CASES=250000 CARGO_TARGET_DIR=/var/tmp/mutua-target cargo test --release -p mutua-engine --test fuzz_engine
//! ```

use std::collections::{BTreeMap, HashMap};

use mutua_engine::calendar::date_of;
use mutua_engine::{
    command_digest, Ack, CancelReason, Command, CommandId, CommandKind, CredentialId, Engine,
    Event, InstrumentId, InstrumentKind, InstrumentSpec, MarketConfig, ObligationCause, OfferingId,
    OrderId, Outcome, PackageId, ParticipantId, Position, RejectReason, Remembered, ResolutionId,
    Role, SelfTradePrevention, Side, Snapshot, TimeInForce, Timestamp, VoteChoice, VoucherId,
    WithdrawalId, GENESIS_OPERATOR,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{RngAlgorithm, TestRng, TestRunner};

// ---- How many cases ----

/// Sequences per property when `MUTUA_FUZZ_CASES` is not set.
const CASES_DEFAULT: u32 = 500;

fn cases() -> u32 {
    match std::env::var("MUTUA_FUZZ_CASES") {
        Ok(text) => text
            .trim()
            .parse()
            .expect("MUTUA_FUZZ_CASES must be a whole number of cases per property"),
        Err(_) => CASES_DEFAULT,
    }
}

/// No regression files are written: a failure is reported with its shrunk input instead.
fn proptest_config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases())
    }
}

// ---- Markets ----

const HOUR_NS: u64 = 3_600_000_000_000;
const DAY_NS: u64 = 24 * HOUR_NS;
/// A 365-day year: the fuzzer's unit of "years", not the engine's calendar.
const YEAR_NS: u64 = 365 * DAY_NS;
/// 14 November 2023: when every sequence starts.
const START_NS: u64 = 1_700_000_000_000_000_000;

/// The default market with a small idempotency window and few credentials per participant.
fn roomy_market() -> MarketConfig {
    MarketConfig {
        command_ids_per_participant_max: 64,
        credentials_per_participant_max: 4,
        ..MarketConfig::default()
    }
}

/// Every bound small enough to be reached in a short sequence: full books, full markets, full
/// offerings, credentials and participants, ids forgotten after a handful of commands, a price
/// ladder that is not a power of two, few packages and vouchers, short voucher validity, few
/// minutes of time credits per command, few accredited categories, and ticks that leave work
/// for the next one.
fn tight_market() -> MarketConfig {
    MarketConfig {
        participants_max: 12,
        instruments_max: 4,
        orders_max: 5,
        orders_per_book_max: 3,
        price_levels_max: 1_000,
        order_lots_max: 500,
        subscriptions_per_offering_max: 4,
        command_ids_per_participant_max: 6,
        credentials_max: 8,
        credentials_per_participant_max: 2,
        name_bytes_max: 24,
        service_packages_max: 4,
        vouchers_issued_max: 12,
        vouchers_open_max: 4,
        voucher_validity_days_max: 30,
        time_credit_minutes_per_command_max: 600,
        accredited_categories_max: 3,
        clock_actions_per_tick_max: 2,
        ..MarketConfig::default()
    }
}

// ---- What the client chooses (generated and shrunk by proptest) ----

/// How the clock moves before a command.
#[derive(Clone, Copy, Debug)]
enum Time {
    /// Forward by this many nanoseconds (0 included).
    Advance(u64),
    /// A timestamp this much older than the latest: the engine's time must not go back.
    Stale(u64),
    /// Close to the end of time (`u64::MAX` less this).
    Far(u64),
}

/// Who sends a command.
#[derive(Clone, Copy, Debug)]
enum Who {
    /// The participant the command belongs to (the order's owner, the instrument's issuer), or
    /// the n-th participant whose role may send it.
    Fitting(u16),
    /// The n-th registered participant, whatever its role.
    Anyone(u16),
    /// Not (yet) registered: n ids past the last registered one.
    Unregistered(u8),
    /// Any id at all.
    Raw(u32),
}

/// Which participant, instrument, offering, order or credential a command names.
#[derive(Clone, Copy, Debug)]
enum Pick {
    /// The n-th existing one (preferring live ones: open offerings, resting orders, live
    /// credentials), or a made-up id when there are none.
    Real(u16),
    /// This id, whether it exists or not.
    Raw(u64),
}

/// A quantity in lots.
#[derive(Clone, Copy, Debug)]
enum Lots {
    Zero,
    Small(u64),
    /// This percentage of what the command could use: free units for a sell, room under the
    /// holding cap for a buy, what rests for a reduction, what is left in an offering.
    Share(u8),
    /// The market's `order_lots_max` plus this.
    Limit(i8),
    Max,
    Any(u64),
}

/// An amount of cash in minor units.
#[derive(Clone, Copy, Debug)]
enum Cash {
    Zero,
    Small(u64),
    Large(u64),
    /// This percentage of the natural amount: free cash for a withdrawal, the room left before
    /// the cash in circulation reaches `u64::MAX` for a deposit, the distribution cap.
    Share(u8),
    Max,
    Any(u64),
}

/// An order price in ticks.
#[derive(Clone, Copy, Debug)]
enum Price {
    Par(i16),
    Ceiling(i16),
    Floor(i16),
    /// The best price on the other side (par if there is none), plus this.
    Best(i16),
    Zero,
    Max,
    Any(u64),
}

#[derive(Clone, Debug)]
enum Name {
    Numbered(u16),
    Empty,
    Blank,
    /// This many bytes around the market's `name_bytes_max` (plus the offset).
    AtLimit(i8),
    /// Two-byte characters up to around the bound.
    Wide(i8),
    Any(String),
}

#[derive(Clone, Debug)]
enum Symbol {
    /// One of a few symbols, so that some are taken.
    Pool(u8),
    Length(u8),
    Any(String),
}

#[derive(Clone, Copy, Debug)]
enum Maturity {
    None,
    /// This long after the listing (0 included, which is invalid).
    After(u64),
    Raw(u64),
}

#[derive(Clone, Debug)]
struct Listing {
    symbol: Symbol,
    kind: InstrumentKind,
    issuer: Pick,
    tick_size_minor: u64,
    lot_size_units: u64,
    par_ticks: u64,
    return_cap_bp: u32,
    /// Percentage of par, or any number of ticks.
    price_floor: Result<u8, u64>,
    maturity: Maturity,
    holding_cap_bp: Option<u32>,
    cooperative_investment_plan: bool,
    lock_in_years: Option<u32>,
    tax_credit_bp: Option<u32>,
    withdrawable: bool,
    withdrawal_notice_days: u32,
    service_value_per_lot_minor: u64,
}

/// Time credits, in minutes.
#[derive(Clone, Copy, Debug)]
enum Minutes {
    Zero,
    Small(u64),
    /// This percentage of the natural amount: the sender's balance (the shared pool's for a
    /// grant, a working day for hours recorded).
    Share(u8),
    /// The market's `time_credit_minutes_per_command_max` plus this.
    Limit(i8),
    Any(u64),
}

/// A service category.
#[derive(Clone, Copy, Debug)]
enum Category {
    /// One of a few valid categories, so that packages and accreditations meet.
    Pool(u8),
    /// Empty, upper case, too long or with a space.
    Invalid(u8),
}

/// When a voucher expires.
#[derive(Clone, Copy, Debug)]
enum Expiry {
    /// This long after now (0 included, which is invalid).
    After(u64),
    /// The market's `voucher_validity_days_max` from now, plus this many nanoseconds.
    AtLimit(i8),
    Raw(u64),
}

/// The year a surplus is declared for.
#[derive(Clone, Copy, Debug)]
enum Year {
    /// This many years before the current one (UTC).
    Back(u8),
    /// The year after the current one.
    Next,
    Raw(i32),
}

/// One command, as the client thinks of it. Every `CommandKind` has one.
#[derive(Clone, Debug)]
enum Action {
    Register {
        role: Role,
        name: Name,
    },
    SetAccreditation {
        organization: Pick,
        accredited: bool,
    },
    Deposit {
        account: Pick,
        amount: Cash,
    },
    Withdraw {
        account: Pick,
        amount: Cash,
    },
    List(Box<Listing>),
    SetTradingStatus {
        instrument: Pick,
        open: bool,
    },
    OpenOffering {
        instrument: Pick,
        lots: Lots,
        minimum: Lots,
    },
    Subscribe {
        offering: Pick,
        lots: Lots,
    },
    CloseOffering {
        offering: Pick,
    },
    Place {
        instrument: Pick,
        side: Side,
        price: Price,
        lots: Lots,
        time_in_force: TimeInForce,
        self_trade: SelfTradePrevention,
    },
    Cancel {
        order: Pick,
    },
    Reduce {
        order: Pick,
        by: Lots,
    },
    Distribute {
        instrument: Pick,
        per_lot: Cash,
    },
    Repay {
        instrument: Pick,
    },
    IssueCredential {
        participant: Pick,
        token: u8,
        replace_existing: bool,
    },
    RevokeCredential {
        credential: Pick,
    },
    SetParticipantStatus {
        participant: Pick,
        suspended: bool,
    },
    RequestWithdrawal {
        instrument: Pick,
        lots: Lots,
    },
    CancelWithdrawal {
        withdrawal: Pick,
    },
    CompleteWithdrawal {
        withdrawal: Pick,
    },
    SuspendWithdrawals {
        instrument: Pick,
        suspended: bool,
    },
    Propose {
        title: u8,
        closes_in: u64,
    },
    Vote {
        resolution: Pick,
        choice: VoteChoice,
    },
    CloseResolution {
        resolution: Pick,
    },
    SetCategories {
        organization: Pick,
        categories: Vec<Category>,
    },
    DefinePackage {
        category: Category,
        name: u8,
        face: Cash,
    },
    IssueVoucher {
        package: Pick,
        beneficiary: Pick,
        /// A percentage of the face value, or any amount.
        co_payment: Result<u8, u64>,
        expiry: Expiry,
    },
    RedeemVoucher {
        voucher: Pick,
        organization: Pick,
    },
    RedeemServiceValue {
        instrument: Pick,
        organization: Pick,
        amount: Cash,
    },
    RecordTime {
        volunteer: Pick,
        minutes: Minutes,
    },
    TransferTime {
        to: Pick,
        minutes: Minutes,
    },
    SpendTime {
        organization: Pick,
        minutes: Minutes,
    },
    DonateTime {
        minutes: Minutes,
    },
    GrantTime {
        dependent: Pick,
        minutes: Minutes,
    },
    ContributeToPool {
        amount: Cash,
    },
    RepayPoolLoan {
        amount: Cash,
    },
    CloseNetting,
    DeclareSurplus {
        year: Year,
        surplus: Cash,
    },
    Tick,
}

/// Which command id a command carries.
#[derive(Clone, Copy, Debug)]
enum Id {
    Fresh,
    /// Send the n-th recorded command again, exactly: same participant, id and command.
    Retry(u16),
    /// The n-th recorded command's participant and id with this step's command.
    Reuse(u16),
    /// This step's participant and command with the n-th recorded command's id (another
    /// participant's id is a fresh one for this participant).
    Borrow(u16),
}

#[derive(Clone, Debug)]
struct Step {
    time: Time,
    who: Who,
    action: Action,
    id: Id,
}

#[derive(Clone, Debug)]
struct Sequence {
    /// Start from the standard market (participants, three instruments issued and trading).
    prelude: bool,
    steps: Vec<Step>,
    /// Before this step, the engine is replaced by one restored from its snapshot.
    swap_at: usize,
}

/// Which mix of commands a property sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mix {
    /// Everything, evenly.
    Mixed,
    /// Everything, in a market where every bound is small.
    Tight,
    /// Mostly orders, cancels and reductions, with little time passing.
    Trading,
    /// Years passing: offerings, distributions, maturity, lock-ins, credentials, suspensions,
    /// reused ids, voucher expiries, netting cycles, surpluses and ticks.
    Lifecycle,
    /// The social economy: packages, vouchers, service value, time credits, the pool, netting
    /// cycles in a market where cash is short, so the pool lends and loans are repaid.
    Social,
}

// ---- Strategies ----

/// Mostly small steps; years now and then (often in the lifecycle mix); rarely a jump to the
/// end of time, after which every timestamp is near `u64::MAX`.
fn time(mix: Mix) -> impl Strategy<Value = Time> {
    let years = if mix == Mix::Lifecycle { 60 } else { 8 };
    let same = if mix == Mix::Trading { 80 } else { 40 };
    prop_oneof![
        same => Just(Time::Advance(0)),
        40 => (1..1_000_000u64).prop_map(Time::Advance),
        20 => (0..2 * DAY_NS).prop_map(Time::Advance),
        10 => (0..90 * DAY_NS).prop_map(Time::Advance),
        years => (0..=6 * YEAR_NS).prop_map(Time::Advance),
        10 => (0..2 * DAY_NS).prop_map(Time::Stale),
        1 => prop_oneof![Just(0u64), 0..YEAR_NS].prop_map(Time::Far),
    ]
}

/// `plausible` scales the weight of the choices that are usually valid against the wild ones.
fn who(plausible: u32) -> impl Strategy<Value = Who> {
    prop_oneof![
        28 * plausible => any::<u16>().prop_map(Who::Fitting),
        2 => any::<u16>().prop_map(Who::Anyone),
        1 => (0..3u8).prop_map(Who::Unregistered),
        1 => any::<u32>().prop_map(Who::Raw),
    ]
}

fn pick() -> impl Strategy<Value = Pick> {
    plausible_pick(1)
}

fn plausible_pick(plausible: u32) -> impl Strategy<Value = Pick> {
    prop_oneof![
        28 * plausible => any::<u16>().prop_map(Pick::Real),
        1 => (0..12u64).prop_map(Pick::Raw),
        1 => any::<u64>().prop_map(Pick::Raw),
    ]
}

fn lots() -> impl Strategy<Value = Lots> {
    plausible_lots(1)
}

fn plausible_lots(plausible: u32) -> impl Strategy<Value = Lots> {
    prop_oneof![
        1 => Just(Lots::Zero),
        12 * plausible => (1..=20u64).prop_map(Lots::Small),
        12 * plausible => (0..=150u8).prop_map(Lots::Share),
        1 => (-1..=1i8).prop_map(Lots::Limit),
        1 => Just(Lots::Max),
        1 => any::<u64>().prop_map(Lots::Any),
    ]
}

fn cash() -> impl Strategy<Value = Cash> {
    prop_oneof![
        1 => Just(Cash::Zero),
        4 => (1..=10_000u64).prop_map(Cash::Small),
        3 => (1_000_000..10_000_000_000_000u64).prop_map(Cash::Large),
        4 => (0..=120u8).prop_map(Cash::Share),
        1 => Just(Cash::Max),
        1 => any::<u64>().prop_map(Cash::Any),
    ]
}

fn price(plausible: u32) -> impl Strategy<Value = Price> {
    prop_oneof![
        4 * plausible => prop_oneof![3 => -20..=0i16, 1 => 1..=20i16].prop_map(Price::Par),
        2 * plausible => prop_oneof![3 => -3..=0i16, 1 => 1..=3i16].prop_map(Price::Ceiling),
        plausible => (-3..=3i16).prop_map(Price::Floor),
        6 * plausible => (-4..=4i16).prop_map(Price::Best),
        1 => Just(Price::Zero),
        1 => Just(Price::Max),
        1 => any::<u64>().prop_map(Price::Any),
    ]
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![
        4 => Just(Role::Contributor),
        3 => Just(Role::Organization),
        1 => Just(Role::Funder),
        1 => Just(Role::Regulator),
        1 => Just(Role::Operator),
    ]
}

fn name() -> impl Strategy<Value = Name> {
    prop_oneof![
        8 => any::<u16>().prop_map(Name::Numbered),
        1 => Just(Name::Empty),
        1 => Just(Name::Blank),
        1 => (-2..=2i8).prop_map(Name::AtLimit),
        1 => (-2..=2i8).prop_map(Name::Wide),
        1 => ".{0,12}".prop_map(Name::Any),
    ]
}

fn symbol() -> impl Strategy<Value = Symbol> {
    prop_oneof![
        6 => (0..8u8).prop_map(Symbol::Pool),
        1 => (0..=18u8).prop_map(Symbol::Length),
        1 => "[A-Za-z0-9._ -]{0,18}".prop_map(Symbol::Any),
    ]
}

fn instrument_kind() -> impl Strategy<Value = InstrumentKind> {
    prop_oneof![
        Just(InstrumentKind::CommunityShare),
        Just(InstrumentKind::CommunityBond),
        Just(InstrumentKind::CommunityInvestmentNote)
    ]
}

/// A spec that is usually valid, with every field now and then out of its range.
fn listing() -> impl Strategy<Value = Listing> {
    let units = (
        prop_oneof![8 => 1..=100u64, 1 => Just(0u64), 1 => any::<u64>()],
        prop_oneof![8 => 1..=100u64, 1 => Just(0u64), 1 => any::<u64>()],
        prop_oneof![8 => 1..=3_000u64, 1 => Just(0u64), 1 => (1u64 << 22) - 2..(1u64 << 22) + 2, 1 => any::<u64>()],
        prop_oneof![8 => 0..=2_000u32, 1 => 9_990..=10_010u32, 1 => any::<u32>()],
        prop_oneof![6 => (0..=100u8).prop_map(Ok), 1 => (101..=255u8).prop_map(Ok), 1 => any::<u64>().prop_map(Err)],
    );
    let maturity = prop_oneof![
        3 => Just(Maturity::None),
        5 => prop_oneof![Just(0u64), 1..DAY_NS, 1..=4 * YEAR_NS].prop_map(Maturity::After),
        1 => any::<u64>().prop_map(Maturity::Raw),
    ];
    let terms = (
        prop_oneof![4 => Just(None), 4 => (1..=10_000u32).prop_map(Some), 1 => Just(Some(0)), 1 => any::<u32>().prop_map(Some)],
        prop_oneof![4 => Just(false), 1 => Just(true)],
        prop_oneof![4 => Just(None), 2 => (0..=6u32).prop_map(Some), 1 => Just(Some(101)), 1 => any::<u32>().prop_map(Some)],
        prop_oneof![4 => Just(None), 3 => (0..=10_000u32).prop_map(Some), 1 => any::<u32>().prop_map(Some)],
        prop_oneof![3 => Just(false), 1 => Just(true)],
        prop_oneof![3 => Just(0u32), 3 => 1..=90u32, 1 => any::<u32>()],
    );
    // Mostly none; now and then a service value, rarely one too large for the obligations.
    let service_value = prop_oneof![
        4 => Just(0u64),
        3 => 1..=5_000u64,
        1 => 5_000..=1_000_000u64,
        1 => any::<u64>(),
    ];
    (
        symbol(),
        instrument_kind(),
        pick(),
        units,
        maturity,
        terms,
        service_value,
    )
        .prop_map(
            |(
                symbol,
                kind,
                issuer,
                (tick_size_minor, lot_size_units, par_ticks, return_cap_bp, price_floor),
                maturity,
                (
                    holding_cap_bp,
                    cooperative_investment_plan,
                    lock_in_years,
                    tax_credit_bp,
                    withdrawable,
                    withdrawal_notice_days,
                ),
                service_value_per_lot_minor,
            )| Listing {
                symbol,
                kind,
                issuer,
                tick_size_minor,
                lot_size_units,
                par_ticks,
                return_cap_bp,
                price_floor,
                maturity,
                holding_cap_bp,
                cooperative_investment_plan,
                lock_in_years,
                tax_credit_bp,
                withdrawable,
                withdrawal_notice_days,
                service_value_per_lot_minor,
            },
        )
}

fn minutes() -> impl Strategy<Value = Minutes> {
    prop_oneof![
        1 => Just(Minutes::Zero),
        6 => (1..=600u64).prop_map(Minutes::Small),
        8 => (0..=120u8).prop_map(Minutes::Share),
        1 => (-1..=1i8).prop_map(Minutes::Limit),
        1 => any::<u64>().prop_map(Minutes::Any),
    ]
}

fn category() -> impl Strategy<Value = Category> {
    prop_oneof![
        12 => (0..4u8).prop_map(Category::Pool),
        1 => (0..4u8).prop_map(Category::Invalid),
    ]
}

fn expiry() -> impl Strategy<Value = Expiry> {
    prop_oneof![
        1 => Just(Expiry::After(0)),
        2 => (1..2 * DAY_NS).prop_map(Expiry::After),
        7 => (1..=20 * DAY_NS).prop_map(Expiry::After),
        1 => (DAY_NS..=3 * YEAR_NS).prop_map(Expiry::After),
        1 => (-1..=1i8).prop_map(Expiry::AtLimit),
        1 => any::<u64>().prop_map(Expiry::Raw),
    ]
}

fn year() -> impl Strategy<Value = Year> {
    prop_oneof![
        8 => (0..=2u8).prop_map(Year::Back),
        1 => Just(Year::Next),
        1 => prop_oneof![Just(1969), Just(1970), Just(i32::MIN), Just(i32::MAX), any::<i32>()].prop_map(Year::Raw),
    ]
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

fn time_in_force() -> impl Strategy<Value = TimeInForce> {
    prop_oneof![6 => Just(TimeInForce::GoodTillCancelled), 2 => Just(TimeInForce::ImmediateOrCancel), 2 => Just(TimeInForce::FillOrKill)]
}

fn self_trade() -> impl Strategy<Value = SelfTradePrevention> {
    prop_oneof![
        Just(SelfTradePrevention::CancelIncoming),
        Just(SelfTradePrevention::CancelResting),
        Just(SelfTradePrevention::CancelBoth)
    ]
}

/// Relative weights of each command in a mix.
struct Weights {
    register: u32,
    accreditation: u32,
    deposit: u32,
    withdraw: u32,
    list: u32,
    trading_status: u32,
    open_offering: u32,
    subscribe: u32,
    close_offering: u32,
    place: u32,
    cancel: u32,
    reduce: u32,
    distribute: u32,
    repay: u32,
    issue_credential: u32,
    revoke_credential: u32,
    participant_status: u32,
    withdrawal: u32,
    vote: u32,
    categories: u32,
    package: u32,
    issue_voucher: u32,
    redeem_voucher: u32,
    service_value: u32,
    /// Each of the five time-credit commands.
    time_credits: u32,
    /// Each of contributing to the pool and repaying a loan.
    pool: u32,
    netting: u32,
    surplus: u32,
    tick: u32,
}

impl Mix {
    fn weights(self) -> Weights {
        let even = Weights {
            register: 3,
            accreditation: 2,
            deposit: 3,
            withdraw: 2,
            list: 3,
            trading_status: 2,
            open_offering: 3,
            subscribe: 4,
            close_offering: 3,
            place: 12,
            cancel: 3,
            reduce: 3,
            distribute: 3,
            repay: 2,
            issue_credential: 2,
            revoke_credential: 2,
            participant_status: 2,
            withdrawal: 2,
            vote: 2,
            categories: 1,
            package: 2,
            issue_voucher: 4,
            redeem_voucher: 4,
            service_value: 2,
            time_credits: 4,
            pool: 2,
            netting: 2,
            surplus: 1,
            tick: 2,
        };
        let quiet = Weights {
            register: 1,
            accreditation: 1,
            list: 1,
            trading_status: 1,
            open_offering: 1,
            subscribe: 1,
            close_offering: 1,
            distribute: 1,
            repay: 1,
            issue_credential: 1,
            revoke_credential: 1,
            participant_status: 1,
            withdrawal: 1,
            vote: 1,
            issue_voucher: 1,
            redeem_voucher: 1,
            service_value: 1,
            time_credits: 1,
            pool: 1,
            netting: 1,
            tick: 1,
            ..even
        };
        match self {
            Mix::Mixed => even,
            Mix::Tight => Weights {
                place: 40,
                cancel: 2,
                reduce: 2,
                issue_credential: 5,
                package: 1,
                issue_voucher: 2,
                redeem_voucher: 2,
                service_value: 1,
                time_credits: 1,
                pool: 1,
                netting: 1,
                tick: 1,
                ..even
            },
            Mix::Trading => Weights {
                place: 40,
                cancel: 8,
                reduce: 8,
                deposit: 3,
                withdraw: 2,
                ..quiet
            },
            Mix::Social => Weights {
                place: 3,
                cancel: 1,
                reduce: 1,
                deposit: 2,
                withdraw: 5,
                categories: 2,
                package: 3,
                issue_voucher: 6,
                redeem_voucher: 6,
                service_value: 10,
                time_credits: 5,
                pool: 8,
                netting: 8,
                surplus: 2,
                ..even
            },
            Mix::Lifecycle => Weights {
                place: 6,
                distribute: 6,
                repay: 5,
                issue_credential: 4,
                revoke_credential: 4,
                participant_status: 4,
                withdrawal: 4,
                vote: 4,
                netting: 3,
                surplus: 2,
                tick: 4,
                ..even
            },
        }
    }

    /// How much more often the usually valid choices are made than the wild ones.
    fn plausible(self) -> u32 {
        match self {
            Mix::Trading => 4,
            Mix::Tight => 3,
            Mix::Mixed | Mix::Lifecycle => 1,
            Mix::Social => 2,
        }
    }

    fn market(self) -> MarketConfig {
        match self {
            Mix::Tight => tight_market(),
            _ => roomy_market(),
        }
    }
}

fn action(mix: Mix) -> impl Strategy<Value = Action> {
    let w = mix.weights();
    let plausible = mix.plausible();
    prop_oneof![
        w.register => (role(), name()).prop_map(|(role, name)| Action::Register { role, name }),
        w.accreditation => (pick(), any::<bool>()).prop_map(|(organization, accredited)| Action::SetAccreditation { organization, accredited }),
        w.deposit => (pick(), cash()).prop_map(|(account, amount)| Action::Deposit { account, amount }),
        w.withdraw => (pick(), cash()).prop_map(|(account, amount)| Action::Withdraw { account, amount }),
        w.list => listing().prop_map(|listing| Action::List(Box::new(listing))),
        w.trading_status => (pick(), prop_oneof![2 => Just(true), 1 => Just(false)]).prop_map(|(instrument, open)| Action::SetTradingStatus { instrument, open }),
        w.open_offering => (pick(), lots(), lots()).prop_map(|(instrument, lots, minimum)| Action::OpenOffering { instrument, lots, minimum }),
        w.subscribe => (pick(), lots()).prop_map(|(offering, lots)| Action::Subscribe { offering, lots }),
        w.close_offering => pick().prop_map(|offering| Action::CloseOffering { offering }),
        w.place => (plausible_pick(plausible), side(), price(plausible), plausible_lots(plausible), time_in_force(), self_trade()).prop_map(|(instrument, side, price, lots, time_in_force, self_trade)| Action::Place {
            instrument,
            side,
            price,
            lots,
            time_in_force,
            self_trade,
        }),
        w.cancel => plausible_pick(plausible).prop_map(|order| Action::Cancel { order }),
        w.reduce => (plausible_pick(plausible), plausible_lots(plausible)).prop_map(|(order, by)| Action::Reduce { order, by }),
        w.distribute => (pick(), cash()).prop_map(|(instrument, per_lot)| Action::Distribute { instrument, per_lot }),
        w.repay => pick().prop_map(|instrument| Action::Repay { instrument }),
        w.issue_credential => (pick(), 0..4u8, any::<bool>()).prop_map(|(participant, token, replace_existing)| Action::IssueCredential { participant, token, replace_existing }),
        w.revoke_credential => pick().prop_map(|credential| Action::RevokeCredential { credential }),
        w.participant_status => (pick(), any::<bool>()).prop_map(|(participant, suspended)| Action::SetParticipantStatus { participant, suspended }),
        w.withdrawal => (plausible_pick(plausible), plausible_lots(plausible)).prop_map(|(instrument, lots)| Action::RequestWithdrawal { instrument, lots }),
        w.withdrawal => plausible_pick(plausible).prop_map(|withdrawal| Action::CancelWithdrawal { withdrawal }),
        w.withdrawal => plausible_pick(plausible).prop_map(|withdrawal| Action::CompleteWithdrawal { withdrawal }),
        1 => (pick(), any::<bool>()).prop_map(|(instrument, suspended)| Action::SuspendWithdrawals { instrument, suspended }),
        w.vote => (any::<u8>(), prop_oneof![Just(0u64), 1..=90 * DAY_NS, Just(u64::MAX)]).prop_map(|(title, closes_in)| Action::Propose { title, closes_in }),
        w.vote * 2 => (plausible_pick(plausible), prop_oneof![Just(VoteChoice::For), Just(VoteChoice::Against), Just(VoteChoice::Abstain)])
            .prop_map(|(resolution, choice)| Action::Vote { resolution, choice }),
        w.vote => plausible_pick(plausible).prop_map(|resolution| Action::CloseResolution { resolution }),
        w.categories => (pick(), prop::collection::vec(category(), 0..=4)).prop_map(|(organization, categories)| Action::SetCategories { organization, categories }),
        w.package => (category(), any::<u8>(), cash()).prop_map(|(category, name, face)| Action::DefinePackage { category, name, face }),
        w.issue_voucher => (
            pick(),
            pick(),
            prop_oneof![3 => Just(Ok(0u8)), 5 => (0..=100u8).prop_map(Ok), 1 => (101..=200u8).prop_map(Ok), 1 => any::<u64>().prop_map(Err)],
            expiry(),
        )
            .prop_map(|(package, beneficiary, co_payment, expiry)| Action::IssueVoucher { package, beneficiary, co_payment, expiry }),
        w.redeem_voucher => (plausible_pick(plausible), pick()).prop_map(|(voucher, organization)| Action::RedeemVoucher { voucher, organization }),
        w.service_value => (pick(), pick(), cash()).prop_map(|(instrument, organization, amount)| Action::RedeemServiceValue { instrument, organization, amount }),
        w.time_credits => (pick(), minutes()).prop_map(|(volunteer, minutes)| Action::RecordTime { volunteer, minutes }),
        w.time_credits => (pick(), minutes()).prop_map(|(to, minutes)| Action::TransferTime { to, minutes }),
        w.time_credits => (pick(), minutes()).prop_map(|(organization, minutes)| Action::SpendTime { organization, minutes }),
        w.time_credits => minutes().prop_map(|minutes| Action::DonateTime { minutes }),
        w.time_credits => (pick(), minutes()).prop_map(|(dependent, minutes)| Action::GrantTime { dependent, minutes }),
        w.pool => cash().prop_map(|amount| Action::ContributeToPool { amount }),
        w.pool => cash().prop_map(|amount| Action::RepayPoolLoan { amount }),
        w.netting => Just(Action::CloseNetting),
        w.surplus => (year(), cash()).prop_map(|(year, surplus)| Action::DeclareSurplus { year, surplus }),
        w.tick => Just(Action::Tick),
    ]
}

fn id(mix: Mix) -> impl Strategy<Value = Id> {
    let reuse = if mix == Mix::Lifecycle { 3 } else { 1 };
    prop_oneof![
        16 => Just(Id::Fresh),
        2 => any::<u16>().prop_map(Id::Retry),
        reuse => any::<u16>().prop_map(Id::Reuse),
        1 => any::<u16>().prop_map(Id::Borrow),
    ]
}

fn step(mix: Mix) -> impl Strategy<Value = Step> {
    (time(mix), who(mix.plausible()), action(mix), id(mix)).prop_map(|(time, who, action, id)| {
        Step {
            time,
            who,
            action,
            id,
        }
    })
}

fn sequence(mix: Mix) -> impl Strategy<Value = Sequence> {
    // The social economy's chains are long: a redemption, a debtor short of cash, a netting
    // cycle and its loan, a deposit and a repayment.
    let steps = match mix {
        Mix::Trading => 1..=120usize,
        Mix::Social => 40..=240usize,
        _ => 1..=90usize,
    };
    (
        prop_oneof![4 => Just(true), 1 => Just(false)],
        prop::collection::vec(step(mix), steps),
        0..150usize,
    )
        .prop_map(|(prelude, steps, swap_at)| Sequence {
            prelude,
            steps,
            swap_at,
        })
}

// ---- The client and its checks ----

/// One command as applied: what the replay must reproduce.
#[derive(Clone, Debug)]
struct Applied {
    command: Command,
    timestamp: Timestamp,
    outcome: Outcome,
    events: Vec<Event>,
}

/// The first application of a (participant, command id), as this file remembers it.
#[derive(Clone, Debug)]
struct First {
    kind: CommandKind,
    result: Result<Ack, RejectReason>,
    sequence: u64,
}

/// What a run covered, for `the_generator_reaches_every_command_and_outcome`.
#[derive(Default, Debug)]
struct Coverage {
    accepted: BTreeMap<&'static str, u64>,
    rejected: BTreeMap<&'static str, u64>,
    reasons: BTreeMap<String, u64>,
    events: BTreeMap<&'static str, u64>,
    replays: u64,
    commands: u64,
}

struct Client {
    config: MarketConfig,
    engine: Engine,
    /// The latest timestamp handed to the engine.
    time: Timestamp,
    script: Vec<Applied>,
    next_command_id: u128,
    first: HashMap<(ParticipantId, CommandId), First>,
    /// Each participant's ids in the order they were remembered (fresh applications).
    remembered_order: HashMap<ParticipantId, Vec<CommandId>>,
    /// Every order id ever accepted.
    orders: Vec<OrderId>,
    coverage: Coverage,
}

fn category_text(category: Category) -> String {
    match category {
        Category::Pool(n) => {
            ["care", "food", "housing", "transport"][usize::from(n) % 4].to_string()
        }
        Category::Invalid(n) => match n % 4 {
            0 => String::new(),
            1 => "Care".to_string(),
            2 => "c".repeat(33),
            _ => "home care".to_string(),
        },
    }
}

fn pick_from<T: Copy>(items: &[T], index: u16) -> Option<T> {
    (!items.is_empty()).then(|| items[usize::from(index) % items.len()])
}

fn offset(base: u64, by: i64) -> u64 {
    base.saturating_add_signed(by)
}

fn share(of: u64, percent: u8) -> u64 {
    (u128::from(of) * u128::from(percent) / 100) as u64
}

/// The roles that may send a command (the engine's role check, as `command.rs` documents it).
fn allowed_roles(kind: &CommandKind) -> &'static [Role] {
    match kind {
        CommandKind::PlaceOrder { .. }
        | CommandKind::CancelOrder { .. }
        | CommandKind::ReduceOrder { .. }
        | CommandKind::Subscribe { .. }
        | CommandKind::RequestWithdrawal { .. }
        | CommandKind::CancelWithdrawal { .. }
        | CommandKind::CastVote { .. }
        | CommandKind::RedeemVoucher { .. }
        | CommandKind::RedeemServiceValue { .. }
        | CommandKind::SpendTimeCredits { .. } => &[Role::Contributor],
        CommandKind::TransferTimeCredits { .. } | CommandKind::DonateTimeCredits { .. } => {
            &[Role::Contributor, Role::Organization]
        }
        CommandKind::GrantTimeCredits { .. } => &[Role::Operator, Role::Organization],
        CommandKind::ContributeToPool { .. } | CommandKind::RepayPoolLoan { .. } => {
            &[Role::Organization, Role::Contributor, Role::Funder]
        }
        CommandKind::DefineServicePackage { .. } | CommandKind::IssueVoucher { .. } => {
            &[Role::Funder]
        }
        CommandKind::SetAccreditedCategories { .. } => &[Role::Regulator, Role::Operator],
        CommandKind::CompleteWithdrawal { .. } => &[Role::Contributor, Role::Organization],
        CommandKind::SetAccreditation { .. } => &[Role::Regulator, Role::Operator],
        CommandKind::OpenOffering { .. }
        | CommandKind::CloseOffering { .. }
        | CommandKind::PayDistribution { .. }
        | CommandKind::RepayAtMaturity { .. }
        | CommandKind::SetWithdrawalsSuspended { .. }
        | CommandKind::ProposeResolution { .. }
        | CommandKind::CloseResolution { .. }
        | CommandKind::RecordVolunteerTime { .. }
        | CommandKind::DeclareSurplus { .. } => &[Role::Organization],
        CommandKind::RegisterParticipant { .. }
        | CommandKind::Deposit { .. }
        | CommandKind::Withdraw { .. }
        | CommandKind::ListInstrument { .. }
        | CommandKind::SetTradingStatus { .. }
        | CommandKind::IssueCredential { .. }
        | CommandKind::RevokeCredential { .. }
        | CommandKind::SetParticipantStatus { .. }
        | CommandKind::CloseNettingCycle
        | CommandKind::Tick => &[Role::Operator],
    }
}

fn kind_name(kind: &CommandKind) -> &'static str {
    match kind {
        CommandKind::RegisterParticipant { .. } => "RegisterParticipant",
        CommandKind::SetAccreditation { .. } => "SetAccreditation",
        CommandKind::Deposit { .. } => "Deposit",
        CommandKind::Withdraw { .. } => "Withdraw",
        CommandKind::ListInstrument { .. } => "ListInstrument",
        CommandKind::SetTradingStatus { .. } => "SetTradingStatus",
        CommandKind::OpenOffering { .. } => "OpenOffering",
        CommandKind::Subscribe { .. } => "Subscribe",
        CommandKind::CloseOffering { .. } => "CloseOffering",
        CommandKind::PlaceOrder { .. } => "PlaceOrder",
        CommandKind::CancelOrder { .. } => "CancelOrder",
        CommandKind::ReduceOrder { .. } => "ReduceOrder",
        CommandKind::PayDistribution { .. } => "PayDistribution",
        CommandKind::RepayAtMaturity { .. } => "RepayAtMaturity",
        CommandKind::IssueCredential { .. } => "IssueCredential",
        CommandKind::RevokeCredential { .. } => "RevokeCredential",
        CommandKind::SetParticipantStatus { .. } => "SetParticipantStatus",
        CommandKind::RequestWithdrawal { .. } => "RequestWithdrawal",
        CommandKind::CancelWithdrawal { .. } => "CancelWithdrawal",
        CommandKind::CompleteWithdrawal { .. } => "CompleteWithdrawal",
        CommandKind::SetWithdrawalsSuspended { .. } => "SetWithdrawalsSuspended",
        CommandKind::ProposeResolution { .. } => "ProposeResolution",
        CommandKind::CastVote { .. } => "CastVote",
        CommandKind::CloseResolution { .. } => "CloseResolution",
        CommandKind::SetAccreditedCategories { .. } => "SetAccreditedCategories",
        CommandKind::DefineServicePackage { .. } => "DefineServicePackage",
        CommandKind::IssueVoucher { .. } => "IssueVoucher",
        CommandKind::RedeemVoucher { .. } => "RedeemVoucher",
        CommandKind::RedeemServiceValue { .. } => "RedeemServiceValue",
        CommandKind::RecordVolunteerTime { .. } => "RecordVolunteerTime",
        CommandKind::TransferTimeCredits { .. } => "TransferTimeCredits",
        CommandKind::SpendTimeCredits { .. } => "SpendTimeCredits",
        CommandKind::DonateTimeCredits { .. } => "DonateTimeCredits",
        CommandKind::GrantTimeCredits { .. } => "GrantTimeCredits",
        CommandKind::ContributeToPool { .. } => "ContributeToPool",
        CommandKind::RepayPoolLoan { .. } => "RepayPoolLoan",
        CommandKind::CloseNettingCycle => "CloseNettingCycle",
        CommandKind::DeclareSurplus { .. } => "DeclareSurplus",
        CommandKind::Tick => "Tick",
    }
}

const EVERY_KIND: [&str; 39] = [
    "RegisterParticipant",
    "SetAccreditation",
    "Deposit",
    "Withdraw",
    "ListInstrument",
    "SetTradingStatus",
    "OpenOffering",
    "Subscribe",
    "CloseOffering",
    "PlaceOrder",
    "CancelOrder",
    "ReduceOrder",
    "PayDistribution",
    "RepayAtMaturity",
    "IssueCredential",
    "RevokeCredential",
    "SetParticipantStatus",
    "RequestWithdrawal",
    "CancelWithdrawal",
    "CompleteWithdrawal",
    "SetWithdrawalsSuspended",
    "ProposeResolution",
    "CastVote",
    "CloseResolution",
    "SetAccreditedCategories",
    "DefineServicePackage",
    "IssueVoucher",
    "RedeemVoucher",
    "RedeemServiceValue",
    "RecordVolunteerTime",
    "TransferTimeCredits",
    "SpendTimeCredits",
    "DonateTimeCredits",
    "GrantTimeCredits",
    "ContributeToPool",
    "RepayPoolLoan",
    "CloseNettingCycle",
    "DeclareSurplus",
    "Tick",
];

fn event_name(event: &Event) -> &'static str {
    match event {
        Event::ParticipantRegistered { .. } => "ParticipantRegistered",
        Event::AccreditationChanged { .. } => "AccreditationChanged",
        Event::CashDeposited { .. } => "CashDeposited",
        Event::CashWithdrawn { .. } => "CashWithdrawn",
        Event::InstrumentListed { .. } => "InstrumentListed",
        Event::TradingStatusChanged { .. } => "TradingStatusChanged",
        Event::OfferingOpened { .. } => "OfferingOpened",
        Event::Subscribed { .. } => "Subscribed",
        Event::UnitsIssued { .. } => "UnitsIssued",
        Event::SubscriptionReleased { .. } => "SubscriptionReleased",
        Event::TaxCreditRecorded { .. } => "TaxCreditRecorded",
        Event::OfferingClosed { .. } => "OfferingClosed",
        Event::OrderAccepted { .. } => "OrderAccepted",
        Event::Trade { .. } => "Trade",
        Event::OrderRested { .. } => "OrderRested",
        Event::OrderReduced { .. } => "OrderReduced",
        Event::OrderCancelled {
            reason: CancelReason::Requested,
            ..
        } => "OrderCancelled(Requested)",
        Event::OrderCancelled {
            reason: CancelReason::ImmediateOrCancelRemainder,
            ..
        } => "OrderCancelled(ImmediateOrCancelRemainder)",
        Event::OrderCancelled {
            reason: CancelReason::SelfTrade,
            ..
        } => "OrderCancelled(SelfTrade)",
        Event::OrderCancelled {
            reason: CancelReason::Matured,
            ..
        } => "OrderCancelled(Matured)",
        Event::OrderCancelled {
            reason: CancelReason::OwnerSuspended,
            ..
        } => "OrderCancelled(OwnerSuspended)",
        Event::OrderCancelled {
            reason: CancelReason::FillOrKillUnfillable,
            ..
        } => "OrderCancelled(FillOrKillUnfillable)",
        Event::DistributionPaid { .. } => "DistributionPaid",
        Event::DistributionReceived { .. } => "DistributionReceived",
        Event::ParRepaid { .. } => "ParRepaid",
        Event::InstrumentMatured { .. } => "InstrumentMatured",
        Event::CredentialIssued { .. } => "CredentialIssued",
        Event::CredentialRevoked { .. } => "CredentialRevoked",
        Event::ParticipantStatusChanged { .. } => "ParticipantStatusChanged",
        Event::SubscriptionScaledBack { .. } => "SubscriptionScaledBack",
        Event::FirstIssue { .. } => "FirstIssue",
        Event::WithdrawalRequested { .. } => "WithdrawalRequested",
        Event::WithdrawalCancelled { .. } => "WithdrawalCancelled",
        Event::WithdrawalPaid { .. } => "WithdrawalPaid",
        Event::WithdrawalsSuspended { .. } => "WithdrawalsSuspended",
        Event::ResolutionProposed { .. } => "ResolutionProposed",
        Event::VoteCast { .. } => "VoteCast",
        Event::ResolutionClosed { .. } => "ResolutionClosed",
        Event::AccreditedCategoriesSet { .. } => "AccreditedCategoriesSet",
        Event::ServicePackageDefined { .. } => "ServicePackageDefined",
        Event::VoucherIssued { .. } => "VoucherIssued",
        Event::VoucherSplit { .. } => "VoucherSplit",
        Event::VoucherRedeemed { .. } => "VoucherRedeemed",
        Event::VoucherExpired { .. } => "VoucherExpired",
        Event::ObligationRecorded { .. } => "ObligationRecorded",
        Event::ServiceValueRedeemed { .. } => "ServiceValueRedeemed",
        Event::TimeCredits { .. } => "TimeCredits",
        Event::PoolContributed { .. } => "PoolContributed",
        Event::PoolLoanRepaid { .. } => "PoolLoanRepaid",
        Event::NettingPosition { .. } => "NettingPosition",
        Event::NettingCycleClosed { .. } => "NettingCycleClosed",
        Event::SurplusDeclared { .. } => "SurplusDeclared",
    }
}

/// The snapshot without what every command changes, accepted or not: the engine's time, its
/// command count and its memory of command ids.
fn without_bookkeeping(mut snapshot: Snapshot) -> Snapshot {
    snapshot.now = 0;
    snapshot.commands_applied = 0;
    snapshot.remembered = Vec::new();
    snapshot
}

impl Client {
    fn new(config: MarketConfig) -> Client {
        Client {
            engine: Engine::new(config.clone()),
            config,
            time: START_NS,
            script: Vec::new(),
            next_command_id: 1,
            first: HashMap::new(),
            remembered_order: HashMap::new(),
            orders: Vec::new(),
            coverage: Coverage::default(),
        }
    }

    /// Ids remembered for sure: each participant's last this many.
    fn window_kept(&self) -> usize {
        (self.config.command_ids_per_participant_max as usize / 2).max(1)
    }

    fn fresh_id(&mut self) -> CommandId {
        let id = CommandId(self.next_command_id);
        self.next_command_id += 1;
        id
    }

    // ---- Reading the market ----

    fn participants_with(&self, roles: &[Role]) -> Vec<ParticipantId> {
        self.engine
            .participants()
            .filter(|(_, p)| roles.contains(&p.role))
            .map(|(id, _)| id)
            .collect()
    }

    fn participant_count(&self) -> u32 {
        self.engine.participants().count() as u32
    }

    fn participant(&self, pick: Pick, roles: &[Role]) -> ParticipantId {
        match pick {
            Pick::Real(index) => {
                let fitting = self.participants_with(roles);
                let fitting = if fitting.len() > 8 && index % 2 == 0 {
                    fitting[..8].to_vec()
                } else {
                    fitting
                };
                let chosen = if index % 4 != 3 {
                    pick_from(&fitting, index / 4)
                } else {
                    None
                };
                chosen.unwrap_or_else(|| ParticipantId(u32::from(index) % self.participant_count()))
            }
            Pick::Raw(raw) => ParticipantId(raw as u32),
        }
    }

    fn instrument(&self, pick: Pick) -> InstrumentId {
        match pick {
            Pick::Real(index) => {
                let trading: Vec<InstrumentId> = self
                    .engine
                    .instruments()
                    .filter(|i| i.status.trading_open)
                    .map(|i| i.id)
                    .collect();
                let all: Vec<InstrumentId> = self.engine.instruments().map(|i| i.id).collect();
                let chosen = if index % 4 != 3 {
                    pick_from(&trading, index / 4)
                } else {
                    None
                };
                chosen
                    .or_else(|| pick_from(&all, index))
                    .unwrap_or(InstrumentId(u32::from(index) % 4))
            }
            Pick::Raw(raw) => InstrumentId(raw as u32),
        }
    }

    fn offering(&self, pick: Pick) -> OfferingId {
        match pick {
            Pick::Real(index) => {
                let open: Vec<OfferingId> = self
                    .engine
                    .offerings()
                    .filter(|o| o.open)
                    .map(|o| o.id)
                    .collect();
                let all: Vec<OfferingId> = self.engine.offerings().map(|o| o.id).collect();
                let chosen = if index % 4 != 3 {
                    pick_from(&open, index / 4)
                } else {
                    None
                };
                chosen
                    .or_else(|| pick_from(&all, index))
                    .unwrap_or(OfferingId(u32::from(index) % 4))
            }
            Pick::Raw(raw) => OfferingId(raw as u32),
        }
    }

    fn order(&self, pick: Pick) -> OrderId {
        match pick {
            Pick::Real(index) => {
                let resting: Vec<OrderId> = self
                    .orders
                    .iter()
                    .copied()
                    .filter(|id| self.engine.order(*id).is_some())
                    .collect();
                let chosen = if index % 5 != 4 {
                    pick_from(&resting, index / 5)
                } else {
                    None
                };
                chosen
                    .or_else(|| pick_from(&self.orders, index))
                    .unwrap_or(OrderId(u64::from(index) % 8))
            }
            Pick::Raw(raw) => OrderId(raw),
        }
    }

    fn credential(&self, pick: Pick) -> CredentialId {
        match pick {
            Pick::Real(index) => {
                let live: Vec<CredentialId> = self
                    .engine
                    .credentials()
                    .filter(|(_, c)| c.is_live())
                    .map(|(id, _)| id)
                    .collect();
                let all: Vec<CredentialId> = self.engine.credentials().map(|(id, _)| id).collect();
                let chosen = if index % 4 != 3 {
                    pick_from(&live, index / 4)
                } else {
                    None
                };
                chosen
                    .or_else(|| pick_from(&all, index))
                    .unwrap_or(CredentialId(u32::from(index) % 4))
            }
            Pick::Raw(raw) => CredentialId(raw as u32),
        }
    }

    /// Whether an organization may do what accreditation gates, as the engine asks it: registered,
    /// an organization, accredited, and not suspended, in that order.
    fn accredited(&self, organization: ParticipantId) -> Result<(), RejectReason> {
        let participant = self
            .engine
            .participant(organization)
            .ok_or(RejectReason::UnknownAccount)?;
        if participant.role != Role::Organization {
            Err(RejectReason::NotAnOrganization)
        } else if !participant.accredited {
            Err(RejectReason::NotAccredited)
        } else if participant.suspended {
            Err(RejectReason::ParticipantSuspended)
        } else {
            Ok(())
        }
    }

    /// For a command that accreditation gates, once the checks the engine makes before it pass
    /// (identity and role aside): what the gate answers. `None` when the command is not gated, or
    /// an earlier check refuses it; then it can never be refused as `NotAccredited`.
    fn accreditation_gate(&self, command: &Command) -> Option<Result<(), RejectReason>> {
        let sender = command.participant;
        match &command.kind {
            // The issuer is checked first: known, an organization, then accredited.
            CommandKind::ListInstrument { spec } => Some(self.accredited(spec.issuer)),
            CommandKind::OpenOffering { instrument, .. } => {
                let listed = self.engine.instrument(*instrument)?;
                (listed.spec.issuer == sender).then(|| self.accredited(sender))
            }
            CommandKind::Subscribe { offering, lots } => {
                let open = self.engine.offering(*offering)?;
                let reaches = *lots > 0 && *lots <= self.config.order_lots_max && open.open;
                reaches.then(|| self.accredited(open.issuer))
            }
            CommandKind::RedeemVoucher {
                voucher,
                organization,
            } => {
                let record = self.engine.voucher_record(*voucher)?;
                let reaches = record.beneficiary == sender
                    && record.status == mutua_engine::VoucherStatus::Open;
                reaches.then(|| self.accredited(*organization))
            }
            CommandKind::RedeemServiceValue {
                instrument,
                organization,
                ..
            } => {
                let listed = self.engine.instrument(*instrument)?;
                (listed.spec.service_value_per_lot_minor > 0)
                    .then(|| self.accredited(*organization))
            }
            CommandKind::RecordVolunteerTime { .. } => Some(self.accredited(sender)),
            CommandKind::SpendTimeCredits { organization, .. } => {
                Some(self.accredited(*organization))
            }
            CommandKind::GrantTimeCredits { .. } => {
                let manager = self.engine.participant(sender)?;
                (manager.role == Role::Organization).then(|| self.accredited(sender))
            }
            _ => None,
        }
    }

    fn free_cash(&self, account: ParticipantId) -> u64 {
        self.engine
            .participant(account)
            .map_or(0, |p| p.cash.free_minor())
    }

    fn lots(&self, lots: Lots, natural: u64) -> u64 {
        match lots {
            Lots::Zero => 0,
            Lots::Small(lots) => lots,
            Lots::Share(percent) => share(natural, percent).max(1),
            Lots::Limit(by) => offset(self.config.order_lots_max, i64::from(by)),
            Lots::Max => u64::MAX,
            Lots::Any(lots) => lots,
        }
    }

    fn cash(&self, cash: Cash, natural: u64) -> u64 {
        match cash {
            Cash::Zero => 0,
            Cash::Small(amount) | Cash::Large(amount) | Cash::Any(amount) => amount,
            Cash::Share(percent) => share(natural, percent),
            Cash::Max => u64::MAX,
        }
    }

    /// The sender of a command: `who`, resolved against the participants of `roles`, with
    /// `natural` (the owner or issuer of what the command names) for `Who::Fitting`.
    fn sender(&self, who: Who, roles: &[Role], natural: Option<ParticipantId>) -> ParticipantId {
        match who {
            Who::Fitting(index) => {
                let natural = if index % 6 == 5 { None } else { natural };
                natural
                    .or_else(|| pick_from(&self.participants_with(roles), index))
                    .unwrap_or(GENESIS_OPERATOR)
            }
            Who::Anyone(index) => ParticipantId(u32::from(index) % self.participant_count()),
            Who::Unregistered(past) => ParticipantId(self.participant_count() + u32::from(past)),
            Who::Raw(raw) => ParticipantId(raw),
        }
    }

    /// Turns the client's choice into a concrete command, at `timestamp`. `forced` is the
    /// sender when the command id is another command's.
    fn resolve(
        &self,
        action: &Action,
        who: Who,
        forced: Option<ParticipantId>,
        timestamp: Timestamp,
    ) -> (ParticipantId, CommandKind) {
        let now = self.engine.now().max(timestamp);
        let sender = |roles: &[Role], natural: Option<ParticipantId>| {
            forced.unwrap_or_else(|| self.sender(who, roles, natural))
        };
        let operators = &[Role::Operator];
        let contributors = &[Role::Contributor];
        let organizations = &[Role::Organization];
        let funders = &[Role::Funder];
        // Cash moves in and out of every account that uses it.
        let cash_holders = &[Role::Contributor, Role::Organization, Role::Funder];
        let time_holders = &[Role::Contributor, Role::Organization];
        let who_index = match who {
            Who::Fitting(index) => index,
            _ => 0,
        };
        match action {
            Action::Register { role, name } => {
                let limit = self.config.name_bytes_max as usize;
                let name = match name {
                    Name::Numbered(n) => format!("participant {n}"),
                    Name::Empty => String::new(),
                    Name::Blank => " \t ".to_string(),
                    Name::AtLimit(by) => "n".repeat(offset(limit as u64, i64::from(*by)) as usize),
                    Name::Wide(by) => "é".repeat(offset(limit as u64 / 2, i64::from(*by)) as usize),
                    Name::Any(text) => text.clone(),
                };
                (
                    sender(operators, None),
                    CommandKind::RegisterParticipant { role: *role, name },
                )
            }
            Action::SetAccreditation {
                organization,
                accredited,
            } => {
                let organization = self.participant(*organization, organizations);
                (
                    sender(&[Role::Regulator, Role::Operator], None),
                    CommandKind::SetAccreditation {
                        organization,
                        accredited: *accredited,
                    },
                )
            }
            Action::Deposit { account, amount } => {
                // Now and then a debtor of the pool, who can then repay.
                let debtors: Vec<ParticipantId> =
                    self.engine.pool_loans().keys().copied().collect();
                let account = match account {
                    Pick::Real(index) if index % 2 == 0 && !debtors.is_empty() => {
                        debtors[usize::from(*index) / 2 % debtors.len()]
                    }
                    _ => self.participant(*account, cash_holders),
                };
                let (deposited, withdrawn) = self.engine.cash_totals_minor();
                let headroom = u128::from(u64::MAX).saturating_sub(deposited - withdrawn) as u64;
                (
                    sender(operators, None),
                    CommandKind::Deposit {
                        account,
                        amount_minor: self.cash(*amount, headroom),
                    },
                )
            }
            Action::Withdraw { account, amount } => {
                // Now and then all the free cash of a net debtor of open obligations (an issuer
                // whose holders redeemed service value), so that it comes to the netting cycle
                // short and borrows from the pool.
                let debtors: Vec<ParticipantId> = self
                    .engine
                    .participants()
                    .map(|(id, _)| id)
                    .filter(|id| self.engine.position(*id).net_minor() < 0)
                    .collect();
                let issuer = match account {
                    Pick::Real(index) if index % 2 == 0 && !debtors.is_empty() => {
                        Some(debtors[usize::from(*index) / 2 % debtors.len()])
                    }
                    _ => None,
                };
                let (account, amount_minor) = match issuer {
                    Some(issuer) => (issuer, self.free_cash(issuer)),
                    None => {
                        let account = self.participant(*account, cash_holders);
                        (account, self.cash(*amount, self.free_cash(account)))
                    }
                };
                (
                    sender(operators, None),
                    CommandKind::Withdraw {
                        account,
                        amount_minor,
                    },
                )
            }
            Action::List(listing) => {
                let symbol = match &listing.symbol {
                    Symbol::Pool(n) => ["S0", "S1", "B0", "C0", "COOP-A", "BOND.2", "N-1", "X"]
                        [usize::from(*n) % 8]
                        .to_string(),
                    Symbol::Length(length) => "Q".repeat(usize::from(*length)),
                    Symbol::Any(text) => text.clone(),
                };
                let maturity_time = match listing.maturity {
                    Maturity::None => None,
                    Maturity::After(after) => Some(now.saturating_add(after)),
                    Maturity::Raw(time) => Some(time),
                };
                let price_floor_ticks = match listing.price_floor {
                    Ok(percent) => share(listing.par_ticks, percent),
                    Err(ticks) => ticks,
                };
                let spec = InstrumentSpec {
                    symbol,
                    kind: listing.kind,
                    issuer: self.participant(listing.issuer, organizations),
                    tick_size_minor: listing.tick_size_minor,
                    lot_size_units: listing.lot_size_units,
                    par_ticks: listing.par_ticks,
                    return_cap_bp: listing.return_cap_bp,
                    price_floor_ticks,
                    maturity_time,
                    holding_cap_bp: listing.holding_cap_bp,
                    cooperative_investment_plan: listing.cooperative_investment_plan,
                    lock_in_years: listing.lock_in_years,
                    tax_credit_bp: listing.tax_credit_bp,
                    withdrawable: listing.withdrawable,
                    service_value_per_lot_minor: listing.service_value_per_lot_minor,
                    withdrawal_notice_days: listing.withdrawal_notice_days,
                };
                (
                    sender(operators, None),
                    CommandKind::ListInstrument {
                        spec: Box::new(spec),
                    },
                )
            }
            Action::SetTradingStatus { instrument, open } => (
                sender(operators, None),
                CommandKind::SetTradingStatus {
                    instrument: self.instrument(*instrument),
                    open: *open,
                },
            ),
            Action::OpenOffering {
                instrument,
                lots,
                minimum,
            } => {
                let instrument = self.instrument(*instrument);
                let issuer = self.engine.instrument(instrument).map(|i| i.spec.issuer);
                let lots = self.lots(*lots, 1_000);
                let minimum_lots = self.lots(*minimum, lots);
                (
                    sender(organizations, issuer),
                    CommandKind::OpenOffering {
                        instrument,
                        lots,
                        minimum_lots,
                    },
                )
            }
            Action::Subscribe { offering, lots } => {
                let offering = self.offering(*offering);
                let contributor = sender(contributors, None);
                // As much as the engine would accept: what is left, within the cap of a full
                // take-up. Few such subscriptions leave an offering undersubscribed, and the
                // close must then scale them back.
                let natural = self.engine.offering(offering).map_or(100, |o| {
                    let left = o.lots - o.subscribed_lots;
                    let listed = self
                        .engine
                        .instrument(o.instrument)
                        .expect("an offering's instrument is listed");
                    let exposure = listed
                        .holding(contributor)
                        .map_or(0, |h| h.cap_exposure_lots());
                    left.min(
                        listed
                            .holding_cap_lots(listed.lots_outstanding() + o.lots)
                            .saturating_sub(exposure),
                    )
                    .max(1)
                });
                (
                    contributor,
                    CommandKind::Subscribe {
                        offering,
                        lots: self.lots(*lots, natural),
                    },
                )
            }
            Action::CloseOffering { offering } => {
                let offering = self.offering(*offering);
                let issuer = self.engine.offering(offering).map(|o| o.issuer);
                (
                    sender(organizations, issuer),
                    CommandKind::CloseOffering { offering },
                )
            }
            Action::Place {
                instrument,
                side,
                price,
                lots,
                time_in_force,
                self_trade,
            } => {
                let id = self.instrument(*instrument);
                let listed = self.engine.instrument(id);
                let (owner, natural_lots) = match (listed, who) {
                    (Some(listed), Who::Fitting(index)) if *side == Side::Sell => {
                        let holders: Vec<ParticipantId> = listed
                            .holders_sorted()
                            .into_iter()
                            .filter(|holder| {
                                listed
                                    .holding(*holder)
                                    .is_some_and(|h| h.free_lots(now) > 0)
                            })
                            .collect();
                        match pick_from(&holders, index) {
                            Some(holder) => (
                                Some(holder),
                                listed.holding(holder).map_or(0, |h| h.free_lots(now)),
                            ),
                            None => (None, 10),
                        }
                    }
                    _ => (None, 0),
                };
                let owner = sender(contributors, owner);
                let natural_lots = match (listed, side) {
                    (Some(listed), Side::Buy) => {
                        let exposure = listed.holding(owner).map_or(0, |h| h.cap_exposure_lots());
                        listed
                            .holding_cap_lots(listed.lots_outstanding())
                            .saturating_sub(exposure)
                    }
                    (Some(listed), Side::Sell) if natural_lots == 0 => {
                        listed.holding(owner).map_or(0, |h| h.free_lots(now))
                    }
                    _ => natural_lots.max(10),
                };
                let (par, floor) =
                    listed.map_or((100, 0), |l| (l.spec.par_ticks, l.terms.price_floor_ticks));
                let price_ticks = match price {
                    Price::Par(by) => offset(par, i64::from(*by)),
                    Price::Ceiling(by) => {
                        offset(listed.map_or(par, |l| l.ceiling_ticks(now)), i64::from(*by))
                    }
                    Price::Floor(by) => offset(floor, i64::from(*by)),
                    Price::Best(by) => {
                        let best = self
                            .engine
                            .depth(id, side.opposite(), 1)
                            .and_then(|levels| levels.first().map(|level| level.0));
                        offset(best.unwrap_or(par), i64::from(*by))
                    }
                    Price::Zero => 0,
                    Price::Max => u64::MAX,
                    Price::Any(ticks) => *ticks,
                };
                let kind = CommandKind::PlaceOrder {
                    instrument: id,
                    side: *side,
                    price_ticks,
                    lots: self.lots(*lots, natural_lots),
                    time_in_force: *time_in_force,
                    self_trade: *self_trade,
                };
                (owner, kind)
            }
            Action::Cancel { order } => {
                let order = self.order(*order);
                let owner = self.engine.order(order).map(|o| o.owner);
                (
                    sender(contributors, owner),
                    CommandKind::CancelOrder { order },
                )
            }
            Action::Reduce { order, by } => {
                let order = self.order(*order);
                let resting = self.engine.order(order);
                let reduce_by_lots = self.lots(*by, resting.map_or(10, |o| o.remaining_lots));
                (
                    sender(contributors, resting.map(|o| o.owner)),
                    CommandKind::ReduceOrder {
                        order,
                        reduce_by_lots,
                    },
                )
            }
            Action::Distribute {
                instrument,
                per_lot,
            } => {
                let instrument = self.instrument(*instrument);
                let listed = self.engine.instrument(instrument);
                let cap = listed.map_or(0, |l| l.distribution_cap_per_lot_minor(now));
                let per_lot_minor = self.cash(*per_lot, cap);
                (
                    sender(organizations, listed.map(|l| l.spec.issuer)),
                    CommandKind::PayDistribution {
                        instrument,
                        per_lot_minor,
                    },
                )
            }
            Action::Repay { instrument } => {
                let instrument = self.instrument(*instrument);
                let issuer = self.engine.instrument(instrument).map(|l| l.spec.issuer);
                (
                    sender(organizations, issuer),
                    CommandKind::RepayAtMaturity { instrument },
                )
            }
            Action::IssueCredential {
                participant,
                token,
                replace_existing,
            } => {
                let participant = self.participant(
                    *participant,
                    &[
                        Role::Contributor,
                        Role::Organization,
                        Role::Regulator,
                        Role::Funder,
                        Role::Operator,
                    ],
                );
                let kind = CommandKind::IssueCredential {
                    participant,
                    token_hash: [*token; 32],
                    replace_existing: *replace_existing,
                };
                (sender(operators, None), kind)
            }
            Action::RevokeCredential { credential } => (
                sender(operators, None),
                CommandKind::RevokeCredential {
                    credential: self.credential(*credential),
                },
            ),
            Action::SetParticipantStatus {
                participant,
                suspended,
            } => {
                let participant = self.participant(
                    *participant,
                    &[Role::Contributor, Role::Organization, Role::Operator],
                );
                (
                    sender(operators, None),
                    CommandKind::SetParticipantStatus {
                        participant,
                        suspended: *suspended,
                    },
                )
            }
            Action::RequestWithdrawal { instrument, lots } => {
                let instrument = self.withdrawable(*instrument);
                let listed = self.engine.instrument(instrument);
                let holder = listed.and_then(|share| {
                    share
                        .holders_sorted()
                        .into_iter()
                        .find(|holder| share.holding(*holder).is_some_and(|h| h.free_lots(now) > 0))
                });
                let holder = sender(contributors, holder);
                let free = listed
                    .and_then(|share| share.holding(holder))
                    .map_or(10, |h| h.free_lots(now));
                (
                    holder,
                    CommandKind::RequestWithdrawal {
                        instrument,
                        lots: self.lots(*lots, free),
                    },
                )
            }
            Action::CancelWithdrawal { withdrawal } => {
                let withdrawal = self.withdrawal(*withdrawal);
                let holder = self.engine.withdrawal(withdrawal).map(|w| w.holder);
                (
                    sender(contributors, holder),
                    CommandKind::CancelWithdrawal { withdrawal },
                )
            }
            Action::CompleteWithdrawal { withdrawal } => {
                let withdrawal = self.withdrawal(*withdrawal);
                let pending = self.engine.withdrawal(withdrawal);
                // The holder or the issuer, as the id's parity says.
                let natural = pending.map(|w| {
                    if withdrawal.0 % 2 == 0 {
                        w.holder
                    } else {
                        self.engine
                            .instrument(w.instrument)
                            .expect("listed")
                            .spec
                            .issuer
                    }
                });
                (
                    sender(&[Role::Contributor, Role::Organization], natural),
                    CommandKind::CompleteWithdrawal { withdrawal },
                )
            }
            Action::SuspendWithdrawals {
                instrument,
                suspended,
            } => {
                let instrument = self.withdrawable(*instrument);
                let issuer = self.engine.instrument(instrument).map(|l| l.spec.issuer);
                (
                    sender(organizations, issuer),
                    CommandKind::SetWithdrawalsSuspended {
                        instrument,
                        suspended: *suspended,
                    },
                )
            }
            Action::Propose { title, closes_in } => {
                let title = match title % 8 {
                    0 => String::new(),
                    1 => "x".repeat(self.config.resolution_title_bytes_max as usize + 1),
                    n => format!("resolution {n}"),
                };
                // An issuer of a share most of the time, so that someone can vote.
                let issuer = self
                    .engine
                    .instruments()
                    .find(|i| i.spec.kind == InstrumentKind::CommunityShare)
                    .map(|i| i.spec.issuer);
                (
                    sender(organizations, issuer),
                    CommandKind::ProposeResolution {
                        title,
                        closes_at: now.saturating_add(*closes_in),
                    },
                )
            }
            Action::Vote { resolution, choice } => {
                let resolution = self.resolution(*resolution);
                // Mostly a member yet to vote; now and then one who has voted already.
                let member = self.engine.resolution(resolution).and_then(|r| {
                    let members = self.engine.members_of(r.organization);
                    let mut members = members.iter().map(|(member, _)| *member);
                    let voted = members.clone().find(|member| r.votes.contains_key(member));
                    let yet = members.find(|member| !r.votes.contains_key(member));
                    if who_index % 4 == 0 {
                        voted.or(yet)
                    } else {
                        yet.or(voted)
                    }
                });
                (
                    sender(contributors, member),
                    CommandKind::CastVote {
                        resolution,
                        choice: *choice,
                    },
                )
            }
            Action::CloseResolution { resolution } => {
                let resolution = self.resolution(*resolution);
                let organization = self.engine.resolution(resolution).map(|r| r.organization);
                (
                    sender(organizations, organization),
                    CommandKind::CloseResolution { resolution },
                )
            }
            Action::SetCategories {
                organization,
                categories,
            } => {
                let organization = self.participant(*organization, organizations);
                (
                    sender(&[Role::Regulator, Role::Operator], None),
                    CommandKind::SetAccreditedCategories {
                        organization,
                        categories: categories.iter().map(|c| category_text(*c)).collect(),
                    },
                )
            }
            Action::DefinePackage {
                category,
                name,
                face,
            } => {
                let name = match name % 16 {
                    0 => String::new(),
                    1 => " ".to_string(),
                    2 => "p".repeat(self.config.name_bytes_max as usize + 1),
                    n => format!("package {n}"),
                };
                (
                    sender(funders, None),
                    CommandKind::DefineServicePackage {
                        package: Box::new(mutua_engine::PackageTerms {
                            category: category_text(*category),
                            name,
                            face_value_minor: self.cash(*face, 100_000),
                        }),
                    },
                )
            }
            Action::IssueVoucher {
                package,
                beneficiary,
                co_payment,
                expiry,
            } => {
                let package = self.package(*package);
                let terms = self.engine.service_package(package);
                let face = terms.map_or(10_000, |p| p.face_value_minor);
                let beneficiary = self.participant(*beneficiary, contributors);
                let co_payment_minor = match co_payment {
                    Ok(percent) => share(face, *percent),
                    Err(raw) => *raw,
                };
                let validity_ns = u64::from(self.config.voucher_validity_days_max) * DAY_NS;
                let expires_at = match expiry {
                    Expiry::After(after) => now.saturating_add(*after),
                    Expiry::AtLimit(by) => now.saturating_add(offset(validity_ns, i64::from(*by))),
                    Expiry::Raw(time) => *time,
                };
                (
                    sender(funders, terms.map(|p| p.funder)),
                    CommandKind::IssueVoucher {
                        package,
                        beneficiary,
                        co_payment_minor,
                        expires_at,
                    },
                )
            }
            Action::RedeemVoucher {
                voucher,
                organization,
            } => {
                let voucher = self.voucher(*voucher);
                let beneficiary = self.engine.voucher_record(voucher).map(|r| r.beneficiary);
                // Mostly an organization that may take this voucher: accredited, active and
                // accredited for its category.
                let category = self
                    .engine
                    .open_voucher(voucher)
                    .and_then(|open| self.engine.service_package(open.package))
                    .map(|package| package.category.clone());
                let able = category
                    .map(|category| self.able_organizations(Some(&category)))
                    .unwrap_or_default();
                let organization = self.organization_among(&able, *organization, organizations);
                (
                    sender(contributors, beneficiary),
                    CommandKind::RedeemVoucher {
                        voucher,
                        organization,
                    },
                )
            }
            Action::RedeemServiceValue {
                instrument,
                organization,
                amount,
            } => {
                let instrument = self.with_service_value(*instrument);
                let listed = self.engine.instrument(instrument);
                let holder = listed.and_then(|listed| {
                    let holders: Vec<ParticipantId> = listed
                        .holders_sorted()
                        .into_iter()
                        .filter(|holder| listed.holding(*holder).is_some_and(|h| h.lots > 0))
                        .collect();
                    pick_from(&holders, who_index)
                });
                let holder = sender(contributors, holder);
                let year = date_of(now).year as i32;
                // What is left of the holder's allowance this year.
                let left = listed.map_or(1_000, |listed| {
                    let lots = listed.holding(holder).map_or(0, |h| h.lots);
                    let allowance =
                        u128::from(lots) * u128::from(listed.spec.service_value_per_lot_minor);
                    let redeemed = self.engine.service_value_redeemed(instrument, holder, year);
                    allowance
                        .saturating_sub(u128::from(redeemed))
                        .min(u128::from(u64::MAX)) as u64
                });
                let able = self.able_organizations(None);
                let organization = self.organization_among(&able, *organization, organizations);
                (
                    holder,
                    CommandKind::RedeemServiceValue {
                        instrument,
                        organization,
                        amount_minor: self.cash(*amount, left),
                    },
                )
            }
            Action::RecordTime { volunteer, minutes } => {
                let volunteer = self.participant(*volunteer, contributors);
                (
                    sender(organizations, None),
                    CommandKind::RecordVolunteerTime {
                        volunteer,
                        minutes: self.minutes(*minutes, 8 * 60),
                    },
                )
            }
            Action::TransferTime { to, minutes } => {
                let from = sender(
                    time_holders,
                    pick_from(&self.holding_time(time_holders), who_index),
                );
                let to = self.participant(*to, time_holders);
                (
                    from,
                    CommandKind::TransferTimeCredits {
                        to,
                        minutes: self.minutes(*minutes, self.engine.time_credits_of(from)),
                    },
                )
            }
            Action::SpendTime {
                organization,
                minutes,
            } => {
                let holder = sender(
                    contributors,
                    pick_from(&self.holding_time(contributors), who_index),
                );
                let organization = self.participant(*organization, organizations);
                (
                    holder,
                    CommandKind::SpendTimeCredits {
                        organization,
                        minutes: self.minutes(*minutes, self.engine.time_credits_of(holder)),
                    },
                )
            }
            Action::DonateTime { minutes } => {
                let donor = sender(
                    time_holders,
                    pick_from(&self.holding_time(time_holders), who_index),
                );
                (
                    donor,
                    CommandKind::DonateTimeCredits {
                        minutes: self.minutes(*minutes, self.engine.time_credits_of(donor)),
                    },
                )
            }
            Action::GrantTime { dependent, minutes } => {
                let dependent = self.participant(*dependent, contributors);
                let (pooled, _) = self.engine.time_credit_totals();
                (
                    sender(&[Role::Operator, Role::Organization], None),
                    CommandKind::GrantTimeCredits {
                        dependent,
                        minutes: self.minutes(*minutes, pooled),
                    },
                )
            }
            Action::ContributeToPool { amount } => {
                let contributor = sender(cash_holders, None);
                (
                    contributor,
                    CommandKind::ContributeToPool {
                        amount_minor: self.cash(*amount, self.free_cash(contributor)),
                    },
                )
            }
            Action::RepayPoolLoan { amount } => {
                let debtors: Vec<ParticipantId> =
                    self.engine.pool_loans().keys().copied().collect();
                let debtor = sender(cash_holders, pick_from(&debtors, who_index));
                let payable = self
                    .engine
                    .pool_loan_minor(debtor)
                    .min(self.free_cash(debtor));
                (
                    debtor,
                    CommandKind::RepayPoolLoan {
                        amount_minor: self.cash(*amount, payable),
                    },
                )
            }
            Action::CloseNetting => (sender(operators, None), CommandKind::CloseNettingCycle),
            Action::DeclareSurplus { year, surplus } => {
                let organization = sender(organizations, None);
                let current = date_of(now).year as i32;
                let year = match year {
                    Year::Back(back) => current - i32::from(*back),
                    Year::Next => current + 1,
                    Year::Raw(year) => *year,
                };
                // 28 % of a surplus leaves the free cash: up to about 3.5 times it is payable.
                let payable = self.free_cash(organization).saturating_mul(3);
                (
                    organization,
                    CommandKind::DeclareSurplus {
                        year,
                        surplus_minor: self.cash(*surplus, payable),
                    },
                )
            }
            Action::Tick => (sender(operators, None), CommandKind::Tick),
        }
    }

    fn minutes(&self, minutes: Minutes, natural: u64) -> u64 {
        match minutes {
            Minutes::Zero => 0,
            Minutes::Small(minutes) | Minutes::Any(minutes) => minutes,
            Minutes::Share(percent) => share(natural, percent).max(1),
            Minutes::Limit(by) => offset(
                self.config.time_credit_minutes_per_command_max,
                i64::from(by),
            ),
        }
    }

    /// Organizations that may redeem now (accredited, active and, given a category, accredited
    /// for it), in id order.
    fn able_organizations(&self, category: Option<&str>) -> Vec<ParticipantId> {
        self.engine
            .participants()
            .filter(|(id, p)| {
                p.role == Role::Organization
                    && p.accredited
                    && !p.suspended
                    && category.is_none_or(|category| self.engine.accredited_for(*id, category))
            })
            .map(|(id, _)| id)
            .collect()
    }

    /// Three times in four one of `able`, when there is one; otherwise any fitting participant.
    fn organization_among(
        &self,
        able: &[ParticipantId],
        pick: Pick,
        organizations: &[Role],
    ) -> ParticipantId {
        match pick {
            Pick::Real(index) if index % 4 != 3 && !able.is_empty() => {
                able[usize::from(index) / 4 % able.len()]
            }
            _ => self.participant(pick, organizations),
        }
    }

    /// Participants of `roles` with time credits, in id order.
    fn holding_time(&self, roles: &[Role]) -> Vec<ParticipantId> {
        self.engine
            .participants()
            .filter(|(id, p)| roles.contains(&p.role) && self.engine.time_credits_of(*id) > 0)
            .map(|(id, _)| id)
            .collect()
    }

    fn package(&self, pick: Pick) -> PackageId {
        match pick {
            Pick::Real(index) => {
                let count = self.engine.service_packages().len() as u32;
                if count > 0 && index % 6 != 5 {
                    PackageId(u32::from(index) % count)
                } else {
                    PackageId(u32::from(index) % 4)
                }
            }
            Pick::Raw(raw) => PackageId(raw as u32),
        }
    }

    /// Open vouchers first (in id order), then any issued, then made-up ids.
    fn voucher(&self, pick: Pick) -> VoucherId {
        match pick {
            Pick::Real(index) => {
                let mut open: Vec<VoucherId> = self.engine.open_vouchers().map(|v| v.id).collect();
                open.sort_unstable();
                let issued = self.engine.vouchers_issued();
                let chosen = if index % 4 != 3 {
                    pick_from(&open, index / 4)
                } else {
                    None
                };
                chosen.unwrap_or_else(|| {
                    if issued > 0 && index % 8 != 7 {
                        VoucherId(u64::from(index) % issued)
                    } else {
                        VoucherId(issued + u64::from(index) % 3)
                    }
                })
            }
            Pick::Raw(raw) => VoucherId(raw),
        }
    }

    /// Mostly an instrument that carries service value.
    fn with_service_value(&self, pick: Pick) -> InstrumentId {
        match pick {
            Pick::Real(index) if index % 4 != 3 => {
                let valued: Vec<InstrumentId> = self
                    .engine
                    .instruments()
                    .filter(|i| i.spec.service_value_per_lot_minor > 0)
                    .map(|i| i.id)
                    .collect();
                pick_from(&valued, index / 4).unwrap_or_else(|| self.instrument(pick))
            }
            _ => self.instrument(pick),
        }
    }

    fn withdrawable(&self, pick: Pick) -> InstrumentId {
        match pick {
            Pick::Real(index) if index % 4 != 3 => {
                let withdrawable: Vec<InstrumentId> = self
                    .engine
                    .instruments()
                    .filter(|i| i.spec.withdrawable)
                    .map(|i| i.id)
                    .collect();
                pick_from(&withdrawable, index / 4).unwrap_or_else(|| self.instrument(pick))
            }
            _ => self.instrument(pick),
        }
    }

    fn withdrawal(&self, pick: Pick) -> WithdrawalId {
        match pick {
            Pick::Real(index) => {
                let pending: Vec<WithdrawalId> =
                    self.engine.withdrawals_pending().map(|w| w.id).collect();
                let chosen = if index % 4 != 3 {
                    pick_from(&pending, index / 4)
                } else {
                    None
                };
                chosen.unwrap_or(WithdrawalId(u64::from(index) % 6))
            }
            Pick::Raw(raw) => WithdrawalId(raw),
        }
    }

    fn resolution(&self, pick: Pick) -> ResolutionId {
        match pick {
            Pick::Real(index) => {
                let open: Vec<ResolutionId> = self
                    .engine
                    .resolutions()
                    .filter(|r| r.is_open())
                    .map(|r| r.id)
                    .collect();
                let chosen = if index % 4 != 3 {
                    pick_from(&open, index / 4)
                } else {
                    None
                };
                chosen.unwrap_or(ResolutionId(u32::from(index) % 6))
            }
            Pick::Raw(raw) => ResolutionId(raw as u32),
        }
    }

    // ---- Applying, with every per-command check ----

    fn run_step(&mut self, index: usize, step: &Step) {
        let timestamp = match step.time {
            Time::Advance(by) => self.time.saturating_add(by),
            Time::Stale(by) => self.time.saturating_sub(by),
            Time::Far(by) => u64::MAX - by,
        };
        self.time = self.time.max(timestamp);
        let recorded = |n: u16| {
            (!self.script.is_empty()).then(|| {
                self.script[usize::from(n) % self.script.len()]
                    .command
                    .clone()
            })
        };
        let command = match step.id {
            Id::Retry(n) if !self.script.is_empty() => recorded(n).expect("a recorded command"),
            Id::Reuse(n) if !self.script.is_empty() => {
                let earlier = recorded(n).expect("a recorded command");
                let (participant, kind) =
                    self.resolve(&step.action, step.who, Some(earlier.participant), timestamp);
                Command {
                    id: earlier.id,
                    participant,
                    kind,
                }
            }
            Id::Borrow(n) if !self.script.is_empty() => {
                let earlier = recorded(n).expect("a recorded command");
                let (participant, kind) = self.resolve(&step.action, step.who, None, timestamp);
                Command {
                    id: earlier.id,
                    participant,
                    kind,
                }
            }
            _ => {
                let (participant, kind) = self.resolve(&step.action, step.who, None, timestamp);
                Command {
                    id: self.fresh_id(),
                    participant,
                    kind,
                }
            }
        };
        self.apply(command, timestamp, &format!("step {index} ({step:?})"));
    }

    fn apply(&mut self, command: Command, timestamp: Timestamp, context: &str) -> Outcome {
        let before = without_bookkeeping(self.engine.snapshot());
        let (now_before, applied_before) = (self.engine.now(), self.engine.commands_applied());
        let sender = command.participant;
        let sender_state = self
            .engine
            .participant(sender)
            .map(|p| (p.role, p.suspended));
        // The clock's ticks bypass the memory of ids: never remembered, never answered from it,
        // and never refused for an id used before.
        let tick = command.kind == CommandKind::Tick;
        let memory_before = self.engine.remembered(sender, command.id);
        let remembered = if tick { None } else { memory_before };
        let gate = self.accreditation_gate(&command);
        if remembered.is_none() && !tick {
            let order = self
                .remembered_order
                .get(&sender)
                .map_or(&[][..], Vec::as_slice);
            let kept = &order[order.len().saturating_sub(self.window_kept())..];
            assert!(
                !kept.contains(&command.id),
                "{context}: participant {} forgot command id {:?}, one of its last {} ids",
                sender.0,
                command.id,
                self.window_kept()
            );
        }

        let mut events = Vec::new();
        let outcome = self.engine.apply(&command, timestamp, &mut events);
        let sequence = self.engine.commands_applied();
        let describe =
            || format!("{context}: {command:?} at {timestamp} → {outcome:?} with {events:?}");

        assert_eq!(sequence, applied_before + 1, "{}", describe());
        assert_eq!(
            self.engine.now(),
            now_before.max(timestamp),
            "the engine's time is the latest given: {}",
            describe()
        );
        if let Err(violation) = self.engine.check_invariants() {
            panic!("{violation} after {}", describe());
        }
        let after = without_bookkeeping(self.engine.snapshot());

        self.coverage.commands += 1;
        match remembered {
            Some(first) => {
                let known = self.first.get(&(sender, command.id)).unwrap_or_else(|| {
                    panic!("the engine remembers an id never applied: {}", describe())
                });
                let expected = Remembered {
                    digest: command_digest(&known.kind),
                    result: known.result,
                    sequence: known.sequence,
                };
                assert_eq!(
                    first,
                    expected,
                    "what is remembered of the id: {}",
                    describe()
                );
                if known.kind == command.kind {
                    assert_eq!(
                        outcome,
                        Outcome {
                            result: known.result,
                            replayed: Some(known.sequence)
                        },
                        "a retry answers the first outcome: {}",
                        describe()
                    );
                    self.coverage.replays += 1;
                } else {
                    assert_eq!(
                        outcome,
                        Outcome::fresh(Err(RejectReason::RequestIdReused)),
                        "an id reused for another command: {}",
                        describe()
                    );
                    *self
                        .coverage
                        .reasons
                        .entry("RequestIdReused".to_string())
                        .or_default() += 1;
                }
                assert!(
                    events.is_empty(),
                    "a retry or reused id emitted events: {}",
                    describe()
                );
                assert!(
                    after == before,
                    "a retry or reused id changed the state: {}",
                    describe()
                );
                assert_eq!(
                    self.engine.remembered(sender, command.id),
                    Some(first),
                    "a retry or reused id changed its memory: {}",
                    describe()
                );
            }
            None => {
                assert_eq!(outcome.replayed, None, "{}", describe());
                // Identity and role come before everything else.
                let expected_refusal = match sender_state {
                    None => Some(RejectReason::UnknownParticipant),
                    Some((_, true)) => Some(RejectReason::ParticipantSuspended),
                    Some((role, false)) if !allowed_roles(&command.kind).contains(&role) => {
                        Some(RejectReason::RoleNotAllowed)
                    }
                    Some(_) => None,
                };
                if let Some(reason) = expected_refusal {
                    assert_eq!(outcome.result, Err(reason), "{}", describe());
                }
                // Then accreditation, where it gates the command; nowhere else.
                match gate {
                    Some(Err(reason)) if expected_refusal.is_none() => assert_eq!(
                        outcome.result,
                        Err(reason),
                        "the organization's accreditation decides: {}",
                        describe()
                    ),
                    _ => assert_ne!(
                        outcome.result,
                        Err(RejectReason::NotAccredited),
                        "refused for an accreditation the command does not depend on: {}",
                        describe()
                    ),
                }
                match outcome.result {
                    Err(reason) => {
                        assert_ne!(
                            reason,
                            RejectReason::RequestIdReused,
                            "a fresh id refused as reused: {}",
                            describe()
                        );
                        assert!(
                            events.is_empty(),
                            "a rejected command emitted events: {}",
                            describe()
                        );
                        assert!(
                            after == before,
                            "a rejected command changed the state: {}",
                            describe()
                        );
                        *self
                            .coverage
                            .rejected
                            .entry(kind_name(&command.kind))
                            .or_default() += 1;
                        *self
                            .coverage
                            .reasons
                            .entry(format!("{reason:?}"))
                            .or_default() += 1;
                    }
                    Ok(ack) => {
                        // A tick with nothing due is the one exception, and it changes nothing.
                        if events.is_empty() {
                            assert_eq!(
                                command.kind,
                                CommandKind::Tick,
                                "an accepted command emitted no events: {}",
                                describe()
                            );
                            assert!(
                                after == before,
                                "a tick with nothing to do changed the state: {}",
                                describe()
                            );
                        }
                        self.check_ack(&command, ack, &events, &before, &describe);
                        *self
                            .coverage
                            .accepted
                            .entry(kind_name(&command.kind))
                            .or_default() += 1;
                        for event in &events {
                            *self.coverage.events.entry(event_name(event)).or_default() += 1;
                            let detail = match event {
                                Event::NettingPosition { loan_minor, .. } if *loan_minor > 0 => {
                                    Some("NettingPosition(Loan)")
                                }
                                Event::NettingPosition { carried_minor, .. }
                                    if *carried_minor > 0 =>
                                {
                                    Some("NettingPosition(Carried)")
                                }
                                Event::ObligationRecorded {
                                    cause: ObligationCause::ServiceValue(_),
                                    ..
                                } => Some("ObligationRecorded(ServiceValue)"),
                                _ => None,
                            };
                            if let Some(detail) = detail {
                                *self.coverage.events.entry(detail).or_default() += 1;
                            }
                        }
                    }
                }
                let memory = self.engine.remembered(sender, command.id);
                if tick {
                    assert_eq!(
                        memory,
                        memory_before,
                        "a tick is not remembered, and changes no memory: {}",
                        describe()
                    );
                } else if sender_state.is_some() {
                    let first = First {
                        kind: command.kind.clone(),
                        result: outcome.result,
                        sequence,
                    };
                    let expected = Remembered {
                        digest: command_digest(&first.kind),
                        result: first.result,
                        sequence,
                    };
                    assert_eq!(
                        memory,
                        Some(expected),
                        "a registered participant's command is remembered: {}",
                        describe()
                    );
                    self.first.insert((sender, command.id), first);
                    self.remembered_order
                        .entry(sender)
                        .or_default()
                        .push(command.id);
                } else {
                    assert_eq!(
                        memory,
                        None,
                        "an unregistered participant's command is remembered: {}",
                        describe()
                    );
                }
            }
        }
        self.script.push(Applied {
            command,
            timestamp,
            outcome,
            events,
        });
        outcome
    }

    /// An accepted command acknowledges what it created, with the next id of its kind.
    fn check_ack(
        &mut self,
        command: &Command,
        ack: Ack,
        events: &[Event],
        before: &Snapshot,
        describe: &dyn Fn() -> String,
    ) {
        match (&command.kind, ack) {
            (CommandKind::RegisterParticipant { role, name }, Ack::Participant(id)) => {
                assert_eq!(id.0 as usize, before.participants.len(), "{}", describe());
                assert_eq!(
                    events,
                    [Event::ParticipantRegistered {
                        participant: id,
                        role: *role,
                        name: name.clone()
                    }],
                    "{}",
                    describe()
                );
            }
            (CommandKind::ListInstrument { spec }, Ack::Instrument(id)) => {
                assert_eq!(id.0 as usize, before.instruments.len(), "{}", describe());
                assert_eq!(
                    events,
                    [Event::InstrumentListed {
                        instrument: id,
                        spec: spec.clone()
                    }],
                    "{}",
                    describe()
                );
            }
            (CommandKind::OpenOffering { .. }, Ack::Offering(id)) => {
                assert_eq!(id.0 as usize, before.offerings.len(), "{}", describe());
            }
            (
                CommandKind::PlaceOrder {
                    instrument,
                    side,
                    price_ticks,
                    lots,
                    time_in_force,
                    ..
                },
                Ack::Order(id),
            ) => {
                assert_eq!(
                    id.0,
                    before.next_order_id,
                    "order ids are handed out in order: {}",
                    describe()
                );
                assert!(
                    self.orders.last().is_none_or(|last| *last < id),
                    "order ids are never reused: {}",
                    describe()
                );
                let accepted = Event::OrderAccepted {
                    order: id,
                    instrument: *instrument,
                    owner: command.participant,
                    side: *side,
                    price_ticks: *price_ticks,
                    lots: *lots,
                    time_in_force: *time_in_force,
                };
                assert_eq!(events.first(), Some(&accepted), "{}", describe());
                self.orders.push(id);
            }
            (CommandKind::RequestWithdrawal { instrument, lots }, Ack::Withdrawal(id)) => {
                assert_eq!(
                    id.0,
                    before.next_withdrawal_id,
                    "withdrawal ids are handed out in order: {}",
                    describe()
                );
                assert!(
                    matches!(events, [Event::WithdrawalRequested { withdrawal, instrument: i, holder, lots: l, .. }] if *withdrawal == id && i == instrument && *holder == command.participant && l == lots),
                    "{}",
                    describe()
                );
            }
            (CommandKind::ProposeResolution { title, closes_at }, Ack::Resolution(id)) => {
                assert_eq!(id.0 as usize, before.resolutions.len(), "{}", describe());
                let proposed = Event::ResolutionProposed {
                    resolution: id,
                    organization: command.participant,
                    title: title.clone(),
                    closes_at: *closes_at,
                };
                assert_eq!(events, [proposed], "{}", describe());
            }
            (CommandKind::IssueCredential { participant, .. }, Ack::Credential(id)) => {
                assert_eq!(id.0 as usize, before.credentials.len(), "{}", describe());
                assert!(
                    events.iter().any(|e| matches!(e, Event::CredentialIssued { credential, participant: p, .. } if *credential == id && p == participant)),
                    "{}",
                    describe()
                );
            }
            (
                CommandKind::SetAccreditation { .. }
                | CommandKind::Deposit { .. }
                | CommandKind::Withdraw { .. }
                | CommandKind::SetTradingStatus { .. }
                | CommandKind::Subscribe { .. }
                | CommandKind::CancelOrder { .. }
                | CommandKind::ReduceOrder { .. }
                | CommandKind::PayDistribution { .. }
                | CommandKind::RepayAtMaturity { .. }
                | CommandKind::RevokeCredential { .. }
                | CommandKind::SetParticipantStatus { .. }
                | CommandKind::CancelWithdrawal { .. }
                | CommandKind::CompleteWithdrawal { .. }
                | CommandKind::SetWithdrawalsSuspended { .. }
                | CommandKind::CastVote { .. }
                | CommandKind::CloseResolution { .. }
                | CommandKind::SetAccreditedCategories { .. }
                | CommandKind::RedeemServiceValue { .. }
                | CommandKind::RecordVolunteerTime { .. }
                | CommandKind::TransferTimeCredits { .. }
                | CommandKind::SpendTimeCredits { .. }
                | CommandKind::DonateTimeCredits { .. }
                | CommandKind::GrantTimeCredits { .. }
                | CommandKind::ContributeToPool { .. }
                | CommandKind::RepayPoolLoan { .. }
                | CommandKind::DeclareSurplus { .. },
                Ack::Done,
            ) => {}
            (CommandKind::CloseOffering { offering }, Ack::Done) => {
                // An issuer no longer accredited collects nothing: every subscription is
                // released, in the order taken, and nothing is issued.
                let closed = &before.offerings[offering.0 as usize];
                if !before.participants[closed.issuer.0 as usize].accredited {
                    let mut failed: Vec<Event> = closed
                        .subscriptions
                        .iter()
                        .map(|subscription| Event::SubscriptionReleased {
                            offering: *offering,
                            contributor: subscription.contributor,
                            cash_released_minor: subscription.cash_reserved_minor,
                        })
                        .collect();
                    failed.push(Event::OfferingClosed {
                        offering: *offering,
                        issued: false,
                        subscribed_lots: 0,
                        proceeds_minor: 0,
                    });
                    assert_eq!(
                        events,
                        failed,
                        "an unaccredited issuer's offering fails: {}",
                        describe()
                    );
                    *self
                        .coverage
                        .events
                        .entry("OfferingClosed(NotAccredited)")
                        .or_default() += 1;
                }
            }
            (CommandKind::DefineServicePackage { package }, Ack::ServicePackage(id)) => {
                let defined = Event::ServicePackageDefined {
                    package: PackageId(before.social.vouchers.packages.len() as u32),
                    funder: command.participant,
                    category: package.category.clone(),
                    name: package.name.clone(),
                    face_value_minor: package.face_value_minor,
                };
                assert_eq!(
                    id.0 as usize,
                    before.social.vouchers.packages.len(),
                    "{}",
                    describe()
                );
                assert_eq!(events, [defined], "{}", describe());
            }
            (
                CommandKind::IssueVoucher {
                    package,
                    beneficiary,
                    co_payment_minor,
                    expires_at,
                },
                Ack::Voucher(id),
            ) => {
                assert_eq!(
                    id.0,
                    before.social.vouchers.records.len() as u64,
                    "voucher ids are handed out in order: {}",
                    describe()
                );
                let face_value_minor =
                    before.social.vouchers.packages[package.0 as usize].face_value_minor;
                let funder = command.participant;
                let issued = Event::VoucherIssued {
                    voucher: id,
                    package: *package,
                    funder,
                    beneficiary: *beneficiary,
                    face_value_minor,
                    expires_at: *expires_at,
                };
                let split = Event::VoucherSplit {
                    voucher: id,
                    funder,
                    beneficiary: *beneficiary,
                    co_payment_minor: *co_payment_minor,
                    subsidy_minor: face_value_minor - co_payment_minor,
                };
                assert_eq!(events, [issued, split], "{}", describe());
                // The split is the funder's alone; the voucher itself is public.
                assert_eq!(events[0].private_to(), None, "{}", describe());
                assert_eq!(events[1].private_to(), Some(funder), "{}", describe());
            }
            (
                CommandKind::RedeemVoucher {
                    voucher,
                    organization,
                },
                Ack::Done,
            ) => {
                let open = before
                    .social
                    .vouchers
                    .open
                    .iter()
                    .find(|v| v.id == *voucher)
                    .unwrap_or_else(|| panic!("a voucher not open was redeemed: {}", describe()));
                let redeemed = Event::VoucherRedeemed {
                    voucher: *voucher,
                    package: open.package,
                    beneficiary: command.participant,
                    organization: *organization,
                    face_value_minor: open.face_value_minor,
                };
                let owed = Event::ObligationRecorded {
                    debtor: open.funder,
                    creditor: *organization,
                    amount_minor: open.face_value_minor,
                    cause: ObligationCause::Voucher(*voucher),
                };
                assert_eq!(events, [redeemed, owed], "{}", describe());
            }
            (CommandKind::CloseNettingCycle, Ack::NettingCycle(cycle)) => {
                self.check_netting(cycle, events, before, describe);
            }
            (CommandKind::Tick, Ack::Done) => self.check_tick(events, describe),
            (kind, ack) => panic!(
                "{} acknowledged with {ack:?}: {}",
                kind_name(kind),
                describe()
            ),
        }
    }

    /// A netting cycle settles every position open before it, once each and in participant
    /// order, and pays creditors exactly what debtors paid in and the pool lent.
    fn check_netting(
        &self,
        cycle: u64,
        events: &[Event],
        before: &Snapshot,
        describe: &dyn Fn() -> String,
    ) {
        let pool = &before.social.pool;
        assert_eq!(cycle, pool.cycles_closed + 1, "{}", describe());
        let Some((
            Event::NettingCycleClosed {
                cycle: closed,
                obligations,
                gross_minor,
                net_minor,
                paid_in_minor,
                paid_out_minor,
                loans_minor,
                carried_minor,
                pool_balance_minor,
                ..
            },
            lines,
        )) = events.split_last()
        else {
            panic!("a netting cycle without its report: {}", describe())
        };
        assert_eq!(*closed, cycle, "{}", describe());
        assert_eq!(*obligations, pool.obligations_open, "{}", describe());
        assert_eq!(*gross_minor, pool.gross_open_minor, "{}", describe());
        assert_eq!(lines.len(), pool.positions.len(), "{}", describe());
        let (mut paid, mut lent, mut received, mut carried_debts, mut net) =
            (0u64, 0u64, 0u64, 0u64, 0u128);
        for (line, (participant, position)) in lines.iter().zip(&pool.positions) {
            let Event::NettingPosition {
                cycle: line_cycle,
                participant: who,
                owed_to_minor,
                owes_minor,
                paid_minor,
                loan_minor,
                received_minor,
                carried_minor,
            } = line
            else {
                panic!("a netting cycle emitted {line:?}: {}", describe())
            };
            assert!(
                *line_cycle == cycle
                    && who == participant
                    && *owed_to_minor == position.owed_to_minor
                    && *owes_minor == position.owes_minor,
                "netting position {line:?} for {position:?}: {}",
                describe()
            );
            let debt = i128::from(*owes_minor) - i128::from(*owed_to_minor);
            if debt > 0 {
                assert_eq!(
                    u128::from(*paid_minor + *loan_minor + *carried_minor),
                    debt as u128,
                    "a debtor's debt is paid, lent or carried: {}",
                    describe()
                );
                assert_eq!(*received_minor, 0, "{}", describe());
                carried_debts += carried_minor;
                net += debt as u128;
            } else {
                assert_eq!(
                    i128::from(*received_minor + *carried_minor),
                    -debt,
                    "a creditor's credit is received or carried: {}",
                    describe()
                );
                assert_eq!(*paid_minor + *loan_minor, 0, "{}", describe());
            }
            paid += paid_minor;
            lent += loan_minor;
            received += received_minor;
        }
        assert!(
            *paid_in_minor == paid
                && *loans_minor == lent
                && *paid_out_minor == received
                && received == paid + lent
                && *carried_minor == carried_debts
                && *net_minor == net
                && *pool_balance_minor == pool.cash_minor - lent,
            "a netting cycle's report disagrees with its lines: {}",
            describe()
        );
    }

    /// A tick expires vouchers, closes resolutions and repays bonds, at most its bound of them,
    /// and within the bound leaves no voucher or resolution due.
    fn check_tick(&self, events: &[Event], describe: &dyn Fn() -> String) {
        let now = self.engine.now();
        let mut actions = 0;
        for event in events {
            match event {
                Event::VoucherExpired { .. }
                | Event::ResolutionClosed { .. }
                | Event::InstrumentMatured { .. } => actions += 1,
                Event::ParRepaid { .. }
                | Event::OrderCancelled {
                    reason: CancelReason::Matured,
                    ..
                } => {}
                other => panic!("a tick emitted {other:?}: {}", describe()),
            }
        }
        let budget = self.config.clock_actions_per_tick_max;
        assert!(
            actions <= budget,
            "a tick did {actions} actions: {}",
            describe()
        );
        if actions < budget {
            assert!(
                self.engine.open_vouchers().all(|v| v.expires_at > now),
                "a tick left a voucher due open: {}",
                describe()
            );
            assert!(
                self.engine
                    .resolutions()
                    .all(|r| !r.is_open() || r.closes_at > now),
                "a tick left a resolution due open: {}",
                describe()
            );
        }
    }

    /// A fresh command from `participant`, which must be accepted: the standard market.
    fn setup(&mut self, participant: ParticipantId, kind: CommandKind) -> Ack {
        let id = self.fresh_id();
        self.time += 1;
        let outcome = self.apply(
            Command {
                id,
                participant,
                kind: kind.clone(),
            },
            self.time,
            "prelude",
        );
        outcome
            .result
            .unwrap_or_else(|reason| panic!("the prelude's {kind:?} was refused: {reason:?}"))
    }

    /// A regulator, two accredited organizations, four contributors (two of them contributors to
    /// the pool) and a funder, all with cash, the funder with a service package of home care; a withdrawable share (60 % holding cap,
    /// 30 days' notice, a small service value), a two-year bond (a large service value) and a
    /// CIP share (five-year lock-in, tax credit, 30 % holding cap), each issued to the
    /// contributors through an offering and open for trading.
    fn prelude(&mut self) {
        let op = GENESIS_OPERATOR;
        let register = |client: &mut Client, role: Role, name: &str| match client.setup(
            op,
            CommandKind::RegisterParticipant {
                role,
                name: name.to_string(),
            },
        ) {
            Ack::Participant(id) => id,
            other => panic!("registration acknowledged with {other:?}"),
        };
        let regulator = register(self, Role::Regulator, "regulator");
        let organizations = [
            register(self, Role::Organization, "org one"),
            register(self, Role::Organization, "org two"),
        ];
        let contributors: Vec<ParticipantId> = (1..=4)
            .map(|n| register(self, Role::Contributor, &format!("contributor {n}")))
            .collect();
        let funder = register(self, Role::Funder, "funder");
        for contributor in &contributors {
            self.setup(
                op,
                CommandKind::Deposit {
                    account: *contributor,
                    amount_minor: 10_000_000,
                },
            );
        }
        for organization in organizations {
            self.setup(
                op,
                CommandKind::Deposit {
                    account: organization,
                    amount_minor: 100_000_000,
                },
            );
        }
        // Two contributors put some of their cash into the collective pool, which lends.
        for contributor in &contributors[..2] {
            self.setup(
                *contributor,
                CommandKind::ContributeToPool {
                    amount_minor: 100_000,
                },
            );
        }
        // Only an accredited organization may list and offer.
        for organization in organizations {
            self.setup(
                regulator,
                CommandKind::SetAccreditation {
                    organization,
                    accredited: true,
                },
            );
        }
        self.setup(
            op,
            CommandKind::Deposit {
                account: funder,
                amount_minor: 50_000_000,
            },
        );
        self.setup(
            funder,
            CommandKind::DefineServicePackage {
                package: Box::new(mutua_engine::PackageTerms {
                    category: "care".to_string(),
                    name: "home care".to_string(),
                    face_value_minor: 20_000,
                }),
            },
        );
        let start = self.time;
        let spec = |symbol: &str,
                    kind,
                    issuer,
                    tick,
                    lot,
                    par,
                    cap,
                    floor,
                    maturity,
                    holding_cap,
                    cip,
                    withdrawable: bool,
                    service_value_per_lot_minor| InstrumentSpec {
            symbol: symbol.to_string(),
            kind,
            issuer,
            tick_size_minor: tick,
            lot_size_units: lot,
            par_ticks: par,
            return_cap_bp: cap,
            price_floor_ticks: floor,
            maturity_time: maturity,
            holding_cap_bp: holding_cap,
            cooperative_investment_plan: cip,
            lock_in_years: None,
            tax_credit_bp: None,
            withdrawable,
            service_value_per_lot_minor,
            withdrawal_notice_days: if withdrawable { 30 } else { 0 },
        };
        // Offerings of 400 lots (within the tight market's 500 per command), each contributor
        // subscribing up to the holding cap measured against the whole offering.
        let listings = [
            (
                spec(
                    "S0",
                    InstrumentKind::CommunityShare,
                    organizations[0],
                    5,
                    10,
                    200,
                    500,
                    100,
                    None,
                    Some(6_000),
                    false,
                    true,
                    500,
                ),
                80,
            ),
            (
                spec(
                    "B0",
                    InstrumentKind::CommunityBond,
                    organizations[1],
                    20,
                    1,
                    500,
                    400,
                    0,
                    Some(start + 2 * YEAR_NS),
                    Some(5_000),
                    false,
                    false,
                    100_000,
                ),
                40,
            ),
            (
                spec(
                    "C0",
                    InstrumentKind::CommunityShare,
                    organizations[0],
                    1,
                    1,
                    100,
                    300,
                    0,
                    None,
                    Some(3_000),
                    true,
                    false,
                    0,
                ),
                10,
            ),
        ];
        for (spec, subscribed) in listings {
            let issuer = spec.issuer;
            let Ack::Instrument(instrument) = self.setup(
                op,
                CommandKind::ListInstrument {
                    spec: Box::new(spec),
                },
            ) else {
                panic!("listing not acknowledged")
            };
            let Ack::Offering(offering) = self.setup(
                issuer,
                CommandKind::OpenOffering {
                    instrument,
                    lots: 400,
                    minimum_lots: 10,
                },
            ) else {
                panic!("offering not acknowledged")
            };
            for contributor in &contributors {
                self.setup(
                    *contributor,
                    CommandKind::Subscribe {
                        offering,
                        lots: subscribed,
                    },
                );
            }
            self.setup(issuer, CommandKind::CloseOffering { offering });
            self.setup(
                op,
                CommandKind::SetTradingStatus {
                    instrument,
                    open: true,
                },
            );
        }
    }

    // ---- The checks at the end of a sequence ----

    fn finish(&mut self) {
        // Each participant's last ids are remembered, and never more than the window.
        for (participant, order) in &self.remembered_order {
            let kept = &order[order.len().saturating_sub(self.window_kept())..];
            for id in kept {
                assert!(
                    self.engine.remembered(*participant, *id).is_some(),
                    "participant {} forgot {id:?}, one of its last ids",
                    participant.0
                );
            }
            let mut distinct = order.clone();
            distinct.sort_unstable();
            distinct.dedup();
            let remembered = distinct
                .iter()
                .filter(|id| self.engine.remembered(*participant, **id).is_some())
                .count();
            assert!(
                remembered <= 2 * self.window_kept(),
                "participant {} has {remembered} ids remembered",
                participant.0
            );
        }

        // A snapshot restores to the same state, through bytes too.
        let snapshot = self.engine.snapshot();
        let decoded = Snapshot::from_bytes(&snapshot.to_bytes()).expect("a snapshot decodes");
        assert!(decoded == snapshot, "a snapshot changed through its bytes");
        let mut restored = Engine::from_snapshot(decoded)
            .unwrap_or_else(|violation| panic!("the snapshot does not restore: {violation}"));
        assert_eq!(
            restored.state_hash(),
            self.engine.state_hash(),
            "a restored engine hashes differently"
        );
        assert!(
            restored.snapshot() == snapshot,
            "a restored engine snapshots differently"
        );
        restored
            .check_invariants()
            .expect("a restored engine keeps every invariant");

        // The same commands at the same times give the same outcomes, events and state.
        let mut replayed = Engine::new(self.config.clone());
        for (index, applied) in self.script.iter().enumerate() {
            let mut events = Vec::new();
            let outcome = replayed.apply(&applied.command, applied.timestamp, &mut events);
            assert_eq!(
                outcome, applied.outcome,
                "replay of command {index}: {:?}",
                applied.command
            );
            assert_eq!(
                events, applied.events,
                "replay of command {index}: {:?}",
                applied.command
            );
        }
        assert_eq!(
            replayed.state_hash(),
            self.engine.state_hash(),
            "a replay from genesis hashes differently"
        );

        // The restored engine carries on as the original: the last commands again (retries, or
        // fresh if forgotten), then its owner's cancel of every resting order, then a netting
        // cycle and ticks until every voucher has expired.
        let later = self.time.saturating_add(DAY_NS);
        let again: Vec<Command> = self
            .script
            .iter()
            .rev()
            .take(8)
            .map(|applied| applied.command.clone())
            .collect();
        let both_at = |client: &mut Client, restored: &mut Engine, command: &Command, at| {
            let (mut original_events, mut restored_events) = (Vec::new(), Vec::new());
            let original = client.engine.apply(command, at, &mut original_events);
            let carried_on = restored.apply(command, at, &mut restored_events);
            assert_eq!(
                carried_on, original,
                "a restored engine answers {command:?} differently"
            );
            assert_eq!(
                restored_events, original_events,
                "a restored engine's events for {command:?} differ"
            );
            client
                .engine
                .check_invariants()
                .expect("invariants after the closing commands");
            original
        };
        let both = |client: &mut Client, restored: &mut Engine, command: &Command| {
            both_at(client, restored, command, later)
        };
        for command in &again {
            both(self, &mut restored, command);
        }
        let participants: Vec<ParticipantId> =
            self.engine.participants().map(|(id, _)| id).collect();
        let mut closing_id = u128::MAX;
        for owner in participants.iter().copied() {
            if self.engine.participant(owner).is_some_and(|p| p.suspended) {
                let reinstate = CommandKind::SetParticipantStatus {
                    participant: owner,
                    suspended: false,
                };
                both(
                    self,
                    &mut restored,
                    &Command {
                        id: CommandId(closing_id),
                        participant: GENESIS_OPERATOR,
                        kind: reinstate,
                    },
                );
                closing_id -= 1;
            }
            for order in self.engine.orders_of(owner) {
                let cancel = Command {
                    id: CommandId(closing_id),
                    participant: owner,
                    kind: CommandKind::CancelOrder { order: order.id },
                };
                closing_id -= 1;
                let outcome = both(self, &mut restored, &cancel);
                assert_eq!(
                    outcome.result,
                    Ok(Ack::Done),
                    "the owner's cancel of a resting order: {cancel:?}"
                );
            }
        }
        // Every open obligation settles (or carries over), which frees every voucher's backing.
        let open_positions = participants
            .iter()
            .any(|participant| self.engine.position(*participant) != Position::default());
        let netting = Command {
            id: CommandId(closing_id),
            participant: GENESIS_OPERATOR,
            kind: CommandKind::CloseNettingCycle,
        };
        closing_id -= 1;
        let outcome = both(self, &mut restored, &netting);
        if open_positions {
            assert!(
                matches!(outcome.result, Ok(Ack::NettingCycle(_))),
                "the closing netting cycle: {outcome:?}"
            );
        } else {
            assert_eq!(outcome.result, Err(RejectReason::NoEffect));
        }
        assert!(
            participants
                .iter()
                .all(|participant| self.engine.voucher_backing_minor(*participant) == 0),
            "a netting cycle leaves no voucher backing"
        );
        // The clock expires every voucher, a tick's bound of them at a time.
        if let Some(last) = self.engine.open_vouchers().map(|v| v.expires_at).max() {
            let at = last.max(later);
            let ticks = self.engine.open_vouchers().count() as u32
                / self.config.clock_actions_per_tick_max
                + 2;
            for _ in 0..ticks {
                let tick = Command {
                    id: CommandId(closing_id),
                    participant: GENESIS_OPERATOR,
                    kind: CommandKind::Tick,
                };
                closing_id -= 1;
                let outcome = both_at(self, &mut restored, &tick, at);
                assert_eq!(outcome.result, Ok(Ack::Done), "a closing tick");
            }
            assert_eq!(
                self.engine.open_vouchers().count(),
                0,
                "every voucher expired by the clock"
            );
        }
        assert_eq!(
            restored.state_hash(),
            self.engine.state_hash(),
            "a restored engine diverged"
        );
        assert_eq!(
            self.engine.resting_orders(),
            0,
            "every resting order was cancelled at the end"
        );
        // With nothing resting, no voucher open and every obligation netted, nothing is reserved
        // but open subscriptions.
        for (id, participant) in self.engine.participants() {
            let subscribed: u64 = self
                .engine
                .offerings()
                .filter(|offering| offering.open)
                .flat_map(|offering| offering.subscriptions.iter())
                .filter(|subscription| subscription.contributor == id)
                .map(|subscription| subscription.cash_reserved_minor)
                .sum();
            assert_eq!(
                participant.cash.reserved_minor, subscribed,
                "participant {} reserves cash for nothing",
                id.0
            );
        }
    }
}

/// Runs one generated sequence with every check; returns what it covered.
fn run(mix: Mix, sequence: &Sequence) -> Coverage {
    let mut client = Client::new(mix.market());
    if sequence.prelude {
        client.prelude();
    }
    for (index, step) in sequence.steps.iter().enumerate() {
        if index == sequence.swap_at {
            let hash = client.engine.state_hash();
            client.engine = Engine::from_snapshot(client.engine.snapshot())
                .unwrap_or_else(|violation| panic!("mid-sequence snapshot: {violation}"));
            assert_eq!(
                client.engine.state_hash(),
                hash,
                "a mid-sequence restore hashes differently"
            );
        }
        client.run_step(index, step);
    }
    client.finish();
    client.coverage
}

// ---- The properties ----

proptest! {
    #![proptest_config(proptest_config())]

    /// Every command, evenly mixed, in the default market with a 64-id window.
    #[test]
    fn mixed_commands_keep_every_invariant(sequence in sequence(Mix::Mixed)) {
        run(Mix::Mixed, &sequence);
    }

    /// Every command in a market whose every bound is small.
    #[test]
    fn tight_bounds_keep_every_invariant(sequence in sequence(Mix::Tight)) {
        run(Mix::Tight, &sequence);
    }

    /// Mostly orders, cancels and reductions at nearly the same time: deep books, partial
    /// fills, self-trades, fill-or-kill and immediate-or-cancel.
    #[test]
    fn trading_keeps_every_invariant(sequence in sequence(Mix::Trading)) {
        run(Mix::Trading, &sequence);
    }

    /// Years passing: maturities, lock-ins, distribution periods, credentials, suspensions and
    /// reused ids.
    #[test]
    fn years_of_lifecycle_keep_every_invariant(sequence in sequence(Mix::Lifecycle)) {
        run(Mix::Lifecycle, &sequence);
    }

    /// Vouchers, service value, time credits, the pool and netting, with cash short.
    #[test]
    fn the_social_economy_keeps_every_invariant(sequence in sequence(Mix::Social)) {
        run(Mix::Social, &sequence);
    }
}

/// The generator is only as good as what it reaches: over a fixed-seed sample, every command
/// kind is both accepted and refused, retries replay, reused ids are refused, and trades,
/// maturity, distributions, issues, lock-ins and suspensions happen.
#[test]
fn the_generator_reaches_every_command_and_outcome() {
    let mut total = Coverage::default();
    for (mix, seed, sequences) in [
        (Mix::Mixed, 1u8, 120),
        (Mix::Tight, 2, 120),
        (Mix::Trading, 3, 60),
        (Mix::Lifecycle, 4, 120),
        (Mix::Social, 5, 60),
    ] {
        let mut runner = TestRunner::new_with_rng(
            ProptestConfig::default(),
            TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]),
        );
        let strategy = sequence(mix);
        for _ in 0..sequences {
            let sequence = strategy
                .new_tree(&mut runner)
                .expect("a sequence")
                .current();
            let covered = run(mix, &sequence);
            for (kind, n) in covered.accepted {
                *total.accepted.entry(kind).or_default() += n;
            }
            for (kind, n) in covered.rejected {
                *total.rejected.entry(kind).or_default() += n;
            }
            for (reason, n) in covered.reasons {
                *total.reasons.entry(reason).or_default() += n;
            }
            for (event, n) in covered.events {
                *total.events.entry(event).or_default() += n;
            }
            total.replays += covered.replays;
            total.commands += covered.commands;
        }
    }
    eprintln!("{total:#?}");
    for kind in EVERY_KIND {
        assert!(
            total.accepted.get(kind).is_some_and(|n| *n > 0),
            "no {kind} was accepted: {total:#?}"
        );
        assert!(
            total.rejected.get(kind).is_some_and(|n| *n > 0),
            "no {kind} was refused: {total:#?}"
        );
    }
    assert!(
        total.replays > 0,
        "no retry was answered with its first outcome"
    );
    for reason in [
        "RequestIdReused",
        "UnknownParticipant",
        "ParticipantSuspended",
        "RoleNotAllowed",
        "LockedIn",
        "HoldingCapExceeded",
        "BookFull",
        "OrdersFull",
        "CredentialsFull",
        "SymbolTaken",
        "NotMatured",
        "OrderNotResting",
        "NoticeRunning",
        "NotAMember",
        "AlreadyVoted",
        "VotingStillOpen",
        "VotingClosed",
        "NotWithdrawable",
    ] {
        assert!(
            total.reasons.contains_key(reason),
            "no command was refused with {reason}: {total:#?}"
        );
    }
    for event in [
        "Trade",
        "OrderRested",
        "OrderReduced",
        "OrderCancelled(Requested)",
        "OrderCancelled(ImmediateOrCancelRemainder)",
        "OrderCancelled(SelfTrade)",
        "OrderCancelled(Matured)",
        "OrderCancelled(OwnerSuspended)",
        "UnitsIssued",
        "SubscriptionReleased",
        "TaxCreditRecorded",
        "DistributionReceived",
        "ParRepaid",
        "InstrumentMatured",
        "CredentialRevoked",
        "ParticipantStatusChanged",
        "OrderCancelled(FillOrKillUnfillable)",
        "FirstIssue",
        "WithdrawalRequested",
        "WithdrawalCancelled",
        "WithdrawalPaid",
        "WithdrawalsSuspended",
        "VoteCast",
        "ResolutionClosed",
    ] {
        assert!(
            total.events.contains_key(event),
            "no {event} event happened: {total:#?}"
        );
    }
}
