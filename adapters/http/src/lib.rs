//! Castellan's HTTP admin API (axum), JumpCloud-compatible where the resource exists.
//!
//! Map of the modules:
//! - [`state`]: what handlers share (log, read store, projections, clock).
//! - [`auth`]: `x-api-key` authentication against the in-memory admin index, and the
//!   event metadata (actor, client IP, user agent, correlation id) of a request.
//! - [`client`]: the client's address (behind trusted proxies) and user agent.
//! - [`roles`]: the role table and the middleware that enforces it on every route.
//! - [`administrators`]: admins (invite, delete, API keys), invitations, the outbox.
//! - [`mail`]: invitation and activation emails, queued in the outbox.
//! - [`insights`]: Directory Insights queries and admin SQL over the Parquet files.
//! - [`openapi`]: `/openapi.json`, generated from the handlers' annotations.
//! - [`session`]: signed admin portal session cookies and CSRF tokens.
//! - [`schemas`]: request bodies as the OpenAPI document describes them.
//! - [`guard`]: the outermost layer: a panic answers 500, axum's own refusals answer
//!   in the error shape.
//! - [`error`]: JSON errors with a stable code and the field they name.
//! - [`query`]: query strings whose errors answer in JSON.
//! - [`consistency`]: read-your-writes: write responses carry the log position;
//!   reads may ask to wait for one (`x-castellan-min-position`).
//! - [`organizations`]: `/api/organizations` — one file per operation.
//! - [`userportal`]: user login and TOTP enrollment.
//! - [`usergroups`]: `/api/v2/usergroups` with members, membership and associations.
//! - [`systemusers`]: `/api/systemusers` and `/api/search/systemusers` — one file per operation.

pub mod administrators;
pub mod auth;
pub mod client;
pub mod consistency;
pub mod error;
pub mod guard;
pub mod insights;
pub mod mail;
pub mod openapi;
pub mod organizations;
pub mod query;
pub mod roles;
pub mod schemas;
pub mod session;
pub mod state;
pub mod systemusers;
pub mod usergroups;
pub mod userportal;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

pub use state::ApiState;

/// Largest request body accepted (a logo is at most 780 KB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The API routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/organizations", get(organizations::list::handle))
        .route(
            "/api/organizations/{id}",
            get(organizations::get::handle).put(organizations::update::handle),
        )
        .route(
            "/api/organizations/{id}/logo",
            get(organizations::logo::get)
                .put(organizations::logo::put)
                .delete(organizations::logo::delete),
        )
        .route(
            "/api/systemusers",
            get(systemusers::list::handle).post(systemusers::create::handle),
        )
        .route(
            "/api/systemusers/{id}",
            get(systemusers::get::handle)
                .put(systemusers::update::handle)
                .delete(systemusers::delete::handle),
        )
        .route(
            "/api/systemusers/{id}/unlock",
            post(systemusers::actions::unlock),
        )
        .route(
            "/api/systemusers/{id}/expire",
            post(systemusers::actions::expire),
        )
        .route(
            "/api/systemusers/{id}/resetmfa",
            post(systemusers::actions::reset_mfa),
        )
        .route(
            "/api/systemusers/{id}/state/activate",
            post(systemusers::actions::activate),
        )
        .route(
            "/api/systemusers/{id}/activation",
            post(systemusers::actions::send_activation),
        )
        .route("/api/search/systemusers", post(systemusers::search::handle))
        .route(
            "/api/systemusers/import",
            post(systemusers::import::handle)
                .layer(DefaultBodyLimit::max(systemusers::import::MAX_CSV_BYTES)),
        )
        .route(
            "/api/v2/usergroups",
            get(usergroups::crud::list).post(usergroups::crud::create),
        )
        .route(
            "/api/v2/usergroups/{id}",
            get(usergroups::crud::get)
                .put(usergroups::crud::put)
                .patch(usergroups::crud::patch)
                .delete(usergroups::crud::delete),
        )
        .route(
            "/api/v2/usergroups/{id}/members",
            get(usergroups::members::list).post(usergroups::members::change),
        )
        .route(
            "/api/v2/usergroups/{id}/membership",
            get(usergroups::members::membership),
        )
        .route(
            "/api/v2/usergroups/{id}/associations",
            get(usergroups::associations::list).post(usergroups::associations::change),
        )
        .route(
            "/api/v2/users/{id}/memberof",
            get(usergroups::members::memberof),
        )
        .route(
            "/api/v2/users/{id}/attributes",
            get(usergroups::members::attributes),
        )
        .route("/userportal/login", post(userportal::login::handle))
        .route("/userportal/activate", post(userportal::activate::handle))
        .route("/userportal/totp/start", post(userportal::totp::start))
        .route("/userportal/totp/finish", post(userportal::totp::finish))
        .route(
            "/api/administrators",
            get(administrators::list).post(administrators::create),
        )
        .route(
            "/api/administrators/{id}",
            axum::routing::delete(administrators::delete),
        )
        .route(
            "/api/administrators/{id}/apikey",
            post(administrators::rotate_key),
        )
        .route(
            "/api/administrators/invitations/accept",
            post(administrators::accept),
        )
        .route("/api/outbox", get(administrators::outbox))
        .route(
            "/insights/directory/v1/events",
            post(insights::events::events),
        )
        .route(
            "/insights/directory/v1/events/count",
            post(insights::events::count),
        )
        .route(
            "/insights/directory/v1/events/distinct",
            post(insights::events::distinct),
        )
        .route(
            "/insights/directory/v1/events/interval",
            post(insights::events::interval),
        )
        .route("/api/insights/sql", post(insights::sql::handle))
        .route("/api/admin/totp/start", post(administrators::totp::start))
        .route("/api/admin/totp/finish", post(administrators::totp::finish))
        .route(
            "/api/administrators/{id}/totp",
            axum::routing::delete(administrators::totp::reset),
        )
        .route(
            "/api/admin/session",
            post(administrators::session::login).delete(administrators::session::logout),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            roles::enforce,
        ))
        .route("/openapi.json", get(openapi::document))
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(guard::guard))
        .with_state(state)
}
