//! Why the broker could not be asked something: each failure names the
//! stream's address and what was asked, and keeps the client's error as its
//! [`std::error::Error::source`].

use super::nats::StreamAddress;

/// A failed question to the broker of a stream.
#[derive(Debug, thiserror::Error)]
#[error("{address}: {doing}{}", .error.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
pub struct BrokerError {
    /// The stream's address, as it is shown.
    address: String,
    /// What was asked: `cannot connect`, `cannot find the stream`, ...
    doing: &'static str,
    #[source]
    error: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl BrokerError {
    /// Asking `address` `doing` something failed with `error`.
    pub fn new(
        address: &StreamAddress,
        doing: &'static str,
        error: impl std::error::Error + Send + Sync + 'static,
    ) -> BrokerError {
        BrokerError {
            address: address.to_string(),
            doing,
            error: Some(Box::new(error)),
        }
    }

    /// The broker of `address` did not answer in time.
    pub fn silent(address: &StreamAddress) -> BrokerError {
        BrokerError {
            address: address.to_string(),
            doing: "the broker does not answer",
            error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    #[test]
    fn a_failure_names_the_stream_and_keeps_the_client_s_error() {
        let address = StreamAddress::parse("nats://127.0.0.1:4222/EVENTS").unwrap();
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = BrokerError::new(&address, "cannot connect", refused);
        assert_eq!(e.to_string(), format!("{address}: cannot connect: refused"));
        assert_eq!(e.source().unwrap().to_string(), "refused");
        let e = BrokerError::silent(&address);
        assert_eq!(
            e.to_string(),
            format!("{address}: the broker does not answer")
        );
        assert!(e.source().is_none());
    }
}
