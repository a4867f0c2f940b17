//! Runs the store alone on a unix socket until Ctrl-C, for manual checks and benchmarks:
//! `cargo run --release -p isola-store --example serve -- /tmp/store.sock`.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: serve <unix-socket-path>")?;
    let config = isola_store::StoreConfig {
        unix_socket: Some(path.into()),
        ..isola_store::StoreConfig::default()
    };
    isola_store::serve(config, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
