//! `mutua.v1.History` (everyone's own history; regulator and operator read anyone's) and
//! `mutua.v1.OpenData` (public trade history and bars, no token). Both read the history read
//! model (`crate::history`), never the engine thread, after it has caught up with what was
//! journaled when the request arrived.

use std::collections::HashMap;
use std::sync::Arc;

use mutua_engine::{CancelReason, Event, InstrumentId, ParticipantId, RejectReason, Side};
use tonic::{Request, Response, Status};

use crate::convert::{self, edge_status, EdgeReason, InstrumentUnits};
use crate::history::model::{
    self, Bar, Entry, EntryKind, Interval, Key, OrderHistory, OrderState, PublicTrade, Statement,
};
use crate::history::{HistoryError, Page, Range};
use crate::pb;
use crate::services::{account_of, Shared};

/// Entries in one history page when the request names no size, and at most.
const HISTORY_PAGE_DEFAULT: usize = 100;
const HISTORY_PAGE_MAX: usize = 1_000;
/// Bars in one reply when the request names no limit, and at most.
const BARS_DEFAULT: usize = 1_000;
const BARS_MAX: usize = 10_000;

fn history_status(error: HistoryError) -> Status {
    match error {
        HistoryError::ForeignPageToken => convert::invalid_field(error.to_string()),
        HistoryError::Failed(_) | HistoryError::Store(_) | HistoryError::Disabled => {
            edge_status(EdgeReason::Unavailable, error.to_string())
        }
    }
}

/// A listing request, checked.
struct Listing {
    participant: ParticipantId,
    /// The caller is the participant whose history this is (and may see its private parts).
    own: bool,
    instrument: Option<Arc<InstrumentUnits>>,
    from: u64,
    until: u64,
    page: usize,
    token: Vec<u8>,
    newest_first: bool,
}

impl Listing {
    /// The listing's keys under `prefix` (orders or entries) for its participant and times.
    fn participant_range(&self, prefix: u8) -> Range {
        Range::timed(
            Key::new(prefix).u32(self.participant.0),
            self.from,
            self.until,
        )
    }
}

impl Shared {
    /// Checks a listing's filter: whose history (the caller's, or anyone's for a regulator or
    /// operator), the instrument, the time range and the page.
    async fn listing(
        &self,
        caller: Option<crate::auth::Caller>,
        filter: Option<pb::HistoryFilter>,
    ) -> Result<Listing, Status> {
        let filter = filter.unwrap_or_default();
        let (participant, own) = match caller {
            Some(caller) => {
                let participant = account_of(
                    caller,
                    (filter.participant_id != 0).then_some(filter.participant_id),
                )?;
                let known = self
                    .query(move |engine| engine.participant(participant).is_some())
                    .await?;
                if !known {
                    return Err(convert::field_rejection(
                        "filter.participant_id",
                        RejectReason::UnknownAccount,
                    ));
                }
                (participant, participant == caller.participant)
            }
            None => (ParticipantId(0), false),
        };
        let instrument = match &filter.instrument {
            Some(reference) => Some(
                self.catalog
                    .resolve(Some(reference), "filter.instrument")
                    .await?,
            ),
            None => None,
        };
        if filter.until_time_ns != 0 && filter.from_time_ns >= filter.until_time_ns {
            return Err(convert::invalid_field(
                "filter.until_time_ns: must be after from_time_ns (or 0 for no end)",
            ));
        }
        let page = match filter.page_size as usize {
            0 => HISTORY_PAGE_DEFAULT,
            size if size <= HISTORY_PAGE_MAX => size,
            _ => {
                return Err(convert::invalid_field(format!(
                    "filter.page_size: at most {HISTORY_PAGE_MAX}"
                )))
            }
        };
        Ok(Listing {
            participant,
            own,
            instrument,
            from: filter.from_time_ns,
            until: filter.until_time_ns,
            page,
            token: filter.page_token,
            newest_first: filter.newest_first,
        })
    }

    /// Runs a scan of the read model on a blocking thread, once the model has caught up.
    async fn scan<T, U>(
        &self,
        range: Range,
        listing: &Listing,
        keep: impl FnMut(T) -> Option<U> + Send + 'static,
    ) -> Result<(Page<U>, u64), Status>
    where
        T: serde::de::DeserializeOwned,
        U: Send + 'static,
    {
        let through = self.history.caught_up().await.map_err(history_status)?;
        let history = self.history.clone();
        let (token, newest_first, page) =
            (listing.token.clone(), listing.newest_first, listing.page);
        let page = tokio::task::spawn_blocking(move || {
            history.scan(&range, &token, newest_first, page, keep)
        })
        .await
        .map_err(|_| Status::internal("history scan failed"))?
        .map_err(history_status)?;
        Ok((page, through))
    }

    /// Units of every instrument a page names, looked up once each.
    async fn units_of(
        &self,
        instruments: impl Iterator<Item = InstrumentId>,
    ) -> Result<HashMap<InstrumentId, Arc<InstrumentUnits>>, Status> {
        let mut known = HashMap::new();
        for id in instruments {
            if let std::collections::hash_map::Entry::Vacant(slot) = known.entry(id) {
                let units = self.catalog.units(id).await?.ok_or_else(|| {
                    Status::internal(format!("instrument {} is in history but not listed", id.0))
                })?;
                slot.insert(units);
            }
        }
        Ok(known)
    }
}

pub struct HistoryService {
    shared: Shared,
}

impl HistoryService {
    pub(crate) fn new(shared: Shared) -> HistoryService {
        HistoryService { shared }
    }
}

fn cancel_reason_name(reason: CancelReason) -> &'static str {
    match reason {
        CancelReason::Requested => "requested",
        CancelReason::ImmediateOrCancelRemainder => "immediate_or_cancel_remainder",
        CancelReason::SelfTrade => "self_trade",
        CancelReason::Matured => "matured",
        CancelReason::OwnerSuspended => "owner_suspended",
        CancelReason::FillOrKillUnfillable => "fill_or_kill_unfillable",
    }
}

fn order_to_pb(order: &OrderHistory, units: &InstrumentUnits) -> pb::OrderRecord {
    let (state, cancel_reason) = match order.state {
        OrderState::Working | OrderState::Resting => (pb::OrderState::Resting, ""),
        OrderState::Filled => (pb::OrderState::Filled, ""),
        OrderState::Cancelled(reason) => (pb::OrderState::Cancelled, cancel_reason_name(reason)),
    };
    pb::OrderRecord {
        order_id: order.order.0,
        instrument_id: order.instrument.0,
        symbol: units.symbol.clone(),
        side: convert::side_to_pb(order.side) as i32,
        price: units.price_text(order.price_ticks),
        quantity: units.quantity_text(order.lots),
        time_in_force: convert::time_in_force_to_pb(order.time_in_force) as i32,
        request_id: order.request_id.clone(),
        placed_sequence: order.placed_sequence,
        placed_at_ns: order.placed_at,
        state: state as i32,
        cancel_reason: cancel_reason.to_string(),
        filled_quantity: units.quantity_text(order.filled_lots),
        filled_notional: convert::wide_cash_text(order.filled_notional_minor, units.currency_scale),
        reduced_quantity: units.quantity_text(order.reduced_lots),
        remaining_quantity: units.quantity_text(order.remaining_lots),
        cancelled_quantity: units.quantity_text(order.cancelled_lots),
        updated_sequence: order.updated_sequence,
        updated_at_ns: order.updated_at,
        fill_count: order.fill_count,
        fills: order
            .fills
            .iter()
            .map(|fill| pb::OwnFill {
                sequence: fill.sequence,
                time_ns: fill.time,
                instrument_id: order.instrument.0,
                symbol: units.symbol.clone(),
                order_id: order.order.0,
                side: convert::side_to_pb(order.side) as i32,
                price: units.price_text(fill.price_ticks),
                quantity: units.quantity_text(fill.lots),
                notional: units.cash_text(fill.notional_minor),
                maker: fill.maker,
            })
            .collect(),
    }
}

/// `participant`'s side of a trade: its order, its side, and whether it was resting.
fn own_side(
    trade: &Event,
    participant: ParticipantId,
) -> Option<(mutua_engine::OrderId, Side, bool)> {
    let Event::Trade {
        maker_order,
        taker_order,
        maker,
        taker,
        taker_side,
        ..
    } = trade
    else {
        return None;
    };
    if *taker == participant {
        Some((*taker_order, *taker_side, false))
    } else if *maker == participant {
        Some((*maker_order, taker_side.opposite(), true))
    } else {
        None
    }
}

#[tonic::async_trait]
impl pb::history_server::History for HistoryService {
    async fn list_orders(
        &self,
        request: Request<pb::HistoryOrdersRequest>,
    ) -> Result<Response<pb::HistoryOrdersResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let listing = self
            .shared
            .listing(Some(caller), request.into_inner().filter)
            .await?;
        let only = listing.instrument.as_ref().map(|units| units.id);
        let range = listing.participant_range(model::ORDERS);
        let (page, through) = self
            .shared
            .scan(range, &listing, move |order: OrderHistory| {
                only.is_none_or(|only| only == order.instrument)
                    .then_some(order)
            })
            .await?;
        let units = self
            .shared
            .units_of(page.items.iter().map(|order| order.instrument))
            .await?;
        Ok(Response::new(pb::HistoryOrdersResponse {
            orders: page
                .items
                .iter()
                .map(|order| order_to_pb(order, &units[&order.instrument]))
                .collect(),
            next_page_token: page.next,
            indexed_through: through,
        }))
    }

    async fn list_fills(
        &self,
        request: Request<pb::HistoryFillsRequest>,
    ) -> Result<Response<pb::HistoryFillsResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let listing = self.shared.listing(Some(caller), request.filter).await?;
        let only = listing.instrument.as_ref().map(|units| units.id);
        let (participant, order_only) = (listing.participant, request.order_id);
        let range = listing.participant_range(model::ENTRIES);
        let (page, through) = self
            .shared
            .scan(range, &listing, move |entry: Entry| {
                let EntryKind::Event(trade @ Event::Trade { instrument, .. }) = &entry.what else {
                    return None;
                };
                let (order, _, _) = own_side(trade, participant)?;
                (only.is_none_or(|only| only == *instrument)
                    && (order_only == 0 || order_only == order.0))
                    .then_some(entry)
            })
            .await?;
        let units = self
            .shared
            .units_of(page.items.iter().filter_map(|entry| match &entry.what {
                EntryKind::Event(Event::Trade { instrument, .. }) => Some(*instrument),
                _ => None,
            }))
            .await?;
        let fills = page
            .items
            .iter()
            .filter_map(|entry| {
                let EntryKind::Event(
                    trade @ Event::Trade {
                        instrument,
                        price_ticks,
                        lots,
                        notional_minor,
                        ..
                    },
                ) = &entry.what
                else {
                    return None;
                };
                let (order, side, maker) = own_side(trade, participant)?;
                let units = &units[instrument];
                Some(pb::OwnFill {
                    sequence: entry.sequence,
                    time_ns: entry.time,
                    instrument_id: instrument.0,
                    symbol: units.symbol.clone(),
                    order_id: order.0,
                    side: convert::side_to_pb(side) as i32,
                    price: units.price_text(*price_ticks),
                    quantity: units.quantity_text(*lots),
                    notional: units.cash_text(*notional_minor),
                    maker,
                })
            })
            .collect();
        Ok(Response::new(pb::HistoryFillsResponse {
            fills,
            next_page_token: page.next,
            indexed_through: through,
        }))
    }

    async fn list_cash_movements(
        &self,
        request: Request<pb::CashMovementsRequest>,
    ) -> Result<Response<pb::CashMovementsResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let listing = self
            .shared
            .listing(Some(caller), request.into_inner().filter)
            .await?;
        let scale = self.shared.catalog.currency_scale().await?;
        let own = listing.own;
        let range = listing.participant_range(model::ENTRIES);
        let (page, through) = self
            .shared
            .scan(range, &listing, move |entry: Entry| {
                let EntryKind::Cash {
                    command,
                    before_minor,
                    after_minor,
                    reserved_minor,
                    withheld,
                } = entry.what
                else {
                    return None;
                };
                let shown = own || !withheld;
                let show = |text: String| if shown { text } else { String::new() };
                let amount = if after_minor >= before_minor {
                    convert::cash_text(after_minor - before_minor, scale)
                } else {
                    format!("-{}", convert::cash_text(before_minor - after_minor, scale))
                };
                Some(pb::CashMovement {
                    sequence: entry.sequence,
                    time_ns: entry.time,
                    command,
                    amount: show(amount),
                    balance: show(convert::cash_text(after_minor, scale)),
                    reserved: show(convert::cash_text(reserved_minor, scale)),
                    withheld: !shown,
                })
            })
            .await?;
        Ok(Response::new(pb::CashMovementsResponse {
            movements: page.items,
            next_page_token: page.next,
            indexed_through: through,
        }))
    }

    async fn list_activity(
        &self,
        request: Request<pb::ActivityRequest>,
    ) -> Result<Response<pb::ActivityResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let listing = self
            .shared
            .listing(Some(caller), request.into_inner().filter)
            .await?;
        let own = listing.own;
        let range = listing.participant_range(model::ENTRIES);
        let (page, through) = self
            .shared
            .scan(range, &listing, move |entry: Entry| {
                let EntryKind::Event(event) = &entry.what else {
                    return None;
                };
                if event.private_to().is_some() && !own {
                    return None;
                }
                let (kind, json) = crate::audit::kind_and_json(event);
                Some(pb::ActivityEntry {
                    sequence: entry.sequence,
                    time_ns: entry.time,
                    kind,
                    json,
                })
            })
            .await?;
        Ok(Response::new(pb::ActivityResponse {
            entries: page.items,
            next_page_token: page.next,
            indexed_through: through,
        }))
    }

    async fn get_statement(
        &self,
        request: Request<pb::StatementRequest>,
    ) -> Result<Response<pb::Statement>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let request = request.into_inner();
        let listing = self
            .shared
            .listing(
                Some(caller),
                Some(pb::HistoryFilter {
                    participant_id: request.participant_id,
                    ..Default::default()
                }),
            )
            .await?;
        if !(1970..=9999).contains(&request.year) {
            return Err(convert::invalid_field(format!(
                "year: {} is outside 1970-9999",
                request.year
            )));
        }
        let scale = self.shared.catalog.currency_scale().await?;
        let through = self
            .shared
            .history
            .caught_up()
            .await
            .map_err(history_status)?;
        let participant = listing.participant;
        let history = self.shared.history.clone();
        let year = request.year;
        let statement = tokio::task::spawn_blocking(move || -> Result<Statement, HistoryError> {
            let key = Key::new(model::STATEMENTS).u32(participant.0).year(year).0;
            if let Some(statement) = history.get::<Statement>(&key)? {
                return Ok(statement);
            }
            let prefix = Key::new(model::STATEMENTS).u32(participant.0).0;
            let before: Option<Statement> = history.last_at_or_before(&prefix, &key)?;
            Ok(Statement::opening(
                before.map_or(0, |before| before.closing_minor),
            ))
        })
        .await
        .map_err(|_| Status::internal("statement read failed"))?
        .map_err(history_status)?;
        let units = self
            .shared
            .units_of(
                statement
                    .lines
                    .keys()
                    .filter(|(_, instrument)| *instrument != 0)
                    .map(|(_, instrument)| InstrumentId(*instrument)),
            )
            .await?;
        let mut withheld_lines = 0;
        let mut lines = Vec::new();
        for ((kind, instrument), line) in &statement.lines {
            if kind.private() && !listing.own {
                withheld_lines += 1;
                continue;
            }
            let units = units.get(&InstrumentId(*instrument));
            let quantity = match (line.has_quantity, units) {
                (false, _) => String::new(),
                (true, _) if kind.in_minutes() => line.quantity.to_string(),
                (true, Some(units)) => line
                    .quantity
                    .saturating_mul(u128::from(units.lot_size_units))
                    .to_string(),
                (true, None) => line.quantity.to_string(),
            };
            lines.push(pb::StatementLine {
                kind: kind.name().to_string(),
                instrument_id: *instrument,
                symbol: units.map(|units| units.symbol.clone()).unwrap_or_default(),
                count: line.count,
                quantity,
                amount: if line.has_amount {
                    convert::wide_cash_text(line.amount_minor, scale)
                } else {
                    String::new()
                },
            });
        }
        Ok(Response::new(pb::Statement {
            participant_id: participant.0,
            year,
            opening_balance: convert::cash_text(statement.opening_minor, scale),
            closing_balance: convert::cash_text(statement.closing_minor, scale),
            lines,
            withheld_lines,
            indexed_through: through,
        }))
    }
}

pub struct OpenDataService {
    shared: Shared,
}

impl OpenDataService {
    pub(crate) fn new(shared: Shared) -> OpenDataService {
        OpenDataService { shared }
    }
}

fn bar_to_pb(bar: &Bar, units: &InstrumentUnits) -> pb::Bar {
    let per_lot = bar
        .notional_minor
        .checked_div(bar.lots)
        .and_then(|per_lot| u64::try_from(per_lot).ok())
        .unwrap_or(0);
    pb::Bar {
        start_ns: bar.start,
        open: units.price_text(bar.open_ticks),
        high: units.price_text(bar.high_ticks),
        low: units.price_text(bar.low_ticks),
        close: units.price_text(bar.close_ticks),
        volume: bar
            .lots
            .saturating_mul(u128::from(units.lot_size_units))
            .to_string(),
        notional: convert::wide_cash_text(bar.notional_minor, units.currency_scale),
        trades: bar.trades,
        vwap: units.per_unit_text(per_lot),
    }
}

#[tonic::async_trait]
impl pb::open_data_server::OpenData for OpenDataService {
    async fn list_trades(
        &self,
        request: Request<pb::InstrumentTradesRequest>,
    ) -> Result<Response<pb::InstrumentTradesResponse>, Status> {
        self.shared.limits.anonymous_call(request.remote_addr())?;
        let listing = self
            .shared
            .listing(None, request.into_inner().filter)
            .await?;
        let Some(units) = listing.instrument.clone() else {
            return Err(convert::invalid_field(
                "filter.instrument: required (an id or a symbol)",
            ));
        };
        let range = Range::timed(
            Key::new(model::TRADES).u32(units.id.0),
            listing.from,
            listing.until,
        );
        let (page, through) = self
            .shared
            .scan(range, &listing, move |trade: PublicTrade| {
                convert::trade_to_pb(&trade.trade, trade.sequence, trade.time, &units)
            })
            .await?;
        Ok(Response::new(pb::InstrumentTradesResponse {
            trades: page.items,
            next_page_token: page.next,
            indexed_through: through,
        }))
    }

    async fn get_bars(
        &self,
        request: Request<pb::BarsRequest>,
    ) -> Result<Response<pb::BarsResponse>, Status> {
        self.shared.limits.anonymous_call(request.remote_addr())?;
        let request = request.into_inner();
        let units = self
            .shared
            .catalog
            .resolve(request.instrument.as_ref(), "instrument")
            .await?;
        let interval = match pb::BarInterval::try_from(request.interval) {
            Ok(pb::BarInterval::Minute) => Interval::Minute,
            Ok(pb::BarInterval::Hour) => Interval::Hour,
            Ok(pb::BarInterval::Day) => Interval::Day,
            _ => {
                return Err(convert::invalid_field(
                    "interval: required (minute, hour or day)",
                ))
            }
        };
        let limit = match request.limit as usize {
            0 => BARS_DEFAULT,
            limit if limit <= BARS_MAX => limit,
            _ => return Err(convert::invalid_field(format!("limit: at most {BARS_MAX}"))),
        };
        if request.until_time_ns != 0 && request.from_time_ns >= request.until_time_ns {
            return Err(convert::invalid_field(
                "until_time_ns: must be after from_time_ns (or 0 for no end)",
            ));
        }
        let listing = Listing {
            participant: ParticipantId(0),
            own: false,
            instrument: Some(units.clone()),
            from: request.from_time_ns,
            until: request.until_time_ns,
            page: limit,
            token: Vec::new(),
            newest_first: false,
        };
        let range = Range::timed(
            Key::new(model::BARS).u32(units.id.0).u8(interval as u8),
            listing.from,
            listing.until,
        );
        let (page, through) = self
            .shared
            .scan(range, &listing, |bar: Bar| Some(bar))
            .await?;
        Ok(Response::new(pb::BarsResponse {
            instrument_id: units.id.0,
            symbol: units.symbol.clone(),
            bars: page
                .items
                .iter()
                .map(|bar| bar_to_pb(bar, &units))
                .collect(),
            indexed_through: through,
        }))
    }
}
