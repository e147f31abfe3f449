//! `probe`: connects one client to a throng server and prints what it sees, once a second:
//! frames, bytes, entities in view and the acknowledged input. Optionally walks in a circle.
//!
//!     cargo run -p probe -- --addr 127.0.0.1:7000 --seconds 10 --walk

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use throng::protocol::ServerMessage;
use throng_client::{Client, Mirror};

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
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if !args.addr.ip().is_loopback() {
        return Err("probe only connects to loopback addresses".into());
    }
    let mut client = Client::connect(args.addr, &args.name, &args.secret).await?;
    println!("welcome: {:?}", client.welcome);
    let mut mirror = Mirror::default();
    let (started, mut last_report) = (Instant::now(), Instant::now());
    let (mut frames, mut bytes_at_report, mut seq) = (0u64, client.bytes_received(), 0u32);
    while started.elapsed() < Duration::from_secs(args.seconds) {
        let message = tokio::time::timeout(Duration::from_secs(5), client.recv()).await??;
        match message {
            ServerMessage::Frame(frame) => {
                frames += 1;
                mirror.apply(&frame)?;
                if args.walk {
                    seq += 1;
                    let angle = seq as f32 / 40.0;
                    client
                        .send_input(
                            seq,
                            (angle.cos() * 127.0) as i8,
                            (angle.sin() * 127.0) as i8,
                        )
                        .await?;
                }
            }
            ServerMessage::Close(refusal) => return Err(format!("closed: {refusal:?}").into()),
            _ => {}
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            let me = mirror.entities.get(&client.player_id()).map(|e| e.wire);
            println!(
                "tick {:>6}  frames/s {:>3}  bytes/s {:>7}  in view {:>5}  ack {:>6}  me {:?}",
                mirror.tick,
                frames,
                client.bytes_received() - bytes_at_report,
                mirror.entities.len(),
                mirror.ack_seq,
                me
            );
            (frames, bytes_at_report, last_report) = (0, client.bytes_received(), Instant::now());
        }
    }
    client.goodbye().await?;
    Ok(())
}
