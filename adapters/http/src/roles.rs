//! Role enforcement: one table says what each route needs, one middleware checks it
//! for every matched route before the handler runs.
//!
//! | role | may |
//! |---|---|
//! | administrator with billing, administrator | everything |
//! | manager | read; manage users, groups and imports |
//! | help desk | read; unlock, expire, reset MFA, activate users |
//! | read only | read |

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use castellan_domain::admin::AdminRole;

use crate::error::ApiError;
use crate::state::ApiState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// No admin involved (user portal, public logo).
    Public,
    Read,
    UserHelp,
    UserWrite,
    GroupWrite,
    OrgWrite,
    AdminManage,
    /// Any admin acting on themselves; the handler checks the target.
    SelfOrAdminManage,
}

/// What a session that must enroll TOTP first may reach.
const ENROLLMENT_ROUTES: &[&str] = &[
    "/api/admin/totp/start",
    "/api/admin/totp/finish",
    "/api/admin/session",
];

/// What a route needs, by method and route pattern. Unknown writes need the most.
pub fn need(method: &Method, pattern: &str) -> Need {
    if pattern.starts_with("/userportal/")
        || pattern == "/api/administrators/invitations/accept"
        || (pattern == "/api/admin/session" && method == Method::POST)
    {
        return Need::Public;
    }
    if pattern == "/api/organizations/{id}/logo" && method == Method::GET {
        return Need::Public;
    }
    // The outbox holds invitation links: reading it is managing admins.
    if pattern == "/api/outbox" {
        return Need::AdminManage;
    }
    if method == Method::GET
        || pattern == "/api/search/systemusers"
        || pattern.starts_with("/insights/")
        || pattern == "/api/insights/sql"
    {
        return Need::Read;
    }
    match pattern {
        "/api/systemusers/{id}/unlock"
        | "/api/systemusers/{id}/expire"
        | "/api/systemusers/{id}/resetmfa"
        | "/api/systemusers/{id}/state/activate"
        | "/api/systemusers/{id}/activation" => Need::UserHelp,
        "/api/systemusers" | "/api/systemusers/{id}" | "/api/systemusers/import" => Need::UserWrite,
        p if p.starts_with("/api/v2/usergroups") => Need::GroupWrite,
        p if p.starts_with("/api/organizations") => Need::OrgWrite,
        "/api/administrators/{id}/apikey"
        | "/api/admin/session"
        | "/api/admin/totp/start"
        | "/api/admin/totp/finish" => Need::SelfOrAdminManage,
        _ => Need::AdminManage,
    }
}

pub fn allows(role: AdminRole, need: Need) -> bool {
    use AdminRole::*;
    match need {
        Need::Public | Need::Read | Need::SelfOrAdminManage => true,
        Need::UserHelp => !matches!(role, ReadOnly),
        Need::UserWrite | Need::GroupWrite => {
            matches!(role, AdministratorWithBilling | Administrator | Manager)
        }
        Need::OrgWrite | Need::AdminManage => {
            matches!(role, AdministratorWithBilling | Administrator)
        }
    }
}

pub async fn enforce(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let Some(pattern) = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
    else {
        return next.run(request).await;
    };
    let need = need(request.method(), &pattern);
    if need == Need::Public {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    // No or bad credentials: the handler's authentication answers 401 (or 403 for CSRF).
    let caller = crate::auth::authenticate(&state, &parts).ok();
    if caller.as_ref().is_some_and(|c| c.enroll_only)
        && !ENROLLMENT_ROUTES.contains(&pattern.as_str())
    {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "mfa_enrollment_required",
            "your organization requires TOTP: enroll at /api/admin/totp/start and /finish first",
        )
        .into_response();
    }
    let role = caller.map(|c| c.admin.role);
    let request = Request::from_parts(parts, body);
    match role {
        None => next.run(request).await,
        Some(role) if allows(role, need) => next.run(request).await,
        Some(role) => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "the role {} may not do this",
                serde_json::to_value(role)
                    .unwrap_or_default()
                    .as_str()
                    .unwrap_or("?")
            ),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_matrix() {
        use AdminRole::*;
        let routes = [
            (Method::GET, "/api/systemusers", Need::Read),
            (Method::POST, "/api/systemusers", Need::UserWrite),
            (Method::POST, "/api/systemusers/{id}/unlock", Need::UserHelp),
            (Method::PUT, "/api/v2/usergroups/{id}", Need::GroupWrite),
            (Method::PUT, "/api/organizations/{id}", Need::OrgWrite),
            (Method::POST, "/api/administrators", Need::AdminManage),
            (Method::GET, "/api/organizations/{id}/logo", Need::Public),
            (Method::POST, "/userportal/login", Need::Public),
            (Method::GET, "/api/outbox", Need::AdminManage),
        ];
        for (m, p, n) in &routes {
            assert_eq!(need(m, p), *n, "{m} {p}");
        }
        let expect = |role, needs: &[Need]| {
            for n in [
                Need::Read,
                Need::UserHelp,
                Need::UserWrite,
                Need::GroupWrite,
                Need::OrgWrite,
                Need::AdminManage,
            ] {
                assert_eq!(allows(role, n), needs.contains(&n), "{role:?} {n:?}");
            }
        };
        let all = [
            Need::Read,
            Need::UserHelp,
            Need::UserWrite,
            Need::GroupWrite,
            Need::OrgWrite,
            Need::AdminManage,
        ];
        expect(AdministratorWithBilling, &all);
        expect(Administrator, &all);
        expect(
            Manager,
            &[
                Need::Read,
                Need::UserHelp,
                Need::UserWrite,
                Need::GroupWrite,
            ],
        );
        expect(HelpDesk, &[Need::Read, Need::UserHelp]);
        expect(ReadOnly, &[Need::Read]);
    }
}
