use ring::digest;

/// A CertID hash algorithm (docs/conformance.md 7). Matched by OID only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashAlg {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    pub const ALL: [HashAlg; 4] = [
        HashAlg::Sha1,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
    ];

    /// The OID arcs, to compare with a decoded AlgorithmIdentifier.
    pub fn arcs(self) -> &'static [u32] {
        match self {
            HashAlg::Sha1 => &[1, 3, 14, 3, 2, 26],
            HashAlg::Sha256 => &[2, 16, 840, 1, 101, 3, 4, 2, 1],
            HashAlg::Sha384 => &[2, 16, 840, 1, 101, 3, 4, 2, 2],
            HashAlg::Sha512 => &[2, 16, 840, 1, 101, 3, 4, 2, 3],
        }
    }

    pub fn from_arcs(arcs: &[u32]) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.arcs() == arcs)
    }

    /// Short lowercase name, for config and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "sha1",
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha384 => "sha384",
            HashAlg::Sha512 => "sha512",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        let wanted = name.to_ascii_lowercase().replace('-', "");
        Self::ALL.into_iter().find(|h| h.name() == wanted)
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        let alg = match self {
            HashAlg::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            HashAlg::Sha256 => &digest::SHA256,
            HashAlg::Sha384 => &digest::SHA384,
            HashAlg::Sha512 => &digest::SHA512,
        };
        digest::digest(alg, data).as_ref().to_vec()
    }

    /// `AlgorithmIdentifier { algorithm, parameters NULL }` as DER, the form
    /// openssl sends and revocd pre-signs.
    pub fn algorithm_identifier_der(self) -> Vec<u8> {
        let arcs: Vec<u64> = self.arcs().iter().map(|a| u64::from(*a)).collect();
        let oid = crate::asn1::oid(&crate::asn1::oid_content_of_arcs(&arcs));
        crate::asn1::sequence(&[&oid, &crate::asn1::NULL])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_oids_round_trip() {
        for h in HashAlg::ALL {
            assert_eq!(HashAlg::from_arcs(h.arcs()), Some(h));
            assert_eq!(HashAlg::from_name(h.name()), Some(h));
        }
        assert_eq!(HashAlg::from_name("SHA-256"), Some(HashAlg::Sha256));
        assert_eq!(HashAlg::from_name("md5"), None);
    }

    #[test]
    fn sha1_algorithm_identifier_is_openssl_form() {
        assert_eq!(
            HashAlg::Sha1.algorithm_identifier_der(),
            [0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00]
        );
    }
}
