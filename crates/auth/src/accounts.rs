//! Administration of accounts, organizations, teams, robots, tokens, repositories and
//! grants: the operations behind the management API and the `bulwark` CLI. Callers check
//! authorization first (`Authenticator::authorize`); these operations validate input, store,
//! and emit events.

use std::sync::Arc;

use crate::{AuthError, Authenticator, Identity};

pub struct Accounts {
    auth: Arc<Authenticator>,
}

impl Accounts {
    pub fn new(auth: Arc<Authenticator>) -> Accounts {
        Accounts { auth }
    }

    pub fn authenticator(&self) -> &Arc<Authenticator> {
        &self.auth
    }

    /// Called before content is pushed to `repository` by an identity already authorized to
    /// push there: creates the repository (private) if it does not exist, granting `admin` on
    /// it to a creator who would not otherwise administer it; for a superuser, also creates
    /// a missing namespace as an organization.
    pub async fn prepare_push(
        &self,
        identity: &Identity,
        repository: &str,
    ) -> Result<(), AuthError> {
        todo!("{identity:?} {repository}")
    }

    /// Creates the superuser `admin` when no superuser exists (first start), with
    /// `password` or a generated one, which is returned so it can be shown once.
    pub async fn ensure_admin(&self, password: Option<&str>) -> Result<Option<String>, AuthError> {
        todo!("{password:?}")
    }
}
