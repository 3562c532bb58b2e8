//! The port conformance suite: one set of behaviours, written once against the storage
//! ports of `deedbolt_core::ports` and `deedbolt_proptech::store`, that every backend must show (SQLite, PostgreSQL, and
//! whatever comes next).
//!
//! Each behaviour is a public async function taking any [`Backend`]. A backend's test
//! crate runs all of them with [`conformance_suite!`], given a function that makes a
//! fresh, empty store (or `None` when the backend's server is not configured, in which
//! case the test is skipped after the backend's own warning):
//!
//! ```ignore
//! async fn fresh() -> Option<SqliteStore> { Some(SqliteStore::in_memory().await.unwrap()) }
//! deedbolt_store_conformance::conformance_suite!(fresh);
//! ```
//!
//! Behaviours that need backend-specific access (raw SQL, reopening a file) stay in the
//! backend's own tests.
#![forbid(unsafe_code, unused_must_use)]
#![warn(missing_docs)]
// A test-support crate: a failed expectation is a test failure, so panicking is the point.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use deedbolt_core::ports::Storage;
use deedbolt_proptech::store::CrmStore;

mod audit;
mod clients;
mod crm;
mod flow;
mod pushed;
mod refresh;
mod registration;

pub use audit::*;
pub use clients::*;
pub use crm::*;
pub use flow::*;
pub use pushed::*;
pub use refresh::*;
pub use registration::*;

/// A complete storage backend (core's [`Storage`] ports and the PropTech [`CrmStore`]);
/// cloning shares the same database (as cloning a connection pool does), so concurrent
/// tests can race clones.
pub trait Backend: Storage + CrmStore + Clone {}

impl<T: Storage + CrmStore + Clone> Backend for T {}

/// Generates one `#[tokio::test]` per behaviour of this crate, each on a fresh store from
/// `$fresh` (an async fn returning `Option<impl Backend>`; `None` skips the test), handed
/// to `$release` (an async fn taking the store) when the behaviour passed.
#[macro_export]
macro_rules! conformance_suite {
    ($fresh:path) => {
        $crate::conformance_suite!($fresh, $crate::keep);
    };
    ($fresh:path, $release:path) => {
        $crate::conformance_suite!(@tests $fresh, $release;
            answers_a_ping,
            clients_round_trip_and_delete,
            the_clients_generation_moves_on_update_and_delete,
            a_client_update_replaces_everything_but_id_and_creation,
            a_duplicate_client_id_is_refused,
            sql_injection_in_ids_is_just_data,
            rotation_keeps_exactly_one_current_key,
            concurrent_rotations_leave_one_current_key,
            the_first_secret_wins,
            a_duplicate_user_email_is_a_conflict,
            users_list_oldest_first,
            a_users_role_changes_and_the_user_can_be_deleted_once,
            sessions_live_until_they_expire_or_end,
            an_empty_consent_round_trips_and_merges,
            consents_merge_and_are_revoked_per_client_or_all,
            a_clients_consents_are_revoked_for_every_user,
            concurrent_consents_are_all_kept,
            a_pending_request_with_an_empty_scope_reads_back,
            one_owner_keeps_only_its_newest_pending_requests,
            a_code_with_an_empty_scope_redeems_as_stored,
            peeking_at_a_code_does_not_spend_it,
            a_code_is_redeemed_once_under_concurrent_redemption,
            a_codes_dpop_binding_round_trips,
            a_replay_after_issuance_names_the_token_to_revoke,
            the_revocation_list_is_read_by_cursor_without_gaps,
            expired_flow_state_is_pruned,
            a_pushed_request_is_taken_once_and_only_by_its_client,
            a_pushed_request_is_taken_once_under_concurrent_takes,
            an_expired_pushed_request_is_refused_and_pruned,
            pushed_requests_go_with_their_client,
            a_refresh_token_rotates_once_under_concurrent_rotation,
            a_familys_dpop_binding_round_trips,
            an_unbound_family_is_bound_to_the_first_key_only,
            revoking_a_family_revokes_its_tokens_and_access_tokens,
            an_access_token_recorded_in_a_revoked_family_must_be_revoked,
            families_of_a_client_or_user_are_revoked_together,
            cutoffs_only_move_forward,
            audit_records_are_inserted_in_batches_and_searched,
            audit_records_are_pruned_and_counted_per_hour,
            audit_records_are_tailed_by_id_without_gaps,
            alerts_are_an_outbox,
            usage_and_privileged_scopes_are_remembered,
            every_read_applies_the_viewer,
            a_property_list_viewer_sees_only_its_properties,
            writes_outside_the_viewer_change_nothing,
            keyset_pages_are_complete_in_both_directions_with_ties,
            a_transition_is_checked_against_the_stored_status,
            a_tenant_user_is_linked_once,
            the_balance_sums_the_ledger,
            registration_tokens_round_trip_and_revoke,
            registration_tokens_are_spent_until_used_up_or_expired,
            a_registration_token_is_not_overspent_under_concurrency,
        );
    };
    (@tests $fresh:path, $release:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let Some(store) = $fresh().await else { return };
                $crate::$name(&store).await;
                $release(store).await;
            }
        )*
    };
}

/// The release of stores that need none (they vanish with the process).
pub async fn keep<S>(_store: S) {}

/// `n` copies of `store` racing `op`; their results in completion order.
async fn race<S, T, F, Fut>(store: &S, n: usize, op: F) -> Vec<T>
where
    S: Backend,
    T: Send + 'static,
    F: Fn(S) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let fut = op(store.clone());
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                fut.await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}
