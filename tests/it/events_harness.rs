//! Server events and component removal without sockets: the frames of the real outboxes.

use bevy_app::App;
use bevy_ecs::prelude::*;
use components::{GameApp, Player, ServerEvents, ServerTick, TickClock, TickSet};
use serde::{Deserialize, Serialize};
use throng::config::ConfigLayer;
use throng::harness::{Harness, MAX_PENDING_EVENT_BYTES};
use throng::protocol::{CloseReason, ServerMessage};
use throng_client::Mirror;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
struct Tick(u64);

#[derive(Component, Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
struct Shield(u8);

/// Bytes of filler sent to everyone every tick (none unless a test sets it).
#[derive(Resource, Default)]
struct Bulk(usize);

#[derive(Serialize, Deserialize)]
struct Filler(Vec<u8>);

/// Every tick, an event to everyone carrying the tick number (and a filler event of
/// [`Bulk`] bytes if set); players get a Shield at tick 2 that is removed at tick 5; at tick
/// 6 one is added and removed again within the tick.
fn game(app: &mut App) {
    fn announce(clock: Res<TickClock>, mut events: ServerEvents<Tick>) {
        events.to_everyone(Tick(clock.tick));
    }
    fn fill(bulk: Res<Bulk>, mut events: ServerEvents<Filler>) {
        if bulk.0 > 0 {
            events.to_everyone(Filler(vec![0; bulk.0]));
        }
    }
    fn shields(
        clock: Res<TickClock>,
        players: Query<Entity, With<Player>>,
        mut commands: Commands,
    ) {
        for player in &players {
            match clock.tick {
                2 => {
                    commands.entity(player).insert(Shield(3));
                }
                5 => {
                    commands.entity(player).remove::<Shield>();
                }
                6 => {
                    commands.entity(player).insert(Shield(9));
                }
                _ => {}
            }
        }
    }
    fn take_back(
        clock: Res<TickClock>,
        players: Query<Entity, With<Player>>,
        mut commands: Commands,
    ) {
        if clock.tick == 6 {
            for player in &players {
                commands.entity(player).remove::<Shield>();
            }
        }
    }
    app.add_plugins(systems::movement::MovementPlugin)
        .add_event::<Tick>("tick")
        .add_event::<Filler>("filler")
        .init_resource::<Bulk>()
        .replicate::<Shield>("shield")
        .add_systems(
            ServerTick,
            (announce, fill, shields).in_set(TickSet::Simulate),
        )
        .add_systems(ServerTick, take_back.in_set(TickSet::PostSimulate));
}

fn harness(outbound_buffers: usize) -> Harness {
    let config = ConfigLayer {
        outbound_buffers: Some(outbound_buffers),
        // Long enough that only the event bound can close a client that stopped reading.
        slow_reader_kick_s: Some(3600.0),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    Harness::with_gameplay(&config, game)
}

/// The frames queued for `connection`, applied to `mirror`; returns the ticks carried by
/// the events, in order, and the frames' `reset` flags.
fn drain(harness: &mut Harness, connection: u64, mirror: &mut Mirror) -> (Vec<u64>, Vec<bool>) {
    // Only this test's `tick` events (the movement plugin also tells a joining player its
    // speed).
    let tick_kind = harness
        .simulation
        .world
        .resource::<components::events::EventRegistry>()
        .kinds
        .iter()
        .position(|kind| kind.name == "tick")
        .expect("registered") as u16;
    let (mut ticks, mut resets) = (Vec::new(), Vec::new());
    for message in harness.messages(connection) {
        if let ServerMessage::Frame(frame) = message {
            resets.push(frame.reset);
            mirror.apply(&frame).unwrap();
            for event in mirror.take_events() {
                if event.kind == tick_kind {
                    ticks.push(postcard::from_bytes::<Tick>(&event.bytes).unwrap().0);
                }
            }
        }
    }
    (ticks, resets)
}

#[test]
fn a_component_removal_reaches_viewers() {
    let mut harness = harness(4);
    let a = harness.join("a");
    let mut mirror = Mirror::default();
    let mut shield = Vec::new();
    for _ in 0..7 {
        harness.tick();
        drain(&mut harness, a, &mut mirror);
        let own = mirror.entities.values().next().expect("own entity");
        shield.push(
            own.component(0)
                .map(|bytes| postcard::from_bytes::<Shield>(bytes).unwrap()),
        );
    }
    assert_eq!(
        shield,
        [
            None,
            Some(Shield(3)),
            Some(Shield(3)),
            Some(Shield(3)),
            None,
            None,
            None
        ],
        "added at tick 2, removed at tick 5"
    );
}

#[test]
fn events_of_dropped_frames_arrive_in_order_with_the_resync_then_a_backlog_closes() {
    let mut harness = harness(2);
    let reader = harness.join("reader");
    let mut mirror = Mirror::default();
    harness.tick();
    assert_eq!(drain(&mut harness, reader, &mut mirror).0, [1]);
    // The client stops reading: frames are dropped once its two buffers are full, but
    // not their events.
    for _ in 0..11 {
        harness.tick();
    }
    let (ticks, resets) = drain(&mut harness, reader, &mut mirror);
    assert_eq!(
        ticks,
        (2..=3).collect::<Vec<_>>(),
        "the two frames that were queued"
    );
    assert!(resets.iter().all(|reset| !reset));
    harness.tick();
    let (ticks, resets) = drain(&mut harness, reader, &mut mirror);
    assert_eq!(
        ticks,
        (4..=13).collect::<Vec<_>>(),
        "the resync frame carries every event of the dropped frames, in order"
    );
    assert_eq!(resets, [true]);
    // A client that never reads again is closed once its kept events pass the bound,
    // never sent a frame that lost them. A 1 KiB filler event to everyone per tick passes
    // the 64 KiB bound in about 64 ticks (the tick numbers alone took some 13,000 ticks,
    // 20 s of a debug build); the frames carrying it are never drained, so `drain` never
    // meets a filler. The close comes at the first tick whose kept bytes pass the bound.
    harness.simulation.world.resource_mut::<Bulk>().0 = 1024;
    let kept = |harness: &mut Harness| harness.pending_event_bytes(reader).expect("a player");
    let mut ticks = 0;
    while harness.close_requested(reader).is_none() {
        assert!(
            kept(&mut harness) <= MAX_PENDING_EVENT_BYTES,
            "open past the bound"
        );
        harness.tick();
        ticks += 1;
        assert!(ticks < 100_000, "closed in the end");
    }
    assert_eq!(
        harness.close_requested(reader),
        Some(CloseReason::EventBacklog)
    );
    assert!(
        kept(&mut harness) > MAX_PENDING_EVENT_BYTES,
        "closed only once the kept events passed the bound"
    );
}

#[test]
fn an_event_to_a_player_who_just_left_is_harmless() {
    #[derive(Resource, Default)]
    struct Remembered(Option<Entity>);
    fn keep_telling(
        players: Query<Entity, With<Player>>,
        mut remembered: ResMut<Remembered>,
        mut events: ServerEvents<Tick>,
    ) {
        let target = *remembered
            .0
            .get_or_insert_with(|| players.iter().next().unwrap());
        events.to_player(target, Tick(0));
        events.to_viewers_of(target, Tick(1));
    }
    let config = ConfigLayer::default().resolve().unwrap();
    let mut harness = Harness::with_gameplay(&config, |app| {
        app.add_plugins(systems::movement::MovementPlugin)
            .add_event::<Tick>("tick")
            .init_resource::<Remembered>()
            .add_systems(
                ServerTick,
                keep_telling
                    .in_set(TickSet::Simulate)
                    .run_if(|players: Query<(), With<Player>>| !players.is_empty()),
            );
    });
    let leaver = harness.join("leaver");
    let stayer = harness.join("stayer");
    harness.tick();
    harness.leave(leaver);
    for _ in 0..5 {
        harness.tick();
    }
    let unroutable = harness
        .stats
        .events_unroutable
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(unroutable >= 2, "counted, not delivered: {unroutable}");
    let _ = harness.messages(stayer);
}
