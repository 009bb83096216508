//! Members, votes and withdrawals through the real server: a co-operative's members vote once
//! each whatever their holding, a member who sells out loses its vote, and a holder withdraws
//! shares at par after notice, paid from the issuer's cash.

mod support;

use std::time::Duration;

use mutua_gateway::pb;
use support::*;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_vote_once_each_and_a_holder_withdraws_at_par() {
    let server = start().await;
    let mut c = server.clients().await;
    let operator = server.operator_token.clone();
    let coop = register_accredited(&mut c, &operator, "Riverside Co-op").await;
    let [alice, bob, carol] = [
        register(&mut c, &operator, pb::Role::Contributor, "alice").await,
        register(&mut c, &operator, pb::Role::Contributor, "bob").await,
        register(&mut c, &operator, pb::Role::Contributor, "carol").await,
    ];
    for who in [&alice, &bob, &carol] {
        deposit(&mut c, &operator, who.0, "5000.00").await;
    }
    deposit(&mut c, &operator, coop.0, "1000.00").await;
    let share = list(
        &mut c,
        &operator,
        pb::ListInstrumentRequest {
            holding_cap: Some("1".into()),
            withdrawable: true,
            ..share("RIVER-W", coop.0)
        },
    )
    .await;
    open_trading(&mut c, &operator, share).await;
    run_offering(
        &mut c,
        &coop.1,
        share,
        "300",
        "1",
        &[(&alice.1, "290"), (&bob.1, "10")],
    )
    .await;

    // The register: alice and bob, whatever they hold. Carol is not a member; nor may she read it.
    let register_of = pb::ListMembersRequest::default();
    let members = c
        .membership
        .list_members(with_token(register_of.clone(), &coop.1))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<u32> = members
        .members
        .iter()
        .map(|member| member.participant_id)
        .collect();
    assert_eq!((ids, members.members_total), (vec![alice.0, bob.0], 2));
    let refused = c
        .membership
        .list_members(with_token(
            pb::ListMembersRequest {
                organization_id: Some(coop.0),
                ..register_of
            },
            &carol.1,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    // A resolution, closing in 1.5 s: alice (290 units) against, bob (10 units) for.
    let closes_at_ns = now_ns() + 1_500_000_000;
    let proposal = pb::ProposeResolutionRequest {
        request_id: request_id(),
        title: "Build the second block".into(),
        closes_at_ns,
    };
    let resolution_id = c
        .membership
        .propose_resolution(with_token(proposal, &coop.1))
        .await
        .unwrap()
        .into_inner()
        .resolution_id;
    let vote = |choice: pb::VoteChoice| pb::CastVoteRequest {
        request_id: request_id(),
        resolution_id,
        choice: choice as i32,
    };
    c.membership
        .cast_vote(with_token(vote(pb::VoteChoice::Against), &alice.1))
        .await
        .unwrap();
    c.membership
        .cast_vote(with_token(vote(pb::VoteChoice::For), &bob.1))
        .await
        .unwrap();
    let twice = c
        .membership
        .cast_vote(with_token(vote(pb::VoteChoice::For), &alice.1))
        .await
        .unwrap_err();
    assert_eq!(
        (twice.code(), reason_code(&twice)),
        (Code::FailedPrecondition, Some(66))
    );
    let outsider = c
        .membership
        .cast_vote(with_token(vote(pb::VoteChoice::For), &carol.1))
        .await
        .unwrap_err();
    assert_eq!(
        (outsider.code(), reason_code(&outsider)),
        (Code::PermissionDenied, Some(65))
    );
    let seen = c
        .membership
        .get_resolution(with_token(
            pb::GetResolutionRequest { resolution_id },
            &bob.1,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(seen.open && seen.tally.is_none());
    assert_eq!(
        (seen.votes_cast, seen.own_vote),
        (2, pb::VoteChoice::For as i32),
        "bob sees the count of votes and his own, not alice's"
    );

    // Carol buys alice's units: she joins, and may vote; alice is still a member.
    let ask = pb::PlaceOrderRequest {
        ..limit(share, pb::Side::Sell, "10.00", "5")
    };
    place(&mut c, &alice.1, ask).await;
    let bought = place(&mut c, &carol.1, limit(share, pb::Side::Buy, "10.00", "5")).await;
    assert_eq!(bought.status, pb::OrderStatus::Filled as i32);
    c.membership
        .cast_vote(with_token(vote(pb::VoteChoice::For), &carol.1))
        .await
        .unwrap();

    // Too early to close.
    let close = |request_id: String| pb::CloseResolutionRequest {
        request_id,
        resolution_id,
    };
    let early = c
        .membership
        .close_resolution(with_token(close(request_id()), &coop.1))
        .await
        .unwrap_err();
    assert_eq!(
        (early.code(), reason_code(&early)),
        (Code::FailedPrecondition, Some(67))
    );

    // Bob withdraws all ten units before the close (the share needs no notice): his vote lapses.
    let notice = pb::RequestWithdrawalRequest {
        request_id: request_id(),
        instrument: by_id(share),
        quantity: "10".into(),
    };
    let given = c
        .withdrawals
        .request_withdrawal(with_token(notice, &bob.1))
        .await
        .unwrap()
        .into_inner();
    let pending = c
        .withdrawals
        .list_withdrawals(with_token(pb::ListWithdrawalsRequest::default(), &coop.1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        pending
            .withdrawals
            .iter()
            .map(|w| (w.withdrawal_id, w.holder_id, w.quantity.as_str()))
            .collect::<Vec<_>>(),
        [(given.withdrawal_id, bob.0, "10")]
    );
    let theirs = c
        .withdrawals
        .list_withdrawals(with_token(pb::ListWithdrawalsRequest::default(), &alice.1))
        .await
        .unwrap()
        .into_inner();
    assert!(
        theirs.withdrawals.is_empty(),
        "alice does not see bob's notice"
    );
    let bob_before = balances(&mut c, &bob.1, None).await.balance;
    let completion = pb::CompleteWithdrawalRequest {
        request_id: request_id(),
        withdrawal_id: given.withdrawal_id,
    };
    let paid = c
        .withdrawals
        .complete_withdrawal(with_token(completion, &coop.1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (paid.amount.as_str(), paid.quantity.as_str()),
        ("100.00", "10")
    );
    assert_eq!(
        (
            bob_before.as_str(),
            balances(&mut c, &bob.1, None).await.balance.as_str()
        ),
        ("4900.00", "5000.00")
    );
    assert_eq!(
        holding(&mut c, &bob.1, share).await.map(|h| h.quantity),
        Some("0".into())
    );
    let instrument = c
        .registry
        .get_instrument(with_token(
            pb::GetInstrumentRequest {
                instrument: by_id(share),
            },
            &bob.1,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        instrument.outstanding_quantity, "290",
        "withdrawn units are retired"
    );

    tokio::time::sleep(Duration::from_nanos(
        closes_at_ns.saturating_sub(now_ns()) + 50_000_000,
    ))
    .await;
    let closed = c
        .membership
        .close_resolution(with_token(close(request_id()), &coop.1))
        .await
        .unwrap()
        .into_inner();
    let tally = closed.tally.expect("the count");
    assert_eq!(
        (
            tally.votes_for,
            tally.votes_against,
            tally.abstentions,
            tally.votes_lapsed,
            tally.passed
        ),
        (1, 1, 0, 1, false)
    );
    let members = c
        .membership
        .list_members(with_token(pb::ListMembersRequest::default(), &coop.1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        members
            .members
            .iter()
            .map(|member| member.participant_id)
            .collect::<Vec<_>>(),
        [alice.0, carol.0]
    );

    // The issuer suspends withdrawals: notices are refused until it resumes them.
    let suspend = |suspended| pb::SetWithdrawalsSuspendedRequest {
        request_id: request_id(),
        instrument: by_id(share),
        suspended,
    };
    c.withdrawals
        .set_withdrawals_suspended(with_token(suspend(true), &coop.1))
        .await
        .unwrap();
    let notice = pb::RequestWithdrawalRequest {
        request_id: request_id(),
        instrument: by_id(share),
        quantity: "5".into(),
    };
    let refused = c
        .withdrawals
        .request_withdrawal(with_token(notice.clone(), &carol.1))
        .await
        .unwrap_err();
    assert_eq!(
        (refused.code(), reason_code(&refused)),
        (Code::FailedPrecondition, Some(59))
    );
    c.withdrawals
        .set_withdrawals_suspended(with_token(suspend(false), &coop.1))
        .await
        .unwrap();
    // A retry of the refused notice repeats its refusal: a new notice needs a new request id.
    let retried = c
        .withdrawals
        .request_withdrawal(with_token(notice.clone(), &carol.1))
        .await
        .unwrap_err();
    assert_eq!(reason_code(&retried), Some(59));
    let fresh = pb::RequestWithdrawalRequest {
        request_id: request_id(),
        ..notice
    };
    c.withdrawals
        .request_withdrawal(with_token(fresh, &carol.1))
        .await
        .unwrap();
    server.stop().await;
}
