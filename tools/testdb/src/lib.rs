//! A throwaway PostgreSQL cluster for tests and benches: one per process, started on first
//! use, with a fresh database per test.
//!
//! ```no_run
//! let url = throng_testdb::TestPostgres::shared().fresh_database();
//! // `url` is `postgres://throng@127.0.0.1:PORT/test_N`, an empty database.
//! ```
//!
//! Nothing outlives the process that started the cluster, however it ends (a failed
//! assertion, `kill -9`, Ctrl-C): `postgres` runs under a small shell supervisor whose stdin
//! is a pipe this process holds. The kernel closes the pipe when the process exits, the
//! supervisor's `cat` sees end of file, and it stops the cluster (immediate shutdown) and
//! removes its directory. So there is no `Drop` to forget, and nothing to clean up by hand.
//!
//! The cluster is real: `fsync = on`, default `synchronous_commit`, so a test of durability
//! (a `kill -9` of a server) tests what production gets.
//!
//! PostgreSQL's binaries are looked up in `PATH`, then in Debian's
//! `/usr/lib/postgresql/<version>/bin` (newest version first). `initdb` refuses to run as
//! root, so as root (a CI machine) the cluster runs as the `postgres` user Debian's package
//! creates. `.ci/services.sh` installs the package.

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use postgres::NoTls;

/// The cluster's superuser (trusted on 127.0.0.1 only: the cluster listens nowhere else).
const USER: &str = "throng";

/// How long a cluster may take to accept connections before the fixture gives up (a guard
/// against a hang, not a measurement: a cold start takes a second or two).
const START_GUARD: Duration = Duration::from_secs(60);

/// Starts with a fresh port when another process took the one picked (the port is chosen
/// by binding port 0 and releasing it, so a race is possible, if unlikely).
const START_ATTEMPTS: usize = 3;

/// What to tell someone whose machine lacks PostgreSQL.
const INSTALL_HINT: &str = "run .ci/services.sh (as root) to install it";

/// The shell supervisor: starts `postgres` in the background, and a watcher that waits for
/// the supervisor's stdin (a pipe held by the test process) to close, then stops the
/// cluster. When `postgres` has exited, the supervisor writes its status to `exited` (so
/// that the fixture can tell a failed start from a slow one, and read the log), waits for
/// the watcher, and removes the cluster's directory. Arguments: `$0` the postgres binary,
/// `$1` the cluster's directory, `$2` the port.
///
/// The watcher sends SIGQUIT (immediate shutdown: no shutdown checkpoint, which would write
/// and fsync every dirty page of a cluster about to be deleted) and repeats it until
/// `postgres` is gone: a background command of a non-interactive shell starts with SIGINT and
/// SIGQUIT ignored, so a signal sent before `postgres` has installed its handlers (the test
/// process died during the start) is lost. After 30 s it sends SIGKILL. Background commands
/// also get /dev/null as stdin unless redirected: hence the watcher's explicit `<&3`, a copy
/// of the pipe.
const SUPERVISOR: &str = r#"
exec 3<&0
"$0" -D "$1/data" -k "$1" -p "$2" -c listen_addresses=127.0.0.1 -c fsync=on \
    -c max_connections=200 </dev/null 2>>"$1/postgres.log" &
p=$!
{
    cat >/dev/null
    n=0
    while kill -0 "$p"; do
        if [ "$n" -lt 150 ]; then kill -QUIT "$p"; else kill -KILL "$p"; fi
        n=$((n + 1))
        sleep 0.2
    done
} <&3 2>/dev/null &
w=$!
exec 3<&-
wait "$p"
echo "$?" >"$1/exited"
wait "$w"
rm -rf "$1"
"#;

/// A running throwaway cluster (see the crate's documentation).
pub struct TestPostgres {
    port: u16,
    dir: PathBuf,
    next_database: AtomicU32,
    /// Connected to the `postgres` database, to create the others.
    admin: Mutex<postgres::Client>,
    /// The supervisor's stdin: closed (by the kernel) when this process exits, which stops
    /// the cluster. Never written.
    _lifeline: ChildStdin,
    /// The supervisor (kept so that its handle is not dropped while it runs).
    _supervisor: Mutex<Child>,
}

impl TestPostgres {
    /// The cluster of this process, started on the first call. Panics with the reason (and
    /// PostgreSQL's log) if it cannot start, and with how to install PostgreSQL if it is
    /// missing.
    pub fn shared() -> &'static TestPostgres {
        static SHARED: OnceLock<TestPostgres> = OnceLock::new();
        SHARED.get_or_init(|| off_runtime(TestPostgres::start_with_retries))
    }

    fn start_with_retries() -> TestPostgres {
        let binaries = find_binaries().unwrap_or_else(|| {
            panic!(
                "PostgreSQL is not installed: no initdb and postgres in PATH or in \
                 /usr/lib/postgresql/*/bin; {INSTALL_HINT}"
            )
        });
        let account = run_as();
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            match TestPostgres::start(&binaries, account) {
                Ok(cluster) => return cluster,
                Err(Start::PortTaken(log)) => last = log,
            }
        }
        panic!("PostgreSQL could not bind a free port in {START_ATTEMPTS} attempts:\n{last}")
    }

    /// Creates an empty database and returns its URL
    /// (`postgres://throng@127.0.0.1:PORT/test_N`; the user is the cluster's superuser).
    pub fn fresh_database(&self) -> String {
        let name = format!(
            "test_{}",
            self.next_database.fetch_add(1, Ordering::Relaxed)
        );
        off_runtime(|| {
            self.admin
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .batch_execute(&format!("CREATE DATABASE {name}"))
        })
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {}", error_text(&e)));
        self.url(&name)
    }

    /// The URL of database `name` in this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// The port the cluster listens on (127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's directory (its data, its Unix socket, `postgres.log`); removed when
    /// the process exits.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn start(binaries: &Path, account: Option<(u32, u32)>) -> Result<TestPostgres, Start> {
        let dir = std::env::temp_dir().join(format!(
            "throng-testdb-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        if let Some((uid, gid)) = account {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap_or_else(|e| {
                panic!("cannot give {} to the postgres user: {e}", dir.display())
            });
        }
        let as_account = |command: &mut Command| {
            use std::os::unix::process::CommandExt;
            command.current_dir(&dir).env("LC_ALL", "C");
            if let Some((uid, gid)) = account {
                command.uid(uid).gid(gid);
            }
        };

        // The data files of a throwaway cluster need not reach the disk before it starts
        // (--no-sync); the running server fsyncs its commits like any other.
        let mut initdb = Command::new(binaries.join("initdb"));
        initdb
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-U", USER, "--auth=trust", "--encoding=UTF8", "--locale=C"])
            .arg("--no-sync");
        as_account(&mut initdb);
        let output = initdb
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binaries.join("initdb").display()));
        if !output.status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            panic!(
                "initdb failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }

        let port = free_port();
        let mut supervisor = Command::new("sh");
        supervisor
            .args(["-c", SUPERVISOR])
            .arg(binaries.join("postgres"))
            .arg(&dir)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        as_account(&mut supervisor);
        {
            // Its own process group: a Ctrl-C in the terminal stops the test process, whose
            // exit then stops the cluster in order (rather than the signal killing the
            // supervisor and orphaning postgres).
            use std::os::unix::process::CommandExt;
            supervisor.process_group(0);
        }
        let mut supervisor = supervisor
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run sh: {e}"));
        let lifeline = supervisor.stdin.take().expect("piped stdin");

        let log_path = dir.join("postgres.log");
        let read_log = || {
            let mut log = String::new();
            if let Ok(mut file) = std::fs::File::open(&log_path) {
                let _ = file.read_to_string(&mut log);
            }
            log
        };
        let started = Instant::now();
        let admin = loop {
            let attempt = postgres::Config::new()
                .host("127.0.0.1")
                .port(port)
                .user(USER)
                .dbname("postgres")
                .connect_timeout(Duration::from_secs(5))
                .connect(NoTls);
            match attempt {
                Ok(client) => break client,
                Err(error) => {
                    if dir.join("exited").exists() {
                        let log = read_log();
                        // Dropping the lifeline stops the supervisor, which removes `dir`.
                        drop(lifeline);
                        let _ = supervisor.wait();
                        if log.contains("Address already in use") {
                            return Err(Start::PortTaken(log));
                        }
                        panic!("PostgreSQL did not start:\n{log}");
                    }
                    if started.elapsed() > START_GUARD {
                        let log = read_log();
                        drop(lifeline);
                        let _ = supervisor.wait();
                        panic!(
                            "PostgreSQL accepted no connection on port {port} within \
                             {START_GUARD:?} (last: {}):\n{log}",
                            error_text(&error)
                        );
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
        Ok(TestPostgres {
            port,
            dir,
            next_database: AtomicU32::new(0),
            admin: Mutex::new(admin),
            _lifeline: lifeline,
            _supervisor: Mutex::new(supervisor),
        })
    }
}

/// Runs `f` on a thread of its own: the sync client blocks on a runtime of its own, which
/// tokio forbids on a thread that drives a runtime (an async test's).
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| scope.spawn(f).join())
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Why a start attempt failed without panicking.
enum Start {
    /// Another process bound the port first (PostgreSQL's log).
    PortTaken(String),
}

/// A client error with its cause (the client's own `Display` says only "db error").
fn error_text(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => db.to_string(),
        None => match std::error::Error::source(error) {
            Some(cause) => format!("{error}: {cause}"),
            None => error.to_string(),
        },
    }
}

/// A port nothing listens on now (the kernel's pick for port 0).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|e| panic!("cannot pick a free port: {e}"))
}

/// The directory holding `initdb` and `postgres`: from `PATH`, else Debian's newest
/// `/usr/lib/postgresql/<version>/bin`.
fn find_binaries() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(path) = std::env::var_os("PATH")
        && let Some(dir) = std::env::split_paths(&path).find(|dir| has_both(dir))
    {
        return Some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| has_both(bin))
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// The account (uid, gid) to run PostgreSQL as: `None` (this process's own) unless this
/// process is root, whom `initdb` refuses; then Debian's `postgres` user.
fn run_as() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let account = user_ids("postgres");
    if account.is_none() {
        panic!(
            "running as root, which initdb refuses, and there is no `postgres` user to run \
             PostgreSQL as; {INSTALL_HINT} (Debian's package creates the user)"
        );
    }
    account
}

/// The uid and gid of the user `name`, from the system's user database.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: getpwnam_r writes into `entry` and `buffer`, both owned here and large
    // enough (it fails with ERANGE otherwise), and `found` points at `entry` or is null.
    unsafe {
        let mut entry: libc::passwd = std::mem::zeroed();
        let mut buffer = vec![0 as libc::c_char; 16 * 1024];
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let status = libc::getpwnam_r(
            name.as_ptr(),
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        );
        (status == 0 && !found.is_null()).then_some((entry.pw_uid, entry.pw_gid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_fresh_database_is_empty_and_separate() {
        let cluster = TestPostgres::shared();
        let first = cluster.fresh_database();
        let second = cluster.fresh_database();
        assert_ne!(first, second);
        let mut a = postgres::Client::connect(&first, NoTls).unwrap();
        a.batch_execute("CREATE TABLE t (x INT); INSERT INTO t VALUES (1)")
            .unwrap();
        let mut b = postgres::Client::connect(&second, NoTls).unwrap();
        let tables: i64 = b
            .query_one(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 't'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(
            tables, 0,
            "the second database does not see the first's table"
        );
        let fsync: String = b.query_one("SHOW fsync", &[]).unwrap().get(0);
        assert_eq!(fsync, "on");
    }

    #[test]
    fn the_cluster_stops_and_its_directory_goes_when_the_process_that_started_it_dies() {
        // A child process (this test binary, running the ignored helper below) starts a
        // cluster, prints its directory and port, and is killed with SIGKILL.
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "tests::helper_start_a_cluster_and_wait",
                "--nocapture",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            let read = std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
            assert!(read > 0, "the helper ended without starting a cluster");
            if line.starts_with("cluster ") {
                break;
            }
        }
        let mut fields = line.split_whitespace().skip(1);
        let dir = PathBuf::from(fields.next().unwrap());
        let port: u16 = fields.next().unwrap().parse().unwrap();
        assert!(dir.join("data").is_dir());
        child.kill().unwrap();
        child.wait().unwrap();
        let started = Instant::now();
        while dir.exists() {
            assert!(
                started.elapsed() < START_GUARD,
                "{} still exists after the process died",
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let refused = std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port));
        assert!(refused.is_err(), "nothing listens on {port} any more");
    }

    /// Run by the test above in a child process.
    #[test]
    #[ignore = "a helper: started (and killed) by another test"]
    fn helper_start_a_cluster_and_wait() {
        let cluster = TestPostgres::shared();
        println!("cluster {} {}", cluster.dir().display(), cluster.port());
        std::thread::sleep(Duration::from_secs(600));
    }
}
