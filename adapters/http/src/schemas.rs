//! Request bodies as the OpenAPI document describes them. Handlers parse bodies into
//! JSON maps and validate them in the domain (which reports every problem at once);
//! these types only describe the accepted shape, so the document tells clients (and
//! schemathesis) what a valid request is.

#![allow(dead_code, non_snake_case)]

use utoipa::ToSchema;

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub username: String,
    #[schema(
        max_length = 254,
        pattern = r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63}){1,8}$"
    )]
    pub email: String,
    #[schema(max_length = 256)]
    pub firstname: Option<String>,
    #[schema(max_length = 256)]
    pub lastname: Option<String>,
    #[schema(max_length = 256)]
    pub displayname: Option<String>,
    #[schema(max_length = 256)]
    pub description: Option<String>,
    #[schema(max_length = 256)]
    #[serde(rename = "jobTitle")]
    pub job_title: Option<String>,
    #[schema(max_length = 256)]
    pub department: Option<String>,
    #[serde(default)]
    pub sudo: bool,
    #[serde(default)]
    pub passwordless_sudo: bool,
    #[serde(default)]
    pub ldap_binding_user: bool,
    #[serde(default)]
    pub samba_service_user: bool,
    #[schema(max_length = 256)]
    pub middlename: Option<String>,
    #[schema(max_length = 256)]
    pub company: Option<String>,
    #[schema(max_length = 256)]
    #[serde(rename = "costCenter")]
    pub cost_center: Option<String>,
    #[schema(max_length = 256)]
    #[serde(rename = "employeeIdentifier")]
    pub employee_identifier: Option<String>,
    #[schema(max_length = 256)]
    #[serde(rename = "employeeType")]
    pub employee_type: Option<String>,
    #[schema(max_length = 256)]
    pub location: Option<String>,
    #[schema(max_length = 256)]
    pub manager: Option<String>,
    #[serde(default)]
    pub password_never_expires: bool,
    #[serde(default)]
    pub allow_public_key: bool,
    #[serde(default)]
    pub enable_managed_uid: bool,
    #[serde(default)]
    pub externally_managed: bool,
    #[schema(max_length = 256)]
    pub external_dn: Option<String>,
    #[schema(max_length = 256)]
    pub external_source_type: Option<String>,
    #[schema(max_length = 16384)]
    pub public_key: Option<String>,
    #[serde(rename = "phoneNumbers", default)]
    #[schema(max_items = 20)]
    pub phone_numbers: Vec<PhoneNumber>,
    #[schema(max_items = 20)]
    #[serde(default)]
    pub addresses: Vec<Address>,
    pub mfa: Option<MfaExclusion>,
    /// ACTIVATED (needs a password) or STAGED, as `state` says it.
    #[serde(default)]
    pub activated: bool,
    /// At least 8 characters (the default policy; an organization may ask more).
    #[schema(min_length = 8, max_length = 1024)]
    pub password: Option<String>,
}

/// `{type, number}`, as the SDK's `phoneNumbers` items.
#[derive(ToSchema)]
pub struct PhoneNumber {
    #[schema(max_length = 1024)]
    pub r#type: Option<String>,
    #[schema(max_length = 1024)]
    pub number: Option<String>,
}

/// A postal address, as the SDK's `addresses` items.
#[derive(ToSchema)]
pub struct Address {
    #[schema(max_length = 1024)]
    pub r#type: Option<String>,
    #[schema(max_length = 1024)]
    #[serde(rename = "streetAddress")]
    pub street_address: Option<String>,
    #[schema(max_length = 1024)]
    pub locality: Option<String>,
    #[schema(max_length = 1024)]
    pub region: Option<String>,
    #[schema(max_length = 1024)]
    #[serde(rename = "postalCode")]
    pub postal_code: Option<String>,
    #[schema(max_length = 1024)]
    pub country: Option<String>,
}

/// An MFA exclusion: no code asked for until `exclusionUntil` (or for
/// `exclusionDays` from now; neither: until lifted).
#[derive(ToSchema)]
pub struct MfaExclusion {
    pub exclusion: Option<bool>,
    #[schema(minimum = 1, maximum = 365)]
    #[serde(rename = "exclusionDays")]
    pub exclusion_days: Option<u32>,
    /// In the future.
    #[serde(rename = "exclusionUntil")]
    pub exclusion_until: Option<String>,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAdmin {
    #[schema(
        max_length = 254,
        pattern = r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63}){1,8}$"
    )]
    pub email: String,
    #[schema(inline)]
    pub role: Role,
    #[schema(min_length = 8, max_length = 1024)]
    pub password: Option<String>,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    AdministratorWithBilling,
    Administrator,
    Manager,
    HelpDesk,
    ReadOnly,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)]
pub struct AcceptInvitation {
    #[schema(pattern = r"^[0-9a-f]{24}$")]
    pub orgId: String,
    #[schema(pattern = r"^[0-9a-f]{24}$")]
    pub adminId: String,
    #[schema(max_length = 128)]
    pub token: String,
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)]
pub struct Activation {
    #[schema(pattern = r"^[0-9a-f]{24}$")]
    pub orgId: String,
    #[schema(pattern = r"^[0-9a-f]{24}$")]
    pub userId: String,
    #[schema(max_length = 128)]
    pub token: String,
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)]
pub struct Login {
    #[schema(pattern = r"^[0-9a-f]{24}$")]
    pub orgId: String,
    #[schema(max_length = 256)]
    pub username: String,
    #[schema(max_length = 1024)]
    pub password: String,
    #[schema(pattern = r"^[0-9]{6}$")]
    pub totp: Option<String>,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)]
pub struct TotpFinish {
    #[schema(pattern = r"^[0-9a-f]{24}$")]
    pub orgId: String,
    #[schema(max_length = 256)]
    pub username: String,
    #[schema(max_length = 1024)]
    pub password: String,
    #[schema(pattern = r"^[0-9]{6}$")]
    pub code: String,
}

/// `PUT /api/systemusers/{id}`: every field optional.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChanges {
    #[schema(max_length = 256)]
    pub firstname: Option<String>,
    #[schema(max_length = 256)]
    pub lastname: Option<String>,
    #[schema(max_length = 256)]
    pub displayname: Option<String>,
    #[schema(max_length = 256)]
    pub description: Option<String>,
    #[schema(max_length = 256)]
    #[serde(rename = "jobTitle")]
    pub job_title: Option<String>,
    #[schema(max_length = 256)]
    pub department: Option<String>,
    #[serde(default)]
    pub sudo: bool,
    #[serde(default)]
    pub passwordless_sudo: bool,
    #[serde(default)]
    pub ldap_binding_user: bool,
    #[serde(default)]
    pub samba_service_user: bool,
    #[schema(max_length = 256)]
    pub middlename: Option<String>,
    #[schema(max_length = 256)]
    pub company: Option<String>,
    #[schema(max_length = 256)]
    #[serde(rename = "costCenter")]
    pub cost_center: Option<String>,
    #[schema(max_length = 256)]
    #[serde(rename = "employeeIdentifier")]
    pub employee_identifier: Option<String>,
    #[schema(max_length = 256)]
    #[serde(rename = "employeeType")]
    pub employee_type: Option<String>,
    #[schema(max_length = 256)]
    pub location: Option<String>,
    #[schema(max_length = 256)]
    pub manager: Option<String>,
    #[serde(default)]
    pub password_never_expires: bool,
    #[serde(default)]
    pub allow_public_key: bool,
    #[serde(default)]
    pub enable_managed_uid: bool,
    #[serde(default)]
    pub externally_managed: bool,
    #[schema(max_length = 256)]
    pub external_dn: Option<String>,
    #[schema(max_length = 256)]
    pub external_source_type: Option<String>,
    #[schema(max_length = 16384)]
    pub public_key: Option<String>,
    #[serde(rename = "phoneNumbers", default)]
    #[schema(max_items = 20)]
    pub phone_numbers: Vec<PhoneNumber>,
    #[schema(max_items = 20)]
    #[serde(default)]
    pub addresses: Vec<Address>,
    pub mfa: Option<MfaExclusion>,
    /// Suspends (true) or unsuspends (false), as `state` says it.
    #[serde(default)]
    pub suspended: bool,
    /// Only `false`: unlocks.
    #[serde(default)]
    pub account_locked: bool,
    #[schema(min_length = 8, max_length = 1024)]
    pub password: Option<String>,
    #[schema(inline)]
    #[serde(default)]
    pub state: ChangeableState,
    #[serde(default)]
    pub enable_user_portal_multifactor: bool,
    #[schema(minimum = 1, maximum = 365)]
    #[serde(rename = "enrollmentDays", default)]
    pub enrollment_days: u32,
}

#[derive(ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChangeableState {
    Activated,
    Suspended,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    #[schema(inline)]
    pub searchFilter: Option<SearchFilter>,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchFilter {
    #[schema(max_length = 256)]
    pub searchTerm: String,
}

/// A user group (`POST` and `PUT`: the name is required).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Group {
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    #[schema(max_length = 1024)]
    pub description: Option<String>,
    #[schema(
        max_length = 254,
        pattern = r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63}){1,8}$"
    )]
    pub email: Option<String>,
    #[schema(inline)]
    #[serde(default)]
    pub attributes: GroupAttributes,
}

/// `PATCH` of a user group: any subset of the fields.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupPatch {
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    #[serde(default)]
    pub name: String,
    #[schema(max_length = 1024)]
    pub description: Option<String>,
    #[schema(
        max_length = 254,
        pattern = r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63}){1,8}$"
    )]
    pub email: Option<String>,
    #[schema(inline)]
    #[serde(default)]
    pub attributes: GroupAttributes,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupAttributes {
    #[serde(default)]
    pub sambaEnabled: bool,
    #[schema(inline)]
    #[serde(default)]
    pub sudo: Sudo,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Sudo {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub withoutPassword: bool,
}

/// `{op, type, id}` for members (type `user`).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberOp {
    #[schema(inline)]
    pub op: MemberVerb,
    #[schema(inline)]
    #[serde(rename = "type")]
    pub kind: UserType,
    #[schema(pattern = r"^[0-9a-f]{24}$")]
    pub id: String,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MemberVerb {
    Add,
    Remove,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UserType {
    User,
}

/// `{op, type, id, attributes}` for associations.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssociationOp {
    #[schema(inline)]
    pub op: AssociationVerb,
    #[schema(inline)]
    #[serde(rename = "type")]
    pub kind: TargetType,
    #[schema(pattern = r"^[0-9a-f]{24}$")]
    pub id: String,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AssociationVerb {
    Add,
    Remove,
    Update,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetType {
    LdapServer,
    RadiusServer,
    Application,
    SystemGroup,
    System,
}

/// A Directory Insights query. Rules across fields (`end_time` after `start_time`; a
/// field once per `search_term` list) are checked by the server. As in the hosted
/// product, other keys are ignored, a `limit` outside 1–10000 means 1000 and a `sort`
/// other than DESC means ASC.
#[derive(ToSchema)]
pub struct InsightsQuery {
    #[schema(inline, min_items = 1)]
    pub service: Vec<InsightsService>,
    #[schema(format = DateTime)]
    pub start_time: String,
    #[schema(format = DateTime)]
    pub end_time: Option<String>,
    pub limit: Option<i64>,
    /// ASC (default) or DESC, any case.
    pub sort: Option<String>,
    /// Rows to skip before the page.
    #[schema(minimum = 0)]
    pub skip: Option<u64>,
    /// Fields to return (dot notation for nested ones).
    #[schema(min_items = 1)]
    pub fields: Option<Vec<String>>,
    /// `{"and"|"or"|"not": [{field: value or [values]}, …]}`.
    #[schema(value_type = Option<Object>)]
    pub search_term: Option<serde_json::Value>,
    /// The previous page's `X-Search_after`.
    #[schema(value_type = Option<Vec<Object>>)]
    pub search_after: Option<Vec<serde_json::Value>>,
}

#[derive(ToSchema)]
pub struct InsightsDistinct {
    #[schema(inline, min_items = 1)]
    pub service: Vec<InsightsService>,
    #[schema(format = DateTime)]
    pub start_time: String,
    #[schema(format = DateTime)]
    pub end_time: Option<String>,
    /// The field whose values are counted (dot notation).
    #[schema(min_length = 1, max_length = 128)]
    pub field: String,
    #[schema(value_type = Option<Object>)]
    pub search_term: Option<serde_json::Value>,
}

#[derive(ToSchema)]
pub struct InsightsInterval {
    #[schema(inline, min_items = 1)]
    pub service: Vec<InsightsService>,
    #[schema(format = DateTime)]
    pub start_time: String,
    #[schema(format = DateTime)]
    pub end_time: Option<String>,
    #[schema(inline)]
    pub interval_unit: IntervalUnit,
    #[schema(pattern = r"^([1-9][0-9]{0,3}|10000)$")]
    pub interval_value: Option<String>,
    /// An offset such as -0500 (buckets start at local midnight).
    #[schema(pattern = r"^([+-](0[0-9]|1[0-4]):?[0-5][0-9]|Z|UTC)?$")]
    pub timezone: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub search_term: Option<serde_json::Value>,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InsightsService {
    All,
    Alerts,
    Directory,
    Ldap,
    Mdm,
    Notifications,
    ObjectStorage,
    PasswordManager,
    Radius,
    Reports,
    SaasAppManagement,
    Software,
    Sso,
    Systems,
    AccessManagement,
    AssetManagement,
    Workflows,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IntervalUnit {
    S,
    M,
    H,
    D,
    W,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InsightsSql {
    /// One read-only query over the table `events`.
    #[schema(min_length = 1, max_length = 65536)]
    pub sql: String,
    #[schema(inline)]
    pub format: Option<SqlFormat>,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SqlFormat {
    Json,
    Csv,
}
