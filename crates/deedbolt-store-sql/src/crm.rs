//! The PropTech tables on SQL: rows back into [`deedbolt_proptech`] values, and the
//! predicates and paging clauses that every CRM query appends, generic over the sqlx
//! [`Database`] because the SQL they append is the same on SQLite and PostgreSQL.
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

/// The ledger columns (with the tenant's currency) that [`entry`] reads, for
/// `… FROM ledger_entries e JOIN tenants t ON t.id = e.tenant_id`.
pub const ENTRY_COLS: &str = "e.id, e.tenant_id, e.kind, e.amount_minor, t.currency, \
     e.description, e.effective_on, e.created_at, e.created_by";

/// ` AND <column> IN (ids…)` (` AND 1 = 0` for no ids: nothing).
pub fn push_in<DB>(qb: &mut QueryBuilder<'_, DB>, column: &str, ids: &[i64])
where
    DB: Database,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    if ids.is_empty() {
        qb.push(" AND 1 = 0");
        return;
    }
    qb.push(format!(" AND {column} IN ("));
    let mut list = qb.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    list.push_unseparated(")");
}

/// ` AND <the viewer may see property p>`.
pub fn push_property_scope<DB>(qb: &mut QueryBuilder<'_, DB>, viewer: &Viewer)
where
    DB: Database,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
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
pub fn push_tenant_scope<DB>(qb: &mut QueryBuilder<'_, DB>, viewer: &Viewer)
where
    DB: Database,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
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
pub fn push_request_scope<DB>(qb: &mut QueryBuilder<'_, DB>, viewer: &Viewer)
where
    DB: Database,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
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
pub fn push_page<DB>(qb: &mut QueryBuilder<'_, DB>, alias: &str, params: &ListParams)
where
    DB: Database,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
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

fn push_value<DB>(qb: &mut QueryBuilder<'_, DB>, value: &SortValue)
where
    DB: Database,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
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
pub fn push_property_filter<DB>(qb: &mut QueryBuilder<'_, DB>, filter: &PropertyFilter)
where
    DB: Database,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
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
pub fn push_tenant_filter<DB>(qb: &mut QueryBuilder<'_, DB>, filter: &TenantFilter)
where
    DB: Database,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    if let Some(p) = filter.property_id {
        qb.push(" AND t.property_id = ").push_bind(p);
    }
}

/// ` AND <the ledger filter>` (on alias `e`).
pub fn push_entry_filter<DB>(qb: &mut QueryBuilder<'_, DB>, filter: &EntryFilter)
where
    DB: Database,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
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
pub fn push_request_filter<DB>(qb: &mut QueryBuilder<'_, DB>, filter: &RequestFilter)
where
    DB: Database,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
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
