//! Pushed authorization requests (RFC 9126) through the real server: `POST /par`, then
//! `/authorize` with only `client_id` and `request_uri`, then the usual sign-in and code
//! redemption. Single use, bound to the client, short-lived; per-client and server-wide
//! requirements; the same refusals as `/authorize`; rate limit and audit.

use std::collections::HashMap;

use deedbolt_core::audit::{AuditFilter, AuditKind};
use deedbolt_core::clock::UnixTime;
use deedbolt_core::flow::{AuthorizationRequest, Prompt};
use deedbolt_core::ids::ClientId;
use deedbolt_core::par::RequestUri;
use deedbolt_core::ports::{AuditStore, ClientStore, FlowStore, PushedRequestStore};
use deedbolt_store_sqlite::SqliteStore;
use serde_json::Value;

use crate::helpers::{
    location, pkce_pair, query_params, random_b64url, spawn_app, spawn_app_with, unix_now,
    CodeClient, Jar, Options, TestApp,
};

pub(crate) const TENANT: &str = "pia.pusher@example.com";
pub(crate) const PASSWORD: &str = "amber-Kettle-Harbour-41-slowly";
pub(crate) const CB: &str = "https://app.example.com/cb";
const URN: &str = "urn:ietf:params:oauth:request_uri:";

/// An authorization request's parameters as a client app builds them, with what it keeps.
#[derive(Clone, Debug)]
pub(crate) struct Pushed {
    pub(crate) params: Vec<(String, String)>,
    pub(crate) verifier: String,
    pub(crate) state: String,
}

impl Pushed {
    pub(crate) fn new(scope: &str) -> Self {
        let (verifier, challenge) = pkce_pair();
        let state = random_b64url(12);
        let params = [
            ("response_type", "code"),
            ("redirect_uri", CB),
            ("scope", scope),
            ("state", &state),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        Pushed {
            params,
            verifier,
            state,
        }
    }

    pub(crate) fn set(mut self, k: &str, v: &str) -> Self {
        self.params.retain(|(n, _)| n != k);
        self.params.push((k.to_owned(), v.to_owned()));
        self
    }

    pub(crate) fn without(mut self, k: &str) -> Self {
        self.params.retain(|(n, _)| n != k);
        self
    }

    /// The pushed parameters, and `extra`, as a form body.
    pub(crate) fn form(&self, extra: &[(&str, &str)]) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(self.params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .extend_pairs(extra)
            .finish()
    }

    /// The same request as a plain `/authorize` query (not pushed).
    pub(crate) fn authorize_path(&self, client_id: &str) -> String {
        format!("/authorize?{}", self.form(&[("client_id", client_id)]))
    }
}

/// `POST /par` for `client`: HTTP Basic for a confidential client, `client_id` in the body
/// for a public one.
pub(crate) async fn push(app: &TestApp, client: &CodeClient, req: &Pushed) -> reqwest::Response {
    push_form(app, client, &req.form(&[])).await
}

async fn push_form(app: &TestApp, client: &CodeClient, form: &str) -> reqwest::Response {
    let mut r = app
        .http
        .post(app.url("/par"))
        .header("content-type", "application/x-www-form-urlencoded");
    let mut body = form.to_owned();
    match &client.secret {
        Some(secret) => r = r.basic_auth(&client.id, Some(secret)),
        None => body = format!("{body}&client_id={}", client.id),
    }
    r.body(body).send().await.expect("PAR request")
}

/// A successful push's `request_uri`, with the response checked against RFC 9126 §2.2.
pub(crate) async fn pushed_uri(res: reqwest::Response) -> String {
    assert_eq!(res.status(), 201, "pushed");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let v: Value = res.json().await.expect("PAR JSON");
    assert_eq!(v["expires_in"], 60, "{v}");
    let uri = v["request_uri"].as_str().expect("request_uri").to_owned();
    assert!(uri.starts_with(URN), "{uri}");
    uri
}

pub(crate) fn authorize_uri(client_id: &str, request_uri: &str) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", client_id)
        .append_pair("request_uri", request_uri)
        .finish();
    format!("/authorize?{q}")
}

/// Signs the tenant in through the pages for the pushed request `uri` of `client_id` and
/// approves it: the parameters the client gets back.
pub(crate) async fn approve_pushed(
    app: &TestApp,
    client_id: &str,
    uri: &str,
) -> HashMap<String, String> {
    let back = app
        .sign_in_through_pages(
            &authorize_uri(client_id, uri),
            TENANT,
            PASSWORD,
            "approve",
            &mut Jar::default(),
        )
        .await;
    callback(&back)
}

/// An error answered with a page, never a redirect.
async fn expect_error_page(res: reqwest::Response) -> String {
    assert_eq!(res.status(), 400);
    assert!(location(&res).is_none(), "no redirect");
    res.text().await.expect("page")
}

async fn expect_oauth_error(res: reqwest::Response, status: u16, error: &str) -> Value {
    assert_eq!(res.status(), status);
    let v: Value = res.json().await.expect("error JSON");
    assert_eq!(v["error"], error, "{v}");
    v
}

/// Redeems `code` for `client` with `verifier`; the token response.
pub(crate) async fn redeem(
    app: &TestApp,
    client: &CodeClient,
    code: &str,
    verifier: &str,
) -> reqwest::Response {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", CB)
        .append_pair("code_verifier", verifier);
    if client.secret.is_none() {
        form.append_pair("client_id", &client.id);
    }
    let basic = client.secret.as_ref().map(|_| client.creds());
    app.post_token(basic.as_ref(), &form.finish()).await
}

/// The callback's parameters, checked to go to [`CB`].
pub(crate) fn callback(url: &str) -> HashMap<String, String> {
    assert!(
        url.starts_with(&format!("{CB}?")),
        "back at the client: {url}"
    );
    query_params(url)
}

async fn setup(public: bool) -> (TestApp, CodeClient) {
    let app = spawn_app().await;
    app.create_user(TENANT, "tenant", PASSWORD);
    let client = app.create_code_client("openid tenant:read financial:read", &[CB], public, &[]);
    (app, client)
}

pub(crate) async fn open_store(app: &TestApp) -> SqliteStore {
    SqliteStore::open(&app.data_dir.path().join("deedbolt.db"))
        .await
        .expect("open store")
}

/// The full flow for `client`: push, authorize with only the reference, sign in, redeem.
async fn push_sign_in_and_redeem(app: &TestApp, client: &CodeClient) -> Value {
    let req = Pushed::new("openid tenant:read");
    let uri = pushed_uri(push(app, client, &req).await).await;
    // RFC 9126 §4 / RFC 9101 §6.3: parameters beside the reference are not used, even
    // when they contradict the pushed ones.
    let authorize = format!(
        "{}&scope=financial:read&state=evil&redirect_uri=https%3A%2F%2Fevil.example%2Fcb",
        authorize_uri(&client.id, &uri)
    );
    let back = app
        .sign_in_through_pages(&authorize, TENANT, PASSWORD, "approve", &mut Jar::default())
        .await;
    let params = callback(&back);
    assert_eq!(params["state"], req.state, "the pushed state comes back");
    assert_eq!(params["iss"], app.base, "RFC 9207 iss");
    let res = redeem(app, client, &params["code"], &req.verifier).await;
    assert_eq!(res.status(), 200);
    let token: Value = res.json().await.expect("token JSON");
    assert_eq!(
        token["scope"], "tenant:read openid",
        "the pushed scope: {token}"
    );
    token
}

#[tokio::test]
async fn a_confidential_client_pushes_and_signs_in_with_only_the_request_uri() {
    let (app, client) = setup(false).await;
    let token = push_sign_in_and_redeem(&app, &client).await;
    assert!(token["id_token"].is_string());
    // Audited: the push (with client and scope) and the authorization request.
    let store = open_store(&app).await;
    let pushes = || async {
        store
            .search_audit(&AuditFilter {
                kind: Some(AuditKind::PushedAuthorizationRequest),
                limit: 10,
                ..AuditFilter::default()
            })
            .await
            .expect("audit")
    };
    crate::helpers::eventually("the push is audited", || async {
        !pushes().await.is_empty()
    })
    .await;
    let records = pushes().await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(records[0].success);
    assert_eq!(records[0].client_id.as_deref(), Some(client.id.as_str()));
    assert_eq!(records[0].scope.as_deref(), Some("tenant:read openid"));
}

#[tokio::test]
async fn a_public_client_pushes_with_its_client_id() {
    let (app, client) = setup(true).await;
    push_sign_in_and_redeem(&app, &client).await;
}

#[tokio::test]
async fn discovery_advertises_the_endpoint() {
    let app = spawn_app().await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let doc: Value = app.get(path, None).await.json().await.expect("JSON");
        assert_eq!(
            doc["pushed_authorization_request_endpoint"],
            format!("{}/par", app.base)
        );
        assert_eq!(doc["require_pushed_authorization_requests"], false);
    }
}

/// RFC 9126 §4 single use, spent at the point of authorization rather than when the page
/// first loads (FAPI 2.0 SP §5.3.2.2 NOTE 3): a browser preloading the URL, or a scanner
/// following it, must not spend it before the user gets there.
#[tokio::test]
async fn a_request_uri_is_spent_when_the_user_answers_not_when_the_page_loads() {
    let (app, client) = setup(false).await;
    let req = Pushed::new("tenant:read");
    let uri = pushed_uri(push(&app, &client, &req).await).await;
    let preload = app
        .browser_get(&authorize_uri(&client.id, &uri), &Jar::default())
        .await;
    assert_eq!(preload.status(), 303);
    let sign_in = location(&preload).expect("login");
    assert!(sign_in.starts_with("/login?req="), "{sign_in}");
    // Loaded again (by the user this time): the same sign-in, not an error.
    let again = app
        .browser_get(&authorize_uri(&client.id, &uri), &Jar::default())
        .await;
    assert_eq!(location(&again).as_deref(), Some(sign_in.as_str()));
    // Another client still cannot use it.
    let other = app.create_code_client("tenant:read", &[CB], false, &[]);
    expect_error_page(
        app.browser_get(&authorize_uri(&other.id, &uri), &Jar::default())
            .await,
    )
    .await;
    let params = approve_pushed(&app, &client.id, &uri).await;
    assert_eq!(params["state"], req.state);
    assert!(params.contains_key("code"), "{params:?}");
    // Answered: now it is spent.
    let after = app
        .browser_get(&authorize_uri(&client.id, &uri), &Jar::default())
        .await;
    let page = expect_error_page(after).await;
    assert!(page.contains("expired or was already used"), "{page}");
}

/// A sign-in started by a pushed request is continued by another load of its URL only
/// while the reference is valid (RFC 9126 §2.2 `expires_in`), even though the sign-in
/// itself lasts longer.
#[tokio::test]
async fn a_started_sign_in_is_continued_only_until_its_request_uri_expires() {
    let (app, client) = setup(false).await;
    let store = open_store(&app).await;
    let (_, challenge) = pkce_pair();
    let started = |pushed_until: i64| AuthorizationRequest {
        client_id: ClientId::parse(&client.id).unwrap(),
        redirect_uri: CB.into(),
        scope: "tenant:read".parse().unwrap(),
        state: Some("s".into()),
        nonce: None,
        code_challenge: challenge.clone(),
        prompt: Prompt::Default,
        dpop_jkt: None,
        pushed_until: Some(UnixTime(pushed_until)),
    };
    // Sign-ins as the first load of each reference left them (the pushed rows are gone).
    let (expired, live) = (
        RequestUri::generate().unwrap(),
        RequestUri::generate().unwrap(),
    );
    for (uri, until) in [(&expired, unix_now() - 1), (&live, unix_now() + 30)] {
        store
            .put_pending(
                &uri.sign_in_id(),
                &started(until),
                UnixTime(unix_now() + 600),
                "127.0.0.1",
                64,
            )
            .await
            .unwrap();
    }
    let page = expect_error_page(
        app.browser_get(
            &authorize_uri(&client.id, expired.as_str()),
            &Jar::default(),
        )
        .await,
    )
    .await;
    assert!(page.contains("expired or was already used"), "{page}");
    let res = app
        .browser_get(&authorize_uri(&client.id, live.as_str()), &Jar::default())
        .await;
    assert_eq!(
        location(&res),
        Some(format!("/login?req={}", live.sign_in_id())),
        "the live one is continued"
    );
}

#[tokio::test]
async fn a_request_uri_is_bound_to_the_client_that_pushed_it() {
    let (app, client) = setup(false).await;
    let other = app.create_code_client("tenant:read", &[CB], false, &[]);
    let uri = pushed_uri(push(&app, &client, &Pushed::new("tenant:read")).await).await;
    expect_error_page(
        app.browser_get(&authorize_uri(&other.id, &uri), &Jar::default())
            .await,
    )
    .await;
    // An unknown client_id, or none, gets the same page.
    expect_error_page(
        app.browser_get(&authorize_uri("dbc_nobody", &uri), &Jar::default())
            .await,
    )
    .await;
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("request_uri", &uri)
        .finish();
    expect_error_page(
        app.browser_get(&format!("/authorize?{q}"), &Jar::default())
            .await,
    )
    .await;
    // The other client's attempts did not spend it.
    let res = app
        .browser_get(&authorize_uri(&client.id, &uri), &Jar::default())
        .await;
    assert_eq!(res.status(), 303, "still usable by its own client");
}

#[tokio::test]
async fn an_expired_or_unknown_request_uri_is_refused() {
    let (app, client) = setup(false).await;
    // A request pushed 61 seconds ago (stored as /par would have stored it).
    let uri = RequestUri::generate().unwrap();
    let (_, challenge) = pkce_pair();
    let request = AuthorizationRequest {
        client_id: ClientId::parse(&client.id).unwrap(),
        redirect_uri: CB.into(),
        scope: "tenant:read".parse().unwrap(),
        state: Some("s".into()),
        nonce: None,
        code_challenge: challenge,
        prompt: Prompt::Default,
        dpop_jkt: None,
        pushed_until: None,
    };
    let store = open_store(&app).await;
    store
        .put_pushed(&uri.storage_key(), &request, UnixTime(unix_now() - 1))
        .await
        .unwrap();
    expect_error_page(
        app.browser_get(&authorize_uri(&client.id, uri.as_str()), &Jar::default())
            .await,
    )
    .await;
    // The same request, unexpired, is accepted: the expiry alone was refused.
    let live = RequestUri::generate().unwrap();
    store
        .put_pushed(&live.storage_key(), &request, UnixTime(unix_now() + 60))
        .await
        .unwrap();
    let res = app
        .browser_get(&authorize_uri(&client.id, live.as_str()), &Jar::default())
        .await;
    assert_eq!(res.status(), 303);
    for bogus in [
        format!("{URN}{}", random_b64url(32)),
        format!("{URN}short"),
        "https://client.example/request.jwt".to_owned(),
    ] {
        expect_error_page(
            app.browser_get(&authorize_uri(&client.id, &bogus), &Jar::default())
                .await,
        )
        .await;
    }
}

/// The pushed request is validated again at `/authorize` (RFC 9126 §4): a redirect URI
/// unregistered since the push is refused with a page.
#[tokio::test]
async fn a_registration_changed_after_the_push_is_applied_at_authorize() {
    let (app, client) = setup(false).await;
    let uri = pushed_uri(push(&app, &client, &Pushed::new("tenant:read")).await).await;
    let store = open_store(&app).await;
    let id = ClientId::parse(&client.id).unwrap();
    let mut c = store.find_client(&id).await.unwrap().expect("client");
    c.redirect_uris =
        vec![deedbolt_core::redirect::RedirectUri::parse("https://app.example.com/other").unwrap()];
    assert!(store.update_client(&c).await.unwrap());
    // Once the server sees the change (a plain request to CB gets the error page)...
    let plain = Pushed::new("tenant:read").authorize_path(&client.id);
    crate::helpers::eventually("the server sees the new registration", || async {
        let res = app.browser_get(&plain, &Jar::default()).await;
        res.status() == 400
    })
    .await;
    // ...the request pushed before it is refused too, without a redirect.
    let authorize = authorize_uri(&client.id, &uri);
    expect_error_page(app.browser_get(&authorize, &Jar::default()).await).await;
}

#[tokio::test]
async fn a_client_registered_to_require_par_is_refused_without_it() {
    let (app, client) = setup(false).await;
    let store = open_store(&app).await;
    let id = ClientId::parse(&client.id).unwrap();
    let mut c = store.find_client(&id).await.unwrap().expect("client");
    c.metadata.require_pushed_authorization_requests = true;
    assert!(store.update_client(&c).await.unwrap());
    let req = Pushed::new("tenant:read");
    crate::helpers::eventually("the plain request is refused", || async {
        let res = app
            .browser_get(&req.authorize_path(&client.id), &Jar::default())
            .await;
        location(&res).is_some_and(|l| l.contains("error=invalid_request"))
    })
    .await;
    let res = app
        .browser_get(&req.authorize_path(&client.id), &Jar::default())
        .await;
    let params = callback(&location(&res).expect("redirect"));
    assert_eq!(params["error"], "invalid_request");
    assert_eq!(params["state"], req.state);
    assert_eq!(params["iss"], app.base);
    assert!(params["error_description"].contains("pushed"), "{params:?}");
    // Pushed, it works; another client is not affected.
    push_sign_in_and_redeem(&app, &client).await;
    let other = app.create_code_client("tenant:read", &[CB], false, &[]);
    let res = app
        .browser_get(&req.authorize_path(&other.id), &Jar::default())
        .await;
    assert!(location(&res).expect("redirect").starts_with("/login?req="));
}

#[tokio::test]
async fn the_server_can_require_par_of_every_client() {
    let mut opts = Options::default();
    opts.overrides.require_par = Some(true);
    let app = spawn_app_with(opts).await;
    app.create_user(TENANT, "tenant", PASSWORD);
    let client = app.create_code_client("openid tenant:read", &[CB], true, &[]);
    let doc: Value = app
        .get("/.well-known/oauth-authorization-server", None)
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(doc["require_pushed_authorization_requests"], true);
    let req = Pushed::new("tenant:read");
    let res = app
        .browser_get(&req.authorize_path(&client.id), &Jar::default())
        .await;
    assert_eq!(res.status(), 303);
    let params = callback(&location(&res).expect("redirect"));
    assert_eq!(params["error"], "invalid_request");
    assert!(!params.contains_key("code"));
    push_sign_in_and_redeem(&app, &client).await;
}

#[tokio::test]
async fn a_bad_pushed_request_gets_the_error_authorize_would_give() {
    let (app, client) = setup(false).await;
    let cc_only = app.create_client("tenant:read");
    let cc_only = CodeClient {
        id: cc_only.id,
        secret: Some(cc_only.secret),
    };
    let good = Pushed::new("tenant:read");
    let cases: Vec<(&str, Pushed, u16, &str)> = vec![
        (
            "no PKCE",
            good.clone().without("code_challenge"),
            400,
            "invalid_request",
        ),
        (
            "plain PKCE",
            good.clone().set("code_challenge_method", "plain"),
            400,
            "invalid_request",
        ),
        (
            "implicit",
            good.clone().set("response_type", "token"),
            400,
            "unsupported_response_type",
        ),
        (
            "no response_type",
            good.clone().without("response_type"),
            400,
            "invalid_request",
        ),
        (
            "scope beyond the registration",
            good.clone().set("scope", "tenant:read property:write"),
            400,
            "invalid_scope",
        ),
        (
            "unknown scope",
            good.clone().set("scope", "nope:read"),
            400,
            "invalid_scope",
        ),
        (
            "unregistered redirect_uri",
            good.clone().set("redirect_uri", "https://evil.example/cb"),
            400,
            "invalid_request",
        ),
        (
            "no redirect_uri",
            good.clone().without("redirect_uri"),
            400,
            "invalid_request",
        ),
        (
            "a request_uri inside the push (§2.1)",
            good.clone()
                .set("request_uri", &format!("{URN}{}", random_b64url(32))),
            400,
            "invalid_request",
        ),
        (
            "a request object",
            good.clone().set("request", "eyJhbGciOiJub25lIn0.e30."),
            400,
            "invalid_request",
        ),
    ];
    for (what, req, status, error) in cases {
        let v = expect_oauth_error(push(&app, &client, &req).await, status, error).await;
        eprintln!("{what}: {v}");
    }
    let v = expect_oauth_error(
        push(
            &app,
            &client,
            &good.clone().set("request_uri", &format!("{URN}x")),
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    assert!(
        v["error_description"].as_str().unwrap().contains("9126"),
        "{v}"
    );
    // A client without the authorization_code grant (and so without redirect URIs): the
    // redirect URI is checked first, as at /authorize, where it gets the error page.
    let v = expect_oauth_error(push(&app, &cc_only, &good).await, 400, "invalid_request").await;
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .contains("redirect_uri"),
        "{v}"
    );
    // Client authentication exactly as at /token.
    let wrong = CodeClient {
        id: client.id.clone(),
        secret: Some("wrong".into()),
    };
    let res = push(&app, &wrong, &good).await;
    assert!(res.headers().contains_key("www-authenticate"));
    expect_oauth_error(res, 401, "invalid_client").await;
    let anonymous = app
        .http
        .post(app.url("/par"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(good.form(&[]))
        .send()
        .await
        .unwrap();
    expect_oauth_error(anonymous, 401, "invalid_client").await;
    // A repeated parameter, and a body that is not a form.
    let twice = format!("{}&scope=tenant:read", good.form(&[]));
    expect_oauth_error(
        push_form(&app, &client, &twice).await,
        400,
        "invalid_request",
    )
    .await;
    let json = app
        .http
        .post(app.url("/par"))
        .basic_auth(&client.id, client.secret.as_ref())
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    expect_oauth_error(json, 400, "invalid_request").await;
    // Refusals are audited (the audit log is written in the background).
    let store = open_store(&app).await;
    let search = |kind| {
        let store = store.clone();
        async move {
            store
                .search_audit(&AuditFilter {
                    kind: Some(kind),
                    limit: 100,
                    ..AuditFilter::default()
                })
                .await
                .unwrap()
        }
    };
    crate::helpers::eventually("the refusals are audited", || async {
        search(AuditKind::PushedAuthorizationRequest).await.len() >= 14
            && search(AuditKind::ClientAuthFailed).await.len() >= 2
    })
    .await;
    let refused = search(AuditKind::PushedAuthorizationRequest).await;
    assert_eq!(refused.len(), 14, "{refused:?}");
    assert!(refused
        .iter()
        .all(|r| !r.success && r.error.is_some() && r.detail.as_deref() == Some("endpoint=par")));
    assert_eq!(search(AuditKind::ClientAuthFailed).await.len(), 2);
}

#[tokio::test]
async fn pushes_are_rate_limited_per_client_like_token_requests() {
    let mut opts = Options::default();
    opts.overrides.rate_limit_token = Some("2/1h".into());
    let app = spawn_app_with(opts).await;
    let client = app.create_code_client("tenant:read", &[CB], false, &[]);
    for _ in 0..2 {
        pushed_uri(push(&app, &client, &Pushed::new("tenant:read")).await).await;
    }
    let res = push(&app, &client, &Pushed::new("tenant:read")).await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    // Another client has its own quota.
    let other = app.create_code_client("tenant:read", &[CB], false, &[]);
    pushed_uri(push(&app, &other, &Pushed::new("tenant:read")).await).await;
}

/// One JSON line from the Node.js relying party (read off the async runtime).
async fn next_line(
    mut stdout: std::io::BufReader<std::process::ChildStdout>,
) -> (std::io::BufReader<std::process::ChildStdout>, Value) {
    use std::io::BufRead as _;
    tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read from node");
        let v =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("node printed {line:?}: {e}"));
        (stdout, v)
    })
    .await
    .expect("reader thread")
}

#[tokio::test]
async fn openid_client_5_pushes_its_request_and_completes_the_flow() {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    if !crate::helpers::openid_client_installed() {
        return;
    }
    let app = spawn_app().await;
    let user_id = app.create_user(TENANT, "tenant", PASSWORD);
    let client = app.create_code_client("openid tenant:read", &[CB], false, &[]);
    let mut child = Command::new("node")
        .arg("code-flow.mjs")
        .current_dir(crate::helpers::openid_client_dir())
        .env("ISSUER", &app.base)
        .env("CLIENT_ID", &client.id)
        .env("CLIENT_SECRET", client.secret.as_deref().unwrap())
        .env("REDIRECT_URI", CB)
        .env("SCOPE", "openid tenant:read")
        .env("PAR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start node");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let (stdout, first) = next_line(stdout).await;
    let authorize = first["authorize"]
        .as_str()
        .unwrap_or_else(|| panic!("openid-client failed to push: {first}"))
        .to_owned();
    assert_eq!(first["expires_in"], 60, "{first}");
    let query = query_params(&authorize);
    assert!(query["request_uri"].starts_with(URN), "{authorize}");
    assert!(
        !query.contains_key("code_challenge"),
        "pushed, not in the URL: {authorize}"
    );
    let back = app
        .sign_in_through_pages(&authorize, TENANT, PASSWORD, "approve", &mut Jar::default())
        .await;
    writeln!(stdin, "{back}").expect("write to node");
    let (_, done) = next_line(stdout).await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(done.get("error").is_none(), "openid-client: {done}");
    assert_eq!(done["claims"]["sub"], user_id.as_str(), "{done}");
    assert_eq!(done["userinfo"]["sub"], user_id.as_str(), "{done}");
}

/// Two instances on one PostgreSQL database (skipped without `DATABASE_URL`): a request
/// pushed at one is used at the other, once.
#[tokio::test]
async fn a_request_pushed_at_one_instance_is_used_at_another_once() {
    let Some(mut opts) = crate::helpers::postgres_options().await else {
        return;
    };
    let key = deedbolt_core::seal::MasterKey::generate_encoded().expect("master key");
    opts.master_key = Some(key.as_str().to_owned());
    let a = spawn_app_with(opts.clone()).await;
    let b = spawn_app_with(opts).await;
    a.create_user(TENANT, "tenant", PASSWORD);
    let client = a.create_code_client("openid tenant:read", &[CB], false, &[]);
    let req = Pushed::new("tenant:read");
    let uri = pushed_uri(push(&a, &client, &req).await).await;
    let params = approve_pushed(&b, &client.id, &uri).await;
    assert_eq!(params["state"], req.state);
    let res = redeem(&a, &client, &params["code"], &req.verifier).await;
    assert_eq!(res.status(), 200);
    // Spent for every instance.
    for app in [&a, &b] {
        expect_error_page(
            app.browser_get(&authorize_uri(&client.id, &uri), &Jar::default())
                .await,
        )
        .await;
    }
}
