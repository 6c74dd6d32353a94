//! Local accounts: users with a role ([`Role`]: viewer reads, responder
//! acknowledges, closes and re-runs triage, admin also manages users),
//! passwords hashed with argon2id, API tokens and sessions (random secrets
//! stored only as SHA-256 hashes, shown once), and login rate limiting
//! ([`RateLimiter`], pure, time passed in).
//!
//! Key items: [`Accounts`] (over a `state::Store`), [`Principal`] (who a
//! request acts as), [`hash_password`]/[`verify_password`]. It speaks no
//! HTTP: cookies, CSRF checks on requests and status codes are the server's.
//! Secrets never reach a log, an error or a `Debug` output.

use std::collections::HashMap;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::Digest;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads alerts, the journal and the runbook.
    Viewer,
    /// Also acknowledges, closes and re-runs triage.
    Responder,
    /// Also manages users.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Responder => "responder",
            Role::Admin => "admin",
        }
    }

    /// Acknowledging, closing, correcting entries and re-running triage.
    pub fn can_respond(self) -> bool {
        self >= Role::Responder
    }

    pub fn can_manage_users(self) -> bool {
        self == Role::Admin
    }
}

impl std::str::FromStr for Role {
    type Err = AccountError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "viewer" => Ok(Role::Viewer),
            "responder" => Ok(Role::Responder),
            "admin" => Ok(Role::Admin),
            other => Err(AccountError::Invalid(format!("unknown role {other:?}: expected viewer, responder or admin"))),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

/// Errors of account operations; none holds a password, token or hash.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    Invalid(String),
    #[error("wrong user name or password")]
    WrongCredentials,
    #[error("too many failed logins: try again in {} s", .retry_after.as_secs().max(1))]
    RateLimited { retry_after: Duration },
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    #[error(transparent)]
    State(#[from] state::StateError),
}

/// The shortest password `user add` accepts.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// How long a session lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// A user name: 1 to 64 of `a-z`, `0-9`, `.`, `_`, `-`, starting with a letter or digit.
pub fn validate_user_name(name: &str) -> Result<(), AccountError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|character: char| character.is_ascii_lowercase() || character.is_ascii_digit())
        && name
            .chars()
            .all(|character| character.is_ascii_lowercase() || character.is_ascii_digit() || ".-_".contains(character));
    if valid {
        Ok(())
    } else {
        Err(AccountError::Invalid(format!(
            "user name {name:?} must be 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit"
        )))
    }
}

/// A fresh secret: 32 random bytes as 64 hex digits.
pub fn new_secret() -> Result<String, AccountError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| AccountError::Random(error.to_string()))?;
    Ok(hex::encode(bytes))
}

/// How a token or session secret is stored: its SHA-256, hex. (The secrets
/// are 256 random bits, so a fast hash is enough; passwords get argon2id.)
pub fn secret_hash(secret: &str) -> String {
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// Whether two secrets are equal, in constant time.
pub fn secrets_equal(left: &str, right: &str) -> bool {
    use subtle::ConstantTimeEq;
    left.len() == right.len() && bool::from(left.as_bytes().ct_eq(right.as_bytes()))
}

/// The argon2id PHC string of `password` (argon2's default parameters:
/// 19 MiB, 2 passes, 1 lane).
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|error| AccountError::Random(error.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|error| AccountError::Hash(error.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| AccountError::Hash(error.to_string()))
}

/// Whether `password` matches the PHC string `hash`.
pub fn verify_password(hash: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else { return false };
    argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
}

/// Failed logins per key (a user name, a client address) in a sliding
/// window: after `max_failures` the key is refused until the oldest failure
/// leaves the window. Pure: time (milliseconds) is passed in.
#[derive(Debug)]
pub struct RateLimiter {
    max_failures: usize,
    window_ms: i64,
    failures: HashMap<String, Vec<i64>>,
}

/// The most keys a limiter tracks; beyond, the stalest are dropped.
const MAX_TRACKED_KEYS: usize = 10_000;

impl Default for RateLimiter {
    /// 5 failures per 15 minutes.
    fn default() -> Self {
        RateLimiter::new(5, Duration::from_secs(15 * 60))
    }
}

impl RateLimiter {
    pub fn new(max_failures: usize, window: Duration) -> Self {
        RateLimiter {
            max_failures,
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
            failures: HashMap::new(),
        }
    }

    /// `Err(retry_after)` while `key` has used up its failures.
    pub fn check(&mut self, key: &str, now_ms: i64) -> Result<(), Duration> {
        let window_ms = self.window_ms;
        let Some(times) = self.failures.get_mut(key) else { return Ok(()) };
        times.retain(|time| now_ms - time < window_ms);
        if times.len() < self.max_failures {
            return Ok(());
        }
        let oldest = times.iter().copied().min().unwrap_or(now_ms);
        Err(Duration::from_millis(u64::try_from(oldest + window_ms - now_ms).unwrap_or(0)))
    }

    pub fn record_failure(&mut self, key: &str, now_ms: i64) {
        if self.failures.len() >= MAX_TRACKED_KEYS && !self.failures.contains_key(key) {
            let window_ms = self.window_ms;
            self.failures.retain(|_, times| times.iter().any(|time| now_ms - time < window_ms));
            if self.failures.len() >= MAX_TRACKED_KEYS {
                let stalest = self
                    .failures
                    .iter()
                    .min_by_key(|(_, times)| times.iter().copied().max().unwrap_or(0))
                    .map(|(key, _)| key.clone());
                if let Some(stalest) = stalest {
                    self.failures.remove(&stalest);
                }
            }
        }
        self.failures.entry(key.to_owned()).or_default().push(now_ms);
    }

    pub fn record_success(&mut self, key: &str) {
        self.failures.remove(key);
    }
}

/// A new session: the cookie's secret and the CSRF token forms must carry.
#[derive(Clone)]
pub struct NewSession {
    pub token: String,
    pub csrf_token: String,
    pub principal: Principal,
    pub expires_at_ms: i64,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("NewSession").field("principal", &self.principal).finish_non_exhaustive()
    }
}

/// Accounts over the state store, with the login rate limiter.
#[derive(Debug)]
pub struct Accounts {
    store: state::Store,
    limiter: std::sync::Mutex<RateLimiter>,
    /// A hash verified when the user does not exist, so that a login takes
    /// as long for an unknown name as for a wrong password.
    decoy_hash: String,
}

fn principal(user: &state::User) -> Option<Principal> {
    Some(Principal { name: user.name.clone(), role: user.role.parse().ok()? })
}

impl Accounts {
    pub fn new(store: state::Store) -> Result<Accounts, AccountError> {
        Ok(Accounts {
            store,
            limiter: std::sync::Mutex::new(RateLimiter::default()),
            decoy_hash: hash_password(&new_secret()?)?,
        })
    }

    /// Adds a user, or with `replace` sets an existing user's role and password.
    pub async fn add_user(
        &self,
        name: &str,
        role: Role,
        password: &str,
        replace: bool,
        now_ms: i64,
    ) -> Result<(), AccountError> {
        validate_user_name(name)?;
        if password.chars().count() < MIN_PASSWORD_CHARS {
            return Err(AccountError::Invalid(format!(
                "the password must have at least {MIN_PASSWORD_CHARS} characters"
            )));
        }
        let password = password.to_owned();
        let hash = tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(|error| AccountError::Hash(error.to_string()))??;
        match self.store.add_user(name, role.as_str(), &hash, now_ms).await {
            Err(state::StateError::UserExists(_)) if replace => {
                self.store.update_user(name, role.as_str(), &hash).await?;
            }
            other => other?,
        }
        tracing::info!(user = %name, role = %role, "user saved");
        Ok(())
    }

    /// Creates an API token for a user and returns it: the only time it is shown.
    pub async fn create_token(&self, user: &str, now_ms: i64) -> Result<String, AccountError> {
        let token = format!("abt_{}", new_secret()?);
        self.store.add_token(&secret_hash(&token), user, now_ms).await?;
        tracing::info!(user = %user, "API token created");
        Ok(token)
    }

    /// The principal of a bearer token.
    pub async fn authenticate_token(&self, token: &str) -> Result<Option<Principal>, AccountError> {
        Ok(self.store.token_user(&secret_hash(token.trim())).await?.as_ref().and_then(principal))
    }

    /// Checks a password and opens a session. `client` (an address) is rate
    /// limited beside the user name.
    pub async fn login(
        &self,
        name: &str,
        password: &str,
        client: &str,
        now_ms: i64,
    ) -> Result<NewSession, AccountError> {
        let keys = [format!("user:{name}"), format!("client:{client}")];
        {
            let mut limiter = self.limiter.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for key in &keys {
                limiter.check(key, now_ms).map_err(|retry_after| AccountError::RateLimited { retry_after })?;
            }
        }
        let user = self.store.user(name).await?;
        let hash = user.as_ref().map_or(self.decoy_hash.clone(), |user| user.password_hash.clone());
        let password = password.to_owned();
        // argon2 is CPU work by design: off the async threads.
        let verified = tokio::task::spawn_blocking(move || verify_password(&hash, &password))
            .await
            .map_err(|error| AccountError::Hash(error.to_string()))?;
        let found = user.as_ref().filter(|_| verified).and_then(principal);
        {
            let mut limiter = self.limiter.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if found.is_none() {
                for key in &keys {
                    limiter.record_failure(key, now_ms);
                }
            } else {
                limiter.record_success(&keys[0]);
            }
        }
        let Some(principal) = found else {
            tracing::warn!(user = %name, client = %client, "login failed");
            return Err(AccountError::WrongCredentials);
        };
        let token = new_secret()?;
        let csrf_token = new_secret()?;
        let expires_at_ms = now_ms + i64::try_from(SESSION_LIFETIME.as_millis()).unwrap_or(i64::MAX / 2);
        self.store.add_session(&secret_hash(&token), &principal.name, &csrf_token, now_ms, expires_at_ms).await?;
        tracing::info!(user = %principal.name, "logged in");
        Ok(NewSession { token, csrf_token, principal, expires_at_ms })
    }

    /// The principal and CSRF token of a live session.
    pub async fn session(&self, token: &str, now_ms: i64) -> Result<Option<(Principal, String)>, AccountError> {
        let Some(session) = self.store.session(&secret_hash(token), now_ms).await? else { return Ok(None) };
        Ok(principal(&session.user).map(|principal| (principal, session.csrf_token)))
    }

    /// Ends a session.
    pub async fn logout(&self, token: &str, now_ms: i64) -> Result<(), AccountError> {
        Ok(self.store.delete_session(&secret_hash(token), now_ms).await?)
    }

    /// Every user and role.
    pub async fn users(&self) -> Result<Vec<Principal>, AccountError> {
        Ok(self.store.users().await?.iter().filter_map(principal).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let hash = hash_password("correct horse battery").expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
        assert!(verify_password(&hash, "correct horse battery"));
        assert!(!verify_password(&hash, "correct horse battery "));
        assert!(!verify_password("not a hash", "x"));
        assert_ne!(hash, hash_password("correct horse battery").expect("hash"), "salted");
    }

    #[test]
    fn roles_order_what_they_may_do() {
        assert!(!Role::Viewer.can_respond());
        assert!(Role::Responder.can_respond() && !Role::Responder.can_manage_users());
        assert!(Role::Admin.can_respond() && Role::Admin.can_manage_users());
        assert_eq!("responder".parse::<Role>().expect("role"), Role::Responder);
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn user_names_are_plain() {
        assert!(validate_user_name("alice.b-2").is_ok());
        for bad in ["", "Alice", "-x", "a b", "a'--", &"a".repeat(65)] {
            assert!(validate_user_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_rate_limiter_refuses_after_five_failures_in_the_window() {
        let mut limiter = RateLimiter::default();
        for second in 0..5 {
            assert!(limiter.check("user:alice", second * 1000).is_ok());
            limiter.record_failure("user:alice", second * 1000);
        }
        let retry = limiter.check("user:alice", 5_000).expect_err("limited");
        assert_eq!(retry, Duration::from_millis(15 * 60 * 1000 - 5_000));
        assert!(limiter.check("user:bob", 5_000).is_ok(), "other keys are not affected");
        assert!(limiter.check("user:alice", 15 * 60 * 1000).is_ok(), "the oldest failure left the window");
        limiter.record_success("user:alice");
        assert!(limiter.check("user:alice", 5_000).is_ok());
    }

    #[test]
    fn secrets_are_random_and_stored_hashed() {
        let first = new_secret().expect("secret");
        assert_eq!(first.len(), 64);
        assert_ne!(first, new_secret().expect("secret"));
        assert_eq!(secret_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(secrets_equal("abc", "abc") && !secrets_equal("abc", "abd") && !secrets_equal("abc", "ab"));
    }

    #[tokio::test]
    async fn users_tokens_sessions_and_login_limits() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let store = state::Store::open_sqlite(directory.path()).await.expect("store");
        let accounts = Accounts::new(store).expect("accounts");
        assert!(matches!(
            accounts.add_user("alice", Role::Responder, "short", false, 1).await,
            Err(AccountError::Invalid(_))
        ));
        accounts.add_user("alice", Role::Responder, "a long enough password", false, 1).await.expect("add");
        assert!(accounts.add_user("alice", Role::Admin, "a long enough password", false, 1).await.is_err());
        accounts.add_user("alice", Role::Admin, "another long password", true, 1).await.expect("replace");

        let token = accounts.create_token("alice", 2).await.expect("token");
        assert!(token.starts_with("abt_"));
        let principal = accounts.authenticate_token(&token).await.expect("read").expect("known");
        assert_eq!(principal, Principal { name: "alice".into(), role: Role::Admin });
        assert!(accounts.authenticate_token("abt_guess").await.expect("read").is_none());
        assert!(accounts.create_token("nobody", 2).await.is_err());

        let session = accounts.login("alice", "another long password", "127.0.0.1", 10).await.expect("login");
        let (who, csrf) = accounts.session(&session.token, 20).await.expect("read").expect("live");
        assert_eq!(who.name, "alice");
        assert_eq!(csrf, session.csrf_token);
        accounts.logout(&session.token, 30).await.expect("logout");
        assert!(accounts.session(&session.token, 40).await.expect("read").is_none());

        for attempt in 0..5 {
            assert!(matches!(
                accounts.login("alice", "wrong", "10.0.0.1", 100 + attempt).await,
                Err(AccountError::WrongCredentials)
            ));
        }
        assert!(matches!(
            accounts.login("alice", "another long password", "10.0.0.2", 200).await,
            Err(AccountError::RateLimited { .. })
        ));
        assert!(matches!(
            accounts.login("ghost", "whatever", "10.0.0.3", 200).await,
            Err(AccountError::WrongCredentials)
        ));
    }
}
