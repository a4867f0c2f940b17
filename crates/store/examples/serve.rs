//! Runs the store alone until SIGINT or SIGTERM, for manual checks and benchmarks:
//! `cargo run --release -p isola-store --example serve -- /tmp/store.sock [127.0.0.1:7379]`
//! serves on the unix socket and, when given, on the TCP address too.

use tokio::signal::unix::{signal, SignalKind};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: serve <unix-socket-path> [<tcp-address>]")?;
    let tcp = args.next().map(|a| a.parse()).transpose()?;
    let config = isola_store::StoreConfig {
        unix_socket: Some(path.into()),
        tcp,
        ..isola_store::StoreConfig::default()
    };
    let mut term = signal(SignalKind::terminate())?;
    isola_store::serve(config, async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    })
    .await?;
    Ok(())
}
