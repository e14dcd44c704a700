//! The library's layout keeps its layers: a module names another only if
//! that one is below it (cluster → server → input → engine → state →
//! protocol → store → plan → config → value → util), never in a circle.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Per top-level module of the library, the top-level modules its files
/// name as `crate::NAME` outside comments (the crate root's own items
/// aside).
fn references() -> BTreeMap<String, BTreeSet<String>> {
    let src = support::repo().join("src");
    let modules: BTreeSet<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && p.file_name().unwrap() != "cli")
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let mut named = BTreeMap::new();
    for module in &modules {
        let mut files = Vec::new();
        rust_files(&src.join(module), &mut files);
        let targets: &mut BTreeSet<String> = named.entry(module.clone()).or_default();
        for file in files {
            for line in std::fs::read_to_string(&file).unwrap().lines() {
                let code = line.split("//").next().unwrap();
                for (at, _) in code.match_indices("crate::") {
                    let name: String = code[at + 7..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if modules.contains(&name) && &name != module {
                        targets.insert(name);
                    }
                }
            }
        }
    }
    named
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A circle of modules each naming the next, if there is one.
fn circle(named: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn from(
        at: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        named: &BTreeMap<String, BTreeSet<String>>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|m| m == at) {
            let mut circle = path[start..].to_vec();
            circle.push(at.to_owned());
            return Some(circle);
        }
        if !done.insert(at.to_owned()) {
            return None;
        }
        path.push(at.to_owned());
        for next in named.get(at).into_iter().flatten() {
            if let Some(circle) = from(next, path, done, named) {
                return Some(circle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    named
        .keys()
        .find_map(|m| from(m, &mut Vec::new(), &mut done, named))
}

#[test]
fn no_module_of_the_library_names_one_that_names_it_back() {
    let named = references();
    assert!(named.len() > 5, "{named:?}");
    if let Some(circle) = circle(&named) {
        panic!("modules in a circle: {}", circle.join(" → "));
    }
}

#[test]
fn a_circle_is_found_where_there_is_one() {
    let named: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(m, to)| (m.to_owned(), to.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(circle(&named).unwrap(), ["a", "b", "c", "a"]);
    let mut straight = named.clone();
    straight.get_mut("c").unwrap().clear();
    assert_eq!(circle(&straight), None);
}

/// The files of src/ (the binary's too) whose code, outside comments,
/// holds `needle`.
fn files_holding(needle: &str) -> Vec<String> {
    let src = support::repo().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut holding: Vec<String> = files
        .iter()
        .filter(|file| {
            std::fs::read_to_string(file)
                .unwrap()
                .lines()
                .any(|line| line.split("//").next().unwrap().contains(needle))
        })
        .map(|file| file.strip_prefix(&src).unwrap().display().to_string())
        .collect();
    holding.sort();
    holding
}

/// A process has one tokio runtime: only util/runtime.rs builds one, and
/// no session of PostgreSQL brings its own (the `postgres` crate makes a
/// runtime per client: it is a dependency of the tests alone, and src/
/// uses tokio-postgres through state/postgres/client.rs). One NATS
/// connection per server: only input/connection.rs connects.
#[test]
fn one_runtime_one_broker_connection_and_no_client_with_a_runtime_of_its_own() {
    assert_eq!(files_holding("Builder::new_"), ["util/runtime.rs"]);
    assert_eq!(files_holding("Runtime::new"), Vec::<String>::new());
    assert_eq!(files_holding("ConnectOptions"), ["input/connection.rs"]);
    assert_eq!(files_holding("async_nats::connect"), Vec::<String>::new());
    let manifest = std::fs::read_to_string(support::repo().join("Cargo.toml")).unwrap();
    let dependencies = manifest.split("[dev-dependencies]").next().unwrap();
    assert!(
        !dependencies.lines().any(|l| l.starts_with("postgres ")),
        "the postgres crate is for the tests only"
    );
}
