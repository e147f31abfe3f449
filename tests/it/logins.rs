//! Logins under attack (issue 13, finding 3), over real sockets from several loopback
//! source addresses: the secret is checked before a name is said to be online, failed
//! logins are throttled per name and per address with a typed reason and a counter, and the
//! rightful owner still gets in from an address it logged in from.

use crate::common::*;
use throng::config::ConfigLayer;
use throng::protocol::CloseReason;
use throng_client::ClientError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_for_an_online_name_is_bad_credentials_not_already_online() {
    let server = start_server(ConfigLayer::default());
    let owner = login_from(&server, 2, "ann", &secret_of("ann"))
        .await
        .expect("the owner logs in");
    assert_eq!(
        refusal_reason(login_from(&server, 3, "ann", "a-wrong-secret").await),
        CloseReason::BadCredentials,
        "a stranger does not learn that ann is online"
    );
    assert_eq!(
        refusal_reason(login_from(&server, 2, "ann", &secret_of("ann")).await),
        CloseReason::AlreadyOnline,
        "the owner (right secret) is told"
    );
    assert_eq!(rejects(&server, CloseReason::BadCredentials), 1);
    assert_eq!(rejects(&server, CloseReason::AlreadyOnline), 1);
    drop(owner);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_throttled_per_name_and_address_without_locking_the_owner_out() {
    // No refill during the test: the counts below are exact.
    let server = start_server(ConfigLayer {
        failed_logins_burst: Some(3),
        failed_login_refill_s: Some(3600.0),
        ..Default::default()
    });
    // The owner claims "victim" from 127.0.0.2, then leaves.
    login_from(&server, 2, "victim", &secret_of("victim"))
        .await
        .expect("claimed")
        .goodbye()
        .await
        .unwrap();

    // An attacker on 127.0.0.3 guesses 20 times: 3 are checked, 17 are refused unchecked.
    let mut answers = Vec::new();
    for guess in 0..20 {
        let secret = format!("guess-number-{guess}");
        answers.push(refusal_reason(
            login_from(&server, 3, "victim", &secret).await,
        ));
    }
    let checked = answers
        .iter()
        .filter(|r| **r == CloseReason::BadCredentials)
        .count();
    let throttled = answers
        .iter()
        .filter(|r| **r == CloseReason::TooManyFailedLogins)
        .count();
    assert_eq!((checked, throttled), (3, 17), "{answers:?}");
    assert_eq!(rejects(&server, CloseReason::BadCredentials), 3);
    assert_eq!(rejects(&server, CloseReason::TooManyFailedLogins), 17);
    // Even the right secret is not tried from the throttled address.
    assert_eq!(
        refusal_reason(login_from(&server, 3, "victim", &secret_of("victim")).await),
        CloseReason::TooManyFailedLogins
    );

    // From another address, the name itself is throttled; other names are not.
    assert_eq!(
        refusal_reason(login_from(&server, 4, "victim", "another-guess").await),
        CloseReason::TooManyFailedLogins
    );
    login_from(&server, 4, "bystander", &secret_of("bystander"))
        .await
        .expect("other names log in from any address");

    // The owner, from the address it logged in from, is not locked out; its success
    // refills the name. (Retried until the hang guard: the name frees once the first
    // session's final state is committed.)
    let started = std::time::Instant::now();
    let _owner = loop {
        match login_from(&server, 2, "victim", &secret_of("victim")).await {
            Ok(client) => break client,
            Err(ClientError::Refused(r)) if r.reason == CloseReason::AlreadyOnline => {
                assert!(started.elapsed() < HANG_GUARD, "the owner never logged in");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(other) => panic!("the owner is let in, got {other}"),
        }
    };
    assert_eq!(
        rejects(&server, CloseReason::TooManyFailedLogins),
        19,
        "every throttled attempt counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_differing_only_in_case_are_one_player() {
    let server = start_server(ConfigLayer::default());
    let owner = login_from(&server, 2, "Zoe", "zoe-secret-1")
        .await
        .expect("the first login claims the name");
    assert_eq!(
        refusal_reason(login_from(&server, 3, "zoe", "another-secret").await),
        CloseReason::BadCredentials,
        "zoe is Zoe: a look-alike cannot claim it with its own secret"
    );
    assert_eq!(
        refusal_reason(login_from(&server, 2, "ZOE", "zoe-secret-1").await),
        CloseReason::AlreadyOnline,
        "one player online, whatever the case"
    );
    let account_of = |id: u32| {
        server
            .with_world(move |world| {
                let mut players =
                    world.query::<(&components::NetId, &throng::persistence::handoff::Account)>();
                players
                    .iter(world)
                    .find(|(net_id, _)| net_id.0 == id)
                    .map(|(_, account)| account.0)
            })
            .unwrap()
    };
    let first_account = account_of(owner.player_id()).expect("Zoe is in the world");
    owner.goodbye().await.unwrap();
    // The name is released once the first session's final record is saved: retried until
    // then (or the hang guard).
    let started = std::time::Instant::now();
    let again = loop {
        match login_from(&server, 2, "zoe", "zoe-secret-1").await {
            Ok(client) => break client,
            Err(ClientError::Refused(refusal)) if refusal.reason == CloseReason::AlreadyOnline => {
                assert!(
                    started.elapsed() < HANG_GUARD,
                    "the owner never logged back in with the other case"
                );
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(other) => panic!("{other}"),
        }
    };
    assert_eq!(
        account_of(again.player_id()),
        Some(first_account),
        "the same saved player"
    );
}
