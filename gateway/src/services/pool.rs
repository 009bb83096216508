//! `mutua.v1.Pool`: contributions to the collective capital pool, loan repayments, netting
//! cycles with their report, and surplus declarations. The rules are the engine's
//! (`social/pool.rs`, `social/netting.rs`, `social/surplus.rs`).

use mutua_engine::{CommandKind, Event};
use tonic::{Request, Response, Status};

use crate::convert;
use crate::pb;
use crate::services::{account_of, Shared};

pub struct PoolService {
    shared: Shared,
}

impl PoolService {
    pub(crate) fn new(shared: Shared) -> PoolService {
        PoolService { shared }
    }
}

/// A rate in basis points as a decimal fraction: 8725 → "0.8725".
fn fraction_text(bp: u32) -> String {
    format!("{}.{:04}", bp / 10_000, bp % 10_000)
}

/// Most lines one netting report carries: 10,000 lines of about 100 bytes stay well inside a
/// client's default 4 MiB message limit. The totals cover the whole cycle.
pub const NETTING_REPORT_LINES_MAX: usize = 10_000;

/// The cycle's report, read from the events of the command that closed it.
pub(crate) fn netting_report(events: &[Event], scale: u32) -> pb::NettingReport {
    let cash = |minor: u64| convert::cash_text(minor, scale);
    let mut report = pb::NettingReport::default();
    for event in events {
        match event {
            Event::NettingPosition { .. } if report.lines.len() == NETTING_REPORT_LINES_MAX => {
                report.lines_total += 1;
            }
            Event::NettingPosition {
                participant,
                owed_to_minor,
                owes_minor,
                paid_minor,
                loan_minor,
                received_minor,
                carried_minor,
                ..
            } => {
                report.lines_total += 1;
                report.lines.push(pb::NettingLine {
                    participant_id: participant.0,
                    owed_to: cash(*owed_to_minor),
                    owes: cash(*owes_minor),
                    paid: cash(*paid_minor),
                    loan: cash(*loan_minor),
                    received: cash(*received_minor),
                    carried: cash(*carried_minor),
                });
            }
            Event::NettingCycleClosed {
                cycle,
                obligations,
                gross_minor,
                net_minor,
                efficiency_bp,
                paid_in_minor,
                paid_out_minor,
                loans_minor,
                carried_minor,
                pool_balance_minor,
            } => {
                report.cycle = *cycle;
                report.obligations = *obligations;
                report.gross = convert::wide_cash_text(*gross_minor, scale);
                report.net = convert::wide_cash_text(*net_minor, scale);
                report.efficiency = fraction_text(*efficiency_bp);
                report.paid_in = cash(*paid_in_minor);
                report.paid_out = cash(*paid_out_minor);
                report.loans = cash(*loans_minor);
                report.carried = cash(*carried_minor);
                report.pool_balance = cash(*pool_balance_minor);
            }
            _ => {}
        }
    }
    report
}

#[tonic::async_trait]
impl pb::pool_server::Pool for PoolService {
    async fn contribute(
        &self,
        request: Request<pb::ContributeRequest>,
    ) -> Result<Response<pb::ContributeResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let scale = self.shared.catalog.currency_scale().await?;
        let kind = CommandKind::ContributeToPool {
            amount_minor: convert::cash_minor("amount", &request.amount, scale)?,
        };
        let applied = self
            .shared
            .submit(caller, &request.request_id, kind)
            .await?;
        convert::accepted(&applied)?;
        let pool_balance = applied
            .events
            .iter()
            .find_map(|event| match event {
                Event::PoolContributed {
                    pool_balance_minor, ..
                } => Some(convert::cash_text(*pool_balance_minor, scale)),
                _ => None,
            })
            .unwrap_or_default();
        Ok(Response::new(pb::ContributeResponse {
            commit: Some(convert::commit(&applied)),
            pool_balance,
        }))
    }

    async fn repay_loan(
        &self,
        request: Request<pb::RepayLoanRequest>,
    ) -> Result<Response<pb::CommitResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let scale = self.shared.catalog.currency_scale().await?;
        let kind = CommandKind::RepayPoolLoan {
            amount_minor: convert::cash_minor("amount", &request.amount, scale)?,
        };
        let applied = self
            .shared
            .submit(caller, &request.request_id, kind)
            .await?;
        Ok(Response::new(convert::commit_response(&applied)?))
    }

    async fn close_netting_cycle(
        &self,
        request: Request<pb::CloseNettingCycleRequest>,
    ) -> Result<Response<pb::NettingReport>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let scale = self.shared.catalog.currency_scale().await?;
        let applied = self
            .shared
            .submit(caller, &request.request_id, CommandKind::CloseNettingCycle)
            .await?;
        convert::accepted(&applied)?;
        let mut report = netting_report(&applied.events, scale);
        report.commit = Some(convert::commit(&applied));
        Ok(Response::new(report))
    }

    async fn declare_surplus(
        &self,
        request: Request<pb::DeclareSurplusRequest>,
    ) -> Result<Response<pb::DeclareSurplusResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let scale = self.shared.catalog.currency_scale().await?;
        let kind = CommandKind::DeclareSurplus {
            year: request.year,
            surplus_minor: convert::cash_minor("surplus", &request.surplus, scale)?,
        };
        let applied = self
            .shared
            .submit(caller, &request.request_id, kind)
            .await?;
        convert::accepted(&applied)?;
        let mut response = pb::DeclareSurplusResponse {
            commit: Some(convert::commit(&applied)),
            ..Default::default()
        };
        for event in applied.events.iter() {
            if let Event::SurplusDeclared {
                reserve_minor,
                fund_minor,
                pool_minor,
                ..
            } = event
            {
                response.reserve = convert::cash_text(*reserve_minor, scale);
                response.fund = convert::cash_text(*fund_minor, scale);
                response.pool = convert::cash_text(*pool_minor, scale);
            }
        }
        Ok(Response::new(response))
    }

    async fn get_pool(
        &self,
        request: Request<pb::GetPoolRequest>,
    ) -> Result<Response<pb::PoolState>, Status> {
        self.shared.auth.authenticate(&request)?;
        let scale = self.shared.catalog.currency_scale().await?;
        let state = self
            .shared
            .query(move |engine| {
                let (obligations_open, gross, cycles_closed) = engine.obligations_open();
                let loans: u128 = engine.pool_loans().values().map(|v| u128::from(*v)).sum();
                pb::PoolState {
                    balance: convert::cash_text(engine.pool_balance_minor(), scale),
                    social_economy_fund: convert::cash_text(
                        engine.social_economy_fund_minor(),
                        scale,
                    ),
                    loans_outstanding: convert::wide_cash_text(loans, scale),
                    obligations_open,
                    obligations_gross: convert::wide_cash_text(gross, scale),
                    cycles_closed,
                }
            })
            .await?;
        Ok(Response::new(state))
    }

    async fn get_pool_account(
        &self,
        request: Request<pb::GetPoolAccountRequest>,
    ) -> Result<Response<pb::PoolAccount>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let participant = account_of(caller, request.into_inner().participant_id)?;
        let scale = self.shared.catalog.currency_scale().await?;
        let account = self
            .shared
            .query(move |engine| {
                let cash = |minor| convert::cash_text(minor, scale);
                let position = engine.position(participant);
                pb::PoolAccount {
                    participant_id: participant.0,
                    owed_to: cash(position.owed_to_minor),
                    owes: cash(position.owes_minor),
                    loan: cash(engine.pool_loan_minor(participant)),
                    contributed: cash(engine.pool_contribution_minor(participant)),
                    indivisible_reserve: cash(engine.indivisible_reserve_minor(participant)),
                    surplus_years: engine.surplus_years(participant),
                }
            })
            .await?;
        Ok(Response::new(account))
    }
}

#[cfg(test)]
mod tests {
    use mutua_engine::{Event, ParticipantId};

    use super::{netting_report, NETTING_REPORT_LINES_MAX};

    fn line(participant: u32) -> Event {
        Event::NettingPosition {
            cycle: 1,
            participant: ParticipantId(participant),
            owed_to_minor: 100,
            owes_minor: 0,
            paid_minor: 0,
            loan_minor: 0,
            received_minor: 100,
            carried_minor: 0,
        }
    }

    #[test]
    fn a_report_carries_at_most_its_bound_of_lines_and_counts_them_all() {
        let events: Vec<Event> = (0..NETTING_REPORT_LINES_MAX as u32 + 5).map(line).collect();
        let report = netting_report(&events, 2);
        assert_eq!(report.lines.len(), NETTING_REPORT_LINES_MAX);
        assert_eq!(report.lines_total, NETTING_REPORT_LINES_MAX as u64 + 5);
        assert_eq!(report.lines[0].received, "1.00");
        assert_eq!(
            report.lines.last().map(|line| line.participant_id),
            Some(NETTING_REPORT_LINES_MAX as u32 - 1),
            "the first lines, in id order"
        );

        let small = netting_report(&events[..3], 2);
        assert_eq!((small.lines.len(), small.lines_total), (3, 3));
    }
}
