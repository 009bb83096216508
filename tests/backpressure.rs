//! Backpressure: when the engine queue is full, a call is answered RESOURCE_EXHAUSTED at once
//! instead of blocking or queueing without bound, and every call that was accepted is applied
//! exactly once.

mod support;

use mutua_gateway::pb;
use tokio::task::JoinSet;
use tonic::Code;

const CALLS: usize = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_resource_exhausted_and_loses_nothing_accepted() {
    // One waiting command at most, one command per synced batch: a burst must overflow. The
    // clock is off: its own use of a queue of one would be refused among the clients' calls.
    let server = support::start_with(&[
        "--queue-capacity",
        "1",
        "--batch-max",
        "1",
        "--clock-interval-ms",
        "0",
    ])
    .await;
    let mut clients = server.clients().await;
    let operator = server.operator_token.clone();
    let (alice, alice_token) =
        support::register(&mut clients, &operator, pb::Role::Contributor, "alice").await;

    let mut calls = JoinSet::new();
    for index in 0..CALLS {
        let mut accounts = clients.accounts.clone();
        let operator = operator.clone();
        calls.spawn(async move {
            let request = pb::DepositRequest {
                request_id: format!("burst-{index}"),
                participant_id: alice,
                amount: "1.00".into(),
            };
            accounts
                .deposit(support::with_token(request, &operator))
                .await
                .map(|_| ())
        });
    }
    let (mut accepted, mut exhausted) = (0u64, 0u64);
    while let Some(outcome) = calls.join_next().await {
        match outcome.expect("call task") {
            Ok(()) => accepted += 1,
            Err(status) if status.code() == Code::ResourceExhausted => exhausted += 1,
            Err(status) => panic!("a burst call failed otherwise: {status:?}"),
        }
    }
    eprintln!("{accepted} accepted, {exhausted} refused");
    assert!(
        exhausted > 0,
        "a burst of {CALLS} calls into a queue of one was never refused"
    );
    assert!(accepted > 0, "nothing got through");

    // Exactly the accepted deposits were applied, once each.
    let balance = support::balances(&mut clients, &alice_token, None).await;
    assert_eq!(balance.balance, format!("{accepted}.00"));

    // The refusals left the exchange healthy: the next call goes through.
    support::deposit(&mut clients, &operator, alice, "1.00").await;
    server.stop().await;
}
