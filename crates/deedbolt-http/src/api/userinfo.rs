//! OpenID Connect `/userinfo`, behind `deedbolt-guard` (the PropTech API is in
//! [`crate::api::crm`]).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use deedbolt_guard::Authorized;

use crate::error::ApiError;
use crate::state::AppState;
use crate::web::no_store::no_store_json;

/// `GET /userinfo` (OIDC Core §5.3), behind the guard with scope `openid`: claims about the
/// token's user, by the scopes the token carries.
#[tracing::instrument(skip_all, fields(client_id = %auth.claims.client_id))]
pub async fn userinfo(
    State(state): State<AppState>,
    Extension(auth): Extension<Authorized>,
) -> Result<Response, ApiError> {
    use deedbolt_core::scope::Scope;
    let Ok(user_id) = deedbolt_core::ids::UserId::parse(&auth.claims.sub) else {
        return Err(ApiError::InvalidSubject(NOT_A_USER));
    };
    let Some(user) = state.services.users.find_user(&user_id).await? else {
        return Err(ApiError::InvalidSubject(NOT_A_USER));
    };
    let mut body = serde_json::json!({ "sub": user.id });
    if auth.claims.scope.contains(Scope::Email) {
        body["email"] = serde_json::json!(user.email);
        // Addresses are registered by an operator, not confirmed by mail.
        body["email_verified"] = serde_json::json!(false);
    }
    if auth.claims.scope.contains(Scope::Profile) {
        if let Some(name) = &user.name {
            body["name"] = serde_json::json!(name);
        }
    }
    Ok(no_store_json(StatusCode::OK, body))
}

/// A valid token whose subject is not a user (a client-credentials token, or a deleted
/// user).
const NOT_A_USER: &str = "the token does not belong to a user";
