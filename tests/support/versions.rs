//! A cluster of the benchmark's read models that ran a short stream, and
//! the versions of its configuration: the one it serves, and a changed one
//! registered beside it (built by no instance until one starts).

use super::{unit_checkpoints, NatsServer, PgDb, Run, TempDir};
use std::path::{Path, PathBuf};

pub const USERS_ORDERS: &str = include_str!("../../bench/users-orders.toml");

/// The benchmark's configuration with user_order_stats counting only
/// orders of 100 or more: the unit orders+user_order_stats is built anew,
/// user_listing's four are shared.
pub fn changed() -> String {
    USERS_ORDERS.replace(
        "merge = { last_order_id = \"$.payload.order_id\" }",
        "merge = { last_order_id = \"$.payload.order_id\" }\n\
         when = { path = \"$.payload.amount\", ge = 100 }",
    )
}

/// A broker with a stream of two events, a database, and a directory with
/// `v1.toml` (the benchmark's) and `v2.toml` ([`changed`]).
pub struct Cluster {
    pub nats: NatsServer,
    pub db: PgDb,
    pub dir: TempDir,
    pub v1: PathBuf,
    pub v2: PathBuf,
    pub last: u64,
}

impl Cluster {
    pub fn new(what: &str) -> Cluster {
        let nats = NatsServer::start();
        let dir = TempDir::new();
        let v1 = dir.write("v1.toml", USERS_ORDERS);
        let v2 = dir.write("v2.toml", &changed());
        Run::new()
            .args(&["publish", "--to", &nats.stream("EVENTS")])
            .args(&["--config", v1.to_str().unwrap()])
            .stdin(&[
                r#"{"type":"UserCreated","id":"e1","payload":{"id":"u1","name":"Ann","email":"a@x"}}"#,
                r#"{"type":"OrderPlaced","id":"e2","payload":{"order_id":"o1","user_id":"u1","amount":200}}"#,
            ])
            .go()
            .success();
        Cluster {
            nats,
            db: PgDb::new(what),
            dir,
            v1,
            v2,
            last: 2,
        }
    }

    /// `projector run --source … --state … -c CONFIG --deploy` until `done`
    /// holds, then SIGTERM: it must exit 0. Returns its log. (`--deploy` of
    /// the live configuration deploys nothing.)
    pub fn run_until(
        &self,
        config: &Path,
        env: &[(&str, &str)],
        done: impl Fn() -> bool,
    ) -> String {
        super::run_until(&self.nats, &self.db, config, (&["--deploy"], env), done)
    }

    /// Runs `config` until every serving unit has applied the stream.
    pub fn serve(&self, config: &Path) -> String {
        self.run_until(config, &[], || {
            let at = unit_checkpoints(&self.db);
            !at.is_empty() && at.iter().all(|c| *c == Some(self.last))
        })
    }

    /// The version of the configuration that is `status`, if any.
    pub fn version(&self, status: &str) -> Option<i32> {
        self.db
            .client()
            .query_opt(
                "SELECT version FROM projector._projector_versions WHERE status = $1",
                &[&status],
            )
            .ok()
            .flatten()
            .map(|r| r.get(0))
    }

    /// Registers `config` as an instance starting with it and `--deploy`
    /// would (beside the serving version when its units differ), and starts
    /// nothing.
    pub fn register(&self, config: &Path) {
        let text = std::fs::read_to_string(config).unwrap();
        let (plan, _, _) = projector::load_to_serve(&text).unwrap();
        let target = projector::state::postgres::Target::new(&self.db.url(), "projector");
        let address =
            projector::input::nats::StreamAddress::parse(&self.nats.stream("EVENTS")).unwrap();
        let stream = projector::cluster::stream::identity(&address).unwrap();
        let offer = projector::cluster::deploy::Offer {
            config: &text,
            deploy: true,
            stream: &stream,
        };
        projector::cluster::registry::Registry::open(&target, None, 4, &offer, |parts| {
            projector::cluster::layout(&plan, parts, "projector")
        })
        .unwrap();
    }

    /// `projector ARGS --state <db>`.
    pub fn projector(&self, args: &[&str]) -> super::Output {
        Run::new()
            .args(args)
            .args(&["--state", &self.db.url()])
            .go()
    }

    /// The schemas of the database, named like the cluster's units.
    pub fn unit_schemas(&self) -> Vec<String> {
        self.db
            .client()
            .query(
                "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'projector\\_%'
                 ORDER BY 1",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }
}
