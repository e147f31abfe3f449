//! `probe`: connects one client to a throng server and prints what it sees: the game's schema
//! at the start, every server event as it arrives, and once a second the frames, bytes,
//! entities in view and the acknowledged seq. Optionally walks in a circle and throws.
//!
//!     cargo run -p probe -- --addr 127.0.0.1:7000 --seconds 10 --walk --throw

use std::fmt::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use throng_client::{Client, Mirror};
use throng_protocol::{Event, Schema, ServerMessage};

#[derive(Parser)]
#[command(about = "Connect one client to a throng server and print what it sees")]
struct Args {
    /// Server address (loopback only).
    #[arg(long, default_value = "127.0.0.1:7000")]
    addr: SocketAddr,
    /// Player name.
    #[arg(long, default_value = "probe")]
    name: String,
    /// The name's secret (the first login of a name claims it with this secret).
    #[arg(long, default_value = "probe-secret")]
    secret: String,
    /// How long to watch.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Send one movement input per frame, turning slowly.
    #[arg(long)]
    walk: bool,
    /// Send the game's `throw` action once a second, in the walking direction (the value is
    /// the demo game's `Throw { dir_x: i8, dir_y: i8 }`).
    #[arg(long)]
    throw: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if !args.addr.ip().is_loopback() {
        return Err("probe only connects to loopback addresses".into());
    }
    let mut client = Client::connect(args.addr, &args.name, &args.secret).await?;
    let schema = client.schema().clone();
    if args.throw && client.action_kind("throw").is_none() {
        return Err(format!("--throw: the server has no `throw` action ({schema:?})").into());
    }
    let welcome = &client.welcome;
    println!(
        "welcome: player {}, {} Hz, world {} units, cells of {} units, view {} cells, \
         frames up to {} bytes, idle timeout {} ms, {} inputs/s",
        welcome.player_id,
        welcome.tick_hz,
        welcome.world_size,
        welcome.cell_size,
        welcome.view_cells,
        welcome.max_frame_bytes,
        welcome.idle_timeout_ms,
        welcome.max_inputs_per_s
    );
    print_schema(&schema);
    let mut mirror = Mirror::default();
    let (started, mut last_report) = (Instant::now(), Instant::now());
    let (mut frames, mut events, mut bytes_at_report) = (0u64, 0u64, client.bytes_received());
    let (mut turn, mut last_throw) = (0u32, Instant::now());
    while started.elapsed() < Duration::from_secs(args.seconds) {
        let message = tokio::time::timeout(Duration::from_secs(5), client.recv()).await??;
        match message {
            ServerMessage::Frame(frame) => {
                frames += 1;
                mirror.apply(&frame)?;
                for event in mirror.take_events() {
                    events += 1;
                    println!(
                        "tick {:>6}  event {}",
                        mirror.tick,
                        describe(&schema, &event)
                    );
                }
                turn += 1;
                let angle = turn as f32 / 40.0;
                let direction = ((angle.cos() * 127.0) as i8, (angle.sin() * 127.0) as i8);
                if args.walk {
                    client.send_next_input(direction.0, direction.1).await?;
                }
                if args.throw && last_throw.elapsed() >= Duration::from_secs(1) {
                    last_throw = Instant::now();
                    let throw = [direction.0 as u8, direction.1 as u8];
                    let seq = client.send_action("throw", &throw).await?;
                    println!(
                        "tick {:>6}  sent throw {direction:?} as seq {seq}",
                        mirror.tick
                    );
                }
            }
            ServerMessage::Close(refusal) => return Err(format!("closed: {refusal:?}").into()),
            _ => {}
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            let me = mirror.entities.get(&client.player_id()).map(|e| e.wire);
            println!(
                "tick {:>6}  frames/s {:>3}  bytes/s {:>7}  events/s {:>4}  in view {:>5}  \
                 ack {:>6}  me {:?}",
                mirror.tick,
                frames,
                client.bytes_received() - bytes_at_report,
                events,
                mirror.entities.len(),
                mirror.ack_seq,
                me
            );
            (frames, events) = (0, 0);
            (bytes_at_report, last_report) = (client.bytes_received(), Instant::now());
        }
    }
    client.goodbye().await?;
    Ok(())
}

fn print_schema(schema: &Schema) {
    let list = |names: &[String]| {
        let listed: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(kind, name)| format!("{kind}={name}"))
            .collect();
        if listed.is_empty() {
            "(none)".to_owned()
        } else {
            listed.join(" ")
        }
    };
    println!("schema: components {}", list(&schema.components));
    println!("        actions    {}", list(&schema.actions));
    println!("        events     {}", list(&schema.events));
}

/// `name [bytes in hex]`, with the value read as varints where the bytes are exactly that
/// (the demo game's `hit` is `Hit { thrower, target }`, two varints).
fn describe(schema: &Schema, event: &Event) -> String {
    let name = schema.events.get(usize::from(event.kind)).map_or_else(
        || format!("kind {} (not in the schema)", event.kind),
        Clone::clone,
    );
    let mut out = format!("{name} [");
    for (i, byte) in event.bytes.iter().enumerate() {
        let _ = write!(out, "{}{byte:02x}", if i == 0 { "" } else { " " });
    }
    out.push(']');
    if let Some(values) = varints(&event.bytes) {
        let _ = write!(out, " = varints {values:?}");
    }
    out
}

/// The bytes as a sequence of varints, if they are exactly that (and not empty).
fn varints(mut bytes: &[u8]) -> Option<Vec<u64>> {
    let mut values = Vec::new();
    while !bytes.is_empty() {
        let (value, used) = throng_protocol::take_varint(bytes)?;
        values.push(value);
        bytes = &bytes[used..];
    }
    (!values.is_empty()).then_some(values)
}
