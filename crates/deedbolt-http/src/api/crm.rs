//! The PropTech resource API (properties, tenants, the ledger, maintenance requests).
//!
//! Every route is mounted from the table in [`routes`] behind the guard, so a handler runs
//! only for a verified token with the operation's scopes. Which *records* that token
//! reaches is decided once per request by the [`Caller`] extractor, which turns the token
//! into a [`Viewer`]; the store applies the viewer inside every query. Handlers never
//! filter by hand, so a record outside the caller's reach answers 404 exactly like a
//! record that does not exist.

use axum::extract::{FromRequest, FromRequestParts, Path, RawQuery, Request, State};
use axum::http::header::LOCATION;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use deedbolt_core::ids::UserId;
use deedbolt_core::scope::Scope;
use deedbolt_core::user::Role;
use deedbolt_guard::Authorized;
use deedbolt_proptech::ledger::{self, Balance, EntryDraft, EntryFilter, LedgerEntry, NewEntry};
use deedbolt_proptech::list::{ListParams, ListSpec, Page};
use deedbolt_proptech::maintenance::{
    self, MaintenanceRequest, NewRequest, RequestDraft, RequestFilter, RequestUpdate,
    RequestUpdateDraft,
};
use deedbolt_proptech::property::{
    self, NewProperty, Property, PropertyChanges, PropertyDraft, PropertyFilter,
};
use deedbolt_proptech::store::Write;
use deedbolt_proptech::tenant::{
    self, NewTenant, Tenant, TenantChanges, TenantDraft, TenantFilter,
};
use deedbolt_proptech::{FieldError, Viewer};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::openapi::{schema, Api, Need, Op};
use crate::error::ApiError;
use crate::state::AppState;
use crate::web::form::{has_content_type, read_body};

/// Who is calling, as the CRM sees it: the token's subject and the records it may reach.
#[derive(Clone, Debug)]
pub struct Caller {
    /// What the token may see.
    pub viewer: Viewer,
    /// The token's `sub` (recorded as `created_by`).
    pub sub: String,
    /// The token's client.
    pub client_id: deedbolt_core::ids::ClientId,
    /// The user the token acts for, if any.
    pub user: Option<UserId>,
}

impl Caller {
    /// Records a change in the audit log: who (client, user) and what (ids and kinds only).
    async fn audit(&self, state: &AppState, what: String) {
        let mut record = deedbolt_core::audit::AuditRecord::new(
            deedbolt_core::audit::AuditKind::RecordChanged,
            true,
            state.services.clock.now(),
        )
        .client(&self.client_id)
        .detail(what);
        if let Some(u) = &self.user {
            record = record.user(u);
        }
        state.services.audit.record(record).await;
    }

    /// Refuses tenants: only staff (managers, administrators, machine clients) change
    /// records. Tenants cannot hold the write scopes anyway (their role cannot delegate
    /// them); this is the second lock.
    fn require_staff(&self) -> Result<(), ApiError> {
        if self.viewer.is_staff() {
            Ok(())
        } else {
            Err(ApiError::Forbidden("tenants cannot change this"))
        }
    }
}

/// The one place where a token becomes a [`Viewer`]: a client-credentials token (its
/// subject is the client itself) sees the portfolio its registered scopes allow; a user's
/// token sees what the user's role binds it to.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let auth = parts
            .extensions
            .get::<Authorized>()
            .cloned()
            .ok_or_else(|| ApiError::internal(MissingGuard))?;
        let claims = &auth.claims;
        let sub = claims.sub.clone();
        let client_id = claims.client_id.clone();
        if claims.is_client_token() {
            // The client's own token: its registration decides (read through the client
            // cache, so no query on the hot path). A deleted client's tokens reach nothing.
            let client = state
                .services
                .clients
                .find_client(&client_id)
                .await?
                .ok_or(ApiError::InvalidSubject(GONE))?;
            let viewer = match &client.properties {
                None => Viewer::Portfolio,
                Some(ids) => Viewer::Properties { ids: ids.clone() },
            };
            return Ok(Caller {
                viewer,
                sub,
                client_id,
                user: None,
            });
        }
        let user_id = UserId::parse(&claims.sub).map_err(|_| ApiError::InvalidSubject(GONE))?;
        let user = state
            .services
            .users
            .find_user(&user_id)
            .await?
            .ok_or(ApiError::InvalidSubject(GONE))?;
        let viewer = match user.role {
            Role::Admin => Viewer::Portfolio,
            Role::Manager => Viewer::Manager {
                user: user_id.clone(),
            },
            Role::Tenant => Viewer::Tenant {
                user: user_id.clone(),
            },
        };
        Ok(Caller {
            viewer,
            sub,
            client_id,
            user: Some(user_id),
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("a CRM route was mounted without the guard")]
struct MissingGuard;

/// A JSON request body of type `T` (a draft whose fields are all optional):
/// `application/json`, within the size limit; a syntax error is 400. A field of the wrong
/// JSON type (or an unknown field) does not stop the other fields from being read: it is
/// kept as an error and reported (422) together with the draft's own rule violations, so
/// a client sees every bad field at once.
pub struct JsonBody<T> {
    draft: T,
    type_errors: Vec<FieldError>,
}

impl<T> std::fmt::Debug for JsonBody<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonBody")
            .field("type_errors", &self.type_errors.len())
            .finish_non_exhaustive()
    }
}

impl<T> JsonBody<T> {
    /// Validates the draft into `N`; type errors and rule violations are reported
    /// together, one per field (a type error replaces the field's "is required").
    pub fn validate<N>(self) -> Result<N, ApiError>
    where
        N: TryFrom<T, Error = Vec<FieldError>>,
    {
        let typed = self.type_errors;
        match N::try_from(self.draft) {
            Ok(n) if typed.is_empty() => Ok(n),
            Ok(_) => Err(ApiError::Validation(typed)),
            Err(rules) => {
                let mut merged: Vec<FieldError> = rules
                    .into_iter()
                    // "must change at least one field" is moot when a field was sent
                    // but had the wrong type.
                    .filter(|e| typed.is_empty() || e.field != "body")
                    .map(|e| {
                        typed
                            .iter()
                            .find(|t| t.field == e.field)
                            .cloned()
                            .unwrap_or(e)
                    })
                    .collect();
                // A set, not a scan per error: a body may carry thousands of bad fields.
                let mut seen: std::collections::HashSet<String> =
                    merged.iter().map(|m| m.field.clone()).collect();
                for t in typed {
                    if seen.insert(t.field.clone()) {
                        merged.push(t);
                    }
                }
                Err(ApiError::Validation(merged))
            }
        }
    }
}

/// serde_json's message without its " at line L column C" suffix.
fn serde_message(e: &serde_json::Error) -> String {
    let m = e.to_string();
    m.rfind(" at line ")
        .map_or(m.clone(), |i| m[..i].to_owned())
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &AppState) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        if !has_content_type(&parts.headers, "application/json") {
            return Err(ApiError::UnsupportedMediaType("application/json"));
        }
        let bytes = read_body(&parts.headers, body).await?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|_| ApiError::BadRequest("malformed JSON body".into()))?;
        let Value::Object(mut map) = value else {
            return Err(ApiError::Validation(vec![FieldError::new(
                "body",
                "must be a JSON object",
            )]));
        };
        if let Ok(draft) = T::deserialize(&Value::Object(map.clone())) {
            return Ok(JsonBody {
                draft,
                type_errors: Vec::new(),
            });
        }
        // Find the fields that fail on their own (wrong type, unknown field), set them
        // aside, and read the rest.
        let mut type_errors = Vec::new();
        let keys: Vec<String> = map.keys().cloned().collect();
        for key in keys {
            let Some(v) = map.get(&key) else { continue };
            let single = Value::Object([(key.clone(), v.clone())].into_iter().collect());
            if let Err(e) = T::deserialize(&single) {
                type_errors.push(FieldError::new(key.clone(), serde_message(&e)));
                map.remove(&key);
            }
        }
        match T::deserialize(&Value::Object(map)) {
            Ok(draft) => Ok(JsonBody { draft, type_errors }),
            Err(e) => {
                type_errors.push(FieldError::new("body", serde_message(&e)));
                Err(ApiError::Validation(type_errors))
            }
        }
    }
}

fn list_params(raw: Option<&str>, spec: &ListSpec) -> Result<ListParams, ApiError> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    spec.parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(ApiError::Validation)
}

/// A path id; anything but a positive integer is a 404 like an unknown id.
fn path_id(raw: &str, what: &'static str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or(ApiError::NotFound(what))
}

fn created<T: serde::Serialize>(location: String, value: &T) -> Result<Response, ApiError> {
    let location = HeaderValue::from_str(&location).map_err(ApiError::internal)?;
    Ok((StatusCode::CREATED, [(LOCATION, location)], Json(value)).into_response())
}

/// A looked-up record as JSON, or 404 (absent and invisible alike).
fn found<T>(
    r: Result<Option<T>, deedbolt_core::ports::StoreError>,
    what: &'static str,
) -> Result<Json<T>, ApiError> {
    r?.map(Json).ok_or(ApiError::NotFound(what))
}

fn written<T>(w: Write<T>, what: &'static str) -> Result<T, ApiError> {
    match w {
        Write::Done(v) => Ok(v),
        Write::NotFound => Err(ApiError::NotFound(what)),
        Write::Invalid(e) => Err(ApiError::Validation(vec![e])),
    }
}

/// The token verified, but its user or client has since been deleted.
const GONE: &str = "the token's user or client no longer exists";
const NO_PROPERTY: &str = "no such property";
const NO_TENANT: &str = "no such tenant";
const NO_REQUEST: &str = "no such maintenance request";
const NO_ENTRY: &str = "no such ledger entry";

/// Checks that `manager` is a user with role manager.
async fn check_manager(state: &AppState, manager: &UserId) -> Result<(), ApiError> {
    let user = state.services.users.find_user(manager).await?;
    match user {
        Some(u) if u.role == Role::Manager => Ok(()),
        _ => Err(ApiError::Validation(vec![FieldError::new(
            "manager_id",
            "must be the id of a user with role manager",
        )])),
    }
}

// ----- properties ------------------------------------------------------------------------

#[tracing::instrument(skip_all, fields(client_id = %caller.client_id))]
async fn list_properties(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<Property>>, ApiError> {
    let params = list_params(raw.as_deref(), &property::LIST)?;
    let filter = PropertyFilter::from_params(&params).map_err(ApiError::Validation)?;
    let rows = state
        .services
        .crm
        .list_properties(&caller.viewer, &params, &filter)
        .await?;
    Ok(Json(Page::from_rows(rows, &params)))
}

#[tracing::instrument(skip_all, fields(client_id = %caller.client_id))]
async fn get_property(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Property>, ApiError> {
    let id = path_id(&id, NO_PROPERTY)?;
    found(
        state.services.crm.find_property(&caller.viewer, id).await,
        NO_PROPERTY,
    )
}

#[tracing::instrument(skip_all, fields(client_id = %caller.client_id))]
async fn create_property(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody<PropertyDraft>,
) -> Result<Response, ApiError> {
    caller.require_staff()?;
    let mut new: NewProperty = body.validate()?;
    match &caller.viewer {
        Viewer::Properties { .. } => {
            return Err(ApiError::Forbidden(
                "a client registered for some properties cannot create properties",
            ))
        }
        // A manager's new property is theirs.
        Viewer::Manager { user } => match &new.manager_id {
            Some(m) if m != user => {
                return Err(ApiError::Validation(vec![FieldError::new(
                    "manager_id",
                    "a manager can only create properties they manage",
                )]))
            }
            _ => new.manager_id = Some(user.clone()),
        },
        _ => {
            if let Some(m) = &new.manager_id {
                check_manager(&state, m).await?;
            }
        }
    }
    let p = state
        .services
        .crm
        .create_property(&new, &caller.sub, state.services.clock.now())
        .await?;
    caller
        .audit(&state, format!("property {} created", p.id))
        .await;
    created(format!("/api/properties/{}", p.id), &p)
}

#[tracing::instrument(skip_all, fields(client_id = %caller.client_id))]
async fn update_property(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody<PropertyDraft>,
) -> Result<Json<Property>, ApiError> {
    caller.require_staff()?;
    let id = path_id(&id, NO_PROPERTY)?;
    let changes: PropertyChanges = body.validate()?;
    if let Some(m) = &changes.manager_id {
        if !caller.viewer.is_portfolio() {
            return Err(ApiError::Validation(vec![FieldError::new(
                "manager_id",
                "only an administrator or a machine client can reassign a property",
            )]));
        }
        check_manager(&state, m).await?;
    }
    let w = state
        .services
        .crm
        .update_property(&caller.viewer, id, &changes)
        .await?;
    let p = written(w, NO_PROPERTY)?;
    caller.audit(&state, format!("property {id} changed")).await;
    Ok(Json(p))
}

// ----- tenants ---------------------------------------------------------------------------

#[tracing::instrument(skip_all, fields(client_id = %caller.client_id))]
async fn list_tenants(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<Tenant>>, ApiError> {
    let params = list_params(raw.as_deref(), &tenant::LIST)?;
    let filter = TenantFilter::from_params(&params).map_err(ApiError::Validation)?;
    let rows = state
        .services
        .crm
        .list_tenants(&caller.viewer, &params, &filter)
        .await?;
    Ok(Json(Page::from_rows(rows, &params)))
}

#[tracing::instrument(skip_all, fields(client_id = %caller.client_id))]
async fn get_tenant(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Tenant>, ApiError> {
    let id = path_id(&id, NO_TENANT)?;
    found(
        state.services.crm.find_tenant(&caller.viewer, id).await,
        NO_TENANT,
    )
}

#[tracing::instrument(skip_all, fields(client_id = %caller.client_id))]
async fn create_tenant(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody<TenantDraft>,
) -> Result<Response, ApiError> {
    caller.require_staff()?;
    let new: NewTenant = body.validate()?;
    let w = state
        .services
        .crm
        .create_tenant(&caller.viewer, &new, state.services.clock.now())
        .await?;
    let t = written(w, NO_TENANT)?;
    caller
        .audit(&state, format!("tenant {} created", t.id))
        .await;
    created(format!("/api/tenants/{}", t.id), &t)
}

#[tracing::instrument(skip_all, fields(client_id = %caller.client_id))]
async fn update_tenant(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody<TenantDraft>,
) -> Result<Json<Tenant>, ApiError> {
    caller.require_staff()?;
    let id = path_id(&id, NO_TENANT)?;
    let changes: TenantChanges = body.validate()?;
    let w = state
        .services
        .crm
        .update_tenant(&caller.viewer, id, &changes)
        .await?;
    let t = written(w, NO_TENANT)?;
    caller.audit(&state, format!("tenant {id} changed")).await;
    Ok(Json(t))
}

// ----- ledger ----------------------------------------------------------------------------

#[tracing::instrument(skip_all, fields(client_id = %caller.client_id))]
async fn list_entries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<LedgerEntry>>, ApiError> {
    let id = path_id(&id, NO_TENANT)?;
    let params = list_params(raw.as_deref(), &ledger::LIST)?;
    let filter = EntryFilter::from_params(&params).map_err(ApiError::Validation)?;
    let rows = state
        .services
        .crm
        .list_entries(&caller.viewer, id, &params, &filter)
        .await?
        .ok_or(ApiError::NotFound(NO_TENANT))?;
    Ok(Json(Page::from_rows(rows, &params)))
}

#[tracing::instrument(skip_all, fields(client_id = %caller.client_id))]
async fn add_entry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody<EntryDraft>,
) -> Result<Response, ApiError> {
    caller.require_staff()?;
    let id = path_id(&id, NO_TENANT)?;
    let new: NewEntry = body.validate()?;
    let w = state
        .services
        .crm
        .add_entry(
            &caller.viewer,
            id,
            &new,
            &caller.sub,
            state.services.clock.now(),
        )
        .await?;
    let e = written(w, NO_TENANT)?;
    caller
        .audit(
            &state,
            format!(
                "ledger entry {} ({}) for tenant {id}",
                e.id,
                e.kind.as_str()
            ),
        )
        .await;
    created(format!("/api/tenants/{id}/ledger/{}", e.id), &e)
}

#[tracing::instrument(skip_all, fields(client_id = %caller.client_id))]
async fn get_entry(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, entry)): Path<(String, String)>,
) -> Result<Json<LedgerEntry>, ApiError> {
    let id = path_id(&id, NO_TENANT)?;
    let entry = path_id(&entry, NO_ENTRY)?;
    found(
        state
            .services
            .crm
            .find_entry(&caller.viewer, id, entry)
            .await,
        NO_ENTRY,
    )
}

#[tracing::instrument(skip_all, fields(client_id = %caller.client_id))]
async fn get_balance(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Balance>, ApiError> {
    let id = path_id(&id, NO_TENANT)?;
    found(
        state.services.crm.balance(&caller.viewer, id).await,
        NO_TENANT,
    )
}

// ----- maintenance -----------------------------------------------------------------------

#[tracing::instrument(skip_all, fields(client_id = %caller.client_id))]
async fn list_requests(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<MaintenanceRequest>>, ApiError> {
    let params = list_params(raw.as_deref(), &maintenance::LIST)?;
    let filter = RequestFilter::from_params(&params).map_err(ApiError::Validation)?;
    let rows = state
        .services
        .crm
        .list_requests(&caller.viewer, &params, &filter)
        .await?;
    Ok(Json(Page::from_rows(rows, &params)))
}

#[tracing::instrument(skip_all, fields(client_id = %caller.client_id))]
async fn get_request(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<MaintenanceRequest>, ApiError> {
    let id = path_id(&id, NO_REQUEST)?;
    found(
        state.services.crm.find_request(&caller.viewer, id).await,
        NO_REQUEST,
    )
}

#[tracing::instrument(skip_all, fields(client_id = %caller.client_id))]
async fn open_request(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody<RequestDraft>,
) -> Result<Response, ApiError> {
    let new: NewRequest = body.validate()?;
    let tenant_id = match (&caller.viewer, new.tenant_id) {
        (_, Some(id)) => id,
        (Viewer::Tenant { user }, None) => state
            .services
            .crm
            .find_tenant_of_user(&caller.viewer, user)
            .await?
            .map(|t| t.id)
            .ok_or_else(|| {
                ApiError::Validation(vec![FieldError::new(
                    "tenant_id",
                    "your account is not linked to a tenant record",
                )])
            })?,
        (_, None) => {
            return Err(ApiError::Validation(vec![FieldError::new(
                "tenant_id",
                "is required",
            )]))
        }
    };
    let w = state
        .services
        .crm
        .open_request(
            &caller.viewer,
            tenant_id,
            &new,
            &caller.sub,
            state.services.clock.now(),
        )
        .await?;
    let r = written(w, NO_REQUEST)?;
    caller
        .audit(
            &state,
            format!("maintenance request {} opened for tenant {tenant_id}", r.id),
        )
        .await;
    created(format!("/api/maintenance/{}", r.id), &r)
}

#[tracing::instrument(skip_all, fields(client_id = %caller.client_id))]
async fn update_request(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody<RequestUpdateDraft>,
) -> Result<Json<MaintenanceRequest>, ApiError> {
    caller.require_staff()?;
    let id = path_id(&id, NO_REQUEST)?;
    let update: RequestUpdate = body.validate()?;
    let w = state
        .services
        .crm
        .update_request(&caller.viewer, id, &update, state.services.clock.now())
        .await?;
    let r = written(w, NO_REQUEST)?;
    caller
        .audit(
            &state,
            format!(
                "maintenance request {id} updated (status {})",
                r.status.as_str()
            ),
        )
        .await;
    Ok(Json(r))
}

// ----- the table -------------------------------------------------------------------------

const BINDING: &str = "Owner binding: a tenant's token sees only their own records, a \
    manager's token the properties they manage and those properties' tenants, ledgers and \
    requests; an administrator's or a machine client's token the whole portfolio. Anything \
    else answers 404.";

/// Every API operation: mounted behind its scopes, and documented, from one table.
pub(crate) fn routes(state: AppState) -> (Router<AppState>, Value) {
    use Scope::{
        FinancialRead, FinancialWrite, MaintenanceManage, PropertyRead, PropertyWrite, TenantRead,
        TenantWrite,
    };
    let issuer = state.services.policy.issuer.clone();
    Api::new(state)
        .op(
            Op {
                method: Method::GET,
                path: "/api/properties",
                id: "listProperties",
                summary: "List properties",
                description: BINDING,
                need: Need::All(&[PropertyRead]),
                body: None,
                ok: (200, schema::<Page<Property>>),
                list: Some(&property::LIST),
            },
            list_properties,
        )
        .op(
            Op {
                method: Method::POST,
                path: "/api/properties",
                id: "createProperty",
                summary: "Create a property",
                description: "A manager's new property is managed by them; only a \
                    portfolio-wide token may name another manager.",
                need: Need::All(&[PropertyWrite]),
                body: Some(schema::<PropertyDraft>),
                ok: (201, schema::<Property>),
                list: None,
            },
            create_property,
        )
        .op(
            Op {
                method: Method::GET,
                path: "/api/properties/{id}",
                id: "getProperty",
                summary: "Get a property",
                description: BINDING,
                need: Need::All(&[PropertyRead]),
                body: None,
                ok: (200, schema::<Property>),
                list: None,
            },
            get_property,
        )
        .op(
            Op {
                method: Method::PATCH,
                path: "/api/properties/{id}",
                id: "updateProperty",
                summary: "Change a property",
                description: "Only the fields sent change. Only a portfolio-wide token may \
                    reassign the manager.",
                need: Need::All(&[PropertyWrite]),
                body: Some(schema::<PropertyDraft>),
                ok: (200, schema::<Property>),
                list: None,
            },
            update_property,
        )
        .op(
            Op {
                method: Method::GET,
                path: "/api/tenants",
                id: "listTenants",
                summary: "List tenants",
                description: BINDING,
                need: Need::All(&[TenantRead]),
                body: None,
                ok: (200, schema::<Page<Tenant>>),
                list: Some(&tenant::LIST),
            },
            list_tenants,
        )
        .op(
            Op {
                method: Method::POST,
                path: "/api/tenants",
                id: "createTenant",
                summary: "Create a tenant",
                description: "The property must be one the token can see; a linked user \
                    must have role tenant and no other tenant record.",
                need: Need::All(&[TenantWrite]),
                body: Some(schema::<TenantDraft>),
                ok: (201, schema::<Tenant>),
                list: None,
            },
            create_tenant,
        )
        .op(
            Op {
                method: Method::GET,
                path: "/api/tenants/{id}",
                id: "getTenant",
                summary: "Get a tenant",
                description: BINDING,
                need: Need::All(&[TenantRead]),
                body: None,
                ok: (200, schema::<Tenant>),
                list: None,
            },
            get_tenant,
        )
        .op(
            Op {
                method: Method::PATCH,
                path: "/api/tenants/{id}",
                id: "updateTenant",
                summary: "Change a tenant",
                description: "Only the fields sent change; the currency cannot.",
                need: Need::All(&[TenantWrite]),
                body: Some(schema::<TenantDraft>),
                ok: (200, schema::<Tenant>),
                list: None,
            },
            update_tenant,
        )
        .op(
            Op {
                method: Method::GET,
                path: "/api/tenants/{id}/ledger",
                id: "listLedgerEntries",
                summary: "A tenant's ledger entries",
                description: BINDING,
                need: Need::All(&[FinancialRead]),
                body: None,
                ok: (200, schema::<Page<LedgerEntry>>),
                list: Some(&ledger::LIST),
            },
            list_entries,
        )
        .op(
            Op {
                method: Method::POST,
                path: "/api/tenants/{id}/ledger",
                id: "addLedgerEntry",
                summary: "Record a charge, payment or credit",
                description: "Append-only: corrections are new entries. Amounts are \
                    decimal strings in the tenant's currency.",
                need: Need::All(&[FinancialWrite]),
                body: Some(schema::<EntryDraft>),
                ok: (201, schema::<LedgerEntry>),
                list: None,
            },
            add_entry,
        )
        .op(
            Op {
                method: Method::GET,
                path: "/api/tenants/{id}/ledger/{entry_id}",
                id: "getLedgerEntry",
                summary: "One ledger entry",
                description: BINDING,
                need: Need::All(&[FinancialRead]),
                body: None,
                ok: (200, schema::<LedgerEntry>),
                list: None,
            },
            get_entry,
        )
        .op(
            Op {
                method: Method::GET,
                path: "/api/tenants/{id}/balance",
                id: "getBalance",
                summary: "A tenant's balance",
                description: "Charges minus payments and credits, exact.",
                need: Need::All(&[FinancialRead]),
                body: None,
                ok: (200, schema::<Balance>),
                list: None,
            },
            get_balance,
        )
        .op(
            Op {
                method: Method::GET,
                path: "/api/maintenance",
                id: "listMaintenanceRequests",
                summary: "List maintenance requests",
                description: BINDING,
                need: Need::Any(&[Scope::MaintenanceRequest, MaintenanceManage]),
                body: None,
                ok: (200, schema::<Page<MaintenanceRequest>>),
                list: Some(&maintenance::LIST),
            },
            list_requests,
        )
        .op(
            Op {
                method: Method::POST,
                path: "/api/maintenance",
                id: "openMaintenanceRequest",
                summary: "Open a maintenance request",
                description: "A tenant opens one for themselves (no tenant_id); staff \
                    name the tenant.",
                need: Need::All(&[Scope::MaintenanceRequest]),
                body: Some(schema::<RequestDraft>),
                ok: (201, schema::<MaintenanceRequest>),
                list: None,
            },
            open_request,
        )
        .op(
            Op {
                method: Method::GET,
                path: "/api/maintenance/{id}",
                id: "getMaintenanceRequest",
                summary: "Get a maintenance request",
                description: BINDING,
                need: Need::Any(&[Scope::MaintenanceRequest, MaintenanceManage]),
                body: None,
                ok: (200, schema::<MaintenanceRequest>),
                list: None,
            },
            get_request,
        )
        .op(
            Op {
                method: Method::PATCH,
                path: "/api/maintenance/{id}",
                id: "updateMaintenanceRequest",
                summary: "Update, assign or close a maintenance request",
                description: "Status changes follow open → in_progress → on_hold / \
                    resolved → closed (resolved may reopen to in_progress; open, \
                    in_progress and on_hold may be cancelled). Closed and cancelled \
                    requests no longer change.",
                need: Need::All(&[MaintenanceManage]),
                body: Some(schema::<RequestUpdateDraft>),
                ok: (200, schema::<MaintenanceRequest>),
                list: None,
            },
            update_request,
        )
        .finish(&issuer)
}
