//! SOAP 1.2 envelopes: reading requests, writing responses and faults.

use crate::xml::{self, Element, Limits, XmlError};

pub mod ns {
    pub const SOAP: &str = "http://www.w3.org/2003/05/soap-envelope";
    pub const WSSE: &str =
        "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
    pub const WSU: &str =
        "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
    pub const WSA: &str = "http://www.w3.org/2005/08/addressing";
    pub const TDS: &str = "http://www.onvif.org/ver10/device/wsdl";
    pub const TRT: &str = "http://www.onvif.org/ver10/media/wsdl";
    pub const TR2: &str = "http://www.onvif.org/ver20/media/wsdl";
    pub const TEV: &str = "http://www.onvif.org/ver10/events/wsdl";
    pub const TAN: &str = "http://www.onvif.org/ver20/analytics/wsdl";
    pub const AXT: &str = "http://www.onvif.org/ver20/analytics";
    pub const TT: &str = "http://www.onvif.org/ver10/schema";
    pub const WSNT: &str = "http://docs.oasis-open.org/wsn/b-2";
    pub const WSTOP: &str = "http://docs.oasis-open.org/wsn/t-1";
    pub const TNS1: &str = "http://www.onvif.org/ver10/topics";
    pub const TER: &str = "http://www.onvif.org/ver10/error";
    pub const XSD: &str = "http://www.w3.org/2001/XMLSchema";
    /// Vigil's own: vendor topics (`vigil:...`) and metadata extensions.
    pub const VENDOR: &str = "http://vigil.invalid/onvif/metadata";
}

/// The prefixes every response declares on its envelope, so bodies can use them freely.
const RESPONSE_NAMESPACES: &[(&str, &str)] = &[
    ("s", ns::SOAP),
    ("wsa", ns::WSA),
    ("tt", ns::TT),
    ("tds", ns::TDS),
    ("trt", ns::TRT),
    ("tr2", ns::TR2),
    ("tev", ns::TEV),
    ("tan", ns::TAN),
    ("axt", ns::AXT),
    ("wsnt", ns::WSNT),
    ("wstop", ns::WSTOP),
    ("tns1", ns::TNS1),
    ("vigil", ns::VENDOR),
    ("ter", ns::TER),
    ("xs", ns::XSD),
    ("wsrf-rw", "http://docs.oasis-open.org/wsrf/rw-2"),
];

/// A parsed request: its header (if any) and the one element inside its body.
#[derive(Debug)]
pub struct Request {
    pub header: Option<Element>,
    pub body: Element,
}

impl Request {
    pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Self, Fault> {
        let root = xml::parse(bytes, limits).map_err(Fault::from_xml)?;
        if root.name == "Envelope" && root.ns != ns::SOAP {
            return Err(Fault::version_mismatch());
        }
        if !root.is(ns::SOAP, "Envelope") {
            return Err(Fault::sender(
                "ter:WellFormed",
                "the document is not a SOAP envelope",
            ));
        }
        let header = root
            .children
            .iter()
            .find(|c| c.is(ns::SOAP, "Header"))
            .cloned();
        let body = root
            .children
            .iter()
            .find(|c| c.is(ns::SOAP, "Body"))
            .ok_or_else(|| Fault::sender("ter:WellFormed", "the envelope has no Body"))?;
        let operation = match body.children.as_slice() {
            [one] => one.clone(),
            [] => return Err(Fault::sender("ter:WellFormed", "the Body is empty")),
            _ => {
                return Err(Fault::sender(
                    "ter:WellFormed",
                    "the Body holds more than one element",
                ))
            }
        };
        Ok(Self {
            header,
            body: operation,
        })
    }

    /// A WS-Addressing header's text, e.g. `To` or `MessageID`.
    pub fn addressing(&self, name: &str) -> Option<&str> {
        self.header
            .as_ref()?
            .children
            .iter()
            .find(|c| c.ns == ns::WSA && c.name == name)
            .map(|c| c.text.trim())
    }
}

/// The top-level SOAP fault code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultCode {
    VersionMismatch,
    Sender,
    Receiver,
}

/// A SOAP fault with ONVIF's `ter:` subcodes, outermost first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub code: FaultCode,
    pub subcodes: Vec<&'static str>,
    pub reason: String,
}

impl Fault {
    pub fn sender(subcode: &'static str, reason: impl Into<String>) -> Self {
        Self {
            code: FaultCode::Sender,
            subcodes: vec![subcode],
            reason: reason.into(),
        }
    }

    /// `ter:InvalidArgVal/ter:<detail>`, the usual answer to a wrong argument.
    pub fn invalid_arg(detail: &'static str, reason: impl Into<String>) -> Self {
        Self {
            code: FaultCode::Sender,
            subcodes: vec!["ter:InvalidArgVal", detail],
            reason: reason.into(),
        }
    }

    pub fn receiver(subcode: &'static str, reason: impl Into<String>) -> Self {
        Self {
            code: FaultCode::Receiver,
            subcodes: vec![subcode],
            reason: reason.into(),
        }
    }

    pub fn action_not_supported(name: &str) -> Self {
        Self {
            code: FaultCode::Receiver,
            subcodes: vec!["ter:ActionNotSupported"],
            reason: format!("{name} is not supported"),
        }
    }

    pub fn not_authorized() -> Self {
        Self::sender("ter:NotAuthorized", "Sender not Authorized")
    }

    pub fn version_mismatch() -> Self {
        Self {
            code: FaultCode::VersionMismatch,
            subcodes: Vec::new(),
            reason: "only SOAP 1.2 is supported".into(),
        }
    }

    fn from_xml(error: XmlError) -> Self {
        Self::sender("ter:WellFormed", error.to_string())
    }

    /// SOAP 1.2 over HTTP: sender faults are 400, except authorization failures, which
    /// ONVIF clients recognise by a 401 or 400 with NotAuthorized; receiver faults 500.
    pub fn http_status(&self) -> u16 {
        match self.code {
            FaultCode::Sender if self.subcodes.contains(&"ter:NotAuthorized") => 400,
            FaultCode::Sender | FaultCode::VersionMismatch => 400,
            FaultCode::Receiver => 500,
        }
    }

    pub fn to_xml(&self) -> String {
        let code = match self.code {
            FaultCode::VersionMismatch => "s:VersionMismatch",
            FaultCode::Sender => "s:Sender",
            FaultCode::Receiver => "s:Receiver",
        };
        let mut subcodes = String::new();
        for subcode in self.subcodes.iter().rev() {
            subcodes = format!("<s:Subcode><s:Value>{subcode}</s:Value>{subcodes}</s:Subcode>");
        }
        envelope(
            "",
            &format!(
                "<s:Fault><s:Code><s:Value>{code}</s:Value>{subcodes}</s:Code>\
                 <s:Reason><s:Text xml:lang=\"en\">{}</s:Text></s:Reason></s:Fault>",
                xml::escape(&self.reason)
            ),
        )
    }
}

/// A complete response document.
pub fn envelope(header: &str, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 1024);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?><s:Envelope");
    for (prefix, uri) in RESPONSE_NAMESPACES {
        out.push_str(&format!(" xmlns:{prefix}=\"{uri}\""));
    }
    out.push('>');
    if !header.is_empty() {
        out.push_str("<s:Header>");
        out.push_str(header);
        out.push_str("</s:Header>");
    }
    out.push_str("<s:Body>");
    out.push_str(body);
    out.push_str("</s:Body></s:Envelope>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_operation_and_addressing() {
        let request = Request::parse(
            br#"<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://www.w3.org/2005/08/addressing">
                <e:Header><a:To>http://x/onvif/sub/1</a:To></e:Header>
                <e:Body><GetProfiles xmlns="http://www.onvif.org/ver10/media/wsdl"/></e:Body></e:Envelope>"#,
            &Limits::default(),
        )
        .unwrap();
        assert!(request.body.is(ns::TRT, "GetProfiles"));
        assert_eq!(request.addressing("To"), Some("http://x/onvif/sub/1"));
    }

    #[test]
    fn answers_soap_11_with_version_mismatch() {
        let fault = Request::parse(
            br#"<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body><x/></e:Body></e:Envelope>"#,
            &Limits::default(),
        )
        .unwrap_err();
        assert_eq!(fault.code, FaultCode::VersionMismatch);
    }

    #[test]
    fn fault_nests_subcodes_in_order() {
        let xml = Fault::invalid_arg("ter:NoProfile", "no such profile").to_xml();
        assert!(xml.contains(
            "<s:Subcode><s:Value>ter:InvalidArgVal</s:Value><s:Subcode><s:Value>ter:NoProfile</s:Value></s:Subcode></s:Subcode>"
        ));
        let parsed = crate::xml::parse(xml.as_bytes(), &Limits::default()).unwrap();
        assert!(parsed.find(&["Body", "Fault", "Reason", "Text"]).is_some());
    }
}
