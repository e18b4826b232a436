//! Evaluates a q expression against one entity in memory (subscriptions and the
//! store's row filter both use it).

use std::cmp::Ordering;

use serde_json::Value;

use super::ast::{Expr, Literal, Op, Operand, Path, Term};
use crate::jsonld::ActiveContext;
use crate::ngsi::attribute::{self, Attribute};
use crate::ngsi::{time, Entity};

/// Members of an attribute a path can name after a `.`, besides sub-attributes.
const METADATA: &[&str] = &[
    "observedAt",
    "createdAt",
    "modifiedAt",
    "unitCode",
    "datasetId",
    "deletedAt",
];

/// Expands the attribute and sub-attribute names of an expression against a context.
pub fn expand(expr: &mut Expr, ctx: &ActiveContext) {
    for path in expr.paths_mut() {
        path.attr = ctx.expand(&path.attr);
        for sub in &mut path.subs {
            if !METADATA.contains(&sub.as_str()) {
                *sub = ctx.expand(sub);
            }
        }
    }
}

/// True if the entity satisfies the (expanded) expression.
pub fn matches(expr: &Expr, entity: &Entity) -> bool {
    match expr {
        Expr::And(items) => items.iter().all(|e| matches(e, entity)),
        Expr::Or(items) => items.iter().any(|e| matches(e, entity)),
        Expr::Term(t) => term_matches(t, entity),
        Expr::Not(inner) => !matches(inner, entity),
    }
}

fn term_matches(t: &Term, entity: &Entity) -> bool {
    let Some(instances) = entity.attrs.get(&t.path.attr) else {
        return false;
    };
    instances.iter().any(|inst| {
        let Some(value) = resolve(inst, &t.path) else {
            return false;
        };
        match &t.condition {
            None => true,
            Some((op, operand)) => compare(&value, *op, operand),
        }
    })
}

pub(crate) fn resolve(inst: &Attribute, path: &Path) -> Option<Value> {
    let mut current = inst;
    let mut value: Option<&Value> = None;
    for sub in &path.subs {
        if METADATA.contains(&sub.as_str()) {
            value = Some(current.get(sub.as_str())?);
            break;
        }
        current = current.get(sub.as_str())?.as_object()?;
    }
    let mut value = match value {
        Some(v) => v.clone(),
        None => {
            let kind = current
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or(attribute::PROPERTY);
            current.get(attribute::value_member(kind))?.clone()
        }
    };
    for key in &path.keys {
        value = match (key.as_str(), value) {
            // `[*]`: any member, e.g. any language of a LanguageProperty (clause 4.9).
            ("*", Value::Object(members)) => Value::Array(members.into_values().collect()),
            (_, v) => v.get(key.as_str())?.clone(),
        };
    }
    Some(value)
}

fn compare(value: &Value, op: Op, operand: &Operand) -> bool {
    // An array value matches if any of its items does (except for != and !~=).
    if let Value::Array(items) = value {
        return match op {
            Op::Ne | Op::NotMatches => items.iter().all(|i| compare(i, op, operand)),
            _ => items.iter().any(|i| compare(i, op, operand)),
        };
    }
    match (op, operand) {
        (Op::Eq, Operand::One(l)) => order(value, l) == Some(Ordering::Equal),
        (Op::Ne, Operand::One(l)) => order(value, l) != Some(Ordering::Equal),
        (Op::Eq, Operand::List(ls)) => ls.iter().any(|l| order(value, l) == Some(Ordering::Equal)),
        (Op::Ne, Operand::List(ls)) => ls.iter().all(|l| order(value, l) != Some(Ordering::Equal)),
        (Op::Eq, Operand::Range(lo, hi)) => in_range(value, lo, hi),
        (Op::Ne, Operand::Range(lo, hi)) => !in_range(value, lo, hi),
        (Op::Gt, Operand::One(l)) => order(value, l) == Some(Ordering::Greater),
        (Op::Ge, Operand::One(l)) => {
            matches!(order(value, l), Some(Ordering::Greater | Ordering::Equal))
        }
        (Op::Lt, Operand::One(l)) => order(value, l) == Some(Ordering::Less),
        (Op::Le, Operand::One(l)) => {
            matches!(order(value, l), Some(Ordering::Less | Ordering::Equal))
        }
        (Op::Matches, Operand::One(Literal::Text(re) | Literal::Bare(re))) => {
            regex_match(value, re)
        }
        (Op::NotMatches, Operand::One(Literal::Text(re) | Literal::Bare(re))) => {
            !regex_match(value, re)
        }
        _ => false,
    }
}

fn in_range(value: &Value, lo: &Literal, hi: &Literal) -> bool {
    matches!(order(value, lo), Some(Ordering::Greater | Ordering::Equal))
        && matches!(order(value, hi), Some(Ordering::Less | Ordering::Equal))
}

fn regex_match(value: &Value, re: &str) -> bool {
    match (value.as_str(), regex::Regex::new(re)) {
        (Some(s), Ok(re)) => re.is_match(s),
        _ => false,
    }
}

/// Orders a stored value against a literal, when they are comparable.
fn order(value: &Value, lit: &Literal) -> Option<Ordering> {
    match (value, lit) {
        (Value::Number(n), Literal::Number(l)) => n.as_f64()?.partial_cmp(l),
        (Value::Bool(b), Literal::Bool(l)) => Some(b.cmp(l)),
        (Value::String(s), Literal::Text(l)) => Some(s.as_str().cmp(l.as_str())),
        (Value::String(s), Literal::Bare(l)) => match (time::parse(s), time::parse(l)) {
            (Ok(a), Ok(b)) => Some(a.cmp(&b)),
            _ => Some(s.as_str().cmp(l.as_str())),
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;
    use serde_json::json;

    fn entity() -> Entity {
        let doc = json!({
            "id": "urn:ngsi-ld:WaterObserved:1", "type": ["T"], "createdAt": "x", "modifiedAt": "x",
            "attrs": {
                "level": [{"type": "Property", "value": 1.5, "observedAt": "2024-05-01T10:00:00.000000Z",
                           "quality": {"type": "Property", "value": "good"}}],
                "name": [{"type": "Property", "value": "Huveaune"}],
                "address": [{"type": "Property", "value": {"city": "Aubagne"}}],
                "refDevice": [{"type": "Relationship", "object": "urn:ngsi-ld:Device:1"}],
                "tags": [{"type": "Property", "value": ["river", "lidar"]}]
            }
        });
        serde_json::from_value(doc).unwrap_or_else(|e| panic!("{e}"))
    }

    fn check(q: &str) -> bool {
        let expr = parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        matches(&expr, &entity())
    }

    #[test]
    fn operators() {
        assert!(check("level==1.5"));
        assert!(check("level>1;level<2"));
        assert!(check("level==1..2"));
        assert!(!check("level!=1.5"));
        assert!(check("level==3,1.5"));
        assert!(check("name==\"Huveaune\""));
        assert!(check("name~=\"^Huv\""));
        assert!(check("name!~=\"^X\""));
        assert!(check("refDevice==urn:ngsi-ld:Device:1"));
        assert!(check("address[city]==\"Aubagne\""));
        assert!(check("level.quality==\"good\""));
        assert!(check("level.observedAt>2024-04-30T00:00:00Z"));
        assert!(check("tags==\"lidar\""));
        assert!(check("missing|name"));
        assert!(!check("missing"));
        assert!(!check("missing!=1"));
    }
}
