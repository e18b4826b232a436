//! Translates a q expression into SQL over the `attr_values` and `entity_attrs` indexes.
//!
//! Each term becomes an indexed membership test on `e.id`. Terms the indexes cannot
//! decide exactly (sub-attribute and compound paths, date-times, booleans, negations
//! over multi-instance attributes) become a superset test (the attribute exists) and the
//! caller re-checks those entities in memory: SQL narrows, the evaluator decides.

use rusqlite::ToSql;

use crate::ngsi::q::{Expr, Literal, Op, Operand, Term};
use crate::ngsi::time;

pub struct Translation {
    pub sql: String,
    pub args: Vec<Box<dyn ToSql>>,
    /// True if the SQL selects exactly the matching entities.
    pub exact: bool,
}

/// `per_candidate`: check each entity with a correlated lookup instead of driving.
pub fn translate(expr: &Expr, per_candidate: bool) -> Translation {
    match expr {
        Expr::Term(t) => term(t, per_candidate),
        Expr::Not(inner) => {
            let t = translate(inner, per_candidate);
            if t.exact {
                Translation {
                    sql: format!("NOT {}", t.sql),
                    args: t.args,
                    exact: true,
                }
            } else {
                // The complement of a superset is not a superset: let memory decide.
                Translation {
                    sql: "1".into(),
                    args: Vec::new(),
                    exact: false,
                }
            }
        }
        Expr::And(items) | Expr::Or(items) => {
            let joiner = if matches!(expr, Expr::And(_)) {
                " AND "
            } else {
                " OR "
            };
            let parts: Vec<Translation> =
                items.iter().map(|i| translate(i, per_candidate)).collect();
            let exact = parts.iter().all(|p| p.exact);
            let mut sql = String::from("(");
            let mut args = Vec::new();
            for (i, p) in parts.into_iter().enumerate() {
                if i > 0 {
                    sql.push_str(joiner);
                }
                sql.push_str(&p.sql);
                args.extend(p.args);
            }
            sql.push(')');
            Translation { sql, args, exact }
        }
    }
}

/// For a q that is one exactly translated term: the SQL of its index rows (one row per
/// matching value, so at least one per matching entity) and its arguments, to estimate
/// how selective it is.
pub fn rows_of(expr: &Expr) -> Option<(String, Vec<Box<dyn ToSql>>)> {
    let Expr::Term(t) = expr else {
        return None;
    };
    let t = term(t, false);
    let inner = t
        .sql
        .strip_prefix("e.rowid IN (")?
        .strip_suffix(')')?
        .to_string();
    t.exact.then_some((inner, t.args))
}

/// Every attribute has at least one value row, so "has a row for this attribute" is
/// existence. Driving, the rows are found in the three partial indexes that together
/// hold every row (numbers, texts, neither).
fn exists(attr: &str, per_candidate: bool) -> Translation {
    const ATTR: &str = "attr = (SELECT id FROM names WHERE name = ?)";
    if per_candidate {
        return Translation {
            sql: super::entities::membership("attr_values", "entity", ATTR, true),
            args: vec![Box::new(attr.to_string())],
            exact: true,
        };
    }
    let sql = [
        "num IS NOT NULL",
        "txt IS NOT NULL",
        "num IS NULL AND txt IS NULL",
    ]
    .map(|rows| format!("SELECT entity FROM attr_values WHERE {ATTR} AND {rows}"))
    .join(" UNION ALL ");
    Translation {
        sql: format!("e.rowid IN ({sql})"),
        args: (0..3)
            .map(|_| Box::new(attr.to_string()) as Box<dyn ToSql>)
            .collect(),
        exact: true,
    }
}

/// A literal as the column it is stored in, when the index can compare it exactly.
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

fn term(t: &Term, per_candidate: bool) -> Translation {
    let path = &t.path;
    let superset = || Translation {
        exact: false,
        ..exists(&path.attr, per_candidate)
    };
    if !path.subs.is_empty() || !path.keys.is_empty() {
        return superset();
    }
    let Some((op, operand)) = &t.condition else {
        return exists(&path.attr, per_candidate);
    };
    let base = |cond: &str, vals: Vec<Box<dyn ToSql>>| {
        let mut args: Vec<Box<dyn ToSql>> = vec![Box::new(path.attr.clone())];
        args.extend(vals);
        Translation {
            sql: super::entities::membership(
                "attr_values",
                "entity",
                &format!("attr = (SELECT id FROM names WHERE name = ?) AND {cond}"),
                per_candidate,
            ),
            args,
            exact: true,
        }
    };
    let cmp = |sql_op: &str, l: &Literal| match column(l) {
        Some(Column::Num(n)) => Some(base(
            &format!("num IS NOT NULL AND num {sql_op} ?"),
            vec![Box::new(n)],
        )),
        Some(Column::Txt(s)) => Some(base(
            &format!("txt IS NOT NULL AND txt {sql_op} ?"),
            vec![Box::new(s)],
        )),
        None => None,
    };
    let translated = match (op, operand) {
        (Op::Eq, Operand::One(l)) => cmp("=", l),
        (Op::Gt, Operand::One(l)) => cmp(">", l),
        (Op::Ge, Operand::One(l)) => cmp(">=", l),
        (Op::Lt, Operand::One(l)) => cmp("<", l),
        (Op::Le, Operand::One(l)) => cmp("<=", l),
        (Op::Eq, Operand::Range(lo, hi)) => match (column(lo), column(hi)) {
            (Some(Column::Num(a)), Some(Column::Num(b))) => Some(base(
                "num IS NOT NULL AND num BETWEEN ? AND ?",
                vec![Box::new(a), Box::new(b)],
            )),
            (Some(Column::Txt(a)), Some(Column::Txt(b))) => Some(base(
                "txt IS NOT NULL AND txt BETWEEN ? AND ?",
                vec![Box::new(a), Box::new(b)],
            )),
            _ => None,
        },
        (Op::Eq, Operand::List(items)) => {
            let cols: Option<Vec<Column>> = items.iter().map(column).collect();
            cols.map(|cols| {
                let mut parts = Vec::new();
                let mut vals: Vec<Box<dyn ToSql>> = Vec::new();
                for c in cols {
                    match c {
                        Column::Num(n) => {
                            parts.push("num = ?");
                            vals.push(Box::new(n));
                        }
                        Column::Txt(s) => {
                            parts.push("txt = ?");
                            vals.push(Box::new(s));
                        }
                    }
                }
                base(&format!("({})", parts.join(" OR ")), vals)
            })
        }
        (Op::Matches, Operand::One(Literal::Text(re) | Literal::Bare(re))) => Some(base(
            "txt IS NOT NULL AND regexp(?, txt)",
            vec![Box::new(re.clone())],
        )),
        _ => None,
    };
    translated.unwrap_or_else(superset)
}
