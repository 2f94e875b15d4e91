//! OCSP: request decoding and response encoding (pure: `request`,
//! `response`), the answers (`answers`: pre-signed responses in per-window
//! tables, a leaf), signing (`signing`: on-demand, after a change, the
//! pre-signer), and serving (`responder`: the issuer filter, the hit path,
//! the long way to the signer). Dependencies run one way: serving ->
//! signing -> answers -> the pure codecs.

pub mod answers;
pub mod request;
pub mod responder;
pub mod response;
pub mod signing;

pub use answers::Signed;
pub use request::{decode_der, decode_get_path, Request, RequestError, GET_DER_INLINE};
pub use responder::{Answer, Get, Miss, Responder};
pub use response::{CertStatus, ErrorStatus};
pub use signing::{Signer, Why};
