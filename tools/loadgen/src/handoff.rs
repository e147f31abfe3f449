//! Following zone transfers, the pure parts: where a `Transfer` sends a bot, the `Resume` it
//! opens the destination's session with, and the continuity check of its position across
//! the border.
//!
//! A world split across zone servers moves a player by sending it `Transfer` (its state is
//! saved, the socket closes); the bot connects to the destination (the Transfer's `address`
//! over TCP, its `websocket` URL over WebSocket), sends `Resume` with the ticket instead of
//! Hello, and plays on with the next seq. The handoff is complete when the destination's
//! first frame shows the bot's own entity: its latency is from the Transfer's arrival to
//! that frame's, and the entity must be where it was on the origin, give or take one tick
//! of walking (the world wraps, so distances are taken around its edges).

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::ws::Transport;

/// The step allowed at a border when neither `--max-step` nor a `movement` event says
/// otherwise: 1.5 ticks of the default walking speed (5 units per tick).
pub const DEFAULT_MAX_STEP: f64 = 7.5;
/// Slack for the wire's precision (positions travel in eighths of a unit).
pub const WIRE_SLACK_UNITS: f64 = 1.0 / 8.0;
/// Connects to the destination a bot tries before the handoff fails. Only failures before
/// the Resume is sent are retried: once sent, the ticket may be spent.
pub const MAX_ATTEMPTS: u32 = 3;
/// Pause between those attempts.
pub const RETRY_DELAY: Duration = Duration::from_millis(100);

/// Where a bot connects to continue: the socket address, and for WebSocket the `Host` and
/// path of the upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The destination's listener (a loopback IPv4 address, as every target of loadgen).
    pub addr: SocketAddr,
    /// The `Host` of the upgrade request (the URL's authority).
    pub host: String,
    /// The path of the upgrade request.
    pub path: String,
}

/// The destination of a Transfer for `transport`, or why there is none (a failure reason
/// as the report counts it).
pub fn target(
    transport: Transport,
    address: &str,
    websocket: &str,
) -> Result<Target, &'static str> {
    match transport {
        Transport::Tcp => Ok(Target {
            addr: resolve(address)?,
            host: address.to_owned(),
            path: String::new(),
        }),
        Transport::Ws => {
            if websocket.is_empty() {
                return Err("no_websocket_url");
            }
            let Some(rest) = websocket.strip_prefix("ws://") else {
                return Err("unsupported_websocket_url"); // wss:// needs TLS, which bots lack
            };
            let (authority, path) = match rest.find('/') {
                Some(at) => rest.split_at(at),
                None => (rest, "/"),
            };
            Ok(Target {
                addr: resolve(authority)?,
                host: authority.to_owned(),
                path: path.to_owned(),
            })
        }
    }
}

/// `HOST:PORT` as a loopback IPv4 socket address (bots bind 127.0.0.x sources, and load
/// tests only ever target this machine).
fn resolve(authority: &str) -> Result<SocketAddr, &'static str> {
    let addrs = authority.to_socket_addrs().map_err(|_| "bad_destination")?;
    let mut any = false;
    for addr in addrs {
        any = true;
        if addr.is_ipv4() && addr.ip().is_loopback() {
            return Ok(addr);
        }
    }
    Err(if any {
        "destination_not_loopback"
    } else {
        "bad_destination"
    })
}

/// Distance in world units between two wire positions (units times `position_scale`) in
/// a world of side `world_size` that wraps at its edges: on each axis the shorter way,
/// directly or around.
pub fn wrapped_distance(a: [u32; 2], b: [u32; 2], world_size: f64, position_scale: f64) -> f64 {
    let side = world_size * position_scale;
    let axis = |p: u32, q: u32| {
        let d = (f64::from(p) - f64::from(q)).abs();
        if side > 0.0 {
            let d = d % side;
            d.min(side - d)
        } else {
            d
        }
    };
    let (dx, dy) = (axis(a[0], b[0]), axis(a[1], b[1]));
    dx.hypot(dy) / position_scale.max(f64::MIN_POSITIVE)
}

/// The largest jump allowed across a border: `--max-step` if given, else 1.5 ticks of the
/// speed the server announced (the `movement` event), else [`DEFAULT_MAX_STEP`]; plus the
/// wire's precision.
pub fn allowed_jump(max_step: Option<f64>, speed_per_tick: Option<f32>) -> f64 {
    let step = max_step
        .or_else(|| speed_per_tick.map(|speed| f64::from(speed) * 1.5))
        .unwrap_or(DEFAULT_MAX_STEP);
    step + WIRE_SLACK_UNITS
}

/// A handoff in progress: from the Transfer to the destination's first frame showing the
/// bot's own entity.
#[derive(Debug)]
pub struct Handoff {
    /// The Transfer's `address` (its game listener).
    pub address: String,
    /// The Transfer's `websocket` URL (may be empty).
    pub websocket: String,
    /// The ticket to present.
    pub ticket: Vec<u8>,
    /// Resolved on the first connect attempt.
    pub target: Option<Target>,
    /// When the Transfer arrived (for the handoff's time bound).
    pub started: Instant,
    /// When the Transfer arrived, CLOCK_REALTIME ns (the kernel's arrival time, as frames'
    /// are stamped: the latency is between two arrivals).
    pub started_ns: i64,
    /// The bot's own wire position on the origin when the Transfer came, if it had seen it.
    pub from: Option<[u32; 2]>,
    /// Connects tried.
    pub attempts: u32,
    /// When to try the next connect (`None` while one is in progress or once welcomed).
    pub retry_at: Option<Instant>,
    /// The Resume went out (from then on, a failure is final: the ticket may be spent).
    pub resume_sent: bool,
    /// The destination welcomed the bot; the handoff waits for its own entity.
    pub welcomed: bool,
}

impl Handoff {
    /// A handoff that starts now, its first connect due at once.
    pub fn new(
        address: String,
        websocket: String,
        ticket: Vec<u8>,
        started: Instant,
        started_ns: i64,
        from: Option<[u32; 2]>,
    ) -> Handoff {
        Handoff {
            address,
            websocket,
            ticket,
            target: None,
            started,
            started_ns,
            from,
            attempts: 0,
            retry_at: Some(started),
            resume_sent: false,
            welcomed: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCALE: f64 = 8.0;

    fn wire(x: f64, y: f64) -> [u32; 2] {
        [(x * SCALE) as u32, (y * SCALE) as u32]
    }

    #[test]
    fn distances_wrap_around_the_world_edges() {
        let d = |a, b| wrapped_distance(a, b, 1000.0, SCALE);
        assert_eq!(d(wire(10.0, 10.0), wire(13.0, 14.0)), 5.0);
        // Across the seam at x = 0 / 1000: 2 units, not 996.
        assert_eq!(d(wire(999.0, 500.0), wire(1.0, 500.0)), 2.0);
        assert_eq!(d(wire(1.0, 500.0), wire(999.0, 500.0)), 2.0);
        // Both axes around the corner.
        assert_eq!(d(wire(998.0, 1.0), wire(1.0, 997.0)), 3.0_f64.hypot(4.0));
        // Half the world is the farthest a point can be on one axis.
        assert_eq!(d(wire(0.0, 0.0), wire(500.0, 0.0)), 500.0);
        assert_eq!(d(wire(250.0, 0.0), wire(250.0, 0.0)), 0.0);
        // A position exactly at the world's side is the same point as 0.
        assert_eq!(d([8000, 0], [0, 0]), 0.0);
    }

    #[test]
    fn the_allowed_jump_is_one_and_a_half_steps_plus_the_wire_precision() {
        assert_eq!(allowed_jump(None, None), 7.5 + 0.125);
        assert_eq!(allowed_jump(None, Some(10.0)), 15.0 + 0.125);
        assert_eq!(allowed_jump(Some(2.0), Some(10.0)), 2.0 + 0.125);
        // At the default speed, a one-tick step across the seam passes, two ticks do not.
        let allowed = allowed_jump(None, Some(5.0));
        let step =
            |from: f64, to: f64| wrapped_distance(wire(from, 0.0), wire(to, 0.0), 1000.0, SCALE);
        assert!(step(998.0, 3.0) <= allowed);
        assert!(step(998.0, 3.0 + 5.0) > allowed);
        assert!(step(500.0, 507.5) <= allowed);
    }

    #[test]
    fn transfers_name_a_loopback_destination_per_transport() {
        assert_eq!(
            target(Transport::Tcp, "127.0.0.1:7001", ""),
            Ok(Target {
                addr: "127.0.0.1:7001".parse().unwrap(),
                host: "127.0.0.1:7001".into(),
                path: String::new(),
            })
        );
        assert_eq!(
            target(Transport::Ws, "127.0.0.1:7001", "ws://127.0.0.2:7081/ws"),
            Ok(Target {
                addr: "127.0.0.2:7081".parse().unwrap(),
                host: "127.0.0.2:7081".into(),
                path: "/ws".into(),
            })
        );
        assert_eq!(
            target(Transport::Ws, "127.0.0.1:7001", "ws://127.0.0.1:7081").map(|t| t.path),
            Ok("/".into())
        );
        assert_eq!(
            target(Transport::Ws, "127.0.0.1:7001", ""),
            Err("no_websocket_url")
        );
        assert_eq!(
            target(Transport::Ws, "", "wss://127.0.0.1:7081/ws"),
            Err("unsupported_websocket_url")
        );
        assert_eq!(
            target(Transport::Tcp, "nowhere", ""),
            Err("bad_destination")
        );
        assert_eq!(
            target(Transport::Tcp, "10.1.2.3:7001", ""),
            Err("destination_not_loopback")
        );
    }
}
