//! `mutua.v1.Identity`: bearer tokens (issue, revoke, list) and the operator's suspension of a
//! participant. Tokens are made here, from the operating system's random source; the engine
//! journals only their hashes. Every change is followed into the token map at once, so the
//! caller's next call already sees it.

use mutua_engine::{Ack, CommandKind, CredentialId, ParticipantId, Role};
use tonic::{Request, Response, Status};

use crate::auth::{self, Caller};
use crate::convert::{self, edge_status, EdgeReason};
use crate::pb;
use crate::sequencer::Applied;
use crate::services::{first_outcome, page_size, reads_everything, sequencer_status, Shared};

pub struct IdentityService {
    shared: Shared,
}

impl IdentityService {
    pub(crate) fn new(shared: Shared) -> IdentityService {
        IdentityService { shared }
    }
}

fn operator_only(caller: Caller, what: &str) -> Result<(), Status> {
    if caller.role == Role::Operator {
        Ok(())
    } else {
        Err(edge_status(
            EdgeReason::NotPermitted,
            format!("only the operator may {what}"),
        ))
    }
}

impl Shared {
    /// Issues a new token for `participant` as `caller` (the operator): makes it, journals its
    /// hash, follows the change into the token map, and returns the token with the record.
    pub(crate) async fn issue_token(
        &self,
        caller: Caller,
        participant: ParticipantId,
        replace_existing: bool,
    ) -> Result<(String, CredentialId, std::sync::Arc<Applied>), Status> {
        let new = auth::new_token()?;
        let command = mutua_engine::Command {
            id: auth::random_command_id()?,
            participant: caller.participant,
            kind: CommandKind::IssueCredential {
                participant,
                token_hash: new.hash,
                replace_existing,
            },
        };
        // Token issue takes no request id (a retry could not show the first token again).
        let applied = self
            .sequencer
            .submit(command, String::new())
            .await
            .map_err(sequencer_status)?;
        let Ack::Credential(credential) = convert::accepted(&applied)? else {
            return Err(convert::mismatched_outcome(&applied, "a token"));
        };
        self.auth.follow(&applied);
        Ok((new.token, credential, applied))
    }

    /// Submits an identity command with a request id and follows it into the token map.
    async fn submit_identity(
        &self,
        caller: Caller,
        request_id: &str,
        kind: CommandKind,
    ) -> Result<pb::CommitResponse, Status> {
        let command = mutua_engine::Command {
            id: convert::checked_command_id(caller.participant, request_id)?,
            participant: caller.participant,
            kind,
        };
        let applied = self
            .sequencer
            .submit(command, request_id.to_string())
            .await
            .map_err(sequencer_status)?;
        self.auth.follow(&applied);
        let applied = first_outcome(&self.journal, applied)?;
        convert::accepted(&applied)?;
        Ok(pb::CommitResponse {
            commit: Some(convert::commit(&applied)),
        })
    }
}

#[tonic::async_trait]
impl pb::identity_server::Identity for IdentityService {
    async fn issue_token(
        &self,
        request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        operator_only(caller, "issue tokens")?;
        let request = request.into_inner();
        let (token, credential, applied) = self
            .shared
            .issue_token(
                caller,
                ParticipantId(request.participant_id),
                request.replace_existing,
            )
            .await?;
        Ok(Response::new(pb::IssueTokenResponse {
            commit: Some(convert::commit(&applied)),
            token_id: credential.0,
            token,
        }))
    }

    async fn revoke_token(
        &self,
        request: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::CommitResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        operator_only(caller, "revoke tokens")?;
        let request = request.into_inner();
        let kind = CommandKind::RevokeCredential {
            credential: CredentialId(request.token_id),
        };
        Ok(Response::new(
            self.shared
                .submit_identity(caller, &request.request_id, kind)
                .await?,
        ))
    }

    async fn list_tokens(
        &self,
        request: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        operator_only(caller, "list tokens")?;
        let request = request.into_inner();
        let only = request.participant_id.map(ParticipantId);
        let (after, limit) = (request.after_token_id, page_size("limit", request.limit)?);
        let tokens = self
            .shared
            .query(move |engine| {
                engine
                    .credentials()
                    .skip(after.map_or(0, |after| after as usize + 1))
                    .filter(|(_, credential)| {
                        only.is_none_or(|participant| credential.participant == participant)
                    })
                    .take(limit)
                    .map(|(id, credential)| pb::TokenInfo {
                        token_id: id.0,
                        participant_id: credential.participant.0,
                        issued_at_ns: credential.issued_at,
                        revoked_at_ns: credential.revoked_at,
                    })
                    .collect()
            })
            .await?;
        Ok(Response::new(pb::ListTokensResponse { tokens }))
    }

    async fn list_participants(
        &self,
        request: Request<pb::ListParticipantsRequest>,
    ) -> Result<Response<pb::ListParticipantsResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        if !reads_everything(caller) {
            return Err(edge_status(
                EdgeReason::NotPermitted,
                "only the operator or a regulator may list participants",
            ));
        }
        let request = request.into_inner();
        let (after, limit) = (
            request.after_participant_id,
            page_size("limit", request.limit)?,
        );
        let role = match request.role {
            0 => None,
            _ => Some(convert::role("role", request.role)?),
        };
        let participants = self
            .shared
            .query(move |engine| {
                engine
                    .participants()
                    .skip(after.map_or(0, |after| after as usize + 1))
                    .filter(|(_, participant)| role.is_none_or(|role| participant.role == role))
                    .take(limit)
                    .map(|(id, participant)| pb::ParticipantInfo {
                        participant_id: id.0,
                        role: convert::role_to_pb(participant.role) as i32,
                        name: participant.name.clone(),
                        accredited: participant.accredited,
                        suspended: participant.suspended,
                        live_tokens: engine.live_credentials_of(id).len() as u32,
                        accredited_categories: engine
                            .accredited_categories(id)
                            .map(|categories| categories.to_vec())
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .await?;
        Ok(Response::new(pb::ListParticipantsResponse { participants }))
    }

    async fn set_participant_status(
        &self,
        request: Request<pb::SetParticipantStatusRequest>,
    ) -> Result<Response<pb::CommitResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let kind = CommandKind::SetParticipantStatus {
            participant: ParticipantId(request.participant_id),
            suspended: request.suspended,
        };
        Ok(Response::new(
            self.shared
                .submit_identity(caller, &request.request_id, kind)
                .await?,
        ))
    }
}
