//! The process's one connection to a NATS server: every question to the
//! broker and every consumer of the process go over it. Made on first use,
//! it reconnects by itself when the broker goes away and comes back (at
//! most [`RETRY_CAP`] apart), and is kept for the process's life.

use super::broker::BrokerError;
use super::nats::{StreamAddress, RETRY_CAP};
use async_nats::jetstream::Context;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long reaching the server may take before the attempt fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The connections made so far, by server (`HOST:PORT`).
static CONNECTIONS: Mutex<Vec<(String, Connection)>> = Mutex::new(Vec::new());

/// A connection and how many times it was lost so far.
#[derive(Clone)]
struct Connection {
    context: Context,
    losses: Arc<AtomicU64>,
}

/// Raised once the connection it was taken from is lost: whatever was
/// made on the connection before (a consumer) may not have outlived it.
#[derive(Clone)]
pub struct Lost {
    losses: Arc<AtomicU64>,
    at: u64,
}

impl Lost {
    pub fn is_raised(&self) -> bool {
        self.losses.load(Ordering::SeqCst) != self.at
    }
}

/// A JetStream context on the process's connection to the server of
/// `address`, made within 5 s when there is none yet; and the flag raised
/// when that connection is lost from now on.
pub async fn connect(address: &StreamAddress) -> Result<(Context, Lost), BrokerError> {
    let connection = match known(&address.server) {
        Some(known) => known,
        None => {
            let made = make(address).await?;
            let mut connections = CONNECTIONS.lock().unwrap_or_else(|e| e.into_inner());
            // Another task made one meanwhile: that one is kept.
            match connections.iter().find(|(s, _)| *s == address.server) {
                Some((_, first)) => first.clone(),
                None => {
                    connections.push((address.server.clone(), made.clone()));
                    made
                }
            }
        }
    };
    let lost = Lost {
        at: connection.losses.load(Ordering::SeqCst),
        losses: connection.losses,
    };
    Ok((connection.context, lost))
}

fn known(server: &str) -> Option<Connection> {
    let connections = CONNECTIONS.lock().unwrap_or_else(|e| e.into_inner());
    connections
        .iter()
        .find(|(s, _)| s == server)
        .map(|(_, c)| c.clone())
}

async fn make(address: &StreamAddress) -> Result<Connection, BrokerError> {
    let losses = Arc::new(AtomicU64::new(0));
    let counted = losses.clone();
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(CONNECT_TIMEOUT)
        .reconnect_delay_callback(reconnect_delay)
        .event_callback(move |event| {
            if let async_nats::Event::Disconnected = event {
                counted.fetch_add(1, Ordering::SeqCst);
            }
            std::future::ready(())
        })
        .connect(&address.server)
        .await
        .map_err(|e| BrokerError::new(address, "cannot connect", e))?;
    Ok(Connection {
        context: async_nats::jetstream::new(client),
        losses,
    })
}

/// The pause before the `attempts`th attempt to reconnect: none before the
/// first, then from 50 ms doubling to [`RETRY_CAP`].
fn reconnect_delay(attempts: usize) -> Duration {
    match attempts {
        0 | 1 => Duration::ZERO,
        n => {
            let doublings = (n - 2).min(16) as u32;
            (Duration::from_millis(50) * 2u32.pow(doublings)).min(RETRY_CAP)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnecting_pauses_double_from_50_ms_to_the_cap() {
        let pauses: Vec<u128> = (1..=8).map(|n| reconnect_delay(n).as_millis()).collect();
        assert_eq!(pauses, [0, 50, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(reconnect_delay(usize::MAX), RETRY_CAP);
    }
}
