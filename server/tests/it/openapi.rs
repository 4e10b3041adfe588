//! The OpenAPI document against what the server answers: every JSON answer the HTTP tests get
//! (through `support::call_full` and `post_raw`) is validated by a JSON Schema validator against
//! the operation's documented response, so a handler that drifts from its documented type fails
//! the suite. The check is stricter than the served document: an object answered with a field
//! the document does not name fails too (`unevaluatedProperties: false` here, while clients may
//! still ignore fields a newer server adds).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Value, json};

struct Spec {
    document: Value,
    /// Component schemas, each closed to undocumented fields (see the module comment).
    strict: Value,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let document = dartmouth_server::http::openapi::document();
        let strict = close_schemas(&document["components"]["schemas"]);
        Spec {
            document,
            strict,
            validators: Mutex::new(HashMap::new()),
        }
    })
}

/// The component schemas with `unevaluatedProperties: false` on every object schema, except
/// those another schema flattens into itself (an `allOf` part: the whole is closed instead).
fn close_schemas(schemas: &Value) -> Value {
    let mut parts = BTreeSet::new();
    for schema in schemas.as_object().into_iter().flatten().map(|(_, s)| s) {
        for part in schema["allOf"].as_array().into_iter().flatten() {
            if let Some(r) = part["$ref"].as_str() {
                parts.insert(r.trim_start_matches("#/components/schemas/").to_string());
            }
        }
    }
    let mut closed = schemas.clone();
    for (name, schema) in closed.as_object_mut().into_iter().flatten() {
        let object = schema.get("properties").is_some() || schema.get("allOf").is_some();
        if object && !parts.contains(name) {
            schema["unevaluatedProperties"] = json!(false);
        }
    }
    closed
}

/// The documented template of a concrete path (`/v1/domains/help` → `/v1/domains/{domain}`).
fn template(path: &str) -> Option<String> {
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    let paths = spec().document["paths"].as_object()?;
    // Literal segments win over parameters (`/v1/tasks/{id}` against a literal sibling).
    paths
        .keys()
        .filter(|t| {
            let ts: Vec<&str> = t.split('/').collect();
            ts.len() == segments.len()
                && ts
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t == s || (t.starts_with('{') && !s.is_empty()))
        })
        .min_by_key(|t| t.matches('{').count())
        .cloned()
}

fn validator(key: &str, schema: &Value) -> Arc<jsonschema::Validator> {
    let mut cache = spec().validators.lock().unwrap();
    Arc::clone(cache.entry(key.to_string()).or_insert_with(|| {
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": { "schemas": spec().strict },
            "allOf": [schema],
        });
        Arc::new(
            jsonschema::validator_for(&root).unwrap_or_else(|e| {
                panic!("the document's schema for {key} does not compile: {e}")
            }),
        )
    }))
}

/// Checks one answer against the document: its route and method are documented, its status is
/// (or falls to the documented error), and a JSON body validates against that response's schema.
pub fn check_answer(
    method: &str,
    path: &str,
    status: u16,
    content_type: Option<&str>,
    body: &Value,
) {
    let json_body = content_type.is_some_and(|c| c.starts_with("application/json"));
    let error_schema = json!({ "$ref": "#/components/schemas/Error" });
    let Some(route) = template(path) else {
        // An undocumented route answers the documented error (404 from the fallback).
        assert!(
            status >= 400,
            "{method} {path}: {status} from a route the document lacks"
        );
        if json_body {
            validate(
                &format!("error {status}"),
                &error_schema,
                method,
                path,
                status,
                body,
            );
        }
        return;
    };
    let operation = &spec().document["paths"][&route][method.to_ascii_lowercase()];
    if operation.is_null() {
        assert!(
            status == 405 || status >= 400,
            "{method} {route}: {status} from an operation the document lacks"
        );
        if json_body {
            validate(
                &format!("error {status}"),
                &error_schema,
                method,
                path,
                status,
                body,
            );
        }
        return;
    }
    let responses = &operation["responses"];
    let (key, response) = match &responses[status.to_string()] {
        Value::Null if status < 400 => {
            panic!("{method} {route}: answered {status}, which the document does not list")
        }
        Value::Null => ("default".to_string(), &responses["default"]),
        r => (status.to_string(), r),
    };
    let declared = &response["content"]["application/json"]["schema"];
    if json_body {
        assert!(
            !declared.is_null(),
            "{method} {route}: answered JSON with {status}, documented without a JSON body: {body}"
        );
        validate(
            &format!("{method} {route} {key}"),
            declared,
            method,
            path,
            status,
            body,
        );
    } else if !declared.is_null() {
        let empty = matches!(body, Value::String(s) if s.is_empty());
        assert!(
            empty && status >= 400,
            "{method} {route}: {status} documented as JSON, answered {content_type:?}: {body}"
        );
    }
}

fn validate(key: &str, schema: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let v = validator(key, schema);
    let errors: Vec<String> = v
        .iter_errors(body)
        .take(5)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} ({status}) does not match the OpenAPI document ({key}):\n  {}\nbody: {}",
        errors.join("\n  "),
        truncate(&body.to_string()),
    );
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(2000) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[test]
fn openapi_every_field_and_operation_is_described() {
    let document = &spec().document;
    assert_eq!(document["openapi"], "3.1.0");
    let described = |p: &Value| {
        p.get("description").is_some()
            || ["oneOf", "allOf", "anyOf"].iter().any(|k| {
                p[k].as_array()
                    .is_some_and(|xs| xs.iter().any(|x| x.get("description").is_some()))
            })
    };
    let mut missing = Vec::new();
    fn walk(name: &str, schema: &Value, described: &dyn Fn(&Value) -> bool, out: &mut Vec<String>) {
        for part in ["allOf", "oneOf"] {
            for s in schema[part].as_array().into_iter().flatten() {
                walk(name, s, described, out);
            }
        }
        for (field, p) in schema["properties"].as_object().into_iter().flatten() {
            if !described(p) {
                out.push(format!("{name}.{field}"));
            }
        }
    }
    for (name, schema) in document["components"]["schemas"].as_object().unwrap() {
        walk(name, schema, &described, &mut missing);
    }
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:?}"
    );
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(
                op["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{method} {path} has no description"
            );
            assert!(
                op["responses"]["default"]["content"]["application/json"]["schema"]["$ref"]
                    == "#/components/schemas/Error",
                "{method} {path} does not document the error answer"
            );
            let open = ["/healthz", "/readyz", "/metrics", "/openapi.json", "/admin"];
            if !open.contains(&path.as_str()) {
                assert!(
                    op["security"].is_array(),
                    "{method} {path} names no credential"
                );
            }
        }
    }
    // The error codes the document lists are the ones the server has.
    let codes = &document["components"]["schemas"]["Code"]["enum"];
    assert_eq!(
        codes,
        &json!([
            "invalid_argument",
            "unauthenticated",
            "permission_denied",
            "not_found",
            "conflict",
            "payload_too_large",
            "rate_limited",
            "unavailable",
            "internal"
        ])
    );
}

/// The checker itself catches drift: an answer with a field of the wrong type, one with a field
/// the document does not name, a missing required field, and an undocumented success status.
#[test]
fn openapi_check_refuses_answers_that_drift() {
    let good = json!({"domain": "help", "documents": 1, "chunks": 2, "seq": 3});
    check_answer(
        "POST",
        "/v1/domains/help/documents",
        200,
        Some("application/json"),
        &good,
    );
    let drifts = [
        json!({"domain": "help", "documents": "1", "chunks": 2, "seq": 3}),
        json!({"domain": "help", "documents": 1, "chunks": 2, "seq": 3, "extra": true}),
        json!({"domain": "help", "documents": 1, "chunks": 2}),
    ];
    for bad in drifts {
        let caught = std::panic::catch_unwind(|| {
            check_answer(
                "POST",
                "/v1/domains/help/documents",
                200,
                Some("application/json"),
                &bad,
            )
        });
        assert!(caught.is_err(), "{bad} passed the check");
    }
    let caught = std::panic::catch_unwind(|| {
        check_answer(
            "POST",
            "/v1/domains/help/documents",
            201,
            Some("application/json"),
            &good,
        )
    });
    assert!(caught.is_err(), "an undocumented 201 passed the check");
    // A documented error with its code.
    let error = json!({"error": {"code": "not_found", "message": "domain `x` does not exist"}});
    check_answer("POST", "/v1/search", 404, Some("application/json"), &error);
    let unknown = json!({"error": {"code": "teapot", "message": "x"}});
    let caught = std::panic::catch_unwind(|| {
        check_answer(
            "POST",
            "/v1/search",
            418,
            Some("application/json"),
            &unknown,
        )
    });
    assert!(caught.is_err(), "an unknown error code passed the check");
}
