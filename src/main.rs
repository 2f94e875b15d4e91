use std::process::ExitCode;

use clap::Parser;
use revocd::cli::{Cli, Command, LogFormat};
use revocd::config::ConfigError;

/// sysexits EX_CONFIG-ish: bad configuration (STYLE: errors).
const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("revocd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("revocd: {e:#}");
            if e.downcast_ref::<ConfigError>().is_some() {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Init {
            dir,
            listen,
            admin_listen,
            force,
        } => {
            let out = revocd::demo::init(&revocd::demo::InitOptions {
                dir,
                listen,
                admin_listen,
                force,
            })?;
            println!("wrote {}", out.config.display());
            println!("good serial:    {}", out.good_serial);
            println!("revoked serial: {}", out.revoked_serial);
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { dir } => {
            let config = dir.join("revocd.toml");
            if !config.exists() {
                revocd::demo::init(&revocd::demo::InitOptions {
                    dir: dir.clone(),
                    listen: revocd::config::defaults::PUBLIC_LISTEN.to_string(),
                    admin_listen: revocd::config::defaults::ADMIN_LISTEN.to_string(),
                    force: false,
                })?;
            }
            let d = dir.display();
            println!("revocd demo in {d}; try, in another terminal:");
            println!("  openssl ocsp -issuer {d}/ca.pem -cert {d}/leaf-good.pem -cert {d}/leaf-revoked.pem -url http://127.0.0.1:8080/ -CAfile {d}/ca.pem -no_nonce");
            println!("  cargo run --release -- query --url http://127.0.0.1:8080/ --issuer {d}/ca.pem --cert {d}/leaf-revoked.pem --get");
            println!("  curl -s http://127.0.0.1:9090/metrics | grep revocd_ocsp");
            revocd::daemon::serve(revocd::daemon::ServeOptions {
                config,
                listen: None,
                admin_listen: None,
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            config,
            listen,
            admin_listen,
        } => {
            revocd::daemon::serve(revocd::daemon::ServeOptions {
                config,
                listen,
                admin_listen,
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { config } => {
            let now = revocd::clock::Clock::now(&revocd::clock::SystemClock);
            let (cfg, issuers) = revocd::daemon::load(&config, now)?;
            for i in &issuers {
                for w in &i.warnings {
                    println!("warning: {w}");
                }
                println!(
                    "issuer {}: {} serials, signer {}",
                    i.id,
                    i.state.len(),
                    i.signer.key().kind().name()
                );
            }
            println!("{}: OK", cfg.path.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Query {
            url,
            issuer,
            cert,
            serial,
            sha256,
            get,
        } => {
            let verdict = revocd::query::query(&revocd::query::QueryOptions {
                url,
                issuer,
                cert,
                serial,
                sha256,
                get,
            })
            .await?;
            for line in verdict.lines {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
