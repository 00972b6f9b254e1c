//! The operator's source of the directory: the unsigned `federation.toml` that
//! `causeway federation add | remove` edit (keeping its comments and layout) and
//! `causeway federation publish` signs. Every edit is checked by parsing the result as a
//! directory, so a source that would not publish is never written.

use anyhow::{bail, Context, Result};
use toml_edit::{value, ArrayOfTables, DocumentMut, Item, Table};

use super::Directory;
use crate::identity::DeptId;

/// A member to list: a department (with its endpoints) or an oversight node.
#[derive(Debug, Clone)]
pub struct Listing {
    /// Its id.
    pub id: DeptId,
    /// Display name.
    pub name: String,
    /// `https://host:port`: a department's peer API, an oversight node's own log.
    pub https: Option<String>,
    /// `quic://host:port`.
    pub quic: Option<String>,
    /// Its note verifier key (its log's key).
    pub vkey: String,
    /// Its witness verifier key.
    pub witness: Option<String>,
}

/// Which list a member is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member {
    /// `[[department]]`.
    Department,
    /// `[[oversight]]`.
    Oversight,
}

impl Member {
    fn table(self) -> &'static str {
        match self {
            Member::Department => "department",
            Member::Oversight => "oversight",
        }
    }
}

/// A new source for federation `federation` with no members.
pub fn new_source(federation: &str) -> Result<String> {
    DeptId::new(federation).context("federation name")?;
    Ok(format!(
        "# The federation directory's source: edit it with `causeway federation add | remove`,\n\
         # then sign it for the gateways with `causeway federation publish`.\n\
         federation = \"{federation}\"\n"
    ))
}

/// `source` with `listing` added to the `kind` list. Refused if the id is already a member.
pub fn add(source: &str, kind: Member, listing: &Listing) -> Result<String> {
    let mut doc = document(source)?;
    if position(&doc, Member::Department, &listing.id).is_some()
        || position(&doc, Member::Oversight, &listing.id).is_some()
    {
        bail!(
            "{} is already listed; remove it first (`causeway federation remove --id {}`)",
            listing.id,
            listing.id
        );
    }
    let mut table = Table::new();
    table["id"] = value(listing.id.as_str());
    table["name"] = value(&listing.name);
    if let Some(https) = &listing.https {
        table["https"] = value(https);
    }
    if let Some(quic) = &listing.quic {
        table["quic"] = value(quic);
    }
    table["vkey"] = value(&listing.vkey);
    if let Some(witness) = &listing.witness {
        table["witness"] = value(witness);
    }
    let list = doc
        .entry(kind.table())
        .or_insert(Item::ArrayOfTables(ArrayOfTables::new()));
    list.as_array_of_tables_mut()
        .with_context(|| format!("`{}` is not a list of [[{0}]] tables", kind.table()))?
        .push(table);
    checked(doc)
}

/// `source` without member `id` (a department or an oversight node), also dropped from every
/// oversight node's `pulls`. Refused if it is not listed.
pub fn remove(source: &str, id: &DeptId) -> Result<String> {
    let mut doc = document(source)?;
    let mut found = false;
    for kind in [Member::Department, Member::Oversight] {
        if let Some(i) = position(&doc, kind, id) {
            if let Some(list) = doc
                .get_mut(kind.table())
                .and_then(Item::as_array_of_tables_mut)
            {
                list.remove(i);
                found = true;
            }
        }
    }
    if !found {
        bail!("{id} is not listed in this directory");
    }
    if let Some(nodes) = doc
        .get_mut(Member::Oversight.table())
        .and_then(Item::as_array_of_tables_mut)
    {
        for node in nodes.iter_mut() {
            if let Some(pulls) = node.get_mut("pulls").and_then(Item::as_array_mut) {
                pulls.retain(|v| v.as_str() != Some(id.as_str()));
            }
        }
    }
    checked(doc)
}

/// A department's log key rotation, as the operator lists it.
#[derive(Debug, Clone)]
pub struct KeyRotation {
    /// The department.
    pub id: DeptId,
    /// Which of its instances (`None`: the department's only, or first, instance).
    pub instance: Option<DeptId>,
    /// The key it signs with from now on.
    pub new_vkey: String,
    /// The largest checkpoint size the current key signed: the key-rotation entry's index + 1.
    pub until_size: u64,
    /// When (RFC 3339).
    pub until_time: String,
    /// If the current key leaked: refuse its checkpoints from this size on.
    pub revoked_from: Option<u64>,
}

/// `source` with `rotation` applied: the instance's current `vkey` becomes its newest
/// `retired_key` (until `until_size`, revoked from `revoked_from`), and `new_vkey` its `vkey`.
pub fn rotate_key(source: &str, rotation: &KeyRotation) -> Result<String> {
    let mut doc = document(source)?;
    let at = position(&doc, Member::Department, &rotation.id)
        .with_context(|| format!("{} is not a department of this directory", rotation.id))?;
    let dept = doc
        .get_mut(Member::Department.table())
        .and_then(Item::as_array_of_tables_mut)
        .and_then(|list| list.get_mut(at))
        .expect("found just above");
    let table = match (
        dept.get_mut("instance")
            .and_then(Item::as_array_of_tables_mut),
        &rotation.instance,
    ) {
        (None, None) => dept,
        (None, Some(instance)) => bail!(
            "{} lists no [[department.instance]] entries, so there is no instance {instance}",
            rotation.id
        ),
        (Some(instances), wanted) => {
            let i = match wanted {
                None => 0,
                Some(wanted) => instances
                    .iter()
                    .position(|t| t.get("id").and_then(Item::as_str) == Some(wanted.as_str()))
                    .with_context(|| format!("{} has no instance {wanted}", rotation.id))?,
            };
            instances.get_mut(i).context("no instance")?
        }
    };
    let old = table
        .get("vkey")
        .and_then(Item::as_str)
        .context("it lists no `vkey` to retire")?
        .to_owned();
    let mut retired = Table::new();
    retired["vkey"] = value(old);
    retired["until_size"] =
        value(i64::try_from(rotation.until_size).context("until_size is too large")?);
    retired["until_time"] = value(&rotation.until_time);
    if let Some(from) = rotation.revoked_from {
        retired["revoked_from"] = value(i64::try_from(from).context("revoked_from is too large")?);
    }
    table["vkey"] = value(&rotation.new_vkey);
    // The retired keys follow the instance's other fields, oldest first.
    table
        .entry("retired_key")
        .or_insert(Item::ArrayOfTables(ArrayOfTables::new()))
        .as_array_of_tables_mut()
        .context("`retired_key` is not a list of tables")?
        .push(retired);
    checked(doc)
}

fn document(source: &str) -> Result<DocumentMut> {
    let source = super::signed::body(source);
    Directory::parse(source).context("the source directory is not valid")?;
    source
        .parse::<DocumentMut>()
        .context("the source directory is not valid TOML")
}

fn position(doc: &DocumentMut, kind: Member, id: &DeptId) -> Option<usize> {
    doc.get(kind.table())?
        .as_array_of_tables()?
        .iter()
        .position(|t| t.get("id").and_then(Item::as_str) == Some(id.as_str()))
}

fn checked(doc: DocumentMut) -> Result<String> {
    let text = doc.to_string();
    Directory::parse(&text).context("the edited directory would not be valid")?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vkey(seed: u8, name: &str) -> String {
        crate::identity::GatewayKey::new(name, ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
            .unwrap()
            .vkey()
    }

    fn listing(id: &str, seed: u8) -> Listing {
        Listing {
            id: DeptId::new(id).unwrap(),
            name: format!("The {id}"),
            https: Some("https://127.0.0.1:7443".into()),
            quic: None,
            vkey: vkey(seed, &format!("demo/{id}")),
            witness: None,
        }
    }

    #[test]
    fn members_are_added_and_removed_keeping_comments() {
        let source = format!("{}# keep me\n", new_source("demo").unwrap());
        let one = add(&source, Member::Department, &listing("tax", 1)).unwrap();
        let two = add(&one, Member::Department, &listing("civil", 2)).unwrap();
        let directory = Directory::parse(&two).unwrap();
        assert_eq!(directory.departments().count(), 2);
        assert!(two.contains("# keep me"));
        let back = remove(&two, &DeptId::new("tax").unwrap()).unwrap();
        let directory = Directory::parse(&back).unwrap();
        assert!(directory.department(&DeptId::new("tax").unwrap()).is_none());
        assert!(directory
            .department(&DeptId::new("civil").unwrap())
            .is_some());
    }

    #[test]
    fn bad_edits_are_refused() {
        let source = new_source("demo").unwrap();
        let one = add(&source, Member::Department, &listing("tax", 1)).unwrap();
        // Listed twice.
        assert!(add(&one, Member::Department, &listing("tax", 3))
            .unwrap_err()
            .to_string()
            .contains("already listed"));
        // Another department's key (same log origin): the result would not parse.
        let mut copy = listing("civil", 9);
        copy.vkey = vkey(1, "demo/tax");
        assert!(add(&one, Member::Department, &copy).is_err());
        // A bad endpoint.
        let mut bad = listing("civil", 2);
        bad.https = Some("http://x".into());
        assert!(add(&one, Member::Department, &bad).is_err());
        // Not listed.
        assert!(remove(&one, &DeptId::new("civil").unwrap()).is_err());
    }

    #[test]
    fn a_key_rotation_retires_the_current_key_and_lists_the_new_one() {
        let source = new_source("demo").unwrap();
        let one = add(&source, Member::Department, &listing("tax", 1)).unwrap();
        let rotation = KeyRotation {
            id: DeptId::new("tax").unwrap(),
            instance: None,
            new_vkey: vkey(2, "demo/tax"),
            until_size: 12,
            until_time: "2026-12-06T12:00:00Z".into(),
            revoked_from: None,
        };
        let rotated = rotate_key(&one, &rotation).unwrap();
        let again = rotate_key(
            &rotated,
            &KeyRotation {
                new_vkey: vkey(3, "demo/tax"),
                until_size: 30,
                revoked_from: Some(20),
                ..rotation.clone()
            },
        )
        .unwrap();
        assert!(again.contains("[[department.retired_key]]"), "{again}");
        let directory = Directory::parse(&again).unwrap();
        let tax = directory.department(&DeptId::new("tax").unwrap()).unwrap();
        assert_eq!(tax.verifier.to_vkey(), vkey(3, "demo/tax"));
        assert_eq!(tax.key_for(12).unwrap().to_vkey(), vkey(1, "demo/tax"));
        assert_eq!(tax.key_for(13).unwrap().to_vkey(), vkey(2, "demo/tax"));
        assert!(tax.key_for(25).is_err(), "revoked from 20");
        assert_eq!(tax.key_for(31).unwrap().to_vkey(), vkey(3, "demo/tax"));
        // Sizes must grow, and a key of another log is refused.
        assert!(rotate_key(
            &again,
            &KeyRotation {
                new_vkey: vkey(4, "demo/tax"),
                until_size: 30,
                ..rotation.clone()
            }
        )
        .is_err());
        assert!(rotate_key(
            &again,
            &KeyRotation {
                new_vkey: vkey(4, "demo/other"),
                until_size: 40,
                ..rotation.clone()
            }
        )
        .is_err());
        assert!(
            rotate_key(
                &again,
                &KeyRotation {
                    new_vkey: vkey(1, "demo/tax"),
                    until_size: 40,
                    ..rotation
                }
            )
            .is_err(),
            "an old key back"
        );
    }
}
