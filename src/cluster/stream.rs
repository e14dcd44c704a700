//! The stream a cluster follows. Its units' checkpoints are sequences of
//! one JetStream stream; read against another (another name, or the same
//! name deleted and made again) they would skip or mix events silently.
//! So the main schema records the stream's name and its creation time in
//! JetStream, the first instance's, and an instance given another stream
//! is refused.

use super::registry::Refusal;
use crate::input::broker::BrokerError;
use crate::input::nats::StreamAddress;
use crate::state::postgres::client::Transaction;
use crate::state::postgres::Target;
use std::fmt;

/// A JetStream stream as the broker describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    pub name: String,
    /// When JetStream made it, in UTC to the nanosecond.
    pub created: String,
    /// Its first sequence when it was looked at.
    pub first_sequence: u64,
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stream \"{}\" (created {})", self.name, self.created)
    }
}

/// The stream `address` names, asked of its broker.
pub fn identity(address: &StreamAddress) -> Result<Stream, BrokerError> {
    let asked = async {
        let js = crate::input::nats::connect(address).await?;
        let info = crate::input::nats::stream_info(&js, address).await?;
        Ok(Stream {
            name: info.config.name.clone(),
            created: utc(info.created.unix_timestamp_nanos()),
            first_sequence: info.state.first_sequence,
        })
    };
    crate::util::runtime::wait(async {
        tokio::time::timeout(std::time::Duration::from_secs(5), asked)
            .await
            .unwrap_or_else(|_| Err(BrokerError::silent(address)))
    })
}

/// Records `given` as the stream the cluster follows when none is; refuses
/// it when another one is.
pub fn follow_stream(
    tx: &mut Transaction<'_>,
    target: &Target,
    given: &Stream,
) -> Result<(), Refusal> {
    let failed = |e| Refusal::State(target.failed("recording the stream", e));
    let s = target.schema_ident();
    tx.execute(
        &format!(
            "INSERT INTO {s}._projector_stream (id, name, created, first_sequence)
             VALUES (1, $1, $2, $3) ON CONFLICT DO NOTHING"
        ),
        &[&given.name, &given.created, &(given.first_sequence as i64)],
    )
    .map_err(failed)?;
    let row = tx
        .query_one(
            &format!("SELECT name, created, first_sequence FROM {s}._projector_stream"),
            &[],
        )
        .map_err(failed)?;
    let recorded = Stream {
        name: row.get(0),
        created: row.get(1),
        first_sequence: row.get::<_, i64>(2) as u64,
    };
    if recorded.name != given.name || recorded.created != given.created {
        return Err(Refusal::OtherStream {
            recorded,
            given: given.clone(),
        });
    }
    Ok(())
}

/// `nanos` since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
fn utc(nanos: i128) -> String {
    let seconds = nanos.div_euclid(1_000_000_000) as i64;
    let fraction = nanos.rem_euclid(1_000_000_000);
    let (days, second) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{fraction:09}Z",
        second / 3600,
        second / 60 % 60,
        second % 60
    )
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn times_are_written_in_utc_to_the_nanosecond() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            utc(951_782_400_000_000_001),
            "2000-02-29T00:00:00.000000001Z"
        );
        assert_eq!(
            utc(1_796_621_112_123_456_789),
            "2026-12-07T05:25:12.123456789Z"
        );
        assert_eq!(utc(-1), "1969-12-31T23:59:59.999999999Z");
    }
}
