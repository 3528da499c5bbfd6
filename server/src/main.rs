//! `vestibule`: serve, or provision from scripts.

use clap::Parser as _;
use vestibule_server::cli::{Cli, run};

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(failure) = run(cli).await {
        eprintln!("{failure}");
        std::process::exit(failure.exit_code());
    }
}
