//! Zones: one world served by several throng processes, each simulating one rectangle of it
//! (docs/SCALING.md).
//!
//! # Layout
//! - [`map`]: the zones file every zone server of a world shares (who owns which point).
//! - [`ticket`]: signed, single-use handoff tickets (sans I/O).
//! - `border`: the tick's side: a player who walks out of this zone's rectangle is saved
//!   and handed off; other entities stay in the zone.
//! - [`strip`]: the border strip a zone publishes each tick (sans I/O).
//! - `ghosts`: the tick's side of strips: publishing ours, replicating the neighbours'
//!   entities as read-only ghosts.
//! - `nats`: the network side: strips to and from NATS.
//!
//! # The handoff, end to end
//! 1. The tick sees a player outside its rectangle (`border::cross_borders`, in the Ingest
//!    phase): it signs a ticket for the zone that owns the point, marks the player leaving,
//!    and gives the connection the Transfer to send once the player is saved.
//! 2. The persistence thread commits the player's final record and, in the same
//!    transaction, stops holding it online here and records the ticket's nonce
//!    (`Store::save_releasing`).
//! 3. Only then does the connection send the Transfer (zone, address, ticket) and close.
//! 4. The client connects to the destination and sends `Resume` with the ticket. The
//!    destination checks the signature, zone and expiry, and the store consumes the nonce
//!    and holds the player online there, in one conditional update (`Store::redeem`). The
//!    player spawns at its saved position, just inside the border, with its components and
//!    its last acknowledged seq.
//!
//! # What is promised
//! - A player is online on at most one server at any moment: the store's `online_zone`
//!   column is the one truth, a lease its server renews, taken by a login or a redeem only
//!   when it is free or its lease ended, freed only in the transaction that saves the
//!   player's final state (docs/SCALING.md says where leases leave a window).
//! - No player is lost: a client that never reconnects is simply offline, its state saved
//!   at the border; a normal login (anywhere) cancels the ticket, and a zone that is not
//!   the player's hands it off after the login.
//! - A zone killed mid-handoff: before the commit, the player is still held by the killed
//!   zone and is back at its last saved state (at most `save_interval_s` old) once the
//!   killed process's lease ends; after the commit, the ticket stays good until it expires,
//!   and a login works at once.

pub(crate) mod border;
pub(crate) mod ghosts;
pub mod map;
pub(crate) mod nats;
pub mod strip;
pub mod ticket;

use std::time::Duration;

use crate::config::Config;

use map::ZoneMap;
use ticket::TicketKey;

/// How long a handoff ticket is valid: a client reconnects in milliseconds; the margin
/// covers a busy machine, and is short enough that a ticket leaked in a log is worthless
/// soon.
pub const TICKET_TTL: Duration = Duration::from_secs(30);

/// Where this server is in its world: the zone map, its own zone, and the ticket key.
#[derive(Clone, Debug)]
pub struct ZoneSetup {
    /// Every zone of the world.
    pub map: ZoneMap,
    /// This server's zone (index into `map.zones`).
    pub me: usize,
    /// Signs and checks tickets.
    pub key: TicketKey,
}

impl ZoneSetup {
    /// The zone setup `config` asks for (`None`: no zones), or why it cannot be used.
    pub fn from_config(config: &Config) -> Result<Option<ZoneSetup>, String> {
        if config.zone.is_empty() {
            return Ok(None);
        }
        if config.zones.as_os_str().is_empty() {
            return Err("zone is set but zones (the zones file) is not".into());
        }
        let map = ZoneMap::load(&config.zones).map_err(|e| e.to_string())?;
        let Some((me, _)) = map.find(&config.zone) else {
            return Err(format!(
                "zone {:?} is not in {}",
                config.zone,
                config.zones.display()
            ));
        };
        if map.world_size != config.world_size {
            return Err(format!(
                "world_size is {} but the zones file says {}",
                config.world_size, map.world_size
            ));
        }
        let from_env = std::env::var("THRONG_ZONE_SECRET").unwrap_or_default();
        let secret = if config.zone_secret.is_empty() {
            from_env
        } else {
            config.zone_secret.clone()
        };
        let key = TicketKey::new(secret.as_bytes())
            .map_err(|e| format!("{e} (zone_secret, or THRONG_ZONE_SECRET)"))?;
        if !config.store_is_postgres() {
            return Err(
                "zone servers must share a PostgreSQL store (store = \"postgres://...\")".into(),
            );
        }
        if !config.record.as_os_str().is_empty() {
            return Err("recording a zone server is not supported yet".into());
        }
        Ok(Some(ZoneSetup { map, me, key }))
    }

    /// This server's zone.
    pub fn zone(&self) -> &map::Zone {
        &self.map.zones[self.me]
    }
}
