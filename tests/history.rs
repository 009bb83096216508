//! Everyone's own history and the open market's past, through the real server: orders in every
//! state with their fills, a participant's trades, cash movements and activity, paged both ways
//! and filtered by time and instrument; the yearly statement with the social economy's lines and
//! what stays private to a voucher's funder; public trades and bars without a token; the read
//! model after a graceful restart, after a kill -9, and rebuilt from the journal when deleted;
//! and `mutua export --day` writing CSV and Parquet that read back.

mod support;

use std::process::Command;

use mutua_gateway::pb;
use support::*;
use tonic::transport::Channel;
use tonic::Code;

struct Market {
    operator: String,
    regulator: (u32, String),
    issuer: (u32, String),
    buyer: (u32, String),
    seller: (u32, String),
    share: u32,
}

async fn market(c: &mut Clients, operator: &str) -> Market {
    let issuer = register_accredited(c, operator, "history-coop").await;
    let regulator = register(c, operator, pb::Role::Regulator, "the regulator").await;
    let buyer = register(c, operator, pb::Role::Contributor, "buyer").await;
    let seller = register(c, operator, pb::Role::Contributor, "seller").await;
    for trader in [&buyer, &seller] {
        deposit(c, operator, trader.0, "100000.00").await;
    }
    let listing = pb::ListInstrumentRequest {
        holding_cap: Some("1".into()),
        ..share("HIST", issuer.0)
    };
    let share = list(c, operator, listing).await;
    open_trading(c, operator, share).await;
    run_offering(
        c,
        &issuer.1,
        share,
        "100",
        "1",
        &[(seller.1.as_str(), "100")],
    )
    .await;
    Market {
        operator: operator.to_string(),
        regulator,
        issuer,
        buyer,
        seller,
        share,
    }
}

fn order(
    instrument: u32,
    side: pb::Side,
    price: &str,
    quantity: &str,
    time_in_force: pb::TimeInForce,
) -> pb::PlaceOrderRequest {
    pb::PlaceOrderRequest {
        time_in_force: time_in_force as i32,
        ..limit(instrument, side, price, quantity)
    }
}

/// Every page of a participant's orders, `page` at a time.
async fn all_orders(
    c: &mut Clients,
    token: &str,
    filter: pb::HistoryFilter,
) -> Vec<pb::OrderRecord> {
    let mut orders = Vec::new();
    let mut page_token = Vec::new();
    loop {
        let reply = c
            .history
            .list_orders(with_token(
                pb::HistoryOrdersRequest {
                    filter: Some(pb::HistoryFilter {
                        page_token,
                        ..filter.clone()
                    }),
                },
                token,
            ))
            .await
            .expect("list orders")
            .into_inner();
        orders.extend(reply.orders);
        if reply.next_page_token.is_empty() {
            return orders;
        }
        page_token = reply.next_page_token;
    }
}

async fn fills(c: &mut Clients, token: &str, filter: pb::HistoryFilter) -> Vec<pb::OwnFill> {
    c.history
        .list_fills(with_token(
            pb::HistoryFillsRequest {
                filter: Some(filter),
                order_id: 0,
            },
            token,
        ))
        .await
        .expect("list fills")
        .into_inner()
        .fills
}

async fn cash(c: &mut Clients, token: &str, participant: u32) -> Vec<pb::CashMovement> {
    c.history
        .list_cash_movements(with_token(
            pb::CashMovementsRequest {
                filter: Some(pb::HistoryFilter {
                    participant_id: participant,
                    ..Default::default()
                }),
            },
            token,
        ))
        .await
        .expect("list cash movements")
        .into_inner()
        .movements
}

async fn statement(c: &mut Clients, token: &str, participant: u32, year: i32) -> pb::Statement {
    c.history
        .get_statement(with_token(
            pb::StatementRequest {
                participant_id: participant,
                year,
            },
            token,
        ))
        .await
        .expect("statement")
        .into_inner()
}

fn line<'a>(statement: &'a pb::Statement, kind: &str) -> Option<&'a pb::StatementLine> {
    statement.lines.iter().find(|line| line.kind == kind)
}

fn this_year() -> i32 {
    mutua_gateway::convert::year_of(now_ns())
}

fn state(order: &pb::OrderRecord) -> pb::OrderState {
    pb::OrderState::try_from(order.state).expect("a known state")
}

/// The trades of the scenario: the seller rests 10 at 1.00; the buyer buys 4 (filled), then
/// 10 immediate-or-cancel (6 fill, 4 cancelled); the seller rests 5 at 2.00 and cancels it; the
/// buyer's fill-or-kill of 50 is killed.
async fn trade_a_little(c: &mut Clients, m: &Market) {
    use pb::{Side::*, TimeInForce::*};
    place(
        c,
        &m.seller.1,
        order(m.share, Sell, "1.00", "10", GoodTillCancelled),
    )
    .await;
    place(
        c,
        &m.buyer.1,
        order(m.share, Buy, "1.00", "4", GoodTillCancelled),
    )
    .await;
    place(
        c,
        &m.buyer.1,
        order(m.share, Buy, "1.00", "10", ImmediateOrCancel),
    )
    .await;
    let resting = place(
        c,
        &m.seller.1,
        order(m.share, Sell, "2.00", "5", GoodTillCancelled),
    )
    .await
    .order_id;
    c.exchange
        .cancel_order(with_token(
            pb::CancelOrderRequest {
                request_id: request_id(),
                order_id: resting,
            },
            &m.seller.1,
        ))
        .await
        .expect("cancel");
    place(c, &m.buyer.1, order(m.share, Buy, "2.00", "50", FillOrKill)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_in_every_state_fills_cash_statement_and_open_data() {
    let server = start().await;
    let mut c = server.clients().await;
    let m = market(&mut c, &server.operator_token).await;
    let began = now_ns();
    trade_a_little(&mut c, &m).await;

    // The buyer's orders, oldest first: filled; IOC with its remainder cancelled; FOK killed.
    let orders = all_orders(&mut c, &m.buyer.1, pb::HistoryFilter::default()).await;
    let summary: Vec<(pb::OrderState, &str, &str, &str, u64)> = orders
        .iter()
        .map(|o| {
            (
                state(o),
                o.cancel_reason.as_str(),
                o.filled_quantity.as_str(),
                o.cancelled_quantity.as_str(),
                o.fill_count,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (pb::OrderState::Filled, "", "4", "0", 1),
            (
                pb::OrderState::Cancelled,
                "immediate_or_cancel_remainder",
                "6",
                "4",
                1
            ),
            (
                pb::OrderState::Cancelled,
                "fill_or_kill_unfillable",
                "0",
                "50",
                0
            ),
        ]
    );
    assert_eq!(orders[0].fills.len(), 1);
    assert_eq!(orders[0].fills[0].price, "1.00");
    assert!(!orders[0].fills[0].maker, "the buyer took liquidity");
    assert_eq!(orders[1].filled_notional, "6.00");

    // The seller's: filled in two fills as the maker, and one cancelled at its request.
    let sold = all_orders(&mut c, &m.seller.1, pb::HistoryFilter::default()).await;
    assert_eq!(sold.len(), 2);
    assert_eq!(state(&sold[0]), pb::OrderState::Filled);
    assert_eq!(sold[0].fill_count, 2);
    assert!(sold[0].fills.iter().all(|fill| fill.maker));
    assert_eq!(state(&sold[1]), pb::OrderState::Cancelled);
    assert_eq!(sold[1].cancel_reason, "requested");
    assert_eq!(sold[1].cancelled_quantity, "5");

    // One at a time, both ways, gives the same orders.
    let one_by_one = all_orders(
        &mut c,
        &m.buyer.1,
        pb::HistoryFilter {
            page_size: 1,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(one_by_one, orders);
    let mut newest_first = all_orders(
        &mut c,
        &m.buyer.1,
        pb::HistoryFilter {
            page_size: 2,
            newest_first: true,
            ..Default::default()
        },
    )
    .await;
    newest_first.reverse();
    assert_eq!(newest_first, orders);

    // The regulator reads anyone's; a time range before the trading holds none of them.
    let by_regulator = all_orders(
        &mut c,
        &m.regulator.1,
        pb::HistoryFilter {
            participant_id: m.buyer.0,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(by_regulator, orders);
    let before = all_orders(
        &mut c,
        &m.buyer.1,
        pb::HistoryFilter {
            until_time_ns: began,
            ..Default::default()
        },
    )
    .await;
    assert!(before.is_empty(), "no order was placed before {began}");

    // Fills from each side, and filtered by instrument.
    let bought = fills(&mut c, &m.buyer.1, pb::HistoryFilter::default()).await;
    let shown: Vec<(&str, &str, i32, bool)> = bought
        .iter()
        .map(|f| (f.quantity.as_str(), f.price.as_str(), f.side, f.maker))
        .collect();
    assert_eq!(
        shown,
        vec![
            ("4", "1.00", pb::Side::Buy as i32, false),
            ("6", "1.00", pb::Side::Buy as i32, false)
        ]
    );
    let sold_fills = fills(
        &mut c,
        &m.seller.1,
        pb::HistoryFilter {
            instrument: by_id(m.share),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(sold_fills.len(), 2);
    assert!(sold_fills
        .iter()
        .all(|f| f.side == pb::Side::Sell as i32 && f.maker && f.order_id == sold[0].order_id));

    // Cash movements: each with the balance after it, the last one today's balance, and their
    // sum the balance.
    let movements = cash(&mut c, &m.buyer.1, 0).await;
    let commands: Vec<&str> = movements.iter().map(|m| m.command.as_str()).collect();
    assert_eq!(commands, vec!["deposit", "place_order", "place_order"]);
    assert_eq!(movements[1].amount, "-4.00");
    assert_eq!(movements[2].amount, "-6.00");
    let balance = balances(&mut c, &m.buyer.1, None).await;
    assert_eq!(movements.last().unwrap().balance, balance.balance);
    assert_eq!(balance.balance, "99990.00");

    // The year's statement.
    let year = this_year();
    let buyer_statement = statement(&mut c, &m.buyer.1, 0, year).await;
    assert_eq!(buyer_statement.opening_balance, "0.00");
    assert_eq!(buyer_statement.closing_balance, "99990.00");
    let purchases = line(&buyer_statement, "purchases").expect("a purchases line");
    assert_eq!(
        (
            purchases.count,
            purchases.quantity.as_str(),
            purchases.amount.as_str()
        ),
        (2, "10", "10.00")
    );
    assert_eq!(
        line(&buyer_statement, "cash_deposited").unwrap().amount,
        "100000.00"
    );
    let seller_statement = statement(&mut c, &m.seller.1, 0, year).await;
    assert_eq!(line(&seller_statement, "sales").unwrap().amount, "10.00");
    let subscriptions = line(&seller_statement, "subscriptions").expect("subscriptions");
    assert_eq!(
        (
            subscriptions.quantity.as_str(),
            subscriptions.amount.as_str()
        ),
        ("100", "1000.00")
    );
    assert_eq!(seller_statement.closing_balance, "99010.00");
    let issuer_statement = statement(&mut c, &m.issuer.1, 0, year).await;
    assert_eq!(
        line(&issuer_statement, "offering_proceeds").unwrap().amount,
        "1000.00"
    );
    // A year with nothing in it carries the balance over.
    let next_year = statement(&mut c, &m.buyer.1, 0, year + 1).await;
    assert_eq!(
        (
            next_year.opening_balance.as_str(),
            next_year.closing_balance.as_str()
        ),
        ("99990.00", "99990.00")
    );
    assert!(next_year.lines.is_empty());

    // Open data, without a token: the two trades, and one day bar that sums them.
    let trades = c
        .open_data
        .list_trades(pb::InstrumentTradesRequest {
            filter: Some(pb::HistoryFilter {
                instrument: by_symbol("HIST"),
                ..Default::default()
            }),
        })
        .await
        .expect("public trades")
        .into_inner()
        .trades;
    let quantities: Vec<&str> = trades.iter().map(|t| t.quantity.as_str()).collect();
    assert_eq!(quantities, vec!["4", "6"]);
    let bars = c
        .open_data
        .get_bars(pb::BarsRequest {
            instrument: by_id(m.share),
            interval: pb::BarInterval::Day as i32,
            ..Default::default()
        })
        .await
        .expect("bars")
        .into_inner()
        .bars;
    assert_eq!(bars.len(), 1);
    let bar = &bars[0];
    assert_eq!(
        (
            bar.open.as_str(),
            bar.high.as_str(),
            bar.low.as_str(),
            bar.close.as_str(),
            bar.volume.as_str(),
            bar.notional.as_str(),
            bar.trades,
            bar.vwap.as_str()
        ),
        ("1.00", "1.00", "1.00", "1.00", "10", "10.00", 2, "1.00")
    );
    assert_eq!(
        bar.start_ns % 86_400_000_000_000,
        0,
        "a day bar starts at midnight UTC"
    );
    let _ = &m.operator;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vouchers_split_stays_the_funders_and_social_lines_reach_the_statement() {
    let server = start().await;
    let mut c = server.clients().await;
    let operator = server.operator_token.clone();
    let funder = register(&mut c, &operator, pb::Role::Funder, "the funder").await;
    let regulator = register(&mut c, &operator, pb::Role::Regulator, "the regulator").await;
    let alice = register(&mut c, &operator, pb::Role::Contributor, "alice").await;
    let carer = register_accredited(&mut c, &operator, "care-coop").await;
    c.registry
        .set_accredited_categories(with_token(
            pb::SetAccreditedCategoriesRequest {
                request_id: request_id(),
                organization_id: carer.0,
                categories: vec!["care".into()],
            },
            &regulator.1,
        ))
        .await
        .expect("accredit for care");
    deposit(&mut c, &operator, funder.0, "10000.00").await;
    deposit(&mut c, &operator, alice.0, "100.00").await;
    let package = c
        .vouchers
        .define_service_package(with_token(
            pb::DefineServicePackageRequest {
                request_id: request_id(),
                category: "care".into(),
                name: "home care visit".into(),
                face_value: "200.00".into(),
            },
            &funder.1,
        ))
        .await
        .expect("define a package")
        .into_inner()
        .package_id;
    let voucher = c
        .vouchers
        .issue_voucher(with_token(
            pb::IssueVoucherRequest {
                request_id: request_id(),
                package_id: package,
                beneficiary_id: alice.0,
                co_payment: "30.00".into(),
                expires_at_ns: now_ns() + 30 * 86_400_000_000_000,
            },
            &funder.1,
        ))
        .await
        .expect("issue a voucher")
        .into_inner()
        .voucher_id;
    c.vouchers
        .redeem_voucher(with_token(
            pb::RedeemVoucherRequest {
                request_id: request_id(),
                voucher_id: voucher,
                organization_id: carer.0,
            },
            &alice.1,
        ))
        .await
        .expect("redeem");
    c.pool
        .contribute(with_token(
            pb::ContributeRequest {
                request_id: request_id(),
                amount: "50.00".into(),
            },
            &funder.1,
        ))
        .await
        .expect("contribute to the pool");

    let year = this_year();
    let own = statement(&mut c, &funder.1, 0, year).await;
    assert_eq!(line(&own, "vouchers_funded").unwrap().amount, "200.00");
    assert_eq!(line(&own, "voucher_co_payments").unwrap().amount, "30.00");
    assert_eq!(line(&own, "voucher_subsidies").unwrap().amount, "170.00");
    assert_eq!(line(&own, "pool_contributed").unwrap().amount, "50.00");
    assert_eq!(own.withheld_lines, 0);
    let seen = statement(&mut c, &regulator.1, funder.0, year).await;
    assert!(line(&seen, "voucher_co_payments").is_none());
    assert!(line(&seen, "voucher_subsidies").is_none());
    assert_eq!(seen.withheld_lines, 2);
    assert_eq!(line(&seen, "vouchers_funded").unwrap().amount, "200.00");
    let beneficiary = statement(&mut c, &alice.1, 0, year).await;
    assert_eq!(line(&beneficiary, "vouchers_received").unwrap().count, 1);
    assert_eq!(
        line(&beneficiary, "vouchers_used").unwrap().amount,
        "200.00"
    );
    assert!(line(&beneficiary, "voucher_co_payments").is_none());
    let provider = statement(&mut c, &operator, carer.0, year).await;
    assert_eq!(line(&provider, "vouchers_served").unwrap().amount, "200.00");

    // The split is in the funder's own activity only; the cash beside the issue is withheld
    // from everyone else, as in the audit feed.
    let activity = |token: String, participant: u32| {
        let mut history = c.history.clone();
        async move {
            history
                .list_activity(with_token(
                    pb::ActivityRequest {
                        filter: Some(pb::HistoryFilter {
                            participant_id: participant,
                            ..Default::default()
                        }),
                    },
                    &token,
                ))
                .await
                .expect("activity")
                .into_inner()
                .entries
        }
    };
    let kinds = |entries: &[pb::ActivityEntry]| -> Vec<String> {
        entries.iter().map(|entry| entry.kind.clone()).collect()
    };
    let funders_own = activity(funder.1.clone(), 0).await;
    assert!(kinds(&funders_own).contains(&"VoucherSplit".to_string()));
    let regulators_view = activity(regulator.1.clone(), funder.0).await;
    assert!(!kinds(&regulators_view).contains(&"VoucherSplit".to_string()));
    assert!(kinds(&regulators_view).contains(&"VoucherIssued".to_string()));
    let alices = activity(alice.1.clone(), 0).await;
    assert!(!kinds(&alices).contains(&"VoucherSplit".to_string()));
    assert!(kinds(&alices).contains(&"VoucherRedeemed".to_string()));
    let withheld = cash(&mut c, &regulator.1, funder.0).await;
    let issue = withheld
        .iter()
        .find(|movement| movement.command == "issue_voucher")
        .expect("the issue moved the funder's cash or reservations");
    assert!(issue.withheld && issue.amount.is_empty() && issue.balance.is_empty());
    let shown = cash(&mut c, &funder.1, 0).await;
    assert!(shown.iter().all(|movement| !movement.withheld));
    server.stop().await;
}

async fn connect(address: &str) -> Clients {
    Clients::new(
        Channel::from_shared(address.to_string())
            .unwrap()
            .connect()
            .await
            .expect("connect"),
    )
}

/// Everything the buyer can list, as one comparable value.
async fn buyers_history(
    c: &mut Clients,
    m: &Market,
) -> (
    Vec<pb::OrderRecord>,
    Vec<pb::OwnFill>,
    Vec<pb::CashMovement>,
    pb::Statement,
) {
    let mut statement_now = statement(c, &m.buyer.1, 0, this_year()).await;
    statement_now.indexed_through = 0;
    (
        all_orders(c, &m.buyer.1, pb::HistoryFilter::default()).await,
        fills(c, &m.buyer.1, pb::HistoryFilter::default()).await,
        cash(c, &m.buyer.1, 0).await,
        statement_now,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_survives_a_restart_a_kill_and_being_deleted() {
    let data = private_tempdir();
    let server = support::process::start(data.path());
    let operator = server
        .operator_token
        .clone()
        .expect("first start prints the token");
    let mut c = connect(&server.address).await;
    let m = market(&mut c, &operator).await;
    trade_a_little(&mut c, &m).await;
    // Some volume, so the read model has more than one chunk to hold.
    for _ in 0..60 {
        use pb::{Side::*, TimeInForce::*};
        place(
            &mut c,
            &m.seller.1,
            order(m.share, Sell, "1.50", "1", GoodTillCancelled),
        )
        .await;
        place(
            &mut c,
            &m.buyer.1,
            order(m.share, Buy, "1.50", "1", ImmediateOrCancel),
        )
        .await;
    }
    let before = buyers_history(&mut c, &m).await;
    assert_eq!(before.0.len(), 63, "3 orders, then 60 more");
    assert_eq!(before.1.len(), 62, "2 fills, then 60 more");

    // A graceful restart: the model resumes where it stopped.
    server.terminate();
    let server = support::process::start(data.path());
    let mut c = connect(&server.address).await;
    assert_eq!(buyers_history(&mut c, &m).await, before);

    // A kill -9 right after more trading: the model (written without a log) resumes from what
    // reached its files and catches up from the journal.
    place(
        &mut c,
        &m.buyer.1,
        order(
            m.share,
            pb::Side::Buy,
            "1.00",
            "1",
            pb::TimeInForce::GoodTillCancelled,
        ),
    )
    .await;
    let after_one_more = buyers_history(&mut c, &m).await;
    assert_eq!(after_one_more.0.len(), 64);
    server.kill();
    let server = support::process::start(data.path());
    let mut c = connect(&server.address).await;
    assert_eq!(buyers_history(&mut c, &m).await, after_one_more);

    // Deleted: rebuilt from the journal, the same.
    server.terminate();
    std::fs::remove_dir_all(data.path().join("history")).expect("delete the read model");
    let server = support::process::start(data.path());
    let mut c = connect(&server.address).await;
    assert_eq!(buyers_history(&mut c, &m).await, after_one_more);
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_export_writes_csv_and_parquet_that_read_back() {
    let server = start().await;
    let mut c = server.clients().await;
    let m = market(&mut c, &server.operator_token).await;
    trade_a_little(&mut c, &m).await;
    let out = private_tempdir();
    let day = &mutua_gateway::audit::rfc3339(now_ns())[..10];
    let address = server.address.clone();
    let output = Command::new(env!("CARGO_BIN_EXE_mutua"))
        .args(["--server", &address, "export", "--day", day, "--out"])
        .arg(out.path())
        .output()
        .expect("run mutua export");
    assert!(
        output.status.success(),
        "mutua export failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let trades_csv = std::fs::read_to_string(out.path().join(format!("trades-{day}.csv"))).unwrap();
    let lines: Vec<&str> = trades_csv.lines().collect();
    assert_eq!(
        lines[0],
        "sequence,time_ns,instrument_id,symbol,price,quantity,notional,taker_side,maker_order_id,taker_order_id"
    );
    assert_eq!(lines.len(), 3, "a header and two trades: {trades_csv}");
    assert!(lines[1].contains(",HIST,1.00,4,4.00,buy,"), "{}", lines[1]);
    let instruments_csv =
        std::fs::read_to_string(out.path().join(format!("instruments-{day}.csv"))).unwrap();
    let row = instruments_csv
        .lines()
        .find(|line| line.contains(",HIST,"))
        .expect("the instrument's row");
    assert!(
        row.ends_with(",1.00,1.00,1.00,1.00,10,10.00,2,1.00"),
        "{row}"
    );

    use parquet::file::reader::{FileReader, SerializedFileReader};
    let parquet = std::fs::File::open(out.path().join(format!("trades-{day}.parquet"))).unwrap();
    let reader = SerializedFileReader::new(parquet).expect("a Parquet file");
    assert_eq!(reader.metadata().file_metadata().num_rows(), 2);
    let rows: Vec<String> = reader
        .get_row_iter(None)
        .unwrap()
        .map(|row| row.unwrap().to_string())
        .collect();
    assert!(rows[1].contains("quantity: \"6\""), "{}", rows[1]);
    let instruments =
        std::fs::File::open(out.path().join(format!("instruments-{day}.parquet"))).unwrap();
    let reader = SerializedFileReader::new(instruments).expect("a Parquet file");
    assert_eq!(reader.metadata().file_metadata().num_rows(), 1);

    // Without trades the export still writes its headers.
    let empty_day = "1999-01-01";
    let empty_export = Command::new(env!("CARGO_BIN_EXE_mutua"))
        .args([
            "--server", &address, "export", "--format", "csv", "--day", empty_day, "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(empty_export.status.success());
    assert!(String::from_utf8_lossy(&empty_export.stdout).contains("0 trades in 1 instruments"));
    let empty =
        std::fs::read_to_string(out.path().join(format!("trades-{empty_day}.csv"))).unwrap();
    assert_eq!(empty.lines().count(), 1);
    let _ = Code::Ok;
    server.stop().await;
}
