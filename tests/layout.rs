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
