//! A throwaway PostgreSQL cluster for tests: `initdb` into a temporary directory, a free port on
//! loopback, stopped on drop. PostgreSQL refuses to run as root, so as root the server runs as
//! the `postgres` user that Debian's package creates (`.ci/run` installs the package).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub url: String,
}

fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries not found under /usr/lib/postgresql: install Debian's `postgresql` package (scripts/test.sh does) or set PG_BIN")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found
        .pop()
        .expect("no initdb under /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a PostgreSQL program, as `postgres` when we are root.
fn run(bin: &Path, program: &str, args: &[&str]) {
    let exe = bin.join(program);
    let status = if is_root() {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&exe)
            .args(args)
            .stdout(Stdio::null())
            .status()
    } else {
        Command::new(&exe).args(args).stdout(Stdio::null()).status()
    }
    .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
    assert!(status.success(), "{program} {args:?} failed: {status}");
}

impl PgCluster {
    pub fn start() -> PgCluster {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("dk-pg-")
            .tempdir()
            .expect("temporary directory");
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success());
        }
        let data = dir.path().join("data");
        let data_s = data.to_str().expect("utf-8 path");
        run(
            &bin,
            "initdb",
            &[
                "-D",
                data_s,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let socket_dir = dir.path().to_str().expect("utf-8 path").to_string();
        let log = dir.path().join("server.log");
        let options = format!(
            "-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
        );
        run(
            &bin,
            "pg_ctl",
            &[
                "-D",
                data_s,
                "-o",
                &options,
                "-l",
                log.to_str().expect("utf-8"),
                "-w",
                "start",
            ],
        );
        run(
            &bin,
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "dartmouth",
            ],
        );
        PgCluster {
            url: format!("postgres://postgres@127.0.0.1:{port}/dartmouth"),
            dir,
            bin,
        }
    }
}

impl PgCluster {
    /// A new, empty database on this cluster: its URL.
    pub fn database(&self, name: &str) -> String {
        let port = self
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.split('/').next())
            .expect("the cluster's port");
        run(
            &self.bin,
            "createdb",
            &["-h", "127.0.0.1", "-p", port, "-U", "postgres", name],
        );
        format!("postgres://postgres@127.0.0.1:{port}/{name}")
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        if let Some(d) = data.to_str() {
            let exe = self.bin.join("pg_ctl");
            let args = ["-D", d, "-m", "immediate", "-w", "stop"];
            let _ = if is_root() {
                Command::new("runuser")
                    .args(["-u", "postgres", "--"])
                    .arg(&exe)
                    .args(args)
                    .status()
            } else {
                Command::new(&exe).args(args).status()
            };
        }
    }
}
