//! Translates a q expression into SQL on the `attrs` jsonb column.
//!
//! Each term tests the scalar values of the attribute's instances, as extracted by the
//! `calanque_scalars` SQL function (the same rule as SQLite's value index), behind an
//! `attrs ? name` test the GIN index answers. Terms that cannot be decided exactly
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

/// `s.num <op> $n` or `s.txt <op> $n` (text compared bytewise, as SQLite does).
fn compare(sql: &mut Sql, op: &str, c: Column) -> String {
    match c {
        Column::Num(n) => format!("s.num {op} {}::float8", sql.bind(n)),
        Column::Txt(t) => format!("s.txt COLLATE \"C\" {op} {}::text", sql.bind(t)),
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
        Some((op, operand)) => condition(*op, operand, sql),
    };
    match condition {
        Some(cond) => {
            sql.push(&format!(
                "({exists} AND EXISTS (SELECT 1 FROM calanque_scalars(e.attrs -> {attr}::text) s WHERE {cond}))"
            ));
            true
        }
        None => {
            sql.push(&exists);
            false
        }
    }
}

fn condition(op: Op, operand: &Operand, sql: &mut Sql) -> Option<String> {
    let sql_op = match op {
        Op::Eq => "=",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::Lt => "<",
        Op::Le => "<=",
        _ => return None,
    };
    match operand {
        Operand::One(l) => column(l).map(|c| compare(sql, sql_op, c)),
        Operand::Range(lo, hi) if op == Op::Eq => match (column(lo)?, column(hi)?) {
            (lo @ Column::Num(_), hi @ Column::Num(_))
            | (lo @ Column::Txt(_), hi @ Column::Txt(_)) => {
                let a = compare(sql, ">=", lo);
                let b = compare(sql, "<=", hi);
                Some(format!("({a} AND {b})"))
            }
            _ => None,
        },
        Operand::List(items) if op == Op::Eq => {
            let cols: Vec<Column> = items.iter().map(column).collect::<Option<_>>()?;
            let parts: Vec<String> = cols.into_iter().map(|c| compare(sql, "=", c)).collect();
            if parts.is_empty() {
                return Some("FALSE".into());
            }
            Some(format!("({})", parts.join(" OR ")))
        }
        _ => None,
    }
}
