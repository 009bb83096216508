//! `mutua.v1.Registry`: participants and their tokens, instruments, offerings, distributions and
//! maturity. Roles are enforced by the engine (a rejection says which rule), so these handlers
//! only authenticate, convert and report.

use std::sync::Arc;

use mutua_engine::{Ack, CommandKind, OfferingId, RejectReason};
use tonic::{Request, Response, Status};

use crate::convert::{self, InstrumentUnits};
use crate::pb;
use crate::services::Shared;

pub struct RegistryService {
    shared: Shared,
}

impl RegistryService {
    pub(crate) fn new(shared: Shared) -> RegistryService {
        RegistryService { shared }
    }

    /// The units of the instrument an offering is in.
    async fn units_of_offering(
        &self,
        offering: OfferingId,
    ) -> Result<Arc<InstrumentUnits>, Status> {
        let instrument = self
            .shared
            .query(move |engine| engine.offering(offering).map(|found| found.instrument))
            .await?
            .ok_or_else(|| {
                convert::field_rejection("offering_id", RejectReason::UnknownOffering)
            })?;
        self.shared
            .catalog
            .units(instrument)
            .await?
            .ok_or_else(|| Status::internal("an offering names an unlisted instrument"))
    }
}

#[tonic::async_trait]
impl pb::registry_server::Registry for RegistryService {
    async fn register_participant(
        &self,
        request: Request<pb::RegisterParticipantRequest>,
    ) -> Result<Response<pb::RegisterParticipantResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let kind = CommandKind::try_from(&request)?;
        let applied = self
            .shared
            .submit(caller, &request.request_id, kind)
            .await?;
        let Ack::Participant(participant) = convert::accepted(&applied)? else {
            return Err(convert::mismatched_outcome(&applied, "a registration"));
        };
        // Tokens are random and stored only as hashes, so a token cannot be shown twice: a
        // retried registration (whose first answer was lost) gets a fresh token that replaces
        // every earlier one of the participant.
        let (token, _, _) = self
            .shared
            .issue_token(caller, participant, applied.outcome.is_replay())
            .await?;
        Ok(Response::new(pb::RegisterParticipantResponse {
            commit: Some(convert::commit(&applied)),
            participant_id: participant.0,
            token,
        }))
    }

    async fn set_accreditation(
        &self,
        request: Request<pb::SetAccreditationRequest>,
    ) -> Result<Response<pb::CommitResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let applied = self
            .shared
            .submit(
                caller,
                &request.request_id,
                CommandKind::try_from(&request)?,
            )
            .await?;
        Ok(Response::new(convert::commit_response(&applied)?))
    }

    async fn set_accredited_categories(
        &self,
        request: Request<pb::SetAccreditedCategoriesRequest>,
    ) -> Result<Response<pb::CommitResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let kind = CommandKind::SetAccreditedCategories {
            organization: mutua_engine::ParticipantId(request.organization_id),
            categories: convert::bounded_names("categories", request.categories)?,
        };
        let applied = self
            .shared
            .submit(caller, &request.request_id, kind)
            .await?;
        Ok(Response::new(convert::commit_response(&applied)?))
    }

    async fn list_instrument(
        &self,
        request: Request<pb::ListInstrumentRequest>,
    ) -> Result<Response<pb::ListInstrumentResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let scale = self.shared.catalog.currency_scale().await?;
        let kind = convert::list_instrument(&request, scale)?;
        let applied = self
            .shared
            .submit(caller, &request.request_id, kind)
            .await?;
        let Ack::Instrument(instrument) = convert::accepted(&applied)? else {
            return Err(convert::mismatched_outcome(&applied, "a listing"));
        };
        Ok(Response::new(pb::ListInstrumentResponse {
            commit: Some(convert::commit(&applied)),
            instrument_id: instrument.0,
        }))
    }

    async fn set_trading_status(
        &self,
        request: Request<pb::SetTradingStatusRequest>,
    ) -> Result<Response<pb::CommitResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let units = self
            .shared
            .catalog
            .resolve(request.instrument.as_ref(), "instrument")
            .await?;
        let kind = CommandKind::SetTradingStatus {
            instrument: units.id,
            open: request.open,
        };
        let applied = self
            .shared
            .submit(caller, &request.request_id, kind)
            .await?;
        Ok(Response::new(convert::commit_response(&applied)?))
    }

    async fn get_instrument(
        &self,
        request: Request<pb::GetInstrumentRequest>,
    ) -> Result<Response<pb::Instrument>, Status> {
        self.shared.limits.anonymous_call(request.remote_addr())?;
        // Listing data is open data: no token is read.
        let units = self
            .shared
            .catalog
            .resolve(request.get_ref().instrument.as_ref(), "instrument")
            .await?;
        let id = units.id;
        let instrument = self
            .shared
            .query(move |engine| {
                engine.instrument(id).map(|instrument| {
                    convert::instrument_to_pb(
                        instrument,
                        engine.config().currency_scale,
                        engine.now(),
                    )
                })
            })
            .await?
            .ok_or_else(|| {
                convert::field_rejection("instrument", RejectReason::UnknownInstrument)
            })?;
        Ok(Response::new(instrument))
    }

    async fn list_instruments(
        &self,
        request: Request<pb::ListInstrumentsRequest>,
    ) -> Result<Response<pb::ListInstrumentsResponse>, Status> {
        self.shared.limits.anonymous_call(request.remote_addr())?;
        // Listing data is open data: no token is read.
        let instruments = self
            .shared
            .query(|engine| {
                let (scale, now) = (engine.config().currency_scale, engine.now());
                engine
                    .instruments()
                    .map(|instrument| convert::instrument_to_pb(instrument, scale, now))
                    .collect()
            })
            .await?;
        Ok(Response::new(pb::ListInstrumentsResponse { instruments }))
    }

    async fn open_offering(
        &self,
        request: Request<pb::OpenOfferingRequest>,
    ) -> Result<Response<pb::OpenOfferingResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let units = self
            .shared
            .catalog
            .resolve(request.instrument.as_ref(), "instrument")
            .await?;
        let applied = self
            .shared
            .submit(
                caller,
                &request.request_id,
                convert::open_offering(&request, &units)?,
            )
            .await?;
        let Ack::Offering(offering) = convert::accepted(&applied)? else {
            return Err(convert::mismatched_outcome(&applied, "an offering"));
        };
        // The price the engine set, from the record of the first application (so a retry has it too).
        let price = applied
            .events
            .iter()
            .find_map(|event| match event {
                mutua_engine::Event::OfferingOpened {
                    offering: opened,
                    price_ticks,
                    ..
                } if *opened == offering => Some(units.price_text(*price_ticks)),
                _ => None,
            })
            .unwrap_or_default();
        Ok(Response::new(pb::OpenOfferingResponse {
            commit: Some(convert::commit(&applied)),
            offering_id: offering.0,
            price,
        }))
    }

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<pb::SubscribeResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let units = self
            .units_of_offering(OfferingId(request.offering_id))
            .await?;
        let applied = self
            .shared
            .submit(
                caller,
                &request.request_id,
                convert::subscribe(&request, &units)?,
            )
            .await?;
        Ok(Response::new(convert::subscribe_response(
            &applied, &units,
        )?))
    }

    async fn close_offering(
        &self,
        request: Request<pb::CloseOfferingRequest>,
    ) -> Result<Response<pb::CloseOfferingResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let units = self
            .units_of_offering(OfferingId(request.offering_id))
            .await?;
        let applied = self
            .shared
            .submit(
                caller,
                &request.request_id,
                CommandKind::try_from(&request)?,
            )
            .await?;
        Ok(Response::new(convert::close_offering_response(
            &applied, &units,
        )?))
    }

    async fn pay_distribution(
        &self,
        request: Request<pb::PayDistributionRequest>,
    ) -> Result<Response<pb::PayDistributionResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let units = self
            .shared
            .catalog
            .resolve(request.instrument.as_ref(), "instrument")
            .await?;
        let applied = self
            .shared
            .submit(
                caller,
                &request.request_id,
                convert::pay_distribution(&request, &units)?,
            )
            .await?;
        Ok(Response::new(convert::pay_distribution_response(
            &applied, &units,
        )?))
    }

    async fn repay_at_maturity(
        &self,
        request: Request<pb::RepayAtMaturityRequest>,
    ) -> Result<Response<pb::RepayAtMaturityResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let units = self
            .shared
            .catalog
            .resolve(request.instrument.as_ref(), "instrument")
            .await?;
        let kind = CommandKind::RepayAtMaturity {
            instrument: units.id,
        };
        let applied = self
            .shared
            .submit(caller, &request.request_id, kind)
            .await?;
        Ok(Response::new(convert::repay_at_maturity_response(
            &applied, &units,
        )?))
    }
}
