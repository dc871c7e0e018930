//! The `coatcheck` binary: parses the command line and hands over to `coatcheck::server`.

use clap::{Parser, Subcommand};
use coatcheck::server::{open_database, shutdown_signal, Application, Config};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "coatcheck", about = "Coatcheck: a web shop with server-side sessions")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate, seed the demo catalog if empty, and serve (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=info,sqlx=warn".into()),
        )
        .init();

    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve().await,
        Command::Migrate => migrate().await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("coatcheck: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> Result<(), String> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    let app = Application::build(config).await.map_err(|e| e.to_string())?;
    let addr = app.local_addr().map_err(|e| e.to_string())?;
    tracing::info!("listening on http://{addr}");
    app.run_until(shutdown_signal()).await.map_err(|e| e.to_string())
}

async fn migrate() -> Result<(), String> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    open_database(&config).await.map_err(|e| e.to_string())?;
    println!("migrations applied");
    Ok(())
}
