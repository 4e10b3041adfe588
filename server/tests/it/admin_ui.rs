//! The admin console (`/admin`) end to end in a real browser: `tests/browser/admin.mjs` drives
//! Debian's Chromium through playwright-core against a real `dartmouth serve` (sign in, domains,
//! principals and groups, grants, keys, audit log, search playground, live metrics), then the API
//! confirms that what the browser did took effect. Needs `scripts/setup-browser.sh` (Chromium,
//! node and the npm lockfile's playwright-core); without them the test fails, never skips.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;
use serde_json::Value;

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// The browser, node and playwright-core, or a failure that says how to get them.
fn check_prerequisites() -> PathBuf {
    let chromium = std::env::var_os("CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    let playwright = browser_dir().join("node_modules/playwright-core/package.json");
    let node = Command::new("node").arg("--version").output();
    let mut missing = Vec::new();
    if !chromium.exists() {
        missing.push(format!("Chromium ({})", chromium.display()));
    }
    if !node.is_ok_and(|o| o.status.success()) {
        missing.push("node".to_string());
    }
    if !playwright.exists() {
        missing.push(format!("playwright-core ({})", playwright.display()));
    }
    assert!(
        missing.is_empty(),
        "the admin console's browser test needs {}: run scripts/setup-browser.sh",
        missing.join(", ")
    );
    chromium
}

fn get(server: &Server, path: &str, key: &str) -> Value {
    let (status, body) = call(server, "GET", path, Some(key), None);
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

fn names<'a>(list: &'a Value, field: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x[field].as_str())
        .collect()
}

#[test]
fn the_admin_console_works_in_a_browser() {
    let chromium = check_prerequisites();
    let (dir, data, keys) = setup();
    // A Shopify-compatible shop the console connects and syncs.
    let shop = crate::shop_server::ShopServer::start(crate::shop_server::real_products().0);
    let host = shop.base.trim_start_matches("http://").to_string();
    let server = start_with_env(
        &data,
        &[],
        &[
            ("ACME_TOKEN", crate::shop_server::TOKEN),
            ("DARTMOUTH_SHOPIFY_PLAIN_HOSTS", host.as_str()),
            ("DARTMOUTH_SHOPIFY_POLL_MS", "20"),
        ],
    );
    let _dir = dir;
    let screenshots = tempfile::tempdir().unwrap();

    let out = Command::new("node")
        .arg(browser_dir().join("admin.mjs"))
        .current_dir(browser_dir())
        .env("DARTMOUTH_URL", &server.http)
        .env("DARTMOUTH_ADMIN_KEY", &keys.admin)
        .env("DARTMOUTH_SHOP", &host)
        .env("DARTMOUTH_SCREENSHOTS", screenshots.path())
        .env("CHROMIUM", &chromium)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "admin.mjs failed ({}); screenshots in {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status,
        screenshots.keep().display()
    );
    let summary: Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON summary in:\n{stdout}\n{stderr}"));
    assert_eq!(summary["ok"], true, "{summary}");
    assert!(summary["steps"].as_u64().unwrap() >= 21, "{summary}");

    // Each section's screenshot.
    let shots = std::fs::read_dir(screenshots.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "png")
        })
        .count();
    assert!(shots >= 10, "{shots} screenshots");

    let admin = keys.admin.as_str();
    let revoked = summary["revoked_key"].as_str().unwrap();
    assert!(revoked.starts_with("dk_"), "{summary}");

    // The domain the browser made, and deleted at the end.
    let domains = get(&server, "/v1/domains", admin);
    assert!(!names(&domains, "name").contains(&"ui-test"), "{domains}");
    assert!(names(&domains, "name").contains(&"help"), "{domains}");

    // The agent is gone with its grant and key; the group stays, without it.
    let principals = get(&server, "/v1/principals", admin);
    let principal_names = names(&principals, "name");
    assert!(!principal_names.contains(&"ui-agent"), "{principals}");
    assert!(principal_names.contains(&"ui-group"), "{principals}");
    let members = get(&server, "/v1/groups/ui-group/members", admin);
    assert_eq!(members, serde_json::json!([]), "ui-group's members");
    let grants = get(&server, "/v1/grants", admin);
    assert!(
        !names(&grants, "principal").contains(&"ui-agent"),
        "{grants}"
    );
    let listed = get(&server, "/v1/keys", admin);
    assert!(
        !names(&listed, "principal").contains(&"ui-agent"),
        "{listed}"
    );

    // The audit log recorded each thing the browser did, by the admin, in order.
    let audit = get(&server, "/v1/audit?actor=admin&outcome=ok&limit=100", admin);
    let entries: Vec<(&str, &str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["target"].as_str().unwrap_or(""),
                e["detail"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let connected = format!("{host} 2026-01");
    let expected = [
        (
            "create-domain",
            "ui-test",
            "made by the <i>browser</i> test",
        ),
        ("create-principal", "ui-agent", "agent"),
        ("create-principal", "ui-group", "group"),
        ("add-member", "ui-group", "ui-agent"),
        ("grant", "ui-test", "ui-agent read"),
        ("create-key", "ui-agent", revoked),
        ("revoke-key", revoked, "ui-agent"),
        ("shopify-connect", "ui-test", connected.as_str()),
        ("delete-principal", "ui-agent", ""),
        ("delete-domain", "ui-test", ""),
    ];
    let mut at = 0;
    for entry in expected {
        match entries[at..].iter().position(|e| *e == entry) {
            Some(i) => at += i + 1,
            None => panic!("no audit entry {entry:?} after the previous ones: {audit}"),
        }
    }
    // The revoked key was refused when the browser test tried it.
    let denied = get(
        &server,
        "/v1/audit?action=authenticate&outcome=denied&limit=100",
        admin,
    );
    assert!(
        denied
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["target"] == revoked && e["actor"] == "ui-agent"),
        "no refusal of the revoked key {revoked}: {denied}"
    );
}
