//! The TypeScript and Python clients' own suites (`clients/typescript`: `npm test`, node's
//! test runner and a run inside workerd; `clients/python`: pytest), each against real
//! `dartmouth serve` processes of this build that the suite starts itself. The types each
//! client checks in must be what `dartmouth openapi` generates now: a change to the API that
//! is not regenerated into the clients fails here.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::binary;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(what: &str, command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: could not start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The OpenAPI document of this build, in a file.
fn document(dir: &Path) -> PathBuf {
    let out = Command::new(binary()).arg("openapi").output().unwrap();
    assert!(out.status.success());
    let path = dir.join("openapi.json");
    std::fs::write(&path, out.stdout).unwrap();
    path
}

#[test]
fn clients_typescript_suite() {
    let dir = repo().join("clients/typescript");
    assert!(
        dir.join("node_modules/.bin/tsc").is_file(),
        "clients/typescript/node_modules is missing: run scripts/setup-client-typescript.sh \
         (scripts/test.sh does)"
    );
    // The checked-in types are the generated ones.
    let tmp = tempfile::tempdir().unwrap();
    let spec = document(tmp.path());
    let generated = tmp.path().join("schema.ts");
    run(
        "openapi-typescript",
        Command::new(dir.join("node_modules/.bin/openapi-typescript"))
            .current_dir(&dir)
            .arg(&spec)
            .arg("--empty-objects-unknown")
            .arg("--output")
            .arg(&generated),
    );
    assert!(
        std::fs::read_to_string(&generated).unwrap()
            == std::fs::read_to_string(dir.join("src/schema.ts")).unwrap(),
        "clients/typescript/src/schema.ts is not what the OpenAPI document generates: run \
         `npm run gen -- <(dartmouth openapi)` there (see its README)"
    );
    run(
        "npm test (clients/typescript)",
        Command::new("npm")
            .current_dir(&dir)
            .arg("test")
            .env("DARTMOUTH_BIN", binary()),
    );
}

#[test]
fn clients_python_suite() {
    let python = std::env::var_os("DARTMOUTH_CLIENT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv-client-python/bin/python"));
    assert!(
        python.is_file(),
        "{} is missing: run scripts/setup-client-python.sh (scripts/test.sh does)",
        python.display()
    );
    let dir = repo().join("clients/python");
    let tmp = tempfile::tempdir().unwrap();
    let spec = document(tmp.path());
    let generated = tmp.path().join("models.py");
    run(
        "gen_models.py",
        Command::new(&python)
            .arg(dir.join("scripts/gen_models.py"))
            .arg(&spec)
            .arg(&generated),
    );
    assert!(
        std::fs::read_to_string(&generated).unwrap()
            == std::fs::read_to_string(dir.join("dartmouth_knowledge/models.py")).unwrap(),
        "clients/python/dartmouth_knowledge/models.py is not what the OpenAPI document \
         generates: run scripts/gen_models.py there (see its README)"
    );
    run(
        "pytest (clients/python)",
        Command::new(&python)
            .current_dir(&dir)
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"])
            .env("DARTMOUTH_BIN", binary()),
    );
}
