//! The daily open-data export (`mutua export --day`): one UTC day of trades and the statistics
//! of every listed instrument, as CSV and as Parquet, with the same columns in both. The schema
//! is documented in README.md ("Open market data").
//!
//! Prices, quantities and cash are exact decimal text (as the API gives them), never floating
//! point; times are nanoseconds since the Unix epoch (UTC).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::data_type::{BoolType, ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use crate::pb;

/// One day's open data, as read from the server (`cli::history::read_day`).
pub struct DayExport {
    pub day: u64,
    pub trades: Vec<pb::Trade>,
    /// Every listed instrument, with its day bar if it traded.
    pub instruments: Vec<(pb::Instrument, Option<pb::Bar>)>,
}

/// One column of an export table.
enum Column {
    Int(Vec<i64>),
    Text(Vec<String>),
    Flag(Vec<bool>),
}

impl Column {
    fn text(&self, row: usize) -> String {
        match self {
            Column::Int(values) => values[row].to_string(),
            Column::Text(values) => csv_field(&values[row]),
            Column::Flag(values) => values[row].to_string(),
        }
    }
}

/// A table: named columns of equal length.
struct Table {
    columns: Vec<(&'static str, Column)>,
    rows: usize,
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn side_text(side: i32) -> String {
    match pb::Side::try_from(side) {
        Ok(pb::Side::Buy) => "buy".into(),
        Ok(pb::Side::Sell) => "sell".into(),
        _ => String::new(),
    }
}

fn kind_text(kind: i32) -> String {
    match pb::InstrumentKind::try_from(kind) {
        Ok(pb::InstrumentKind::CommunityShare) => "community_share".into(),
        Ok(pb::InstrumentKind::CommunityBond) => "community_bond".into(),
        Ok(pb::InstrumentKind::CommunityInvestmentNote) => "community_investment_note".into(),
        _ => String::new(),
    }
}

fn trades_table(export: &DayExport) -> Table {
    let trades = &export.trades;
    let texts = |get: fn(&pb::Trade) -> String| Column::Text(trades.iter().map(get).collect());
    Table {
        rows: trades.len(),
        columns: vec![
            (
                "sequence",
                Column::Int(trades.iter().map(|t| t.sequence as i64).collect()),
            ),
            (
                "time_ns",
                Column::Int(trades.iter().map(|t| t.timestamp_ns as i64).collect()),
            ),
            (
                "instrument_id",
                Column::Int(trades.iter().map(|t| i64::from(t.instrument_id)).collect()),
            ),
            ("symbol", texts(|t| t.symbol.clone())),
            ("price", texts(|t| t.price.clone())),
            ("quantity", texts(|t| t.quantity.clone())),
            ("notional", texts(|t| t.notional.clone())),
            ("taker_side", texts(|t| side_text(t.taker_side))),
            (
                "maker_order_id",
                Column::Int(trades.iter().map(|t| t.maker_order_id as i64).collect()),
            ),
            (
                "taker_order_id",
                Column::Int(trades.iter().map(|t| t.taker_order_id as i64).collect()),
            ),
        ],
    }
}

fn instruments_table(export: &DayExport) -> Table {
    let rows = &export.instruments;
    let listed = |get: fn(&pb::Instrument) -> String| {
        Column::Text(rows.iter().map(|(instrument, _)| get(instrument)).collect())
    };
    let traded = |get: fn(&pb::Bar) -> String| {
        Column::Text(
            rows.iter()
                .map(|(_, bar)| bar.as_ref().map(get).unwrap_or_default())
                .collect(),
        )
    };
    Table {
        rows: rows.len(),
        columns: vec![
            (
                "instrument_id",
                Column::Int(
                    rows.iter()
                        .map(|(i, _)| i64::from(i.instrument_id))
                        .collect(),
                ),
            ),
            ("symbol", listed(|i| i.symbol.clone())),
            ("kind", listed(|i| kind_text(i.kind))),
            (
                "issuer_id",
                Column::Int(rows.iter().map(|(i, _)| i64::from(i.issuer_id)).collect()),
            ),
            ("par", listed(|i| i.par.clone())),
            ("return_cap", listed(|i| i.return_cap.clone())),
            ("price_floor", listed(|i| i.price_floor.clone())),
            ("price_ceiling", listed(|i| i.price_ceiling.clone())),
            (
                "trading_open",
                Column::Flag(rows.iter().map(|(i, _)| i.trading_open).collect()),
            ),
            (
                "outstanding_quantity",
                listed(|i| i.outstanding_quantity.clone()),
            ),
            ("open", traded(|b| b.open.clone())),
            ("high", traded(|b| b.high.clone())),
            ("low", traded(|b| b.low.clone())),
            ("close", traded(|b| b.close.clone())),
            ("volume", traded(|b| b.volume.clone())),
            ("notional", traded(|b| b.notional.clone())),
            (
                "trades",
                Column::Int(
                    rows.iter()
                        .map(|(_, b)| b.as_ref().map_or(0, |b| b.trades as i64))
                        .collect(),
                ),
            ),
            ("vwap", traded(|b| b.vwap.clone())),
        ],
    }
}

fn write_table_csv(path: &Path, table: &Table) -> anyhow::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    let header: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
    writeln!(out, "{}", header.join(","))?;
    for row in 0..table.rows {
        let fields: Vec<String> = table
            .columns
            .iter()
            .map(|(_, column)| column.text(row))
            .collect();
        writeln!(out, "{}", fields.join(","))?;
    }
    out.flush()?;
    Ok(())
}

fn write_table_parquet(path: &Path, table: &Table) -> anyhow::Result<()> {
    let fields: Vec<String> = table
        .columns
        .iter()
        .map(|(name, column)| match column {
            Column::Int(_) if *name == "time_ns" => {
                format!("REQUIRED INT64 {name} (TIMESTAMP(NANOS,true));")
            }
            Column::Int(_) => format!("REQUIRED INT64 {name};"),
            Column::Text(_) => format!("REQUIRED BYTE_ARRAY {name} (UTF8);"),
            Column::Flag(_) => format!("REQUIRED BOOLEAN {name};"),
        })
        .collect();
    let schema = Arc::new(parse_message_type(&format!(
        "message mutua_open_data {{ {} }}",
        fields.join(" ")
    ))?);
    let properties = Arc::new(WriterProperties::builder().build());
    let mut writer = SerializedFileWriter::new(File::create(path)?, schema, properties)?;
    let mut group = writer.next_row_group()?;
    let mut columns = table.columns.iter();
    while let Some(mut column_writer) = group.next_column()? {
        let (_, column) = columns
            .next()
            .ok_or_else(|| anyhow::anyhow!("the Parquet schema has more columns than the table"))?;
        match column {
            Column::Int(values) => {
                column_writer
                    .typed::<Int64Type>()
                    .write_batch(values, None, None)?;
            }
            Column::Text(values) => {
                let values: Vec<ByteArray> = values
                    .iter()
                    .map(|value| ByteArray::from(value.as_str()))
                    .collect();
                column_writer
                    .typed::<ByteArrayType>()
                    .write_batch(&values, None, None)?;
            }
            Column::Flag(values) => {
                column_writer
                    .typed::<BoolType>()
                    .write_batch(values, None, None)?;
            }
        }
        column_writer.close()?;
    }
    group.close()?;
    writer.close()?;
    Ok(())
}

/// Writes `trades-<date>.csv` and `instruments-<date>.csv` into `directory`.
pub fn write_csv(directory: &Path, date: &str, export: &DayExport) -> anyhow::Result<Vec<PathBuf>> {
    let trades = directory.join(format!("trades-{date}.csv"));
    let instruments = directory.join(format!("instruments-{date}.csv"));
    write_table_csv(&trades, &trades_table(export))?;
    write_table_csv(&instruments, &instruments_table(export))?;
    Ok(vec![trades, instruments])
}

/// Writes `trades-<date>.parquet` and `instruments-<date>.parquet` into `directory`.
pub fn write_parquet(
    directory: &Path,
    date: &str,
    export: &DayExport,
) -> anyhow::Result<Vec<PathBuf>> {
    let trades = directory.join(format!("trades-{date}.parquet"));
    let instruments = directory.join(format!("instruments-{date}.parquet"));
    write_table_parquet(&trades, &trades_table(export))?;
    write_table_parquet(&instruments, &instruments_table(export))?;
    Ok(vec![trades, instruments])
}
