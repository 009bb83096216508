//! `mutua voucher ...`, `mutua service redeem`, `mutua time ...` and `mutua pool ...`: the
//! social economy from a shell (vouchers, service value, time credits, the collective pool and
//! netting, surplus declarations).

use clap::Subcommand;

use super::governance::parse_closing_time;
use super::{authorized, instrument_ref, rfc3339, sequence_of, status_error, Clients, Mutation};
use crate::pb;

#[derive(Subcommand, Debug)]
pub enum VoucherCommand {
    /// Funder: define a service package vouchers are issued for.
    Package {
        /// Service category: 1 to 32 characters a-z, 0-9 or '-' (`home-care`).
        #[arg(long)]
        category: String,
        #[arg(long)]
        name: String,
        /// Face value of each voucher, in cash (`200.00`).
        #[arg(long)]
        face_value: String,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Funder: issue a voucher of one of its packages to a beneficiary.
    Issue {
        #[arg(long)]
        package: u32,
        #[arg(long)]
        beneficiary: u32,
        /// What the beneficiary pays of the face value (reserved from its cash now); the funder
        /// pays the rest. Only the funder sees the split.
        #[arg(long, default_value = "0")]
        co_payment: String,
        /// Expiry: RFC 3339 in UTC, or from now (`+30d`).
        #[arg(long, value_parser = parse_closing_time)]
        expires: u64,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Beneficiary: redeem a voucher, in full, at an accredited organization.
    Redeem {
        voucher: u64,
        #[arg(long)]
        organization: u32,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// One voucher (its parties, the regulator and the operator).
    Show { voucher: u64 },
    /// Every service package.
    Packages,
    /// Per-funder totals: a funder its own, the regulator and the operator all.
    Totals,
}

#[derive(Subcommand, Debug)]
pub enum ServiceCommand {
    /// Holder: redeem service value of an instrument at an accredited organization.
    Redeem {
        /// Symbol, or `#<id>` for an instrument id.
        instrument: String,
        #[arg(long)]
        organization: u32,
        /// Cash amount of services (`50.00`), within the year's allowance.
        #[arg(long)]
        amount: String,
        #[command(flatten)]
        mutation: Mutation,
    },
}

#[derive(Subcommand, Debug)]
pub enum TimeCommand {
    /// Accredited organization: record a volunteer's time (minutes become time credits).
    Record {
        #[arg(long)]
        volunteer: u32,
        #[arg(long)]
        minutes: u64,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Give time credits to someone else (a relative far away, a neighbour).
    Transfer {
        #[arg(long)]
        to: u32,
        #[arg(long)]
        minutes: u64,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Contributor: spend time credits on care at an accredited organization.
    Spend {
        #[arg(long)]
        organization: u32,
        #[arg(long)]
        minutes: u64,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Donate time credits to the shared pool.
    Donate {
        #[arg(long)]
        minutes: u64,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Accredited organization or operator: grant time credits from the shared pool.
    Grant {
        #[arg(long)]
        dependent: u32,
        #[arg(long)]
        minutes: u64,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Time credits held (the caller's own; the regulator and operator anyone's).
    Balance {
        #[arg(long)]
        participant: Option<u32>,
    },
}

#[derive(Subcommand, Debug)]
pub enum PoolCommand {
    /// Contribute free cash to the collective pool.
    Contribute {
        #[arg(long)]
        amount: String,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Repay (part of) a loan from the pool.
    Repay {
        #[arg(long)]
        amount: String,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Operator: close a netting cycle and print its report.
    Net {
        #[command(flatten)]
        mutation: Mutation,
    },
    /// The pool: cash, fund, loans, open obligations.
    Show,
    /// A participant's place in the pool (the caller's own; regulator and operator anyone's).
    Account {
        #[arg(long)]
        participant: Option<u32>,
    },
    /// Organization: declare a year's surplus (reserve, fund and pool shares leave its cash).
    Surplus {
        #[arg(long)]
        year: i32,
        #[arg(long)]
        amount: String,
        #[command(flatten)]
        mutation: Mutation,
    },
}

fn voucher_status(value: i32) -> &'static str {
    match pb::VoucherStatus::try_from(value) {
        Ok(pb::VoucherStatus::Open) => "open",
        Ok(pb::VoucherStatus::Redeemed) => "redeemed",
        Ok(pb::VoucherStatus::Expired) => "expired",
        _ => "unknown",
    }
}

pub(super) async fn voucher(
    clients: &mut Clients,
    token: Option<&str>,
    command: VoucherCommand,
) -> anyhow::Result<()> {
    match command {
        VoucherCommand::Package {
            category,
            name,
            face_value,
            mutation,
        } => {
            let message = pb::DefineServicePackageRequest {
                request_id: mutation.id(),
                category,
                name,
                face_value,
            };
            let reply = clients
                .vouchers
                .define_service_package(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "service package {} defined ({})",
                reply.package_id,
                sequence_of(reply.commit.as_ref())
            );
        }
        VoucherCommand::Issue {
            package,
            beneficiary,
            co_payment,
            expires,
            mutation,
        } => {
            let message = pb::IssueVoucherRequest {
                request_id: mutation.id(),
                package_id: package,
                beneficiary_id: beneficiary,
                co_payment,
                expires_at_ns: expires,
            };
            let reply = clients
                .vouchers
                .issue_voucher(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "voucher {} issued to participant {beneficiary}, valid until {} ({})",
                reply.voucher_id,
                rfc3339(expires),
                sequence_of(reply.commit.as_ref())
            );
        }
        VoucherCommand::Redeem {
            voucher,
            organization,
            mutation,
        } => {
            let message = pb::RedeemVoucherRequest {
                request_id: mutation.id(),
                voucher_id: voucher,
                organization_id: organization,
            };
            let reply = clients
                .vouchers
                .redeem_voucher(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "voucher {voucher} redeemed at organization {organization}; paid at the next netting cycle ({})",
                sequence_of(reply.commit.as_ref())
            );
        }
        VoucherCommand::Show { voucher } => {
            let reply = clients
                .vouchers
                .get_voucher(authorized(
                    pb::GetVoucherRequest {
                        voucher_id: voucher,
                    },
                    token,
                )?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "voucher {}: {}, beneficiary {}, funder {}",
                reply.voucher_id,
                voucher_status(reply.status),
                reply.beneficiary_id,
                reply.funder_id
            );
            if !reply.face_value.is_empty() {
                println!(
                    "  package {}, face value {}, valid until {}",
                    reply.package_id,
                    reply.face_value,
                    rfc3339(reply.expires_at_ns)
                );
            }
            if let (Some(co_payment), Some(subsidy)) = (&reply.co_payment, &reply.subsidy) {
                println!("  co-payment {co_payment}, subsidy {subsidy} (the funder's eyes only)");
            }
        }
        VoucherCommand::Packages => {
            let mut after = None;
            loop {
                let message = pb::ListServicePackagesRequest {
                    after_package_id: after,
                    limit: 0,
                };
                let reply = clients
                    .vouchers
                    .list_service_packages(authorized(message, token)?)
                    .await
                    .map_err(status_error)?
                    .into_inner();
                for package in &reply.packages {
                    println!(
                        "package {:>6}  funder {:>8}  {:<16} {:>12}  {}",
                        package.package_id,
                        package.funder_id,
                        package.category,
                        package.face_value,
                        package.name
                    );
                }
                match reply.packages.last() {
                    Some(last) => after = Some(last.package_id),
                    None => break,
                }
            }
        }
        VoucherCommand::Totals => {
            let mut after = None;
            loop {
                let message = pb::VoucherTotalsRequest {
                    after_funder_id: after,
                    limit: 0,
                };
                let reply = clients
                    .vouchers
                    .voucher_totals(authorized(message, token)?)
                    .await
                    .map_err(status_error)?
                    .into_inner();
                for funder in &reply.funders {
                    println!(
                        "funder {}: {} issued ({} face value: {} co-payment, {} subsidy), {} redeemed ({}), {} expired",
                        funder.funder_id,
                        funder.issued,
                        funder.face_value,
                        funder.co_payment,
                        funder.subsidy,
                        funder.redeemed,
                        funder.redeemed_face_value,
                        funder.expired
                    );
                }
                match reply.funders.last() {
                    Some(last) => after = Some(last.funder_id),
                    None => break,
                }
            }
        }
    }
    Ok(())
}

pub(super) async fn service(
    clients: &mut Clients,
    token: Option<&str>,
    command: ServiceCommand,
) -> anyhow::Result<()> {
    let ServiceCommand::Redeem {
        instrument,
        organization,
        amount,
        mutation,
    } = command;
    let message = pb::RedeemServiceValueRequest {
        request_id: mutation.id(),
        instrument: Some(instrument_ref(&instrument)),
        organization_id: organization,
        amount: amount.clone(),
    };
    let reply = clients
        .service_value
        .redeem_service_value(authorized(message, token)?)
        .await
        .map_err(status_error)?
        .into_inner();
    println!(
        "{amount} of service value of {instrument} redeemed at organization {organization} ({})",
        sequence_of(reply.commit.as_ref())
    );
    Ok(())
}

pub(super) async fn time(
    clients: &mut Clients,
    token: Option<&str>,
    command: TimeCommand,
) -> anyhow::Result<()> {
    let reply = match command {
        TimeCommand::Record {
            volunteer,
            minutes,
            mutation,
        } => {
            let message = pb::RecordVolunteerTimeRequest {
                request_id: mutation.id(),
                volunteer_id: volunteer,
                minutes,
            };
            clients
                .time_credits
                .record_volunteer_time(authorized(message, token)?)
                .await
        }
        TimeCommand::Transfer {
            to,
            minutes,
            mutation,
        } => {
            let message = pb::TransferTimeCreditsRequest {
                request_id: mutation.id(),
                to_id: to,
                minutes,
            };
            clients
                .time_credits
                .transfer_time_credits(authorized(message, token)?)
                .await
        }
        TimeCommand::Spend {
            organization,
            minutes,
            mutation,
        } => {
            let message = pb::SpendTimeCreditsRequest {
                request_id: mutation.id(),
                organization_id: organization,
                minutes,
            };
            clients
                .time_credits
                .spend_time_credits(authorized(message, token)?)
                .await
        }
        TimeCommand::Donate { minutes, mutation } => {
            let message = pb::DonateTimeCreditsRequest {
                request_id: mutation.id(),
                minutes,
            };
            clients
                .time_credits
                .donate_time_credits(authorized(message, token)?)
                .await
        }
        TimeCommand::Grant {
            dependent,
            minutes,
            mutation,
        } => {
            let message = pb::GrantTimeCreditsRequest {
                request_id: mutation.id(),
                dependent_id: dependent,
                minutes,
            };
            clients
                .time_credits
                .grant_time_credits(authorized(message, token)?)
                .await
        }
        TimeCommand::Balance { participant } => {
            let reply = clients
                .time_credits
                .get_time_credits(authorized(
                    pb::GetTimeCreditsRequest {
                        participant_id: participant,
                    },
                    token,
                )?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "participant {}: {} minutes of time credits; the shared pool holds {}",
                reply.participant_id, reply.minutes, reply.pool_minutes
            );
            return Ok(());
        }
    };
    let reply = reply.map_err(status_error)?.into_inner();
    println!(
        "done; the receiving account holds {} minutes ({})",
        reply.to_balance_minutes,
        sequence_of(reply.commit.as_ref())
    );
    Ok(())
}

pub(super) async fn pool(
    clients: &mut Clients,
    token: Option<&str>,
    command: PoolCommand,
) -> anyhow::Result<()> {
    match command {
        PoolCommand::Contribute { amount, mutation } => {
            let message = pb::ContributeRequest {
                request_id: mutation.id(),
                amount,
            };
            let reply = clients
                .pool
                .contribute(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "contributed; the pool holds {} ({})",
                reply.pool_balance,
                sequence_of(reply.commit.as_ref())
            );
        }
        PoolCommand::Repay { amount, mutation } => {
            let message = pb::RepayLoanRequest {
                request_id: mutation.id(),
                amount: amount.clone(),
            };
            let reply = clients
                .pool
                .repay_loan(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "repaid {amount} to the pool ({})",
                sequence_of(reply.commit.as_ref())
            );
        }
        PoolCommand::Net { mutation } => {
            let message = pb::CloseNettingCycleRequest {
                request_id: mutation.id(),
            };
            let report = clients
                .pool
                .close_netting_cycle(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "netting cycle {}: {} obligations, {} gross, {} net (efficiency {}); paid in {}, paid out {}, lent {}, carried {}; the pool holds {} ({})",
                report.cycle,
                report.obligations,
                report.gross,
                report.net,
                report.efficiency,
                report.paid_in,
                report.paid_out,
                report.loans,
                report.carried,
                report.pool_balance,
                sequence_of(report.commit.as_ref())
            );
            for line in &report.lines {
                println!(
                    "  participant {:>8}  owed {:>12}  owes {:>12}  paid {:>12}  lent {:>12}  received {:>12}  carried {:>12}",
                    line.participant_id, line.owed_to, line.owes, line.paid, line.loan, line.received, line.carried
                );
            }
            let unlisted = report.lines_total.saturating_sub(report.lines.len() as u64);
            if unlisted > 0 {
                println!(
                    "  ... and {unlisted} more participants (`mutua pool account --participant N`)"
                );
            }
        }
        PoolCommand::Show => {
            let pool = clients
                .pool
                .get_pool(authorized(pb::GetPoolRequest {}, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "pool {}; social economy fund {}; loans outstanding {}; {} obligations open ({}); {} cycles closed",
                pool.balance,
                pool.social_economy_fund,
                pool.loans_outstanding,
                pool.obligations_open,
                pool.obligations_gross,
                pool.cycles_closed
            );
        }
        PoolCommand::Account { participant } => {
            let account = clients
                .pool
                .get_pool_account(authorized(
                    pb::GetPoolAccountRequest {
                        participant_id: participant,
                    },
                    token,
                )?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "participant {}: owed {}, owes {}, loan {}, contributed {}, indivisible reserve {}, surpluses declared for {:?}",
                account.participant_id,
                account.owed_to,
                account.owes,
                account.loan,
                account.contributed,
                account.indivisible_reserve,
                account.surplus_years
            );
        }
        PoolCommand::Surplus {
            year,
            amount,
            mutation,
        } => {
            let message = pb::DeclareSurplusRequest {
                request_id: mutation.id(),
                year,
                surplus: amount,
            };
            let reply = clients
                .pool
                .declare_surplus(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "surplus of {year} declared: {} to the indivisible reserve, {} to the social economy fund, {} into the pool ({})",
                reply.reserve,
                reply.fund,
                reply.pool,
                sequence_of(reply.commit.as_ref())
            );
        }
    }
    Ok(())
}
