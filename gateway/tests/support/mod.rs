//! Shared by the tests that run `causeway serve` as a real process.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Start `causeway serve --config config` as a child process.
pub fn serve(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_causeway"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the causeway binary starts")
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
