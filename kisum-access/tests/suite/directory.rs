//! The directory's write rules (DESIGN.md §4 "Writes"), versions, audit and concurrency.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kisum_access::doc::{DelegationDoc, MembershipDoc, MembershipStatus, PrincipalDoc, WorldDoc};
use kisum_access::{
    Access, AccessError, Actor, Change, ChangeRecord, CompanyId, DenyReason, Directory, Escalation, ForbiddenRule,
    GrantedBy, ItemKind, Principal, Timestamp, World,
};
use kisum_entitlements::PlanDoc;
use kisum_entitlements::doc::{PlanRefDoc, SubscriptionDoc, SubscriptionStatus};
use kisum_errors::{ErrorCode, KisumError};

use crate::worlds::{catalog, day};

/// Company `a` on the `basic` package (3 seats): `boss` owns it, `rita` reads, `fin` runs finance
/// (not entitled on basic), `new` is invited. Company `b` on `full`: `bob` owns it.
fn fixture() -> WorldDoc {
    let mut doc: WorldDoc = serde_json::from_value(serde_json::json!({
        "catalog": {},
        "companies": [
            {"id": "a", "subscriptions": [{"id": "s", "plan": {"package": "basic", "version": 1},
              "status": "active", "starts_at": "2026-01-01T00:00:00Z"}]},
            {"id": "b", "subscriptions": [{"id": "s", "plan": {"package": "full", "version": 1},
              "status": "active", "starts_at": "2026-01-01T00:00:00Z"}]}
        ],
        "users": [{"id": "boss"}, {"id": "rita"}, {"id": "fin"}, {"id": "new"}, {"id": "bob"}, {"id": "zoe"}],
        "agents": [{"id": "bot", "company": "a"}],
        "memberships": [
            {"user": "boss", "company": "a", "status": "active", "roles": ["owner"]},
            {"user": "rita", "company": "a", "status": "active", "roles": ["reader"]},
            {"user": "new", "company": "a", "status": "invited", "roles": ["reader"]},
            {"user": "bob", "company": "b", "status": "active", "roles": ["owner"]},
            {"user": "fin", "company": "b", "status": "active", "roles": ["finance"]}
        ],
        "delegations": [
            {"id": "d1", "company": "a", "from": {"user": "boss"}, "to": {"user": "rita"}, "grants": ["core:*"],
             "not_before": "2026-01-01T00:00:00Z", "expires_at": "2026-03-01T00:00:00Z", "redelegable": true},
            {"id": "d2", "company": "a", "from": {"user": "rita"}, "to": {"agent": "bot"}, "grants": ["core:doc:*"],
             "not_before": "2026-01-01T00:00:00Z", "expires_at": "2026-03-01T00:00:00Z", "redelegable": false}
        ]
    }))
    .unwrap();
    doc.catalog = catalog();
    doc
}

fn directory() -> Directory {
    Directory::new(World::from_doc(&fixture()).unwrap())
}

fn cid(id: &str) -> CompanyId {
    id.parse().unwrap()
}

fn user(id: &str) -> Actor {
    Actor::User(id.parse().unwrap())
}

fn member(user: &str, company: &str, status: MembershipStatus, roles: &[&str]) -> Change {
    Change::PutMembership(MembershipDoc {
        user: user.into(),
        company: company.into(),
        status,
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        expires_at: None,
        restrictions: Vec::new(),
    })
}

fn code(result: Result<ChangeRecord, AccessError>) -> ErrorCode {
    result.expect_err("the write should have been refused").code()
}

const T: fn() -> Timestamp = || day(10);

/// A second package subscription, which overlaps company `a`'s open-ended one.
fn full_package_from_day_20() -> SubscriptionDoc {
    SubscriptionDoc {
        id: "s2".into(),
        plan: PlanRefDoc { package: Some("full".into()), addon: None, version: 1 },
        status: SubscriptionStatus::Active,
        starts_at: day(20),
        ends_at: None,
        trial_ends_at: None,
        grace_until: None,
        quantity: None,
    }
}

fn forbidden_rule(result: Result<ChangeRecord, AccessError>) -> ForbiddenRule {
    match result {
        Err(AccessError::Forbidden { rule, .. }) => rule,
        other => panic!("expected forbidden, got {other:?}"),
    }
}

fn put_role(id: &str, grants: &[&str]) -> Change {
    let role = serde_json::json!({"id": id, "grants": grants});
    Change::PutRole { company: cid("a"), role: serde_json::from_value(role).unwrap() }
}

fn membership(user: &str, status: MembershipStatus, roles: &[&str], expires: Option<i64>, restrict: &[&str]) -> Change {
    Change::PutMembership(MembershipDoc {
        user: user.into(),
        company: "a".into(),
        status,
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        expires_at: expires.map(day),
        restrictions: restrict.iter().map(|r| (*r).to_owned()).collect(),
    })
}

const INVITE: ForbiddenRule = ForbiddenRule::MissingPermission { permission: "core:member:invite" };
const REMOVE: ForbiddenRule = ForbiddenRule::MissingPermission { permission: "core:member:remove" };

#[test]
fn management_permissions_decide_who_edits_memberships() {
    use MembershipStatus::{Active, Suspended};
    let dir = directory();
    // A plain reader (and `core:*` delegated to her by the owner: delegated access never manages access).
    assert_eq!(
        forbidden_rule(dir.apply(&user("rita"), T(), membership("zoe", Active, &["reader"], None, &[]))),
        INVITE
    );
    assert_eq!(
        forbidden_rule(dir.apply(
            &user("rita"),
            T(),
            Change::EndMembership { company: cid("a"), user: "new".parse().unwrap() }
        )),
        REMOVE
    );
    assert_eq!(
        forbidden_rule(dir.apply(&user("rita"), T(), put_role("ops", &["core:doc:read"]))),
        ForbiddenRule::MissingPermission { permission: "core:role:manage" }
    );
    let agent = Change::PutAgent(serde_json::from_str(r#"{"id":"bot2","company":"a"}"#).unwrap());
    assert_eq!(
        forbidden_rule(dir.apply(&user("rita"), T(), agent.clone())),
        ForbiddenRule::MissingPermission { permission: "core:agent:manage" }
    );
    let rotate = Change::RotateAgentSecret { company: cid("a"), agent: "bot".parse().unwrap() };
    assert_eq!(
        forbidden_rule(dir.apply(&user("rita"), T(), rotate.clone())),
        ForbiddenRule::MissingPermission { permission: "core:agent:manage" }
    );

    // The owner gives rita the right to invite and remove, and a reader's rights.
    dir.apply(&user("boss"), T(), put_role("hr", &["core:member:invite", "core:member:remove", "core:doc:read"]))
        .unwrap();
    dir.apply(&user("boss"), T(), membership("rita", Active, &["reader", "hr"], None, &[])).unwrap();
    // She adds a reader, and makes him an hr too (everything it grants she holds)...
    dir.apply(&user("rita"), T(), membership("zoe", Active, &["reader"], None, &[])).unwrap();
    dir.apply(&user("rita"), T(), membership("zoe", Active, &["reader", "hr"], None, &[])).unwrap();
    // ...but never an owner, whose grants she does not hold.
    assert!(matches!(
        forbidden_rule(dir.apply(&user("rita"), T(), membership("new", Active, &["owner"], None, &[]))),
        ForbiddenRule::Escalates { by: Escalation::Membership { .. }, .. }
    ));
    // Narrowing another: suspend, shorten, restrict, end.
    dir.apply(&user("rita"), T(), membership("zoe", Suspended, &["reader", "hr"], None, &[])).unwrap();
    dir.apply(&user("rita"), T(), membership("zoe", Suspended, &["reader", "hr"], Some(40), &[])).unwrap();
    // Making it active again is a widening, so is extending its end: both need every right it grants.
    dir.apply(&user("rita"), T(), membership("zoe", Active, &["reader", "hr"], Some(50), &[])).unwrap();
    dir.apply(&user("rita"), T(), Change::EndMembership { company: cid("a"), user: "zoe".parse().unwrap() }).unwrap();

    // A remover who may not invite cannot widen.
    dir.apply(&user("boss"), T(), put_role("remover", &["core:member:remove"])).unwrap();
    dir.apply(&user("boss"), T(), membership("rita", Active, &["reader", "remover"], None, &[])).unwrap();
    assert_eq!(
        forbidden_rule(dir.apply(&user("rita"), T(), membership("new", Active, &["reader"], None, &[]))),
        INVITE
    );
    dir.apply(&user("rita"), T(), membership("new", Suspended, &["reader"], None, &[])).unwrap();

    // Lifting a restriction gives what it matched: only for what the actor holds.
    dir.apply(&user("boss"), T(), membership("rita", Active, &["reader", "hr"], None, &[])).unwrap();
    dir.apply(&user("boss"), T(), membership("new", Active, &["reader"], None, &["core:member:manage"])).unwrap();
    assert!(matches!(
        forbidden_rule(dir.apply(&user("rita"), T(), membership("new", Active, &["reader"], None, &[]))),
        ForbiddenRule::Escalates { by: Escalation::LiftedRestriction { .. }, .. }
    ));

    // The owner registers an agent once; a second registration is a conflict, rotation is the way.
    dir.apply(&user("boss"), T(), agent.clone()).unwrap();
    assert_eq!(code(dir.apply(&user("boss"), T(), agent)), ErrorCode::Conflict);
    let record = dir.apply(&user("boss"), T(), rotate).unwrap();
    assert_eq!(record.kind, "rotate_agent_secret");
    assert_eq!(
        code(dir.apply(
            &user("boss"),
            T(),
            Change::RotateAgentSecret { company: cid("a"), agent: "nobody".parse().unwrap() }
        )),
        ErrorCode::NotFound
    );
}

#[test]
fn nobody_widens_their_own_membership() {
    use MembershipStatus::Active;
    let dir = directory();
    dir.apply(&user("boss"), T(), put_role("hr", &["core:member:invite", "core:member:remove", "core:doc:read"]))
        .unwrap();
    dir.apply(&user("boss"), T(), membership("rita", Active, &["reader", "hr"], Some(40), &["core:doc:write"]))
        .unwrap();
    let own =
        |roles: &[&str], expires: Option<i64>, restrict: &[&str]| membership("rita", Active, roles, expires, restrict);
    // Lifting her own restriction, extending or dropping her own end, adding a role: all refused.
    for change in [
        own(&["reader", "hr"], Some(40), &[]),
        own(&["reader", "hr"], Some(50), &["core:doc:write"]),
        own(&["reader", "hr"], None, &["core:doc:write"]),
        own(&["reader", "hr", "finance"], Some(40), &["core:doc:write"]),
    ] {
        assert_eq!(forbidden_rule(dir.apply(&user("rita"), T(), change)), ForbiddenRule::WidensOwnMembership);
    }
    // Narrowing her own is hers to do, and so is leaving.
    dir.apply(&user("rita"), T(), own(&["reader", "hr"], Some(30), &["core:doc:write"])).unwrap();
    dir.apply(&user("rita"), T(), own(&["hr"], Some(30), &["core:doc:write"])).unwrap();
    dir.apply(&user("rita"), T(), Change::EndMembership { company: cid("a"), user: "rita".parse().unwrap() }).unwrap();
    // Even the owner may not widen its own membership (it holds everything already; a new end it may drop
    // only through another owner).
    dir.apply(&user("boss"), T(), membership("boss", Active, &["owner"], Some(90), &[])).unwrap();
    assert_eq!(
        forbidden_rule(dir.apply(&user("boss"), T(), membership("boss", Active, &["owner"], None, &[]))),
        ForbiddenRule::WidensOwnMembership
    );
}

#[test]
fn a_paused_plan_opens_nothing_and_locks_no_owner_out() {
    use MembershipStatus::Active;
    let dir = directory();
    let pause = Change::UpdateSubscription {
        company: cid("a"),
        subscription: "s".parse().unwrap(),
        patch: serde_json::from_value(serde_json::json!({"status": "paused"})).unwrap(),
    };
    dir.apply(&Actor::Platform, T(), pause).unwrap();
    // Nothing is entitled: a reader still may not make herself or a peer owner.
    assert_eq!(
        forbidden_rule(dir.apply(&user("rita"), T(), membership("rita", Active, &["owner"], None, &[]))),
        ForbiddenRule::WidensOwnMembership
    );
    assert_eq!(forbidden_rule(dir.apply(&user("rita"), T(), membership("new", Active, &["owner"], None, &[]))), INVITE);
    // The owner keeps administering (seats are a model rule: a paused plan has none to activate).
    dir.apply(&user("boss"), T(), membership("new", MembershipStatus::Invited, &["finance"], None, &[])).unwrap();
    dir.apply(&user("boss"), T(), put_role("ops", &["core:doc:read"])).unwrap();
}

#[test]
fn role_definitions_give_only_what_the_actor_holds() {
    use MembershipStatus::Active;
    let dir = directory();
    dir.apply(&user("boss"), T(), put_role("designer", &["core:role:manage", "core:doc:read"])).unwrap();
    dir.apply(&user("boss"), T(), membership("rita", Active, &["reader", "designer"], None, &[])).unwrap();
    dir.apply(&user("rita"), T(), put_role("ops", &["core:doc:read", "fin:invoice:read"])).unwrap();
    // Redefining a role she holds to grant more than she holds: refused, whoever holds it.
    assert_eq!(
        forbidden_rule(dir.apply(&user("rita"), T(), put_role("designer", &["core:role:manage", "core:doc:*"]))),
        ForbiddenRule::Escalates {
            permission: "core:doc:write".into(),
            by: Escalation::Role { role: "designer".parse().unwrap() }
        }
    );
    assert!(matches!(
        forbidden_rule(dir.apply(&user("rita"), T(), put_role("ops", &["*"]))),
        ForbiddenRule::Escalates { .. }
    ));
    dir.apply(&user("rita"), T(), Change::RemoveRole { company: cid("a"), role: "ops".parse().unwrap() }).unwrap();
}

#[test]
fn an_agent_acting_for_a_user_never_writes() {
    let dir = directory();
    let acting = Actor::Agent { agent: "bot".parse().unwrap(), user: "boss".parse().unwrap() };
    for change in [
        membership("zoe", MembershipStatus::Active, &["reader"], None, &[]),
        put_role("ops", &["core:doc:read"]),
        Change::RevokeSession { user: "boss".parse().unwrap(), session: "s".into(), until: day(11) },
    ] {
        assert_eq!(forbidden_rule(dir.apply(&acting, T(), change)), ForbiddenRule::ActsForAnother);
    }
}

#[test]
fn a_removed_company_id_is_retired() {
    let dir = directory();
    dir.apply(&Actor::Platform, T(), Change::RemoveCompany { company: cid("b") }).unwrap();
    let create = Change::CreateCompany {
        company: serde_json::from_str(r#"{"id":"b"}"#).unwrap(),
        owner: "zoe".parse().unwrap(),
    };
    assert_eq!(code(dir.apply(&Actor::Platform, T(), create.clone())), ErrorCode::Conflict);
    // The retirement survives a checkpoint: the exported state carries it.
    let doc = dir.to_doc();
    assert_eq!(doc.retired_companies, vec!["b".to_owned()]);
    let reloaded = Directory::new(World::from_doc(&doc).unwrap());
    assert_eq!(code(reloaded.apply(&Actor::Platform, T(), create)), ErrorCode::Conflict);
    let mut bad = doc.clone();
    bad.retired_companies.push("a".into());
    assert!(World::from_doc(&bad).is_err(), "a company that exists is not retired");
}

fn delegation(id: &str, from: &str, to: &str, grants: &[&str]) -> Change {
    Change::PutDelegation(DelegationDoc {
        id: id.into(),
        company: "a".into(),
        from: PrincipalDoc::User(from.into()),
        to: PrincipalDoc::User(to.into()),
        grants: grants.iter().map(|g| (*g).to_owned()).collect(),
        resources: None,
        not_before: day(5),
        expires_at: day(30),
        redelegable: false,
        revoked_at: None,
    })
}

#[test]
fn only_delegate_what_you_may_pass_on() {
    let dir = directory();
    // rita may pass on core:* (received through a redelegable delegation) besides her own reader rights.
    dir.apply(&user("rita"), T(), delegation("x1", "rita", "new", &["core:doc:*"])).unwrap();
    // Only what is entitled now is judged: on `basic`, `*` matches nothing more she could not pass on.
    dir.apply(&user("rita"), T(), delegation("x2", "rita", "new", &["*"])).unwrap();
    // Non-delegable permissions are never conferred, so matching them is not a reason to refuse.
    dir.apply(&user("boss"), T(), delegation("x3", "boss", "rita", &["core:*"])).unwrap();
    // Creating (not replacing) refuses an id in use, and changes nothing.
    let add = |d: Change| match d {
        Change::PutDelegation(doc) => Change::AddDelegation(doc),
        other => other,
    };
    let before = dir.to_doc();
    assert_eq!(
        code(dir.apply(&user("boss"), T(), add(delegation("x3", "boss", "new", &["core:doc:read"])))),
        ErrorCode::Conflict
    );
    assert_eq!(dir.to_doc(), before);
    dir.apply(&user("boss"), T(), add(delegation("x4", "boss", "new", &["core:doc:read"]))).unwrap();
    // Nobody delegates someone else's access.
    assert_eq!(
        code(dir.apply(&user("rita"), T(), delegation("x4", "boss", "new", &["core:doc:read"]))),
        ErrorCode::Forbidden
    );
    // Only the delegator revokes (the platform may too).
    let revoke = |id: &str| Change::RevokeDelegation { company: "a".parse().unwrap(), delegation: id.parse().unwrap() };
    assert_eq!(code(dir.apply(&user("rita"), T(), revoke("d1"))), ErrorCode::Forbidden);
    dir.apply(&user("boss"), T(), revoke("d1")).unwrap();
    dir.apply(&user("boss"), T(), revoke("x3")).unwrap();
    let bot = Principal::parse("agent:bot").unwrap();
    let (doc_read, doc_write) = (dir.permission("core:doc:read").unwrap(), dir.permission("core:doc:write").unwrap());
    assert!(!dir.check(&bot, &cid("a"), doc_write, None, day(11)).is_allowed(), "revoking d1 cut the chain to the bot");
    assert!(
        dir.check(&bot, &cid("a"), doc_read, None, day(11)).is_allowed(),
        "rita's own reader rights still reach it"
    );
    // Without d1, rita holds core:doc:read (reader) but no longer core:doc:write.
    dir.apply(&user("rita"), T(), delegation("x5", "rita", "new", &["core:doc:read"])).unwrap();
    assert_eq!(
        code(dir.apply(&user("rita"), T(), delegation("x6", "rita", "new", &["core:doc:write"]))),
        ErrorCode::Forbidden
    );
    // What she received through a non-redelegable delegation is hers to use, not to pass on.
    dir.apply(&user("boss"), T(), delegation("x7", "boss", "rita", &["core:doc:write"])).unwrap();
    let rita = Principal::parse("user:rita").unwrap();
    assert!(dir.check(&rita, &cid("a"), dir.permission("core:doc:write").unwrap(), None, day(11)).is_allowed());
    assert_eq!(
        code(dir.apply(&user("rita"), T(), delegation("x8", "rita", "new", &["core:doc:write"]))),
        ErrorCode::Forbidden
    );
}

#[test]
fn a_company_keeps_an_active_owner() {
    let dir = directory();
    let suspend_boss = || member("boss", "a", MembershipStatus::Suspended, &["owner"]);
    assert_eq!(code(dir.apply(&Actor::Platform, T(), suspend_boss())), ErrorCode::Conflict);
    assert_eq!(
        code(dir.apply(
            &Actor::Platform,
            T(),
            Change::RemoveMembership { company: "a".parse().unwrap(), user: "boss".parse().unwrap() }
        )),
        ErrorCode::Conflict
    );
    dir.apply(&Actor::Platform, T(), member("rita", "a", MembershipStatus::Active, &["owner"])).unwrap();
    dir.apply(&Actor::Platform, T(), suspend_boss()).unwrap();
}

#[test]
fn seats_limit_activation_and_failed_writes_change_nothing() {
    let dir = directory();
    let before = dir.to_doc();
    let version = dir.principal_version(&Principal::parse("user:zoe").unwrap(), &cid("a"));
    dir.apply(&Actor::Platform, T(), member("new", "a", MembershipStatus::Active, &["reader"])).unwrap();
    let err = dir.apply(&Actor::Platform, T(), member("zoe", "a", MembershipStatus::Active, &["reader"])).unwrap_err();
    assert_eq!(err.code(), ErrorCode::LimitExceeded);
    assert!(err.to_string().contains("3 used + 1 requested > 3"), "{err}");
    // Invited members take no seat.
    dir.apply(&Actor::Platform, T(), member("zoe", "a", MembershipStatus::Invited, &["reader"])).unwrap();
    assert_eq!(dir.seq(), 2, "two writes installed");
    // Bad input is refused whole and nothing stored changes.
    let after_good = dir.to_doc();
    assert_ne!(before, after_good);
    for bad in [
        member("ghost", "a", MembershipStatus::Invited, &[]),
        member("zoe", "a", MembershipStatus::Invited, &["nope"]),
        member("zoe", "nowhere", MembershipStatus::Invited, &[]),
        Change::PutSubscription { company: "a".parse().unwrap(), subscription: full_package_from_day_20() },
        Change::PutAgent(serde_json::from_str(r#"{"id":"bot","company":"b"}"#).unwrap()),
        Change::RemoveRole { company: "a".parse().unwrap(), role: "nope".parse().unwrap() },
    ] {
        let kind = bad.kind();
        let err = dir.apply(&Actor::Platform, T(), bad).unwrap_err();
        assert!(
            matches!(err.code(), ErrorCode::ValidationFailed | ErrorCode::Conflict | ErrorCode::NotFound),
            "{kind}: {err}"
        );
    }
    assert_eq!(dir.to_doc(), after_good);
    assert_eq!(dir.seq(), 2, "failed writes install nothing and leave no record");
    assert!(dir.principal_version(&Principal::parse("user:zoe").unwrap(), &cid("a")) > version);
}

#[test]
fn conflicts_are_reported_as_such() {
    let dir = directory();
    let overlap = Change::PutSubscription { company: "a".parse().unwrap(), subscription: full_package_from_day_20() };
    assert_eq!(code(dir.apply(&Actor::Platform, T(), overlap)), ErrorCode::Conflict);
    let duplicate = Change::CreateCompany {
        company: serde_json::from_str(r#"{"id":"b"}"#).unwrap(),
        owner: "zoe".parse().unwrap(),
    };
    assert_eq!(code(dir.apply(&Actor::Platform, T(), duplicate)), ErrorCode::Conflict);
    let mut foreign = delegation("d1", "bob", "fin", &["fin:*"]);
    if let Change::PutDelegation(d) = &mut foreign {
        d.company = "b".into();
    }
    assert_eq!(code(dir.apply(&Actor::Platform, T(), foreign)), ErrorCode::Conflict, "delegation ids are world-wide");
    assert_eq!(
        code(dir.apply(&Actor::Platform, T(), Change::AddUser { user: "bob".parse().unwrap() })),
        ErrorCode::Conflict
    );
    assert_eq!(
        code(dir.apply(&user("bob"), T(), Change::AddUser { user: "yan".parse().unwrap() })),
        ErrorCode::Forbidden
    );
}

#[test]
fn creating_a_company_is_atomic_with_its_owner() {
    let dir = directory();
    let company = || {
        serde_json::from_str::<kisum_access::doc::CompanyDoc>(
            r#"{"id":"c","subscriptions":[
        {"id":"s","plan":{"package":"basic","version":1},"status":"active","starts_at":"2026-01-01T00:00:00Z"}]}"#,
        )
        .unwrap()
    };
    assert_eq!(
        code(dir.apply(&user("zoe"), T(), Change::CreateCompany { company: company(), owner: "bob".parse().unwrap() })),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(dir.apply(&user("yan"), T(), Change::CreateCompany { company: company(), owner: "yan".parse().unwrap() })),
        ErrorCode::ValidationFailed
    );
    assert!(dir.company(&cid("c")).is_none(), "a failed creation leaves nothing behind");
    let receipt = dir
        .apply(&user("zoe"), T(), Change::CreateCompany { company: company(), owner: "zoe".parse().unwrap() })
        .unwrap();
    assert!(receipt.company_wide);
    let zoe = Principal::parse("user:zoe").unwrap();
    assert!(dir.check(&zoe, &cid("c"), dir.permission("core:member:manage").unwrap(), None, T()).is_allowed());
    assert_eq!(
        (receipt.kind.as_str(), receipt.company, receipt.actor),
        ("create_company", Some(cid("c")), user("zoe"))
    );
    dir.apply(&Actor::Platform, T(), Change::RemoveCompany { company: "c".parse().unwrap() }).unwrap();
    assert_eq!(
        dir.check(&zoe, &cid("c"), dir.permission("core:doc:read").unwrap(), None, T()).reason(),
        Some(kisum_access::DenyReason::UnknownCompany)
    );
}

#[test]
fn versions_tell_caches_what_changed() {
    let dir = directory();
    let p = |s: &str| Principal::parse(s).unwrap();
    let snapshot = dir.snapshot(&p("agent:bot"), &cid("a"), T());
    let fin_version = dir.principal_version(&p("user:fin"), &cid("b"));
    // Changing rita's membership touches rita and everyone downstream of her delegations (the bot).
    let membership = dir.apply(&Actor::Platform, T(), member("rita", "a", MembershipStatus::Active, &[])).unwrap();
    assert!(!membership.company_wide);
    assert_eq!(dir.principal_version(&p("agent:bot"), &cid("a")), membership.seq, "versions are sequence numbers");
    assert_eq!(
        membership.principals.clone(),
        vec![p("user:rita"), p("agent:bot")]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
    assert!(dir.principal_version(&p("agent:bot"), &cid("a")) > snapshot.version(), "the bot's snapshot is stale");
    assert_eq!(dir.principal_version(&p("user:fin"), &cid("b")), fin_version, "another company is untouched");
    let boss_version = dir.principal_version(&p("user:boss"), &cid("a"));
    // A company-wide change (a custom role) moves every principal of the company.
    let role = serde_json::from_str(r#"{"id":"helper","grants":["core:doc:read"]}"#).unwrap();
    assert!(
        dir.apply(&Actor::Platform, T(), Change::PutRole { company: "a".parse().unwrap(), role }).unwrap().company_wide
    );
    assert!(dir.principal_version(&p("user:boss"), &cid("a")) > boss_version);
    // Re-pointing a delegation touches its old delegate (and who is downstream of it) as well as the new.
    let mut moved = fixture().delegations[0].clone();
    moved.to = PrincipalDoc::User("new".into());
    let receipt = dir.apply(&Actor::Platform, T(), Change::PutDelegation(moved)).unwrap();
    assert_eq!(
        receipt.principals,
        [p("user:new"), p("user:rita"), p("agent:bot")]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
    assert!(membership.before.unwrap().contains("reader") && !membership.after.unwrap().contains("reader"));
}

#[test]
fn readers_never_wait_and_see_whole_versions() {
    let dir = Arc::new(directory());
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (dir, stop) = (dir.clone(), stop.clone());
            std::thread::spawn(move || {
                let rita = Principal::parse("user:rita").unwrap();
                let read = dir.permission("core:doc:read").unwrap();
                let write = dir.permission("core:doc:write").unwrap();
                let (mut seen_reader, mut seen_writer, mut n) = (false, false, 0u64);
                while !stop.load(Ordering::Relaxed) || n < 1000 {
                    // Both checks on one version: rita is either `reader` or `writer`, never neither.
                    let both = dir.check_many(&rita, &cid("a"), &[(read, None), (write, None)], day(70));
                    assert!(both[0].is_allowed() || both[1].is_allowed());
                    seen_reader |= both[0].is_allowed();
                    seen_writer |= both[1].is_allowed();
                    n += 1;
                }
                (seen_reader, seen_writer)
            })
        })
        .collect();
    let role = serde_json::from_str(r#"{"id":"writer","grants":["core:doc:write"]}"#).unwrap();
    dir.apply(&Actor::Platform, T(), Change::PutRole { company: "a".parse().unwrap(), role }).unwrap();
    for i in 0..200 {
        let role = if i % 2 == 0 { "writer" } else { "reader" };
        dir.apply(&Actor::Platform, T(), member("rita", "a", MembershipStatus::Active, &[role])).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        let (r, w) = reader.join().unwrap();
        assert!(r || w);
    }
}

#[test]
fn refused_writes_name_the_rule_and_the_missing_item() {
    let dir = directory();
    let forbidden = |result: Result<ChangeRecord, AccessError>| match result {
        Err(AccessError::Forbidden { actor, rule }) => (actor.to_string(), rule),
        other => panic!("expected forbidden, got {other:?}"),
    };
    let (actor, rule) =
        forbidden(dir.apply(&user("rita"), T(), member("new", "a", MembershipStatus::Invited, &["owner"])));
    assert_eq!(actor, "user:rita");
    assert_eq!(rule, ForbiddenRule::MissingPermission { permission: "core:member:invite" });
    let err = dir.apply(&user("rita"), T(), member("new", "a", MembershipStatus::Invited, &["owner"])).unwrap_err();
    assert_eq!(err.to_string(), "forbidden: `user:rita` needs `core:member:invite` for this write");
    assert_eq!(err.code(), ErrorCode::Forbidden);
    assert_eq!(err.required().as_deref(), Some("core:member:invite"));
    let _ = Escalation::Role { role: "x".parse().unwrap() };
    let (_, rule) = forbidden(dir.apply(&user("bob"), T(), member("zoe", "a", MembershipStatus::Invited, &[])));
    assert_eq!(rule, ForbiddenRule::NoActiveMembership { company: cid("a") });
    let (_, rule) = forbidden(dir.apply(&user("rita"), T(), delegation("x4", "boss", "new", &["core:doc:read"])));
    assert_eq!(rule, ForbiddenRule::DelegatesForAnother { delegation: "x4".parse().unwrap() });
    let revoke = Change::RevokeDelegation { company: cid("a"), delegation: "d1".parse().unwrap() };
    let (_, rule) = forbidden(dir.apply(&user("rita"), T(), revoke));
    assert_eq!(rule, ForbiddenRule::RevokesForAnother { delegation: "d1".parse().unwrap() });
    let (_, rule) = forbidden(dir.apply(&user("bob"), T(), Change::AddUser { user: "yan".parse().unwrap() }));
    assert_eq!(rule, ForbiddenRule::PlatformOnly { change: "add_user" });

    let err = dir
        .apply(&Actor::Platform, T(), Change::RemoveRole { company: cid("a"), role: "nope".parse().unwrap() })
        .unwrap_err();
    assert_eq!(err, AccessError::NotFound { kind: ItemKind::Role, id: "nope".into() });
    assert_eq!(err.to_string(), "not found: role `nope`");
    assert_eq!(err.code(), ErrorCode::NotFound);
    let err = dir.apply(&Actor::Platform, T(), Change::RemoveCompany { company: cid("zzz") }).unwrap_err();
    assert_eq!(err, AccessError::NotFound { kind: ItemKind::Company, id: "zzz".into() });
}

#[test]
fn an_allow_names_its_grant_by_id_on_the_version_it_was_taken_on() {
    let dir = directory();
    let (bot, rita) = (Principal::parse("agent:bot").unwrap(), Principal::parse("user:rita").unwrap());
    let write = dir.permission("core:doc:write").unwrap();
    let read = dir.permission("core:doc:read").unwrap();
    let ids = |ids: &[&str]| GrantedBy::Delegations(ids.iter().map(|d| d.parse().unwrap()).collect());
    // The bot's core:doc:write comes through rita (d2) from boss (d1).
    let before = dir.company(&cid("a")).unwrap();
    let (decision, granted) = dir.check_granted(&bot, &cid("a"), write, None, T());
    assert_eq!(granted, Some(ids(&["d2", "d1"])));
    assert_eq!(before.granted_by(&dir.catalog(), &decision), granted, "same partition, same answer");
    assert_eq!(
        dir.check_granted(&rita, &cid("a"), read, None, T()).1,
        Some(GrantedBy::Role("reader".parse().unwrap()))
    );
    // A deny names nothing.
    let denied = dir.check_granted(&rita, &cid("a"), dir.permission("core:member:manage").unwrap(), None, T());
    assert_eq!((denied.0.is_allowed(), denied.1), (false, None));
    // A write in between does not change what the decision taken on the old partition resolves to there.
    dir.apply(&Actor::Platform, T(), delegation("a0", "boss", "rita", &["core:doc:read"])).unwrap();
    assert_eq!(before.granted_by(&dir.catalog(), &decision), Some(ids(&["d2", "d1"])));
}

#[test]
fn plans_subscriptions_and_overrides_through_writes() {
    let dir = directory();
    let platform = Actor::Platform;
    let boss = Principal::parse("user:boss").unwrap();
    let (read, approve) = (dir.permission("fin:invoice:read").unwrap(), dir.permission("fin:invoice:approve").unwrap());
    let a = cid("a");
    let reason = |p| dir.check(&boss, &a, p, None, T()).reason();
    assert_eq!(reason(read), Some(DenyReason::ModuleNotEntitled), "`basic` has no finance");

    // Publishing a plan: a new version of `basic` with finance. Nothing decided so far changes.
    let fingerprint = dir.catalog().fingerprint().to_owned();
    let plan: PlanDoc = serde_json::from_value(serde_json::json!({"package": {"id": "basic", "version": 2,
        "modules": ["core", "fin"], "features": ["fin.approvals"], "limits": {"core.seats": 5}}}))
    .unwrap();
    assert_eq!(code(dir.apply(&user("boss"), T(), Change::PublishPlan { plan: plan.clone() })), ErrorCode::Forbidden);
    dir.apply(&platform, T(), Change::PublishPlan { plan: plan.clone() }).unwrap();
    assert_eq!(
        code(dir.apply(&platform, T(), Change::PublishPlan { plan })),
        ErrorCode::Conflict,
        "plans are immutable"
    );
    assert_eq!(dir.catalog().fingerprint(), fingerprint, "snapshots stay readable across a publication");
    assert_eq!(reason(read), Some(DenyReason::ModuleNotEntitled));
    let broken: PlanDoc =
        serde_json::from_value(serde_json::json!({"addon": {"id": "x", "version": 1, "requires": ["nope"]}})).unwrap();
    assert_eq!(code(dir.apply(&platform, T(), Change::PublishPlan { plan: broken })), ErrorCode::ValidationFailed);

    // A plan change to it entitles finance at once.
    let update = |patch: serde_json::Value| Change::UpdateSubscription {
        company: a.clone(),
        subscription: "s".parse().unwrap(),
        patch: serde_json::from_value(patch).unwrap(),
    };
    dir.apply(&platform, T(), update(serde_json::json!({"plan": {"package": "basic", "version": 2}}))).unwrap();
    assert_eq!(reason(approve), None);
    // The lifecycle: past due needs a grace period, and counts only within it.
    assert_eq!(code(dir.apply(&platform, T(), update(serde_json::json!({"status": "past_due"})))), ErrorCode::Conflict);
    let grace = serde_json::json!({"status": "past_due", "grace_until": day(15)});
    dir.apply(&platform, T(), update(grace)).unwrap();
    assert_eq!(reason(read), None);
    assert_eq!(dir.check(&boss, &a, read, None, day(16)).reason(), Some(DenyReason::ModuleNotEntitled));
    dir.apply(&platform, T(), update(serde_json::json!({"status": "active"}))).unwrap();
    dir.apply(&platform, T(), update(serde_json::json!({"status": "paused"}))).unwrap();
    assert_eq!(reason(read), Some(DenyReason::ModuleNotEntitled), "a paused subscription entitles nothing");
    assert_eq!(code(dir.apply(&platform, T(), update(serde_json::json!({"status": "trialing"})))), ErrorCode::Conflict);
    dir.apply(&platform, T(), update(serde_json::json!({"status": "active", "ends_at": day(30)}))).unwrap();
    assert_eq!(dir.check(&boss, &a, read, None, day(30)).reason(), Some(DenyReason::ModuleNotEntitled));
    assert_eq!(code(dir.apply(&user("boss"), T(), update(serde_json::json!({"quantity": 2})))), ErrorCode::Forbidden);
    let missing = Change::UpdateSubscription {
        company: a.clone(),
        subscription: "nope".parse().unwrap(),
        patch: Default::default(),
    };
    assert_eq!(code(dir.apply(&platform, T(), missing)), ErrorCode::NotFound);
    let again =
        Change::AddSubscription { company: a.clone(), subscription: fixture().companies[0].subscriptions[0].clone() };
    assert_eq!(code(dir.apply(&platform, T(), again)), ErrorCode::Conflict, "an id already taken");

    // Overrides by id: a revoke wins until it is removed.
    let revoke = |id: Option<&str>| Change::AddOverride {
        company: a.clone(),
        item: serde_json::from_value(
            serde_json::json!({"id": id, "effect": "revoke", "module": "fin", "reason": "audit"}),
        )
        .unwrap(),
    };
    assert_eq!(code(dir.apply(&platform, T(), revoke(None))), ErrorCode::ValidationFailed, "an id is required");
    dir.apply(&platform, T(), revoke(Some("o1"))).unwrap();
    assert_eq!(reason(read), Some(DenyReason::ModuleNotEntitled));
    assert_eq!(code(dir.apply(&platform, T(), revoke(Some("o1")))), ErrorCode::Conflict);
    let remove = |id: &str| Change::RemoveOverride { company: a.clone(), id: id.parse().unwrap() };
    dir.apply(&platform, T(), remove("o1")).unwrap();
    assert_eq!(reason(read), None);
    assert_eq!(code(dir.apply(&platform, T(), remove("o1"))), ErrorCode::NotFound);

    // Credential events are recorded and change no decision.
    let doc = dir.to_doc();
    let record = dir.apply(&platform, T(), Change::DisableUser { user: "rita".parse().unwrap() }).unwrap();
    assert_eq!((record.company, record.principals.len(), record.kind.as_str()), (None, 0, "disable_user"));
    assert_eq!(
        code(dir.apply(&platform, T(), Change::SetPassword { user: "ghost".parse().unwrap(), end_sessions: true })),
        ErrorCode::NotFound
    );
    assert_eq!(dir.to_doc(), doc);

    // The exported state, published plan included, reloads to the same decisions.
    let reloaded = World::from_doc(&dir.to_doc()).unwrap();
    for t in [T(), day(16), day(30)] {
        for p in [read, approve] {
            assert_eq!(reloaded.check(&boss, &a, p, None, t).reason(), dir.check(&boss, &a, p, None, t).reason());
        }
    }
}

#[test]
fn support_sessions_grant_time_boxed_access_without_seats_or_ownership() {
    let dir = directory();
    let platform = Actor::Staff("zoe".parse().unwrap());
    let a = cid("a");
    let zoe = Principal::parse("user:zoe").unwrap();
    let manage = dir.permission("core:member:manage").unwrap();
    let session = |id: &str, user: &str, hours: i64, reason: &str| Change::OpenSupportSession {
        company: a.clone(),
        session: serde_json::from_value(
            serde_json::json!({"id": id, "user": user, "reason": reason, "roles": ["owner"],
            "opened_at": T(), "expires_at": Timestamp::from_unix(T().unix_seconds() + hours * 3600)}),
        )
        .unwrap(),
    };
    assert_eq!(code(dir.apply(&platform, T(), session("s0", "zoe", 5, "ticket 7"))), ErrorCode::ValidationFailed);
    assert_eq!(code(dir.apply(&platform, T(), session("s0", "zoe", 2, " "))), ErrorCode::ValidationFailed);
    assert_eq!(code(dir.apply(&Actor::Platform, T(), session("s0", "rita", 2, "ticket 7"))), ErrorCode::Conflict);
    // Staff open sessions for themselves only.
    assert_eq!(code(dir.apply(&platform, T(), session("s0", "bob", 2, "ticket 7"))), ErrorCode::Forbidden);
    assert_eq!(code(dir.apply(&user("boss"), T(), session("s0", "zoe", 2, "ticket 7"))), ErrorCode::Forbidden);
    let record = dir.apply(&platform, T(), session("s1", "zoe", 2, "ticket 7")).unwrap();
    assert_eq!(record.principals, vec![zoe.clone()]);
    assert_eq!(record.actor, platform, "the record names the staff user");
    assert_eq!(code(dir.apply(&Actor::Platform, T(), session("s1", "bob", 2, "again"))), ErrorCode::Conflict);
    assert!(dir.check(&zoe, &a, manage, None, T()).is_allowed());
    // The session's membership is the session's: nobody edits it to outlive the session.
    let forever = member("zoe", "a", MembershipStatus::Active, &["owner"]);
    assert_eq!(code(dir.apply(&user("zoe"), T(), forever.clone())), ErrorCode::Conflict);
    assert_eq!(code(dir.apply(&Actor::Platform, T(), forever)), ErrorCode::Conflict);
    let remove = Change::RemoveMembership { company: a.clone(), user: "zoe".parse().unwrap() };
    assert_eq!(code(dir.apply(&user("boss"), T(), remove)), ErrorCode::Conflict);
    let end = Timestamp::from_unix(T().unix_seconds() + 2 * 3600);
    assert_eq!(dir.check(&zoe, &a, manage, None, end).reason(), Some(DenyReason::MembershipExpired));
    // No seat: `a` has 3 seats, 2 real members active; activating the invited one still fits.
    dir.apply(&Actor::Platform, T(), member("new", "a", MembershipStatus::Active, &["reader"])).unwrap();
    // Not an owner: the company must keep a real one.
    let suspend = member("boss", "a", MembershipStatus::Suspended, &["owner"]);
    assert_eq!(code(dir.apply(&Actor::Platform, T(), suspend)), ErrorCode::Conflict);
    // The session is on the record, and reloads.
    assert_eq!(dir.to_doc().companies[0].support_sessions.len(), 1);
    let reloaded = World::from_doc(&dir.to_doc()).unwrap();
    assert!(reloaded.check(&zoe, &a, manage, None, T()).is_allowed());
    // Closing ends the access at once.
    let mid = Timestamp::from_unix(T().unix_seconds() + 3600);
    let close = |id: &str| Change::CloseSupportSession { company: a.clone(), id: id.into() };
    assert_eq!(code(dir.apply(&platform, T(), close("nope"))), ErrorCode::NotFound);
    dir.apply(&platform, mid, close("s1")).unwrap();
    assert_eq!(dir.check(&zoe, &a, manage, None, mid).reason(), Some(DenyReason::NotAMember));
    assert_eq!(dir.to_doc().companies[0].support_sessions[0].closed_at, Some(mid));
    assert_eq!(code(dir.apply(&platform, mid, close("s1"))), ErrorCode::Conflict, "closed sessions stay closed");
}

/// DESIGN.md §3: every write that adds or changes an end instant refuses one before its own instant, for
/// every actor; an end left as it was may be in the past.
#[test]
fn nothing_ends_retroactively() {
    use MembershipStatus::Active;
    let dir = directory();
    let past = day(9);
    let a = cid("a");
    let sub = |id: &str, edit: &dyn Fn(&mut serde_json::Value)| {
        let mut doc = serde_json::json!({"id": id, "plan": {"addon": "ai", "version": 1}, "status": "active",
            "starts_at": day(1)});
        edit(&mut doc);
        Change::AddSubscription { company: a.clone(), subscription: serde_json::from_value(doc).unwrap() }
    };
    let refused: Vec<(&str, Actor, Change)> = vec![
        ("/membership/expires_at", user("boss"), membership("rita", Active, &["reader"], Some(9), &[])),
        ("/delegation/expires_at", user("boss"), {
            let Change::PutDelegation(mut d) = delegation("x9", "boss", "rita", &["core:doc:read"]) else {
                unreachable!()
            };
            d.not_before = day(1);
            d.expires_at = past;
            Change::AddDelegation(d)
        }),
        ("/delegation/revoked_at", user("boss"), {
            let Change::PutDelegation(mut d) = delegation("x9", "boss", "rita", &["core:doc:read"]) else {
                unreachable!()
            };
            d.revoked_at = Some(past);
            Change::AddDelegation(d)
        }),
        ("/subscription/ends_at", Actor::Platform, sub("s9", &|d| d["ends_at"] = serde_json::json!(past))),
        (
            "/subscription/grace_until",
            Actor::Platform,
            sub("s9", &|d| {
                d["status"] = "past_due".into();
                d["grace_until"] = serde_json::json!(past);
            }),
        ),
        (
            "/subscription/trial_ends_at",
            Actor::Platform,
            sub("s9", &|d| {
                d["status"] = "trialing".into();
                d["trial_ends_at"] = serde_json::json!(past);
            }),
        ),
        (
            "/patch/ends_at",
            Actor::Platform,
            Change::UpdateSubscription {
                company: a.clone(),
                subscription: "s".parse().unwrap(),
                patch: serde_json::from_value(serde_json::json!({"ends_at": past})).unwrap(),
            },
        ),
        (
            "/override/expires_at",
            Actor::Platform,
            Change::AddOverride {
                company: a.clone(),
                item: serde_json::from_value(serde_json::json!({"id": "o9", "effect": "grant", "module": "ai",
                "expires_at": past, "reason": "late"}))
                .unwrap(),
            },
        ),
    ];
    let seq = dir.seq();
    for (path, actor, change) in refused {
        match dir.apply(&actor, T(), change.clone()) {
            Err(AccessError::Validation(errors)) => {
                assert_eq!(errors[0].path, path, "{change:?}");
                assert!(errors[0].message.contains("nothing ends retroactively"), "{}", errors[0].message);
            }
            other => panic!("{change:?} should be refused as retroactive, got {other:?}"),
        }
    }
    assert_eq!(dir.seq(), seq, "nothing was written");
    // An end at the write's instant, or later, is fine; so is an end in the past that the write keeps.
    dir.apply(&user("boss"), T(), membership("rita", Active, &["reader"], Some(10), &[])).unwrap();
    let keep = membership("rita", MembershipStatus::Suspended, &["reader"], Some(10), &[]);
    dir.apply(&user("boss"), day(12), keep).unwrap();
}

/// Sign-in's list of companies and support-session lookups come from indices kept in step with every
/// kind of write that adds or removes a membership or a company.
#[test]
fn memberships_and_support_sessions_are_indexed() {
    let dir = directory();
    let companies =
        |u: &str| dir.memberships_of(&u.parse().unwrap()).into_iter().map(|(c, _)| c.to_string()).collect::<Vec<_>>();
    assert_eq!(companies("boss"), ["a"]);
    assert_eq!(companies("fin"), ["b"]);
    let create = Change::CreateCompany {
        company: serde_json::from_str(r#"{"id":"c"}"#).unwrap(),
        owner: "boss".parse().unwrap(),
    };
    dir.apply(&Actor::Platform, T(), create).unwrap();
    assert_eq!(companies("boss"), ["a", "c"]);
    dir.apply(&Actor::Platform, T(), member("fin", "c", MembershipStatus::Invited, &[])).unwrap();
    assert_eq!(companies("fin"), ["b", "c"]);
    dir.apply(&Actor::Platform, T(), Change::RemoveMembership { company: cid("c"), user: "fin".parse().unwrap() })
        .unwrap();
    assert_eq!(companies("fin"), ["b"]);
    let session = Change::OpenSupportSession {
        company: cid("a"),
        session: serde_json::from_value(serde_json::json!({"id": "ss1", "user": "zoe", "reason": "ticket",
            "roles": ["reader"], "opened_at": T(), "expires_at": Timestamp::from_unix(T().unix_seconds() + 3600)}))
        .unwrap(),
    };
    dir.apply(&Actor::Staff("zoe".parse().unwrap()), T(), session).unwrap();
    assert_eq!(companies("zoe"), ["a"]);
    assert_eq!(dir.support_session_company("ss1"), Some(cid("a")));
    assert_eq!(dir.support_session_company("nope"), None);
    dir.apply(&Actor::Platform, T(), Change::CloseSupportSession { company: cid("a"), id: "ss1".into() }).unwrap();
    assert!(companies("zoe").is_empty());
    dir.apply(&Actor::Platform, T(), Change::RemoveCompany { company: cid("a") }).unwrap();
    assert_eq!(companies("boss"), ["c"]);
    assert_eq!(dir.support_session_company("ss1"), None);
    // A directory opened from the exported state has the same indices.
    let reloaded = Directory::new(World::from_doc(&dir.to_doc()).unwrap());
    assert_eq!(reloaded.memberships_of(&"boss".parse().unwrap()).len(), 1);
}

#[test]
fn removing_an_agent_takes_its_delegations_with_it() {
    let dir = directory();
    // `bot` has a delegation (d2, from rita); removing it used to be refused because d2 named it.
    let bot = Principal::parse("agent:bot").unwrap();
    dir.apply(&user("boss"), T(), Change::RemoveAgent { company: cid("a"), agent: "bot".parse().unwrap() }).unwrap();
    let doc = dir.to_doc();
    assert!(doc.agents.is_empty());
    assert!(doc.delegations.iter().all(|d| d.id != "d2"), "its delegation went with it");
    assert!(doc.delegations.iter().any(|d| d.id == "d1"), "others stay");
    assert!(dir.snapshot(&bot, &cid("a"), T()).denies_all().is_some());
    // Registering it again gives it nothing of what it had.
    dir.apply(&user("boss"), T(), Change::PutAgent(serde_json::from_str(r#"{"id":"bot","company":"a"}"#).unwrap()))
        .unwrap();
    let core = dir.permission("core:doc:read").unwrap();
    assert!(!dir.check(&bot, &cid("a"), core, None, day(10)).is_allowed());
}
