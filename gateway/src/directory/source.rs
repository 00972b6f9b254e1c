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
    /// `https://host:port` (departments).
    pub https: Option<String>,
    /// `quic://host:port` (departments).
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
    if kind == Member::Department {
        if let Some(https) = &listing.https {
            table["https"] = value(https);
        }
        if let Some(quic) = &listing.quic {
            table["quic"] = value(quic);
        }
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
}
