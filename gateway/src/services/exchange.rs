//! `mutua.v1.Exchange`: placing, cancelling and reducing orders, one at a time or pipelined on
//! the `OrderEntry` stream, and reading one's own resting orders.

use std::sync::Arc;

use mutua_engine::{Command, CommandKind, OrderId, RejectReason};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::Caller;
use crate::convert::{self, InstrumentUnits};
use crate::convert::{edge_status, EdgeReason};
use crate::journal::JournalReader;
use crate::pb;
use crate::pb::order_entry_request::Command as EntryCommand;
use crate::pb::order_entry_response::Result as EntryResult;
use crate::sequencer::{Applied, Sequencer};
use crate::services::{account_of, first_outcome, reads_everything, sequencer_status, Shared};

/// Commands of one `OrderEntry` stream queued for the engine but not yet answered. When it is
/// reached the gateway stops reading the stream, and HTTP/2 flow control slows the client.
pub const ORDER_ENTRY_IN_FLIGHT_MAX: usize = 4_096;

pub struct ExchangeService {
    shared: Shared,
}

impl ExchangeService {
    pub(crate) fn new(shared: Shared) -> ExchangeService {
        ExchangeService { shared }
    }
}

/// What a command needs to be answered once its outcome is journaled.
enum Reply {
    Place(Arc<InstrumentUnits>),
    Cancel(Option<Arc<InstrumentUnits>>),
    Reduce(Arc<InstrumentUnits>),
}

impl Reply {
    fn answer(&self, applied: &Applied) -> Result<EntryResult, Status> {
        Ok(match self {
            Reply::Place(units) => {
                EntryResult::Placed(convert::place_order_response(applied, units)?)
            }
            Reply::Cancel(units) => {
                EntryResult::Cancelled(convert::cancel_order_response(applied, units.as_deref())?)
            }
            Reply::Reduce(units) => {
                EntryResult::Reduced(convert::reduce_order_response(applied, units)?)
            }
        })
    }
}

/// A converted order-entry command, ready for the engine.
struct Prepared {
    command: Command,
    request_id: String,
    reply: Reply,
}

impl Shared {
    /// Validates and converts one order-entry command. The units of the instrument come from the
    /// catalog; cancel and reduce first ask the engine which instrument the order is in.
    async fn prepare(&self, caller: Caller, entry: &EntryCommand) -> Result<Prepared, Status> {
        let (request_id, kind, reply) = match entry {
            EntryCommand::Place(request) => {
                let units = self
                    .catalog
                    .resolve(request.instrument.as_ref(), "instrument")
                    .await?;
                (
                    &request.request_id,
                    convert::place_order(request, &units)?,
                    Reply::Place(units),
                )
            }
            EntryCommand::Cancel(request) => {
                let units = self.units_of_order(OrderId(request.order_id)).await?;
                (
                    &request.request_id,
                    CommandKind::try_from(request)?,
                    Reply::Cancel(units),
                )
            }
            EntryCommand::Reduce(request) => {
                let units = self
                    .units_of_order(OrderId(request.order_id))
                    .await?
                    .ok_or_else(|| {
                        convert::field_rejection("order_id", RejectReason::UnknownOrder)
                    })?;
                (
                    &request.request_id,
                    convert::reduce_order(request, &units)?,
                    Reply::Reduce(units),
                )
            }
        };
        let id = convert::checked_command_id(caller.participant, request_id)?;
        Ok(Prepared {
            command: Command {
                id,
                participant: caller.participant,
                kind,
            },
            request_id: request_id.clone(),
            reply,
        })
    }

    /// The units of the instrument a resting order is in, if it rests.
    async fn units_of_order(&self, order: OrderId) -> Result<Option<Arc<InstrumentUnits>>, Status> {
        match self
            .query(move |engine| engine.order(order).map(|resting| resting.instrument))
            .await?
        {
            Some(instrument) => self.catalog.units(instrument).await,
            None => Ok(None),
        }
    }

    async fn execute(&self, caller: Caller, entry: &EntryCommand) -> Result<EntryResult, Status> {
        let prepared = self.prepare(caller, entry).await?;
        let began = std::time::Instant::now();
        let applied = self
            .sequencer
            .submit(prepared.command, prepared.request_id)
            .await
            .map_err(sequencer_status)?;
        crate::services::log_command(caller, request_id_of(entry), &applied, began);
        let applied = first_outcome(&self.journal, applied)?;
        prepared.reply.answer(&applied)
    }
}

/// One order-entry command on its way: queued for the engine, or already refused.
struct InFlight {
    request_id: String,
    outcome: Result<(oneshot::Receiver<Arc<Applied>>, Reply), Status>,
}

/// What the reader hands the writer, in stream order.
enum Entry {
    Command(InFlight),
    /// The stream must end with this status after everything before it is answered: a message
    /// that could not be decoded, or a token revoked while the stream was open.
    End(Status),
}

impl InFlight {
    async fn finish(
        self,
        journal: &JournalReader,
        sequencer: &Sequencer,
    ) -> pb::OrderEntryResponse {
        let result = match self.outcome {
            Ok((receiver, reply)) => match receiver.await {
                Ok(applied) => {
                    first_outcome(journal, applied).and_then(|applied| reply.answer(&applied))
                }
                // Dropped unanswered: the node stopped leading (say where the leader is), or
                // stopped.
                Err(_) => Err(sequencer_status(sequencer.unanswered())),
            },
            Err(status) => Err(status),
        };
        let result = result
            .unwrap_or_else(|status| EntryResult::Rejected(convert::rejection_message(&status)));
        pb::OrderEntryResponse {
            request_id: self.request_id,
            result: Some(result),
        }
    }
}

fn request_id_of(entry: &EntryCommand) -> &str {
    match entry {
        EntryCommand::Place(request) => &request.request_id,
        EntryCommand::Cancel(request) => &request.request_id,
        EntryCommand::Reduce(request) => &request.request_id,
    }
}

/// Reads commands off the stream and queues each for the engine in arrival order.
async fn read_entries(
    shared: Shared,
    caller: Caller,
    mut inbound: Streaming<pb::OrderEntryRequest>,
    in_flight: mpsc::Sender<Entry>,
) {
    let invalidated = shared.auth.invalidated(caller);
    tokio::pin!(invalidated);
    let mut messages_read: u64 = 0;
    let bucket = shared.limits.bucket(caller.participant);
    loop {
        let received = tokio::select! {
            received = inbound.message() => received,
            // Shutting down: take no more, answer what is queued, then end.
            _ = shared.stopping() => return,
            // The token was revoked or the participant suspended: take no more, answer what is
            // queued, then end with UNAUTHENTICATED.
            status = &mut invalidated => {
                let _ = in_flight.send(Entry::End(status)).await;
                return;
            }
        };
        let message = match received {
            Ok(Some(message)) => message,
            // The client finished sending: answer what is queued, then end.
            Ok(None) => return,
            // A message that does not decode ends the stream with INVALID_ARGUMENT, naming it,
            // after everything before it is answered; nothing after it was read or applied.
            Err(status)
                if status.code() == tonic::Code::InvalidArgument
                    || status.code() == tonic::Code::Internal =>
            {
                let message = format!(
                    "message {} of this stream is not a valid OrderEntryRequest ({}); it and everything sent after it were not applied",
                    messages_read + 1,
                    status.message()
                );
                let _ = in_flight
                    .send(Entry::End(edge_status(
                        EdgeReason::MessageUndecodable,
                        message,
                    )))
                    .await;
                return;
            }
            // The transport broke: nobody is left to answer.
            Err(_) => return,
        };
        messages_read += 1;
        // Paced to the participant's rate: the stream stops reading until the bucket refills.
        shared.limits.pace(&bucket).await;
        let pending = match message.command {
            None => InFlight {
                request_id: String::new(),
                outcome: Err(crate::convert::invalid_field(
                    "command: required (place, cancel or reduce)",
                )),
            },
            Some(entry) => {
                let outcome = match shared.prepare(caller, &entry).await {
                    Ok(prepared) => shared
                        .sequencer
                        .submit_pipelined(prepared.command, prepared.request_id)
                        .map(|receiver| (receiver, prepared.reply))
                        .map_err(sequencer_status),
                    Err(status) => Err(status),
                };
                InFlight {
                    request_id: request_id_of(&entry).to_string(),
                    outcome,
                }
            }
        };
        if in_flight.send(Entry::Command(pending)).await.is_err() {
            return;
        }
    }
}

/// Answers queued commands strictly in the order they were read, then the ending status if the
/// reader gave one.
async fn write_replies(
    journal: JournalReader,
    sequencer: Sequencer,
    mut in_flight: mpsc::Receiver<Entry>,
    outbound: mpsc::Sender<Result<pb::OrderEntryResponse, Status>>,
) {
    while let Some(entry) = in_flight.recv().await {
        let reply = match entry {
            Entry::Command(pending) => Ok(pending.finish(&journal, &sequencer).await),
            Entry::End(status) => Err(status),
        };
        let ends = reply.is_err();
        if outbound.send(reply).await.is_err() || ends {
            return;
        }
    }
}

#[tonic::async_trait]
impl pb::exchange_server::Exchange for ExchangeService {
    async fn place_order(
        &self,
        request: Request<pb::PlaceOrderRequest>,
    ) -> Result<Response<pb::PlaceOrderResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        match self
            .shared
            .execute(caller, &EntryCommand::Place(request.into_inner()))
            .await?
        {
            EntryResult::Placed(response) => Ok(Response::new(response)),
            _ => Err(Status::internal(
                "a placement was answered as another command",
            )),
        }
    }

    async fn cancel_order(
        &self,
        request: Request<pb::CancelOrderRequest>,
    ) -> Result<Response<pb::CancelOrderResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        match self
            .shared
            .execute(caller, &EntryCommand::Cancel(request.into_inner()))
            .await?
        {
            EntryResult::Cancelled(response) => Ok(Response::new(response)),
            _ => Err(Status::internal("a cancel was answered as another command")),
        }
    }

    async fn reduce_order(
        &self,
        request: Request<pb::ReduceOrderRequest>,
    ) -> Result<Response<pb::ReduceOrderResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        match self
            .shared
            .execute(caller, &EntryCommand::Reduce(request.into_inner()))
            .await?
        {
            EntryResult::Reduced(response) => Ok(Response::new(response)),
            _ => Err(Status::internal("a reduce was answered as another command")),
        }
    }

    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let order_id = OrderId(request.into_inner().order_id);
        let order = self
            .shared
            .query(move |engine| engine.order(order_id).cloned())
            .await?
            .ok_or_else(|| convert::field_rejection("order_id", RejectReason::UnknownOrder))?;
        if order.owner != caller.participant && !reads_everything(caller) {
            return Err(convert::field_rejection(
                "order_id",
                RejectReason::NotOrderOwner,
            ));
        }
        let units = self
            .shared
            .catalog
            .units(order.instrument)
            .await?
            .ok_or_else(|| Status::internal("a resting order names an unlisted instrument"))?;
        Ok(Response::new(convert::order_to_pb(&order, &units)))
    }

    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let owner = account_of(caller, request.into_inner().participant_id)?;
        // An unknown participant is NOT_FOUND, as for balances and holdings, not an empty list.
        let resting = self
            .shared
            .query(move |engine| engine.participant(owner).map(|_| engine.orders_of(owner)))
            .await?
            .ok_or_else(|| {
                convert::field_rejection("participant_id", RejectReason::UnknownAccount)
            })?;
        let mut orders = Vec::with_capacity(resting.len());
        for order in &resting {
            let units = self
                .shared
                .catalog
                .units(order.instrument)
                .await?
                .ok_or_else(|| Status::internal("a resting order names an unlisted instrument"))?;
            orders.push(convert::order_to_pb(order, &units));
        }
        Ok(Response::new(pb::ListOrdersResponse { orders }))
    }

    type OrderEntryStream = ReceiverStream<Result<pb::OrderEntryResponse, Status>>;

    async fn order_entry(
        &self,
        request: Request<Streaming<pb::OrderEntryRequest>>,
    ) -> Result<Response<Self::OrderEntryStream>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let (in_flight_sender, in_flight) = mpsc::channel(ORDER_ENTRY_IN_FLIGHT_MAX);
        let (outbound, replies) = mpsc::channel(ORDER_ENTRY_IN_FLIGHT_MAX);
        tokio::spawn(read_entries(
            self.shared.clone(),
            caller,
            request.into_inner(),
            in_flight_sender,
        ));
        tokio::spawn(write_replies(
            self.shared.journal.clone(),
            self.shared.sequencer.clone(),
            in_flight,
            outbound,
        ));
        Ok(Response::new(ReceiverStream::new(replies)))
    }
}
