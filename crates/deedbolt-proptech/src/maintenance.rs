//! Maintenance requests: opened by tenants (or staff for them), worked through a fixed set
//! of status transitions by staff.

use serde::{Deserialize, Serialize};

use super::list::{ListSpec, Listed, SortValue};
use super::{FieldError, Problems};
use deedbolt_core::clock::UnixTime;

/// How urgent a request is.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Whenever convenient.
    Low,
    /// The default.
    Normal,
    /// Soon.
    High,
    /// Safety or habitability (no heating, a leak).
    Urgent,
}

impl Priority {
    /// The stored and wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }

    /// Its rank (stored, so that sorting by priority is by urgency, not by name).
    pub const fn rank(self) -> i64 {
        self as i64
    }

    /// The priority of a rank.
    pub fn from_rank(rank: i64) -> Option<Self> {
        [
            Priority::Low,
            Priority::Normal,
            Priority::High,
            Priority::Urgent,
        ]
        .into_iter()
        .find(|p| p.rank() == rank)
    }
}

impl std::str::FromStr for Priority {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "low" => Ok(Priority::Low),
            "normal" => Ok(Priority::Normal),
            "high" => Ok(Priority::High),
            "urgent" => Ok(Priority::Urgent),
            _ => Err(()),
        }
    }
}

/// Where a request is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Opened, not yet triaged.
    Open,
    /// Someone is working on it.
    InProgress,
    /// Waiting (parts, access, a contractor).
    OnHold,
    /// The work is done; the tenant may confirm.
    Resolved,
    /// Finished for good.
    Closed,
    /// Withdrawn or not to be done.
    Cancelled,
}

impl Status {
    /// The stored and wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::InProgress => "in_progress",
            Status::OnHold => "on_hold",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
            Status::Cancelled => "cancelled",
        }
    }

    /// The statuses a request in this status may move to.
    ///
    /// ```
    /// use deedbolt_proptech::maintenance::Status;
    /// assert!(Status::Open.may_become(Status::InProgress));
    /// assert!(Status::Resolved.may_become(Status::InProgress)); // reopened
    /// assert!(!Status::Closed.may_become(Status::Open));
    /// assert!(!Status::Open.may_become(Status::Resolved)); // work happens in between
    /// ```
    pub const fn successors(self) -> &'static [Status] {
        match self {
            Status::Open => &[Status::InProgress, Status::Cancelled],
            Status::InProgress => &[Status::OnHold, Status::Resolved, Status::Cancelled],
            Status::OnHold => &[Status::InProgress, Status::Cancelled],
            Status::Resolved => &[Status::Closed, Status::InProgress],
            Status::Closed | Status::Cancelled => &[],
        }
    }

    /// Whether `next` is an allowed transition from this status.
    pub fn may_become(self, next: Status) -> bool {
        self.successors().contains(&next)
    }
}

impl std::str::FromStr for Status {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "open" => Ok(Status::Open),
            "in_progress" => Ok(Status::InProgress),
            "on_hold" => Ok(Status::OnHold),
            "resolved" => Ok(Status::Resolved),
            "closed" => Ok(Status::Closed),
            "cancelled" => Ok(Status::Cancelled),
            _ => Err(()),
        }
    }
}

/// A stored maintenance request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct MaintenanceRequest {
    /// Its id.
    pub id: i64,
    /// The tenant it is for.
    pub tenant_id: i64,
    /// The tenant's property.
    pub property_id: i64,
    /// The tenant's unit.
    pub unit: String,
    /// A short summary.
    pub title: String,
    /// What is wrong.
    pub description: String,
    /// How urgent.
    pub priority: Priority,
    /// Where it is.
    pub status: Status,
    /// Who is working on it (a staff member or contractor), if assigned.
    pub assignee: Option<String>,
    /// When it was opened.
    pub created_at: UnixTime,
    /// When it last changed.
    pub updated_at: UnixTime,
    /// The `sub` of the token that opened it.
    pub created_by: String,
}

impl Listed for MaintenanceRequest {
    fn id(&self) -> i64 {
        self.id
    }

    fn sort_value(&self, field: &str) -> SortValue {
        match field {
            "priority" => SortValue::Int(self.priority.rank()),
            "created_at" => SortValue::Int(self.created_at.0),
            "updated_at" => SortValue::Int(self.updated_at.0),
            _ => SortValue::Int(self.id),
        }
    }
}

/// What `GET /api/maintenance` accepts.
pub const LIST: ListSpec = ListSpec {
    sort_fields: &["id", "priority", "created_at", "updated_at"],
    filters: &["status", "priority", "property_id", "tenant_id"],
};

/// The body of a new request.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestDraft {
    /// The tenant; omitted when a tenant opens a request for themselves, required for staff.
    pub tenant_id: Option<i64>,
    /// A short summary, 1–120 characters.
    pub title: Option<String>,
    /// What is wrong, 1–2000 characters.
    pub description: Option<String>,
    /// `low`, `normal` (default), `high` or `urgent`.
    pub priority: Option<String>,
}

/// A validated request to open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRequest {
    /// The tenant named in the body, if any.
    pub tenant_id: Option<i64>,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Priority.
    pub priority: Priority,
}

const PRIORITIES: &str = "low, normal, high or urgent";

impl TryFrom<RequestDraft> for NewRequest {
    type Error = Vec<FieldError>;

    fn try_from(d: RequestDraft) -> Result<Self, Self::Error> {
        let mut p = Problems::default();
        let tenant_id = d
            .tenant_id
            .and_then(|v| p.int("tenant_id", Some(v), 1..=i64::MAX));
        let title = p.text("title", d.title, 120);
        let description = p.text("description", d.description, 2000);
        let priority = match d.priority {
            Some(v) => p.some_parsed("priority", &v, PRIORITIES),
            None => Some(Priority::Normal),
        };
        p.finish(|| {
            Some(NewRequest {
                tenant_id,
                title: title?,
                description: description?,
                priority: priority?,
            })
        })
    }
}

/// The body of a staff update.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestUpdateDraft {
    /// The next status; must be an allowed transition.
    pub status: Option<String>,
    /// Who works on it, 1–200 characters.
    pub assignee: Option<String>,
    /// A new priority.
    pub priority: Option<String>,
}

/// A validated staff update; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestUpdate {
    /// New status.
    pub status: Option<Status>,
    /// New assignee.
    pub assignee: Option<String>,
    /// New priority.
    pub priority: Option<Priority>,
}

impl TryFrom<RequestUpdateDraft> for RequestUpdate {
    type Error = Vec<FieldError>;

    fn try_from(d: RequestUpdateDraft) -> Result<Self, Self::Error> {
        let mut p = Problems::default();
        let u = RequestUpdate {
            status: d.status.and_then(|v| {
                p.some_parsed(
                    "status",
                    &v,
                    "open, in_progress, on_hold, resolved, closed or cancelled",
                )
            }),
            assignee: d.assignee.and_then(|v| p.some_text("assignee", v, 200)),
            priority: d
                .priority
                .and_then(|v| p.some_parsed("priority", &v, PRIORITIES)),
        };
        if u == RequestUpdate::default() && p.0.is_empty() {
            p.add("body", "must change at least one field");
        }
        p.finish(|| Some(u))
    }
}

impl RequestUpdate {
    /// Checks the status transition against the request's current status.
    pub fn check_transition(&self, current: Status) -> Result<(), FieldError> {
        match self.status {
            Some(next) if next != current && !current.may_become(next) => Err(FieldError::new(
                "status",
                format!(
                    "cannot change from {} to {}; allowed: {}",
                    current.as_str(),
                    next.as_str(),
                    if current.successors().is_empty() {
                        "none (final)".to_owned()
                    } else {
                        current
                            .successors()
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            )),
            Some(next) if next == current => Err(FieldError::new(
                "status",
                format!("is already {}", current.as_str()),
            )),
            _ if matches!(current, Status::Closed | Status::Cancelled) => Err(FieldError::new(
                "status",
                format!(
                    "the request is {} and can no longer change",
                    current.as_str()
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// The filters of `GET /api/maintenance`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestFilter {
    /// Only this status.
    pub status: Option<Status>,
    /// Only this priority.
    pub priority: Option<Priority>,
    /// Only this property.
    pub property_id: Option<i64>,
    /// Only this tenant.
    pub tenant_id: Option<i64>,
}

impl RequestFilter {
    /// Reads the filters of a parsed list query.
    pub fn from_params(params: &super::list::ListParams) -> Result<Self, Vec<FieldError>> {
        let mut p = Problems::default();
        let f = RequestFilter {
            status: params.parsed_filter(
                "status",
                "open, in_progress, on_hold, resolved, closed or cancelled",
                &mut p,
            ),
            priority: params.parsed_filter("priority", PRIORITIES, &mut p),
            property_id: params.parsed_filter("property_id", "an integer id", &mut p),
            tenant_id: params.parsed_filter("tenant_id", "an integer id", &mut p),
        };
        p.finish(|| Some(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transition_table_has_no_way_out_of_final_states() {
        for s in [Status::Closed, Status::Cancelled] {
            assert!(s.successors().is_empty());
        }
        // Every non-final status can reach a final one.
        for s in [
            Status::Open,
            Status::InProgress,
            Status::OnHold,
            Status::Resolved,
        ] {
            assert!(s
                .successors()
                .iter()
                .any(|n| matches!(n, Status::Closed | Status::Cancelled)
                    || n.successors()
                        .iter()
                        .any(|m| matches!(m, Status::Closed | Status::Cancelled))));
        }
    }

    #[test]
    fn a_closed_request_refuses_any_change() {
        let u = RequestUpdate {
            assignee: Some("Bob".into()),
            ..RequestUpdate::default()
        };
        assert!(u.check_transition(Status::Closed).is_err());
        assert!(u.check_transition(Status::Open).is_ok());
    }

    #[test]
    fn an_illegal_transition_names_the_allowed_ones() {
        let u = RequestUpdate {
            status: Some(Status::Closed),
            ..RequestUpdate::default()
        };
        let e = u.check_transition(Status::Open).unwrap_err();
        assert_eq!(
            e.message,
            "cannot change from open to closed; allowed: in_progress, cancelled"
        );
    }

    #[test]
    fn priority_defaults_to_normal() {
        let r = NewRequest::try_from(RequestDraft {
            title: Some("Leak".into()),
            description: Some("Kitchen tap drips".into()),
            ..RequestDraft::default()
        })
        .unwrap();
        assert_eq!(r.priority, Priority::Normal);
    }
}
