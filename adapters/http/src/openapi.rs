//! The OpenAPI document, generated from the handlers' `#[utoipa::path]`
//! annotations and served at `/openapi.json`.

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Castellan admin API", description = "JumpCloud-compatible where the resource exists there."),
    paths(
        crate::organizations::list::handle,
        crate::organizations::get::handle,
        crate::organizations::update::handle,
        crate::organizations::logo::get,
        crate::organizations::logo::put,
        crate::organizations::logo::delete,
        crate::systemusers::list::handle,
        crate::systemusers::create::handle,
        crate::systemusers::get::handle,
        crate::systemusers::update::handle,
        crate::systemusers::delete::handle,
        crate::systemusers::actions::unlock,
        crate::systemusers::actions::expire,
        crate::systemusers::actions::reset_mfa,
        crate::systemusers::actions::activate,
        crate::systemusers::actions::send_activation,
        crate::systemusers::search::handle,
        crate::systemusers::import::handle,
        crate::usergroups::crud::list,
        crate::usergroups::crud::create,
        crate::usergroups::crud::get,
        crate::usergroups::crud::put,
        crate::usergroups::crud::patch,
        crate::usergroups::crud::delete,
        crate::usergroups::members::list,
        crate::usergroups::members::change,
        crate::usergroups::members::membership,
        crate::usergroups::members::memberof,
        crate::usergroups::members::attributes,
        crate::usergroups::associations::list,
        crate::usergroups::associations::change,
        crate::administrators::list,
        crate::administrators::create,
        crate::administrators::delete,
        crate::administrators::rotate_key,
        crate::administrators::accept,
        crate::administrators::outbox,
        crate::administrators::session::login,
        crate::administrators::session::logout,
        crate::insights::events::events,
        crate::insights::events::count,
        crate::insights::events::distinct,
        crate::insights::events::interval,
        crate::insights::sql::handle,
        crate::administrators::totp::start,
        crate::administrators::totp::finish,
        crate::administrators::totp::reset,
        crate::userportal::login::handle,
        crate::userportal::activate::handle,
        crate::userportal::totp::start,
        crate::userportal::totp::finish
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorItem, crate::schemas::NewUser, crate::schemas::NewAdmin, crate::schemas::AcceptInvitation, crate::schemas::Login, crate::schemas::TotpFinish, crate::schemas::UserChanges, crate::schemas::MfaExclusion, crate::schemas::PhoneNumber, crate::schemas::Address, crate::schemas::SearchBody, crate::schemas::Group, crate::schemas::MemberOp, crate::schemas::AssociationOp)),
    modifiers(&ApiKeyScheme)
)]
pub struct ApiDoc;

struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-api-key"))),
        );
    }
}

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
