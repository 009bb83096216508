//! Bounds on what one client can consume, each named and configurable (`mutua serve --help`):
//! a per-participant request rate (a token bucket: a sustained rate and a burst), market-data
//! streams per anonymous client address, and the per-connection bounds tonic enforces
//! (concurrent streams, concurrent requests, request size, keep-alive of silent peers).
//!
//! A unary call over its participant's rate is answered RESOURCE_EXHAUSTED (`LIMIT_REACHED`,
//! code 1010) at once, before anything reaches the engine or the journal. Commands on an
//! `OrderEntry` stream are paced instead: the stream stops reading until the bucket refills, and
//! HTTP/2 flow control slows the sender. So the journal grows from one participant's commands,
//! accepted or rejected, at most at that participant's rate.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use mutua_engine::ParticipantId;
use tonic::Status;

use crate::convert::{edge_status, EdgeReason};

#[derive(Clone, Copy, Debug)]
pub struct LimitsConfig {
    /// Requests (unary calls and stream messages) one participant may make per second, sustained.
    pub participant_requests_per_second: u32,
    /// Requests one participant may make at once above the sustained rate.
    pub participant_requests_burst: u32,
    /// Market-data streams open at once from one client address (they need no token).
    pub anonymous_streams_per_address_max: u32,
    /// Calls without a token (books, instruments, open market history) one client address may
    /// make per second, sustained.
    pub anonymous_requests_per_second: u32,
    /// Calls without a token one address may make at once above its sustained rate.
    pub anonymous_requests_burst: u32,
    /// Audit feeds open at once, over all regulators and operators.
    pub audit_streams_max: u32,
    /// HTTP/2 streams (calls in flight, streaming or not) open at once on one connection.
    pub connection_streams_max: u32,
    /// Largest request message, in bytes; larger ones are refused before they are decoded.
    pub request_bytes_max: usize,
    /// A connection that answers no HTTP/2 ping for this long after one is sent is closed.
    pub keepalive_timeout: Duration,
    /// Pings are sent on a connection silent for this long.
    pub keepalive_interval: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            participant_requests_per_second: 500_000,
            participant_requests_burst: 1_000_000,
            anonymous_streams_per_address_max: 64,
            anonymous_requests_per_second: 2_000,
            anonymous_requests_burst: 4_000,
            audit_streams_max: 16,
            connection_streams_max: 1_024,
            request_bytes_max: 64 << 10,
            keepalive_timeout: Duration::from_secs(20),
            keepalive_interval: Duration::from_secs(60),
        }
    }
}

/// One participant's token bucket.
#[derive(Debug)]
pub struct Bucket {
    /// Tokens available, and when they were last counted.
    state: Mutex<(f64, Instant)>,
}

/// The limits every handler consults.
#[derive(Clone)]
pub struct Limits {
    config: LimitsConfig,
    /// Read-locked on every call (concurrent callers do not wait on each other); write-locked
    /// only the first time a participant calls.
    buckets: Arc<RwLock<HashMap<ParticipantId, Arc<Bucket>>>>,
    anonymous_streams: Arc<Mutex<HashMap<IpAddr, u32>>>,
    /// Per address: tokens left for calls without a token, and when they were counted.
    anonymous_calls: Arc<Mutex<HashMap<IpAddr, (f64, Instant)>>>,
    audit_streams: Arc<tokio::sync::Semaphore>,
}

/// Addresses whose anonymous-call buckets are remembered at once. Past it, the buckets that
/// have refilled (idle addresses) are forgotten; if none has, a new address waits.
const ANONYMOUS_ADDRESSES_MAX: usize = 65_536;

/// A market-data stream's place in its address's count; given back when dropped.
pub struct StreamPermit {
    streams: Arc<Mutex<HashMap<IpAddr, u32>>>,
    address: IpAddr,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut streams = self
            .streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = streams.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                streams.remove(&self.address);
            }
        }
    }
}

impl Limits {
    pub fn new(config: LimitsConfig) -> Limits {
        Limits {
            config,
            buckets: Arc::default(),
            anonymous_streams: Arc::default(),
            anonymous_calls: Arc::default(),
            audit_streams: Arc::new(tokio::sync::Semaphore::new(
                config.audit_streams_max as usize,
            )),
        }
    }

    pub fn config(&self) -> LimitsConfig {
        self.config
    }

    /// A place among the audit feeds open at once, given back when dropped.
    pub fn audit_stream(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Status> {
        self.audit_streams.clone().try_acquire_owned().map_err(|_| {
            edge_status(
                EdgeReason::LimitReached,
                format!(
                    "{} audit feeds are open, the most the exchange serves at once",
                    self.config.audit_streams_max
                ),
            )
        })
    }

    /// `participant`'s bucket, for a stream to hold instead of finding it per message.
    pub fn bucket(&self, participant: ParticipantId) -> Arc<Bucket> {
        if let Some(bucket) = self
            .buckets
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&participant)
        {
            return bucket.clone();
        }
        let mut buckets = self
            .buckets
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        buckets
            .entry(participant)
            .or_insert_with(|| {
                Arc::new(Bucket {
                    state: Mutex::new((
                        f64::from(self.config.participant_requests_burst),
                        Instant::now(),
                    )),
                })
            })
            .clone()
    }

    /// Takes one request from `participant`'s bucket; `Err(wait)` says how long until one is free.
    fn take(&self, participant: ParticipantId) -> Result<(), Duration> {
        self.take_from(&self.bucket(participant))
    }

    fn take_from(&self, bucket: &Bucket) -> Result<(), Duration> {
        let rate = f64::from(self.config.participant_requests_per_second.max(1));
        let burst = f64::from(self.config.participant_requests_burst.max(1));
        let mut state = bucket
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        let refilled = (state.0 + now.duration_since(state.1).as_secs_f64() * rate).min(burst);
        if refilled >= 1.0 {
            *state = (refilled - 1.0, now);
            Ok(())
        } else {
            *state = (refilled, now);
            Err(Duration::from_secs_f64((1.0 - refilled) / rate))
        }
    }

    /// Charges one unary request to `participant`, or refuses it.
    pub fn charge(&self, participant: ParticipantId) -> Result<(), Status> {
        self.take(participant).map_err(|wait| {
            edge_status(
                EdgeReason::LimitReached,
                format!(
                    "participant {} is over its rate of {} requests per second (burst {}); retry in {} ms",
                    participant.0,
                    self.config.participant_requests_per_second,
                    self.config.participant_requests_burst,
                    wait.as_millis().max(1)
                ),
            )
        })
    }

    /// Charges one stream message to a participant's bucket, waiting for it to refill if needed.
    pub async fn pace(&self, bucket: &Bucket) {
        while let Err(wait) = self.take_from(bucket) {
            tokio::time::sleep(wait).await;
        }
    }

    /// Charges one call without a token to its client's address, or refuses it.
    pub fn anonymous_call(&self, address: Option<std::net::SocketAddr>) -> Result<(), Status> {
        let Some(address) = address.map(|socket| socket.ip()) else {
            return Ok(());
        };
        let rate = f64::from(self.config.anonymous_requests_per_second.max(1));
        let burst = f64::from(self.config.anonymous_requests_burst.max(1));
        let now = Instant::now();
        let refill = |(tokens, at): &(f64, Instant)| {
            (tokens + now.duration_since(*at).as_secs_f64() * rate).min(burst)
        };
        let mut calls = self
            .anonymous_calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !calls.contains_key(&address) && calls.len() >= ANONYMOUS_ADDRESSES_MAX {
            calls.retain(|_, bucket| refill(bucket) < burst);
            if calls.len() >= ANONYMOUS_ADDRESSES_MAX {
                return Err(edge_status(
                    EdgeReason::LimitReached,
                    format!(
                        "{ANONYMOUS_ADDRESSES_MAX} addresses are calling without a token at once; retry shortly"
                    ),
                ));
            }
        }
        let bucket = calls.entry(address).or_insert((burst, now));
        let tokens = refill(bucket);
        if tokens >= 1.0 {
            *bucket = (tokens - 1.0, now);
            return Ok(());
        }
        *bucket = (tokens, now);
        let wait = Duration::from_secs_f64((1.0 - tokens) / rate);
        Err(edge_status(
            EdgeReason::LimitReached,
            format!(
                "{address} is over its rate of {} calls without a token per second (burst {}); retry in {} ms",
                self.config.anonymous_requests_per_second,
                self.config.anonymous_requests_burst,
                wait.as_millis().max(1)
            ),
        ))
    }

    /// A place for one more anonymous market-data stream from `address`, or a refusal.
    pub fn anonymous_stream(
        &self,
        address: Option<std::net::SocketAddr>,
    ) -> Result<Option<StreamPermit>, Status> {
        let Some(address) = address.map(|socket| socket.ip()) else {
            return Ok(None);
        };
        let mut streams = self
            .anonymous_streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = streams.entry(address).or_insert(0);
        if *count >= self.config.anonymous_streams_per_address_max {
            return Err(edge_status(
                EdgeReason::LimitReached,
                format!(
                    "{address} already holds {} market-data streams, the most one address may open",
                    *count
                ),
            ));
        }
        *count += 1;
        Ok(Some(StreamPermit {
            streams: self.anonymous_streams.clone(),
            address,
        }))
    }
}
