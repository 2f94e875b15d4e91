//! `revocd serve`: the one owner that loads everything, spawns the long-lived
//! tasks and shuts them down in order (readiness off, stop accepting, drain
//! under a deadline, exit).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::AdminApi;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError};
use crate::crl::{CrlOptions, CrlService};
use crate::http::{self, admin::AdminService, public::PublicService};
use crate::issuer::{self, Issuers};
use crate::ledger::{self, Ledger};
use crate::metrics::Metrics;
use crate::ocsp::signing::{presign, resign};
use crate::ocsp::Responder;
use crate::publish::Publisher;
use crate::shared::Shared;
use crate::sources::follow;

pub struct ServeOptions {
    pub config: PathBuf,
    pub listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
}

/// Loads and checks the configuration and every issuer without binding.
pub fn load(
    path: &std::path::Path,
    now: i64,
) -> Result<(Config, Vec<issuer::Issuer>), ConfigError> {
    let config = Config::load(path)?;
    let issuers = issuer::load_all(&config, now).map_err(|errors| ConfigError {
        path: path.to_path_buf(),
        errors,
    })?;
    Ok((config, issuers))
}

pub async fn serve(opts: ServeOptions) -> anyhow::Result<()> {
    // Signal handlers first: a SIGTERM that arrives while revocd starts (or
    // just after /readyz turned 200) must drain, not kill.
    let mut signals = Signals::install()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (config, issuers) = load_to_serve(&opts, clock.now())?;
    // The issuers and their state: one owner, handed to every component.
    let shared = Shared {
        issuers: Issuers::new(issuers),
        clock,
        metrics: Metrics::new(),
    };
    let responder = Responder::new(
        Arc::clone(&shared.issuers),
        &config.ocsp,
        Arc::clone(&shared.clock),
        shared.metrics.clone(),
    );
    let signer = Arc::clone(responder.signer());
    if config.ocsp.answer_tables == crate::config::AnswerTables::Files {
        signer.use_answer_files(config.data_dir.join("answers"));
    }
    let ledger = open_ledger(&config, &shared).await?;
    // The answer table files load while the index sources are read and the
    // CRL service starts (the pre-signer waits for them); an entry an
    // import changes is checked again by its claim when read.
    let tables = {
        let signer = Arc::clone(&signer);
        tokio::task::spawn_blocking(move || signer.load_answer_files())
    };
    for issuer in shared.issuers.iter() {
        if let Some(index) = &issuer.index {
            follow::import(
                &shared.issuers,
                shared.clock.now(),
                &ledger,
                &issuer.id,
                index,
            )
            .await
            .with_context(|| format!("importing {}", index.display()))?;
        }
    }
    let crl = start_crl(&config, &shared).await?;
    let admin = AdminAccess::load(&config)?;
    let listeners = Listeners::bind(&config, admin.tls.is_some()).await?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let loaded = tables.await.unwrap_or(0);
    if loaded > 0 {
        tracing::info!(
            answers = loaded,
            "pre-signed answers loaded from the answer table files"
        );
    }
    let presigner = tokio::spawn(presign::run(Arc::clone(&signer), stop_rx.clone()));
    let retire = tokio::spawn(retire_windows(Arc::clone(&signer), stop_rx.clone()));
    let resigner = {
        let s = Arc::clone(&signer);
        tokio::spawn(resign::run(
            Arc::clone(signer.resign_queue()),
            presign::cores(),
            Arc::new(move |idx, serials| s.resign_chunk(idx, serials)),
            stop_rx.clone(),
        ))
    };
    let crl_task = crl
        .clone()
        .map(|svc| tokio::spawn(svc.run(stop_rx.clone())));
    let sources = start_sources(&config, &shared, &ledger, &stop_rx).await;
    let api = AdminApi::new(
        admin.access,
        ledger.clone(),
        Arc::clone(&shared.issuers),
        Arc::clone(&shared.clock),
        crl.clone(),
    );
    let served = serve_listeners(
        &config,
        listeners,
        Served {
            shared: &shared,
            responder: &responder,
            crl,
            ledger: &ledger,
            api,
            tls: admin.tls.clone(),
        },
        &stop_rx,
    );

    signals
        .wait_for_shutdown(&opts.config, &signer, &served.admin, admin.tls.as_deref())
        .await;
    tracing::info!("shutting down: draining connections");
    signer.set_draining();
    let _ = stop_tx.send(true);
    for t in served
        .tasks
        .into_iter()
        .chain([presigner, retire, resigner])
    {
        let _ = t.await;
    }
    for f in sources {
        let _ = f.await;
    }
    // Last: the CRL schedulers make one final attempt for unpublished changes.
    if let Some(t) = crl_task {
        let _ = t.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The configuration with the command line's listener overrides, and every
/// issuer loaded (each one's key logged to the audit log).
fn load_to_serve(opts: &ServeOptions, now: i64) -> anyhow::Result<(Config, Vec<issuer::Issuer>)> {
    let (mut config, issuers) = load(&opts.config, now)?;
    if let Some(a) = opts.listen {
        config.listen.public = a;
    }
    if let Some(a) = opts.admin_listen {
        config.listen.admin = a;
    }
    for i in &issuers {
        for w in &i.warnings {
            tracing::warn!("{w}");
        }
        let signer = i.signer();
        tracing::info!(
            target: "audit",
            event = "key_loaded",
            issuer = %i.id,
            responder_key_sha1 = %hex::encode(signer.key_hash()),
            key_kind = signer.key().kind().name(),
            crl_key = i.crl_key.is_some(),
            "issuer loaded"
        );
    }
    Ok((config, issuers))
}

/// State: the newest snapshot plus the ledger after it (local, or the
/// fleet's in object storage), applied to the issuers.
async fn open_ledger(config: &Config, shared: &Shared) -> anyhow::Result<Ledger> {
    let applier: Arc<dyn ledger::Applier> = Arc::clone(&shared.issuers) as Arc<dyn ledger::Applier>;
    let metrics = &shared.metrics;
    let Some(fleet) = &config.fleet else {
        let started = std::time::Instant::now();
        let ledger_opts = ledger::Options {
            dir: config.data_dir.join("ledger"),
            snapshot_every: config.snapshot_every,
        };
        let (recover_opts, recover_into) = (ledger_opts.clone(), Arc::clone(&shared.issuers));
        let (recovery, file, _) = tokio::task::spawn_blocking(move || {
            ledger::recover(&recover_opts, recover_into.as_ref())
        })
        .await??;
        metrics
            .ledger
            .replay_seconds
            .set(started.elapsed().as_secs_f64());
        tracing::info!(
            snapshot = ?recovery.snapshot_seq,
            replayed = recovery.records_replayed,
            last_seq = recovery.last_seq,
            dropped_bytes = recovery.dropped_bytes,
            seconds = started.elapsed().as_secs_f64(),
            "state rebuilt from the ledger"
        );
        metrics
            .ledger
            .unreadable_snapshots
            .set(recovery.unreadable_snapshots.len() as i64);
        return Ok(Ledger::start(
            ledger_opts,
            file,
            &recovery,
            applier,
            metrics.clone(),
            Arc::clone(&shared.clock),
        ));
    };
    start_fleet(fleet, applier, metrics, &shared.clock).await
}

/// The CRL service, when `[crl]` is configured: probed and started.
async fn start_crl(config: &Config, shared: &Shared) -> anyhow::Result<Option<Arc<CrlService>>> {
    let Some(c) = &config.crl else {
        return Ok(None);
    };
    let publisher = Publisher::new(&c.store)?;
    let keys = shared
        .issuers
        .iter()
        .enumerate()
        .filter_map(|(n, i)| i.crl_key.clone().map(|k| (n, k)))
        .collect();
    let timing = CrlOptions {
        debounce: secs(c.debounce),
        max_delay: secs(c.max_delay),
        validity: secs(c.validity),
        cache_max_age: c.cache_max_age.as_secs(),
        shards: c.shards,
        url_base: c.url_base.clone(),
        delta: c.delta,
    };
    let svc = CrlService::new(
        Arc::clone(&shared.issuers),
        Arc::clone(&shared.clock),
        publisher,
        keys,
        timing,
        shared.metrics.clone(),
    );
    svc.start().await;
    Ok(Some(svc))
}

/// Who may use the admin API, and its TLS.
struct AdminAccess {
    access: crate::admin::access::Access,
    tls: Option<Arc<http::tls::AdminTls>>,
}

impl AdminAccess {
    fn load(config: &Config) -> anyhow::Result<Self> {
        let access = crate::admin::access::Access::load(&config.admin_operators)?;
        if access.is_empty() {
            tracing::warn!(
                "no [[admin.operator]] and no admin.token-file: the admin API is disabled"
            );
        }
        let tls = match &config.admin_tls {
            Some(files) => Some(Arc::new(
                http::tls::AdminTls::load(files).context("admin TLS")?,
            )),
            None => None,
        };
        if config
            .admin_tls
            .as_ref()
            .is_some_and(|t| t.client_ca.is_some())
            && config.listen.metrics.is_none()
        {
            tracing::warn!("the admin listener requires client certificates, which Kubernetes probes and most Prometheus setups do not present: set listen.metrics for a plain /healthz, /readyz and /metrics");
        }
        Ok(Self { access, tls })
    }
}

/// The listeners, bound; their addresses printed on stdout.
struct Listeners {
    public: TcpListener,
    admin: TcpListener,
    metrics: Option<TcpListener>,
}

impl Listeners {
    async fn bind(config: &Config, admin_tls: bool) -> anyhow::Result<Self> {
        let public = TcpListener::bind(config.listen.public)
            .await
            .with_context(|| format!("binding the public listener on {}", config.listen.public))?;
        let admin = TcpListener::bind(config.listen.admin)
            .await
            .with_context(|| format!("binding the admin listener on {}", config.listen.admin))?;
        let metrics = match config.listen.metrics {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the metrics listener on {addr}"))?,
            ),
            None => None,
        };
        // Tests and scripts read these lines to find ports chosen by the OS;
        // the admin line comes last.
        println!("revocd: public listener on http://{}", public.local_addr()?);
        if let Some(m) = &metrics {
            println!("revocd: metrics listener on http://{}", m.local_addr()?);
        }
        println!(
            "revocd: admin listener on {}://{}",
            if admin_tls { "https" } else { "http" },
            admin.local_addr()?
        );
        Ok(Self {
            public,
            admin,
            metrics,
        })
    }
}

/// Drops the answer tables of windows that are over, every 5 s.
async fn retire_windows(signer: Arc<crate::ocsp::Signer>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
            () = crate::shutdown::stopped(&mut stop) => return,
        }
        let dropped = signer.retire_windows();
        if dropped > 0 {
            tracing::debug!(dropped, "answer tables of past windows dropped");
        }
    }
}

/// The revocation sources (index.txt followers, upstream CRLs and reports,
/// AWS Private CA events) and the CDN purger; their tasks.
async fn start_sources(
    config: &Config,
    shared: &Shared,
    ledger: &Ledger,
    stop_rx: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for issuer in shared.issuers.iter() {
        if let Some(index) = &issuer.index {
            tasks.push(tokio::spawn(follow::follow(
                Arc::clone(&shared.issuers),
                Arc::clone(&shared.clock),
                ledger.clone(),
                issuer.id.clone(),
                index.clone(),
                stop_rx.clone(),
            )));
        }
    }
    // One AWS SDK setup for CloudFront, SQS and Private CA, loaded only
    // when something calls AWS.
    let sdk = if config.cdn.is_some() || config.aws_events.is_some() {
        Some(crate::aws::load().await)
    } else {
        None
    };
    if let Some(sdk) = &sdk {
        let purger = crate::cdn::start(
            config.cdn.as_ref(),
            shared,
            &config.ocsp.path,
            sdk,
            ledger,
            &config.data_dir,
            stop_rx.clone(),
        )
        .await;
        tasks.extend(purger);
    }
    // Revocations learned from unsigned signals, which the CA's own CRLs
    // must confirm.
    let unconfirmed = config.aws_events.as_ref().map(|a| {
        Arc::new(crate::sources::upstream::confirm::Unconfirmed::new(secs(
            a.confirm_within,
        )))
    });
    let poller = crate::sources::upstream::Poller::new(
        shared,
        ledger.clone(),
        config.upstream.clone(),
        unconfirmed.clone(),
    );
    let mut wakers = std::collections::HashMap::new();
    for sources in crate::sources::upstream::open(
        config,
        &shared.issuers,
        &shared.metrics,
        shared.clock.as_ref(),
    ) {
        let (id, wake) = sources.waker();
        wakers.insert(id, (wake, sources.has_crls()));
        tasks.push(tokio::spawn(crate::sources::upstream::run(
            sources,
            Arc::clone(&poller),
            stop_rx.clone(),
        )));
    }
    if let (Some(options), Some(sdk), Some(unconfirmed)) = (&config.aws_events, &sdk, unconfirmed) {
        let pcas: Vec<(String, String)> = config
            .issuers
            .iter()
            .filter_map(|i| Some((i.id.clone(), i.aws_pca_arn.clone()?)))
            .collect();
        let consumer = crate::sources::aws_events::Consumer::new(
            options.clone(),
            sdk,
            &pcas,
            wakers,
            shared.clone(),
            ledger.clone(),
            unconfirmed,
        );
        tasks.push(tokio::spawn(consumer.run(stop_rx.clone())));
    }
    tasks
}

/// What the listeners serve.
struct Served<'a> {
    shared: &'a Shared,
    responder: &'a Arc<Responder>,
    crl: Option<Arc<CrlService>>,
    ledger: &'a Ledger,
    api: AdminApi,
    tls: Option<Arc<http::tls::AdminTls>>,
}

/// The listeners' tasks, and the admin service SIGHUP reloads.
struct Serving {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    admin: Arc<AdminService>,
}

/// Spawns the public, admin and (optional) metrics listeners.
fn serve_listeners(
    config: &Config,
    listeners: Listeners,
    what: Served<'_>,
    stop_rx: &watch::Receiver<bool>,
) -> Serving {
    let service = Arc::new(PublicService {
        responder: Arc::clone(what.responder),
        prefix: config.ocsp.path.clone(),
        body: http::deadline::BodyLimits {
            max_bytes: config.ocsp.max_request_bytes,
            timeout: config.listen.body_timeout,
            min_rate: config.listen.body_min_rate,
        },
        crl: what.crl,
    });
    let limits = |name| http::Limits {
        name,
        header_read_timeout: config.listen.header_read_timeout,
        max_connections: config.listen.max_connections,
        write_timeout: config.listen.write_timeout,
        metrics: what.shared.metrics.clone(),
        tls: None,
        guard: None,
    };
    let mut tasks = vec![tokio::spawn(http::serve(
        listeners.public,
        move |req, _| service.handle(req),
        limits("public"),
        stop_rx.clone(),
    ))];
    let guard = Arc::new(http::guard::Guard::new(&what.shared.metrics));
    let admin_body = http::deadline::BodyLimits {
        max_bytes: config.admin_max_body_bytes,
        timeout: config.listen.body_timeout,
        min_rate: config.listen.body_min_rate,
    };
    let admin_service = |api, guard| {
        Arc::new(AdminService {
            shared: what.shared.clone(),
            signer: Arc::clone(what.responder.signer()),
            api,
            ledger: Some(what.ledger.clone()),
            body: admin_body,
            guard,
        })
    };
    let admin = admin_service(Some(what.api), Some(Arc::clone(&guard)));
    let serving = Arc::clone(&admin);
    tasks.push(tokio::spawn(http::serve(
        listeners.admin,
        move |req, peer| Arc::clone(&serving).handle(req, peer),
        http::Limits {
            tls: what.tls,
            guard: Some(guard),
            ..limits("admin")
        },
        stop_rx.clone(),
    )));
    // Probes and Prometheus: health and metrics only, plain HTTP.
    if let Some(listener) = listeners.metrics {
        let service = admin_service(None, None);
        tasks.push(tokio::spawn(http::serve(
            listener,
            move |req, peer| Arc::clone(&service).handle(req, peer),
            limits("metrics"),
            stop_rx.clone(),
        )));
    }
    Serving { tasks, admin }
}

/// SIGTERM, SIGINT and SIGHUP, caught from the start of `serve`.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
        })
    }

    /// Waits for SIGTERM or SIGINT; SIGHUP reloads the configuration's keys,
    /// the admin operators and the admin TLS certificate meanwhile.
    async fn wait_for_shutdown(
        &mut self,
        config: &std::path::Path,
        signer: &Arc<crate::ocsp::Signer>,
        admin: &AdminService,
        tls: Option<&http::tls::AdminTls>,
    ) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => {
                    reload(config, signer).await;
                    reload_admin(config, admin, tls);
                }
            }
        }
    }
}

/// SIGHUP, for the admin listener: the operators (tokens, scopes) and the
/// TLS certificate and key. On an error the old ones stay, and it is logged.
fn reload_admin(config: &std::path::Path, admin: &AdminService, tls: Option<&http::tls::AdminTls>) {
    let loaded = crate::config::Config::load(config)
        .map_err(anyhow::Error::from)
        .and_then(|c| crate::admin::access::Access::load(&c.admin_operators));
    match (loaded, &admin.api) {
        (Ok(access), Some(api)) => {
            api.set_access(access);
            tracing::info!("admin operators reloaded");
        }
        (Err(e), _) => tracing::error!("admin operators not reloaded, the old ones stay: {e:#}"),
        (Ok(_), None) => {}
    }
    if let Some(tls) = tls {
        match tls.reload() {
            Ok(()) => tracing::info!("admin TLS certificate reloaded"),
            Err(e) => {
                tracing::error!("admin TLS certificate not reloaded, the old one stays: {e:#}")
            }
        }
    }
}

/// SIGHUP: reloads the configuration and its keys. A changed responder
/// certificate or key is rotated in without downtime (new answers are signed
/// with the new key); other changes need a restart and are reported.
pub async fn reload(config: &std::path::Path, signer: &Arc<crate::ocsp::Signer>) {
    tracing::info!(config = %config.display(), "SIGHUP: reloading configuration and keys");
    let now = signer.clock().now();
    let (_, issuers) = match load(config, now) {
        Ok(loaded) => loaded,
        Err(e) => {
            tracing::error!("reload refused, still serving the old configuration: {e:#}");
            return;
        }
    };
    for new in issuers {
        let Some(idx) = signer.issuers().index(&new.id) else {
            tracing::warn!(issuer = %new.id, "a new issuer needs a restart to be served");
            continue;
        };
        let old = &signer.issuers()[idx];
        if old.cert.der != new.cert.der {
            tracing::warn!(issuer = %new.id, "the issuer certificate changed; that needs a restart");
            continue;
        }
        let new_signer = new.signer();
        if old.signer().same_as(&new_signer) {
            continue;
        }
        let signed = signer.rotate(idx, Arc::clone(&new_signer)).await;
        tracing::info!(
            target: "audit",
            event = "key_loaded",
            issuer = %new.id,
            responder_key_sha1 = %hex::encode(new_signer.key_hash()),
            key_kind = new_signer.key().kind().name(),
            presigned = signed,
            "OCSP signer rotated"
        );
    }
}

fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Fleet mode: probes the shared store, refuses one without conditional
/// writes, rebuilds state from the store's snapshot and batches, and starts
/// the fleet ledger.
async fn start_fleet(
    fleet: &crate::config::Fleet,
    applier: Arc<dyn ledger::Applier>,
    metrics: &Metrics,
    clock: &Arc<dyn Clock>,
) -> anyhow::Result<Ledger> {
    use crate::ledger::fleet::{self, FleetBackend, FleetOptions};
    use crate::publish::WriteMode;
    let url = &fleet.store.url;
    let mut store = Publisher::new(&fleet.store)?;
    let mode = store
        .probe()
        .await
        .with_context(|| format!("fleet mode: cannot reach the ledger store {url}"))?;
    if mode != WriteMode::Conditional {
        anyhow::bail!(
            "fleet mode refused: {url} does not honour conditional writes (a second \
             create of the same object succeeded, or a replace with a wrong ETag did), so \
             replicas could overwrite each other's ledger batches and lose acknowledged \
             revocations. Remove [fleet] to run a single replica on the local ledger (it \
             can still publish CRLs to this store as the single writer), or use a store \
             with conditional writes (AWS S3, GCS, Azure Blob, MinIO, Ceph RGW)"
        );
    }
    let store = Arc::new(store);
    let started = std::time::Instant::now();
    let recovery = fleet::recover(&store, applier.as_ref()).await?;
    metrics
        .ledger
        .replay_seconds
        .set(started.elapsed().as_secs_f64());
    tracing::info!(
        store = %url,
        replica = %fleet.replica,
        snapshot = ?recovery.snapshot_seq,
        replayed = recovery.records_replayed,
        last_seq = recovery.last_seq,
        seconds = started.elapsed().as_secs_f64(),
        "fleet mode: state rebuilt from the shared ledger"
    );
    let stats = Arc::new(ledger::Stats::default());
    let history = ledger::History::Fleet {
        store: Arc::clone(&store),
        replica: fleet.replica.clone(),
    };
    let backend = FleetBackend::new(
        store,
        tokio::runtime::Handle::current(),
        FleetOptions {
            poll: fleet.poll,
            snapshot_every: fleet.snapshot_every,
            replica: fleet.replica.clone(),
        },
        recovery.last_seq,
        metrics.clone(),
        Arc::clone(&stats),
        Arc::clone(clock),
    );
    Ok(Ledger::with_backend(
        Box::new(backend),
        applier,
        metrics.clone(),
        stats,
        history,
    ))
}
