//! `deedbolt seed-demo`: fills an empty data directory with a small demo portfolio
//! (properties, tenants, ledgers, maintenance requests) and the users and clients to try
//! it: an administrator, two managers, two tenants who can sign in, a machine client and
//! the backend-for-frontend's client for the demo app at `/app`.
//!
//! Passwords and secrets are generated and printed once; nothing is a fixed default.

use crate::storage::Store;
use anyhow::{bail, Context};
use deedbolt_core::client::{ClientKind, ClientName, GrantType, NewClient};
use deedbolt_core::clock::{Clock, SystemClock};
use deedbolt_core::redirect::RedirectUri;
use deedbolt_core::user::{Email, Role, User};
use deedbolt_proptech::ledger::{EntryKind, NewEntry};
use deedbolt_proptech::maintenance::{NewRequest, Priority, RequestUpdate, Status};
use deedbolt_proptech::property::{NewProperty, PropertyKind};
use deedbolt_proptech::store::Write;
use deedbolt_proptech::tenant::NewTenant;
use deedbolt_proptech::Viewer;
use serde_json::json;

use crate::cli::{register_client, register_user};

/// The demo's people: (email, name, role).
const USERS: [(&str, &str, Role); 5] = [
    ("ada.admin@example.com", "Ada Admin", Role::Admin),
    ("maya.manager@example.com", "Maya Manager", Role::Manager),
    ("mo.manager@example.com", "Mo Manager", Role::Manager),
    ("tom.tenant@example.com", "Tom Tenant", Role::Tenant),
    ("tia.tenant@example.com", "Tia Tenant", Role::Tenant),
];

/// The scopes of the demo app's BFF client: what a tenant's view needs.
pub const BFF_SCOPES: &str = "openid profile email tenant:read financial:read maintenance:request";

fn generated_password() -> anyhow::Result<String> {
    // 18 random bytes: 24 base64url characters, far above the password policy's floor.
    Ok(deedbolt_core::rand::token::<18>()?)
}

fn ok<T>(w: Write<T>) -> anyhow::Result<T> {
    match w {
        Write::Done(v) => Ok(v),
        Write::NotFound => bail!("demo data refers to a missing record"),
        Write::Invalid(e) => bail!("demo data is invalid: {}: {}", e.field, e.message),
    }
}

/// Seeds the demo into `store`; `issuer` is the server's issuer (for the BFF's redirect
/// URI). Refuses, changing nothing, if any demo user exists already.
pub async fn seed(
    store: &Store,
    data_dir: &std::path::Path,
    issuer: &str,
    json: bool,
) -> anyhow::Result<()> {
    crate::config::validate_issuer(issuer)?;
    for (email, _, _) in USERS {
        if store
            .find_user_by_email(&Email::parse(email)?)
            .await?
            .is_some()
        {
            bail!(
                "this data directory already has the demo user {email}; seed-demo only fills \
                 an empty data directory (use a fresh --data-dir)"
            );
        }
    }
    let redirect =
        RedirectUri::parse(&format!("{issuer}/bff/callback")).context("the BFF redirect URI")?;

    let mut users: Vec<(User, String)> = Vec::new();
    for (email, name, role) in USERS {
        let password = generated_password()?;
        let user = register_user(
            store,
            Email::parse(email)?,
            role,
            Some(name.to_owned()),
            password.clone(),
        )
        .await?;
        users.push((user, password));
    }
    let id = |i: usize| users[i].0.id.clone();
    let (maya, mo, tom, tia) = (id(1), id(2), id(3), id(4));

    let now = SystemClock.now();
    let all = Viewer::Portfolio;
    let mut properties = Vec::new();
    for (name, address, kind, units, manager) in [
        (
            "Harbour View",
            "1 Quay Street, Bristol BS1 4XE",
            PropertyKind::Residential,
            12,
            &maya,
        ),
        (
            "Mill Lofts",
            "22 Weaver Lane, Leeds LS9 8AA",
            PropertyKind::MixedUse,
            8,
            &maya,
        ),
        (
            "Station Works",
            "5 Depot Road, York YO1 6HT",
            PropertyKind::Commercial,
            4,
            &mo,
        ),
    ] {
        let p = NewProperty {
            name: name.into(),
            address: address.into(),
            kind,
            units,
            manager_id: Some(manager.clone()),
        };
        properties.push(store.create_property(&p, "seed-demo", now).await?);
    }
    let mut tenants = Vec::new();
    for (name, email, user, property, unit, rent) in [
        (
            "Tom Tenant",
            "tom.tenant@example.com",
            Some(&tom),
            0,
            "4B",
            "1250.00",
        ),
        (
            "Tia Tenant",
            "tia.tenant@example.com",
            Some(&tia),
            2,
            "Unit 2",
            "2400.00",
        ),
        ("Sam Sharma", "sam@example.com", None, 0, "2A", "1100.00"),
        ("Lee Lowe", "lee@example.com", None, 1, "1", "950.00"),
    ] {
        let t = NewTenant {
            name: name.into(),
            email: Some(email.into()),
            phone: None,
            user_id: user.cloned(),
            property_id: properties[property].id,
            unit: unit.into(),
            rent: rent.parse().map_err(|e| anyhow::anyhow!("{e}"))?,
            currency: "GBP".parse().map_err(|()| anyhow::anyhow!("currency"))?,
            lease_start: "2026-01-01".parse().map_err(|()| anyhow::anyhow!("date"))?,
        };
        tenants.push(ok(store.create_tenant(&all, &t, now).await?)?);
    }
    // Three months of rent for everyone; Tom has paid two of them, Tia paid all and a bit
    // more, Sam paid all, Lee paid one.
    let paid_months = [2, 3, 3, 1];
    for (t, paid) in tenants.iter().zip(paid_months) {
        for (i, month) in ["2026-09", "2026-10", "2026-11"].iter().enumerate() {
            let charge = NewEntry {
                kind: EntryKind::Charge,
                amount: t.rent,
                description: format!("Rent {month}"),
                effective_on: format!("{month}-01")
                    .parse()
                    .map_err(|()| anyhow::anyhow!("date"))?,
            };
            ok(store
                .add_entry(&all, t.id, &charge, "seed-demo", now)
                .await?)?;
            if i < paid {
                let payment = NewEntry {
                    kind: EntryKind::Payment,
                    amount: t.rent,
                    description: format!("Payment, rent {month}"),
                    effective_on: format!("{month}-03")
                        .parse()
                        .map_err(|()| anyhow::anyhow!("date"))?,
                };
                ok(store
                    .add_entry(&all, t.id, &payment, "seed-demo", now)
                    .await?)?;
            }
        }
    }
    let requests: [(usize, &str, &str, Priority, &[Status]); 4] = [
        (
            0,
            "Kitchen tap drips",
            "The cold tap in the kitchen drips constantly.",
            Priority::Normal,
            &[],
        ),
        (
            0,
            "No heating",
            "The radiators in the bedroom stay cold.",
            Priority::Urgent,
            &[Status::InProgress],
        ),
        (
            1,
            "Shutter sticks",
            "The front shutter jams half way.",
            Priority::Low,
            &[Status::InProgress, Status::Resolved],
        ),
        (
            2,
            "Hall light out",
            "The hallway light does not switch on.",
            Priority::Normal,
            &[Status::InProgress, Status::Resolved, Status::Closed],
        ),
    ];
    for (tenant, title, description, priority, path) in requests {
        let r = ok(store
            .open_request(
                &all,
                tenants[tenant].id,
                &NewRequest {
                    tenant_id: Some(tenants[tenant].id),
                    title: title.into(),
                    description: description.into(),
                    priority,
                },
                "seed-demo",
                now,
            )
            .await?)?;
        for status in path {
            let update = RequestUpdate {
                status: Some(*status),
                assignee: Some("Northside Maintenance".into()),
                priority: None,
            };
            ok(store.update_request(&all, r.id, &update, now).await?)?;
        }
    }

    let bff = NewClient::new(
        ClientName::parse("Demo tenant app (BFF)")?,
        vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        BFF_SCOPES.parse()?,
        vec![redirect],
        ClientKind::Confidential,
    )?;
    let (bff, bff_secret) = register_client(store, data_dir, bff, false, None).await?;
    let machine = NewClient::new(
        ClientName::parse("Demo valuation service")?,
        vec![GrantType::ClientCredentials],
        "property:read tenant:read financial:read".parse()?,
        vec![],
        ClientKind::Confidential,
    )?;
    let (machine, machine_secret) = register_client(store, data_dir, machine, false, None).await?;
    let bff_secret = bff_secret.context("the BFF client is confidential")?;
    let machine_secret = machine_secret.context("the machine client is confidential")?;
    let cookie_key = format!("k1:{}", deedbolt_core::rand::token::<32>()?);

    if json {
        let users: Vec<_> = users
            .iter()
            .map(|(u, pw)| json!({"user_id": u.id, "email": u.email, "role": u.role.as_str(), "password": pw}))
            .collect();
        println!(
            "{}",
            json!({
                "users": users,
                "properties": properties.iter().map(|p| p.id).collect::<Vec<_>>(),
                "tenants": tenants.iter().map(|t| t.id).collect::<Vec<_>>(),
                "bff": {"client_id": bff.id, "client_secret": bff_secret.expose_secret(), "cookie_keys": cookie_key},
                "machine_client": {"client_id": machine.id, "client_secret": machine_secret.expose_secret()},
            })
        );
        return Ok(());
    }
    println!("Demo portfolio created: {} properties, {} tenants with three months of ledger, {} maintenance requests.", properties.len(), tenants.len(), requests.len());
    println!();
    println!("Users (passwords are shown only now):");
    for (u, pw) in &users {
        println!("  {:<8} {:<28} {}", u.role.as_str(), u.email.as_str(), pw);
    }
    println!();
    println!("Machine client (client credentials, property:read tenant:read financial:read):");
    println!("  client_id:     {}", machine.id);
    println!("  client_secret: {}", machine_secret.expose_secret());
    println!();
    println!("To try the demo tenant app, start the server with its backend-for-frontend:");
    println!();
    println!("  DEEDBOLT_BFF_CLIENT_ID={} \\", bff.id);
    println!(
        "  DEEDBOLT_BFF_CLIENT_SECRET={} \\",
        bff_secret.expose_secret()
    );
    println!("  DEEDBOLT_BFF_COOKIE_KEYS={cookie_key} \\");
    println!("  deedbolt serve --issuer {issuer}");
    println!();
    println!("then open {issuer}/app and sign in as tom.tenant@example.com.");
    Ok(())
}
