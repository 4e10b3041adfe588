//! The MCP server driven by the official Python MCP SDK (`mcp` from PyPI, pinned in
//! scripts/mcp-client-requirements.txt): `dartmouth mcp` over stdio and `POST /mcp` over
//! streamable HTTP, as the caller's credential. The tools' answers are the HTTP API's.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::*;

/// The Python the MCP client runs with (`scripts/setup-mcp-client.sh` prints it); the test
/// fails, never skips, without it.
fn python() -> PathBuf {
    let from_env = std::env::var_os("DARTMOUTH_MCP_PYTHON").map(PathBuf::from);
    let default = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv-tools/bin/python");
    let python = from_env.unwrap_or(default);
    assert!(
        python.is_file(),
        "{} is missing: run scripts/setup-mcp-client.sh (scripts/test.sh does)",
        python.display()
    );
    python
}

/// Runs the SDK client with `transport` arguments over `script`: (succeeded, its JSON report
/// or null, stderr).
fn client(transport: &[&str], script: &Value) -> (bool, Value, String) {
    let driver = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/client.py");
    let mut child = Command::new(python())
        .arg(driver)
        .args(["--timeout", "60"])
        .args(transport)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    (
        out.status.success(),
        serde_json::from_str(&stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn doc_ids(hits: &Value) -> Vec<String> {
    hits.as_array()
        .unwrap()
        .iter()
        .map(|h| h["chunk_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn mcp_tools_over_stdio_and_streamable_http_with_the_sdk() {
    let (dir, data, keys) = setup();
    let s = start_on(&data, &[]);
    let script = json!([
        {"tool": "search", "arguments": {"query": "return policy for sale items", "domains": ["help"], "k": 3}},
        {"tool": "context", "arguments": {"query": "refund for a damaged item", "domains": ["help"], "max_tokens": 200}},
        {"tool": "get_document", "arguments": {"domain": "help", "doc_id": "returns.md"}},
        // Refusals are tool errors the model can read: an unreadable domain reads as a
        // missing one, a bad filter names it, an unknown argument is named.
        {"tool": "search", "arguments": {"query": "refund", "domains": ["secret"]}},
        {"tool": "search", "arguments": {"query": "refund", "domains": ["nope"]}},
        {"tool": "search", "arguments": {"query": "refund", "filter": "price <"}},
        {"tool": "search", "arguments": {"query": "refund", "colour": "red"}},
        // An unknown tool is a protocol error.
        {"tool": "delete_everything", "arguments": {}, "expect_error": true},
        {"ping": true}
    ]);
    let (_, http_hits) = call(
        &s,
        "POST",
        "/v1/search",
        Some(&keys.reader),
        Some(r#"{"query":"return policy for sale items","domains":["help"],"k":3}"#),
    );
    let bin = binary();
    let data_dir = data.to_str().unwrap();
    let url = format!("{}/mcp", s.http);
    // stdio relayed to the running server (an agent runtime spawns this next to a server),
    // and streamable HTTP straight to it.
    let bridge = [
        "stdio",
        "--",
        bin.to_str().unwrap(),
        "mcp",
        "--url",
        s.http.as_str(),
        "--key",
        keys.reader.as_str(),
    ];
    let http = ["http", url.as_str(), keys.reader.as_str()];
    let local = [
        "stdio",
        "--",
        bin.to_str().unwrap(),
        "--data-dir",
        data_dir,
        "mcp",
        "--key",
        keys.reader.as_str(),
    ];
    let mut reports = Vec::new();
    for (name, transport) in [("stdio bridge", &bridge[..]), ("http", &http[..])] {
        let (ok, report, err) = client(transport, &script);
        assert!(ok, "{name}: {err}\n{report}");
        reports.push((name, report));
    }
    // The SDK's default connection (`mcp.Client`) first asks `server/discover` (a later
    // protocol) and falls back to `initialize` on the method-not-found answer.
    let one = json!([{"tool": "search", "arguments": {"query": "refund", "k": 1}}]);
    let (ok, report, err) = client(
        &["--mode", "auto", "http", url.as_str(), &keys.reader],
        &one,
    );
    assert!(ok, "{err}");
    assert_eq!(report["results"][0]["isError"], false, "{report}");

    // A refused credential fails the connection with a legible message, on every transport.
    let (ok, _, err) = client(&["http", url.as_str(), "dk_not-a-key"], &one);
    assert!(!ok);
    assert!(
        err.contains("-32003") && err.contains("invalid API key"),
        "{err}"
    );
    let (ok, _, err) = client(&["http", url.as_str(), ""], &one);
    assert!(!ok);
    assert!(err.contains("missing credentials"), "{err}");
    let (ok, _, err) = cli_run(
        &data,
        &["mcp", "--url", s.http.as_str(), "--key", "dk_not-a-key"],
    );
    assert!(!ok);
    assert!(
        err.contains("--key: unauthenticated") && err.contains("invalid API key"),
        "{err}"
    );

    // stdio on the data directory itself, with no server running on it.
    s.kill();
    let (ok, report, err) = client(&local, &script);
    assert!(ok, "local stdio: {err}\n{report}");
    reports.push(("local stdio", report));
    let (ok, _, err) = cli_run(&data, &["mcp", "--key", "dk_not-a-key"]);
    assert!(!ok);
    assert!(
        err.contains("--key: not authenticated: invalid API key"),
        "{err}"
    );
    drop(dir);

    for (name, report) in &reports {
        assert_eq!(report["server"]["name"], "dartmouth", "{name}");
        assert_eq!(report["protocol"], "2025-11-25", "{name}");
        let tools: Vec<&str> = report["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(tools, ["search", "context", "get_document"], "{name}");
        for t in report["tools"].as_array().unwrap() {
            assert_eq!(t["inputSchema"]["type"], "object", "{name}: {t}");
            assert!(t["outputSchema"].is_object(), "{name}: {t}");
        }
        let r = &report["results"];
        // search: the HTTP API's hits, in order.
        assert_eq!(r[0]["isError"], false, "{name}: {}", r[0]);
        assert_eq!(
            doc_ids(&r[0]["structured"]["hits"]),
            doc_ids(&http_hits["hits"]),
            "{name}"
        );
        // context: the pack as text, passages structured, within the budget.
        assert!(
            r[1]["text"].as_str().unwrap().starts_with("[1] "),
            "{name}: {}",
            r[1]
        );
        assert!(r[1]["structured"]["tokens"].as_u64().unwrap() <= 200);
        assert_eq!(r[2]["structured"]["doc_id"], "returns.md", "{name}");
        assert_eq!(r[3]["isError"], true, "{name}");
        assert_eq!(
            r[3]["text"].as_str().unwrap().replace("secret", "X"),
            r[4]["text"].as_str().unwrap().replace("nope", "X"),
            "{name}: an unreadable domain reads as a missing one"
        );
        assert!(
            r[3]["text"].as_str().unwrap().starts_with("not_found:"),
            "{name}: {}",
            r[3]
        );
        assert!(
            r[5]["text"]
                .as_str()
                .unwrap()
                .starts_with("invalid_argument: filter"),
            "{name}: {}",
            r[5]
        );
        assert!(
            r[6]["text"].as_str().unwrap().contains("colour"),
            "{name}: {}",
            r[6]
        );
        assert_eq!(r[7]["error"]["code"], -32602, "{name}: {}", r[7]);
        assert_eq!(r[8]["ping"], "ok", "{name}");
    }
}
