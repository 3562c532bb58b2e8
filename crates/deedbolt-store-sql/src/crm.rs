//! The PropTech tables on SQL: rows back into [`deedbolt_proptech`] values, and the
//! predicates and paging clauses that every CRM query appends, written to a [`SqlSink`]
//! because the SQL they append is the same on SQLite and PostgreSQL and for sqlx and the
//! SQLite store's synchronous read path.
//!
//! Column and table names in the pushed SQL come from constants here and in the stores,
//! and sort fields from the fixed lists in `deedbolt_proptech` (never from a request);
//! every value is a bound parameter.

use deedbolt_core::clock::UnixTime;
use deedbolt_core::ids::UserId;
use deedbolt_core::ports::StoreError;
use deedbolt_proptech::ledger::{EntryFilter, LedgerEntry};
use deedbolt_proptech::list::{ListParams, SortValue};
use deedbolt_proptech::maintenance::{MaintenanceRequest, Priority, RequestFilter};
use deedbolt_proptech::money::Amount;
use deedbolt_proptech::property::{Property, PropertyFilter};
use deedbolt_proptech::tenant::{Tenant, TenantFilter};
use deedbolt_proptech::Viewer;
use sqlx::{Database, Encode, QueryBuilder, Type};

use crate::{corrupt, Columns};

/// A value bound to a query.
#[derive(Clone, Debug, PartialEq)]
pub enum SqlValue {
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
}

impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        SqlValue::Int(v)
    }
}

impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        SqlValue::Text(v)
    }
}

/// Where the builders below write a query: SQL text and bound values. sqlx's
/// [`QueryBuilder`] is one (for both stores); a synchronous driver's statement is another
/// (the SQLite store's inline read path).
pub trait SqlSink {
    /// Appends SQL text.
    fn push_sql(&mut self, sql: &str);
    /// Appends a placeholder bound to `value`.
    fn bind(&mut self, value: SqlValue);
}

impl dyn SqlSink + '_ {
    /// Appends SQL text.
    pub fn push(&mut self, sql: impl AsRef<str>) -> &mut Self {
        self.push_sql(sql.as_ref());
        self
    }

    /// Appends a placeholder bound to `value`.
    pub fn push_bind(&mut self, value: impl Into<SqlValue>) -> &mut Self {
        self.bind(value.into());
        self
    }
}

impl<'args, DB> SqlSink for QueryBuilder<'args, DB>
where
    DB: Database,
    i64: 'args + Encode<'args, DB> + Type<DB>,
    String: 'args + Encode<'args, DB> + Type<DB>,
{
    fn push_sql(&mut self, sql: &str) {
        self.push(sql);
    }

    fn bind(&mut self, value: SqlValue) {
        match value {
            SqlValue::Int(v) => self.push_bind(v),
            SqlValue::Text(v) => self.push_bind(v),
        };
    }
}

/// The ledger columns (with the tenant's currency) that [`entry`] reads, for
/// `… FROM ledger_entries e JOIN tenants t ON t.id = e.tenant_id`.
pub const ENTRY_COLS: &str = "e.id, e.tenant_id, e.kind, e.amount_minor, t.currency, \
     e.description, e.effective_on, e.created_at, e.created_by";

/// ` AND <column> IN (ids…)` (` AND 1 = 0` for no ids: nothing).
pub fn push_in(qb: &mut dyn SqlSink, column: &str, ids: &[i64]) {
    if ids.is_empty() {
        qb.push(" AND 1 = 0");
        return;
    }
    qb.push(format!(" AND {column} IN ("));
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            qb.push(", ");
        }
        qb.push_bind(*id);
    }
    qb.push(")");
}

/// ` AND <the viewer may see property p>`.
pub fn push_property_scope(qb: &mut dyn SqlSink, viewer: &Viewer) {
    match viewer {
        Viewer::Portfolio => {}
        Viewer::Properties { ids } => push_in(qb, "p.id", ids),
        Viewer::Manager { user } => {
            qb.push(" AND p.manager_id = ")
                .push_bind(user.as_str().to_owned());
        }
        Viewer::Tenant { user } => {
            qb.push(" AND p.id IN (SELECT property_id FROM tenants WHERE user_id = ")
                .push_bind(user.as_str().to_owned())
                .push(")");
        }
    }
}

/// ` AND <the viewer may see tenant t>` (and with it the tenant's ledger).
pub fn push_tenant_scope(qb: &mut dyn SqlSink, viewer: &Viewer) {
    match viewer {
        Viewer::Portfolio => {}
        Viewer::Properties { ids } => push_in(qb, "t.property_id", ids),
        Viewer::Manager { user } => {
            qb.push(" AND t.property_id IN (SELECT id FROM properties WHERE manager_id = ")
                .push_bind(user.as_str().to_owned())
                .push(")");
        }
        Viewer::Tenant { user } => {
            qb.push(" AND t.user_id = ")
                .push_bind(user.as_str().to_owned());
        }
    }
}

/// ` AND <the viewer may see maintenance request m>`: a manager sees the requests of the
/// properties they manage, a tenant their own.
pub fn push_request_scope(qb: &mut dyn SqlSink, viewer: &Viewer) {
    match viewer {
        Viewer::Portfolio => {}
        Viewer::Properties { ids } => push_in(qb, "m.property_id", ids),
        Viewer::Manager { user } => {
            qb.push(" AND m.property_id IN (SELECT id FROM properties WHERE manager_id = ")
                .push_bind(user.as_str().to_owned())
                .push(")");
        }
        Viewer::Tenant { user } => {
            qb.push(" AND m.tenant_id IN (SELECT id FROM tenants WHERE user_id = ")
                .push_bind(user.as_str().to_owned())
                .push(")");
        }
    }
}

/// ` AND (keyset after the cursor) ORDER BY <sort>, <alias>.id LIMIT limit + 1`.
pub fn push_page(qb: &mut dyn SqlSink, alias: &str, params: &ListParams) {
    let col = format!("{alias}.{}", params.sort.field);
    let (op, dir) = if params.sort.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some((value, id)) = &params.after {
        qb.push(format!(" AND ({col} {op} "));
        push_value(qb, value);
        qb.push(format!(" OR ({col} = "));
        push_value(qb, value);
        qb.push(format!(" AND {alias}.id {op} "))
            .push_bind(*id)
            .push("))");
    }
    qb.push(format!(" ORDER BY {col} {dir}, {alias}.id {dir} LIMIT "))
        .push_bind(i64::from(params.limit) + 1);
}

fn push_value(qb: &mut dyn SqlSink, value: &SortValue) {
    match value {
        SortValue::Int(n) => qb.push_bind(*n),
        SortValue::Text(s) => qb.push_bind(s.clone()),
    };
}

fn opt_user(row: &impl Columns, col: &str) -> Result<Option<UserId>, StoreError> {
    let v: Option<String> = row.get(col)?;
    v.map(|s| UserId::parse(&s).map_err(|_| corrupt("user id")))
        .transpose()
}

/// A `properties` row.
pub fn property(row: &impl Columns) -> Result<Property, StoreError> {
    let kind: String = row.get("kind")?;
    let units: i64 = row.get("units")?;
    Ok(Property {
        id: row.get("id")?,
        name: row.get("name")?,
        address: row.get("address")?,
        kind: kind.parse().map_err(|()| corrupt("property kind"))?,
        units: u32::try_from(units).map_err(|_| corrupt("units"))?,
        manager_id: opt_user(row, "manager_id")?,
        created_at: UnixTime(row.get("created_at")?),
        created_by: row.get("created_by")?,
    })
}

/// A `tenants` row.
pub fn tenant(row: &impl Columns) -> Result<Tenant, StoreError> {
    let currency: String = row.get("currency")?;
    let lease_start: String = row.get("lease_start")?;
    Ok(Tenant {
        id: row.get("id")?,
        name: row.get("name")?,
        email: row.get("email")?,
        phone: row.get("phone")?,
        user_id: opt_user(row, "user_id")?,
        property_id: row.get("property_id")?,
        unit: row.get("unit")?,
        rent: Amount(row.get("rent_minor")?),
        currency: currency.parse().map_err(|()| corrupt("currency"))?,
        lease_start: lease_start.parse().map_err(|()| corrupt("lease start"))?,
        created_at: UnixTime(row.get("created_at")?),
    })
}

/// A ledger row as [`ENTRY_COLS`] selects it.
pub fn entry(row: &impl Columns) -> Result<LedgerEntry, StoreError> {
    let kind: String = row.get("kind")?;
    let currency: String = row.get("currency")?;
    let effective_on: String = row.get("effective_on")?;
    let amount: i64 = row.get("amount_minor")?;
    Ok(LedgerEntry {
        id: row.get("id")?,
        tenant_id: row.get("tenant_id")?,
        kind: kind.parse().map_err(|()| corrupt("entry kind"))?,
        amount: Amount(amount),
        amount_minor: amount,
        currency: currency.parse().map_err(|()| corrupt("currency"))?,
        description: row.get("description")?,
        effective_on: effective_on
            .parse()
            .map_err(|()| corrupt("effective date"))?,
        created_at: UnixTime(row.get("created_at")?),
        created_by: row.get("created_by")?,
    })
}

/// A `maintenance_requests` row.
pub fn request(row: &impl Columns) -> Result<MaintenanceRequest, StoreError> {
    let priority: i64 = row.get("priority")?;
    let status: String = row.get("status")?;
    Ok(MaintenanceRequest {
        id: row.get("id")?,
        tenant_id: row.get("tenant_id")?,
        property_id: row.get("property_id")?,
        unit: row.get("unit")?,
        title: row.get("title")?,
        description: row.get("description")?,
        priority: Priority::from_rank(priority).ok_or_else(|| corrupt("priority"))?,
        status: status.parse().map_err(|()| corrupt("status"))?,
        assignee: row.get("assignee")?,
        created_at: UnixTime(row.get("created_at")?),
        updated_at: UnixTime(row.get("updated_at")?),
        created_by: row.get("created_by")?,
    })
}

/// ` AND <the property filter>` (on alias `p`).
pub fn push_property_filter(qb: &mut dyn SqlSink, filter: &PropertyFilter) {
    if let Some(kind) = filter.kind {
        qb.push(" AND p.kind = ")
            .push_bind(kind.as_str().to_owned());
    }
    if let Some(m) = &filter.manager_id {
        qb.push(" AND p.manager_id = ")
            .push_bind(m.as_str().to_owned());
    }
}

/// ` AND <the tenant filter>` (on alias `t`).
pub fn push_tenant_filter(qb: &mut dyn SqlSink, filter: &TenantFilter) {
    if let Some(p) = filter.property_id {
        qb.push(" AND t.property_id = ").push_bind(p);
    }
}

/// ` AND <the ledger filter>` (on alias `e`).
pub fn push_entry_filter(qb: &mut dyn SqlSink, filter: &EntryFilter) {
    if let Some(kind) = filter.kind {
        qb.push(" AND e.kind = ")
            .push_bind(kind.as_str().to_owned());
    }
    if let Some(from) = &filter.from {
        qb.push(" AND e.effective_on >= ")
            .push_bind(from.as_str().to_owned());
    }
    if let Some(to) = &filter.to {
        qb.push(" AND e.effective_on <= ")
            .push_bind(to.as_str().to_owned());
    }
}

/// ` AND <the maintenance-request filter>` (on alias `m`).
pub fn push_request_filter(qb: &mut dyn SqlSink, filter: &RequestFilter) {
    if let Some(s) = filter.status {
        qb.push(" AND m.status = ").push_bind(s.as_str().to_owned());
    }
    if let Some(p) = filter.priority {
        qb.push(" AND m.priority = ").push_bind(p.rank());
    }
    if let Some(p) = filter.property_id {
        qb.push(" AND m.property_id = ").push_bind(p);
    }
    if let Some(t) = filter.tenant_id {
        qb.push(" AND m.tenant_id = ").push_bind(t);
    }
}
