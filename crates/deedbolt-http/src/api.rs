//! The PropTech resource API, behind `deedbolt-guard`.
//!
//! Every route here is mounted with a [`deedbolt_guard::RequireScopes`] layer, so a
//! handler only runs for a verified token with the route's scopes, and reads who is
//! calling from the [`Authorized`] extension the guard inserted.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use deedbolt_core::property::{NewProperty, Property, PropertyDraft};
use deedbolt_guard::Authorized;
use serde::Serialize;

use crate::error::ApiError;
use crate::state::AppState;
use crate::token::{has_content_type, read_body};

/// The default and largest page sizes of list endpoints.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 100;

/// A page of a list endpoint.
#[derive(Serialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

struct ListQuery {
    limit: u32,
    after: Option<i64>,
}

fn parse_list_query(raw: Option<&str>) -> Result<ListQuery, ApiError> {
    let mut q = ListQuery {
        limit: DEFAULT_LIMIT,
        after: None,
    };
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match &*k {
            "limit" => {
                q.limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!("limit must be between 1 and {MAX_LIMIT}"))
                    })?;
            }
            "cursor" => {
                q.after = Some(
                    v.parse::<i64>()
                        .ok()
                        .filter(|n| *n >= 0)
                        .ok_or_else(|| ApiError::BadRequest("malformed cursor".into()))?,
                );
            }
            _ => {}
        }
    }
    Ok(q)
}

/// `GET /api/properties` (scope `property:read`): properties by id, paginated by cursor.
pub async fn list_properties(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<Property>>, ApiError> {
    let q = parse_list_query(raw.as_deref())?;
    // One extra row tells whether there is a next page.
    let mut items = state
        .services
        .properties
        .list_properties(q.after, q.limit + 1)
        .await
        .map_err(ApiError::internal)?;
    let next_cursor = if items.len() > q.limit as usize {
        items.truncate(q.limit as usize);
        items.last().map(|p| p.id.to_string())
    } else {
        None
    };
    Ok(Json(Page { items, next_cursor }))
}

/// `GET /api/properties/{id}` (scope `property:read`).
pub async fn get_property(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            Json(
                serde_json::json!({"error": "not_found", "error_description": "no such property"}),
            ),
        )
            .into_response()
    };
    let Ok(id) = id.parse::<i64>() else {
        return Ok(not_found());
    };
    let found = state
        .services
        .properties
        .find_property(id)
        .await
        .map_err(ApiError::internal)?;
    Ok(match found {
        Some(p) => Json(p).into_response(),
        None => not_found(),
    })
}

/// `POST /api/properties` (scope `property:write`): creates a property from JSON.
pub async fn create_property(
    State(state): State<AppState>,
    Extension(auth): Extension<Authorized>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if !has_content_type(&headers, "application/json") {
        return Err(ApiError::UnsupportedMediaType("application/json"));
    }
    let body = read_body(&headers, body).await?;
    let draft: PropertyDraft = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON body: {e}")))?;
    let new = NewProperty::try_from(draft).map_err(ApiError::Validation)?;
    let created = state
        .services
        .properties
        .create_property(&new, &auth.claims.sub, state.services.clock.now())
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(property_id = created.id, client_id = %auth.claims.client_id, "property created");
    let location = HeaderValue::from_str(&format!("/api/properties/{}", created.id))
        .map_err(ApiError::internal)?;
    Ok((StatusCode::CREATED, [(LOCATION, location)], Json(created)).into_response())
}

/// `GET /userinfo` (OIDC Core §5.3), behind the guard with scope `openid`: claims about the
/// token's user, by the scopes the token carries.
pub async fn userinfo(
    State(state): State<AppState>,
    Extension(auth): Extension<Authorized>,
) -> Result<Response, ApiError> {
    use deedbolt_core::scope::Scope;
    let Ok(user_id) = deedbolt_core::ids::UserId::parse(&auth.claims.sub) else {
        return Ok(invalid_subject());
    };
    let Some(user) = state
        .services
        .users
        .find_user(&user_id)
        .await
        .map_err(ApiError::internal)?
    else {
        return Ok(invalid_subject());
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
    Ok((
        [(
            axum::http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        )],
        Json(body),
    )
        .into_response())
}

/// A valid token whose subject is not a user (a client-credentials token, or a deleted
/// user): RFC 6750 `invalid_token`.
fn invalid_subject() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(
            axum::http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static(
                "Bearer realm=\"deedbolt\", error=\"invalid_token\", error_description=\"the token does not belong to a user\"",
            ),
        )],
        Json(serde_json::json!({"error": "invalid_token", "error_description": "the token does not belong to a user"})),
    )
        .into_response()
}
