//! Identity through the real server: tokens are random, shown once and kept only as hashes in a
//! private data directory; the operator issues, rotates and revokes them with effect on the next
//! call and on open streams; a suspended participant is refused and its orders cancelled until it
//! is reinstated; the operator and the regulator list participants.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use mutua_gateway::pb;
use pb::order_entry_request::Command as EntryCommand;
use support::*;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::Code;

const STREAM_WAIT: Duration = Duration::from_secs(10);

fn balances_request() -> pb::GetBalancesRequest {
    pb::GetBalancesRequest {
        participant_id: None,
    }
}

async fn tokens_of(c: &mut Clients, operator: &str, participant: u32) -> Vec<pb::TokenInfo> {
    let request = pb::ListTokensRequest {
        participant_id: Some(participant),
        ..Default::default()
    };
    c.identity
        .list_tokens(with_token(request, operator))
        .await
        .expect("list tokens")
        .into_inner()
        .tokens
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_refused_at_once_and_ends_its_open_streams() {
    let server = start().await;
    let mut c = server.clients().await;
    let operator = server.operator_token.clone();
    let (alice, first_token) = register(&mut c, &operator, pb::Role::Contributor, "alice").await;
    let second = pb::IssueTokenRequest {
        participant_id: alice,
        replace_existing: false,
    };
    let second = c
        .identity
        .issue_token(with_token(second, &operator))
        .await
        .expect("issue a second token")
        .into_inner();
    assert!(
        second.token.starts_with("mutua_") && second.token.len() == "mutua_".len() + 64,
        "{}",
        second.token
    );
    assert_ne!(second.token, first_token);
    for token in [&first_token, &second.token] {
        c.accounts
            .get_balances(with_token(balances_request(), token))
            .await
            .expect("a live token is accepted");
    }

    // An order-entry stream opened with the first token, idle.
    let (sender, outbound) = tokio::sync::mpsc::channel::<pb::OrderEntryRequest>(4);
    let mut replies = c
        .exchange
        .order_entry(with_token(ReceiverStream::new(outbound), &first_token))
        .await
        .expect("open stream")
        .into_inner();

    let tokens = tokens_of(&mut c, &operator, alice).await;
    assert_eq!(
        tokens
            .iter()
            .map(|token| (token.participant_id, token.revoked_at_ns))
            .collect::<Vec<_>>(),
        [(alice, None), (alice, None)]
    );
    assert_eq!(tokens[1].token_id, second.token_id);
    let revoke = pb::RevokeTokenRequest {
        request_id: request_id(),
        token_id: tokens[0].token_id,
    };
    c.identity
        .revoke_token(with_token(revoke, &operator))
        .await
        .expect("revoke");

    // The very next call with the revoked token is refused, with the gateway's reason code.
    let refused = c
        .accounts
        .get_balances(with_token(balances_request(), &first_token))
        .await
        .unwrap_err();
    assert_eq!(
        (refused.code(), reason_code(&refused)),
        (Code::Unauthenticated, Some(1003)),
        "{refused:?}"
    );
    // The open stream ends with UNAUTHENTICATED instead of carrying on.
    let ended = tokio::time::timeout(STREAM_WAIT, replies.next())
        .await
        .expect("the stream ends at once");
    let status = ended
        .expect("an ending status, not a silent end")
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    drop(sender);
    // The other token still works, and the listing shows the revocation.
    c.accounts
        .get_balances(with_token(balances_request(), &second.token))
        .await
        .expect("the second token is live");
    assert!(tokens_of(&mut c, &operator, alice).await[0]
        .revoked_at_ns
        .is_some());

    // A rotation: a new token replaces every live one at once.
    let rotation = pb::IssueTokenRequest {
        participant_id: alice,
        replace_existing: true,
    };
    let rotated = c
        .identity
        .issue_token(with_token(rotation, &operator))
        .await
        .expect("rotate")
        .into_inner();
    let refused = c
        .accounts
        .get_balances(with_token(balances_request(), &second.token))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    c.accounts
        .get_balances(with_token(balances_request(), &rotated.token))
        .await
        .expect("the rotated token is live");
    let live: Vec<u32> = tokens_of(&mut c, &operator, alice)
        .await
        .iter()
        .filter(|token| token.revoked_at_ns.is_none())
        .map(|token| token.token_id)
        .collect();
    assert_eq!(live, [rotated.token_id]);

    // Revocation is journaled state: it holds after a restart of the same data directory is
    // covered by the crash tests; here, a retry of the revoke is the first outcome.
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_participant_is_refused_and_its_orders_cancelled_until_reinstated() {
    let server = start().await;
    let mut c = server.clients().await;
    let operator = server.operator_token.clone();
    let (organization, organization_token) =
        register_accredited(&mut c, &operator, "Riverside Co-op").await;
    let (regulator, regulator_token) =
        register(&mut c, &operator, pb::Role::Regulator, "the regulator").await;
    let (alice, alice_token) = register(&mut c, &operator, pb::Role::Contributor, "alice").await;
    let (dave, dave_token) = register(&mut c, &operator, pb::Role::Contributor, "dave").await;
    deposit(&mut c, &operator, alice, "1000.00").await;
    deposit(&mut c, &operator, dave, "1000.00").await;
    let share = list(
        &mut c,
        &operator,
        pb::ListInstrumentRequest {
            holding_cap: Some("1".into()),
            ..share("SUSP-A", organization)
        },
    )
    .await;
    open_trading(&mut c, &operator, share).await;
    run_offering(
        &mut c,
        &organization_token,
        share,
        "100",
        "1",
        &[(dave_token.as_str(), "100")],
    )
    .await;
    place(
        &mut c,
        &alice_token,
        limit(share, pb::Side::Buy, "10.00", "20"),
    )
    .await;
    assert_eq!(
        balances(&mut c, &alice_token, None).await.reserved,
        "200.00"
    );

    // Streams open before the suspension end with it.
    let (sender, outbound) = tokio::sync::mpsc::channel::<pb::OrderEntryRequest>(4);
    let mut replies = c
        .exchange
        .order_entry(with_token(ReceiverStream::new(outbound), &alice_token))
        .await
        .expect("open stream")
        .into_inner();

    let suspend = pb::SetParticipantStatusRequest {
        request_id: request_id(),
        participant_id: alice,
        suspended: true,
    };
    c.identity
        .set_participant_status(with_token(suspend, &operator))
        .await
        .expect("suspend");
    let refused = c
        .exchange
        .place_order(with_token(
            limit(share, pb::Side::Buy, "10.00", "1"),
            &alice_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (refused.code(), reason_code(&refused)),
        (Code::PermissionDenied, Some(1004)),
        "{refused:?}"
    );
    let status = tokio::time::timeout(STREAM_WAIT, replies.next())
        .await
        .expect("the stream ends")
        .expect("a status")
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    drop(sender);
    // Its orders are cancelled and their cash released; its balance is kept.
    assert!(c
        .exchange
        .list_orders(with_token(
            pb::ListOrdersRequest {
                participant_id: Some(alice)
            },
            &operator
        ))
        .await
        .unwrap()
        .into_inner()
        .orders
        .is_empty());
    let kept = balances(&mut c, &operator, Some(alice)).await;
    assert_eq!(
        (kept.balance.as_str(), kept.reserved.as_str()),
        ("1000.00", "0.00")
    );

    // The regulator sees who is suspended; a contributor may not list anyone.
    let listed = c
        .identity
        .list_participants(with_token(
            pb::ListParticipantsRequest::default(),
            &regulator_token,
        ))
        .await
        .unwrap()
        .into_inner();
    let row = |id: u32| {
        listed
            .participants
            .iter()
            .find(|row| row.participant_id == id)
            .cloned()
            .expect("listed")
    };
    assert!(row(alice).suspended && !row(regulator).suspended);
    assert_eq!(
        (
            row(alice).role,
            row(alice).name.as_str(),
            row(alice).live_tokens
        ),
        (pb::Role::Contributor as i32, "alice", 1)
    );
    assert_eq!(row(organization).role, pb::Role::Organization as i32);

    let reinstate = pb::SetParticipantStatusRequest {
        request_id: request_id(),
        participant_id: alice,
        suspended: false,
    };
    c.identity
        .set_participant_status(with_token(reinstate, &operator))
        .await
        .expect("reinstate");
    let placed = place(
        &mut c,
        &alice_token,
        limit(share, pb::Side::Buy, "10.00", "1"),
    )
    .await;
    assert_eq!(placed.status, pb::OrderStatus::Resting as i32);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_private_and_holds_no_token() {
    let server = start().await;
    let mut c = server.clients().await;
    let operator = server.operator_token.clone();
    let mut tokens = vec![operator.clone()];
    for name in ["alice", "bob", "the regulator"] {
        tokens.push(
            register(&mut c, &operator, pb::Role::Contributor, name)
                .await
                .1,
        );
    }
    deposit(&mut c, &operator, 1, "10.00").await;
    let (report, kept) = server.stop_keeping_data().await;
    let data = kept.path().to_path_buf();
    assert!(report.last_sequence > 0);

    let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the data directory is the user's alone");
    // Every file and directory, the history read model's (`history/`) included.
    let mut stored = Vec::new();
    let mut directories = vec![data.clone()];
    while let Some(directory) = directories.pop() {
        for entry in std::fs::read_dir(&directory).unwrap() {
            let entry = entry.unwrap();
            let metadata = entry.metadata().unwrap();
            let mode = metadata.permissions().mode() & 0o777;
            assert_eq!(
                mode & 0o077,
                0,
                "{} is open to others: {mode:o}",
                entry.path().display()
            );
            if metadata.is_dir() {
                directories.push(entry.path());
            } else if entry.file_name() != "operator.token" {
                stored.extend(std::fs::read(entry.path()).unwrap());
            }
        }
    }
    assert!(
        data.join("history").is_dir(),
        "the history read model lives in the data directory"
    );
    // No token, nor the random part of one, is anywhere in the journal's files: they hold only
    // hashes, from which no token can be made.
    for token in &tokens {
        let random = token.trim_start_matches("mutua_");
        assert!(
            !stored
                .windows(random.len())
                .any(|window| window == random.as_bytes()),
            "a token is stored in the data directory"
        );
        let raw: Vec<u8> = (0..random.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&random[at..at + 2], 16).unwrap())
            .collect();
        assert!(
            !stored
                .windows(raw.len())
                .any(|window| window == raw.as_slice()),
            "a token's random bytes are stored"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_is_answered_with_its_fills_after_a_million_commands_of_others() {
    let server = start().await;
    let mut c = server.clients().await;
    let operator = server.operator_token.clone();
    let (organization, organization_token) =
        register_accredited(&mut c, &operator, "Riverside Co-op").await;
    let (alice, alice_token) = register(&mut c, &operator, pb::Role::Contributor, "alice").await;
    let (bob, bob_token) = register(&mut c, &operator, pb::Role::Contributor, "bob").await;
    let (_, carol_token) = register(&mut c, &operator, pb::Role::Contributor, "carol").await;
    deposit(&mut c, &operator, alice, "1000.00").await;
    let share = list(
        &mut c,
        &operator,
        pb::ListInstrumentRequest {
            holding_cap: Some("1".into()),
            ..share("RETRY-B", organization)
        },
    )
    .await;
    open_trading(&mut c, &operator, share).await;
    deposit(&mut c, &operator, bob, "100.00").await;
    run_offering(
        &mut c,
        &organization_token,
        share,
        "100",
        "1",
        &[(bob_token.as_str(), "5")],
    )
    .await;
    place(
        &mut c,
        &bob_token,
        limit(share, pb::Side::Sell, "10.00", "5"),
    )
    .await;

    let buy = pb::PlaceOrderRequest {
        request_id: "alice-buys-5".into(),
        ..limit(share, pb::Side::Buy, "10.00", "5")
    };
    let first = place(&mut c, &alice_token, buy.clone()).await;
    assert_eq!(first.fills.len(), 1);

    // Carol sends more commands than the whole market used to remember (refused ones: she has
    // no cash), pipelined on one stream.
    const OTHERS: usize = 1_100_000;
    let orders = tokio_stream::iter((0..OTHERS).map(move |index| pb::OrderEntryRequest {
        command: Some(EntryCommand::Place(pb::PlaceOrderRequest {
            request_id: format!("carol-{index}"),
            ..limit(share, pb::Side::Buy, "10.00", "1")
        })),
    }));
    let replies = c
        .exchange
        .order_entry(with_token(orders, &carol_token))
        .await
        .expect("stream")
        .into_inner();
    let answered = replies
        .fold(0usize, |count, reply| count + usize::from(reply.is_ok()))
        .await;
    assert_eq!(answered, OTHERS);

    // Alice's retry is still recognised, and answered with the first outcome whole.
    let again = place(&mut c, &alice_token, buy).await;
    assert!(again.commit.unwrap().replayed);
    assert_eq!(
        (again.order_id, again.status, &again.fills),
        (first.order_id, first.status, &first.fills)
    );
    assert_eq!(
        again.commit.unwrap().sequence,
        first.commit.unwrap().sequence
    );
    assert_eq!(
        holding(&mut c, &alice_token, share).await.unwrap().quantity,
        "5",
        "bought once"
    );
    server.stop().await;
}
