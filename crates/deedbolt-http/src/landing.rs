//! `GET /`: the landing page a first visitor sees, linking what there is to look at: the
//! discovery documents, the signing keys, the demo app, the admin console and the API
//! reference.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use crate::state::AppState;
use crate::web::pages::{escape, page};

/// `GET /`: the landing page.
#[tracing::instrument(skip_all)]
pub async fn landing(State(state): State<AppState>) -> Response {
    let issuer = escape(&state.services.policy.issuer);
    let app = if state.bff.is_some() {
        "<li><a href=\"/app\" id=\"link-app\">Demo app</a>: sign in as a tenant or a property \
         manager and see their tenancies, balances and maintenance requests.</li>"
    } else {
        "<li><a href=\"/app\" id=\"link-app\">Demo app</a> <span class=\"muted\">(not enabled \
         on this server; start it with <code>deedbolt serve --demo</code>)</span></li>"
    };
    page(
        StatusCode::OK,
        "deedbolt",
        &format!(
            "<h1>deedbolt</h1>\
             <p>An OAuth 2.0 authorization server and a property-management API, running at \
             <code>{issuer}</code>.</p>\
             <h2>Try it</h2><ul class=\"links\">{app}\
             <li><a href=\"/admin\" id=\"link-admin\">Admin console</a>: the security audit log \
             and alerts (administrators).</li></ul>\
             <h2>For developers</h2><ul class=\"links\">\
             <li><a href=\"/.well-known/openid-configuration\" id=\"link-discovery\">OpenID \
             Connect discovery</a> and <a href=\"/.well-known/oauth-authorization-server\">OAuth \
             server metadata</a> (RFC 8414)</li>\
             <li><a href=\"/jwks.json\" id=\"link-jwks\">Signing keys (JWKS)</a></li>\
             <li><a href=\"/api/openapi.json\" id=\"link-openapi\">API reference (OpenAPI)</a>\
             </li></ul>\
             <p class=\"muted\">Documentation: the README and <code>docs/</code> in the deedbolt \
             repository; <code>deedbolt --help</code> for the command line.</p>"
        ),
    )
}
