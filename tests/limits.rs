//! The named bounds on what one client may consume, through the real server: a participant over
//! its request rate is refused at once (and nothing is journaled), fields longer than the market
//! allows are refused at the edge before they are journaled, oversized messages are refused
//! before they are decoded, and one address may hold only so many market-data streams.

mod support;

use std::time::Duration;

use mutua_gateway::pb;
use support::*;
use tokio_stream::StreamExt;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_over_its_rate_is_refused_until_its_bucket_refills() {
    let server = start_with(&["--participant-rate", "20", "--participant-burst", "10"]).await;
    let mut c = server.clients().await;
    let operator = server.operator_token.clone();
    let mut refused = Vec::new();
    for _ in 0..40 {
        if let Err(status) = c
            .accounts
            .get_balances(with_token(
                pb::GetBalancesRequest {
                    participant_id: None,
                },
                &operator,
            ))
            .await
        {
            refused.push(status);
        }
    }
    assert!(
        refused.len() >= 20,
        "only {} of 40 calls over a burst of 10 were refused",
        refused.len()
    );
    for status in &refused {
        assert_eq!(
            (status.code(), reason_code(status)),
            (Code::ResourceExhausted, Some(1010)),
            "{status:?}"
        );
        assert!(status.message().contains("retry in"), "{status:?}");
    }
    // A refused command is never journaled: the next accepted command follows the last one.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let first = c
        .accounts
        .deposit(with_token(
            pb::DepositRequest {
                request_id: request_id(),
                participant_id: 0,
                amount: "1.00".into(),
            },
            &operator,
        ))
        .await
        .unwrap();
    for _ in 0..30 {
        let _ = c
            .accounts
            .deposit(with_token(
                pb::DepositRequest {
                    request_id: request_id(),
                    participant_id: 0,
                    amount: "1.00".into(),
                },
                &operator,
            ))
            .await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let balance = balances(&mut c, &operator, None).await.balance;
    let accepted: u64 = balance.trim_end_matches(".00").parse().unwrap();
    let last = c
        .accounts
        .deposit(with_token(
            pb::DepositRequest {
                request_id: request_id(),
                participant_id: 0,
                amount: "1.00".into(),
            },
            &operator,
        ))
        .await
        .unwrap();
    let (first, last) = (
        first.into_inner().commit.unwrap().sequence,
        last.into_inner().commit.unwrap().sequence,
    );
    assert!(accepted < 31, "the rate let every deposit through");
    assert_eq!(
        last - first,
        accepted,
        "only accepted deposits were journaled"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlong_fields_and_oversized_messages_are_refused_before_the_journal() {
    let server = start_with(&["--request-bytes-max", "4096"]).await;
    let mut c = server.clients().await;
    let operator = server.operator_token.clone();
    let before = c
        .accounts
        .deposit(with_token(
            pb::DepositRequest {
                request_id: request_id(),
                participant_id: 0,
                amount: "1.00".into(),
            },
            &operator,
        ))
        .await
        .unwrap();

    let long_name = pb::RegisterParticipantRequest {
        request_id: request_id(),
        role: pb::Role::Contributor as i32,
        name: "n".repeat(201),
    };
    let refused = c
        .registry
        .register_participant(with_token(long_name, &operator))
        .await
        .unwrap_err();
    assert_eq!(
        (refused.code(), reason_code(&refused)),
        (Code::InvalidArgument, Some(10)),
        "{refused:?}"
    );
    assert!(
        refused.message().starts_with("name: at most 200 bytes"),
        "{refused:?}"
    );
    let long_symbol = pb::ListInstrumentRequest {
        symbol: "S".repeat(17),
        ..share("X", 0)
    };
    let refused = c
        .registry
        .list_instrument(with_token(long_symbol, &operator))
        .await
        .unwrap_err();
    assert!(
        refused
            .message()
            .starts_with("symbol: a symbol is at most 16 bytes"),
        "{refused:?}"
    );
    let lookup = pb::GetBookRequest {
        instrument: by_symbol(&"Q".repeat(1000)),
        depth: 0,
    };
    let refused = c.market_data.get_book(lookup).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");

    let huge = pb::RegisterParticipantRequest {
        request_id: request_id(),
        role: pb::Role::Contributor as i32,
        name: "n".repeat(10_000),
    };
    let refused = c
        .registry
        .register_participant(with_token(huge, &operator))
        .await
        .unwrap_err();
    assert_ne!(refused.code(), Code::Ok);
    assert!(
        refused.message().contains("message length too large")
            || refused.message().contains("4096"),
        "{refused:?}"
    );

    let after = c
        .accounts
        .deposit(with_token(
            pb::DepositRequest {
                request_id: request_id(),
                participant_id: 0,
                amount: "1.00".into(),
            },
            &operator,
        ))
        .await
        .unwrap();
    assert_eq!(
        after.into_inner().commit.unwrap().sequence,
        before.into_inner().commit.unwrap().sequence + 1,
        "nothing refused was journaled"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_its_market_data_streams() {
    let server = start_with(&["--anonymous-streams-max", "2"]).await;
    let c = server.clients().await;
    let mut first = c
        .market_data
        .clone()
        .stream_trades(pb::StreamTradesRequest {
            instrument: None,
            from_sequence: None,
        })
        .await
        .expect("first stream")
        .into_inner();
    let _second = c
        .market_data
        .clone()
        .stream_trades(pb::StreamTradesRequest {
            instrument: None,
            from_sequence: None,
        })
        .await
        .expect("second stream")
        .into_inner();
    let refused = c
        .market_data
        .clone()
        .stream_trades(pb::StreamTradesRequest {
            instrument: None,
            from_sequence: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (refused.code(), reason_code(&refused)),
        (Code::ResourceExhausted, Some(1010)),
        "{refused:?}"
    );
    // Closing one gives its place back.
    drop(first.next());
    drop(first);
    let mut reopened = None;
    for _ in 0..100 {
        if let Ok(stream) = c
            .market_data
            .clone()
            .stream_trades(pb::StreamTradesRequest {
                instrument: None,
                from_sequence: None,
            })
            .await
        {
            reopened = Some(stream);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        reopened.is_some(),
        "a closed stream's place was not given back"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_calling_without_a_token_is_held_to_its_rate() {
    let server = start_with(&["--anonymous-rate", "5", "--anonymous-burst", "10"]).await;
    let c = server.clients().await;
    let list = || {
        let mut registry = c.registry.clone();
        async move {
            registry
                .list_instruments(pb::ListInstrumentsRequest::default())
                .await
        }
    };
    // The burst is served; the call after it is refused, naming the limit, before any work.
    let mut served = 0;
    let refused = loop {
        match list().await {
            Ok(_) => served += 1,
            Err(status) => break status,
        }
        assert!(served <= 20, "calls without a token are not bounded");
    };
    assert!(
        (10..=12).contains(&served),
        "served {served} of a burst of 10"
    );
    assert_eq!(
        (refused.code(), reason_code(&refused)),
        (Code::ResourceExhausted, Some(1010)),
        "{refused:?}"
    );
    assert!(refused.message().contains("without a token"), "{refused:?}");
    // The other calls without a token draw on the same bucket.
    let book = c
        .market_data
        .clone()
        .get_book(pb::GetBookRequest {
            instrument: support::by_id(0),
            depth: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(book.code(), Code::ResourceExhausted, "{book:?}");
    // It refills at the sustained rate.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(list().await.is_ok(), "the bucket refills");
}
