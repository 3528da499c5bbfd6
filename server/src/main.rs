//! `vestibule`: serve, or provision from scripts.

use clap::Parser as _;
use vestibule_server::cli::{Cli, run};

/// mimalloc: a request allocates many small short-lived buffers, which glibc's allocator
/// serves markedly slower under load (measured with `bench/poll.sh`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(failure) = run(cli).await {
        eprintln!("{failure}");
        std::process::exit(failure.exit_code());
    }
}
