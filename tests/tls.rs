//! TLS through the real server: with `--tls-cert` and `--tls-key` it speaks only TLS, a client
//! that trusts the certificate's authority calls it, and a plaintext client is refused. The
//! test certificate is made the way README.md describes (a self-signed certificate for
//! `localhost`).

mod support;

use mutua_gateway::pb;
use support::*;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_talks_tls_with_a_trusted_certificate_and_refuses_plaintext() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .expect("a test certificate");
    let files = private_tempdir();
    let (cert, key) = (
        files.path().join("server.pem"),
        files.path().join("server.key"),
    );
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let server = start_with(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ])
    .await;
    let port = server.address.rsplit(':').next().unwrap().to_string();

    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(certified.cert.pem()))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .expect("a TLS connection");
    let mut c = Clients::new(channel);
    let (alice, alice_token) = register(
        &mut c,
        &server.operator_token,
        pb::Role::Contributor,
        "alice",
    )
    .await;
    assert_eq!(
        deposit(&mut c, &server.operator_token, alice, "12.50").await,
        "12.50"
    );
    assert_eq!(balances(&mut c, &alice_token, None).await.balance, "12.50");

    // Plaintext to a TLS port gets nowhere.
    let plaintext = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plaintext {
        let mut accounts = pb::accounts_client::AccountsClient::new(channel);
        let refused = accounts
            .get_balances(with_token(
                pb::GetBalancesRequest {
                    participant_id: None,
                },
                &alice_token,
            ))
            .await;
        assert!(
            refused.is_err(),
            "a plaintext call was answered by a TLS server"
        );
    }
    // A client that does not trust the certificate is refused too.
    let untrusted = ClientTlsConfig::new().domain_name("localhost");
    let channel = Channel::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(untrusted)
        .unwrap()
        .connect()
        .await;
    assert!(channel.is_err(), "a client without the authority connected");
    server.stop().await;
}
