//! Test support: the real broker binary, started on a free port, and a small HTTP
//! client with the NGSI-LD conventions (tenant header, ProblemDetails checks).
//!
//! One broker is shared by the whole test binary ([`shared`]); every test works in its
//! own tenant with its own entity ids, so tests run in parallel against it. Tests that
//! need a broker of their own (persistence, size cap) start one with [`TestServer::start`].
//!
//! The broker must not outlive the tests: Rust does not run destructors of statics at
//! exit, so each broker gets a watchdog shell that polls the test process and kills the
//! broker (and removes the shared data directory) once the test process is gone.
//!
//! Backend choice: the root file of the test binary says (`crate::POSTGRES`). The
//! PostgreSQL pass (`tests/integration_postgres.rs`) gives each broker a database of
//! its own in a throwaway cluster (`pg_cluster`); the SQLite pass
//! (`tests/integration.rs`) uses the embedded store in a temporary data directory, or
//! `--database-url $CALANQUE_TEST_DATABASE_URL` if that is set.

#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::Value;

pub const BASE: &str = "/ngsi-ld/v1";
pub const CORE_CONTEXT: &str = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld";
pub const SDM_ENVIRONMENT: &str =
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/context.jsonld";
pub const SDM_ENV_PREFIX: &str = "https://smartdatamodels.org/dataModel.Environment/";
pub const ERR_PREFIX: &str = "https://uri.etsi.org/ngsi-ld/errors/";
pub const JSONLD_REL: &str = "http://www.w3.org/ns/json-ld#context";

/// Error types accepted for an unknown or repeated query parameter: NGSI-LD 1.8 does not
/// say which of the two; the ETSI conformance suite (059_01) expects InvalidRequest.
pub const UNKNOWN_PARAM: &[&str] = &["InvalidRequest", "BadRequestData"];

/// Error types accepted for a request body that is JSON but not what the endpoint reads.
pub const BAD_BODY: &[&str] = &["BadRequestData", "InvalidRequest"];

/// HTTP statuses accepted for LdContextNotAvailable: 503 in GS CIM 009 1.8, 504 since
/// 1.9.1 (the ETSI conformance suite expects 504; see conformance/README.md).
pub const LD_CONTEXT_NOT_AVAILABLE_STATUS: &[u16] = &[503, 504];

const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// A running broker process.
pub struct TestServer {
    child: Option<Child>,
    watchdog: Option<Child>,
    pub port: u16,
    pub base_url: String,
    pub data_dir: PathBuf,
    log_path: PathBuf,
    extra_args: Vec<String>,
    /// A database shared with another broker (instead of the one of `data_dir`).
    shared_database: Option<String>,
    /// Owns the data directory of brokers started with [`TestServer::start`].
    _dir: Option<tempfile::TempDir>,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// A raw HTTP/1.0 GET, blocking, for the start-up probe (no async runtime needed).
fn probe_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().ok()?,
        Duration::from_millis(500),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace().nth(1)?.parse().ok()
}

impl TestServer {
    /// Starts a broker on a fresh temporary data directory.
    pub fn start(extra_args: &[&str]) -> TestServer {
        let dir = tempfile::Builder::new()
            .prefix("calanque-it-")
            .tempdir()
            .expect("create a temporary data directory");
        let mut s = Self::start_in(dir.path(), extra_args);
        s._dir = Some(dir);
        s
    }

    /// Starts a broker on the given data directory (kept by the caller).
    pub fn start_in(data_dir: &Path, extra_args: &[&str]) -> TestServer {
        // On PostgreSQL, the CLI run before may not have created it (the log goes there).
        std::fs::create_dir_all(data_dir).expect("create the data directory");
        let mut s = TestServer {
            child: None,
            watchdog: None,
            port: 0,
            base_url: String::new(),
            data_dir: data_dir.to_path_buf(),
            log_path: data_dir.join("broker.log"),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            shared_database: None,
            _dir: None,
        };
        s.launch(None);
        s
    }

    /// Starts a second broker on the database of `other` (PostgreSQL only: several
    /// brokers sharing one database).
    pub fn start_sharing(other: &TestServer, extra_args: &[&str]) -> TestServer {
        let dir = tempfile::Builder::new()
            .prefix("calanque-it-")
            .tempdir()
            .expect("create a temporary data directory");
        let mut s = TestServer {
            child: None,
            watchdog: None,
            port: 0,
            base_url: String::new(),
            data_dir: dir.path().to_path_buf(),
            log_path: dir.path().join("broker.log"),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            shared_database: Some(
                other
                    .database_url()
                    .expect("start_sharing needs a broker on PostgreSQL"),
            ),
            _dir: None,
        };
        s.launch(None);
        s._dir = Some(dir);
        s
    }

    /// The `--database-url` this broker runs with, if not the embedded SQLite store:
    /// in the PostgreSQL pass, a database of the test cluster named after the data
    /// directory (so a restart finds the same data); otherwise
    /// `CALANQUE_TEST_DATABASE_URL` if set.
    pub fn database_url(&self) -> Option<String> {
        if let Some(url) = &self.shared_database {
            return Some(url.clone());
        }
        database_url_for(&self.data_dir)
    }

    fn launch(&mut self, cleanup_dir: Option<&Path>) {
        // A port picked this way can, rarely, be taken by someone else before the broker
        // binds it: retry with another port when the broker says it cannot listen.
        for attempt in 0..4 {
            let port = free_port();
            let log = File::options()
                .create(true)
                .append(true)
                .open(&self.log_path)
                .expect("open the broker log");
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_calanque"));
            cmd.arg("--host")
                .arg("127.0.0.1")
                .arg("--port")
                .arg(port.to_string())
                .arg("--data-dir")
                .arg(&self.data_dir)
                .args(&self.extra_args);
            if let Some(url) = self.database_url() {
                cmd.arg("--database-url").arg(url);
            }
            for (k, _) in std::env::vars() {
                if k.starts_with("CALANQUE_") {
                    cmd.env_remove(k);
                }
            }
            cmd.env("CALANQUE_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone().expect("clone log handle")))
                .stderr(Stdio::from(log));
            let child = cmd.spawn().expect("spawn the calanque binary");
            let broker_pid = child.id();
            self.child = Some(child);
            self.watchdog = spawn_watchdog(broker_pid, cleanup_dir);
            self.port = port;
            self.base_url = format!("http://127.0.0.1:{port}");
            match self.wait_ready() {
                Ok(()) => return,
                Err(exited) if exited && attempt < 3 && self.log().contains("cannot listen") => {
                    continue
                }
                Err(_) => panic!(
                    "the calanque broker did not answer GET /health with 200 within {:?} \
                     (port {port}, data dir {}).\n--- broker output ---\n{}",
                    STARTUP_TIMEOUT,
                    self.data_dir.display(),
                    self.log()
                ),
            }
        }
    }

    /// Polls GET /health until 200. `Err(true)` if the process exited.
    fn wait_ready(&mut self) -> Result<(), bool> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    self.child = None;
                    return Err(true);
                }
            }
            if probe_status(self.port, "/health") == Some(200) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(false)
    }

    /// What the broker wrote to stdout/stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Kills the broker with SIGKILL (no graceful shutdown) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }

    /// Asks the broker to stop (SIGTERM) and waits up to `timeout` for it to exit;
    /// returns its exit status, or `None` if it was still running (then it is killed).
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        status
    }

    /// Starts the broker again on the same data directory (on a new port).
    pub fn restart(&mut self) {
        self.kill9();
        self.launch(None);
    }

    pub fn api(&self) -> Api {
        Api::new(&self.base_url, Some(new_tenant()))
    }

    pub fn api_default_tenant(&self) -> Api {
        Api::new(&self.base_url, None)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The `--database-url` of a broker whose data directory is `data_dir` in this pass
/// (`None`: the embedded SQLite store).
pub fn database_url_for(data_dir: &Path) -> Option<String> {
    if crate::POSTGRES {
        return crate::pg_cluster::cluster().map(|c| c.database_url(data_dir));
    }
    std::env::var("CALANQUE_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A shell that waits until the test process or the broker is gone, then kills the
/// broker and, for the shared broker, removes its data directory.
fn spawn_watchdog(broker_pid: u32, cleanup_dir: Option<&Path>) -> Option<Child> {
    let script = r#"
        while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 0.5; done
        kill -9 "$2" 2>/dev/null
        if [ -n "$3" ]; then sleep 0.5; rm -rf "$3"; fi
    "#;
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("calanque-test-watchdog")
        .arg(std::process::id().to_string())
        .arg(broker_pid.to_string())
        .arg(
            cleanup_dir
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

/// The broker shared by all tests of this binary, started on first use.
pub fn shared() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("calanque-it-shared-")
            .tempdir()
            .expect("create a temporary data directory")
            .keep();
        let mut s = TestServer {
            child: None,
            watchdog: None,
            port: 0,
            base_url: String::new(),
            data_dir: dir.clone(),
            log_path: dir.join("broker.log"),
            extra_args: Vec::new(),
            shared_database: None,
            _dir: None,
        };
        s.launch(Some(&dir));
        s
    })
}

pub fn new_tenant() -> String {
    format!("t-{}", uuid::Uuid::new_v4().simple())
}

/// A unique entity id of the given type.
pub fn uid(kind: &str) -> String {
    format!("urn:ngsi-ld:{kind}:{}", uuid::Uuid::new_v4().simple())
}

/// A Link header value naming a JSON-LD context.
pub fn link(url: &str) -> String {
    format!("<{url}>; rel=\"{JSONLD_REL}\"; type=\"application/ld+json\"")
}

/// A response read in full.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}); status {}, body: {:?}",
                self.status, self.text
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("header is text").to_string())
    }

    pub fn content_type(&self) -> String {
        self.header("content-type").unwrap_or_default()
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}; headers: {:?}",
            self.text, self.headers
        );
        self
    }
}

/// Checks an NGSI-LD ProblemDetails error response.
#[track_caller]
pub fn assert_problem(resp: &Resp, status: u16, kind: &str) -> Value {
    assert_eq!(
        resp.status, status,
        "expected {status} {kind}; got body: {}",
        resp.text
    );
    let ct = resp.content_type();
    assert!(
        ct.starts_with("application/json") || ct.starts_with("application/problem+json"),
        "ProblemDetails must be JSON, got Content-Type {ct:?}"
    );
    let body = resp.json();
    assert_eq!(
        body["type"].as_str(),
        Some(format!("{ERR_PREFIX}{kind}").as_str()),
        "wrong error type in {body}"
    );
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "ProblemDetails needs a title: {body}"
    );
    assert_eq!(
        body["status"].as_u64(),
        Some(status as u64),
        "status member in {body}"
    );
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|t| !t.trim().is_empty()),
        "ProblemDetails needs a detail: {body}"
    );
    body
}

/// Checks a ProblemDetails response whose type is one of `kinds` (where the spec
/// allows either).
#[track_caller]
pub fn assert_problem_any(resp: &Resp, status: u16, kinds: &[&str]) -> Value {
    let body = resp.json();
    let t = body["type"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches(ERR_PREFIX)
        .to_string();
    assert!(
        kinds.contains(&t.as_str()),
        "expected one of {kinds:?}, got status {} body {}",
        resp.status,
        resp.text
    );
    assert_problem(resp, status, &t)
}

/// Checks a ProblemDetails object inside a batch/207 body (no HTTP status).
#[track_caller]
pub fn assert_problem_value(v: &Value, kind: &str) {
    assert_eq!(
        v["type"].as_str(),
        Some(format!("{ERR_PREFIX}{kind}").as_str()),
        "wrong error type in {v}"
    );
    assert!(
        v["title"].as_str().is_some_and(|t| !t.is_empty()),
        "title in {v}"
    );
    assert!(
        v["detail"].as_str().is_some_and(|t| !t.is_empty()),
        "detail in {v}"
    );
}

/// Checks that a string is an ISO 8601 / RFC 3339 date-time.
#[track_caller]
pub fn assert_datetime(v: &Value) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("expected a date-time string, got {v}"));
    assert!(
        chrono::DateTime::parse_from_rfc3339(s).is_ok(),
        "'{s}' is not an ISO 8601 date-time"
    );
}

/// A client for one tenant of one broker.
#[derive(Clone)]
pub struct Api {
    pub client: reqwest::Client,
    pub base_url: String,
    pub tenant: Option<String>,
}

/// The shared broker, in a tenant of its own.
pub fn api() -> Api {
    shared().api()
}

/// The shared broker, default tenant.
pub fn api_default_tenant() -> Api {
    shared().api_default_tenant()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("build the HTTP client")
}

impl Api {
    pub fn new(base_url: &str, tenant: Option<String>) -> Api {
        Api {
            client: client(),
            base_url: base_url.to_string(),
            tenant,
        }
    }

    /// The same broker, another tenant (`None` = default tenant).
    pub fn in_tenant(&self, tenant: Option<&str>) -> Api {
        Api {
            client: self.client.clone(),
            base_url: self.base_url.clone(),
            tenant: tenant.map(str::to_string),
        }
    }

    /// The URL of an NGSI-LD API path (`/entities/...`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{BASE}{path}", self.base_url)
    }

    /// A request to an NGSI-LD path, with the tenant header.
    pub fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.raw(method, &self.url(path))
    }

    /// A request to a full URL, with the tenant header.
    pub fn raw(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        let mut r = self.client.request(method, url);
        if let Some(t) = &self.tenant {
            r = r.header("NGSILD-Tenant", t);
        }
        r
    }

    pub async fn send(&self, r: reqwest::RequestBuilder) -> Resp {
        let resp = r.send().await.expect("HTTP request to the broker failed");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("read the response body");
        Resp {
            status,
            headers,
            text,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.req(Method::GET, path)).await
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut r = self.req(Method::GET, path);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        self.send(r).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(self.req(Method::DELETE, path)).await
    }

    /// A JSON body sent as application/json.
    pub async fn json(&self, method: Method, path: &str, body: &Value) -> Resp {
        self.send(
            self.req(method, path)
                .header("Content-Type", "application/json")
                .body(body.to_string()),
        )
        .await
    }

    /// A JSON body sent as application/json with a Link context.
    pub async fn json_linked(&self, method: Method, path: &str, body: &Value, ctx: &str) -> Resp {
        self.send(
            self.req(method, path)
                .header("Content-Type", "application/json")
                .header("Link", link(ctx))
                .body(body.to_string()),
        )
        .await
    }

    /// Raw bytes with the given content type.
    pub async fn body(&self, method: Method, path: &str, content_type: &str, body: &str) -> Resp {
        self.send(
            self.req(method, path)
                .header("Content-Type", content_type)
                .body(body.to_string()),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.json(Method::POST, path, body).await
    }

    /// POST as application/ld+json (the body carries its own @context).
    pub async fn post_ld(&self, path: &str, body: &Value) -> Resp {
        self.body(Method::POST, path, "application/ld+json", &body.to_string())
            .await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Resp {
        self.json(Method::PATCH, path, body).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.json(Method::PUT, path, body).await
    }

    /// Creates an entity (application/json, core context) and asserts 201.
    pub async fn create(&self, entity: &Value) {
        let r = self.post("/entities", entity).await;
        assert_eq!(r.status, 201, "create failed: {} for {}", r.text, entity);
    }

    /// Reads an entity (normalized, core context), asserting 200.
    pub async fn entity(&self, id: &str) -> Value {
        self.entity_q(id, "").await
    }

    /// Reads an entity with a query string (e.g. `?options=sysAttrs`), asserting 200.
    pub async fn entity_q(&self, id: &str, query: &str) -> Value {
        let r = self.get(&format!("/entities/{id}{query}")).await;
        assert_eq!(r.status, 200, "GET {id}{query} failed: {}", r.text);
        r.json()
    }
}

/// Path of an entity.
/// The ids of an array of entities, in answer order.
pub fn ids(body: &Value) -> Vec<String> {
    body.as_array()
        .unwrap_or_else(|| panic!("array expected: {body}"))
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_string())
        .collect()
}

pub fn ent(id: &str) -> String {
    format!("/entities/{id}")
}
