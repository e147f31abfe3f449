//! The zones file: one world split into rectangles, each simulated by one zone server. Every
//! zone server of a world reads the same file, so all agree on who owns which point; sans
//! I/O apart from [`ZoneMap::load`].
//!
//! ```toml
//! world_size = 1000.0
//! [[zone]]
//! name = "west"
//! rect = [0.0, 0.0, 500.0, 1000.0]   # x0, y0, x1, y1: x0 <= x < x1, y0 <= y < y1
//! address = "127.0.0.1:7001"         # its game listener, as clients reach it
//! websocket = "ws://127.0.0.1:7081/ws" # optional
//! ```
//!
//! The rectangles must not overlap and must cover the whole square world: a point that no
//! zone owned would be a place a player could walk into and vanish.

use std::path::Path;

use components::WorldBounds;
use serde::Deserialize;

/// One zone of the world.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    /// Its name (what `--zone` selects, and what a ticket names).
    pub name: String,
    /// `[x0, y0, x1, y1]`: the zone owns `x0 <= x < x1` and `y0 <= y < y1`.
    pub rect: [f32; 4],
    /// Its game listener as clients reach it (`HOST:PORT`).
    pub address: String,
    /// Its WebSocket URL as browsers reach it, if it serves one.
    #[serde(default)]
    pub websocket: String,
}

impl Zone {
    /// Whether the zone owns `point`.
    pub fn contains(&self, [x, y]: [f32; 2]) -> bool {
        let [x0, y0, x1, y1] = self.rect;
        x >= x0 && x < x1 && y >= y0 && y < y1
    }

    /// `point` wrapped into the zone (a non-player entity that walks out of its zone comes
    /// back in at the opposite edge, as the world wraps at its own edges).
    pub fn wrap(&self, [x, y]: [f32; 2]) -> [f32; 2] {
        let [x0, y0, x1, y1] = self.rect;
        [wrap_into(x, x0, x1), wrap_into(y, y0, y1)]
    }

    /// How far `point` (inside the zone) is from the zone's nearest edge.
    pub fn distance_to_edge(&self, [x, y]: [f32; 2]) -> f32 {
        let [x0, y0, x1, y1] = self.rect;
        (x - x0).min(x1 - x).min(y - y0).min(y1 - y)
    }
}

/// `ws://HOST:PORT/path` -> `http://HOST:PORT` (`wss` -> `https`); `None` for anything else.
fn page_origin(websocket: &str) -> Option<String> {
    let (scheme, rest) = if let Some(rest) = websocket.strip_prefix("ws://") {
        ("http", rest)
    } else {
        ("https", websocket.strip_prefix("wss://")?)
    };
    let authority = rest.split('/').next().filter(|a| !a.is_empty())?;
    Some(format!("{scheme}://{authority}"))
}

/// `value` wrapped into `[low, high)`: the world's own wrap, on the zone's span.
fn wrap_into(value: f32, low: f32, high: f32) -> f32 {
    low + WorldBounds { size: high - low }.wrap(value - low)
}

/// The file's contents.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ZonesFile {
    world_size: f32,
    zone: Vec<Zone>,
}

/// Every zone of one world.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneMap {
    /// Side of the square world (must equal every zone server's `world_size`).
    pub world_size: f32,
    /// The zones, in the file's order (a zone's index is its id on the wire of tickets).
    pub zones: Vec<Zone>,
}

/// Why a zones file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("zones file {path}: {reason}")]
pub struct ZoneMapError {
    path: String,
    reason: String,
}

impl ZoneMap {
    /// Reads and checks the zones file at `path`.
    pub fn load(path: &Path) -> Result<ZoneMap, ZoneMapError> {
        let fail = |reason: String| ZoneMapError {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        ZoneMap::parse(&text).map_err(fail)
    }

    /// Parses and checks a zones file's text.
    pub fn parse(text: &str) -> Result<ZoneMap, String> {
        let file: ZonesFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let map = ZoneMap {
            world_size: file.world_size,
            zones: file.zone,
        };
        map.check()?;
        Ok(map)
    }

    fn check(&self) -> Result<(), String> {
        if !(self.world_size > 0.0 && self.world_size.is_finite()) {
            return Err("world_size must be a positive number".into());
        }
        if self.zones.is_empty() {
            return Err("no [[zone]]".into());
        }
        let mut area = 0.0f64;
        for (i, zone) in self.zones.iter().enumerate() {
            let [x0, y0, x1, y1] = zone.rect;
            if zone.name.is_empty() {
                return Err(format!("zone {i} has no name"));
            }
            if self.zones[..i].iter().any(|z| z.name == zone.name) {
                return Err(format!("zone {:?} is named twice", zone.name));
            }
            if !(x0 < x1 && y0 < y1) || x0 < 0.0 || y0 < 0.0 {
                return Err(format!(
                    "zone {:?}: rect must be [x0, y0, x1, y1] with x0 < x1, y0 < y1, from 0",
                    zone.name
                ));
            }
            if x1 > self.world_size || y1 > self.world_size {
                return Err(format!("zone {:?} reaches beyond world_size", zone.name));
            }
            if zone.address.parse::<std::net::SocketAddr>().is_err() && !zone.address.contains(':')
            {
                return Err(format!("zone {:?}: address must be HOST:PORT", zone.name));
            }
            for other in &self.zones[..i] {
                let [a0, b0, a1, b1] = other.rect;
                if x0 < a1 && a0 < x1 && y0 < b1 && b0 < y1 {
                    return Err(format!(
                        "zones {:?} and {:?} overlap",
                        other.name, zone.name
                    ));
                }
            }
            area += f64::from(x1 - x0) * f64::from(y1 - y0);
        }
        // Disjoint rectangles inside the world cover it exactly when their areas add up.
        let world = f64::from(self.world_size) * f64::from(self.world_size);
        if (area - world).abs() > world * 1e-9 {
            return Err(format!(
                "the zones cover {area} of the world's {world} square units: every point must belong to a zone"
            ));
        }
        Ok(())
    }

    /// The zone named `name` and its index.
    pub fn find(&self, name: &str) -> Option<(usize, &Zone)> {
        self.zones.iter().enumerate().find(|(_, z)| z.name == name)
    }

    /// The origins (`http://HOST:PORT`) of the pages the zones' web listeners serve, from
    /// their WebSocket URLs: a page of one zone opens a session on another after a Transfer.
    pub fn page_origins(&self) -> Vec<String> {
        self.zones
            .iter()
            .filter_map(|zone| page_origin(&zone.websocket))
            .collect()
    }

    /// The index of the zone owning `point` (a point of the world; `None` only outside it).
    pub fn zone_at(&self, point: [f32; 2]) -> Option<usize> {
        self.zones.iter().position(|z| z.contains(point))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE: &str = r#"
        world_size = 900.0
        [[zone]]
        name = "a"
        rect = [0.0, 0.0, 300.0, 900.0]
        address = "127.0.0.1:7001"
        [[zone]]
        name = "b"
        rect = [300.0, 0.0, 600.0, 900.0]
        address = "127.0.0.1:7002"
        websocket = "ws://127.0.0.1:7082/ws"
        [[zone]]
        name = "c"
        rect = [600.0, 0.0, 900.0, 900.0]
        address = "127.0.0.1:7003"
    "#;

    #[test]
    fn every_point_of_the_world_has_exactly_its_zone() {
        let map = ZoneMap::parse(THREE).unwrap();
        assert_eq!(map.zone_at([0.0, 0.0]), Some(0));
        assert_eq!(map.zone_at([299.99, 10.0]), Some(0));
        assert_eq!(map.zone_at([300.0, 10.0]), Some(1), "x1 is exclusive");
        assert_eq!(map.zone_at([899.9, 899.9]), Some(2));
        assert_eq!(map.zone_at([900.0, 0.0]), None, "outside the world");
        assert_eq!(map.find("b").unwrap().1.websocket, "ws://127.0.0.1:7082/ws");
        assert_eq!(map.page_origins(), vec!["http://127.0.0.1:7082".to_owned()]);
        assert_eq!(
            page_origin("wss://game.example/ws").as_deref(),
            Some("https://game.example")
        );
        assert_eq!(page_origin(""), None);
    }

    #[test]
    fn overlapping_gapped_or_unnamed_zones_are_refused_with_the_reason() {
        let overlap = THREE.replace("[300.0, 0.0, 600.0", "[299.0, 0.0, 600.0");
        assert!(ZoneMap::parse(&overlap).unwrap_err().contains("overlap"));
        let gap = THREE.replace("[600.0, 0.0, 900.0, 900.0]", "[600.0, 0.0, 900.0, 800.0]");
        assert!(ZoneMap::parse(&gap).unwrap_err().contains("every point"));
        let twice = THREE.replace("name = \"c\"", "name = \"a\"");
        assert!(ZoneMap::parse(&twice).unwrap_err().contains("named twice"));
        let beyond = THREE.replace("world_size = 900.0", "world_size = 800.0");
        assert!(ZoneMap::parse(&beyond).unwrap_err().contains("beyond"));
        assert!(ZoneMap::parse("world_size = 9.0").is_err(), "no zones");
    }

    #[test]
    fn wrapping_keeps_a_point_inside_its_zone() {
        let map = ZoneMap::parse(THREE).unwrap();
        let b = &map.zones[1];
        assert_eq!(b.wrap([610.0, 5.0]), [310.0, 5.0]);
        assert_eq!(b.wrap([295.0, -5.0]), [595.0, 895.0]);
        for x in [-1000.0, 299.999_99, 600.0, 1234.5] {
            assert!(b.contains(b.wrap([x, 450.0])), "{x}");
        }
        assert_eq!(b.distance_to_edge([310.0, 450.0]), 10.0);
    }
}
