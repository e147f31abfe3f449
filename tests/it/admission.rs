//! Players and sockets that have not logged in have separate budgets (issue 13, finding 2),
//! over real sockets from several loopback source addresses: silent sockets never hold a
//! player slot, each address has its share of both budgets, and each refusal is typed and
//! counted.

use crate::common::*;
use throng::config::ConfigLayer;
use throng::protocol::CloseReason;
use throng_client::ClientError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_never_hold_player_slots_and_each_address_has_its_share() {
    let server = start_server(ConfigLayer {
        max_players: Some(3),
        max_players_per_addr: Some(2),
        max_pending_handshakes: Some(8),
        max_handshakes_per_addr: Some(4),
        // The silent sockets stay pending for the whole test.
        handshake_timeout_s: Some(60.0),
        ..Default::default()
    });

    // A stranger on 127.0.0.3 opens 10 sockets and never sends Hello: 4 are held as pending
    // handshakes, 6 are refused at once for their address.
    let mut silent = Vec::new();
    for _ in 0..10 {
        silent.push(connect_from(&server, 3).await);
    }
    for stream in silent.iter_mut().skip(4) {
        let (refusal, open, _) = read_to_refusal(stream).await;
        assert_eq!(
            refusal.reason,
            CloseReason::AddressLimit,
            "{}",
            refusal.detail
        );
        assert!(!open, "a Reject: no session was opened");
    }
    assert_eq!(rejects(&server, CloseReason::AddressLimit), 6);

    // Players get in beside the 4 silent sockets (on a 3-player server): the silent ones
    // hold no player slot. An address may have 2 players.
    let _a = login_from(&server, 2, "a", &secret_of("a"))
        .await
        .expect("a plays");
    let _b = login_from(&server, 2, "b", &secret_of("b"))
        .await
        .expect("b plays");
    assert_eq!(
        refusal_reason(login_from(&server, 2, "c", &secret_of("c")).await),
        CloseReason::AddressLimit,
        "a third player from the same address"
    );
    let _d = login_from(&server, 5, "d", &secret_of("d"))
        .await
        .expect("d plays");
    // ServerFull is for players: the server holds 3.
    assert_eq!(
        refusal_reason(login_from(&server, 6, "e", &secret_of("e")).await),
        CloseReason::ServerFull
    );
    assert_eq!(rejects(&server, CloseReason::ServerFull), 1);
    assert_eq!(rejects(&server, CloseReason::AddressLimit), 7);
    assert_eq!(server.stats().players_connected, 3);

    // A second stranger fills the pending-handshake pool (4 + 4 = 8): the next socket, from
    // anywhere, is refused for the pool, not as ServerFull.
    for _ in 0..4 {
        silent.push(connect_from(&server, 4).await);
    }
    let mut late = connect_from(&server, 7).await;
    let (refusal, _, _) = read_to_refusal(&mut late).await;
    assert_eq!(
        refusal.reason,
        CloseReason::HandshakesFull,
        "{}",
        refusal.detail
    );
    assert_eq!(rejects(&server, CloseReason::HandshakesFull), 1);
    assert_eq!(
        server.stats().handshakes_pending,
        8,
        "the pool is full of silent sockets"
    );

    // The silent sockets go: the pool is free again and a player slot frees when one leaves.
    drop(silent);
    drop(_d);
    let started = std::time::Instant::now();
    let _f = loop {
        match login_from(&server, 7, "f", &secret_of("f")).await {
            Ok(client) => break client,
            Err(ClientError::Refused(r))
                if matches!(
                    r.reason,
                    CloseReason::ServerFull | CloseReason::HandshakesFull
                ) =>
            {
                assert!(started.elapsed() < HANG_GUARD, "never let in");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(other) => panic!("f is let in, got {other}"),
        }
    };
    assert_eq!(
        rejects(&server, CloseReason::HandshakeTimeout),
        0,
        "no silent socket was timed out: they were held apart from the players"
    );
}
