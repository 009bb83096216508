//! Capped returns over time: the calendar the rules are read in, the accrued value that bounds
//! prices and distributions and prices follow-on offerings, the holding cap at allotment, and the
//! tax credit per kind of social investment. Each story here failed on the rules as they were
//! first written (a 365-day year, a lister-chosen issue time, distributions not deducted, the cap
//! checked only at subscription, no tax credit but for CIP shares).

mod support;

use mutua_engine::calendar::{anniversary, days_from_date, Date};
use mutua_engine::*;
use proptest::prelude::*;
use support::*;
use RejectReason::*;

fn midnight(year: i64, month: u32, day: u32) -> Timestamp {
    days_from_date(Date { year, month, day }) as u64 * DAY_NS
}

fn ceiling(market: &Market, instrument: InstrumentId) -> u64 {
    market
        .engine
        .instrument(instrument)
        .unwrap()
        .ceiling_ticks(market.now)
}

#[test]
fn a_five_year_lock_in_ends_on_the_fifth_anniversary_not_after_five_365_day_years() {
    let mut market = Market::new();
    market.at(midnight(2027, 1, 1));
    let spec = market.cip_share_spec("RIVER-CIP");
    let cip = market.list(spec);
    let alice = market.contributor("alice");
    market.issue(cip, &[(alice, 10)]);
    // 5 × 365 days later is 2031-12-31 (2028 has a 29 February): still locked.
    market.at(midnight(2027, 1, 1) + 5 * YEAR_NS);
    assert_eq!(market.now, midnight(2031, 12, 31));
    market.expect_reject(alice, gtc(cip, Side::Sell, PAR, 1), LockedIn);
    market.at(midnight(2032, 1, 1) - 1);
    market.expect_reject(alice, gtc(cip, Side::Sell, PAR, 1), LockedIn);
    market.at(midnight(2032, 1, 1));
    market.sell(alice, cip, PAR, 1);
}

#[test]
fn a_leap_years_full_return_arrives_on_its_anniversary_not_a_day_early() {
    let mut market = Market::new();
    let first_issue = midnight(2027, 3, 1);
    market.at(first_issue);
    let share = market.share_listed("RIVER-A");
    let alice = market.contributor("alice");
    market.issue(share, &[(alice, 10)]);
    // The year from 2027-03-01 holds 2028-02-29: 366 days. After 365 of them, 5 % × 365/366 of
    // par is 49.86 ticks: rounded down, 1 049.
    market.at(first_issue + YEAR_NS);
    assert_eq!(ceiling(&market, share), 1_049);
    market.expect_reject(alice, gtc(share, Side::Sell, 1_050, 1), PriceAboveCeiling);
    market.at(midnight(2028, 3, 1));
    assert_eq!(ceiling(&market, share), 1_050);
    market.sell(alice, share, 1_050, 1);
}

#[test]
fn the_ceiling_steps_up_at_the_exact_nanosecond_a_tick_has_accrued() {
    let mut market = Market::new();
    let share = market.share_listed("RIVER-A");
    let alice = market.contributor("alice");
    market.issue(share, &[(alice, 10)]);
    // 5 % of 1 000 ticks a year is one tick every 365 / 50 days = 630 720 s.
    let one_tick = 630_720 * 1_000_000_000;
    market.at(START + one_tick - 1);
    assert_eq!(ceiling(&market, share), 1_000);
    market.expect_reject(alice, gtc(share, Side::Sell, 1_001, 1), PriceAboveCeiling);
    market.at(START + one_tick);
    assert_eq!(ceiling(&market, share), 1_001);
    market.sell(alice, share, 1_001, 1);
}

#[test]
fn accrual_starts_at_the_first_issue_whenever_the_listing_was() {
    let mut market = Market::new();
    let share = market.share_listed("RIVER-A");
    let alice = market.contributor("alice");
    // Listed ten years before any unit exists: nothing accrues before the first issue.
    market.at(anniversary(START, 10));
    market.issue(share, &[(alice, 10)]);
    assert!(market.events.contains(&Event::FirstIssue {
        instrument: share,
        time: market.now
    }));
    assert_eq!(
        market
            .engine
            .instrument(share)
            .unwrap()
            .status
            .first_issue_time,
        Some(market.now)
    );
    assert_eq!(ceiling(&market, share), PAR);
    market.expect_reject(alice, gtc(share, Side::Sell, PAR + 1, 1), PriceAboveCeiling);
}

#[test]
fn a_distribution_comes_off_the_accrued_value_so_a_sale_after_it_cannot_take_the_cap_twice() {
    let mut market = Market::new();
    let share = market.share_listed("RIVER-A");
    let alice = market.contributor("alice");
    market.issue(share, &[(alice, 10)]);
    market.advance(YEAR_NS);
    assert_eq!(ceiling(&market, share), 1_050);
    market.pay_distribution(share, 50);
    assert_eq!(
        ceiling(&market, share),
        PAR,
        "the year's return was paid out"
    );
    market.expect_reject(alice, gtc(share, Side::Sell, PAR + 1, 1), PriceAboveCeiling);
    market.sell(alice, share, PAR, 1);
    // Half a year later half a year's return has accrued again; a part paid leaves the rest.
    market.advance(YEAR_NS / 2);
    assert_eq!(ceiling(&market, share), 1_025);
    market.pay_distribution(share, 10);
    assert_eq!(ceiling(&market, share), 1_015);
    assert_eq!(
        market
            .engine
            .instrument(share)
            .unwrap()
            .distribution_cap_per_lot_minor(market.now),
        15
    );
}

#[test]
fn a_follow_on_offering_is_priced_at_the_accrued_value_with_credits_on_that_price() {
    let mut market = Market::new();
    let spec = InstrumentSpec {
        return_cap_bp: 333,
        ..market.share_spec("RIVER-A")
    };
    let share = market.list(spec);
    let [alice, bob] = ["alice", "bob"].map(|name| market.contributor(name));
    market.issue(share, &[(alice, 10)]);
    // After a year: 1 000 × 1.0333 = 1 033.3, so the ceiling is 1 033 (down) and the follow-on
    // price 1 034 (up): a new holder can never sell at once above what it paid.
    market.advance(YEAR_NS);
    assert_eq!(ceiling(&market, share), 1_033);
    let offering = market.open_offering(share, 5, 1);
    assert_eq!(market.engine.offering(offering).unwrap().price_ticks, 1_034);
    market.deposit(bob, 5 * 1_034);
    market.subscribe(bob, offering, 5);
    market.close_offering(offering);
    assert_eq!(market.cash(bob).balance_minor, 0);
    // Every kind of social investment earns the market's 30 % by default, rounded down.
    let credits = market.engine.tax_credits_of(bob);
    assert_eq!(credits.len(), 1);
    assert_eq!(
        (
            credits[0].purchase_minor,
            credits[0].credit_minor,
            credits[0].rate_bp
        ),
        (5_170, 1_551, 3_000)
    );
    market.expect_reject(bob, gtc(share, Side::Sell, 1_034, 1), PriceAboveCeiling);
}

#[test]
fn tax_credit_rates_are_market_configuration_per_kind_and_round_down() {
    let mut market = Market::with_config(|config| {
        config.tax_credit_bp.community_bond = 3_333;
        config.tax_credit_bp.community_share = 0;
    });
    let bond_spec = market.bond_spec("RIVER-BOND", 5);
    let bond = market.list(bond_spec);
    let share = market.share_listed("RIVER-A");
    let alice = market.contributor("alice");
    market.issue(bond, &[(alice, 1)]);
    market.issue(share, &[(alice, 1)]);
    let credits = market.engine.tax_credits_of(alice);
    // 1 000 × 33.33 % = 333.3: the contributor is credited 333, never 334.
    assert_eq!(credits.len(), 1, "a 0 % rate records no credit");
    assert_eq!(
        (
            credits[0].instrument,
            credits[0].credit_minor,
            credits[0].rate_bp
        ),
        (bond, 333, 3_333)
    );
}

#[test]
fn the_holding_cap_rounds_down_to_a_lot() {
    let mut market = Market::new();
    let spec = InstrumentSpec {
        holding_cap_bp: None,
        ..market.share_spec("RIVER-CAP")
    };
    let share = market.list(spec);
    // 109 lots outstanding: 10 % is 10.9, so the cap is 10 lots.
    let holders: Vec<(ParticipantId, u64)> = (0..11)
        .map(|n| {
            (
                market.contributor(&format!("holder {n}")),
                if n == 0 { 9 } else { 10 },
            )
        })
        .collect();
    market.issue(share, &holders);
    assert_eq!(
        market.engine.instrument(share).unwrap().lots_outstanding(),
        109
    );
    let bob = market.contributor("bob");
    market.deposit(bob, 20 * PAR);
    market.expect_reject(bob, gtc(share, Side::Buy, PAR, 11), HoldingCapExceeded);
    market.buy(bob, share, PAR, 10);
}

#[test]
fn an_undersubscribed_offering_never_leaves_a_contributor_above_the_cap() {
    let mut market = Market::new();
    let spec = InstrumentSpec {
        holding_cap_bp: None,
        ..market.share_spec("RIVER-CAP")
    };
    let share = market.list(spec);
    let alice = market.contributor("alice");
    market.deposit(alice, 10 * PAR);
    // Ten of a hundred offered: alone, alice would hold all of the issue. Nothing can be
    // allotted to her within 10 %, so the minimum is not met and her cash comes back.
    let offering = market.open_offering(share, 100, 10);
    market.subscribe(alice, offering, 10);
    market.close_offering(offering);
    assert!(market.events.contains(&Event::OfferingClosed {
        offering,
        issued: false,
        subscribed_lots: 0,
        proceeds_minor: 0
    }));
    assert_eq!(
        market.cash(alice),
        CashAccount {
            balance_minor: 10 * PAR,
            reserved_minor: 0
        }
    );
    assert_eq!(market.lots(alice, share), 0);
}

#[test]
fn allotment_scales_the_largest_subscriptions_back_to_the_cap_and_refunds_the_excess() {
    let mut market = Market::new();
    let spec = InstrumentSpec {
        holding_cap_bp: None,
        ..market.share_spec("RIVER-CAP")
    };
    let share = market.list(spec);
    let alice = market.contributor("alice");
    let others: Vec<ParticipantId> = (0..11)
        .map(|n| market.contributor(&format!("member {n}")))
        .collect();
    let offering = market.open_offering(share, 100, 10);
    market.deposit(alice, 10 * PAR);
    market.subscribe(alice, offering, 10);
    for other in &others {
        market.deposit(*other, 5 * PAR);
        market.subscribe(*other, offering, 5);
    }
    market.close_offering(offering);
    // 55 from the others and x from alice: x ≤ 10 % of (55 + x) allows x = 6 of 61.
    assert!(market.events.contains(&Event::SubscriptionScaledBack {
        offering,
        contributor: alice,
        subscribed_lots: 10,
        allotted_lots: 6,
        cash_released_minor: 4 * PAR,
        cap_lots: 6
    }));
    let scaled_back = market
        .events
        .iter()
        .filter(|event| matches!(event, Event::SubscriptionScaledBack { .. }))
        .count();
    assert_eq!(
        scaled_back, 1,
        "only alice was scaled back; the others were allotted in full"
    );
    assert_eq!(market.lots(alice, share), 6);
    assert_eq!(
        market.cash(alice),
        CashAccount {
            balance_minor: 4 * PAR,
            reserved_minor: 0
        }
    );
    assert_eq!(
        market.engine.instrument(share).unwrap().lots_outstanding(),
        61
    );
}

#[test]
fn a_follow_on_offering_taken_up_by_one_contributor_stops_at_the_cap() {
    let mut market = Market::new();
    let spec = InstrumentSpec {
        holding_cap_bp: None,
        ..market.share_spec("RIVER-CAP")
    };
    let share = market.list(spec);
    let holders: Vec<(ParticipantId, u64)> = (0..10)
        .map(|n| (market.contributor(&format!("holder {n}")), 10))
        .collect();
    market.issue(share, &holders);
    let bob = market.contributor("bob");
    // 900 offered, 90 subscribed by bob (within 10 % of the 1 000 a full take-up would make).
    let offering = market.open_offering(share, 900, 1);
    market.deposit(bob, 90 * PAR);
    market.subscribe(bob, offering, 90);
    market.close_offering(offering);
    // x ≤ 10 % of (100 + x): 11 of 111.
    assert_eq!(market.lots(bob, share), 11);
    assert_eq!(
        market.engine.instrument(share).unwrap().lots_outstanding(),
        111
    );
}

/// The largest level L with L ≤ cap × (outstanding + Σ min(subscribed, L − held)), found by
/// trying every level from the top: slow, obvious, and independent of the engine's walk.
fn reference_allotment(outstanding: u64, cap_bp: u64, lines: &[(u64, u64)]) -> Vec<u64> {
    let top = lines
        .iter()
        .map(|(held, subscribed)| held + subscribed)
        .max()
        .unwrap_or(0);
    for level in (0..=top).rev() {
        let allotted: Vec<u64> = lines
            .iter()
            .map(|(held, subscribed)| (*subscribed).min(level.saturating_sub(*held)))
            .collect();
        let total: u64 = allotted.iter().sum();
        if level * 10_000 <= cap_bp * (outstanding + total) {
            return allotted;
        }
    }
    unreachable!("level 0 always fits")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random first and follow-on offerings: nobody ends above the cap of the units outstanding,
    /// the allotment is the largest that allows it (against a brute-force reference), and cash
    /// and units are conserved (the harness checks every invariant after every command).
    #[test]
    fn allotment_holds_the_cap_and_allots_as_much_as_it_allows(
        cap_bp in prop_oneof![Just(1_000u32), 500..=5_000u32],
        first in prop::collection::vec(1..=40u64, 1..12),
        follow_on in prop::collection::vec((0..12usize, 1..=60u64), 0..16),
    ) {
        let mut market = Market::new();
        let spec = InstrumentSpec { holding_cap_bp: Some(cap_bp), ..market.share_spec("RIVER-P") };
        let share = market.list(spec);
        let people: Vec<ParticipantId> = (0..12).map(|n| market.contributor(&format!("c{n}"))).collect();
        for round in [first.iter().enumerate().map(|(i, lots)| (i, *lots)).collect::<Vec<_>>(), follow_on.clone()] {
            if round.is_empty() {
                continue;
            }
            let instrument = market.engine.instrument(share).unwrap();
            let outstanding = instrument.lots_outstanding();
            let price = instrument.offering_price_ticks(market.now);
            let total: u64 = round.iter().map(|(_, lots)| lots).sum();
            let offering = market.open_offering(share, total, 1);
            // Subscriptions the engine accepts (each within the cap of a full take-up).
            let mut lines: Vec<(ParticipantId, u64, u64)> = Vec::new();
            for (who, lots) in round {
                let person = people[who];
                market.deposit(person, lots * price);
                let command = market.command(person, CommandKind::Subscribe { offering, lots });
                if market.apply(&command).result.is_ok() {
                    let held = market.lots(person, share);
                    match lines.iter_mut().find(|line| line.0 == person) {
                        Some(line) => line.2 += lots,
                        None => lines.push((person, held, lots)),
                    }
                }
            }
            let expected = reference_allotment(outstanding, u64::from(cap_bp), &lines.iter().map(|l| (l.1, l.2)).collect::<Vec<_>>());
            market.close_offering(offering);
            let issued = market.engine.offering(offering).unwrap().issued_lots;
            let expected_total: u64 = expected.iter().sum();
            if expected_total >= 1 {
                prop_assert_eq!(issued, expected_total);
                for (line, allotted) in lines.iter().zip(&expected) {
                    prop_assert_eq!(market.lots(line.0, share), line.1 + allotted);
                }
            } else {
                prop_assert_eq!(issued, 0);
            }
            let instrument = market.engine.instrument(share).unwrap();
            let cap = instrument.holding_cap_lots(instrument.lots_outstanding());
            for person in &people {
                prop_assert!(market.lots(*person, share) <= cap, "a holder ends above the cap");
            }
            market.advance(YEAR_NS / 4);
        }
    }
}

#[test]
fn a_distribution_lowers_the_ceiling_within_the_same_instant() {
    let mut market = Market::new();
    let share = market.share_listed("RIVER-A");
    let [alice, bob] = ["alice", "bob"].map(|name| market.contributor(name));
    market.issue(share, &[(alice, 10)]);
    market.advance(YEAR_NS);
    // An order priced now makes the engine work out the ceiling for this instant: 1 050.
    market.deposit(bob, PAR);
    market.buy(bob, share, PAR, 1);
    market.pay_distribution(share, 50);
    // Same instant, after the distribution: the ceiling is par again, not the 1 050 of before.
    market.expect_reject(alice, gtc(share, Side::Sell, 1_050, 1), PriceAboveCeiling);
    assert_eq!(ceiling(&market, share), PAR);
}

#[test]
fn units_of_an_instrument_without_a_lock_in_carry_no_lock_entries() {
    let mut market = Market::new();
    let share = market.share_listed("RIVER-A");
    let [alice, bob] = ["alice", "bob"].map(|name| market.contributor(name));
    market.issue(share, &[(alice, 10)]);
    let ask = market.sell(alice, share, PAR, 4);
    market.deposit(bob, 4 * PAR);
    market.buy(bob, share, PAR, 4);
    assert_eq!(market.trades(), vec![(ask, PAR, 4)]);
    let instrument = market.engine.instrument(share).unwrap();
    for holder in [alice, bob] {
        assert!(
            instrument.holding(holder).unwrap().locks.is_empty(),
            "a lock entry without a lock-in"
        );
    }
}

#[test]
fn a_holder_left_above_the_cap_by_withdrawals_is_allotted_nothing_more() {
    let mut market = Market::new();
    let spec = InstrumentSpec {
        holding_cap_bp: Some(5_000),
        withdrawable: true,
        ..market.share_spec("RIVER-W")
    };
    let share = market.list(spec);
    let [alice, bob] = ["alice", "bob"].map(|name| market.contributor(name));
    market.issue(share, &[(alice, 50), (bob, 50)]);
    // Bob withdraws 40: 60 outstanding, and alice's 50 are above half of them, passively.
    let Ack::Withdrawal(withdrawal) = market.ok(
        bob,
        CommandKind::RequestWithdrawal {
            instrument: share,
            lots: 40,
        },
    ) else {
        panic!("a withdrawal")
    };
    market.ok(bob, CommandKind::CompleteWithdrawal { withdrawal });
    assert_eq!(
        market.engine.instrument(share).unwrap().lots_outstanding(),
        60
    );
    // A follow-on of 100: alice may subscribe (51 is within half of the 160 a full take-up
    // would make), but alone she can be allotted nothing without ending above the cap.
    let offering = market.open_offering(share, 100, 1);
    market.deposit(alice, 2 * PAR);
    market.subscribe(alice, offering, 1);
    market.close_offering(offering);
    assert!(market.events.contains(&Event::OfferingClosed {
        offering,
        issued: false,
        subscribed_lots: 0,
        proceeds_minor: 0
    }));
    assert_eq!(market.lots(alice, share), 50);
}
