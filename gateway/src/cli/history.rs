//! `mutua history ...`, `mutua statement`, `mutua market ...` and `mutua export`: everyone's own
//! history, the yearly statement, and the open market's past from a shell. Listings page through
//! the server's replies until `--limit` entries are printed or the listing ends.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use tonic::transport::Channel;

use super::{authorized, connect_with, instrument_ref, parse_rfc3339, rfc3339, status_error};
use crate::export::DayExport;
use crate::pb;
use crate::pb::history_client::HistoryClient;
use crate::pb::open_data_client::OpenDataClient;

#[derive(Args, Debug, Clone)]
pub struct ListArgs {
    /// Whose history (regulator or operator); your own when absent.
    #[arg(long)]
    participant: Option<u32>,
    /// Only this instrument (symbol, or `#id`).
    #[arg(long)]
    instrument: Option<String>,
    /// From this time (RFC 3339 UTC, `2026-12-01` or `2026-12-01T09:00:00Z`).
    #[arg(long, value_parser = parse_rfc3339)]
    from: Option<u64>,
    /// Until this time (exclusive).
    #[arg(long, value_parser = parse_rfc3339)]
    until: Option<u64>,
    /// Newest first.
    #[arg(long)]
    newest_first: bool,
    /// Most entries to print.
    #[arg(long, default_value_t = 100)]
    limit: usize,
}

impl ListArgs {
    fn filter(&self, page_token: Vec<u8>) -> pb::HistoryFilter {
        pb::HistoryFilter {
            participant_id: self.participant.unwrap_or(0),
            instrument: self.instrument.as_deref().map(instrument_ref),
            from_time_ns: self.from.unwrap_or(0),
            until_time_ns: self.until.unwrap_or(0),
            page_size: self.limit.clamp(1, 1_000) as u32,
            page_token,
            newest_first: self.newest_first,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum HistoryCommand {
    /// Orders in every state (resting, filled, cancelled) with their fills.
    Orders(ListArgs),
    /// Your side of each of your trades.
    Fills {
        #[command(flatten)]
        list: ListArgs,
        /// Only the fills of this order.
        #[arg(long)]
        order: Option<u64>,
    },
    /// Every change of your cash balance, with the balance after it.
    Cash(ListArgs),
    /// Every event that names you: deposits, trades, distributions, vouchers, pool, votes, ...
    Activity(ListArgs),
}

#[derive(Args, Debug)]
pub struct StatementArgs {
    /// The calendar year (UTC).
    #[arg(long)]
    year: i32,
    /// Whose statement (regulator or operator); your own when absent.
    #[arg(long)]
    participant: Option<u32>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum IntervalArg {
    Minute,
    Hour,
    Day,
}

#[derive(Subcommand, Debug)]
pub enum MarketCommand {
    /// One instrument's past trades (open data, no token).
    Trades {
        /// The instrument (symbol, or `#id`).
        instrument: String,
        #[command(flatten)]
        list: ListArgs,
    },
    /// One instrument's open/high/low/close/volume bars (open data, no token).
    Bars {
        instrument: String,
        #[arg(long, value_enum, default_value = "day")]
        interval: IntervalArg,
        #[arg(long, value_parser = parse_rfc3339)]
        from: Option<u64>,
        #[arg(long, value_parser = parse_rfc3339)]
        until: Option<u64>,
        /// Most bars.
        #[arg(long, default_value_t = 1_000)]
        limit: u32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Parquet,
    Both,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The UTC day to export (`2026-12-01`).
    #[arg(long, value_parser = parse_rfc3339)]
    day: u64,
    /// Directory to write the files into (created if missing).
    #[arg(long, default_value = ".")]
    out: PathBuf,
    #[arg(long, value_enum, default_value = "both")]
    format: ExportFormat,
}

/// Prints a listing page after page, at most `limit` entries: `page(token)` asks for the page
/// that starts at `token` and gives its entries and the next token (empty at the end).
async fn print_pages<T, Fut>(
    limit: usize,
    mut page: impl FnMut(Vec<u8>) -> Fut,
    print: impl Fn(&T),
) -> anyhow::Result<()>
where
    Fut: std::future::Future<Output = anyhow::Result<(Vec<T>, Vec<u8>)>>,
{
    let mut printed = 0;
    let mut next = Vec::new();
    loop {
        let (entries, token) = page(next).await?;
        for entry in &entries {
            if printed == limit {
                return Ok(());
            }
            print(entry);
            printed += 1;
        }
        if token.is_empty() {
            return Ok(());
        }
        next = token;
    }
}

pub async fn history(
    server: &str,
    tls_ca: Option<&Path>,
    token: Option<&str>,
    command: HistoryCommand,
) -> anyhow::Result<()> {
    let client = HistoryClient::new(connect_with(server, tls_ca).await?);
    match command {
        HistoryCommand::Orders(list) => {
            let page = |page_token| {
                let (mut client, filter) = (client.clone(), list.filter(page_token));
                async move {
                    let reply = client
                        .list_orders(authorized(
                            pb::HistoryOrdersRequest {
                                filter: Some(filter),
                            },
                            token,
                        )?)
                        .await
                        .map_err(status_error)?
                        .into_inner();
                    Ok((reply.orders, reply.next_page_token))
                }
            };
            print_pages(list.limit, page, print_order).await
        }
        HistoryCommand::Fills { list, order } => {
            let page = |page_token| {
                let (mut client, filter) = (client.clone(), list.filter(page_token));
                async move {
                    let reply = client
                        .list_fills(authorized(
                            pb::HistoryFillsRequest {
                                filter: Some(filter),
                                order_id: order.unwrap_or(0),
                            },
                            token,
                        )?)
                        .await
                        .map_err(status_error)?
                        .into_inner();
                    Ok((reply.fills, reply.next_page_token))
                }
            };
            print_pages(list.limit, page, |fill: &pb::OwnFill| {
                println!(
                    "{} #{} {} order {} {} {} @ {} = {}{}",
                    rfc3339(fill.time_ns),
                    fill.sequence,
                    fill.symbol,
                    fill.order_id,
                    side_name(fill.side),
                    fill.quantity,
                    fill.price,
                    fill.notional,
                    if fill.maker { " (maker)" } else { "" }
                )
            })
            .await
        }
        HistoryCommand::Cash(list) => {
            let page = |page_token| {
                let (mut client, filter) = (client.clone(), list.filter(page_token));
                async move {
                    let reply = client
                        .list_cash_movements(authorized(
                            pb::CashMovementsRequest {
                                filter: Some(filter),
                            },
                            token,
                        )?)
                        .await
                        .map_err(status_error)?
                        .into_inner();
                    Ok((reply.movements, reply.next_page_token))
                }
            };
            print_pages(list.limit, page, |movement: &pb::CashMovement| {
                if movement.withheld {
                    println!(
                        "{} #{} {} (withheld: private to the participant)",
                        rfc3339(movement.time_ns),
                        movement.sequence,
                        movement.command
                    );
                } else {
                    println!(
                        "{} #{} {} {} -> balance {} (reserved {})",
                        rfc3339(movement.time_ns),
                        movement.sequence,
                        movement.command,
                        movement.amount,
                        movement.balance,
                        movement.reserved
                    );
                }
            })
            .await
        }
        HistoryCommand::Activity(list) => {
            let page = |page_token| {
                let (mut client, filter) = (client.clone(), list.filter(page_token));
                async move {
                    let reply = client
                        .list_activity(authorized(
                            pb::ActivityRequest {
                                filter: Some(filter),
                            },
                            token,
                        )?)
                        .await
                        .map_err(status_error)?
                        .into_inner();
                    Ok((reply.entries, reply.next_page_token))
                }
            };
            print_pages(list.limit, page, |entry: &pb::ActivityEntry| {
                println!(
                    "{} #{} {}",
                    rfc3339(entry.time_ns),
                    entry.sequence,
                    entry.json
                )
            })
            .await
        }
    }
}

fn side_name(side: i32) -> &'static str {
    match pb::Side::try_from(side) {
        Ok(pb::Side::Buy) => "buy",
        Ok(pb::Side::Sell) => "sell",
        _ => "?",
    }
}

fn print_order(order: &pb::OrderRecord) {
    let state = match pb::OrderState::try_from(order.state) {
        Ok(pb::OrderState::Resting) => "resting".to_string(),
        Ok(pb::OrderState::Filled) => "filled".to_string(),
        Ok(pb::OrderState::Cancelled) => format!("cancelled ({})", order.cancel_reason),
        _ => "?".to_string(),
    };
    println!(
        "{} order {} {} {} {} @ {}: {state}; filled {} for {} in {} fills, remaining {}",
        rfc3339(order.placed_at_ns),
        order.order_id,
        order.symbol,
        side_name(order.side),
        order.quantity,
        order.price,
        order.filled_quantity,
        order.filled_notional,
        order.fill_count,
        order.remaining_quantity
    );
}

pub async fn statement(
    server: &str,
    tls_ca: Option<&Path>,
    token: Option<&str>,
    args: StatementArgs,
) -> anyhow::Result<()> {
    let mut client = HistoryClient::new(connect_with(server, tls_ca).await?);
    let request = pb::StatementRequest {
        participant_id: args.participant.unwrap_or(0),
        year: args.year,
    };
    let statement = client
        .get_statement(authorized(request, token)?)
        .await
        .map_err(status_error)?
        .into_inner();
    println!(
        "statement of participant {} for {} (journal through record {})",
        statement.participant_id, statement.year, statement.indexed_through
    );
    println!("opening balance {}", statement.opening_balance);
    for line in &statement.lines {
        let about = if line.symbol.is_empty() {
            String::new()
        } else {
            format!(" {}", line.symbol)
        };
        let quantity = if line.quantity.is_empty() {
            String::new()
        } else {
            format!(" quantity {}", line.quantity)
        };
        let amount = if line.amount.is_empty() {
            String::new()
        } else {
            format!(" amount {}", line.amount)
        };
        println!("  {}{about}: {} x{quantity}{amount}", line.kind, line.count);
    }
    if statement.withheld_lines > 0 {
        println!(
            "  ({} lines private to the participant withheld)",
            statement.withheld_lines
        );
    }
    println!("closing balance {}", statement.closing_balance);
    Ok(())
}

pub async fn market(
    server: &str,
    tls_ca: Option<&Path>,
    command: MarketCommand,
) -> anyhow::Result<()> {
    let mut client = OpenDataClient::new(connect_with(server, tls_ca).await?);
    match command {
        MarketCommand::Trades { instrument, list } => {
            let page = |page_token| {
                let mut client = client.clone();
                let mut filter = list.filter(page_token);
                filter.instrument = Some(instrument_ref(&instrument));
                async move {
                    let reply = client
                        .list_trades(pb::InstrumentTradesRequest {
                            filter: Some(filter),
                        })
                        .await
                        .map_err(status_error)?
                        .into_inner();
                    Ok((reply.trades, reply.next_page_token))
                }
            };
            print_pages(list.limit, page, |trade: &pb::Trade| {
                println!(
                    "{} #{} {} {} @ {} = {} (taker {})",
                    rfc3339(trade.timestamp_ns),
                    trade.sequence,
                    trade.symbol,
                    trade.quantity,
                    trade.price,
                    trade.notional,
                    side_name(trade.taker_side)
                )
            })
            .await
        }
        MarketCommand::Bars {
            instrument,
            interval,
            from,
            until,
            limit,
        } => {
            let reply = client
                .get_bars(bars_request(&instrument, interval, from, until, limit))
                .await
                .map_err(status_error)?
                .into_inner();
            println!("{} bars ({:?})", reply.symbol, interval);
            for bar in reply.bars {
                println!(
                    "{} open {} high {} low {} close {} volume {} notional {} trades {} vwap {}",
                    rfc3339(bar.start_ns),
                    bar.open,
                    bar.high,
                    bar.low,
                    bar.close,
                    bar.volume,
                    bar.notional,
                    bar.trades,
                    bar.vwap
                );
            }
            Ok(())
        }
    }
}

fn bars_request(
    instrument: &str,
    interval: IntervalArg,
    from: Option<u64>,
    until: Option<u64>,
    limit: u32,
) -> pb::BarsRequest {
    pb::BarsRequest {
        instrument: Some(instrument_ref(instrument)),
        interval: match interval {
            IntervalArg::Minute => pb::BarInterval::Minute,
            IntervalArg::Hour => pb::BarInterval::Hour,
            IntervalArg::Day => pb::BarInterval::Day,
        } as i32,
        from_time_ns: from.unwrap_or(0),
        until_time_ns: until.unwrap_or(0),
        limit,
    }
}

/// Reads one UTC day of trades and instrument statistics through the open-data services.
pub async fn read_day(channel: Channel, day: u64) -> anyhow::Result<DayExport> {
    const DAY: u64 = 86_400_000_000_000;
    let day = day - day % DAY;
    let mut registry = pb::registry_client::RegistryClient::new(channel.clone());
    let mut open_data = OpenDataClient::new(channel);
    let listed = registry
        .list_instruments(pb::ListInstrumentsRequest::default())
        .await
        .map_err(status_error)?
        .into_inner()
        .instruments;
    let progress = indicatif::ProgressBar::new(listed.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} instruments {msg}")
            .expect("a valid template"),
    );
    let mut trades = Vec::new();
    let mut instruments = Vec::new();
    for instrument in listed {
        let reference = pb::InstrumentRef {
            instrument: Some(pb::instrument_ref::Instrument::Id(instrument.instrument_id)),
        };
        let mut page_token = Vec::new();
        loop {
            let reply = open_data
                .list_trades(pb::InstrumentTradesRequest {
                    filter: Some(pb::HistoryFilter {
                        instrument: Some(reference.clone()),
                        from_time_ns: day,
                        until_time_ns: day + DAY,
                        page_size: 1_000,
                        page_token,
                        ..Default::default()
                    }),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            trades.extend(reply.trades);
            progress.set_message(format!("{} trades", trades.len()));
            if reply.next_page_token.is_empty() {
                break;
            }
            page_token = reply.next_page_token;
        }
        let bar = open_data
            .get_bars(pb::BarsRequest {
                instrument: Some(reference),
                interval: pb::BarInterval::Day as i32,
                from_time_ns: day,
                until_time_ns: day + DAY,
                limit: 1,
            })
            .await
            .map_err(status_error)?
            .into_inner()
            .bars
            .into_iter()
            .next();
        instruments.push((instrument, bar));
        progress.inc(1);
    }
    progress.finish_and_clear();
    trades.sort_by_key(|trade| (trade.sequence, trade.timestamp_ns));
    Ok(DayExport {
        day,
        trades,
        instruments,
    })
}

pub async fn export(server: &str, tls_ca: Option<&Path>, args: ExportArgs) -> anyhow::Result<()> {
    let channel = connect_with(server, tls_ca).await?;
    let export = read_day(channel, args.day).await?;
    std::fs::create_dir_all(&args.out)?;
    let date = &rfc3339(export.day)[..10];
    let mut written = Vec::new();
    if matches!(args.format, ExportFormat::Csv | ExportFormat::Both) {
        written.extend(crate::export::write_csv(&args.out, date, &export)?);
    }
    if matches!(args.format, ExportFormat::Parquet | ExportFormat::Both) {
        written.extend(crate::export::write_parquet(&args.out, date, &export)?);
    }
    println!(
        "{} trades in {} instruments on {date}",
        export.trades.len(),
        export.instruments.len()
    );
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}
