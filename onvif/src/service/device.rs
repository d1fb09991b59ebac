//! Device management (ver10/device): identity, time, capabilities, scopes, network
//! facts, users, discovery mode, reboot.

use chrono::{Datelike, Timelike, Utc};

use super::{leaf, required_texts, response, Answer, Operation};
use crate::auth::{AccessClass::*, User, UserError, UserLevel, Users};
use crate::server::{
    scope_text, Call, ANALYTICS_PATH, DEVICE_PATH, EVENTS_PATH, MEDIA2_PATH, MEDIA_PATH,
};
use crate::soap::{ns, Fault};
use crate::xml::{escape, Element};

pub(super) const OPERATIONS: &[Operation] = &[
    Operation::now("GetServiceCapabilities", PreAuth, get_service_capabilities),
    Operation::now("GetSystemDateAndTime", PreAuth, |_| {
        Ok(system_date_and_time())
    }),
    Operation::now("GetCapabilities", PreAuth, capabilities),
    Operation::now("GetServices", PreAuth, services),
    Operation::now("GetWsdlUrl", PreAuth, get_wsdl_url),
    Operation::now("GetHostname", PreAuth, get_hostname),
    Operation::now("GetEndpointReference", PreAuth, get_endpoint_reference),
    Operation::now("GetDeviceInformation", ReadSystem, get_device_information),
    Operation::now("GetScopes", ReadSystem, get_scopes),
    Operation::now("GetNetworkInterfaces", ReadSystem, |_| {
        Ok(network_interfaces())
    }),
    Operation::now("GetNetworkProtocols", ReadSystem, get_network_protocols),
    Operation::now("GetDNS", ReadSystem, |_| Ok(get_dns())),
    Operation::now("GetNTP", ReadSystem, |_| {
        Ok("<tds:GetNTPResponse><tds:NTPInformation><tt:FromDHCP>false</tt:FromDHCP></tds:NTPInformation></tds:GetNTPResponse>".into())
    }),
    Operation::now("GetDiscoveryMode", ReadSystem, get_discovery_mode),
    Operation::now("GetUsers", ReadSystemSecret, get_users),
    Operation::now("SetScopes", WriteSystem, set_scopes),
    Operation::now("AddScopes", WriteSystem, add_scopes),
    Operation::now("RemoveScopes", WriteSystem, remove_scopes),
    Operation::now("SetDiscoveryMode", WriteSystem, set_discovery_mode),
    Operation::now("CreateUsers", WriteSystem, create_users),
    Operation::now("SetUser", WriteSystem, set_user),
    Operation::now("DeleteUsers", WriteSystem, delete_users),
    Operation::now("SystemReboot", Unrecoverable, system_reboot),
];

/// The most configurable scopes a device keeps.
const MAX_SCOPES: usize = 64;

fn get_service_capabilities(call: &Call<'_>) -> Answer {
    Ok(response(
        "tds",
        "GetServiceCapabilities",
        &service_capabilities(call),
    ))
}

fn get_wsdl_url(_: &Call<'_>) -> Answer {
    Ok("<tds:GetWsdlUrlResponse><tds:WsdlUrl>https://www.onvif.org/profiles/specifications/</tds:WsdlUrl></tds:GetWsdlUrlResponse>".into())
}

fn get_hostname(_: &Call<'_>) -> Answer {
    Ok(format!(
        "<tds:GetHostnameResponse><tds:HostnameInformation><tt:FromDHCP>false</tt:FromDHCP>{}</tds:HostnameInformation></tds:GetHostnameResponse>",
        leaf("tt:Name", crate::system::hostname())
    ))
}

fn get_endpoint_reference(call: &Call<'_>) -> Answer {
    Ok(response(
        "tds",
        "GetEndpointReference",
        &leaf("tds:GUID", call.device.endpoint_reference()),
    ))
}

fn get_device_information(call: &Call<'_>) -> Answer {
    let info = call.device.product.information();
    Ok(response(
        "tds",
        "GetDeviceInformation",
        &[
            leaf("tds:Manufacturer", &info.manufacturer),
            leaf("tds:Model", &info.model),
            leaf("tds:FirmwareVersion", &info.firmware_version),
            leaf("tds:SerialNumber", &info.serial_number),
            leaf("tds:HardwareId", &info.hardware_id),
        ]
        .concat(),
    ))
}

fn get_scopes(call: &Call<'_>) -> Answer {
    let (fixed, configurable) = call.device.scopes();
    let scope = |def: &str, item: &String| {
        format!(
            "<tds:Scopes><tt:ScopeDef>{def}</tt:ScopeDef>{}</tds:Scopes>",
            leaf("tt:ScopeItem", item)
        )
    };
    let all: String = fixed
        .iter()
        .map(|s| scope("Fixed", s))
        .chain(configurable.iter().map(|s| scope("Configurable", s)))
        .collect();
    Ok(response("tds", "GetScopes", &all))
}

fn too_many_scopes() -> Fault {
    Fault::receiver(
        "ter:TooManyScopes",
        format!("at most {MAX_SCOPES} configurable scopes"),
    )
}

fn set_scopes(call: &Call<'_>) -> Answer {
    let scopes = scope_items(&call.request.body, "Scopes")?;
    if scopes.len() > MAX_SCOPES {
        return Err(too_many_scopes());
    }
    call.device.change_settings(|s| {
        s.configurable_scopes = scopes;
        Ok(())
    })?;
    Ok("<tds:SetScopesResponse/>".into())
}

fn add_scopes(call: &Call<'_>) -> Answer {
    let scopes = scope_items(&call.request.body, "ScopeItem")?;
    call.device.change_settings(|s| {
        for scope in scopes {
            if !s.configurable_scopes.contains(&scope) {
                s.configurable_scopes.push(scope);
            }
        }
        if s.configurable_scopes.len() > MAX_SCOPES {
            return Err(too_many_scopes());
        }
        Ok(())
    })?;
    Ok("<tds:AddScopesResponse/>".into())
}

fn remove_scopes(call: &Call<'_>) -> Answer {
    let scopes = scope_items(&call.request.body, "ScopeItem")?;
    let (fixed, _) = call.device.scopes();
    if scopes.iter().any(|s| fixed.contains(s)) {
        return Err(Fault {
            subcodes: vec!["ter:OperationProhibited", "ter:FixedScope"],
            ..Fault::sender("", "fixed scopes cannot be removed")
        });
    }
    call.device.change_settings(|s| {
        for scope in &scopes {
            if !s.configurable_scopes.contains(scope) {
                return Err(Fault::invalid_arg(
                    "ter:NoScope",
                    format!("no scope {scope}"),
                ));
            }
        }
        s.configurable_scopes.retain(|s| !scopes.contains(s));
        Ok(())
    })?;
    let removed: String = scopes.iter().map(|s| leaf("tds:ScopeItem", s)).collect();
    Ok(response("tds", "RemoveScopes", &removed))
}

fn get_network_protocols(call: &Call<'_>) -> Answer {
    let protocol = |name: &str, ports: &[u16]| {
        if ports.is_empty() {
            return String::new();
        }
        let ports: String = ports.iter().map(|p| leaf("tt:Port", p)).collect();
        format!("<tds:NetworkProtocols><tt:Name>{name}</tt:Name><tt:Enabled>true</tt:Enabled>{ports}</tds:NetworkProtocols>")
    };
    let device = call.device;
    let rtsp: Vec<u16> = device.metadata_rtsp_port().into_iter().collect();
    Ok(response(
        "tds",
        "GetNetworkProtocols",
        &[
            protocol("HTTP", &device.config.http_ports),
            protocol("HTTPS", &device.config.https_ports),
            protocol("RTSP", &rtsp),
        ]
        .concat(),
    ))
}

fn get_dns() -> String {
    let (servers, search) = crate::system::dns();
    let search: String = search.iter().map(|d| leaf("tt:SearchDomain", d)).collect();
    let servers: String = servers
        .iter()
        .filter(|s| s.parse::<std::net::Ipv4Addr>().is_ok())
        .map(|s| {
            format!(
                "<tt:DNSManual><tt:Type>IPv4</tt:Type>{}</tt:DNSManual>",
                leaf("tt:IPv4Address", s)
            )
        })
        .collect();
    format!("<tds:GetDNSResponse><tds:DNSInformation><tt:FromDHCP>false</tt:FromDHCP>{search}{servers}</tds:DNSInformation></tds:GetDNSResponse>")
}

fn get_discovery_mode(call: &Call<'_>) -> Answer {
    let mode = if call.device.discoverable() {
        "Discoverable"
    } else {
        "NonDiscoverable"
    };
    Ok(response(
        "tds",
        "GetDiscoveryMode",
        &leaf("tds:DiscoveryMode", mode),
    ))
}

fn set_discovery_mode(call: &Call<'_>) -> Answer {
    let discoverable = match call.request.body.child_text("DiscoveryMode") {
        Some("Discoverable") => true,
        Some("NonDiscoverable") => false,
        _ => {
            return Err(Fault::invalid_arg(
                "ter:InvalidArgVal",
                "DiscoveryMode is Discoverable or NonDiscoverable",
            ))
        }
    };
    call.device.change_settings(|s| {
        s.discoverable = discoverable;
        Ok(())
    })?;
    Ok("<tds:SetDiscoveryModeResponse/>".into())
}

fn get_users(call: &Call<'_>) -> Answer {
    let users: String = call
        .device
        .auth
        .users()
        .list()
        .iter()
        .map(|u| {
            format!(
                "<tds:User>{}{}</tds:User>",
                leaf("tt:Username", &u.name),
                leaf("tt:UserLevel", u.level.as_str())
            )
        })
        .collect();
    Ok(response("tds", "GetUsers", &users))
}

fn create_users(call: &Call<'_>) -> Answer {
    change_users(call, true, "created", |table, user| {
        table.create(User {
            name: user.name.clone(),
            password: user.password.clone().unwrap_or_default(),
            level: user.level,
        })
    })?;
    Ok("<tds:CreateUsersResponse/>".into())
}

fn set_user(call: &Call<'_>) -> Answer {
    change_users(call, false, "changed", |table, user| {
        table.set(&user.name, user.password.clone(), user.level)
    })?;
    Ok("<tds:SetUserResponse/>".into())
}

/// Applies `apply` to every user of the request, all or none, after the password policy.
fn change_users(
    call: &Call<'_>,
    password_required: bool,
    done: &str,
    apply: fn(&mut Users, &UserRequest) -> Result<(), UserError>,
) -> Result<(), Fault> {
    let device = call.device;
    let users = users_of(&call.request.body, password_required)?;
    strong_enough(&users, device.config.min_password_chars)?;
    device
        .auth
        .users()
        .change(&|table| users.iter().try_for_each(|user| apply(table, user)))
        .map_err(user_fault)?;
    tracing::info!(by = %caller_name(call), users = ?users.iter().map(|u| &u.name).collect::<Vec<_>>(), "ONVIF users {done}");
    Ok(())
}

fn delete_users(call: &Call<'_>) -> Answer {
    let names = required_texts(&call.request.body, "Username", "ter:UsernameMissing")?;
    call.device
        .auth
        .users()
        .change(&|table| names.iter().try_for_each(|name| table.delete(name)))
        .map_err(user_fault)?;
    tracing::info!(by = %caller_name(call), users = ?names, "ONVIF users deleted");
    Ok("<tds:DeleteUsersResponse/>".into())
}

fn system_reboot(call: &Call<'_>) -> Answer {
    let product = call.device.product.clone();
    tracing::warn!(by = %caller_name(call), "ONVIF SystemReboot: restarting the service");
    // Answer first; restart a moment later so the client gets the response.
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        product.reboot();
    });
    Ok("<tds:SystemRebootResponse><tds:Message>Restarting the service</tds:Message></tds:SystemRebootResponse>".into())
}

fn caller_name(call: &Call<'_>) -> String {
    call.caller
        .as_ref()
        .map_or_else(|| "anonymous".into(), |u| u.name.clone())
}

fn system_date_and_time() -> String {
    let now = Utc::now();
    let date_time = format!(
        "<tt:Time><tt:Hour>{}</tt:Hour><tt:Minute>{}</tt:Minute><tt:Second>{}</tt:Second></tt:Time>\
         <tt:Date><tt:Year>{}</tt:Year><tt:Month>{}</tt:Month><tt:Day>{}</tt:Day></tt:Date>",
        now.hour(),
        now.minute(),
        now.second(),
        now.year(),
        now.month(),
        now.day()
    );
    format!(
        "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>NTP</tt:DateTimeType>\
         <tt:DaylightSavings>false</tt:DaylightSavings><tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone>\
         <tt:UTCDateTime>{date_time}</tt:UTCDateTime><tt:LocalDateTime>{date_time}</tt:LocalDateTime>\
         </tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
    )
}

fn capabilities(call: &Call<'_>) -> Answer {
    let operation = &call.request.body;
    let categories: Vec<&str> = operation
        .children_named("Category")
        .map(|c| c.text.trim())
        .collect();
    let wants = |name: &str| {
        categories.is_empty() || categories.contains(&"All") || categories.contains(&name)
    };
    for category in &categories {
        if ![
            "All",
            "Device",
            "Events",
            "Media",
            "Analytics",
            "Imaging",
            "PTZ",
        ]
        .contains(category)
        {
            return Err(Fault::invalid_arg(
                "ter:InvalidArgVal",
                format!("unknown category {category}"),
            ));
        }
        if ["Imaging", "PTZ"].contains(category) {
            return Err(Fault {
                subcodes: vec!["ter:ActionNotSupported", "ter:NoSuchService"],
                ..Fault::receiver("", format!("this device has no {category} service"))
            });
        }
    }
    let base = &call.base;
    let https = base.starts_with("https");
    let mut out = String::from("<tds:GetCapabilitiesResponse><tds:Capabilities>");
    // tt:Capabilities is a sequence: Analytics comes first.
    if wants("Analytics") {
        out.push_str(&format!(
            "<tt:Analytics>{}<tt:RuleSupport>true</tt:RuleSupport>\
             <tt:AnalyticsModuleSupport>true</tt:AnalyticsModuleSupport></tt:Analytics>",
            leaf("tt:XAddr", format!("{base}{ANALYTICS_PATH}"))
        ));
    }
    if wants("Device") {
        out.push_str(&format!(
            "<tt:Device>{}<tt:Network><tt:IPFilter>false</tt:IPFilter><tt:ZeroConfiguration>false</tt:ZeroConfiguration>\
             <tt:IPVersion6>false</tt:IPVersion6><tt:DynDNS>false</tt:DynDNS></tt:Network>\
             <tt:System><tt:DiscoveryResolve>true</tt:DiscoveryResolve><tt:DiscoveryBye>true</tt:DiscoveryBye>\
             <tt:RemoteDiscovery>false</tt:RemoteDiscovery><tt:SystemBackup>false</tt:SystemBackup>\
             <tt:SystemLogging>false</tt:SystemLogging><tt:FirmwareUpgrade>false</tt:FirmwareUpgrade>\
             <tt:SupportedVersions><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tt:SupportedVersions></tt:System>\
             <tt:IO><tt:InputConnectors>0</tt:InputConnectors><tt:RelayOutputs>0</tt:RelayOutputs></tt:IO>\
             <tt:Security><tt:TLS1.1>false</tt:TLS1.1><tt:TLS1.2>{https}</tt:TLS1.2><tt:OnboardKeyGeneration>false</tt:OnboardKeyGeneration>\
             <tt:AccessPolicyConfig>false</tt:AccessPolicyConfig><tt:X.509Token>false</tt:X.509Token><tt:SAMLToken>false</tt:SAMLToken>\
             <tt:KerberosToken>false</tt:KerberosToken><tt:RELToken>false</tt:RELToken></tt:Security></tt:Device>",
            leaf("tt:XAddr", format!("{base}{DEVICE_PATH}"))
        ));
    }
    if wants("Events") {
        out.push_str(&format!(
            "<tt:Events>{}<tt:WSSubscriptionPolicySupport>false</tt:WSSubscriptionPolicySupport>\
             <tt:WSPullPointSupport>true</tt:WSPullPointSupport>\
             <tt:WSPausableSubscriptionManagerInterfaceSupport>false</tt:WSPausableSubscriptionManagerInterfaceSupport></tt:Events>",
            leaf("tt:XAddr", format!("{base}{EVENTS_PATH}"))
        ));
    }
    if wants("Media") {
        out.push_str(&format!(
            "<tt:Media>{}<tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast><tt:RTP_TCP>true</tt:RTP_TCP>\
             <tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities></tt:Media>",
            leaf("tt:XAddr", format!("{base}{MEDIA_PATH}"))
        ));
    }
    out.push_str("</tds:Capabilities></tds:GetCapabilitiesResponse>");
    Ok(out)
}

pub(super) fn service_capabilities(call: &Call<'_>) -> String {
    let https = call.base.starts_with("https");
    format!(
        "<tds:Capabilities><tds:Network IPFilter=\"false\" ZeroConfiguration=\"false\" IPVersion6=\"false\" DynDNS=\"false\" \
         Dot11Configuration=\"false\" HostnameFromDHCP=\"false\" NTP=\"0\"/>\
         <tds:Security TLS1.0=\"false\" TLS1.1=\"false\" TLS1.2=\"{https}\" OnboardKeyGeneration=\"false\" AccessPolicyConfig=\"false\" \
         DefaultAccessPolicy=\"true\" Dot1X=\"false\" RemoteUserHandling=\"false\" X.509Token=\"false\" SAMLToken=\"false\" \
         KerberosToken=\"false\" UsernameToken=\"true\" HttpDigest=\"true\" RELToken=\"false\" MaxUsers=\"64\" \
         MaxUserNameLength=\"64\" MaxPasswordLength=\"64\"/>\
         <tds:System DiscoveryResolve=\"true\" DiscoveryBye=\"true\" RemoteDiscovery=\"false\" SystemBackup=\"false\" \
         SystemLogging=\"false\" FirmwareUpgrade=\"false\" HttpFirmwareUpgrade=\"false\" HttpSystemBackup=\"false\" \
         HttpSystemLogging=\"false\" HttpSupportInformation=\"false\"/></tds:Capabilities>"
    )
}

fn services(call: &Call<'_>) -> Answer {
    let include_capability = call.request.body.child_text("IncludeCapability") == Some("true");
    let base = &call.base;
    let entries = [
        (ns::TDS, DEVICE_PATH, 2, 60, service_capabilities(call)),
        (
            ns::TRT,
            MEDIA_PATH,
            2,
            60,
            super::media::service_capabilities(call),
        ),
        (
            ns::TR2,
            MEDIA2_PATH,
            2,
            60,
            super::media2::service_capabilities(call),
        ),
        (
            ns::TEV,
            EVENTS_PATH,
            2,
            60,
            super::events::service_capabilities(call),
        ),
        (
            ns::TAN,
            ANALYTICS_PATH,
            2,
            60,
            super::analytics::service_capabilities(call),
        ),
    ];
    let mut out = String::from("<tds:GetServicesResponse>");
    for (namespace, path, major, minor, capabilities) in entries {
        out.push_str("<tds:Service>");
        out.push_str(&leaf("tds:Namespace", namespace));
        out.push_str(&leaf("tds:XAddr", format!("{base}{path}")));
        if include_capability {
            out.push_str(&format!(
                "<tds:Capabilities>{capabilities}</tds:Capabilities>"
            ));
        }
        out.push_str(&format!("<tds:Version><tt:Major>{major}</tt:Major><tt:Minor>{minor}</tt:Minor></tds:Version></tds:Service>"));
    }
    out.push_str("</tds:GetServicesResponse>");
    Ok(out)
}

fn network_interfaces() -> String {
    let mut out = String::from("<tds:GetNetworkInterfacesResponse>");
    for interface in crate::system::network_interfaces() {
        let addresses: String = interface
            .ipv4
            .iter()
            .map(|(address, prefix)| {
                format!("<tt:Manual><tt:Address>{address}</tt:Address><tt:PrefixLength>{prefix}</tt:PrefixLength></tt:Manual>")
            })
            .collect();
        let mtu = interface.mtu.map(|m| leaf("tt:MTU", m)).unwrap_or_default();
        out.push_str(&format!(
            "<tds:NetworkInterfaces token=\"{}\"><tt:Enabled>{}</tt:Enabled><tt:Info>{}{}{mtu}</tt:Info>\
             <tt:IPv4><tt:Enabled>{}</tt:Enabled><tt:Config>{addresses}<tt:DHCP>false</tt:DHCP></tt:Config></tt:IPv4>\
             </tds:NetworkInterfaces>",
            escape(&interface.name),
            interface.up,
            leaf("tt:Name", &interface.name),
            leaf("tt:HwAddress", &interface.mac),
            !interface.ipv4.is_empty()
        ));
    }
    out.push_str("</tds:GetNetworkInterfacesResponse>");
    out
}

fn scope_items(operation: &Element, name: &str) -> Result<Vec<String>, Fault> {
    let items: Vec<String> = operation
        .children_named(name)
        .map(|s| s.text.trim().to_string())
        .collect();
    for item in &items {
        let valid = item.starts_with("onvif://www.onvif.org/")
            && item.len() <= 256
            && item.chars().all(|c| c.is_ascii_graphic());
        if !valid {
            return Err(Fault::invalid_arg(
                "ter:InvalidArgVal",
                format!(
                    "not an ONVIF scope URI: {item:?}; try onvif://www.onvif.org/location/{}",
                    scope_text(item)
                ),
            ));
        }
    }
    Ok(items)
}

#[derive(Debug)]
struct UserRequest {
    name: String,
    password: Option<String>,
    level: UserLevel,
}

fn users_of(operation: &Element, password_required: bool) -> Result<Vec<UserRequest>, Fault> {
    let users: Vec<UserRequest> = operation
        .children_named("User")
        .map(|user| {
            let name = user
                .child_text("Username")
                .filter(|n| !n.is_empty())
                .ok_or_else(|| {
                    Fault::invalid_arg("ter:UsernameMissing", "a User has no Username")
                })?;
            let password = user.child_text("Password").map(str::to_string);
            if password_required && password.as_deref().is_none_or(str::is_empty) {
                return Err(Fault::invalid_arg(
                    "ter:PasswordTooWeak",
                    format!("{name} has no password"),
                ));
            }
            let level = user
                .child_text("UserLevel")
                .and_then(UserLevel::parse)
                .ok_or_else(|| {
                    Fault::invalid_arg(
                        "ter:InvalidArgVal",
                        "UserLevel is Administrator, Operator or User",
                    )
                })?;
            Ok(UserRequest {
                name: name.to_string(),
                password,
                level,
            })
        })
        .collect::<Result<_, _>>()?;
    if users.is_empty() {
        return Err(Fault::invalid_arg("ter:UsernameMissing", "no User given"));
    }
    Ok(users)
}

/// Refuses passwords shorter than the device's policy allows.
fn strong_enough(users: &[UserRequest], min_chars: usize) -> Result<(), Fault> {
    for user in users {
        if user
            .password
            .as_ref()
            .is_some_and(|p| p.chars().count() < min_chars)
        {
            return Err(Fault {
                subcodes: vec!["ter:OperationProhibited", "ter:PasswordTooWeak"],
                ..Fault::sender(
                    "",
                    format!(
                        "the password of {} needs at least {min_chars} characters",
                        user.name
                    ),
                )
            });
        }
    }
    Ok(())
}

fn user_fault(error: UserError) -> Fault {
    let (subcodes, reason) = match &error {
        UserError::Exists(_) => (
            vec!["ter:OperationProhibited", "ter:UsernameClash"],
            error.to_string(),
        ),
        UserError::Unknown(_) => (
            vec!["ter:InvalidArgVal", "ter:UsernameMissing"],
            error.to_string(),
        ),
        UserError::BadName => (
            vec!["ter:OperationProhibited", "ter:UsernameTooLong"],
            error.to_string(),
        ),
        UserError::BadPassword => (
            vec!["ter:OperationProhibited", "ter:PasswordTooLong"],
            error.to_string(),
        ),
        UserError::LastAdministrator => (
            vec!["ter:InvalidArgVal", "ter:FixedUser"],
            error.to_string(),
        ),
        UserError::TooMany(_) => (
            vec!["ter:OperationProhibited", "ter:TooManyUsers"],
            error.to_string(),
        ),
        UserError::Storage(_) => (vec!["ter:Action"], error.to_string()),
    };
    Fault {
        subcodes,
        ..Fault::sender("", reason)
    }
}
