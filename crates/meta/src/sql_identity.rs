//! `IdentityStore` over the SQL store: the pools, write transactions and dialect rules of
//! `sql.rs`, on the tables of migration 0004. Writes of one statement go straight to the
//! write pool (a statement is its own transaction); writes that check something first run
//! in `begin_write`. Duplicate names are caught with `ON CONFLICT DO NOTHING`, which both
//! databases answer without an error, so concurrent creations resolve to one `Conflict`.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::identity::{
    Account, AccountKind, Grant, Grantee, IdentityStore, NewAccount, PasswordRecord, RepoRole,
    RepositoryAccessFacts, RepositoryInfo, RobotRecord, SigningKey, Team, TeamRole, TokenKind,
    TokenRecord, Visibility,
};
use crate::sql::{NAME_SEPARATOR, SqlMetaStore, split_names};
use crate::{MetaError, MetaStore, Page, now_millis};

/// How an enum is spelled in its TEXT column (the CHECK constraints of migration 0004).
trait Spelling: Sized + Copy {
    const WHAT: &'static str;
    fn spelling(self) -> &'static str;
    fn from_spelling(s: &str) -> Option<Self>;

    fn parse(s: &str) -> Result<Self, MetaError> {
        Self::from_spelling(s).ok_or_else(|| MetaError::Corrupt(format!("{} {s:?}", Self::WHAT)))
    }
}

macro_rules! spelling {
    ($ty:ident, $what:literal, $($variant:ident => $text:literal),+ $(,)?) => {
        impl Spelling for $ty {
            const WHAT: &'static str = $what;
            fn spelling(self) -> &'static str {
                match self {
                    $($ty::$variant => $text,)+
                }
            }
            fn from_spelling(s: &str) -> Option<Self> {
                match s {
                    $($text => Some($ty::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

spelling!(AccountKind, "account kind", User => "user", Organization => "organization", Robot => "robot");
spelling!(TeamRole, "team role", Member => "member", Creator => "creator", Admin => "admin");
spelling!(RepoRole, "repository role", Read => "read", Write => "write", Admin => "admin");
spelling!(Visibility, "visibility", Private => "private", Public => "public");
spelling!(TokenKind, "token kind", App => "app", Api => "api");

/// The columns `account_from_row` reads, from `accounts` aliased `a`.
macro_rules! account_columns {
    () => {
        "a.id, a.name, a.kind, a.owner_id, a.email, a.superuser, a.enabled, a.description, \
         a.created_at"
    };
}

/// Booleans are stored as BIGINT 0/1 (see migration 0004).
fn flag(v: i64) -> bool {
    v != 0
}

fn account_from_row(row: &AnyRow) -> Result<Account, MetaError> {
    Ok(Account {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        kind: AccountKind::parse(&row.try_get::<String, _>("kind")?)?,
        owner_id: row.try_get("owner_id")?,
        email: row.try_get("email")?,
        superuser: flag(row.try_get("superuser")?),
        enabled: flag(row.try_get("enabled")?),
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
    })
}

fn accounts_from_rows(rows: &[AnyRow]) -> Result<Vec<Account>, MetaError> {
    rows.iter().map(account_from_row).collect()
}

fn team_from_row(row: &AnyRow) -> Result<Team, MetaError> {
    Ok(Team {
        id: row.try_get("id")?,
        organization_id: row.try_get("organization_id")?,
        name: row.try_get("name")?,
        role: TeamRole::parse(&row.try_get::<String, _>("role")?)?,
        description: row.try_get("description")?,
    })
}

fn repository_from_row(row: &AnyRow) -> Result<RepositoryInfo, MetaError> {
    Ok(RepositoryInfo {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        visibility: Visibility::parse(&row.try_get::<String, _>("visibility")?)?,
        created_at: row.try_get("created_at")?,
    })
}

fn token_from_row(row: &AnyRow) -> Result<TokenRecord, MetaError> {
    Ok(TokenRecord {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        name: row.try_get("name")?,
        secret_hash: row.try_get("secret_hash")?,
        scopes: row.try_get("scopes")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

fn signing_key_from_row(row: &AnyRow) -> Result<SigningKey, MetaError> {
    Ok(SigningKey {
        kid: row.try_get("kid")?,
        algorithm: row.try_get("algorithm")?,
        private_der: row.try_get("private_der")?,
        created_at: row.try_get("created_at")?,
        retired_at: row.try_get("retired_at")?,
    })
}

/// The strongest of the comma-separated roles a `string_agg` gathered (None if none).
fn strongest<R: Spelling + Ord>(roles: Option<String>) -> Result<Option<R>, MetaError> {
    let mut strongest = None;
    for role in roles.iter().flat_map(|r| r.split(',')) {
        strongest = strongest.max(Some(R::parse(role)?));
    }
    Ok(strongest)
}

/// The bounds of the repository names in namespace `ns`: [`ns/`, `ns0`), since `0` follows
/// `/` in byte order. A range uses the name index, and unlike LIKE (where `_` is a
/// wildcard) matches exactly.
pub(crate) fn namespace_bounds(ns: &str) -> (String, String) {
    (format!("{ns}/"), format!("{ns}0"))
}

/// Whether the row `sql` selects with `id` as `$1` exists.
async fn exists(
    conn: impl sqlx::Executor<'_, Database = sqlx::Any>,
    sql: &'static str,
    id: i64,
) -> Result<bool, MetaError> {
    Ok(sqlx::query(sql)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .is_some())
}

/// Finds account `$1` if it can be a team member or a grantee (organizations cannot).
const USER_OR_ROBOT: &str = "SELECT 1 FROM accounts WHERE id = $1 AND kind IN ('user', 'robot')";

#[async_trait::async_trait]
impl IdentityStore for SqlMetaStore {
    async fn create_account(&self, account: NewAccount<'_>) -> Result<Account, MetaError> {
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        if let Some(owner) = account.owner_id {
            let namespace = "SELECT 1 FROM accounts WHERE id = $1 AND kind <> 'robot'";
            if !exists(&mut *tx, namespace, owner).await? {
                return Err(MetaError::NotFound(format!("namespace account {owner}")));
            }
        }
        let inserted = sqlx::query(
            "INSERT INTO accounts (name, kind, owner_id, email, password_hash, token_hash, \
             superuser, description, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(account.name)
        .bind(account.kind.spelling())
        .bind(account.owner_id)
        .bind(account.email)
        .bind(account.password_hash)
        .bind(account.token_hash)
        .bind(i64::from(account.superuser))
        .bind(account.description)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = inserted else {
            return Err(MetaError::Conflict(format!("account {}", account.name)));
        };
        let id = row.try_get(0)?;
        tx.commit().await?;
        Ok(Account {
            id,
            name: account.name.to_owned(),
            kind: account.kind,
            owner_id: account.owner_id,
            email: account.email.map(str::to_owned),
            superuser: account.superuser,
            enabled: true,
            description: account.description.map(str::to_owned),
            created_at: now,
        })
    }

    async fn account(&self, name: &str) -> Result<Option<Account>, MetaError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts a WHERE a.name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(account_from_row).transpose()
    }

    async fn account_by_id(&self, id: i64) -> Result<Option<Account>, MetaError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts a WHERE a.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(account_from_row).transpose()
    }

    async fn accounts(
        &self,
        kind: AccountKind,
        owner_id: Option<i64>,
    ) -> Result<Vec<Account>, MetaError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts a WHERE a.kind = $1 AND ($2 IS NULL OR a.owner_id = $2) \
             ORDER BY a.name"
        ))
        .bind(kind.spelling())
        .bind(owner_id)
        .fetch_all(&self.read)
        .await?;
        accounts_from_rows(&rows)
    }

    async fn delete_account(&self, id: i64) -> Result<bool, MetaError> {
        let mut tx = self.begin_write().await?;
        let Some(row) = sqlx::query("SELECT name, kind FROM accounts WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(false);
        };
        if AccountKind::parse(&row.try_get::<String, _>(1)?)? != AccountKind::Robot {
            // As `delete_repository`, for every repository of the namespace at once.
            let name = row.try_get::<String, _>(0)?;
            let (first, end) = namespace_bounds(&name);
            sqlx::query("DELETE FROM repositories WHERE name >= $1 AND name < $2")
                .bind(first)
                .bind(end)
                .execute(&mut *tx)
                .await?;
            // The namespace's quota (its limits follow by ON DELETE CASCADE): a namespace
            // created later under the name starts without one.
            sqlx::query("DELETE FROM namespace_quotas WHERE namespace = $1")
                .bind(&name)
                .execute(&mut *tx)
                .await?;
        }
        // Robots, teams (with their members and grants), memberships, grants and tokens
        // follow by ON DELETE CASCADE.
        sqlx::query("DELETE FROM accounts WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Only users can be superusers: for other accounts this returns false.
    async fn set_superuser(&self, id: i64, superuser: bool) -> Result<bool, MetaError> {
        let done =
            sqlx::query("UPDATE accounts SET superuser = $2 WHERE id = $1 AND kind = 'user'")
                .bind(id)
                .bind(i64::from(superuser))
                .execute(&self.write)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_enabled(&self, id: i64, enabled: bool) -> Result<bool, MetaError> {
        let done = sqlx::query("UPDATE accounts SET enabled = $2 WHERE id = $1")
            .bind(id)
            .bind(i64::from(enabled))
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn any_superuser(&self) -> Result<bool, MetaError> {
        let row = sqlx::query("SELECT 1 FROM accounts WHERE superuser = 1 LIMIT 1")
            .fetch_optional(&self.read)
            .await?;
        Ok(row.is_some())
    }

    async fn password_record(&self, user_name: &str) -> Result<Option<PasswordRecord>, MetaError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            account_columns!(),
            ", a.password_hash, a.credential_generation FROM accounts a \
             WHERE a.name = $1 AND a.kind = 'user'"
        ))
        .bind(user_name)
        .fetch_optional(&self.read)
        .await?;
        row.map(|row| {
            Ok(PasswordRecord {
                account: account_from_row(&row)?,
                password_hash: row.try_get("password_hash")?,
                credential_generation: row.try_get("credential_generation")?,
            })
        })
        .transpose()
    }

    async fn set_password(&self, id: i64, password_hash: &str) -> Result<bool, MetaError> {
        let done = sqlx::query(
            "UPDATE accounts SET password_hash = $2, \
             credential_generation = credential_generation + 1 WHERE id = $1 AND kind = 'user'",
        )
        .bind(id)
        .bind(password_hash)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn robot_record(&self, robot_name: &str) -> Result<Option<RobotRecord>, MetaError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            account_columns!(),
            ", a.token_hash, a.credential_generation FROM accounts a \
             WHERE a.name = $1 AND a.kind = 'robot'"
        ))
        .bind(robot_name)
        .fetch_optional(&self.read)
        .await?;
        row.map(|row| {
            Ok(RobotRecord {
                account: account_from_row(&row)?,
                token_hash: row.try_get("token_hash")?,
                generation: row.try_get("credential_generation")?,
            })
        })
        .transpose()
    }

    async fn set_robot_token(&self, id: i64, token_hash: &[u8]) -> Result<bool, MetaError> {
        let done = sqlx::query(
            "UPDATE accounts SET token_hash = $2, \
             credential_generation = credential_generation + 1 WHERE id = $1 AND kind = 'robot'",
        )
        .bind(id)
        .bind(token_hash)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_token(&self, kind: TokenKind, token: &TokenRecord) -> Result<(), MetaError> {
        let mut tx = self.begin_write().await?;
        let account = "SELECT 1 FROM accounts WHERE id = $1";
        if !exists(&mut *tx, account, token.account_id).await? {
            return Err(MetaError::NotFound(format!("account {}", token.account_id)));
        }
        let inserted = sqlx::query(
            "INSERT INTO tokens (kind, id, account_id, name, secret_hash, scopes, created_at, \
             expires_at, revoked_at, last_used_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (kind, id) DO NOTHING",
        )
        .bind(kind.spelling())
        .bind(&token.id)
        .bind(token.account_id)
        .bind(&token.name)
        .bind(token.secret_hash.as_slice())
        .bind(&token.scopes)
        .bind(token.created_at)
        .bind(token.expires_at)
        .bind(token.revoked_at)
        .bind(token.last_used_at)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(MetaError::Conflict(format!("token {}", token.id)));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn token(&self, kind: TokenKind, id: &str) -> Result<Option<TokenRecord>, MetaError> {
        let row = sqlx::query("SELECT * FROM tokens WHERE kind = $1 AND id = $2")
            .bind(kind.spelling())
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn tokens(
        &self,
        kind: TokenKind,
        account_id: i64,
    ) -> Result<Vec<TokenRecord>, MetaError> {
        let rows = sqlx::query(
            "SELECT * FROM tokens WHERE account_id = $1 AND kind = $2 \
             ORDER BY created_at DESC, id DESC",
        )
        .bind(account_id)
        .bind(kind.spelling())
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// "Live" means not revoked yet: an expired token can still be revoked.
    async fn revoke_token(&self, kind: TokenKind, id: &str, at: i64) -> Result<bool, MetaError> {
        let done = sqlx::query(
            "UPDATE tokens SET revoked_at = $3 \
             WHERE kind = $1 AND id = $2 AND revoked_at IS NULL",
        )
        .bind(kind.spelling())
        .bind(id)
        .bind(at)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn touch_token(&self, kind: TokenKind, id: &str, at: i64) -> Result<(), MetaError> {
        // Nodes touching one token may finish out of order: the latest use stays.
        let done = sqlx::query(
            "UPDATE tokens SET last_used_at = \
                CASE WHEN last_used_at IS NULL OR last_used_at < $3 THEN $3 \
                ELSE last_used_at END \
             WHERE kind = $1 AND id = $2",
        )
        .bind(kind.spelling())
        .bind(id)
        .bind(at)
        .execute(&self.write)
        .await?;
        if done.rows_affected() == 0 {
            return Err(MetaError::NotFound(format!("token {id}")));
        }
        Ok(())
    }

    async fn create_team(
        &self,
        organization_id: i64,
        name: &str,
        role: TeamRole,
        description: Option<&str>,
    ) -> Result<Team, MetaError> {
        let mut tx = self.begin_write().await?;
        let organization = "SELECT 1 FROM accounts WHERE id = $1 AND kind = 'organization'";
        if !exists(&mut *tx, organization, organization_id).await? {
            return Err(MetaError::NotFound(format!(
                "organization {organization_id}"
            )));
        }
        let inserted = sqlx::query(
            "INSERT INTO teams (organization_id, name, role, description) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (organization_id, name) DO NOTHING RETURNING id",
        )
        .bind(organization_id)
        .bind(name)
        .bind(role.spelling())
        .bind(description)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = inserted else {
            return Err(MetaError::Conflict(format!("team {name}")));
        };
        let id = row.try_get(0)?;
        tx.commit().await?;
        Ok(Team {
            id,
            organization_id,
            name: name.to_owned(),
            role,
            description: description.map(str::to_owned),
        })
    }

    async fn team(&self, organization_id: i64, name: &str) -> Result<Option<Team>, MetaError> {
        let row = sqlx::query("SELECT * FROM teams WHERE organization_id = $1 AND name = $2")
            .bind(organization_id)
            .bind(name)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(team_from_row).transpose()
    }

    async fn teams(&self, organization_id: i64) -> Result<Vec<Team>, MetaError> {
        let rows = sqlx::query("SELECT * FROM teams WHERE organization_id = $1 ORDER BY name")
            .bind(organization_id)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(team_from_row).collect()
    }

    async fn set_team_role(&self, team_id: i64, role: TeamRole) -> Result<bool, MetaError> {
        let done = sqlx::query("UPDATE teams SET role = $2 WHERE id = $1")
            .bind(team_id)
            .bind(role.spelling())
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_team(&self, team_id: i64) -> Result<bool, MetaError> {
        // Memberships and the team's grants follow by ON DELETE CASCADE.
        let done = sqlx::query("DELETE FROM teams WHERE id = $1")
            .bind(team_id)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn add_team_member(&self, team_id: i64, account_id: i64) -> Result<bool, MetaError> {
        let mut tx = self.begin_write().await?;
        if !exists(&mut *tx, "SELECT 1 FROM teams WHERE id = $1", team_id).await? {
            return Err(MetaError::NotFound(format!("team {team_id}")));
        }
        if !exists(&mut *tx, USER_OR_ROBOT, account_id).await? {
            return Err(MetaError::NotFound(format!("user or robot {account_id}")));
        }
        let added = sqlx::query(
            "INSERT INTO team_members (team_id, account_id) VALUES ($1, $2) \
             ON CONFLICT (team_id, account_id) DO NOTHING",
        )
        .bind(team_id)
        .bind(account_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        tx.commit().await?;
        Ok(added)
    }

    async fn remove_team_member(&self, team_id: i64, account_id: i64) -> Result<bool, MetaError> {
        let done = sqlx::query("DELETE FROM team_members WHERE team_id = $1 AND account_id = $2")
            .bind(team_id)
            .bind(account_id)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn team_members(&self, team_id: i64) -> Result<Vec<Account>, MetaError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            account_columns!(),
            " FROM team_members m JOIN accounts a ON a.id = m.account_id \
             WHERE m.team_id = $1 ORDER BY a.name"
        ))
        .bind(team_id)
        .fetch_all(&self.read)
        .await?;
        accounts_from_rows(&rows)
    }

    async fn memberships(&self, account_id: i64) -> Result<Vec<(Account, TeamRole)>, MetaError> {
        // A row per team; rows of one organization are adjacent (name order).
        let rows = sqlx::query(concat!(
            "SELECT ",
            account_columns!(),
            ", t.role FROM team_members m JOIN teams t ON t.id = m.team_id \
             JOIN accounts a ON a.id = t.organization_id \
             WHERE m.account_id = $1 ORDER BY a.name"
        ))
        .bind(account_id)
        .fetch_all(&self.read)
        .await?;
        let mut memberships: Vec<(Account, TeamRole)> = Vec::new();
        for row in &rows {
            let role = TeamRole::parse(&row.try_get::<String, _>("role")?)?;
            let organization_id: i64 = row.try_get("id")?;
            match memberships.last_mut() {
                Some((organization, strongest)) if organization.id == organization_id => {
                    *strongest = (*strongest).max(role);
                }
                _ => memberships.push((account_from_row(row)?, role)),
            }
        }
        Ok(memberships)
    }

    async fn create_repository(
        &self,
        name: &str,
        visibility: Visibility,
    ) -> Result<RepositoryInfo, MetaError> {
        let now = now_millis();
        let inserted = sqlx::query(
            "INSERT INTO repositories (name, visibility, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(name)
        .bind(visibility.spelling())
        .bind(now)
        .fetch_optional(&self.write)
        .await?;
        let Some(row) = inserted else {
            return Err(MetaError::Conflict(format!("repository {name}")));
        };
        Ok(RepositoryInfo {
            id: row.try_get(0)?,
            name: name.to_owned(),
            visibility,
            created_at: now,
        })
    }

    async fn repository_info(&self, name: &str) -> Result<Option<RepositoryInfo>, MetaError> {
        let row = sqlx::query(
            "SELECT id, name, visibility, created_at FROM repositories WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(repository_from_row).transpose()
    }

    async fn namespace_repositories(
        &self,
        namespace: &str,
    ) -> Result<Vec<RepositoryInfo>, MetaError> {
        let (first, end) = namespace_bounds(namespace);
        let rows = sqlx::query(
            "SELECT id, name, visibility, created_at FROM repositories \
             WHERE name >= $1 AND name < $2 ORDER BY name",
        )
        .bind(first)
        .bind(end)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(repository_from_row).collect()
    }

    async fn set_visibility(&self, name: &str, visibility: Visibility) -> Result<bool, MetaError> {
        let done = sqlx::query("UPDATE repositories SET visibility = $2 WHERE name = $1")
            .bind(name)
            .bind(visibility.spelling())
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_repository(&self, name: &str) -> Result<bool, MetaError> {
        // Manifests (with their references), tags, blob links and grants follow by
        // ON DELETE CASCADE; rows of `blobs` stay for garbage collection.
        let done = sqlx::query("DELETE FROM repositories WHERE name = $1")
            .bind(name)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_grant(
        &self,
        repository_id: i64,
        grantee: &Grantee,
        role: RepoRole,
    ) -> Result<(), MetaError> {
        let mut tx = self.begin_write().await?;
        let repository = "SELECT 1 FROM repositories WHERE id = $1";
        if !exists(&mut *tx, repository, repository_id).await? {
            return Err(MetaError::NotFound(format!("repository {repository_id}")));
        }
        let (check, what, upsert, id) = match *grantee {
            Grantee::Account(id) => (
                USER_OR_ROBOT,
                "user or robot",
                "INSERT INTO repository_grants (repository_id, account_id, role) \
                 VALUES ($1, $2, $3) ON CONFLICT (account_id, repository_id) \
                 WHERE account_id IS NOT NULL DO UPDATE SET role = excluded.role",
                id,
            ),
            Grantee::Team(id) => (
                "SELECT 1 FROM teams WHERE id = $1",
                "team",
                "INSERT INTO repository_grants (repository_id, team_id, role) \
                 VALUES ($1, $2, $3) ON CONFLICT (team_id, repository_id) \
                 WHERE team_id IS NOT NULL DO UPDATE SET role = excluded.role",
                id,
            ),
        };
        if !exists(&mut *tx, check, id).await? {
            return Err(MetaError::NotFound(format!("{what} {id}")));
        }
        sqlx::query(upsert)
            .bind(repository_id)
            .bind(id)
            .bind(role.spelling())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn remove_grant(&self, repository_id: i64, grantee: &Grantee) -> Result<bool, MetaError> {
        let (sql, id) = match *grantee {
            Grantee::Account(id) => (
                "DELETE FROM repository_grants WHERE repository_id = $1 AND account_id = $2",
                id,
            ),
            Grantee::Team(id) => (
                "DELETE FROM repository_grants WHERE repository_id = $1 AND team_id = $2",
                id,
            ),
        };
        let done = sqlx::query(sql)
            .bind(repository_id)
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn grants(&self, repository_id: i64) -> Result<Vec<Grant>, MetaError> {
        let rows = sqlx::query(
            "SELECT g.role, g.account_id, g.team_id, a.name AS account_name, \
                a.kind AS account_kind, t.name AS team_name \
             FROM repository_grants g \
             LEFT JOIN accounts a ON a.id = g.account_id \
             LEFT JOIN teams t ON t.id = g.team_id \
             WHERE g.repository_id = $1 \
             ORDER BY g.team_id IS NOT NULL, COALESCE(a.name, t.name)",
        )
        .bind(repository_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|row| {
                let role = RepoRole::parse(&row.try_get::<String, _>("role")?)?;
                let grant = match row.try_get::<Option<i64>, _>("account_id")? {
                    Some(id) => Grant {
                        grantee_name: row.try_get("account_name")?,
                        grantee: Grantee::Account(id),
                        grantee_kind: Some(AccountKind::parse(
                            &row.try_get::<String, _>("account_kind")?,
                        )?),
                        role,
                    },
                    None => Grant {
                        grantee_name: row.try_get("team_name")?,
                        grantee: Grantee::Team(row.try_get("team_id")?),
                        grantee_kind: None,
                        role,
                    },
                };
                Ok(grant)
            })
            .collect()
    }

    async fn access_facts(
        &self,
        account_id: Option<i64>,
        namespace: &str,
        repository: &str,
    ) -> Result<RepositoryAccessFacts, MetaError> {
        // One row whatever exists: the repository and the namespace are outer-joined to a
        // constant, the roles gathered by subqueries (none for an anonymous caller, whose
        // NULL id matches nothing; none for the empty repository name, which matches no
        // repository). The strongest role is picked in Rust, where roles are ordered.
        let row = sqlx::query(concat!(
            "SELECT r.id AS repository_id, r.name AS repository_name, r.visibility, \
                r.created_at AS repository_created_at, ",
            account_columns!(),
            ", (SELECT string_agg(g.role, ',') FROM repository_grants g \
                WHERE g.repository_id = r.id AND (g.account_id = $3 OR g.team_id IN \
                    (SELECT m.team_id FROM team_members m WHERE m.account_id = $3))) \
                AS grant_roles, \
              (SELECT string_agg(t.role, ',') FROM teams t \
                JOIN team_members m ON m.team_id = t.id \
                WHERE t.organization_id = a.id AND m.account_id = $3) AS team_roles \
             FROM (SELECT 1 AS one) anchor \
             LEFT JOIN repositories r ON r.name = $2 \
             LEFT JOIN accounts a ON a.name = $1 AND a.kind IN ('user', 'organization')"
        ))
        .bind(namespace)
        .bind(repository)
        .bind(account_id)
        .fetch_one(&self.read)
        .await?;
        let repository = match row.try_get::<Option<i64>, _>("repository_id")? {
            None => None,
            Some(id) => Some(RepositoryInfo {
                id,
                name: row.try_get("repository_name")?,
                visibility: Visibility::parse(&row.try_get::<String, _>("visibility")?)?,
                created_at: row.try_get("repository_created_at")?,
            }),
        };
        let namespace = match row.try_get::<Option<i64>, _>("id")? {
            None => None,
            Some(_) => Some(account_from_row(&row)?),
        };
        Ok(RepositoryAccessFacts {
            repository,
            namespace,
            grant: strongest(row.try_get("grant_roles")?)?,
            team_role: strongest(row.try_get("team_roles")?)?,
        })
    }

    async fn visible_repositories(
        &self,
        account_id: Option<i64>,
        superuser: bool,
        include_public: bool,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, MetaError> {
        if superuser {
            return self.repositories(Page { last, limit }).await;
        }
        // A branch of the union per way of seeing a repository; the page is the first
        // `limit` names of the union. The branches that may be large (public repositories,
        // the caller's namespace) yield only their own first page, read in index order;
        // the others are bounded by the caller's teams and grants and are written as
        // joins from them, so that both planners start there (PostgreSQL, given an ORDER
        // BY … LIMIT, would rather walk every repository in name order). Namespace ranges
        // as in `namespace_bounds`. A NULL account id matches nothing.
        let row = sqlx::query(
            "SELECT string_agg(name, $5 ORDER BY name) FROM ( \
                SELECT name FROM ( \
                    SELECT name FROM ( \
                        SELECT r.name FROM repositories r \
                        WHERE $3 = 1 AND r.visibility = 'public' AND r.name > $2 \
                        ORDER BY r.name LIMIT $4) public_repositories \
                    UNION \
                    SELECT name FROM ( \
                        SELECT r.name FROM repositories r \
                        WHERE r.name >= \
                            (SELECT name || '/' FROM accounts WHERE id = $1 AND kind = 'user') \
                          AND r.name < \
                            (SELECT name || '0' FROM accounts WHERE id = $1 AND kind = 'user') \
                          AND r.name > $2 \
                        ORDER BY r.name LIMIT $4) own_namespace \
                    UNION \
                    SELECT r.name FROM team_members m \
                    JOIN teams t ON t.id = m.team_id AND t.role = 'admin' \
                    JOIN accounts o ON o.id = t.organization_id \
                    JOIN repositories r \
                        ON r.name >= (o.name || '/') AND r.name < (o.name || '0') \
                    WHERE m.account_id = $1 AND r.name > $2 \
                    UNION \
                    SELECT r.name FROM repository_grants g \
                    JOIN repositories r ON r.id = g.repository_id \
                    WHERE g.account_id = $1 AND r.name > $2 \
                    UNION \
                    SELECT r.name FROM team_members m \
                    JOIN repository_grants g ON g.team_id = m.team_id \
                    JOIN repositories r ON r.id = g.repository_id \
                    WHERE m.account_id = $1 AND r.name > $2 \
                ) visible ORDER BY name LIMIT $4) page",
        )
        .bind(account_id)
        .bind(last.unwrap_or(""))
        .bind(i64::from(include_public))
        .bind(i64::from(limit))
        .bind(NAME_SEPARATOR)
        .fetch_one(&self.read)
        .await?;
        Ok(split_names(row.try_get(0)?))
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKey>, MetaError> {
        let rows = sqlx::query("SELECT * FROM signing_keys ORDER BY created_at DESC, kid DESC")
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(signing_key_from_row).collect()
    }

    async fn add_signing_key(&self, key: &SigningKey) -> Result<(), MetaError> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, algorithm, private_der, created_at, retired_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kid) DO NOTHING",
        )
        .bind(&key.kid)
        .bind(&key.algorithm)
        .bind(key.private_der.as_slice())
        .bind(key.created_at)
        .bind(key.retired_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// A key retired already keeps its first retirement time (and still counts as found).
    async fn retire_signing_key(&self, kid: &str, at: i64) -> Result<bool, MetaError> {
        let done = sqlx::query(
            "UPDATE signing_keys SET retired_at = COALESCE(retired_at, $2) WHERE kid = $1",
        )
        .bind(kid)
        .bind(at)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_signing_key(&self, kid: &str) -> Result<bool, MetaError> {
        let done = sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
            .bind(kid)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
