//! Filter expressions, typed as RFC 9535 types them (section 2.4.3): a
//! comparison compares values (literals, singular queries, and `length`,
//! `count` and `value`, which yield one), a test takes a query (true when it
//! selects something), `match`, `search` or a logical expression, and each
//! function takes the arguments its parameters declare.

use super::iregexp;
use super::parse::Parser;
use super::syntax::{Comparable, Logical, MatchCall, Op, Pattern, Query, ValueCall};
use super::PathError;
use serde_json::Value;
use std::ops::Range;

/// How deep parentheses, filters and function calls may nest: parsing and
/// evaluating recurse once per level.
const MAX_DEPTH: usize = 64;

const FUNCTIONS: [&str; 5] = ["length", "count", "match", "search", "value"];

/// A part of a filter expression before its place says what it must be: a
/// comparison takes values, a test a logical expression, a function what its
/// parameters declare.
struct Operand {
    term: Term,
    span: Range<usize>,
}

enum Term {
    Logical(Logical),
    Literal(Value),
    Query(Query),
    Value(ValueCall),
    Match(MatchCall),
}

impl Parser<'_> {
    /// A filter selector's expression, after its `?`.
    pub(super) fn filter(&mut self) -> Result<Logical, PathError> {
        let expression = self.or_expr()?;
        self.test(expression)
    }

    /// Expressions joined by `||`; one alone is left as it is, since a
    /// function argument may be a value.
    fn or_expr(&mut self) -> Result<Operand, PathError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let reason = format!("nested too deeply: filters, parentheses and function calls nest {MAX_DEPTH} deep at most");
            return Err(self.error(self.at..self.at, reason));
        }
        let first = self.and_expr()?;
        let joined = self.joined(first, "||", Self::and_expr, Logical::Or)?;
        self.depth -= 1;
        Ok(joined)
    }

    fn and_expr(&mut self) -> Result<Operand, PathError> {
        let first = self.basic_expr()?;
        self.joined(first, "&&", Self::basic_expr, Logical::And)
    }

    fn joined(
        &mut self,
        first: Operand,
        op: &str,
        next: fn(&mut Self) -> Result<Operand, PathError>,
        join: fn(Vec<Logical>) -> Logical,
    ) -> Result<Operand, PathError> {
        let start = first.span.start;
        let (mut first, mut all) = (Some(first), Vec::new());
        loop {
            let before = self.at;
            self.skip_blanks();
            if !self.eat_str(op) {
                self.at = before;
                break;
            }
            self.skip_blanks();
            if let Some(first) = first.take() {
                all.push(self.test(first)?);
            }
            let operand = next(self)?;
            all.push(self.test(operand)?);
        }
        Ok(match first {
            Some(first) => first,
            None => Operand {
                term: Term::Logical(join(all)),
                span: start..self.at,
            },
        })
    }

    /// A negation, a comparison, or one operand.
    fn basic_expr(&mut self) -> Result<Operand, PathError> {
        let start = self.at;
        let logical = if self.eat('!') {
            self.skip_blanks();
            let operand = self.operand()?;
            Logical::Not(Box::new(self.test(operand)?))
        } else {
            let left = self.operand()?;
            let before = self.at;
            self.skip_blanks();
            let Some(op) = self.comparison_op() else {
                self.at = before;
                return Ok(left);
            };
            self.skip_blanks();
            let right = self.operand()?;
            let role = "a comparison compares values";
            let (left, right) = (self.value(left, role)?, self.value(right, role)?);
            Logical::Compare(Box::new(left), op, Box::new(right))
        };
        Ok(Operand {
            term: Term::Logical(logical),
            span: start..self.at,
        })
    }

    fn comparison_op(&mut self) -> Option<Op> {
        let ops = [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        let (_, op) = ops.into_iter().find(|(text, _)| self.eat_str(text))?;
        Some(op)
    }

    /// A parenthesized expression, a query, a literal or a function call.
    fn operand(&mut self) -> Result<Operand, PathError> {
        let start = self.at;
        let term = match self.peek() {
            Some('(') => {
                self.at += 1;
                self.skip_blanks();
                let inner = self.or_expr()?;
                self.skip_blanks();
                if !self.eat(')') {
                    return Err(self.unexpected("expected `)`"));
                }
                Term::Logical(self.test(inner)?)
            }
            Some(c @ ('@' | '$')) => {
                self.at += 1;
                let segments = self.segments()?;
                Term::Query(Query {
                    relative: c == '@',
                    segments,
                })
            }
            Some('\'' | '"') => Term::Literal(Value::String(self.string()?)),
            Some('-' | '0'..='9') => Term::Literal(self.number()?),
            Some('a'..='z') => self.word()?,
            _ => {
                let expected = "expected a query (`@` or `$`), a literal, a function or `(`";
                return Err(self.unexpected(expected));
            }
        };
        Ok(Operand {
            term,
            span: start..self.at,
        })
    }

    /// `true`, `false`, `null`, or a function call.
    fn word(&mut self) -> Result<Term, PathError> {
        let start = self.at;
        while matches!(self.peek(), Some('a'..='z' | '0'..='9' | '_')) {
            self.at += 1;
        }
        let name = &self.text[start..self.at];
        if self.peek() == Some('(') {
            return self.call(start);
        }
        let reason = match name {
            "true" => return Ok(Term::Literal(Value::Bool(true))),
            "false" => return Ok(Term::Literal(Value::Bool(false))),
            "null" => return Ok(Term::Literal(Value::Null)),
            _ if FUNCTIONS.contains(&name) => {
                format!("a function is called as `{name}(...)`, with no space before `(`")
            }
            _ => format!(
                "unknown word `{name}`: expected a query (`@` or `$`), a literal or a function"
            ),
        };
        Err(self.error(start..self.at, reason))
    }

    /// A function's arguments, after its name (from `start`), and its typing.
    fn call(&mut self, start: usize) -> Result<Term, PathError> {
        let name = &self.text[start..self.at];
        if !FUNCTIONS.contains(&name) {
            let reason = format!(
                "unknown function `{name}`: the functions are length, count, match, search and value"
            );
            return Err(self.error(start..self.at, reason));
        }
        self.at += 1;
        self.skip_blanks();
        let mut args = Vec::new();
        if !self.eat(')') {
            loop {
                args.push(self.or_expr()?);
                self.skip_blanks();
                if self.eat(')') {
                    break;
                }
                if !self.eat(',') {
                    return Err(self.unexpected("expected `,` or `)`"));
                }
                self.skip_blanks();
            }
        }
        let count = args.len();
        let mut args = args.into_iter();
        let role = format!("`{name}` takes a value");
        let call = match (name, args.next(), args.next(), args.next()) {
            ("length", Some(arg), None, _) => {
                Term::Value(ValueCall::Length(self.value(arg, &role)?))
            }
            ("count", Some(arg), None, _) => Term::Value(ValueCall::Count(self.nodes(arg, name)?)),
            ("value", Some(arg), None, _) => Term::Value(ValueCall::Value(self.nodes(arg, name)?)),
            ("match" | "search", Some(text), Some(pattern), None) => {
                let whole = name == "match";
                let text = self.value(text, &role)?;
                let pattern = match pattern.term {
                    Term::Literal(Value::String(pattern)) => {
                        Pattern::Fixed(iregexp::compile(&pattern, whole))
                    }
                    Term::Literal(_) => Pattern::Fixed(None),
                    _ => Pattern::Read(self.value(pattern, &role)?),
                };
                Term::Match(MatchCall {
                    whole,
                    text,
                    pattern,
                })
            }
            _ => {
                let wanted = if matches!(name, "match" | "search") {
                    "2 arguments"
                } else {
                    "1 argument"
                };
                let reason = format!("`{name}` takes {wanted}, not {count}");
                return Err(self.error(start..self.at, reason));
            }
        };
        Ok(call)
    }

    /// `operand` where a value is due (`role` says why): a literal, a
    /// singular query or a function that yields a value.
    fn value(&self, operand: Operand, role: &str) -> Result<Comparable, PathError> {
        let reason = match operand.term {
            Term::Literal(value) => return Ok(Comparable::Literal(value)),
            Term::Query(query) if query.is_singular() => return Ok(Comparable::Query(query)),
            Term::Value(call) => return Ok(Comparable::Call(Box::new(call))),
            Term::Query(_) => format!(
                "{role}, and this query can select several nodes: a singular query has names and indexes only"
            ),
            Term::Match(call) => format!("{role}, and `{}` yields a logical value", call.name()),
            Term::Logical(_) => format!("{role}, not a logical expression"),
        };
        Err(self.error(operand.span, reason))
    }

    /// `operand` where a logical value is due: a query (true when it selects
    /// something), `match` or `search`, or a logical expression.
    fn test(&self, operand: Operand) -> Result<Logical, PathError> {
        let reason = match operand.term {
            Term::Logical(logical) => return Ok(logical),
            Term::Query(query) => return Ok(Logical::Exists(query)),
            Term::Match(call) => return Ok(Logical::Match(Box::new(call))),
            Term::Value(call) => {
                let name = call.name();
                format!("the value `{name}` yields must be compared, as in `{name}(...) == 1`")
            }
            Term::Literal(_) => {
                "a literal must be compared with something, as in `@.a == 1`".to_owned()
            }
        };
        Err(self.error(operand.span, reason))
    }

    /// `operand` where a function (`name`) takes a query.
    fn nodes(&self, operand: Operand, name: &str) -> Result<Query, PathError> {
        match operand.term {
            Term::Query(query) => Ok(query),
            _ => {
                let reason = format!("`{name}` takes a query, as in `{name}(@.*)`");
                Err(self.error(operand.span, reason))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse;

    /// Why `path` is refused, and the part of it the error points at.
    fn refused(path: &str) -> (String, &str) {
        let e = parse(path).expect_err("refused");
        (e.reason, &path[e.at])
    }

    #[test]
    fn a_comparison_compares_values() {
        let several = "a comparison compares values, and this query can select several nodes: a singular query has names and indexes only";
        assert_eq!(refused("$[?@.* == 1]"), (several.to_owned(), "@.*"));
        assert_eq!(refused("$[?1 < $..a]").1, "$..a");
        assert_eq!(
            refused("$[?match(@.a, 'x') == true]"),
            (
                "a comparison compares values, and `match` yields a logical value".to_owned(),
                "match(@.a, 'x')"
            )
        );
        assert_eq!(refused("$[?(@.a) == 1]").1, "(@.a)");
        assert!(parse("$[?length(@.a) == count(@.*) && value(@..b) != null]").is_ok());
    }

    #[test]
    fn a_test_takes_a_query_or_a_logical_function() {
        assert_eq!(
            refused("$[?length(@.a)]"),
            (
                "the value `length` yields must be compared, as in `length(...) == 1`".to_owned(),
                "length(@.a)"
            )
        );
        assert_eq!(refused("$[?@.a || count(@..*)]").1, "count(@..*)");
        assert_eq!(refused("$[?!value(@.a)]").1, "value(@.a)");
        let literal = "a literal must be compared with something, as in `@.a == 1`";
        assert_eq!(refused("$[?true && @.a]"), (literal.to_owned(), "true"));
        assert!(parse("$[?!@.a && (match(@.b, 'x') || !search(@.c, $.d))]").is_ok());
    }

    #[test]
    fn functions_take_the_arguments_they_declare() {
        assert_eq!(
            refused("$[?length(@['a', 'b']) < 3]"),
            (
                "`length` takes a value, and this query can select several nodes: a singular query has names and indexes only".to_owned(),
                "@['a', 'b']"
            )
        );
        assert_eq!(
            refused("$[?count('a') > 1]"),
            (
                "`count` takes a query, as in `count(@.*)`".to_owned(),
                "'a'"
            )
        );
        assert_eq!(refused("$[?value(length(@.a)) > 1]").1, "length(@.a)");
        assert_eq!(refused("$[?search(@.a, @.*)]").1, "@.*");
        assert_eq!(
            refused("$[?match(@.a) == 1]"),
            ("`match` takes 2 arguments, not 1".to_owned(), "match(@.a)")
        );
        assert_eq!(
            refused("$[?count() == 1]"),
            ("`count` takes 1 argument, not 0".to_owned(), "count()")
        );
        assert_eq!(
            refused("$[?in(@.a, 1)]"),
            (
                "unknown function `in`: the functions are length, count, match, search and value"
                    .to_owned(),
                "in"
            )
        );
        assert_eq!(
            refused("$[?count (@.*) == 1]"),
            (
                "a function is called as `count(...)`, with no space before `(`".to_owned(),
                "count"
            )
        );
        assert_eq!(refused("$[?@ == True]").1, "T");
    }

    #[test]
    fn expressions_nest_to_a_bound() {
        let nested = |depth: usize| format!("$[?{}@.a{}]", "(".repeat(depth), ")".repeat(depth));
        assert!(parse(&nested(63)).is_ok());
        assert!(refused(&nested(64)).0.starts_with("nested too deeply"));
        let filters = |depth: usize| format!("${}{}", "[?@".repeat(depth), "]".repeat(depth));
        assert!(parse(&filters(64)).is_ok());
        assert!(refused(&filters(65)).0.starts_with("nested too deeply"));
    }
}
