//! The leader's appends, made from the journal writer thread: each journal write goes to the
//! stream, fenced by the stream's last sequence, and the writer waits for the cluster's
//! acknowledgement before it writes the batch here and answers anyone.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, stream};

use super::{header, ReplicationState, Role, HEADER_FIRST, HEADER_KIND, HEADER_LAST, HEADER_PART};
use super::{KIND_BATCH, PART_BYTES, SUBJECT};
use crate::journal::{EncodedBatch, JournalError};

/// Pause between attempts while the cluster does not answer.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

pub struct Publisher {
    runtime: tokio::runtime::Handle,
    jetstream: jetstream::Context,
    stream: stream::Stream,
    state: Arc<ReplicationState>,
    /// The stream's last sequence as this leader knows it: every append expects it.
    last: u64,
    /// Unique to this process: message ids of its appends, so a retried append whose first try
    /// the cluster took is recognized as its own.
    incarnation: String,
}

impl Publisher {
    pub fn new(
        runtime: tokio::runtime::Handle,
        cluster: &super::Cluster,
        state: Arc<ReplicationState>,
    ) -> Publisher {
        let incarnation = format!("{}-{:016x}", cluster.config.node, rand::random::<u64>());
        Publisher {
            runtime,
            jetstream: cluster.jetstream.clone(),
            stream: cluster.stream.clone(),
            state,
            last: 0,
            incarnation,
        }
    }

    /// Appends from here on after the stream's message `after` (this node's `leader` message).
    pub(crate) fn lead_after(&mut self, after: u64) {
        self.last = after;
    }

    /// Appends one journal write to the stream, in parts if it is large, and returns the stream
    /// sequence of its last part once the cluster has acknowledged every part. While the cluster
    /// cannot answer (no quorum), the same parts are retried with the same ids, and new writes
    /// are refused at the gateway; an append the stream refuses because another node appended
    /// first means this node no longer leads.
    pub(crate) fn append(
        &mut self,
        encoded: &EncodedBatch,
        checkpoints: &[(u64, mutua_engine::StateHash)],
    ) -> Result<u64, JournalError> {
        if self.last == 0 {
            // The server ignores an expectation of 0: never append unfenced.
            return Err(JournalError::Replication(
                "this node has not fenced the stream; it does not lead".into(),
            ));
        }
        let parts: Vec<&[u8]> = encoded.value.chunks(PART_BYTES).collect();
        let count = parts.len();
        for (index, part) in parts.into_iter().enumerate() {
            let id = format!("{}.{}.{index}", self.incarnation, encoded.first);
            let mut attempt = 0u32;
            loop {
                if self.state.role() == Role::Deposed {
                    return Err(JournalError::Deposed);
                }
                let mut message = PublishMessage::build();
                if index == 0 && !checkpoints.is_empty() {
                    message = message.header(
                        super::HEADER_CHECKPOINTS,
                        super::format_checkpoints(checkpoints).as_str(),
                    );
                }
                let message = message
                    .payload(bytes::Bytes::copy_from_slice(part))
                    .header(HEADER_KIND, KIND_BATCH)
                    .header(HEADER_FIRST, encoded.first.to_string().as_str())
                    .header(HEADER_LAST, encoded.last.to_string().as_str())
                    .header(HEADER_PART, format!("{index}/{count}").as_str())
                    .message_id(&id)
                    .expected_last_sequence(self.last);
                let jetstream = self.jetstream.clone();
                let acknowledged = self
                    .runtime
                    .block_on(async move { jetstream.send_publish(SUBJECT, message).await?.await });
                match acknowledged {
                    Ok(ack) => {
                        self.last = ack.sequence;
                        break;
                    }
                    Err(error) if error.kind() == PublishErrorKind::WrongLastSequence => {
                        // Our own earlier try may have been taken after all (its answer lost).
                        match self.own_tail(&id) {
                            Tail::Ours(sequence) => {
                                self.last = sequence;
                                break;
                            }
                            Tail::Another => {
                                self.state.set_role(Role::Deposed);
                                return Err(JournalError::Deposed);
                            }
                            // The cluster did not say: ask again.
                            Tail::Unanswered => {
                                self.state.set_stalled(true);
                                attempt += 1;
                                std::thread::sleep(RETRY_PAUSE);
                            }
                        }
                    }
                    Err(error) => {
                        // No answer is not a no: the append may still be taken. Retry the same
                        // message (same id, same expectation) until the cluster answers.
                        self.state.set_stalled(true);
                        if attempt % 20 == 0 {
                            tracing::warn!(%error, first = encoded.first, attempt, "the replicated journal does not acknowledge; retrying");
                        }
                        attempt += 1;
                        std::thread::sleep(RETRY_PAUSE);
                    }
                }
            }
        }
        self.state.set_stalled(false);
        self.state.set_stream_sequence(self.last);
        Ok(self.last)
    }

    /// Whose the stream's last message is: this node's append `id`, or another's.
    fn own_tail(&self, id: &str) -> Tail {
        let stream = self.stream.clone();
        self.runtime.block_on(async move {
            let Ok(info) = stream.get_info().await else {
                return Tail::Unanswered;
            };
            let last = info.state.last_sequence;
            match stream.get_raw_message(last).await {
                Ok(message) if header(&message.headers, "Nats-Msg-Id") == Some(id) => {
                    Tail::Ours(last)
                }
                Ok(_) => Tail::Another,
                Err(_) => Tail::Unanswered,
            }
        })
    }
}

enum Tail {
    Ours(u64),
    Another,
    Unanswered,
}
