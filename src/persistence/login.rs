//! Logging a player in, for the connection that sent a valid Hello: the failed-login
//! throttle, one login per name, and the store's answer (a new name is claimed with its
//! secret, a known one must present it). Runs on the network side, off the tick: the join
//! that follows carries the saved state.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::login_throttle::{LoginThrottle, Throttled};
use super::online::{NameGuard, OnlineNames};
use super::store::{LoginError, RedeemError, SavedPlayer};
use super::writer::{LoginKind, LoginRequest, PersistenceHandle};
use crate::protocol::{CloseReason, Hello, Refusal};
use crate::stats::Stats;
use crate::zones::ticket::{TicketKey, TicketRefusal, now_ms};

/// How long a login may wait for the store.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What a login needs: who is online, the failed-login throttle, and the persistence thread.
pub(crate) struct Logins {
    online: OnlineNames,
    throttle: LoginThrottle,
    persistence: PersistenceHandle,
    stats: Arc<Stats>,
    /// This zone's name and the world's ticket key, on a zone server (tickets are refused
    /// otherwise).
    zone: Option<(String, TicketKey)>,
}

/// A logged-in player: its name, the claim on it, and its saved state.
pub(crate) struct LoggedIn {
    /// The player's name, as it logged in.
    pub name: String,
    /// One login per name: held until the player's final record is saved.
    pub name_claim: NameGuard,
    /// What the store had for the player.
    pub saved: SavedPlayer,
    /// The seq the player's frames acknowledge until its first input here (a handed-off
    /// player's last seq on its previous zone; 0 for a login).
    pub ack_seq: u32,
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
            zone: None,
        }
    }

    /// Admits players handed off to the zone named with tickets signed by its key (`None`:
    /// not a zone server; tickets are refused).
    pub(crate) fn for_zone_if(mut self, zone: Option<(String, TicketKey)>) -> Self {
        self.zone = zone;
        self
    }

    /// Admits a player handed off by another zone with `ticket`: its signature, zone and
    /// expiry are checked here; the store consumes its nonce (single use) and holds the
    /// player online here, in one conditional update. Each refusal has its own reason.
    pub(crate) async fn resume(&self, ticket: &[u8]) -> Result<LoggedIn, Refusal> {
        let Some((zone, key)) = &self.zone else {
            return Err(refusal(
                CloseReason::TicketWrongZone,
                "this server is not a zone server".into(),
            ));
        };
        let ticket = key
            .check(ticket, zone, now_ms())
            .map_err(|why| refusal(why.close_reason(), why.to_string()))?;
        let Some(name_claim) = self.online.claim(&ticket.name) else {
            return Err(refusal(
                CloseReason::AlreadyOnline,
                format!("{} is logged in here already", ticket.name),
            ));
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = LoginRequest {
            name: ticket.name.clone(),
            secret: String::new(),
            kind: LoginKind::Redeem {
                account: ticket.account,
                nonce: ticket.nonce,
                reply,
            },
        };
        let saved = self
            .ask_store(request, answer, |error| match error {
                RedeemError::Used => {
                    refusal(CloseReason::TicketUsed, TicketRefusal::Used.to_string())
                }
                RedeemError::OnlineElsewhere(zone) => refusal(
                    CloseReason::AlreadyOnline,
                    format!("{} is online on {zone}", ticket.name),
                ),
                error => store_failed(error),
            })
            .await?;
        Stats::bump(&self.stats.handoffs_in);
        Ok(LoggedIn {
            name: ticket.name,
            name_claim,
            saved,
            ack_seq: ticket.ack_seq,
        })
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
                    .ask_store_for(&hello, LoginKind::Verify(reply), answer)
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
                self.ask_store_for(&hello, LoginKind::LogIn(reply), answer)
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
                    ack_seq: 0,
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

    /// A login request of `hello`'s player, asked of the store (see [`Logins::ask_store`]).
    async fn ask_store_for<T>(
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
        self.ask_store(request, answer, |error| match error {
            LoginError::BadCredentials => bad_credentials(),
            LoginError::OnlineElsewhere(zone) => refusal(
                CloseReason::AlreadyOnline,
                format!("{} is online on {zone}", hello.name),
            ),
            LoginError::Store(error) => store_failed(error),
        })
        .await
    }

    /// Sends `request` to the persistence thread and waits (bounded) for its `answer`; the
    /// store's refusals become the client's through `refused`.
    async fn ask_store<T, E>(
        &self,
        request: LoginRequest,
        answer: tokio::sync::oneshot::Receiver<Result<T, E>>,
        refused: impl FnOnce(E) -> Refusal,
    ) -> Result<T, Refusal> {
        if !self.persistence.login(request) {
            return Err(refusal(
                CloseReason::InternalError,
                "the store is not taking logins".into(),
            ));
        }
        match tokio::time::timeout(LOGIN_TIMEOUT, answer).await {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(error))) => Err(refused(error)),
            _ => Err(refusal(
                CloseReason::InternalError,
                format!("the store did not answer within {LOGIN_TIMEOUT:?}"),
            )),
        }
    }
}

/// The store failed (the client is told so, with the reason).
fn store_failed(error: impl std::fmt::Display) -> Refusal {
    refusal(
        CloseReason::InternalError,
        format!("the store failed: {error}"),
    )
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
