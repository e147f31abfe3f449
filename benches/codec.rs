//! Codec costs and sizes: an input and a state frame with 20 visible movers, postcard (the
//! wire format) against serde_json (for scale), and the same frame with what a snowball hit
//! adds (a `hit` event and a `score` change; protocol 3). Prints the encoded sizes.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use throng::protocol::{
    ClientMessage, ComponentChange, ComponentValue, EntitySpawn, EntityUpdate, Event, Input,
    ServerMessage, StateFrame,
};
use throng_client::Mirror;

fn input() -> ClientMessage {
    ClientMessage::Input(Input {
        seq: 123_456,
        dir_x: 90,
        dir_y: -90,
    })
}

/// A frame as a client in the crowd sees it: 20 movers, each 5 units (40 wire units) per tick.
fn frame() -> ServerMessage {
    let updated = (0..20u32)
        .map(|i| EntityUpdate {
            id: 300 + i * 97,
            dx: [40, -28, 0, 35][i as usize % 4],
            dy: [0, 28, -40, -19][i as usize % 4],
            components: vec![],
        })
        .collect();
    ServerMessage::Frame(StateFrame {
        tick: 72_000,
        ack_seq: 71_990,
        reset: false,
        events: vec![],
        removed: vec![],
        spawned: vec![],
        updated,
    })
}

/// [`frame`] in which mover 0 hit mover 1: a `hit` event (two varint ids) and the thrower's
/// new `score` (kind 2 in the demo game's schema, one varint).
fn frame_with_hit() -> ServerMessage {
    let ServerMessage::Frame(mut frame) = frame() else {
        unreachable!()
    };
    let (thrower, target) = (frame.updated[0].id, frame.updated[1].id);
    frame.events.push(Event {
        kind: 0,
        bytes: postcard::to_stdvec(&(thrower, target)).unwrap(),
    });
    frame.updated[0]
        .components
        .push(ComponentChange::Set(ComponentValue {
            kind: 2,
            bytes: postcard::to_stdvec(&7u32).unwrap(),
        }));
    ServerMessage::Frame(frame)
}

fn codec(c: &mut Criterion) {
    let (input, frame) = (input(), frame());
    let frame_hit = frame_with_hit();
    let sizes = [
        (
            "input",
            postcard::to_stdvec(&input).unwrap().len(),
            serde_json::to_vec(&input).unwrap().len(),
        ),
        (
            "frame of 20 movers",
            postcard::to_stdvec(&frame).unwrap().len(),
            serde_json::to_vec(&frame).unwrap().len(),
        ),
        (
            "frame of 20 movers with a hit",
            postcard::to_stdvec(&frame_hit).unwrap().len(),
            serde_json::to_vec(&frame_hit).unwrap().len(),
        ),
    ];
    for (what, postcard_bytes, json_bytes) in sizes {
        println!(
            "codec size/{what}: postcard {postcard_bytes} bytes, serde_json {json_bytes} bytes (+4 bytes frame prefix on the wire)"
        );
    }

    let mut buffer = Vec::with_capacity(1024);
    let mut encode = |name: &str, message: &dyn Fn(&mut Vec<u8>)| {
        c.bench_function(name, |b| {
            b.iter(|| {
                buffer.clear();
                message(&mut buffer);
            })
        });
    };
    encode("encode/input/postcard", &|out| {
        postcard_into(black_box(&input), out)
    });
    encode("encode/input/serde_json", &|out| {
        serde_json::to_writer(out, black_box(&input)).unwrap()
    });
    encode("encode/frame20/postcard", &|out| {
        postcard_into(black_box(&frame), out)
    });
    encode("encode/frame20/serde_json", &|out| {
        serde_json::to_writer(out, black_box(&frame)).unwrap()
    });

    let input_postcard = postcard::to_stdvec(&input).unwrap();
    let input_json = serde_json::to_vec(&input).unwrap();
    let frame_postcard = postcard::to_stdvec(&frame).unwrap();
    let frame_json = serde_json::to_vec(&frame).unwrap();
    c.bench_function("decode/input/postcard", |b| {
        b.iter(|| throng::protocol::decode_client_message(black_box(&input_postcard)).unwrap())
    });
    c.bench_function("decode/input/serde_json", |b| {
        b.iter(|| serde_json::from_slice::<ClientMessage>(black_box(&input_json)).unwrap())
    });
    c.bench_function("decode/frame20/postcard", |b| {
        b.iter(|| throng::protocol::decode_server_message(black_box(&frame_postcard)).unwrap())
    });
    c.bench_function("decode/frame20/serde_json", |b| {
        b.iter(|| serde_json::from_slice::<ServerMessage>(black_box(&frame_json)).unwrap())
    });
    // What a client does with each frame: decode and apply to its mirror. The mirror holds
    // the 20 movers; each iteration applies the frame (moves every one by its delta)
    // with increasing ticks; positions start mid-range so they never leave it.
    let body = &frame_postcard;
    let ServerMessage::Frame(decoded) = frame.clone() else {
        unreachable!()
    };
    let mirror_with_movers = || {
        let mut mirror = Mirror::default();
        let spawns = StateFrame {
            tick: 1,
            reset: true,
            spawned: decoded
                .updated
                .iter()
                .map(|u| EntitySpawn {
                    id: u.id,
                    x: 1 << 30,
                    y: 1 << 30,
                    components: vec![],
                })
                .collect(),
            ..Default::default()
        };
        mirror.apply(&spawns).unwrap();
        mirror
    };
    let mut mirror = mirror_with_movers();
    c.bench_function("apply/frame20/decode_then_apply", |b| {
        b.iter(|| {
            let ServerMessage::Frame(mut frame) =
                throng::protocol::decode_server_message(black_box(body)).unwrap()
            else {
                unreachable!()
            };
            frame.tick = mirror.tick + 1;
            mirror.apply(&frame).unwrap();
        })
    });
    let mut mirror = mirror_with_movers();
    c.bench_function("apply/frame20/apply_body", |b| {
        b.iter(|| {
            mirror.tick = 0; // the body's tick is fixed; allow re-applying it
            mirror.apply_body(black_box(body)).unwrap();
        })
    });
    // The same with a hit: the event is copied out (and taken, as a client would each
    // frame) and the score set on the thrower.
    let body_hit = postcard::to_stdvec(&frame_hit).unwrap();
    let mut mirror = mirror_with_movers();
    c.bench_function("apply/frame20_hit/apply_body", |b| {
        b.iter(|| {
            mirror.tick = 0;
            mirror.apply_body(black_box(&body_hit)).unwrap();
            black_box(mirror.take_events());
        })
    });
}

/// Postcard-encodes `message` into `out`, reusing its memory.
fn postcard_into<T: serde::Serialize>(message: &T, out: &mut Vec<u8>) {
    *out = postcard::to_extend(message, std::mem::take(out)).unwrap();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = codec
}
criterion_main!(benches);
