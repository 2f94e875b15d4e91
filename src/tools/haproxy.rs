//! HAProxy's runtime API (the stats socket at `level admin`): a new CRL
//! installed without a reload, as `set ssl crl-file` then `commit ssl
//! crl-file` (HAProxy 2.5 and later).

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The `set ssl crl-file` command with `pem` as its payload (ended by an
/// empty line), pure.
pub fn set_command(crl_file: &str, pem: &str) -> String {
    let mut payload = pem.trim_end().to_string();
    payload.push('\n');
    format!("set ssl crl-file {crl_file} <<\n{payload}\n")
}

pub fn commit_command(crl_file: &str) -> String {
    format!("commit ssl crl-file {crl_file}\n")
}

#[derive(Debug, thiserror::Error)]
pub enum HaproxyError {
    #[error("HAProxy runtime API at {socket}: {error}")]
    Socket { socket: String, error: String },
    #[error("HAProxy refused `{command}`: {answer}")]
    Refused {
        command: &'static str,
        answer: String,
    },
}

/// One command on a fresh connection (non-interactive mode: HAProxy
/// answers and closes).
async fn command(socket: &Path, text: &str) -> Result<String, HaproxyError> {
    let io = |e: std::io::Error| HaproxyError::Socket {
        socket: socket.display().to_string(),
        error: e.to_string(),
    };
    let exchange = async {
        let mut s = tokio::net::UnixStream::connect(socket).await.map_err(io)?;
        s.write_all(text.as_bytes()).await.map_err(io)?;
        let mut answer = String::new();
        s.read_to_string(&mut answer).await.map_err(io)?;
        Ok(answer)
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| HaproxyError::Socket {
            socket: socket.display().to_string(),
            error: "no answer within 10 s".into(),
        })?
}

/// Replaces the CRLs HAProxy holds for `crl_file` (the path its
/// configuration's `crl-file` names) with `pem`, live.
pub async fn set_crl(socket: &Path, crl_file: &str, pem: &str) -> Result<(), HaproxyError> {
    let answer = command(socket, &set_command(crl_file, pem)).await?;
    let lower = answer.to_ascii_lowercase();
    if !lower.contains("transaction created") && !lower.contains("transaction updated") {
        return Err(HaproxyError::Refused {
            command: "set ssl crl-file",
            answer: answer.trim().to_string(),
        });
    }
    let answer = command(socket, &commit_command(crl_file)).await?;
    if !answer.to_ascii_lowercase().contains("success") {
        return Err(HaproxyError::Refused {
            command: "commit ssl crl-file",
            answer: answer.trim().to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_ends_with_an_empty_line() {
        let c = set_command(
            "/etc/haproxy/crl.pem",
            "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n\n",
        );
        assert!(c.starts_with("set ssl crl-file /etc/haproxy/crl.pem <<\n-----BEGIN"));
        assert!(c.ends_with("-----END X509 CRL-----\n\n"));
        assert_eq!(commit_command("/x.pem"), "commit ssl crl-file /x.pem\n");
    }
}
