//! The one place XML is read: a strict, bounded parser into a small tree.
//!
//! SOAP requests come from the network, so the parser refuses what XML parsers are
//! usually attacked with: any DOCTYPE (and so every DTD and entity declaration), any
//! entity reference other than the five predefined ones and character references,
//! processing instructions other than the XML declaration, and documents that are too
//! big, too deep or have too many elements. Names are resolved to namespace URIs, so
//! callers match on `(namespace, local name)` and never on a client's prefixes.

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

/// Bounds on a document. The defaults fit every ONVIF request with room to spare.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_depth: usize,
    pub max_elements: usize,
    pub max_attributes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 256 * 1024,
            max_depth: 32,
            max_elements: 4096,
            max_attributes: 32,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XmlError {
    #[error("document larger than {0} bytes")]
    TooLarge(usize),
    #[error("elements nested deeper than {0}")]
    TooDeep(usize),
    #[error("more than {0} elements")]
    TooManyElements(usize),
    #[error("more than {0} attributes on one element")]
    TooManyAttributes(usize),
    /// Every element and attribute carries its namespace name: without a bound, a long
    /// namespace used on many names would make a small document a huge tree.
    #[error("namespace names of elements and attributes add up to more than {0} bytes")]
    TooManyNamespaceBytes(usize),
    #[error("DTDs are not accepted")]
    Dtd,
    #[error("entity reference &{0}; is not accepted")]
    Entity(String),
    #[error("processing instructions are not accepted")]
    ProcessingInstruction,
    #[error("unknown namespace prefix in {0}")]
    UnknownPrefix(String),
    #[error("no root element")]
    Empty,
    #[error("malformed XML: {0}")]
    Syntax(String),
}

/// An element with its namespace resolved. Text is the concatenation of the element's
/// own text nodes (ONVIF has no mixed content that matters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub ns: String,
    pub name: String,
    pub attributes: Vec<Attribute>,
    pub children: Vec<Element>,
    pub text: String,
    /// Namespace declarations made on this element, `(prefix, uri)`; the default
    /// namespace has an empty prefix. Needed to resolve QNames inside text.
    pub namespaces: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub ns: String,
    pub name: String,
    pub value: String,
}

impl Element {
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    /// The first child with this local name, whatever its namespace: ONVIF clients
    /// disagree on which namespace some request fields live in.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The trimmed text of the child with this local name.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }

    /// The element at the end of a path of local names.
    pub fn find(&self, path: &[&str]) -> Option<&Element> {
        path.iter()
            .try_fold(self, |element, name| element.child(name))
    }

    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.value.as_str())
    }
}

/// Resolves a QName found in text (`prefix:local`) against the declarations of the
/// elements from the root down to where it was found, innermost winning.
pub fn resolve_qname(scope: &[&Element], qname: &str) -> Option<(String, String)> {
    let (prefix, local) = qname.split_once(':').unwrap_or(("", qname));
    scope
        .iter()
        .rev()
        .flat_map(|e| e.namespaces.iter())
        .find(|(p, _)| p == prefix)
        .map(|(_, uri)| (uri.clone(), local.to_string()))
}

/// Parses a whole document into its root element.
pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Element, XmlError> {
    if bytes.len() > limits.max_bytes {
        return Err(XmlError::TooLarge(limits.max_bytes));
    }
    let mut reader = NsReader::from_reader(bytes);
    reader.config_mut().expand_empty_elements = true;
    reader.config_mut().check_end_names = true;

    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut elements = 0usize;
    let mut namespace_bytes = 0usize;
    let mut charge = |ns: String| {
        namespace_bytes += ns.len();
        if namespace_bytes > limits.max_bytes {
            return Err(XmlError::TooManyNamespaceBytes(limits.max_bytes));
        }
        Ok(ns)
    };
    loop {
        let (resolved, event) = reader
            .read_resolved_event()
            .map_err(|e| XmlError::Syntax(e.to_string()))?;
        match event {
            Event::Start(start) => {
                if root.is_some() {
                    return Err(XmlError::Syntax("content after the root element".into()));
                }
                elements += 1;
                if elements > limits.max_elements {
                    return Err(XmlError::TooManyElements(limits.max_elements));
                }
                if stack.len() >= limits.max_depth {
                    return Err(XmlError::TooDeep(limits.max_depth));
                }
                let ns = charge(namespace_of(&resolved, start.name().as_ref())?)?;
                let name = utf8(start.local_name().as_ref())?;
                let mut attributes = Vec::new();
                let mut namespaces = Vec::new();
                for attribute in start.attributes() {
                    let attribute = attribute.map_err(|e| XmlError::Syntax(e.to_string()))?;
                    let key = attribute.key;
                    if let Some(binding) = key.as_namespace_binding() {
                        let prefix = match binding {
                            quick_xml::name::PrefixDeclaration::Default => String::new(),
                            quick_xml::name::PrefixDeclaration::Named(p) => utf8(p)?,
                        };
                        namespaces.push((prefix, utf8(&attribute.value)?));
                        continue;
                    }
                    if attributes.len() >= limits.max_attributes {
                        return Err(XmlError::TooManyAttributes(limits.max_attributes));
                    }
                    let (attr_ns, local) = reader.resolve_attribute(key);
                    let value = attribute.unescape_value().map_err(|e| match e {
                        quick_xml::Error::Escape(
                            quick_xml::escape::EscapeError::UnrecognizedEntity(_, name),
                        ) => XmlError::Entity(name),
                        other => XmlError::Syntax(other.to_string()),
                    })?;
                    attributes.push(Attribute {
                        ns: charge(namespace_of(&attr_ns, key.as_ref())?)?,
                        name: utf8(local.as_ref())?,
                        value: value.into_owned(),
                    });
                }
                stack.push(Element {
                    ns,
                    name,
                    attributes,
                    namespaces,
                    ..Element::default()
                });
            }
            Event::End(_) => {
                let Some(done) = stack.pop() else {
                    return Err(XmlError::Syntax("unbalanced end tag".into()));
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => root = Some(done),
                }
            }
            Event::Text(text) => {
                let text = text.decode().map_err(|e| XmlError::Syntax(e.to_string()))?;
                append_text(&mut stack, &text)?;
            }
            Event::CData(data) => {
                let text = data.decode().map_err(|e| XmlError::Syntax(e.to_string()))?;
                append_text(&mut stack, &text)?;
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference
                    .resolve_char_ref()
                    .map_err(|e| XmlError::Syntax(e.to_string()))?
                {
                    Some(c) => c.to_string(),
                    None => {
                        let name = utf8(reference.as_ref())?;
                        predefined_entity(&name)
                            .ok_or(XmlError::Entity(name))?
                            .to_string()
                    }
                };
                append_text(&mut stack, &resolved)?;
            }
            Event::DocType(_) => return Err(XmlError::Dtd),
            Event::PI(_) => return Err(XmlError::ProcessingInstruction),
            Event::Decl(_) | Event::Comment(_) => {}
            Event::Empty(_) => unreachable!("empty elements are expanded"),
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Syntax("unclosed element".into()));
    }
    root.ok_or(XmlError::Empty)
}

fn append_text(stack: &mut [Element], text: &str) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(element) => element.text.push_str(text),
        None if text.trim().is_empty() => {}
        None => return Err(XmlError::Syntax("text outside the root element".into())),
    }
    Ok(())
}

fn predefined_entity(name: &str) -> Option<&'static str> {
    Some(match name {
        "lt" => "<",
        "gt" => ">",
        "amp" => "&",
        "apos" => "'",
        "quot" => "\"",
        _ => return None,
    })
}

fn namespace_of(resolved: &ResolveResult<'_>, qname: &[u8]) -> Result<String, XmlError> {
    match resolved {
        ResolveResult::Bound(ns) => utf8(ns.as_ref()),
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Unknown(_) => Err(XmlError::UnknownPrefix(utf8(qname)?)),
    }
}

fn utf8(bytes: &[u8]) -> Result<String, XmlError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| XmlError::Syntax("invalid UTF-8".into()))
}

/// Escapes text for element content and attribute values.
pub fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_default(text: &str) -> Result<Element, XmlError> {
        parse(text.as_bytes(), &Limits::default())
    }

    #[test]
    fn resolves_namespaces_and_entities() {
        let root = parse_default(
            r#"<?xml version="1.0"?><s:E xmlns:s="urn:a" xmlns="urn:b"><x k="1 &amp; 2">a &lt; b &#x41;<![CDATA[<c>]]></x><!-- c --></s:E>"#,
        )
        .unwrap();
        assert!(root.is("urn:a", "E"));
        let x = root.child("x").unwrap();
        assert_eq!(x.ns, "urn:b");
        assert_eq!(x.text, "a < b A<c>");
        assert_eq!(x.attribute("k"), Some("1 & 2"));
    }

    #[test]
    fn refuses_dtds_and_entity_expansion() {
        let bomb = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><lolz>&lol2;</lolz>"#;
        assert_eq!(parse_default(bomb), Err(XmlError::Dtd));
        assert_eq!(
            parse_default("<a>&lol;</a>"),
            Err(XmlError::Entity("lol".into()))
        );
        assert_eq!(
            parse_default(r#"<a b="&x;"/>"#),
            Err(XmlError::Entity("x".into()))
        );
        assert_eq!(
            parse_default(r#"<?xml-stylesheet href="x"?><a/>"#),
            Err(XmlError::ProcessingInstruction)
        );
    }

    #[test]
    fn enforces_limits() {
        let limits = Limits {
            max_bytes: 100,
            max_depth: 3,
            max_elements: 5,
            max_attributes: 2,
        };
        assert_eq!(parse(&[b' '; 101], &limits), Err(XmlError::TooLarge(100)));
        assert_eq!(
            parse(b"<a><b><c><d/></c></b></a>", &limits),
            Err(XmlError::TooDeep(3))
        );
        assert_eq!(
            parse(b"<a><b/><b/><b/><b/><b/></a>", &limits),
            Err(XmlError::TooManyElements(5))
        );
        assert_eq!(
            parse(br#"<a x="1" y="2" z="3"/>"#, &limits),
            Err(XmlError::TooManyAttributes(2))
        );
        // A 40-byte namespace on three names: 120 bytes of copies from a 74-byte document.
        let long = format!(r#"<p:a xmlns:p="{}"><p:b/><p:b/></p:a>"#, "u".repeat(40));
        assert_eq!(
            parse(long.as_bytes(), &limits),
            Err(XmlError::TooManyNamespaceBytes(100))
        );
    }

    #[test]
    fn refuses_malformed_documents() {
        for bad in [
            "", "<a>", "<a></b>", "<a/><b/>", "<p:a/>", "text", "<a>\u{0}",
        ] {
            assert!(parse_default(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
