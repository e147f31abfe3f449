//! Player secrets: only a salted hash is stored, and checks run in constant time.
//!
//! Secrets are expected to be high-entropy tokens a client generates once (and keeps), not
//! human passwords: a fast salted hash (SHA-256 over a per-player random salt) is then as
//! good as a slow one, and a login storm of thousands of players after a restart costs
//! microseconds each on the persistence thread instead of tens of milliseconds. A server
//! that accepts human passwords should put a slow KDF here.

use sha2::{Digest, Sha256};

/// Bytes of random salt per player.
pub(crate) const SALT_BYTES: usize = 16;

/// A stored credential: the salt and `SHA-256(salt || secret)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// Random per player.
    pub salt: [u8; SALT_BYTES],
    /// The salted hash.
    pub hash: [u8; 32],
}

impl Credential {
    /// A new credential for `secret` with a fresh random salt.
    pub fn new(secret: &str) -> std::io::Result<Credential> {
        let mut salt = [0u8; SALT_BYTES];
        getrandom::fill(&mut salt).map_err(std::io::Error::other)?;
        Ok(Credential {
            salt,
            hash: salted_hash(&salt, secret),
        })
    }

    /// A credential as a database stored it. A damaged one (wrong lengths) becomes zeros,
    /// which no secret matches.
    pub fn from_stored(salt: &[u8], hash: &[u8]) -> Credential {
        Credential {
            salt: salt.try_into().unwrap_or([0; SALT_BYTES]),
            hash: hash.try_into().unwrap_or([0; 32]),
        }
    }

    /// Whether `secret` is the one this credential was made from, in time independent of
    /// where the hashes differ.
    pub fn matches(&self, secret: &str) -> bool {
        let candidate = salted_hash(&self.salt, secret);
        candidate
            .iter()
            .zip(self.hash.iter())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
    }
}

fn salted_hash(salt: &[u8], secret: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(secret.as_bytes());
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_secret_matches_and_others_do_not() {
        let credential = Credential::new("correct horse battery").unwrap();
        assert!(credential.matches("correct horse battery"));
        assert!(!credential.matches("correct horse batterz"));
        assert!(!credential.matches(""));
    }

    #[test]
    fn salts_differ_so_equal_secrets_store_different_hashes() {
        let a = Credential::new("same secret").unwrap();
        let b = Credential::new("same secret").unwrap();
        assert_ne!(a.salt, b.salt);
        assert_ne!(a.hash, b.hash);
        assert!(a.matches("same secret") && b.matches("same secret"));
    }
}
