//! The user portal's API: login, activation links, and TOTP enrollment. Until portal sessions exist,
//! enrollment calls carry the user's password.

pub mod activate;
pub mod login;
pub mod totp;

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Credentials {
    pub org_id: String,
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub totp: Option<String>,
    /// For `/totp/finish`: the first code from the authenticator app.
    #[serde(default)]
    pub code: Option<String>,
}
