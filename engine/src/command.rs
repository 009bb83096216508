//! The engine's vocabulary: the commands it accepts, the events it emits, and why it refuses.
//!
//! Everything here is plain data with integer units (prices in ticks, quantities in lots, cash in
//! minor units, time in nanoseconds since the Unix epoch). Decimal values exist only at the edges
//! (see `units.rs`). Every event carries enough to stand alone as an audit record.

use serde::{Deserialize, Serialize};

/// A participant, numbered densely by the engine in registration order. Participant 0 is the
/// market's genesis operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ParticipantId(pub u32);

/// An instrument, numbered densely by the engine in listing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InstrumentId(pub u32);

/// An order, numbered by the engine from 1 in acceptance order; never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OrderId(pub u64);

/// A primary offering, numbered densely by the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OfferingId(pub u32);

/// A client-chosen command id. A repeated id returns the first outcome and never applies twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CommandId(pub u128);

/// A bearer credential (token), numbered densely by the engine in issue order. The engine holds
/// only a hash of the token; the token itself is shown once, to whoever asked for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CredentialId(pub u32);

/// A request to withdraw shares, numbered by the engine from 1; never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WithdrawalId(pub u64);

/// A resolution an organization puts to its members, numbered densely by the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResolutionId(pub u32);

/// A service package a funder defines (category and face value), numbered densely by the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PackageId(pub u32);

/// A voucher, numbered densely by the engine from 0 in issue order; never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VoucherId(pub u64);

/// Nanoseconds since the Unix epoch, given to the engine with every command (it has no clock).
pub type Timestamp = u64;

/// A member's vote on a resolution: one per member, whatever its holding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VoteChoice {
    For,
    Against,
    Abstain,
}

/// What a participant is allowed to do on the exchange (DOMAIN.md, "Who uses it").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    Contributor,
    Organization,
    Funder,
    Regulator,
    Operator,
}

/// The three capped-return instruments the paper names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InstrumentKind {
    CommunityShare,
    CommunityBond,
    CommunityInvestmentNote,
}

impl InstrumentKind {
    /// Bonds and notes repay par at maturity; shares never mature.
    pub fn matures(self) -> bool {
        !matches!(self, InstrumentKind::CommunityShare)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TimeInForce {
    /// Rests on the book until filled or cancelled.
    GoodTillCancelled,
    /// Trades what it can at once; the remainder is cancelled.
    ImmediateOrCancel,
    /// Trades in full at once, or is accepted and killed at once with no effect on the book or
    /// the accounts.
    FillOrKill,
}

/// What happens when an incoming order would trade with a resting order of the same participant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SelfTradePrevention {
    /// Cancel the rest of the incoming order; the resting order stays (the default).
    #[default]
    CancelIncoming,
    /// Cancel the resting order and keep matching the incoming one.
    CancelResting,
    /// Cancel both.
    CancelBoth,
}

/// Everything the operator states when listing an instrument. Integer units throughout; the
/// decimal form a person types is converted by `units::InstrumentTerms`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InstrumentSpec {
    /// Short unique name, e.g. "COOP-SHARE-A". At most `symbol_bytes_max` ASCII bytes.
    pub symbol: String,
    pub kind: InstrumentKind,
    /// The organization that issues the instrument and receives offering proceeds.
    pub issuer: ParticipantId,
    /// Cash minor units per tick of price, per unit. Price = ticks × tick_size_minor.
    pub tick_size_minor: u64,
    /// Units per lot: the smallest tradable quantity.
    pub lot_size_units: u64,
    /// Par value per unit, in ticks.
    pub par_ticks: u64,
    /// Annual return cap in basis points (500 = 5 %).
    pub return_cap_bp: u32,
    /// Lowest price an order may carry, in ticks, at most par. Withdrawable shares always have
    /// par as their floor, whatever is stated here.
    pub price_floor_ticks: u64,
    /// Service value per lot per calendar year (UTC), in cash minor units: what a holder may
    /// redeem in services at any accredited organization, the issuer owing the organization that
    /// served. Zero when the instrument carries none.
    pub service_value_per_lot_minor: u64,
    /// Required for bonds and notes (after the listing), absent for shares. Accrual starts at the
    /// first issue, which the engine records when the first offering closes with units issued.
    pub maturity_time: Option<Timestamp>,
    /// Largest share of units outstanding one contributor may hold, in basis points;
    /// `None` takes the market default (10 %).
    pub holding_cap_bp: Option<u32>,
    /// Co-operative Investment Plan shares: default lock-in and tax credit apply.
    pub cooperative_investment_plan: bool,
    /// Minimum holding period of acquired units, in whole years to the anniversary (UTC);
    /// `None` takes the default (5 years for CIP shares, none otherwise).
    pub lock_in_years: Option<u32>,
    /// Non-refundable tax credit on primary purchases, basis points; `None` takes the market's
    /// rate for the instrument's kind (`MarketConfig::tax_credit_bp`).
    pub tax_credit_bp: Option<u32>,
    /// Community shares only: a holder may ask the issuer to buy units back at par, after any
    /// lock-in and `withdrawal_notice_days` of notice.
    pub withdrawable: bool,
    /// Days between a withdrawal request and its payout (withdrawable shares only).
    pub withdrawal_notice_days: u32,
}

/// One command, as the sequencer hands it to the engine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub id: CommandId,
    /// The authenticated participant on whose behalf the command is made.
    pub participant: ParticipantId,
    pub kind: CommandKind,
}

/// A service package as a funder defines it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PackageTerms {
    /// 1 to 32 characters a-z, 0-9 or '-'.
    pub category: String,
    pub name: String,
    pub face_value_minor: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CommandKind {
    /// Operator: add a participant with a role.
    RegisterParticipant { role: Role, name: String },
    /// Regulator or operator: accredit an organization or suspend its accreditation.
    SetAccreditation {
        organization: ParticipantId,
        accredited: bool,
    },
    /// Operator: cash arrives from the bank rails.
    Deposit {
        account: ParticipantId,
        amount_minor: u64,
    },
    /// Operator: cash leaves to the bank rails; only free cash may leave.
    Withdraw {
        account: ParticipantId,
        amount_minor: u64,
    },
    /// Operator: list an instrument for an organization.
    /// The spec is boxed to keep every other command small.
    ListInstrument { spec: Box<InstrumentSpec> },
    /// Operator: open or halt continuous trading in an instrument.
    SetTradingStatus {
        instrument: InstrumentId,
        open: bool,
    },
    /// Issuer: offer new units at par, issued only if at least `minimum_lots` are subscribed.
    OpenOffering {
        instrument: InstrumentId,
        lots: u64,
        minimum_lots: u64,
    },
    /// Contributor: subscribe to an open offering; the cash is reserved until it closes.
    Subscribe { offering: OfferingId, lots: u64 },
    /// Issuer: close the offering; issue and collect if the minimum was met, else release all.
    CloseOffering { offering: OfferingId },
    /// Contributor: place an order.
    PlaceOrder {
        instrument: InstrumentId,
        side: Side,
        price_ticks: u64,
        lots: u64,
        time_in_force: TimeInForce,
        self_trade: SelfTradePrevention,
    },
    /// Owner: cancel a resting order.
    CancelOrder { order: OrderId },
    /// Owner: reduce a resting order's quantity, keeping its place in the queue. Reducing by the
    /// whole remainder or more cancels it.
    ReduceOrder { order: OrderId, reduce_by_lots: u64 },
    /// Issuer: pay every holder `per_lot_minor` per lot held, capped by the return cap over the
    /// period since the previous distribution (or since issue).
    PayDistribution {
        instrument: InstrumentId,
        per_lot_minor: u64,
    },
    /// Issuer: at or after maturity, repay par to every holder and retire the units.
    RepayAtMaturity { instrument: InstrumentId },
    /// Operator: record a new bearer credential for a participant, by the SHA-256 of its token.
    /// With `replace_existing`, every other live credential of the participant is revoked in the
    /// same step (a rotation).
    IssueCredential {
        participant: ParticipantId,
        token_hash: [u8; 32],
        replace_existing: bool,
    },
    /// Operator: revoke a credential; calls presenting its token are refused from then on.
    RevokeCredential { credential: CredentialId },
    /// Operator: suspend a participant (its resting orders are cancelled and every command it
    /// sends is refused) or reinstate it. Balances, holdings and obligations stay as they are.
    SetParticipantStatus {
        participant: ParticipantId,
        suspended: bool,
    },
    /// Holder: give notice to withdraw free units of a withdrawable share; they are held back
    /// from sale until paid or the request is cancelled.
    RequestWithdrawal { instrument: InstrumentId, lots: u64 },
    /// Holder: cancel a pending withdrawal; its units are free again.
    CancelWithdrawal { withdrawal: WithdrawalId },
    /// Holder or issuer: once the notice has run, the issuer buys the units back at par from its
    /// free cash and retires them, delivery versus payment.
    CompleteWithdrawal { withdrawal: WithdrawalId },
    /// Issuer: suspend withdrawals (to protect its capital base) or resume them.
    SetWithdrawalsSuspended {
        instrument: InstrumentId,
        suspended: bool,
    },
    /// Organization: put a resolution to its members; voting runs until `closes_at`.
    ProposeResolution { title: String, closes_at: Timestamp },
    /// Member (contributor): vote once on an open resolution.
    CastVote {
        resolution: ResolutionId,
        choice: VoteChoice,
    },
    /// The proposing organization: at or after `closes_at`, count the votes and make the
    /// result final.
    CloseResolution { resolution: ResolutionId },
    /// Regulator or operator: the service categories an organization is accredited for (vouchers
    /// of other categories cannot be redeemed there). Empty means every category.
    SetAccreditedCategories {
        organization: ParticipantId,
        categories: Vec<String>,
    },
    /// Funder: define a service package that vouchers are issued for. Boxed: rare, and the
    /// largest command otherwise, it would widen every command in the queue and the journal.
    DefineServicePackage { package: Box<PackageTerms> },
    /// Funder: issue a voucher for one of its packages to a beneficiary (a contributor). The face
    /// value is reserved from the funder's cash; the beneficiary's co-payment, if any, from the
    /// beneficiary's. Only the funder ever sees the split.
    IssueVoucher {
        package: PackageId,
        beneficiary: ParticipantId,
        co_payment_minor: u64,
        expires_at: Timestamp,
    },
    /// Beneficiary: redeem a voucher, once and in full, at an accredited organization of its
    /// choice. The co-payment moves to the funder and the funder owes the organization the face
    /// value, settled by the next netting cycle.
    RedeemVoucher {
        voucher: VoucherId,
        organization: ParticipantId,
    },
    /// Holder: redeem service value of a holding at an accredited organization; the issuer owes
    /// the organization the amount.
    RedeemServiceValue {
        instrument: InstrumentId,
        organization: ParticipantId,
        amount_minor: u64,
    },
    /// Accredited organization: record a volunteer's hours as time credits (minutes).
    RecordVolunteerTime {
        volunteer: ParticipantId,
        minutes: u64,
    },
    /// Holder of time credits: transfer them to another participant in the network.
    TransferTimeCredits { to: ParticipantId, minutes: u64 },
    /// Holder of time credits: spend them on a service at an accredited organization.
    SpendTimeCredits {
        organization: ParticipantId,
        minutes: u64,
    },
    /// Holder of time credits: donate them to the shared time pool.
    DonateTimeCredits { minutes: u64 },
    /// Pool manager (operator or accredited organization): grant credits from the shared time
    /// pool to a dependent (a contributor).
    GrantTimeCredits {
        dependent: ParticipantId,
        minutes: u64,
    },
    /// Organization, contributor or funder: contribute free cash to the collective capital pool.
    ContributeToPool { amount_minor: u64 },
    /// A debtor of the pool: repay (part of) its loan from free cash.
    RepayPoolLoan { amount_minor: u64 },
    /// Operator: close a netting cycle. Every open obligation is replaced by one net position per
    /// participant, net debtors pay the pool and the pool pays net creditors, in one step.
    CloseNettingCycle,
    /// Organization: declare a year's surplus. The market's shares of it move to the
    /// organization's indivisible reserve, the social economy fund and the pool.
    DeclareSurplus { year: i32, surplus_minor: u64 },
    /// Operator (the gateway's clock): the time is the batch's; expire the vouchers due, repay
    /// the bonds and notes due whose issuers hold the cash, close the resolutions due.
    Tick,
}

/// What an accepted command created, if anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ack {
    Done,
    Participant(ParticipantId),
    Instrument(InstrumentId),
    Offering(OfferingId),
    Order(OrderId),
    Credential(CredentialId),
    Withdrawal(WithdrawalId),
    Resolution(ResolutionId),
    ServicePackage(PackageId),
    Voucher(VoucherId),
    /// The number of the netting cycle closed, from 1.
    NettingCycle(u64),
}

/// The result of applying one command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub result: Result<Ack, RejectReason>,
    /// `Some(sequence)` when the command id had been seen before with the same command: `result`
    /// is the first outcome, `sequence` the journal sequence number of the first application
    /// (where its events are), and the command applied nothing this time.
    pub replayed: Option<u64>,
}

impl Outcome {
    /// An outcome produced by applying the command now.
    pub fn fresh(result: Result<Ack, RejectReason>) -> Outcome {
        Outcome {
            result,
            replayed: None,
        }
    }

    pub fn is_replay(&self) -> bool {
        self.replayed.is_some()
    }
}

/// Why an order left the book without trading in full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CancelReason {
    /// The owner cancelled it (or reduced it to nothing).
    Requested,
    /// The unfilled part of an immediate-or-cancel order.
    ImmediateOrCancelRemainder,
    /// Self-trade prevention.
    SelfTrade,
    /// The instrument matured and its units were retired.
    Matured,
    /// The owner was suspended by the operator.
    OwnerSuspended,
    /// A fill-or-kill order that could not trade in full at once: killed without trading.
    FillOrKillUnfillable,
}

/// Why an obligation between two participants arose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ObligationCause {
    /// A voucher redeemed: its funder owes the organization that served.
    Voucher(VoucherId),
    /// Service value of a share redeemed: its issuer owes the organization that served.
    ServiceValue(InstrumentId),
}

/// How time credits moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TimeCreditMovement {
    /// A host organization recorded volunteer hours: `from` is the host, credits are new.
    Earned,
    /// Between two participants in the network.
    Transferred,
    /// Spent on a service at an organization, which receives them.
    Spent,
    /// Given to the shared time pool (`to` is `None`).
    Donated,
    /// Granted from the shared time pool (`from` is the manager who granted them).
    Granted,
}

/// Every state change, in the order it happened. Each carries the participants and amounts it
/// moved so that it can stand alone as an audit record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    ParticipantRegistered {
        participant: ParticipantId,
        role: Role,
        name: String,
    },
    AccreditationChanged {
        organization: ParticipantId,
        accredited: bool,
    },
    CashDeposited {
        account: ParticipantId,
        amount_minor: u64,
        balance_minor: u64,
    },
    CashWithdrawn {
        account: ParticipantId,
        amount_minor: u64,
        balance_minor: u64,
    },
    /// The spec is boxed to keep every other event small.
    InstrumentListed {
        instrument: InstrumentId,
        spec: Box<InstrumentSpec>,
    },
    TradingStatusChanged {
        instrument: InstrumentId,
        open: bool,
    },
    OfferingOpened {
        offering: OfferingId,
        instrument: InstrumentId,
        issuer: ParticipantId,
        lots: u64,
        minimum_lots: u64,
        price_ticks: u64,
    },
    Subscribed {
        offering: OfferingId,
        contributor: ParticipantId,
        lots: u64,
        cash_reserved_minor: u64,
    },
    /// A successful close: units issued to one subscriber, cash paid to the issuer.
    UnitsIssued {
        offering: OfferingId,
        instrument: InstrumentId,
        contributor: ParticipantId,
        lots: u64,
        paid_minor: u64,
    },
    /// A failed close: one subscriber's reservation released.
    SubscriptionReleased {
        offering: OfferingId,
        contributor: ParticipantId,
        cash_released_minor: u64,
    },
    TaxCreditRecorded {
        contributor: ParticipantId,
        instrument: InstrumentId,
        purchase_minor: u64,
        credit_minor: u64,
        rate_bp: u32,
    },
    /// A contributor's subscriptions cut back at allotment so that its holding stays within the
    /// holding cap of the units outstanding after the close; the excess cash is released.
    SubscriptionScaledBack {
        offering: OfferingId,
        contributor: ParticipantId,
        subscribed_lots: u64,
        allotted_lots: u64,
        cash_released_minor: u64,
        /// The most lots any one contributor may hold after this close.
        cap_lots: u64,
    },
    OfferingClosed {
        offering: OfferingId,
        issued: bool,
        subscribed_lots: u64,
        proceeds_minor: u64,
    },
    /// The instrument's first units were issued: its accrued value accrues from this time.
    FirstIssue {
        instrument: InstrumentId,
        time: Timestamp,
    },
    OrderAccepted {
        order: OrderId,
        instrument: InstrumentId,
        owner: ParticipantId,
        side: Side,
        price_ticks: u64,
        lots: u64,
        time_in_force: TimeInForce,
    },
    /// A fill, settled delivery versus payment in the same step.
    Trade {
        instrument: InstrumentId,
        maker_order: OrderId,
        taker_order: OrderId,
        maker: ParticipantId,
        taker: ParticipantId,
        taker_side: Side,
        price_ticks: u64,
        lots: u64,
        notional_minor: u64,
        maker_remaining_lots: u64,
        taker_remaining_lots: u64,
    },
    OrderRested {
        order: OrderId,
        remaining_lots: u64,
    },
    OrderReduced {
        order: OrderId,
        reduced_by_lots: u64,
        remaining_lots: u64,
    },
    OrderCancelled {
        order: OrderId,
        owner: ParticipantId,
        instrument: InstrumentId,
        remaining_lots: u64,
        reason: CancelReason,
    },
    DistributionPaid {
        instrument: InstrumentId,
        issuer: ParticipantId,
        per_lot_minor: u64,
        lots_outstanding: u64,
        total_minor: u64,
    },
    DistributionReceived {
        instrument: InstrumentId,
        holder: ParticipantId,
        lots: u64,
        amount_minor: u64,
    },
    ParRepaid {
        instrument: InstrumentId,
        holder: ParticipantId,
        lots: u64,
        amount_minor: u64,
    },
    InstrumentMatured {
        instrument: InstrumentId,
        lots_retired: u64,
        repaid_minor: u64,
    },
    CredentialIssued {
        credential: CredentialId,
        participant: ParticipantId,
        role: Role,
    },
    CredentialRevoked {
        credential: CredentialId,
        participant: ParticipantId,
    },
    ParticipantStatusChanged {
        participant: ParticipantId,
        suspended: bool,
    },
    WithdrawalRequested {
        withdrawal: WithdrawalId,
        instrument: InstrumentId,
        holder: ParticipantId,
        lots: u64,
        payable_from: Timestamp,
    },
    WithdrawalCancelled {
        withdrawal: WithdrawalId,
        instrument: InstrumentId,
        holder: ParticipantId,
        lots: u64,
    },
    /// The issuer bought the units back at par and retired them.
    WithdrawalPaid {
        withdrawal: WithdrawalId,
        instrument: InstrumentId,
        holder: ParticipantId,
        issuer: ParticipantId,
        lots: u64,
        amount_minor: u64,
    },
    WithdrawalsSuspended {
        instrument: InstrumentId,
        suspended: bool,
    },
    ResolutionProposed {
        resolution: ResolutionId,
        organization: ParticipantId,
        title: String,
        closes_at: Timestamp,
    },
    VoteCast {
        resolution: ResolutionId,
        member: ParticipantId,
        choice: VoteChoice,
    },
    ResolutionClosed {
        resolution: ResolutionId,
        organization: ParticipantId,
        votes_for: u32,
        votes_against: u32,
        abstentions: u32,
        /// Votes of members who sold out (or left and rejoined) before the close: not counted.
        votes_lapsed: u32,
        /// More votes for than against.
        passed: bool,
    },
    AccreditedCategoriesSet {
        organization: ParticipantId,
        categories: Vec<String>,
    },
    ServicePackageDefined {
        package: PackageId,
        funder: ParticipantId,
        category: String,
        name: String,
        face_value_minor: u64,
    },
    /// What everyone entitled to see the voucher sees: no co-payment, no subsidy.
    VoucherIssued {
        voucher: VoucherId,
        package: PackageId,
        funder: ParticipantId,
        beneficiary: ParticipantId,
        face_value_minor: u64,
        expires_at: Timestamp,
    },
    /// Private to the funder (see `Event::private_to`): the split of a voucher's face value.
    VoucherSplit {
        voucher: VoucherId,
        funder: ParticipantId,
        beneficiary: ParticipantId,
        co_payment_minor: u64,
        subsidy_minor: u64,
    },
    VoucherRedeemed {
        voucher: VoucherId,
        package: PackageId,
        beneficiary: ParticipantId,
        organization: ParticipantId,
        face_value_minor: u64,
    },
    /// The voucher lapsed unredeemed: the funder's reservation (and any co-payment) is released.
    VoucherExpired {
        voucher: VoucherId,
        funder: ParticipantId,
        beneficiary: ParticipantId,
        face_value_minor: u64,
    },
    /// An obligation to be settled by the next netting cycle.
    ObligationRecorded {
        debtor: ParticipantId,
        creditor: ParticipantId,
        amount_minor: u64,
        cause: ObligationCause,
    },
    ServiceValueRedeemed {
        instrument: InstrumentId,
        holder: ParticipantId,
        organization: ParticipantId,
        amount_minor: u64,
        /// The calendar year (UTC) the redemption counts against.
        year: i32,
        /// Redeemed by this holder in this instrument in `year`, this redemption included.
        redeemed_in_year_minor: u64,
    },
    /// Time credits moved; `to_balance_minutes` is the receiving account's balance after it
    /// (the shared pool's when `to` is `None`).
    TimeCredits {
        movement: TimeCreditMovement,
        from: Option<ParticipantId>,
        to: Option<ParticipantId>,
        minutes: u64,
        to_balance_minutes: u64,
    },
    PoolContributed {
        contributor: ParticipantId,
        amount_minor: u64,
        pool_balance_minor: u64,
    },
    PoolLoanRepaid {
        debtor: ParticipantId,
        amount_minor: u64,
        loan_outstanding_minor: u64,
    },
    /// One participant's part in a netting cycle.
    NettingPosition {
        cycle: u64,
        participant: ParticipantId,
        /// Gross amounts owed to and by the participant going into the cycle.
        owed_to_minor: u64,
        owes_minor: u64,
        /// Paid to the pool as a net debtor (from its own cash).
        paid_minor: u64,
        /// Lent by the pool to cover the debtor's shortfall.
        loan_minor: u64,
        /// Received from the pool as a net creditor.
        received_minor: u64,
        /// Left unsettled: owed by the debtor, or to the creditor, in the next cycle.
        carried_minor: u64,
    },
    /// A netting cycle's report.
    NettingCycleClosed {
        cycle: u64,
        /// Obligations recorded since the last cycle, and carried amounts from it.
        obligations: u64,
        gross_minor: u128,
        /// Sum of the net debts (equal to the sum of the net credits).
        net_minor: u128,
        /// 1 − net / gross, in basis points, rounded down.
        efficiency_bp: u32,
        paid_in_minor: u64,
        paid_out_minor: u64,
        loans_minor: u64,
        carried_minor: u64,
        pool_balance_minor: u64,
    },
    SurplusDeclared {
        organization: ParticipantId,
        year: i32,
        surplus_minor: u64,
        /// To the organization's indivisible reserve: never withdrawn nor distributed.
        reserve_minor: u64,
        /// To the social economy fund.
        fund_minor: u64,
        /// Buys units of the collective capital pool.
        pool_minor: u64,
    },
}

impl Event {
    /// The one participant entitled to see this event, when it is private (a voucher's
    /// co-payment split is the funder's alone). Public records, responses to anyone else and
    /// market data leave such events out; a regulator sees them only as aggregates.
    pub fn private_to(&self) -> Option<ParticipantId> {
        match self {
            Event::VoucherSplit { funder, .. } => Some(*funder),
            _ => None,
        }
    }
}

macro_rules! reject_reasons {
    ($( $(#[$doc:meta])* $name:ident = $code:literal => $sentence:literal, )*) => {
        /// Why the engine refused a command. Codes are stable: they travel in gRPC status details
        /// and in the journal, and are never renumbered. When a command breaks several rules, the
        /// first rule its own checks meet is reported: identity and role, then the ids it names,
        /// then quantities and prices, then state (trading open, offering open), then funds and
        /// caps.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[repr(u16)]
        pub enum RejectReason {
            $( $(#[$doc])* $name = $code, )*
        }

        impl RejectReason {
            /// Every reason, in code order.
            pub const ALL: &'static [RejectReason] = &[$(RejectReason::$name,)*];

            /// The stable numeric code.
            pub fn code(self) -> u16 {
                self as u16
            }

            /// One sentence a person can act on.
            pub fn message(self) -> &'static str {
                match self {
                    $(RejectReason::$name => $sentence,)*
                }
            }

            /// The reason with this code, if any.
            pub fn from_code(code: u16) -> Option<RejectReason> {
                match code {
                    $($code => Some(RejectReason::$name),)*
                    _ => None,
                }
            }
        }
    };
}

reject_reasons! {
    UnknownParticipant = 1 => "the participant is not registered",
    RoleNotAllowed = 2 => "the participant's role is not allowed to do this",
    UnknownAccount = 3 => "the account named by the command belongs to no registered participant",
    UnknownInstrument = 4 => "no instrument has this id",
    UnknownOrder = 5 => "no order has this id",
    UnknownOffering = 6 => "no offering has this id",
    NotOrderOwner = 7 => "the order belongs to another participant",
    NotIssuer = 8 => "only the instrument's issuer may do this",
    NotAnOrganization = 9 => "the participant named is not an organization",
    NameInvalid = 10 => "the name is empty or too long",
    SymbolInvalid = 11 => "the symbol must be 1 to 16 characters of A-Z, 0-9, '-' or '.'",
    SymbolTaken = 12 => "another instrument already uses this symbol",
    TickSizeInvalid = 13 => "the tick size must be a positive whole number of cash minor units",
    LotSizeInvalid = 14 => "the lot size must be a positive whole number of units",
    ParInvalid = 15 => "par must be a positive whole number of ticks within the market's price levels",
    ReturnCapInvalid = 16 => "the annual return cap must be between 0 and 100 %",
    PriceFloorInvalid = 17 => "the price floor must not exceed par",
    MaturityInvalid = 18 => "bonds and notes need a maturity after issue; shares have none",
    HoldingCapInvalid = 19 => "the holding cap must be between 0 and 100 %",
    TaxCreditInvalid = 20 => "the tax-credit rate must be between 0 and 100 %",
    QuantityZero = 21 => "the quantity must be positive",
    QuantityTooLarge = 22 => "the quantity exceeds the market's maximum per command",
    QuantityOffLot = 23 => "the quantity is not a whole number of lots",
    PriceNotPositive = 24 => "the price must be positive",
    PriceOffTick = 25 => "the price is not a whole number of ticks",
    PriceAboveCeiling = 26 => "the price is above the accrued value: par plus the return cap accrued since the first issue (years actual/actual), less the distributions per unit paid, rounded down to a tick",
    PriceBelowFloor = 27 => "the price is below the instrument's floor",
    AmountZero = 28 => "the amount must be positive",
    AmountOffMinorUnit = 29 => "the amount is not a whole number of the currency's minor units",
    AmountTooLarge = 30 => "the amount is too large for the ledger",
    InstrumentMatured = 31 => "the instrument has matured and its units are retired",
    TradingClosed = 32 => "the instrument is not open for trading",
    InsufficientCash = 33 => "not enough free cash (balance less reservations)",
    InsufficientUnits = 34 => "not enough free units (holding less units reserved or locked in)",
    HoldingCapExceeded = 35 => "the holding, with open buy orders and subscriptions, would exceed the cap on one contributor's share of the units outstanding (rounded down to a lot)",
    LockedIn = 36 => "the units are still inside their lock-in period",
    FillOrKillUnfillable = 37 => "a fill-or-kill order could not trade in full at once (no longer a rejection: such an order is accepted and killed)",
    BookFull = 38 => "the instrument's order book holds its maximum number of orders",
    OfferingAlreadyOpen = 39 => "the instrument already has an open offering",
    OfferingNotOpen = 40 => "the offering is closed",
    OfferingOversubscribed = 41 => "the subscription exceeds the units left in the offering",
    OfferingMinimumInvalid = 42 => "the offering minimum must be between 1 and the units offered",
    SubscriptionsFull = 43 => "the offering holds its maximum number of subscriptions",
    DistributionAboveCap = 44 => "the distribution exceeds the return accrued since the first issue (par × cap × years actual/actual, rounded down to a minor unit) less the distributions already paid",
    NoUnitsOutstanding = 45 => "no units of the instrument are outstanding",
    NotMatured = 46 => "the instrument has not reached maturity",
    DoesNotMature = 47 => "community shares have no maturity",
    ParticipantsFull = 48 => "the market holds its maximum number of participants",
    InstrumentsFull = 49 => "the market holds its maximum number of instruments",
    OrdersFull = 50 => "the market holds its maximum number of resting orders",
    NoEffect = 51 => "the command would change nothing",
    RequestIdReused = 52 => "the request id was already used for a different command; a retry must repeat the first command exactly, and a new command needs a new request id",
    ParticipantSuspended = 53 => "the participant is suspended by the operator",
    UnknownCredential = 54 => "no credential has this id",
    CredentialsFull = 55 => "the participant holds its maximum number of live credentials, or the market its maximum of credentials",
    CannotSuspendSelf = 56 => "an operator cannot suspend itself or the genesis operator",
    OrderNotResting = 57 => "the order is no longer resting: it was filled, cancelled or killed",
    NotWithdrawable = 58 => "the instrument is not a withdrawable community share",
    WithdrawalsSuspended = 59 => "the issuer has suspended withdrawals",
    UnknownWithdrawal = 60 => "no pending withdrawal has this id",
    NoticeRunning = 61 => "the withdrawal's notice period has not ended",
    NotWithdrawalHolder = 62 => "the withdrawal belongs to another holder",
    UnknownResolution = 63 => "no resolution has this id",
    VotingClosed = 64 => "voting on the resolution has ended",
    NotAMember = 65 => "only a member (a holder of at least one unit of the organization's community shares) may vote",
    AlreadyVoted = 66 => "the member has already voted on this resolution; each member votes once",
    VotingStillOpen = 67 => "the resolution cannot be closed before its stated closing time",
    ResolutionInvalid = 68 => "the resolution needs a title of 1 to the market's maximum bytes and a closing time after now",
    ResolutionsFull = 69 => "the organization holds its maximum of open resolutions, or the market its maximum of resolutions",
    WithdrawalsFull = 70 => "the market holds its maximum of pending withdrawals, or the holder its maximum for the instrument",
    MaturityReached = 71 => "the instrument's maturity date has passed: no new units can be offered",
    WithdrawalTermsInvalid = 72 => "only community shares may be withdrawable, and the notice is at most 3 660 days",
    LockInInvalid = 73 => "the lock-in is at most 100 years",
    NotProposer = 74 => "only the organization that put the resolution may close it",
    NotAccredited = 75 => "the organization is not accredited, or its accreditation is suspended: it may not list, offer, host time credits or redeem",
    NotAccreditedForCategory = 76 => "the organization is not accredited for the voucher's service category",
    UnknownPackage = 77 => "no service package has this id",
    UnknownVoucher = 78 => "no voucher has this id",
    VoucherAlreadyRedeemed = 79 => "the voucher has already been redeemed; a voucher is redeemed once, in full",
    VoucherExpired = 80 => "the voucher has expired; its funds returned to the funder",
    NotVoucherBeneficiary = 81 => "only the voucher's beneficiary may redeem it",
    VoucherTermsInvalid = 82 => "the co-payment must not exceed the face value, the beneficiary must be a contributor, and the expiry must be after now and at most ten years ahead",
    PackageInvalid = 83 => "a service package needs a category of 1 to 32 characters a-z, 0-9 or '-', a name of 1 to the market's maximum bytes, and a positive face value",
    VouchersFull = 84 => "the market holds its maximum of open vouchers, vouchers issued or service packages",
    NotPackageFunder = 85 => "only the funder that defined the service package may issue vouchers for it",
    NoServiceValue = 86 => "the instrument carries no service value",
    ServiceValueExceeded = 87 => "the redemption exceeds the holding's service value for this calendar year (lots held × value per lot) less what was already redeemed in it",
    InsufficientTimeCredits = 88 => "not enough time credits in the account (or in the shared pool, for a grant)",
    TimeCreditsInvalid = 89 => "time credits are whole minutes, at most the market's maximum per command, and move between two different participants",
    NoPoolLoan = 90 => "the participant owes the pool nothing, or less than the repayment",
    SurplusAlreadyDeclared = 91 => "the organization has already declared its surplus for this year",
    SurplusYearInvalid = 92 => "the surplus year must be between 1970 and the current year",
    CategoriesInvalid = 93 => "at most the market's maximum of categories, each 1 to 32 characters a-z, 0-9 or '-', without repeats",
    ObligationsFull = 94 => "the obligation would take a participant's position beyond what the ledger can hold",
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (code {})", self.message(), self.code())
    }
}

impl std::error::Error for RejectReason {}
