//! A throwaway PostgreSQL cluster for tests: `initdb` into a temporary directory, a free port on
//! loopback, stopped on drop. It serves TLS only (`ssl = on`, plain TCP rejected by
//! `pg_hba.conf`) with a server certificate for `localhost` and `127.0.0.1` signed by a
//! certificate authority made here (`ca`), so every PostgreSQL test runs encrypted and a client
//! can verify the server in full. PostgreSQL refuses to run as root, so as root the server runs
//! as the `postgres` user that Debian's package creates (`.ci/run` installs the package).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub url: String,
    /// The certificate authority that signed the server's certificate (a PEM file).
    pub ca: PathBuf,
    /// `pg_ctl start`'s server options, to start it again after a crash.
    #[allow(
        dead_code,
        reason = "only the server's outage test restarts the cluster"
    )]
    options: String,
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

/// The server's owner: `postgres` when we are root (a file the server reads must be its own).
fn give_to_server(path: &Path) {
    if is_root() {
        let status = Command::new("chown")
            .arg("postgres:postgres")
            .arg(path)
            .status()
            .expect("chown");
        assert!(status.success());
    }
}

/// A certificate authority (its PEM) and a server certificate it signed for `localhost` and
/// `127.0.0.1` with the server's key (both PEM).
fn certificates() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.distinguished_name
        .push(DnType::CommonName, "dartmouth test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let issuer =
        CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key")).expect("CA");
    let server = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("server parameters");
    let key = KeyPair::generate().expect("server key");
    let cert = server.signed_by(&key, &issuer).expect("server certificate");
    (issuer.pem(), cert.pem(), key.serialize_pem())
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
        // TLS: the server's pair in its data directory (the key private to it), plain TCP
        // rejected.
        let (ca_pem, cert, key) = certificates();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, ca_pem).expect("write ca.pem");
        for (name, pem) in [("server.crt", &cert), ("server.key", &key)] {
            let path = data.join(name);
            std::fs::write(&path, pem).expect("write the server's pair");
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .expect("chmod");
            give_to_server(&path);
        }
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 trust\n\
             hostnossl all all 127.0.0.1/32 reject\n",
        )
        .expect("write pg_hba.conf");
        give_to_server(&data.join("pg_hba.conf"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let socket_dir = dir.path().to_str().expect("utf-8 path").to_string();
        let log = dir.path().join("server.log");
        let options = format!(
            "-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c ssl=on"
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
            ca,
            options,
        }
    }
}

impl PgCluster {
    /// This cluster's URL with the server verified in full against the test's CA.
    pub fn verified_url(&self) -> String {
        format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            self.url,
            self.ca.display()
        )
    }

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

#[allow(
    dead_code,
    reason = "only the server's outage test crashes the cluster"
)]
impl PgCluster {
    /// Crashes the server: SIGKILL to the postmaster and every backend at once.
    pub fn kill(&self) {
        let pid_file = self.dir.path().join("data").join("postmaster.pid");
        let pid = std::fs::read_to_string(&pid_file).expect("postmaster.pid");
        let pid = pid.lines().next().expect("a pid").trim().to_string();
        let _ = Command::new("pkill").args(["-9", "-P", &pid]).status();
        let status = Command::new("kill")
            .args(["-9", &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -9 {pid}");
    }

    /// Restarts the server with commits that wait for their WAL write (it starts with
    /// `synchronous_commit = off` for speed, which loses the last commits when the server is
    /// killed, though not the machine).
    pub fn durable_commits(&mut self) {
        let data = self.dir.path().join("data");
        run(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("utf-8 path"),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
        self.options = self.options.replace(" -c synchronous_commit=off", "");
        self.restart();
    }

    /// Starts the server again on its data (crash recovery runs first).
    pub fn restart(&self) {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("server.log");
        run(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("utf-8 path"),
                "-o",
                &self.options,
                "-l",
                log.to_str().expect("utf-8"),
                "-w",
                "start",
            ],
        );
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
