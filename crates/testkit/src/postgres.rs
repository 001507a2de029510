//! A real PostgreSQL for the fleet history's tests: a cluster of its own
//! (`initdb`) in a temporary folder, on a free port on 127.0.0.1, with
//! password authentication, stopped by PID. Debian's `postgresql` package
//! provides it (`.ci/run` installs it); PostgreSQL refuses to run as root,
//! so under root the cluster runs as the package's `postgres` user.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::node::free_port;

/// The cluster's superuser and its password.
pub const USER: &str = "postgres";
pub const PASSWORD: &str = "fleet-test-password";

/// One running cluster, stopped when dropped.
pub struct Postgres {
    child: Option<Child>,
    dir: TempDir,
    pub port: u16,
    bin: PathBuf,
    /// The user it runs as (when the tests run as root).
    owner: Option<(u32, u32)>,
}

/// Where the server's programs are: `NDAS_PG_BIN`, else Debian's newest
/// `/usr/lib/postgresql/<version>/bin`, else the PATH.
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("NDAS_PG_BIN") {
        return dir.into();
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL's server is missing: install Debian's postgresql package (.ci/run does), or set NDAS_PG_BIN"
        ),
    }
}

/// The `postgres` user's ids when running as root.
fn owner() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .expect("the tests run as root and there is no postgres user (Debian's postgresql package makes it)");
    let fields: Vec<&str> = line.split(':').collect();
    Some((fields[2].parse().unwrap(), fields[3].parse().unwrap()))
}

impl Postgres {
    /// Creates the cluster and starts it.
    pub async fn start() -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("ndas-pg-")
            .tempdir()
            .unwrap();
        let owner = owner();
        let mut pg = Postgres {
            child: None,
            port: free_port(),
            bin: bin_dir(),
            owner,
            dir,
        };
        let data = pg.data();
        std::fs::create_dir(&data).unwrap();
        let pwfile = pg.dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        if let Some((uid, gid)) = owner {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(pg.dir.path(), std::fs::Permissions::from_mode(0o755))
                .unwrap();
            for path in [&data, &pwfile] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
            }
        }
        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                USER,
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.run().await;
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.owner {
            command.uid(uid).gid(gid);
        }
        command.env("LC_ALL", "C").current_dir(self.dir.path());
        command
    }

    async fn run(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("log")).unwrap();
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string()])
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
            ])
            .args(["-c", "fsync=off", "-c", "max_connections=50"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.psql("SELECT 1");
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start: {}",
                std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `postgres://ndas:…@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        self.url_as(USER, PASSWORD)
    }

    /// The URL with other credentials.
    pub fn url_as(&self, user: &str, password: &str) -> String {
        format!(
            "postgres://{user}:{password}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    fn psql(&self, sql: &str) -> Output {
        self.psql_as((USER, PASSWORD, "postgres"), sql)
    }

    /// Runs `sql` as `user` with `password` on `database`.
    pub fn psql_as(&self, (user, password, database): (&str, &str, &str), sql: &str) -> Output {
        Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", user])
            .args([
                "-d",
                database,
                "-X",
                "-A",
                "-t",
                "-F",
                "\t",
                "-v",
                "ON_ERROR_STOP=1",
            ])
            .args(["-c", sql])
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "3")
            .output()
            .unwrap()
    }

    /// Runs `sql`; its rows, each a tab-separated line. Panics on error.
    pub fn query(&self, sql: &str) -> Vec<String> {
        let out = self.psql(sql);
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// One value.
    pub fn value(&self, sql: &str) -> String {
        self.query(sql).into_iter().next().unwrap_or_default()
    }

    /// Stops the server (a fast shutdown: SIGINT to its PID) and waits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: a signal to our own child's PID.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            let _ = child.wait();
        }
    }

    /// Starts it again on the same data and port.
    pub async fn restart(&mut self) {
        self.stop();
        self.run().await;
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The environment that points `psql` at this cluster as its superuser.
    pub fn client_env(&self) -> Vec<(&'static str, String)> {
        let path = std::env::var("PATH").unwrap_or_default();
        vec![
            ("PGHOST", "127.0.0.1".into()),
            ("PGPORT", self.port.to_string()),
            ("PGPASSWORD", PASSWORD.into()),
            ("POSTGRES_USER", USER.into()),
            ("PATH", format!("{}:{path}", self.bin.display())),
        ]
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
