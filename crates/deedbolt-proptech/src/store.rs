//! The storage port of the PropTech resources, [`CrmStore`], which every storage backend
//! (SQLite, PostgreSQL) implements beside the authorization-server ports of
//! [`deedbolt_core::ports`], and the [`Write`] outcome of its writes.

use async_trait::async_trait;
use deedbolt_core::clock::UnixTime;
use deedbolt_core::ids::UserId;
use deedbolt_core::ports::StoreError;

use crate::ledger::{Balance, EntryFilter, LedgerEntry, NewEntry};
use crate::list::ListParams;
use crate::maintenance::{MaintenanceRequest, NewRequest, RequestFilter, RequestUpdate};
use crate::property::{NewProperty, Property, PropertyChanges, PropertyFilter};
use crate::tenant::{NewTenant, Tenant, TenantChanges, TenantFilter};
use crate::{FieldError, Viewer};

/// The outcome of a write to a CRM record.
#[derive(Debug)]
pub enum Write<T> {
    /// Done; the record as it now is.
    Done(T),
    /// The record does not exist *or the viewer may not see it* (indistinguishable).
    NotFound,
    /// The write breaks a rule that depends on stored state (a property the viewer cannot
    /// see, a status transition that is not allowed, a user linked twice).
    Invalid(FieldError),
}

/// The PropTech resources. Every operation takes the [`Viewer`] and applies it in the
/// query itself, so a record outside the viewer's reach is never read, changed or
/// counted: to the caller it does not exist. List operations return up to
/// `params.limit + 1` rows in the order of `params.sort`, after `params.after`.
#[async_trait]
pub trait CrmStore: Send + Sync + 'static {
    /// Creates a property.
    async fn create_property(
        &self,
        new: &NewProperty,
        created_by: &str,
        at: UnixTime,
    ) -> Result<Property, StoreError>;
    /// The property with this id, if the viewer can see it.
    async fn find_property(&self, viewer: &Viewer, id: i64)
        -> Result<Option<Property>, StoreError>;
    /// The properties the viewer can see.
    async fn list_properties(
        &self,
        viewer: &Viewer,
        params: &ListParams,
        filter: &PropertyFilter,
    ) -> Result<Vec<Property>, StoreError>;
    /// Changes a property the viewer can see.
    async fn update_property(
        &self,
        viewer: &Viewer,
        id: i64,
        changes: &PropertyChanges,
    ) -> Result<Write<Property>, StoreError>;

    /// Creates a tenant in a property the viewer can see (else `Invalid` on `property_id`).
    async fn create_tenant(
        &self,
        viewer: &Viewer,
        new: &NewTenant,
        at: UnixTime,
    ) -> Result<Write<Tenant>, StoreError>;
    /// The tenant with this id, if the viewer can see it.
    async fn find_tenant(&self, viewer: &Viewer, id: i64) -> Result<Option<Tenant>, StoreError>;
    /// The tenant record linked to this user, if any (and visible).
    async fn find_tenant_of_user(
        &self,
        viewer: &Viewer,
        user: &UserId,
    ) -> Result<Option<Tenant>, StoreError>;
    /// The tenants the viewer can see.
    async fn list_tenants(
        &self,
        viewer: &Viewer,
        params: &ListParams,
        filter: &TenantFilter,
    ) -> Result<Vec<Tenant>, StoreError>;
    /// Changes a tenant the viewer can see (a new property must be visible too).
    async fn update_tenant(
        &self,
        viewer: &Viewer,
        id: i64,
        changes: &TenantChanges,
    ) -> Result<Write<Tenant>, StoreError>;

    /// Appends a ledger entry for a tenant the viewer can see.
    async fn add_entry(
        &self,
        viewer: &Viewer,
        tenant_id: i64,
        new: &NewEntry,
        created_by: &str,
        at: UnixTime,
    ) -> Result<Write<LedgerEntry>, StoreError>;
    /// A visible tenant's entries; `None` if the tenant is not visible.
    async fn list_entries(
        &self,
        viewer: &Viewer,
        tenant_id: i64,
        params: &ListParams,
        filter: &EntryFilter,
    ) -> Result<Option<Vec<LedgerEntry>>, StoreError>;
    /// One entry of a visible tenant's ledger.
    async fn find_entry(
        &self,
        viewer: &Viewer,
        tenant_id: i64,
        entry_id: i64,
    ) -> Result<Option<LedgerEntry>, StoreError>;
    /// A visible tenant's balance; `None` if the tenant is not visible.
    async fn balance(&self, viewer: &Viewer, tenant_id: i64)
        -> Result<Option<Balance>, StoreError>;

    /// Opens a maintenance request for a tenant the viewer can see.
    async fn open_request(
        &self,
        viewer: &Viewer,
        tenant_id: i64,
        new: &NewRequest,
        created_by: &str,
        at: UnixTime,
    ) -> Result<Write<MaintenanceRequest>, StoreError>;
    /// The request with this id, if the viewer can see it.
    async fn find_request(
        &self,
        viewer: &Viewer,
        id: i64,
    ) -> Result<Option<MaintenanceRequest>, StoreError>;
    /// The requests the viewer can see.
    async fn list_requests(
        &self,
        viewer: &Viewer,
        params: &ListParams,
        filter: &RequestFilter,
    ) -> Result<Vec<MaintenanceRequest>, StoreError>;
    /// Atomically checks the status transition against the stored status and applies the
    /// update to a request the viewer can see.
    async fn update_request(
        &self,
        viewer: &Viewer,
        id: i64,
        update: &RequestUpdate,
        at: UnixTime,
    ) -> Result<Write<MaintenanceRequest>, StoreError>;
}
