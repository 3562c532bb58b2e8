//! The API's route table, which both mounts each operation behind its guard and rate
//! limit and describes it in the OpenAPI 3.1 document served at `/api/openapi.json`.
//!
//! Because the same [`Op`] value mounts the route and documents it, the document cannot
//! state a scope the guard does not enforce (or the other way round). Request and
//! response schemas come from the Rust types (`schemars`), so they follow the code too.

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{on, MethodFilter};
use axum::Router;
use deedbolt_core::scope::{Scope, ScopeSet};
use deedbolt_proptech::list::{ListSpec, MAX_LIMIT};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::state::AppState;

/// Which scopes an operation needs.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Need {
    /// Every one of these.
    All(&'static [Scope]),
    /// At least one of these (the handler tells the callers apart).
    Any(&'static [Scope]),
}

impl Need {
    fn scopes(self) -> ScopeSet {
        let list = match self {
            Need::All(s) | Need::Any(s) => s,
        };
        list.iter().fold(ScopeSet::empty(), |set, s| set.with(*s))
    }
}

/// Makes a schema (a `$ref` into the document's components) for a type.
pub(crate) type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// The schema of `T`.
pub(crate) fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// One API operation: what mounts it and what documents it.
pub(crate) struct Op {
    /// HTTP method.
    pub method: Method,
    /// Path template (`{id}` for path parameters, the OpenAPI spelling too).
    pub path: &'static str,
    /// A unique operation id.
    pub id: &'static str,
    /// One line.
    pub summary: &'static str,
    /// More, in Markdown (owner binding, rules).
    pub description: &'static str,
    /// Required scopes.
    pub need: Need,
    /// The JSON request body, if any.
    pub body: Option<SchemaFn>,
    /// The success status and its JSON body.
    pub ok: (u16, SchemaFn),
    /// The list parameters, for list operations.
    pub list: Option<&'static ListSpec>,
}

/// Builds the API router and its document together.
pub(crate) struct Api {
    state: AppState,
    router: Router<AppState>,
    ops: Vec<Op>,
}

impl Api {
    /// An empty table.
    pub(crate) fn new(state: AppState) -> Self {
        Api {
            state,
            router: Router::new(),
            ops: Vec::new(),
        }
    }

    /// Mounts `handler` for `op`, behind the guard (outer: the token and its scopes) and
    /// the per-client API rate limit (inner: it needs the verified token).
    pub(crate) fn op<H, T>(mut self, op: Op, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let guard = match op.need {
            Need::All(_) => self.state.guard.require(op.need.scopes()),
            Need::Any(_) => self.state.guard.require_any(op.need.scopes()),
        };
        let limit =
            axum::middleware::from_fn_with_state(self.state.clone(), crate::limits::api_limit);
        let filter = MethodFilter::try_from(op.method.clone())
            .unwrap_or_else(|_| panic!("unsupported method in the API table: {}", op.method));
        let route = on(filter, handler).layer((guard, limit));
        self.router = self.router.route(op.path, route);
        self.ops.push(op);
        self
    }

    /// The router and the OpenAPI document.
    pub(crate) fn finish(self, issuer: &str) -> (Router<AppState>, Value) {
        let doc = document(&self.ops, issuer);
        (self.router, doc)
    }
}

fn scope_names(scopes: &[Scope]) -> Vec<&'static str> {
    scopes.iter().map(|s| s.as_str()).collect()
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

fn document(ops: &[Op], issuer: &str) -> Value {
    let settings = SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas".into();
    });
    let mut g = SchemaGenerator::new(settings);
    let mut paths: Map<String, Value> = Map::new();
    for op in ops {
        let mut parameters = Vec::new();
        for seg in op.path.split('/') {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                parameters.push(json!({
                    "name": name, "in": "path", "required": true,
                    "schema": {"type": "integer", "minimum": 1}
                }));
            }
        }
        if let Some(spec) = op.list {
            let sorts: Vec<String> = spec
                .sort_fields
                .iter()
                .flat_map(|f| [f.to_string(), format!("-{f}")])
                .collect();
            parameters.push(json!({"name": "limit", "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}}));
            parameters.push(json!({"name": "cursor", "in": "query",
                "description": "`next_cursor` of the previous page (with the same `sort`)",
                "schema": {"type": "string"}}));
            parameters.push(json!({"name": "sort", "in": "query",
                "description": "A field, `-` prefixed for descending; ties break by id",
                "schema": {"type": "string", "enum": sorts}}));
            for f in spec.filters {
                parameters.push(json!({"name": f, "in": "query", "description": "filter",
                    "schema": {"type": "string"}}));
            }
        }
        let (status, ok) = op.ok;
        let mut responses = Map::new();
        responses.insert(
            status.to_string(),
            json!({"description": "success",
                   "content": {"application/json": {"schema": ok(&mut g)}}}),
        );
        responses.insert(
            "401".into(),
            json!({"description": "no valid access token"}),
        );
        responses.insert(
            "403".into(),
            error_response("the token lacks the required scope"),
        );
        if op.path.contains('{') {
            responses.insert(
                "404".into(),
                error_response("no such object, or not one the token may see"),
            );
        }
        if op.body.is_some() || op.list.is_some() {
            responses.insert(
                "422".into(),
                json!({"description": "invalid fields or parameters",
                       "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ValidationError"}}}}),
            );
        }
        responses.insert(
            "429".into(),
            json!({"description": "over the client's API rate limit"}),
        );
        let security: Vec<Value> = match op.need {
            Need::All(s) => vec![json!({"oauth2": scope_names(s)})],
            Need::Any(s) => s.iter().map(|x| json!({"oauth2": [x.as_str()]})).collect(),
        };
        let mut operation = json!({
            "operationId": op.id,
            "summary": op.summary,
            "description": op.description,
            "parameters": parameters,
            "responses": responses,
            "security": security,
        });
        if let Some(body) = op.body {
            operation["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": body(&mut g)}}
            });
        }
        let entry = paths.entry(op.path.to_owned()).or_insert_with(|| json!({}));
        entry[op.method.as_str().to_ascii_lowercase()] = operation;
    }
    let mut schemas: Map<String, Value> = g
        .take_definitions(true)
        .into_iter()
        .collect::<Map<String, Value>>();
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "required": ["error"],
               "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}}}),
    );
    let field_error = g.subschema_for::<deedbolt_proptech::FieldError>();
    for (k, v) in g.take_definitions(true) {
        schemas.insert(k, v);
    }
    schemas.insert(
        "ValidationError".into(),
        json!({"type": "object", "required": ["error", "fields"],
               "properties": {"error": {"const": "validation_failed"},
                              "error_description": {"type": "string"},
                              "fields": {"type": "array", "items": field_error,
                                         "maxItems": deedbolt_proptech::MAX_FIELD_ERRORS},
                              "truncated": {"const": true,
                                            "description": "present when more fields failed than `fields` lists"},
                              "fields_omitted": {"type": "integer", "minimum": 1,
                                                 "description": "how many failing fields `fields` leaves out"}}}),
    );
    let described = |s: &Scope| (s.as_str().to_owned(), json!(s.description()));
    let scopes: Map<String, Value> = Scope::ALL.iter().map(described).collect();
    // The administration scopes are delegated by an administrator only, never issued to
    // a client acting for itself.
    let client_scopes: Map<String, Value> = Scope::ALL
        .iter()
        .filter(|s| !s.is_admin())
        .map(described)
        .collect();
    let base = issuer.trim_end_matches('/');
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "deedbolt PropTech API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Properties, tenants, the financial ledger and maintenance requests. \
                Every operation needs an access token from this server with the scopes in its \
                `security`; a token acting for a tenant sees only that tenant's records, a \
                manager's token the properties they manage (and their tenants), an \
                administrator's or a machine client's token the whole portfolio. Objects a \
                token may not see answer 404, exactly like objects that do not exist."
        },
        "servers": [{"url": base}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "oauth2": {
                    "type": "oauth2",
                    "flows": {
                        "authorizationCode": {
                            "authorizationUrl": format!("{base}/authorize"),
                            "tokenUrl": format!("{base}/token"),
                            "refreshUrl": format!("{base}/token"),
                            "scopes": scopes,
                        },
                        "clientCredentials": {
                            "tokenUrl": format!("{base}/token"),
                            "scopes": client_scopes,
                        }
                    }
                }
            }
        }
    })
}
