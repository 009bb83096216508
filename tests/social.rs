//! The social economy through gRPC, as its users meet it: a funder's voucher from issue to
//! netting, the private subsidy split, accreditation gating and suspension, service value, time
//! credits and the pool.

mod support;

use mutua_gateway::pb;
use support::*;
use tonic::Code;

const DAY_NS: u64 = 24 * 3600 * 1_000_000_000;

/// The people of a small care market.
struct Care {
    operator: String,
    regulator: (u32, String),
    funder: (u32, String),
    alice: (u32, String),
    bob: (u32, String),
    home_care: (u32, String),
    food: (u32, String),
    never_accredited: (u32, String),
    package: u32,
}

async fn care_market(server: &TestServer, c: &mut Clients) -> Care {
    let operator = server.operator_token.clone();
    let regulator = register(c, &operator, pb::Role::Regulator, "the regulator").await;
    let funder = register(c, &operator, pb::Role::Funder, "the municipality").await;
    let alice = register(c, &operator, pb::Role::Contributor, "alice").await;
    let bob = register(c, &operator, pb::Role::Contributor, "bob").await;
    let home_care = register_accredited(c, &operator, "Home Care Co-op").await;
    let food = register_accredited(c, &operator, "Food Co-op").await;
    let never_accredited = register(c, &operator, pb::Role::Organization, "Unlicensed Care").await;
    for (organization, category) in [(home_care.0, "care"), (food.0, "food")] {
        c.registry
            .set_accredited_categories(with_token(
                pb::SetAccreditedCategoriesRequest {
                    request_id: request_id(),
                    organization_id: organization,
                    categories: vec![category.to_string()],
                },
                &regulator.1,
            ))
            .await
            .expect("accredit for a category");
    }
    deposit(c, &operator, funder.0, "10000.00").await;
    deposit(c, &operator, alice.0, "100.00").await;
    let package = c
        .vouchers
        .define_service_package(with_token(
            pb::DefineServicePackageRequest {
                request_id: request_id(),
                category: "care".into(),
                name: "home care visit".into(),
                face_value: "200.00".into(),
            },
            &funder.1,
        ))
        .await
        .expect("define a package")
        .into_inner()
        .package_id;
    Care {
        operator,
        regulator,
        funder,
        alice,
        bob,
        home_care,
        food,
        never_accredited,
        package,
    }
}

async fn issue(c: &mut Clients, m: &Care, co_payment: &str) -> u64 {
    c.vouchers
        .issue_voucher(with_token(
            pb::IssueVoucherRequest {
                request_id: request_id(),
                package_id: m.package,
                beneficiary_id: m.alice.0,
                co_payment: co_payment.into(),
                expires_at_ns: now_ns() + 30 * DAY_NS,
            },
            &m.funder.1,
        ))
        .await
        .expect("issue a voucher")
        .into_inner()
        .voucher_id
}

async fn redeem(
    c: &mut Clients,
    token: &str,
    voucher: u64,
    organization: u32,
) -> Result<pb::CommitResponse, tonic::Status> {
    c.vouchers
        .redeem_voucher(with_token(
            pb::RedeemVoucherRequest {
                request_id: request_id(),
                voucher_id: voucher,
                organization_id: organization,
            },
            token,
        ))
        .await
        .map(|response| response.into_inner())
}

async fn get_voucher(
    c: &mut Clients,
    token: &str,
    voucher: u64,
) -> Result<pb::Voucher, tonic::Status> {
    c.vouchers
        .get_voucher(with_token(
            pb::GetVoucherRequest {
                voucher_id: voucher,
            },
            token,
        ))
        .await
        .map(|response| response.into_inner())
}

async fn pool_account(c: &mut Clients, token: &str, participant: Option<u32>) -> pb::PoolAccount {
    c.pool
        .get_pool_account(with_token(
            pb::GetPoolAccountRequest {
                participant_id: participant,
            },
            token,
        ))
        .await
        .expect("pool account")
        .into_inner()
}

async fn close_netting(c: &mut Clients, operator: &str) -> pb::NettingReport {
    c.pool
        .close_netting_cycle(with_token(
            pb::CloseNettingCycleRequest {
                request_id: request_id(),
            },
            operator,
        ))
        .await
        .expect("close a netting cycle")
        .into_inner()
}

fn refused_with(result: Result<impl std::fmt::Debug, tonic::Status>, code: Code, reason: u16) {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(reason_code(&status), Some(reason), "{status:?}");
}

/// A voucher from issue to netting: the face value is reserved from the funder, the co-payment
/// from the beneficiary; only an organization accredited for the category may take it; the
/// redemption is an obligation of the funder to the organization until the netting cycle pays it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voucher_goes_from_issue_through_redemption_to_netting() {
    let server = start().await;
    let mut c = server.clients().await;
    let m = care_market(&server, &mut c).await;

    let voucher = issue(&mut c, &m, "30.00").await;
    let funder = balances(&mut c, &m.funder.1, None).await;
    assert_eq!(
        (funder.balance.as_str(), funder.reserved.as_str()),
        ("10000.00", "200.00")
    );
    let alice = balances(&mut c, &m.alice.1, None).await;
    assert_eq!(
        (alice.reserved.as_str(), alice.free.as_str()),
        ("30.00", "70.00")
    );

    // Only the beneficiary redeems, only at an accredited organization, only for its category.
    refused_with(
        redeem(&mut c, &m.bob.1, voucher, m.home_care.0).await,
        Code::PermissionDenied,
        81,
    );
    refused_with(
        redeem(&mut c, &m.alice.1, voucher, m.never_accredited.0).await,
        Code::FailedPrecondition,
        75,
    );
    refused_with(
        redeem(&mut c, &m.alice.1, voucher, m.food.0).await,
        Code::FailedPrecondition,
        76,
    );
    refused_with(
        redeem(&mut c, &m.alice.1, voucher + 7, m.home_care.0).await,
        Code::NotFound,
        78,
    );

    redeem(&mut c, &m.alice.1, voucher, m.home_care.0)
        .await
        .expect("redeemed at the home care co-op");
    refused_with(
        redeem(&mut c, &m.alice.1, voucher, m.home_care.0).await,
        Code::FailedPrecondition,
        79,
    );
    // The co-payment went to the funder; the face value is owed to the organization.
    let alice = balances(&mut c, &m.alice.1, None).await;
    assert_eq!(
        (alice.balance.as_str(), alice.reserved.as_str()),
        ("70.00", "0.00")
    );
    let owed = pool_account(&mut c, &m.home_care.1, None).await;
    assert_eq!(
        (owed.owed_to.as_str(), owed.owes.as_str()),
        ("200.00", "0.00")
    );
    let owes = pool_account(&mut c, &m.funder.1, None).await;
    assert_eq!(
        (owes.owed_to.as_str(), owes.owes.as_str()),
        ("0.00", "200.00")
    );

    let report = close_netting(&mut c, &m.operator).await;
    assert_eq!(report.cycle, 1);
    assert_eq!(report.obligations, 1);
    assert_eq!(report.gross, "200.00");
    assert_eq!(report.loans, "0.00");
    assert_eq!(report.carried, "0.00");
    assert_eq!((report.lines.len(), report.lines_total), (2, 2));
    let line = |participant: u32| {
        report
            .lines
            .iter()
            .find(|line| line.participant_id == participant)
            .cloned()
            .expect("a netting line")
    };
    assert_eq!(line(m.funder.0).paid, "200.00");
    assert_eq!(line(m.home_care.0).received, "200.00");

    // The organization has the face value; the funder paid the subsidy, 200.00 less 30.00.
    let organization = balances(&mut c, &m.home_care.1, None).await;
    assert_eq!(organization.balance, "200.00");
    let funder = balances(&mut c, &m.funder.1, None).await;
    assert_eq!(
        (funder.balance.as_str(), funder.reserved.as_str()),
        ("9830.00", "0.00")
    );
    let settled = pool_account(&mut c, &m.home_care.1, None).await;
    assert_eq!(settled.owed_to, "0.00");

    // Nothing open: a second cycle has nothing to do.
    let empty = c
        .pool
        .close_netting_cycle(with_token(
            pb::CloseNettingCycleRequest {
                request_id: request_id(),
            },
            &m.operator,
        ))
        .await;
    refused_with(empty, Code::FailedPrecondition, 51);
    server.stop().await;
}

/// The co-payment and subsidy are the funder's to see (and the regulator's, as aggregates):
/// nothing the redeeming organization or the beneficiary can read carries them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subsidy_split_is_the_funders_alone() {
    let server = start().await;
    let mut c = server.clients().await;
    let m = care_market(&server, &mut c).await;
    let voucher = issue(&mut c, &m, "37.45").await;

    let seen_by_funder = get_voucher(&mut c, &m.funder.1, voucher)
        .await
        .expect("funder");
    assert_eq!(seen_by_funder.co_payment.as_deref(), Some("37.45"));
    assert_eq!(seen_by_funder.subsidy.as_deref(), Some("162.55"));
    let seen_by_alice = get_voucher(&mut c, &m.alice.1, voucher)
        .await
        .expect("beneficiary");
    assert_eq!(seen_by_alice.face_value, "200.00");
    assert_eq!(
        (seen_by_alice.co_payment, seen_by_alice.subsidy),
        (None, None)
    );
    let seen_by_regulator = get_voucher(&mut c, &m.regulator.1, voucher)
        .await
        .expect("regulator");
    assert_eq!(
        (seen_by_regulator.co_payment, seen_by_regulator.subsidy),
        (None, None)
    );
    // Another organization (or contributor) cannot tell the voucher exists.
    for stranger in [&m.home_care.1, &m.bob.1] {
        refused_with(
            get_voucher(&mut c, stranger, voucher).await,
            Code::NotFound,
            78,
        );
    }

    redeem(&mut c, &m.alice.1, voucher, m.home_care.0)
        .await
        .expect("redeemed");
    // Everything the organization can read afterwards: none of it names the split.
    let mut organization_sees = Vec::new();
    organization_sees.push(format!(
        "{:?}",
        balances(&mut c, &m.home_care.1, None).await
    ));
    organization_sees.push(format!(
        "{:?}",
        pool_account(&mut c, &m.home_care.1, None).await
    ));
    organization_sees.push(format!(
        "{:?}",
        get_voucher(&mut c, &m.home_care.1, voucher).await
    ));
    organization_sees.push(format!(
        "{:?}",
        c.pool
            .get_pool(with_token(pb::GetPoolRequest {}, &m.home_care.1))
            .await
            .map(|r| r.into_inner())
    ));
    organization_sees.push(format!(
        "{:?}",
        c.vouchers
            .voucher_totals(with_token(
                pb::VoucherTotalsRequest::default(),
                &m.home_care.1
            ))
            .await
            .map(|r| r.into_inner())
    ));
    organization_sees.push(format!(
        "{:?}",
        c.vouchers
            .list_service_packages(with_token(
                pb::ListServicePackagesRequest {
                    after_package_id: None,
                    limit: 10,
                },
                &m.home_care.1
            ))
            .await
            .map(|r| r.into_inner())
    ));
    for seen in &organization_sees {
        for secret in ["37.45", "162.55"] {
            assert!(
                !seen.contains(secret),
                "the organization saw {secret}: {seen}"
            );
        }
    }

    // The regulator sees the funder's aggregates.
    let totals = c
        .vouchers
        .voucher_totals(with_token(
            pb::VoucherTotalsRequest::default(),
            &m.regulator.1,
        ))
        .await
        .expect("totals")
        .into_inner();
    let funder = totals
        .funders
        .iter()
        .find(|row| row.funder_id == m.funder.0)
        .expect("the funder's row");
    assert_eq!(
        (
            funder.issued,
            funder.redeemed,
            funder.co_payment.as_str(),
            funder.subsidy.as_str()
        ),
        (1, 1, "37.45", "162.55")
    );
    // Paged by funder id: nothing after the only funder.
    let after = c
        .vouchers
        .voucher_totals(with_token(
            pb::VoucherTotalsRequest {
                after_funder_id: Some(m.funder.0),
                limit: 1,
            },
            &m.regulator.1,
        ))
        .await
        .expect("the next page")
        .into_inner();
    assert!(after.funders.is_empty());
    server.stop().await;
}

/// A suspended organization redeems nothing, lists nothing and hosts no time credits, and keeps
/// what it is owed: the netting cycle still pays it. Reinstated, it redeems again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspension_stops_redemption_and_keeps_what_is_owed() {
    let server = start().await;
    let mut c = server.clients().await;
    let m = care_market(&server, &mut c).await;
    let first = issue(&mut c, &m, "0.00").await;
    let second = issue(&mut c, &m, "0.00").await;
    redeem(&mut c, &m.alice.1, first, m.home_care.0)
        .await
        .expect("redeemed before the suspension");

    let accreditation = |accredited: bool| pb::SetAccreditationRequest {
        request_id: request_id(),
        organization_id: m.home_care.0,
        accredited,
    };
    c.registry
        .set_accreditation(with_token(accreditation(false), &m.regulator.1))
        .await
        .expect("suspend");
    refused_with(
        redeem(&mut c, &m.alice.1, second, m.home_care.0).await,
        Code::FailedPrecondition,
        75,
    );
    let listing = c
        .registry
        .list_instrument(with_token(share("CARE-1", m.home_care.0), &m.operator))
        .await;
    refused_with(listing, Code::FailedPrecondition, 75);
    let hosted = c
        .time_credits
        .record_volunteer_time(with_token(
            pb::RecordVolunteerTimeRequest {
                request_id: request_id(),
                volunteer_id: m.bob.0,
                minutes: 60,
            },
            &m.home_care.1,
        ))
        .await;
    refused_with(hosted, Code::FailedPrecondition, 75);

    // What it was owed is still owed, and paid.
    let report = close_netting(&mut c, &m.operator).await;
    assert_eq!(report.paid_out, "200.00");
    assert_eq!(
        balances(&mut c, &m.home_care.1, None).await.balance,
        "200.00"
    );

    c.registry
        .set_accreditation(with_token(accreditation(true), &m.regulator.1))
        .await
        .expect("reinstate");
    redeem(&mut c, &m.alice.1, second, m.home_care.0)
        .await
        .expect("redeemed after reinstatement");
    server.stop().await;
}

/// Time credits: an accredited organization records volunteer time, the volunteer gives some to a
/// neighbour, who spends them on care; donated minutes go to a shared pool an organization grants
/// from. Minutes are conserved; a transfer beyond the balance is refused and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_credits_move_and_are_conserved() {
    let server = start().await;
    let mut c = server.clients().await;
    let m = care_market(&server, &mut c).await;

    c.time_credits
        .record_volunteer_time(with_token(
            pb::RecordVolunteerTimeRequest {
                request_id: request_id(),
                volunteer_id: m.alice.0,
                minutes: 180,
            },
            &m.home_care.1,
        ))
        .await
        .expect("record");
    let refused = c
        .time_credits
        .record_volunteer_time(with_token(
            pb::RecordVolunteerTimeRequest {
                request_id: request_id(),
                volunteer_id: m.alice.0,
                minutes: 60,
            },
            &m.never_accredited.1,
        ))
        .await;
    refused_with(refused, Code::FailedPrecondition, 75);
    c.time_credits
        .transfer_time_credits(with_token(
            pb::TransferTimeCreditsRequest {
                request_id: request_id(),
                to_id: m.bob.0,
                minutes: 120,
            },
            &m.alice.1,
        ))
        .await
        .expect("transfer");
    let too_many = c
        .time_credits
        .transfer_time_credits(with_token(
            pb::TransferTimeCreditsRequest {
                request_id: request_id(),
                to_id: m.bob.0,
                minutes: 61,
            },
            &m.alice.1,
        ))
        .await;
    refused_with(too_many, Code::FailedPrecondition, 88);
    c.time_credits
        .spend_time_credits(with_token(
            pb::SpendTimeCreditsRequest {
                request_id: request_id(),
                organization_id: m.home_care.0,
                minutes: 90,
            },
            &m.bob.1,
        ))
        .await
        .expect("spend");
    c.time_credits
        .donate_time_credits(with_token(
            pb::DonateTimeCreditsRequest {
                request_id: request_id(),
                minutes: 30,
            },
            &m.bob.1,
        ))
        .await
        .expect("donate");
    c.time_credits
        .grant_time_credits(with_token(
            pb::GrantTimeCreditsRequest {
                request_id: request_id(),
                dependent_id: m.alice.0,
                minutes: 20,
            },
            &m.home_care.1,
        ))
        .await
        .expect("grant");

    let alice = time_credits_of(&mut c, &m.regulator.1, m.alice.0).await;
    let bob = time_credits_of(&mut c, &m.regulator.1, m.bob.0).await;
    let organization = time_credits_of(&mut c, &m.regulator.1, m.home_care.0).await;
    // alice: 180 - 120 + 20; bob: 120 - 90 - 30; the organization took 90; the pool keeps 10.
    assert_eq!(
        (alice.minutes, bob.minutes, organization.minutes),
        (80, 0, 90)
    );
    assert_eq!(alice.pool_minutes, 10);
    assert_eq!(
        alice.minutes + bob.minutes + organization.minutes + alice.pool_minutes,
        180,
        "minutes are conserved"
    );
    // A contributor reads only its own balance.
    let prying = c
        .time_credits
        .get_time_credits(with_token(
            pb::GetTimeCreditsRequest {
                participant_id: Some(m.alice.0),
            },
            &m.bob.1,
        ))
        .await;
    assert_eq!(prying.expect_err("refused").code(), Code::PermissionDenied);
    server.stop().await;
}

/// The pool lends to a debtor short of cash at the netting cycle and is repaid; a surplus
/// declaration moves its shares to the reserve, the fund and the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_lends_to_a_short_debtor_and_is_repaid() {
    let server = start().await;
    let mut c = server.clients().await;
    let m = care_market(&server, &mut c).await;
    let operator = m.operator.clone();
    // bob puts 500.00 into the pool.
    deposit(&mut c, &operator, m.bob.0, "1000.00").await;
    let contributed = c
        .pool
        .contribute(with_token(
            pb::ContributeRequest {
                request_id: request_id(),
                amount: "500.00".into(),
            },
            &m.bob.1,
        ))
        .await
        .expect("contribute")
        .into_inner();
    assert_eq!(contributed.pool_balance, "500.00");

    // A bond of the food co-op carrying 5.00 of service value a unit a year; alice holds 20
    // units, 100.00 a year, and redeems 80.00 of it at the home care co-op after the food co-op
    // has spent its cash.
    deposit(&mut c, &operator, m.alice.0, "3000.00").await;
    let bond = list(
        &mut c,
        &operator,
        pb::ListInstrumentRequest {
            service_value: "5.00".into(),
            holding_cap: Some("1".into()),
            ..bond("FOOD-BOND", m.food.0)
        },
    )
    .await;
    run_offering(&mut c, &m.food.1, bond, "20", "10", &[(&m.alice.1, "20")]).await;
    let food_cash = balances(&mut c, &m.food.1, None).await.free;
    c.accounts
        .withdraw(with_token(
            pb::WithdrawRequest {
                request_id: request_id(),
                participant_id: m.food.0,
                amount: food_cash,
            },
            &operator,
        ))
        .await
        .expect("the food co-op's cash leaves");
    let too_much = c
        .service_value
        .redeem_service_value(with_token(
            pb::RedeemServiceValueRequest {
                request_id: request_id(),
                instrument: by_id(bond),
                organization_id: m.home_care.0,
                amount: "100.01".into(),
            },
            &m.alice.1,
        ))
        .await;
    refused_with(too_much, Code::FailedPrecondition, 87);
    c.service_value
        .redeem_service_value(with_token(
            pb::RedeemServiceValueRequest {
                request_id: request_id(),
                instrument: by_id(bond),
                organization_id: m.home_care.0,
                amount: "80.00".into(),
            },
            &m.alice.1,
        ))
        .await
        .expect("service value redeemed");

    let report = close_netting(&mut c, &operator).await;
    assert_eq!(report.loans, "80.00");
    assert_eq!(report.pool_balance, "420.00");
    assert_eq!(
        balances(&mut c, &m.home_care.1, None).await.balance,
        "80.00"
    );
    let debtor = pool_account(&mut c, &m.food.1, None).await;
    assert_eq!(debtor.loan, "80.00");

    // The food co-op repays when it has cash again; more than it owes is refused.
    deposit(&mut c, &operator, m.food.0, "100.00").await;
    let repay = |amount: &str| pb::RepayLoanRequest {
        request_id: request_id(),
        amount: amount.into(),
    };
    refused_with(
        c.pool
            .repay_loan(with_token(repay("80.01"), &m.food.1))
            .await,
        Code::FailedPrecondition,
        90,
    );
    c.pool
        .repay_loan(with_token(repay("80.00"), &m.food.1))
        .await
        .expect("repaid");
    let pool = c
        .pool
        .get_pool(with_token(pb::GetPoolRequest {}, &m.regulator.1))
        .await
        .expect("pool")
        .into_inner();
    assert_eq!(
        (pool.balance.as_str(), pool.loans_outstanding.as_str()),
        ("500.00", "0.00")
    );

    // A surplus of 1000.00: 150.00 to the indivisible reserve, 30.00 to the fund, the configured
    // part to the pool; declared once a year.
    deposit(&mut c, &operator, m.home_care.0, "1000.00").await;
    let year = current_year();
    let declared = c
        .pool
        .declare_surplus(with_token(
            pb::DeclareSurplusRequest {
                request_id: request_id(),
                year,
                surplus: "1000.00".into(),
            },
            &m.home_care.1,
        ))
        .await
        .expect("surplus declared")
        .into_inner();
    assert_eq!(
        (declared.reserve.as_str(), declared.fund.as_str()),
        ("150.00", "30.00")
    );
    let again = c
        .pool
        .declare_surplus(with_token(
            pb::DeclareSurplusRequest {
                request_id: request_id(),
                year,
                surplus: "1000.00".into(),
            },
            &m.home_care.1,
        ))
        .await;
    refused_with(again, Code::FailedPrecondition, 91);
    let account = pool_account(&mut c, &m.home_care.1, None).await;
    assert_eq!(account.indivisible_reserve, "150.00");
    assert_eq!(account.surplus_years, vec![year]);
    server.stop().await;
}

async fn time_credits_of(c: &mut Clients, token: &str, participant: u32) -> pb::TimeCreditsBalance {
    c.time_credits
        .get_time_credits(with_token(
            pb::GetTimeCreditsRequest {
                participant_id: Some(participant),
            },
            token,
        ))
        .await
        .expect("time credits")
        .into_inner()
}

fn current_year() -> i32 {
    mutua_engine::calendar::date_of(now_ns()).year as i32
}

/// Bologna at its real size, through the server: a foundation funds 376 beneficiaries across
/// three packages with co-payments from none to half; they redeem at four organizations
/// accredited for their categories; one organization is suspended half-way (its later
/// redemptions refused, what it was owed kept); a netting cycle settles it all. Every organization
/// is paid exactly the face values redeemed with it, sees no split, and cash is conserved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bologna_at_its_real_size() {
    const BENEFICIARIES: usize = 376;
    let server = start().await;
    let mut c = server.clients().await;
    let operator = server.operator_token.clone();
    let regulator = register(&mut c, &operator, pb::Role::Regulator, "the regulator").await;
    let foundation = register(&mut c, &operator, pb::Role::Funder, "the foundation").await;
    deposit(&mut c, &operator, foundation.0, "200000.00").await;
    let mut deposited_minor: u64 = 200_000_00;

    // (category, name, face value in minor units, co-payment percent for beneficiary n)
    let packages = [
        ("home-care", "home care week", 48_000u64),
        ("day-centre", "day centre month", 31_000),
        ("meals", "meals for a month", 9_500),
    ];
    let mut package_ids = Vec::new();
    for (category, name, face) in packages {
        let id = c
            .vouchers
            .define_service_package(with_token(
                pb::DefineServicePackageRequest {
                    request_id: request_id(),
                    category: category.into(),
                    name: name.into(),
                    face_value: cents(face),
                },
                &foundation.1,
            ))
            .await
            .expect("package")
            .into_inner()
            .package_id;
        package_ids.push(id);
    }
    // Four organizations: two for home care, one day centre, one kitchen.
    let mut organizations = Vec::new();
    for (name, category) in [
        ("CADIAI", "home-care"),
        ("Società Dolce", "home-care"),
        ("Il Cigno", "day-centre"),
        ("Cucina Solidale", "meals"),
    ] {
        let organization = register_accredited(&mut c, &operator, name).await;
        c.registry
            .set_accredited_categories(with_token(
                pb::SetAccreditedCategoriesRequest {
                    request_id: request_id(),
                    organization_id: organization.0,
                    categories: vec![category.to_string()],
                },
                &regulator.1,
            ))
            .await
            .expect("categories");
        organizations.push((organization, category));
    }

    let mut owed_minor = vec![0u64; organizations.len()];
    let mut co_payments: Vec<String> = Vec::new();
    let mut refused_after_suspension = 0;
    for n in 0..BENEFICIARIES {
        let beneficiary =
            register(&mut c, &operator, pb::Role::Contributor, &format!("b{n}")).await;
        deposit(&mut c, &operator, beneficiary.0, "300.00").await;
        deposited_minor += 300_00;
        let package = n % packages.len();
        let face = packages[package].2;
        // 0 %, 10 %, 25 % or 50 % of the face value, rounded down to a cent.
        let co_payment = face * [0, 10, 25, 50][n % 4] / 100;
        if co_payment > 0 {
            co_payments.push(cents(co_payment));
            co_payments.push(cents(face - co_payment));
        }
        let voucher = c
            .vouchers
            .issue_voucher(with_token(
                pb::IssueVoucherRequest {
                    request_id: request_id(),
                    package_id: package_ids[package],
                    beneficiary_id: beneficiary.0,
                    co_payment: cents(co_payment),
                    expires_at_ns: now_ns() + 60 * DAY_NS,
                },
                &foundation.1,
            ))
            .await
            .expect("voucher")
            .into_inner()
            .voucher_id;
        // Half-way, the regulator suspends Società Dolce.
        if n == BENEFICIARIES / 2 {
            c.registry
                .set_accreditation(with_token(
                    pb::SetAccreditationRequest {
                        request_id: request_id(),
                        organization_id: organizations[1].0 .0,
                        accredited: false,
                    },
                    &regulator.1,
                ))
                .await
                .expect("suspend");
        }
        // Home care alternates between the two home-care organizations; the others have one.
        let choices: Vec<usize> = (0..organizations.len())
            .filter(|at| organizations[*at].1 == packages[package].0)
            .collect();
        let at = choices[n / packages.len() % choices.len()];
        match redeem(&mut c, &beneficiary.1, voucher, organizations[at].0 .0).await {
            Ok(_) => owed_minor[at] += face,
            Err(status) => {
                assert!(at == 1 && n >= BENEFICIARIES / 2, "{status:?}");
                assert_eq!(reason_code(&status), Some(75));
                refused_after_suspension += 1;
                // Redeemed at the other home-care organization instead.
                redeem(&mut c, &beneficiary.1, voucher, organizations[0].0 .0)
                    .await
                    .expect("redeemed elsewhere");
                owed_minor[0] += face;
            }
        }
    }
    assert!(refused_after_suspension > 20);

    let report = close_netting(&mut c, &operator).await;
    assert_eq!(report.obligations, BENEFICIARIES as u64);
    assert_eq!(report.carried, "0.00");
    assert_eq!(report.loans, "0.00");
    for (at, ((organization, _), owed)) in organizations.iter().zip(&owed_minor).enumerate() {
        let seen = balances(&mut c, &organization.1, None).await;
        assert_eq!(seen.balance, cents(*owed), "organization {at}");
        // Everything the organization can read: face values, never a split.
        let account = pool_account(&mut c, &organization.1, None).await;
        let text = format!("{seen:?}{account:?}");
        for secret in &co_payments {
            assert!(
                !text.contains(&format!("\"{secret}\"")),
                "{text} shows {secret}"
            );
        }
    }
    // The suspended organization was paid what it was owed before its suspension.
    assert!(owed_minor[1] > 0);

    // Cash is conserved: every balance together is what was deposited.
    let participants = c
        .identity
        .list_participants(with_token(
            pb::ListParticipantsRequest::default(),
            &operator,
        ))
        .await
        .expect("participants")
        .into_inner()
        .participants;
    let mut total_minor = 0u64;
    for participant in participants {
        let seen = balances(&mut c, &operator, Some(participant.participant_id)).await;
        total_minor += minor_of(&seen.balance);
        assert_eq!(
            seen.reserved, "0.00",
            "nothing stays reserved after netting"
        );
    }
    let pool = c
        .pool
        .get_pool(with_token(pb::GetPoolRequest {}, &operator))
        .await
        .expect("pool")
        .into_inner();
    total_minor += minor_of(&pool.balance) + minor_of(&pool.social_economy_fund);
    assert_eq!(total_minor, deposited_minor);
    server.stop().await;
}

fn cents(minor: u64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

fn minor_of(text: &str) -> u64 {
    let (whole, fraction) = text.split_once('.').expect("two decimals");
    whole.parse::<u64>().expect("whole") * 100 + fraction.parse::<u64>().expect("cents")
}

/// The gateway's clock: with a tick every 50 ms a voucher expires on its own (both reservations
/// released), and with a netting cycle every second a redemption is paid without the operator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clock_expires_vouchers_and_runs_netting_on_schedule() {
    let server = start_with(&["--clock-interval-ms", "50", "--netting-interval-s", "1"]).await;
    let mut c = server.clients().await;
    let m = care_market(&server, &mut c).await;
    let expiring = c
        .vouchers
        .issue_voucher(with_token(
            pb::IssueVoucherRequest {
                request_id: request_id(),
                package_id: m.package,
                beneficiary_id: m.alice.0,
                co_payment: "10.00".into(),
                expires_at_ns: now_ns() + 300_000_000,
            },
            &m.funder.1,
        ))
        .await
        .expect("a voucher valid for 300 ms")
        .into_inner()
        .voucher_id;
    let redeemed = issue(&mut c, &m, "0.00").await;
    redeem(&mut c, &m.alice.1, redeemed, m.home_care.0)
        .await
        .expect("redeemed");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let voucher = get_voucher(&mut c, &m.funder.1, expiring)
            .await
            .expect("voucher");
        let paid = balances(&mut c, &m.home_care.1, None).await.balance == "200.00";
        if voucher.status == pb::VoucherStatus::Expired as i32 && paid {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after 20 s: voucher {voucher:?}, organization paid: {paid}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Both reservations of the expired voucher are back; the redeemed one was settled.
    let funder = balances(&mut c, &m.funder.1, None).await;
    assert_eq!(
        (funder.balance.as_str(), funder.reserved.as_str()),
        ("9800.00", "0.00")
    );
    let alice = balances(&mut c, &m.alice.1, None).await;
    assert_eq!(alice.reserved, "0.00");
    // A second scheduled cycle finds nothing open and sends nothing.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let pool = c
        .pool
        .get_pool(with_token(pb::GetPoolRequest {}, &m.regulator.1))
        .await
        .expect("pool")
        .into_inner();
    assert_eq!(
        pool.cycles_closed, 1,
        "an idle market runs no further cycles"
    );
    server.stop().await;
}
