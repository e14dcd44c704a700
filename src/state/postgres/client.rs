//! A PostgreSQL session for plain threads: tokio-postgres's client on the
//! process's one runtime ([`crate::util::runtime`]). The thread that makes
//! a call waits for it and, meanwhile, moves the session's connection
//! itself (as the `postgres` crate does on a runtime of its own): only the
//! sockets' readiness comes from the runtime's threads. Dropping a client
//! closes its session before the drop returns, and dropping a transaction
//! rolls it back, so that what a session held (its locks, its place in
//! `pg_stat_activity`) is given up when the code that used it says so.

use crate::util::runtime::wait;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::time::Duration;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Config, IsolationLevel, RowStream, Socket, ToStatement};

pub use tokio_postgres::error::{DbError, SqlState};
pub use tokio_postgres::{Error, Row};

/// Parameters of a statement, as tokio-postgres takes them.
pub type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

/// How long a dropped client's session may take to close.
const CLOSING: Duration = Duration::from_secs(1);

/// A session's connection: what sends the client's requests and reads the
/// server's answers; `None` once it ended (the client's calls then fail).
type Connection = Option<Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>>;

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
        pub fn query<T>(&mut self, statement: &T, params: Params) -> Result<Vec<Row>, Error>
        where
            T: ?Sized + ToStatement,
        {
            let (session, connection) = self.parts();
            run(connection, session.query(statement, params))
        }

        pub fn query_one<T>(&mut self, statement: &T, params: Params) -> Result<Row, Error>
        where
            T: ?Sized + ToStatement,
        {
            let (session, connection) = self.parts();
            run(connection, session.query_one(statement, params))
        }

        pub fn query_opt<T>(&mut self, statement: &T, params: Params) -> Result<Option<Row>, Error>
        where
            T: ?Sized + ToStatement,
        {
            let (session, connection) = self.parts();
            run(connection, session.query_opt(statement, params))
        }

        pub fn execute<T>(&mut self, statement: &T, params: Params) -> Result<u64, Error>
        where
            T: ?Sized + ToStatement,
        {
            let (session, connection) = self.parts();
            run(connection, session.execute(statement, params))
        }

        /// Runs statements separated by semicolons, without parameters.
        pub fn batch_execute(&mut self, statements: &str) -> Result<(), Error> {
            let (session, connection) = self.parts();
            run(connection, session.batch_execute(statements))
        }
    };
}

/// One session.
pub struct Client {
    /// `None` only while it is dropped.
    inner: Option<tokio_postgres::Client>,
    connection: Connection,
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
            connection: Some(Box::pin(connection)),
        })
    }

    /// The client, and the connection that moves its calls.
    fn parts(&mut self) -> (&mut tokio_postgres::Client, &mut Connection) {
        let inner = self.inner.as_mut().expect("open until dropped");
        (inner, &mut self.connection)
    }

    /// Whether the session is gone (the server or the network ended it),
    /// as far as the calls made so far tell.
    pub fn is_closed(&self) -> bool {
        self.connection.is_none() || self.inner.as_ref().is_none_or(|c| c.is_closed())
    }

    statements!();

    /// Begins a transaction; dropped without [`Transaction::commit`], it
    /// is rolled back.
    pub fn transaction(&mut self) -> Result<Transaction<'_>, Error> {
        let inner = self.inner.as_mut().expect("open until dropped");
        let begun = run(&mut self.connection, inner.transaction())?;
        Ok(Transaction {
            inner: Some(begun),
            connection: &mut self.connection,
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
        let begun = run(&mut self.connection, begin)?;
        Ok(Transaction {
            inner: Some(begun),
            connection: &mut self.connection,
        })
    }
}

impl Drop for Client {
    /// Closes the session: the client dropped, its connection says so to
    /// the server and ends.
    fn drop(&mut self) {
        self.inner = None;
        if let Some(connection) = self.connection.take() {
            let _ = wait(async { tokio::time::timeout(CLOSING, connection).await });
        }
    }
}

/// A transaction of a [`Client`]'s: rolled back unless committed.
pub struct Transaction<'c> {
    /// `None` once committed or rolled back.
    inner: Option<tokio_postgres::Transaction<'c>>,
    connection: &'c mut Connection,
}

impl Drop for Transaction<'_> {
    /// Rolls back what was not committed, before the drop returns.
    fn drop(&mut self) {
        if let Some(transaction) = self.inner.take() {
            let _ = run(self.connection, transaction.rollback());
        }
    }
}

impl<'c> Transaction<'c> {
    fn parts(&mut self) -> (&mut tokio_postgres::Transaction<'c>, &mut Connection) {
        let inner = self.inner.as_mut().expect("open until it ends");
        (inner, self.connection)
    }

    statements!();

    /// The rows of `statement` (without parameters) one by one, as the
    /// server sends them, rather than all at once.
    pub fn rows(&mut self, statement: &str) -> Result<Rows<'_>, Error> {
        let (transaction, connection) = self.parts();
        let asked = transaction.query_raw(statement, std::iter::empty::<i32>());
        let stream = run(connection, asked)?;
        Ok(Rows {
            stream: Box::pin(stream),
            connection,
        })
    }

    pub fn commit(mut self) -> Result<(), Error> {
        let transaction = self.inner.take().expect("open until it ends");
        run(self.connection, transaction.commit())
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
