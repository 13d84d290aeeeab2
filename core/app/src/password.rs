//! Password hashing with argon2id at the OWASP floor (m=19456 KiB, t=2, p=1), run on
//! the blocking pool so that hashing never stalls the async runtime.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::AppError;
use castellan_domain::DomainError;

/// Longer inputs are refused before hashing (hashing megabytes is a DoS).
pub const MAX_PASSWORD_BYTES: usize = 4096;

fn hasher() -> Argon2<'static> {
    let params = Params::new(19_456, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn check_length(password: &str) -> Result<(), AppError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(DomainError::invalid("password", "the password is longer than 4 KiB").into());
    }
    Ok(())
}

/// Hashes synchronously; call from a blocking context.
pub fn hash_blocking(password: &str) -> Result<String, AppError> {
    check_length(password)?;
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::Internal(format!("argon2: {e}")))
}

/// Hashes on the blocking pool.
pub async fn hash(password: String) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
}

/// Verifies on the blocking pool. A malformed stored hash verifies as false.
pub async fn verify(password: String, phc: String) -> Result<bool, AppError> {
    check_length(&password)?;
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&phc)
            .map(|parsed| {
                hasher()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))
}

/// The cost parameters of a stored hash, as `m=…,t=…,p=…` (or the algorithm's name).
pub fn parameters(phc: &str) -> String {
    match PasswordHash::new(phc) {
        Ok(h) if h.algorithm.as_str() == "argon2id" => h.params.to_string(),
        Ok(h) => h.algorithm.as_str().to_string(),
        Err(_) => "unreadable".into(),
    }
}

/// True when a stored hash is weaker than the floor (not argon2id, or less memory or
/// fewer passes than m=19456 KiB, t=2): it is replaced at the next successful login.
pub fn needs_rehash(phc: &str) -> bool {
    let Ok(h) = PasswordHash::new(phc) else {
        return false;
    };
    if h.algorithm.as_str() != "argon2id" {
        return true;
    }
    let get = |name: &str| h.params.get_decimal(name).unwrap_or(0);
    get("m") < 19_456 || get("t") < 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_with_argon2id_at_the_owasp_floor_and_verifies() {
        let phc = hash("correct horse".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify("correct horse".into(), phc.clone()).await.unwrap());
        assert!(!verify("wrong".into(), phc).await.unwrap());
        assert!(!verify("x".into(), "not a hash".into()).await.unwrap());
    }

    #[test]
    fn weak_hashes_need_a_rehash() {
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(4096, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw", &SaltString::generate(&mut rand::rngs::OsRng))
        .unwrap()
        .to_string();
        assert!(needs_rehash(&weak));
        assert_eq!(parameters(&weak), "m=4096,t=1,p=1");
        assert!(!needs_rehash(&hash_blocking("pw").unwrap()));
    }

    #[tokio::test]
    async fn oversized_passwords_are_refused_before_hashing() {
        let err = hash("x".repeat(MAX_PASSWORD_BYTES + 1)).await.unwrap_err();
        assert!(err.to_string().contains("4 KiB"));
    }
}
