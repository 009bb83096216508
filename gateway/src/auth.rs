//! Identity at the edge: bearer tokens → (participant, role, credential).
//!
//! A token is 256 bits from the operating system's random source, shown once to whoever asked
//! for it and never stored: the engine's journaled state holds only its SHA-256, beside the
//! participant and the credential id (`mutua_engine::identity`). Nothing in the data directory
//! lets anyone derive a token. This module keeps a lookup map of the live token hashes, built
//! from the engine at start-up and then following every journaled batch that issues or revokes
//! a credential or suspends a participant, so authentication never waits for the engine thread.
//! Revocation and suspension bump a revision that open streams watch: they end at once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use mutua_engine::{Ack, CommandKind, CredentialId, Engine, Event, ParticipantId, Role};
use rand::TryRngCore;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::convert::{edge_status, EdgeReason};
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::sequencer::Applied;

/// Every token starts with this, so that a leaked one is easy to recognise and scan for.
pub const TOKEN_PREFIX: &str = "mutua_";

/// Random bytes in a token (256 bits).
const TOKEN_RANDOM_BYTES: usize = 32;

/// Longest `authorization` header value considered at all; anything longer is malformed.
const AUTHORIZATION_BYTES_MAX: usize = 256;

/// The authenticated participant behind a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    pub participant: ParticipantId,
    pub role: Role,
    pub credential: CredentialId,
}

#[derive(Default)]
struct Tokens {
    by_hash: HashMap<[u8; 32], Caller>,
    by_credential: HashMap<CredentialId, [u8; 32]>,
    suspended: HashSet<ParticipantId>,
}

impl Tokens {
    fn insert(&mut self, hash: [u8; 32], caller: Caller) {
        self.by_hash.insert(hash, caller);
        self.by_credential.insert(caller.credential, hash);
    }

    fn revoke(&mut self, credential: CredentialId) -> bool {
        match self.by_credential.remove(&credential) {
            Some(hash) => self.by_hash.remove(&hash).is_some(),
            None => false,
        }
    }
}

/// The token lookup map, shared by every handler.
#[derive(Clone)]
pub struct Auth {
    tokens: Arc<RwLock<Tokens>>,
    /// Every authenticated call is charged to its participant's rate.
    limits: Limits,
    metrics: Arc<Metrics>,
    /// Bumped whenever a credential is revoked or a participant suspended.
    revision: Arc<watch::Sender<u64>>,
}

/// A new token and the SHA-256 the engine records for it.
pub struct NewToken {
    pub token: String,
    pub hash: [u8; 32],
}

/// A fresh token from the operating system's random source.
pub fn new_token() -> Result<NewToken, tonic::Status> {
    let mut random = [0u8; TOKEN_RANDOM_BYTES];
    rand::rngs::OsRng
        .try_fill_bytes(&mut random)
        .map_err(|error| {
            tonic::Status::internal(format!(
                "the operating system's random source failed: {error}"
            ))
        })?;
    let mut token = String::with_capacity(TOKEN_PREFIX.len() + 2 * TOKEN_RANDOM_BYTES);
    token.push_str(TOKEN_PREFIX);
    for byte in random {
        token.push_str(&format!("{byte:02x}"));
    }
    let hash = token_hash(&token);
    Ok(NewToken { token, hash })
}

pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A random command id for commands the gateway makes itself (issuing a credential), which no
/// client retries and so need no request id.
pub fn random_command_id() -> Result<mutua_engine::CommandId, tonic::Status> {
    let mut random = [0u8; 16];
    rand::rngs::OsRng
        .try_fill_bytes(&mut random)
        .map_err(|error| {
            tonic::Status::internal(format!(
                "the operating system's random source failed: {error}"
            ))
        })?;
    Ok(mutua_engine::CommandId(u128::from_le_bytes(random)))
}

impl Auth {
    /// The live tokens and suspensions of a recovered engine.
    pub fn from_engine(engine: &Engine, limits: Limits, metrics: Arc<Metrics>) -> Auth {
        let mut tokens = Tokens::default();
        for (credential, entry) in engine.credentials().filter(|(_, entry)| entry.is_live()) {
            if let Some(participant) = engine.participant(entry.participant) {
                tokens.insert(
                    entry.token_hash,
                    Caller {
                        participant: entry.participant,
                        role: participant.role,
                        credential,
                    },
                );
            }
        }
        tokens.suspended = engine
            .participants()
            .filter(|(_, participant)| participant.suspended)
            .map(|(id, _)| id)
            .collect();
        let (revision, _) = watch::channel(0);
        Auth {
            tokens: Arc::new(RwLock::new(tokens)),
            limits,
            metrics,
            revision: Arc::new(revision),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Replaces the whole map with the engine's (after the follower fell behind).
    pub fn reload(&self, engine: &Engine) {
        let fresh = Auth::from_engine(engine, self.limits.clone(), self.metrics.clone());
        let tokens = std::mem::take(
            &mut *fresh
                .tokens
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        *self
            .tokens
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = tokens;
        self.revision.send_modify(|revision| *revision += 1);
    }

    /// Follows one journaled command: credentials issued or revoked, participants suspended or
    /// reinstated. Idempotent, so a handler may apply its own command at once and the follower
    /// again later.
    pub fn follow(&self, applied: &Applied) {
        let relevant = matches!(
            applied.command.kind,
            CommandKind::IssueCredential { .. }
                | CommandKind::RevokeCredential { .. }
                | CommandKind::SetParticipantStatus { .. }
        );
        if !relevant || applied.outcome.is_replay() || applied.outcome.result.is_err() {
            return;
        }
        let mut tokens = self
            .tokens
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut bump = false;
        for event in &applied.events {
            match *event {
                Event::CredentialIssued {
                    credential,
                    participant,
                    role,
                } => {
                    if let (
                        CommandKind::IssueCredential { token_hash, .. },
                        Ok(Ack::Credential(issued)),
                    ) = (&applied.command.kind, applied.outcome.result)
                    {
                        if issued == credential {
                            tokens.insert(
                                *token_hash,
                                Caller {
                                    participant,
                                    role,
                                    credential,
                                },
                            );
                        }
                    }
                }
                Event::CredentialRevoked { credential, .. } => bump |= tokens.revoke(credential),
                Event::ParticipantStatusChanged {
                    participant,
                    suspended: true,
                } => bump |= tokens.suspended.insert(participant),
                Event::ParticipantStatusChanged {
                    participant,
                    suspended: false,
                } => {
                    tokens.suspended.remove(&participant);
                }
                _ => {}
            }
        }
        drop(tokens);
        if bump {
            self.revision.send_modify(|revision| *revision += 1);
        }
    }

    /// The caller behind a request's `authorization: Bearer <token>` metadata, charged one
    /// request against its participant's rate.
    pub fn authenticate<T>(&self, request: &tonic::Request<T>) -> Result<Caller, tonic::Status> {
        let refused = |status: tonic::Status, reason: &'static str| {
            self.metrics.edge_refusal(reason);
            tracing::info!(target: "mutua::requests", reason, peer = ?request.remote_addr(), message = status.message(), "refused at the edge");
            status
        };
        let caller = self
            .authenticate_metadata(request.metadata())
            .map_err(|status| refused(status, "authentication"))?;
        self.limits
            .charge(caller.participant)
            .map_err(|status| refused(status, "participant_rate"))?;
        Ok(caller)
    }

    pub fn authenticate_metadata(
        &self,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<Caller, tonic::Status> {
        let header = metadata.get("authorization").ok_or_else(|| {
            edge_status(
                EdgeReason::TokenMissing,
                "missing `authorization: Bearer <token>` metadata",
            )
        })?;
        let token = header
            .to_str()
            .ok()
            .filter(|value| value.len() <= AUTHORIZATION_BYTES_MAX)
            .and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
            })
            .ok_or_else(|| {
                edge_status(
                    EdgeReason::TokenMalformed,
                    "authorization metadata must be `Bearer <token>`",
                )
            })?;
        let tokens = self
            .tokens
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let caller = tokens
            .by_hash
            .get(&token_hash(token.trim()))
            .copied()
            .ok_or_else(|| edge_status(EdgeReason::TokenUnknown, "unknown or revoked token"))?;
        if tokens.suspended.contains(&caller.participant) {
            return Err(edge_status(
                EdgeReason::ParticipantSuspended,
                "the participant is suspended by the operator",
            ));
        }
        Ok(caller)
    }

    /// Whether `caller`'s credential is still live and its participant not suspended.
    pub fn still_valid(&self, caller: Caller) -> bool {
        let tokens = self
            .tokens
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        tokens.by_credential.contains_key(&caller.credential)
            && !tokens.suspended.contains(&caller.participant)
    }

    /// Completes when `caller`'s credential is revoked or its participant suspended: open streams
    /// select on it and end with UNAUTHENTICATED.
    pub fn invalidated(
        &self,
        caller: Caller,
    ) -> impl std::future::Future<Output = tonic::Status> + Send + 'static {
        let mut revision = self.revision.subscribe();
        let auth = self.clone();
        async move {
            loop {
                if !auth.still_valid(caller) {
                    return edge_status(
                        EdgeReason::TokenUnknown,
                        "the token was revoked or its participant suspended",
                    );
                }
                if revision.changed().await.is_err() {
                    // The map is gone: the server is shutting down; streams end on `stopping`.
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    /// Whether the token `token` is a live credential of `participant`.
    pub fn is_live_token_of(&self, token: &str, participant: ParticipantId) -> bool {
        let tokens = self
            .tokens
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        tokens
            .by_hash
            .get(&token_hash(token.trim()))
            .is_some_and(|caller| caller.participant == participant)
    }
}
