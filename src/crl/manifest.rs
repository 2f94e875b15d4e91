//! Where an issuer's CRLs are, as JSON: the shard manifest and the URL list
//! (CCADB's "JSON Array of Partitioned CRLs"), kept in the store beside the
//! CRLs and served by revocd.

use bytes::Bytes;

use super::{CrlService, Kind};
use crate::publish::{Expect, PublishError};

impl CrlService {
    /// The shard manifest of issuer `id` (sharded CRLs only).
    pub fn manifest(&self, id: &str) -> Option<Bytes> {
        self.manifests
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Issuer `id`'s full CRL URLs as a JSON array, the form CCADB asks for
    /// as "JSON Array of Partitioned CRLs": every shard, or the one full
    /// CRL; never the delta. Needs `crl.url-base` (the public URL).
    pub fn urls_json(&self, id: &str) -> Option<Bytes> {
        let base = self.timing.url_base.as_deref()?.trim_end_matches('/');
        let urls: Vec<String> = self
            .issuers
            .iter()
            .filter(|u| u.id == id && matches!(u.kind, Kind::Full { .. }))
            .map(|u| {
                u.idp
                    .clone()
                    .unwrap_or_else(|| format!("{base}/{}", u.name))
            })
            .collect();
        (!urls.is_empty()).then(|| Bytes::from(format!("{}\n", serde_json::json!(urls))))
    }

    /// Writes `<id>/urls.json` next to the manifest, for every issuer.
    pub(super) async fn write_urls(&self) {
        let mut ids: Vec<&str> = self.issuers.iter().map(|u| u.id.as_str()).collect();
        ids.dedup();
        for id in ids {
            let Some(body) = self.urls_json(id) else {
                continue;
            };
            let p = self.publisher.read().await;
            let key = p.object(&format!("{id}/urls.json"));
            if let Err(e) = p.write(&key, body, "application/json", &Expect::Any).await {
                tracing::warn!(issuer = id, error = %e, "CRL URL list not written; it is still served at /crl/<id>/urls.json");
            }
        }
    }

    /// Writes `<id>/manifest.json`: every shard's URL, CRL number, SHA-256
    /// and entry count.
    pub(super) async fn write_manifest(&self, id: &str) -> Result<(), PublishError> {
        let _one_at_a_time = self.manifest_writer.lock().await;
        let shards: Vec<serde_json::Value> = self
            .issuers
            .iter()
            .filter(|u| u.id == id)
            .filter_map(|u| {
                let Kind::Full { shard: Some((k, _)) } = u.kind else {
                    return None;
                };
                let live = u.live.read().unwrap_or_else(|p| p.into_inner()).clone();
                Some(serde_json::json!({
                    "shard": k,
                    "url": u.idp,
                    "crl_number": live.as_ref().map(|l| l.number),
                    "sha256": live.as_ref().map(|l| hex::encode(crate::pki::HashAlg::Sha256.digest(&l.der))),
                    "entries": live.as_ref().map(|l| l.n_entries),
                    "this_update": live.as_ref().map(|l| crate::clock::rfc3339(l.this_update)),
                }))
            })
            .collect();
        let body = Bytes::from(format!(
            "{:#}\n",
            serde_json::json!({ "issuer": id, "shards": shards })
        ));
        let p = self.publisher.read().await;
        let key = p.object(&format!("{id}/manifest.json"));
        p.write(&key, body.clone(), "application/json", &Expect::Any)
            .await?;
        self.manifests
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), body);
        Ok(())
    }
}
