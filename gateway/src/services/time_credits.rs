//! `mutua.v1.TimeCredits`: volunteer time recorded as credits, moved, spent, donated to the
//! shared pool and granted from it. The rules are the engine's (`social/time_credits.rs`).

use mutua_engine::{CommandKind, Event, ParticipantId};
use tonic::{Request, Response, Status};

use crate::convert;
use crate::pb;
use crate::services::{account_of, Shared};

pub struct TimeCreditsService {
    shared: Shared,
}

impl TimeCreditsService {
    pub(crate) fn new(shared: Shared) -> TimeCreditsService {
        TimeCreditsService { shared }
    }

    async fn apply(
        &self,
        caller: crate::auth::Caller,
        request_id: &str,
        kind: CommandKind,
    ) -> Result<Response<pb::TimeCreditsResponse>, Status> {
        let applied = self.shared.submit(caller, request_id, kind).await?;
        convert::accepted(&applied)?;
        let to_balance_minutes = applied
            .events
            .iter()
            .find_map(|event| match event {
                Event::TimeCredits {
                    to_balance_minutes, ..
                } => Some(*to_balance_minutes),
                _ => None,
            })
            .unwrap_or_default();
        Ok(Response::new(pb::TimeCreditsResponse {
            commit: Some(convert::commit(&applied)),
            to_balance_minutes,
        }))
    }
}

#[tonic::async_trait]
impl pb::time_credits_server::TimeCredits for TimeCreditsService {
    async fn record_volunteer_time(
        &self,
        request: Request<pb::RecordVolunteerTimeRequest>,
    ) -> Result<Response<pb::TimeCreditsResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let kind = CommandKind::RecordVolunteerTime {
            volunteer: ParticipantId(request.volunteer_id),
            minutes: request.minutes,
        };
        self.apply(caller, &request.request_id, kind).await
    }

    async fn transfer_time_credits(
        &self,
        request: Request<pb::TransferTimeCreditsRequest>,
    ) -> Result<Response<pb::TimeCreditsResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let kind = CommandKind::TransferTimeCredits {
            to: ParticipantId(request.to_id),
            minutes: request.minutes,
        };
        self.apply(caller, &request.request_id, kind).await
    }

    async fn spend_time_credits(
        &self,
        request: Request<pb::SpendTimeCreditsRequest>,
    ) -> Result<Response<pb::TimeCreditsResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let kind = CommandKind::SpendTimeCredits {
            organization: ParticipantId(request.organization_id),
            minutes: request.minutes,
        };
        self.apply(caller, &request.request_id, kind).await
    }

    async fn donate_time_credits(
        &self,
        request: Request<pb::DonateTimeCreditsRequest>,
    ) -> Result<Response<pb::TimeCreditsResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let kind = CommandKind::DonateTimeCredits {
            minutes: request.minutes,
        };
        self.apply(caller, &request.request_id, kind).await
    }

    async fn grant_time_credits(
        &self,
        request: Request<pb::GrantTimeCreditsRequest>,
    ) -> Result<Response<pb::TimeCreditsResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let kind = CommandKind::GrantTimeCredits {
            dependent: ParticipantId(request.dependent_id),
            minutes: request.minutes,
        };
        self.apply(caller, &request.request_id, kind).await
    }

    async fn get_time_credits(
        &self,
        request: Request<pb::GetTimeCreditsRequest>,
    ) -> Result<Response<pb::TimeCreditsBalance>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let participant = account_of(caller, request.into_inner().participant_id)?;
        let (minutes, pool_minutes) = self
            .shared
            .query(move |engine| {
                (
                    engine.time_credits_of(participant),
                    engine.time_credit_totals().0,
                )
            })
            .await?;
        Ok(Response::new(pb::TimeCreditsBalance {
            participant_id: participant.0,
            minutes,
            pool_minutes,
        }))
    }
}
