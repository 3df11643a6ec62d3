//! The identity store's behaviour (accounts, teams, grants, credentials, signing keys), run
//! once on SQLite and once on PostgreSQL like `store.rs`.

mod common;

use std::sync::Arc;

use bulwark_meta::{
    Account, AccountKind, Grantee, IdentityStore, MetaError, MetaStore, NewAccount, NewManifest,
    Page, RepoRole, SigningKey, SqlMetaStore, TeamRole, TokenKind, TokenRecord, Visibility,
};
use bulwark_oci::{Digest, Reference, Tag};
use common::{Fixture, on_every_backend};

on_every_backend!(
    accounts_are_created_found_and_listed,
    account_names_are_unique_across_kinds,
    concurrent_creations_of_one_name_make_one_account,
    credentials_bump_their_generation,
    teams_members_and_memberships,
    grants_are_set_replaced_and_removed,
    repositories_are_created_listed_by_namespace_and_made_public,
    access_facts_gather_grants_and_team_roles,
    access_facts_of_missing_things_and_anonymous_callers,
    visible_repositories_unite_every_way_of_seeing,
    visible_repositories_paginate_without_duplicates,
    deleting_a_namespace_takes_everything_it_owns,
    deleting_a_namespace_spares_names_sharing_its_prefix,
    deleting_a_repository_takes_its_content_and_grants,
    tokens_are_listed_newest_first_revoked_and_touched,
    signing_keys_are_added_once_retired_and_deleted,
    pushed_repositories_are_private,
);

fn new_account(name: &str, kind: AccountKind) -> NewAccount<'_> {
    NewAccount {
        name,
        kind,
        owner_id: None,
        email: None,
        password_hash: None,
        token_hash: None,
        superuser: false,
        description: None,
    }
}

async fn user(s: &SqlMetaStore, name: &str) -> Account {
    s.create_account(NewAccount {
        password_hash: Some("$argon2id$hash"),
        ..new_account(name, AccountKind::User)
    })
    .await
    .unwrap()
}

async fn org(s: &SqlMetaStore, name: &str) -> Account {
    s.create_account(new_account(name, AccountKind::Organization))
        .await
        .unwrap()
}

async fn robot(s: &SqlMetaStore, owner: &Account, name: &str) -> Account {
    let name = format!("{}+{name}", owner.name);
    s.create_account(NewAccount {
        owner_id: Some(owner.id),
        token_hash: Some(b"robot token hash"),
        ..new_account(&name, AccountKind::Robot)
    })
    .await
    .unwrap()
}

fn d(s: &str) -> Digest {
    Digest::sha256_of(s.as_bytes())
}

/// Puts a tagged manifest (with one layer) into `repository`, creating it.
async fn push(s: &SqlMetaStore, repository: &str) {
    let layer = d(&format!("layer of {repository}"));
    let digest = d(&format!("manifest of {repository}"));
    s.link_blob(repository, &layer, 5).await.unwrap();
    s.put_manifest(NewManifest {
        repository,
        digest: &digest,
        media_type: "application/vnd.oci.image.manifest.v1+json",
        artifact_type: None,
        subject: None,
        annotations_json: None,
        content: b"{}",
        blobs: vec![(&layer, 5)],
        children: vec![],
        tag: Some("latest"),
    })
    .await
    .unwrap();
}

async fn visible(
    s: &SqlMetaStore,
    account: Option<&Account>,
    include_public: bool,
    last: Option<&str>,
    limit: u32,
) -> Vec<String> {
    s.visible_repositories(account.map(|a| a.id), false, include_public, last, limit)
        .await
        .unwrap()
}

fn names(accounts: &[Account]) -> Vec<&str> {
    accounts.iter().map(|a| a.name.as_str()).collect()
}

fn is_conflict<T: std::fmt::Debug>(result: Result<T, MetaError>) -> bool {
    matches!(result, Err(MetaError::Conflict(_)))
}

fn is_not_found<T: std::fmt::Debug>(result: Result<T, MetaError>) -> bool {
    matches!(result, Err(MetaError::NotFound(_)))
}

async fn accounts_are_created_found_and_listed(f: &Fixture) {
    let s = f.open().await;
    let bob = user(&s, "bob").await;
    let alice = s
        .create_account(NewAccount {
            email: Some("alice@example.com"),
            superuser: true,
            description: Some("first"),
            ..new_account("alice", AccountKind::User)
        })
        .await
        .unwrap();
    assert_eq!(
        (
            alice.kind,
            alice.email.as_deref(),
            alice.superuser,
            alice.enabled
        ),
        (AccountKind::User, Some("alice@example.com"), true, true)
    );
    assert_eq!(s.account("alice").await.unwrap(), Some(alice.clone()));
    assert_eq!(
        s.account_by_id(alice.id).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(s.account("nobody").await.unwrap(), None);
    assert_eq!(s.account_by_id(alice.id + 1000).await.unwrap(), None);

    let acme = org(&s, "acme").await;
    let other = org(&s, "other").await;
    let bot = robot(&s, &acme, "ci").await;
    robot(&s, &acme, "builder").await;
    robot(&s, &other, "ci").await;
    assert_eq!(bot.owner_id, Some(acme.id));
    // A robot belongs to a namespace that exists.
    let orphan = s
        .create_account(NewAccount {
            owner_id: Some(acme.id + 1000),
            token_hash: Some(b"hash"),
            ..new_account("ghost+ci", AccountKind::Robot)
        })
        .await;
    assert!(is_not_found(orphan));

    let users = s.accounts(AccountKind::User, None).await.unwrap();
    assert_eq!(names(&users), ["alice", "bob"]);
    let orgs = s.accounts(AccountKind::Organization, None).await.unwrap();
    assert_eq!(names(&orgs), ["acme", "other"]);
    let robots = s.accounts(AccountKind::Robot, Some(acme.id)).await.unwrap();
    assert_eq!(names(&robots), ["acme+builder", "acme+ci"]);
    let robots = s.accounts(AccountKind::Robot, None).await.unwrap();
    assert_eq!(names(&robots), ["acme+builder", "acme+ci", "other+ci"]);

    assert!(s.any_superuser().await.unwrap());
    assert!(s.set_superuser(alice.id, false).await.unwrap());
    assert!(!s.any_superuser().await.unwrap());
    assert!(s.set_superuser(bob.id, true).await.unwrap());
    assert!(s.account_by_id(bob.id).await.unwrap().unwrap().superuser);
    assert!(s.any_superuser().await.unwrap());
    // Only users are superusers.
    assert!(!s.set_superuser(bot.id, true).await.unwrap());
    assert!(!s.set_superuser(bob.id + 1000, true).await.unwrap());

    assert!(s.set_enabled(bot.id, false).await.unwrap());
    assert!(!s.account_by_id(bot.id).await.unwrap().unwrap().enabled);
    assert!(s.set_enabled(bot.id, true).await.unwrap());
    assert!(s.account_by_id(bot.id).await.unwrap().unwrap().enabled);
    assert!(!s.set_enabled(bot.id + 1000, false).await.unwrap());
}

async fn account_names_are_unique_across_kinds(f: &Fixture) {
    let s = f.open().await;
    let alice = user(&s, "alice").await;
    assert!(is_conflict(
        s.create_account(new_account("alice", AccountKind::User))
            .await
    ));
    assert!(is_conflict(
        s.create_account(new_account("alice", AccountKind::Organization))
            .await
    ));
    robot(&s, &alice, "ci").await;
    assert!(is_conflict(
        s.create_account(NewAccount {
            owner_id: Some(alice.id),
            token_hash: Some(b"other hash"),
            ..new_account("alice+ci", AccountKind::Robot)
        })
        .await
    ));
    assert_eq!(s.accounts(AccountKind::User, None).await.unwrap().len(), 1);
}

async fn concurrent_creations_of_one_name_make_one_account(f: &Fixture) {
    let s = Arc::new(f.open().await);
    let creations = (0..8).map(|_| {
        let s = s.clone();
        tokio::spawn(async move {
            s.create_account(new_account("contested", AccountKind::User))
                .await
        })
    });
    let mut created = 0;
    for creation in creations.collect::<Vec<_>>() {
        match creation.await.unwrap() {
            Ok(_) => created += 1,
            Err(MetaError::Conflict(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(created, 1);
}

async fn credentials_bump_their_generation(f: &Fixture) {
    let s = f.open().await;
    let alice = user(&s, "alice").await;
    let acme = org(&s, "acme").await;
    let bot = robot(&s, &acme, "ci").await;

    let record = s.password_record("alice").await.unwrap().unwrap();
    assert_eq!(record.account, alice);
    assert_eq!(record.password_hash.as_deref(), Some("$argon2id$hash"));
    assert_eq!(record.credential_generation, 0);
    assert!(s.set_password(alice.id, "$argon2id$new").await.unwrap());
    let record = s.password_record("alice").await.unwrap().unwrap();
    assert_eq!(
        (
            record.password_hash.as_deref(),
            record.credential_generation
        ),
        (Some("$argon2id$new"), 1)
    );
    // Passwords are users' only.
    assert_eq!(s.password_record("acme").await.unwrap(), None);
    assert_eq!(s.password_record("acme+ci").await.unwrap(), None);
    assert!(!s.set_password(acme.id, "x").await.unwrap());
    assert!(!s.set_password(bot.id, "x").await.unwrap());
    assert!(!s.set_password(alice.id + 1000, "x").await.unwrap());

    let record = s.robot_record("acme+ci").await.unwrap().unwrap();
    assert_eq!(record.account, bot);
    assert_eq!(
        (record.token_hash.as_slice(), record.generation),
        (&b"robot token hash"[..], 0)
    );
    assert!(s.set_robot_token(bot.id, b"regenerated").await.unwrap());
    let record = s.robot_record("acme+ci").await.unwrap().unwrap();
    assert_eq!(
        (record.token_hash.as_slice(), record.generation),
        (&b"regenerated"[..], 1)
    );
    assert_eq!(s.robot_record("alice").await.unwrap(), None);
    assert!(!s.set_robot_token(alice.id, b"x").await.unwrap());
}

async fn teams_members_and_memberships(f: &Fixture) {
    let s = f.open().await;
    let alice = user(&s, "alice").await;
    let bob = user(&s, "bob").await;
    let acme = org(&s, "acme").await;
    let other = org(&s, "other").await;
    let bot = robot(&s, &acme, "ci").await;

    let devs = s
        .create_team(acme.id, "devs", TeamRole::Member, Some("developers"))
        .await
        .unwrap();
    let admins = s
        .create_team(acme.id, "admins", TeamRole::Admin, None)
        .await
        .unwrap();
    let builders = s
        .create_team(other.id, "devs", TeamRole::Creator, None)
        .await
        .unwrap();
    assert!(is_conflict(
        s.create_team(acme.id, "devs", TeamRole::Admin, None).await
    ));
    // Teams belong to organizations.
    assert!(is_not_found(
        s.create_team(alice.id, "friends", TeamRole::Member, None)
            .await
    ));
    assert_eq!(s.team(acme.id, "devs").await.unwrap(), Some(devs.clone()));
    assert_eq!(devs.description.as_deref(), Some("developers"));
    assert_eq!(s.team(acme.id, "nobody").await.unwrap(), None);
    let teams = s.teams(acme.id).await.unwrap();
    assert_eq!(teams, [admins.clone(), devs.clone()]);

    assert!(s.add_team_member(devs.id, alice.id).await.unwrap());
    assert!(!s.add_team_member(devs.id, alice.id).await.unwrap());
    assert!(s.add_team_member(devs.id, bot.id).await.unwrap());
    assert!(s.add_team_member(devs.id, bob.id).await.unwrap());
    assert!(s.add_team_member(admins.id, alice.id).await.unwrap());
    assert!(s.add_team_member(builders.id, alice.id).await.unwrap());
    assert!(is_not_found(
        s.add_team_member(devs.id + 1000, alice.id).await
    ));
    assert!(is_not_found(
        s.add_team_member(devs.id, alice.id + 1000).await
    ));
    // Organizations are not members of teams.
    assert!(is_not_found(s.add_team_member(devs.id, other.id).await));
    let members = s.team_members(devs.id).await.unwrap();
    assert_eq!(names(&members), ["acme+ci", "alice", "bob"]);

    // The strongest role per organization.
    let memberships = s.memberships(alice.id).await.unwrap();
    assert_eq!(
        memberships,
        [
            (acme.clone(), TeamRole::Admin),
            (other.clone(), TeamRole::Creator)
        ]
    );
    assert_eq!(
        s.memberships(bot.id).await.unwrap(),
        [(acme.clone(), TeamRole::Member)]
    );
    assert_eq!(s.memberships(acme.id).await.unwrap(), []);

    assert!(s.set_team_role(devs.id, TeamRole::Creator).await.unwrap());
    assert_eq!(
        s.team(acme.id, "devs").await.unwrap().unwrap().role,
        TeamRole::Creator
    );
    assert!(
        !s.set_team_role(devs.id + 1000, TeamRole::Admin)
            .await
            .unwrap()
    );

    assert!(s.remove_team_member(admins.id, alice.id).await.unwrap());
    assert!(!s.remove_team_member(admins.id, alice.id).await.unwrap());
    assert_eq!(
        s.memberships(alice.id).await.unwrap(),
        [
            (acme.clone(), TeamRole::Creator),
            (other, TeamRole::Creator)
        ]
    );

    assert!(s.delete_team(devs.id).await.unwrap());
    assert!(!s.delete_team(devs.id).await.unwrap());
    assert_eq!(s.team_members(devs.id).await.unwrap(), []);
    assert_eq!(s.memberships(bot.id).await.unwrap(), []);
    assert_eq!(s.teams(acme.id).await.unwrap(), [admins]);
}

async fn grants_are_set_replaced_and_removed(f: &Fixture) {
    let s = f.open().await;
    let alice = user(&s, "alice").await;
    let zed = user(&s, "zed").await;
    let acme = org(&s, "acme").await;
    let bot = robot(&s, &acme, "ci").await;
    let devs = s
        .create_team(acme.id, "devs", TeamRole::Member, None)
        .await
        .unwrap();
    let repo = s
        .create_repository("acme/app", Visibility::Private)
        .await
        .unwrap();
    let other = s
        .create_repository("acme/other", Visibility::Private)
        .await
        .unwrap();

    s.set_grant(repo.id, &Grantee::Account(zed.id), RepoRole::Read)
        .await
        .unwrap();
    s.set_grant(repo.id, &Grantee::Account(alice.id), RepoRole::Read)
        .await
        .unwrap();
    s.set_grant(repo.id, &Grantee::Account(alice.id), RepoRole::Admin)
        .await
        .unwrap();
    s.set_grant(repo.id, &Grantee::Team(devs.id), RepoRole::Write)
        .await
        .unwrap();
    s.set_grant(repo.id, &Grantee::Account(bot.id), RepoRole::Write)
        .await
        .unwrap();
    s.set_grant(other.id, &Grantee::Account(alice.id), RepoRole::Read)
        .await
        .unwrap();

    // Accounts first, then teams, each in name order; setting again replaced the role.
    let grants = s.grants(repo.id).await.unwrap();
    let summary: Vec<_> = grants
        .iter()
        .map(|g| {
            (
                g.grantee_name.as_str(),
                g.grantee.clone(),
                g.grantee_kind,
                g.role,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "acme+ci",
                Grantee::Account(bot.id),
                Some(AccountKind::Robot),
                RepoRole::Write
            ),
            (
                "alice",
                Grantee::Account(alice.id),
                Some(AccountKind::User),
                RepoRole::Admin
            ),
            (
                "zed",
                Grantee::Account(zed.id),
                Some(AccountKind::User),
                RepoRole::Read
            ),
            ("devs", Grantee::Team(devs.id), None, RepoRole::Write),
        ]
    );

    assert!(
        s.remove_grant(repo.id, &Grantee::Account(alice.id))
            .await
            .unwrap()
    );
    assert!(
        !s.remove_grant(repo.id, &Grantee::Account(alice.id))
            .await
            .unwrap()
    );
    assert!(
        s.remove_grant(repo.id, &Grantee::Team(devs.id))
            .await
            .unwrap()
    );
    assert!(
        !s.remove_grant(repo.id, &Grantee::Team(devs.id))
            .await
            .unwrap()
    );
    let grants = s.grants(repo.id).await.unwrap();
    let grantees: Vec<_> = grants.iter().map(|g| g.grantee_name.as_str()).collect();
    assert_eq!(grantees, ["acme+ci", "zed"]);
    // Removing from one repository leaves the others.
    assert_eq!(s.grants(other.id).await.unwrap().len(), 1);

    let missing = other.id + 1000;
    assert!(is_not_found(
        s.set_grant(missing, &Grantee::Account(alice.id), RepoRole::Read)
            .await
    ));
    assert!(is_not_found(
        s.set_grant(repo.id, &Grantee::Account(alice.id + 1000), RepoRole::Read)
            .await
    ));
    assert!(is_not_found(
        s.set_grant(repo.id, &Grantee::Team(devs.id + 1000), RepoRole::Read)
            .await
    ));
    // Grants are for users and robots; organizations get theirs through teams.
    assert!(is_not_found(
        s.set_grant(repo.id, &Grantee::Account(acme.id), RepoRole::Read)
            .await
    ));
    assert_eq!(s.grants(missing).await.unwrap(), []);
}

async fn repositories_are_created_listed_by_namespace_and_made_public(f: &Fixture) {
    let s = f.open().await;
    let app = s
        .create_repository("acme/app", Visibility::Public)
        .await
        .unwrap();
    assert_eq!(app.visibility, Visibility::Public);
    assert!(is_conflict(
        s.create_repository("acme/app", Visibility::Private).await
    ));
    push(&s, "acme/app").await;
    // Pushing into an existing repository keeps it as it was.
    assert_eq!(
        s.repository_info("acme/app").await.unwrap(),
        Some(app.clone())
    );
    assert_eq!(s.repository_info("acme/none").await.unwrap(), None);

    for name in [
        "acme/tools/cli",
        "acme-corp/x",
        "acme0/y",
        "acm/z",
        "acme/base",
    ] {
        s.create_repository(name, Visibility::Private)
            .await
            .unwrap();
    }
    let in_acme: Vec<_> = s
        .namespace_repositories("acme")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(in_acme, ["acme/app", "acme/base", "acme/tools/cli"]);

    assert!(
        s.set_visibility("acme/base", Visibility::Public)
            .await
            .unwrap()
    );
    assert_eq!(
        s.repository_info("acme/base")
            .await
            .unwrap()
            .unwrap()
            .visibility,
        Visibility::Public
    );
    assert!(
        s.set_visibility("acme/app", Visibility::Private)
            .await
            .unwrap()
    );
    assert!(
        !s.set_visibility("acme/none", Visibility::Public)
            .await
            .unwrap()
    );
}

async fn access_facts_gather_grants_and_team_roles(f: &Fixture) {
    let s = f.open().await;
    let alice = user(&s, "alice").await;
    let acme = org(&s, "acme").await;
    let readers = s
        .create_team(acme.id, "readers", TeamRole::Member, None)
        .await
        .unwrap();
    let creators = s
        .create_team(acme.id, "creators", TeamRole::Creator, None)
        .await
        .unwrap();
    let app = s
        .create_repository("acme/app", Visibility::Private)
        .await
        .unwrap();

    let facts = s
        .access_facts(Some(alice.id), "acme", "acme/app")
        .await
        .unwrap();
    assert_eq!(facts.repository, Some(app.clone()));
    assert_eq!(facts.namespace, Some(acme.clone()));
    assert_eq!((facts.grant, facts.team_role), (None, None));

    // A direct grant.
    s.set_grant(app.id, &Grantee::Account(alice.id), RepoRole::Read)
        .await
        .unwrap();
    let facts = s
        .access_facts(Some(alice.id), "acme", "acme/app")
        .await
        .unwrap();
    assert_eq!((facts.grant, facts.team_role), (Some(RepoRole::Read), None));

    // A stronger grant to a team she is in wins, and her team's role shows.
    s.add_team_member(readers.id, alice.id).await.unwrap();
    s.set_grant(app.id, &Grantee::Team(readers.id), RepoRole::Write)
        .await
        .unwrap();
    let facts = s
        .access_facts(Some(alice.id), "acme", "acme/app")
        .await
        .unwrap();
    assert_eq!(
        (facts.grant, facts.team_role),
        (Some(RepoRole::Write), Some(TeamRole::Member))
    );

    // A weaker team grant does not lower a stronger direct one; the strongest team wins.
    s.set_grant(app.id, &Grantee::Account(alice.id), RepoRole::Admin)
        .await
        .unwrap();
    s.add_team_member(creators.id, alice.id).await.unwrap();
    s.set_grant(app.id, &Grantee::Team(creators.id), RepoRole::Read)
        .await
        .unwrap();
    let facts = s
        .access_facts(Some(alice.id), "acme", "acme/app")
        .await
        .unwrap();
    assert_eq!(
        (facts.grant, facts.team_role),
        (Some(RepoRole::Admin), Some(TeamRole::Creator))
    );

    // Grants on one repository say nothing about another.
    let other = s
        .create_repository("acme/other", Visibility::Public)
        .await
        .unwrap();
    let facts = s
        .access_facts(Some(alice.id), "acme", "acme/other")
        .await
        .unwrap();
    assert_eq!(facts.repository, Some(other));
    assert_eq!(
        (facts.grant, facts.team_role),
        (None, Some(TeamRole::Creator))
    );

    // Another user sees the same repository and namespace, with nothing of hers.
    let bob = user(&s, "bob").await;
    let facts = s
        .access_facts(Some(bob.id), "acme", "acme/app")
        .await
        .unwrap();
    assert_eq!(facts.repository, Some(app));
    assert_eq!((facts.grant, facts.team_role), (None, None));

    // In a user's namespace there are no teams.
    s.create_repository("alice/own", Visibility::Private)
        .await
        .unwrap();
    let facts = s
        .access_facts(Some(alice.id), "alice", "alice/own")
        .await
        .unwrap();
    assert_eq!(facts.namespace, Some(alice));
    assert_eq!((facts.grant, facts.team_role), (None, None));
}

async fn access_facts_of_missing_things_and_anonymous_callers(f: &Fixture) {
    let s = f.open().await;
    let alice = user(&s, "alice").await;
    let acme = org(&s, "acme").await;
    let admins = s
        .create_team(acme.id, "admins", TeamRole::Admin, None)
        .await
        .unwrap();
    s.add_team_member(admins.id, alice.id).await.unwrap();
    let app = s
        .create_repository("acme/app", Visibility::Public)
        .await
        .unwrap();
    s.set_grant(app.id, &Grantee::Team(admins.id), RepoRole::Admin)
        .await
        .unwrap();

    // A repository not pushed yet, in an existing namespace.
    let facts = s
        .access_facts(Some(alice.id), "acme", "acme/new")
        .await
        .unwrap();
    assert_eq!(facts.repository, None);
    assert_eq!(facts.namespace, Some(acme.clone()));
    assert_eq!(
        (facts.grant, facts.team_role),
        (None, Some(TeamRole::Admin))
    );

    // Only the namespace: the empty repository name.
    let facts = s.access_facts(Some(alice.id), "acme", "").await.unwrap();
    assert_eq!(facts.repository, None);
    assert_eq!(facts.namespace, Some(acme.clone()));
    assert_eq!(
        (facts.grant, facts.team_role),
        (None, Some(TeamRole::Admin))
    );

    // Neither exists.
    let facts = s
        .access_facts(Some(alice.id), "nowhere", "nowhere/app")
        .await
        .unwrap();
    assert_eq!(facts.repository, None);
    assert_eq!(facts.namespace, None);
    assert_eq!((facts.grant, facts.team_role), (None, None));

    // A robot is never a namespace.
    let bot = robot(&s, &acme, "ci").await;
    let facts = s.access_facts(Some(bot.id), &bot.name, "").await.unwrap();
    assert_eq!(facts.namespace, None);

    // Anonymous callers get the facts about the things, none about themselves.
    let facts = s.access_facts(None, "acme", "acme/app").await.unwrap();
    assert_eq!(facts.repository, Some(app));
    assert_eq!(facts.namespace, Some(acme));
    assert_eq!((facts.grant, facts.team_role), (None, None));
}

async fn visible_repositories_unite_every_way_of_seeing(f: &Fixture) {
    let s = f.open().await;
    let alice = user(&s, "alice").await;
    let bob = user(&s, "bob").await;
    let acme = org(&s, "acme").await;
    let other = org(&s, "other").await;
    let admins = s
        .create_team(acme.id, "admins", TeamRole::Admin, None)
        .await
        .unwrap();
    let readers = s
        .create_team(other.id, "readers", TeamRole::Member, None)
        .await
        .unwrap();
    let bot = robot(&s, &other, "ci").await;
    s.add_team_member(admins.id, alice.id).await.unwrap();
    s.add_team_member(readers.id, alice.id).await.unwrap();
    s.add_team_member(readers.id, bot.id).await.unwrap();

    for name in [
        "acme/a",
        "acme/b",
        "alice/own",
        "bob/own",
        "other/granted",
        "other/hidden",
        "other/team-granted",
    ] {
        s.create_repository(name, Visibility::Private)
            .await
            .unwrap();
    }
    s.create_repository("pub/x", Visibility::Public)
        .await
        .unwrap();
    let granted = s.repository_info("other/granted").await.unwrap().unwrap();
    let team_granted = s
        .repository_info("other/team-granted")
        .await
        .unwrap()
        .unwrap();
    s.set_grant(granted.id, &Grantee::Account(alice.id), RepoRole::Read)
        .await
        .unwrap();
    s.set_grant(team_granted.id, &Grantee::Team(readers.id), RepoRole::Read)
        .await
        .unwrap();

    // Her namespace, the organization she administers, grants to her and to her team
    // (membership in a member team alone shows nothing), and public ones.
    assert_eq!(
        visible(&s, Some(&alice), true, None, 100).await,
        [
            "acme/a",
            "acme/b",
            "alice/own",
            "other/granted",
            "other/team-granted",
            "pub/x"
        ]
    );
    assert_eq!(
        visible(&s, Some(&alice), false, None, 100).await,
        [
            "acme/a",
            "acme/b",
            "alice/own",
            "other/granted",
            "other/team-granted"
        ]
    );
    assert_eq!(
        visible(&s, Some(&bob), true, None, 100).await,
        ["bob/own", "pub/x"]
    );
    // A robot has no namespace of its own: only what its teams are granted.
    assert_eq!(
        visible(&s, Some(&bot), false, None, 100).await,
        ["other/team-granted"]
    );
    assert_eq!(visible(&s, None, true, None, 100).await, ["pub/x"]);
    assert_eq!(
        visible(&s, None, false, None, 100).await,
        Vec::<String>::new()
    );

    let all = s
        .visible_repositories(Some(bob.id), true, false, None, 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 8);
    let after = s
        .visible_repositories(Some(bob.id), true, false, Some("other/granted"), 2)
        .await
        .unwrap();
    assert_eq!(after, ["other/hidden", "other/team-granted"]);
}

async fn visible_repositories_paginate_without_duplicates(f: &Fixture) {
    let s = f.open().await;
    let alice = user(&s, "alice").await;
    // Repositories each reachable two ways through one branch of the union: through two
    // admin teams, or through a grant to her and one to her team. None may be listed twice
    // nor crowd out the next.
    let acme = org(&s, "acme").await;
    for team in ["admins", "owners"] {
        let team = s
            .create_team(acme.id, team, TeamRole::Admin, None)
            .await
            .unwrap();
        s.add_team_member(team.id, alice.id).await.unwrap();
    }
    let other = org(&s, "other").await;
    let readers = s
        .create_team(other.id, "readers", TeamRole::Member, None)
        .await
        .unwrap();
    s.add_team_member(readers.id, alice.id).await.unwrap();
    for name in [
        "acme/a", "acme/b", "acme/c", "other/a", "other/b", "other/c",
    ] {
        let repo = s
            .create_repository(name, Visibility::Private)
            .await
            .unwrap();
        if name.starts_with("other/") {
            s.set_grant(repo.id, &Grantee::Team(readers.id), RepoRole::Read)
                .await
                .unwrap();
            s.set_grant(repo.id, &Grantee::Account(alice.id), RepoRole::Write)
                .await
                .unwrap();
        }
    }
    // Her own and public: reachable through two branches.
    s.create_repository("alice/x", Visibility::Public)
        .await
        .unwrap();

    let mut pages = Vec::new();
    let mut last: Option<String> = None;
    loop {
        let page = visible(&s, Some(&alice), true, last.as_deref(), 2).await;
        if page.is_empty() {
            break;
        }
        last = page.last().cloned();
        pages.push(page);
    }
    assert_eq!(
        pages,
        [
            vec!["acme/a", "acme/b"],
            vec!["acme/c", "alice/x"],
            vec!["other/a", "other/b"],
            vec!["other/c"]
        ]
    );
}

async fn deleting_a_namespace_takes_everything_it_owns(f: &Fixture) {
    let s = f.open().await;
    let alice = user(&s, "alice").await;
    let acme = org(&s, "acme").await;
    let bot = robot(&s, &acme, "ci").await;
    let devs = s
        .create_team(acme.id, "devs", TeamRole::Admin, None)
        .await
        .unwrap();
    s.add_team_member(devs.id, alice.id).await.unwrap();
    s.add_team_member(devs.id, bot.id).await.unwrap();
    push(&s, "acme/app").await;
    push(&s, "acme/tools/cli").await;
    push(&s, "alice/own").await;
    let own = s.repository_info("alice/own").await.unwrap().unwrap();
    s.set_grant(own.id, &Grantee::Account(bot.id), RepoRole::Write)
        .await
        .unwrap();
    s.create_token(TokenKind::Api, &token("bot-token", bot.id, 1))
        .await
        .unwrap();

    assert!(s.delete_account(acme.id).await.unwrap());
    assert!(!s.delete_account(acme.id).await.unwrap());
    assert_eq!(s.account("acme").await.unwrap(), None);
    // Its robots with their grants and tokens, its teams with their memberships.
    assert_eq!(s.account_by_id(bot.id).await.unwrap(), None);
    assert_eq!(s.grants(own.id).await.unwrap(), []);
    assert_eq!(s.token(TokenKind::Api, "bot-token").await.unwrap(), None);
    assert_eq!(s.team(acme.id, "devs").await.unwrap(), None);
    assert_eq!(s.team_members(devs.id).await.unwrap(), []);
    assert_eq!(s.memberships(alice.id).await.unwrap(), []);
    // Its repositories with their manifests and tags; blobs stay for garbage collection.
    assert_eq!(s.namespace_repositories("acme").await.unwrap(), []);
    for repository in ["acme/app", "acme/tools/cli"] {
        assert!(!s.repository_exists(repository).await.unwrap());
        assert_eq!(s.tags(repository, ALL).await.unwrap(), None);
    }
    let layer = d("layer of acme/app");
    assert_eq!(s.blob_size(&layer).await.unwrap(), Some(5));
    // Everything else stays.
    assert!(s.account_by_id(alice.id).await.unwrap().is_some());
    assert_eq!(
        s.tags("alice/own", ALL).await.unwrap(),
        Some(vec!["latest".to_owned()])
    );

    // A user's deletion takes their repositories and tokens too.
    s.create_token(TokenKind::App, &token("alice-token", alice.id, 1))
        .await
        .unwrap();
    assert!(s.delete_account(alice.id).await.unwrap());
    assert!(!s.repository_exists("alice/own").await.unwrap());
    assert_eq!(s.token(TokenKind::App, "alice-token").await.unwrap(), None);
    assert_eq!(s.repositories(ALL).await.unwrap(), Vec::<String>::new());
}

async fn deleting_a_namespace_spares_names_sharing_its_prefix(f: &Fixture) {
    let s = f.open().await;
    // `_` would match any character in a LIKE pattern.
    let names = ["ab", "abc", "a_c", "axc", "ab-c", "ab.c"];
    let mut accounts = Vec::new();
    for name in names {
        accounts.push(user(&s, name).await);
        push(&s, &format!("{name}/repo")).await;
    }
    push(&s, "ab/nested/repo").await;
    assert!(s.delete_account(accounts[0].id).await.unwrap());
    assert!(s.delete_account(accounts[2].id).await.unwrap());
    assert_eq!(
        s.repositories(ALL).await.unwrap(),
        ["ab-c/repo", "ab.c/repo", "abc/repo", "axc/repo"]
    );
}

async fn deleting_a_repository_takes_its_content_and_grants(f: &Fixture) {
    let s = f.open().await;
    let alice = user(&s, "alice").await;
    push(&s, "alice/app").await;
    push(&s, "alice/app-two").await;
    s.set_visibility("alice/app", Visibility::Public)
        .await
        .unwrap();
    let app = s.repository_info("alice/app").await.unwrap().unwrap();
    let bob = user(&s, "bob").await;
    s.set_grant(app.id, &Grantee::Account(bob.id), RepoRole::Write)
        .await
        .unwrap();

    assert!(s.delete_repository("alice/app").await.unwrap());
    assert!(!s.delete_repository("alice/app").await.unwrap());
    assert!(!s.repository_exists("alice/app").await.unwrap());
    assert_eq!(s.tags("alice/app", ALL).await.unwrap(), None);
    let manifest = Reference::Tag(Tag::parse("latest").unwrap());
    assert_eq!(s.manifest("alice/app", &manifest).await.unwrap(), None);
    let layer = d("layer of alice/app");
    assert_eq!(s.repository_blob("alice/app", &layer).await.unwrap(), None);
    assert_eq!(s.blob_size(&layer).await.unwrap(), Some(5));
    assert_eq!(s.grants(app.id).await.unwrap(), []);
    // Its neighbour stays.
    assert!(
        s.manifest("alice/app-two", &manifest)
            .await
            .unwrap()
            .is_some()
    );

    // Pushed again, it starts over: private, ungranted, nothing but the new blob.
    s.link_blob("alice/app", &layer, 5).await.unwrap();
    let again = s.repository_info("alice/app").await.unwrap().unwrap();
    assert_eq!(again.visibility, Visibility::Private);
    assert_eq!(s.grants(again.id).await.unwrap(), []);
    let facts = s
        .access_facts(Some(bob.id), "alice", "alice/app")
        .await
        .unwrap();
    assert_eq!(facts.grant, None);
    assert_eq!(facts.namespace, Some(alice));
    assert_eq!(s.manifest("alice/app", &manifest).await.unwrap(), None);
}

fn token(id: &str, account_id: i64, created_at: i64) -> TokenRecord {
    TokenRecord {
        id: id.to_owned(),
        account_id,
        name: format!("token {id}"),
        secret_hash: format!("hash of {id}").into_bytes(),
        scopes: String::new(),
        created_at,
        expires_at: None,
        revoked_at: None,
        last_used_at: None,
    }
}

async fn tokens_are_listed_newest_first_revoked_and_touched(f: &Fixture) {
    let s = f.open().await;
    let alice = user(&s, "alice").await;
    let bob = user(&s, "bob").await;
    let first = token("first", alice.id, 1_000);
    let second = TokenRecord {
        expires_at: Some(9_000),
        ..token("second", alice.id, 2_000)
    };
    let api = TokenRecord {
        scopes: "repo:read user:admin".to_owned(),
        ..token("api", alice.id, 3_000)
    };
    s.create_token(TokenKind::App, &first).await.unwrap();
    s.create_token(TokenKind::App, &second).await.unwrap();
    s.create_token(TokenKind::Api, &api).await.unwrap();
    s.create_token(TokenKind::App, &token("bobs", bob.id, 4_000))
        .await
        .unwrap();
    assert!(is_conflict(
        s.create_token(TokenKind::App, &token("first", bob.id, 5_000))
            .await
    ));
    assert!(is_not_found(
        s.create_token(TokenKind::App, &token("orphan", bob.id + 1000, 5_000))
            .await
    ));

    assert_eq!(
        s.token(TokenKind::App, "second").await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(
        s.token(TokenKind::Api, "api").await.unwrap(),
        Some(api.clone())
    );
    // Each kind is its own space.
    assert_eq!(s.token(TokenKind::Api, "first").await.unwrap(), None);
    assert_eq!(s.token(TokenKind::App, "api").await.unwrap(), None);
    assert_eq!(
        s.tokens(TokenKind::App, alice.id).await.unwrap(),
        [second.clone(), first.clone()]
    );
    assert_eq!(s.tokens(TokenKind::Api, alice.id).await.unwrap(), [api]);

    assert!(
        s.revoke_token(TokenKind::App, "first", 6_000)
            .await
            .unwrap()
    );
    assert!(
        !s.revoke_token(TokenKind::App, "first", 7_000)
            .await
            .unwrap()
    );
    assert!(
        !s.revoke_token(TokenKind::Api, "first", 7_000)
            .await
            .unwrap()
    );
    let listed = s.tokens(TokenKind::App, alice.id).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].revoked_at, Some(6_000));

    s.touch_token(TokenKind::App, "second", 5_000)
        .await
        .unwrap();
    // A late report of an earlier use does not move it back.
    s.touch_token(TokenKind::App, "second", 4_500)
        .await
        .unwrap();
    assert_eq!(
        s.token(TokenKind::App, "second")
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        Some(5_000)
    );
    assert!(is_not_found(
        s.touch_token(TokenKind::Api, "second", 5_000).await
    ));
}

fn key(kid: &str, created_at: i64) -> SigningKey {
    SigningKey {
        kid: kid.to_owned(),
        algorithm: "ES256".to_owned(),
        private_der: format!("der of {kid}").into_bytes(),
        created_at,
        retired_at: None,
    }
}

async fn signing_keys_are_added_once_retired_and_deleted(f: &Fixture) {
    let s = f.open().await;
    let old = key("old", 1_000);
    let new = key("new", 2_000);
    s.add_signing_key(&old).await.unwrap();
    s.add_signing_key(&new).await.unwrap();
    // A second node starting with its own key of the same kid changes nothing.
    s.add_signing_key(&SigningKey {
        private_der: b"another node's".to_vec(),
        ..key("old", 1_500)
    })
    .await
    .unwrap();
    assert_eq!(s.signing_keys().await.unwrap(), [new.clone(), old.clone()]);

    assert!(s.retire_signing_key("old", 3_000).await.unwrap());
    assert!(s.retire_signing_key("old", 4_000).await.unwrap());
    assert!(!s.retire_signing_key("none", 3_000).await.unwrap());
    let retired = SigningKey {
        retired_at: Some(3_000),
        ..old
    };
    assert_eq!(s.signing_keys().await.unwrap(), [new.clone(), retired]);

    assert!(s.delete_signing_key("old").await.unwrap());
    assert!(!s.delete_signing_key("old").await.unwrap());
    assert_eq!(s.signing_keys().await.unwrap(), [new]);
}

async fn pushed_repositories_are_private(f: &Fixture) {
    let s = f.open().await;
    let alice = user(&s, "alice").await;
    s.link_blob("alice/pushed", &d("blob"), 4).await.unwrap();
    let info = s.repository_info("alice/pushed").await.unwrap().unwrap();
    assert_eq!(info.visibility, Visibility::Private);
    let facts = s.access_facts(None, "alice", "alice/pushed").await.unwrap();
    assert_eq!(facts.repository, Some(info));
    assert_eq!(facts.namespace, Some(alice));
    assert_eq!(
        visible(&s, None, true, None, 10).await,
        Vec::<String>::new()
    );
}

const ALL: Page<'static> = Page {
    last: None,
    limit: 1000,
};
