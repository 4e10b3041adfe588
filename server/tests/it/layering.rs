//! The architecture's rules, checked against the code: which workspace crates each crate may
//! depend on (dependencies point down, the store and the transports stay in their places), and
//! no import cycle between the modules of a crate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The workspace members each crate may depend on (normal dependencies; tests may use more).
const ALLOWED: &[(&str, &[&str])] = &[
    ("engine", &[]),
    ("catalog", &[]),
    ("domains", &[]),
    ("indexer", &["engine", "catalog"]),
    ("views", &["engine", "catalog", "domains", "indexer"]),
    ("eval", &["engine", "catalog", "indexer"]),
    (
        "server",
        &["engine", "catalog", "domains", "indexer", "views", "eval"],
    ),
    (
        "benches",
        &["engine", "catalog", "domains", "indexer", "views", "server"],
    ),
    ("fuzz", &["engine", "catalog", "indexer", "server"]),
];

/// The names in a manifest's `[dependencies]` table (normal dependencies only).
fn dependencies(manifest: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let mut out = BTreeSet::new();
    let mut in_deps = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        let name = line.split(['.', ' ', '=']).next().unwrap_or("");
        if in_deps && !name.is_empty() && !name.starts_with('#') {
            out.insert(name.to_string());
        }
    }
    out
}

/// The workspace members among a manifest's dependencies, without their `dartmouth-` prefix.
fn member_dependencies(manifest: &Path) -> BTreeSet<String> {
    dependencies(manifest)
        .into_iter()
        .filter_map(|d| d.strip_prefix("dartmouth-").map(str::to_string))
        .collect()
}

#[test]
fn crates_depend_only_downwards() {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let members: Vec<String> = text
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .unwrap()
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut wrong = Vec::new();
    for m in &members {
        let Some(may) = allowed.get(m.as_str()) else {
            wrong.push(format!(
                "{m}: a member this test does not know; add its rule"
            ));
            continue;
        };
        for dep in member_dependencies(&root().join(m).join("Cargo.toml")) {
            if !may.contains(&dep.as_str()) {
                wrong.push(format!("{m} depends on {dep}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The external crates that mark a layer: the database only in `domains`, the transports only
/// in `server`.
const OWNED: &[(&str, &str)] = &[("sqlx", "domains"), ("axum", "server"), ("tonic", "server")];

#[test]
fn the_database_and_the_transports_stay_in_their_crates() {
    let mut wrong = Vec::new();
    for (krate, _) in ALLOWED {
        let deps = dependencies(&root().join(krate).join("Cargo.toml"));
        for (dep, owner) in OWNED {
            if deps.contains(*dep) && krate != owner {
                wrong.push(format!(
                    "{krate} depends on {dep}, which belongs to {owner}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The top-level module a source file belongs to (`shard` for `src/shard.rs`, `shopify` for
/// `src/shopify/csv.rs`; `lib` for lib.rs and main.rs).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Top-level modules a file names through `crate::x`.
fn uses(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        // `dartmouth_crate::…` and the like are not this crate.
        if text[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[i + "crate::".len()..];
        // `crate::{a::X, b::{Y, Z}}`: the modules named at the group's top level.
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut start = 0;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        out.extend(module_path(&group[start..j]));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.extend(module_path(&group[start..j]));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if rest[name.len()..].starts_with("::") || rest[name.len()..].starts_with(['{', ',', ';']) {
            out.insert(name);
        }
    }
    out
}

/// `a` of `a::B` in a use group (`Error` alone names no module).
fn module_path(item: &str) -> Option<String> {
    let item = item.trim();
    let name: String = item
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    item[name.len()..].starts_with("::").then_some(name)
}

#[test]
fn use_groups_name_their_modules() {
    let found = uses("use crate::{attrs::Attributes, shard::{Chunk, Document}, Error};");
    assert_eq!(
        found,
        BTreeSet::from(["attrs".to_string(), "shard".to_string()])
    );
    assert!(uses("use dartmouth_crate::x::Y;").is_empty());
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let mut cycles = Vec::new();
    for (krate, _) in ALLOWED {
        let src = root().join(krate).join("src");
        if !src.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for f in &files {
            let from = module_of(&src, f);
            let text = std::fs::read_to_string(f).unwrap();
            for to in uses(&text) {
                if to != from && modules.contains(&to) && from != "lib" && from != "main" {
                    edges.entry(from.clone()).or_default().insert(to);
                }
            }
        }
        // Every cycle shows up as a module reachable from itself.
        for start in edges.keys() {
            let mut seen = BTreeSet::new();
            let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
            while let Some((m, path)) = stack.pop() {
                for next in edges.get(&m).into_iter().flatten() {
                    if next == start {
                        let mut cycle = path.clone();
                        cycle.push(next.clone());
                        cycles.push(format!("{krate}: {}", cycle.join(" → ")));
                    } else if seen.insert(next.clone()) {
                        let mut p = path.clone();
                        p.push(next.clone());
                        stack.push((next.clone(), p));
                    }
                }
            }
        }
    }
    cycles.sort();
    cycles.dedup();
    assert!(cycles.is_empty(), "{}", cycles.join("\n"));
}
