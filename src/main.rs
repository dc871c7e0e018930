//! The `coatcheck` binary: parses the command line and hands over to `coatcheck::server`.

use clap::{Parser, Subcommand};
use coatcheck::http::{open_database, shutdown_signal, Application, Config};
use std::io::BufRead;
use std::process::ExitCode;

/// mimalloc: under concurrent page rendering glibc's malloc spent a third of the CPU time in
/// its own bookkeeping (perf) and kept hundreds of MB of fragmented arenas.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "coatcheck",
    about = "Coatcheck: a web shop with server-side sessions"
)]
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
    /// Top the generated "Assortment" category up to N products (load tests, paging demos).
    Assortment {
        #[arg(long)]
        products: usize,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage the keys of the session API (/api/v1).
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Create a key; it is printed alone on the last line, once, and never shown again.
    Create {
        #[arg(long)]
        name: String,
        /// The key may list sessions but not end them.
        #[arg(long)]
        read_only: bool,
    },
    /// Names, prefixes, created and last-used times (never a whole key).
    List,
    /// Revoke the key named NAME: it stops working at its next request.
    Revoke { name: String },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user (password from COATCHECK_PASSWORD, else standard input), or with
    /// --admin promote an existing one.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        admin: bool,
    },
}

/// Logs to standard output, filtered by `RUST_LOG`, as text or (`COATCHECK_LOG_FORMAT=json`)
/// one JSON object per line, with the request's span (its ID, method, path, client) on each.
fn init_logs() -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,tower_http=info,sqlx=warn".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match std::env::var("COATCHECK_LOG_FORMAT")
        .as_deref()
        .map(str::trim)
    {
        Err(_) | Ok("") | Ok("text") => logs.init(),
        Ok("json") => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        Ok(other) => {
            return Err(format!(
                "COATCHECK_LOG_FORMAT {other:?} must be text or json"
            ))
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    if let Err(message) = init_logs() {
        eprintln!("coatcheck: {message}");
        return ExitCode::FAILURE;
    }

    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve().await,
        Command::Migrate => migrate().await,
        Command::Assortment { products } => assortment(products).await,
        Command::User {
            command: UserCommand::Create { email, admin },
        } => create_user(&email, admin).await,
        Command::ApiKey { command } => api_key(command).await,
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
    let app = Application::build(config)
        .await
        .map_err(|e| e.to_string())?;
    let addr = app.local_addr().map_err(|e| e.to_string())?;
    tracing::info!("listening on http://{addr}");
    app.run_until(shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}

async fn migrate() -> Result<(), String> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    open_database(&config).await.map_err(|e| e.to_string())?;
    println!("migrations applied");
    Ok(())
}

async fn assortment(products: usize) -> Result<(), String> {
    if products > 1_000_000 {
        return Err("at most 1,000,000 generated products".into());
    }
    let config = Config::from_env().map_err(|e| e.to_string())?;
    let (pool, _) = open_database(&config).await.map_err(|e| e.to_string())?;
    app::server::seed::seed_if_empty(&pool)
        .await
        .map_err(|e| e.to_string())?;
    let added = app::server::seed::add_assortment(&pool, products)
        .await
        .map_err(|e| e.to_string())?;
    println!("added {added} generated products (the assortment now has {products})");
    Ok(())
}

/// The new user's password: `COATCHECK_PASSWORD`, else the first line of standard input.
fn read_password() -> Result<String, String> {
    if let Ok(password) = std::env::var("COATCHECK_PASSWORD") {
        return Ok(password);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

async fn create_user(email: &str, admin: bool) -> Result<(), String> {
    use app::model::{check_new_password, Email};
    use app::server::{passwords, users};
    let email = Email::parse(email).map_err(|e| e.to_string())?;
    let config = Config::from_env().map_err(|e| e.to_string())?;
    let (pool, _) = open_database(&config).await.map_err(|e| e.to_string())?;
    let existing = users::find_by_email(&pool, &email)
        .await
        .map_err(|e| e.to_string())?;
    if existing.is_some() {
        if !admin {
            return Err(format!("a user with email {email} already exists"));
        }
        users::promote_to_admin(&pool, &email)
            .await
            .map_err(|e| e.to_string())?;
        println!("promoted {email} to admin");
        return Ok(());
    }
    let password = read_password()?;
    check_new_password(&password).map_err(|e| e.to_string())?;
    let hash = passwords::PasswordHasher::new()
        .hash(password)
        .await
        .map_err(|e| e.to_string())?;
    let user = users::create(&pool, &email, &hash, admin)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "created user {} ({}){}",
        user.email,
        user.id,
        if admin { " as admin" } else { "" }
    );
    Ok(())
}

async fn api_key(command: ApiKeyCommand) -> Result<(), String> {
    use app::server::api_keys;
    use app::server::session::clock::now;
    let config = Config::from_env().map_err(|e| e.to_string())?;
    let (pool, _) = open_database(&config).await.map_err(|e| e.to_string())?;
    match command {
        ApiKeyCommand::Create { name, read_only } => {
            let (key, info) = api_keys::create(&pool, &name, read_only, now())
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "created the {}API key {:?}; it is shown this once, keep it now:",
                if read_only { "read-only " } else { "" },
                info.name
            );
            println!("{key}");
        }
        ApiKeyCommand::List => {
            let keys = api_keys::list(&pool).await.map_err(|e| e.to_string())?;
            if keys.is_empty() {
                println!("no API keys");
            }
            let time = |at: Option<i64>| at.map_or("never".to_string(), app::model::format_unix);
            for key in keys {
                println!(
                    "{}\t{}…\t{}\tcreated {}\tlast used {}{}",
                    key.name,
                    key.prefix,
                    if key.read_only {
                        "read-only"
                    } else {
                        "read-write"
                    },
                    app::model::format_unix(key.created_at),
                    time(key.last_used_at),
                    key.revoked_at
                        .map(|at| format!("\trevoked {}", app::model::format_unix(at)))
                        .unwrap_or_default()
                );
            }
        }
        ApiKeyCommand::Revoke { name } => {
            api_keys::revoke(&pool, &name, now())
                .await
                .map_err(|e| e.to_string())?;
            println!("revoked the API key {name:?}");
        }
    }
    Ok(())
}
