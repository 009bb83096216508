//! `mutua members`, `mutua resolution ...` and `mutua withdrawal ...`: the membership register,
//! one-member-one-vote resolutions and withdrawable shares, from a shell.

use clap::{Subcommand, ValueEnum};

use super::{
    authorized, instrument_ref, parse_rfc3339, rfc3339, sequence_of, status_error, Clients,
    Mutation,
};
use crate::pb;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ChoiceArg {
    For,
    Against,
    Abstain,
}

#[derive(Subcommand, Debug)]
pub enum ResolutionCommand {
    /// Organization: put a resolution to the members.
    Propose {
        /// What the members decide.
        #[arg(long)]
        title: String,
        /// When voting closes: RFC 3339 in UTC (`2031-12-01T12:00:00Z`), or from now (`+90s`,
        /// `+15m`, `+2h`, `+7d`).
        #[arg(long, value_parser = parse_closing_time)]
        closes: u64,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Member: vote once.
    Vote {
        resolution: u32,
        #[arg(value_enum)]
        choice: ChoiceArg,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// The proposing organization, at or after the closing time: count the votes.
    Close {
        resolution: u32,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// One resolution, with its count once closed.
    Show { resolution: u32 },
    /// Resolutions, of one organization or all.
    List {
        #[arg(long)]
        organization: Option<u32>,
    },
}

#[derive(Subcommand, Debug)]
pub enum WithdrawalCommand {
    /// Holder: give notice to withdraw units of a withdrawable share.
    Request {
        /// Symbol, or `#<id>` for an instrument id.
        instrument: String,
        #[arg(long)]
        quantity: String,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Holder: cancel a notice.
    Cancel {
        withdrawal: u64,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Holder or issuer, once the notice has run: the issuer pays par and the units are retired.
    Complete {
        withdrawal: u64,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Pending notices the caller may see.
    List {
        /// Only this share (symbol, or `#<id>`).
        #[arg(long)]
        instrument: Option<String>,
    },
    /// Issuer: suspend withdrawals of a share, to protect the capital base.
    Suspend {
        instrument: String,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Issuer: resume withdrawals of a share.
    Resume {
        instrument: String,
        #[command(flatten)]
        mutation: Mutation,
    },
}

/// An RFC 3339 time, or `+<n><s|m|h|d>` from now on this machine's clock.
pub fn parse_closing_time(text: &str) -> Result<u64, String> {
    let Some(relative) = text.strip_prefix('+') else {
        return parse_rfc3339(text);
    };
    let wrong =
        || format!("{text:?} is neither an RFC 3339 time nor +<number><s|m|h|d> such as +7d");
    let (number, unit) = relative.split_at(relative.len().checked_sub(1).ok_or_else(wrong)?);
    let seconds_per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(wrong()),
    };
    let seconds: u64 = number.parse().map_err(|_| wrong())?;
    let ahead = seconds
        .checked_mul(seconds_per)
        .and_then(|s| s.checked_mul(1_000_000_000))
        .ok_or_else(wrong)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| wrong())?;
    u64::try_from(now.as_nanos())
        .ok()
        .and_then(|now| now.checked_add(ahead))
        .ok_or_else(wrong)
}

fn choice_name(value: i32) -> &'static str {
    match pb::VoteChoice::try_from(value) {
        Ok(pb::VoteChoice::For) => "for",
        Ok(pb::VoteChoice::Against) => "against",
        Ok(pb::VoteChoice::Abstain) => "abstain",
        _ => "none",
    }
}

fn print_resolution(resolution: &pb::Resolution) {
    let state = match &resolution.tally {
        Some(tally) => format!(
            "closed {}: {} for, {} against, {} abstaining, {} lapsed: {}",
            rfc3339(tally.closed_at_ns),
            tally.votes_for,
            tally.votes_against,
            tally.abstentions,
            tally.votes_lapsed,
            if tally.passed { "PASSED" } else { "NOT PASSED" }
        ),
        None => format!(
            "open until {}, {} votes cast",
            rfc3339(resolution.closes_at_ns),
            resolution.votes_cast
        ),
    };
    println!(
        "resolution {} of organization {}: {:?}",
        resolution.resolution_id, resolution.organization_id, resolution.title
    );
    println!("  {state}; your vote: {}", choice_name(resolution.own_vote));
}

pub(super) async fn members(
    clients: &mut Clients,
    token: Option<&str>,
    organization: Option<u32>,
) -> anyhow::Result<()> {
    let mut after = None;
    loop {
        let message = pb::ListMembersRequest {
            organization_id: organization,
            after_participant_id: after,
            page_size: 0,
        };
        let reply = clients
            .membership
            .list_members(authorized(message, token)?)
            .await
            .map_err(status_error)?
            .into_inner();
        if after.is_none() {
            println!("{} members, one vote each", reply.members_total);
        }
        for member in &reply.members {
            println!(
                "  participant {:>8}  member since {}",
                member.participant_id,
                rfc3339(member.member_since_ns)
            );
        }
        match reply.next_after_participant_id {
            Some(next) => after = Some(next),
            None => return Ok(()),
        }
    }
}

pub(super) async fn resolution(
    clients: &mut Clients,
    token: Option<&str>,
    command: ResolutionCommand,
) -> anyhow::Result<()> {
    match command {
        ResolutionCommand::Propose {
            title,
            closes,
            mutation,
        } => {
            let message = pb::ProposeResolutionRequest {
                request_id: mutation.id(),
                title,
                closes_at_ns: closes,
            };
            let reply = clients
                .membership
                .propose_resolution(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "resolution {} put to the members, voting until {} ({})",
                reply.resolution_id,
                rfc3339(closes),
                sequence_of(reply.commit.as_ref())
            );
        }
        ResolutionCommand::Vote {
            resolution,
            choice,
            mutation,
        } => {
            let choice = match choice {
                ChoiceArg::For => pb::VoteChoice::For,
                ChoiceArg::Against => pb::VoteChoice::Against,
                ChoiceArg::Abstain => pb::VoteChoice::Abstain,
            };
            let message = pb::CastVoteRequest {
                request_id: mutation.id(),
                resolution_id: resolution,
                choice: choice as i32,
            };
            let reply = clients
                .membership
                .cast_vote(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "voted {} on resolution {resolution} ({})",
                choice_name(choice as i32),
                sequence_of(reply.commit.as_ref())
            );
        }
        ResolutionCommand::Close {
            resolution,
            mutation,
        } => {
            let message = pb::CloseResolutionRequest {
                request_id: mutation.id(),
                resolution_id: resolution,
            };
            let reply = clients
                .membership
                .close_resolution(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            if let Some(tally) = reply.tally {
                println!(
                    "resolution {resolution} {}: {} for, {} against, {} abstaining, {} lapsed ({})",
                    if tally.passed { "PASSED" } else { "NOT PASSED" },
                    tally.votes_for,
                    tally.votes_against,
                    tally.abstentions,
                    tally.votes_lapsed,
                    sequence_of(reply.commit.as_ref())
                );
            }
        }
        ResolutionCommand::Show { resolution } => {
            let message = pb::GetResolutionRequest {
                resolution_id: resolution,
            };
            let reply = clients
                .membership
                .get_resolution(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            print_resolution(&reply);
        }
        ResolutionCommand::List { organization } => {
            let mut after = None;
            loop {
                let message = pb::ListResolutionsRequest {
                    organization_id: organization,
                    after_resolution_id: after,
                    page_size: 0,
                };
                let reply = clients
                    .membership
                    .list_resolutions(authorized(message, token)?)
                    .await
                    .map_err(status_error)?
                    .into_inner();
                reply.resolutions.iter().for_each(print_resolution);
                match reply.next_after_resolution_id {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
    }
    Ok(())
}

pub(super) async fn withdrawal(
    clients: &mut Clients,
    token: Option<&str>,
    command: WithdrawalCommand,
) -> anyhow::Result<()> {
    match command {
        WithdrawalCommand::Request {
            instrument,
            quantity,
            mutation,
        } => {
            let message = pb::RequestWithdrawalRequest {
                request_id: mutation.id(),
                instrument: Some(instrument_ref(&instrument)),
                quantity,
            };
            let reply = clients
                .withdrawals
                .request_withdrawal(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "withdrawal {} under notice, payable from {} ({})",
                reply.withdrawal_id,
                rfc3339(reply.payable_from_ns),
                sequence_of(reply.commit.as_ref())
            );
        }
        WithdrawalCommand::Cancel {
            withdrawal,
            mutation,
        } => {
            let message = pb::CancelWithdrawalRequest {
                request_id: mutation.id(),
                withdrawal_id: withdrawal,
            };
            let reply = clients
                .withdrawals
                .cancel_withdrawal(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "withdrawal {withdrawal} cancelled; its units are free ({})",
                sequence_of(reply.commit.as_ref())
            );
        }
        WithdrawalCommand::Complete {
            withdrawal,
            mutation,
        } => {
            let message = pb::CompleteWithdrawalRequest {
                request_id: mutation.id(),
                withdrawal_id: withdrawal,
            };
            let reply = clients
                .withdrawals
                .complete_withdrawal(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "withdrawal {withdrawal} paid: {} units bought back for {} ({})",
                reply.quantity,
                reply.amount,
                sequence_of(reply.commit.as_ref())
            );
        }
        WithdrawalCommand::List { instrument } => {
            let mut after = None;
            loop {
                let message = pb::ListWithdrawalsRequest {
                    instrument: instrument.as_deref().map(instrument_ref),
                    after_withdrawal_id: after,
                    page_size: 0,
                };
                let reply = clients
                    .withdrawals
                    .list_withdrawals(authorized(message, token)?)
                    .await
                    .map_err(status_error)?
                    .into_inner();
                for pending in &reply.withdrawals {
                    println!(
                        "withdrawal {:>6}  {:<16} {:>10} units  holder {:>6}  given {}  payable from {}",
                        pending.withdrawal_id,
                        pending.symbol,
                        pending.quantity,
                        pending.holder_id,
                        rfc3339(pending.requested_at_ns),
                        rfc3339(pending.payable_from_ns)
                    );
                }
                match reply.next_after_withdrawal_id {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        WithdrawalCommand::Suspend {
            instrument,
            mutation,
        } => suspend(clients, token, &instrument, true, mutation).await?,
        WithdrawalCommand::Resume {
            instrument,
            mutation,
        } => suspend(clients, token, &instrument, false, mutation).await?,
    }
    Ok(())
}

async fn suspend(
    clients: &mut Clients,
    token: Option<&str>,
    instrument: &str,
    suspended: bool,
    mutation: Mutation,
) -> anyhow::Result<()> {
    let message = pb::SetWithdrawalsSuspendedRequest {
        request_id: mutation.id(),
        instrument: Some(instrument_ref(instrument)),
        suspended,
    };
    let reply = clients
        .withdrawals
        .set_withdrawals_suspended(authorized(message, token)?)
        .await
        .map_err(status_error)?
        .into_inner();
    let what = if suspended { "suspended" } else { "resumed" };
    println!(
        "withdrawals of {instrument} {what} ({})",
        sequence_of(reply.commit.as_ref())
    );
    Ok(())
}
