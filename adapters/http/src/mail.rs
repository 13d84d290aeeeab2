//! The emails the API sends, queued in the outbox (a relay delivers them when SMTP is
//! configured). Links point at `http.public_url`, never at the request's Host header:
//! a forged Host must not turn an invitation into a link to someone else's server.

use castellan_domain::ObjectId;

use crate::error::ApiError;
use crate::state::ApiState;

/// Queues an administrator's invitation with its one-time set-password link.
pub async fn invitation(
    state: &ApiState,
    org: ObjectId,
    admin: ObjectId,
    to: &str,
    token: &str,
) -> Result<(), ApiError> {
    let link = format!(
        "{}/api/administrators/invitations/accept?orgId={org}&adminId={admin}&token={token}",
        state.public_url
    );
    let body = format!(
        "You were invited to administer an organization in Castellan.\n\n\
         Set your password within {} hours: POST {{\"orgId\", \"adminId\", \"token\", \"password\"}} \
         (the values are in the link) to\n{link}\n",
        castellan_app::links::LINK_HOURS
    );
    state
        .store
        .enqueue_mail(
            &org.to_string(),
            to,
            "Your Castellan administrator invitation",
            &body,
        )
        .await?;
    Ok(())
}

/// Queues a user's activation email: setting a password through the link activates
/// the account.
pub async fn activation(
    state: &ApiState,
    org: ObjectId,
    user: ObjectId,
    to: &str,
    token: &str,
) -> Result<(), ApiError> {
    let link = format!(
        "{}/userportal/activate?orgId={org}&userId={user}&token={token}",
        state.public_url
    );
    let body = format!(
        "An account was created for you.\n\n\
         Choose your password within {} hours to activate it: POST {{\"orgId\", \"userId\", \"token\", \"password\"}} \
         (the values are in the link) to\n{link}\n",
        castellan_app::links::LINK_HOURS
    );
    state
        .store
        .enqueue_mail(&org.to_string(), to, "Activate your account", &body)
        .await?;
    Ok(())
}

/// Tells an admin of another organization that this one gave them a role.
pub async fn granted(state: &ApiState, org: ObjectId, to: &str) -> Result<(), ApiError> {
    let body = format!(
        "You were given access to another organization in Castellan ({org}).\n\n\
         Sign in as usual at {}; send the header x-org-id: {org} to act in it.\n",
        state.public_url
    );
    state
        .store
        .enqueue_mail(
            &org.to_string(),
            to,
            "You administer another organization",
            &body,
        )
        .await?;
    Ok(())
}
