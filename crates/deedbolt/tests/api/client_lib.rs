//! The `deedbolt-client` library against the real server: discovery, the client-credentials
//! token cache, and the authorization-code flow with PKCE, OpenID Connect, refresh and
//! revocation, driven through the library with the browser steps (login, consent) done
//! over plain HTTP.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use deedbolt_client::{
    ClientCredentials, ClientError, IdTokenError, OAuthClient, PendingFlows, PkcePair, SealKey,
    Sealer, Secret, StateError, TokenCache, TokenSet, TokenTypeHint,
};

use crate::helpers::{spawn_app, CodeClient, Creds, Jar, TestApp};

const CB: &str = "https://app.example.com/cb";
const TENANT: &str = "tina.client-lib@example.com";
const PASSWORD: &str = "correct-horse-battery-7";
const SCOPE: &str = "openid tenant:read";

/// `deedbolt_tokens_issued_total` from `/metrics`, summed over the grant types.
async fn tokens_issued(app: &TestApp) -> u64 {
    let text = app.metrics_text().await;
    let values: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with("deedbolt_tokens_issued_total{"))
        .map(|l| {
            l.rsplit_once(' ')
                .and_then(|(_, v)| v.parse().ok())
                .expect("counter value")
        })
        .collect();
    assert!(!values.is_empty(), "no tokens counter in /metrics:\n{text}");
    values.iter().sum()
}

async fn discover(app: &TestApp, client_id: &str, credentials: ClientCredentials) -> OAuthClient {
    OAuthClient::discover(app.http.clone(), &app.base, client_id, credentials)
        .await
        .expect("discovery")
}

fn basic(creds: &Creds) -> ClientCredentials {
    ClientCredentials::SecretBasic(Secret::new(creds.secret.clone()))
}

fn code_credentials(client: &CodeClient) -> ClientCredentials {
    match &client.secret {
        Some(s) => ClientCredentials::SecretBasic(Secret::new(s.clone())),
        None => ClientCredentials::None,
    }
}

/// What the user does in the browser: follows `authorize_url`, logs in as `email`, and
/// answers the consent page with `decision`. Returns the query of the redirect back to
/// the client.
async fn browser_sign_in(
    app: &TestApp,
    authorize_url: &url::Url,
    email: &str,
    password: &str,
    decision: &str,
) -> String {
    let callback = app
        .sign_in_through_pages(
            authorize_url.as_str(),
            email,
            password,
            decision,
            &mut Jar::default(),
        )
        .await;
    assert!(callback.starts_with(CB), "back at the client: {callback}");
    url::Url::parse(&callback)
        .expect("callback URL")
        .query()
        .unwrap_or("")
        .to_owned()
}

/// A signed-in tenant: the server, the user id, the library client and the flow's tokens
/// (after the ID token was verified with the flow's nonce), plus that nonce.
struct SignedIn {
    app: TestApp,
    user_id: String,
    client: OAuthClient,
    tokens: TokenSet,
    nonce: String,
}

/// The whole authorization-code flow through the library, for a confidential client or
/// (with `public`) a public one.
async fn sign_in(public: bool) -> SignedIn {
    let app = spawn_app().await;
    let user_id = app.create_user(TENANT, "tenant", PASSWORD);
    let registered = app.create_code_client(SCOPE, &[CB], public, &["refresh_token"]);
    let client = discover(&app, &registered.id, code_credentials(&registered)).await;

    let flows: PendingFlows<PkcePair> = PendingFlows::new();
    let pkce = PkcePair::generate().expect("pkce");
    let begun = flows.begin(pkce.clone()).expect("begin");
    let url = client.authorization_url(CB, SCOPE, &begun.state, Some(&begun.nonce), &pkce);

    let query = browser_sign_in(&app, &url, TENANT, PASSWORD, "approve").await;
    let response = client
        .parse_callback(&query)
        .expect("callback with iss, code, state");
    assert_eq!(response.state, begun.state);
    let pending = flows.take(&response.state).expect("the flow is pending");
    assert_eq!(
        flows.take(&response.state).unwrap_err(),
        StateError::Unknown,
        "a state is taken once"
    );

    let tokens = client
        .exchange_code(response.code.expose(), CB, &pending.payload)
        .await
        .expect("code exchange");
    assert!(tokens.token_type.eq_ignore_ascii_case("bearer"));
    assert!(
        tokens.refresh_token.is_some(),
        "refresh_token grant registered"
    );
    assert!(tokens.expires_at > SystemTime::now());
    let id_token = tokens
        .id_token
        .as_deref()
        .expect("openid gives an ID token");
    let claims = client
        .verify_id_token(id_token, &pending.nonce, SystemTime::now())
        .await
        .expect("ID token verifies");
    assert_eq!(claims.sub, user_id);
    assert_eq!(claims.iss, app.base);
    assert_eq!(claims.aud, vec![registered.id.clone()]);
    assert_eq!(claims.nonce.as_deref(), Some(pending.nonce.as_str()));

    SignedIn {
        app,
        user_id,
        client,
        tokens,
        nonce: pending.nonce,
    }
}

#[tokio::test]
async fn discovery_reads_this_servers_metadata() {
    let app = spawn_app().await;
    let client = discover(&app, "dbc_whoever", ClientCredentials::None).await;
    let config = client.config();
    assert_eq!(config.issuer, app.base);
    assert_eq!(
        config.authorization_endpoint.as_str(),
        format!("{}/authorize", app.base)
    );
    assert_eq!(
        config.token_endpoint.as_str(),
        format!("{}/token", app.base)
    );
    assert_eq!(
        config.revocation_endpoint.as_ref().map(|u| u.as_str()),
        Some(format!("{}/revoke", app.base).as_str())
    );
    assert_eq!(
        config.jwks_uri.as_ref().map(|u| u.as_str()),
        Some(format!("{}/jwks.json", app.base).as_str())
    );
    assert!(config.authorization_response_iss_parameter_supported);
    assert!(!client.jwks().await.expect("JWKS").keys.is_empty());
}

#[tokio::test]
async fn discovery_refuses_an_issuer_that_differs_even_by_a_slash() {
    let app = spawn_app().await;
    let with_slash = format!("{}/", app.base);
    let err = OAuthClient::discover(app.http.clone(), &with_slash, "x", ClientCredentials::None)
        .await
        .expect_err("issuer mismatch");
    match err {
        ClientError::IssuerMismatch { expected, found } => {
            assert_eq!(expected, with_slash);
            assert_eq!(found.as_deref(), Some(app.base.as_str()));
        }
        other => panic!("expected IssuerMismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn cached_client_credentials_token_is_fetched_once() {
    let app = spawn_app().await;
    let creds = app.create_client("property:read");
    let client = discover(&app, &creds.id, basic(&creds)).await;
    let cache = TokenCache::client_credentials(client, Some("property:read"));

    let before = tokens_issued(&app).await;
    let first = cache.get().await.expect("token");
    let second = cache.get().await.expect("token");
    assert_eq!(first.access_token.expose(), second.access_token.expose());
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(tokens_issued(&app).await, before + 1, "one token request");
    assert_eq!(first.scope.as_deref(), Some("property:read"));

    // The token works at the API.
    let res = app
        .get("/api/properties", Some(first.access_token.expose()))
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn concurrent_cache_callers_share_one_token_request() {
    let app = spawn_app().await;
    let creds = app.create_client("property:read");
    let client = discover(&app, &creds.id, basic(&creds)).await;
    let cache = Arc::new(TokenCache::client_credentials(client, None));

    let before = tokens_issued(&app).await;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get().await.expect("token") })
        })
        .collect();
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.expect("task"));
    }
    assert!(tokens
        .iter()
        .all(|t| t.access_token.expose() == tokens[0].access_token.expose()));
    assert_eq!(tokens_issued(&app).await, before + 1, "one token request");
}

#[tokio::test]
async fn client_secret_post_works_too() {
    let app = spawn_app().await;
    let creds = app.create_client("property:read financial:read");
    let client = discover(
        &app,
        &creds.id,
        ClientCredentials::SecretPost(Secret::new(creds.secret.clone())),
    )
    .await;
    let tokens = client
        .client_credentials(Some("financial:read"))
        .await
        .expect("token");
    assert_eq!(tokens.scope.as_deref(), Some("financial:read"));
    assert!(tokens.refresh_token.is_none());
}

#[tokio::test]
async fn wrong_secret_is_invalid_client() {
    let app = spawn_app().await;
    let creds = app.create_client("property:read");
    for credentials in [
        ClientCredentials::SecretBasic(Secret::new("dbs_wrong")),
        ClientCredentials::SecretPost(Secret::new("dbs_wrong")),
    ] {
        let client = discover(&app, &creds.id, credentials).await;
        match client.client_credentials(None).await {
            Err(ClientError::OAuth { error, status, .. }) => {
                assert_eq!(error, "invalid_client");
                assert_eq!(status, 401);
            }
            other => panic!("expected invalid_client, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn asking_for_more_scope_than_registered_is_invalid_scope() {
    let app = spawn_app().await;
    let creds = app.create_client("property:read");
    let client = discover(&app, &creds.id, basic(&creds)).await;
    let err = client
        .client_credentials(Some("property:write"))
        .await
        .expect_err("refused");
    assert_eq!(err.oauth_error(), Some("invalid_scope"));
}

#[tokio::test]
async fn code_flow_refresh_and_revocation_through_the_library() {
    let SignedIn {
        app,
        client,
        tokens,
        ..
    } = sign_in(false).await;

    // The access token works at the API (tenant:read is enough for userinfo's sub).
    let res = app
        .get("/userinfo", Some(tokens.access_token.expose()))
        .await;
    assert_eq!(res.status(), 200);

    // Refresh: a new access token and (rotation) a new refresh token; scope and ID token
    // carried over.
    let refreshed = client.refresh(&tokens).await.expect("refresh");
    assert_ne!(
        refreshed.access_token.expose(),
        tokens.access_token.expose()
    );
    let (old_rt, new_rt) = (
        tokens.refresh_token.as_ref().expect("rt"),
        refreshed.refresh_token.as_ref().expect("rotated rt"),
    );
    assert_ne!(old_rt.expose(), new_rt.expose(), "refresh tokens rotate");
    assert!(refreshed.scope.is_some());
    assert!(refreshed.id_token.is_some());

    // Not due yet: refresh_if_needed does nothing; due: it refreshes.
    let now = SystemTime::now();
    assert!(client
        .refresh_if_needed(&refreshed, now, Duration::from_secs(60))
        .await
        .expect("no-op")
        .is_none());
    let again = client
        .refresh_if_needed(&refreshed, now, Duration::from_secs(24 * 3600))
        .await
        .expect("refresh")
        .expect("refreshed because within skew");

    // Revoke the current refresh token: refreshing with it is now invalid_grant.
    let current_rt = again.refresh_token.as_ref().expect("rt");
    client
        .revoke(current_rt, TokenTypeHint::RefreshToken)
        .await
        .expect("revoke");
    match client.refresh(&again).await {
        Err(ClientError::OAuth { error, status, .. }) => {
            assert_eq!(error, "invalid_grant");
            assert_eq!(status, 400);
        }
        other => panic!("expected invalid_grant, got {other:?}"),
    }
}

#[tokio::test]
async fn id_token_with_the_wrong_nonce_is_rejected() {
    let SignedIn {
        client,
        tokens,
        nonce,
        app: _app, // keeps the server running
        ..
    } = sign_in(false).await;
    let id_token = tokens.id_token.as_deref().expect("ID token");
    let mut wrong = nonce.clone();
    wrong.replace_range(0..1, if nonce.starts_with('A') { "B" } else { "A" });
    let err = client
        .verify_id_token(id_token, &wrong, SystemTime::now())
        .await
        .expect_err("wrong nonce");
    assert!(
        matches!(err, ClientError::IdToken(IdTokenError::Nonce)),
        "{err:?}"
    );
    // And an expired one, by the caller's clock.
    let later = SystemTime::now() + Duration::from_secs(24 * 3600);
    let err = client
        .verify_id_token(id_token, &nonce, later)
        .await
        .expect_err("expired");
    assert!(
        matches!(err, ClientError::IdToken(IdTokenError::Expired)),
        "{err:?}"
    );
}

#[tokio::test]
async fn public_client_flow_needs_no_secret() {
    let SignedIn {
        client,
        tokens,
        user_id,
        app: _app, // keeps the server running
        ..
    } = sign_in(true).await;
    assert!(!user_id.is_empty());
    let refreshed = client.refresh(&tokens).await.expect("public refresh");
    client
        .revoke(
            refreshed.refresh_token.as_ref().expect("rt"),
            TokenTypeHint::RefreshToken,
        )
        .await
        .expect("revoke");
    let err = client.refresh(&refreshed).await.expect_err("revoked");
    assert_eq!(err.oauth_error(), Some("invalid_grant"));
}

#[tokio::test]
async fn a_code_is_redeemed_once_and_only_with_its_verifier() {
    let app = spawn_app().await;
    app.create_user(TENANT, "tenant", PASSWORD);
    let registered = app.create_code_client(SCOPE, &[CB], false, &[]);
    let client = discover(&app, &registered.id, code_credentials(&registered)).await;

    let pkce = PkcePair::generate().expect("pkce");
    let url = client.authorization_url(CB, SCOPE, "st-1", Some("n-1"), &pkce);
    let query = browser_sign_in(&app, &url, TENANT, PASSWORD, "approve").await;
    let response = client.parse_callback(&query).expect("callback");

    let other = PkcePair::generate().expect("pkce");
    let err = client
        .exchange_code(response.code.expose(), CB, &other)
        .await
        .expect_err("wrong verifier");
    assert_eq!(err.oauth_error(), Some("invalid_grant"));
    // The failed attempt changed nothing (RFC 9700 §4.5): the right verifier redeems it…
    client
        .exchange_code(response.code.expose(), CB, &pkce)
        .await
        .expect("the right verifier");
    // …once (single use).
    let err = client
        .exchange_code(response.code.expose(), CB, &pkce)
        .await
        .expect_err("code already used");
    assert_eq!(err.oauth_error(), Some("invalid_grant"));
}

#[tokio::test]
async fn a_declined_consent_is_an_authorization_error_with_the_state() {
    let app = spawn_app().await;
    app.create_user(TENANT, "tenant", PASSWORD);
    let registered = app.create_code_client(SCOPE, &[CB], true, &[]);
    let client = discover(&app, &registered.id, code_credentials(&registered)).await;
    let pkce = PkcePair::generate().expect("pkce");
    let url = client.authorization_url(CB, SCOPE, "st-deny", None, &pkce);
    let query = browser_sign_in(&app, &url, TENANT, PASSWORD, "deny").await;
    match client.parse_callback(&query) {
        Err(ClientError::Authorization { error, state, .. }) => {
            assert_eq!(error, "access_denied");
            assert_eq!(state.as_deref(), Some("st-deny"));
        }
        other => panic!("expected access_denied, got {other:?}"),
    }
}

#[tokio::test]
async fn tokens_from_the_server_survive_sealing() {
    let SignedIn {
        tokens,
        app: _app, // keeps the server running
        ..
    } = sign_in(true).await;
    let sealer = Sealer::new(vec![SealKey::generate("k1").expect("key")]).expect("sealer");
    let sealed = sealer
        .seal_json(b"deedbolt_bff_tokens", &tokens)
        .expect("seal");
    assert!(!sealed.contains(tokens.access_token.expose()));
    let opened: TokenSet = sealer
        .open_json(b"deedbolt_bff_tokens", &sealed)
        .expect("open");
    assert_eq!(opened.access_token.expose(), tokens.access_token.expose());
    assert_eq!(opened.refresh_token, tokens.refresh_token);
    assert!(sealer
        .open_json::<TokenSet>(b"another_cookie", &sealed)
        .is_err());
}
