//! Server configuration: embedded defaults, an optional TOML file, and a command-line flag
//! for every key (flags win over the file, the file over the defaults).
//!
//! Every key is written once, in the `settings!` list below: its type, its default and its
//! doc (which is also its `--help` text). From that one line come the resolved [`Config`],
//! the [`ConfigLayer`] that is both the file format and the flag set (so a key cannot exist
//! in one and be missing from the other), the layering and the defaults. Bounds are checked
//! in `Config::validate`. Gameplay plugins' settings are not here: each reads its own
//! `[game.NAME]` section.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::{Deserialize, Serialize};

/// Declares every setting once: `doc, key: type = default, "default as shown in --help"`.
macro_rules! settings {
    ($( $(#[doc = $doc:literal])+ $key:ident : $type:ty = $default:expr, $shown:literal; )*) => {
        /// Every setting, resolved.
        #[derive(Clone, Debug, PartialEq, Serialize)]
        pub struct Config {
            $( $(#[doc = $doc])+ pub $key: $type, )*
            /// The `[game]` table of the file: one `[game.NAME]` section per gameplay plugin,
            /// read by the plugins themselves (`GameApp::settings`).
            pub game: toml::Table,
        }

        impl Default for Config {
            fn default() -> Self {
                Self {
                    $( $key: $default, )*
                    game: toml::Table::new(),
                }
            }
        }

        /// One layer of settings: the TOML file's keys and the command-line flags.
        /// Unset keys fall through to the layer below.
        #[derive(Parser, Deserialize, Clone, Debug, Default)]
        #[serde(deny_unknown_fields, rename_all = "snake_case")]
        pub struct ConfigLayer {
            $(
                $(#[doc = $doc])+
                #[arg(long, help = concat!($($doc,)+ " [default: ", $shown, "]"))]
                pub $key: Option<$type>,
            )*
            /// Gameplay plugins' sections (`[game.NAME]`), file only.
            #[arg(skip)]
            pub game: Option<toml::Table>,
        }

        impl ConfigLayer {
            /// This layer on top of `below`: keys set here win.
            pub fn over(self, below: ConfigLayer) -> ConfigLayer {
                ConfigLayer {
                    $( $key: self.$key.or(below.$key), )*
                    game: self.game.or(below.game),
                }
            }

            /// Every key, from this layer where set, else its default.
            fn or_defaults(self) -> Config {
                let defaults = Config::default();
                Config {
                    $( $key: self.$key.unwrap_or(defaults.$key), )*
                    game: self.game.unwrap_or(defaults.game),
                }
            }
        }
    };
}

settings! {
    /// Address players connect to.
    listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 7000)), "127.0.0.1:7000";
    /// Ticks (and frames) per second.
    tick_hz: u16 = 20, "20";
    /// Side of the square world in units.
    world_size: f32 = 1000.0, "1000";
    /// Distance within which a player sees others, and beyond which it does not.
    interest_radius: f32 = 100.0, "100";
    /// Side of a replication grid cell in units (how the server finds what is near a
    /// player: a CPU setting, not a change of what is sent).
    cell_size: f32 = 100.0, "the interest radius, at most the world";
    /// Most players connected at once; further connections get Reject{ServerFull}.
    max_players: usize = 10_000, "10000";
    /// Most players one source address (IP) may have connected; beyond: Reject{AddressLimit}.
    max_players_per_addr: u32 = 256, "256";
    /// Most connections that have not logged in yet (separate from max_players); beyond:
    /// Reject{HandshakesFull}.
    max_pending_handshakes: usize = 4096, "4096";
    /// Most connections one source address may have that have not logged in yet; beyond:
    /// Reject{AddressLimit}.
    max_handshakes_per_addr: u32 = 64, "64";
    /// Largest frame body accepted from a client, bytes.
    max_inbound_frame_bytes: u32 = 512, "512";
    /// Largest frame sent to a client, bytes; a view that needs more closes the client.
    max_outbound_frame_bytes: u32 = 1 << 20, "1048576";
    /// Capacity of the inbound input queue (inputs beyond it are dropped and counted).
    input_queue_capacity: usize = 65_536, "65536";
    /// Frame buffers per client: how many ticks a client may lag before frames are dropped.
    outbound_buffers: usize = 4, "4";
    /// Kernel send buffer per player socket in bytes, 0 for the kernel's autotuning (up to
    /// `net.ipv4.tcp_wmem`'s maximum). Bounds the bytes queued to a client that stops reading.
    send_buffer_bytes: u32 = 64 * 1024, "65536";
    /// Seconds a new connection has to send Hello.
    handshake_timeout_s: f32 = 5.0, "5";
    /// Failed logins a name, and a source address, may have at once before further logins
    /// are refused (TooManyFailedLogins) until the bucket refills.
    failed_logins_burst: u32 = 5, "5";
    /// Seconds for a name's or an address's failed-login bucket to regain one attempt.
    failed_login_refill_s: f32 = 2.0, "2";
    /// Seconds a player may send nothing (no input, no ping) before it is kicked.
    idle_timeout_s: f32 = 10.0, "10";
    /// Inputs, actions and pings a player may send per second (token bucket refill rate).
    max_inputs_per_s: u32 = 60, "60";
    /// Inputs, actions and pings a player may send at once above the rate (bucket size).
    input_burst: u32 = 20, "20";
    /// Seconds of rate-limited messages without a one-second pause before a kick.
    flood_kick_s: f32 = 5.0, "5";
    /// Seconds a client may go without taking a single frame before it is kicked.
    slow_reader_kick_s: f32 = 10.0, "10";
    /// Tokio worker threads for sockets.
    net_threads: usize = available_cores(), "number of cores";
    /// Threads the parallel loops over players inside systems run on: the tick thread and
    /// `sim_threads - 1` workers (`components::Workers`); also the size of bevy's compute pool
    /// (the multi-threaded executor, and any `par_iter` a game writes).
    sim_threads: usize = available_cores(), "number of cores";
    /// How the tick's systems are scheduled: "single" runs them one after another on the
    /// tick thread (their parallel loops still spread over sim_threads), "multi" also runs
    /// independent systems at once (bevy's multi-threaded executor).
    executor: Executor = Executor::Single, "single";
    /// Seed of the spawn-position generator.
    spawn_seed: u64 = 1, "1";
    /// Seconds between stat lines in the log, 0 for none.
    stats_interval_s: f32 = 10.0, "10";
    /// Where the web listener (the playable page at /, WebSocket players at /ws) listens:
    /// IP:PORT, or "off".
    web: Endpoint = Endpoint::At(SocketAddr::from(([127, 0, 0, 1], 7080))), "127.0.0.1:7080";
    /// Where the Prometheus metrics endpoint and probes listen: IP:PORT, or "off".
    metrics: Endpoint = Endpoint::At(SocketAddr::from(([127, 0, 0, 1], 9100))), "127.0.0.1:9100";
    /// Bearer token a console kick from a non-loopback peer must present
    /// (`Authorization: Bearer TOKEN`); empty: such kicks are refused.
    admin_token: String = String::new(), "empty";
    /// Whether the metrics address serves the operator console (page, stream, player
    /// lookup, kick); false answers them 404.
    console: bool = true, "true";
    /// Whether to report to the Agones SDK sidecar (localhost:AGONES_SDK_GRPC_PORT): Ready, a
    /// health ping each second while the tick advances, the player count, Shutdown on drain
    /// (docs/AGONES.md). Needs a build with `--features agones`.
    agones: bool = false, "false";
    /// Directory of the player database (created on first run).
    data_dir: PathBuf = PathBuf::from("data"), "./data";
    /// Where players are kept: empty for the embedded SQLite file in data_dir, or a
    /// PostgreSQL URL (`postgres://user:password@host:port/database`), which several servers
    /// (zones) may share.
    store: String = String::new(), "empty: SQLite in data_dir";
    /// Seconds a server's hold on an online player lasts in a shared (PostgreSQL) store unless
    /// renewed (it renews a few times per lease): how long the players of a killed server
    /// wait before they can log in again.
    online_lease_s: f32 = 15.0, "15";
    /// This server's zone: its name in the `zones` file. Empty: the whole world, no zones.
    zone: String = String::new(), "empty: no zones";
    /// The zones file shared by every zone server of one world (docs/SCALING.md).
    zones: PathBuf = PathBuf::new(), "empty: no zones";
    /// The secret every zone server of one world shares to sign handoff tickets (at least
    /// 16 bytes; better given as the THRONG_ZONE_SECRET environment variable).
    zone_secret: String = String::new(), "empty";
    /// The NATS server zone servers exchange their border strips through (nats://host:port).
    nats: String = String::new(), "empty: no NATS";
    /// Seconds between hand-offs of changed players to the persistence thread: at most this
    /// much progress is lost if the process is killed.
    save_interval_s: f32 = 1.0, "1";
    /// Directory to record every tick into, for `throng replay` (docs/RECORDING.md); empty:
    /// no recording.
    record: PathBuf = PathBuf::new(), "empty: not recording";
    /// A recording starts a new segment file once the current one has this many MiB.
    record_segment_mb: u32 = 64, "64";
    /// A recording stores a digest of the replicated state every this many ticks (what a
    /// replay checks; 1 finds a divergence at its exact tick).
    record_digest_every: u32 = 20, "20";
}

fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// How the tick's systems are scheduled (see the `executor` setting). Single is the default:
/// at 1,000 to 10,000 players it ran the whole tick 1.5-2x (1,000) to 1.05-1.1x (10,000)
/// faster than bevy's multi-threaded executor here, with fewer allocations
/// (docs/BENCHMARKS.md): the systems are short, and starting each as a task costs more than
/// running them side by side saves. A game with several heavy independent systems may
/// measure otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Executor {
    /// One system after another on the tick thread.
    Single,
    /// Independent systems at once, on the compute pool.
    Multi,
}

impl std::str::FromStr for Executor {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "single" => Ok(Executor::Single),
            "multi" => Ok(Executor::Multi),
            _ => Err(format!("expected \"single\" or \"multi\", got {text:?}")),
        }
    }
}

/// An optional listening address: `off`, or `IP:PORT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
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

impl From<Endpoint> for String {
    fn from(endpoint: Endpoint) -> String {
        match endpoint {
            Endpoint::Off => "off".to_owned(),
            Endpoint::At(address) => address.to_string(),
        }
    }
}

impl TryFrom<String> for Endpoint {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

/// The command line of the `throng` binary: run the server (the default), or a command.
#[derive(Parser, Debug)]
#[command(
    name = "throng",
    version,
    about = "Authoritative fixed-tick game server for crowds",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Optional TOML file with any of the keys below (snake_case); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Settings.
    #[command(flatten)]
    pub settings: ConfigLayer,
    /// Instead of serving: a command.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What the binary can do besides serving.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Replay a recording (made with `--record DIR`) offline, checking every recorded state
    /// digest; `--until TICK` stops there and prints the world as JSON.
    Replay(crate::recording::ReplayArgs),
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The config file named by `--config`.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for these keys.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The config file named by `--config`.
        path: PathBuf,
        /// The TOML parser's error, with its line and column.
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

    /// Fills unset keys with defaults and validates the result.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let cell_size_set = self.cell_size.is_some();
        let mut config = self.or_defaults();
        if !cell_size_set {
            // The one default that depends on other keys: cells as large as the radius.
            config.cell_size = config.interest_radius.min(config.world_size);
        }
        config.validate()?;
        Ok(config)
    }
}

impl Config {
    /// Whether `store` names a PostgreSQL database (else it is empty: SQLite in `data_dir`).
    pub fn store_is_postgres(&self) -> bool {
        self.store.starts_with("postgres://") || self.store.starts_with("postgresql://")
    }

    /// This configuration with its secrets blanked (the zone secret, the admin token, the
    /// store URL, which may hold a password): what a recording may keep. A replay needs
    /// none of them.
    pub fn without_secrets(&self) -> Config {
        Config {
            zone_secret: String::new(),
            admin_token: String::new(),
            store: String::new(),
            ..self.clone()
        }
    }

    /// The whole configuration as the TOML a config file would hold (what a recording keeps,
    /// [`Config::without_secrets`], so that a replay runs with the same settings).
    pub fn to_toml(&self) -> String {
        // Every value is a number, a string, a bool or the `[game]` table: always TOML.
        toml::to_string(self).expect("a configuration is TOML")
    }

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
        if self.max_players_per_addr == 0 {
            return invalid("max_players_per_addr", "must be at least 1");
        }
        if self.max_pending_handshakes == 0 || self.max_pending_handshakes > 1 << 20 {
            return invalid("max_pending_handshakes", "must be 1 to 1048576");
        }
        if self.max_handshakes_per_addr == 0 {
            return invalid("max_handshakes_per_addr", "must be at least 1");
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
            ("save_interval_s", self.save_interval_s),
            ("online_lease_s", self.online_lease_s),
            ("failed_login_refill_s", self.failed_login_refill_s),
        ] {
            if !positive(seconds) || seconds > 86_400.0 {
                return invalid(key, "must be positive and at most a day");
            }
        }
        if self.max_inputs_per_s == 0 || self.input_burst == 0 {
            return invalid("max_inputs_per_s/input_burst", "must be at least 1");
        }
        if self.failed_logins_burst == 0 || self.failed_logins_burst > 1000 {
            return invalid("failed_logins_burst", "must be 1 to 1000");
        }
        if self.record_segment_mb == 0 || self.record_segment_mb > 4096 {
            return invalid("record_segment_mb", "must be 1 to 4096");
        }
        if self.record_digest_every == 0 {
            return invalid("record_digest_every", "must be at least 1");
        }
        if self.net_threads == 0 || self.sim_threads == 0 {
            return invalid("net_threads/sim_threads", "must be at least 1");
        }
        if !(self.store.is_empty() || self.store_is_postgres()) {
            return invalid("store", "must be empty (SQLite) or a postgres:// URL");
        }
        if self.agones && !cfg!(feature = "agones") {
            return invalid("agones", "true needs a build with --features agones");
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
    fn a_configuration_written_as_toml_reads_back_equal() {
        let file: ConfigLayer = toml::from_str(
            "tick_hz = 30\nweb = \"off\"\nrecord = \"rec\"\n[game.snowball]\nnpcs = 3",
        )
        .unwrap();
        let config = file.resolve().unwrap();
        let again: ConfigLayer = toml::from_str(&config.to_toml()).unwrap();
        assert_eq!(again.resolve().unwrap(), config);
    }

    #[test]
    fn what_a_recording_keeps_of_the_configuration_holds_no_secret() {
        let file: ConfigLayer = toml::from_str(
            "zone_secret = \"s3cret-s3cret-s3cret\"\nadmin_token = \"t0ken\"\nstore = \"postgres://u:pa55@db/w\"\ntick_hz = 30",
        )
        .unwrap();
        let kept = file.resolve().unwrap().without_secrets().to_toml();
        for secret in ["s3cret", "t0ken", "pa55"] {
            assert!(!kept.contains(secret), "{secret} in {kept}");
        }
        assert!(kept.contains("tick_hz = 30"));
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
