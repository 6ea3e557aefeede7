//! The layering rules of the crate, checked on its source: each layer
//! imports only those below it (protocol ← transport ← server, client), the
//! protocol core touches no runtime, and no module imports one that imports
//! it back. Read from the files themselves, so a new `use` that breaks a
//! rule fails here, in the commit that adds it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A library source file: its module path (`["server", "pusher"]`) and the
/// `use` paths outside its tests.
struct Source {
    module: Vec<String>,
    uses: Vec<String>,
}

fn library_sources() -> Vec<Source> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().unwrap() != "bin" {
                    walk(&path, out);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("lib/src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(&src).unwrap().with_extension("");
            let mut module: Vec<String> = rel
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
                module.pop();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let body = text.split("#[cfg(test)]").next().unwrap();
            let uses = body
                .lines()
                .filter_map(|l| l.trim_start().strip_prefix("use "))
                .map(|l| l.trim_end_matches(';').to_owned())
                .collect();
            Source { module, uses }
        })
        .collect()
}

/// The module a `use` path names, as far as it names modules that exist.
fn target(from: &[String], path: &str, modules: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    let mut parts = path.split("::").peekable();
    let mut at: Vec<String> = match parts.peek() {
        Some(&"crate") => {
            parts.next();
            Vec::new()
        }
        Some(&"super") => from.to_vec(),
        _ => return None, // another crate
    };
    while parts.peek() == Some(&"super") {
        parts.next();
        at.pop();
    }
    for p in parts {
        let mut next = at.clone();
        next.push(p.trim_matches(|c| c == '{' || c == '}').to_owned());
        if modules.contains(&next) {
            at = next;
        } else {
            break;
        }
    }
    Some(at)
}

/// Every import between two different sibling modules: `(a, b)` means a
/// file under `a` uses something under `b`, and `a`, `b` share a parent.
fn sibling_imports() -> BTreeSet<(Vec<String>, Vec<String>)> {
    let sources = library_sources();
    let modules: BTreeSet<Vec<String>> = sources.iter().map(|s| s.module.clone()).collect();
    let mut edges = BTreeSet::new();
    for s in &sources {
        for u in &s.uses {
            let Some(t) = target(&s.module, u, &modules) else {
                continue;
            };
            let common = s.module.iter().zip(&t).take_while(|(a, b)| a == b).count();
            if common < s.module.len() && common < t.len() {
                edges.insert((s.module[..=common].to_vec(), t[..=common].to_vec()));
            }
        }
    }
    edges
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let edges = sibling_imports();
    let mut graph: BTreeMap<&Vec<String>, Vec<&Vec<String>>> = BTreeMap::new();
    for (a, b) in &edges {
        graph.entry(a).or_default().push(b);
    }
    // Depth-first search for a cycle of any length.
    fn visit<'a>(
        n: &'a Vec<String>,
        graph: &BTreeMap<&'a Vec<String>, Vec<&'a Vec<String>>>,
        path: &mut Vec<&'a Vec<String>>,
        done: &mut BTreeSet<&'a Vec<String>>,
    ) {
        if let Some(i) = path.iter().position(|p| *p == n) {
            let cycle: Vec<String> = path[i..].iter().map(|m| m.join("::")).collect();
            panic!("import cycle: {} -> {}", cycle.join(" -> "), n.join("::"));
        }
        if !done.insert(n) {
            return;
        }
        path.push(n);
        for m in graph.get(n).into_iter().flatten() {
            visit(m, graph, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        visit(n, &graph, &mut Vec::new(), &mut done);
    }
    assert!(!edges.is_empty(), "the checker saw the crate's imports");
}

#[test]
fn each_layer_imports_only_those_below_it() {
    let rank = |top: &str| match top {
        "protocol" => 1,
        "transport" => 2,
        "server" | "client" | "bus" => 3,
        // Serde protocols on top of the server and the client.
        "typed" => 4,
        _ => 0,
    };
    for s in library_sources() {
        let Some(top) = s.module.first() else {
            continue; // lib.rs re-exports everything
        };
        for u in &s.uses {
            if let Some(rest) = u.strip_prefix("crate::") {
                let to = rest.split("::").next().unwrap();
                assert!(
                    rank(to) < rank(top) || to == top,
                    "{} (layer {}) imports {to} (layer {}): `use {u}`",
                    s.module.join("::"),
                    rank(top),
                    rank(to)
                );
            }
        }
        if top == "protocol" {
            for u in &s.uses {
                // tokio_util's codec traits are plain traits over bytes.
                assert!(
                    !u.starts_with("tokio::") && !u.contains("std::net"),
                    "the sans-IO core uses no runtime and no sockets: {}: `use {u}`",
                    s.module.join("::")
                );
            }
        }
    }
}
