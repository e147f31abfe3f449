//! Handoff tickets: what a zone server gives a player who walks into another zone, and what
//! that zone admits the player with. Sans I/O: signing and checking only.
//!
//! A ticket is the postcard bytes of a [`Ticket`] followed by their HMAC-SHA256 under the
//! secret every zone server of the world shares. The signature makes it unforgeable; the
//! expiry makes it short-lived; single use is the store's part (the ticket's `nonce` is
//! recorded with the player's saved state by the zone that issued it and consumed by the
//! zone that admits it, in one conditional update).

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::protocol::CloseReason;

/// Bytes of the signature at the end of a ticket.
const SIGNATURE_BYTES: usize = 32;

/// Shortest accepted shared secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// What a ticket says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// The zone that must admit it.
    pub to_zone: String,
    /// The zone that issued it.
    pub from_zone: String,
    /// The player's account in the shared store.
    pub account: i64,
    /// The player's name.
    pub name: String,
    /// The last input or action seq the issuing zone processed: the destination acknowledges
    /// it until the client's next one, so the client's prediction carries on.
    pub ack_seq: u32,
    /// Single-use nonce, as recorded in the store.
    pub nonce: u64,
    /// Unix time in milliseconds after which the ticket is refused.
    pub expires_ms: u64,
}

/// Why a ticket was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TicketRefusal {
    /// Not signed with this world's secret (forged or damaged).
    #[error("ticket not signed by this world")]
    Invalid,
    /// Past its expiry.
    #[error("ticket expired")]
    Expired,
    /// Used already, or cancelled by a login since.
    #[error("ticket used already")]
    Used,
    /// For another zone.
    #[error("ticket for another zone")]
    WrongZone,
    /// The player is online on another server.
    #[error("player online elsewhere")]
    OnlineElsewhere,
}

impl TicketRefusal {
    /// The close reason (what refusals are counted under:
    /// `throng_connections_rejected_total{reason}`) the client receives.
    pub fn close_reason(self) -> CloseReason {
        match self {
            TicketRefusal::Invalid => CloseReason::TicketInvalid,
            TicketRefusal::Expired => CloseReason::TicketExpired,
            TicketRefusal::Used => CloseReason::TicketUsed,
            TicketRefusal::WrongZone => CloseReason::TicketWrongZone,
            TicketRefusal::OnlineElsewhere => CloseReason::AlreadyOnline,
        }
    }
}

/// Signs and checks tickets with the world's shared secret.
#[derive(Clone)]
pub struct TicketKey(Hmac<Sha256>);

impl std::fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TicketKey(..)")
    }
}

impl TicketKey {
    /// The key for `secret` (at least [`MIN_SECRET_BYTES`]).
    pub fn new(secret: &[u8]) -> Result<TicketKey, String> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "the zone secret must be at least {MIN_SECRET_BYTES} bytes"
            ));
        }
        Hmac::new_from_slice(secret)
            .map(TicketKey)
            .map_err(|e| e.to_string())
    }

    /// The signed bytes of `ticket`.
    pub fn sign(&self, ticket: &Ticket) -> Vec<u8> {
        let mut bytes = postcard::to_stdvec(ticket).expect("a ticket always encodes");
        let mut mac = self.0.clone();
        mac.update(&bytes);
        bytes.extend_from_slice(&mac.finalize().into_bytes());
        bytes
    }

    /// The ticket in `bytes` if it is signed with this key, for `zone`, and not expired at
    /// `now_ms`. (Whether it was used is the store's to say.)
    pub fn check(&self, bytes: &[u8], zone: &str, now_ms: u64) -> Result<Ticket, TicketRefusal> {
        let Some(split) = bytes.len().checked_sub(SIGNATURE_BYTES) else {
            return Err(TicketRefusal::Invalid);
        };
        let (body, signature) = bytes.split_at(split);
        let mut mac = self.0.clone();
        mac.update(body);
        // Constant-time comparison.
        mac.verify_slice(signature)
            .map_err(|_| TicketRefusal::Invalid)?;
        let ticket: Ticket = postcard::from_bytes(body).map_err(|_| TicketRefusal::Invalid)?;
        if ticket.to_zone != zone {
            return Err(TicketRefusal::WrongZone);
        }
        if now_ms > ticket.expires_ms {
            return Err(TicketRefusal::Expired);
        }
        Ok(ticket)
    }
}

/// Unix time in milliseconds (what a ticket's expiry is compared with).
pub use crate::persistence::unix_ms as now_ms;

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> Ticket {
        Ticket {
            to_zone: "east".into(),
            from_zone: "west".into(),
            account: 42,
            name: "ann".into(),
            ack_seq: 17,
            nonce: 0xdead_beef,
            expires_ms: 10_000,
        }
    }

    #[test]
    fn a_signed_ticket_checks_for_its_zone_until_it_expires() {
        let key = TicketKey::new(b"0123456789abcdef").unwrap();
        let bytes = key.sign(&ticket());
        assert_eq!(key.check(&bytes, "east", 9_999), Ok(ticket()));
        assert_eq!(key.check(&bytes, "east", 10_000), Ok(ticket()));
        assert_eq!(
            key.check(&bytes, "east", 10_001),
            Err(TicketRefusal::Expired)
        );
        assert_eq!(key.check(&bytes, "west", 0), Err(TicketRefusal::WrongZone));
    }

    #[test]
    fn a_forged_damaged_or_foreign_ticket_is_invalid() {
        let key = TicketKey::new(b"0123456789abcdef").unwrap();
        let other = TicketKey::new(b"another world's secret").unwrap();
        let bytes = key.sign(&ticket());
        assert_eq!(
            other.check(&bytes, "east", 0),
            Err(TicketRefusal::Invalid),
            "signed by another world"
        );
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 1;
            assert_eq!(
                key.check(&flipped, "east", 0),
                Err(TicketRefusal::Invalid),
                "bit {i}"
            );
        }
        assert_eq!(
            key.check(&bytes[..20], "east", 0),
            Err(TicketRefusal::Invalid)
        );
        assert_eq!(key.check(&[], "east", 0), Err(TicketRefusal::Invalid));
        // A forger who rewrites the zone cannot re-sign it.
        let mut forged = ticket();
        forged.account = 1;
        let mut forged_bytes = postcard::to_stdvec(&forged).unwrap();
        forged_bytes.extend_from_slice(&bytes[bytes.len() - SIGNATURE_BYTES..]);
        assert_eq!(
            key.check(&forged_bytes, "east", 0),
            Err(TicketRefusal::Invalid)
        );
    }

    #[test]
    fn a_short_secret_is_refused() {
        assert!(TicketKey::new(b"short").is_err());
    }
}
