//! The store behind persistence: a small trait, so a server database (PostgreSQL) can be
//! added later without touching the tick or the network side. The persistence thread is its
//! only user; nothing here is called from the tick.

use super::credentials::Credential;

/// A player's row id in the store.
pub type AccountId = i64;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused (I/O, corruption, locked, ...).
    #[error("{0}")]
    Database(String),
}

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The name is claimed with another secret.
    #[error("wrong secret for this name")]
    BadCredentials,
    /// Another server sharing the store holds the player online (`zone` names it).
    #[error("online on {0}")]
    OnlineElsewhere(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a handed-off player could not be admitted with its ticket's nonce.
#[derive(Debug, thiserror::Error)]
pub enum RedeemError {
    /// The store holds no pending handoff with this nonce for the account: the ticket was
    /// used already, or the player has logged in since (which cancels the handoff).
    #[error("no pending handoff with this ticket (used already, or cancelled)")]
    Used,
    /// Another server holds the player online.
    #[error("online on {0}")]
    OnlineElsewhere(String),
    /// The store is not shared between servers (SQLite): there is nothing to redeem.
    #[error("this server's store is not shared with other zones")]
    NotShared,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A player this server stops holding online, written in the same transaction as its final
/// record (see [`Store::save_releasing`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    /// The account.
    pub account: AccountId,
    /// Set when the player is handed off to another zone rather than leaving: the single-use
    /// nonce of its ticket, which that zone redeems with [`Store::redeem`].
    pub handoff: Option<u64>,
}

/// What the store knows about a player who logs in.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedPlayer {
    /// The account.
    pub account: AccountId,
    /// Where the player was when last saved (`None`: a new player).
    pub position: Option<[f32; 2]>,
    /// Saved persistent components: (registered name, postcard bytes).
    pub components: Vec<(String, Vec<u8>)>,
}

/// One player's state to write: the position, and any persistent components that changed.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayerRecord {
    /// The account.
    pub account: AccountId,
    /// Position, if it changed (always, in a leaving player's final record).
    pub position: Option<[f32; 2]>,
    /// Changed persistent components: (index into the registered names, postcard bytes).
    pub components: Vec<(u16, Vec<u8>)>,
}

impl PlayerRecord {
    /// Takes in a later record of the same player: its position (if it has one) and its
    /// components replace this one's.
    pub fn absorb(&mut self, later: PlayerRecord) {
        if later.position.is_some() {
            self.position = later.position;
        }
        for (kind, bytes) in later.components {
            match self.components.iter_mut().find(|(k, _)| *k == kind) {
                Some(slot) => slot.1 = bytes,
                None => self.components.push((kind, bytes)),
            }
        }
    }
}

/// Where players are kept.
pub trait Store: Send + 'static {
    /// Logs `name` in with `secret`: the first login claims the name (only a salted hash of
    /// the secret is stored); later ones must present the same secret.
    fn login(&mut self, name: &str, secret: &str) -> Result<SavedPlayer, LoginError>;

    /// Whether `name` is claimed with `secret` (nothing is claimed, loaded or written).
    fn verify(&mut self, name: &str, secret: &str) -> Result<bool, StoreError>;

    /// Writes `records` in one transaction (component kinds are indices into `kinds`), and
    /// in the same transaction stops holding `releases` online (and records their handoff
    /// nonces). A store used by one server only (SQLite) has no online holds to release: the
    /// server's own `OnlineNames` is the whole truth there.
    fn save_releasing(
        &mut self,
        records: &[PlayerRecord],
        kinds: &[String],
        releases: &[Release],
    ) -> Result<(), StoreError>;

    /// [`Store::save_releasing`] with nothing to release.
    fn save(&mut self, records: &[PlayerRecord], kinds: &[String]) -> Result<(), StoreError> {
        self.save_releasing(records, kinds, &[])
    }

    /// Admits a player handed off to this server: consumes the pending handoff `nonce` of
    /// `account` (once: a second redeem fails with [`RedeemError::Used`]), holds the player
    /// online here, and loads it. Only a store shared by several servers can do this.
    fn redeem(&mut self, account: AccountId, nonce: u64) -> Result<SavedPlayer, RedeemError> {
        let _ = (account, nonce);
        Err(RedeemError::NotShared)
    }

    /// Extends this server's online holds (a shared store's holds are leases that end
    /// unless renewed, so a killed server's players are free again soon). Called by the
    /// persistence thread every few milliseconds; the store decides when it is due.
    fn renew_holds(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Whether this server's holds may lapse soon: its renewals have failed for most of a
    /// lease, so other servers may admit its players before long (the server then closes
    /// them rather than let them be online twice). Never for a store without holds.
    fn holds_at_risk(&self) -> bool {
        false
    }
}

/// Checks `secret` against a stored credential, or makes one for a new name.
pub fn check_or_claim(
    stored: Option<Credential>,
    secret: &str,
) -> Result<Option<Credential>, LoginError> {
    match stored {
        Some(credential) if credential.matches(secret) => Ok(None),
        Some(_) => Err(LoginError::BadCredentials),
        None => Credential::new(secret)
            .map(Some)
            .map_err(|e| LoginError::Store(StoreError::Database(e.to_string()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_record_replaces_position_and_components_but_keeps_the_rest() {
        let mut earlier = PlayerRecord {
            account: 1,
            position: Some([1.0, 1.0]),
            components: vec![(0, vec![1]), (1, vec![2])],
        };
        earlier.absorb(PlayerRecord {
            account: 1,
            position: None,
            components: vec![(1, vec![9]), (2, vec![3])],
        });
        assert_eq!(earlier.position, Some([1.0, 1.0]), "no position: kept");
        assert_eq!(
            earlier.components,
            vec![(0, vec![1]), (1, vec![9]), (2, vec![3])]
        );
        earlier.absorb(PlayerRecord {
            account: 1,
            position: Some([5.0, 6.0]),
            components: Vec::new(),
        });
        assert_eq!(earlier.position, Some([5.0, 6.0]));
    }
}
