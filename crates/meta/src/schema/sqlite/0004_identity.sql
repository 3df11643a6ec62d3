-- Identities and who may do what: accounts, organization teams, repository grants,
-- credentials (hashed only) and the keys that sign registry tokens. Booleans are BIGINT
-- 0/1 on both databases: sqlx's Any driver decodes a Rust bool only from a boolean value,
-- which SQLite never returns.

-- Users, organizations and robots share one id space and one name space: a repository's
-- namespace is an account of either of the first two kinds; a robot `ns+name` belongs to
-- the namespace account that owns it and goes with it.
CREATE TABLE accounts (
    id                    INTEGER PRIMARY KEY,
    name                  TEXT NOT NULL UNIQUE,
    kind                  TEXT NOT NULL CHECK (kind IN ('user', 'organization', 'robot')),
    owner_id              BIGINT REFERENCES accounts(id) ON DELETE CASCADE,
    email                 TEXT,
    -- Users: an Argon2id PHC string.
    password_hash         TEXT,
    -- Robots: the hash of their token.
    token_hash            BLOB,
    -- Bumped with every password or robot token change: refresh tokens issued on an
    -- older generation stop working.
    credential_generation BIGINT NOT NULL DEFAULT 0,
    superuser             BIGINT NOT NULL DEFAULT 0 CHECK (superuser IN (0, 1)),
    enabled               BIGINT NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    description           TEXT,
    created_at            BIGINT NOT NULL,
    CHECK ((kind = 'robot') = (owner_id IS NOT NULL)),
    CHECK ((kind = 'robot') = (token_hash IS NOT NULL))
);
CREATE INDEX accounts_by_owner ON accounts(owner_id) WHERE owner_id IS NOT NULL;
CREATE INDEX accounts_by_kind ON accounts(kind, name);

-- A team's role applies in its organization: members read what the team is granted,
-- creators may also create repositories, admins administer the organization.
CREATE TABLE teams (
    id              INTEGER PRIMARY KEY,
    organization_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('member', 'creator', 'admin')),
    description     TEXT,
    UNIQUE (organization_id, name)
);

CREATE TABLE team_members (
    team_id    BIGINT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    PRIMARY KEY (team_id, account_id)
);
-- Every authorization looks up the caller's teams.
CREATE INDEX team_members_by_account ON team_members(account_id);

-- Repositories created by a push are private until someone makes them public.
ALTER TABLE repositories ADD COLUMN visibility TEXT NOT NULL DEFAULT 'private'
    CHECK (visibility IN ('private', 'public'));
-- Anonymous catalogs walk the public repositories in name order.
CREATE INDEX repositories_by_visibility ON repositories(visibility, name);

-- A role on one repository for one account (user or robot) or one team, never both.
CREATE TABLE repository_grants (
    id            INTEGER PRIMARY KEY,
    repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    account_id    BIGINT REFERENCES accounts(id) ON DELETE CASCADE,
    team_id       BIGINT REFERENCES teams(id) ON DELETE CASCADE,
    role          TEXT NOT NULL CHECK (role IN ('read', 'write', 'admin')),
    CHECK ((account_id IS NULL) <> (team_id IS NULL))
);
-- One grant per grantee and repository; setting a grant again replaces its role. These
-- also serve the lookups of a caller's grants.
CREATE UNIQUE INDEX repository_grants_per_account
    ON repository_grants(account_id, repository_id) WHERE account_id IS NOT NULL;
CREATE UNIQUE INDEX repository_grants_per_team
    ON repository_grants(team_id, repository_id) WHERE team_id IS NOT NULL;
CREATE INDEX repository_grants_by_repository ON repository_grants(repository_id);

-- Application tokens (used as passwords by registry clients) and API tokens (bearer
-- tokens of the management API, limited to scopes): the same shape, two id spaces. The
-- id is the public part of the token string; the secret is stored only as its hash.
CREATE TABLE tokens (
    kind         TEXT NOT NULL CHECK (kind IN ('app', 'api')),
    id           TEXT NOT NULL,
    account_id   BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    secret_hash  BLOB NOT NULL,
    scopes       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT,
    PRIMARY KEY (kind, id)
);
CREATE INDEX tokens_by_account ON tokens(account_id, kind, created_at);

-- Keys that sign registry tokens; retired keys still verify until deleted. Every node
-- loads all of them, so a token signed on one node verifies on any.
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    algorithm   TEXT NOT NULL,
    private_der BLOB NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT
);
