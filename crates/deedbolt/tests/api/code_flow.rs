//! The authorization-code flow with PKCE, login, consent and OpenID Connect, driven over
//! plain HTTP (RFC 6749 §4.1, RFC 7636, RFC 9207, RFC 8252 §7.3, OIDC Core §3.1).
//!
//! No browser: redirects are not followed and cookies are kept by hand ([`Jar`]), so each
//! step a browser would take is asserted on its own: the 303s, the forms' hidden fields,
//! every `Set-Cookie`, the pages' security headers.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::helpers::{
    hidden_input, jwt_part, location, pkce_pair, pkce_s256, query_params, random_b64url,
    set_cookie_line, set_cookie_lines, spawn_app, unix_now, www_authenticate, CodeClient, Jar,
    TestApp,
};

const TENANT: &str = "tina.tenant@example.com";
const PASSWORD: &str = "plum-Orchard-Lantern-77-quietly";
const CB: &str = "https://app.example.com/cb";
const SESSION: &str = "deedbolt_session";
const CSRF: &str = "deedbolt_csrf";

// ---------------------------------------------------------------------------------------
// Scenario set-up and the individual steps
// ---------------------------------------------------------------------------------------

/// A server with one tenant user and one code client.
struct Env {
    app: TestApp,
    client: CodeClient,
    user_id: String,
}

/// A server with the tenant [`TENANT`] and a client registered for `scope` at [`CB`].
async fn setup(scope: &str, public: bool) -> Env {
    let app = spawn_app().await;
    let user_id = app.create_user(TENANT, "tenant", PASSWORD);
    let client = app.create_code_client(scope, &[CB], public, &[]);
    Env {
        app,
        client,
        user_id,
    }
}

/// An authorization request as a client app builds it, with what the app keeps.
#[derive(Clone, Debug)]
struct AuthRequest {
    params: Vec<(String, String)>,
    verifier: String,
    state: String,
    nonce: String,
    redirect_uri: String,
}

impl AuthRequest {
    fn new(client_id: &str, redirect_uri: &str, scope: &str) -> Self {
        let (verifier, challenge) = pkce_pair();
        let state = random_b64url(16);
        let nonce = random_b64url(16);
        let params = [
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("scope", scope),
            ("state", &state),
            ("nonce", &nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        AuthRequest {
            params,
            verifier,
            state,
            nonce,
            redirect_uri: redirect_uri.to_owned(),
        }
    }

    /// Sets (or adds) a parameter; `state` also updates what the app expects back.
    fn set(mut self, k: &str, v: &str) -> Self {
        match self.params.iter_mut().find(|(n, _)| n == k) {
            Some(p) => p.1 = v.to_owned(),
            None => self.params.push((k.to_owned(), v.to_owned())),
        }
        if k == "state" {
            self.state = v.to_owned();
        }
        self
    }

    /// Removes a parameter.
    fn without(mut self, k: &str) -> Self {
        self.params.retain(|(n, _)| n != k);
        self
    }

    /// `/authorize?…`
    fn path(&self) -> String {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.params)
            .finish();
        format!("/authorize?{q}")
    }
}

async fn text(res: reqwest::Response) -> String {
    res.text().await.expect("body")
}

async fn json(res: reqwest::Response) -> Value {
    res.json().await.expect("JSON body")
}

/// `GET /authorize` with the jar's cookies.
async fn authorize(app: &TestApp, req: &AuthRequest, jar: &Jar) -> reqwest::Response {
    app.browser_get(&req.path(), jar).await
}

/// Asserts a 303 to `/login?req=…` and returns that path.
fn expect_login_redirect(res: &reqwest::Response) -> String {
    assert_eq!(res.status(), 303, "expected a redirect to the login page");
    let loc = location(res).expect("Location");
    assert!(loc.starts_with("/login?req="), "Location: {loc}");
    assert!(
        !query_params(&loc)["req"].is_empty(),
        "req id in Location: {loc}"
    );
    loc
}

/// Asserts a 303 to `/consent?req=…` and returns that path.
fn expect_consent_redirect(res: &reqwest::Response) -> String {
    assert_eq!(res.status(), 303, "expected a redirect to the consent page");
    let loc = location(res).expect("Location");
    assert!(loc.starts_with("/consent?req="), "Location: {loc}");
    loc
}

/// Asserts a 303 back to exactly `redirect_uri` and returns its query parameters.
fn callback(res: &reqwest::Response, redirect_uri: &str) -> HashMap<String, String> {
    assert_eq!(
        res.status(),
        303,
        "expected a redirect back to the client (Location: {:?})",
        location(res)
    );
    let loc = location(res).expect("Location");
    let (target, _) = loc
        .split_once('?')
        .unwrap_or_else(|| panic!("no query in {loc}"));
    assert_eq!(target, redirect_uri, "redirected to the wrong place: {loc}");
    query_params(&loc)
}

/// Asserts a successful authorization response for `req` and returns the code.
fn expect_code(app: &TestApp, res: &reqwest::Response, req: &AuthRequest) -> String {
    let q = callback(res, &req.redirect_uri);
    assert!(!q.contains_key("error"), "unexpected error: {q:?}");
    assert_eq!(q.get("state"), Some(&req.state), "state echoed: {q:?}");
    assert_eq!(q.get("iss"), Some(&app.base), "RFC 9207 iss: {q:?}");
    let code = q.get("code").expect("code").clone();
    assert!(code.len() >= 32, "code has at least 256 bits: {code}");
    code
}

/// Asserts an error response for `req` carrying `error`, `state` and `iss`, and no code.
fn expect_redirect_error(
    app: &TestApp,
    res: &reqwest::Response,
    req: &AuthRequest,
    error: &str,
) -> HashMap<String, String> {
    let q = callback(res, &req.redirect_uri);
    assert_eq!(q.get("error").map(String::as_str), Some(error), "{q:?}");
    assert!(!q.contains_key("code"), "no code with an error: {q:?}");
    assert_eq!(q.get("state"), Some(&req.state), "state echoed: {q:?}");
    assert_eq!(q.get("iss"), Some(&app.base), "RFC 9207 iss: {q:?}");
    q
}

/// The login form, as a browser holds it.
#[derive(Clone, Debug)]
struct LoginForm {
    jar: Jar,
    csrf: String,
    req: String,
}

/// `GET /login?req=…`: a 200 form with hidden `csrf` and `req`, and the CSRF cookie.
async fn open_login(app: &TestApp, login_path: &str) -> LoginForm {
    let res = app.browser_get(login_path, &Jar::default()).await;
    assert_eq!(res.status(), 200, "login page");
    let mut jar = Jar::default();
    jar.store(&res);
    let html = text(res).await;
    let csrf = hidden_input(&html, "csrf").expect("hidden csrf input");
    let req = hidden_input(&html, "req").expect("hidden req input");
    assert_eq!(req, query_params(login_path)["req"], "the form carries req");
    assert!(csrf.len() >= 32, "csrf token is long: {csrf}");
    assert_eq!(
        jar.get(CSRF),
        Some(csrf.as_str()),
        "the CSRF cookie holds the form's token"
    );
    assert!(html.contains("name=\"password\""), "a password field");
    LoginForm { jar, csrf, req }
}

/// `POST /login` with the form's cookie and fields.
async fn submit_login(
    app: &TestApp,
    form: &LoginForm,
    email: &str,
    password: &str,
) -> reqwest::Response {
    app.browser_post(
        "/login",
        &[
            ("csrf", &form.csrf),
            ("req", &form.req),
            ("email", email),
            ("password", password),
        ],
        &form.jar,
    )
    .await
}

/// Opens the login page and signs in: 303 to `/consent?req=` (same req) with a session
/// cookie. Returns the browser's jar and the consent path.
async fn sign_in(app: &TestApp, login_path: &str, email: &str, password: &str) -> (Jar, String) {
    let form = open_login(app, login_path).await;
    let res = submit_login(app, &form, email, password).await;
    let consent = expect_consent_redirect(&res);
    assert_eq!(query_params(&consent)["req"], form.req, "same request");
    assert!(
        set_cookie_line(&res, SESSION).is_some(),
        "login sets the session cookie: {:?}",
        set_cookie_lines(&res)
    );
    let mut jar = form.jar.clone();
    jar.store(&res);
    assert!(jar.get(SESSION).is_some_and(|s| s.len() >= 32));
    assert_eq!(jar.get(CSRF), None, "login clears the login CSRF cookie");
    (jar, consent)
}

/// The consent page, as a browser holds it.
#[derive(Clone, Debug)]
struct ConsentForm {
    html: String,
    csrf: String,
    req: String,
}

/// `GET /consent?req=…`: a 200 page with hidden `csrf` and `req` and both buttons.
async fn open_consent(app: &TestApp, jar: &Jar, consent_path: &str) -> ConsentForm {
    let res = app.browser_get(consent_path, jar).await;
    assert_eq!(res.status(), 200, "consent page");
    let html = text(res).await;
    let csrf = hidden_input(&html, "csrf").expect("hidden csrf input");
    let req = hidden_input(&html, "req").expect("hidden req input");
    assert_eq!(req, query_params(consent_path)["req"]);
    assert!(html.contains("value=\"approve\"") && html.contains("value=\"deny\""));
    ConsentForm { html, csrf, req }
}

/// `POST /consent` with `decision`.
async fn decide(app: &TestApp, jar: &Jar, form: &ConsentForm, decision: &str) -> reqwest::Response {
    app.browser_post(
        "/consent",
        &[
            ("csrf", &form.csrf),
            ("req", &form.req),
            ("decision", decision),
        ],
        jar,
    )
    .await
}

/// The whole browser side for a user without a session: authorize, sign in, approve.
/// Returns the session jar and the code.
async fn get_code(app: &TestApp, req: &AuthRequest, email: &str, password: &str) -> (Jar, String) {
    let login = expect_login_redirect(&authorize(app, req, &Jar::default()).await);
    let (jar, consent) = sign_in(app, &login, email, password).await;
    let form = open_consent(app, &jar, &consent).await;
    let res = decide(app, &jar, &form, "approve").await;
    let code = expect_code(app, &res, req);
    (jar, code)
}

/// `POST /token` with `grant_type=authorization_code`: a public client names itself in
/// the body, a confidential one uses HTTP Basic.
async fn redeem(
    app: &TestApp,
    client: &CodeClient,
    code: &str,
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
) -> reqwest::Response {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "authorization_code");
    form.append_pair("code", code);
    if let Some(r) = redirect_uri {
        form.append_pair("redirect_uri", r);
    }
    if let Some(v) = verifier {
        form.append_pair("code_verifier", v);
    }
    match &client.secret {
        None => {
            form.append_pair("client_id", &client.id);
            app.post_token(None, &form.finish()).await
        }
        Some(_) => app.post_token(Some(&client.creds()), &form.finish()).await,
    }
}

/// [`redeem`] with the request's own redirect URI and verifier.
async fn redeem_for(
    app: &TestApp,
    client: &CodeClient,
    code: &str,
    req: &AuthRequest,
) -> reqwest::Response {
    redeem(
        app,
        client,
        code,
        Some(&req.redirect_uri),
        Some(&req.verifier),
    )
    .await
}

/// Asserts an OAuth error from the token endpoint and returns the body.
async fn expect_token_error(res: reqwest::Response, status: u16, error: &str) -> Value {
    assert_eq!(res.status(), status, "token endpoint status");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body = json(res).await;
    assert_eq!(body["error"], error, "{body}");
    body
}

/// Asserts a 400 HTML error page that does not redirect, and returns its text.
async fn expect_error_page(res: reqwest::Response) -> String {
    assert_eq!(res.status(), 400, "error page status");
    assert!(
        location(&res).is_none(),
        "an error page must not redirect (open redirector): {:?}",
        location(&res)
    );
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    text(res).await
}

/// Verifies a JWT against the published JWKS and returns its claims.
async fn verify_jwt(app: &TestApp, token: &str, audience: &str) -> Value {
    let header = jwt_part(token, 0);
    let jwks = app.jwks().await;
    let jwk = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the token's kid is published");
    // Access tokens: ES256 (the default --signing-alg); ID tokens: RS256 (the default
    // id_token_signed_response_alg of a client that registered none).
    let (key, alg) = match header["alg"].as_str() {
        Some("ES256") => (
            DecodingKey::from_ec_components(jwk["x"].as_str().unwrap(), jwk["y"].as_str().unwrap())
                .expect("EC key"),
            Algorithm::ES256,
        ),
        Some("RS256") => (
            DecodingKey::from_rsa_components(
                jwk["n"].as_str().unwrap(),
                jwk["e"].as_str().unwrap(),
            )
            .expect("RSA key"),
            Algorithm::RS256,
        ),
        other => panic!("unexpected alg {other:?}"),
    };
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[&app.base]);
    validation.set_audience(&[audience]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("the token verifies against the JWKS")
        .claims
}

/// OIDC Core §3.1.3.6 for ES256 and RS256 (both SHA-256): base64url of the left half of
/// SHA-256(access token).
fn at_hash_es256(access_token: &str) -> String {
    use base64::Engine as _;
    let full = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(pkce_s256(access_token))
        .expect("base64url");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&full[..16])
}

// ---------------------------------------------------------------------------------------
// 1. The full flow
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn public_client_gets_user_tokens_scoped_by_the_users_role() {
    let t0 = unix_now();
    let env = setup("openid tenant:read property:write", true).await;
    let app = &env.app;
    let req = AuthRequest::new(&env.client.id, CB, "openid tenant:read property:write");

    // /authorize without a session: to the login page.
    let login = expect_login_redirect(&authorize(app, &req, &Jar::default()).await);
    let (jar, consent) = sign_in(app, &login, TENANT, PASSWORD).await;

    // The consent page lists what the tenant can actually grant: not property:write.
    let form = open_consent(app, &jar, &consent).await;
    assert!(form.html.contains(TENANT), "shows who is signed in");
    assert!(form.html.contains("code-client"), "names the client");
    assert!(form.html.contains("See tenant records"));
    assert!(form.html.contains("data-scope=\"tenant:read\""));
    assert!(form.html.contains("data-scope=\"openid\""));
    assert!(
        !form.html.contains("property:write") && !form.html.contains("Create and change"),
        "the consent page must not offer a scope the role cannot grant"
    );

    let res = decide(app, &jar, &form, "approve").await;
    let code = expect_code(app, &res, &req);

    let res = redeem_for(app, &env.client, &code, &req).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["pragma"], "no-cache");
    let body = json(res).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(
        body["scope"], "tenant:read openid",
        "request ∩ client ∩ role"
    );
    assert!(body.get("refresh_token").is_none());

    // The access token: RFC 9068, for the user, through this client.
    let access = body["access_token"].as_str().expect("access_token");
    assert_eq!(jwt_part(access, 0)["typ"], "at+jwt");
    let claims = verify_jwt(app, access, &format!("{}/api", app.base)).await;
    assert_eq!(claims["sub"], env.user_id.as_str());
    assert_eq!(claims["client_id"], env.client.id.as_str());
    assert_eq!(claims["scope"], "tenant:read openid");
    assert_eq!(claims["iss"], app.base.as_str());

    // The ID token: for the client, with the nonce, at_hash and auth_time.
    let id_token = body["id_token"].as_str().expect("id_token with openid");
    let id = verify_jwt(app, id_token, &env.client.id).await;
    assert_ne!(
        jwt_part(id_token, 0)["typ"],
        "at+jwt",
        "not an access token"
    );
    assert_eq!(id["iss"], app.base.as_str());
    assert_eq!(id["sub"], env.user_id.as_str());
    assert_eq!(id["aud"], env.client.id.as_str());
    assert_eq!(id["nonce"], req.nonce.as_str());
    assert_eq!(
        jwt_part(id_token, 0)["alg"],
        "RS256",
        "the default id_token_signed_response_alg"
    );
    assert_eq!(id["at_hash"], at_hash_es256(access));
    let auth_time = id["auth_time"].as_i64().expect("auth_time");
    assert!(
        auth_time >= t0 - 1 && auth_time <= unix_now() + 1,
        "auth_time {auth_time} is the login time"
    );
    assert!(id["exp"].as_i64().unwrap() > unix_now());

    // The tenant cannot read properties, whatever the client asked for.
    let res = app.get("/api/properties", Some(access)).await;
    assert_eq!(res.status(), 403);
    assert!(www_authenticate(&res).contains("insufficient_scope"));

    // /userinfo: the subject, and no email without the email scope.
    let res = app.get("/userinfo", Some(access)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let info = json(res).await;
    assert_eq!(info["sub"], env.user_id.as_str());
    assert!(info.get("email").is_none(), "no email scope: {info}");

    // The ID token is not a bearer token for the API.
    let res = app.get("/userinfo", Some(id_token)).await;
    assert_eq!(res.status(), 401);
    assert!(www_authenticate(&res).contains("invalid_token"));
}

#[tokio::test]
async fn email_and_profile_scopes_add_claims_to_userinfo() {
    let app = spawn_app().await;
    let user_id = app.create_user_named(TENANT, "tenant", PASSWORD, Some("Tina Tenant"));
    let client = app.create_code_client("openid email profile tenant:read", &[CB], true, &[]);
    let req = AuthRequest::new(&client.id, CB, "openid email profile");
    let (_, code) = get_code(&app, &req, TENANT, PASSWORD).await;
    let res = redeem_for(&app, &client, &code, &req).await;
    assert_eq!(res.status(), 200);
    let body = json(res).await;
    assert_eq!(body["scope"], "openid profile email");
    let access = body["access_token"].as_str().unwrap();
    let res = app.get("/userinfo", Some(access)).await;
    assert_eq!(res.status(), 200);
    let info = json(res).await;
    assert_eq!(info["sub"], user_id.as_str());
    assert_eq!(info["email"], TENANT);
    assert_eq!(info["name"], "Tina Tenant");
}

#[tokio::test]
async fn confidential_client_redeems_with_basic_auth() {
    let env = setup("openid tenant:read financial:read", false).await;
    let app = &env.app;
    let req = AuthRequest::new(&env.client.id, CB, "tenant:read financial:read");
    let (_, code) = get_code(app, &req, TENANT, PASSWORD).await;

    // A confidential client naming itself without its secret is not authenticated, and
    // that failure must not spend the code.
    let form = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={}&client_id={}",
        url::form_urlencoded::byte_serialize(CB.as_bytes()).collect::<String>(),
        req.verifier,
        env.client.id
    );
    expect_token_error(app.post_token(None, &form).await, 401, "invalid_client").await;
    let wrong = crate::helpers::Creds {
        id: env.client.id.clone(),
        secret: "dbs_wrong".into(),
    };
    let form = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={}",
        url::form_urlencoded::byte_serialize(CB.as_bytes()).collect::<String>(),
        req.verifier,
    );
    expect_token_error(
        app.post_token(Some(&wrong), &form).await,
        401,
        "invalid_client",
    )
    .await;

    let res = redeem_for(app, &env.client, &code, &req).await;
    assert_eq!(res.status(), 200);
    let body = json(res).await;
    assert_eq!(body["scope"], "tenant:read financial:read");

    // PKCE is required of confidential clients too (RFC 9700 §2.1.1).
    let no_pkce = AuthRequest::new(&env.client.id, CB, "tenant:read").without("code_challenge");
    let res = authorize(app, &no_pkce, &Jar::default()).await;
    expect_redirect_error(app, &res, &no_pkce, "invalid_request");
    assert!(
        body.get("id_token").is_none(),
        "no id_token without openid: {body}"
    );
    let claims = verify_jwt(
        app,
        body["access_token"].as_str().unwrap(),
        &format!("{}/api", app.base),
    )
    .await;
    assert_eq!(claims["sub"], env.user_id.as_str());
    assert_eq!(claims["client_id"], env.client.id.as_str());
}

#[tokio::test]
async fn a_role_that_can_grant_nothing_requested_gets_access_denied() {
    let env = setup("openid property:write", true).await;
    let app = &env.app;
    let req = AuthRequest::new(&env.client.id, CB, "property:write");
    let login = expect_login_redirect(&authorize(app, &req, &Jar::default()).await);
    let (jar, consent) = sign_in(app, &login, TENANT, PASSWORD).await;
    let res = app.browser_get(&consent, &jar).await;
    expect_redirect_error(app, &res, &req, "access_denied");
}

/// Asks for `scope` with the client of `env` as `email` (no session yet), approves, and
/// redeems the code: the consent page's HTML and the token response.
async fn consent_and_redeem(env: &Env, email: &str, scope: &str) -> (String, Value) {
    let app = &env.app;
    let req = AuthRequest::new(&env.client.id, CB, scope);
    let login = expect_login_redirect(&authorize(app, &req, &Jar::default()).await);
    let (jar, consent) = sign_in(app, &login, email, PASSWORD).await;
    let form = open_consent(app, &jar, &consent).await;
    let code = expect_code(app, &decide(app, &jar, &form, "approve").await, &req);
    let body = json(redeem_for(app, &env.client, &code, &req).await).await;
    (form.html, body)
}

#[tokio::test]
async fn only_an_administrator_can_delegate_admin_read_and_the_consent_page_flags_it() {
    const ADMIN: &str = "ada.admin@example.com";
    const MANAGER: &str = "max.manager@example.com";
    let env = setup("openid admin:read", false).await;
    let app = &env.app;
    app.create_user(ADMIN, "admin", PASSWORD);
    app.create_user(MANAGER, "manager", PASSWORD);

    // The administrator reads, in plain words, what the app would get, with a warning.
    let (html, body) = consent_and_redeem(&env, ADMIN, "openid admin:read").await;
    assert!(
        html.contains("read the security audit log and alerts of the whole server")
            && html.contains("data-scope=\"admin:read\""),
        "{html}"
    );
    assert!(
        html.contains("id=\"admin-warning\"") && html.contains("administrator access"),
        "{html}"
    );
    assert_eq!(body["scope"], "openid admin:read", "{body}");
    let token = body["access_token"].as_str().expect("access_token");
    assert_eq!(app.get("/admin/api/audit", Some(token)).await.status(), 200);

    // A tenant or a manager cannot delegate it: the page neither lists nor warns about
    // it, the token is issued without it, and the admin API refuses the token.
    for email in [TENANT, MANAGER] {
        let (html, body) = consent_and_redeem(&env, email, "openid admin:read").await;
        assert!(html.contains("data-scope=\"openid\""), "{email}: {html}");
        assert!(
            !html.contains("admin:read")
                && !html.contains("audit log")
                && !html.contains("admin-warning"),
            "{email}: {html}"
        );
        assert_eq!(body["scope"], "openid", "{email}: {body}");
        let token = body["access_token"].as_str().expect("access_token");
        let res = app.get("/admin/api/audit", Some(token)).await;
        assert_eq!(res.status(), 403, "{email}");
        assert!(
            www_authenticate(&res).contains("insufficient_scope"),
            "{email}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 2. Remembered consent and prompt
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn consent_is_remembered_until_revoked() {
    let env = setup("openid tenant:read financial:read", true).await;
    let app = &env.app;
    let scope = "openid tenant:read financial:read";
    let first = AuthRequest::new(&env.client.id, CB, scope);
    let (jar, code) = get_code(app, &first, TENANT, PASSWORD).await;
    assert_eq!(
        redeem_for(app, &env.client, &code, &first).await.status(),
        200
    );

    // Same scopes with the session: straight back with a code, no page.
    let again = AuthRequest::new(&env.client.id, CB, scope);
    let res = authorize(app, &again, &jar).await;
    let code = expect_code(app, &res, &again);
    let res = redeem_for(app, &env.client, &code, &again).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        json(res).await["scope"],
        "tenant:read financial:read openid"
    );

    // prompt=none succeeds silently now that there is a session and a consent.
    let silent = AuthRequest::new(&env.client.id, CB, scope).set("prompt", "none");
    expect_code(app, &authorize(app, &silent, &jar).await, &silent);

    // A fresh login (another browser) goes from the login form straight to the client.
    let fresh = AuthRequest::new(&env.client.id, CB, scope);
    let login = expect_login_redirect(&authorize(app, &fresh, &Jar::default()).await);
    let (other_jar, consent) = sign_in(app, &login, TENANT, PASSWORD).await;
    let res = app.browser_get(&consent, &other_jar).await;
    let code = expect_code(app, &res, &fresh);
    assert_eq!(
        redeem_for(app, &env.client, &code, &fresh).await.status(),
        200
    );

    // Fewer scopes are covered by the consent too.
    let fewer = AuthRequest::new(&env.client.id, CB, "tenant:read");
    expect_code(app, &authorize(app, &fewer, &jar).await, &fewer);

    // prompt=consent shows the page anyway.
    let forced = AuthRequest::new(&env.client.id, CB, scope).set("prompt", "consent");
    let consent = expect_consent_redirect(&authorize(app, &forced, &jar).await);
    let form = open_consent(app, &jar, &consent).await;
    assert!(form.html.contains("See tenant records"));

    // prompt=login asks for the password again despite the session.
    let relogin = AuthRequest::new(&env.client.id, CB, scope).set("prompt", "login");
    expect_login_redirect(&authorize(app, &relogin, &jar).await);

    // After `user revoke-consent` the page is shown again.
    let out = app.cli(&[
        "user",
        "revoke-consent",
        "--email",
        TENANT,
        "--client",
        &env.client.id,
    ]);
    assert!(
        out.status.success(),
        "revoke-consent failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("revoked 1 consent"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let after = AuthRequest::new(&env.client.id, CB, scope);
    let consent = expect_consent_redirect(&authorize(app, &after, &jar).await);
    open_consent(app, &jar, &consent).await;

    // prompt=none with a session but no consent: consent_required, no page.
    let silent = AuthRequest::new(&env.client.id, CB, scope).set("prompt", "none");
    expect_redirect_error(
        app,
        &authorize(app, &silent, &jar).await,
        &silent,
        "consent_required",
    );
}

#[tokio::test]
async fn prompt_none_without_a_session_is_login_required() {
    let env = setup("openid tenant:read", true).await;
    let app = &env.app;
    let req = AuthRequest::new(&env.client.id, CB, "openid").set("prompt", "none");
    let res = authorize(app, &req, &Jar::default()).await;
    expect_redirect_error(app, &res, &req, "login_required");

    // A session cookie the server does not know is no session.
    let mut jar = Jar::default();
    jar.set(SESSION, &random_b64url(32));
    let res = authorize(app, &req, &jar).await;
    expect_redirect_error(app, &res, &req, "login_required");
}

#[tokio::test]
async fn logout_ends_the_session() {
    let env = setup("openid tenant:read", true).await;
    let app = &env.app;
    let req = AuthRequest::new(&env.client.id, CB, "openid");
    let login = expect_login_redirect(&authorize(app, &req, &Jar::default()).await);
    let (jar, consent) = sign_in(app, &login, TENANT, PASSWORD).await;
    let form = open_consent(app, &jar, &consent).await;

    // Without the session's CSRF token: refused, session intact.
    let res = app
        .browser_post("/logout", &[("csrf", "wrong")], &jar)
        .await;
    assert_eq!(res.status(), 403);
    assert!(set_cookie_line(&res, SESSION).is_none());

    let res = app
        .browser_post("/logout", &[("csrf", &form.csrf)], &jar)
        .await;
    assert_eq!(res.status(), 200);
    let cleared = set_cookie_line(&res, SESSION).expect("logout clears the cookie");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");

    // The old cookie value no longer signs anyone in.
    let again = AuthRequest::new(&env.client.id, CB, "openid");
    expect_login_redirect(&authorize(app, &again, &jar).await);
}

// ---------------------------------------------------------------------------------------
// 3. Deny
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn deny_redirects_with_access_denied_and_remembers_nothing() {
    let env = setup("openid tenant:read", true).await;
    let app = &env.app;
    let req = AuthRequest::new(&env.client.id, CB, "openid tenant:read");
    let login = expect_login_redirect(&authorize(app, &req, &Jar::default()).await);
    let (jar, consent) = sign_in(app, &login, TENANT, PASSWORD).await;
    let form = open_consent(app, &jar, &consent).await;
    let res = decide(app, &jar, &form, "deny").await;
    let q = expect_redirect_error(app, &res, &req, "access_denied");
    assert!(q.contains_key("error_description"));

    // The request is answered: approving it afterwards does not produce a code.
    let res = decide(app, &jar, &form, "approve").await;
    let page = expect_error_page(res).await;
    assert!(page.contains("expired or was already answered"), "{page}");

    // Nothing was remembered: the next request asks again.
    let next = AuthRequest::new(&env.client.id, CB, "openid tenant:read");
    expect_consent_redirect(&authorize(app, &next, &jar).await);
}

// ---------------------------------------------------------------------------------------
// 4. PKCE
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn pkce_is_required_and_s256_only() {
    let env = setup("openid tenant:read", true).await;
    let app = &env.app;
    let base = AuthRequest::new(&env.client.id, CB, "openid");
    for (what, req) in [
        ("no code_challenge", base.clone().without("code_challenge")),
        (
            "plain method",
            base.clone().set("code_challenge_method", "plain"),
        ),
        (
            "no method (means plain)",
            base.clone().without("code_challenge_method"),
        ),
        (
            "malformed challenge",
            base.clone().set("code_challenge", "abc"),
        ),
    ] {
        let res = authorize(app, &req, &Jar::default()).await;
        let q = callback(&res, CB);
        assert_eq!(q["error"], "invalid_request", "{what}: {q:?}");
        assert_eq!(q["state"], req.state, "{what}");
        assert_eq!(q["iss"], app.base, "{what}");
        assert!(!q.contains_key("code"), "{what}");
    }
}

#[tokio::test]
async fn a_wrong_code_verifier_is_refused_and_does_not_spend_the_code() {
    let env = setup("openid tenant:read", true).await;
    let app = &env.app;

    // A wrong verifier: invalid_grant, and nothing changes (RFC 7636 §4.6, RFC 9700 §4.5):
    // whoever intercepted the code cannot burn it, so the app's redemption still works.
    let req = AuthRequest::new(&env.client.id, CB, "openid");
    let (jar, code) = get_code(app, &req, TENANT, PASSWORD).await;
    let (other_verifier, _) = pkce_pair();
    let res = redeem(app, &env.client, &code, Some(CB), Some(&other_verifier)).await;
    let body = expect_token_error(res, 400, "invalid_grant").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("code_verifier"),
        "{body}"
    );
    let res = redeem_for(app, &env.client, &code, &req).await;
    assert_eq!(
        res.status(),
        200,
        "the right verifier still redeems the code"
    );
    let access = json(res).await["access_token"].as_str().unwrap().to_owned();

    // A wrong verifier after the redemption is no replay: the user's token keeps working.
    let res = redeem(app, &env.client, &code, Some(CB), Some(&other_verifier)).await;
    expect_token_error(res, 400, "invalid_grant").await;
    assert_eq!(
        app.get("/userinfo", Some(&access)).await.status(),
        200,
        "a failed check must not revoke the user's token"
    );

    // No verifier at all: invalid_request.
    let req = AuthRequest::new(&env.client.id, CB, "openid");
    let code = expect_code(app, &authorize(app, &req, &jar).await, &req);
    let res = redeem(app, &env.client, &code, Some(CB), None).await;
    expect_token_error(res, 400, "invalid_request").await;

    // A verifier too short to be one (RFC 7636 §4.1: 43 to 128 characters).
    let req = AuthRequest::new(&env.client.id, CB, "openid");
    let code = expect_code(app, &authorize(app, &req, &jar).await, &req);
    let res = redeem(app, &env.client, &code, Some(CB), Some("short")).await;
    expect_token_error(res, 400, "invalid_request").await;

    // The challenge itself is not the verifier.
    let req = AuthRequest::new(&env.client.id, CB, "openid");
    let challenge = pkce_s256(&req.verifier);
    let code = expect_code(app, &authorize(app, &req, &jar).await, &req);
    let res = redeem(app, &env.client, &code, Some(CB), Some(&challenge)).await;
    expect_token_error(res, 400, "invalid_grant").await;
}

// ---------------------------------------------------------------------------------------
// 5. Single use
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_the_first_token() {
    let env = setup("openid tenant:read", true).await;
    let app = &env.app;
    let req = AuthRequest::new(&env.client.id, CB, "openid tenant:read");
    let (_, code) = get_code(app, &req, TENANT, PASSWORD).await;

    let res = redeem_for(app, &env.client, &code, &req).await;
    assert_eq!(res.status(), 200);
    let access = json(res).await["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/userinfo", Some(&access)).await.status(), 200);

    let res = redeem_for(app, &env.client, &code, &req).await;
    expect_token_error(res, 400, "invalid_grant").await;

    // RFC 6749 §4.1.2: the token issued from the replayed code is revoked.
    let res = app.get("/userinfo", Some(&access)).await;
    assert_eq!(res.status(), 401);
    let challenge = www_authenticate(&res);
    assert!(challenge.contains("invalid_token"), "{challenge}");
    assert!(challenge.contains("revoked"), "{challenge}");
    let body = json(res).await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{body}"
    );
}

#[tokio::test]
async fn concurrent_redemptions_of_one_code_issue_at_most_one_live_token() {
    let env = setup("openid tenant:read", true).await;
    let app = &env.app;
    let mut jar = Jar::default();
    for round in 0..3 {
        let req = AuthRequest::new(&env.client.id, CB, "openid tenant:read");
        let code = if round == 0 {
            let (session, code) = get_code(app, &req, TENANT, PASSWORD).await;
            jar = session;
            code
        } else {
            // Signed in and consented: straight back with a code.
            expect_code(app, &authorize(app, &req, &jar).await, &req)
        };

        let attempts = (0..8).map(|_| redeem_for(app, &env.client, &code, &req));
        let mut issued = Vec::new();
        for res in futures_join_all(attempts).await {
            if res.status() == 200 {
                issued.push(json(res).await["access_token"].as_str().unwrap().to_owned());
            } else {
                expect_token_error(res, 400, "invalid_grant").await;
            }
        }
        // Exactly one redemption finds the code unspent; the other seven are replays,
        // and a replay revokes what the code produced (RFC 6749 §4.1.2). Depending on
        // timing, the winner's token is revoked after it was returned, or never returned
        // (400 for all eight). Either way: at most one token, and it does not work.
        assert!(
            issued.len() <= 1,
            "round {round}: {} of 8 concurrent redemptions got a token",
            issued.len()
        );
        for token in &issued {
            let res = app.get("/userinfo", Some(token)).await;
            assert_eq!(
                res.status(),
                401,
                "round {round}: a token from a replayed code must be revoked"
            );
            assert!(www_authenticate(&res).contains("revoked"));
        }
    }
}

/// Runs futures concurrently (on this task; their HTTP requests go out in parallel) and
/// returns their outputs in order.
async fn futures_join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    use std::task::Poll;
    let mut pending: Vec<Option<std::pin::Pin<Box<F>>>> = futs.map(|f| Some(Box::pin(f))).collect();
    let mut results: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        for (slot, result) in pending.iter_mut().zip(results.iter_mut()) {
            if let Some(f) = slot {
                if let Poll::Ready(v) = f.as_mut().poll(cx) {
                    *result = Some(v);
                    *slot = None;
                }
            }
        }
        if pending.iter().all(Option::is_none) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    results.into_iter().map(|r| r.expect("completed")).collect()
}

// ---------------------------------------------------------------------------------------
// 6. Binding to client and redirect URI
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_code_presented_by_another_client_is_refused_and_neither_burns_it_nor_revokes() {
    let env = setup("openid tenant:read", true).await;
    let app = &env.app;
    let other = app.create_code_client("openid tenant:read", &[CB], true, &[]);
    let req = AuthRequest::new(&env.client.id, CB, "openid");
    let (jar, code) = get_code(app, &req, TENANT, PASSWORD).await;

    // Another client (with the right verifier, even): invalid_grant (RFC 6749 §4.1.3)…
    let res = redeem_for(app, &other, &code, &req).await;
    let body = expect_token_error(res, 400, "invalid_grant").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("another client"),
        "{body}"
    );
    // …and the code is not spent: the client it was issued to still redeems it.
    let res = redeem_for(app, &env.client, &code, &req).await;
    assert_eq!(res.status(), 200, "the victim's redemption still works");
    let access = json(res).await["access_token"].as_str().unwrap().to_owned();

    // The other client presenting the spent code is no replay by its owner: the user's
    // token is not revoked.
    let res = redeem_for(app, &other, &code, &req).await;
    expect_token_error(res, 400, "invalid_grant").await;
    assert_eq!(
        app.get("/userinfo", Some(&access)).await.status(),
        200,
        "another client's attempt must not revoke the user's token"
    );

    // A confidential client is bound the same way.
    let confidential = app.create_code_client("openid tenant:read", &[CB], false, &[]);
    let req = AuthRequest::new(&confidential.id, CB, "openid");
    let consent = expect_consent_redirect(&authorize(app, &req, &jar).await);
    let form = open_consent(app, &jar, &consent).await;
    let code = expect_code(app, &decide(app, &jar, &form, "approve").await, &req);
    let res = redeem_for(app, &env.client, &code, &req).await;
    expect_token_error(res, 400, "invalid_grant").await;
    assert_eq!(
        redeem_for(app, &confidential, &code, &req).await.status(),
        200
    );
}

#[tokio::test]
async fn a_code_is_bound_to_its_redirect_uri() {
    let app = spawn_app().await;
    app.create_user(TENANT, "tenant", PASSWORD);
    let cb2 = "https://app.example.com/other-cb";
    let client = app.create_code_client("openid tenant:read", &[CB, cb2], true, &[]);

    let req = AuthRequest::new(&client.id, CB, "openid");
    let (jar, code) = get_code(&app, &req, TENANT, PASSWORD).await;
    let res = redeem(&app, &client, &code, Some(cb2), Some(&req.verifier)).await;
    expect_token_error(res, 400, "invalid_grant").await;
    // A mismatch changes nothing: the right redirect URI still redeems the code.
    let res = redeem_for(&app, &client, &code, &req).await;
    assert_eq!(res.status(), 200, "the code was not spent by the mismatch");

    // Leaving redirect_uri out of the token request is no match either.
    let req = AuthRequest::new(&client.id, CB, "openid");
    let code = expect_code(&app, &authorize(&app, &req, &jar).await, &req);
    let res = redeem(&app, &client, &code, None, Some(&req.verifier)).await;
    assert_eq!(res.status(), 400);
    let body = json(res).await;
    assert!(
        body["error"] == "invalid_grant" || body["error"] == "invalid_request",
        "{body}"
    );

    // The other registered URI works when it is the one used throughout.
    let req = AuthRequest::new(&client.id, cb2, "openid");
    let code = expect_code(&app, &authorize(&app, &req, &jar).await, &req);
    assert_eq!(redeem_for(&app, &client, &code, &req).await.status(), 200);
}

// ---------------------------------------------------------------------------------------
// 7. Redirect URI rules
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn unregistered_redirect_uris_and_unknown_clients_get_an_error_page() {
    let env = setup("openid tenant:read", true).await;
    let app = &env.app;
    for uri in [
        "https://evil.example/cb",
        "https://app.example.com/cb/",
        "https://APP.example.com/cb",
        "https://app.example.com:443/cb",
        "https://app.example.com/cb?x=1",
        "https://app.example.com/cb/../cb",
        "https://app.example.com/CB",
    ] {
        let req = AuthRequest::new(&env.client.id, uri, "openid");
        let page = expect_error_page(authorize(app, &req, &Jar::default()).await).await;
        assert!(page.contains("not registered"), "{uri}: {page}");
    }

    let missing = AuthRequest::new(&env.client.id, CB, "openid").without("redirect_uri");
    expect_error_page(authorize(app, &missing, &Jar::default()).await).await;

    for client_id in ["dbc_nobody0000000000000000", "not-a-client-id", ""] {
        let req = AuthRequest::new(client_id, CB, "openid");
        let page = expect_error_page(authorize(app, &req, &Jar::default()).await).await;
        assert!(page.contains("not registered"), "{client_id}: {page}");
    }
    let no_client = AuthRequest::new(&env.client.id, CB, "openid").without("client_id");
    expect_error_page(authorize(app, &no_client, &Jar::default()).await).await;

    // A repeated redirect_uri cannot be trusted either.
    let req = AuthRequest::new(&env.client.id, CB, "openid");
    let path = format!(
        "{}&redirect_uri={}",
        req.path(),
        url::form_urlencoded::byte_serialize(b"https://evil.example/cb").collect::<String>()
    );
    expect_error_page(app.browser_get(&path, &Jar::default()).await).await;
}

#[tokio::test]
async fn a_loopback_redirect_uri_accepts_any_port() {
    let app = spawn_app().await;
    app.create_user(TENANT, "tenant", PASSWORD);
    let client = app.create_code_client("openid tenant:read", &["http://127.0.0.1/cb"], true, &[]);

    // RFC 8252 §7.3: the native app picks its port at run time.
    let presented = "http://127.0.0.1:54321/cb";
    let req = AuthRequest::new(&client.id, presented, "openid tenant:read");
    let (_, code) = get_code(&app, &req, TENANT, PASSWORD).await;
    let res = redeem_for(&app, &client, &code, &req).await;
    assert_eq!(res.status(), 200);

    // Only the port may differ.
    for uri in [
        "http://127.0.0.1:54321/other",
        "http://localhost:54321/cb",
        "http://[::1]:54321/cb",
        "https://127.0.0.1:54321/cb",
        "http://127.0.0.1:54321/cb?x=1",
    ] {
        let req = AuthRequest::new(&client.id, uri, "openid");
        expect_error_page(authorize(&app, &req, &Jar::default()).await).await;
    }
}

#[tokio::test]
async fn a_redirect_uri_with_a_query_or_a_custom_scheme_is_kept_as_registered() {
    let app = spawn_app().await;
    app.create_user(TENANT, "tenant", PASSWORD);
    let with_query = "https://app.example.com/cb?tenant=harbour";
    let native = "com.example.app:/oauth2redirect";
    let client = app.create_code_client("openid tenant:read", &[with_query, native], true, &[]);

    // RFC 6749 §3.1.2: the registered query is retained when the code is added.
    let req = AuthRequest::new(&client.id, with_query, "openid");
    let (jar, code) = {
        let login = expect_login_redirect(&authorize(&app, &req, &Jar::default()).await);
        let (jar, consent) = sign_in(&app, &login, TENANT, PASSWORD).await;
        let form = open_consent(&app, &jar, &consent).await;
        let res = decide(&app, &jar, &form, "approve").await;
        assert_eq!(res.status(), 303);
        let loc = location(&res).unwrap();
        assert!(
            loc.starts_with(&format!("{with_query}&code=")),
            "query kept, code appended: {loc}"
        );
        let q = query_params(&loc);
        assert_eq!(q["tenant"], "harbour");
        assert_eq!(q["state"], req.state);
        assert_eq!(q["iss"], app.base);
        (jar, q["code"].clone())
    };
    assert_eq!(redeem_for(&app, &client, &code, &req).await.status(), 200);

    // A private-use scheme (RFC 8252 §7.1) is redirected to as registered.
    let req = AuthRequest::new(&client.id, native, "openid");
    let res = authorize(&app, &req, &jar).await;
    let code = expect_code(&app, &res, &req);
    assert_eq!(redeem_for(&app, &client, &code, &req).await.status(), 200);
}

#[tokio::test]
async fn no_scope_parameter_means_the_registration_within_the_role() {
    let env = setup("openid tenant:read property:write", true).await;
    let app = &env.app;
    let req = AuthRequest::new(&env.client.id, CB, "").without("scope");
    let (_, code) = get_code(app, &req, TENANT, PASSWORD).await;
    let res = redeem_for(app, &env.client, &code, &req).await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await["scope"], "tenant:read openid");
}

#[tokio::test]
async fn pages_escape_what_they_echo() {
    let app = spawn_app().await;
    app.create_user(TENANT, "tenant", PASSWORD);
    let evil = "<script>alert(1)</script> & \"Co\"";
    let v = app.cli_json(&[
        "client",
        "create",
        "--name",
        evil,
        "--grant",
        "authorization_code",
        "--redirect-uri",
        CB,
        "--public",
        "--scope",
        "openid tenant:read",
        "--json",
    ]);
    let client_id = v["client_id"].as_str().unwrap().to_owned();
    let req = AuthRequest::new(&client_id, CB, "openid tenant:read");
    let login = expect_login_redirect(&authorize(&app, &req, &Jar::default()).await);

    let res = app.browser_get(&login, &Jar::default()).await;
    let html = text(res).await;
    assert!(
        !html.contains("<script>"),
        "client name not escaped: {html}"
    );
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;Co&quot;"));

    // The typed email is echoed back in the value attribute after a failure.
    let form = open_login(&app, &login).await;
    let typed = "\"><script>alert(2)</script>@example.com";
    let res = submit_login(&app, &form, typed, "Wrong-password-123").await;
    assert_eq!(res.status(), 401);
    let html = text(res).await;
    assert!(
        !html.contains("<script>"),
        "typed email not escaped: {html}"
    );
    assert!(
        html.contains("value=\"&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;@example.com\""),
        "attribute breakout: {html}"
    );

    let (jar, consent) = sign_in(&app, &login, TENANT, PASSWORD).await;
    let form = open_consent(&app, &jar, &consent).await;
    assert!(
        !form.html.contains("<script>"),
        "consent page: {}",
        form.html
    );
}

#[tokio::test]
async fn the_authorization_endpoint_accepts_post() {
    let env = setup("openid tenant:read", true).await;
    let app = &env.app;
    let req = AuthRequest::new(&env.client.id, CB, "openid");
    let form: Vec<(&str, &str)> = req
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let res = app.browser_post("/authorize", &form, &Jar::default()).await;
    expect_login_redirect(&res);
}

// ---------------------------------------------------------------------------------------
// 8. state and iss
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn state_is_echoed_exactly_and_iss_is_the_issuer() {
    let env = setup("openid tenant:read", true).await;
    let app = &env.app;
    let state = "a b&c=d+e%20f/?#ü";

    // On success.
    let req = AuthRequest::new(&env.client.id, CB, "openid").set("state", state);
    let (jar, _) = get_code(app, &req, TENANT, PASSWORD).await; // expect_code checks state & iss

    // On an error redirect.
    let bad = AuthRequest::new(&env.client.id, CB, "openid")
        .set("state", state)
        .set("response_type", "token");
    let res = authorize(app, &bad, &jar).await;
    let raw = location(&res).unwrap();
    assert!(
        !raw.contains("a b&c=d"),
        "state must be encoded in the Location: {raw}"
    );
    let q = expect_redirect_error(app, &res, &bad, "unsupported_response_type");
    assert_eq!(q["state"], state);
    assert_eq!(q["iss"], app.base);

    // A state that cannot be echoed safely is refused, and not echoed.
    for bad_state in ["line\nbreak".to_owned(), "x".repeat(2049)] {
        let bad = AuthRequest::new(&env.client.id, CB, "openid").set("state", &bad_state);
        let q = callback(&authorize(app, &bad, &jar).await, CB);
        assert_eq!(q["error"], "invalid_request", "{q:?}");
        assert!(!q.contains_key("state"), "{q:?}");
        assert!(!q.contains_key("code"), "{q:?}");
        assert_eq!(q["iss"], app.base);
    }
    // FAPI 2.0 SP §5.3.2.2 NOTE 4: states over 1000 characters occur.
    let long_ok = "y".repeat(2048);
    let req = AuthRequest::new(&env.client.id, CB, "openid").set("state", &long_ok);
    expect_code(app, &authorize(app, &req, &jar).await, &req);

    // No state: none comes back.
    let none = AuthRequest::new(&env.client.id, CB, "openid").without("state");
    let res = authorize(app, &none, &jar).await;
    let q = callback(&res, CB);
    assert!(q.contains_key("code"));
    assert!(!q.contains_key("state"), "{q:?}");
    assert_eq!(q["iss"], app.base);
}

// ---------------------------------------------------------------------------------------
// 9. CSRF
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn login_requires_the_csrf_cookie_and_a_matching_field() {
    let env = setup("openid tenant:read", true).await;
    let app = &env.app;
    let req = AuthRequest::new(&env.client.id, CB, "openid");
    let login = expect_login_redirect(&authorize(app, &req, &Jar::default()).await);
    let form = open_login(app, &login).await;

    let attempts: [(&str, LoginForm); 3] = [
        (
            "no CSRF cookie",
            LoginForm {
                jar: form.jar.without(CSRF),
                ..form.clone()
            },
        ),
        (
            "mismatching field",
            LoginForm {
                csrf: random_b64url(32),
                ..form.clone()
            },
        ),
        ("another token in the cookie", {
            let mut jar = form.jar.clone();
            jar.set(CSRF, &random_b64url(32));
            LoginForm {
                jar,
                ..form.clone()
            }
        }),
    ];
    for (what, attempt) in attempts {
        let res = submit_login(app, &attempt, TENANT, PASSWORD).await;
        assert_eq!(res.status(), 403, "{what}");
        assert!(location(&res).is_none(), "{what}");
        assert!(
            set_cookie_line(&res, SESSION).is_none(),
            "{what}: no session: {:?}",
            set_cookie_lines(&res)
        );
    }
    // The field missing altogether.
    let res = app
        .browser_post(
            "/login",
            &[
                ("req", &form.req),
                ("email", TENANT),
                ("password", PASSWORD),
            ],
            &form.jar,
        )
        .await;
    assert_eq!(res.status(), 403);
    assert!(set_cookie_line(&res, SESSION).is_none());

    // The genuine form still works (the refusals were for CSRF alone).
    let res = submit_login(app, &form, TENANT, PASSWORD).await;
    expect_consent_redirect(&res);
    assert!(set_cookie_line(&res, SESSION).is_some());
}

#[tokio::test]
async fn consent_post_with_a_wrong_csrf_is_forbidden_and_issues_no_code() {
    let env = setup("openid tenant:read", true).await;
    let app = &env.app;
    let req = AuthRequest::new(&env.client.id, CB, "openid tenant:read");
    let login = expect_login_redirect(&authorize(app, &req, &Jar::default()).await);
    let login_form = open_login(app, &login).await;
    let res = submit_login(app, &login_form, TENANT, PASSWORD).await;
    let consent = expect_consent_redirect(&res);
    let mut jar = Jar::default();
    jar.store(&res);
    let form = open_consent(app, &jar, &consent).await;

    for (what, csrf, jar) in [
        ("wrong token", random_b64url(32), jar.clone()),
        (
            "the login form's token",
            login_form.csrf.clone(),
            jar.clone(),
        ),
        ("no session", form.csrf.clone(), jar.without(SESSION)),
        ("empty token", String::new(), jar.clone()),
    ] {
        let forged = ConsentForm {
            csrf,
            ..form.clone()
        };
        let res = decide(app, &jar, &forged, "approve").await;
        assert_eq!(res.status(), 403, "{what}");
        assert!(location(&res).is_none(), "{what}: no redirect, no code");
    }

    // Nothing was remembered by the forged approvals.
    let other = AuthRequest::new(&env.client.id, CB, "openid tenant:read");
    expect_consent_redirect(&authorize(app, &other, &jar).await);

    // The genuine approval still works.
    let res = decide(app, &jar, &form, "approve").await;
    expect_code(app, &res, &req);
}

// ---------------------------------------------------------------------------------------
// 10. Login failures and throttling
// ---------------------------------------------------------------------------------------

/// The `role="alert"` message of a login page.
fn alert(html: &str) -> String {
    let start = html.find("role=\"alert\">").expect("an alert message") + "role=\"alert\">".len();
    let end = start + html[start..].find('<').unwrap();
    crate::helpers::html_unescape(&html[start..end])
}

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same() {
    let env = setup("openid tenant:read", true).await;
    let app = &env.app;
    let req = AuthRequest::new(&env.client.id, CB, "openid");
    let login = expect_login_redirect(&authorize(app, &req, &Jar::default()).await);
    let form = open_login(app, &login).await;

    let mut pages = Vec::new();
    for email in [TENANT, "nobody.here@example.com"] {
        let res = submit_login(app, &form, email, "Wrong-password-123").await;
        assert_eq!(res.status(), 401, "{email}");
        assert!(location(&res).is_none());
        assert!(set_cookie_line(&res, SESSION).is_none());
        let mut jar = Jar::default();
        jar.store(&res);
        let csrf = jar.get(CSRF).expect("a fresh CSRF cookie").to_owned();
        let html = text(res).await;
        assert_eq!(hidden_input(&html, "csrf").as_deref(), Some(csrf.as_str()));
        assert_eq!(alert(&html), "The email or password is incorrect.");
        // Apart from the CSRF token and the email typed back, the pages are identical.
        pages.push(html.replace(&csrf, "CSRF").replace(email, "EMAIL"));
    }
    assert_eq!(pages[0], pages[1]);
}

#[tokio::test]
async fn five_failures_lock_the_account_and_the_ip_limit_spans_accounts() {
    let env = setup("openid tenant:read", true).await;
    let app = &env.app;
    let other = "olga.other@example.com";
    app.create_user(other, "tenant", PASSWORD);
    let req = AuthRequest::new(&env.client.id, CB, "openid");
    let login = expect_login_redirect(&authorize(app, &req, &Jar::default()).await);
    let form = open_login(app, &login).await;

    for i in 1..=5 {
        let res = submit_login(app, &form, TENANT, "Wrong-password-123").await;
        assert_eq!(res.status(), 401, "failure {i}");
    }
    // The 6th attempt is refused before the password is even checked.
    let res = submit_login(app, &form, TENANT, PASSWORD).await;
    assert_eq!(res.status(), 429);
    assert!(set_cookie_line(&res, SESSION).is_none());
    let html = text(res).await;
    assert!(
        alert(&html).contains("Too many failed sign-in attempts"),
        "{html}"
    );
    // Case and spaces do not make it another account.
    let res = submit_login(app, &form, " Tina.Tenant@Example.COM ", PASSWORD).await;
    assert_eq!(res.status(), 429);

    // Another account from the same IP is unaffected (IP failures so far: 5).
    let res = submit_login(app, &form, other, PASSWORD).await;
    expect_consent_redirect(&res);

    // Failures spread over accounts count against the IP: 15 more reach its limit of 20.
    for i in 0..15 {
        let res = submit_login(
            app,
            &form,
            &format!("guess{i}@example.com"),
            "Wrong-password-123",
        )
        .await;
        assert_eq!(res.status(), 401, "IP failure {}", 6 + i);
    }
    let res = submit_login(app, &form, other, PASSWORD).await;
    assert_eq!(res.status(), 429, "the IP limit applies to every account");
    assert!(alert(&text(res).await).contains("Too many failed sign-in attempts"));
}

#[tokio::test]
async fn concurrent_guesses_cannot_exceed_the_account_limit() {
    let env = setup("openid tenant:read", true).await;
    let app = &env.app;
    let req = AuthRequest::new(&env.client.id, CB, "openid");
    let login = expect_login_redirect(&authorize(app, &req, &Jar::default()).await);
    let form = open_login(app, &login).await;

    let attempts = (0..16).map(|i| {
        let form = form.clone();
        async move {
            submit_login(app, &form, TENANT, &format!("Wrong-password-{i:03}"))
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures_join_all(attempts).await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert!(
        checked <= 5,
        "{checked} of 16 concurrent wrong passwords were checked against the account \
         (limit 5): {statuses:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 11. Page and cookie security
// ---------------------------------------------------------------------------------------

fn assert_page_headers(res: &reqwest::Response, what: &str) {
    let h = res.headers();
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert_eq!(h["cache-control"], "no-store", "{what}");
    assert!(
        h["content-type"].to_str().unwrap().starts_with("text/html"),
        "{what}"
    );
}

/// The attributes of a `Set-Cookie` line (after the name=value), lower-cased.
fn cookie_attributes(line: &str) -> Vec<String> {
    line.split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect()
}

#[tokio::test]
async fn login_and_consent_pages_have_security_headers_and_cookies() {
    let env = setup("openid tenant:read", true).await;
    let app = &env.app;
    let req = AuthRequest::new(&env.client.id, CB, "openid");
    let login = expect_login_redirect(&authorize(app, &req, &Jar::default()).await);

    let res = app.browser_get(&login, &Jar::default()).await;
    assert_page_headers(&res, "login page");
    let csrf_cookie = set_cookie_line(&res, CSRF).expect("CSRF cookie");
    let attrs = cookie_attributes(&csrf_cookie);
    assert!(attrs.contains(&"httponly".to_owned()), "{csrf_cookie}");
    assert!(
        attrs.contains(&"samesite=strict".to_owned()),
        "{csrf_cookie}"
    );
    assert!(attrs.contains(&"path=/".to_owned()), "{csrf_cookie}");
    assert!(
        !attrs.contains(&"secure".to_owned()),
        "http issuer: {csrf_cookie}"
    );
    let mut jar = Jar::default();
    jar.store(&res);
    let html = text(res).await;
    assert!(!html.contains("<script"), "no JavaScript on the login page");
    let form = LoginForm {
        jar,
        csrf: hidden_input(&html, "csrf").unwrap(),
        req: hidden_input(&html, "req").unwrap(),
    };

    let res = submit_login(app, &form, TENANT, PASSWORD).await;
    let session = set_cookie_line(&res, SESSION).expect("session cookie");
    let attrs = cookie_attributes(&session);
    assert!(attrs.contains(&"httponly".to_owned()), "{session}");
    assert!(attrs.contains(&"samesite=lax".to_owned()), "{session}");
    assert!(attrs.contains(&"path=/".to_owned()), "{session}");
    assert!(
        !attrs.contains(&"secure".to_owned()),
        "no Secure on an http issuer: {session}"
    );
    let consent = expect_consent_redirect(&res);
    let mut jar = form.jar.clone();
    jar.store(&res);

    let res = app.browser_get(&consent, &jar).await;
    assert_eq!(res.status(), 200);
    assert_page_headers(&res, "consent page");

    // A failed login re-renders the form with the same protections.
    let res = submit_login(app, &form, TENANT, "Wrong-password-123").await;
    assert_eq!(res.status(), 401);
    assert_page_headers(&res, "login page after a failure");

    // And the error pages.
    let bad = AuthRequest::new(&env.client.id, "https://evil.example/cb", "openid");
    let res = authorize(app, &bad, &Jar::default()).await;
    assert_page_headers(&res, "error page");

    // An unknown or answered req is an error page, not a form.
    let res = app
        .browser_get("/login?req=does-not-exist", &Jar::default())
        .await;
    assert_eq!(res.status(), 400);
    assert!(set_cookie_line(&res, CSRF).is_none());
}

// ---------------------------------------------------------------------------------------
// 12. Authorization request errors
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_client_credentials_client_cannot_start_the_code_flow() {
    let env = setup("openid tenant:read", true).await;
    let app = &env.app;
    // Such a client cannot register a redirect URI, so there is nowhere safe to send an
    // `unauthorized_client` error: an error page, and no redirect.
    let cc = app.create_client("property:read");
    let req = AuthRequest::new(&cc.id, CB, "property:read");
    let page = expect_error_page(authorize(app, &req, &Jar::default()).await).await;
    assert!(page.contains("not registered"), "{page}");
}

#[tokio::test]
async fn a_confidential_code_client_also_allowed_client_credentials_works() {
    let app = spawn_app().await;
    app.create_user(TENANT, "tenant", PASSWORD);
    let client =
        app.create_code_client("openid tenant:read", &[CB], false, &["client_credentials"]);
    let req = AuthRequest::new(&client.id, CB, "openid tenant:read");
    let (_, code) = get_code(&app, &req, TENANT, PASSWORD).await;
    assert_eq!(redeem_for(&app, &client, &code, &req).await.status(), 200);
    // Its client-credentials token is its own, not a user's.
    let token = app.access_token(&client.creds(), Some("tenant:read")).await;
    assert_eq!(jwt_part(&token, 1)["sub"], client.id.as_str());
}

#[tokio::test]
async fn bad_authorization_requests_are_redirected_with_an_error() {
    let env = setup("openid tenant:read", true).await;
    let app = &env.app;
    let base = AuthRequest::new(&env.client.id, CB, "openid");
    for (what, req, error) in [
        (
            "response_type=token",
            base.clone().set("response_type", "token"),
            "unsupported_response_type",
        ),
        (
            "response_type=id_token",
            base.clone().set("response_type", "id_token"),
            "unsupported_response_type",
        ),
        (
            "no response_type",
            base.clone().without("response_type"),
            "invalid_request",
        ),
        (
            "scope beyond the registration",
            base.clone().set("scope", "openid property:read"),
            "invalid_scope",
        ),
        (
            "unknown scope",
            base.clone().set("scope", "openid admin"),
            "invalid_scope",
        ),
        (
            "request object",
            base.clone().set("request", "eyJhbGciOiJub25lIn0.e30."),
            "invalid_request",
        ),
    ] {
        let res = authorize(app, &req, &Jar::default()).await;
        let q = callback(&res, CB);
        assert_eq!(
            q.get("error").map(String::as_str),
            Some(error),
            "{what}: {q:?}"
        );
        assert_eq!(q.get("state"), Some(&req.state), "{what}");
        assert_eq!(q.get("iss"), Some(&app.base), "{what}");
        assert!(!q.contains_key("code"), "{what}");
    }
    // A parameter given twice.
    let path = format!("{}&scope=openid", base.path());
    let res = app.browser_get(&path, &Jar::default()).await;
    assert_eq!(callback(&res, CB)["error"], "invalid_request");
}

// ---------------------------------------------------------------------------------------
// 13. Discovery
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn openid_configuration_describes_the_code_flow() {
    let app = spawn_app().await;
    let res = app.get("/.well-known/openid-configuration", None).await;
    assert_eq!(res.status(), 200);
    let doc = json(res).await;
    let base = app.base.as_str();
    assert_eq!(doc["issuer"], base);
    assert_eq!(doc["authorization_endpoint"], format!("{base}/authorize"));
    assert_eq!(doc["token_endpoint"], format!("{base}/token"));
    assert_eq!(doc["userinfo_endpoint"], format!("{base}/userinfo"));
    assert_eq!(doc["jwks_uri"], format!("{base}/jwks.json"));
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    assert!(doc["subject_types_supported"]
        .as_array()
        .is_some_and(|a| !a.is_empty()));
    assert!(doc["id_token_signing_alg_values_supported"]
        .as_array()
        .is_some_and(|a| a.iter().any(|v| v == "ES256")));
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    assert!(doc["grant_types_supported"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g == "authorization_code"));
    assert!(doc["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m == "none"));
    assert!(doc["scopes_supported"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == "openid"));

    // The endpoints it names answer.
    let res = app.get("/jwks.json", None).await;
    assert_eq!(res.status(), 200);
    let res = app.get("/userinfo", None).await;
    assert_eq!(res.status(), 401);
}

// ---------------------------------------------------------------------------------------
// 14. /userinfo is for users
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_client_credentials_token_gets_nothing_from_userinfo() {
    let app = spawn_app().await;
    // Without openid: the guard refuses it for lack of scope.
    let cc = app.create_client("property:read");
    let token = app.access_token(&cc, None).await;
    let res = app.get("/userinfo", Some(&token)).await;
    assert_eq!(res.status(), 403);
    assert!(www_authenticate(&res).contains("insufficient_scope"));

    // With openid in its registration: a valid token, but it belongs to no user.
    let cc = app.create_client("openid property:read");
    let token = app.access_token(&cc, None).await;
    let res = app.get("/userinfo", Some(&token)).await;
    assert_eq!(res.status(), 401);
    assert!(www_authenticate(&res).contains("invalid_token"));
    let body = json(res).await;
    assert_eq!(body["error"], "invalid_token");
    assert!(body.get("sub").is_none());
}
