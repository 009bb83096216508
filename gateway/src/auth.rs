//! Identity: bearer tokens that map to a participant and its role.
//!
//! A token is derived from a secret kept in the data directory and the participant id, so a
//! retried registration returns the same token instead of minting a second one. Only a SHA-256
//! of each issued token is stored (column family `tokens`), with the participant and role; a
//! presented token is hashed and looked up. The lookup map is gateway state, never engine state.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use mutua_engine::{ParticipantId, Role};
use rocksdb::DB;
use sha2::{Digest, Sha256};

use crate::journal::CF_TOKENS;

const SECRET_KEY: &[u8] = b"\0secret";
const TOKEN_PREFIX: &str = "mutua_";

/// The authenticated participant behind a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    pub participant: ParticipantId,
    pub role: Role,
}

#[derive(Clone)]
pub struct Auth {
    db: Arc<DB>,
    secret: [u8; 32],
    callers: Arc<RwLock<HashMap<[u8; 32], Caller>>>,
}

fn role_code(role: Role) -> u8 {
    match role {
        Role::Contributor => 1,
        Role::Organization => 2,
        Role::Funder => 3,
        Role::Regulator => 4,
        Role::Operator => 5,
    }
}

fn role_from_code(code: u8) -> Option<Role> {
    Some(match code {
        1 => Role::Contributor,
        2 => Role::Organization,
        3 => Role::Funder,
        4 => Role::Regulator,
        5 => Role::Operator,
        _ => return None,
    })
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Auth {
    /// Loads the token store, creating the secret on first start. Returns the store and whether
    /// it was new (so the caller can issue and print the operator's token once).
    pub fn open(db: Arc<DB>) -> anyhow::Result<(Auth, bool)> {
        let tokens = db.cf_handle(CF_TOKENS).ok_or_else(|| anyhow::anyhow!("token column family missing"))?;
        let (secret, created) = match db.get_cf(tokens, SECRET_KEY)? {
            Some(stored) if stored.len() == 32 => {
                let mut secret = [0u8; 32];
                secret.copy_from_slice(&stored);
                (secret, false)
            }
            Some(_) => anyhow::bail!("the token secret in the data directory is damaged"),
            None => {
                let secret: [u8; 32] = rand::random();
                let mut sync = rocksdb::WriteOptions::default();
                sync.set_sync(true);
                db.put_cf_opt(tokens, SECRET_KEY, secret, &sync)?;
                (secret, true)
            }
        };
        let mut callers = HashMap::new();
        for item in db.iterator_cf(tokens, rocksdb::IteratorMode::Start) {
            let (key, value) = item?;
            if key.as_ref() == SECRET_KEY {
                continue;
            }
            let (Ok(hash), [a, b, c, d, role]) = (<[u8; 32]>::try_from(key.as_ref()), value.as_ref()) else {
                anyhow::bail!("a token record in the data directory is damaged");
            };
            let role = role_from_code(*role).ok_or_else(|| anyhow::anyhow!("a token record names an unknown role"))?;
            callers.insert(hash, Caller { participant: ParticipantId(u32::from_le_bytes([*a, *b, *c, *d])), role });
        }
        Ok((Auth { db, secret, callers: Arc::new(RwLock::new(callers)) }, created))
    }

    /// The participant's token (the same one every time), recorded as valid.
    pub fn issue_token(&self, participant: ParticipantId, role: Role) -> Result<String, tonic::Status> {
        let mac = blake3::keyed_hash(&self.secret, &participant.0.to_le_bytes());
        let token = format!("{TOKEN_PREFIX}{}_{}", participant.0, &mac.to_hex()[..40]);
        let hash = token_hash(&token);
        let caller = Caller { participant, role };
        let known = self.callers.read().map_err(|_| tonic::Status::internal("token store poisoned"))?.get(&hash).copied();
        if known != Some(caller) {
            let tokens = self.db.cf_handle(CF_TOKENS).ok_or_else(|| tonic::Status::internal("token column family missing"))?;
            let mut record = participant.0.to_le_bytes().to_vec();
            record.push(role_code(role));
            let mut sync = rocksdb::WriteOptions::default();
            sync.set_sync(true);
            self.db
                .put_cf_opt(tokens, hash, record, &sync)
                .map_err(|error| tonic::Status::internal(format!("token store: {error}")))?;
            self.callers.write().map_err(|_| tonic::Status::internal("token store poisoned"))?.insert(hash, caller);
        }
        Ok(token)
    }

    /// The caller behind a request's `authorization: Bearer <token>` metadata.
    pub fn authenticate<T>(&self, request: &tonic::Request<T>) -> Result<Caller, tonic::Status> {
        self.authenticate_metadata(request.metadata())
    }

    pub fn authenticate_metadata(&self, metadata: &tonic::metadata::MetadataMap) -> Result<Caller, tonic::Status> {
        let header = metadata
            .get("authorization")
            .ok_or_else(|| tonic::Status::unauthenticated("missing `authorization: Bearer <token>` metadata"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
            .ok_or_else(|| tonic::Status::unauthenticated("authorization metadata must be `Bearer <token>`"))?;
        let callers = self.callers.read().map_err(|_| tonic::Status::internal("token store poisoned"))?;
        callers.get(&token_hash(token.trim())).copied().ok_or_else(|| tonic::Status::unauthenticated("unknown or revoked token"))
    }
}
