//! The ONVIF services: which operations exist, who may call them, and their answers.
//!
//! Each service module lists its operations in one table (`OPERATIONS`): name, access class,
//! handler. The server looks an operation up once and reads both its class (for access
//! control) and its handler from the same entry, so an operation cannot be served without
//! an access class, and adding one means adding a row.

mod analytics;
#[cfg(test)]
mod analytics_tests;
mod device;
mod events;
mod media;
mod media2;
#[cfg(test)]
mod media2_tests;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::pin::Pin;

use crate::auth::AccessClass;
use crate::server::Call;
use crate::soap::{ns, Fault};

/// A SOAP body to answer with, or the fault to answer instead.
pub(crate) type Answer = Result<String, Fault>;

/// The answer of an operation that waits (PullMessages).
pub(crate) type Waiting<'a> = Pin<Box<dyn Future<Output = Answer> + Send + 'a>>;

#[derive(Clone, Copy)]
pub(crate) enum Handler {
    /// Answers at once.
    Now(fn(&Call<'_>) -> Answer),
    /// Answers later (may wait for events).
    Later(for<'a, 'b> fn(&'a Call<'b>) -> Waiting<'a>),
}

/// One supported operation of a service.
pub(crate) struct Operation {
    pub name: &'static str,
    pub access: AccessClass,
    pub handler: Handler,
}

impl Operation {
    pub(crate) const fn now(
        name: &'static str,
        access: AccessClass,
        handler: fn(&Call<'_>) -> Answer,
    ) -> Self {
        Self {
            name,
            access,
            handler: Handler::Now(handler),
        }
    }

    pub(crate) async fn answer(&self, call: &Call<'_>) -> Answer {
        match self.handler {
            Handler::Now(handler) => handler(call),
            Handler::Later(handler) => handler(call).await,
        }
    }
}

/// Every service the device offers: its namespace and its operations.
const SERVICES: [(&str, &[Operation]); 6] = [
    (ns::TDS, device::OPERATIONS),
    (ns::TRT, media::OPERATIONS),
    (ns::TR2, media2::OPERATIONS),
    (ns::TAN, analytics::OPERATIONS),
    (ns::TEV, events::OPERATIONS),
    (ns::WSNT, events::SUBSCRIPTION_OPERATIONS),
];

/// The operation a request names, if the device supports it.
pub(crate) fn operation(namespace: &str, name: &str) -> Option<&'static Operation> {
    SERVICES
        .iter()
        .find(|(service, _)| *service == namespace)?
        .1
        .iter()
        .find(|operation| operation.name == name)
}

/// `<prefix:Name>text</prefix:Name>` with the text escaped.
pub(crate) fn leaf(tag: &str, text: impl std::fmt::Display) -> String {
    format!("<{tag}>{}</{tag}>", crate::xml::escape(&text.to_string()))
}

/// The trimmed texts of the request's `name` children, at least one (else `InvalidArgVal`
/// with `detail`).
pub(crate) fn required_texts(
    request: &crate::xml::Element,
    name: &str,
    detail: &'static str,
) -> Result<Vec<String>, Fault> {
    let texts: Vec<String> = request
        .children_named(name)
        .map(|e| e.text.trim().to_string())
        .collect();
    if texts.is_empty() {
        return Err(Fault::invalid_arg(detail, format!("no {name} given")));
    }
    Ok(texts)
}

/// `<prefix:OperationResponse>inner</prefix:OperationResponse>`.
pub(crate) fn response(prefix: &str, operation: &str, inner: &str) -> String {
    format!("<{prefix}:{operation}Response>{inner}</{prefix}:{operation}Response>")
}
