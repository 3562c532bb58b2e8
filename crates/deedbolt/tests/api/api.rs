//! The guarded PropTech API, end to end: real tokens, real rows (RFC 6750 §3).

use serde_json::{json, Value};

use crate::helpers::spawn_app;

fn challenge(res: &reqwest::Response) -> String {
    res.headers()
        .get("www-authenticate")
        .expect("WWW-Authenticate")
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn read_scope_lists_properties_write_scope_creates_them() {
    let app = spawn_app().await;
    let writer = app.create_client("property:read property:write");
    let token = app.access_token(&writer, None).await;

    let res = app
        .http
        .post(format!("{}/api/properties", app.base))
        .bearer_auth(&token)
        .json(&json!({"name": "Harbour View", "address": "1 Quay St", "kind": "residential", "units": 12}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["name"], "Harbour View");
    assert_eq!(created["created_by"], writer.id.as_str());
    assert_eq!(location, format!("/api/properties/{}", created["id"]));

    let reader = app.create_client("property:read");
    let read_token = app.access_token(&reader, None).await;
    let res = app.get("/api/properties", Some(&read_token)).await;
    assert_eq!(res.status(), 200);
    let page: Value = res.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["address"], "1 Quay St");

    let res = app.get(&location, Some(&read_token)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["units"], 12);
    assert_eq!(
        app.get("/api/properties/999999", Some(&read_token))
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn read_only_token_cannot_create() {
    let app = spawn_app().await;
    let reader = app.create_client("property:read financial:read");
    let token = app.access_token(&reader, None).await;
    let res = app
        .http
        .post(format!("{}/api/properties", app.base))
        .bearer_auth(&token)
        .json(&json!({"name": "X", "address": "Y", "kind": "commercial", "units": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let c = challenge(&res);
    assert!(c.contains("error=\"insufficient_scope\""), "{c}");
    assert!(c.contains("scope=\"property:write\""), "{c}");
    // Nothing was created.
    let page: Value = app
        .get("/api/properties", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn token_without_the_read_scope_is_forbidden() {
    let app = spawn_app().await;
    let creds = app.create_client("financial:read");
    let token = app.access_token(&creds, None).await;
    let res = app.get("/api/properties", Some(&token)).await;
    assert_eq!(res.status(), 403);
    assert!(challenge(&res).contains("scope=\"property:read\""));
}

#[tokio::test]
async fn missing_token_gets_a_bare_challenge() {
    let app = spawn_app().await;
    let res = app.get("/api/properties", None).await;
    assert_eq!(res.status(), 401);
    assert_eq!(challenge(&res), "Bearer realm=\"deedbolt\"");
}

#[tokio::test]
async fn malformed_authorization_header_is_invalid_request() {
    let app = spawn_app().await;
    let res = app
        .http
        .get(format!("{}/api/properties", app.base))
        .header("authorization", "Bearer two words")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(challenge(&res).contains("error=\"invalid_request\""));
}

#[tokio::test]
async fn garbage_or_tampered_token_is_invalid_token() {
    let app = spawn_app().await;
    let creds = app.create_client("property:read");
    let token = app.access_token(&creds, None).await;
    for bad in ["not-a-jwt".to_owned(), format!("{token}x"), {
        // Swap the claims for a widened scope, keep the signature.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut claims = crate::helpers::jwt_part(&token, 1);
        claims["scope"] = json!("property:read property:write");
        use base64::Engine as _;
        parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&claims).unwrap());
        parts.join(".")
    }] {
        let res = app.get("/api/properties", Some(&bad)).await;
        assert_eq!(res.status(), 401);
        assert!(challenge(&res).contains("error=\"invalid_token\""));
        let text = res.text().await.unwrap();
        assert!(!text.contains(&bad), "the token is never echoed");
    }
}

#[tokio::test]
async fn token_from_another_server_is_rejected() {
    let a = spawn_app().await;
    let b = spawn_app().await;
    let creds = a.create_client("property:read");
    let token = a.access_token(&creds, None).await;
    let res = b.get("/api/properties", Some(&token)).await;
    assert_eq!(res.status(), 401);
    assert!(challenge(&res).contains("error=\"invalid_token\""));
}

#[tokio::test]
async fn invalid_property_gets_422_with_every_field() {
    let app = spawn_app().await;
    let creds = app.create_client("property:write");
    let token = app.access_token(&creds, None).await;
    let res = app
        .http
        .post(format!("{}/api/properties", app.base))
        .bearer_auth(&token)
        .json(&json!({"name": "", "kind": "castle", "units": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    let fields: Vec<&str> = body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "address", "kind", "units"]);

    for (ctype, body) in [("application/json", "{not json"), ("text/plain", "{}")] {
        let res = app
            .http
            .post(format!("{}/api/properties", app.base))
            .bearer_auth(&token)
            .header("content-type", ctype)
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(matches!(res.status().as_u16(), 400 | 415), "{ctype}");
    }
}

#[tokio::test]
async fn list_paginates_with_a_cursor() {
    let app = spawn_app().await;
    let creds = app.create_client("property:read property:write");
    let token = app.access_token(&creds, None).await;
    for i in 0..5 {
        let res = app
            .http
            .post(format!("{}/api/properties", app.base))
            .bearer_auth(&token)
            .json(&json!({"name": format!("P{i}"), "address": "A", "kind": "residential", "units": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }
    let mut names = Vec::new();
    let mut path = "/api/properties?limit=2".to_owned();
    loop {
        let page: Value = app.get(&path, Some(&token)).await.json().await.unwrap();
        for item in page["items"].as_array().unwrap() {
            names.push(item["name"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/properties?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(names, ["P0", "P1", "P2", "P3", "P4"]);
    assert_eq!(
        app.get("/api/properties?limit=0", Some(&token))
            .await
            .status(),
        422
    );
    assert_eq!(
        app.get("/api/properties?limit=101", Some(&token))
            .await
            .status(),
        422
    );
    assert_eq!(
        app.get("/api/properties?cursor=abc", Some(&token))
            .await
            .status(),
        422
    );
}

/// Asserts RFC 6750 §3.1 `invalid_request`: 400, the error in the challenge and the body.
async fn expect_invalid_request(res: reqwest::Response, what: &str) {
    assert_eq!(res.status(), 400, "{what}");
    let www = challenge(&res);
    assert!(www.starts_with("Bearer"), "{what}: {www}");
    assert!(www.contains(r#"error="invalid_request""#), "{what}: {www}");
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(body["error"], "invalid_request", "{what}: {body}");
}

// RFC 6750 §2: a token sent in more than one way is `invalid_request` (§3.1), at every
// guarded route alike; and §2.3: a token in the URL is refused (it would leak into logs,
// history and Referer), never ignored or answered as a 422 of the API's query validation.
#[tokio::test]
async fn a_bearer_token_outside_the_authorization_header_is_an_invalid_request_everywhere() {
    const CB: &str = "https://app.example.com/cb";
    const EMAIL: &str = "bea.bearer@example.com";
    const PASSWORD: &str = "walnut-Meadow-Kettle-19-gently";
    let app = spawn_app().await;
    let reader = app.create_client("property:read");
    let api_token = app.access_token(&reader, None).await;
    app.create_user(EMAIL, "tenant", PASSWORD);
    let code_client = app.create_code_client("openid", &[CB], false, &[]);
    let user_token = app
        .user_access_token(&code_client, CB, "openid", EMAIL, PASSWORD)
        .await;
    let url = |path: &str| format!("{}{path}", app.base);

    for (path, token) in [("/api/properties", &api_token), ("/userinfo", &user_token)] {
        // Control: the header alone works.
        assert_eq!(app.get(path, Some(token)).await.status(), 200, "{path}");
        // Header and query.
        let res = app
            .http
            .get(url(path))
            .query(&[("access_token", token.as_str())])
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        expect_invalid_request(res, &format!("{path}: header and query")).await;
        // The query alone.
        let res = app
            .http
            .get(url(path))
            .query(&[("access_token", token.as_str())])
            .send()
            .await
            .unwrap();
        expect_invalid_request(res, &format!("{path}: query only")).await;
        // Header and form body.
        let res = app
            .http
            .post(url(path))
            .bearer_auth(token)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("access_token={token}"))
            .send()
            .await
            .unwrap();
        expect_invalid_request(res, &format!("{path}: header and form body")).await;
    }
    // The form body alone, at /userinfo (OIDC Core §5.3.1 allows POST there).
    let res = app
        .http
        .post(url("/userinfo"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("access_token={user_token}"))
        .send()
        .await
        .unwrap();
    expect_invalid_request(res, "/userinfo: form body only").await;
    // A form POST with the header and other parameters still reaches /userinfo.
    let res = app
        .http
        .post(url("/userinfo"))
        .bearer_auth(&user_token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("claims=x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}
