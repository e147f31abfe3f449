//! Test bots: well-behaved players that walk and read every frame, and the hostile kinds
//! (tricklers that never finish their Hello, players that never read).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use throng::protocol::{ClientMessage, Input, ServerMessage, frame_bytes};
use throng_client::Client;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;

/// What a walking bot saw.
#[derive(Debug, Default, Clone)]
pub struct BotRecord {
    /// State frames received.
    pub frames: u64,
    /// Frames after the first with `reset` (the server had dropped frames to this bot; the
    /// first frame always resets).
    pub resets: u64,
    /// Ticks missing between consecutive frames.
    pub skipped_ticks: u64,
    /// How the session ended before the stop, if it did.
    pub ended: Option<String>,
    /// From the first frame to the stop.
    pub playing: Duration,
}

impl BotRecord {
    /// Frames per second while playing.
    pub fn frames_per_s(&self) -> f64 {
        self.frames as f64 / self.playing.as_secs_f64().max(1e-9)
    }
}

/// A player that sends a walking input every 50 ms and reads every frame until `stop`.
pub async fn walking_bot(
    addr: SocketAddr,
    name: String,
    mut stop: watch::Receiver<bool>,
) -> BotRecord {
    let mut client = Client::connect(addr, &name, &super::secret_of(&name))
        .await
        .expect("welcomed");
    let mut record = BotRecord::default();
    let mut inputs = tokio::time::interval(Duration::from_millis(50));
    let (mut seq, mut last_tick, mut first_frame) = (0u32, None::<u32>, None::<Instant>);
    loop {
        tokio::select! {
            _ = until_stopped(&mut stop) => break,
            _ = inputs.tick() => {
                seq += 1;
                // A new direction every 2 s: a square walk.
                let leg = (seq / 40) % 4;
                let (dir_x, dir_y) = [(127, 0), (0, 127), (-127, 0), (0, -127)][leg as usize];
                if let Err(error) = client.send_input(seq, dir_x, dir_y).await {
                    record.ended = Some(format!("send failed: {error}"));
                    break;
                }
            }
            message = client.recv() => match message {
                Ok(ServerMessage::Frame(frame)) => {
                    first_frame.get_or_insert_with(Instant::now);
                    record.frames += 1;
                    record.resets += u64::from(frame.reset && record.frames > 1);
                    if let Some(last) = last_tick {
                        record.skipped_ticks += u64::from(frame.tick.saturating_sub(last + 1));
                    }
                    last_tick = Some(frame.tick);
                }
                Ok(ServerMessage::Close(refusal)) => {
                    record.ended = Some(format!("closed: {refusal:?}"));
                    break;
                }
                Ok(_) => {}
                Err(error) => {
                    record.ended = Some(format!("recv failed: {error}"));
                    break;
                }
            },
        }
    }
    record.playing = first_frame.map_or(Duration::ZERO, |first| first.elapsed());
    record
}

/// Starts `count` walking bots named `{prefix}{i}`; they play until `stop` turns true.
pub async fn walking_bots(
    addr: SocketAddr,
    prefix: &str,
    count: usize,
    stop: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<BotRecord>> {
    let mut bots = Vec::with_capacity(count);
    for i in 0..count {
        bots.push(tokio::spawn(walking_bot(
            addr,
            format!("{prefix}{i}"),
            stop.clone(),
        )));
        if i % 20 == 19 {
            tokio::task::yield_now().await;
        }
    }
    bots
}

/// Collects the bots' records once they stopped.
pub async fn records(bots: Vec<tokio::task::JoinHandle<BotRecord>>) -> Vec<BotRecord> {
    let mut records = Vec::with_capacity(bots.len());
    for bot in bots {
        records.push(bot.await.expect("bot task"));
    }
    records
}

/// A player that joins with a tiny receive buffer, sends an input every 500 ms (its premise:
/// often enough not to be idle) and never reads a byte, until `stop` or until the server drops it.
pub async fn non_reader(addr: SocketAddr, name: String, mut stop: watch::Receiver<bool>) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.expect("connects");
    if stream.write_all(&super::hello(&name)).await.is_err() {
        return;
    }
    let mut seq = 0;
    loop {
        tokio::select! {
            _ = until_stopped(&mut stop) => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                seq += 1;
                let input = frame_bytes(&ClientMessage::Input(Input { seq, dir_x: 90, dir_y: 90 }));
                if stream.write_all(&input).await.is_err() {
                    return; // the server kicked it
                }
            }
        }
    }
}

/// A slowloris: connects and sends its Hello one byte per second (its premise: slower than
/// any handshake timeout), reconnecting whenever the server closes it, until `stop`. Counts
/// the connections the server closed in `closed` as it goes, and returns that count.
pub async fn trickler(
    addr: SocketAddr,
    name: String,
    closed: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> u64 {
    let hello = super::hello(&name);
    loop {
        let Ok(mut stream) = TcpStream::connect(addr).await else {
            return closed.load(Ordering::Relaxed);
        };
        for byte in hello.iter().cycle() {
            tokio::select! {
                _ = until_stopped(&mut stop) => return closed.load(Ordering::Relaxed),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if stream.write_all(&[*byte]).await.is_err() || peer_closed(&stream) {
                closed.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
    }
}

/// Whether the server has closed its side (a readable EOF or error without reading data
/// we need).
fn peer_closed(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 256];
    loop {
        match stream.try_read(&mut probe) {
            Ok(0) => return true,
            Ok(_) => continue, // the Reject; the EOF follows
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn until_stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
