//! The demo: `deedbolt seed-demo` and `deedbolt serve --demo`.
//!
//! [`seed`] fills a data directory with a small demo portfolio (properties, tenants,
//! ledgers, maintenance requests) and the people and machine client to try it: an
//! administrator, two managers, two tenants who can sign in. [`bff_settings`] registers
//! the client of the demo app at `/app` (its backend-for-frontend) and stores its settings
//! in the data directory, sealed under the master key like the signing keys, so every later
//! `serve --demo` reuses them without any environment variable.
//!
//! Passwords and secrets are generated and printed once; nothing is a fixed default.

use crate::config::BffConfig;
use crate::storage::Store;
use anyhow::{bail, Context};
use deedbolt_core::audit::{AuditKind, AuditRecord};
use deedbolt_core::client::{Client, ClientKind, ClientName, GrantType, NewClient};
use deedbolt_core::clock::{Clock, SystemClock};
use deedbolt_core::ids::ClientId;
use deedbolt_core::keyring::KeyVault;
use deedbolt_core::redirect::RedirectUri;
use deedbolt_core::secret::{ClientSecret, SecretHasher};
use deedbolt_core::user::{Email, Role, User};
use deedbolt_proptech::ledger::{EntryKind, NewEntry};
use deedbolt_proptech::maintenance::{NewRequest, Priority, RequestUpdate, Status};
use deedbolt_proptech::property::{NewProperty, PropertyKind};
use deedbolt_proptech::store::Write;
use deedbolt_proptech::tenant::NewTenant;
use deedbolt_proptech::Viewer;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::accounts::register_user;

/// The demo's people: (email, name, role).
const USERS: [(&str, &str, Role); 5] = [
    ("ada.admin@example.com", "Ada Admin", Role::Admin),
    ("maya.manager@example.com", "Maya Manager", Role::Manager),
    ("mo.manager@example.com", "Mo Manager", Role::Manager),
    ("tom.tenant@example.com", "Tom Tenant", Role::Tenant),
    ("tia.tenant@example.com", "Tia Tenant", Role::Tenant),
];

/// The scopes of the demo app's client, and what it asks for: a tenant's view needs the
/// tenant scopes, a manager's the property and staff ones. Each user's role trims the
/// request to what it may delegate, so a tenant's session never gets the staff scopes.
pub const BFF_SCOPES: &str = "openid profile email property:read tenant:read financial:read \
                              maintenance:request maintenance:manage";

/// The name under which the demo app's settings are stored (sealed) in the data directory.
const BFF_SETTINGS_NAME: &str = "demo_bff_settings";

/// The demo app's settings as stored: everything `serve` needs to run its
/// backend-for-frontend.
#[derive(Serialize, Deserialize)]
struct StoredBff {
    client_id: String,
    client_secret: String,
    cookie_keys: String,
    scope: String,
}

/// What [`seed`] made, to be shown once.
pub struct Seeded {
    /// The people, each with their generated password.
    pub users: Vec<(User, String)>,
    /// The property ids.
    pub properties: Vec<i64>,
    /// The tenant ids.
    pub tenants: Vec<i64>,
    /// How many maintenance requests.
    pub requests: usize,
    /// The machine (client-credentials) client and its secret.
    pub machine: (Client, ClientSecret),
}

impl std::fmt::Debug for Seeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seeded")
            .field("users", &self.users.len())
            .field("properties", &self.properties)
            .field("tenants", &self.tenants)
            .field("requests", &self.requests)
            .field("machine", &self.machine.0.id)
            .finish()
    }
}

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

/// Whether the demo has been seeded into `store` (its administrator exists).
pub async fn is_seeded(store: &Store) -> anyhow::Result<bool> {
    let (admin, _, _) = USERS[0];
    Ok(store
        .find_user_by_email(&Email::parse(admin)?)
        .await?
        .is_some())
}

/// Seeds the demo portfolio, its people and its machine client into `store`; client
/// secrets are hashed with `hasher`. Refuses, changing nothing, if any demo user exists
/// already.
pub async fn seed(store: &Store, hasher: &SecretHasher) -> anyhow::Result<Seeded> {
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

    let machine = NewClient::new(
        ClientName::parse("Demo valuation service")?,
        vec![GrantType::ClientCredentials],
        "property:read tenant:read financial:read".parse()?,
        vec![],
        ClientKind::Confidential,
    )?;
    let machine_secret = ClientSecret::generate()?;
    let machine = insert_client(
        store,
        hasher,
        machine,
        ClientId::generate()?,
        &machine_secret,
    )
    .await?;
    Ok(Seeded {
        users,
        properties: properties.iter().map(|p| p.id).collect(),
        tenants: tenants.iter().map(|t| t.id).collect(),
        requests: requests.len(),
        machine: (machine, machine_secret),
    })
}

/// Stores a confidential client with the given id and secret (only the secret's keyed
/// hash is stored) and audits it.
async fn insert_client(
    store: &Store,
    hasher: &SecretHasher,
    new: NewClient,
    id: ClientId,
    secret: &ClientSecret,
) -> anyhow::Result<Client> {
    let now = SystemClock.now();
    let client = Client {
        id,
        name: new.name,
        secret_hash: Some(hasher.hash(secret)),
        grant_types: new.grant_types,
        scopes: new.scopes,
        redirect_uris: new.redirect_uris,
        kind: new.kind,
        allow_introspection: false,
        properties: None,
        id_token_alg: new.id_token_alg,
        metadata: new.metadata,
        registration_token_hash: None,
        created_at: now,
        updated_at: now,
    };
    store.insert_client(&client).await?;
    store
        .insert_audit(&[AuditRecord::new(AuditKind::ClientCreated, true, now)
            .client(&client.id)
            .scope(client.scopes)
            .detail("demo")])
        .await?;
    Ok(client)
}

/// The demo app's backend-for-frontend settings, from the data directory.
///
/// The first call stores them: a fresh client id, secret and cookie key, sealed under
/// the vault's master key (in development mode, without one, unencrypted like the signing
/// keys), and registers the client with redirect URI `{issuer}/bff/callback`. Later calls
/// return the stored settings, and register the client again if it was deleted.
/// `refresh_before` is the backend-for-frontend's refresh margin.
pub async fn bff_settings(
    store: &Store,
    vault: &KeyVault,
    hasher: &SecretHasher,
    issuer: &str,
    refresh_before: std::time::Duration,
) -> anyhow::Result<BffConfig> {
    let fresh = StoredBff {
        client_id: ClientId::generate()?.to_string(),
        client_secret: ClientSecret::generate()?.expose_secret().to_owned(),
        cookie_keys: deedbolt_client::SealKey::generate("k1")
            .context("cannot make a cookie key")?
            .to_config_entry()
            .expose()
            .to_owned(),
        scope: BFF_SCOPES.to_owned(),
    };
    let fresh = zeroize::Zeroizing::new(serde_json::to_vec(&fresh)?);
    let stored = vault
        .named_secret(BFF_SETTINGS_NAME, &fresh)
        .await
        .context("cannot store or read the demo app's settings")?;
    let stored: StoredBff =
        serde_json::from_slice(&stored).context("the stored demo app settings are corrupt")?;
    let id = ClientId::parse(&stored.client_id).context("the stored demo app client id")?;
    let secret = ClientSecret::from_presented(stored.client_secret.clone());
    if store.find_client(&id).await?.is_none() {
        let redirect = RedirectUri::parse(&format!("{issuer}/bff/callback"))
            .context("the demo app's redirect URI")?;
        let new = NewClient::new(
            ClientName::parse("Property portal (demo)")?,
            vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            stored.scope.parse()?,
            vec![redirect],
            ClientKind::Confidential,
        )?;
        if let Err(e) = insert_client(store, hasher, new, id.clone(), &secret).await {
            // Another instance starting at the same moment may have registered it.
            if store.find_client(&id).await?.is_none() {
                return Err(e);
            }
        }
    }
    Ok(BffConfig {
        client_id: stored.client_id.clone(),
        client_secret: deedbolt_client::Secret::new(stored.client_secret.clone()),
        cookie_keys: deedbolt_client::SealKey::parse_list(&stored.cookie_keys)
            .context("the stored demo app cookie keys")?,
        scope: stored.scope.clone(),
        refresh_before,
    })
}

/// Prints the people and their passwords (shown only this once).
pub fn print_users(seeded: &Seeded) {
    println!(
        "Demo portfolio created: {} properties, {} tenants with three months of ledger, {} \
         maintenance requests.",
        seeded.properties.len(),
        seeded.tenants.len(),
        seeded.requests
    );
    println!();
    println!("Users (passwords are shown only now):");
    println!("  {:<8} {:<28} PASSWORD", "ROLE", "EMAIL");
    for (u, pw) in &seeded.users {
        println!("  {:<8} {:<28} {}", u.role.as_str(), u.email.as_str(), pw);
    }
    println!();
    let (machine, secret) = &seeded.machine;
    println!("Machine client (client credentials, property:read tenant:read financial:read):");
    println!("  client_id:     {}", machine.id);
    println!("  client_secret: {}", secret.expose_secret());
}

/// The users as JSON (with their passwords).
pub fn users_json(seeded: &Seeded) -> serde_json::Value {
    seeded
        .users
        .iter()
        .map(|(u, pw)| {
            json!({"user_id": u.id, "email": u.email, "role": u.role.as_str(), "password": pw})
        })
        .collect()
}

/// The `deedbolt serve` command line that runs the seeded data directory with its demo
/// app: the data directory (absolute), and for an `http` loopback issuer the matching
/// `--listen` address.
pub fn serve_command(data_dir: &std::path::Path, issuer: &str) -> anyhow::Result<String> {
    let dir = std::path::absolute(data_dir).context("cannot resolve the data directory")?;
    let dir = dir.to_str().context("the data directory is not UTF-8")?;
    let url = url::Url::parse(issuer).context("the issuer")?;
    let mut cmd = format!("deedbolt --data-dir {} serve --demo", shell_quote(dir));
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
        _ => None,
    };
    if let (true, Some(ip), Some(port)) = (url.scheme() == "http", ip, url.port_or_known_default())
    {
        let listen = std::net::SocketAddr::new(ip, port).to_string();
        if listen != crate::config::DEFAULT_LISTEN {
            cmd.push_str(&format!(" --listen {}", shell_quote(&listen)));
        }
    }
    cmd.push_str(&format!(" --issuer {}", shell_quote(issuer)));
    Ok(cmd)
}

/// `s` quoted for a POSIX shell when it has anything but plain path characters.
fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-:@%+=,".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// `deedbolt seed-demo`: seeds, stores the demo app's settings, and prints the users,
/// the machine client and the command that serves the demo.
pub async fn seed_demo_command(
    store: &Store,
    vault: &KeyVault,
    data_dir: &std::path::Path,
    issuer: &str,
    json: bool,
) -> anyhow::Result<()> {
    crate::config::validate_issuer(issuer)?;
    let hasher = SecretHasher::new(&vault.pepper().await?);
    let seeded = seed(store, &hasher).await?;
    let bff = bff_settings(
        store,
        vault,
        &hasher,
        issuer,
        deedbolt_http::bff::DEFAULT_REFRESH_BEFORE,
    )
    .await?;
    let command = serve_command(data_dir, issuer)?;
    if json {
        let (machine, machine_secret) = &seeded.machine;
        println!(
            "{}",
            json!({
                "users": users_json(&seeded),
                "properties": seeded.properties,
                "tenants": seeded.tenants,
                "bff": {"client_id": bff.client_id},
                "machine_client": {"client_id": machine.id, "client_secret": machine_secret.expose_secret()},
                "serve_command": command,
            })
        );
        return Ok(());
    }
    print_users(&seeded);
    println!();
    println!("The demo app's settings are stored in the data directory. Start the server with:");
    println!();
    println!("  {command}");
    println!();
    println!(
        "then open {issuer}/app and sign in as tom.tenant@example.com (a tenant) or \
         maya.manager@example.com (a manager)."
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_command_names_the_data_dir_and_listens_where_a_loopback_issuer_says() {
        let dir = std::path::Path::new("/srv/demo data");
        assert_eq!(
            serve_command(dir, "http://127.0.0.1:8080").unwrap(),
            "deedbolt --data-dir '/srv/demo data' serve --demo --issuer http://127.0.0.1:8080"
        );
        assert_eq!(
            serve_command(std::path::Path::new("/srv/d"), "http://127.0.0.1:9000").unwrap(),
            "deedbolt --data-dir /srv/d serve --demo --listen 127.0.0.1:9000 \
             --issuer http://127.0.0.1:9000"
        );
        assert_eq!(
            serve_command(std::path::Path::new("/srv/d"), "http://[::1]:9000").unwrap(),
            "deedbolt --data-dir /srv/d serve --demo --listen '[::1]:9000' \
             --issuer 'http://[::1]:9000'"
        );
        // Behind a proxy the listen address is the operator's to choose.
        assert_eq!(
            serve_command(std::path::Path::new("/srv/d"), "https://demo.example.com").unwrap(),
            "deedbolt --data-dir /srv/d serve --demo --issuer https://demo.example.com"
        );
    }

    #[test]
    fn shell_quote_quotes_only_what_needs_it() {
        assert_eq!(shell_quote("/a/b-c_d.e"), "/a/b-c_d.e");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
