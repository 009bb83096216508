//! `mutua.v1.Membership`: the register of members and one-member-one-vote resolutions. The rules
//! (who is a member, who may vote, when a vote lapses) are the engine's (`membership.rs`); these
//! handlers authenticate, convert, report, and keep each participant's reads to what it may see.

use mutua_engine::{
    Ack, CommandKind, Engine, Event, ParticipantId, Resolution, ResolutionId, Role, VoteChoice,
};
use tonic::{Request, Response, Status};

use crate::auth::Caller;
use crate::convert::{self, edge_status, EdgeReason};
use crate::pb;
use crate::services::{page_size, reads_everything, Shared};

pub struct MembershipService {
    shared: Shared,
}

impl MembershipService {
    pub(crate) fn new(shared: Shared) -> MembershipService {
        MembershipService { shared }
    }
}

fn choice(value: i32) -> Result<VoteChoice, Status> {
    match pb::VoteChoice::try_from(value) {
        Ok(pb::VoteChoice::For) => Ok(VoteChoice::For),
        Ok(pb::VoteChoice::Against) => Ok(VoteChoice::Against),
        Ok(pb::VoteChoice::Abstain) => Ok(VoteChoice::Abstain),
        _ => Err(convert::invalid_field(format!(
            "choice: {value} is not FOR, AGAINST or ABSTAIN"
        ))),
    }
}

fn choice_to_pb(choice: VoteChoice) -> pb::VoteChoice {
    match choice {
        VoteChoice::For => pb::VoteChoice::For,
        VoteChoice::Against => pb::VoteChoice::Against,
        VoteChoice::Abstain => pb::VoteChoice::Abstain,
    }
}

fn tally_to_pb(result: &mutua_engine::ResolutionResult) -> pb::Tally {
    pb::Tally {
        votes_for: result.votes_for,
        votes_against: result.votes_against,
        abstentions: result.abstentions,
        votes_lapsed: result.votes_lapsed,
        passed: result.passed,
        closed_at_ns: result.closed_at,
    }
}

/// A resolution as `reader` may see it: its count once closed, its own vote, never anyone else's.
fn resolution_to_pb(resolution: &Resolution, reader: ParticipantId) -> pb::Resolution {
    pb::Resolution {
        resolution_id: resolution.id.0,
        organization_id: resolution.organization.0,
        title: resolution.title.clone(),
        proposed_at_ns: resolution.proposed_at,
        closes_at_ns: resolution.closes_at,
        open: resolution.is_open(),
        votes_cast: resolution.votes.len() as u32,
        tally: resolution.result.as_ref().map(tally_to_pb),
        own_vote: resolution
            .votes
            .get(&reader)
            .map_or(pb::VoteChoice::Unspecified, |vote| {
                choice_to_pb(vote.choice)
            }) as i32,
    }
}

/// Whose register `caller` asks for: an organization its own; a regulator or the operator any.
fn register_of(caller: Caller, requested: Option<u32>) -> Result<ParticipantId, Status> {
    match (requested.map(ParticipantId), caller.role) {
        (None, Role::Organization) => Ok(caller.participant),
        (Some(organization), _) if organization == caller.participant || reads_everything(caller) => Ok(organization),
        (None, _) if reads_everything(caller) => {
            Err(convert::invalid_field("organization_id: required (only an organization reads its own register without naming it)"))
        }
        _ => Err(edge_status(EdgeReason::NotPermitted, "organization_id: an organization reads its own register; a regulator or the operator any")),
    }
}

fn page(
    engine: &Engine,
    organization: ParticipantId,
    after: Option<u32>,
    size: usize,
) -> pb::ListMembersResponse {
    let members = engine.members_of(organization);
    let total = members.len() as u32;
    let start = after.map_or(0, |after| {
        members.partition_point(|(member, _)| member.0 <= after)
    });
    let page: Vec<pb::Member> = members[start..]
        .iter()
        .take(size)
        .map(|(member, since)| pb::Member {
            participant_id: member.0,
            member_since_ns: *since,
        })
        .collect();
    let more = start + page.len() < members.len();
    let next_after_participant_id = if more {
        page.last().map(|member| member.participant_id)
    } else {
        None
    };
    pb::ListMembersResponse {
        members: page,
        members_total: total,
        next_after_participant_id,
    }
}

#[tonic::async_trait]
impl pb::membership_server::Membership for MembershipService {
    async fn list_members(
        &self,
        request: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let organization = register_of(caller, request.organization_id)?;
        let size = page_size("page_size", request.page_size)?;
        let after = request.after_participant_id;
        let (role, response) = self
            .shared
            .query(move |engine| {
                (
                    engine.participant(organization).map(|p| p.role),
                    page(engine, organization, after, size),
                )
            })
            .await?;
        match role {
            Some(Role::Organization) => Ok(Response::new(response)),
            Some(_) => Err(convert::field_rejection(
                "organization_id",
                mutua_engine::RejectReason::NotAnOrganization,
            )),
            None => Err(convert::field_rejection(
                "organization_id",
                mutua_engine::RejectReason::UnknownAccount,
            )),
        }
    }

    async fn propose_resolution(
        &self,
        request: Request<pb::ProposeResolutionRequest>,
    ) -> Result<Response<pb::ProposeResolutionResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let kind = CommandKind::ProposeResolution {
            title: request.title.clone(),
            closes_at: request.closes_at_ns,
        };
        let applied = self
            .shared
            .submit(caller, &request.request_id, kind)
            .await?;
        let Ack::Resolution(resolution) = convert::accepted(&applied)? else {
            return Err(convert::mismatched_outcome(&applied, "a resolution"));
        };
        Ok(Response::new(pb::ProposeResolutionResponse {
            commit: Some(convert::commit(&applied)),
            resolution_id: resolution.0,
        }))
    }

    async fn cast_vote(
        &self,
        request: Request<pb::CastVoteRequest>,
    ) -> Result<Response<pb::CommitResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let kind = CommandKind::CastVote {
            resolution: ResolutionId(request.resolution_id),
            choice: choice(request.choice)?,
        };
        let applied = self
            .shared
            .submit(caller, &request.request_id, kind)
            .await?;
        Ok(Response::new(convert::commit_response(&applied)?))
    }

    async fn close_resolution(
        &self,
        request: Request<pb::CloseResolutionRequest>,
    ) -> Result<Response<pb::CloseResolutionResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let kind = CommandKind::CloseResolution {
            resolution: ResolutionId(request.resolution_id),
        };
        let applied = self
            .shared
            .submit(caller, &request.request_id, kind)
            .await?;
        convert::accepted(&applied)?;
        let tally = applied.events.iter().find_map(|event| match event {
            Event::ResolutionClosed {
                votes_for,
                votes_against,
                abstentions,
                votes_lapsed,
                passed,
                ..
            } => Some(pb::Tally {
                votes_for: *votes_for,
                votes_against: *votes_against,
                abstentions: *abstentions,
                votes_lapsed: *votes_lapsed,
                passed: *passed,
                closed_at_ns: applied.timestamp,
            }),
            _ => None,
        });
        Ok(Response::new(pb::CloseResolutionResponse {
            commit: Some(convert::commit(&applied)),
            tally,
        }))
    }

    async fn get_resolution(
        &self,
        request: Request<pb::GetResolutionRequest>,
    ) -> Result<Response<pb::Resolution>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let id = ResolutionId(request.get_ref().resolution_id);
        let reader = caller.participant;
        self.shared
            .query(move |engine| {
                engine
                    .resolution(id)
                    .map(|resolution| resolution_to_pb(resolution, reader))
            })
            .await?
            .map(Response::new)
            .ok_or_else(|| {
                convert::field_rejection(
                    "resolution_id",
                    mutua_engine::RejectReason::UnknownResolution,
                )
            })
    }

    async fn list_resolutions(
        &self,
        request: Request<pb::ListResolutionsRequest>,
    ) -> Result<Response<pb::ListResolutionsResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let size = page_size("page_size", request.page_size)?;
        let (organization, after, reader) = (
            request.organization_id.map(ParticipantId),
            request.after_resolution_id,
            caller.participant,
        );
        let (resolutions, more) =
            self.shared
                .query(move |engine| {
                    let start = after.map_or(0, |after| after as usize + 1);
                    let mut matching = engine.resolutions().skip(start).filter(|resolution| {
                        organization.is_none_or(|o| resolution.organization == o)
                    });
                    let page: Vec<pb::Resolution> = matching
                        .by_ref()
                        .take(size)
                        .map(|resolution| resolution_to_pb(resolution, reader))
                        .collect();
                    (page, matching.next().is_some())
                })
                .await?;
        let next_after_resolution_id = if more {
            resolutions
                .last()
                .map(|resolution| resolution.resolution_id)
        } else {
            None
        };
        Ok(Response::new(pb::ListResolutionsResponse {
            resolutions,
            next_after_resolution_id,
        }))
    }
}
