//! The OpenAPI 3.1 document at `/api/openapi.json`, checked against the running server:
//! every mounted API operation is documented, the scopes it lists are the scopes the
//! guard enforces, the OAuth 2.0 flows point at this server, and every schema reference
//! resolves.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{crm_error_fields, spawn_app, TestApp, CRM_SCOPES};

/// Every operation the PropTech API mounts: (method, path template).
const OPERATIONS: &[(&str, &str)] = &[
    ("get", "/api/properties"),
    ("post", "/api/properties"),
    ("get", "/api/properties/{id}"),
    ("patch", "/api/properties/{id}"),
    ("get", "/api/tenants"),
    ("post", "/api/tenants"),
    ("get", "/api/tenants/{id}"),
    ("patch", "/api/tenants/{id}"),
    ("get", "/api/tenants/{id}/ledger"),
    ("post", "/api/tenants/{id}/ledger"),
    ("get", "/api/tenants/{id}/ledger/{entry_id}"),
    ("get", "/api/tenants/{id}/balance"),
    ("get", "/api/maintenance"),
    ("post", "/api/maintenance"),
    ("get", "/api/maintenance/{id}"),
    ("patch", "/api/maintenance/{id}"),
];

const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The document, fetched without a token.
async fn document(app: &TestApp) -> Value {
    let res = app.get("/api/openapi.json", None).await;
    assert_eq!(res.status(), 200);
    let ctype = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ctype.starts_with("application/json"), "{ctype}");
    res.json().await.expect("the document is JSON")
}

/// Every (method, path, operation) of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if HTTP_METHODS.contains(&method.as_str()) {
                out.push((method.clone(), path.clone(), op.clone()));
            }
        }
    }
    out
}

/// A concrete request path for a template: `{id}` becomes an id nothing has.
fn concrete(path: &str) -> String {
    path.replace("{id}", "999999")
        .replace("{entry_id}", "999999")
}

fn method(m: &str) -> Method {
    Method::from_bytes(m.to_ascii_uppercase().as_bytes()).unwrap()
}

/// The scope alternatives of an operation's `security` (each a set that suffices).
fn security(op: &Value) -> Vec<Vec<String>> {
    op["security"]
        .as_array()
        .expect("every operation has security")
        .iter()
        .map(|req| {
            let req = req.as_object().expect("security requirement");
            assert_eq!(req.keys().collect::<Vec<_>>(), ["oauth2"], "{req:?}");
            req["oauth2"]
                .as_array()
                .expect("scopes")
                .iter()
                .map(|s| s.as_str().expect("scope").to_owned())
                .collect()
        })
        .collect()
}

/// Where a JSON pointer (`#/a/b`) leads in `doc`.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// Every `$ref` in `v`.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    out.push(x.as_str().expect("$ref is a string").to_owned());
                } else {
                    refs(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

/// A schema with its `$ref` followed.
fn deref<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(doc, r).unwrap_or_else(|| panic!("{r} does not resolve")),
        None => schema,
    }
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_needs_no_token() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(doc["info"]["version"]
        .as_str()
        .is_some_and(|v| !v.is_empty()));
    assert_eq!(doc["servers"][0]["url"], app.base.as_str());
    // operationIds are unique, and every operation says what it answers.
    let ops = operations(&doc);
    let ids: BTreeSet<&str> = ops
        .iter()
        .map(|(_, _, op)| op["operationId"].as_str().expect("operationId"))
        .collect();
    assert_eq!(ids.len(), ops.len(), "operationIds are unique");
    for (m, p, op) in &ops {
        let responses = op["responses"].as_object().expect("responses");
        assert!(
            responses.contains_key("401") && responses.contains_key("403"),
            "{m} {p}"
        );
        let ok = if m == "post" { "201" } else { "200" };
        assert!(responses.contains_key(ok), "{m} {p} documents {ok}");
        if p.contains('{') {
            assert!(responses.contains_key("404"), "{m} {p} documents 404");
            let params = op["parameters"].as_array().unwrap();
            assert!(
                params
                    .iter()
                    .any(|x| x["name"] == "id" && x["in"] == "path" && x["required"] == true),
                "{m} {p} documents its path parameter"
            );
        }
    }
}

#[tokio::test]
async fn every_mounted_api_operation_is_documented_and_nothing_else() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect();
    let expected: BTreeSet<(String, String)> = OPERATIONS
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, expected);
    for path in doc["paths"].as_object().unwrap().keys() {
        assert!(path.starts_with("/api/"), "{path}");
    }

    // Each documented operation is mounted behind the guard: without a token it is a 401
    // bearer challenge, not a 404 or 405.
    for (m, p) in &documented {
        let res = app.crm_send(method(m), &concrete(p), None, None).await;
        assert_eq!(res.status(), 401, "{m} {p} is mounted behind the guard");
        let challenge = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.starts_with("Bearer "), "{m} {p}: {challenge}");
    }

    // And the server mounts nothing else under /api/ (but the document itself): other
    // methods on documented paths and neighbouring paths are not routes, even with a
    // token holding every scope.
    let creds = app.create_client(CRM_SCOPES);
    let token = app.access_token(&creds, None).await;
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    for p in paths {
        for m in ["get", "post", "put", "patch", "delete"] {
            if documented.contains(&(m.to_owned(), p.clone())) {
                continue;
            }
            let (status, body) = app
                .crm_call(method(m), &concrete(p), Some(&token), Some(&json!({})))
                .await;
            assert!(
                matches!(status, 404 | 405),
                "{m} {p} is undocumented yet answers {status}: {body}"
            );
        }
    }
    for p in [
        "/api",
        "/api/",
        "/api/users",
        "/api/clients",
        "/api/ledger",
        "/api/balances",
        "/api/properties/1/tenants",
        "/api/tenants/1/maintenance",
        "/api/tenants/1/ledger/1",
        "/api/maintenance/1/comments",
        "/api/openapi.yaml",
    ] {
        let (status, body) = app.crm_call(Method::GET, p, Some(&token), None).await;
        assert_eq!(status, 404, "GET {p} is not a route: {body}");
    }
}

#[tokio::test]
async fn the_documented_scopes_are_the_scopes_the_server_enforces() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let creds = app.create_client(CRM_SCOPES);
    let declared: BTreeSet<String> = doc["components"]["securitySchemes"]["oauth2"]["flows"]
        ["clientCredentials"]["scopes"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let mut tokens: BTreeMap<String, String> = BTreeMap::new();
    for (m, p, op) in operations(&doc) {
        let alternatives = security(&op);
        assert!(!alternatives.is_empty(), "{m} {p} requires a token");
        let mut named = BTreeSet::new();
        for alt in &alternatives {
            assert!(
                !alt.is_empty(),
                "{m} {p}: an empty alternative would allow any token"
            );
            for s in alt {
                assert!(declared.contains(s), "{m} {p}: {s} is not a declared scope");
                named.insert(s.clone());
            }
        }
        let body = (m == "post" || m == "patch").then(|| json!({}));

        // A token with exactly one alternative's scopes passes the scope check: it gets
        // the operation's own answer (200, or 404 for the unknown id, or 422 for the
        // empty body; for a PATCH either may come first), never 401 or 403.
        for alt in &alternatives {
            let scope = alt.join(" ");
            if !tokens.contains_key(&scope) {
                let t = app.access_token(&creds, Some(&scope)).await;
                tokens.insert(scope.clone(), t);
            }
            let (status, res) = app
                .crm_call(
                    method(&m),
                    &concrete(&p),
                    Some(&tokens[&scope]),
                    body.as_ref(),
                )
                .await;
            let expected: &[u16] = match (m.as_str(), p.contains('{')) {
                ("get", false) => &[200],
                ("get", true) => &[404],
                (_, true) => &[404, 422],
                (_, false) => &[422],
            };
            assert!(
                expected.contains(&status),
                "{m} {p} with exactly {scope:?}: {status} {res}"
            );
            if status == 422 {
                crm_error_fields(&res);
            }
        }

        // A token with every other scope is refused with insufficient_scope naming them.
        let rest: Vec<&str> = CRM_SCOPES
            .split(' ')
            .filter(|s| !named.contains(*s))
            .collect();
        let rest = rest.join(" ");
        if !tokens.contains_key(&rest) {
            let t = app.access_token(&creds, Some(&rest)).await;
            tokens.insert(rest.clone(), t);
        }
        let res = app
            .crm_send(
                method(&m),
                &concrete(&p),
                Some(&tokens[&rest]),
                body.as_ref(),
            )
            .await;
        assert_eq!(res.status(), 403, "{m} {p} without {named:?}");
        let challenge = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.contains("error=\"insufficient_scope\""),
            "{challenge}"
        );
        let asked: BTreeSet<String> = challenge
            .split("scope=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_else(|| panic!("no scope in {challenge}"))
            .split(' ')
            .map(str::to_owned)
            .collect();
        assert_eq!(
            asked, named,
            "{m} {p}: the challenge and the document agree"
        );
    }
}

#[tokio::test]
async fn the_oauth2_scheme_points_at_this_servers_endpoints() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let scheme = &doc["components"]["securitySchemes"]["oauth2"];
    assert_eq!(scheme["type"], "oauth2");
    let flows = &scheme["flows"];
    let authorize = format!("{}/authorize", app.base);
    let token = format!("{}/token", app.base);
    assert_eq!(
        flows["authorizationCode"]["authorizationUrl"],
        authorize.as_str()
    );
    assert_eq!(flows["authorizationCode"]["tokenUrl"], token.as_str());
    assert_eq!(flows["clientCredentials"]["tokenUrl"], token.as_str());
    // The same endpoints the server advertises in its metadata.
    let meta: Value = app
        .get("/.well-known/oauth-authorization-server", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(meta["authorization_endpoint"], authorize.as_str());
    assert_eq!(meta["token_endpoint"], token.as_str());
    // Both flows declare every CRM scope, each with a description.
    for flow in ["authorizationCode", "clientCredentials"] {
        let scopes = flows[flow]["scopes"].as_object().expect("scopes");
        for s in CRM_SCOPES.split(' ') {
            assert!(
                scopes
                    .get(s)
                    .and_then(Value::as_str)
                    .is_some_and(|d| !d.is_empty()),
                "{flow} declares {s}"
            );
        }
    }
    // The endpoints are real: the token endpoint issues a token for a documented scope.
    let creds = app.create_client("property:read");
    let res = app
        .post_token(
            Some(&creds),
            "grant_type=client_credentials&scope=property%3Aread",
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = app.get("/authorize", None).await;
    assert_ne!(res.status(), 404, "the authorization endpoint exists");
}

#[tokio::test]
async fn every_schema_reference_resolves_and_bodies_match_the_server() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let schemas = doc["components"]["schemas"]
        .as_object()
        .expect("components.schemas");
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in &all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{r} points outside components.schemas"));
        assert!(schemas.contains_key(name), "{r} names no schema");
    }

    // Request bodies: JSON, required, and the fields the server takes (and no others).
    let expected_bodies: BTreeMap<(&str, &str), &[&str]> = [
        (
            ("post", "/api/properties"),
            &["address", "kind", "manager_id", "name", "units"][..],
        ),
        (
            ("patch", "/api/properties/{id}"),
            &["address", "kind", "manager_id", "name", "units"],
        ),
        (
            ("post", "/api/tenants"),
            &[
                "currency",
                "email",
                "lease_start",
                "name",
                "phone",
                "property_id",
                "rent",
                "unit",
                "user_id",
            ],
        ),
        (
            ("patch", "/api/tenants/{id}"),
            &[
                "currency",
                "email",
                "lease_start",
                "name",
                "phone",
                "property_id",
                "rent",
                "unit",
                "user_id",
            ],
        ),
        (
            ("post", "/api/tenants/{id}/ledger"),
            &["amount", "description", "effective_on", "kind"],
        ),
        (
            ("post", "/api/maintenance"),
            &["description", "priority", "tenant_id", "title"],
        ),
        (
            ("patch", "/api/maintenance/{id}"),
            &["assignee", "priority", "status"],
        ),
    ]
    .into_iter()
    .collect();
    for (m, p, op) in operations(&doc) {
        let body = op.get("requestBody");
        match expected_bodies.get(&(m.as_str(), p.as_str())) {
            None => assert!(body.is_none(), "{m} {p} takes no body"),
            Some(fields) => {
                let body = body.unwrap_or_else(|| panic!("{m} {p} documents its body"));
                assert_eq!(body["required"], true, "{m} {p}");
                let schema = deref(&doc, &body["content"]["application/json"]["schema"]);
                let props: Vec<&str> = schema["properties"]
                    .as_object()
                    .unwrap_or_else(|| panic!("{m} {p}: {schema}"))
                    .keys()
                    .map(String::as_str)
                    .collect();
                let mut props = props;
                props.sort();
                assert_eq!(props, *fields, "{m} {p}");
                assert_eq!(
                    schema["additionalProperties"], false,
                    "{m} {p}: unknown fields are refused, and the schema says so"
                );
            }
        }
        // Success responses resolve to object schemas.
        let (_, ok) = op["responses"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(k, _)| k.starts_with('2'))
            .expect("a success response");
        let schema = deref(&doc, &ok["content"]["application/json"]["schema"]);
        assert!(schema["properties"].is_object(), "{m} {p}: {schema}");
    }

    // The documented query parameters are the ones the server accepts.
    let creds = app.create_client(CRM_SCOPES);
    let token = app.access_token(&creds, None).await;
    for (m, p, op) in operations(&doc) {
        if m != "get" {
            continue;
        }
        for param in op["parameters"].as_array().unwrap() {
            if param["in"] != "query" {
                continue;
            }
            let name = param["name"].as_str().unwrap();
            let values: Vec<String> = match param["schema"]["enum"].as_array() {
                Some(e) => e.iter().map(|v| v.as_str().unwrap().to_owned()).collect(),
                None => vec!["zzz".to_owned()],
            };
            for v in values {
                let path = format!("{}?{name}={v}", concrete(&p));
                let (status, body) = app.crm_call(Method::GET, &path, Some(&token), None).await;
                if status == 422 {
                    let message = body["fields"][0]["message"].as_str().unwrap_or("");
                    assert_ne!(message, "is not a known parameter", "{path}");
                } else {
                    assert!(matches!(status, 200 | 404), "{path}: {status} {body}");
                }
                if param["schema"]["enum"].is_array() && !p.contains('{') {
                    assert_eq!(status, 200, "{path}: every documented sort is accepted");
                }
            }
        }
    }
}
