//! Lifecycle model test: years of an instrument's life, random and long, through the real engine
//! and through a naive reference, compared after every command.
//!
//! Time jumps by seconds, days and years. In the mix: first and follow-on offerings (many of
//! them undersubscribed, so that allotment scales back), subscriptions, closes, distributions at
//! and around the cap, a bond's maturity, orders priced at and around the ceiling and the floor,
//! notice of withdrawal and its payout or cancellation, the issuer suspending withdrawals, and
//! resolutions voted on by members who come and go.
//!
//! The reference computes every rule on its own, sharing no code with the engine: its calendar
//! walks a table of year lengths built day by day from the Gregorian rule; anniversaries, years
//! elapsed, the accrued value (floored for the ceiling, rounded up for a follow-on price), the
//! distribution cap, the holding cap at allotment (by trying every level from the top), the tax
//! credit and membership are all computed here from first principles.
//!
//! Orders are immediate-or-cancel on an empty book: they never trade, so what they test is the
//! band, the holding cap, free units and lock-ins, exactly; trading itself is `model.rs`'s.
//!
//! The run is seeded and deterministic. CI runs `STEPS_DEFAULT` steps for each of `SEEDS`; the
//! long run (a million steps, centuries of simulated time in all) is:
//!
//! ```text
//! MUTUA_MODEL_STEPS=125000 CARGO_TARGET_DIR=/var/tmp/mutua-target cargo test --release -p mutua-engine --test lifecycle_model
//! ```

use std::collections::BTreeMap;

use mutua_engine::{
    Ack, CancelReason, Command, CommandId, CommandKind, Engine, Event, InstrumentId,
    InstrumentKind, InstrumentSpec, MarketConfig, OfferingId, ParticipantId, RejectReason,
    ResolutionId, Role, SelfTradePrevention, Side, TimeInForce, Timestamp, VoteChoice,
    WithdrawalId, GENESIS_OPERATOR,
};

/// Seeds run by default, and the steps of each.
const SEEDS: u64 = 8;
const STEPS_DEFAULT: usize = 2_500;
/// Steps of one market's life.
const LIFE_STEPS: usize = 2_500;

const NS: u64 = 1_000_000_000;
const DAY: u64 = 86_400 * NS;

/// 2024-01-01T00:00:00Z (leap year): where every run starts.
const START: Timestamp = 1_704_067_200 * NS;

const ORGANIZATION: ParticipantId = ParticipantId(1);
const CONTRIBUTORS: [ParticipantId; 5] = [
    ParticipantId(2),
    ParticipantId(3),
    ParticipantId(4),
    ParticipantId(5),
    ParticipantId(6),
];
const SHARE: InstrumentId = InstrumentId(0);
const BOND: InstrumentId = InstrumentId(1);
const NOTICE_DAYS: u64 = 45;
const CONTRIBUTOR_CASH: u64 = 50_000_000;
const ISSUER_CASH: u64 = 20_000_000;

// ---- A calendar from first principles ----

fn leap(year: u64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn month_days(year: u64, month: u64) -> u64 {
    match month {
        2 if leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to 1 January of each year from 1970, by adding year lengths.
struct Calendar {
    year_starts: Vec<u64>,
}

impl Calendar {
    fn new() -> Calendar {
        let mut year_starts = vec![0];
        for year in 1970..2600 {
            let last = *year_starts.last().unwrap();
            year_starts.push(last + if leap(year) { 366 } else { 365 });
        }
        Calendar { year_starts }
    }

    /// (year, month, day, nanoseconds into the day) of a time.
    fn civil(&self, time: Timestamp) -> (u64, u64, u64, u64) {
        let days = time / DAY;
        let index = self.year_starts.partition_point(|start| *start <= days) - 1;
        let year = 1970 + index as u64;
        let mut left = days - self.year_starts[index];
        let mut month = 1;
        while left >= month_days(year, month) {
            left -= month_days(year, month);
            month += 1;
        }
        (year, month, left + 1, time % DAY)
    }

    fn time(&self, year: u64, month: u64, day: u64, into_day: u64) -> Timestamp {
        let mut days = self.year_starts[(year - 1970) as usize];
        for earlier in 1..month {
            days += month_days(year, earlier);
        }
        (days + day - 1) * DAY + into_day
    }

    /// The same date and time `years` later; 29 February becomes 1 March in a common year.
    fn anniversary(&self, start: Timestamp, years: u64) -> Timestamp {
        let (year, month, day, into_day) = self.civil(start);
        let target = year + years;
        if month == 2 && day == 29 && !leap(target) {
            self.time(target, 3, 1, into_day)
        } else {
            self.time(target, month, day, into_day)
        }
    }

    /// amount × bp / 10 000 × years from start to now, actual/actual: (floor, exact).
    fn accrue(&self, amount: u64, bp: u64, start: Timestamp, now: Timestamp) -> (u64, bool) {
        if now <= start {
            return (0, true);
        }
        let mut whole = 0;
        while self.anniversary(start, whole + 1) <= now {
            whole += 1;
        }
        let last = self.anniversary(start, whole);
        let year = u128::from(self.anniversary(start, whole + 1) - last);
        let numerator = u128::from(amount)
            * u128::from(bp)
            * (u128::from(whole) * year + u128::from(now - last));
        let denominator = 10_000 * year;
        (
            (numerator / denominator) as u64,
            numerator % denominator == 0,
        )
    }
}

// ---- A small deterministic generator ----

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

// ---- The reference ----

#[derive(Clone, Debug)]
struct Terms {
    par_lot: u64,
    tick_value: u64,
    cap_bp: u64,
    holding_cap_bp: u64,
    lock_in_years: u64,
    credit_bp: u64,
    floor_ticks: u64,
    withdrawable: bool,
    maturity: Option<Timestamp>,
}

#[derive(Clone, Debug, Default)]
struct Holding {
    lots: u64,
    withdrawing: u64,
    /// (until, lots) of every acquisition under a lock-in.
    locks: Vec<(Timestamp, u64)>,
    since: Timestamp,
}

#[derive(Clone, Debug)]
struct ModelInstrument {
    terms: Terms,
    first_issue: Option<Timestamp>,
    distributed: u64,
    issued: u64,
    retired: u64,
    matured: bool,
    suspended: bool,
    offering: Option<(OfferingId, u64, u64, u64)>,
    holdings: BTreeMap<ParticipantId, Holding>,
}

impl ModelInstrument {
    fn outstanding(&self) -> u64 {
        self.issued - self.retired
    }
    fn accrued(&self, calendar: &Calendar, now: Timestamp) -> (u64, bool) {
        match self.first_issue {
            Some(first) => calendar.accrue(self.terms.par_lot, self.terms.cap_bp, first, now),
            None => (0, true),
        }
    }
    fn ceiling(&self, calendar: &Calendar, now: Timestamp) -> u64 {
        (self.terms.par_lot + self.accrued(calendar, now).0 - self.distributed)
            / self.terms.tick_value
    }
    fn offering_price(&self, calendar: &Calendar, now: Timestamp) -> u64 {
        if self.first_issue.is_none() {
            return self.terms.par_lot / self.terms.tick_value;
        }
        let (floor, exact) = self.accrued(calendar, now);
        let up = if exact { floor } else { floor + 1 };
        (self.terms.par_lot + up - self.distributed).div_ceil(self.terms.tick_value)
    }
    fn cap(&self, base: u64) -> u64 {
        base * self.terms.holding_cap_bp / 10_000
    }
    fn held(&self, who: ParticipantId) -> Holding {
        self.holdings.get(&who).cloned().unwrap_or_default()
    }
    fn free(&self, who: ParticipantId, now: Timestamp) -> u64 {
        let holding = self.held(who);
        let locked: u64 = holding
            .locks
            .iter()
            .filter(|(until, _)| *until > now)
            .map(|(_, lots)| lots)
            .sum();
        (holding.lots - holding.withdrawing).saturating_sub(locked)
    }
    fn receive(
        &mut self,
        who: ParticipantId,
        lots: u64,
        now: Timestamp,
        lock_until: Option<Timestamp>,
    ) {
        let holding = self.holdings.entry(who).or_default();
        if holding.lots == 0 {
            holding.since = now;
        }
        holding.lots += lots;
        if let Some(until) = lock_until {
            holding.locks.push((until, lots));
        }
    }
}

#[derive(Clone, Debug)]
struct ModelResolution {
    closes_at: Timestamp,
    open: bool,
    votes: BTreeMap<ParticipantId, (VoteChoice, Timestamp)>,
}

#[derive(Clone, Debug)]
struct ModelWithdrawal {
    instrument: InstrumentId,
    holder: ParticipantId,
    lots: u64,
    payable_from: Timestamp,
}

struct Model {
    calendar: Calendar,
    now: Timestamp,
    cash: BTreeMap<ParticipantId, u64>,
    instruments: Vec<ModelInstrument>,
    /// Subscriptions of the open offering, in arrival order: (contributor, lots).
    subscriptions: Vec<(ParticipantId, u64)>,
    next_offering: u32,
    credits: Vec<(ParticipantId, u64)>,
    withdrawals: BTreeMap<u64, ModelWithdrawal>,
    next_withdrawal: u64,
    resolutions: Vec<ModelResolution>,
}

type Verdict = Result<Ack, RejectReason>;

impl Model {
    fn instrument(&mut self, id: InstrumentId) -> &mut ModelInstrument {
        &mut self.instruments[id.0 as usize]
    }

    fn free_cash(&self, who: ParticipantId) -> u64 {
        let reserved: u64 = match self.instruments.iter().find_map(|i| i.offering) {
            Some((_, _, _, price)) => {
                let instrument = self
                    .instruments
                    .iter()
                    .find(|i| i.offering.is_some())
                    .unwrap();
                self.subscriptions
                    .iter()
                    .filter(|(c, _)| *c == who)
                    .map(|(_, lots)| lots * price * instrument.terms.tick_value)
                    .sum()
            }
            None => 0,
        };
        self.cash[&who] - reserved
    }

    fn open_offering(&mut self, id: InstrumentId, lots: u64, minimum: u64) -> Verdict {
        let now = self.now;
        let calendar = &self.calendar;
        let listed = &self.instruments[id.0 as usize];
        if lots == 0 {
            return Err(RejectReason::QuantityZero);
        }
        if listed.matured {
            return Err(RejectReason::InstrumentMatured);
        }
        if listed
            .terms
            .maturity
            .is_some_and(|maturity| maturity <= now)
        {
            return Err(RejectReason::MaturityReached);
        }
        if listed.offering.is_some() {
            return Err(RejectReason::OfferingAlreadyOpen);
        }
        if minimum == 0 || minimum > lots {
            return Err(RejectReason::OfferingMinimumInvalid);
        }
        let price = listed.offering_price(calendar, now);
        let offering = OfferingId(self.next_offering);
        self.next_offering += 1;
        self.instrument(id).offering = Some((offering, lots, minimum, price));
        Ok(Ack::Offering(offering))
    }

    fn subscribe(&mut self, who: ParticipantId, lots: u64) -> Verdict {
        let Some(index) = self.instruments.iter().position(|i| i.offering.is_some()) else {
            return Err(RejectReason::OfferingNotOpen);
        };
        let instrument = &self.instruments[index];
        let (_, offered, _, price) = instrument.offering.unwrap();
        if lots == 0 {
            return Err(RejectReason::QuantityZero);
        }
        if self.free_cash(who) < lots * price * instrument.terms.tick_value {
            return Err(RejectReason::InsufficientCash);
        }
        let subscribed: u64 = self
            .subscriptions
            .iter()
            .filter(|(c, _)| *c == who)
            .map(|(_, l)| l)
            .sum();
        if instrument.held(who).lots + subscribed + lots
            > instrument.cap(instrument.outstanding() + offered)
        {
            return Err(RejectReason::HoldingCapExceeded);
        }
        let total: u64 = self.subscriptions.iter().map(|(_, l)| l).sum();
        if total + lots > offered {
            return Err(RejectReason::OfferingOversubscribed);
        }
        self.subscriptions.push((who, lots));
        Ok(Ack::Done)
    }

    fn close_offering(&mut self) -> Verdict {
        let now = self.now;
        let Some(index) = self.instruments.iter().position(|i| i.offering.is_some()) else {
            return Err(RejectReason::OfferingNotOpen);
        };
        let (_, _, minimum, price) = self.instruments[index].offering.take().unwrap();
        let mut lines: Vec<(ParticipantId, u64, u64)> = Vec::new();
        for (who, lots) in std::mem::take(&mut self.subscriptions) {
            match lines.iter_mut().find(|line| line.0 == who) {
                Some(line) => line.2 += lots,
                None => lines.push((who, self.instruments[index].held(who).lots, lots)),
            }
        }
        // The highest common level of final holdings that the cap allows, tried from the top.
        let instrument = &self.instruments[index];
        let top = lines
            .iter()
            .map(|(_, held, subscribed)| held + subscribed)
            .max()
            .unwrap_or(0);
        let allot = |level: u64| -> Vec<u64> {
            lines
                .iter()
                .map(|(_, held, subscribed)| (*subscribed).min(level.saturating_sub(*held)))
                .collect()
        };
        let level = (0..=top)
            .rev()
            .find(|level| {
                *level
                    <= instrument.cap(instrument.outstanding() + allot(*level).iter().sum::<u64>())
            })
            .unwrap();
        let allotted = allot(level);
        let total: u64 = allotted.iter().sum();
        if total < minimum {
            return Ok(Ack::Done);
        }
        let tick_value = instrument.terms.tick_value;
        let credit_bp = instrument.terms.credit_bp;
        let lock_until = (instrument.terms.lock_in_years > 0).then(|| {
            self.calendar
                .anniversary(now, instrument.terms.lock_in_years)
        });
        for ((who, _, _), lots) in lines.iter().zip(&allotted) {
            if *lots == 0 {
                continue;
            }
            let paid = lots * price * tick_value;
            *self.cash.get_mut(who).unwrap() -= paid;
            *self.cash.get_mut(&ORGANIZATION).unwrap() += paid;
            if credit_bp > 0 {
                self.credits.push((*who, paid * credit_bp / 10_000));
            }
            self.instrument(InstrumentId(index as u32))
                .receive(*who, *lots, now, lock_until);
        }
        let instrument = self.instrument(InstrumentId(index as u32));
        instrument.issued += total;
        instrument.first_issue.get_or_insert(now);
        Ok(Ack::Done)
    }

    fn distribute(&mut self, id: InstrumentId, per_lot: u64) -> Verdict {
        let now = self.now;
        let instrument = &self.instruments[id.0 as usize];
        if per_lot == 0 {
            return Err(RejectReason::AmountZero);
        }
        if instrument.matured {
            return Err(RejectReason::InstrumentMatured);
        }
        if instrument.outstanding() == 0 {
            return Err(RejectReason::NoUnitsOutstanding);
        }
        if per_lot > instrument.accrued(&self.calendar, now).0 - instrument.distributed {
            return Err(RejectReason::DistributionAboveCap);
        }
        let total = per_lot * instrument.outstanding();
        if self.free_cash(ORGANIZATION) < total {
            return Err(RejectReason::InsufficientCash);
        }
        let paid: Vec<(ParticipantId, u64)> = instrument
            .holdings
            .iter()
            .map(|(who, h)| (*who, h.lots * per_lot))
            .collect();
        *self.cash.get_mut(&ORGANIZATION).unwrap() -= total;
        for (who, amount) in paid {
            *self.cash.get_mut(&who).unwrap() += amount;
        }
        self.instrument(id).distributed += per_lot;
        Ok(Ack::Done)
    }

    fn repay(&mut self, id: InstrumentId) -> Verdict {
        let now = self.now;
        let instrument = &self.instruments[id.0 as usize];
        if instrument.matured {
            return Err(RejectReason::InstrumentMatured);
        }
        let Some(maturity) = instrument.terms.maturity else {
            return Err(RejectReason::DoesNotMature);
        };
        if now < maturity {
            return Err(RejectReason::NotMatured);
        }
        if instrument.offering.is_some() {
            return Err(RejectReason::OfferingAlreadyOpen);
        }
        let total = instrument.terms.par_lot * instrument.outstanding();
        if self.free_cash(ORGANIZATION) < total {
            return Err(RejectReason::InsufficientCash);
        }
        let repaid: Vec<(ParticipantId, u64)> = instrument
            .holdings
            .iter()
            .map(|(who, h)| (*who, h.lots * instrument.terms.par_lot))
            .collect();
        *self.cash.get_mut(&ORGANIZATION).unwrap() -= total;
        for (who, amount) in repaid {
            *self.cash.get_mut(&who).unwrap() += amount;
        }
        let instrument = self.instrument(id);
        instrument.retired = instrument.issued;
        instrument.matured = true;
        for holding in instrument.holdings.values_mut() {
            holding.lots = 0;
            holding.locks.clear();
        }
        Ok(Ack::Done)
    }

    /// An immediate-or-cancel order on an empty book: accepted (and cancelled) or refused.
    fn order(
        &self,
        who: ParticipantId,
        id: InstrumentId,
        side: Side,
        price: u64,
        lots: u64,
    ) -> Result<(), RejectReason> {
        let instrument = &self.instruments[id.0 as usize];
        if price > instrument.ceiling(&self.calendar, self.now) {
            return Err(RejectReason::PriceAboveCeiling);
        }
        if price < instrument.terms.floor_ticks {
            return Err(RejectReason::PriceBelowFloor);
        }
        if instrument.matured {
            return Err(RejectReason::InstrumentMatured);
        }
        match side {
            Side::Buy => {
                if self.free_cash(who) < price * lots * instrument.terms.tick_value {
                    return Err(RejectReason::InsufficientCash);
                }
                let subscribed: u64 = if instrument.offering.is_some() {
                    self.subscriptions
                        .iter()
                        .filter(|(c, _)| *c == who)
                        .map(|(_, l)| l)
                        .sum()
                } else {
                    0
                };
                if instrument.held(who).lots + subscribed + lots
                    > instrument.cap(instrument.outstanding())
                {
                    return Err(RejectReason::HoldingCapExceeded);
                }
            }
            Side::Sell => {
                let holding = instrument.held(who);
                if holding.lots - holding.withdrawing < lots {
                    return Err(RejectReason::InsufficientUnits);
                }
                if instrument.free(who, self.now) < lots {
                    return Err(RejectReason::LockedIn);
                }
            }
        }
        Ok(())
    }

    fn request_withdrawal(&mut self, who: ParticipantId, id: InstrumentId, lots: u64) -> Verdict {
        let now = self.now;
        let instrument = &self.instruments[id.0 as usize];
        if lots == 0 {
            return Err(RejectReason::QuantityZero);
        }
        if !instrument.terms.withdrawable {
            return Err(RejectReason::NotWithdrawable);
        }
        if instrument.suspended {
            return Err(RejectReason::WithdrawalsSuspended);
        }
        let holding = instrument.held(who);
        if holding.lots - holding.withdrawing < lots {
            return Err(RejectReason::InsufficientUnits);
        }
        if instrument.free(who, now) < lots {
            return Err(RejectReason::LockedIn);
        }
        if self
            .withdrawals
            .values()
            .filter(|w| w.holder == who && w.instrument == id)
            .count()
            >= 16
        {
            return Err(RejectReason::WithdrawalsFull);
        }
        self.instrument(id)
            .holdings
            .get_mut(&who)
            .unwrap()
            .withdrawing += lots;
        let number = self.next_withdrawal;
        self.next_withdrawal += 1;
        self.withdrawals.insert(
            number,
            ModelWithdrawal {
                instrument: id,
                holder: who,
                lots,
                payable_from: now + NOTICE_DAYS * DAY,
            },
        );
        Ok(Ack::Withdrawal(WithdrawalId(number)))
    }

    fn cancel_withdrawal(&mut self, who: ParticipantId, number: u64) -> Verdict {
        let Some(pending) = self.withdrawals.get(&number).cloned() else {
            return Err(RejectReason::UnknownWithdrawal);
        };
        if pending.holder != who {
            return Err(RejectReason::NotWithdrawalHolder);
        }
        self.withdrawals.remove(&number);
        self.instrument(pending.instrument)
            .holdings
            .get_mut(&who)
            .unwrap()
            .withdrawing -= pending.lots;
        Ok(Ack::Done)
    }

    fn complete_withdrawal(&mut self, who: ParticipantId, number: u64) -> Verdict {
        let Some(pending) = self.withdrawals.get(&number).cloned() else {
            return Err(RejectReason::UnknownWithdrawal);
        };
        if who != pending.holder && who != ORGANIZATION {
            return Err(RejectReason::NotWithdrawalHolder);
        }
        let instrument = &self.instruments[pending.instrument.0 as usize];
        if instrument.suspended {
            return Err(RejectReason::WithdrawalsSuspended);
        }
        if self.now < pending.payable_from {
            return Err(RejectReason::NoticeRunning);
        }
        let amount = instrument.terms.par_lot * pending.lots;
        if self.free_cash(ORGANIZATION) < amount {
            return Err(RejectReason::InsufficientCash);
        }
        self.withdrawals.remove(&number);
        *self.cash.get_mut(&ORGANIZATION).unwrap() -= amount;
        *self.cash.get_mut(&pending.holder).unwrap() += amount;
        let instrument = self.instrument(pending.instrument);
        let holding = instrument.holdings.get_mut(&pending.holder).unwrap();
        holding.lots -= pending.lots;
        holding.withdrawing -= pending.lots;
        instrument.retired += pending.lots;
        Ok(Ack::Done)
    }

    fn member_since(&self, who: ParticipantId) -> Option<Timestamp> {
        self.instruments[SHARE.0 as usize]
            .holdings
            .get(&who)
            .filter(|h| h.lots > 0)
            .map(|h| h.since)
    }

    fn vote(&mut self, who: ParticipantId, number: u32, choice: VoteChoice) -> Verdict {
        let now = self.now;
        let Some(resolution) = self.resolutions.get(number as usize) else {
            return Err(RejectReason::UnknownResolution);
        };
        if !resolution.open || now >= resolution.closes_at {
            return Err(RejectReason::VotingClosed);
        }
        if self.member_since(who).is_none() {
            return Err(RejectReason::NotAMember);
        }
        if resolution.votes.contains_key(&who) {
            return Err(RejectReason::AlreadyVoted);
        }
        self.resolutions[number as usize]
            .votes
            .insert(who, (choice, now));
        Ok(Ack::Done)
    }

    /// Closes a resolution: (for, against, abstain, lapsed) on success.
    fn close_resolution(&mut self, number: u32) -> (Verdict, Option<[u32; 4]>) {
        let Some(resolution) = self.resolutions.get(number as usize) else {
            return (Err(RejectReason::UnknownResolution), None);
        };
        if !resolution.open {
            return (Err(RejectReason::VotingClosed), None);
        }
        if self.now < resolution.closes_at {
            return (Err(RejectReason::VotingStillOpen), None);
        }
        let mut count = [0u32; 4];
        for (who, (choice, cast_at)) in &resolution.votes {
            let counted = self
                .member_since(*who)
                .is_some_and(|since| since <= *cast_at);
            let slot = match (counted, choice) {
                (false, _) => 3,
                (true, VoteChoice::For) => 0,
                (true, VoteChoice::Against) => 1,
                (true, VoteChoice::Abstain) => 2,
            };
            count[slot] += 1;
        }
        self.resolutions[number as usize].open = false;
        (Ok(Ack::Done), Some(count))
    }
}

fn spec(
    symbol: &str,
    kind: InstrumentKind,
    maturity: Option<Timestamp>,
    terms: &Terms,
    tick: u64,
    lot: u64,
) -> InstrumentSpec {
    InstrumentSpec {
        symbol: symbol.into(),
        kind,
        issuer: ORGANIZATION,
        tick_size_minor: tick,
        lot_size_units: lot,
        par_ticks: terms.par_lot / (tick * lot),
        return_cap_bp: terms.cap_bp as u32,
        price_floor_ticks: 0,
        maturity_time: maturity,
        holding_cap_bp: Some(terms.holding_cap_bp as u32),
        cooperative_investment_plan: false,
        lock_in_years: Some(terms.lock_in_years as u32),
        tax_credit_bp: None,
        withdrawable: terms.withdrawable,
        service_value_per_lot_minor: 0,
        withdrawal_notice_days: if terms.withdrawable {
            NOTICE_DAYS as u32
        } else {
            0
        },
    }
}

struct Run {
    engine: Engine,
    model: Model,
    next_id: u128,
    rng: Rng,
    seed: u64,
    step: usize,
    /// How often each command met each outcome, and each event happened: what the run reached.
    seen: BTreeMap<String, u64>,
}

impl Run {
    fn new(seed: u64) -> Run {
        let calendar = Calendar::new();
        let mut rng = Rng(seed);
        // Terms vary by seed: caps that divide evenly and caps that do not, ticks of 1 and 5.
        let share = Terms {
            par_lot: 1_000,
            tick_value: rng.pick(&[1, 5]),
            cap_bp: rng.pick(&[500, 333, 1_000, 1]),
            holding_cap_bp: rng.pick(&[3_000, 4_000, 5_500]),
            lock_in_years: rng.pick(&[0, 1, 5]),
            credit_bp: 3_000,
            floor_ticks: 0,
            withdrawable: true,
            maturity: None,
        };
        let share = Terms {
            floor_ticks: share.par_lot / share.tick_value,
            ..share
        };
        let bond_maturity = calendar.anniversary(START, rng.range(1, 4));
        let bond = Terms {
            par_lot: 10_000,
            tick_value: 10,
            cap_bp: rng.pick(&[400, 777]),
            holding_cap_bp: 6_000,
            lock_in_years: 0,
            credit_bp: 3_000,
            floor_ticks: 0,
            withdrawable: false,
            maturity: Some(bond_maturity),
        };
        let mut engine = Engine::new(MarketConfig::default());
        let mut setup = vec![(
            GENESIS_OPERATOR,
            CommandKind::RegisterParticipant {
                role: Role::Organization,
                name: "Riverside".into(),
            },
        )];
        // Only an accredited organization may list and offer.
        setup.push((
            GENESIS_OPERATOR,
            CommandKind::SetAccreditation {
                organization: ORGANIZATION,
                accredited: true,
            },
        ));
        for (index, _) in CONTRIBUTORS.iter().enumerate() {
            setup.push((
                GENESIS_OPERATOR,
                CommandKind::RegisterParticipant {
                    role: Role::Contributor,
                    name: format!("member {index}"),
                },
            ));
        }
        for who in CONTRIBUTORS {
            setup.push((
                GENESIS_OPERATOR,
                CommandKind::Deposit {
                    account: who,
                    amount_minor: CONTRIBUTOR_CASH,
                },
            ));
        }
        setup.push((
            GENESIS_OPERATOR,
            CommandKind::Deposit {
                account: ORGANIZATION,
                amount_minor: ISSUER_CASH,
            },
        ));
        let share_spec = spec(
            "SHARE",
            InstrumentKind::CommunityShare,
            None,
            &share,
            share.tick_value,
            1,
        );
        setup.push((
            GENESIS_OPERATOR,
            CommandKind::ListInstrument {
                spec: Box::new(share_spec),
            },
        ));
        let bond_spec = spec(
            "BOND",
            InstrumentKind::CommunityBond,
            Some(bond_maturity),
            &bond,
            1,
            10,
        );
        setup.push((
            GENESIS_OPERATOR,
            CommandKind::ListInstrument {
                spec: Box::new(bond_spec),
            },
        ));
        for instrument in [SHARE, BOND] {
            setup.push((
                GENESIS_OPERATOR,
                CommandKind::SetTradingStatus {
                    instrument,
                    open: true,
                },
            ));
        }
        for (index, (who, kind)) in setup.into_iter().enumerate() {
            let command = Command {
                id: CommandId(index as u128 + 1),
                participant: who,
                kind,
            };
            assert!(
                engine
                    .apply(&command, START, &mut Vec::new())
                    .result
                    .is_ok(),
                "set-up {command:?}"
            );
        }
        let mut cash = BTreeMap::from([(ORGANIZATION, ISSUER_CASH), (GENESIS_OPERATOR, 0)]);
        for who in CONTRIBUTORS {
            cash.insert(who, CONTRIBUTOR_CASH);
        }
        let instrument = |terms: Terms| ModelInstrument {
            terms,
            first_issue: None,
            distributed: 0,
            issued: 0,
            retired: 0,
            matured: false,
            suspended: false,
            offering: None,
            holdings: BTreeMap::new(),
        };
        let model = Model {
            calendar,
            now: START,
            cash,
            instruments: vec![instrument(share), instrument(bond)],
            subscriptions: Vec::new(),
            next_offering: 0,
            credits: Vec::new(),
            withdrawals: BTreeMap::new(),
            next_withdrawal: 1,
            resolutions: Vec::new(),
        };
        Run {
            engine,
            model,
            next_id: 1_000,
            rng,
            seed,
            step: 0,
            seen: BTreeMap::new(),
        }
    }

    fn apply(
        &mut self,
        who: ParticipantId,
        kind: CommandKind,
    ) -> (Result<Ack, RejectReason>, Vec<Event>) {
        self.next_id += 1;
        let command = Command {
            id: CommandId(self.next_id),
            participant: who,
            kind,
        };
        let mut events = Vec::new();
        let outcome = self.engine.apply(&command, self.model.now, &mut events);
        let name = |debug: String| {
            debug
                .split([' ', '{', '('])
                .next()
                .unwrap_or_default()
                .to_string()
        };
        let verdict = match outcome.result {
            Ok(_) => "accepted".to_string(),
            Err(reason) => format!("{reason:?}"),
        };
        *self
            .seen
            .entry(format!("{} {verdict}", name(format!("{:?}", command.kind))))
            .or_default() += 1;
        for event in &events {
            *self
                .seen
                .entry(format!("event {}", name(format!("{event:?}"))))
                .or_default() += 1;
        }
        (outcome.result, events)
    }

    fn expect(&mut self, who: ParticipantId, kind: CommandKind, expected: Verdict) -> Vec<Event> {
        let context = format!(
            "seed {} step {} at {}: {kind:?} by {}",
            self.seed, self.step, self.model.now, who.0
        );
        let (result, events) = self.apply(who, kind);
        assert_eq!(result, expected, "{context}");
        events
    }

    fn step(&mut self) {
        self.step += 1;
        let rng = &mut self.rng;
        // Time: mostly still, often days, now and then years.
        let advance = match rng.below(100) {
            0..=59 => 0,
            60..=74 => rng.range(1, 3_600) * NS,
            75..=92 => rng.range(1, 30) * DAY + rng.below(DAY),
            93..=98 => rng.range(100, 400) * DAY,
            _ => rng.range(1, 3) * 365 * DAY,
        };
        self.model.now += advance;
        let who = self.rng.pick(&CONTRIBUTORS);
        let instrument = if self.rng.chance(70) { SHARE } else { BOND };
        match self.rng.below(100) {
            0..=7 => {
                // One offering at a time across the market keeps the reference's book of
                // subscriptions simple; the engine allows one per instrument.
                let other = if instrument == SHARE { BOND } else { SHARE };
                if self.model.instruments[other.0 as usize].offering.is_some() {
                    return;
                }
                let lots = self.rng.pick(&[0, 1, 10, 50, 200, 600]);
                let minimum = self.rng.range(0, lots.max(1) + 1);
                let expected = self.model.open_offering(instrument, lots, minimum);
                self.expect(
                    ORGANIZATION,
                    CommandKind::OpenOffering {
                        instrument,
                        lots,
                        minimum_lots: minimum,
                    },
                    expected,
                );
            }
            8..=32 => {
                let offering = self
                    .model
                    .instruments
                    .iter()
                    .find_map(|i| i.offering.map(|o| o.0))
                    .unwrap_or(OfferingId(self.model.next_offering.saturating_sub(1)));
                let lots = self.rng.pick(&[1, 3, 10, 25, 80, 150]);
                let expected = if self.model.instruments.iter().any(|i| i.offering.is_some()) {
                    self.model.subscribe(who, lots)
                } else if self.model.next_offering == 0 {
                    Err(RejectReason::UnknownOffering)
                } else {
                    Err(RejectReason::OfferingNotOpen)
                };
                self.expect(who, CommandKind::Subscribe { offering, lots }, expected);
            }
            33..=37 => {
                let Some(offering) = self
                    .model
                    .instruments
                    .iter()
                    .find_map(|i| i.offering.map(|o| o.0))
                else {
                    return;
                };
                let expected = self.model.close_offering();
                self.expect(
                    ORGANIZATION,
                    CommandKind::CloseOffering { offering },
                    expected,
                );
            }
            38..=45 => {
                let listed = &self.model.instruments[instrument.0 as usize];
                let cap = listed
                    .accrued(&self.model.calendar, self.model.now)
                    .0
                    .saturating_sub(listed.distributed);
                let per_lot = self.rng.pick(&[cap, cap + 1, cap / 2, 1, 0]);
                let expected = self.model.distribute(instrument, per_lot);
                self.expect(
                    ORGANIZATION,
                    CommandKind::PayDistribution {
                        instrument,
                        per_lot_minor: per_lot,
                    },
                    expected,
                );
            }
            46..=47 => {
                let expected = self.model.repay(instrument);
                self.expect(
                    ORGANIZATION,
                    CommandKind::RepayAtMaturity { instrument },
                    expected,
                );
            }
            48..=64 => {
                let listed = &self.model.instruments[instrument.0 as usize];
                let ceiling = listed.ceiling(&self.model.calendar, self.model.now);
                let floor = listed.terms.floor_ticks;
                let price = self.rng.pick(&[
                    ceiling,
                    ceiling + 1,
                    ceiling.saturating_sub(1).max(1),
                    floor.max(1),
                    floor.saturating_sub(1).max(1),
                ]);
                let side = if self.rng.chance(50) {
                    Side::Buy
                } else {
                    Side::Sell
                };
                let lots = self.rng.pick(&[1, 5, 40, 300]);
                let kind = CommandKind::PlaceOrder {
                    instrument,
                    side,
                    price_ticks: price,
                    lots,
                    time_in_force: TimeInForce::ImmediateOrCancel,
                    self_trade: SelfTradePrevention::default(),
                };
                let expected = self.model.order(who, instrument, side, price, lots);
                let (result, events) = self.apply(who, kind);
                let context = format!("seed {} step {}: {side:?} {lots} at {price} (ceiling {ceiling}) of {instrument:?}", self.seed, self.step);
                match expected {
                    Err(reason) => assert_eq!(result, Err(reason), "{context}"),
                    Ok(()) => {
                        assert!(matches!(result, Ok(Ack::Order(_))), "{context}: {result:?}");
                        assert!(
                            matches!(
                                events.last(),
                                Some(Event::OrderCancelled {
                                    reason: CancelReason::ImmediateOrCancelRemainder,
                                    ..
                                })
                            ),
                            "{context}"
                        );
                    }
                }
            }
            65..=72 => {
                let held = self.model.instruments[instrument.0 as usize].held(who);
                let lots = self.rng.pick(&[1, held.lots / 2, held.lots, held.lots + 1]);
                let expected = self.model.request_withdrawal(who, instrument, lots);
                self.expect(
                    who,
                    CommandKind::RequestWithdrawal { instrument, lots },
                    expected,
                );
            }
            73..=80 => {
                let pending: Vec<u64> = self.model.withdrawals.keys().copied().collect();
                let number = if pending.is_empty() || self.rng.chance(10) {
                    self.model.next_withdrawal + 5
                } else {
                    self.rng.pick(&pending)
                };
                let by = self.rng.pick(&[
                    who,
                    ORGANIZATION,
                    self.model
                        .withdrawals
                        .get(&number)
                        .map_or(who, |w| w.holder),
                ]);
                if self.rng.chance(25) {
                    let expected = if by == ORGANIZATION {
                        Err(RejectReason::RoleNotAllowed)
                    } else {
                        self.model.cancel_withdrawal(by, number)
                    };
                    self.expect(
                        by,
                        CommandKind::CancelWithdrawal {
                            withdrawal: WithdrawalId(number),
                        },
                        expected,
                    );
                } else {
                    let expected = self.model.complete_withdrawal(by, number);
                    self.expect(
                        by,
                        CommandKind::CompleteWithdrawal {
                            withdrawal: WithdrawalId(number),
                        },
                        expected,
                    );
                }
            }
            81..=82 => {
                let suspended = self.rng.chance(50);
                let listed = &self.model.instruments[instrument.0 as usize];
                let expected = if !listed.terms.withdrawable {
                    Err(RejectReason::NotWithdrawable)
                } else if listed.suspended == suspended {
                    Err(RejectReason::NoEffect)
                } else {
                    Ok(Ack::Done)
                };
                if expected.is_ok() {
                    self.model.instrument(instrument).suspended = suspended;
                }
                self.expect(
                    ORGANIZATION,
                    CommandKind::SetWithdrawalsSuspended {
                        instrument,
                        suspended,
                    },
                    expected,
                );
            }
            83..=85 => {
                let closes_at = self.model.now + self.rng.range(0, 120) * DAY;
                let open = self.model.resolutions.iter().filter(|r| r.open).count();
                let expected = if closes_at <= self.model.now {
                    Err(RejectReason::ResolutionInvalid)
                } else if open >= 64 {
                    Err(RejectReason::ResolutionsFull)
                } else {
                    self.model.resolutions.push(ModelResolution {
                        closes_at,
                        open: true,
                        votes: BTreeMap::new(),
                    });
                    Ok(Ack::Resolution(ResolutionId(
                        self.model.resolutions.len() as u32 - 1,
                    )))
                };
                self.expect(
                    ORGANIZATION,
                    CommandKind::ProposeResolution {
                        title: "a resolution".into(),
                        closes_at,
                    },
                    expected,
                );
            }
            86..=95 => {
                let number = self.resolution();
                let choice =
                    self.rng
                        .pick(&[VoteChoice::For, VoteChoice::Against, VoteChoice::Abstain]);
                let expected = self.model.vote(who, number, choice);
                self.expect(
                    who,
                    CommandKind::CastVote {
                        resolution: ResolutionId(number),
                        choice,
                    },
                    expected,
                );
            }
            _ => {
                let number = self.resolution();
                let (expected, count) = self.model.close_resolution(number);
                let events = self.expect(
                    ORGANIZATION,
                    CommandKind::CloseResolution {
                        resolution: ResolutionId(number),
                    },
                    expected,
                );
                if let Some([votes_for, votes_against, abstentions, votes_lapsed]) = count {
                    let closed = Event::ResolutionClosed {
                        resolution: ResolutionId(number),
                        organization: ORGANIZATION,
                        votes_for,
                        votes_against,
                        abstentions,
                        votes_lapsed,
                        passed: votes_for > votes_against,
                    };
                    assert_eq!(events, [closed], "seed {} step {}", self.seed, self.step);
                }
            }
        }
        self.compare();
    }

    /// A resolution to vote on or close: an open one most of the time, else any id (one past the
    /// last included).
    fn resolution(&mut self) -> u32 {
        let open: Vec<u32> = (0..self.model.resolutions.len() as u32)
            .filter(|n| self.model.resolutions[*n as usize].open)
            .collect();
        if !open.is_empty() && self.rng.chance(80) {
            self.rng.pick(&open)
        } else {
            self.rng.below(self.model.resolutions.len() as u64 + 1) as u32
        }
    }

    /// Everything the reference knows, against the engine.
    fn compare(&self) {
        let context = format!(
            "seed {} step {} at {}",
            self.seed, self.step, self.model.now
        );
        if let Err(violation) = self.engine.check_invariants() {
            panic!("{context}: {violation}");
        }
        for (who, cash) in &self.model.cash {
            assert_eq!(
                self.engine.participant(*who).unwrap().cash.balance_minor,
                *cash,
                "{context}: cash of {}",
                who.0
            );
        }
        for (index, listed) in self.model.instruments.iter().enumerate() {
            let engine = self.engine.instrument(InstrumentId(index as u32)).unwrap();
            let now = self.model.now;
            assert_eq!(
                engine.ceiling_ticks(now),
                listed
                    .ceiling(&self.model.calendar, now)
                    .min(engine.terms.price_ticks_max),
                "{context}: ceiling of {index}"
            );
            assert_eq!(
                engine.offering_price_ticks(now),
                listed.offering_price(&self.model.calendar, now),
                "{context}: offering price of {index}"
            );
            assert_eq!(
                engine.lots_outstanding(),
                listed.outstanding(),
                "{context}: outstanding of {index}"
            );
            assert_eq!(
                engine.status.first_issue_time, listed.first_issue,
                "{context}: first issue of {index}"
            );
            for who in CONTRIBUTORS {
                let held = engine.holding(who).map_or(0, |h| h.lots);
                assert_eq!(
                    held,
                    listed.held(who).lots,
                    "{context}: lots of {} in {index}",
                    who.0
                );
                assert_eq!(
                    engine.holding(who).map_or(0, |h| h.free_lots(now)),
                    listed.free(who, now),
                    "{context}: free lots of {} in {index}",
                    who.0
                );
            }
        }
        let members: Vec<(ParticipantId, Timestamp)> = CONTRIBUTORS
            .iter()
            .filter_map(|who| self.model.member_since(*who).map(|since| (*who, since)))
            .collect();
        assert_eq!(
            self.engine.members_of(ORGANIZATION),
            members,
            "{context}: the register"
        );
        for who in CONTRIBUTORS {
            let credits: Vec<u64> = self
                .engine
                .tax_credits_of(who)
                .iter()
                .map(|credit| credit.credit_minor)
                .collect();
            let expected: Vec<u64> = self
                .model
                .credits
                .iter()
                .filter(|(c, _)| *c == who)
                .map(|(_, credit)| *credit)
                .collect();
            assert_eq!(credits, expected, "{context}: tax credits of {}", who.0);
        }
    }
}

fn steps() -> usize {
    std::env::var("MUTUA_MODEL_STEPS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(STEPS_DEFAULT)
}

#[test]
fn years_of_offerings_distributions_withdrawals_and_votes_agree_with_the_reference() {
    let steps = steps();
    let mut simulated: u128 = 0;
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for seed in 1..=SEEDS {
        // A market lives `LIFE_STEPS` steps (a few centuries at most: time stays well inside
        // what a u64 of nanoseconds holds); longer runs string lives together.
        let mut left = steps;
        let mut life = 0;
        while left > 0 {
            let mut run = Run::new(seed * 1_000_003 + life);
            for _ in 0..left.min(LIFE_STEPS) {
                run.step();
            }
            left -= left.min(LIFE_STEPS);
            life += 1;
            simulated += u128::from(run.model.now - START);
            for (what, count) in &run.seen {
                *seen.entry(what.clone()).or_default() += count;
            }
            // The whole history replays to the same state, and a snapshot restores it.
            let restored =
                Engine::from_snapshot(run.engine.snapshot()).expect("the snapshot restores");
            assert_eq!(restored.state_hash(), run.engine.state_hash());
        }
    }
    eprintln!(
        "{} steps over {:.1} simulated years in all: {seen:#?}",
        steps as u64 * SEEDS,
        simulated as f64 / (365.25 * DAY as f64)
    );
    // The run reached what it is for.
    for what in [
        "event SubscriptionScaledBack",
        "event FirstIssue",
        "event TaxCreditRecorded",
        "event DistributionPaid",
        "event InstrumentMatured",
        "event WithdrawalPaid",
        "event WithdrawalCancelled",
        "event ResolutionClosed",
        "event VoteCast",
        "OpenOffering MaturityReached",
        "CloseOffering accepted",
        "PayDistribution DistributionAboveCap",
        "PlaceOrder PriceAboveCeiling",
        "PlaceOrder PriceBelowFloor",
        "PlaceOrder HoldingCapExceeded",
        "PlaceOrder accepted",
        "Subscribe HoldingCapExceeded",
        "RequestWithdrawal WithdrawalsSuspended",
        "CompleteWithdrawal NoticeRunning",
        "CastVote NotAMember",
        "CastVote AlreadyVoted",
        "CloseResolution VotingStillOpen",
    ] {
        assert!(
            seen.contains_key(what),
            "the run never reached {what}: {seen:#?}"
        );
    }
}

#[test]
fn the_reference_calendar_agrees_with_known_dates() {
    let calendar = Calendar::new();
    assert_eq!(calendar.time(2024, 1, 1, 0), START);
    assert_eq!(calendar.civil(START + 59 * DAY), (2024, 2, 29, 0));
    assert_eq!(
        calendar.anniversary(calendar.time(2024, 2, 29, 7), 1),
        calendar.time(2025, 3, 1, 7)
    );
    // 5 % of 1 000 over 2024 (366 days) is 50, reached on 2025-01-01 and not before.
    assert_eq!(
        calendar.accrue(1_000, 500, START, calendar.time(2025, 1, 1, 0)),
        (50, true)
    );
    assert_eq!(
        calendar
            .accrue(1_000, 500, START, calendar.time(2025, 1, 1, 0) - 1)
            .0,
        49
    );
}
