//! `mutua.v1.MarketData`: public order-book depth and trades, with no token. Streams follow the
//! sequencer's broadcast of journaled batches, so they only ever show acknowledged state.

use std::sync::Arc;

use mutua_engine::{Event, InstrumentId, Side};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::convert::{self, InstrumentUnits};
use crate::pb;
use crate::sequencer::PublishedBatch;
use crate::services::Shared;

/// Price levels per side when a request asks for none.
pub const BOOK_LEVELS_DEFAULT: usize = 10;
/// Most price levels per side one request may ask for.
pub const BOOK_LEVELS_MAX: usize = 1_000;
/// Messages buffered for one market-data subscriber. A subscriber that falls further behind
/// than this and the sequencer's own broadcast buffer is told so and disconnected.
pub const STREAM_MESSAGES_BUFFERED_MAX: usize = 1_024;
/// Journal records a trades stream from a sequence reads at a time (whole batches).
const JOURNAL_RECORDS_PER_READ: usize = 4_096;

pub struct MarketDataService {
    shared: Shared,
}

impl MarketDataService {
    pub(crate) fn new(shared: Shared) -> MarketDataService {
        MarketDataService { shared }
    }
}

fn levels_wanted(depth: u32) -> Result<usize, Status> {
    match depth as usize {
        0 => Ok(BOOK_LEVELS_DEFAULT),
        levels if levels <= BOOK_LEVELS_MAX => Ok(levels),
        _ => Err(crate::convert::invalid_field(format!(
            "depth: at most {BOOK_LEVELS_MAX} levels per side"
        ))),
    }
}

type Depth = (Vec<(u64, u64, u32)>, Vec<(u64, u64, u32)>);

impl Shared {
    async fn depth(&self, instrument: InstrumentId, levels: usize) -> Result<Depth, Status> {
        self.query(move |engine| {
            let bids = engine
                .depth(instrument, Side::Buy, levels)
                .unwrap_or_default();
            let asks = engine
                .depth(instrument, Side::Sell, levels)
                .unwrap_or_default();
            (bids, asks)
        })
        .await
    }
}

fn book_to_pb(units: &InstrumentUnits, depth: &Depth, sequence: u64) -> pb::Book {
    pb::Book {
        instrument_id: units.id.0,
        symbol: units.symbol.clone(),
        bids: convert::levels_to_pb(&depth.0, units),
        asks: convert::levels_to_pb(&depth.1, units),
        sequence,
    }
}

/// Whether a batch may have changed `instrument`'s book. Cancels and reductions do not name
/// their instrument, so any of them counts; the caller compares depths before sending.
fn may_change_book(batch: &PublishedBatch, instrument: InstrumentId) -> bool {
    batch
        .iter()
        .flat_map(|applied| applied.events.iter())
        .any(|event| match event {
            Event::OrderAccepted {
                instrument: touched,
                ..
            }
            | Event::Trade {
                instrument: touched,
                ..
            } => *touched == instrument,
            Event::OrderCancelled { .. }
            | Event::OrderReduced { .. }
            | Event::OrderRested { .. } => true,
            _ => false,
        })
}

/// `batches` is subscribed by the handler before it answers, so a client that trades as soon as
/// the stream is open still sees its trade.
async fn stream_trades(
    shared: Shared,
    mut batches: broadcast::Receiver<PublishedBatch>,
    only: Option<InstrumentId>,
    outbound: mpsc::Sender<Result<pb::Trade, Status>>,
) {
    loop {
        let batch = tokio::select! {
            _ = outbound.closed() => return,
            _ = shared.stopping() => return,
            received = batches.recv() => match received {
                Ok(batch) => batch,
                Err(RecvError::Lagged(missed)) => {
                    shared.metrics.subscriber_lagged();
                    let _ = outbound.send(Err(Status::data_loss(format!("fell {missed} batches behind the market; subscribe again")))).await;
                    return;
                }
                Err(RecvError::Closed) => return,
            },
        };
        for applied in batch.iter() {
            for event in &applied.events {
                let Event::Trade { instrument, .. } = event else {
                    continue;
                };
                if only.is_some_and(|wanted| wanted != *instrument) {
                    continue;
                }
                let Ok(Some(units)) = shared.catalog.units(*instrument).await else {
                    return;
                };
                let Some(trade) =
                    convert::trade_to_pb(event, applied.sequence, applied.timestamp, &units)
                else {
                    continue;
                };
                if outbound.send(Ok(trade)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Trades from journal record `from` on: read from the journal at the subscriber's pace (the
/// audit feed's reader, `JournalReader::feed`), then followed as batches are journaled, so the
/// past and the present come through one path.
async fn trades_from_journal(
    shared: Shared,
    from: u64,
    only: Option<InstrumentId>,
    outbound: mpsc::Sender<Result<pb::Trade, Status>>,
) {
    let mut tail = crate::services::tail::JournalTail::new(&shared, from);
    let read = |journal: &crate::journal::JournalReader, mut cursor| {
        let records = journal.feed(&mut cursor, JOURNAL_RECORDS_PER_READ)?;
        let count = records.len();
        Ok((records, count, cursor))
    };
    loop {
        let records = tokio::select! {
            next = tail.next(read) => match next {
                Some(Ok(records)) => records,
                Some(Err(error)) => {
                    tracing::error!(%error, "trades cannot be read from the journal");
                    let _ = outbound.send(Err(Status::data_loss(error.to_string()))).await;
                    return;
                }
                None => return,
            },
            _ = outbound.closed() => return,
            _ = shared.stopping() => return,
        };
        for fed in records {
            let record = &fed.record;
            for event in &record.events {
                let Event::Trade { instrument, .. } = event else {
                    continue;
                };
                if only.is_some_and(|wanted| wanted != *instrument) {
                    continue;
                }
                let Ok(Some(units)) = shared.catalog.units(*instrument).await else {
                    return;
                };
                let Some(trade) =
                    convert::trade_to_pb(event, record.sequence, record.timestamp, &units)
                else {
                    continue;
                };
                tokio::select! {
                    sent = outbound.send(Ok(trade)) => if sent.is_err() { return },
                    _ = shared.stopping() => return,
                }
            }
        }
    }
}

async fn stream_book(
    shared: Shared,
    units: Arc<InstrumentUnits>,
    levels: usize,
    outbound: mpsc::Sender<Result<pb::Book, Status>>,
) {
    // Subscribe before the first read, so no change between the two is missed.
    let mut batches = shared.sequencer.subscribe();
    let Ok(mut last) = shared.depth(units.id, levels).await else {
        return;
    };
    if outbound
        .send(Ok(book_to_pb(&units, &last, 0)))
        .await
        .is_err()
    {
        return;
    }
    loop {
        let sequence = tokio::select! {
            _ = outbound.closed() => return,
            _ = shared.stopping() => return,
            received = batches.recv() => match received {
                Ok(batch) if may_change_book(&batch, units.id) => batch.last().map_or(0, |applied| applied.sequence),
                Ok(_) => continue,
                // A snapshot stream can skip: the next read shows the book as it is now.
                Err(RecvError::Lagged(_)) => 0,
                Err(RecvError::Closed) => return,
            },
        };
        let Ok(depth) = shared.depth(units.id, levels).await else {
            return;
        };
        if depth != last {
            if outbound
                .send(Ok(book_to_pb(&units, &depth, sequence)))
                .await
                .is_err()
            {
                return;
            }
            last = depth;
        }
    }
}

#[tonic::async_trait]
impl pb::market_data_server::MarketData for MarketDataService {
    async fn get_book(
        &self,
        request: Request<pb::GetBookRequest>,
    ) -> Result<Response<pb::Book>, Status> {
        self.shared.limits.anonymous_call(request.remote_addr())?;
        let request = request.into_inner();
        let levels = levels_wanted(request.depth)?;
        let units = self
            .shared
            .catalog
            .resolve(request.instrument.as_ref(), "instrument")
            .await?;
        let depth = self.shared.depth(units.id, levels).await?;
        Ok(Response::new(book_to_pb(&units, &depth, 0)))
    }

    type StreamTradesStream = ReceiverStream<Result<pb::Trade, Status>>;

    async fn stream_trades(
        &self,
        request: Request<pb::StreamTradesRequest>,
    ) -> Result<Response<Self::StreamTradesStream>, Status> {
        let permit = self.shared.limits.anonymous_stream(request.remote_addr())?;
        let request = request.into_inner();
        let only = match request.instrument.as_ref() {
            Some(reference) => Some(
                self.shared
                    .catalog
                    .resolve(Some(reference), "instrument")
                    .await?
                    .id,
            ),
            None => None,
        };
        let (outbound, trades) = mpsc::channel(STREAM_MESSAGES_BUFFERED_MAX);
        let shared = self.shared.clone();
        match request.from_sequence {
            Some(from) => {
                tokio::spawn(async move {
                    let _permit = permit;
                    trades_from_journal(shared, from, only, outbound).await;
                });
            }
            None => {
                let batches = self.shared.sequencer.subscribe();
                tokio::spawn(async move {
                    let _permit = permit;
                    stream_trades(shared, batches, only, outbound).await;
                });
            }
        }
        Ok(Response::new(ReceiverStream::new(trades)))
    }

    type StreamBookStream = ReceiverStream<Result<pb::Book, Status>>;

    async fn stream_book(
        &self,
        request: Request<pb::StreamBookRequest>,
    ) -> Result<Response<Self::StreamBookStream>, Status> {
        let permit = self.shared.limits.anonymous_stream(request.remote_addr())?;
        let request = request.into_inner();
        let levels = levels_wanted(request.depth)?;
        let units = self
            .shared
            .catalog
            .resolve(request.instrument.as_ref(), "instrument")
            .await?;
        let (outbound, books) = mpsc::channel(STREAM_MESSAGES_BUFFERED_MAX);
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let _permit = permit;
            stream_book(shared, units, levels, outbound).await;
        });
        Ok(Response::new(ReceiverStream::new(books)))
    }
}
