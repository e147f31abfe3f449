//! A new viewer's first message: the Welcome (its own entity's wire id, the world's
//! parameters, the game's schema), published into its outbox before its first frame. And the
//! other end of a session as the tick sees it: the graceful shutdown's close of every client.

use bevy_ecs::prelude::*;
use components::NetId;

use super::frames::{Connected, Viewer};
use crate::protocol::{CloseReason, ServerMessage, Welcome, encode_frame};

/// Session parameters sent to every joining client (with its own player id filled in).
#[derive(Resource)]
pub(crate) struct WelcomeTemplate(pub Welcome);

/// Set once the server is shutting down: every client has been asked to close, and clients
/// that join from now on are closed right after their Welcome.
#[derive(Resource, Default)]
pub(crate) struct Draining(pub bool);

/// Publishes the Welcome of every client that joined this tick, before its first frame (a
/// fresh outbox always has a free slot). During a shutdown drain the client is closed right
/// after it, and gets no frame.
pub(crate) fn welcome_new_clients(
    mut joined: Query<(&NetId, &mut Connected, &mut Viewer), Added<Connected>>,
    template: Res<WelcomeTemplate>,
    draining: Option<Res<Draining>>,
) {
    let draining = draining.is_some_and(|d| d.0);
    for (id, mut client, mut viewer) in &mut joined {
        // One Welcome per join: not a per-tick cost.
        let mut welcome = template.0.clone();
        welcome.player_id = id.0;
        let message = ServerMessage::Welcome(welcome);
        client.outbox.publish_with(|slot| {
            encode_frame(&message, &mut slot.bytes);
            true
        });
        client.outbox.wake();
        if draining {
            client.outbox.request_close(CloseReason::Shutdown);
            viewer.closing = true;
        }
    }
}

/// Asks every client to close with `reason` and stops sending them frames (graceful
/// shutdown). Runs on the tick thread, between ticks.
pub(crate) fn close_all_clients(world: &mut World, reason: CloseReason) {
    world.insert_resource(Draining(true));
    close_clients(world, reason, None);
}

/// Asks every client to close with `reason` (and `detail`, the Close's text, if given) and
/// stops sending them frames.
pub(crate) fn close_clients(world: &mut World, reason: CloseReason, detail: Option<&str>) {
    let mut clients = world.query::<(&Connected, &mut Viewer)>();
    for (client, mut viewer) in clients.iter_mut(world) {
        match detail {
            Some(detail) => client
                .outbox
                .request_close_with_detail(reason, detail.to_owned()),
            None => client.outbox.request_close(reason),
        }
        viewer.closing = true;
    }
}

/// Asks the connected player named `key` (a [`crate::protocol::name_key`]) to close with
/// [`CloseReason::Kicked`] and `detail` (the operator's reason), and stops sending it
/// frames. The player's name as registered, or `None` if no such player is connected.
pub(crate) fn kick_client(world: &mut World, key: &str, detail: String) -> Option<String> {
    let mut clients = world.query::<(&components::PlayerName, &Connected, &mut Viewer)>();
    for (name, client, mut viewer) in clients.iter_mut(world) {
        if crate::protocol::name_key(&name.0) == key {
            client
                .outbox
                .request_close_with_detail(CloseReason::Kicked, detail);
            viewer.closing = true;
            return Some(name.0.clone());
        }
    }
    None
}
