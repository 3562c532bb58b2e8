//! [`CrmStore`] on SQLite.
//!
//! Visibility is applied in one place per table ([`push_property_scope`],
//! [`push_tenant_scope`], [`push_request_scope`]; written once for both SQL stores in
//! `deedbolt_store_sql::crm`, as are the row mappings and keyset paging): every read and
//! every write composes its WHERE clause with the viewer's predicate, so a row outside the viewer's reach is
//! never read, changed or counted. Column names in dynamic SQL come only from the fixed
//! lists in `deedbolt_proptech` (sort fields), never from a request.

use async_trait::async_trait;
use deedbolt_core::clock::UnixTime;
use deedbolt_core::ids::UserId;
use deedbolt_core::ports::StoreError;
use deedbolt_proptech::ledger::{Balance, EntryFilter, LedgerEntry, NewEntry};
use deedbolt_proptech::list::ListParams;
use deedbolt_proptech::maintenance::{
    MaintenanceRequest, NewRequest, Priority, RequestFilter, RequestUpdate,
};
use deedbolt_proptech::money::Amount;
use deedbolt_proptech::property::{NewProperty, Property, PropertyChanges, PropertyFilter};
use deedbolt_proptech::store::{CrmStore, Write};
use deedbolt_proptech::tenant::{NewTenant, Tenant, TenantChanges, TenantFilter};
use deedbolt_proptech::{FieldError, Viewer};
use deedbolt_store_sql::crm::{
    self as sql, push_entry_filter, push_page, push_property_filter, push_property_scope,
    push_request_filter, push_request_scope, push_tenant_filter, push_tenant_scope, SqlSink,
    ENTRY_COLS,
};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use crate::read::{MapRow, Query};
use crate::{backend, corrupt, Cols, SqliteStore};

fn property_from_row(row: &SqliteRow) -> Result<Property, StoreError> {
    sql::property(&Cols(row))
}

fn tenant_from_row(row: &SqliteRow) -> Result<Tenant, StoreError> {
    sql::tenant(&Cols(row))
}

fn entry_from_row(row: &SqliteRow) -> Result<LedgerEntry, StoreError> {
    sql::entry(&Cols(row))
}

fn request_from_row(row: &SqliteRow) -> Result<MaintenanceRequest, StoreError> {
    sql::request(&Cols(row))
}

/// One CRM table: how to select it, how the viewer narrows it, how a row maps back.
struct Table<T> {
    /// `SELECT <columns> FROM <table> <alias> WHERE 1`.
    select: &'static str,
    /// The alias (for the id column and keyset pages).
    alias: &'static str,
    /// Appends the viewer's predicate.
    scope: fn(&mut dyn SqlSink, &Viewer),
    /// Maps a row.
    row: fn(&SqliteRow) -> Result<T, StoreError>,
    /// Maps a row of the inline read path.
    read: MapRow<T>,
}

const PROPERTIES: Table<Property> = Table {
    select: "SELECT p.id, p.name, p.address, p.kind, p.units, p.manager_id, p.created_at, \
             p.created_by FROM properties p WHERE 1",
    alias: "p",
    scope: push_property_scope,
    row: property_from_row,
    read: |r| sql::property(r),
};

const TENANTS: Table<Tenant> = Table {
    select: "SELECT t.id, t.name, t.email, t.phone, t.user_id, t.property_id, t.unit, \
             t.rent_minor, t.currency, t.lease_start, t.created_at FROM tenants t WHERE 1",
    alias: "t",
    scope: push_tenant_scope,
    row: tenant_from_row,
    read: |r| sql::tenant(r),
};

const REQUESTS: Table<MaintenanceRequest> = Table {
    select: "SELECT m.id, m.tenant_id, m.property_id, m.unit, m.title, m.description, \
             m.priority, m.status, m.assignee, m.created_at, m.updated_at, m.created_by \
             FROM maintenance_requests m WHERE 1",
    alias: "m",
    scope: push_request_scope,
    row: request_from_row,
    read: |r| sql::request(r),
};

impl<T> Table<T> {
    /// `SELECT … WHERE 1 AND <the viewer's predicate>`, to which filters are appended.
    fn query(&self, viewer: &Viewer) -> QueryBuilder<'static, Sqlite> {
        let mut qb = QueryBuilder::new(self.select);
        (self.scope)(&mut qb, viewer);
        qb
    }

    /// The row with this id, if the viewer can see it.
    async fn visible(
        &self,
        conn: &mut SqliteConnection,
        viewer: &Viewer,
        id: i64,
    ) -> Result<Option<T>, StoreError> {
        let mut qb = self.query(viewer);
        push_id(&mut qb, self.alias, id);
        let row = qb
            .build()
            .fetch_optional(&mut *conn)
            .await
            .map_err(backend)?;
        row.as_ref().map(self.row).transpose()
    }

    /// One page of the rows the viewer can see that `filter` keeps, in `params`' order.
    async fn list(
        &self,
        store: &SqliteStore,
        viewer: &Viewer,
        params: &ListParams,
        filter: impl Fn(&mut dyn SqlSink) + Send + Sync,
    ) -> Result<Vec<T>, StoreError> {
        let narrow = |q: &mut dyn SqlSink| {
            (self.scope)(q, viewer);
            filter(q);
            push_page(q, self.alias, params);
        };
        store
            .read_rows(self.select, narrow, self.read, self.row)
            .await
    }

    /// [`Table::visible`] outside a transaction.
    async fn find(
        &self,
        store: &SqliteStore,
        viewer: &Viewer,
        id: i64,
    ) -> Result<Option<T>, StoreError> {
        let narrow = |q: &mut dyn SqlSink| {
            (self.scope)(q, viewer);
            push_id(q, self.alias, id);
        };
        let rows = store.read_rows(self.select, narrow, self.read, self.row);
        Ok(rows.await?.into_iter().next())
    }
}

/// `SELECT` the ledger columns `WHERE 1`, to which predicates are appended.
fn entries_select() -> String {
    format!(
        "SELECT {ENTRY_COLS} FROM ledger_entries e JOIN tenants t ON t.id = e.tenant_id WHERE 1"
    )
}

/// ` AND <alias>.id = <id>`.
fn push_id(q: &mut dyn SqlSink, alias: &str, id: i64) {
    q.push(format!(" AND {alias}.id = ")).push_bind(id);
}

/// Checks that `user` may be linked to a tenant record: it exists, has role tenant and is
/// not linked to another tenant.
async fn check_tenant_user(
    conn: &mut SqliteConnection,
    user: &UserId,
    except_tenant: Option<i64>,
) -> Result<Option<FieldError>, StoreError> {
    let role: Option<String> = sqlx::query_scalar("SELECT role FROM users WHERE id = ?")
        .bind(user.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?;
    if role.as_deref() != Some("tenant") {
        return Ok(Some(FieldError::new(
            "user_id",
            "must be the id of a user with role tenant",
        )));
    }
    let linked: Option<i64> = sqlx::query_scalar("SELECT id FROM tenants WHERE user_id = ?")
        .bind(user.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?;
    Ok(match linked {
        Some(other) if Some(other) != except_tenant => Some(FieldError::new(
            "user_id",
            "is already linked to another tenant",
        )),
        _ => None,
    })
}

fn no_such_property() -> FieldError {
    FieldError::new("property_id", "no such property")
}

impl SqliteStore {
    async fn immediate(&self) -> Result<sqlx::Transaction<'static, Sqlite>, StoreError> {
        // Read-check-write: IMMEDIATE takes the write lock up front (see `grant_consent`).
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)
    }

    /// The rows of `select` narrowed by `narrow`, mapped: inline through the reader when
    /// there is one and the database is not busy (see `read.rs`), else through sqlx. The
    /// same builders write both queries, so they are the same SQL.
    async fn read_rows<T>(
        &self,
        select: &str,
        narrow: impl Fn(&mut dyn SqlSink) + Send + Sync,
        read: MapRow<T>,
        row: fn(&SqliteRow) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        if let Some(reader) = &self.reader {
            let mut q = Query::new(select);
            narrow(&mut q);
            if let Some(rows) = reader.rows(&q, read)? {
                return Ok(rows);
            }
        }
        let mut qb = QueryBuilder::<Sqlite>::new(select);
        narrow(&mut qb);
        let rows = qb.build().fetch_all(&self.pool).await.map_err(backend)?;
        rows.iter().map(row).collect()
    }
}

#[async_trait]
impl CrmStore for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn create_property(
        &self,
        new: &NewProperty,
        created_by: &str,
        at: UnixTime,
    ) -> Result<Property, StoreError> {
        let row = sqlx::query(
            "INSERT INTO properties (name, address, kind, units, manager_id, created_at, created_by) \
             VALUES (?, ?, ?, ?, ?, ?, ?) \
             RETURNING id, name, address, kind, units, manager_id, created_at, created_by",
        )
        .bind(&new.name)
        .bind(&new.address)
        .bind(new.kind.as_str())
        .bind(i64::from(new.units))
        .bind(new.manager_id.as_ref().map(UserId::as_str))
        .bind(at.0)
        .bind(created_by)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .into_iter()
        .next()
        .ok_or_else(|| corrupt("no row returned"))?;
        property_from_row(&row)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn find_property(
        &self,
        viewer: &Viewer,
        id: i64,
    ) -> Result<Option<Property>, StoreError> {
        PROPERTIES.find(self, viewer, id).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn list_properties(
        &self,
        viewer: &Viewer,
        params: &ListParams,
        filter: &PropertyFilter,
    ) -> Result<Vec<Property>, StoreError> {
        PROPERTIES
            .list(self, viewer, params, |q| push_property_filter(q, filter))
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn update_property(
        &self,
        viewer: &Viewer,
        id: i64,
        c: &PropertyChanges,
    ) -> Result<Write<Property>, StoreError> {
        let mut qb = QueryBuilder::new("UPDATE properties AS p SET name = COALESCE(");
        qb.push_bind(c.name.clone())
            .push(", name), address = COALESCE(")
            .push_bind(c.address.clone())
            .push(", address), kind = COALESCE(")
            .push_bind(c.kind.map(|k| k.as_str()))
            .push(", kind), units = COALESCE(")
            .push_bind(c.units.map(i64::from))
            .push(", units), manager_id = COALESCE(")
            .push_bind(c.manager_id.as_ref().map(|m| m.as_str().to_owned()))
            .push(", manager_id) WHERE p.id = ")
            .push_bind(id);
        push_property_scope(&mut qb, viewer);
        qb.push(" RETURNING id, name, address, kind, units, manager_id, created_at, created_by");
        let rows = qb.build().fetch_all(&self.pool).await.map_err(backend)?;
        Ok(match rows.first() {
            Some(row) => Write::Done(property_from_row(row)?),
            None => Write::NotFound,
        })
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn create_tenant(
        &self,
        viewer: &Viewer,
        new: &NewTenant,
        at: UnixTime,
    ) -> Result<Write<Tenant>, StoreError> {
        let mut tx = self.immediate().await?;
        if PROPERTIES
            .visible(&mut tx, viewer, new.property_id)
            .await?
            .is_none()
        {
            return Ok(Write::Invalid(no_such_property()));
        }
        if let Some(user) = &new.user_id {
            if let Some(e) = check_tenant_user(&mut tx, user, None).await? {
                return Ok(Write::Invalid(e));
            }
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO tenants (name, email, phone, user_id, property_id, unit, rent_minor, \
             currency, lease_start, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&new.name)
        .bind(&new.email)
        .bind(&new.phone)
        .bind(new.user_id.as_ref().map(UserId::as_str))
        .bind(new.property_id)
        .bind(&new.unit)
        .bind(new.rent.minor())
        .bind(new.currency.as_str())
        .bind(new.lease_start.as_str())
        .bind(at.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?
        .into_iter()
        .next()
        .ok_or_else(|| corrupt("no row returned"))?;
        let tenant = TENANTS
            .visible(&mut tx, &Viewer::Portfolio, id)
            .await?
            .ok_or_else(|| corrupt("inserted tenant missing"))?;
        tx.commit().await.map_err(backend)?;
        Ok(Write::Done(tenant))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn find_tenant(&self, viewer: &Viewer, id: i64) -> Result<Option<Tenant>, StoreError> {
        TENANTS.find(self, viewer, id).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn find_tenant_of_user(
        &self,
        viewer: &Viewer,
        user: &UserId,
    ) -> Result<Option<Tenant>, StoreError> {
        let mut qb = TENANTS.query(viewer);
        qb.push(" AND t.user_id = ")
            .push_bind(user.as_str().to_owned());
        let row = qb
            .build()
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn list_tenants(
        &self,
        viewer: &Viewer,
        params: &ListParams,
        filter: &TenantFilter,
    ) -> Result<Vec<Tenant>, StoreError> {
        TENANTS
            .list(self, viewer, params, |q| push_tenant_filter(q, filter))
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn update_tenant(
        &self,
        viewer: &Viewer,
        id: i64,
        c: &TenantChanges,
    ) -> Result<Write<Tenant>, StoreError> {
        let mut tx = self.immediate().await?;
        if TENANTS.visible(&mut tx, viewer, id).await?.is_none() {
            return Ok(Write::NotFound);
        }
        if let Some(p) = c.property_id {
            if PROPERTIES.visible(&mut tx, viewer, p).await?.is_none() {
                return Ok(Write::Invalid(no_such_property()));
            }
        }
        if let Some(user) = &c.user_id {
            if let Some(e) = check_tenant_user(&mut tx, user, Some(id)).await? {
                return Ok(Write::Invalid(e));
            }
        }
        sqlx::query(
            "UPDATE tenants SET name = COALESCE(?, name), email = COALESCE(?, email), \
             phone = COALESCE(?, phone), user_id = COALESCE(?, user_id), \
             property_id = COALESCE(?, property_id), unit = COALESCE(?, unit), \
             rent_minor = COALESCE(?, rent_minor), lease_start = COALESCE(?, lease_start) \
             WHERE id = ?",
        )
        .bind(&c.name)
        .bind(&c.email)
        .bind(&c.phone)
        .bind(c.user_id.as_ref().map(UserId::as_str))
        .bind(c.property_id)
        .bind(&c.unit)
        .bind(c.rent.map(Amount::minor))
        .bind(c.lease_start.as_ref().map(|d| d.as_str()))
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let tenant = TENANTS
            .visible(&mut tx, &Viewer::Portfolio, id)
            .await?
            .ok_or_else(|| corrupt("updated tenant missing"))?;
        tx.commit().await.map_err(backend)?;
        Ok(Write::Done(tenant))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn add_entry(
        &self,
        viewer: &Viewer,
        tenant_id: i64,
        new: &NewEntry,
        created_by: &str,
        at: UnixTime,
    ) -> Result<Write<LedgerEntry>, StoreError> {
        let mut tx = self.immediate().await?;
        if TENANTS.visible(&mut tx, viewer, tenant_id).await?.is_none() {
            return Ok(Write::NotFound);
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO ledger_entries (tenant_id, kind, amount_minor, description, effective_on, \
             created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(tenant_id)
        .bind(new.kind.as_str())
        .bind(new.amount.minor())
        .bind(&new.description)
        .bind(new.effective_on.as_str())
        .bind(at.0)
        .bind(created_by)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?
        .into_iter()
        .next()
        .ok_or_else(|| corrupt("no row returned"))?;
        let row = sqlx::query(&format!("{} AND e.id = ?", entries_select()))
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        let entry = entry_from_row(&row)?;
        tx.commit().await.map_err(backend)?;
        Ok(Write::Done(entry))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn list_entries(
        &self,
        viewer: &Viewer,
        tenant_id: i64,
        params: &ListParams,
        filter: &EntryFilter,
    ) -> Result<Option<Vec<LedgerEntry>>, StoreError> {
        if TENANTS.find(self, viewer, tenant_id).await?.is_none() {
            return Ok(None);
        }
        let narrow = |q: &mut dyn SqlSink| {
            q.push(" AND e.tenant_id = ").push_bind(tenant_id);
            push_entry_filter(q, filter);
            push_page(q, "e", params);
        };
        let select = entries_select();
        let rows = self.read_rows(&select, narrow, |r| sql::entry(r), entry_from_row);
        rows.await.map(Some)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn find_entry(
        &self,
        viewer: &Viewer,
        tenant_id: i64,
        entry_id: i64,
    ) -> Result<Option<LedgerEntry>, StoreError> {
        let narrow = |q: &mut dyn SqlSink| {
            q.push(" AND e.id = ")
                .push_bind(entry_id)
                .push(" AND e.tenant_id = ")
                .push_bind(tenant_id);
            push_tenant_scope(q, viewer);
        };
        let select = entries_select();
        let rows = self.read_rows(&select, narrow, |r| sql::entry(r), entry_from_row);
        Ok(rows.await?.into_iter().next())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn balance(
        &self,
        viewer: &Viewer,
        tenant_id: i64,
    ) -> Result<Option<Balance>, StoreError> {
        let mut qb = QueryBuilder::new(
            "SELECT t.currency, \
             COALESCE(SUM(CASE WHEN e.kind = 'charge' THEN e.amount_minor END), 0) AS charged, \
             COALESCE(SUM(CASE WHEN e.kind <> 'charge' THEN e.amount_minor END), 0) AS paid \
             FROM tenants t LEFT JOIN ledger_entries e ON e.tenant_id = t.id WHERE t.id = ",
        );
        qb.push_bind(tenant_id);
        push_tenant_scope(&mut qb, viewer);
        qb.push(" GROUP BY t.id");
        let row = qb
            .build()
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let currency: String = row.try_get("currency").map_err(backend)?;
        Ok(Some(Balance::new(
            tenant_id,
            currency.parse().map_err(|()| corrupt("currency"))?,
            row.try_get("charged").map_err(backend)?,
            row.try_get("paid").map_err(backend)?,
        )))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn open_request(
        &self,
        viewer: &Viewer,
        tenant_id: i64,
        new: &NewRequest,
        created_by: &str,
        at: UnixTime,
    ) -> Result<Write<MaintenanceRequest>, StoreError> {
        let mut tx = self.immediate().await?;
        let Some(tenant) = TENANTS.visible(&mut tx, viewer, tenant_id).await? else {
            return Ok(Write::Invalid(FieldError::new(
                "tenant_id",
                "no such tenant",
            )));
        };
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO maintenance_requests (tenant_id, property_id, unit, title, description, \
             priority, status, created_at, updated_at, created_by) \
             VALUES (?, ?, ?, ?, ?, ?, 'open', ?, ?, ?) RETURNING id",
        )
        .bind(tenant.id)
        .bind(tenant.property_id)
        .bind(&tenant.unit)
        .bind(&new.title)
        .bind(&new.description)
        .bind(new.priority.rank())
        .bind(at.0)
        .bind(at.0)
        .bind(created_by)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?
        .into_iter()
        .next()
        .ok_or_else(|| corrupt("no row returned"))?;
        let request = REQUESTS
            .visible(&mut tx, &Viewer::Portfolio, id)
            .await?
            .ok_or_else(|| corrupt("inserted request missing"))?;
        tx.commit().await.map_err(backend)?;
        Ok(Write::Done(request))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn find_request(
        &self,
        viewer: &Viewer,
        id: i64,
    ) -> Result<Option<MaintenanceRequest>, StoreError> {
        REQUESTS.find(self, viewer, id).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn list_requests(
        &self,
        viewer: &Viewer,
        params: &ListParams,
        filter: &RequestFilter,
    ) -> Result<Vec<MaintenanceRequest>, StoreError> {
        REQUESTS
            .list(self, viewer, params, |q| push_request_filter(q, filter))
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn update_request(
        &self,
        viewer: &Viewer,
        id: i64,
        update: &RequestUpdate,
        at: UnixTime,
    ) -> Result<Write<MaintenanceRequest>, StoreError> {
        let mut tx = self.immediate().await?;
        let Some(current) = REQUESTS.visible(&mut tx, viewer, id).await? else {
            return Ok(Write::NotFound);
        };
        if let Err(e) = update.check_transition(current.status) {
            return Ok(Write::Invalid(e));
        }
        sqlx::query(
            "UPDATE maintenance_requests SET status = COALESCE(?, status), \
             assignee = COALESCE(?, assignee), priority = COALESCE(?, priority), updated_at = ? \
             WHERE id = ?",
        )
        .bind(update.status.map(|s| s.as_str()))
        .bind(&update.assignee)
        .bind(update.priority.map(Priority::rank))
        .bind(at.0)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let request = REQUESTS
            .visible(&mut tx, &Viewer::Portfolio, id)
            .await?
            .ok_or_else(|| corrupt("updated request missing"))?;
        tx.commit().await.map_err(backend)?;
        Ok(Write::Done(request))
    }
}
