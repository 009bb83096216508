//! Scenario tests: each rule of the exchange, and each reason it refuses a command, told as a
//! short market story through `Engine::apply`, with every invariant checked after every step.

use mutua_engine::*;
use RejectReason::*;

mod support;

use mutua_engine::calendar::anniversary;
use support::*;

// =====================================================================================
// Primary market
// =====================================================================================

#[test]
fn offering_that_meets_its_minimum_issues_units_pays_the_issuer_and_records_tax_credits() {
    let mut market = Market::new();
    let alice = market.contributor("alice");
    let bob = market.contributor("bob");
    let spec = market.cip_share_spec("RIVER-CIP");
    let cip = market.list(spec);
    market.deposit(alice, 60_000);
    market.deposit(bob, 40_000);

    let offering = market.open_offering(cip, 100, 50);
    market.subscribe(alice, offering, 60);
    market.subscribe(bob, offering, 40);
    // Subscribed cash is held, not yet paid: the offering could still fail.
    assert_eq!(
        market.cash(alice),
        CashAccount {
            balance_minor: 60_000,
            reserved_minor: 60_000
        }
    );
    market.close_offering(offering);

    assert_eq!((market.lots(alice, cip), market.lots(bob, cip)), (60, 40));
    assert_eq!(
        market.cash(alice),
        CashAccount {
            balance_minor: 0,
            reserved_minor: 0
        }
    );
    assert_eq!(
        market.cash(bob),
        CashAccount {
            balance_minor: 0,
            reserved_minor: 0
        }
    );
    assert_eq!(market.cash(market.issuer).balance_minor, 100_000);
    assert_eq!(
        market.engine.instrument(cip).unwrap().lots_outstanding(),
        100
    );
    assert!(market.events.contains(&Event::OfferingClosed {
        offering,
        issued: true,
        subscribed_lots: 100,
        proceeds_minor: 100_000
    }));
    // Co-operative Investment Plan purchases earn a 30 % non-refundable tax credit.
    let credit = |contributor, purchase_minor, credit_minor| TaxCredit {
        contributor,
        instrument: cip,
        time: START,
        purchase_minor,
        credit_minor,
        rate_bp: 3_000,
    };
    assert_eq!(
        market.engine.tax_credits_of(alice),
        vec![credit(alice, 60_000, 18_000)]
    );
    assert_eq!(
        market.engine.tax_credits_of(bob),
        vec![credit(bob, 40_000, 12_000)]
    );
    assert!(market.events.contains(&Event::TaxCreditRecorded {
        contributor: bob,
        instrument: cip,
        purchase_minor: 40_000,
        credit_minor: 12_000,
        rate_bp: 3_000
    }));
}

#[test]
fn other_social_investments_also_earn_the_thirty_percent_credit() {
    let mut market = Market::new();
    let alice = market.contributor("alice");
    let share = market.share_listed("RIVER-A");
    market.issue(share, &[(alice, 10)]);
    assert_eq!(market.lots(alice, share), 10);
    let credits = market.engine.tax_credits_of(alice);
    assert_eq!(credits.len(), 1);
    assert_eq!(
        (
            credits[0].purchase_minor,
            credits[0].credit_minor,
            credits[0].rate_bp
        ),
        (10_000, 3_000, 3_000)
    );
    // A buy on the secondary market is not a purchase from the issuer and earns nothing.
    let bob = market.contributor("bob");
    market.sell(alice, share, PAR, 1);
    market.deposit(bob, PAR);
    market.buy(bob, share, PAR, 1);
    assert!(market.engine.tax_credits_of(bob).is_empty());
}

#[test]
fn offering_below_its_minimum_releases_every_reservation() {
    let mut market = Market::new();
    let alice = market.contributor("alice");
    let bob = market.contributor("bob");
    let spec = market.cip_share_spec("RIVER-CIP");
    let cip = market.list(spec);
    market.deposit(alice, 30_000);
    market.deposit(bob, 20_000);

    let offering = market.open_offering(cip, 100, 80);
    market.subscribe(alice, offering, 30);
    market.subscribe(bob, offering, 20);
    market.close_offering(offering);

    assert_eq!(
        market.cash(alice),
        CashAccount {
            balance_minor: 30_000,
            reserved_minor: 0
        }
    );
    assert_eq!(
        market.cash(bob),
        CashAccount {
            balance_minor: 20_000,
            reserved_minor: 0
        }
    );
    assert_eq!((market.lots(alice, cip), market.lots(bob, cip)), (0, 0));
    assert_eq!(market.cash(market.issuer).balance_minor, 0);
    assert_eq!(market.engine.instrument(cip).unwrap().lots_outstanding(), 0);
    assert!(
        market.engine.tax_credits_of(alice).is_empty(),
        "a failed offering earns no tax credit"
    );
    assert!(market.events.contains(&Event::SubscriptionReleased {
        offering,
        contributor: alice,
        cash_released_minor: 30_000
    }));
    assert!(market.events.contains(&Event::SubscriptionReleased {
        offering,
        contributor: bob,
        cash_released_minor: 20_000
    }));
    assert!(market.events.contains(&Event::OfferingClosed {
        offering,
        issued: false,
        subscribed_lots: 0,
        proceeds_minor: 0
    }));
    // The instrument is free for a new attempt.
    market.open_offering(cip, 50, 10);
}

// =====================================================================================
// Continuous trading
// =====================================================================================

#[test]
fn orders_match_best_price_first_then_oldest_first() {
    let mut market = Market::new();
    let share = market.share_listed("RIVER-A");
    let [alice, bob, carol, dave] =
        ["alice", "bob", "carol", "dave"].map(|name| market.contributor(name));
    market.issue(share, &[(alice, 10), (bob, 10), (carol, 10)]);
    let alice_ask = market.sell(alice, share, 990, 5);
    let bob_ask = market.sell(bob, share, 980, 5);
    let carol_ask = market.sell(carol, share, 990, 5);

    market.deposit(dave, 12 * 990);
    market.buy(dave, share, 990, 12);

    // Bob's cheaper ask first, then at 990 Alice's before Carol's because it came first.
    assert_eq!(
        market.trades(),
        vec![(bob_ask, 980, 5), (alice_ask, 990, 5), (carol_ask, 990, 2)]
    );
    assert_eq!(market.remaining_lots(carol_ask), Some(3));
    assert_eq!(market.lots(dave, share), 12);
    assert_eq!(market.asks(share), vec![(990, 3, 1)]);
}

#[test]
fn trades_happen_at_the_resting_orders_price() {
    let mut market = Market::new();
    let share = market.share_listed("RIVER-A");
    let alice = market.contributor("alice");
    let bob = market.contributor("bob");
    market.issue(share, &[(alice, 8)]);
    market.deposit(bob, 4 * 1_000 + 4 * 990);

    // A buyer willing to pay 1000 meets an ask at 950: it pays 950.
    let ask = market.sell(alice, share, 950, 4);
    market.buy(bob, share, 1_000, 4);
    assert_eq!(market.trades(), vec![(ask, 950, 4)]);
    assert_eq!(market.cash(alice).balance_minor, 3_800);

    // A seller willing to take 900 meets a bid at 990: it receives 990.
    let bid = market.buy(bob, share, 990, 4);
    market.sell(alice, share, 900, 4);
    assert_eq!(market.trades(), vec![(bid, 990, 4)]);
    assert_eq!(market.cash(alice).balance_minor, 3_800 + 3_960);
    assert_eq!(market.lots(bob, share), 8);
}

#[test]
fn buy_filled_below_its_limit_gets_the_unused_reservation_back() {
    let mut market = Market::new();
    let share = market.share_listed("RIVER-A");
    let alice = market.contributor("alice");
    let bob = market.contributor("bob");
    market.issue(share, &[(alice, 10)]);
    market.sell(alice, share, 950, 6);
    market.deposit(bob, 10_000);

    market.buy(bob, share, 1_000, 10);

    // 6 lots filled at 950 (5_700 paid); the 4 resting still hold 1_000 each. The 50 a lot saved
    // on the fills is free again at once: 10_000 - 5_700 - 4_000 = 300.
    assert_eq!(
        market.cash(bob),
        CashAccount {
            balance_minor: 4_300,
            reserved_minor: 4_000
        }
    );
    assert_eq!(market.free_cash(bob), 300);
}

#[test]
fn good_till_cancelled_remainder_rests_on_the_book() {
    let mut market = Market::new();
    let share = market.share_listed("RIVER-A");
    let alice = market.contributor("alice");
    let bob = market.contributor("bob");
    market.issue(share, &[(alice, 10)]);
    market.sell(alice, share, 1_000, 3);
    market.deposit(bob, 5_000);

    let bid = market.buy(bob, share, 1_000, 5);

    assert_eq!(market.trades().len(), 1);
    assert!(market.events.contains(&Event::OrderRested {
        order: bid,
        remaining_lots: 2
    }));
    assert_eq!(market.remaining_lots(bid), Some(2));
    assert_eq!(market.bids(share), vec![(1_000, 2, 1)]);
    assert_eq!(market.cash(bob).reserved_minor, 2_000);
}

#[test]
fn immediate_or_cancel_remainder_is_cancelled() {
    let mut market = Market::new();
    let share = market.share_listed("RIVER-A");
    let alice = market.contributor("alice");
    let bob = market.contributor("bob");
    market.issue(share, &[(alice, 10)]);
    let ask = market.sell(alice, share, 1_000, 3);
    market.deposit(bob, 5_000);

    let bid = market.place(bob, ioc(share, Side::Buy, 1_000, 5));

    assert_eq!(market.trades(), vec![(ask, 1_000, 3)]);
    assert_eq!(
        market.cancellations(),
        vec![(bid, 2, CancelReason::ImmediateOrCancelRemainder)]
    );
    assert_eq!(market.remaining_lots(bid), None);
    assert!(market.bids(share).is_empty());
    assert_eq!(
        market.cash(bob),
        CashAccount {
            balance_minor: 2_000,
            reserved_minor: 0
        }
    );
}

#[test]
fn fill_or_kill_trades_in_full_or_not_at_all() {
    let mut market = Market::new();
    let share = market.share_listed("RIVER-A");
    let [alice, bob, carol] = ["alice", "bob", "carol"].map(|name| market.contributor(name));
    market.issue(share, &[(alice, 5), (carol, 5)]);
    let alice_ask = market.sell(alice, share, 990, 3);
    let carol_ask = market.sell(carol, share, 1_000, 3);
    market.deposit(bob, 7_000);

    // Seven lots are not there; six are, but only three within 995. Each order is accepted,
    // gets an id, and is killed at once: nothing trades and nothing else changes.
    for (limit, lots) in [(1_000, 7), (995, 6)] {
        let before = market_state(market.engine.snapshot());
        let killed = market.place(bob, fok(share, Side::Buy, limit, lots));
        assert_eq!(
            market.cancellations(),
            vec![(killed, lots, CancelReason::FillOrKillUnfillable)]
        );
        assert!(market.trades().is_empty());
        assert_eq!(market.remaining_lots(killed), None);
        let mut after = market_state(market.engine.snapshot());
        after.next_order_id -= 1;
        assert_eq!(
            after, before,
            "a killed fill-or-kill order changed the market"
        );
        market.expect_reject(bob, cancellation(killed), OrderNotResting);
    }

    market.place(bob, fok(share, Side::Buy, 1_000, 6));
    assert_eq!(
        market.trades(),
        vec![(alice_ask, 990, 3), (carol_ask, 1_000, 3)]
    );
    assert_eq!(market.lots(bob, share), 6);
    assert!(market.asks(share).is_empty());
}

#[test]
fn cancel_takes_the_order_off_the_book_and_releases_its_reservation() {
    let mut market = Market::new();
    let share = market.share_listed("RIVER-A");
    let alice = market.contributor("alice");
    let bob = market.contributor("bob");
    market.issue(share, &[(alice, 5)]);
    market.deposit(bob, 5_000);
    let ask = market.sell(alice, share, 1_000, 5);
    let bid = market.buy(bob, share, 990, 5);
    assert_eq!(
        (
            market.cash(bob).reserved_minor,
            market.reserved_lots(alice, share)
        ),
        (4_950, 5)
    );

    market.cancel(bob, bid);
    assert_eq!(
        market.cancellations(),
        vec![(bid, 5, CancelReason::Requested)]
    );
    assert_eq!(
        market.cash(bob),
        CashAccount {
            balance_minor: 5_000,
            reserved_minor: 0
        }
    );
    assert!(market.bids(share).is_empty());

    market.cancel(alice, ask);
    assert_eq!(market.reserved_lots(alice, share), 0);
    assert_eq!(market.engine.resting_orders(), 0);
}

#[test]
fn reduce_keeps_the_orders_place_in_the_queue() {
    let mut market = Market::new();
    let share = market.share_listed("RIVER-A");
    let [alice, bob, carol] = ["alice", "bob", "carol"].map(|name| market.contributor(name));
    market.issue(share, &[(alice, 10), (carol, 10)]);
    let alice_ask = market.sell(alice, share, 1_000, 10);
    let carol_ask = market.sell(carol, share, 1_000, 10);

    market.reduce(alice, alice_ask, 6);
    assert!(market.events.contains(&Event::OrderReduced {
        order: alice_ask,
        reduced_by_lots: 6,
        remaining_lots: 4
    }));
    assert_eq!(market.reserved_lots(alice, share), 4);

    // Had the reduction sent Alice to the back of the queue, Carol would fill first.
    market.deposit(bob, 5_000);
    market.buy(bob, share, 1_000, 5);
    assert_eq!(
        market.trades(),
        vec![(alice_ask, 1_000, 4), (carol_ask, 1_000, 1)]
    );
}

#[test]
fn reducing_by_the_whole_remainder_cancels_the_order() {
    let mut market = Market::new();
    let share = market.share_listed("RIVER-A");
    let alice = market.contributor("alice");
    let bob = market.contributor("bob");
    market.issue(share, &[(alice, 10)]);
    market.deposit(bob, 1_000);
    let bid = market.buy(bob, share, 1_000, 1);

    market.reduce(bob, bid, 5);
    assert_eq!(
        market.cancellations(),
        vec![(bid, 1, CancelReason::Requested)]
    );
    assert_eq!(market.cash(bob).reserved_minor, 0);
}

/// Carol asks 2 at 990, then Alice 5 at 1000, then Dave 5 at 1000; Alice (who has cash too)
/// buys 6 at 1000 and so meets her own ask after Carol's.
fn self_trade_setup() -> (Market, InstrumentId, ParticipantId, [OrderId; 3]) {
    let mut market = Market::new();
    let share = market.share_listed("RIVER-A");
    let [alice, carol, dave] = ["alice", "carol", "dave"].map(|name| market.contributor(name));
    market.issue(share, &[(alice, 10), (carol, 10), (dave, 10)]);
    let carol_ask = market.sell(carol, share, 990, 2);
    let alice_ask = market.sell(alice, share, 1_000, 5);
    let dave_ask = market.sell(dave, share, 1_000, 5);
    market.deposit(alice, 6_000);
    (market, share, alice, [carol_ask, alice_ask, dave_ask])
}

#[test]
fn self_trade_cancel_incoming_stops_the_buy_and_keeps_the_resting_order() {
    let (mut market, share, alice, [carol_ask, alice_ask, dave_ask]) = self_trade_setup();
    let bid = market.place(
        alice,
        preventing_self_trade(
            gtc(share, Side::Buy, 1_000, 6),
            SelfTradePrevention::CancelIncoming,
        ),
    );

    assert_eq!(market.trades(), vec![(carol_ask, 990, 2)]);
    assert_eq!(
        market.cancellations(),
        vec![(bid, 4, CancelReason::SelfTrade)]
    );
    assert_eq!(
        (
            market.remaining_lots(alice_ask),
            market.remaining_lots(dave_ask)
        ),
        (Some(5), Some(5))
    );
    assert_eq!(market.lots(alice, share), 12);
    assert_eq!(
        market.cash(alice),
        CashAccount {
            balance_minor: 6_000 - 1_980,
            reserved_minor: 0
        }
    );
}

#[test]
fn self_trade_cancel_resting_removes_the_own_order_and_keeps_matching() {
    let (mut market, share, alice, [carol_ask, alice_ask, dave_ask]) = self_trade_setup();
    market.place(
        alice,
        preventing_self_trade(
            gtc(share, Side::Buy, 1_000, 6),
            SelfTradePrevention::CancelResting,
        ),
    );

    assert_eq!(
        market.trades(),
        vec![(carol_ask, 990, 2), (dave_ask, 1_000, 4)]
    );
    assert_eq!(
        market.cancellations(),
        vec![(alice_ask, 5, CancelReason::SelfTrade)]
    );
    assert_eq!(
        (
            market.remaining_lots(alice_ask),
            market.remaining_lots(dave_ask)
        ),
        (None, Some(1))
    );
    assert_eq!(
        (
            market.lots(alice, share),
            market.reserved_lots(alice, share)
        ),
        (16, 0)
    );
}

#[test]
fn self_trade_cancel_both_removes_the_own_order_and_the_rest_of_the_buy() {
    let (mut market, share, alice, [carol_ask, alice_ask, dave_ask]) = self_trade_setup();
    let bid = market.place(
        alice,
        preventing_self_trade(
            gtc(share, Side::Buy, 1_000, 6),
            SelfTradePrevention::CancelBoth,
        ),
    );

    assert_eq!(market.trades(), vec![(carol_ask, 990, 2)]);
    assert_eq!(
        market.cancellations(),
        vec![
            (alice_ask, 5, CancelReason::SelfTrade),
            (bid, 4, CancelReason::SelfTrade)
        ]
    );
    assert_eq!(
        (
            market.remaining_lots(alice_ask),
            market.remaining_lots(dave_ask)
        ),
        (None, Some(5))
    );
    assert_eq!(
        (
            market.lots(alice, share),
            market.reserved_lots(alice, share)
        ),
        (12, 0)
    );
    assert_eq!(market.cash(alice).reserved_minor, 0);
}

// =====================================================================================
// Capped returns and limited control
// =====================================================================================

#[test]
fn price_ceiling_grows_with_time_since_issue() {
    let mut market = Market::new();
    let share = market.share_listed("RIVER-A");
    let alice = market.contributor("alice");
    market.issue(share, &[(alice, 10)]);

    // ceiling = par × (1 + 5 % × years since issue), in ticks: 1000, 1025, 1050, 1100.
    for (elapsed, ceiling) in [
        (0, 1_000),
        (YEAR_NS / 2, 1_025),
        (YEAR_NS, 1_050),
        (2 * YEAR_NS, 1_100),
    ] {
        market.now = START + elapsed;
        market.expect_reject(
            alice,
            gtc(share, Side::Sell, ceiling + 1, 1),
            PriceAboveCeiling,
        );
        market.sell(alice, share, ceiling, 1);
        assert_eq!(
            market
                .engine
                .instrument(share)
                .unwrap()
                .ceiling_ticks(market.now),
            ceiling
        );
    }
}

#[test]
fn price_floor_is_par_for_withdrawable_shares_and_zero_otherwise() {
    let mut market = Market::new();
    let alice = market.contributor("alice");
    let ordinary = market.share_listed("RIVER-A");
    // No floor is stated: a withdrawable share's floor is par whatever the listing says.
    let spec = InstrumentSpec {
        withdrawable: true,
        ..market.share_spec("RIVER-W")
    };
    let withdrawable = market.list(spec);
    market.issue(ordinary, &[(alice, 1)]);
    market.issue(withdrawable, &[(alice, 2)]);

    market.sell(alice, ordinary, 1, 1);
    market.expect_reject(
        alice,
        gtc(withdrawable, Side::Sell, PAR - 1, 1),
        PriceBelowFloor,
    );
    market.sell(alice, withdrawable, PAR, 1);
}

/// Ten holders of 10 lots each: 100 outstanding, so the default 10 % cap is 10 lots.
fn capped_share_with_ten_holders() -> (Market, InstrumentId, Vec<ParticipantId>) {
    let mut market = Market::new();
    let spec = InstrumentSpec {
        holding_cap_bp: None,
        ..market.share_spec("RIVER-CAP")
    };
    let share = market.list(spec);
    let holders: Vec<ParticipantId> = (0..10)
        .map(|index| market.contributor(&format!("holder {index}")))
        .collect();
    let issue: Vec<(ParticipantId, u64)> = holders.iter().map(|holder| (*holder, 10)).collect();
    market.issue(share, &issue);
    (market, share, holders)
}

#[test]
fn holding_cap_counts_open_buy_orders() {
    let (mut market, share, holders) = capped_share_with_ten_holders();
    let bob = market.contributor("bob");
    market.deposit(bob, 20_000);

    market.buy(bob, share, 990, 6);
    // 6 lots already bid for count: 5 more would make 11 of a 10-lot cap.
    market.expect_reject(bob, gtc(share, Side::Buy, 990, 5), HoldingCapExceeded);
    market.buy(bob, share, 990, 4);

    // A holder at the cap cannot bid for even one more.
    market.deposit(holders[0], 1_000);
    market.expect_reject(
        holders[0],
        gtc(share, Side::Buy, 990, 1),
        HoldingCapExceeded,
    );
}

#[test]
fn holding_cap_counts_subscriptions() {
    let mut market = Market::new();
    let spec = InstrumentSpec {
        holding_cap_bp: None,
        ..market.share_spec("RIVER-CAP")
    };
    let share = market.list(spec);
    let alice = market.contributor("alice");
    market.deposit(alice, 20_000);

    // The cap is measured against the 100 lots the offering would put out.
    let offering = market.open_offering(share, 100, 10);
    market.subscribe(alice, offering, 6);
    market.expect_reject(alice, subscription(offering, 5), HoldingCapExceeded);
    market.subscribe(alice, offering, 4);
}

#[test]
fn cooperative_investment_plan_shares_are_locked_in_for_five_years() {
    let mut market = Market::new();
    let alice = market.contributor("alice");
    let bob = market.contributor("bob");
    let spec = market.cip_share_spec("RIVER-CIP");
    let cip = market.list(spec);
    market.issue(cip, &[(alice, 10)]);

    // To the fifth anniversary (2030-01-01, across the leap day of 2028), never before.
    market.at(anniversary(START, 5) - 1);
    market.expect_reject(alice, gtc(cip, Side::Sell, PAR, 4), LockedIn);

    market.advance(1);
    let ask = market.sell(alice, cip, PAR, 4);
    market.deposit(bob, 4 * PAR);
    market.buy(bob, cip, PAR, 4);
    assert_eq!(market.trades(), vec![(ask, PAR, 4)]);

    // Units bought on the market start a lock-in of their own, to their own fifth anniversary.
    let bought = market.now;
    market.expect_reject(bob, gtc(cip, Side::Sell, PAR, 4), LockedIn);
    market.at(anniversary(bought, 5) - 1);
    market.expect_reject(bob, gtc(cip, Side::Sell, PAR, 4), LockedIn);
    market.advance(1);
    market.sell(bob, cip, PAR, 4);
}

#[test]
fn distributions_are_capped_by_par_times_return_cap_times_period() {
    let mut market = Market::new();
    let share = market.share_listed("RIVER-A");
    let alice = market.contributor("alice");
    market.issue(share, &[(alice, 10)]);

    // One year at 5 % on a par of 1_000 allows 50 per lot.
    market.advance(YEAR_NS);
    market.expect_reject(market.issuer, distribution(share, 51), DistributionAboveCap);
    market.pay_distribution(share, 50);

    // What is paid comes off the accrued return: nothing more until more accrues.
    market.expect_reject(market.issuer, distribution(share, 1), DistributionAboveCap);
    market.advance(YEAR_NS / 2);
    market.expect_reject(market.issuer, distribution(share, 26), DistributionAboveCap);
    market.pay_distribution(share, 25);
}

#[test]
fn distributions_are_paid_pro_rata_to_holders() {
    let mut market = Market::new();
    let share = market.share_listed("RIVER-A");
    let alice = market.contributor("alice");
    let bob = market.contributor("bob");
    market.issue(share, &[(alice, 30), (bob, 10)]);
    // Units offered for sale are still held, and still earn.
    market.sell(alice, share, PAR, 10);

    market.advance(YEAR_NS);
    market.pay_distribution(share, 50);

    assert!(market.events.contains(&Event::DistributionPaid {
        instrument: share,
        issuer: market.issuer,
        per_lot_minor: 50,
        lots_outstanding: 40,
        total_minor: 2_000
    }));
    assert_eq!(
        (
            market.cash(alice).balance_minor,
            market.cash(bob).balance_minor
        ),
        (1_500, 500)
    );
    assert_eq!(market.cash(market.issuer).balance_minor, 40_000 - 2_000);
}

#[test]
fn distribution_cap_stays_exact_when_par_times_cap_times_time_exceeds_128_bits() {
    let mut market = Market::new();
    // A lot's par of 2^62 minor units (2^21 ticks of 2^41, which the listing accepts), first
    // issued in 2025 and read 55 years and 364 days later: par × cap × the nanoseconds into the
    // year needs more than 128 bits, though the cap itself fits a u64.
    let spec = InstrumentSpec {
        tick_size_minor: 1 << 41,
        par_ticks: 1 << 21,
        ..market.share_spec("RIVER-BIG")
    };
    let share = market.list(spec);
    let alice = market.contributor("alice");
    market.issue(share, &[(alice, 1)]);
    market.at(anniversary(START, 55) + 364 * DAY_NS);

    // 2^62 × 5 % × (55 + 364/366) (2080 is a leap year), rounded down, with exact integers.
    let cap_minor: u64 = 12_911_460_828_094_383_566;
    assert_eq!(
        market
            .engine
            .instrument(share)
            .unwrap()
            .distribution_cap_per_lot_minor(market.now),
        cap_minor
    );
    market.expect_reject(
        market.issuer,
        distribution(share, cap_minor + 1),
        DistributionAboveCap,
    );
    // Within the cap, the only limit left is the issuer's cash: the offering's proceeds.
    market.expect_reject(
        market.issuer,
        distribution(share, cap_minor),
        InsufficientCash,
    );
    market.pay_distribution(share, 1 << 62);
    assert_eq!(market.cash(alice).balance_minor, 1 << 62);
}

#[test]
fn maturity_repays_par_retires_units_and_cancels_resting_orders() {
    let mut market = Market::new();
    let spec = market.bond_spec("RIVER-BOND", 3);
    let bond = market.list(spec);
    let [alice, bob, carol] = ["alice", "bob", "carol"].map(|name| market.contributor(name));
    market.issue(bond, &[(alice, 40), (bob, 60)]);
    let ask = market.sell(alice, bond, PAR, 10);
    market.deposit(carol, 5 * 990);
    let bid = market.buy(carol, bond, 990, 5);

    market.advance(3 * YEAR_NS);
    market.ok(market.issuer, repayment(bond));

    let mut cancelled = market.cancellations();
    cancelled.sort_by_key(|(order, _, _)| *order);
    assert_eq!(
        cancelled,
        vec![
            (ask, 10, CancelReason::Matured),
            (bid, 5, CancelReason::Matured)
        ]
    );
    assert!(market.events.contains(&Event::InstrumentMatured {
        instrument: bond,
        lots_retired: 100,
        repaid_minor: 100_000
    }));
    assert_eq!(
        (
            market.cash(alice).balance_minor,
            market.cash(bob).balance_minor
        ),
        (40_000, 60_000)
    );
    assert_eq!((market.lots(alice, bond), market.lots(bob, bond)), (0, 0));
    assert_eq!(
        market.cash(carol),
        CashAccount {
            balance_minor: 4_950,
            reserved_minor: 0
        }
    );
    assert_eq!(market.cash(market.issuer).balance_minor, 0);
    assert_eq!(market.engine.resting_orders(), 0);
    let status = market.engine.instrument(bond).unwrap().status;
    assert!(status.matured && !status.trading_open);
    assert_eq!(
        market.engine.instrument(bond).unwrap().lots_outstanding(),
        0
    );
}

// =====================================================================================
// Cash, roles and the command log
// =====================================================================================

#[test]
fn only_free_cash_may_be_withdrawn() {
    let mut market = Market::new();
    let share = market.share_listed("RIVER-A");
    let alice = market.contributor("alice");
    let bob = market.contributor("bob");
    market.issue(share, &[(bob, 10)]);
    market.deposit(alice, 10_000);
    assert!(market.events.contains(&Event::CashDeposited {
        account: alice,
        amount_minor: 10_000,
        balance_minor: 10_000
    }));
    market.buy(alice, share, 1_000, 6);

    // 6_000 backs the bid: only 4_000 may leave.
    market.expect_reject(GENESIS_OPERATOR, withdrawal(alice, 4_001), InsufficientCash);
    market.withdraw(alice, 4_000);
    assert_eq!(
        market.cash(alice),
        CashAccount {
            balance_minor: 6_000,
            reserved_minor: 6_000
        }
    );
    assert_eq!(market.engine.cash_totals_minor(), (20_000, 4_000));
}

#[test]
fn roles_limit_who_may_do_what() {
    let mut market = Market::new();
    let share = market.share_listed("RIVER-A");
    let alice = market.contributor("alice");
    let regulator = market.regulator("Registry of Co-operatives");
    let funder = market.funder("Bologna Foundation");
    let hillside = market.unaccredited_organization("Hillside Care");
    let offering = market.open_offering(share, 10, 1);

    let refused = [
        (regulator, gtc(share, Side::Buy, PAR, 1)),
        (alice, deposit(alice, 1_000)),
        (market.issuer, gtc(share, Side::Sell, PAR, 1)),
        (funder, subscription(offering, 1)),
        (GENESIS_OPERATOR, subscription(offering, 1)),
        (alice, accreditation(hillside, true)),
        (alice, registration(Role::Operator, "mallory")),
        (funder, trading_status(share, false)),
        (regulator, listing(market.share_spec("RIVER-B"))),
    ];
    for (who, kind) in refused {
        market.expect_reject(who, kind, RoleNotAllowed);
    }
    // What the regulator is there for, it may do.
    market.ok(regulator, accreditation(hillside, true));
}

#[test]
fn regulator_accredits_and_suspends_an_organization() {
    let mut market = Market::new();
    let regulator = market.regulator("Registry of Co-operatives");
    let hillside = market.unaccredited_organization("Hillside Care");
    assert!(!market.engine.participant(hillside).unwrap().accredited);

    market.ok(regulator, accreditation(hillside, true));
    assert!(market.engine.participant(hillside).unwrap().accredited);
    market.ok(regulator, accreditation(hillside, false));
    assert_eq!(
        market.events,
        vec![Event::AccreditationChanged {
            organization: hillside,
            accredited: false
        }]
    );
    assert!(!market.engine.participant(hillside).unwrap().accredited);
}

#[test]
fn rejected_command_leaves_the_state_hash_unchanged_but_for_its_remembered_id() {
    let mut market = Market::new();
    let share = market.share_listed("RIVER-A");
    let alice = market.contributor("alice");
    let bob = market.contributor("bob");
    market.issue(share, &[(bob, 10)]);
    market.deposit(alice, 5_000);
    let hash_of = |engine: &Engine| market_state(engine.snapshot()).hash();
    let before = hash_of(&market.engine);

    // The hash covers everything that decides what the market does next. The engine's memory of
    // command ids is left out here: remembering the rejection is its only permitted effect.
    let command = market.command(alice, gtc(share, Side::Buy, PAR, 10));
    assert_eq!(market.apply(&command).result, Err(InsufficientCash));
    assert_eq!(hash_of(&market.engine), before);
    assert_eq!(
        market
            .engine
            .remembered(alice, command.id)
            .map(|remembered| remembered.result),
        Some(Err(InsufficientCash))
    );
}

#[test]
fn a_restored_engine_prices_orders_like_the_original_even_at_the_last_timestamp() {
    let mut market = Market::new();
    let share = market.share_listed("RIVER-A");
    let (alice, bob) = (market.contributor("alice"), market.contributor("bob"));
    market.issue(share, &[(bob, 1)]);
    market.deposit(alice, 10_000);
    market.now = Timestamp::MAX;
    let mut restored = Engine::from_snapshot(market.engine.snapshot()).expect("a valid snapshot");
    let order = market.command(alice, gtc(share, Side::Buy, PAR, 1));
    let original = market.apply(&order);
    let again = restored.apply(&order, Timestamp::MAX, &mut Vec::new());
    assert_eq!(
        again, original,
        "a restored engine decided differently at the last timestamp"
    );
    assert_eq!(restored.state_hash(), market.engine.state_hash());
}

#[test]
fn repeated_command_id_returns_the_first_outcome_and_applies_nothing() {
    let mut market = Market::new();
    let share = market.share_listed("RIVER-A");
    let bob = market.contributor("bob");
    let alice = market.contributor("alice");
    market.issue(share, &[(alice, 10)]);
    market.deposit(bob, 10_000);

    let command = market.command(bob, gtc(share, Side::Buy, PAR, 4));
    let first = market.apply(&command);
    assert!(matches!(
        first,
        Outcome {
            result: Ok(Ack::Order(_)),
            replayed: None
        }
    ));
    let first_sequence = market.engine.commands_applied();
    let state = market_state(market.engine.snapshot());

    let again = market.apply(&command);
    assert_eq!(
        again,
        Outcome {
            result: first.result,
            replayed: Some(first_sequence)
        }
    );
    assert!(market.events.is_empty());
    assert_eq!(
        market.cash(bob),
        CashAccount {
            balance_minor: 10_000,
            reserved_minor: 4_000
        }
    );
    assert_eq!(market.engine.resting_orders(), 1);
    assert_eq!(market_state(market.engine.snapshot()), state);
}

#[test]
fn repeated_id_of_a_rejected_command_is_still_rejected() {
    let mut market = Market::new();
    let share = market.share_listed("RIVER-A");
    let bob = market.contributor("bob");
    let alice = market.contributor("alice");
    market.issue(share, &[(alice, 10)]);

    let command = market.command(bob, gtc(share, Side::Buy, PAR, 4));
    assert_eq!(market.apply(&command).result, Err(InsufficientCash));
    let first_sequence = market.engine.commands_applied();
    // The retry would now succeed as a new command, but a retry is the same command: same answer.
    market.deposit(bob, 10_000);
    assert_eq!(
        market.apply(&command),
        Outcome {
            result: Err(InsufficientCash),
            replayed: Some(first_sequence)
        }
    );
    assert_eq!(market.cash(bob).reserved_minor, 0);
    assert_eq!(market.engine.resting_orders(), 0);
}

// =====================================================================================
// One scenario per rejection reason the engine produces
// =====================================================================================

mod rejection {
    use super::*;

    #[test]
    fn unknown_participant() {
        let mut market = Market::new();
        let stranger = ParticipantId(99);
        market.expect_reject(stranger, deposit(stranger, 100), UnknownParticipant);
    }

    #[test]
    fn role_not_allowed() {
        let mut market = Market::new();
        let share = market.share_listed("RIVER-A");
        let regulator = market.regulator("Registry of Co-operatives");
        market.expect_reject(regulator, gtc(share, Side::Buy, PAR, 1), RoleNotAllowed);
    }

    #[test]
    fn unknown_account() {
        let mut market = Market::new();
        market.expect_reject(
            GENESIS_OPERATOR,
            deposit(ParticipantId(99), 100),
            UnknownAccount,
        );
    }

    #[test]
    fn unknown_instrument() {
        let mut market = Market::new();
        let alice = market.contributor("alice");
        market.deposit(alice, 10_000);
        market.expect_reject(
            alice,
            gtc(InstrumentId(7), Side::Buy, PAR, 1),
            UnknownInstrument,
        );
    }

    #[test]
    fn unknown_order() {
        let mut market = Market::new();
        let alice = market.contributor("alice");
        market.expect_reject(alice, cancellation(OrderId(1)), UnknownOrder);
        market.expect_reject(alice, reduction(OrderId(1), 1), UnknownOrder);
    }

    #[test]
    fn unknown_offering() {
        let mut market = Market::new();
        let alice = market.contributor("alice");
        market.deposit(alice, 10_000);
        market.expect_reject(alice, subscription(OfferingId(0), 1), UnknownOffering);
    }

    #[test]
    fn not_order_owner() {
        let mut market = Market::new();
        let share = market.share_listed("RIVER-A");
        let alice = market.contributor("alice");
        let bob = market.contributor("bob");
        market.issue(share, &[(alice, 5)]);
        let ask = market.sell(alice, share, PAR, 5);
        market.expect_reject(bob, cancellation(ask), NotOrderOwner);
        market.expect_reject(bob, reduction(ask, 1), NotOrderOwner);
    }

    #[test]
    fn not_issuer() {
        let mut market = Market::new();
        let share = market.share_listed("RIVER-A");
        let hillside = market.organization("Hillside Care");
        market.expect_reject(hillside, offering_of(share, 10, 1), NotIssuer);
        market.expect_reject(hillside, distribution(share, 1), NotIssuer);
    }

    #[test]
    fn not_an_organization() {
        let mut market = Market::new();
        let alice = market.contributor("alice");
        let regulator = market.regulator("Registry of Co-operatives");
        let spec = InstrumentSpec {
            issuer: alice,
            ..market.share_spec("ALICE-A")
        };
        market.expect_reject(GENESIS_OPERATOR, listing(spec), NotAnOrganization);
        market.expect_reject(regulator, accreditation(alice, true), NotAnOrganization);
    }

    #[test]
    fn name_invalid() {
        let mut market = Market::new();
        for name in [String::new(), "   ".to_string(), "x".repeat(201)] {
            market.expect_reject(
                GENESIS_OPERATOR,
                registration(Role::Contributor, &name),
                NameInvalid,
            );
        }
    }

    fn expect_listing_rejected(market: &mut Market, spec: InstrumentSpec, reason: RejectReason) {
        market.expect_reject(GENESIS_OPERATOR, listing(spec), reason);
    }

    #[test]
    fn symbol_invalid() {
        let mut market = Market::new();
        for symbol in ["", "river a", "river-a", "RIVER-SHARES-CLASS-A"] {
            let spec = market.share_spec(symbol);
            expect_listing_rejected(&mut market, spec, SymbolInvalid);
        }
    }

    #[test]
    fn symbol_taken() {
        let mut market = Market::new();
        market.share_listed("RIVER-A");
        let spec = market.share_spec("RIVER-A");
        expect_listing_rejected(&mut market, spec, SymbolTaken);
    }

    #[test]
    fn tick_size_invalid() {
        let mut market = Market::new();
        let spec = InstrumentSpec {
            tick_size_minor: 0,
            ..market.share_spec("RIVER-A")
        };
        expect_listing_rejected(&mut market, spec, TickSizeInvalid);
    }

    #[test]
    fn lot_size_invalid() {
        let mut market = Market::new();
        let spec = InstrumentSpec {
            lot_size_units: 0,
            ..market.share_spec("RIVER-A")
        };
        expect_listing_rejected(&mut market, spec, LotSizeInvalid);
    }

    #[test]
    fn par_invalid() {
        let mut market = Market::new();
        let price_levels_max = u64::from(market.engine.config().price_levels_max);
        for par_ticks in [0, price_levels_max] {
            let spec = InstrumentSpec {
                par_ticks,
                ..market.share_spec("RIVER-A")
            };
            expect_listing_rejected(&mut market, spec, ParInvalid);
        }
    }

    #[test]
    fn return_cap_invalid() {
        let mut market = Market::new();
        let spec = InstrumentSpec {
            return_cap_bp: 10_001,
            ..market.share_spec("RIVER-A")
        };
        expect_listing_rejected(&mut market, spec, ReturnCapInvalid);
    }

    #[test]
    fn price_floor_invalid() {
        let mut market = Market::new();
        let spec = InstrumentSpec {
            price_floor_ticks: PAR + 1,
            ..market.share_spec("RIVER-A")
        };
        expect_listing_rejected(&mut market, spec, PriceFloorInvalid);
    }

    #[test]
    fn maturity_invalid() {
        let mut market = Market::new();
        let bond_without_maturity = InstrumentSpec {
            maturity_time: None,
            ..market.bond_spec("RIVER-BOND", 3)
        };
        let bond_maturing_at_issue = InstrumentSpec {
            maturity_time: Some(market.now),
            ..market.bond_spec("RIVER-BOND", 3)
        };
        let share_with_maturity = InstrumentSpec {
            maturity_time: Some(market.now + YEAR_NS),
            ..market.share_spec("RIVER-A")
        };
        let plan_bond = InstrumentSpec {
            cooperative_investment_plan: true,
            ..market.bond_spec("RIVER-BOND", 3)
        };
        for spec in [
            bond_without_maturity,
            bond_maturing_at_issue,
            share_with_maturity,
            plan_bond,
        ] {
            expect_listing_rejected(&mut market, spec, MaturityInvalid);
        }
    }

    #[test]
    fn holding_cap_invalid() {
        let mut market = Market::new();
        for holding_cap_bp in [0, 10_001] {
            let spec = InstrumentSpec {
                holding_cap_bp: Some(holding_cap_bp),
                ..market.share_spec("RIVER-A")
            };
            expect_listing_rejected(&mut market, spec, HoldingCapInvalid);
        }
    }

    #[test]
    fn tax_credit_invalid() {
        let mut market = Market::new();
        let spec = InstrumentSpec {
            tax_credit_bp: Some(10_001),
            ..market.cip_share_spec("RIVER-CIP")
        };
        expect_listing_rejected(&mut market, spec, TaxCreditInvalid);
    }

    #[test]
    fn quantity_zero() {
        let mut market = Market::new();
        let share = market.share_listed("RIVER-A");
        let alice = market.contributor("alice");
        market.issue(share, &[(alice, 5)]);
        let ask = market.sell(alice, share, PAR, 5);
        market.expect_reject(alice, gtc(share, Side::Sell, PAR, 0), QuantityZero);
        market.expect_reject(alice, reduction(ask, 0), QuantityZero);
        market.expect_reject(market.issuer, offering_of(share, 0, 0), QuantityZero);
    }

    #[test]
    fn quantity_too_large() {
        let mut market = Market::new();
        let share = market.share_listed("RIVER-A");
        let alice = market.contributor("alice");
        let too_many = market.engine.config().order_lots_max + 1;
        market.expect_reject(
            alice,
            gtc(share, Side::Buy, PAR, too_many),
            QuantityTooLarge,
        );
        market.expect_reject(
            market.issuer,
            offering_of(share, too_many, 1),
            QuantityTooLarge,
        );
    }

    #[test]
    fn quantity_at_the_maximum_is_accepted_and_one_more_is_not() {
        // A small maximum, so that cash and the cap do not stand in the way.
        let mut market = Market::with_config(|config| config.order_lots_max = 50);
        let share = market.share_listed("RIVER-A");
        let [alice, bob] = ["alice", "bob"].map(|name| market.contributor(name));
        market.deposit(alice, 200 * PAR);
        market.deposit(bob, 200 * PAR);
        market.expect_reject(market.issuer, offering_of(share, 51, 1), QuantityTooLarge);
        let offering = market.open_offering(share, 50, 1);
        market.expect_reject(alice, subscription(offering, 51), QuantityTooLarge);
        market.subscribe(alice, offering, 50);
        market.close_offering(offering);
        market.expect_reject(alice, gtc(share, Side::Sell, PAR, 51), QuantityTooLarge);
        market.sell(alice, share, PAR, 50);
        market.expect_reject(bob, gtc(share, Side::Buy, PAR, 51), QuantityTooLarge);
        market.buy(bob, share, PAR, 50);
        assert_eq!(market.lots(bob, share), 50);
    }

    #[test]
    fn price_not_positive() {
        let mut market = Market::new();
        let share = market.share_listed("RIVER-A");
        let alice = market.contributor("alice");
        market.issue(share, &[(alice, 5)]);
        market.expect_reject(alice, gtc(share, Side::Sell, 0, 1), PriceNotPositive);
    }

    #[test]
    fn price_above_ceiling() {
        let mut market = Market::new();
        let share = market.share_listed("RIVER-A");
        let alice = market.contributor("alice");
        market.deposit(alice, 10_000);
        // At issue nothing has accrued: the ceiling is par.
        market.expect_reject(alice, gtc(share, Side::Buy, PAR + 1, 1), PriceAboveCeiling);
    }

    #[test]
    fn price_below_floor() {
        let mut market = Market::new();
        let spec = InstrumentSpec {
            price_floor_ticks: PAR,
            ..market.share_spec("RIVER-W")
        };
        let withdrawable = market.list(spec);
        let alice = market.contributor("alice");
        market.issue(withdrawable, &[(alice, 5)]);
        market.expect_reject(
            alice,
            gtc(withdrawable, Side::Sell, PAR - 1, 1),
            PriceBelowFloor,
        );
    }

    #[test]
    fn amount_zero() {
        let mut market = Market::new();
        let alice = market.contributor("alice");
        market.expect_reject(GENESIS_OPERATOR, deposit(alice, 0), AmountZero);
        market.expect_reject(GENESIS_OPERATOR, withdrawal(alice, 0), AmountZero);
    }

    #[test]
    fn amount_too_large() {
        let mut market = Market::new();
        let alice = market.contributor("alice");
        let bob = market.contributor("bob");
        // All cash in circulation must fit one account, so that no credit can overflow.
        market.deposit(alice, u64::MAX - 1);
        market.expect_reject(GENESIS_OPERATOR, deposit(bob, 2), AmountTooLarge);
        market.deposit(bob, 1);
    }

    #[test]
    fn instrument_matured() {
        let mut market = Market::new();
        let spec = market.bond_spec("RIVER-BOND", 1);
        let bond = market.list(spec);
        let alice = market.contributor("alice");
        market.issue(bond, &[(alice, 5)]);
        market.advance(YEAR_NS);
        market.ok(market.issuer, repayment(bond));

        market.expect_reject(alice, gtc(bond, Side::Buy, PAR, 1), InstrumentMatured);
        market.expect_reject(market.issuer, repayment(bond), InstrumentMatured);
        market.expect_reject(market.issuer, offering_of(bond, 5, 1), InstrumentMatured);
        market.expect_reject(
            GENESIS_OPERATOR,
            trading_status(bond, true),
            InstrumentMatured,
        );
    }

    #[test]
    fn trading_closed() {
        let mut market = Market::new();
        let share = market.share_listed("RIVER-A");
        let alice = market.contributor("alice");
        market.issue(share, &[(alice, 5)]);
        market.ok(GENESIS_OPERATOR, trading_status(share, false));
        market.expect_reject(alice, gtc(share, Side::Sell, PAR, 1), TradingClosed);

        market.ok(GENESIS_OPERATOR, trading_status(share, true));
        market.sell(alice, share, PAR, 1);
    }

    #[test]
    fn insufficient_cash() {
        let mut market = Market::new();
        let share = market.share_listed("RIVER-A");
        let alice = market.contributor("alice");
        let bob = market.contributor("bob");
        market.issue(share, &[(bob, 10)]);
        market.deposit(alice, 2 * PAR - 1);
        market.expect_reject(alice, gtc(share, Side::Buy, PAR, 2), InsufficientCash);
        let offering = market.open_offering(share, 10, 1);
        market.expect_reject(alice, subscription(offering, 2), InsufficientCash);
        market.expect_reject(
            GENESIS_OPERATOR,
            withdrawal(alice, 2 * PAR),
            InsufficientCash,
        );
    }

    #[test]
    fn insufficient_units() {
        let mut market = Market::new();
        let share = market.share_listed("RIVER-A");
        let alice = market.contributor("alice");
        market.issue(share, &[(alice, 5)]);
        // No naked selling: units already offered cannot be offered again.
        market.sell(alice, share, PAR, 3);
        market.expect_reject(alice, gtc(share, Side::Sell, PAR, 3), InsufficientUnits);
        let bob = market.contributor("bob");
        market.expect_reject(bob, gtc(share, Side::Sell, PAR, 1), InsufficientUnits);
    }

    #[test]
    fn holding_cap_exceeded() {
        let mut market = Market::new();
        let spec = InstrumentSpec {
            holding_cap_bp: None,
            ..market.share_spec("RIVER-CAP")
        };
        let share = market.list(spec);
        let alice = market.contributor("alice");
        market.deposit(alice, 20_000);
        let offering = market.open_offering(share, 100, 10);
        market.expect_reject(alice, subscription(offering, 11), HoldingCapExceeded);
    }

    #[test]
    fn locked_in() {
        let mut market = Market::new();
        let spec = market.cip_share_spec("RIVER-CIP");
        let cip = market.list(spec);
        let alice = market.contributor("alice");
        market.issue(cip, &[(alice, 5)]);
        market.expect_reject(alice, gtc(cip, Side::Sell, PAR, 1), LockedIn);
    }

    #[test]
    fn fill_or_kill_unfillable() {
        let mut market = Market::new();
        let share = market.share_listed("RIVER-A");
        let alice = market.contributor("alice");
        let bob = market.contributor("bob");
        market.issue(share, &[(alice, 5), (bob, 5)]);
        market.sell(alice, share, PAR, 2);
        // No longer a rejection: an unfillable fill-or-kill order is accepted and killed, as an
        // immediate-or-cancel order that trades nothing is.
        let killed = market.place(bob, fok(share, Side::Sell, 900, 1));
        assert_eq!(
            market.cancellations(),
            vec![(killed, 1, CancelReason::FillOrKillUnfillable)]
        );
        market.deposit(bob, 3 * PAR);
        let killed = market.place(bob, fok(share, Side::Buy, PAR, 3));
        assert_eq!(
            market.cancellations(),
            vec![(killed, 3, CancelReason::FillOrKillUnfillable)]
        );
        assert_eq!(
            market.cash(bob).reserved_minor,
            0,
            "a killed order reserves nothing"
        );
    }

    #[test]
    fn order_not_resting() {
        let mut market = Market::new();
        let share = market.share_listed("RIVER-A");
        let [alice, bob] = ["alice", "bob"].map(|name| market.contributor(name));
        market.issue(share, &[(alice, 5)]);
        let filled = market.sell(alice, share, PAR, 2);
        let cancelled = market.sell(alice, share, PAR, 1);
        market.cancel(alice, cancelled);
        market.deposit(bob, 2 * PAR);
        market.place(bob, ioc(share, Side::Buy, PAR, 2));
        // Filled, cancelled: the engine gave these ids, and says they are no longer resting.
        for order in [filled, cancelled] {
            market.expect_reject(alice, cancellation(order), OrderNotResting);
            market.expect_reject(alice, reduction(order, 1), OrderNotResting);
        }
        // An id it never gave is unknown.
        market.expect_reject(
            alice,
            cancellation(OrderId(market.engine.snapshot().next_order_id)),
            UnknownOrder,
        );
    }

    #[test]
    fn maturity_reached() {
        let mut market = Market::new();
        let spec = market.bond_spec("RIVER-BOND", 1);
        let bond = market.list(spec);
        market.at(anniversary(START, 1));
        market.expect_reject(market.issuer, offering_of(bond, 10, 1), MaturityReached);
    }

    #[test]
    fn lock_in_invalid() {
        let mut market = Market::new();
        let spec = InstrumentSpec {
            lock_in_years: Some(101),
            ..market.share_spec("RIVER-A")
        };
        expect_listing_rejected(&mut market, spec, LockInInvalid);
    }

    #[test]
    fn withdrawal_terms_invalid() {
        let mut market = Market::new();
        let withdrawable_bond = InstrumentSpec {
            withdrawable: true,
            ..market.bond_spec("RIVER-BOND", 3)
        };
        let notice_too_long = InstrumentSpec {
            withdrawable: true,
            withdrawal_notice_days: 3_661,
            ..market.share_spec("RIVER-A")
        };
        let notice_without_withdrawal = InstrumentSpec {
            withdrawal_notice_days: 30,
            ..market.share_spec("RIVER-A")
        };
        for spec in [
            withdrawable_bond,
            notice_too_long,
            notice_without_withdrawal,
        ] {
            expect_listing_rejected(&mut market, spec, WithdrawalTermsInvalid);
        }
    }

    #[test]
    fn book_full() {
        let mut market = Market::with_config(|config| config.orders_per_book_max = 2);
        let share = market.share_listed("RIVER-A");
        let alice = market.contributor("alice");
        market.issue(share, &[(alice, 5)]);
        market.sell(alice, share, PAR, 1);
        market.sell(alice, share, PAR, 1);
        market.expect_reject(alice, gtc(share, Side::Sell, PAR, 1), BookFull);
        // An order that cannot rest does not need room in the book.
        market.place(alice, ioc(share, Side::Sell, PAR, 1));
        // Nor does a good-till-cancelled order that trades in full at once.
        let bob = market.contributor("bob");
        market.deposit(bob, 100 * PAR);
        market.place(bob, gtc(share, Side::Buy, PAR, 1));
        assert_eq!(
            market.trades().len(),
            1,
            "the buy traded in full against a resting sell"
        );
        // Once the book has room again, an order that would rest is welcome.
        market.sell(alice, share, PAR, 1);
    }

    #[test]
    fn offering_already_open() {
        let mut market = Market::new();
        let spec = market.bond_spec("RIVER-BOND", 1);
        let bond = market.list(spec);
        let alice = market.contributor("alice");
        market.issue(bond, &[(alice, 5)]);
        market.open_offering(bond, 10, 1);
        market.expect_reject(market.issuer, offering_of(bond, 10, 1), OfferingAlreadyOpen);
        // Nor may a bond be repaid while contributors are still subscribing to it.
        market.advance(YEAR_NS);
        market.expect_reject(market.issuer, repayment(bond), OfferingAlreadyOpen);
    }

    #[test]
    fn offering_not_open() {
        let mut market = Market::new();
        let share = market.share_listed("RIVER-A");
        let alice = market.contributor("alice");
        market.deposit(alice, 10_000);
        let offering = market.open_offering(share, 10, 1);
        market.subscribe(alice, offering, 2);
        market.close_offering(offering);
        market.expect_reject(alice, subscription(offering, 1), OfferingNotOpen);
        market.expect_reject(market.issuer, closing(offering), OfferingNotOpen);
    }

    #[test]
    fn offering_oversubscribed() {
        let mut market = Market::new();
        let share = market.share_listed("RIVER-A");
        let alice = market.contributor("alice");
        let bob = market.contributor("bob");
        market.deposit(alice, 10_000);
        market.deposit(bob, 10_000);
        let offering = market.open_offering(share, 10, 1);
        market.subscribe(alice, offering, 7);
        market.expect_reject(bob, subscription(offering, 4), OfferingOversubscribed);
        market.subscribe(bob, offering, 3);
    }

    #[test]
    fn offering_minimum_invalid() {
        let mut market = Market::new();
        let share = market.share_listed("RIVER-A");
        for minimum_lots in [0, 11] {
            market.expect_reject(
                market.issuer,
                offering_of(share, 10, minimum_lots),
                OfferingMinimumInvalid,
            );
        }
    }

    #[test]
    fn subscriptions_full() {
        let mut market = Market::with_config(|config| config.subscriptions_per_offering_max = 1);
        let share = market.share_listed("RIVER-A");
        let alice = market.contributor("alice");
        let bob = market.contributor("bob");
        market.deposit(alice, 10_000);
        market.deposit(bob, 10_000);
        let offering = market.open_offering(share, 10, 1);
        market.subscribe(alice, offering, 1);
        market.expect_reject(bob, subscription(offering, 1), SubscriptionsFull);
    }

    #[test]
    fn distribution_above_cap() {
        let mut market = Market::new();
        let share = market.share_listed("RIVER-A");
        let alice = market.contributor("alice");
        market.issue(share, &[(alice, 10)]);
        market.advance(YEAR_NS);
        market.expect_reject(market.issuer, distribution(share, 51), DistributionAboveCap);
    }

    #[test]
    fn no_units_outstanding() {
        let mut market = Market::new();
        let share = market.share_listed("RIVER-A");
        market.deposit(market.issuer, 10_000);
        market.advance(YEAR_NS);
        market.expect_reject(market.issuer, distribution(share, 10), NoUnitsOutstanding);
    }

    #[test]
    fn not_matured() {
        let mut market = Market::new();
        let spec = market.bond_spec("RIVER-BOND", 3);
        let bond = market.list(spec);
        let alice = market.contributor("alice");
        market.issue(bond, &[(alice, 5)]);
        market.advance(3 * YEAR_NS - 1);
        market.expect_reject(market.issuer, repayment(bond), NotMatured);
    }

    #[test]
    fn does_not_mature() {
        let mut market = Market::new();
        let share = market.share_listed("RIVER-A");
        let alice = market.contributor("alice");
        market.issue(share, &[(alice, 5)]);
        market.advance(50 * YEAR_NS);
        market.expect_reject(market.issuer, repayment(share), DoesNotMature);
    }

    #[test]
    fn participants_full() {
        // The genesis operator and the issuer take two places.
        let mut market = Market::with_config(|config| config.participants_max = 3);
        market.contributor("alice");
        market.expect_reject(
            GENESIS_OPERATOR,
            registration(Role::Contributor, "bob"),
            ParticipantsFull,
        );
    }

    #[test]
    fn instruments_full() {
        let mut market = Market::with_config(|config| config.instruments_max = 1);
        market.share_listed("RIVER-A");
        let spec = market.share_spec("RIVER-B");
        expect_listing_rejected(&mut market, spec, InstrumentsFull);
    }

    #[test]
    fn orders_full() {
        // Each book has room; the market as a whole does not.
        let mut market = Market::with_config(|config| {
            config.orders_max = 2;
            config.orders_per_book_max = 10;
        });
        let river = market.share_listed("RIVER-A");
        let hill = market.share_listed("HILL-A");
        let alice = market.contributor("alice");
        market.issue(river, &[(alice, 5)]);
        market.issue(hill, &[(alice, 5)]);
        market.sell(alice, river, PAR, 1);
        market.sell(alice, river, PAR, 1);
        market.expect_reject(alice, gtc(hill, Side::Sell, PAR, 1), OrdersFull);
    }

    #[test]
    fn no_effect() {
        let mut market = Market::new();
        let share = market.share_listed("RIVER-A");
        let regulator = market.regulator("Registry of Co-operatives");
        let hillside = market.unaccredited_organization("Hillside Care");
        market.expect_reject(GENESIS_OPERATOR, trading_status(share, true), NoEffect);
        market.expect_reject(regulator, accreditation(hillside, false), NoEffect);
    }

    #[test]
    fn request_id_reused() {
        let mut market = Market::new();
        let alice = market.contributor("alice");
        let bob = market.contributor("bob");
        let first = market.command(GENESIS_OPERATOR, deposit(alice, 100));
        assert!(market.apply(&first).result.is_ok());
        // The same id with another amount, another account or another kind of command is not a
        // retry: it is refused, and changes nothing (alice keeps 1.00, bob gets nothing).
        for kind in [
            deposit(alice, 50_000),
            deposit(bob, 100),
            withdrawal(alice, 100),
        ] {
            let reused = Command {
                id: first.id,
                participant: GENESIS_OPERATOR,
                kind,
            };
            assert_eq!(market.apply(&reused), Outcome::fresh(Err(RequestIdReused)));
            assert!(market.events.is_empty());
        }
        assert_eq!(
            (
                market.cash(alice).balance_minor,
                market.cash(bob).balance_minor
            ),
            (100, 0)
        );
        // The first command, repeated exactly, is still a retry.
        assert!(market.apply(&first).is_replay());
        // Another participant may use the same id for anything: ids are per participant.
        let bobs = Command {
            id: first.id,
            participant: bob,
            kind: gtc(InstrumentId(0), Side::Buy, PAR, 1),
        };
        assert_eq!(market.apply(&bobs).result, Err(UnknownInstrument));
    }

    #[test]
    fn participant_suspended() {
        let mut market = Market::new();
        let share = market.share_listed("RIVER-A");
        let alice = market.contributor("alice");
        market.deposit(alice, 10_000);
        market.ok(GENESIS_OPERATOR, suspension(alice, true));
        market.expect_reject(alice, gtc(share, Side::Buy, PAR, 1), ParticipantSuspended);
    }

    #[test]
    fn unknown_credential() {
        let mut market = Market::new();
        market.expect_reject(
            GENESIS_OPERATOR,
            CommandKind::RevokeCredential {
                credential: CredentialId(7),
            },
            UnknownCredential,
        );
    }

    #[test]
    fn credentials_full() {
        let mut market = Market::with_config(|config| config.credentials_per_participant_max = 2);
        let alice = market.contributor("alice");
        market.ok(GENESIS_OPERATOR, credential(alice, 1, false));
        market.ok(GENESIS_OPERATOR, credential(alice, 2, false));
        market.expect_reject(
            GENESIS_OPERATOR,
            credential(alice, 3, false),
            CredentialsFull,
        );
        // A rotation replaces the live ones instead of adding to them.
        market.ok(GENESIS_OPERATOR, credential(alice, 3, true));
        assert_eq!(market.engine.live_credentials_of(alice).len(), 1);
    }

    #[test]
    fn cannot_suspend_self() {
        let mut market = Market::new();
        let deputy = market.register(Role::Operator, "deputy operator");
        market.expect_reject(deputy, suspension(deputy, true), CannotSuspendSelf);
        market.expect_reject(
            deputy,
            suspension(GENESIS_OPERATOR, true),
            CannotSuspendSelf,
        );
    }
}

// =====================================================================================
// Identity: credentials, suspension, and the per-participant retry window
// =====================================================================================

fn suspension(participant: ParticipantId, suspended: bool) -> CommandKind {
    CommandKind::SetParticipantStatus {
        participant,
        suspended,
    }
}

fn credential(participant: ParticipantId, fill: u8, replace_existing: bool) -> CommandKind {
    CommandKind::IssueCredential {
        participant,
        token_hash: [fill; 32],
        replace_existing,
    }
}

mod identity {
    use super::*;

    #[test]
    fn credentials_are_issued_revoked_and_rotated_with_their_events() {
        let mut market = Market::new();
        let alice = market.contributor("alice");
        let Ack::Credential(first) = market.ok(GENESIS_OPERATOR, credential(alice, 1, false))
        else {
            panic!("no credential")
        };
        assert_eq!(
            market.events,
            vec![Event::CredentialIssued {
                credential: first,
                participant: alice,
                role: Role::Contributor
            }]
        );
        let Ack::Credential(second) = market.ok(GENESIS_OPERATOR, credential(alice, 2, false))
        else {
            panic!("no credential")
        };
        assert_eq!(market.engine.live_credentials_of(alice), &[first, second]);

        market.ok(
            GENESIS_OPERATOR,
            CommandKind::RevokeCredential { credential: first },
        );
        assert_eq!(
            market.events,
            vec![Event::CredentialRevoked {
                credential: first,
                participant: alice
            }]
        );
        assert_eq!(
            market.engine.credential(first).unwrap().revoked_at,
            Some(market.now)
        );
        market.expect_reject(
            GENESIS_OPERATOR,
            CommandKind::RevokeCredential { credential: first },
            NoEffect,
        );

        let Ack::Credential(third) = market.ok(GENESIS_OPERATOR, credential(alice, 3, true)) else {
            panic!("no credential")
        };
        assert_eq!(
            market.events,
            vec![
                Event::CredentialRevoked {
                    credential: second,
                    participant: alice
                },
                Event::CredentialIssued {
                    credential: third,
                    participant: alice,
                    role: Role::Contributor
                },
            ]
        );
        assert_eq!(market.engine.live_credentials_of(alice), &[third]);
        assert_eq!(market.engine.credential(third).unwrap().token_hash, [3; 32]);
        market.expect_reject(alice, credential(alice, 4, false), RoleNotAllowed);
    }

    #[test]
    fn suspension_cancels_resting_orders_keeps_balances_and_reinstatement_restores_trading() {
        let mut market = Market::new();
        let share = market.share_listed("RIVER-A");
        let alice = market.contributor("alice");
        let bob = market.contributor("bob");
        market.issue(share, &[(bob, 10)]);
        market.deposit(alice, 10_000);
        let bid = market.buy(alice, share, PAR, 4);
        assert_eq!(market.cash(alice).reserved_minor, 4_000);

        market.ok(GENESIS_OPERATOR, suspension(alice, true));
        assert_eq!(
            market.events,
            vec![
                Event::ParticipantStatusChanged {
                    participant: alice,
                    suspended: true
                },
                Event::OrderCancelled {
                    order: bid,
                    owner: alice,
                    instrument: share,
                    remaining_lots: 4,
                    reason: CancelReason::OwnerSuspended
                },
            ]
        );
        assert_eq!(
            market.cash(alice),
            CashAccount {
                balance_minor: 10_000,
                reserved_minor: 0
            }
        );
        assert_eq!(market.engine.resting_orders(), 0);
        market.expect_reject(alice, gtc(share, Side::Buy, PAR, 1), ParticipantSuspended);
        market.expect_reject(GENESIS_OPERATOR, suspension(alice, true), NoEffect);

        market.ok(GENESIS_OPERATOR, suspension(alice, false));
        assert_eq!(
            market.events,
            vec![Event::ParticipantStatusChanged {
                participant: alice,
                suspended: false
            }]
        );
        market.buy(alice, share, PAR, 1);
    }

    #[test]
    fn each_participant_keeps_its_own_retry_window_whatever_others_send() {
        // Windows of 8 ids per participant: each one's last 4 are always remembered.
        let mut market = Market::with_config(|config| config.command_ids_per_participant_max = 8);
        let alice = market.contributor("alice");
        let bob = market.contributor("bob");
        market.deposit(alice, 10_000);
        let alices = market.command(alice, withdrawal_request_of_nothing());
        let first = market.apply(&alices);
        // Bob floods the market with a thousand commands of his own.
        for _ in 0..1_000 {
            let command = market.command(bob, withdrawal_request_of_nothing());
            market.apply(&command);
        }
        let again = market.apply(&alices);
        assert_eq!(again.result, first.result);
        assert!(
            again.is_replay(),
            "alice's id was forgotten because bob was busy"
        );
        // Alice's own traffic does move her window: after 8 more of hers, the first is gone.
        for _ in 0..8 {
            let command = market.command(alice, withdrawal_request_of_nothing());
            market.apply(&command);
        }
        assert!(!market.apply(&alices).is_replay());
    }

    /// A command every contributor may send and that is refused without effect.
    fn withdrawal_request_of_nothing() -> CommandKind {
        CommandKind::CancelOrder {
            order: OrderId(u64::MAX),
        }
    }
}

// =====================================================================================
// Reasons only the decimal edge produces: refused, never rounded
// =====================================================================================

mod decimal_edge {
    use mutua_engine::units::{cash_to_minor, price_to_ticks, units_to_lots};
    use mutua_engine::RejectReason::*;
    use rust_decimal::Decimal;

    /// `mantissa` × 10^-`scale`, e.g. `decimal(1025, 2)` is 10.25.
    fn decimal(mantissa: i64, scale: u32) -> Decimal {
        Decimal::new(mantissa, scale)
    }

    #[test]
    fn price_off_tick() {
        // A five-cent tick in a two-decimal currency: 10.25 is 205 ticks, 10.26 and 10.255 are not.
        assert_eq!(price_to_ticks(decimal(1025, 2), 5, 2), Ok(205));
        assert_eq!(price_to_ticks(decimal(1026, 2), 5, 2), Err(PriceOffTick));
        assert_eq!(price_to_ticks(decimal(10255, 3), 5, 2), Err(PriceOffTick));
    }

    #[test]
    fn quantity_off_lot() {
        // Lots of ten units: 30 units is three lots, 35 is not a whole number of lots.
        assert_eq!(units_to_lots(decimal(30, 0), 10), Ok(3));
        assert_eq!(units_to_lots(decimal(35, 0), 10), Err(QuantityOffLot));
        assert_eq!(units_to_lots(decimal(305, 1), 10), Err(QuantityOffLot));
        // A tiny quantity over a huge lot would round to zero lots in decimal division: refused.
        assert_eq!(
            units_to_lots(decimal(1, 10), 10_000_000_000_000_000_000),
            Err(QuantityOffLot)
        );
        assert_eq!(units_to_lots(decimal(1, 10), u64::MAX), Err(QuantityOffLot));
    }

    #[test]
    fn amount_off_minor_unit() {
        assert_eq!(cash_to_minor(decimal(1234, 2), 2), Ok(1_234));
        assert_eq!(cash_to_minor(decimal(12345, 3), 2), Err(AmountOffMinorUnit));
    }
}

// =====================================================================================
// Coverage
// =====================================================================================

/// The scenario that provokes each reason. The match has no wildcard, so a new reason does not
/// compile until someone names the scenario that proves it.
fn scenario_for(reason: RejectReason) -> &'static str {
    match reason {
        UnknownParticipant => "unknown_participant",
        RoleNotAllowed => "role_not_allowed",
        UnknownAccount => "unknown_account",
        UnknownInstrument => "unknown_instrument",
        UnknownOrder => "unknown_order",
        UnknownOffering => "unknown_offering",
        NotOrderOwner => "not_order_owner",
        NotIssuer => "not_issuer",
        NotAnOrganization => "not_an_organization",
        NameInvalid => "name_invalid",
        SymbolInvalid => "symbol_invalid",
        SymbolTaken => "symbol_taken",
        TickSizeInvalid => "tick_size_invalid",
        LotSizeInvalid => "lot_size_invalid",
        ParInvalid => "par_invalid",
        ReturnCapInvalid => "return_cap_invalid",
        PriceFloorInvalid => "price_floor_invalid",
        MaturityInvalid => "maturity_invalid",
        HoldingCapInvalid => "holding_cap_invalid",
        TaxCreditInvalid => "tax_credit_invalid",
        QuantityZero => "quantity_zero",
        QuantityTooLarge => "quantity_too_large",
        QuantityOffLot => "quantity_off_lot",
        PriceNotPositive => "price_not_positive",
        PriceOffTick => "price_off_tick",
        PriceAboveCeiling => "price_above_ceiling",
        PriceBelowFloor => "price_below_floor",
        AmountZero => "amount_zero",
        AmountOffMinorUnit => "amount_off_minor_unit",
        AmountTooLarge => "amount_too_large",
        InstrumentMatured => "instrument_matured",
        TradingClosed => "trading_closed",
        InsufficientCash => "insufficient_cash",
        InsufficientUnits => "insufficient_units",
        HoldingCapExceeded => "holding_cap_exceeded",
        LockedIn => "locked_in",
        FillOrKillUnfillable => "fill_or_kill_unfillable",
        BookFull => "book_full",
        OfferingAlreadyOpen => "offering_already_open",
        OfferingNotOpen => "offering_not_open",
        OfferingOversubscribed => "offering_oversubscribed",
        OfferingMinimumInvalid => "offering_minimum_invalid",
        SubscriptionsFull => "subscriptions_full",
        DistributionAboveCap => "distribution_above_cap",
        NoUnitsOutstanding => "no_units_outstanding",
        NotMatured => "not_matured",
        DoesNotMature => "does_not_mature",
        ParticipantsFull => "participants_full",
        InstrumentsFull => "instruments_full",
        OrdersFull => "orders_full",
        NoEffect => "no_effect",
        RequestIdReused => "request_id_reused",
        ParticipantSuspended => "participant_suspended",
        UnknownCredential => "unknown_credential",
        CredentialsFull => "credentials_full",
        CannotSuspendSelf => "cannot_suspend_self",
        OrderNotResting => "order_not_resting",
        MaturityReached => "maturity_reached",
        LockInInvalid => "lock_in_invalid",
        WithdrawalTermsInvalid => "withdrawal_terms_invalid",
        NotWithdrawable => "not_withdrawable",
        WithdrawalsSuspended => "withdrawals_suspended",
        UnknownWithdrawal => "unknown_withdrawal",
        NoticeRunning => "notice_running",
        NotWithdrawalHolder => "not_withdrawal_holder",
        WithdrawalsFull => "withdrawals_full",
        UnknownResolution => "unknown_resolution",
        VotingClosed => "voting_closed",
        NotAMember => "not_a_member",
        AlreadyVoted => "already_voted",
        VotingStillOpen => "voting_still_open",
        ResolutionInvalid => "resolution_invalid",
        ResolutionsFull => "resolutions_full",
        NotProposer => "not_proposer",
        NotAccredited => "not_accredited",
        NotAccreditedForCategory => "not_accredited_for_category",
        UnknownPackage => "unknown_package",
        UnknownVoucher => "unknown_voucher",
        VoucherAlreadyRedeemed => "voucher_already_redeemed",
        VoucherExpired => "voucher_expired",
        NotVoucherBeneficiary => "not_voucher_beneficiary",
        VoucherTermsInvalid => "voucher_terms_invalid",
        PackageInvalid => "package_invalid",
        VouchersFull => "vouchers_full",
        NotPackageFunder => "not_package_funder",
        NoServiceValue => "no_service_value",
        ServiceValueExceeded => "service_value_exceeded",
        InsufficientTimeCredits => "insufficient_time_credits",
        TimeCreditsInvalid => "time_credits_invalid",
        NoPoolLoan => "no_pool_loan",
        SurplusAlreadyDeclared => "surplus_already_declared",
        SurplusYearInvalid => "surplus_year_invalid",
        CategoriesInvalid => "categories_invalid",
        ObligationsFull => "obligations_full",
    }
}

#[test]
fn every_reject_reason_has_a_scenario() {
    // Each capability keeps the scenarios of its own reasons.
    let source = [
        include_str!("scenarios.rs"),
        include_str!("capped_returns.rs"),
        include_str!("membership.rs"),
        include_str!("withdrawals.rs"),
        include_str!("social.rs"),
    ]
    .concat();
    for &reason in RejectReason::ALL {
        let scenario = scenario_for(reason);
        assert!(
            source.contains(&format!("fn {scenario}() {{")),
            "{reason:?} names a scenario, {scenario}, that does not exist"
        );
        assert_eq!(
            RejectReason::from_code(reason.code()),
            Some(reason),
            "code {} does not round-trip",
            reason.code()
        );
    }
}

/// What the audit feed records beside each command: the accounts its events changed, as they
/// stand after it, each once, in participant order.
mod accounts_after {
    use super::*;

    fn after(market: &Market) -> Vec<AccountAfter> {
        let mut accounts = Vec::new();
        market.engine.accounts_after(&market.events, &mut accounts);
        accounts
    }

    #[test]
    fn a_trade_reports_both_sides_cash_and_units() {
        let mut market = Market::new();
        let share = market.share_listed("RIVER-A");
        let alice = market.contributor("alice");
        let bob = market.contributor("bob");
        market.issue(share, &[(bob, 10)]);
        market.deposit(alice, 1_000_000);
        market.sell(bob, share, PAR, 4);
        market.buy(alice, share, PAR, 3);
        let accounts = after(&market);
        let cash = |who: ParticipantId| AccountAfter::Cash {
            participant: who,
            balance_minor: market.cash(who).balance_minor,
            reserved_minor: market.cash(who).reserved_minor,
        };
        let (alice_cash, bob_cash) = (cash(alice), cash(bob));
        let units = |who: ParticipantId| {
            let holding = market.engine.holdings_of(who);
            let (lots, reserved_lots) = holding
                .iter()
                .find(|(instrument, _)| *instrument == share)
                .map_or((0, 0), |(_, holding)| (holding.lots, holding.reserved_lots));
            AccountAfter::Units {
                participant: who,
                instrument: share,
                lots,
                reserved_lots,
            }
        };
        let mut expected = vec![alice_cash, bob_cash, units(alice), units(bob)];
        if alice > bob {
            expected.swap(0, 1);
            expected.swap(2, 3);
        }
        assert_eq!(accounts, expected);
        assert!(matches!(
            units(bob),
            AccountAfter::Units {
                lots: 7,
                reserved_lots: 1,
                ..
            }
        ));
    }

    #[test]
    fn a_cancel_reports_its_instrument_and_no_events_touch_no_account() {
        let mut market = Market::new();
        let share = market.share_listed("RIVER-A");
        let alice = market.contributor("alice");
        let bob = market.contributor("bob");
        market.issue(share, &[(bob, 100)]);
        market.deposit(alice, 1_000_000);
        let bid = market.buy(alice, share, PAR, 2);
        market.cancel(alice, bid);
        let accounts = after(&market);
        assert_eq!(
            accounts,
            vec![
                AccountAfter::Cash {
                    participant: alice,
                    balance_minor: market.cash(alice).balance_minor,
                    reserved_minor: 0,
                },
                AccountAfter::Units {
                    participant: alice,
                    instrument: share,
                    lots: 0,
                    reserved_lots: 0,
                },
            ]
        );
        market.events.clear();
        let mut none = Vec::new();
        market.engine.accounts_after(&market.events, &mut none);
        assert!(none.is_empty(), "no events, no accounts");
    }
}
