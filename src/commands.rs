//! What each command does: the dispatch behind `main`.

use std::process::ExitCode;

use crate::cli::Command;

/// Runs one command.
pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Init {
            dir,
            listen,
            admin_listen,
            force,
        } => {
            let out = crate::demo::init(&crate::demo::InitOptions {
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
        Command::Demo {
            dir,
            listen,
            admin_listen,
        } => {
            let config = dir.join("revocd.toml");
            if !config.exists() {
                crate::demo::init(&crate::demo::InitOptions {
                    dir: dir.clone(),
                    listen: listen.clone(),
                    admin_listen: admin_listen.clone(),
                    force: false,
                })?;
            }
            let d = dir.display();
            println!("revocd demo in {d}; try, in another terminal:");
            println!("  openssl ocsp -issuer {d}/ca.pem -cert {d}/leaf-good.pem -cert {d}/leaf-revoked.pem -url http://{listen}/ -CAfile {d}/ca.pem -no_nonce");
            println!("  cargo run --release -- query --url http://{listen}/ --issuer {d}/ca.pem --cert {d}/leaf-revoked.pem --get");
            println!("  curl -s http://{admin_listen}/metrics | grep revocd_ocsp");
            crate::daemon::serve(crate::daemon::ServeOptions {
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
            crate::daemon::serve(crate::daemon::ServeOptions {
                config,
                listen,
                admin_listen,
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ledger { action } => ledger(action).await,
        Command::CheckConfig { config } => {
            let now = crate::clock::Clock::now(&crate::clock::SystemClock);
            let (cfg, issuers) = crate::daemon::load(&config, now)?;
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
        Command::Revoke {
            admin,
            serial,
            reason,
            revoked_at,
            invalidity_date,
        } => {
            let (client, issuer) = admin_client(&admin)?;
            let body = serde_json::json!({
                "serial": serial,
                "reason": reason,
                "revoked_at": revoked_at,
                "invalidity_date": invalidity_date,
            });
            let (status, v) = client
                .call(
                    "POST",
                    &format!("/v1/issuers/{issuer}/revocations"),
                    Some(body),
                )
                .await?;
            println!("{}", crate::client::expect_ok(status, &v)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { admin, serial } => {
            let (client, issuer) = admin_client(&admin)?;
            let (status, v) = client
                .call(
                    "GET",
                    &format!("/v1/issuers/{issuer}/certificates/{serial}"),
                    None,
                )
                .await?;
            if status == 404 && v.get("status").is_some() {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(ExitCode::from(1));
            }
            println!("{}", crate::client::expect_ok(status, &v)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Register {
            admin,
            certs,
            serial,
            not_after,
        } => {
            let (client, issuer) = admin_client(&admin)?;
            let mut items = Vec::new();
            for path in &certs {
                let text = std::fs::read(path)
                    .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
                items.extend(certificates_as_json(&text));
            }
            if let (Some(serial), Some(not_after)) = (serial, not_after) {
                items.push(serde_json::json!({ "serial": serial, "not_after": not_after }));
            }
            if items.is_empty() {
                anyhow::bail!("give --cert FILE or --serial HEX --not-after TIME");
            }
            let v = register(&client, &issuer, &items).await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::ImportIndex { admin, index } => {
            let (client, issuer) = admin_client(&admin)?;
            let text = std::fs::read_to_string(&index)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", index.display()))?;
            let (registrations, revocations, errors) = crate::client::index_requests(&text);
            for e in &errors {
                eprintln!("{}: {e} (skipped)", index.display());
            }
            let mut failed = 0;
            for chunk in registrations.chunks(5000) {
                register(&client, &issuer, chunk).await?;
            }
            for r in &revocations {
                let (status, v) = client
                    .call(
                        "POST",
                        &format!("/v1/issuers/{issuer}/revocations"),
                        Some(r.clone()),
                    )
                    .await?;
                if let Err(e) = crate::client::expect_ok(status, &v) {
                    failed += 1;
                    eprintln!("{}: {e}", r["serial"]);
                }
            }
            println!(
                "{}: {} registrations, {} revocations sent, {} refused, {} bad lines",
                index.display(),
                registrations.len(),
                revocations.len(),
                failed,
                errors.len()
            );
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
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
            let mut syncer = crate::sync::Syncer::new(crate::sync::SyncOptions {
                sources,
                shard_sources,
                max_bytes,
                out,
                cas,
                interval,
                on_change,
                format,
                once,
                source: crate::publish::SourceOptions {
                    endpoint,
                    region,
                    allow_http,
                },
                metrics_listen,
                haproxy: haproxy_socket.map(|socket| {
                    let name = haproxy_crl_file.unwrap_or_else(|| out_name.clone());
                    (socket, name)
                }),
            })?;
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
        Command::Query {
            url,
            issuer,
            cert,
            serial,
            sha256,
            get,
        } => {
            let verdict = crate::query::query(&crate::query::QueryOptions {
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

fn admin_client(
    args: &crate::cli::AdminArgs,
) -> anyhow::Result<(crate::client::AdminClient, String)> {
    let client = crate::client::AdminClient::from_args(args)?;
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
    client: &crate::client::AdminClient,
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
    crate::client::expect_ok(status, &v)?;
    Ok(v)
}

/// `revocd ledger verify | dump | repair`.
async fn ledger(action: crate::cli::LedgerAction) -> anyhow::Result<ExitCode> {
    use crate::cli::LedgerAction;
    use crate::ledger::tools;
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
