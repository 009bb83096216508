//! `mutua.v1.Withdrawals`: notice to withdraw units of a withdrawable share, its payout at par,
//! and the issuer's suspension of withdrawals. The rules are the engine's (`withdrawals.rs`);
//! these handlers authenticate, convert, report, and keep each participant's reads to what it may
//! see.

use std::sync::Arc;

use mutua_engine::{Ack, CommandKind, Event, Role, WithdrawalId};
use tonic::{Request, Response, Status};

use crate::convert::{self, InstrumentUnits};
use crate::pb;
use crate::services::{page_size, reads_everything, Shared};

pub struct WithdrawalsService {
    shared: Shared,
}

impl WithdrawalsService {
    pub(crate) fn new(shared: Shared) -> WithdrawalsService {
        WithdrawalsService { shared }
    }

    /// The units of the share a pending withdrawal is of.
    async fn units_of_withdrawal(
        &self,
        withdrawal: WithdrawalId,
    ) -> Result<Option<Arc<InstrumentUnits>>, Status> {
        let instrument = self
            .shared
            .query(move |engine| {
                engine
                    .withdrawal(withdrawal)
                    .map(|pending| pending.instrument)
            })
            .await?;
        match instrument {
            Some(instrument) => self.shared.catalog.units(instrument).await,
            None => Ok(None),
        }
    }
}

#[tonic::async_trait]
impl pb::withdrawals_server::Withdrawals for WithdrawalsService {
    async fn request_withdrawal(
        &self,
        request: Request<pb::RequestWithdrawalRequest>,
    ) -> Result<Response<pb::RequestWithdrawalResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let units = self
            .shared
            .catalog
            .resolve(request.instrument.as_ref(), "instrument")
            .await?;
        let kind = CommandKind::RequestWithdrawal {
            instrument: units.id,
            lots: units.lots("quantity", &request.quantity)?,
        };
        let applied = self
            .shared
            .submit(caller, &request.request_id, kind)
            .await?;
        let Ack::Withdrawal(withdrawal) = convert::accepted(&applied)? else {
            return Err(convert::mismatched_outcome(&applied, "a withdrawal"));
        };
        let payable_from_ns = applied
            .events
            .iter()
            .find_map(|event| match event {
                Event::WithdrawalRequested { payable_from, .. } => Some(*payable_from),
                _ => None,
            })
            .unwrap_or_default();
        Ok(Response::new(pb::RequestWithdrawalResponse {
            commit: Some(convert::commit(&applied)),
            withdrawal_id: withdrawal.0,
            payable_from_ns,
        }))
    }

    async fn cancel_withdrawal(
        &self,
        request: Request<pb::CancelWithdrawalRequest>,
    ) -> Result<Response<pb::CommitResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let kind = CommandKind::CancelWithdrawal {
            withdrawal: WithdrawalId(request.withdrawal_id),
        };
        let applied = self
            .shared
            .submit(caller, &request.request_id, kind)
            .await?;
        Ok(Response::new(convert::commit_response(&applied)?))
    }

    async fn complete_withdrawal(
        &self,
        request: Request<pb::CompleteWithdrawalRequest>,
    ) -> Result<Response<pb::CompleteWithdrawalResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let withdrawal = WithdrawalId(request.withdrawal_id);
        // Read before the command: once paid, the withdrawal is no longer pending. A retry whose
        // withdrawal is gone is answered from the journal all the same; only the text needs units.
        let units = self.units_of_withdrawal(withdrawal).await?;
        let applied = self
            .shared
            .submit(
                caller,
                &request.request_id,
                CommandKind::CompleteWithdrawal { withdrawal },
            )
            .await?;
        convert::accepted(&applied)?;
        let mut response = pb::CompleteWithdrawalResponse {
            commit: Some(convert::commit(&applied)),
            ..Default::default()
        };
        for event in &applied.events {
            if let Event::WithdrawalPaid {
                instrument,
                lots,
                amount_minor,
                ..
            } = event
            {
                let units = match &units {
                    Some(units) => units.clone(),
                    None => self
                        .shared
                        .catalog
                        .units(*instrument)
                        .await?
                        .ok_or_else(|| Status::internal("a withdrawal names an unlisted share"))?,
                };
                response.amount = units.cash_text(*amount_minor);
                response.quantity = units.quantity_text(*lots);
            }
        }
        Ok(Response::new(response))
    }

    async fn set_withdrawals_suspended(
        &self,
        request: Request<pb::SetWithdrawalsSuspendedRequest>,
    ) -> Result<Response<pb::CommitResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let units = self
            .shared
            .catalog
            .resolve(request.instrument.as_ref(), "instrument")
            .await?;
        let kind = CommandKind::SetWithdrawalsSuspended {
            instrument: units.id,
            suspended: request.suspended,
        };
        let applied = self
            .shared
            .submit(caller, &request.request_id, kind)
            .await?;
        Ok(Response::new(convert::commit_response(&applied)?))
    }

    async fn list_withdrawals(
        &self,
        request: Request<pb::ListWithdrawalsRequest>,
    ) -> Result<Response<pb::ListWithdrawalsResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let size = page_size("page_size", request.page_size)?;
        let instrument = match request.instrument.as_ref() {
            Some(reference) => Some(
                self.shared
                    .catalog
                    .resolve(Some(reference), "instrument")
                    .await?
                    .id,
            ),
            None => None,
        };
        let after = request.after_withdrawal_id;
        let (withdrawals, more) = self
            .shared
            .query(move |engine| {
                let scale = engine.config().currency_scale;
                // A holder sees its own notices; an issuer those on its shares; regulator and operator all.
                let visible = |pending: &&mutua_engine::Withdrawal| {
                    let issuer = engine
                        .instrument(pending.instrument)
                        .map(|share| share.spec.issuer);
                    reads_everything(caller)
                        || pending.holder == caller.participant
                        || (caller.role == Role::Organization && issuer == Some(caller.participant))
                };
                let mut matching = engine
                    .withdrawals_pending()
                    .filter(|pending| after.is_none_or(|after| pending.id.0 > after))
                    .filter(|pending| {
                        instrument.is_none_or(|instrument| pending.instrument == instrument)
                    })
                    .filter(visible);
                let page: Vec<pb::Withdrawal> = matching
                    .by_ref()
                    .take(size)
                    .filter_map(|pending| {
                        // A pending withdrawal's share is always listed (an engine invariant);
                        // a reader never panics the read replica over it.
                        let share = engine.instrument(pending.instrument)?;
                        let units = InstrumentUnits::of(share, scale);
                        Some(pb::Withdrawal {
                            withdrawal_id: pending.id.0,
                            instrument_id: pending.instrument.0,
                            symbol: units.symbol.clone(),
                            holder_id: pending.holder.0,
                            quantity: units.quantity_text(pending.lots),
                            requested_at_ns: pending.requested_at,
                            payable_from_ns: pending.payable_from,
                        })
                    })
                    .collect();
                (page, matching.next().is_some())
            })
            .await?;
        let next_after_withdrawal_id = if more {
            withdrawals
                .last()
                .map(|withdrawal| withdrawal.withdrawal_id)
        } else {
            None
        };
        Ok(Response::new(pb::ListWithdrawalsResponse {
            withdrawals,
            next_after_withdrawal_id,
        }))
    }
}
