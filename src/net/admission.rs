//! Separate budgets for players and for sockets that have not logged in yet.
//!
//! - **Pending handshakes**: a socket takes a place in the pending-handshake pool
//!   (`max_pending_handshakes`) and one of its address's handshake places
//!   (`max_handshakes_per_addr`) when it is accepted, and gives both back when its login
//!   ends (joined, refused, timed out). Beyond either: `Reject{HandshakesFull}` or
//!   `Reject{AddressLimit}` at once.
//! - **Players**: a player slot (`max_players`, `Reject{ServerFull}`) and one of its
//!   address's player places (`max_players_per_addr`, `Reject{AddressLimit}`) are taken only
//!   after a valid Hello, and held until the tick has despawned the player.
//!
//! So sockets that never send Hello never hold a player slot: a flood of them is refused
//! from its own pool, and an address cannot take more than its share of either.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use ahash::AHashMap;
use tokio::sync::OwnedSemaphorePermit;

use crate::stats::Stats;

/// The source a connection is counted under: its IPv4 address (an IPv4-mapped IPv6 one
/// included), or the /64 prefix of its IPv6 address (one subscriber usually holds a whole
/// /64, so counting single IPv6 addresses would cap nothing).
pub(crate) fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(std::net::Ipv6Addr::from(prefix))
            }
        },
    }
}

/// Counts places held per source address, each up to a cap.
pub(crate) struct PerAddress {
    cap: u32,
    held: Mutex<AHashMap<IpAddr, u32>>,
}

/// One place of one address; given back on drop.
pub(crate) struct AddressPlace {
    book: Arc<PerAddress>,
    address: IpAddr,
}

impl PerAddress {
    /// At most `cap` places per address.
    pub(crate) fn new(cap: u32) -> Arc<Self> {
        Arc::new(Self {
            cap,
            held: Mutex::new(AHashMap::new()),
        })
    }

    /// A place for `address`, unless it holds `cap` already.
    pub(crate) fn take(self: &Arc<Self>, address: IpAddr) -> Option<AddressPlace> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(address).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(AddressPlace {
            book: self.clone(),
            address,
        })
    }

    /// Places `address` holds now.
    #[cfg(test)]
    pub(crate) fn held(&self, address: IpAddr) -> u32 {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.get(&address).copied().unwrap_or(0)
    }
}

impl Drop for AddressPlace {
    fn drop(&mut self) {
        let mut held = self.book.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.address);
            }
        }
    }
}

/// A socket's place among the pending handshakes (pool and address), until it logs in;
/// counted in [`Stats::handshakes_pending`] while it exists.
pub(crate) struct HandshakePlace {
    _pool: OwnedSemaphorePermit,
    _address: AddressPlace,
    stats: Arc<Stats>,
}

impl HandshakePlace {
    /// The place made of a pool permit and an address place.
    pub(crate) fn new(
        pool: OwnedSemaphorePermit,
        address: AddressPlace,
        stats: Arc<Stats>,
    ) -> Self {
        Stats::bump(&stats.handshakes_pending);
        Self {
            _pool: pool,
            _address: address,
            stats,
        }
    }
}

impl Drop for HandshakePlace {
    fn drop(&mut self) {
        self.stats
            .handshakes_pending
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A player's place: a slot under `max_players` and its address's place. It travels with the
/// connection's leave, so it is given back only once the tick has despawned the player.
pub(crate) struct PlayerSlot {
    /// Its permit under `max_players`.
    pub _slot: OwnedSemaphorePermit,
    /// Its address's place.
    pub _address: AddressPlace,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_cap_and_places_come_back_on_drop() {
        let book = PerAddress::new(2);
        let a = IpAddr::from([127, 0, 0, 2]);
        let b = IpAddr::from([127, 0, 0, 3]);
        let first = book.take(a).unwrap();
        let _second = book.take(a).unwrap();
        assert!(book.take(a).is_none());
        assert!(book.take(b).is_some(), "another address has its own places");
        drop(first);
        assert_eq!(book.held(a), 1);
        assert!(book.take(a).is_some());
    }

    #[test]
    fn ipv6_sources_are_counted_per_64_prefix() {
        let one: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let next: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source(one), source(other));
        assert_ne!(source(one), source(next));
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap();
        assert_eq!(source(mapped), IpAddr::from([10, 0, 0, 7]));
        assert_eq!(
            source(IpAddr::from([10, 0, 0, 7])),
            IpAddr::from([10, 0, 0, 7])
        );
    }
}
