//! The answers: pre-signed OCSP responses as they are stored and served.
//! A leaf: nothing here signs, serves or reads the state. `signed` (the
//! answer), `presigned` (an answer with what it answers for, and the tables'
//! key), `compact` (answers as differences from a reference, pure),
//! `store` (one table per window, in memory and optionally in a file),
//! `tablefmt` (the file format, pure) and `filetable` (its IO), `hot` (each
//! thread's own copies of the answers it served last).

pub mod compact;
pub mod filetable;
pub mod hot;
pub mod presigned;
pub mod signed;
pub mod store;
pub mod tablefmt;

pub use presigned::Presigned;
pub use signed::Signed;
pub use store::AnswerStore;
