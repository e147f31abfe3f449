//! The shared store: PostgreSQL (`--store postgres://user:password@host:port/database`),
//! which several zone servers of one world use at once. Besides what SQLite keeps, each
//! player's row says which server holds it online (`online_zone`, the server's *owner*
//! name: its zone, or `default`), so that one player is never online on two servers, and
//! carries the nonce of a pending handoff ticket (`handoff_nonce`) that the receiving zone
//! redeems once.
//!
//! Durability: the same promise as SQLite's. Every save is one transaction, committed with
//! `synchronous_commit` on (forced for this connection if the database turned it off): a
//! committed save is in PostgreSQL's flushed WAL, so it survives `kill -9` of the server and
//! of PostgreSQL. Batching is what makes that affordable: one transaction per batch, and a
//! batch of 10,000 players is two statements (`UNNEST` over arrays), not 10,000.
//!
//! Online holds are leases: a hold names its server (*owner*: the zone, or `server`, plus
//! a random id per process, so two processes never share one) and lasts `online_lease_s`
//! (default 15 s); the server renews its holds a few times per lease. A server killed with
//! `kill -9` renews nothing, so its players can log in again (anywhere) once its leases
//! end. Writes are fenced by the hold: a server saves only the players it holds, so one that
//! lost its holds (cut off from the database for longer than a lease while its players
//! moved on) cannot overwrite their newer state.
//!
//! The connection is used by the persistence thread only (the sync client runs its own
//! small runtime inside the calls). When it breaks (PostgreSQL restarted, network), the
//! failing call returns a [`StoreError`] (the writer counts it) and the next call connects
//! again; a reconnect does not release anything.

use std::time::Duration;

use postgres::error::SqlState;
use postgres::{Client, NoTls, Row, Statement, Transaction};

use super::credentials::Credential;
use super::db_now_ms;
use super::store::{
    AccountId, LoginError, PlayerRecord, RedeemError, Release, SavedPlayer, Store, StoreError,
    check_or_claim,
};

/// The schema, one step per version; `throng_schema_version.version` is the number of
/// steps applied.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE players (
        id BIGSERIAL PRIMARY KEY,
        name TEXT NOT NULL,
        salt BYTEA NOT NULL,
        secret_hash BYTEA NOT NULL,
        x REAL,
        y REAL,
        saved_at_ms BIGINT,
        -- The owner name of the server holding the player online; NULL: offline.
        online_zone TEXT NULL,
        -- The single-use nonce of a pending handoff ticket (a u64's bits); NULL: none.
        handoff_nonce BIGINT NULL
    );
    -- Names are unique whatever their ASCII case (protocol::name_key; names are ASCII).
    CREATE UNIQUE INDEX players_name_nocase ON players (lower(name));
    -- A restarting server finds the players it held without scanning everyone.
    CREATE INDEX players_online_zone ON players (online_zone) WHERE online_zone IS NOT NULL;
    CREATE TABLE player_components (
        player_id BIGINT NOT NULL REFERENCES players (id),
        kind TEXT NOT NULL,
        bytes BYTEA NOT NULL,
        PRIMARY KEY (player_id, kind)
    );
",
    "
    -- When the hold of online_zone ends unless its server renews it (unix milliseconds).
    ALTER TABLE players ADD COLUMN online_until_ms BIGINT NULL;
",
];

/// How long a hold lasts unless renewed (see the module doc), when not configured.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);

/// The key of the transaction-level advisory lock migrations run under, so that the zone
/// servers of a world starting at once migrate one after the other (the later ones find the
/// schema up to date). The bytes of "throng".
const MIGRATION_LOCK: i64 = 0x7468_726f_6e67;

/// A login whose insert of a new name loses to another server's insert of the same name
/// starts again (and then finds the row). Rows are never deleted, so the second attempt
/// cannot lose the same way; the bound only guards against a bug looping forever.
const LOGIN_ATTEMPTS: usize = 3;

/// How long connecting may take before it fails, unless the URL sets `connect_timeout`:
/// a store that does not answer fails the start (or the call) with the reason rather than
/// hanging the persistence thread.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest a statement waits for a row lock (unless the database or the URL sets
/// `lock_timeout`): the persistence thread serves every login and save of this server, so
/// a row held by a stuck transaction elsewhere must fail one call, not stall them all.
/// Normal waits (another server's login of the same player) last milliseconds.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// PostgreSQL behind the [`Store`] trait.
pub struct PostgresStore {
    config: postgres::Config,
    /// The URL without its password, for errors and logs.
    shown: String,
    /// The name this server holds players online under.
    owner: String,
    /// How long a hold lasts unless renewed, in milliseconds.
    lease_ms: i64,
    /// When the holds were last renewed (or tried).
    renewed: std::time::Instant,
    /// When a renewal (or the connect) last succeeded.
    renewed_ok: std::time::Instant,
    /// The last renewal failed (the database did not answer or refused).
    renew_failing: bool,
    /// `None` after a failed call: the next call connects again.
    session: Option<Session>,
}

/// A connection and its prepared statements.
struct Session {
    client: Client,
    statements: Statements,
    /// How long a hold lasts unless renewed, in milliseconds.
    lease_ms: i64,
}

/// Prepared once per connection: a login or a save then costs one round trip per
/// statement, not two (parse, then execute).
struct Statements {
    find: Statement,
    find_for_update: Statement,
    insert: Statement,
    hold: Statement,
    components: Statement,
    positions: Statement,
    upsert_components: Statement,
    release: Statement,
    redeem: Statement,
    online_zone: Statement,
    renew: Statement,
}

impl PostgresStore {
    /// Connects to the database at `url` and brings its schema up to date; this server
    /// holds players online as `owner` (unique to this process: see [`owner_name`]) for
    /// [`DEFAULT_LEASE`] at a time. Fails with the URL (without its password) and the
    /// reason: unreachable, refused, authentication, a schema newer than this server.
    pub fn connect(url: &str, owner: &str) -> Result<PostgresStore, StoreError> {
        PostgresStore::connect_with_lease(url, owner, DEFAULT_LEASE)
    }

    /// [`PostgresStore::connect`] with holds lasting `lease` unless renewed.
    pub fn connect_with_lease(
        url: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<PostgresStore, StoreError> {
        let lease_ms = lease.as_millis().clamp(1, i64::MAX as u128) as i64;
        outside_runtime(|| PostgresStore::connect_here(url, owner, lease_ms))
    }

    fn connect_here(url: &str, owner: &str, lease_ms: i64) -> Result<PostgresStore, StoreError> {
        let shown = redact(url);
        let mut config: postgres::Config = url.parse().map_err(|e: postgres::Error| {
            StoreError::Database(format!("{shown}: not a PostgreSQL URL: {}", error_text(&e)))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            // Shown in pg_stat_activity: which zone server a connection belongs to.
            config.application_name(&format!("throng {owner}"));
        }
        let mut client = open(&config, &shown)?;
        migrate(&mut client, &shown)?;
        tracing::info!(owner, store = %shown, lease_ms, "PostgreSQL store ready");
        let session =
            Session::prepare(client, lease_ms).map_err(|e| failure(&shown, "preparing", &e))?;
        Ok(PostgresStore {
            config,
            shown,
            owner: owner.to_owned(),
            lease_ms,
            renewed: std::time::Instant::now(),
            renewed_ok: std::time::Instant::now(),
            renew_failing: false,
            session: Some(session),
        })
    }

    /// The open session, connecting again if the last call failed or the connection closed.
    fn session(&mut self) -> Result<&mut Session, StoreError> {
        let session = match self.session.take() {
            Some(session) if !session.client.is_closed() => session,
            lost => {
                if lost.is_some() {
                    tracing::warn!(store = %self.shown, "the PostgreSQL connection closed; reconnecting");
                }
                let client = open(&self.config, &self.shown)?;
                let session = Session::prepare(client, self.lease_ms)
                    .map_err(|e| failure(&self.shown, "preparing", &e))?;
                tracing::info!(store = %self.shown, "reconnected to PostgreSQL");
                session
            }
        };
        Ok(self.session.insert(session))
    }

    /// Runs `operation` on the session. On a database error the session is dropped (its
    /// state is unknown: a broken connection, an aborted transaction) and the next call
    /// starts from a fresh connection.
    fn call<T>(
        &mut self,
        what: &str,
        operation: impl FnOnce(&mut Session, &str) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let owner = self.owner.clone();
        let session = self.session()?;
        match operation(session, &owner) {
            Ok(value) => Ok(value),
            Err(error) => {
                self.session = None;
                Err(failure(&self.shown, what, &error))
            }
        }
    }
}

impl Drop for PostgresStore {
    /// Closing the sync client blocks on its own runtime, which tokio forbids on a thread
    /// that drives a runtime: there (a server that fails to start, dropped by an async
    /// caller), the connection is closed on a thread of its own.
    fn drop(&mut self) {
        if let Some(session) = self.session.take()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            let _ = std::thread::Builder::new()
                .name("throng-pg-close".into())
                .spawn(move || drop(session));
        }
    }
}

/// Runs `f` here, or on a thread of its own if this thread drives a tokio runtime (a server
/// started from async code): the sync client blocks on a runtime of its own, which tokio
/// forbids there. Only the start needs this; the persistence thread drives no runtime.
fn outside_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|scope| scope.spawn(f).join())
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Connects, and sets the session up: commits wait for the WAL flush (the durability
/// promise), and a lock waited for longer than [`LOCK_TIMEOUT`] fails the call.
fn open(config: &postgres::Config, shown: &str) -> Result<Client, StoreError> {
    let mut client = config
        .connect(NoTls)
        .map_err(|e| failure(shown, "cannot connect", &e))?;
    let settings = client
        .query_one(
            "SELECT current_setting('synchronous_commit'), current_setting('lock_timeout')",
            &[],
        )
        .map_err(|e| failure(shown, "reading the session's settings", &e))?;
    let (synchronous, lock_timeout): (String, String) = (settings.get(0), settings.get(1));
    let mut setup = String::new();
    if synchronous == "off" {
        tracing::warn!(store = %shown, "synchronous_commit is off in this database; turned on for throng's connection");
        setup.push_str("SET synchronous_commit = on;");
    }
    if lock_timeout == "0" {
        setup.push_str(&format!(
            "SET lock_timeout = '{}ms';",
            LOCK_TIMEOUT.as_millis()
        ));
    }
    client
        .batch_execute(&setup)
        .map_err(|e| failure(shown, "setting the session up", &e))?;
    Ok(client)
}

/// Brings the schema up to date, one step after the other, in one transaction under the
/// migration lock; refuses a schema newer than this server.
fn migrate(client: &mut Client, shown: &str) -> Result<(), StoreError> {
    let fail = |e: postgres::Error| failure(shown, "migrating the schema", &e);
    let mut transaction = client.transaction().map_err(fail)?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(fail)?;
    let exists: bool = transaction
        .query_one(
            "SELECT to_regclass('throng_schema_version') IS NOT NULL",
            &[],
        )
        .map_err(fail)?
        .get(0);
    if !exists {
        transaction
            .batch_execute(
                "CREATE TABLE throng_schema_version (
                     only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
                     version INTEGER NOT NULL
                 );
                 INSERT INTO throng_schema_version (version) VALUES (0);",
            )
            .map_err(fail)?;
    }
    let version: i32 = transaction
        .query_one("SELECT version FROM throng_schema_version", &[])
        .map_err(fail)?
        .get(0);
    let version = usize::try_from(version).unwrap_or(usize::MAX);
    if version > MIGRATIONS.len() {
        return Err(StoreError::Database(format!(
            "{shown}: schema version {version} is newer than this server ({}): upgrade the \
             server",
            MIGRATIONS.len()
        )));
    }
    for (step, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        transaction.batch_execute(sql).map_err(fail)?;
        let applied = i32::try_from(step + 1).expect("few migrations");
        transaction
            .execute("UPDATE throng_schema_version SET version = $1", &[&applied])
            .map_err(fail)?;
        tracing::info!(store = %shown, version = applied, "migrated the schema");
    }
    transaction.commit().map_err(fail)
}

impl Session {
    fn prepare(mut client: Client, lease_ms: i64) -> Result<Session, postgres::Error> {
        let statements = Statements {
            find: client
                .prepare("SELECT salt, secret_hash FROM players WHERE lower(name) = lower($1)")?,
            find_for_update: client.prepare(
                "SELECT id, salt, secret_hash, x, y, online_zone, online_until_ms FROM players
                 WHERE lower(name) = lower($1) FOR UPDATE",
            )?,
            insert: client.prepare(
                "INSERT INTO players (name, salt, secret_hash, online_zone, online_until_ms)
                 VALUES ($1, $2, $3, $4, $5)
                 RETURNING id",
            )?,
            hold: client.prepare(
                "UPDATE players SET online_zone = $2, online_until_ms = $3, handoff_nonce = NULL
                 WHERE id = $1",
            )?,
            components: client.prepare(
                "SELECT kind, bytes FROM player_components WHERE player_id = $1 ORDER BY kind",
            )?,
            // Fenced: only the players this server holds.
            positions: client.prepare(
                "UPDATE players AS p SET x = u.x, y = u.y, saved_at_ms = $4
                 FROM UNNEST($1::bigint[], $2::real[], $3::real[]) AS u (id, x, y)
                 WHERE p.id = u.id AND p.online_zone = $5",
            )?,
            upsert_components: client.prepare(
                "INSERT INTO player_components (player_id, kind, bytes)
                 SELECT u.id, u.kind, u.bytes
                 FROM UNNEST($1::bigint[], $2::text[], $3::bytea[]) AS u (id, kind, bytes)
                 JOIN players AS p ON p.id = u.id AND p.online_zone = $4
                 ON CONFLICT (player_id, kind) DO UPDATE SET bytes = EXCLUDED.bytes",
            )?,
            release: client.prepare(
                "UPDATE players AS p
                 SET online_zone = NULL, online_until_ms = NULL, handoff_nonce = u.nonce
                 FROM UNNEST($1::bigint[], $2::bigint[]) AS u (id, nonce)
                 WHERE p.id = u.id AND p.online_zone = $3",
            )?,
            // Free, or held by a lease that ended (its server was killed).
            redeem: client.prepare(
                "UPDATE players SET online_zone = $3, online_until_ms = $5, handoff_nonce = NULL
                 WHERE id = $1 AND handoff_nonce = $2
                   AND (online_zone IS NULL OR online_until_ms < $4)
                 RETURNING x, y",
            )?,
            online_zone: client
                .prepare("SELECT online_zone, online_until_ms FROM players WHERE id = $1")?,
            renew: client
                .prepare("UPDATE players SET online_until_ms = $2 WHERE online_zone = $1")?,
        };
        Ok(Session {
            client,
            statements,
            lease_ms,
        })
    }

    /// When a hold taken now ends.
    fn hold_until(&self) -> i64 {
        db_now_ms().saturating_add(self.lease_ms)
    }

    /// [`Store::login`]: the database errors outside, the login's own refusals inside.
    fn login(
        &mut self,
        name: &str,
        secret: &str,
        owner: &str,
    ) -> Result<Result<SavedPlayer, LoginError>, postgres::Error> {
        for _ in 0..LOGIN_ATTEMPTS {
            // The row stays locked until the commit: a concurrent login of the same name (on
            // any server) waits, then sees who holds it.
            let until = self.hold_until();
            let mut transaction = self.client.transaction()?;
            let row = transaction.query_opt(&self.statements.find_for_update, &[&name])?;
            let stored = row.as_ref().map(|row| credential(row, 1, 2));
            let claim = match check_or_claim(stored, secret) {
                Ok(claim) => claim,
                Err(refused) => return Ok(Err(refused)),
            };
            let Some(row) = row else {
                let credential = claim.expect("a new name gets a credential");
                let inserted = transaction.query_one(
                    &self.statements.insert,
                    &[
                        &name,
                        &&credential.salt[..],
                        &&credential.hash[..],
                        &owner,
                        &until,
                    ],
                );
                match inserted {
                    Ok(row) => {
                        transaction.commit()?;
                        return Ok(Ok(SavedPlayer {
                            account: row.get(0),
                            position: None,
                            components: Vec::new(),
                        }));
                    }
                    // Another server inserted the same name first (its insert held ours
                    // until it committed): start again, which checks the secret against
                    // its row.
                    Err(error) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => continue,
                    Err(error) => return Err(error),
                }
            };
            let account: AccountId = row.get(0);
            if let Some(zone) = held_elsewhere(&row, 5, 6, owner) {
                return Ok(Err(LoginError::OnlineElsewhere(zone)));
            }
            // Held here now; a pending handoff ticket of this player is cancelled.
            transaction.execute(&self.statements.hold, &[&account, &owner, &until])?;
            let components =
                load_components(&mut transaction, &self.statements.components, account)?;
            transaction.commit()?;
            return Ok(Ok(SavedPlayer {
                account,
                position: position(&row, 3, 4),
                components,
            }));
        }
        Ok(Err(LoginError::Store(StoreError::Database(format!(
            "logging {name} in: the name's row vanished after a concurrent claim \
             ({LOGIN_ATTEMPTS} attempts)"
        )))))
    }

    /// [`Store::redeem`]: the database errors outside, the refusals inside. A ticket that
    /// does not redeem is `Used` unless another server holds the player (a second redeem
    /// on the server that holds it already is `Used`: the ticket is spent, and nobody is
    /// online elsewhere).
    fn redeem(
        &mut self,
        account: AccountId,
        nonce: u64,
        owner: &str,
    ) -> Result<Result<SavedPlayer, RedeemError>, postgres::Error> {
        let until = self.hold_until();
        let mut transaction = self.client.transaction()?;
        let redeemed = transaction.query_opt(
            &self.statements.redeem,
            &[&account, &(nonce as i64), &owner, &db_now_ms(), &until],
        )?;
        let Some(row) = redeemed else {
            let held_by = transaction
                .query_opt(&self.statements.online_zone, &[&account])?
                .and_then(|row| held_elsewhere(&row, 0, 1, owner));
            return Ok(Err(match held_by {
                Some(zone) => RedeemError::OnlineElsewhere(zone),
                None => RedeemError::Used,
            }));
        };
        let components = load_components(&mut transaction, &self.statements.components, account)?;
        transaction.commit()?;
        Ok(Ok(SavedPlayer {
            account,
            position: position(&row, 0, 1),
            components,
        }))
    }
}

impl Statements {
    /// Writes `records` and `releases` in `transaction`.
    fn save(
        &self,
        transaction: &mut Transaction<'_>,
        records: &[PlayerRecord],
        kinds: &[String],
        releases: &[Release],
        owner: &str,
    ) -> Result<(), postgres::Error> {
        let batch = Columns::of(records, kinds);
        if !batch.ids.is_empty() {
            transaction.execute(
                &self.positions,
                &[&batch.ids, &batch.xs, &batch.ys, &db_now_ms(), &owner],
            )?;
        }
        if !batch.component_ids.is_empty() {
            transaction.execute(
                &self.upsert_components,
                &[&batch.component_ids, &batch.kinds, &batch.bytes, &owner],
            )?;
        }
        if !releases.is_empty() {
            let ids: Vec<AccountId> = releases.iter().map(|r| r.account).collect();
            // A u64 nonce is stored as the i64 with the same bits (BIGINT is signed).
            let nonces: Vec<Option<i64>> = releases
                .iter()
                .map(|r| r.handoff.map(|nonce| nonce as i64))
                .collect();
            transaction.execute(&self.release, &[&ids, &nonces, &owner])?;
        }
        Ok(())
    }
}

/// A batch as the column arrays the `UNNEST` statements take. Each player's latest position
/// and each (player, kind)'s latest value win, as when SQLite writes the records in order
/// (one statement cannot touch a row twice), and rows are in account order so that
/// concurrent transactions lock them in the same order.
#[derive(Default)]
struct Columns<'a> {
    ids: Vec<AccountId>,
    xs: Vec<f32>,
    ys: Vec<f32>,
    component_ids: Vec<AccountId>,
    kinds: Vec<&'a str>,
    bytes: Vec<&'a [u8]>,
}

impl<'a> Columns<'a> {
    fn of(records: &'a [PlayerRecord], kinds: &'a [String]) -> Columns<'a> {
        // Latest first, then a stable sort and keeping the first of each key: the latest.
        let mut positions: Vec<(AccountId, [f32; 2])> = records
            .iter()
            .rev()
            .filter_map(|record| Some((record.account, record.position?)))
            .collect();
        positions.sort_by_key(|(account, _)| *account);
        positions.dedup_by_key(|(account, _)| *account);
        let mut components: Vec<(AccountId, &str, &[u8])> = records
            .iter()
            .rev()
            .flat_map(|record| {
                record.components.iter().rev().filter_map(|(kind, bytes)| {
                    let name = kinds.get(usize::from(*kind))?;
                    Some((record.account, name.as_str(), bytes.as_slice()))
                })
            })
            .collect();
        components.sort_by_key(|(account, kind, _)| (*account, *kind));
        components.dedup_by_key(|(account, kind, _)| (*account, *kind));
        let mut columns = Columns::default();
        for (account, [x, y]) in positions {
            columns.ids.push(account);
            columns.xs.push(x);
            columns.ys.push(y);
        }
        for (account, kind, bytes) in components {
            columns.component_ids.push(account);
            columns.kinds.push(kind);
            columns.bytes.push(bytes);
        }
        columns
    }
}

impl Store for PostgresStore {
    fn verify(&mut self, name: &str, secret: &str) -> Result<bool, StoreError> {
        self.call("verifying a secret", |session, _| {
            let row = session
                .client
                .query_opt(&session.statements.find, &[&name])?;
            Ok(row.is_some_and(|row| credential(&row, 0, 1).matches(secret)))
        })
    }

    fn login(&mut self, name: &str, secret: &str) -> Result<SavedPlayer, LoginError> {
        self.call("logging a player in", |session, owner| {
            session.login(name, secret, owner)
        })?
    }

    fn save_releasing(
        &mut self,
        records: &[PlayerRecord],
        kinds: &[String],
        releases: &[Release],
    ) -> Result<(), StoreError> {
        self.call("saving players", |session, owner| {
            let Session {
                client, statements, ..
            } = session;
            let mut transaction = client.transaction()?;
            statements.save(&mut transaction, records, kinds, releases, owner)?;
            transaction.commit()
        })
    }

    fn redeem(&mut self, account: AccountId, nonce: u64) -> Result<SavedPlayer, RedeemError> {
        self.call("redeeming a handoff", |session, owner| {
            session.redeem(account, nonce, owner)
        })?
    }

    fn renew_holds(&mut self) -> Result<(), StoreError> {
        // A few renewals per lease: one late or failed renewal does not let a hold lapse.
        if self.renewed.elapsed().as_millis() < (self.lease_ms / 3) as u128 {
            return Ok(());
        }
        self.renewed = std::time::Instant::now();
        let renewed = self.call("renewing the online holds", |session, owner| {
            let until = session.hold_until();
            session
                .client
                .execute(&session.statements.renew, &[&owner, &until])
                .map(|_| ())
        });
        self.renew_failing = renewed.is_err();
        if renewed.is_ok() {
            self.renewed_ok = self.renewed;
        }
        renewed
    }

    fn holds_at_risk(&self) -> bool {
        // The database keeps failing, and two renewals in a row are missing: a third would
        // leave no margin. (A renewal that is only late, the persistence thread starved of
        // CPU on a loaded machine, is not a reason to close everyone.)
        self.renew_failing
            && self.renewed_ok.elapsed().as_millis() > (self.lease_ms as u128 * 2 / 3)
    }
}

/// The owner of the hold in `row` (columns `zone` and `until`) if it is another server's
/// and its lease has not ended.
fn held_elsewhere(row: &Row, zone: usize, until: usize, owner: &str) -> Option<String> {
    let held_by: Option<String> = row.get(zone);
    let until: Option<i64> = row.get(until);
    held_by.filter(|held| held != owner && until.is_none_or(|until| until >= db_now_ms()))
}

/// The name a process holds players under: its zone (or `server`) and a random id, so that
/// no two processes (two instances, or a zone's replacement starting while the old one
/// drains) ever share holds.
pub fn owner_name(zone: &str) -> String {
    let mut id = [0u8; 6];
    getrandom::fill(&mut id).expect("the OS random source works");
    let base = if zone.is_empty() { "server" } else { zone };
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    format!("{base}:{hex}")
}

/// The stored credential in `row` (columns `salt` and `hash`; see
/// [`Credential::from_stored`]).
fn credential(row: &Row, salt: usize, hash: usize) -> Credential {
    Credential::from_stored(row.get(salt), row.get(hash))
}

/// The saved position in `row` (columns `x` and `y`), if the player was ever saved.
fn position(row: &Row, x: usize, y: usize) -> Option<[f32; 2]> {
    let x: Option<f32> = row.get(x);
    let y: Option<f32> = row.get(y);
    x.zip(y).map(|(x, y)| [x, y])
}

fn load_components(
    transaction: &mut Transaction<'_>,
    statement: &Statement,
    account: AccountId,
) -> Result<Vec<(String, Vec<u8>)>, postgres::Error> {
    Ok(transaction
        .query(statement, &[&account])?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

/// A store error naming the database (without its password), what was being done, and
/// PostgreSQL's reason.
fn failure(shown: &str, what: &str, error: &postgres::Error) -> StoreError {
    StoreError::Database(format!("{shown}: {what}: {}", error_text(error)))
}

/// The client's error with its cause: its own `Display` says only "db error" or "error
/// connecting to server", and the reason is in the source.
fn error_text(error: &postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `url` without its password (in the user info, or a `password=` parameter), for errors
/// and logs.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "the PostgreSQL store".to_owned();
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    // The last '@' before the query ends the user info (a password may hold '/' or '@').
    let (user, location) = match before_query.rsplit_once('@') {
        Some((userinfo, location)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            (format!("{user}@"), location)
        }
        None => (String::new(), before_query),
    };
    let mut shown = format!("{scheme}://{user}{location}");
    let kept: Vec<&str> = query
        .into_iter()
        .flat_map(|query| query.split('&'))
        .filter(|pair| !pair.to_ascii_lowercase().starts_with("password="))
        .collect();
    if !kept.is_empty() {
        shown.push('?');
        shown.push_str(&kept.join("&"));
    }
    shown
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use super::*;

    fn fresh_database() -> String {
        throng_testdb::TestPostgres::shared().fresh_database()
    }

    /// A plain client on the same database, to look at (and tamper with) the rows.
    fn inspect(url: &str) -> Client {
        Client::connect(url, NoTls).unwrap()
    }

    fn record(account: AccountId, position: [f32; 2], components: &[(u16, &[u8])]) -> PlayerRecord {
        PlayerRecord {
            account,
            position: Some(position),
            components: components
                .iter()
                .map(|(kind, bytes)| (*kind, bytes.to_vec()))
                .collect(),
        }
    }

    fn held_by(url: &str, account: AccountId) -> Option<String> {
        inspect(url)
            .query_one("SELECT online_zone FROM players WHERE id = $1", &[&account])
            .unwrap()
            .get(0)
    }

    #[test]
    fn a_name_is_claimed_by_its_first_secret_and_only_that_secret_opens_it() {
        let url = fresh_database();
        let mut store = PostgresStore::connect(&url, "default").unwrap();
        let first = store.login("ann", "secret-one").unwrap();
        assert_eq!(first.position, None);
        assert!(first.components.is_empty());
        assert!(matches!(
            store.login("ann", "secret-two"),
            Err(LoginError::BadCredentials)
        ));
        assert!(store.verify("ann", "secret-one").unwrap());
        assert!(!store.verify("ann", "secret-two").unwrap());
        assert!(!store.verify("nobody", "secret-one").unwrap());
        assert_eq!(
            store.login("ann", "secret-one").unwrap().account,
            first.account
        );
        let stored: Vec<u8> = inspect(&url)
            .query_one("SELECT secret_hash FROM players WHERE name = 'ann'", &[])
            .unwrap()
            .get(0);
        assert_ne!(stored, b"secret-one".to_vec(), "never the secret itself");
        assert_eq!(held_by(&url, first.account).as_deref(), Some("default"));
    }

    #[test]
    fn names_are_one_player_whatever_their_ascii_case() {
        let url = fresh_database();
        let mut store = PostgresStore::connect(&url, "default").unwrap();
        let ann = store.login("Ann", "secret-one").unwrap();
        assert_eq!(
            store.login("ANN", "secret-one").unwrap().account,
            ann.account
        );
        assert!(matches!(
            store.login("aNN", "other-secret"),
            Err(LoginError::BadCredentials)
        ));
        assert!(store.verify("ann", "secret-one").unwrap());
        let duplicate = inspect(&url).execute(
            "INSERT INTO players (name, salt, secret_hash) VALUES ('aNn', '', '')",
            &[],
        );
        assert_eq!(
            duplicate.unwrap_err().code(),
            Some(&SqlState::UNIQUE_VIOLATION),
            "the index itself refuses a name differing only in case"
        );
    }

    #[test]
    fn saved_positions_and_components_come_back_on_a_new_connection_latest_record_winning() {
        let url = fresh_database();
        let kinds = vec!["coins".to_string(), "health".to_string()];
        let (ann, bob) = {
            let mut store = PostgresStore::connect(&url, "default").unwrap();
            let ann = store.login("ann", "secret-ann").unwrap().account;
            let bob = store.login("bob", "secret-bob").unwrap().account;
            store
                .save(
                    &[
                        record(ann, [1.0, 2.0], &[(0, &[1]), (1, &[100])]),
                        record(bob, [-3.5, 4.25], &[]),
                        // Later records of ann in the same batch: their values win.
                        record(ann, [12.5, 40.0], &[(0, &[2])]),
                        record(ann, [12.5, 40.0], &[(0, &[3]), (0, &[4])]),
                        // A kind that is not registered is skipped, as in SQLite.
                        record(bob, [-3.5, 4.25], &[(7, &[9])]),
                    ],
                    &kinds,
                )
                .unwrap();
            (ann, bob)
        };
        let mut store = PostgresStore::connect(&url, "default").unwrap();
        assert_eq!(
            store.login("ann", "secret-ann").unwrap(),
            SavedPlayer {
                account: ann,
                position: Some([12.5, 40.0]),
                components: vec![
                    ("coins".to_string(), vec![4]),
                    ("health".to_string(), vec![100]),
                ],
            }
        );
        assert_eq!(
            store.login("bob", "secret-bob").unwrap(),
            SavedPlayer {
                account: bob,
                position: Some([-3.5, 4.25]),
                components: Vec::new(),
            }
        );
    }

    #[test]
    fn ten_thousand_records_are_written_by_one_save_in_one_transaction() {
        let url = fresh_database();
        let kinds = vec!["coins".to_string()];
        let mut store = PostgresStore::connect(&url, "default").unwrap();
        let accounts: Vec<AccountId> = inspect(&url)
            .query(
                "INSERT INTO players (name, salt, secret_hash, online_zone)
                 SELECT 'p' || i, '', '', 'default' FROM generate_series(1, 10000) AS i
                 RETURNING id",
                &[],
            )
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        let records: Vec<PlayerRecord> = accounts
            .iter()
            .map(|&account| {
                // The account's big-endian bytes, which SQL can compute (int8send).
                let coins = account.to_be_bytes();
                record(account, [account as f32, 0.5], &[(0, &coins)])
            })
            .collect();
        store.save(&records, &kinds).unwrap();
        let mut db = inspect(&url);
        let (positioned, transactions): (i64, i64) = {
            let row = db
                .query_one(
                    "SELECT count(*) FILTER (WHERE x = id AND y = 0.5 AND saved_at_ms > 0),
                            count(DISTINCT xmin::text)
                     FROM players",
                    &[],
                )
                .unwrap();
            (row.get(0), row.get(1))
        };
        assert_eq!(positioned, 10_000, "every position written");
        assert_eq!(transactions, 1, "all rows last written by one transaction");
        let components: i64 = db
            .query_one(
                "SELECT count(*) FROM player_components
                 WHERE kind = 'coins' AND bytes = int8send(player_id)",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(components, 10_000, "every component written");
        // Saving the batch again updates the component rows in place.
        store.save(&records, &kinds).unwrap();
        let rows: i64 = db
            .query_one("SELECT count(*) FROM player_components", &[])
            .unwrap()
            .get(0);
        assert_eq!(rows, 10_000);
    }

    #[test]
    fn a_player_online_on_one_server_is_refused_by_another_after_its_secret_is_checked() {
        let url = fresh_database();
        let mut a = PostgresStore::connect(&url, "zone-a").unwrap();
        let mut b = PostgresStore::connect(&url, "zone-b").unwrap();
        a.login("ann", "secret-ann").unwrap();
        assert!(matches!(
            b.login("ann", "secret-ann"),
            Err(LoginError::OnlineElsewhere(zone)) if zone == "zone-a"
        ));
        assert!(matches!(
            b.login("ann", "wrong-secret"),
            Err(LoginError::BadCredentials)
        ));
        // The server holding the player may log it in again (its own OnlineNames decides).
        a.login("ann", "secret-ann").unwrap();
    }

    #[test]
    fn save_releasing_releases_what_this_server_holds_and_another_server_then_logs_in() {
        let url = fresh_database();
        let mut a = PostgresStore::connect(&url, "zone-a").unwrap();
        let mut b = PostgresStore::connect(&url, "zone-b").unwrap();
        let ann = a.login("ann", "secret-ann").unwrap().account;
        let release = Release {
            account: ann,
            handoff: None,
        };
        a.save_releasing(
            &[record(ann, [7.0, 8.0], &[])],
            &[],
            std::slice::from_ref(&release),
        )
        .unwrap();
        assert_eq!(held_by(&url, ann), None);
        let on_b = b.login("ann", "secret-ann").unwrap();
        assert_eq!(
            on_b.position,
            Some([7.0, 8.0]),
            "the final record came first"
        );
        // A release by a server that does not hold the player changes nothing.
        a.save_releasing(&[], &[], &[release]).unwrap();
        assert_eq!(held_by(&url, ann).as_deref(), Some("zone-b"));
    }

    #[test]
    fn a_handoff_ticket_redeems_once_and_a_login_cancels_it() {
        let url = fresh_database();
        let kinds = vec!["coins".to_string()];
        let mut a = PostgresStore::connect(&url, "zone-a").unwrap();
        let mut b = PostgresStore::connect(&url, "zone-b").unwrap();
        let mut c = PostgresStore::connect(&url, "zone-c").unwrap();
        let ann = a.login("ann", "secret-ann").unwrap().account;
        // A nonce with the top bit set: stored as the i64 with the same bits.
        let nonce = u64::MAX - 41;
        a.save_releasing(
            &[record(ann, [3.0, 4.0], &[(0, &[5])])],
            &kinds,
            &[Release {
                account: ann,
                handoff: Some(nonce),
            }],
        )
        .unwrap();
        assert!(matches!(b.redeem(ann, nonce - 1), Err(RedeemError::Used)));
        assert_eq!(
            b.redeem(ann, nonce).unwrap(),
            SavedPlayer {
                account: ann,
                position: Some([3.0, 4.0]),
                components: vec![("coins".to_string(), vec![5])],
            }
        );
        assert_eq!(held_by(&url, ann).as_deref(), Some("zone-b"));
        assert!(matches!(b.redeem(ann, nonce), Err(RedeemError::Used)));
        assert!(matches!(
            c.redeem(ann, nonce),
            Err(RedeemError::OnlineElsewhere(zone)) if zone == "zone-b"
        ));

        // Handed off again, but the player logs in normally first: the ticket is void.
        b.save_releasing(
            &[],
            &[],
            &[Release {
                account: ann,
                handoff: Some(7),
            }],
        )
        .unwrap();
        a.login("ann", "secret-ann").unwrap();
        assert!(matches!(
            c.redeem(ann, 7),
            Err(RedeemError::OnlineElsewhere(zone)) if zone == "zone-a"
        ));
        a.save_releasing(
            &[],
            &[],
            &[Release {
                account: ann,
                handoff: None,
            }],
        )
        .unwrap();
        assert!(
            matches!(c.redeem(ann, 7), Err(RedeemError::Used)),
            "the login cancelled the ticket"
        );
    }

    #[test]
    fn a_killed_servers_players_are_free_once_its_lease_ends_and_a_renewing_server_keeps_them() {
        // The lease's length is this test's premise: it waits for it to pass.
        let lease = Duration::from_millis(400);
        let url = fresh_database();
        let mut a = PostgresStore::connect_with_lease(&url, "zone-a:1", lease).unwrap();
        let mut b = PostgresStore::connect_with_lease(&url, "zone-b:1", lease).unwrap();
        a.login("ann", "secret-ann").unwrap();
        b.login("cat", "secret-cat").unwrap();
        assert!(matches!(
            b.login("ann", "secret-ann"),
            Err(LoginError::OnlineElsewhere(zone)) if zone == "zone-a:1"
        ));
        // As after kill -9: a renews nothing more; b keeps renewing its own.
        drop(a);
        let started = std::time::Instant::now();
        while started.elapsed() < lease * 2 {
            b.renew_holds().unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        b.login("ann", "secret-ann")
            .expect("a's lease ended: ann is free");
        assert!(!b.holds_at_risk(), "b renewed in time");
        // b renews late (a starved thread): late is not at risk while the database answers.
        std::thread::sleep(lease * 3 / 4);
        assert!(!b.holds_at_risk(), "late, but the database has not failed");
        b.renew_holds().unwrap();
        assert!(!b.holds_at_risk(), "renewed again");
        let mut c = PostgresStore::connect_with_lease(&url, "zone-c:1", lease).unwrap();
        assert!(
            matches!(
                c.login("cat", "secret-cat"),
                Err(LoginError::OnlineElsewhere(zone)) if zone == "zone-b:1"
            ),
            "b renewed its holds: cat is still b's"
        );
        // A server that lost a hold cannot overwrite the player's newer state.
        let cat = held_account(&url, "cat");
        c.save(&[record(cat, [9.0, 9.0], &[])], &[]).unwrap();
        assert_ne!(saved_position(&url, cat), Some([9.0, 9.0]), "fenced");
    }

    fn held_account(url: &str, name: &str) -> AccountId {
        inspect(url)
            .query_one("SELECT id FROM players WHERE name = $1", &[&name])
            .unwrap()
            .get(0)
    }

    fn saved_position(url: &str, account: AccountId) -> Option<[f32; 2]> {
        let row = inspect(url)
            .query_one("SELECT x, y FROM players WHERE id = $1", &[&account])
            .unwrap();
        position(&row, 0, 1)
    }

    #[test]
    fn migrations_run_once_and_a_newer_schema_is_refused_with_the_url() {
        let url = fresh_database();
        let mut store = PostgresStore::connect(&url, "default").unwrap();
        let ann = store.login("ann", "secret-ann").unwrap().account;
        store.save(&[record(ann, [1.0, 1.0], &[])], &[]).unwrap();
        drop(store);
        // Again: nothing to do, nothing lost.
        let mut store = PostgresStore::connect(&url, "default").unwrap();
        assert_eq!(
            store.login("ann", "secret-ann").unwrap().position,
            Some([1.0, 1.0])
        );
        let mut db = inspect(&url);
        let version: i32 = db
            .query_one("SELECT version FROM throng_schema_version", &[])
            .unwrap()
            .get(0);
        assert_eq!(version as usize, MIGRATIONS.len());

        db.execute("UPDATE throng_schema_version SET version = 99", &[])
            .unwrap();
        let error = PostgresStore::connect(&url, "default")
            .err()
            .expect("refused")
            .to_string();
        assert!(
            error.contains(&url) && error.contains("schema version 99 is newer than this server"),
            "{error}"
        );
    }

    #[test]
    fn servers_starting_at_once_migrate_one_after_the_other() {
        let url = fresh_database();
        let barrier = Arc::new(Barrier::new(4));
        let starts: Vec<_> = (0..4)
            .map(|i| {
                let (url, barrier) = (url.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    PostgresStore::connect(&url, &format!("zone-{i}")).map(|_| ())
                })
            })
            .collect();
        for start in starts {
            start.join().unwrap().unwrap();
        }
        let version: i32 = inspect(&url)
            .query_one("SELECT version FROM throng_schema_version", &[])
            .unwrap()
            .get(0);
        assert_eq!(version as usize, MIGRATIONS.len());
    }

    #[test]
    fn two_servers_claiming_one_new_name_at_once_let_exactly_one_in() {
        let url = fresh_database();
        for round in 0..10 {
            for same_secret in [true, false] {
                let name = format!("new{round}{same_secret}");
                let barrier = Arc::new(Barrier::new(2));
                let logins: Vec<_> = ["zone-a", "zone-b"]
                    .into_iter()
                    .map(|owner| {
                        let mut store = PostgresStore::connect(&url, owner).unwrap();
                        let (name, barrier) = (name.clone(), barrier.clone());
                        let secret = if same_secret { "secret-x" } else { owner };
                        let secret = format!("{secret}-long");
                        std::thread::spawn(move || {
                            barrier.wait();
                            (owner, store.login(&name, &secret))
                        })
                    })
                    .collect();
                let results: Vec<_> = logins.into_iter().map(|t| t.join().unwrap()).collect();
                let winners: Vec<_> = results.iter().filter(|(_, r)| r.is_ok()).collect();
                assert_eq!(winners.len(), 1, "{name}: {results:?}");
                let winner = winners[0].0;
                let (_, loser) = results.iter().find(|(_, r)| r.is_err()).unwrap();
                match loser {
                    Err(LoginError::OnlineElsewhere(zone)) if same_secret => {
                        assert_eq!(zone, winner)
                    }
                    Err(LoginError::BadCredentials) if !same_secret => {}
                    other => panic!("{name}: the loser got {other:?}"),
                }
            }
        }
    }

    #[test]
    fn an_insert_that_loses_the_race_for_a_new_name_retries_and_checks_the_secret() {
        // Deterministically: another server's insert of the name is in flight (uncommitted)
        // when this login looks, so the login finds no row, inserts, and waits on the
        // unique index until the other commits.
        let url = fresh_database();
        let mut store = PostgresStore::connect(&url, "zone-b").unwrap();
        for (secret, expect_bad) in [("secret-one", false), ("secret-two", true)] {
            let name = format!("racer-{expect_bad}");
            let mut other = inspect(&url);
            let mut transaction = other.transaction().unwrap();
            let credential = Credential::new("secret-one").unwrap();
            transaction
                .execute(
                    "INSERT INTO players (name, salt, secret_hash, online_zone)
                     VALUES ($1, $2, $3, 'zone-a')",
                    &[&name, &&credential.salt[..], &&credential.hash[..]],
                )
                .unwrap();
            let login = std::thread::spawn(move || {
                let result = store.login(&name, secret);
                (store, result)
            });
            // Commit once the login waits on the other insert's lock.
            let mut watcher = inspect(&url);
            let started = std::time::Instant::now();
            while watcher
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    &[],
                )
                .unwrap()
                .get::<_, i64>(0)
                == 0
            {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "the login never waited on the insert"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            transaction.commit().unwrap();
            let (back, result) = login.join().unwrap();
            store = back;
            match result {
                Err(LoginError::BadCredentials) if expect_bad => {}
                Err(LoginError::OnlineElsewhere(zone)) if !expect_bad => {
                    assert_eq!(zone, "zone-a")
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_dropped_connection_fails_one_call_and_the_next_connects_again() {
        let url = fresh_database();
        let mut store = PostgresStore::connect(&url, "zone-dropped").unwrap();
        let ann = store.login("ann", "secret-ann").unwrap().account;
        let terminated: i64 = inspect(&url)
            .query_one(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE datname = current_database() AND application_name = 'throng zone-dropped'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(terminated, 1);
        let error = store
            .save(&[record(ann, [5.0, 5.0], &[])], &[])
            .expect_err("the connection is gone")
            .to_string();
        assert!(
            error.contains(&url) && error.contains("saving players"),
            "{error}"
        );
        store.save(&[record(ann, [6.0, 6.0], &[])], &[]).unwrap();
        assert_eq!(
            store.login("ann", "secret-ann").unwrap().position,
            Some([6.0, 6.0])
        );
        assert_eq!(
            held_by(&url, ann).as_deref(),
            Some("zone-dropped"),
            "a reconnect releases nothing"
        );
    }

    #[test]
    fn holds_are_at_risk_once_renewals_have_failed_for_two_thirds_of_a_lease() {
        // The lease's length is this test's premise: it waits for most of it to pass.
        let lease = Duration::from_millis(300);
        let url = fresh_database();
        let mut store = PostgresStore::connect_with_lease(&url, "zone-gone:1", lease).unwrap();
        store.login("ann", "secret-ann").unwrap();
        // The database goes away for good (as an unreachable one would).
        let name = url.rsplit('/').next().unwrap().to_owned();
        let admin = url.replace(&format!("/{name}"), "/postgres");
        inspect(&admin)
            .execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"), &[])
            .unwrap();
        assert!(!store.holds_at_risk(), "just renewed at connect");
        std::thread::sleep(lease * 3 / 4);
        assert!(store.renew_holds().is_err(), "the database is gone");
        assert!(store.holds_at_risk(), "failing for most of a lease");
    }

    #[test]
    fn an_unreachable_database_is_a_clear_error_without_the_password() {
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let error = PostgresStore::connect(
            &format!("postgres://throng:hunter22@127.0.0.1:{port}/world"),
            "default",
        )
        .err()
        .expect("refused")
        .to_string();
        assert!(
            error.contains(&format!("postgres://throng@127.0.0.1:{port}/world"))
                && error.contains("cannot connect")
                && error.contains("refused"),
            "{error}"
        );
        assert!(!error.contains("hunter22"), "{error}");
    }

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(
            redact("postgres://zone:s3cr/t@@db.example:5432/world?sslmode=disable"),
            "postgres://zone@db.example:5432/world?sslmode=disable"
        );
        assert_eq!(
            redact("postgresql://db/world?user=zone&password=s3cret&application_name=x"),
            "postgresql://db/world?user=zone&application_name=x"
        );
        assert_eq!(redact("postgres://db/world"), "postgres://db/world");
        assert_eq!(redact("nonsense"), "the PostgreSQL store");
    }

    #[test]
    fn a_store_that_is_not_a_postgres_url_is_a_config_error_naming_the_key() {
        let layer = crate::config::ConfigLayer {
            store: Some("mysql://db/world".to_string()),
            ..Default::default()
        };
        let error = layer.resolve().expect_err("refused").to_string();
        assert!(error.contains("store"), "{error}");
        for url in ["", "postgres://db/world", "postgresql://db/world"] {
            let layer = crate::config::ConfigLayer {
                store: Some(url.to_string()),
                ..Default::default()
            };
            assert!(layer.resolve().is_ok(), "{url}");
        }
    }
}
