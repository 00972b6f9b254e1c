//! Test harness for end-to-end tests: a [`Federation`] issues certificates, creates databases,
//! starts real gateways on ephemeral loopback ports and tears them down.
//!
//! Everything is real: TLS with the federation's CA, LMDB ledgers, SQLite databases, HTTP clients.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use causeway::config::GatewayConfig;
use causeway::directory::Directory;
use causeway::gateway::Gateway;
use causeway::identity::tls::TlsMaterial;
use causeway::identity::GatewayKey;
use causeway::layout::{self, Layout, DEMO_DEPARTMENTS};
use causeway::transport::app_client::{bearer, AppClient};
use causeway::transport::client::PeerClient;
use causeway::transport::frame::ResetCode;
use causeway::transport::peer::PeerTransport;
use causeway::transport::quic::QuicClient;
use causeway::transport::{Transport, QUIC_ALPN};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

/// People per demo database in tests (small, so setup stays fast).
pub const TEST_PEOPLE: u32 = 200;

/// Every test asks as one officer, often thousands of times a minute, where a department has many:
/// the harness raises the per-officer budget (docs/OPERATIONS.md, "Rate limits") in every config.
/// Tests of the budgets themselves replace this section.
pub const TEST_OFFICER_LIMITS: &str =
    "\n[client.officer_rate_limits]\ndecisions = 1000000\ndenials = 60\nwindow_secs = 60\n";

/// A running federation of the three demo departments.
pub struct Federation {
    /// Keeps the directory alive.
    pub root: tempfile::TempDir,
    /// Files and addresses.
    pub layout: Layout,
    /// Running gateways, by position in `layout.departments` (None when stopped).
    pub gateways: Vec<Option<Gateway>>,
    /// The transport gateways prefer towards each other.
    pub transport: Transport,
}

impl Federation {
    /// Lay out the demo federation in a fresh temporary directory (not started), preferring HTTPS.
    pub fn create() -> Result<Federation> {
        Self::create_with(Transport::Https)
    }

    /// Lay out the demo federation (not started); gateways prefer `transport` towards each other.
    pub fn create_with(transport: Transport) -> Result<Federation> {
        let root = tempfile::tempdir()?;
        let layout = layout::create_with(root.path(), "demo", DEMO_DEPARTMENTS, transport)?;
        layout::generate_demo_data(&layout, TEST_PEOPLE)?;
        for dept in &layout.departments {
            let mut config = std::fs::read_to_string(&dept.config)?;
            config.push_str(TEST_OFFICER_LIMITS);
            std::fs::write(&dept.config, config)?;
        }
        let gateways = layout.departments.iter().map(|_| None).collect();
        Ok(Federation {
            root,
            layout,
            gateways,
            transport,
        })
    }

    /// Lay out and start every gateway, preferring HTTPS.
    pub async fn start() -> Result<Federation> {
        Self::start_with(Transport::Https).await
    }

    /// Lay out and start every gateway, preferring `transport`.
    pub async fn start_with(transport: Transport) -> Result<Federation> {
        let mut fed = Self::create_with(transport)?;
        for i in 0..fed.layout.departments.len() {
            fed.start_at(i).await?;
        }
        Ok(fed)
    }

    fn index(&self, dept: &str) -> usize {
        self.layout
            .departments
            .iter()
            .position(|d| d.id.as_str() == dept)
            .unwrap_or_else(|| panic!("no department {dept} in the test federation"))
    }

    async fn start_at(&mut self, i: usize) -> Result<()> {
        let config = GatewayConfig::load(&self.layout.departments[i].config)?;
        self.gateways[i] = Some(Gateway::start(&config).await?);
        Ok(())
    }

    /// Start one department's gateway (again).
    pub async fn start_dept(&mut self, dept: &str) -> Result<()> {
        let i = self.index(dept);
        self.start_at(i).await
    }

    /// Stop one department's gateway cleanly.
    pub async fn stop_dept(&mut self, dept: &str) {
        let i = self.index(dept);
        if let Some(g) = self.gateways[i].take() {
            g.shutdown().await;
        }
    }

    /// Stop everything cleanly.
    pub async fn stop(&mut self) {
        for g in self.gateways.iter_mut() {
            if let Some(g) = g.take() {
                g.shutdown().await;
            }
        }
    }

    /// A department's directory.
    pub fn dept_dir(&self, dept: &str) -> PathBuf {
        self.layout.departments[self.index(dept)].dir.clone()
    }

    /// A department's ledger directory.
    pub fn ledger_dir(&self, dept: &str) -> PathBuf {
        self.dept_dir(dept).join("ledger")
    }

    /// A department's running gateway.
    pub fn gateway(&self, dept: &str) -> &Gateway {
        self.gateways[self.index(dept)]
            .as_ref()
            .expect("gateway is running")
    }

    /// Ask `consumer`'s gateway (client API) for `dataset` from `provider`, as its case-desk
    /// application (mutual TLS) acting for `officer-1` (a token from the demo identity provider).
    pub async fn request(
        &self,
        consumer: &str,
        provider: &str,
        dataset: &str,
        params: Value,
        purpose: &str,
    ) -> Result<(u16, Value)> {
        self.request_with_headers(consumer, provider, dataset, params, purpose, &[])
            .await
    }

    /// [`Federation::request`] with extra HTTP headers, as an application would send them (e.g.
    /// `traceparent`).
    pub async fn request_with_headers(
        &self,
        consumer: &str,
        provider: &str,
        dataset: &str,
        params: Value,
        purpose: &str,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Value)> {
        let body = json!({
            "provider": provider, "dataset": dataset, "params": params, "purpose": purpose,
            "legal_basis": "test-act:s1", "case": "",
        });
        self.client(consumer)?
            .post_json_with_headers(&body, headers)
            .await
    }

    /// `consumer`'s case-desk application, acting for `officer-1`.
    pub fn client(&self, consumer: &str) -> Result<ClientApi> {
        self.client_as(consumer, layout::DEMO_APP, Some("officer-1"))
    }

    /// Application `app` of `consumer`, acting for `officer` (or on its own).
    pub fn client_as(&self, consumer: &str, app: &str, officer: Option<&str>) -> Result<ClientApi> {
        let app = self.layout.app_client(consumer, app)?;
        let authorization = officer
            .map(|officer| self.layout.officer_token(consumer, officer, &[]))
            .transpose()?
            .map(|token| bearer(&token));
        Ok(ClientApi { app, authorization })
    }

    /// The parsed federation directory.
    pub fn directory(&self) -> Directory {
        Directory::load(&self.layout.directory).expect("the test directory loads")
    }

    /// A peer client holding `dept`'s certificate, to speak the peer protocol directly.
    pub fn peer_client_as(&self, dept: &str) -> Result<PeerClient> {
        let certs = self.root.path().join("certs");
        tls_client(&certs, dept, "demo")
    }

    /// A peer transport holding `dept`'s certificate, preferring this federation's transport.
    pub fn peer_transport_as(&self, dept: &str) -> Result<PeerTransport> {
        let certs = self.root.path().join("certs");
        let https = tls_client(&certs, dept, "demo")?;
        let quic = match self.transport {
            Transport::Quic => Some(quic_client(&certs.join("ca.pem"), &certs, dept, "demo")?),
            Transport::Https => None,
        };
        Ok(PeerTransport::new(https, quic, self.transport))
    }

    /// Check that `consumer`'s gateway reached its peers over this federation's transport only
    /// (no silent fallback from QUIC to HTTPS).
    pub fn assert_carried_by_transport(&self, consumer: &str) {
        assert_transport(self.gateway(consumer).transport_stats(), self.transport);
    }

    /// `dept`'s signing key.
    pub fn signing_key(&self, dept: &str) -> GatewayKey {
        GatewayKey::load(
            &self
                .root
                .path()
                .join("certs")
                .join(format!("{dept}.signing.key")),
        )
        .expect("signing key loads")
    }
}

/// Lay out (once) and start the oversight node of `fed`, reporting a missing side at once (grace 0)
/// and pulling only when told to (tests drive every pull themselves).
pub async fn start_oversight(fed: &Federation) -> Result<(Gateway, layout::OversightLayout)> {
    start_oversight_node(fed, layout::DEMO_OVERSIGHT).await
}

/// Lay out (once) and start oversight node `id` of `fed`, as [`start_oversight`] does.
pub async fn start_oversight_node(
    fed: &Federation,
    id: &str,
) -> Result<(Gateway, layout::OversightLayout)> {
    let layout = match layout::open_oversight_node(&fed.layout, id)? {
        Some(l) => l,
        None => {
            let l = layout::create_oversight(&fed.layout, id)?;
            let text = std::fs::read_to_string(&l.config)?
                .replace("grace_secs = 30", "grace_secs = 0")
                .replace("pull_interval_ms = 2000", "pull_interval_ms = 3600000");
            std::fs::write(&l.config, text)?;
            let accounts: Vec<(&str, &[causeway::oversight::staff::Role], &str)> =
                layout::DEMO_STAFF
                    .iter()
                    .map(|(name, roles)| (*name, *roles, STAFF_PASSWORD))
                    .collect();
            layout::write_staff(&l.config, &accounts)?;
            l
        }
    };
    let since_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let gateway = Gateway::start(&GatewayConfig::load(&layout.config)?).await?;
    // The node pulls every log once as it starts (and then hourly, as configured above). Wait for
    // that round, so that a test's own pulls come after it instead of racing it.
    if let Some(node) = gateway.oversight() {
        for _ in 0..100 {
            let pulled = node.statuses().await?.iter().all(|s| {
                s.state
                    .last_pull_started_ms
                    .is_some_and(|at| at >= since_ms)
            });
            if pulled {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok((gateway, layout))
}

/// The password of every staff account [`start_oversight`] creates: `viewer`, `investigator`,
/// `officer` (investigator and subject officer) and `admin` (every role), as in
/// [`layout::DEMO_STAFF`].
pub const STAFF_PASSWORD: &str = "correct horse battery staple";

/// Run `causeway ARGS...` in-process, off the test's runtime (which keeps serving meanwhile);
/// `--staff NAME` signs in with [`STAFF_PASSWORD`].
pub async fn causeway_cli<I, S>(args: I) -> std::process::ExitCode
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    std::env::set_var("CAUSEWAY_STAFF_PASSWORD", STAFF_PASSWORD);
    let argv: Vec<String> = std::iter::once("causeway".to_owned())
        .chain(args.into_iter().map(|a| a.as_ref().to_owned()))
        .collect();
    tokio::task::spawn_blocking(move || causeway::cli::run_args(argv))
        .await
        .expect("the CLI thread does not panic")
}

/// Sign in to the oversight dashboard at `addr` as `name` (`POST /api/login`); the
/// `causeway_session=...` pair to send as the `Cookie` header.
pub async fn sign_in(addr: SocketAddr, name: &str, password: &str) -> Result<String> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = http::Request::post("/api/login")
        .header(http::header::HOST, addr.to_string())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(
            &json!({"name": name, "password": password}),
        )?)))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let cookie = response
        .headers()
        .get_all(http::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|v| v.starts_with("causeway_session="))
        .map(str::to_owned);
    let body = response.into_body().collect().await?.to_bytes();
    match cookie {
        Some(c) if status == 200 => Ok(c),
        _ => anyhow::bail!(
            "sign-in of {name} refused ({status}): {}",
            String::from_utf8_lossy(&body)
        ),
    }
}

/// GET `path` from the oversight dashboard at `addr` with the session `cookie`; status and body.
pub async fn staff_get(addr: SocketAddr, cookie: &str, path: &str) -> Result<(u16, String)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .header(http::header::COOKIE, cookie)
        .body(Full::new(Bytes::new()))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// The CSRF token of the session `cookie`, as the dashboard's forms carry it.
pub async fn staff_csrf(addr: SocketAddr, cookie: &str) -> Result<String> {
    let (_, page) = staff_get(addr, cookie, "/").await?;
    let at = page
        .find("name=\"csrf\" value=\"")
        .context("the overview has no form with a CSRF token")?;
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    Ok(rest[..rest.find('"').unwrap_or(0)].to_owned())
}

/// A peer client with the certificate of `dept` from the CA in `certs`.
pub fn tls_client(certs: &Path, dept: &str, federation: &str) -> Result<PeerClient> {
    let tls = TlsMaterial::load(
        &certs.join("ca.pem"),
        None,
        &certs.join(format!("{dept}.pem")),
        &certs.join(format!("{dept}.key")),
    )?;
    Ok(PeerClient::new(
        tls.client_config(causeway::transport::HTTPS_ALPN)?,
        federation.to_owned(),
    ))
}

/// Check that requests counted in `stats` went over `transport` only, without fallbacks.
pub fn assert_transport(stats: &causeway::transport::peer::TransportStats, transport: Transport) {
    let (https, quic, fallbacks) = stats.snapshot();
    match transport {
        Transport::Https => assert!(
            https > 0 && quic == 0,
            "expected HTTPS only: {https} over HTTPS, {quic} over QUIC"
        ),
        Transport::Quic => assert!(
            quic > 0 && https == 0 && fallbacks == 0,
            "expected QUIC only: {quic} over QUIC, {https} over HTTPS, {fallbacks} fallbacks"
        ),
    }
}

/// A QUIC client trusting the CA bundle `ca` and presenting `dept`'s certificate from `certs`.
pub fn quic_client(ca: &Path, certs: &Path, dept: &str, federation: &str) -> Result<QuicClient> {
    let tls = TlsMaterial::load(
        ca,
        None,
        &certs.join(format!("{dept}.pem")),
        &certs.join(format!("{dept}.key")),
    )?;
    Ok(QuicClient::new(
        tls.quic_client_config(QUIC_ALPN)?,
        federation.to_owned(),
    )?)
}

/// A raw QUIC connection to `addr` with `config` (any client certificate or none), for tests that
/// write frames by hand. Bounded: a handshake that does not finish in 5 s is an error.
pub async fn raw_quic_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> Result<quinn::Connection> {
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(config)?;
    let endpoint = quinn::Endpoint::client((std::net::Ipv4Addr::LOCALHOST, 0).into())?;
    let connecting = endpoint.connect_with(
        quinn::ClientConfig::new(Arc::new(crypto)),
        addr,
        "127.0.0.1",
    )?;
    let conn = tokio::time::timeout(Duration::from_secs(5), connecting)
        .await
        .context("QUIC handshake hung")??;
    Ok(conn)
}

/// What came back on a hand-written QUIC stream.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamOutcome {
    /// A response frame: status and body.
    Response(u16, Bytes),
    /// The server reset the stream with this code.
    Reset(Option<ResetCode>, u64),
}

/// Open a stream on `conn`, write `bytes`, finish the stream if `finish`, and read what comes back
/// (bounded by `wait`). Errors for anything but a response frame or a reset.
pub async fn raw_quic_stream(
    conn: &quinn::Connection,
    bytes: &[u8],
    finish: bool,
    wait: Duration,
) -> Result<StreamOutcome> {
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(bytes).await?;
    if finish {
        send.finish()?;
    }
    let answer = tokio::time::timeout(wait, recv.read_to_end(32 * 1024 * 1024))
        .await
        .context("no answer and no reset in time")?;
    match answer {
        Ok(bytes) => {
            let (header, body) = causeway::transport::frame::decode::<
                causeway::transport::frame::ResponseHeader,
            >(
                &bytes, &causeway::transport::frame::FrameLimits::RESPONSE
            )?;
            Ok(StreamOutcome::Response(
                header.status,
                Bytes::copy_from_slice(body),
            ))
        }
        Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code))) => {
            let code = code.into_inner();
            Ok(StreamOutcome::Reset(ResetCode::from_code(code), code))
        }
        Err(e) => Err(e.into()),
    }
}

/// A raw TLS connection attempt to a peer port with the given client config; returns the
/// HTTP status of a POST, or the error that refused it.
pub async fn raw_peer_post(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    body: Bytes,
) -> Result<u16> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1")?;
    let tls = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .context("handshake hung")??;
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await?;
    tokio::spawn(conn);
    let request = http::Request::post(format!(
        "https://127.0.0.1{}",
        causeway::transport::paths::EXCHANGE
    ))
    .body(Full::new(body))?;
    let response = tokio::time::timeout(Duration::from_secs(5), sender.send_request(request))
        .await
        .context("request hung")??;
    Ok(response.status().as_u16())
}

/// A department's application calling its gateway's client API: its certificate, and the officer's
/// token if it acts for one. Cheap to clone into tasks.
#[derive(Clone)]
pub struct ClientApi {
    /// The mutual-TLS client.
    pub app: AppClient,
    /// `Bearer <token>`, if the application acts for an officer.
    pub authorization: Option<String>,
}

impl ClientApi {
    /// POST raw `body` to `/v1/requests`; status and raw answer.
    pub async fn post(&self, body: Vec<u8>) -> Result<(u16, Bytes)> {
        self.post_with(body, &[]).await
    }

    /// [`ClientApi::post`] with extra headers.
    pub async fn post_with(&self, body: Vec<u8>, headers: &[(&str, &str)]) -> Result<(u16, Bytes)> {
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if let Some(authorization) = &self.authorization {
            if !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("authorization"))
            {
                all.push(("authorization", authorization));
            }
        }
        self.app
            .post(causeway::transport::paths::REQUESTS, &all, body)
            .await
    }

    /// POST `body` as JSON; status and parsed answer.
    pub async fn post_json(&self, body: &Value) -> Result<(u16, Value)> {
        self.post_json_with_headers(body, &[]).await
    }

    /// [`ClientApi::post_json`] with extra headers.
    pub async fn post_json_with_headers(
        &self,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Value)> {
        let (status, bytes) = self.post_with(serde_json::to_vec(body)?, headers).await?;
        let value = serde_json::from_slice(&bytes)
            .with_context(|| format!("not JSON: {}", String::from_utf8_lossy(&bytes)))?;
        Ok((status, value))
    }
}

/// One allowed exchange of the demo federation between `consumer` and `provider` (the pairs the
/// sample policies grant): its status, with the answer printed when it is not 200.
pub async fn exchange(fed: &Federation, consumer: &str, provider: &str) -> u16 {
    let (dataset, params, purpose) = match (consumer, provider) {
        ("tax-office", "civil-registry") => (
            "residents",
            serde_json::json!({"national_id": "D000042"}),
            "tax-assessment",
        ),
        ("social-welfare", "civil-registry") => (
            "residents",
            serde_json::json!({"national_id": "D000042"}),
            "benefit-eligibility",
        ),
        ("social-welfare", "tax-office") => (
            "income",
            serde_json::json!({"national_id": "D000042", "year": 2024}),
            "benefit-eligibility",
        ),
        pair => panic!("no allowed exchange between {pair:?} in the demo federation"),
    };
    let (status, answer) = fed
        .request(consumer, provider, dataset, params, purpose)
        .await
        .unwrap();
    if status != 200 {
        eprintln!("{consumer} -> {provider}: {status} {answer}");
    }
    status
}

/// Ask `provider` for `dataset` as `consumer`, allowed or denied: the exchange id.
pub async fn exchange_id(
    fed: &Federation,
    consumer: &str,
    provider: &str,
    dataset: &str,
    params: Value,
    purpose: &str,
) -> String {
    let (status, body) = fed
        .request(consumer, provider, dataset, params, purpose)
        .await
        .expect("the client API answers");
    assert!(
        status == 200 || status == 403,
        "{consumer} -> {provider}: {status} {body}"
    );
    body["exchange"]
        .as_str()
        .unwrap_or_else(|| panic!("no exchange id in {body}"))
        .to_owned()
}

/// Have the oversight node `gateway` runs pull every log now; each pull must succeed.
pub async fn pull_verified(
    gateway: &Gateway,
) -> Vec<(String, causeway::oversight::pull::PullReport)> {
    let node = gateway.oversight().expect("an oversight node");
    node.pull_all(Arc::new(|_: &str, _, _| {}))
        .await
        .into_iter()
        .map(|(log, report)| {
            let report = report.unwrap_or_else(|e| panic!("pulling {log} failed: {e}"));
            (log, report)
        })
        .collect()
}

/// Rebuild the (closed) ledger in `dir` by appending its entries again, signed with `key`: what
/// whoever holds a log's signing key could do to rewrite it. `edit` may change an entry, or
/// return false to leave it out.
pub async fn rebuild_ledger(
    dir: &Path,
    key: &GatewayKey,
    edit: impl Fn(&mut causeway_ledger::entry::Entry) -> bool,
) -> Result<()> {
    let entries = ledger_entries(dir)?;
    let rebuilt = dir.with_file_name("ledger.rebuilt");
    let ledger = causeway_ledger::Ledger::open(
        &rebuilt,
        causeway_ledger::LedgerOptions::default(),
        key.to_note_signer(),
    )?;
    for value in entries {
        let mut entry: causeway_ledger::entry::Entry = serde_json::from_value(value)?;
        if edit(&mut entry) {
            ledger.append(entry).await?;
        }
    }
    ledger.close();
    drop(ledger);
    std::fs::remove_dir_all(dir)?;
    std::fs::rename(&rebuilt, dir)?;
    Ok(())
}

/// Wait until `check` holds, polling every 100 ms for at most `within`; fail naming `what`
/// otherwise. For what must happen within some reload intervals: nothing waits a fixed time.
pub async fn eventually<F, Fut>(what: &str, within: std::time::Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + within;
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: still not so after {within:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// GET `path` over plain HTTP/1.1 (admin endpoints); status and body text.
pub async fn get_text(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .body(Full::new(Bytes::new()))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8(bytes.to_vec())?))
}

/// Replace the first `from` in the file at `path` with `to`; fails if `from` is not there.
pub fn rewrite(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// The workspace's root directory (docs, packaging, the other crates).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_owned()
}

/// Debian's promtool (package `prometheus`), or a failure that says how to get it.
pub fn promtool() -> PathBuf {
    for candidate in ["/usr/bin/promtool", "/usr/local/bin/promtool"] {
        if Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    panic!("this test needs promtool: run `apt-get update && apt-get install -y prometheus` (.ci/run does)");
}

/// Read every entry of a (closed) ledger as JSON values.
pub fn ledger_entries(ledger: &Path) -> Result<Vec<Value>> {
    let store = causeway_ledger::store::Store::open(ledger, 64, 64)?;
    let mut out = Vec::new();
    store.read(|r| {
        r.for_each_entry(0, u64::MAX, |_, bytes| {
            out.push(serde_json::from_slice(bytes).expect("entries are JSON"));
            Ok(())
        })
    })?;
    Ok(out)
}

/// Verify a ledger against the federation directory's keys for it (each checkpoint under the key
/// the directory's key history names for its size).
pub fn verify_ledger(
    ledger: &Path,
    directory: &Directory,
) -> Result<causeway_ledger::verify::Verified, String> {
    let store = causeway_ledger::store::Store::open(ledger, 64, 64).map_err(|e| e.to_string())?;
    let origin = std::fs::read_to_string(ledger.join(causeway_ledger::VKEY_FILE))
        .map_err(|e| e.to_string())?;
    let origin = origin
        .trim()
        .split('+')
        .next()
        .unwrap_or_default()
        .to_owned();
    let instance = directory
        .departments()
        .flat_map(|d| &d.instances)
        .find(|i| i.verifier.name() == origin)
        .ok_or_else(|| format!("no department with origin {origin}"))?;
    store
        .read(|r| {
            Ok(causeway_ledger::verify::verify_log_history(
                r,
                &instance.keys,
                |_| {},
            ))
        })
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}
