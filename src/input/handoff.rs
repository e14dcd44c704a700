//! Handing what the runtime read to a plain thread: a bounded channel the
//! thread takes from, and a task that waits while it is full without
//! holding up the runtime's thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::Duration;

/// How long a task waits before it offers again to a full channel.
const FULL: Duration = Duration::from_millis(1);

/// Sends `item` to `sender`, waiting while the channel is full. `false`
/// when the receiver is gone, or when `closed` is raised while it waits:
/// the item is dropped.
pub async fn hand<T: Send>(sender: &SyncSender<T>, mut item: T, closed: &AtomicBool) -> bool {
    loop {
        match sender.try_send(item) {
            Ok(()) => return true,
            Err(TrySendError::Full(back)) => {
                if closed.load(Ordering::SeqCst) {
                    return false;
                }
                item = back;
                tokio::time::sleep(FULL).await;
            }
            Err(TrySendError::Disconnected(_)) => return false,
        }
    }
}
