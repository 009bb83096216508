//! `mutua audit follow` and `mutua audit verify`: the regulator's side of the audit feed. Both
//! check every record as it comes: that it is the next one, that its chain hash follows from the
//! previous one and its canonical bytes, and that the fields shown are exactly what those bytes
//! say (decoded and rendered again with the server's own rendering).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Subcommand;
use serde_json::Value;
use tonic::transport::Channel;

use super::{authorized, connect_with, status_error};
use crate::audit::{self, hex, unhex};
use crate::chain::{ChainError, ChainHash, ChainVerifier, GENESIS_CHAIN};
use crate::pb;
use crate::pb::audit_client::AuditClient;

/// Largest feed message the client accepts: one record of a distribution to every holder of a
/// large issue can be big.
const FEED_MESSAGE_BYTES_MAX: usize = 256 << 20;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Stream the audit feed as JSON lines, checking the chain as it goes. With `--out`, records
    /// are appended to the file (created private to its user) and a second run resumes after its
    /// last record; a dropped connection is retried.
    Follow {
        /// The first record wanted (when `--out` is new or absent).
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Stop after this record instead of following without end.
        #[arg(long)]
        until: Option<u64>,
        /// Append to this file instead of printing.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check a saved feed (`follow --out`) record by record, and with `--live` check its chain
    /// against the server's; with `--live` and no file, fetch the whole feed and check it.
    Verify {
        /// A saved feed, one JSON record per line.
        file: Option<PathBuf>,
        /// Also ask the server: the chain hash before the file's first record, and after its
        /// last, must be the server's.
        #[arg(long)]
        live: bool,
    },
}

/// Where a follower or verifier stands.
struct Position {
    verifier: ChainVerifier,
    /// Whether the chain before the first record was taken on trust (a file that starts past
    /// record 1, checked without the server).
    anchored_on_trust: bool,
}

pub async fn run(
    server: &str,
    tls_ca: Option<&Path>,
    token: Option<&str>,
    command: AuditCommand,
) -> anyhow::Result<()> {
    match command {
        AuditCommand::Follow { from, until, out } => {
            follow(server, tls_ca, token, from, until, out).await
        }
        AuditCommand::Verify { file, live } => verify(server, tls_ca, token, file, live).await,
    }
}

async fn client(server: &str, tls_ca: Option<&Path>) -> anyhow::Result<AuditClient<Channel>> {
    Ok(AuditClient::new(connect_with(server, tls_ca).await?)
        .max_decoding_message_size(FEED_MESSAGE_BYTES_MAX))
}

async fn chain_after(
    client: &mut AuditClient<Channel>,
    token: Option<&str>,
    sequence: u64,
) -> anyhow::Result<(ChainHash, u64)> {
    if sequence == 0 {
        let head = client
            .chain_head(authorized(pb::ChainHeadRequest { sequence: 0 }, token)?)
            .await
            .map_err(status_error)?
            .into_inner();
        return Ok((GENESIS_CHAIN, head.last_sequence));
    }
    let head = client
        .chain_head(authorized(pb::ChainHeadRequest { sequence }, token)?)
        .await
        .map_err(status_error)?
        .into_inner();
    let chain = head
        .chain_hash
        .as_slice()
        .try_into()
        .map_err(|_| anyhow::anyhow!("the server sent a chain hash that is not 32 bytes"))?;
    Ok((chain, head.last_sequence))
}

/// Checks one received record and returns it as a JSON line.
fn check_record(verifier: &mut ChainVerifier, record: &pb::AuditRecord) -> anyhow::Result<Value> {
    let chain: ChainHash = record.chain_hash.as_slice().try_into().map_err(|_| {
        anyhow::anyhow!("record {}: its chain hash is not 32 bytes", record.sequence)
    })?;
    let decoded = verifier.check(record.sequence, &record.canonical, &chain)?;
    let rendered = audit::to_pb(&decoded, record.canonical.clone(), &chain);
    if &rendered != record {
        return Err(ChainError::Misrendered {
            sequence: record.sequence,
            why: "the server's fields are not what its canonical bytes say".into(),
        }
        .into());
    }
    Ok(audit::to_json(record))
}

/// The last record of a saved feed: its sequence and chain hash.
fn last_saved(path: &Path) -> anyhow::Result<Option<(u64, ChainHash)>> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(anyhow::anyhow!("{}: {error}", path.display())),
    };
    let mut last = None;
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        if !line.trim().is_empty() {
            last = Some(line);
        }
    }
    let Some(line) = last else { return Ok(None) };
    let value: Value = serde_json::from_str(&line).map_err(|error| {
        anyhow::anyhow!("{}: the last line is not JSON: {error}", path.display())
    })?;
    let (sequence, chain) = sequence_and_chain(&value)
        .ok_or_else(|| anyhow::anyhow!("{}: the last line is not a feed record", path.display()))?;
    Ok(Some((sequence, chain)))
}

fn sequence_and_chain(value: &Value) -> Option<(u64, ChainHash)> {
    let sequence = value.get("sequence")?.as_u64()?;
    let chain = unhex(value.get("chain_hash")?.as_str()?)?;
    Some((sequence, chain.as_slice().try_into().ok()?))
}

fn open_private_append(path: &Path) -> anyhow::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))
}

async fn follow(
    server: &str,
    tls_ca: Option<&Path>,
    token: Option<&str>,
    from: u64,
    until: Option<u64>,
    out: Option<PathBuf>,
) -> anyhow::Result<()> {
    let mut client = client(server, tls_ca).await?;
    let saved = match &out {
        Some(path) => last_saved(path)?,
        None => None,
    };
    let mut verifier = match saved {
        Some((sequence, chain)) => {
            eprintln!("resuming after record {sequence}");
            ChainVerifier::after(sequence, chain)
        }
        None => {
            let after = from.max(1) - 1;
            let (chain, _) = chain_after(&mut client, token, after).await?;
            ChainVerifier::after(after, chain)
        }
    };
    let mut sink: Box<dyn Write> = match &out {
        Some(path) => Box::new(std::io::BufWriter::new(open_private_append(path)?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let done = |verifier: &ChainVerifier| until.is_some_and(|until| verifier.next_sequence > until);
    let mut retry_in = Duration::from_millis(200);
    while !done(&verifier) {
        let request = authorized(
            pb::AuditStreamRequest {
                from_sequence: verifier.next_sequence,
            },
            token,
        )?;
        let stream = match client.stream(request).await {
            Ok(stream) => stream.into_inner(),
            Err(status) if retryable(&status) => {
                eprintln!("{}; retrying", status.message());
                tokio::time::sleep(retry_in).await;
                retry_in = (retry_in * 2).min(Duration::from_secs(5));
                continue;
            }
            Err(status) => return Err(status_error(status)),
        };
        let mut stream = stream;
        loop {
            match stream.message().await {
                Ok(Some(message)) => {
                    retry_in = Duration::from_millis(200);
                    for record in &message.records {
                        if done(&verifier) {
                            break;
                        }
                        let line = check_record(&mut verifier, record)?;
                        writeln!(sink, "{line}")?;
                    }
                    sink.flush()?;
                    if done(&verifier) {
                        break;
                    }
                }
                Ok(None) => break,
                Err(status) if retryable(&status) => {
                    eprintln!(
                        "{}; resuming at {}",
                        status.message(),
                        verifier.next_sequence
                    );
                    tokio::time::sleep(retry_in).await;
                    break;
                }
                Err(status) => return Err(status_error(status)),
            }
        }
    }
    sink.flush()?;
    Ok(())
}

fn retryable(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
    )
}

async fn verify(
    server: &str,
    tls_ca: Option<&Path>,
    token: Option<&str>,
    file: Option<PathBuf>,
    live: bool,
) -> anyhow::Result<()> {
    let mut client = if live {
        Some(client(server, tls_ca).await?)
    } else {
        None
    };
    let Some(path) = file else {
        let Some(client) = client.as_mut() else {
            anyhow::bail!("give a saved feed to check, or --live to check the server's");
        };
        return verify_server(client, token).await;
    };
    let reader = std::io::BufReader::new(
        std::fs::File::open(&path)
            .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?,
    );
    let mut position: Option<Position> = None;
    let mut first = None;
    let mut count = 0u64;
    for (index, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{} line {}", path.display(), index + 1);
        let value: Value = serde_json::from_str(&line)
            .map_err(|error| anyhow::anyhow!("{}: not JSON: {error}", at()))?;
        let (sequence, chain) = sequence_and_chain(&value)
            .ok_or_else(|| anyhow::anyhow!("{}: not a feed record", at()))?;
        let canonical = value
            .get("canonical")
            .and_then(Value::as_str)
            .and_then(unhex)
            .ok_or_else(|| anyhow::anyhow!("record {sequence}: no canonical bytes"))?;
        let position = match &mut position {
            Some(position) => position,
            None => {
                first = Some(sequence);
                let anchor = match (sequence, client.as_mut()) {
                    (1, _) => Some(GENESIS_CHAIN),
                    (_, Some(client)) => Some(chain_after(client, token, sequence - 1).await?.0),
                    (_, None) => None,
                };
                position.insert(match anchor {
                    Some(head) => Position {
                        verifier: ChainVerifier::after(sequence - 1, head),
                        anchored_on_trust: false,
                    },
                    // No server to ask what came before: the first record's chain hash is taken
                    // as given and every later record is checked against it.
                    None => Position {
                        verifier: ChainVerifier::after(sequence, chain),
                        anchored_on_trust: true,
                    },
                })
            }
        };
        if position.anchored_on_trust && Some(sequence) == first {
            count += 1;
            continue;
        }
        let decoded = position.verifier.check(sequence, &canonical, &chain)?;
        let rendered = audit::to_json(&audit::to_pb(&decoded, canonical, &chain));
        if rendered != value {
            return Err(ChainError::Misrendered {
                sequence,
                why: format!(
                    "{}: the fields differ from what the canonical bytes say",
                    at()
                ),
            }
            .into());
        }
        count += 1;
    }
    let Some(position) = position else {
        anyhow::bail!("{}: no records", path.display());
    };
    let last = position.verifier.next_sequence - 1;
    let first = first.unwrap_or(last);
    println!(
        "{}: records {first} to {last} ({count}) follow one another and their chain is intact",
        path.display()
    );
    if position.anchored_on_trust {
        println!(
            "record {first}'s own chain hash was taken as given: run with --live to check it against the server"
        );
    }
    if let Some(client) = client.as_mut() {
        let (server_chain, server_last) = chain_after(client, token, last).await?;
        if server_chain != position.verifier.head {
            anyhow::bail!(
                "record {last}: the server's chain hash {} differs from the saved feed's {}: the journal or the file was altered",
                hex(&server_chain),
                hex(&position.verifier.head)
            );
        }
        println!(
            "the server's chain after record {last} is the same ({}); its journal now ends at {server_last}",
            hex(&server_chain)
        );
    }
    Ok(())
}

/// Fetches the server's whole feed as it stands and checks it.
async fn verify_server(
    client: &mut AuditClient<Channel>,
    token: Option<&str>,
) -> anyhow::Result<()> {
    let (_, last) = chain_after(client, token, 0).await?;
    let mut verifier = ChainVerifier::after(0, GENESIS_CHAIN);
    let progress = indicatif::ProgressBar::new(last);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} records ({per_sec})")
            .expect("a valid template"),
    );
    let mut stream = client
        .stream(authorized(
            pb::AuditStreamRequest { from_sequence: 1 },
            token,
        )?)
        .await
        .map_err(status_error)?
        .into_inner();
    while verifier.next_sequence <= last {
        let Some(message) = stream.message().await.map_err(status_error)? else {
            anyhow::bail!("the feed ended at record {}", verifier.next_sequence - 1);
        };
        for record in &message.records {
            if verifier.next_sequence > last {
                break;
            }
            check_record(&mut verifier, record)?;
        }
        progress.set_position(verifier.next_sequence - 1);
    }
    progress.finish_and_clear();
    let (server_chain, _) = chain_after(client, token, last).await?;
    if server_chain != verifier.head {
        anyhow::bail!("record {last}: the server's stored chain differs from the recomputed one");
    }
    println!(
        "records 1 to {last}: every record follows, its fields are its canonical bytes, and the chain recomputed here ends at {}",
        hex(&verifier.head)
    );
    Ok(())
}
