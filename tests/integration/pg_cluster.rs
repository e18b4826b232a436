//! A throwaway PostgreSQL cluster for the PostgreSQL pass of the integration tests.
//!
//! The first broker of the test binary starts ONE cluster (initdb + pg_ctl) in a
//! temporary directory, on a free port of 127.0.0.1, with its unix socket in that
//! directory. Every broker then gets a database of its own, named after its data
//! directory, so a broker restarted on "the same data" finds the same database. A
//! watchdog stops the cluster and removes its directory once the test process is gone.
//!
//! `initdb` and `postgres` refuse to run as root: as root (CI, containers) they run as
//! the `postgres` user. If the server binaries or PostGIS are missing, [`cluster`]
//! says so loudly and returns `None`.

#![allow(dead_code)]

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

pub struct Cluster {
    bin: PathBuf,
    port: u16,
    created: Mutex<HashSet<String>>,
    _watchdog: Option<Child>,
}

const TEMPLATE: &str = "calanque_template";

/// The cluster of this test binary, started on first use; `None` if PostgreSQL or
/// PostGIS is not installed here.
pub fn cluster() -> Option<&'static Cluster> {
    static CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| match start() {
            Ok(c) => Some(c),
            Err(why) => {
                let bar = "!".repeat(78);
                eprintln!(
                    "\n{bar}\n!! PostgreSQL pass SKIPPED: {why}\n!! The tests of this binary run on \
                     SQLite instead. Install postgresql and postgresql-15-postgis-3 (Debian)\n\
                     !! to run them on PostgreSQL.\n{bar}\n"
                );
                None
            }
        })
        .as_ref()
}

impl Cluster {
    /// The URL of the database of the broker whose data directory is `data_dir`
    /// (created from the PostGIS template on first use).
    pub fn database_url(&self, data_dir: &Path) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        data_dir.hash(&mut h);
        let name = format!("it_{:016x}", h.finish());
        let mut created = self.created.lock().unwrap_or_else(|e| e.into_inner());
        if !created.contains(&name) {
            self.psql(
                "postgres",
                &format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}"),
            )
            .unwrap_or_else(|e| panic!("cannot create the test database {name}: {e}"));
            created.insert(name.clone());
        }
        self.url(&name)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    fn psql(&self, database: &str, sql: &str) -> Result<(), String> {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
            ])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-d")
            .arg(database)
            .arg("-c")
            .arg(sql)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run psql: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

/// The directory holding initdb, pg_ctl, postgres and psql: on PATH, or the newest
/// Debian-style `/usr/lib/postgresql/<version>/bin`.
fn find_bin() -> Option<PathBuf> {
    let has_all = |d: &Path| {
        ["initdb", "pg_ctl", "postgres", "psql"]
            .iter()
            .all(|b| d.join(b).is_file())
    };
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(d) = std::env::split_paths(&path).find(|d| has_all(d)) {
            return Some(d);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has_all(d))
        .collect();
    versions.sort();
    versions.pop().map(|(_, d)| d)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A command for a server binary, as the `postgres` user when we are root.
fn server_command(bin: &Path, program: &str, root: bool) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(program));
        c
    } else {
        Command::new(bin.join(program))
    }
}

fn run(mut c: Command, what: &str) -> Result<(), String> {
    let out = c
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn start() -> Result<Cluster, String> {
    let bin = find_bin()
        .ok_or("no initdb/pg_ctl/postgres/psql found (PATH, /usr/lib/postgresql/*/bin)")?;
    let sharedir = Command::new(bin.join("pg_config"))
        .arg("--sharedir")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if !Path::new(&sharedir)
        .join("extension/postgis.control")
        .is_file()
    {
        return Err(format!("PostGIS is not installed for {}", bin.display()));
    }
    let root = is_root();
    let dir = tempfile::Builder::new()
        .prefix("calanque-it-pg-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    if root {
        run(
            {
                let mut c = Command::new("chown");
                c.args(["-R", "postgres"]).arg(&dir);
                c
            },
            "chown",
        )?;
    }
    let data = dir.join("data");
    let mut initdb = server_command(&bin, "initdb", root);
    initdb.arg("-D").arg(&data).args([
        "--auth=trust",
        "--username=postgres",
        "--encoding=UTF8",
        "--no-locale",
        "-N",
    ]);
    run(initdb, "initdb")?;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    // Durability is not what these tests check: skip the fsyncs.
    let options = format!(
        "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c max_connections=400 -c shared_buffers=64MB",
        dir.display()
    );
    let mut pg_ctl = server_command(&bin, "pg_ctl", root);
    pg_ctl
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(dir.join("server.log"))
        .args(["-w", "-t", "60", "-o", &options, "start"]);
    run(pg_ctl, "pg_ctl start")?;
    let watchdog = spawn_watchdog(&bin, &dir, root);
    let cluster = Cluster {
        bin,
        port,
        created: Mutex::new(HashSet::new()),
        _watchdog: watchdog,
    };
    cluster.psql("postgres", &format!("CREATE DATABASE {TEMPLATE}"))?;
    cluster.psql(TEMPLATE, "CREATE EXTENSION postgis")?;
    Ok(cluster)
}

/// A shell that waits until the test process is gone, then stops the cluster and
/// removes its directory.
fn spawn_watchdog(bin: &Path, dir: &Path, root: bool) -> Option<Child> {
    let script = r#"
        while kill -0 "$1" 2>/dev/null; do sleep 0.5; done
        if [ "$4" = 1 ]; then
            runuser -u postgres -- "$2/pg_ctl" -D "$3/data" -m immediate stop >/dev/null 2>&1
        else
            "$2/pg_ctl" -D "$3/data" -m immediate stop >/dev/null 2>&1
        fi
        sleep 0.5; rm -rf "$3"
    "#;
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("calanque-test-pg-watchdog")
        .arg(std::process::id().to_string())
        .arg(bin)
        .arg(dir)
        .arg(if root { "1" } else { "0" })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}
