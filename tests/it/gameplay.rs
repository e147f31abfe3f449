//! The demo game and the gameplay API over real sockets: actions in, events out, a
//! replicated and persisted score, NPC walkers, plugin settings, and every bad action.

use std::collections::BTreeMap;

use crate::common::*;
use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use components::{GameApp, NetId, Player, ServerTick, TickSet};
use serde::{Deserialize, Serialize};
use systems::movement::MovementInfo;
use systems::snowball::{Hit, Score, Throw};
use throng::ServerHandle;
use throng::config::ConfigLayer;
use throng::protocol::{Action, ClientMessage, CloseReason, ServerMessage};
use throng_client::{Client, Mirror};

fn encoded<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("encode")
}

/// A 1000 x 1000 world, interest radius 100 (a client sees what is within 100 units), no
/// NPCs.
fn tag_world(data_dir: Option<std::path::PathBuf>) -> ConfigLayer {
    ConfigLayer {
        world_size: Some(1000.0),
        interest_radius: Some(100.0),
        data_dir,
        ..Default::default()
    }
}

/// Reads `client`'s frames into `mirror` through tick `until`; returns the `hit` events
/// seen, with the tick of the frame that carried each.
async fn hits_through(client: &mut Client, mirror: &mut Mirror, until: u32) -> Vec<(u32, Hit)> {
    let hit_kind = client.event_kind("hit").expect("the demo game has hits");
    let mut hits = Vec::new();
    while mirror.tick < until {
        let frame = next_frame(client).await;
        mirror.apply(&frame).expect("consistent frame");
        for event in mirror.take_events() {
            if event.kind == hit_kind {
                hits.push((frame.tick, postcard::from_bytes(&event.bytes).unwrap()));
            }
        }
    }
    hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_reaches_thrower_target_and_bystander_in_view_in_the_frame_of_its_tick() {
    let data_dir = fresh_data_dir("tag");
    let server = start_server(tag_world(Some(data_dir.path().to_owned())));
    let mut thrower = connect(&server, "ann").await;
    let mut target = connect(&server, "bob").await;
    let mut bystander = connect(&server, "cat").await;
    let mut far = connect(&server, "dan").await;
    let mut near = connect(&server, "eve").await;
    let schema = thrower.schema().clone();
    assert_eq!(schema.actions, ["throw"]);
    assert_eq!(schema.events, ["hit", "movement"]);
    assert_eq!(schema.components, ["npc", "snowball", "score"]);
    // Ann, Bob and Cat within 50 units, Dan 500 away (out of every view of theirs), Eve 110
    // units east of Bob: in the next cell, but out of his circle.
    teleport(&server, thrower.player_id(), 330.0, 350.0);
    teleport(&server, target.player_id(), 370.0, 350.0);
    teleport(&server, bystander.player_id(), 350.0, 380.0);
    teleport(&server, near.player_id(), 480.0, 350.0);
    let placed = teleport(&server, far.player_id(), 750.0, 750.0);

    let seq = thrower
        .send_action(
            "throw",
            &encoded(&Throw {
                dir_x: 127,
                dir_y: 0,
            }),
        )
        .await
        .unwrap();
    let until = placed as u32 + 30;
    let mut mirrors: Vec<Mirror> = (0..5).map(|_| Mirror::default()).collect();
    let seen = [
        hits_through(&mut thrower, &mut mirrors[0], until).await,
        hits_through(&mut target, &mut mirrors[1], until).await,
        hits_through(&mut bystander, &mut mirrors[2], until).await,
        hits_through(&mut far, &mut mirrors[3], until).await,
        hits_through(&mut near, &mut mirrors[4], until).await,
    ];
    let expected_hit = Hit {
        thrower: thrower.player_id(),
        target: target.player_id(),
    };
    assert_eq!(seen[0].len(), 1, "the thrower is told once: {:?}", seen[0]);
    let (hit_tick, hit) = seen[0][0];
    assert_eq!(hit, expected_hit);
    assert_eq!(
        seen[1],
        [(hit_tick, expected_hit)],
        "the target, same frame"
    );
    assert_eq!(
        seen[2],
        [(hit_tick, expected_hit)],
        "the bystander, same frame"
    );
    assert!(seen[3].is_empty(), "out of view: no hit");
    assert!(
        seen[4].is_empty(),
        "in a cell next to Bob's, out of his circle: no hit"
    );
    assert!(mirrors[0].ack_seq >= seq, "the throw is acknowledged");

    // The score is replicated: Bob's copy of Ann's entity has score 1.
    let score_kind = thrower.component_kind("score").unwrap();
    let ann = &mirrors[1].entities[&thrower.player_id()];
    let score: Score = postcard::from_bytes(ann.component(score_kind).unwrap()).unwrap();
    assert_eq!(score, Score(1));
    // And it is saved: after a restart Ann still has it.
    drop((thrower, target, bystander, far, near));
    server.shutdown();
    let server = start_server(tag_world(Some(data_dir.path().to_owned())));
    let ann = connect(&server, "ann").await;
    let id = ann.player_id();
    let restored = server
        .with_world(move |world| {
            let mut query = world.query::<(&NetId, Option<&Score>)>();
            query
                .iter(world)
                .find(|(net_id, _)| net_id.0 == id)
                .and_then(|(_, score)| score.copied())
        })
        .unwrap();
    assert_eq!(restored, Some(Score(1)), "the score survives a restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_player_is_told_its_speed_in_its_first_frame() {
    let server = start_server(ConfigLayer {
        game: Some(
            toml::from_str("[snowball]\nnpcs = 0\n[movement]\nspeed_per_tick = 3.5").unwrap(),
        ),
        ..Default::default()
    });
    let mut client = connect(&server, "walker").await;
    let kind = client
        .schema()
        .event_kind("movement")
        .expect("the movement event");
    let mut mirror = Mirror::default();
    mirror.apply(&next_frame(&mut client).await).unwrap();
    let told: Vec<MovementInfo> = mirror
        .take_events()
        .into_iter()
        .filter(|event| event.kind == kind)
        .map(|event| postcard::from_bytes(&event.bytes).unwrap())
        .collect();
    assert_eq!(
        told,
        [MovementInfo {
            speed_per_tick: 3.5
        }]
    );
    // Once: later frames do not repeat it.
    for _ in 0..3 {
        mirror.apply(&next_frame(&mut client).await).unwrap();
        assert!(mirror.take_events().iter().all(|event| event.kind != kind));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npc_walkers_are_seen_entering_and_leaving_a_view() {
    let mut game = toml::Table::new();
    game.insert(
        "snowball".into(),
        toml::from_str::<toml::Value>("npcs = 12\nnpc_turn_ticks = 100000").unwrap(),
    );
    let server = start_server(ConfigLayer {
        world_size: Some(400.0),
        interest_radius: Some(50.0),
        game: Some(game),
        ..Default::default()
    });
    let mut watcher = connect(&server, "watcher").await;
    let npc_kind = watcher.component_kind("npc").unwrap();
    let mut mirror = Mirror::default();
    let mut entered: BTreeMap<u32, bool> = BTreeMap::new();
    let left = loop {
        let frame = next_frame(&mut watcher).await;
        mirror.apply(&frame).unwrap();
        for spawn in &frame.spawned {
            if spawn.components.iter().any(|c| c.kind == npc_kind) {
                entered.insert(spawn.id, true);
            }
        }
        if let Some(id) = frame
            .removed
            .iter()
            .find(|id| entered.contains_key(id) && !frame.spawned.iter().any(|s| s.id == **id))
        {
            break *id;
        }
    };
    assert!(entered.contains_key(&left) && !mirror.entities.contains_key(&left));
}

/// A plugin with its own settings section and a system ordered after gameplay and before
/// the engine's replication: what it writes reaches clients in the same tick.
struct BadgePlugin;

#[derive(Resource, Deserialize)]
#[serde(deny_unknown_fields)]
struct BadgeSettings {
    level: u32,
}

#[derive(Component, Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
struct Badge(u32);

fn give_badges(
    mut commands: Commands,
    new: Query<Entity, Added<Player>>,
    settings: Res<BadgeSettings>,
) {
    for player in &new {
        commands.entity(player).insert(Badge(settings.level));
    }
}

impl Plugin for BadgePlugin {
    fn build(&self, app: &mut App) {
        app.settings::<BadgeSettings>("badge")
            .replicate::<Badge>("badge")
            .add_systems(
                ServerTick,
                give_badges
                    .after(TickSet::Simulate)
                    .before(TickSet::Replicate),
            );
    }
}

fn start_with_badges(section: Option<&str>) -> Result<TestServer, String> {
    let data_dir = fresh_data_dir("badge");
    let mut game = no_npcs();
    if let Some(text) = section {
        game.insert("badge".into(), toml::from_str::<toml::Value>(text).unwrap());
    }
    let config = ConfigLayer {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        metrics: Some(throng::config::Endpoint::Off),
        web: Some(throng::config::Endpoint::Off),
        stats_interval_s: Some(0.0),
        data_dir: Some(data_dir.path().to_owned()),
        game: Some(game),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    ServerHandle::start_with(config, |app| {
        app.add_plugins((systems::GamePlugins, BadgePlugin));
    })
    .map(|server| TestServer::owning(server, Some(data_dir)))
    .map_err(|error| error.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_reads_its_section_and_its_system_runs_before_replication() {
    let server = start_with_badges(Some("level = 7")).expect("starts");
    let mut client = connect(&server, "badged").await;
    let kind = client.component_kind("badge").expect("in the schema");
    let frame = next_frame(&mut client).await;
    let own = frame
        .spawned
        .iter()
        .find(|spawn| spawn.id == client.player_id())
        .expect("own entity in the first frame");
    let badge = own.components.iter().find(|c| c.kind == kind);
    let badge: Badge =
        postcard::from_bytes(&badge.expect("badge given on the join tick").bytes).unwrap();
    assert_eq!(badge, Badge(7));
}

#[test]
fn a_missing_or_malformed_plugin_section_stops_the_server_with_the_reason() {
    let missing = start_with_badges(None).err().expect("refused");
    assert!(
        missing.contains("[game.badge] (the section is missing)") && missing.contains("level"),
        "{missing}"
    );
    let malformed = start_with_badges(Some("level = \"high\""))
        .err()
        .expect("refused");
    assert!(malformed.contains("[game.badge]"), "{malformed}");
    let unknown = start_with_badges(Some("level = 1\ncolour = 3"))
        .err()
        .expect("refused");
    assert!(unknown.contains("colour"), "{unknown}");
}

/// A raw action of `kind` with `bytes`.
fn action(seq: u32, kind: u16, bytes: Vec<u8>) -> ClientMessage {
    ClientMessage::Action(Action { seq, kind, bytes })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_actions_are_dropped_and_counted_then_close_the_client_and_bystanders_keep_every_frame()
{
    let server = start_server(tag_world(None));
    let mut bystander = connect(&server, "bystander").await;
    let mut sender = connect(&server, "sender").await;
    let throw = sender.action_kind("throw").unwrap();
    let good = encoded(&Throw {
        dir_x: 0,
        dir_y: 127,
    });
    let before = server.stats();
    // Over the rate: 10 at once pass (the burst), the rest of 15 are dropped.
    for seq in 1..=15 {
        sender
            .send(&action(seq, throw, good.clone()))
            .await
            .unwrap();
    }
    // Unknown kind, malformed bytes, too large: dropped and counted, then a close.
    sender.send(&action(16, 9, good.clone())).await.unwrap();
    sender.send(&action(17, throw, vec![1])).await.unwrap();
    sender.send(&action(18, throw, vec![0; 65])).await.unwrap();
    let mut next = 19;
    let close = loop {
        // Invalid actions beyond the budget (10 at once) close the client.
        let _ = sender.send(&action(next, 9, Vec::new())).await;
        next += 1;
        match tokio::time::timeout(std::time::Duration::from_millis(20), sender.recv()).await {
            Ok(Ok(ServerMessage::Close(refusal))) => break refusal,
            Ok(Ok(_)) | Err(_) => continue,
            Ok(Err(error)) => panic!("closed without a Close: {error}"),
        }
    };
    assert_eq!(close.reason, CloseReason::InvalidActions);
    assert!(next - 19 <= 10, "closed within the invalid-action budget");
    eventually("drops counted", || {
        let now = server.stats();
        let kind = usize::from(throw);
        now.actions_dropped[kind][2] - before.actions_dropped[kind][2] == 5
            && now.actions_dropped[kind][0] - before.actions_dropped[kind][0] == 1
            && now.actions_dropped[kind][1] - before.actions_dropped[kind][1] == 1
            && now.actions_dropped_unknown_kind - before.actions_dropped_unknown_kind >= 2
            && now.actions_queued[kind] - before.actions_queued[kind] == 10
    })
    .await;
    // The bystander's frames kept coming, one per tick.
    let mut previous = next_frame(&mut bystander).await.tick;
    for _ in 0..20 {
        let tick = next_frame(&mut bystander).await.tick;
        assert_eq!(tick, previous + 1, "no frame lost");
        previous = tick;
    }
}
