//! The embedded store: one SQLite file (`throng.db` in the data directory) in WAL mode,
//! created on first run, with versioned schema migrations (`PRAGMA user_version`).
//!
//! Durability: WAL with `synchronous = NORMAL` makes every committed transaction survive a
//! crash of the process (`kill -9`): it is in the WAL, in the OS's page cache; only a crash
//! of the whole machine may lose the last transactions. SQLite never leaves the file corrupt.
//! The connection holds the file exclusively (`locking_mode = EXCLUSIVE`), so a second
//! server on the same data directory fails at startup instead of interleaving writes.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use super::credentials::Credential;
use super::db_now_ms;
use super::store::{
    AccountId, LoginError, PlayerRecord, Release, SavedPlayer, Store, StoreError, check_or_claim,
};

/// The schema, one step per version; `PRAGMA user_version` is the number of steps applied.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE players (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        salt BLOB NOT NULL,
        secret_hash BLOB NOT NULL,
        x REAL,
        y REAL,
        saved_at_ms INTEGER
    );
    CREATE TABLE player_components (
        player_id INTEGER NOT NULL REFERENCES players(id),
        kind TEXT NOT NULL,
        bytes BLOB NOT NULL,
        PRIMARY KEY (player_id, kind)
    ) WITHOUT ROWID;
",
    "
    -- Names are unique whatever their ASCII case (protocol::name_key). A database holding two
    -- names that differ only in case cannot take this step: the server then refuses to start
    -- with the reason, and the operator renames one of them.
    CREATE UNIQUE INDEX players_name_nocase ON players (name COLLATE NOCASE);
",
];

/// The database file in a data directory.
pub fn database_path(data_dir: &Path) -> PathBuf {
    data_dir.join("throng.db")
}

/// SQLite behind the [`Store`] trait.
pub struct SqliteStore {
    connection: Connection,
}

fn database(error: rusqlite::Error) -> StoreError {
    StoreError::Database(error.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database in `data_dir` and brings its schema up to
    /// date. Fails with a clear error if the directory cannot be created, the file is not a
    /// database, or another process holds it.
    pub fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Database(format!("cannot create {}: {e}", data_dir.display()))
        })?;
        let path = database_path(data_dir);
        let context = |e: rusqlite::Error| StoreError::Database(format!("{}: {e}", path.display()));
        let mut connection = Connection::open(&path).map_err(context)?;
        // Only this server uses the file: waiting for a lock means another server holds it.
        connection
            .busy_timeout(std::time::Duration::ZERO)
            .map_err(context)?;
        connection
            .execute_batch(
                "PRAGMA locking_mode = EXCLUSIVE;
                 PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;",
            )
            .map_err(context)?;
        migrate(&mut connection).map_err(context)?;
        Ok(SqliteStore { connection })
    }
}

fn migrate(connection: &mut Connection) -> rusqlite::Result<()> {
    let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let version = usize::try_from(version).unwrap_or(usize::MAX);
    if version > MIGRATIONS.len() {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "schema version {version} is newer than this server ({})",
            MIGRATIONS.len()
        )));
    }
    for (step, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let transaction = connection.transaction()?;
        transaction.execute_batch(sql)?;
        transaction.pragma_update(None, "user_version", (step + 1) as i64)?;
        transaction.commit()?;
    }
    Ok(())
}

impl Store for SqliteStore {
    fn verify(&mut self, name: &str, secret: &str) -> Result<bool, StoreError> {
        let row: Option<(Vec<u8>, Vec<u8>)> = self
            .connection
            .prepare_cached("SELECT salt, secret_hash FROM players WHERE name = ?1 COLLATE NOCASE")
            .and_then(|mut statement| {
                statement
                    .query_row([name], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(database)?;
        Ok(row.is_some_and(|(salt, hash): (Vec<u8>, Vec<u8>)| {
            Credential::from_stored(&salt, &hash).matches(secret)
        }))
    }

    fn login(&mut self, name: &str, secret: &str) -> Result<SavedPlayer, LoginError> {
        type Row = (AccountId, Vec<u8>, Vec<u8>, Option<f32>, Option<f32>);
        let row: Option<Row> = self
            .connection
            .prepare_cached(
                "SELECT id, salt, secret_hash, x, y FROM players WHERE name = ?1 COLLATE NOCASE",
            )
            .and_then(|mut statement| {
                statement
                    .query_row([name], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })
                    .optional()
            })
            .map_err(database)?;
        let stored = row
            .as_ref()
            .map(|(_, salt, hash, _, _)| Credential::from_stored(salt, hash));
        let claim = check_or_claim(stored, secret)?;
        let Some((account, _, _, x, y)) = row else {
            let credential = claim.expect("a new name gets a credential");
            self.connection
                .prepare_cached("INSERT INTO players (name, salt, secret_hash) VALUES (?1, ?2, ?3)")
                .and_then(|mut statement| {
                    statement.execute(params![name, &credential.salt[..], &credential.hash[..]])
                })
                .map_err(database)?;
            return Ok(SavedPlayer {
                account: self.connection.last_insert_rowid(),
                position: None,
                components: Vec::new(),
            });
        };
        let components = self
            .connection
            .prepare_cached("SELECT kind, bytes FROM player_components WHERE player_id = ?1")
            .and_then(|mut statement| {
                statement
                    .query_map([account], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(database)?;
        Ok(SavedPlayer {
            account,
            position: x.zip(y).map(|(x, y)| [x, y]),
            components,
        })
    }

    /// Nothing to release: one server owns this database, and its `OnlineNames` is the
    /// whole truth about who is online.
    fn save_releasing(
        &mut self,
        records: &[PlayerRecord],
        kinds: &[String],
        _releases: &[Release],
    ) -> Result<(), StoreError> {
        let saved_at = db_now_ms();
        let transaction = self.connection.transaction().map_err(database)?;
        {
            let mut position = transaction
                .prepare_cached("UPDATE players SET x = ?2, y = ?3, saved_at_ms = ?4 WHERE id = ?1")
                .map_err(database)?;
            let mut component = transaction
                .prepare_cached(
                    "INSERT INTO player_components (player_id, kind, bytes) VALUES (?1, ?2, ?3)
                     ON CONFLICT (player_id, kind) DO UPDATE SET bytes = excluded.bytes",
                )
                .map_err(database)?;
            for record in records {
                if let Some([x, y]) = record.position {
                    position
                        .execute(params![record.account, x, y, saved_at])
                        .map_err(database)?;
                }
                for (kind, bytes) in &record.components {
                    let Some(name) = kinds.get(usize::from(*kind)) else {
                        continue;
                    };
                    component
                        .execute(params![record.account, name, bytes])
                        .map_err(database)?;
                }
            }
        }
        transaction.commit().map_err(database)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "throng-sqlite-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_name_is_claimed_by_its_first_secret_and_saved_state_comes_back() {
        let dir = temp_dir("claim");
        let kinds = vec!["Health".to_string()];
        let account = {
            let mut store = SqliteStore::open(&dir).unwrap();
            let first = store.login("ann", "secret-one").unwrap();
            assert_eq!(first.position, None);
            store
                .save(
                    &[PlayerRecord {
                        account: first.account,
                        position: Some([12.5, 40.0]),
                        components: vec![(0, vec![1, 2, 3])],
                    }],
                    &kinds,
                )
                .unwrap();
            assert!(matches!(
                store.login("ann", "secret-two"),
                Err(LoginError::BadCredentials)
            ));
            first.account
        };
        // Reopened (as after a restart).
        let mut store = SqliteStore::open(&dir).unwrap();
        let again = store.login("ann", "secret-one").unwrap();
        assert_eq!(
            again,
            SavedPlayer {
                account,
                position: Some([12.5, 40.0]),
                components: vec![("Health".to_string(), vec![1, 2, 3])],
            }
        );
        let stored_hash: Vec<u8> = store
            .connection
            .query_row(
                "SELECT secret_hash FROM players WHERE name = 'ann'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_ne!(
            stored_hash,
            b"secret-one".to_vec(),
            "never the secret itself"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_that_is_not_a_database_is_a_clear_error() {
        let dir = temp_dir("garbage");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(database_path(&dir), vec![0x42; 4096]).unwrap();
        let error = SqliteStore::open(&dir).err().expect("refused").to_string();
        assert!(
            error.contains("throng.db") && error.contains("not a database"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_database_held_by_another_server_is_a_clear_error() {
        let dir = temp_dir("locked");
        let _first = SqliteStore::open(&dir).unwrap();
        let error = SqliteStore::open(&dir).err().expect("refused").to_string();
        assert!(error.contains("locked"), "{error}");
    }
}
