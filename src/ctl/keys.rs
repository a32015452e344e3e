//! `sessionctl keys create | list | revoke`: API keys of the HTTP API. A created key is
//! printed once, alone on stdout; only its hash is stored.

use super::{out, pretty_json, CtlError, KeyRole, KeysCommand};
use crate::auth::{create_key, list_keys, revoke_key, Role};
use crate::store::EventStore;

/// Runs one `keys` subcommand.
pub(super) async fn run(
    store: &EventStore,
    cmd: KeysCommand,
    database_url: &str,
) -> Result<(), CtlError> {
    match cmd {
        KeysCommand::Create {
            role,
            owner,
            agent_id,
            description,
            keypair: true,
            json,
        } => {
            let role = role_of(role, owner, agent_id)?;
            create_keypair(store, role, &description, database_url, json).await
        }
        KeysCommand::Create {
            role,
            owner,
            agent_id,
            description,
            ..
        } => create(store, role_of(role, owner, agent_id)?, &description).await,
        KeysCommand::List { json } => list(store, json).await,
        KeysCommand::Revoke { id } => revoke(store, &id).await,
    }
}

/// The role of `keys create`, checking that exactly the right binding came with it.
fn role_of(
    role: KeyRole,
    owner: Option<String>,
    agent_id: Option<String>,
) -> Result<Role, CtlError> {
    match (role, owner, agent_id) {
        (KeyRole::Admin, None, None) => Ok(Role::Admin),
        (KeyRole::User, Some(owner), None) => Ok(Role::User { owner }),
        (KeyRole::Agent, None, Some(agent_id)) => Ok(Role::Agent { agent_id }),
        (KeyRole::Admin, _, _) => Err(CtlError::Other(
            "an admin key takes neither --owner nor --agent-id".into(),
        )),
        (KeyRole::User, _, _) => Err(CtlError::Other(
            "a user key takes --owner (and no --agent-id)".into(),
        )),
        (KeyRole::Agent, _, _) => Err(CtlError::Other(
            "an agent key takes --agent-id (and no --owner)".into(),
        )),
    }
}

/// `keys create`: the key on stdout, what it is on stderr.
async fn create(store: &EventStore, role: Role, description: &str) -> Result<(), CtlError> {
    let (info, secret) = create_key(&store.db(), role, description).await?;
    eprintln!(
        "created {} ({}); the key is printed once and only its hash is stored",
        info.id,
        describe_role(&info.role)
    );
    out(secret.expose());
    Ok(())
}

/// `keys create --keypair`: the access key and the secret key on stdout (two lines, or
/// JSON), what it is on stderr.
async fn create_keypair(
    store: &EventStore,
    role: Role,
    description: &str,
    database_url: &str,
    json: bool,
) -> Result<(), CtlError> {
    let setting = std::env::var("SESSIOND_SECRET_KEY").ok();
    let kek = crate::compat::kek::resolve(setting.as_deref(), database_url)
        .map_err(|e| CtlError::Other(e.to_string()))?
        .ok_or_else(|| {
            CtlError::Other(crate::compat::kek::KekError::Required("create a keypair").to_string())
        })?;
    let pair = crate::auth::create_keypair(&store.db(), &kek, role, description).await?;
    eprintln!(
        "created {} ({}, keypair); the secret key is printed once and stored sealed",
        pair.info.id,
        describe_role(&pair.info.role)
    );
    if json {
        out(&pretty_json(&serde_json::json!({
            "id": pair.info.id,
            "access_key": pair.access_key,
            "secret_key": pair.secret_key.expose(),
        }))?);
    } else {
        out(&format!("access_key {}", pair.access_key));
        out(&format!("secret_key {}", pair.secret_key.expose()));
    }
    Ok(())
}

/// `keys list`: every key as a table, or JSON with `json`.
async fn list(store: &EventStore, json: bool) -> Result<(), CtlError> {
    let keys = list_keys(&store.db()).await?;
    if json {
        out(&pretty_json(&keys)?);
        return Ok(());
    }
    out(&format!(
        "{:<21} {:<22} {:<25} {:<25} description",
        "id", "role", "created", "revoked"
    ));
    for k in keys {
        out(&format!(
            "{:<21} {:<22} {:<25} {:<25} {}",
            k.id,
            describe_role(&k.role),
            k.created_at,
            k.revoked_at.as_deref().unwrap_or("-"),
            k.description
        ));
    }
    Ok(())
}

/// `keys revoke ID`.
async fn revoke(store: &EventStore, id: &str) -> Result<(), CtlError> {
    revoke_key(&store.db(), id).await?;
    out(&format!("revoked {id}"));
    Ok(())
}

/// `admin`, `user (OWNER)` or `agent (AGENT_ID)`.
fn describe_role(role: &Role) -> String {
    match role {
        Role::Admin => "admin".into(),
        Role::User { owner } => format!("user ({owner})"),
        Role::Agent { agent_id } => format!("agent ({agent_id})"),
    }
}
