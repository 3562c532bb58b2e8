//! Refresh tokens (RFC 6749 §6, RFC 9700 §4.14): issuance with a code, rotation, reuse
//! detection that revokes the whole family, narrowing, the grace period, binding to the
//! client; revocation (RFC 7009), introspection (RFC 7662), and `deedbolt token revoke`
//! against a running server. Everything over HTTP (and the real CLI), as a client would.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    current_signing_key, eventually, hidden_input, jwt_part, location, pkce_pair, query_params,
    random_b64url, spawn_app, spawn_app_with, unix_now, CodeClient, Creds, Jar, Options, TestApp,
};

pub(crate) const CB: &str = "https://app.example.com/cb";
pub(crate) const RITA: &str = "rita.refresh@example.com";
const OTTO: &str = "otto.other@example.com";
pub(crate) const PASSWORD: &str = "cedar-Harbour-Violin-42-softly";
/// What the tenant users log in for (all of it delegable by the tenant role).
pub(crate) const FULL: &str = "openid tenant:read financial:read";
pub(crate) const RT: &[&str] = &["refresh_token"];

// ---------------------------------------------------------------------------------------
// Steps
// ---------------------------------------------------------------------------------------

/// A form body.
pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A space-separated scope string as a set (the server may reorder scopes).
fn scopes(s: &str) -> BTreeSet<String> {
    s.split(' ')
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A form POST to `path` as `client`: a public client names itself with `client_id` in the
/// body, a confidential one uses HTTP Basic; `None` sends no client authentication.
pub(crate) async fn post_as(
    app: &TestApp,
    path: &str,
    client: Option<&CodeClient>,
    pairs: &[(&str, &str)],
) -> reqwest::Response {
    post_as_raw(&app.http, &app.base, path, client, pairs).await
}

/// [`post_as`] without a `TestApp`, for requests sent from spawned tasks.
pub(crate) async fn post_as_raw(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    client: Option<&CodeClient>,
    pairs: &[(&str, &str)],
) -> reqwest::Response {
    let mut pairs = pairs.to_vec();
    let mut req = http
        .post(format!("{base}{path}"))
        .header("content-type", "application/x-www-form-urlencoded");
    match client {
        Some(CodeClient { id, secret: None }) => pairs.push(("client_id", id)),
        Some(CodeClient {
            id,
            secret: Some(secret),
        }) => req = req.basic_auth(id, Some(secret)),
        None => {}
    }
    req.body(form(&pairs)).send().await.expect("POST")
}

/// The response body as JSON.
async fn json_of(res: reqwest::Response) -> Value {
    res.json().await.expect("JSON body")
}

/// Asserts an OAuth error response and returns its body.
async fn expect_error(res: reqwest::Response, status: u16, error: &str) -> Value {
    let got = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "expected {status} {error}, got {got}: {body}");
    assert_eq!(body["error"], error, "{body}");
    body
}

/// A client-credentials client as a [`CodeClient`] (confidential), so that [`post_as`]
/// can authenticate it.
pub(crate) fn confidential(c: &Creds) -> CodeClient {
    CodeClient {
        id: c.id.clone(),
        secret: Some(c.secret.clone()),
    }
}

/// Drives the browser side over HTTP with a fresh cookie jar — `/authorize`, the login
/// form, the consent form (if consent is not remembered) — and returns the code and the
/// PKCE verifier.
pub(crate) async fn authorize_code(
    app: &TestApp,
    client_id: &str,
    scope: &str,
    email: &str,
    password: &str,
) -> (String, String) {
    authorize_code_with(app, client_id, scope, email, password, &[]).await
}

/// [`authorize_code`] with `extra` authorization request parameters (e.g. `dpop_jkt`).
pub(crate) async fn authorize_code_with(
    app: &TestApp,
    client_id: &str,
    scope: &str,
    email: &str,
    password: &str,
    extra: &[(&str, &str)],
) -> (String, String) {
    let (verifier, challenge) = pkce_pair();
    let state = random_b64url(16);
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", CB),
        ("scope", scope),
        ("state", &state),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ];
    pairs.extend_from_slice(extra);
    let query = form(&pairs);
    let mut jar = Jar::default();
    let mut res = app.browser_get(&format!("/authorize?{query}"), &jar).await;
    for _ in 0..6 {
        assert_eq!(
            res.status(),
            303,
            "expected a redirect in the code flow (Location: {:?})",
            location(&res)
        );
        jar.store(&res);
        let loc = location(&res).expect("Location");
        if loc.starts_with(&format!("{CB}?")) {
            let q = query_params(&loc);
            assert!(!q.contains_key("error"), "authorization failed: {loc}");
            assert_eq!(q.get("state"), Some(&state), "state echoed");
            return (q.get("code").expect("code").clone(), verifier);
        }
        let (action, extra): (&str, Vec<(&str, &str)>) = if loc.starts_with("/login?") {
            ("/login", vec![("email", email), ("password", password)])
        } else if loc.starts_with("/consent?") {
            ("/consent", vec![("decision", "approve")])
        } else {
            panic!("unexpected redirect in the code flow: {loc}");
        };
        let page = app.browser_get(&loc, &jar).await;
        if page.status() == 303 {
            // E.g. a remembered consent: the consent page sends the browser straight on.
            res = page;
            continue;
        }
        assert_eq!(page.status(), 200, "{action} page");
        jar.store(&page);
        let html = page.text().await.expect("page");
        let csrf = hidden_input(&html, "csrf").expect("hidden csrf");
        let req = hidden_input(&html, "req").expect("hidden req");
        let mut fields = vec![("csrf", csrf.as_str()), ("req", req.as_str())];
        fields.extend(extra);
        res = app.browser_post(action, &fields, &jar).await;
    }
    panic!("the code flow did not end at the redirect URI");
}

/// Logs `email` in, approves, and redeems the code for `client`; returns the token
/// response (asserted 200).
pub(crate) async fn code_tokens(
    app: &TestApp,
    client: &CodeClient,
    scope: &str,
    email: &str,
) -> Value {
    let (code, verifier) = authorize_code(app, &client.id, scope, email, PASSWORD).await;
    let res = post_as(
        app,
        "/token",
        Some(client),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(res.status(), 200, "code exchange");
    json_of(res).await
}

/// The access and refresh tokens of a token response (the refresh token must be there).
pub(crate) fn pair(body: &Value) -> (String, String) {
    let access = body["access_token"].as_str().expect("access_token");
    let refresh = body["refresh_token"]
        .as_str()
        .unwrap_or_else(|| panic!("a refresh_token in {body}"));
    (access.to_owned(), refresh.to_owned())
}

/// `grant_type=refresh_token` as `client`, optionally with `scope`.
pub(crate) async fn refresh(
    app: &TestApp,
    client: &CodeClient,
    token: &str,
    scope: Option<&str>,
) -> reqwest::Response {
    let mut pairs = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    if let Some(s) = scope {
        pairs.push(("scope", s));
    }
    post_as(app, "/token", Some(client), &pairs).await
}

/// A successful refresh: 200, no-store, a Bearer token and a new refresh token.
pub(crate) async fn refresh_ok(
    app: &TestApp,
    client: &CodeClient,
    token: &str,
    scope: Option<&str>,
) -> Value {
    let res = refresh(app, client, token, scope).await;
    let status = res.status();
    let headers = res.headers().clone();
    let body = json_of(res).await;
    assert_eq!(status, 200, "refresh failed: {body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_i64().is_some_and(|e| e > 0), "{body}");
    let (_, new) = pair(&body);
    assert!(new.starts_with("dbr_"), "{new}");
    assert_ne!(new, token, "rotation: a new refresh token every time");
    body
}

/// Asserts that refreshing with `token` now fails with `invalid_grant`.
pub(crate) async fn expect_refresh_refused(
    app: &TestApp,
    client: &CodeClient,
    token: &str,
    what: &str,
) {
    let res = refresh(app, client, token, None).await;
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{what}: {body}"
    );
}

/// `GET /userinfo` with `access`: the status and the JSON body.
async fn userinfo(app: &TestApp, access: &str) -> (u16, Value) {
    let res = app.get("/userinfo", Some(access)).await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Asserts that a resource server accepts `access` (`path` needs a scope it has).
async fn expect_accepted(app: &TestApp, path: &str, access: &str, what: &str) {
    let res = app.get(path, Some(access)).await;
    let status = res.status().as_u16();
    let body = res.text().await.unwrap_or_default();
    assert_eq!(status, 200, "{what} should work at {path}: {body}");
}

/// Whether `access` is refused at `path` as revoked (401 invalid_token, "revoked").
pub(crate) async fn is_revoked_at(app: &TestApp, path: &str, access: &str) -> bool {
    let res = app.get(path, Some(access)).await;
    if res.status() != 401 {
        return false;
    }
    let www = crate::helpers::www_authenticate(&res);
    let body: Value = res.json().await.unwrap_or(Value::Null);
    body["error"] == "invalid_token"
        && body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("revoked"))
        && www.contains("invalid_token")
}

/// Asserts that `access` gets 401 at `path` with an error description saying it was revoked.
async fn expect_revoked_at(app: &TestApp, path: &str, access: &str, what: &str) {
    if !is_revoked_at(app, path, access).await {
        let res = app.get(path, Some(access)).await;
        let status = res.status();
        let body = res.text().await.unwrap_or_default();
        panic!("{what} should be refused as revoked at {path}, got {status}: {body}");
    }
}

/// [`expect_revoked_at`] on `/userinfo`.
async fn expect_revoked(app: &TestApp, access: &str, what: &str) {
    expect_revoked_at(app, "/userinfo", access, what).await;
}

/// `POST /revoke` as `client`.
async fn revoke(
    app: &TestApp,
    client: Option<&CodeClient>,
    token: &str,
    hint: Option<&str>,
) -> reqwest::Response {
    let mut pairs = vec![("token", token)];
    if let Some(h) = hint {
        pairs.push(("token_type_hint", h));
    }
    post_as(app, "/revoke", client, &pairs).await
}

/// `POST /revoke` that must answer 200.
async fn revoke_ok(app: &TestApp, client: &CodeClient, token: &str, hint: Option<&str>) {
    let res = revoke(app, Some(client), token, hint).await;
    let status = res.status();
    let body = res.text().await.unwrap_or_default();
    assert_eq!(status, 200, "revocation answers 200: {body}");
}

/// `POST /introspect` as `client`: asserts 200 and no-store, returns the body.
pub(crate) async fn introspect(app: &TestApp, client: &CodeClient, token: &str) -> Value {
    let res = post_as(app, "/introspect", Some(client), &[("token", token)]).await;
    let status = res.status();
    let headers = res.headers().clone();
    let body = json_of(res).await;
    assert_eq!(status, 200, "introspection: {body}");
    assert_eq!(headers["cache-control"], "no-store", "RFC 7662 §4");
    body
}

/// A confidential client-credentials client allowed to introspect.
pub(crate) fn create_introspector(app: &TestApp) -> CodeClient {
    let v = app.cli_json(&[
        "client",
        "create",
        "--name",
        "resource-server",
        "--grant",
        "client_credentials",
        "--scope",
        "property:read",
        "--allow-introspection",
        "--json",
    ]);
    CodeClient {
        id: v["client_id"].as_str().expect("client_id").to_owned(),
        secret: Some(v["client_secret"].as_str().expect("secret").to_owned()),
    }
}

/// Waits (bounded) until the wall clock is in a later second than `t`: tokens issued in
/// the second of a cutoff are revoked with it (`iat` has 1-second granularity).
async fn wait_past_second(t: i64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while unix_now() <= t {
        assert!(
            std::time::Instant::now() < deadline,
            "the clock did not pass {t}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A server with the tenants RITA and OTTO.
async fn app_with_users(opts: Options) -> (TestApp, String, String) {
    let app = spawn_app_with(opts).await;
    let rita = app.create_user(RITA, "tenant", PASSWORD);
    let otto = app.create_user(OTTO, "tenant", PASSWORD);
    (app, rita, otto)
}

// ---------------------------------------------------------------------------------------
// 1. Issuance
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn only_clients_registered_for_refresh_tokens_get_one_with_the_code() {
    let (app, rita, _) = app_with_users(Options::default()).await;

    // A public client registered with --grant authorization_code --grant refresh_token.
    let with = app.create_code_client(FULL, &[CB], true, RT);
    let body = code_tokens(&app, &with, FULL, RITA).await;
    let (access, refresh_token) = pair(&body);
    assert!(refresh_token.starts_with("dbr_"), "{refresh_token}");
    assert!(
        refresh_token.len() >= 4 + 43,
        "at least 256 random bits: {refresh_token}"
    );
    assert_eq!(scopes(body["scope"].as_str().unwrap()), scopes(FULL));
    assert_eq!(userinfo(&app, &access).await.0, 200);
    assert_eq!(userinfo(&app, &access).await.1["sub"], rita.as_str());

    // A confidential one, also registered for client credentials: the code exchange gives
    // a refresh token, client credentials never do.
    let conf = app.create_code_client(FULL, &[CB], false, &["refresh_token", "client_credentials"]);
    let body = code_tokens(&app, &conf, FULL, RITA).await;
    assert!(pair(&body).1.starts_with("dbr_"));
    let res = post_as(
        &app,
        "/token",
        Some(&conf),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(res.status(), 200);
    let body = json_of(res).await;
    assert!(
        body.get("refresh_token").is_none(),
        "no refresh token with client credentials: {body}"
    );

    // A plain client-credentials client: none either.
    let cc = app.create_client("property:read");
    let res = app
        .post_token(Some(&cc), "grant_type=client_credentials")
        .await;
    assert_eq!(res.status(), 200);
    let body = json_of(res).await;
    assert!(body.get("refresh_token").is_none(), "{body}");

    // A code client without the refresh_token grant: no refresh token, and it may not use
    // the grant.
    let without = app.create_code_client(FULL, &[CB], true, &[]);
    let body = code_tokens(&app, &without, FULL, RITA).await;
    assert!(
        body.get("refresh_token").is_none(),
        "a client not registered for refresh_token gets none: {body}"
    );
    expect_error(
        refresh(&app, &without, &refresh_token, None).await,
        400,
        "unauthorized_client",
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// 2. Rotation and reuse detection
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn rotation_gives_a_new_pair_and_reuse_revokes_the_whole_family() {
    let (app, rita, _) = app_with_users(Options::default()).await;
    let client = app.create_code_client(FULL, &[CB], true, RT);
    let (a0, r0) = pair(&code_tokens(&app, &client, FULL, RITA).await);

    let body = refresh_ok(&app, &client, &r0, None).await;
    let (a1, r1) = pair(&body);
    assert_ne!(a1, a0, "a new access token");
    assert_eq!(scopes(body["scope"].as_str().unwrap()), scopes(FULL));
    let claims = jwt_part(&a1, 1);
    assert_eq!(claims["sub"], rita.as_str());
    assert_eq!(claims["client_id"], client.id.as_str());
    assert_ne!(claims["jti"], jwt_part(&a0, 1)["jti"]);
    // Rotation does not end the earlier access token.
    assert_eq!(userinfo(&app, &a0).await.0, 200);
    assert_eq!(userinfo(&app, &a1).await.0, 200);

    let (a2, r2) = pair(&refresh_ok(&app, &client, &r1, None).await);
    assert_eq!(userinfo(&app, &a2).await.0, 200);

    // The first refresh token again: reuse. Refused…
    let body = expect_error(
        refresh(&app, &client, &r0, None).await,
        400,
        "invalid_grant",
    )
    .await;
    assert!(
        body["error_description"].as_str().is_some(),
        "a description: {body}"
    );
    // …and the whole family is gone: the newest refresh token too…
    expect_refresh_refused(&app, &client, &r2, "the newest token after reuse").await;
    expect_refresh_refused(&app, &client, &r1, "a middle token after reuse").await;
    // …and every access token issued in it, the first one and the rotated ones.
    expect_revoked(&app, &a0, "the code's access token").await;
    expect_revoked(&app, &a1, "the first rotated access token").await;
    expect_revoked(&app, &a2, "the second rotated access token").await;

    // Another sign-in starts a new family that works.
    let (a3, r3) = pair(&code_tokens(&app, &client, FULL, RITA).await);
    assert_eq!(userinfo(&app, &a3).await.0, 200);
    refresh_ok(&app, &client, &r3, None).await;
}

#[tokio::test]
async fn unknown_and_missing_refresh_tokens_are_refused() {
    let (app, _, _) = app_with_users(Options::default()).await;
    let client = app.create_code_client(FULL, &[CB], true, RT);
    let unknown = format!("dbr_{}", random_b64url(32));
    expect_refresh_refused(&app, &client, &unknown, "an unknown token").await;
    expect_refresh_refused(&app, &client, "not-a-token", "garbage").await;
    let res = post_as(
        &app,
        "/token",
        Some(&client),
        &[("grant_type", "refresh_token")],
    )
    .await;
    expect_error(res, 400, "invalid_request").await;
}

// ---------------------------------------------------------------------------------------
// 3. Narrowing
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_refresh_may_narrow_the_scope_but_never_widen_it() {
    let (app, _, _) = app_with_users(Options::default()).await;
    let client = app.create_code_client(
        "openid tenant:read financial:read maintenance:request",
        &[CB],
        true,
        RT,
    );
    let (_, r0) = pair(&code_tokens(&app, &client, FULL, RITA).await);

    // Narrowed: the access token has exactly the subset.
    let body = refresh_ok(&app, &client, &r0, Some("openid tenant:read")).await;
    let (a1, r1) = pair(&body);
    assert_eq!(
        scopes(body["scope"].as_str().unwrap()),
        scopes("openid tenant:read")
    );
    assert_eq!(
        scopes(jwt_part(&a1, 1)["scope"].as_str().unwrap()),
        scopes("openid tenant:read")
    );
    assert_eq!(userinfo(&app, &a1).await.0, 200);

    // Wider than the family — even by a scope the client and the user could grant, or
    // one that does not exist: invalid_scope, and the token is not spent.
    for wide in [
        "openid tenant:read financial:read maintenance:request",
        "maintenance:request",
        "property:read",
        "no-such-scope",
    ] {
        let res = refresh(&app, &client, &r1, Some(wide)).await;
        expect_error(res, 400, "invalid_scope").await;
    }

    // Narrowed without openid: the token cannot call /userinfo.
    let body = refresh_ok(&app, &client, &r1, Some("financial:read")).await;
    let (a2, r2) = pair(&body);
    assert_eq!(
        scopes(body["scope"].as_str().unwrap()),
        scopes("financial:read")
    );
    let res = app.get("/userinfo", Some(&a2)).await;
    assert_eq!(res.status(), 403, "narrowed away from openid");

    // The family keeps its original scope: no scope gives all of it back, and so does
    // asking for all of it.
    let body = refresh_ok(&app, &client, &r2, None).await;
    let (a3, r3) = pair(&body);
    assert_eq!(scopes(body["scope"].as_str().unwrap()), scopes(FULL));
    assert_eq!(
        scopes(jwt_part(&a3, 1)["scope"].as_str().unwrap()),
        scopes(FULL)
    );
    let body = refresh_ok(&app, &client, &r3, Some(FULL)).await;
    assert_eq!(scopes(body["scope"].as_str().unwrap()), scopes(FULL));
}

// ---------------------------------------------------------------------------------------
// 4. Concurrency and the grace period
// ---------------------------------------------------------------------------------------

/// Sends `n` refreshes with `token` at once (from spawned tasks on a multi-threaded
/// runtime); returns each (status, body).
async fn parallel_refreshes(
    app: &TestApp,
    client: &CodeClient,
    token: &str,
    n: usize,
) -> Vec<(u16, Value)> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (http, base) = (app.http.clone(), app.base.clone());
            let (client, token, barrier) = (client.clone(), token.to_owned(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let res = post_as_raw(
                    &http,
                    &base,
                    "/token",
                    Some(&client),
                    &[("grant_type", "refresh_token"), ("refresh_token", &token)],
                )
                .await;
                let status = res.status().as_u16();
                (status, res.json::<Value>().await.unwrap_or(Value::Null))
            })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

/// What one burst of 8 concurrent refreshes with one token did, without a grace period.
struct Burst {
    /// The code's access token.
    a0: String,
    /// The raced refresh token.
    r0: String,
    /// The (at most one) successful response.
    winner: Option<Value>,
}

/// Signs in, sends `n` refreshes with the new refresh token at once, and checks what must
/// hold whoever wins: each answer is 200 or invalid_grant, at most one is 200, the
/// others are refused.
async fn no_grace_burst(app: &TestApp, client: &CodeClient, n: usize, round: usize) -> Burst {
    let (a0, r0) = pair(&code_tokens(app, client, FULL, RITA).await);
    let results = parallel_refreshes(app, client, &r0, n).await;
    for (status, body) in &results {
        assert!(
            *status == 200 || (*status == 400 && body["error"] == "invalid_grant"),
            "round {round}: every refresh is 200 or invalid_grant, got {status} {body}"
        );
    }
    let mut winners: Vec<Value> = results
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b.clone())
        .collect();
    assert!(
        winners.len() <= 1,
        "round {round}: at most one of {n} concurrent refreshes gets a pair: {results:?}"
    );
    Burst {
        a0,
        r0,
        winner: winners.pop(),
    }
}

/// Observed (40 rounds): always exactly one 200; the 7 others are 400 invalid_grant,
/// almost all "the refresh token was already used" (the loser's conditional update found
/// the token rotated: reuse), now and then "the refresh token has expired or was revoked"
/// (it read the family after another loser had already revoked it). The family then is
/// revoked: the raced token, the winner's new refresh token and the code's access token
/// are all refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_refreshes_without_grace_issue_at_most_one_pair_and_revoke_the_family() {
    let (app, _, _) = app_with_users(Options::default()).await;
    let client = app.create_code_client(FULL, &[CB], true, RT);
    // A few rounds: the race is in the timing.
    for round in 0..4 {
        let burst = no_grace_burst(&app, &client, 8, round).await;
        // Losing the race is reuse: the family is revoked.
        expect_refresh_refused(&app, &client, &burst.r0, "the raced token").await;
        expect_revoked(
            &app,
            &burst.a0,
            "the code's access token after concurrent reuse",
        )
        .await;
        if let Some(w) = &burst.winner {
            let (_, r) = pair(w);
            expect_refresh_refused(&app, &client, &r, "the winner's refresh token").await;
        }
    }
}

/// The family is revoked, so the access token handed to the winner must be too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_refreshes_without_grace_revoke_the_winners_access_token_too() {
    let (app, _, _) = app_with_users(Options::default()).await;
    let client = app.create_code_client(FULL, &[CB], true, RT);
    // The race is narrow (a signature and an insert): many rounds, many racers.
    for round in 0..60 {
        let burst = no_grace_burst(&app, &client, 16, round).await;
        if let Some(w) = &burst.winner {
            let (a, _) = pair(w);
            expect_revoked(
                &app,
                &a,
                &format!("round {round}: the winner's access token, its family revoked"),
            )
            .await;
        }
    }
}

/// A server with a 5 s refresh grace period and the tenants.
async fn app_with_grace() -> (TestApp, String, String) {
    app_with_users(Options {
        overrides: deedbolt::config::ServeOverrides {
            refresh_grace: Some("5s".into()),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn a_retry_within_the_grace_period_gets_the_same_pair_and_revokes_nothing() {
    let (app, _, _) = app_with_grace().await;
    let client = app.create_code_client(FULL, &[CB], true, RT);
    let other = app.create_code_client(FULL, &[CB], true, RT);
    let (a0, r0) = pair(&code_tokens(&app, &client, FULL, RITA).await);
    let (a1, r1) = pair(&refresh_ok(&app, &client, &r0, None).await);

    // The response was "lost": the client retries with the old token.
    for _ in 0..3 {
        let again = refresh_ok(&app, &client, &r0, None).await;
        assert_eq!(pair(&again), (a1.clone(), r1.clone()), "the very same pair");
    }
    // Not for another client, even within the grace period.
    expect_error(refresh(&app, &other, &r0, None).await, 400, "invalid_grant").await;

    // Nothing was revoked, and the new refresh token rotates as usual.
    assert_eq!(userinfo(&app, &a0).await.0, 200);
    assert_eq!(userinfo(&app, &a1).await.0, 200);
    let (a2, _) = pair(&refresh_ok(&app, &client, &r1, None).await);
    assert_eq!(userinfo(&app, &a2).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn within_the_grace_period_parallel_refreshes_all_get_the_same_single_pair() {
    let (app, _, _) = app_with_grace().await;
    let client = app.create_code_client(FULL, &[CB], true, RT);
    for round in 0..10 {
        let (a0, r0) = pair(&code_tokens(&app, &client, FULL, RITA).await);
        let results = parallel_refreshes(&app, &client, &r0, 8).await;
        let first_ok = results
            .iter()
            .find(|(s, _)| *s == 200)
            .map(|(_, b)| pair(b));
        if results.iter().any(|(s, _)| *s != 200) {
            // Say what a client holding the pair is left with.
            let mut aftermath = String::new();
            if let Some((a1, r1)) = &first_ok {
                let r = refresh(&app, &client, r1, None).await;
                aftermath = format!(
                    "; afterwards: refresh with the returned refresh token -> {}, the returned \
                     access token -> {}, the code's access token -> {}",
                    r.status(),
                    userinfo(&app, a1).await.0,
                    userinfo(&app, &a0).await.0
                );
            }
            let got: Vec<String> = results
                .iter()
                .map(|(s, b)| match s {
                    200 => "200".to_owned(),
                    _ => format!("{s} {}", b["error_description"]),
                })
                .collect();
            panic!(
                "round {round}: within the grace period every concurrent refresh must get \
                 the pair, got {got:?}{aftermath}"
            );
        }
        for (_, body) in &results {
            assert_eq!(
                pair(body),
                pair(&results[0].1),
                "round {round}: the same access and refresh token, never a second pair"
            );
        }
        let (a1, r1) = pair(&results[0].1);
        assert_ne!(r1, r0);
        // A retry after the burst, still within the grace period: the same pair again.
        let again = refresh_ok(&app, &client, &r0, None).await;
        assert_eq!(pair(&again), (a1.clone(), r1.clone()), "round {round}");
        // Nothing was revoked: the family lives on.
        assert_eq!(userinfo(&app, &a0).await.0, 200, "round {round}");
        assert_eq!(userinfo(&app, &a1).await.0, 200, "round {round}");
        let (a2, _) = pair(&refresh_ok(&app, &client, &r1, None).await);
        assert_eq!(userinfo(&app, &a2).await.0, 200, "round {round}");
    }
}

// ---------------------------------------------------------------------------------------
// 5–6. Client binding and client authentication
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_refresh_token_works_only_for_its_own_client() {
    let (app, _, _) = app_with_users(Options::default()).await;
    let owner = app.create_code_client(FULL, &[CB], true, RT);
    let other_public = app.create_code_client(FULL, &[CB], true, RT);
    let other_confidential = app.create_code_client(FULL, &[CB], false, RT);
    let (a0, r0) = pair(&code_tokens(&app, &owner, FULL, RITA).await);

    for (thief, what) in [
        (&other_public, "another public client"),
        (&other_confidential, "a confidential client"),
    ] {
        let res = refresh(&app, thief, &r0, None).await;
        let body = expect_error(res, 400, "invalid_grant").await;
        assert!(
            !body.to_string().contains(&owner.id),
            "{what}: the error does not name the owner: {body}"
        );
    }
    // Nothing was rotated or revoked: the token still works for its client.
    assert_eq!(userinfo(&app, &a0).await.0, 200);
    let (a1, _) = pair(&refresh_ok(&app, &owner, &r0, None).await);
    assert_eq!(userinfo(&app, &a1).await.0, 200);
}

#[tokio::test]
async fn public_clients_refresh_with_their_id_confidential_ones_need_their_secret() {
    let (app, _, _) = app_with_users(Options::default()).await;

    // Public: client_id in the body is all.
    let public = app.create_code_client(FULL, &[CB], true, RT);
    let (_, r) = pair(&code_tokens(&app, &public, FULL, RITA).await);
    refresh_ok(&app, &public, &r, None).await;

    // Confidential: the id alone, a wrong secret, or no authentication at all are
    // invalid_client (401) — and none of them spends the token.
    let conf = app.create_code_client(FULL, &[CB], false, RT);
    let (_, r0) = pair(&code_tokens(&app, &conf, FULL, RITA).await);
    let as_public = CodeClient {
        id: conf.id.clone(),
        secret: None,
    };
    expect_error(
        refresh(&app, &as_public, &r0, None).await,
        401,
        "invalid_client",
    )
    .await;
    let wrong = CodeClient {
        id: conf.id.clone(),
        secret: Some(format!("dbs_{}", random_b64url(32))),
    };
    expect_error(
        refresh(&app, &wrong, &r0, None).await,
        401,
        "invalid_client",
    )
    .await;
    let res = post_as(
        &app,
        "/token",
        None,
        &[("grant_type", "refresh_token"), ("refresh_token", &r0)],
    )
    .await;
    expect_error(res, 401, "invalid_client").await;

    // With the secret: Basic…
    let (_, r1) = pair(&refresh_ok(&app, &conf, &r0, None).await);
    // …or client_secret_post.
    let res = post_as(
        &app,
        "/token",
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &r1),
            ("client_id", &conf.id),
            ("client_secret", conf.secret.as_deref().unwrap()),
        ],
    )
    .await;
    assert_eq!(res.status(), 200, "client_secret_post");
    let (a2, _) = pair(&json_of(res).await);
    assert_eq!(userinfo(&app, &a2).await.0, 200);
}

// ---------------------------------------------------------------------------------------
// 7. Revocation (RFC 7009)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_family() {
    let (app, _, _) = app_with_users(Options::default()).await;
    let client = app.create_code_client(FULL, &[CB], true, RT);
    let (a0, r0) = pair(&code_tokens(&app, &client, FULL, RITA).await);
    let (a1, r1) = pair(&refresh_ok(&app, &client, &r0, None).await);

    // The current refresh token, with the wrong hint: revoked all the same.
    revoke_ok(&app, &client, &r1, Some("access_token")).await;
    expect_refresh_refused(&app, &client, &r1, "a revoked refresh token").await;
    expect_revoked(&app, &a0, "the family's first access token").await;
    expect_revoked(&app, &a1, "the family's rotated access token").await;
    // Revoking it again is fine.
    revoke_ok(&app, &client, &r1, Some("refresh_token")).await;

    // A confidential client, no hint, a token from an older rotation: the family goes.
    let conf = app.create_code_client(FULL, &[CB], false, RT);
    let (b0, s0) = pair(&code_tokens(&app, &conf, FULL, RITA).await);
    let (b1, s1) = pair(&refresh_ok(&app, &conf, &s0, None).await);
    revoke_ok(&app, &conf, &s0, None).await;
    expect_refresh_refused(&app, &conf, &s1, "the family's current token").await;
    expect_revoked(&app, &b0, "first access token").await;
    expect_revoked(&app, &b1, "rotated access token").await;
}

#[tokio::test]
async fn revoking_an_access_token_ends_it_at_once() {
    let (app, _, _) = app_with_users(Options::default()).await;
    let client = app.create_code_client(FULL, &[CB], false, RT);
    let (a0, r0) = pair(&code_tokens(&app, &client, FULL, RITA).await);
    assert_eq!(userinfo(&app, &a0).await.0, 200);

    // The wrong hint (refresh_token) does not matter.
    revoke_ok(&app, &client, &a0, Some("refresh_token")).await;
    expect_revoked(&app, &a0, "a revoked access token").await;
    // Only that token: the refresh token still works, and so does its new access token.
    let (a1, r1) = pair(&refresh_ok(&app, &client, &r0, None).await);
    assert_eq!(userinfo(&app, &a1).await.0, 200);
    revoke_ok(&app, &client, &a1, Some("access_token")).await;
    expect_revoked(&app, &a1, "revoked with the right hint").await;
    // An unknown hint is ignored (RFC 7009 §2.1: the server extends its search).
    let (a2, _) = pair(&refresh_ok(&app, &client, &r1, None).await);
    revoke_ok(&app, &client, &a2, Some("id_token")).await;
    expect_revoked(&app, &a2, "revoked with an unknown hint").await;

    // A client-credentials token, on the API.
    let cc = app.create_client("property:read");
    let token = app.access_token(&cc, None).await;
    expect_accepted(&app, "/api/properties", &token, "a fresh token").await;
    revoke_ok(&app, &confidential(&cc), &token, None).await;
    expect_revoked_at(&app, "/api/properties", &token, "a revoked cc token").await;
}

#[tokio::test]
async fn revoke_answers_200_for_unknown_and_foreign_tokens_and_changes_nothing() {
    let (app, _, _) = app_with_users(Options::default()).await;
    let owner = app.create_code_client(FULL, &[CB], true, RT);
    let other = app.create_code_client(FULL, &[CB], false, RT);
    let (a0, r0) = pair(&code_tokens(&app, &owner, FULL, RITA).await);

    // Unknown tokens of any shape: 200.
    for unknown in [
        format!("dbr_{}", random_b64url(32)),
        "garbage".to_owned(),
        "a.b.c".to_owned(),
    ] {
        for hint in [None, Some("access_token"), Some("refresh_token")] {
            revoke_ok(&app, &other, &unknown, hint).await;
        }
    }

    // Another client's tokens: 200, and they keep working.
    revoke_ok(&app, &other, &r0, None).await;
    revoke_ok(&app, &other, &a0, None).await;
    revoke_ok(&app, &other, &a0, Some("access_token")).await;
    assert_eq!(
        userinfo(&app, &a0).await.0,
        200,
        "not revoked by another client"
    );
    let (a1, _) = pair(&refresh_ok(&app, &owner, &r0, None).await);
    assert_eq!(userinfo(&app, &a1).await.0, 200);
}

#[tokio::test]
async fn revoke_requires_client_authentication_and_a_token() {
    let (app, _, _) = app_with_users(Options::default()).await;
    let conf = app.create_code_client(FULL, &[CB], false, RT);
    let (a0, r0) = pair(&code_tokens(&app, &conf, FULL, RITA).await);

    // No client authentication: 401, and nothing revoked.
    let res = revoke(&app, None, &r0, None).await;
    expect_error(res, 401, "invalid_client").await;
    // A confidential client naming itself without its secret, or a wrong secret: 401.
    let as_public = CodeClient {
        id: conf.id.clone(),
        secret: None,
    };
    expect_error(
        revoke(&app, Some(&as_public), &r0, None).await,
        401,
        "invalid_client",
    )
    .await;
    let wrong = CodeClient {
        id: conf.id.clone(),
        secret: Some(format!("dbs_{}", random_b64url(32))),
    };
    expect_error(
        revoke(&app, Some(&wrong), &a0, None).await,
        401,
        "invalid_client",
    )
    .await;
    assert_eq!(userinfo(&app, &a0).await.0, 200);
    let (_, r1) = pair(&refresh_ok(&app, &conf, &r0, None).await);

    // No token: invalid_request.
    let res = post_as(&app, "/revoke", Some(&conf), &[]).await;
    expect_error(res, 400, "invalid_request").await;
    let res = post_as(
        &app,
        "/revoke",
        Some(&conf),
        &[("token_type_hint", "refresh_token")],
    )
    .await;
    expect_error(res, 400, "invalid_request").await;
    refresh_ok(&app, &conf, &r1, None).await;
}

// ---------------------------------------------------------------------------------------
// 8. Introspection (RFC 7662)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn introspection_describes_live_tokens() {
    let (app, rita, _) = app_with_users(Options::default()).await;
    let rs = create_introspector(&app);
    let client = app.create_code_client(FULL, &[CB], false, RT);
    let (a0, r0) = pair(&code_tokens(&app, &client, FULL, RITA).await);

    // A live access token: what a resource server needs, equal to the token's claims.
    let v = introspect(&app, &rs, &a0).await;
    let claims = jwt_part(&a0, 1);
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(scopes(v["scope"].as_str().expect("scope")), scopes(FULL));
    assert_eq!(v["client_id"], client.id.as_str());
    assert_eq!(v["sub"], rita.as_str());
    assert_eq!(v["iss"], app.base.as_str());
    assert_eq!(v["aud"], claims["aud"]);
    assert_eq!(v["aud"], format!("{}/api", app.base));
    assert_eq!(v["exp"], claims["exp"]);
    assert_eq!(v["iat"], claims["iat"]);
    assert_eq!(v["jti"], claims["jti"]);
    assert!(
        v["token_type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("bearer")),
        "{v}"
    );
    assert!(v["exp"].as_i64().unwrap() > unix_now());

    // A live refresh token, to the client it was issued to.
    let v = introspect(&app, &client, &r0).await;
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["client_id"], client.id.as_str());
    assert_eq!(v["sub"], rita.as_str());
    assert_eq!(scopes(v["scope"].as_str().expect("scope")), scopes(FULL));
    assert!(v["exp"].as_i64().unwrap() > unix_now());

    // A client-credentials token: the client is the subject.
    let cc = app.create_client("property:read");
    let token = app.access_token(&cc, None).await;
    let v = introspect(&app, &rs, &token).await;
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["client_id"], cc.id.as_str());
    assert_eq!(v["sub"], cc.id.as_str());
    assert_eq!(v["scope"], "property:read");
    // The introspecting client's own token too.
    let own = app.access_token(&rs.creds(), None).await;
    assert_eq!(introspect(&app, &rs, &own).await["active"], true);
}

#[tokio::test]
async fn introspection_says_only_inactive_for_dead_foreign_and_malformed_tokens() {
    let (app, _, _) = app_with_users(Options::default()).await;
    let rs = create_introspector(&app);
    let client = app.create_code_client(FULL, &[CB], false, RT);
    let inactive = json!({"active": false});

    // Rotated refresh token (asked by its own client).
    let (a0, r0) = pair(&code_tokens(&app, &client, FULL, RITA).await);
    let (a1, r1) = pair(&refresh_ok(&app, &client, &r0, None).await);
    assert_eq!(
        introspect(&app, &client, &r0).await,
        inactive,
        "a rotated refresh token"
    );
    assert_eq!(introspect(&app, &client, &r1).await["active"], true);

    // Revoked access token.
    revoke_ok(&app, &client, &a1, None).await;
    assert_eq!(
        introspect(&app, &rs, &a1).await,
        inactive,
        "a revoked access token"
    );
    assert_eq!(
        introspect(&app, &rs, &a0).await["active"],
        true,
        "only that one"
    );

    // Revoked family: its refresh token and its access tokens.
    revoke_ok(&app, &client, &r1, None).await;
    assert_eq!(
        introspect(&app, &client, &r1).await,
        inactive,
        "a revoked refresh token"
    );
    assert_eq!(
        introspect(&app, &rs, &a0).await,
        inactive,
        "an access token of a revoked family"
    );

    // Expired: a real token's claims re-signed with the server's key, an hour old.
    let cc = app.create_client("property:read");
    let live = app.access_token(&cc, None).await;
    let key = current_signing_key(app.data_dir.path(), None).await;
    let mut claims = jwt_part(&live, 1);
    let now = unix_now();
    claims["iat"] = json!(now - 4500);
    claims["exp"] = json!(now - 3600);
    let expired = key.sign_jwt("at+jwt", &claims).expect("sign");
    assert_eq!(
        introspect(&app, &rs, &expired).await,
        inactive,
        "an expired token"
    );
    // Control: the same claims, not expired, re-signed the same way, are active.
    claims["iat"] = json!(now);
    claims["exp"] = json!(now + 600);
    let resigned = key.sign_jwt("at+jwt", &claims).expect("sign");
    assert_eq!(
        introspect(&app, &rs, &resigned).await["active"],
        true,
        "control"
    );

    // Foreign: a token from another server instance.
    let foreign_app = spawn_app().await;
    let foreign_cc = foreign_app.create_client("property:read");
    let foreign = foreign_app.access_token(&foreign_cc, None).await;
    assert_eq!(
        introspect(&app, &rs, &foreign).await,
        inactive,
        "a foreign token"
    );

    // Malformed and unknown.
    for bad in [
        "garbage".to_owned(),
        "a.b.c".to_owned(),
        format!("dbr_{}", random_b64url(32)),
        "dbr_".to_owned(),
        format!("{}x", &live[..live.len() - 1]),
    ] {
        assert_eq!(introspect(&app, &rs, &bad).await, inactive, "{bad}");
    }
}

#[tokio::test]
async fn introspection_tells_a_client_only_about_tokens_it_may_see() {
    let (app, _, _) = app_with_users(Options::default()).await;
    let rs = create_introspector(&app);
    let app_client =
        app.create_code_client(FULL, &[CB], false, &["refresh_token", "client_credentials"]);
    let cc = app.create_client("property:read");
    let foreign_access = app.access_token(&cc, None).await;
    let (user_access, user_refresh) = pair(&code_tokens(&app, &app_client, FULL, RITA).await);
    let own_access = app.access_token(&app_client.creds(), None).await;
    let inactive = json!({"active": false});

    // A resource server: every access token for the audience it serves…
    for token in [&user_access, &own_access, &foreign_access] {
        assert_eq!(introspect(&app, &rs, token).await["active"], true);
    }
    // …but never another client's refresh token (only the client and the server hold it).
    assert_eq!(
        introspect(&app, &rs, &user_refresh).await,
        inactive,
        "a refresh token of another client, even for a resource server"
    );

    // A client that is not a resource server: its own tokens, nothing else (RFC 7662 §4).
    for (token, what) in [
        (&user_access, "an access token issued to it for a user"),
        (&own_access, "its own client-credentials token"),
        (&user_refresh, "its own refresh token"),
    ] {
        assert_eq!(
            introspect(&app, &app_client, token).await["active"],
            true,
            "{what}"
        );
    }
    let asker = confidential(&cc);
    assert_eq!(
        introspect(&app, &asker, &user_access).await,
        inactive,
        "another client's access token"
    );
    assert_eq!(
        introspect(&app, &asker, &user_refresh).await,
        inactive,
        "another client's refresh token"
    );
    assert_eq!(
        introspect(&app, &asker, &foreign_access).await["active"],
        true
    );

    // A public client proves nothing by naming itself: refused.
    let public = app.create_code_client(FULL, &[CB], true, RT);
    let res = post_as(
        &app,
        "/introspect",
        Some(&public),
        &[("token", &foreign_access)],
    )
    .await;
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert!(
        (status == 400 && body["error"] == "unauthorized_client")
            || (status == 401 && body["error"] == "invalid_client"),
        "a public client may not introspect: {status} {body}"
    );
    // No authentication, or a wrong secret.
    let res = post_as(&app, "/introspect", None, &[("token", &foreign_access)]).await;
    expect_error(res, 401, "invalid_client").await;
    let wrong = CodeClient {
        id: rs.id.clone(),
        secret: Some(format!("dbs_{}", random_b64url(32))),
    };
    let res = post_as(
        &app,
        "/introspect",
        Some(&wrong),
        &[("token", &foreign_access)],
    )
    .await;
    expect_error(res, 401, "invalid_client").await;
    // No token.
    let res = post_as(&app, "/introspect", Some(&rs), &[]).await;
    expect_error(res, 400, "invalid_request").await;
}

// ---------------------------------------------------------------------------------------
// 9. `deedbolt token revoke` while the server runs
// ---------------------------------------------------------------------------------------

/// Runs `deedbolt token revoke ARGS`, asserts success, and returns the wall-clock second
/// after it finished (the cutoff is at most that).
fn cli_revoke(app: &TestApp, args: &[&str]) -> i64 {
    let mut all = vec!["token", "revoke"];
    all.extend(args);
    let out = app.cli(&all);
    assert!(
        out.status.success(),
        "deedbolt {all:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("revoked"), "says what it did: {stdout}");
    unix_now()
}

#[tokio::test]
async fn cli_revoke_client_cuts_off_that_clients_tokens_only() {
    let (app, _, _) = app_with_users(Options::default()).await;
    let x = app.create_client("property:read");
    let y = app.create_client("property:read");
    let tx = app.access_token(&x, None).await;
    let ty = app.access_token(&y, None).await;
    let code_client = app.create_code_client(FULL, &[CB], true, RT);
    let (ua, ur) = pair(&code_tokens(&app, &code_client, FULL, RITA).await);
    expect_accepted(&app, "/api/properties", &tx, "x's token").await;

    let done = cli_revoke(&app, &["--client", &x.id]);
    eventually("x's token is refused as revoked", || {
        is_revoked_at(&app, "/api/properties", &tx)
    })
    .await;
    expect_revoked_at(&app, "/api/properties", &tx, "x's token").await;
    let rs = create_introspector(&app);
    assert_eq!(introspect(&app, &rs, &tx).await, json!({"active": false}));
    // Other clients are unaffected.
    expect_accepted(&app, "/api/properties", &ty, "y's token").await;
    assert_eq!(introspect(&app, &rs, &ty).await["active"], true);
    assert_eq!(userinfo(&app, &ua).await.0, 200);

    // Tokens issued after the cutoff's second work.
    wait_past_second(done).await;
    let fresh = app.access_token(&x, None).await;
    expect_accepted(&app, "/api/properties", &fresh, "x's new token").await;

    // A code client: its refresh families at once, its access tokens at the next sync.
    let done = cli_revoke(&app, &["--client", &code_client.id]);
    expect_refresh_refused(&app, &code_client, &ur, "after token revoke --client").await;
    eventually("the code client's access token is revoked", || {
        is_revoked_at(&app, "/userinfo", &ua)
    })
    .await;
    expect_accepted(&app, "/api/properties", &fresh, "x's new token").await;
    wait_past_second(done).await;
    let (ua2, ur2) = pair(&code_tokens(&app, &code_client, FULL, RITA).await);
    assert_eq!(userinfo(&app, &ua2).await.0, 200);
    refresh_ok(&app, &code_client, &ur2, None).await;
}

#[tokio::test]
async fn cli_revoke_user_cuts_off_that_users_tokens_only() {
    let (app, _, _) = app_with_users(Options::default()).await;
    let client = app.create_code_client(FULL, &[CB], false, RT);
    let (ra, rr) = pair(&code_tokens(&app, &client, FULL, RITA).await);
    let (ra1, rr1) = pair(&refresh_ok(&app, &client, &rr, None).await);
    let (oa, or) = pair(&code_tokens(&app, &client, FULL, OTTO).await);
    let cc = app.create_client("property:read");
    let ct = app.access_token(&cc, None).await;

    let done = cli_revoke(&app, &["--user", RITA]);
    // Her refresh tokens at once (the store), her access tokens from the next sync.
    expect_refresh_refused(&app, &client, &rr1, "her refresh token").await;
    eventually("her access tokens are revoked", || async {
        is_revoked_at(&app, "/userinfo", &ra).await && is_revoked_at(&app, "/userinfo", &ra1).await
    })
    .await;
    // Asked by the client itself (a refresh token is introspectable only by its client).
    for dead in [&ra, &ra1, &rr1] {
        assert_eq!(
            introspect(&app, &client, dead).await,
            json!({"active": false})
        );
    }
    // Otto and the client-credentials client are unaffected.
    assert_eq!(introspect(&app, &client, &or).await["active"], true);
    assert_eq!(
        userinfo(&app, &oa).await.0,
        200,
        "another user's access token"
    );
    let (oa1, _) = pair(&refresh_ok(&app, &client, &or, None).await);
    assert_eq!(userinfo(&app, &oa1).await.0, 200);
    expect_accepted(&app, "/api/properties", &ct, "a client-credentials token").await;

    // She can sign in again once the cutoff's second has passed.
    wait_past_second(done).await;
    let (na, nr) = pair(&code_tokens(&app, &client, FULL, RITA).await);
    assert_eq!(userinfo(&app, &na).await.0, 200);
    let (na1, _) = pair(&refresh_ok(&app, &client, &nr, None).await);
    assert_eq!(userinfo(&app, &na1).await.0, 200);
}

#[tokio::test]
async fn deleting_a_client_revokes_its_users_and_its_own_tokens_on_a_running_server() {
    let (app, _, _) = app_with_users(Options::default()).await;
    let rs = create_introspector(&app);
    // A confidential client using codes, refresh tokens and client credentials, and one
    // that stays.
    let gone = app.create_code_client(
        &format!("{FULL} property:read"),
        &[CB],
        false,
        &["refresh_token", "client_credentials"],
    );
    let keep = app.create_code_client(FULL, &[CB], false, RT);
    let (user_access, user_refresh) = pair(&code_tokens(&app, &gone, FULL, RITA).await);
    let own = app.access_token(&gone.creds(), Some("property:read")).await;
    let (keep_access, keep_refresh) = pair(&code_tokens(&app, &keep, FULL, OTTO).await);
    assert_eq!(userinfo(&app, &user_access).await.0, 200);
    expect_accepted(&app, "/api/properties", &own, "its own token").await;
    assert_eq!(introspect(&app, &rs, &user_access).await["active"], true);

    // Deleted by the CLI, another process: the running server rejects every token of the
    // client from its next sync, at the guard (/api, /userinfo) and in introspection.
    let out = app.cli(&["client", "delete", &gone.id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("revoked its access tokens and 1 refresh-token family"),
        "{said}"
    );
    eventually(
        "the deleted client's tokens are refused as revoked",
        || async {
            is_revoked_at(&app, "/userinfo", &user_access).await
                && is_revoked_at(&app, "/api/properties", &own).await
        },
    )
    .await;
    for dead in [&user_access, &own] {
        assert_eq!(introspect(&app, &rs, dead).await, json!({"active": false}));
    }
    // Its refresh token is dead too: the client cannot authenticate any more (RFC 6749
    // §5.2 invalid_client), and its families were revoked.
    expect_error(
        refresh(&app, &gone, &user_refresh, None).await,
        401,
        "invalid_client",
    )
    .await;

    // The other client and its user are unaffected.
    assert_eq!(userinfo(&app, &keep_access).await.0, 200);
    assert_eq!(introspect(&app, &rs, &keep_access).await["active"], true);
    refresh_ok(&app, &keep, &keep_refresh, None).await;
}

/// Runs `deedbolt ARGS` and asserts success.
fn cli_ok(app: &TestApp, args: &[&str]) {
    let out = app.cli(args);
    assert!(
        out.status.success(),
        "deedbolt {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_refresh_for_a_deleted_user_is_refused_and_their_tokens_die() {
    let (app, _, _) = app_with_users(Options::default()).await;
    let client = app.create_code_client(FULL, &[CB], false, RT);
    let (access, refresh_token) = pair(&code_tokens(&app, &client, FULL, RITA).await);
    let (other_access, other_refresh) = pair(&code_tokens(&app, &client, FULL, OTTO).await);

    cli_ok(&app, &["user", "delete", "--email", RITA]);
    expect_refresh_refused(
        &app,
        &client,
        &refresh_token,
        "a deleted user's refresh token",
    )
    .await;
    eventually("the deleted user's access token is revoked", || {
        is_revoked_at(&app, "/userinfo", &access)
    })
    .await;
    // She cannot sign in again; another user of the same client is unaffected.
    assert!(!app
        .cli(&["user", "delete", "--email", RITA])
        .status
        .success());
    assert_eq!(userinfo(&app, &other_access).await.0, 200);
    refresh_ok(&app, &client, &other_refresh, None).await;
}

#[tokio::test]
async fn a_refresh_after_a_demotion_carries_only_what_the_new_role_may_delegate() {
    const MIA: &str = "mia.manager@example.com";
    let app = spawn_app().await;
    app.create_user(MIA, "manager", PASSWORD);
    let staff = "openid property:read tenant:read";
    let client = app.create_code_client(staff, &[CB], false, RT);
    let body = code_tokens(&app, &client, staff, MIA).await;
    assert_eq!(scopes(body["scope"].as_str().unwrap()), scopes(staff));
    let (_, mixed) = pair(&body);
    // A second sign-in for staff scopes only (nothing a tenant may delegate).
    let (_, staff_only) = pair(&code_tokens(&app, &client, "property:read", MIA).await);

    cli_ok(
        &app,
        &["user", "set-role", "--email", MIA, "--role", "tenant"],
    );
    // What the tenant role may delegate survives, in the response and in the token.
    let body = refresh_ok(&app, &client, &mixed, None).await;
    let narrowed = scopes("openid tenant:read");
    assert_eq!(scopes(body["scope"].as_str().unwrap()), narrowed, "{body}");
    let (access, _) = pair(&body);
    assert_eq!(
        scopes(jwt_part(&access, 1)["scope"].as_str().unwrap()),
        narrowed
    );
    expect_error(
        refresh(&app, &client, &pair(&body).1, Some("property:read")).await,
        400,
        "invalid_grant",
    )
    .await;
    // Nothing delegable left: refused, but the family is kept for a restored role.
    expect_refresh_refused(
        &app,
        &client,
        &staff_only,
        "a demoted user's staff-only token",
    )
    .await;
    cli_ok(
        &app,
        &["user", "set-role", "--email", MIA, "--role", "manager"],
    );
    let body = refresh_ok(&app, &client, &staff_only, None).await;
    assert_eq!(
        scopes(body["scope"].as_str().unwrap()),
        scopes("property:read")
    );
}

#[tokio::test]
async fn cli_revoke_refuses_unknown_clients_and_users() {
    let app = spawn_app().await;
    let unknown_client = format!("dbc_{}", random_b64url(16));
    for (args, expect) in [
        (
            vec!["token", "revoke", "--client", unknown_client.as_str()],
            format!("no client with id {unknown_client}"),
        ),
        (
            vec!["token", "revoke", "--user", "nobody@example.com"],
            "no user with email nobody@example.com".to_owned(),
        ),
    ] {
        let out = app.cli(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(stderr.contains(&expect), "{args:?}: stderr: {stderr}");
    }
    // Neither, or both.
    let out = app.cli(&["token", "revoke"]);
    assert!(!out.status.success());
    let out = app.cli(&["token", "revoke", "--client", "dbc_x", "--user", RITA]);
    assert!(!out.status.success());
}

// ---------------------------------------------------------------------------------------
// 10. Discovery
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn metadata_advertises_revocation_and_introspection() {
    let app = spawn_app().await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let doc: Value = app.get(path, None).await.json().await.expect("JSON");
        assert_eq!(
            doc["revocation_endpoint"],
            format!("{}/revoke", app.base),
            "{path}"
        );
        assert_eq!(
            doc["introspection_endpoint"],
            format!("{}/introspect", app.base),
            "{path}"
        );
        let grants = doc["grant_types_supported"].as_array().expect("grants");
        assert!(grants.contains(&json!("refresh_token")), "{path}: {doc}");
        // The advertised endpoints exist and want client authentication.
        for key in ["revocation_endpoint", "introspection_endpoint"] {
            let url = doc[key].as_str().unwrap();
            let res = app
                .http
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("token=x")
                .send()
                .await
                .expect("POST");
            assert_eq!(res.status(), 401, "{key} {url}");
        }
    }
}
