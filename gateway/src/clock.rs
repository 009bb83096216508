//! The exchange's clock. The engine has no clock of its own: vouchers expire, bonds and notes
//! mature and resolutions close only when a command tells it the time. This task sends a `Tick`
//! on a fixed interval (and, when asked, a `CloseNettingCycle` on another), as the genesis
//! operator, through the same queue as every client command, so each is sequenced, journaled
//! and replayed like any other and replay stays exact. It first asks the engine whether
//! anything is due (`Engine::clock_due`, `Engine::netting_due`), so an idle market journals
//! nothing. Ticks are not remembered for retries (a repeated tick does nothing more), so they
//! never crowd the operator's request ids out.

use std::time::Duration;

use mutua_engine::{Command, CommandKind, GENESIS_OPERATOR};

use crate::convert;
use crate::sequencer::{Sequencer, SequencerError};

/// How often the clock acts.
#[derive(Clone, Copy, Debug)]
pub struct ClockConfig {
    /// Between ticks; `None` sends none.
    pub tick_every: Option<Duration>,
    /// Between netting cycles; `None` leaves cycles to the operator.
    pub netting_every: Option<Duration>,
}

/// Runs until the sequencer stops. A refused or failed command is logged and the clock goes on.
pub async fn run(sequencer: Sequencer, config: ClockConfig) {
    // The first of each one whole interval after start, not at once.
    let after_one =
        |every: Duration| tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let mut ticks = config.tick_every.map(after_one);
    let mut cycles = config.netting_every.map(after_one);
    if ticks.is_none() && cycles.is_none() {
        return;
    }
    for interval in ticks.iter_mut().chain(cycles.iter_mut()) {
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        let kind = tokio::select! {
            _ = next(&mut ticks) => {
                CommandKind::Tick
            }
            _ = next(&mut cycles) => {
                CommandKind::CloseNettingCycle
            }
        };
        // Nothing due, nothing sent: an idle market journals no clock commands.
        let due = match kind {
            CommandKind::Tick => {
                let now = now_ns();
                sequencer.query(move |engine| engine.clock_due(now)).await
            }
            _ => sequencer.query(|engine| engine.netting_due()).await,
        };
        match due {
            Ok(true) => {
                if !send(&sequencer, kind).await {
                    return;
                }
            }
            Ok(false) => {}
            // A full queue: the clients come first; the clock asks again next time.
            Err(SequencerError::Overloaded) => {}
            // Only the leader's clock sends; a standby's waits for this node to lead.
            Err(SequencerError::NotLeader { .. } | SequencerError::NoQuorum) => {}
            Err(SequencerError::Stopped) => return,
        }
    }
}

/// The interval's next tick; never, for a schedule that is off.
async fn next(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// This machine's clock, in nanoseconds since the epoch, as the sequencer stamps batches.
fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
        })
}

/// Sends one clock command; false once the engine has stopped (a full queue is not a stop).
async fn send(sequencer: &Sequencer, kind: CommandKind) -> bool {
    let now_ns = now_ns();
    let name = match kind {
        CommandKind::Tick => "tick",
        _ => "netting",
    };
    // Unique per send: the clock's own request ids never repeat.
    let request_id = format!("mutua.clock/{name}/{now_ns}");
    let Ok(id) = convert::checked_command_id(GENESIS_OPERATOR, &request_id) else {
        return true;
    };
    let command = Command {
        id,
        participant: GENESIS_OPERATOR,
        kind,
    };
    match sequencer.submit(command, request_id.clone()).await {
        Ok(applied) => {
            if let Err(reason) = applied.outcome.result {
                tracing::debug!(%reason, request_id, "clock command refused");
            }
            true
        }
        Err(SequencerError::Overloaded) => {
            tracing::debug!("the engine queue is full; the clock tries again next time");
            true
        }
        Err(SequencerError::NotLeader { .. } | SequencerError::NoQuorum) => true,
        Err(SequencerError::Stopped) => {
            tracing::debug!("the clock stops: the engine no longer takes commands");
            false
        }
    }
}
