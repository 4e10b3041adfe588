//! ARCHITECTURE.md stays true to the tree: every file, directory and test it names in backticks
//! exists (rust-analyzer's `tidy` tests are the model). A file is named by a path suffix
//! (`service/mod.rs`, `engine/tests/it/engine.rs`, `hnsw.rs`) that some file of the repository
//! ends with; a test as `path.rs::name`, a function of that name in such a file.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every file and directory of the repository, as `/`-separated paths from its root (build
/// output, installed dependencies and data left out).
fn tree() -> (Vec<String>, Vec<String>) {
    fn walk(root: &Path, dir: &Path, files: &mut Vec<String>, dirs: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if path.is_dir() {
                let skipped = name.starts_with('.')
                    || ["target", "node_modules", "models", "data", "__pycache__"]
                        .contains(&name.as_str());
                if !skipped {
                    dirs.push(rel);
                    walk(root, &path, files, dirs);
                }
            } else {
                files.push(rel);
            }
        }
    }
    let root = repo().canonicalize().unwrap();
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    walk(&root, &root, &mut files, &mut dirs);
    (files, dirs)
}

const SOURCE_EXTENSIONS: [&str; 8] = [".rs", ".py", ".ts", ".sh", ".mjs", ".toml", ".md", ".js"];

fn ends_with_path(path: &str, suffix: &str) -> bool {
    path == suffix || path.ends_with(&format!("/{suffix}"))
}

#[test]
fn architecture_names_only_files_and_tests_that_exist() {
    let text = std::fs::read_to_string(repo().join("ARCHITECTURE.md")).unwrap();
    let (files, dirs) = tree();
    let mut missing = Vec::new();
    let mut checked = 0;
    for (i, token) in text.split('`').enumerate() {
        // Odd pieces are inside backticks.
        if i % 2 == 0 || token.contains(['<', ' ', '*', '{']) || token.starts_with("../") {
            continue;
        }
        let (path, test) = match token.split_once("::") {
            Some((p, t)) if p.ends_with(".rs") => (p, Some(t)),
            Some(_) => continue, // a Rust path (`Shards::ensure`), not a file
            None => (token, None),
        };
        if let Some(dir) = path.strip_suffix('/') {
            checked += 1;
            if !dirs.iter().any(|d| ends_with_path(d, dir)) {
                missing.push(format!("directory `{token}`"));
            }
            continue;
        }
        if !SOURCE_EXTENSIONS.iter().any(|e| path.ends_with(e)) || !path.contains('.') {
            continue;
        }
        checked += 1;
        let matching: Vec<&String> = files.iter().filter(|f| ends_with_path(f, path)).collect();
        if matching.is_empty() {
            missing.push(format!("file `{token}`"));
            continue;
        }
        if let Some(test) = test {
            let defined = matching.iter().any(|f| {
                std::fs::read_to_string(repo().join(f))
                    .is_ok_and(|src| src.contains(&format!("fn {test}(")))
            });
            if !defined {
                missing.push(format!("test `{token}`"));
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} names checked: has the way ARCHITECTURE.md names files changed?"
    );
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names what the tree does not have:\n  {}",
        missing.join("\n  ")
    );
}
