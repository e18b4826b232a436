//! Translates a q expression into SQL on the `attrs` jsonb column.
//!
//! Each term tests the scalar values of the attribute's instances (the same rule as
//! SQLite's value index: each element of the value member of each instance) with a
//! jsonpath filter, or, for text ordering, SQL on the rows of the `calanque_scalars`
//! function; behind an `attrs ? name` test the GIN index answers. Terms that cannot be decided exactly
//! (sub-attribute and compound paths, date-times, booleans, negations, regular
//! expressions, whose syntax differs between Rust and PostgreSQL) become a superset
//! test (the attribute exists) and the caller re-checks those entities in memory.

use super::sql::Sql;
use crate::ngsi::q::{Expr, Literal, Op, Operand, Term};
use crate::ngsi::time;

/// Appends the translation of `expr` to `sql`; returns true if it is exact.
pub fn translate(expr: &Expr, sql: &mut Sql) -> bool {
    match expr {
        Expr::Term(t) => term(t, sql),
        Expr::Not(inner) => {
            let (text_at, params_at) = (sql.text.len(), sql.params.len());
            if translate(inner, sql) {
                let inner_text = sql.text.split_off(text_at);
                sql.push(&format!("NOT ({inner_text})"));
                true
            } else {
                // The complement of a superset is not a superset: let memory decide.
                sql.text.truncate(text_at);
                sql.params.truncate(params_at);
                sql.push("TRUE");
                false
            }
        }
        Expr::And(items) | Expr::Or(items) => {
            let joiner = if matches!(expr, Expr::And(_)) {
                " AND "
            } else {
                " OR "
            };
            let mut exact = true;
            sql.push("(");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    sql.push(joiner);
                }
                exact &= translate(item, sql);
            }
            sql.push(")");
            exact
        }
    }
}

/// A literal as the column it is compared with, when that comparison is exact.
enum Column {
    Num(f64),
    Txt(String),
}

fn column(l: &Literal) -> Option<Column> {
    match l {
        Literal::Number(n) => Some(Column::Num(*n)),
        Literal::Text(s) => Some(Column::Txt(s.clone())),
        // Date-times are compared as instants in memory, not as text.
        Literal::Bare(s) if time::parse(s).is_err() => Some(Column::Txt(s.clone())),
        _ => None,
    }
}

/// A condition on the scalar values of an attribute's instances.
enum Condition {
    /// A jsonpath filter on each scalar (`@ > $v0`) and its variables: evaluated by
    /// PostgreSQL's own code on the jsonb, the fast way.
    Path(String, Vec<(String, Column)>),
    /// Text ordering (`<`, `>`, ranges) on the `calanque_scalars` rows, compared bytewise
    /// as SQLite does (jsonpath would not): the operator and one or two bounds.
    TextOrder(&'static str, Vec<Column>),
    /// Selects nothing (an empty list).
    Never,
}

/// The jsonpath of the scalars q compares: each element of the value member of each
/// instance (`value`, `object` or `vocab` by its type; a missing type is a Property),
/// arrays unwrapped one level (lax mode): the rule of `calanque_scalars`.
fn path_filter(cond: &str) -> String {
    format!(
        "$[*] ? ((!exists(@.type) || @.type == \"Property\") && exists(@.value ? ({cond})) \
         || @.type == \"Relationship\" && exists(@.object ? ({cond})) \
         || @.type == \"VocabProperty\" && exists(@.vocab ? ({cond})))"
    )
}

fn bind_column(sql: &mut Sql, c: Column) -> String {
    match c {
        Column::Num(n) => format!("{}::float8", sql.bind(n)),
        Column::Txt(t) => format!("{}::text", sql.bind(t)),
    }
}

fn term(t: &Term, sql: &mut Sql) -> bool {
    let path = &t.path;
    let attr = sql.bind(path.attr.clone());
    let exists = format!("e.attrs ? {attr}::text");
    let condition = match &t.condition {
        // Sub-attribute and compound paths: decided in memory.
        _ if !path.subs.is_empty() || !path.keys.is_empty() => None,
        None => {
            sql.push(&exists);
            return true;
        }
        Some((op, operand)) => condition(*op, operand),
    };
    let text = match condition {
        Some(Condition::Path(filter, vars)) => {
            let object: Vec<String> = vars
                .into_iter()
                .map(|(name, value)| format!("'{name}', {}", bind_column(sql, value)))
                .collect();
            let path = sql.bind(path_filter(&filter));
            format!(
                "({exists} AND jsonb_path_exists(e.attrs -> {attr}::text, {path}::text::jsonpath, jsonb_build_object({})))",
                object.join(", ")
            )
        }
        Some(Condition::TextOrder(op, bounds)) => {
            let bounds: Vec<String> = bounds.into_iter().map(|b| bind_column(sql, b)).collect();
            let cond = match (op, bounds.as_slice()) {
                ("range", [lo, hi]) => {
                    format!("s.txt COLLATE \"C\" >= {lo} AND s.txt COLLATE \"C\" <= {hi}")
                }
                (op, [b]) => format!("s.txt COLLATE \"C\" {op} {b}"),
                _ => "FALSE".into(),
            };
            format!(
                "({exists} AND EXISTS (SELECT 1 FROM calanque_scalars(e.attrs -> {attr}::text) s WHERE {cond}))"
            )
        }
        Some(Condition::Never) => "FALSE".into(),
        None => {
            sql.push(&exists);
            return false;
        }
    };
    sql.push(&text);
    true
}

fn condition(op: Op, operand: &Operand) -> Option<Condition> {
    let (path_op, sql_op) = match op {
        Op::Eq => ("==", "="),
        Op::Gt => (">", ">"),
        Op::Ge => (">=", ">="),
        Op::Lt => ("<", "<"),
        Op::Le => ("<=", "<="),
        _ => return None,
    };
    let mut vars: Vec<(String, Column)> = Vec::new();
    let mut var = |c: Column| {
        let name = format!("v{}", vars.len());
        vars.push((name.clone(), c));
        format!("${name}")
    };
    let filter = match operand {
        Operand::One(l) => match column(l)? {
            c @ Column::Txt(_) if op != Op::Eq => {
                return Some(Condition::TextOrder(sql_op, vec![c]))
            }
            c => format!("@ {path_op} {}", var(c)),
        },
        Operand::Range(lo, hi) if op == Op::Eq => match (column(lo)?, column(hi)?) {
            (lo @ Column::Num(_), hi @ Column::Num(_)) => {
                format!("@ >= {} && @ <= {}", var(lo), var(hi))
            }
            (lo @ Column::Txt(_), hi @ Column::Txt(_)) => {
                return Some(Condition::TextOrder("range", vec![lo, hi]))
            }
            _ => return None,
        },
        Operand::List(items) if op == Op::Eq => {
            let cols: Vec<Column> = items.iter().map(column).collect::<Option<_>>()?;
            if cols.is_empty() {
                return Some(Condition::Never);
            }
            cols.into_iter()
                .map(|c| format!("@ == {}", var(c)))
                .collect::<Vec<_>>()
                .join(" || ")
        }
        _ => return None,
    };
    Some(Condition::Path(filter, vars))
}
