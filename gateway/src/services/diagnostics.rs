//! `mutua.v1.Diagnostics`: an echo over the same stack as the order-entry stream (tonic, the
//! connection's limits, authentication, the participant's rate) with nothing behind it, so that
//! `mutua load --mode stream-echo` can say what the transport alone does on this machine.

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::pb;
use crate::services::Shared;

/// The longest reply a client may ask for.
const REPLY_BYTES_MAX: usize = 65_536;
/// Echoes queued for one client before the stream stops reading its messages.
const ECHOES_QUEUED_MAX: usize = 1_024;

pub struct DiagnosticsService {
    shared: Shared,
}

impl DiagnosticsService {
    pub(crate) fn new(shared: Shared) -> DiagnosticsService {
        DiagnosticsService { shared }
    }
}

#[tonic::async_trait]
impl pb::diagnostics_server::Diagnostics for DiagnosticsService {
    type EchoStream = ReceiverStream<Result<pb::EchoMessage, Status>>;

    async fn echo(
        &self,
        request: Request<Streaming<pb::EchoMessage>>,
    ) -> Result<Response<Self::EchoStream>, Status> {
        let caller = self.shared.auth.authenticate(&request)?;
        let mut inbound = request.into_inner();
        let (outbound, echoes) = mpsc::channel(ECHOES_QUEUED_MAX);
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let bucket = shared.limits.bucket(caller.participant);
            loop {
                let received = tokio::select! {
                    received = inbound.message() => received,
                    _ = shared.stopping() => return,
                    _ = outbound.closed() => return,
                };
                let mut message = match received {
                    Ok(Some(message)) => message,
                    Ok(None) | Err(_) => return,
                };
                shared.limits.pace(&bucket).await;
                let wanted = message.reply_bytes as usize;
                if wanted > REPLY_BYTES_MAX {
                    let _ = outbound
                        .send(Err(crate::convert::invalid_field(format!(
                            "reply_bytes: at most {REPLY_BYTES_MAX}"
                        ))))
                        .await;
                    return;
                }
                if wanted > 0 {
                    message.payload.resize(wanted, 0);
                }
                message.reply_bytes = 0;
                if outbound.send(Ok(message)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(echoes)))
    }
}
