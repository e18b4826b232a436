//! A hand-written recursive-descent parser; errors name the position in the query.

use super::ast::{Expr, Literal, Op, Operand, Path, Term};
use crate::error::{NgsiError, Result};

pub fn parse(input: &str) -> Result<Expr> {
    let mut p = Parser { src: input, pos: 0 };
    if input.trim().is_empty() {
        return Err(p.error("the query is empty"));
    }
    let expr = p.or()?;
    p.skip_ws();
    if p.pos < input.len() {
        return Err(p.error("unexpected text"));
    }
    Ok(expr)
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

/// Characters that end a name in a path.
const NAME_END: &[char] = &[
    '=', '!', '<', '>', '~', ';', '|', '(', ')', '.', '[', ']', ',', '"',
];

impl Parser<'_> {
    fn error(&self, what: &str) -> NgsiError {
        let near: String = self.src[self.pos.min(self.src.len())..]
            .chars()
            .take(20)
            .collect();
        NgsiError::bad_data(format!(
            "invalid q at position {}: {what} (near '{near}')",
            self.pos
        ))
    }

    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn skip_ws(&mut self) {
        while self.rest().starts_with(' ') {
            self.pos += 1;
        }
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr> {
        let mut items = vec![self.and()?];
        while self.eat("|") {
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self) -> Result<Expr> {
        let mut items = vec![self.factor()?];
        while self.eat(";") {
            items.push(self.factor()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn factor(&mut self) -> Result<Expr> {
        if self.eat("(") {
            let e = self.or()?;
            if !self.eat(")") {
                return Err(self.error("expected ')'"));
            }
            return Ok(e);
        }
        // `!attr`: non-existence (clause 4.9); `!=` only ever follows a path.
        if self.eat("!") {
            let start = self.pos;
            let t = self.term()?;
            if t.condition.is_some() {
                self.pos = start;
                return Err(self.error("'!' negates an attribute's existence: write !attr"));
            }
            return Ok(Expr::Not(Box::new(Expr::Term(t))));
        }
        self.term().map(Expr::Term)
    }

    fn name(&mut self) -> Result<String> {
        self.skip_ws();
        let len = self
            .rest()
            .find(|c: char| NAME_END.contains(&c) || c.is_whitespace())
            .unwrap_or(self.rest().len());
        // A name may be a compact IRI such as `ngsi-ld:foo` but `:` never starts one.
        if len == 0 {
            return Err(self.error("expected an attribute name"));
        }
        let name = self.rest()[..len].to_string();
        if let Some(at) = name.find(['{', '}']) {
            self.pos += at;
            return Err(self.error(
                "queries through linked entities (attr{...}) are not supported by this broker",
            ));
        }
        self.pos += len;
        Ok(name)
    }

    fn path(&mut self) -> Result<Path> {
        let attr = self.name()?;
        let mut subs = Vec::new();
        let mut keys = Vec::new();
        while self.rest().starts_with('.') && !self.rest().starts_with("..") {
            self.pos += 1;
            subs.push(self.name()?);
        }
        while self.rest().starts_with('[') {
            self.pos += 1;
            let len = self
                .rest()
                .find(']')
                .ok_or_else(|| self.error("expected ']'"))?;
            let key = self.rest()[..len].trim().to_string();
            if key.is_empty() {
                return Err(self.error("empty key in '[]'"));
            }
            keys.push(key);
            self.pos += len + 1;
        }
        Ok(Path { attr, subs, keys })
    }

    fn op(&mut self) -> Option<Op> {
        self.skip_ws();
        for (token, op) in [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            (">=", Op::Ge),
            ("<=", Op::Le),
            (">", Op::Gt),
            ("<", Op::Lt),
            ("~=", Op::Matches),
            ("!~=", Op::NotMatches),
        ] {
            if self.rest().starts_with(token) {
                self.pos += token.len();
                return Some(op);
            }
        }
        None
    }

    fn term(&mut self) -> Result<Term> {
        let path = self.path()?;
        let Some(op) = self.op() else {
            self.skip_ws();
            if !(self.rest().is_empty() || self.rest().starts_with([';', '|', ')'])) {
                return Err(self.error("expected an operator (==, !=, >, >=, <, <=, ~=, !~=)"));
            }
            return Ok(Term {
                path,
                condition: None,
            });
        };
        let first = self.value()?;
        let operand = if self.rest().starts_with("..") {
            self.pos += 2;
            Operand::Range(first, self.value()?)
        } else if self.rest().starts_with(',') {
            let mut list = vec![first];
            while self.rest().starts_with(',') {
                self.pos += 1;
                list.push(self.value()?);
            }
            Operand::List(list)
        } else {
            Operand::One(first)
        };
        match (&operand, op) {
            (Operand::One(_), _) | (_, Op::Eq | Op::Ne) => {}
            _ => return Err(self.error("value lists and ranges only go with == and !=")),
        }
        if matches!(op, Op::Matches | Op::NotMatches) {
            let Operand::One(Literal::Text(re) | Literal::Bare(re)) = &operand else {
                return Err(self.error("~= needs a regular expression"));
            };
            regex::Regex::new(re)
                .map_err(|e| self.error(&format!("invalid regular expression: {e}")))?;
        }
        Ok(Term {
            path,
            condition: Some((op, operand)),
        })
    }

    fn value(&mut self) -> Result<Literal> {
        self.skip_ws();
        if self.rest().starts_with('"') {
            return self.quoted();
        }
        // A bare value runs to the next separator; `..` ends it only when followed by
        // something (a date-time range), and a URI may contain `:` `/` `.`.
        let rest = self.rest();
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            if matches!(c, ';' | '|' | ')' | ',')
                || c.is_whitespace()
                || rest[i..].starts_with("..")
            {
                end = i;
                break;
            }
        }
        if end == 0 {
            return Err(self.error("expected a value"));
        }
        if rest.starts_with(['<', '>', '=', '!', '~']) {
            return Err(self.error("unknown operator"));
        }
        let word = rest[..end].to_string();
        self.pos += end;
        Ok(match word.as_str() {
            "true" => Literal::Bool(true),
            "false" => Literal::Bool(false),
            w => match w.parse::<f64>() {
                Ok(n) if n.is_finite() => Literal::Number(n),
                _ => Literal::Bare(w.to_string()),
            },
        })
    }

    fn quoted(&mut self) -> Result<Literal> {
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Ok(Literal::Text(out));
                }
                '\\' => match chars.next() {
                    Some((_, e)) => out.push(e),
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err(self.error("unterminated string"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(q: &str) -> Term {
        match parse(q) {
            Ok(Expr::Term(t)) => t,
            other => panic!("{q}: {other:?}"),
        }
    }

    #[test]
    fn negated_existence_and_linked_paths() {
        assert!(matches!(parse("!heading"), Ok(Expr::Not(_))));
        assert!(
            matches!(parse("!heading;speed>25"), Ok(Expr::And(items)) if matches!(items[0], Expr::Not(_)))
        );
        assert_eq!(term("speed!=3").condition.map(|c| c.0), Some(Op::Ne));
        for bad in ["!speed>3", "!", "owner{name}==\"x\"", "a;!(b)"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn comparisons_and_values() {
        let t = term("temperature>=20.5");
        assert_eq!(
            t.condition,
            Some((Op::Ge, Operand::One(Literal::Number(20.5))))
        );
        let t = term(r#"name=="Marseille \"centre\"""#);
        assert_eq!(
            t.condition,
            Some((
                Op::Eq,
                Operand::One(Literal::Text("Marseille \"centre\"".into()))
            ))
        );
        let t = term("level==1..3");
        assert_eq!(
            t.condition,
            Some((
                Op::Eq,
                Operand::Range(Literal::Number(1.0), Literal::Number(3.0))
            ))
        );
        let t = term("status==\"ok\",\"warn\"");
        assert!(matches!(t.condition, Some((Op::Eq, Operand::List(ref l))) if l.len() == 2));
        let t = term("refDevice==urn:ngsi-ld:Device:1");
        assert_eq!(
            t.condition,
            Some((
                Op::Eq,
                Operand::One(Literal::Bare("urn:ngsi-ld:Device:1".into()))
            ))
        );
        let t = term("observedAt>2024-01-01T00:00:00Z");
        assert_eq!(
            t.condition,
            Some((
                Op::Gt,
                Operand::One(Literal::Bare("2024-01-01T00:00:00Z".into()))
            ))
        );
        let t = term("modifiedAt==2024-01-01T00:00:00Z..2024-02-01T00:00:00Z");
        assert!(matches!(t.condition, Some((Op::Eq, Operand::Range(..)))));
    }

    #[test]
    fn paths() {
        let t = term("speed.observedAt>2024-01-01");
        assert_eq!(
            t.path,
            Path {
                attr: "speed".into(),
                subs: vec!["observedAt".into()],
                keys: vec![]
            }
        );
        let t = term("address[city]==\"Aix\"");
        assert_eq!(t.path.keys, vec!["city".to_string()]);
        assert!(term("brandName").condition.is_none());
    }

    #[test]
    fn logic_and_precedence() {
        let e = parse("a==1;b==2|c==3").unwrap_or(Expr::And(vec![]));
        assert!(matches!(e, Expr::Or(ref items) if matches!(items[0], Expr::And(_))));
        let e = parse("a==1;(b==2|c==3)").unwrap_or(Expr::Or(vec![]));
        assert!(matches!(e, Expr::And(ref items) if matches!(items[1], Expr::Or(_))));
    }

    #[test]
    fn errors_name_the_position() {
        for bad in ["", "a==", "(a==1", "a>1,2", "a~=\"(\"", "a==\"open", "a b"] {
            let err = parse(bad).err().map(|e| e.detail).unwrap_or_default();
            assert!(err.contains("invalid q"), "{bad}: {err}");
        }
    }
}
