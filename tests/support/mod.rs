//! Harness for the end-to-end tests: the real server in-process on `127.0.0.1:0` with a temporary
//! data directory, bearer tokens on requests, and the set-up steps every market needs (register,
//! fund, list, open trading, run an offering).

#![allow(dead_code)]

pub mod nats;
pub mod process;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use mutua_gateway::pb;
use mutua_gateway::pb::accounts_client::AccountsClient;
use mutua_gateway::pb::audit_client::AuditClient;
use mutua_gateway::pb::diagnostics_client::DiagnosticsClient;
use mutua_gateway::pb::exchange_client::ExchangeClient;
use mutua_gateway::pb::history_client::HistoryClient;
use mutua_gateway::pb::identity_client::IdentityClient;
use mutua_gateway::pb::market_data_client::MarketDataClient;
use mutua_gateway::pb::membership_client::MembershipClient;
use mutua_gateway::pb::open_data_client::OpenDataClient;
use mutua_gateway::pb::pool_client::PoolClient;
use mutua_gateway::pb::registry_client::RegistryClient;
use mutua_gateway::pb::service_value_client::ServiceValueClient;
use mutua_gateway::pb::time_credits_client::TimeCreditsClient;
use mutua_gateway::pb::vouchers_client::VouchersClient;
use mutua_gateway::pb::withdrawals_client::WithdrawalsClient;
use mutua_gateway::sequencer::EngineReport;
use mutua_gateway::server::{self, ServeArgs, OPERATOR_TOKEN_FILE};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::Request;

/// Nanoseconds in the 365-day year the engine accrues return caps over.
pub const YEAR_NS: u64 = 365 * 24 * 3600 * 1_000_000_000;

/// How long a test waits for the server to write its operator token before giving up.
const STARTUP_WAIT_MAX: Duration = Duration::from_secs(60);

/// The `ServeArgs` flags, parsed the way `mutua serve` parses them, so that a flag added later
/// with a default does not break the tests.
#[derive(Parser)]
struct ServeFlags {
    #[command(flatten)]
    args: ServeArgs,
}

/// A running server. `stop` must be called at the end of a test: it proves that the server
/// drained and shut down cleanly.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// The genesis operator's bearer token, as written to `<data>/operator.token`.
    pub operator_token: String,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<EngineReport>>>,
    // Held so the directory outlives the server; removed when the test ends.
    _data: tempfile::TempDir,
}

/// A temporary directory private to this user (0700), as `mutua serve` requires of its data
/// directory; removed when dropped.
pub fn private_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let data = tempfile::tempdir().expect("temporary data directory");
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o700))
        .expect("make the directory private");
    data
}

/// Starts a server on a free port with an empty data directory.
pub async fn start() -> TestServer {
    start_with(&[]).await
}

/// As `start`, with extra `mutua serve` flags (e.g. `["--queue-capacity", "1"]`).
pub async fn start_with(extra_flags: &[&str]) -> TestServer {
    let data = private_tempdir();
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let local = listener.local_addr().expect("bound address");
    let data_flag = data.path().to_str().expect("utf-8 temp path").to_string();
    let local_flag = local.to_string();
    let mut argv = vec![
        "serve",
        "--data",
        &data_flag,
        "--listen",
        &local_flag,
        "--metrics-listen",
        "127.0.0.1:0",
    ];
    argv.extend_from_slice(extra_flags);
    let flags = ServeFlags::parse_from(argv);
    let (trigger, shutdown) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        server::run(listener, &flags.args, async {
            let _ = shutdown.await;
        })
        .await
    });
    let operator_token = match read_operator_token(&data.path().join(OPERATOR_TOKEN_FILE), &handle)
        .await
    {
        Some(token) => token,
        None => match handle.await {
            Ok(Ok(report)) => {
                panic!("the server stopped before writing its operator token: {report:?}")
            }
            Ok(Err(error)) => {
                panic!("the server failed before writing its operator token: {error:#}")
            }
            Err(panic) => panic!("the server panicked before writing its operator token: {panic}"),
        },
    };
    TestServer {
        address: format!("http://{local}"),
        operator_token,
        shutdown: Some(trigger),
        handle: Some(handle),
        _data: data,
    }
}

/// Waits until the server has written the whole token file (it ends with a newline); `None` if
/// the server stopped first.
async fn read_operator_token(
    path: &std::path::Path,
    handle: &JoinHandle<anyhow::Result<EngineReport>>,
) -> Option<String> {
    let started = std::time::Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if text.ends_with('\n') {
                let token = text.trim().to_string();
                assert!(
                    token.starts_with("mutua_"),
                    "the operator token file holds a token: {token:?}"
                );
                return Some(token);
            }
        }
        if handle.is_finished() {
            return None;
        }
        assert!(
            started.elapsed() < STARTUP_WAIT_MAX,
            "no operator token after {STARTUP_WAIT_MAX:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl TestServer {
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.address.clone())
            .expect("valid address")
            .connect()
            .await
            .expect("connect to the server")
    }

    pub async fn clients(&self) -> Clients {
        Clients::new(self.channel().await)
    }

    /// Triggers shutdown and asserts the server's run returned Ok (drained, synced, snapshotted).
    pub async fn stop(self) -> EngineReport {
        self.stop_keeping_data().await.0
    }

    /// As `stop`, handing back the data directory for inspection (removed when dropped).
    pub async fn stop_keeping_data(mut self) -> (EngineReport, tempfile::TempDir) {
        let report = self.shut_down().await;
        (report, self._data)
    }

    async fn shut_down(&mut self) -> EngineReport {
        self.shutdown
            .take()
            .expect("stopped once")
            .send(())
            .expect("the server is still running");
        let handle = self.handle.take().expect("stopped once");
        let report = tokio::time::timeout(Duration::from_secs(60), handle)
            .await
            .expect("the server stops within a minute")
            .expect("the server task did not panic");
        match report {
            Ok(report) => report,
            Err(error) => panic!("the server's run returned an error: {error:#}"),
        }
    }
}

/// One client of each Mutua service, sharing one connection.
#[derive(Clone)]
pub struct Clients {
    pub exchange: ExchangeClient<Channel>,
    pub accounts: AccountsClient<Channel>,
    pub registry: RegistryClient<Channel>,
    pub market_data: MarketDataClient<Channel>,
    pub identity: IdentityClient<Channel>,
    pub membership: MembershipClient<Channel>,
    pub withdrawals: WithdrawalsClient<Channel>,
    pub vouchers: VouchersClient<Channel>,
    pub service_value: ServiceValueClient<Channel>,
    pub time_credits: TimeCreditsClient<Channel>,
    pub pool: PoolClient<Channel>,
    pub audit: AuditClient<Channel>,
    pub history: HistoryClient<Channel>,
    pub open_data: OpenDataClient<Channel>,
    pub diagnostics: DiagnosticsClient<Channel>,
}

impl Clients {
    pub fn new(channel: Channel) -> Clients {
        Clients {
            exchange: ExchangeClient::new(channel.clone()),
            accounts: AccountsClient::new(channel.clone()),
            registry: RegistryClient::new(channel.clone()),
            market_data: MarketDataClient::new(channel.clone()),
            identity: IdentityClient::new(channel.clone()),
            membership: MembershipClient::new(channel.clone()),
            withdrawals: WithdrawalsClient::new(channel.clone()),
            vouchers: VouchersClient::new(channel.clone()),
            service_value: ServiceValueClient::new(channel.clone()),
            time_credits: TimeCreditsClient::new(channel.clone()),
            pool: PoolClient::new(channel.clone()),
            history: HistoryClient::new(channel.clone()),
            open_data: OpenDataClient::new(channel.clone()),
            diagnostics: DiagnosticsClient::new(channel.clone()),
            audit: AuditClient::new(channel).max_decoding_message_size(256 << 20),
        }
    }
}

/// `message` with `authorization: Bearer <token>` metadata.
pub fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ASCII token"),
    );
    request
}

/// A request id no other call in this test process uses.
pub fn request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("request-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos() as u64
}

pub fn by_id(id: u32) -> Option<pb::InstrumentRef> {
    Some(pb::InstrumentRef {
        instrument: Some(pb::instrument_ref::Instrument::Id(id)),
    })
}

pub fn by_symbol(symbol: &str) -> Option<pb::InstrumentRef> {
    Some(pb::InstrumentRef {
        instrument: Some(pb::instrument_ref::Instrument::Symbol(symbol.to_string())),
    })
}

// ---- Set-up steps, each asserting that it succeeded ----

/// Registers a participant; returns its id and bearer token.
pub async fn register(
    clients: &mut Clients,
    operator: &str,
    role: pb::Role,
    name: &str,
) -> (u32, String) {
    let request = pb::RegisterParticipantRequest {
        request_id: request_id(),
        role: role as i32,
        name: name.to_string(),
    };
    let response = clients
        .registry
        .register_participant(with_token(request, operator))
        .await
        .expect("register")
        .into_inner();
    assert!(!response.token.is_empty());
    (response.participant_id, response.token)
}

/// Accredits an organization (for every service category): what it needs before it may list,
/// offer, host time credits or redeem.
pub async fn accredit(clients: &mut Clients, operator: &str, organization: u32) {
    let request = pb::SetAccreditationRequest {
        request_id: request_id(),
        organization_id: organization,
        accredited: true,
    };
    clients
        .registry
        .set_accreditation(with_token(request, operator))
        .await
        .expect("accredit");
}

/// Registers an organization and accredits it; returns its id and bearer token.
pub async fn register_accredited(
    clients: &mut Clients,
    operator: &str,
    name: &str,
) -> (u32, String) {
    let organization = register(clients, operator, pb::Role::Organization, name).await;
    accredit(clients, operator, organization.0).await;
    organization
}

/// Credits cash from the bank rails; returns the balance after.
pub async fn deposit(
    clients: &mut Clients,
    operator: &str,
    participant: u32,
    amount: &str,
) -> String {
    let request = pb::DepositRequest {
        request_id: request_id(),
        participant_id: participant,
        amount: amount.to_string(),
    };
    clients
        .accounts
        .deposit(with_token(request, operator))
        .await
        .expect("deposit")
        .into_inner()
        .balance
}

/// A community share of `issuer` with a tick of 0.01, a lot of 1, par 10.00 and a 5 % cap. Accrual
/// runs from the first issue, moments before a test trades: the ceiling is par.
pub fn share(symbol: &str, issuer: u32) -> pb::ListInstrumentRequest {
    pb::ListInstrumentRequest {
        request_id: request_id(),
        symbol: symbol.to_string(),
        kind: pb::InstrumentKind::CommunityShare as i32,
        issuer_id: issuer,
        tick_size: "0.01".into(),
        lot_size: "1".into(),
        par: "10.00".into(),
        return_cap: "0.05".into(),
        ..Default::default()
    }
}

/// A community bond of `issuer` with a tick of 0.05, a lot of 10 units, par 100.00 and a 4 % cap,
/// maturing in five years.
pub fn bond(symbol: &str, issuer: u32) -> pb::ListInstrumentRequest {
    let now = now_ns();
    pb::ListInstrumentRequest {
        request_id: request_id(),
        symbol: symbol.to_string(),
        kind: pb::InstrumentKind::CommunityBond as i32,
        issuer_id: issuer,
        tick_size: "0.05".into(),
        lot_size: "10".into(),
        par: "100.00".into(),
        return_cap: "0.04".into(),
        maturity_time_ns: Some(now + 5 * YEAR_NS),
        ..Default::default()
    }
}

/// Lists an instrument; returns its id.
pub async fn list(
    clients: &mut Clients,
    operator: &str,
    request: pb::ListInstrumentRequest,
) -> u32 {
    clients
        .registry
        .list_instrument(with_token(request, operator))
        .await
        .expect("list instrument")
        .into_inner()
        .instrument_id
}

pub async fn open_trading(clients: &mut Clients, operator: &str, instrument: u32) {
    let request = pb::SetTradingStatusRequest {
        request_id: request_id(),
        instrument: by_id(instrument),
        open: true,
    };
    clients
        .registry
        .set_trading_status(with_token(request, operator))
        .await
        .expect("open trading");
}

/// Runs a whole offering at par: the issuer opens it, each (token, quantity) subscribes, the
/// issuer closes it. Asserts that the units were issued; returns the offering id.
pub async fn run_offering(
    clients: &mut Clients,
    issuer: &str,
    instrument: u32,
    quantity: &str,
    minimum: &str,
    subscribers: &[(&str, &str)],
) -> u32 {
    let offering = open_offering(clients, issuer, instrument, quantity, minimum).await;
    for (token, wanted) in subscribers {
        subscribe(clients, token, offering, wanted).await;
    }
    let close = pb::CloseOfferingRequest {
        request_id: request_id(),
        offering_id: offering,
    };
    let closed = clients
        .registry
        .close_offering(with_token(close, issuer))
        .await
        .expect("close offering")
        .into_inner();
    assert!(closed.issued, "the offering met its minimum");
    offering
}

pub async fn open_offering(
    clients: &mut Clients,
    issuer: &str,
    instrument: u32,
    quantity: &str,
    minimum: &str,
) -> u32 {
    let open = pb::OpenOfferingRequest {
        request_id: request_id(),
        instrument: by_id(instrument),
        quantity: quantity.to_string(),
        minimum_quantity: minimum.to_string(),
    };
    clients
        .registry
        .open_offering(with_token(open, issuer))
        .await
        .expect("open offering")
        .into_inner()
        .offering_id
}

/// Subscribes; returns the cash reserved.
pub async fn subscribe(
    clients: &mut Clients,
    token: &str,
    offering: u32,
    quantity: &str,
) -> String {
    let request = pb::SubscribeRequest {
        request_id: request_id(),
        offering_id: offering,
        quantity: quantity.to_string(),
    };
    clients
        .registry
        .subscribe(with_token(request, token))
        .await
        .expect("subscribe")
        .into_inner()
        .cash_reserved
}

/// A good-till-cancelled limit order.
pub fn limit(
    instrument: u32,
    side: pb::Side,
    price: &str,
    quantity: &str,
) -> pb::PlaceOrderRequest {
    pb::PlaceOrderRequest {
        request_id: request_id(),
        instrument: by_id(instrument),
        side: side as i32,
        price: price.to_string(),
        quantity: quantity.to_string(),
        time_in_force: pb::TimeInForce::GoodTillCancelled as i32,
        self_trade_prevention: pb::SelfTradePrevention::Unspecified as i32,
    }
}

pub async fn place(
    clients: &mut Clients,
    token: &str,
    order: pb::PlaceOrderRequest,
) -> pb::PlaceOrderResponse {
    clients
        .exchange
        .place_order(with_token(order, token))
        .await
        .expect("place order")
        .into_inner()
}

// ---- Reads ----

pub async fn balances(
    clients: &mut Clients,
    token: &str,
    participant: Option<u32>,
) -> pb::Balances {
    let request = pb::GetBalancesRequest {
        participant_id: participant,
    };
    clients
        .accounts
        .get_balances(with_token(request, token))
        .await
        .expect("balances")
        .into_inner()
}

/// The journal's last record, as the audit feed's chain head reports it.
pub async fn last_sequence(c: &mut Clients, reader: &str) -> u64 {
    c.audit
        .chain_head(with_token(pb::ChainHeadRequest { sequence: 0 }, reader))
        .await
        .expect("chain head")
        .into_inner()
        .last_sequence
}

/// The holding in `instrument`, if any.
pub async fn holding(clients: &mut Clients, token: &str, instrument: u32) -> Option<pb::Holding> {
    let request = pb::GetHoldingsRequest {
        participant_id: None,
    };
    let holdings = clients
        .accounts
        .get_holdings(with_token(request, token))
        .await
        .expect("holdings")
        .into_inner();
    holdings
        .holdings
        .into_iter()
        .find(|holding| holding.instrument_id == instrument)
}

pub async fn orders(clients: &mut Clients, token: &str) -> Vec<pb::Order> {
    let request = pb::ListOrdersRequest {
        participant_id: None,
    };
    clients
        .exchange
        .list_orders(with_token(request, token))
        .await
        .expect("list orders")
        .into_inner()
        .orders
}

pub async fn book(clients: &mut Clients, instrument: u32) -> pb::Book {
    let request = pb::GetBookRequest {
        instrument: by_id(instrument),
        depth: 0,
    };
    clients
        .market_data
        .get_book(request)
        .await
        .expect("book")
        .into_inner()
}

/// (price, quantity, orders) per level, best first: easy to compare inline.
pub fn levels(levels: &[pb::Level]) -> Vec<(&str, &str, u32)> {
    levels
        .iter()
        .map(|level| (level.price.as_str(), level.quantity.as_str(), level.orders))
        .collect()
}

/// The engine reason code a status carries in its `mutua-reason-code` trailer.
pub fn reason_code(status: &tonic::Status) -> Option<u16> {
    status
        .metadata()
        .get("mutua-reason-code")?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Every `Service.Method` of `mutua.v1`, read from the descriptor the server reflects, so that a
/// table of RPCs can prove it covers them all.
pub fn every_rpc() -> Vec<String> {
    use prost::Message as _;
    let descriptors = prost_types::FileDescriptorSet::decode(mutua_gateway::FILE_DESCRIPTOR_SET)
        .expect("the compiled descriptor set decodes");
    let mut rpcs = Vec::new();
    for file in descriptors
        .file
        .iter()
        .filter(|file| file.package() == "mutua.v1")
    {
        for service in &file.service {
            for method in &service.method {
                rpcs.push(format!("{}.{}", service.name(), method.name()));
            }
        }
    }
    rpcs
}
