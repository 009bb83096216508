//! Bad input through every RPC of the real server: malformed, negative, huge, off-tick, off-lot,
//! unknown ids, wrong role, wrong owner and missing or bad tokens. Each gets the status and
//! reason code clients are promised, and none of them changes the market.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use mutua_gateway::pb;
use pb::order_entry_request::Command as EntryCommand;
use pb::order_entry_response::Result as EntryResult;
use pb::Side::{Buy, Sell};
use prost::Message as _;
use support::*;
use tokio_stream::StreamExt;
use tonic::{Code, Request, Status};

/// The market every bad request is thrown at.
struct Fixture {
    operator: String,
    organization: (u32, String),
    /// An organization that issues nothing here: the wrong issuer.
    other_organization: (u32, String),
    regulator: (u32, String),
    /// Holds 300 of 500 COOP-A units (at the 60 % cap, so every buy of hers breaks it), 100
    /// locked CIP-B units, and rests a sell of 100 COOP-A at 9.40.
    alice: (u32, String),
    /// Holds 200 COOP-A, rests a buy of 50 at 9.00, and has subscribed 10 BOND-A.
    bob: (u32, String),
    /// A contributor without cash.
    carol: (u32, String),
    /// COOP-A: tick 0.05, lot 10, par 10.00, floor 5.00, trading; first issued moments ago, so
    /// its ceiling is par.
    share: u32,
    /// CIP-B: a Co-operative Investment Plan share with the default 5-year lock-in, trading.
    cip: u32,
    /// BOND-A: lot 10, par 100.00, trading closed, an offering open.
    bond: u32,
    /// MUT-W: a withdrawable share with 30 days' notice; alice holds 50 and has given notice on 10.
    withdrawable: u32,
    /// Alice's pending withdrawal of 10 MUT-W.
    withdrawal: u64,
    /// A resolution of the organization, open for an hour; alice has voted for it.
    resolution: u32,
    share_offering_closed: u32,
    bond_offering_open: u32,
    alice_ask: u64,
    bob_bid: u64,
    /// A funder with cash and a service package ("care", 20.00).
    funder: (u32, String),
    package: u32,
    /// alice's open voucher of the package, with a 5.00 co-payment.
    voucher: u64,
    /// The id the next registered participant would get.
    next_participant: u32,
}

/// Request id of bob's subscription, reused below for a different command.
const BOB_SUBSCRIPTION_REQUEST: &str = "bob-bond-subscription";

async fn fixture(server: &TestServer) -> Fixture {
    let mut c = server.clients().await;
    let operator = server.operator_token.clone();
    let organization = register_accredited(&mut c, &operator, "Riverside Housing Co-op").await;
    let other_organization =
        register(&mut c, &operator, pb::Role::Organization, "Hilltop Bakery").await;
    let regulator = register(&mut c, &operator, pb::Role::Regulator, "the regulator").await;
    let alice = register(&mut c, &operator, pb::Role::Contributor, "alice").await;
    let bob = register(&mut c, &operator, pb::Role::Contributor, "bob").await;
    let carol = register(&mut c, &operator, pb::Role::Contributor, "carol").await;
    deposit(&mut c, &operator, alice.0, "20000.00").await;
    deposit(&mut c, &operator, bob.0, "20000.00").await;
    deposit(&mut c, &operator, organization.0, "1000.00").await;

    let share_spec = pb::ListInstrumentRequest {
        tick_size: "0.05".into(),
        lot_size: "10".into(),
        price_floor: "5.00".into(),
        holding_cap: Some("0.6".into()),
        ..share("COOP-A", organization.0)
    };
    let share = list(&mut c, &operator, share_spec).await;
    let cip_spec = pb::ListInstrumentRequest {
        cooperative_investment_plan: true,
        holding_cap: Some("1".into()),
        ..support::share("CIP-B", organization.0)
    };
    let cip = list(&mut c, &operator, cip_spec).await;
    let bond = list(
        &mut c,
        &operator,
        pb::ListInstrumentRequest {
            holding_cap: Some("1".into()),
            ..support::bond("BOND-A", organization.0)
        },
    )
    .await;
    open_trading(&mut c, &operator, share).await;
    open_trading(&mut c, &operator, cip).await;

    let share_offering_closed = run_offering(
        &mut c,
        &organization.1,
        share,
        "1000",
        "100",
        &[(&alice.1, "300"), (&bob.1, "200")],
    )
    .await;
    run_offering(
        &mut c,
        &organization.1,
        cip,
        "100",
        "10",
        &[(&alice.1, "100")],
    )
    .await;
    let bond_offering_open = open_offering(&mut c, &organization.1, bond, "50", "10").await;
    let subscription = pb::SubscribeRequest {
        request_id: BOB_SUBSCRIPTION_REQUEST.into(),
        offering_id: bond_offering_open,
        quantity: "10".into(),
    };
    c.registry
        .subscribe(with_token(subscription, &bob.1))
        .await
        .expect("bob subscribes to the bond");

    let withdrawable_spec = pb::ListInstrumentRequest {
        withdrawable: true,
        withdrawal_notice_days: 30,
        holding_cap: Some("1".into()),
        ..support::share("MUT-W", organization.0)
    };
    let withdrawable = list(&mut c, &operator, withdrawable_spec).await;
    run_offering(
        &mut c,
        &organization.1,
        withdrawable,
        "50",
        "50",
        &[(&alice.1, "50")],
    )
    .await;
    let notice = pb::RequestWithdrawalRequest {
        request_id: request_id(),
        instrument: by_id(withdrawable),
        quantity: "10".into(),
    };
    let withdrawal = c
        .withdrawals
        .request_withdrawal(with_token(notice, &alice.1))
        .await
        .expect("alice gives notice")
        .into_inner()
        .withdrawal_id;
    let proposal = pb::ProposeResolutionRequest {
        request_id: request_id(),
        title: "Adopt the 2027 budget".into(),
        closes_at_ns: now_ns() + 3_600_000_000_000,
    };
    let resolution = c
        .membership
        .propose_resolution(with_token(proposal, &organization.1))
        .await
        .expect("the organization proposes")
        .into_inner()
        .resolution_id;
    let vote = pb::CastVoteRequest {
        request_id: request_id(),
        resolution_id: resolution,
        choice: pb::VoteChoice::For as i32,
    };
    c.membership
        .cast_vote(with_token(vote, &alice.1))
        .await
        .expect("alice votes");

    // The social economy: a funder's package and a voucher for alice; alice's volunteer hour.
    let funder = register(&mut c, &operator, pb::Role::Funder, "the municipality").await;
    deposit(&mut c, &operator, funder.0, "1000.00").await;
    let package = c
        .vouchers
        .define_service_package(with_token(
            pb::DefineServicePackageRequest {
                request_id: request_id(),
                category: "care".into(),
                name: "home care visit".into(),
                face_value: "20.00".into(),
            },
            &funder.1,
        ))
        .await
        .expect("the funder defines a package")
        .into_inner()
        .package_id;
    let voucher = c
        .vouchers
        .issue_voucher(with_token(
            pb::IssueVoucherRequest {
                request_id: request_id(),
                package_id: package,
                beneficiary_id: alice.0,
                co_payment: "5.00".into(),
                expires_at_ns: now_ns() + 30 * 24 * 3_600_000_000_000,
            },
            &funder.1,
        ))
        .await
        .expect("the funder issues alice a voucher")
        .into_inner()
        .voucher_id;
    c.time_credits
        .record_volunteer_time(with_token(
            pb::RecordVolunteerTimeRequest {
                request_id: request_id(),
                volunteer_id: alice.0,
                minutes: 60,
            },
            &organization.1,
        ))
        .await
        .expect("the organization records alice's hour");

    let alice_ask = place(&mut c, &alice.1, limit(share, Sell, "9.40", "100")).await;
    let bob_bid = place(&mut c, &bob.1, limit(share, Buy, "9.00", "50")).await;
    assert_eq!(
        (alice_ask.status, bob_bid.status),
        (
            pb::OrderStatus::Resting as i32,
            pb::OrderStatus::Resting as i32
        )
    );

    Fixture {
        operator,
        next_participant: funder.0 + 1,
        funder,
        package,
        voucher,
        organization,
        other_organization,
        regulator,
        alice,
        bob,
        carol,
        share,
        cip,
        bond,
        withdrawable,
        withdrawal,
        resolution,
        share_offering_closed,
        bond_offering_open,
        alice_ask: alice_ask.order_id,
        bob_bid: bob_bid.order_id,
    }
}

// ---- The table ----

type Outcome = Result<(), Status>;
type Call = Box<dyn FnOnce(Clients, Arc<Fixture>) -> Pin<Box<dyn Future<Output = Outcome>>>>;

/// One bad request: `description` starts with "Service.Method:" so coverage can be checked.
struct Case {
    description: String,
    call: Call,
    code: Code,
    fragment: &'static str,
    /// The engine's `mutua-reason-code` the status must carry; `None` when the gateway refused the
    /// request before any engine rule was involved, and then it must carry one of the gateway's
    /// own codes (1001 and up): every refusal has a code.
    reason: Option<u16>,
}

/// `case!(description, |clients, fixture| call, code, message fragment, reason code)`.
macro_rules! case {
    ($description:expr, |$c:ident, $f:ident| $call:expr, $code:expr, $fragment:expr, $reason:expr) => {
        Case {
            description: $description.to_string(),
            call: Box::new(move |mut $c: Clients, $f: Arc<Fixture>| {
                Box::pin(async move {
                    let _ = (&mut $c, &$f);
                    $call.await.map(|_| ())
                })
            }),
            code: $code,
            fragment: $fragment,
            reason: $reason,
        }
    };
}

use Code::{
    AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, OutOfRange, PermissionDenied,
    Unauthenticated,
};

/// A request with raw `authorization` metadata, or none.
fn authorize<T>(message: T, header: Option<&'static str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(header) = header {
        request
            .metadata_mut()
            .insert("authorization", header.parse().expect("ASCII header"));
    }
    request
}

/// Every authenticated RPC, called with a request that would be fine from the right caller,
/// but with no token, an unknown token, or something that is not a bearer token.
macro_rules! without_a_valid_token {
    ($cases:ident, $rpc:literal, |$c:ident, $f:ident, $header:ident| $call:expr) => {
        for ($header, expected) in [
            (None, "missing `authorization"),
            (
                Some("Bearer mutua_1_00000000000000000000000000000000000000000"),
                "unknown or revoked token",
            ),
            (
                Some(
                    "Bearer mutua_0000000000000000000000000000000000000000000000000000000000000000",
                ),
                "unknown or revoked token",
            ),
            (Some("Basic YWxpY2U6c2VjcmV0"), "must be `Bearer <token>`"),
        ] {
            $cases.push(case!(
                format!("{}: token {:?}", $rpc, $header),
                |$c, $f| $call,
                Unauthenticated,
                expected,
                None
            ));
        }
    };
}

fn authentication_cases(cases: &mut Vec<Case>) {
    without_a_valid_token!(cases, "Exchange.PlaceOrder", |c, f, header| c
        .exchange
        .place_order(authorize(limit(f.share, Buy, "9.00", "10"), header)));
    without_a_valid_token!(cases, "Exchange.CancelOrder", |c, f, header| c
        .exchange
        .cancel_order(authorize(
            pb::CancelOrderRequest {
                request_id: request_id(),
                order_id: f.bob_bid
            },
            header
        )));
    without_a_valid_token!(cases, "Exchange.ReduceOrder", |c, f, header| c
        .exchange
        .reduce_order(authorize(
            pb::ReduceOrderRequest {
                request_id: request_id(),
                order_id: f.bob_bid,
                reduce_by: "10".into()
            },
            header
        )));
    without_a_valid_token!(cases, "Exchange.GetOrder", |c, f, header| c
        .exchange
        .get_order(authorize(
            pb::GetOrderRequest {
                order_id: f.bob_bid
            },
            header
        )));
    without_a_valid_token!(cases, "Exchange.ListOrders", |c, f, header| c
        .exchange
        .list_orders(authorize(pb::ListOrdersRequest::default(), header)));
    without_a_valid_token!(cases, "Exchange.OrderEntry", |c, f, header| {
        let place = pb::OrderEntryRequest {
            command: Some(EntryCommand::Place(limit(f.share, Buy, "9.00", "10"))),
        };
        c.exchange
            .order_entry(authorize(tokio_stream::iter([place]), header))
    });
    without_a_valid_token!(cases, "Diagnostics.Echo", |c, _f, header| {
        let message = pb::EchoMessage {
            payload: vec![1],
            reply_bytes: 0,
        };
        c.diagnostics
            .echo(authorize(tokio_stream::iter([message]), header))
    });
    without_a_valid_token!(cases, "Accounts.Deposit", |c, f, header| c
        .accounts
        .deposit(authorize(
            pb::DepositRequest {
                request_id: request_id(),
                participant_id: f.alice.0,
                amount: "1.00".into()
            },
            header
        )));
    without_a_valid_token!(cases, "Accounts.Withdraw", |c, f, header| c
        .accounts
        .withdraw(authorize(
            pb::WithdrawRequest {
                request_id: request_id(),
                participant_id: f.alice.0,
                amount: "1.00".into()
            },
            header
        )));
    without_a_valid_token!(cases, "Accounts.GetBalances", |c, f, header| c
        .accounts
        .get_balances(authorize(pb::GetBalancesRequest::default(), header)));
    without_a_valid_token!(cases, "Accounts.GetHoldings", |c, f, header| c
        .accounts
        .get_holdings(authorize(pb::GetHoldingsRequest::default(), header)));
    without_a_valid_token!(cases, "Accounts.GetTaxCredits", |c, f, header| c
        .accounts
        .get_tax_credits(authorize(pb::GetTaxCreditsRequest::default(), header)));
    without_a_valid_token!(cases, "Registry.RegisterParticipant", |c, f, header| c
        .registry
        .register_participant(authorize(
            pb::RegisterParticipantRequest {
                request_id: request_id(),
                role: pb::Role::Operator as i32,
                name: "mallory".into()
            },
            header
        )));
    without_a_valid_token!(cases, "Registry.SetAccreditation", |c, f, header| c
        .registry
        .set_accreditation(authorize(
            pb::SetAccreditationRequest {
                request_id: request_id(),
                organization_id: f.organization.0,
                accredited: true
            },
            header
        )));
    without_a_valid_token!(cases, "Registry.ListInstrument", |c, f, header| c
        .registry
        .list_instrument(authorize(share("NEW-A", f.organization.0), header)));
    without_a_valid_token!(cases, "Registry.SetTradingStatus", |c, f, header| c
        .registry
        .set_trading_status(authorize(
            pb::SetTradingStatusRequest {
                request_id: request_id(),
                instrument: by_id(f.share),
                open: false
            },
            header
        )));
    without_a_valid_token!(cases, "Registry.OpenOffering", |c, f, header| c
        .registry
        .open_offering(authorize(offering_of_share(&f), header)));
    without_a_valid_token!(cases, "Registry.Subscribe", |c, f, header| c
        .registry
        .subscribe(authorize(
            pb::SubscribeRequest {
                request_id: request_id(),
                offering_id: f.bond_offering_open,
                quantity: "10".into()
            },
            header
        )));
    without_a_valid_token!(cases, "Registry.CloseOffering", |c, f, header| c
        .registry
        .close_offering(authorize(
            pb::CloseOfferingRequest {
                request_id: request_id(),
                offering_id: f.bond_offering_open
            },
            header
        )));
    without_a_valid_token!(cases, "Registry.PayDistribution", |c, f, header| c
        .registry
        .pay_distribution(authorize(distribution(&f, "0.10"), header)));
    without_a_valid_token!(cases, "Registry.RepayAtMaturity", |c, f, header| c
        .registry
        .repay_at_maturity(authorize(
            pb::RepayAtMaturityRequest {
                request_id: request_id(),
                instrument: by_id(f.bond)
            },
            header
        )));
    without_a_valid_token!(cases, "Identity.IssueToken", |c, f, header| c
        .identity
        .issue_token(authorize(
            pb::IssueTokenRequest {
                participant_id: f.alice.0,
                replace_existing: false
            },
            header
        )));
    without_a_valid_token!(cases, "Identity.RevokeToken", |c, f, header| c
        .identity
        .revoke_token(authorize(
            pb::RevokeTokenRequest {
                request_id: request_id(),
                token_id: 0
            },
            header
        )));
    without_a_valid_token!(cases, "Identity.ListTokens", |c, f, header| c
        .identity
        .list_tokens(authorize(pb::ListTokensRequest::default(), header)));
    without_a_valid_token!(cases, "Identity.ListParticipants", |c, f, header| c
        .identity
        .list_participants(authorize(pb::ListParticipantsRequest::default(), header)));
    without_a_valid_token!(cases, "Identity.SetParticipantStatus", |c, f, header| c
        .identity
        .set_participant_status(authorize(
            pb::SetParticipantStatusRequest {
                request_id: request_id(),
                participant_id: f.alice.0,
                suspended: true
            },
            header
        )));
}

fn membership_cases(cases: &mut Vec<Case>) {
    without_a_valid_token!(cases, "Membership.ListMembers", |c, f, header| c
        .membership
        .list_members(authorize(pb::ListMembersRequest::default(), header)));
    without_a_valid_token!(cases, "Membership.ProposeResolution", |c, f, header| c
        .membership
        .propose_resolution(authorize(proposal(&f), header)));
    without_a_valid_token!(cases, "Membership.CastVote", |c, f, header| c
        .membership
        .cast_vote(authorize(vote(&f, pb::VoteChoice::Against), header)));
    without_a_valid_token!(cases, "Membership.CloseResolution", |c, f, header| c
        .membership
        .close_resolution(authorize(closing(&f), header)));
    without_a_valid_token!(cases, "Membership.GetResolution", |c, f, header| c
        .membership
        .get_resolution(authorize(
            pb::GetResolutionRequest {
                resolution_id: f.resolution
            },
            header
        )));
    without_a_valid_token!(cases, "Membership.ListResolutions", |c, f, header| c
        .membership
        .list_resolutions(authorize(pb::ListResolutionsRequest::default(), header)));
    let members = |organization: Option<u32>| pb::ListMembersRequest {
        organization_id: organization,
        ..Default::default()
    };
    cases.extend([
        case!(
            "Membership.ListMembers: a contributor reading a register",
            |c, f| c
                .membership
                .list_members(with_token(members(Some(f.organization.0)), &f.alice.1)),
            PermissionDenied,
            "reads its own register",
            None
        ),
        case!(
            "Membership.ListMembers: another organization's register",
            |c, f| c.membership.list_members(with_token(
                members(Some(f.organization.0)),
                &f.other_organization.1
            )),
            PermissionDenied,
            "reads its own register",
            None
        ),
        case!(
            "Membership.ListMembers: the regulator naming nobody",
            |c, f| c
                .membership
                .list_members(with_token(members(None), &f.regulator.1)),
            InvalidArgument,
            "organization_id: required",
            None
        ),
        case!(
            "Membership.ListMembers: a contributor's register",
            |c, f| c
                .membership
                .list_members(with_token(members(Some(f.alice.0)), &f.operator)),
            FailedPrecondition,
            "organization_id: ",
            Some(9)
        ),
        case!(
            "Membership.ListMembers: unknown organization",
            |c, f| c
                .membership
                .list_members(with_token(members(Some(999_999)), &f.regulator.1)),
            NotFound,
            "organization_id: ",
            Some(3)
        ),
        case!(
            "Membership.ListMembers: page too large",
            |c, f| c.membership.list_members(with_token(
                pb::ListMembersRequest {
                    page_size: 10_001,
                    ..members(None)
                },
                &f.organization.1
            )),
            InvalidArgument,
            "page_size: at most 10000",
            None
        ),
        case!(
            "Membership.ProposeResolution: by a contributor",
            |c, f| c
                .membership
                .propose_resolution(with_token(proposal(&f), &f.alice.1)),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
        case!(
            "Membership.ProposeResolution: blank title",
            |c, f| c.membership.propose_resolution(with_token(
                pb::ProposeResolutionRequest {
                    title: "  ".into(),
                    ..proposal(&f)
                },
                &f.organization.1
            )),
            InvalidArgument,
            "title of 1",
            Some(68)
        ),
        case!(
            "Membership.ProposeResolution: closing in the past",
            |c, f| c.membership.propose_resolution(with_token(
                pb::ProposeResolutionRequest {
                    closes_at_ns: 1,
                    ..proposal(&f)
                },
                &f.organization.1
            )),
            InvalidArgument,
            "closing time after now",
            Some(68)
        ),
        case!(
            "Membership.ProposeResolution: empty request_id",
            |c, f| c.membership.propose_resolution(with_token(
                pb::ProposeResolutionRequest {
                    request_id: String::new(),
                    ..proposal(&f)
                },
                &f.organization.1
            )),
            InvalidArgument,
            "request_id: required",
            None
        ),
        case!(
            "Membership.CastVote: by a non-member",
            |c, f| c
                .membership
                .cast_vote(with_token(vote(&f, pb::VoteChoice::For), &f.carol.1)),
            PermissionDenied,
            "only a member",
            Some(65)
        ),
        case!(
            "Membership.CastVote: a second vote",
            |c, f| c
                .membership
                .cast_vote(with_token(vote(&f, pb::VoteChoice::Against), &f.alice.1)),
            FailedPrecondition,
            "votes once",
            Some(66)
        ),
        case!(
            "Membership.CastVote: unknown resolution",
            |c, f| c.membership.cast_vote(with_token(
                pb::CastVoteRequest {
                    resolution_id: 999_999,
                    ..vote(&f, pb::VoteChoice::For)
                },
                &f.bob.1
            )),
            NotFound,
            "no resolution",
            Some(63)
        ),
        case!(
            "Membership.CastVote: no choice",
            |c, f| c
                .membership
                .cast_vote(with_token(vote(&f, pb::VoteChoice::Unspecified), &f.bob.1)),
            InvalidArgument,
            "choice: ",
            None
        ),
        case!(
            "Membership.CastVote: by an organization",
            |c, f| c
                .membership
                .cast_vote(with_token(vote(&f, pb::VoteChoice::For), &f.organization.1)),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
        case!(
            "Membership.CloseResolution: before its closing time",
            |c, f| c
                .membership
                .close_resolution(with_token(closing(&f), &f.organization.1)),
            FailedPrecondition,
            "before its stated closing time",
            Some(67)
        ),
        case!(
            "Membership.CloseResolution: by another organization",
            |c, f| c
                .membership
                .close_resolution(with_token(closing(&f), &f.other_organization.1)),
            PermissionDenied,
            "only the organization that put",
            Some(74)
        ),
        case!(
            "Membership.CloseResolution: unknown resolution",
            |c, f| c.membership.close_resolution(with_token(
                pb::CloseResolutionRequest {
                    resolution_id: 999_999,
                    ..closing(&f)
                },
                &f.organization.1
            )),
            NotFound,
            "no resolution",
            Some(63)
        ),
        case!(
            "Membership.GetResolution: unknown resolution",
            |c, f| c.membership.get_resolution(with_token(
                pb::GetResolutionRequest {
                    resolution_id: 999_999
                },
                &f.alice.1
            )),
            NotFound,
            "resolution_id: ",
            Some(63)
        ),
        case!(
            "Membership.ListResolutions: page too large",
            |c, f| c.membership.list_resolutions(with_token(
                pb::ListResolutionsRequest {
                    page_size: 10_001,
                    ..Default::default()
                },
                &f.alice.1
            )),
            InvalidArgument,
            "page_size: at most 10000",
            None
        ),
    ]);
}

fn proposal(_f: &Fixture) -> pb::ProposeResolutionRequest {
    pb::ProposeResolutionRequest {
        request_id: request_id(),
        title: "Open a second bakery".into(),
        closes_at_ns: now_ns() + 3_600_000_000_000,
    }
}

fn vote(f: &Fixture, choice: pb::VoteChoice) -> pb::CastVoteRequest {
    pb::CastVoteRequest {
        request_id: request_id(),
        resolution_id: f.resolution,
        choice: choice as i32,
    }
}

fn closing(f: &Fixture) -> pb::CloseResolutionRequest {
    pb::CloseResolutionRequest {
        request_id: request_id(),
        resolution_id: f.resolution,
    }
}

fn withdrawals_cases(cases: &mut Vec<Case>) {
    without_a_valid_token!(cases, "Withdrawals.RequestWithdrawal", |c, f, header| c
        .withdrawals
        .request_withdrawal(authorize(notice(&f, "1"), header)));
    without_a_valid_token!(cases, "Withdrawals.CancelWithdrawal", |c, f, header| c
        .withdrawals
        .cancel_withdrawal(authorize(
            pb::CancelWithdrawalRequest {
                request_id: request_id(),
                withdrawal_id: f.withdrawal
            },
            header
        )));
    without_a_valid_token!(cases, "Withdrawals.CompleteWithdrawal", |c, f, header| c
        .withdrawals
        .complete_withdrawal(authorize(completion(&f), header)));
    without_a_valid_token!(
        cases,
        "Withdrawals.SetWithdrawalsSuspended",
        |c, f, header| c
            .withdrawals
            .set_withdrawals_suspended(authorize(suspension(&f, true), header))
    );
    without_a_valid_token!(cases, "Withdrawals.ListWithdrawals", |c, f, header| c
        .withdrawals
        .list_withdrawals(authorize(pb::ListWithdrawalsRequest::default(), header)));
    let cancel = |withdrawal_id: u64| pb::CancelWithdrawalRequest {
        request_id: request_id(),
        withdrawal_id,
    };
    cases.extend([
        case!(
            "Withdrawals.RequestWithdrawal: a share that is not withdrawable",
            |c, f| c.withdrawals.request_withdrawal(with_token(
                pb::RequestWithdrawalRequest {
                    instrument: by_id(f.share),
                    ..notice(&f, "10")
                },
                &f.alice.1
            )),
            FailedPrecondition,
            "not a withdrawable",
            Some(58)
        ),
        case!(
            "Withdrawals.RequestWithdrawal: more than is free",
            |c, f| c
                .withdrawals
                .request_withdrawal(with_token(notice(&f, "41"), &f.alice.1)),
            FailedPrecondition,
            "not enough free units",
            Some(34)
        ),
        case!(
            "Withdrawals.RequestWithdrawal: nothing",
            |c, f| c
                .withdrawals
                .request_withdrawal(with_token(notice(&f, "0"), &f.alice.1)),
            InvalidArgument,
            "quantity: must be positive",
            Some(21)
        ),
        case!(
            "Withdrawals.RequestWithdrawal: unknown instrument",
            |c, f| c.withdrawals.request_withdrawal(with_token(
                pb::RequestWithdrawalRequest {
                    instrument: by_symbol("NOPE"),
                    ..notice(&f, "1")
                },
                &f.alice.1
            )),
            NotFound,
            "instrument: ",
            Some(4)
        ),
        case!(
            "Withdrawals.RequestWithdrawal: by an organization",
            |c, f| c
                .withdrawals
                .request_withdrawal(with_token(notice(&f, "1"), &f.organization.1)),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
        case!(
            "Withdrawals.CancelWithdrawal: another holder's",
            |c, f| c
                .withdrawals
                .cancel_withdrawal(with_token(cancel(f.withdrawal), &f.bob.1)),
            PermissionDenied,
            "another holder",
            Some(62)
        ),
        case!(
            "Withdrawals.CancelWithdrawal: unknown withdrawal",
            |c, f| c
                .withdrawals
                .cancel_withdrawal(with_token(cancel(999_999), &f.alice.1)),
            NotFound,
            "no pending withdrawal",
            Some(60)
        ),
        case!(
            "Withdrawals.CompleteWithdrawal: notice still running",
            |c, f| c
                .withdrawals
                .complete_withdrawal(with_token(completion(&f), &f.alice.1)),
            FailedPrecondition,
            "notice period",
            Some(61)
        ),
        case!(
            "Withdrawals.CompleteWithdrawal: by another holder",
            |c, f| c
                .withdrawals
                .complete_withdrawal(with_token(completion(&f), &f.bob.1)),
            PermissionDenied,
            "another holder",
            Some(62)
        ),
        case!(
            "Withdrawals.CompleteWithdrawal: unknown withdrawal",
            |c, f| c.withdrawals.complete_withdrawal(with_token(
                pb::CompleteWithdrawalRequest {
                    withdrawal_id: 999_999,
                    ..completion(&f)
                },
                &f.alice.1
            )),
            NotFound,
            "no pending withdrawal",
            Some(60)
        ),
        case!(
            "Withdrawals.SetWithdrawalsSuspended: by another organization",
            |c, f| c.withdrawals.set_withdrawals_suspended(with_token(
                suspension(&f, true),
                &f.other_organization.1
            )),
            PermissionDenied,
            "only the instrument's issuer",
            Some(8)
        ),
        case!(
            "Withdrawals.SetWithdrawalsSuspended: a share that is not withdrawable",
            |c, f| c.withdrawals.set_withdrawals_suspended(with_token(
                pb::SetWithdrawalsSuspendedRequest {
                    instrument: by_id(f.share),
                    ..suspension(&f, true)
                },
                &f.organization.1
            )),
            FailedPrecondition,
            "not a withdrawable",
            Some(58)
        ),
        case!(
            "Withdrawals.SetWithdrawalsSuspended: resuming what runs",
            |c, f| c
                .withdrawals
                .set_withdrawals_suspended(with_token(suspension(&f, false), &f.organization.1)),
            FailedPrecondition,
            "would change nothing",
            Some(51)
        ),
        case!(
            "Withdrawals.ListWithdrawals: page too large",
            |c, f| c.withdrawals.list_withdrawals(with_token(
                pb::ListWithdrawalsRequest {
                    page_size: 10_001,
                    ..Default::default()
                },
                &f.alice.1
            )),
            InvalidArgument,
            "page_size: at most 10000",
            None
        ),
        case!(
            "Withdrawals.ListWithdrawals: unknown instrument",
            |c, f| c.withdrawals.list_withdrawals(with_token(
                pb::ListWithdrawalsRequest {
                    instrument: by_symbol("NOPE"),
                    ..Default::default()
                },
                &f.alice.1
            )),
            NotFound,
            "instrument: ",
            Some(4)
        ),
    ]);
}

fn notice(f: &Fixture, quantity: &str) -> pb::RequestWithdrawalRequest {
    pb::RequestWithdrawalRequest {
        request_id: request_id(),
        instrument: by_id(f.withdrawable),
        quantity: quantity.into(),
    }
}

fn completion(f: &Fixture) -> pb::CompleteWithdrawalRequest {
    pb::CompleteWithdrawalRequest {
        request_id: request_id(),
        withdrawal_id: f.withdrawal,
    }
}

fn suspension(f: &Fixture, suspended: bool) -> pb::SetWithdrawalsSuspendedRequest {
    pb::SetWithdrawalsSuspendedRequest {
        request_id: request_id(),
        instrument: by_id(f.withdrawable),
        suspended,
    }
}

fn identity_cases(cases: &mut Vec<Case>) {
    let status = |participant_id: u32, suspended: bool| pb::SetParticipantStatusRequest {
        request_id: request_id(),
        participant_id,
        suspended,
    };
    let revoke = |token_id: u32| pb::RevokeTokenRequest {
        request_id: request_id(),
        token_id,
    };
    cases.extend([
        case!(
            "Identity.IssueToken: by a contributor",
            |c, f| c.identity.issue_token(with_token(
                pb::IssueTokenRequest {
                    participant_id: f.alice.0,
                    replace_existing: false
                },
                &f.alice.1
            )),
            PermissionDenied,
            "only the operator",
            None
        ),
        case!(
            "Identity.IssueToken: by the regulator",
            |c, f| c.identity.issue_token(with_token(
                pb::IssueTokenRequest {
                    participant_id: f.alice.0,
                    replace_existing: true
                },
                &f.regulator.1
            )),
            PermissionDenied,
            "only the operator",
            None
        ),
        case!(
            "Identity.IssueToken: unknown participant",
            |c, f| c.identity.issue_token(with_token(
                pb::IssueTokenRequest {
                    participant_id: 9_999,
                    replace_existing: false
                },
                &f.operator
            )),
            NotFound,
            "belongs to no registered participant",
            Some(3)
        ),
        case!(
            "Identity.RevokeToken: by a contributor",
            |c, f| c.identity.revoke_token(with_token(revoke(1), &f.alice.1)),
            PermissionDenied,
            "only the operator",
            None
        ),
        case!(
            "Identity.RevokeToken: unknown token",
            |c, f| c
                .identity
                .revoke_token(with_token(revoke(999_999), &f.operator)),
            NotFound,
            "no credential has this id",
            Some(54)
        ),
        case!(
            "Identity.RevokeToken: empty request_id",
            |c, f| c.identity.revoke_token(with_token(
                pb::RevokeTokenRequest {
                    request_id: String::new(),
                    token_id: 1
                },
                &f.operator
            )),
            InvalidArgument,
            "request_id: required",
            None
        ),
        case!(
            "Identity.ListTokens: by the regulator",
            |c, f| c
                .identity
                .list_tokens(with_token(pb::ListTokensRequest::default(), &f.regulator.1)),
            PermissionDenied,
            "only the operator",
            None
        ),
        case!(
            "Identity.ListTokens: limit too large",
            |c, f| c.identity.list_tokens(with_token(
                pb::ListTokensRequest {
                    limit: 10_001,
                    ..Default::default()
                },
                &f.operator
            )),
            InvalidArgument,
            "limit: at most 10000",
            None
        ),
        case!(
            "Identity.ListParticipants: by a contributor",
            |c, f| c.identity.list_participants(with_token(
                pb::ListParticipantsRequest::default(),
                &f.alice.1
            )),
            PermissionDenied,
            "only the operator or a regulator",
            None
        ),
        case!(
            "Identity.ListParticipants: by an organization",
            |c, f| c.identity.list_participants(with_token(
                pb::ListParticipantsRequest::default(),
                &f.organization.1
            )),
            PermissionDenied,
            "only the operator or a regulator",
            None
        ),
        case!(
            "Identity.ListParticipants: limit too large",
            |c, f| c.identity.list_participants(with_token(
                pb::ListParticipantsRequest {
                    limit: u32::MAX,
                    ..Default::default()
                },
                &f.regulator.1
            )),
            InvalidArgument,
            "limit:",
            None
        ),
        case!(
            "Identity.SetParticipantStatus: by a contributor",
            |c, f| c
                .identity
                .set_participant_status(with_token(status(f.bob.0, true), &f.alice.1)),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
        case!(
            "Identity.SetParticipantStatus: by the regulator",
            |c, f| c
                .identity
                .set_participant_status(with_token(status(f.bob.0, true), &f.regulator.1)),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
        case!(
            "Identity.SetParticipantStatus: the genesis operator",
            |c, f| c
                .identity
                .set_participant_status(with_token(status(0, true), &f.operator)),
            FailedPrecondition,
            "cannot suspend itself",
            Some(56)
        ),
        case!(
            "Identity.SetParticipantStatus: unknown participant",
            |c, f| c
                .identity
                .set_participant_status(with_token(status(9_999, true), &f.operator)),
            NotFound,
            "belongs to no registered participant",
            Some(3)
        ),
        case!(
            "Identity.SetParticipantStatus: reinstating the active",
            |c, f| c
                .identity
                .set_participant_status(with_token(status(f.bob.0, false), &f.operator)),
            FailedPrecondition,
            "would change nothing",
            Some(51)
        ),
        case!(
            "Identity.SetParticipantStatus: empty request_id",
            |c, f| c.identity.set_participant_status(with_token(
                pb::SetParticipantStatusRequest {
                    request_id: String::new(),
                    ..status(f.bob.0, true)
                },
                &f.operator
            )),
            InvalidArgument,
            "request_id: required",
            None
        ),
    ]);
}

// ---- Valid requests, each case changing one thing ----

/// A buy bob may place: one lot at 9.00 (below alice's ask, so it would rest).
fn buy(f: &Fixture) -> pb::PlaceOrderRequest {
    limit(f.share, Buy, "9.00", "10")
}

fn offering_of_share(f: &Fixture) -> pb::OpenOfferingRequest {
    pb::OpenOfferingRequest {
        request_id: request_id(),
        instrument: by_id(f.share),
        quantity: "100".into(),
        minimum_quantity: "10".into(),
    }
}

fn distribution(f: &Fixture, per_unit: &str) -> pb::PayDistributionRequest {
    pb::PayDistributionRequest {
        request_id: request_id(),
        instrument: by_id(f.share),
        amount_per_unit: per_unit.into(),
    }
}

fn subscription(f: &Fixture, quantity: &str) -> pb::SubscribeRequest {
    pb::SubscribeRequest {
        request_id: request_id(),
        offering_id: f.bond_offering_open,
        quantity: quantity.into(),
    }
}

fn listing(f: &Fixture) -> pb::ListInstrumentRequest {
    share("NEW-A", f.organization.0)
}

fn no_instrument() -> Option<pb::InstrumentRef> {
    Some(pb::InstrumentRef { instrument: None })
}

/// Sends one command on its own `OrderEntry` stream; a `Rejection` comes back as the status the
/// unary call would have returned, with its reason code in the same trailer.
async fn order_entry_once(c: &mut Clients, token: &str, command: Option<EntryCommand>) -> Outcome {
    let replies = c
        .exchange
        .order_entry(with_token(
            tokio_stream::iter([pb::OrderEntryRequest { command }]),
            token,
        ))
        .await?
        .into_inner();
    let replies: Vec<pb::OrderEntryResponse> = replies.collect::<Result<_, _>>().await?;
    assert_eq!(replies.len(), 1, "one reply per command: {replies:?}");
    match &replies[0].result {
        Some(EntryResult::Rejected(rejection)) => {
            let mut status =
                Status::new(Code::from(rejection.grpc_code), rejection.message.clone());
            if rejection.reason_code != 0 {
                status.metadata_mut().insert(
                    "mutua-reason-code",
                    rejection.reason_code.to_string().parse().expect("digits"),
                );
            }
            Err(status)
        }
        _ => Ok(()),
    }
}

async fn echo_once(c: &mut Clients, token: &str, reply_bytes: u32) -> Outcome {
    let message = pb::EchoMessage {
        payload: vec![7; 16],
        reply_bytes,
    };
    let replies = c
        .diagnostics
        .echo(with_token(tokio_stream::iter([message]), token))
        .await?
        .into_inner();
    let replies: Vec<pb::EchoMessage> = replies.collect::<Result<_, _>>().await?;
    assert_eq!(replies.len(), 1, "one echo per message: {replies:?}");
    Ok(())
}

/// Malformed, negative, huge and off-grid decimal strings, as every decimal field must refuse them.
const NOT_A_NUMBER: [&str; 5] = [
    "ten",
    "10,00",
    "1e30",
    "0x10",
    "1.00000000000000000000000000001",
];

fn exchange_cases(cases: &mut Vec<Case>) {
    let prices: Vec<(&'static str, Code, &'static str, Option<u16>)> = vec![
        ("", InvalidArgument, "price: required", None),
        (
            "-10.00",
            InvalidArgument,
            "price: must be positive",
            Some(24),
        ),
        ("0", InvalidArgument, "price: must be positive", Some(24)),
        (
            "10.01",
            InvalidArgument,
            "price: not a whole number of ticks (tick 0.05)",
            Some(25),
        ),
        (
            "10.001",
            InvalidArgument,
            "price: not a whole number of ticks",
            Some(25),
        ),
        (
            "99999999999999999999999",
            InvalidArgument,
            "price: too large",
            Some(26),
        ),
        (
            "10000000000000000000000000000000000000000000000000000000000000000",
            InvalidArgument,
            "price: longer than 64",
            None,
        ),
        ("10.05", OutOfRange, "above the accrued value", Some(26)),
        ("4.95", OutOfRange, "below the instrument's floor", Some(27)),
    ];
    for (price, code, fragment, reason) in prices {
        cases.push(case!(
            format!("Exchange.PlaceOrder: price {price:?}"),
            |c, f| c.exchange.place_order(with_token(
                pb::PlaceOrderRequest {
                    price: price.into(),
                    ..buy(&f)
                },
                &f.bob.1
            )),
            code,
            fragment,
            reason
        ));
    }
    for text in NOT_A_NUMBER {
        cases.push(case!(
            format!("Exchange.PlaceOrder: price {text:?}"),
            |c, f| c.exchange.place_order(with_token(
                pb::PlaceOrderRequest {
                    price: text.into(),
                    ..buy(&f)
                },
                &f.bob.1
            )),
            InvalidArgument,
            "price: ",
            None
        ));
        cases.push(case!(
            format!("Exchange.PlaceOrder: quantity {text:?}"),
            |c, f| c.exchange.place_order(with_token(
                pb::PlaceOrderRequest {
                    quantity: text.into(),
                    ..buy(&f)
                },
                &f.bob.1
            )),
            InvalidArgument,
            "quantity: ",
            None
        ));
    }
    let quantities: Vec<(&'static str, &'static str, Option<u16>)> = vec![
        ("", "quantity: required", None),
        ("0", "quantity: must be positive", Some(21)),
        ("-10", "quantity: must be positive", Some(21)),
        (
            "15",
            "quantity: not a whole number of lots (lot 10 units)",
            Some(23),
        ),
        ("10.5", "quantity: not a whole number of lots", Some(23)),
        ("100000000000000000000000", "quantity: too large", Some(22)),
        ("100000000000", "maximum per command", Some(22)),
    ];
    for (quantity, fragment, reason) in quantities {
        cases.push(case!(
            format!("Exchange.PlaceOrder: quantity {quantity:?}"),
            |c, f| c.exchange.place_order(with_token(
                pb::PlaceOrderRequest {
                    quantity: quantity.into(),
                    ..buy(&f)
                },
                &f.bob.1
            )),
            InvalidArgument,
            fragment,
            reason
        ));
    }
    cases.extend([
        case!(
            "Exchange.PlaceOrder: no instrument",
            |c, f| c.exchange.place_order(with_token(
                pb::PlaceOrderRequest {
                    instrument: None,
                    ..buy(&f)
                },
                &f.bob.1
            )),
            InvalidArgument,
            "instrument: required",
            None
        ),
        case!(
            "Exchange.PlaceOrder: empty instrument reference",
            |c, f| c.exchange.place_order(with_token(
                pb::PlaceOrderRequest {
                    instrument: no_instrument(),
                    ..buy(&f)
                },
                &f.bob.1
            )),
            InvalidArgument,
            "instrument: required",
            None
        ),
        case!(
            "Exchange.PlaceOrder: unknown instrument id",
            |c, f| c.exchange.place_order(with_token(
                pb::PlaceOrderRequest {
                    instrument: by_id(999),
                    ..buy(&f)
                },
                &f.bob.1
            )),
            NotFound,
            "instrument: no instrument has this id",
            Some(4)
        ),
        case!(
            "Exchange.PlaceOrder: unknown symbol",
            |c, f| c.exchange.place_order(with_token(
                pb::PlaceOrderRequest {
                    instrument: by_symbol("NOPE"),
                    ..buy(&f)
                },
                &f.bob.1
            )),
            NotFound,
            "instrument:",
            Some(4)
        ),
        case!(
            "Exchange.PlaceOrder: side unspecified",
            |c, f| c.exchange.place_order(with_token(
                pb::PlaceOrderRequest { side: 0, ..buy(&f) },
                &f.bob.1
            )),
            InvalidArgument,
            "side: required",
            None
        ),
        case!(
            "Exchange.PlaceOrder: side 7",
            |c, f| c.exchange.place_order(with_token(
                pb::PlaceOrderRequest { side: 7, ..buy(&f) },
                &f.bob.1
            )),
            InvalidArgument,
            "side: 7 is not a known value",
            None
        ),
        case!(
            "Exchange.PlaceOrder: time in force 9",
            |c, f| c.exchange.place_order(with_token(
                pb::PlaceOrderRequest {
                    time_in_force: 9,
                    ..buy(&f)
                },
                &f.bob.1
            )),
            InvalidArgument,
            "time_in_force: 9",
            None
        ),
        case!(
            "Exchange.PlaceOrder: self-trade prevention -1",
            |c, f| c.exchange.place_order(with_token(
                pb::PlaceOrderRequest {
                    self_trade_prevention: -1,
                    ..buy(&f)
                },
                &f.bob.1
            )),
            InvalidArgument,
            "self_trade_prevention: -1",
            None
        ),
        case!(
            "Exchange.PlaceOrder: empty request_id",
            |c, f| c.exchange.place_order(with_token(
                pb::PlaceOrderRequest {
                    request_id: String::new(),
                    ..buy(&f)
                },
                &f.bob.1
            )),
            InvalidArgument,
            "request_id: required",
            None
        ),
        case!(
            "Exchange.PlaceOrder: oversized request_id",
            |c, f| c.exchange.place_order(with_token(
                pb::PlaceOrderRequest {
                    request_id: "r".repeat(129),
                    ..buy(&f)
                },
                &f.bob.1
            )),
            InvalidArgument,
            "request_id: longer than 128",
            None
        ),
        case!(
            "Exchange.PlaceOrder: request_id first used for a subscription",
            |c, f| c.exchange.place_order(with_token(
                pb::PlaceOrderRequest {
                    request_id: BOB_SUBSCRIPTION_REQUEST.into(),
                    ..buy(&f)
                },
                &f.bob.1
            )),
            InvalidArgument,
            "request_id: the request id was already used for a different command",
            Some(52)
        ),
        case!(
            "Exchange.PlaceOrder: by the operator",
            |c, f| c.exchange.place_order(with_token(buy(&f), &f.operator)),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
        case!(
            "Exchange.PlaceOrder: by an organization",
            |c, f| c
                .exchange
                .place_order(with_token(buy(&f), &f.organization.1)),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
        case!(
            "Exchange.PlaceOrder: by the regulator",
            |c, f| c.exchange.place_order(with_token(buy(&f), &f.regulator.1)),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
        case!(
            "Exchange.PlaceOrder: more cash than free",
            |c, f| c
                .exchange
                .place_order(with_token(limit(f.share, Buy, "10.00", "2000"), &f.bob.1)),
            FailedPrecondition,
            "not enough free cash",
            Some(33)
        ),
        case!(
            "Exchange.PlaceOrder: a contributor without cash",
            |c, f| c.exchange.place_order(with_token(buy(&f), &f.carol.1)),
            FailedPrecondition,
            "not enough free cash",
            Some(33)
        ),
        case!(
            "Exchange.PlaceOrder: over the holding cap",
            |c, f| c.exchange.place_order(with_token(buy(&f), &f.alice.1)),
            FailedPrecondition,
            "exceed the cap",
            Some(35)
        ),
        case!(
            "Exchange.PlaceOrder: selling units not held",
            |c, f| c
                .exchange
                .place_order(with_token(limit(f.share, Sell, "9.40", "300"), &f.bob.1)),
            FailedPrecondition,
            "not enough free units",
            Some(34)
        ),
        case!(
            "Exchange.PlaceOrder: selling units inside their lock-in",
            |c, f| c
                .exchange
                .place_order(with_token(limit(f.cip, Sell, "10.00", "10"), &f.alice.1)),
            FailedPrecondition,
            "lock-in",
            Some(36)
        ),
        case!(
            "Exchange.PlaceOrder: trading closed",
            |c, f| c
                .exchange
                .place_order(with_token(limit(f.bond, Buy, "100.00", "10"), &f.bob.1)),
            FailedPrecondition,
            "not open for trading",
            Some(32)
        ),
    ]);

    let reduce_by: Vec<(&'static str, &'static str, Option<u16>)> = vec![
        ("", "reduce_by: required", None),
        ("0", "reduce_by: must be positive", Some(21)),
        ("-10", "reduce_by: must be positive", Some(21)),
        ("5", "reduce_by: not a whole number of lots", Some(23)),
        ("abc", "reduce_by: ", None),
        ("100000000000000000000000", "reduce_by: too large", Some(22)),
    ];
    for (amount, fragment, reason) in reduce_by {
        cases.push(case!(
            format!("Exchange.ReduceOrder: reduce_by {amount:?}"),
            |c, f| c.exchange.reduce_order(with_token(
                pb::ReduceOrderRequest {
                    request_id: request_id(),
                    order_id: f.bob_bid,
                    reduce_by: amount.into()
                },
                &f.bob.1
            )),
            InvalidArgument,
            fragment,
            reason
        ));
    }
    cases.extend([
        case!(
            "Exchange.ReduceOrder: unknown order",
            |c, f| c.exchange.reduce_order(with_token(
                pb::ReduceOrderRequest {
                    request_id: request_id(),
                    order_id: 999_999,
                    reduce_by: "10".into()
                },
                &f.bob.1
            )),
            NotFound,
            "order_id: no order has this id",
            Some(5)
        ),
        case!(
            "Exchange.ReduceOrder: another contributor's order",
            |c, f| c.exchange.reduce_order(with_token(
                pb::ReduceOrderRequest {
                    request_id: request_id(),
                    order_id: f.bob_bid,
                    reduce_by: "10".into()
                },
                &f.alice.1
            )),
            PermissionDenied,
            "belongs to another participant",
            Some(7)
        ),
        case!(
            "Exchange.ReduceOrder: by the operator",
            |c, f| c.exchange.reduce_order(with_token(
                pb::ReduceOrderRequest {
                    request_id: request_id(),
                    order_id: f.bob_bid,
                    reduce_by: "10".into()
                },
                &f.operator
            )),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
        case!(
            "Exchange.ReduceOrder: empty request_id",
            |c, f| c.exchange.reduce_order(with_token(
                pb::ReduceOrderRequest {
                    request_id: String::new(),
                    order_id: f.bob_bid,
                    reduce_by: "10".into()
                },
                &f.bob.1
            )),
            InvalidArgument,
            "request_id: required",
            None
        ),
        case!(
            "Exchange.CancelOrder: unknown order",
            |c, f| c.exchange.cancel_order(with_token(
                pb::CancelOrderRequest {
                    request_id: request_id(),
                    order_id: 999_999
                },
                &f.bob.1
            )),
            NotFound,
            "no order has this id",
            Some(5)
        ),
        case!(
            "Exchange.CancelOrder: order id 0",
            |c, f| c.exchange.cancel_order(with_token(
                pb::CancelOrderRequest {
                    request_id: request_id(),
                    order_id: 0
                },
                &f.bob.1
            )),
            NotFound,
            "no order has this id",
            Some(5)
        ),
        case!(
            "Exchange.CancelOrder: another contributor's order",
            |c, f| c.exchange.cancel_order(with_token(
                pb::CancelOrderRequest {
                    request_id: request_id(),
                    order_id: f.bob_bid
                },
                &f.alice.1
            )),
            PermissionDenied,
            "belongs to another participant",
            Some(7)
        ),
        case!(
            "Exchange.CancelOrder: by the operator",
            |c, f| c.exchange.cancel_order(with_token(
                pb::CancelOrderRequest {
                    request_id: request_id(),
                    order_id: f.alice_ask
                },
                &f.operator
            )),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
        case!(
            "Exchange.CancelOrder: by an organization",
            |c, f| c.exchange.cancel_order(with_token(
                pb::CancelOrderRequest {
                    request_id: request_id(),
                    order_id: f.alice_ask
                },
                &f.organization.1
            )),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
        case!(
            "Exchange.CancelOrder: empty request_id",
            |c, f| c.exchange.cancel_order(with_token(
                pb::CancelOrderRequest {
                    request_id: String::new(),
                    order_id: f.bob_bid
                },
                &f.bob.1
            )),
            InvalidArgument,
            "request_id: required",
            None
        ),
        case!(
            "Exchange.GetOrder: unknown order",
            |c, f| c.exchange.get_order(with_token(
                pb::GetOrderRequest { order_id: 999_999 },
                &f.bob.1
            )),
            NotFound,
            "order_id: no order has this id",
            Some(5)
        ),
        case!(
            "Exchange.GetOrder: another contributor's order",
            |c, f| c.exchange.get_order(with_token(
                pb::GetOrderRequest {
                    order_id: f.bob_bid
                },
                &f.alice.1
            )),
            PermissionDenied,
            "order_id: the order belongs to another participant",
            Some(7)
        ),
        case!(
            "Exchange.GetOrder: an organization reading a contributor's order",
            |c, f| c.exchange.get_order(with_token(
                pb::GetOrderRequest {
                    order_id: f.bob_bid
                },
                &f.organization.1
            )),
            PermissionDenied,
            "order_id:",
            Some(7)
        ),
        case!(
            "Exchange.ListOrders: another contributor's orders",
            |c, f| c.exchange.list_orders(with_token(
                pb::ListOrdersRequest {
                    participant_id: Some(f.bob.0)
                },
                &f.alice.1
            )),
            PermissionDenied,
            "participant_id: only a regulator or operator",
            None
        ),
        case!(
            "Exchange.ListOrders: unknown participant",
            |c, f| c.exchange.list_orders(with_token(
                pb::ListOrdersRequest {
                    participant_id: Some(9_999)
                },
                &f.operator
            )),
            NotFound,
            "participant_id:",
            Some(3)
        ),
        case!(
            "Exchange.OrderEntry: empty command",
            |c, f| order_entry_once(&mut c, &f.bob.1, None),
            InvalidArgument,
            "command: required",
            None
        ),
        case!(
            "Exchange.OrderEntry: off-tick price",
            |c, f| order_entry_once(
                &mut c,
                &f.bob.1,
                Some(EntryCommand::Place(pb::PlaceOrderRequest {
                    price: "10.02".into(),
                    ..buy(&f)
                }))
            ),
            InvalidArgument,
            "price: not a whole number of ticks",
            Some(25)
        ),
        case!(
            "Exchange.OrderEntry: unknown instrument",
            |c, f| order_entry_once(
                &mut c,
                &f.bob.1,
                Some(EntryCommand::Place(pb::PlaceOrderRequest {
                    instrument: by_id(999),
                    ..buy(&f)
                }))
            ),
            NotFound,
            "instrument:",
            Some(4)
        ),
        case!(
            "Exchange.OrderEntry: empty request_id",
            |c, f| order_entry_once(
                &mut c,
                &f.bob.1,
                Some(EntryCommand::Place(pb::PlaceOrderRequest {
                    request_id: String::new(),
                    ..buy(&f)
                }))
            ),
            InvalidArgument,
            "request_id: required",
            None
        ),
        case!(
            "Exchange.OrderEntry: cancel an unknown order",
            |c, f| order_entry_once(
                &mut c,
                &f.bob.1,
                Some(EntryCommand::Cancel(pb::CancelOrderRequest {
                    request_id: request_id(),
                    order_id: 999_999
                }))
            ),
            NotFound,
            "no order has this id",
            Some(5)
        ),
        case!(
            "Exchange.OrderEntry: reduce an unknown order",
            |c, f| order_entry_once(
                &mut c,
                &f.bob.1,
                Some(EntryCommand::Reduce(pb::ReduceOrderRequest {
                    request_id: request_id(),
                    order_id: 999_999,
                    reduce_by: "10".into()
                }))
            ),
            NotFound,
            "order_id:",
            Some(5)
        ),
        case!(
            "Exchange.OrderEntry: cancel another contributor's order",
            |c, f| order_entry_once(
                &mut c,
                &f.alice.1,
                Some(EntryCommand::Cancel(pb::CancelOrderRequest {
                    request_id: request_id(),
                    order_id: f.bob_bid
                }))
            ),
            PermissionDenied,
            "belongs to another participant",
            Some(7)
        ),
        case!(
            "Exchange.OrderEntry: placed by the operator",
            |c, f| order_entry_once(&mut c, &f.operator, Some(EntryCommand::Place(buy(&f)))),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
    ]);
}

fn accounts_cases(cases: &mut Vec<Case>) {
    let amounts: Vec<(&'static str, Code, &'static str, Option<u16>)> = vec![
        ("", InvalidArgument, "amount: required", None),
        (
            "-5.00",
            InvalidArgument,
            "amount: must be positive",
            Some(28),
        ),
        ("0", InvalidArgument, "amount: must be positive", Some(28)),
        (
            "0.001",
            InvalidArgument,
            "amount: finer than the currency's minor unit (0.01)",
            Some(29),
        ),
        (
            "99999999999999999999999",
            InvalidArgument,
            "amount: too large for the ledger",
            Some(30),
        ),
        // Fits one account, but not the cash already circulating plus this.
        (
            "184467440737095516.15",
            OutOfRange,
            "too large for the ledger",
            Some(30),
        ),
    ];
    for (amount, code, fragment, reason) in amounts {
        cases.push(case!(
            format!("Accounts.Deposit: amount {amount:?}"),
            |c, f| c.accounts.deposit(with_token(
                pb::DepositRequest {
                    request_id: request_id(),
                    participant_id: f.alice.0,
                    amount: amount.into()
                },
                &f.operator
            )),
            code,
            fragment,
            reason
        ));
    }
    for text in NOT_A_NUMBER {
        cases.push(case!(
            format!("Accounts.Deposit: amount {text:?}"),
            |c, f| c.accounts.deposit(with_token(
                pb::DepositRequest {
                    request_id: request_id(),
                    participant_id: f.alice.0,
                    amount: text.into()
                },
                &f.operator
            )),
            InvalidArgument,
            "amount: ",
            None
        ));
        cases.push(case!(
            format!("Accounts.Withdraw: amount {text:?}"),
            |c, f| c.accounts.withdraw(with_token(
                pb::WithdrawRequest {
                    request_id: request_id(),
                    participant_id: f.alice.0,
                    amount: text.into()
                },
                &f.operator
            )),
            InvalidArgument,
            "amount: ",
            None
        ));
    }
    let to_alice = |f: &Fixture| pb::DepositRequest {
        request_id: request_id(),
        participant_id: f.alice.0,
        amount: "1.00".into(),
    };
    let to_nobody = |_: &Fixture| pb::DepositRequest {
        request_id: request_id(),
        participant_id: 9_999,
        amount: "1.00".into(),
    };
    let withdraw = |participant: u32, amount: &str| pb::WithdrawRequest {
        request_id: request_id(),
        participant_id: participant,
        amount: amount.into(),
    };
    cases.extend([
        case!(
            "Accounts.Deposit: by a contributor",
            |c, f| c.accounts.deposit(with_token(to_alice(&f), &f.alice.1)),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
        case!(
            "Accounts.Deposit: by the regulator",
            |c, f| c.accounts.deposit(with_token(to_alice(&f), &f.regulator.1)),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
        case!(
            "Accounts.Deposit: unknown participant",
            |c, f| c.accounts.deposit(with_token(to_nobody(&f), &f.operator)),
            NotFound,
            "belongs to no registered participant",
            Some(3)
        ),
        case!(
            "Accounts.Deposit: empty request_id",
            |c, f| c.accounts.deposit(with_token(
                pb::DepositRequest {
                    request_id: String::new(),
                    ..to_alice(&f)
                },
                &f.operator
            )),
            InvalidArgument,
            "request_id: required",
            None
        ),
        case!(
            "Accounts.Withdraw: more than the balance",
            |c, f| c
                .accounts
                .withdraw(with_token(withdraw(f.bob.0, "100000.00"), &f.operator)),
            FailedPrecondition,
            "not enough free cash",
            Some(33)
        ),
        // Bob's balance is 19000.00, but 1500.00 of it backs his bid and his subscription.
        case!(
            "Accounts.Withdraw: reserved cash",
            |c, f| c
                .accounts
                .withdraw(with_token(withdraw(f.bob.0, "18000.00"), &f.operator)),
            FailedPrecondition,
            "not enough free cash",
            Some(33)
        ),
        case!(
            "Accounts.Withdraw: zero",
            |c, f| c
                .accounts
                .withdraw(with_token(withdraw(f.bob.0, "0.00"), &f.operator)),
            InvalidArgument,
            "amount: must be positive",
            Some(28)
        ),
        case!(
            "Accounts.Withdraw: negative",
            |c, f| c
                .accounts
                .withdraw(with_token(withdraw(f.bob.0, "-1"), &f.operator)),
            InvalidArgument,
            "amount: must be positive",
            Some(28)
        ),
        case!(
            "Accounts.Withdraw: finer than a cent",
            |c, f| c
                .accounts
                .withdraw(with_token(withdraw(f.bob.0, "0.005"), &f.operator)),
            InvalidArgument,
            "amount: finer than",
            Some(29)
        ),
        case!(
            "Accounts.Withdraw: huge",
            |c, f| c.accounts.withdraw(with_token(
                withdraw(f.bob.0, "99999999999999999999999"),
                &f.operator
            )),
            InvalidArgument,
            "amount: too large",
            Some(30)
        ),
        case!(
            "Accounts.Withdraw: empty amount",
            |c, f| c
                .accounts
                .withdraw(with_token(withdraw(f.bob.0, ""), &f.operator)),
            InvalidArgument,
            "amount: required",
            None
        ),
        case!(
            "Accounts.Withdraw: unknown participant",
            |c, f| c
                .accounts
                .withdraw(with_token(withdraw(9_999, "1.00"), &f.operator)),
            NotFound,
            "belongs to no registered participant",
            Some(3)
        ),
        case!(
            "Accounts.Withdraw: by a contributor",
            |c, f| c
                .accounts
                .withdraw(with_token(withdraw(f.bob.0, "1.00"), &f.bob.1)),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
        case!(
            "Accounts.Withdraw: by the issuer",
            |c, f| c.accounts.withdraw(with_token(
                withdraw(f.organization.0, "1.00"),
                &f.organization.1
            )),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
        case!(
            "Accounts.Withdraw: empty request_id",
            |c, f| c.accounts.withdraw(with_token(
                pb::WithdrawRequest {
                    request_id: String::new(),
                    ..withdraw(f.bob.0, "1.00")
                },
                &f.operator
            )),
            InvalidArgument,
            "request_id: required",
            None
        ),
        case!(
            "Accounts.GetBalances: another contributor's",
            |c, f| c.accounts.get_balances(with_token(
                pb::GetBalancesRequest {
                    participant_id: Some(f.bob.0)
                },
                &f.alice.1
            )),
            PermissionDenied,
            "participant_id: only a regulator or operator",
            None
        ),
        case!(
            "Accounts.GetBalances: a contributor's, by an organization",
            |c, f| c.accounts.get_balances(with_token(
                pb::GetBalancesRequest {
                    participant_id: Some(f.bob.0)
                },
                &f.organization.1
            )),
            PermissionDenied,
            "participant_id:",
            None
        ),
        case!(
            "Accounts.GetBalances: unknown participant",
            |c, f| c.accounts.get_balances(with_token(
                pb::GetBalancesRequest {
                    participant_id: Some(9_999)
                },
                &f.operator
            )),
            NotFound,
            "participant_id:",
            Some(3)
        ),
        case!(
            "Accounts.GetBalances: unknown participant, by the regulator",
            |c, f| c.accounts.get_balances(with_token(
                pb::GetBalancesRequest {
                    participant_id: Some(u32::MAX)
                },
                &f.regulator.1
            )),
            NotFound,
            "participant_id:",
            Some(3)
        ),
        case!(
            "Accounts.GetHoldings: another contributor's",
            |c, f| c.accounts.get_holdings(with_token(
                pb::GetHoldingsRequest {
                    participant_id: Some(f.alice.0)
                },
                &f.bob.1
            )),
            PermissionDenied,
            "participant_id:",
            None
        ),
        case!(
            "Accounts.GetHoldings: unknown participant",
            |c, f| c.accounts.get_holdings(with_token(
                pb::GetHoldingsRequest {
                    participant_id: Some(9_999)
                },
                &f.operator
            )),
            NotFound,
            "participant_id:",
            Some(3)
        ),
        case!(
            "Accounts.GetTaxCredits: another contributor's",
            |c, f| c.accounts.get_tax_credits(with_token(
                pb::GetTaxCreditsRequest {
                    participant_id: Some(f.alice.0),
                    year: None
                },
                &f.carol.1
            )),
            PermissionDenied,
            "participant_id:",
            None
        ),
        case!(
            "Accounts.GetTaxCredits: unknown participant",
            |c, f| c.accounts.get_tax_credits(with_token(
                pb::GetTaxCreditsRequest {
                    participant_id: Some(9_999),
                    year: Some(2024)
                },
                &f.regulator.1
            )),
            NotFound,
            "participant_id:",
            Some(3)
        ),
    ]);
}

fn registry_cases(cases: &mut Vec<Case>) {
    let registration = |role: pb::Role, name: &str| pb::RegisterParticipantRequest {
        request_id: request_id(),
        role: role as i32,
        name: name.into(),
    };
    let accreditation = |organization: u32, accredited: bool| pb::SetAccreditationRequest {
        request_id: request_id(),
        organization_id: organization,
        accredited,
    };
    let trading = |instrument: Option<pb::InstrumentRef>, open: bool| pb::SetTradingStatusRequest {
        request_id: request_id(),
        instrument,
        open,
    };
    cases.extend([
        case!(
            "Registry.RegisterParticipant: by a contributor",
            |c, f| c.registry.register_participant(with_token(
                registration(pb::Role::Operator, "mallory"),
                &f.alice.1
            )),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
        case!(
            "Registry.RegisterParticipant: by the regulator",
            |c, f| c.registry.register_participant(with_token(
                registration(pb::Role::Contributor, "dave"),
                &f.regulator.1
            )),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
        case!(
            "Registry.RegisterParticipant: role unspecified",
            |c, f| c.registry.register_participant(with_token(
                registration(pb::Role::Unspecified, "dave"),
                &f.operator
            )),
            InvalidArgument,
            "role: required",
            None
        ),
        case!(
            "Registry.RegisterParticipant: role 42",
            |c, f| c.registry.register_participant(with_token(
                pb::RegisterParticipantRequest {
                    role: 42,
                    ..registration(pb::Role::Contributor, "dave")
                },
                &f.operator
            )),
            InvalidArgument,
            "role: 42 is not a known value",
            None
        ),
        case!(
            "Registry.RegisterParticipant: empty name",
            |c, f| c.registry.register_participant(with_token(
                registration(pb::Role::Contributor, ""),
                &f.operator
            )),
            InvalidArgument,
            "name is empty or too long",
            Some(10)
        ),
        case!(
            "Registry.RegisterParticipant: blank name",
            |c, f| c.registry.register_participant(with_token(
                registration(pb::Role::Contributor, "   "),
                &f.operator
            )),
            InvalidArgument,
            "name is empty or too long",
            Some(10)
        ),
        case!(
            "Registry.RegisterParticipant: name of 201 bytes",
            |c, f| c.registry.register_participant(with_token(
                registration(pb::Role::Contributor, &"n".repeat(201)),
                &f.operator
            )),
            InvalidArgument,
            "name: at most 200 bytes",
            Some(10)
        ),
        case!(
            "Registry.RegisterParticipant: empty request_id",
            |c, f| c.registry.register_participant(with_token(
                pb::RegisterParticipantRequest {
                    request_id: String::new(),
                    ..registration(pb::Role::Contributor, "dave")
                },
                &f.operator
            )),
            InvalidArgument,
            "request_id: required",
            None
        ),
        case!(
            "Registry.SetAccreditation: by a contributor",
            |c, f| c.registry.set_accreditation(with_token(
                accreditation(f.organization.0, true),
                &f.alice.1
            )),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
        case!(
            "Registry.SetAccreditation: by an organization",
            |c, f| c.registry.set_accreditation(with_token(
                accreditation(f.organization.0, true),
                &f.organization.1
            )),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
        case!(
            "Registry.SetAccreditation: unknown organization",
            |c, f| c
                .registry
                .set_accreditation(with_token(accreditation(9_999, true), &f.regulator.1)),
            NotFound,
            "belongs to no registered participant",
            Some(3)
        ),
        case!(
            "Registry.SetAccreditation: a contributor named",
            |c, f| c
                .registry
                .set_accreditation(with_token(accreditation(f.alice.0, true), &f.regulator.1)),
            FailedPrecondition,
            "not an organization",
            Some(9)
        ),
        case!(
            "Registry.SetAccreditation: suspending the unaccredited",
            |c, f| c.registry.set_accreditation(with_token(
                accreditation(f.other_organization.0, false),
                &f.operator
            )),
            FailedPrecondition,
            "would change nothing",
            Some(51)
        ),
        case!(
            "Registry.SetAccreditation: empty request_id",
            |c, f| c.registry.set_accreditation(with_token(
                pb::SetAccreditationRequest {
                    request_id: String::new(),
                    ..accreditation(f.organization.0, true)
                },
                &f.operator
            )),
            InvalidArgument,
            "request_id: required",
            None
        ),
        case!(
            "Registry.SetTradingStatus: by a contributor",
            |c, f| c
                .registry
                .set_trading_status(with_token(trading(by_id(f.share), false), &f.alice.1)),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
        case!(
            "Registry.SetTradingStatus: by the issuer",
            |c, f| c.registry.set_trading_status(with_token(
                trading(by_id(f.share), false),
                &f.organization.1
            )),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
        case!(
            "Registry.SetTradingStatus: unknown instrument",
            |c, f| c
                .registry
                .set_trading_status(with_token(trading(by_id(999), true), &f.operator)),
            NotFound,
            "instrument:",
            Some(4)
        ),
        case!(
            "Registry.SetTradingStatus: no instrument",
            |c, f| c
                .registry
                .set_trading_status(with_token(trading(None, true), &f.operator)),
            InvalidArgument,
            "instrument: required",
            None
        ),
        case!(
            "Registry.SetTradingStatus: already open",
            |c, f| c
                .registry
                .set_trading_status(with_token(trading(by_id(f.share), true), &f.operator)),
            FailedPrecondition,
            "would change nothing",
            Some(51)
        ),
        case!(
            "Registry.SetTradingStatus: empty request_id",
            |c, f| c.registry.set_trading_status(with_token(
                pb::SetTradingStatusRequest {
                    request_id: String::new(),
                    ..trading(by_id(f.share), false)
                },
                &f.operator
            )),
            InvalidArgument,
            "request_id: required",
            None
        ),
        case!(
            "Registry.GetInstrument: no instrument",
            |c, f| c.registry.get_instrument(with_token(
                pb::GetInstrumentRequest { instrument: None },
                &f.alice.1
            )),
            InvalidArgument,
            "instrument: required",
            None
        ),
        case!(
            "Registry.GetInstrument: empty reference",
            |c, f| c.registry.get_instrument(with_token(
                pb::GetInstrumentRequest {
                    instrument: no_instrument()
                },
                &f.alice.1
            )),
            InvalidArgument,
            "instrument: required",
            None
        ),
        case!(
            "Registry.GetInstrument: unknown id",
            |c, f| c.registry.get_instrument(with_token(
                pb::GetInstrumentRequest {
                    instrument: by_id(u32::MAX)
                },
                &f.alice.1
            )),
            NotFound,
            "instrument:",
            Some(4)
        ),
        case!(
            "Registry.GetInstrument: unknown symbol",
            |c, f| c.registry.get_instrument(with_token(
                pb::GetInstrumentRequest {
                    instrument: by_symbol("coop-a")
                },
                &f.alice.1
            )),
            NotFound,
            "instrument:",
            Some(4)
        ),
    ]);

    // Listing: each case changes one field of a listing that would succeed.
    let listings: Vec<(
        &'static str,
        fn(&Fixture) -> pb::ListInstrumentRequest,
        Code,
        &'static str,
        Option<u16>,
    )> = vec![
        (
            "symbol taken",
            |f| pb::ListInstrumentRequest {
                symbol: "COOP-A".into(),
                ..listing(f)
            },
            AlreadyExists,
            "already uses this symbol",
            Some(12),
        ),
        (
            "symbol with a space",
            |f| pb::ListInstrumentRequest {
                symbol: "NEW A".into(),
                ..listing(f)
            },
            InvalidArgument,
            "symbol must be",
            Some(11),
        ),
        (
            "symbol in lower case",
            |f| pb::ListInstrumentRequest {
                symbol: "new-a".into(),
                ..listing(f)
            },
            InvalidArgument,
            "symbol must be",
            Some(11),
        ),
        (
            "empty symbol",
            |f| pb::ListInstrumentRequest {
                symbol: String::new(),
                ..listing(f)
            },
            InvalidArgument,
            "symbol must be",
            Some(11),
        ),
        (
            "symbol of 17 characters",
            |f| pb::ListInstrumentRequest {
                symbol: "ABCDEFGHIJKLMNOPQ".into(),
                ..listing(f)
            },
            InvalidArgument,
            "symbol: a symbol is at most 16 bytes",
            Some(11),
        ),
        (
            "kind unspecified",
            |f| pb::ListInstrumentRequest {
                kind: 0,
                ..listing(f)
            },
            InvalidArgument,
            "kind: required",
            None,
        ),
        (
            "kind 9",
            |f| pb::ListInstrumentRequest {
                kind: 9,
                ..listing(f)
            },
            InvalidArgument,
            "kind: 9 is not a known value",
            None,
        ),
        (
            "unknown issuer",
            |f| pb::ListInstrumentRequest {
                issuer_id: 9_999,
                ..listing(f)
            },
            NotFound,
            "belongs to no registered participant",
            Some(3),
        ),
        (
            "a contributor as issuer",
            |f| pb::ListInstrumentRequest {
                issuer_id: f.alice.0,
                ..listing(f)
            },
            FailedPrecondition,
            "not an organization",
            Some(9),
        ),
        (
            "empty tick size",
            |f| pb::ListInstrumentRequest {
                tick_size: String::new(),
                ..listing(f)
            },
            InvalidArgument,
            "tick_size: required",
            None,
        ),
        (
            "zero tick size",
            |f| pb::ListInstrumentRequest {
                tick_size: "0".into(),
                ..listing(f)
            },
            InvalidArgument,
            "tick_size: must be positive",
            Some(28),
        ),
        (
            "negative tick size",
            |f| pb::ListInstrumentRequest {
                tick_size: "-0.05".into(),
                ..listing(f)
            },
            InvalidArgument,
            "tick_size: must be positive",
            Some(28),
        ),
        (
            "tick size finer than a cent",
            |f| pb::ListInstrumentRequest {
                tick_size: "0.001".into(),
                ..listing(f)
            },
            InvalidArgument,
            "tick_size: finer than the currency's minor unit",
            Some(29),
        ),
        (
            "tick size 1e30",
            |f| pb::ListInstrumentRequest {
                tick_size: "1e30".into(),
                ..listing(f)
            },
            InvalidArgument,
            "tick_size: ",
            None,
        ),
        (
            "fractional lot size",
            |f| pb::ListInstrumentRequest {
                lot_size: "1.5".into(),
                ..listing(f)
            },
            InvalidArgument,
            "lot_size: must be a positive whole number",
            Some(14),
        ),
        (
            "zero lot size",
            |f| pb::ListInstrumentRequest {
                lot_size: "0".into(),
                ..listing(f)
            },
            InvalidArgument,
            "lot_size: must be a positive whole number",
            Some(14),
        ),
        (
            "lot size \"abc\"",
            |f| pb::ListInstrumentRequest {
                lot_size: "abc".into(),
                ..listing(f)
            },
            InvalidArgument,
            "lot_size: ",
            None,
        ),
        (
            "empty par",
            |f| pb::ListInstrumentRequest {
                par: String::new(),
                ..listing(f)
            },
            InvalidArgument,
            "par: required",
            None,
        ),
        (
            "par off the tick",
            |f| pb::ListInstrumentRequest {
                par: "10.005".into(),
                ..listing(f)
            },
            InvalidArgument,
            "par: not a whole number of ticks",
            Some(25),
        ),
        (
            "zero par",
            |f| pb::ListInstrumentRequest {
                par: "0".into(),
                ..listing(f)
            },
            InvalidArgument,
            "par: must be positive",
            Some(24),
        ),
        (
            "huge par",
            |f| pb::ListInstrumentRequest {
                par: "99999999999999999999999".into(),
                ..listing(f)
            },
            InvalidArgument,
            "par: too large",
            Some(26),
        ),
        (
            "par beyond the price levels",
            |f| pb::ListInstrumentRequest {
                par: "50000.00".into(),
                ..listing(f)
            },
            InvalidArgument,
            "par must be a positive whole number of ticks",
            Some(15),
        ),
        (
            "return cap above 1",
            |f| pb::ListInstrumentRequest {
                return_cap: "1.5".into(),
                ..listing(f)
            },
            InvalidArgument,
            "return_cap: must be a fraction",
            None,
        ),
        (
            "return cap finer than a basis point",
            |f| pb::ListInstrumentRequest {
                return_cap: "0.00001".into(),
                ..listing(f)
            },
            InvalidArgument,
            "return_cap: must be a fraction",
            None,
        ),
        (
            "negative return cap",
            |f| pb::ListInstrumentRequest {
                return_cap: "-0.05".into(),
                ..listing(f)
            },
            InvalidArgument,
            "return_cap: must be a fraction",
            None,
        ),
        (
            "empty return cap",
            |f| pb::ListInstrumentRequest {
                return_cap: String::new(),
                ..listing(f)
            },
            InvalidArgument,
            "return_cap: required",
            None,
        ),
        (
            "price floor above par",
            |f| pb::ListInstrumentRequest {
                price_floor: "20.00".into(),
                ..listing(f)
            },
            InvalidArgument,
            "floor must not exceed par",
            Some(17),
        ),
        (
            "negative price floor",
            |f| pb::ListInstrumentRequest {
                price_floor: "-1.00".into(),
                ..listing(f)
            },
            InvalidArgument,
            "price_floor: must be positive",
            Some(24),
        ),
        (
            "price floor \"abc\"",
            |f| pb::ListInstrumentRequest {
                price_floor: "abc".into(),
                ..listing(f)
            },
            InvalidArgument,
            "price_floor: ",
            None,
        ),
        (
            "a bond without maturity",
            |f| pb::ListInstrumentRequest {
                maturity_time_ns: None,
                ..bond("NEW-B", f.organization.0)
            },
            InvalidArgument,
            "need a maturity",
            Some(18),
        ),
        (
            "a bond maturing before issue",
            |f| pb::ListInstrumentRequest {
                maturity_time_ns: Some(1),
                ..bond("NEW-B", f.organization.0)
            },
            InvalidArgument,
            "need a maturity",
            Some(18),
        ),
        (
            "a share with a maturity",
            |f| pb::ListInstrumentRequest {
                maturity_time_ns: Some(now_ns() + YEAR_NS),
                ..listing(f)
            },
            InvalidArgument,
            "need a maturity",
            Some(18),
        ),
        (
            "a CIP bond",
            |f| pb::ListInstrumentRequest {
                cooperative_investment_plan: true,
                ..bond("NEW-B", f.organization.0)
            },
            InvalidArgument,
            "need a maturity",
            Some(18),
        ),
        (
            "zero holding cap",
            |f| pb::ListInstrumentRequest {
                holding_cap: Some("0".into()),
                ..listing(f)
            },
            InvalidArgument,
            "holding cap must be between",
            Some(19),
        ),
        (
            "holding cap of 150 %",
            |f| pb::ListInstrumentRequest {
                holding_cap: Some("1.5".into()),
                ..listing(f)
            },
            InvalidArgument,
            "holding_cap: must be a fraction",
            None,
        ),
        (
            "tax credit of 200 %",
            |f| pb::ListInstrumentRequest {
                tax_credit_rate: Some("2".into()),
                ..listing(f)
            },
            InvalidArgument,
            "tax_credit_rate: must be a fraction",
            None,
        ),
        (
            "empty request_id",
            |f| pb::ListInstrumentRequest {
                request_id: String::new(),
                ..listing(f)
            },
            InvalidArgument,
            "request_id: required",
            None,
        ),
    ];
    for (what, request, code, fragment, reason) in listings {
        cases.push(case!(
            format!("Registry.ListInstrument: {what}"),
            |c, f| c
                .registry
                .list_instrument(with_token(request(&f), &f.operator)),
            code,
            fragment,
            reason
        ));
    }
    cases.extend([
        case!(
            "Registry.ListInstrument: by a contributor",
            |c, f| c
                .registry
                .list_instrument(with_token(listing(&f), &f.alice.1)),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
        case!(
            "Registry.ListInstrument: by the issuer itself",
            |c, f| c
                .registry
                .list_instrument(with_token(listing(&f), &f.organization.1)),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
    ]);

    // Offerings.
    let offerings: Vec<(
        &'static str,
        fn(&Fixture) -> pb::OpenOfferingRequest,
        Code,
        &'static str,
        Option<u16>,
    )> = vec![
        (
            "unknown instrument",
            |f| pb::OpenOfferingRequest {
                instrument: by_id(999),
                ..offering_of_share(f)
            },
            NotFound,
            "instrument:",
            Some(4),
        ),
        (
            "no instrument",
            |f| pb::OpenOfferingRequest {
                instrument: None,
                ..offering_of_share(f)
            },
            InvalidArgument,
            "instrument: required",
            None,
        ),
        (
            "empty quantity",
            |f| pb::OpenOfferingRequest {
                quantity: String::new(),
                ..offering_of_share(f)
            },
            InvalidArgument,
            "quantity: required",
            None,
        ),
        (
            "zero quantity",
            |f| pb::OpenOfferingRequest {
                quantity: "0".into(),
                ..offering_of_share(f)
            },
            InvalidArgument,
            "quantity: must be positive",
            Some(21),
        ),
        (
            "negative quantity",
            |f| pb::OpenOfferingRequest {
                quantity: "-100".into(),
                ..offering_of_share(f)
            },
            InvalidArgument,
            "quantity: must be positive",
            Some(21),
        ),
        (
            "quantity off the lot",
            |f| pb::OpenOfferingRequest {
                quantity: "105".into(),
                ..offering_of_share(f)
            },
            InvalidArgument,
            "quantity: not a whole number of lots",
            Some(23),
        ),
        (
            "huge quantity",
            |f| pb::OpenOfferingRequest {
                quantity: "100000000000000000000000".into(),
                ..offering_of_share(f)
            },
            InvalidArgument,
            "quantity: too large",
            Some(22),
        ),
        (
            "quantity over the market's maximum",
            |f| pb::OpenOfferingRequest {
                quantity: "100000000000".into(),
                ..offering_of_share(f)
            },
            InvalidArgument,
            "maximum per command",
            Some(22),
        ),
        (
            "zero minimum",
            |f| pb::OpenOfferingRequest {
                minimum_quantity: "0".into(),
                ..offering_of_share(f)
            },
            InvalidArgument,
            "minimum_quantity: must be positive",
            Some(21),
        ),
        (
            "minimum above the quantity",
            |f| pb::OpenOfferingRequest {
                minimum_quantity: "200".into(),
                ..offering_of_share(f)
            },
            InvalidArgument,
            "minimum must be between",
            Some(42),
        ),
        (
            "an instrument with an offering open",
            |f| pb::OpenOfferingRequest {
                instrument: by_id(f.bond),
                ..offering_of_share(f)
            },
            FailedPrecondition,
            "already has an open offering",
            Some(39),
        ),
        (
            "empty request_id",
            |f| pb::OpenOfferingRequest {
                request_id: String::new(),
                ..offering_of_share(f)
            },
            InvalidArgument,
            "request_id: required",
            None,
        ),
    ];
    for (what, request, code, fragment, reason) in offerings {
        cases.push(case!(
            format!("Registry.OpenOffering: {what}"),
            |c, f| c
                .registry
                .open_offering(with_token(request(&f), &f.organization.1)),
            code,
            fragment,
            reason
        ));
    }
    let subscriptions: Vec<(
        &'static str,
        fn(&Fixture) -> pb::SubscribeRequest,
        Code,
        &'static str,
        Option<u16>,
    )> = vec![
        (
            "unknown offering",
            |f| pb::SubscribeRequest {
                offering_id: 999,
                ..subscription(f, "10")
            },
            NotFound,
            "offering_id: no offering",
            Some(6),
        ),
        (
            "a closed offering",
            |f| pb::SubscribeRequest {
                offering_id: f.share_offering_closed,
                ..subscription(f, "10")
            },
            FailedPrecondition,
            "offering is closed",
            Some(40),
        ),
        (
            "empty quantity",
            |f| subscription(f, ""),
            InvalidArgument,
            "quantity: required",
            None,
        ),
        (
            "zero quantity",
            |f| subscription(f, "0"),
            InvalidArgument,
            "quantity: must be positive",
            Some(21),
        ),
        (
            "quantity off the lot",
            |f| subscription(f, "5"),
            InvalidArgument,
            "quantity: not a whole number of lots",
            Some(23),
        ),
        (
            "quantity \"1e30\"",
            |f| subscription(f, "1e30"),
            InvalidArgument,
            "quantity: ",
            None,
        ),
        (
            "more than is left",
            |f| subscription(f, "50"),
            FailedPrecondition,
            "exceeds the units left",
            Some(41),
        ),
        (
            "empty request_id",
            |f| pb::SubscribeRequest {
                request_id: String::new(),
                ..subscription(f, "10")
            },
            InvalidArgument,
            "request_id: required",
            None,
        ),
    ];
    for (what, request, code, fragment, reason) in subscriptions {
        cases.push(case!(
            format!("Registry.Subscribe: {what}"),
            |c, f| c.registry.subscribe(with_token(request(&f), &f.alice.1)),
            code,
            fragment,
            reason
        ));
    }
    let distributions: Vec<(&'static str, Code, &'static str, Option<u16>)> = vec![
        ("", InvalidArgument, "amount_per_unit: required", None),
        ("abc", InvalidArgument, "amount_per_unit: ", None),
        ("1e30", InvalidArgument, "amount_per_unit: ", None),
        (
            "-0.10",
            InvalidArgument,
            "amount_per_unit: must be positive",
            Some(28),
        ),
        (
            "0",
            InvalidArgument,
            "amount_per_unit: must be positive",
            Some(28),
        ),
        (
            "0.0001",
            InvalidArgument,
            "amount_per_unit: times the lot of 10 units is finer than the currency's minor unit",
            Some(29),
        ),
        (
            "99999999999999999999999",
            InvalidArgument,
            "amount_per_unit: too large",
            Some(30),
        ),
        // A year has accrued 5 % of par 10.00: at most 0.50 per unit.
        (
            "0.60",
            FailedPrecondition,
            "exceeds the return accrued",
            Some(44),
        ),
    ];
    for (amount, code, fragment, reason) in distributions {
        cases.push(case!(
            format!("Registry.PayDistribution: amount {amount:?}"),
            |c, f| c
                .registry
                .pay_distribution(with_token(distribution(&f, amount), &f.organization.1)),
            code,
            fragment,
            reason
        ));
    }
    let repay = |instrument: Option<pb::InstrumentRef>| pb::RepayAtMaturityRequest {
        request_id: request_id(),
        instrument,
    };
    let close = |offering: u32| pb::CloseOfferingRequest {
        request_id: request_id(),
        offering_id: offering,
    };
    cases.extend([
        case!(
            "Registry.OpenOffering: by a contributor",
            |c, f| c
                .registry
                .open_offering(with_token(offering_of_share(&f), &f.alice.1)),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
        case!(
            "Registry.OpenOffering: by the operator",
            |c, f| c
                .registry
                .open_offering(with_token(offering_of_share(&f), &f.operator)),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
        case!(
            "Registry.OpenOffering: by another organization",
            |c, f| c
                .registry
                .open_offering(with_token(offering_of_share(&f), &f.other_organization.1)),
            PermissionDenied,
            "only the instrument's issuer",
            Some(8)
        ),
        case!(
            "Registry.Subscribe: by an organization",
            |c, f| c
                .registry
                .subscribe(with_token(subscription(&f, "10"), &f.other_organization.1)),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
        case!(
            "Registry.Subscribe: by the operator",
            |c, f| c
                .registry
                .subscribe(with_token(subscription(&f, "10"), &f.operator)),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
        case!(
            "Registry.Subscribe: without the cash",
            |c, f| c
                .registry
                .subscribe(with_token(subscription(&f, "10"), &f.carol.1)),
            FailedPrecondition,
            "not enough free cash",
            Some(33)
        ),
        // The bond's whole issue is 5 lots and bob has subscribed 1 already.
        case!(
            "Registry.Subscribe: over the holding cap",
            |c, f| c
                .registry
                .subscribe(with_token(subscription(&f, "50"), &f.bob.1)),
            FailedPrecondition,
            "exceed the cap",
            Some(35)
        ),
        case!(
            "Registry.CloseOffering: unknown offering",
            |c, f| c
                .registry
                .close_offering(with_token(close(999), &f.organization.1)),
            NotFound,
            "offering_id: no offering",
            Some(6)
        ),
        case!(
            "Registry.CloseOffering: by another organization",
            |c, f| c.registry.close_offering(with_token(
                close(f.bond_offering_open),
                &f.other_organization.1
            )),
            PermissionDenied,
            "only the instrument's issuer",
            Some(8)
        ),
        case!(
            "Registry.CloseOffering: by a contributor",
            |c, f| c
                .registry
                .close_offering(with_token(close(f.bond_offering_open), &f.bob.1)),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
        case!(
            "Registry.CloseOffering: already closed",
            |c, f| c.registry.close_offering(with_token(
                close(f.share_offering_closed),
                &f.organization.1
            )),
            FailedPrecondition,
            "offering is closed",
            Some(40)
        ),
        case!(
            "Registry.CloseOffering: empty request_id",
            |c, f| c.registry.close_offering(with_token(
                pb::CloseOfferingRequest {
                    request_id: String::new(),
                    offering_id: f.bond_offering_open
                },
                &f.organization.1
            )),
            InvalidArgument,
            "request_id: required",
            None
        ),
        case!(
            "Registry.PayDistribution: by a contributor",
            |c, f| c
                .registry
                .pay_distribution(with_token(distribution(&f, "0.10"), &f.alice.1)),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
        case!(
            "Registry.PayDistribution: by another organization",
            |c, f| c.registry.pay_distribution(with_token(
                distribution(&f, "0.10"),
                &f.other_organization.1
            )),
            PermissionDenied,
            "only the instrument's issuer",
            Some(8)
        ),
        case!(
            "Registry.PayDistribution: unknown instrument",
            |c, f| c.registry.pay_distribution(with_token(
                pb::PayDistributionRequest {
                    instrument: by_symbol("NOPE"),
                    ..distribution(&f, "0.10")
                },
                &f.organization.1
            )),
            NotFound,
            "instrument:",
            Some(4)
        ),
        case!(
            "Registry.PayDistribution: no instrument",
            |c, f| c.registry.pay_distribution(with_token(
                pb::PayDistributionRequest {
                    instrument: None,
                    ..distribution(&f, "0.10")
                },
                &f.organization.1
            )),
            InvalidArgument,
            "instrument: required",
            None
        ),
        case!(
            "Registry.PayDistribution: nothing outstanding",
            |c, f| c.registry.pay_distribution(with_token(
                pb::PayDistributionRequest {
                    instrument: by_id(f.bond),
                    ..distribution(&f, "0.10")
                },
                &f.organization.1
            )),
            FailedPrecondition,
            "no units of the instrument are outstanding",
            Some(45)
        ),
        case!(
            "Registry.PayDistribution: empty request_id",
            |c, f| c.registry.pay_distribution(with_token(
                pb::PayDistributionRequest {
                    request_id: String::new(),
                    ..distribution(&f, "0.10")
                },
                &f.organization.1
            )),
            InvalidArgument,
            "request_id: required",
            None
        ),
        case!(
            "Registry.RepayAtMaturity: a share",
            |c, f| c
                .registry
                .repay_at_maturity(with_token(repay(by_id(f.share)), &f.organization.1)),
            FailedPrecondition,
            "community shares have no maturity",
            Some(47)
        ),
        case!(
            "Registry.RepayAtMaturity: before maturity",
            |c, f| c
                .registry
                .repay_at_maturity(with_token(repay(by_id(f.bond)), &f.organization.1)),
            FailedPrecondition,
            "not reached maturity",
            Some(46)
        ),
        case!(
            "Registry.RepayAtMaturity: by a contributor",
            |c, f| c
                .registry
                .repay_at_maturity(with_token(repay(by_id(f.bond)), &f.bob.1)),
            PermissionDenied,
            "role is not allowed",
            Some(2)
        ),
        case!(
            "Registry.RepayAtMaturity: by another organization",
            |c, f| c
                .registry
                .repay_at_maturity(with_token(repay(by_id(f.bond)), &f.other_organization.1)),
            PermissionDenied,
            "only the instrument's issuer",
            Some(8)
        ),
        case!(
            "Registry.RepayAtMaturity: unknown instrument",
            |c, f| c
                .registry
                .repay_at_maturity(with_token(repay(by_id(999)), &f.organization.1)),
            NotFound,
            "instrument:",
            Some(4)
        ),
        case!(
            "Registry.RepayAtMaturity: no instrument",
            |c, f| c
                .registry
                .repay_at_maturity(with_token(repay(None), &f.organization.1)),
            InvalidArgument,
            "instrument: required",
            None
        ),
        case!(
            "Registry.RepayAtMaturity: empty request_id",
            |c, f| c.registry.repay_at_maturity(with_token(
                pb::RepayAtMaturityRequest {
                    request_id: String::new(),
                    instrument: by_id(f.bond)
                },
                &f.organization.1
            )),
            InvalidArgument,
            "request_id: required",
            None
        ),
    ]);
}

fn market_data_cases(cases: &mut Vec<Case>) {
    let book_of = |instrument: Option<pb::InstrumentRef>, depth: u32| pb::GetBookRequest {
        instrument,
        depth,
    };
    let book_stream = |instrument: Option<pb::InstrumentRef>, depth: u32| pb::StreamBookRequest {
        instrument,
        depth,
    };
    cases.extend([
        case!(
            "MarketData.GetBook: no instrument",
            |c, f| c.market_data.get_book(book_of(None, 0)),
            InvalidArgument,
            "instrument: required",
            None
        ),
        case!(
            "MarketData.GetBook: unknown instrument",
            |c, f| c.market_data.get_book(book_of(by_id(999), 0)),
            NotFound,
            "instrument:",
            Some(4)
        ),
        case!(
            "MarketData.GetBook: unknown symbol",
            |c, f| c.market_data.get_book(book_of(by_symbol("NOPE"), 0)),
            NotFound,
            "instrument:",
            Some(4)
        ),
        case!(
            "MarketData.GetBook: depth 1001",
            |c, f| c.market_data.get_book(book_of(by_id(f.share), 1001)),
            InvalidArgument,
            "depth: at most 1000",
            None
        ),
        case!(
            "MarketData.GetBook: depth u32::MAX",
            |c, f| c.market_data.get_book(book_of(by_id(f.share), u32::MAX)),
            InvalidArgument,
            "depth:",
            None
        ),
        case!(
            "MarketData.StreamTrades: unknown instrument",
            |c, f| c.market_data.stream_trades(pb::StreamTradesRequest {
                instrument: by_id(999),
                from_sequence: Some(1),
            }),
            NotFound,
            "instrument:",
            Some(4)
        ),
        case!(
            "MarketData.StreamTrades: empty reference",
            |c, f| c.market_data.stream_trades(pb::StreamTradesRequest {
                instrument: no_instrument(),
                from_sequence: None,
            }),
            InvalidArgument,
            "instrument: required",
            None
        ),
        case!(
            "MarketData.StreamBook: no instrument",
            |c, f| c.market_data.stream_book(book_stream(None, 0)),
            InvalidArgument,
            "instrument: required",
            None
        ),
        case!(
            "MarketData.StreamBook: unknown instrument",
            |c, f| c.market_data.stream_book(book_stream(by_symbol("NOPE"), 0)),
            NotFound,
            "instrument:",
            Some(4)
        ),
        case!(
            "MarketData.StreamBook: depth 5000",
            |c, f| c.market_data.stream_book(book_stream(by_id(f.share), 5000)),
            InvalidArgument,
            "depth: at most 1000",
            None
        ),
    ]);
}

fn every_case() -> Vec<Case> {
    let mut cases = Vec::new();
    authentication_cases(&mut cases);
    exchange_cases(&mut cases);
    accounts_cases(&mut cases);
    registry_cases(&mut cases);
    market_data_cases(&mut cases);
    identity_cases(&mut cases);
    membership_cases(&mut cases);
    withdrawals_cases(&mut cases);
    social_cases(&mut cases);
    history_cases(&mut cases);
    cases
}

fn history_filter(participant: u32) -> pb::HistoryFilter {
    pb::HistoryFilter {
        participant_id: participant,
        ..Default::default()
    }
}

fn history_cases(cases: &mut Vec<Case>) {
    cases.extend([
        case!(
            "History.ListOrders: another contributor's",
            |c, f| c.history.list_orders(with_token(
                pb::HistoryOrdersRequest {
                    filter: Some(history_filter(f.alice.0)),
                },
                &f.bob.1
            )),
            PermissionDenied,
            "participant_id: only a regulator or operator",
            None
        ),
        case!(
            "History.ListOrders: unknown participant, by the regulator",
            |c, f| c.history.list_orders(with_token(
                pb::HistoryOrdersRequest {
                    filter: Some(history_filter(u32::MAX)),
                },
                &f.regulator.1
            )),
            NotFound,
            "participant_id:",
            Some(3)
        ),
        case!(
            "History.ListOrders: a page of 1001",
            |c, f| c.history.list_orders(with_token(
                pb::HistoryOrdersRequest {
                    filter: Some(pb::HistoryFilter {
                        page_size: 1001,
                        ..Default::default()
                    }),
                },
                &f.alice.1
            )),
            InvalidArgument,
            "page_size: at most 1000",
            None
        ),
        case!(
            "History.ListOrders: a page token of another listing",
            |c, f| c.history.list_orders(with_token(
                pb::HistoryOrdersRequest {
                    filter: Some(pb::HistoryFilter {
                        // The key of bob's first order (prefix `o`, participant, time, order).
                        page_token: [b"o".as_slice(), &f.bob.0.to_be_bytes(), &[0; 16]].concat(),
                        ..Default::default()
                    }),
                },
                &f.alice.1
            )),
            InvalidArgument,
            "page_token: does not continue this listing",
            None
        ),
        case!(
            "History.ListFills: a time range that ends before it starts",
            |c, f| c.history.list_fills(with_token(
                pb::HistoryFillsRequest {
                    filter: Some(pb::HistoryFilter {
                        from_time_ns: 2_000,
                        until_time_ns: 1_000,
                        ..Default::default()
                    }),
                    order_id: 0,
                },
                &f.alice.1
            )),
            InvalidArgument,
            "until_time_ns: must be after from_time_ns",
            None
        ),
        case!(
            "History.ListFills: unknown instrument",
            |c, f| c.history.list_fills(with_token(
                pb::HistoryFillsRequest {
                    filter: Some(pb::HistoryFilter {
                        instrument: by_id(999),
                        ..Default::default()
                    }),
                    order_id: 0,
                },
                &f.alice.1
            )),
            NotFound,
            "instrument:",
            Some(4)
        ),
        case!(
            "History.ListCashMovements: another contributor's",
            |c, f| c.history.list_cash_movements(with_token(
                pb::CashMovementsRequest {
                    filter: Some(history_filter(f.alice.0)),
                },
                &f.bob.1
            )),
            PermissionDenied,
            "participant_id: only a regulator or operator",
            None
        ),
        case!(
            "History.ListActivity: without a token",
            |c, _f| c
                .history
                .list_activity(Request::new(pb::ActivityRequest { filter: None })),
            Unauthenticated,
            "missing `authorization",
            None
        ),
        case!(
            "History.GetStatement: year 0",
            |c, f| c.history.get_statement(with_token(
                pb::StatementRequest {
                    participant_id: 0,
                    year: 0,
                },
                &f.alice.1
            )),
            InvalidArgument,
            "year: 0 is outside 1970-9999",
            None
        ),
        case!(
            "History.GetStatement: another contributor's",
            |c, f| c.history.get_statement(with_token(
                pb::StatementRequest {
                    participant_id: f.alice.0,
                    year: 2026,
                },
                &f.bob.1
            )),
            PermissionDenied,
            "participant_id: only a regulator or operator",
            None
        ),
        case!(
            "OpenData.ListTrades: no instrument",
            |c, _f| c
                .open_data
                .list_trades(pb::InstrumentTradesRequest { filter: None }),
            InvalidArgument,
            "filter.instrument: required",
            None
        ),
        case!(
            "OpenData.ListTrades: unknown symbol",
            |c, _f| c.open_data.list_trades(pb::InstrumentTradesRequest {
                filter: Some(pb::HistoryFilter {
                    instrument: by_symbol("NOPE"),
                    ..Default::default()
                })
            }),
            NotFound,
            "instrument:",
            Some(4)
        ),
        case!(
            "Diagnostics.Echo: a reply longer than 64 KiB",
            |c, f| echo_once(&mut c, &f.alice.1, 65_537),
            InvalidArgument,
            "reply_bytes: at most 65536",
            None
        ),
        case!(
            "OpenData.GetBars: no interval",
            |c, f| c.open_data.get_bars(pb::BarsRequest {
                instrument: by_id(f.share),
                ..Default::default()
            }),
            InvalidArgument,
            "interval: required",
            None
        ),
        case!(
            "OpenData.GetBars: a limit of 10001",
            |c, f| c.open_data.get_bars(pb::BarsRequest {
                instrument: by_id(f.share),
                interval: pb::BarInterval::Hour as i32,
                limit: 10_001,
                ..Default::default()
            }),
            InvalidArgument,
            "limit: at most 10000",
            None
        ),
    ]);
}

fn redemption(f: &Fixture, voucher: u64, organization: u32) -> pb::RedeemVoucherRequest {
    let _ = f;
    pb::RedeemVoucherRequest {
        request_id: request_id(),
        voucher_id: voucher,
        organization_id: organization,
    }
}

fn voucher_terms(f: &Fixture, co_payment: &str, expires_at_ns: u64) -> pb::IssueVoucherRequest {
    pb::IssueVoucherRequest {
        request_id: request_id(),
        package_id: f.package,
        beneficiary_id: f.bob.0,
        co_payment: co_payment.into(),
        expires_at_ns,
    }
}

const DAY_NS: u64 = 24 * 3_600_000_000_000;

fn social_cases(cases: &mut Vec<Case>) {
    without_a_valid_token!(cases, "Vouchers.RedeemVoucher", |c, f, header| c
        .vouchers
        .redeem_voucher(authorize(
            redemption(&f, f.voucher, f.organization.0),
            header
        )));
    without_a_valid_token!(cases, "Vouchers.GetVoucher", |c, f, header| c
        .vouchers
        .get_voucher(authorize(
            pb::GetVoucherRequest {
                voucher_id: f.voucher
            },
            header
        )));
    without_a_valid_token!(cases, "Pool.GetPool", |c, _f, header| c
        .pool
        .get_pool(authorize(pb::GetPoolRequest {}, header)));
    cases.extend([
        case!(
            "Registry.SetAccreditedCategories: a category with capitals",
            |c, f| c.registry.set_accredited_categories(with_token(
                pb::SetAccreditedCategoriesRequest {
                    request_id: request_id(),
                    organization_id: f.organization.0,
                    categories: vec!["Care".into()],
                },
                &f.regulator.1
            )),
            InvalidArgument,
            "at most the market's maximum of categories",
            Some(93)
        ),
        case!(
            "Registry.SetAccreditedCategories: a contributor named",
            |c, f| c.registry.set_accredited_categories(with_token(
                pb::SetAccreditedCategoriesRequest {
                    request_id: request_id(),
                    organization_id: f.alice.0,
                    categories: vec!["care".into()],
                },
                &f.regulator.1
            )),
            FailedPrecondition,
            "not an organization",
            Some(9)
        ),
        case!(
            "Vouchers.DefineServicePackage: negative face value",
            |c, f| c.vouchers.define_service_package(with_token(
                pb::DefineServicePackageRequest {
                    request_id: request_id(),
                    category: "care".into(),
                    name: "visit".into(),
                    face_value: "-20.00".into(),
                },
                &f.funder.1
            )),
            InvalidArgument,
            "face_value: ",
            Some(28)
        ),
        case!(
            "Vouchers.DefineServicePackage: a category with a space",
            |c, f| c.vouchers.define_service_package(with_token(
                pb::DefineServicePackageRequest {
                    request_id: request_id(),
                    category: "home care".into(),
                    name: "visit".into(),
                    face_value: "20.00".into(),
                },
                &f.funder.1
            )),
            InvalidArgument,
            "a service package needs a category",
            Some(83)
        ),
        case!(
            "Vouchers.DefineServicePackage: by a contributor",
            |c, f| c.vouchers.define_service_package(with_token(
                pb::DefineServicePackageRequest {
                    request_id: request_id(),
                    category: "care".into(),
                    name: "visit".into(),
                    face_value: "20.00".into(),
                },
                &f.alice.1
            )),
            PermissionDenied,
            "role",
            Some(2)
        ),
        case!(
            "Vouchers.IssueVoucher: co-payment above the face value",
            |c, f| c.vouchers.issue_voucher(with_token(
                voucher_terms(&f, "20.01", now_ns() + DAY_NS),
                &f.funder.1
            )),
            InvalidArgument,
            "the co-payment must not exceed the face value",
            Some(82)
        ),
        case!(
            "Vouchers.IssueVoucher: expired already",
            |c, f| c
                .vouchers
                .issue_voucher(with_token(voucher_terms(&f, "0.00", 1), &f.funder.1)),
            InvalidArgument,
            "the expiry must be after now",
            Some(82)
        ),
        case!(
            "Vouchers.IssueVoucher: unknown package",
            |c, f| c.vouchers.issue_voucher(with_token(
                pb::IssueVoucherRequest {
                    package_id: 9_999,
                    ..voucher_terms(&f, "0.00", now_ns() + DAY_NS)
                },
                &f.funder.1
            )),
            NotFound,
            "no service package has this id",
            Some(77)
        ),
        case!(
            "Vouchers.IssueVoucher: a co-payment of no number",
            |c, f| c.vouchers.issue_voucher(with_token(
                voucher_terms(&f, "five", now_ns() + DAY_NS),
                &f.funder.1
            )),
            InvalidArgument,
            "co_payment: ",
            None
        ),
        case!(
            "Vouchers.RedeemVoucher: by someone else",
            |c, f| c.vouchers.redeem_voucher(with_token(
                redemption(&f, f.voucher, f.organization.0),
                &f.bob.1
            )),
            PermissionDenied,
            "only the voucher's beneficiary",
            Some(81)
        ),
        case!(
            "Vouchers.RedeemVoucher: at an unaccredited organization",
            |c, f| c.vouchers.redeem_voucher(with_token(
                redemption(&f, f.voucher, f.other_organization.0),
                &f.alice.1
            )),
            FailedPrecondition,
            "not accredited",
            Some(75)
        ),
        case!(
            "Vouchers.RedeemVoucher: unknown voucher",
            |c, f| c.vouchers.redeem_voucher(with_token(
                redemption(&f, 9_999, f.organization.0),
                &f.alice.1
            )),
            NotFound,
            "no voucher has this id",
            Some(78)
        ),
        case!(
            "Vouchers.GetVoucher: not a party",
            |c, f| c.vouchers.get_voucher(with_token(
                pb::GetVoucherRequest {
                    voucher_id: f.voucher
                },
                &f.organization.1
            )),
            NotFound,
            "voucher_id: no voucher has this id",
            Some(78)
        ),
        case!(
            "Vouchers.ListServicePackages: page too large",
            |c, f| c.vouchers.list_service_packages(with_token(
                pb::ListServicePackagesRequest {
                    after_package_id: None,
                    limit: 100_000,
                },
                &f.alice.1
            )),
            InvalidArgument,
            "limit: ",
            None
        ),
        case!(
            "Vouchers.VoucherTotals: page too large",
            |c, f| c.vouchers.voucher_totals(with_token(
                pb::VoucherTotalsRequest {
                    after_funder_id: None,
                    limit: 10_001,
                },
                &f.regulator.1
            )),
            InvalidArgument,
            "limit: at most 10000",
            None
        ),
        case!(
            "Vouchers.VoucherTotals: by a contributor",
            |c, f| c
                .vouchers
                .voucher_totals(with_token(pb::VoucherTotalsRequest::default(), &f.alice.1)),
            PermissionDenied,
            "only a funder",
            None
        ),
        case!(
            "ServiceValue.RedeemServiceValue: an instrument without service value",
            |c, f| c.service_value.redeem_service_value(with_token(
                pb::RedeemServiceValueRequest {
                    request_id: request_id(),
                    instrument: by_id(f.share),
                    organization_id: f.organization.0,
                    amount: "1.00".into(),
                },
                &f.alice.1
            )),
            FailedPrecondition,
            "carries no service value",
            Some(86)
        ),
        case!(
            "ServiceValue.RedeemServiceValue: amount off the minor unit",
            |c, f| c.service_value.redeem_service_value(with_token(
                pb::RedeemServiceValueRequest {
                    request_id: request_id(),
                    instrument: by_id(f.share),
                    organization_id: f.organization.0,
                    amount: "1.001".into(),
                },
                &f.alice.1
            )),
            InvalidArgument,
            "amount: finer than the currency's minor unit",
            Some(29)
        ),
        case!(
            "TimeCredits.RecordVolunteerTime: at an unaccredited organization",
            |c, f| c.time_credits.record_volunteer_time(with_token(
                pb::RecordVolunteerTimeRequest {
                    request_id: request_id(),
                    volunteer_id: f.alice.0,
                    minutes: 60,
                },
                &f.other_organization.1
            )),
            FailedPrecondition,
            "not accredited",
            Some(75)
        ),
        case!(
            "TimeCredits.RecordVolunteerTime: a day and more at once",
            |c, f| c.time_credits.record_volunteer_time(with_token(
                pb::RecordVolunteerTimeRequest {
                    request_id: request_id(),
                    volunteer_id: f.alice.0,
                    minutes: u64::MAX,
                },
                &f.organization.1
            )),
            InvalidArgument,
            "time credits are whole minutes",
            Some(89)
        ),
        case!(
            "TimeCredits.TransferTimeCredits: more than held",
            |c, f| c.time_credits.transfer_time_credits(with_token(
                pb::TransferTimeCreditsRequest {
                    request_id: request_id(),
                    to_id: f.bob.0,
                    minutes: 61,
                },
                &f.alice.1
            )),
            FailedPrecondition,
            "not enough time credits",
            Some(88)
        ),
        case!(
            "TimeCredits.TransferTimeCredits: to oneself",
            |c, f| c.time_credits.transfer_time_credits(with_token(
                pb::TransferTimeCreditsRequest {
                    request_id: request_id(),
                    to_id: f.alice.0,
                    minutes: 1,
                },
                &f.alice.1
            )),
            InvalidArgument,
            "time credits are whole minutes",
            Some(89)
        ),
        case!(
            "TimeCredits.SpendTimeCredits: zero minutes",
            |c, f| c.time_credits.spend_time_credits(with_token(
                pb::SpendTimeCreditsRequest {
                    request_id: request_id(),
                    organization_id: f.organization.0,
                    minutes: 0,
                },
                &f.alice.1
            )),
            InvalidArgument,
            "the quantity must be positive",
            Some(21)
        ),
        case!(
            "TimeCredits.DonateTimeCredits: more than held",
            |c, f| c.time_credits.donate_time_credits(with_token(
                pb::DonateTimeCreditsRequest {
                    request_id: request_id(),
                    minutes: 61,
                },
                &f.alice.1
            )),
            FailedPrecondition,
            "not enough time credits",
            Some(88)
        ),
        case!(
            "TimeCredits.GrantTimeCredits: from an empty pool",
            |c, f| c.time_credits.grant_time_credits(with_token(
                pb::GrantTimeCreditsRequest {
                    request_id: request_id(),
                    dependent_id: f.bob.0,
                    minutes: 1,
                },
                &f.organization.1
            )),
            FailedPrecondition,
            "not enough time credits",
            Some(88)
        ),
        case!(
            "TimeCredits.GetTimeCredits: another contributor's",
            |c, f| c.time_credits.get_time_credits(with_token(
                pb::GetTimeCreditsRequest {
                    participant_id: Some(f.alice.0),
                },
                &f.bob.1
            )),
            PermissionDenied,
            "",
            None
        ),
        case!(
            "Pool.Contribute: more than the free cash",
            |c, f| c.pool.contribute(with_token(
                pb::ContributeRequest {
                    request_id: request_id(),
                    amount: "1000000.00".into(),
                },
                &f.carol.1
            )),
            FailedPrecondition,
            "not enough free cash",
            Some(33)
        ),
        case!(
            "Pool.Contribute: negative",
            |c, f| c.pool.contribute(with_token(
                pb::ContributeRequest {
                    request_id: request_id(),
                    amount: "-1.00".into(),
                },
                &f.alice.1
            )),
            InvalidArgument,
            "amount: ",
            Some(28)
        ),
        case!(
            "Pool.RepayLoan: nothing owed",
            |c, f| c.pool.repay_loan(with_token(
                pb::RepayLoanRequest {
                    request_id: request_id(),
                    amount: "1.00".into(),
                },
                &f.organization.1
            )),
            FailedPrecondition,
            "owes the pool nothing",
            Some(90)
        ),
        case!(
            "Pool.CloseNettingCycle: by a regulator",
            |c, f| c.pool.close_netting_cycle(with_token(
                pb::CloseNettingCycleRequest {
                    request_id: request_id(),
                },
                &f.regulator.1
            )),
            PermissionDenied,
            "",
            Some(2)
        ),
        case!(
            "Pool.CloseNettingCycle: nothing open",
            |c, f| c.pool.close_netting_cycle(with_token(
                pb::CloseNettingCycleRequest {
                    request_id: request_id(),
                },
                &f.operator
            )),
            FailedPrecondition,
            "would change nothing",
            Some(51)
        ),
        case!(
            "Pool.DeclareSurplus: a year to come",
            |c, f| c.pool.declare_surplus(with_token(
                pb::DeclareSurplusRequest {
                    request_id: request_id(),
                    year: 9_999,
                    surplus: "100.00".into(),
                },
                &f.organization.1
            )),
            InvalidArgument,
            "the surplus year must be between 1970 and the current year",
            Some(92)
        ),
        case!(
            "Pool.DeclareSurplus: more than the free cash",
            |c, f| c.pool.declare_surplus(with_token(
                pb::DeclareSurplusRequest {
                    request_id: request_id(),
                    year: 2020,
                    surplus: "100.00".into(),
                },
                &f.other_organization.1
            )),
            FailedPrecondition,
            "not enough free cash",
            Some(33)
        ),
        case!(
            "Pool.GetPool: without a token",
            |c, _f| c.pool.get_pool(Request::new(pb::GetPoolRequest {})),
            Unauthenticated,
            "missing `authorization",
            None
        ),
        case!(
            "Audit.Stream: a contributor's token",
            |c, f| c.audit.stream(with_token(
                pb::AuditStreamRequest { from_sequence: 1 },
                &f.alice.1
            )),
            PermissionDenied,
            "for the regulator and the operator",
            None
        ),
        case!(
            "Audit.Stream: without a token",
            |c, _f| c
                .audit
                .stream(Request::new(pb::AuditStreamRequest { from_sequence: 1 })),
            Unauthenticated,
            "missing `authorization",
            None
        ),
        case!(
            "Audit.ChainHead: past the journal's end",
            |c, f| c.audit.chain_head(with_token(
                pb::ChainHeadRequest { sequence: u64::MAX },
                &f.regulator.1
            )),
            InvalidArgument,
            "the journal ends at",
            None
        ),
        case!(
            "Pool.GetPoolAccount: another contributor's",
            |c, f| c.pool.get_pool_account(with_token(
                pb::GetPoolAccountRequest {
                    participant_id: Some(f.alice.0),
                },
                &f.bob.1
            )),
            PermissionDenied,
            "",
            None
        ),
    ]);
}

// ---- The market's observable state ----

/// Everything a bad request could have changed, as the operator and the public see it.
#[derive(Debug, PartialEq)]
struct MarketState {
    balances: Vec<pb::Balances>,
    holdings: Vec<pb::Holdings>,
    tax_credits: Vec<pb::TaxCredits>,
    orders: Vec<pb::ListOrdersResponse>,
    books: Vec<pb::Book>,
    instruments: Vec<pb::Instrument>,
    /// Whether a participant was registered after the fixture's last one.
    next_participant_registered: bool,
    participants: pb::ListParticipantsResponse,
    tokens: pb::ListTokensResponse,
    members: pb::ListMembersResponse,
    resolutions: pb::ListResolutionsResponse,
    withdrawals: pb::ListWithdrawalsResponse,
    pool: pb::PoolState,
    pool_accounts: Vec<pb::PoolAccount>,
    time_credits: Vec<pb::TimeCreditsBalance>,
    voucher: pb::Voucher,
    voucher_totals: pb::VoucherTotalsResponse,
    packages: pb::ListServicePackagesResponse,
}

async fn market_state(c: &mut Clients, f: &Fixture) -> MarketState {
    let operator = &f.operator;
    let mut state = MarketState {
        balances: Vec::new(),
        holdings: Vec::new(),
        tax_credits: Vec::new(),
        orders: Vec::new(),
        books: Vec::new(),
        instruments: Vec::new(),
        next_participant_registered: false,
        members: c
            .membership
            .list_members(with_token(
                pb::ListMembersRequest {
                    organization_id: Some(f.organization.0),
                    ..Default::default()
                },
                operator,
            ))
            .await
            .unwrap()
            .into_inner(),
        resolutions: c
            .membership
            .list_resolutions(with_token(pb::ListResolutionsRequest::default(), operator))
            .await
            .unwrap()
            .into_inner(),
        withdrawals: c
            .withdrawals
            .list_withdrawals(with_token(pb::ListWithdrawalsRequest::default(), operator))
            .await
            .unwrap()
            .into_inner(),
        participants: c
            .identity
            .list_participants(with_token(pb::ListParticipantsRequest::default(), operator))
            .await
            .unwrap()
            .into_inner(),
        tokens: c
            .identity
            .list_tokens(with_token(pb::ListTokensRequest::default(), operator))
            .await
            .unwrap()
            .into_inner(),
        pool: c
            .pool
            .get_pool(with_token(pb::GetPoolRequest {}, operator))
            .await
            .unwrap()
            .into_inner(),
        pool_accounts: Vec::new(),
        time_credits: Vec::new(),
        voucher: c
            .vouchers
            .get_voucher(with_token(
                pb::GetVoucherRequest {
                    voucher_id: f.voucher,
                },
                &f.funder.1,
            ))
            .await
            .unwrap()
            .into_inner(),
        voucher_totals: c
            .vouchers
            .voucher_totals(with_token(pb::VoucherTotalsRequest::default(), operator))
            .await
            .unwrap()
            .into_inner(),
        packages: c
            .vouchers
            .list_service_packages(with_token(
                pb::ListServicePackagesRequest {
                    after_package_id: None,
                    limit: 100,
                },
                operator,
            ))
            .await
            .unwrap()
            .into_inner(),
    };
    for participant in 0..f.next_participant {
        state
            .balances
            .push(balances(c, operator, Some(participant)).await);
        state.pool_accounts.push(
            c.pool
                .get_pool_account(with_token(
                    pb::GetPoolAccountRequest {
                        participant_id: Some(participant),
                    },
                    operator,
                ))
                .await
                .unwrap()
                .into_inner(),
        );
        state.time_credits.push(
            c.time_credits
                .get_time_credits(with_token(
                    pb::GetTimeCreditsRequest {
                        participant_id: Some(participant),
                    },
                    operator,
                ))
                .await
                .unwrap()
                .into_inner(),
        );
        let holdings = pb::GetHoldingsRequest {
            participant_id: Some(participant),
        };
        state.holdings.push(
            c.accounts
                .get_holdings(with_token(holdings, operator))
                .await
                .unwrap()
                .into_inner(),
        );
        let credits = pb::GetTaxCreditsRequest {
            participant_id: Some(participant),
            year: None,
        };
        state.tax_credits.push(
            c.accounts
                .get_tax_credits(with_token(credits, operator))
                .await
                .unwrap()
                .into_inner(),
        );
        let orders = pb::ListOrdersRequest {
            participant_id: Some(participant),
        };
        state.orders.push(
            c.exchange
                .list_orders(with_token(orders, operator))
                .await
                .unwrap()
                .into_inner(),
        );
    }
    for instrument in [f.share, f.cip, f.bond] {
        state.books.push(
            c.market_data
                .get_book(pb::GetBookRequest {
                    instrument: by_id(instrument),
                    depth: 1000,
                })
                .await
                .unwrap()
                .into_inner(),
        );
    }
    let listed = c
        .registry
        .list_instruments(with_token(pb::ListInstrumentsRequest {}, operator))
        .await
        .unwrap()
        .into_inner();
    // The ceiling, the accrued value and the offering price accrue with the clock, not with
    // commands: leave them out of the comparison.
    state.instruments = listed
        .instruments
        .into_iter()
        .map(|instrument| pb::Instrument {
            price_ceiling: String::new(),
            accrued_value: String::new(),
            offering_price: String::new(),
            ..instrument
        })
        .collect();
    let next = pb::GetBalancesRequest {
        participant_id: Some(f.next_participant),
    };
    state.next_participant_registered = c
        .accounts
        .get_balances(with_token(next, operator))
        .await
        .is_ok();
    state
}

/// Runs one case; says what is wrong with its outcome, if anything.
async fn check(case: Case, clients: Clients, fixture: Arc<Fixture>) -> Option<String> {
    let Case {
        description,
        call,
        code,
        fragment,
        reason,
    } = case;
    let status = match call(clients, fixture).await {
        Ok(()) => return Some(format!("{description}: succeeded; expected {code:?}")),
        Err(status) => status,
    };
    let mut wrong = Vec::new();
    if status.code() != code {
        wrong.push(format!("code {:?}, expected {code:?}", status.code()));
    }
    if !status.message().contains(fragment) {
        wrong.push(format!("message {:?} lacks {fragment:?}", status.message()));
    }
    match (reason, reason_code(&status)) {
        (None, Some(edge)) if edge > 1000 => {}
        (None, other) => wrong.push(format!(
            "reason code {other:?}, expected a gateway code (1001 and up)"
        )),
        (Some(expected), actual) if actual != Some(expected) => {
            wrong.push(format!("reason code {actual:?}, expected {expected}"))
        }
        _ => {}
    }
    (!wrong.is_empty()).then(|| format!("{description}: {}", wrong.join("; ")))
}

/// RPCs that take no fields and read no token: the only bad input they can be sent is bytes that
/// do not decode, which `an_undecodable_unary_request_is_invalid_argument` sends them.
const NOTHING_TO_REFUSE: &[&str] = &["Registry.ListInstruments"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_refuses_bad_input_with_the_right_status_and_changes_nothing() {
    let server = start().await;
    let fixture = Arc::new(fixture(&server).await);
    let mut clients = server.clients().await;
    let cases = every_case();

    let uncovered: Vec<String> = every_rpc()
        .into_iter()
        .filter(|rpc| !NOTHING_TO_REFUSE.contains(&rpc.as_str()))
        .filter(|rpc| {
            !cases
                .iter()
                .any(|case| case.description.starts_with(&format!("{rpc}:")))
        })
        .collect();
    assert!(
        uncovered.is_empty(),
        "RPCs without bad-input cases: {uncovered:?}"
    );

    let before = market_state(&mut clients, &fixture).await;
    assert_eq!(
        before
            .orders
            .iter()
            .map(|listed| listed.orders.len())
            .sum::<usize>(),
        2,
        "the fixture rests two orders"
    );
    let total = cases.len();
    let mut failures = Vec::new();
    for case in cases {
        failures.extend(check(case, clients.clone(), fixture.clone()).await);
    }
    assert!(
        failures.is_empty(),
        "{} of {total} cases went wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );

    let after = market_state(&mut clients, &fixture).await;
    assert_eq!(after, before, "a refused request changed the market");

    // Nothing above panicked a handler or the engine thread: the server still answers.
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    assert_eq!(
        balances(&mut clients, &fixture.operator, Some(fixture.bob.0))
            .await
            .reserved,
        "1450.00",
        "the engine still answers queries"
    );
    server.stop().await;
}

// ---- Bytes that are not a message at all ----

/// A codec that sends raw bytes as the request message and decodes replies as `D`, to put
/// undecodable messages on the wire.
struct RawCodec<D>(std::marker::PhantomData<D>);

impl<D> Default for RawCodec<D> {
    fn default() -> Self {
        RawCodec(std::marker::PhantomData)
    }
}

struct RawEncoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        destination: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), Status> {
        prost::bytes::BufMut::put_slice(destination, &item);
        Ok(())
    }
}

struct ReplyDecoder<D>(std::marker::PhantomData<D>);

impl<D: prost::Message + Default> tonic::codec::Decoder for ReplyDecoder<D> {
    type Item = D;
    type Error = Status;

    fn decode(&mut self, source: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<D>, Status> {
        D::decode(source)
            .map(Some)
            .map_err(|error| Status::internal(error.to_string()))
    }
}

impl<D: prost::Message + Default + Send + 'static> tonic::codec::Codec for RawCodec<D> {
    type Encode = Vec<u8>;
    type Decode = D;
    type Encoder = RawEncoder;
    type Decoder = ReplyDecoder<D>;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> ReplyDecoder<D> {
        ReplyDecoder(std::marker::PhantomData)
    }
}

/// Field 1, length-delimited, claiming five bytes where one follows: no protobuf decoder accepts it.
const UNDECODABLE: &[u8] = &[0x0a, 0x05, 0x01];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_message_ends_order_entry_with_invalid_argument_after_answering_the_ones_before(
) {
    let server = start().await;
    let fixture = fixture(&server).await;
    let mut clients = server.clients().await;
    let resting_before = orders(&mut clients, &fixture.bob.1).await.len();

    let entry = |price: &str| {
        pb::OrderEntryRequest {
            command: Some(EntryCommand::Place(limit(fixture.share, Buy, price, "10"))),
        }
        .encode_to_vec()
    };
    let messages = vec![entry("9.10"), UNDECODABLE.to_vec(), entry("9.05")];
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.unwrap();
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/mutua.v1.Exchange/OrderEntry");
    let request = with_token(tokio_stream::iter(messages), &fixture.bob.1);
    let mut replies = grpc
        .streaming(request, path, RawCodec::<pb::OrderEntryResponse>::default())
        .await
        .unwrap()
        .into_inner();

    let first = replies
        .next()
        .await
        .expect("the first message is answered")
        .expect("answered, not an error");
    assert!(
        matches!(
            first.result,
            Some(pb::order_entry_response::Result::Placed(_))
        ),
        "{first:?}"
    );
    let ended = replies
        .next()
        .await
        .expect("the stream does not end silently")
        .unwrap_err();
    assert_eq!(
        (ended.code(), reason_code(&ended)),
        (Code::InvalidArgument, Some(1005)),
        "{ended:?}"
    );
    assert!(
        ended.message().contains("message 2 of this stream"),
        "{ended:?}"
    );
    assert!(replies.next().await.is_none());
    // Exactly the first order was placed: the one after the bad message was not applied.
    assert_eq!(
        orders(&mut clients, &fixture.bob.1).await.len(),
        resting_before + 1
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_unary_request_is_invalid_argument() {
    let server = start().await;
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/mutua.v1.Accounts/Deposit");
    let request = with_token(UNDECODABLE.to_vec(), &server.operator_token);
    let refused = grpc
        .unary(
            request,
            path,
            RawCodec::<pb::CashMovementResponse>::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (refused.code(), reason_code(&refused)),
        (Code::InvalidArgument, Some(1005)),
        "{refused:?}"
    );
    assert!(
        refused.message().contains("could not be decoded"),
        "{refused:?}"
    );
    // A public call with no fields: bytes that do not decode are its only bad input.
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/mutua.v1.Registry/ListInstruments");
    grpc.ready().await.unwrap();
    let refused = grpc
        .unary(
            tonic::Request::new(UNDECODABLE.to_vec()),
            path,
            RawCodec::<pb::ListInstrumentsResponse>::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (refused.code(), reason_code(&refused)),
        (Code::InvalidArgument, Some(1005)),
        "{refused:?}"
    );
    server.stop().await;
}
