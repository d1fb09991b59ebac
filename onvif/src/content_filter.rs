//! Message content filters in ONVIF's ItemFilter dialect
//! (`http://www.onvif.org/ver10/tev/messageContentFilter/ItemFilter`): the XPath subset the
//! Core spec defines, boolean combinations of item tests such as
//! `boolean(//tt:SimpleItem[@Name="VideoSource" and @Value="door"])`, optionally scoped to
//! `tt:Source`, `tt:Key` or `tt:Data`. Parsed once at subscription time, evaluated against each
//! message's items; anything outside the subset is refused, not guessed at.

use crate::device::EventMessage;

/// The most nested parentheses and `not(...)` a filter may have.
const MAX_DEPTH: usize = 16;
/// The longest filter read.
const MAX_LENGTH: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentFilter(Node);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Or(Vec<Node>),
    And(Vec<Node>),
    Not(Box<Node>),
    Item(ItemTest),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ItemTest {
    part: Option<Part>,
    /// `tt:ElementItem` rather than `tt:SimpleItem`.
    element: bool,
    name: Option<String>,
    value: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Source,
    Key,
    Data,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not an ItemFilter expression this device reads: {0}")]
pub struct ContentFilterError(String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    Equals,
    Attribute(String),
    Text(String),
    Word(String),
    Path(String),
}

fn tokens(expression: &str) -> Result<Vec<Token>, ContentFilterError> {
    let error = |why: &str| ContentFilterError(why.to_string());
    let chars: Vec<char> = expression.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let word_end = |from: usize| {
            let mut end = from;
            while end < chars.len()
                && (chars[end].is_alphanumeric() || matches!(chars[end], '_' | '-' | ':' | '.'))
            {
                end += 1;
            }
            end
        };
        match c {
            c if c.is_whitespace() => i += 1,
            '(' | ')' | '[' | ']' | '=' => {
                out.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    '[' => Token::OpenBracket,
                    ']' => Token::CloseBracket,
                    _ => Token::Equals,
                });
                i += 1;
            }
            '"' | '\'' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|d| *d == c)
                    .ok_or_else(|| error("a string is not closed"))?;
                out.push(Token::Text(chars[i + 1..i + 1 + end].iter().collect()));
                i += end + 2;
            }
            '@' => {
                let end = word_end(i + 1);
                out.push(Token::Attribute(chars[i + 1..end].iter().collect()));
                i = end;
            }
            '/' => {
                let mut end = i;
                while end < chars.len() && chars[end] != '[' && !chars[end].is_whitespace() {
                    end += 1;
                }
                out.push(Token::Path(chars[i..end].iter().collect()));
                i = end;
            }
            _ => {
                let end = word_end(i);
                if end == i {
                    return Err(error(&format!("unexpected {c:?}")));
                }
                out.push(Token::Word(chars[i..end].iter().collect()));
                i = end;
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn error(&self, what: &str) -> ContentFilterError {
        ContentFilterError(format!("{what} at token {}", self.at + 1))
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn expect(&mut self, wanted: Token) -> Result<(), ContentFilterError> {
        if self.next() == Some(wanted.clone()) {
            Ok(())
        } else {
            Err(self.error(&format!("expected {wanted:?}")))
        }
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w == word)
    }

    fn or(&mut self, depth: usize) -> Result<Node, ContentFilterError> {
        let mut terms = vec![self.and(depth)?];
        while self.is_word("or") {
            self.at += 1;
            terms.push(self.and(depth)?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Node::Or(terms)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Node, ContentFilterError> {
        let mut terms = vec![self.unary(depth)?];
        while self.is_word("and") {
            self.at += 1;
            terms.push(self.unary(depth)?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Node::And(terms)
        })
    }

    fn unary(&mut self, depth: usize) -> Result<Node, ContentFilterError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        match self.next() {
            Some(Token::Word(w)) if w == "not" || w == "boolean" => {
                self.expect(Token::Open)?;
                let inner = self.or(depth + 1)?;
                self.expect(Token::Close)?;
                Ok(if w == "not" {
                    Node::Not(Box::new(inner))
                } else {
                    inner
                })
            }
            Some(Token::Open) => {
                let inner = self.or(depth + 1)?;
                self.expect(Token::Close)?;
                Ok(inner)
            }
            Some(Token::Path(path)) => self.item(&path),
            _ => Err(self.error("expected an item test, not(...), boolean(...) or (...)")),
        }
    }

    /// `//[tt:Source/]tt:SimpleItem[@Name="n" and @Value="v"]`.
    fn item(&mut self, path: &str) -> Result<Node, ContentFilterError> {
        let steps: Vec<&str> = path
            .trim_start_matches('/')
            .split('/')
            .map(|s| s.rsplit(':').next().unwrap_or(s))
            .collect();
        let (part, item) = match steps.as_slice() {
            [item] => (None, *item),
            [part, item] => (
                Some(match *part {
                    "Source" => Part::Source,
                    "Key" => Part::Key,
                    "Data" => Part::Data,
                    _ => return Err(self.error(&format!("no message part {part}"))),
                }),
                *item,
            ),
            _ => return Err(self.error(&format!("path {path} is not an item path"))),
        };
        if !path.starts_with("//") {
            return Err(self.error("item paths start with //"));
        }
        let element = match item {
            "SimpleItem" => false,
            "ElementItem" => true,
            other => return Err(self.error(&format!("{other} is not SimpleItem or ElementItem"))),
        };
        let mut test = ItemTest {
            part,
            element,
            name: None,
            value: None,
        };
        if self.peek() == Some(&Token::OpenBracket) {
            self.at += 1;
            loop {
                let attribute = match self.next() {
                    Some(Token::Attribute(a)) => a,
                    _ => return Err(self.error("expected @Name or @Value")),
                };
                self.expect(Token::Equals)?;
                let text = match self.next() {
                    Some(Token::Text(t)) => t,
                    _ => return Err(self.error("expected a quoted value")),
                };
                match attribute.as_str() {
                    "Name" => test.name = Some(text),
                    "Value" if !element => test.value = Some(text),
                    other => return Err(self.error(&format!("no attribute @{other} here"))),
                }
                if self.is_word("and") {
                    self.at += 1;
                } else {
                    break;
                }
            }
            self.expect(Token::CloseBracket)?;
        }
        Ok(Node::Item(test))
    }
}

impl ContentFilter {
    pub fn parse(expression: &str) -> Result<Self, ContentFilterError> {
        if expression.len() > MAX_LENGTH {
            return Err(ContentFilterError(format!(
                "longer than {MAX_LENGTH} bytes"
            )));
        }
        let mut parser = Parser {
            tokens: tokens(expression)?,
            at: 0,
        };
        let node = parser.or(0)?;
        if parser.at != parser.tokens.len() {
            return Err(parser.error("unexpected text after the expression"));
        }
        Ok(Self(node))
    }

    /// Whether a message's items pass.
    pub fn accepts(&self, message: &EventMessage) -> bool {
        evaluate(&self.0, message)
    }
}

fn evaluate(node: &Node, message: &EventMessage) -> bool {
    match node {
        Node::Or(terms) => terms.iter().any(|t| evaluate(t, message)),
        Node::And(terms) => terms.iter().all(|t| evaluate(t, message)),
        Node::Not(inner) => !evaluate(inner, message),
        Node::Item(test) => {
            let fits = |name: &str, value: Option<&str>| {
                test.name.as_deref().is_none_or(|n| n == name)
                    && test.value.as_deref().is_none_or(|v| Some(v) == value)
            };
            if test.element {
                let data = matches!(test.part, None | Some(Part::Data));
                return data && message.data_elements.iter().any(|(n, _)| fits(n, None));
            }
            let parts: [(Part, &Vec<(String, String)>); 3] = [
                (Part::Source, &message.source),
                (Part::Key, &message.key),
                (Part::Data, &message.data),
            ];
            parts
                .iter()
                .filter(|(part, _)| test.part.is_none_or(|p| p == *part))
                .any(|(_, items)| items.iter().any(|(n, v)| fits(n, Some(v))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> EventMessage {
        EventMessage {
            topic: "tns1:RuleEngine/Recognition/Face".into(),
            time: std::time::SystemTime::UNIX_EPOCH,
            property: None,
            source: vec![
                ("VideoSource".into(), "door".into()),
                ("Rule".into(), "Staff".into()),
            ],
            key: Vec::new(),
            data: vec![("Likelihood".into(), "0.9".into())],
            data_elements: vec![("ObjectId".into(), crate::device::ElementItem::ObjectId(3))],
            image_jpeg: None,
        }
    }

    fn accepts(expression: &str) -> bool {
        ContentFilter::parse(expression)
            .unwrap_or_else(|e| panic!("{expression}: {e}"))
            .accepts(&message())
    }

    #[test]
    fn the_core_spec_s_forms_are_read_and_evaluated() {
        assert!(accepts(
            r#"boolean(//tt:SimpleItem[@Name="VideoSource" and @Value="door"])"#
        ));
        assert!(!accepts(
            r#"boolean(//tt:SimpleItem[@Name="VideoSource" and @Value="lobby"])"#
        ));
        assert!(accepts(
            r#"boolean(//tt:Source/tt:SimpleItem[@Name="Rule"])"#
        ));
        assert!(!accepts(
            r#"boolean(//tt:Data/tt:SimpleItem[@Name="Rule"])"#
        ));
        assert!(accepts(
            r#"boolean((//tt:SimpleItem[@Name="VideoSource" and @Value="lobby"]) or (//tt:SimpleItem[@Name="Rule" and @Value='Staff']))"#
        ));
        assert!(!accepts(
            r#"boolean(//tt:SimpleItem[@Name="Rule" and @Value="Staff"] and not(//tt:SimpleItem[@Name="Likelihood"]))"#
        ));
        assert!(accepts(r#"boolean(//tt:ElementItem[@Name="ObjectId"])"#));
        assert!(accepts(r#"//tt:SimpleItem[@Value="0.9"]"#));
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "boolean(",
            r#"boolean(//tt:SimpleItem[@Name="a"]"#,
            r#"//tt:Other[@Name="a"]"#,
            r#"//tt:SimpleItem[@Name="a"] extra"#,
            r#"//tt:SimpleItem[@Name="unclosed]"#,
            r#"//tt:ElementItem[@Value="x"]"#,
            r#"//a/b/c/tt:SimpleItem"#,
            "count(//tt:SimpleItem) > 1",
        ] {
            assert!(ContentFilter::parse(bad).is_err(), "{bad}");
        }
        let deep = format!("{}//tt:SimpleItem{}", "not(".repeat(40), ")".repeat(40));
        assert!(ContentFilter::parse(&deep).is_err());
    }
}
