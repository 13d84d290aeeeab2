//! The end-to-end suite: one test binary (each binary links the world).

mod e2e {
    pub mod admin_mfa;
    pub mod admins_http;
    pub mod cli;
    pub mod cluster;
    pub mod contract_nats;
    pub mod contract_sqlite;
    pub mod export;
    pub mod faults;
    pub mod fidelity;
    pub mod golden;
    pub mod groups_http;
    pub mod import;
    pub mod insights_http;
    pub mod insights_recovery;
    pub mod insights_s3;
    pub mod layout;
    pub mod login;
    pub mod mail;
    pub mod multi_org;
    pub mod openapi;
    pub mod projections;
    pub mod security;
    pub mod server_http;
    pub mod users_http;
    pub mod write_stalls;
}
