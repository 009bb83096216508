//! `mutua.v1.Accounts`: cash on the bank rails (operator only, enforced by the engine) and
//! statements of cash, holdings and tax credits (own accounts, or any for regulator/operator).

use mutua_engine::{CashAccount, InstrumentId, RejectReason};
use tonic::{Request, Response, Status};

use crate::convert::{self, InstrumentUnits};
use crate::pb;
use crate::services::{account_of, Shared};

pub struct AccountsService {
    shared: Shared,
}

impl AccountsService {
    pub(crate) fn new(shared: Shared) -> AccountsService {
        AccountsService { shared }
    }
}

#[tonic::async_trait]
impl pb::accounts_server::Accounts for AccountsService {
    async fn deposit(
        &self,
        request: Request<pb::DepositRequest>,
    ) -> Result<Response<pb::CashMovementResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let scale = self.shared.catalog.currency_scale().await?;
        let applied = self
            .shared
            .submit(
                caller,
                &request.request_id,
                convert::deposit(&request, scale)?,
            )
            .await?;
        Ok(Response::new(convert::cash_movement_response(
            &applied, scale,
        )?))
    }

    async fn withdraw(
        &self,
        request: Request<pb::WithdrawRequest>,
    ) -> Result<Response<pb::CashMovementResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let scale = self.shared.catalog.currency_scale().await?;
        let applied = self
            .shared
            .submit(
                caller,
                &request.request_id,
                convert::withdraw(&request, scale)?,
            )
            .await?;
        Ok(Response::new(convert::cash_movement_response(
            &applied, scale,
        )?))
    }

    async fn get_balances(
        &self,
        request: Request<pb::GetBalancesRequest>,
    ) -> Result<Response<pb::Balances>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let account = account_of(caller, request.into_inner().participant_id)?;
        let (cash, scale): (Option<CashAccount>, u32) = self
            .shared
            .query(move |engine| {
                (
                    engine
                        .participant(account)
                        .map(|participant| participant.cash),
                    engine.config().currency_scale,
                )
            })
            .await?;
        let cash = cash.ok_or_else(|| {
            convert::field_rejection("participant_id", RejectReason::UnknownAccount)
        })?;
        Ok(Response::new(pb::Balances {
            participant_id: account.0,
            balance: convert::cash_text(cash.balance_minor, scale),
            reserved: convert::cash_text(cash.reserved_minor, scale),
            free: convert::cash_text(cash.free_minor(), scale),
        }))
    }

    async fn get_holdings(
        &self,
        request: Request<pb::GetHoldingsRequest>,
    ) -> Result<Response<pb::Holdings>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let holder = account_of(caller, request.into_inner().participant_id)?;
        let (known, now, positions) = self
            .shared
            .query(move |engine| {
                (
                    engine.participant(holder).is_some(),
                    engine.now(),
                    engine.holdings_of(holder),
                )
            })
            .await?;
        if !known {
            return Err(convert::field_rejection(
                "participant_id",
                RejectReason::UnknownAccount,
            ));
        }
        let mut holdings = Vec::with_capacity(positions.len());
        for (instrument, holding) in &positions {
            let units = self.units(*instrument).await?;
            holdings.push(convert::holding_to_pb(holding, &units, now));
        }
        Ok(Response::new(pb::Holdings {
            participant_id: holder.0,
            holdings,
        }))
    }

    async fn get_tax_credits(
        &self,
        request: Request<pb::GetTaxCreditsRequest>,
    ) -> Result<Response<pb::TaxCredits>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let contributor = account_of(caller, request.participant_id)?;
        let (known, scale, earned) = self
            .shared
            .query(move |engine| {
                (
                    engine.participant(contributor).is_some(),
                    engine.config().currency_scale,
                    engine.tax_credits_of(contributor),
                )
            })
            .await?;
        if !known {
            return Err(convert::field_rejection(
                "participant_id",
                RejectReason::UnknownAccount,
            ));
        }
        let mut credits = Vec::with_capacity(earned.len());
        // u128: a sum of u64 amounts cannot overflow it.
        let mut total_minor: u128 = 0;
        for credit in earned.iter().filter(|credit| {
            request
                .year
                .is_none_or(|year| convert::year_of(credit.time) == year)
        }) {
            let units = self.units(credit.instrument).await?;
            total_minor += u128::from(credit.credit_minor);
            credits.push(convert::tax_credit_to_pb(credit, &units));
        }
        let total_credit =
            convert::cash_text(u64::try_from(total_minor).unwrap_or(u64::MAX), scale);
        Ok(Response::new(pb::TaxCredits {
            participant_id: contributor.0,
            credits,
            total_credit,
        }))
    }
}

impl AccountsService {
    async fn units(
        &self,
        instrument: InstrumentId,
    ) -> Result<std::sync::Arc<InstrumentUnits>, Status> {
        self.shared
            .catalog
            .units(instrument)
            .await?
            .ok_or_else(|| Status::internal("an account names an unlisted instrument"))
    }
}
