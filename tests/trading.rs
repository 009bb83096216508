//! End-to-end trading through gRPC against the real server: registration, cash, listing,
//! offerings, continuous trading, income, market data, the order-entry stream, idempotent
//! retries, health and reflection.

mod support;

use std::time::Duration;

use mutua_gateway::pb;
use pb::order_entry_request::Command as EntryCommand;
use pb::order_entry_response::Result as EntryResult;
use support::*;
use tokio_stream::StreamExt;
use tonic::Code;

/// How long a test waits for a streamed message that should already be on its way.
const STREAM_WAIT: Duration = Duration::from_secs(10);

/// An issuing organization and two funded contributors.
struct Market {
    clients: Clients,
    operator: String,
    organization: (u32, String),
    alice: (u32, String),
    bob: (u32, String),
}

async fn market(server: &TestServer) -> Market {
    let mut clients = server.clients().await;
    let operator = server.operator_token.clone();
    let organization = register_accredited(&mut clients, &operator, "Green Valley Co-op").await;
    let alice = register(&mut clients, &operator, pb::Role::Contributor, "alice").await;
    let bob = register(&mut clients, &operator, pb::Role::Contributor, "bob").await;
    assert_eq!(
        deposit(&mut clients, &operator, alice.0, "10000.00").await,
        "10000.00"
    );
    assert_eq!(
        deposit(&mut clients, &operator, bob.0, "10000.00").await,
        "10000.00"
    );
    assert_eq!(
        deposit(&mut clients, &operator, organization.0, "1000.00").await,
        "1000.00"
    );
    Market {
        clients,
        operator,
        organization,
        alice,
        bob,
    }
}

/// A Co-operative Investment Plan share without lock-in (so it can be traded at once); the tax
/// credit keeps its 30 % default. The whole issue may be held by one contributor.
fn tradable_cip_share(symbol: &str, issuer: u32) -> pb::ListInstrumentRequest {
    pb::ListInstrumentRequest {
        cooperative_investment_plan: true,
        lock_in_years: Some(0),
        holding_cap: Some("1".into()),
        ..share(symbol, issuer)
    }
}

async fn next_trade(trades: &mut tonic::Streaming<pb::Trade>) -> pb::Trade {
    tokio::time::timeout(STREAM_WAIT, trades.next())
        .await
        .expect("a trade is streamed")
        .expect("the trade stream is open")
        .expect("a trade, not an error")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_market_raises_capital_trades_and_pays_income() {
    let server = start().await;
    let Market {
        mut clients,
        operator,
        organization,
        alice,
        bob,
    } = market(&server).await;

    // Listing: a CIP share and a bond, trading opened by the operator.
    let share_id = list(
        &mut clients,
        &operator,
        tradable_cip_share("GVC-SHARE", organization.0),
    )
    .await;
    let bond_id = list(
        &mut clients,
        &operator,
        pb::ListInstrumentRequest {
            holding_cap: Some("1".into()),
            ..bond("GVC-BOND", organization.0)
        },
    )
    .await;
    open_trading(&mut clients, &operator, share_id).await;
    open_trading(&mut clients, &operator, bond_id).await;
    let request = pb::GetInstrumentRequest {
        instrument: by_symbol("GVC-SHARE"),
    };
    let listed = clients
        .registry
        .get_instrument(with_token(request, &alice.1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            listed.instrument_id,
            listed.trading_open,
            listed.cooperative_investment_plan
        ),
        (share_id, true, true)
    );
    assert_eq!(
        (
            listed.par.as_str(),
            listed.tax_credit_rate.as_str(),
            listed.lock_in_years
        ),
        ("10.00", "0.3", 0)
    );
    // Nothing is issued yet, so nothing has accrued: the ceiling, the accrued value and the price
    // of a first offering are all par.
    assert_eq!(listed.first_issue_time_ns, None);
    assert_eq!(
        (
            listed.price_ceiling.as_str(),
            listed.accrued_value.as_str(),
            listed.offering_price.as_str()
        ),
        ("10.00", "10.00", "10.00")
    );
    let all = clients
        .registry
        .list_instruments(with_token(pb::ListInstrumentsRequest {}, &bob.1))
        .await
        .unwrap()
        .into_inner();
    let symbols: Vec<&str> = all
        .instruments
        .iter()
        .map(|instrument| instrument.symbol.as_str())
        .collect();
    assert_eq!(symbols, ["GVC-SHARE", "GVC-BOND"]);

    // Primary market: the organization offers 1000 shares at par; subscriptions reserve cash.
    let offering = open_offering(&mut clients, &organization.1, share_id, "1000", "100").await;
    assert_eq!(
        subscribe(&mut clients, &alice.1, offering, "300").await,
        "3000.00"
    );
    assert_eq!(
        subscribe(&mut clients, &bob.1, offering, "200").await,
        "2000.00"
    );
    let alice_cash = balances(&mut clients, &alice.1, None).await;
    assert_eq!(
        (
            alice_cash.balance.as_str(),
            alice_cash.reserved.as_str(),
            alice_cash.free.as_str()
        ),
        ("10000.00", "3000.00", "7000.00")
    );
    assert_eq!(
        holding(&mut clients, &alice.1, share_id)
            .await
            .unwrap()
            .subscribed_quantity,
        "300"
    );
    let close = pb::CloseOfferingRequest {
        request_id: request_id(),
        offering_id: offering,
    };
    let closed = clients
        .registry
        .close_offering(with_token(close, &organization.1))
        .await
        .unwrap()
        .into_inner();
    assert!(closed.issued);
    assert_eq!(
        (
            closed.subscribed_quantity.as_str(),
            closed.proceeds.as_str()
        ),
        ("500", "5000.00")
    );
    assert_eq!(
        balances(&mut clients, &organization.1, None).await.balance,
        "6000.00"
    );
    let alice_share = holding(&mut clients, &alice.1, share_id).await.unwrap();
    assert_eq!(
        (
            alice_share.quantity.as_str(),
            alice_share.subscribed_quantity.as_str(),
            alice_share.free_quantity.as_str()
        ),
        ("300", "0", "300")
    );

    // Tax credits: 30 % of a CIP primary purchase, filterable by year.
    let credits = clients
        .accounts
        .get_tax_credits(with_token(pb::GetTaxCreditsRequest::default(), &alice.1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(credits.credits.len(), 1);
    let credit = &credits.credits[0];
    assert_eq!(
        (
            credit.symbol.as_str(),
            credit.purchase.as_str(),
            credit.credit.as_str(),
            credit.rate.as_str()
        ),
        ("GVC-SHARE", "3000.00", "900.00", "0.3")
    );
    assert_eq!(credits.total_credit, "900.00");
    let this_year = mutua_gateway::convert::year_of(now_ns());
    for (year, expected) in [(this_year, 1), (2000, 0)] {
        let request = pb::GetTaxCreditsRequest {
            participant_id: Some(alice.0),
            year: Some(year),
        };
        let filtered = clients
            .accounts
            .get_tax_credits(with_token(request, &operator))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(filtered.credits.len(), expected, "credits in {year}");
    }

    // The bond: bob buys 50 units (5 lots) at par; other social investments earn 30 % as well.
    run_offering(
        &mut clients,
        &organization.1,
        bond_id,
        "100",
        "10",
        &[(&bob.1, "50")],
    )
    .await;
    let bob_credits = clients
        .accounts
        .get_tax_credits(with_token(pb::GetTaxCreditsRequest::default(), &bob.1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        bob_credits.total_credit, "2100.00",
        "600.00 on the share and 1500.00 on the bond"
    );

    // Market data: subscribe to trades before the first one happens.
    let mut trades = clients
        .market_data
        .stream_trades(pb::StreamTradesRequest {
            instrument: None,
            from_sequence: None,
        })
        .await
        .unwrap()
        .into_inner();

    // A GTC sell rests and reserves units.
    let ask = place(
        &mut clients,
        &bob.1,
        limit(share_id, pb::Side::Sell, "9.80", "50"),
    )
    .await;
    assert_eq!(
        (ask.status, ask.remaining_quantity.as_str()),
        (pb::OrderStatus::Resting as i32, "50")
    );
    assert!(ask.fills.is_empty());
    let bob_share = holding(&mut clients, &bob.1, share_id).await.unwrap();
    assert_eq!(
        (
            bob_share.reserved_quantity.as_str(),
            bob_share.free_quantity.as_str()
        ),
        ("50", "150")
    );
    assert_eq!(
        levels(&book(&mut clients, share_id).await.asks),
        [("9.80", "50", 1)]
    );

    // A crossing buy trades at the resting price.
    let lift = place(
        &mut clients,
        &alice.1,
        limit(share_id, pb::Side::Buy, "9.85", "20"),
    )
    .await;
    assert_eq!(lift.status, pb::OrderStatus::Filled as i32);
    assert_eq!(lift.fills.len(), 1);
    let fill = &lift.fills[0];
    assert_eq!(
        (
            fill.maker_order_id,
            fill.price.as_str(),
            fill.quantity.as_str(),
            fill.notional.as_str()
        ),
        (ask.order_id, "9.80", "20", "196.00")
    );
    let trade = next_trade(&mut trades).await;
    assert_eq!(
        (
            trade.instrument_id,
            trade.symbol.as_str(),
            trade.price.as_str(),
            trade.quantity.as_str()
        ),
        (share_id, "GVC-SHARE", "9.80", "20")
    );
    assert_eq!(
        (trade.maker_order_id, trade.taker_order_id, trade.taker_side),
        (ask.order_id, lift.order_id, pb::Side::Buy as i32)
    );
    assert_eq!(
        trade.sequence,
        lift.commit.unwrap().sequence,
        "the trade names the journal record that caused it"
    );

    // Immediate-or-cancel takes the remaining 30 and cancels the other 10.
    let sweep = place(
        &mut clients,
        &alice.1,
        pb::PlaceOrderRequest {
            time_in_force: pb::TimeInForce::ImmediateOrCancel as i32,
            ..limit(share_id, pb::Side::Buy, "9.80", "40")
        },
    )
    .await;
    assert_eq!(
        (sweep.status, sweep.remaining_quantity.as_str()),
        (pb::OrderStatus::Cancelled as i32, "0")
    );
    assert_eq!(
        sweep
            .fills
            .iter()
            .map(|fill| fill.quantity.as_str())
            .collect::<Vec<_>>(),
        ["30"]
    );
    assert_eq!(next_trade(&mut trades).await.quantity, "30");
    let after_sweep = book(&mut clients, share_id).await;
    assert!(
        after_sweep.asks.is_empty() && after_sweep.bids.is_empty(),
        "the IOC remainder did not rest: {after_sweep:?}"
    );

    // Fill-or-kill: accepted and killed whole when the book cannot fill it, filled whole when it can.
    let bid = place(
        &mut clients,
        &alice.1,
        limit(share_id, pb::Side::Buy, "10.00", "10"),
    )
    .await;
    assert_eq!(bid.status, pb::OrderStatus::Resting as i32);
    let fill_or_kill = |quantity: &str| pb::PlaceOrderRequest {
        time_in_force: pb::TimeInForce::FillOrKill as i32,
        ..limit(share_id, pb::Side::Sell, "9.90", quantity)
    };
    let killed = place(&mut clients, &bob.1, fill_or_kill("20")).await;
    assert_eq!(
        (killed.status, killed.fills.len()),
        (pb::OrderStatus::Killed as i32, 0),
        "{killed:?}"
    );
    assert!(
        killed.order_id > bid.order_id,
        "a killed order has an order id"
    );
    let gone = clients
        .exchange
        .cancel_order(with_token(
            pb::CancelOrderRequest {
                request_id: request_id(),
                order_id: killed.order_id,
            },
            &bob.1,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (gone.code(), reason_code(&gone)),
        (Code::FailedPrecondition, Some(57)),
        "cancelling a killed order says it is no longer resting: {gone:?}"
    );
    assert_eq!(
        levels(&book(&mut clients, share_id).await.bids),
        [("10.00", "10", 1)],
        "a killed order leaves the book alone"
    );
    let filled = place(&mut clients, &bob.1, fill_or_kill("10")).await;
    assert_eq!(filled.status, pb::OrderStatus::Filled as i32);
    assert_eq!(
        (
            filled.fills[0].price.as_str(),
            filled.fills[0].maker_order_id
        ),
        ("10.00", bid.order_id)
    );
    assert_eq!(
        next_trade(&mut trades).await.taker_side,
        pb::Side::Sell as i32
    );

    // A resting order: read it, reduce it (keeping its place), list it, cancel it.
    let resting = place(
        &mut clients,
        &alice.1,
        limit(share_id, pb::Side::Buy, "9.95", "40"),
    )
    .await;
    assert_eq!(
        balances(&mut clients, &alice.1, None).await.reserved,
        "398.00"
    );
    let reduce = pb::ReduceOrderRequest {
        request_id: request_id(),
        order_id: resting.order_id,
        reduce_by: "15".into(),
    };
    let reduced = clients
        .exchange
        .reduce_order(with_token(reduce, &alice.1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reduced.remaining_quantity, "25");
    assert_eq!(
        balances(&mut clients, &alice.1, None).await.reserved,
        "248.75",
        "reducing releases 15 × 9.95"
    );
    let order = clients
        .exchange
        .get_order(with_token(
            pb::GetOrderRequest {
                order_id: resting.order_id,
            },
            &alice.1,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (order.owner_id, order.side, order.price.as_str()),
        (alice.0, pb::Side::Buy as i32, "9.95")
    );
    assert_eq!(
        (
            order.original_quantity.as_str(),
            order.remaining_quantity.as_str()
        ),
        ("40", "25")
    );
    let listed_orders = orders(&mut clients, &alice.1).await;
    assert_eq!(
        listed_orders
            .iter()
            .map(|order| order.order_id)
            .collect::<Vec<_>>(),
        [resting.order_id]
    );
    let as_operator = pb::ListOrdersRequest {
        participant_id: Some(alice.0),
    };
    assert_eq!(
        clients
            .exchange
            .list_orders(with_token(as_operator, &operator))
            .await
            .unwrap()
            .into_inner()
            .orders,
        listed_orders
    );
    assert_eq!(
        levels(&book(&mut clients, share_id).await.bids),
        [("9.95", "25", 1)]
    );
    let cancel = pb::CancelOrderRequest {
        request_id: request_id(),
        order_id: resting.order_id,
    };
    let cancelled = clients
        .exchange
        .cancel_order(with_token(cancel, &alice.1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.cancelled_quantity, "25");
    assert!(orders(&mut clients, &alice.1).await.is_empty());
    let gone = clients
        .exchange
        .get_order(with_token(
            pb::GetOrderRequest {
                order_id: resting.order_id,
            },
            &alice.1,
        ))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    assert!(book(&mut clients, share_id).await.bids.is_empty());

    // The bond trades in lots of 10 units on its 0.05 tick.
    place(
        &mut clients,
        &bob.1,
        limit(bond_id, pb::Side::Sell, "99.50", "20"),
    )
    .await;
    let bond_buy = place(
        &mut clients,
        &alice.1,
        limit(bond_id, pb::Side::Buy, "99.50", "20"),
    )
    .await;
    assert_eq!(
        (bond_buy.status, bond_buy.fills[0].notional.as_str()),
        (pb::OrderStatus::Filled as i32, "1990.00")
    );
    let bond_trade = next_trade(&mut trades).await;
    assert_eq!(
        (
            bond_trade.symbol.as_str(),
            bond_trade.price.as_str(),
            bond_trade.quantity.as_str()
        ),
        ("GVC-BOND", "99.50", "20")
    );

    // Cash and units after trading, delivery versus payment.
    // alice: 10000 − 3000 subscribed − 196 − 294 − 100 − 1990 = 4420.
    // bob:   10000 − 2000 subscribed − 5000 bond + 196 + 294 + 100 + 1990 = 5580.
    let alice_cash = balances(&mut clients, &alice.1, None).await;
    assert_eq!(
        (alice_cash.balance.as_str(), alice_cash.reserved.as_str()),
        ("4420.00", "0.00")
    );
    let bob_cash = balances(&mut clients, &bob.1, None).await;
    assert_eq!(
        (bob_cash.balance.as_str(), bob_cash.reserved.as_str()),
        ("5580.00", "0.00")
    );
    assert_eq!(
        holding(&mut clients, &alice.1, share_id)
            .await
            .unwrap()
            .quantity,
        "360"
    );
    assert_eq!(
        holding(&mut clients, &bob.1, share_id)
            .await
            .unwrap()
            .quantity,
        "140"
    );
    assert_eq!(
        holding(&mut clients, &alice.1, bond_id)
            .await
            .unwrap()
            .quantity,
        "20"
    );
    assert_eq!(
        holding(&mut clients, &bob.1, bond_id)
            .await
            .unwrap()
            .quantity,
        "30"
    );

    // A distribution can only pay out what has accrued since the first issue, a moment ago: even
    // a cent per unit is refused, and the accrued value is still par.
    let pay = pb::PayDistributionRequest {
        request_id: request_id(),
        instrument: by_id(share_id),
        amount_per_unit: "0.01".into(),
    };
    let refused = clients
        .registry
        .pay_distribution(with_token(pay, &organization.1))
        .await
        .unwrap_err();
    assert_eq!(
        (refused.code(), reason_code(&refused)),
        (Code::FailedPrecondition, Some(44)),
        "{refused:?}"
    );
    let issued = clients
        .registry
        .get_instrument(with_token(
            pb::GetInstrumentRequest {
                instrument: by_id(share_id),
            },
            &alice.1,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(issued
        .first_issue_time_ns
        .is_some_and(|first| first <= now_ns()));
    assert_eq!(
        (
            issued.accrued_value.as_str(),
            issued.distributed_per_unit.as_str()
        ),
        ("10.00", "0.00")
    );
    // 1000 deposited + 5000 + 5000 proceeds.
    assert_eq!(
        balances(&mut clients, &organization.1, None).await.balance,
        "11000.00"
    );
    // Cash is conserved: the 21000.00 deposited is all still on the ledger, operator included.
    let mut total = rust_decimal::Decimal::ZERO;
    for participant in [0, organization.0, alice.0, bob.0] {
        total += balances(&mut clients, &operator, Some(participant))
            .await
            .balance
            .parse::<rust_decimal::Decimal>()
            .unwrap();
    }
    assert_eq!(total.to_string(), "21000.00");

    // Shutting down ends open market-data streams instead of waiting for their subscribers.
    server.stop().await;
    assert!(
        !matches!(trades.message().await, Ok(Some(_))),
        "the trade stream ended with the server"
    );
}

/// One command for the order-entry stream.
fn entry(command: EntryCommand) -> pb::OrderEntryRequest {
    pb::OrderEntryRequest {
        command: Some(command),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_entry_stream_answers_in_order_and_survives_rejections() {
    let server = start().await;
    let Market {
        mut clients,
        operator,
        organization,
        alice,
        bob,
    } = market(&server).await;
    let share_id = list(
        &mut clients,
        &operator,
        tradable_cip_share("STREAM-A", organization.0),
    )
    .await;
    open_trading(&mut clients, &operator, share_id).await;
    run_offering(
        &mut clients,
        &organization.1,
        share_id,
        "1000",
        "100",
        &[(&bob.1, "500")],
    )
    .await;

    // Forty sells at rising prices, with three bad commands in the middle: an off-tick price,
    // a cancel of an order that does not exist, and an empty command.
    let mut commands = Vec::new();
    let mut expected_ids = Vec::new();
    for index in 0..40u32 {
        let order = limit(
            share_id,
            pb::Side::Sell,
            &format!("9.{:02}", index + 1),
            "5",
        );
        expected_ids.push(order.request_id.clone());
        commands.push(entry(EntryCommand::Place(order)));
        if index == 20 {
            let off_tick = limit(share_id, pb::Side::Sell, "9.005", "5");
            expected_ids.push(off_tick.request_id.clone());
            commands.push(entry(EntryCommand::Place(off_tick)));
            let cancel = pb::CancelOrderRequest {
                request_id: request_id(),
                order_id: 987_654,
            };
            expected_ids.push(cancel.request_id.clone());
            commands.push(entry(EntryCommand::Cancel(cancel)));
            expected_ids.push(String::new());
            commands.push(pb::OrderEntryRequest { command: None });
        }
    }
    let outbound = tokio_stream::iter(commands);
    let replies = clients
        .exchange
        .order_entry(with_token(outbound, &bob.1))
        .await
        .unwrap()
        .into_inner();
    let replies: Vec<pb::OrderEntryResponse> =
        tokio::time::timeout(STREAM_WAIT, replies.collect::<Result<Vec<_>, _>>())
            .await
            .expect("every reply arrives")
            .expect("the stream ends cleanly after the last reply");

    assert_eq!(
        replies
            .iter()
            .map(|reply| reply.request_id.clone())
            .collect::<Vec<_>>(),
        expected_ids,
        "one reply per command, in order"
    );
    let rejections: Vec<(usize, &pb::Rejection)> = replies
        .iter()
        .enumerate()
        .filter_map(|(index, reply)| match &reply.result {
            Some(EntryResult::Rejected(rejection)) => Some((index, rejection)),
            _ => None,
        })
        .collect();
    assert_eq!(rejections.len(), 3, "{rejections:?}");
    let (off_tick_at, off_tick) = rejections[0];
    assert_eq!(off_tick_at, 21);
    assert_eq!(
        (off_tick.grpc_code, off_tick.reason_code),
        (Code::InvalidArgument as i32, 25)
    );
    assert!(off_tick.message.starts_with("price:"), "{off_tick:?}");
    let (_, unknown) = rejections[1];
    assert_eq!(
        (unknown.grpc_code, unknown.reason_code),
        (Code::NotFound as i32, 5)
    );
    let (_, empty) = rejections[2];
    // Refused by the gateway before the engine: the gateway's own code, FIELD_INVALID.
    assert_eq!(
        (empty.grpc_code, empty.reason_code),
        (Code::InvalidArgument as i32, 1006)
    );
    assert!(empty.message.starts_with("command:"));

    // Every good command rested, with increasing order ids, and the book holds all forty.
    let placed: Vec<u64> = replies
        .iter()
        .filter_map(|reply| match &reply.result {
            Some(EntryResult::Placed(placed)) => {
                assert_eq!(placed.status, pb::OrderStatus::Resting as i32);
                Some(placed.order_id)
            }
            _ => None,
        })
        .collect();
    assert_eq!(placed.len(), 40);
    assert!(
        placed.windows(2).all(|pair| pair[0] < pair[1]),
        "order ids follow the stream's order"
    );
    assert_eq!(orders(&mut clients, &bob.1).await.len(), 40);
    let depth = clients
        .market_data
        .get_book(pb::GetBookRequest {
            instrument: by_id(share_id),
            depth: 100,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(depth.asks.len(), 40);
    assert_eq!(depth.asks[0].price, "9.01");

    // Cancel, reduce and a crossing buy on one pipelined stream, fed while replies are read.
    let (sender, outbound) = tokio::sync::mpsc::channel(8);
    let mut replies = clients
        .exchange
        .order_entry(with_token(
            tokio_stream::wrappers::ReceiverStream::new(outbound),
            &bob.1,
        ))
        .await
        .unwrap()
        .into_inner();
    sender
        .send(entry(EntryCommand::Cancel(pb::CancelOrderRequest {
            request_id: request_id(),
            order_id: placed[0],
        })))
        .await
        .unwrap();
    sender
        .send(entry(EntryCommand::Reduce(pb::ReduceOrderRequest {
            request_id: request_id(),
            order_id: placed[1],
            reduce_by: "2".into(),
        })))
        .await
        .unwrap();
    let first = tokio::time::timeout(STREAM_WAIT, replies.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(first.result, Some(EntryResult::Cancelled(ref cancelled)) if cancelled.cancelled_quantity == "5"),
        "{first:?}"
    );
    let second = tokio::time::timeout(STREAM_WAIT, replies.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(second.result, Some(EntryResult::Reduced(ref reduced)) if reduced.remaining_quantity == "3"),
        "{second:?}"
    );
    drop(sender);
    assert!(
        tokio::time::timeout(STREAM_WAIT, replies.next())
            .await
            .unwrap()
            .is_none(),
        "the stream ends when the client stops sending"
    );
    assert_eq!(
        levels(&book(&mut clients, share_id).await.asks)[0],
        ("9.02", "3", 1)
    );

    // A contributor buying through its own stream trades with bob's orders.
    let buy = limit(share_id, pb::Side::Buy, "9.03", "6");
    let replies = clients
        .exchange
        .order_entry(with_token(
            tokio_stream::iter([entry(EntryCommand::Place(buy))]),
            &alice.1,
        ))
        .await
        .unwrap()
        .into_inner();
    let replies: Vec<_> = replies.collect::<Result<Vec<_>, _>>().await.unwrap();
    let Some(EntryResult::Placed(bought)) = &replies[0].result else {
        panic!("{replies:?}")
    };
    assert_eq!(
        bought
            .fills
            .iter()
            .map(|fill| (fill.price.as_str(), fill.quantity.as_str()))
            .collect::<Vec<_>>(),
        [("9.02", "3"), ("9.03", "3")]
    );

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_applies_once() {
    let server = start().await;
    let Market {
        mut clients,
        operator,
        organization,
        alice,
        bob,
    } = market(&server).await;
    let share_id = list(
        &mut clients,
        &operator,
        tradable_cip_share("RETRY-A", organization.0),
    )
    .await;
    open_trading(&mut clients, &operator, share_id).await;

    // A deposit sent twice credits once; the retry says so and repeats the first outcome whole:
    // the balance after the first deposit, the first commit's sequence and time.
    let deposit_request = pb::DepositRequest {
        request_id: "bank-transfer-77".into(),
        participant_id: alice.0,
        amount: "250.00".into(),
    };
    let first = clients
        .accounts
        .deposit(with_token(deposit_request.clone(), &operator))
        .await
        .unwrap()
        .into_inner();
    let again = clients
        .accounts
        .deposit(with_token(deposit_request.clone(), &operator))
        .await
        .unwrap()
        .into_inner();
    let (first_commit, again_commit) = (first.commit.unwrap(), again.commit.unwrap());
    assert_eq!(
        (first.balance.as_str(), first_commit.replayed),
        ("10250.00", false)
    );
    assert_eq!(
        (again.balance.as_str(), again_commit.replayed),
        ("10250.00", true)
    );
    assert_eq!(
        (again_commit.sequence, again_commit.timestamp_ns),
        (first_commit.sequence, first_commit.timestamp_ns)
    );
    assert_eq!(
        balances(&mut clients, &alice.1, None).await.balance,
        "10250.00"
    );

    // The same request id with another amount or another account is not a retry: it is refused
    // naming request_id, and moves nothing.
    for reused in [
        pb::DepositRequest {
            amount: "500.00".into(),
            ..deposit_request.clone()
        },
        pb::DepositRequest {
            participant_id: bob.0,
            ..deposit_request.clone()
        },
    ] {
        let refused = clients
            .accounts
            .deposit(with_token(reused, &operator))
            .await
            .unwrap_err();
        assert_eq!(
            (refused.code(), reason_code(&refused)),
            (Code::InvalidArgument, Some(52)),
            "{refused:?}"
        );
        assert!(refused.message().starts_with("request_id:"), "{refused:?}");
    }
    assert_eq!(
        balances(&mut clients, &alice.1, None).await.balance,
        "10250.00"
    );
    assert_eq!(
        balances(&mut clients, &bob.1, None).await.balance,
        "10000.00"
    );

    // A subscription sent twice reserves once.
    let offering = open_offering(&mut clients, &organization.1, share_id, "1000", "10").await;
    let subscription = pb::SubscribeRequest {
        request_id: "subscribe-once".into(),
        offering_id: offering,
        quantity: "100".into(),
    };
    clients
        .registry
        .subscribe(with_token(subscription.clone(), &alice.1))
        .await
        .unwrap();
    let replayed = clients
        .registry
        .subscribe(with_token(subscription, &alice.1))
        .await
        .unwrap()
        .into_inner();
    assert!(replayed.commit.unwrap().replayed);
    assert_eq!(
        balances(&mut clients, &alice.1, None).await.reserved,
        "1000.00"
    );
    let close = pb::CloseOfferingRequest {
        request_id: "close-once".into(),
        offering_id: offering,
    };
    clients
        .registry
        .close_offering(with_token(close.clone(), &organization.1))
        .await
        .unwrap();
    assert!(
        clients
            .registry
            .close_offering(with_token(close, &organization.1))
            .await
            .unwrap()
            .into_inner()
            .commit
            .unwrap()
            .replayed
    );
    assert_eq!(
        holding(&mut clients, &alice.1, share_id)
            .await
            .unwrap()
            .quantity,
        "100"
    );

    // An order sent twice rests once, under the first order id.
    let order = pb::PlaceOrderRequest {
        request_id: "my-order-1".into(),
        ..limit(share_id, pb::Side::Sell, "9.90", "30")
    };
    let placed = clients
        .exchange
        .place_order(with_token(order.clone(), &alice.1))
        .await
        .unwrap()
        .into_inner();
    let retried = clients
        .exchange
        .place_order(with_token(order.clone(), &alice.1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried.order_id, placed.order_id);
    assert!(retried.commit.unwrap().replayed && !placed.commit.unwrap().replayed);
    assert_eq!(
        (retried.status, retried.remaining_quantity.as_str()),
        (placed.status, "30"),
        "the retry repeats the first outcome"
    );
    assert_eq!(orders(&mut clients, &alice.1).await.len(), 1);

    // A cancel under the order's request id is not a retry of the order: refused, and the order
    // stays on the book.
    let cancel_under_order_id = pb::CancelOrderRequest {
        request_id: "my-order-1".into(),
        order_id: placed.order_id,
    };
    let refused = clients
        .exchange
        .cancel_order(with_token(cancel_under_order_id, &alice.1))
        .await
        .unwrap_err();
    assert_eq!(
        (refused.code(), reason_code(&refused)),
        (Code::InvalidArgument, Some(52)),
        "{refused:?}"
    );
    assert_eq!(orders(&mut clients, &alice.1).await.len(), 1);
    assert_eq!(
        holding(&mut clients, &alice.1, share_id)
            .await
            .unwrap()
            .reserved_quantity,
        "30"
    );

    // The same request id from another participant is another command.
    let bobs = pb::PlaceOrderRequest {
        request_id: "my-order-1".into(),
        ..limit(share_id, pb::Side::Buy, "9.50", "10")
    };
    let bobs = clients
        .exchange
        .place_order(with_token(bobs, &bob.1))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(bobs.order_id, placed.order_id);
    assert!(!bobs.commit.unwrap().replayed);
    assert_eq!(bobs.status, pb::OrderStatus::Resting as i32);
    assert_eq!(balances(&mut clients, &bob.1, None).await.reserved, "95.00");

    // A retry on the order-entry stream is recognised as well.
    let replies = clients
        .exchange
        .order_entry(with_token(
            tokio_stream::iter([entry(EntryCommand::Place(order))]),
            &alice.1,
        ))
        .await
        .unwrap()
        .into_inner();
    let replies: Vec<_> = replies.collect::<Result<Vec<_>, _>>().await.unwrap();
    let Some(EntryResult::Placed(streamed)) = &replies[0].result else {
        panic!("{replies:?}")
    };
    assert_eq!(
        (streamed.order_id, streamed.commit.unwrap().replayed),
        (placed.order_id, true)
    );
    assert_eq!(orders(&mut clients, &alice.1).await.len(), 1);

    // A cancel sent twice: the retry is not an "unknown order" error but the first outcome.
    let cancel = pb::CancelOrderRequest {
        request_id: "cancel-1".into(),
        order_id: placed.order_id,
    };
    clients
        .exchange
        .cancel_order(with_token(cancel.clone(), &alice.1))
        .await
        .unwrap();
    let cancelled_again = clients
        .exchange
        .cancel_order(with_token(cancel, &alice.1))
        .await
        .unwrap()
        .into_inner();
    assert!(cancelled_again.commit.unwrap().replayed);
    assert!(orders(&mut clients, &alice.1).await.is_empty());

    // A registration under a used request id asking for another role is refused: it cannot
    // return (or re-issue) the first participant's token with an operator's role.
    let registration = pb::RegisterParticipantRequest {
        request_id: "register-carol".into(),
        role: pb::Role::Contributor as i32,
        name: "carol".into(),
    };
    let first_carol = clients
        .registry
        .register_participant(with_token(registration.clone(), &operator))
        .await
        .unwrap()
        .into_inner();
    let as_operator = pb::RegisterParticipantRequest {
        role: pb::Role::Operator as i32,
        ..registration.clone()
    };
    let refused = clients
        .registry
        .register_participant(with_token(as_operator, &operator))
        .await
        .unwrap_err();
    assert_eq!(
        (refused.code(), reason_code(&refused)),
        (Code::InvalidArgument, Some(52)),
        "{refused:?}"
    );
    // A true retry returns the same participant with a fresh token that replaces the first
    // (a token is stored only as a hash and cannot be shown twice).
    let carol = clients
        .registry
        .register_participant(with_token(registration, &operator))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(carol.participant_id, first_carol.participant_id);
    assert_ne!(carol.token, first_carol.token);
    assert!(carol.commit.unwrap().replayed);
    let stale = clients
        .accounts
        .get_balances(with_token(
            pb::GetBalancesRequest {
                participant_id: None,
            },
            &first_carol.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        stale.code(),
        Code::Unauthenticated,
        "the replaced token is refused: {stale:?}"
    );
    // The gateway reads the token's role to decide who may read others' accounts.
    let snooping = pb::GetBalancesRequest {
        participant_id: Some(alice.0),
    };
    let refused = clients
        .accounts
        .get_balances(with_token(snooping, &carol.token))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Code::PermissionDenied,
        "a contributor's token stays a contributor's: {refused:?}"
    );
    let escalation = pb::DepositRequest {
        request_id: request_id(),
        participant_id: carol.participant_id,
        amount: "1000000.00".into(),
    };
    let refused = clients
        .accounts
        .deposit(with_token(escalation, &carol.token))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(
        balances(&mut clients, &carol.token, None).await.balance,
        "0.00"
    );

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_describe_the_running_server() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let server = start().await;
    let channel = server.channel().await;

    let mut health = HealthClient::new(channel.clone());
    for service in [
        "",
        "mutua.v1.Exchange",
        "mutua.v1.Accounts",
        "mutua.v1.Registry",
        "mutua.v1.MarketData",
        "mutua.v1.Identity",
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(
            status,
            ServingStatus::Serving as i32,
            "health of {service:?}"
        );
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "mutua.v1.Nothing".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let mut reflection = ServerReflectionClient::new(channel);
    let list = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = reflection
        .server_reflection_info(tokio_stream::iter([list]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.next().await.expect("a reflection reply").unwrap();
    let Some(MessageResponse::ListServicesResponse(listed)) = reply.message_response else {
        panic!("{reply:?}")
    };
    let mut names: Vec<String> = listed
        .service
        .into_iter()
        .map(|service| service.name)
        .collect();
    names.sort();
    for wanted in [
        "grpc.health.v1.Health",
        "mutua.v1.Accounts",
        "mutua.v1.Exchange",
        "mutua.v1.MarketData",
        "mutua.v1.Registry",
    ] {
        assert!(
            names.iter().any(|name| name == wanted),
            "reflection lists {wanted}: {names:?}"
        );
    }

    // A service's file can be fetched by symbol, as grpcurl does before calling it.
    let by_symbol = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "mutua.v1.Exchange".into(),
        )),
    };
    let mut replies = reflection
        .server_reflection_info(tokio_stream::iter([by_symbol]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.next().await.expect("a reflection reply").unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = reply.message_response else {
        panic!("{reply:?}")
    };
    assert!(!files.file_descriptor_proto.is_empty());

    // The status detail every refusal carries is served too, so generic clients decode it.
    let detail = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "google.rpc.ErrorInfo".into(),
        )),
    };
    let mut replies = reflection
        .server_reflection_info(tokio_stream::iter([detail]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.next().await.expect("a reflection reply").unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = reply.message_response else {
        panic!("google.rpc.ErrorInfo is not served: {reply:?}")
    };
    assert!(!files.file_descriptor_proto.is_empty());

    server.stop().await;
}
