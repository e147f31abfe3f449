//! Server configuration: embedded defaults, an optional TOML file, and a command-line flag
//! for every key (flags win over the file, the file over the defaults).
//!
//! One struct, [`ConfigLayer`], is both the file format and the flag set, so a key cannot
//! exist in one and be missing from the other.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::Deserialize;

/// Every setting, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Address players connect to.
    pub listen: SocketAddr,
    /// Ticks per second.
    pub tick_hz: u16,
    /// Side of the square world in units.
    pub world_size: f32,
    /// Distance within which a player is guaranteed to see others.
    pub interest_radius: f32,
    /// Side of a replication grid cell in units.
    pub cell_size: f32,
    /// Most players connected at once; further connections get Reject{ServerFull}.
    pub max_players: usize,
    /// Largest frame body accepted from a client, bytes.
    pub max_inbound_frame_bytes: u32,
    /// Largest frame sent to a client, bytes; a view that needs more closes the client.
    pub max_outbound_frame_bytes: u32,
    /// Capacity of the inbound input queue (inputs beyond it are dropped and counted).
    pub input_queue_capacity: usize,
    /// Frame buffers per client: how many ticks a client may lag before frames are dropped.
    pub outbound_buffers: usize,
    /// Kernel send buffer per player socket, bytes (0: the kernel's autotuning, up to
    /// `net.ipv4.tcp_wmem`'s maximum). Bounds the bytes queued to a client that stops reading.
    pub send_buffer_bytes: u32,
    /// Seconds a new connection has to send Hello.
    pub handshake_timeout_s: f32,
    /// Seconds a player may send nothing (no input, no ping) before it is kicked.
    pub idle_timeout_s: f32,
    /// Inputs and pings a player may send per second (token bucket refill rate).
    pub max_inputs_per_s: u32,
    /// Inputs and pings a player may send at once above the rate (token bucket size).
    pub input_burst: u32,
    /// Seconds of rate-limited messages without a one-second pause before a kick.
    pub flood_kick_s: f32,
    /// Seconds a client may go without taking a single frame before it is kicked.
    pub slow_reader_kick_s: f32,
    /// Tokio worker threads for sockets.
    pub net_threads: usize,
    /// Threads of the ECS compute pool (parallel systems).
    pub sim_threads: usize,
    /// Seed of the spawn-position generator.
    pub spawn_seed: u64,
    /// Seconds between stat lines in the log (0: none).
    pub stats_interval_s: f32,
    /// Where the Prometheus metrics endpoint listens, or off.
    pub metrics: Endpoint,
    /// Directory of the player database (created on first run).
    pub data_dir: PathBuf,
    /// Seconds between hand-offs of changed players to the persistence thread: at most this
    /// much progress is lost if the process is killed.
    pub flush_interval_s: f32,
    /// The `[game]` table of the file: one `[game.NAME]` section per gameplay plugin, read
    /// by the plugins themselves (`GameApp::settings`).
    pub game: toml::Table,
}

/// An optional listening address: `off`, or `IP:PORT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Endpoint {
    /// Not served.
    Off,
    /// Served on this address.
    At(SocketAddr),
}

impl std::str::FromStr for Endpoint {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "off" {
            return Ok(Endpoint::Off);
        }
        text.parse()
            .map(Endpoint::At)
            .map_err(|_| format!("expected IP:PORT or \"off\", got {text:?}"))
    }
}

impl TryFrom<String> for Endpoint {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl Default for Config {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7000)),
            tick_hz: 20,
            world_size: 1000.0,
            interest_radius: 100.0,
            cell_size: 100.0,
            max_players: 10_000,
            max_inbound_frame_bytes: 512,
            max_outbound_frame_bytes: 1 << 20,
            input_queue_capacity: 65_536,
            outbound_buffers: 4,
            send_buffer_bytes: 64 * 1024,
            handshake_timeout_s: 5.0,
            idle_timeout_s: 10.0,
            max_inputs_per_s: 60,
            input_burst: 20,
            flood_kick_s: 5.0,
            slow_reader_kick_s: 10.0,
            net_threads: cores,
            sim_threads: cores,
            spawn_seed: 1,
            stats_interval_s: 10.0,
            metrics: Endpoint::At(SocketAddr::from(([127, 0, 0, 1], 9100))),
            data_dir: PathBuf::from("data"),
            flush_interval_s: 1.0,
            game: toml::Table::new(),
        }
    }
}

/// One layer of settings: the TOML file's keys and the command-line flags.
/// Unset keys fall through to the layer below.
#[derive(Parser, Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ConfigLayer {
    /// Address players connect to [default: 127.0.0.1:7000]
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Ticks per second [default: 20]
    #[arg(long)]
    pub tick_hz: Option<u16>,
    /// Side of the square world in units [default: 1000]
    #[arg(long)]
    pub world_size: Option<f32>,
    /// Interest radius in units [default: 100]
    #[arg(long)]
    pub interest_radius: Option<f32>,
    /// Replication grid cell side in units [default: the interest radius, at most the world]
    #[arg(long)]
    pub cell_size: Option<f32>,
    /// Most players connected at once [default: 10000]
    #[arg(long)]
    pub max_players: Option<usize>,
    /// Largest frame body accepted from a client, bytes [default: 512]
    #[arg(long)]
    pub max_inbound_frame_bytes: Option<u32>,
    /// Largest frame sent to a client, bytes [default: 1048576]
    #[arg(long)]
    pub max_outbound_frame_bytes: Option<u32>,
    /// Inbound input queue capacity [default: 65536]
    #[arg(long)]
    pub input_queue_capacity: Option<usize>,
    /// Frame buffers per client [default: 4]
    #[arg(long)]
    pub outbound_buffers: Option<usize>,
    /// Kernel send buffer per player socket in bytes, 0 for the kernel's autotuning [default: 65536]
    #[arg(long)]
    pub send_buffer_bytes: Option<u32>,
    /// Seconds a new connection has to send Hello [default: 5]
    #[arg(long)]
    pub handshake_timeout_s: Option<f32>,
    /// Seconds a player may send nothing before it is kicked [default: 10]
    #[arg(long)]
    pub idle_timeout_s: Option<f32>,
    /// Inputs and pings per second a player may send [default: 60]
    #[arg(long)]
    pub max_inputs_per_s: Option<u32>,
    /// Inputs and pings a player may send at once above the rate [default: 20]
    #[arg(long)]
    pub input_burst: Option<u32>,
    /// Seconds of sustained rate-limited sending before a kick [default: 5]
    #[arg(long)]
    pub flood_kick_s: Option<f32>,
    /// Seconds a client may take no frame at all before it is kicked [default: 10]
    #[arg(long)]
    pub slow_reader_kick_s: Option<f32>,
    /// Tokio worker threads [default: number of cores]
    #[arg(long)]
    pub net_threads: Option<usize>,
    /// ECS compute threads [default: number of cores]
    #[arg(long)]
    pub sim_threads: Option<usize>,
    /// Spawn-position seed [default: 1]
    #[arg(long)]
    pub spawn_seed: Option<u64>,
    /// Seconds between stat lines, 0 for none [default: 10]
    #[arg(long)]
    pub stats_interval_s: Option<f32>,
    /// Prometheus metrics endpoint, IP:PORT or "off" [default: 127.0.0.1:9100]
    #[arg(long)]
    pub metrics: Option<Endpoint>,
    /// Directory of the player database [default: ./data]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Seconds between saves of changed players [default: 1]
    #[arg(long)]
    pub flush_interval_s: Option<f32>,
    /// Gameplay plugins' sections (`[game.NAME]`), file only.
    #[arg(skip)]
    pub game: Option<toml::Table>,
}

/// The command line of the `throng` binary.
#[derive(Parser, Debug)]
#[command(
    name = "throng",
    version,
    about = "Authoritative fixed-tick game server for crowds"
)]
pub struct Cli {
    /// Optional TOML file with any of the keys below (snake_case); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Settings.
    #[command(flatten)]
    pub settings: ConfigLayer,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for these keys.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// A value is out of range.
    #[error("invalid setting {key}: {why}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// Why.
        why: String,
    },
}

impl ConfigLayer {
    /// Reads a TOML layer from a file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// This layer on top of `below`: keys set here win.
    pub fn over(self, below: ConfigLayer) -> ConfigLayer {
        macro_rules! pick {
            ($($key:ident),*) => { ConfigLayer { $($key: self.$key.or(below.$key),)* } };
        }
        pick!(
            listen,
            tick_hz,
            world_size,
            interest_radius,
            cell_size,
            max_players,
            max_inbound_frame_bytes,
            max_outbound_frame_bytes,
            input_queue_capacity,
            outbound_buffers,
            send_buffer_bytes,
            handshake_timeout_s,
            idle_timeout_s,
            max_inputs_per_s,
            input_burst,
            flood_kick_s,
            slow_reader_kick_s,
            net_threads,
            sim_threads,
            spawn_seed,
            stats_interval_s,
            metrics,
            data_dir,
            flush_interval_s,
            game
        )
    }

    /// Fills unset keys with defaults and validates the result.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let d = Config::default();
        let world_size = self.world_size.unwrap_or(d.world_size);
        let interest_radius = self.interest_radius.unwrap_or(d.interest_radius);
        let config = Config {
            listen: self.listen.unwrap_or(d.listen),
            tick_hz: self.tick_hz.unwrap_or(d.tick_hz),
            world_size,
            interest_radius,
            cell_size: self.cell_size.unwrap_or(interest_radius.min(world_size)),
            max_players: self.max_players.unwrap_or(d.max_players),
            max_inbound_frame_bytes: self
                .max_inbound_frame_bytes
                .unwrap_or(d.max_inbound_frame_bytes),
            max_outbound_frame_bytes: self
                .max_outbound_frame_bytes
                .unwrap_or(d.max_outbound_frame_bytes),
            input_queue_capacity: self.input_queue_capacity.unwrap_or(d.input_queue_capacity),
            outbound_buffers: self.outbound_buffers.unwrap_or(d.outbound_buffers),
            send_buffer_bytes: self.send_buffer_bytes.unwrap_or(d.send_buffer_bytes),
            handshake_timeout_s: self.handshake_timeout_s.unwrap_or(d.handshake_timeout_s),
            idle_timeout_s: self.idle_timeout_s.unwrap_or(d.idle_timeout_s),
            max_inputs_per_s: self.max_inputs_per_s.unwrap_or(d.max_inputs_per_s),
            input_burst: self.input_burst.unwrap_or(d.input_burst),
            flood_kick_s: self.flood_kick_s.unwrap_or(d.flood_kick_s),
            slow_reader_kick_s: self.slow_reader_kick_s.unwrap_or(d.slow_reader_kick_s),
            net_threads: self.net_threads.unwrap_or(d.net_threads),
            sim_threads: self.sim_threads.unwrap_or(d.sim_threads),
            spawn_seed: self.spawn_seed.unwrap_or(d.spawn_seed),
            stats_interval_s: self.stats_interval_s.unwrap_or(d.stats_interval_s),
            metrics: self.metrics.unwrap_or(d.metrics),
            data_dir: self.data_dir.unwrap_or(d.data_dir),
            flush_interval_s: self.flush_interval_s.unwrap_or(d.flush_interval_s),
            game: self.game.unwrap_or(d.game),
        };
        config.validate()?;
        Ok(config)
    }
}

impl Config {
    /// Resolves the command line: flags over the optional file over the defaults.
    pub fn from_cli(cli: Cli) -> Result<Config, ConfigError> {
        let file = match &cli.config {
            Some(path) => ConfigLayer::from_file(path)?,
            None => ConfigLayer::default(),
        };
        cli.settings.over(file).resolve()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, why: &str| {
            Err(ConfigError::Invalid {
                key,
                why: why.to_owned(),
            })
        };
        let positive = |v: f32| v.is_finite() && v > 0.0;
        if !(1..=1000).contains(&self.tick_hz) {
            return invalid("tick_hz", "must be 1 to 1000");
        }
        if !positive(self.world_size) || self.world_size > 1.0e6 {
            return invalid("world_size", "must be positive and at most 1e6");
        }
        if !positive(self.interest_radius) {
            return invalid("interest_radius", "must be positive");
        }
        if !positive(self.cell_size) {
            return invalid("cell_size", "must be positive");
        }
        if (self.world_size / self.cell_size).ceil() > 4096.0 {
            return invalid("cell_size", "gives more than 4096 cells per side");
        }
        if self.max_players == 0 || self.max_players > 1 << 20 {
            return invalid("max_players", "must be 1 to 1048576");
        }
        if self.max_inbound_frame_bytes < 16 || self.max_inbound_frame_bytes > 1 << 20 {
            return invalid("max_inbound_frame_bytes", "must be 16 to 1048576");
        }
        if self.max_outbound_frame_bytes < 1024 {
            return invalid("max_outbound_frame_bytes", "must be at least 1024");
        }
        if self.outbound_buffers < 2 {
            return invalid("outbound_buffers", "must be at least 2");
        }
        for (key, seconds) in [
            ("handshake_timeout_s", self.handshake_timeout_s),
            ("idle_timeout_s", self.idle_timeout_s),
            ("flood_kick_s", self.flood_kick_s),
            ("slow_reader_kick_s", self.slow_reader_kick_s),
            ("flush_interval_s", self.flush_interval_s),
        ] {
            if !positive(seconds) || seconds > 86_400.0 {
                return invalid(key, "must be positive and at most a day");
            }
        }
        if self.max_inputs_per_s == 0 || self.input_burst == 0 {
            return invalid("max_inputs_per_s/input_burst", "must be at least 1");
        }
        if self.net_threads == 0 || self.sim_threads == 0 {
            return invalid("net_threads/sim_threads", "must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let file: ConfigLayer = toml::from_str("tick_hz = 30\nworld_size = 4000.0").unwrap();
        let flags = ConfigLayer::parse_from(["throng", "--tick-hz", "10"]);
        let config = flags.over(file).resolve().unwrap();
        assert_eq!(config.tick_hz, 10);
        assert_eq!(config.world_size, 4000.0);
        assert_eq!(config.interest_radius, 100.0);
        assert_eq!(
            config.cell_size, 100.0,
            "cell size defaults to the interest radius"
        );
    }

    #[test]
    fn the_metrics_endpoint_is_an_address_or_off() {
        let file: ConfigLayer = toml::from_str("metrics = \"off\"").unwrap();
        assert_eq!(file.metrics, Some(Endpoint::Off));
        let flags = ConfigLayer::parse_from(["throng", "--metrics", "127.0.0.1:9200"]);
        assert_eq!(
            flags.metrics,
            Some(Endpoint::At("127.0.0.1:9200".parse().unwrap()))
        );
        assert!(toml::from_str::<ConfigLayer>("metrics = \"on\"").is_err());
    }

    #[test]
    fn unknown_file_keys_and_bad_values_are_errors() {
        assert!(toml::from_str::<ConfigLayer>("tick_rate = 3").is_err());
        let zero_tick = ConfigLayer {
            tick_hz: Some(0),
            ..Default::default()
        };
        assert!(matches!(
            zero_tick.resolve(),
            Err(ConfigError::Invalid { key: "tick_hz", .. })
        ));
    }
}
