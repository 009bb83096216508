//! The `mutua` command line: `mutua serve` runs the exchange, `mutua load` drives it, and every
//! other subcommand is a small gRPC client, so a person can run a whole market from a shell.

mod audit;
mod governance;
pub mod history;
mod load;
mod social;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mutua_engine::calendar;
use tonic::transport::Channel;
use tonic::{Request, Status};

use crate::pb;
use crate::server::ServeArgs;
use load::LoadArgs;

#[derive(Parser, Debug)]
#[command(name = "mutua", version, about = "Mutua, the social market exchange")]
pub struct Cli {
    /// The exchange to talk to: `host:port` or `http://host:port`.
    #[arg(
        long,
        global = true,
        env = "MUTUA_SERVER",
        default_value = "127.0.0.1:50051"
    )]
    pub server: String,
    /// Bearer token of the participant acting (the operator's is printed by the first `serve`).
    /// Prefer `MUTUA_TOKEN` or `--token-file`: a token on the command line is visible to others
    /// in the process list.
    #[arg(long, global = true, env = "MUTUA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM certificate of the authority that signed the server's TLS certificate: talk TLS.
    #[arg(long, global = true, env = "MUTUA_TLS_CA")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// A file holding the bearer token (for example `data/operator.token`); `--token` wins when
    /// both are given.
    #[arg(long, global = true, env = "MUTUA_TOKEN_FILE")]
    pub token_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the exchange.
    Serve(ServeArgs),
    /// Replay a stopped exchange's journal from genesis, checking every record and snapshot.
    Verify(crate::server::VerifyArgs),
    /// Generate load: many connections placing crossing orders, then print throughput and latency.
    Load(LoadArgs),
    /// Participants: register, accredit.
    #[command(subcommand)]
    Participant(ParticipantCommand),
    /// Operator: credit cash that arrived from the bank rails.
    Deposit(CashArgs),
    /// Operator: debit cash leaving to the bank rails.
    Withdraw(CashArgs),
    /// Instruments: list, add, show, open or halt trading.
    #[command(subcommand)]
    Instrument(InstrumentCommand),
    /// Primary offerings (at par, or the accrued value for a follow-on): open, subscribe, close.
    #[command(subcommand)]
    Offering(OfferingCommand),
    /// Orders: place, cancel, reduce, list, show.
    #[command(subcommand)]
    Order(OrderCommand),
    /// An instrument's order book depth (public).
    Book {
        /// Symbol, or `#<id>` for an instrument id (a symbol of digits is still a symbol).
        instrument: String,
        /// Price levels per side.
        #[arg(long, default_value_t = 10)]
        depth: u32,
        /// Keep printing the book after every change.
        #[arg(long)]
        follow: bool,
    },
    /// Cash balance, reserved and free.
    Balances(AccountArgs),
    /// Units held per instrument.
    Holdings(AccountArgs),
    /// Tax credits earned by primary purchases.
    TaxCredits {
        #[command(flatten)]
        account: AccountArgs,
        /// Only this calendar year.
        #[arg(long)]
        year: Option<i32>,
    },
    /// Issuer: pay a distribution per unit to every holder.
    Distribute {
        /// Symbol, or `#<id>` for an instrument id (a symbol of digits is still a symbol).
        instrument: String,
        /// Cash per unit held.
        #[arg(long)]
        per_unit: String,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Issuer: repay a matured bond or note at par.
    Repay {
        /// Symbol, or `#<id>` for an instrument id (a symbol of digits is still a symbol).
        instrument: String,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Stream trades as they happen (public); with `--from`, every trade from that journal
    /// record on first, then on as they happen.
    Trades {
        /// Only this instrument (symbol, or `#<id>`); all when absent.
        instrument: Option<String>,
        /// Start with the trades of this journal record (1: every trade ever).
        #[arg(long)]
        from: Option<u64>,
    },
    /// Operator: bearer tokens (list, issue, revoke).
    #[command(subcommand)]
    Token(TokenCommand),
    /// An organization's members: every holder of a unit of its community shares.
    Members {
        /// The organization (regulator and operator); the caller's own when absent.
        #[arg(long)]
        organization: Option<u32>,
    },
    /// Resolutions put to members, one member one vote: propose, vote, close, show, list.
    #[command(subcommand)]
    Resolution(governance::ResolutionCommand),
    /// Withdrawable shares: give notice, cancel, complete, list; issuers suspend or resume.
    #[command(subcommand)]
    Withdrawal(governance::WithdrawalCommand),
    /// Vouchers: funders define packages and issue; beneficiaries redeem; show, totals.
    #[command(subcommand)]
    Voucher(social::VoucherCommand),
    /// Service value: holders redeem an instrument's service value at accredited organizations.
    #[command(subcommand)]
    Service(social::ServiceCommand),
    /// Time credits: record volunteer time, transfer, spend, donate, grant, balance.
    #[command(subcommand)]
    Time(social::TimeCommand),
    /// The collective pool: contribute, repay, net (operator), show, account, surplus.
    #[command(subcommand)]
    Pool(social::PoolCommand),
    /// Regulator or operator: follow the audit feed (JSON lines, resumable) or verify a saved one.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Your own history (a regulator or operator: anyone's): orders in every state, fills, cash
    /// movements, activity.
    #[command(subcommand)]
    History(history::HistoryCommand),
    /// A calendar year's statement: purchases, sales, distributions, tax credits, cash in and
    /// out, vouchers, pool, netting, time credits.
    Statement(history::StatementArgs),
    /// Open market history, no token needed: an instrument's past trades and its bars.
    #[command(subcommand)]
    Market(history::MarketCommand),
    /// Write one UTC day of open data (trades, instrument statistics) as CSV and Parquet.
    Export(history::ExportArgs),
    /// Make a self-signed TLS certificate and key for testing (`serve --tls-cert/--tls-key`,
    /// clients `--tls-ca` the same certificate).
    TestCertificate {
        /// Names the certificate is valid for.
        #[arg(long, default_values_t = ["localhost".to_string(), "127.0.0.1".to_string()])]
        name: Vec<String>,
        /// Directory to write `server.pem` and `server.key` (mode 0600) into.
        #[arg(long, default_value = ".")]
        out: std::path::PathBuf,
    },
    /// Live figures of a running exchange, read from its metrics endpoint.
    Status {
        /// The metrics endpoint (`mutua serve --metrics-listen`).
        #[arg(long, env = "MUTUA_METRICS", default_value = "127.0.0.1:9477")]
        metrics: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Every token issued (never the token itself), live or revoked.
    List {
        /// Only this participant's tokens.
        #[arg(long)]
        participant: Option<u32>,
    },
    /// Issue a new token for a participant and print it (shown this once).
    Issue {
        /// The participant.
        participant: u32,
        /// Revoke every other live token of the participant in the same step.
        #[arg(long)]
        replace: bool,
    },
    /// Revoke a token by its id (`mutua token list` shows ids).
    Revoke {
        /// The token's id.
        token_id: u32,
        #[command(flatten)]
        mutation: Mutation,
    },
}

/// Every mutating command carries a request id; a retry with the same id applies once.
#[derive(Args, Debug, Clone)]
pub struct Mutation {
    /// Client request id; a random one when absent. Reuse it to retry safely.
    #[arg(long)]
    pub request_id: Option<String>,
}

impl Mutation {
    pub(crate) fn id(&self) -> String {
        self.request_id
            .clone()
            .unwrap_or_else(|| format!("cli-{:032x}", rand::random::<u128>()))
    }
}

#[derive(Args, Debug)]
pub struct AccountArgs {
    /// Whose account (regulator and operator only); the caller's own when absent.
    #[arg(long)]
    pub participant: Option<u32>,
}

#[derive(Args, Debug)]
pub struct CashArgs {
    /// The account's participant id.
    #[arg(long)]
    pub account: u32,
    /// Cash, e.g. 250.00.
    #[arg(long)]
    pub amount: String,
    #[command(flatten)]
    pub mutation: Mutation,
}

fn role_of(role: RoleArg) -> pb::Role {
    match role {
        RoleArg::Contributor => pb::Role::Contributor,
        RoleArg::Organization => pb::Role::Organization,
        RoleArg::Funder => pb::Role::Funder,
        RoleArg::Regulator => pb::Role::Regulator,
        RoleArg::Operator => pb::Role::Operator,
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    Contributor,
    Organization,
    Funder,
    Regulator,
    Operator,
}

#[derive(Subcommand, Debug)]
pub enum ParticipantCommand {
    /// Operator: register a participant and print its token.
    Add {
        #[arg(long, value_enum)]
        role: RoleArg,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Operator or regulator: every participant with its role, accreditation and status.
    List {
        /// Only this role (`organization` lists organizations with their accreditation).
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
    },
    /// Regulator or operator: the service categories an organization is accredited for
    /// (none named: every category).
    Categories {
        organization: u32,
        categories: Vec<String>,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Operator: suspend a participant (its orders are cancelled, its tokens refused).
    Suspend {
        /// The participant.
        participant: u32,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Operator: reinstate a suspended participant.
    Reinstate {
        /// The participant.
        participant: u32,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Regulator or operator: accredit an organization (or suspend it with --suspend).
    Accredit {
        organization: u32,
        #[arg(long)]
        suspend: bool,
        #[command(flatten)]
        mutation: Mutation,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KindArg {
    Share,
    Bond,
    Note,
}

#[derive(Subcommand, Debug)]
pub enum InstrumentCommand {
    /// Every listed instrument.
    List,
    /// One instrument's terms and status.
    Show { instrument: String },
    /// Operator: list an instrument for an issuing organization (trading starts halted).
    Add(Box<InstrumentAddArgs>),
    /// Operator: open continuous trading.
    Open {
        instrument: String,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Operator: halt continuous trading.
    Halt {
        instrument: String,
        #[command(flatten)]
        mutation: Mutation,
    },
}

#[derive(Args, Debug)]
pub struct InstrumentAddArgs {
    /// Unique symbol: A-Z, 0-9, '-' or '.', at most 16.
    #[arg(long)]
    pub symbol: String,
    #[arg(long, value_enum, default_value = "share")]
    pub kind: KindArg,
    /// The issuing organization's participant id.
    #[arg(long)]
    pub issuer: u32,
    /// Price increment per unit.
    #[arg(long, default_value = "0.01")]
    pub tick: String,
    /// Units per lot.
    #[arg(long, default_value = "1")]
    pub lot: String,
    /// Par value per unit.
    #[arg(long)]
    pub par: String,
    /// Annual return cap as a fraction (0.05 = 5 %).
    #[arg(long, default_value = "0.05")]
    pub return_cap: String,
    /// Lowest price an order may carry (par for withdrawable shares).
    #[arg(long, default_value = "")]
    pub floor: String,
    /// Maturity of a bond or note, RFC 3339 in UTC (`2031-12-01` or `2031-12-01T12:00:00Z`).
    #[arg(long, value_parser = parse_rfc3339)]
    pub maturity: Option<u64>,
    /// Holding cap per contributor as a fraction; the market default (0.1) when absent.
    #[arg(long)]
    pub holding_cap: Option<String>,
    /// A Co-operative Investment Plan share (5-year lock-in, 30 % tax credit by default).
    #[arg(long)]
    pub cip: bool,
    /// Tax credit rate on primary purchases, as a fraction; the market's rate for the kind
    /// (30 % by default) when absent.
    #[arg(long)]
    pub tax_credit: Option<String>,
    /// Lock-in of acquired units, in whole years to the anniversary (5 for CIP shares by default).
    #[arg(long)]
    pub lock_in_years: Option<u32>,
    /// A withdrawable community share: holders may ask the issuer to buy units back at par.
    #[arg(long)]
    pub withdrawable: bool,
    /// Days of notice before a withdrawal is paid (withdrawable shares).
    #[arg(long, default_value_t = 0)]
    pub notice_days: u32,
    /// Service value per unit per calendar year (e.g. 5.00): what a holder may redeem in services
    /// at accredited organizations. None by default.
    #[arg(long, default_value = "")]
    pub service_value: String,
    #[command(flatten)]
    pub mutation: Mutation,
}

#[derive(Subcommand, Debug)]
pub enum OfferingCommand {
    /// Issuer: offer new units (at par for the first issue, at the accrued value for a follow-on).
    Open {
        instrument: String,
        /// Units offered.
        #[arg(long)]
        quantity: String,
        /// Units that must be subscribed for the offering to issue; all of them when absent.
        #[arg(long)]
        minimum: Option<String>,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Contributor: subscribe to an open offering.
    Subscribe {
        offering: u32,
        #[arg(long)]
        quantity: String,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Issuer: close an offering.
    Close {
        offering: u32,
        #[command(flatten)]
        mutation: Mutation,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SideArg {
    Buy,
    Sell,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TimeInForceArg {
    Gtc,
    Ioc,
    Fok,
}

#[derive(Subcommand, Debug)]
pub enum OrderCommand {
    /// Contributor: place a limit order.
    Place {
        instrument: String,
        #[arg(value_enum)]
        side: SideArg,
        /// Units.
        #[arg(long)]
        quantity: String,
        /// Limit price per unit.
        #[arg(long)]
        price: String,
        #[arg(long, value_enum, default_value = "gtc")]
        tif: TimeInForceArg,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Cancel a resting order.
    Cancel {
        order: u64,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Reduce a resting order by a number of units.
    Reduce {
        order: u64,
        #[arg(long)]
        by: String,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Resting orders.
    List(AccountArgs),
    /// One resting order.
    Show { order: u64 },
}

/// `"COOP-A"` names by symbol, `"3"` by id.
/// `#5` names instrument 5; anything else is a symbol, digits or not ("2030" is a symbol).
pub fn instrument_ref(text: &str) -> pb::InstrumentRef {
    use pb::instrument_ref::Instrument;
    let named = match text.strip_prefix('#').map(str::parse::<u32>) {
        Some(Ok(id)) => Instrument::Id(id),
        _ => Instrument::Symbol(text.to_string()),
    };
    pb::InstrumentRef {
        instrument: Some(named),
    }
}

/// A request carrying the bearer token, if one was given.
pub fn authorized<T>(message: T, token: Option<&str>) -> anyhow::Result<Request<T>> {
    let mut request = Request::new(message);
    if let Some(token) = token {
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| anyhow::anyhow!("--token: not a valid header value"))?;
        request.metadata_mut().insert("authorization", value);
    }
    Ok(request)
}

/// A refused call, as a person reads it.
pub fn status_error(status: Status) -> anyhow::Error {
    match crate::convert::reason_code_of(&status) {
        Some(code) => anyhow::anyhow!(
            "{:?}: {} (reason code {code})",
            status.code(),
            status.message()
        ),
        None => anyhow::anyhow!("{:?}: {}", status.code(), status.message()),
    }
}

/// `host:port` as a URL tonic can dial (`https` when talking TLS); a URL is kept as it is.
pub fn server_url(server: &str, tls: bool) -> String {
    match (server.contains("://"), tls) {
        (true, _) => server.to_string(),
        (false, true) => format!("https://{server}"),
        (false, false) => format!("http://{server}"),
    }
}

/// A channel to `server`, over TLS verified against the CA in `tls_ca` when one is given.
pub async fn connect_with(
    server: &str,
    tls_ca: Option<&std::path::Path>,
) -> anyhow::Result<Channel> {
    let url = server_url(server, tls_ca.is_some());
    let mut endpoint = Channel::from_shared(url.clone())
        .map_err(|error| anyhow::anyhow!("--server {url}: {error}"))?;
    if let Some(ca) = tls_ca {
        let pem = std::fs::read(ca)
            .map_err(|error| anyhow::anyhow!("--tls-ca {}: {error}", ca.display()))?;
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(pem));
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|error| anyhow::anyhow!("--tls-ca: {error}"))?;
    }
    endpoint.tcp_nodelay(true).connect().await.map_err(|error| {
        anyhow::Error::new(error).context(format!("cannot reach the exchange at {url}"))
    })
}

pub async fn connect(server: &str) -> anyhow::Result<Channel> {
    let server = server_url(server, false);
    let endpoint = Channel::from_shared(server.clone())
        .map_err(|error| anyhow::anyhow!("--server {server}: {error}"))?;
    endpoint
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|error| anyhow::anyhow!("cannot reach the exchange at {server}: {error}"))
}

/// A client piped into `head` and the like ends quietly when its reader goes, as command-line
/// tools do, instead of panicking on the failed print.
fn quiet_on_closed_stdout() {
    // SAFETY: restoring a signal's default disposition, before any other thread writes.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Runs one command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if !matches!(cli.command, Command::Serve(_)) {
        quiet_on_closed_stdout();
    }
    let from_file = match (&cli.token_file, &cli.token) {
        (Some(path), None) => Some(
            std::fs::read_to_string(path)
                .map_err(|error| anyhow::anyhow!("--token-file {}: {error}", path.display()))?
                .trim()
                .to_string(),
        ),
        _ => None,
    };
    let token = cli.token.as_deref().or(from_file.as_deref());
    match cli.command {
        Command::Status { metrics } => crate::metrics::print_status(&metrics).await,
        Command::TestCertificate { name, out } => test_certificate(name, &out),
        Command::Serve(args) => crate::server::serve(args).await,
        Command::Verify(args) => crate::server::verify(args),
        Command::Load(args) => load::run(&cli.server, cli.tls_ca.as_deref(), token, args).await,
        Command::Audit(command) => {
            audit::run(&cli.server, cli.tls_ca.as_deref(), token, command).await
        }
        Command::Export(args) => history::export(&cli.server, cli.tls_ca.as_deref(), args).await,
        command => {
            // A client printing into a pipe that closes (`mutua trades | head`) ends quietly,
            // as other command-line tools do, instead of failing to print.
            #[cfg(unix)]
            // SAFETY: signal() only sets the process-wide action of one signal.
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            }
            let (server, tls_ca) = (&cli.server, cli.tls_ca.as_deref());
            match command {
                Command::History(command) => history::history(server, tls_ca, token, command).await,
                Command::Statement(args) => history::statement(server, tls_ca, token, args).await,
                Command::Market(command) => history::market(server, tls_ca, command).await,
                command => {
                    let channel = connect_with(server, tls_ca).await?;
                    client_command(Clients::new(channel), token, command).await
                }
            }
        }
    }
}

pub(crate) struct Clients {
    exchange: pb::exchange_client::ExchangeClient<Channel>,
    accounts: pb::accounts_client::AccountsClient<Channel>,
    registry: pb::registry_client::RegistryClient<Channel>,
    market_data: pb::market_data_client::MarketDataClient<Channel>,
    identity: pb::identity_client::IdentityClient<Channel>,
    membership: pb::membership_client::MembershipClient<Channel>,
    withdrawals: pb::withdrawals_client::WithdrawalsClient<Channel>,
    vouchers: pb::vouchers_client::VouchersClient<Channel>,
    service_value: pb::service_value_client::ServiceValueClient<Channel>,
    time_credits: pb::time_credits_client::TimeCreditsClient<Channel>,
    pool: pb::pool_client::PoolClient<Channel>,
}

impl Clients {
    fn new(channel: Channel) -> Clients {
        Clients {
            exchange: pb::exchange_client::ExchangeClient::new(channel.clone()),
            accounts: pb::accounts_client::AccountsClient::new(channel.clone()),
            registry: pb::registry_client::RegistryClient::new(channel.clone()),
            market_data: pb::market_data_client::MarketDataClient::new(channel.clone()),
            identity: pb::identity_client::IdentityClient::new(channel.clone()),
            membership: pb::membership_client::MembershipClient::new(channel.clone()),
            withdrawals: pb::withdrawals_client::WithdrawalsClient::new(channel.clone()),
            vouchers: pb::vouchers_client::VouchersClient::new(channel.clone()),
            service_value: pb::service_value_client::ServiceValueClient::new(channel.clone()),
            time_credits: pb::time_credits_client::TimeCreditsClient::new(channel.clone()),
            pool: pb::pool_client::PoolClient::new(channel),
        }
    }
}

pub(crate) fn sequence_of(commit: Option<&pb::Commit>) -> String {
    match commit {
        Some(commit) if commit.replayed => format!(
            "sequence {} (a retry: first outcome repeated)",
            commit.sequence
        ),
        Some(commit) => format!("sequence {}", commit.sequence),
        None => "sequence unknown".to_string(),
    }
}

async fn client_command(
    mut clients: Clients,
    token: Option<&str>,
    command: Command,
) -> anyhow::Result<()> {
    match command {
        Command::Serve(_) | Command::Verify(_) | Command::Load(_) => {
            unreachable!("dispatched by `run`")
        }
        Command::Participant(command) => participant(&mut clients, token, command).await?,
        Command::Deposit(args) => {
            let message = pb::DepositRequest {
                request_id: args.mutation.id(),
                participant_id: args.account,
                amount: args.amount,
            };
            let reply = clients
                .accounts
                .deposit(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "deposited; balance {} ({})",
                reply.balance,
                sequence_of(reply.commit.as_ref())
            );
        }
        Command::Withdraw(args) => {
            let message = pb::WithdrawRequest {
                request_id: args.mutation.id(),
                participant_id: args.account,
                amount: args.amount,
            };
            let reply = clients
                .accounts
                .withdraw(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "withdrawn; balance {} ({})",
                reply.balance,
                sequence_of(reply.commit.as_ref())
            );
        }
        Command::Instrument(command) => instrument(&mut clients, token, command).await?,
        Command::Offering(command) => offering(&mut clients, token, command).await?,
        Command::Order(command) => order(&mut clients, token, command).await?,
        Command::Book {
            instrument,
            depth,
            follow,
        } => book(&mut clients, &instrument, depth, follow).await?,
        Command::Balances(account) => {
            let message = pb::GetBalancesRequest {
                participant_id: account.participant,
            };
            let reply = clients
                .accounts
                .get_balances(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "participant {}: balance {}  reserved {}  free {}",
                reply.participant_id, reply.balance, reply.reserved, reply.free
            );
        }
        Command::Holdings(account) => {
            let message = pb::GetHoldingsRequest {
                participant_id: account.participant,
            };
            let reply = clients
                .accounts
                .get_holdings(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!("participant {}:", reply.participant_id);
            for holding in reply.holdings {
                println!(
                    "  {:<16} held {:>12}  free {:>12}  reserved {:>10}  locked {:>10}  buying {:>10}  subscribed {:>10}",
                    holding.symbol,
                    holding.quantity,
                    holding.free_quantity,
                    holding.reserved_quantity,
                    holding.locked_quantity,
                    holding.open_buy_quantity,
                    holding.subscribed_quantity
                );
            }
        }
        Command::TaxCredits { account, year } => {
            let message = pb::GetTaxCreditsRequest {
                participant_id: account.participant,
                year,
            };
            let reply = clients
                .accounts
                .get_tax_credits(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "participant {}: total credit {}",
                reply.participant_id, reply.total_credit
            );
            for credit in reply.credits {
                println!(
                    "  {:<16} at {}: purchase {} × rate {} = credit {}",
                    credit.symbol,
                    rfc3339(credit.time_ns),
                    credit.purchase,
                    credit.rate,
                    credit.credit
                );
            }
        }
        Command::Distribute {
            instrument,
            per_unit,
            mutation,
        } => {
            let message = pb::PayDistributionRequest {
                request_id: mutation.id(),
                instrument: Some(instrument_ref(&instrument)),
                amount_per_unit: per_unit,
            };
            let reply = clients
                .registry
                .pay_distribution(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "paid {} over {} units ({})",
                reply.total,
                reply.outstanding_quantity,
                sequence_of(reply.commit.as_ref())
            );
        }
        Command::Repay {
            instrument,
            mutation,
        } => {
            let message = pb::RepayAtMaturityRequest {
                request_id: mutation.id(),
                instrument: Some(instrument_ref(&instrument)),
            };
            let reply = clients
                .registry
                .repay_at_maturity(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "repaid {} and retired {} units ({})",
                reply.repaid,
                reply.retired_quantity,
                sequence_of(reply.commit.as_ref())
            );
        }
        Command::Trades { instrument, from } => {
            let message = pb::StreamTradesRequest {
                instrument: instrument.as_deref().map(instrument_ref),
                from_sequence: from,
            };
            let mut trades = clients
                .market_data
                .stream_trades(message)
                .await
                .map_err(status_error)?
                .into_inner();
            while let Some(trade) = trades.message().await.map_err(status_error)? {
                let side = if trade.taker_side == pb::Side::Sell as i32 {
                    "sell"
                } else {
                    "buy"
                };
                println!(
                    "#{} {:<16} {:>10} @ {:>10} = {:>12}  taker {side}  (maker order {}, taker order {})",
                    trade.sequence, trade.symbol, trade.quantity, trade.price, trade.notional, trade.maker_order_id, trade.taker_order_id
                );
            }
        }
        Command::Token(command) => tokens(&mut clients, token, command).await?,
        Command::Members { organization } => {
            governance::members(&mut clients, token, organization).await?
        }
        Command::Resolution(command) => {
            governance::resolution(&mut clients, token, command).await?
        }
        Command::Withdrawal(command) => {
            governance::withdrawal(&mut clients, token, command).await?
        }
        Command::Voucher(command) => social::voucher(&mut clients, token, command).await?,
        Command::Service(command) => social::service(&mut clients, token, command).await?,
        Command::Time(command) => social::time(&mut clients, token, command).await?,
        Command::Pool(command) => social::pool(&mut clients, token, command).await?,
        Command::Status { .. }
        | Command::TestCertificate { .. }
        | Command::Audit(_)
        | Command::History(_)
        | Command::Statement(_)
        | Command::Market(_)
        | Command::Export(_) => {
            unreachable!("dispatched by `run`")
        }
    }
    Ok(())
}

/// Writes a self-signed certificate for `names` and its key into `out`, both private.
fn test_certificate(names: Vec<String>, out: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write;
    let certified = rcgen::generate_simple_self_signed(names.clone())
        .map_err(|error| anyhow::anyhow!("making the certificate: {error}"))?;
    std::fs::create_dir_all(out)?;
    for (file, text) in [
        ("server.pem", certified.cert.pem()),
        ("server.key", certified.signing_key.serialize_pem()),
    ] {
        let path = out.join(file);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options
            .open(&path)
            .and_then(|mut opened| opened.write_all(text.as_bytes()))
            .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
    }
    println!(
        "wrote {} and {} for {}",
        out.join("server.pem").display(),
        out.join("server.key").display(),
        names.join(", ")
    );
    Ok(())
}

/// An RFC 3339 UTC date or time (`2031-12-01`, `2031-12-01T12:30:00Z`) as nanoseconds since the
/// Unix epoch.
pub fn parse_rfc3339(text: &str) -> Result<u64, String> {
    let wrong = || {
        format!("{text:?} is not an RFC 3339 UTC time such as 2031-12-01 or 2031-12-01T12:30:00Z")
    };
    let (date, time) = match text.split_once('T') {
        Some((date, time)) => (date, time.strip_suffix('Z').ok_or_else(wrong)?),
        None => (text, "00:00:00"),
    };
    let numbers = |part: &str, separator: char| -> Result<Vec<i64>, String> {
        part.split(separator)
            .map(|number| number.parse::<i64>().map_err(|_| wrong()))
            .collect()
    };
    let (date, time) = (numbers(date, '-')?, numbers(time, ':')?);
    let [year, month, day] = <[i64; 3]>::try_from(date).map_err(|_| wrong())?;
    let [hour, minute, second] = <[i64; 3]>::try_from(time).map_err(|_| wrong())?;
    if !(1970..=2500).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(wrong());
    }
    let days = calendar::days_from_date(calendar::Date {
        year,
        month: month as u32,
        day: day as u32,
    });
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
    let formatted = rfc3339(seconds as u64 * 1_000_000_000);
    if !formatted.starts_with(&format!("{year:04}-{month:02}-{day:02}")) {
        return Err(wrong());
    }
    Ok(seconds as u64 * 1_000_000_000)
}

/// Nanoseconds since the Unix epoch as an RFC 3339 UTC time, to the second.
pub(crate) fn rfc3339(nanoseconds: u64) -> String {
    let of_day = nanoseconds / 1_000_000_000 % 86_400;
    let date = calendar::date_of(nanoseconds);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        date.year,
        date.month,
        date.day,
        of_day / 3_600,
        of_day % 3_600 / 60,
        of_day % 60
    )
}

async fn set_status(
    clients: &mut Clients,
    token: Option<&str>,
    participant: u32,
    suspended: bool,
    mutation: Mutation,
) -> anyhow::Result<()> {
    let message = pb::SetParticipantStatusRequest {
        request_id: mutation.id(),
        participant_id: participant,
        suspended,
    };
    let reply = clients
        .identity
        .set_participant_status(authorized(message, token)?)
        .await
        .map_err(status_error)?
        .into_inner();
    let what = if suspended {
        "suspended: its orders are cancelled and its tokens refused"
    } else {
        "reinstated"
    };
    println!(
        "participant {participant} {what} ({})",
        sequence_of(reply.commit.as_ref())
    );
    Ok(())
}

async fn tokens(
    clients: &mut Clients,
    token: Option<&str>,
    command: TokenCommand,
) -> anyhow::Result<()> {
    match command {
        TokenCommand::List { participant } => {
            let message = pb::ListTokensRequest {
                participant_id: participant,
                ..Default::default()
            };
            let reply = clients
                .identity
                .list_tokens(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            for listed in reply.tokens {
                let state = listed.revoked_at_ns.map_or("live".to_string(), |revoked| {
                    format!("revoked {}", rfc3339(revoked))
                });
                println!(
                    "token {:>6}  participant {:>6}  issued {}  {state}",
                    listed.token_id,
                    listed.participant_id,
                    rfc3339(listed.issued_at_ns)
                );
            }
        }
        TokenCommand::Issue {
            participant,
            replace,
        } => {
            let message = pb::IssueTokenRequest {
                participant_id: participant,
                replace_existing: replace,
            };
            let reply = clients
                .identity
                .issue_token(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            let replaced = if replace {
                ", every other token of the participant revoked"
            } else {
                ""
            };
            println!(
                "token {} issued for participant {participant}{replaced} ({})",
                reply.token_id,
                sequence_of(reply.commit.as_ref())
            );
            println!("token: {}", reply.token);
        }
        TokenCommand::Revoke { token_id, mutation } => {
            let message = pb::RevokeTokenRequest {
                request_id: mutation.id(),
                token_id,
            };
            let reply = clients
                .identity
                .revoke_token(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "token {token_id} revoked ({})",
                sequence_of(reply.commit.as_ref())
            );
        }
    }
    Ok(())
}

async fn participant(
    clients: &mut Clients,
    token: Option<&str>,
    command: ParticipantCommand,
) -> anyhow::Result<()> {
    match command {
        ParticipantCommand::Add {
            role,
            name,
            mutation,
        } => {
            let role = role_of(role);
            let message = pb::RegisterParticipantRequest {
                request_id: mutation.id(),
                role: role as i32,
                name,
            };
            let reply = clients
                .registry
                .register_participant(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "participant {} registered ({})",
                reply.participant_id,
                sequence_of(reply.commit.as_ref())
            );
            println!("token: {}", reply.token);
        }
        ParticipantCommand::List { role } => {
            let message = pb::ListParticipantsRequest {
                role: role.map_or(pb::Role::Unspecified, role_of) as i32,
                ..Default::default()
            };
            let reply = clients
                .identity
                .list_participants(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            for row in reply.participants {
                let role = pb::Role::try_from(row.role)
                    .map_or("unknown", |role| role.as_str_name())
                    .trim_start_matches("ROLE_")
                    .to_lowercase();
                let accredited = match (row.accredited, row.accredited_categories.is_empty()) {
                    (false, _) => String::new(),
                    (true, true) => "  accredited".to_string(),
                    (true, false) => {
                        format!("  accredited for {}", row.accredited_categories.join(", "))
                    }
                };
                let suspended = if row.suspended { "  SUSPENDED" } else { "" };
                println!(
                    "#{:<6} {role:<12} {:<32} {} live tokens{accredited}{suspended}",
                    row.participant_id, row.name, row.live_tokens
                );
            }
        }
        ParticipantCommand::Suspend {
            participant,
            mutation,
        } => set_status(clients, token, participant, true, mutation).await?,
        ParticipantCommand::Reinstate {
            participant,
            mutation,
        } => set_status(clients, token, participant, false, mutation).await?,
        ParticipantCommand::Categories {
            organization,
            categories,
            mutation,
        } => {
            let message = pb::SetAccreditedCategoriesRequest {
                request_id: mutation.id(),
                organization_id: organization,
                categories: categories.clone(),
            };
            let reply = clients
                .registry
                .set_accredited_categories(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            let which = if categories.is_empty() {
                "every category".to_string()
            } else {
                categories.join(", ")
            };
            println!(
                "organization {organization} accredited for {which} ({})",
                sequence_of(reply.commit.as_ref())
            );
        }
        ParticipantCommand::Accredit {
            organization,
            suspend,
            mutation,
        } => {
            let message = pb::SetAccreditationRequest {
                request_id: mutation.id(),
                organization_id: organization,
                accredited: !suspend,
            };
            let reply = clients
                .registry
                .set_accreditation(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            let what = if suspend { "suspended" } else { "accredited" };
            println!(
                "organization {organization} {what} ({})",
                sequence_of(reply.commit.as_ref())
            );
        }
    }
    Ok(())
}

fn print_instrument(instrument: &pb::Instrument) {
    let kind = match pb::InstrumentKind::try_from(instrument.kind) {
        Ok(pb::InstrumentKind::CommunityBond) => "bond",
        Ok(pb::InstrumentKind::CommunityInvestmentNote) => "note",
        _ => "share",
    };
    let trading = if instrument.matured {
        "matured"
    } else if instrument.trading_open {
        "trading"
    } else {
        "halted"
    };
    println!(
        "#{} {:<16} {kind:<5} issuer {}  par {}  tick {}  lot {}  band {}..{}  cap {}  outstanding {}  {trading}{}",
        instrument.instrument_id,
        instrument.symbol,
        instrument.issuer_id,
        instrument.par,
        instrument.tick_size,
        instrument.lot_size,
        instrument.price_floor,
        instrument.price_ceiling,
        instrument.return_cap,
        instrument.outstanding_quantity,
        instrument.open_offering_id.map(|offering| format!("  offering {offering} open")).unwrap_or_default()
    );
}

/// Every term of an instrument, one per line, for `instrument show`.
fn print_terms(instrument: &pb::Instrument) {
    let lock_in = match instrument.lock_in_years {
        0 => "none".to_string(),
        1 => "1 year, to the anniversary".to_string(),
        years => format!("{years} years, to the anniversary"),
    };
    let withdrawals = match (instrument.withdrawable, instrument.withdrawals_suspended) {
        (false, _) => "no".to_string(),
        (true, false) => format!(
            "at par, after {} days' notice",
            instrument.withdrawal_notice_days
        ),
        (true, true) => format!(
            "at par, after {} days' notice; suspended by the issuer",
            instrument.withdrawal_notice_days
        ),
    };
    let rows = [
        ("issuer", format!("participant {}", instrument.issuer_id)),
        (
            "first issue",
            instrument
                .first_issue_time_ns
                .map_or("none yet (accrual starts there)".to_string(), rfc3339),
        ),
        (
            "maturity",
            instrument
                .maturity_time_ns
                .map_or("none (a share never matures)".to_string(), rfc3339),
        ),
        ("par", instrument.par.clone()),
        ("annual return cap", instrument.return_cap.clone()),
        ("accrued value now", instrument.accrued_value.clone()),
        (
            "distributed per unit",
            instrument.distributed_per_unit.clone(),
        ),
        (
            "price band now",
            format!("{} to {}", instrument.price_floor, instrument.price_ceiling),
        ),
        ("next offering price", instrument.offering_price.clone()),
        (
            "holding cap per contributor",
            instrument.holding_cap.clone(),
        ),
        (
            "co-operative investment plan",
            if instrument.cooperative_investment_plan {
                "yes".into()
            } else {
                "no".into()
            },
        ),
        ("lock-in of acquired units", lock_in),
        ("withdrawals", withdrawals),
        (
            "service value",
            if instrument.service_value.is_empty() || instrument.service_value == "0" {
                "none".to_string()
            } else {
                format!("{} a unit a calendar year", instrument.service_value)
            },
        ),
        (
            "tax credit on primary purchases",
            instrument.tax_credit_rate.clone(),
        ),
        (
            "issued / outstanding",
            format!(
                "{} / {}",
                instrument.issued_quantity, instrument.outstanding_quantity
            ),
        ),
    ];
    for (term, value) in rows {
        println!("  {term:<32} {value}");
    }
}

async fn instrument(
    clients: &mut Clients,
    token: Option<&str>,
    command: InstrumentCommand,
) -> anyhow::Result<()> {
    match command {
        InstrumentCommand::List => {
            let reply = clients
                .registry
                .list_instruments(authorized(pb::ListInstrumentsRequest {}, token)?)
                .await
                .map_err(status_error)?;
            for instrument in &reply.get_ref().instruments {
                print_instrument(instrument);
            }
        }
        InstrumentCommand::Show { instrument } => {
            let message = pb::GetInstrumentRequest {
                instrument: Some(instrument_ref(&instrument)),
            };
            let reply = clients
                .registry
                .get_instrument(authorized(message, token)?)
                .await
                .map_err(status_error)?;
            print_instrument(reply.get_ref());
            print_terms(reply.get_ref());
        }
        InstrumentCommand::Add(args) => {
            let kind = match args.kind {
                KindArg::Share => pb::InstrumentKind::CommunityShare,
                KindArg::Bond => pb::InstrumentKind::CommunityBond,
                KindArg::Note => pb::InstrumentKind::CommunityInvestmentNote,
            };
            let message = pb::ListInstrumentRequest {
                request_id: args.mutation.id(),
                symbol: args.symbol,
                kind: kind as i32,
                issuer_id: args.issuer,
                tick_size: args.tick,
                lot_size: args.lot,
                par: args.par,
                return_cap: args.return_cap,
                price_floor: args.floor,
                issue_time_ns: None,
                maturity_time_ns: args.maturity,
                holding_cap: args.holding_cap,
                cooperative_investment_plan: args.cip,
                lock_in_ns: None,
                tax_credit_rate: args.tax_credit,
                lock_in_years: args.lock_in_years,
                withdrawable: args.withdrawable,
                withdrawal_notice_days: args.notice_days,
                service_value: args.service_value,
            };
            let reply = clients
                .registry
                .list_instrument(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "instrument {} listed, trading halted ({})",
                reply.instrument_id,
                sequence_of(reply.commit.as_ref())
            );
        }
        InstrumentCommand::Open {
            instrument,
            mutation,
        } => set_trading(clients, token, &instrument, mutation, true).await?,
        InstrumentCommand::Halt {
            instrument,
            mutation,
        } => set_trading(clients, token, &instrument, mutation, false).await?,
    }
    Ok(())
}

async fn set_trading(
    clients: &mut Clients,
    token: Option<&str>,
    instrument: &str,
    mutation: Mutation,
    open: bool,
) -> anyhow::Result<()> {
    let message = pb::SetTradingStatusRequest {
        request_id: mutation.id(),
        instrument: Some(instrument_ref(instrument)),
        open,
    };
    let reply = clients
        .registry
        .set_trading_status(authorized(message, token)?)
        .await
        .map_err(status_error)?
        .into_inner();
    let what = if open { "open" } else { "halted" };
    println!(
        "{instrument}: trading {what} ({})",
        sequence_of(reply.commit.as_ref())
    );
    Ok(())
}

async fn offering(
    clients: &mut Clients,
    token: Option<&str>,
    command: OfferingCommand,
) -> anyhow::Result<()> {
    match command {
        OfferingCommand::Open {
            instrument,
            quantity,
            minimum,
            mutation,
        } => {
            let message = pb::OpenOfferingRequest {
                request_id: mutation.id(),
                instrument: Some(instrument_ref(&instrument)),
                minimum_quantity: minimum.unwrap_or_else(|| quantity.clone()),
                quantity,
            };
            let reply = clients
                .registry
                .open_offering(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "offering {} open at {} per unit ({})",
                reply.offering_id,
                reply.price,
                sequence_of(reply.commit.as_ref())
            );
        }
        OfferingCommand::Subscribe {
            offering,
            quantity,
            mutation,
        } => {
            let message = pb::SubscribeRequest {
                request_id: mutation.id(),
                offering_id: offering,
                quantity,
            };
            let reply = clients
                .registry
                .subscribe(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "subscribed; {} reserved ({})",
                reply.cash_reserved,
                sequence_of(reply.commit.as_ref())
            );
        }
        OfferingCommand::Close { offering, mutation } => {
            let message = pb::CloseOfferingRequest {
                request_id: mutation.id(),
                offering_id: offering,
            };
            let reply = clients
                .registry
                .close_offering(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            if reply.issued {
                println!(
                    "offering {offering} closed: {} units issued for {} ({})",
                    reply.subscribed_quantity,
                    reply.proceeds,
                    sequence_of(reply.commit.as_ref())
                );
            } else {
                println!("offering {offering} closed below its minimum: every subscription released ({})", sequence_of(reply.commit.as_ref()));
            }
        }
    }
    Ok(())
}

fn print_order(order: &pb::Order) {
    let side = if order.side == pb::Side::Sell as i32 {
        "sell"
    } else {
        "buy"
    };
    println!(
        "order {} {:<16} {side:<4} {:>10} of {:>10} @ {:>10}  (participant {})",
        order.order_id,
        order.symbol,
        order.remaining_quantity,
        order.original_quantity,
        order.price,
        order.owner_id
    );
}

async fn order(
    clients: &mut Clients,
    token: Option<&str>,
    command: OrderCommand,
) -> anyhow::Result<()> {
    match command {
        OrderCommand::Place {
            instrument,
            side,
            quantity,
            price,
            tif,
            mutation,
        } => {
            let side = match side {
                SideArg::Buy => pb::Side::Buy,
                SideArg::Sell => pb::Side::Sell,
            };
            let time_in_force = match tif {
                TimeInForceArg::Gtc => pb::TimeInForce::GoodTillCancelled,
                TimeInForceArg::Ioc => pb::TimeInForce::ImmediateOrCancel,
                TimeInForceArg::Fok => pb::TimeInForce::FillOrKill,
            };
            let message = pb::PlaceOrderRequest {
                request_id: mutation.id(),
                instrument: Some(instrument_ref(&instrument)),
                side: side as i32,
                price,
                quantity,
                time_in_force: time_in_force as i32,
                self_trade_prevention: pb::SelfTradePrevention::Unspecified as i32,
            };
            let reply = clients
                .exchange
                .place_order(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            let status = match pb::OrderStatus::try_from(reply.status) {
                Ok(pb::OrderStatus::Resting) => format!("resting {}", reply.remaining_quantity),
                Ok(pb::OrderStatus::Filled) => "filled".to_string(),
                Ok(pb::OrderStatus::Cancelled) => "remainder cancelled".to_string(),
                Ok(pb::OrderStatus::Killed) => {
                    "killed: a fill-or-kill order could not trade in full, nothing traded"
                        .to_string()
                }
                _ => "see `mutua order show`".to_string(),
            };
            println!(
                "order {}: {status} ({})",
                reply.order_id,
                sequence_of(reply.commit.as_ref())
            );
            for fill in reply.fills {
                println!(
                    "  filled {} @ {} = {} against order {}",
                    fill.quantity, fill.price, fill.notional, fill.maker_order_id
                );
            }
        }
        OrderCommand::Cancel { order, mutation } => {
            let message = pb::CancelOrderRequest {
                request_id: mutation.id(),
                order_id: order,
            };
            let reply = clients
                .exchange
                .cancel_order(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "order {order} cancelled; {} units released ({})",
                reply.cancelled_quantity,
                sequence_of(reply.commit.as_ref())
            );
        }
        OrderCommand::Reduce {
            order,
            by,
            mutation,
        } => {
            let message = pb::ReduceOrderRequest {
                request_id: mutation.id(),
                order_id: order,
                reduce_by: by,
            };
            let reply = clients
                .exchange
                .reduce_order(authorized(message, token)?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "order {order}: {} units left ({})",
                reply.remaining_quantity,
                sequence_of(reply.commit.as_ref())
            );
        }
        OrderCommand::List(account) => {
            let message = pb::ListOrdersRequest {
                participant_id: account.participant,
            };
            let reply = clients
                .exchange
                .list_orders(authorized(message, token)?)
                .await
                .map_err(status_error)?;
            for order in &reply.get_ref().orders {
                print_order(order);
            }
        }
        OrderCommand::Show { order } => {
            let reply = clients
                .exchange
                .get_order(authorized(pb::GetOrderRequest { order_id: order }, token)?)
                .await
                .map_err(status_error)?;
            print_order(reply.get_ref());
        }
    }
    Ok(())
}

fn print_book(book: &pb::Book) {
    println!(
        "{} (instrument {}){}",
        book.symbol,
        book.instrument_id,
        if book.sequence > 0 {
            format!(" at sequence {}", book.sequence)
        } else {
            String::new()
        }
    );
    println!(
        "  {:>12} {:>12} {:>6} | {:<12} {:<12} {:<6}",
        "bid qty", "bid", "orders", "ask", "ask qty", "orders"
    );
    let rows = book.bids.len().max(book.asks.len());
    for row in 0..rows {
        let (bid_quantity, bid, bid_orders) =
            book.bids
                .get(row)
                .map_or((String::new(), String::new(), String::new()), |level| {
                    (
                        level.quantity.clone(),
                        level.price.clone(),
                        level.orders.to_string(),
                    )
                });
        let (ask, ask_quantity, ask_orders) =
            book.asks
                .get(row)
                .map_or((String::new(), String::new(), String::new()), |level| {
                    (
                        level.price.clone(),
                        level.quantity.clone(),
                        level.orders.to_string(),
                    )
                });
        println!("  {bid_quantity:>12} {bid:>12} {bid_orders:>6} | {ask:<12} {ask_quantity:<12} {ask_orders:<6}");
    }
}

async fn book(
    clients: &mut Clients,
    instrument: &str,
    depth: u32,
    follow: bool,
) -> anyhow::Result<()> {
    if follow {
        let message = pb::StreamBookRequest {
            instrument: Some(instrument_ref(instrument)),
            depth,
        };
        let mut books = clients
            .market_data
            .stream_book(message)
            .await
            .map_err(status_error)?
            .into_inner();
        while let Some(book) = books.message().await.map_err(status_error)? {
            print_book(&book);
        }
    } else {
        let message = pb::GetBookRequest {
            instrument: Some(instrument_ref(instrument)),
            depth,
        };
        let reply = clients
            .market_data
            .get_book(message)
            .await
            .map_err(status_error)?;
        print_book(reply.get_ref());
    }
    Ok(())
}

impl Cli {
    /// Parses the process arguments (so `main` needs no clap import of its own), with the serve
    /// options of a `--config` file filled in.
    pub fn parse_args() -> Cli {
        let arguments: Vec<String> = std::env::args().collect();
        match with_config_file(arguments) {
            Ok(arguments) => <Cli as Parser>::parse_from(arguments),
            Err(error) => {
                eprintln!("error: {error:#}");
                std::process::exit(2);
            }
        }
    }
}

/// `mutua serve --config mutua.toml`: every key of the file is a serve option by its long name
/// (`snapshot-every = 500000`, `listen = "0.0.0.0:50051"`, `tls-cert = "tls/server.pem"`;
/// underscores work too). An option given on the command line wins over the file, and the file
/// over the environment and the defaults.
pub fn with_config_file(arguments: Vec<String>) -> anyhow::Result<Vec<String>> {
    let Some(serve_at) = arguments.iter().position(|argument| argument == "serve") else {
        return Ok(arguments);
    };
    let config_at = arguments
        .iter()
        .position(|argument| argument == "--config" || argument.starts_with("--config="));
    let Some(config_at) = config_at.filter(|at| *at > serve_at) else {
        return Ok(arguments);
    };
    let (path, taken) = match arguments[config_at].strip_prefix("--config=") {
        Some(path) => (path.to_string(), 1),
        None => (
            arguments
                .get(config_at + 1)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("--config needs a file"))?,
            2,
        ),
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|error| anyhow::anyhow!("--config {path}: {error}"))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|error| anyhow::anyhow!("--config {path}: {error}"))?;
    let mut expanded: Vec<String> = arguments[..config_at].to_vec();
    let given = |flag: &str| {
        arguments
            .iter()
            .any(|argument| argument == flag || argument.starts_with(&format!("{flag}=")))
    };
    for (key, value) in table {
        let flag = format!("--{}", key.replace('_', "-"));
        if given(&flag) {
            continue;
        }
        let value = match value {
            toml::Value::String(text) => text,
            toml::Value::Integer(number) => number.to_string(),
            toml::Value::Float(number) => number.to_string(),
            toml::Value::Boolean(flag_on) => flag_on.to_string(),
            other => anyhow::bail!(
                "--config {path}: `{key}` must be a string, number or boolean, not {}",
                other.type_str()
            ),
        };
        expanded.push(flag);
        expanded.push(value);
    }
    expanded.extend_from_slice(&arguments[config_at + taken..]);
    Ok(expanded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_person_can_place_an_order_from_the_shell() {
        let cli = Cli::try_parse_from([
            "mutua",
            "--token",
            "t",
            "order",
            "place",
            "COOP-A",
            "buy",
            "--quantity",
            "10",
            "--price",
            "1.05",
        ])
        .expect("parses");
        assert!(matches!(
            cli.command,
            Command::Order(OrderCommand::Place {
                side: SideArg::Buy,
                ..
            })
        ));
        assert_eq!(
            instrument_ref("#3").instrument,
            Some(pb::instrument_ref::Instrument::Id(3))
        );
    }

    #[test]
    fn rfc3339_round_trips_at_leap_days_and_epoch_edges() {
        for text in [
            "1970-01-01T00:00:00Z",
            "2024-02-29T23:59:59Z",
            "2000-03-01T00:00:00Z",
            "2031-12-01T12:30:05Z",
            "2100-02-28T00:00:00Z",
        ] {
            let nanoseconds = parse_rfc3339(text).unwrap();
            assert_eq!(rfc3339(nanoseconds), text);
        }
        assert_eq!(
            parse_rfc3339("2024-03-01").unwrap() - parse_rfc3339("2024-02-28").unwrap(),
            2 * 86_400 * 1_000_000_000
        );
        for wrong in [
            "2023-02-29",
            "2024-13-01",
            "yesterday",
            "2024-01-01T10:00:00",
            "2024-01-01T25:00:00Z",
        ] {
            assert!(parse_rfc3339(wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn a_config_file_fills_serve_options_the_command_line_does_not_give() {
        let directory = std::env::temp_dir().join(format!("mutua-config-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        let path = directory.join("mutua.toml");
        std::fs::write(
            &path,
            "snapshot_every = 500\nlisten = \"127.0.0.1:6000\"\nparticipant-rate = 77\n",
        )
        .unwrap();
        let argv = [
            "mutua",
            "serve",
            "--listen",
            "127.0.0.1:7000",
            "--config",
            path.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec();
        let cli = Cli::try_parse_from(with_config_file(argv).unwrap()).expect("parses");
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(
            (
                args.snapshot_every,
                args.listen.to_string(),
                args.participant_rate
            ),
            (500, "127.0.0.1:7000".to_string(), 77)
        );
        std::fs::write(&path, "no_such_option = 1\n").unwrap();
        let argv = ["mutua", "serve", "--config", path.to_str().unwrap()]
            .map(String::from)
            .to_vec();
        assert!(
            Cli::try_parse_from(with_config_file(argv).unwrap()).is_err(),
            "an unknown key is refused"
        );
        std::fs::remove_dir_all(&directory).unwrap();
    }

    #[test]
    fn a_symbol_of_digits_is_a_symbol_and_a_hash_names_an_id() {
        use pb::instrument_ref::Instrument;
        assert_eq!(
            instrument_ref("2030").instrument,
            Some(Instrument::Symbol("2030".into()))
        );
        assert_eq!(instrument_ref("#7").instrument, Some(Instrument::Id(7)));
        assert_eq!(
            instrument_ref("GVC-SHARE").instrument,
            Some(Instrument::Symbol("GVC-SHARE".into()))
        );
    }
}
