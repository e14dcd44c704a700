//! A PostgreSQL session for plain threads: tokio-postgres's client on the
//! process's one runtime ([`crate::util::runtime`]). The thread that makes
//! a call waits for it and, meanwhile, moves the session's connection
//! itself (as the `postgres` crate does on a runtime of its own): only the
//! sockets' readiness comes from the runtime's threads. Dropping a client
//! closes its session before the drop returns, and dropping a transaction
//! rolls it back, so that what a session held (its locks, its place in
//! `pg_stat_activity`) is given up when the code that used it says so.
//!
//! A statement with parameters is prepared once per session and kept (at
//! most [`PREPARED`] of them), so a batch's statements each take one round
//! trip to the server rather than two; statements run as they are
//! (`batch_execute`, which makes and drops tables) make the session prepare
//! them again.

use crate::util::runtime::wait;
use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::time::Duration;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Config, IsolationLevel, RowStream, Socket, Statement};

pub use tokio_postgres::error::{DbError, SqlState};
pub use tokio_postgres::{Error, Row};

/// Parameters of a statement, as tokio-postgres takes them.
pub type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

/// How long a dropped client's session may take to close.
const CLOSING: Duration = Duration::from_secs(1);

/// A session's connection: what sends the client's requests and reads the
/// server's answers; `None` once it ended (the client's calls then fail).
type Connection = Option<Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>>;

/// How many prepared statements a session keeps, at most.
const PREPARED: usize = 64;

/// A session's link to the server: its connection and the statements it
/// prepared, by their text.
struct Link {
    connection: Connection,
    prepared: HashMap<String, Statement>,
}

impl Link {
    /// Keeps `statement`, prepared from `sql`; when [`PREPARED`] are kept
    /// already, the others are forgotten first.
    fn keep(&mut self, sql: &str, statement: &Statement) {
        if self.prepared.len() >= PREPARED {
            self.forget();
        }
        self.prepared.insert(sql.to_owned(), statement.clone());
    }

    /// Forgets the statements prepared: the server closes each as it is
    /// dropped.
    fn forget(&mut self) {
        self.prepared.clear();
    }
}

/// Waits for `call`, moving `connection` meanwhile.
fn run<T>(connection: &mut Connection, call: impl Future<Output = T>) -> T {
    let mut call = pin!(call);
    wait(poll_fn(|cx| {
        if let Some(moving) = connection {
            // Ended, with an error or not: the call learns it from the
            // client, as a closed connection.
            if moving.as_mut().poll(cx).is_ready() {
                *connection = None;
            }
        }
        call.as_mut().poll(cx)
    }))
}

/// The statements a [`Client`] and a [`Transaction`] both run, each
/// waited for while the connection moves.
macro_rules! statements {
    () => {
        /// `sql` prepared on this session. One with parameters is
        /// prepared once and kept (statements the projector repeats, such
        /// as a batch's); one without is prepared for this call only.
        fn statement(&mut self, sql: &str, params: Params) -> Result<Statement, Error> {
            let (session, link) = self.parts();
            if let Some(statement) = link.prepared.get(sql) {
                return Ok(statement.clone());
            }
            let statement = run(&mut link.connection, session.prepare(sql))?;
            if !params.is_empty() {
                link.keep(sql, &statement);
            }
            Ok(statement)
        }

        pub fn query(&mut self, sql: &str, params: Params) -> Result<Vec<Row>, Error> {
            let statement = self.statement(sql, params)?;
            let (session, link) = self.parts();
            run(&mut link.connection, session.query(&statement, params))
        }

        pub fn query_one(&mut self, sql: &str, params: Params) -> Result<Row, Error> {
            let statement = self.statement(sql, params)?;
            let (session, link) = self.parts();
            run(&mut link.connection, session.query_one(&statement, params))
        }

        pub fn query_opt(&mut self, sql: &str, params: Params) -> Result<Option<Row>, Error> {
            let statement = self.statement(sql, params)?;
            let (session, link) = self.parts();
            run(&mut link.connection, session.query_opt(&statement, params))
        }

        pub fn execute(&mut self, sql: &str, params: Params) -> Result<u64, Error> {
            let statement = self.statement(sql, params)?;
            let (session, link) = self.parts();
            run(&mut link.connection, session.execute(&statement, params))
        }

        /// Runs statements separated by semicolons, without parameters.
        /// They may change what prepared statements read or write (tables
        /// made, dropped or altered): those are prepared again.
        pub fn batch_execute(&mut self, statements: &str) -> Result<(), Error> {
            let (session, link) = self.parts();
            link.forget();
            run(&mut link.connection, session.batch_execute(statements))
        }
    };
}

/// One session.
pub struct Client {
    /// `None` only while it is dropped.
    inner: Option<tokio_postgres::Client>,
    link: Link,
}

impl Client {
    /// Connects with `config` over `tls`.
    pub fn connect<T>(config: &Config, tls: T) -> Result<Client, Error>
    where
        T: MakeTlsConnect<Socket> + 'static + Send,
        T::TlsConnect: Send,
        T::Stream: Send,
        <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        let (inner, connection) = wait(config.connect(tls))?;
        Ok(Client {
            inner: Some(inner),
            link: Link {
                connection: Some(Box::pin(connection)),
                prepared: HashMap::new(),
            },
        })
    }

    /// The client, and the connection that moves its calls.
    fn parts(&mut self) -> (&mut tokio_postgres::Client, &mut Link) {
        let inner = self.inner.as_mut().expect("open until dropped");
        (inner, &mut self.link)
    }

    /// Whether the session is gone (the server or the network ended it),
    /// as far as the calls made so far tell.
    pub fn is_closed(&self) -> bool {
        self.link.connection.is_none() || self.inner.as_ref().is_none_or(|c| c.is_closed())
    }

    statements!();

    /// Begins a transaction; dropped without [`Transaction::commit`], it
    /// is rolled back.
    pub fn transaction(&mut self) -> Result<Transaction<'_>, Error> {
        let inner = self.inner.as_mut().expect("open until dropped");
        let begun = run(&mut self.link.connection, inner.transaction())?;
        Ok(Transaction {
            inner: Some(begun),
            link: &mut self.link,
        })
    }

    /// Begins a read-only transaction that sees one snapshot throughout.
    pub fn snapshot(&mut self) -> Result<Transaction<'_>, Error> {
        let inner = self.inner.as_mut().expect("open until dropped");
        let begin = inner
            .build_transaction()
            .read_only(true)
            .isolation_level(IsolationLevel::RepeatableRead)
            .start();
        let begun = run(&mut self.link.connection, begin)?;
        Ok(Transaction {
            inner: Some(begun),
            link: &mut self.link,
        })
    }
}

impl Drop for Client {
    /// Closes the session: the client dropped, its connection says so to
    /// the server and ends.
    fn drop(&mut self) {
        self.inner = None;
        self.link.forget();
        if let Some(connection) = self.link.connection.take() {
            let _ = wait(async { tokio::time::timeout(CLOSING, connection).await });
        }
    }
}

/// A transaction of a [`Client`]'s: rolled back unless committed.
pub struct Transaction<'c> {
    /// `None` once committed or rolled back.
    inner: Option<tokio_postgres::Transaction<'c>>,
    link: &'c mut Link,
}

impl Drop for Transaction<'_> {
    /// Rolls back what was not committed, before the drop returns.
    fn drop(&mut self) {
        if let Some(transaction) = self.inner.take() {
            let _ = run(&mut self.link.connection, transaction.rollback());
        }
    }
}

impl<'c> Transaction<'c> {
    fn parts(&mut self) -> (&mut tokio_postgres::Transaction<'c>, &mut Link) {
        let inner = self.inner.as_mut().expect("open until it ends");
        (inner, self.link)
    }

    statements!();

    /// The rows of `statement` (without parameters) one by one, as the
    /// server sends them, rather than all at once.
    pub fn rows(&mut self, statement: &str) -> Result<Rows<'_>, Error> {
        let (transaction, link) = self.parts();
        let asked = transaction.query_raw(statement, std::iter::empty::<i32>());
        let connection = &mut link.connection;
        let stream = run(connection, asked)?;
        Ok(Rows {
            stream: Box::pin(stream),
            connection,
        })
    }

    pub fn commit(mut self) -> Result<(), Error> {
        let transaction = self.inner.take().expect("open until it ends");
        run(&mut self.link.connection, transaction.commit())
    }
}

/// Rows of [`Transaction::rows`].
pub struct Rows<'t> {
    stream: Pin<Box<RowStream>>,
    connection: &'t mut Connection,
}

impl Rows<'_> {
    /// The next row, `None` after the last.
    pub fn next_row(&mut self) -> Result<Option<Row>, Error> {
        let stream = &mut self.stream;
        let next = poll_fn(|cx| futures_core::Stream::poll_next(stream.as_mut(), cx));
        run(self.connection, next).transpose()
    }
}

/// What a [`Client`] and a [`Transaction`] both answer: for code that
/// reads within a transaction or outside one.
pub trait Queries {
    fn query_one(&mut self, statement: &str, params: Params) -> Result<Row, Error>;
    fn query_opt(&mut self, statement: &str, params: Params) -> Result<Option<Row>, Error>;
}

impl Queries for Client {
    fn query_one(&mut self, statement: &str, params: Params) -> Result<Row, Error> {
        Client::query_one(self, statement, params)
    }
    fn query_opt(&mut self, statement: &str, params: Params) -> Result<Option<Row>, Error> {
        Client::query_opt(self, statement, params)
    }
}

impl Queries for Transaction<'_> {
    fn query_one(&mut self, statement: &str, params: Params) -> Result<Row, Error> {
        Transaction::query_one(self, statement, params)
    }
    fn query_opt(&mut self, statement: &str, params: Params) -> Result<Option<Row>, Error> {
        Transaction::query_opt(self, statement, params)
    }
}

#[cfg(test)]
mod tests {
    //! Statements prepared once per session, against the local PostgreSQL
    //! server (see `.ci/run`); each test works in temporary tables of its
    //! own session.
    use super::*;

    fn connect() -> Client {
        let config: Config = "postgres://postgres@127.0.0.1:5432/postgres"
            .parse()
            .unwrap();
        Client::connect(&config, tokio_postgres::NoTls)
            .expect("PostgreSQL answers on 127.0.0.1:5432")
    }

    /// The statements the server keeps prepared for this session, but the
    /// one that asks.
    fn prepared(client: &mut Client) -> Vec<String> {
        let sql = "SELECT statement FROM pg_prepared_statements ORDER BY statement";
        let rows = client.query(sql, &[]).unwrap();
        let texts = rows.iter().map(|row| row.get::<_, String>(0));
        texts.filter(|text| text != sql).collect()
    }

    const INSERT: &str = "INSERT INTO t (a) SELECT * FROM unnest($1::text[])";

    #[test]
    fn a_statement_with_parameters_is_prepared_once_in_and_out_of_transactions() {
        let mut client = connect();
        client
            .batch_execute("CREATE TEMP TABLE t (a text)")
            .unwrap();
        for values in [vec!["1"], vec!["2", "3"]] {
            assert_eq!(
                client.execute(INSERT, &[&values]).unwrap(),
                values.len() as u64
            );
        }
        let mut tx = client.transaction().unwrap();
        assert_eq!(tx.execute(INSERT, &[&vec!["4"]]).unwrap(), 1);
        tx.commit().unwrap();
        assert_eq!(prepared(&mut client), [INSERT]);
        let count = client
            .query_one("SELECT count(*) FROM t WHERE a <> $1", &[&"none"])
            .unwrap();
        assert_eq!(count.get::<_, i64>(0), 4);
    }

    #[test]
    fn statements_run_as_they_are_are_prepared_again_after_tables_change() {
        let mut client = connect();
        client
            .batch_execute("CREATE TEMP TABLE t (a text)")
            .unwrap();
        client.execute(INSERT, &[&vec!["1"]]).unwrap();
        let read = "SELECT * FROM t WHERE a = $1";
        assert_eq!(client.query(read, &[&"1"]).unwrap().len(), 1);
        client
            .batch_execute("DROP TABLE t; CREATE TEMP TABLE t (b int, a text)")
            .unwrap();
        assert_eq!(prepared(&mut client), Vec::<String>::new());
        client.execute(INSERT, &[&vec!["2"]]).unwrap();
        let rows = client.query(read, &[&"2"]).unwrap();
        assert_eq!(rows[0].columns().len(), 2);
        assert_eq!(rows[0].get::<_, String>(1), "2");
    }

    #[test]
    fn a_session_keeps_a_bounded_number_of_statements() {
        let mut client = connect();
        for n in 0..PREPARED * 2 + 1 {
            let row = client
                .query_one(&format!("SELECT $1::int + {n}"), &[&1i32])
                .unwrap();
            assert_eq!(row.get::<_, i32>(0), 1 + n as i32);
        }
        assert!(prepared(&mut client).len() <= PREPARED);
    }
}
