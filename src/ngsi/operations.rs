//! What each write operation does to an entity. Pure functions: the store runs them
//! inside its transaction, the HTTP layer never touches stored state itself.

use serde_json::Value;

use super::attribute::{self, Attribute};
use super::entity::{dataset_id, Entity, EntityFragment};
use crate::error::{NgsiError, Result};

/// Which attributes an operation changed, and which it left alone and why
/// (reported as a 207 multi-status by the API).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateReport {
    pub updated: Vec<String>,
    pub not_updated: Vec<(String, String)>,
}

impl UpdateReport {
    pub fn is_complete(&self) -> bool {
        self.not_updated.is_empty()
    }
}

fn find_instance(instances: &[Attribute], ds: Option<&str>) -> Option<usize> {
    instances.iter().position(|a| dataset_id(a) == ds)
}

/// Keeps the first creation time of an attribute instance that is being replaced.
fn carry_created_at(new: &mut Attribute, old: &Attribute) {
    if let Some(c) = old.get("createdAt") {
        new.insert("createdAt".into(), c.clone());
    }
}

fn touch(entity: &mut Entity, now: &str) {
    entity.modified_at = now.to_string();
}

fn merge_types(entity: &mut Entity, types: &[String]) {
    for t in types {
        if !entity.types.contains(t) {
            entity.types.push(t.clone());
        }
    }
}

fn union_scope(entity: &mut Entity, scope: Option<Vec<String>>) {
    if let Some(scope) = scope {
        let current = entity.scope.get_or_insert_with(Vec::new);
        for s in scope {
            if !current.contains(&s) {
                current.push(s);
            }
        }
    }
}

/// Removes the instance a deletion names; true if there was one.
fn delete_instance(entity: &mut Entity, name: &str, marker: &Attribute) -> bool {
    let Some(existing) = entity.attrs.get_mut(name) else {
        return false;
    };
    let Some(i) = find_instance(existing, dataset_id(marker)) else {
        return false;
    };
    existing.remove(i);
    if existing.is_empty() {
        entity.attrs.shift_remove(name);
    }
    true
}

/// Append attributes (POST /entities/{id}/attrs): add new ones, overwrite existing
/// ones unless `no_overwrite`.
pub fn append(
    entity: &mut Entity,
    fragment: EntityFragment,
    no_overwrite: bool,
    now: &str,
) -> UpdateReport {
    let mut report = UpdateReport::default();
    merge_types(entity, &fragment.types);
    union_scope(entity, fragment.scope);
    for (name, instances) in fragment.attrs {
        let mut changed = false;
        for mut inst in instances {
            if attribute::is_deletion(&inst) {
                changed |= delete_instance(entity, &name, &inst);
                continue;
            }
            let existing = entity.attrs.entry(name.clone()).or_default();
            match find_instance(existing, dataset_id(&inst)) {
                Some(_) if no_overwrite => {
                    report.not_updated.push((
                        name.clone(),
                        "attribute exists and noOverwrite was set".into(),
                    ));
                }
                Some(i) => {
                    carry_created_at(&mut inst, &existing[i]);
                    existing[i] = inst;
                    changed = true;
                }
                None => {
                    existing.push(inst);
                    changed = true;
                }
            }
        }
        if changed {
            report.updated.push(name);
        }
    }
    entity.attrs.retain(|_, v| !v.is_empty());
    touch(entity, now);
    report
}

/// Update attributes (PATCH /entities/{id}/attrs): only attributes that exist change;
/// types are appended, an existing scope is replaced, null deletes an instance.
pub fn update(entity: &mut Entity, fragment: EntityFragment, now: &str) -> UpdateReport {
    let mut report = UpdateReport::default();
    if !fragment.types.is_empty() {
        merge_types(entity, &fragment.types);
        report.updated.push("type".into());
    }
    match (fragment.scope, entity.scope.is_some()) {
        (Some(scope), true) => {
            entity.scope = Some(scope);
            report.updated.push("scope".into());
        }
        (Some(_), false) => report
            .not_updated
            .push(("scope".into(), "the entity has no scope to update".into())),
        (None, _) => {}
    }
    for (name, instances) in fragment.attrs {
        if !entity.attrs.contains_key(&name) {
            report
                .not_updated
                .push((name, "attribute does not exist".into()));
            continue;
        }
        for mut inst in instances {
            if attribute::is_deletion(&inst) {
                if delete_instance(entity, &name, &inst) {
                    report.updated.push(name.clone());
                } else {
                    report
                        .not_updated
                        .push((name.clone(), "no instance with this datasetId".into()));
                }
                continue;
            }
            let Some(existing) = entity.attrs.get_mut(&name) else {
                continue;
            };
            match find_instance(existing, dataset_id(&inst)) {
                Some(i) => {
                    carry_created_at(&mut inst, &existing[i]);
                    existing[i] = inst;
                    if !report.updated.contains(&name) {
                        report.updated.push(name.clone());
                    }
                }
                None => report
                    .not_updated
                    .push((name.clone(), "no instance with this datasetId".into())),
            }
        }
    }
    if !report.updated.is_empty() {
        touch(entity, now);
    }
    report
}

/// Merge (PATCH /entities/{id}, batch merge): attributes are added or merged member by
/// member; `null` removes.
pub fn merge(entity: &mut Entity, fragment: EntityFragment, now: &str) -> UpdateReport {
    let mut report = UpdateReport::default();
    merge_types(entity, &fragment.types);
    if fragment.scope_deleted {
        entity.scope = None;
    } else if let Some(scope) = fragment.scope {
        entity.scope = Some(scope);
    }
    if fragment.expires_deleted {
        entity.expires_at = None;
    } else if fragment.expires_at.is_some() {
        entity.expires_at = fragment.expires_at;
    }
    for (name, instances) in fragment.attrs {
        for inst in instances {
            if attribute::is_deletion(&inst) {
                delete_instance(entity, &name, &inst);
                continue;
            }
            let existing = entity.attrs.entry(name.clone()).or_default();
            match find_instance(existing, dataset_id(&inst)) {
                Some(i) => merge_instance(&mut existing[i], inst),
                None => existing.push(inst),
            }
        }
        report.updated.push(name);
    }
    entity.attrs.retain(|_, v| !v.is_empty());
    touch(entity, now);
    report
}

/// Merges the members of `new` into `old`, keeping `createdAt`. A compound value is
/// merged as a JSON merge patch; sub-attributes are merged recursively.
fn merge_instance(old: &mut Attribute, new: Attribute) {
    let created = old.get("createdAt").cloned();
    for (k, v) in new {
        match (old.get_mut(&k), v) {
            (Some(Value::Object(o)), Value::Object(n)) if k == "value" || k == "json" => {
                merge_patch(o, n)
            }
            (Some(Value::Object(o)), Value::Object(n)) if !attribute::is_reserved(&k) => {
                merge_instance(o, n)
            }
            (_, v) => {
                old.insert(k, v);
            }
        }
    }
    if let Some(c) = created {
        old.insert("createdAt".into(), c);
    }
}

/// RFC 7396: null (or the NGSI-LD null URI) removes a member.
fn merge_patch(target: &mut serde_json::Map<String, Value>, patch: serde_json::Map<String, Value>) {
    for (k, v) in patch {
        match v {
            Value::Null => {
                target.remove(&k);
            }
            Value::String(s) if s == attribute::NULL_URI => {
                target.remove(&k);
            }
            Value::Object(p) => match target.get_mut(&k) {
                Some(Value::Object(t)) => merge_patch(t, p),
                _ => {
                    let mut fresh = serde_json::Map::new();
                    merge_patch(&mut fresh, p);
                    target.insert(k, Value::Object(fresh));
                }
            },
            other => {
                target.insert(k, other);
            }
        }
    }
}

/// Partial attribute update (PATCH /entities/{id}/attrs/{attr}). `explicit_type` is the
/// type the client wrote, if any: it must match the stored one.
pub fn patch_attribute(
    entity: &mut Entity,
    name: &str,
    patch: Attribute,
    explicit_type: Option<&str>,
    now: &str,
) -> Result<()> {
    if attribute::is_deletion(&patch) {
        if !delete_instance(entity, name, &patch) {
            return Err(NgsiError::not_found("attribute instance not found"));
        }
        touch(entity, now);
        return Ok(());
    }
    let ds = dataset_id(&patch).map(str::to_string);
    let instances = entity
        .attrs
        .get_mut(name)
        .ok_or_else(|| NgsiError::not_found("attribute not found"))?;
    let i = find_instance(instances, ds.as_deref())
        .ok_or_else(|| NgsiError::not_found("attribute instance with this datasetId not found"))?;
    let old_kind = instances[i].get("type").cloned();
    if let (Some(wanted), Some(Value::String(stored))) = (explicit_type, &old_kind) {
        if wanted != stored {
            return Err(NgsiError::bad_data(format!(
                "the attribute is a {stored}; a partial update cannot make it a {wanted}"
            )));
        }
    }
    merge_instance(&mut instances[i], patch);
    if let Some(old) = old_kind {
        instances[i].insert("type".into(), old);
    }
    touch(entity, now);
    Ok(())
}

/// Attribute replacement (PUT /entities/{id}/attrs/{attr}).
pub fn replace_attribute(
    entity: &mut Entity,
    name: &str,
    mut instances: Vec<Attribute>,
    now: &str,
) -> Result<()> {
    let existing = entity
        .attrs
        .get_mut(name)
        .ok_or_else(|| NgsiError::not_found("attribute not found"))?;
    for inst in &mut instances {
        if let Some(i) = find_instance(existing, dataset_id(inst)) {
            carry_created_at(inst, &existing[i]);
            existing[i] = inst.clone();
        } else {
            existing.push(inst.clone());
        }
    }
    touch(entity, now);
    Ok(())
}

/// Attribute deletion: one instance (by datasetId, default instance when `None`) or all.
pub fn delete_attribute(
    entity: &mut Entity,
    name: &str,
    ds: Option<&str>,
    delete_all: bool,
    now: &str,
) -> Result<()> {
    let instances = entity
        .attrs
        .get_mut(name)
        .ok_or_else(|| NgsiError::not_found("attribute not found"))?;
    if delete_all {
        instances.clear();
    } else {
        let i = find_instance(instances, ds).ok_or_else(|| match ds {
            Some(d) => {
                NgsiError::not_found(format!("attribute has no instance with datasetId {d}"))
            }
            None => NgsiError::not_found(
                "attribute has no default instance (give a datasetId or deleteAll=true)",
            ),
        })?;
        instances.remove(i);
    }
    if instances.is_empty() {
        entity.attrs.shift_remove(name);
    }
    touch(entity, now);
    Ok(())
}

/// Entity replacement (PUT /entities/{id}, upsert with replace): keeps id and createdAt.
pub fn replace(entity: &mut Entity, fragment: EntityFragment, now: &str) {
    if !fragment.types.is_empty() {
        entity.types = fragment.types;
    }
    entity.scope = fragment.scope;
    entity.expires_at = fragment.expires_at;
    let old = std::mem::take(&mut entity.attrs);
    entity.attrs = fragment.attrs;
    for (name, instances) in entity.attrs.iter_mut() {
        if let Some(prev) = old.get(name) {
            for inst in instances.iter_mut() {
                if let Some(i) = find_instance(prev, dataset_id(inst)) {
                    carry_created_at(inst, &prev[i]);
                }
            }
        }
    }
    touch(entity, now);
}
