//! Which names are online: a name can be logged in once at a time. The policy for a second
//! login of an online name is to refuse it (`Reject{AlreadyOnline}`): the first session
//! keeps playing, and the name frees once the first session has left *and* its final state
//! is saved.
//!
//! Claims happen on network threads; releases happen wherever the last owner of the
//! [`NameGuard`] drops it (the persistence thread after the final save, or a connection
//! task whose login failed). A release never takes the lock: it is sent on a channel that
//! the next claim drains, so no thread that releases a name (least of all the tick) waits
//! for one that claims.

use std::sync::Mutex;

use ahash::AHashSet;
use crossbeam_channel::{Receiver, Sender, unbounded};

/// The set of online names.
pub(crate) struct OnlineNames {
    names: Mutex<AHashSet<String>>,
    released: Receiver<String>,
    release: Sender<String>,
}

/// Holds a name online until dropped.
pub(crate) struct NameGuard {
    name: Option<String>,
    release: Sender<String>,
}

impl Default for OnlineNames {
    fn default() -> Self {
        let (release, released) = unbounded();
        Self {
            names: Mutex::default(),
            released,
            release,
        }
    }
}

impl OnlineNames {
    /// Claims `name` (whatever its case); `None` if it is online.
    pub(crate) fn claim(&self, name: &str) -> Option<NameGuard> {
        let key = crate::protocol::name_key(name);
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        for released in self.released.try_iter() {
            names.remove(&released);
        }
        if !names.insert(key.clone()) {
            return None;
        }
        Some(NameGuard {
            name: Some(key),
            release: self.release.clone(),
        })
    }
}

impl Drop for NameGuard {
    fn drop(&mut self) {
        if let Some(name) = self.name.take() {
            let _ = self.release.send(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_name_is_online_once_until_its_guard_drops() {
        let online = Arc::new(OnlineNames::default());
        let first = online.claim("ann").expect("free");
        assert!(online.claim("ann").is_none(), "a second login is refused");
        let _bob = online.claim("bob").expect("another name is free");
        drop(first);
        assert!(online.claim("ann").is_some(), "free again once released");
    }
}
