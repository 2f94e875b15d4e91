//! Integration tests against the real `revocd` binary and clients nobody
//! here wrote: openssl, curl, python `cryptography`. `./scripts/test`
//! installs what is missing; a missing tool fails the test, never skips it.

mod admin;
mod answer_files;
mod aws_events;
mod cdn;
mod cli;
mod crl;
mod crl_sync;
mod demo;
mod deploy;
mod faults;
mod fleet;
mod haproxy;
mod hostile;
mod hsm;
mod http_get;
mod integrity;
mod issuers;
mod ledger;
mod lifecycle;
mod mass;
mod metrics;
mod ml_dsa;
mod nginx;
mod openssl_client;
mod presign;
mod properties;
mod python_client;
mod responder;
mod support;
mod upstream;

use openssl_client::ocsp as openssl_client_run;
