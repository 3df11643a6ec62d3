//! Starts the real `bulwark` binary on an ephemeral port, for integration tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The superuser password every test server starts with (`BULWARK_ADMIN_PASSWORD`), unless
/// the test passes its own.
pub const ADMIN_PASSWORD: &str = "test-admin-password";

/// `Authorization` header value for the superuser `admin`.
pub fn admin_basic_auth() -> String {
    basic_auth("admin", ADMIN_PASSWORD)
}

/// `Authorization: Basic …` value for a username and password.
pub fn basic_auth(username: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64(format!("{username}:{password}").as_bytes())
    )
}

/// Standard base64 with padding (the alphabet Basic auth and container auth files use).
pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub struct TestServer {
    bin: PathBuf,
    data: tempfile::TempDir,
    extra_args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    /// Where the server's stderr (its log) goes, if not to the test's.
    log: Option<PathBuf>,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// `127.0.0.1:PORT`, as container tools want it.
    pub host: String,
}

impl TestServer {
    /// Starts `bin` with a fresh data directory.
    pub fn start(bin: impl AsRef<Path>) -> TestServer {
        Self::start_with(bin, &[], &[])
    }

    /// Starts `bin` with extra `serve` arguments and environment variables (the superuser's
    /// password is [`ADMIN_PASSWORD`] unless `env` sets `BULWARK_ADMIN_PASSWORD`).
    pub fn start_with(
        bin: impl AsRef<Path>,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> TestServer {
        Self::start_inner(bin.as_ref(), extra_args, env, false)
    }

    /// [`start_with`](Self::start_with), the server's log kept for [`log`](Self::log)
    /// rather than shown in the test's output.
    pub fn start_with_log(
        bin: impl AsRef<Path>,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> TestServer {
        Self::start_inner(bin.as_ref(), extra_args, env, true)
    }

    fn start_inner(
        bin: &Path,
        extra_args: &[&str],
        env: &[(&str, &str)],
        keep_log: bool,
    ) -> TestServer {
        let data = tempfile::tempdir().expect("temp dir");
        let log = keep_log.then(|| data.path().join("server.log"));
        let mut s = TestServer {
            bin: bin.to_owned(),
            data,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
            log,
            url: String::new(),
            host: String::new(),
        };
        s.spawn("127.0.0.1:0");
        s
    }

    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// What the server has logged so far (started with [`start_with_log`](Self::start_with_log)).
    pub fn log(&self) -> String {
        let path = self.log.as_ref().expect("started with start_with_log");
        std::fs::read_to_string(path).expect("read the server log")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn spawn(&mut self, listen: &str) {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("serve")
            .arg("--listen")
            .arg(listen)
            .arg("--data-dir")
            .arg(self.data.path())
            .args(&self.extra_args)
            .env("BULWARK_LOG__LEVEL", "warn")
            .env("BULWARK_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(match &self.log {
                Some(path) => std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("open the server log")
                    .into(),
                None => Stdio::inherit(),
            });
        let mut child = cmd.spawn().expect("start bulwark");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("bulwark listening on ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("bulwark did not report its address within 60 s");
        self.host = url
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_owned();
        self.url = url;
        self.child = Some(child);
    }

    /// Writes a containers auth file (`REGISTRY_AUTH_FILE` for skopeo, podman, buildah) with
    /// `username`'s credentials for this server, and returns its path.
    pub fn auth_file(&self, username: &str, password: &str) -> PathBuf {
        let path = self
            .data
            .path()
            .join(format!("auth-{}.json", unique_name(username)));
        let auth = base64(format!("{username}:{password}").as_bytes());
        std::fs::write(
            &path,
            format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, self.host),
        )
        .expect("write auth file");
        path
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it exited cleanly.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        c.wait().map(|s| s.success()).unwrap_or(false)
    }

    /// Starts the server again on the same port and data directory.
    pub fn restart(&mut self) {
        self.kill();
        let host = self.host.clone();
        // The port was just released; binding it again may briefly fail on a busy machine.
        for _ in 0..50 {
            if std::net::TcpListener::bind(&host).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.spawn(&host);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A name no other test of this run uses: `<prefix>_<pid>_<nanos>_<counter>`.
fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh, empty database on the test PostgreSQL server (started by `scripts/test.sh`,
/// which exports `BULWARK_TEST_POSTGRES_URL`); returns its URL.
pub fn postgres_database() -> String {
    let admin = std::env::var("BULWARK_TEST_POSTGRES_URL").expect(
        "BULWARK_TEST_POSTGRES_URL is not set: run the suite with scripts/test.sh, \
         which starts PostgreSQL",
    );
    let name = unique_name("t");
    let out = Command::new("psql")
        .arg(&admin)
        .args(["-v", "ON_ERROR_STOP=1", "-qc"])
        .arg(format!("CREATE DATABASE {name}"))
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "creating a test database failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (server, _) = admin.rsplit_once('/').expect("URL with a database path");
    format!("{server}/{name}")
}

/// A place in the test S3 store: the bucket `scripts/test.sh` created in the Garage it
/// started (exported as `BULWARK_TEST_S3_*`), under a key prefix of this call's own.
#[derive(Clone, Debug)]
pub struct S3Place {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Unique to this call: tests sharing the bucket never see each other's keys.
    pub prefix: String,
}

/// A fresh, empty key prefix in the test bucket.
pub fn s3_place() -> S3Place {
    let var = |name: &str| {
        std::env::var(format!("BULWARK_TEST_S3_{name}")).unwrap_or_else(|_| {
            panic!(
                "BULWARK_TEST_S3_{name} is not set: run the suite with scripts/test.sh, \
                 which starts Garage (an S3-compatible store)"
            )
        })
    };
    S3Place {
        endpoint: var("ENDPOINT"),
        bucket: var("BUCKET"),
        region: var("REGION"),
        access_key_id: var("ACCESS_KEY_ID"),
        secret_access_key: var("SECRET_ACCESS_KEY"),
        prefix: unique_name("t"),
    }
}

impl S3Place {
    /// The `BULWARK_STORAGE__S3__*` variables that put `bulwark serve`'s blobs here.
    pub fn server_env(&self) -> Vec<(String, String)> {
        [
            ("ENDPOINT", &self.endpoint),
            ("BUCKET", &self.bucket),
            ("REGION", &self.region),
            ("ACCESS_KEY_ID", &self.access_key_id),
            ("SECRET_ACCESS_KEY", &self.secret_access_key),
            ("PREFIX", &self.prefix),
            ("PATH_STYLE", &"true".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (format!("BULWARK_STORAGE__S3__{k}"), v.clone()))
        .collect()
    }
}

/// Deterministic incompressible bytes (xorshift), different for each seed.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A self-signed P-256 certificate for `127.0.0.1` made with the `openssl` command, as
/// `(cert.pem, key.pem)` in `dir`: `BULWARK_TLS__CERT`/`KEY` of a TLS test server.
pub fn self_signed_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_the_standard_alphabet_with_padding() {
        assert_eq!(super::base64(b""), "");
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foo"), "Zm9v");
        assert_eq!(super::base64(b"admin:pw?>"), "YWRtaW46cHc/Pg==");
    }
}
