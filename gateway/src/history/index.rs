//! Turns journal records into the history read model: one write batch per chunk of records,
//! with the last sequence indexed (and the chain hash after it) in the same batch, so the model
//! always reflects a whole prefix of the journal and resumes where it stopped.

use std::collections::HashMap;

use mutua_engine::{Event, InstrumentId, OfferingId, OrderId, ParticipantId, Side};
use rocksdb::{WriteBatch, WriteOptions, DB};

use crate::chain::ChainHash;
use crate::convert::year_of;
use crate::history::model::*;
use crate::history::HistoryError;
use crate::record::Applied;

/// What indexing keeps between chunks: small maps that events need to find a party the event
/// does not name. Each is bounded by what the engine bounds (participants, offerings,
/// instruments).
pub struct Indexer {
    /// Each participant's cash balance and reservations as last indexed.
    balances: HashMap<ParticipantId, (u64, u64)>,
    offerings: HashMap<OfferingId, (ParticipantId, InstrumentId)>,
    issuers: HashMap<InstrumentId, ParticipantId>,
    write: WriteOptions,
}

/// One chunk's changes, written together.
struct Chunk<'a> {
    db: &'a DB,
    batch: WriteBatch,
    /// Orders touched in this chunk: their key, their history, and whether the model already
    /// held them (and so a reference to them).
    orders: HashMap<OrderId, (Vec<u8>, OrderHistory, bool)>,
    bars: HashMap<(InstrumentId, u8, u64), Bar>,
    statements: HashMap<(ParticipantId, i32), Statement>,
}

type IndexResult<T> = Result<T, HistoryError>;

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> IndexResult<T> {
    postcard::from_bytes(bytes)
        .map_err(|error| HistoryError::Failed(format!("undecodable value: {error}")))
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("history values always serialize")
}

impl Chunk<'_> {
    fn order(&mut self, order: OrderId) -> IndexResult<Option<&mut OrderHistory>> {
        if !self.orders.contains_key(&order) {
            let Some(location) = self.db.get(Key::new(ORDER_REFS).u64(order.0).0)? else {
                return Ok(None);
            };
            let (owner, placed_at): (u32, u64) = decode(&location)?;
            let key = Key::new(ORDERS).u32(owner).u64(placed_at).u64(order.0).0;
            let Some(stored) = self.db.get(&key)? else {
                return Ok(None);
            };
            self.orders.insert(order, (key, decode(&stored)?, true));
        }
        Ok(self.orders.get_mut(&order).map(|(_, history, _)| history))
    }

    fn bar(
        &mut self,
        instrument: InstrumentId,
        interval: Interval,
        start: u64,
    ) -> IndexResult<Option<&mut Bar>> {
        let at = (instrument, interval as u8, start);
        if !self.bars.contains_key(&at) {
            let key = Key::new(BARS)
                .u32(instrument.0)
                .u8(interval as u8)
                .u64(start)
                .0;
            if let Some(stored) = self.db.get(key)? {
                self.bars.insert(at, decode(&stored)?);
            }
        }
        Ok(self.bars.get_mut(&at))
    }

    fn statement(
        &mut self,
        participant: ParticipantId,
        year: i32,
        balance_minor: u64,
    ) -> IndexResult<&mut Statement> {
        match self.statements.entry((participant, year)) {
            std::collections::hash_map::Entry::Occupied(found) => Ok(found.into_mut()),
            std::collections::hash_map::Entry::Vacant(slot) => {
                let key = Key::new(STATEMENTS).u32(participant.0).year(year).0;
                let statement = match self.db.get(key)? {
                    Some(stored) => decode(&stored)?,
                    None => Statement::opening(balance_minor),
                };
                Ok(slot.insert(statement))
            }
        }
    }

    fn entry(&mut self, participant: ParticipantId, record: &Applied, index: u32, what: EntryKind) {
        let key = Key::new(ENTRIES)
            .u32(participant.0)
            .u64(record.timestamp)
            .u64(record.sequence)
            .u32(index)
            .0;
        let entry = Entry {
            sequence: record.sequence,
            time: record.timestamp,
            what,
        };
        self.batch.put(key, encode(&entry));
    }
}

impl Indexer {
    pub fn new() -> Indexer {
        let mut write = WriteOptions::default();
        // The read model is rebuilt from the journal: a crash loses only what was not yet
        // flushed, and each batch carries its own "indexed through", so what survives is always
        // a whole prefix.
        write.disable_wal(true);
        Indexer {
            balances: HashMap::new(),
            offerings: HashMap::new(),
            issuers: HashMap::new(),
            write,
        }
    }

    /// Indexes `records` (consecutive, following what is indexed) and records that the model
    /// now reflects the journal through the last of them, whose chain hash is `chain`.
    pub fn index(&mut self, db: &DB, records: &[Applied], chain: ChainHash) -> IndexResult<()> {
        let Some(last) = records.last() else {
            return Ok(());
        };
        let mut chunk = Chunk {
            db,
            batch: WriteBatch::default(),
            orders: HashMap::new(),
            bars: HashMap::new(),
            statements: HashMap::new(),
        };
        for record in records {
            self.record(&mut chunk, record)?;
        }
        // Later events name an order without its owner: a reference from the order to its key
        // is kept while the order can still change (resting), and dropped once it cannot.
        for (id, (key, order, stored)) in chunk.orders.drain() {
            let open = matches!(order.state, OrderState::Working | OrderState::Resting);
            let reference = Key::new(ORDER_REFS).u64(id.0).0;
            match (open, stored) {
                (true, false) => chunk
                    .batch
                    .put(reference, encode(&(order.owner.0, order.placed_at))),
                (false, true) => chunk.batch.delete(reference),
                _ => {}
            }
            chunk.batch.put(key, encode(&order));
        }
        for ((instrument, interval, start), bar) in chunk.bars.drain() {
            let key = Key::new(BARS).u32(instrument.0).u8(interval).u64(start).0;
            chunk.batch.put(key, encode(&bar));
        }
        for ((participant, year), statement) in chunk.statements.drain() {
            let key = Key::new(STATEMENTS).u32(participant.0).year(year).0;
            chunk.batch.put(key, encode(&statement));
        }
        chunk
            .batch
            .put(META_THROUGH, encode(&(last.sequence, chain)));
        Ok(db.write_opt(chunk.batch, &self.write)?)
    }

    fn cash(&mut self, db: &DB, participant: ParticipantId) -> IndexResult<(u64, u64)> {
        if let Some(cash) = self.balances.get(&participant) {
            return Ok(*cash);
        }
        let cash = match db.get(Key::new(BALANCES).u32(participant.0).0)? {
            Some(stored) => decode(&stored)?,
            None => (0, 0),
        };
        self.balances.insert(participant, cash);
        Ok(cash)
    }

    fn balance(&mut self, db: &DB, participant: ParticipantId) -> IndexResult<u64> {
        Ok(self.cash(db, participant)?.0)
    }

    fn record(&mut self, chunk: &mut Chunk<'_>, record: &Applied) -> IndexResult<()> {
        let year = year_of(record.timestamp);
        for (index, event) in record.events.iter().enumerate() {
            let index = index as u32;
            match event {
                Event::OrderAccepted {
                    order,
                    instrument,
                    owner,
                    side,
                    price_ticks,
                    lots,
                    time_in_force,
                } => {
                    let key = Key::new(ORDERS)
                        .u32(owner.0)
                        .u64(record.timestamp)
                        .u64(order.0)
                        .0;
                    let history = OrderHistory {
                        order: *order,
                        owner: *owner,
                        instrument: *instrument,
                        side: *side,
                        price_ticks: *price_ticks,
                        lots: *lots,
                        time_in_force: *time_in_force,
                        request_id: record.request_id.clone(),
                        placed_sequence: record.sequence,
                        placed_at: record.timestamp,
                        state: OrderState::Working,
                        filled_lots: 0,
                        filled_notional_minor: 0,
                        fill_count: 0,
                        reduced_lots: 0,
                        remaining_lots: *lots,
                        cancelled_lots: 0,
                        updated_sequence: record.sequence,
                        updated_at: record.timestamp,
                        fills: Vec::new(),
                    };
                    chunk.orders.insert(*order, (key, history, false));
                }
                Event::Trade {
                    instrument,
                    maker_order,
                    taker_order,
                    maker,
                    taker,
                    taker_side,
                    price_ticks,
                    lots,
                    notional_minor,
                    maker_remaining_lots,
                    taker_remaining_lots,
                } => {
                    for (order, remaining, is_maker) in [
                        (*maker_order, *maker_remaining_lots, true),
                        (*taker_order, *taker_remaining_lots, false),
                    ] {
                        if let Some(history) = chunk.order(order)? {
                            history.filled_lots += lots;
                            history.filled_notional_minor += u128::from(*notional_minor);
                            history.fill_count += 1;
                            history.remaining_lots = remaining;
                            if remaining == 0 {
                                history.state = OrderState::Filled;
                            }
                            if history.fills.len() < FILLS_KEPT {
                                history.fills.push(Fill {
                                    sequence: record.sequence,
                                    time: record.timestamp,
                                    price_ticks: *price_ticks,
                                    lots: *lots,
                                    notional_minor: *notional_minor,
                                    maker: is_maker,
                                });
                            }
                            history.updated_sequence = record.sequence;
                            history.updated_at = record.timestamp;
                        }
                    }
                    chunk.batch.put(
                        Key::new(TRADES)
                            .u32(instrument.0)
                            .u64(record.timestamp)
                            .u64(record.sequence)
                            .u32(index)
                            .0,
                        encode(&PublicTrade {
                            sequence: record.sequence,
                            time: record.timestamp,
                            trade: event.clone(),
                        }),
                    );
                    for interval in Interval::ALL {
                        let start = interval.start(record.timestamp);
                        match chunk.bar(*instrument, interval, start)? {
                            Some(bar) => bar.add(*price_ticks, *lots, *notional_minor),
                            None => {
                                chunk.bars.insert(
                                    (*instrument, interval as u8, start),
                                    Bar::first(start, *price_ticks, *lots, *notional_minor),
                                );
                            }
                        }
                    }
                    let (buyer, seller) = match taker_side {
                        Side::Buy => (*taker, *maker),
                        Side::Sell => (*maker, *taker),
                    };
                    for (party, kind) in [(buyer, LineKind::Purchases), (seller, LineKind::Sales)] {
                        let balance = self.balance(chunk.db, party)?;
                        chunk.statement(party, year, balance)?.add(
                            kind,
                            Some(*instrument),
                            Some(*lots),
                            Some(*notional_minor),
                        );
                    }
                    chunk.entry(*maker, record, index, EntryKind::Event(event.clone()));
                    if taker != maker {
                        chunk.entry(*taker, record, index, EntryKind::Event(event.clone()));
                    }
                }
                Event::OrderRested {
                    order,
                    remaining_lots,
                } => {
                    if let Some(history) = chunk.order(*order)? {
                        history.state = OrderState::Resting;
                        history.remaining_lots = *remaining_lots;
                        history.updated_sequence = record.sequence;
                        history.updated_at = record.timestamp;
                    }
                }
                Event::OrderReduced {
                    order,
                    reduced_by_lots,
                    remaining_lots,
                } => {
                    if let Some(history) = chunk.order(*order)? {
                        history.reduced_lots += reduced_by_lots;
                        history.remaining_lots = *remaining_lots;
                        history.updated_sequence = record.sequence;
                        history.updated_at = record.timestamp;
                    }
                }
                Event::OrderCancelled {
                    order,
                    remaining_lots,
                    reason,
                    ..
                } => {
                    if let Some(history) = chunk.order(*order)? {
                        history.state = OrderState::Cancelled(*reason);
                        history.cancelled_lots = *remaining_lots;
                        history.remaining_lots = 0;
                        history.updated_sequence = record.sequence;
                        history.updated_at = record.timestamp;
                    }
                }
                _ => {
                    match event {
                        Event::OfferingOpened {
                            offering,
                            instrument,
                            issuer,
                            ..
                        } => {
                            self.offerings.insert(*offering, (*issuer, *instrument));
                            chunk.batch.put(
                                Key::new(OFFERINGS).u32(offering.0).0,
                                encode(&(issuer.0, instrument.0)),
                            );
                        }
                        Event::InstrumentListed { instrument, spec } => {
                            self.issuers.insert(*instrument, spec.issuer);
                            chunk.batch.put(
                                Key::new(ISSUERS).u32(instrument.0).0,
                                encode(&spec.issuer.0),
                            );
                        }
                        _ => {}
                    }
                    for party in self.parties(chunk.db, event)?.into_iter().flatten() {
                        chunk.entry(party, record, index, EntryKind::Event(event.clone()));
                        for (kind, instrument, quantity, amount) in
                            self.lines(chunk.db, event, party)?
                        {
                            let balance = self.balance(chunk.db, party)?;
                            chunk
                                .statement(party, year, balance)?
                                .add(kind, instrument, quantity, amount);
                        }
                    }
                }
            }
        }
        let mut command = None;
        for account in &record.accounts {
            let mutua_engine::AccountAfter::Cash {
                participant,
                balance_minor,
                reserved_minor,
            } = *account
            else {
                continue;
            };
            let (before, reserved_before) = self.cash(chunk.db, participant)?;
            if (before, reserved_before) == (balance_minor, reserved_minor) {
                continue;
            }
            let withheld = record
                .events
                .iter()
                .any(|event| event.withholds_cash_of().contains(&Some(participant)));
            let command = command
                .get_or_insert_with(|| {
                    crate::metrics::COMMAND_KINDS[crate::metrics::kind_index(&record.command.kind)]
                        .to_string()
                })
                .clone();
            chunk.entry(
                participant,
                record,
                u32::MAX,
                EntryKind::Cash {
                    command,
                    before_minor: before,
                    after_minor: balance_minor,
                    reserved_minor,
                    withheld,
                },
            );
            chunk.statement(participant, year, before)?.closing_minor = balance_minor;
            self.balances
                .insert(participant, (balance_minor, reserved_minor));
            chunk.batch.put(
                Key::new(BALANCES).u32(participant.0).0,
                encode(&(balance_minor, reserved_minor)),
            );
        }
        Ok(())
    }

    fn issuer_of(
        &mut self,
        db: &DB,
        instrument: InstrumentId,
    ) -> IndexResult<Option<ParticipantId>> {
        if let Some(issuer) = self.issuers.get(&instrument) {
            return Ok(Some(*issuer));
        }
        let Some(stored) = db.get(Key::new(ISSUERS).u32(instrument.0).0)? else {
            return Ok(None);
        };
        let issuer = ParticipantId(decode(&stored)?);
        self.issuers.insert(instrument, issuer);
        Ok(Some(issuer))
    }

    fn offering(
        &mut self,
        db: &DB,
        offering: OfferingId,
    ) -> IndexResult<Option<(ParticipantId, InstrumentId)>> {
        if let Some(found) = self.offerings.get(&offering) {
            return Ok(Some(*found));
        }
        let Some(stored) = db.get(Key::new(OFFERINGS).u32(offering.0).0)? else {
            return Ok(None);
        };
        let (issuer, instrument): (u32, u32) = decode(&stored)?;
        let found = (ParticipantId(issuer), InstrumentId(instrument));
        self.offerings.insert(offering, found);
        Ok(Some(found))
    }

    /// The participants whose history shows `event` (order events and trades are handled
    /// apart). A private event is shown to the one participant it is private to.
    fn parties(&mut self, db: &DB, event: &Event) -> IndexResult<[Option<ParticipantId>; 2]> {
        if let Some(owner) = event.private_to() {
            return Ok([Some(owner), None]);
        }
        let one = |participant: &ParticipantId| [Some(*participant), None];
        let two = |a: &ParticipantId, b: &ParticipantId| [Some(*a), (a != b).then_some(*b)];
        Ok(match event {
            Event::ParticipantRegistered { participant, .. }
            | Event::CredentialIssued { participant, .. }
            | Event::CredentialRevoked { participant, .. }
            | Event::ParticipantStatusChanged { participant, .. }
            | Event::NettingPosition { participant, .. } => one(participant),
            Event::AccreditationChanged { organization, .. }
            | Event::ResolutionProposed { organization, .. }
            | Event::ResolutionClosed { organization, .. }
            | Event::AccreditedCategoriesSet { organization, .. }
            | Event::SurplusDeclared { organization, .. } => one(organization),
            Event::CashDeposited { account, .. } | Event::CashWithdrawn { account, .. } => {
                one(account)
            }
            Event::InstrumentListed { spec, .. } => one(&spec.issuer),
            Event::OfferingOpened { issuer, .. } | Event::DistributionPaid { issuer, .. } => {
                one(issuer)
            }
            Event::Subscribed { contributor, .. }
            | Event::UnitsIssued { contributor, .. }
            | Event::SubscriptionReleased { contributor, .. }
            | Event::TaxCreditRecorded { contributor, .. }
            | Event::SubscriptionScaledBack { contributor, .. }
            | Event::PoolContributed { contributor, .. } => one(contributor),
            Event::OfferingClosed { offering, .. } => [
                self.offering(db, *offering)?.map(|(issuer, _)| issuer),
                None,
            ],
            Event::DistributionReceived { holder, .. }
            | Event::ParRepaid { holder, .. }
            | Event::WithdrawalRequested { holder, .. }
            | Event::WithdrawalCancelled { holder, .. } => one(holder),
            Event::InstrumentMatured { instrument, .. } => [self.issuer_of(db, *instrument)?, None],
            Event::WithdrawalPaid { holder, issuer, .. } => two(holder, issuer),
            Event::VoteCast { member, .. } => one(member),
            Event::ServicePackageDefined { funder, .. } => one(funder),
            Event::VoucherIssued {
                funder,
                beneficiary,
                ..
            }
            | Event::VoucherExpired {
                funder,
                beneficiary,
                ..
            } => two(funder, beneficiary),
            Event::VoucherRedeemed {
                beneficiary,
                organization,
                ..
            } => two(beneficiary, organization),
            Event::ObligationRecorded {
                debtor, creditor, ..
            } => two(debtor, creditor),
            Event::ServiceValueRedeemed {
                holder,
                organization,
                ..
            } => two(holder, organization),
            Event::TimeCredits { from, to, .. } => match (from, to) {
                (Some(from), Some(to)) => two(from, to),
                (Some(one), None) | (None, Some(one)) => [Some(*one), None],
                (None, None) => [None, None],
            },
            Event::PoolLoanRepaid { debtor, .. } => one(debtor),
            _ => [None, None],
        })
    }

    /// The statement lines `event` adds for `party`: kind, instrument, quantity, amount.
    #[allow(clippy::type_complexity)]
    fn lines(
        &mut self,
        db: &DB,
        event: &Event,
        party: ParticipantId,
    ) -> IndexResult<Vec<(LineKind, Option<InstrumentId>, Option<u64>, Option<u64>)>> {
        use LineKind as L;
        let cash = |kind, amount: u64| (kind, None, None, Some(amount));
        let of = |kind, instrument: InstrumentId, lots: Option<u64>, amount: u64| {
            (kind, Some(instrument), lots, Some(amount))
        };
        Ok(match event {
            Event::CashDeposited { amount_minor, .. } => {
                vec![cash(L::CashDeposited, *amount_minor)]
            }
            Event::CashWithdrawn { amount_minor, .. } => {
                vec![cash(L::CashWithdrawn, *amount_minor)]
            }
            Event::UnitsIssued {
                instrument,
                lots,
                paid_minor,
                ..
            } => vec![of(L::Subscriptions, *instrument, Some(*lots), *paid_minor)],
            Event::OfferingClosed {
                offering,
                issued: true,
                subscribed_lots,
                proceeds_minor,
            } => match self.offering(db, *offering)? {
                Some((_, instrument)) => vec![of(
                    L::OfferingProceeds,
                    instrument,
                    Some(*subscribed_lots),
                    *proceeds_minor,
                )],
                None => vec![],
            },
            Event::TaxCreditRecorded {
                instrument,
                purchase_minor,
                credit_minor,
                ..
            } => vec![
                of(L::TaxCredits, *instrument, None, *credit_minor),
                of(L::TaxCreditPurchases, *instrument, None, *purchase_minor),
            ],
            Event::DistributionReceived {
                instrument,
                lots,
                amount_minor,
                ..
            } => vec![of(
                L::DistributionsReceived,
                *instrument,
                Some(*lots),
                *amount_minor,
            )],
            Event::DistributionPaid {
                instrument,
                lots_outstanding,
                total_minor,
                ..
            } => vec![of(
                L::DistributionsPaid,
                *instrument,
                Some(*lots_outstanding),
                *total_minor,
            )],
            Event::ParRepaid {
                instrument,
                lots,
                amount_minor,
                ..
            } => vec![of(L::ParRepaid, *instrument, Some(*lots), *amount_minor)],
            Event::InstrumentMatured {
                instrument,
                lots_retired,
                repaid_minor,
            } => vec![of(
                L::MaturityRepaid,
                *instrument,
                Some(*lots_retired),
                *repaid_minor,
            )],
            Event::WithdrawalPaid {
                instrument,
                holder,
                lots,
                amount_minor,
                ..
            } => {
                let kind = if *holder == party {
                    L::UnitsSoldBack
                } else {
                    L::UnitsBoughtBack
                };
                vec![of(kind, *instrument, Some(*lots), *amount_minor)]
            }
            Event::VoucherIssued {
                funder,
                face_value_minor,
                ..
            } => {
                let kind = if *funder == party {
                    L::VouchersFunded
                } else {
                    L::VouchersReceived
                };
                vec![cash(kind, *face_value_minor)]
            }
            Event::VoucherSplit {
                co_payment_minor,
                subsidy_minor,
                ..
            } => vec![
                cash(L::VoucherCoPayments, *co_payment_minor),
                cash(L::VoucherSubsidies, *subsidy_minor),
            ],
            Event::VoucherRedeemed {
                beneficiary,
                face_value_minor,
                ..
            } => {
                let kind = if *beneficiary == party {
                    L::VouchersUsed
                } else {
                    L::VouchersServed
                };
                vec![cash(kind, *face_value_minor)]
            }
            Event::VoucherExpired {
                funder,
                face_value_minor,
                ..
            } => {
                let kind = if *funder == party {
                    L::VouchersExpiredFunded
                } else {
                    L::VouchersExpiredReceived
                };
                vec![cash(kind, *face_value_minor)]
            }
            Event::ServiceValueRedeemed {
                instrument,
                holder,
                amount_minor,
                ..
            } => {
                let kind = if *holder == party {
                    L::ServiceValueRedeemed
                } else {
                    L::ServiceValueProvided
                };
                vec![of(kind, *instrument, None, *amount_minor)]
            }
            Event::TimeCredits { to, minutes, .. } => {
                let kind = if *to == Some(party) {
                    L::TimeCreditsReceived
                } else {
                    L::TimeCreditsGiven
                };
                vec![(kind, None, Some(*minutes), None)]
            }
            Event::PoolContributed { amount_minor, .. } => {
                vec![cash(L::PoolContributed, *amount_minor)]
            }
            Event::PoolLoanRepaid { amount_minor, .. } => {
                vec![cash(L::PoolLoansRepaid, *amount_minor)]
            }
            Event::NettingPosition {
                paid_minor,
                loan_minor,
                received_minor,
                ..
            } => [
                (L::NettingPaid, *paid_minor),
                (L::NettingLoans, *loan_minor),
                (L::NettingReceived, *received_minor),
            ]
            .into_iter()
            .filter(|(_, amount)| *amount > 0)
            .map(|(kind, amount)| cash(kind, amount))
            .collect(),
            Event::SurplusDeclared {
                surplus_minor,
                reserve_minor,
                fund_minor,
                pool_minor,
                ..
            } => vec![
                cash(L::SurplusDeclared, *surplus_minor),
                cash(L::SurplusToReserve, *reserve_minor),
                cash(L::SurplusToFund, *fund_minor),
                cash(L::SurplusToPool, *pool_minor),
            ],
            _ => vec![],
        })
    }
}
