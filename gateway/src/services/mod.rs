//! The gRPC services: thin handlers that authenticate, convert the request into an engine
//! command (`convert.rs`), hand it to the sequencer, and map the outcome back. Queries run on the
//! read replica through `Sequencer::query`, so they only ever see acknowledged state.
//! `router` assembles the Mutua services with health checking and server reflection.

mod accounts;
mod audit;
mod catalog;
mod diagnostics;
mod exchange;
mod history;
mod identity;
mod market_data;
mod membership;
mod pool;
mod registry;
mod tail;
mod time_credits;
mod vouchers;
mod withdrawals;

use std::sync::Arc;

use mutua_engine::{Command, CommandKind, ParticipantId, Role};
use tonic::transport::server::Router;
use tonic::transport::Server;
use tonic::Status;

use crate::auth::{Auth, Caller};
use crate::convert::{self, edge_status, EdgeReason};
use crate::journal::JournalReader;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::pb;
use crate::sequencer::{Applied, Sequencer, SequencerError};

pub use accounts::AccountsService;
pub use audit::AuditService;
pub use catalog::Catalog;
pub use diagnostics::DiagnosticsService;
pub use exchange::ExchangeService;
pub use history::{HistoryService, OpenDataService};
pub use identity::IdentityService;
pub use market_data::MarketDataService;
pub use membership::MembershipService;
pub use pool::PoolService;
pub use registry::RegistryService;
pub use time_credits::TimeCreditsService;
pub use vouchers::{ServiceValueService, VouchersService};
pub use withdrawals::WithdrawalsService;

/// What every handler needs: the way to the engine thread and its read replica, and the token
/// store.
#[derive(Clone)]
pub struct Context {
    pub sequencer: Sequencer,
    pub auth: Auth,
    /// Reads a retried command's first record, to answer the retry with its whole outcome.
    pub journal: JournalReader,
    /// What one client may consume.
    pub limits: Limits,
    pub metrics: Arc<Metrics>,
    /// The history read model, for history and open-data queries.
    pub history: crate::history::History,
    /// Becomes true when the server begins to shut down: open streams end, so that graceful
    /// shutdown is not held up by a subscriber that would otherwise listen forever.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

/// The context plus gateway-side caches shared by all services.
#[derive(Clone)]
pub(crate) struct Shared {
    pub sequencer: Sequencer,
    pub auth: Auth,
    pub journal: JournalReader,
    pub limits: Limits,
    pub metrics: Arc<Metrics>,
    pub catalog: Catalog,
    pub history: crate::history::History,
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

impl Shared {
    /// Completes once the server begins to shut down.
    pub async fn stopping(&self) {
        let mut stopping = self.stopping.clone();
        // An error means the server is gone altogether: stop too.
        let _ = stopping.wait_for(|stopping| *stopping).await;
    }

    fn new(context: Context) -> Shared {
        let catalog = Catalog::new(context.sequencer.clone());
        Shared {
            sequencer: context.sequencer,
            auth: context.auth,
            journal: context.journal,
            limits: context.limits,
            metrics: context.metrics,
            catalog,
            history: context.history,
            stopping: context.stopping,
        }
    }

    /// Submits a command on behalf of `caller` and waits until it is journaled. Returns the
    /// applied record whatever the engine decided; `convert::accepted` turns a rejection into a
    /// status.
    pub async fn submit(
        &self,
        caller: Caller,
        request_id: &str,
        kind: CommandKind,
    ) -> Result<Arc<Applied>, Status> {
        let command = Command {
            id: convert::checked_command_id(caller.participant, request_id)?,
            participant: caller.participant,
            kind,
        };
        let began = std::time::Instant::now();
        let applied = self
            .sequencer
            .submit(command, request_id.to_string())
            .await
            .map_err(sequencer_status)?;
        log_command(caller, request_id, &applied, began);
        first_outcome(&self.journal, applied)
    }

    /// Runs a read-only closure on the read replica, against acknowledged state.
    pub async fn query<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mutua_engine::Engine) -> R + Send + 'static,
    ) -> Result<R, Status> {
        self.sequencer.query(f).await.map_err(sequencer_status)
    }
}

/// One structured line per command (target `mutua::requests`, level debug: enable it with
/// `RUST_LOG=info,mutua::requests=debug`): who, which request, what kind, what became of it,
/// where it sits in the journal and how long the caller waited.
pub(crate) fn log_command(
    caller: Caller,
    request_id: &str,
    applied: &Applied,
    began: std::time::Instant,
) {
    tracing::debug!(
        target: "mutua::requests",
        participant = caller.participant.0,
        role = ?caller.role,
        request_id,
        kind = crate::metrics::COMMAND_KINDS[crate::metrics::kind_index(&applied.command.kind)],
        outcome = %applied.outcome.result.map_or_else(|reason| crate::convert::reason_name(reason), |_| "accepted".to_string()),
        replayed = applied.outcome.is_replay(),
        sequence = applied.sequence,
        latency_us = began.elapsed().as_micros() as u64,
        "command"
    );
}

/// What a client is answered for `applied`: the record itself, or, for a retry, the record of
/// the command's first application (its fills, balances and ids), marked as replayed. A retry is
/// answered with the complete first outcome, never a bare acknowledgement.
pub(crate) fn first_outcome(
    journal: &JournalReader,
    applied: Arc<Applied>,
) -> Result<Arc<Applied>, Status> {
    let Some(first_sequence) = applied.outcome.replayed else {
        return Ok(applied);
    };
    let first = journal
        .read(first_sequence)
        .map_err(|error| {
            Status::internal(format!("reading the first outcome of a retry: {error}"))
        })?
        .ok_or_else(|| {
            Status::internal(format!(
                "a retry names journal record {first_sequence}, which does not exist"
            ))
        })?;
    if first.command.id != applied.command.id {
        return Err(Status::internal(format!(
            "journal record {first_sequence} holds another command than the retry's"
        )));
    }
    let mut answer = first;
    answer.outcome.replayed = Some(first_sequence);
    Ok(Arc::new(answer))
}

/// Backpressure and shutdown as clients see them.
pub fn sequencer_status(error: SequencerError) -> Status {
    match error {
        SequencerError::Overloaded => edge_status(
            EdgeReason::Overloaded,
            "the exchange is at capacity; retry shortly",
        ),
        SequencerError::Stopped => {
            edge_status(EdgeReason::Unavailable, "the exchange is shutting down")
        }
        SequencerError::NotLeader { leader } => not_leader_status(leader),
        SequencerError::NoQuorum => edge_status(
            EdgeReason::Unavailable,
            "the replicated journal has no quorum (too few NATS servers answer); nothing more is \
             acknowledged until it has one: retry the same request id shortly",
        ),
    }
}

/// A write sent to a standby: UNAVAILABLE, with where the leader is (also in the `mutua-leader`
/// metadata, for clients that follow it); the same request id sent there applies once.
fn not_leader_status(leader: Option<String>) -> Status {
    let message = match &leader {
        Some(address) => format!(
            "this node is a standby and takes no writes; the leader is at {address}: send the same request id there"
        ),
        None => "this node does not lead the exchange (a hand-over is under way); retry the same request id shortly".to_string(),
    };
    let mut status = edge_status(EdgeReason::Unavailable, &message);
    if let Some(address) = leader {
        if let Ok(value) = address.parse() {
            status.metadata_mut().insert("mutua-leader", value);
        }
    }
    status
}

/// Whose account a read names: the caller's own when absent; another's only for those who read
/// everything (regulator and operator), since a participant sees its own accounts and nobody
/// else's.
pub(crate) fn account_of(caller: Caller, requested: Option<u32>) -> Result<ParticipantId, Status> {
    match requested.map(ParticipantId) {
        None => Ok(caller.participant),
        Some(account) if account == caller.participant || reads_everything(caller) => Ok(account),
        Some(_) => Err(edge_status(
            EdgeReason::NotPermitted,
            "participant_id: only a regulator or operator may read another participant's accounts",
        )),
    }
}

/// Entries in one page of a listing when the request names no size, and at most.
const PAGE_ENTRIES_DEFAULT: usize = 1_000;
const PAGE_ENTRIES_MAX: usize = 10_000;

/// The page size a listing request asks for in `field`: the default for 0, refused above the
/// maximum, so that no listing answers with an unbounded message.
pub(crate) fn page_size(field: &str, requested: u32) -> Result<usize, Status> {
    match requested as usize {
        0 => Ok(PAGE_ENTRIES_DEFAULT),
        size if size <= PAGE_ENTRIES_MAX => Ok(size),
        _ => Err(convert::invalid_field(format!(
            "{field}: at most {PAGE_ENTRIES_MAX}"
        ))),
    }
}

pub(crate) fn reads_everything(caller: Caller) -> bool {
    matches!(caller.role, Role::Regulator | Role::Operator)
}

/// Every service of the exchange, plus `grpc.health.v1` and server reflection (v1 and v1alpha,
/// since grpcurl 1.8 speaks only v1alpha), ready to serve.
pub fn router(
    context: Context,
    tls: Option<tonic::transport::ServerTlsConfig>,
) -> anyhow::Result<Router> {
    let shared = Shared::new(context);
    let limits = shared.limits.config();
    let bytes_max = limits.request_bytes_max;
    let exchange = pb::exchange_server::ExchangeServer::new(ExchangeService::new(shared.clone()))
        .max_decoding_message_size(bytes_max);
    let accounts = pb::accounts_server::AccountsServer::new(AccountsService::new(shared.clone()))
        .max_decoding_message_size(bytes_max);
    let registry = pb::registry_server::RegistryServer::new(RegistryService::new(shared.clone()))
        .max_decoding_message_size(bytes_max);
    let identity = pb::identity_server::IdentityServer::new(IdentityService::new(shared.clone()))
        .max_decoding_message_size(bytes_max);
    let membership =
        pb::membership_server::MembershipServer::new(MembershipService::new(shared.clone()))
            .max_decoding_message_size(bytes_max);
    let withdrawals =
        pb::withdrawals_server::WithdrawalsServer::new(WithdrawalsService::new(shared.clone()))
            .max_decoding_message_size(bytes_max);
    let vouchers = pb::vouchers_server::VouchersServer::new(VouchersService::new(shared.clone()))
        .max_decoding_message_size(bytes_max);
    let service_value =
        pb::service_value_server::ServiceValueServer::new(ServiceValueService::new(shared.clone()))
            .max_decoding_message_size(bytes_max);
    let time_credits =
        pb::time_credits_server::TimeCreditsServer::new(TimeCreditsService::new(shared.clone()))
            .max_decoding_message_size(bytes_max);
    let pool = pb::pool_server::PoolServer::new(PoolService::new(shared.clone()))
        .max_decoding_message_size(bytes_max);
    let audit = pb::audit_server::AuditServer::new(AuditService::new(shared.clone()))
        .max_decoding_message_size(bytes_max);
    let history = pb::history_server::HistoryServer::new(HistoryService::new(shared.clone()))
        .max_decoding_message_size(bytes_max);
    let open_data = pb::open_data_server::OpenDataServer::new(OpenDataService::new(shared.clone()))
        .max_decoding_message_size(bytes_max);
    let diagnostics =
        pb::diagnostics_server::DiagnosticsServer::new(DiagnosticsService::new(shared.clone()))
            .max_decoding_message_size(bytes_max);
    let market_data = pb::market_data_server::MarketDataServer::new(MarketDataService::new(shared))
        .max_decoding_message_size(bytes_max);

    let (reporter, health) = tonic_health::server::health_reporter();
    // The reporter's lock is uncontended here, so these complete at once without a runtime.
    futures::executor::block_on(async {
        reporter
            .set_serving::<pb::exchange_server::ExchangeServer<ExchangeService>>()
            .await;
        reporter
            .set_serving::<pb::accounts_server::AccountsServer<AccountsService>>()
            .await;
        reporter
            .set_serving::<pb::registry_server::RegistryServer<RegistryService>>()
            .await;
        reporter
            .set_serving::<pb::market_data_server::MarketDataServer<MarketDataService>>()
            .await;
        reporter
            .set_serving::<pb::identity_server::IdentityServer<IdentityService>>()
            .await;
        reporter
            .set_serving::<pb::membership_server::MembershipServer<MembershipService>>()
            .await;
        reporter
            .set_serving::<pb::withdrawals_server::WithdrawalsServer<WithdrawalsService>>()
            .await;
        reporter
            .set_serving::<pb::vouchers_server::VouchersServer<VouchersService>>()
            .await;
        reporter
            .set_serving::<pb::service_value_server::ServiceValueServer<ServiceValueService>>()
            .await;
        reporter
            .set_serving::<pb::time_credits_server::TimeCreditsServer<TimeCreditsService>>()
            .await;
        reporter
            .set_serving::<pb::pool_server::PoolServer<PoolService>>()
            .await;
        reporter
            .set_serving::<pb::audit_server::AuditServer<AuditService>>()
            .await;
        reporter
            .set_serving::<pb::history_server::HistoryServer<HistoryService>>()
            .await;
        reporter
            .set_serving::<pb::open_data_server::OpenDataServer<OpenDataService>>()
            .await;
        reporter
            .set_serving::<pb::diagnostics_server::DiagnosticsServer<DiagnosticsService>>()
            .await;
    });

    // The descriptor sets are compiled into the binary; failing to read them is a build defect,
    // not something a request can cause.
    let reflection_v1 = reflection()
        .build_v1()
        .expect("the compiled descriptor sets are valid");
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .expect("the compiled descriptor sets are valid");

    let mut server = Server::builder();
    if let Some(tls) = tls {
        server = server.tls_config(tls).map_err(|error| {
            anyhow::anyhow!("the TLS certificate or key is not usable: {error}")
        })?;
    }
    Ok(server
        .max_concurrent_streams(limits.connection_streams_max)
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(exchange)
        .add_service(accounts)
        .add_service(registry)
        .add_service(market_data)
        .add_service(identity)
        .add_service(membership)
        .add_service(withdrawals)
        .add_service(vouchers)
        .add_service(service_value)
        .add_service(time_credits)
        .add_service(pool)
        .add_service(audit)
        .add_service(history)
        .add_service(open_data)
        .add_service(diagnostics))
}

fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}
