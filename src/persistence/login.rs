//! Logging a player in, for the connection that sent a valid Hello: the failed-login
//! throttle, one login per name, and the store's answer (a new name is claimed with its
//! secret, a known one must present it). Runs on the network side, off the tick: the join
//! that follows carries the saved state.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::login_throttle::{LoginThrottle, Throttled};
use super::online::{NameGuard, OnlineNames};
use super::store::{LoginError, SavedPlayer};
use super::writer::{LoginKind, LoginRequest, PersistenceHandle};
use crate::protocol::{CloseReason, Hello, Refusal};
use crate::stats::Stats;

/// How long a login may wait for the store.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What a login needs: who is online, the failed-login throttle, and the persistence thread.
pub(crate) struct Logins {
    online: OnlineNames,
    throttle: LoginThrottle,
    persistence: PersistenceHandle,
    stats: Arc<Stats>,
}

/// A logged-in player: its name, the claim on it, and its saved state.
pub(crate) struct LoggedIn {
    /// The player's name, as it logged in.
    pub name: String,
    /// One login per name: held until the player's final record is saved.
    pub name_claim: NameGuard,
    /// What the store had for the player.
    pub saved: SavedPlayer,
}

impl Logins {
    /// Logins answered by `persistence`, throttled by `throttle`.
    pub(crate) fn new(
        throttle: LoginThrottle,
        persistence: PersistenceHandle,
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            online: OnlineNames::default(),
            throttle,
            persistence,
            stats,
        }
    }

    /// Logs `hello`'s player in from `address`: refused at once if its name or address
    /// failed too often lately (`TooManyFailedLogins`, before any check), then claims the
    /// name and asks the store. A name that is online is answered `AlreadyOnline` only to
    /// the right secret (anyone else gets `BadCredentials`, and learns nothing about who is
    /// online).
    pub(crate) async fn log_in(&self, hello: Hello, address: IpAddr) -> Result<LoggedIn, Refusal> {
        if let Err(throttled) = self.throttle.check(&hello.name, address, Instant::now()) {
            let whose = match throttled {
                Throttled::Name => "for this name",
                Throttled::Address => "from this address",
            };
            return Err(refusal(
                CloseReason::TooManyFailedLogins,
                format!("too many failed logins {whose}; retry later"),
            ));
        }
        let answer = match self.online.claim(&hello.name) {
            None => {
                let (reply, answer) = tokio::sync::oneshot::channel();
                match self
                    .ask_store(&hello, LoginKind::Verify(reply), answer)
                    .await
                {
                    Ok(true) => Err(refusal(
                        CloseReason::AlreadyOnline,
                        format!("{} is logged in already", hello.name),
                    )),
                    Ok(false) => Err(bad_credentials()),
                    Err(refused) => Err(refused),
                }
            }
            Some(name_claim) => {
                let (reply, answer) = tokio::sync::oneshot::channel();
                self.ask_store(&hello, LoginKind::LogIn(reply), answer)
                    .await
                    .map(|saved| (name_claim, saved))
            }
        };
        match answer {
            Ok((name_claim, saved)) => {
                Stats::bump(&self.stats.logins);
                self.throttle.succeeded(&hello.name, address);
                Ok(LoggedIn {
                    name: hello.name,
                    name_claim,
                    saved,
                })
            }
            Err(refused) => {
                if refused.reason == CloseReason::BadCredentials {
                    self.throttle.failed(&hello.name, address, Instant::now());
                }
                Err(refused)
            }
        }
    }

    /// Sends a login request to the persistence thread and waits (bounded) for its answer.
    async fn ask_store<T>(
        &self,
        hello: &Hello,
        kind: LoginKind,
        answer: tokio::sync::oneshot::Receiver<Result<T, LoginError>>,
    ) -> Result<T, Refusal> {
        let request = LoginRequest {
            name: hello.name.clone(),
            secret: hello.secret.clone(),
            kind,
        };
        if !self.persistence.login(request) {
            return Err(refusal(
                CloseReason::InternalError,
                "the store is not taking logins".into(),
            ));
        }
        match tokio::time::timeout(LOGIN_TIMEOUT, answer).await {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(LoginError::BadCredentials))) => Err(bad_credentials()),
            Ok(Ok(Err(LoginError::Store(error)))) => Err(refusal(
                CloseReason::InternalError,
                format!("the store failed: {error}"),
            )),
            _ => Err(refusal(
                CloseReason::InternalError,
                format!("the store did not answer within {LOGIN_TIMEOUT:?}"),
            )),
        }
    }
}

fn refusal(reason: CloseReason, detail: String) -> Refusal {
    Refusal { reason, detail }
}

fn bad_credentials() -> Refusal {
    refusal(
        CloseReason::BadCredentials,
        "wrong secret for this name".into(),
    )
}
