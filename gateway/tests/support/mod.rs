//! Shared by the tests that run `causeway serve` as a real process.
// Each test binary that includes this module uses some of its helpers, not all.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Run the `causeway` binary with `args` to the end (`RUST_LOG=warn`, no `CAUSEWAY_CONFIG` from
/// the test's environment).
pub fn causeway(args: &[&str]) -> std::process::Output {
    causeway_with(args, &[])
}

/// [`causeway`] with these environment variables set.
pub fn causeway_with(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_causeway"))
        .args(args)
        .env_remove("CAUSEWAY_CONFIG")
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .output()
        .expect("the causeway binary runs")
}

/// What a run printed: stdout, then stderr.
pub fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Start `causeway serve --config config` as a child process (its warnings shown with
/// `CAUSEWAY_TEST_LOGS=1`).
pub fn serve(config: &std::path::Path) -> Child {
    let logs = std::env::var_os("CAUSEWAY_TEST_LOGS").is_some();
    let output = || {
        if logs {
            Stdio::inherit()
        } else {
            Stdio::null()
        }
    };
    Command::new(env!("CARGO_BIN_EXE_causeway"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdout(output())
        .stderr(output())
        .spawn()
        .expect("the causeway binary starts")
}

/// A `causeway serve` child process, killed if the test panics before stopping it.
pub struct Served(pub Child);

impl Served {
    /// SIGTERM, so the gateway drains, commits its ledger and flushes its spans.
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
    }

    /// Wait for the process to exit (at most 60 s).
    pub async fn exited(mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then wait for the exit.
    pub async fn stop(self) {
        self.terminate();
        self.exited().await;
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Wait until the gateway's admin port accepts connections (at most 30 s).
pub async fn wait_ready(admin: std::net::SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(admin).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the gateway did not come up within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// One officer makes every request of these tests, thousands a minute: raise the per-officer budget
/// (docs/OPERATIONS.md, "Rate limits") of every department of `layout`.
pub fn raise_officer_budget(layout: &causeway::layout::Layout) {
    for dept in &layout.departments {
        let mut config = std::fs::read_to_string(&dept.config).unwrap();
        config.push_str(
            "\n[client.officer_rate_limits]\ndecisions = 1000000\ndenials = 60\nwindow_secs = 60\n",
        );
        std::fs::write(&dept.config, config).unwrap();
    }
}

/// Department `dept`'s case-desk application of a laid-out federation, acting for `officer-1`:
/// POSTs a request body to its gateway's client API over mutual TLS.
#[derive(Clone)]
pub struct CaseDesk {
    client: causeway::transport::app_client::AppClient,
    authorization: String,
}

impl CaseDesk {
    /// The application of `dept` in `layout`.
    pub fn of(layout: &causeway::layout::Layout, dept: &str) -> CaseDesk {
        let addr = layout.dept(dept).expect("department laid out").client;
        let creds = layout.app_credentials(dept, causeway::layout::DEMO_APP);
        let client = causeway::transport::app_client::AppClient::mutual_tls(
            addr,
            &creds.ca,
            &creds.cert,
            &creds.key,
        )
        .expect("the demo application's credentials load");
        let token = layout
            .officer_token(dept, "officer-1", &[])
            .expect("the demo issuer signs");
        CaseDesk {
            client,
            authorization: causeway::transport::app_client::bearer(&token),
        }
    }

    /// The same application presenting its token with the signature's last characters changed.
    pub fn with_forged_token(&self) -> CaseDesk {
        let mut authorization = self.authorization.clone();
        let last = if authorization.ends_with('A') {
            "B"
        } else {
            "A"
        };
        authorization.replace_range(authorization.len() - 2.., &format!("{last}{last}"));
        CaseDesk {
            client: self.client.clone(),
            authorization,
        }
    }

    /// POST `body` to `/v1/requests`; status and raw answer.
    pub async fn post(&self, body: &serde_json::Value) -> anyhow::Result<(u16, bytes::Bytes)> {
        self.client
            .post(
                "/v1/requests",
                &[("authorization", &self.authorization)],
                serde_json::to_vec(body)?,
            )
            .await
    }
}
