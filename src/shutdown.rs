//! The shutdown signal shared by every long-lived task: a `watch` channel
//! that turns `true` once.

use tokio::sync::watch;

/// Resolves once `rx` holds `true` (or its sender is gone).
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}
