//! Withdrawable shares: notice, payout at par from the issuer's cash, suspension by the issuer,
//! and every reason a withdrawal is refused.

mod support;

use mutua_engine::calendar::anniversary;
use mutua_engine::*;
use support::*;
use RejectReason::*;

const NOTICE_DAYS: u32 = 30;

/// A withdrawable share with 30 days' notice, 10 lots issued to alice and 10 to bob.
fn withdrawable_market() -> (Market, InstrumentId, ParticipantId, ParticipantId) {
    let mut market = Market::new();
    let spec = InstrumentSpec {
        withdrawable: true,
        withdrawal_notice_days: NOTICE_DAYS,
        ..market.share_spec("RIVER-W")
    };
    let share = market.list(spec);
    let [alice, bob] = ["alice", "bob"].map(|name| market.contributor(name));
    market.issue(share, &[(alice, 10), (bob, 10)]);
    (market, share, alice, bob)
}

fn request(
    market: &mut Market,
    holder: ParticipantId,
    instrument: InstrumentId,
    lots: u64,
) -> WithdrawalId {
    match market.ok(holder, CommandKind::RequestWithdrawal { instrument, lots }) {
        Ack::Withdrawal(id) => id,
        other => panic!("withdrawal acknowledged as {other:?}"),
    }
}

fn complete(withdrawal: WithdrawalId) -> CommandKind {
    CommandKind::CompleteWithdrawal { withdrawal }
}

fn suspend(instrument: InstrumentId, suspended: bool) -> CommandKind {
    CommandKind::SetWithdrawalsSuspended {
        instrument,
        suspended,
    }
}

#[test]
fn a_withdrawal_after_its_notice_is_bought_back_at_par_and_retired() {
    let (mut market, share, alice, _) = withdrawable_market();
    let issuer = market.issuer;
    let issuer_cash = market.cash(issuer).balance_minor;
    let requested_at = market.now;
    let withdrawal = request(&mut market, alice, share, 4);
    assert_eq!(
        market.events,
        vec![Event::WithdrawalRequested {
            withdrawal,
            instrument: share,
            holder: alice,
            lots: 4,
            payable_from: requested_at + 30 * DAY_NS
        }]
    );
    // Units under notice are held back from sale.
    market.expect_reject(alice, gtc(share, Side::Sell, PAR, 7), InsufficientUnits);
    market.sell(alice, share, PAR, 6);

    market.at(requested_at + 30 * DAY_NS - 1);
    market.expect_reject(alice, complete(withdrawal), NoticeRunning);
    market.advance(1);
    // Either party may settle it once the notice has run; here the issuer does.
    market.ok(issuer, complete(withdrawal));
    assert_eq!(
        market.events,
        vec![Event::WithdrawalPaid {
            withdrawal,
            instrument: share,
            holder: alice,
            issuer,
            lots: 4,
            amount_minor: 4 * PAR
        }]
    );
    assert_eq!(market.cash(alice).balance_minor, 4 * PAR);
    assert_eq!(market.cash(issuer).balance_minor, issuer_cash - 4 * PAR);
    assert_eq!(market.lots(alice, share), 6);
    assert_eq!(
        market.engine.instrument(share).unwrap().lots_outstanding(),
        16
    );
    market.expect_reject(alice, complete(withdrawal), UnknownWithdrawal);
}

#[test]
fn a_cancelled_withdrawal_frees_its_units() {
    let (mut market, share, alice, _) = withdrawable_market();
    let withdrawal = request(&mut market, alice, share, 10);
    market.expect_reject(alice, gtc(share, Side::Sell, PAR, 1), InsufficientUnits);
    market.ok(alice, CommandKind::CancelWithdrawal { withdrawal });
    assert_eq!(
        market.events,
        vec![Event::WithdrawalCancelled {
            withdrawal,
            instrument: share,
            holder: alice,
            lots: 10
        }]
    );
    market.sell(alice, share, PAR, 10);
}

#[test]
fn the_issuer_may_suspend_withdrawals_to_protect_its_capital() {
    let (mut market, share, alice, bob) = withdrawable_market();
    let issuer = market.issuer;
    let pending = request(&mut market, alice, share, 2);
    market.ok(issuer, suspend(share, true));
    assert_eq!(
        market.events,
        vec![Event::WithdrawalsSuspended {
            instrument: share,
            suspended: true
        }]
    );
    market.advance(31 * DAY_NS);
    market.expect_reject(
        bob,
        CommandKind::RequestWithdrawal {
            instrument: share,
            lots: 1,
        },
        WithdrawalsSuspended,
    );
    market.expect_reject(alice, complete(pending), WithdrawalsSuspended);
    // A holder may still cancel, and still sell on the market.
    market.sell(bob, share, PAR, 1);
    market.ok(issuer, suspend(share, false));
    market.ok(alice, complete(pending));
    assert_eq!(market.lots(alice, share), 8);
}

#[test]
fn units_inside_a_lock_in_cannot_be_withdrawn_before_the_anniversary() {
    let mut market = Market::new();
    let spec = InstrumentSpec {
        withdrawable: true,
        ..market.cip_share_spec("RIVER-CIP")
    };
    let cip = market.list(spec);
    let alice = market.contributor("alice");
    market.issue(cip, &[(alice, 10)]);
    market.at(anniversary(START, 5) - 1);
    market.expect_reject(
        alice,
        CommandKind::RequestWithdrawal {
            instrument: cip,
            lots: 1,
        },
        LockedIn,
    );
    market.advance(1);
    let withdrawal = request(&mut market, alice, cip, 10);
    market.ok(alice, complete(withdrawal));
    assert_eq!(market.lots(alice, cip), 0);
}

#[test]
fn an_issuer_without_the_cash_cannot_pay_and_the_request_stays_pending() {
    let (mut market, share, alice, _) = withdrawable_market();
    let issuer = market.issuer;
    let all = market.cash(issuer).balance_minor;
    market.withdraw(issuer, all - 3 * PAR);
    let withdrawal = request(&mut market, alice, share, 4);
    market.advance(30 * DAY_NS);
    market.expect_reject(alice, complete(withdrawal), InsufficientCash);
    assert!(market.engine.withdrawal(withdrawal).is_some());
    market.deposit(issuer, PAR);
    market.ok(alice, complete(withdrawal));
}

#[test]
fn not_withdrawable() {
    let mut market = Market::new();
    let share = market.share_listed("RIVER-A");
    let alice = market.contributor("alice");
    market.issue(share, &[(alice, 5)]);
    market.expect_reject(
        alice,
        CommandKind::RequestWithdrawal {
            instrument: share,
            lots: 1,
        },
        NotWithdrawable,
    );
    market.expect_reject(market.issuer, suspend(share, true), NotWithdrawable);
}

#[test]
fn withdrawals_suspended() {
    let (mut market, share, alice, _) = withdrawable_market();
    market.ok(market.issuer, suspend(share, true));
    market.expect_reject(
        alice,
        CommandKind::RequestWithdrawal {
            instrument: share,
            lots: 1,
        },
        WithdrawalsSuspended,
    );
    market.expect_reject(market.issuer, suspend(share, true), NoEffect);
}

#[test]
fn unknown_withdrawal() {
    let (mut market, _, alice, _) = withdrawable_market();
    market.expect_reject(alice, complete(WithdrawalId(1)), UnknownWithdrawal);
    market.expect_reject(
        alice,
        CommandKind::CancelWithdrawal {
            withdrawal: WithdrawalId(1),
        },
        UnknownWithdrawal,
    );
}

#[test]
fn notice_running() {
    let (mut market, share, alice, _) = withdrawable_market();
    let withdrawal = request(&mut market, alice, share, 1);
    market.advance(29 * DAY_NS);
    market.expect_reject(alice, complete(withdrawal), NoticeRunning);
}

#[test]
fn not_withdrawal_holder() {
    let (mut market, share, alice, bob) = withdrawable_market();
    let withdrawal = request(&mut market, alice, share, 1);
    market.advance(30 * DAY_NS);
    market.expect_reject(bob, complete(withdrawal), NotWithdrawalHolder);
    market.expect_reject(
        bob,
        CommandKind::CancelWithdrawal { withdrawal },
        NotWithdrawalHolder,
    );
    let other_organization = market.organization("another co-op");
    market.expect_reject(
        other_organization,
        complete(withdrawal),
        NotWithdrawalHolder,
    );
}

#[test]
fn withdrawals_full() {
    let mut market = Market::with_config(|config| config.withdrawals_pending_per_holding_max = 2);
    let spec = InstrumentSpec {
        withdrawable: true,
        ..market.share_spec("RIVER-W")
    };
    let share = market.list(spec);
    let alice = market.contributor("alice");
    market.issue(share, &[(alice, 10)]);
    request(&mut market, alice, share, 1);
    request(&mut market, alice, share, 1);
    market.expect_reject(
        alice,
        CommandKind::RequestWithdrawal {
            instrument: share,
            lots: 1,
        },
        WithdrawalsFull,
    );
}
