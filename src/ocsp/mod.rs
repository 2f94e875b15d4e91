//! OCSP: request decoding and response encoding (pure), and the responder
//! that answers from pre-signed bytes (filter -> cache -> bounded signer).

pub mod compact;
pub mod filetable;
pub mod hot;
pub mod presign;
pub mod rate;
pub mod request;
pub mod requested;
pub mod responder;
pub mod response;
pub mod store;
pub mod tablefmt;

pub use request::{decode_der, decode_get_path, Request, RequestError, GET_DER_INLINE};
pub use responder::{Answer, Responder, Signed};
pub use response::{CertStatus, ErrorStatus, ResponseSigner};
