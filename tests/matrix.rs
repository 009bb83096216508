//! Who may call what: every RPC of every `mutua.v1` service, called through the real server as
//! each kind of caller (operator, regulator, the issuing organization, another organization, a
//! contributor, another contributor naming the first one's ids, a funder, no token, a malformed
//! `authorization` header, a revoked token and a suspended participant's token), checked against
//! ONE literal table, `MATRIX`.
//!
//! A cell says only which class of answer the call gets: `A` allowed (it passed authentication
//! and authorization; it may still fail for a business reason such as NOT_FOUND or
//! FAILED_PRECONDITION, though each call is built so that an allowed caller normally succeeds),
//! `D` PERMISSION_DENIED, `U` UNAUTHENTICATED. The public market-data RPCs take no token and are
//! `A` for everyone. Every refusal must carry a `mutua-reason-code` trailer (on the order-entry
//! stream, a `Rejection.reason_code`). The rows are checked against the descriptor set the server
//! reflects, so a new RPC without a row fails this test.
//!
//! The table is printed in markdown when the test fails, or when `MUTUA_PRINT_MATRIX` is set
//! (`MUTUA_PRINT_MATRIX=1 cargo test --release --test matrix`), ready for ARCHITECTURE.md.

mod support;

use std::io::Write as _;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mutua_gateway::pb;
use pb::order_entry_request::Command as EntryCommand;
use pb::order_entry_response::Result as EntryResult;
use pb::Side::Buy;
use support::*;
use tokio_stream::StreamExt;
use tonic::{Code, Request, Status};

// ---- The table ----

/// The class of answer one caller gets from one RPC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Allowed: authenticated and authorized. The call succeeds, or fails for a business reason
    /// (NOT_FOUND, FAILED_PRECONDITION, INVALID_ARGUMENT...), never PERMISSION_DENIED or
    /// UNAUTHENTICATED.
    A,
    /// PERMISSION_DENIED.
    D,
    /// UNAUTHENTICATED.
    U,
}

use Expect::{A, D, U};

/// The callers, one per column of `MATRIX`, in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caller {
    /// The genesis operator.
    Operator,
    Regulator,
    /// The organization that issues every instrument of the fixture.
    Issuer,
    /// An organization that issues nothing here: the wrong issuer.
    OtherOrganization,
    /// alice, a contributor with cash, units and resting orders.
    Contributor,
    /// bob, a contributor with cash and units, naming alice's participant and order ids.
    OtherContributor,
    Funder,
    /// No `authorization` metadata at all.
    NoToken,
    /// alice's live token, but not as `Bearer <token>`.
    Malformed,
    /// A token of alice's that the operator revoked (alice herself stays live).
    Revoked,
    /// The live token of a contributor the operator suspended.
    Suspended,
}

const CALLERS: usize = 11;

impl Caller {
    const ALL: [Caller; CALLERS] = [
        Caller::Operator,
        Caller::Regulator,
        Caller::Issuer,
        Caller::OtherOrganization,
        Caller::Contributor,
        Caller::OtherContributor,
        Caller::Funder,
        Caller::NoToken,
        Caller::Malformed,
        Caller::Revoked,
        Caller::Suspended,
    ];

    /// The column header in the printed table.
    fn label(self) -> &'static str {
        match self {
            Caller::Operator => "operator",
            Caller::Regulator => "regulator",
            Caller::Issuer => "issuer org",
            Caller::OtherOrganization => "other org",
            Caller::Contributor => "contributor",
            Caller::OtherContributor => "other contributor",
            Caller::Funder => "funder",
            Caller::NoToken => "no token",
            Caller::Malformed => "malformed header",
            Caller::Revoked => "revoked token",
            Caller::Suspended => "suspended",
        }
    }

    /// The gateway reason code a refusal of this caller must carry whatever the RPC, when the
    /// refusal comes from its credential rather than its role.
    fn credential_reason(self) -> Option<u16> {
        match self {
            Caller::NoToken => Some(1001),
            Caller::Malformed => Some(1002),
            Caller::Revoked => Some(1003),
            Caller::Suspended => Some(1004),
            _ => None,
        }
    }
}

/// Rows: every RPC of `mutua.v1`. Columns: `Caller::ALL`, i.e. operator, regulator, issuer org,
/// other org, contributor (alice), other contributor (bob, naming alice's ids), funder, no token,
/// malformed header, revoked token, suspended participant.
#[rustfmt::skip]
const MATRIX: &[(&str, [Expect; CALLERS])] = &[
    //                                   op reg iss oth ali bob fun non mal rev sus
    ("Exchange.PlaceOrder",             [D, D,  D,  D,  A,  A,  D,  U,  U,  U,  D]),
    ("Exchange.CancelOrder",            [D, D,  D,  D,  A,  D,  D,  U,  U,  U,  D]),
    ("Exchange.ReduceOrder",            [D, D,  D,  D,  A,  D,  D,  U,  U,  U,  D]),
    ("Exchange.GetOrder",               [A, A,  D,  D,  A,  D,  D,  U,  U,  U,  D]),
    ("Exchange.ListOrders",             [A, A,  A,  A,  A,  D,  A,  U,  U,  U,  D]),
    ("Exchange.OrderEntry",             [D, D,  D,  D,  A,  D,  D,  U,  U,  U,  D]),
    ("Accounts.Deposit",                [A, D,  D,  D,  D,  D,  D,  U,  U,  U,  D]),
    ("Accounts.Withdraw",               [A, D,  D,  D,  D,  D,  D,  U,  U,  U,  D]),
    ("Accounts.GetBalances",            [A, A,  A,  A,  A,  D,  A,  U,  U,  U,  D]),
    ("Accounts.GetHoldings",            [A, A,  A,  A,  A,  D,  A,  U,  U,  U,  D]),
    ("Accounts.GetTaxCredits",          [A, A,  A,  A,  A,  D,  A,  U,  U,  U,  D]),
    ("Registry.RegisterParticipant",    [A, D,  D,  D,  D,  D,  D,  U,  U,  U,  D]),
    ("Registry.SetAccreditation",       [A, A,  D,  D,  D,  D,  D,  U,  U,  U,  D]),
    ("Registry.ListInstrument",         [A, D,  D,  D,  D,  D,  D,  U,  U,  U,  D]),
    ("Registry.SetTradingStatus",       [A, D,  D,  D,  D,  D,  D,  U,  U,  U,  D]),
    ("Registry.GetInstrument",          [A, A,  A,  A,  A,  A,  A,  A,  A,  A,  A]),
    ("Registry.ListInstruments",        [A, A,  A,  A,  A,  A,  A,  A,  A,  A,  A]),
    ("Registry.OpenOffering",           [D, D,  A,  D,  D,  D,  D,  U,  U,  U,  D]),
    ("Registry.Subscribe",              [D, D,  D,  D,  A,  A,  D,  U,  U,  U,  D]),
    ("Registry.CloseOffering",          [D, D,  A,  D,  D,  D,  D,  U,  U,  U,  D]),
    ("Registry.PayDistribution",        [D, D,  A,  D,  D,  D,  D,  U,  U,  U,  D]),
    ("Registry.RepayAtMaturity",        [D, D,  A,  D,  D,  D,  D,  U,  U,  U,  D]),
    ("MarketData.GetBook",              [A, A,  A,  A,  A,  A,  A,  A,  A,  A,  A]),
    ("MarketData.StreamTrades",         [A, A,  A,  A,  A,  A,  A,  A,  A,  A,  A]),
    ("MarketData.StreamBook",           [A, A,  A,  A,  A,  A,  A,  A,  A,  A,  A]),
    ("Identity.IssueToken",             [A, D,  D,  D,  D,  D,  D,  U,  U,  U,  D]),
    ("Identity.RevokeToken",            [A, D,  D,  D,  D,  D,  D,  U,  U,  U,  D]),
    ("Identity.ListTokens",             [A, D,  D,  D,  D,  D,  D,  U,  U,  U,  D]),
    ("Identity.ListParticipants",       [A, A,  D,  D,  D,  D,  D,  U,  U,  U,  D]),
    ("Identity.SetParticipantStatus",   [A, D,  D,  D,  D,  D,  D,  U,  U,  U,  D]),
    ("Membership.ListMembers",          [A, A,  A,  D,  D,  D,  D,  U,  U,  U,  D]),
    ("Membership.ProposeResolution",    [D, D,  A,  A,  D,  D,  D,  U,  U,  U,  D]),
    ("Membership.CastVote",             [D, D,  D,  D,  A,  A,  D,  U,  U,  U,  D]),
    ("Membership.CloseResolution",      [D, D,  A,  D,  D,  D,  D,  U,  U,  U,  D]),
    ("Membership.GetResolution",        [A, A,  A,  A,  A,  A,  A,  U,  U,  U,  D]),
    ("Membership.ListResolutions",      [A, A,  A,  A,  A,  A,  A,  U,  U,  U,  D]),
    ("Withdrawals.RequestWithdrawal",   [D, D,  D,  D,  A,  A,  D,  U,  U,  U,  D]),
    ("Withdrawals.CancelWithdrawal",    [D, D,  D,  D,  A,  D,  D,  U,  U,  U,  D]),
    ("Withdrawals.CompleteWithdrawal",  [D, D,  A,  D,  A,  D,  D,  U,  U,  U,  D]),
    ("Withdrawals.SetWithdrawalsSuspended", [D, D, A, D, D, D,  D,  U,  U,  U,  D]),
    ("Withdrawals.ListWithdrawals",     [A, A,  A,  A,  A,  A,  A,  U,  U,  U,  D]),
    ("Registry.SetAccreditedCategories", [A, A, D,  D,  D,  D,  D,  U,  U,  U,  D]),
    ("Vouchers.DefineServicePackage",   [D, D,  D,  D,  D,  D,  A,  U,  U,  U,  D]),
    ("Vouchers.IssueVoucher",           [D, D,  D,  D,  D,  D,  A,  U,  U,  U,  D]),
    ("Vouchers.RedeemVoucher",          [D, D,  D,  D,  A,  D,  D,  U,  U,  U,  D]),
    ("Vouchers.GetVoucher",             [A, A,  A,  A,  A,  A,  A,  U,  U,  U,  D]),
    ("Vouchers.ListServicePackages",    [A, A,  A,  A,  A,  A,  A,  U,  U,  U,  D]),
    ("Vouchers.VoucherTotals",          [A, A,  D,  D,  D,  D,  A,  U,  U,  U,  D]),
    ("ServiceValue.RedeemServiceValue", [D, D,  D,  D,  A,  A,  D,  U,  U,  U,  D]),
    ("TimeCredits.RecordVolunteerTime", [D, D,  A,  A,  D,  D,  D,  U,  U,  U,  D]),
    ("TimeCredits.TransferTimeCredits", [D, D,  A,  A,  A,  A,  D,  U,  U,  U,  D]),
    ("TimeCredits.SpendTimeCredits",    [D, D,  D,  D,  A,  A,  D,  U,  U,  U,  D]),
    ("TimeCredits.DonateTimeCredits",   [D, D,  A,  A,  A,  A,  D,  U,  U,  U,  D]),
    ("TimeCredits.GrantTimeCredits",    [A, D,  A,  A,  D,  D,  D,  U,  U,  U,  D]),
    ("TimeCredits.GetTimeCredits",      [A, A,  A,  A,  A,  D,  A,  U,  U,  U,  D]),
    ("Pool.Contribute",                 [D, D,  A,  A,  A,  A,  A,  U,  U,  U,  D]),
    ("Pool.RepayLoan",                  [D, D,  A,  A,  A,  A,  A,  U,  U,  U,  D]),
    ("Pool.CloseNettingCycle",          [A, D,  D,  D,  D,  D,  D,  U,  U,  U,  D]),
    ("Pool.DeclareSurplus",             [D, D,  A,  A,  D,  D,  D,  U,  U,  U,  D]),
    ("Pool.GetPool",                    [A, A,  A,  A,  A,  A,  A,  U,  U,  U,  D]),
    ("Pool.GetPoolAccount",             [A, A,  A,  A,  A,  D,  A,  U,  U,  U,  D]),
    ("Audit.Stream",                    [A, A,  D,  D,  D,  D,  D,  U,  U,  U,  D]),
    ("Audit.ChainHead",                 [A, A,  D,  D,  D,  D,  D,  U,  U,  U,  D]),
    ("History.ListOrders",              [A, A,  A,  A,  A,  D,  A,  U,  U,  U,  D]),
    ("History.ListFills",               [A, A,  A,  A,  A,  D,  A,  U,  U,  U,  D]),
    ("History.ListCashMovements",       [A, A,  A,  A,  A,  D,  A,  U,  U,  U,  D]),
    ("History.ListActivity",            [A, A,  A,  A,  A,  D,  A,  U,  U,  U,  D]),
    ("History.GetStatement",            [A, A,  A,  A,  A,  D,  A,  U,  U,  U,  D]),
    ("OpenData.ListTrades",             [A, A,  A,  A,  A,  A,  A,  A,  A,  A,  A]),
    ("OpenData.GetBars",                [A, A,  A,  A,  A,  A,  A,  A,  A,  A,  A]),
    ("Diagnostics.Echo",                [A, A,  A,  A,  A,  A,  A,  U,  U,  U,  D]),
];

/// What each call names, for the reader of the printed table.
const LEGEND: &str = "\
`A` allowed (authenticated and authorized; the call may still fail for a business reason), \
`D` PERMISSION_DENIED, `U` UNAUTHENTICATED. Market data and listings are public: no token is read. \
Reads name a participant: the operator and the regulator name a contributor's account, \
the other contributor names that contributor's, everyone else their own. Orders named are \
the contributor's. Refusals carry a `mutua-reason-code`: 1001 no token, 1002 malformed \
header, 1003 unknown or revoked token, 1004 participant suspended, 1007 not permitted \
(gateway), 2 role not allowed, 7 not the order's owner, 8 not the instrument's issuer, \
62 not the withdrawal's holder, 74 not the resolution's proposer, 81 not the voucher's \
beneficiary, 85 not the package's funder (engine). A register is read \
by its organization, or by the operator and the regulator naming it; resolutions are put and \
closed by organizations and voted on by members (contributors holding the issuer's shares); \
a withdrawal is given by a holder and paid by the holder or the issuer. Funders define \
packages and issue vouchers; a voucher is answered to its funder, its beneficiary, the \
regulator and the operator, and to anyone else as an unknown id (NOT_FOUND, a business answer); \
the split of a voucher is shown to its funder only, per-funder totals to that funder, the \
regulator and the operator.";

fn markdown() -> String {
    let mut table = String::from("| RPC |");
    for caller in Caller::ALL {
        table.push_str(&format!(" {} |", caller.label()));
    }
    table.push_str("\n|---|");
    table.push_str(&":-:|".repeat(CALLERS));
    table.push('\n');
    for (rpc, row) in MATRIX {
        table.push_str(&format!("| `{rpc}` |"));
        for expect in row {
            table.push_str(&format!(" {expect:?} |"));
        }
        table.push('\n');
    }
    table.push('\n');
    table.push_str(LEGEND);
    table.push('\n');
    table
}

// ---- The market every call is made in ----

struct Fixture {
    operator: String,
    regulator: (u32, String),
    issuer: (u32, String),
    other_organization: (u32, String),
    alice: (u32, String),
    bob: (u32, String),
    funder: (u32, String),
    /// A second token of alice's, revoked by the operator.
    revoked_token: String,
    /// A contributor with cash, suspended by the operator.
    suspended: (u32, String),
    /// The contributor the operator suspends and reinstates in `Identity.SetParticipantStatus`.
    suspension_target: u32,
    /// The participant the operator issues throw-away tokens for in `Identity.RevokeToken`.
    token_holder: u32,
    /// A community share with holding cap 1, trading, 800 units outstanding (alice and bob hold
    /// 400 each), and no asks, so buys at 9.00 rest.
    share: u32,
    /// A share whose trading `Registry.SetTradingStatus` opens and halts.
    toggled: u32,
    /// alice's buy resting in `share`.
    alice_order: u64,
    /// A withdrawable share of the issuer's with no notice, alice and bob holding 400 units each.
    withdrawable: u32,
    /// A resolution of the issuer's, open for an hour.
    resolution: u32,
    /// The funder's service package (care, face value 1.00).
    package: u32,
}

const STREAM_WAIT: Duration = Duration::from_secs(10);

/// A symbol no other listing in this test uses.
fn symbol() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    format!("MX-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn fixture(server: &TestServer) -> Fixture {
    let mut c = server.clients().await;
    let operator = server.operator_token.clone();
    let regulator = register(&mut c, &operator, pb::Role::Regulator, "the regulator").await;
    let issuer = register_accredited(&mut c, &operator, "Riverside Housing Co-op").await;
    let other_organization =
        register(&mut c, &operator, pb::Role::Organization, "Hilltop Bakery").await;
    let alice = register(&mut c, &operator, pb::Role::Contributor, "alice").await;
    let bob = register(&mut c, &operator, pb::Role::Contributor, "bob").await;
    let funder = register(
        &mut c,
        &operator,
        pb::Role::Funder,
        "the community foundation",
    )
    .await;
    let suspended = register(&mut c, &operator, pb::Role::Contributor, "sam").await;
    let (suspension_target, _) = register(&mut c, &operator, pb::Role::Contributor, "frank").await;
    let (token_holder, _) = register(&mut c, &operator, pb::Role::Contributor, "tess").await;
    for (participant, amount) in [
        (alice.0, "1000000.00"),
        (bob.0, "1000000.00"),
        (issuer.0, "100000.00"),
        (suspended.0, "1000.00"),
        (funder.0, "1000.00"),
    ] {
        deposit(&mut c, &operator, participant, amount).await;
    }

    let share = list(
        &mut c,
        &operator,
        pb::ListInstrumentRequest {
            holding_cap: Some("1".into()),
            ..support::share(&symbol(), issuer.0)
        },
    )
    .await;
    open_trading(&mut c, &operator, share).await;
    run_offering(
        &mut c,
        &issuer.1,
        share,
        "1000",
        "1",
        &[(&alice.1, "400"), (&bob.1, "400")],
    )
    .await;
    let toggled = list(
        &mut c,
        &operator,
        pb::ListInstrumentRequest {
            holding_cap: Some("1".into()),
            ..support::share(&symbol(), issuer.0)
        },
    )
    .await;
    let alice_order = place(&mut c, &alice.1, limit(share, Buy, "9.00", "1")).await;
    assert_eq!(alice_order.status, pb::OrderStatus::Resting as i32);
    let withdrawable = list(
        &mut c,
        &operator,
        pb::ListInstrumentRequest {
            holding_cap: Some("1".into()),
            withdrawable: true,
            ..support::share(&symbol(), issuer.0)
        },
    )
    .await;
    run_offering(
        &mut c,
        &issuer.1,
        withdrawable,
        "800",
        "1",
        &[(&alice.1, "400"), (&bob.1, "400")],
    )
    .await;
    let resolution = propose(&mut c, &issuer.1, 3_600_000_000_000).await;

    // A second token of alice's, revoked: alice's first token stays live.
    let second = pb::IssueTokenRequest {
        participant_id: alice.0,
        replace_existing: false,
    };
    let second = c
        .identity
        .issue_token(with_token(second, &operator))
        .await
        .expect("issue a second token")
        .into_inner();
    let revoke = pb::RevokeTokenRequest {
        request_id: request_id(),
        token_id: second.token_id,
    };
    c.identity
        .revoke_token(with_token(revoke, &operator))
        .await
        .expect("revoke it");

    let package = c
        .vouchers
        .define_service_package(with_token(
            pb::DefineServicePackageRequest {
                request_id: request_id(),
                category: "care".into(),
                name: "a visit".into(),
                face_value: "1.00".into(),
            },
            &funder.1,
        ))
        .await
        .expect("the funder's package")
        .into_inner()
        .package_id;

    let suspend = pb::SetParticipantStatusRequest {
        request_id: request_id(),
        participant_id: suspended.0,
        suspended: true,
    };
    c.identity
        .set_participant_status(with_token(suspend, &operator))
        .await
        .expect("suspend sam");

    Fixture {
        operator,
        regulator,
        issuer,
        other_organization,
        alice,
        bob,
        funder,
        revoked_token: second.token,
        suspended,
        suspension_target,
        token_holder,
        share,
        toggled,
        alice_order: alice_order.order_id,
        withdrawable,
        resolution,
        package,
    }
}

/// A voucher of the funder's package for alice: face value 1.00, no co-payment, a week long.
fn voucher_for_alice(f: &Fixture) -> pb::IssueVoucherRequest {
    pb::IssueVoucherRequest {
        request_id: request_id(),
        package_id: f.package,
        beneficiary_id: f.alice.0,
        co_payment: "0.00".into(),
        expires_at_ns: now_ns() + 7 * 24 * 3600 * 1_000_000_000,
    }
}

/// A fresh voucher of alice's, issued by the funder.
async fn alice_voucher(c: &mut Clients, f: &Fixture) -> u64 {
    c.vouchers
        .issue_voucher(with_token(voucher_for_alice(f), &f.funder.1))
        .await
        .expect("the funder issues alice a voucher")
        .into_inner()
        .voucher_id
}

/// A resolution of the organization whose token is given, closing `closes_in_ns` from now.
async fn propose(c: &mut Clients, organization: &str, closes_in_ns: u64) -> u32 {
    let proposal = pb::ProposeResolutionRequest {
        request_id: request_id(),
        title: "Elect the board".into(),
        closes_at_ns: now_ns() + closes_in_ns,
    };
    c.membership
        .propose_resolution(with_token(proposal, organization))
        .await
        .expect("propose a resolution")
        .into_inner()
        .resolution_id
}

/// A fresh notice of alice's on one unit of the withdrawable share.
async fn alice_withdrawal(c: &mut Clients, f: &Fixture) -> u64 {
    let notice = pb::RequestWithdrawalRequest {
        request_id: request_id(),
        instrument: by_id(f.withdrawable),
        quantity: "1".into(),
    };
    c.withdrawals
        .request_withdrawal(with_token(notice, &f.alice.1))
        .await
        .expect("alice gives notice")
        .into_inner()
        .withdrawal_id
}

/// Alice cancels her notice if it is still pending, so notices do not pile up across cells.
async fn tidy_withdrawal(c: &mut Clients, f: &Fixture, withdrawal_id: u64) {
    let cancel = pb::CancelWithdrawalRequest {
        request_id: request_id(),
        withdrawal_id,
    };
    let _ = c
        .withdrawals
        .cancel_withdrawal(with_token(cancel, &f.alice.1))
        .await;
}

/// One caller as a request sees it: the `authorization` header it sends, if any, and the
/// participant id it names where an RPC takes one.
struct Who {
    caller: Caller,
    header: Option<String>,
    names: u32,
}

fn who_is(f: &Fixture, caller: Caller) -> Who {
    let bearer = |token: &str| Some(format!("Bearer {token}"));
    let alice = f.alice.0;
    let (header, names) = match caller {
        // Those who read everything name another participant's account.
        Caller::Operator => (bearer(&f.operator), alice),
        Caller::Regulator => (bearer(&f.regulator.1), alice),
        Caller::Issuer => (bearer(&f.issuer.1), f.issuer.0),
        Caller::OtherOrganization => (bearer(&f.other_organization.1), f.other_organization.0),
        Caller::Contributor => (bearer(&f.alice.1), alice),
        // Another participant's ids.
        Caller::OtherContributor => (bearer(&f.bob.1), alice),
        Caller::Funder => (bearer(&f.funder.1), f.funder.0),
        Caller::NoToken => (None, alice),
        // A live token, but not presented as a bearer token.
        Caller::Malformed => (Some(format!("Basic {}", f.alice.1)), alice),
        Caller::Revoked => (bearer(&f.revoked_token), alice),
        Caller::Suspended => (bearer(&f.suspended.1), f.suspended.0),
    };
    Who {
        caller,
        header,
        names,
    }
}

/// `message` with the caller's `authorization` metadata, or none.
fn req<T>(message: T, who: &Who) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(header) = &who.header {
        request
            .metadata_mut()
            .insert("authorization", header.parse().expect("ASCII header"));
    }
    request
}

// ---- Outcomes ----

/// A refused call: its code, its reason code (the `mutua-reason-code` trailer, or the
/// `Rejection.reason_code` of a stream reply), and its message.
#[derive(Debug)]
struct Refusal {
    code: Code,
    reason: Option<u16>,
    message: String,
}

type Observed = Result<(), Refusal>;

fn refused(status: &Status) -> Refusal {
    Refusal {
        code: status.code(),
        reason: reason_code(status),
        message: status.message().to_string(),
    }
}

fn done<T>(result: Result<tonic::Response<T>, Status>) -> Observed {
    result.map(|_| ()).map_err(|status| refused(&status))
}

fn class(observed: &Observed) -> Expect {
    match observed {
        Err(refusal) if refusal.code == Code::PermissionDenied => D,
        Err(refusal) if refusal.code == Code::Unauthenticated => U,
        _ => A,
    }
}

/// The outcome of several commands: the first refusal by authentication or authorization, else
/// the first other refusal, else success.
fn worst(outcomes: Vec<Observed>) -> Observed {
    let mut first_other = None;
    for outcome in outcomes {
        match outcome {
            Ok(()) => {}
            Err(refusal)
                if matches!(refusal.code, Code::PermissionDenied | Code::Unauthenticated) =>
            {
                return Err(refusal)
            }
            Err(refusal) => {
                first_other.get_or_insert(refusal);
            }
        }
    }
    first_other.map_or(Ok(()), Err)
}

// ---- Set-up steps for one call, made by those allowed to make them ----

/// A fresh buy of alice's, 2 units at 9.00, resting.
async fn alice_order(c: &mut Clients, f: &Fixture) -> u64 {
    let placed = place(c, &f.alice.1, limit(f.share, Buy, "9.00", "2")).await;
    assert_eq!(placed.status, pb::OrderStatus::Resting as i32);
    placed.order_id
}

/// A fresh share of the issuer's, issued a year ago, holding cap 1, trading closed.
async fn fresh_share(c: &mut Clients, f: &Fixture) -> u32 {
    list(
        c,
        &f.operator,
        pb::ListInstrumentRequest {
            holding_cap: Some("1".into()),
            ..support::share(&symbol(), f.issuer.0)
        },
    )
    .await
}

/// An open offering of 1000 units of a fresh share; minimum 1.
async fn fresh_offering(c: &mut Clients, f: &Fixture) -> u32 {
    let share = fresh_share(c, f).await;
    open_offering(c, &f.issuer.1, share, "1000", "1").await
}

async fn participant_info(c: &mut Clients, f: &Fixture, participant: u32) -> pb::ParticipantInfo {
    let listed = c
        .identity
        .list_participants(with_token(
            pb::ListParticipantsRequest::default(),
            &f.operator,
        ))
        .await
        .expect("list participants")
        .into_inner();
    listed
        .participants
        .into_iter()
        .find(|info| info.participant_id == participant)
        .expect("a registered participant is listed")
}

// ---- The calls ----

/// Calls `rpc` as `who`, with a request that the callers allowed to make it would normally see
/// succeed.
async fn call(rpc: &str, c: &mut Clients, f: &Fixture, who: &Who) -> Observed {
    match rpc {
        // Exchange
        "Exchange.PlaceOrder" => done(
            c.exchange
                .place_order(req(limit(f.share, Buy, "9.00", "1"), who))
                .await,
        ),
        "Exchange.CancelOrder" => {
            let order_id = alice_order(c, f).await;
            done(
                c.exchange
                    .cancel_order(req(
                        pb::CancelOrderRequest {
                            request_id: request_id(),
                            order_id,
                        },
                        who,
                    ))
                    .await,
            )
        }
        "Exchange.ReduceOrder" => {
            let order_id = alice_order(c, f).await;
            let reduce = pb::ReduceOrderRequest {
                request_id: request_id(),
                order_id,
                reduce_by: "1".into(),
            };
            done(c.exchange.reduce_order(req(reduce, who)).await)
        }
        "Exchange.GetOrder" => done(
            c.exchange
                .get_order(req(
                    pb::GetOrderRequest {
                        order_id: f.alice_order,
                    },
                    who,
                ))
                .await,
        ),
        "Exchange.ListOrders" => done(
            c.exchange
                .list_orders(req(
                    pb::ListOrdersRequest {
                        participant_id: Some(who.names),
                    },
                    who,
                ))
                .await,
        ),
        "Exchange.OrderEntry" => {
            // A buy of the caller's own, then a cancel of a fresh order of alice's.
            let order_id = alice_order(c, f).await;
            let commands = vec![
                pb::OrderEntryRequest {
                    command: Some(EntryCommand::Place(limit(f.share, Buy, "9.00", "1"))),
                },
                pb::OrderEntryRequest {
                    command: Some(EntryCommand::Cancel(pb::CancelOrderRequest {
                        request_id: request_id(),
                        order_id,
                    })),
                },
            ];
            let sent = commands.len();
            let replies = match c
                .exchange
                .order_entry(req(tokio_stream::iter(commands), who))
                .await
            {
                Ok(replies) => replies.into_inner(),
                Err(status) => return Err(refused(&status)),
            };
            let replies: Vec<_> = tokio::time::timeout(STREAM_WAIT, replies.collect())
                .await
                .expect("the order-entry stream ends");
            let mut outcomes: Vec<Observed> = replies
                .into_iter()
                .map(|reply| match reply {
                    Err(status) => Err(refused(&status)),
                    Ok(pb::OrderEntryResponse {
                        result: Some(EntryResult::Rejected(rejection)),
                        ..
                    }) => Err(Refusal {
                        code: Code::from(rejection.grpc_code),
                        reason: u16::try_from(rejection.reason_code)
                            .ok()
                            .filter(|&code| code != 0),
                        message: rejection.message,
                    }),
                    Ok(pb::OrderEntryResponse {
                        result: Some(_), ..
                    }) => Ok(()),
                    Ok(pb::OrderEntryResponse { result: None, .. }) => Err(Refusal {
                        code: Code::Internal,
                        reason: None,
                        message: "a reply without a result".into(),
                    }),
                })
                .collect();
            if outcomes.len() < sent {
                outcomes.push(Err(Refusal {
                    code: Code::Internal,
                    reason: None,
                    message: format!("{} replies to {sent} commands", outcomes.len()),
                }));
            }
            worst(outcomes)
        }

        // Accounts
        "Accounts.Deposit" => {
            let deposit = pb::DepositRequest {
                request_id: request_id(),
                participant_id: who.names,
                amount: "1.00".into(),
            };
            done(c.accounts.deposit(req(deposit, who)).await)
        }
        "Accounts.Withdraw" => {
            let withdraw = pb::WithdrawRequest {
                request_id: request_id(),
                participant_id: who.names,
                amount: "1.00".into(),
            };
            done(c.accounts.withdraw(req(withdraw, who)).await)
        }
        "Accounts.GetBalances" => done(
            c.accounts
                .get_balances(req(
                    pb::GetBalancesRequest {
                        participant_id: Some(who.names),
                    },
                    who,
                ))
                .await,
        ),
        "Accounts.GetHoldings" => done(
            c.accounts
                .get_holdings(req(
                    pb::GetHoldingsRequest {
                        participant_id: Some(who.names),
                    },
                    who,
                ))
                .await,
        ),
        "Accounts.GetTaxCredits" => done(
            c.accounts
                .get_tax_credits(req(
                    pb::GetTaxCreditsRequest {
                        participant_id: Some(who.names),
                        year: None,
                    },
                    who,
                ))
                .await,
        ),

        // Registry
        "Registry.RegisterParticipant" => {
            let request = pb::RegisterParticipantRequest {
                request_id: request_id(),
                role: pb::Role::Contributor as i32,
                name: format!("newcomer {}", request_id()),
            };
            done(c.registry.register_participant(req(request, who)).await)
        }
        "Registry.SetAccreditation" => {
            // The other organization's accreditation, flipped, so that the call changes something.
            let organization_id = f.other_organization.0;
            let accredited = !participant_info(c, f, organization_id).await.accredited;
            done(
                c.registry
                    .set_accreditation(req(
                        pb::SetAccreditationRequest {
                            request_id: request_id(),
                            organization_id,
                            accredited,
                        },
                        who,
                    ))
                    .await,
            )
        }
        "Registry.ListInstrument" => {
            let listing = pb::ListInstrumentRequest {
                holding_cap: Some("1".into()),
                ..support::share(&symbol(), f.issuer.0)
            };
            done(c.registry.list_instrument(req(listing, who)).await)
        }
        "Registry.SetTradingStatus" => {
            let instrument = pb::GetInstrumentRequest {
                instrument: by_id(f.toggled),
            };
            let open = !c
                .registry
                .get_instrument(with_token(instrument, &f.operator))
                .await
                .expect("get instrument")
                .into_inner()
                .trading_open;
            done(
                c.registry
                    .set_trading_status(req(
                        pb::SetTradingStatusRequest {
                            request_id: request_id(),
                            instrument: by_id(f.toggled),
                            open,
                        },
                        who,
                    ))
                    .await,
            )
        }
        "Registry.GetInstrument" => done(
            c.registry
                .get_instrument(req(
                    pb::GetInstrumentRequest {
                        instrument: by_id(f.share),
                    },
                    who,
                ))
                .await,
        ),
        "Registry.ListInstruments" => done(
            c.registry
                .list_instruments(req(pb::ListInstrumentsRequest {}, who))
                .await,
        ),
        "Registry.OpenOffering" => {
            let share = fresh_share(c, f).await;
            let open = pb::OpenOfferingRequest {
                request_id: request_id(),
                instrument: by_id(share),
                quantity: "100".into(),
                minimum_quantity: "1".into(),
            };
            done(c.registry.open_offering(req(open, who)).await)
        }
        "Registry.Subscribe" => {
            let offering_id = fresh_offering(c, f).await;
            done(
                c.registry
                    .subscribe(req(
                        pb::SubscribeRequest {
                            request_id: request_id(),
                            offering_id,
                            quantity: "10".into(),
                        },
                        who,
                    ))
                    .await,
            )
        }
        "Registry.CloseOffering" => {
            let offering_id = fresh_offering(c, f).await;
            subscribe(c, &f.alice.1, offering_id, "10").await;
            done(
                c.registry
                    .close_offering(req(
                        pb::CloseOfferingRequest {
                            request_id: request_id(),
                            offering_id,
                        },
                        who,
                    ))
                    .await,
            )
        }
        "Registry.PayDistribution" => {
            // 100 units outstanding, issued a moment ago: next to nothing has accrued, so the
            // issuer's call is refused for that business reason (DistributionAboveCap); every
            // other caller is refused for its role first.
            let share = fresh_share(c, f).await;
            run_offering(c, &f.issuer.1, share, "100", "1", &[(&f.alice.1, "100")]).await;
            let pay = pb::PayDistributionRequest {
                request_id: request_id(),
                instrument: by_id(share),
                amount_per_unit: "0.10".into(),
            };
            done(c.registry.pay_distribution(req(pay, who)).await)
        }
        "Registry.RepayAtMaturity" => {
            // A bond maturing half a second after its listing, 10 units held by alice, called
            // once it has matured.
            let maturity = now_ns() + 500_000_000;
            let spec = pb::ListInstrumentRequest {
                holding_cap: Some("1".into()),
                maturity_time_ns: Some(maturity),
                ..support::bond(&symbol(), f.issuer.0)
            };
            let bond = list(c, &f.operator, spec).await;
            run_offering(c, &f.issuer.1, bond, "100", "10", &[(&f.alice.1, "10")]).await;
            tokio::time::sleep(std::time::Duration::from_nanos(
                maturity.saturating_sub(now_ns()) + 1_000_000,
            ))
            .await;
            done(
                c.registry
                    .repay_at_maturity(req(
                        pb::RepayAtMaturityRequest {
                            request_id: request_id(),
                            instrument: by_id(bond),
                        },
                        who,
                    ))
                    .await,
            )
        }

        // MarketData: public, whatever the caller sends.
        "MarketData.GetBook" => done(
            c.market_data
                .get_book(req(
                    pb::GetBookRequest {
                        instrument: by_id(f.share),
                        depth: 0,
                    },
                    who,
                ))
                .await,
        ),
        "MarketData.StreamTrades" => done(
            c.market_data
                .stream_trades(req(
                    pb::StreamTradesRequest {
                        instrument: by_id(f.share),
                        from_sequence: None,
                    },
                    who,
                ))
                .await,
        ),
        "MarketData.StreamBook" => {
            let mut books = match c
                .market_data
                .stream_book(req(
                    pb::StreamBookRequest {
                        instrument: by_id(f.share),
                        depth: 0,
                    },
                    who,
                ))
                .await
            {
                Ok(books) => books.into_inner(),
                Err(status) => return Err(refused(&status)),
            };
            match tokio::time::timeout(STREAM_WAIT, books.message())
                .await
                .expect("the book stream sends the book at once")
            {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err(Refusal {
                    code: Code::Internal,
                    reason: None,
                    message: "the book stream ended without a book".into(),
                }),
                Err(status) => Err(refused(&status)),
            }
        }

        // Identity
        "Identity.IssueToken" => done(
            c.identity
                .issue_token(req(
                    pb::IssueTokenRequest {
                        participant_id: who.names,
                        replace_existing: false,
                    },
                    who,
                ))
                .await,
        ),
        "Identity.RevokeToken" => {
            let issue = pb::IssueTokenRequest {
                participant_id: f.token_holder,
                replace_existing: false,
            };
            let token_id = c
                .identity
                .issue_token(with_token(issue, &f.operator))
                .await
                .expect("issue a throw-away token")
                .into_inner()
                .token_id;
            done(
                c.identity
                    .revoke_token(req(
                        pb::RevokeTokenRequest {
                            request_id: request_id(),
                            token_id,
                        },
                        who,
                    ))
                    .await,
            )
        }
        "Identity.ListTokens" => done(
            c.identity
                .list_tokens(req(pb::ListTokensRequest::default(), who))
                .await,
        ),
        "Identity.ListParticipants" => done(
            c.identity
                .list_participants(req(pb::ListParticipantsRequest::default(), who))
                .await,
        ),
        "Identity.SetParticipantStatus" => {
            // The other contributor tries to suspend alice; everyone else flips the status of a
            // contributor kept for this.
            let (participant_id, suspended) = if who.caller == Caller::OtherContributor {
                (f.alice.0, true)
            } else {
                (
                    f.suspension_target,
                    !participant_info(c, f, f.suspension_target).await.suspended,
                )
            };
            let outcome = done(
                c.identity
                    .set_participant_status(req(
                        pb::SetParticipantStatusRequest {
                            request_id: request_id(),
                            participant_id,
                            suspended,
                        },
                        who,
                    ))
                    .await,
            );
            if participant_id == f.alice.0 && outcome.is_ok() {
                // Should never happen; keep alice usable for the cells after this one.
                let reinstate = pb::SetParticipantStatusRequest {
                    request_id: request_id(),
                    participant_id,
                    suspended: false,
                };
                c.identity
                    .set_participant_status(with_token(reinstate, &f.operator))
                    .await
                    .expect("reinstate alice");
            }
            outcome
        }
        "Membership.ListMembers" => {
            // The operator and the regulator name the issuer; everyone else reads its own.
            let organization_id =
                matches!(who.caller, Caller::Operator | Caller::Regulator).then_some(f.issuer.0);
            let message = pb::ListMembersRequest {
                organization_id,
                ..Default::default()
            };
            // A contributor or funder names the issuer's register, which is not theirs.
            let message = match who.caller {
                Caller::Contributor
                | Caller::OtherContributor
                | Caller::Funder
                | Caller::OtherOrganization => pb::ListMembersRequest {
                    organization_id: Some(f.issuer.0),
                    ..message
                },
                _ => message,
            };
            done(c.membership.list_members(req(message, who)).await)
        }
        "Membership.ProposeResolution" => {
            let proposal = pb::ProposeResolutionRequest {
                request_id: request_id(),
                title: "Open a second site".into(),
                closes_at_ns: now_ns() + 3_600_000_000_000,
            };
            done(c.membership.propose_resolution(req(proposal, who)).await)
        }
        "Membership.CastVote" => {
            let resolution_id = propose(c, &f.issuer.1, 3_600_000_000_000).await;
            let vote = pb::CastVoteRequest {
                request_id: request_id(),
                resolution_id,
                choice: pb::VoteChoice::For as i32,
            };
            done(c.membership.cast_vote(req(vote, who)).await)
        }
        "Membership.CloseResolution" => {
            // Closing 200 ms after it is put, and called once that time has passed.
            let resolution_id = propose(c, &f.issuer.1, 200_000_000).await;
            tokio::time::sleep(Duration::from_millis(250)).await;
            let close = pb::CloseResolutionRequest {
                request_id: request_id(),
                resolution_id,
            };
            done(c.membership.close_resolution(req(close, who)).await)
        }
        "Membership.GetResolution" => done(
            c.membership
                .get_resolution(req(
                    pb::GetResolutionRequest {
                        resolution_id: f.resolution,
                    },
                    who,
                ))
                .await,
        ),
        "Membership.ListResolutions" => done(
            c.membership
                .list_resolutions(req(pb::ListResolutionsRequest::default(), who))
                .await,
        ),
        "Withdrawals.RequestWithdrawal" => {
            let notice = pb::RequestWithdrawalRequest {
                request_id: request_id(),
                instrument: by_id(f.withdrawable),
                quantity: "1".into(),
            };
            let outcome = c.withdrawals.request_withdrawal(req(notice, who)).await;
            if let Ok(reply) = &outcome {
                // Withdraw the notice again, by its holder, so notices do not pile up.
                let holder = if who.caller == Caller::OtherContributor {
                    &f.bob.1
                } else {
                    &f.alice.1
                };
                let cancel = pb::CancelWithdrawalRequest {
                    request_id: request_id(),
                    withdrawal_id: reply.get_ref().withdrawal_id,
                };
                c.withdrawals
                    .cancel_withdrawal(with_token(cancel, holder))
                    .await
                    .expect("the holder cancels its notice");
            }
            done(outcome)
        }
        "Withdrawals.CancelWithdrawal" => {
            // Every caller tries to cancel a notice of alice's.
            let withdrawal_id = alice_withdrawal(c, f).await;
            let outcome = done(
                c.withdrawals
                    .cancel_withdrawal(req(
                        pb::CancelWithdrawalRequest {
                            request_id: request_id(),
                            withdrawal_id,
                        },
                        who,
                    ))
                    .await,
            );
            tidy_withdrawal(c, f, withdrawal_id).await;
            outcome
        }
        "Withdrawals.CompleteWithdrawal" => {
            // Every caller tries to settle a notice of alice's (the share needs no notice).
            let withdrawal_id = alice_withdrawal(c, f).await;
            let outcome = done(
                c.withdrawals
                    .complete_withdrawal(req(
                        pb::CompleteWithdrawalRequest {
                            request_id: request_id(),
                            withdrawal_id,
                        },
                        who,
                    ))
                    .await,
            );
            tidy_withdrawal(c, f, withdrawal_id).await;
            outcome
        }
        "Withdrawals.SetWithdrawalsSuspended" => {
            let suspend = |suspended| pb::SetWithdrawalsSuspendedRequest {
                request_id: request_id(),
                instrument: by_id(f.withdrawable),
                suspended,
            };
            let outcome = done(
                c.withdrawals
                    .set_withdrawals_suspended(req(suspend(true), who))
                    .await,
            );
            if outcome.is_ok() {
                // Resume, so the cells after this one see withdrawals running.
                c.withdrawals
                    .set_withdrawals_suspended(with_token(suspend(false), &f.issuer.1))
                    .await
                    .expect("the issuer resumes");
            }
            outcome
        }
        "Withdrawals.ListWithdrawals" => done(
            c.withdrawals
                .list_withdrawals(req(pb::ListWithdrawalsRequest::default(), who))
                .await,
        ),
        // Registry: accreditation for named categories (a no-op repeat is a business refusal).
        "Registry.SetAccreditedCategories" => done(
            c.registry
                .set_accredited_categories(req(
                    pb::SetAccreditedCategoriesRequest {
                        request_id: request_id(),
                        organization_id: f.issuer.0,
                        categories: Vec::new(),
                    },
                    who,
                ))
                .await,
        ),
        // Vouchers
        "Vouchers.DefineServicePackage" => done(
            c.vouchers
                .define_service_package(req(
                    pb::DefineServicePackageRequest {
                        request_id: request_id(),
                        category: "care".into(),
                        name: "another visit".into(),
                        face_value: "1.00".into(),
                    },
                    who,
                ))
                .await,
        ),
        "Vouchers.IssueVoucher" => done(
            c.vouchers
                .issue_voucher(req(voucher_for_alice(f), who))
                .await,
        ),
        "Vouchers.RedeemVoucher" => {
            // Every caller tries to redeem a fresh voucher of alice's at the issuer.
            let voucher_id = alice_voucher(c, f).await;
            done(
                c.vouchers
                    .redeem_voucher(req(
                        pb::RedeemVoucherRequest {
                            request_id: request_id(),
                            voucher_id,
                            organization_id: f.issuer.0,
                        },
                        who,
                    ))
                    .await,
            )
        }
        "Vouchers.GetVoucher" => {
            // Not a party: answered as an unknown id (NOT_FOUND), a business answer.
            let voucher_id = alice_voucher(c, f).await;
            done(
                c.vouchers
                    .get_voucher(req(pb::GetVoucherRequest { voucher_id }, who))
                    .await,
            )
        }
        "Vouchers.ListServicePackages" => done(
            c.vouchers
                .list_service_packages(req(
                    pb::ListServicePackagesRequest {
                        after_package_id: None,
                        limit: 10,
                    },
                    who,
                ))
                .await,
        ),
        "Vouchers.VoucherTotals" => done(
            c.vouchers
                .voucher_totals(req(pb::VoucherTotalsRequest::default(), who))
                .await,
        ),
        // Service value: the share carries none, a business refusal for a contributor.
        "ServiceValue.RedeemServiceValue" => done(
            c.service_value
                .redeem_service_value(req(
                    pb::RedeemServiceValueRequest {
                        request_id: request_id(),
                        instrument: by_id(f.share),
                        organization_id: f.issuer.0,
                        amount: "1.00".into(),
                    },
                    who,
                ))
                .await,
        ),
        // Time credits
        "TimeCredits.RecordVolunteerTime" => done(
            c.time_credits
                .record_volunteer_time(req(
                    pb::RecordVolunteerTimeRequest {
                        request_id: request_id(),
                        volunteer_id: f.alice.0,
                        minutes: 30,
                    },
                    who,
                ))
                .await,
        ),
        "TimeCredits.TransferTimeCredits" => done(
            c.time_credits
                .transfer_time_credits(req(
                    pb::TransferTimeCreditsRequest {
                        request_id: request_id(),
                        to_id: f.bob.0,
                        minutes: 1,
                    },
                    who,
                ))
                .await,
        ),
        "TimeCredits.SpendTimeCredits" => done(
            c.time_credits
                .spend_time_credits(req(
                    pb::SpendTimeCreditsRequest {
                        request_id: request_id(),
                        organization_id: f.issuer.0,
                        minutes: 1,
                    },
                    who,
                ))
                .await,
        ),
        "TimeCredits.DonateTimeCredits" => done(
            c.time_credits
                .donate_time_credits(req(
                    pb::DonateTimeCreditsRequest {
                        request_id: request_id(),
                        minutes: 1,
                    },
                    who,
                ))
                .await,
        ),
        "TimeCredits.GrantTimeCredits" => done(
            c.time_credits
                .grant_time_credits(req(
                    pb::GrantTimeCreditsRequest {
                        request_id: request_id(),
                        dependent_id: f.bob.0,
                        minutes: 1,
                    },
                    who,
                ))
                .await,
        ),
        "TimeCredits.GetTimeCredits" => done(
            c.time_credits
                .get_time_credits(req(
                    pb::GetTimeCreditsRequest {
                        participant_id: Some(who.names),
                    },
                    who,
                ))
                .await,
        ),
        // The pool
        "Pool.Contribute" => done(
            c.pool
                .contribute(req(
                    pb::ContributeRequest {
                        request_id: request_id(),
                        amount: "0.01".into(),
                    },
                    who,
                ))
                .await,
        ),
        "Pool.RepayLoan" => done(
            c.pool
                .repay_loan(req(
                    pb::RepayLoanRequest {
                        request_id: request_id(),
                        amount: "0.01".into(),
                    },
                    who,
                ))
                .await,
        ),
        "Pool.CloseNettingCycle" => done(
            c.pool
                .close_netting_cycle(req(
                    pb::CloseNettingCycleRequest {
                        request_id: request_id(),
                    },
                    who,
                ))
                .await,
        ),
        "Pool.DeclareSurplus" => done(
            c.pool
                .declare_surplus(req(
                    pb::DeclareSurplusRequest {
                        request_id: request_id(),
                        year: 2000,
                        surplus: "1.00".into(),
                    },
                    who,
                ))
                .await,
        ),
        "Pool.GetPool" => done(c.pool.get_pool(req(pb::GetPoolRequest {}, who)).await),
        "Pool.GetPoolAccount" => done(
            c.pool
                .get_pool_account(req(
                    pb::GetPoolAccountRequest {
                        participant_id: Some(who.names),
                    },
                    who,
                ))
                .await,
        ),
        "Audit.Stream" => done(
            c.audit
                .stream(req(pb::AuditStreamRequest { from_sequence: 1 }, who))
                .await,
        ),
        "Audit.ChainHead" => done(
            c.audit
                .chain_head(req(pb::ChainHeadRequest { sequence: 1 }, who))
                .await,
        ),
        "History.ListOrders" => done(
            c.history
                .list_orders(req(
                    pb::HistoryOrdersRequest {
                        filter: Some(history_filter(who.names, None)),
                    },
                    who,
                ))
                .await,
        ),
        "History.ListFills" => done(
            c.history
                .list_fills(req(
                    pb::HistoryFillsRequest {
                        filter: Some(history_filter(who.names, None)),
                        order_id: 0,
                    },
                    who,
                ))
                .await,
        ),
        "History.ListCashMovements" => done(
            c.history
                .list_cash_movements(req(
                    pb::CashMovementsRequest {
                        filter: Some(history_filter(who.names, None)),
                    },
                    who,
                ))
                .await,
        ),
        "History.ListActivity" => done(
            c.history
                .list_activity(req(
                    pb::ActivityRequest {
                        filter: Some(history_filter(who.names, None)),
                    },
                    who,
                ))
                .await,
        ),
        "History.GetStatement" => done(
            c.history
                .get_statement(req(
                    pb::StatementRequest {
                        participant_id: who.names,
                        year: 2026,
                    },
                    who,
                ))
                .await,
        ),
        "OpenData.ListTrades" => done(
            c.open_data
                .list_trades(req(
                    pb::InstrumentTradesRequest {
                        filter: Some(history_filter(0, Some(f.share))),
                    },
                    who,
                ))
                .await,
        ),
        "OpenData.GetBars" => done(
            c.open_data
                .get_bars(req(
                    pb::BarsRequest {
                        instrument: by_id(f.share),
                        interval: pb::BarInterval::Day as i32,
                        ..Default::default()
                    },
                    who,
                ))
                .await,
        ),
        "Diagnostics.Echo" => {
            let message = pb::EchoMessage {
                payload: vec![1, 2, 3],
                reply_bytes: 5,
            };
            let replies = match c
                .diagnostics
                .echo(req(tokio_stream::iter([message]), who))
                .await
            {
                Ok(replies) => replies.into_inner(),
                Err(status) => return Err(refused(&status)),
            };
            let echoed: Vec<_> = tokio::time::timeout(STREAM_WAIT, replies.collect())
                .await
                .expect("the echo stream ends");
            match echoed.as_slice() {
                [Ok(echo)] if echo.payload == [1, 2, 3, 0, 0] => Ok(()),
                [Err(status)] => Err(refused(status)),
                other => Err(Refusal {
                    code: Code::Internal,
                    reason: None,
                    message: format!("not one echo padded to 5 bytes: {other:?}"),
                }),
            }
        }
        _ => panic!("no call is written for {rpc}: add one to `call` and a row to MATRIX"),
    }
}

/// A history listing of `participant`'s (0: the caller's own), or of one instrument.
fn history_filter(participant: u32, instrument: Option<u32>) -> pb::HistoryFilter {
    pb::HistoryFilter {
        participant_id: participant,
        instrument: instrument.and_then(by_id),
        ..Default::default()
    }
}

// ---- The test ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_gets_exactly_the_rpcs_it_is_allowed() {
    let table = markdown();
    if std::env::var_os("MUTUA_PRINT_MATRIX").is_some() {
        // Straight to the process's stdout, past the test harness's capture.
        let _ = std::io::stdout()
            .lock()
            .write_all(format!("\n{table}\n").as_bytes());
    }

    let rpcs = every_rpc();
    let rows: Vec<&str> = MATRIX.iter().map(|(rpc, _)| *rpc).collect();
    let missing: Vec<&String> = rpcs
        .iter()
        .filter(|rpc| !rows.contains(&rpc.as_str()))
        .collect();
    let unknown: Vec<&&str> = rows
        .iter()
        .filter(|row| !rpcs.iter().any(|rpc| rpc == *row))
        .collect();
    let duplicated: Vec<&&str> = rows
        .iter()
        .enumerate()
        .filter(|(at, row)| rows[..*at].contains(row))
        .map(|(_, row)| row)
        .collect();
    assert!(
        missing.is_empty() && unknown.is_empty() && duplicated.is_empty(),
        "MATRIX must have exactly one row per mutua.v1 RPC: missing {missing:?}, not an RPC {unknown:?}, duplicated {duplicated:?}\n\n{table}"
    );

    let server = start().await;
    let f = fixture(&server).await;
    let mut c = server.clients().await;
    let mut wrong = Vec::new();
    let mut business = Vec::new();
    for (rpc, row) in MATRIX {
        for (caller, expected) in Caller::ALL.into_iter().zip(*row) {
            let who = who_is(&f, caller);
            let observed = call(rpc, &mut c, &f, &who).await;
            let got = class(&observed);
            let cell = format!("{rpc} as {}", caller.label());
            if got != expected {
                wrong.push(format!(
                    "{cell}: expected {expected:?}, got {got:?} ({observed:?})"
                ));
            }
            if let Err(refusal) = &observed {
                if refusal.reason.is_none() {
                    wrong.push(format!(
                        "{cell}: a refusal without a mutua-reason-code ({refusal:?})"
                    ));
                }
                if let (D | U, Some(reason)) = (got, caller.credential_reason()) {
                    if expected != A && refusal.reason != Some(reason) {
                        wrong.push(format!(
                            "{cell}: reason code {:?}, expected {reason} ({refusal:?})",
                            refusal.reason
                        ));
                    }
                }
                if got == A {
                    business.push(format!(
                        "{cell}: {:?} {:?} (reason {:?})",
                        refusal.code, refusal.message, refusal.reason
                    ));
                }
            }
        }
    }

    // Allowed calls that failed for a business reason: not wrong, but worth seeing.
    if !business.is_empty() && std::env::var_os("MUTUA_PRINT_MATRIX").is_some() {
        let _ = std::io::stdout().lock().write_all(
            format!(
                "Allowed, refused for a business reason:\n{}\n",
                business.join("\n")
            )
            .as_bytes(),
        );
    }
    let cells = MATRIX.len() * CALLERS;
    let business = if business.is_empty() {
        String::new()
    } else {
        format!(
            "\n\nAllowed, refused for a business reason:\n{}",
            business.join("\n")
        )
    };
    assert!(
        wrong.is_empty(),
        "{} of {cells} cells went wrong:\n{}{business}\n\nThe expected matrix:\n\n{table}",
        wrong.len(),
        wrong.join("\n")
    );
    server.stop().await;
}
