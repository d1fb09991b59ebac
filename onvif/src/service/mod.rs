//! The ONVIF services: which operations exist, who may call them, and their answers.

mod device;
mod events;
mod media;
mod media2;
#[cfg(test)]
mod tests;

use crate::auth::AccessClass;
use crate::server::Call;
use crate::soap::{ns, Fault};

/// The access class of every supported operation; `None` for anything else.
pub(crate) fn access_class(namespace: &str, operation: &str) -> Option<AccessClass> {
    use AccessClass::*;
    Some(match (namespace, operation) {
        (_, "GetServiceCapabilities") if is_service(namespace) => PreAuth,
        (ns::TDS, name) => match name {
            "GetSystemDateAndTime"
            | "GetCapabilities"
            | "GetServices"
            | "GetWsdlUrl"
            | "GetHostname"
            | "GetEndpointReference" => PreAuth,
            "GetDeviceInformation"
            | "GetScopes"
            | "GetNetworkInterfaces"
            | "GetNetworkProtocols"
            | "GetDNS"
            | "GetNTP"
            | "GetDiscoveryMode" => ReadSystem,
            "GetUsers" => ReadSystemSecret,
            "SetScopes" | "AddScopes" | "RemoveScopes" | "SetDiscoveryMode" | "CreateUsers"
            | "DeleteUsers" | "SetUser" => WriteSystem,
            "SystemReboot" => Unrecoverable,
            _ => return None,
        },
        (
            ns::TRT,
            "GetProfiles"
            | "GetProfile"
            | "GetVideoSources"
            | "GetVideoSourceConfigurations"
            | "GetVideoEncoderConfigurations"
            | "GetMetadataConfigurations"
            | "GetStreamUri"
            | "GetSnapshotUri",
        ) => ReadMedia,
        (
            ns::TR2,
            "GetProfiles"
            | "GetVideoSourceConfigurations"
            | "GetVideoEncoderConfigurations"
            | "GetMetadataConfigurations"
            | "GetStreamUri"
            | "GetSnapshotUri",
        ) => ReadMedia,
        (
            ns::TEV,
            "GetEventProperties"
            | "CreatePullPointSubscription"
            | "PullMessages"
            | "SetSynchronizationPoint",
        ) => ReadMedia,
        (ns::WSNT, "Subscribe" | "Renew" | "Unsubscribe") => ReadMedia,
        _ => return None,
    })
}

fn is_service(namespace: &str) -> bool {
    [ns::TDS, ns::TRT, ns::TR2, ns::TEV].contains(&namespace)
}

pub(crate) async fn dispatch(call: &Call<'_>) -> Result<String, Fault> {
    let operation = &call.request.body;
    match operation.ns.as_str() {
        ns::TDS => device::handle(call),
        ns::TRT => media::handle(call),
        ns::TR2 => media2::handle(call),
        ns::TEV | ns::WSNT => events::handle(call).await,
        _ => Err(Fault::action_not_supported(&operation.name)),
    }
}

/// `<prefix:Name>text</prefix:Name>` with the text escaped.
pub(crate) fn leaf(tag: &str, text: impl std::fmt::Display) -> String {
    format!("<{tag}>{}</{tag}>", crate::xml::escape(&text.to_string()))
}
