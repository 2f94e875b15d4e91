//! What each command does: the dispatch behind `main`, one function per
//! command.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::daemon::ServeOptions;
use crate::publish::SourceOptions;
use crate::tools::cli::{AdminArgs, Command};
use crate::tools::client::expect_ok;
use crate::tools::demo::InitOptions;
use crate::tools::query::QueryOptions;
use crate::tools::sync::SyncOptions;

/// Runs one command.
pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Init {
            dir,
            listen,
            admin_listen,
            force,
            algorithm,
        } => init(InitOptions {
            dir,
            listen,
            admin_listen,
            force,
            algorithm,
        }),
        Command::Demo {
            dir,
            listen,
            admin_listen,
            algorithm,
        } => {
            demo(InitOptions {
                dir,
                listen,
                admin_listen,
                force: false,
                algorithm,
            })
            .await
        }
        Command::Serve {
            config,
            listen,
            admin_listen,
        } => {
            serve(ServeOptions {
                config,
                listen,
                admin_listen,
            })
            .await
        }
        Command::Ledger { action } => ledger(action).await,
        Command::CheckConfig { config } => check_config(&config),
        Command::Revoke {
            admin,
            serial,
            serials_file,
            batch,
            concurrency,
            reason,
            revoked_at,
            invalidity_date,
        } => {
            let fields = crate::tools::bulk::Fields {
                reason: Some(reason),
                revoked_at,
                invalidity_date,
            };
            match (serial, serials_file) {
                (_, Some(file)) => revoke_file(&admin, &file, &fields, batch, concurrency).await,
                (Some(serial), None) => {
                    let body = serde_json::json!({
                        "serial": serial,
                        "reason": fields.reason,
                        "revoked_at": fields.revoked_at,
                        "invalidity_date": fields.invalidity_date,
                    });
                    revoke(&admin, body).await
                }
                (None, None) => anyhow::bail!("give --serial HEX or --serials-file FILE"),
            }
        }
        Command::Status { admin, serial } => status(&admin, &serial).await,
        Command::Register {
            admin,
            certs,
            serial,
            not_after,
        } => register_certificates(&admin, &certs, serial.zip(not_after)).await,
        Command::ImportIndex { admin, index } => import_index(&admin, &index).await,
        Command::CrlSync {
            sources,
            shard_sources,
            max_bytes,
            out,
            cas,
            interval,
            on_change,
            format,
            once,
            endpoint,
            region,
            allow_http,
            metrics_listen,
            haproxy_socket,
            haproxy_crl_file,
        } => {
            let out_name = out.display().to_string();
            crl_sync(SyncOptions {
                sources,
                shard_sources,
                max_bytes,
                out,
                cas,
                interval,
                on_change,
                format,
                once,
                source: SourceOptions {
                    endpoint,
                    region,
                    allow_http,
                },
                metrics_listen,
                haproxy: haproxy_socket.map(|socket| {
                    let name = haproxy_crl_file.unwrap_or_else(|| out_name.clone());
                    (socket, name)
                }),
            })
            .await
        }
        Command::Query {
            url,
            issuer,
            cert,
            serial,
            sha256,
            get,
        } => {
            query(QueryOptions {
                url,
                issuer,
                cert,
                serial,
                sha256,
                get,
            })
            .await
        }
    }
}

/// `revocd init`: the demo PKI and its configuration.
fn init(options: InitOptions) -> anyhow::Result<ExitCode> {
    let out = crate::tools::demo::init(&options)?;
    println!("wrote {}", out.config.display());
    println!("good serial:    {}", out.good_serial);
    println!("revoked serial: {}", out.revoked_serial);
    Ok(ExitCode::SUCCESS)
}

/// `revocd demo`: `init` when the directory has no configuration yet, then
/// serve it, with the commands to try printed first.
async fn demo(options: InitOptions) -> anyhow::Result<ExitCode> {
    let InitOptions {
        dir,
        listen,
        admin_listen,
        ..
    } = &options;
    let config = dir.join("revocd.toml");
    if !config.exists() {
        crate::tools::demo::init(&options)?;
    }
    let d = dir.display();
    println!("revocd demo in {d}; try, in another terminal:");
    if options.algorithm.is_post_quantum() {
        println!("  (ML-DSA: `openssl ocsp` checks these answers from OpenSSL 3.5 on)");
    }
    println!("  openssl ocsp -issuer {d}/ca.pem -cert {d}/leaf-good.pem -cert {d}/leaf-revoked.pem -url http://{listen}/ -CAfile {d}/ca.pem -no_nonce");
    println!("  cargo run --release -- query --url http://{listen}/ --issuer {d}/ca.pem --cert {d}/leaf-revoked.pem --get");
    println!("  curl -s http://{admin_listen}/metrics | grep revocd_ocsp");
    serve(ServeOptions {
        config,
        listen: None,
        admin_listen: None,
    })
    .await
}

async fn serve(options: ServeOptions) -> anyhow::Result<ExitCode> {
    crate::daemon::serve(options).await?;
    Ok(ExitCode::SUCCESS)
}

/// `revocd check-config`: loads everything the daemon would, and says so.
fn check_config(config: &Path) -> anyhow::Result<ExitCode> {
    let now = crate::clock::Clock::now(&crate::clock::SystemClock);
    let (cfg, issuers) = crate::daemon::load(config, now)?;
    for i in &issuers {
        for w in &i.warnings {
            println!("warning: {w}");
        }
        println!(
            "issuer {}: {} serials, signer {}",
            i.id,
            i.state.len(),
            i.signer().key().kind().name()
        );
    }
    println!("{}: OK", cfg.path.display());
    Ok(ExitCode::SUCCESS)
}

async fn revoke(admin: &AdminArgs, body: serde_json::Value) -> anyhow::Result<ExitCode> {
    let (client, issuer) = admin_client(admin)?;
    let path = format!("/v1/issuers/{issuer}/revocations");
    let (status, v) = client.call("POST", &path, Some(body)).await?;
    println!("{}", expect_ok(status, &v)?);
    Ok(ExitCode::SUCCESS)
}

/// `revocd status`: exits 1 when the serial is not known.
async fn status(admin: &AdminArgs, serial: &str) -> anyhow::Result<ExitCode> {
    let (client, issuer) = admin_client(admin)?;
    let path = format!("/v1/issuers/{issuer}/certificates/{serial}");
    let (status, v) = client.call("GET", &path, None).await?;
    if status == 404 && v.get("status").is_some() {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::from(1));
    }
    println!("{}", expect_ok(status, &v)?);
    Ok(ExitCode::SUCCESS)
}

/// `revocd register`: certificate files, and one serial with its expiry.
async fn register_certificates(
    admin: &AdminArgs,
    certs: &[PathBuf],
    serial: Option<(String, String)>,
) -> anyhow::Result<ExitCode> {
    let (client, issuer) = admin_client(admin)?;
    let mut items = Vec::new();
    for path in certs {
        let text =
            std::fs::read(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        items.extend(certificates_as_json(&text));
    }
    if let Some((serial, not_after)) = serial {
        items.push(serde_json::json!({ "serial": serial, "not_after": not_after }));
    }
    if items.is_empty() {
        anyhow::bail!("give --cert FILE or --serial HEX --not-after TIME");
    }
    let v = register(&client, &issuer, &items).await?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(ExitCode::SUCCESS)
}

/// `revocd revoke --serials-file`: exits 1 when a line was bad or a
/// revocation was refused or not recorded.
async fn revoke_file(
    admin: &AdminArgs,
    file: &Path,
    fields: &crate::tools::bulk::Fields,
    batch: usize,
    concurrency: usize,
) -> anyhow::Result<ExitCode> {
    use std::io::Read;
    let (client, issuer) = admin_client(admin)?;
    let mut text = String::new();
    let source = if file == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| anyhow::anyhow!("reading standard input: {e}"))?;
        "stdin".to_string()
    } else {
        text = std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
        file.display().to_string()
    };
    let (items, bad) = crate::tools::bulk::read_serials(&text, fields);
    drop(text);
    let summary = crate::tools::bulk::send(
        std::sync::Arc::new(client),
        &issuer,
        items,
        batch,
        concurrency,
    )
    .await;
    crate::tools::bulk::report(&source, &summary, &bad);
    Ok(if summary.ok() && bad.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `revocd import-index`: an OpenSSL index.txt sent through the admin API
/// (registrations, then the revocations in batches); exits 1 when a
/// registration or revocation was refused or not recorded.
async fn import_index(admin: &AdminArgs, index: &Path) -> anyhow::Result<ExitCode> {
    let (client, issuer) = admin_client(admin)?;
    let text = std::fs::read_to_string(index)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", index.display()))?;
    let (registrations, revocations, errors) = crate::tools::client::index_requests(&text);
    for e in &errors {
        eprintln!("{}: {e} (skipped)", index.display());
    }
    let (mut registered, mut unchanged, mut refused) = (0, 0, 0);
    for chunk in registrations.chunks(5000) {
        let v = register(&client, &issuer, chunk).await?;
        for r in v["results"].as_array().into_iter().flatten() {
            match r["result"].as_str() {
                Some("registered") => registered += 1,
                Some("unchanged") => unchanged += 1,
                _ => {
                    refused += 1;
                    eprintln!("{}: registration refused: {r}", index.display());
                }
            }
        }
    }
    let items = revocations
        .into_iter()
        .map(|(line, body)| crate::tools::bulk::Item { line, body })
        .collect();
    let summary = crate::tools::bulk::send(
        std::sync::Arc::new(client),
        &issuer,
        items,
        crate::tools::bulk::BATCH,
        crate::tools::bulk::CONCURRENCY,
    )
    .await;
    println!(
        "{}: {} registrations sent: {registered} registered, {unchanged} unchanged, {refused} refused; {} bad lines",
        index.display(),
        registrations.len(),
        errors.len()
    );
    crate::tools::bulk::report(&index.display().to_string(), &summary, &[]);
    Ok(if summary.ok() && refused == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `revocd crl-sync`: once (exit 1 when no CRL could be installed), or on.
async fn crl_sync(options: SyncOptions) -> anyhow::Result<ExitCode> {
    let once = options.once;
    let mut syncer = crate::tools::sync::Syncer::new(options)?;
    if once {
        return Ok(if syncer.once().await? {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    syncer.run().await?;
    Ok(ExitCode::SUCCESS)
}

async fn query(options: QueryOptions) -> anyhow::Result<ExitCode> {
    let verdict = crate::tools::query::query(&options).await?;
    for line in verdict.lines {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

fn admin_client(args: &AdminArgs) -> anyhow::Result<(crate::tools::client::AdminClient, String)> {
    let client = crate::tools::client::AdminClient::from_args(args)?;
    let issuer = client.issuer(args.issuer.clone())?;
    Ok((client, issuer))
}

/// Every certificate in a PEM bundle, or the one DER certificate, as API items.
fn certificates_as_json(bytes: &[u8]) -> Vec<serde_json::Value> {
    let text = String::from_utf8_lossy(bytes);
    if text.contains("-----BEGIN CERTIFICATE-----") {
        text.split_inclusive("-----END CERTIFICATE-----")
            .filter(|b| b.contains("-----BEGIN CERTIFICATE-----"))
            .map(|b| serde_json::json!({ "certificate": b.trim() }))
            .collect()
    } else {
        vec![serde_json::json!({
            "certificate": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes)
        })]
    }
}

/// One registration request for `items`; the answer, or an error for a non-2xx.
async fn register(
    client: &crate::tools::client::AdminClient,
    issuer: &str,
    items: &[serde_json::Value],
) -> anyhow::Result<serde_json::Value> {
    let (status, v) = client
        .call(
            "POST",
            &format!("/v1/issuers/{issuer}/certificates"),
            Some(serde_json::json!({ "certificates": items })),
        )
        .await?;
    expect_ok(status, &v)?;
    Ok(v)
}

/// `revocd ledger verify | dump | repair`.
async fn ledger(action: crate::tools::cli::LedgerAction) -> anyhow::Result<ExitCode> {
    use crate::ledger::tools;
    use crate::tools::cli::LedgerAction;
    use std::io::Write;
    let path = match &action {
        LedgerAction::Verify { config }
        | LedgerAction::Dump { config }
        | LedgerAction::Repair { config, .. } => config.clone(),
    };
    let config = crate::config::Config::load(&path)?;
    let dir = config.data_dir.join("ledger");
    let code = |ok: bool| {
        if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    };
    let mut stdout = std::io::stdout().lock();
    match action {
        LedgerAction::Verify { .. } => {
            let ok = match &config.fleet {
                Some(fleet) => {
                    let store = std::sync::Arc::new(crate::publish::Publisher::new(&fleet.store)?);
                    crate::ledger::fleet::verify(&store, &mut stdout).await?
                }
                None => tools::verify(&dir, &mut stdout)?,
            };
            Ok(code(ok))
        }
        LedgerAction::Dump { .. } => {
            let mut failed = None;
            let mut emit = |line: tools::DumpLine<'_>| {
                if failed.is_none() {
                    if let Err(e) = writeln!(stdout, "{}", crate::admin::dump_line(&line)) {
                        failed = Some(e);
                    }
                }
            };
            let problem = match &config.fleet {
                Some(fleet) => {
                    let store = std::sync::Arc::new(crate::publish::Publisher::new(&fleet.store)?);
                    crate::ledger::fleet::dump(&store, &mut emit)
                        .await
                        .err()
                        .map(|e| format!("{e:#}"))
                }
                None => tools::dump(&dir, &mut emit)?.problem.map(|p| p.to_string()),
            };
            if let Some(e) = failed {
                return Err(e.into());
            }
            if let Some(p) = problem {
                eprintln!("revocd: the dump stops at a problem: {p}");
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
        LedgerAction::Repair { truncate_after, .. } => {
            anyhow::ensure!(
                config.fleet.is_none(),
                "ledger repair works on the file ledger; in fleet mode batch objects are immutable"
            );
            let now = crate::clock::Clock::now(&crate::clock::SystemClock);
            let done = tools::repair(&dir, truncate_after, now)?;
            for rec in &done.lost {
                writeln!(
                    stdout,
                    "{}",
                    crate::admin::dump_line(&tools::DumpLine::Record(rec))
                )?;
            }
            eprintln!(
                "revocd: cut the ledger after seq {truncate_after}; kept the cut bytes in {}",
                done.kept_in.display()
            );
            eprintln!(
                "revocd: {} acknowledged change(s) that could still be read are LOST from the ledger (printed above as JSON lines: submit them again if they are still wanted); {} byte(s) could not be read as records",
                done.lost.len(),
                done.unreadable_bytes
            );
            let ok = tools::verify(&dir, &mut std::io::stderr())?;
            Ok(code(ok))
        }
    }
}
