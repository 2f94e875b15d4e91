//! Object storage, through object_store: where CRLs are published and the
//! fleet ledger is kept ([`Publisher`]), and where upstream CRLs and audit
//! reports are read ([`Source`]). S3-compatible (`s3://`), GCS (`gs://`),
//! Azure (`az://`) and a local directory (`file://`). Only this module
//! knows object_store; the others hold an [`ObjectKey`].
//!
//! Every PUT carries Content-Type and Cache-Control where the store keeps
//! them (a PUT replaces metadata, docs/conformance.md 33). Writes are conditional
//! (`If-None-Match: *` to create, `If-Match: "<etag>"` to replace) when the
//! start-up probe shows the store honours them; otherwise revocd is the single
//! writer and says so.

use std::sync::Arc;

use bytes::Bytes;
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path as StorePath;
use object_store::{
    Attribute, Attributes, GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions,
    PutPayload, RetryConfig, UpdateVersion,
};

/// object_store's own retries of one request (5xx, timeouts) stay short, so
/// that a failing store surfaces as a failed publish within seconds and the
/// CRL scheduler's backoff, metrics and logs take over; object_store's
/// default keeps retrying one request for up to 3 minutes.
fn retry() -> RetryConfig {
    RetryConfig {
        max_retries: 3,
        retry_timeout: std::time::Duration::from_secs(20),
        ..RetryConfig::default()
    }
}

/// Where and how to store, from the configuration.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`,
    /// or `file://<dir>` (relative to the config file).
    pub url: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub path_style: bool,
    pub allow_http: bool,
    /// `Cache-Control` sent with every PUT.
    pub cache_control: String,
    /// Base directory for relative `file://` URLs.
    pub base_dir: std::path::PathBuf,
}

/// Whether the store orders concurrent writers for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Conditional writes are honoured: several writers are safe.
    Conditional,
    /// The store ignores or lacks conditional writes: one writer only.
    SingleWriter,
    /// Not probed yet (the store was unreachable): behave as a single writer.
    Unknown,
}

impl WriteMode {
    pub fn label(self) -> &'static str {
        match self {
            WriteMode::Conditional => "conditional",
            WriteMode::SingleWriter => "single_writer",
            WriteMode::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    #[error("invalid store URL {url:?}: {why}")]
    Url { url: String, why: String },
    #[error("someone else wrote the object (precondition failed)")]
    Conflict,
    #[error("object store: {0}")]
    Store(String),
    #[error("the object is larger than the {max}-byte cap")]
    TooLarge { max: u64 },
}

/// What a conditional read found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The store still holds the version the caller has.
    Unchanged,
    Absent,
    Found {
        bytes: Bytes,
        etag: Option<String>,
    },
}

/// An object's key in a store, prefix included: made by
/// [`Publisher::key`] or [`Publisher::object`], shown as the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectKey(StorePath);

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What the caller expects at the key before writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    Absent,
    ETag(String),
    /// Overwrite whatever is there (the shard manifest).
    Any,
}

pub struct Publisher {
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
    /// The store keeps Content-Type / Cache-Control: every store but a
    /// local directory (`file://`).
    attributes: bool,
    cache_control: String,
    mode: WriteMode,
    describe: String,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("store", &self.describe)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

fn store_err(e: object_store::Error) -> PublishError {
    match e {
        object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. } => {
            PublishError::Conflict
        }
        other => PublishError::Store(other.to_string()),
    }
}

impl Publisher {
    pub fn new(c: &StoreConfig) -> Result<Self, PublishError> {
        let bad = |why: &str| PublishError::Url {
            url: c.url.clone(),
            why: why.to_string(),
        };
        let (scheme, rest) = c
            .url
            .split_once("://")
            .ok_or_else(|| bad("expected scheme://"))?;
        let (store, prefix, attributes): (Arc<dyn ObjectStore>, String, bool) = match scheme {
            "file" => {
                let dir = std::path::Path::new(rest);
                let dir = if dir.is_absolute() {
                    dir.to_path_buf()
                } else {
                    c.base_dir.join(dir)
                };
                std::fs::create_dir_all(&dir).map_err(|e| bad(&e.to_string()))?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| bad(&e.to_string()))?;
                (Arc::new(fs), String::new(), false)
            }
            "s3" | "gs" | "az" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(bad("no bucket"));
                }
                let store = cloud(
                    scheme,
                    bucket,
                    &CloudOptions {
                        endpoint: c.endpoint.clone(),
                        region: c.region.clone(),
                        allow_http: c.allow_http,
                        path_style: c.path_style,
                    },
                )
                .map_err(|e| bad(&e))?;
                (store, prefix.trim_matches('/').to_string(), true)
            }
            _ => return Err(bad("scheme must be s3, gs, az or file")),
        };
        Ok(Self {
            store,
            prefix: StorePath::from(prefix),
            attributes,
            cache_control: c.cache_control.clone(),
            mode: WriteMode::Unknown,
            describe: c.url.clone(),
        })
    }

    pub fn mode(&self) -> WriteMode {
        self.mode
    }

    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// A directory on this host (`file://`): it cannot do conditional
    /// replaces, and only processes on this host can write it.
    pub fn is_local_directory(&self) -> bool {
        !self.attributes
    }

    /// The full key of an object named `name` under the prefix.
    pub fn key(&self, name: &str) -> ObjectKey {
        ObjectKey(self.prefix.clone().join(name))
    }

    /// The object at `name` under the prefix, each `/` a path separator:
    /// `demo/0.crl` is `<prefix>/demo/0.crl`, the URL a CDN in front of the
    /// bucket asks for. ([`Publisher::key`] keeps `name` as one segment,
    /// `/` escaped as `%2F`: the fleet ledger's layout, kept as it is so
    /// existing fleet stores stay readable.)
    pub fn object(&self, name: &str) -> ObjectKey {
        ObjectKey(
            name.split('/')
                .filter(|part| !part.is_empty())
                .fold(self.prefix.clone(), |path, part| path.join(part)),
        )
    }

    /// Finds out whether the store honours conditional writes: a second
    /// create of the same key must fail, and so must a replace with a wrong
    /// ETag. Sets and returns the mode; leaves no probe object behind.
    pub async fn probe(&mut self) -> Result<WriteMode, PublishError> {
        let mut nonce = [0u8; 8];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
            .map_err(|_| PublishError::Store("no randomness".into()))?;
        let key = self.key(&format!(".revocd-probe-{}", hex::encode(nonce)));
        let body = || PutPayload::from_static(b"revocd conditional-write probe");
        let create = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.store
            .put_opts(&key.0, body(), create.clone())
            .await
            .map_err(store_err)?;
        let second = self.store.put_opts(&key.0, body(), create).await;
        let wrong_etag = self
            .store
            .put_opts(
                &key.0,
                body(),
                PutOptions {
                    mode: PutMode::Update(UpdateVersion {
                        e_tag: Some("\"revocd-probe-no-such-etag\"".into()),
                        version: None,
                    }),
                    ..Default::default()
                },
            )
            .await;
        let _ = self.store.delete(&key.0).await;
        let honours = |r: &object_store::Result<object_store::PutResult>| {
            matches!(
                r,
                Err(object_store::Error::AlreadyExists { .. })
                    | Err(object_store::Error::Precondition { .. })
            )
        };
        self.mode = if honours(&second) && honours(&wrong_etag) {
            WriteMode::Conditional
        } else {
            WriteMode::SingleWriter
        };
        Ok(self.mode)
    }

    /// The object and its store ETag, or `None` when absent.
    pub async fn read(
        &self,
        key: &ObjectKey,
    ) -> Result<Option<(Bytes, Option<String>)>, PublishError> {
        match self.store.get(&key.0).await {
            Ok(r) => {
                let etag = r.meta.e_tag.clone();
                let bytes = r.bytes().await.map_err(store_err)?;
                Ok(Some((bytes, etag)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_err(e)),
        }
    }

    /// A read that costs little when nothing changed: with `etag`, a store
    /// that still holds that version answers 304 and no body moves.
    pub async fn read_if_changed(
        &self,
        key: &ObjectKey,
        etag: Option<&str>,
    ) -> Result<Fetched, PublishError> {
        conditional_get(self.store.as_ref(), &key.0, etag).await
    }

    /// Names of the objects directly under `<prefix>/<dir>/`.
    pub async fn list(&self, dir: &str) -> Result<Vec<String>, PublishError> {
        let listed = self
            .store
            .list_with_delimiter(Some(&self.key(dir).0))
            .await
            .map_err(store_err)?;
        Ok(listed
            .objects
            .into_iter()
            .filter_map(|m| m.location.filename().map(str::to_string))
            .collect())
    }

    /// The live object's ETag, or `None` when absent.
    pub async fn etag(&self, key: &ObjectKey) -> Result<Option<String>, PublishError> {
        match self.store.head(&key.0).await {
            Ok(meta) => Ok(Some(meta.e_tag.unwrap_or_default())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_err(e)),
        }
    }

    /// Writes `bytes` at `key`. In conditional mode the write only happens if
    /// the key is as `expect` says (else [`PublishError::Conflict`]). Returns
    /// the new ETag.
    pub async fn write(
        &self,
        key: &ObjectKey,
        bytes: Bytes,
        content_type: &str,
        expect: &Expect,
    ) -> Result<Option<String>, PublishError> {
        let mode = match (self.mode, expect) {
            (WriteMode::Conditional, Expect::Absent) => PutMode::Create,
            (WriteMode::Conditional, Expect::ETag(e)) => PutMode::Update(UpdateVersion {
                e_tag: Some(e.clone()),
                version: None,
            }),
            _ => PutMode::Overwrite,
        };
        let mut attributes = Attributes::new();
        if self.attributes {
            attributes.insert(Attribute::ContentType, content_type.to_string().into());
            attributes.insert(Attribute::CacheControl, self.cache_control.clone().into());
        }
        let opts = PutOptions {
            mode,
            attributes,
            ..Default::default()
        };
        let r = self
            .store
            .put_opts(&key.0, PutPayload::from(bytes), opts)
            .await
            .map_err(store_err)?;
        Ok(r.e_tag)
    }
}

/// How to reach an `s3://`, `gs://` or `az://` store.
struct CloudOptions {
    endpoint: Option<String>,
    region: Option<String>,
    allow_http: bool,
    path_style: bool,
}

/// The object_store client for `scheme://bucket`, credentials from the
/// environment, with revocd's bounded retries.
fn cloud(scheme: &str, bucket: &str, o: &CloudOptions) -> Result<Arc<dyn ObjectStore>, String> {
    let store: Arc<dyn ObjectStore> = match scheme {
        "s3" => {
            let mut b = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_allow_http(o.allow_http)
                .with_virtual_hosted_style_request(!o.path_style)
                .with_conditional_put(S3ConditionalPut::ETagMatch)
                .with_retry(retry());
            if let Some(e) = &o.endpoint {
                b = b.with_endpoint(e);
            }
            if let Some(r) = &o.region {
                b = b.with_region(r);
            }
            Arc::new(b.build().map_err(|e| e.to_string())?)
        }
        "gs" => Arc::new(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(bucket)
                .with_retry(retry())
                .build()
                .map_err(|e| e.to_string())?,
        ),
        _ => Arc::new(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_container_name(bucket)
                .with_retry(retry())
                .build()
                .map_err(|e| e.to_string())?,
        ),
    };
    Ok(store)
}

/// A GET with `If-None-Match: etag`: a store that still holds that version
/// answers 304 and no body moves.
async fn conditional_get(
    store: &dyn ObjectStore,
    key: &StorePath,
    etag: Option<&str>,
) -> Result<Fetched, PublishError> {
    let opts = GetOptions {
        if_none_match: etag.map(str::to_string),
        ..Default::default()
    };
    match store.get_opts(key, opts).await {
        Ok(r) => {
            let etag = r.meta.e_tag.clone();
            let bytes = r.bytes().await.map_err(store_err)?;
            Ok(Fetched::Found { bytes, etag })
        }
        Err(object_store::Error::NotModified { .. }) => Ok(Fetched::Unchanged),
        Err(object_store::Error::NotFound { .. }) => Ok(Fetched::Absent),
        Err(e) => Err(store_err(e)),
    }
}

/// How to reach CRL sources that need it (S3-compatible endpoints).
#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub allow_http: bool,
}

/// One object to poll: `s3://bucket/key`, `gs://`, `az://`, `file:///path`,
/// or an `http(s)://` URL (a CDN), all read through object_store with
/// `If-None-Match`.
pub struct Source {
    store: Arc<dyn ObjectStore>,
    path: StorePath,
    url: String,
    /// The URL ends in `/`: the newest object under it is read (AWS
    /// Private CA writes each audit report under a new name).
    prefix: bool,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source").field("url", &self.url).finish()
    }
}

impl Source {
    pub fn open(url: &str, o: &SourceOptions) -> Result<Self, PublishError> {
        let bad = |why: String| PublishError::Url {
            url: url.to_string(),
            why,
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected scheme://".into()))?;
        let (store, path): (Arc<dyn ObjectStore>, String) = match scheme {
            "http" | "https" => {
                let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
                if host.is_empty() || path.is_empty() {
                    return Err(bad("expected http(s)://host/path".into()));
                }
                let options = object_store::ClientOptions::new().with_allow_http(scheme == "http");
                let store = object_store::http::HttpBuilder::new()
                    .with_url(format!("{scheme}://{host}"))
                    .with_client_options(options)
                    .with_retry(retry())
                    .build()
                    .map_err(|e| bad(e.to_string()))?;
                (Arc::new(store), path.to_string())
            }
            "file" => {
                // From the file system's root, so a directory that does not
                // exist yet is a source that is absent for now, not an error.
                if !rest.starts_with('/') || rest.len() < 2 {
                    return Err(bad("expected file:///absolute/path".into()));
                }
                let path = rest.trim_start_matches('/');
                StorePath::parse(path).map_err(|e| bad(e.to_string()))?;
                let fs = object_store::local::LocalFileSystem::new();
                (Arc::new(fs), path.to_string())
            }
            "s3" | "gs" | "az" => {
                let (bucket, key) = rest
                    .split_once('/')
                    .filter(|(b, k)| !b.is_empty() && !k.is_empty())
                    .ok_or_else(|| bad("expected scheme://bucket/key".into()))?;
                let store = cloud(
                    scheme,
                    bucket,
                    &CloudOptions {
                        endpoint: o.endpoint.clone(),
                        region: o.region.clone(),
                        allow_http: o.allow_http,
                        path_style: o.endpoint.is_some(),
                    },
                )
                .map_err(bad)?;
                (store, key.to_string())
            }
            _ => return Err(bad("scheme must be s3, gs, az, file, http or https".into())),
        };
        let prefix = url.ends_with('/');
        if prefix && matches!(scheme, "http" | "https") {
            return Err(bad(
                "an http(s) URL names one object; a prefix needs s3://, gs://, az:// or file://"
                    .into(),
            ));
        }
        Ok(Self {
            store,
            path: StorePath::from(path),
            url: url.to_string(),
            prefix,
        })
    }

    /// For a prefix source: the newest object under it (by last-modified
    /// time, then name), or `None` when there is none.
    async fn newest(&self) -> Result<Option<StorePath>, PublishError> {
        use futures::StreamExt;
        let mut list = self.store.list(Some(&self.path));
        let mut best: Option<object_store::ObjectMeta> = None;
        while let Some(meta) = list.next().await {
            let meta = meta.map_err(store_err)?;
            let newer = best.as_ref().is_none_or(|b| {
                (meta.last_modified, &meta.location) > (b.last_modified, &b.location)
            });
            if newer {
                best = Some(meta);
            }
        }
        Ok(best.map(|m| m.location))
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The object if its ETag is no longer `etag` (a 304 costs no body).
    /// An object over `max_bytes` is refused without being read whole: by
    /// its declared size, or once the bytes streamed pass the cap.
    pub async fn fetch(&self, etag: Option<&str>, max_bytes: u64) -> Result<Fetched, PublishError> {
        use futures::StreamExt;
        let opts = GetOptions {
            if_none_match: etag.map(str::to_string),
            ..Default::default()
        };
        let path = if self.prefix {
            match self.newest().await? {
                Some(p) => p,
                None => return Ok(Fetched::Absent),
            }
        } else {
            self.path.clone()
        };
        let r = match self.store.get_opts(&path, opts).await {
            Ok(r) => r,
            Err(object_store::Error::NotModified { .. }) => return Ok(Fetched::Unchanged),
            Err(object_store::Error::NotFound { .. }) => return Ok(Fetched::Absent),
            Err(e) => return Err(store_err(e)),
        };
        if r.meta.size > max_bytes {
            return Err(PublishError::TooLarge { max: max_bytes });
        }
        let etag = r.meta.e_tag.clone();
        let mut stream = r.into_stream();
        let mut buf = bytes::BytesMut::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(store_err)?;
            if (buf.len() + chunk.len()) as u64 > max_bytes {
                return Err(PublishError::TooLarge { max: max_bytes });
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Fetched::Found {
            bytes: buf.freeze(),
            etag,
        })
    }
}
